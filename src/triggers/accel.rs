//! G-sensor: an I2C accelerometer read through `/dev/i2c-N` (the i2c-dev
//! driver), polled at a fixed rate. Two common parts are supported:
//! - MPU-6050 (address 0x68 or 0x69): woken from sleep, ±4 g range,
//!   8192 LSB/g, big-endian registers from 0x3B;
//! - ADXL345 (address 0x53 or 0x1D): measuring, full resolution ±16 g,
//!   256 LSB/g, little-endian registers from 0x32.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AccelInput, AccelSample};
use crate::clock::{Clock, SystemClock};

const I2C_SLAVE: u64 = 0x0703;
nix::ioctl_write_int_bad!(i2c_set_slave, I2C_SLAVE);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelPart {
    Mpu6050,
    Adxl345,
}

impl AccelPart {
    pub fn default_address(self) -> u16 {
        match self {
            AccelPart::Mpu6050 => 0x68,
            AccelPart::Adxl345 => 0x53,
        }
    }

    /// Register writes that start measuring.
    fn setup(self) -> &'static [[u8; 2]] {
        match self {
            // PWR_MGMT_1 = 0 (wake), ACCEL_CONFIG = ±4 g.
            AccelPart::Mpu6050 => &[[0x6B, 0x00], [0x1C, 0x08]],
            // DATA_FORMAT = full resolution ±16 g, BW_RATE = 100 Hz, POWER_CTL = measure.
            AccelPart::Adxl345 => &[[0x31, 0x0B], [0x2C, 0x0A], [0x2D, 0x08]],
        }
    }

    fn data_register(self) -> u8 {
        match self {
            AccelPart::Mpu6050 => 0x3B,
            AccelPart::Adxl345 => 0x32,
        }
    }

    /// Converts the six data bytes to g.
    pub fn decode(self, b: &[u8; 6]) -> [f32; 3] {
        let mut out = [0f32; 3];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = [b[2 * i], b[2 * i + 1]];
            *o = match self {
                AccelPart::Mpu6050 => i16::from_be_bytes(pair) as f32 / 8192.0,
                AccelPart::Adxl345 => i16::from_le_bytes(pair) as f32 / 256.0,
            };
        }
        out
    }
}

pub struct I2cAccelerometer {
    device: PathBuf,
    part: AccelPart,
    address: u16,
    file: File,
    period_ns: u64,
    next_ns: u64,
}

impl I2cAccelerometer {
    pub fn open(
        device: &Path,
        part: AccelPart,
        address: u16,
        sample_hz: u32,
    ) -> std::io::Result<I2cAccelerometer> {
        let file = OpenOptions::new().read(true).write(true).open(device)?;
        // SAFETY: I2C_SLAVE takes the address as its integer argument.
        unsafe { i2c_set_slave(file.as_raw_fd(), address as i32) }
            .map_err(|e| std::io::Error::other(format!("selecting address {address:#x}: {e}")))?;
        let mut a = I2cAccelerometer {
            device: device.to_path_buf(),
            part,
            address,
            file,
            period_ns: 1_000_000_000 / sample_hz.max(1) as u64,
            next_ns: 0,
        };
        for w in part.setup() {
            a.file.write_all(w)?;
        }
        Ok(a)
    }
}

impl AccelInput for I2cAccelerometer {
    fn next_sample(&mut self) -> std::io::Result<Option<AccelSample>> {
        let clock = SystemClock;
        let now = clock.mono_ns();
        if self.next_ns > now {
            std::thread::sleep(Duration::from_nanos(self.next_ns - now));
        }
        self.next_ns = self.next_ns.max(now) + self.period_ns;
        self.file.write_all(&[self.part.data_register()])?;
        let mut b = [0u8; 6];
        self.file.read_exact(&mut b)?;
        Ok(Some(AccelSample {
            g: self.part.decode(&b),
            at_ns: clock.mono_ns(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{:?} accelerometer at {:#x} on {}",
            self.part,
            self.address,
            self.device.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_registers_decode_to_g() {
        // MPU-6050 at ±4 g: 8192 = 1 g, big-endian.
        let g = AccelPart::Mpu6050.decode(&[0x20, 0x00, 0xE0, 0x00, 0x00, 0x00]);
        assert_eq!(g, [1.0, -1.0, 0.0]);
        // ADXL345 full resolution: 256 = 1 g, little-endian.
        let g = AccelPart::Adxl345.decode(&[0x00, 0x01, 0x00, 0xFF, 0x00, 0x02]);
        assert_eq!(g, [1.0, -1.0, 2.0]);
    }
}
