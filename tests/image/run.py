#!/usr/bin/env python3
"""Boots the test image in QEMU and checks the appliance end to end.

1. raspi3b with the Zero 2W device tree (the board-level boot), first boot:
   the serial console gives a root login, the init scripts ran in the real
   image's order and coldplug loaded the ACT LED's driver, the recorder
   runs with no camera (`dashvault status`, /api/status, the LED blinks
   slowly), then a V4L2 camera appears (the kernel's vivid driver, loaded
   from the console) and is recorded within seconds with the LED solid on;
   the time to the first stored frame is printed. / is read-only, /data
   was created and grown on this boot and is mounted read-write, the boot
   partition's dashvault.json was applied (hotspot config included), the
   dashboard answers through the forwarded loopback port, the recorder's
   log lines are in the RAM ring buffer (`logread`), and the saved-clock
   scripts cope with damaged files.
2. virt, the hotspot end to end (tests/image/hotspot.py): two simulated
   radios appear while S45hostapd waits for wlan0; a client in its own
   network namespace joins with the password from the settings, gets a
   lease, resolves any name to the dashvault and opens the dashboard and
   the API; with a wrong password it does not get on.
3. virt with the image served by nbdkit's writeback cache (writes reach the
   image only when the guest flushes, like an SD card's cache): killed
   mid-recording CUTS times in a row; after each cut it boots, the data
   filesystem checks clean, `dashvault verify --deep` passes and every frame
   that was synced before the cut is still there. On these boots the test
   camera is loaded by the image's S99testcamera as soon as the recorder
   answers; the first of them prints the time to the first stored frame.

usage: run.py OUT_DIR   (after build.sh OUT_DIR)
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import hotspot

OUT = os.path.abspath(sys.argv[1])
BOOT_TIMEOUT_S = 180
CUTS = 5
TOKEN = None
# Lines the system writes to the console on its own (the hotspot loop's
# warnings, kernel messages): they can land between a command's output lines.
UNSOLICITED = re.compile(r"^(hotspot: .*|testcamera: .*|\[\s*\d+\.\d+\] .*)\n?", re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vm:
    def __init__(self, name, argv, helpers=()):
        self.name = name
        self.log_path = os.path.join(OUT, f"console-{name}.log")
        self.log = open(self.log_path, "wb")
        self.buf = b""
        self.lock = threading.Lock()
        self.helpers = list(helpers)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            b = self.proc.stdout.read1(4096)
            if not b:
                return
            with self.lock:
                self.buf += b
            self.log.write(b)
            self.log.flush()

    def text(self):
        with self.lock:
            return self.buf.decode("utf-8", "replace")

    def wait_for(self, pattern, timeout, start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text()[start:])
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no {pattern!r} within {timeout} s; console in {self.log_path}")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def login(self):
        self.wait_for(r"login: ", BOOT_TIMEOUT_S)
        time.sleep(0.5)
        self.send("root")
        self.wait_for(r"\n# ", 30, start=len(self.text()) - 200)
        self.run("stty -echo")

    def run(self, cmd, timeout=60):
        """Runs a shell command on the serial console; returns (rc, output)."""
        tag = f"{time.monotonic_ns():x}"
        start = len(self.text())
        self.send(f"echo B{tag}; {cmd}; echo E{tag} $?")
        m = self.wait_for(rf"(?s)B{tag}\r?\n(.*?)E{tag} (\d+)", timeout, start=start)
        out = UNSOLICITED.sub("", m.group(1).replace("\r", ""))
        return int(m.group(2)), out

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        for h in self.helpers:
            h.send_signal(signal.SIGKILL)
        self.proc.wait()
        for h in self.helpers:
            h.wait()
        self.log.close()


def http(port, path, token=None, timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(vm, port, timeout=BOOT_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = http(port, "/", timeout=3)
            if status == 200:
                return time.monotonic() - vm.started, body
        except OSError:
            pass
        if vm.proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{vm.name}: dashboard not answering on 127.0.0.1:{port}")


def counters(port):
    """Per camera: frames written and fdatasyncs completed."""
    _, body = http(port, "/api/status", TOKEN)
    s = json.loads(body)
    return {c["id"]: (c["written"], c["syncs"]) for c in s["cameras"]}


def wait_synced(port, cam, syncs_before, timeout=15):
    """Waits for two more completed syncs: the second began after the
    moment `syncs_before` was read, so it covers every frame written then.
    A fixed wait was too short when the emulated machine was loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if counters(port)[cam][1] >= syncs_before + 2:
            return
        time.sleep(0.1)
    raise AssertionError(f"{cam}: no two syncs within {timeout} s")


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        raise AssertionError(what)


GPS_FEED_S = 1800


def nmea(body):
    """One NMEA sentence with its checksum and line end."""
    check_sum = 0
    for b in body.encode():
        check_sum ^= b
    return f"${body}*{check_sum:02X}\r\n"


class GpsFeed:
    """A GPS receiver behind QEMU's usb-serial (an FTDI bridge, which the
    guest sees as /dev/ttyUSB0): RMC and GGA once a second with the host's
    time, written into the character device's Unix socket. quiet() stops
    the sentences but keeps the socket open (QEMU's usb-serial asserts when
    its socket closes under a running guest); stop() closes it, after the
    VM is gone. Ends by itself after GPS_FEED_S."""

    def __init__(self, path):
        self.path = path
        self.done = threading.Event()
        self.silent = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + GPS_FEED_S
        sock = None
        while not self.done.is_set() and time.monotonic() < deadline:
            if sock is None:
                try:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(self.path)
                except OSError:
                    sock = None
                    self.done.wait(0.5)
                    continue
            now = time.time()
            t = time.gmtime(now)
            hms = time.strftime("%H%M%S", t) + f".{int(now * 100) % 100:02d}"
            date = time.strftime("%d%m%y", t)
            data = (nmea(f"GNRMC,{hms},A,5231.20048,N,01324.42016,E,27.000,87.50,{date},,,A")
                    + nmea(f"GNGGA,{hms},5231.20048,N,01324.42016,E,1,09,0.92,34.5,M,39.9,M,,"))
            try:
                if not self.silent.is_set():
                    sock.sendall(data.encode())
            except OSError:
                sock.close()
                sock = None
            self.done.wait(1.0)
        if sock is not None:
            sock.close()

    def quiet(self):
        self.silent.set()

    def stop(self):
        self.done.set()
        self.thread.join()


def cmdline(root):
    with open(os.path.join(OUT, "boot", "cmdline.txt")) as f:
        line = f.read().strip()
    return line.replace("root=/dev/mmcblk0p2", f"root={root}")


def boot_raspi(image, port, camera_from_console=False, gps_socket=None):
    """camera_from_console: the test loads the camera (vivid) itself, instead
    of S99testcamera as soon as the recorder answers. gps_socket: a GPS
    receiver on USB (QEMU's usb-serial) whose bytes come from that Unix
    socket."""
    b = os.path.join(OUT, "boot")
    extra = " dashvault_test.camera=console" if camera_from_console else ""
    gps = ([] if gps_socket is None else
           ["-chardev", f"socket,id=gps,path={gps_socket},server=on,wait=off",
            "-device", "usb-serial,chardev=gps"])
    return Vm("raspi3b", [
        "qemu-system-aarch64", *gps, "-M", "raspi3b", "-accel", "tcg,thread=single",
        "-dtb", f"{b}/bcm2837-rpi-zero-2-w-qemu.dtb",
        "-drive", f"file={image},format=raw,if=sd,cache=writeback",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80", "-device", "usb-net,netdev=n0",
        "-kernel", f"{b}/Image", "-initrd", f"{b}/initrd.gz",
        "-append", cmdline("/dev/mmcblk0p2") + " mem=512M" + extra,
        "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"])


def boot_virt_nbd(image, port, n):
    sock = os.path.join(OUT, "nbd.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    nbd = subprocess.Popen(["nbdkit", "-f", "-U", sock, "--filter=cache", "file",
                            f"file={image}", "cache=writeback"])
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    b = os.path.join(OUT, "boot")
    return Vm(f"virt-{n}", [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "512",
        "-drive", f"file=nbd:unix:{sock},format=raw,if=none,id=d0,cache=writeback",
        "-device", "virtio-blk-pci,drive=d0",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80",
        "-device", "virtio-net-pci,netdev=n0,romfile=",
        "-kernel", f"{b}/Image", "-initrd", f"{b}/initrd.gz",
        "-append", cmdline("/dev/vda2"),
        "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"], [nbd])


def check_log(vm):
    """The recorder's output is in the RAM ring buffer, and only there."""
    rc, out = vm.run("logread | grep 'dashvault: '")
    check(rc == 0 and "dashvault: recording" in out,
          f"recorder's log lines readable with logread ({len(out.splitlines())} lines)")
    rc, out = vm.run("ps | grep -c '[s]yslogd -C'; ls /var/log/messages /tmp/*.log 2>&1 | grep -vc 'No such'")
    check(out.split()[:2] == ["1", "0"], "syslogd keeps a ring buffer and writes no log file")
    rc, out = vm.run("cat /etc/issue")
    check("Wi-Fi hotspot: dashvault-test" in out and "test-password" not in out,
          "login prompt names the hotspot (password from the settings, not shown)")


def check_clock_file(vm):
    """S06clock ignores damaged saved times and applies a later one;
    save-clock leaves a whole file."""
    for garbage in ("", "12ab", "1 2", "4102444801", "99999999999"):
        rc, out = vm.run(f"printf '{garbage}' >/data/.clock; /etc/init.d/S06clock start; date +%s")
        check(rc == 0 and "set to" not in out, f"S06clock ignores a saved time of {garbage!r}")
    rc, out = vm.run("printf '\\0\\0\\0\\0' >/data/.clock; /etc/init.d/S06clock start")
    check(rc == 0 and "set to" not in out, "S06clock ignores a file of zero bytes (unflushed blocks)")
    rc, out = vm.run("echo $(( $(date +%s) + 5 )) >/data/.clock; /etc/init.d/S06clock start")
    check("clock: set to the last saved time" in out, "S06clock moves the clock forward to a later saved time")
    # Bracketed by the clock before and after: under load the sync inside
    # save-clock can take seconds, so "close to now" would be a false alarm.
    rc, out = vm.run("date +%s; /usr/libexec/dashvault/save-clock once && cat /data/.clock && date +%s")
    before, saved, now = (int(x) for x in out.split()[:3])
    # The minute loop (inittab) may be between its write and its rename
    # just then: a temporary file left behind is one still there later.
    _, left = vm.run("n=$(ls -a /data | grep -c '^.clock.new$'); "
                     "[ $n = 0 ] || { sleep 3; n=$(ls -a /data | grep -c '^.clock.new$'); }; echo $n")
    check(rc == 0 and before <= saved <= now and left.split()[-1:] == ["0"],
          f"save-clock once writes the time ({before} <= {saved} <= {now}) and leaves no temporary file ({out.split()!r})")


def segment_frames(port, cam):
    """Segment name -> frames stored in it, for every segment of `cam`,
    from 1970 on: the first boot records before the clock is set, and a
    segment of those that retention deletes must count as gone."""
    _, body = http(port, f"/api/recordings?camera={cam}"
                   "&from=1970-01-01T00:00:00Z&to=2200-01-01T00:00:00Z", TOKEN)
    return {s["name"]: s["frames"] for s in json.loads(body)["segments"]}


def retention_deletions(port):
    return status(port)["storage"]["retention_deleted_segments"]


def count_stopped(vm, port):
    """Frames stored, counted with the recorder stopped, so that no frame
    is both in this count and in the next run's `written` counter (a
    running recorder syncs frames while verify reads). Before it stops:
    the segments with their frames, and what retention deleted in this
    process. Starts the recorder again and waits for its first frame."""
    deleted = retention_deletions(port)
    listed = segment_frames(port, "front")
    rc, out = vm.run("/etc/init.d/S50dashvault stop", timeout=60)
    check(rc == 0, f"the recorder stops cleanly: {out.strip()}")
    rc, report, frames = verify_deep(vm)
    vm.run("/etc/init.d/S50dashvault start")
    wait_http(vm, port)
    wait_camera(vm, port)
    return rc, report, frames.get("front", 0), listed, deleted


def verify_deep(vm):
    rc, out = vm.run("dashvault verify --deep --json", timeout=120)
    report = json.loads(out)
    frames = {c["camera"]: c["frames"] for c in report["cameras"]}
    return rc, report, frames


def status(port):
    _, body = http(port, "/api/status", TOKEN)
    return json.loads(body)


def check_init_order(vm):
    """The boot scripts ran in the real image's order: devices and drivers
    (S10mdev), network (S40), hotspot (S45, waits for wlan0 in the
    background), DHCP and DNS (S80)."""
    text = vm.text()
    marks = ["mdev: handling device events", "network: ", "dnsmasq: started"]
    at = [text.find(m) for m in marks]
    check(all(a >= 0 for a in at) and at == sorted(at),
          "init order: S10mdev, S40network, S80dnsmasq (console messages in that order)")
    rc, out = vm.run("ls /etc/init.d/ | tr '\\n' ' '")
    names = out.split()
    want = ["S10mdev", "S40network", "S45hostapd", "S80dnsmasq"]
    check(all(w in names for w in want) and [n for n in names if n in want] == want,
          f"init scripts: {' '.join(n for n in names if n.startswith('S'))}")


def check_coldplug(vm):
    """mdev handles device events, and the coldplug pass loaded drivers for
    the devices present from the root filesystem's modules."""
    rc, out = vm.run("ps | grep -c '[m]dev -d'; ls /lib/modules/$(uname -r)/modules.dep")
    check(out.split()[0] == "1" and "modules.dep" in out, "mdev daemon running, modules.dep on the root filesystem")
    rc, out = vm.run("grep -o '^leds_gpio ' /proc/modules; ls /sys/class/leds")
    check("leds_gpio" in out and "ACT" in out.split(),
          "coldplug loaded leds-gpio for the device tree's LED: /sys/class/leds/ACT")


def led_state(vm):
    rc, out = vm.run("cd /sys/class/leds/ACT && for f in trigger brightness max_brightness delay_on delay_off; "
                     "do echo \"$f=$(cat $f 2>/dev/null)\"; done; cd /")
    state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    m = re.search(r"\[([^\]]+)\]", state.get("trigger", ""))
    state["trigger"] = m.group(1) if m else ""
    return state


def wait_led(vm, trigger, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        state = led_state(vm)
        if state["trigger"] == trigger or time.monotonic() > deadline:
            return state
        time.sleep(1)


def kernel_started(vm):
    """Host monotonic time at which the guest kernel started (from its
    uptime, read over the console)."""
    before = time.monotonic()
    rc, out = vm.run("cat /proc/uptime")
    after = time.monotonic()
    return (before + after) / 2 - float(out.split()[0])


def wait_camera(vm, port, timeout=90):
    """Waits until a camera has stored a frame; returns (host time, camera)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cams = status(port)["cameras"]
            if cams and cams[0]["written"] > 0:
                return time.monotonic(), cams[0]
        except (OSError, ValueError, KeyError):
            pass
        if vm.proc.poll() is not None:
            break
        time.sleep(0.25)
    raise AssertionError(f"{vm.name}: no camera stored a frame within {timeout} s")


def check_no_camera(vm, port):
    """Before the camera appears: the recorder runs and says so, and the
    status LED blinks slowly."""
    rc, out = vm.run("dashvault status")
    check("no camera found" in out, "dashvault status on the console: no camera found")
    s = status(port)
    check(s.get("cameras") == [] and isinstance(s.get("no_camera"), dict),
          f"/api/status: no cameras and a no_camera report ({json.dumps(s.get('no_camera'))[:120]})")
    led = wait_led(vm, "timer")
    check(led["trigger"] == "timer" and led["delay_on"] == "1000" and led["delay_off"] == "1000",
          f"status LED blinks slowly with no camera (trigger [{led['trigger']}], "
          f"{led.get('delay_on')}/{led.get('delay_off')} ms)")


def check_camera_appears(vm, port):
    """A V4L2 camera that appears while the recorder runs is found and
    recorded; prints the boot time to the first stored frame."""
    kernel_t0 = kernel_started(vm)
    vm.run("dmesg -n 1")  # kernel messages off the console: they would mix into the output read here
    loading = time.monotonic()
    rc, out = vm.run("/sbin/modprobe vivid && ls /dev/video*", timeout=180)
    loaded = time.monotonic()
    check(rc == 0, f"vivid loaded in {loaded - loading:.1f} s: {' '.join(out.split())}")
    first, cam = wait_camera(vm, port, 60)
    print(f"     first stored frame {first - vm.started:.1f} s after QEMU start, "
          f"{first - kernel_t0:.1f} s after kernel start, {first - loaded:.1f} s after vivid was loaded",
          flush=True)
    check(cam["id"] == "front" and cam["source"].startswith("/dev/video"),
          f"camera found: {cam['id']} on {cam['source']} ({cam.get('format')})")
    node = cam["source"].rsplit("/", 1)[-1]
    rc, out = vm.run(f"cat /sys/class/video4linux/{node}/name")
    check("vid-cap" in out, f"{cam['source']} is vivid's video capture node ({out.strip()})")
    w0, t0 = status(port)["cameras"][0]["written"], time.monotonic()
    time.sleep(5)
    c = status(port)["cameras"][0]
    w1, t1 = c["written"], time.monotonic()
    check(w1 > w0 > 0, f"V4L2 camera recording ({w0} -> {w1} frames written in {t1 - t0:.1f} s, "
                       f"{(w1 - w0) / (t1 - t0):.1f} fps measured, {c.get('fps', 0):.1f} fps reported)")
    rc, out = vm.run("dashvault status")
    check(rc == 0 and re.search(r"front \[connected\]", out) and (c["source"] in out or c["format"] in out),
          f"dashvault status on the console shows the camera recording ({c['format']})")
    # QEMU has no VideoCore, so no hardware H.264 encoder; the appliance
    # builds no software one: the status must say so, not promise clips.
    share = status(port).get("share_encoder", "")
    check(share.startswith("none"), f"share clips: status names the encoder state ({share!r})")
    rc, out = vm.run("ls -d /data/share-cache")
    check(rc == 0, "share clip cache folder made on the data partition")
    led = wait_led(vm, "none")
    check(led["trigger"] == "none" and led["brightness"] == led["max_brightness"] != "0",
          f"status LED solid on while recording (trigger [{led['trigger']}], "
          f"brightness {led['brightness']}/{led['max_brightness']})")


def report_first_frame(vm, port):
    """The camera is loaded by S99testcamera as soon as the recorder
    answers: the boot time to the first stored frame."""
    kernel_t0 = kernel_started(vm)
    first, cam = wait_camera(vm, port)
    check(cam["source"].startswith("/dev/video"),
          f"{vm.name}: first stored frame {first - vm.started:.1f} s after QEMU start, "
          f"{first - kernel_t0:.1f} s after kernel start ({cam['source']})")


def check_gps(vm, port):
    """The appliance reads a USB GPS receiver without any setting (gps
    "auto"): the FTDI bridge's driver is coldplugged, mdev gives the
    receiver (/dev/ttyUSB0) a stable name in /dev/serial/by-id, the
    recorder finds it there, and its fixes set the clock, which had started
    in 1970 (no RTC, no saved time on a first boot)."""
    rc, out = vm.run("dashvault config get gps.device")
    check(out.strip() == "auto", f"appliance config: gps.device auto ({out.strip()!r})")
    deadline = time.monotonic() + 120
    while True:
        s = status(port)
        gps = s.get("gps") or {}
        if (s.get("clock") or {}).get("set_by") == "gps":
            break
        if time.monotonic() > deadline:
            check(False, f"GPS never set the clock: gps {gps}, clock {s.get('clock')}")
        time.sleep(1)
    rc, out = vm.run("cd /dev/serial/by-id && for l in *; do echo \"$l -> $(readlink $l)\"; done")
    links = [line.split(" -> ") for line in out.splitlines() if " -> " in line]
    check(len(links) == 1 and links[0][1] == "../../ttyUSB0" and links[0][0].startswith("usb-")
          and links[0][0].endswith("-if00-port0"),
          f"mdev named the receiver in /dev/serial/by-id as udev would ({out.strip()!r})")
    by_id = "/dev/serial/by-id/" + links[0][0] if links else None
    check(gps.get("connected") and gps.get("device") == by_id,
          f"USB GPS receiver found at {gps.get('device')} (auto takes the stable name) and read")
    off_s = abs(time.time() - dashvault_time(s))
    check(off_s < 10, f"GPS set the recorder's clock to the host's time ({off_s:.1f} s off, "
                      f"{gps['counters']['sentences_ok']} sentences read)")
    rc, out = vm.run("dashvault gps")
    check(rc == 0 and "satellites 9 used" in out and "set from GPS" in out and "50.0 km/h" in out,
          "dashvault gps on the console shows the fix, the speed and that it set the clock")
    rc, out = vm.run("date +%s")
    check(abs(int(out.split()[-1]) - time.time()) < 10, "the system clock was set from GPS")
    # What mdev runs when the receiver goes and comes back.
    rc, out = vm.run("ACTION=remove MDEV=ttyUSB0 /usr/libexec/dashvault/serial-by-id; ls /dev/serial/by-id | wc -l;"
                     " ACTION=add MDEV=ttyUSB0 /usr/libexec/dashvault/serial-by-id; ls /dev/serial/by-id")
    check(out.split()[0] == "0" and links and out.split()[1:] == [links[0][0]],
          f"the link goes with the device and comes back with it ({out.strip()!r})")


def dashvault_time(s):
    """The recorder's time in a status answer, as Unix seconds."""
    from datetime import datetime
    return datetime.fromisoformat(s["time"].replace("Z", "+00:00")).timestamp()


def check_appliance_config(vm):
    rc, out = vm.run("dashvault config get discover_cameras; dashvault config get status_led")
    check(out.split() == ["true", "ACT"], "appliance config: discover_cameras true, status_led ACT")


def run_hotspot(image, port):
    with open(os.path.join(OUT, "boot", "dashvault.json")) as f:
        wifi = json.load(f)["wifi"]
    vm = boot_virt_nbd(image, port, "hotspot")
    try:
        vm.login()
        wait_http(vm, port)
        hotspot.check_hotspot(vm, check, TOKEN, wifi["ssid"], wifi["password"])
    finally:
        vm.kill()


def main():
    global TOKEN
    image = os.path.join(OUT, "run.img")
    shutil.copyfile(os.path.join(OUT, "sdcard.img"), image)
    port = free_port()

    print("-- first boot, raspi3b (Zero 2W device tree), a USB GPS receiver", flush=True)
    gps_socket = os.path.join(OUT, "gps.sock")
    if os.path.exists(gps_socket):
        os.unlink(gps_socket)
    vm = boot_raspi(image, port, camera_from_console=True, gps_socket=gps_socket)
    feed = GpsFeed(gps_socket)
    try:
        vm.login()
        check(True, f"serial console root login after {time.monotonic() - vm.started:.1f} s")
        rc, out = vm.run("cat /proc/device-tree/model")
        check("Zero 2 W" in out, f"device tree model: {out.strip()}")
        elapsed, body = wait_http(vm, port)
        check(b"<html" in body.lower(), f"dashboard answers on the forwarded port {elapsed:.1f} s after start")
        # A new card's token comes from the boot partition, where the user
        # chose it before the first boot (README: First boot).
        with open(os.path.join(OUT, "boot", "dashvault.json")) as f:
            TOKEN = json.load(f)["auth_token"]
        status, _ = http(port, "/api/status", TOKEN)
        check(status == 200, "the token set in the boot partition's dashvault.json opens /api/status")
        status, _ = http(port, "/api/status", "not-" + TOKEN)
        check(status == 401, "another token is refused")
        check_init_order(vm)
        check_coldplug(vm)
        check_no_camera(vm, port)
        check_camera_appears(vm, port)
        rc, out = vm.run("grep ' / ' /proc/mounts; touch /x 2>&1")
        check(rc != 0 and re.search(r" / squashfs ro[ ,]", out), "/ is a read-only squashfs")
        rc, out = vm.run("grep ' /data ' /proc/mounts; touch /data/x && rm /data/x")
        check(rc == 0 and re.search(r" /data ext4 rw[ ,]", out), "/data is ext4, mounted read-write")
        check("data: first boot, formatting" in vm.text(), "/data was created on first boot")
        check("can't open" not in vm.text(), "no \"can't open\" on the first boot's console")
        rc, out = vm.run("df -m /data | tail -1")
        size_mib = int(out.split()[1])
        check(size_mib > 100, f"data partition grown to the end of the card ({size_mib} MiB filesystem)")
        rc, out = vm.run("dashvault config get segment_length_s; dashvault config get bind")
        check(out.split() == ["20", "0.0.0.0"], "boot partition dashvault.json applied")
        check_appliance_config(vm)
        check_gps(vm, port)
        # The clock checks below move the system clock on purpose; a
        # receiver still talking would set it right again mid-check, as it
        # should on the road.
        feed.quiet()
        rc, out = vm.run("cat /run/hostapd.conf")
        check("ssid=dashvault-test" in out and "wpa_passphrase=test-password-42" in out,
              "hotspot config from the settings file")
        check_log(vm)
        check_clock_file(vm)
    finally:
        vm.kill()
        feed.stop()

    print("-- hotspot, virt: simulated radios, a client in its own network namespace", flush=True)
    run_hotspot(image, port)

    print(f"-- {CUTS} power cuts, virt + nbdkit writeback cache", flush=True)
    vm = boot_virt_nbd(image, port, 0)
    try:
        vm.login()
        wait_http(vm, port)
        report_first_frame(vm, port)
        rc, report, stored, listed, _ = count_stopped(vm, port)
        check(rc == 0, f"verify --deep after the first boot: {stored} frames")
        # The card fills up during the cuts: frames that retention deletes
        # (the oldest segments, counted by the recorder) are not lost.
        for n in range(1, CUTS + 1):
            time.sleep(2 + n)  # cut at a different point of the sync cycle each time
            synced_run, syncs = counters(port)["front"]
            wait_synced(port, "front", syncs)
            deleted_run = retention_deletions(port)
            vm.kill()
            vm = boot_virt_nbd(image, port, n)
            vm.login()
            rc, out = vm.run("cat /run/dashvault/fsck.rc; dmesg | grep -c 'EXT4-fs error' || true")
            fsck_rc, fs_errors = (int(x) for x in out.split()[:2])
            check(fsck_rc in (0, 1) and fs_errors == 0,
                  f"cut {n}: data filesystem checks clean (e2fsck -p rc {fsck_rc}) and mounts")
            wait_http(vm, port)
            wait_camera(vm, port)
            rc, report, got, now_listed, deleted_boot = count_stopped(vm, port)
            check(rc == 0 and report["ok"], f"cut {n}: dashvault verify --deep passes")
            gone = sorted(name for name in listed if name not in now_listed)
            # Names start with the segment's sequence number: retention
            # takes the oldest, so anything gone must be older than all kept.
            check(all(g < min(now_listed) for g in gone)
                  and len(gone) <= deleted_run + deleted_boot,
                  f"cut {n}: the {len(gone)} segment(s) gone are the oldest, deleted by retention")
            must_have = stored - sum(listed[g] for g in gone) + synced_run
            check(got >= must_have,
                  f"cut {n}: {got} frames stored >= {must_have} synced before the cut"
                  f" (less {len(gone)} segment(s) retention deleted)")
            stored = got
            listed = now_listed
    finally:
        vm.kill()
    sys.dont_write_bytecode = True
    import cuts  # boot scripts under power cuts, console reboot, odd cards
    cuts.main(sys.modules[__name__])
    print("image test passed")


if __name__ == "__main__":
    main()
