#!/bin/sh
# Mount points on the read-only root, and the version the console shows.
set -eu

TARGET_DIR="$1"
mkdir -p "${TARGET_DIR}/boot" "${TARGET_DIR}/data"
BUILT="$(date -u +%Y-%m-%dT%H:%MZ)"
echo "dashvault image built ${BUILT}" > "${TARGET_DIR}/etc/dashvault-release"
