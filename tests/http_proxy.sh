#!/bin/sh
# Drives the reverse-proxy example (tools/examples/proxy.c) in front of corio-httpd serving files,
# under load, with every byte verified: files of several sizes fetched through the proxy by many
# curl processes at once, each copy compared with the file by its SHA-256; HEAD, 404 and a
# conditional GET passed through; then corio-load over keep-alive connections to the proxy with
# the body length of every response checked. Both servers must stop on SIGTERM with status 0.
#
# usage: http_proxy.sh <corio-httpd> <example-proxy> <corio-load> <scratch-dir>
# Exits 0 on success, 77 when curl or sha256sum is missing, and 1 with a message on a failure.
set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 <corio-httpd> <example-proxy> <corio-load> <scratch-dir>" >&2
    exit 2
fi
HTTPD=$1
PROXY=$2
LOAD=$3
TMP=$4

for tool in curl sha256sum xargs; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool not found"
        exit 77
    fi
done
for bin in "$HTTPD" "$PROXY" "$LOAD"; do
    [ -x "$bin" ] || { echo "FAIL: $bin is not an executable" >&2; exit 1; }
done

. "$(dirname "$0")/server_lib.sh"

# Two servers run at once: the upstream's pid is kept aside while the proxy's is PID, and the
# clean-up stops both.
UPSTREAM_PID=
trap 'lib_cleanup; [ -n "$UPSTREAM_PID" ] && kill -KILL "$UPSTREAM_PID" 2>/dev/null' EXIT

CURL="curl -sS --noproxy 127.0.0.1 --max-time 20"

rm -rf "$TMP"
mkdir -p "$TMP/www" "$TMP/got" || fail "cannot create $TMP"
# Sizes around the buffers of the server, the client and the proxy (16 KiB, 64 KiB), an empty
# file, and one of several MiB.
SIZES="0 1 1000 16383 16385 65536 65537 300000 3000007"
for n in $SIZES; do
    head -c "$n" /dev/urandom >"$TMP/www/f$n" || fail "cannot write f$n"
done
(cd "$TMP/www" && sha256sum f*) >"$TMP/want.sum" || fail "sha256sum"

lib_start httpd "$HTTPD" --host 127.0.0.1 --port 0 --root "$TMP/www"
UPSTREAM_PID=$PID
UPSTREAM_PORT=$PORT
PID=
lib_start proxy "$PROXY" 0 127.0.0.1 "$UPSTREAM_PORT"
URL="http://127.0.0.1:$PORT"

# ---- many clients at once, every byte checked --------------------------------------------------
# 10 copies of each file, fetched by 16 curl processes at a time; each writes its copy, and the
# copies must all have the file's checksum.
i=0
: >"$TMP/urls"
while [ $i -lt 10 ]; do
    for n in $SIZES; do
        echo "$URL/f$n -o $TMP/got/f$n.$i" >>"$TMP/urls"
    done
    i=$((i + 1))
done
start=$(date +%s)
# shellcheck disable=SC2086
xargs -P 16 -L 1 $CURL --fail <"$TMP/urls" 2>"$TMP/curl.err" || fail "a fetch through the proxy failed"
echo "fetched $(wc -l <"$TMP/urls") files through the proxy in $(($(date +%s) - start)) s"
for f in "$TMP"/got/*; do
    name=$(basename "$f")
    want=$(sed -n "s/^\([0-9a-f]*\)  ${name%.*}\$/\1/p" "$TMP/want.sum")
    got=$(sha256sum <"$f" | cut -d' ' -f1)
    [ -n "$want" ] && [ "$want" = "$got" ] || fail "$name: checksum $got, expected $want"
done
echo "all $(ls "$TMP/got" | wc -l) copies match"

# ---- what passes through -------------------------------------------------------------------------
# HEAD: the length and no body; a 404 as the upstream answers it; a conditional GET's 304.
$CURL -I "$URL/f65536" >"$TMP/head.txt" || fail "HEAD through the proxy"
grep -qi '^Content-Length: 65536' "$TMP/head.txt" || fail "HEAD: no Content-Length 65536"
grep -q '^HTTP/1.1 200' "$TMP/head.txt" || fail "HEAD: not 200"
code=$($CURL -o /dev/null -w '%{http_code}' "$URL/missing")
[ "$code" = 404 ] || fail "missing file: status $code, expected 404"
lm=$(sed -n 's/^Last-Modified: *//Ip' "$TMP/head.txt" | tr -d '\r')
[ -n "$lm" ] || fail "HEAD: no Last-Modified passed through"
code=$($CURL -o /dev/null -w '%{http_code}' -H "If-Modified-Since: $lm" "$URL/f1000")
[ "$code" = 304 ] || fail "conditional GET: status $code, expected 304"

# ---- under load: keep-alive connections, every response's length checked -----------------------
"$LOAD" --mode http --port "$PORT" --path /f16385 --expect-body 16385 -c 32 -d 2 -w 0.5 -q \
    --json "$TMP/load.json" >"$TMP/load.log" 2>&1 || fail "corio-load through the proxy failed"
# Errors of any kind (a status other than 2xx, a connection lost) and verify errors (a framing or
# length wrong) must both be none; corio-load itself fails when no response completed.
for key in errors verify_errors; do
    grep -q "\"$key\": 0," "$TMP/load.json" || fail "corio-load counted $key: $(cat "$TMP/load.json")"
done
echo "corio-load through the proxy: $(tr -d '\n' <"$TMP/load.json")"

# A last check that the proxy still serves after the load.
$CURL "$URL/f300000" | sha256sum | grep -q "$(sed -n 's/  f300000$//p' "$TMP/want.sum")" ||
    fail "f300000 after the load"

lib_stop proxy clean
PID=$UPSTREAM_PID
UPSTREAM_PID=
lib_stop corio-httpd clean
echo "PASS"
