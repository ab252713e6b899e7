#!/bin/sh
# Pipelining in the HTTP servers the benchmarks compare: pipeline_check sends 16 requests in one
# write (GET /plaintext and GET /json in turn) and checks 16 responses in order, with the bytes
# TechEmpower's tests want. epoll_http must have read them in one recv() and answered all 16
# (its "msgs=1 ... reqs=16" at exit); corio-httpd must have answered 16 (--stats). Each server
# must stop on SIGTERM with status 0 within 2 s.
#
# usage: http_pipeline.sh <pipeline_check> <epoll_http> <corio-httpd> <scratch-dir>
# Exits 0 on success and 1 with a message on the first failure.
set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 <pipeline_check> <epoll_http> <corio-httpd> <scratch-dir>" >&2
    exit 2
fi
CHECK=$1
EPOLL=$2
HTTPD=$3
TMP=$4
N=16

for f in "$CHECK" "$EPOLL" "$HTTPD"; do
    [ -x "$f" ] || { echo "FAIL: $f is not an executable" >&2; exit 1; }
done

. "$(dirname "$0")/../../tests/server_lib.sh"

rm -rf "$TMP"
mkdir -p "$TMP" || { echo "FAIL: cannot create $TMP" >&2; exit 1; }

lib_start epoll_http "$EPOLL" --port 0
"$CHECK" "$PORT" "$N" >"$TMP/check.out" 2>"$TMP/check.err" ||
    fail "epoll_http: pipeline_check failed"
lib_stop epoll_http clean
line=$(grep '^conns=' "$TMP/epoll_http.err")
case $line in
*" msgs=1 "*"reqs=$N"*) ;;
*) fail "epoll_http: expected one read and $N responses, got '$line'" ;;
esac

lib_start httpd "$HTTPD" --host 127.0.0.1 --port 0 --stats
"$CHECK" "$PORT" "$N" >"$TMP/check.out" 2>"$TMP/check.err" ||
    fail "corio-httpd: pipeline_check failed"
lib_stop corio-httpd clean
grep -q " requests=$N " "$TMP/httpd.err" || fail "corio-httpd: did not count $N requests"

echo "http_pipeline: $N pipelined requests answered in order by epoll_http and corio-httpd"
exit 0
