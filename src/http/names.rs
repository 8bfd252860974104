//! Names from the card (camera folders, segment files) in the headers and
//! URLs the server writes. Configured camera ids are `[a-z0-9_-]`, but a
//! recordings folder or a segment file copied onto the card may be named
//! anything the filesystem allows: quotes, spaces, `&`, `#`, non-ASCII
//! letters, even CR and LF, which would end a header line and start another.
//! Such names go into a header or URL only through this module.

/// A `Content-Disposition` that saves the answer as `file_name`: the
/// name in a safe ASCII set (letters, digits, `-`, `_`, `.`; anything else
/// becomes `_`), plus the name itself as `filename*` (RFC 6266) when it had
/// anything else.
pub fn attachment(file_name: &str) -> String {
    let safe: String = file_name
        .chars()
        .map(|c| if is_safe(c) { c } else { '_' })
        .collect();
    if safe == file_name {
        format!("attachment; filename=\"{safe}\"")
    } else {
        format!(
            "attachment; filename=\"{safe}\"; filename*=UTF-8''{}",
            percent_encode(file_name)
        )
    }
}

fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Every byte of `s` but ASCII letters, digits, `-`, `_`, `.` and `~` as
/// `%XX`: fit for a URL's path or query, and for a header value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept_and_others_get_a_safe_name_and_the_original() {
        assert_eq!(
            attachment("front_20261121T100000Z.mjpeg"),
            "attachment; filename=\"front_20261121T100000Z.mjpeg\""
        );
        assert_eq!(
            attachment("Frönt \"cam\"\r\nSet-Cookie: a=b.jpg"),
            "attachment; filename=\"Fr_nt__cam___Set-Cookie__a_b.jpg\"; \
             filename*=UTF-8''Fr%C3%B6nt%20%22cam%22%0D%0ASet-Cookie%3A%20a%3Db.jpg"
        );
    }

    #[test]
    fn encoded_names_decode_back_and_hold_nothing_a_url_or_header_reads() {
        for name in ["a&b=c#d?e/f g+h%i", "ünï\r\n\"'`<>", "plain-name_1.dvr~"] {
            let encoded = percent_encode(name);
            assert!(encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            let decoded: String = form_urlencoded::parse(format!("n={encoded}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned();
            assert_eq!(decoded, name);
        }
    }
}
