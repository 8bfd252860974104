//! The receiver's serial line: a tty in raw mode, read with a timeout, and
//! the search for its baud rate.
//!
//! Every read waits at most the timeout it is given (poll), so the reader
//! thread notices its stop flag promptly; a device that hangs up or vanishes
//! is an error, never a blocked read.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::stat::Mode;
use nix::sys::termios::{
    cfmakeraw, tcflush, tcgetattr, tcsetattr, BaudRate, ControlFlags, FlushArg, SetArg,
    SpecialCharacterIndices,
};

use super::nmea::{classify, Line, LineSplitter};

/// The rates NMEA receivers use, in the order auto-detection tries them:
/// 9600 is the default of u-blox and most modules, 4800 the NMEA 0183
/// standard rate (SiRF, older Garmin), then the faster rates of modules
/// configured for 5-10 Hz.
pub const DETECT_BAUDS: [u32; 6] = [9600, 4800, 38400, 115200, 57600, 19200];

/// How long auto-detection listens at each rate. Receivers print a burst
/// every second, so this sees at least one whole burst.
pub const DETECT_PER_BAUD_MS: u64 = 2_500;

/// Valid sentences that settle a rate. Random bytes at a wrong rate almost
/// never frame one correct checksum; two make it certain.
const DETECT_SENTENCES_NEEDED: u32 = 2;

/// A serial line as the reader needs it. [`TtyPort`] is the real one; tests
/// put a scripted one in its place.
pub trait SerialPort {
    /// Switches the line rate and drops what was received at the old one.
    fn set_baud(&mut self, baud: u32) -> io::Result<()>;
    /// Reads what is available, waiting up to `timeout`. `Ok(0)` means
    /// nothing arrived; end of file or a hang-up is an error.
    fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
}

/// An open tty in raw mode, 8N1, no flow control, modem lines ignored.
pub struct TtyPort {
    fd: OwnedFd,
}

impl TtyPort {
    /// Opens `path` at `baud` (one of [`DETECT_BAUDS`] or 4800..115200).
    pub fn open(path: &Path, baud: u32) -> io::Result<TtyPort> {
        let fd = open(
            path,
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| with_context(e, format!("open {}", path.display())))?;
        let mut port = TtyPort { fd };
        port.configure(baud)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(port)
    }

    fn configure(&mut self, baud: u32) -> io::Result<()> {
        let rate = baud_rate(baud)?;
        let mut t =
            tcgetattr(self.fd.as_fd()).map_err(|e| with_context(e, "not a terminal".into()))?;
        cfmakeraw(&mut t);
        t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
        t.control_flags &= !(ControlFlags::CSTOPB | ControlFlags::CRTSCTS);
        // Non-blocking reads paced by poll, not by the line discipline.
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        // The rate is the CBAUD bits of the control flags, which the kernel
        // reads (input speed 0: the same). Set there rather than through
        // cfsetspeed, whose versioned glibc symbol a static build cannot
        // link.
        t.control_flags &= !ControlFlags::CBAUD;
        t.control_flags |= ControlFlags::from_bits_retain(rate as libc::tcflag_t);
        tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        // Bytes that arrived before raw mode (or at another rate) are noise.
        tcflush(self.fd.as_fd(), FlushArg::TCIFLUSH).map_err(io::Error::from)?;
        Ok(())
    }
}

impl SerialPort for TtyPort {
    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.configure(baud)
    }

    fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return Ok(0),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.contains(PollFlags::POLLNVAL) {
            return Err(io::Error::other("device closed under us"));
        }
        // On hang-up, read what is left; the read then reports the end.
        match nix::unistd::read(self.fd.as_fd(), buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "device hung up (end of file)",
            )),
            Ok(n) => Ok(n),
            Err(nix::errno::Errno::EAGAIN) if !revents.contains(PollFlags::POLLHUP) => Ok(0),
            Err(nix::errno::Errno::EAGAIN) => {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "device hung up"))
            }
            Err(e) => Err(with_context(e, "read".into())),
        }
    }
}

fn with_context(e: nix::errno::Errno, what: String) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// The termios constant for a rate we support.
pub fn baud_rate(baud: u32) -> io::Result<BaudRate> {
    Ok(match baud {
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("baud {baud} is not one of 4800, 9600, 19200, 38400, 57600, 115200"),
            ))
        }
    })
}

/// Tries each rate in `bauds` for up to `per_baud` and returns the first at
/// which `DETECT_SENTENCES_NEEDED` (two) lines with a correct checksum arrive.
/// `Ok(None)` when none does (or `stop` says to give up); an error when the
/// port fails.
pub fn detect_baud(
    port: &mut dyn SerialPort,
    bauds: &[u32],
    per_baud: Duration,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<u32>> {
    let mut buf = [0u8; 512];
    for &baud in bauds {
        port.set_baud(baud)?;
        let mut splitter = LineSplitter::new();
        let mut good = 0u32;
        let deadline = Instant::now() + per_baud;
        loop {
            let now = Instant::now();
            if now >= deadline || stop() {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            let n = port.read_timeout(&mut buf, wait)?;
            splitter.push(&buf[..n], |line| {
                if !matches!(
                    classify(line),
                    Line::ChecksumError { .. } | Line::Garbage(_)
                ) {
                    good += 1;
                }
            });
            if good >= DETECT_SENTENCES_NEEDED {
                return Ok(Some(baud));
            }
        }
        if stop() {
            return Ok(None);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate is written into the control flags, not through cfsetspeed
    /// (whose versioned glibc symbol broke the static aarch64 build): what
    /// the tty reports back is the rate asked for, at every rate.
    #[test]
    fn the_rate_set_without_cfsetspeed_is_the_rate_the_tty_reports() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = nix::unistd::ttyname(&pty.slave).unwrap();
        let mut port = TtyPort::open(&path, 9600).unwrap();
        for baud in [4800, 9600, 19200, 38400, 57600, 115200] {
            port.set_baud(baud).unwrap();
            let t = tcgetattr(port.fd.as_fd()).unwrap();
            assert_eq!(
                nix::sys::termios::cfgetospeed(&t),
                baud_rate(baud).unwrap(),
                "{baud}"
            );
            assert_eq!(nix::sys::termios::cfgetispeed(&t), baud_rate(baud).unwrap());
        }
    }

    /// A receiver talking at `true_baud`: at that rate it reads its NMEA
    /// script, at any other rate noise, as a UART sampling at the wrong rate
    /// would.
    struct ScriptedReceiver {
        true_baud: u32,
        baud: u32,
        tried: Vec<u32>,
        nmea: Vec<u8>,
        pos: usize,
        noise: u32,
    }

    impl ScriptedReceiver {
        fn new(true_baud: u32) -> ScriptedReceiver {
            ScriptedReceiver {
                true_baud,
                baud: 0,
                tried: Vec::new(),
                nmea: b"$GPGGA,,,,,,0,00,99.99,,,,,,*48\r\n$GPGSV,1,1,00*79\r\n\
                        $GPRMC,,V,,,,,,,,,,N*53\r\n"
                    .repeat(4),
                pos: 0,
                noise: 0x1234_5678,
            }
        }
    }

    impl SerialPort for ScriptedReceiver {
        fn set_baud(&mut self, baud: u32) -> io::Result<()> {
            self.baud = baud;
            self.tried.push(baud);
            // Start mid-sentence, as a port opened at a random moment does.
            self.pos = 7;
            Ok(())
        }

        fn read_timeout(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<usize> {
            let n = buf.len().min(16);
            if self.baud == self.true_baud {
                let n = n.min(self.nmea.len() - self.pos);
                buf[..n].copy_from_slice(&self.nmea[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            for b in &mut buf[..n] {
                // xorshift: deterministic noise, with the odd '$' and '\n'.
                self.noise ^= self.noise << 13;
                self.noise ^= self.noise >> 17;
                self.noise ^= self.noise << 5;
                *b = self.noise as u8;
            }
            Ok(n)
        }
    }

    #[test]
    fn detection_picks_the_rate_that_frames_sentences() {
        for true_baud in [9600, 4800, 38400, 19200] {
            let mut rx = ScriptedReceiver::new(true_baud);
            let found =
                detect_baud(&mut rx, &DETECT_BAUDS, Duration::from_millis(30), &|| false).unwrap();
            assert_eq!(found, Some(true_baud));
            let at = DETECT_BAUDS.iter().position(|&b| b == true_baud).unwrap();
            assert_eq!(
                rx.tried,
                DETECT_BAUDS[..=at],
                "tries rates in order, stops at the match"
            );
        }
    }

    #[test]
    fn detection_gives_up_after_every_rate() {
        let mut rx = ScriptedReceiver::new(1200);
        let start = Instant::now();
        let found =
            detect_baud(&mut rx, &DETECT_BAUDS, Duration::from_millis(20), &|| false).unwrap();
        assert_eq!(found, None);
        assert_eq!(rx.tried, DETECT_BAUDS);
        assert!(start.elapsed() < Duration::from_secs(2), "bounded per rate");
    }

    #[test]
    fn detection_stops_when_asked() {
        let mut rx = ScriptedReceiver::new(1200);
        let found = detect_baud(&mut rx, &DETECT_BAUDS, Duration::from_secs(60), &|| true).unwrap();
        assert_eq!(found, None);
        assert_eq!(rx.tried, [9600]);
    }

    #[test]
    fn only_standard_rates() {
        assert!(baud_rate(9600).is_ok());
        assert!(baud_rate(115200).is_ok());
        assert_eq!(
            baud_rate(1200).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
