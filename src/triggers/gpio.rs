//! A push button on a GPIO line, through the GPIO character device
//! (`/dev/gpiochipN`, v2 uAPI; the sysfs interface is deprecated and absent
//! from current kernels). The line is requested as an input with both edges
//! reported and, when wired to ground, the internal pull-up and active-low
//! flags; debouncing happens in [`super::Debouncer`].

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
}

impl GpioButton {
    /// Requests `line` of `chip` as a button input. `active_low`: pressed
    /// pulls the line to ground (the pull-up is enabled).
    pub fn open(chip: &Path, line: u32, active_low: bool) -> std::io::Result<GpioButton> {
        let chip_file = File::open(chip)?;
        let mut flags = GPIO_V2_LINE_FLAG_INPUT
            | GPIO_V2_LINE_FLAG_EDGE_RISING
            | GPIO_V2_LINE_FLAG_EDGE_FALLING;
        if active_low {
            flags |= GPIO_V2_LINE_FLAG_ACTIVE_LOW | GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
        }
        let mut consumer = [0u8; GPIO_MAX_NAME_SIZE];
        consumer[..9].copy_from_slice(b"dashvault");
        let mut offsets = [0u32; GPIO_V2_LINES_MAX];
        offsets[0] = line;
        let mut req = LineRequest {
            offsets,
            consumer,
            config: LineConfig {
                flags,
                num_attrs: 0,
                padding: [0; 5],
                attrs: [LineConfigAttribute::default(); GPIO_V2_LINE_NUM_ATTRS_MAX],
            },
            num_lines: 1,
            event_buffer_size: 0,
            padding: [0; 5],
            fd: -1,
        };
        // SAFETY: `req` is a valid gpio_v2_line_request; the kernel fills `fd`.
        unsafe { gpio_v2_get_line(chip_file.as_raw_fd(), &mut req) }
            .map_err(|e| std::io::Error::other(format!("requesting line {line}: {e}")))?;
        if req.fd < 0 {
            return Err(std::io::Error::other(
                "the kernel returned no line descriptor",
            ));
        }
        // SAFETY: the kernel handed us this new descriptor; we own it now.
        let fd = unsafe { OwnedFd::from_raw_fd(req.fd) };
        Ok(GpioButton {
            chip: chip.to_path_buf(),
            line,
            events: File::from(fd),
        })
    }
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
        format!("button on {} line {}", self.chip.display(), self.line)
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
    fn a_missing_chip_is_a_clear_error() {
        let e = GpioButton::open(Path::new("/dev/gpiochip-none"), 17, true)
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
