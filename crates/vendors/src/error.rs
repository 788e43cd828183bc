//! The one error type every vendor call returns.

use runbook_secret::redact;
use serde_json::json;
use std::fmt;
use std::time::Duration;

/// What kind of failure a vendor call hit; scripts and the retry loop branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    Server,
    Timeout,
    Connection,
    InvalidResponse,
    Refused,
    Validation,
    /// A credential or endpoint is missing or malformed in the configuration.
    Config,
    Other,
}

impl ErrorKind {
    /// Every kind, for the code catalogue (`runbook::vendor::KIND`).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::RateLimited,
        ErrorKind::Server,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::InvalidResponse,
        ErrorKind::Refused,
        ErrorKind::Validation,
        ErrorKind::Config,
        ErrorKind::Other,
    ];

    /// Stable snake_case name, used in diagnostic codes and `to_json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::Refused => "refused",
            ErrorKind::Validation => "validation",
            ErrorKind::Config => "config",
            ErrorKind::Other => "other",
        }
    }

    /// The kind a plain HTTP status maps to when the vendor body says nothing more precise.
    pub(crate) fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 | 410 => ErrorKind::NotFound,
            400 | 409 | 413 | 415 | 422 => ErrorKind::Validation,
            429 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::Server,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The vendor's own error code: Postmark's numeric `ErrorCode`, Heroku's `id`, Infisical's `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorCode {
    Number(i64),
    Text(String),
}

impl fmt::Display for VendorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VendorCode::Number(n) => write!(f, "{n}"),
            VendorCode::Text(s) => f.write_str(s),
        }
    }
}

/// A failed vendor call: which vendor, which request, what came back, and what to do next.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct VendorError {
    d: Box<Details>,
}

/// Boxed so `Result<T, VendorError>` stays small.
#[derive(Debug, Clone)]
struct Details {
    vendor: &'static str,
    method: String,
    route: String,
    status: Option<u16>,
    code: Option<VendorCode>,
    message: String,
    kind: ErrorKind,
    /// Extra advice that only the vendor client knows (e.g. which env var holds the key).
    hint: Option<String>,
    retry_after: Option<Duration>,
    timeout: Option<Duration>,
    attempts: u32,
    /// The request was sent and its answer never came: a write may have taken effect.
    maybe_applied: bool,
}

impl VendorError {
    /// A new error; the message is redacted here, once, so no caller can forget.
    pub fn new(
        vendor: &'static str,
        method: impl Into<String>,
        route: impl Into<String>,
        kind: ErrorKind,
        message: impl AsRef<str>,
    ) -> Self {
        VendorError {
            d: Box::new(Details {
                vendor,
                method: method.into(),
                route: redact(&route.into()).into_owned(),
                status: None,
                code: None,
                message: redact(message.as_ref()).into_owned(),
                kind,
                hint: None,
                retry_after: None,
                timeout: None,
                attempts: 1,
                maybe_applied: false,
            }),
        }
    }

    /// A missing or malformed configuration value, reported when the vendor is first used.
    pub fn config(vendor: &'static str, message: impl AsRef<str>, hint: impl Into<String>) -> Self {
        VendorError::new(vendor, "-", "-", ErrorKind::Config, message).with_hint(hint)
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.d.status = Some(status);
        self
    }

    pub(crate) fn with_code(mut self, code: Option<VendorCode>) -> Self {
        self.d.code = code.map(|c| match c {
            VendorCode::Text(t) => VendorCode::Text(redact(&t).into_owned()),
            n => n,
        });
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.d.hint = Some(redact(&hint.into()).into_owned());
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.d.retry_after = retry_after;
        self
    }

    /// Marks an error whose request was sent before the answer was lost.
    pub(crate) fn answer_lost(mut self) -> Self {
        self.d.maybe_applied = true;
        self
    }

    /// Whether the request reached the vendor and its answer was lost: a write may have
    /// taken effect, and only a check (or the operator) can tell.
    pub fn maybe_applied(&self) -> bool {
        self.d.maybe_applied
    }

    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.d.timeout = Some(timeout);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.d.attempts = attempts;
        self
    }

    pub fn vendor(&self) -> &'static str {
        self.d.vendor
    }

    pub fn method(&self) -> &str {
        &self.d.method
    }

    pub fn route(&self) -> &str {
        &self.d.route
    }

    pub fn kind(&self) -> ErrorKind {
        self.d.kind
    }

    pub fn status(&self) -> Option<u16> {
        self.d.status
    }

    pub fn code(&self) -> Option<&VendorCode> {
        self.d.code.as_ref()
    }

    pub fn message(&self) -> &str {
        &self.d.message
    }

    /// How many HTTP attempts were made before giving up.
    pub fn attempts(&self) -> u32 {
        self.d.attempts
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.d.retry_after
    }

    /// A map for scripts: `vendor, method, route, status, code, message, kind`.
    pub fn to_json(&self) -> serde_json::Value {
        let code = match &self.d.code {
            Some(VendorCode::Number(n)) => json!(n),
            Some(VendorCode::Text(t)) => json!(t),
            None => serde_json::Value::Null,
        };
        json!({
            "vendor": self.d.vendor,
            "method": self.d.method,
            "route": self.d.route,
            "status": self.d.status,
            "code": code,
            "message": self.d.message,
            "kind": self.d.kind.as_str(),
            "maybe_applied": self.d.maybe_applied,
        })
    }

    fn code_label(&self) -> &'static str {
        crate::Vendor::from_name(self.d.vendor).map_or("code", crate::Vendor::code_label)
    }

    fn render(&self) -> String {
        let mut out = format!("{} ", self.d.vendor);
        if self.d.kind != ErrorKind::Config {
            out.push_str(&format!("{} {} → ", self.d.method, self.d.route));
        }
        match (self.d.status, self.d.kind) {
            (Some(s), _) => {
                let reason = reqwest::StatusCode::from_u16(s)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                    .unwrap_or("");
                out.push_str(&format!("{s} {reason}"));
            }
            (None, ErrorKind::Timeout) => match self.d.timeout {
                Some(t) => out.push_str(&format!("timed out after {}", fmt_duration(t))),
                None => out.push_str("timed out"),
            },
            (None, ErrorKind::Connection) => out.push_str("connection failed"),
            (None, ErrorKind::Refused) => out.push_str("refused"),
            (None, ErrorKind::InvalidResponse) => out.push_str("invalid response"),
            (None, ErrorKind::Config) => out.push_str("is not configured"),
            (None, kind) => out.push_str(kind.as_str()),
        }
        if !self.d.message.is_empty() {
            out.push_str(": ");
            out.push_str(&self.d.message);
        }
        if let Some(code) = &self.d.code {
            out.push_str(&format!(" ({} {code})", self.code_label()));
        }
        if self.d.attempts > 1 {
            out.push_str(&format!(" after {} attempts", self.d.attempts));
        }
        redact(&out).into_owned()
    }

    /// What the operator should do next.
    pub fn help_text(&self) -> String {
        if let Some(hint) = &self.d.hint {
            return hint.clone();
        }
        match self.d.kind {
            ErrorKind::Unauthorized => format!("check the {} credential", self.d.vendor),
            ErrorKind::Forbidden => format!(
                "the {} credential works but lacks permission for this resource",
                self.d.vendor
            ),
            ErrorKind::NotFound => "check the name or id in the request".into(),
            ErrorKind::RateLimited => match self.d.retry_after {
                Some(d) => format!(
                    "{} is rate limiting us; wait {} and retry the step",
                    self.d.vendor,
                    fmt_duration(d)
                ),
                None => format!("{} is rate limiting us; wait and retry the step", self.d.vendor),
            },
            ErrorKind::Server => format!(
                "{} had an internal error; check its status page and retry the step",
                self.d.vendor
            ),
            // A write whose answer never came may have taken effect (docs/errors.md): the
            // advice says so rather than "retry" alone (a fault review).
            ErrorKind::Timeout
                if self.d.maybe_applied
                    && !matches!(self.d.method.as_str(), "GET" | "HEAD" | "OPTIONS") =>
            {
                format!(
                "the vendor did not answer {}: the write may have taken effect; check the vendor before sending it again (`runbook resume` reads the target back first)",
                self.d
                    .timeout
                    .map_or("in time".into(), |t| format!("within {}", fmt_duration(t)))
                )
            }
            ErrorKind::Timeout => match self.d.timeout {
                Some(t) => format!(
                    "the vendor did not answer within {}; retry the step",
                    fmt_duration(t)
                ),
                None => "the vendor did not answer in time; retry the step".into(),
            },
            ErrorKind::Connection => {
                "could not reach the vendor; check the network and the endpoint URL, then retry the step"
                    .into()
            }
            ErrorKind::InvalidResponse => {
                "the vendor answered with something we could not read; check the endpoint URL points at the real API"
                    .into()
            }
            ErrorKind::Refused => {
                "use an https:// URL (plain http:// is only allowed for loopback addresses)".into()
            }
            ErrorKind::Validation => "fix the request fields named in the message".into(),
            ErrorKind::Config => "set the missing configuration and run again".into(),
            ErrorKind::Other => "see the vendor's message above".into(),
        }
    }
}

impl miette::Diagnostic for VendorError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!(
            "runbook::vendor::{}",
            self.d.kind.as_str()
        )))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.help_text()))
    }
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_secret::{Secret, Source};

    #[test]
    fn display_names_vendor_route_status_message_and_code() {
        let e = VendorError::new(
            "postmark",
            "GET",
            "/server",
            ErrorKind::Unauthorized,
            "bad token",
        )
        .with_status(401)
        .with_code(Some(VendorCode::Number(10)));
        assert_eq!(
            e.to_string(),
            "postmark GET /server → 401 Unauthorized: bad token (ErrorCode 10)"
        );
        let d: &dyn miette::Diagnostic = &e;
        assert_eq!(
            d.code().map(|c| c.to_string()).as_deref(),
            Some("runbook::vendor::unauthorized")
        );
    }

    #[test]
    fn timeouts_say_how_long_we_waited() {
        let e = VendorError::new("heroku", "GET", "/apps/a", ErrorKind::Timeout, "")
            .with_timeout(Duration::from_secs(30));
        assert_eq!(e.to_string(), "heroku GET /apps/a → timed out after 30s");
        assert!(e.help_text().contains("within 30s; retry the step"));
        // A write's answer lost: "retry" alone invited sending it twice (a fault review).
        let lost = VendorError::new(
            "heroku",
            "PATCH",
            "/apps/a/config-vars",
            ErrorKind::Timeout,
            "",
        )
        .with_timeout(Duration::from_secs(30))
        .answer_lost();
        assert_eq!(
            lost.help_text(),
            "the vendor did not answer within 30s: the write may have taken effect; check the vendor before sending it again (`runbook resume` reads the target back first)"
        );
    }

    #[test]
    fn messages_are_redacted() {
        let s = Secret::new("error-redaction-canary-1234", Source::Literal);
        let e = VendorError::new(
            "heroku",
            "PATCH",
            "/apps/a/config-vars",
            ErrorKind::Validation,
            format!("value {} is bad", s.expose()),
        )
        .with_status(422);
        assert!(!e.to_string().contains(s.expose()));
        assert!(!format!("{e:?}").contains(s.expose()));
        assert!(!e.to_json().to_string().contains(s.expose()));
    }

    #[test]
    fn to_json_has_the_documented_keys() {
        let e = VendorError::new("infisical", "GET", "/x", ErrorKind::NotFound, "m")
            .with_status(404)
            .with_code(Some(VendorCode::Text("NotFound".into())));
        let j = e.to_json();
        for k in [
            "vendor", "method", "route", "status", "code", "message", "kind",
        ] {
            assert!(j.get(k).is_some(), "{k}");
        }
        assert_eq!(j["kind"], "not_found");
        assert_eq!(j["code"], "NotFound");
    }
}
