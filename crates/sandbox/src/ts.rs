//! Timestamps in each vendor's format.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// `2012-01-01T12:00:00Z` (Heroku, GitHub).
pub(crate) fn seconds() -> String {
    seconds_at(OffsetDateTime::now_utc())
}

/// [`seconds`] of a given time.
pub(crate) fn seconds_at(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// `2026-01-01T00:00:00.000Z` (Infisical).
pub(crate) fn millis() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// `2014-02-17T07:25:01.4178645+00:00` (Postmark's SubmittedAt).
pub(crate) fn postmark() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]+00:00"
        ))
        .unwrap_or_default()
}

/// `2026-01-01T00:00:00.000000+00:00` (logplex lines).
pub(crate) fn log() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
        ))
        .unwrap_or_default()
}
