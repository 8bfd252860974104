//! `dashvault config check`: validate a config file without recording.
//! `dashvault config get`: print one setting, for shell scripts (the
//! appliance image reads its hotspot settings this way).
//! `dashvault config init`: write a config from defaults given on the
//! command line, a settings file and the cameras found on this machine.

use std::path::Path;

use argh::FromArgs;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
/// configuration tools
pub struct ConfigArgs {
    #[argh(subcommand)]
    pub action: ConfigAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ConfigAction {
    Check(CheckArgs),
    Get(GetArgs),
    Init(InitArgs),
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "init")]
/// write a new config: the settings in --from, then the values given here
/// for what they leave out; cameras from --from, else those of the config
/// being replaced, else the ones found on this machine (none with
/// --discover-cameras: the recorder finds them while running)
pub struct InitArgs {
    /// settings file whose values win (e.g. /boot/dashvault.json)
    #[argh(option)]
    pub from: Option<std::path::PathBuf>,
    /// dashboard address unless the settings set `bind`
    #[argh(option)]
    pub bind: Option<String>,
    /// dashboard port unless the settings set `port`
    #[argh(option)]
    pub port: Option<u16>,
    /// recordings folder unless the settings set `data_dir`
    #[argh(option)]
    pub data_dir: Option<std::path::PathBuf>,
    /// record every camera found while running unless the settings set
    /// `discover_cameras` (the appliance)
    #[argh(switch)]
    pub discover_cameras: bool,
    /// LED showing the recorder's state unless the settings set `status_led`
    #[argh(option)]
    pub status_led: Option<String>,
    /// GPS receiver (a tty, or `auto` for whichever USB receiver is plugged
    /// in) unless the settings set `gps` (`"gps": null` for none)
    #[argh(option)]
    pub gps: Option<String>,
    /// replace an existing config (it is kept when the new one is invalid)
    #[argh(switch)]
    pub replace: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "get")]
/// print one setting of a valid config (e.g. `port`, `wifi.ssid`); exits 1
/// when it is not set, 2 when the config does not load
pub struct GetArgs {
    /// the setting, with dots between nested names
    #[argh(positional)]
    pub key: String,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
/// validate the config file and report every problem
pub struct CheckArgs {}

pub fn run(config_path: &Path, args: ConfigArgs) -> anyhow::Result<i32> {
    match args.action {
        ConfigAction::Check(CheckArgs {}) => check(config_path),
        ConfigAction::Get(GetArgs { key }) => get(config_path, &key),
        ConfigAction::Init(args) => init(config_path, args),
    }
}

fn init(config_path: &Path, args: InitArgs) -> anyhow::Result<i32> {
    use serde_json::{Map, Value};
    if !args.replace && config_path.exists() {
        eprintln!(
            "{} already exists; pass --replace to overwrite it",
            config_path.display()
        );
        return Ok(1);
    }
    let mut settings: Map<String, Value> = match &args.from {
        Some(from) => {
            // Validated on its own first, so errors name the file the user wrote.
            if let Err(e) = crate::config::check(from) {
                eprintln!("{e}");
                return Ok(1);
            }
            match serde_json::from_slice(&std::fs::read(from)?)? {
                Value::Object(map) => map,
                _ => anyhow::bail!("{}: not a JSON object", from.display()),
            }
        }
        None => Map::new(),
    };
    let mut fallback = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            settings.entry(key).or_insert(v);
        }
    };
    fallback("bind", args.bind.map(Value::from));
    fallback("port", args.port.map(Value::from));
    fallback(
        "data_dir",
        args.data_dir.map(|d| Value::from(d.to_string_lossy())),
    );
    if args.discover_cameras {
        fallback("discover_cameras", Some(Value::Bool(true)));
    }
    fallback("status_led", args.status_led.map(Value::from));
    fallback(
        "gps",
        args.gps
            .map(|device| serde_json::json!({ "device": device })),
    );
    let legacy_camera = ["camera_device", "video_res_width", "video_fps"]
        .iter()
        .any(|k| settings.contains_key(*k));
    if !settings.contains_key("cameras") && !legacy_camera {
        // A settings file without cameras never drops the ones the config
        // being replaced records (configured, or found and kept earlier).
        // With discovery the test pattern is never carried over: it is only
        // recorded when a settings file asks for it by name.
        let discovering = settings.get("discover_cameras") == Some(&Value::Bool(true));
        let existing = crate::config::load(config_path)
            .ok()
            .map(|l| l.config.cameras)
            .map(|mut cameras| {
                if discovering {
                    cameras.retain(|c| c.source != crate::config::SourceKind::Synthetic);
                }
                cameras
            })
            .filter(|c| !c.is_empty());
        let cameras = match existing {
            Some(cameras) => cameras,
            None if discovering => Vec::new(),
            None => crate::camera::discover_cameras(),
        };
        if !cameras.is_empty() || discovering {
            settings.insert("cameras".into(), serde_json::to_value(cameras)?);
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(settings))?;
    let loaded = match crate::config::parse(config_path, &bytes) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    if let Some(dir) = config_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    crate::config::save(config_path, &loaded.config)?;
    println!(
        "{}: written ({} camera(s))",
        config_path.display(),
        loaded.config.cameras.len()
    );
    Ok(0)
}

fn get(config_path: &Path, key: &str) -> anyhow::Result<i32> {
    let loaded = match crate::config::check(config_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let mut value = serde_json::to_value(&loaded.config)?;
    for part in key.split('.') {
        value = match value {
            serde_json::Value::Object(mut map) => map.remove(part).unwrap_or_default(),
            serde_json::Value::Array(mut items) => match part.parse::<usize>() {
                Ok(i) if i < items.len() => items.swap_remove(i),
                _ => serde_json::Value::Null,
            },
            _ => serde_json::Value::Null,
        };
    }
    match value {
        serde_json::Value::Null => {
            eprintln!("{key}: not set in {}", config_path.display());
            Ok(1)
        }
        serde_json::Value::String(s) => {
            println!("{s}");
            Ok(0)
        }
        other => {
            println!("{other}");
            Ok(0)
        }
    }
}

fn check(config_path: &Path) -> anyhow::Result<i32> {
    match crate::config::check(config_path) {
        Ok(loaded) => {
            let enabled = loaded.config.cameras.iter().filter(|c| c.enabled).count();
            println!(
                "{}: OK ({} camera(s), {} enabled{})",
                config_path.display(),
                loaded.config.cameras.len(),
                enabled,
                if loaded.migrated_legacy {
                    "; legacy single-camera form, migrated when `run` starts"
                } else {
                    ""
                }
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}
