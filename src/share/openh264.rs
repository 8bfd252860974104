//! The software H.264 encoder: Cisco's OpenH264, built from source by the
//! `openh264` crate (feature `software-h264`). Used where there is no
//! hardware encoder; `docs/export.md` ("Share clips") says why this one and
//! what its patent position is.
//!
//! OpenH264 encodes synchronously: every picture comes back as its access
//! unit at once, so [`finish`](H264Encoder::finish) has nothing left.

use ::openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use ::openh264::formats::YUVSlices;
use ::openh264::{OpenH264API, Timestamp};

use super::encoder::{AccessUnit, EncodeError, EncoderSettings, H264Encoder, Picture};

const NAME: &str = "openh264";

pub struct OpenH264Encoder {
    encoder: Encoder,
    settings: EncoderSettings,
    /// Pictures encoded so far, for the timestamps rate control sees.
    pictures: u64,
}

fn error(message: impl Into<String>) -> EncodeError {
    EncodeError {
        encoder: NAME,
        message: message.into(),
    }
}

impl OpenH264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<OpenH264Encoder, EncodeError> {
        if settings.width == 0
            || settings.height == 0
            || settings.width % 2 != 0
            || settings.height % 2 != 0
        {
            return Err(error(format!(
                "picture size {}x{} is not even and non-zero",
                settings.width, settings.height
            )));
        }
        let config = EncoderConfig::new()
            // Baseline as OpenH264 writes it is Constrained Baseline: CAVLC,
            // no B-frames, one slice group; every phone decodes it.
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.fps.max(1) as f32))
            // A skipped frame would leave a picture without its access unit.
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.keyframe_interval.max(1),
            ))
            // Every IDR repeats the same SPS and PPS, as the avcC box
            // holds only the first ones.
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .complexity(Complexity::Low)
            // Share clips are made while the machine records: one thread.
            .num_threads(1)
            // The pictures are BT.601 limited range (see `picture`).
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| error(format!("cannot start: {e}")))?;
        Ok(OpenH264Encoder {
            encoder,
            settings,
            pictures: 0,
        })
    }
}

impl H264Encoder for OpenH264Encoder {
    fn name(&self) -> String {
        NAME.to_string()
    }

    fn encode(&mut self, picture: &Picture<'_>) -> Result<Vec<AccessUnit>, EncodeError> {
        let (w, h) = (picture.width as usize, picture.height as usize);
        if (picture.width, picture.height) != (self.settings.width, self.settings.height)
            || picture.y.len() != w * h
            || picture.u.len() != w / 2 * (h / 2)
            || picture.v.len() != w / 2 * (h / 2)
        {
            return Err(error(format!(
                "picture {}x{} with planes of {}, {} and {} bytes does not match the {}x{} I420 stream",
                picture.width,
                picture.height,
                picture.y.len(),
                picture.u.len(),
                picture.v.len(),
                self.settings.width,
                self.settings.height
            )));
        }
        let source = YUVSlices::new((picture.y, picture.u, picture.v), (w, h), (w, w / 2, w / 2));
        let millis = self.pictures * 1000 / self.settings.fps.max(1) as u64;
        let n = self.pictures;
        self.pictures += 1;
        let stream = self
            .encoder
            .encode_at(&source, Timestamp::from_millis(millis))
            .map_err(|e| error(format!("picture {n}: {e}")))?;
        let keyframe = match stream.frame_type() {
            FrameType::IDR | FrameType::I => true,
            FrameType::P | FrameType::IPMixed => false,
            other => {
                return Err(error(format!(
                    "picture {n}: no access unit (frame type {other:?})"
                )))
            }
        };
        let data = stream.to_vec();
        if data.is_empty() {
            return Err(error(format!("picture {n}: empty access unit")));
        }
        Ok(vec![AccessUnit { data, keyframe }])
    }

    fn finish(&mut self) -> Result<Vec<AccessUnit>, EncodeError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NAL unit types of an Annex B access unit, in order.
    fn nal_types(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                if let Some(b) = data.get(i + 3) {
                    out.push(b & 0x1f);
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        out
    }

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 64,
            height: 48,
            fps: 30,
            bitrate_bps: 200_000,
            keyframe_interval: 4,
        }
    }

    #[test]
    fn every_picture_comes_back_as_one_access_unit_key_frame_first() {
        let s = settings();
        let mut enc = OpenH264Encoder::new(s).expect("encoder");
        assert_eq!(enc.name(), "openh264");
        let (w, h) = (s.width as usize, s.height as usize);
        let mut units = Vec::new();
        for n in 0..10u8 {
            let y: Vec<u8> = (0..w * h).map(|i| (i as u8).wrapping_add(n * 8)).collect();
            let u = vec![128u8; w * h / 4];
            let v = vec![100u8 + n; w * h / 4];
            let picture = Picture {
                width: s.width,
                height: s.height,
                y: &y,
                u: &u,
                v: &v,
            };
            units.extend(enc.encode(&picture).expect("encode"));
        }
        units.extend(enc.finish().expect("finish"));
        assert_eq!(units.len(), 10);
        assert!(units[0].keyframe);
        assert_eq!(&nal_types(&units[0].data)[..3], &[7, 8, 5]);
        assert!(!units[1].keyframe);
        assert_eq!(nal_types(&units[1].data), vec![1]);
        // The keyframe interval holds, and each IDR carries SPS and PPS again.
        assert!(units[4].keyframe);
        assert_eq!(&nal_types(&units[4].data)[..3], &[7, 8, 5]);
    }

    #[test]
    fn a_picture_of_the_wrong_size_is_an_error_not_a_panic() {
        let mut enc = OpenH264Encoder::new(settings()).expect("encoder");
        let y = vec![0u8; 10];
        let err = enc
            .encode(&Picture {
                width: 64,
                height: 48,
                y: &y,
                u: &y,
                v: &y,
            })
            .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(OpenH264Encoder::new(EncoderSettings {
            width: 63,
            ..settings()
        })
        .is_err());
    }
}
