//! A pseudo-terminal standing in for a GPS receiver's tty, for the tests
//! that feed NMEA to a real `GpsSource` (see docs/gps.md for how it differs
//! from a receiver).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// The test holds the master (the "receiver") and a slave fd (so the slave
/// stays put until the test unplugs it); the source opens `path`.
pub struct Pty {
    pub master: File,
    #[allow(dead_code)] // held open, not read
    pub slave: OwnedFd,
    pub path: PathBuf,
}

pub fn open_pty() -> Pty {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    // Raw from the start: no echo back into the master, no line editing
    // before the source sets the same mode.
    let mut t = tcgetattr(&pty.slave).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).unwrap();
    let path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    Pty {
        master: File::from(pty.master),
        slave: pty.slave,
        path,
    }
}
