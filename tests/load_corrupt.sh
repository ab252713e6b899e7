#!/bin/sh
# The load generator must catch a corrupted byte. corio-load runs for about a second in echo mode
# against corio-echo (exit 0, no verify error) and then against corrupt_echo, which flips the byte
# at offset 1000 of its first connection's stream (exit 1, and a verify error that names that
# byte: with 64-byte messages, message 15, byte 40).
#
# usage: load_corrupt.sh <corio-load> <corio-echo> <corrupt_echo> <scratch-dir>
# Exits 0 on success and 1 with a message on the first failure.
set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 <corio-load> <corio-echo> <corrupt_echo> <scratch-dir>" >&2
    exit 2
fi
LOAD=$1
ECHO=$2
CORRUPT=$3
TMP=$4
AT=1000
SIZE=64

for f in "$LOAD" "$ECHO" "$CORRUPT"; do
    [ -x "$f" ] || { echo "FAIL: $f is not an executable" >&2; exit 1; }
done

. "$(dirname "$0")/server_lib.sh"

# Runs corio-load in echo mode against PORT; sets LOAD_RC.
run_load() {
    "$LOAD" --mode echo --host 127.0.0.1 --port "$PORT" -c 4 -s $SIZE -w 0.2 -d 1 -q \
        --json "$TMP/load.json" >"$TMP/load.out" 2>"$TMP/load.err"
    LOAD_RC=$?
}

json_field() {
    sed -n "s/.*\"$1\": \([0-9][0-9]*\).*/\1/p" "$TMP/load.json"
}

rm -rf "$TMP"
mkdir -p "$TMP" || fail "cannot create $TMP"

# ---- a correct echo server: no error ---------------------------------------------------------
lib_start server "$ECHO" --host 127.0.0.1 --port 0
run_load
[ "$LOAD_RC" -eq 0 ] || fail "corio-load against corio-echo exited with $LOAD_RC"
[ -s "$TMP/load.json" ] || fail "corio-load wrote no JSON"
expect_ve=$(json_field verify_errors)
[ "$expect_ve" = 0 ] || fail "corio-load against corio-echo: verify_errors '$expect_ve' in the JSON"
msgs=$(json_field messages)
[ -n "$msgs" ] && [ "$msgs" -gt 0 ] || fail "corio-load against corio-echo: no messages ('$msgs')"
! grep -q "verify error" "$TMP/load.err" || fail "corio-load against corio-echo reported a verify error"
lib_stop "the server" clean

# ---- one flipped byte: reported, with its place ----------------------------------------------
rm -f "$TMP/load.json"
lib_start server "$CORRUPT" --port 0 --at $AT --lifetime 30
run_load
[ "$LOAD_RC" -eq 1 ] || fail "corio-load against corrupt_echo exited with $LOAD_RC, not 1"
msg=$((AT / SIZE))
byte=$((AT % SIZE))
grep -q "verify error: .*message $msg, byte $byte of $SIZE" "$TMP/load.err" ||
    fail "corio-load did not name message $msg, byte $byte of the corrupted stream"
ve=$(json_field verify_errors)
[ "$ve" = 1 ] || fail "corio-load against corrupt_echo: verify_errors '$ve' in the JSON, not 1"
lib_stop "the server"

echo "load_corrupt: all checks passed"
exit 0
