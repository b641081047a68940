//! Records of the `clnrm-build/*` images runs use, so that `cache gc` can tell which
//! built images still matter without discovering or planning any test.
//!
//! A record is an ordinary entry of the [`BUILD_IMAGE_STAGE`] tree: its last use is
//! stamped as every entry's is, and gc evicts it by the same least-recently-used
//! rule. An image whose record gc evicts is no longer used by any run this cache
//! remembers; one it keeps, or has no record of, is left alone. This module does not
//! talk to the engine (that is `engine_gc.rs`).

use super::{Key, Memo};

/// The tree (and statistics line) of build image records.
pub const BUILD_IMAGE_STAGE: &str = "build-image";

const RECORD_VERSION: u32 = 1;

/// A build image's name without the `:latest` tag the engine adds, so that
/// `clnrm-build/ab12` and `clnrm-build/ab12:latest` are the same image.
pub fn build_image_name(tag: &str) -> &str {
    tag.strip_suffix(":latest").unwrap_or(tag)
}

fn record_key(name: &str) -> Key {
    Key::new(BUILD_IMAGE_STAGE, RECORD_VERSION, name.as_bytes())
}

impl Memo {
    /// Notes that a run used the build image `tag`. A record already there only has
    /// its last use refreshed (to the hour, like every entry), so repeated runs
    /// write nothing new.
    pub fn record_build_image(&self, tag: &str) {
        let name = build_image_name(tag);
        let key = record_key(name);
        if self.get_raw(BUILD_IMAGE_STAGE, &key).as_deref() != Some(name.as_bytes()) {
            self.put_raw(BUILD_IMAGE_STAGE, &key, name.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoOptions;

    #[test]
    fn a_record_is_written_once_whatever_the_spelling() {
        let memo = Memo::in_memory(MemoOptions::default());
        memo.record_build_image("clnrm-build/ab12:latest");
        memo.record_build_image("clnrm-build/ab12");
        memo.record_build_image("clnrm-build/ab12:latest");
        let stats = memo.stats().stages[BUILD_IMAGE_STAGE];
        assert_eq!((stats.entries, stats.writes), (1, 1));
    }
}
