//! `[determinism]`, the one table a test file and `cleanroom.toml` share: `seed` and
//! `freeze_clock`. It reads and checks them; it seeds and freezes nothing (the engine does).

use toml_edit::TableLike;

use crate::walk::{fields, Ctx};

/// `[determinism]`: seed and freeze_clock (an RFC 3339 date-time, quoted or not).
pub(crate) fn parse_determinism(
    ctx: &mut Ctx,
    t: &dyn TableLike,
    path: &str,
) -> (Option<u64>, Option<String>) {
    let mut seed = None;
    let mut clock = None;
    for f in fields(t, path) {
        match f.key {
            "seed" => seed = ctx.unsigned(&f),
            "freeze_clock" => {
                let text = match f.item.as_datetime() {
                    Some(d) => Some(d.to_string()),
                    None => ctx.string(&f),
                };
                if let Some(text) = text {
                    if is_rfc3339(&text) {
                        clock = Some(text);
                    } else {
                        ctx.value_error_hint(
                            &f,
                            format!("`{text}` is not an RFC 3339 date-time"),
                            "write e.g. \"2025-01-01T00:00:00Z\"",
                        );
                    }
                }
            }
            _ => ctx.unknown_key(&f.path, f.key, &f.span, crate::keys::known("determinism")),
        }
    }
    (seed, clock)
}

fn is_rfc3339(text: &str) -> bool {
    match text.parse::<toml_edit::Datetime>() {
        Ok(d) => d.date.is_some() && d.time.is_some() && d.offset.is_some(),
        Err(_) => false,
    }
}
