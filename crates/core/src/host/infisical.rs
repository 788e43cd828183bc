//! `infisical::`: read, set (upsert) and delete secrets; values come back as `Secret`s.

use super::placeholder::Placeholder;
use super::vendor_call::{is_dry_run_secret, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::events::WriteOutcome;
use crate::value::{self, throw};
use rhai::{Dynamic, Map, NativeCallContext};
use runbook_secret::Secret;
use runbook_vendors::infisical::{
    ChangeRequest, Expect, Merged, SecretRecord, SetOutcome, Written,
};
use runbook_vendors::Vendor;
use std::time::Duration;

/// Project, environment and path from the options, the project defaulting to the config.
struct Scope {
    project_id: String,
    env: String,
    path: String,
    version: Option<u64>,
}

fn scope(h: &RunContext, opts: &Map, function: &str) -> R<Scope> {
    value::check_keys(opts, SCOPE_OPTIONS, function)?;
    let configured = h
        .services()
        .config()
        .infisical
        .project_id
        .clone()
        .unwrap_or_default();
    let project_id = value::opt_str(opts, "project_id")
        .filter(|p| !p.is_empty())
        .unwrap_or(configured);
    if project_id.is_empty() {
        return Err(throw(
            "usage",
            format!("{function}: no Infisical project id"),
            Some("pass #{ project_id: ... } or set INFISICAL_PROJECT_ID".into()),
        ));
    }
    let version = match opts.get("version") {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => Some(v.as_int().ok().filter(|n| *n > 0).ok_or_else(|| {
            throw(
                "usage",
                format!("{function}: version must be a positive number"),
                None,
            )
        })? as u64),
    };
    Ok(Scope {
        project_id,
        env: value::opt_str(opts, "env").unwrap_or_else(|| "prod".into()),
        path: value::opt_str(opts, "path").unwrap_or_else(|| "/".into()),
        version,
    })
}

fn record_map(r: &SecretRecord) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), r.name.clone().into());
    m.insert("value".into(), Dynamic::from(r.value.clone()));
    m.insert("version".into(), (r.version as i64).into());
    m.insert("environment".into(), r.environment.clone().into());
    m.insert("path".into(), r.secret_path.clone().into());
    m.insert("updated_at".into(), r.updated_at.clone().into());
    m
}

fn get(h: &RunContext, name: &str, opts: Map) -> R<Dynamic> {
    h.require_step("infisical::secret")?;
    let s = scope(h, &opts, "infisical::secret")?;
    let v = h.vendors()?;
    let name = name.to_string();
    let label = format!("infisical GET /api/v4/secrets/{name}");
    let key = format!(
        "infisical::secret {name} {} {} {} {:?}",
        s.project_id, s.env, s.path, s.version
    );
    let r = h.read_keyed(&label, &key, async move {
        v.infisical()
            .get_secret(&s.project_id, &s.env, &s.path, &name, s.version)
            .await
    })?;
    Ok(record_map(&r).into())
}

/// How long a write waits for a change request to be merged (`approval_timeout`).
const APPROVAL_WAIT_SECS: i64 = 300;

fn approval_timeout(opts: &Map, function: &str) -> R<u64> {
    match opts.get("approval_timeout") {
        None => Ok(APPROVAL_WAIT_SECS as u64),
        Some(t) => t
            .as_int()
            .ok()
            .filter(|t| (0..=86_400).contains(t))
            .map(|t| t as u64)
            .ok_or_else(|| {
                throw(
                    "usage",
                    format!("{function}: approval_timeout is a whole number of seconds between 0 and 86400"),
                    None,
                )
            }),
    }
}

/// Says that Infisical filed a change request instead of applying a write, how an approver
/// (or, in a rehearsal, the operator) merges it, and audits it.
fn announce(h: &RunContext, s: &Scope, name: &str, cr: &ChangeRequest) {
    h.say().progress(format!(
        "    {name}: Infisical filed change request {} instead of applying the write (a secret-approval policy covers {} at {})",
        cr.slug, s.env, s.path
    ));
    if let Some(hint) = h
        .services()
        .dashboard()
        .and_then(|d| d.change_request_hint(&cr.id))
    {
        h.say().progress(format!("    (rehearsal: {hint})"));
    }
    // Kept and written before the next vendor write if the log cannot take it now.
    h.auditor().note(
        &h.step_name(),
        crate::audit::AuditEvent::ChangeRequest {
            secret: name.to_string(),
            env: s.env.clone(),
            path: s.path.clone(),
            project_id: s.project_id.clone(),
            request: cr.slug.clone(),
            request_id: cr.id.clone(),
        },
    );
}

/// Waits for change request `cr` to be merged. Fails, as a write that may still apply, when
/// the wait ends first.
fn await_approval(
    h: &RunContext,
    s: &Scope,
    name: &str,
    expect: Expect<'_>,
    cr: &ChangeRequest,
    timeout: u64,
) -> R<Option<SecretRecord>> {
    // A request an approver closed without merging is never merged: waiting on it (and on
    // it again at every resume) would hold the run for ever.
    refused_request(h, s, name, cr)?;
    h.say().progress(format!(
        "    waiting up to {timeout}s for an approver to merge change request {}",
        cr.slug
    ));
    let v = h.vendors()?;
    let (project, env, path, key) = (
        s.project_id.clone(),
        s.env.clone(),
        s.path.clone(),
        name.to_string(),
    );
    let expect = match expect {
        Expect::Value(v) => Some(v.clone()),
        Expect::Gone => None,
    };
    let label = format!(
        "waiting for Infisical change request {} to be merged",
        cr.slug
    );
    let merged = h.block(&label, async move {
        let expect = match &expect {
            Some(v) => Expect::Value(v),
            None => Expect::Gone,
        };
        v.infisical()
            .await_merge(
                &project,
                &env,
                &path,
                &key,
                expect,
                Duration::from_secs(timeout),
            )
            .await
    });
    // The wait stopped by Ctrl-C or the step's time limit: the request is still filed, and
    // the write is pending on it, not an answer lost (a rollback must name the request, and
    // a retry wait on it rather than file another). The step still ends as interrupted.
    let stopped = matches!(&merged, Err(e) if matches!(e.unwrap_inner(), rhai::EvalAltResult::ErrorTerminated(..)));
    // A read that failed during the wait leaves the request as filed as a timeout does:
    // still open, and named with the write (before, the write was recorded failed or not
    // sent, with no request: a rollback took it as never applied, and an approver merging
    // the request later put the value back after the run).
    let (merged, unread) = match merged {
        Ok(m) => (m, None),
        Err(_) if stopped => (Merged::NotYet, None),
        Err(e) => (Merged::NotYet, Some(crate::diagnostic::message_of(&e))),
    };
    match merged {
        Merged::Yes(r) => {
            h.say()
                .progress(format!("    change request {} merged", cr.slug));
            Ok(r.map(|r| *r))
        }
        Merged::NotYet => {
            if !stopped {
                refused_request(h, s, name, cr)?;
            }
            let why = match (&unread, stopped) {
                (_, true) => {
                    "was still waiting for approval when the wait was stopped".to_string()
                }
                (Some(e), false) => format!(
                    "could not be followed: a read during the wait failed ({e}); it may still be merged"
                ),
                (None, false) => format!("was not merged within {timeout}s"),
            };
            let mut m = request_error(
                s,
                name,
                cr,
                &format!("{why}; the change waits for approval"),
                &format!(
                    "an approver merges it in Infisical (the project's Secret Approvals, request {}); then retry the step or `runbook resume` the run: it finds the value in place and files nothing new. To abandon the change instead, close the request in Infisical first, then roll back, so it cannot be merged afterwards",
                    cr.slug
                ),
                "runbook::vendor::pending_approval",
            );
            m.insert("vendor".into(), "infisical".into());
            // An approver may still merge it: the write's outcome is open, not failed.
            m.insert("maybe_applied".into(), true.into());
            m.insert("pending_approval".into(), true.into());
            Err(rhai::EvalAltResult::ErrorRuntime(m.into(), rhai::Position::NONE).into())
        }
    }
}

/// The error of a write filed as change request `cr`: the request named (so the journal
/// keeps it with the write), what became of it, what to do, and its code.
fn request_error(
    s: &Scope,
    name: &str,
    cr: &ChangeRequest,
    became: &str,
    help: &str,
    code: &str,
) -> Map {
    let mut m = Map::new();
    m.insert("request".into(), cr.slug.clone().into());
    m.insert("request_id".into(), cr.id.clone().into());
    m.insert(
        "message".into(),
        format!(
            "Infisical change request {} for {name} in {}:{}{} {became}",
            cr.slug, s.project_id, s.env, s.path
        )
        .into(),
    );
    m.insert("help".into(), help.into());
    m.insert("code_kind".into(), code.into());
    m
}

/// `Err` when an approver closed `cr` without merging it: the change was refused, and the
/// error names the request so the journal no longer counts it open (the next attempt files
/// a new one). Only a user's session can read requests; for a machine identity, or when
/// the read fails, nothing is known and the wait goes on as before.
fn refused_request(h: &RunContext, s: &Scope, name: &str, cr: &ChangeRequest) -> R<()> {
    let Ok(v) = h.vendors() else { return Ok(()) };
    let id = cr.id.clone();
    let label = format!("infisical GET /api/v1/secret-approval-requests/{}", cr.id);
    let state = h
        .block(
            &label,
            async move { v.infisical().change_request(&id).await },
        )
        .ok()
        .flatten();
    if !state.is_some_and(|st| st.refused()) {
        return Ok(());
    }
    let mut m = request_error(
        s,
        name,
        cr,
        "was closed without being merged: an approver refused the change",
        "`runbook resume` files a new change request for it (ask an approver first why this one was closed); `runbook rollback` undoes the run instead",
        "runbook::vendor::change_request_closed",
    );
    m.insert("refused".into(), true.into());
    Err(rhai::EvalAltResult::ErrorRuntime(m.into(), rhai::Position::NONE).into())
}

/// The undo of a write whose change request (`filed`, for the run's value) may still be
/// open: it passes only once the request is closed, read at Infisical, or, where the
/// identity cannot read requests (a machine identity), said closed by the operator (a
/// judgement `--yes` does not give). Otherwise the undo fails, naming the request: the
/// rollback stops, and the run is not settled as rolled back while an approver can still
/// merge the run's value in.
fn undo_past_open_request(
    h: &RunContext,
    s: &Scope,
    name: &str,
    target: &str,
    filed: &crate::events::Filed,
) -> R<()> {
    let state = h.vendors().ok().and_then(|v| {
        let id = filed.id.clone();
        let label = format!("infisical GET /api/v1/secret-approval-requests/{id}");
        h.block(
            &label,
            async move { v.infisical().change_request(&id).await },
        )
        .ok()
        .flatten()
    });
    let run = h.info().run_id.clone();
    let id = format!("{}.request_closed", h.step_name());
    let open = match &state {
        Some(st) if st.status == "close" => return Ok(()),
        Some(_) => true,
        None => false,
    };
    let help = if open {
        format!(
            "close change request {} in Infisical (project {}, environment {}), then `runbook rollback {run}` again",
            filed.slug, s.project_id, s.env
        )
    } else {
        format!(
            "close change request {} in Infisical (project {}, environment {}), then `runbook rollback {run}` again and say it is closed: at a terminal, or `\"{id}\" = true` in an answers file (--answers FILE; --yes does not say it)",
            filed.slug, s.project_id, s.env
        )
    };
    if !open {
        let question = format!(
            "Infisical change request {} for {target}, filed by this run for its new value, cannot be read here: is it closed? (merged after this rollback, it would put that value back)",
            filed.slug
        );
        match h.operator().confirm_judgement(&id, &question) {
            Ok(true) => return Ok(()),
            // Ctrl-C stops the undo as Ctrl-C, not as a "no"; an answer that is not one
            // (`= "yes"`) is said as such.
            Err(
                e @ (crate::prompt::PromptError::Interrupted
                | crate::prompt::PromptError::Aborted
                | crate::prompt::PromptError::BadAnswer { .. }),
            ) => return Err(super::prompt::prompt_error(e)),
            _ => {}
        }
    }
    let why = if open {
        "is still open"
    } else {
        "may still be open (it cannot be read with this identity, and nobody said it is closed)"
    };
    Err(throw(
        "vendor",
        format!(
            "{name}: Infisical change request {} (filed by this run for its new value) {why}: an approver merging it would put that value back after the rollback",
            filed.slug
        ),
        Some(help),
    ))
}

/// A write's options: how long it waits for a change request to be merged, and where it
/// writes; and how the write names its target.
fn write_scope(h: &RunContext, name: &str, opts: Map, function: &str) -> R<(u64, Scope, String)> {
    let wait = approval_timeout(&opts, function)?;
    let mut opts = opts;
    opts.remove("approval_timeout");
    let s = scope(h, &opts, function)?;
    let target = format!("{name} in {}:{}{}", s.project_id, s.env, s.path);
    Ok((wait, s, target))
}

fn set(h: &RunContext, name: &str, value: Secret, opts: Map) -> R<Dynamic> {
    let (wait, s, target) = write_scope(h, name, opts, "infisical::set_secret")?;
    let detail = serde_json::json!({
        "name": name, "env": s.env, "path": s.path, "project_id": s.project_id,
        "value": value.fingerprint(),
    });
    h.writes().mutate(
        "infisical::set_secret",
        Effect::Write,
        &target,
        detail,
        || {
            if is_dry_run_secret(&value) {
                return Ok(Placeholder::of("infisical::set_secret"));
            }
            // An earlier attempt's change request for this very value (this process's or,
            // after a resume, the journal's): wait on it rather than file a second one.
            let open = h.writes().open_request("infisical::set_secret", &target);
            let same_value = |d: &serde_json::Value| d["value"] == value.fingerprint().as_str();
            let written = match &open {
                Some((detail, filed)) if same_value(detail) => {
                    h.say().progress(format!(
                        "    {name}: change request {} from an earlier attempt is still open",
                        filed.slug
                    ));
                    Written::Pending(ChangeRequest {
                        id: filed.id.clone(),
                        slug: filed.slug.clone(),
                        status: "open".into(),
                        policy_id: String::new(),
                    })
                }
                _ => {
                    let v = h.vendors()?;
                    let (key, value) = (name.to_string(), value.clone());
                    let (p, e, path) = (s.project_id.clone(), s.env.clone(), s.path.clone());
                    let label = format!("infisical PATCH /api/v4/secrets/{name}");
                    let w = h.block(&label, async move {
                        v.infisical().set_secret(&p, &e, &path, &key, &value).await
                    })?;
                    if let Written::Pending(cr) = &w {
                        announce(h, &s, name, cr);
                    }
                    w
                }
            };
            let (r, outcome, request) = match written {
                Written::Done((r, outcome)) => {
                    if let (SetOutcome::Unchanged, Some((_, filed))) = (outcome, &open) {
                        if h.scope().in_undo() {
                            // An undo that leaves it open is no way back: merged tomorrow,
                            // the request puts the run's value in after a "rolled back".
                            undo_past_open_request(h, &s, name, &target, filed)?;
                        } else {
                            // The value is in place, yet a request this run filed for another
                            // value is open: merged later, it would undo this write.
                            h.say().warning(format!(
                                "warning: Infisical change request {} for {target} (filed earlier in this run) is still open: close it in Infisical, or an approver merging it would put its value back",
                                filed.slug
                            ));
                        }
                    }
                    (r, outcome, None)
                }
                Written::Pending(cr) => {
                    let r = await_approval(h, &s, name, Expect::Value(&value), &cr, wait)?;
                    let Some(r) = r else {
                        return Err(throw("vendor", format!("infisical::set_secret: {name} is gone after its change request was merged"), None));
                    };
                    let outcome = if r.version == 1 { SetOutcome::Created } else { SetOutcome::Updated };
                    (r, outcome, Some(cr.slug))
                }
            };
            let what = match (outcome, h.scope().in_undo()) {
                (SetOutcome::Unchanged, _) => format!("already holds {}", value.masked()),
                (_, true) => format!("restored to {} (version {})", value.masked(), r.version),
                (SetOutcome::Created, false) => {
                    format!("created as {} (version {})", value.masked(), r.version)
                }
                (SetOutcome::Updated, false) => {
                    format!("set to {} (version {})", value.masked(), r.version)
                }
            };
            h.say().progress(format!("    {target}: {what}"));
            let mut m = record_map(&r);
            m.insert("created".into(), (outcome == SetOutcome::Created).into());
            m.insert("unchanged".into(), (outcome == SetOutcome::Unchanged).into());
            m.insert(
                "approval".into(),
                request.map_or(Dynamic::UNIT, Dynamic::from),
            );
            Ok(m.into())
        },
    )
}

/// `set_secret` with text: only when the script says it is not a credential.
fn set_text(h: &RunContext, name: &str, text: &str, mut opts: Map) -> R<Dynamic> {
    let plain = opts
        .remove("plain")
        .is_some_and(|v| v.as_bool() == Ok(true));
    if !plain {
        return Err(throw(
            "usage",
            format!("infisical::set_secret: the value for {name} is text, not a Secret"),
            Some("a credential must be a Secret (secret::from_text(s) when it is one); for a value that is not a credential (an id, a setting) pass #{ plain: true }".into()),
        ));
    }
    // Opaque like any value stored, but it joins the output redactor only when it looks like
    // a credential after all (masking an id everywhere would hide what the operator reads).
    let text = value::plain_string(text, &format!("the value for {name}"))?;
    let value = Secret::from_bulk(name, text, runbook_secret::Source::Text);
    set(h, name, value, opts)
}

fn delete(h: &RunContext, name: &str, mut opts: Map) -> R<Dynamic> {
    let function = "infisical::delete_secret";
    let if_present = value::opt_flag(&opts, "if_present", function)?;
    let cleanup = value::opt_flag(&opts, "cleanup", function)?;
    opts.remove("if_present");
    opts.remove("cleanup");
    let (wait, s, target) = write_scope(h, name, opts, "infisical::delete_secret")?;
    let mut detail = serde_json::json!({"name": name, "env": s.env, "path": s.path});
    // Journalled: a rollback's preview tells a removal its undo does not restore.
    if cleanup {
        detail["cleanup"] = true.into();
    }
    let deleted = h.writes().mutate(
        "infisical::delete_secret",
        Effect::Destructive,
        &target,
        detail,
        || {
            let v = h.vendors()?;
            let key = name.to_string();
            let (p, e, path) = (s.project_id.clone(), s.env.clone(), s.path.clone());
            let label = format!("infisical DELETE /api/v4/secrets/{name}");
            // Sent through `write_request`: run::together may send it ahead.
            let written = h.write_request(&label, async move {
                match v.infisical().delete_secret(&p, &e, &path, &key).await {
                    Err(e) if if_present && e.kind() == runbook_vendors::ErrorKind::NotFound => {
                        Ok(None)
                    }
                    r => r.map(Some),
                }
            })?;
            match written {
                None => Ok(false.into()),
                Some(Written::Pending(cr)) => {
                    announce(h, &s, name, &cr);
                    await_approval(h, &s, name, Expect::Gone, &cr, wait)?;
                    Ok(true.into())
                }
                Some(_) => Ok(true.into()),
            }
        },
    );
    match deleted {
        // A cleanup that failed may leave the secret, and says so; Ctrl-C and a spent
        // budget still stop the run. (run::together's first pass only sends: its errors
        // come again in the second.)
        Err(e)
            if cleanup
                && !h.starting_ahead()
                && !matches!(e.unwrap_inner(), rhai::EvalAltResult::ErrorTerminated(..)) =>
        {
            let left = match super::writes::outcome_of_failure(&e) {
                WriteOutcome::Failed | WriteOutcome::NotSent => "it is still there",
                // An answer lost, or a change request an approver may still merge.
                _ => "it may still be there",
            };
            h.say().warning(format!(
                "{target} was not removed ({}): {left}; delete it in Infisical once it answers",
                crate::diagnostic::message_of(&e)
            ));
            Ok(false.into())
        }
        other => other,
    }
}

/// Every secret in the project's `envs` (at `path` and below) holding `value`.
fn holders(h: &RunContext, value: Secret, opts: Map) -> R<Dynamic> {
    h.require_step("infisical::holders")?;
    let (project_id, envs, path) = holders_scope(h, &opts)?;
    let v = h.vendors()?;
    let fp = runbook_vendors::discovery::Wanted::now(value.fingerprint());
    let scan = h.block("infisical: listing secrets", async move {
        Ok(runbook_vendors::discovery::infisical(&v, &fp, &project_id, &envs, &path).await)
    })?;
    Ok(super::vendor_call::scan_map(&scan, holder_place).into())
}

/// An Infisical secret that holds a value, as `holders` returns it: #{env, path, name}.
pub(super) fn holder_place(p: &runbook_vendors::discovery::Place) -> Map {
    let (env, path) = p.place.split_once(':').unwrap_or(("", &p.place));
    let mut m = Map::new();
    m.insert("env".into(), env.to_string().into());
    m.insert("path".into(), path.to_string().into());
    m.insert("name".into(), p.var.clone().into());
    m
}

/// `holders`' options as the scan takes them: (project id, envs, path).
pub(super) fn holders_scope(h: &RunContext, opts: &Map) -> R<(String, Vec<String>, String)> {
    value::check_keys(opts, HOLDERS_OPTIONS, "infisical::holders")?;
    let mut scope_opts = Map::new();
    if let Some(p) = opts.get("project_id") {
        scope_opts.insert("project_id".into(), p.clone());
    }
    let s = scope(h, &scope_opts, "infisical::holders")?;
    let envs = match opts.get("envs") {
        Some(e) => super::vendor_call::targets(e, "infisical::holders envs")?,
        None => vec!["dev".into(), "staging".into(), "prod".into()],
    };
    let path = value::opt_str(opts, "path").unwrap_or_else(|| "/".into());
    Ok((s.project_id, envs, path))
}

/// The options maps' keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const SCOPE_OPTIONS: &[&str] = &["project_id", "env", "path", "version"];
/// A write's: the scope and how long to wait for a change request.
pub(crate) const WRITE_OPTIONS: &[&str] =
    &["project_id", "env", "path", "version", "approval_timeout"];
/// `delete_secret`'s: also `if_present` and `cleanup`, which it takes out before the scope.
pub(crate) const DELETE_OPTIONS: &[&str] = &[
    "project_id",
    "env",
    "path",
    "version",
    "approval_timeout",
    "if_present",
    "cleanup",
];
/// `set_secret` with text: also `plain`.
pub(crate) const SET_TEXT_OPTIONS: &[&str] = &[
    "project_id",
    "env",
    "path",
    "version",
    "approval_timeout",
    "plain",
];
pub(crate) const HOLDERS_OPTIONS: &[&str] = &["project_id", "envs", "path"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module(Vendor::Infisical.name());
    m.add("secret", Effect::Read, &["name: string", "options: Map"], "Map",
        "Reads a secret: #{value (Secret), version, name, environment, path, updated_at}.\nOptions: #{project_id (default $INFISICAL_PROJECT_ID), env (default \"prod\"), path (default \"/\"),\nversion (an older version: how rollback reads the previous value)}.",
        |c: NativeCallContext, n: &str, o: Map| value::at(&c, with_run(&c, "infisical::secret", |h| get(h, n, o))));
    m.add(
        "secret",
        Effect::Read,
        &["name: string"],
        "Map",
        "Reads a secret in the default project, env \"prod\", path \"/\".",
        |c: NativeCallContext, n: &str| {
            value::at(
                &c,
                with_run(&c, "infisical::secret", |h| get(h, n, Map::new())),
            )
        },
    );
    m.add("set_secret", Effect::Write, &["name: string", "value: Secret", "options: Map"], "Map",
        "Sets a secret like `infisical secrets set`: nothing when it already holds the value, else\nupdate it (a new version is kept) or create it. Under a secret-approval policy Infisical files a\nchange request instead: the call waits for it to be merged (#{approval_timeout: seconds,\ndefault 300}) and fails as pending approval when it is not. Returns the record with its\nversion, `created`, `unchanged` and `approval` (the change request's slug, or ()).",
        |c: NativeCallContext, n: &str, v: Secret, o: Map| value::at(&c, with_run(&c, "infisical::set_secret", |h| set(h, n, v, o))))
    .repeat(Repeat::Safe);
    m.add("set_secret", Effect::Write, &["name: string", "value: string", "options: Map"], "Map",
        "Sets a secret to text the script holds (an identifier, a setting), only with\n#{plain: true} in the options, which says the value is not a credential (a credential must\ncome as a Secret: `secret::from_text` when it really is one). Otherwise as above.",
        |c: NativeCallContext, n: &str, v: &str, o: Map| value::at(&c, with_run(&c, "infisical::set_secret", |h| set_text(h, n, v, o))))
    .repeat(Repeat::Safe);
    m.add(
        "holders",
        Effect::Read,
        &["value: Secret", "options: Map"],
        "Map",
        "Every secret holding `value`, under any name, compared by keyed fingerprint (no value is\nreturned). Options: #{project_id (default $INFISICAL_PROJECT_ID), envs (default [\"dev\",\n\"staging\", \"prod\"]), path (default \"/\", searched recursively)}. Returns #{found: [#{env,\npath, name}], unchecked: [#{place, error}], scanned}.",
        |c: NativeCallContext, s: Secret, o: Map| {
            value::at(&c, with_run(&c, "infisical::holders", |h| holders(h, s, o)))
        },
    )
    .at_once("each environment");
    m.add(
        "delete_secret",
        Effect::Destructive,
        &["name: string", "options: Map"],
        "bool",
        "Deletes a secret (under a secret-approval policy, waits for the change request to be\nmerged, as set_secret does). Returns true. Options: if_present (true: a secret already gone is\nno error, and returns false), cleanup (true: the secret is a leftover, such as a staging copy; a failure is a warning that it may still be\nthere, and returns false, not an error; Ctrl-C still stops; a rollback's preview and `abandon` list its removal as nothing to restore), and the scope options as set_secret's. run::together can send it ahead\n(`|| infisical::delete_secret(name, opts)`), journalled as sent first like any write.",
        |c: NativeCallContext, n: &str, o: Map| {
            value::at(
                &c,
                with_run(&c, "infisical::delete_secret", |h| delete(h, n, o)),
            )
        },
    )
    .repeat(Repeat::Safe);
    m.finish();
}
