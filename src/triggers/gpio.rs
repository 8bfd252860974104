//! A push button on a GPIO line, through the GPIO character device
//! (`/dev/gpiochipN`, v2 uAPI; the sysfs interface is deprecated and absent
//! from current kernels). The line is requested as an input with both edges
//! reported and, when wired to ground, the internal pull-up and active-low
//! flags. The debounce period is asked of the kernel too (the line's
//! debounce attribute, done by the GPIO controller or else by the kernel
//! itself since Linux 5.10); if the request with it is refused, the line
//! is requested without it. Either way [`super::Debouncer`] filters the
//! edges again, so a kernel that ignores the attribute still gives one
//! press per press.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ButtonEdge, ButtonInput};

const GPIO_V2_LINES_MAX: usize = 64;
const GPIO_MAX_NAME_SIZE: usize = 32;
const GPIO_V2_LINE_NUM_ATTRS_MAX: usize = 10;

const GPIO_V2_LINE_FLAG_ACTIVE_LOW: u64 = 1 << 1;
const GPIO_V2_LINE_FLAG_INPUT: u64 = 1 << 2;
const GPIO_V2_LINE_FLAG_EDGE_RISING: u64 = 1 << 4;
const GPIO_V2_LINE_FLAG_EDGE_FALLING: u64 = 1 << 5;
const GPIO_V2_LINE_FLAG_BIAS_PULL_UP: u64 = 1 << 8;
const GPIO_V2_LINE_EVENT_RISING_EDGE: u32 = 1;
const GPIO_V2_LINE_ATTR_ID_DEBOUNCE: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LineAttribute {
    id: u32,
    padding: u32,
    value: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LineConfigAttribute {
    attr: LineAttribute,
    mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct LineConfig {
    flags: u64,
    num_attrs: u32,
    padding: [u32; 5],
    attrs: [LineConfigAttribute; GPIO_V2_LINE_NUM_ATTRS_MAX],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct LineRequest {
    offsets: [u32; GPIO_V2_LINES_MAX],
    consumer: [u8; GPIO_MAX_NAME_SIZE],
    config: LineConfig,
    num_lines: u32,
    event_buffer_size: u32,
    padding: [u32; 5],
    fd: i32,
}

/// `struct gpio_v2_line_event`.
const LINE_EVENT_BYTES: usize = 48;

nix::ioctl_readwrite!(gpio_v2_get_line, 0xB4, 0x07, LineRequest);

/// One requested line.
pub struct GpioButton {
    chip: PathBuf,
    line: u32,
    events: File,
    /// The kernel debounces the line (the attribute was accepted).
    kernel_debounce_us: Option<u32>,
}

/// The request for `line` as a button input; `debounce_us` adds the
/// kernel debounce attribute for it.
fn line_request(line: u32, active_low: bool, debounce_us: Option<u32>) -> LineRequest {
    let mut flags =
        GPIO_V2_LINE_FLAG_INPUT | GPIO_V2_LINE_FLAG_EDGE_RISING | GPIO_V2_LINE_FLAG_EDGE_FALLING;
    if active_low {
        flags |= GPIO_V2_LINE_FLAG_ACTIVE_LOW | GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
    }
    let mut consumer = [0u8; GPIO_MAX_NAME_SIZE];
    consumer[..9].copy_from_slice(b"dashvault");
    let mut offsets = [0u32; GPIO_V2_LINES_MAX];
    offsets[0] = line;
    let mut config = LineConfig {
        flags,
        num_attrs: 0,
        padding: [0; 5],
        attrs: [LineConfigAttribute::default(); GPIO_V2_LINE_NUM_ATTRS_MAX],
    };
    if let Some(us) = debounce_us {
        config.attrs[0] = LineConfigAttribute {
            attr: LineAttribute {
                id: GPIO_V2_LINE_ATTR_ID_DEBOUNCE,
                padding: 0,
                // `debounce_period_us` is the u32 at the start of the union.
                value: debounce_union_value(us),
            },
            // Bit 0: the first (only) line of the request.
            mask: 1,
        };
        config.num_attrs = 1;
    }
    LineRequest {
        offsets,
        consumer,
        config,
        num_lines: 1,
        event_buffer_size: 0,
        padding: [0; 5],
        fd: -1,
    }
}

/// The union's 8 bytes with `debounce_period_us` in its first 4.
fn debounce_union_value(us: u32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&us.to_ne_bytes());
    u64::from_ne_bytes(bytes)
}

impl GpioButton {
    /// Requests `line` of `chip` as a button input. `active_low`: pressed
    /// pulls the line to ground (the pull-up is enabled). `debounce` is
    /// asked of the kernel, and dropped if the kernel refuses it.
    pub fn open(
        chip: &Path,
        line: u32,
        active_low: bool,
        debounce: Duration,
    ) -> std::io::Result<GpioButton> {
        let chip_file = File::open(chip)?;
        let us = u32::try_from(debounce.as_micros()).unwrap_or(u32::MAX);
        let (fd, kernel_debounce_us) = match request_line(&chip_file, line, active_low, Some(us)) {
            Ok(fd) => (fd, Some(us)),
            Err(e) => {
                log::info!(
                    "{}: line {line} without kernel debounce ({e}); debouncing in software",
                    chip.display()
                );
                (request_line(&chip_file, line, active_low, None)?, None)
            }
        };
        Ok(GpioButton {
            chip: chip.to_path_buf(),
            line,
            events: File::from(fd),
            kernel_debounce_us,
        })
    }
}

fn request_line(
    chip: &File,
    line: u32,
    active_low: bool,
    debounce_us: Option<u32>,
) -> std::io::Result<OwnedFd> {
    let mut req = line_request(line, active_low, debounce_us);
    // SAFETY: `req` is a valid gpio_v2_line_request; the kernel fills `fd`.
    unsafe { gpio_v2_get_line(chip.as_raw_fd(), &mut req) }
        .map_err(|e| std::io::Error::other(format!("requesting line {line}: {e}")))?;
    if req.fd < 0 {
        return Err(std::io::Error::other(
            "the kernel returned no line descriptor",
        ));
    }
    // SAFETY: the kernel handed us this new descriptor; we own it now.
    Ok(unsafe { OwnedFd::from_raw_fd(req.fd) })
}

impl ButtonInput for GpioButton {
    fn next_edge(&mut self, timeout: Duration) -> std::io::Result<Option<ButtonEdge>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
        let mut fds = [PollFd::new(self.events.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(ms)).map_err(std::io::Error::from)?;
        if ready == 0 {
            return Ok(None);
        }
        let mut ev = [0u8; LINE_EVENT_BYTES];
        self.events.read_exact(&mut ev)?;
        let at_ns = u64::from_ne_bytes(ev[0..8].try_into().expect("8 bytes"));
        let id = u32::from_ne_bytes(ev[8..12].try_into().expect("4 bytes"));
        // With ACTIVE_LOW the kernel reports edges of the logical level.
        Ok(Some(ButtonEdge {
            pressed: id == GPIO_V2_LINE_EVENT_RISING_EDGE,
            at_ns,
        }))
    }

    fn describe(&self) -> String {
        let debounce = match self.kernel_debounce_us {
            Some(us) => format!("kernel debounce {} ms", us / 1000),
            None => "software debounce only".to_string(),
        };
        format!(
            "button on {} line {} ({debounce})",
            self.chip.display(),
            self.line
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uapi_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<LineAttribute>(), 16);
        assert_eq!(std::mem::size_of::<LineConfigAttribute>(), 24);
        assert_eq!(std::mem::size_of::<LineConfig>(), 272);
        assert_eq!(std::mem::size_of::<LineRequest>(), 592);
    }

    #[test]
    fn the_debounce_period_goes_to_the_kernel_as_a_line_attribute() {
        let plain = line_request(17, true, None);
        assert_eq!(plain.config.num_attrs, 0);
        assert_eq!(plain.offsets[0], 17);
        assert_eq!(plain.num_lines, 1);
        let req = line_request(17, true, Some(30_000));
        assert_eq!(req.config.flags, plain.config.flags);
        assert_eq!(req.config.num_attrs, 1);
        let a = req.config.attrs[0];
        assert_eq!((a.attr.id, a.mask), (GPIO_V2_LINE_ATTR_ID_DEBOUNCE, 1));
        // The kernel reads `debounce_period_us`, the union's first u32.
        // SAFETY: reading the plain-old-data attribute as bytes.
        let bytes: [u8; 16] = unsafe { std::mem::transmute(a.attr) };
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 30_000);
        assert_eq!(&bytes[12..16], &[0; 4]);
    }

    #[test]
    fn a_missing_chip_is_a_clear_error() {
        let e = GpioButton::open(
            Path::new("/dev/gpiochip-none"),
            17,
            true,
            Duration::from_millis(30),
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
