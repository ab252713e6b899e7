#!/bin/sh
# tools/corio-gdb.py against a live process and against its core file: gdb runs
# tests/gdb_target (coroutines parked in a sleep, a recv and a channel, and a running one that
# stops with SIGTRAP), lists the coroutines, shows two backtraces and writes a core with gcore;
# then a second gdb does the same on the core. Skips (77) with the reason where gdb is missing
# or may not trace.
# usage: gdb_coros.sh GDB_TARGET SCRIPT SCRATCH_DIR
set -u
target=$1 script=$2 dir=$3
command -v gdb >/dev/null || { echo "SKIP: gdb is not installed (apt-get install gdb)"; exit 77; }
rm -rf "$dir" && mkdir -p "$dir" || exit 1
trap 'rm -rf "$dir"' EXIT
core=$dir/core
# A sanitizer's process maps terabytes of shadow memory, which gcore would write out: there the
# core part is left out, said so, and the live part still runs.
outs="$dir/live.out $dir/core.out"
gcore="-ex 'gcore $core'"
if nm "$target" 2>/dev/null | grep -qE ' (__asan_init|__tsan_init)$'; then
    echo "gdb_coros: sanitizer build: the core file part is left out (gcore would write the shadow)"
    outs="$dir/live.out" gcore=""
fi
cmds="-ex 'corio list' -ex 'corio bt 2' -ex 'corio bt 3' -ex 'corio bt 1'"
eval gdb -nx -batch -ex "'set debuginfod enabled off'" -ex "'source $script'" \
    -ex "'handle SIGTRAP stop'" -ex run $cmds $gcore -ex kill "$target" \
    >"$dir/live.out" 2>&1
if ! grep -q '^loop 1 ' "$dir/live.out"; then
    if grep -qiE 'ptrace|not permitted|Couldn.t get registers|cannot access memory at address 0x0' \
        "$dir/live.out"; then
        echo "SKIP: gdb cannot trace here:"; cat "$dir/live.out"; exit 77
    fi
    echo "FAIL: no loop listed by the live session:"; cat "$dir/live.out"; exit 1
fi
if [ -n "$gcore" ]; then
    [ -s "$core" ] || { echo "FAIL: gcore wrote no core:"; cat "$dir/live.out"; exit 1; }
    eval gdb -nx -batch -ex "'set debuginfod enabled off'" -ex "'source $script'" $cmds \
        "$target" "$core" >"$dir/core.out" 2>&1
fi

fail=0
# check FILE WHAT PATTERN: FILE has a line matching the extended regular expression.
check() {
    grep -qE "$3" "$1" || { echo "FAIL ($(basename "$1")): $2: no line matches /$3/"; fail=1; }
}
# The frames that "corio bt N" printed: the "#..." lines after the second "  coroutine N " line
# (the first is in the list).
bt_of() {
    awk -v n="$2" 'index($0, "  coroutine " n " ") == 1 { seen++; on = (seen == 2); next }
                   on && /^#/ { print; next } { on = 0 }' "$1"
}
for out in $outs; do
    check "$out" "the loop" '^loop 1 \(0x[0-9a-f]+\): (io_uring|epoll), 4 coroutines'
    check "$out" "the running one" '^  coroutine 1 "boss": running; spawned at .*gdb_target.c:[0-9]+; body boss'
    check "$out" "the sleeper" '^  coroutine 2 "sleeper": waiting for an op \(timeout\); spawned at .*gdb_target.c'
    check "$out" "the reader" '^  coroutine 3 "reader": waiting for an op \(recv on fd [0-9]+\)'
    check "$out" "the taker" '^  coroutine 4 "taker": waiting for a channel'
    check "$out" "bt of the running one" 'it is running: its frames are its thread'
    bt_of "$out" 2 >"$out.bt2"
    bt_of "$out" 3 >"$out.bt3"
    check "$out.bt2" "the sleeper's backtrace" '^#[0-9]+ +0x[0-9a-f]+ in park_in_sleep \(\)'
    check "$out.bt2" "the sleeper's backtrace" '^#[0-9]+ +0x[0-9a-f]+ in corio_sleep \(\)'
    check "$out.bt2" "the sleeper's backtrace" '^#[0-9]+ +0x[0-9a-f]+ in sleeper \(\)'
    check "$out.bt3" "the reader's backtrace" '^#[0-9]+ +0x[0-9a-f]+ in wait_for_data \(\)'
    check "$out.bt3" "the reader's backtrace" '^#[0-9]+ +0x[0-9a-f]+ in reader \(\)'
    if grep -q wait_for_data "$out.bt2" || grep -q park_in_sleep "$out.bt3"; then
        echo "FAIL ($(basename "$out")): a backtrace shows another coroutine's frames"; fail=1
    fi
done
if [ $fail -ne 0 ]; then
    for out in $outs; do echo "---- $(basename "$out"):"; cat "$out"; done
    exit 1
fi
echo "gdb_coros: the live process and its core list 4 coroutines and their backtraces"
