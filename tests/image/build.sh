#!/usr/bin/env bash
# Builds the QEMU test image: the appliance's board files, root overlay and
# package scripts (buildroot-external/) on a
# root filesystem made from Debian arm64 packages (BusyBox, e2fsprogs,
# sfdisk, kmod, hostapd, dnsmasq, iw) and a static aarch64 build of
# dashvault, with Debian's arm64 kernel and a small initramfs that loads the
# drivers that kernel builds as modules. Same partition layout as the
# board's genimage.cfg. The init scripts run in the real image's order:
# S10mdev (devices, drivers for the devices present), S40network, the
# appliance's S45hostapd, S80dnsmasq; Buildroot's packages install those
# three on the real image, tests/image/rootfs/ has test equivalents.
#
# How the test image still differs from the real one:
# - Kernel: Debian's arm64 kernel, not the Raspberry Pi one; an initramfs
#   loads the disk, filesystem and network drivers that kernel builds as
#   modules (the Pi kernel has them built in), and S10mdev also loads the
#   LED timer trigger (built in on the Pi).
# - Modules: only those the test needs are on the root filesystem (the
#   initramfs's, the Zero 2W device tree's, vivid, mac80211_hwsim and the
#   WPA2 ciphers), so coldplug skips devices with no module here; the
#   display (vc4) is left out, and so is the watchdog (bcm2835_wdt): the
#   raspi3b VM stops the moment S15watchdog starts it, so S15watchdog
#   finds no /dev/watchdog here.
# - Userland: Debian's BusyBox, kmod, hostapd and dnsmasq builds, with
#   their libraries, instead of Buildroot's; S10mdev, S40network and
#   S80dnsmasq are test equivalents of Buildroot's scripts. Debian's
#   hostapd cannot log to syslog (-s): a wrapper passes its output to
#   logger.
# - Network: S40network also gives QEMU's user network a fixed address
#   (the real one brings up the loopback only).
# - Camera: no Pi camera; the kernel's vivid test driver is loaded by
#   S99testcamera once the recorder runs (or by the test on the console).
#   vivid delivers YUYV through the V4L2 path; a Pi camera goes through
#   libcamera (tested against libcamera's virtual camera on the host, not
#   here) and most USB webcams deliver MJPEG.
# - GPS: QEMU's usb-serial, an FTDI bridge whose bytes come from a socket
#   the test writes NMEA into; no real receiver, no real baud rate (the
#   bridge passes every byte whatever the line is set to), and the host's
#   time arrives without a receiver's output delay.
# - Speed: QEMU emulates the Cortex-A53 in software, several times slower
#   than the Pi: boot times and frame rates measured here are upper bounds.
# - LED: the device tree's ACT LED through leds-gpio, as on the board, but
#   no light: the test reads the trigger and brightness files.
# - Wi-Fi: no brcmfmac; the test loads mac80211_hwsim (two simulated
#   radios) and a client in a network namespace joins the hotspot. Test
#   client tools (wpa_supplicant, iproute2's ip) are in
#   /usr/libexec/hotspot-client, so the appliance's scripts still use
#   BusyBox's ip.
# - The hotspot's country: neither image has a wireless regulatory
#   database; with the simulated radios hostapd waits a few seconds for a
#   country update that never comes, then starts in the world domain.
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

# BusyBox applets the test image's own init scripts and the hotspot test use.
TEST_APPLETS="mdev xargs udhcpc wget nslookup timeout start-stop-daemon"
# Kernel modules on the root filesystem, for modprobe, each with what it
# needs: the initramfs's; the drivers of the devices the Zero 2W device
# tree enables that Debian builds as modules (coldplug loads them; the Pi
# kernel builds them in) and the LED timer trigger; the kernel's test
# camera (vivid), simulated Wi-Fi radios (mac80211_hwsim) and the ciphers
# WPA2 (CCMP) asks for, which the test loads late; and the USB serial
# drivers of GPS receivers (QEMU's usb-serial is an FTDI bridge; u-blox
# sticks are CDC-ACM), which coldplug loads.
ROOT_MODULES="$MODULES i2c-bcm2835 bcm2835-rng bcm2835-thermal leds-gpio ledtrig-timer
	vivid mac80211_hwsim ccm ctr cmac gcm aes-ce-ccm aes-ce-cipher aes-ce-blk
	usbserial ftdi_sio cdc-acm"
# Programs from Debian beyond the base: kmod (modprobe, as on the real
# image), the hotspot's daemons and iw, and the test client's
# wpa_supplicant and ip (iproute2, for network namespaces).
TOOL_PKGS="kmod hostapd dnsmasq-base iw wpasupplicant iproute2"

# The library packages that packages need, recursively, from the arm64
# package index: Depends and Pre-Depends (the first of alternatives),
# libraries only (packaging helpers such as debconf or adduser have no use
# on a read-only root). One apt-cache call per level of the tree.
lib_deps() {
	local seen=" " next="$*" p level
	while [ -n "$next" ]; do
		level=""
		for p in $next; do
			case "$seen$level " in *" $p "*) ;; *) level="$level $p" ;; esac
		done
		[ -n "$level" ] || break
		seen="$seen${level# } "
		# shellcheck disable=SC2046,SC2086 # lists of packages
		next=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
			--no-replaces --no-enhances $(printf '%s:arm64 ' $level) | awk '
			/^ *\|?(Pre)?Depends: / {
				n = $2; sub(/:arm64$/, "", n)
				if (!alt && n ~ /^(lib|zlib)/ && n !~ /^libpam|-(perl|common|bin|data)$/) print n
				alt = ($1 ~ /^\|/)
				next
			}
			{ alt = 0 }')
	done
	# shellcheck disable=SC2086 # one line, no padding
	echo $seen
}

# Fails unless every shared library the given programs need, and those
# libraries need, is on the root filesystem $R.
check_libs() {
	local todo="$*" done_=" " f lib found missing=""
	while [ -n "$todo" ]; do
		# shellcheck disable=SC2086
		set -- $todo
		f=$1
		shift
		todo="$*"
		case "$done_" in *" $f "*) continue ;; esac
		done_="$done_$f "
		for lib in $(aarch64-linux-gnu-readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			found=$(find "$R/lib" "$R/usr/lib" -name "$lib" -print -quit)
			if [ -n "$found" ]; then
				todo="$todo $found"
			else
				missing="$missing $lib(${f#"$R"})"
			fi
		done
	done
	[ -z "$missing" ] || { echo "missing libraries:$missing" >&2; exit 1; }
}

# 1. dashvault for aarch64, static (Debian's rustc-web has the aarch64 std;
#    rustup's cargo, first in PATH, does not).
log "cross-compiling dashvault for $TARGET"
(cd "$TOP" && env CARGO_TARGET_DIR="$TARGET_DIR" RUSTC=/usr/bin/rustc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
	/usr/bin/cargo build --release --locked --no-default-features --target $TARGET --bin dashvault)
BIN=$TARGET_DIR/$TARGET/release/dashvault

# 2. Debian arm64 packages, downloaded once into OUT_DIR/debs.
KPKG=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\)/\1/p' | head -1)
KPKG=${KPKG%:arm64}
PKGS="busybox-static $KPKG e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1 libss2 libc6
	libgcc-s1 fdisk libfdisk1 libmount1 libsmartcols1 libreadline8 libtinfo6 libncursesw6
	libselinux1 libpcre2-8-0 util-linux"
log "resolving the libraries of: $TOOL_PKGS"
# shellcheck disable=SC2046,SC2086 # lists of packages
PKGS=$(echo $PKGS $(lib_deps $TOOL_PKGS) | tr ' ' '\n' | awk '!seen[$0]++')
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
for a in $TEST_APPLETS; do
	[ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
	[ -e "$R/sbin/$a" ] || ln -s ../bin/busybox "$R/sbin/$a"
done
# kmod's tools where Buildroot's kmod package puts them.
install -m 0755 "$OUT/arm64/bin/kmod" "$R/bin/kmod"
for f in modprobe rmmod lsmod modinfo depmod; do ln -sf ../bin/kmod "$R/sbin/$f"; done
# The hotspot's programs where Buildroot's packages put them, and the test
# client's apart, so the appliance's scripts still run BusyBox's ip.
# Debian's hostapd sits behind tests/image/rootfs/usr/sbin/hostapd, which
# gives it Buildroot's -s (log to syslog).
install -m 0755 "$OUT/arm64/usr/sbin/dnsmasq" "$OUT/arm64/sbin/iw" "$R/usr/sbin/"
install -D -m 0755 "$OUT/arm64/usr/sbin/hostapd" "$R/usr/libexec/debian/hostapd"
CLIENT=$R/usr/libexec/hotspot-client
mkdir -p "$CLIENT"
install -m 0755 "$OUT/arm64/sbin/wpa_supplicant" "$OUT/arm64/sbin/wpa_cli" "$OUT/arm64/bin/ip" "$CLIENT/"
check_libs "$R/bin/kmod" "$R/usr/libexec/debian/hostapd" "$R/usr/sbin/"{dnsmasq,iw} "$CLIENT/"{wpa_supplicant,wpa_cli,ip} \
	"$R/sbin/"{e2fsck,mke2fs,sfdisk,partx}
# Kernel modules, with the index modprobe reads.
M=$R/lib/modules/$KVER
mkdir -p "$M"
depmod -b "$OUT/kernel" "$KVER"
for m in $ROOT_MODULES; do
	deps=$(modprobe -d "$OUT/kernel" -S "$KVER" --show-depends "$m") ||
		{ echo "no module $m in linux $KVER" >&2; exit 1; }
	echo "$deps" | sed -n 's/^insmod \([^ ]*\).*/\1/p'
done | sort -u | while read -r ko; do
	install -D -m 0644 "$ko" "$M/${ko#"$OUT/kernel/lib/modules/$KVER/"}"
done
cp "$OUT/kernel/lib/modules/$KVER/"modules.{order,builtin,builtin.modinfo} "$M/"
depmod -b "$R" "$KVER"
log "$(find "$M" -name '*.ko*' | wc -l) kernel modules, $(du -sh "$M" | cut -f1)"
# Test equivalents of what Buildroot's packages install (mdev, network,
# dnsmasq scripts), then the test-only camera; the appliance's files come
# after, so they win where the names are the same, as on the real image.
cp -a "$TOP/tests/image/rootfs/." "$R/"
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
# Buildroot runs the board's post-build script over the target folder once
# every package is in (it adds the device rules to mdev.conf).
"$BOARD/post-build.sh" "$R"
# What Buildroot's skeleton provides for a read-only root.
ln -s ../tmp "$R/var/log"
ln -s ../tmp "$R/var/tmp"
ln -s ../run "$R/var/run"
ln -s ../../tmp "$R/var/lib/misc"
# nobody: dnsmasq drops its privileges to it.
printf 'root::0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$R/etc/group"
cat >"$R/etc/profile" <<'PROFILE'
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
PS1='# '
for f in /etc/profile.d/*.sh; do . "$f"; done
PROFILE
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
