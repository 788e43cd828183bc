//! Reading back what a write left at a vendor: whether the target still holds what the run
//! wrote there (by keyed fingerprint, or for a GitHub secret, whose value is never given
//! back, by its date), so a rollback acts only where the world still matches the run.
//! Writes whose target cannot be read (a dashboard token, a raw `http::` call) come back
//! as `Unread`.

use super::context::RunContext;
use crate::events::Holds;
use crate::ledger::Write;
use serde_json::Value;

/// What `w`'s target holds now, and a masked description when it changed (or why it could
/// not be read).
pub(crate) fn holds(run: &RunContext, w: &Write) -> (Holds, Option<String>) {
    let (holds, now, _) = read(run, w);
    (holds, now)
}

/// As `holds`, and whether the read itself failed (the vendor did not answer, or answered
/// an error): asking again may tell. Not so for a target that is not there, or a journal
/// that does not say what was written.
pub(crate) fn read(run: &RunContext, w: &Write) -> (Holds, Option<String>, bool) {
    let read = match w.function.as_str() {
        "heroku::set_config" => heroku_config(run, &w.target, &w.detail),
        "infisical::set_secret" => infisical_secret(run, &w.detail),
        "github::set_secret" => github_secret(run, &w.target, &w.detail, w.at.as_deref()),
        _ => return (Holds::Unread, None, false),
    };
    match read {
        Ok(None) => (Holds::AsWritten, None, false),
        Ok(Some(now)) => (Holds::Changed, Some(now), false),
        Err(Unread::Failed(why)) => (Holds::Unread, Some(why), true),
        Err(Unread::Unknowable(why)) => (Holds::Unread, Some(why), false),
    }
}

/// Whether a lost write of `w` did not land: nothing changed its target since the run
/// started (`since`, RFC 3339), and a write that landed would have. On Heroku every config
/// change is a release, so no release newer than the run's start means the write did not
/// land; on Infisical every write is a version, so a current version no newer than the
/// run's start means the same. A change since may be the write landing and someone putting
/// the old value back by hand (the commonest fix during an incident): not judged here, the
/// operator is asked (second reading). Other targets, a read that fails, a time that does
/// not parse: not judged either. The vendors' clocks are trusted to the second.
pub(crate) fn did_not_land(run: &RunContext, w: &Write, since: &str) -> bool {
    // The journal's times are whole seconds: the run started within the second after.
    let Some(since) = rfc3339(since).map(|t| t + time::Duration::seconds(1)) else {
        return false;
    };
    let before = |at: &str| rfc3339(at).is_some_and(|at| at < since);
    match w.function.as_str() {
        "infisical::set_secret" => infisical_current(run, &w.detail).is_ok_and(|now| {
            now.is_some_and(|now| {
                before(if now.updated_at.is_empty() {
                    &now.created_at
                } else {
                    &now.updated_at
                })
            })
        }),
        "heroku::set_config" => {
            let Ok(v) = run.vendors() else { return false };
            let app = w.target.clone();
            let newest = run.block(
                &format!("heroku GET /apps/{app}/releases (the newest)"),
                async move { v.heroku().latest_release(&app).await },
            );
            newest.is_ok_and(|r| r.is_some_and(|r| before(&r.created_at)))
        }
        _ => false,
    }
}

/// Why a target was not read back.
enum Unread {
    /// The read failed (the vendor did not answer, or answered an error).
    Failed(String),
    /// There is nothing a read can tell (not there, or the journal does not say).
    Unknowable(String),
}

/// A read that failed: one asking again may mend (no answer, a 5xx, a rate limit) is
/// `Failed`; one that lasts (the target gone, the credential refused) says nothing more
/// asked again, and the undo goes as the journal says, as for a target that cannot be read.
fn unread(e: &rhai::EvalAltResult) -> Unread {
    let code = match e {
        rhai::EvalAltResult::ErrorRuntime(v, _) => v
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get("code_kind").map(|c| c.to_string())),
        _ => None,
    };
    if code.is_some_and(|c| super::vendor_call::PASSING.contains(&c.as_str())) {
        Unread::Failed(reason(e))
    } else {
        Unread::Unknowable(reason(e))
    }
}

/// Whether `now` is what a write recorded as `wrote` (a fingerprint, a clear value, or
/// null for a deletion).
fn same(now: Option<&str>, wrote: &Value) -> bool {
    match (now, wrote) {
        (None, Value::Null) => true,
        // Keyed fingerprints, and the plain ones journals had before them.
        (Some(v), Value::String(w)) if w.starts_with("hmac:") || w.starts_with("sha256:") => {
            runbook_secret::fingerprint_matches(v, w)
        }
        (Some(v), Value::String(w)) => v == w,
        _ => false,
    }
}

/// What a target holds, masked (without joining the redactor: a plain setting read back
/// must not vanish from every later output).
fn masked(v: Option<&str>) -> String {
    v.map_or_else(|| "nothing".to_string(), runbook_secret::mask)
}

/// `None` when the app's vars hold what the write set; else what they hold now.
fn heroku_config(run: &RunContext, app: &str, detail: &Value) -> Result<Option<String>, Unread> {
    let Some(vars) = detail["vars"].as_object() else {
        return Err(Unread::Unknowable(
            "the journal does not say which vars were set".into(),
        ));
    };
    let v = run
        .vendors()
        .map_err(|e| Unread::Unknowable(e.to_string()))?;
    let name = app.to_string();
    let now = run
        .block(&format!("heroku GET /apps/{app}/config-vars"), async move {
            v.heroku().config_vars(&name).await
        })
        .map_err(|e| unread(&e))?;
    let changed: Vec<String> = vars
        .iter()
        .filter(|(k, wrote)| !same(now.get(k), wrote))
        .map(|(k, _)| format!("{k} holds {}", masked(now.get(k))))
        .collect();
    Ok((!changed.is_empty()).then(|| changed.join(", ")))
}

/// The current version of the Infisical secret a write's `detail` names; `None` when it is
/// not there.
fn infisical_current(
    run: &RunContext,
    detail: &Value,
) -> Result<Option<runbook_vendors::infisical::SecretRecord>, Unread> {
    let field = |k: &str| detail[k].as_str().unwrap_or_default().to_string();
    let (project, env, path, name) = (
        field("project_id"),
        field("env"),
        field("path"),
        field("name"),
    );
    let v = run
        .vendors()
        .map_err(|e| Unread::Unknowable(e.to_string()))?;
    let label = format!("infisical GET /api/v4/secrets/{name}");
    run.block(&label, async move {
        match v
            .infisical()
            .get_secret(&project, &env, &path, &name, None)
            .await
        {
            Err(e) if e.kind() == runbook_vendors::ErrorKind::NotFound => Ok(None),
            read => read.map(Some),
        }
    })
    .map_err(|e| unread(&e))
}

/// A time as the vendors and the journal write it (RFC 3339).
fn rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// `None` when Infisical's current version is the value the write stored.
fn infisical_secret(run: &RunContext, detail: &Value) -> Result<Option<String>, Unread> {
    let now = infisical_current(run, detail)?;
    // Gone: removed since (a staging copy by this run's own cleanup, or by hand). What its
    // undo does then is the undo's to decide, as the journal says.
    let Some(now) = now else {
        return Err(Unread::Unknowable(
            "it is not there: removed since, by this run's cleanup or by hand".into(),
        ));
    };
    let value = now.value.expose();
    Ok((!same(Some(value), &detail["value"]))
        .then(|| format!("version {} holds {}", now.version, masked(Some(value)))))
}

/// How far GitHub's clock may run ahead of this machine's: a secret updated no later than
/// this after the run's write is taken for the run's own.
const CLOCK_SLACK: time::Duration = time::Duration::seconds(5);

/// GitHub never gives an Actions secret's value back, only its dates: `None` when the
/// secret is there and was last updated no later than this run's write (by the clocks, give
/// or take `CLOCK_SLACK`); else what happened since. A secret deleted since is not put back.
fn github_secret(
    run: &RunContext,
    repo: &str,
    detail: &Value,
    at: Option<&str>,
) -> Result<Option<String>, Unread> {
    let name = detail["name"].as_str().unwrap_or_default().to_string();
    let Some(wrote) = at.and_then(rfc3339) else {
        return Err(Unread::Unknowable(
            "the journal does not say when this run wrote it".into(),
        ));
    };
    let v = run
        .vendors()
        .map_err(|e| Unread::Unknowable(e.to_string()))?;
    let r = repo.to_string();
    let label = format!("github GET /repos/{repo}/actions/secrets/{name}");
    let info = run
        .block(
            &label,
            async move { v.github().secret_info(&r, &name).await },
        )
        .map_err(|e| unread(&e))?;
    let Some(info) = info else {
        // GitHub answers 404 also for a repository this token can no longer see.
        return Ok(Some(
            "nothing: the secret was deleted since, or this token can no longer see it".into(),
        ));
    };
    match rfc3339(&info.updated_at) {
        Some(updated) if updated > wrote + CLOCK_SLACK => Ok(Some(format!(
            "a value set at {}, after this run wrote it (GitHub gives dates, not values)",
            info.updated_at
        ))),
        Some(_) => Ok(None),
        None => Err(Unread::Unknowable(format!(
            "GitHub gave no date it was updated ({:?})",
            info.updated_at
        ))),
    }
}

/// A failed read as a sentence: the vendor error's message, not the script error around it.
fn reason(e: &rhai::EvalAltResult) -> String {
    if let rhai::EvalAltResult::ErrorRuntime(v, _) = e {
        if let Some(message) = v
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get("message").map(|m| m.to_string()))
        {
            return message;
        }
    }
    e.to_string()
}
