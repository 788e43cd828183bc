//! Fault injection: rules matched against every request by a middleware in front of every
//! simulator, so each route gets the same treatment.
//!
//! Compact grammar (CLI `--fault`, or a string in a scenario's `faults` list):
//!
//! ```text
//! RULE    = VENDOR [":" METHOD] [":" PATH] "=" ACTION {":" OPTION}
//! VENDOR  = a built-in simulator (postmark, infisical, heroku, github, raptor)
//!         | a scripted vendor's name
//! METHOD  = GET | POST | PUT | PATCH | DELETE | *          (omitted = any)
//! PATH    = "/..."  exact or segment prefix; "*" matches within one segment, "**" anything
//! ACTION  = 3-digit status (the vendor's real error body) | drop | lost | committed[=5XX]
//!         | stall | malformed | latency=MS
//! OPTION  = once | always | times=N | after=K | retry_after=SECS
//! ```
//!
//! Examples: `postmark:GET:/server=500:once`,
//! `heroku:PATCH:/apps/*/config-vars=drop:after=1:times=1`, `infisical=429:retry_after=1:times=2`.
//! Default `times` is `always`; `after=K` lets the first K matching requests through.
//! Raptor's own sends to Postmark match `raptor:POST:/{app}/postmark/email`, so
//! `raptor:POST:/raxx-api-staging/postmark/email=401` makes Postmark reject that app's mail.
//! Every action but `latency`, `lost` and `committed` answers instead of the real handler
//! (the request has no effect). `lost` and `committed` let the vendor apply the write first:
//! `lost` then drops the connection, `committed` answers the vendor's own 5xx (500 unless
//! given, `committed=503`), the "it worked but said it failed" answer real vendors give when
//! a step after the commit (a webhook, a cache, a replica) fails.

use crate::simulator;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Mutex;

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status and the vendor's own error body.
    Status(u16),
    /// Wait this many milliseconds, then serve normally.
    Latency(u64),
    /// Close the connection without an answer (the request is not served).
    Drop,
    /// Serve the request (a write takes effect), then close the connection before the
    /// answer: the client cannot tell whether it happened.
    Lost,
    /// Serve the request (a write takes effect), then answer this 5xx status with the
    /// vendor's own error body instead of the real answer.
    Committed(u16),
    /// Answer 200 with a truncated JSON body.
    Malformed,
    /// Never answer (until the sandbox shuts down).
    Stall,
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub vendor: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub action: FaultAction,
    /// Seconds for a `Retry-After` header on status answers.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// How many times it fires; `None` = always.
    #[serde(default, deserialize_with = "deserialize_times")]
    pub times: Option<u32>,
    /// Matching requests let through before it starts firing.
    #[serde(default)]
    pub after: u32,
}

/// A malformed fault string.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("invalid fault '{spec}': {reason}")]
#[diagnostic(
    code(runbook::sandbox::fault),
    help("write VENDOR[:METHOD][:PATH]=ACTION[:once|always|times=N|after=K|retry_after=S], e.g. postmark:GET:/server=500:once")
)]
pub struct FaultParseError {
    pub spec: String,
    pub reason: String,
}

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*",
];

impl FaultRule {
    /// Parses the compact grammar in the module docs.
    pub fn parse(spec: &str) -> Result<Self, FaultParseError> {
        let err = |reason: &str| FaultParseError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (target, action) = spec
            .split_once('=')
            .ok_or_else(|| err("missing '=' between the target and the action"))?;
        let mut parts = target.splitn(3, ':');
        let vendor = parts.next().unwrap_or_default().trim().to_lowercase();
        let well_formed = !vendor.is_empty()
            && vendor
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !well_formed {
            return Err(err(&format!(
                "'{vendor}' is not a vendor name (built in: {}, or a scripted vendor's name)",
                simulator::names().collect::<Vec<_>>().join(", ")
            )));
        }
        let mut method = None;
        let mut path = None;
        for p in parts {
            let p = p.trim();
            if p.starts_with('/') {
                path = Some(p.to_string());
            } else if METHODS.contains(&p.to_uppercase().as_str()) {
                if p != "*" {
                    method = Some(p.to_uppercase());
                }
            } else if !p.is_empty() {
                return Err(err(&format!(
                    "'{p}' is neither an HTTP method nor a path starting with '/'"
                )));
            }
        }
        let mut opts = action.split(':');
        let act = opts.next().unwrap_or_default().trim();
        let action = match act {
            "drop" => FaultAction::Drop,
            "lost" => FaultAction::Lost,
            "committed" => FaultAction::Committed(500),
            a if a.starts_with("committed=") => match a["committed=".len()..].parse::<u16>() {
                Ok(s) if (500..=599).contains(&s) => FaultAction::Committed(s),
                _ => return Err(err("committed takes a 5xx status, e.g. committed=503")),
            },
            "stall" => FaultAction::Stall,
            "malformed" => FaultAction::Malformed,
            a if a.starts_with("latency=") => FaultAction::Latency(
                a["latency=".len()..]
                    .parse()
                    .map_err(|_| err("latency needs milliseconds, e.g. latency=250"))?,
            ),
            a => match a.parse::<u16>() {
                Ok(s) if (100..=599).contains(&s) => FaultAction::Status(s),
                _ => {
                    return Err(err(&format!(
                        "unknown action '{a}' (a status like 500, drop, lost, committed[=5XX], stall, malformed or latency=MS)"
                    )))
                }
            },
        };
        let mut rule = FaultRule {
            vendor,
            method,
            path,
            action,
            retry_after: None,
            times: None,
            after: 0,
        };
        for o in opts {
            let num = |v: &str| -> Result<u32, FaultParseError> {
                v.parse().map_err(|_| err(&format!("'{o}' needs a number")))
            };
            match o.trim().split_once('=') {
                None if o.trim() == "once" => rule.times = Some(1),
                None if o.trim() == "always" => rule.times = None,
                Some(("times", v)) => rule.times = Some(num(v)?),
                Some(("after", v)) => rule.after = num(v)?,
                Some(("retry_after", v)) => rule.retry_after = Some(u64::from(num(v)?)),
                _ => return Err(err(&format!("unknown option '{o}'"))),
            }
        }
        Ok(rule)
    }

    fn matches(&self, vendor: &str, method: &str, path: &str) -> bool {
        self.vendor == vendor
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| path_matches(p, path))
    }
}

/// `*` matches within one segment, `**` anything; without wildcards, exact or segment prefix.
fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        let p = pattern.trim_end_matches('/');
        return path == pattern
            || p.is_empty()
            || path == p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'));
    }
    glob(pattern.as_bytes(), path.as_bytes())
}

/// Matches in O(pattern × path) by tracking every pattern position reachable so far, so a
/// pattern of many `**` cannot make the simulator spin (backtracking was exponential).
pub(crate) fn glob(p: &[u8], s: &[u8]) -> bool {
    enum Tok {
        Byte(u8),
        Star,
        AnyDepth,
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' if p.get(i + 1) == Some(&b'*') => {
                toks.push(Tok::AnyDepth);
                i += 2;
            }
            b'*' => {
                toks.push(Tok::Star);
                i += 1;
            }
            c => {
                toks.push(Tok::Byte(c));
                i += 1;
            }
        }
    }
    // A wildcard may match nothing: whoever reaches it also reaches the position after it.
    let close = |states: &mut Vec<bool>| {
        for i in 0..toks.len() {
            if states[i] && !matches!(toks[i], Tok::Byte(_)) {
                states[i + 1] = true;
            }
        }
    };
    let mut states = vec![false; toks.len() + 1];
    states[0] = true;
    close(&mut states);
    for &c in s {
        let mut next = vec![false; toks.len() + 1];
        for (i, tok) in toks.iter().enumerate() {
            if !states[i] {
                continue;
            }
            match tok {
                Tok::Byte(b) if *b == c => next[i + 1] = true,
                Tok::Byte(_) => {}
                Tok::Star if c != b'/' => next[i] = true,
                Tok::Star => {}
                Tok::AnyDepth => next[i] = true,
            }
        }
        close(&mut next);
        if !next.iter().any(|x| *x) {
            return false;
        }
        states = next;
    }
    states[toks.len()]
}

/// The live rule set with per-rule counters.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Mutex<Vec<Live>>,
}

#[derive(Debug)]
struct Live {
    rule: FaultRule,
    matched: u32,
    fired: u32,
}

impl Live {
    /// Counts a request the rule matches: the rule, when it fires for it (past its
    /// `after`, within its `times`), counted as fired.
    fn fires(&mut self) -> Option<&mut Live> {
        self.matched += 1;
        if self.matched <= self.rule.after || self.rule.times.is_some_and(|t| self.fired >= t) {
            return None;
        }
        self.fired += 1;
        Some(self)
    }
}

impl FaultSet {
    pub(crate) fn new(rules: Vec<FaultRule>) -> Self {
        let set = FaultSet::default();
        for r in rules {
            set.add(r);
        }
        set
    }

    /// Drops every rule (`DELETE /_sandbox/faults`): how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut rules = self.lock();
        let n = rules.len();
        rules.clear();
        n
    }

    pub(crate) fn add(&self, rule: FaultRule) {
        self.lock().push(Live {
            rule,
            matched: 0,
            fired: 0,
        });
    }

    /// The fault to apply to this request, if any; counts it.
    pub(crate) fn take(
        &self,
        vendor: &str,
        method: &str,
        path: &str,
    ) -> Option<(FaultAction, Option<u64>)> {
        let mut rules = self.lock();
        let live = rules
            .iter_mut()
            .filter(|l| l.rule.matches(vendor, method, path))
            .find_map(Live::fires)?;
        Some((live.rule.action.clone(), live.rule.retry_after))
    }

    /// The status a rule gives a simulated app's own send (Raptor's mail to Postmark), if
    /// any; counts it. Only a status rule means anything there, so a latency or a dropped
    /// connection aimed at the vendor's API is neither counted nor used up by those sends
    /// (before, every background send of every app counted a vendor-wide latency rule).
    /// `path` is only made when a status rule names the vendor: every request of the
    /// sandbox has each app send once.
    pub(crate) fn take_status(
        &self,
        vendor: &str,
        method: &str,
        path: impl FnOnce() -> String,
    ) -> Option<u16> {
        let mut rules = self.lock();
        if !rules
            .iter()
            .any(|l| l.rule.vendor == vendor && matches!(l.rule.action, FaultAction::Status(_)))
        {
            return None;
        }
        let path = path();
        let live = rules
            .iter_mut()
            .filter(|l| matches!(l.rule.action, FaultAction::Status(_)))
            .filter(|l| l.rule.matches(vendor, method, &path))
            .find_map(Live::fires)?;
        match live.rule.action {
            FaultAction::Status(status) => Some(status),
            _ => None,
        }
    }

    /// How often each rule fired, in order.
    pub(crate) fn fired(&self) -> Vec<(FaultRule, u32)> {
        self.lock()
            .iter()
            .map(|l| (l.rule.clone(), l.fired))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Live>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scenario's `faults` list: compact strings or tables.
pub(crate) fn deserialize_rules<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<FaultRule>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        Compact(String),
        Full(FaultRule),
    }
    let specs: Vec<Spec> = Vec::deserialize(d)?;
    specs
        .into_iter()
        .map(|s| match s {
            Spec::Compact(text) => FaultRule::parse(&text).map_err(serde::de::Error::custom),
            Spec::Full(rule) => Ok(rule),
        })
        .collect()
}

fn deserialize_times<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Times {
        Word(String),
        Count(u32),
    }
    match Option::<Times>::deserialize(d)? {
        None => Ok(None),
        Some(Times::Count(n)) => Ok(Some(n)),
        Some(Times::Word(w)) if w == "once" => Ok(Some(1)),
        Some(Times::Word(w)) if w == "always" => Ok(None),
        Some(Times::Word(w)) => Err(serde::de::Error::custom(format!(
            "times must be once, always or a number, not '{w}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app's own sends (Raptor's background mail, every request) take only status rules:
    /// a vendor-wide latency rule stays the API's, uncounted by them, and a status rule is
    /// used up by them as before.
    #[test]
    fn an_apps_own_send_takes_only_a_status_rule() {
        let set = FaultSet::new(vec![
            FaultRule::parse("raptor=latency=150").unwrap(),
            FaultRule::parse("raptor:POST:/app-2/postmark/email=401:once").unwrap(),
        ]);
        let send =
            |app: &str| set.take_status("raptor", "POST", || format!("/{app}/postmark/email"));
        assert_eq!(send("app-1"), None);
        assert_eq!(send("app-2"), Some(401));
        assert_eq!(send("app-2"), None, "a rule given once fired twice");
        let fired: Vec<u32> = set.fired().into_iter().map(|(_, n)| n).collect();
        assert_eq!(fired, [0, 1]);
        // The API's own requests still meet the latency rule first.
        assert_eq!(
            set.take("raptor", "POST", "/api/notifications/test-email")
                .map(|(a, _)| a),
            Some(FaultAction::Latency(150))
        );
        // Without a status rule for the vendor, the path is never made.
        let none = FaultSet::new(vec![FaultRule::parse("raptor=latency=150").unwrap()]);
        assert_eq!(none.take_status("raptor", "POST", || unreachable!()), None);
    }

    #[test]
    fn parses_the_documented_examples() {
        let r = FaultRule::parse("postmark:GET:/server=500:once").unwrap();
        assert_eq!(r.vendor, "postmark");
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path.as_deref(), Some("/server"));
        assert_eq!(r.action, FaultAction::Status(500));
        assert_eq!(r.times, Some(1));

        let r = FaultRule::parse("heroku:PATCH:/apps/*/config-vars=drop:after=1:times=1").unwrap();
        assert_eq!(r.action, FaultAction::Drop);
        assert_eq!((r.after, r.times), (1, Some(1)));

        let r = FaultRule::parse("infisical=429:retry_after=1:times=2").unwrap();
        assert_eq!((r.method, r.path), (None, None));
        assert_eq!(r.retry_after, Some(1));

        let r = FaultRule::parse("heroku:PATCH=committed").unwrap();
        assert_eq!(r.action, FaultAction::Committed(500));
        let r = FaultRule::parse("heroku:PATCH=committed=503:once").unwrap();
        assert_eq!(r.action, FaultAction::Committed(503));

        let r = FaultRule::parse("github:/repos=latency=250").unwrap();
        assert_eq!(r.action, FaultAction::Latency(250));
        assert_eq!(r.path.as_deref(), Some("/repos"));
    }

    #[test]
    fn rejects_nonsense_with_a_reason() {
        for bad in [
            "postmark",
            "mail gun=500",
            "postmark:FETCH=500",
            "postmark=teapot",
            "postmark=500:twice",
            "postmark=latency=soon",
            "postmark=committed=404",
            "postmark=committed=soon",
        ] {
            let e = FaultRule::parse(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn paths_match_by_prefix_and_glob() {
        assert!(path_matches("/server", "/server"));
        assert!(!path_matches("/server", "/servers"));
        assert!(path_matches("/apps", "/apps/x/config-vars"));
        assert!(path_matches(
            "/apps/*/config-vars",
            "/apps/raxx-api-prod/config-vars"
        ));
        assert!(!path_matches(
            "/apps/*/config-vars",
            "/apps/a/b/config-vars"
        ));
        assert!(path_matches("/api/**", "/api/v4/secrets/X"));
        assert!(path_matches("/api/**/X", "/api/v4/secrets/X"));
        assert!(path_matches("/**", "/"));
        assert!(path_matches("/a*", "/a"));
        assert!(!path_matches("/a*b", "/a/b"));
        assert!(!path_matches("/api/**/Y", "/api/v4/secrets/X"));
    }

    #[test]
    fn many_wildcards_match_in_linear_time() {
        // Backtracking took exponential time here: 40 `**` against a path that fails at the end.
        let pattern = format!("/{}x", "**".repeat(40));
        let path = format!("/{}", "a/".repeat(2_000));
        assert!(!path_matches(&pattern, &path));
        assert!(path_matches(&pattern, &format!("{path}x")));
    }

    #[test]
    fn after_and_times_count_matching_requests() {
        let set = FaultSet::new(vec![
            FaultRule::parse("heroku:PATCH=503:after=1:times=2").unwrap()
        ]);
        let hit = |m| set.take("heroku", m, "/apps/a/config-vars").is_some();
        assert!(!hit("GET"));
        assert!(!hit("PATCH"));
        assert!(hit("PATCH"));
        assert!(hit("PATCH"));
        assert!(!hit("PATCH"));
    }

    #[test]
    fn scenario_lists_accept_strings_and_tables() {
        #[derive(Deserialize)]
        struct S {
            #[serde(deserialize_with = "deserialize_rules")]
            faults: Vec<FaultRule>,
        }
        let s: S = toml::from_str(
            "faults = [\"postmark=503:once\", { vendor = \"heroku\", action = \"stall\", times = \"once\" }, { vendor = \"github\", action = { status = 422 } }]",
        )
        .unwrap();
        assert_eq!(s.faults.len(), 3);
        assert_eq!(s.faults[1].action, FaultAction::Stall);
        assert_eq!(s.faults[1].times, Some(1));
        assert_eq!(s.faults[2].action, FaultAction::Status(422));
    }
}
