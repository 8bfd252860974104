#!/usr/bin/env bash
# Checks of the Buildroot external tree against the pinned Buildroot
# release, offline but for crates.io when Buildroot's cargo home lacks a
# crate (nothing is compiled; about a minute):
# - the tree is the release in buildroot-external/buildroot.version;
# - the defconfig loads, no requested symbol was silently dropped, every
#   path it names exists, our package is defined;
# - the kernel fragment's options are known ones and its default cpufreq
#   governor is not powersave;
# - the start order of every init script the image gets (tests/buildroot/
#   init-order.py);
# - dnsmasq and hostapd accept the hotspot's configs (tests/buildroot/
#   hotspot-config.sh);
# - Buildroot's rsync of the package and its vendoring give a tree that
#   cargo resolves offline with an empty cargo home;
# - Buildroot's check-package accepts our files.
# usage: tests/image/check-buildroot.sh /path/to/buildroot
set -euo pipefail
BR=$(cd "${1:?usage: $0 BUILDROOT_DIR}" && pwd)
TOP=$(cd "$(dirname "$0")/../.." && pwd)
EXT=$TOP/buildroot-external
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }
PINNED=$(cat "$EXT/buildroot.version")
HAVE=$(make -s --no-print-directory -C "$BR" print-version 2>/dev/null || echo '?')
echo "Buildroot $HAVE at $BR"
if [ "$HAVE" != "$PINNED" ]; then
	echo "FAIL: $BR is Buildroot $HAVE, but buildroot-external/buildroot.version pins $PINNED" >&2
	exit 1
fi

# Kconfig symbols the kernel fragment may set: each was looked up in the
# pinned Raspberry Pi kernel (rpi-6.12, the defconfig's tarball), which is
# not here to check against. A misspelt option is dropped without a word
# (post-image.sh refuses an image whose kernel lacks one); add a new one
# here once it is checked in that kernel's Kconfig files.
KNOWN_KERNEL_SYMBOLS="
	SQUASHFS SQUASHFS_LZ4 SQUASHFS_FILE_DIRECT EXT4_FS VFAT_FS
	NLS_CODEPAGE_437 NLS_ISO8859_1 WATCHDOG BCM2835_WDT HW_RANDOM
	HW_RANDOM_BCM2835 CPU_FREQ CPU_FREQ_DEFAULT_GOV_SCHEDUTIL
	CPU_FREQ_DEFAULT_GOV_ONDEMAND CPU_FREQ_GOV_SCHEDUTIL CPU_FREQ_GOV_ONDEMAND
	ARM_RASPBERRYPI_CPUFREQ USB_ACM USB_SERIAL USB_SERIAL_FTDI_SIO
	USB_SERIAL_CP210X USB_SERIAL_CH341 USB_SERIAL_PL2303"
FRAGMENT=$EXT/board/rpi0w2/linux.fragment
while read -r opt; do
	# shellcheck disable=SC2086,SC2116 # the list on one line
	case " $(echo $KNOWN_KERNEL_SYMBOLS) " in
	*" ${opt#CONFIG_} "*) ;;
	*) err "linux.fragment: $opt is not in the list of checked kernel options (check-buildroot.sh)" ;;
	esac
done < <(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=.*/\1/p; s/^# \(CONFIG_[A-Z0-9_]*\) is not set/\1/p' "$FRAGMENT")
# bcm2711_defconfig's default governor is powersave, the lowest clock.
governors=$(sed -n 's/^CONFIG_CPU_FREQ_DEFAULT_GOV_\([A-Z]*\)=y$/\1/p' "$FRAGMENT")
case "$governors" in
'') err "linux.fragment sets no default cpufreq governor (bcm2711_defconfig's is powersave)" ;;
POWERSAVE) err "linux.fragment keeps powersave as the default cpufreq governor" ;;
*[!A-Z]*) err "linux.fragment sets more than one default cpufreq governor: $governors" ;;
*)
	grep -qx "CONFIG_CPU_FREQ_GOV_$governors=y" "$FRAGMENT" ||
		err "linux.fragment: the default governor needs CONFIG_CPU_FREQ_GOV_$governors=y"
	echo "kernel: default cpufreq governor $governors"
	;;
esac

for dc in "$EXT"/configs/*_defconfig; do
	name=$(basename "$dc")
	out=$WORK/$name
	brmake() { make -s -C "$BR" O="$out" BR2_EXTERNAL="$EXT" "$@"; }
	echo "== $name"
	brmake "$name" >/dev/null || { err "$name: make defconfig failed"; continue; }
	# Kconfig drops unknown symbols and ones with unmet dependencies without
	# a word; this is the check Buildroot's own CI runs on its defconfigs.
	python3 "$BR/support/scripts/check-dotconfig.py" "$out/.config" "$dc" ||
		err "$name: some lines were not applied"
	# Canonical form, into a scratch file (plain savedefconfig would
	# overwrite ours): informational.
	brmake savedefconfig BR2_DEFCONFIG="$out/saved" >/dev/null
	extra=$(comm -23 <(grep -v '^#' "$dc" | sort) <(sort "$out/saved") || true)
	[ -z "$extra" ] || printf 'note: lines equal to the default:\n%s\n' "$extra"
	vars="BR2_ROOTFS_OVERLAY BR2_ROOTFS_POST_BUILD_SCRIPT BR2_ROOTFS_POST_IMAGE_SCRIPT
		BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE
		BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES
		BR2_GLOBAL_PATCH_DIR"
	checked=0
	while IFS='=' read -r v val; do
		for p in $(echo "$val" | tr -d '"'); do
			(cd "$BR" && [ -e "$p" ]) || err "$name: $v names $p, which does not exist"
			checked=$((checked + 1))
		done
	done < <(brmake printvars VARS="$(echo "$vars" | tr -s ' \t\n' ' ')" 2>/dev/null)
	echo "$checked paths exist"
	# BusyBox's sources are not here to check the fragment against; every
	# option it sets must at least be one Buildroot's BusyBox config knows
	# (a misspelt one would be dropped without a word).
	while read -r opt; do
		grep -Eq "^(# )?${opt}[= ]" "$BR/package/busybox/busybox.config" ||
			err "busybox.fragment: $opt is not a BusyBox option"
	done < <(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=.*/\1/p' "$EXT/board/rpi0w2/busybox.fragment")
	# Programs the init scripts call that only an optional package (or
	# package option) installs: a script calling a missing one fails at
	# boot, never at build time.
	scripts=$(find "$EXT/board/rpi0w2/rootfs-overlay/etc/init.d" "$EXT/package/dashvault/files" -type f)
	for need in resize2fs:BR2_PACKAGE_E2FSPROGS_RESIZE2FS tune2fs:BR2_PACKAGE_E2FSPROGS \
		mke2fs:BR2_PACKAGE_E2FSPROGS partx:BR2_PACKAGE_UTIL_LINUX_PARTX \
		hostapd:BR2_PACKAGE_HOSTAPD dnsmasq:BR2_PACKAGE_DNSMASQ; do
		prog=${need%%:*} sym=${need#*:}
		# shellcheck disable=SC2086 # one word per script
		if grep -qw "$prog" $scripts && ! grep -qx "$sym=y" "$out/.config"; then
			err "$name: an init script runs $prog, which needs $sym=y"
		fi
	done
	[ -e "$EXT/board/rpi0w2/dashvault.json.example" ] || err "post-image.sh needs board/rpi0w2/dashvault.json.example"
	brmake show-info >"$out/show-info.json" || { err "$name: show-info failed"; continue; }
	python3 "$TOP/tests/buildroot/init-order.py" "$BR" "$out" "$EXT" || err "$name: init script order"
	# The package's sources as Buildroot copies them in, vendored as its
	# build step does (crates from this machine's cargo home when it has
	# them all, else from crates.io), must resolve offline with an empty
	# cargo home: that is all the build has.
	src=$out/build/dashvault-local
	if brmake dashvault-rsync BR2_DL_DIR="$WORK/dl" >/dev/null; then
		brmake printvars VARS=DASHVAULT_VENDOR_CRATES BR_CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" |
			sed 's/^DASHVAULT_VENDOR_CRATES=[[:space:]]*//' >"$WORK/vendor.sh"
		mkdir -p "$WORK/empty-cargo-home"
		if (cd "$src" && bash "$WORK/vendor.sh" >"$WORK/vendor.log" 2>&1) &&
			(cd "$src" && CARGO_HOME="$WORK/empty-cargo-home" cargo metadata --offline --locked \
				--format-version 1 >/dev/null); then
			echo "vendored: $(find "$src/VENDOR" -mindepth 1 -maxdepth 1 | wc -l) crates; cargo resolves the build offline"
			# cargo build refuses a manifest whose declared targets are
			# missing, which metadata does not notice: the rsync exclusions
			# must leave every one in.
			python3 - "$src" <<'PY' || err "$name: the package's rsync leaves out files Cargo.toml names"
import sys, tomllib
from pathlib import Path
src = Path(sys.argv[1])
manifest = tomllib.loads((src / "Cargo.toml").read_text())
folders = {"bin": "src/bin", "bench": "benches", "test": "tests", "example": "examples"}
missing = []
for kind, folder in folders.items():
    for t in manifest.get(kind, []):
        paths = [t["path"]] if "path" in t else [f"{folder}/{t['name']}.rs", f"{folder}/{t['name']}/main.rs"]
        if kind == "bin" and "path" not in t:
            paths.append("src/main.rs")
        if not any((src / p).exists() for p in paths):
            missing.append(f"[[{kind}]] {t['name']}: {' or '.join(paths)}")
for p in [manifest.get("lib", {}).get("path", "src/lib.rs"), manifest["package"].get("build", "build.rs")]:
    if p and not (src / p).exists():
        missing.append(p)
for m in missing:
    print(f"FAIL: Cargo.toml names {m}, which Buildroot does not copy in", file=sys.stderr)
sys.exit(1 if missing else 0)
PY
		else
			tail -n 20 "$WORK/vendor.log" >&2
			err "$name: the package's vendored sources do not resolve offline"
		fi
	else
		err "$name: dashvault-rsync failed"
	fi
	# A typo in '$(eval $(cargo-package))' makes the package vanish silently.
	python3 - "$out/show-info.json" <<'PY' || err "$name: dashvault is not a defined package"
import json, sys
info = json.load(open(sys.argv[1]))
p = info.get("dashvault")
if not p:
    sys.exit(1)
print("show-info: dashvault", p.get("version"), "depends on", ", ".join(sorted(p.get("dependencies", []))))
print(len(info), "packages,", sum(len(x.get("downloads", [])) for x in info.values()), "files to download")
PY
done

# The hotspot's configs, read by dnsmasq and hostapd.
bash "$TOP/tests/buildroot/hotspot-config.sh" "$EXT" || err "hotspot configs"

# Buildroot's linter on our recipes, defconfig, init scripts and scripts.
# Two of its start-script rules are waived where they do not apply (its
# ignore list takes paths from the list's folder, hence absolute ones):
# - DAEMON, PIDFILE...: for daemons; the scripts that start none run once
#   at boot;
# - not executable in a package folder: dashvault.mk installs them with
#   mode 0755 whatever their mode in git.
find "$EXT" -type f -name 'S[0-9][0-9]*' | while read -r s; do
	waive=""
	grep -q '^DAEMON=' "$s" || waive="lib_sysv.Variables"
	case "$s" in
	*/package/*) [ ! -x "$s" ] || waive="$waive NotExecutable" ;;
	esac
	[ -z "$waive" ] || echo "$s $waive"
done >"$WORK/ignore"
files=$(cd "$TOP" && find buildroot-external -type f \( -name 'Config.in*' -o -name '*.mk' \
	-o -name '*_defconfig' -o -name 'S[0-9][0-9]*' -o -name '*.sh' \))
# shellcheck disable=SC2086
(cd "$TOP" && /usr/bin/python3 "$BR/utils/check-package" -b \
	--ignore-list "$WORK/ignore" $files) || err "check-package"
# The other shell scripts the image runs, which check-package does not
# pick up: the package's helpers and the overlay's rcS/rcK.
others=$(cd "$TOP" && find buildroot-external/package/dashvault/files -type f ! -name 'S[0-9][0-9]*';
	find buildroot-external/board/rpi0w2/rootfs-overlay/etc/init.d -type f -name 'rc[SK]')
# shellcheck disable=SC2086
(cd "$TOP" && shellcheck -s sh $others) || err "shellcheck on the package's and overlay's scripts"
# Buildroot builds the crate with --locked.
(cd "$TOP" && cargo metadata --locked --format-version 1 >/dev/null) || err "Cargo.lock out of date"
[ $fail = 0 ] && echo "buildroot checks passed"
exit $fail
