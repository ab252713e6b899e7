#!/bin/sh
# The servers linked with the testing variant (libcorio-testing) serve verified traffic under the
# faults a user's CI would set, CORIO_FAULTS=seed=1,short=0.2,eagain=0.05: corio-echo-testing
# driven by corio-load in echo mode (every byte checked), corio-httpd-testing by corio-load in
# HTTP mode (every response's framing checked) and by curl fetching a 1 MiB file and "/" (the
# bytes compared). Each server must print the seed as the faults begin, and stop on SIGTERM
# with status 0.
#
# usage: tools_faults.sh <corio-echo-testing> <corio-httpd-testing> <corio-load> <scratch-dir>
# Exits 0 on success, 77 when curl is missing, and 1 with a message on the first failure.
set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 <corio-echo-testing> <corio-httpd-testing> <corio-load> <scratch-dir>" >&2
    exit 2
fi
ECHO=$1
HTTPD=$2
LOAD=$3
TMP=$4
FAULTS=seed=1,short=0.2,eagain=0.05

if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl not found (apt-get install curl)"
    exit 77
fi
. "$(dirname "$0")/server_lib.sh"

rm -rf "$TMP"
mkdir -p "$TMP/root" || fail "cannot create $TMP"

# faulted NAME: the server printed the seed of its faults.
faulted() {
    grep -q "^corio faults: seed=1 spec=$FAULTS\$" "$TMP/$1.err" ||
        fail "$1 did not print 'corio faults: seed=1 spec=$FAULTS'"
}

export CORIO_FAULTS=$FAULTS

lib_start echo "$ECHO" --host 127.0.0.1 --port 0
"$LOAD" --mode echo --host 127.0.0.1 --port "$PORT" -c 16 -s 4096 -w 0.2 -d 1 -q \
    --json "$TMP/echo.json" 2>"$TMP/load.err" || fail "corio-load against corio-echo-testing"
grep -q '"verify_errors": 0' "$TMP/echo.json" || fail "corio-load saw verify errors"
grep -Eq '"messages": [1-9]' "$TMP/echo.json" || fail "corio-load completed no message"
faulted echo
lib_stop corio-echo-testing clean

head -c 1048576 /dev/urandom >"$TMP/root/big.bin" || fail "cannot write the test file"
lib_start httpd "$HTTPD" --host 127.0.0.1 --port 0 --root "$TMP/root"
curl -sS --noproxy 127.0.0.1 --max-time 20 -o "$TMP/got.bin" \
    "http://127.0.0.1:$PORT/big.bin" || fail "curl of big.bin failed"
cmp -s "$TMP/root/big.bin" "$TMP/got.bin" || fail "big.bin came back different"
"$LOAD" --mode http --host 127.0.0.1 --port "$PORT" --path /big.bin -c 8 -w 0.2 -d 1 -q \
    --json "$TMP/http.json" 2>"$TMP/load.err" || fail "corio-load against corio-httpd-testing"
grep -q '"errors": 0' "$TMP/http.json" || fail "corio-load saw HTTP errors"
faulted httpd
lib_stop corio-httpd-testing clean

lib_start hello "$HTTPD" --host 127.0.0.1 --port 0
body=$(curl -sS --noproxy 127.0.0.1 --max-time 10 "http://127.0.0.1:$PORT/") || fail "curl failed"
[ "$body" = "Hello, World!" ] || fail "GET / answered '$body'"
"$LOAD" --mode http --host 127.0.0.1 --port "$PORT" -c 16 -w 0.2 -d 1 -q \
    --json "$TMP/hello.json" 2>"$TMP/load.err" || fail "corio-load against corio-httpd-testing /"
grep -q '"errors": 0' "$TMP/hello.json" || fail "corio-load saw HTTP errors on /"
lib_stop corio-httpd-testing clean

echo "tools_faults: all checks passed under CORIO_FAULTS=$FAULTS"
exit 0
