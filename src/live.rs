//! The live hub: the newest encoded frame of every camera, shared by all
//! viewers.
//!
//! The writer thread publishes each frame it is about to store (in capture
//! order); viewers take an `Arc` of it, so any number of viewers cost no extra
//! encoding and a viewer that stalls never holds up recording.

use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::frame::CaptureTime;

/// One published frame.
#[derive(Clone, Debug)]
pub struct LiveFrame {
    /// Counts frames published on this camera since start; never repeats.
    pub number: u64,
    pub jpeg: Arc<[u8]>,
    pub width: u32,
    pub height: u32,
    pub captured: CaptureTime,
}

/// The newest frame of one camera.
#[derive(Default)]
pub struct LiveSlot {
    newest: Mutex<Option<LiveFrame>>,
    published: Condvar,
}

impl LiveSlot {
    pub fn publish(&self, jpeg: Arc<[u8]>, width: u32, height: u32, captured: CaptureTime) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let number = newest.as_ref().map_or(1, |f| f.number + 1);
        *newest = Some(LiveFrame {
            number,
            jpeg,
            width,
            height,
            captured,
        });
        drop(newest);
        self.published.notify_all();
    }

    pub fn latest(&self) -> Option<LiveFrame> {
        self.newest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for a frame newer than `after` (a frame number;
    /// 0 for any). Returns `None` on timeout.
    pub fn wait_newer(&self, after: u64, timeout: Duration) -> Option<LiveFrame> {
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let (newest, _) = self
            .published
            .wait_timeout_while(newest, timeout, |f| {
                f.as_ref().is_none_or(|f| f.number <= after)
            })
            .unwrap_or_else(|e| e.into_inner());
        newest.as_ref().filter(|f| f.number > after).cloned()
    }
}

/// Slots of every recorded camera, by id; cameras found while running add theirs.
#[derive(Default)]
pub struct LiveHub {
    slots: RwLock<Vec<(String, Arc<LiveSlot>)>>,
}

impl LiveHub {
    pub fn new<'a>(camera_ids: impl IntoIterator<Item = &'a str>) -> LiveHub {
        let hub = LiveHub::default();
        for id in camera_ids {
            hub.add(id);
        }
        hub
    }

    pub fn slot(&self, camera: &str) -> Option<Arc<LiveSlot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(id, _)| id == camera)
            .map(|(_, s)| s.clone())
    }

    /// The slot of `camera`, made when it has none yet.
    pub fn add(&self, camera: &str) -> Arc<LiveSlot> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = slots.iter().find(|(id, _)| id == camera) {
            return s.clone();
        }
        let slot = Arc::<LiveSlot>::default();
        slots.push((camera.to_string(), slot.clone()));
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(slot: &LiveSlot, byte: u8) {
        slot.publish(
            Arc::from(vec![byte]),
            1,
            1,
            CaptureTime {
                mono_ns: 0,
                wall_ns: 0,
            },
        );
    }

    #[test]
    fn waiting_viewer_wakes_on_the_next_frame() {
        let slot = Arc::new(LiveSlot::default());
        publish(&slot, 1);
        let first = slot.latest().unwrap();
        let s = slot.clone();
        let waiter = std::thread::spawn(move || s.wait_newer(first.number, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(50));
        publish(&slot, 2);
        let got = waiter.join().unwrap().expect("woken by the new frame");
        assert_eq!(&got.jpeg[..], &[2]);
        assert_eq!(got.number, first.number + 1);
    }

    #[test]
    fn wait_times_out_without_a_newer_frame() {
        let slot = LiveSlot::default();
        assert!(slot.wait_newer(0, Duration::from_millis(20)).is_none());
        publish(&slot, 7);
        assert_eq!(&slot.wait_newer(0, Duration::ZERO).unwrap().jpeg[..], &[7]);
        assert!(slot.wait_newer(1, Duration::from_millis(20)).is_none());
    }

    #[test]
    fn hub_finds_slots_by_camera() {
        let hub = LiveHub::new(["front", "rear"]);
        assert!(hub.slot("rear").is_some());
        assert!(hub.slot("side").is_none());
    }
}
