"""The Wi-Fi hotspot end to end, inside one test VM (run.py boots it).

The appliance's own S45hostapd waits for wlan0; the test then loads
mac80211_hwsim with two simulated radios. The first becomes wlan0, where
S45hostapd starts hostapd with the config S07settings wrote and dnsmasq
(S80dnsmasq, the appliance's /etc/dnsmasq.conf) serves DHCP and DNS. The
second radio is moved into a network namespace of its own, "client", so
the phone's side shares nothing with the appliance but the simulated air:
wpa_supplicant joins with the password from the settings, BusyBox udhcpc
takes a lease, any name resolves to the dashvault, and BusyBox wget opens
the login page and, with the token, /api/status (under `timeout`: Debian's
static BusyBox 1.35 wget crashes with its own -T). Then a wrong password
must not get on: no completed handshake and no lease.

Every wait is a bounded loop on the VM's side, inside a console command
with its own timeout.
"""
import json
import re

CLIENT = "/usr/libexec/hotspot-client"
NS = f"{CLIENT}/ip netns exec client"
WPA_CTRL = "/run/wpa-client"
AP = "192.168.4.1"


def wait_in_vm(vm, condition, seconds, then="true", step=1):
    """Runs `then` once the shell condition holds, or after `seconds`
    (the condition's last result is the command's status)."""
    rc, out = vm.run(f"i=0; until {condition}; do [ $i -ge {seconds} ] && break; sleep {step}; "
                     f"i=$((i + 1)); done; {condition} && {then}", timeout=seconds * step + 60)
    return rc, out


def wpa_state(vm):
    rc, out = vm.run(f"{NS} {CLIENT}/wpa_cli -p {WPA_CTRL} -i wlan1 status 2>&1 | grep '^wpa_state='")
    return out.strip().split("=", 1)[-1]


def start_client(vm, ssid, password):
    conf = f"/tmp/client-{len(password)}.conf"
    vm.run(f"printf 'ctrl_interface={WPA_CTRL}\\nnetwork={{\\n\\tssid=\"%s\"\\n\\tpsk=\"%s\"\\n"
           f"\\tkey_mgmt=WPA-PSK\\n}}\\n' '{ssid}' '{password}' >{conf}")
    rc, out = vm.run(f"{NS} {CLIENT}/wpa_supplicant -B -s -i wlan1 -c {conf} -P /run/wpa-client.pid")
    return rc, out


def stop_client(vm):
    vm.run("kill $(cat /run/wpa-client.pid) 2>/dev/null; i=0; while [ -e /run/wpa-client.pid ] && "
           "[ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done; rm -f /run/client-lease; "
           f"{NS} ip addr flush dev wlan1")


def lease(vm, tries):
    """BusyBox udhcpc in the client's namespace: the lease it got, or None."""
    rc, out = vm.run(f"{NS} udhcpc -i wlan1 -n -q -t {tries} -T 2 -s {CLIENT}/udhcpc.script >/dev/null 2>&1; "
                     "cat /run/client-lease 2>/dev/null", timeout=tries * 3 + 60)
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return fields if rc == 0 and fields.get("ip") else None


def check_hotspot(vm, check, token, ssid, password):
    # Before the radios: S45hostapd waits for wlan0, dnsmasq runs.
    vm.run("dmesg -n 1")  # kernel messages off the console: they would mix into the output read here
    rc, out = vm.run("ls /sys/class/net; ps")
    hostapd_runs = re.search(r"(?m)^\s*\d+\s+\S+\s+(\S*/)?hostapd\s", out)
    check("wlan0" not in out and "S45hostapd" in out and not hostapd_runs,
          "S45hostapd waits for wlan0 (no Wi-Fi interface yet)")
    check(re.search(r"/usr/sbin/dnsmasq", out), "dnsmasq runs (S80dnsmasq)")

    rc, out = vm.run("/sbin/modprobe mac80211_hwsim radios=2 && ls /sys/class/net | tr '\\n' ' '", timeout=120)
    check(rc == 0 and "wlan0" in out and "wlan1" in out, f"mac80211_hwsim: two radios ({out.strip()})")

    # The appliance's side: hostapd on wlan0 with the hotspot's address.
    rc, out = wait_in_vm(vm, "iw dev wlan0 info 2>/dev/null | grep -q 'ssid '", 60,
                         then="iw dev wlan0 info; ip addr show wlan0; ps | grep '[h]ostapd'")
    check(rc == 0 and f"inet {AP}/24" in out and f"ssid {ssid}" in out,
          f"S45hostapd started hostapd: wlan0 is an access point for {ssid!r} at {AP}")

    # The client's side: the second radio in a namespace of its own.
    rc, out = vm.run(f"{CLIENT}/ip netns add client && phy=$(basename $(readlink /sys/class/net/wlan1/phy80211)) && "
                     f"iw phy $phy set netns name client && {NS} ip link set lo up && {NS} ls /sys/class/net")
    check(rc == 0 and "wlan1" in out and "wlan0" not in out,
          "the second radio is in the client's network namespace")

    rc, out = start_client(vm, ssid, password)
    check(rc == 0, "wpa_supplicant started in the client's namespace")
    rc, out = wait_in_vm(vm, f"{NS} {CLIENT}/wpa_cli -p {WPA_CTRL} -i wlan1 status 2>/dev/null | "
                             "grep -q '^wpa_state=COMPLETED'", 60)
    check(rc == 0, f"client associated with the password from the settings (wpa_state {wpa_state(vm)})")

    got = lease(vm, 10)
    check(got is not None and re.fullmatch(r"192\.168\.4\.\d+", got.get("ip", ""))
          and got.get("router") == AP and got.get("dns") == AP,
          f"client got a DHCP lease from dnsmasq: {got}")
    rc, out = vm.run("cat /run/dnsmasq.leases")
    check(got is not None and got["ip"] in out, "dnsmasq lists the client's lease")

    rc, out = vm.run(f"{NS} nslookup anything.example {AP}")
    check(re.search(r"Name:\s*anything\.example\s*\n\s*Address:\s*192\.168\.4\.1\b", out),
          "any name resolves to the dashvault (anything.example -> 192.168.4.1)")

    rc, out = vm.run(f"{NS} timeout 20 wget -q -O - http://{AP}/")
    check(rc == 0 and "<html" in out.lower(), "the client opens the login page at http://192.168.4.1/")
    rc, out = vm.run(f"{NS} timeout 20 wget -q -O - http://{AP}/api/status >/dev/null 2>&1")
    check(rc != 0, "/api/status without the token is refused")
    rc, out = vm.run(f"{NS} timeout 20 wget -q -O - --header 'Authorization: Bearer {token}' http://{AP}/api/status")
    body = out[out.find("{"):] if "{" in out else ""
    try:
        cams = json.loads(body).get("cameras")
    except ValueError:
        cams = None
    check(rc == 0 and isinstance(cams, list),
          f"the client reads /api/status with the token ({len(cams or [])} camera(s))")

    # A wrong password: no completed handshake, no lease.
    stop_client(vm)
    rc, out = start_client(vm, ssid, "wrong-password-0")
    states = set()
    for _ in range(20):
        states.add(wpa_state(vm))
        if "COMPLETED" in states:
            break
        vm.run("sleep 1")
    check("COMPLETED" not in states, f"a wrong password does not associate within 20 s (states {sorted(states)})")
    rc, out = vm.run("logread | grep -c -e 'reason=WRONG_KEY' -e 'AP-STA-POSSIBLE-PSK-MISMATCH' || true")
    check(int(out.split()[0]) > 0, "the handshake fails on the key (wpa_supplicant: WRONG_KEY, hostapd: PSK mismatch)")
    got = lease(vm, 3)
    check(got is None, "no lease with a wrong password")
    stop_client(vm)
