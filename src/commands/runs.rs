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
use std::path::{Path, PathBuf};

/// One line of `runbook runs`: how the run itself ended, and every later attempt at it.
fn summarize(path: &Path, state_dir: &Path) -> Option<Value> {
    let entries = journal::read(path).ok()?;
    let st = RunState::from_entries(&entries)?;
    let start = &st.start;
    // A process that recorded no end is still running if it holds the run's lock, else it
    // died (only the last process can be running).
    let alive = lock::holders(state_dir)
        .iter()
        .any(|h| h.run_id == start.run_id && h.is_alive_here());
    let or_unfinished = |ended: Option<RunStatus>, last: bool| match ended {
        Some(s) => s,
        None if last && alive => RunStatus::Running,
        None => RunStatus::Interrupted,
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
        "status": or_unfinished(st.outcome, st.attempts.is_empty()).as_str(),
        "attempts": attempts,
        "settled": st.settled().map(RunStatus::as_str),
        "last_step": st.last_step,
    }))
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
        "{:<28} {:<24} {:<14} {:<20} {:<12} {:<20} {}",
        "RUN", "RUNBOOK", "STATUS", "STARTED", "LAST STEP", "ACTOR", "LATER ATTEMPTS"
    ));
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        ui::out(&format!(
            "{:<28} {:<24} {:<14} {:<20} {:<12} {:<20} {}",
            s("run_id"),
            s("runbook"),
            if s("mode") == Mode::DryRun.as_str() {
                format!("{} (dry)", s("status"))
            } else {
                s("status")
            },
            s("started_at"),
            s("last_step"),
            s("actor"),
            attempts_line(&r)
        ));
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
        state_dir: runbook_core::state::dir(),
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
    };
    let report = resume::rollback(&mut r, &opts)?;
    finish(&report, args.json)
}
