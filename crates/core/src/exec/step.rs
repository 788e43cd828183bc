//! Running one step, or its undo, the one way every caller runs it (the runner, `resume`,
//! `rollback`, the REPL's `:run` and `:undo`): intent journalled before, outcome after, an
//! audit event, and the crash point the tests kill the process at.

use super::session::{Outcome, Session};
use crate::diagnostic::ScriptError;
use crate::host::Phase;
use crate::journal::{Record, StepEnd, StepOutcome};
use crate::plan::Step;
use crate::prompt::PromptError;
use serde_json::json;
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

/// Runs `step` (or its undo) once. `attempt` numbers forward attempts for the journal.
pub fn execute(session: &Session, step: &Step, direction: Direction, attempt: u32) -> Attempt {
    execute_marked(session, step, direction, attempt, false)
}

/// `execute`, for a step run by hand before the steps it follows (`:run STEP --force`): the
/// journal says so.
pub fn execute_marked(
    session: &Session,
    step: &Step,
    direction: Direction,
    attempt: u32,
    out_of_order: bool,
) -> Attempt {
    let run = session.run();
    let started = Instant::now();
    let (f, phase) = match direction {
        Direction::Forward => {
            run.record(Record::StepIntent {
                step: step.id.clone(),
                attempt: Some(attempt),
                out_of_order,
            });
            (&step.run, Phase::Step(step.id.clone()))
        }
        Direction::Undo => {
            run.record(Record::UndoIntent {
                step: step.id.clone(),
            });
            match &step.undo {
                Some(f) => (f, Phase::Undo(step.id.clone())),
                None => {
                    return Attempt {
                        outcome: Outcome::Done,
                        duration_ms: 0,
                        wrote: false,
                    }
                }
            }
        }
    };
    if direction == Direction::Undo {
        // What the step did, so its undo restores exactly that.
        let done: rhai::Array = run
            .writes_of(&step.id)
            .iter()
            .map(|w| {
                let mut m = rhai::Map::new();
                m.insert("function".into(), w.function.clone().into());
                m.insert("target".into(), w.target.clone().into());
                m.insert(
                    "outcome".into(),
                    serde_json::to_value(w.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                        .into(),
                );
                rhai::Dynamic::from_map(m)
            })
            .collect();
        session.ctx().set("done", done.into());
    }
    let outcome = {
        let what = match direction {
            Direction::Forward => format!("step '{}'", step.id),
            Direction::Undo => format!("the undo of step '{}'", step.id),
        };
        let _budget = crate::interrupt::budget(
            step.timeout,
            &what,
            "if the step legitimately takes longer, raise its limit with .timeout(\"30m\"); a call that was in flight may have applied: the journal says which",
        );
        session.call(f, phase)
    };
    if direction == Direction::Undo {
        session.ctx().remove("done");
        if matches!(outcome, Outcome::Done) {
            run.forget_writes_of(&step.id);
        }
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    let wrote = run.writes_in_step() > 0;
    let error = match &outcome {
        Outcome::Failed(d) => Some(d.to_string()),
        _ => None,
    };
    match direction {
        Direction::Forward => {
            let status = match &outcome {
                Outcome::Done => StepEnd::Completed,
                Outcome::Failed(_) => StepEnd::Failed,
                Outcome::Aborted => StepEnd::Aborted,
                Outcome::Interrupted => StepEnd::Interrupted,
            };
            run.record(Record::StepOutcome(StepOutcome {
                step: step.id.clone(),
                status,
                duration_ms: Some(duration_ms),
                error: error.clone(),
                wrote: matches!(outcome, Outcome::Failed(_)).then_some(wrote),
                verified: None,
                ctx: (status == StepEnd::Completed).then(|| session.ctx().snapshot()),
            }));
            match &outcome {
                Outcome::Done => event(
                    session,
                    "step.completed",
                    json!({ "duration_ms": duration_ms }),
                ),
                Outcome::Failed(_) => event(session, "step.failed", json!({ "error": error })),
                Outcome::Aborted | Outcome::Interrupted => {}
            }
        }
        Direction::Undo => {
            let ok = matches!(outcome, Outcome::Done);
            run.record(Record::UndoOutcome {
                step: step.id.clone(),
                ok,
                error: error.clone(),
                ctx: ok.then(|| session.ctx().snapshot()),
            });
            match &outcome {
                Outcome::Done => event(session, "step.undone", json!({ "step": step.id })),
                Outcome::Failed(_) => event(
                    session,
                    "step.undo_failed",
                    json!({ "step": step.id, "error": error }),
                ),
                Outcome::Aborted | Outcome::Interrupted => {}
            }
        }
    }
    if direction == Direction::Forward && matches!(outcome, Outcome::Done) {
        crate::hooks::crash_point("after", &step.id);
    }
    Attempt {
        outcome,
        duration_ms,
        wrote,
    }
}

/// An engine-written audit event for this run (none under `--dry-run`); a log that cannot
/// be written is a warning, not the end of the run.
pub(crate) fn event(session: &Session, action: &str, context: serde_json::Value) {
    let run = session.run();
    if run.dry_run() {
        return;
    }
    if let Err(e) = run.audit_event(action, context) {
        crate::ui::err(&format!("warning: could not write the audit log: {e}"));
    }
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
        crate::ui::progress(&format!("  ! This step cannot be undone: {why}"));
    }
    let id = format!("{}.confirm", step.id);
    let answer = session.run().prompter().confirm(&id, question);
    match answer {
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
    /// It took effect: count it as completed.
    Done,
    /// Run it again.
    Rerun,
    /// Leave it for the operator to check.
    Stop,
}

/// Decides before a step runs again: its `.verify` says whether it took effect; else a
/// step whose uncertain writes are all safe to repeat (or that is `.idempotent()`) runs
/// again; else the operator is asked. A write whose answer was lost and that is not safe to
/// repeat is never sent again on `--yes` alone: only an answer (terminal or answers file,
/// `<step>.rerun = "rerun"`) does that.
pub fn settle(session: &Session, step: &Step, died: bool) -> crate::error::Result<Settle> {
    let run = session.run();
    let writes = run.writes_of(&step.id);
    let unknown: Vec<&crate::journal::Write> =
        writes.iter().filter(|w| w.state.uncertain()).collect();
    let pending = !unknown.is_empty()
        && unknown
            .iter()
            .all(|w| w.state == crate::journal::WriteState::Pending);
    let what = if died {
        "was interrupted"
    } else if pending {
        "filed a change for approval that is not merged yet"
    } else {
        "sent a write whose answer was lost"
    };
    if let Some(verify) = &step.verify {
        match session.ask(verify, Phase::Step(step.id.clone())) {
            Ok(true) => {
                crate::ui::progress(&format!(
                    "  step '{}' {what}, and its verify says it took effect",
                    step.id
                ));
                return Ok(Settle::Done);
            }
            Ok(false) => {
                crate::ui::progress(&format!(
                    "  step '{}' {what}; its verify says it did not take effect, so it runs again",
                    step.id
                ));
                return Ok(Settle::Rerun);
            }
            Err(e) => crate::ui::err(&format!("  could not verify step '{}': {e}", step.id)),
        }
    }
    let host = crate::host::modules();
    let safe = |w: &&crate::journal::Write| {
        host.find(&w.function)
            .and_then(|f| f.repeat)
            .is_some_and(|r| r == crate::engine::Repeat::Safe)
    };
    let rerun_is_safe = if died {
        step.idempotent || (!unknown.is_empty() && unknown.iter().all(safe))
    } else {
        unknown.iter().all(safe)
    };
    if rerun_is_safe {
        let again = if pending {
            "it runs again and waits on the same request"
        } else {
            "repeating it is safe, so it runs again"
        };
        crate::ui::progress(&format!("  step '{}' {what}; {again}", step.id));
        return Ok(Settle::Rerun);
    }
    crate::ui::err(&format!(
        "Step '{}' {what}: the journal cannot tell whether it took effect.",
        step.id
    ));
    if writes.is_empty() {
        crate::ui::err("  The journal saw no write start in it.");
    }
    for w in &writes {
        let outcome = match w.state {
            crate::journal::WriteState::Applied => "applied",
            crate::journal::WriteState::Failed => "refused",
            crate::journal::WriteState::Unknown => "sent, answer lost: it may have taken effect",
            crate::journal::WriteState::Pending => {
                "filed for approval, not merged yet: it takes effect if an approver merges it"
            }
        };
        crate::ui::err(&format!("  {} on {}: {outcome}", w.function, w.target));
    }
    let id = format!("{}.rerun", step.id);
    let mut prompter = run.prompter();
    if unknown.is_empty() {
        // The process died after its writes were answered: the operator (or --yes) says
        // whether to run the step again.
        let again = prompter
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
    let answer = prompter.choose(
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
        Ok("done") => Settle::Done,
        _ => Settle::Stop,
    })
}
