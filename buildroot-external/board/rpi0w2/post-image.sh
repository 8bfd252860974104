#!/bin/sh
# Builds output/images/dashvault-rpi0w2.img from the firmware, the kernel,
# the device tree and the squashfs root (layout in genimage.cfg).
set -eu

BOARD_DIR="$(dirname "$0")"
GENIMAGE_TMP="${BUILD_DIR}/genimage.tmp"

# Kconfig drops an option whose dependencies are not met without a word;
# an image whose kernel lacks one that linux.fragment asks for is refused.
KERNEL_CONFIG="$(find "${BUILD_DIR}" -mindepth 2 -maxdepth 2 -path '*/linux-*/.config' | head -n 1)"
if [ -z "${KERNEL_CONFIG}" ]; then
	echo "post-image: no kernel .config in ${BUILD_DIR}/linux-*" >&2
	exit 1
fi
MISSING=0
while IFS= read -r line; do
	case "${line}" in
	CONFIG_*=*)
		if ! grep -qxF "${line}" "${KERNEL_CONFIG}"; then
			echo "post-image: the kernel was built without ${line} (linux.fragment)" >&2
			MISSING=1
		fi
		;;
	esac
done <"${BOARD_DIR}/linux.fragment"
[ "${MISSING}" = 0 ] || exit 1

# A settings file to copy to dashvault.json and edit from any computer.
cp "${BOARD_DIR}/dashvault.json.example" "${BINARIES_DIR}/dashvault.json.example"

trap 'rm -rf "${ROOTPATH_TMP}"' EXIT
ROOTPATH_TMP="$(mktemp -d)"
rm -rf "${GENIMAGE_TMP}"

genimage \
	--rootpath "${ROOTPATH_TMP}" \
	--tmppath "${GENIMAGE_TMP}" \
	--inputpath "${BINARIES_DIR}" \
	--outputpath "${BINARIES_DIR}" \
	--config "${BOARD_DIR}/genimage.cfg"
