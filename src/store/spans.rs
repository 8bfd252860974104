//! Stretches of continuous recording, as the timeline draws them.

use super::format::{IndexEntry, FLAG_WALL_ESTIMATED};

/// Frames further apart than this split the timeline: a visible gap.
pub const GAP_NS: i64 = 2_000_000_000;

/// A stretch of continuous recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub start_ns: i64,
    /// Wall time of the last frame.
    pub end_ns: i64,
    pub frames: u64,
    /// The wall times were estimated (restored after a boot without a
    /// real-time clock, not yet set from a phone).
    pub estimated: bool,
}

/// Builds spans from frame times given in order.
#[derive(Clone, Debug, Default)]
pub struct SpanBuilder {
    pub spans: Vec<Span>,
}

impl SpanBuilder {
    pub fn push(&mut self, wall_ns: i64, estimated: bool) {
        match self.spans.last_mut() {
            Some(s)
                if wall_ns >= s.end_ns
                    && wall_ns - s.end_ns <= GAP_NS
                    && s.estimated == estimated =>
            {
                s.end_ns = wall_ns;
                s.frames += 1;
            }
            _ => self.spans.push(Span {
                start_ns: wall_ns,
                end_ns: wall_ns,
                frames: 1,
                estimated,
            }),
        }
    }

    /// Adds a span built elsewhere, joining it to the last one if they touch.
    pub fn extend(&mut self, span: Span) {
        match self.spans.last_mut() {
            Some(s)
                if span.start_ns >= s.end_ns
                    && span.start_ns - s.end_ns <= GAP_NS
                    && s.estimated == span.estimated =>
            {
                s.end_ns = s.end_ns.max(span.end_ns);
                s.frames += span.frames;
            }
            _ => self.spans.push(span),
        }
    }
}

/// The spans of a list of frames.
pub fn spans_of(frames: &[IndexEntry]) -> Vec<Span> {
    let mut b = SpanBuilder::default();
    for f in frames {
        b.push(f.wall_ns, f.flags & FLAG_WALL_ESTIMATED != 0);
    }
    b.spans
}
