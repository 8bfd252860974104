//! Capture plus encode on the device: frames per second reached against the
//! configured rate, and CPU time per frame, for each resolution.
//!
//! Run with `make bench` (or `cargo bench --bench capture`, adding
//! `--features libcamera` to use the camera). With libcamera support built
//! in and a camera present, it records from the first libcamera camera (or
//! `DASHVAULT_BENCH_CAMERA=<id>`); the synthetic camera at the same size is
//! the peer measured in the same run, so its figures show what the encoder
//! alone costs. Stop the dashvault service first: the camera can only be
//! used by one program at a time.
//!
//! `DASHVAULT_BENCH_SECONDS` (default 5) sets the time per case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::SystemClock;
use dashvault::encode::{EncoderSettings, JpegEncoder};

const FPS: u32 = 30;
const QUALITY: u8 = 85;
const SIZES: [(u32, u32); 3] = [(640, 480), (1280, 720), (1920, 1080)];

struct Figures {
    frames: u64,
    fps: f64,
    cpu_ms_per_frame: f64,
    encode_ms_per_frame: f64,
}

fn main() {
    let seconds: f64 = std::env::var("DASHVAULT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    println!(
        "dashvault capture benchmark: capture + JPEG q{QUALITY} on one encoder thread, {FPS} fps asked, {seconds} s per case"
    );
    let camera = libcamera_camera();
    match &camera {
        Some(id) => println!("camera: libcamera {id}"),
        None => {
            println!("camera: none (libcamera support not built in or no camera); synthetic only")
        }
    }
    println!(
        "{:<10} {:<10} {:>7} {:>8} {:>9} {:>11} {:>12}",
        "size", "source", "frames", "fps", "fps/asked", "cpu ms/frm", "encode ms/frm"
    );
    for (w, h) in SIZES {
        let synthetic = Box::new(SyntheticCamera::new(w, h, FPS, Arc::new(SystemClock)));
        let peer = measure(synthetic, seconds);
        print_row(w, h, "synthetic", &peer);
        let Some(id) = &camera else { continue };
        let Some(source) = open_libcamera(id, w, h) else {
            continue;
        };
        let cam = measure(source, seconds);
        print_row(w, h, "libcamera", &cam);
        if let (Some(p), Some(c)) = (&peer, &cam) {
            println!(
                "{:<10} libcamera/synthetic: fps x{:.2}, cpu per frame x{:.2}",
                "",
                c.fps / p.fps,
                c.cpu_ms_per_frame / p.cpu_ms_per_frame
            );
        }
    }
}

fn print_row(w: u32, h: u32, source: &str, f: &Option<Figures>) {
    let size = format!("{w}x{h}");
    match f {
        Some(f) => println!(
            "{size:<10} {source:<10} {:>7} {:>8.2} {:>9.2} {:>11.2} {:>12.2}",
            f.frames,
            f.fps,
            f.fps / FPS as f64,
            f.cpu_ms_per_frame,
            f.encode_ms_per_frame
        ),
        None => println!("{size:<10} {source:<10} could not record (see the log above)"),
    }
}

/// Records for `seconds`, encoding every frame on this thread.
fn measure(mut source: Box<dyn CameraSource>, seconds: f64) -> Option<Figures> {
    if let Err(e) = source.open() {
        println!("{}: {e}", source.describe());
        return None;
    }
    let mut encoder = JpegEncoder::new(EncoderSettings {
        quality: QUALITY,
        rotation: 0,
        embed_timestamp: true,
    });
    // The first frames include start-up (sensor power-up, AGC): skip them.
    for _ in 0..5 {
        if let Err(e) = source.next_frame() {
            println!("{}: {e}", source.describe());
            source.close();
            return None;
        }
    }
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut frames = 0u64;
    let mut encoding = Duration::ZERO;
    while t0.elapsed().as_secs_f64() < seconds {
        let frame = match source.next_frame() {
            Ok(f) => f,
            Err(e) => {
                println!("{}: {e}", source.describe());
                break;
            }
        };
        let e0 = Instant::now();
        if let Err(e) = encoder.encode(&frame) {
            println!("{}: {e}", source.describe());
            break;
        }
        encoding += e0.elapsed();
        frames += 1;
    }
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    source.close();
    if frames == 0 {
        return None;
    }
    Some(Figures {
        frames,
        fps: frames as f64 / wall.as_secs_f64(),
        cpu_ms_per_frame: cpu.as_secs_f64() * 1e3 / frames as f64,
        encode_ms_per_frame: encoding.as_secs_f64() * 1e3 / frames as f64,
    })
}

/// User plus system CPU time of the whole process (libcamera's threads included).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(feature = "libcamera")]
fn libcamera_camera() -> Option<String> {
    // Kernels without a dma-buf heap (VMs) need the patched libcamera's
    // memfd buffers for its virtual camera; a Pi has a heap and ignores this.
    if std::env::var_os("LIBCAMERA_DMABUF_MEMFD_FALLBACK").is_none()
        && !std::path::Path::new("/dev/dma_heap").exists()
    {
        std::env::set_var("LIBCAMERA_DMABUF_MEMFD_FALLBACK", "1");
    }
    if let Ok(id) = std::env::var("DASHVAULT_BENCH_CAMERA") {
        return Some(id);
    }
    match dashvault::camera::libcamera::list() {
        Ok((_, cameras)) => cameras
            .into_iter()
            .map(|c| c.id)
            .find(|id| !dashvault::camera::is_uvc_camera_id(id)),
        Err(e) => {
            println!("{e}");
            None
        }
    }
}

#[cfg(not(feature = "libcamera"))]
fn libcamera_camera() -> Option<String> {
    None
}

#[cfg(feature = "libcamera")]
fn open_libcamera(id: &str, w: u32, h: u32) -> Option<Box<dyn CameraSource>> {
    let mut cam = dashvault::config::CameraConfig::synthetic("bench");
    cam.source = dashvault::config::SourceKind::Libcamera;
    cam.device = id.to_string();
    cam.res_width = w;
    cam.res_height = h;
    cam.fps = FPS;
    Some(Box::new(
        dashvault::camera::libcamera::LibcameraCamera::new(&cam, Arc::new(SystemClock)),
    ))
}

#[cfg(not(feature = "libcamera"))]
fn open_libcamera(_id: &str, _w: u32, _h: u32) -> Option<Box<dyn CameraSource>> {
    None
}
