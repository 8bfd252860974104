//! `GET /api/clock` and `POST /api/clock`: what the recorder believes the
//! time is, and setting it from a device that knows (a phone).

use serde_json::Value;

use crate::clock::{format_rfc3339_ms, parse_rfc3339};
use crate::timekeeper::TimeAuthority;

use super::answers::{ClockAnswer, ClockSetAnswer};
use super::context::{ApiContext, ApiError};
use super::server::{Request, Response};

fn keeper(ctx: &ApiContext) -> Result<&crate::timekeeper::Timekeeper, ApiError> {
    ctx.timekeeper
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("this service does not manage the clock".into()))
}

pub fn get_clock(ctx: &ApiContext, _: &Request) -> Result<Response, ApiError> {
    let answer = ClockAnswer {
        clock: keeper(ctx)?.report(),
        unix_ms: ctx.clock.wall_ns() / 1_000_000,
    };
    Ok(Response::json(200, &answer).with_header("Cache-Control", "no-store"))
}

/// 2020-01-01: nothing this recorder stores is older.
const EARLIEST_SETTABLE_NS: i64 = 1_577_836_800_000_000_000;
/// 2100-01-01, also the boot scripts' limit for a believable saved time.
const LATEST_SETTABLE_NS: i64 = 4_102_444_800_000_000_000;

/// The time in a request body: `{"time": "<RFC 3339>"}` or `{"unix_ms": n}`.
fn requested_time(body: &[u8]) -> Result<i64, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: not JSON ({e}); send {{\"time\": \"2026-11-21T10:00:00.000Z\"}}"
        ))
    })?;
    let ns = if let Some(t) = v.get("time") {
        let s = t
            .as_str()
            .ok_or_else(|| ApiError::BadRequest("time: must be a string".into()))?;
        parse_rfc3339(s).map_err(|e| ApiError::BadRequest(format!("time: {e}")))?
    } else if let Some(ms) = v.get("unix_ms") {
        let ms = ms
            .as_i64()
            .ok_or_else(|| ApiError::BadRequest("unix_ms: must be an integer".into()))?;
        ms.checked_mul(1_000_000)
            .ok_or_else(|| ApiError::BadRequest("unix_ms: out of range".into()))?
    } else {
        return Err(ApiError::BadRequest(
            "time: missing; send {\"time\": \"2026-11-21T10:00:00.000Z\"} or {\"unix_ms\": …}"
                .into(),
        ));
    };
    // A phone with a wrong clock of its own must not move ours somewhere
    // absurd: the saved time would carry it into every later boot.
    if ns < EARLIEST_SETTABLE_NS {
        return Err(ApiError::BadRequest(format!(
            "time: {} is before 2020; check the phone's clock",
            format_rfc3339_ms(ns)
        )));
    }
    if ns >= LATEST_SETTABLE_NS {
        return Err(ApiError::BadRequest(format!(
            "time: {} is after 2100; check the phone's clock",
            format_rfc3339_ms(ns)
        )));
    }
    Ok(ns)
}

pub fn set_clock(ctx: &ApiContext, req: &Request) -> Result<Response, ApiError> {
    let tk = keeper(ctx)?;
    let wall_ns = requested_time(&req.body)?;
    // The recorder's hooks relabel the incidents and refresh the status.
    let result = tk.set_wall(wall_ns, TimeAuthority::Phone)?;
    Ok(Response::json(200, &ClockSetAnswer::from(&result)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_are_checked() {
        assert_eq!(
            requested_time(br#"{"time": "2026-11-21T10:00:00.250Z"}"#).unwrap(),
            parse_rfc3339("2026-11-21T10:00:00.250Z").unwrap()
        );
        assert_eq!(
            requested_time(br#"{"unix_ms": 1800000000000}"#).unwrap(),
            1_800_000_000_000_000_000
        );
        for (body, field) in [
            (&b"nonsense"[..], "body"),
            (br#"{}"#, "time: missing"),
            (br#"{"time": 5}"#, "time: must"),
            (br#"{"time": "1999-01-01T00:00:00Z"}"#, "before 2020"),
            (br#"{"time": "2100-01-01T00:00:00Z"}"#, "after 2100"),
            (br#"{"time": "9999-12-31T23:59:59Z"}"#, "after 2262"),
            (br#"{"unix_ms": 5680000000000}"#, "after 2100"),
            (br#"{"unix_ms": 9223372036854775807}"#, "out of range"),
            (br#"{"unix_ms": -5}"#, "before 2020"),
            (br#"{"unix_ms": 1.8e12}"#, "must be an integer"),
        ] {
            match requested_time(body) {
                Err(ApiError::BadRequest(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
