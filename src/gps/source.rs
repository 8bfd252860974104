//! The `gps-reader` thread: opens the receiver, reads its lines into the
//! shared [`GpsState`], hands each completed epoch to a callback, and
//! survives the receiver being unplugged.
//!
//! Supervision mirrors the recorder's cameras: a failure marks the state
//! disconnected with the error, waits with exponential backoff
//! (`BACKOFF_MIN_MS` doubling to `BACKOFF_MAX_MS`) and reopens; every
//! wait and every read is bounded so the stop flag is honoured within about
//! [`POLL_MS`].

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::fix::GpsFix;
use super::serial::{detect_baud, SerialPort, TtyPort, DETECT_BAUDS, DETECT_PER_BAUD_MS};
use super::state::{GpsState, NmeaDecoder};
use super::GpsConfig;
use crate::clock::Clock;

const BACKOFF_MIN_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;

/// Longest a read waits before the thread looks at its stop flag again.
pub const POLL_MS: u64 = 100;

/// What to do with each completed epoch (a closure sending on a channel,
/// for example). Called on the reader thread: it must not block for long.
pub type FixSink = Box<dyn FnMut(GpsFix) + Send>;

/// A running receiver reader. Dropping it stops the thread.
pub struct GpsSource {
    state: Arc<Mutex<GpsState>>,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GpsSource {
    /// Starts the `gps-reader` thread. Fails on an invalid `config` or if the
    /// thread cannot be created; a missing receiver is not an error: it
    /// shows in the state and is retried.
    pub fn start(
        config: GpsConfig,
        clock: Arc<dyn Clock>,
        on_fix: FixSink,
    ) -> io::Result<GpsSource> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let state = Arc::new(Mutex::new(GpsState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            config,
            state: state.clone(),
            clock: clock.clone(),
            stop: stop.clone(),
            on_fix,
            decoder: NmeaDecoder::new(),
        };
        let thread = std::thread::Builder::new()
            .name("gps-reader".into())
            .spawn(move || reader.run())?;
        Ok(GpsSource {
            state,
            clock,
            stop,
            thread: Some(thread),
        })
    }

    /// The live state, for a status page that holds on to it.
    pub fn state(&self) -> Arc<Mutex<GpsState>> {
        self.state.clone()
    }

    /// A copy of the state with the fix age brought up to now.
    pub fn snapshot(&self) -> GpsState {
        let mut s = lock(&self.state).clone();
        s.refresh_age(self.clock.mono_ns());
        s
    }

    /// Stops the thread and waits for it (at most about [`POLL_MS`]).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("gps: reader thread panicked");
            }
        }
    }
}

impl Drop for GpsSource {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn lock(state: &Mutex<GpsState>) -> MutexGuard<'_, GpsState> {
    // The state is plain data: a panic mid-update leaves nothing to repair.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

struct Reader {
    config: GpsConfig,
    state: Arc<Mutex<GpsState>>,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
    on_fix: FixSink,
    decoder: NmeaDecoder,
}

/// Why a session with the device ended.
enum Ended {
    Stopped,
    Failed(io::Error),
}

impl Reader {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(mut self) {
        let mut backoff_ms = BACKOFF_MIN_MS;
        while !self.stopping() {
            let mut heard = false;
            let err = match self.session(&mut heard) {
                Ended::Stopped => break,
                Ended::Failed(e) => e,
            };
            if heard {
                backoff_ms = BACKOFF_MIN_MS;
            }
            {
                let mut s = lock(&self.state);
                if s.connected {
                    s.counters.disconnects += 1;
                }
                s.connected = false;
                s.clear_live();
                log::warn!("gps: {} {err}; retrying in {backoff_ms} ms", s.device);
                s.last_error = Some(err.to_string());
            }
            if !self.pause(backoff_ms) {
                break;
            }
            backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
        }
        lock(&self.state).connected = false;
    }

    /// Sleeps up to `ms`, waking early when asked to stop. False if stopping.
    fn pause(&self, ms: u64) -> bool {
        let mut left = ms;
        while left > 0 && !self.stopping() {
            let step = left.min(50);
            std::thread::sleep(Duration::from_millis(step));
            left -= step;
        }
        !self.stopping()
    }

    /// One open-read-fail cycle. `heard` turns true once a sentence arrives,
    /// which is what resets the backoff (a tty that opens but says nothing
    /// is not a working receiver).
    fn session(&mut self, heard: &mut bool) -> Ended {
        let path = match super::resolve_device(&self.config) {
            Ok(p) => p,
            Err(e) => return Ended::Failed(e),
        };
        lock(&self.state).device = path.display().to_string();
        let first_baud = self.config.baud.unwrap_or(DETECT_BAUDS[0]);
        let mut port = match TtyPort::open(&path, first_baud) {
            Ok(p) => p,
            Err(e) => return Ended::Failed(e),
        };
        let baud = match self.config.baud {
            Some(b) => b,
            None => {
                let stop = self.stop.clone();
                let stopping = move || stop.load(Ordering::Relaxed);
                let per_baud = Duration::from_millis(DETECT_PER_BAUD_MS);
                match detect_baud(&mut port, &DETECT_BAUDS, per_baud, &stopping) {
                    Ok(Some(b)) => b,
                    Ok(None) if self.stopping() => return Ended::Stopped,
                    Ok(None) => {
                        return Ended::Failed(io::Error::other(format!(
                            "no NMEA sentences at any of {DETECT_BAUDS:?} baud"
                        )))
                    }
                    Err(e) => return Ended::Failed(e),
                }
            }
        };
        {
            let mut s = lock(&self.state);
            s.connected = true;
            s.baud = Some(baud);
            s.last_error = None;
            log::info!("gps: {} open at {baud} baud", s.device);
        }
        self.decoder.reset();
        self.read_lines(&mut port, heard)
    }

    fn read_lines(&mut self, port: &mut dyn SerialPort, heard: &mut bool) -> Ended {
        let mut splitter = super::nmea::LineSplitter::new();
        let mut buf = [0u8; 1024];
        while !self.stopping() {
            let n = match port.read_timeout(&mut buf, Duration::from_millis(POLL_MS)) {
                Ok(n) => n,
                Err(e) => return Ended::Failed(e),
            };
            let mono_ns = self.clock.mono_ns();
            let mut fixes = Vec::new();
            {
                let mut s = lock(&self.state);
                let before = s.counters.sentences_ok;
                let decoder = &mut self.decoder;
                splitter.push(&buf[..n], |line| {
                    fixes.extend(decoder.feed(line, mono_ns, &mut s));
                });
                *heard |= s.counters.sentences_ok > before;
                s.refresh_age(mono_ns);
            }
            // Outside the lock: the sink may take its time.
            for fix in fixes {
                (self.on_fix)(fix);
            }
        }
        Ended::Stopped
    }
}

/// The device to open for `config.device`: the path itself, or for "auto"
/// the first of /dev/serial/by-id/* (stable names of USB receivers), then
/// /dev/ttyACM0 (u-blox USB) and /dev/ttyUSB0 (USB-serial bridges).
pub(super) fn resolve_auto(by_id: &std::path::Path, fallbacks: &[&str]) -> io::Result<PathBuf> {
    if let Ok(dir) = std::fs::read_dir(by_id) {
        let mut names: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        if let Some(first) = names.into_iter().next() {
            return Ok(first);
        }
    }
    for f in fallbacks {
        let p = PathBuf::from(f);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no receiver: {} is empty and none of {fallbacks:?} exists",
            by_id.display()
        ),
    ))
}
