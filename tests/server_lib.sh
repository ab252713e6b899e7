# Shell pieces the script tests share (sourced, not run): a scratch directory $TMP, one server at a
# time in $PID, started and stopped the way every corio tool is (it prints "ready port=N" when it
# listens, and exits 0 on SIGTERM). The sourcing script sets TMP first.

PID=
lib_cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap lib_cleanup EXIT
trap 'exit 1' INT TERM HUP

# fail MESSAGE: prints it and every non-empty *.err and *.log of $TMP, and exits 1.
fail() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.err "$TMP"/*.log; do
        if [ -s "$f" ]; then
            echo "--- $(basename "$f"):" >&2
            cat "$f" >&2
        fi
    done
    exit 1
}

# lib_start NAME CMD...: runs CMD with its output in $TMP/NAME.out and NAME.err, and sets PID and
# PORT from its ready line (5 s at most).
lib_start() {
    lib_name=$1
    shift
    : >"$TMP/$lib_name.out"
    : >"$TMP/$lib_name.err"
    "$@" >"$TMP/$lib_name.out" 2>"$TMP/$lib_name.err" &
    PID=$!
    PORT=
    i=0
    while [ $i -lt 100 ]; do
        PORT=$(sed -n 's/^ready port=\([0-9][0-9]*\)$/\1/p' "$TMP/$lib_name.out")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || fail "$lib_name exited before it was ready"
        sleep 0.05
        i=$((i + 1))
    done
    fail "$lib_name printed no ready line in 5 s"
}

# lib_wait_exit TENTHS MESSAGE: waits TENTHS tenths of a second at most for the server (PID) to
# end, else fails with MESSAGE; then reaps it, its status in rc.
lib_wait_exit() {
    i=0
    while kill -0 "$PID" 2>/dev/null; do
        [ $i -ge "$1" ] && fail "$2"
        sleep 0.1
        i=$((i + 1))
    done
    wait "$PID"
    rc=$?
}

# lib_stop NAME [clean]: SIGTERM; the server must exit within 2 s, and with "clean" with status 0.
lib_stop() {
    kill -TERM "$PID" 2>/dev/null
    lib_wait_exit 20 "$1 did not exit within 2 s of SIGTERM"
    PID=
    if [ "${2:-}" = clean ] && [ "$rc" -ne 0 ]; then
        fail "$1 exited with status $rc after SIGTERM"
    fi
}
