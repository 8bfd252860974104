//! `dashvault status`: asks the running service on this machine; when it is
//! not answering, reads the status file it left and what is in the store.
//! Exit status: 0 the recorder answered, 1 it did not (what it left is
//! shown), 2 the command could not run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;

use crate::recorder::STATUS_FILE_NAME;
use crate::status::StatusSnapshot;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
/// show what the running recorder is doing. Exit status: 0 the recorder
/// answered, 1 it did not (what it left is shown), 2 error
pub struct StatusArgs {
    /// print the raw JSON
    #[argh(switch)]
    pub json: bool,
    /// data folder (default: the config's data_dir)
    #[argh(option)]
    pub data_dir: Option<PathBuf>,
}

const SERVICE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(config_path: &Path, args: StatusArgs) -> anyhow::Result<i32> {
    let data_dir = super::service::data_dir(config_path, args.data_dir.clone());
    match ask_service(config_path) {
        Ok((addr, bytes)) => {
            if args.json {
                println!("{}", String::from_utf8_lossy(&bytes));
                return Ok(0);
            }
            let s: StatusSnapshot = serde_json::from_slice(&bytes)?;
            println!(
                "live status from the service at http://{addr}/ (up {:.0} s, version {})",
                s.uptime_s, s.version
            );
            print_snapshot(&s);
            return Ok(0);
        }
        Err(why) => eprintln!("the service is not answering ({why}); reading the store instead"),
    }
    let path = data_dir.join(STATUS_FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) if args.json => {
            println!("{}", String::from_utf8_lossy(&bytes));
            return Ok(EXIT_NOT_ANSWERING);
        }
        Ok(bytes) => {
            let s: StatusSnapshot = serde_json::from_slice(&bytes)?;
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map_or(String::from("?"), |d| format!("{} s", d.as_secs()));
            println!(
                "last status the service wrote to {} ({age} ago, at {})",
                path.display(),
                s.time
            );
            print_snapshot(&s);
        }
        Err(e) => println!("no status file at {} ({e})", path.display()),
    }
    print_store(&data_dir)?;
    Ok(EXIT_NOT_ANSWERING)
}

/// What scripts see when the recorder is not running or not answering.
const EXIT_NOT_ANSWERING: i32 = 1;

/// The address and token of the local service, from the config.
pub(super) fn ask_service(config_path: &Path) -> Result<(SocketAddr, Vec<u8>), String> {
    let (addr, token) = super::service::address_and_token(config_path)?;
    let (status, body) =
        http_call(addr, "GET", "/api/status", &token, b"").map_err(|e| format!("{addr}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "{addr} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok((addr, body))
}

/// A one-shot request over HTTP/1.1 with `Connection: close`.
pub fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, SERVICE_TIMEOUT)?;
    s.set_read_timeout(Some(SERVICE_TIMEOUT))?;
    s.set_write_timeout(Some(SERVICE_TIMEOUT))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => Ok((r.code.unwrap_or(0), raw[n..].to_vec())),
        _ => Err(std::io::Error::other("not an HTTP answer")),
    }
}

/// What is stored, per camera, read from the files themselves.
fn print_store(data_dir: &Path) -> anyhow::Result<()> {
    let store = crate::store::Store::on_disk(data_dir);
    let cameras = store.cameras()?;
    if cameras.is_empty() {
        println!("no recordings in {}", data_dir.display());
        return Ok(());
    }
    for camera in cameras {
        let listing = store.segments(&camera)?;
        let (segments, quarantined) = (listing.segments, listing.quarantined);
        let bytes: u64 = segments.iter().map(|s| s.len).sum();
        println!(
            "  {camera}: {} segments, {} MB, newest {}{}",
            segments.len(),
            bytes / 1_000_000,
            segments.last().map_or("-", |s| s.name.as_str()),
            if quarantined.is_empty() {
                String::new()
            } else {
                format!(", {} quarantined", quarantined.len())
            }
        );
    }
    Ok(())
}

fn print_snapshot(s: &StatusSnapshot) {
    if let Some(p) = &s.config_problem {
        match s.config_origin.as_deref() {
            Some("last_good") => {
                println!("CONFIG PROBLEM (recording with the last good config): {p}")
            }
            Some("defaults") => {
                println!("CONFIG PROBLEM (recording with built-in defaults): {p}")
            }
            _ => println!("CONFIG PROBLEM: {p}"),
        }
    }
    if let Some(n) = &s.no_camera {
        println!(
            "  {} (looking for {:.0} s; recording starts by itself when one appears). Check:",
            n.message, n.searching_s
        );
        for c in &n.checks {
            println!("    - {c}");
        }
    }
    if let Some(led) = &s.status_led {
        println!("  status LED: {led}");
    }
    for c in &s.cameras {
        let d = &c.dropped;
        println!(
            "  {} [{}] {}: {:.1} fps, {} viewers, captured {}, written {} ({} MB), dropped {}/{}/{}/{} \
             (encoder busy/writer busy/encode error/storage error), last sync {} ms ago, {} I/O",
            c.id,
            if c.connected {
                "connected"
            } else {
                "DISCONNECTED"
            },
            c.format,
            c.fps,
            c.live_viewers,
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
    if let Some(c) = &s.clock {
        println!(
            "  clock: {}{}",
            c.time,
            if c.estimated {
                " (ESTIMATED: restored after a power cut; set it from the dashboard)"
            } else {
                ""
            }
        );
    }
    for t in &s.triggers {
        println!("  trigger: {t}");
    }
    let st = &s.storage;
    if st.locked_cap_bytes > 0 {
        println!(
            "  locked footage: {} MB of its {} MB cap",
            st.locked_bytes / 1_000_000,
            st.locked_cap_bytes / 1_000_000
        );
    }
    if let Some(m) = &st.locked_message {
        println!("  LOCKED FOOTAGE: {m}");
    }
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
}
