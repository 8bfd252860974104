//! `dashvault config get` and `dashvault config init`, run as the real
//! binary the way the appliance's boot scripts and the install script run
//! them: exit codes, what is printed, and what is (not) written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dashvault(config: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_dashvault"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("DASHVAULT_CONFIG")
        .output()
        .expect("dashvault runs");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn get(config: &Path, key: &str) -> Run {
    dashvault(config, &["config", "get", key])
}

/// The value `config get` prints for `key`, asserting it succeeded.
fn value(config: &Path, key: &str) -> String {
    let r = get(config, key);
    assert_eq!(r.code, 0, "config get {key}: {}", r.stderr);
    r.stdout.trim_end_matches('\n').to_string()
}

/// Settings with a camera, so `init` does not look for real ones and the
/// result is the same on every machine.
const SETTINGS: &str = r#"{
  "cameras": [{ "id": "front", "source": "synthetic", "res_width": 320, "res_height": 240, "fps": 5 }],
  "wifi": { "ssid": "car cam", "password": "correct horse", "country": "DE" },
  "port": 9000
}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// File names in `dir`, sorted (to show nothing else was left behind).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn init_args<'a>(from: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["config", "init", "--from", from];
    args.extend_from_slice(extra);
    args
}

#[test]
fn init_takes_settings_first_then_options_for_what_they_leave_out() {
    let dir = tempfile::tempdir().unwrap();
    let from = write(dir.path(), "settings.json", SETTINGS);
    // In a folder that does not exist yet, as on a fresh data partition.
    let config = dir.path().join("state/dashvault.json");
    let r = dashvault(
        &config,
        &init_args(
            from.to_str().unwrap(),
            &["--bind", "0.0.0.0", "--port", "80", "--data-dir", "/data"],
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("written (1 camera(s))"), "{}", r.stdout);

    assert_eq!(value(&config, "port"), "9000", "the settings file wins");
    assert_eq!(value(&config, "bind"), "0.0.0.0", "options fill the rest");
    assert_eq!(value(&config, "data_dir"), "/data");
    assert_eq!(value(&config, "cameras.0.id"), "front");
    assert_eq!(value(&config, "cameras.0.fps"), "5");
    // Strings print bare, spaces included, for `x=$(dashvault config get ...)`.
    assert_eq!(value(&config, "wifi.ssid"), "car cam");
    assert_eq!(value(&config, "wifi.password"), "correct horse");
    // The written file is a valid config on its own.
    let check = dashvault(&config, &["config", "check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
}

#[test]
fn init_without_a_settings_file_uses_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dashvault.json");
    let r = dashvault(
        &config,
        &["config", "init", "--bind", "127.0.0.1", "--port", "8099"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(value(&config, "bind"), "127.0.0.1");
    assert_eq!(value(&config, "port"), "8099");
    // No settings file: no hotspot settings either.
    assert_eq!(get(&config, "wifi.ssid").code, 1);
}

#[test]
fn init_refuses_to_overwrite_without_replace() {
    let dir = tempfile::tempdir().unwrap();
    let from = write(dir.path(), "settings.json", SETTINGS);
    let config = dir.path().join("dashvault.json");
    let first = dashvault(&config, &init_args(from.to_str().unwrap(), &[]));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = std::fs::read(&config).unwrap();

    let changed = write(
        dir.path(),
        "settings.json",
        &SETTINGS.replace("9000", "9001"),
    );
    let r = dashvault(&config, &init_args(changed.to_str().unwrap(), &[]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--replace"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&config).unwrap(), before, "config untouched");

    let r = dashvault(
        &config,
        &init_args(changed.to_str().unwrap(), &["--replace"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(value(&config, "port"), "9001");
}

/// A settings file with a mistake: the error names the file and what is
/// wrong in it, and neither a new config nor an existing one is touched.
fn assert_broken_settings_rejected(settings: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let from = write(dir.path(), "settings.json", settings);
    let from_str = from.to_str().unwrap();

    // First boot: no config yet, and none is written.
    let config = dir.path().join("dashvault.json");
    let r = dashvault(&config, &init_args(from_str, &["--port", "80"]));
    assert_eq!(r.code, 1, "{settings}: {}", r.stdout);
    assert!(r.stderr.contains(from_str), "names the file: {}", r.stderr);
    for e in expected {
        assert!(r.stderr.contains(e), "{settings}: no {e:?} in {}", r.stderr);
    }
    assert_eq!(names(dir.path()), ["settings.json"], "nothing written");

    // Later boot with --replace: the config in use stays as it was.
    let good = write(dir.path(), "good.json", SETTINGS);
    let ok = dashvault(&config, &init_args(good.to_str().unwrap(), &[]));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let before = std::fs::read(&config).unwrap();
    let r = dashvault(&config, &init_args(from_str, &["--replace"]));
    assert_eq!(r.code, 1);
    for e in expected {
        assert!(r.stderr.contains(e), "{settings}: no {e:?} in {}", r.stderr);
    }
    assert_eq!(
        std::fs::read(&config).unwrap(),
        before,
        "config in use kept"
    );
    assert_eq!(
        names(dir.path()),
        ["dashvault.json", "good.json", "settings.json"],
        "no half-written file left"
    );
}

#[test]
fn init_from_a_file_that_is_not_json_names_line_and_column() {
    assert_broken_settings_rejected(
        // A comma missing at the end of line 2.
        "{\n  \"port\": 80\n  \"bind\": \"0.0.0.0\"\n}\n",
        &["line 3, column"],
    );
}

#[test]
fn init_from_a_file_with_a_bad_value_names_the_setting() {
    assert_broken_settings_rejected(
        r#"{ "wifi": { "ssid": "car", "password": "short" } }"#,
        &["wifi.password"],
    );
    assert_broken_settings_rejected(r#"{ "port": "eighty" }"#, &["port"]);
}

#[test]
fn init_from_a_file_with_a_misspelt_setting_names_it() {
    assert_broken_settings_rejected(
        r#"{ "wifi": { "ssid": "car", "pasword": "12345678" } }"#,
        &["pasword"],
    );
}

#[test]
fn init_from_a_missing_file_says_it_cannot_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-settings.json");
    let config = dir.path().join("dashvault.json");
    let r = dashvault(&config, &init_args(missing.to_str().unwrap(), &[]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no-such-settings.json") && r.stderr.contains("cannot read"),
        "{}",
        r.stderr
    );
    assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing written");
}

#[test]
fn get_of_an_unknown_or_unset_key_exits_1_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "dashvault.json", SETTINGS);
    for key in [
        "no_such_setting",
        "wifi.no_such_field",
        "cameras.7.id",
        "port.x",
    ] {
        let r = get(&config, key);
        assert_eq!(r.code, 1, "{key}: {}", r.stdout);
        assert_eq!(r.stdout, "", "{key}: nothing on stdout");
        assert!(r.stderr.contains(key), "{key}: {}", r.stderr);
    }
    // Known but not set in this file.
    let r = get(&config, "wifi.channel");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("wifi.channel: not set"), "{}", r.stderr);
}

#[test]
fn get_from_a_broken_or_missing_config_exits_2_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "dashvault.json", r#"{ "port": 0x50 }"#);
    let r = get(&config, "port");
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("dashvault.json") && r.stderr.contains("line 1"),
        "{}",
        r.stderr
    );

    let r = get(&dir.path().join("missing.json"), "port");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.json"), "{}", r.stderr);
}

/// The appliance's boot settings: no cameras, as a user writes them.
const SETTINGS_WITHOUT_CAMERAS: &str = r#"{
  "wifi": { "ssid": "car cam", "password": "correct horse", "country": "DE" }
}"#;

#[test]
fn init_with_discovery_writes_no_camera_and_never_the_test_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let from = write(dir.path(), "settings.json", SETTINGS_WITHOUT_CAMERAS);
    let config = dir.path().join("dashvault.json");
    let r = dashvault(
        &config,
        &init_args(
            from.to_str().unwrap(),
            &["--discover-cameras", "--status-led", "ACT"],
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(value(&config, "discover_cameras"), "true");
    assert_eq!(value(&config, "status_led"), "ACT");
    assert_eq!(
        value(&config, "cameras"),
        "[]",
        "found while running instead"
    );
    let check = dashvault(&config, &["config", "check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
}

/// The appliance reads whichever USB GPS receiver is plugged in unless the
/// boot partition's settings say otherwise (another tty, or none).
#[test]
fn init_with_gps_auto_reads_any_receiver_unless_the_settings_choose() {
    let dir = tempfile::tempdir().unwrap();
    let from = write(dir.path(), "settings.json", SETTINGS_WITHOUT_CAMERAS);
    let config = dir.path().join("dashvault.json");
    let r = dashvault(
        &config,
        &init_args(
            from.to_str().unwrap(),
            &["--discover-cameras", "--gps", "auto"],
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(value(&config, "gps.device"), "auto");
    assert_eq!(value(&config, "gps.speed_unit"), "kmh");
    let chosen = write(
        dir.path(),
        "uart.json",
        r#"{"gps": {"device": "/dev/ttyAMA0", "baud": 9600, "speed_unit": "mph"}}"#,
    );
    let r = dashvault(
        &config,
        &init_args(
            chosen.to_str().unwrap(),
            &["--discover-cameras", "--gps", "auto", "--replace"],
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(value(&config, "gps.device"), "/dev/ttyAMA0");
    assert_eq!(value(&config, "gps.baud"), "9600");
    let none = write(dir.path(), "none.json", r#"{"gps": null}"#);
    let r = dashvault(
        &config,
        &init_args(
            none.to_str().unwrap(),
            &["--discover-cameras", "--gps", "auto", "--replace"],
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let get = dashvault(&config, &["config", "get", "gps"]);
    assert_eq!(get.code, 1, "no GPS: {}", get.stdout);
}

#[test]
fn applying_boot_settings_without_cameras_keeps_the_configured_cameras() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "dashvault.json",
        r#"{"discover_cameras": true, "cameras": [
            {"id": "front", "source": "v4l2", "device": "/dev/video0", "fps": 15},
            {"id": "test", "source": "synthetic"}]}"#,
    );
    let from = write(dir.path(), "settings.json", SETTINGS_WITHOUT_CAMERAS);
    let r = dashvault(
        &config,
        &init_args(from.to_str().unwrap(), &["--replace", "--discover-cameras"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        value(&config, "wifi.ssid"),
        "car cam",
        "the settings applied"
    );
    assert_eq!(value(&config, "cameras.0.device"), "/dev/video0");
    assert_eq!(
        value(&config, "cameras.0.fps"),
        "15",
        "with its own settings"
    );
    // The test pattern is dropped: with discovery it only records when a
    // settings file names it.
    assert_eq!(get(&config, "cameras.1").code, 1);
}

#[test]
fn a_bad_status_led_name_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let from = write(
        dir.path(),
        "settings.json",
        r#"{"status_led": "../../power/state", "discover_cameras": true}"#,
    );
    let config = dir.path().join("dashvault.json");
    let r = dashvault(&config, &init_args(from.to_str().unwrap(), &[]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("status_led"), "{}", r.stderr);
    assert!(!config.exists());
}
