//! With the `libcamera` feature and a libcamera outside the system folders
//! (the one `make libcamera` builds into a cache folder), record its library
//! folder as the binaries' run path, so `dashvault` and the tests find
//! libcamera.so without LD_LIBRARY_PATH. Cross builds (Buildroot) link
//! against their sysroot and are left alone.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if std::env::var_os("CARGO_FEATURE_LIBCAMERA").is_none() {
        return;
    }
    let cross = std::env::var("TARGET").ok() != std::env::var("HOST").ok()
        || std::env::var_os("PKG_CONFIG_SYSROOT_DIR").is_some();
    if cross {
        return;
    }
    let Ok(out) = Command::new("pkg-config")
        .args(["--variable=libdir", "libcamera"])
        .output()
    else {
        return;
    };
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let system = ["/usr/lib", "/lib", "/usr/local/lib"]
        .iter()
        .any(|d| libdir == *d || libdir.starts_with(&format!("{d}/")));
    if out.status.success() && !libdir.is_empty() && !system {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libdir}");
    }
}
