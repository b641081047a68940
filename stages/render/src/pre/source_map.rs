//! Preprocessed text with a map from every output byte back to the user's original
//! text, so that positions in Tera's errors can name the line the user wrote. Not the
//! rewriting itself (see `rewriter.rs`).

/// A run of output text: copied from the original at `orig`, or synthesised (then
/// every byte of it maps to `orig`, the place of the construct it replaces).
#[derive(Debug, Clone, Copy)]
struct Segment {
    out: usize,
    orig: usize,
    copied: bool,
}

/// Preprocessed text and its map to original byte offsets.
#[derive(Debug, Clone, Default)]
pub struct MappedText {
    pub text: String,
    segments: Vec<Segment>,
}

impl MappedText {
    pub(super) fn with_capacity(text_bytes: usize, segments: usize) -> Self {
        MappedText {
            text: String::with_capacity(text_bytes),
            segments: Vec::with_capacity(segments),
        }
    }

    /// Appends `src[from..to]`, mapped to itself.
    pub(super) fn copy(&mut self, src: &str, from: usize, to: usize) {
        if to > from {
            self.segments.push(Segment {
                out: self.text.len(),
                orig: from,
                copied: true,
            });
            self.text.push_str(&src[from..to]);
        }
    }

    /// Appends `text` that is not in the original, mapped to original offset `at`.
    pub(super) fn synth(&mut self, text: &str, at: usize) {
        if !text.is_empty() {
            self.segments.push(Segment {
                out: self.text.len(),
                orig: at,
                copied: false,
            });
            self.text.push_str(text);
        }
    }

    /// Original byte offset of output byte offset `out`.
    pub fn to_orig(&self, out: usize) -> usize {
        let following = self.segments.partition_point(|s| s.out <= out);
        let Some(segment) = following.checked_sub(1).map(|i| self.segments[i]) else {
            return 0;
        };
        if segment.copied {
            segment.orig + (out - segment.out)
        } else {
            segment.orig
        }
    }
}
