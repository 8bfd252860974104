//! `dashvault cameras`: every camera this machine offers, with what to put
//! in the config to record it.

use std::path::Path;

use argh::FromArgs;

use crate::camera::v4l2;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cameras")]
/// list the cameras found (libcamera and V4L2) with their ids and modes
pub struct CamerasArgs {
    /// print the config entries of the cameras found, as JSON (the
    /// recorder's search runs this in a fresh process: see camera::search)
    #[argh(switch)]
    pub json: bool,
}

pub fn run(_config_path: &Path, args: CamerasArgs) -> anyhow::Result<i32> {
    if args.json {
        quiet_libcamera();
        println!(
            "{}",
            serde_json::to_string(&crate::camera::discover_cameras())?
        );
        return Ok(0);
    }
    let mut total = 0;
    println!("libcamera:");
    total += print_libcamera();
    println!("V4L2:");
    let devices = v4l2::discover();
    if devices.is_empty() {
        println!("  no capture device under /dev/video*");
    }
    for d in &devices {
        total += 1;
        println!("  {} ({}, {})", d.device, d.card, d.driver);
        println!(
            "    config: \"source\": \"v4l2\", \"device\": \"{}\"",
            d.device
        );
        for (format, sizes) in &d.formats {
            println!("    {format}: {}", sizes_text(sizes));
        }
    }
    if total == 0 {
        println!("no camera found; see docs/camera.md (\"No camera found\")");
    }
    Ok(if total == 0 { 1 } else { 0 })
}

/// libcamera logs each camera it adds at INFO level, which would
/// interleave with the output; a user's own setting wins. No other thread
/// runs yet, so changing the environment is safe here.
fn quiet_libcamera() {
    if std::env::var_os("LIBCAMERA_LOG_LEVELS").is_none() {
        std::env::set_var("LIBCAMERA_LOG_LEVELS", "*:WARN");
    }
}

#[cfg(feature = "libcamera")]
fn print_libcamera() -> usize {
    quiet_libcamera();
    match crate::camera::libcamera::list() {
        Err(e) => {
            println!("  {e}");
            0
        }
        Ok((version, cameras)) => {
            if cameras.is_empty() {
                println!("  libcamera {version} finds no camera");
            }
            for c in &cameras {
                let uvc = crate::camera::is_uvc_camera_id(&c.id);
                println!(
                    "  {} ({}){}",
                    c.id,
                    if c.model.is_empty() {
                        "no model"
                    } else {
                        &c.model
                    },
                    if uvc {
                        ": a USB webcam, record it through V4L2"
                    } else {
                        ""
                    }
                );
                if !uvc {
                    println!(
                        "    config: \"source\": \"libcamera\", \"device\": \"{}\"",
                        c.id
                    );
                }
                for (format, sizes) in &c.modes {
                    println!("    {format}: {}", sizes_text(sizes));
                }
            }
            cameras.len()
        }
    }
}

#[cfg(not(feature = "libcamera"))]
fn print_libcamera() -> usize {
    println!("  not available: {}", crate::camera::NO_LIBCAMERA);
    0
}

fn sizes_text(sizes: &[(u32, u32)]) -> String {
    if sizes.is_empty() {
        return "any size".into();
    }
    let list: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
    list.join(" ")
}
