//! G-sensor: an I2C accelerometer read through `/dev/i2c-N` (the i2c-dev
//! driver), polled at a fixed rate. Two common parts are supported:
//! - MPU-6050 (address 0x68 or 0x69): woken from sleep, low-pass filtered
//!   at 44 Hz (we sample at about 100 Hz), range ±4, ±8 or ±16 g, the
//!   smallest that leaves room for gravity on top of the threshold (a part
//!   that clips below the threshold could never see a shock), big-endian
//!   registers from 0x3B;
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

    /// The measuring range for a shock threshold, in g: the part's
    /// smallest that holds gravity plus the threshold with some margin.
    pub fn range_g(self, threshold_g: f32) -> u8 {
        match self {
            AccelPart::Mpu6050 => [4u8, 8]
                .into_iter()
                .find(|r| f32::from(*r) >= threshold_g + 1.5)
                .unwrap_or(16),
            AccelPart::Adxl345 => 16,
        }
    }

    /// Register writes that start measuring in `range_g`.
    fn setup(self, range_g: u8) -> Vec<[u8; 2]> {
        match self {
            // PWR_MGMT_1 = 0 (wake), CONFIG = DLPF 44 Hz, ACCEL_CONFIG = AFS_SEL.
            AccelPart::Mpu6050 => {
                let afs_sel = match range_g {
                    0..=2 => 0,
                    3..=4 => 1,
                    5..=8 => 2,
                    _ => 3,
                };
                vec![[0x6B, 0x00], [0x1A, 0x03], [0x1C, afs_sel << 3]]
            }
            // DATA_FORMAT = full resolution ±16 g, BW_RATE = 100 Hz, POWER_CTL = measure.
            AccelPart::Adxl345 => vec![[0x31, 0x0B], [0x2C, 0x0A], [0x2D, 0x08]],
        }
    }

    fn data_register(self) -> u8 {
        match self {
            AccelPart::Mpu6050 => 0x3B,
            AccelPart::Adxl345 => 0x32,
        }
    }

    /// Converts the six data bytes, read in `range_g`, to g.
    pub fn decode(self, b: &[u8; 6], range_g: u8) -> [f32; 3] {
        let mut out = [0f32; 3];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = [b[2 * i], b[2 * i + 1]];
            *o = match self {
                // Full scale is ±32768 counts.
                AccelPart::Mpu6050 => {
                    i16::from_be_bytes(pair) as f32 * f32::from(range_g.max(2)) / 32768.0
                }
                // Full resolution: 3.9 mg per count in every range.
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
    range_g: u8,
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
        threshold_g: f32,
    ) -> std::io::Result<I2cAccelerometer> {
        let file = OpenOptions::new().read(true).write(true).open(device)?;
        // SAFETY: I2C_SLAVE takes the address as its integer argument.
        unsafe { i2c_set_slave(file.as_raw_fd(), address as i32) }
            .map_err(|e| std::io::Error::other(format!("selecting address {address:#x}: {e}")))?;
        let range_g = part.range_g(threshold_g);
        let mut a = I2cAccelerometer {
            device: device.to_path_buf(),
            part,
            address,
            range_g,
            file,
            period_ns: 1_000_000_000 / sample_hz.max(1) as u64,
            next_ns: 0,
        };
        for w in part.setup(range_g) {
            a.file.write_all(&w)?;
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
            g: self.part.decode(&b, self.range_g),
            at_ns: clock.mono_ns(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{:?} accelerometer at {:#x} on {} (±{} g)",
            self.part,
            self.address,
            self.device.display(),
            self.range_g
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_registers_decode_to_g() {
        // MPU-6050 at ±4 g: 8192 = 1 g, big-endian.
        let g = AccelPart::Mpu6050.decode(&[0x20, 0x00, 0xE0, 0x00, 0x00, 0x00], 4);
        assert_eq!(g, [1.0, -1.0, 0.0]);
        // At ±16 g: 2048 = 1 g.
        let g = AccelPart::Mpu6050.decode(&[0x08, 0x00, 0x7F, 0xFF, 0x00, 0x00], 16);
        assert_eq!(g[0], 1.0);
        assert!((g[1] - 16.0).abs() < 0.001);
        // ADXL345 full resolution: 256 = 1 g, little-endian, any range.
        let g = AccelPart::Adxl345.decode(&[0x00, 0x01, 0x00, 0xFF, 0x00, 0x02], 16);
        assert_eq!(g, [1.0, -1.0, 2.0]);
    }

    #[test]
    fn the_mpu6050_range_leaves_room_above_the_threshold() {
        // The default 2 g threshold fits ±4 g; a 6 g one would clip there.
        for (threshold, range, afs_sel) in [
            (0.5, 4, 1),
            (2.0, 4, 1),
            (3.0, 8, 2),
            (6.0, 8, 2),
            (7.0, 16, 3),
            (16.0, 16, 3),
        ] {
            let r = AccelPart::Mpu6050.range_g(threshold);
            assert_eq!(r, range, "threshold {threshold} g");
            let setup = AccelPart::Mpu6050.setup(r);
            assert_eq!(setup[0], [0x6B, 0x00], "woken first");
            assert!(setup.contains(&[0x1C, afs_sel << 3]), "{setup:?}");
            assert!(
                setup.contains(&[0x1A, 0x03]),
                "low-pass below half the sampling rate"
            );
        }
        assert_eq!(AccelPart::Adxl345.range_g(6.0), 16);
    }
}
