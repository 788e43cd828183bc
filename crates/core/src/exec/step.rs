//! Running one step, or its undo, the one way every caller runs it (the runner, `resume`,
//! `rollback`, the REPL's `:run` and `:undo`): started in the ledger before, finished
//! after, an audit event, and the crash point the tests kill the process at.

use super::session::{Outcome, Session};
use crate::audit::AuditEvent;
use crate::diagnostic::ScriptError;
use crate::events::{
    ConfirmedBy, Event, StepEnd, StepFinished, StepStarted, UndoFinished, WriteOutcome,
};
use crate::host::Phase;
use crate::ledger::Write;
use crate::plan::Step;
use crate::prompt::PromptError;
use std::time::Instant;

/// The forward body of a step, or its undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Undo,
}

/// What one attempt did.
pub struct Attempt {
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// Whether the attempt performed a write (a failed step is undone only if it did).
    pub wrote: bool,
}

impl Outcome {
    fn end(&self) -> StepEnd {
        match self {
            Outcome::Done => StepEnd::Completed,
            Outcome::Failed(_) => StepEnd::Failed,
            Outcome::Aborted => StepEnd::Aborted,
            Outcome::Interrupted => StepEnd::Interrupted,
            Outcome::Fenced(_) => StepEnd::Failed,
        }
    }

    fn error(&self) -> Option<String> {
        match self {
            Outcome::Failed(d) => Some(d.to_string()),
            Outcome::Fenced(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Runs `step` (or its undo) once. `attempt` numbers forward attempts for the ledger.
pub fn execute(session: &Session, step: &Step, direction: Direction, attempt: u32) -> Attempt {
    execute_marked(session, step, direction, attempt, false)
}

/// `execute`, for a step run by hand before the steps it follows (`:run STEP --force`): the
/// ledger says so.
pub fn execute_marked(
    session: &Session,
    step: &Step,
    direction: Direction,
    attempt: u32,
    out_of_order: bool,
) -> Attempt {
    match direction {
        Direction::Forward => forward(session, step, attempt, out_of_order),
        Direction::Undo => undo(session, step),
    }
}

/// Calls `f` in `phase` under the step's time limit.
fn call_timed(session: &Session, step: &Step, f: &rhai::FnPtr, phase: Phase) -> (Outcome, u64) {
    let what = match phase {
        Phase::Undo(_) => format!("the undo of step '{}'", step.id),
        _ => format!("step '{}'", step.id),
    };
    let started = Instant::now();
    let outcome = {
        let _budget = crate::interrupt::budget(
            step.timeout,
            &what,
            "if the step legitimately takes longer, raise its limit with .timeout(\"30m\"); a call that was in flight may have applied: the journal says which",
        );
        session.call(f, phase)
    };
    (outcome, started.elapsed().as_millis() as u64)
}

fn forward(session: &Session, step: &Step, attempt: u32, out_of_order: bool) -> Attempt {
    let run = session.run();
    run.ledger().record(Event::StepStarted(StepStarted {
        step: step.id.clone(),
        attempt: Some(attempt),
        out_of_order,
    }));
    crate::hooks::crash_point("started", &step.id);
    let (outcome, duration_ms) = call_timed(session, step, &step.run, Phase::Step(step.id.clone()));
    let wrote = run.scope().writes() > 0;
    let error = outcome.error();
    let end = outcome.end();
    run.ledger().record(Event::StepFinished(StepFinished {
        step: step.id.clone(),
        outcome: end,
        duration_ms: Some(duration_ms),
        error: error.clone(),
        wrote: matches!(outcome, Outcome::Failed(_)).then_some(wrote),
        verified: None,
        confirmed_by: None,
        ctx: match end {
            StepEnd::Completed => Some(session.ctx().snapshot()),
            StepEnd::Failed => learned(session),
            StepEnd::Aborted | StepEnd::Interrupted => None,
        },
    }));
    match end {
        StepEnd::Completed => event(session, AuditEvent::StepCompleted { duration_ms }),
        StepEnd::Failed => event(session, AuditEvent::StepFailed { error }),
        StepEnd::Aborted | StepEnd::Interrupted => {}
    }
    if end == StepEnd::Completed {
        crate::hooks::crash_point("after", &step.id);
    }
    Attempt {
        outcome,
        duration_ms,
        wrote,
    }
}

/// What a failed step learned, for a resume not to repeat what it did (`ctx.rolled`, an id
/// it kept): ctx as it is now, except a Secret the step set only in memory. Such a value
/// is kept as the journal had it before the step (or left out): it cannot be read back,
/// and asking the operator for it would stop every resume.
/// `None` when it learned nothing (the journal already has this ctx).
fn learned(session: &Session) -> Option<serde_json::Value> {
    let mut now = session.ctx().snapshot();
    // Before any step completed, the journal's ctx is the run's params.
    let before = session
        .run()
        .ledger()
        .read(None, |l| l.ctx.clone())
        .unwrap_or_else(|| serde_json::json!({ "params": now.get("params").cloned() }));
    let is_secret = |v: &serde_json::Value| v.get("secret").is_some_and(|s| s.is_string());
    if let Some(fields) = now.as_object_mut() {
        let keys: Vec<String> = fields.keys().cloned().collect();
        for k in keys {
            let was = before.get(&k);
            if is_secret(&fields[&k]) && was != Some(&fields[&k]) {
                match was {
                    Some(v) => {
                        fields.insert(k, v.clone());
                    }
                    None => {
                        fields.remove(&k);
                    }
                }
            }
        }
    }
    (now != before).then_some(now)
}

fn undo(session: &Session, step: &Step) -> Attempt {
    let run = session.run();
    let Some(f) = &step.undo else {
        return Attempt {
            outcome: Outcome::Done,
            duration_ms: 0,
            wrote: false,
        };
    };
    run.ledger().record(Event::UndoStarted {
        step: step.id.clone(),
    });
    // What the step did, so its undo restores exactly that.
    session
        .ctx()
        .set("done", done_list(&undoable(run, &step.id)).into());
    let (outcome, duration_ms) = call_timed(session, step, f, Phase::Undo(step.id.clone()));
    session.ctx().remove("done");
    let error = outcome.error();
    let end = outcome.end();
    run.ledger().record(Event::UndoFinished(UndoFinished {
        step: step.id.clone(),
        outcome: end,
        error: error.clone(),
        ctx: (end == StepEnd::Completed).then(|| session.ctx().snapshot()),
    }));
    crate::hooks::crash_point("undone", &step.id);
    let step_id = step.id.clone();
    match end {
        StepEnd::Completed => event(session, AuditEvent::StepUndone { step: step_id }),
        StepEnd::Failed => event(
            session,
            AuditEvent::StepUndoFailed {
                step: step_id,
                error,
            },
        ),
        StepEnd::Aborted | StepEnd::Interrupted => {}
    }
    Attempt {
        outcome,
        duration_ms,
        wrote: run.scope().writes() > 0,
    }
}

/// `ctx.done` for an undo: each write of the step in effect, with how it ended.
/// The writes of `step` its undo reverses: in effect, and not changed since by someone
/// else (a rollback's refresh leaves those alone).
fn undoable(run: &crate::host::RunContext, step: &str) -> Vec<Write> {
    run.ledger()
        .writes_of(step)
        .into_iter()
        .filter(|w| {
            !run.ledger()
                .read(false, |l| l.left_alone(&w.function, &w.target))
        })
        .collect()
}

fn done_list(writes: &[Write]) -> rhai::Array {
    writes
        .iter()
        .map(|w| {
            let mut m = rhai::Map::new();
            m.insert("function".into(), w.function.clone().into());
            m.insert("target".into(), w.target.clone().into());
            m.insert("outcome".into(), w.outcome.as_str().into());
            rhai::Dynamic::from_map(m)
        })
        .collect()
}

/// An engine-written audit event for this run (none under `--dry-run`); a log that cannot
/// be written is a warning, not the end of the run.
pub(crate) fn event(session: &Session, event: AuditEvent) {
    let run = session.run();
    if run.dry_run() {
        return;
    }
    run.auditor().note(&run.step_name(), event);
}

/// The operator's answer to a step's confirmation.
pub enum Confirmation {
    Yes,
    No,
    Interrupted,
    /// Nobody could answer (no terminal, no answers file): the diagnostic says how to.
    NoAnswer(Box<ScriptError>),
}

/// Asks a step's confirmation question, after saying when the step cannot be undone.
pub fn confirm(session: &Session, step: &Step, question: &str) -> Confirmation {
    if let Some(why) = &step.irreversible {
        session
            .run()
            .say()
            .progress(format!("  ! This step cannot be undone: {why}"));
    }
    let id = format!("{}.confirm", step.id);
    match session.run().operator().confirm(&id, question) {
        Ok(true) => Confirmation::Yes,
        Ok(false) | Err(PromptError::Aborted) => Confirmation::No,
        Err(PromptError::Interrupted) => Confirmation::Interrupted,
        Err(e) => {
            let help = e.help().unwrap_or_default();
            Confirmation::NoAnswer(Box::new(
                ScriptError::at(
                    "runbook::prompt::no_answer",
                    e.to_string(),
                    session.runbook().sources(),
                    "",
                    rhai::Position::NONE,
                )
                .with_help(help),
            ))
        }
    }
}

/// What to do with a step whose effect the journal cannot confirm: the process died in it,
/// or one of its writes was sent and its answer lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// It took effect: count it as completed (who said so goes to the ledger).
    Done(ConfirmedBy),
    /// Run it again.
    Rerun,
    /// Leave it for the operator to check.
    Stop,
}

/// What a settle is about: the step's uncertain writes and how to say what happened.
struct Doubt {
    writes: Vec<Write>,
    uncertain: Vec<Write>,
    what: &'static str,
}

impl Doubt {
    fn of(session: &Session, step: &Step, died: bool) -> Doubt {
        let writes = session.run().ledger().writes_of(&step.id);
        let uncertain: Vec<Write> = writes
            .iter()
            .filter(|w| w.outcome.uncertain())
            .cloned()
            .collect();
        let mut doubt = Doubt {
            writes,
            uncertain,
            what: "was interrupted",
        };
        if !died {
            doubt.what = if doubt.pending() {
                "filed a change for approval that is not merged yet"
            } else {
                "sent a write whose outcome is unknown (its answer lost, or a server error)"
            };
        }
        doubt
    }

    fn pending(&self) -> bool {
        !self.uncertain.is_empty()
            && self
                .uncertain
                .iter()
                .all(|w| w.outcome == WriteOutcome::Pending)
    }

    /// Whether running the step again is safe without asking: every uncertain write may be
    /// repeated (or, for a step that died, the step is `.idempotent()`).
    fn rerun_is_safe(&self, step: &Step, died: bool) -> bool {
        let host = crate::host::modules();
        let safe = |w: &Write| {
            host.find(&w.function)
                .and_then(|f| f.repeat)
                .is_some_and(|r| r == crate::engine::Repeat::Safe)
        };
        if died {
            step.idempotent || (!self.uncertain.is_empty() && self.uncertain.iter().all(safe))
        } else {
            self.uncertain.iter().all(safe)
        }
    }
}

/// Decides before a step runs again: its `.verify` says whether it took effect; else a
/// step whose uncertain writes are all safe to repeat (or that is `.idempotent()`) runs
/// again; else the operator is asked. A write whose answer was lost and that is not safe to
/// repeat is never sent again on `--yes` alone: only an answer (terminal or answers file,
/// `<step>.rerun = "rerun"`) does that.
pub fn settle(session: &Session, step: &Step, died: bool) -> crate::error::Result<Settle> {
    let say = session.run().say();
    let doubt = Doubt::of(session, step, died);
    let what = doubt.what;
    if let Some(verify) = &step.verify {
        match session.ask(verify, Phase::Step(step.id.clone())) {
            Ok(true) => {
                say.progress(format!(
                    "  step '{}' {what}, and its verify says it took effect",
                    step.id
                ));
                return Ok(Settle::Done(ConfirmedBy::Vendor));
            }
            Ok(false) => {
                say.progress(format!(
                    "  step '{}' {what}; its verify says it did not take effect, so it runs again",
                    step.id
                ));
                return Ok(Settle::Rerun);
            }
            Err(e) => say.warning(format!("  could not verify step '{}': {e}", step.id)),
        }
    }
    if doubt.rerun_is_safe(step, died) {
        let again = if doubt.pending() {
            "it runs again and waits on the same request"
        } else {
            "repeating it is safe, so it runs again"
        };
        say.progress(format!("  step '{}' {what}; {again}", step.id));
        return Ok(Settle::Rerun);
    }
    explain_doubt(session, step, &doubt);
    ask_operator(session, step, &doubt)
}

/// What `STEP.rerun` takes on a resume over `step`, as `ask_operator` asks it.
pub fn rerun_answers(session: &Session, step: &Step, died: bool) -> &'static str {
    if Doubt::of(session, step, died).uncertain.is_empty() {
        "true to run it again"
    } else {
        "\"rerun\" or \"done\""
    }
}

/// Tells the operator what the journal knows of the step's writes.
fn explain_doubt(session: &Session, step: &Step, doubt: &Doubt) {
    let say = session.run().say();
    say.warning(format!(
        "Step '{}' {}: the journal cannot tell whether it took effect.",
        step.id, doubt.what
    ));
    if doubt.writes.is_empty() {
        say.warning("  The journal saw no write start in it.");
    }
    for w in &doubt.writes {
        let outcome = match w.outcome {
            WriteOutcome::Applied => "applied",
            WriteOutcome::Failed => "refused",
            WriteOutcome::NotSent => "not sent",
            WriteOutcome::Unknown => {
                "sent, answer lost or a server error: it may have taken effect"
            }
            WriteOutcome::Pending => {
                "filed for approval, not merged yet: it takes effect if an approver merges it"
            }
        };
        say.warning(format!("  {} on {}: {outcome}", w.function, w.target));
    }
}

/// Asks whether to run the step again (or count it as done, when a write may have applied).
fn ask_operator(session: &Session, step: &Step, doubt: &Doubt) -> crate::error::Result<Settle> {
    let id = format!("{}.rerun", step.id);
    let operator = session.run().operator();
    if doubt.uncertain.is_empty() {
        // The process died after its writes were answered: the operator (or --yes) says
        // whether to run the step again.
        let again = operator
            .confirm(&id, &format!("Run step '{}' again?", step.id))
            .map_err(|e| {
                crate::error::Error::usage(
                    e.to_string(),
                    e.help()
                        .unwrap_or_else(|| "answer on a terminal, or pass --yes".into()),
                )
            })?;
        return Ok(if again { Settle::Rerun } else { Settle::Stop });
    }
    let options = vec!["rerun".to_string(), "done".to_string(), "stop".to_string()];
    let answer = operator.choose(
        &id,
        &format!(
            "Check at the vendor: did step '{}' take effect? Run it again, count it as done, or stop?",
            step.id
        ),
        &options,
        Some("stop"),
    );
    Ok(match answer.as_deref() {
        Ok("rerun") => Settle::Rerun,
        Ok("done") => confirm_done(session, step),
        _ => Settle::Stop,
    })
}

/// The operator says the step took effect. Where the vendor can be read (the step has a
/// `.verify`), the read decides: a verify that says no is not overruled by a word. Where it
/// cannot, the operator's word is recorded as such.
fn confirm_done(session: &Session, step: &Step) -> Settle {
    let say = session.run().say();
    let Some(verify) = &step.verify else {
        say.warning(format!(
            "  step '{}' counted as done on the operator's word: nothing at the vendor could be read to check it",
            step.id
        ));
        return Settle::Done(ConfirmedBy::Operator);
    };
    match session.ask(verify, Phase::Step(step.id.clone())) {
        Ok(true) => Settle::Done(ConfirmedBy::Vendor),
        Ok(false) => {
            say.warning(format!(
                "  step '{}' was answered done, but its verify reads that it did not take effect: stopping here; check at the vendor, then resume",
                step.id
            ));
            Settle::Stop
        }
        Err(e) => {
            say.warning(format!(
                "  step '{}' counted as done on the operator's word: its verify could not read the vendor ({e})",
                step.id
            ));
            Settle::Done(ConfirmedBy::Operator)
        }
    }
}

/// Records that a step whose effect was in doubt is counted as completed, and on whose word.
pub(crate) fn settled_done(session: &Session, step: &Step, by: ConfirmedBy) {
    session
        .run()
        .ledger()
        .record(Event::StepFinished(StepFinished {
            step: step.id.clone(),
            outcome: StepEnd::Completed,
            duration_ms: None,
            error: None,
            wrote: None,
            verified: Some(true),
            confirmed_by: Some(by),
            ctx: Some(session.ctx().snapshot()),
        }));
}
