# shellcheck shell=sh disable=SC2034
# Sourced by the scripts beside it (sh): the set-up and reporting they share.
#
# init_scratch <name> <source-dir> <scratch-dir>: checks the arguments and sets $src (absolute),
# $work (a fresh directory under <scratch-dir>, removed on exit), $jobs and $log; <name> prefixes
# what fail() and step() print.
init_scratch() {
    name=$1
    if [ $# -ne 3 ]; then
        echo "usage: $0 <source-dir> <scratch-dir>" >&2
        exit 2
    fi
    src=$(cd "$2" && pwd)
    mkdir -p "$3"
    work=$(mktemp -d "$(cd "$3" && pwd)/$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
    jobs=$(nproc 2>/dev/null || echo 2)
    log=$work/log
}

fail() {
    echo "$name: FAIL: $*" >&2
    exit 1
}

# step <what> <command...>: runs the command with its output in $log; on failure shows the output
# and fails.
step() {
    what=$1
    shift
    echo "$name: $what"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        fail "$what"
    fi
}
