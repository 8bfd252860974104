#!/bin/sh
# Builds output/images/dashvault-rpi0w2.img from the firmware, the kernel,
# the device tree and the squashfs root (layout in genimage.cfg).
set -eu

BOARD_DIR="$(dirname "$0")"
GENIMAGE_TMP="${BUILD_DIR}/genimage.tmp"

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
