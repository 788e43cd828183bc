//! `runbook runs`, `runbook resume RUN_ID`, `runbook rollback RUN_ID`.

use super::exec::{banner, finish, install, load, new_report, services};
use crate::cli::{ResumeArgs, RunsArgs};
use runbook_core::error::{exit, Error, Result};
use runbook_core::exec::journal::{self, RunState};
use runbook_core::exec::lock::{self, Lock};
use runbook_core::exec::{self, resume, Start};
use runbook_core::host::Phase;
use runbook_core::plan::{Ctx, Loaded};
use runbook_core::ui;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One line of `runbook runs`.
fn summarize(path: &Path, state_dir: &Path) -> Option<Value> {
    let records = journal::read(path).ok()?;
    let st = RunState::from_records(&records);
    let start = &st.start;
    let run_id = start["run_id"].as_str()?.to_string();
    let status = match &st.ended {
        Some(s) => s.clone(),
        None => {
            // No end record: still running if its lock holder lives, else it died.
            let alive = std::fs::read_dir(state_dir.join("locks"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| lock::holder(&e.path()))
                .any(|h| h["run_id"] == run_id.as_str() && pid_alive(&h));
            if alive { "running" } else { "interrupted" }.to_string()
        }
    };
    Some(json!({
        "run_id": run_id,
        "runbook": start["runbook"],
        "actor": start["actor"],
        "started_at": start["t"],
        "mode": start["mode"],
        "status": status.replace('_', " "),
        "last_step": st.last_step,
    }))
}

fn pid_alive(h: &Value) -> bool {
    let pid = h["pid"].as_i64().unwrap_or(0);
    // SAFETY: signal 0 only checks that the process exists.
    h["host"] == exec::hostname().as_str() && pid > 0 && unsafe { libc::kill(pid as i32, 0) == 0 }
}

pub fn runs(args: RunsArgs) -> Result<u8> {
    let state_dir = runbook_core::state::dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(state_dir.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    // Run ids start with a UTC timestamp: newest first.
    files.sort();
    files.reverse();
    let rows: Vec<Value> = files
        .iter()
        .take(args.limit)
        .filter_map(|p| summarize(p, &state_dir))
        .collect();
    if args.json {
        ui::out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::err(&format!(
            "no runs yet in {}",
            state_dir.join("runs").display()
        ));
        return Ok(exit::OK);
    }
    ui::out(&format!(
        "{:<28} {:<24} {:<14} {:<20} {:<12} {}",
        "RUN", "RUNBOOK", "STATUS", "STARTED", "LAST STEP", "ACTOR"
    ));
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        ui::out(&format!(
            "{:<28} {:<24} {:<14} {:<20} {:<12} {}",
            s("run_id"),
            s("runbook"),
            if s("mode") == "dry-run" {
                format!("{} (dry)", s("status"))
            } else {
                s("status")
            },
            s("started_at"),
            s("last_step"),
            s("actor")
        ));
    }
    Ok(exit::OK)
}

/// Everything `resume`, `rollback` and `repl --attach` need: the reloaded runbook wired to
/// the run, its restored ctx and the steps the journal says completed.
pub(crate) struct Reopened {
    pub loaded: Loaded,
    pub state: RunState,
    pub ctx: Ctx,
    pub completed: Vec<usize>,
    pub lock: Lock,
    pub run_id: String,
    pub actor: String,
}

pub(crate) fn reopen(args: &ResumeArgs, what: &str) -> Result<Reopened> {
    let state_dir = runbook_core::state::dir();
    let (_, state) = resume::open(&state_dir, &args.run_id)?;
    let start = &state.start;
    if start["mode"] == "dry-run" {
        return Err(Error::usage(
            format!(
                "run {} was a dry run: there is nothing to {what}",
                args.run_id
            ),
            "start a real run with `runbook exec`",
        ));
    }
    if start["sandbox"] == true {
        return Err(Error::usage(
            format!(
                "run {} used an in-process --sandbox, whose simulated vendors ended with it",
                args.run_id
            ),
            "rehearse crash recovery against `runbook sandbox` (a separate process) instead",
        ));
    }
    match state.ended.as_deref() {
        Some("succeeded") if what != "rollback" => {
            return Err(Error::usage(
                format!("run {} already succeeded: nothing to resume", args.run_id),
                "start a new rotation with `runbook exec`",
            ));
        }
        Some("rolled_back") => {
            return Err(Error::usage(
                format!("run {} was already rolled back", args.run_id),
                "start a new rotation with `runbook exec`",
            ));
        }
        _ => {}
    }
    let path = PathBuf::from(start["source"]["path"].as_str().unwrap_or(""));
    let loaded = load(&path, args.answers.as_deref(), args.yes)?;
    resume::check_unchanged(start, &loaded, args.force)?;
    let actor = exec::actor(args.actor.as_deref());
    let run_id = args.run_id.clone();
    let key = lock::key(&loaded.plan.meta().id, &start["params"]);
    let (lock, broken) = Lock::acquire(&state_dir, &key, &run_id, &actor, args.break_lock)?;
    let (services, _, _) = services(false, &Default::default())?;
    install(&loaded, &state_dir, &run_id, &actor, what, false, services)?;
    if let Some(holder) = broken {
        loaded
            .host
            .journal("lock.broken", json!({ "holder": holder }));
    }
    loaded.host.journal(
        "run.resume",
        json!({ "actor": actor, "pid": std::process::id(), "as": what }),
    );
    let ctx = resume::restore_ctx(&loaded, &state)?;
    let completed: Vec<usize> = loaded
        .plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| state.status_of(&s.id) == Some("completed"))
        .map(|(i, _)| i)
        .collect();
    Ok(Reopened {
        loaded,
        state,
        ctx,
        completed,
        lock,
        run_id,
        actor,
    })
}

pub fn resume(args: ResumeArgs) -> Result<u8> {
    let mut r = reopen(&args, "resume")?;
    let plan = &r.loaded.plan;
    banner(&r.loaded, &r.run_id, &r.actor, false);
    let mut next = (0..plan.steps.len())
        .find(|i| !r.completed.contains(i))
        .unwrap_or(plan.steps.len());
    match plan.steps.get(next) {
        // The process died after its last step, before recording the end.
        None => ui::progress("Every step had completed; recording the run as succeeded."),
        // The process died inside this step: did its effect happen?
        Some(step) if r.state.status_of(&step.id) == Some("intent") => {
            if let Uncertain::Done = uncertain(&r, next)? {
                r.loaded.host.journal(
                    "step.outcome",
                    json!({ "step": step.id, "status": "completed", "verified": true, "ctx": r.ctx.snapshot() }),
                );
                r.completed.push(next);
                next += 1;
            }
        }
        Some(_) => {}
    }
    ui::progress(&format!(
        "Resuming at step {}/{}{}",
        next + 1,
        plan.steps.len(),
        plan.steps
            .get(next)
            .map(|s| format!(" · {}", s.id))
            .unwrap_or_default()
    ));
    let opts = exec::Options {
        yes: args.yes,
        no_rollback: args.no_rollback,
        dry_run: false,
        json: args.json,
    };
    let report = new_report(&r.loaded, &r.run_id, &r.actor, false);
    let start = Start::Resume {
        completed: r.completed.clone(),
        next,
    };
    let report = exec::run(&r.loaded, &opts, r.ctx.clone(), report, start);
    r.lock.release();
    finish(&report, args.json)
}

enum Uncertain {
    Done,
    Rerun,
}

/// A step with an intent but no outcome: re-run it only if it is idempotent, or its
/// `verify` says it did not take effect; otherwise ask, showing the writes that started.
fn uncertain(r: &Reopened, i: usize) -> Result<Uncertain> {
    let step = &r.loaded.plan.steps[i];
    if let Some(verify) = &step.verify {
        r.loaded.host.set_phase(Phase::Step(step.id.clone()));
        let done = verify.call::<bool>(&r.loaded.engine, &r.loaded.ast, (r.ctx.clone(),));
        match done {
            Ok(true) => {
                ui::progress(&format!(
                    "  step '{}' was interrupted, but its verify says it took effect",
                    step.id
                ));
                return Ok(Uncertain::Done);
            }
            Ok(false) => {
                ui::progress(&format!(
                    "  step '{}' was interrupted before taking effect; running it again",
                    step.id
                ));
                return Ok(Uncertain::Rerun);
            }
            Err(e) => ui::err(&format!(
                "  could not verify step '{}': {}",
                step.id,
                runbook_core::engine::ScriptError::from_eval(&e, r.loaded.sources())
            )),
        }
    }
    if step.idempotent {
        ui::progress(&format!(
            "  step '{}' was interrupted; it is idempotent, so it runs again",
            step.id
        ));
        return Ok(Uncertain::Rerun);
    }
    ui::err(&format!(
        "Step '{}' was interrupted: it started but its outcome was never recorded.",
        step.id
    ));
    if r.state.open_writes.is_empty() {
        ui::err("  The journal saw no write start in it.");
    }
    for w in &r.state.open_writes {
        ui::err(&format!(
            "  write started: {} on {}",
            w["function"].as_str().unwrap_or("?"),
            w["target"].as_str().unwrap_or("?")
        ));
    }
    let id = format!("{}.rerun", step.id);
    let again = r
        .loaded
        .host
        .prompter
        .borrow_mut()
        .confirm(&id, &format!("Run step '{}' again?", step.id))
        .map_err(|e| {
            Error::usage(
                e.to_string(),
                e.help()
                    .unwrap_or_else(|| "answer on a terminal, or pass --yes".into()),
            )
        })?;
    if again {
        Ok(Uncertain::Rerun)
    } else {
        Err(Error::Aborted)
    }
}

pub fn rollback(args: ResumeArgs) -> Result<u8> {
    let mut r = reopen(&args, "rollback")?;
    banner(&r.loaded, &r.run_id, &r.actor, false);
    let mut completed = r.completed.clone();
    // A step that died mid-way may have written: undo it too (undos are written to be safe
    // to run when the step only partly happened).
    if let Some(last) = &r.state.last_step {
        if let Some(i) = r.loaded.plan.steps.iter().position(|s| &s.id == last) {
            if r.state.status_of(last) == Some("intent") && !completed.contains(&i) {
                completed.push(i);
            }
        }
    }
    completed.sort();
    if completed.is_empty() {
        ui::progress("No step of this run completed: nothing to undo.");
    }
    let opts = exec::Options {
        yes: args.yes,
        no_rollback: false,
        dry_run: false,
        json: args.json,
    };
    let report = new_report(&r.loaded, &r.run_id, &r.actor, false);
    let report = exec::run(
        &r.loaded,
        &opts,
        r.ctx.clone(),
        report,
        Start::Rollback { completed },
    );
    r.lock.release();
    finish(&report, args.json)
}
