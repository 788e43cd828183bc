//! `runbook runs`, `runbook resume RUN_ID`, `runbook rollback RUN_ID`.

use super::exec::{banner, finish, prompter};
use crate::cli::{ResumeArgs, RunsArgs};
use crate::error::{exit, Result};
use crate::wiring;
use runbook_core::exec::lock;
use runbook_core::exec::resume;
use runbook_core::exec::{self, Reopen, Reopened, Session};
use runbook_core::journal::{self, RunState};
use runbook_core::run::{self, Mode, RunStatus};
use runbook_core::ui;
use serde_json::{json, Value};
use std::path::Path;

/// One line of `runbook runs`: how the run itself ended, and every later attempt at it.
fn summarize(entries: &[journal::Entry], holders: &[lock::Holder]) -> Option<Value> {
    let st = RunState::from_entries(entries)?;
    let start = &st.start;
    // A process that recorded no end is still running if it holds the run's lock, else it
    // died (only the last process can be running).
    // A lease says for itself whether it is live; a lock file only on the host of its pid.
    let alive = holders.iter().any(|h| {
        h.run_id == start.run_id
            && if h.expires.is_some() {
                !h.is_dead()
            } else {
                h.is_alive_here()
            }
    });
    let or_unfinished = |ended: Option<RunStatus>, last: bool| match ended {
        Some(s) => s,
        None if last && alive => RunStatus::Running,
        None => RunStatus::Interrupted,
    };
    // A REPL session that was left with :quit (or end of input) ended; it did not fail.
    let repl_ended = entries
        .iter()
        .any(|e| matches!(e.record, journal::Record::ReplEnd { .. }));
    let status = match (start.mode, st.outcome) {
        (Mode::Repl, None) if repl_ended => "ended",
        (_, outcome) => or_unfinished(outcome, st.attempts.is_empty()).as_str(),
    };
    let attempts: Vec<Value> = st
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            json!({
                "mode": a.mode,
                "actor": a.actor,
                "started_at": a.started_at,
                "status": or_unfinished(a.ended, i + 1 == st.attempts.len()).as_str(),
            })
        })
        .collect();
    Some(json!({
        "run_id": start.run_id,
        "runbook": start.runbook,
        "actor": start.actor,
        "started_at": st.started_at,
        "mode": start.mode,
        "kind": mode_label(start.mode, start.sandbox),
        "status": status,
        "attempts": attempts,
        "settled": st.settled().map(RunStatus::as_str),
        "last_step": st.last_step,
    }))
}

/// What sort of run it was, as `runs` shows it: real, sandbox, dry-run, repl.
fn mode_label(mode: Mode, sandbox: bool) -> &'static str {
    match (mode, sandbox) {
        (Mode::Exec, false) | (Mode::Resume, false) | (Mode::Rollback, false) => "real",
        (Mode::DryRun, true) => "dry-run (sandbox)",
        (Mode::DryRun, false) => "dry-run",
        (Mode::Repl, _) => "repl",
        _ => "sandbox",
    }
}

/// `resume: succeeded, rollback: failed`.
fn attempts_line(row: &Value) -> String {
    let list: Vec<String> = row["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}: {}",
                a["mode"].as_str().unwrap_or("?"),
                a["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

pub fn runs(args: RunsArgs) -> Result<u8> {
    let store = wiring::store()?;
    if let Some(id) = &args.run_id {
        return timeline(&store, id, args.json);
    }
    // Run ids start with a UTC timestamp: newest first.
    let mut ids = store.runs()?;
    ids.reverse();
    let holders = lock::holders(&store)?;
    let rows: Vec<Value> = ids
        .iter()
        .take(args.limit)
        .filter_map(|id| {
            let entries = journal::read_run(&store, id).ok()??;
            summarize(&entries, &holders)
        })
        .collect();
    if args.json {
        ui::out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::err(&format!("no runs yet in {}", store.runs_where()));
        return Ok(exit::OK);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            vec![
                s("run_id"),
                s("runbook"),
                s("kind"),
                s("status"),
                s("started_at"),
                s("last_step"),
                s("actor"),
                attempts_line(r),
            ]
        })
        .collect();
    super::print_table(
        &[
            "RUN",
            "RUNBOOK",
            "MODE",
            "STATUS",
            "STARTED",
            "LAST STEP",
            "ACTOR",
            "LATER ATTEMPTS",
        ],
        &table,
    );
    Ok(exit::OK)
}

/// `runbook runs RUN_ID`: the run's journal as a timeline.
fn timeline(store: &runbook_core::store::Store, run_id: &str, json: bool) -> Result<u8> {
    let not_found = || {
        crate::error::Error::usage(
            format!("no run '{run_id}' in {}", store.runs_where()),
            "`runbook runs` lists the runs and their ids",
        )
    };
    if !run::is_run_id(run_id) {
        return Err(not_found());
    }
    let entries = journal::read_run(store, run_id)?.ok_or_else(not_found)?;
    let summary = summarize(&entries, &lock::holders(store)?).unwrap_or_default();
    let st = RunState::from_entries(&entries);
    let in_effect: Vec<Value> = st
        .as_ref()
        .map(|s| {
            s.writes
                .iter()
                .filter(|w| w.state.may_have_applied())
                .map(|w| json!({"step": w.step, "function": w.function, "target": w.target, "state": w.state}))
                .collect()
        })
        .unwrap_or_default();
    let step_ms: u64 = entries
        .iter()
        .filter_map(|e| match &e.record {
            journal::Record::StepOutcome(o) => o.duration_ms,
            _ => None,
        })
        .sum();
    if json {
        let events: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(&e.record).unwrap_or_default();
                if let Value::Object(m) = &mut v {
                    m.remove("ctx");
                    m.remove("detail");
                    m.insert("t".into(), json!(e.t));
                }
                v
            })
            .collect();
        let mut out = json!({"run": summary, "step_time_ms": step_ms, "in_effect": in_effect, "events": events});
        runbook_secret::redact_json(&mut out);
        ui::out(&serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(exit::OK);
    }
    let s = |k: &str| summary[k].as_str().unwrap_or("-").to_string();
    ui::out(&format!(
        "run {} · {} · {} · {} · actor {}",
        s("run_id"),
        s("runbook"),
        s("kind"),
        s("status"),
        s("actor")
    ));
    let clock = |t: &str| t.get(11..19).unwrap_or(t).to_string();
    for e in &entries {
        let line = match &e.record {
            journal::Record::RunStart(r) => {
                format!(
                    "run started ({}, by {} on {})",
                    r.mode.as_str(),
                    r.actor,
                    r.host
                )
            }
            journal::Record::RunResume { actor, attempt, .. } => {
                format!("{} by {actor}", attempt.as_str())
            }
            journal::Record::RunEnd { status, .. } => format!("ended: {}", status.as_str()),
            journal::Record::LockBroken { .. } => "a stale lock was broken".into(),
            journal::Record::StepIntent { step, attempt, .. } => match attempt {
                Some(n) if *n > 1 => format!("step {step}: attempt {n} (retry)"),
                _ => format!("step {step}"),
            },
            journal::Record::StepOutcome(o) => {
                let ms = o
                    .duration_ms
                    .map(|m| format!(" in {m} ms"))
                    .unwrap_or_default();
                let err = o
                    .error
                    .as_deref()
                    .map(|e| format!(": {}", ui::truncate(e.lines().next().unwrap_or(""), 120)))
                    .unwrap_or_default();
                let status = serde_json::to_value(o.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                format!("step {}: {status}{ms}{err}", o.step)
            }
            journal::Record::WriteIntent { .. } => continue,
            journal::Record::WriteOutcome {
                function,
                target,
                ok,
                unknown,
                pending,
                filed,
                ..
            } => {
                let outcome = if *pending {
                    format!(
                        "pending approval{}",
                        filed
                            .as_ref()
                            .map(|f| format!(" ({})", f.slug))
                            .unwrap_or_default()
                    )
                } else if *unknown {
                    "outcome unknown (answer lost)".into()
                } else if *ok {
                    "applied".into()
                } else {
                    "refused".into()
                };
                format!("  {function} on {target}: {outcome}")
            }
            journal::Record::UndoIntent { step } => format!("undo {step}"),
            journal::Record::UndoOutcome {
                step, ok, error, ..
            } => match (ok, error) {
                (true, _) => format!("undo {step}: done"),
                (false, e) => format!(
                    "undo {step}: failed{}",
                    e.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            },
            journal::Record::RollbackBlocked { step, .. } => {
                format!("rollback stopped at {step}: it cannot be undone")
            }
            journal::Record::ReplEnd { failed_inputs } => {
                format!("repl session ended ({failed_inputs} failed input(s))")
            }
        };
        ui::out(&format!("  {}  {line}", clock(&e.t)));
    }
    let first = entries.first().map(|e| e.t.clone()).unwrap_or_default();
    let last = entries.last().map(|e| e.t.clone()).unwrap_or_default();
    ui::out(&format!(
        "time in steps: {:.1}s across {} process(es) (first record {first}, last {last})",
        step_ms as f64 / 1000.0,
        1 + summary["attempts"].as_array().map_or(0, Vec::len)
    ));
    if in_effect.is_empty() {
        ui::out("in effect: nothing (no write of the run is in effect)");
    } else {
        ui::out("in effect:");
        for w in &in_effect {
            ui::out(&format!(
                "  {} · {} on {}: {}",
                w["step"].as_str().unwrap_or(""),
                w["function"].as_str().unwrap_or(""),
                w["target"].as_str().unwrap_or(""),
                w["state"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(exit::OK)
}

/// Reopens a stopped run for `attempt` (resume, rollback, or the REPL's `--attach`).
pub fn reopen(
    run_id: &str,
    attempt: Mode,
    actor: Option<&str>,
    answers: Option<&Path>,
    yes: bool,
    force: bool,
    break_lock: bool,
) -> Result<Reopened> {
    let services = wiring::services(false, &Default::default())?.services;
    Ok(Session::reopen(Reopen {
        store: wiring::store()?,
        run_id: run_id.to_string(),
        actor: run::actor(actor),
        attempt,
        force,
        break_lock,
        services,
        prompter: prompter(answers, yes)?,
    })?)
}

fn reopen_for(args: &ResumeArgs, attempt: Mode) -> Result<Reopened> {
    reopen(
        &args.run_id,
        attempt,
        args.actor.as_deref(),
        args.answers.as_deref(),
        args.yes,
        args.force,
        args.break_lock,
    )
}

pub fn resume(args: ResumeArgs) -> Result<u8> {
    let mut r = reopen_for(&args, Mode::Resume)?;
    banner(&r.session, &[]);
    let opts = exec::Options {
        yes: args.yes,
        no_rollback: args.no_rollback,
        dry_run: false,
        json: args.json,
        approve_irreversible: crate::wiring::approval_policy()?,
    };
    let report = resume::resume(&mut r, &opts)?;
    finish(&report, args.json)
}

pub fn rollback(args: ResumeArgs) -> Result<u8> {
    let mut r = reopen_for(&args, Mode::Rollback)?;
    banner(&r.session, &[]);
    let opts = exec::Options {
        yes: args.yes,
        no_rollback: false,
        dry_run: false,
        json: args.json,
        approve_irreversible: crate::wiring::approval_policy()?,
    };
    let report = resume::rollback(&mut r, &opts)?;
    finish(&report, args.json)
}
