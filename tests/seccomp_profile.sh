#!/bin/sh
# The seccomp profiles of corio-probe --seccomp-profile, checked by running corio programs under
# them: seccomp_exec installs an allow-list filter of exactly the profile's system calls (every
# other one fails with EPERM, the profile's default action) and execs the tool. On each backend
# (forced, so that a refused io_uring fails instead of falling back): corio-echo, in both of its
# modes, must echo corio-load's verified bytes and print its report on SIGUSR1, corio-httpd must
# serve a file and its metrics (at --metrics-path and on --metrics-port), and both must exit
# cleanly on SIGTERM. And the filter must bite:
# under the epoll profile, io_uring is refused and corio-probe names the cause.
#
# usage: seccomp_profile.sh <seccomp_exec> <corio-probe> <corio-echo> <corio-httpd> <corio-load>
#                           <cc> <scratch-dir>
# Exits 0 on success, 77 when curl is missing or the tools are built with a sanitizer (whose
# runtime needs more), and 1 with a message on the first failure.
set -u

[ $# -eq 7 ] || {
    echo "usage: $0 <seccomp_exec> <corio-probe> <corio-echo> <corio-httpd> <corio-load> <cc>" \
        "<scratch-dir>" >&2
    exit 2
}
SECEXEC=$1 PROBE=$2 ECHO=$3 HTTPD=$4 LOAD=$5 CC=$6 TMP=$7
HERE=$(cd "$(dirname "$0")" && pwd)

if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl not found (apt-get install curl)"
    exit 77
fi
if [ -n "${CORIO_SANITIZED:-}" ]; then
    echo "SKIP: a sanitizer's runtime makes system calls of its own (readlink, and ptrace for" \
        "the leak check at exit) that a profile for corio does not list"
    exit 77
fi

. "$HERE/server_lib.sh"

# Each run below names its backend; the last one must see the filter alone choose.
unset CORIO_BACKEND
rm -rf "$TMP"
mkdir -p "$TMP/www" || fail "cannot create $TMP"
head -c 100000 /dev/urandom >"$TMP/www/blob" || fail "cannot write $TMP/www/blob"

# This architecture's system call numbers, from the C library's headers.
printf '#include <sys/syscall.h>\n' | "$CC" -E -dM - |
    sed -n 's/^#define __NR_\([a-z0-9_]*\) \([0-9][0-9]*\)$/\1 \2/p' >"$TMP/nr" ||
    fail "cannot list the system call numbers with $CC"
[ -s "$TMP/nr" ] || fail "no system call numbers from $CC"

# numbers BACKEND [EXTRA...]: the profile's calls (those this architecture has), and the tools'
# own (EXTRA), as seccomp_exec's comma-separated list.
numbers() {
    prof=$1
    shift
    "$PROBE" --seccomp-profile $prof >"$TMP/$prof.json" || fail "corio-probe --seccomp-profile $prof"
    { sed 's/.*"names":\[//; s/\].*//' "$TMP/$prof.json" | tr ',' '\n' | tr -d '"'
      for x in "$@"; do echo "$x"; done; } >"$TMP/names"
    grep -q '^io_uring_setup$\|^epoll_create1$' "$TMP/names" || fail "no names in $prof.json"
    awk 'NR == FNR { nr[$1] = $2; next } ($1 in nr) { printf "%s%s", sep, nr[$1]; sep = "," }' \
        "$TMP/nr" "$TMP/names"
}

for be in io_uring epoll; do
    # signalfd4: the tools' own signal handling, not corio's.
    NRS=$(numbers $be signalfd4)
    for mode in "" --plain; do
        lib_start echo "$SECEXEC" "$NRS" env CORIO_BACKEND=$be "$ECHO" --port 0 \
            --host 127.0.0.1 $mode
        "$LOAD" --port "$PORT" -c 8 -d 0.3 -w 0.1 -q >"$TMP/load.log" 2>&1 ||
            fail "corio-load against corio-echo $mode under the $be profile"
        kill -USR1 "$PID"
        sleep 0.3
        grep -q "coroutines=" "$TMP/echo.err" || fail "no report on SIGUSR1 under the $be profile"
        lib_stop echo clean
        ! grep -q "backend epoll" "$TMP/echo.err" || [ $be = epoll ] ||
            fail "corio-echo fell back to epoll under the io_uring profile"
    done
    lib_start httpd "$SECEXEC" "$NRS" env CORIO_BACKEND=$be "$HTTPD" --port 0 --host 127.0.0.1 \
        --root "$TMP/www" --metrics-path /metrics --metrics-port 0
    curl -sf "http://127.0.0.1:$PORT/blob" -o "$TMP/got" || fail "GET /blob under the $be profile"
    cmp -s "$TMP/got" "$TMP/www/blob" || fail "GET /blob: other bytes under the $be profile"
    curl -sf "http://127.0.0.1:$PORT/metrics" | grep -q '^corio_cqes_total{loop="0"} [1-9]' ||
        fail "GET /metrics under the $be profile"
    MPORT=
    for i in 1 2 3 4 5 6 7 8 9 10; do
        MPORT=$(sed -n 's/^metrics port=\([0-9][0-9]*\)$/\1/p' "$TMP/httpd.out")
        [ -n "$MPORT" ] && break
        sleep 0.1
    done
    [ -n "$MPORT" ] || fail "corio-httpd printed no metrics port"
    curl -sf "http://127.0.0.1:$MPORT/anything" | grep -q '^# TYPE corio_op_latency_seconds histogram' ||
        fail "GET of the metrics port under the $be profile"
    lib_stop httpd clean
    echo "seccomp_profile: $be: corio-echo, corio-load and corio-httpd work under its profile"
done

# The filter bites: the epoll profile refuses io_uring, and corio says so.
"$SECEXEC" "$(numbers epoll)" "$PROBE" >"$TMP/probe.out" 2>&1 || fail "corio-probe under epoll"
grep -q "^backend: epoll: io_uring_setup failed with EPERM" "$TMP/probe.out" ||
    fail "corio-probe under the epoll profile: $(cat "$TMP/probe.out")"
echo "seccomp_profile: all checks passed"
exit 0
