#!/bin/sh
# Installs dashvault as a systemd service on Raspberry Pi OS or any
# Debian-like system: the binary in /usr/local/bin, the config and the
# recordings in /var/lib/dashvault, run as the `dashvault` user (in the
# `video` group for the cameras).
#
# usage: sudo contrib/install.sh [path/to/dashvault]
#   (default: target/release/dashvault; build it first with `cargo build --release`)
# The dashboard listens on all addresses, port 8080; change `bind` and
# `port` in /var/lib/dashvault/dashvault.json and restart to change that.
set -eu
BIN=${1:-target/release/dashvault}
STATE=/var/lib/dashvault
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "$BIN not found: build it with 'cargo build --release' or pass its path" >&2; exit 1; }

install -m 0755 "$BIN" /usr/local/bin/dashvault
id dashvault >/dev/null 2>&1 || useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin dashvault
usermod -a -G video dashvault
install -d -o dashvault -g dashvault -m 0750 "$STATE"
if [ ! -f "$STATE/dashvault.json" ]; then
	# Cameras found now are written into the config.
	runuser -u dashvault -- /usr/local/bin/dashvault -c "$STATE/dashvault.json" \
		config init --bind 0.0.0.0 --port 8080 --data-dir "$STATE/data"
fi
install -D -m 0644 "$HERE/systemd/dashvault.service" /etc/systemd/system/dashvault.service
if [ -f "$HERE/../README.md" ]; then
	install -D -m 0644 "$HERE/../README.md" /usr/local/share/doc/dashvault/README.md
fi
systemctl daemon-reload
systemctl enable --now dashvault.service
echo "dashvault is running: systemctl status dashvault; journalctl -u dashvault"
echo "token: $(cat "$STATE/dashvault.token" 2>/dev/null || echo 'created at first start, in' "$STATE/dashvault.token")"
