//! The recorder and HTTP service as `dashvault run` wires them, on a
//! synthetic camera and 127.0.0.1:0, for tests that talk to the real server.

use std::path::PathBuf;
use std::sync::Arc;

use dashvault::camera::source_for;
use dashvault::clock::{AdjustableClock, Clock, DeniedWallClockSetter, SystemClock};
use dashvault::config::{CameraConfig, Config};
use dashvault::http::auth::Auth;
use dashvault::http::context::ApiContext;
use dashvault::http::server::Limits;
use dashvault::http::HttpService;
use dashvault::recorder::{Recorder, RecorderParts};
use dashvault::store::Store;
use dashvault::timekeeper::Timekeeper;

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub struct RunningService {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub recorder: Recorder,
    pub http: HttpService,
}

/// One 320×240 synthetic camera `front` at `fps`, 2 s segments, a sync
/// every 200 ms, with the clock and incident routes live. The host's clock
/// is never set: a phone-set time stays an offset.
#[allow(dead_code)] // not every test file uses the plain service
pub fn start_service(fps: u32, boot_id: [u8; 16], limits: Limits) -> RunningService {
    start_service_with(fps, boot_id, limits, |_, _, clock| {
        Auth::new(TOKEN.into(), clock)
    })
}

/// [`start_service`], with the config changed and the [`Auth`] made by
/// `setup` (given the config, the temporary folder and the clock).
#[allow(dead_code)] // not every test file sets up its own
pub fn start_service_with(
    fps: u32,
    boot_id: [u8; 16],
    limits: Limits,
    setup: impl FnOnce(&mut Config, &std::path::Path, Arc<dyn Clock>) -> Auth,
) -> RunningService {
    start_service_in(tempfile::tempdir().unwrap(), fps, boot_id, limits, setup)
}

/// Stops `service` and starts it again on the same folder (config folder
/// and data), as a restart of the service or a power cycle (with another
/// `boot_id`) would.
#[allow(dead_code)] // not every test file restarts
pub fn restart_service(
    service: RunningService,
    fps: u32,
    boot_id: [u8; 16],
    limits: Limits,
    setup: impl FnOnce(&mut Config, &std::path::Path, Arc<dyn Clock>) -> Auth,
) -> RunningService {
    let RunningService {
        dir,
        recorder,
        http,
        ..
    } = service;
    http.stop();
    recorder.stop();
    start_service_in(dir, fps, boot_id, limits, setup)
}

/// [`start_service_with`] in the folder `dir`.
fn start_service_in(
    dir: tempfile::TempDir,
    fps: u32,
    boot_id: [u8; 16],
    limits: Limits,
    setup: impl FnOnce(&mut Config, &std::path::Path, Arc<dyn Clock>) -> Auth,
) -> RunningService {
    let data_dir = dir.path().join("data");
    let mut cam = CameraConfig::synthetic("front");
    (cam.res_width, cam.res_height, cam.fps) = (320, 240, fps);
    let mut config = Config {
        cameras: vec![cam.clone()],
        segment_length_s: 2,
        sync_interval_ms: 200,
        ..Config::default()
    };
    let adjustable = Arc::new(AdjustableClock::new(Arc::new(SystemClock)));
    let clock: Arc<dyn Clock> = adjustable.clone();
    let auth = setup(&mut config, dir.path(), clock.clone());
    let store = Store::on_disk(&data_dir);
    let timekeeper = Arc::new(Timekeeper::start(
        store.clone(),
        adjustable,
        Box::new(DeniedWallClockSetter),
        boot_id,
    ));
    let recorder = Recorder::start(
        &config,
        RecorderParts {
            store: store.clone(),
            clock: clock.clone(),
            sources: vec![(cam.clone(), source_for(&cam, clock.clone()))],
            want_direct: false,
            boot_id,
            timekeeper: Some(timekeeper.clone()),
            discovery: None,
            status_led: None,
        },
    )
    .unwrap();
    if let Some(gps) = &config.gps {
        recorder.start_gps(gps).unwrap();
    }
    let mut ctx = ApiContext::new(
        config,
        store,
        recorder.status.clone(),
        recorder.live.clone(),
        clock.clone(),
        auth,
    );
    ctx.timekeeper = Some(timekeeper);
    ctx.incidents = Some(recorder.incidents.clone());
    ctx.share = recorder.start_share_jobs(&ctx.config);
    let http = HttpService::start(ctx, "127.0.0.1:0".parse().unwrap(), limits).unwrap();
    RunningService {
        dir,
        data_dir,
        recorder,
        http,
    }
}
