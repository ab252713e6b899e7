#!/bin/sh
# The epoll baselines on two threads (--threads 2): epoll_echo driven by corio-load in echo mode
# (every echoed byte verified) and epoll_http by corio-load in HTTP mode, 32 connections each.
# SO_REUSEPORT spreads them by a hash of the 4-tuple, so each thread must have accepted some (one
# getting none has odds of 2^-31). Each server must stop on SIGTERM with status 0 within 2 s and
# print a "thread i: conns=..." line per thread, then the "conns=..." line whose figures are the
# sums of the threads'; its bytes (echo) or requests (HTTP) must match what the client counted,
# which leaves out the last few milliseconds of the run, those after its measured window, when it
# stops its connections (at most 10% more, plus one message in flight on each). epoll_echo on
# one thread (the default) must print the one line and no thread line, as it always has.
#
# usage: threads_baselines.sh <epoll_echo> <epoll_http> <corio-load> <scratch-dir>
# Exits 0 on success and 1 with a message on the first failure.
set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 <epoll_echo> <epoll_http> <corio-load> <scratch-dir>" >&2
    exit 2
fi
ECHO=$1
HTTP=$2
LOAD=$3
TMP=$4
CONNS=32
SIZE=256

for f in "$ECHO" "$HTTP" "$LOAD"; do
    [ -x "$f" ] || { echo "FAIL: $f is not an executable" >&2; exit 1; }
done

. "$(dirname "$0")/../../tests/server_lib.sh"

# json_num FILE KEY: the number after "KEY": in corio-load's one-line JSON.
json_num() {
    sed -n "s/.*\"$2\": \([0-9][0-9]*\).*/\1/p" "$1"
}

# counter FILE PREFIX KEY: KEY's value in the line of FILE that starts with PREFIX "conns=".
counter() {
    awk -v p="$2conns=" -v k="$3" 'index($0, p) == 1 {
        for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$1"
}

# check_threads NAME KEYS: NAME.err has a line per thread (2), each thread accepted and served,
# and the summed line's KEYS (conns among them) are the sums of the threads'.
check_threads() {
    err=$TMP/$1.err
    n=$(grep -c '^thread [0-9]*: conns=' "$err")
    [ "$n" -eq 2 ] || fail "$1: $n thread lines, not 2"
    [ "$(grep -c '^conns=' "$err")" -eq 1 ] || fail "$1: not one summed conns= line"
    for t in 0 1; do
        c=$(counter "$err" "thread $t: " conns)
        m=$(counter "$err" "thread $t: " msgs)
        [ "${c:-0}" -gt 0 ] && [ "${m:-0}" -gt 0 ] ||
            fail "$1: thread $t accepted ${c:-no} connections and read ${m:-no} messages"
    done
    for k in $2; do
        a=$(counter "$err" "thread 0: " "$k")
        b=$(counter "$err" "thread 1: " "$k")
        s=$(counter "$err" "" "$k")
        [ -n "$s" ] && [ "$s" -eq $((a + b)) ] || fail "$1: $k=$s is not thread 0's $a + thread 1's $b"
    done
    [ "$(counter "$err" "" conns)" -eq $CONNS ] || fail "$1: conns is not $CONNS"
}

# within NAME WHAT VALUE LOW HIGH: fails unless LOW <= VALUE <= HIGH.
within() {
    [ -n "$3" ] && [ "$3" -ge "$4" ] && [ "$3" -le "$5" ] ||
        fail "$1: $2 is ${3:-missing}, not in [$4, $5]"
}

rm -rf "$TMP"
mkdir -p "$TMP" || fail "cannot create $TMP"

# epoll_echo --threads 2: the bytes the server read (and echoed) are the client's verified
# messages (no warm-up: all are counted), plus those after its window (see the top).
lib_start epoll_echo "$ECHO" --host 127.0.0.1 --port 0 --threads 2
"$LOAD" --mode echo --host 127.0.0.1 --port "$PORT" -c $CONNS -s $SIZE -w 0 -d 1 -q \
    --json "$TMP/echo.json" 2>"$TMP/load.err" || fail "corio-load against epoll_echo --threads 2"
grep -q '"verify_errors": 0,' "$TMP/echo.json" || fail "corio-load saw echoed bytes differ"
grep -q '"errors": 0,' "$TMP/echo.json" || fail "corio-load saw errors"
lib_stop epoll_echo clean
check_threads epoll_echo "conns msgs bytes"
msgs=$(json_num "$TMP/echo.json" messages)
within epoll_echo "bytes read" "$(counter "$TMP/epoll_echo.err" "" bytes)" $((msgs * SIZE)) \
    $(((msgs * 11 / 10 + CONNS) * SIZE))

# epoll_http --threads 2: every request answered, counted once.
lib_start epoll_http "$HTTP" --host 127.0.0.1 --port 0 --threads 2
"$LOAD" --mode http --host 127.0.0.1 --port "$PORT" -c $CONNS -w 0 -d 1 -q \
    --json "$TMP/http.json" 2>"$TMP/load.err" || fail "corio-load against epoll_http --threads 2"
grep -q '"errors": 0,' "$TMP/http.json" || fail "corio-load saw HTTP errors"
lib_stop epoll_http clean
check_threads epoll_http "conns msgs bytes reqs"
reqs=$(json_num "$TMP/http.json" messages)
within epoll_http reqs "$(counter "$TMP/epoll_http.err" "" reqs)" "$reqs" $((reqs * 11 / 10 + CONNS))

# epoll_echo on one thread: the one line, as before.
lib_start epoll_echo1 "$ECHO" --host 127.0.0.1 --port 0
"$LOAD" --mode echo --host 127.0.0.1 --port "$PORT" -c 4 -s $SIZE -w 0 -d 0.3 -q \
    --json "$TMP/echo1.json" 2>"$TMP/load.err" || fail "corio-load against epoll_echo"
lib_stop epoll_echo1 clean
[ "$(grep -c 'conns=' "$TMP/epoll_echo1.err")" -eq 1 ] || fail "epoll_echo: not one conns= line"
[ "$(counter "$TMP/epoll_echo1.err" "" conns)" -eq 4 ] || fail "epoll_echo: conns is not 4"

echo "threads_baselines: all checks passed"
exit 0
