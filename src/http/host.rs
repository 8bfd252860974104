//! The names the server answers to (`Host`), checked before routing and
//! before credentials, for every route.
//!
//! On the hotspot the Pi's DNS answers every name with the Pi. A web page
//! the phone opens at `http://evil.example/` can therefore have its own name
//! resolve to 192.168.4.1 a moment later (DNS rebinding): the browser then
//! sends the page's requests to the recorder as same-origin ones, able to
//! read the answers, and names `evil.example` in `Host`. Answering only to
//! names the recorder really has leaves such a page nothing, not even the
//! login page or `/health`:
//!
//! - an IP address (IPv4, or IPv6 in brackets): a page can only be at an
//!   address if it came from the recorder;
//! - `localhost`, which browsers resolve to the phone itself, never by DNS;
//! - the machine's host name and `<host name>.local`;
//! - the names in the config's `hostnames`.
//!
//! The port is ignored. An HTTP/1.1 request without `Host`, with two, or
//! with one that is not a host is answered 400 (RFC 9112, 3.2); HTTP/1.0
//! clients may leave it out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Config;

use super::context::ApiError;
use super::server::Request;

/// At most this many of the machine's addresses are named in a 421.
const ADDRESSES_NAMED_MAX: usize = 3;

/// What a `Host` value names, without its port.
#[derive(Debug, PartialEq, Eq)]
enum HostName<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// `Ok` when the request names this recorder; else the answer to give.
pub fn check(req: &Request, config: &Config) -> Result<(), ApiError> {
    let mut values = req
        .headers
        .iter()
        .filter(|(k, _)| k == "host")
        .map(|(_, v)| v.as_str());
    let value = match (values.next(), values.next()) {
        (None, _) if req.http10 => return Ok(()),
        (None, _) => {
            return Err(ApiError::BadRequest(
                "Host: missing; HTTP/1.1 requests name the host they are for".into(),
            ))
        }
        (Some(_), Some(_)) => return Err(ApiError::BadRequest("Host: sent twice".into())),
        (Some(v), None) => v,
    };
    let Some((host, port)) = split_host(value) else {
        return Err(ApiError::BadRequest(format!(
            "Host: {value:?} is not a host name or address"
        )));
    };
    let name = match host {
        HostName::Ip(_) => return Ok(()),
        HostName::Name(name) => name,
    };
    let machine = machine_name();
    if is_own_name(name, machine.as_deref(), &config.hostnames) {
        return Ok(());
    }
    let urls = working_urls(config, machine.as_deref(), port);
    Err(ApiError::MisdirectedRequest(format!(
        "this recorder does not answer to the name '{name}'; open {}",
        urls.join(" or ")
    )))
}

/// Splits `host[:port]` and checks both parts; `None` when it is not one.
fn split_host(value: &str) -> Option<(HostName<'_>, &str)> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = if after.is_empty() {
            after
        } else {
            after.strip_prefix(':')?
        };
        (HostName::Ip(ip.into()), port)
    } else {
        let (host, port) = value.rsplit_once(':').unwrap_or((value, ""));
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if host.is_empty() || !host.bytes().all(plain) {
            return None;
        }
        match host.parse::<Ipv4Addr>() {
            Ok(ip) => (HostName::Ip(ip.into()), port),
            Err(_) => (HostName::Name(host), port),
        }
    };
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, port))
}

fn is_own_name(name: &str, machine: Option<&str>, configured: &[String]) -> bool {
    // A name may end in the root's dot (`dashcam.home.`).
    let name = name.strip_suffix('.').unwrap_or(name);
    let is = |own: &str| name.eq_ignore_ascii_case(own);
    if is("localhost") || configured.iter().any(|h| is(h)) {
        return true;
    }
    machine.is_some_and(|m| is(m) || is(&format!("{m}.local")))
}

/// The machine's host name, read for each request that needs it, so a
/// name set after start (the appliance sets it at boot) is the one used.
fn machine_name() -> Option<String> {
    let name = nix::unistd::gethostname().ok()?.into_string().ok()?;
    (!name.is_empty() && name != "(none)").then_some(name)
}

/// URLs that reach this recorder, for the 421 message: its addresses, then
/// its names. `port` is the one the client used.
fn working_urls(config: &Config, machine: Option<&str>, port: &str) -> Vec<String> {
    let port = match port {
        "" | "80" => String::new(),
        p => format!(":{p}"),
    };
    let mut hosts: Vec<String> = match config.bind.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => interface_addresses()
            .iter()
            .take(ADDRESSES_NAMED_MAX)
            .map(IpAddr::to_string)
            .collect(),
        Ok(IpAddr::V6(ip)) => vec![format!("[{ip}]")],
        Ok(ip) => vec![ip.to_string()],
        Err(_) => Vec::new(),
    };
    if hosts.is_empty() {
        hosts.push("127.0.0.1".into());
    }
    hosts.extend(machine.map(str::to_string));
    hosts.extend(config.hostnames.iter().cloned());
    hosts.iter().map(|h| format!("http://{h}{port}/")).collect()
}

/// The machine's IPv4 addresses other than loopback, sorted.
fn interface_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that stays valid
    // until freeifaddrs, which is called once below; every node and address
    // pointer is checked for null before it is read, and an address is read
    // as `sockaddr_in` only when its family says it is one.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut node = list;
        while let Some(ifa) = node.as_ref() {
            if let Some(addr) = ifa.ifa_addr.as_ref() {
                if i32::from(addr.sa_family) == libc::AF_INET {
                    let v4 = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                    if !ip.is_loopback() {
                        found.push(IpAddr::V4(ip));
                    }
                }
            }
            node = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(http10: bool, hosts: &[&str]) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: Vec::new(),
            headers: hosts
                .iter()
                .map(|h| ("host".into(), h.to_string()))
                .collect(),
            body: Vec::new(),
            peer: IpAddr::V4(Ipv4Addr::new(192, 168, 4, 20)),
            http10,
        }
    }

    fn status(config: &Config, http10: bool, hosts: &[&str]) -> u16 {
        match check(&request(http10, hosts), config) {
            Ok(()) => 200,
            Err(e) => e.response().status,
        }
    }

    #[test]
    fn addresses_localhost_and_own_names_are_answered() {
        let config = Config {
            hostnames: vec!["dashcam.home".into()],
            ..Config::default()
        };
        let machine = machine_name().unwrap_or_else(|| "localhost".into());
        for host in [
            "192.168.4.1",
            "192.168.4.1:8080",
            "[::1]",
            "[fe80::1]:80",
            "localhost",
            "LOCALHOST:8080",
            "dashcam.home",
            "Dashcam.Home.:80",
            &machine,
            &format!("{machine}.local"),
            &format!("{}.LOCAL:8080", machine.to_uppercase()),
        ] {
            assert_eq!(status(&config, false, &[host]), 200, "{host}");
        }
    }

    #[test]
    fn other_names_are_misdirected_and_broken_hosts_are_bad() {
        let config = Config::default();
        for host in [
            "evil.example",
            "evil.example:8080",
            "192.168.4.1.evil.example",
            "localhost.evil.example",
            "local",
            "127.1",
        ] {
            assert_eq!(status(&config, false, &[host]), 421, "{host}");
        }
        for host in [
            "",
            ":80",
            "::1",
            "[::1",
            "[::1]x",
            "[evil.example]",
            "a:b",
            "a:123456",
            "user@evil.example",
            "evil.example/",
            "a b",
        ] {
            assert_eq!(status(&config, false, &[host]), 400, "{host:?}");
        }
    }

    #[test]
    fn host_is_required_once_from_http11_but_not_from_http10() {
        let config = Config::default();
        assert_eq!(status(&config, false, &[]), 400);
        assert_eq!(status(&config, true, &[]), 200);
        assert_eq!(status(&config, true, &["evil.example"]), 421);
        assert_eq!(status(&config, false, &["127.0.0.1", "127.0.0.1"]), 400);
    }

    #[test]
    fn a_misdirected_request_is_told_where_the_recorder_is() {
        let config = Config {
            bind: "192.168.4.1".into(),
            hostnames: vec!["dashcam.home".into()],
            ..Config::default()
        };
        let answer = check(&request(false, &["evil.example:8080"]), &config)
            .unwrap_err()
            .response();
        let super::super::server::Body::Bytes(body) = answer.body else {
            panic!("a JSON body")
        };
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("http://192.168.4.1:8080/"), "{text}");
        assert!(text.contains("http://dashcam.home:8080/"), "{text}");
        assert!(text.contains("'evil.example'"), "{text}");
    }

    #[test]
    fn listening_on_every_address_names_the_machines_own() {
        let config = Config {
            bind: "0.0.0.0".into(),
            ..Config::default()
        };
        let urls = working_urls(&config, Some("dashvault"), "80");
        assert_eq!(urls.last().map(String::as_str), Some("http://dashvault/"));
        let addresses = &urls[..urls.len() - 1];
        assert!(
            (1..=ADDRESSES_NAMED_MAX).contains(&addresses.len()),
            "{urls:?}"
        );
        for url in addresses {
            let ip = url
                .strip_prefix("http://")
                .and_then(|u| u.strip_suffix('/'))
                .and_then(|u| u.parse::<Ipv4Addr>().ok());
            assert!(ip.is_some(), "{url}");
        }
    }
}
