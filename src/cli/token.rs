//! `dashvault token show`: the dashboard token, for the owner at the
//! console (the dashboard never shows it: a page that did would hand it to
//! anyone holding an unlocked phone). `dashvault token rotate`: a new one.
//! The running service makes it when it answers (so it ends its sessions at
//! once); when none answers, the token file is replaced here and the next
//! start reads it.

use std::io::ErrorKind;
use std::path::Path;

use argh::FromArgs;
use serde_json::{json, Value};

use crate::http::auth::{fingerprint, rotate_token_file, TokenHome, TOKEN_FILE_NAME};

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "token")]
/// the dashboard's access token
pub struct TokenArgs {
    #[argh(subcommand)]
    pub action: TokenAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum TokenAction {
    Show(ShowArgs),
    Rotate(RotateArgs),
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
/// print the dashboard token (to type on a new phone). Exit status: 0
/// printed, 1 there is none yet (the recorder makes it at its first start)
pub struct ShowArgs {}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rotate")]
/// make a new token, save it in dashvault.token beside the config, and end
/// every dashboard session and signed link
pub struct RotateArgs {}

pub fn run(config_path: &Path, args: TokenArgs) -> anyhow::Result<i32> {
    match args.action {
        TokenAction::Show(_) => Ok(show(config_path)),
        TokenAction::Rotate(_) => rotate(config_path),
    }
}

fn show(config_path: &Path) -> i32 {
    match super::service::token(config_path) {
        Ok(token) => {
            println!("{token}");
            eprintln!(
                "fingerprint {} (the log names the token by it)",
                fingerprint(&token)
            );
            0
        }
        Err(why) => {
            eprintln!("{why}; the recorder makes one at its first start");
            1
        }
    }
}

/// Whether the config file sets `auth_token`, read even from a file that
/// does not load (a token too weak to load is still the user's to change).
fn set_in_config(config_path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(config_path) else {
        return false;
    };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("auth_token")?.as_str().map(|t| !t.trim().is_empty()))
        .unwrap_or(false)
}

fn rotate(config_path: &Path) -> anyhow::Result<i32> {
    if set_in_config(config_path) {
        eprintln!(
            "the token is set by auth_token in {}; rotate it there: put a new random value of 32 or more hex digits (openssl rand -hex 16), or delete auth_token to use {TOKEN_FILE_NAME}, then restart",
            config_path.display()
        );
        return Ok(1);
    }
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = dir.join(TOKEN_FILE_NAME);
    if let Ok((addr, current)) = super::service::address_and_token(config_path) {
        let body = json!({ "token": current }).to_string();
        match super::status::http_call(addr, "POST", "/api/auth/rotate", &current, body.as_bytes())
        {
            Ok((200, answer)) => {
                let v: Value = serde_json::from_slice(&answer)?;
                let token = v["token"].as_str().unwrap_or_default();
                println!("new token: {token}");
                println!(
                    "saved in {} by the recorder at {addr}; every dashboard session has ended",
                    file.display()
                );
                return Ok(0);
            }
            Ok((status, answer)) => {
                eprintln!(
                    "the recorder at {addr} refused ({status}): {}; nothing was changed",
                    String::from_utf8_lossy(&answer)
                );
                return Ok(1);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => {
                eprintln!("the recorder at {addr} is not answering ({e}); nothing was changed");
                return Ok(1);
            }
        }
    }
    // No recorder running: the next start reads the new file.
    match rotate_token_file(&TokenHome::File(file.clone())) {
        Ok(token) => {
            println!("new token: {token}");
            println!(
                "saved in {} (fingerprint {}); the recorder uses it from its next start",
                file.display(),
                fingerprint(&token)
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}
