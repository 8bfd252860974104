#!/bin/sh
# Mount points on the read-only root, the version the console shows, and
# the device rules for USB serial devices.
set -eu

TARGET_DIR="$1"
mkdir -p "${TARGET_DIR}/boot" "${TARGET_DIR}/data"
BUILT="$(date -u +%Y-%m-%dT%H:%MZ)"
echo "dashvault image built ${BUILT}" > "${TARGET_DIR}/etc/dashvault-release"

# Stable names for USB serial devices (GPS receivers): BusyBox's mdev makes
# no /dev/serial/by-id of its own. The rules go first, with "-" so that
# mdev goes on to the package's own rules for the same devices.
MDEV_CONF="${TARGET_DIR}/etc/mdev.conf"
if [ -f "${MDEV_CONF}" ] && ! grep -q serial-by-id "${MDEV_CONF}"; then
	{
		echo '# dashvault: /dev/serial/by-id links for USB serial devices'
		echo '-ttyACM[0-9]+	root:root 660 */usr/libexec/dashvault/serial-by-id'
		echo '-ttyUSB[0-9]+	root:root 660 */usr/libexec/dashvault/serial-by-id'
		cat "${MDEV_CONF}"
	} >"${MDEV_CONF}.new"
	mv "${MDEV_CONF}.new" "${MDEV_CONF}"
fi
