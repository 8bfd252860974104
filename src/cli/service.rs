//! How commands find the running recorder. `dashvault run` publishes, beside
//! the config, its process id, the address its dashboard really listens on
//! and the data folder it records to; `status`, `lock` and `token rotate`
//! read that instead of guessing from the config, which may be broken (the
//! recorder then runs on the last good copy) or name a port another program
//! holds.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config;
use crate::http::auth::TOKEN_FILE_NAME;

pub const RUNNING_FILE_NAME: &str = "dashvault.running.json";

/// What a running recorder says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub pid: u32,
    /// Where the dashboard listens; `None` when it could not start.
    pub address: Option<SocketAddr>,
    /// Why the dashboard is off, when it is.
    pub dashboard_off: Option<String>,
    pub data_dir: PathBuf,
}

/// What the file beside a config says about its recorder.
#[derive(Debug, PartialEq)]
pub enum Published {
    Running(Running),
    /// The file names a process that is gone (a power cut, a kill -9).
    Gone(Running),
    Absent,
}

/// The folder of the config file, where the token and this file live.
pub fn config_dir(config_path: &Path) -> &Path {
    config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn running_file(config_path: &Path) -> PathBuf {
    config_dir(config_path).join(RUNNING_FILE_NAME)
}

/// Written atomically, so a reader never sees half of it.
pub fn publish(config_path: &Path, running: &Running) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(running).map_err(io::Error::other)?;
    config::write_atomic(&running_file(config_path), &bytes)
}

/// Removes the file if this process wrote it (a newer recorder may have
/// replaced it).
pub fn withdraw(config_path: &Path) {
    let path = running_file(config_path);
    if let Published::Running(r) | Published::Gone(r) = read(config_path) {
        if r.pid == std::process::id() {
            if let Err(e) = std::fs::remove_file(&path) {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

pub fn read(config_path: &Path) -> Published {
    let Ok(bytes) = std::fs::read(running_file(config_path)) else {
        return Published::Absent;
    };
    let Ok(running) = serde_json::from_slice::<Running>(&bytes) else {
        return Published::Absent;
    };
    if process_exists(running.pid) {
        Published::Running(running)
    } else {
        Published::Gone(running)
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Where to connect to reach a server listening on `addr`: a wildcard
/// address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// The config as the recorder runs it: the file, else its last good copy,
/// else the defaults.
fn config_in_use(config_path: &Path) -> config::Config {
    config::load(config_path)
        .or_else(|_| config::load(&config::last_good_path(config_path)))
        .map(|l| l.config)
        .unwrap_or_default()
}

/// Where the local recorder's dashboard listens and the token it wants.
/// The address is the one the recorder published when it is running;
/// otherwise the config's, for a recorder that could not publish (a
/// read-only config folder).
pub fn address_and_token(config_path: &Path) -> Result<(SocketAddr, String), String> {
    let config = config_in_use(config_path);
    let addr = match read(config_path) {
        Published::Running(Running {
            address: Some(a), ..
        }) => reachable(a),
        Published::Running(Running {
            pid,
            address: None,
            dashboard_off,
            ..
        }) => {
            return Err(format!(
                "the recorder (process {pid}) runs with its dashboard off: {}",
                dashboard_off.as_deref().unwrap_or("no reason given")
            ))
        }
        Published::Gone(_) | Published::Absent => {
            let ip = config
                .bind
                .parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            reachable(SocketAddr::new(ip, config.port))
        }
    };
    Ok((addr, token_of(config_path, config)?))
}

/// The dashboard token the recorder uses: the config's `auth_token`, else
/// the token file beside the config.
pub fn token(config_path: &Path) -> Result<String, String> {
    token_of(config_path, config_in_use(config_path))
}

fn token_of(config_path: &Path, config: config::Config) -> Result<String, String> {
    if let Some(t) = config.auth_token {
        return Ok(t);
    }
    let dir = config_dir(config_path);
    std::fs::read_to_string(dir.join(TOKEN_FILE_NAME))
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("no token file in {}: {e}", dir.display()))
}

/// The data folder: `--data-dir`, else the running (or last) recorder's,
/// else the config's as the recorder would run it.
pub fn data_dir(config_path: &Path, explicit: Option<PathBuf>) -> PathBuf {
    if let Some(d) = explicit {
        return d;
    }
    match read(config_path) {
        Published::Running(r) | Published::Gone(r) => r.data_dir,
        Published::Absent => config_in_use(config_path).resolved_data_dir(config_path),
    }
}

/// The unit speeds are shown in: the config's `gps.speed_unit`, km/h
/// without one.
pub fn speed_unit(config_path: &Path) -> config::SpeedUnit {
    config_in_use(config_path).speed_unit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pid: u32, data_dir: &Path) -> Running {
        Running {
            pid,
            address: Some("0.0.0.0:8123".parse().unwrap()),
            dashboard_off: None,
            data_dir: data_dir.to_path_buf(),
        }
    }

    #[test]
    fn a_running_recorder_is_found_at_its_published_address_not_the_configs() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("dashvault.json");
        // The config names another port, and does not even load.
        std::fs::write(&config_path, r#"{"port": 9999, "#).unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE_NAME), "abc\n").unwrap();
        let data = dir.path().join("elsewhere");
        publish(&config_path, &running(std::process::id(), &data)).unwrap();
        let (addr, token) = address_and_token(&config_path).unwrap();
        assert_eq!(addr, "127.0.0.1:8123".parse().unwrap());
        assert_eq!(token, "abc");
        assert_eq!(data_dir(&config_path, None), data);
        withdraw(&config_path);
        assert_eq!(read(&config_path), Published::Absent);
    }

    #[test]
    fn a_recorder_that_is_gone_is_told_from_a_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("dashvault.json");
        // A process that has exited: its id is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let r = running(pid, dir.path());
        publish(&config_path, &r).unwrap();
        assert_eq!(read(&config_path), Published::Gone(r));
        // Someone else's file is not removed.
        withdraw(&config_path);
        assert!(matches!(read(&config_path), Published::Gone(_)));
    }

    #[test]
    fn a_dashboard_that_is_off_is_named_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("dashvault.json");
        let mut r = running(std::process::id(), dir.path());
        r.address = None;
        r.dashboard_off = Some("cannot listen on 0.0.0.0:80: Address in use".into());
        publish(&config_path, &r).unwrap();
        let e = address_and_token(&config_path).unwrap_err();
        assert!(e.contains("dashboard off: cannot listen"), "{e}");
    }
}
