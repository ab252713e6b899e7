#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# The install test. For each of Debug, Release and RelWithDebInfo: configures corio from
# <source-dir> in a fresh build (tests and benchmarks off; the tools on in Release only, to check
# the installed ones), installs it with `cmake --install --prefix` into a temporary prefix (not the
# one it was configured with, so that nothing may depend on the configure-time prefix), checks
# what was installed, then builds and runs consumers of the installed tree, compiled with a strict
# consumer's flags (C: -std=c11 -pedantic -Wall -Wextra -Werror; C++: -std=c++17 -Wall -Wextra
# -Werror):
#   (a) pkg-config: consumer.c with `corio`, and with its HTTP part with `corio-http`, each linked
#       to the shared libraries (run with LD_LIBRARY_PATH) and fully static (`--static`);
#       consumer.cc (C++, both headers) with `corio-http`;
#   (b) tests/install/CMakeLists.txt: find_package(corio REQUIRED COMPONENTS http) through
#       CMAKE_PREFIX_PATH, executables linking corio::shared, corio::static, corio::http_shared
#       and corio::http_static (C and C++), run with no LD_LIBRARY_PATH (CMake's build RPATH);
#   (c) once: find_package(corio QUIET) with liburing out of pkg-config's sight: corio is
#       reported as not found, and the consumer's configuration does not abort.
# The testing variant is consumed the same ways: consumer.c with `corio-testing` (shared and
# static) and with its HTTP part with `corio-http-testing`, and the targets corio::testing_shared,
# corio::testing_static and corio::http_testing_static; each must link libcorio-testing (not
# libcorio) and, run under CORIO_FAULTS, print the seed of its faults. In the Release install,
# nm finds no corio__fault symbol in libcorio and the seam's entry point in libcorio-testing.
# The installed tools link libcorio statically, so they run from any prefix with no RUNPATH and
# no LD_LIBRARY_PATH: checked in the Release install.
# Usage: run.sh <source-dir> <scratch-dir>. Exits 0 when every step passed, 77 when everything
# built but io_uring is unavailable to run the consumers, and 1 at the first failure, naming the
# step. Its temporary directories live under <scratch-dir> and are removed on exit.
set -eu
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
init_scratch test_install "$@"

cc=${CC:-cc}
cxx=${CXX:-c++}
cflags_strict="-std=c11 -pedantic -Wall -Wextra -Werror"
cxxflags_strict="-std=c++17 -Wall -Wextra -Werror"
skipped=0
version=unknown

# run_consumer <what> <success line> <command...>: 0 passes (and must print
# "corio <version>: <success line>"), 77 is remembered as a skip, anything else fails.
run_consumer() {
    what=$1
    line=$2
    shift 2
    echo "test_install: run $what"
    rc=0
    "$@" >"$log" 2>&1 || rc=$?
    sed 's/^/    /' "$log"
    case $rc in
    0) grep -qx "corio $version: $line" "$log" ||
        fail "$what: no line 'corio $version: $line'" ;;
    77) skipped=1 ;;
    *) fail "$what exited with $rc" ;;
    esac
}

# needs <binary> <soname> yes|no: whether it is dynamically linked to <soname>.
needs() {
    if readelf -d "$1" 2>/dev/null | grep NEEDED | grep -qF "[$2]"; then
        [ "$3" = yes ] || fail "$1 is dynamically linked to $2"
    else
        [ "$3" = no ] || fail "$1 is not dynamically linked to $2"
    fi
}

# no_runpath <file>: it names no directory to search for libraries (RUNPATH or RPATH).
no_runpath() {
    if readelf -d "$1" | grep -qE '\((RUNPATH|RPATH)\)'; then
        fail "$1 has a RUNPATH or RPATH"
    fi
}

# resolves_to <binary> <soname> <libdir> [env...]: the dynamic loader finds <soname> in <libdir>.
resolves_to() {
    bin=$1
    so=$2
    dir=$3
    shift 3
    got=$(env "$@" ldd "$bin" | awk -v so="$so" '$1 == so && $2 == "=>" {print $3}')
    [ "$got" = "$dir/$so" ] || fail "$bin loads $so from '${got:-nowhere}', not from $dir"
}

# check_consumer <type> <binary> [env...]: checks how <binary> (built from consumer.c, with
# CONSUMER_HTTP if its name says http, or from consumer.cc if it says cxx) is linked and runs it
# under [env]. One whose name ends in _static holds corio and needs no libcorio*.so; any other
# needs libcorio.so.0 (and libcorio_http.so.0 if it links HTTP) and finds them in $libdir.
check_consumer() {
    t=$1
    exe=$2
    shift 2
    sonames=libcorio.so.0
    line="nop and sleep ok"
    # By the binary's own name: the directories above it may say http or cxx too.
    case $(basename "$exe") in
    *cxx*) sonames="$sonames libcorio_http.so.0" line="C++ ok" ;;
    *http*) sonames="$sonames libcorio_http.so.0" line="nop, sleep and http parse ok" ;;
    esac
    case $(basename "$exe") in
    *testing*) sonames=$(echo "$sonames" | sed 's/libcorio\.so/libcorio-testing.so/;
        s/libcorio_http\.so/libcorio_http-testing.so/') ;;
    esac
    for so in $sonames; do
        case $exe in
        *_static) needs "$exe" "$so" no ;;
        *)
            needs "$exe" "$so" yes
            resolves_to "$exe" "$so" "$libdir" "$@"
            ;;
        esac
    done
    case $exe in
    *_static) nm "$exe" | grep -q ' T corio_loop_new$' || fail "$exe does not contain corio" ;;
    esac
    case $(basename "$exe") in
    *testing*)
        run_consumer "$t: $(basename "$exe")" "$line" env "$@" CORIO_FAULTS=seed=5,eagain=0.1 "$exe"
        grep -q "^corio faults: seed=5 " "$log" ||
            fail "$(basename "$exe") printed no 'corio faults: seed=5' under CORIO_FAULTS"
        ;;
    *) run_consumer "$t: $(basename "$exe")" "$line" env "$@" "$exe" ;;
    esac
}

# install_corio <build type> [cmake args...]: builds and installs into $work/<type>/prefix, and
# sets $prefix.
install_corio() {
    type=$1
    shift
    build=$work/$type/build
    prefix=$work/$type/prefix
    step "$type: configure corio ($*)" \
        cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE="$type" -DCORIO_BUILD_TESTS=OFF \
        -DCORIO_BUILD_BENCHMARKS=OFF -DCMAKE_INSTALL_PREFIX="$work/configured-prefix" "$@"
    step "$type: build corio" cmake --build "$build" --parallel "$jobs"
    step "$type: install into a temporary prefix with cmake --install --prefix" \
        cmake --install "$build" --prefix "$prefix"
    [ ! -e "$work/configured-prefix" ] ||
        fail "cmake --install --prefix also wrote to the configured prefix"
}

# check_installed: the headers, the libraries, the .pc files and the CMake package are where they
# belong, and the .pc files carry the install prefix and the headers' version. Sets $version,
# $libdir, $pcdir.
check_installed() {
    for f in include/corio.h include/corio/corio.h include/corio/http.h include/corio/version.h; do
        [ -f "$prefix/$f" ] || fail "$f was not installed"
    done
    version=$(sed -n 's/^#define CORIO_VERSION_STRING "\(.*\)"$/\1/p' \
        "$prefix/include/corio/version.h")
    [ -n "$version" ] || fail "no CORIO_VERSION_STRING in the installed corio/version.h"
    pc=$(find "$prefix" -name corio.pc)
    [ -n "$pc" ] || fail "corio.pc was not installed"
    pcdir=$(dirname "$pc")
    [ -f "$pcdir/corio-http.pc" ] || fail "corio-http.pc was not installed beside corio.pc"
    config=$(find "$prefix" -name corioConfig.cmake)
    [ -n "$config" ] || fail "corioConfig.cmake was not installed"
    [ -f "$(dirname "$config")/corioConfigVersion.cmake" ] ||
        fail "corioConfigVersion.cmake was not installed"
    for p in corio corio-http corio-testing corio-http-testing; do
        step "pkg-config finds $p.pc" env PKG_CONFIG_PATH="$pcdir" \
            pkg-config --exists --print-errors "$p"
        got=$(PKG_CONFIG_PATH="$pcdir" pkg-config --modversion "$p")
        [ "$got" = "$version" ] || fail "$p.pc has version $got, corio/version.h has $version"
        got=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=prefix "$p")
        [ "$got" = "$prefix" ] || fail "$p.pc has prefix $got, not the install prefix $prefix"
    done
    libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir corio)
    for l in libcorio libcorio_http libcorio-testing libcorio_http-testing; do
        for f in "$l.a" "$l.so" "$l.so.0"; do
            [ -e "$libdir/$f" ] || fail "no $f in corio.pc's libdir $libdir"
        done
        no_runpath "$libdir/$l.so.0"
    done
}

# pc_consumer <type> <name> <package> <source> <compiler and flags> [-static]: compiles and
# links <source> with `pkg-config [--static] --cflags --libs <package>` into $work/<type>/<name>.
pc_consumer() {
    out=$work/$1/$2
    package=$3
    source=$4
    compiler=$5
    static=${6:-}
    # The flags are word-split on purpose: they are lists of flags.
    # shellcheck disable=SC2046,SC2086
    step "$1: pkg-config ${static:+--static }$package: $2" \
        $compiler $static -o "$out" "$source" \
        $(PKG_CONFIG_PATH="$pcdir" pkg-config ${static:+--static} --cflags --libs "$package")
}

# consume_with_pkg_config <type>: part (a).
consume_with_pkg_config() {
    t=$1
    c="$cc $cflags_strict"
    pc_consumer "$t" pc_shared corio "$src/tests/install/consumer.c" "$c"
    pc_consumer "$t" pc_static corio "$src/tests/install/consumer.c" "$c" -static
    pc_consumer "$t" pc_http_shared corio-http "$src/tests/install/consumer.c" \
        "$c -DCONSUMER_HTTP"
    pc_consumer "$t" pc_http_static corio-http "$src/tests/install/consumer.c" \
        "$c -DCONSUMER_HTTP" -static
    pc_consumer "$t" pc_cxx_shared corio-http "$src/tests/install/consumer.cc" \
        "$cxx $cxxflags_strict"
    pc_consumer "$t" pc_testing_shared corio-testing "$src/tests/install/consumer.c" "$c"
    pc_consumer "$t" pc_testing_static corio-testing "$src/tests/install/consumer.c" "$c" -static
    pc_consumer "$t" pc_http_testing_shared corio-http-testing "$src/tests/install/consumer.c" \
        "$c -DCONSUMER_HTTP"
    for b in pc_shared pc_static pc_http_shared pc_http_static pc_cxx_shared pc_testing_shared \
        pc_testing_static pc_http_testing_shared; do
        check_consumer "$t" "$work/$t/$b" LD_LIBRARY_PATH="$libdir"
    done
}

# consume_with_cmake <type>: part (b). A consumer of the package needs no PKG_CONFIG_PATH for
# corio itself.
consume_with_cmake() {
    t=$1
    cdir=$work/$t/consumer
    step "$t: cmake: configure a find_package(corio REQUIRED COMPONENTS http) consumer" \
        env CC="$cc" CXX="$cxx" cmake -S "$src/tests/install" -B "$cdir" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
    grep -q "consumer: corio $version from $prefix/" "$log" ||
        fail "find_package(corio) did not find version $version under $prefix"
    step "$t: cmake: build the consumers of corio::{shared,static,http_shared,http_static}" \
        cmake --build "$cdir" --parallel "$jobs"
    # No LD_LIBRARY_PATH: CMake's build RPATH names the imported libraries' directory.
    for b in consumer_shared consumer_static consumer_http_shared consumer_http_static \
        consumer_cxx_shared consumer_cxx_static consumer_testing_shared consumer_testing_static \
        consumer_http_testing_static; do
        check_consumer "$t" "$cdir/$b" LD_LIBRARY_PATH=
    done
}

# check_no_seam: the release library has no symbol of the fault seam; the testing variant has it.
check_no_seam() {
    if nm "$libdir/libcorio.a" "$libdir/libcorio.so.0" 2>/dev/null | grep -q corio__fault; then
        fail "libcorio has a corio__fault symbol"
    fi
    nm "$libdir/libcorio-testing.a" | grep -q ' T corio__fault_configure$' ||
        fail "libcorio-testing.a has no corio__fault_configure"
}

# check_tools: the installed tools need neither libcorio.so nor a RUNPATH, and run.
check_tools() {
    for tool in corio-echo corio-httpd corio-load corio-probe; do
        exe=$prefix/bin/$tool
        [ -x "$exe" ] || fail "$tool was not installed"
        needs "$exe" libcorio.so.0 no
        needs "$exe" libcorio_http.so.0 no
        no_runpath "$exe"
        step "the installed $tool runs (--help) with no LD_LIBRARY_PATH" \
            env LD_LIBRARY_PATH= "$exe" --help
    done
}

for type in Debug Release RelWithDebInfo; do
    tools=OFF
    [ "$type" = Release ] && tools=ON
    install_corio "$type" -DCORIO_BUILD_TOOLS=$tools
    check_installed
    [ "$type" != Release ] || check_no_seam
    [ $tools = OFF ] || check_tools
    consume_with_pkg_config "$type"
    consume_with_cmake "$type"
done

# ---- (c) a QUIET find without liburing -----------------------------------------------------
mkdir "$work/empty"
step "cmake: find_package(corio QUIET) with no liburing.pc in sight" \
    env PKG_CONFIG_LIBDIR="$work/empty" PKG_CONFIG_PATH="$work/empty" CC="$cc" CXX="$cxx" \
    cmake -S "$src/tests/install" -B "$work/consumer-find" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCONSUMER_FIND_ONLY=ON
grep -Eq "consumer: corio_FOUND=(0|FALSE)$" "$log" ||
    fail "find_package(corio QUIET) without liburing did not report corio as not found"

if [ "$skipped" -ne 0 ]; then
    echo "test_install: SKIP: everything built and installed, but io_uring is unavailable here"
    exit 77
fi
echo "test_install: all steps passed"
