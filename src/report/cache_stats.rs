//! The human text of `clnrm cache`: the ccache-style `cache stats` panel and byte
//! sizes. The figures come from [`crate::cache`]; this file only words them.

use std::fmt::Write as _;

use crate::cache::{CacheStats, RemoteStats, StageStats};

/// `1.5 MiB`, `40.0 KiB`, `12 B`.
pub fn format_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

fn ratio_line(label: &str, part: u64, whole: u64) -> String {
    if whole == 0 {
        format!("  {label} {part} / {whole}\n")
    } else {
        let pct = part as f64 * 100.0 / whole as f64;
        format!("  {label} {part} / {whole} ({pct:.1} %)\n")
    }
}

fn stage_block(out: &mut String, title: &str, s: &StageStats) {
    let lookups = s.hits + s.misses;
    out.push_str(title);
    out.push('\n');
    out.push_str(&ratio_line("Hits:", s.hits, lookups));
    out.push_str(&ratio_line("Misses:", s.misses, lookups));
    let _ = writeln!(out, "  Entries: {} ({})", s.entries, format_bytes(s.bytes));
    let _ = writeln!(
        out,
        "  Writes: {}  Corrupt: {}  Evictions: {}",
        s.writes, s.corrupt, s.evictions
    );
}

/// The human form of `clnrm cache stats`, in the style of `ccache -s`.
pub fn format_stats_human(stats: &CacheStats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Cache directory: {}", stats.dir);
    let _ = writeln!(out, "Size on disk:    {}", format_bytes(stats.disk_bytes));
    let _ = writeln!(
        out,
        "Last gc:         {}",
        stats.last_gc.as_deref().unwrap_or("never")
    );
    for (name, s) in &stats.stages {
        out.push('\n');
        stage_block(&mut out, name, s);
    }
    out.push('\n');
    stage_block(&mut out, "Total", &stats.total());
    if let Some(remote) = &stats.remote {
        out.push('\n');
        remote_block(&mut out, remote);
    }
    out
}

/// The remote tier's figures (docs/reference.md §10), and whether what it serves is checked.
fn remote_block(out: &mut String, remote: &RemoteStats) {
    let f = &remote.figures;
    match (&remote.url, remote.mode) {
        (Some(url), Some(mode)) => {
            let _ = writeln!(out, "Remote cache {url} ({mode})");
        }
        _ => out.push_str("Remote cache (none configured now; figures of earlier runs)\n"),
    }
    let lookups = f.hits + f.misses;
    out.push_str(&ratio_line("Hits:", f.hits, lookups));
    out.push_str(&ratio_line("Misses:", f.misses, lookups));
    let _ = writeln!(out, "  Errors: {}  Rejected: {}", f.errors, f.rejected);
    let _ = writeln!(
        out,
        "  Uploads: {}  Down: {}  Up: {}",
        f.uploads,
        format_bytes(f.bytes_down),
        format_bytes(f.bytes_up)
    );
    if remote.url.is_some() {
        out.push_str(if remote.signed {
            "  Values are signed and checked (CLNRM_REMOTE_CACHE_KEY)\n"
        } else {
            "  Values are not signed: the remote is trusted as it is (set CLNRM_REMOTE_CACHE_KEY to sign and check them)\n"
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(format_bytes(40 * 1024), "40.0 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn human_format_has_ccache_hit_lines_and_totals() {
        let mut stages = BTreeMap::new();
        stages.insert(
            "render".to_string(),
            StageStats {
                entries: 10,
                bytes: 40_960,
                hits: 180,
                misses: 50,
                writes: 50,
                corrupt: 0,
                evictions: 0,
            },
        );
        stages.insert("parse".to_string(), StageStats::default());
        let stats = CacheStats {
            dir: ".clnrm/cache".into(),
            disk_bytes: 1_048_576,
            last_gc: None,
            stages,
            remote: None,
        };
        let text = format_stats_human(&stats);
        assert!(text.contains("Cache directory: .clnrm/cache"), "{text}");
        assert!(text.contains("Size on disk:    1.0 MiB"), "{text}");
        assert!(text.contains("Hits: 180 / 230 (78.3 %)"), "{text}");
        assert!(text.contains("Entries: 10 (40.0 KiB)"), "{text}");
        assert!(text.contains("Last gc:         never"), "{text}");
        let total = text.split("Total\n").nth(1).expect("a total block");
        assert!(total.contains("(78.3 %)"), "{text}");
    }
}
