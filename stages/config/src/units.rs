//! Durations ("200ms", "10s", "1m30s", "30d") and sizes ("2GiB", "500MB", "1024").
//! Shared with the CLI so a flag and a config key accept exactly the same spellings.

/// Parses a duration into milliseconds.
///
/// A duration is one or more `<number><unit>` parts (`1m30s`), units `ms`, `s`, `m`, `h`, `d`;
/// the number may have a fraction (`1.5s`). A bare number is rejected: its unit would be a guess.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"10s\" or \"200ms\"".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() {
            return Err(format!(
                "invalid duration `{text}`: expected a number at `{}`",
                &s[start..]
            ));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: `{number}` is not a number"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let factor = match unit {
            "ms" => 1.0,
            "s" | "sec" | "secs" => 1_000.0,
            "m" | "min" | "mins" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: missing unit after `{number}` (ms, s, m, h, d)"
                ))
            }
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (ms, s, m, h, d)"
                ))
            }
        };
        total += value * factor;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration `{text}`: too large"));
    }
    Ok(total.round() as u64)
}

/// Parses a size into bytes: a bare number is bytes; units `B`, `KB`/`MB`/`GB`/`TB` (powers of
/// 1000) and `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), case-insensitive, fraction allowed.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim());
    if number.is_empty() {
        return Err(format!(
            "invalid size `{text}`: expected a number such as \"500MB\" or \"2GiB\""
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size `{text}`: `{number}` is not a number"))?;
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
            "invalid size `{text}`: unknown unit `{unit}` (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        ))
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("invalid size `{text}`: too large"));
    }
    if unit.is_empty() && number.contains('.') {
        return Err(format!("invalid size `{text}`: a byte count must be whole"));
    }
    Ok(bytes.round() as u64)
}
