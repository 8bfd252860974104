//! What a `POST` body may be: JSON, sent as `application/json`, or nothing.
//!
//! A page on another site can make a phone send a `POST` without asking the
//! server first only with a form type (`application/x-www-form-urlencoded`,
//! `multipart/form-data`, `text/plain`) or with no type at all (a `fetch`
//! of a bare `Blob`). `application/json` needs a CORS preflight, which this
//! server never grants (no route answers `OPTIONS`). So every `POST`
//! route, the login included, refuses every other type with 415 before
//! credentials are looked at or a handler reads the body; a `POST` without
//! a type is taken only when its body is empty (`/api/logout`, `/api/lock`).

use super::context::ApiError;
use super::server::Request;

const JSON: &str = "application/json";

/// `Ok` when the request's body may be read.
pub fn check(req: &Request) -> Result<(), ApiError> {
    if req.method != "POST" {
        return Ok(());
    }
    match req.header("content-type") {
        Some(value) => {
            let media_type = value.split(';').next().unwrap_or_default().trim();
            if media_type.eq_ignore_ascii_case(JSON) {
                Ok(())
            } else {
                Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type: {media_type:?} is not accepted; send the body as {JSON}"
                )))
            }
        }
        None if req.body.is_empty() => Ok(()),
        None => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type: missing for a body of {} bytes; send the body as {JSON}",
            req.body.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn post(content_type: Option<&str>, body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/api/lock".into(),
            query: Vec::new(),
            headers: content_type
                .map(|t| ("content-type".to_string(), t.to_string()))
                .into_iter()
                .collect(),
            body: body.as_bytes().to_vec(),
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http10: false,
        }
    }

    #[test]
    fn json_or_nothing_passes() {
        for (t, body) in [
            (Some("application/json"), r#"{"source": "dashboard"}"#),
            (Some("Application/JSON; charset=utf-8"), "{}"),
            (Some("application/json"), ""),
            (None, ""),
        ] {
            assert!(check(&post(t, body)).is_ok(), "{t:?} {body:?}");
        }
    }

    #[test]
    fn form_text_and_untyped_bodies_are_415() {
        for (t, body) in [
            (Some("application/x-www-form-urlencoded"), "token=x"),
            (Some("application/x-www-form-urlencoded"), ""),
            (Some("multipart/form-data; boundary=x"), "--x--"),
            (Some("text/plain"), r#"{"source": "dashboard"}"#),
            (Some("text/plain; charset=application/json"), "{}"),
            (Some("application/jsonx"), "{}"),
            (Some(""), "{}"),
            (None, "{}"),
        ] {
            let answer = check(&post(t, body)).unwrap_err().response();
            assert_eq!(answer.status, 415, "{t:?} {body:?}");
        }
    }
}
