#!/usr/bin/env bash
# Offline checks of the Buildroot external tree against a Buildroot
# checkout (nothing is downloaded or compiled; under a minute):
# defconfig loads, no requested symbol was silently dropped, every path the
# defconfig names exists, our package is defined, and Buildroot's
# check-package accepts our files.
# usage: tests/image/check-buildroot.sh /path/to/buildroot
set -euo pipefail
BR=$(cd "${1:?usage: $0 BUILDROOT_DIR}" && pwd)
TOP=$(cd "$(dirname "$0")/../.." && pwd)
EXT=$TOP/buildroot-external
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }
echo "Buildroot $(make -s -C "$BR" print-version 2>/dev/null || echo '?') at $BR"

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
	[ -e "$EXT/board/rpi0w2/dashvault.json.example" ] || err "post-image.sh needs board/rpi0w2/dashvault.json.example"
	brmake show-info >"$out/show-info.json" || { err "$name: show-info failed"; continue; }
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

# Buildroot's linter on our recipes, defconfig, init scripts and scripts.
# Its start-script rules are for daemons; S05data, S06clock and S07settings
# run once at boot.
for s in board/rpi0w2/rootfs-overlay/etc/init.d/S05data package/dashvault/files/S06clock \
	package/dashvault/files/S07settings; do
	echo "buildroot-external/$s lib_sysv.Variables"
done >"$WORK/ignore"
files=$(cd "$TOP" && find buildroot-external -type f \( -name 'Config.in*' -o -name '*.mk' \
	-o -name '*_defconfig' -o -name 'S[0-9][0-9]*' -o -name '*.sh' \))
# shellcheck disable=SC2086
(cd "$TOP" && /usr/bin/python3 "$BR/utils/check-package" -b \
	--ignore-list "$WORK/ignore" $files) || err "check-package"
# The overlay's other shell scripts, which check-package does not pick up.
(cd "$TOP" && shellcheck -s sh buildroot-external/package/dashvault/files/{dashvault-service,save-clock} \
	buildroot-external/board/rpi0w2/rootfs-overlay/etc/init.d/rc[SK]) ||
	err "shellcheck on the overlay's scripts"
# Buildroot builds the crate with --locked.
(cd "$TOP" && cargo metadata --locked --format-version 1 >/dev/null) || err "Cargo.lock out of date"
[ $fail = 0 ] && echo "buildroot checks passed"
exit $fail
