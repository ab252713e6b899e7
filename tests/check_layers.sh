#!/bin/sh
# Checks that the engine's modules depend on each other downward only (engine/README.md):
#  1. includes: a file includes only engine headers of its own layer or a lower one;
#  2. calls: an object file uses only functions (and thread-locals) defined by objects of its own
#     layer or a lower one, and the graph of those uses between objects has no cycle.
# usage: check_layers.sh ENGINE_DIR OBJECT...   (the objects of the library, without the fault
# seam's compiled-out stub being special: every engine .c is one object)
set -eu
engine=$1
shift

# The layers, bottom up. A .c and its .h share a layer, except loop.h: the loop's state,
# assembled from the parts of the modules below it, which the modules above the scheduler share.
layer_of() {
    case $1 in
    base | list | heap | ctx | mpsc | ticks) echo 0 ;;
    ring | ring_setup | ring_private | fault | fault_config | fault_private | stack | pool | epoll | \
        epoll_ops | epoll_setup | epoll_private) echo 1 ;;
    probe | op | latency) echo 2 ;;
    scheduler | segv) echo 3 ;;
    coro | group | future | remote | metrics | loop.h) echo 4 ;;
    loop | threads | blocking | file | net | resolve | listen | acceptor | poller | buf | sync | chan | \
        xchan | gen | drain | signals | dump | stall | prometheus | report) \
        echo 5 ;;
    *) echo "check_layers: no layer for $1: add it to the table in $0" >&2; echo 99 ;;
    esac
}

fail=0
for f in "$engine"/*.c "$engine"/*.h; do
    name=$(basename "$f")
    mod=${name%.*}
    [ "$name" = loop.h ] && mod=loop.h
    mine=$(layer_of "$mod")
    for inc in $(sed -n 's/^#include "\([a-z_]*\)\.h".*/\1/p' "$f"); do
        [ -f "$engine/$inc.h" ] || continue
        dep=$inc
        [ "$inc" = loop ] && dep=loop.h
        theirs=$(layer_of "$dep")
        if [ "$theirs" -gt "$mine" ]; then
            echo "FAIL include: $name (layer $mine) includes $inc.h (layer $theirs)"
            fail=1
        fi
    done
done

# Symbol use between objects: who defines each corio symbol, who uses it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A module may span files (ring.c and ring_setup.c, epoll.c and epoll_ops.c): calls within it
# are its own business; the graph is between modules.
for o in "$@"; do
    mod=$(basename "$o" | sed 's/\.c\.o$//; s/\.S\.o$//; s/_x86_64$//; s/_aarch64$//;
                               s/_setup$//; s/_ops$//; s/_config$//')
    nm "$o" | awk -v m="$mod" '$2 ~ /^[TDBR]$/ && $3 ~ /^corio_/ {print $3, m}' >>"$tmp/defs"
    nm -u "$o" | awk -v m="$mod" '$2 ~ /^corio_/ {print m, $2}' >>"$tmp/uses"
done
sort -k1,1 "$tmp/defs" >"$tmp/defs.s"
sort -k2,2 "$tmp/uses" | join -1 2 -2 1 - "$tmp/defs.s" | awk '{print $2, $3, $1}' \
    | sort -u >"$tmp/edges"
while read -r user definer sym; do
    [ "$user" = "$definer" ] && continue
    if [ "$(layer_of "$definer")" -gt "$(layer_of "$user")" ]; then
        echo "FAIL call: $user.c (layer $(layer_of "$user")) uses $sym of $definer.c" \
            "(layer $(layer_of "$definer"))"
        fail=1
    fi
done <"$tmp/edges"
awk '$1 != $2 {print $2, $1}' "$tmp/edges" | sort -u >"$tmp/pairs"
if ! tsort "$tmp/pairs" >/dev/null 2>"$tmp/tsort"; then
    echo "FAIL calls: a cycle between objects:"
    cat "$tmp/tsort"
    fail=1
fi
n_edges=$(awk '$1 != $2' "$tmp/edges" | wc -l)
echo "check_layers: $(ls "$engine"/*.c "$engine"/*.h | wc -l) files, $# objects," \
    "$n_edges cross-object uses checked"
[ $fail -eq 0 ] && echo "check_layers: every include and call goes down"
exit $fail
