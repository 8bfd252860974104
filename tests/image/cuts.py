#!/usr/bin/env python3
"""Boot scripts under power cuts and odd cards, on the virt machine with the
image served by nbdkit's writeback cache (unflushed writes are lost when the
VM is killed, as on an SD card). Run by run.py after its own tests; or
alone: cuts.py OUT_DIR [TEST...] after build.sh OUT_DIR (and run.py, for
the `used` test, which starts from run.py's image).

first_boot  A fresh image, cut during the partition grow and during mke2fs
            at a few delays; the boot after that ends with a full-size,
            clean /data labelled "data" and `verify --deep` passes. The
            same boot then checks /dev/shm (1777), that the hotspot loop
            keeps waiting for a wlan0 that never comes and that its stop
            ends it, and a console `reboot` while recording: the recorder
            is stopped before /data is remounted, and the next boot finds
            the filesystem clean and no segment to recover.
unfinished  A full-size filesystem labelled data-new (mke2fs was cut) is
            formatted again.
larger      A filesystem larger than the card's room for it (an older
            image's, left by a tool that skips unused blocks) is formatted
            again.
used        run.py's image, recorded on, with its partition table entry
            shrunk back to the image's 16 MiB (a grow that never reached
            the card): grown again, filesystem and recordings kept.
small       A partition and filesystem of 32 MiB: the partition is grown
            and the filesystem grown online to match.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

DATA_DEV = "/dev/vda3"
SECTOR = 512
MIB = 1 << 20
# S05data's SLACK_MIB: less room than this left unused is not grown into.
SLACK_MIB = 8
CUT_TIMEOUT_S = 150
# When a cut is made after the console names the step (s). TCG is slow:
# mke2fs of the test card's 140 MiB takes a few seconds there.
CUTS = [("growing", 0.0), ("growing", 0.3), ("growing", 1.0),
        ("formatting", 0.0), ("formatting", 0.6), ("formatting", 1.0), ("formatting", 1.5)]
CUT_PATTERNS = {"growing": r"data: growing /dev/vda3", "formatting": r"formatting /dev/vda3"}
# Lines no boot of these tests may print.
NEVER = [("can't open", "no \"can't open\" on the console"),
         ("no hotspot", "the hotspot loop never gives up"),
         ("recording into RAM", "/data never falls back to RAM")]

rt = None  # run.py, for its VM helpers
port = None


def image_copy(name, source="sdcard.img"):
    path = os.path.join(rt.OUT, name)
    shutil.copyfile(os.path.join(rt.OUT, source), path)
    return path


def mbr_partition(image, n):
    """(start, size) of primary partition n, in sectors."""
    with open(image, "rb") as f:
        f.seek(446 + 16 * (n - 1) + 8)
        return struct.unpack("<II", f.read(8))


def set_mbr_partition_size(image, n, sectors):
    with open(image, "r+b") as f:
        f.seek(446 + 16 * (n - 1) + 12)
        f.write(struct.pack("<I", sectors))


def mkfs_at(image, start, size_bytes, label):
    """An ext4 of size_bytes written at sector start of image, cut off at the
    image's end if it is larger (as if the rest had gone with the old card)."""
    room = os.path.getsize(image) - start * SECTOR
    tmp = image + ".fs"
    with open(tmp, "wb") as f:
        f.truncate(size_bytes)
    subprocess.run(["mke2fs", "-F", "-q", "-t", "ext4", "-L", label, "-E", "nodiscard", tmp],
                   check=True)
    with open(tmp, "rb") as src, open(image, "r+b") as dst:
        dst.seek(start * SECTOR)
        left = min(size_bytes, room)
        while left:
            buf = src.read(min(left, 4 * MIB))
            dst.write(buf)
            left -= len(buf)
    os.unlink(tmp)


def boot(image, name):
    vm = rt.boot_virt_nbd(image, port, name)
    vm.name = name
    return vm


def check_console(vm):
    text = vm.text()
    for needle, what in NEVER:
        if needle in text:
            rt.check(False, f"{vm.name}: {what} (console in {vm.log_path})")


def data_state(vm):
    """What the running VM has on /data: mount, df, label, sizes (MiB)."""
    rc, out = vm.run(
        "echo \"mount=$(grep ' /data ' /proc/mounts)\"; "
        "echo \"df=$(df -k /data | tail -1)\"; "
        f"dumpe2fs -h {DATA_DEV} 2>/dev/null | sed -n -e 's/^Filesystem volume name: */label=/p' "
        "-e 's/^Block count: */blocks=/p' -e 's/^Block size: */block_size=/p'; "
        "echo start=$(cat /sys/class/block/vda3/start); echo size=$(cat /sys/class/block/vda3/size); "
        "echo disk=$(cat /sys/class/block/vda/size); echo fsck=$(cat /run/dashvault/fsck.rc)")
    v = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    start, size, disk = (int(v[k]) for k in ("start", "size", "disk"))
    return {
        "mount": v["mount"].strip(),
        "df_mib": int(v["df"].split()[1]) // 1024,
        "label": v.get("label", "(none)").strip(),
        "fs_mib": int(v.get("blocks", 0)) * int(v.get("block_size", 0)) // MIB,
        "part_mib": size * SECTOR // MIB,
        "free_after_mib": (disk - start - size) * SECTOR // MIB,
        "fsck_rc": int(v["fsck"] or -1),
    }


def check_full_data(vm, what, fsck_ok=(0, 1)):
    s = data_state(vm)
    rt.check(re.search(r" /data ext4 rw[ ,]", s["mount"]) is not None,
             f"{what}: /data is ext4, mounted read-write ({s['mount'] or 'not mounted'})")
    rt.check(s["label"] == "data", f"{what}: label {s['label']!r}")
    rt.check(s["free_after_mib"] < SLACK_MIB,
             f"{what}: partition {s['part_mib']} MiB, {s['free_after_mib']} MiB left after it")
    rt.check(s["part_mib"] - s["fs_mib"] < SLACK_MIB and s["df_mib"] > 100,
             f"{what}: filesystem {s['fs_mib']} MiB fills it (df {s['df_mib']} MiB)")
    rt.check(s["fsck_rc"] in fsck_ok, f"{what}: e2fsck -p rc {s['fsck_rc']}")
    return s


def token(vm):
    # The boot partition's settings set it; a token file is made otherwise.
    return vm.run("dashvault config get auth_token 2>/dev/null || cat /data/dashvault.token")[1].strip()


def frames_written(tok):
    _, body = rt.http(port, "/api/status", tok)
    return {c["id"]: c["written"] for c in json.loads(body)["cameras"]}.get("front", 0)


def check_recording(vm, what, seconds=4):
    rt.wait_http(vm, port)
    tok = token(vm)
    w0 = frames_written(tok)
    time.sleep(seconds)
    w1 = frames_written(tok)
    rt.check(w1 > w0, f"{what}: recording ({w0} -> {w1} frames in {seconds} s)")
    return tok


def check_verify(vm, what):
    rc, report, frames = rt.verify_deep(vm)
    rt.check(rc == 0 and report["ok"], f"{what}: dashvault verify --deep passes ({frames})")
    return frames


def cut_boot(image, name, plan):
    """Boots and kills the VM a moment after the console names a step of
    the first boot that `plan` (step -> delays in s) still has a cut for,
    using up that delay. Returns the step, or None when the boot got to the
    login prompt first."""
    vm = boot(image, name)
    try:
        pattern = "|".join(f"(?P<{k}>{p})" for k, p in CUT_PATTERNS.items() if plan[k])
        step = vm.wait_for(pattern + "|login: ", CUT_TIMEOUT_S).lastgroup
        if step:
            delay = plan[step].pop(0)
            time.sleep(delay)
        at = time.monotonic() - vm.started
    finally:
        vm.kill()
    check_console(vm)
    last = [line for line in vm.text().splitlines() if line.startswith("data:")][-1:]
    print(f"     {name}: " + (f"cut {delay} s after the {step} message, {at:.1f} s after start"
                              if step else "first boot finished") + f"; last: {last}", flush=True)
    return phase_cut(step, last)


def phase_cut(step, last):
    """The step the cut really fell in: the last `data:` line the console
    printed before the kill, not the message that started the delay (on a
    fast run a late cut after "growing" already lands in mke2fs)."""
    if step is None:
        return None
    for phase, pattern in CUT_PATTERNS.items():
        if last and re.search(pattern, last[0]):
            return phase
    return step


def test_first_boot():
    image = image_copy("cuts-first.img")
    plan = {}
    for step, delay in CUTS:
        plan.setdefault(step, []).append(delay)
    cut = []
    while any(plan.values()):
        step = cut_boot(image, f"first-cut{len(cut)}", plan)
        if step is None:
            break
        cut.append(step)
    rt.check("growing" in cut and "formatting" in cut,
             f"first boot cut {len(cut)} times: during the partition grow and during mke2fs ({cut})")
    vm = boot(image, "first-after-cuts")
    try:
        vm.login()
        check_full_data(vm, "after the cuts")
        check_recording(vm, "after the cuts")
        check_verify(vm, "after the cuts")
        check_shm(vm)
        check_hotspot_loop(vm)
        check_reboot(vm, image)
    finally:
        vm.kill()
        check_console(vm)


def check_shm(vm):
    rc, out = vm.run("ls -ld /dev/shm")
    rt.check(out.startswith("drwxrwxrwt"), f"/dev/shm is 1777 ({out.split()[0]})")


def check_hotspot_loop(vm):
    """There is no wlan0 on this VM: the loop waits on, and stop ends it."""
    rc, out = vm.run("cut -d. -f1 /proc/uptime")
    up = int(out)
    if up < 42:
        time.sleep(42 - up)
    rc, out = vm.run("pid=$(cat /var/run/hostapd.pid) && kill -0 $pid && echo $pid")
    rt.check(rc == 0, f"hotspot loop still waiting for wlan0 {max(up, 42)} s after boot (pid {out.strip()})")
    # The loop started a few seconds into boot: allow it those to reach 30 s.
    deadline = time.monotonic() + 20
    while "no wlan0 after 30 s" not in vm.text() and time.monotonic() < deadline:
        time.sleep(1)
    rt.check("no wlan0 after 30 s" in vm.text() and "no hotspot" not in vm.text(),
             "console says wlan0 is late, and that the loop keeps waiting")
    pid = out.strip()
    rc, out = vm.run(f"/etc/init.d/S45hostapd stop; usleep 300000; kill -0 {pid} 2>/dev/null; echo $?; "
                     "ls /var/run/hostapd.pid 2>/dev/null | wc -l")
    rt.check(out.split() == ["1", "0"], "S45hostapd stop ends the loop and removes its pidfile")
    vm.run("/etc/init.d/S45hostapd start")


def check_reboot(vm, image):
    """A console `reboot` while recording stops the recorder before init
    remounts /data read-only; the next boot finds nothing to repair."""
    check_recording(vm, "before the reboot", seconds=3)
    start = len(vm.text())
    vm.send("reboot")
    deadline = time.monotonic() + 90
    while vm.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    rt.check(vm.proc.poll() is not None, "console reboot: the VM went down (-no-reboot)")
    vm.kill()
    text = vm.text()[start:]
    stopped = text.find("dashvault: recorder stopped")
    down = text.find("The system is going down")
    rt.check(0 <= stopped < down,
             "console reboot: rcK stopped the recorder before the filesystems were remounted"
             + (f" ({text[stopped:].splitlines()[0]})" if stopped >= 0 else ""))
    busy = [line for line in text.splitlines()
            if re.search(r"vda3|/data", line) and re.search(r"busy|can't", line)]
    rt.check(not busy, f"console reboot: /data unmounted, not left busy {busy}")
    vm = boot(image, "first-after-reboot")
    try:
        vm.login()
        rc, out = vm.run("cat /run/dashvault/fsck.rc; grep -c 'recovering journal' /run/dashvault/fsck.log")
        fsck_rc, replays = out.split()[:2]
        rt.check(fsck_rc == "0" and replays == "0",
                 f"after the reboot: e2fsck -p finds /data clean (rc {fsck_rc}), no journal to replay")
        check_recording(vm, "after the reboot", seconds=2)
        rc, out = vm.run("logread | grep -i 'recovered' || true")
        rt.check(out.strip() == "", "after the reboot: no segment needed recovery"
                 + (f": {out.strip()}" if out.strip() else ""))
        check_verify(vm, "after the reboot")
    finally:
        vm.kill()
        check_console(vm)


def boot_and_check(image, name, what, expect):
    vm = boot(image, name)
    try:
        vm.login()
        state = check_full_data(vm, what)
        rt.check(re.search(expect, vm.text()) is not None, f"{what}: console says {expect!r}")
        check_recording(vm, what, seconds=2)
        frames = check_verify(vm, what)
    finally:
        vm.kill()
        check_console(vm)
    return state, frames


def test_unfinished():
    image = image_copy("cuts-unfinished.img")
    start, _ = mbr_partition(image, 3)
    room = os.path.getsize(image) // SECTOR - start
    set_mbr_partition_size(image, 3, room)
    mkfs_at(image, start, room * SECTOR, "data-new")
    boot_and_check(image, "unfinished", "filesystem labelled data-new",
                   r"never finished \(label data-new\), formatting /dev/vda3")


def test_larger():
    image = image_copy("cuts-larger.img")
    start, _ = mbr_partition(image, 3)
    room = os.path.getsize(image) - start * SECTOR
    mkfs_at(image, start, room + 64 * MIB, "data")
    boot_and_check(image, "larger", "filesystem larger than the card's room",
                   r"is larger than the partition \(\d+ MiB\), formatting /dev/vda3")


def test_used():
    source = os.path.join(rt.OUT, "run.img")
    if not os.path.exists(source):
        print("skip used: no run.img (run.py first)", flush=True)
        return
    image = image_copy("cuts-used.img", "run.img")
    start, _ = mbr_partition(image, 3)
    set_mbr_partition_size(image, 3, 16 * MIB // SECTOR)
    vm = boot(image, "used-before")
    try:
        vm.login()
        s = data_state(vm)
        rt.check(s["part_mib"] > 100 and s["label"] == "data",
                 f"used card: partition grown again to {s['part_mib']} MiB")
        rt.check("formatting" not in vm.text(), "used card: not formatted")
        check_full_data(vm, "used card")
        # A new filesystem would hold one segment by now.
        rc, out = vm.run("ls /data/recordings/front | grep -c dvr")
        segments = out.split()[0]
        rt.check(int(segments) >= 4, f"used card: its recordings ({segments} segments) are kept")
        check_recording(vm, "used card", seconds=2)
        check_verify(vm, "used card")
    finally:
        vm.kill()
        check_console(vm)


def test_small():
    image = image_copy("cuts-small.img")
    start, _ = mbr_partition(image, 3)
    set_mbr_partition_size(image, 3, 32 * MIB // SECTOR)
    mkfs_at(image, start, 32 * MIB, "data")
    boot_and_check(image, "small", "32 MiB partition and filesystem",
                   r"(?s)partition grown to \d+ MiB.*filesystem grown to \d+ MiB")


TESTS = {"first_boot": test_first_boot, "unfinished": test_unfinished, "larger": test_larger,
         "used": test_used, "small": test_small}


def main(run_module, names=None):
    global rt, port
    rt = run_module
    port = rt.free_port()
    for name in names or TESTS:
        t0 = time.monotonic()
        print(f"-- boot scripts: {name}", flush=True)
        TESTS[name]()
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run
    main(run, sys.argv[2:])
