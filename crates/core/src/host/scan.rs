//! `scan::holders`: discovery's searches at every vendor at once. They are independent
//! reads (Heroku's apps, Infisical's environments, GitHub's repositories), so a precheck
//! waits for the slowest vendor, not for the sum of them.

use super::vendor_call::{scan_map, scan_progress, vendor_error, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::Registrar;
use crate::value::{self, throw};
use rhai::{Dynamic, Map, NativeCallContext};
use runbook_secret::Secret;
use runbook_vendors::discovery::{self, Scan};
use runbook_vendors::ErrorKind;

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

fn holders(h: &RunContext, value: Secret, opts: Map) -> R<Dynamic> {
    h.require_step("scan::holders")?;
    let w = wanted(h, &opts)?;
    let v = h.vendors()?;
    let fp = value.fingerprint();
    let progress = scan_progress(h.say(), "heroku: config vars read");
    let (heroku, infisical, github, scopes) =
        h.block("discovery: searching every vendor", async move {
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
            let (heroku, infisical, github, scopes) =
                tokio::join!(heroku, infisical, github, scopes);
            Ok((heroku, infisical, github, scopes))
        })?;
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
    m.finish();
}
