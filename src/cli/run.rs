//! `dashvault run`: load the config (falling back to the last good one),
//! recover, record until SIGINT/SIGTERM, close every segment cleanly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;

use crate::clock::{
    AdjustableClock, Clock, DeniedWallClockSetter, SystemClock, SystemWallClockSetter,
};
use crate::config::CameraConfig;
use crate::config::{self, ConfigOrigin};
use crate::http::auth::{fingerprint, load_or_create_token, Auth, TokenHome, TokenSource};
use crate::http::context::ApiContext;
use crate::http::server::Limits;
use crate::http::HttpService;
use crate::recorder::{Discovery, Recorder, RecorderParts};
use crate::share::jobs::ShareJobs;
use crate::store::Store;
use crate::timekeeper::Timekeeper;
use std::net::{IpAddr, SocketAddr};

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
/// record every enabled camera until stopped. Exit status: 0 stopped
/// cleanly, 2 could not start (a broken config is not that: it records
/// with the last good one)
pub struct RunArgs {
    /// record here instead of the config's data_dir
    #[argh(option)]
    pub data_dir: Option<PathBuf>,
    /// stop by itself after this many seconds (tests, demos)
    #[argh(option)]
    pub duration_s: Option<f64>,
    /// write through the page cache even where O_DIRECT works
    #[argh(switch)]
    pub no_direct: bool,
    /// never set the system clock: keep restored or phone-set time as an
    /// offset inside the recorder (machines with NTP, tests)
    #[argh(switch)]
    pub clock_offset_only: bool,
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            log::warn!("cannot handle {sig}: {e}");
        }
    }
}

pub fn run(config_path: &Path, args: RunArgs) -> anyhow::Result<i32> {
    let adjustable = Arc::new(AdjustableClock::new(Arc::new(SystemClock)));
    let clock: Arc<dyn Clock> = adjustable.clone();
    let loaded = config::load_for_run(config_path, crate::camera::discover_cameras);
    let config = loaded.config;
    match (&loaded.origin, &loaded.problem) {
        (ConfigOrigin::Created, _) => {
            println!("created config {}", config_path.display())
        }
        (ConfigOrigin::LastGood, Some(e)) => {
            log::error!("CONFIG ERROR, recording with the last good config instead: {e}")
        }
        (ConfigOrigin::Defaults, Some(e)) => {
            log::error!("CONFIG ERROR, recording with built-in defaults instead: {e}")
        }
        _ => {}
    }
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| config.resolved_data_dir(config_path));
    println!("config: {}", config_path.display());
    println!("data:   {}", data_dir.display());
    let store = Store::on_disk(&data_dir);
    let sources = config
        .cameras
        .iter()
        .filter(|c| c.enabled)
        .map(|c| (c.clone(), crate::camera::source_for(c, clock.clone())))
        .collect::<Vec<_>>();
    if sources.is_empty() && !config.discover_cameras {
        log::warn!(
            "no camera is enabled in {}: nothing to record",
            config_path.display()
        );
    }
    if config.discover_cameras {
        println!("cameras: recording every camera found, as it appears");
    }
    for (c, s) in &sources {
        println!(
            "camera {}: {} ({}x{} @ {} fps)",
            c.id,
            s.describe(),
            c.res_width,
            c.res_height,
            c.fps
        );
    }
    install_signal_handlers();
    let boot_id = crate::clock::boot_id();
    let timekeeper = Arc::new(Timekeeper::start(
        store.clone(),
        adjustable,
        if args.clock_offset_only {
            Box::new(DeniedWallClockSetter)
        } else {
            Box::new(SystemWallClockSetter)
        },
        boot_id,
    ));
    let report = timekeeper.report();
    println!(
        "clock:  {}{}",
        report.time,
        if report.estimated {
            " (estimated: restored from the saved time; set it from the dashboard)"
        } else {
            ""
        }
    );
    let recorder = Recorder::start(
        &config,
        RecorderParts {
            store: store.clone(),
            clock: clock.clone(),
            sources,
            want_direct: !args.no_direct,
            boot_id,
            timekeeper: Some(timekeeper.clone()),
            discovery: config
                .discover_cameras
                .then(|| discovery(config_path, clock.clone())),
            status_led: config
                .status_led
                .as_deref()
                .map(crate::led::StatusLed::named),
        },
    )?;
    let trigger_threads = start_triggers(&config, &recorder);
    if let Some(gps) = &config.gps {
        match recorder.start_gps(gps) {
            Ok(()) => println!(
                "gps:    reading {} ({}); its time sets the clock once fixes agree",
                gps.device,
                gps.baud
                    .map_or("baud detected".to_string(), |b| format!("{b} baud"))
            ),
            Err(e) => log::error!("GPS off: cannot start its reader: {e}; recording goes on"),
        }
    }
    *recorder
        .status
        .config_origin
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(
        match loaded.origin {
            ConfigOrigin::Created => "created",
            ConfigOrigin::File => "file",
            ConfigOrigin::LastGood => "last_good",
            ConfigOrigin::Defaults => "defaults",
        }
        .to_string(),
    );
    if let Some(problem) = &loaded.problem {
        *recorder
            .status
            .config_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(problem.to_string());
    }
    for cam in &recorder.status.cameras() {
        for r in &cam.storage.recovery() {
            println!(
                "recovered {}/{}: {} frames ({:.1} s), {} GPS positions, {} torn bytes cut: {}",
                cam.id, r.segment, r.frames, r.seconds, r.positions, r.torn_bytes, r.action
            );
        }
    }
    let share = recorder.start_share_jobs(&config);
    let http = start_http(
        config_path,
        &config,
        store,
        &recorder,
        clock.clone(),
        timekeeper,
        share,
    );
    let running = super::service::Running {
        pid: std::process::id(),
        address: http.as_ref().ok().map(HttpService::local_addr),
        dashboard_off: http.as_ref().err().cloned(),
        data_dir: std::path::absolute(&data_dir).unwrap_or(data_dir),
    };
    if let Err(e) = super::service::publish(config_path, &running) {
        log::warn!(
            "cannot publish this recorder's address beside {} ({e}): `dashvault status` and `lock` will look at the config's",
            config_path.display()
        );
    }
    println!("recording; stop with Ctrl-C");
    let deadline = args.duration_s.map(|s| clock.mono_ns() + (s * 1e9) as u64);
    while !STOP_REQUESTED.load(Ordering::SeqCst) {
        if deadline.is_some_and(|d| clock.mono_ns() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    log::info!("stopping: closing segments");
    if let Ok(h) = http {
        h.stop();
    }
    super::service::withdraw(config_path);
    trigger_threads.0.store(true, Ordering::SeqCst);
    for t in trigger_threads.1 {
        let _ = t.join();
    }
    recorder.stop();
    Ok(0)
}

/// The search for cameras while recording: devices listed every second,
/// cameras looked for when they change, each one found kept in the config
/// file so it keeps its id (and gets settings a user can change).
fn discovery(config_path: &Path, clock: Arc<dyn Clock>) -> Discovery {
    let path = config_path.to_path_buf();
    Discovery {
        fingerprint: Box::new(crate::discovery::device_fingerprint),
        search: Box::new(crate::camera::search),
        source_for: Box::new(move |c: &CameraConfig| crate::camera::source_for(c, clock.clone())),
        on_found: Box::new(move |c: &CameraConfig| {
            keep_found_camera(&path, c);
            #[cfg(feature = "libcamera")]
            if c.source == config::SourceKind::Libcamera
                && crate::camera::libcamera::manager_started()
            {
                // This process's libcamera will not see it; the service
                // starts the recorder again at once.
                log::warn!(
                    "[{}] libcamera started before this camera appeared: restarting to record it",
                    c.id
                );
                STOP_REQUESTED.store(true, Ordering::SeqCst);
            }
        }),
    }
}

/// Adds a camera found while running to the config file, unless the file
/// does not load (its last good copy is in use then, and the file is the
/// user's to fix) or already has it.
fn keep_found_camera(path: &Path, cam: &CameraConfig) {
    let mut loaded = match config::load(path) {
        Ok(l) => l.config,
        Err(e) => {
            log::warn!("[{}] not kept in {}: {e}", cam.id, path.display());
            return;
        }
    };
    if loaded
        .cameras
        .iter()
        .any(|c| c.id == cam.id || (c.source == cam.source && c.device == cam.device))
    {
        return;
    }
    loaded.cameras.push(cam.clone());
    match config::save(path, &loaded) {
        Ok(()) => log::info!("[{}] kept in {}", cam.id, path.display()),
        Err(e) => log::warn!("[{}] not kept in {}: {e}", cam.id, path.display()),
    }
}

/// Starts the configured button and G-sensor. A device that cannot be
/// opened is reported (log and status) and recording goes on without it.
fn start_triggers(
    config: &config::Config,
    recorder: &Recorder,
) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
    use crate::incident::TriggerSource;
    use crate::triggers::{self, accel, gpio};
    use std::thread::JoinHandle;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut notes = Vec::new();
    let fire = |source: TriggerSource| -> Arc<dyn Fn() + Send + Sync> {
        let keeper = recorder.incidents.clone();
        Arc::new(move || {
            if let Err(e) = keeper.trigger(source) {
                log::error!("{} trigger could not lock footage: {e}", source.name());
            }
        })
    };
    // Each device: opened and its thread started, or why not.
    let mut started = |device: String, r: std::io::Result<(String, JoinHandle<()>)>| match r {
        Ok((describe, thread)) => {
            notes.push(format!("{describe}: ready"));
            threads.push(thread);
        }
        Err(e) => {
            let m = format!(
                "{device}: cannot start ({e}); incidents can still be locked from the dashboard"
            );
            log::error!("{m}");
            notes.push(m);
        }
    };
    if let Some(b) = &config.triggers.gpio_button {
        let debounce = Duration::from_millis(b.debounce_ms as u64);
        let r =
            gpio::GpioButton::open(&b.chip, b.line, b.active_low, debounce).and_then(|button| {
                let describe = triggers::ButtonInput::describe(&button);
                let thread = triggers::spawn_button(
                    Box::new(button),
                    debounce,
                    stop.clone(),
                    fire(TriggerSource::Button),
                )?;
                Ok((describe, thread))
            });
        started(format!("button on {} line {}", b.chip.display(), b.line), r);
    }
    if let Some(a) = &config.triggers.accelerometer {
        let threshold_g = a.threshold_g as f32;
        let r =
            accel::I2cAccelerometer::open(&a.device, a.part, a.address, a.sample_hz, threshold_g)
                .and_then(|sensor| {
                    let describe = triggers::AccelInput::describe(&sensor);
                    let thread = triggers::spawn_accelerometer(
                        Box::new(sensor),
                        triggers::ShockDetector::new(threshold_g, Duration::from_secs(5)),
                        stop.clone(),
                        fire(TriggerSource::GSensor),
                    )?;
                    Ok((describe, thread))
                });
        started(
            format!("G-sensor {:?} on {}", a.part, a.device.display()),
            r,
        );
    }
    *recorder
        .status
        .triggers
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = notes;
    (stop, threads)
}

/// Starts the dashboard. Recording goes on without it if it cannot start
/// (port taken, bad address), with a loud log line; the error says why.
fn start_http(
    config_path: &Path,
    config: &config::Config,
    store: Store,
    recorder: &Recorder,
    clock: Arc<dyn Clock>,
    timekeeper: Arc<Timekeeper>,
    share: Option<Arc<ShareJobs>>,
) -> Result<HttpService, String> {
    let config_dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (token, home) = match load_or_create_token(config_dir, config.auth_token.as_deref()) {
        Ok((token, source)) => {
            // The whole token is shown once, when it is made, and only on a
            // terminal (the appliance pipes this output into its log);
            // otherwise only its fingerprint, so logs do not carry it.
            let fp = fingerprint(&token);
            // SAFETY: isatty only inspects the descriptor.
            let on_terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
            match &source {
                TokenSource::Config => {
                    println!("token:  {fp}… (from {})", config_path.display())
                }
                TokenSource::File(p) => println!("token:  {fp}… (in {})", p.display()),
                TokenSource::Created(p) if on_terminal => {
                    println!("token:  {token} (new, saved in {})", p.display())
                }
                TokenSource::Created(p) => {
                    println!("token:  {fp}… (new; `cat {}` shows it)", p.display())
                }
                TokenSource::Ephemeral(why) => {
                    log::error!("{why}; this token lasts until restart");
                    if on_terminal {
                        println!("token:  {token} (until restart)");
                    } else {
                        println!(
                            "token:  {fp}… (until restart; run dashvault in a terminal to see it)"
                        );
                    }
                }
            }
            log::info!("dashboard token {fp}…");
            let home = TokenHome::of(&source, config_path);
            (token, home)
        }
        Err(e) => {
            let why = format!("cannot read or create the access token: {e}");
            log::error!("DASHBOARD OFF: {why}");
            return Err(why);
        }
    };
    let auth = Auth::kept_in(token, home, clock.clone());
    match auth.session_key_file() {
        Some(key) => println!("sessions: outlast a restart (key in {})", key.display()),
        None => println!("sessions: end at restart (their key is kept in memory)"),
    }
    let mut ctx = ApiContext::new(
        config.clone(),
        store,
        recorder.status.clone(),
        recorder.live.clone(),
        clock,
        auth,
    );
    ctx.timekeeper = Some(timekeeper);
    ctx.incidents = Some(recorder.incidents.clone());
    ctx.share = share;
    let addr = match config.bind.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, config.port),
        Err(e) => {
            let why = format!("bind '{}' is not an address: {e}", config.bind);
            log::error!("DASHBOARD OFF: {why}");
            return Err(why);
        }
    };
    match HttpService::start(ctx, addr, Limits::default()) {
        Ok(h) => {
            println!("dashboard: http://{}/", h.local_addr());
            Ok(h)
        }
        Err(e) => {
            let why = format!("cannot listen on {addr}: {e}");
            log::error!("DASHBOARD OFF: {why}; recording goes on");
            Err(why)
        }
    }
}
