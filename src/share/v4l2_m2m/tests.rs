//! The encoder against a fake bcm2835-codec (see the module doc for how the
//! fake differs from the real driver).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::*;

const DEV: &str = "/dev/video11";

#[derive(Clone)]
struct FakeConfig {
    caps: DeviceCaps,
    /// bcm2835-codec rounds the luma stride up to 32 bytes.
    stride_align: u32,
    /// Size the buffer for a luma plane of 16-aligned height (bcm2835-codec's
    /// decoder role does; its video encoder does not).
    pad_rows_to_16: bool,
    /// Answer S_FMT with the height rounded up to 16.
    report_aligned_height: bool,
    refuse_format: Option<Queue>,
    /// Pictures held back before the first access unit comes out.
    lag: usize,
    /// Never encodes: every poll times out.
    stall: bool,
    /// Capture DQBUF fails with ENODEV once this many buffers came out.
    unplug_after: Option<usize>,
    /// SPS/PPS in a buffer of their own before the first picture, as the
    /// firmware sends its codec config.
    header_separate: bool,
    /// Key frames without SPS/PPS whatever REPEAT_SEQ_HEADER says.
    ignores_repeat_header: bool,
    /// The LAST flag on an empty buffer of its own rather than on the final unit.
    last_on_empty: bool,
    copy_timestamps: bool,
    /// This picture number (1-based) is skipped, as rate control might.
    drop_picture: Option<u64>,
    encoder_cmd_supported: bool,
    /// Control ids S_CTRL answers EINVAL for.
    refuse_controls: Vec<u32>,
    /// Real access units to hand out, one per picture, instead of made-up ones.
    replay: VecDeque<Vec<u8>>,
    /// Bytes before the payload in each encoded buffer (`data_offset`).
    data_offset: u32,
}

impl Default for FakeConfig {
    fn default() -> FakeConfig {
        FakeConfig {
            caps: DeviceCaps {
                driver: "bcm2835-codec".into(),
                card: BCM2835_ENCODER_CARD.into(),
                bus_info: "platform:bcm2835-codec".into(),
                caps: V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING,
            },
            stride_align: 32,
            pad_rows_to_16: false,
            report_aligned_height: false,
            refuse_format: None,
            lag: 0,
            stall: false,
            unplug_after: None,
            header_separate: true,
            ignores_repeat_header: false,
            last_on_empty: true,
            copy_timestamps: true,
            drop_picture: None,
            encoder_cmd_supported: true,
            refuse_controls: Vec::new(),
            replay: VecDeque::new(),
            data_offset: 0,
        }
    }
}

#[derive(Default)]
struct FakeState {
    cfg: FakeConfig,
    calls: Vec<String>,
    output_format: Option<QueueFormat>,
    crop: Option<(u32, u32)>,
    capture_bytes: u32,
    i_period: i32,
    repeat_header: bool,
    open: bool,
    streaming: [bool; 2],
    out_buffers: usize,
    cap_buffers: usize,
    out_queued: VecDeque<(u32, u64)>,
    out_done: VecDeque<u32>,
    cap_queued: VecDeque<u32>,
    cap_done: VecDeque<DequeuedBuffer>,
    pictures_seen: u64,
    units_made: u64,
    header_sent: bool,
    stopping: bool,
    last_sent: bool,
    dequeued_captures: usize,
    /// Timestamps of the pictures queued, in order.
    times_in: Vec<u64>,
}

fn align(v: u32, to: u32) -> u32 {
    v.div_ceil(to) * to
}

fn qi(q: Queue) -> usize {
    match q {
        Queue::Output => 0,
        Queue::Capture => 1,
    }
}

/// Checksum of the visible picture as the fake finds it in an OUTPUT
/// buffer, using its own idea of the layout.
fn visible_checksum(buf: &[u8], stride: usize, rows: usize, w: usize, h: usize) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for r in 0..h {
        crc.update(&buf[r * stride..r * stride + w]);
    }
    let (cs, cr) = (stride / 2, rows / 2);
    for base in [stride * rows, stride * rows + cs * cr] {
        for r in 0..h / 2 {
            crc.update(&buf[base + r * cs..base + r * cs + w / 2]);
        }
    }
    crc.finalize()
}

/// Checksum of a picture as the encoder was given it.
fn picture_checksum(p: &Picture<'_>) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&p.y[..(p.width * p.height) as usize]);
    let c = (p.width / 2 * p.height / 2) as usize;
    crc.update(&p.u[..c]);
    crc.update(&p.v[..c]);
    crc.finalize()
}

/// `data` without its SPS and PPS NAL units.
fn strip_parameter_sets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in annexb_nal_units(data).filter(|n| !matches!(n[0] & 0x1f, 7 | 8)) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// Splits an Annex B stream with one slice per picture into access units:
/// the NAL units before each slice, and the slice.
fn split_access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut units = Vec::new();
    let mut current = Vec::new();
    for nal in annexb_nal_units(stream) {
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
        if matches!(nal[0] & 0x1f, 1 | 5) {
            units.push(std::mem::take(&mut current));
        }
    }
    units
}

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn nal(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, kind];
    v.extend_from_slice(body);
    v
}

impl FakeState {
    fn layout(&self) -> (usize, usize, usize, usize) {
        let f = self.output_format.expect("encoding before S_FMT");
        let (w, h) = self.crop.unwrap_or((f.width, f.height));
        let rows = if self.cfg.pad_rows_to_16 {
            align(f.height, 16)
        } else {
            f.height
        };
        (
            f.bytes_per_line as usize,
            rows as usize,
            w as usize,
            h as usize,
        )
    }

    fn emit(&mut self, bufs: &mut [Vec<u8>], data: &[u8], flags: u32, timestamp_us: u64) {
        let index = self.cap_queued.pop_front().expect("no capture buffer");
        let buf = &mut bufs[index as usize];
        let off = self.cfg.data_offset as usize;
        assert!(
            off + data.len() <= buf.len(),
            "access unit larger than the capture buffer"
        );
        buf[..off].fill(0xAA);
        buf[off..off + data.len()].copy_from_slice(data);
        self.cap_done.push_back(DequeuedBuffer {
            index,
            data_offset: off as u32,
            bytes_used: (off + data.len()) as u32,
            flags,
            timestamp_us: if self.cfg.copy_timestamps {
                timestamp_us
            } else {
                0
            },
        });
    }

    /// Encodes what the fake may encode now.
    fn step(&mut self, out_bufs: &[Vec<u8>], cap_bufs: &mut [Vec<u8>]) {
        if self.cfg.stall || !self.streaming[0] || !self.streaming[1] {
            return;
        }
        while !self.cap_queued.is_empty()
            && !self.out_queued.is_empty()
            && (self.out_queued.len() > self.cfg.lag || self.stopping)
        {
            if self.cfg.header_separate && !self.header_sent {
                self.header_sent = true;
                let h = match self.cfg.replay.front() {
                    Some(first) => parameter_sets(first),
                    None => {
                        let mut h = nal(7, b"sps-fake");
                        h.extend(nal(8, b"pps-fake"));
                        h
                    }
                };
                self.emit(cap_bufs, &h, 0, 0);
                continue;
            }
            let (index, ts) = self.out_queued.pop_front().unwrap();
            self.pictures_seen += 1;
            let n = self.pictures_seen;
            self.out_done.push_back(index);
            if self.cfg.drop_picture == Some(n) {
                continue;
            }
            if let Some(mut data) = self.cfg.replay.pop_front() {
                let key = nal_types(&data).contains(&5);
                if self.cfg.ignores_repeat_header {
                    data = strip_parameter_sets(&data);
                }
                let flags = if key { V4L2_BUF_FLAG_KEYFRAME } else { 0 };
                self.emit(cap_bufs, &data, flags, ts);
                continue;
            }
            let (stride, rows, w, h) = self.layout();
            let sum = visible_checksum(&out_bufs[index as usize], stride, rows, w, h);
            let key = self.units_made % self.i_period.max(1) as u64 == 0;
            self.units_made += 1;
            let body = format!("pic{n} {sum:08x}");
            let mut data = Vec::new();
            if key && !self.cfg.ignores_repeat_header && self.repeat_header {
                data.extend(nal(7, b"sps-fake"));
                data.extend(nal(8, b"pps-fake"));
            }
            data.extend(nal(if key { 0x65 } else { 0x41 }, body.as_bytes()));
            let flags = if key { V4L2_BUF_FLAG_KEYFRAME } else { 0 };
            self.emit(cap_bufs, &data, flags, ts);
        }
        if self.stopping && self.out_queued.is_empty() && !self.last_sent {
            if self.cfg.last_on_empty {
                if !self.cap_queued.is_empty() {
                    self.emit(cap_bufs, &[], V4L2_BUF_FLAG_LAST, 0);
                    self.last_sent = true;
                }
            } else if let Some(b) = self.cap_done.back_mut() {
                b.flags |= V4L2_BUF_FLAG_LAST;
                self.last_sent = true;
            }
        }
    }
}

/// The mapped buffers live in the device (the encoder borrows them); the
/// shared state is what tests look at.
struct FakeM2m {
    state: Arc<Mutex<FakeState>>,
    out_bufs: Vec<Vec<u8>>,
    cap_bufs: Vec<Vec<u8>>,
}

/// Logs the call; fails like a driver when the node is not open.
fn call(state: &Mutex<FakeState>, what: String) -> Result<MutexGuard<'_, FakeState>, DeviceError> {
    let mut st = state.lock().unwrap();
    st.calls.push(what);
    if !st.open {
        return Err(DeviceError::new("fake", Errno::EBADF));
    }
    Ok(st)
}

impl FakeM2m {
    fn new(cfg: FakeConfig) -> (FakeM2m, Arc<Mutex<FakeState>>) {
        let state = Arc::new(Mutex::new(FakeState {
            cfg,
            i_period: 60,
            ..Default::default()
        }));
        (
            FakeM2m {
                state: state.clone(),
                out_bufs: Vec::new(),
                cap_bufs: Vec::new(),
            },
            state,
        )
    }

    fn st(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

impl M2mDevice for FakeM2m {
    fn open(&mut self, path: &Path) -> Result<(), DeviceError> {
        let mut st = self.st();
        st.calls.push(format!("open {}", path.display()));
        assert!(!st.open, "opened twice");
        st.open = true;
        Ok(())
    }

    fn capabilities(&mut self) -> Result<DeviceCaps, DeviceError> {
        Ok(call(&self.state, "QUERYCAP".into())?.cfg.caps.clone())
    }

    fn set_format(&mut self, queue: Queue, want: QueueFormat) -> Result<QueueFormat, DeviceError> {
        let mut st = call(
            &self.state,
            format!(
                "S_FMT {} {} {}x{}",
                queue.label(),
                want.fourcc,
                want.width,
                want.height
            ),
        )?;
        if st.out_buffers > 0 || st.cap_buffers > 0 {
            return Err(DeviceError::new("VIDIOC_S_FMT", Errno::EBUSY));
        }
        if st.cfg.refuse_format == Some(queue) {
            return Err(DeviceError::new("VIDIOC_S_FMT", Errno::EINVAL));
        }
        match queue {
            Queue::Output => {
                let bpl = align(want.width, st.cfg.stride_align);
                let height = if st.cfg.report_aligned_height {
                    align(want.height, 16)
                } else {
                    want.height
                };
                let rows = if st.cfg.pad_rows_to_16 {
                    align(height, 16)
                } else {
                    height
                };
                let f = QueueFormat {
                    fourcc: FourCc::YU12,
                    width: want.width,
                    height,
                    bytes_per_line: bpl,
                    size_image: bpl * rows * 3 / 2,
                };
                st.output_format = Some(f);
                Ok(f)
            }
            Queue::Capture => {
                st.capture_bytes = want.size_image.max(64 * 1024);
                Ok(QueueFormat {
                    fourcc: FOURCC_H264,
                    bytes_per_line: 0,
                    size_image: st.capture_bytes,
                    ..want
                })
            }
        }
    }

    fn set_crop(&mut self, width: u32, height: u32) -> Result<(), DeviceError> {
        call(&self.state, format!("S_SELECTION crop {width}x{height}"))?.crop =
            Some((width, height));
        Ok(())
    }

    fn set_frame_rate(&mut self, fps: u32) -> Result<(), DeviceError> {
        drop(call(&self.state, format!("S_PARM output 1/{fps}"))?);
        Ok(())
    }

    fn set_control(&mut self, id: u32, value: i32) -> Result<(), DeviceError> {
        let mut st = call(&self.state, format!("S_CTRL {id:#x}={value}"))?;
        if st.cfg.refuse_controls.contains(&id) {
            return Err(DeviceError::new("VIDIOC_S_CTRL", Errno::EINVAL));
        }
        match id {
            V4L2_CID_MPEG_VIDEO_H264_I_PERIOD => st.i_period = value,
            V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER => st.repeat_header = value != 0,
            _ => {}
        }
        Ok(())
    }

    fn request_buffers(&mut self, queue: Queue, count: u32) -> Result<u32, DeviceError> {
        let mut st = call(&self.state, format!("REQBUFS {} {count}", queue.label()))?;
        match queue {
            Queue::Output => {
                let size = st.output_format.expect("REQBUFS before S_FMT").size_image;
                st.out_buffers = count as usize;
                self.out_bufs = vec![vec![0xEE; size as usize]; count as usize];
            }
            Queue::Capture => {
                let size = st.capture_bytes;
                st.cap_buffers = count as usize;
                self.cap_bufs = vec![vec![0; size as usize]; count as usize];
            }
        }
        Ok(count)
    }

    fn buffer(&mut self, queue: Queue, index: u32) -> Result<&mut [u8], DeviceError> {
        let bufs = match queue {
            Queue::Output => &mut self.out_bufs,
            Queue::Capture => &mut self.cap_bufs,
        };
        bufs.get_mut(index as usize)
            .map(|b| b.as_mut_slice())
            .ok_or(DeviceError::new("mmap", Errno::EINVAL))
    }

    fn queue_buffer(
        &mut self,
        queue: Queue,
        index: u32,
        bytes_used: u32,
        timestamp_us: u64,
    ) -> Result<(), DeviceError> {
        let mut st = call(&self.state, format!("QBUF {} {index}", queue.label()))?;
        let queued = match queue {
            Queue::Output => st.out_queued.iter().any(|&(i, _)| i == index),
            Queue::Capture => st.cap_queued.contains(&index),
        };
        // vb2 refuses a buffer the driver already holds.
        if queued {
            return Err(DeviceError::new("VIDIOC_QBUF", Errno::EINVAL));
        }
        match queue {
            Queue::Output => {
                assert!((index as usize) < st.out_buffers);
                assert!(bytes_used > 0, "an empty picture buffer");
                st.out_queued.push_back((index, timestamp_us));
                st.times_in.push(timestamp_us);
            }
            Queue::Capture => {
                assert!((index as usize) < st.cap_buffers);
                st.cap_queued.push_back(index);
            }
        }
        st.step(&self.out_bufs, &mut self.cap_bufs);
        Ok(())
    }

    fn dequeue_buffer(&mut self, queue: Queue) -> Result<Option<DequeuedBuffer>, DeviceError> {
        let mut st = self.st();
        if !st.streaming[qi(queue)] {
            return Err(DeviceError::new("VIDIOC_DQBUF", Errno::EINVAL));
        }
        match queue {
            Queue::Output => Ok(st.out_done.pop_front().map(|index| DequeuedBuffer {
                index,
                data_offset: 0,
                bytes_used: 0,
                flags: 0,
                timestamp_us: 0,
            })),
            Queue::Capture => {
                if st
                    .cfg
                    .unplug_after
                    .is_some_and(|n| st.dequeued_captures >= n)
                {
                    return Err(DeviceError::new("VIDIOC_DQBUF", Errno::ENODEV));
                }
                match st.cap_done.pop_front() {
                    Some(b) => {
                        st.dequeued_captures += 1;
                        st.calls.push(format!("DQBUF capture {}", b.index));
                        Ok(Some(b))
                    }
                    None if st.last_sent => Err(DeviceError::new("VIDIOC_DQBUF", Errno::EPIPE)),
                    None => Ok(None),
                }
            }
        }
    }

    fn stream_on(&mut self, queue: Queue) -> Result<(), DeviceError> {
        let mut st = call(&self.state, format!("STREAMON {}", queue.label()))?;
        st.streaming[qi(queue)] = true;
        st.step(&self.out_bufs, &mut self.cap_bufs);
        Ok(())
    }

    fn stream_off(&mut self, queue: Queue) -> Result<(), DeviceError> {
        let mut st = call(&self.state, format!("STREAMOFF {}", queue.label()))?;
        st.streaming[qi(queue)] = false;
        Ok(())
    }

    fn wait(&mut self, _timeout_ms: u32) -> Result<bool, DeviceError> {
        let mut st = self.state.lock().unwrap();
        st.step(&self.out_bufs, &mut self.cap_bufs);
        Ok(!st.cap_done.is_empty() || !st.out_done.is_empty() || st.last_sent)
    }

    fn encoder_stop(&mut self) -> Result<(), DeviceError> {
        let mut st = call(&self.state, "ENCODER_CMD stop".into())?;
        if !st.cfg.encoder_cmd_supported {
            return Err(DeviceError::new("VIDIOC_ENCODER_CMD", Errno::ENOTTY));
        }
        st.stopping = true;
        st.step(&self.out_bufs, &mut self.cap_bufs);
        Ok(())
    }

    fn close(&mut self) {
        let mut st = self.state.lock().unwrap();
        if st.open {
            st.calls.push("close".into());
        }
        st.open = false;
        st.out_buffers = 0;
        st.cap_buffers = 0;
        self.out_bufs.clear();
        self.cap_bufs.clear();
    }
}

fn settings(width: u32, height: u32) -> EncoderSettings {
    EncoderSettings {
        width,
        height,
        fps: 30,
        bitrate_bps: 2_000_000,
        keyframe_interval: 10,
    }
}

/// Picture `n`: planes filled from a per-picture pattern so each one's
/// checksum differs and a wrong row offset changes it.
struct OwnedPicture {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl OwnedPicture {
    fn new(width: u32, height: u32, n: u32) -> OwnedPicture {
        let (w, h) = (width as usize, height as usize);
        let px = |x: usize, y: usize, k: usize| ((x * 3 + y * 7 + n as usize * 11 + k) % 251) as u8;
        let plane = |w: usize, h: usize, k: usize| {
            (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| px(x, y, k))
                .collect::<Vec<u8>>()
        };
        OwnedPicture {
            width,
            height,
            y: plane(w, h, 0),
            u: plane(w / 2, h / 2, 1),
            v: plane(w / 2, h / 2, 2),
        }
    }

    fn picture(&self) -> Picture<'_> {
        Picture {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
        }
    }
}

fn open(cfg: FakeConfig, s: EncoderSettings) -> (V4l2M2mEncoder<FakeM2m>, Arc<Mutex<FakeState>>) {
    let (dev, state) = FakeM2m::new(cfg);
    let enc = V4l2M2mEncoder::with_device(dev, Path::new(DEV), s).unwrap();
    (enc, state)
}

/// Encodes `count` pictures and finishes; returns every access unit and
/// how many came out of each `encode` call.
fn run(enc: &mut V4l2M2mEncoder<FakeM2m>, count: u32) -> (Vec<AccessUnit>, Vec<usize>, Vec<u32>) {
    let s = enc.settings;
    let mut units = Vec::new();
    let mut per_call = Vec::new();
    let mut sums = Vec::new();
    for n in 0..count {
        let p = OwnedPicture::new(s.width, s.height, n);
        sums.push(picture_checksum(&p.picture()));
        let got = enc.encode(&p.picture()).unwrap();
        per_call.push(got.len());
        units.extend(got);
    }
    units.extend(enc.finish().unwrap());
    (units, per_call, sums)
}

/// Every unit is picture n's, with n's checksum, and key frames carry SPS/PPS.
fn assert_stream(units: &[AccessUnit], sums: &[u32], key_every: usize) {
    assert_eq!(units.len(), sums.len(), "count in == count out");
    for (i, (u, sum)) in units.iter().zip(sums).enumerate() {
        let text = String::from_utf8_lossy(&u.data);
        assert!(
            text.contains(&format!("pic{} {sum:08x}", i + 1)),
            "unit {i} is {text:?}, want picture {} with checksum {sum:08x}",
            i + 1
        );
        let key = i % key_every == 0;
        assert_eq!(u.keyframe, key, "unit {i}");
        let want: &[u8] = if key { &[7, 8, 5] } else { &[1] };
        assert_eq!(nal_types(&u.data), want, "unit {i}");
        assert_eq!(&u.data[..4], &[0, 0, 0, 1]);
    }
}

#[test]
fn setup_follows_the_v4l2_encoder_sequence() {
    let (enc, state) = open(FakeConfig::default(), settings(1280, 720));
    assert_eq!(enc.name(), "bcm2835-codec /dev/video11");
    let calls = state.lock().unwrap().calls.clone();
    let want: Vec<String> = [
        "open /dev/video11",
        "QUERYCAP",
        "S_FMT output YU12 1280x720",
        "S_FMT capture H264 1280x720",
        "S_PARM output 1/30",
        "S_CTRL 0x9909cf=2000000",
        "S_CTRL 0x9909ce=1",
        "S_CTRL 0x990a6b=1",
        // 3600 macroblocks at 30 fps: level 3.1.
        "S_CTRL 0x990a67=9",
        "S_CTRL 0x990a66=10",
        "S_CTRL 0x9909e2=1",
        "REQBUFS output 4",
        "REQBUFS capture 4",
        "QBUF capture 0",
        "QBUF capture 1",
        "QBUF capture 2",
        "QBUF capture 3",
        "STREAMON output",
        "STREAMON capture",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(calls, want);
}

#[test]
fn every_picture_comes_out_once_in_order_with_buffers_reused() {
    let (mut enc, state) = open(FakeConfig::default(), settings(640, 360));
    let (units, per_call, sums) = run(&mut enc, 25);
    assert_stream(&units, &sums, 10);
    // No lag: each picture's unit comes back from its own encode call (the
    // header buffer before the first one is merged into it).
    assert!(per_call.iter().all(|&n| n == 1), "{per_call:?}");
    let st = state.lock().unwrap();
    let count = |p: &str| st.calls.iter().filter(|c| c.starts_with(p)).count();
    // 25 pictures through 4 picture buffers; capture buffers requeued.
    assert_eq!(count("QBUF output"), 25);
    assert!(count("QBUF capture") >= 25, "{}", count("QBUF capture"));
    assert!(!st.calls.iter().any(|c| c.starts_with("S_SELECTION")));
    let tail: Vec<&str> = st.calls.iter().rev().take(3).map(|s| s.as_str()).collect();
    assert_eq!(tail, ["close", "STREAMOFF capture", "STREAMOFF output"]);
    // Nothing was in flight at the end: no stop needed.
    assert_eq!(count("ENCODER_CMD"), 0);
}

#[test]
fn output_lagging_input_comes_out_later_and_at_finish() {
    let cfg = FakeConfig {
        lag: 3,
        ..FakeConfig::default()
    };
    let (mut enc, state) = open(cfg, settings(320, 240));
    let s = enc.settings;
    let mut units = Vec::new();
    let mut sums = Vec::new();
    let mut per_call = Vec::new();
    for n in 0..12 {
        let p = OwnedPicture::new(s.width, s.height, n);
        sums.push(picture_checksum(&p.picture()));
        let got = enc.encode(&p.picture()).unwrap();
        per_call.push(got.len());
        units.extend(got);
    }
    assert_eq!(&per_call[..3], &[0, 0, 0]);
    assert_eq!(units.len(), 9);
    let rest = enc.finish().unwrap();
    assert_eq!(rest.len(), 3, "finish drains the pictures held back");
    units.extend(rest);
    assert_stream(&units, &sums, 10);
    let st = state.lock().unwrap();
    assert!(st.calls.contains(&"ENCODER_CMD stop".to_string()));
    assert!(st.last_sent);
    assert!(
        enc.finish().unwrap().is_empty(),
        "a second finish has nothing"
    );
}

#[test]
fn last_flag_on_the_final_unit_ends_the_stream_too() {
    let cfg = FakeConfig {
        lag: 2,
        last_on_empty: false,
        ..FakeConfig::default()
    };
    let (mut enc, _state) = open(cfg, settings(320, 240));
    let (units, _, sums) = run(&mut enc, 7);
    assert_stream(&units, &sums, 10);
}

#[test]
fn driver_without_encoder_cmd_is_drained_by_count() {
    let cfg = FakeConfig {
        lag: 2,
        encoder_cmd_supported: false,
        ..FakeConfig::default()
    };
    let (mut enc, _state) = open(cfg, settings(320, 240));
    // The fake holds the last two back for good without a stop: that must
    // be a bounded error, not a hang.
    let s = enc.settings;
    for n in 0..5 {
        enc.encode(&OwnedPicture::new(s.width, s.height, n).picture())
            .unwrap();
    }
    let err = enc.finish().unwrap_err();
    assert!(
        err.message
            .contains("no end of stream from the encoder within 3000 ms"),
        "{err}"
    );
}

#[test]
fn padded_stride_and_enlarged_height_are_honoured() {
    // 1000 wide: stride 1024. The driver answers 1000x576 for 1000x562,
    // so the encoder crops back to the picture and copies into 576 rows.
    let cfg = FakeConfig {
        report_aligned_height: true,
        ..FakeConfig::default()
    };
    padded(cfg);
}

#[test]
fn padded_stride_alone_like_the_pi_video_encoder() {
    // bcm2835-codec's encoder: 1000 wide gets a 1024-byte stride, the
    // height stays 562 and the chroma planes follow row 562.
    let (mut enc, state) = open(FakeConfig::default(), settings(1000, 562));
    assert_eq!((enc.layout.stride, enc.layout.rows), (1024, 562));
    assert_eq!(enc.layout.size, 1024 * 562 * 3 / 2);
    let (units, _, sums) = run(&mut enc, 12);
    assert_stream(&units, &sums, 10);
    assert!(!state
        .lock()
        .unwrap()
        .calls
        .iter()
        .any(|c| c.starts_with("S_SELECTION")));
}

#[test]
fn buffer_sized_for_16_aligned_rows_puts_chroma_after_them() {
    // Height kept at 562 in the answer, but sizeimage is for 576 rows.
    let cfg = FakeConfig {
        pad_rows_to_16: true,
        ..FakeConfig::default()
    };
    padded(cfg);
}

fn padded(cfg: FakeConfig) {
    let crop = cfg.report_aligned_height;
    let (mut enc, state) = open(cfg, settings(1000, 562));
    assert_eq!(
        enc.layout,
        I420Layout {
            stride: 1024,
            rows: 576,
            chroma_stride: 512,
            chroma_rows: 288,
            u_offset: 1024 * 576,
            v_offset: 1024 * 576 + 512 * 288,
            size: 1024 * 576 * 3 / 2,
        }
    );
    let (units, _, sums) = run(&mut enc, 12);
    assert_stream(&units, &sums, 10);
    let st = state.lock().unwrap();
    assert_eq!(
        st.calls.contains(&"S_SELECTION crop 1000x562".to_string()),
        crop
    );
}

#[test]
fn layout_follows_sizeimage_to_the_16_row_plane() {
    let f = QueueFormat {
        fourcc: FourCc::YU12,
        width: 640,
        height: 360,
        bytes_per_line: 640,
        size_image: 640 * 368 * 3 / 2,
    };
    let l = I420Layout::from_format(&f, 640, 360);
    assert_eq!((l.rows, l.u_offset), (368, 640 * 368));
    // bcm2835-codec's video encoder: exactly the picture's rows.
    let exact = QueueFormat {
        size_image: 640 * 360 * 3 / 2,
        ..f
    };
    assert_eq!(I420Layout::from_format(&exact, 640, 360).rows, 360);
    // A sizeimage rounded up to a page (348160, as if 362.67 rows) is not
    // taken for extra rows.
    let paged = QueueFormat {
        size_image: (640 * 360 * 3 / 2_u32).div_ceil(4096) * 4096,
        ..f
    };
    assert_eq!(I420Layout::from_format(&paged, 640, 360).rows, 360);
}

#[test]
fn header_in_a_buffer_of_its_own_is_not_repeated_in_the_first_unit() {
    let (mut enc, _state) = open(FakeConfig::default(), settings(320, 240));
    let (units, _, sums) = run(&mut enc, 3);
    // assert_stream checks the NAL types: one SPS and one PPS, not two.
    assert_stream(&units, &sums, 10);
}

#[test]
fn key_frames_without_repeated_header_get_the_last_one_seen() {
    // The driver sends SPS/PPS once, alone, and later key frames without.
    let cfg = FakeConfig {
        ignores_repeat_header: true,
        lag: 1,
        ..FakeConfig::default()
    };
    let (mut enc, _state) = open(cfg, settings(320, 240));
    let (units, _, sums) = run(&mut enc, 23);
    assert_stream(&units, &sums, 10);
}

#[test]
fn header_inline_only_works_too() {
    let cfg = FakeConfig {
        header_separate: false,
        ..FakeConfig::default()
    };
    let (mut enc, _state) = open(cfg, settings(320, 240));
    let (units, _, sums) = run(&mut enc, 12);
    assert_stream(&units, &sums, 10);
}

#[test]
fn key_frame_without_any_header_is_an_error() {
    let cfg = FakeConfig {
        header_separate: false,
        ignores_repeat_header: true,
        ..FakeConfig::default()
    };
    let (mut enc, _state) = open(cfg, settings(320, 240));
    let p = OwnedPicture::new(320, 240, 0);
    let err = enc.encode(&p.picture()).unwrap_err();
    assert!(
        err.message
            .contains("key frame 1 came without SPS/PPS and none were seen before"),
        "{err}"
    );
}

#[test]
fn refused_format_names_the_device_and_the_step() {
    let cfg = FakeConfig {
        refuse_format: Some(Queue::Output),
        ..FakeConfig::default()
    };
    let (dev, state) = FakeM2m::new(cfg);
    let err = V4l2M2mEncoder::with_device(dev, Path::new(DEV), settings(640, 480))
        .err()
        .unwrap();
    assert_eq!(err.encoder, "v4l2-m2m");
    assert_eq!(
        err.message,
        "/dev/video11: VIDIOC_S_FMT (output, YU12 640x480) failed: EINVAL (Invalid argument)"
    );
    assert!(!state.lock().unwrap().open, "closed after the failure");

    let cfg = FakeConfig {
        refuse_format: Some(Queue::Capture),
        ..FakeConfig::default()
    };
    let (dev, _) = FakeM2m::new(cfg);
    let err = V4l2M2mEncoder::with_device(dev, Path::new(DEV), settings(640, 480))
        .err()
        .unwrap();
    assert!(
        err.message.contains("VIDIOC_S_FMT (capture, H264)"),
        "{err}"
    );
}

#[test]
fn a_capture_only_device_is_refused() {
    let mut cfg = FakeConfig::default();
    cfg.caps.caps = crate::camera::v4l2::ioctl::V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
    cfg.caps.driver = "uvcvideo".into();
    let (dev, _) = FakeM2m::new(cfg);
    let err = V4l2M2mEncoder::with_device(dev, Path::new(DEV), settings(640, 480))
        .err()
        .unwrap();
    assert!(
        err.message
            .contains("not a multi-planar memory-to-memory device with streaming (driver uvcvideo"),
        "{err}"
    );
}

#[test]
fn device_vanishing_mid_stream_is_an_error_naming_the_step() {
    let cfg = FakeConfig {
        unplug_after: Some(5),
        ..FakeConfig::default()
    };
    let (mut enc, _) = open(cfg, settings(320, 240));
    let s = enc.settings;
    let mut err = None;
    for n in 0..20 {
        match enc.encode(&OwnedPicture::new(s.width, s.height, n).picture()) {
            Ok(_) => {}
            Err(e) => {
                err = Some((n, e));
                break;
            }
        }
    }
    // Five buffers come out (the header and four pictures), then the next
    // DQBUF, in the call for the fourth picture, fails.
    let (n, err) = err.expect("the unplug must surface");
    assert_eq!(n, 3);
    assert_eq!(
        err.message,
        "/dev/video11: VIDIOC_DQBUF (capture) failed: ENODEV (No such device) (the device is gone)"
    );
}

#[test]
fn stalled_encoder_times_out_instead_of_hanging() {
    let cfg = FakeConfig {
        stall: true,
        ..FakeConfig::default()
    };
    let (mut enc, _) = open(cfg, settings(320, 240));
    let s = enc.settings;
    // Four picture buffers take four pictures; the fifth waits for one back.
    for n in 0..4 {
        let got = enc
            .encode(&OwnedPicture::new(s.width, s.height, n).picture())
            .unwrap();
        assert!(got.is_empty());
    }
    let err = enc
        .encode(&OwnedPicture::new(s.width, s.height, 4).picture())
        .unwrap_err();
    assert_eq!(
        err.message,
        "/dev/video11: no picture buffer back from the encoder within 3000 ms (4 pictures in, 0 access units out)"
    );
    let err = enc.finish().unwrap_err();
    assert!(err.message.contains("no end of stream"), "{err}");
}

#[test]
fn dropped_picture_is_an_error_not_a_shifted_stream() {
    let cfg = FakeConfig {
        drop_picture: Some(3),
        ..FakeConfig::default()
    };
    let (mut enc, _) = open(cfg, settings(320, 240));
    let s = enc.settings;
    let mut result = Ok(Vec::new());
    for n in 0..5 {
        result = enc.encode(&OwnedPicture::new(s.width, s.height, n).picture());
        if result.is_err() {
            break;
        }
    }
    let err = result.unwrap_err();
    assert!(
        err.message
            .contains("access unit of picture 4 came out where picture 3 was due"),
        "{err}"
    );
}

#[test]
fn pictures_go_in_with_their_time_in_the_clip() {
    let (mut enc, state) = open(FakeConfig::default(), settings(320, 240));
    let _ = run(&mut enc, 3);
    let times = state.lock().unwrap().times_in.clone();
    assert_eq!(times, vec![33_333, 66_666, 100_000]);
}

#[test]
fn a_control_the_driver_lacks_is_fatal_only_when_the_clip_needs_it() {
    let cfg = FakeConfig {
        refuse_controls: vec![
            V4L2_CID_MPEG_VIDEO_H264_LEVEL,
            V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
        ],
        ..FakeConfig::default()
    };
    let (mut enc, _) = open(cfg, settings(320, 240));
    let (units, _, sums) = run(&mut enc, 4);
    assert_stream(&units, &sums, 10);

    let cfg = FakeConfig {
        refuse_controls: vec![V4L2_CID_MPEG_VIDEO_H264_PROFILE],
        ..FakeConfig::default()
    };
    let (dev, _) = FakeM2m::new(cfg);
    let err = V4l2M2mEncoder::with_device(dev, Path::new(DEV), settings(320, 240))
        .err()
        .unwrap();
    assert_eq!(
        err.message,
        "/dev/video11: VIDIOC_S_CTRL (profile 1) failed: EINVAL (Invalid argument)"
    );
}

#[test]
fn payload_after_a_data_offset_is_read_from_there() {
    let cfg = FakeConfig {
        data_offset: 16,
        ..FakeConfig::default()
    };
    let (mut enc, _) = open(cfg, settings(320, 240));
    let (units, _, sums) = run(&mut enc, 4);
    assert_stream(&units, &sums, 10);
}

#[test]
fn without_timestamps_the_count_still_matches() {
    let cfg = FakeConfig {
        copy_timestamps: false,
        lag: 2,
        ..FakeConfig::default()
    };
    let (mut enc, _) = open(cfg, settings(320, 240));
    let (units, _, sums) = run(&mut enc, 11);
    assert_stream(&units, &sums, 10);
}

#[test]
fn wrong_picture_size_is_refused() {
    let (mut enc, _) = open(FakeConfig::default(), settings(320, 240));
    let p = OwnedPicture::new(640, 480, 0);
    let err = enc.encode(&p.picture()).unwrap_err();
    assert!(
        err.message
            .contains("picture 1 is 640x480, the encoder was set up for 320x240"),
        "{err}"
    );
    let short = Picture {
        width: 320,
        height: 240,
        y: &p.y[..100],
        u: &p.u,
        v: &p.v,
    };
    assert!(enc.encode(&short).is_err());
}

#[test]
fn odd_size_is_refused_before_opening() {
    let (dev, state) = FakeM2m::new(FakeConfig::default());
    let err = V4l2M2mEncoder::with_device(dev, Path::new(DEV), settings(641, 480))
        .err()
        .unwrap();
    assert!(err.message.contains("641x480"), "{err}");
    assert!(state.lock().unwrap().calls.is_empty());
}

#[test]
fn probe_finds_the_encode_node_among_others() {
    let node = |driver: &str, card: &str, caps: u32| FakeConfig {
        caps: DeviceCaps {
            driver: driver.into(),
            card: card.into(),
            bus_info: String::new(),
            caps,
        },
        ..FakeConfig::default()
    };
    let m2m = V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING;
    let mut nodes = VecDeque::from([
        node("unicam", "unicam", 0x0400_0001),
        node("bcm2835-codec", "bcm2835-codec-decode", m2m),
        node("bcm2835-codec", "bcm2835-codec-encode", m2m),
        node("bcm2835-codec", "bcm2835-codec-isp", m2m),
    ]);
    let paths: Vec<PathBuf> = [
        "/dev/video0",
        "/dev/video10",
        "/dev/video11",
        "/dev/video12",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let found = find_hardware_encoder_on(&paths, || FakeM2m::new(nodes.pop_front().unwrap()).0);
    assert_eq!(found, Some(PathBuf::from("/dev/video11")));
    assert_eq!(nodes.len(), 1, "stops at the first match");

    let mut none = VecDeque::from([node("vicodec", "vicodec", m2m)]);
    let found = find_hardware_encoder_on(&paths[..1], || FakeM2m::new(none.pop_front().unwrap()).0);
    assert_eq!(found, None);
}

#[test]
fn probe_on_this_machine_does_not_fail() {
    // Without a Pi this is None; on a Pi it names the encoder node.
    if let Some(path) = find_hardware_encoder() {
        assert!(path.to_string_lossy().starts_with("/dev/video"));
    }
}

#[test]
fn missing_node_fails_at_open() {
    let err = V4l2M2mEncoder::open(Path::new("/dev/video-not-here"), settings(320, 240))
        .err()
        .unwrap();
    assert!(
        err.message
            .starts_with("/dev/video-not-here: open failed: ENOENT (No such file or directory)"),
        "{err}"
    );
    // /dev/null opens but knows no V4L2 ioctl: the real ioctl path fails cleanly.
    let err = V4l2M2mEncoder::open(Path::new("/dev/null"), settings(320, 240))
        .err()
        .unwrap();
    assert!(
        err.message
            .starts_with("/dev/null: VIDIOC_QUERYCAP failed: ENOTTY"),
        "{err}"
    );
}

#[test]
fn levels_follow_table_a1() {
    assert_eq!(h264_level(640, 480, 30), 8); // 3.0
    assert_eq!(h264_level(1280, 720, 30), 9); // 3.1
    assert_eq!(h264_level(1280, 720, 60), 10); // 3.2
    assert_eq!(h264_level(1920, 1080, 30), 11); // 4.0
    assert_eq!(h264_level(1920, 1080, 60), 13); // 4.2
    assert_eq!(h264_level(320, 240, 15), 5); // 2.0
}

#[test]
fn nal_types_read_three_and_four_byte_start_codes() {
    let data = [
        0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 0, 0, 1, 0x41,
    ];
    assert_eq!(nal_types(&data), vec![7, 8, 5, 1]);
    assert_eq!(
        parameter_sets(&data),
        vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]
    );
    assert!(nal_types(&[]).is_empty());
}

/// A real encoder's access units (x264, Constrained Baseline, SPS/PPS in
/// front of every key frame) through the fake as the firmware hands them
/// out: header alone first, then one buffer per picture. What comes out,
/// written back to back, must decode in ffmpeg to the very same pictures,
/// with the key frames where x264 put them, also when the driver does not
/// repeat the header.
#[test]
fn real_h264_through_the_encoder_decodes_to_the_same_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("x264.h264");
    let src = source.to_str().unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-frames:v",
        "45",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-g",
        "15",
        "-bf",
        "0",
        "-f",
        "h264",
        src,
    ]);
    let stream = std::fs::read(&source).unwrap();
    let units = split_access_units(&stream);
    assert_eq!(units.len(), 45);
    // x264 repeats SPS/PPS on every key frame: the "driver ignores
    // REPEAT_SEQ_HEADER" run below really strips something.
    for k in [0, 15, 30] {
        assert!(nal_types(&units[k]).contains(&7), "{k}");
    }
    assert!(!nal_types(&units[1]).contains(&7));
    let want_md5 = ffmpeg(&["-i", src, "-f", "framemd5", "-"]);

    for ignores_repeat_header in [false, true] {
        let cfg = FakeConfig {
            replay: units.iter().cloned().collect(),
            ignores_repeat_header,
            lag: 2,
            ..FakeConfig::default()
        };
        let (mut enc, _) = open(cfg, settings(320, 240));
        let mut out = Vec::new();
        for n in 0..45 {
            let p = OwnedPicture::new(320, 240, n);
            out.extend(enc.encode(&p.picture()).unwrap());
        }
        out.extend(enc.finish().unwrap());
        assert_eq!(out.len(), 45);
        let keys: Vec<usize> = (0..45).filter(|&i| out[i].keyframe).collect();
        assert_eq!(keys, vec![0, 15, 30]);
        for &k in &keys {
            let types = nal_types(&out[k].data);
            assert!(types.contains(&7) && types.contains(&8), "{k}: {types:?}");
            assert_eq!(
                types.iter().filter(|&&t| t == 7).count(),
                1,
                "{k}: {types:?}"
            );
        }

        let written = dir.path().join(format!("out-{ignores_repeat_header}.h264"));
        let bytes: Vec<u8> = out.into_iter().flat_map(|u| u.data).collect();
        std::fs::write(&written, bytes).unwrap();
        let got_md5 = ffmpeg(&["-i", written.to_str().unwrap(), "-f", "framemd5", "-"]);
        assert_eq!(
            String::from_utf8_lossy(&got_md5),
            String::from_utf8_lossy(&want_md5),
            "ignores_repeat_header={ignores_repeat_header}"
        );
    }
}
