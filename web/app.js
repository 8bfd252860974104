// dashvault dashboard. Plain JS, no build step, no external resources: it
// is served by the recorder itself, often to a phone on the recorder's own
// hotspot with no Internet.
//
// Times: the API speaks RFC 3339 UTC; everything shown here is UTC and says
// so. "Now" is the recorder's clock (from /api/status), not the phone's: a
// Pi without a real-time clock may disagree with the phone, and the
// timeline and export presets must match what the recorder stored.
//
// Every field read from the API is optional: the status shape grows over
// time and an older or newer recorder must not break the page.

'use strict';

(() => {
  const STATUS_POLL_MS = 2000;
  const LIVE_FRAME_POLL_MS = 500;
  const LIVE_STREAM_RETRY_MS = 30000;
  const TIMELINE_REFRESH_MS = 5000;
  const SCRUB_DEBOUNCE_MS = 150;
  const PLAYER_TICK_MS = 250;
  const SYNC_AGE_WARN_S = 3;
  const SYNC_AGE_BAD_S = 10;
  // A camera not connected this long after start is reported as down.
  const CAMERA_START_GRACE_S = 5;
  const CLOCK_SKEW_NOTE_MS = 120000;
  const CLOCK_OFFER_SKEW_MS = 2000;
  const CLOCK_POLL_MS = 10000;
  const INCIDENT_POLL_MS = 5000;
  const EXPORT_LAST_MS = 5 * 60 * 1000;
  const ESTIMATE_DEBOUNCE_MS = 400;
  // A share job is polled only while it runs.
  const SHARE_POLL_MS = 1000;
  const SEGMENT_LIST_MAX = 200;
  const SCRUB_STEPS = 10000;
  // Status times differing from the running clock by less than this are
  // round-trip jitter: eased in, so the header clock never jumps back.
  const CLOCK_EASE_LIMIT_MS = 250;

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  // Builds an element: h('div', {class: 'x', onclick: f}, 'text', child).
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'style') Object.assign(e.style, v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  // A 24x24 single-path icon (no icon font: nothing to download).
  function icon(path) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '20');
    svg.setAttribute('height', '20');
    svg.setAttribute('aria-hidden', 'true');
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', path);
    p.setAttribute('fill', 'currentColor');
    svg.append(p);
    return svg;
  }

  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const enc = encodeURIComponent;

  // RFC 3339 to epoch ms. Accepts nanosecond fractions (cut to ms) and offsets.
  function parseTime(s) {
    if (typeof s === 'number') return s;
    if (typeof s !== 'string') return NaN;
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/i.exec(s.trim());
    if (!m) return Date.parse(s);
    const frac = m[2] ? '.' + (m[2] + '00').slice(0, 3) : '';
    return Date.parse(m[1] + frac + (m[3] || 'Z').toUpperCase());
  }

  const iso = (ms) => new Date(Math.round(ms)).toISOString();

  function fmtHM(ms) {
    const d = new Date(ms);
    return pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
  }
  function fmtHMS(ms, withMs) {
    const d = new Date(ms);
    let s = fmtHM(ms) + ':' + pad(d.getUTCSeconds());
    if (withMs) s += '.' + pad(d.getUTCMilliseconds(), 3);
    return s;
  }
  function fmtDate(ms) {
    const d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
  }
  const fmtDateTime = (ms, withMs) => fmtDate(ms) + ' ' + fmtHMS(ms, withMs) + ' UTC';

  function fmtDuration(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
    const hr = Math.floor(m / 60);
    return hr + ' h' + (m % 60 ? ' ' + pad(m % 60) + ' min' : '');
  }

  function fmtBytes(b) {
    if (num(b) === null) return '?';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (b >= 1000 && i < units.length - 1) { b /= 1000; i++; }
    return (i === 0 ? b : b.toFixed(b < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function fmtAge(s) {
    if (s === null) return 'never';
    if (s < 10) return s.toFixed(1) + ' s ago';
    return fmtDuration(s * 1000) + ' ago';
  }

  // The export range is typed as 24-hour UTC text, "YYYY-MM-DD HH:MM:SS"
  // like every other time on the page (a datetime-local field shows the
  // phone's local 12- or 24-hour format and clips on some desktops).
  const toInputValue = (ms) => fmtDate(ms) + ' ' + fmtHMS(ms);

  // Epoch ms of a typed UTC time, or an Error saying what is wrong with it.
  // Accepts a "T" for the space, no seconds, a fraction and a trailing
  // "Z" or "UTC"; refuses dates that do not exist (2026-02-30).
  function parseInputTime(v) {
    const text = String(v || '').trim();
    if (!text) return new Error('empty');
    const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?(?:\s*(?:Z|UTC))?$/i.exec(text);
    if (!m) return new Error('"' + text + '" is not YYYY-MM-DD HH:MM:SS');
    const [y, mo, d, hh, mm, ss] = m.slice(1, 7).map((x) => Number(x || 0));
    const ms = Number(((m[7] || '') + '00').slice(0, 3));
    const t = Date.UTC(y, mo - 1, d, hh, mm, ss, ms);
    const back = new Date(t);
    if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d
      || hh > 23 || mm > 59 || ss > 59) {
      return new Error('"' + text + '" is not a real date and time');
    }
    return t;
  }
  function fromInputValue(v) {
    const t = parseInputTime(v);
    return t instanceof Error ? NaN : t;
  }

  // -------------------------------------------------------------------- api

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let leaving = false;
  function toLogin() {
    if (leaving) return;
    leaving = true;
    location.href = '/login';
  }

  // Every POST carries the session's CSRF token from GET /api/session: a
  // form that another site posts here comes with the cookie, never with
  // this header, and that site cannot read the token.
  let csrfToken = '';
  async function csrf(renew) {
    if (renew || !csrfToken) {
      try {
        const r = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
        if (r.ok) csrfToken = String((await r.json()).csrf || '');
      } catch (_) { /* the request that needs it says what went wrong */ }
    }
    return csrfToken;
  }

  function changes(opts) {
    const method = ((opts && opts.method) || 'GET').toUpperCase();
    return method !== 'GET' && method !== 'HEAD';
  }

  async function withCsrf(opts, renew) {
    const headers = Object.assign({}, opts.headers, { 'X-CSRF-Token': await csrf(renew) });
    return Object.assign({}, opts, { headers });
  }

  async function api(path, opts) {
    let o = Object.assign({ credentials: 'same-origin', cache: 'no-store' }, opts);
    if (changes(o)) o = await withCsrf(o, false);
    let r = await fetch(path, o);
    if (r.status === 403 && changes(o)) {
      // Refused before doing anything: the token may be another session's
      // (logged in again since); once more with this session's.
      r = await fetch(path, await withCsrf(o, true));
    }
    if (r.status === 401) {
      toLogin();
      throw new HttpError(401, 'not logged in');
    }
    return r;
  }

  async function errorOf(r) {
    try {
      const j = await r.json();
      if (j && j.error) return new HttpError(r.status, String(j.error));
    } catch (_) { /* not JSON */ }
    return new HttpError(r.status, r.status + ' ' + r.statusText);
  }

  // A player (VLC, a download manager) opens a URL without the dashboard's
  // cookie, and the token is never accepted in a URL: ask the server for a
  // signed link to exactly this URL, valid for an hour, and show it to copy.
  async function showPlayerLink(path, what) {
    try {
      const r = await api('/api/links', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ url: path, ttl_s: 3600 }),
      });
      if (!r.ok) throw await errorOf(r);
      const link = await r.json();
      window.prompt(what + ': open this link in VLC or another player until ' + fmtHMS(Date.parse(link.expires)) + ' UTC.', location.origin + link.url);
    } catch (e) {
      if (!(e instanceof HttpError && e.status === 401)) window.alert('No link: ' + e.message);
    }
  }

  async function apiJson(path) {
    let r;
    try {
      r = await api(path);
    } catch (e) {
      if (e instanceof HttpError || e.name === 'AbortError') throw e;
      throw new HttpError(0, 'the recorder does not answer');
    }
    if (!r.ok) throw await errorOf(r);
    return r.json();
  }

  // A card's loading, empty or error state, in a line under its heading.
  // kind: 'loading', 'empty', 'error', or null when it shows its content.
  function setCardState(cardId, kind, text) {
    const card = $(cardId);
    let line = card.querySelector(':scope > .card-state');
    if (!line) {
      line = h('p', { class: 'card-state', role: 'status' });
      card.querySelector('h2').after(line);
    }
    card.dataset.state = kind || 'ok';
    line.className = 'card-state' + (kind ? ' ' + kind : '');
    line.textContent = kind ? text : '';
    line.hidden = !kind;
  }
  setCardState('health', 'loading', 'Loading…');
  setCardState('timeline', 'loading', 'Loading…');
  setCardState('incidents', 'loading', 'Loading…');

  // ------------------------------------------------------------------ state

  const state = {
    cameras: [], // [{id, name}] in status order
    names: {}, // id -> display name from /api/cameras
    status: null,
    statusError: null,
    // The recorder's clock: its time at a moment of this page's monotonic
    // clock (performance.now()), so it runs on smoothly between polls and
    // ignores changes to this device's clock.
    serverAnchor: null, // {serverMs, perfMs}
    lastCounters: {}, // id -> {at, captured, written, dropped}
    rates: {}, // id -> {fps, droppedRecently}
    configCapBytes: null,
    recordings: {}, // id -> {from, to, spans, segments, problems, error}
    incidents: [], // from /api/incidents, newest first
    win: { spanMs: 86400000, endMs: null }, // endMs null: follows now
  };

  function serverNow() {
    const a = state.serverAnchor;
    return a ? a.serverMs + (performance.now() - a.perfMs) : Date.now();
  }

  // The recorder said `serverMs` at `perfMs` (the middle of the round trip).
  function anchorServerTime(serverMs, perfMs) {
    const a = state.serverAnchor;
    if (a) {
      const predicted = a.serverMs + (perfMs - a.perfMs);
      const diff = serverMs - predicted;
      if (Math.abs(diff) < CLOCK_EASE_LIMIT_MS) {
        state.serverAnchor = { serverMs: predicted + diff / 4, perfMs };
        return;
      }
    }
    state.serverAnchor = { serverMs, perfMs };
  }
  const cameraName = (id) => {
    const c = state.cameras.find((x) => x.id === id);
    return state.names[id] || (c && c.name) || id;
  };

  // ----------------------------------------------------------------- status

  function droppedTotal(cam) {
    if (num(cam.dropped) !== null) return { total: cam.dropped, reasons: cam.dropped_by_reason || {} };
    const reasons = (cam.dropped && typeof cam.dropped === 'object') ? cam.dropped
      : (cam.dropped_by_reason || {});
    let total = 0;
    for (const v of Object.values(reasons)) total += num(v) || 0;
    return { total, reasons };
  }

  function syncAgeS(cam) {
    if (num(cam.last_sync_age_s) !== null) return cam.last_sync_age_s;
    if (num(cam.last_sync_age_ms) !== null) return cam.last_sync_age_ms / 1000;
    return null;
  }

  // fps and recent drops from counter deltas when the server does not say.
  function updateRates(cams) {
    const now = performance.now();
    for (const cam of cams) {
      const prev = state.lastCounters[cam.id];
      const dropped = droppedTotal(cam).total;
      const cur = { at: now, captured: num(cam.captured), written: num(cam.written), dropped };
      const rate = state.rates[cam.id] || { fps: null, droppedRecently: 0 };
      if (prev && now - prev.at > 500) {
        const dt = (now - prev.at) / 1000;
        const counter = cur.written !== null ? 'written' : 'captured';
        if (cur[counter] !== null && prev[counter] !== null && cur[counter] >= prev[counter]) {
          rate.fps = (cur[counter] - prev[counter]) / dt;
        }
        rate.droppedRecently = Math.max(0, dropped - prev.dropped);
      }
      state.rates[cam.id] = rate;
      state.lastCounters[cam.id] = cur;
    }
  }

  // Whether a camera delivers nothing, in words: 'not found' when its
  // device is missing, else 'disconnected'; null while it records or is
  // still starting.
  function cameraDown(cam) {
    if (cam.connected !== false) return null;
    const uptime = num(state.status && state.status.uptime_s);
    if (!cam.last_error && uptime !== null && uptime < CAMERA_START_GRACE_S) return null;
    return /no such|not found|does not exist|enoent|no device/i.test(String(cam.last_error || ''))
      ? 'not found' : 'disconnected';
  }

  // ok / warn / bad for one camera, and why.
  function cameraHealth(cam) {
    const reasons = [];
    let level = 'ok';
    const raise = (l, why) => {
      if (l === 'bad' || (l === 'warn' && level === 'ok')) level = l;
      reasons.push(why);
    };
    const age = syncAgeS(cam);
    const uptime = num(state.status && state.status.uptime_s);
    const down = cameraDown(cam);
    if (down) raise('bad', 'camera ' + down);
    else if (cam.connected === false) raise('warn', 'camera starting');
    if (age !== null && age > SYNC_AGE_BAD_S) raise('bad', 'nothing synced for ' + fmtDuration(age * 1000));
    else if (age !== null && age > SYNC_AGE_WARN_S) raise('warn', 'last sync ' + age.toFixed(1) + ' s ago');
    else if (age === null && (uptime === null || uptime > SYNC_AGE_BAD_S)) raise('warn', 'nothing synced yet');
    const rate = state.rates[cam.id];
    if (rate && rate.droppedRecently > 0) raise('warn', 'dropping frames');
    if (cam.last_error) raise('warn', 'last error: ' + cam.last_error);
    return { level, reasons };
  }

  async function pollStatus() {
    try {
      const t0 = performance.now();
      const s = await apiJson('/api/status');
      const t1 = performance.now();
      const serverMs = parseTime(s.time);
      if (Number.isFinite(serverMs)) anchorServerTime(serverMs, (t0 + t1) / 2);
      // Back after an outage or a restart of the recorder: live streams
      // ended with the old connection (an <img> keeps its last frame and
      // says nothing), so open them again.
      const restarted = state.status && num(s.uptime_s) !== null && num(state.status.uptime_s) !== null
        && s.uptime_s < state.status.uptime_s;
      if ((state.statusError || restarted) && !document.hidden) {
        for (const t of tiles.values()) if (t.mode !== 'poll') startStream(t);
      }
      state.status = s;
      state.statusError = null;
      setShareEncoder(s.share_encoder);
      const cams = Array.isArray(s.cameras) ? s.cameras.filter((c) => c && c.id) : [];
      updateRates(cams);
      setCameras(cams.map((c) => ({ id: String(c.id), name: c.name })));
    } catch (e) {
      if (e.status === 401) return;
      state.statusError = e.message || String(e);
    }
    renderStatus();
    renderTimeline();
  }

  function renderStatus() {
    const s = state.status;
    const cams = s && Array.isArray(s.cameras) ? s.cameras.filter((c) => c && c.id) : [];
    const alerts = [];

    if (state.statusError) {
      alerts.push(['bad', 'Cannot reach the recorder: ' + state.statusError]);
      const again = ' — retrying every ' + STATUS_POLL_MS / 1000 + ' s';
      setCardState('health', 'error', 'Could not load: ' + state.statusError + again + (s ? '; what is shown is from before.' : '.'));
      setCardState('live', 'error', 'Could not reach the recorder: ' + state.statusError + again + (s ? '; the pictures may be old.' : '.'));
    } else if (!s) {
      setCardState('health', 'loading', 'Loading…');
    } else {
      setCardState('health', cams.length ? null : 'empty', 'No camera is recording yet.');
      setCardState('live', null);
    }
    if (s && s.config_problem) {
      // Say which config the recorder runs with instead of the broken file.
      const using = {
        last_good: 'Recording with the last good config',
        defaults: 'Recording with built-in defaults (the test camera)',
      }[s.config_origin];
      alerts.push(['warn', h('span', null, h('strong', null, 'Config problem: '), String(s.config_problem),
        using ? h('span', { class: 'config-in-use' }, h('br'), h('strong', null, using),
          ' until the file is fixed and the recorder restarted.') : null)]);
    }
    if (s && s.no_camera) {
      const n = s.no_camera;
      const checks = Array.isArray(n.checks) ? n.checks : [];
      alerts.push(['bad', h('span', null, h('strong', null, 'No camera found. '),
        'Recording starts by itself when one appears. Check: ',
        h('ul', { class: 'checks' }, ...checks.map((c) => h('li', null, String(c))))), 'camera-checks']);
    }
    // Cameras that deliver nothing while others record: one alert with the
    // checks, which their live tiles link to.
    const downCams = cams.filter((c) => cameraDown(c));
    if (downCams.length) {
      const withChecks = downCams.find((c) => Array.isArray(c.checks) && c.checks.length);
      const checks = withChecks ? withChecks.checks : [];
      alerts.push(['bad', h('span', null,
        h('strong', null, downCams.map((c) => cameraName(c.id) + ': camera ' + cameraDown(c)).join('; ') + '. '),
        downCams.filter((c) => c.last_error).map((c) => 'Last error: ' + c.last_error + '. '),
        'Recording starts by itself when it appears.',
        checks.length ? [' Check: ', h('ul', { class: 'checks' }, ...checks.map((c) => h('li', null, String(c))))] : null),
      'camera-checks']);
    }
    const st = (s && s.storage) || {};
    if (st.cap_unreachable) {
      alerts.push(['bad', h('span', null, h('strong', null, 'Storage cap cannot be met. '),
        'Everything left is protected or still open: recording may stop when the disk fills.')]);
    }
    const storageErrors = (num(st.errors) || 0) + (num(st.retention_failures) || 0);
    if (storageErrors > 0 || st.last_retention_error) {
      alerts.push(['bad', h('span', null, h('strong', null, 'Storage errors: '),
        String(storageErrors) + (st.last_retention_error ? ' (last: ' + st.last_retention_error + ')' : ''))]);
    }

    let worst = s ? 'ok' : 'warn';
    const problems = [];
    for (const cam of cams) {
      const health = cameraHealth(cam);
      if (health.level === 'bad') {
        worst = 'bad';
        if (!cameraDown(cam)) alerts.push(['bad', h('span', null, h('strong', null, cameraName(cam.id) + ': '), health.reasons.join(', '))]);
      } else if (health.level === 'warn' && worst === 'ok') worst = 'warn';
      if (health.level !== 'ok') problems.push(cameraName(cam.id) + ' ' + health.reasons[0]);
      if (num(cam.storage_errors) > 0) {
        alerts.push(['bad', cameraName(cam.id) + ': ' + cam.storage_errors + ' storage errors']);
      }
    }
    if (state.statusError || st.cap_unreachable || storageErrors > 0 || (s && s.no_camera)) worst = 'bad';

    if (s && Math.abs(serverNow() - Date.now()) > CLOCK_SKEW_NOTE_MS) {
      alerts.push(['info', 'The recorder clock reads ' + fmtDateTime(serverNow()) + ', this device '
        + fmtDateTime(Date.now()) + '. Times shown here are the recorder\'s.']);
    }

    renderAlerts(alerts);

    // Summary line in the top bar.
    const summary = $('summary');
    summary.className = 'summary ' + worst;
    let text;
    if (!s) text = state.statusError ? 'Recorder unreachable' : 'Connecting…';
    else if (state.statusError) text = 'Recorder unreachable';
    else if (cams.length === 0) { text = s.no_camera ? 'No camera found' : 'No cameras'; summary.className = 'summary ' + (s.no_camera ? 'bad' : 'warn'); }
    else {
      const fps = cams.map((c) => fpsOf(c)).filter((f) => f !== null);
      const fpsText = fps.length ? ' · ' + fps.map((f) => f.toFixed(0)).join('/') + ' fps' : '';
      const used = usedText(st);
      if (worst === 'ok') text = 'Recording ' + cams.length + (cams.length === 1 ? ' camera' : ' cameras') + fpsText + used;
      else text = (worst === 'bad' ? 'Problem: ' : 'Check: ') + problems.concat(state.statusError || []).join('; ');
      if (worst !== 'ok' && !problems.length) text = worst === 'bad' ? 'Problem: see alerts' : 'Check alerts';
    }
    summary.querySelector('.summary-text').textContent = text;

    renderStorage(st);
    renderGps(s && s.gps, s && s.clock);
    renderCameraHealth(cams);
    renderLiveBadges(cams);
  }

  function fpsOf(cam) {
    if (num(cam.fps) !== null) return cam.fps;
    const r = state.rates[cam.id];
    return r && r.fps !== null ? r.fps : null;
  }

  function capBytesOf(st) {
    return num(st.cap_bytes) !== null ? st.cap_bytes : state.configCapBytes;
  }

  function usedText(st) {
    const cap = capBytesOf(st);
    if (num(st.used_bytes) === null || !cap) return '';
    return ' · ' + Math.round((100 * st.used_bytes) / cap) + '% of cap';
  }

  let lastAlertsKey = '';
  // alerts: [level, message, id?]; the id is a place others link to.
  function renderAlerts(alerts) {
    const key = alerts.map(([l, m, id]) => l + ':' + (id || '') + ':' + (typeof m === 'string' ? m : m.textContent)).join('\n');
    if (key === lastAlertsKey) return;
    lastAlertsKey = key;
    const box = $('alerts');
    box.replaceChildren(...alerts.map(([level, msg, id]) => h('div', { class: 'alert ' + level, role: level === 'info' ? null : 'alert', id: id || null }, msg)));
  }

  function renderStorage(st) {
    const used = num(st.used_bytes);
    const cap = capBytesOf(st);
    const free = num(st.free_bytes);
    const total = num(st.total_bytes);
    const gauge = $('storage-gauge');
    const pct = used !== null && cap ? Math.min(100, (100 * used) / cap) : 0;
    gauge.querySelector('.gauge-fill').style.width = pct.toFixed(1) + '%';
    gauge.setAttribute('aria-valuenow', pct.toFixed(0));
    gauge.setAttribute('aria-valuetext', used === null ? 'unknown' : fmtBytes(used) + ' used' + (cap ? ' of ' + fmtBytes(cap) : ''));
    gauge.className = 'gauge' + (st.cap_unreachable ? ' bad' : '');
    $('storage-text').textContent = used === null ? '–'
      : fmtBytes(used) + ' used' + (cap ? ' of ' + fmtBytes(cap) + ' cap' : '');
    const parts = [];
    if (free !== null) parts.push(fmtBytes(free) + ' free on disk' + (total ? ' of ' + fmtBytes(total) : ''));
    const deleted = num(st.retention_deleted_segments) ?? num(st.deleted_segments);
    if (deleted) parts.push(deleted + ' old segments deleted to stay under the cap');
    if (num(st.min_free_bytes)) parts.push('keeps ' + fmtBytes(st.min_free_bytes) + ' free');
    if (st.cap_unreachable) parts.push('cap unreachable');
    parts.push('oldest unprotected footage is deleted first when full');
    $('storage-detail').textContent = parts.join(' · ');
  }

  // The GPS receiver, when one is configured: fix, satellites, HDOP, the
  // last fix's age, speed, and whether its time set the clock.
  function renderGps(g, clock) {
    const box = $('gps');
    box.hidden = !g;
    if (!g) return;
    const fixNames = { no_fix: 'no fix', fix: 'Fix', fix2d: '2D fix', fix3d: '3D fix', dgps: '3D fix (DGPS)',
      rtk: 'RTK fix', float_rtk: 'float RTK', dead_reckoning: 'dead reckoning', manual: 'manual', simulation: 'simulation' };
    const age = num(g.last_fix_age_ms);
    let head;
    if (!g.connected) head = 'Receiver not connected';
    else if (g.quality === 'no_fix' || !g.quality) head = 'No fix';
    else head = (fixNames[g.quality] || String(g.quality)) + (num(g.speed) !== null ? ' · ' + num(g.speed).toFixed(0) + ' ' + (g.speed_unit === 'mph' ? 'mph' : 'km/h') : '');
    $('gps-text').textContent = head;
    const parts = [];
    if (g.device) parts.push(String(g.device) + (num(g.baud) ? ' at ' + g.baud + ' baud' : ''));
    if (num(g.sats_used) !== null || num(g.sats_in_view) !== null) {
      parts.push((num(g.sats_used) ?? '–') + ' satellites used' + (num(g.sats_in_view) !== null ? ' of ' + g.sats_in_view + ' in view' : ''));
    }
    if (num(g.hdop) !== null) parts.push('HDOP ' + num(g.hdop).toFixed(1));
    if (num(g.lat) !== null && num(g.lon) !== null) parts.push(num(g.lat).toFixed(5) + ', ' + num(g.lon).toFixed(5));
    parts.push(age === null ? 'no fix yet' : 'last fix ' + fmtAge(age / 1000));
    if (clock && clock.set_by === 'gps') parts.push('the clock is set from GPS');
    else if (g.clock_rejection) parts.push('its time is not used: ' + g.clock_rejection);
    if (g.last_error && !g.connected) parts.push(String(g.last_error));
    $('gps-detail').textContent = parts.join(' · ');
    box.classList.toggle('warn', !g.connected || age === null || age > 5000);
  }

  const openRecovery = new Set();

  function renderCameraHealth(cams) {
    const box = $('camera-health');
    box.replaceChildren(...cams.map((cam) => {
      const health = cameraHealth(cam);
      const fps = fpsOf(cam);
      const { total: dropped, reasons } = droppedTotal(cam);
      const age = syncAgeS(cam);
      const rate = state.rates[cam.id] || {};
      const reasonText = Object.entries(reasons).filter(([, v]) => num(v) > 0)
        .map(([k, v]) => k.replace(/_/g, ' ') + ' ' + v).join(', ');
      const stat = (label, value, cls) => h('div', null, h('dt', null, label), h('dd', { class: cls || null }, value));
      const stats = h('dl', { class: 'stats' },
        stat('Frame rate', fps === null ? '–' : fps.toFixed(1) + (num(cam.target_fps) ? ' of ' + cam.target_fps : '') + ' fps',
          fps !== null && num(cam.target_fps) && fps < 0.8 * cam.target_fps ? 'warn' : null),
        stat('Dropped', String(dropped) + (reasonText ? ' (' + reasonText + ')' : ''), rate.droppedRecently > 0 ? 'warn' : null),
        stat('Last sync', fmtAge(age), age === null ? null : age > SYNC_AGE_BAD_S ? 'bad' : age > SYNC_AGE_WARN_S ? 'warn' : null),
        stat('Camera', cameraDown(cam) || (cam.connected === false ? 'starting' : cam.connected ? 'connected' : '?'),
          cameraDown(cam) ? 'bad' : null),
        num(cam.written) !== null ? stat('Frames stored since start', String(cam.written)) : null,
        num(cam.written_bytes) !== null ? stat('Bytes stored since start', fmtBytes(cam.written_bytes)) : null,
        (cam.io_mode || typeof cam.direct_io === 'boolean')
          ? stat('Disk writes', cam.io_mode || (cam.direct_io ? 'direct' : 'buffered')) : null,
        num(cam.reconnects) ? stat('Reconnects', String(cam.reconnects), 'warn') : null,
        num(cam.camera_errors) ? stat('Camera errors', String(cam.camera_errors), 'warn') : null,
        num(cam.storage_errors) ? stat('Storage errors', String(cam.storage_errors), 'bad') : null,
        num(cam.live_viewers) !== null ? stat('Live viewers', String(cam.live_viewers)) : null,
        cam.source ? stat('Source', String(cam.source)) : null,
        cam.current_segment ? h('div', { class: 'wide' }, h('dt', null, 'Writing'), h('dd', { class: 'mono' }, cam.current_segment)) : null,
      );
      const rec = Array.isArray(cam.recovery) ? cam.recovery : [];
      let recovery = null;
      if (rec.length) {
        const frames = rec.reduce((a, r) => a + (num(r.frames) || 0), 0);
        const details = h('details', { class: 'recovery', open: openRecovery.has(cam.id),
          ontoggle: (e) => (e.target.open ? openRecovery.add(cam.id) : openRecovery.delete(cam.id)) },
        h('summary', null, 'Recovered after the last power cut: ' + rec.length + ' segment' + (rec.length === 1 ? '' : 's') + ', ' + frames + ' frames kept'),
        h('ul', null, rec.map((r) => h('li', null,
          h('span', { class: 'mono' }, r.segment || '?'), ': ',
          (num(r.frames) ?? '?') + ' frames',
          num(r.seconds) !== null ? ' (' + r.seconds.toFixed(1) + ' s)' : '',
          num(r.torn_bytes) ? ', ' + fmtBytes(r.torn_bytes) + ' torn tail cut' : '',
          num(r.trimmed_bytes) ? ', ' + fmtBytes(r.trimmed_bytes) + ' unused space trimmed' : '',
          r.action ? ', ' + r.action : ''))));
        recovery = details;
      }
      return h('article', { class: 'cam-card ' + health.level, 'aria-label': cameraName(cam.id) + ' health' },
        h('h3', null, h('span', { class: 'dot ' + health.level }), cameraName(cam.id),
          h('span', { class: 'state' }, health.level === 'ok' ? 'recording' : health.reasons[0] || '')),
        stats,
        cam.last_error ? h('p', { class: 'cam-error' }, 'Last error: ' + cam.last_error) : null,
        recovery);
    }));
  }

  // ------------------------------------------------------------------- live

  // One tile per camera. The live image is the server's multipart MJPEG
  // stream; the server caps concurrent streams (503 beyond it), so on an
  // error the tile polls single frames instead and tries the stream again
  // later. Hidden pages hold no streams, to leave the cap to others.
  const tiles = new Map(); // id -> tile

  function setCameras(list) {
    const ids = list.map((c) => c.id).join('\n');
    const same = ids === state.cameras.map((c) => c.id).join('\n');
    state.cameras = list;
    // The first status builds the grid even with no camera, to replace
    // the loading hint.
    if (same && state.gridBuilt) return;
    state.gridBuilt = true;
    buildLiveGrid();
    fillCameraSelects();
    loadTimeline();
  }

  function buildLiveGrid() {
    for (const t of tiles.values()) stopTile(t);
    tiles.clear();
    const grid = $('live-grid');
    if (!state.cameras.length) {
      const searching = state.status && state.status.no_camera;
      grid.replaceChildren(h('p', { class: 'hint' }, searching
        ? 'No camera yet: it shows here as soon as the recorder finds one.'
        : 'No cameras are configured.'));
      return;
    }
    grid.replaceChildren(...state.cameras.map((c) => {
      const img = h('img', { alt: 'Live view of ' + cameraName(c.id), 'data-camera': c.id });
      const badge = h('span', { class: 'live-badge' }, '…');
      const tile = { id: c.id, img, badge, mode: 'off', timer: null, retryAt: 0, objectUrl: null, frames: 0, ctrl: null, down: null, downBox: null };
      img.addEventListener('load', () => {
        tile.frames++;
        img.dataset.frames = tile.frames;
        if (img.naturalWidth && img.naturalHeight) {
          img.parentElement.style.aspectRatio = img.naturalWidth + ' / ' + img.naturalHeight;
        }
      });
      img.addEventListener('error', () => {
        if (tile.mode === 'stream') startPolling(tile, 'stream refused');
      });
      tiles.set(c.id, tile);
      const fig = h('figure', { class: 'live-tile' },
        h('div', { class: 'live-view' }, img, badge),
        h('figcaption', null, h('span', { class: 'dot', 'data-dot': c.id }), h('span', { class: 'name' }, cameraName(c.id)),
          h('a', { class: 'button small', href: '/api/snapshot?camera=' + enc(c.id), download: '', 'aria-label': 'Snapshot of ' + cameraName(c.id) }, 'Snapshot'),
          h('button', { type: 'button', class: 'button small', 'aria-label': 'Link to the live view of ' + cameraName(c.id) + ' for a player',
            onclick: () => showPlayerLink('/api/stream/mjpeg?camera=' + enc(c.id), 'Live view of ' + cameraName(c.id)) }, 'VLC link')));
      return fig;
    }));
    if (!document.hidden) for (const t of tiles.values()) startStream(t);
  }

  function renderLiveBadges(cams) {
    for (const cam of cams) {
      const dot = document.querySelector('[data-dot="' + CSS.escape(cam.id) + '"]');
      if (dot) dot.className = 'dot ' + cameraHealth(cam).level;
      const tile = tiles.get(cam.id);
      if (tile) setTileDown(tile, cameraDown(cam), cam);
    }
  }

  // A camera that delivers nothing shows why on its tile, not a black
  // picture labelled LIVE, and links to the checks.
  function setTileDown(tile, down, cam) {
    const was = tile.down;
    tile.down = down;
    if (down) {
      if (!tile.downBox) {
        tile.downBox = h('div', { class: 'live-down', role: 'status' });
        tile.img.parentElement.append(tile.downBox);
      }
      tile.downBox.replaceChildren(
        h('strong', null, 'Camera ' + down),
        cam.last_error ? h('span', null, String(cam.last_error)) : null,
        h('a', { href: '#camera-checks' }, 'What to check'));
      if (!was) stopTile(tile);
      else setBadge(tile);
    } else if (was) {
      if (tile.downBox) tile.downBox.remove();
      tile.downBox = null;
      if (!document.hidden) startStream(tile);
    }
  }

  function setBadge(tile, text, live) {
    if (tile.down) {
      text = tile.down === 'not found' ? 'NOT FOUND' : 'DISCONNECTED';
      live = false;
    }
    tile.badge.textContent = text;
    tile.badge.className = 'live-badge' + (tile.down ? ' down' : live ? ' live' : '');
  }

  function startStream(tile) {
    stopTile(tile);
    if (tile.down) return;
    tile.mode = 'stream';
    setBadge(tile, 'LIVE', true);
    tile.img.src = '/api/stream/mjpeg?camera=' + enc(tile.id) + '&t=' + Date.now();
  }

  function startPolling(tile, why) {
    stopTile(tile, true);
    tile.mode = 'poll';
    tile.retryAt = performance.now() + LIVE_STREAM_RETRY_MS;
    tile.img.title = 'Live stream unavailable (' + why + '): showing a new frame every half second';
    setBadge(tile, 'LIVE ½ s', true);
    pollFrame(tile);
  }

  async function pollFrame(tile) {
    if (tile.mode !== 'poll') return;
    if (performance.now() > tile.retryAt) {
      startStream(tile);
      return;
    }
    let wait = LIVE_FRAME_POLL_MS;
    tile.ctrl = new AbortController();
    try {
      const r = await api('/api/stream/frame?camera=' + enc(tile.id), { signal: tile.ctrl.signal });
      if (!r.ok) throw await errorOf(r);
      const blob = await r.blob();
      if (tile.mode !== 'poll') return;
      const url = URL.createObjectURL(blob);
      const old = tile.objectUrl;
      tile.objectUrl = url;
      tile.img.src = url;
      if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
      setBadge(tile, 'LIVE ½ s', true);
    } catch (e) {
      if (e.name === 'AbortError' || tile.mode !== 'poll') return;
      setBadge(tile, 'NO SIGNAL', false);
      wait = 2000;
    }
    tile.timer = setTimeout(() => pollFrame(tile), wait);
  }

  function stopTile(tile, keepImage) {
    clearTimeout(tile.timer);
    tile.timer = null;
    if (tile.ctrl) tile.ctrl.abort();
    tile.ctrl = null;
    if (tile.mode === 'stream' && !keepImage) {
      // Removing the source closes the connection and frees a stream slot.
      tile.img.removeAttribute('src');
    }
    tile.mode = 'off';
    setBadge(tile, 'PAUSED', false);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      for (const t of tiles.values()) stopTile(t);
      if (player.playing) pause();
    } else {
      for (const t of tiles.values()) startStream(t);
      pollStatus();
    }
  });

  // --------------------------------------------------------------- timeline

  let timelineSeq = 0;
  let timelineTimer = null;

  function windowRange() {
    const end = state.win.endMs === null ? serverNow() : state.win.endMs;
    return { from: end - state.win.spanMs, to: end };
  }

  function parseSpans(list) {
    return (Array.isArray(list) ? list : [])
      .map((s) => ({ start: parseTime(s.start), end: parseTime(s.end), frames: num(s.frames), estimated: s.estimated === true }))
      .filter((s) => Number.isFinite(s.start) && Number.isFinite(s.end) && s.end >= s.start)
      .sort((a, b) => a.start - b.start);
  }

  function parseSegments(list) {
    return (Array.isArray(list) ? list : [])
      .map((s) => Object.assign({}, s, { startMs: parseTime(s.start), endMs: parseTime(s.end) }))
      .filter((s) => s.name);
  }

  async function fetchRecordings(camera, from, to) {
    const j = await apiJson('/api/recordings?camera=' + enc(camera) + '&from=' + enc(iso(from)) + '&to=' + enc(iso(to)));
    return {
      from, to,
      spans: parseSpans(j.spans),
      segments: parseSegments(j.segments),
      problems: Array.isArray(j.problems) ? j.problems : [],
      error: null,
    };
  }

  async function loadTimeline() {
    clearTimeout(timelineTimer);
    const seq = ++timelineSeq;
    const { from, to } = windowRange();
    if (!Object.keys(state.recordings).length && state.cameras.length) setCardState('timeline', 'loading', 'Loading…');
    const results = await Promise.all(state.cameras.map(async (c) => {
      try {
        return [c.id, await fetchRecordings(c.id, from, to)];
      } catch (e) {
        return [c.id, { from, to, spans: [], segments: [], problems: [], error: e.message }];
      }
    }));
    if (seq !== timelineSeq) return;
    state.recordings = Object.fromEntries(results);
    const failed = results.filter(([, r]) => r.error);
    if (!state.cameras.length) setCardState('timeline', 'empty', 'No cameras yet: nothing recorded.');
    else if (failed.length) {
      const which = failed.length < results.length ? ' ' + failed.map(([id]) => cameraName(id)).join(', ') : '';
      setCardState('timeline', 'error', 'Could not load' + which + ': ' + failed[0][1].error
        + ' — retrying every ' + TIMELINE_REFRESH_MS / 1000 + ' s.');
    } else if (results.every(([, r]) => !r.spans.length)) setCardState('timeline', 'empty', 'No recordings in this window yet.');
    else setCardState('timeline', null);
    renderTimeline();
    renderSegments();
    loadTrack(from, to);
    if ((state.win.endMs === null || failed.length) && !document.hidden) {
      timelineTimer = setTimeout(loadTimeline, TIMELINE_REFRESH_MS);
    }
  }

  // Tick spacing: the smallest step that leaves room for the labels.
  const TICK_STEPS_MS = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3];
  function tickStep(spanMs, widthPx) {
    const maxLabels = Math.max(2, Math.floor(widthPx / 58));
    return TICK_STEPS_MS.find((s) => spanMs / s <= maxLabels) || TICK_STEPS_MS[TICK_STEPS_MS.length - 1];
  }

  function renderTimeline() {
    const { from, to } = windowRange();
    const span = to - from;
    const pct = (t) => ((t - from) / span) * 100;
    const box = $('timelines');
    const width = box.clientWidth || 360;
    const step = tickStep(span, width);
    const ticks = [];
    for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);

    $('tl-range').textContent = fmtDate(from) + ' ' + fmtHMS(from) + ' – '
      + (fmtDate(to) === fmtDate(from) ? '' : fmtDate(to) + ' ') + fmtHMS(to) + ' UTC'
      + (state.win.endMs === null ? ' (now)' : '');

    // Rows and bars stay in place between refreshes (only their contents
    // change), so a tap that straddles a refresh still lands on its bar.
    const ids = state.cameras.map((c) => c.id);
    if (ids.join('\n') !== [...timelineRows.keys()].join('\n')) {
      timelineRows.clear();
      for (const id of ids) timelineRows.set(id, timelineRow(id));
      box.replaceChildren(...[...timelineRows.values()].map((r) => r.row));
    }
    const now = serverNow();
    for (const [id, r] of timelineRows) {
      const marks = incidentMarks(id, from, to, pct);
      const rec = state.recordings[id];
      const spans = rec ? rec.spans.filter((s) => s.end >= from && s.start <= to) : [];
      let stored = 0;
      for (const s of spans) stored += Math.min(s.end, to) - Math.max(s.start, from);
      const gaps = Math.max(0, spans.length - 1);
      r.name.textContent = cameraName(id);
      r.stats.textContent = fmtDuration(stored) + ' stored' + (gaps ? ' · ' + gaps + (gaps === 1 ? ' gap' : ' gaps') : '')
        + (marks.length ? ' · ' + marks.length + ' locked' : '');
      r.bar.setAttribute('aria-label', cameraName(id) + ' recordings ' + fmtHM(from) + ' to ' + fmtHM(to) + ' UTC: '
        + fmtDuration(stored) + ' stored' + (gaps ? ' with ' + gaps + (gaps === 1 ? ' gap' : ' gaps') : '')
        + '. Activate to play the latest footage.');
      r.bar.replaceChildren(
        ...ticks.map((t) => h('div', { class: 'tl-grid', style: { left: pct(t) + '%' } })),
        ...spans.map((s) => h('div', {
          class: s.estimated ? 'tl-span estimated' : 'tl-span',
          title: s.estimated ? 'Recorded while the clock was estimated' : null,
          'data-start': iso(s.start), 'data-end': iso(s.end), 'data-frames': s.frames,
          style: { left: Math.max(0, pct(s.start)) + '%', width: Math.max(0, pct(Math.min(s.end, to)) - Math.max(0, pct(s.start))) + '%' },
        })),
        ...marks,
        ...(now >= from && now <= to ? [h('div', { class: 'tl-now', style: { left: 'calc(' + pct(now) + '% - 2px)' } })] : []),
        ...(rec && rec.error ? [h('div', { class: 'tl-empty' }, 'Could not load: ' + rec.error)]
          : rec && !spans.length ? [h('div', { class: 'tl-empty' }, 'No footage in this window')] : []));
    }
    updateHead();

    $('tl-axis').replaceChildren(...ticks.map((t) => {
      const p = pct(t);
      const cls = 'tl-tick' + (p < 4 ? ' edge-left' : p > 96 ? ' edge-right' : '');
      const d = new Date(t);
      const label = d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && step >= 3600e3
        ? fmtDate(t).slice(5) : fmtHM(t);
      return h('span', { class: cls, style: { left: p + '%' } }, label);
    }));

    for (const b of document.querySelectorAll('[data-window]')) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.window) === state.win.spanMs));
    }
    $('tl-now').setAttribute('aria-pressed', String(state.win.endMs === null));
    updateScrub();
  }

  const timelineRows = new Map(); // camera id -> {row, name, stats, bar}

  // Locked incidents over one camera's bar: a red-edged band over each
  // incident's whole range (post-roll still to come included).
  function incidentMarks(camera, from, to, pct) {
    return state.incidents
      .filter((inc) => {
        const cams = Array.isArray(inc.exports) ? inc.exports.map((x) => x.camera) : [];
        return !inc.released && (!cams.length || cams.includes(camera));
      })
      .map((inc) => ({ inc, a: parseTime(inc.from), b: parseTime(inc.to) }))
      .filter(({ a, b }) => Number.isFinite(a) && Number.isFinite(b) && b >= from && a <= to)
      .map(({ inc, a, b }) => h('div', {
        class: 'tl-incident',
        title: 'Locked incident #' + inc.id + ': ' + fmtHMS(a) + '–' + fmtHMS(b) + ' UTC',
        'data-incident': inc.id, 'data-from': iso(a), 'data-to': iso(b),
        style: { left: Math.max(0, pct(a)) + '%', width: Math.max(0, Math.min(100, pct(b)) - Math.max(0, pct(a))) + '%' },
      }));
  }

  function timelineRow(id) {
    const name = h('span', { class: 'name' });
    const stats = h('span', { class: 'muted' });
    const bar = h('div', {
      class: 'tl-bar', role: 'button', tabindex: '0', 'data-camera': id,
      onclick: (e) => {
        const { from, to } = windowRange();
        const r = bar.getBoundingClientRect();
        const frac = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
        playFromTimeline(id, from + frac * (to - from));
      },
      onkeydown: (e) => {
        if (e.key !== 'Enter' && e.key !== ' ') return;
        e.preventDefault();
        const spans = (state.recordings[id] || {}).spans || [];
        const last = spans[spans.length - 1];
        if (last) playFromTimeline(id, Math.max(last.start, last.end - 60000));
      },
    });
    return { row: h('div', { class: 'tl-row' }, h('div', { class: 'tl-label' }, name, stats), bar), name, stats, bar };
  }

  // A tap in a gap plays from the next stored moment (or the last one
  // before it when nothing follows).
  function snapToFootage(camera, t) {
    const spans = (state.recordings[camera] || {}).spans || [];
    for (const s of spans) {
      if (t >= s.start && t <= s.end) return t;
      if (s.start > t) return s.start;
    }
    const last = spans[spans.length - 1];
    return last ? Math.max(last.start, last.end - 1000) : null;
  }

  function playFromTimeline(camera, t) {
    const at = snapToFootage(camera, t);
    if (at === null) {
      openPlayer(camera);
      setPlayerMsg('No footage in this window for ' + cameraName(camera) + '.');
      return;
    }
    openPlayer(camera);
    play(at);
    revealPlayer();
  }

  // The header wraps to two rows on a phone: what scrolls under it must
  // know its real height (style.css reads --header-h).
  const topbar = document.querySelector('.topbar');
  const measureHeader = () => document.documentElement.style.setProperty('--header-h', topbar.offsetHeight + 'px');
  if (window.ResizeObserver) new ResizeObserver(measureHeader).observe(topbar);
  window.addEventListener('resize', measureHeader);
  measureHeader();

  // Brings the picture into view below the sticky header (whose height
  // changes as it wraps). When the timeline's window buttons and the whole
  // picture fit on the screen together, both stay in view, so a phone can
  // zoom and watch without scrolling back.
  function revealPlayer() {
    requestAnimationFrame(() => {
      const margin = 8;
      const top = document.querySelector('.topbar').getBoundingClientRect().bottom + margin;
      const bottom = window.innerHeight - margin;
      const tools = document.querySelector('#timeline .toolbar').getBoundingClientRect();
      const view = document.querySelector('#player .player-view').getBoundingClientRect();
      let delta;
      if (tools.top < view.top && view.bottom - tools.top <= bottom - top) {
        if (tools.top < top) delta = tools.top - top;
        else if (view.bottom > bottom) delta = view.bottom - bottom;
        else return;
      } else {
        delta = $('player-h').getBoundingClientRect().top - top;
      }
      window.scrollBy({ top: delta, behavior: 'smooth' });
    });
  }

  function setWindow(spanMs, endMs) {
    const now = serverNow();
    state.win.spanMs = spanMs;
    state.win.endMs = endMs === null || endMs >= now ? null : endMs;
    renderTimeline();
    loadTimeline();
  }

  for (const b of document.querySelectorAll('[data-window]')) {
    b.addEventListener('click', () => {
      const spanMs = Number(b.dataset.window);
      // Zooming centres on the player position when there is one.
      if (player.camera && player.t !== null) setWindow(spanMs, player.t + spanMs / 2);
      else setWindow(spanMs, state.win.endMs === null ? null : state.win.endMs);
    });
  }
  $('tl-earlier').addEventListener('click', () => setWindow(state.win.spanMs, windowRange().to - state.win.spanMs / 2));
  $('tl-later').addEventListener('click', () => setWindow(state.win.spanMs, windowRange().to + state.win.spanMs / 2));
  $('tl-now').addEventListener('click', () => setWindow(state.win.spanMs, null));
  window.addEventListener('resize', () => renderTimeline());

  // ----------------------------------------------------------------- player

  // Playing: the paced multipart stream of /api/playback, read with fetch so
  // that each part's X-Frame-Time (when the server sends it) gives the exact
  // time, and the end of the footage is noticed. Paused: single frames from
  // /api/frame, stepped with step=±1.
  const player = {
    camera: null,
    t: null, // ms: exact when paused, estimated while playing unless parts carry times
    exact: false,
    playing: false,
    ctrl: null,
    frameCtrl: null,
    startWall: 0,
    startT: 0,
    lastPartTime: null,
    tick: null,
    objectUrl: null,
    frameSeq: 0,
    scrubbing: false,
    scrubTimer: null,
  };

  function openPlayer(camera) {
    if (player.camera !== camera) {
      pause(true);
      player.camera = camera;
      player.t = null;
      // The picture's shape before its first frame arrives, so the page
      // does not move under the reader when it does.
      const cam = ((state.status && state.status.cameras) || []).find((c) => c && c.id === camera);
      if (cam && num(cam.width) && num(cam.height)) {
        $('player-img').parentElement.style.aspectRatio = cam.width + ' / ' + cam.height;
      }
    }
    $('player-empty').hidden = true;
    $('player-body').hidden = false;
    $('player-camera').textContent = cameraName(camera);
    $('player-img').alt = 'Recorded frame from ' + cameraName(camera);
    setPlayerMsg('');
  }

  function setPlayerMsg(text) {
    $('player-msg').textContent = text;
  }

  $('player-img').addEventListener('load', (e) => {
    const img = e.target;
    if (img.naturalWidth && img.naturalHeight) {
      img.parentElement.style.aspectRatio = img.naturalWidth + ' / ' + img.naturalHeight;
    }
  });

  function showPlayerImage(blob) {
    const url = URL.createObjectURL(blob);
    const old = player.objectUrl;
    player.objectUrl = url;
    $('player-img').src = url;
    if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
  }

  function renderPlayerTime(extra) {
    const out = $('player-time');
    if (player.t === null) {
      out.textContent = '–';
      return;
    }
    out.textContent = (player.exact ? '' : '≈ ') + fmtDateTime(player.t, player.exact) + (extra ? ' ' + extra : '');
    updateScrub();
    updateHead();
  }

  // Moves only the playhead; the timeline is rebuilt on the next poll.
  function updateHead() {
    updateTrackCursor();
    const { from, to } = windowRange();
    for (const bar of document.querySelectorAll('.tl-bar')) {
      let head = bar.querySelector('.tl-head');
      const show = bar.dataset.camera === player.camera && player.t !== null && player.t >= from && player.t <= to;
      if (!show) {
        if (head) head.remove();
        continue;
      }
      if (!head) {
        head = h('div', { class: 'tl-head' });
        bar.append(head);
      }
      head.style.left = ((player.t - from) / (to - from)) * 100 + '%';
    }
  }

  function updateScrub() {
    if (player.scrubbing || player.t === null) return;
    const { from, to } = windowRange();
    const v = Math.round(((player.t - from) / (to - from)) * SCRUB_STEPS);
    $('scrub').value = String(Math.min(SCRUB_STEPS, Math.max(0, v)));
    $('scrub').setAttribute('aria-valuetext', fmtDateTime(player.t));
  }

  function setPlayButton() {
    const b = $('play');
    b.dataset.playing = String(player.playing);
    b.setAttribute('aria-label', player.playing ? 'Pause' : 'Play');
  }

  function speed() {
    return Number($('speed').value) || 1;
  }

  function estimatedTime() {
    if (!player.playing) return player.t;
    if (player.lastPartTime !== null) return player.t;
    return Math.min(serverNow(), player.startT + (performance.now() - player.startWall) * speed());
  }

  async function play(from) {
    if (!player.camera) return;
    stopPlayback();
    if (from === undefined) from = player.t !== null ? player.t : serverNow() - 60000;
    player.playing = true;
    player.exact = false;
    player.t = from;
    player.startT = from;
    player.startWall = performance.now();
    player.lastPartTime = null;
    setPlayButton();
    setPlayerMsg('');
    renderPlayerTime('· playing ' + speed() + '×');
    const ctrl = new AbortController();
    player.ctrl = ctrl;
    player.tick = setInterval(() => {
      player.t = estimatedTime();
      renderPlayerTime('· playing ' + speed() + '×');
    }, PLAYER_TICK_MS);
    const url = '/api/playback?camera=' + enc(player.camera) + '&from=' + enc(iso(from)) + '&speed=' + enc(String(speed()));
    try {
      const r = await api(url, { signal: ctrl.signal });
      if (!r.ok) throw await errorOf(r);
      if (!r.body || !/multipart/i.test(r.headers.get('Content-Type') || '')) {
        // Not a stream we can read part by part: let the image element do it.
        $('player-img').src = url;
        return;
      }
      await readMultipart(r, ctrl.signal, (headers, body) => {
        if (ctrl !== player.ctrl) return;
        showPlayerImage(new Blob([body], { type: headers['content-type'] || 'image/jpeg' }));
        const ft = parseTime(headers['x-frame-time']);
        if (Number.isFinite(ft)) {
          player.lastPartTime = ft;
          player.t = ft;
          player.exact = true;
          renderPlayerTime('· playing ' + speed() + '×');
          player.exact = false;
        }
      });
      if (ctrl === player.ctrl) {
        // The server ended the stream: the footage ran out.
        const t = player.lastPartTime !== null ? player.lastPartTime : estimatedTime();
        stopPlayback();
        await showFrame(t, 0);
        setPlayerMsg('End of stored footage.');
      }
    } catch (e) {
      if (e.name === 'AbortError' || ctrl !== player.ctrl) return;
      const t = estimatedTime();
      stopPlayback();
      setPlayerMsg(e.status === 503 ? 'The recorder is busy serving other streams; showing single frames.'
        : 'Playback failed: ' + e.message);
      await showFrame(t, 0);
    }
  }

  function stopPlayback() {
    if (player.ctrl) player.ctrl.abort();
    player.ctrl = null;
    clearInterval(player.tick);
    player.tick = null;
    player.playing = false;
    setPlayButton();
  }

  function pause(quiet) {
    if (!player.playing) return;
    const t = estimatedTime();
    stopPlayback();
    if (!quiet && player.camera) showFrame(t, 0);
  }

  // Shows the stored frame nearest `at` (moved `step` frames).
  async function showFrame(at, step) {
    if (!player.camera || at === null) return;
    if (player.frameCtrl) player.frameCtrl.abort();
    const ctrl = new AbortController();
    player.frameCtrl = ctrl;
    const seq = ++player.frameSeq;
    let url = '/api/frame?camera=' + enc(player.camera) + '&at=' + enc(iso(at));
    if (step) url += '&step=' + step;
    try {
      const r = await api(url, { signal: ctrl.signal });
      if (seq !== player.frameSeq) return;
      if (r.status === 404) {
        const e = await errorOf(r);
        setPlayerMsg(step ? (step > 0 ? 'No later frame stored.' : 'No earlier frame stored.')
          : 'Nothing stored near ' + fmtDateTime(at) + ' (' + e.message + ').');
        if (!step) {
          player.t = at;
          player.exact = false;
          renderPlayerTime();
        }
        return;
      }
      if (!r.ok) throw await errorOf(r);
      const blob = await r.blob();
      if (seq !== player.frameSeq) return;
      showPlayerImage(blob);
      const ft = parseTime(r.headers.get('X-Frame-Time'));
      player.t = Number.isFinite(ft) ? ft : at;
      player.exact = Number.isFinite(ft);
      // Percent-encoded by the server: a file name may hold anything.
      const segName = decodeURIComponent(r.headers.get('X-Frame-Segment') || '');
      const index = r.headers.get('X-Frame-Index');
      setPlayerMsg(segName ? 'Segment ' + segName + (index !== null ? ', frame ' + index : '') : '');
      renderPlayerTime('· paused');
    } catch (e) {
      if (e.name === 'AbortError') return;
      setPlayerMsg('Could not load the frame: ' + e.message);
    }
  }

  function stepFrame(n) {
    if (!player.camera) return;
    const t = player.playing ? estimatedTime() : player.t;
    stopPlayback();
    showFrame(t, n);
  }

  $('play').addEventListener('click', () => {
    if (player.playing) pause();
    else play(player.t !== null ? player.t : undefined);
  });
  $('step-back').addEventListener('click', () => stepFrame(-1));
  $('step-fwd').addEventListener('click', () => stepFrame(1));
  $('speed').addEventListener('change', () => {
    if (player.playing) play(estimatedTime());
  });

  const scrub = $('scrub');
  const scrubTime = () => {
    const { from, to } = windowRange();
    return from + (Number(scrub.value) / SCRUB_STEPS) * (to - from);
  };
  scrub.addEventListener('pointerdown', () => { player.scrubbing = true; });
  scrub.addEventListener('pointercancel', () => { player.scrubbing = false; });
  scrub.addEventListener('pointerup', () => { player.scrubbing = false; });
  scrub.addEventListener('input', () => {
    player.scrubbing = true;
    if (player.playing) stopPlayback();
    const t = scrubTime();
    player.t = t;
    player.exact = false;
    $('player-time').textContent = '≈ ' + fmtDateTime(t);
    updateHead();
    clearTimeout(player.scrubTimer);
    player.scrubTimer = setTimeout(() => showFrame(t, 0), SCRUB_DEBOUNCE_MS);
  });
  scrub.addEventListener('change', () => {
    player.scrubbing = false;
    clearTimeout(player.scrubTimer);
    showFrame(scrubTime(), 0);
  });

  $('player').addEventListener('keydown', (e) => {
    if (e.target.tagName === 'SELECT' || e.target.tagName === 'INPUT') return;
    if (e.key === 'ArrowLeft') { e.preventDefault(); stepFrame(-1); }
    else if (e.key === 'ArrowRight') { e.preventDefault(); stepFrame(1); }
    else if (e.key === ' ' && e.target.tagName !== 'BUTTON') { e.preventDefault(); $('play').click(); }
  });

  // Minimal multipart/x-mixed-replace reader: calls onPart(headers, bytes)
  // for every part. Uses Content-Length when the part has one, else the
  // next boundary.
  async function readMultipart(response, signal, onPart) {
    const m = /boundary="?([^";]+)"?/i.exec(response.headers.get('Content-Type') || '');
    if (!m) throw new Error('no multipart boundary');
    const te = new TextEncoder();
    const boundary = te.encode('--' + m[1]);
    const crlf2 = te.encode('\r\n\r\n');
    const reader = response.body.getReader();
    signal.addEventListener('abort', () => reader.cancel().catch(() => {}));
    let buf = new Uint8Array(0);
    const find = (pat, from) => {
      outer: for (let i = buf.indexOf(pat[0], from); i !== -1 && i <= buf.length - pat.length; i = buf.indexOf(pat[0], i + 1)) {
        for (let j = 1; j < pat.length; j++) if (buf[i + j] !== pat[j]) continue outer;
        return i;
      }
      return -1;
    };
    const td = new TextDecoder();
    for (;;) {
      // Take every complete part out of the buffer.
      for (;;) {
        const b = find(boundary, 0);
        if (b === -1) break;
        const afterB = b + boundary.length;
        if (buf.length >= afterB + 2 && buf[afterB] === 45 && buf[afterB + 1] === 45) return; // "--": last part
        const he = find(crlf2, afterB);
        if (he === -1) break;
        const headers = {};
        for (const line of td.decode(buf.subarray(afterB, he)).split('\r\n')) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        const bodyStart = he + 4;
        const len = Number(headers['content-length']);
        let body;
        let next;
        if (Number.isFinite(len) && len >= 0 && headers['content-length'] !== '') {
          if (buf.length < bodyStart + len) break;
          body = buf.slice(bodyStart, bodyStart + len);
          next = bodyStart + len;
        } else {
          const nb = find(boundary, bodyStart);
          if (nb === -1) break;
          let end = nb;
          if (end >= 2 && buf[end - 2] === 13 && buf[end - 1] === 10) end -= 2;
          body = buf.slice(bodyStart, end);
          next = nb;
        }
        buf = buf.slice(next);
        onPart(headers, body);
      }
      const { done, value } = await reader.read();
      if (done) return;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
    }
  }

  // ------------------------------------------------------------------ track

  // The GPS track of the timeline's window: /api/track for the camera, from
  // and to that the timeline asks /api/recordings for, drawn as the route's
  // shape and as speed against time. No map tiles: the hotspot has no
  // Internet. The map is an equirectangular projection around the track's
  // mean latitude, north up, fitted to the canvas with margins, with a scale
  // bar of a round length over it; east-west lengths are off by 0.1 % at the
  // north and south ends of a 5 km drive, a few percent of a 300 km one.
  // Canvases are drawn at the device's pixel ratio so lines stay sharp.

  const TRACK_POINTS = 1000;
  const EARTH_RADIUS_M = 6371008.8;
  const METRES_PER_MILE = 1609.344;
  const METRES_PER_FOOT = 0.3048;
  const FEET_PER_MILE = 5280;
  // A parked car or a single fix is shown with this much around it, not
  // blown up to the whole canvas.
  const TRACK_EXTENT_MIN_M = 50;
  // Positions further apart than this (and than four times their usual
  // spacing) are a gap: drawn dashed on the map, left empty on the graph.
  // The GPX export starts a new track segment after the same 10 s.
  const TRACK_GAP_MIN_MS = 10000;
  // Room around the route for the north mark (top) and the scale bar (bottom).
  const MAP_MARGIN_PX = { left: 16, right: 16, top: 26, bottom: 36 };
  // Room around the graph for the speed labels (left), the unit (top) and
  // the times (bottom).
  const SPEED_MARGIN_PX = { left: 34, right: 10, top: 20, bottom: 20 };

  const track = {
    data: null, // the last answer, parsed (parseTrack)
    camera: null, // whose footage it came from
    from: null, // ms, the window it was asked for
    to: null,
    error: null, // why the last request failed
    shown: false, // the card is on the page
    seq: 0, // answers to older requests are dropped
  };

  // The camera the track is read from: the player's, else the first. Every
  // camera stores every fix, so any camera with footage in the window will do.
  function trackCamera() {
    if (player.camera && state.cameras.some((c) => c.id === player.camera)) return player.camera;
    return state.cameras.length ? state.cameras[0].id : null;
  }

  const speedIn = (mps, unit) => (unit === 'mph' ? (mps * 3600) / METRES_PER_MILE : mps * 3.6);
  const speedUnitText = (unit) => (unit === 'mph' ? 'mph' : 'km/h');

  function parseTrack(j) {
    const points = (Array.isArray(j.points) ? j.points : [])
      .map((p) => ({ t: num(p && p.t_ms), lat: num(p && p.lat), lon: num(p && p.lon), speed: num(p && p.speed_mps) }))
      .filter((p) => p.t !== null && p.lat !== null && p.lon !== null && Math.abs(p.lat) <= 90 && Math.abs(p.lon) <= 180)
      .sort((a, b) => a.t - b.t);
    let maxSpeed = num(j.max_speed_mps);
    if (maxSpeed === null) {
      for (const p of points) if (p.speed !== null && (maxSpeed === null || p.speed > maxSpeed)) maxSpeed = p.speed;
    }
    return {
      unit: j.speed_unit === 'mph' ? 'mph' : 'kmh',
      gpsConfigured: j.gps_configured === true,
      positions: num(j.positions) ?? points.length,
      points,
      distanceM: num(j.distance_m),
      maxSpeedMps: maxSpeed,
      gapMs: gapThreshold(points),
      problems: Array.isArray(j.problems) ? j.problems.map(String) : [],
    };
  }

  function gapThreshold(points) {
    const dts = [];
    for (let i = 1; i < points.length; i++) dts.push(points[i].t - points[i - 1].t);
    dts.sort((a, b) => a - b);
    return Math.max(TRACK_GAP_MIN_MS, 4 * (dts.length ? dts[dts.length >> 1] : 0));
  }

  // The largest 1, 2 or 5 × 10^n not above x, and the smallest not below.
  function roundDown125(x) {
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    const m = x / p;
    return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
  }
  function roundUp125(x) {
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    const m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  // 0.30000000000000004 as 0.3.
  const fmtRound = (x) => String(Number(x.toPrecision(6)));

  // A round length about a fifth of `metresAcross`, in the units that go
  // with the speed unit: [metres, text].
  function scaleBarLength(metresAcross, unit) {
    const target = metresAcross / 5;
    if (unit === 'mph') {
      const feet = target / METRES_PER_FOOT;
      if (feet > FEET_PER_MILE) {
        const mi = roundDown125(feet / FEET_PER_MILE);
        return [mi * METRES_PER_MILE, fmtRound(mi) + ' mi'];
      }
      const ft = roundDown125(feet);
      return [ft * METRES_PER_FOOT, fmtRound(ft) + ' ft'];
    }
    if (target >= 1000) {
      const km = roundDown125(target / 1000);
      return [km * 1000, fmtRound(km) + ' km'];
    }
    const m = roundDown125(target);
    return [m, fmtRound(m) + ' m'];
  }

  function fmtDistance(m, unit) {
    if (unit === 'mph') {
      const mi = m / METRES_PER_MILE;
      return mi < 0.1 ? Math.round(m / METRES_PER_FOOT) + ' ft' : mi.toFixed(mi < 10 ? 2 : 1) + ' mi';
    }
    return m < 1000 ? Math.round(m) + ' m' : (m / 1000).toFixed(m < 10000 ? 2 : 1) + ' km';
  }

  const GPX_LINK_TITLE = 'The GPS track of this range (GPX 1.1): for maps and route planners';
  const gpxHref = (camera, from, to) => '/api/export.gpx?camera=' + enc(camera) + '&from=' + enc(iso(from)) + '&to=' + enc(iso(to));

  // Sizes a canvas's pixels to its box at the device's pixel ratio; the
  // context draws in CSS pixels. Null while the canvas is not laid out.
  function canvasContext(canvas) {
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return null;
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (canvas.width !== pw) canvas.width = pw;
    if (canvas.height !== ph) canvas.height = ph;
    const g = canvas.getContext('2d');
    g.setTransform(pw / w, 0, 0, ph / h, 0, 0);
    g.clearRect(0, 0, w, h);
    return { g, w, h };
  }

  const cssVar = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

  function drawTrackMap(d) {
    const canvas = $('track-map');
    const c = canvasContext(canvas);
    if (!c) return;
    const { g, w, h } = c;
    const pts = d.points;
    // Across the antimeridian, west longitudes continue east of 180°.
    let lonMin = Infinity;
    let lonMax = -Infinity;
    for (const p of pts) { lonMin = Math.min(lonMin, p.lon); lonMax = Math.max(lonMax, p.lon); }
    const wrap = lonMax - lonMin > 180;
    const rad = Math.PI / 180;
    const lat0 = (pts.reduce((a, p) => a + p.lat, 0) / pts.length) * rad;
    const kx = Math.cos(lat0) * rad * EARTH_RADIUS_M;
    const ky = rad * EARTH_RADIUS_M;
    const xy = pts.map((p) => [(wrap && p.lon < 0 ? p.lon + 360 : p.lon) * kx, p.lat * ky]);
    let minX = Infinity; let maxX = -Infinity; let minY = Infinity; let maxY = -Infinity;
    for (const [x, y] of xy) {
      minX = Math.min(minX, x); maxX = Math.max(maxX, x);
      minY = Math.min(minY, y); maxY = Math.max(maxY, y);
    }
    const m = MAP_MARGIN_PX;
    const innerW = Math.max(10, w - m.left - m.right);
    const innerH = Math.max(10, h - m.top - m.bottom);
    const pxPerM = Math.min(innerW / Math.max(maxX - minX, TRACK_EXTENT_MIN_M),
      innerH / Math.max(maxY - minY, TRACK_EXTENT_MIN_M));
    const cx = (minX + maxX) / 2;
    const cy = (minY + maxY) / 2;
    const at = ([x, y]) => [m.left + innerW / 2 + (x - cx) * pxPerM, m.top + innerH / 2 - (y - cy) * pxPerM];
    const screen = xy.map(at);

    g.lineJoin = 'round';
    g.lineCap = 'round';
    // Gaps: where the positions stop and where they resume, dashed.
    g.setLineDash([4, 5]);
    g.lineWidth = 1.5;
    g.strokeStyle = cssVar('--muted', '#9aa4af');
    g.beginPath();
    for (let i = 1; i < pts.length; i++) {
      if (pts[i].t - pts[i - 1].t <= d.gapMs) continue;
      g.moveTo(...screen[i - 1]);
      g.lineTo(...screen[i]);
    }
    g.stroke();
    g.setLineDash([]);
    g.lineWidth = 3;
    g.strokeStyle = cssVar('--accent', '#4da3ff');
    g.beginPath();
    for (let i = 0; i < pts.length; i++) {
      if (i === 0 || pts[i].t - pts[i - 1].t > d.gapMs) g.moveTo(...screen[i]);
      else g.lineTo(...screen[i]);
    }
    g.stroke();
    const marker = (p, color) => {
      g.beginPath();
      g.arc(p[0], p[1], 6, 0, 2 * Math.PI);
      g.fillStyle = color;
      g.fill();
      g.lineWidth = 2;
      g.strokeStyle = cssVar('--card-2', '#1f242c');
      g.stroke();
    };
    marker(screen[screen.length - 1], cssVar('--bad', '#ff5a52'));
    marker(screen[0], cssVar('--ok', '#3ecf6e'));

    const [lengthM, text] = scaleBarLength(w / pxPerM, d.unit);
    $('track-scale-bar').style.width = (lengthM * pxPerM).toFixed(1) + 'px';
    $('track-scale-text').textContent = text;
    canvas.setAttribute('aria-label', 'Shape of the GPS track, north up, from the green start to the red end; the scale bar is ' + text + '.');
  }

  // The speed graph's time axis: the positions' own span, so that a short
  // drive in a 24-hour window is not a sliver.
  function speedAxis(d) {
    const t0 = d.points[0].t;
    return { t0, t1: Math.max(d.points[d.points.length - 1].t, t0 + 1000) };
  }

  function drawTrackSpeed(d) {
    const canvas = $('track-speed');
    const c = canvasContext(canvas);
    if (!c) return;
    const { g, w, h } = c;
    const m = SPEED_MARGIN_PX;
    const pts = d.points;
    const { t0, t1 } = speedAxis(d);
    const speeds = pts.map((p) => (p.speed === null ? null : speedIn(Math.max(0, p.speed), d.unit)));
    let top = 0;
    let topAt = -1;
    speeds.forEach((v, i) => { if (v !== null && v > top) { top = v; topAt = i; } });
    const want = Math.max(top * 1.05, 10);
    const step = roundUp125(want / 4);
    const yMax = step * Math.ceil(want / step);
    const pw = Math.max(10, w - m.left - m.right);
    const ph = Math.max(10, h - m.top - m.bottom);
    const X = (t) => m.left + ((t - t0) / (t1 - t0)) * pw;
    const Y = (v) => m.top + ph - (v / yMax) * ph;
    const muted = cssVar('--muted', '#9aa4af');
    const accent = cssVar('--accent', '#4da3ff');

    g.font = '11px system-ui, sans-serif';
    g.fillStyle = muted;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    g.lineWidth = 1;
    g.strokeStyle = 'rgba(255, 255, 255, .10)';
    g.beginPath();
    for (let v = 0; v <= yMax + step / 2; v += step) {
      const y = Math.round(Y(v)) + 0.5;
      g.moveTo(m.left, y);
      g.lineTo(m.left + pw, y);
      g.fillText(fmtRound(v), m.left - 5, y);
    }
    g.stroke();
    g.textAlign = 'left';
    g.textBaseline = 'top';
    g.fillText(speedUnitText(d.unit), m.left + 4, 3);
    g.textBaseline = 'bottom';
    const long = t1 - t0 > 3600e3;
    const label = (t) => (long ? fmtHM(t) : fmtHMS(t));
    g.fillText(label(t0), m.left, h - 2);
    g.textAlign = 'right';
    g.fillText(label(t1) + ' UTC', m.left + pw, h - 2);

    // Runs of speeds without a gap: each filled down to zero, then outlined.
    const runs = [];
    let run = [];
    pts.forEach((p, i) => {
      const broken = i > 0 && p.t - pts[i - 1].t > d.gapMs;
      if ((broken || speeds[i] === null) && run.length) { runs.push(run); run = []; }
      if (speeds[i] !== null) run.push([X(p.t), Y(speeds[i])]);
    });
    if (run.length) runs.push(run);
    g.fillStyle = accent;
    g.globalAlpha = 0.18;
    for (const r of runs) {
      g.beginPath();
      g.moveTo(r[0][0], Y(0));
      for (const q of r) g.lineTo(...q);
      g.lineTo(r[r.length - 1][0], Y(0));
      g.closePath();
      g.fill();
    }
    g.globalAlpha = 1;
    g.lineJoin = 'round';
    g.lineWidth = 2;
    g.strokeStyle = accent;
    for (const r of runs) {
      g.beginPath();
      g.moveTo(...r[0]);
      // A run of one position is a dot's width of line.
      if (r.length === 1) g.lineTo(r[0][0] + 1, r[0][1]);
      for (const q of r.slice(1)) g.lineTo(...q);
      g.stroke();
    }
    if (topAt >= 0) {
      g.beginPath();
      g.arc(X(pts[topAt].t), Y(top), 3.5, 0, 2 * Math.PI);
      g.fillStyle = cssVar('--warn', '#f0b429');
      g.fill();
    }
    canvas.setAttribute('aria-label', 'Speed in ' + speedUnitText(d.unit) + ' against time, ' + fmtHMS(t0) + ' to '
      + fmtHMS(t1) + ' UTC, on a scale of 0 to ' + fmtRound(yMax) + ' ' + speedUnitText(d.unit) + '.');
  }

  // The player's moment on the speed graph, when it is in the graph.
  function updateTrackCursor() {
    const cur = $('track-cursor');
    const d = track.data;
    const canvas = $('track-speed');
    const axis = d && d.points.length ? speedAxis(d) : null;
    const show = axis && !$('track-body').hidden && !$('track').hidden && player.camera === track.camera
      && player.t !== null && player.t >= axis.t0 && player.t <= axis.t1 && canvas.clientWidth > 0;
    cur.hidden = !show;
    if (!show) return;
    const m = SPEED_MARGIN_PX;
    const pw = Math.max(10, canvas.clientWidth - m.left - m.right);
    const ph = Math.max(10, canvas.clientHeight - m.top - m.bottom);
    cur.style.left = (canvas.offsetLeft + canvas.clientLeft + m.left + ((player.t - axis.t0) / (axis.t1 - axis.t0)) * pw) + 'px';
    cur.style.top = (canvas.offsetTop + canvas.clientTop + m.top) + 'px';
    cur.style.height = ph + 'px';
    cur.style.bottom = 'auto';
  }

  function drawTrack() {
    const d = track.data;
    if (!d || !d.points.length || $('track').hidden || $('track-body').hidden) return;
    drawTrackMap(d);
    drawTrackSpeed(d);
    updateTrackCursor();
  }

  function renderTrack() {
    const d = track.data;
    const card = $('track');
    if (track.error && track.shown) {
      setCardState('track', 'error', 'Could not load: ' + track.error + ' — retrying every ' + TIMELINE_REFRESH_MS / 1000 + ' s.');
      return;
    }
    // Hidden on a recorder without a receiver, unless the window holds
    // positions it stored with one before.
    const visible = !!d && (d.gpsConfigured || d.positions > 0 || d.points.length > 0);
    card.hidden = !visible;
    track.shown = visible;
    $('export-gpx').hidden = !visible;
    if (!visible) return;
    $('track-which').textContent = 'in the timeline window'
      + (state.cameras.length > 1 ? ' · ' + cameraName(track.camera) : '');
    if (!d.points.length) {
      setCardState('track', 'empty', 'No GPS positions in this range.');
      $('track-body').hidden = true;
      return;
    }
    setCardState('track', null);
    $('track-body').hidden = false;
    const unit = speedUnitText(d.unit);
    $('track-max').textContent = d.maxSpeedMps === null ? 'not recorded'
      : Math.round(speedIn(d.maxSpeedMps, d.unit)) + ' ' + unit;
    $('track-distance').textContent = d.distanceM === null ? '' : fmtDistance(d.distanceM, d.unit) + ' driven';
    const first = d.points[0].t;
    const last = d.points[d.points.length - 1].t;
    $('track-span').textContent = fmtHMS(first) + '–' + fmtHMS(last) + ' UTC · '
      + d.positions + (d.positions === 1 ? ' position' : ' positions');
    $('track-problems').textContent = d.problems.length ? 'Left out, unreadable: ' + d.problems.join('; ') : '';
    $('track-problems').hidden = !d.problems.length;
    $('track-gpx').href = gpxHref(track.camera, track.from, track.to);
    drawTrack();
  }

  async function loadTrack(from, to) {
    const seq = ++track.seq;
    const camera = trackCamera();
    if (!camera) {
      track.data = null;
      track.error = null;
      renderTrack();
      return;
    }
    try {
      const j = await apiJson('/api/track?camera=' + enc(camera) + '&from=' + enc(iso(from)) + '&to=' + enc(iso(to))
        + '&points=' + TRACK_POINTS);
      if (seq !== track.seq) return;
      Object.assign(track, { data: parseTrack(j), camera, from, to, error: null });
    } catch (e) {
      if (seq !== track.seq || e.status === 401) return;
      // A recorder without /api/track (or a camera it does not know): no card.
      if (e.status === 404) Object.assign(track, { data: null, error: null });
      else track.error = e.message || String(e);
    }
    renderTrack();
  }

  $('track-speed').addEventListener('click', (e) => {
    const d = track.data;
    if (!d || !d.points.length || !track.camera) return;
    const { t0, t1 } = speedAxis(d);
    const m = SPEED_MARGIN_PX;
    const pw = Math.max(10, e.currentTarget.clientWidth - m.left - m.right);
    const frac = Math.min(1, Math.max(0, (e.offsetX - m.left) / pw));
    playFromTimeline(track.camera, t0 + frac * (t1 - t0));
  });
  if (window.ResizeObserver) new ResizeObserver(() => drawTrack()).observe($('track-body'));
  // Moving to a screen of another pixel ratio (or zooming) redraws sharp.
  (function watchPixelRatio() {
    if (!window.matchMedia) return;
    matchMedia('(resolution: ' + (window.devicePixelRatio || 1) + 'dppx)')
      .addEventListener('change', () => { drawTrack(); watchPixelRatio(); }, { once: true });
  })();

  // ----------------------------------------------------------------- export

  const exp = { preset: null };

  function fillCameraSelects() {
    for (const id of ['export-camera', 'segments-camera']) {
      const sel = $(id);
      const keep = sel.value;
      sel.replaceChildren(...state.cameras.map((c) => h('option', { value: c.id }, cameraName(c.id))));
      if (state.cameras.some((c) => c.id === keep)) sel.value = keep;
    }
    if (!exp.preset && !$('export-from').value) applyPreset('last5');
    updateExportLink();
    renderSegments();
  }

  function setExportRange(from, to) {
    $('export-from').value = toInputValue(from);
    $('export-to').value = toInputValue(to);
  }

  async function applyPreset(name) {
    exp.preset = name;
    for (const b of document.querySelectorAll('[data-preset]')) {
      b.setAttribute('aria-pressed', String(b.dataset.preset === name));
    }
    if (name === 'last5') {
      const now = serverNow();
      setExportRange(now - EXPORT_LAST_MS, now);
    } else if (name === 'segment') {
      const seg = await segmentUnderPlayer();
      if (!seg) {
        exp.preset = null;
        $('export-summary').textContent = 'Play or pause on a moment first: "This segment" is the segment under the player position.';
        for (const b of document.querySelectorAll('[data-preset]')) b.setAttribute('aria-pressed', 'false');
        return;
      }
      $('export-camera').value = player.camera;
      setExportRange(Math.floor(seg.startMs / 1000) * 1000, Math.ceil(seg.endMs / 1000) * 1000);
    }
    updateExportLink();
  }

  async function segmentUnderPlayer() {
    if (!player.camera || player.t === null) return null;
    const t = player.t;
    const contains = (s) => Number.isFinite(s.startMs) && Number.isFinite(s.endMs) && s.startMs <= t + 500 && t - 500 <= s.endMs;
    const rec = state.recordings[player.camera];
    let seg = rec && rec.segments.find(contains);
    if (!seg) {
      try {
        const r = await fetchRecordings(player.camera, t - 1000, t + 1000);
        seg = r.segments.find(contains);
      } catch (_) { /* reported as "no segment" */ }
    }
    return seg || null;
  }

  function updateExportLink() {
    const link = $('export-link');
    const camera = $('export-camera').value;
    const from = parseInputTime($('export-from').value);
    const to = parseInputTime($('export-to').value);
    const example = toInputValue(Math.floor(serverNow() / 1000) * 1000);
    const fieldProblem = (name, t) => (t instanceof Error
      ? name + ': ' + (t.message === 'empty' ? 'missing' : t.message) + '; type UTC as YYYY-MM-DD HH:MM:SS, e.g. ' + example + '.'
      : null);
    const order = !(from instanceof Error) && !(to instanceof Error) && to <= from;
    let problem = fieldProblem('From', from) || fieldProblem('To', to) || (order ? 'To must be after From.' : null);
    $('export-from').setAttribute('aria-invalid', String(from instanceof Error));
    $('export-to').setAttribute('aria-invalid', String(to instanceof Error || order));
    $('export-error').textContent = problem || '';
    $('export-error').hidden = !problem;
    if (!camera) problem = problem || 'No camera.';
    if (problem) {
      link.removeAttribute('href');
      link.setAttribute('aria-disabled', 'true');
      $('export-gpx').removeAttribute('href');
      $('export-gpx').setAttribute('aria-disabled', 'true');
      $('share-start').setAttribute('aria-disabled', 'true');
      $('export-summary').textContent = camera ? '' : 'No camera.';
      scheduleEstimate(null);
      return;
    }
    link.href = '/api/export.mp4?camera=' + enc(camera) + '&from=' + enc(iso(from)) + '&to=' + enc(iso(to));
    link.setAttribute('aria-disabled', 'false');
    $('export-gpx').href = gpxHref(camera, from, to);
    $('export-gpx').setAttribute('aria-disabled', 'false');
    $('share-start').setAttribute('aria-disabled', 'false');
    $('export-summary').textContent = cameraName(camera) + ': ' + fmtDateTime(from) + ' to '
      + (fmtDate(to) === fmtDate(from) ? fmtHMS(to) + ' UTC' : fmtDateTime(to)) + ' (' + fmtDuration(to - from) + ')';
    scheduleEstimate({ camera, from, to });
  }

  for (const b of document.querySelectorAll('[data-preset]')) {
    b.addEventListener('click', () => applyPreset(b.dataset.preset));
  }
  for (const id of ['export-from', 'export-to']) {
    $(id).addEventListener('input', () => {
      exp.preset = null;
      for (const b of document.querySelectorAll('[data-preset]')) b.setAttribute('aria-pressed', 'false');
      updateExportLink();
    });
  }
  $('export-camera').addEventListener('change', updateExportLink);
  $('export-form').addEventListener('submit', (e) => e.preventDefault());
  // "Last 5 minutes" means the five minutes before the tap on Download.
  for (const id of ['export-link', 'export-gpx']) {
    $(id).addEventListener('click', () => {
      if (exp.preset === 'last5') applyPreset('last5');
    });
  }
  $('export-player-link').addEventListener('click', () => {
    if (exp.preset === 'last5') applyPreset('last5');
    const href = $('export-link').getAttribute('href');
    if (href) showPlayerLink(href, 'Export');
  });

  // ----------------------------------------------------------- share clips

  // A share clip is the range re-encoded as H.264 by a background job on
  // the recorder (one at a time): what phones and messengers take, where
  // the lossless export (Motion JPEG) is for VLC and computers. Both sizes
  // are estimated before anything is made, as a phone on the hotspot may
  // not want to fetch hundreds of megabytes.

  const share = {
    job: null, // the last job the recorder reported
    pollTimer: null,
    estimateTimer: null,
    estimateKey: null, // the range and options of the estimate shown
    estimateSeq: 0, // answers to older requests are dropped
    notice: '', // why a start was refused while a job runs; shown under it
    // From /api/status: which H.264 encoder this recorder uses, if any. A
    // recorder that does not say (older, or share clips off) has none.
    encoder: null,
    available: true, // until a status says otherwise
  };

  function setShareEncoder(value) {
    const encoder = typeof value === 'string' ? value : null;
    const available = encoder !== null && !/^none\b/i.test(encoder);
    if (encoder === share.encoder && available === share.available) return;
    share.encoder = encoder;
    share.available = available;
    for (const id of ['share-options', 'share-hint', 'share-start']) $(id).hidden = !available;
    $('share-hint').textContent = 'A share clip is H.264 that phones and messengers take; never upscaled.'
      + (encoder ? ' Encoder here: ' + encoder + '.' : '');
    renderSegments();
    updateExportLink();
  }

  function shareOptions() {
    return { size: Number($('share-size').value) || 720, quality: $('share-quality').value || 'standard' };
  }

  function setEstimate(kind, text) {
    const line = $('export-estimate');
    line.className = 'estimate' + (kind ? ' ' + kind : '');
    line.textContent = text;
  }

  // range: {camera, from, to} in ms, or null when the form has none.
  function scheduleEstimate(range) {
    if (!range) {
      clearTimeout(share.estimateTimer);
      share.estimateKey = null;
      share.estimateSeq++;
      setEstimate(null, '');
      return;
    }
    const o = shareOptions();
    const withShare = share.available;
    const query = 'camera=' + enc(range.camera) + '&from=' + enc(iso(range.from)) + '&to=' + enc(iso(range.to))
      + '&size=' + o.size + '&quality=' + enc(o.quality);
    if (query + withShare === share.estimateKey) return;
    clearTimeout(share.estimateTimer);
    share.estimateKey = query + withShare;
    const seq = ++share.estimateSeq;
    setEstimate('loading', 'Estimating sizes…');
    share.estimateTimer = setTimeout(async () => {
      checkExportGpx(range, seq);
      try {
        const j = await apiJson('/api/export/estimate?' + query);
        if (seq !== share.estimateSeq) return;
        const lines = num(j.share_height);
        const frames = num(j.frames);
        setEstimate(null, 'Lossless ≈ ' + fmtBytes(j.lossless_bytes)
          + (withShare ? ' · Share clip ≈ ' + fmtBytes(j.share_bytes) + (lines !== null ? ' (' + lines + 'p)' : '') : '')
          + (frames !== null ? ' · ' + frames + ' frames' : ''));
      } catch (e) {
        if (seq !== share.estimateSeq || e.status === 401) return;
        // Asked again on the next change, not repeated for the same range.
        share.estimateKey = null;
        setEstimate('error', 'No size estimate: ' + (e.message || e));
      }
    }, ESTIMATE_DEBOUNCE_MS);
  }

  // The export card's GPX link is for a range with GPS positions: without,
  // it is greyed and says why (a tap would only fetch an error).
  async function checkExportGpx(range, seq) {
    const link = $('export-gpx');
    if (link.hidden) return;
    try {
      const j = await apiJson('/api/track?camera=' + enc(range.camera) + '&from=' + enc(iso(range.from))
        + '&to=' + enc(iso(range.to)) + '&points=2');
      if (seq !== share.estimateSeq) return;
      const none = !(num(j.positions) > 0);
      if (none) link.removeAttribute('href');
      else link.href = gpxHref(range.camera, range.from, range.to);
      link.setAttribute('aria-disabled', String(none));
      link.title = none ? 'No GPS positions in this range' : GPX_LINK_TITLE;
    } catch (e) {
      // The link stays as it was; a download then names the problem.
    }
  }

  // Starts a share job for camera and [from, to] (ms) with the options of
  // the export card, and shows it there.
  async function startShare(camera, from, to, button) {
    if (button) button.setAttribute('aria-disabled', 'true');
    const o = shareOptions();
    const busy = share.job && share.job.state === 'running';
    if (!busy) showShareMessage('Starting share clip…', null);
    revealShareJob();
    try {
      const r = await api('/api/share', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ camera, from: iso(from), to: iso(to), size: o.size, quality: o.quality }),
      });
      if (!r.ok) throw await errorOf(r);
      share.notice = '';
      renderShareJob(await r.json());
    } catch (e) {
      if (e.status === 401) return;
      const why = e.message || String(e);
      // Refused while a job runs (one at a time, perhaps started from
      // another phone): that job stays in view with the reason.
      if (e.status === 503) {
        share.notice = 'Not started: ' + why;
        await pollShare();
      }
      if (!(share.job && share.job.state === 'running')) showShareMessage('Share clip not started', why);
    } finally {
      if (button) button.removeAttribute('aria-disabled');
      if (button === $('share-start')) updateExportLink();
    }
  }

  // The job panel with a title and an error, and nothing else (before a
  // job answered, or when it could not start).
  function showShareMessage(title, error) {
    const box = $('share-job');
    box.hidden = false;
    box.dataset.state = error ? 'failed' : 'starting';
    $('share-job-title').textContent = title;
    $('share-job-clip').textContent = '';
    $('share-job-text').textContent = '';
    $('share-progress').hidden = true;
    $('share-job-error').textContent = error || '';
    $('share-job-error').hidden = !error;
    for (const id of ['share-cancel', 'share-download', 'share-play']) $(id).hidden = true;
  }

  function revealShareJob() {
    const box = $('share-job');
    const r = box.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) box.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  function describeShareClip(j) {
    const from = parseTime(j.from);
    const to = parseTime(j.to);
    const parts = [];
    if (j.camera) parts.push(cameraName(j.camera));
    if (Number.isFinite(from) && Number.isFinite(to)) {
      parts.push(fmtDate(from) + ' ' + fmtHMS(from) + '–' + fmtHMS(to) + ' UTC (' + fmtDuration(to - from) + ')');
    }
    // The clip's own picture once known: never more lines than recorded.
    if (num(j.width) !== null && num(j.height) !== null) parts.push(j.width + '×' + j.height);
    else if (num(j.size) !== null) parts.push(j.size + ' lines');
    if (j.quality) parts.push(String(j.quality));
    return parts.join(' · ');
  }

  function renderShareJob(j) {
    share.job = j || null;
    clearTimeout(share.pollTimer);
    const st = j && j.state;
    const box = $('share-job');
    if (!st || st === 'idle') {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.dataset.state = st;
    const running = st === 'running';
    const done = st === 'done';
    const titles = { running: 'Making share clip…', done: 'Share clip ready', failed: 'Share clip failed', cancelled: 'Share clip cancelled' };
    $('share-job-title').textContent = titles[st] || 'Share clip: ' + st;
    $('share-job-clip').textContent = describeShareClip(j);

    const total = num(j.frames_total);
    const checking = running && j.phase === 'checking';
    // While checking, the bar shows the frames read and checked; then the frames encoded.
    const doneFrames = num(checking ? j.frames_checked : j.frames_done) || 0;
    const progress = $('share-progress');
    progress.hidden = !running;
    if (running && total) {
      progress.max = total;
      progress.value = Math.min(doneFrames, total);
    } else if (running) {
      progress.removeAttribute('value'); // not known yet: indeterminate
    }
    const encoder = j.encoder ? 'Encoder: ' + j.encoder : null;
    let text = [];
    if (checking) {
      text.push(total ? 'Checking footage: ' + doneFrames + ' of ' + total + ' frames read' : 'Checking footage');
    } else if (running) {
      const eta = num(j.eta_s);
      text.push(total !== null ? doneFrames + ' of ' + total + ' frames' : 'Starting');
      if (eta !== null) text.push('about ' + fmtDuration(Math.max(1, eta) * 1000) + ' left');
      text = [text.join(' · ')];
      if (encoder) text.push(encoder);
    } else if (done) {
      const t = [];
      if (num(j.bytes) !== null) t.push(fmtBytes(j.bytes));
      if (total !== null) t.push(total + ' frames');
      if (num(j.skipped_frames)) t.push(j.skipped_frames + ' damaged frames replaced by the one before');
      if (num(j.elapsed_s) !== null) t.push('made in ' + fmtDuration(Math.max(1, j.elapsed_s) * 1000));
      text.push(t.join(' · '));
      if (encoder) text.push(encoder);
    } else if (st === 'cancelled' && !j.error) {
      text.push(total !== null ? 'Stopped after ' + doneFrames + ' of ' + total + ' frames.' : 'Stopped.');
    }
    $('share-job-text').replaceChildren(...text.filter(Boolean).map((t, i) => (i ? [h('br'), t] : t)).flat());
    if (!running) share.notice = '';
    const err = (st === 'failed' || st === 'cancelled') && j.error ? String(j.error) : share.notice;
    $('share-job-error').textContent = err;
    $('share-job-error').hidden = !err;

    $('share-cancel').hidden = !running;
    $('share-cancel').removeAttribute('aria-disabled');
    const url = done && typeof j.url === 'string' ? j.url : null;
    const dl = $('share-download');
    dl.hidden = !url;
    $('share-play').hidden = !url;
    const video = $('share-video');
    if (url) {
      dl.href = url;
      dl.setAttribute('download', url.split('/').pop() || 'share.mp4');
    } else {
      dl.removeAttribute('href');
    }
    // A different clip, or none: the old one's player goes.
    if (video.dataset.url && video.dataset.url !== url) {
      video.pause();
      video.removeAttribute('src');
      delete video.dataset.url;
      video.load();
      video.hidden = true;
    }
    if (running) share.pollTimer = setTimeout(pollShare, SHARE_POLL_MS);
  }

  async function pollShare() {
    try {
      renderShareJob(await apiJson('/api/share'));
    } catch (e) {
      if (e.status === 401) return;
      if (e.status === 404) { // a recorder without share clips
        $('share-job').hidden = true;
        return;
      }
      $('share-job-text').textContent = 'Could not get progress: ' + (e.message || e) + ' — retrying.';
      share.pollTimer = setTimeout(pollShare, SHARE_POLL_MS * 3);
    }
  }

  // A job started before this page was opened (or reloaded) still shows.
  async function loadShareJob() {
    try {
      const j = await apiJson('/api/share');
      if (j && (j.state === 'running' || j.state === 'done')) renderShareJob(j);
    } catch (_) { /* an older recorder: no share clips */ }
  }

  $('share-start').addEventListener('click', () => {
    if ($('share-start').getAttribute('aria-disabled') === 'true') return;
    if (exp.preset === 'last5') applyPreset('last5');
    const camera = $('export-camera').value;
    const from = fromInputValue($('export-from').value);
    const to = fromInputValue($('export-to').value);
    if (!camera || !Number.isFinite(from) || !Number.isFinite(to) || to <= from) return;
    startShare(camera, from, to, $('share-start'));
  });
  for (const id of ['share-size', 'share-quality']) $(id).addEventListener('change', updateExportLink);

  $('share-cancel').addEventListener('click', async () => {
    const btn = $('share-cancel');
    btn.setAttribute('aria-disabled', 'true');
    try {
      const r = await api('/api/share/cancel', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      // 404: it ended on its own meanwhile; the job says how.
      if (!r.ok && r.status !== 404) throw await errorOf(r);
      renderShareJob(r.ok ? await r.json() : await apiJson('/api/share'));
    } catch (e) {
      if (e.status === 401) return;
      btn.removeAttribute('aria-disabled');
      $('share-job-error').textContent = 'Could not cancel: ' + (e.message || e);
      $('share-job-error').hidden = false;
    }
  });

  $('share-play').addEventListener('click', () => {
    const url = share.job && share.job.url;
    if (!url) return;
    const video = $('share-video');
    if (video.dataset.url !== url) {
      video.dataset.url = url;
      video.src = url;
    }
    video.hidden = false;
    video.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    video.play().catch(() => { /* the controls are there to start it */ });
  });

  // --------------------------------------------------------------- segments

  function renderSegments() {
    const camera = $('segments-camera').value;
    const list = $('segment-list');
    const rec = state.recordings[camera];
    if (!camera || !rec) {
      list.replaceChildren(h('li', { class: 'muted' }, camera ? 'Loading…' : 'No camera.'));
      return;
    }
    if (rec.error) {
      list.replaceChildren(h('li', { class: 'muted' }, 'Could not load: ' + rec.error + ' — retrying.'));
      return;
    }
    const segs = rec.segments.slice().sort((a, b) => (b.startMs || 0) - (a.startMs || 0));
    if (!segs.length) {
      list.replaceChildren(h('li', { class: 'muted' }, 'No segments in the timeline window.'));
      return;
    }
    const shown = segs.slice(0, SEGMENT_LIST_MAX);
    list.replaceChildren(...shown.map((s) => {
      const okTimes = Number.isFinite(s.startMs) && Number.isFinite(s.endMs);
      const when = okTimes ? fmtHMS(s.startMs) + '–' + fmtHMS(s.endMs) + ' UTC' : s.name;
      const meta = [
        okTimes ? fmtDate(s.startMs) : null,
        okTimes ? fmtDuration(s.endMs - s.startMs) : null,
        num(s.frames) !== null ? s.frames + ' frames' : null,
        num(s.bytes) !== null ? fmtBytes(s.bytes) : null,
      ].filter(Boolean).join(' · ');
      return h('li', null,
        h('div', { class: 'seg-main' },
          h('div', { class: 'seg-time' }, when,
            s.closed === false ? h('span', { class: 'badge rec' }, 'recording') : null,
            s.protected ? h('span', { class: 'badge lock' }, 'protected') : null),
          h('div', { class: 'seg-meta' }, meta),
          h('div', { class: 'seg-meta mono seg-name', title: s.name }, s.name)),
        okTimes ? h('button', { type: 'button', class: 'button small', 'aria-label': 'Play segment from ' + fmtHMS(s.startMs) + ' UTC',
          title: 'Play', onclick: () => { openPlayer(camera); play(s.startMs); revealPlayer(); } },
        icon('M7 5v14l12-7z')) : null,
        h('a', { class: 'button small', href: '/api/video/download?camera=' + enc(camera) + '&name=' + enc(s.name),
          download: '', title: 'Download (.mjpeg)', 'aria-label': 'Download segment ' + s.name }, icon('M11 4h2v9l3.5-3.5 1.4 1.4L12 16.8l-5.9-5.9 1.4-1.4L11 13zM5 18h14v2H5z')),
        okTimes && share.available ? h('button', { type: 'button', class: 'button small share', 'data-share': s.name,
          title: 'Share clip (H.264) of this segment', 'aria-label': 'Share clip of segment from ' + fmtHMS(s.startMs) + ' UTC',
          onclick: (e) => startShare(camera, s.startMs, s.endMs, e.currentTarget) }, 'Share') : null);
    }), segs.length > shown.length
      ? h('li', { class: 'muted' }, (segs.length - shown.length) + ' older segments not listed: narrow the timeline window.')
      : []);
  }

  $('segments-camera').addEventListener('change', renderSegments);


  // ------------------------------------------------------ clock and incidents

  // The recorder's clock against this phone's, in ms (positive: the recorder
  // is ahead). Measured on /api/clock, which answers in milliseconds, with
  // the round trip halved.
  let clockSkewMs = null;
  let clockEstimated = false;

  async function pollClock() {
    try {
      const t0 = Date.now();
      const j = await apiJson('/api/clock');
      const t1 = Date.now();
      if (num(j.unix_ms) !== null) clockSkewMs = j.unix_ms - (t0 + t1) / 2;
      clockEstimated = j.estimated === true;
    } catch (_) {
      clockSkewMs = null; // an older recorder, or unreachable: no offer
    }
    renderClockOffer();
    setTimeout(pollClock, CLOCK_POLL_MS);
  }

  function describeSkew(ms) {
    const a = Math.abs(ms);
    const text = a < 120000 ? (a / 1000).toFixed(0) + ' s' : fmtDuration(a);
    return text + (ms < 0 ? ' behind' : ' ahead of');
  }

  function renderClockOffer() {
    const box = $('clock-offer');
    const show = clockSkewMs !== null && Math.abs(clockSkewMs) > CLOCK_OFFER_SKEW_MS;
    box.hidden = !show;
    if (!show) return;
    $('clock-offer-text').textContent = 'The camera\'s clock is ' + describeSkew(clockSkewMs) + ' this phone'
      + (clockEstimated ? ' (it was estimated after a power cut).' : '.')
      + ' Recordings made since it was switched on will be relabelled.';
  }

  // After the clock was set: "last 5 minutes" is five minutes of the new
  // clock, and a range picked during this run (from footage that was just
  // relabelled) moves with it; a range in older footage stays.
  function followClockStep(stepMs, runStartMs) {
    if (exp.preset === 'last5') {
      applyPreset('last5');
      return;
    }
    const from = fromInputValue($('export-from').value);
    const to = fromInputValue($('export-to').value);
    if (stepMs && Number.isFinite(from) && Number.isFinite(to) && to >= runStartMs) {
      setExportRange(from + stepMs, to + stepMs);
    }
    updateExportLink();
  }

  $('clock-set').addEventListener('click', async () => {
    const btn = $('clock-set');
    btn.setAttribute('aria-disabled', 'true');
    const runStartMs = serverNow() - (num(state.status && state.status.uptime_s) || 0) * 1000;
    try {
      const r = await api('/api/clock', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ unix_ms: Date.now() }),
      });
      if (!r.ok) throw await errorOf(r);
      const j = await r.json();
      clockSkewMs = 0;
      clockEstimated = false;
      renderClockOffer();
      showLockNote('info', 'Camera clock set to ' + String(j.time || '') + '; '
        + (num(j.relabelled_segments) || 0) + ' segments relabelled.');
      await pollStatus();
      followClockStep(num(j.step_ms) || 0, runStartMs);
      loadTimeline();
      loadIncidents();
    } catch (e) {
      if (e.status !== 401) showLockNote('bad', 'Could not set the clock: ' + (e.message || e));
    } finally {
      btn.removeAttribute('aria-disabled');
    }
  });

  function showLockNote(level, text) {
    $('lock-note').replaceChildren(h('div', { class: 'alert ' + level }, text));
  }

  $('lock').addEventListener('click', async () => {
    const btn = $('lock');
    btn.setAttribute('aria-disabled', 'true');
    try {
      const r = await api('/api/lock', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ source: 'dashboard' }),
      });
      if (!r.ok) throw await errorOf(r);
      const j = await r.json();
      showLockNote('info', 'Incident ' + j.id + ' locked: ' + fmtHMS(parseTime(j.from)) + ' – '
        + fmtHMS(parseTime(j.to)) + ' UTC is kept from being overwritten.');
      loadIncidents();
    } catch (e) {
      if (e.status !== 401) showLockNote('bad', 'Could not lock: ' + (e.message || e));
    } finally {
      btn.removeAttribute('aria-disabled');
    }
  });

  let incidentTimer = null;
  async function loadIncidents() {
    clearTimeout(incidentTimer);
    try {
      const j = await apiJson('/api/incidents');
      setCardState('incidents', null);
      renderIncidents(j);
    } catch (e) {
      if (e.status === 401) return;
      setCardState('incidents', 'error', 'Could not load: ' + (e.message || e) + ' — retrying every '
        + INCIDENT_POLL_MS / 1000 + ' s.');
    }
    incidentTimer = setTimeout(loadIncidents, INCIDENT_POLL_MS);
  }

  function renderIncidents(j) {
    const list = Array.isArray(j.incidents) ? j.incidents : [];
    state.incidents = list;
    renderTimeline();
    const used = num(j.locked_bytes);
    const cap = num(j.locked_cap_bytes);
    let summary = list.length ? list.length + (list.length === 1 ? ' incident' : ' incidents') : 'No incidents yet.';
    if (used !== null && cap) summary += ' · ' + fmtBytes(used) + ' locked of ' + fmtBytes(cap);
    if (j.message) summary += ' · ' + j.message;
    $('incidents-summary').textContent = summary;
    $('incident-list').replaceChildren(...list.map((inc) => {
      const from = parseTime(inc.from);
      const to = parseTime(inc.to);
      const phase = inc.released ? 'released' : inc.complete ? 'locked' : 'recording post-roll';
      const triggers = Array.isArray(inc.triggers) ? inc.triggers.join(', ') : '';
      const exports = Array.isArray(inc.exports) ? inc.exports : [];
      return h('li', { 'data-incident': inc.id },
        h('div', { class: 'inc-main' },
          h('div', { class: 'inc-time' }, fmtDate(from) + ' ' + fmtHMS(from) + ' – ' + fmtHMS(to) + ' UTC'
            + (inc.estimated ? ' (estimated time)' : '')),
          h('div', { class: 'inc-meta' }, '#' + inc.id + ' · ' + triggers + ' · ' + phase
            + (num(inc.bytes) ? ' · ' + fmtBytes(inc.bytes) + ' locked' : '')
            + (inc.released ? ' · ' + inc.released : ''))),
        exports.length ? h('div', { class: 'inc-exports' }, ...exports.map((x) => h('a', {
          class: 'button small', href: x.url, download: '',
          'data-camera': x.camera,
        }, exports.length > 1 ? 'Export ' + cameraName(x.camera) : 'Export MP4'))) : null,
        // Shared once its post-roll is recorded: before, its end is still to come.
        exports.length && share.available && Number.isFinite(from) && Number.isFinite(to)
          ? h('div', { class: 'inc-shares' }, ...exports.map((x) => h('button', {
            type: 'button', class: 'button small', 'data-camera': x.camera,
            'aria-disabled': inc.complete || inc.released ? null : 'true',
            title: inc.complete || inc.released ? 'Share clip (H.264)' : 'Once the post-roll is recorded',
            onclick: (e) => startShare(x.camera, from, to, e.currentTarget),
          }, exports.length > 1 ? 'Share ' + cameraName(x.camera) : 'Share clip'))) : null);
    }));
  }

  // ------------------------------------------------------------------- misc

  $('logout').addEventListener('click', async () => {
    try {
      await api('/api/logout', { method: 'POST' });
    } catch (_) { /* going to the login page anyway */ }
    toLogin();
  });

  // A new token needs the current one again: a phone left logged in must
  // not be able to lock its owner out.
  $('rotate-token').addEventListener('click', async () => {
    const current = window.prompt('Current token (a new one replaces it and logs every device out):');
    if (!current) return;
    try {
      const r = await fetch('/api/auth/rotate', await withCsrf({
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token: current }),
      }, false));
      if (!r.ok) throw await errorOf(r);
      const j = await r.json();
      window.prompt('New token: copy it now, it is shown once. Log in again with it.', j.token);
      toLogin();
    } catch (e) {
      window.alert('The token was not changed: ' + e.message);
    }
  });

  // Ticks just after each second of the recorder's clock turns. A
  // correction from a status poll can move the clock back by a few ms
  // across a tick: the same second is then not written again.
  function tickClock() {
    const now = serverNow();
    const text = fmtHMS(now) + ' UTC';
    if ($('clock').textContent !== text) {
      $('clock').textContent = text;
      $('clock').setAttribute('datetime', iso(now));
    }
    setTimeout(tickClock, 1000 - (((now % 1000) + 1000) % 1000) + 5);
  }

  // Names and the storage cap, before the first status poll so the page is
  // built once with names; never waits more than a few seconds for them.
  async function loadNames() {
    const names = apiJson('/api/cameras').then((j) => {
      const list = Array.isArray(j) ? j : Array.isArray(j.cameras) ? j.cameras : [];
      for (const c of list) if (c && c.id && c.name) state.names[c.id] = String(c.name);
    }).catch(() => { /* ids stand in for names */ });
    const cap = apiJson('/api/config').then((cfg) => {
      if (num(cfg.storage_cap_gb) !== null) state.configCapBytes = cfg.storage_cap_gb * 1e9;
    }).catch(() => { /* the gauge shows used bytes only */ });
    await Promise.race([Promise.all([names, cap]), new Promise((r) => setTimeout(r, 3000))]);
  }

  async function statusLoop() {
    if (!document.hidden) await pollStatus();
    setTimeout(statusLoop, STATUS_POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.win.endMs === null) loadTimeline();
  });

  tickClock();
  loadNames().then(() => {
    statusLoop();
    pollClock();
    loadIncidents();
    loadShareJob();
  });
})();
