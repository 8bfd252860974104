//! An [`ApiContext`] over a data folder with a few recorded frames, without
//! a recorder or a server, for the fuzz target that drives whole requests
//! through the handlers (`fuzz/fuzz_targets/http_service.rs`).

use std::path::Path;
use std::sync::Arc;

use crate::camera::synthetic::SyntheticCamera;
use crate::camera::CameraSource;
use crate::clock::{Clock, SystemClock};
use crate::config::{CameraConfig, Config};
use crate::encode::{EncoderSettings, JpegEncoder};
use crate::frame::CaptureTime;
use crate::live::LiveHub;
use crate::status::Status;
use crate::store::writer::{EncodedFrame, WriterSettings};
use crate::store::{Store, StoreError};

use super::auth::Auth;
use super::context::ApiContext;

/// The one camera recorded.
pub const CAMERA: &str = "front";
/// Wall time of the first recorded frame: 2026-11-21T10:00:00Z.
pub const FIRST_FRAME_WALL_NS: i64 = 1_795_255_200_000_000_000;
pub const FRAMES_PER_SECOND: u32 = 4;
const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;
const NS_PER_S: u64 = 1_000_000_000;

/// Records `seconds` of [`CAMERA`] into `data_dir` in closed one-second
/// segments, from [`FIRST_FRAME_WALL_NS`] on: small real JPEGs of the
/// synthetic camera.
pub fn record_frames(data_dir: &Path, seconds: u32) -> Result<(), StoreError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Unpaced: the frames get the times below, not the camera's.
    let mut camera = SyntheticCamera::new(WIDTH, HEIGHT, 1_000_000, clock);
    let mut encoder = JpegEncoder::new(EncoderSettings {
        quality: 50,
        rotation: 0,
        embed_timestamp: false,
    });
    let store = Store::on_disk(data_dir);
    let mut writer = store.writer(WriterSettings {
        camera_id: CAMERA.into(),
        camera_dir: Default::default(), // set by `Store::writer`
        fps_milli: FRAMES_PER_SECOND * 1000,
        segment_length_ns: NS_PER_S,
        first_segment_length_ns: NS_PER_S,
        sync_interval_ns: NS_PER_S,
        want_direct: false,
        boot_id: [7; 16],
    })?;
    let failed = |what: &str, e: &dyn std::fmt::Display| StoreError::Invalid {
        path: data_dir.to_path_buf(),
        message: format!("{what}: {e}"),
    };
    camera
        .open()
        .map_err(|e| failed("opening the synthetic camera", &e))?;
    let step_ns = NS_PER_S / u64::from(FRAMES_PER_SECOND);
    for i in 0..u64::from(seconds * FRAMES_PER_SECOND) {
        let picture = camera
            .next_frame()
            .map_err(|e| failed("making a test frame", &e))?;
        let jpeg = encoder
            .encode(&picture)
            .map_err(|e| failed("encoding a test frame", &e))?;
        let mono_ns = NS_PER_S + i * step_ns;
        writer.append(
            &EncodedFrame {
                jpeg: jpeg.jpeg.into(),
                width: WIDTH,
                height: HEIGHT,
                captured: CaptureTime {
                    mono_ns,
                    wall_ns: FIRST_FRAME_WALL_NS + (i * step_ns) as i64,
                },
                flags: 0,
            },
            mono_ns,
        )?;
    }
    writer.close()
}

/// The handlers as `dashvault run` serves them over `data_dir`, with one
/// configured camera and the token `token`; no clock control and no
/// incident locks (those routes answer 503).
pub fn api_context(data_dir: &Path, token: &str) -> ApiContext {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = Config {
        cameras: vec![CameraConfig::synthetic(CAMERA)],
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    ApiContext::new(
        config,
        Store::on_disk(data_dir),
        Arc::new(Status::default()),
        Arc::new(LiveHub::new([CAMERA])),
        clock.clone(),
        Auth::new(token.into(), clock),
    )
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::http::server::{Body, Handler, Request};

    #[test]
    fn the_recorded_frames_are_served() {
        let dir = tempfile::tempdir().unwrap();
        record_frames(dir.path(), 2).unwrap();
        let token = "0123456789abcdef0123456789abcdef";
        let ctx = api_context(dir.path(), token);
        let req = Request {
            method: "GET".into(),
            path: "/api/videos".into(),
            query: Vec::new(),
            headers: vec![
                ("host".into(), "127.0.0.1".into()),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            body: Vec::new(),
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http10: false,
        };
        let answer = ctx.handle(&req);
        assert_eq!(answer.status, 200);
        let Body::Bytes(body) = answer.body else {
            panic!("a JSON body")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["videos"].as_array().unwrap().len(), 2, "{v}");
    }
}
