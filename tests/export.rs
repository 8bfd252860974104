//! MP4 export end to end: footage recorded with the real segment writer on a
//! temporary folder (several segments, one recovered after a torn write, a
//! reboot, a pause and a resolution change), exported, and judged by ffprobe
//! and ffmpeg: codec, frame count, timestamps, clean decoding, and every
//! frame byte for byte.

use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dashvault::camera::synthetic::SyntheticCamera;
use dashvault::camera::CameraSource;
use dashvault::clock::SystemClock;
use dashvault::encode::{EncoderSettings, JpegEncoder};
use dashvault::export::mp4::find_boxes;
use dashvault::export::{ExportError, ExportOptions, Mp4Export};
use dashvault::frame::CaptureTime;
use dashvault::store::catalog::list_segments;
use dashvault::store::io::{RealIo, StorageIo};
use dashvault::store::recovery::recover_camera;
use dashvault::store::writer::{EncodedFrame, SegmentWriter, WriterSettings};
use dashvault::store::Store;

const INTERVAL_NS: u64 = 33_333_333;
/// 2026-11-20T10:00:00Z
const START_WALL_NS: i64 = 1_795_168_800_000_000_000;

/// A frame as it was handed to the writer.
#[derive(Clone)]
struct Recorded {
    jpeg: Vec<u8>,
    mono_ns: u64,
    wall_ns: i64,
    boot: u8,
}

struct Footage {
    dir: tempfile::TempDir,
    /// Every frame the store kept, in order.
    frames: Vec<Recorded>,
}

impl Footage {
    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Wall range covering every frame.
    fn range(&self) -> (i64, i64) {
        (
            self.frames[0].wall_ns,
            self.frames.last().unwrap().wall_ns + 1,
        )
    }
}

fn jpegs(count: usize, width: u32, height: u32) -> Vec<Vec<u8>> {
    let mut cam = SyntheticCamera::new(width, height, 1_000_000, Arc::new(SystemClock));
    cam.open().unwrap();
    let mut enc = JpegEncoder::new(EncoderSettings {
        quality: 70,
        rotation: 0,
        embed_timestamp: true,
    });
    (0..count)
        .map(|_| enc.encode(&cam.next_frame().unwrap()).unwrap().jpeg)
        .collect()
}

fn writer(data_dir: &Path, boot: u8) -> SegmentWriter {
    let io: Arc<dyn StorageIo> = Arc::new(RealIo::new());
    SegmentWriter::new(
        io,
        WriterSettings {
            camera_id: "front".into(),
            camera_dir: data_dir.join("recordings/front"),
            fps_milli: 30_000,
            segment_length_ns: 2_000_000_000,
            first_segment_length_ns: 2_000_000_000,
            sync_interval_ns: 200_000_000,
            want_direct: true,
            boot_id: [boot; 16],
        },
        Default::default(),
        Default::default(),
    )
    .unwrap()
}

fn append(w: &mut SegmentWriter, f: &Recorded, width: u32, height: u32) {
    w.append(
        &EncodedFrame {
            jpeg: f.jpeg.clone().into(),
            width,
            height,
            captured: CaptureTime {
                mono_ns: f.mono_ns,
                wall_ns: f.wall_ns,
            },
            flags: 0,
        },
        f.mono_ns,
    )
    .unwrap();
}

/// Boot 1: 5 s at 30 fps with a few dropped frames and jitter, in segments
/// of 2 s; the last one is left unclosed with a torn tail, then recovered.
/// Boot 2, 3 s later by the wall clock (monotonic time restarts): 2 s at a
/// smaller size, then a 1.5 s pause, then 1 s more.
fn record_footage() -> Footage {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let big = jpegs(150, 320, 240);
    let small = jpegs(90, 256, 192);
    let mut frames = Vec::new();

    let mut w = writer(&data, 1);
    let mono0 = 7_000_000_000u64;
    for (n, jpeg) in big.iter().enumerate() {
        if n % 11 == 5 {
            continue; // dropped by the camera
        }
        let jitter = (n as u64 * 7919 % 7) * 1_000_000;
        let t = n as u64 * INTERVAL_NS + jitter;
        let f = Recorded {
            jpeg: jpeg.clone(),
            mono_ns: mono0 + t,
            wall_ns: START_WALL_NS + t as i64,
            boot: 1,
        };
        append(&mut w, &f, 320, 240);
        frames.push(f);
    }
    w.sync(u64::MAX / 2).unwrap();
    let torn = w.current_path().unwrap().to_path_buf();
    w.abandon();
    drop(w);
    // Half a block of garbage after the last frame: a torn write.
    let last = frames.last().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&torn).unwrap();
    let reader = dashvault::store::reader::SegmentReader::open(&RealIo::new(), &torn).unwrap();
    let end = reader
        .frames
        .last()
        .map(|f| f.offset + 48 + f.payload_len as u64)
        .unwrap();
    file.write_all_at(&[0x5a; 2048], end + 100).unwrap();
    drop(file);
    let reports = recover_camera(&RealIo::new(), &data, "front").unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].torn_bytes > 0, "{reports:?}");
    let resumed_wall = last.wall_ns + 3_000_000_000;

    let mut w = writer(&data, 2);
    let mono0 = 1_000_000_000u64;
    for (n, jpeg) in small.iter().enumerate() {
        let pause = if n >= 60 { 1_500_000_000 } else { 0 };
        let t = n as u64 * INTERVAL_NS + pause;
        let f = Recorded {
            jpeg: jpeg.clone(),
            mono_ns: mono0 + t,
            wall_ns: resumed_wall + t as i64,
            boot: 2,
        };
        append(&mut w, &f, 256, 192);
        frames.push(f);
    }
    w.close().unwrap();

    let segments = list_segments(&RealIo::new(), &data, "front")
        .unwrap()
        .segments;
    assert!(segments.len() >= 5, "{segments:?}");
    Footage { dir, frames }
}

/// Presentation time of each frame in 90 kHz ticks, and the total duration
/// in ns, as the capture times say: monotonic within a boot, wall across.
fn expected_timeline(frames: &[Recorded]) -> (Vec<u64>, u64) {
    let mut pts = Vec::new();
    let mut t = 0u64;
    for (i, f) in frames.iter().enumerate() {
        pts.push(ticks(t));
        let d = match frames.get(i + 1) {
            Some(n) if n.boot == f.boot => n.mono_ns - f.mono_ns,
            Some(n) => (n.wall_ns - f.wall_ns) as u64,
            None => INTERVAL_NS,
        };
        t += d;
    }
    (pts, t)
}

fn ticks(ns: u64) -> u64 {
    ((ns as u128 * 90_000 + 500_000_000) / 1_000_000_000) as u64
}

fn export_all(f: &Footage, options: ExportOptions) -> (Mp4Export, Vec<u8>) {
    let (from, to) = f.range();
    let e = Mp4Export::open(&Store::on_disk(f.data_dir()), "front", from, to, options).unwrap();
    let mut body = Vec::new();
    e.write_range(0, e.len(), &mut body).unwrap();
    assert_eq!(body.len() as u64, e.len());
    (e, body)
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("ffmpeg/ffprobe installed (make deps)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ffprobe(path: &Path, args: &[&str]) -> serde_json::Value {
    let (out, _) = run(Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path));
    serde_json::from_str(&out).unwrap()
}

/// ffmpeg decodes the file and says nothing: first as players would open
/// it, then every stream (the text track turned into SRT).
fn assert_decodes_cleanly(path: &Path) {
    for args in [
        &["-f", "null", "-"][..],
        &["-map", "0", "-c:s", "srt", "-f", "null", "-"],
    ] {
        let (out, err) = run(Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(args));
        assert_eq!(out.trim(), "");
        assert_eq!(err.trim(), "", "ffmpeg reported problems decoding {path:?}");
    }
}

/// The video samples as ffmpeg's copy muxer hands them out, one file each.
fn extract_frames(path: &Path, dir: &Path) -> Vec<Vec<u8>> {
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-c", "copy", "-f", "image2"])
        .arg(dir.join("%06d.jpg")));
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

#[test]
fn export_across_segments_plays_at_capture_speed_with_every_frame_intact() {
    let footage = record_footage();
    let (export, body) = export_all(&footage, ExportOptions::default());
    let frames = &footage.frames;
    assert_eq!(export.frame_count(), frames.len());
    assert!(export.problems().is_empty(), "{:?}", export.problems());
    let (pts, duration_ns) = expected_timeline(frames);
    assert_eq!(export.duration_ns(), duration_ns);

    let out = tempfile::tempdir().unwrap();
    let path = write_file(out.path(), "out.mp4", &body);

    let probe = ffprobe(
        &path,
        &[
            "-count_packets",
            "-show_entries",
            "stream=codec_type,codec_name,nb_read_packets,duration_ts,width,height:format=duration",
        ],
    );
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{probe}");
    let video = &streams[0];
    assert_eq!(video["codec_type"], "video");
    assert_eq!(video["codec_name"], "mjpeg");
    assert_eq!(video["width"], 320);
    assert_eq!(video["height"], 240);
    assert_eq!(
        video["nb_read_packets"]
            .as_str()
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        frames.len()
    );
    let duration_ts = video["duration_ts"].as_u64().unwrap();
    assert!(
        duration_ts.abs_diff(ticks(duration_ns)) <= ticks(INTERVAL_NS),
        "duration {duration_ts} ticks, capture times say {}",
        ticks(duration_ns)
    );
    let seconds: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((seconds - duration_ns as f64 / 1e9).abs() <= INTERVAL_NS as f64 / 1e9);
    assert_eq!(streams[1]["codec_type"], "subtitle");
    assert_eq!(streams[1]["codec_name"], "mov_text");

    // Every frame at its capture time, to the tick.
    let packets = ffprobe(
        &path,
        &["-select_streams", "v:0", "-show_entries", "packet=pts"],
    );
    let got: Vec<u64> = packets["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pts"].as_u64().unwrap())
        .collect();
    assert_eq!(got, pts);

    assert_decodes_cleanly(&path);

    let extracted = extract_frames(&path, &out.path().join("frames").tap_mkdir());
    assert_eq!(extracted.len(), frames.len());
    for (i, (got, want)) in extracted.iter().zip(frames).enumerate() {
        assert!(got == &want.jpeg, "frame {i} differs from the stored JPEG");
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn time_track_shows_capture_time_and_says_when_nothing_was_recorded() {
    let footage = record_footage();
    let (_, body) = export_all(&footage, ExportOptions::default());
    let out = tempfile::tempdir().unwrap();
    let path = write_file(out.path(), "out.mp4", &body);
    let (srt, _) = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-map", "0:s", "-f", "srt", "-"]));
    // Without the style tags ffmpeg adds.
    let mut srt: String = srt
        .split('<')
        .enumerate()
        .map(|(i, s)| {
            if i == 0 {
                s
            } else {
                s.split_once('>').map_or(s, |(_, t)| t)
            }
        })
        .collect();
    srt.retain(|c| c != '\r');
    assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:01,0"), "{srt}");
    assert!(srt.contains("\n2026-11-20 10:00:00 UTC\n"), "{srt}");
    assert!(srt.contains("2026-11-20 10:00:04 UTC\n"), "{srt}");
    // The reboot: 3 s without frames after the recovered segment.
    assert!(
        srt.contains("2026-11-20 10:00:04 UTC, then nothing recorded for 3 s\n"),
        "{srt}"
    );
    // The pause in boot 2 (1.5 s, shown rounded).
    assert!(srt.contains(", then nothing recorded for 2 s\n"), "{srt}");

    // Without the time track: one stream, same video samples.
    let (e, plain) = export_all(
        &footage,
        ExportOptions {
            time_track: false,
            ..ExportOptions::default()
        },
    );
    let path = write_file(out.path(), "plain.mp4", &plain);
    let probe = ffprobe(&path, &["-show_entries", "stream=codec_type"]);
    assert_eq!(probe["streams"].as_array().unwrap().len(), 1);
    assert_decodes_cleanly(&path);
    assert_ne!(
        e.etag(),
        export_all(&footage, ExportOptions::default()).0.etag()
    );
}

#[test]
fn range_reads_equal_slices_of_the_whole_file() {
    let footage = record_footage();
    let (export, body) = export_all(&footage, ExportOptions::default());
    let len = export.len();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let mut ranges = vec![(0, 0), (0, 1), (0, len), (len - 1, len), (len, len)];
    for _ in 0..300 {
        let a = next(len + 1);
        let b = match next(3) {
            0 => a + next(64),
            1 => a + next(100_000),
            _ => next(len + 1),
        }
        .min(len);
        ranges.push((a.min(b), a.max(b)));
    }
    for (a, b) in ranges {
        let mut got = Vec::new();
        export.write_range(a, b, &mut got).unwrap();
        assert!(got == body[a as usize..b as usize], "range {a}..{b}");
    }
    assert!(matches!(
        export.write_range(0, len + 1, &mut Vec::new()),
        Err(ExportError::BadByteRange { .. })
    ));
    assert!(matches!(
        export.write_range(5, 4, &mut Vec::new()),
        Err(ExportError::BadByteRange { .. })
    ));

    // A second open of the same footage gives the same bytes and tag.
    let (again, body2) = export_all(&footage, ExportOptions::default());
    assert_eq!(again.etag(), export.etag());
    assert!(body2 == body);
    assert!(export.etag().starts_with('"') && export.etag().ends_with('"'));
}

#[test]
fn chunk_offsets_switch_to_64_bits_and_still_play() {
    let footage = record_footage();
    let (from, to) = footage.range();
    let (normal, body) = export_all(&footage, ExportOptions::default());
    let wide = Mp4Export::open_with_chunk_offset_limit(
        &Store::on_disk(footage.data_dir()),
        "front",
        from,
        to,
        ExportOptions::default(),
        0,
    )
    .unwrap();
    let mut wide_body = Vec::new();
    wide.write_range(0, wide.len(), &mut wide_body).unwrap();
    let stbl: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl"];
    let co64 = find_boxes(&wide_body, &[stbl, &[b"co64"]].concat());
    assert_eq!(co64.len(), 2, "one co64 per track");
    assert!(find_boxes(&wide_body, &[stbl, &[b"stco"]].concat()).is_empty());
    assert_eq!(find_boxes(&body, &[stbl, &[b"stco"]].concat()).len(), 2);
    assert_ne!(wide.etag(), normal.etag());
    // Same mdat body, just further along.
    let mdat = |b: &[u8]| b[find_boxes(b, &[b"mdat"])[0].clone()].to_vec();
    assert!(mdat(&wide_body) == mdat(&body));

    let out = tempfile::tempdir().unwrap();
    let path = write_file(out.path(), "co64.mp4", &wide_body);
    assert_decodes_cleanly(&path);
    let extracted = extract_frames(&path, &out.path().join("frames").tap_mkdir());
    assert_eq!(extracted.len(), footage.frames.len());
    for (got, want) in extracted.iter().zip(&footage.frames) {
        assert!(got == &want.jpeg);
    }
}

#[test]
fn part_of_the_footage_starts_and_ends_at_the_requested_times() {
    let footage = record_footage();
    let from = START_WALL_NS + 1_500_000_000;
    let to = START_WALL_NS + 3_200_000_000;
    let e = Mp4Export::open(
        &Store::on_disk(footage.data_dir()),
        "front",
        from,
        to,
        ExportOptions::default(),
    )
    .unwrap();
    let inside: Vec<&Recorded> = footage
        .frames
        .iter()
        .filter(|f| f.wall_ns >= from && f.wall_ns < to)
        .collect();
    assert_eq!(e.frame_count(), inside.len());
    assert_eq!(
        e.file_name(),
        "front_20261120T100001.500Z_20261120T100003.200Z.mp4"
    );
    let mut body = Vec::new();
    e.write_range(0, e.len(), &mut body).unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = write_file(out.path(), "part.mp4", &body);
    assert_decodes_cleanly(&path);
    let extracted = extract_frames(&path, &out.path().join("frames").tap_mkdir());
    assert_eq!(extracted.len(), inside.len());
    assert!(extracted.iter().zip(&inside).all(|(g, w)| g == &w.jpeg));
}

#[test]
fn no_footage_and_backwards_ranges_are_told_apart() {
    let footage = record_footage();
    let err = Mp4Export::open(
        &Store::on_disk(footage.data_dir()),
        "front",
        START_WALL_NS - 600_000_000_000,
        START_WALL_NS - 1,
        ExportOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ExportError::NoFootage { .. }), "{err}");
    assert!(err.to_string().contains("front"), "{err}");
    assert!(err.to_string().contains("2026-11-20T09:50:00Z"), "{err}");
    let err = Mp4Export::open(
        &Store::on_disk(footage.data_dir()),
        "rear",
        0,
        i64::MAX,
        ExportOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ExportError::NoFootage { .. }), "{err}");
    let err = Mp4Export::open(
        &Store::on_disk(footage.data_dir()),
        "front",
        10,
        10,
        ExportOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ExportError::BadTimeRange { .. }), "{err}");
}

#[test]
fn a_frame_damaged_after_open_stops_the_stream_before_its_bytes() {
    let footage = record_footage();
    let (export, good) = export_all(&footage, ExportOptions::default());
    // Damage one payload byte of the 50th frame, in place (the export's
    // readers keep their files open, as while streaming).
    let victim = &footage.frames[50].jpeg;
    let segments = list_segments(&RealIo::new(), footage.data_dir(), "front")
        .unwrap()
        .segments;
    let mut damaged = None;
    for seg in &segments {
        let bytes = std::fs::read(&seg.path).unwrap();
        if let Some(at) = bytes.windows(victim.len()).position(|w| w == &victim[..]) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .unwrap();
            let pos = at + victim.len() / 2;
            file.write_all_at(&[bytes[pos] ^ 0x40], pos as u64).unwrap();
            damaged = Some((seg.name.clone(), at as u64 - 48));
            break;
        }
    }
    let (segment, record) = damaged.expect("frame 50 found in a segment");
    let mut out = Vec::new();
    let err = export.write_range(0, export.len(), &mut out).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ExportError::Store(_)), "{msg}");
    assert!(msg.contains(&segment), "{msg}");
    assert!(msg.contains(&format!("byte {record}")), "{msg}");
    assert!(msg.contains("CRC"), "{msg}");
    // What went out is a correct prefix that stops before the bad frame.
    let frame_at = good
        .windows(victim.len())
        .position(|w| w == &victim[..])
        .unwrap();
    assert!(out.len() <= frame_at, "{} > {frame_at}", out.len());
    assert!(out == good[..out.len()]);
}

/// An export holds its segments open but not their indexes (a day of
/// footage would cost 40 bytes a frame): streaming reads each index again
/// from the held file. Segments that retention deletes after the export
/// was opened still stream whole, byte for byte.
#[test]
fn segments_deleted_after_open_still_stream_from_the_held_files() {
    let footage = record_footage();
    let (from, to) = footage.range();
    let store = Store::on_disk(footage.data_dir());
    let export = Mp4Export::open(&store, "front", from, to, ExportOptions::default()).unwrap();
    let (_, good) = export_all(&footage, ExportOptions::default());
    let segments = list_segments(&RealIo::new(), footage.data_dir(), "front")
        .unwrap()
        .segments;
    assert!(segments.len() >= 2, "footage spans segments");
    for seg in &segments {
        std::fs::remove_file(&seg.path).unwrap();
    }
    let mut out = Vec::new();
    export.write_range(0, export.len(), &mut out).unwrap();
    assert!(out == good, "same bytes after the files were deleted");
    // Ranges out of order read the indexes again as needed.
    let mut tail = Vec::new();
    export
        .write_range(good.len() as u64 / 2, good.len() as u64, &mut tail)
        .unwrap();
    let mut head = Vec::new();
    export
        .write_range(0, good.len() as u64 / 2, &mut head)
        .unwrap();
    head.extend_from_slice(&tail);
    assert!(head == good);
}

/// A range holding a single frame exports that frame (it was once taken
/// for no footage: the last frame is placed only when the timeline ends).
#[test]
fn a_range_of_one_frame_exports_that_frame() {
    let footage = record_footage();
    let frame = &footage.frames[40];
    let store = Store::on_disk(footage.data_dir());
    let export = Mp4Export::open(
        &store,
        "front",
        frame.wall_ns,
        frame.wall_ns + 1,
        ExportOptions::default(),
    )
    .unwrap();
    assert_eq!(export.frame_count(), 1);
    assert_eq!(export.first_last_wall_ns(), (frame.wall_ns, frame.wall_ns));
    let mut body = Vec::new();
    export.write_range(0, export.len(), &mut body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "one.mp4", &body);
    assert_decodes_cleanly(&path);
    let frames_dir = tempfile::tempdir().unwrap();
    let frames = extract_frames(&path, frames_dir.path());
    assert!(
        frames == vec![frame.jpeg.clone()],
        "{} frames",
        frames.len()
    );
}

fn cli(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dashvault"));
    c.env("DASHVAULT_CONFIG", data_dir.join("none.json"))
        .args(["export", "--data-dir"])
        .arg(data_dir);
    c
}

#[test]
fn cli_writes_the_same_bytes_as_the_library() {
    let footage = record_footage();
    let from = "2026-11-20T10:00:01Z";
    let to = "2026-11-20T10:00:09Z";
    let e = Mp4Export::open(
        &Store::on_disk(footage.data_dir()),
        "front",
        dashvault::clock::parse_rfc3339(from).unwrap(),
        dashvault::clock::parse_rfc3339(to).unwrap(),
        ExportOptions::default(),
    )
    .unwrap();
    let mut body = Vec::new();
    e.write_range(0, e.len(), &mut body).unwrap();

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("crash.mp4");
    let o = cli(footage.data_dir())
        .args(["--camera", "front", "--from", from, "--to", to, "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&file).unwrap() == body);
    // Only the finished file is left behind.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);

    // To stdout, and with the default camera.
    let o = cli(footage.data_dir())
        .args(["--from", from, "--to", to, "-o", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout == body);

    // No output given: the suggested name in the working folder.
    let o = cli(footage.data_dir())
        .current_dir(out.path())
        .args(["--from", from, "--to", to])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(out.path().join(e.file_name())).unwrap() == body);

    // --last: the newest footage.
    let o = cli(footage.data_dir())
        .args(["--last", "2s", "-o", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let last = write_file(out.path(), "last.mp4", &o.stdout);
    let probe = ffprobe(
        &last,
        &["-count_packets", "-show_entries", "stream=nb_read_packets"],
    );
    let n: usize = probe["streams"][0]["nb_read_packets"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let newest = footage.frames.last().unwrap().wall_ns;
    let want = footage
        .frames
        .iter()
        .filter(|f| f.wall_ns > newest - 2_000_000_000)
        .count();
    assert_eq!(n, want);
}

#[test]
fn cli_says_when_there_is_no_footage() {
    let footage = record_footage();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("x.mp4");
    let o = cli(footage.data_dir())
        .args([
            "--camera",
            "front",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-01-01T00:05:00Z",
            "-o",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no footage of camera 'front'"), "{err}");
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    let o = cli(footage.data_dir())
        .args([
            "--camera",
            "front",
            "--from",
            "yesterday",
            "--to",
            "2025-01-01T00:05:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("yesterday"));
}

#[test]
fn cli_an_unknown_camera_is_an_error_naming_the_cameras_not_an_empty_range() {
    let footage = record_footage();
    let o = cli(footage.data_dir())
        .args(["--camera", "rear", "--last", "1h", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no camera 'rear'") && err.contains("front"),
        "{err}"
    );
}

#[test]
fn cli_last_without_a_unit_says_which_units_to_write() {
    let footage = record_footage();
    let o = cli(footage.data_dir())
        .args(["--last", "5", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("5s, 5m or 5h"), "{err}");
    assert!(!err.contains("5sec"), "humantime's own hint leaked: {err}");
}

#[test]
fn cli_a_time_without_a_zone_is_refused_not_read_as_utc() {
    let footage = record_footage();
    let o = cli(footage.data_dir())
        .args([
            "--from",
            "2026-11-20T10:00:01",
            "--to",
            "2026-11-20T10:00:09Z",
        ])
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--from") && err.contains("no time zone"),
        "{err}"
    );
}

#[test]
fn cli_export_to_a_reader_that_stops_reading_ends_quietly() {
    use std::io::Read;
    let footage = record_footage();
    let mut child = cli(footage.data_dir())
        .args(["--last", "1h", "-o", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first bytes, as `| head -c 16` would, then close the pipe.
    let mut head = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(&head[4..8], b"ftyp");
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
}

/// 30 s of footage whose capture times wander as a real camera's do:
/// frames 33 ms apart, each up to ±10 ms off, with a few pairs captured
/// 2 ms apart (a driver handing over two buffers at once) and a few drops.
fn record_jittered_footage() -> Footage {
    let dir = tempfile::tempdir().unwrap();
    let pictures = jpegs(30, 160, 120);
    let mut w = writer(dir.path(), 1);
    let mut frames = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let mono0 = 5_000_000_000u64;
    let mut last_t = 0u64;
    for n in 0..900u64 {
        if n % 97 == 50 {
            continue; // dropped
        }
        let jitter = next(20_000_001) as i64 - 10_000_000;
        let mut t = (n as i64 * 33_000_000 + jitter).max(0) as u64;
        if n % 61 == 30 {
            t = last_t + 2_000_000; // close behind the frame before
        }
        let t = t.max(last_t + 1_000_000);
        last_t = t;
        let f = Recorded {
            jpeg: pictures[n as usize % pictures.len()].clone(),
            mono_ns: mono0 + t,
            wall_ns: START_WALL_NS + t as i64,
            boot: 1,
        };
        append(&mut w, &f, 160, 120);
        frames.push(f);
    }
    w.close().unwrap();
    Footage { dir, frames }
}

/// ffmpeg's video frame count and stderr for `ffmpeg -v error -stats -i
/// <path> <args> -f null -` (the count from the last progress line).
fn ffmpeg_null_decode(path: &Path, args: &[&str]) -> (usize, String) {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-stats", "-i"])
        .arg(path)
        .args(args)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg installed (make deps)");
    let err = String::from_utf8_lossy(&o.stderr).replace('\r', "\n");
    assert!(o.status.success(), "{err}");
    let frames = err
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("frame="))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let problems = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("frame="))
        .collect::<Vec<_>>()
        .join("\n");
    (frames, problems)
}

/// Regression: `ffmpeg -v error -i x.mp4 -f null -` printed "non
/// monotonically increasing dts" for exports whose capture times jitter.
/// The export keeps capture times (to the 90 kHz tick); ffmpeg's default
/// rounds them to its guessed 1/30 s, where two close frames meet
/// (docs/export.md §4). The documented command keeps the file's time base
/// and is silent, and every frame is decoded either way.
#[test]
fn ffmpeg_v_error_on_a_jittered_export_prints_nothing() {
    let footage = record_jittered_footage();
    let (export, body) = export_all(&footage, ExportOptions::default());
    let frames = &footage.frames;
    assert_eq!(export.frame_count(), frames.len());
    let out = tempfile::tempdir().unwrap();
    let path = write_file(out.path(), "jitter.mp4", &body);

    // The times in the file are the capture times, to the tick.
    let packets = ffprobe(
        &path,
        &["-select_streams", "v:0", "-show_entries", "packet=pts"],
    );
    let got: Vec<u64> = packets["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pts"].as_u64().unwrap())
        .collect();
    assert_eq!(got, expected_timeline(frames).0);

    for args in [
        &["-enc_time_base", "-1"][..],
        &["-map", "0", "-c:s", "srt", "-enc_time_base", "-1"],
    ] {
        let (decoded, problems) = ffmpeg_null_decode(&path, args);
        assert_eq!(problems, "", "ffmpeg -v error -i x.mp4 {args:?} -f null -");
        assert_eq!(decoded, frames.len(), "{args:?}");
    }

    // ffmpeg's default still decodes every frame; what it prints is only
    // its own rounding (if a newer ffmpeg stops, docs/export.md §4 can
    // say so).
    let (decoded, problems) = ffmpeg_null_decode(&path, &[]);
    assert_eq!(decoded, frames.len());
    for line in problems.lines() {
        assert!(
            line.contains("non monotonically increasing dts") || line.contains("Last message"),
            "{line}"
        );
    }
}

/// Windows' Media Foundation reads `mp4v` as MPEG-4 Part 2, so the video
/// must be described as `jpeg`, in every sample description (one per
/// picture size).
#[test]
fn video_sample_entry_is_jpeg_never_mp4v() {
    let footage = record_footage();
    let (_, body) = export_all(&footage, ExportOptions::default());
    let stsd = find_boxes(
        &body,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    );
    assert_eq!(stsd.len(), 2, "video and text track");
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    // Video: version/flags, entry count, then entries (size, type, ...).
    let video = &body[stsd[0].clone()];
    let count = be32(&video[4..8]);
    assert_eq!(count, 2, "one entry per picture size");
    let mut at = 8;
    for _ in 0..count {
        let size = be32(&video[at..at + 4]) as usize;
        assert_eq!(&video[at + 4..at + 8], b"jpeg");
        at += size;
    }
    assert_eq!(at, video.len());
    assert!(
        !body[..stsd[1].end].windows(4).any(|w| w == b"mp4v"),
        "no mp4v anywhere in the header"
    );
    let out = tempfile::tempdir().unwrap();
    let path = write_file(out.path(), "out.mp4", &body);
    let probe = ffprobe(
        &path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_tag_string,codec_name",
        ],
    );
    assert_eq!(probe["streams"][0]["codec_tag_string"], "jpeg");
    assert_eq!(probe["streams"][0]["codec_name"], "mjpeg");
}

/// A range with more frames than an export may hold is refused after
/// counting only as many segments as it takes to pass the limit, not every
/// segment of the range, and before any frame is read (a year-long range
/// costs no more memory than one index).
#[test]
fn a_range_over_the_frame_limit_stops_opening_segments_at_the_limit() {
    let footage = record_footage();
    let (from, to) = footage.range();
    let store = Store::on_disk(footage.data_dir());
    let whole = store
        .intact_range_at_most("front", from, to, usize::MAX)
        .unwrap();
    assert!(!whole.over_limit);
    assert_eq!(whole.frame_count(), footage.frames.len());
    let first_segment = whole.segments[0].frames.len();

    let limited = store.intact_range_at_most("front", from, to, 10).unwrap();
    assert!(limited.over_limit);
    assert_eq!(
        limited.frames_found, first_segment,
        "stopped counting after the first segment"
    );
    assert!(limited.segments.is_empty(), "no segment checked or kept");
    assert!(limited.skipped.is_empty());

    // Exactly at the limit is not over it.
    let exact = store
        .intact_range_at_most("front", from, to, footage.frames.len())
        .unwrap();
    assert!(!exact.over_limit);
    assert_eq!(exact.frame_count(), footage.frames.len());
}
