//! `dashvault lock`: protects the footage around now, like the dashboard's
//! lock button, by asking the running service.

use std::path::Path;

use argh::FromArgs;
use serde_json::Value;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "lock")]
/// protect the footage around now from being overwritten (an incident).
/// Exit status: 0 locked, 1 the recorder refused or is not answering, 2
/// error
pub struct LockArgs {
    /// print the raw JSON
    #[argh(switch)]
    pub json: bool,
}

pub fn run(config_path: &Path, args: LockArgs) -> anyhow::Result<i32> {
    let (addr, token) = match super::service::address_and_token(config_path) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("cannot reach the recorder: {why}");
            return Ok(1);
        }
    };
    let (status, body) = match super::status::http_call(
        addr,
        "POST",
        "/api/lock",
        &token,
        br#"{"source": "console"}"#,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("the recorder at {addr} is not answering ({e}); nothing was locked");
            return Ok(1);
        }
    };
    if status != 200 {
        eprintln!(
            "the recorder refused ({status}): {}",
            String::from_utf8_lossy(&body)
        );
        return Ok(1);
    }
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(0);
    }
    let v: Value = serde_json::from_slice(&body)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    println!(
        "incident {}: protecting {} .. {} (UTC){}",
        s("id"),
        s("from"),
        s("to"),
        if v["estimated"] == Value::Bool(true) {
            ", times estimated"
        } else {
            ""
        }
    );
    if let Some(exports) = v["exports"].as_array() {
        for e in exports {
            println!(
                "  export: http://{addr}{}",
                e["url"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(0)
}
