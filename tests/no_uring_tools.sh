#!/bin/sh
# The tools where io_uring is refused for real: each runs under no_uring_exec, which installs a
# seccomp filter that fails io_uring_setup (EPERM as a container's profile does, ENOSYS as a
# kernel without io_uring does) and then execs it. corio-probe must name the epoll backend and the
# cause; corio-httpd must pass the whole curl script (http_curl.sh: files compared byte for byte,
# HEAD, Range, 304, keep-alive, the hello server); corio-echo, driven by corio-load (both on
# epoll), must pass the load generator's byte verification (load_corrupt.sh). The servers must say
# on stderr that they run on epoll and why.
#
# usage: no_uring_tools.sh <no_uring_exec> <corio-probe> <corio-httpd> <corio-echo> <corio-load>
#                          <corrupt_echo> <scratch-dir>
# Exits 0 on success, 77 when curl is missing, and 1 with a message on the first failure.
set -u

if [ $# -ne 7 ]; then
    echo "usage: $0 <no_uring_exec> <corio-probe> <corio-httpd> <corio-echo> <corio-load>" \
        "<corrupt_echo> <scratch-dir>" >&2
    exit 2
fi
NOURING=$1
PROBE=$2
HTTPD=$3
ECHO=$4
LOAD=$5
CORRUPT=$6
TMP=$7
HERE=$(cd "$(dirname "$0")" && pwd)

if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl not found (apt-get install curl)"
    exit 77
fi
for f in "$NOURING" "$PROBE" "$HTTPD" "$ECHO" "$LOAD" "$CORRUPT"; do
    [ -x "$f" ] || { echo "FAIL: $f is not an executable" >&2; exit 1; }
done

. "$HERE/server_lib.sh"

# The environment's choice would hide the fallback: the filter alone must choose epoll.
unset CORIO_BACKEND
rm -rf "$TMP"
mkdir -p "$TMP/bin" || fail "cannot create $TMP"

# wrap NAME ERRNO TOOL [log]: writes $TMP/bin/NAME, which runs TOOL under the filter; with "log",
# its stderr is kept in $TMP/NAME.log (the scripts below remove their own scratch directories),
# else it goes where the script sends it.
wrap() {
    redirect=
    [ "${4:-}" = log ] && redirect="2>>\"$TMP/$1.log\""
    cat >"$TMP/bin/$1" <<WRAP
#!/bin/sh
exec "$NOURING" $2 "$3" "\$@" $redirect
WRAP
    chmod +x "$TMP/bin/$1"
}

# ---- corio-probe names the backend and the cause -----------------------------------------------
for err in EPERM ENOSYS; do
    "$NOURING" $err "$PROBE" >"$TMP/probe.out" 2>"$TMP/probe.log"
    rc=$?
    [ $rc -eq 0 ] || fail "corio-probe under $err exited with $rc"
    grep -q "^backend: epoll: io_uring_setup failed with $err" "$TMP/probe.out" ||
        fail "corio-probe under $err: no epoll backend line naming $err: $(cat "$TMP/probe.out")"
    grep -q "^io_uring: unavailable: io_uring_setup failed with $err" "$TMP/probe.out" ||
        fail "corio-probe under $err: does not say io_uring is unavailable"
done

# ---- corio-httpd: the whole curl script, on epoll ----------------------------------------------
wrap httpd EPERM "$HTTPD" log
sh "$HERE/http_curl.sh" "$TMP/bin/httpd" "$TMP/curl" || fail "http_curl.sh against corio-httpd on epoll"
grep -q "^corio-httpd: backend epoll: io_uring_setup failed with EPERM" "$TMP/httpd.log" ||
    fail "corio-httpd did not say it serves on epoll, and why"

# ---- corio-echo and corio-load: byte verification, and a flipped byte caught, on epoll ----------
for err in EPERM ENOSYS; do
    rm -f "$TMP/echo.log"
    wrap echo $err "$ECHO" log
    wrap load $err "$LOAD"
    wrap corrupt $err "$CORRUPT"
    sh "$HERE/load_corrupt.sh" "$TMP/bin/load" "$TMP/bin/echo" "$TMP/bin/corrupt" "$TMP/load" ||
        fail "load_corrupt.sh on epoll ($err)"
    grep -q "^corio-echo: backend epoll: io_uring_setup failed with $err" "$TMP/echo.log" ||
        fail "corio-echo did not say it serves on epoll ($err), and why"
done

echo "no_uring_tools: all checks passed"
exit 0
