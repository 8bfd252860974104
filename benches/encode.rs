//! Encoder throughput on one thread, next to libjpeg-turbo's `tjbench` and
//! ffmpeg's mjpeg encoder on the same picture.
//!
//! Run with `cargo bench --bench encode`. The frame is synthetic but
//! photo-like (gradients, texture and sensor-like noise): flat frames
//! compress unrealistically fast. External tools that are missing are
//! reported and skipped.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashvault::encode::caption::Caption;
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::frame::{packed_len, CaptureTime, PixelFormat, VideoFrame};

const QUALITY: u8 = 75;
/// ffmpeg's `-q:v` for roughly the same quality as libjpeg 75-85.
const FFMPEG_QSCALE: u8 = 5;
const OURS_SECONDS_PER_CASE: f64 = 1.5;
const TJBENCH: &str = "/usr/bin/tjbench";
const FFMPEG_FRAMES: usize = 60;
/// Frames of the short ffmpeg run whose time is subtracted to cancel
/// process start-up and file opening.
const FFMPEG_BASELINE_FRAMES: usize = 5;
/// 2025-11-21T10:00:00Z
const WALL_NS: i64 = 1_763_719_200_000_000_000;

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("dashvault encode benchmark: one thread, I420 in, 4:2:0 JPEG out, quality {QUALITY}");
    if let Some(cpu) = cpu_model() {
        println!("cpu: {cpu}");
    }
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let label = format!("{w}x{h}");
        if filter.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
            continue;
        }
        bench_size(w, h);
    }
}

fn bench_size(w: usize, h: usize) {
    println!();
    println!("== {w}x{h} ==  (load average: {})", load_average());
    let i420 = photo_like_i420(w, h);

    let cases = [
        (0, false, false),
        (0, true, false),
        (90, true, false),
        (0, true, true),
    ];
    let results = run_ours(
        &i420,
        w,
        h,
        &cases,
        OURS_SECONDS_PER_CASE * cases.len() as f64,
    );
    let (plain, stamped, rotated, captioned) = (&results[0], &results[1], &results[2], &results[3]);
    println!("                         mean      median    p10 ms    JPEG size");
    for (name, r) in [
        ("ours", plain),
        ("ours + timestamp", stamped),
        ("ours + ts + rot 90", rotated),
        ("ours + ts + GPS", captioned),
    ] {
        println!(
            "{name:<20} {:7.1} fps  {:6.2} ms  {:6.2} ms  {:7} B",
            r.fps, r.median_ms, r.p10_ms, r.bytes
        );
    }
    let pct = |with: f64, without: f64| (with - without) / without * 100.0;
    println!(
        "timestamp overlay cost: {:+.1}% of encode time (p10), {:+.1}% (median)",
        pct(stamped.p10_ms, plain.p10_ms),
        pct(stamped.median_ms, plain.median_ms)
    );
    println!(
        "GPS caption (\"{CAPTION}\") after the timestamp: {:+.1}% of encode time (p10), \
         {:+.1}% (median); time and caption together {:+.1}% (p10) against the timestamp's {:+.1}%",
        pct(captioned.p10_ms, stamped.p10_ms),
        pct(captioned.median_ms, stamped.median_ms),
        pct(captioned.p10_ms, plain.p10_ms),
        pct(stamped.p10_ms, plain.p10_ms)
    );

    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            println!("cannot create a temporary folder for the external tools: {e}");
            return;
        }
    };

    match run_tjbench(dir.path(), &i420, w, h) {
        Ok(tj) => {
            println!(
                "tjbench (RGB in)     {:7.1} fps  {:7} B   ours / tjbench = {:.2}",
                tj.rgb_fps,
                tj.rgb_bytes,
                plain.fps / tj.rgb_fps
            );
            if let Some(yuv_fps) = tj.yuv_fps {
                println!(
                    "tjbench (YUV in)     {:7.1} fps              ours / tjbench-yuv = {:.2}",
                    yuv_fps,
                    plain.fps / yuv_fps
                );
            }
        }
        Err(e) => println!("tjbench skipped: {e}"),
    }

    match run_ffmpeg(dir.path(), &i420, w, h) {
        Ok(fps) => println!(
            "ffmpeg mjpeg q:v {FFMPEG_QSCALE}   {:7.1} fps              ours / ffmpeg = {:.2}",
            fps,
            plain.fps / fps
        ),
        Err(e) => println!("ffmpeg skipped: {e}"),
    }
}

struct OursResult {
    fps: f64,
    median_ms: f64,
    /// 10th percentile: the undisturbed cost when other work shares the CPU.
    p10_ms: f64,
    bytes: usize,
}

/// The speed and position caption as the recorder burns it in.
const CAPTION: &str = "50 km/h 52.52001N 13.40700E";

/// Encodes with each of `cases` (rotation, timestamp, GPS caption) in turn, one frame at
/// a time, so slow drift of the machine (clock scaling, neighbours on a VM)
/// hits every case alike and differences between them stay meaningful.
fn run_ours(
    i420: &[u8],
    w: usize,
    h: usize,
    cases: &[(u16, bool, bool)],
    seconds: f64,
) -> Vec<OursResult> {
    let frame = VideoFrame::packed(
        PixelFormat::I420,
        w as u32,
        h as u32,
        i420.to_vec(),
        CaptureTime {
            mono_ns: 0,
            wall_ns: WALL_NS,
        },
    );
    let mut encoders: Vec<JpegEncoder> = cases
        .iter()
        .map(|&(rotation, embed_timestamp, gps)| {
            let enc = JpegEncoder::new(EncoderSettings {
                quality: QUALITY,
                rotation,
                embed_timestamp,
            });
            if gps {
                let caption = Arc::new(Caption::default());
                caption.set(0, CAPTION.into());
                enc.with_caption(caption)
            } else {
                enc
            }
        })
        .collect();
    let encode = |enc: &mut JpegEncoder| match enc.encode(black_box(&frame)) {
        Ok(img) => img.jpeg.len(),
        Err(e) => {
            eprintln!("encode failed: {e}");
            std::process::exit(1);
        }
    };
    // Warm up caches, scratch buffers and the CPU clock.
    let warm_until = Instant::now() + Duration::from_millis(300);
    let mut bytes = vec![0; cases.len()];
    while Instant::now() < warm_until {
        for (enc, b) in encoders.iter_mut().zip(bytes.iter_mut()) {
            *b = encode(enc);
        }
    }
    let mut times = vec![Vec::new(); cases.len()];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        for (enc, t) in encoders.iter_mut().zip(times.iter_mut()) {
            let t0 = Instant::now();
            black_box(encode(enc));
            t.push(t0.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .zip(bytes)
        .map(|(mut t, bytes)| {
            let total: f64 = t.iter().sum();
            t.sort_by(f64::total_cmp);
            OursResult {
                fps: t.len() as f64 / total,
                median_ms: t[t.len() / 2] * 1e3,
                p10_ms: t[t.len() / 10] * 1e3,
                bytes,
            }
        })
        .collect()
}

struct TjResult {
    rgb_fps: f64,
    rgb_bytes: u64,
    yuv_fps: Option<f64>,
}

fn run_tjbench(dir: &Path, i420: &[u8], w: usize, h: usize) -> Result<TjResult, String> {
    if !Path::new(TJBENCH).exists() {
        return Err(format!(
            "{TJBENCH} not found (Debian package libjpeg-turbo-progs)"
        ));
    }
    let ppm = dir.join("frame.ppm");
    fs::write(&ppm, i420_to_ppm(i420, w, h))
        .map_err(|e| format!("writing {}: {e}", ppm.display()))?;
    let run = |extra: &[&str]| -> Result<String, String> {
        let out = Command::new(TJBENCH)
            .arg(&ppm)
            .arg(QUALITY.to_string())
            .args([
                "-subsamp",
                "420",
                "-benchtime",
                "2",
                "-warmup",
                "1",
                "-nowrite",
                "-componly",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {TJBENCH}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{TJBENCH} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let pixels = (w * h) as f64;
    let rgb = run(&[])?;
    let rgb_mpix = section_value(&rgb, "Compress", "Throughput:")
        .ok_or_else(|| format!("no Compress throughput in tjbench output:\n{rgb}"))?;
    let rgb_bytes = section_value(&rgb, "Compress", "Output image size:").unwrap_or(0.0) as u64;
    let yuv_fps = run(&["-yuv"])
        .ok()
        .and_then(|out| section_value(&out, "Comp from YUV", "Throughput:"))
        .map(|mpix| mpix * 1e6 / pixels);
    Ok(TjResult {
        rgb_fps: rgb_mpix * 1e6 / pixels,
        rgb_bytes,
        yuv_fps,
    })
}

/// The first number after `key` in the tjbench section that starts with
/// `section` (e.g. "Compress", "Comp from YUV").
fn section_value(output: &str, section: &str, key: &str) -> Option<f64> {
    let mut in_section = false;
    for line in output.lines() {
        let trimmed = line.trim_start();
        if line.contains("-->") {
            in_section = trimmed.starts_with(section);
        }
        if !in_section {
            continue;
        }
        if let Some(pos) = line.find(key) {
            return line[pos + key.len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok();
        }
    }
    None
}

fn run_ffmpeg(dir: &Path, i420: &[u8], w: usize, h: usize) -> Result<f64, String> {
    let yuv = dir.join("frames.yuv");
    let mut all = Vec::with_capacity(i420.len() * FFMPEG_FRAMES);
    for _ in 0..FFMPEG_FRAMES {
        all.extend_from_slice(i420);
    }
    fs::write(&yuv, &all).map_err(|e| format!("writing {}: {e}", yuv.display()))?;
    drop(all);
    let size = format!("{w}x{h}");
    let run = |frames: usize| -> Result<f64, String> {
        let start = Instant::now();
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size, "-i"])
            .arg(&yuv)
            .args(["-frames:v", &frames.to_string()])
            .args([
                "-c:v",
                "mjpeg",
                "-q:v",
                &FFMPEG_QSCALE.to_string(),
                "-threads",
                "1",
            ])
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running ffmpeg: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ffmpeg exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(start.elapsed().as_secs_f64())
    };
    // Page the file in before timing.
    run(FFMPEG_BASELINE_FRAMES)?;
    let short = run(FFMPEG_BASELINE_FRAMES)?;
    let long = run(FFMPEG_FRAMES)?;
    let frames = (FFMPEG_FRAMES - FFMPEG_BASELINE_FRAMES) as f64;
    if long <= short {
        return Err(format!("timings too noisy ({long:.3} s vs {short:.3} s)"));
    }
    Ok(frames / (long - short))
}

/// Gradients, a little texture and sensor-like noise, as a packed I420 frame.
fn photo_like_i420(w: usize, h: usize) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![0u8; packed_len(PixelFormat::I420, w as u32, h as u32)];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move |amp: i32| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % (2 * amp as u64 + 1)) as i32 - amp
    };
    let (wf, hf) = (w as f32, h as f32);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / wf, y as f32 / hf);
            // Sky-to-road vertical gradient, a horizontal vignette, and
            // some mid-frequency structure.
            let base = 200.0 - 120.0 * fy + 30.0 * (fx * 6.0).sin() * (fy * 9.0).cos();
            let texture = 12.0 * ((x as f32 * 0.37).sin() + (y as f32 * 0.23).cos());
            let v = base + texture + noise(10) as f32;
            out[y * w + x] = v.clamp(0.0, 255.0) as u8;
        }
    }
    let (cb_off, cr_off) = (w * h, w * h + cw * ch);
    for y in 0..ch {
        for x in 0..cw {
            let (fx, fy) = (x as f32 / cw as f32, y as f32 / ch as f32);
            let cb = 128.0 + 30.0 * (fy - 0.5) + 10.0 * (fx * 4.0).sin() + noise(3) as f32;
            let cr = 128.0 - 20.0 * (fx - 0.5) + 8.0 * (fy * 5.0).cos() + noise(3) as f32;
            out[cb_off + y * cw + x] = cb.clamp(0.0, 255.0) as u8;
            out[cr_off + y * cw + x] = cr.clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The same picture as a binary PPM (JFIF full-range YCbCr -> RGB).
fn i420_to_ppm(i420: &[u8], w: usize, h: usize) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (cb_off, cr_off) = (w * h, w * h + cw * ch);
    let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
    out.reserve(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let yv = i420[y * w + x] as f32;
            let cb = i420[cb_off + (y / 2) * cw + x / 2] as f32 - 128.0;
            let cr = i420[cr_off + (y / 2) * cw + x / 2] as f32 - 128.0;
            let r = yv + 1.402 * cr;
            let g = yv - 0.344_136 * cb - 0.714_136 * cr;
            let b = yv + 1.772 * cb;
            out.extend([r, g, b].map(|c| c.round().clamp(0.0, 255.0) as u8));
        }
    }
    out
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))?
        .split(':')
        .nth(1)?
        .trim()
        .to_string();
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    Some(format!("{model} ({cores} logical CPUs)"))
}

/// The 1-minute load average: other work on the machine skews every figure.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
