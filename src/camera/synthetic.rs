//! The built-in test camera: a moving test pattern with a frame counter,
//! paced by the injected clock. It costs a few row copies per frame, so it
//! never limits the pipeline it is testing.

use std::sync::Arc;

use super::{CameraError, CameraSource, StreamFormat};
use crate::clock::{Clock, NANOS_PER_SEC};
use crate::frame::{packed_len, CaptureTime, PixelFormat, VideoFrame};

pub struct SyntheticCamera {
    width: u32,
    height: u32,
    fps: u32,
    clock: Arc<dyn Clock>,
    /// One luma row twice as wide as the frame: a smooth ramp the pattern
    /// scrolls through, so each row is a single copy.
    ramp: Vec<u8>,
    next_due_ns: u64,
    frame_no: u64,
    open: bool,
}

impl SyntheticCamera {
    pub fn new(width: u32, height: u32, fps: u32, clock: Arc<dyn Clock>) -> SyntheticCamera {
        let w = width as usize;
        let ramp = (0..2 * w)
            .map(|x| {
                // Triangle wave 16..235 with a period of the frame width.
                let phase = (x % w) as f32 / w as f32;
                let tri = if phase < 0.5 {
                    phase * 2.0
                } else {
                    2.0 - phase * 2.0
                };
                (16.0 + tri * 219.0) as u8
            })
            .collect();
        SyntheticCamera {
            width,
            height,
            fps: fps.max(1),
            clock,
            ramp,
            next_due_ns: 0,
            frame_no: 0,
            open: false,
        }
    }

    fn render(&self, n: u64) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![0u8; packed_len(PixelFormat::I420, self.width, self.height)];
        let shift = (n as usize * 4) % w.max(1);
        let (y_plane, chroma) = data.split_at_mut(w * h);
        for (row, line) in y_plane.chunks_exact_mut(w).enumerate() {
            let s = (shift + row / 4) % w.max(1);
            line.copy_from_slice(&self.ramp[s..s + w]);
        }
        // A white bar sweeping down the picture shows motion at a glance.
        let bar_h = (h / 20).max(2);
        let bar_y = (n as usize * 3) % h.saturating_sub(bar_h).max(1);
        for line in y_plane.chunks_exact_mut(w).skip(bar_y).take(bar_h) {
            line.fill(235);
        }
        draw_counter(y_plane, w, h, n);
        // Four colour quadrants in chroma.
        let (cb, cr) = chroma.split_at_mut(cw * ch);
        for y in 0..ch {
            for x in 0..cw {
                let q = (x * 2 / cw.max(1)) + 2 * (y * 2 / ch.max(1));
                let (u, v) = [(90, 240), (240, 110), (60, 60), (160, 160)][q.min(3)];
                cb[y * cw + x] = u;
                cr[y * cw + x] = v;
            }
        }
        data
    }
}

/// The frame number in large digits at the bottom-left corner.
fn draw_counter(y_plane: &mut [u8], w: usize, h: usize, n: u64) {
    let scale = (h / 120).max(1);
    let text = format!("{n:08}");
    let glyph = 8 * scale;
    let x0 = glyph / 2;
    let Some(y0) = h.checked_sub(glyph * 2) else {
        return;
    };
    for (i, ch) in text.bytes().enumerate() {
        let bitmap = font8x8::legacy::BASIC_LEGACY[ch as usize];
        for (gy, bits) in bitmap.iter().enumerate() {
            for gx in 0..8 {
                let on = bits >> gx & 1 == 1;
                let value = if on { 235 } else { 16 };
                for sy in 0..scale {
                    let y = y0 + gy * scale + sy;
                    let x = x0 + (i * 8 + gx) * scale;
                    if y < h && x + scale <= w {
                        y_plane[y * w + x..y * w + x + scale].fill(value);
                    }
                }
            }
        }
    }
}

impl CameraSource for SyntheticCamera {
    fn describe(&self) -> String {
        format!("synthetic {}x{}@{}", self.width, self.height, self.fps)
    }

    fn open(&mut self) -> Result<StreamFormat, CameraError> {
        if self.width < 16 || self.height < 16 {
            return Err(CameraError::Unsupported {
                device: "synthetic".into(),
                reason: format!("{}x{} is smaller than 16x16", self.width, self.height),
            });
        }
        self.open = true;
        self.next_due_ns = self.clock.mono_ns();
        Ok(StreamFormat {
            format: PixelFormat::I420,
            width: self.width,
            height: self.height,
            fps_milli: self.fps * 1000,
        })
    }

    fn next_frame(&mut self) -> Result<VideoFrame, CameraError> {
        let period = NANOS_PER_SEC / self.fps as u64;
        self.clock.sleep_until(self.next_due_ns);
        let now = self.clock.mono_ns();
        // Behind by more than a frame (machine paused): skip, do not burst.
        self.next_due_ns = if now > self.next_due_ns + period {
            now + period
        } else {
            self.next_due_ns + period
        };
        let n = self.frame_no;
        self.frame_no += 1;
        let data = self.render(n);
        let captured = CaptureTime {
            mono_ns: now,
            wall_ns: self.clock.wall_ns(),
        };
        Ok(VideoFrame::packed(
            PixelFormat::I420,
            self.width,
            self.height,
            data,
            captured,
        ))
    }

    fn close(&mut self) {
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;
    use std::time::Duration;

    #[test]
    fn frames_are_paced_by_the_clock_and_move() {
        let clock = SimulatedClock::new(1_000_000_000, 0);
        let mut cam = SyntheticCamera::new(64, 48, 10, Arc::new(clock.clone()));
        let fmt = cam.open().unwrap();
        assert_eq!(
            (fmt.width, fmt.height, fmt.format),
            (64, 48, PixelFormat::I420)
        );
        // The camera runs on its own thread; time moves only when this
        // thread advances it, so each capture time is exact.
        let (tx, rx) = std::sync::mpsc::channel();
        let camera = std::thread::spawn(move || {
            for _ in 0..3 {
                tx.send(cam.next_frame().unwrap()).unwrap();
            }
        });
        let wait = Duration::from_secs(5);
        let a = rx.recv_timeout(wait).expect("first frame comes at once");
        clock.advance(Duration::from_millis(60));
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "a frame came before its period was up"
        );
        clock.advance(Duration::from_millis(40));
        let b = rx.recv_timeout(wait).expect("second frame after 100 ms");
        clock.advance(Duration::from_millis(100));
        let c = rx.recv_timeout(wait).expect("third frame after 200 ms");
        camera.join().unwrap();
        assert_eq!(a.bytes().len(), 64 * 48 * 3 / 2);
        assert_eq!(b.captured.mono_ns - a.captured.mono_ns, 100_000_000);
        assert_eq!(c.captured.mono_ns - b.captured.mono_ns, 100_000_000);
        assert_ne!(a.bytes(), b.bytes(), "pattern must move");
    }

    #[test]
    fn refuses_tiny_sizes_with_a_clear_error() {
        let mut cam = SyntheticCamera::new(8, 8, 30, Arc::new(SimulatedClock::new(0, 0)));
        let e = cam.open().unwrap_err().to_string();
        assert!(e.contains("8x8"), "{e}");
    }
}
