//! The step loop. Each step runs with the shared `ctx`; a failure offers retry, rollback
//! (undo of completed steps, newest first, stopping at an irreversible one) or stop. Every
//! step's intent and outcome goes to the journal before and after it runs (`step::execute`).

use super::report::{Report, RunStatus, StepReport, StepStatus};
use super::session::{Outcome, Session};
use super::step::{self, Confirmation, Direction, Settle};
use super::Options;
use crate::host::prompt_error;
use crate::journal::Record;
use crate::plan::{FailurePolicy, Step};
use crate::prompt::PromptError;
use crate::run::Mode;
use crate::ui;
use serde_json::json;
use std::time::Instant;

/// How many attempts of a step an answer not given at a terminal (an answers file) may ask
/// for before the run stops instead.
const UNATTENDED_RETRIES: u32 = 3;

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

struct Runner<'a> {
    session: &'a Session,
    opts: &'a Options,
    report: Report,
    completed: Vec<usize>,
}

/// A fresh report for this session's run.
pub(crate) fn new_report(session: &Session) -> Report {
    let meta = session.runbook().plan().meta();
    let info = session.run().info();
    Report {
        run_id: info.run_id.clone(),
        runbook: meta.id.clone(),
        title: meta.title.clone(),
        actor: info.actor.clone(),
        status: RunStatus::Running,
        dry_run: info.mode.is_dry_run(),
        started_at: crate::run::now_rfc3339(),
        duration_ms: 0,
        earlier_step_ms: 0,
        processes: 1,
        steps: Vec::new(),
        planned_writes: Vec::new(),
        failed_step: None,
        error: None,
        changes: Vec::new(),
        rate_limit_wait_ms: 0,
        audit_head: None,
    }
}

/// Runs the plan from `start` and returns the report (its status says how it ended).
pub fn run(session: &Session, opts: &Options, start: Start) -> Report {
    let plan = session.runbook().plan();
    let mut report = new_report(session);
    report.steps = plan
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
        session,
        opts,
        report,
        completed: Vec::new(),
    };
    let began = Instant::now();
    if !matches!(start, Start::Fresh) {
        r.count_earlier_processes();
    }
    let status = match start {
        Start::Fresh => {
            r.event("run.started", json!({ "dry_run": opts.dry_run }));
            r.run_from(0, true)
        }
        Start::Resume { completed, next } => {
            r.mark_completed(&completed);
            r.event(
                "run.resumed",
                json!({ "at": plan.steps.get(next).map(|s| s.id.clone()) }),
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
    // A step that failed and then passed on a retry is not the run's failed step.
    if status == RunStatus::Succeeded {
        r.report.failed_step = None;
        r.report.error = None;
    }
    r.report.duration_ms = began.elapsed().as_millis() as u64;
    r.report.planned_writes = session.run().planned_writes();
    r.report.changes = session
        .run()
        .writes()
        .into_iter()
        .filter(|w| w.state.may_have_applied())
        .collect();
    r.report.rate_limit_wait_ms = session
        .run()
        .services()
        .built_vendors()
        .map_or(0, |v| v.transport().rate_limit_wait().as_millis() as u64);
    r.event(
        "run.completed",
        json!({ "status": status, "failed_step": r.report.failed_step }),
    );
    r.report.audit_head = session.run().audit_head();
    session.run().record(Record::RunEnd {
        status,
        audit_head: r.report.audit_head.clone(),
    });
    r.report
}

impl Runner<'_> {
    /// What the journal says of the processes before this one: their step time, and how
    /// many there were (the run's start, and each later take-over but this one's).
    fn count_earlier_processes(&mut self) {
        let Ok(entries) = self.session.run().journal().entries() else {
            return;
        };
        let mut ms = 0;
        let mut takeovers = 0;
        for e in &entries {
            match &e.record {
                Record::StepOutcome(o) => ms += o.duration_ms.unwrap_or(0),
                Record::RunResume { .. } => takeovers += 1,
                _ => {}
            }
        }
        self.report.earlier_step_ms = ms;
        // This process's own take-over is already journalled.
        self.report.processes = 1 + takeovers.max(1);
    }

    fn event(&self, action: &str, context: serde_json::Value) {
        step::event(self.session, action, context);
    }

    fn mark_completed(&mut self, completed: &[usize]) {
        for &i in completed {
            self.report.steps[i].status = StepStatus::Completed;
        }
        self.completed = completed.to_vec();
    }

    fn prerequisites(&mut self) -> Option<RunStatus> {
        let plan = self.session.runbook().plan();
        if plan.prerequisites.is_empty() {
            return None;
        }
        ui::progress(&ui::bold("Prerequisites"));
        let run = self.session.run();
        run.set_phase(crate::host::Phase::Step("prerequisites".into()));
        let checked = run
            .prompter()
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
        let plan = self.session.runbook().plan();
        let n = plan.steps.len();
        // A production run asks once, before the first step that writes, listing the writes.
        let mut writes = if self.session.run().mode() == crate::run::Mode::Exec {
            Some(self.session.runbook().step_writes())
        } else {
            None
        };
        for i in first..n {
            let step = &plan.steps[i];
            if let Some(all) = writes.as_ref() {
                if all.get(i).is_some_and(|w| !w.is_empty()) {
                    if let Some(status) = self.confirm_writes(i, all) {
                        return status;
                    }
                    writes = None;
                }
            }
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
            if let Some(status) = self.approve(i, step) {
                return status;
            }
            if let Some(why) = self.session.lock_lost() {
                self.report.steps[i].status = StepStatus::Failed;
                self.report.steps[i].error = Some(why.clone());
                self.report.failed_step = Some(step.id.clone());
                self.report.error = Some(why.clone());
                ui::err(&format!("\nStep '{}' not run: {why}", step.id));
                self.explain_left_behind();
                return RunStatus::Failed;
            }
            let started = Instant::now();
            loop {
                self.report.steps[i].attempts += 1;
                let attempt = step::execute(
                    self.session,
                    step,
                    Direction::Forward,
                    self.report.steps[i].attempts,
                );
                let ms = started.elapsed().as_millis() as u64;
                self.report.steps[i].duration_ms = ms;
                match attempt.outcome {
                    Outcome::Done => {
                        self.report.steps[i].status = StepStatus::Completed;
                        self.report.steps[i].error = None;
                        ui::progress(&format!("  ✓ {} ({ms} ms)", step.id));
                        self.completed.push(i);
                        break;
                    }
                    Outcome::Aborted => {
                        self.report.steps[i].status = StepStatus::Failed;
                        ui::err(&format!("Stopped by the operator in step '{}'.", step.id));
                        self.explain_left_behind();
                        return RunStatus::Aborted;
                    }
                    Outcome::Interrupted => {
                        self.report.steps[i].status = StepStatus::Failed;
                        self.report.steps[i].error = Some("interrupted".into());
                        ui::err(&format!("Interrupted (Ctrl-C) during step '{}'.", step.id));
                        self.explain_left_behind();
                        return RunStatus::Interrupted;
                    }
                    Outcome::Failed(diag) => {
                        self.report.steps[i].status = StepStatus::Failed;
                        self.report.steps[i].error = Some(diag.to_string());
                        self.report.failed_step = Some(step.id.clone());
                        self.report.error = Some(diag.to_string());
                        ui::err(&format!("\nStep '{}' failed:", step.id));
                        ui::err(&ui::render(diag.as_ref()));
                        let mut choice = self.choose_after_failure(step);
                        let attempts = self.report.steps[i].attempts;
                        if choice == Choice::Retry
                            && attempts >= UNATTENDED_RETRIES
                            && !self
                                .session
                                .run()
                                .prompter()
                                .asks_on_terminal(&format!("{}.on-failure", step.id))
                        {
                            // An answers file says "retry" every time: without a person to
                            // judge, a step that keeps failing must not be retried forever.
                            ui::err(&format!(
                                "Step '{}' failed {attempts} times and nobody at a terminal chose to retry it: stopping.",
                                step.id
                            ));
                            choice = Choice::Stop;
                        }
                        match choice {
                            Choice::Retry => match self.before_retry(step) {
                                Settle::Rerun => {
                                    ui::progress(&format!("  ↻ retrying {}", step.id));
                                    continue;
                                }
                                Settle::Done => {
                                    self.report.steps[i].status = StepStatus::Completed;
                                    self.report.steps[i].error = None;
                                    self.report.failed_step = None;
                                    self.report.error = None;
                                    self.completed.push(i);
                                    break;
                                }
                                Settle::Stop => {
                                    self.explain_left_behind();
                                    return RunStatus::Failed;
                                }
                            },
                            Choice::Rollback => {
                                // The failed step is undone too when any of its writes took
                                // effect (rollback checks that for every step).
                                return self.rollback(Some(i));
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

    /// Before the first step that writes in a production run: the operator sees every write
    /// the plan can make from here and says go (`--yes` does; id `writes.confirm`).
    fn confirm_writes(&mut self, first: usize, writes: &[Vec<String>]) -> Option<RunStatus> {
        let plan = self.session.runbook().plan();
        ui::progress("");
        ui::progress(&ui::bold(
            "The next steps write to the vendors this run points at (see the banner):",
        ));
        for (i, w) in writes.iter().enumerate().skip(first) {
            if !w.is_empty() {
                ui::progress(&format!("  {} · {}", plan.steps[i].id, w.join(", ")));
            }
        }
        let answer = self
            .session
            .run()
            .prompter()
            .confirm("writes.confirm", "Go ahead with the first write?");
        match answer {
            Ok(true) => None,
            Ok(false) | Err(PromptError::Aborted) => {
                ui::err("Stopped before the first write at the operator's request. Nothing was changed.");
                Some(RunStatus::Aborted)
            }
            Err(PromptError::Interrupted) => {
                ui::err("Interrupted (Ctrl-C) before the first write. Nothing was changed.");
                Some(RunStatus::Interrupted)
            }
            Err(e) => {
                ui::err(&e.to_string());
                self.report.error = Some(e.to_string());
                Some(RunStatus::Aborted)
            }
        }
    }

    /// Four eyes: the step waits for another actor's approval (its own `.approval`, or the
    /// organisation's policy for irreversible steps). Denied or timed out, it fails closed:
    /// nothing of it runs, and the run stops (resume asks again; rollback undoes the rest).
    fn approve(&mut self, i: usize, step: &Step) -> Option<RunStatus> {
        let spec = step.approval.clone().or_else(|| {
            step.irreversible
                .as_ref()
                .and(self.opts.approve_irreversible)
                .map(|timeout| crate::plan::ApprovalSpec {
                    by: "another operator (policy: irreversible steps)".into(),
                    timeout,
                })
        })?;
        let info = self.session.run().info();
        if self.opts.dry_run || info.mode.is_dry_run() {
            ui::progress(&format!(
                "  ? approval by {} (dry-run: not requested)",
                spec.by
            ));
            return None;
        }
        let store = self.session.run().parts().store.clone();
        let request = crate::approval::Request {
            run_id: info.run_id.clone(),
            step: step.id.clone(),
            requested_by: info.actor.clone(),
            requested_at: crate::run::now_rfc3339(),
            by: spec.by.clone(),
            timeout_secs: spec.timeout.as_secs(),
            nonce: crate::approval::nonce(),
        };
        if let Err(e) = crate::approval::file(&store, &request) {
            ui::err(&ui::render(&e));
            self.report.error = Some(e.to_string());
            return Some(RunStatus::Failed);
        }
        self.event(
            "approval.requested",
            json!({"step": step.id, "by": spec.by, "timeout_secs": spec.timeout.as_secs()}),
        );
        ui::progress(&format!(
            "  ⧗ waiting for approval by {} (up to {}): `runbook approve {}` or `runbook deny {} --reason ...`, as another actor",
            spec.by,
            crate::interrupt::human(spec.timeout),
            info.run_id,
            info.run_id
        ));
        let decision = {
            let _paused = crate::interrupt::pause_budget();
            crate::approval::wait(&store, &info.run_id, &request.nonce, spec.timeout)
        };
        let fail = |this: &mut Self, why: String| {
            this.report.steps[i].status = StepStatus::Failed;
            this.report.steps[i].error = Some(why.clone());
            this.report.failed_step = Some(step.id.clone());
            this.report.error = Some(why.clone());
            ui::err(&format!("\nStep '{}' not run: {why}", step.id));
            this.explain_left_behind();
        };
        match decision {
            Some(crate::approval::Decision::Approved { by, .. }) => {
                self.event(
                    "approval.approved",
                    json!({"step": step.id, "approver": by}),
                );
                ui::progress(&format!("  ✓ approved by {by}"));
                None
            }
            Some(crate::approval::Decision::Denied { by, reason, .. }) => {
                self.event(
                    "approval.denied",
                    json!({"step": step.id, "approver": by, "reason": reason}),
                );
                fail(self, format!("{by} denied the approval: {reason}"));
                Some(RunStatus::Failed)
            }
            Some(crate::approval::Decision::Timeout { .. }) => {
                self.event(
                    "approval.timeout",
                    json!({"step": step.id, "timeout_secs": spec.timeout.as_secs()}),
                );
                fail(
                    self,
                    format!(
                        "no approval within {} (recorded as timeout, not as denied)",
                        crate::interrupt::human(spec.timeout)
                    ),
                );
                Some(RunStatus::Failed)
            }
            None => {
                ui::err(&format!(
                    "Interrupted (Ctrl-C) waiting for the approval of step '{}'.",
                    step.id
                ));
                self.explain_left_behind();
                Some(RunStatus::Interrupted)
            }
        }
    }

    fn confirm_step(&mut self, step: &Step, question: &str) -> Option<RunStatus> {
        if self.opts.dry_run {
            ui::progress(&format!("  ? {question} (dry-run: not asked)"));
            return None;
        }
        match step::confirm(self.session, step, question) {
            Confirmation::Yes => None,
            Confirmation::No => {
                ui::err(&format!(
                    "Stopped before step '{}' at the operator's request.",
                    step.id
                ));
                self.explain_left_behind();
                Some(RunStatus::Aborted)
            }
            Confirmation::Interrupted => {
                ui::err(&format!(
                    "Interrupted (Ctrl-C) at the confirmation of step '{}'.",
                    step.id
                ));
                self.explain_left_behind();
                Some(RunStatus::Interrupted)
            }
            Confirmation::NoAnswer(diag) => {
                ui::err(&ui::render(diag.as_ref()));
                self.report.error = Some(diag.to_string());
                self.explain_left_behind();
                Some(RunStatus::Aborted)
            }
        }
    }

    /// Before a retry: a write of the failed attempt whose answer was lost may have taken
    /// effect, so the step's verify (or the operator) decides first.
    fn before_retry(&self, step: &Step) -> Settle {
        let lost = self
            .session
            .run()
            .writes_of(&step.id)
            .iter()
            .any(|w| w.state.uncertain());
        if !lost {
            return Settle::Rerun;
        }
        match step::settle(self.session, step, false) {
            Ok(Settle::Done) => {
                self.session
                    .run()
                    .record(Record::StepOutcome(crate::journal::StepOutcome {
                        step: step.id.clone(),
                        status: crate::journal::StepEnd::Completed,
                        duration_ms: None,
                        error: None,
                        wrote: None,
                        verified: Some(true),
                        ctx: Some(self.session.ctx().snapshot()),
                    }));
                Settle::Done
            }
            Ok(other) => other,
            Err(e) => {
                ui::err(&format!("{e}; stopping here"));
                Settle::Stop
            }
        }
    }

    /// The last completed step that cannot be undone: once it ran, the run only goes forward.
    fn point_of_no_return(&self) -> Option<&Step> {
        let plan = self.session.runbook().plan();
        self.completed
            .iter()
            .rev()
            .map(|&i| &plan.steps[i])
            .find(|s| s.irreversible.is_some())
    }

    fn choose_after_failure(&self, step: &Step) -> Choice {
        let forward_only = self.point_of_no_return();
        let policy = self.session.runbook().plan().meta().on_failure;
        let stop_by_default =
            forward_only.is_some() || self.opts.no_rollback || policy == FailurePolicy::Stop;
        let yes_default = if stop_by_default { "stop" } else { "rollback" };
        let (options, question) = match forward_only {
            Some(done) => (
                vec!["retry".to_string(), "stop".to_string()],
                format!(
                    "Retry the step, or stop here? (Step '{}' cannot be undone, so the run only goes forward.)",
                    done.id
                ),
            ),
            None => (
                vec![
                    "retry".to_string(),
                    "rollback".to_string(),
                    "stop".to_string(),
                ],
                "Retry the step, roll back completed steps, or stop here?".to_string(),
            ),
        };
        let id = format!("{}.on-failure", step.id);
        let mut prompter = self.session.run().prompter();
        if !prompter.can_confirm(&id) {
            // Nobody to ask: leave everything as it is, and say how to continue.
            return Choice::Stop;
        }
        match prompter.choose(&id, &question, &options, Some(yes_default)) {
            Ok(c) if c == "retry" => Choice::Retry,
            Ok(c) if c == "rollback" => Choice::Rollback,
            Ok(_) => Choice::Stop,
            Err(PromptError::Interrupted) => {
                // Marks Ctrl-C for the rest of the run, as a script's prompt would.
                let _ = prompt_error(PromptError::Interrupted);
                Choice::Stop
            }
            Err(e) => {
                ui::err(&format!("{e}; stopping here"));
                Choice::Stop
            }
        }
    }

    /// Undoes completed steps, newest first (and the failed step first if it wrote
    /// something), stopping at an irreversible step.
    fn rollback(&mut self, failed: Option<usize>) -> RunStatus {
        let plan = self.session.runbook().plan();
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
                self.session.run().record(Record::RollbackBlocked {
                    step: step.id.clone(),
                    why: why.clone(),
                });
                return RunStatus::Failed;
            }
            if step.undo.is_none() {
                continue;
            }
            let took_effect = self
                .session
                .run()
                .writes_of(&step.id)
                .iter()
                .any(|w| w.state.may_have_applied());
            if !took_effect && !step.undo_always {
                if completed.contains(&i) {
                    ui::progress(&format!(
                        "  · {}: nothing to undo (none of its writes took effect)",
                        step.id
                    ));
                }
                continue;
            }
            ui::progress(&format!("  ↶ undoing {} · {}", step.id, step.title));
            match step::execute(self.session, step, Direction::Undo, 0).outcome {
                Outcome::Done => {
                    self.report.steps[i].status = StepStatus::Undone;
                    self.completed.retain(|c| *c != i);
                }
                Outcome::Failed(diag) => {
                    self.report.steps[i].status = StepStatus::UndoFailed;
                    ui::err(&format!("  ✗ undo of '{}' failed:", step.id));
                    ui::err(&ui::render(diag.as_ref()));
                    let next = if self.rehearsal_in_process() {
                        "Fix the cause and rehearse again.".to_string()
                    } else {
                        format!(
                            "Fix the cause, then `runbook rollback {}`.",
                            self.report.run_id
                        )
                    };
                    ui::err(&format!(
                        "  Rollback stopped here: the steps before it are still applied. {next}"
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

    /// Whether the run rehearses against an in-process sandbox, whose vendors end with it:
    /// nothing can resume or roll it back later.
    fn rehearsal_in_process(&self) -> bool {
        self.session.run().mode() == Mode::Sandbox
    }

    fn explain_left_behind(&self) {
        let plan = self.session.runbook().plan();
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
        if self.opts.dry_run {
            return;
        }
        let run_id = &self.report.run_id;
        if self.rehearsal_in_process() {
            ui::err("This rehearsal's simulated vendors end with this process, so it cannot be resumed or rolled back. To rehearse resume and rollback, start `runbook sandbox` in another shell, load its exports, and run `runbook exec` without --sandbox.");
        } else if let Some(done) = self.point_of_no_return() {
            ui::err(&format!(
                "Step '{}' cannot be undone, so the run only goes forward: fix the cause, then continue with `runbook resume {run_id}`.",
                done.id
            ));
        } else {
            ui::err(&format!(
                "Continue with `runbook resume {run_id}`, or undo them with `runbook rollback {run_id}`."
            ));
        }
    }
}
