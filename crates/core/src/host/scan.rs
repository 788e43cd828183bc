//! `scan::holders`: discovery's searches at every vendor at once. They are independent
//! reads (Heroku's apps, Infisical's environments, GitHub's repositories), so a precheck
//! waits for the slowest vendor, not for the sum of them.

use super::together::Abandoned;
use super::vendor_call::{scan_map, scan_progress, vendor_error, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::Registrar;
use crate::value::{self, throw};
use rhai::{Dynamic, Map, NativeCallContext};
use runbook_secret::Secret;
use runbook_vendors::discovery::{self, Scan};
use runbook_vendors::{ErrorKind, VendorError, Vendors};
use std::cell::RefCell;
use std::rc::Rc;

/// What to search: the options of `scan::holders`.
struct Wanted {
    heroku: bool,
    /// The Heroku key's scopes, read in the same round.
    heroku_scopes: bool,
    infisical: Option<(String, Vec<String>, String)>,
    github: Option<String>,
}

fn wanted(h: &RunContext, opts: &Map) -> R<Wanted> {
    value::check_keys(opts, HOLDERS_OPTIONS, "scan::holders")?;
    let heroku = match opts.get("heroku") {
        None => false,
        Some(b) => b.as_bool().map_err(|_| usage("heroku is true or false"))?,
    };
    let heroku_scopes = match opts.get("heroku_scopes") {
        None => false,
        Some(b) => b
            .as_bool()
            .map_err(|_| usage("heroku_scopes is true or false"))?,
    };
    let infisical = match opts.get("infisical") {
        None => None,
        Some(v) if v.as_bool() == Ok(false) => None,
        Some(v) => match v.read_lock::<Map>() {
            Some(m) => Some(super::infisical::holders_scope(h, &m)?),
            None => return Err(usage("infisical is #{envs, path, project_id} or false")),
        },
    };
    let github = match opts.get("github") {
        None => None,
        Some(v) if v.as_bool() == Ok(false) => None,
        Some(v) if v.is_string() => Some(v.to_string()),
        Some(_) => return Err(usage("github is the secret's name or false")),
    };
    Ok(Wanted {
        heroku,
        heroku_scopes,
        infisical,
        github,
    })
}

fn usage(what: &str) -> Box<rhai::EvalAltResult> {
    throw("usage", format!("scan::holders: {what}"), None)
}

/// What each vendor's search answered, for the vendors asked.
struct Found {
    heroku: Option<Result<Scan, VendorError>>,
    infisical: Option<Scan>,
    github: Option<Result<Scan, VendorError>>,
    scopes: Option<Result<Option<Vec<String>>, VendorError>>,
}

/// Every vendor's search at once, comparing what they list with `fp` once it is given.
async fn searching(
    v: Vendors,
    w: Wanted,
    fp: discovery::Wanted,
    progress: discovery::Progress,
) -> Result<Found, VendorError> {
    let heroku = async {
        match w.heroku {
            true => Some(discovery::heroku(&v, &fp, None, progress).await),
            false => None,
        }
    };
    let infisical = async {
        match &w.infisical {
            Some((project, envs, path)) => {
                Some(discovery::infisical(&v, &fp, project, envs, path).await)
            }
            None => None,
        }
    };
    let github = async {
        match &w.github {
            Some(name) => Some(discovery::github(&v, name, None).await),
            None => None,
        }
    };
    let scopes = async {
        match w.heroku_scopes {
            true => Some(v.heroku().scopes().await),
            false => None,
        }
    };
    let (heroku, infisical, github, scopes) = tokio::join!(heroku, infisical, github, scopes);
    Ok(Found {
        heroku,
        infisical,
        github,
        scopes,
    })
}

const SEARCHING: &str = "discovery: searching every vendor";

fn holders(h: &RunContext, value: Secret, opts: Map) -> R<Dynamic> {
    h.require_step("scan::holders")?;
    let w = wanted(h, &opts)?;
    let v = h.vendors()?;
    let fp = discovery::Wanted::now(value.fingerprint());
    let progress = scan_progress(h.say(), "heroku: config vars read");
    let found = h.block(SEARCHING, searching(v, w, fp, progress))?;
    found_map(found)
}

/// A search `scan::begin` sent before its value was known: finished by `scan::found`.
#[derive(Clone)]
pub(crate) struct Search(Rc<RefCell<Option<Pending>>>);

struct Pending {
    opts: Map,
    give: discovery::Give,
    answer: Abandoned<Result<Found, VendorError>>,
    /// The run's writes and questions to the operator when it was sent.
    effects_at: u64,
}

fn begin(h: &RunContext, opts: Map) -> R<Search> {
    h.require_step("scan::begin")?;
    let w = wanted(h, &opts)?;
    let v = h.vendors()?;
    let (give, fp) = discovery::Wanted::later();
    let progress = scan_progress(h.say(), "heroku: config vars read");
    let answer = h
        .send_ahead(searching(v, w, fp, progress))
        .map_err(super::vendor_call::stopped)?;
    Ok(Search(Rc::new(RefCell::new(Some(Pending {
        opts,
        give,
        answer,
        effects_at: h.ahead().effects(),
    })))))
}

/// Finishes a search `scan::begin` sent: its listings compared with `value`. A write or a
/// question to the operator since it was sent may have changed what it listed: then it is
/// searched again, whole.
fn found(h: &RunContext, search: Search, value: Secret) -> R<Dynamic> {
    h.require_step("scan::found")?;
    let Some(mut p) = search.0.borrow_mut().take() else {
        return Err(throw(
            "usage",
            "scan::found: this search has been finished already (scan::begin again)",
            None,
        ));
    };
    if p.effects_at != h.ahead().effects() {
        drop(p.answer);
        return holders(h, value, p.opts);
    }
    p.give.give(value.fingerprint());
    let found = h.block(SEARCHING, async move {
        match (&mut p.answer.0).await {
            Ok(found) => found,
            Err(e) => Err(VendorError::new(
                "discovery",
                "",
                "",
                ErrorKind::Other,
                format!("the search stopped: {e}"),
            )),
        }
    })?;
    found_map(found)
}

fn found_map(found: Found) -> R<Dynamic> {
    let Found {
        heroku,
        infisical,
        github,
        scopes,
    } = found;
    let mut out = Map::new();
    if let Some(scan) = heroku {
        let scan = match scan {
            Ok(scan) => scan,
            // Heroku not configured (a runbook whose consumers are elsewhere): said, not fatal.
            Err(e) if e.kind() == ErrorKind::Config => not_searched("heroku", "every app", &e),
            Err(e) => return Err(vendor_error(&e)),
        };
        out.insert(
            "heroku".into(),
            scan_map(&scan, super::heroku::holder_place).into(),
        );
    }
    if let Some(scan) = infisical {
        out.insert(
            "infisical".into(),
            scan_map(&scan, super::infisical::holder_place).into(),
        );
    }
    if let Some(scan) = github {
        let scan = match scan {
            Ok(scan) => scan,
            // No GITHUB_TOKEN (GitHub is optional for most runbooks): said, not fatal.
            Err(e) if e.kind() == ErrorKind::Config => {
                not_searched("github", "every repository", &e)
            }
            Err(e) => return Err(vendor_error(&e)),
        };
        out.insert(
            "github".into(),
            scan_map(&scan, super::github::holder_place).into(),
        );
    }
    // A failed read of the scopes is not discovery's failure: left out, `heroku::scopes()`
    // reads them again and says why it cannot.
    if let Some(Ok(scopes)) = scopes {
        out.insert("heroku_scopes".into(), super::heroku::scopes_value(scopes));
    }
    Ok(out.into())
}

/// A vendor that could not be searched at all: one unchecked place, with why.
fn not_searched(vendor: &'static str, place: &str, e: &runbook_vendors::VendorError) -> Scan {
    let mut s = Scan::default();
    s.unchecked.push(discovery::Unchecked {
        vendor,
        place: place.into(),
        error: e.message().to_string(),
    });
    s
}

/// The options map's keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const HOLDERS_OPTIONS: &[&str] = &["heroku", "heroku_scopes", "infisical", "github"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module("scan");
    m.add(
        "holders",
        Effect::Read,
        &["value: Secret", "options: Map"],
        "Map",
        "Discovery's searches at every vendor at once (they are independent reads): every Heroku app\nholding `value` (`heroku: true`), every Infisical secret holding it (`infisical: #{envs, path,\nproject_id}`), every repository with an Actions secret named so (`github: NAME`; a vendor not\nconfigured, such as a missing GITHUB_TOKEN, is an unchecked place, not a failure). Returns #{heroku, infisical, github}, each\nas the vendor's own `holders` returns it, for the vendors asked; with `heroku_scopes: true`, also\n`heroku_scopes`, what `heroku::scopes()` returns, read in the same round (left out when that read failed).",
        |c: NativeCallContext, s: Secret, o: Map| {
            value::at(&c, with_run(&c, "scan::holders", |h| holders(h, s, o)))
        },
    )
    .at_once("every vendor");
    m.add(
        "found",
        Effect::Read,
        &["search: Search", "value: Secret"],
        "Map",
        "Finishes a search `scan::begin` sent before the value was known: what its listings hold is\ncompared with `value` (a config already read is not read again). Returns what\n`scan::holders(value, options)` returns. After a write or a question to the operator since\n`begin`, what it listed may have changed: it is searched again, whole.",
        |c: NativeCallContext, search: Search, s: Secret| {
            value::at(&c, with_run(&c, "scan::found", |h| found(h, search, s)))
        },
    );
    m.add(
        "begin",
        Effect::Read,
        &["options: Map"],
        "Search",
        "Sends discovery's searches (the options of `scan::holders`) before the value they look for is\nknown: every listing and config read goes out now, and `scan::found(search, value)`\ncompares them with the value. The value's own read (e.g. `infisical::secret`) then runs\nwhile they list, not before them.",
        |c: NativeCallContext, o: Map| value::at(&c, with_run(&c, "scan::begin", |h| begin(h, o))),
    )
    .at_once("every vendor, not waited for: scan::found takes the answers");
    m.finish();
    crate::engine::registry::opaque_type::<Search>(
        reg,
        "Search",
        "a discovery search under way",
        "keep it in a variable of the step that takes its answer (scan::found, consumers::found)",
    );
}
