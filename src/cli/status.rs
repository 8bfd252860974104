//! `dashvault status`: what the running recorder last reported.

use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::recorder::STATUS_FILE_NAME;
use crate::status::StatusSnapshot;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
/// show what the running recorder is doing
pub struct StatusArgs {
    /// print the raw JSON
    #[argh(switch)]
    pub json: bool,
    /// data folder (default: the config's data_dir)
    #[argh(option)]
    pub data_dir: Option<PathBuf>,
}

pub fn run(config_path: &Path, args: StatusArgs) -> anyhow::Result<i32> {
    let data_dir = super::data_dir_for(config_path, args.data_dir);
    let path = data_dir.join(STATUS_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "no status at {} ({e}): is `dashvault run` running?",
                path.display()
            );
            return Ok(1);
        }
    };
    if args.json {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(0);
    }
    let s: StatusSnapshot = serde_json::from_slice(&bytes)?;
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(String::from("?"), |d| format!("{} s", d.as_secs()));
    println!(
        "status of {} (written {age} ago, at {})",
        data_dir.display(),
        s.time
    );
    if let Some(p) = &s.config_problem {
        println!("CONFIG PROBLEM: {p}");
    }
    for c in &s.cameras {
        let d = &c.dropped;
        println!(
            "  {} [{}] {}: captured {}, written {} ({} MB), dropped {}/{}/{}/{} \
             (encoder busy/writer busy/encode error/storage error), last sync {} ms ago, {} I/O",
            c.id,
            if c.connected {
                "connected"
            } else {
                "DISCONNECTED"
            },
            c.format,
            c.captured,
            c.written,
            c.written_bytes / 1_000_000,
            d.encoder_busy,
            d.writer_busy,
            d.encode_error,
            d.storage_error,
            c.last_sync_age_ms.map_or("-".into(), |a| a.to_string()),
            c.io_mode,
        );
        if let Some(e) = &c.last_error {
            println!("    last error: {e}");
        }
        for r in &c.recovery {
            println!(
                "    recovered {}: {} frames, {}",
                r.segment, r.frames, r.action
            );
        }
    }
    let st = &s.storage;
    println!(
        "  storage: {} MB used, {} MB free, {} segments deleted by retention, {} failures{}",
        st.used_bytes / 1_000_000,
        st.free_bytes / 1_000_000,
        st.retention_deleted_segments,
        st.retention_failures,
        if st.cap_unreachable {
            ", CAP CANNOT BE MET"
        } else {
            ""
        }
    );
    Ok(0)
}
