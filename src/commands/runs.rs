//! `runbook runs`, `runbook resume RUN_ID`, `runbook rollback RUN_ID`: every view of a run
//! reads its folded ledger.

use super::exec::{banner, finish, outcome_text, prompter};
use crate::cli::{AbandonArgs, ResumeArgs, RunsArgs};
use crate::error::{exit, Result};
use crate::settings::Settings;
use crate::{ui, wiring};
use runbook_core::events::Holds;
use runbook_core::events::{Event, Stamped, StepEnd};
use runbook_core::exec::lock;
use runbook_core::exec::lock::BreakLock;
use runbook_core::exec::resume;
use runbook_core::exec::{self, Abandon, Reopen, Reopened, Session, Wiring};
use runbook_core::ledger::{self, Ledger};
use runbook_core::run::{self, Effect, Entry, Mode, RunStatus};
use serde_json::Value;
use std::path::Path;

/// What a process did with the run, as `runs` says it: how it ended, or that it is still
/// running (it holds the run's lock), or that it died.
fn status_of(ended: Option<RunStatus>, last: bool, alive: bool) -> RunStatus {
    match ended {
        Some(s) => s,
        None if last && alive => RunStatus::Running,
        None => RunStatus::Interrupted,
    }
}

/// One line of `runbook runs` (and `runs --json`): how the run itself ended, and every
/// later attempt at it.
#[derive(serde::Serialize)]
struct RunRow {
    run_id: String,
    runbook: String,
    /// The name given (`--actor`, git, the user): a label anyone can type.
    actor: String,
    /// In team mode, the database login the server stamped on the run's start (`runs
    /// RUN_ID` only: the list does not read the stamps).
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<String>,
    started_at: String,
    /// The label the audit log gives it.
    mode: Mode,
    target: &'static str,
    effect: Effect,
    entry: Entry,
    /// How the run's first process ended.
    status: &'static str,
    /// Where the run stands now: the last attempt's status (a resume that succeeded, a
    /// rollback, an abandon), else `status`. The table's STATUS column.
    current: &'static str,
    attempts: Vec<AttemptRow>,
    settled: Option<&'static str>,
    /// Stopped with changes in effect that nothing settled: a new rotation waits for it.
    unfinished: bool,
    /// The later run that rotated the same secret: this one must not be rolled back or
    /// resumed over it.
    superseded_by: Option<String>,
    /// A later run whose journal cannot be read and may be of the same rotation: a
    /// rollback or resume of this one is refused until it is read and abandoned.
    #[serde(skip_serializing_if = "Option::is_none")]
    may_be_superseded_by: Option<String>,
    last_step: Option<String>,
}

/// `rows` with each of `inserted` put back at its place.
fn in_place<T>(mut rows: Vec<T>, inserted: Vec<(usize, T)>) -> Vec<T> {
    for (at, row) in inserted {
        rows.insert(at.min(rows.len()), row);
    }
    rows
}

/// A run whose journal cannot be read: listed with why.
#[derive(serde::Serialize)]
struct DamagedRow {
    /// Its place in the newest-first listing.
    #[serde(skip)]
    at: usize,
    run_id: String,
    current: &'static str,
    /// What is wrong, with the journal's place (file and line).
    problem: String,
}

#[derive(serde::Serialize)]
struct AttemptRow {
    mode: Entry,
    actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<String>,
    started_at: String,
    status: &'static str,
}

/// Who did it, as the views name them: the name given, a label anyone can type, and in
/// team mode the database login the server authenticated, when it is not that name.
fn who(actor: &str, login: Option<&str>) -> String {
    let actor = ui::truncate(actor, 120);
    match login {
        Some(l) if l != actor => format!("{actor} (login {})", ui::truncate(l, 60)),
        _ => actor,
    }
}

fn summarize(l: &Ledger, holders: &[lock::Holder], all: &[Ledger]) -> RunRow {
    let start = &l.start;
    // A process that recorded no end is still running if it holds the run's lock, else it
    // died (only the last process can be running). A lease says for itself whether it is
    // live; a lock file only on the host of its pid.
    let alive = holders.iter().any(|h| {
        h.run_id == l.run_id
            && if h.expires.is_some() {
                !h.is_dead()
            } else {
                h.is_alive_here()
            }
    }) || l.processes.last().is_some_and(|p| {
        // A run that holds no lock (a REPL session, a dry run): its process, if it is
        // still the one that started it, on this machine.
        p.finished.is_none() && run::still_running(&p.host, p.pid, &p.started_at)
    });
    let takeovers = l.takeovers();
    // A REPL session that was left with :quit (or end of input) ended; it did not fail.
    let status = match (start.entry, l.outcome()) {
        (Entry::Repl, None) if l.repl_ended => "ended",
        (_, outcome) => status_of(outcome, takeovers.is_empty(), alive).as_str(),
    };
    let attempts = takeovers
        .iter()
        .enumerate()
        .map(|(i, a)| AttemptRow {
            mode: a.entry,
            actor: a.actor.clone(),
            login: None,
            started_at: a.started_at.clone(),
            status: if a.entry == Entry::Abandon {
                "recorded"
            } else if a.entry == Entry::Repl && a.ended().is_none() && a.repl_ended {
                "ended"
            } else {
                status_of(a.ended(), i + 1 == takeovers.len(), alive).as_str()
            },
        })
        .collect::<Vec<AttemptRow>>();
    // A REPL attached to the run and left (`:quit`) changed where it stands no more than a
    // look does: the run stands as the attempt before it left it.
    let left_repl = |a: &&runbook_core::ledger::Process| {
        a.entry == Entry::Repl && a.ended().is_none() && a.repl_ended
    };
    // Likewise a process that ended without starting a step or an undo (a rollback nobody
    // confirmed, a refused resume): its own status is in the attempts, not the run's.
    let looked =
        |a: &&runbook_core::ledger::Process| a.entry != Entry::Abandon && a.changed_nothing();
    let current = match takeovers.iter().rev().find(|a| !left_repl(a) && !looked(a)) {
        None => status,
        Some(a) if a.entry == Entry::Abandon => "abandoned",
        Some(a) => {
            let last = std::ptr::eq(a, takeovers.last().unwrap_or(a));
            status_of(a.ended(), last, alive).as_str()
        }
    };
    RunRow {
        run_id: l.run_id.clone(),
        runbook: start.runbook.clone(),
        actor: start.actor.clone(),
        login: None,
        started_at: l.started_at.clone(),
        mode: Mode::label(start.target, start.effect, start.entry),
        target: l.target_label(),
        effect: start.effect,
        entry: start.entry,
        status,
        current,
        attempts,
        settled: settled_word(l),
        unfinished: l.is_unfinished(),
        superseded_by: ledger::superseded_by(all, l).map(|later| later.run_id.clone()),
        may_be_superseded_by: None,
        last_step: l.last_step.clone(),
    }
}

/// Whether the rotation is settled and how: it succeeded, was rolled back or abandoned.
fn settled_word(l: &Ledger) -> Option<&'static str> {
    l.settled()
        .map(RunStatus::as_str)
        .or_else(|| l.abandoned.as_ref().map(|_| "abandoned"))
}

/// How a run was entered and what it did, as the MODE column says it.
fn mode_word(l: &Ledger) -> &'static str {
    match (l.start.entry, l.start.effect) {
        (Entry::Repl, _) => "repl",
        (_, Effect::DryRun) => "dry-run",
        (entry, Effect::Apply) => entry.as_str(),
    }
}

/// `resume: succeeded, rollback: failed`.
fn attempts_line(row: &RunRow) -> String {
    let list: Vec<String> = row
        .attempts
        .iter()
        .map(|a| format!("{}: {}", a.mode.as_str(), a.status))
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

/// The runs the audit log records whose journal is not in the runs folder and whose
/// entries show vendor writes nothing settled (a journal deleted mid-run: its changes may
/// be in effect), with the error that says so. The whole log is read (the list is not on a
/// rotation's path), but only the lines of runs without a journal are parsed: a line's
/// run id is found by its key first. A log that cannot be read adds none, said.
fn journals_gone(
    store: &runbook_core::store::Store,
    listed: &[String],
) -> std::collections::BTreeMap<String, runbook_core::error::Error> {
    let listed: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
    // The entry's own `run_id` comes before its context, and a JSON string holds no bare
    // quote: the first such key is the entry's.
    const KEY: &str = "\"run_id\":\"";
    let mut of_run: std::collections::BTreeMap<String, Vec<runbook_core::audit::AuditEntry>> =
        Default::default();
    let read = runbook_core::audit::AuditLog::new(store).each_line(&mut |line| {
        let id = line
            .find(KEY)
            .and_then(|at| line.get(at + KEY.len()..))
            .and_then(|rest| rest.split('"').next());
        if id.is_some_and(|id| listed.contains(id)) {
            return;
        }
        let Ok(entry) = serde_json::from_str::<runbook_core::audit::AuditEntry>(line) else {
            return;
        };
        if run::is_run_id(&entry.event.run_id) && !listed.contains(entry.event.run_id.as_str()) {
            of_run
                .entry(entry.event.run_id.clone())
                .or_default()
                .push(entry);
        }
    });
    if let Err(e) = read {
        ui::err(&format!(
            "warning: the audit log cannot be read, so runs whose journal is gone are not listed: {e}"
        ));
        return Default::default();
    }
    of_run
        .into_iter()
        .filter(|(_, audited)| ledger::audited_changes_unsettled(audited))
        .filter_map(|(id, audited)| ledger::gone(store, &id, &audited).map(|e| (id, e)))
        .collect()
}

pub fn runs(args: RunsArgs, settings: &Settings) -> Result<u8> {
    let store = wiring::store(settings)?;
    if let Some(id) = &args.run_id {
        if args.html {
            return timeline_html(&store, id);
        }
        return timeline(&store, id, args.json);
    }
    // Run ids start with a UTC timestamp: newest first.
    let mut ids = store.runs()?;
    let gone = journals_gone(&store, &ids);
    ids.extend(gone.keys().cloned());
    ids.sort();
    ids.reverse();
    let holders = lock::holders(&store)?;
    let mut ledgers: Vec<Ledger> = Vec::new();
    // A journal that cannot be read may be the run that needs attention: it is listed, as
    // damaged, with why, never left out.
    let mut damaged: Vec<DamagedRow> = Vec::new();
    let journals = ledger::Journals::new(&store);
    for id in ids.iter().take(args.limit) {
        let (problem, current) = match gone.get(id) {
            Some(problem) => (problem.to_string(), "journal gone"),
            None => match journals.read(id.clone()) {
                Ok(Some(Ok(l))) => {
                    ledgers.push(l);
                    continue;
                }
                // Abandoned as it is, and still as it was then: said in the row, not
                // warned of.
                Ok(Some(Err(u))) if journals.holds(&u) => {
                    (u.error.to_string(), "damaged, abandoned")
                }
                Ok(Some(Err(u))) => match u.error {
                    runbook_core::error::Error::JournalNewer { .. } => {
                        (u.error.to_string(), "written by a newer runbook")
                    }
                    _ => (u.error.to_string(), "damaged"),
                },
                // Gone since it was listed, or never held a whole line: no run to show.
                Ok(None) => continue,
                Err(e) => (e.to_string(), "damaged"),
            },
        };
        if current != "damaged, abandoned" {
            ui::err(&format!(
                "warning: run {id}: {problem} (`runbook runs {id}` says more)"
            ));
        }
        damaged.push(DamagedRow {
            at: ledgers.len() + damaged.len(),
            run_id: id.clone(),
            current,
            problem,
        });
    }
    let rows: Vec<RunRow> = ledgers
        .iter()
        .map(|l| summarize(l, &holders, &ledgers))
        .collect();
    if args.json {
        let listed = in_place(
            rows.iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .collect(),
            damaged
                .iter()
                .map(|d| (d.at, serde_json::to_value(d).unwrap_or_default()))
                .collect(),
        );
        ui::json(&listed);
        return Ok(exit::OK);
    }
    if rows.is_empty() && damaged.is_empty() {
        ui::err(&format!("no runs yet in {}", store.runs_where()));
        return Ok(exit::OK);
    }
    let dash = || "-".to_string();
    let damaged_rows = damaged.iter().map(|d| {
        (
            d.at,
            vec![
                d.run_id.clone(),
                "?".into(),
                dash(),
                dash(),
                match d.current {
                    "damaged" => "damaged (see the warning above)".into(),
                    "journal gone" => "journal gone (see the warning above)".into(),
                    current => current.to_string(),
                },
                dash(),
                dash(),
                dash(),
                dash(),
            ],
        )
    });
    let table: Vec<Vec<String>> = rows
        .iter()
        .zip(&ledgers)
        .map(|(r, l)| {
            vec![
                r.run_id.clone(),
                r.runbook.clone(),
                r.target.to_string(),
                mode_word(l).to_string(),
                match &r.superseded_by {
                    Some(later) => format!("{} (superseded by {later})", r.current),
                    None => r.current.to_string(),
                },
                r.started_at.clone(),
                r.last_step.clone().unwrap_or_else(|| "-".into()),
                r.actor.clone(),
                attempts_line(r),
            ]
        })
        .collect();
    let table = in_place(table, damaged_rows.collect());
    super::print_table(
        &[
            "RUN",
            "RUNBOOK",
            "TARGET",
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

/// One event of a run's timeline, as a line; `None` for what the timeline leaves out.
/// One event as a line; `proven`: the login stamped on a start or takeover row.
fn timeline_line(e: &Stamped, proven: Option<&str>) -> Option<String> {
    Some(match &e.event {
        Event::RunStarted(r) => format!(
            "run started ({}, by {} on {})",
            Mode::label(r.target, r.effect, r.entry).as_str(),
            who(&r.actor, proven),
            ui::truncate(&r.host, 120)
        ),
        Event::RunResumed(r) => format!("{} by {}", r.entry.as_str(), who(&r.actor, proven)),
        Event::RunFinished(f) => format!("ended: {}", f.status.as_str()),
        Event::LockBroken { .. } => "a stale lock was broken".into(),
        Event::LeaseLost(l) => format!("step {}: not run: the lock was lost", l.step),
        Event::StepStarted(s) => match s.attempt {
            Some(n) if n > 1 => format!("step {}: attempt {n} (retry)", s.step),
            _ => format!("step {}", s.step),
        },
        Event::StepFinished(o) => {
            let ms = o
                .duration_ms
                .map(|m| format!(" in {m} ms"))
                .unwrap_or_default();
            let err = o
                .error
                .as_deref()
                .map(|e| format!(": {}", ui::truncate(e.lines().next().unwrap_or(""), 120)))
                .unwrap_or_default();
            let status = match o.outcome {
                StepEnd::Completed => "completed",
                StepEnd::Failed => "failed",
                StepEnd::Aborted => "aborted",
                StepEnd::Interrupted => "interrupted",
            };
            format!("step {}: {status}{ms}{err}", o.step)
        }
        Event::WriteOutcome(w) => {
            let outcome = match w.outcome {
                runbook_core::events::WriteOutcome::Unknown => {
                    "outcome unknown (answer lost, or a server error)".into()
                }
                other => outcome_text(other, w.filed.as_ref()),
            };
            format!("  {} on {}: {outcome}", w.function, w.target)
        }
        Event::UndoStarted { step } => format!("undo {step}"),
        Event::UndoFinished(u) => match (u.outcome, &u.error) {
            (StepEnd::Completed, _) => format!("undo {}: done", u.step),
            (_, e) => format!(
                "undo {}: failed{}",
                u.step,
                e.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
        },
        Event::RollbackBlocked { step, why } if step == "restore" => {
            format!("rollback refused: {why}")
        }
        Event::RollbackBlocked { step, .. } => {
            format!("rollback stopped at {step}: it cannot be undone")
        }
        Event::Abandoned(a) => format!(
            "abandoned by {}: {} ({} change(s) left in place)",
            a.actor,
            a.reason,
            a.left.len()
        ),
        Event::Kept(k) => format!("  undo of {} left: {}", k.step, k.what),
        Event::Refreshed(r) => {
            let holds = match r.holds {
                Holds::AsWritten => "holds what this run wrote".to_string(),
                Holds::Changed => format!(
                    "changed since this run{}: left alone",
                    r.now
                        .as_deref()
                        .map(|n| format!(" (holds {n})"))
                        .unwrap_or_default()
                ),
                Holds::Restored => "restored by this run's rollback".to_string(),
                Holds::Unread => "could not be read back".to_string(),
                Holds::NotShown => {
                    "may have applied, but does not hold what this run wrote; left alone"
                        .to_string()
                }
                Holds::Before => {
                    "did not land: nothing changed it since the run started".to_string()
                }
                Holds::Refuted => "its verify read at the vendor that it did not take effect (the operator had said it was done)".to_string(),
            };
            format!("  refresh: {} on {}: {holds}", r.function, r.target)
        }
        Event::Approval(a) => format!("step {}: approval {}", a.step, a.status.as_str()),
        Event::SimulatorAnswered { vendor } => {
            format!("{vendor} answered as a simulator: this run is a rehearsal")
        }
        Event::ReplEnded { failed_inputs } => {
            format!("repl session ended ({failed_inputs} failed input(s))")
        }
        Event::Write(_) | Event::WritePlanned(_) | Event::LeaseTaken(_) | Event::Decision(_) => {
            return None
        }
    })
}

/// A write of the run still in effect, as the timeline lists it.
#[derive(serde::Serialize)]
struct InEffect {
    step: String,
    function: String,
    target: String,
    state: runbook_core::events::WriteOutcome,
}

/// `runs RUN_ID --json`.
#[derive(serde::Serialize)]
struct Timeline {
    run: RunRow,
    step_time_ms: u64,
    in_effect: Vec<InEffect>,
    /// What undos left at the vendors on purpose (a credential kept for diagnosis).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kept: Vec<runbook_core::events::Kept>,
    events: Vec<Value>,
}

/// A journal that cannot be read: if `runbook abandon` set it aside as it is, the error
/// says so (its own help would tell the operator to abandon it again).
fn set_aside_or(
    store: &runbook_core::store::Store,
    run_id: &str,
    error: runbook_core::error::Error,
) -> crate::error::Error {
    let journals = ledger::Journals::new(store);
    let Ok(Some(Err(u))) = journals.read(run_id.to_string()) else {
        return error.into();
    };
    match journals.set_aside(run_id) {
        Some(by) if by.holds(u.sha256.as_deref()) => crate::error::Error::usage(
            format!("run {run_id}: {error}"),
            format!(
                "{} abandoned it as it is at {} ({}): it blocks no new rotation, and its journal is kept for the record; read it by hand",
                by.actor,
                by.time,
                runbook_core::text::truncate(&by.reason, 200)
            ),
        ),
        _ => error.into(),
    }
}

/// One run's events, folded, and its row: `runs RUN_ID` in either form.
fn one_run(
    store: &runbook_core::store::Store,
    run_id: &str,
) -> Result<(Vec<runbook_core::events::Stamped>, Ledger, RunRow)> {
    let not_found = || {
        crate::error::Error::usage(
            format!("no run '{run_id}' in {}", store.runs_where()),
            "`runbook runs` lists the runs and their ids",
        )
    };
    if !run::is_run_id(run_id) {
        return Err(not_found());
    }
    let events = match ledger::read_run(store, run_id) {
        Ok(Some(events)) => events,
        // No journal: as `resume` says it (gone, the audit log recording the run; or none).
        Ok(None) => {
            return Err(ledger::open(store, run_id)
                .err()
                .map_or_else(not_found, Into::into))
        }
        Err(e) => return Err(set_aside_or(store, run_id, e)),
    };
    let Some(l) = Ledger::fold(&events) else {
        return Err(not_found());
    };
    let (later, unreadable) = ledger::after(&ledger::Journals::new(store), run_id)?;
    let mut summary = summarize(&l, &lock::holders(store)?, &later);
    // Who the server says started and took over the run: the stamps on those rows, not
    // the logins the rows claim (which `audit verify` holds against the stamps).
    let stamps = stamps_of(store, run_id, events.len());
    let stamp = |kind: fn(&Event) -> bool| {
        events
            .iter()
            .zip(&stamps)
            .filter(move |(e, _)| kind(&e.event))
            .map(|(_, s)| s.clone())
    };
    // The fold takes the first start, and each takeover in order.
    summary.login = stamp(|e| matches!(e, Event::RunStarted(_)))
        .next()
        .flatten();
    for (a, login) in summary
        .attempts
        .iter_mut()
        .zip(stamp(|e| matches!(e, Event::RunResumed(_))))
    {
        a.login = login;
    }
    if summary.superseded_by.is_none() {
        // As a rollback or resume would find it (`exec::session`'s `superseding`).
        summary.may_be_superseded_by = unreadable
            .into_iter()
            .find(|u| ledger::may_supersede(u, &l))
            .map(|u| u.run_id);
    }
    Ok((events, l, summary))
}

/// The login the store stamped on each of the run's rows, one per event read (`None`
/// each on a store that stamps nothing, or when the rows and the events do not pair up).
fn stamps_of(
    store: &runbook_core::store::Store,
    run_id: &str,
    events: usize,
) -> Vec<Option<String>> {
    match store.journal_stamped(run_id) {
        Ok(Some(rows)) if rows.len() == events => rows.into_iter().map(|r| r.login).collect(),
        _ => vec![None; events],
    }
}

/// `runbook runs RUN_ID`: the run's ledger as a timeline.
fn timeline(store: &runbook_core::store::Store, run_id: &str, json: bool) -> Result<u8> {
    let (events, l, summary) = one_run(store, run_id)?;
    let in_effect: Vec<InEffect> = l
        .changes()
        .into_iter()
        .map(|w| InEffect {
            step: w.step,
            function: w.function,
            target: w.target,
            state: w.outcome,
        })
        .collect();
    let step_ms = l.step_ms();
    if json {
        let events = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                if let Value::Object(m) = &mut v {
                    m.remove("ctx");
                    m.remove("detail");
                }
                v
            })
            .collect();
        let out = Timeline {
            run: summary,
            step_time_ms: step_ms,
            in_effect,
            kept: l.kept.clone(),
            events,
        };
        let mut out = serde_json::to_value(out).unwrap_or_default();
        runbook_secret::redact_json(&mut out);
        ui::json(&out);
        return Ok(exit::OK);
    }
    ui::out(&format!(
        "run {} · {} · {} · {} · actor {}",
        summary.run_id,
        summary.runbook,
        summary.target,
        // Where the run stands now, as the table and the page say: a resume that finished
        // it, a rollback, an abandon (the first process's end is in the lines below).
        summary.current,
        who(&summary.actor, summary.login.as_deref())
    ));
    if let Some(later) = &summary.superseded_by {
        ui::out(&format!(
            "superseded by {later}: a later run rotated the same secret (`runbook runs {later}`)"
        ));
    }
    if let Some(later) = &summary.may_be_superseded_by {
        ui::out(&format!(
            "may be superseded by {later}: a later run whose journal cannot be read may have rotated the same secret; a rollback or resume of this run is refused unless forced (--force, and its id typed back)"
        ));
    }
    // UTC, as the journal keeps it, with the date where it changes: a run resumed the next
    // day must not seem to go back in time, nor be read in local time.
    let mut day = "";
    let stamps = stamps_of(store, run_id, events.len());
    for (e, stamp) in events.iter().zip(&stamps) {
        let proven = match &e.event {
            Event::RunStarted(_) | Event::RunResumed(_) => stamp.clone(),
            _ => None,
        };
        if let Some(line) = timeline_line(e, proven.as_deref()) {
            let (date, time) = match (e.time.get(..10), e.time.get(11..19)) {
                (Some(d), Some(t)) => (d, format!("{t}Z")),
                _ => ("", e.time.clone()),
            };
            if date != day {
                ui::out(&format!("  {date} (UTC)"));
                day = date;
            }
            ui::out(&format!("  {time}  {line}"));
        }
    }
    let first = events.first().map(|e| e.time.clone()).unwrap_or_default();
    let last = events.last().map(|e| e.time.clone()).unwrap_or_default();
    ui::out(&format!(
        "time in steps: {:.1}s across {} process(es) (first record {first}, last {last})",
        step_ms as f64 / 1000.0,
        l.processes.len()
    ));
    if in_effect.is_empty() {
        ui::out("in effect: nothing (no write of the run is in effect)");
    } else {
        match &summary.superseded_by {
            // What it wrote was rotated again since: listed as it ended, not as the world
            // is (a cleanup by hand of these would revert the later rotation).
            Some(later) => ui::out(&format!(
                "in effect when it ended (run {later} rotated the same secret since: not what the vendors hold now; do not undo them by hand):"
            )),
            None => ui::out("in effect:"),
        }
        for w in &in_effect {
            ui::out(&format!(
                "  {} · {} on {}: {}",
                w.step,
                w.function,
                w.target,
                w.state.as_str()
            ));
        }
    }
    if !l.kept.is_empty() {
        ui::out("left by an undo, on purpose:");
        for k in &l.kept {
            ui::out(&format!("  {} · {}", k.step, k.what));
        }
    }
    Ok(exit::OK)
}

/// `runs RUN_ID --html`: the timeline page on stdout.
fn timeline_html(store: &runbook_core::store::Store, run_id: &str) -> Result<u8> {
    let (events, l, summary) = one_run(store, run_id)?;
    // The point of no return is the runbook's: read it again, if it is still there.
    let irreversible: Vec<String> =
        runbook_core::runbook::SourceFile::read(std::path::Path::new(&l.start.source.path))
            .and_then(runbook_core::runbook::Runbook::load)
            .map(|rb| {
                rb.plan()
                    .steps
                    .iter()
                    .filter(|s| s.irreversible.is_some())
                    .map(|s| s.id.clone())
                    .collect()
            })
            .unwrap_or_default();
    let page = super::timeline_page::Page {
        run_id,
        runbook: &summary.runbook,
        target: summary.target,
        status: summary.current,
        actor: &summary.actor,
        irreversible: &irreversible,
    };
    ui::out(&super::timeline_page::render(&page, &events));
    Ok(exit::OK)
}

/// How a stopped run is reopened.
pub struct ReopenAs<'a> {
    pub run_id: &'a str,
    pub entry: Entry,
    pub actor: Option<&'a str>,
    pub answers: Option<&'a Path>,
    pub yes: bool,
    pub force: bool,
    pub break_lock: BreakLock,
    pub json: bool,
}

/// Reopens a stopped run for `entry` (resume, rollback, or the REPL's `--attach`).
pub fn reopen(how: ReopenAs, settings: &Settings) -> Result<Reopened> {
    let services = wiring::services(settings, false, &Default::default())?.services;
    // The answers file against the run's runbook, as `exec` checks it: a typo's "no" is
    // `--yes`'s yes in a resume or a rollback too (review of this session's change).
    let vet: Option<runbook_core::exec::session::Vet> = match how.answers {
        Some(file) => {
            let (file, yes) = (file.to_path_buf(), how.yes);
            let answers = runbook_core::prompt::Answers::load(&file)?;
            Some(Box::new(move |runbook| {
                super::exec::check_answers(runbook, &file, &answers, yes).map_err(|e| match e {
                    crate::error::Error::Core(e) => e,
                    other => runbook_core::error::Error::usage(other.to_string(), ""),
                })
            }))
        }
        None => None,
    };
    Ok(Session::reopen(Reopen {
        wiring: Wiring {
            store: wiring::store(settings)?,
            actor: settings.actor(how.actor)?,
            services,
            prompter: prompter(how.answers, how.yes)?,
            sink: crate::view::sink(how.json),
            webhook: settings.audit_webhook(),
            break_lock: how.break_lock,
        },
        run_id: how.run_id.to_string(),
        entry: how.entry,
        force: how.force,
        vet,
    })?)
}

fn reopen_for(args: &ResumeArgs, entry: Entry, settings: &Settings) -> Result<Reopened> {
    reopen(
        ReopenAs {
            run_id: &args.run_id,
            entry,
            actor: args.run.actor.as_deref(),
            answers: args.run.answers.as_deref(),
            yes: args.run.yes,
            force: args.force,
            break_lock: BreakLock::from_flags(args.run.break_lock, args.run.lease_id.clone()),
            json: args.run.json,
        },
        settings,
    )
}

pub fn resume(args: ResumeArgs, settings: &Settings) -> Result<u8> {
    let mut r = reopen_for(&args, Entry::Resume, settings)?;
    banner(&r.session, &[]);
    let opts = exec::Options {
        yes: args.run.yes,
        no_rollback: args.run.no_rollback,
        dry_run: false,
        json: args.run.json,
        approve_irreversible: settings.approval_policy()?,
        keys: settings.keys(None)?,
    };
    let report = resume::resume(&mut r, &opts)?;
    finish(&report, args.run.json)
}

pub fn rollback(args: ResumeArgs, settings: &Settings) -> Result<u8> {
    let mut r = reopen_for(&args, Entry::Rollback, settings)?;
    banner(&r.session, &[]);
    let opts = exec::Options {
        yes: args.run.yes,
        no_rollback: false,
        dry_run: false,
        json: args.run.json,
        approve_irreversible: settings.approval_policy()?,
        keys: settings.keys(None)?,
    };
    let report = resume::rollback(&mut r, &opts)?;
    finish(&report, args.run.json)
}

/// `runbook abandon RUN_ID --reason TEXT`: ends the run as it is and lists what it leaves.
pub fn abandon(args: AbandonArgs, settings: &Settings) -> Result<u8> {
    let services = wiring::services(settings, false, &Default::default())?.services;
    let report = Session::abandon(Abandon {
        wiring: Wiring {
            store: wiring::store(settings)?,
            actor: settings.actor(args.actor.as_deref())?,
            services,
            prompter: prompter(None, false)?,
            sink: crate::view::sink(false),
            webhook: settings.audit_webhook(),
            break_lock: BreakLock::from_flags(args.break_lock, args.lease_id.clone()),
        },
        run_id: args.run_id.clone(),
        reason: args.reason,
        as_damaged: args.as_damaged,
    })?;
    let abandoned = &report.abandoned;
    ui::out(&format!(
        "Run {} abandoned by {}: {}",
        args.run_id, abandoned.actor, abandoned.reason
    ));
    let heading = match (&report.damaged, abandoned.left.is_empty()) {
        (Some(damage), _) => {
            ui::out(&format!(
                "Its journal cannot be read ({damage}): it is kept as it is, and the audit log records this abandonment with the journal's SHA-256. Should the journal change, the run counts as unfinished again."
            ));
            match abandoned.left.is_empty() {
                true => "The part of its journal that can be read shows no change in effect: read the rest by hand, and check the vendors.",
                false => "Left in place as far as the part that can be read shows (read the rest by hand, and check the vendors):",
            }
        }
        (None, true) => "It left no change in effect.",
        (None, false) => "Left in place (secrets by fingerprint), for whoever cleans up:",
    };
    ui::out(heading);
    for l in &abandoned.left {
        ui::out(&format!("  {} · {} on {}", l.step, l.function, l.target));
        if let Some(how) = &l.cleanup {
            ui::out(&format!("      {how}"));
        }
    }
    ui::out(match report.damaged {
        Some(_) => "It blocks no new rotation now (`runbook exec`). What it did stays unknown: while its journal is kept, a rollback or resume of an earlier run it may have superseded (of its rotation, or of any rotation of its runbook or of any runbook when its journal cannot name them) needs --force and that run's id typed back.",
        None => "Its lock is released: a new rotation can start (`runbook exec`).",
    });
    Ok(exit::OK)
}
