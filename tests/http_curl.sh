#!/bin/sh
# Drives a real corio-httpd with curl: static files from a scratch root (GET compared byte for
# byte with cmp, HEAD, Range, 404, 304, keep-alive reuse), the default hello server (GET / is
# exactly "Hello, World!" as text/plain), its TechEmpower plaintext and JSON routes, its
# --access-log and --max-requests. Each server must stop on SIGTERM with status 0 within 2 s
# (under ASan that also means no leak at exit).
#
# usage: http_curl.sh <path-to-corio-httpd> <scratch-dir>
# Exits 0 on success, 77 when curl is missing, and 1 with a message on the first failure.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 <corio-httpd> <scratch-dir>" >&2
    exit 2
fi
HTTPD=$1
TMP=$2

if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl not found (apt-get install curl)"
    exit 77
fi
[ -x "$HTTPD" ] || { echo "FAIL: $HTTPD is not an executable" >&2; exit 1; }

. "$(dirname "$0")/server_lib.sh"

# Starts corio-httpd on a port the kernel picks, with the given options (PID and PORT).
start_httpd() {
    lib_start httpd "$HTTPD" --host 127.0.0.1 --port 0 "$@"
}

# SIGTERM: the server must exit with status 0 within 2 s.
stop_httpd() {
    lib_stop corio-httpd clean
}

# curl with a bound on every transfer and no proxy from the environment.
CURL="curl -sS --noproxy 127.0.0.1 --max-time 10"

# Extracts header $2 (case-insensitive) from the header dump $1, without the CR.
header() {
    sed -n "s/^$2: *//Ip" "$1" | tr -d '\r' | head -n 1
}

expect_eq() {
    [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"
}

# ---- static files ---------------------------------------------------------------------------
rm -rf "$TMP"
mkdir -p "$TMP/www/sub" || fail "cannot create $TMP"
head -c 5000 /dev/urandom >"$TMP/www/index.html"
head -c 777 /dev/urandom >"$TMP/www/style.css"
head -c 3000000 /dev/urandom >"$TMP/www/big.bin"
printf 'in sub\n' >"$TMP/www/sub/index.html"
echo "top secret" >"$TMP/secret.txt"

start_httpd --root "$TMP/www"
URL="http://127.0.0.1:$PORT"

# GET: the bytes on disk, with the right status, length and type.
out=$($CURL -o "$TMP/got" -D "$TMP/hdr" -w '%{http_code}' "$URL/index.html") || fail "GET /index.html: curl failed"
expect_eq "GET /index.html status" "$out" 200
cmp -s "$TMP/got" "$TMP/www/index.html" || fail "GET /index.html: body differs from the file"
expect_eq "GET /index.html Content-Length" "$(header "$TMP/hdr" Content-Length)" 5000
expect_eq "GET /index.html Content-Type" "$(header "$TMP/hdr" Content-Type)" "text/html; charset=utf-8"

out=$($CURL -o "$TMP/got" -D "$TMP/hdr" -w '%{http_code}' "$URL/style.css") || fail "GET /style.css: curl failed"
expect_eq "GET /style.css status" "$out" 200
cmp -s "$TMP/got" "$TMP/www/style.css" || fail "GET /style.css: body differs from the file"
expect_eq "GET /style.css Content-Type" "$(header "$TMP/hdr" Content-Type)" "text/css; charset=utf-8"

out=$($CURL -o "$TMP/got" -w '%{http_code}' "$URL/big.bin") || fail "GET /big.bin: curl failed"
expect_eq "GET /big.bin status" "$out" 200
cmp -s "$TMP/got" "$TMP/www/big.bin" || fail "GET /big.bin: body differs from the file"

out=$($CURL -o "$TMP/got" -w '%{http_code}' "$URL/") || fail "GET /: curl failed"
expect_eq "GET / status" "$out" 200
cmp -s "$TMP/got" "$TMP/www/index.html" || fail "GET /: not index.html"

# A directory without its slash: a redirect that curl follows to its index.
out=$($CURL -o "$TMP/got" -D "$TMP/hdr" -w '%{http_code}' "$URL/sub") || fail "GET /sub: curl failed"
expect_eq "GET /sub status" "$out" 301
expect_eq "GET /sub Location" "$(header "$TMP/hdr" Location)" "/sub/"
out=$($CURL -L -o "$TMP/got" -w '%{http_code}' "$URL/sub") || fail "GET -L /sub: curl failed"
expect_eq "GET -L /sub status" "$out" 200
cmp -s "$TMP/got" "$TMP/www/sub/index.html" || fail "GET -L /sub: not sub/index.html"

# HEAD: the headers of the GET, and no body.
out=$($CURL -I -o "$TMP/hdr" -w '%{http_code} %{size_download}' "$URL/big.bin") || fail "HEAD /big.bin: curl failed"
expect_eq "HEAD /big.bin status and body size" "$out" "200 0"
expect_eq "HEAD /big.bin Content-Length" "$(header "$TMP/hdr" Content-Length)" 3000000
expect_eq "HEAD /big.bin Content-Type" "$(header "$TMP/hdr" Content-Type)" "application/octet-stream"
lm=$(header "$TMP/hdr" Last-Modified)
[ -n "$lm" ] || fail "HEAD /big.bin: no Last-Modified"

# Range: exactly the bytes asked for.
out=$($CURL -r 0-99 -o "$TMP/got" -D "$TMP/hdr" -w '%{http_code}' "$URL/big.bin") || fail "GET -r 0-99: curl failed"
expect_eq "GET -r 0-99 status" "$out" 206
head -c 100 "$TMP/www/big.bin" >"$TMP/want"
cmp -s "$TMP/got" "$TMP/want" || fail "GET -r 0-99: not the first 100 bytes"
expect_eq "GET -r 0-99 Content-Range" "$(header "$TMP/hdr" Content-Range)" "bytes 0-99/3000000"

out=$($CURL -r 2999900- -o "$TMP/got" -w '%{http_code}' "$URL/big.bin") || fail "GET -r 2999900-: curl failed"
expect_eq "GET -r 2999900- status" "$out" 206
tail -c 100 "$TMP/www/big.bin" >"$TMP/want"
cmp -s "$TMP/got" "$TMP/want" || fail "GET -r 2999900-: not the last 100 bytes"

out=$($CURL -r 5000000- -o /dev/null -D "$TMP/hdr" -w '%{http_code}' "$URL/big.bin") || fail "GET -r 5000000-: curl failed"
expect_eq "GET -r 5000000- status" "$out" 416
expect_eq "GET -r 5000000- Content-Range" "$(header "$TMP/hdr" Content-Range)" "bytes */3000000"

# If-Modified-Since with the Last-Modified value: 304 and no body.
out=$($CURL -H "If-Modified-Since: $lm" -o "$TMP/got" -w '%{http_code} %{size_download}' "$URL/big.bin") ||
    fail "GET If-Modified-Since: curl failed"
expect_eq "GET If-Modified-Since status and body size" "$out" "304 0"

# 404, and nothing from outside the root.
out=$($CURL -o /dev/null -w '%{http_code}' "$URL/missing.html") || fail "GET /missing.html: curl failed"
expect_eq "GET /missing.html status" "$out" 404
out=$($CURL --path-as-is -o "$TMP/got" -w '%{http_code}' "$URL/../secret.txt") || fail "GET /../secret.txt: curl failed"
case $out in 400 | 403) ;; *) fail "GET /../secret.txt: expected 400 or 403, got $out" ;; esac
! grep -q secret "$TMP/got" || fail "GET /../secret.txt served a file outside the root"

# Keep-alive: curl reuses the connection for the second URL (no new connect).
out=$($CURL -o /dev/null -o /dev/null -w '%{http_code}:%{num_connects} ' "$URL/style.css" "$URL/index.html") ||
    fail "two GETs on one connection: curl failed"
expect_eq "two GETs: status and new connections" "$out" "200:1 200:0 "

stop_httpd

# ---- the default hello server ----------------------------------------------------------------
start_httpd
URL="http://127.0.0.1:$PORT"
out=$($CURL -o "$TMP/got" -D "$TMP/hdr" -w '%{http_code}' "$URL/") || fail "hello GET /: curl failed"
expect_eq "hello GET / status" "$out" 200
printf 'Hello, World!' >"$TMP/want"
cmp -s "$TMP/got" "$TMP/want" || fail "hello GET /: body is '$(cat "$TMP/got")', not 'Hello, World!'"
expect_eq "hello GET / Content-Type" "$(header "$TMP/hdr" Content-Type)" "text/plain"
expect_eq "hello GET / Content-Length" "$(header "$TMP/hdr" Content-Length)" 13
out=$($CURL -I -o /dev/null -w '%{http_code} %{size_download}' "$URL/") || fail "hello HEAD /: curl failed"
expect_eq "hello HEAD / status and body size" "$out" "200 0"
out=$($CURL -o /dev/null -w '%{http_code}' "$URL/other") || fail "hello GET /other: curl failed"
expect_eq "hello GET /other status" "$out" 404
stop_httpd

# ---- TechEmpower's plaintext and JSON tests ---------------------------------------------------
# GET /plaintext is exactly "Hello, World!" and GET /json exactly {"message":"Hello, World!"},
# each with the fields the tests require (Server, Date as an IMF-fixdate, the Content-Type, a
# Content-Length that matches the body), on HTTP/1.1 keep-alive (curl reuses the connection for
# both) and on HTTP/1.0; other methods get 405.

# check NAME HEADERS BODY WANT_BODY WANT_TYPE: the body is exactly WANT_BODY, and the head has
# the fields TechEmpower requires.
check() {
    printf '%s' "$4" >"$TMP/want"
    cmp -s "$3" "$TMP/want" || fail "$1: body is '$(cat "$3")', not '$4'"
    expect_eq "$1 Content-Type" "$(header "$2" Content-Type)" "$5"
    expect_eq "$1 Content-Length" "$(header "$2" Content-Length)" "$(printf '%s' "$4" | wc -c)"
    expect_eq "$1 Server" "$(header "$2" Server)" corio
    header "$2" Date |
        grep -Eq '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] [A-Z][a-z]{2} [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT$' ||
        fail "$1: Date '$(header "$2" Date)' is not an IMF-fixdate"
}

start_httpd
URL="http://127.0.0.1:$PORT"
PLAIN='Hello, World!'
JSON='{"message":"Hello, World!"}'

# Both on one keep-alive connection.
# --next: options per transfer (each its own -D), the connection shared.
W='%{http_code}:%{num_connects} '
out=$($CURL -o "$TMP/p.body" -D "$TMP/p.hdr" -w "$W" "$URL/plaintext" --next --noproxy 127.0.0.1 \
    --max-time 10 -o "$TMP/j.body" -D "$TMP/j.hdr" -w "$W" "$URL/json") ||
    fail "GET /plaintext and /json: curl failed"
expect_eq "GET /plaintext, /json: status and new connections" "$out" "200:1 200:0 "
check "GET /plaintext" "$TMP/p.hdr" "$TMP/p.body" "$PLAIN" text/plain
check "GET /json" "$TMP/j.hdr" "$TMP/j.body" "$JSON" application/json

# HTTP/1.0, as some benchmark clients still speak it.
out=$($CURL -0 -o "$TMP/j0.body" -D "$TMP/j0.hdr" -w '%{http_code}' "$URL/json") ||
    fail "HTTP/1.0 GET /json: curl failed"
expect_eq "HTTP/1.0 GET /json status" "$out" 200
check "HTTP/1.0 GET /json" "$TMP/j0.hdr" "$TMP/j0.body" "$JSON" application/json

# The routes are GET's: another method gets 405 with Allow.
out=$($CURL -X POST -d x -o /dev/null -D "$TMP/post.hdr" -w '%{http_code}' "$URL/json") ||
    fail "POST /json: curl failed"
expect_eq "POST /json status" "$out" 405
header "$TMP/post.hdr" Allow | grep -q GET || fail "POST /json: Allow does not name GET"

stop_httpd

# ---- the access log and max_requests ---------------------------------------------------------
# Three GETs on a keep-alive connection that may serve two: the second response closes it, so
# the third needs a connection of its own. Each request has its line in the log, written by the
# time the server has ended (the log hands its lines over once a second and at the end).
start_httpd --access-log "$TMP/access.log" --max-requests 2
URL="http://127.0.0.1:$PORT"
out=$($CURL -o /dev/null -o /dev/null -o /dev/null -w '%{http_code}:%{num_connects} ' \
    "$URL/" "$URL/x" "$URL/") || fail "max-requests GETs: curl failed"
expect_eq "max-requests statuses and new connections" "$out" "200:1 404:0 200:1 "
stop_httpd
expect_eq "access log lines" "$(wc -l <"$TMP/access.log" | tr -d ' ')" 3
grep -Eq '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} \+0000\] "GET /x HTTP/1\.1" 404 [0-9]+ [0-9]+\.[0-9]{6}$' \
    "$TMP/access.log" || fail "access log: no line for GET /x: $(cat "$TMP/access.log")"

echo "http_curl: all checks passed"
exit 0
