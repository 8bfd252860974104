#!/usr/bin/env python3
"""The boot order of the image's /etc/init.d/S* scripts, worked out offline.

Collects the start scripts that the enabled Buildroot packages install
(read from their .mk files in the Buildroot tree, honouring the
`ifeq ($(BR2_...),...)` blocks around the installs and, for BusyBox, the
applets its config enables), then ours: the dashvault package's
files/S* and the overlay's etc/init.d/S*, which replace same-named ones.
rcS starts them in name order. Prints that order, and fails when a
script that needs the camera or Wi-Fi (its modules and firmware are
loaded by the coldplug script) starts before coldplug, or a script
starts before one it needs.

usage: init-order.py BUILDROOT_DIR OUTPUT_DIR EXTERNAL_DIR
  OUTPUT_DIR holds the .config and show-info.json of the defconfig.
"""

import json
import re
import sys
from pathlib import Path

# What starts a script needs, by name pattern: (needs, pattern of the
# script it needs, why). Matched against the part after S<nn>.
COLDPLUG = r"mdev|udev"
NEEDS = [
    (r"dashvault", COLDPLUG, "records from the camera, whose modules coldplug loads"),
    (r"hostapd", COLDPLUG, "needs wlan0, whose driver and firmware coldplug loads"),
    (r"dnsmasq", COLDPLUG, "serves the hotspot on wlan0"),
    (r"hostapd", r"settings", "reads the hotspot config that the settings script writes"),
    (r"dashvault", r"data", "records onto /data, which the data script mounts"),
]
# The scripts everything above waits for must exist.
REQUIRED = {COLDPLUG: "coldplug (S10mdev: BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_MDEV)"}

INSTALL_RE = re.compile(r"etc/init\.d/(S[0-9]{2}[A-Za-z0-9_.-]+)")
GREP_RE = re.compile(r"grep -q (CONFIG_[A-Z0-9_]+)=y")
COND_RE = re.compile(r"^\s*(else\s+)?(ifeq|ifneq)\s*\((.*),(.*)\)\s*$")


def read_config(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2).strip('"')
    return values


def expand(text, config):
    """Expands $(BR2_*) from .config; None when another variable is used."""
    unknown = False

    def sub(m):
        nonlocal unknown
        name = m.group(1)
        if name.startswith("BR2_"):
            return config.get(name, "")
        unknown = True
        return ""

    out = re.sub(r"\$\((\w+)\)", sub, text).strip()
    return None if unknown else out


def scripts_of_package(mk, config, applets):
    """S* names that a package .mk installs with this config."""
    found = []
    stack = []  # each entry: is this branch taken
    guard = None  # the last `grep -q CONFIG_X=y` inside a define
    for line in mk.read_text().splitlines():
        m = COND_RE.match(line)
        if m:
            is_else, kind, a, b = m.groups()
            a, b = expand(a, config), expand(b, config)
            taken = True if a is None or b is None else ((a == b) == (kind == "ifeq"))
            if is_else:
                # `else ifeq`: taken only if no earlier branch was.
                prev = stack.pop()
                taken = taken and not prev["any"]
                stack.append({"taken": taken, "any": prev["any"] or taken})
            else:
                stack.append({"taken": taken, "any": taken})
            continue
        if re.match(r"^\s*(ifdef|ifndef)\b", line):
            stack.append({"taken": True, "any": True})
            continue
        if re.match(r"^\s*else\s*$", line) and stack:
            prev = stack.pop()
            stack.append({"taken": not prev["any"], "any": True})
            continue
        if re.match(r"^\s*endif\b", line) and stack:
            stack.pop()
            continue
        if re.match(r"^\s*(define|endef)\b", line):
            guard = None
        g = GREP_RE.search(line)
        if g:
            guard = g.group(1)
        if re.search(r"\bfi\b", line) and not INSTALL_RE.search(line):
            guard = None
        if not all(s["taken"] for s in stack):
            continue
        for name in INSTALL_RE.findall(line):
            if guard and applets is not None and applets.get(guard) != "y":
                continue
            if name not in found:
                found.append(name)
    return found


def busybox_applets(br, config):
    """BusyBox's config: Buildroot's base file with our fragments applied."""
    base = config.get("BR2_PACKAGE_BUSYBOX_CONFIG", "package/busybox/busybox.config")
    values = {}
    files = [br / base] + [Path(f) for f in config.get("BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES", "").split()]
    for f in files:
        for line in f.read_text().splitlines():
            m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
            n = re.match(r"^# (CONFIG_\w+) is not set", line)
            if m:
                values[m.group(1)] = m.group(2)
            elif n:
                values[n.group(1)] = "n"
    return values


def main():
    br, out, ext = (Path(a) for a in sys.argv[1:4])
    config = read_config(out / ".config")
    # Paths in .config name $(BR2_EXTERNAL_DASHVAULT_PATH).
    for k, v in config.items():
        config[k] = v.replace("$(BR2_EXTERNAL_DASHVAULT_PATH)", str(ext))
    packages = json.loads((out / "show-info.json").read_text())
    if config.get("BR2_INIT_BUSYBOX") != "y" and config.get("BR2_INIT_SYSV") != "y":
        print("init order: not a BusyBox or SysV init; nothing to check")
        return 0

    scripts = {}  # name -> where it comes from
    mk_files = {p.stem: p for p in br.glob("package/**/*.mk")}
    for name in sorted(packages):
        mk = mk_files.get(name)
        if mk is None or packages[name].get("type") != "target":
            continue
        applets = busybox_applets(br, config) if name == "busybox" else None
        for s in scripts_of_package(mk, config, applets):
            scripts[s] = name
    for f in sorted((ext / "package/dashvault/files").glob("S[0-9][0-9]*")):
        scripts[f.name] = "dashvault package"
    overlay = config.get("BR2_ROOTFS_OVERLAY", "").split()
    for d in overlay:
        for f in sorted(Path(d, "etc/init.d").glob("S[0-9][0-9]*")):
            # The overlay is copied last: a same-named script is replaced.
            scripts[f.name] = "overlay" + (" (replaces " + scripts[f.name] + ")" if f.name in scripts else "")

    order = sorted(scripts)
    print("boot order (rcS runs /etc/init.d/S??* in name order):")
    for s in order:
        print(f"  {s:<16} {scripts[s]}")

    def find(pattern):
        return [s for s in order if re.search(pattern, s[3:])]

    fail = 0
    for pattern, what in REQUIRED.items():
        if not find(pattern):
            print(f"FAIL: no {what} script; camera and Wi-Fi drivers would not be loaded", file=sys.stderr)
            fail = 1
    for needs, pattern, why in NEEDS:
        prerequisites = find(pattern)
        for s in find(needs):
            for p in prerequisites:
                if s <= p:
                    print(f"FAIL: {s} starts before {p}, but it {why}", file=sys.stderr)
                    fail = 1
    return fail


if __name__ == "__main__":
    sys.exit(main())
