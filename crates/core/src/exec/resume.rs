//! Picking a run up from its journal: is the runbook unchanged, which steps completed, what
//! `ctx` held (secrets supplied again and checked by fingerprint), where to continue.

use super::journal::{self, RunState};
use crate::error::{Error, Result};
use crate::host::{value, Phase};
use crate::plan::{Ctx, Loaded};
use rhai::{Dynamic, Map};
use runbook_secret::{fingerprint, Secret, Source};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The runbook and every module it imported, with their hashes, for `run.start`.
pub fn fingerprints(loaded: &Loaded) -> Value {
    let modules: Vec<Value> = loaded
        .sources()
        .modules()
        .iter()
        .map(|(name, text)| serde_json::json!({ "name": name, "sha256": sha256(text) }))
        .collect();
    serde_json::json!({
        "path": std::fs::canonicalize(&loaded.file.path).unwrap_or(loaded.file.path.clone()).display().to_string(),
        "sha256": sha256(&loaded.file.text),
        "modules": modules,
    })
}

/// A run's journal, read and summarised. Unknown run ids are a usage error.
pub fn open(state_dir: &Path, run_id: &str) -> Result<(PathBuf, RunState)> {
    let valid = !run_id.is_empty()
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let path = journal::Journal::path_for(state_dir, run_id);
    if !valid || !path.is_file() {
        return Err(Error::usage(
            format!("no run '{run_id}' in {}", state_dir.join("runs").display()),
            "`runbook runs` lists the runs this machine knows",
        ));
    }
    let records = journal::read(&path)?;
    let state = RunState::from_records(&records);
    if state.start.is_null() {
        return Err(Error::usage(
            format!("the journal of run '{run_id}' has no start record"),
            "the journal is damaged; inspect it by hand",
        ));
    }
    Ok((path, state))
}

/// Refuses a runbook whose text (or an imported module) changed since the run, unless
/// `force`, which says what changed.
pub fn check_unchanged(start: &Value, loaded: &Loaded, force: bool) -> Result<()> {
    let now = fingerprints(loaded);
    let mut changes = Vec::new();
    if start["source"]["sha256"] != now["sha256"] {
        changes.push(format!("{} changed", loaded.file.name));
    }
    let before = start["source"]["modules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for m in now["modules"].as_array().cloned().unwrap_or_default() {
        match before.iter().find(|b| b["name"] == m["name"]) {
            Some(b) if b["sha256"] == m["sha256"] => {}
            Some(_) => changes.push(format!(
                "module {} changed",
                m["name"].as_str().unwrap_or("?")
            )),
            None => changes.push(format!(
                "module {} is new",
                m["name"].as_str().unwrap_or("?")
            )),
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    if force {
        crate::ui::err(&format!(
            "warning: resuming with a changed runbook (--force): {}",
            changes.join("; ")
        ));
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "the runbook changed since this run started: {}",
            changes.join("; ")
        ),
        "restore the runbook as it was, or pass --force to continue with the new text",
    ))
}

/// A journalled secret: `{"secret": fingerprint, "source": ...}`.
fn as_secret_ref(v: &Value) -> Option<(String, Source)> {
    let fp = v.get("secret")?.as_str()?.to_string();
    let source = serde_json::from_value(v.get("source")?.clone()).unwrap_or(Source::Literal);
    Some((fp, source))
}

/// Rebuilds `ctx` from the journal's last snapshot (or the start's params).
pub fn restore_ctx(loaded: &Loaded, state: &RunState) -> Result<Ctx> {
    let snapshot = state
        .ctx
        .clone()
        .unwrap_or_else(|| serde_json::json!({ "params": state.start["params"] }));
    let ctx = Ctx::default();
    let Value::Object(fields) = snapshot else {
        return Ok(ctx);
    };
    // Plain values first: recovery closures read them (versions, names).
    let mut secrets = Vec::new();
    for (k, v) in &fields {
        if k == "params" {
            let mut params = Map::new();
            if let Value::Object(p) = v {
                for (pk, pv) in p {
                    match as_secret_ref(pv) {
                        Some((fp, source)) => params.insert(
                            pk.as_str().into(),
                            Dynamic::from(supply(
                                loaded,
                                &ctx,
                                &format!("params.{pk}"),
                                &fp,
                                &source,
                            )?),
                        ),
                        None => params.insert(pk.as_str().into(), value::from_json(pv)),
                    };
                }
            }
            ctx.set("params", params.into());
        } else if let Some(r) = as_secret_ref(v) {
            secrets.push((k.clone(), r));
        } else {
            ctx.set(k, value::from_json(v));
        }
    }
    for (k, (fp, source)) in secrets {
        let s = supply(loaded, &ctx, &k, &fp, &source)?;
        ctx.set(&k, Dynamic::from(s));
    }
    Ok(ctx)
}

/// Gets a secret's value back: the runbook's `recover` closure, else where it came from
/// (environment, prompt/answers), else the operator. It must match the journalled
/// fingerprint.
fn supply(loaded: &Loaded, ctx: &Ctx, key: &str, fp: &str, source: &Source) -> Result<Secret> {
    let mismatch = |got: &Secret, how: &str| {
        Error::usage(
            format!(
                "the value {how} for ctx.{key} is not the one this run used (expected {fp}, got {})",
                got.fingerprint()
            ),
            "supply the same value the run used (it was journalled only as a fingerprint); a different token would mix two rotations",
        )
    };
    if let Some((_, how)) = loaded.plan.recover.iter().find(|(k, _)| k == key) {
        loaded.host.set_phase(Phase::Step(format!("recover.{key}")));
        let got = how.call::<Dynamic>(&loaded.engine, &loaded.ast, (ctx.clone(),));
        loaded.host.set_phase(Phase::Loading);
        match got {
            Ok(v) => match v.try_cast::<Secret>() {
                Some(s) if s.fingerprint() == fp => return Ok(s),
                Some(s) => return Err(mismatch(&s, "recovered")),
                None => crate::ui::err(&format!(
                    "warning: recover(\"{key}\") did not return a Secret; asking instead"
                )),
            },
            Err(e) => crate::ui::err(&format!(
                "note: recover(\"{key}\") could not get the value back ({}); asking instead",
                crate::engine::ScriptError::from_eval(&e, loaded.sources()).message
            )),
        }
    }
    if let Source::Env { name } = source {
        if let Ok(v) = std::env::var(name) {
            let s = Secret::new(v, source.clone());
            return if s.fingerprint() == fp {
                Ok(s)
            } else {
                Err(mismatch(&s, &format!("in ${name}")))
            };
        }
    }
    let id = match source {
        Source::Prompt { id } | Source::Answers { id } => id.clone(),
        _ => format!("resume.{key}"),
    };
    let question =
        format!("Enter the value of ctx.{key} this run used (from {source}; fingerprint {fp})");
    let s = loaded
        .host
        .prompter
        .borrow_mut()
        .secret(&id, &question)
        .map_err(|e| {
            Error::usage(
                format!("ctx.{key} is needed to continue: {e}"),
                e.help().unwrap_or_default(),
            )
        })?;
    if s.fingerprint() != fp {
        return Err(mismatch(&s, "entered"));
    }
    Ok(s.with_source(source.clone()))
}

/// Fingerprint check used by tests and the REPL.
pub fn matches(value: &str, fp: &str) -> bool {
    fingerprint(value) == fp
}
