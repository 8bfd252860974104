#!/usr/bin/env bash
# The hotspot's configs as the image has them, read by the real programs
# (Debian's dnsmasq and hostapd; no radio needed):
# - dnsmasq --test on the overlay's /etc/dnsmasq.conf;
# - hostapd on the config the settings script writes at boot, made by its
#   own write_hostapd_conf with a stand-in `dashvault config get`, once
#   with no settings (generated name and password) and once with chosen
#   ones. hostapd has no dry run: it parses the whole file before it
#   touches the driver, so a run that gets as far as the driver (and
#   fails there, in a network namespace with no Wi-Fi) has accepted
#   every line; a config mistake shows as "Line N: ...".
# usage: tests/buildroot/hotspot-config.sh EXTERNAL_DIR
set -euo pipefail
EXT=$(cd "${1:?usage: $0 EXTERNAL_DIR}" && pwd)
OVERLAY=$EXT/board/rpi0w2/rootfs-overlay
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }

if out=$(dnsmasq --test --conf-file="$OVERLAY/etc/dnsmasq.conf" 2>&1); then
	echo "dnsmasq.conf: $out"
else
	err "dnsmasq rejects etc/dnsmasq.conf: $out"
fi

# The script that writes hostapd's config at boot.
writer=$(grep -l '^write_hostapd_conf()' "$EXT"/package/dashvault/files/* "$OVERLAY"/etc/init.d/* 2>/dev/null | head -n 1 || true)
if [ -z "$writer" ]; then
	err "no script defines write_hostapd_conf(); cannot check the hostapd config the image writes"
	exit 1
fi

# `dashvault -c CONFIG config get KEY` answers from $WORK/settings.
cat >"$WORK/dashvault" <<'EOF'
#!/bin/sh
[ "$3 $4" = "config get" ] || exit 2
line=$(grep "^$5=" "$SETTINGS_VALUES") || exit 1
echo "${line#*=}"
EOF
chmod +x "$WORK/dashvault"

# Runs write_hostapd_conf from $writer (sourced: it does nothing without
# an argument) with its files in $WORK; prints the config's path.
write_conf() {
	local name=$1
	SETTINGS_VALUES=$WORK/$name.values sh -c '
		script=$1 work=$2 name=$3
		set --
		. "$script"
		DASHVAULT=$work/dashvault
		CONFIG=$work/$name.json
		PASSWORD_FILE=$work/$name.password
		HOSTAPD_CONF=$work/$name.hostapd.conf
		write_issue() { :; }
		board_suffix() { echo 1a2b; }
		write_hostapd_conf >/dev/null
	' sh "$writer" "$WORK" "$name" 2>"$WORK/$name.stderr"
	sed "s/^/note: $name: ${writer##*/} said: /" "$WORK/$name.stderr" >&2
	echo "$WORK/$name.hostapd.conf"
}

# hostapd on a copy whose interface cannot be a real one.
hostapd_parse() {
	local conf=$1 ns=()
	sed 's/^interface=.*/interface=dvcheck0/' "$conf" >"$conf.check"
	[ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null && ns=(unshare --net)
	"${ns[@]}" timeout 20 hostapd "$conf.check" 2>&1 || true
}

check_hostapd() {
	local name=$1 want_ssid=$2 want_password=$3 conf out
	conf=$(write_conf "$name") || { err "$name: write_hostapd_conf failed"; return; }
	[ -s "$conf" ] || { err "$name: write_hostapd_conf wrote no config"; return; }
	grep -qxF "ssid=$want_ssid" "$conf" || err "$name: ssid is not '$want_ssid': $(grep '^ssid=' "$conf")"
	if [ -n "$want_password" ]; then
		grep -qxF "wpa_passphrase=$want_password" "$conf" || err "$name: wpa_passphrase is not the chosen one"
	fi
	out=$(hostapd_parse "$conf")
	if grep -qE '^Line [0-9]+:|errors? found in configuration file' <<<"$out"; then
		err "$name: hostapd rejects the config:"
		grep -E '^Line [0-9]+:|errors? found' <<<"$out" >&2
	elif grep -qiE 'nl80211|driver' <<<"$out"; then
		echo "hostapd.conf ($name): every line accepted (stopped at the driver: no radio here)"
	else
		err "$name: hostapd did not get as far as the driver:"
		echo "$out" >&2
	fi
}

: >"$WORK/generated.values"
check_hostapd generated dashvault-1a2b ""
password=$(sed -n 's/^wpa_passphrase=//p' "$WORK/generated.hostapd.conf")
case "$password" in
????????????) ;;
*) err "generated: the generated password '$password' is not 12 characters" ;;
esac
printf '%s\n' 'wifi.ssid=Dash cam ü 7' 'wifi.password=a long pass phrase' \
	'wifi.country=DE' 'wifi.channel=11' >"$WORK/chosen.values"
check_hostapd chosen "Dash cam ü 7" "a long pass phrase"
exit $fail
