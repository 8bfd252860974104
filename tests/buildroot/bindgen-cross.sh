#!/usr/bin/env bash
# libcamera-sys's build script, run for the Pi's target with the clang
# arguments dashvault.mk gives bindgen, in an output folder laid out like
# a Buildroot build with an external (Bootlin-style) toolchain: the
# sysroot holds only C headers, libstdc++'s headers sit next to the
# toolchain's GCC, outside it. Nothing is downloaded from Buildroot's
# sites: Debian's arm64 libstdc++ and GCC support files stand in for the
# toolchain, clang 19 for host-clang and the compiler wrapper, and the
# libcamera headers come from `make libcamera`.
#
# It runs in a private mount namespace in which Debian's own cross GCC
# folder (/usr/lib/gcc-cross) is hidden: libclang would otherwise find it
# by itself (through the /lib symlink) and quietly use the build host's
# libstdc++ instead of the toolchain's, as it does on a build host that
# has Debian's cross compilers installed.
#
# Passes when the bindings are generated with dashvault.mk's arguments
# AND the old ones (--sysroot only) fail the way the appliance build did
# ("'array' file not found"); the second half proves that this setup
# really hides libstdc++ from libclang. About a minute.
# usage: tests/buildroot/bindgen-cross.sh BUILDROOT_DIR LIBCAMERA_PREFIX
set -euo pipefail
if [ -z "${BINDGEN_CROSS_NAMESPACE:-}" ]; then
	as_root=$([ "$(id -u)" = 0 ] || echo --map-root-user)
	# shellcheck disable=SC2086 # empty or one option
	exec unshare --mount $as_root env BINDGEN_CROSS_NAMESPACE=1 bash "$0" "$@"
fi
BR=$(cd "${1:?usage: $0 BUILDROOT_DIR LIBCAMERA_PREFIX}" && pwd)
LIBCAMERA=${2:?usage: $0 BUILDROOT_DIR LIBCAMERA_PREFIX}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
LLVM=${LLVM_DIR:-/usr/lib/llvm-19}
GCC_CROSS=/usr/lib/gcc-cross/aarch64-linux-gnu
CROSS_ROOT=/usr/aarch64-linux-gnu
WORK=$(mktemp -d)
# Where Debian's cross GCC folder is seen from inside the namespace: a
# read-only bind mount kept out of $WORK, so removing $WORK can never
# reach the real files.
SEEN=$(mktemp -d)
trap 'umount "$SEEN" 2>/dev/null; rmdir "$SEEN"; rm -rf "$WORK"' EXIT

gcc_version=$(find "$GCC_CROSS" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
for need in "$LIBCAMERA/include/libcamera/libcamera/control_ids.h" "$LLVM/bin/clang++" \
	"$CROSS_ROOT/include/stdio.h" "$CROSS_ROOT/include/c++/$gcc_version/array" \
	"$GCC_CROSS/$gcc_version/crtbegin.o" "$(command -v aarch64-linux-gnu-ar || echo aarch64-linux-gnu-ar)"; do
	[ -e "$need" ] || { echo "bindgen-cross: missing $need" >&2; exit 2; }
done
libclang=$(find "$LLVM/lib" -maxdepth 1 -name 'libclang-*.so.*' | sort | head -n 1)
# Debian's cross GCC folder moves to where only the stand-in toolchain
# below points.
mkdir -p "$WORK/empty"
mount --bind "$(dirname "$GCC_CROSS")" "$SEEN"
mount -o remount,bind,ro "$SEEN"
mount --bind "$WORK/empty" "$(dirname "$GCC_CROSS")"
GCC_CROSS=$SEEN/$(basename "$GCC_CROSS")

# What dashvault.mk gives cargo, from Buildroot itself.
out=$WORK/output
brmake() { make -s -C "$BR" O="$out" BR2_EXTERNAL="$TOP/buildroot-external" "$@"; }
brmake dashvault_rpi0w2_defconfig >/dev/null
declare -A var
while IFS='=' read -r k v; do var[$k]=$v; done < <(brmake printvars \
	VARS="DASHVAULT_CARGO_ENV TARGET_CC TARGET_CXX STAGING_DIR HOST_DIR GNU_TARGET_NAME RUSTC_TARGET_NAME")
HOST_DIR=${var[HOST_DIR]}
STAGING_DIR=${var[STAGING_DIR]}
TRIPLE=${var[GNU_TARGET_NAME]}
RUST_TARGET=${var[RUSTC_TARGET_NAME]}
CARGO_ENV=${var[DASHVAULT_CARGO_ENV]}
echo "dashvault.mk: $CARGO_ENV"
case "$CARGO_ENV" in
*BINDGEN_EXTRA_CLANG_ARGS=*) ;;
*) echo "FAIL: DASHVAULT_CARGO_ENV sets no BINDGEN_EXTRA_CLANG_ARGS" >&2; exit 1 ;;
esac

# The external toolchain as Buildroot unpacks it: GCC's install folder and
# libstdc++'s headers under host/opt/ext-toolchain, named with the GNU
# target name.
tc=$HOST_DIR/opt/ext-toolchain
gcc_dir=$tc/lib/gcc/$TRIPLE/$gcc_version
cxx_dir=$tc/$TRIPLE/include/c++/$gcc_version
mkdir -p "$tc/bin" "$gcc_dir" "$cxx_dir" "$HOST_DIR/bin" "$HOST_DIR/lib"
ln -s "$GCC_CROSS/$gcc_version"/* "$gcc_dir/"
ln -s "$CROSS_ROOT/include/c++/$gcc_version"/* "$cxx_dir/"
ln -s aarch64-linux-gnu "$cxx_dir/$TRIPLE"
# The compilers stand in for the toolchain wrapper: they report the
# install folder as a relocated GCC does (bin/../lib/gcc/...), and
# compile with clang told where the toolchain is.
for cc in TARGET_CC:clang TARGET_CXX:clang++; do
	cat >"${var[${cc%%:*}]}" <<EOF
#!/bin/sh
case "\$1" in
-print-search-dirs) echo "install: $tc/bin/../lib/gcc/$TRIPLE/$gcc_version/" ;;
*) exec $LLVM/bin/${cc#*:} --target=$TRIPLE --gcc-install-dir=$gcc_dir --sysroot=$STAGING_DIR "\$@" ;;
esac
EOF
	chmod +x "${var[${cc%%:*}]}"
done
# host-clang: libclang, and a clang without the wrapper's config file for
# bindgen's own include path probe.
ln -s "$libclang" "$HOST_DIR/lib/libclang.so"
ln -s "$LLVM/bin/clang" "$HOST_DIR/bin/clang"

# The sysroot: the C library's headers only, plus libcamera's.
mkdir -p "$STAGING_DIR/usr/include" "$STAGING_DIR/usr/lib/pkgconfig"
for e in "$CROSS_ROOT/include"/*; do
	[ "$(basename "$e")" = c++ ] || ln -s "$e" "$STAGING_DIR/usr/include/"
done
ln -s "$LIBCAMERA/include/libcamera" "$STAGING_DIR/usr/include/libcamera"
for pc in libcamera-base libcamera; do
	{
		echo "prefix=/usr"
		echo "includedir=\${prefix}/include"
		echo "Name: $pc"
		echo "Description: libcamera headers for the bindgen check"
		echo "Version: 0.7.2"
		[ $pc = libcamera-base ] || echo "Requires: libcamera-base"
		echo "Libs: -l${pc#lib}"
		echo "Cflags: -I\${includedir}/libcamera"
	} >"$STAGING_DIR/usr/lib/pkgconfig/$pc.pc"
done

# A crate with only libcamera-sys, at the versions in dashvault's
# Cargo.lock (cargo keeps them and drops the rest).
probe=$WORK/probe
mkdir -p "$probe/src"
cat >"$probe/Cargo.toml" <<'EOF'
[package]
name = "bindgen-cross-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
libcamera-sys = "0.7"
EOF
: >"$probe/src/lib.rs"
cp "$TOP/Cargo.lock" "$probe/Cargo.lock"
(cd "$probe" && cargo fetch -q)

# Builds the probe for the target, which runs libcamera-sys's build
# script (the library itself may then fail to build where the target's
# Rust standard library is not installed; that part is not looked at).
# $1 names the run; the rest are env assignments after dashvault.mk's.
generate() {
	local name=$1 target=${RUST_TARGET//-/_} bindings
	shift
	(cd "$probe" && eval "env $CARGO_ENV $* \
		PATH=\"$HOST_DIR/bin:\$PATH\" CLANG_PATH=\"$HOST_DIR/bin/clang\" \
		PKG_CONFIG_LIBDIR=\"$STAGING_DIR/usr/lib/pkgconfig\" PKG_CONFIG_SYSROOT_DIR=\"$STAGING_DIR\" \
		CC_$target=\"${var[TARGET_CC]}\" CXX_$target=\"${var[TARGET_CXX]}\" AR_$target=aarch64-linux-gnu-ar \
		cargo build --offline --keep-going --target $RUST_TARGET --target-dir \"$WORK/target\"" \
		>"$WORK/$name.log" 2>&1) || true
	bindings=$(find "$WORK/target/$RUST_TARGET/debug/build" -path '*/libcamera-sys-*/out/bindings_cpp.rs' 2>/dev/null)
	rm -rf "${WORK:?}/target/$RUST_TARGET"
	[ -n "$bindings" ]
}

fail=0
started=$(date +%s)
if generate old "BINDGEN_EXTRA_CLANG_ARGS=\"--sysroot=$STAGING_DIR\""; then
	echo "FAIL: with --sysroot alone the bindings were generated; this setup does not hide libstdc++ from libclang" >&2
	fail=1
elif grep -q "'array' file not found" "$WORK/old.log"; then
	echo "ok: with --sysroot alone libclang finds no <array>, as in the appliance build"
else
	echo "FAIL: with --sysroot alone the build failed for another reason:" >&2
	tail -n 30 "$WORK/old.log" >&2
	fail=1
fi
if generate new; then
	echo "ok: with dashvault.mk's arguments libcamera-sys generated its bindings for $RUST_TARGET"
else
	echo "FAIL: libcamera-sys's build script failed with dashvault.mk's arguments:" >&2
	{ grep -E 'fatal error|panicked|^error' "$WORK/new.log" || tail -n 30 "$WORK/new.log"; } | head -n 20 >&2 || true
	fail=1
fi
echo "bindgen-cross: $(($(date +%s) - started)) s"
exit $fail
