#!/usr/bin/env bash
# Builds the QEMU test image: the appliance's board files, root overlay and
# package scripts (buildroot-external/) on a
# root filesystem made from Debian arm64 packages (BusyBox, e2fsprogs,
# sfdisk) and a static aarch64 build of dashvault, with Debian's arm64
# kernel and a small initramfs that loads the drivers that kernel builds as
# modules. Same partition layout as the board's genimage.cfg.
#
# usage: tests/image/build.sh OUT_DIR    (needs tests/image/deps.sh first)
# Leaves OUT_DIR/sdcard.img, OUT_DIR/boot/{Image,initrd.gz,*.dtb}.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$TOP/target}
IMAGE_MIB=256
# The modules the initramfs loads: disks, filesystems, networking on the
# virt machine (virtio) and on raspi3b (SD host, USB host, USB Ethernet).
MODULES="virtio_pci virtio_blk virtio_net squashfs ext4 vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1
	sdhci-iproc bcm2835 phy-generic dwc2 cdc_ether rndis_host"
# BusyBox applets the boot scripts and the console use. Debian's
# busybox-static runs its own applets first inside its shell, so these
# links matter only for programs started by init.
APPLETS="sh ash cat chmod cmp cp cut date dd df dmesg echo env grep head hostname
	ip kill ln login ls mkdir mount mv od ps readlink rm rmdir sed sleep
	sync tail test tr touch umount uname wc getty init poweroff reboot halt sort
	free uptime vi less awk basename dirname find seq tee sh switch_root insmod
	syslogd logger logread watchdog start-stop-daemon usleep"

log() { echo "== $*"; }

# 1. dashvault for aarch64, static (Debian's rustc-web has the aarch64 std;
#    rustup's cargo, first in PATH, does not).
log "cross-compiling dashvault for $TARGET"
(cd "$TOP" && env CARGO_TARGET_DIR="$TARGET_DIR" RUSTC=/usr/bin/rustc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
	/usr/bin/cargo build --release --locked --target $TARGET --bin dashvault)
BIN=$TARGET_DIR/$TARGET/release/dashvault

# 2. Debian arm64 packages, downloaded once into OUT_DIR/debs.
KPKG=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\)/\1/p' | head -1)
KPKG=${KPKG%:arm64}
PKGS="busybox-static $KPKG e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1 libss2 libc6
	libgcc-s1 fdisk libfdisk1 libmount1 libsmartcols1 libreadline8 libtinfo6 libncursesw6
	libselinux1 libpcre2-8-0 util-linux"
mkdir -p "$OUT/debs"
want=""
for p in $PKGS; do
	ls "$OUT/debs/${p}_"*_arm64.deb >/dev/null 2>&1 || want="$want $p:arm64"
done
if [ -n "$want" ]; then
	log "downloading arm64 packages:$want"
	# shellcheck disable=SC2086 # a list of packages
	(cd "$OUT/debs" && apt-get -q download $want >/dev/null 2>"$OUT/apt-download.log") ||
		{ cat "$OUT/apt-download.log"; exit 1; }
fi
rm -rf "$OUT/arm64" "$OUT/kernel"
mkdir -p "$OUT/arm64" "$OUT/kernel"
for deb in "$OUT"/debs/*.deb; do
	case "$(basename "$deb")" in
	linux-image-*) dpkg -x "$deb" "$OUT/kernel" ;;
	*) dpkg -x "$deb" "$OUT/arm64" ;;
	esac
done
KVER=$(ls "$OUT/kernel/lib/modules")

# 3. Root filesystem: the overlay, BusyBox, the tools, the service.
log "root filesystem"
R=$OUT/rootfs
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib,etc,proc,sys,dev,tmp,run,data,boot,root,var/lib}
cp "$OUT/arm64/bin/busybox" "$R/bin/busybox"
# In /bin and /sbin, so the absolute paths Buildroot's layout uses work.
for a in $APPLETS; do
	[ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
	[ -e "$R/sbin/$a" ] || ln -s ../bin/busybox "$R/sbin/$a"
done
cp -a "$OUT/arm64/lib/." "$R/lib/"
[ -d "$OUT/arm64/usr/lib" ] && cp -a "$OUT/arm64/usr/lib" "$R/usr/"
for f in e2fsck mke2fs sfdisk partx resize2fs tune2fs dumpe2fs; do
	src=$(find "$OUT/arm64" -path "*bin/$f" | head -1)
	cp "$src" "$R/sbin/$f"
done
install -m 0755 "$BIN" "$R/usr/bin/dashvault"
BOARD=$TOP/buildroot-external/board/rpi0w2
PKG=$TOP/buildroot-external/package/dashvault
cp -a "$BOARD/rootfs-overlay/." "$R/"
# What the dashvault package installs (DASHVAULT_INSTALL_INIT_SYSV).
for f in "$PKG"/files/*; do
	case "$(basename "$f")" in
	S[0-9][0-9]*) install -D -m 0755 "$f" "$R/etc/init.d/$(basename "$f")" ;;
	*) install -D -m 0755 "$f" "$R/usr/libexec/dashvault/$(basename "$f")" ;;
	esac
done
# What Buildroot's skeleton provides for a read-only root.
ln -s ../tmp "$R/var/log"
ln -s ../tmp "$R/var/tmp"
ln -s ../run "$R/var/run"
ln -s ../../tmp "$R/var/lib/misc"
printf 'root::0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$R/etc/group"
cat >"$R/etc/profile" <<'PROFILE'
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
PS1='# '
for f in /etc/profile.d/*.sh; do . "$f"; done
PROFILE
# Test only: QEMU's user network, which has no DHCP client in this image.
cat >"$R/etc/init.d/S39qemunet" <<'NET'
#!/bin/sh
[ "$1" = start ] || exit 0
ip link set lo up
for n in /sys/class/net/*; do
	i=${n##*/}
	[ "$i" = lo ] && continue
	ip link set "$i" up && ip addr add 10.0.2.15/24 dev "$i" && ip route add default via 10.0.2.2
	break
done
NET
chmod 0755 "$R/etc/init.d/S39qemunet"
mksquashfs "$R" "$OUT/rootfs.squashfs" -noappend -all-root -comp xz -quiet >/dev/null

# 4. Initramfs: Debian's kernel builds virtio, ext4 and squashfs as modules.
log "initramfs for linux $KVER"
I=$OUT/initramfs
rm -rf "$I"
mkdir -p "$I"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$OUT/arm64/bin/busybox" "$I/bin/busybox"
for a in sh mount umount mkdir sed sleep insmod switch_root cat; do ln -s busybox "$I/bin/$a"; done
depmod -b "$OUT/kernel" "$KVER"
: >"$I/modules.order"
for m in $MODULES; do
	modprobe -d "$OUT/kernel" -S "$KVER" --show-depends "$m" 2>/dev/null | sed -n 's/^insmod \([^ ]*\).*/\1/p'
done | awk '!seen[$0]++' | while read -r ko; do
	name=$(basename "$ko")
	case "$name" in
	*.xz) xz -dc "$ko" >"$I/lib/modules/${name%.xz}"; name=${name%.xz} ;;
	*) cp "$ko" "$I/lib/modules/$name" ;;
	esac
	echo "$name" >>"$I/modules.order"
done
cat >"$I/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </modules.order
root=$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline)
i=0
while [ ! -b "$root" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
mount -t squashfs -o ro "$root" /newroot || { echo "initramfs: cannot mount $root"; exec sh; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
INIT
chmod 0755 "$I/init"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -9) >"$OUT/initrd.gz"

# 5. Boot partition: the board's config.txt and cmdline.txt, the kernel,
#    device trees, and a settings file the test checks is applied.
log "boot files"
B=$OUT/boot
rm -rf "$B"
mkdir -p "$B"
# Uncompressed on 6.1, gzip on some other releases.
zcat -f "$OUT/kernel/boot/vmlinuz-$KVER" >"$B/Image"
cp "$OUT/initrd.gz" "$B/initrd.gz"
cp "$BOARD/config.txt" "$BOARD/cmdline.txt" "$B/"
cp "$TOP/tests/image/dashvault.json" "$B/dashvault.json"
DTB=$OUT/kernel/usr/lib/linux-image-$KVER/broadcom/bcm2837-rpi-zero-2-w.dtb
cp "$DTB" "$B/bcm2837-rpi-zero-2-w.dtb"
# QEMU's raspi3b differs from the board: ttyAMA0 must not be handed to
# Bluetooth, USB must be a host for usb-net, and the Wi-Fi SD controller
# must not grab the emulated card.
Q=$B/bcm2837-rpi-zero-2-w-qemu.dtb
cp "$DTB" "$Q"
fdtput -r "$Q" /soc/serial@7e201000/bluetooth 2>/dev/null || true
fdtput -t s "$Q" /soc/usb@7e980000 dr_mode host
fdtput -t s "$Q" /soc/mmc@7e300000 status disabled

# 6. The image, padded to a power of two (QEMU's SD card needs one).
log "sdcard.img"
rm -rf "$OUT/genimage.tmp" "$OUT/sdcard.img"
mkdir -p "$OUT/images"
cp "$OUT/rootfs.squashfs" "$OUT/images/"
genimage --rootpath "$B" --tmppath "$OUT/genimage.tmp" --inputpath "$OUT/images" \
	--outputpath "$OUT/images" --config "$TOP/tests/image/genimage.cfg" >/dev/null
mv "$OUT/images/sdcard.img" "$OUT/sdcard.img"
truncate -s ${IMAGE_MIB}M "$OUT/sdcard.img"
ls -la "$OUT/sdcard.img"
