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

PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    for f in server.err load.err; do
        if [ -s "$TMP/$f" ]; then
            echo "--- $f:" >&2
            cat "$TMP/$f" >&2
        fi
    done
    exit 1
}

# Starts a server that prints "ready port=N" and sets PID and PORT.
start_server() {
    : >"$TMP/server.out"
    : >"$TMP/server.err"
    "$@" >"$TMP/server.out" 2>"$TMP/server.err" &
    PID=$!
    PORT=
    i=0
    while [ $i -lt 100 ]; do
        PORT=$(sed -n 's/^ready port=\([0-9][0-9]*\)$/\1/p' "$TMP/server.out")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || fail "$1 exited before it was ready"
        sleep 0.05
        i=$((i + 1))
    done
    fail "$1 printed no ready line in 5 s"
}

# Stops the server with SIGTERM; with "clean", it must exit 0 within 2 s.
stop_server() {
    kill -TERM "$PID" 2>/dev/null
    i=0
    while kill -0 "$PID" 2>/dev/null; do
        [ $i -ge 20 ] && fail "the server did not exit within 2 s of SIGTERM"
        sleep 0.1
        i=$((i + 1))
    done
    wait "$PID"
    rc=$?
    PID=
    if [ "${1:-}" = clean ] && [ "$rc" -ne 0 ]; then
        fail "the server exited with status $rc after SIGTERM"
    fi
}

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
start_server "$ECHO" --host 127.0.0.1 --port 0
run_load
[ "$LOAD_RC" -eq 0 ] || fail "corio-load against corio-echo exited with $LOAD_RC"
[ -s "$TMP/load.json" ] || fail "corio-load wrote no JSON"
expect_ve=$(json_field verify_errors)
[ "$expect_ve" = 0 ] || fail "corio-load against corio-echo: verify_errors '$expect_ve' in the JSON"
msgs=$(json_field messages)
[ -n "$msgs" ] && [ "$msgs" -gt 0 ] || fail "corio-load against corio-echo: no messages ('$msgs')"
! grep -q "verify error" "$TMP/load.err" || fail "corio-load against corio-echo reported a verify error"
stop_server clean

# ---- one flipped byte: reported, with its place ----------------------------------------------
rm -f "$TMP/load.json"
start_server "$CORRUPT" --port 0 --at $AT --lifetime 30
run_load
[ "$LOAD_RC" -eq 1 ] || fail "corio-load against corrupt_echo exited with $LOAD_RC, not 1"
msg=$((AT / SIZE))
byte=$((AT % SIZE))
grep -q "verify error: .*message $msg, byte $byte of $SIZE" "$TMP/load.err" ||
    fail "corio-load did not name message $msg, byte $byte of the corrupted stream"
ve=$(json_field verify_errors)
[ "$ve" = 1 ] || fail "corio-load against corrupt_echo: verify_errors '$ve' in the JSON, not 1"
stop_server

echo "load_corrupt: all checks passed"
exit 0
