//! `dashvault gps`: the GPS receiver as the running service sees it.
//! Exit status: 0 shown, 1 no receiver configured or the service is not
//! answering, 2 the command could not run.

use std::path::Path;
use std::time::Duration;

use argh::FromArgs;

use crate::clock::format_rfc3339_ms;
use crate::status::{GpsSnapshot, StatusSnapshot};

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "gps")]
/// show the GPS receiver's live state: fix, satellites, HDOP, position,
/// speed, and whether its time set the clock. Exit status: 0 shown, 1 no
/// receiver or no service, 2 error
pub struct GpsArgs {
    /// print the raw JSON
    #[argh(switch)]
    pub json: bool,
    /// show it again every second until interrupted
    #[argh(switch)]
    pub watch: bool,
}

pub fn run(config_path: &Path, args: GpsArgs) -> anyhow::Result<i32> {
    loop {
        let code = show_once(config_path, &args)?;
        if !args.watch || code != 0 {
            return Ok(code);
        }
        std::thread::sleep(Duration::from_secs(1));
        println!();
    }
}

fn show_once(config_path: &Path, args: &GpsArgs) -> anyhow::Result<i32> {
    let bytes = match super::status::ask_service(config_path) {
        Ok((_, bytes)) => bytes,
        Err(why) => {
            eprintln!("the service is not answering ({why}); the GPS is read by the service only");
            return Ok(1);
        }
    };
    let s: StatusSnapshot = serde_json::from_slice(&bytes)?;
    let Some(gps) = s.gps else {
        eprintln!("no GPS receiver is configured (add \"gps\": {{}} to the config; see README)");
        return Ok(1);
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&gps)?);
    } else {
        print!(
            "{}",
            describe(&gps, s.clock.as_ref().and_then(|c| c.set_by))
        );
    }
    Ok(0)
}

/// The receiver in lines a person reads on a serial console.
pub fn describe(g: &GpsSnapshot, clock_set_by: Option<crate::timekeeper::TimeAuthority>) -> String {
    let st = &g.state;
    let mut out = String::new();
    let link = match (st.connected, st.baud) {
        (true, Some(b)) => format!("connected at {b} baud"),
        (true, None) => "connected, finding the baud rate".into(),
        (false, _) => "not connected".into(),
    };
    out.push_str(&format!("receiver:   {} ({link})\n", show(&st.device)));
    if let Some(e) = &st.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    let sats = match (st.sats_used, st.sats_in_view) {
        (Some(u), Some(v)) => format!("{u} used, {v} in view"),
        (Some(u), None) => format!("{u} used"),
        (None, Some(v)) => format!("{v} in view"),
        (None, None) => "none yet".into(),
    };
    out.push_str(&format!(
        "fix:        {:?}, satellites {sats}, HDOP {}\n",
        st.quality,
        st.hdop.map_or("-".into(), |h| format!("{h:.2}"))
    ));
    match (st.lat, st.lon) {
        (Some(lat), Some(lon)) => out.push_str(&format!(
            "position:   {lat:.6}, {lon:.6}, altitude {}\n",
            st.alt_m.map_or("-".into(), |a| format!("{a:.1} m"))
        )),
        _ => out.push_str("position:   none\n"),
    }
    out.push_str(&format!(
        "speed:      {}, heading {}\n",
        g.speed
            .map_or("-".into(), |v| format!("{v:.1} {}", g.speed_unit.label())),
        st.heading_deg.map_or("-".into(), |h| format!("{h:.0}°"))
    ));
    out.push_str(&format!(
        "last fix:   {}\n",
        match (st.last_fix_utc_ns, st.last_fix_age_ms) {
            (Some(t), Some(age)) =>
                format!("{} ({:.1} s ago)", format_rfc3339_ms(t), age as f64 / 1e3),
            (Some(t), None) => format_rfc3339_ms(t),
            _ => "none".into(),
        }
    ));
    let c = &st.counters;
    out.push_str(&format!(
        "sentences:  {} read, {} checksum errors, {} garbage, {} not read\n",
        c.sentences_ok, c.checksum_errors, c.garbage, c.unknown
    ));
    let clock = match (clock_set_by, &g.clock_rejection) {
        (Some(crate::timekeeper::TimeAuthority::Gps), _) => "set from GPS".to_string(),
        (_, Some(why)) => format!("not from GPS: {why}"),
        (Some(crate::timekeeper::TimeAuthority::Phone), None) => {
            "set from a phone; GPS corrects it beyond 2 s".into()
        }
        (None, None) => "waiting for agreeing fixes".into(),
    };
    out.push_str(&format!("clock:      {clock}\n"));
    out
}

fn show(device: &str) -> &str {
    if device.is_empty() {
        "(none found yet)"
    } else {
        device
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpeedUnit;
    use crate::gps::{FixQuality, GpsState};
    use crate::timekeeper::TimeAuthority;

    fn snapshot() -> GpsSnapshot {
        GpsSnapshot {
            state: GpsState {
                device: "/dev/ttyACM0".into(),
                connected: true,
                baud: Some(9600),
                quality: FixQuality::Fix3d,
                sats_used: Some(9),
                sats_in_view: Some(15),
                hdop: Some(0.92),
                lat: Some(52.520008),
                lon: Some(13.404954),
                alt_m: Some(34.5),
                speed_mps: Some(13.89),
                heading_deg: Some(87.5),
                last_fix_utc_ns: Some(1_795_168_800_000_000_000),
                last_fix_age_ms: Some(310),
                ..GpsState::default()
            },
            speed_unit: SpeedUnit::Kmh,
            speed: Some(50.0),
            clock_rejection: None,
        }
    }

    #[test]
    fn the_console_shows_fix_satellites_position_speed_and_the_clock() {
        let text = describe(&snapshot(), Some(TimeAuthority::Gps));
        for want in [
            "receiver:   /dev/ttyACM0 (connected at 9600 baud)",
            "fix:        Fix3d, satellites 9 used, 15 in view, HDOP 0.92",
            "position:   52.520008, 13.404954, altitude 34.5 m",
            "speed:      50.0 km/h, heading 88°",
            "last fix:   2026-11-20T10:00:00.000Z (0.3 s ago)",
            "clock:      set from GPS",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let mut g = snapshot();
        g.state = GpsState {
            device: String::new(),
            last_error: Some("no such device".into()),
            ..GpsState::default()
        };
        g.speed = None;
        g.clock_rejection = Some("the receiver marks the fix void (RMC status V)".into());
        let text = describe(&g, None);
        for want in [
            "receiver:   (none found yet) (not connected)",
            "last error: no such device",
            "position:   none",
            "speed:      -, heading -",
            "last fix:   none",
            "clock:      not from GPS: the receiver marks the fix void",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
