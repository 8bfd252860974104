//! The Pi's hardware H.264 encoder, for real. Ignored by default (it needs
//! bcm2835-codec); on a Pi run
//!
//! ```text
//! cargo test --release --test share_hardware -- --ignored --nocapture
//! ```
//!
//! It encodes a moving synthetic picture sequence at two sizes (one whose
//! width the driver pads to a 32-byte stride), checks the access units as
//! they come out, writes each stream to an `.h264` file in the temporary
//! folder and, where ffprobe is installed, has it count the frames.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use dashvault::share::encoder::{EncoderSettings, H264Encoder, Picture};
use dashvault::share::v4l2_m2m::{find_hardware_encoder, nal_types, V4l2M2mEncoder};

const FRAMES: u32 = 90;
const KEYFRAME_INTERVAL: u32 = 30;

/// A gradient with a bright square moving across it, so consecutive
/// pictures differ and a decoder shows motion.
fn picture(width: u32, height: u32, n: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let side = h / 4;
    let (sx, sy) = ((n as usize * 7) % (w - side), (n as usize * 3) % (h - side));
    let mut y = vec![0u8; w * h];
    for r in 0..h {
        for c in 0..w {
            let inside = (sx..sx + side).contains(&c) && (sy..sy + side).contains(&r);
            y[r * w + c] = if inside {
                235
            } else {
                (16 + (c + r) * 200 / (w + h)) as u8
            };
        }
    }
    let u = vec![128u8; (w / 2) * (h / 2)];
    let v = (0..(w / 2) * (h / 2))
        .map(|i| (96 + (i % (w / 2)) * 64 / (w / 2)) as u8)
        .collect();
    (y, u, v)
}

fn encode_to_file(device: &Path, width: u32, height: u32) {
    let settings = EncoderSettings {
        width,
        height,
        fps: 30,
        bitrate_bps: 1_500_000,
        keyframe_interval: KEYFRAME_INTERVAL,
    };
    let mut enc = V4l2M2mEncoder::open(device, settings).expect("open the hardware encoder");
    println!("{}: {width}x{height}", enc.name());
    let started = Instant::now();
    let mut units = Vec::new();
    for n in 0..FRAMES {
        let (y, u, v) = picture(width, height, n);
        let p = Picture {
            width,
            height,
            y: &y,
            u: &u,
            v: &v,
        };
        units.extend(enc.encode(&p).expect("encode"));
    }
    units.extend(enc.finish().expect("finish"));
    let elapsed = started.elapsed();
    assert_eq!(units.len(), FRAMES as usize, "one access unit per picture");
    for (i, u) in units.iter().enumerate() {
        let types = nal_types(&u.data);
        assert!(
            types.iter().any(|t| *t == 1 || *t == 5),
            "unit {i} has no picture: {types:?}"
        );
        if u.keyframe {
            assert!(
                types.contains(&7) && types.contains(&8),
                "key frame {i} lacks SPS/PPS: {types:?}"
            );
        }
    }
    assert!(units[0].keyframe, "the stream starts with a key frame");
    let keys = units.iter().filter(|u| u.keyframe).count();
    let bytes: usize = units.iter().map(|u| u.data.len()).sum();
    println!(
        "{FRAMES} pictures in {:.2} s ({:.1} fps), {keys} key frames, {bytes} bytes",
        elapsed.as_secs_f64(),
        f64::from(FRAMES) / elapsed.as_secs_f64()
    );

    let out = std::env::temp_dir().join(format!("dashvault-hw-{width}x{height}.h264"));
    let stream: Vec<u8> = units.into_iter().flat_map(|u| u.data).collect();
    std::fs::write(&out, &stream).expect("write the .h264 file");
    println!("wrote {}", out.display());

    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&out)
        .output();
    match probe {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            println!("{text}");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(
                o.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(text.contains("codec_name=h264"), "{text}");
            assert!(text.contains(&format!("width={width}")), "{text}");
            assert!(text.contains(&format!("height={height}")), "{text}");
            assert!(text.contains(&format!("nb_read_frames={FRAMES}")), "{text}");
        }
        Err(e) => println!("ffprobe not run ({e}); check {} elsewhere", out.display()),
    }
}

#[test]
#[ignore = "needs the Raspberry Pi's bcm2835-codec encoder"]
fn hardware_encoder_makes_a_stream_ffprobe_reads() {
    let device = find_hardware_encoder()
        .expect("no bcm2835-codec-encode node under /dev/video* (see `v4l2-ctl --list-devices`)");
    encode_to_file(&device, 640, 480);
    // 854 wide: the driver pads the stride to 864.
    encode_to_file(&device, 854, 480);
}
