//! Shared plumbing of the vendor modules: turning a vendor error into a value `catch` can
//! read, dry-run placeholders for secrets, and running one call per target concurrently.
//! (Blocking on a call and mutating calls are `RunContext` methods.)

use crate::value::{self, throw};
use rhai::{Array, Dynamic, EvalAltResult, Map, Position};
use runbook_secret::{Secret, Source};
use runbook_vendors::{VendorError, Vendors};
use std::future::Future;

pub type R<T> = Result<T, Box<EvalAltResult>>;

/// The codes of vendor errors that asking again later may mend.
pub(crate) const PASSING: &[&str] = &[
    "runbook::vendor::connection",
    "runbook::vendor::timeout",
    "runbook::vendor::server",
    "runbook::vendor::rate_limited",
];

/// A vendor failure as a runtime error whose value is a map:
/// `#{vendor, method, route, status, code, kind, message, help}`.
pub fn vendor_error(e: &VendorError) -> Box<EvalAltResult> {
    let mut m = Map::new();
    let json = e.to_json();
    if let serde_json::Value::Object(o) = &json {
        for (k, v) in o {
            m.insert(k.as_str().into(), value::from_json(v));
        }
    }
    m.insert(
        "message".into(),
        runbook_secret::redact(&e.to_string()).into_owned().into(),
    );
    m.insert("help".into(), e.help_text().into());
    m.insert(
        "code_kind".into(),
        format!("runbook::vendor::{}", e.kind().as_str()).into(),
    );
    EvalAltResult::ErrorRuntime(m.into(), Position::NONE).into()
}

pub fn interrupted() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(crate::engine::INTERRUPTED), Position::NONE).into()
}

/// The script error for a call abandoned by Ctrl-C or a spent budget.
pub(crate) fn stopped(why: crate::runtime::Interrupted) -> Box<EvalAltResult> {
    match why {
        crate::runtime::Interrupted::CtrlC => interrupted(),
        crate::runtime::Interrupted::TimedOut(token) => {
            EvalAltResult::ErrorTerminated(Dynamic::from(token), Position::NONE).into()
        }
    }
}

/// A secret that only a dry-run write produced; real calls cannot use it.
pub(crate) fn dry_run_secret(what: &str) -> Secret {
    Secret::new(
        format!("dry-run-{}", uuid::Uuid::new_v4()),
        Source::Vendor {
            what: format!("dry-run placeholder for {what}"),
        },
    )
}

pub(crate) fn is_dry_run_secret(s: &Secret) -> bool {
    matches!(s.source(), Source::Vendor { what } if what.starts_with("dry-run placeholder"))
}

/// A discovery scan's result for scripts: `#{found: [...], unchecked: [#{place, error}],
/// scanned}`; `place` makes each found entry's map.
pub(crate) fn scan_map(
    scan: &runbook_vendors::discovery::Scan,
    place: impl Fn(&runbook_vendors::discovery::Place) -> Map,
) -> Map {
    let found: rhai::Array = scan.places.iter().map(|p| place(p).into()).collect();
    let unchecked: rhai::Array = scan
        .unchecked
        .iter()
        .map(|u| {
            let mut m = Map::new();
            m.insert("place".into(), u.place.clone().into());
            m.insert(
                "error".into(),
                runbook_secret::redact(&u.error).into_owned().into(),
            );
            m.into()
        })
        .collect();
    let mut m = Map::new();
    m.insert("found".into(), found.into());
    m.insert("unchecked".into(), unchecked.into());
    m.insert("scanned".into(), (scan.scanned as i64).into());
    m
}

/// Progress for a long scan: the spinner counts, and a scan of many places says when done.
pub(crate) fn scan_progress(
    say: &crate::sink::Say,
    what: &'static str,
) -> runbook_vendors::discovery::Progress {
    let say = say.clone();
    std::sync::Arc::new(move |done, total| {
        say.notice(crate::sink::Notice::CallProgress {
            label: format!("{what}: {done}/{total}"),
        });
    })
}

/// One or many targets: a string or an array of strings, each named once, in the order
/// first named. A list put together from discovery and a runbook's own (an app in both) is
/// one write per app: sent twice, a config change is two releases, each restarting every
/// dyno, and the results are keyed by name anyway.
pub fn targets(v: &Dynamic, what: &str) -> R<Vec<String>> {
    if v.is_string() {
        return Ok(vec![value::plain_string(&v.to_string(), what)?]);
    }
    if let Some(a) = v.read_lock::<Array>() {
        let mut seen = std::collections::HashSet::with_capacity(a.len());
        let mut out = Vec::with_capacity(a.len());
        for x in a.iter() {
            if !x.is_string() {
                return Err(throw("usage", format!("{what} must be strings"), None));
            }
            let name = value::plain_string(&x.to_string(), what)?;
            if seen.insert(name.clone()) {
                out.push(name);
            }
        }
        return Ok(out);
    }
    Err(throw(
        "usage",
        format!("{what} must be a string or an array of strings"),
        None,
    ))
}

/// Runs `call` for every target concurrently (bounded by the configured concurrency) and
/// pairs each outcome with its target, in target order.
pub async fn fan_out<T, F, Fut>(
    vendors: &Vendors,
    targets: &[String],
    call: F,
) -> Vec<(String, Result<T, VendorError>)>
where
    T: Send + 'static,
    F: Fn(Vendors, String) -> Fut,
    Fut: Future<Output = Result<T, VendorError>> + Send + 'static,
{
    let results = vendors.fan_out(targets.to_vec(), call).await;
    targets
        .iter()
        .cloned()
        .zip(results)
        .map(|(t, r)| {
            let r = r.unwrap_or_else(|| {
                Err(VendorError::new(
                    "runbook",
                    "-",
                    &t,
                    runbook_vendors::ErrorKind::Other,
                    "the call did not finish (internal error)",
                ))
            });
            (t, r)
        })
        .collect()
}

/// Per-target results as `#{target: #{ok, already?, error?}}` (`already`: done by an
/// earlier attempt of the step, not repeated); fails (with the map in the error) when any
/// target failed, so a script that does not `catch` stops there.
pub(crate) fn per_target<T>(
    function: &str,
    results: Vec<(String, Option<Result<T, VendorError>>)>,
    ok_value: impl Fn(&T) -> Map,
) -> R<Map> {
    let mut map = Map::new();
    let mut failed = Vec::new();
    // What to do about each failure, once each: a partial failure said only that the
    // others succeeded, and a 429's "wait 60s" or a missing scope's name was lost.
    let mut helps: Vec<String> = Vec::new();
    for (target, r) in &results {
        let mut entry = Map::new();
        match r {
            None => {
                entry.insert("ok".into(), true.into());
                entry.insert("already".into(), true.into());
            }
            Some(Ok(v)) => {
                entry = ok_value(v);
                entry.insert("ok".into(), true.into());
            }
            Some(Err(e)) => {
                entry.insert("ok".into(), false.into());
                entry.insert(
                    "error".into(),
                    runbook_secret::redact(&e.to_string()).into_owned().into(),
                );
                failed.push(format!("{target}: {e}"));
                let help = e.help_text();
                if !helps.contains(&help) {
                    helps.push(help);
                }
            }
        }
        map.insert(target.as_str().into(), entry.into());
    }
    if failed.is_empty() {
        return Ok(map);
    }
    let done = results.len() - failed.len();
    let mut m = Map::new();
    m.insert(
        "message".into(),
        runbook_secret::redact(&format!(
            "{function} failed for {} of {} target(s) ({done} succeeded): {}",
            failed.len(),
            results.len(),
            failed.join("; ")
        ))
        .into_owned()
        .into(),
    );
    helps.insert(
        0,
        "the targets that succeeded are changed; a retry of the step repeats only the failed ones"
            .into(),
    );
    m.insert(
        "help".into(),
        runbook_secret::redact(&helps.join("\n"))
            .into_owned()
            .into(),
    );
    m.insert("results".into(), map.into());
    m.insert("code_kind".into(), "runbook::vendor::partial".into());
    Err(EvalAltResult::ErrorRuntime(m.into(), Position::NONE).into())
}
