#!/bin/sh
# The servers on two loops (--threads 2): corio-echo driven by corio-load (every byte verified)
# and corio-httpd by corio-load in HTTP mode and by curl; both loops must have served (with 32
# connections spread by SO_REUSEPORT's hash, one loop getting none has odds of 2^-31), and each
# server must stop on SIGTERM with status 0 within 2 s. Then the graceful stop: a client
# mid-exchange at SIGTERM completes, the server ends with 0 after it, and a second signal ends a
# drain at once.
#
# usage: threads_tools.sh <corio-echo> <corio-httpd> <corio-load> <scratch-dir>
# Exits 0 on success, 77 when curl or python3 is missing, and 1 with a message on the first
# failure.
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

# echo_served WHAT [ARGS]: corio-echo on two loops with ARGS, 32 connections of corio-load with
# every byte verified, a clean stop, both loops served, all 32 connections counted.
echo_served() {
    what=$1
    shift
    serve corio-echo "$ECHO" "$@"
    "$LOAD" --mode echo --host 127.0.0.1 --port "$PORT" -c 32 -s 256 -w 0.2 -d 0.7 -q \
        --json "$TMP/echo.json" 2>"$TMP/load.err" || fail "corio-load against corio-echo $what"
    grep -q '"verify_errors": 0' "$TMP/echo.json" || fail "corio-load saw verify errors ($what)"
    lib_stop corio-echo clean
    both_served corio-echo
    grep -q '^corio-echo: conns=32$' "$TMP/corio-echo.err" || fail "corio-echo $what: not 32 connections"
}

# http_served WHAT [ARGS]: corio-httpd on two loops with ARGS answers curl and 32 connections of
# corio-load without an error, stops cleanly, and both loops served.
http_served() {
    what=$1
    shift
    serve corio-httpd "$HTTPD" "$@"
    body=$(curl -sS --noproxy 127.0.0.1 --max-time 10 "http://127.0.0.1:$PORT/") || fail "curl failed"
    [ "$body" = "Hello, World!" ] || fail "GET / answered '$body' ($what)"
    "$LOAD" --mode http --host 127.0.0.1 --port "$PORT" -c 32 -w 0.2 -d 0.7 -q \
        --json "$TMP/http.json" 2>"$TMP/load.err" || fail "corio-load against corio-httpd $what"
    grep -q '"errors": 0' "$TMP/http.json" || fail "corio-load saw HTTP errors ($what)"
    lib_stop corio-httpd clean
    both_served corio-httpd
}

echo_served "--threads 2"
http_served "--threads 2"

# One acceptor handing the connections over (--balance round-robin, least): loop 0 accepts
# alone and both loops serve, bytes verified; with least, each loop's count of open connections
# decides.
echo_served "--balance round-robin" --balance round-robin
echo_served "--balance least" --balance least
http_served "--balance least" --balance least

# The graceful stop on two loops: a client in the middle of an exchange when SIGTERM comes
# finishes it, and the server then ends with status 0; a second signal ends it at once. Python
# drives the client (bytes verified, the exchange held open across the signal).
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 not found (apt-get install python3): the graceful stop is untested"
    exit 77
fi
cat >"$TMP/client.py" <<'PY'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
request = bytes(range(256)) * 12 if mode == "echo" else b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=10)
half = len(request) // 2
s.sendall(request[:half])
open(sys.argv[3], "w").close()  # mid-exchange: the script sends the signal now
time.sleep(float(sys.argv[4]))
s.sendall(request[half:])
got = b""
while True:
    if mode == "echo" and len(got) >= len(request):
        break
    b = s.recv(65536)
    if not b:
        break
    got += b
if mode == "echo":
    ok = got == request
else:
    ok = got.startswith(b"HTTP/1.1 200") and b"Connection: close" in got and \
        got.endswith(b"Hello, World!")
print("ok" if ok else "bad: %r" % got[:200])
PY

# wait_file FILE MESSAGE: waits 5 s at most for the client to create FILE (python may take a
# while to start), else fails with MESSAGE; then a moment for the bytes it sent to arrive.
wait_file() {
    i=0
    while [ ! -e "$1" ]; do
        [ $i -ge 100 ] && fail "$2"
        sleep 0.05
        i=$((i + 1))
    done
    sleep 0.1
}

# drain NAME MODE CMD: the server mid-exchange gets SIGTERM; the client completes after 0.5 s; the
# server must then exit with 0 (not before the client is done, not at the 30 s drain timeout).
drain() {
    name=$1
    lib_start "$name" "$3" --host 127.0.0.1 --port 0 --threads 2 --drain-timeout 30
    rm -f "$TMP/mid"
    python3 "$TMP/client.py" "$PORT" "$2" "$TMP/mid" 0.5 >"$TMP/client.out" 2>&1 &
    cpid=$!
    wait_file "$TMP/mid" "$name: the client never got mid-exchange"
    kill -TERM "$PID"
    sleep 0.2
    kill -0 "$PID" 2>/dev/null || fail "$name ended before its client's exchange was done"
    wait "$cpid"
    grep -q '^ok$' "$TMP/client.out" || fail "$name: client: $(cat "$TMP/client.out")"
    lib_wait_exit 30 "$name did not end within 3 s of its last exchange"
    [ "$rc" -eq 0 ] || fail "$name ended with status $rc after a drain"
    PID=
}

# twice NAME: a client holds a connection open (idle); SIGTERM starts a 30 s drain, and a second
# SIGTERM ends the server at once.
twice() {
    name=$1
    lib_start "$name" "$2" --host 127.0.0.1 --port 0 --threads 2 --drain-timeout 30
    rm -f "$TMP/held"
    python3 -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").close()
time.sleep(10)' "$PORT" "$TMP/held" &
    cpid=$!
    wait_file "$TMP/held" "$name: the client never connected"
    kill -TERM "$PID"
    sleep 0.3
    kill -0 "$PID" 2>/dev/null || fail "$name ended on the first signal with a client connected"
    lib_stop "$name" clean
    kill "$cpid" 2>/dev/null
    wait "$cpid" 2>/dev/null
}

drain corio-echo echo "$ECHO"
drain corio-httpd http "$HTTPD"
twice corio-echo "$ECHO"
twice corio-httpd "$HTTPD"

echo "threads_tools: all checks passed"
exit 0
