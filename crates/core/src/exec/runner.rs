//! The step loop. Each step runs with the shared `ctx`; a failure offers retry, rollback
//! (undo of completed steps, newest first, stopping at an irreversible one) or stop. Every
//! step's intent and outcome goes to the journal before and after it runs.

use super::report::{Report, RunStatus, StepReport, StepStatus};
use super::Options;
use crate::engine::{ScriptError, ABORTED, INTERRUPTED};
use crate::host::prompt::prompt_error;
use crate::host::Phase;
use crate::plan::{Ctx, Loaded, Step};
use crate::prompt::PromptError;
use crate::ui;
use rhai::{Dynamic, EvalAltResult, FnPtr};
use serde_json::json;
use std::time::Instant;

/// How a step call ended.
enum Outcome {
    Done,
    Failed(Box<ScriptError>),
    Aborted,
    Interrupted,
}

/// What the operator chose after a failure.
#[derive(PartialEq)]
enum Choice {
    Retry,
    Rollback,
    Stop,
}

/// Where a run starts: from scratch, or where a journal left it.
pub enum Start {
    Fresh,
    /// Continue at `next`; `completed` steps already ran (from the journal).
    Resume {
        completed: Vec<usize>,
        next: usize,
    },
    /// Only undo `completed` steps.
    Rollback {
        completed: Vec<usize>,
    },
}

pub struct Runner<'a> {
    loaded: &'a Loaded,
    opts: &'a Options,
    ctx: Ctx,
    report: Report,
    completed: Vec<usize>,
}

fn termination(err: &EvalAltResult) -> Option<String> {
    match err {
        EvalAltResult::ErrorTerminated(token, _) => Some(token.to_string()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => termination(inner),
        _ => None,
    }
}

/// Runs the plan from `start` and returns the report (its status says how it ended).
pub fn run(loaded: &Loaded, opts: &Options, ctx: Ctx, mut report: Report, start: Start) -> Report {
    report.steps = loaded
        .plan
        .steps
        .iter()
        .map(|s| StepReport {
            id: s.id.clone(),
            title: s.title.clone(),
            status: StepStatus::NotRun,
            duration_ms: 0,
            attempts: 0,
            error: None,
        })
        .collect();
    let mut r = Runner {
        loaded,
        opts,
        ctx,
        report,
        completed: Vec::new(),
    };
    let began = Instant::now();
    let status = match start {
        Start::Fresh => {
            r.event("run.started", json!({ "dry_run": opts.dry_run }));
            r.run_from(0, true)
        }
        Start::Resume { completed, next } => {
            r.mark_completed(&completed);
            r.event(
                "run.resumed",
                json!({ "at": loaded.plan.steps.get(next).map(|s| s.id.clone()) }),
            );
            r.run_from(next, false)
        }
        Start::Rollback { completed } => {
            r.mark_completed(&completed);
            r.event("run.rollback", json!({}));
            r.rollback(None)
        }
    };
    r.report.status = status;
    r.report.duration_ms = began.elapsed().as_millis() as u64;
    r.report.planned_writes = loaded.host.planned.borrow().clone();
    r.journal("run.end", json!({ "status": status }));
    r.event(
        "run.completed",
        json!({ "status": status, "failed_step": r.report.failed_step }),
    );
    r.report
}

impl Runner<'_> {
    fn host(&self) -> &crate::host::Host {
        &self.loaded.host
    }

    fn journal(&self, kind: &str, fields: serde_json::Value) {
        if let Some(j) = self.host().journal.borrow().as_ref() {
            j.record(kind, fields);
        }
    }

    /// An engine-written audit event (none under --dry-run).
    fn event(&self, action: &str, context: serde_json::Value) {
        if self.opts.dry_run {
            return;
        }
        if let Err(e) = self.host().audit_event(action, context) {
            ui::err(&format!("warning: could not write the audit log: {e}"));
        }
    }

    fn mark_completed(&mut self, completed: &[usize]) {
        for &i in completed {
            self.report.steps[i].status = StepStatus::Completed;
        }
        self.completed = completed.to_vec();
    }

    fn call(&self, f: &FnPtr, phase: Phase) -> Outcome {
        self.host().set_phase(phase);
        self.host().writes_in_step.set(0);
        let result = f.call::<Dynamic>(&self.loaded.engine, &self.loaded.ast, (self.ctx.clone(),));
        match result {
            Ok(_) => Outcome::Done,
            Err(e) => match termination(&e).as_deref() {
                Some(ABORTED) => Outcome::Aborted,
                Some(INTERRUPTED) => Outcome::Interrupted,
                _ if crate::interrupt::is_set() => Outcome::Interrupted,
                _ => Outcome::Failed(Box::new(ScriptError::from_eval(&e, self.loaded.sources()))),
            },
        }
    }

    fn prerequisites(&mut self) -> Option<RunStatus> {
        let plan = &self.loaded.plan;
        if plan.prerequisites.is_empty() {
            return None;
        }
        ui::progress(&ui::bold("Prerequisites"));
        self.host().set_phase(Phase::Step("prerequisites".into()));
        let checked = self
            .host()
            .prompter
            .borrow_mut()
            .checklist("prerequisites", &plan.prerequisites);
        match checked {
            Ok(()) => None,
            Err(PromptError::Interrupted) => Some(RunStatus::Interrupted),
            Err(PromptError::Aborted) => {
                ui::err("Stopped: a prerequisite was not confirmed. Nothing was changed.");
                Some(RunStatus::Aborted)
            }
            Err(e) => {
                ui::err(&e.to_string());
                Some(RunStatus::Aborted)
            }
        }
    }

    fn run_from(&mut self, first: usize, fresh: bool) -> RunStatus {
        if fresh {
            if let Some(status) = self.prerequisites() {
                return status;
            }
        }
        let plan = &self.loaded.plan;
        let n = plan.steps.len();
        for i in first..n {
            let step = &plan.steps[i];
            ui::progress("");
            ui::progress(&ui::bold(&format!(
                "Step {}/{} · {} · {}",
                i + 1,
                n,
                step.id,
                step.title
            )));
            if let Some(question) = &step.confirm {
                if let Some(status) = self.confirm_step(step, question) {
                    return status;
                }
            }
            let started = Instant::now();
            loop {
                self.report.steps[i].attempts += 1;
                self.journal(
                    "step.intent",
                    json!({ "step": step.id, "attempt": self.report.steps[i].attempts }),
                );
                let outcome = self.call(&step.run, Phase::Step(step.id.clone()));
                let ms = started.elapsed().as_millis() as u64;
                self.report.steps[i].duration_ms = ms;
                match outcome {
                    Outcome::Done => {
                        self.report.steps[i].status = StepStatus::Completed;
                        self.report.steps[i].error = None;
                        self.journal("step.outcome", json!({
                            "step": step.id, "status": "completed", "duration_ms": ms, "ctx": self.ctx.snapshot(),
                        }));
                        self.event("step.completed", json!({ "duration_ms": ms }));
                        ui::progress(&format!("  ✓ {} ({ms} ms)", step.id));
                        self.completed.push(i);
                        super::crash_point("after", &step.id);
                        break;
                    }
                    Outcome::Aborted => {
                        self.report.steps[i].status = StepStatus::Failed;
                        self.journal(
                            "step.outcome",
                            json!({ "step": step.id, "status": "aborted", "duration_ms": ms }),
                        );
                        ui::err(&format!("Stopped by the operator in step '{}'.", step.id));
                        self.explain_left_behind();
                        return RunStatus::Aborted;
                    }
                    Outcome::Interrupted => {
                        self.report.steps[i].status = StepStatus::Failed;
                        self.report.steps[i].error = Some("interrupted".into());
                        self.journal(
                            "step.outcome",
                            json!({ "step": step.id, "status": "interrupted", "duration_ms": ms }),
                        );
                        ui::err(&format!("Interrupted (Ctrl-C) during step '{}'.", step.id));
                        self.explain_left_behind();
                        return RunStatus::Interrupted;
                    }
                    Outcome::Failed(diag) => {
                        let wrote = self.host().writes_in_step.get() > 0;
                        self.report.steps[i].status = StepStatus::Failed;
                        self.report.steps[i].error = Some(diag.to_string());
                        self.report.failed_step = Some(step.id.clone());
                        self.report.error = Some(diag.to_string());
                        self.journal(
                            "step.outcome",
                            json!({
                                "step": step.id, "status": "failed", "duration_ms": ms,
                                "error": diag.to_string(), "wrote": wrote,
                            }),
                        );
                        self.event("step.failed", json!({ "error": diag.to_string() }));
                        ui::err(&format!("\nStep '{}' failed:", step.id));
                        ui::err(&ui::render(diag.as_ref()));
                        match self.choose_after_failure(step) {
                            Choice::Retry => {
                                ui::progress(&format!("  ↻ retrying {}", step.id));
                                continue;
                            }
                            Choice::Rollback => {
                                let failed = if wrote && step.undo.is_some() {
                                    Some(i)
                                } else {
                                    None
                                };
                                return self.rollback(failed);
                            }
                            Choice::Stop => {
                                self.explain_left_behind();
                                return RunStatus::Failed;
                            }
                        }
                    }
                }
            }
        }
        RunStatus::Succeeded
    }

    fn confirm_step(&mut self, step: &Step, question: &str) -> Option<RunStatus> {
        if self.opts.dry_run {
            ui::progress(&format!("  ? {question} (dry-run: not asked)"));
            return None;
        }
        if let Some(why) = &step.irreversible {
            ui::progress(&format!("  ! This step cannot be undone: {why}"));
        }
        let id = format!("{}.confirm", step.id);
        let answer = self.host().prompter.borrow_mut().confirm(&id, question);
        match answer {
            Ok(true) => None,
            Ok(false) | Err(PromptError::Aborted) => {
                ui::err(&format!(
                    "Stopped before step '{}' at the operator's request.",
                    step.id
                ));
                self.explain_left_behind();
                Some(RunStatus::Aborted)
            }
            Err(PromptError::Interrupted) => Some(RunStatus::Interrupted),
            Err(e) => {
                let diag = ScriptError::at(
                    "runbook::prompt::no_answer",
                    e.to_string(),
                    self.loaded.sources(),
                    "",
                    rhai::Position::NONE,
                )
                .with_help(e.help().unwrap_or_default());
                ui::err(&ui::render(&diag));
                self.report.error = Some(diag.to_string());
                self.explain_left_behind();
                Some(RunStatus::Aborted)
            }
        }
    }

    fn choose_after_failure(&self, step: &Step) -> Choice {
        let yes_default = if self.opts.no_rollback {
            "stop"
        } else {
            "rollback"
        };
        let options = vec![
            "retry".to_string(),
            "rollback".to_string(),
            "stop".to_string(),
        ];
        let id = format!("{}.on-failure", step.id);
        let mut prompter = self.host().prompter.borrow_mut();
        if !prompter.is_interactive() && !prompter.yes() {
            // Nobody to ask: leave everything as it is, and say how to continue.
            return Choice::Stop;
        }
        match prompter.choose(
            &id,
            "Retry the step, roll back completed steps, or stop here?",
            &options,
            Some(yes_default),
        ) {
            Ok(c) if c == "retry" => Choice::Retry,
            Ok(c) if c == "rollback" => Choice::Rollback,
            Ok(_) => Choice::Stop,
            Err(e) => {
                let _ = prompt_error(e);
                Choice::Stop
            }
        }
    }

    /// Undoes completed steps, newest first (and the failed step first if it wrote
    /// something), stopping at an irreversible step.
    fn rollback(&mut self, failed: Option<usize>) -> RunStatus {
        let plan = &self.loaded.plan;
        ui::progress("");
        ui::progress(&ui::bold("Rolling back"));
        let completed = self.completed.clone();
        let order: Vec<usize> = failed
            .into_iter()
            .chain(completed.iter().rev().copied())
            .collect();
        for i in order {
            let step = &plan.steps[i];
            if let (Some(why), true) = (&step.irreversible, completed.contains(&i)) {
                ui::err(&format!(
                    "  ✗ cannot roll back past step '{}': {why}",
                    step.id
                ));
                self.journal("rollback.blocked", json!({ "step": step.id, "why": why }));
                return RunStatus::Failed;
            }
            let Some(undo) = &step.undo else {
                continue;
            };
            ui::progress(&format!("  ↶ undoing {} · {}", step.id, step.title));
            self.journal("undo.intent", json!({ "step": step.id }));
            match self.call(undo, Phase::Undo(step.id.clone())) {
                Outcome::Done => {
                    self.report.steps[i].status = StepStatus::Undone;
                    self.completed.retain(|c| *c != i);
                    self.journal(
                        "undo.outcome",
                        json!({ "step": step.id, "ok": true, "ctx": self.ctx.snapshot() }),
                    );
                    self.event("step.undone", json!({ "step": step.id }));
                }
                Outcome::Failed(diag) => {
                    self.report.steps[i].status = StepStatus::UndoFailed;
                    self.journal(
                        "undo.outcome",
                        json!({ "step": step.id, "ok": false, "error": diag.to_string() }),
                    );
                    self.event(
                        "step.undo_failed",
                        json!({ "step": step.id, "error": diag.to_string() }),
                    );
                    ui::err(&format!("  ✗ undo of '{}' failed:", step.id));
                    ui::err(&ui::render(diag.as_ref()));
                    ui::err(&format!(
                        "  Rollback stopped here: the steps before it are still applied. Fix the cause, then `runbook rollback {}`.",
                        self.report.run_id
                    ));
                    return RunStatus::Failed;
                }
                Outcome::Aborted => return RunStatus::Aborted,
                Outcome::Interrupted => return RunStatus::Interrupted,
            }
        }
        ui::progress("  rollback complete");
        RunStatus::RolledBack
    }

    fn explain_left_behind(&self) {
        let plan = &self.loaded.plan;
        let applied: Vec<&str> = self
            .completed
            .iter()
            .map(|i| plan.steps[*i].id.as_str())
            .collect();
        if applied.is_empty() {
            ui::err("No step had completed; nothing was changed by completed steps.");
            return;
        }
        ui::err(&format!(
            "Completed steps left in place: {}.",
            applied.join(", ")
        ));
        if !self.opts.dry_run {
            ui::err(&format!(
                "Continue with `runbook resume {0}`, or undo them with `runbook rollback {0}`.",
                self.report.run_id
            ));
        }
    }
}
