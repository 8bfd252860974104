//! The config file on disk: [`load`] and [`check`], [`save`] through
//! [`write_atomic`], the `<name>.legacy` copy kept when a legacy file is
//! rewritten, the `<name>.last-good` copy, and [`load_for_run`], which
//! always gives the recorder a config to start with.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::store::sidecar::{self, Readers};

use super::file::{parse, to_json, ConfigError, LoadedConfig};
use super::{CameraConfig, Config};

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with_bytes(path).map(|(loaded, _)| loaded)
}

/// What `dashvault config check` runs: exactly [`load`], named for intent, so
/// the check and the service can never disagree about a file.
pub fn check(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load(path)
}

fn load_with_bytes(path: &Path) -> Result<(LoadedConfig, Vec<u8>), ConfigError> {
    let bytes = fs::read(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    let loaded = parse(path, &bytes)?;
    Ok((loaded, bytes))
}

/// Writes `config` to `path` atomically. It does not validate: check
/// [`Config::validate`] first when the config did not come from [`load`].
pub fn save(path: &Path, config: &Config) -> io::Result<()> {
    write_atomic(path, &to_json(config)?)
}

/// Stores a config that [`load`] migrated from the legacy form back to its
/// file in the new form. The original is kept as `<name>.legacy` (only the
/// first time, so a second migration never replaces the true original).
/// Returns the backup's path.
pub fn rewrite_migrated(path: &Path, config: &Config) -> io::Result<PathBuf> {
    let backup = with_suffix(path, ".legacy");
    if !backup.exists() {
        write_atomic(&backup, &fs::read(path)?)?;
    }
    save(path, config)?;
    Ok(backup)
}

/// `<path>.last-good`: the newest file content that loaded.
pub fn last_good_path(path: &Path) -> PathBuf {
    with_suffix(path, ".last-good")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replaces a file beside the config ([`sidecar::replace_file`]), readable
/// by the owner only: it can hold the dashboard's token.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    sidecar::replace_file(path, Readers::Owner, |out| out.write_all(bytes))
}

/// Where the config the service runs with came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// There was no file; a default one was written.
    Created,
    /// The file loaded.
    File,
    /// The file failed to load; `<path>.last-good` was used instead.
    LastGood,
    /// Neither loaded; built-in defaults with the synthetic camera.
    Defaults,
}

/// The config `dashvault run` starts with, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub config: Config,
    pub origin: ConfigOrigin,
    /// Why the file was not used (origin `LastGood` or `Defaults`).
    pub problem: Option<ConfigError>,
    /// The file was in the legacy form and has been rewritten in the new one.
    pub migrated_legacy: bool,
}

/// Loads the config for the recorder, which must start whatever the file
/// says: a dash cam with a typo in its config should still record.
///
/// - No file: write a default one whose cameras are `discover()`, or the
///   synthetic test camera when that finds none (origin `Created`).
/// - The file loads: use it and refresh `<path>.last-good` when its content
///   changed (origin `File`). A legacy file is rewritten in the new form, the
///   original kept as `<path>.legacy`.
/// - The file fails but `<path>.last-good` loads: use that (origin
///   `LastGood`, `problem` says what is wrong with the file).
/// - Both fail: built-in defaults with the synthetic camera (origin
///   `Defaults`). The broken file is left as it is for the user to fix.
///
/// Failures to write (a read-only card) are logged and do not stop the start.
pub fn load_for_run(path: &Path, discover: impl FnOnce() -> Vec<CameraConfig>) -> RunConfig {
    match load_with_bytes(path) {
        Ok((loaded, mut bytes)) => {
            let config = loaded.config;
            if loaded.migrated_legacy {
                match rewrite_migrated(path, &config).and_then(|b| Ok((b, to_json(&config)?))) {
                    Ok((backup, new_bytes)) => {
                        log::info!(
                            "config {}: migrated legacy config to the multi-camera form; original kept as {}",
                            path.display(),
                            backup.display()
                        );
                        bytes = new_bytes;
                    }
                    Err(e) => log::warn!(
                        "config {}: migrated legacy config in memory but could not rewrite the file: {e}",
                        path.display()
                    ),
                }
            }
            if let Err(e) = refresh_last_good(path, &bytes) {
                log::warn!(
                    "config {}: cannot write {}: {e}",
                    path.display(),
                    last_good_path(path).display()
                );
            }
            RunConfig {
                config,
                origin: ConfigOrigin::File,
                problem: None,
                migrated_legacy: loaded.migrated_legacy,
            }
        }
        Err(e) if e.is_not_found() => {
            let found = discover();
            let mut config = Config {
                cameras: if found.is_empty() {
                    Config::default().cameras
                } else {
                    found
                },
                ..Config::default()
            };
            if let Err(problems) = config.validate() {
                // Never write a config that would not load again.
                for p in &problems {
                    log::warn!("config {}: discovered camera rejected: {p}", path.display());
                }
                config.cameras.clear();
            }
            if config.cameras.is_empty() {
                config.cameras = vec![CameraConfig::synthetic("front")];
            }
            let written = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
                _ => Ok(()),
            }
            .and_then(|()| save(path, &config));
            match written {
                Ok(()) => log::info!("config {}: created a default config", path.display()),
                Err(e) => log::warn!(
                    "config {}: no config and cannot write a default one: {e}",
                    path.display()
                ),
            }
            RunConfig {
                config,
                origin: ConfigOrigin::Created,
                problem: None,
                migrated_legacy: false,
            }
        }
        Err(problem) => {
            let last_good = last_good_path(path);
            let fallback = if last_good.exists() {
                load(&last_good).map_err(|lg| {
                    log::warn!("{lg}");
                })
            } else {
                Err(())
            };
            match fallback {
                Ok(loaded) => {
                    log::warn!("{problem}\nusing {}", last_good.display());
                    RunConfig {
                        config: loaded.config,
                        origin: ConfigOrigin::LastGood,
                        problem: Some(problem),
                        migrated_legacy: false,
                    }
                }
                Err(()) => {
                    log::warn!("{problem}\nusing built-in defaults");
                    RunConfig {
                        config: Config::default(),
                        origin: ConfigOrigin::Defaults,
                        problem: Some(problem),
                        migrated_legacy: false,
                    }
                }
            }
        }
    }
}

fn refresh_last_good(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let last_good = last_good_path(path);
    match fs::read(&last_good) {
        Ok(old) if old == bytes => Ok(()),
        _ => write_atomic(&last_good, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::*;
    use crate::config::{ConfigErrorKind, SourceKind};

    #[test]
    fn missing_file_is_unreadable_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("nope.json")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.problems[0].field, "file");
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let mut rear = CameraConfig::synthetic("rear");
        rear.source = SourceKind::V4l2;
        rear.device = "/dev/video1".into();
        rear.rotation = 180;
        rear.mjpeg_quality = Some(8);
        rear.jpeg_quality = 70;
        rear.bitrate = Some(1024);
        rear.pixel_format = Some("mjpeg".into());
        rear.enabled = false;
        let config = Config {
            port: 9999,
            bind: "0.0.0.0".into(),
            storage_cap_gb: 1.5,
            data_dir: PathBuf::from("/srv/cam"),
            auth_token: Some("5f4dcc3b5aa765d61d8327deb882cf99".into()),
            cameras: vec![CameraConfig::synthetic("front"), rear],
            ..Config::default()
        };
        save(&path, &config).unwrap();
        assert!(!with_suffix(&path, ".tmp").exists());
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.config, config);
        assert!(!loaded.migrated());
        assert_eq!(check(&path).unwrap().config, config);
        // The file is pretty JSON ending in a newline.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"port\": 9999,"), "{text}");
        assert!(text.ends_with("}\n"));
        // Saving again replaces the file.
        save(&path, &Config::default()).unwrap();
        assert_eq!(load(&path).unwrap().config, Config::default());
    }

    fn discovered() -> Vec<CameraConfig> {
        let mut cam = CameraConfig::synthetic("usb0");
        cam.name = "USB camera".into();
        cam.source = SourceKind::V4l2;
        cam.device = "/dev/video0".into();
        vec![cam]
    }

    #[test]
    fn load_for_run_creates_a_config_with_discovered_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc").join("config.json");
        let run = load_for_run(&path, discovered);
        assert_eq!(run.origin, ConfigOrigin::Created);
        assert!(run.problem.is_none());
        assert_eq!(run.config.cameras, discovered());
        assert_eq!(load(&path).unwrap().config, run.config);
    }

    #[test]
    fn load_for_run_creates_a_synthetic_camera_when_none_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.origin, ConfigOrigin::Created);
        assert_eq!(run.config.cameras, vec![CameraConfig::synthetic("front")]);
        assert_eq!(load(&path).unwrap().config, run.config);
    }

    #[test]
    fn load_for_run_never_writes_invalid_discovered_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let run = load_for_run(&path, || vec![CameraConfig::synthetic("Bad Id")]);
        assert_eq!(run.origin, ConfigOrigin::Created);
        assert_eq!(run.config.cameras, vec![CameraConfig::synthetic("front")]);
        assert_eq!(load(&path).unwrap().config, run.config);
    }

    #[test]
    fn load_for_run_uses_a_good_file_and_writes_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, DASH_OF_PI_EXAMPLE).unwrap();
        let run = load_for_run(&path, || panic!("no discovery for an existing file"));
        assert_eq!(run.origin, ConfigOrigin::File);
        assert!(run.problem.is_none());
        assert!(!run.migrated_legacy);
        assert_eq!(run.config.cameras.len(), 2);
        let last_good = last_good_path(&path);
        assert_eq!(last_good, dir.path().join("config.json.last-good"));
        assert_eq!(fs::read_to_string(&last_good).unwrap(), DASH_OF_PI_EXAMPLE);
        // An edit that loads replaces the last-good copy.
        let edited = DASH_OF_PI_EXAMPLE.replace("\"port\": 8080", "\"port\": 8090");
        fs::write(&path, &edited).unwrap();
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.config.port, 8090);
        assert_eq!(fs::read_to_string(&last_good).unwrap(), edited);
    }

    #[test]
    fn load_for_run_falls_back_to_last_good_and_leaves_the_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, DASH_OF_PI_EXAMPLE).unwrap();
        let good = load_for_run(&path, Vec::new).config;

        let broken = "{\"port\": 8080,, }";
        fs::write(&path, broken).unwrap();
        let run = load_for_run(&path, || panic!("no discovery for an existing file"));
        assert_eq!(run.origin, ConfigOrigin::LastGood);
        assert_eq!(run.config, good);
        let problem = run.problem.expect("the broken file is reported");
        assert_eq!(problem.path, path);
        assert_eq!(problem.kind, ConfigErrorKind::Syntax);
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
        assert_eq!(
            fs::read_to_string(last_good_path(&path)).unwrap(),
            DASH_OF_PI_EXAMPLE
        );
    }

    #[test]
    fn load_for_run_uses_defaults_when_nothing_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let broken = r#"{"cameras": [{"id": "front", "fps": 0}]}"#;
        fs::write(&path, broken).unwrap();
        let run = load_for_run(&path, || panic!("no discovery for an existing file"));
        assert_eq!(run.origin, ConfigOrigin::Defaults);
        assert_eq!(run.config, Config::default());
        assert_eq!(run.config.cameras[0].source, SourceKind::Synthetic);
        let problem = run.problem.expect("the broken file is reported");
        assert_eq!(problem.problems[0].field, "cameras[0].fps");
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
        assert!(!last_good_path(&path).exists());

        // A broken last-good copy also ends in the defaults.
        fs::write(last_good_path(&path), "not json").unwrap();
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.origin, ConfigOrigin::Defaults);
        assert!(run.problem.is_some());
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
    }

    #[test]
    fn load_for_run_rewrites_a_legacy_file_and_keeps_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, LEGACY_EXAMPLE).unwrap();
        let run = load_for_run(&path, Vec::new);
        assert_eq!(run.origin, ConfigOrigin::File);
        assert!(run.migrated_legacy);
        assert_eq!(run.config.cameras[0].id, "default");
        let backup = dir.path().join("config.json.legacy");
        assert_eq!(fs::read_to_string(&backup).unwrap(), LEGACY_EXAMPLE);
        let rewritten = load(&path).unwrap();
        assert!(!rewritten.migrated(), "the file is now in the new form");
        assert_eq!(rewritten.config, run.config);
        assert_eq!(
            fs::read(last_good_path(&path)).unwrap(),
            to_json(&run.config).unwrap()
        );
        // Loading again changes nothing and keeps the true original backup.
        let again = load_for_run(&path, Vec::new);
        assert!(!again.migrated_legacy);
        assert_eq!(again.config, run.config);
        assert_eq!(fs::read_to_string(&backup).unwrap(), LEGACY_EXAMPLE);
    }
}
