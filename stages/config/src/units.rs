//! Durations ("200ms", "10s", "1m30s", "30d") and sizes ("2GiB", "500MB", "1024"): the one
//! parser of each, shared with the CLI so a flag and a config key accept exactly the same
//! spellings. `humantime` and `bytesize` do the arithmetic; this file only narrows what they
//! accept to clnrm's spellings and words the errors. It knows nothing of TOML or key paths.

/// The duration units clnrm accepts (`humantime` knows more: `w`, `M` for months, `y`, ...).
const DURATION_UNITS: &[&str] = &["ms", "s", "sec", "secs", "m", "min", "mins", "h", "d"];
const DURATION_UNITS_HINT: &str = "ms, s, m, h, d";

/// The size units clnrm accepts, matched case-insensitively (`bytesize` also knows `K`, `Ki`,
/// `PB`, `EiB`, ...); `""` is a bare byte count.
const SIZE_UNITS: &[&str] = &["", "b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"];
const SIZE_UNITS_HINT: &str = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB";

/// Parses a duration into milliseconds (rounded to the nearest).
///
/// A duration is one or more `<number><unit>` parts with nothing between them (`1m30s`), units
/// `ms`, `s`, `m`, `h`, `d` (also `sec`, `secs`, `min`, `mins`); the number may have a fraction
/// (`1.5s`). A bare number is rejected: its unit would be a guess.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"10s\" or \"200ms\"".into());
    }
    if s.contains(char::is_whitespace) {
        // `humantime` reads "1m 30s" and "10 s"; clnrm never did, so a value stays one word.
        return Err(format!(
            "invalid duration `{text}`: no spaces inside (write e.g. \"1m30s\")"
        ));
    }
    let duration = humantime::parse_duration(s).map_err(|e| duration_error(text, s, e))?;
    if let Some(unit) = units_of(s).find(|u| !DURATION_UNITS.contains(u)) {
        return Err(format!(
            "invalid duration `{text}`: unknown unit `{unit}` ({DURATION_UNITS_HINT})"
        ));
    }
    let rounded_ms = (duration.as_nanos() + 500_000) / 1_000_000;
    u64::try_from(rounded_ms).map_err(|_| format!("invalid duration `{text}`: too large"))
}

/// `humantime`'s error in clnrm's words; offsets in it are into the trimmed text `s`.
fn duration_error(text: &str, s: &str, e: humantime::DurationError) -> String {
    use humantime::DurationError as E;
    let rest = |offset: usize| s.get(offset..).unwrap_or("");
    match e {
        E::Empty => "empty duration; write e.g. \"10s\" or \"200ms\"".into(),
        E::NumberExpected(offset) => format!(
            "invalid duration `{text}`: expected a number at `{}`",
            rest(offset)
        ),
        E::InvalidCharacter(offset) => format!(
            "invalid duration `{text}`: unexpected `{}`",
            rest(offset).chars().next().unwrap_or(' ')
        ),
        E::UnknownUnit { unit, value, .. } if unit.is_empty() => format!(
            "invalid duration `{text}`: missing unit after `{value}` ({DURATION_UNITS_HINT})"
        ),
        E::UnknownUnit { unit, .. } => {
            format!("invalid duration `{text}`: unknown unit `{unit}` ({DURATION_UNITS_HINT})")
        }
        E::NumberOverflow => {
            format!("invalid duration `{text}`: too large (or finer than a nanosecond)")
        }
    }
}

/// The unit words of a duration such as `1m30s` (`m`, `s`).
fn units_of(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_ascii_digit() || c == '.')
        .filter(|unit| !unit.is_empty())
}

/// Parses a size into bytes: a bare whole number is bytes; units `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 1000) and `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), case-insensitive, with
/// optional space before the unit and a fraction allowed (`1.5KiB`; a part byte is dropped).
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let unit_start = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..unit_start], s[unit_start..].trim());
    if number.is_empty() {
        return Err(format!(
            "invalid size `{text}`: expected a number such as \"500MB\" or \"2GiB\""
        ));
    }
    if number.parse::<f64>().is_err() {
        return Err(format!("invalid size `{text}`: `{number}` is not a number"));
    }
    if !SIZE_UNITS.iter().any(|u| u.eq_ignore_ascii_case(unit)) {
        return Err(format!(
            "invalid size `{text}`: unknown unit `{unit}` ({SIZE_UNITS_HINT})"
        ));
    }
    if unit.is_empty() {
        return number.parse::<u64>().map_err(|_| {
            if number.contains('.') {
                format!("invalid size `{text}`: a byte count must be whole")
            } else {
                format!("invalid size `{text}`: too large")
            }
        });
    }
    let size: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("invalid size `{text}`: {e}"))?;
    // `bytesize` saturates instead of failing; no size with a unit is really 2^64 - 1 bytes.
    if size.as_u64() == u64::MAX {
        return Err(format!("invalid size `{text}`: too large"));
    }
    Ok(size.as_u64())
}
