#!/usr/bin/env bash
# Installs what `make image-test` needs on a Debian 12 (bookworm) host, and
# only what is missing:
# - an aarch64 Rust cross toolchain (Debian's rustc-web with an arm64 std),
# - image tools (genimage, mtools, dosfstools, squashfs-tools, e2fsprogs),
# - nbdkit (its cache filter models an SD card's volatile write cache),
# - QEMU 10 from bookworm-backports. Backports get priority 100 from an apt
#   preferences file, so no package of the base system is ever upgraded
#   from there; only the QEMU packages named below are taken from it.
set -euo pipefail
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
APT=(-o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive

HOST_PACKAGES=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
	libc6-dev-arm64-cross genimage mtools dosfstools squashfs-tools e2fsprogs
	cpio kmod nbdkit device-tree-compiler python3 curl)
BACKPORTS_PACKAGES=(qemu-system-arm)

missing=()
for p in "${HOST_PACKAGES[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
qemu_ok=0
if command -v qemu-system-aarch64 >/dev/null; then
	v=$(qemu-system-aarch64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p')
	[ "${v:-0}" -ge 8 ] && qemu_ok=1
fi
[ ${#missing[@]} -eq 0 ] && [ $qemu_ok = 1 ] && exit 0

changed=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	$SUDO dpkg --add-architecture arm64
	changed=1
fi
if [ $qemu_ok = 0 ] && [ ! -e /etc/apt/sources.list.d/bookworm-backports.sources ]; then
	$SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	$SUDO tee /etc/apt/preferences.d/bookworm-backports >/dev/null <<'PIN'
Package: src:qemu
Pin: release n=bookworm-backports
Pin-Priority: 500

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
PIN
	changed=1
fi
if [ $changed = 1 ] || [ ${#missing[@]} -gt 0 ] || [ $qemu_ok = 0 ]; then
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	$SUDO apt-get install "${APT[@]}" "${missing[@]}"
fi
if [ $qemu_ok = 0 ]; then
	echo "installing from bookworm-backports: ${BACKPORTS_PACKAGES[*]}"
	$SUDO apt-get install "${APT[@]}" "${BACKPORTS_PACKAGES[@]}"
fi
