#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# The library builds with liburing alone. Configures <source-dir> with its default options in a
# fresh RelWithDebInfo build where pkg-config sees only liburing.pc (a directory holding a copy of
# it) and find_package(benchmark) is disabled, so that cmocka and google-benchmark are invisible
# however they are installed here. Checks that the configuration says, one line each, why the
# tests and the micro benchmarks are left out; that the build succeeds and produces the four
# libraries (and the tools and macro benchmarks, which need nothing more); and that no test or
# micro benchmark was built.
# Usage: no_deps.sh <source-dir> <scratch-dir>. Exits 0 when every check passed and 1 at the first
# failure, naming it. Its temporary directory lives under <scratch-dir> and is removed on exit.
set -eu
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
init_scratch test_no_deps "$@"
build=$work/build

pcdir=$(pkg-config --variable=pcfiledir liburing) || fail "pkg-config does not find liburing.pc"
mkdir "$work/pc"
cp "$pcdir/liburing.pc" "$work/pc/"
# PKG_CONFIG_LIBDIR replaces pkg-config's default search path; PKG_CONFIG_PATH would add to it.
step "configure with only liburing.pc in pkg-config's sight, google-benchmark disabled" \
    env PKG_CONFIG_LIBDIR="$work/pc" PKG_CONFIG_PATH= \
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
grep '^-- corio:' "$log" | sed 's/^/    /'
grep -q '^-- corio: tests skipped: cmocka not found' "$log" ||
    fail "the configuration does not say that the tests were left out for want of cmocka"
grep -q '^-- corio: micro benchmarks skipped: google-benchmark not found' "$log" ||
    fail "the configuration does not say why the micro benchmarks were left out"

step "build" cmake --build "$build" --parallel "$jobs"
for f in libcorio.a libcorio.so.0 libcorio_http.a libcorio_http.so.0 tools/corio-echo \
    tools/corio-httpd benchmarks/epoll_echo; do
    [ -e "$build/$f" ] || fail "$f was not built"
done
[ ! -e "$build/tests" ] || fail "a tests/ folder was generated without cmocka"
for b in "$build"/benchmarks/bm_*; do
    [ ! -e "$b" ] || fail "$b was built without google-benchmark"
done
echo "test_no_deps: the library, the tools and the macro benchmarks built with liburing alone"
