#!/bin/sh
# The servers on two loops (--threads 2): corio-echo driven by corio-load (every byte verified)
# and corio-httpd by corio-load in HTTP mode and by curl; both loops must have served (with 32
# connections spread by SO_REUSEPORT's hash, one loop getting none has odds of 2^-31), and each
# server must stop on SIGTERM with status 0 within 2 s.
#
# usage: threads_tools.sh <corio-echo> <corio-httpd> <corio-load> <scratch-dir>
# Exits 0 on success, 77 when curl is missing, and 1 with a message on the first failure.
set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 <corio-echo> <corio-httpd> <corio-load> <scratch-dir>" >&2
    exit 2
fi
ECHO=$1
HTTPD=$2
LOAD=$3
TMP=$4

if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl not found (apt-get install curl)"
    exit 77
fi
. "$(dirname "$0")/server_lib.sh"

# serve NAME CMD...: starts the server on two loops (PID and PORT).
serve() {
    name=$1
    shift
    lib_start "$name" "$@" --host 127.0.0.1 --port 0 --threads 2 --stats
}

# both_served NAME: each of the two loops' counter lines shows work (spawns beyond its own).
both_served() {
    n=$(grep -c "^$1: sqes=" "$TMP/$1.err")
    [ "$n" -eq 2 ] || fail "$1: $n loops reported counters, not 2"
    busy=$(sed -n "s/^$1: sqes=\([0-9]*\) .*/\1/p" "$TMP/$1.err" | awk '$1 > 100' | wc -l)
    [ "$busy" -eq 2 ] || fail "$1: only $busy of the 2 loops served"
}

rm -rf "$TMP"
mkdir -p "$TMP" || fail "cannot create $TMP"

serve corio-echo "$ECHO"
"$LOAD" --mode echo --host 127.0.0.1 --port "$PORT" -c 32 -s 256 -w 0.2 -d 1 -q \
    --json "$TMP/echo.json" 2>"$TMP/load.err" || fail "corio-load against corio-echo --threads 2"
grep -q '"verify_errors": 0' "$TMP/echo.json" || fail "corio-load saw verify errors"
lib_stop corio-echo clean
both_served corio-echo

serve corio-httpd "$HTTPD"
body=$(curl -sS --noproxy 127.0.0.1 --max-time 10 "http://127.0.0.1:$PORT/") || fail "curl failed"
[ "$body" = "Hello, World!" ] || fail "GET / answered '$body'"
"$LOAD" --mode http --host 127.0.0.1 --port "$PORT" -c 32 -w 0.2 -d 1 -q \
    --json "$TMP/http.json" 2>"$TMP/load.err" || fail "corio-load against corio-httpd --threads 2"
grep -q '"errors": 0' "$TMP/http.json" || fail "corio-load saw HTTP errors"
lib_stop corio-httpd clean
both_served corio-httpd

echo "threads_tools: all checks passed"
exit 0
