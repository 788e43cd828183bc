//! Sandbox time for the scripted vendors: the wall clock plus however far the sandbox was
//! moved forward (`POST /_sandbox/clock`), so expiries and delayed changes are rehearsed
//! and tested without waiting for them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch.
pub(super) type Millis = i128;

/// The wall clock, in milliseconds since the Unix epoch.
pub(super) fn wall() -> Millis {
    OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
}

/// An RFC 3339 time (`2026-12-31T00:00:00Z`, `2026-12-31T01:00:00.250+01:00`) in
/// milliseconds since the Unix epoch.
pub(super) fn parse(text: &str) -> Option<Millis> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() / 1_000_000)
}

/// `at` as RFC 3339 in UTC, to the millisecond when it has any (`2026-12-31T00:00:00.250Z`).
pub(super) fn format(at: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(at * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `at` as RFC 3339 in UTC, to the second (what `{{now}}` renders, as the vendors' own
/// timestamps read).
pub(super) fn format_seconds(at: Millis) -> String {
    format(at.div_euclid(1000) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_written_and_offsets_count() {
        let at = parse("2026-12-31T00:00:00.250Z").unwrap();
        assert_eq!(format(at), "2026-12-31T00:00:00.25Z");
        assert_eq!(format_seconds(at), "2026-12-31T00:00:00Z");
        assert_eq!(parse("2026-12-31T01:00:00.250+01:00"), Some(at));
        assert_eq!(parse(&format(at + 1)), Some(at + 1));
        assert_eq!(parse("yesterday"), None);
        assert!(wall() > parse("2025-01-01T00:00:00Z").unwrap());
    }
}
