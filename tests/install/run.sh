#!/bin/sh
# The install test. Configures corio from <source-dir> in a fresh Release build (tests, benchmarks
# and tools off), installs it with `cmake --install --prefix` into a temporary prefix (not the one
# it was configured with, so that nothing may depend on the configure-time prefix), checks what
# was installed, then builds and runs consumers of the installed tree:
#   (a) consumer.c compiled with `pkg-config --cflags --libs corio`, linked to the shared library
#       and run with LD_LIBRARY_PATH; and linked fully static with `pkg-config --static`;
#   (b) tests/install/CMakeLists.txt: find_package(corio REQUIRED) through CMAKE_PREFIX_PATH,
#       one executable linking corio::shared and one linking corio::static;
#   (c) find_package(corio QUIET) with liburing out of pkg-config's sight: corio is reported as
#       not found, and the consumer's configuration does not abort;
#   (d) the installed header compiles and links as C++, as it promises.
# Usage: run.sh <source-dir> <scratch-dir>. Exits 0 when every step passed, 77 when everything
# built but io_uring is unavailable to run the consumers, and 1 at the first failure, naming the
# step. Its temporary directories live under <scratch-dir> and are removed on exit.
set -eu
. "$(dirname "$0")/lib.sh"
init_scratch test_install "$@"

cc=${CC:-cc}
cxx=${CXX:-c++}
skipped=0
version=unknown

# run_consumer <what> <command...>: 0 passes (and must print the header's version), 77 is
# remembered as a skip, anything else fails.
run_consumer() {
    what=$1
    shift
    echo "test_install: run $what"
    rc=0
    "$@" >"$log" 2>&1 || rc=$?
    sed 's/^/    /' "$log"
    case $rc in
    0) grep -q "^corio $version: nop and sleep ok" "$log" ||
        fail "$what: no success line for version $version" ;;
    77) skipped=1 ;;
    *) fail "$what exited with $rc" ;;
    esac
}

# needs_libcorio <binary> yes|no: whether it is dynamically linked to libcorio.so.0.
needs_libcorio() {
    if readelf -d "$1" 2>/dev/null | grep -q 'NEEDED.*\[libcorio\.so\.0\]'; then
        [ "$2" = yes ] || fail "$1 is dynamically linked to libcorio"
    else
        [ "$2" = no ] || fail "$1 is not dynamically linked to libcorio.so.0"
    fi
}

# resolves_to <binary> <libdir> [env...]: the dynamic loader finds libcorio.so.0 in <libdir>.
resolves_to() {
    bin=$1
    dir=$2
    shift 2
    got=$(env "$@" ldd "$bin" | sed -n 's/^[[:space:]]*libcorio\.so\.0 => \([^ ]*\).*/\1/p')
    [ "$got" = "$dir/libcorio.so.0" ] ||
        fail "$bin loads libcorio.so.0 from '${got:-nowhere}', not from $dir"
}

build=$work/build
prefix=$work/prefix

# ---- build and install ---------------------------------------------------------------------
step "configure corio (Release, no tests, benchmarks or tools)" \
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCORIO_BUILD_TESTS=OFF \
    -DCORIO_BUILD_BENCHMARKS=OFF -DCORIO_BUILD_TOOLS=OFF \
    -DCMAKE_INSTALL_PREFIX="$work/configured-prefix"
step "build corio" cmake --build "$build" --parallel "$jobs"
step "install into a temporary prefix with cmake --install --prefix" \
    cmake --install "$build" --prefix "$prefix"
[ ! -e "$work/configured-prefix" ] || fail "cmake --install --prefix also wrote to the configured prefix"

for f in include/corio.h include/corio/version.h; do
    [ -f "$prefix/$f" ] || fail "$f was not installed"
done
pc=$(find "$prefix" -name corio.pc)
[ -n "$pc" ] || fail "corio.pc was not installed"
config=$(find "$prefix" -name corioConfig.cmake)
[ -n "$config" ] || fail "corioConfig.cmake was not installed"
[ -f "$(dirname "$config")/corioConfigVersion.cmake" ] || fail "corioConfigVersion.cmake was not installed"
version=$(sed -n 's/^#define CORIO_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/corio/version.h")
[ -n "$version" ] || fail "no CORIO_VERSION_STRING in the installed corio/version.h"

# ---- (a) pkg-config ------------------------------------------------------------------------
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
step "pkg-config finds corio.pc" pkg-config --exists --print-errors corio
pcver=$(pkg-config --modversion corio)
[ "$pcver" = "$version" ] || fail "corio.pc has version $pcver, corio/version.h has $version"
pcprefix=$(pkg-config --variable=prefix corio)
[ "$pcprefix" = "$prefix" ] || fail "corio.pc has prefix $pcprefix, not the install prefix $prefix"
libdir=$(pkg-config --variable=libdir corio)
[ -f "$libdir/libcorio.a" ] || fail "no libcorio.a in corio.pc's libdir $libdir"
[ -e "$libdir/libcorio.so" ] && [ -e "$libdir/libcorio.so.0" ] ||
    fail "no libcorio.so and libcorio.so.0 in corio.pc's libdir $libdir"
cflags=$(pkg-config --cflags corio)
libs=$(pkg-config --libs corio)
static_libs=$(pkg-config --static --libs corio)
echo "test_install: pkg-config: cflags '$cflags', libs '$libs', static libs '$static_libs'"

# $cflags and $libs are word-split on purpose: they are lists of flags.
# shellcheck disable=SC2086
step "pkg-config: compile consumer.c and link it to the shared library" \
    $cc -std=c11 -Wall -Wextra -Werror -o "$work/pc_shared" "$src/tests/install/consumer.c" \
    $cflags $libs
needs_libcorio "$work/pc_shared" yes
resolves_to "$work/pc_shared" "$libdir" LD_LIBRARY_PATH="$libdir"
run_consumer "the pkg-config shared consumer" env LD_LIBRARY_PATH="$libdir" "$work/pc_shared"

# shellcheck disable=SC2086
step "pkg-config --static: link consumer.c statically" \
    $cc -static -std=c11 -Wall -Wextra -Werror -o "$work/pc_static" \
    "$src/tests/install/consumer.c" $cflags $static_libs
needs_libcorio "$work/pc_static" no
nm "$work/pc_static" | grep -q ' T corio_loop_new$' || fail "pc_static does not contain corio"
run_consumer "the pkg-config static consumer" "$work/pc_static"

# ---- (b) the CMake package -----------------------------------------------------------------
# A consumer of the package needs no PKG_CONFIG_PATH for corio itself.
unset PKG_CONFIG_PATH
step "cmake: configure a find_package(corio REQUIRED) consumer" \
    cmake -S "$src/tests/install" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix"
grep -q "consumer: corio $version from $prefix/" "$log" ||
    fail "find_package(corio) did not find version $version under $prefix"
step "cmake: build the consumers of corio::shared and corio::static" \
    cmake --build "$work/consumer" --parallel "$jobs"
needs_libcorio "$work/consumer/consumer_shared" yes
needs_libcorio "$work/consumer/consumer_static" no
# No LD_LIBRARY_PATH: CMake's build RPATH names the imported library's directory.
resolves_to "$work/consumer/consumer_shared" "$libdir"
run_consumer "consumer_shared (corio::shared)" "$work/consumer/consumer_shared"
run_consumer "consumer_static (corio::static)" "$work/consumer/consumer_static"

# ---- (c) a QUIET find without liburing -----------------------------------------------------
mkdir "$work/empty"
step "cmake: find_package(corio QUIET) with no liburing.pc in sight" \
    env PKG_CONFIG_LIBDIR="$work/empty" PKG_CONFIG_PATH="$work/empty" \
    cmake -S "$src/tests/install" -B "$work/consumer-find" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCONSUMER_FIND_ONLY=ON
grep -Eq "consumer: corio_FOUND=(0|FALSE)$" "$log" ||
    fail "find_package(corio QUIET) without liburing did not report corio as not found"

# ---- (d) C++ -------------------------------------------------------------------------------
# The public header promises to compile as C++ (shared/STYLE.md, point 6): check the installed
# one with the system's C++ compiler, as a C++ consumer would use it.
if command -v "$cxx" >/dev/null 2>&1; then
    printf '#include <corio.h>\nint main() { return corio_now() > 0 ? 0 : 1; }\n' >"$work/cxx.cc"
    # shellcheck disable=SC2086
    step "the installed corio.h compiles and links as C++ ($cxx)" \
        "$cxx" -Wall -Wextra -Werror -o "$work/cxx" "$work/cxx.cc" $cflags $libs
    step "run the C++ program" env LD_LIBRARY_PATH="$libdir" "$work/cxx"
fi

if [ "$skipped" -ne 0 ]; then
    echo "test_install: SKIP: everything built and installed, but io_uring is unavailable here"
    exit 77
fi
echo "test_install: all steps passed"
