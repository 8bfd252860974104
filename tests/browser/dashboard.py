#!/usr/bin/env python3
"""The dashboard in a real browser (Debian's headless Chromium, driven by
playwright) against the real release binary.

Starts `dashvault run` on a free loopback port with a synthetic camera and a
known token in a temporary folder, then at phone size (390x844): `/` sends to
the login page, a wrong token shows an error, the right token opens the
dashboard, the live image changes, the header clock keeps the recorder's
time, the health panel reports recording, the timeline shows a span
covering the recorded time, a tap on it plays back with the picture clear of
the sticky header and the window buttons in view, frame stepping works, the
export range is 24-hour UTC text that fits its fields and refuses nonsense,
the export card estimates the lossless and the share clip's sizes before
any tap, a share clip of a few seconds is made from the dashboard with a
progress bar and Chromium plays it at the estimated width; on a recorder
with a 1280x720 camera a long share job still shows after a reload,
refuses a second one with the recorder's reason and stops on Cancel, and
a 480-line clip plays scaled down; nothing scrolls sideways, the Lock button adds an incident whose export
downloads, which the timeline marks and whose size the list states once.
Without a GPS receiver there is no Track card; on a recorder whose receiver
drives a curve at a changing speed (a phone at two device pixels per CSS
pixel), a window before it started says it has no positions, and the
current one draws the route and the speed graph at the pixel ratio, the
route north up at the scale its round scale bar states, states the maximum
speed fed, offers GPX files that download, and a tap on the graph plays
from that moment.
Then the same at desktop size (1280x800). A phone whose clock is an hour
ahead is offered to set the camera's clock, and doing so moves the
recorder's clock and its timeline; after the recorder restarts, as on the
next drive, the same session still opens the dashboard and its Lock button
(which sends the session's X-CSRF-Token) still works. A second recorder,
started from the last good copy of a broken config with two synthetic
cameras and one V4L2 camera whose device does not exist, shows (at
1280x800) which config is in use, the missing camera's tile as not found
with a link to the checks, incident export buttons in one even row, and
every card's error state once it is stopped. Last, a recorder without any
camera says so.
Screenshots go to target/browser/ for people to look at.

Prints one line per check and a closing `test result:` line in cargo's format
so `make test` counts it with the Rust tests; exits non-zero on failure.

    make browser-test                      # builds, installs the driver, runs
    tests/browser/dashboard.py --url http://127.0.0.1:8080 --token TOKEN
                                           # against a server already running
"""

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty
import traceback
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "target" / "browser"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
TOKEN = hashlib.sha256(b"dashvault browser test").hexdigest()
CAMERA = "front"
CAMERA_WIDTH = 320
# The camera of the recorder whose share jobs run long enough to cancel.
BIG_WIDTH, BIG_HEIGHT, BIG_FPS = 1280, 720, 30
SHARE_LONG_FRAMES = 300
# The share clip made and played: a few seconds of the test camera.
SHARE_CLIP_S = 3
SHARE_DONE_S = 30
WHOLE_TEST_S = 240
STEP_TIMEOUT_MS = 10_000
SERVER_START_S = 15


def chromium_path():
    for p in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if p and Path(p).exists():
            return p
    raise RuntimeError("no Chromium: install Debian's chromium package (make deps)")


def dashvault_binary():
    if os.environ.get("DASHVAULT_BIN"):
        return Path(os.environ["DASHVAULT_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "release" / "dashvault"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso_utc(epoch_s):
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Makes the page's clock run an hour ahead, as on a phone that is right when
# the recorder is not.
SHIFTED_CLOCK_JS = """
(() => {
  const shift = 3600 * 1000;
  const RealDate = Date;
  class PhoneDate extends RealDate {
    constructor(...a) { if (a.length === 0) super(RealDate.now() + shift); else super(...a); }
    static now() { return RealDate.now() + shift; }
  }
  window.Date = PhoneDate;
})();
"""


def iso_to_epoch(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def nmea(body):
    """One NMEA sentence with its checksum and line end."""
    check = 0
    for b in body.encode():
        check ^= b
    return f"${body}*{check:02X}\r\n"


class GpsFeed:
    """A GPS receiver on a pseudo-terminal: RMC and GGA five times a second,
    in Berlin at 50 km/h with 9 satellites, dated 1024 weeks back as a
    receiver whose firmware does not know the GPS week-number rollover
    dates its fixes. Its position is shown; its time must never set the
    clock. Stops by itself after the whole test's time."""

    ROLLOVER_S = 1024 * 7 * 86400

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        # Nobody may be reading yet: drop what does not fit, never block.
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.done = threading.Event()
        # Set: the receiver falls quiet (no fix, the port stays open).
        self.quiet = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    INTERVAL_S = 0.2

    def run(self):
        until = time.monotonic() + WHOLE_TEST_S
        k = 0
        while not self.done.is_set() and time.monotonic() < until:
            t = datetime.fromtimestamp(time.time() - self.ROLLOVER_S, timezone.utc)
            hms = t.strftime("%H%M%S") + f".{t.microsecond // 10000:02d}"
            date = t.strftime("%d%m%y")
            if self.quiet.is_set():
                self.done.wait(self.INTERVAL_S)
                continue
            try:
                os.write(self.master, self.epoch(k, hms, date).encode())
            except OSError:
                pass
            k += 1
            self.done.wait(self.INTERVAL_S)

    def epoch(self, k, hms, date):
        """The RMC and GGA of the k-th fix."""
        return (nmea(f"GNRMC,{hms},A,5231.20048,N,01324.42016,E,27.000,87.50,{date},,,A")
                + nmea(f"GNGGA,{hms},5231.20048,N,01324.42016,E,1,09,0.92,34.5,M,39.9,M,,"))

    def stop(self):
        self.done.set()
        self.thread.join()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def nmea_lat_lon(lat, lon):
    """Degrees as NMEA's ddmm.mmmmm,N,dddmm.mmmmm,E."""
    def field(deg, width, hemispheres):
        d = int(abs(deg))
        return f"{d:0{width}d}{(abs(deg) - d) * 60:08.5f},{hemispheres[deg < 0]}"
    return field(lat, 2, "NS") + "," + field(lon, 3, "EW")


class MovingGpsFeed(GpsFeed):
    """A receiver in a car winding north-east through Berlin: five fixes a
    second, the speed swinging between 10 and 35 knots (18.5 and 64.8 km/h)
    every six seconds and the heading between 5° and 85° every thirty, a few
    hundred metres in the time the checks take, never crossing itself. Its
    fixes are dated 1024 weeks back like GpsFeed's, so its time never sets
    the clock and the track is stored at the times the recorder received it."""

    MIN_KN, MAX_KN = 10.0, 35.0
    PERIOD_FIXES = 30  # 6 s; an even number, so a fix falls on the peak
    TURN_PERIOD_FIXES = 150
    KNOT_MPS = 1852 / 3600

    def __init__(self):
        self.lat, self.lon, self.heading = 52.52, 13.405, 45.0
        self.fixes = 0
        self.max_kn = None
        super().__init__()

    def speed_kn(self, k):
        swing = (1 - math.cos(2 * math.pi * k / self.PERIOD_FIXES)) / 2
        return self.MIN_KN + (self.MAX_KN - self.MIN_KN) * swing

    def epoch(self, k, hms, date):
        kn = self.speed_kn(k)
        step_m = kn * self.KNOT_MPS * self.INTERVAL_S
        self.heading = 45 + 40 * math.sin(2 * math.pi * k / self.TURN_PERIOD_FIXES)
        self.lat += step_m * math.cos(math.radians(self.heading)) / 111_195
        self.lon += step_m * math.sin(math.radians(self.heading)) / (111_195 * math.cos(math.radians(self.lat)))
        where = nmea_lat_lon(self.lat, self.lon)
        self.max_kn = kn if self.max_kn is None else max(self.max_kn, kn)
        self.fixes = k + 1
        return (nmea(f"GNRMC,{hms},A,{where},{kn:.3f},{self.heading:.2f},{date},,,A")
                + nmea(f"GNGGA,{hms},{where},1,09,0.92,34.5,M,39.9,M,,"))


class Server:
    """`dashvault run` in a temporary folder, stopped on exit."""

    def __init__(self, without_camera=False, cameras=None, broken_config=False, gps=None):
        self.dir = Path(tempfile.mkdtemp(prefix="dashvault-browser-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        config = {
            "port": self.port,
            "bind": "127.0.0.1",
            "auth_token": TOKEN,
            "data_dir": str(self.dir / "data"),
            "segment_length_s": 10,
            "cameras": [
                {"id": CAMERA, "name": "Front", "source": "synthetic",
                 "res_width": 320, "res_height": 240, "fps": 10}
            ],
        }
        if without_camera:
            # As the appliance starts before its camera driver has loaded.
            config.update(cameras=[], discover_cameras=True)
        if cameras is not None:
            config.update(cameras=cameras)
        if gps is not None:
            config["gps"] = {"device": gps.path, "baud": 9600, "speed_unit": "kmh"}
        if broken_config:
            # A config edited wrongly after a good one had run: the recorder
            # records with the last good copy.
            (self.dir / "dashvault.json.last-good").write_text(json.dumps(config, indent=2))
            config["segment_length_s"] = "ten"
        (self.dir / "dashvault.json").write_text(json.dumps(config, indent=2))
        self.log = open(self.dir / "server.log", "wb")
        self.start()

    def start(self):
        binary = dashvault_binary()
        if not binary.exists():
            raise RuntimeError(f"{binary} does not exist: run `cargo build --release` first")
        self.proc = subprocess.Popen(
            # The clock check sets the recorder's time from a "phone" an hour
            # ahead: as an offset inside the recorder, never the host's clock.
            [str(binary), "-c", str(self.dir / "dashvault.json"), "run", "--clock-offset-only"],
            cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG="info"))
        try:
            self.wait_healthy()
        except BaseException:
            # Never leave a recorder behind when it did not come up.
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{sys.exc_info()[1]}\n{tail}") from None
        # Recording starts with the service: footage from here on is expected.
        self.started = time.time()

    def restart(self):
        """Stops the recorder and starts it again on the same folder and
        port, as the next drive does."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.start()

    def wait_healthy(self):
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashvault exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"/health did not answer within {SERVER_START_S} s")
            time.sleep(0.1)

    def log_tail(self, lines=30):
        if self.log.closed:
            return ""
        self.log.flush()
        text = (self.dir / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class External:
    """A server someone else started (--url)."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token
        self.started = time.time()

    def log_tail(self, lines=30):
        return ""

    def stop(self):
        pass


# Hash of the live image's pixels, drawn on a canvas (same origin, so the
# canvas stays readable). Two different hashes mean two different frames.
IMAGE_HASH_JS = """(img) => {
  if (!img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let h = 2166136261;
  for (let i = 0; i < d.length; i += 4) { h ^= d[i] ^ (d[i + 1] << 8) ^ (d[i + 2] << 16); h = Math.imul(h, 16777619); }
  return (h >>> 0).toString(16) + ':' + c.width + 'x' + c.height;
}"""


def wait_until(fn, what, timeout_s=STEP_TIMEOUT_MS / 1000, interval_s=0.2):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} (waited {timeout_s:.0f} s; last saw {last!r})")


# Where the header, the playback picture and the timeline's window buttons
# are on the screen, and what is drawn at the top of the picture.
PLAYER_GEOMETRY_JS = """() => {
  const header = document.querySelector('.topbar').getBoundingClientRect();
  const view = document.querySelector('#player .player-view').getBoundingClientRect();
  const hit = document.elementFromPoint(view.left + view.width / 2, Math.max(0, view.top + 2));
  return {
    headerBottom: header.bottom, viewTop: view.top, innerHeight: window.innerHeight,
    topHitsPicture: !!hit && !!hit.closest('.player-view'),
    buttons: [...document.querySelectorAll('[data-window]')].map((b) => {
      const r = b.getBoundingClientRect();
      return [b.textContent, r.top, r.bottom];
    }),
  };
}"""

# Every change of the header clock's text for a few seconds, with this
# machine's time of the change.
CLOCK_CHANGES_JS = """() => new Promise((resolve) => {
  const el = document.getElementById('clock');
  const seen = [];
  const obs = new MutationObserver(() => seen.push([Date.now(), el.textContent]));
  obs.observe(el, { childList: true, characterData: true, subtree: true });
  setTimeout(() => { obs.disconnect(); resolve(seen); }, 3500);
})"""

# "Lossless ≈ 355 MB · Share clip ≈ 36 MB (720p)"
ESTIMATE_TEXT = re.compile(r"Lossless ≈ [\d.]+ [kMGT]?B · Share clip ≈ [\d.]+ [kMGT]?B \(\d+p\)")

# Notes the share job's progress text whenever its progress bar shows.
SAW_PROGRESS_JS = """() => {
  window.__shareProgress = null;
  const box = document.getElementById('share-job');
  const bar = document.getElementById('share-progress');
  const note = () => { if (!bar.hidden && !box.hidden) window.__shareProgress = box.innerText; };
  new MutationObserver(note).observe(box, { subtree: true, childList: true, attributes: true, characterData: true });
}"""

# The share clip's player: its picture size, how far it plays, any error.
PLAYS_JS = """async (timeoutMs) => {
  const v = document.getElementById('share-video');
  const until = (ok) => new Promise((resolve) => {
    const t0 = performance.now();
    const check = () => (ok() || v.error || performance.now() - t0 > timeoutMs) ? resolve() : setTimeout(check, 50);
    check();
  });
  v.muted = true;
  await until(() => v.readyState >= 1);
  const start = v.currentTime;
  try { await v.play(); } catch (e) { return { error: String(e), src: v.currentSrc }; }
  await until(() => v.currentTime > start + 0.3);
  v.pause();
  return { error: v.error ? v.error.code + ' ' + v.error.message : null, src: v.currentSrc,
    width: v.videoWidth, height: v.videoHeight, advanced: v.currentTime - start, hidden: v.hidden };
}"""

TIME_FIELD = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")

# The Track card at one moment (the page draws again on every timeline
# refresh): for each canvas its size in CSS and device pixels, how many
# pixels are painted at all (the background is transparent), and where the
# pixels of the route's colour (--accent) and of the start (--ok) and end
# (--bad) marks are; the scale bar; the GPX link.
TRACK_PIXELS_JS = """() => {
  const rgb = (name) => {
    const g = document.createElement('canvas').getContext('2d');
    g.fillStyle = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    g.fillRect(0, 0, 1, 1);
    return [...g.getImageData(0, 0, 1, 1).data.slice(0, 3)];
  };
  const colours = { stroke: rgb('--accent'), start: rgb('--ok'), end: rgb('--bad') };
  const near = (d, i, c) => d[i + 3] > 200 && Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]) < 40;
  const read = (id) => {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const out = { width: c.width, height: c.height, cssWidth: c.clientWidth, cssHeight: c.clientHeight,
      label: c.getAttribute('aria-label'), painted: 0 };
    for (const k of Object.keys(colours)) out[k] = { n: 0, x0: Infinity, x1: -1, y0: Infinity, y1: -1 };
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      out.painted++;
      for (const [k, col] of Object.entries(colours)) {
        if (!near(d, i, col)) continue;
        const b = out[k];
        const x = (i / 4) % c.width;
        const y = Math.floor(i / 4 / c.width);
        b.n++; b.x0 = Math.min(b.x0, x); b.x1 = Math.max(b.x1, x); b.y0 = Math.min(b.y0, y); b.y1 = Math.max(b.y1, y);
      }
    }
    return out;
  };
  return {
    dpr: devicePixelRatio, map: read('track-map'), speed: read('track-speed'),
    scaleText: document.getElementById('track-scale-text').textContent,
    scaleBarPx: document.getElementById('track-scale-bar').getBoundingClientRect().width,
    gpx: document.getElementById('track-gpx').getAttribute('href'),
  };
}"""

# A GPX link's answer as the page gets it.
FETCH_GPX_JS = """async (href) => {
  const r = await fetch(href);
  return { status: r.status, type: r.headers.get('Content-Type'), disposition: r.headers.get('Content-Disposition'),
    body: await r.text() };
}"""

SCALE_TEXT = re.compile(r"^[125]0* (m|km)$")


def track_extent_m(points):
    """East-west and north-south extent of positions in metres, on the
    local flat projection the map uses."""
    lat0 = math.radians(sum(p["lat"] for p in points) / len(points))
    k = math.pi / 180 * 6_371_008.8
    xs = [p["lon"] * math.cos(lat0) * k for p in points]
    ys = [p["lat"] * k for p in points]
    return max(xs) - min(xs), max(ys) - min(ys)


def input_time(epoch_s):
    """A time as the export card's fields take it."""
    return datetime.fromtimestamp(round(epoch_s), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def screenshot_above(page, selector, name):
    """A screenshot of the window with the element at its bottom, so that
    what is above it shows below the sticky header."""
    page.eval_on_selector(selector, "e => e.scrollIntoView({block: 'end'})")
    wait_scroll_settled(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def is_share_post(r):
    return r.url.endswith("/api/share") and r.request.method == "POST"


def share_range(page, from_s, to_s):
    """Types a range into the export card, waits for its size estimates and
    returns the recorder's estimate for it with the card's options."""
    page.locator("#export-from").scroll_into_view_if_needed()
    page.fill("#export-from", input_time(from_s))
    page.fill("#export-to", input_time(to_s))
    line = page.locator("#export-estimate")
    wait_until(lambda: ESTIMATE_TEXT.search(line.inner_text()), "no size estimates for the typed range")
    q = (f"camera={CAMERA}&from={iso_utc(round(from_s))}&to={iso_utc(round(to_s))}"
         f"&size={page.input_value('#share-size')}&quality={page.input_value('#share-quality')}")
    return page.evaluate("async (q) => (await fetch('/api/export/estimate?' + q)).json()", q)


def check_share_clip_plays(page, estimate):
    """The done job's download link and, in the page's player, Chromium
    playing the clip at the estimated width."""
    link = page.locator("#share-download")
    href = link.get_attribute("href")
    assert href and href.startswith("/api/share/clip/") and href.endswith(".mp4"), f"download link: {href!r}"
    assert link.get_attribute("download"), "the download link has no download attribute"
    page.click("#share-play")
    played = page.evaluate(PLAYS_JS, STEP_TIMEOUT_MS)
    assert played["error"] is None, f"Chromium could not play the share clip: {played}"
    assert played["src"].endswith(href), f"the player plays {played['src']!r}, not {href!r}"
    assert not played["hidden"], "the player is hidden"
    assert played["width"] == estimate["share_width"] and played["height"] == estimate["share_height"], \
        f"{played} against the estimate {estimate}"
    assert played["advanced"] > 0.2, f"the clip did not play on: {played}"


def wait_scroll_settled(page):
    """Waits until a smooth scroll has come to rest."""
    last = [None]

    def settled():
        y = page.evaluate("window.scrollY")
        same = y == last[0]
        last[0] = y
        return same
    wait_until(settled, "the page kept scrolling", interval_s=0.3)


def check_picture_clears_header(page, want_buttons):
    wait_scroll_settled(page)
    g = page.evaluate(PLAYER_GEOMETRY_JS)
    assert g["viewTop"] >= g["headerBottom"] - 0.5, \
        f"the picture's top ({g['viewTop']:.0f} px) is under the header (bottom {g['headerBottom']:.0f} px)"
    assert g["viewTop"] < g["innerHeight"] and g["topHitsPicture"], f"the picture's top is not visible: {g}"
    if want_buttons:
        for text, top, bottom in g["buttons"]:
            assert top >= g["headerBottom"] - 0.5 and bottom <= g["innerHeight"], \
                f"the {text} button ({top:.0f}-{bottom:.0f} px) is not visible below the header " \
                f"(bottom {g['headerBottom']:.0f} px) in a {g['innerHeight']} px window"


def check_time_fields_fit(page, size):
    page.click('[data-preset="last5"]')
    for sel in ("#export-from", "#export-to"):
        value = page.input_value(sel)
        assert TIME_FIELD.match(value), f"{sel} at {size}: {value!r} is not YYYY-MM-DD HH:MM:SS"
        sw, cw = page.eval_on_selector(sel, "e => [e.scrollWidth, e.clientWidth]")
        assert sw <= cw, f"{sel} at {size}: {value!r} is clipped ({sw} px in {cw} px)"


def tap_latest_span(page):
    """Zooms the timeline to 10 minutes and taps the middle of the newest span."""
    page.click('[data-window="600000"]')
    bar = page.locator(f'.tl-bar[data-camera="{CAMERA}"]')
    span = bar.locator(".tl-span").last
    wait_until(lambda: (b := span.bounding_box()) and b["width"] >= 2, "the span is too narrow to tap")
    bar.scroll_into_view_if_needed()
    sb, bb = span.bounding_box(), bar.bounding_box()
    bar.click(position={"x": sb["x"] - bb["x"] + sb["width"] / 2, "y": bb["height"] / 2})


class Checks:
    def __init__(self, server, browser):
        self.server = server
        self.browser = browser
        self.base = server.url
        self.errors = []
        self.ctx = browser.new_context(viewport=PHONE, device_scale_factor=1)
        self.ctx.set_default_timeout(STEP_TIMEOUT_MS)
        self.page = self.new_page(self.ctx)

    def new_page(self, ctx):
        page = ctx.new_page()
        self.requests, self.posts = getattr(self, "requests", []), getattr(self, "posts", [])
        page.on("request", lambda r: (self.posts if r.method == "POST" else self.requests).append(r.url))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        page.on("console", lambda m: self.on_console(page, m))
        return page

    def on_console(self, page, message):
        # A blocked script or style is a broken page even when nothing throws.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"{page.url}: {message.text}")

    def login_page_first(self):
        self.page.goto(self.base + "/")
        self.page.wait_for_url("**/login*")
        assert self.page.locator("#token").is_visible(), "no token field on the login page"

    def wrong_token_shows_error(self):
        self.page.fill("#token", "0" * 64)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/login?error=*")
        self.page.locator("#error").wait_for(state="visible")
        text = self.page.inner_text("#error")
        assert "token" in text.lower() or "tries" in text.lower(), f"error text: {text!r}"

    def login(self):
        self.page.fill("#token", self.server.token)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.base + "/")
        self.page.locator(f'#live-grid img[data-camera="{CAMERA}"]').wait_for()

    def live_image_updates(self):
        img = self.page.locator(f'#live-grid img[data-camera="{CAMERA}"]')
        first = wait_until(lambda: img.evaluate(IMAGE_HASH_JS), "the live image never showed a frame")
        second = wait_until(lambda: (h := img.evaluate(IMAGE_HASH_JS)) != first and h,
                            f"the live image stayed the same frame ({first})")
        assert first != second

    def health_panel_reports_recording(self):
        wait_until(lambda: "Recording" in self.page.inner_text("#summary"),
                   "the summary never said Recording")
        card = self.page.locator(".cam-card").first
        wait_until(lambda: "fps" in card.inner_text() and "s ago" in card.inner_text(),
                   "no fps and last sync age in the camera card")
        wait_until(lambda: "used" in self.page.inner_text("#storage-text"), "no storage use shown")
        text = card.inner_text()
        assert "Frames stored since start" in text, f"the frame count does not say what it counts: {text!r}"

    def export_sizes_are_estimated_before_any_tap(self):
        # Right after login, before anything was tapped: the lossless size
        # and the share clip's, for the default range (last 5 minutes) and
        # the default options (720 lines, standard).
        line = self.page.locator("#export-estimate")
        wait_until(lambda: ESTIMATE_TEXT.search(line.inner_text()), "no size estimates in the export card")
        asked = [u for u in self.requests if "/api/export/estimate?" in u]
        assert asked and "size=720" in asked[-1] and "quality=standard" in asked[-1], f"estimates asked: {asked}"
        assert not any("/api/share" in u for u in self.posts), f"something was started: {self.posts}"
        encoder = self.page.evaluate("async () => (await fetch('/api/status')).json()")["share_encoder"]
        hint = self.page.inner_text("#share-hint")
        assert encoder in hint, f"the card does not name the encoder {encoder!r}: {hint!r}"
        # Other options: estimated again.
        with self.page.expect_request(lambda r: "/api/export/estimate?" in r.url and "size=480" in r.url):
            self.page.select_option("#share-size", "480")
        wait_until(lambda: ESTIMATE_TEXT.search(line.inner_text()), "no size estimates for 480 lines")
        self.page.select_option("#share-size", "720")
        SHOTS.mkdir(parents=True, exist_ok=True)
        screenshot_above(self.page, "#export-actions", "phone-share-estimate.png")

    def header_clock_keeps_the_recorder_time(self):
        status = self.page.evaluate("async () => (await fetch('/api/status')).json()")
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", status["time"]), \
            f"/api/status time has no milliseconds: {status['time']!r}"
        changes = self.page.evaluate(CLOCK_CHANGES_JS)
        assert len(changes) >= 2, f"the header clock did not tick: {changes}"
        lags = []
        for at_ms, text in changes:
            h, m, sec = (int(x) for x in text.split()[0].split(":"))
            at = at_ms / 1000 % 86400
            lags.append((at - (h * 3600 + m * 60 + sec) + 43200) % 86400 - 43200)
        # The recorder runs on this machine's clock: each second must show
        # as it begins, not a second or two late.
        lags.sort()
        assert -0.25 < lags[len(lags) // 2] < 0.35 and all(-0.25 < x < 0.9 for x in lags), \
            f"the header clock shows each second this late (s): {lags}"

    def timeline_shows_recorded_span(self):
        # A few seconds of footage, then a span must cover them.
        want_from = self.server.started + 1
        want_to = self.server.started + 3
        time.sleep(max(0, want_to + 1 - time.time()))

        def covering():
            for el in self.page.locator(f'.tl-bar[data-camera="{CAMERA}"] .tl-span').all():
                start = iso_to_epoch(el.get_attribute("data-start"))
                end = iso_to_epoch(el.get_attribute("data-end"))
                box = el.bounding_box()
                if start <= want_from and end >= want_to and box and box["width"] >= 1:
                    return el
            return None
        wait_until(covering, "no timeline span covers the recorded seconds", timeout_s=15)

    def tap_timeline_plays_back(self):
        tap_latest_span(self.page)
        self.page.locator("#player-body").wait_for(state="visible")
        player = self.page.locator("#player-img")
        wait_until(lambda: player.evaluate("i => i.complete && i.naturalWidth > 0"), "the player showed no frame")
        wait_until(lambda: "UTC" in self.page.inner_text("#player-time"), "no player time")

    def playback_clears_the_header_and_keeps_the_window_buttons(self):
        check_picture_clears_header(self.page, want_buttons=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / "phone-playback.png"))

    def pause_and_step_frames(self):
        self.page.click("#play")  # pause: switches to single frames
        wait_until(lambda: "Segment" in self.page.inner_text("#player-msg"), "paused without a frame from /api/frame")
        before = self.page.inner_text("#player-time")
        self.page.click("#step-back")
        wait_until(lambda: self.page.inner_text("#player-time") != before, "stepping back did not move")
        after_back = self.page.inner_text("#player-time")
        self.page.click("#step-fwd")
        wait_until(lambda: self.page.inner_text("#player-time") != after_back, "stepping forward did not move")

    def export_link_is_built(self):
        self.page.click('[data-preset="last5"]')
        href = self.page.get_attribute("#export-link", "href")
        assert href and href.startswith(f"/api/export.mp4?camera={CAMERA}&from="), f"export link: {href!r}"
        # "This segment": the segment under the paused player.
        self.page.click('[data-preset="segment"]')
        wait_until(lambda: self.page.get_attribute('[data-preset="segment"]', "aria-pressed") == "true",
                   "the segment preset did not apply: " + self.page.inner_text("#export-summary"))
        href = self.page.get_attribute("#export-link", "href")
        assert href and f"camera={CAMERA}&from=" in href and "&to=" in href, f"export link: {href!r}"

    def export_range_is_24_hour_utc_text(self):
        self.page.locator("#export-from").scroll_into_view_if_needed()
        check_time_fields_fit(self.page, "390x844")
        # What a phone's own picker used to show is refused, saying why.
        self.page.fill("#export-from", "12/03/2026, 04:07:02 PM")
        error = self.page.locator("#export-error")
        error.wait_for(state="visible")
        assert "YYYY-MM-DD HH:MM:SS" in error.inner_text(), f"error: {error.inner_text()!r}"
        assert self.page.get_attribute("#export-link", "aria-disabled") == "true"
        assert self.page.get_attribute("#export-from", "aria-invalid") == "true"
        self.page.fill("#export-from", "2026-02-30 10:00:00")
        wait_until(lambda: "not a real date" in error.inner_text(), "a date that does not exist was accepted")
        to = self.page.input_value("#export-to")
        self.page.fill("#export-from", to)
        wait_until(lambda: "after" in error.inner_text(), "an empty range was accepted")
        check_time_fields_fit(self.page, "390x844")
        error.wait_for(state="hidden")
        assert self.page.get_attribute("#export-link", "aria-disabled") == "false"
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.locator("#export").screenshot(path=str(SHOTS / "phone-export.png"))

    def segment_download_link_works(self):
        self.page.select_option("#segments-camera", CAMERA)
        link = self.page.locator('#segment-list a[href^="/api/video/download"]').first
        link.wait_for()
        status = self.page.evaluate(
            "async (href) => { const r = await fetch(href); await r.arrayBuffer(); return r.status; }",
            link.get_attribute("href"))
        assert status == 200, f"segment download answered {status}"

    def share_clip_is_made_and_plays(self):
        page = self.page
        start = self.server.started + 2
        estimate = share_range(page, start, start + SHARE_CLIP_S)
        assert 0 < estimate["share_width"] <= CAMERA_WIDTH, f"estimate: {estimate}"
        assert estimate["share_bytes"] < estimate["lossless_bytes"], f"estimate: {estimate}"
        page.evaluate(SAW_PROGRESS_JS)
        with page.expect_response(is_share_post) as sent:
            page.click("#share-start")
        assert sent.value.status in (200, 202), f"POST /api/share answered {sent.value.status}"
        body = json.loads(sent.value.request.post_data)
        assert body["camera"] == CAMERA and body["size"] == 720 and body["quality"] == "standard", body
        job = page.locator("#share-job")
        wait_until(lambda: job.get_attribute("data-state") == "done", "the share clip was never done",
                   timeout_s=SHARE_DONE_S)
        seen = page.evaluate("window.__shareProgress")
        assert sent.value.status == 200 or (seen and re.search(r"\d+ of \d+ frames", seen)), \
            f"no progress bar while it ran (saw {seen!r})"
        text = job.inner_text()
        assert "Encoder:" in text, f"the job does not name its encoder: {text!r}"
        # 720 lines asked of a smaller camera: the job names the size it made.
        made = f"{estimate['share_width']}×{estimate['share_height']}"
        assert made in text and "720 lines" not in text, f"the job does not say it made {made}: {text!r}"
        check_share_clip_plays(page, estimate)
        screenshot_above(page, "#share-job", "phone-share-done.png")

    # A recorder with a 1280x720 camera: its share jobs run for seconds,
    # long enough to reload the page and cancel, and its clips are scaled.
    def share_recorder_starts(self):
        if isinstance(self.server, External):
            raise Skip("a server of our own is needed")
        self.server3 = Server(cameras=[{"id": CAMERA, "name": "Front", "source": "synthetic",
                                        "res_width": BIG_WIDTH, "res_height": BIG_HEIGHT, "fps": BIG_FPS}])
        ctx = self.ctx3 = self.browser.new_context(viewport=PHONE, device_scale_factor=1)
        ctx.set_default_timeout(STEP_TIMEOUT_MS)
        page = self.page3 = self.new_page(ctx)
        page.goto(self.server3.url + "/login")
        page.fill("#token", self.server3.token)
        page.click("button[type=submit]")
        page.wait_for_url(self.server3.url + "/")
        page.locator(f'#live-grid img[data-camera="{CAMERA}"]').wait_for()

    def share_page(self):
        if not getattr(self, "page3", None):
            raise Skip("no recorder with a large camera")
        return self.page3

    def share_cancel_stops_a_running_job(self):
        page = self.share_page()
        # All footage so far at the highest quality: seconds of work.
        page.select_option("#share-quality", "high")
        server = self.server3
        time.sleep(max(0, server.started + SHARE_LONG_FRAMES / BIG_FPS + 1 - time.time()))
        wait_until(lambda: share_range(page, server.started, time.time() - 1)["frames"] >= SHARE_LONG_FRAMES,
                   f"the large camera recorded fewer than {SHARE_LONG_FRAMES} frames", timeout_s=30, interval_s=1)
        page.click("#share-start")
        job = page.locator("#share-job")
        wait_until(lambda: job.get_attribute("data-state") == "running", "the long share job is not running")
        page.locator("#share-progress").wait_for(state="visible")
        # A reload finds it still running.
        page.reload()
        wait_until(lambda: job.get_attribute("data-state") == "running", "after a reload the job is not shown")
        page.locator("#share-progress").wait_for(state="visible")
        wait_until(lambda: re.search(r"\d+ of \d+ frames · about", job.inner_text()) and "Encoder:" in job.inner_text(),
                   "no frames, time left and encoder while it runs")
        # Another one at the same time is refused with the recorder's reason.
        page.select_option("#segments-camera", CAMERA)
        with page.expect_response(is_share_post) as refused:
            page.locator("#segment-list button[data-share]").first.click()
        assert refused.value.status == 503, f"a second job answered {refused.value.status}"
        reason = refused.value.json()["error"]
        error = page.locator("#share-job-error")
        wait_until(lambda: reason in error.inner_text(), f"the refusal ({reason!r}) is not shown")
        assert job.get_attribute("data-state") == "running", "the running job is no longer shown"
        screenshot_above(page, "#share-job", "phone-share-running.png")
        page.click("#share-cancel")
        wait_until(lambda: job.get_attribute("data-state") == "cancelled", "the job was not cancelled")
        state = page.evaluate("async () => (await fetch('/api/share')).json()")
        assert state["state"] == "cancelled", f"GET /api/share after cancel: {state}"
        assert state["frames_done"] < state["frames_total"], f"it had finished: {state}"
        assert "cancelled" in job.inner_text().lower()
        screenshot_above(page, "#share-job", "phone-share-cancelled.png")

    def share_clip_is_scaled_down_and_plays(self):
        page = self.share_page()
        page.select_option("#share-quality", "standard")
        page.select_option("#share-size", "480")
        start = self.server3.started + 2
        estimate = share_range(page, start, start + SHARE_CLIP_S)
        assert estimate["share_height"] == 480 and estimate["share_width"] < BIG_WIDTH, f"estimate: {estimate}"
        page.click("#share-start")
        job = page.locator("#share-job")
        wait_until(lambda: job.get_attribute("data-state") == "done", "the 480-line clip was never done",
                   timeout_s=SHARE_DONE_S)
        check_share_clip_plays(page, estimate)

    def share_recorder_stops(self):
        self.share_page()
        self.ctx3.close()
        self.page3 = None
        self.server3.stop()

    def track_card_is_hidden_without_gps(self):
        page = self.page
        # "Now" loads the timeline's window again, and its track with it.
        with page.expect_response(lambda r: "/api/track?" in r.url) as answered:
            page.click("#tl-now")
        assert answered.value.status == 200, f"/api/track answered {answered.value.status}"
        j = answered.value.json()
        assert j["gps_configured"] is False and j["positions"] == 0 and j["points"] == [], \
            f"a recorder without a receiver: {j}"
        page.wait_for_timeout(300)
        assert page.locator("#track").is_hidden(), "a recorder without GPS shows a Track card"
        assert page.locator("#export-gpx").is_hidden(), "a recorder without GPS offers a GPX export"

    # A recorder whose receiver drives a curve at a changing speed, seen on
    # a phone whose screen has two device pixels per CSS pixel.
    def track_recorder_starts(self):
        if isinstance(self.server, External):
            raise Skip("a server of our own is needed")
        feed = self.track_feed = MovingGpsFeed()
        self.track_server = Server(gps=feed)
        self.track_fixes0 = feed.fixes
        ctx = self.track_ctx = self.browser.new_context(viewport=PHONE, device_scale_factor=2)
        ctx.set_default_timeout(STEP_TIMEOUT_MS)
        page = self.track_page = self.new_page(ctx)
        page.goto(self.track_server.url + "/login")
        page.fill("#token", self.track_server.token)
        page.click("button[type=submit]")
        page.wait_for_url(self.track_server.url + "/")
        page.locator(f'#live-grid img[data-camera="{CAMERA}"]').wait_for()

    def moving(self):
        if not getattr(self, "track_page", None):
            raise Skip("no recorder with a moving GPS receiver")
        return self.track_page

    def track_card_says_when_a_range_has_no_positions(self):
        page = self.moving()
        # An hour that ended half an hour ago: before this recorder started.
        page.click('[data-window="3600000"]')
        page.click("#tl-earlier")
        line = page.locator("#track > .card-state")
        wait_until(lambda: line.is_visible() and "No GPS positions in this range" in line.inner_text(),
                   "the Track card does not say the range has no positions")
        assert page.locator("#track").is_visible(), "a recorder with a receiver hides the Track card"
        assert page.locator("#track-body").is_hidden(), "canvases are shown for a range without positions"
        # The export card's GPX link for a range before the receiver spoke:
        # greyed, saying why, instead of a download of an error.
        before = time.time() - 7200
        page.fill("#export-from", input_time(before))
        page.fill("#export-to", input_time(before + 300))
        gpx_link = page.locator("#export-gpx")
        wait_until(lambda: gpx_link.get_attribute("aria-disabled") == "true"
                   and gpx_link.get_attribute("title") == "No GPS positions in this range"
                   and gpx_link.get_attribute("href") is None,
                   "the export card's GPX link is offered for a range without positions")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#track").screenshot(path=str(SHOTS / "phone-track-empty.png"))
        page.click("#tl-now")

    def track_card_draws_the_route(self):
        page = self.moving()
        feed = self.track_feed
        # Two swings of the speed since the recorder started: a peak is stored.
        wait_until(lambda: feed.fixes >= self.track_fixes0 + 2 * feed.PERIOD_FIXES,
                   "the GPS feed fell behind", timeout_s=20)
        fed_max_kmh = feed.max_kn * 1.852
        want = f"{round(fed_max_kmh)} km/h"
        seen = []

        def states_the_max():
            seen.append(page.inner_text("#track-max") if page.locator("#track-body").is_visible() else None)
            return seen[-1] == want
        wait_until(states_the_max, f"the Track card does not state the fed maximum, {fed_max_kmh:.2f} km/h, "
                   f"as {want!r} (said {seen[-1:]})", timeout_s=12)
        # The receiver falls quiet and its last fixes are stored (synced
        # within a second): the page draws the same positions as the answer
        # the check compares with.
        feed.quiet.set()
        quiet_at = time.time()
        time.sleep(2)
        page.click("#tl-now")

        def drawn_after_quiet():
            t = page.evaluate(TRACK_PIXELS_JS)
            to = urllib.parse.parse_qs(urllib.parse.urlsplit(t["gpx"] or "").query).get("to")
            return t if to and iso_to_epoch(to[0]) >= quiet_at + 2 else None
        t = wait_until(drawn_after_quiet, "the Track card was not drawn again after the receiver fell quiet")
        query = urllib.parse.urlsplit(t["gpx"]).query
        j = page.evaluate("async (q) => (await fetch('/api/track?' + q + '&points=1000')).json()", query)
        assert f"· {j['positions']} positions" in page.inner_text("#track-span"), \
            f"the Track card does not show the {j['positions']} positions of its range"
        assert page.inner_text("#track-max") == want, f"max after the last fix: {page.inner_text('#track-max')!r}"
        for name in ("map", "speed"):
            c = t[name]
            assert c["width"] == round(c["cssWidth"] * t["dpr"]) and c["height"] == round(c["cssHeight"] * t["dpr"]), \
                f"the {name} canvas is {c['width']}x{c['height']} px for {c['cssWidth']}x{c['cssHeight']} CSS px at {t['dpr']}x"
            assert c["painted"] > 0 and c["stroke"]["n"] >= 200, f"nothing is drawn on the {name} canvas: {c}"
        assert t["dpr"] == 2, f"device pixel ratio {t['dpr']}"
        mp, sp = t["map"], t["speed"]
        assert mp["start"]["n"] > 20 and mp["end"]["n"] > 20, f"no start and end marks on the map: {mp}"
        assert sp["stroke"]["x1"] - sp["stroke"]["x0"] >= 0.7 * sp["width"], f"the speed line does not span the graph: {sp}"
        assert "km/h" in sp["label"], f"the speed graph's unit: {sp['label']!r}"

        # The route and its scale against the positions of the same range.
        assert urllib.parse.parse_qs(query)["camera"] == [CAMERA], f"GPX link: {t['gpx']!r}"
        assert abs(j["max_speed_mps"] - feed.max_kn * feed.KNOT_MPS) < 0.01, \
            f"max speed {j['max_speed_mps']} m/s stored, {feed.max_kn} kn fed"
        text = t["scaleText"]
        match = SCALE_TEXT.match(text)
        assert match, f"the scale bar says {text!r}, not a round length"
        bar_m = float(text.split()[0]) * (1000 if match.group(1) == "km" else 1)
        css_w = mp["cssWidth"]
        assert css_w / 12.5 - 1 <= t["scaleBarPx"] <= css_w / 5 + 1, \
            f"the scale bar is {t['scaleBarPx']:.0f} px of a {css_w} px map"
        m_per_px = bar_m / t["scaleBarPx"]
        dpr = t["dpr"]
        boxes = [mp[k] for k in ("stroke", "start", "end")]
        drawn_w = (max(b["x1"] for b in boxes) - min(b["x0"] for b in boxes) + 1) / dpr
        drawn_h = (max(b["y1"] for b in boxes) - min(b["y0"] for b in boxes) + 1) / dpr
        ex, ey = track_extent_m(j["points"])
        # Drawn wider than the positions by the line's width and the marks.
        for axis, drawn, extent in (("east-west", drawn_w, ex), ("north-south", drawn_h, ey)):
            assert 0 <= drawn - extent / m_per_px <= 20, \
                f"{axis}: {extent:.0f} m drawn {drawn:.0f} px wide at {text} per {t['scaleBarPx']:.0f} px"
        assert max(drawn_w / css_w, drawn_h / mp["cssHeight"]) >= 0.6, \
            f"the route ({drawn_w:.0f}x{drawn_h:.0f} px) does not fill the {css_w}x{mp['cssHeight']} px map"
        # North up: the end mark sits where the last position is from the first.
        first, last = j["points"][0], j["points"][-1]
        lat0 = math.radians((first["lat"] + last["lat"]) / 2)
        east_m = (last["lon"] - first["lon"]) * math.cos(lat0) * math.pi / 180 * 6_371_008.8
        north_m = (last["lat"] - first["lat"]) * math.pi / 180 * 6_371_008.8
        centre = lambda b: ((b["x0"] + b["x1"]) / 2 / dpr, (b["y0"] + b["y1"]) / 2 / dpr)  # noqa: E731
        (sx, sy), (ex_, ey_) = centre(mp["start"]), centre(mp["end"])
        assert abs((ex_ - sx) - east_m / m_per_px) <= 4 and abs((sy - ey_) - north_m / m_per_px) <= 4, \
            f"the end mark is {ex_ - sx:.0f} px right and {sy - ey_:.0f} px up of the start; the last position is " \
            f"{east_m:.0f} m east and {north_m:.0f} m north of the first"

        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px window"
        # The export card's range: the last five minutes, from now.
        page.click('[data-preset="last5"]')
        for href in (t["gpx"], page.get_attribute("#export-gpx", "href")):
            assert href and href.startswith(f"/api/export.gpx?camera={CAMERA}&from="), f"GPX link: {href!r}"
            gpx = page.evaluate(FETCH_GPX_JS, href)
            assert gpx["status"] == 200 and gpx["body"].startswith("<?xml"), \
                f"{href} answered {gpx['status']}: {gpx['body'][:200]!r}"
            assert "<trkpt" in gpx["body"] and "attachment" in (gpx["disposition"] or ""), \
                f"{href}: {gpx['disposition']!r}, {gpx['body'][:300]!r}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#track").screenshot(path=str(SHOTS / "phone-track.png"))

        # A tap on the speed graph plays from that moment.
        t0, t1 = j["points"][0]["t_ms"] / 1000, j["points"][-1]["t_ms"] / 1000
        graph = page.locator("#track-speed")
        graph.scroll_into_view_if_needed()
        # Left and right of the plot: 34 and 10 px (SPEED_MARGIN_PX in app.js).
        graph.click(position={"x": 34 + 0.4 * (sp["cssWidth"] - 44), "y": sp["cssHeight"] / 2})
        page.locator("#player-body").wait_for(state="visible")
        shown = wait_until(lambda: re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page.inner_text("#player-time")),
                           "the player shows no time after a tap on the speed graph")
        at = datetime.strptime(shown.group(0), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        tapped = t0 + 0.4 * (t1 - t0)
        assert tapped - 1.5 <= at <= tapped + 3, f"tapped {iso_utc(tapped)} on the graph, the player is at {shown.group(0)}"
        page.locator("#track-cursor").wait_for(state="visible")
        page.click("#play")

    def track_recorder_stops(self):
        self.moving()
        self.track_ctx.close()
        self.track_page = None
        self.track_server.stop()
        self.track_feed.stop()

    def phone_has_no_sideways_scroll(self):
        self.page.evaluate("window.scrollTo(0, 0)")
        widths = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px window"
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
        self.page.screenshot(path=str(SHOTS / "phone-top.png"))

    def desktop_layout(self):
        ctx = self.browser.new_context(viewport=DESKTOP, device_scale_factor=1,
                                       storage_state=self.ctx.storage_state())
        ctx.set_default_timeout(STEP_TIMEOUT_MS)
        page = self.new_page(ctx)
        page.goto(self.base + "/")
        img = page.locator(f'#live-grid img[data-camera="{CAMERA}"]')
        wait_until(lambda: img.evaluate(IMAGE_HASH_JS), "no live frame on the desktop")
        wait_until(lambda: page.locator(f'.tl-bar[data-camera="{CAMERA}"] .tl-span').count() > 0,
                   "no timeline span on the desktop")
        tap_latest_span(page)
        player = page.locator("#player-img")
        wait_until(lambda: player.evaluate("i => i.complete && i.naturalWidth > 0"), "the player showed no frame")
        check_picture_clears_header(page, want_buttons=False)
        page.locator("#export-from").scroll_into_view_if_needed()
        check_time_fields_fit(page, "1280x800")
        page.evaluate("window.scrollTo(0, 0)")
        live = page.locator("#live").bounding_box()
        health = page.locator("#health").bounding_box()
        assert health["x"] >= live["x"] + live["width"], "desktop layout is not two columns"
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"desktop page is {widths[0]} px wide in {widths[1]} px"
        page.screenshot(path=str(SHOTS / "desktop.png"), full_page=True)
        ctx.close()

    def lock_button_adds_an_incident(self):
        self.locked_at = time.time()
        with self.page.expect_request(lambda r: r.url.endswith("/api/lock") and r.method == "POST") as sent:
            self.page.click("#lock")
        csrf = sent.value.headers.get("x-csrf-token") or ""
        assert re.fullmatch("[0-9a-f]{64}", csrf), f"the lock request has no X-CSRF-Token: {csrf!r}"
        wait_until(lambda: "Incident" in self.page.inner_text("#lock-note"), "no note after tapping Lock")
        item = self.page.locator("#incident-list li").first
        item.wait_for()
        wait_until(lambda: "dashboard" in item.inner_text(), "the incident does not say it came from the dashboard")
        link = item.locator('a[href^="/api/export.mp4"]').first
        href = link.get_attribute("href")
        assert f"camera={CAMERA}&from=" in href and "&to=" in href, f"incident export link: {href!r}"
        got = self.page.evaluate(
            "async (href) => { const r = await fetch(href); const b = await r.arrayBuffer();"
            " return [r.status, r.headers.get('content-type'), b.byteLength,"
            " String.fromCharCode(...new Uint8Array(b.slice(4, 8)))]; }", href)
        assert got[0] == 200 and got[1] == "video/mp4" and got[2] > 1000 and got[3] == "ftyp", \
            f"incident export answered {got}"
        wait_until(lambda: "locked of" in self.page.inner_text("#incidents-summary"),
                   "the incident list does not show locked bytes against the cap")

    def incident_is_marked_on_the_timeline(self):
        page = self.page

        def covering():
            for el in page.locator(f'.tl-bar[data-camera="{CAMERA}"] .tl-incident').all():
                start = iso_to_epoch(el.get_attribute("data-from"))
                end = iso_to_epoch(el.get_attribute("data-to"))
                box = el.bounding_box()
                if start <= self.locked_at <= end and box and box["width"] >= 2:
                    return el
            return None
        mark = wait_until(covering, "no incident mark on the timeline covers the lock")
        looks = mark.evaluate("e => [getComputedStyle(e).borderTopColor, getComputedStyle(e).backgroundColor]")
        span = page.locator(f'.tl-bar[data-camera="{CAMERA}"] .tl-span').first
        assert looks[1] != span.evaluate("e => getComputedStyle(e).backgroundColor"), \
            f"the incident looks like stored footage: {looks}"
        legend = page.locator(".tl-legend").inner_text()
        assert "incident" in legend.lower(), f"no legend entry for incidents: {legend!r}"
        page.locator("#timeline").scroll_into_view_if_needed()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#timeline").screenshot(path=str(SHOTS / "phone-timeline-incident.png"))

    def incident_size_is_stated_once(self):
        # During the post-roll the list's total and the incident's own size
        # are the same figure.
        def sizes():
            summary = re.search(r"([\d.]+ [kMGT]?B) locked of", self.page.inner_text("#incidents-summary"))
            item = re.search(r"· ([\d.]+ [kMGT]?B) locked", self.page.locator("#incident-list li").first.inner_text())
            return summary and item and (summary.group(1), item.group(1))
        total, one = wait_until(sizes, "no sizes in the incident list")
        assert total == one, f"the list says {total} locked, its only incident {one}"

    def clock_offer_sets_the_camera_clock(self):
        # A phone whose clock is an hour ahead of the recorder's.
        ctx = self.browser.new_context(viewport=PHONE, device_scale_factor=1,
                                       storage_state=self.ctx.storage_state())
        ctx.set_default_timeout(STEP_TIMEOUT_MS)
        ctx.add_init_script(SHIFTED_CLOCK_JS)
        page = self.new_page(ctx)
        page.goto(self.base + "/")
        page.locator("#clock-offer").wait_for(state="visible")
        text = page.inner_text("#clock-offer-text")
        assert "behind" in text, f"offer text: {text!r}"
        page.locator("#export-from").scroll_into_view_if_needed()
        wait_until(lambda: page.input_value("#export-to"), "the export form has no range")
        to_before = iso_to_epoch(page.input_value("#export-to") + "Z")
        page.click("#clock-set")
        wait_until(lambda: "clock set" in page.inner_text("#lock-note").lower(), "no confirmation after setting")
        page.locator("#clock-offer").wait_for(state="hidden")
        clock = page.evaluate("async () => (await fetch('/api/clock')).json()")
        ahead_s = clock["unix_ms"] / 1000 - time.time()
        assert 3590 < ahead_s < 3610, f"recorder clock is {ahead_s:.0f} s from the host's, wanted 3600"
        assert clock["estimated"] is False and clock["source"] == "set_offset", clock
        # "Last 5 minutes" in the export form follows the new clock.
        def export_range_moved():
            to_after = iso_to_epoch(page.input_value("#export-to") + "Z")
            return 3590 < to_after - to_before < 3700
        wait_until(export_range_moved, "the export form still shows the old clock's times")
        # Footage recorded before is relabelled: its spans moved an hour on.
        def moved():
            now = time.time() + 3600
            j = page.evaluate("async (q) => (await fetch('/api/recordings?' + q)).json()",
                              f"camera={CAMERA}&from={iso_utc(now - 600)}&to={iso_utc(now + 60)}")
            spans = j.get("spans", [])
            return spans and iso_to_epoch(spans[0]["start"]) <= self.server.started + 3600 + 5
        wait_until(moved, "the recordings were not relabelled by an hour")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "clock-set.png"), full_page=True)
        ctx.close()

    # A second recorder: two synthetic cameras and one whose V4L2 device does
    # not exist, started from the last good copy of a broken config, seen at
    # 1280x800.
    def second_recorder_starts(self):
        if isinstance(self.server, External):
            raise Skip("a server of our own is needed")
        self.gps = GpsFeed()
        self.server2 = Server(broken_config=True, gps=self.gps, cameras=[
            {"id": CAMERA, "name": "Front", "source": "synthetic", "res_width": 320, "res_height": 240, "fps": 10},
            {"id": "rear", "name": "Rear", "source": "synthetic", "res_width": 320, "res_height": 240, "fps": 10},
            {"id": "cabin", "name": "Cabin", "source": "v4l2", "device": "/dev/video99",
             "res_width": 320, "res_height": 240, "fps": 10},
        ])
        self.ctx2 = self.browser.new_context(viewport=DESKTOP, device_scale_factor=1)
        self.ctx2.set_default_timeout(STEP_TIMEOUT_MS)
        page = self.page2 = self.new_page(self.ctx2)
        page.goto(self.server2.url + "/login")
        page.fill("#token", self.server2.token)
        page.click("button[type=submit]")
        page.wait_for_url(self.server2.url + "/")
        for cam in (CAMERA, "rear"):
            img = page.locator(f'#live-grid img[data-camera="{cam}"]')
            wait_until(lambda: img.evaluate(IMAGE_HASH_JS), f"no live frame of {cam}")

    def second(self):
        if not getattr(self, "page2", None):
            raise Skip("no second recorder")
        return self.page2

    def missing_camera_says_not_found(self):
        page = self.second()
        tile = page.locator('#live-grid .live-view:has(img[data-camera="cabin"])')
        wait_until(lambda: "not found" in tile.inner_text().lower(), "the missing camera's tile does not say so")
        badge = tile.locator(".live-badge").inner_text()
        assert "LIVE" not in badge, f"the missing camera's badge says {badge!r}"
        live = page.locator(f'#live-grid .live-view:has(img[data-camera="{CAMERA}"]) .live-badge').inner_text()
        assert "LIVE" in live, f"the camera that records says {live!r}"
        link = tile.locator('a[href="#camera-checks"]')
        checks = page.locator("#camera-checks")
        text = checks.inner_text()
        assert "Cabin" in text and "ribbon cable" in text, f"the checks: {text!r}"
        link.click()
        wait_scroll_settled(page)
        top = checks.bounding_box()["y"]
        header = page.locator(".topbar").bounding_box()
        assert top >= header["y"] + header["height"] - 0.5, "the checks are under the header"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SHOTS / "desktop-missing-camera.png"))
        # The same on a phone.
        ctx = self.browser.new_context(viewport=PHONE, device_scale_factor=1,
                                       storage_state=self.ctx2.storage_state())
        phone = self.new_page(ctx)
        phone.goto(self.server2.url + "/")
        tile = phone.locator('#live-grid .live-view:has(img[data-camera="cabin"])')
        wait_until(lambda: "not found" in tile.inner_text().lower(), "the phone's tile does not say not found")
        tile.scroll_into_view_if_needed()
        phone.screenshot(path=str(SHOTS / "phone-missing-camera.png"))
        ctx.close()

    def gps_is_shown_with_its_fix_and_its_time_refused(self):
        page = self.second()
        box = page.locator("#gps")
        wait_until(lambda: box.is_visible() and "km/h" in page.inner_text("#gps-text"),
                   "no GPS fix with its speed in the health card")
        head = page.inner_text("#gps-text")
        assert re.search(r"[Ff]ix · 50 km/h", head), f"GPS headline: {head!r}"
        detail = page.locator("#gps-detail")
        wait_until(lambda: "rollover" in detail.inner_text(), "the rollover is not named")
        text = detail.inner_text()
        for want in (self.gps.path, "9600 baud", "9 satellites used", "HDOP 0.9", "52.52001, 13.40700", "last fix"):
            assert want in text, f"{want!r} not in the GPS line: {text!r}"
        # Its time never set the clock.
        status = page.evaluate("async () => (await fetch('/api/status')).json()")
        assert status["clock"]["set_by"] is None, f"clock: {status['clock']}"
        assert "1024 weeks" in status["gps"]["clock_rejection"], status["gps"]
        box.scroll_into_view_if_needed()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#health").screenshot(path=str(SHOTS / "desktop-gps.png"))

    def config_banner_names_the_config_in_use(self):
        alerts = self.second().locator("#alerts")
        wait_until(lambda: "Config problem" in alerts.inner_text(), "no config problem shown")
        text = alerts.inner_text()
        assert "segment_length_s" in text, f"the problem is not named: {text!r}"
        assert "Recording with the last good config" in text, f"which config is in use is not said: {text!r}"

    def incident_exports_line_up(self):
        page = self.second()
        page.click("#lock")
        item = page.locator("#incident-list li").first
        links = item.locator("a.button")
        wait_until(lambda: links.count() >= 2, "the incident has no export button per camera")
        boxes = [links.nth(i).bounding_box() for i in range(links.count())]
        tops = {round(b["y"]) for b in boxes}
        lefts = {round(b["x"]) for b in boxes}
        widths = [b["width"] for b in boxes]
        # One row, or an even grid: every row full but the last.
        assert len(tops) == 1 or len(lefts) * (len(tops) - 1) < len(boxes) <= len(lefts) * len(tops), \
            f"the export buttons are uneven: {boxes}"
        assert max(widths) - min(widths) <= 1, f"the export buttons differ in width: {boxes}"
        # No empty column beside them.
        area = item.locator(".inc-exports").bounding_box()
        right = max(b["x"] + b["width"] for b in boxes)
        assert right >= area["x"] + area["width"] - 2, f"the buttons leave room beside them: {boxes} in {area}"
        item.scroll_into_view_if_needed()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#incidents").screenshot(path=str(SHOTS / "desktop-incident.png"))

    def cards_say_when_the_recorder_stops(self):
        page = self.second()
        page.evaluate("window.scrollTo(0, 0)")
        self.server2.stop()
        for card in ("health", "live", "timeline", "incidents"):
            line = page.locator(f"#{card} > .card-state")
            wait_until(lambda: page.get_attribute(f"#{card}", "data-state") == "error"
                       and "retrying" in line.inner_text(),
                       f"the {card} card shows no error after the recorder stopped", timeout_s=15)
        text = page.locator("#health > .card-state").inner_text()
        assert text.startswith("Could not load"), f"health card: {text!r}"
        page.screenshot(path=str(SHOTS / "desktop-recorder-stopped.png"), full_page=True)

    def close(self):
        if getattr(self, "track_server", None):
            self.track_server.stop()
        if getattr(self, "track_feed", None):
            self.track_feed.stop()
        if getattr(self, "server2", None):
            self.server2.stop()
        if getattr(self, "gps", None):
            self.gps.stop()
        if getattr(self, "server3", None):
            self.server3.stop()

    def no_script_errors(self):
        assert not self.errors, "script errors:\n" + "\n".join(self.errors)

    def session_outlasts_a_restart(self):
        if isinstance(self.server, External):
            print("  (a server of our own is needed: skipped)")
            return
        self.server.restart()
        self.page.goto(self.base + "/")
        assert not self.page.url.endswith("/login"), "the restart ended the session"
        self.page.locator("#lock").wait_for()
        with self.page.expect_response(is_lock_post) as answered:
            self.page.click("#lock")
        assert answered.value.status == 200, f"Lock after a restart answered {answered.value.status}"

    def no_camera_found_is_shown(self):
        """A recorder that has found no camera says so, in red, with the checks."""
        if isinstance(self.server, External):
            print("  (a server of our own is needed: skipped)")
            return
        if list(Path("/dev").glob("video*")):
            print("  (this machine has a /dev/video device, which the recorder would find: skipped)")
            return
        server = Server(without_camera=True)
        try:
            page = self.new_page(self.ctx)
            page.goto(server.url + "/login")
            page.fill("#token", server.token)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/")
            alerts = page.locator("#alerts")
            wait_until(lambda: "No camera found" in alerts.inner_text(), "no 'No camera found' alert")
            text = alerts.inner_text()
            assert "ribbon cable" in text and "USB webcam" in text, f"the checks are missing: {text!r}"
            assert page.locator("#alerts .alert.bad").count() >= 1, "the alert is not shown as a problem"
            summary = page.inner_text("#summary")
            assert "No camera found" in summary, f"summary: {summary!r}"
            wait_until(lambda: "No camera yet" in page.inner_text("#live-grid"),
                       "the live view still says it is loading")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "no-camera.png"))
            page.close()
        finally:
            server.stop()


def is_lock_post(r):
    return r.url.endswith("/api/lock") and r.request.method == "POST"


class Skip(Exception):
    """A check that cannot run here."""


STEPS = [
    "login_page_first",
    "wrong_token_shows_error",
    "login",
    "live_image_updates",
    "header_clock_keeps_the_recorder_time",
    "health_panel_reports_recording",
    "export_sizes_are_estimated_before_any_tap",
    "track_card_is_hidden_without_gps",
    "timeline_shows_recorded_span",
    "tap_timeline_plays_back",
    "playback_clears_the_header_and_keeps_the_window_buttons",
    "pause_and_step_frames",
    "export_link_is_built",
    "export_range_is_24_hour_utc_text",
    "segment_download_link_works",
    # Its receiver drives while the share checks run.
    "track_recorder_starts",
    "track_card_says_when_a_range_has_no_positions",
    "share_clip_is_made_and_plays",
    "share_recorder_starts",
    "share_cancel_stops_a_running_job",
    "share_clip_is_scaled_down_and_plays",
    "share_recorder_stops",
    "phone_has_no_sideways_scroll",
    "lock_button_adds_an_incident",
    "incident_is_marked_on_the_timeline",
    "incident_size_is_stated_once",
    "desktop_layout",
    "track_card_draws_the_route",
    "track_recorder_stops",
    "clock_offer_sets_the_camera_clock",
    "session_outlasts_a_restart",
    "second_recorder_starts",
    "missing_camera_says_not_found",
    "config_banner_names_the_config_in_use",
    "gps_is_shown_with_its_fix_and_its_time_refused",
    "incident_exports_line_up",
    "cards_say_when_the_recorder_stops",
    "no_camera_found_is_shown",
    "no_script_errors",
]


def on_alarm(_sig, _frame):
    raise TimeoutError(f"the browser test ran over {WHOLE_TEST_S} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="test a server already running there instead of starting one")
    ap.add_argument("--token", help="its token (with --url)")
    args = ap.parse_args()

    began = time.monotonic()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(WHOLE_TEST_S)
    passed, failed = 0, 0
    server = None
    print(f"\nrunning {len(STEPS)} browser checks (Chromium at {PHONE['width']}x{PHONE['height']}, then desktop)")
    try:
        server = External(args.url, args.token) if args.url else Server()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path())
            checks = None
            try:
                checks = Checks(server, browser)
                for name in STEPS:
                    t0 = time.monotonic()
                    try:
                        getattr(checks, name)()
                    except Skip as e:
                        print(f"test browser::{name} ... ignored ({e})")
                        continue
                    except Exception as e:  # noqa: BLE001 - report every kind of failure
                        failed += 1
                        print(f"test browser::{name} ... FAILED")
                        print(f"---- browser::{name} ----\n{type(e).__name__}: {e}")
                        if not isinstance(e, AssertionError):
                            traceback.print_exc(limit=3)
                        SHOTS.mkdir(parents=True, exist_ok=True)
                        try:
                            checks.page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
                            print(f"screenshot: {SHOTS / 'failure.png'}")
                        except Exception:  # noqa: BLE001
                            pass
                        if checks.errors:
                            print("page errors:\n" + "\n".join(checks.errors))
                        if getattr(checks, "server2", None) and checks.server2.proc.poll() is None:
                            print("second recorder's log (tail):\n" + checks.server2.log_tail())
                        tail = server.log_tail()
                        if tail:
                            print("server log (tail):\n" + tail)
                        break
                    passed += 1
                    print(f"test browser::{name} ... ok ({time.monotonic() - t0:.1f} s)")
            finally:
                if checks:
                    checks.close()
                browser.close()
    except Exception as e:  # noqa: BLE001 - setup failures count as a failed test
        failed += 1
        print(f"test browser::setup ... FAILED\n{type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        if server:
            server.stop()
    skipped = len(STEPS) - passed - failed
    status = "ok" if failed == 0 else "FAILED"
    print(f"\ntest result: {status}. {passed} passed; {failed} failed; {max(0, skipped)} ignored; "
          f"0 measured; 0 filtered out; finished in {time.monotonic() - began:.2f}s")
    if failed == 0:
        print(f"screenshots: {SHOTS / 'phone.png'}, {SHOTS / 'desktop.png'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
