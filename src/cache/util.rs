//! Two helpers every part of the cache uses: the clock in unix seconds, and an
//! error's text on one line. A leaf: it imports nothing of the cache, so the
//! files that use it never import each other through it.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Warnings are single lines, whatever sled's error text looks like.
pub(crate) fn one_line(s: impl std::fmt::Display) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
