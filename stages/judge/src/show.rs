//! How values and output appear in a mismatch: pretty-printed, and cut to a size a person
//! reads in a terminal.

use serde_json::Value;

/// The most of one shown value (a node, a stream's tail).
const SHOWN: usize = 600;

/// `text` cut to at most `max` bytes (on a character boundary), saying how much was left out.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// The end of `text`, at most `max` bytes.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

pub(crate) fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A stream as a failed match shows it: its last part, or that it was empty.
pub(crate) fn stream(name: &str, text: &str) -> String {
    if text.is_empty() {
        format!("{name} was empty")
    } else {
        format!("{name}: {}", tail(text.trim_end(), 500))
    }
}

/// Where a regex that must not match did: the match and its line.
pub(crate) fn found_at(name: &str, text: &str, offset: usize, matched: &str) -> String {
    let line_no = text[..offset].matches('\n').count() + 1;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    format!(
        "{name} matched `{}` on line {line_no}: {}",
        cut(matched, 120),
        cut(&text[line_start..line_end], 300)
    )
}

/// One JSON value, pretty-printed and cut.
pub(crate) fn value(v: &Value) -> String {
    cut(
        &serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
        SHOWN,
    )
}

/// The nodes a path selected, as a failure shows them.
pub(crate) fn nodes(found: &[&Value]) -> String {
    match found {
        [] => "no node".to_string(),
        [one] => format!("1 node: {}", value(one)),
        many => {
            let all = Value::Array(many.iter().map(|v| (*v).clone()).collect());
            format!("{} nodes: {}", many.len(), value(&all))
        }
    }
}
