#!/usr/bin/env bash
# Builds libcamera 0.7.2 (Debian's source package) with its 'virtual'
# pipeline and the memfd fallback patch next to this script, and installs it
# into a cache folder outside the source tree:
#
#   ${DASHVAULT_LIBCAMERA_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/dashvault/libcamera-0.7.2}
#
# A finished install is reused: the folder holds a stamp with the hash of
# what goes into it (version, meson options, patches, virtual.yaml), and a
# changed input rebuilds it.
# Prints the prefix on its last line of output. See README.md in this folder.
set -euo pipefail

VERSION=0.7.2
DEBIAN_VERSION=0.7.2-1
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${DASHVAULT_LIBCAMERA_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/dashvault/libcamera-$VERSION}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
APT_GET=(apt-get -o DPkg::Lock::Timeout=600)
# Only the virtual camera (no kernel driver needed) and UVC; no IPA modules.
# udev is required: without it the camera manager refuses to start on
# kernels that have no /sys/bus/media.
MESON_OPTIONS=(--buildtype=release -Dwerror=false -Dpipelines=virtual,uvcvideo '-Dipas=[]'
  -Dudev=enabled -Dcam=disabled -Ddocumentation=disabled -Dgstreamer=disabled
  -Dlc-compliance=disabled -Dlibdw=disabled -Dlibunwind=disabled -Dpycamera=disabled
  -Dqcam=disabled -Dtest=false -Dtracing=disabled -Dv4l2=false)

stamp=$({ echo "$DEBIAN_VERSION ${MESON_OPTIONS[*]}"; cat "$HERE"/*.patch "$HERE/virtual.yaml"; } \
  | sha256sum | cut -c1-16)
if [ -f "$PREFIX/.dashvault-stamp" ] && [ "$(cat "$PREFIX/.dashvault-stamp")" = "$stamp" ]; then
  echo "libcamera $VERSION already built in $PREFIX"
  echo "$PREFIX"
  exit 0
fi
started=$(date +%s)

# Build tools, plus what the libcamera crate's bindings need (clang for
# bindgen). libudev-dev must match the installed libudev1 exactly, or apt
# would upgrade systemd to satisfy it.
udev_version=$(dpkg-query -W -f='${Version}' libudev1)
packages=(meson ninja-build pkg-config g++ patch clang libclang-dev libyaml-dev libyuv-dev
  python3-yaml python3-jinja2 python3-ply openssl "libudev-dev=$udev_version")
missing=()
for p in "${packages[@]}"; do
  name=${p%%=*}
  dpkg -s "$name" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO "${APT_GET[@]}" update -qq
  # Another apt run finishing its own install can make the first attempt
  # see unmet dependencies; it succeeds once that run is done.
  for attempt in 1 2 3; do
    DEBIAN_FRONTEND=noninteractive $SUDO "${APT_GET[@]}" install -y -qq --no-install-recommends "${missing[@]}" && break
    [ "$attempt" = 3 ] && exit 1
    echo "apt-get install failed; trying again in 30 s"
    sleep 30
  done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dashvault-libcamera.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The source package only, through a private apt state so the machine's own
# sources and package lists stay as they are.
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
# sid has 0.7.2-1 today; the other suites keep it findable once sid moves on.
for suite in sid forky trixie-backports; do
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR $suite main"
done > "$work/apt/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
apt-get "${apt_private[@]}" update -qq
(cd "$work/src" && apt-get "${apt_private[@]}" source --download-only "libcamera=$DEBIAN_VERSION")
tar -xzf "$work/src/libcamera_$VERSION.orig.tar.gz" -C "$work/src"
srcdir=$(echo "$work"/src/libcamera-v$VERSION*/)
for patch in "$HERE"/*.patch; do
  echo "applying $(basename "$patch")"
  patch -d "$srcdir" -p1 --quiet < "$patch"
done

# The system python: a pyenv or venv python on PATH may lack ply and jinja2.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
rm -rf "$PREFIX"
meson setup "$work/build" "$srcdir" --prefix="$PREFIX" "${MESON_OPTIONS[@]}" \
  >"$work/meson-setup.log" || { cat "$work/meson-setup.log"; exit 1; }
ninja -C "$work/build" -j"$(nproc)"
ninja -C "$work/build" install >/dev/null
install -D -m 644 "$HERE/virtual.yaml" "$PREFIX/share/libcamera/pipeline/virtual/virtual.yaml"
echo "$stamp" > "$PREFIX/.dashvault-stamp"
echo "libcamera $VERSION built in $(( $(date +%s) - started )) s into $PREFIX"
echo "$PREFIX"
