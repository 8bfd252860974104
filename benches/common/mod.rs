//! Helpers shared by the benchmarks.

use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `cmd` to the end and returns its peak resident memory (VmHWM) in KiB,
/// sampled every 20 ms.
pub fn peak_rss_kib(mut cmd: Command) -> Option<i64> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            {
                peak = Some(peak.map_or(kib, |p: i64| p.max(kib)));
            }
        }
        if child.try_wait().ok()?.is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
