#!/bin/sh
# The README's testing example ("Testing a server built on corio") does what the README says: the
# server with the planted bug (a short send taken for done) passes its integration test in a clean
# run and fails it under the README's CI line, printing the line that replays the faults; the
# fixed server passes under the same line.
#
# usage: example_faults.sh <example-short-send> <example-short-send-fixed> <scratch-dir>
# Exits 0 on success and 1 with a message on the first failure.
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 <example-short-send> <example-short-send-fixed> <scratch-dir>" >&2
    exit 2
fi
BUGGY=$1
FIXED=$2
TMP=$3
LINE="CORIO_FAULTS=seed=1,short=0.2 CORIO_CLOCK=virtual"

rm -rf "$TMP"
mkdir -p "$TMP" || { echo "FAIL: cannot create $TMP" >&2; exit 1; }
trap 'rm -rf "$TMP"' EXIT

fail() {
    echo "FAIL: $*" >&2
    cat "$TMP/err" >&2
    exit 1
}

unset CORIO_FAULTS CORIO_CLOCK
"$BUGGY" >"$TMP/out" 2>"$TMP/err" || fail "the buggy server failed a clean run"
grep -q "corio faults" "$TMP/err" && fail "a clean run printed faults"

# shellcheck disable=SC2086 # the line is a list of assignments, as a user would type it
env $LINE "$BUGGY" >"$TMP/out" 2>"$TMP/err" && fail "the buggy server passed under $LINE"
grep -q "^corio faults: seed=1 spec=seed=1,short=0.2\$" "$TMP/err" || fail "no seed line"
grep -q "^corio faults: to replay: CORIO_FAULTS='seed=1,short=0.2'\$" "$TMP/err" ||
    fail "no replay line after the failure"
grep -q "came back" "$TMP/err" || fail "the failure was not the lost reply"

# shellcheck disable=SC2086
env $LINE "$FIXED" >"$TMP/out" 2>"$TMP/err" || fail "the fixed server failed under $LINE"
grep -q "to replay" "$TMP/err" && fail "a passing run printed the replay line"
echo "example_faults: clean run passes, $LINE catches the bug, the fix passes"
exit 0
