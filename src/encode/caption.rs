//! Text burned in after the time while it is fresh: the speed (and
//! position) from the latest GPS fix. Whoever knows the text sets it with
//! the monotonic time it belongs to; each encoder asks for the text at its
//! frame's capture time and gets the placeholder once the text is older
//! than [`CAPTION_FRESH_NS`] (a receiver that lost its fix or was
//! unplugged shows `-- km/h`, never a speed from minutes ago).

use std::sync::Mutex;

/// How long a caption is shown after the time it belongs to.
pub const CAPTION_FRESH_NS: u64 = 3_000_000_000;

#[derive(Debug, Default)]
pub struct Caption {
    inner: Mutex<CaptionText>,
}

#[derive(Debug, Default)]
struct CaptionText {
    /// The text and the monotonic time it is true at.
    latest: Option<(u64, String)>,
    /// Shown when `latest` is missing or stale; none: nothing is added.
    placeholder: Option<String>,
}

impl Caption {
    /// `text` is true at `mono_ns`.
    pub fn set(&self, mono_ns: u64, text: String) {
        self.lock().latest = Some((mono_ns, text));
    }

    /// What shows while no fresh text is known (`-- km/h`).
    pub fn set_placeholder(&self, text: Option<String>) {
        self.lock().placeholder = text;
    }

    /// The text for a frame captured at `mono_ns`.
    pub fn text_at(&self, mono_ns: u64) -> Option<String> {
        let c = self.lock();
        match &c.latest {
            Some((at, text)) if mono_ns.abs_diff(*at) <= CAPTION_FRESH_NS => Some(text.clone()),
            _ => c.placeholder.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaptionText> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_caption_shows_while_fresh_then_the_placeholder() {
        let c = Caption::default();
        assert_eq!(c.text_at(5 * S), None, "nothing set: nothing added");
        c.set_placeholder(Some("-- km/h".into()));
        assert_eq!(c.text_at(5 * S).as_deref(), Some("-- km/h"));
        c.set(10 * S, "50 km/h".into());
        assert_eq!(c.text_at(10 * S).as_deref(), Some("50 km/h"));
        assert_eq!(c.text_at(13 * S).as_deref(), Some("50 km/h"));
        assert_eq!(c.text_at(13 * S + 1).as_deref(), Some("-- km/h"));
        // A frame captured just before the fix was read still gets it.
        assert_eq!(c.text_at(9 * S).as_deref(), Some("50 km/h"));
    }
}
