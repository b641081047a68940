//! The clock of the template functions: the frozen clock when the render has one,
//! else the real clock (which marks the render volatile), and RFC 3339 text in and
//! out (by the `time` crate). Not the functions that print it (see `mod.rs`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::session::with_session;

/// Milliseconds since the epoch: the frozen clock, or the real one (volatile).
pub(super) fn now_ms() -> tera::Result<i64> {
    with_session(|session| match session.clock_ms {
        Some(ms) => ms,
        None => {
            session.volatile = true;
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64)
        }
    })
}

/// The UTC time of `ms` (milliseconds since the epoch), when RFC 3339 can write it
/// (years 0000 to 9999).
fn utc_time(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .filter(|time| (0..=9999).contains(&time.year()))
}

/// `2025-01-01T00:00:00Z` (UTC, seconds precision).
pub(crate) fn format_rfc3339(ms: i64) -> tera::Result<String> {
    utc_time(ms)
        .and_then(|time| time.format(&Rfc3339).ok())
        .ok_or_else(|| {
            tera::Error::msg(format!(
                "the clock ({ms} ms since 1970) is outside the years 0000 to 9999"
            ))
        })
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, surrounding white space
/// ignored) into milliseconds since the epoch; `None` when it is not such a time or
/// its UTC year is not in 0000 to 9999.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let time = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let ms = i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?;
    utc_time(ms).map(|_| ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        for text in [
            "2025-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "1999-12-31T12:34:56Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let ms = parse_rfc3339(text).unwrap();
            assert_eq!(format_rfc3339(ms).unwrap(), text);
        }
        assert_eq!(
            parse_rfc3339("2025-01-01T00:00:00Z"),
            Some(1_735_689_600_000)
        );
        assert_eq!(
            parse_rfc3339("2025-01-01T02:00:00.5+02:00"),
            Some(1_735_689_600_500)
        );
        assert_eq!(
            parse_rfc3339(" 2025-01-01 00:00:00.1239z "),
            Some(1_735_689_600_123),
            "space separator, lower-case z, fraction truncated to ms"
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-500));
    }

    #[test]
    fn rfc3339_refuses_what_is_not_a_time() {
        for bad in [
            "",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-01-01",
            "2025-01-01T00:00:00",
            "2025-01-01T24:00:00Z",
            "x",
            // UTC year 10000: RFC 3339 cannot write it back
            "9999-12-31T23:00:00-02:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn clock_outside_rfc3339_years_is_an_error() {
        assert!(format_rfc3339(i64::MAX).is_err());
        assert!(
            format_rfc3339(-62_167_219_200_001).is_err(),
            "before year 0"
        );
        assert_eq!(
            format_rfc3339(-62_167_219_200_000).unwrap(),
            "0000-01-01T00:00:00Z"
        );
    }
}
