//! The step loop. Each step runs with the shared `ctx`; a failure offers retry, rollback
//! (undo of completed steps, newest first, stopping at an irreversible one) or stop. Every
//! step's start and end goes to the ledger (`step::execute`); what the run did is read back
//! from the ledger for the closing report.

use super::refresh;
use super::report::{Report, RunStatus};
use super::session::{Outcome, Session};
use super::step::{self, Confirmation, Direction, Settle};
use super::Options;
use crate::audit::AuditEvent;
use crate::events::{Approval, ApprovalStatus, Event, LeaseLost, RunFinished};
use crate::host::prompt_error;
use crate::ledger::Happened;
use crate::plan::{FailurePolicy, Step};
use crate::prompt::PromptError;
use crate::run::{Effect, Entry, Target};
use crate::sink::{Notice, Say};
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
    /// Continue at `next` (the steps before it completed, as the ledger says).
    Resume {
        next: usize,
    },
    /// Only undo what completed, and `also` (steps that died mid-way or applied part of
    /// their writes); `refreshed` when the vendors were already read (and the operator saw it).
    Rollback {
        also: Vec<usize>,
        refreshed: bool,
    },
}

struct Runner<'a> {
    session: &'a Session,
    opts: &'a Options,
    say: &'a Say,
    /// Why the run stopped, when no step says it (a question nobody could answer).
    error: Option<String>,
}

/// Runs the plan from `start` and returns the report (its status says how it ended).
pub fn run(session: &Session, opts: &Options, start: Start) -> Report {
    let began = Instant::now();
    let mut r = Runner {
        session,
        opts,
        say: session.run().say(),
        error: None,
    };
    let status = match start {
        Start::Fresh => {
            r.event(AuditEvent::RunStarted {
                dry_run: opts.dry_run,
            });
            r.run_from(0, true)
        }
        Start::Resume { next } => {
            let at = session
                .runbook()
                .plan()
                .steps
                .get(next)
                .map(|s| s.id.clone());
            r.event(AuditEvent::RunResumed { at });
            r.run_from(next, false)
        }
        Start::Rollback { also, refreshed } => {
            r.event(AuditEvent::RunRollback {});
            r.rollback(None, &also, refreshed)
        }
    };
    r.finish(status, began)
}

/// Ends a process that did nothing with the run (the operator declined a rollback): its
/// end is recorded, and its report is the ledger's.
pub fn abandoned(session: &Session, status: RunStatus) -> Report {
    let run = session.run();
    // Its entries (a broken lock's) durable first, so that the end names the last of them.
    let _ = run.auditor().before_write();
    run.ledger().record(Event::RunFinished(RunFinished {
        status,
        error: None,
        duration_ms: None,
        rate_limit_wait_ms: None,
        audit_head: run.auditor().durable_head(),
    }));
    run.ledger().settle();
    run.auditor().settle(run.parts().store.wait());
    let plan = session.runbook().plan();
    run.ledger()
        .read(None, |l| Some(Report::of(l, plan)))
        .unwrap_or_else(|| Report::unrecorded(run.info(), plan, status))
}

impl<'a> Runner<'a> {
    /// Audits and records how this process ended; the report is the ledger's.
    fn finish(self, status: RunStatus, began: Instant) -> Report {
        let run = self.session.run();
        let failed_step = match status {
            RunStatus::Succeeded => None,
            _ => run
                .ledger()
                .read(None, |l| l.stop.as_ref().map(|s| s.step.clone())),
        };
        let waited = run
            .services()
            .built_vendors()
            .map_or(0, |v| v.transport().rate_limit_wait().as_millis() as u64);
        run.note_simulators();
        // The end goes in the journal first, durably, so the audit entry after it names it:
        // the status is under the chain. `audit_head` names this run's last entry before it,
        // made durable first (one a power loss could take back would read as a log cut;
        // one not named would let a log cut back to it verify).
        let _ = run.auditor().before_write();
        run.ledger().record(Event::RunFinished(RunFinished {
            status,
            error: self.error.clone(),
            duration_ms: Some(began.elapsed().as_millis() as u64),
            rate_limit_wait_ms: (waited > 0).then_some(waited),
            audit_head: run.auditor().durable_head(),
        }));
        run.ledger().settle();
        // What makes a rollback partial (a refused resume's read-back finds changed
        // targets too, and leaves nothing alone).
        let left_alone = match status {
            RunStatus::PartlyRolledBack => run.ledger().read(Vec::new(), |l| {
                l.changed_by_others()
                    .map(|r| format!("{} · {} on {}", r.step, r.function, r.target))
                    .collect()
            }),
            _ => Vec::new(),
        };
        self.event(AuditEvent::RunCompleted {
            status,
            failed_step,
            left_alone,
        });
        run.auditor().settle(run.parts().store.wait());
        let plan = self.session.runbook().plan();
        let mut report = run
            .ledger()
            .read(None, |l| Some(Report::of(l, plan)))
            .unwrap_or_else(|| Report::unrecorded(run.info(), plan, status));
        report.audit_head = run.auditor().head().or(report.audit_head);
        report
    }

    fn event(&self, event: AuditEvent) {
        step::event(self.session, event);
    }

    fn plan(&self) -> &'a crate::plan::Plan {
        self.session.runbook().plan()
    }

    /// The plan's steps the ledger says completed, in plan order.
    fn completed(&self) -> Vec<usize> {
        let ledger = self.session.run().ledger();
        (0..self.plan().steps.len())
            .filter(|&i| ledger.read(false, |l| l.completed(&self.plan().steps[i].id)))
            .collect()
    }

    fn prerequisites(&mut self, fresh: bool) -> Option<RunStatus> {
        let plan = self.plan();
        if plan.prerequisites.is_empty() || (!fresh && self.prerequisites_confirmed()) {
            return None;
        }
        self.say.heading("Prerequisites");
        let run = self.session.run();
        run.set_phase(crate::host::Phase::Step("prerequisites".into()));
        let confirmed = run
            .operator()
            .checklist("prerequisites", &plan.prerequisites);
        let declined = "Stopped: a prerequisite was not confirmed. Nothing was changed.";
        confirmed.err().map(|e| self.stopped_at(e, declined, None))
    }

    /// Whether an earlier process of this run confirmed every prerequisite: a resume asks
    /// again a checklist that was refused, or never answered.
    fn prerequisites_confirmed(&self) -> bool {
        let plan = self.plan();
        self.session.run().ledger().read(false, |l| {
            plan.prerequisites.iter().all(|item| {
                l.history.iter().any(|(_, h)| {
                    matches!(h, Happened::Decision(d)
                        if d.id == "prerequisites" && d.question == *item && d.answer == "yes")
                })
            })
        })
    }

    /// How a question that must be answered yes stops the run: the operator said no
    /// (`declined`), pressed Ctrl-C (`interrupted`, when there is more to say), or nobody
    /// could answer (why, which is also the run's error).
    fn stopped_at(
        &mut self,
        e: PromptError,
        declined: &str,
        interrupted: Option<&str>,
    ) -> RunStatus {
        match e {
            PromptError::Aborted => {
                self.say.warning(declined);
                RunStatus::Aborted
            }
            PromptError::Interrupted => {
                if let Some(text) = interrupted {
                    self.say.warning(text);
                }
                RunStatus::Interrupted
            }
            // Nobody could answer: what it asks and how to answer it are said too (before,
            // only "needs an answer", and the unattended operator had to guess).
            e => {
                self.say.warning(match e.help() {
                    Some(help) => format!("{e}\n  help: {help}"),
                    None => e.to_string(),
                });
                self.error = Some(e.to_string());
                RunStatus::Aborted
            }
        }
    }

    /// Whether this run asks once before its first write: a new run, or a resumed one that
    /// has not written yet (its first process stopped at the question, or before it), that
    /// writes for real to vendors outside this process.
    fn asks_before_writing(&self) -> bool {
        let modes = self.session.run().info().modes;
        let first = match modes.entry {
            Entry::Exec => true,
            Entry::Resume => !self.session.run().ledger().read(false, |l| l.has_sent()),
            _ => false,
        };
        first && modes.effect == Effect::Apply && modes.target != Target::Sandbox
    }

    fn run_from(&mut self, first: usize, fresh: bool) -> RunStatus {
        if let Some(status) = self.prerequisites(fresh) {
            return status;
        }
        let plan = self.plan();
        let mut writes = self
            .asks_before_writing()
            .then(|| self.session.runbook().step_writes());
        // Until it is asked, a write the list missed asks for itself (`Writes`).
        self.session
            .run()
            .scope()
            .set_first_write_unasked(writes.is_some());
        for i in first..plan.steps.len() {
            let step = &plan.steps[i];
            if !self.session.run().scope().first_write_unasked() {
                writes = None;
            }
            if let Some(all) = writes.as_ref() {
                if all.get(i).is_some_and(|w| !w.is_empty()) {
                    if let Some(status) = self.confirm_writes(i, all) {
                        return status;
                    }
                    self.session.run().scope().set_first_write_unasked(false);
                    writes = None;
                }
            }
            if let Some(status) = self.run_step(i, step) {
                return status;
            }
        }
        RunStatus::Succeeded
    }

    /// One step, from its announcement to its end; `Some` when the run stops there.
    fn run_step(&mut self, i: usize, step: &Step) -> Option<RunStatus> {
        self.say.notice(Notice::StepReached {
            index: i + 1,
            count: self.plan().steps.len(),
            step: step.id.clone(),
            title: step.title.clone(),
        });
        if let Some(question) = &step.confirm {
            if let Some(status) = self.confirm_step(step, question) {
                return Some(status);
            }
        }
        // Before the approval is asked for too: a request filed by a run that lost its lock
        // would replace the new holder's (same run id), clearing any decision given on it.
        if let Some(why) = self.session.lock_lost() {
            return Some(self.lease_lost(step, why));
        }
        if let Some(status) = self.approve(step) {
            return Some(status);
        }
        if let Some(why) = self.session.lock_lost() {
            return Some(self.lease_lost(step, why));
        }
        self.attempts(i, step)
    }

    /// The run stops before `step`: it no longer holds its rotation lock.
    fn lease_lost(&self, step: &Step, why: String) -> RunStatus {
        self.session
            .run()
            .ledger()
            .record(Event::LeaseLost(LeaseLost {
                step: step.id.clone(),
                why: why.clone(),
            }));
        self.say
            .warning(format!("\nStep '{}' not run: {why}", step.id));
        self.explain_left_behind();
        RunStatus::Failed
    }

    /// Attempts a step until it completes or the operator stops, rolls back or is gone.
    fn attempts(&mut self, i: usize, step: &Step) -> Option<RunStatus> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tried = step::execute(self.session, step, Direction::Forward, attempt);
            match tried.outcome {
                Outcome::Done => {
                    self.say.notice(Notice::StepPassed {
                        step: step.id.clone(),
                        duration_ms: tried.duration_ms,
                    });
                    return None;
                }
                // A run that asks before its first write and has not: nothing was written.
                Outcome::Aborted if self.session.run().scope().first_write_unasked() => {
                    self.say.warning(format!(
                        "Stopped in step '{}' before the first write. Nothing was changed.",
                        step.id
                    ));
                    return Some(RunStatus::Aborted);
                }
                Outcome::Aborted => {
                    self.say
                        .warning(format!("Stopped by the operator in step '{}'.", step.id));
                    self.explain_left_behind();
                    return Some(RunStatus::Aborted);
                }
                Outcome::Interrupted => {
                    self.say.warning(format!(
                        "Interrupted ({}) during step '{}'.",
                        crate::interrupt::cause(),
                        step.id
                    ));
                    self.explain_left_behind();
                    return Some(RunStatus::Interrupted);
                }
                Outcome::Fenced(why) => {
                    self.say.warning(format!(
                        "\nStep '{}' stopped before its write: {why}",
                        step.id
                    ));
                    self.explain_left_behind();
                    return Some(RunStatus::Failed);
                }
                Outcome::Failed(diag) => {
                    self.say.warning(format!("\nStep '{}' failed:", step.id));
                    self.say.problem(*diag);
                    // Its lock taken meanwhile, the run is the new holder's to resume, roll
                    // back or abandon: retried or rolled back here, it would write (or
                    // audit) beside it.
                    if let Some(why) = self.session.lock_lost() {
                        self.say
                            .warning(format!("  neither retried nor rolled back here: {why}"));
                        self.explain_left_behind();
                        return Some(RunStatus::Failed);
                    }
                    match self.after_failure(step, attempt) {
                        Some(Settle::Rerun) => {
                            self.say.progress(format!("  ↻ retrying {}", step.id));
                        }
                        Some(Settle::Done(_)) => return None,
                        Some(Settle::Stop) => {
                            self.explain_left_behind();
                            // Ctrl-C at the question is an interruption, as anywhere else.
                            return Some(if crate::interrupt::is_set() {
                                RunStatus::Interrupted
                            } else {
                                RunStatus::Failed
                            });
                        }
                        None => return Some(self.rollback(Some(i), &[], false)),
                    }
                }
            }
        }
    }

    /// After a failed attempt: run it again, count it done (its verify says it took
    /// effect), stop, or roll back (`None`).
    fn after_failure(&mut self, step: &Step, attempts: u32) -> Option<Settle> {
        let mut choice = self.choose_after_failure(step);
        let id = format!("{}.on-failure", step.id);
        let at_terminal = self
            .session
            .run()
            .operator()
            .prompter()
            .asks_on_terminal(&id);
        if choice == Choice::Retry && attempts >= UNATTENDED_RETRIES && !at_terminal {
            // An answers file says "retry" every time: without a person to judge, a step
            // that keeps failing must not be retried forever.
            self.say.warning(format!(
                "Step '{}' failed {attempts} times and nobody at a terminal chose to retry it: stopping.",
                step.id
            ));
            choice = Choice::Stop;
        }
        match choice {
            Choice::Retry => Some(self.before_retry(step)),
            // The failed step is undone too when any of its writes took effect (rollback
            // checks that for every step).
            Choice::Rollback => None,
            Choice::Stop => Some(Settle::Stop),
        }
    }

    /// Before the first write of a production run: lists the writes and asks once
    /// (`writes.confirm`).
    fn confirm_writes(&mut self, first: usize, writes: &[Vec<String>]) -> Option<RunStatus> {
        let plan = self.plan();
        self.say.progress("");
        self.say
            .heading("The next steps write to the vendors this run points at (see the banner):");
        for (i, w) in writes.iter().enumerate().skip(first) {
            if !w.is_empty() {
                self.say
                    .progress(format!("  {} · {}", plan.steps[i].id, w.join(", ")));
            }
        }
        let answer = self
            .session
            .run()
            .operator()
            .confirm("writes.confirm", "Go ahead with the first write?");
        let declined =
            "Stopped before the first write at the operator's request. Nothing was changed.";
        let interrupted = format!(
            "Interrupted ({}) before the first write. Nothing was changed.",
            crate::interrupt::cause()
        );
        match answer {
            Ok(true) => None,
            Ok(false) => Some(self.stopped_at(PromptError::Aborted, declined, None)),
            Err(e) => Some(self.stopped_at(e, declined, Some(&interrupted))),
        }
    }

    /// The approval a step needs: its own `.approval`, or the organisation's policy for
    /// irreversible steps.
    fn approval_of(&self, step: &Step) -> Option<crate::plan::ApprovalSpec> {
        step.approval.clone().or_else(|| {
            step.irreversible
                .as_ref()
                .and(self.opts.approve_irreversible)
                .map(|timeout| crate::plan::ApprovalSpec {
                    by: "another operator (policy: irreversible steps)".into(),
                    timeout,
                })
        })
    }

    fn approval_event(&self, step: &Step, status: ApprovalStatus, set: impl FnOnce(&mut Approval)) {
        let mut a = Approval {
            step: step.id.clone(),
            status,
            requested_by: Some(self.session.run().info().actor.clone()),
            by: None,
            approver: None,
            approver_host: None,
            approver_role: None,
            approver_key: None,
            approver_unverified: false,
            signed_text: None,
            signature: None,
            allowed_signers_sha256: None,
            reason: None,
            timeout_secs: None,
            nonce: None,
        };
        set(&mut a);
        self.session.run().ledger().record(Event::Approval(a));
    }

    /// Four eyes: the step waits for another actor's approval. Denied or timed out, it
    /// fails closed: nothing of it runs, and the run stops (resume asks again; rollback
    /// undoes the rest).
    fn approve(&mut self, step: &Step) -> Option<RunStatus> {
        let spec = self.approval_of(step)?;
        let info = self.session.run().info();
        if self.opts.dry_run || info.modes.is_dry_run() {
            self.say.progress(format!(
                "  ? approval by {} (dry-run: not requested)",
                spec.by
            ));
            return None;
        }
        let store = self.session.run().parts().store.clone();
        let mut request = crate::approval::Request {
            run_id: info.run_id.clone(),
            step: step.id.clone(),
            requested_by: info.actor.clone(),
            requested_at: crate::run::now_rfc3339(),
            by: spec.by.clone(),
            timeout_secs: spec.timeout.as_secs(),
            nonce: crate::approval::nonce(),
            runbook: info.runbook_id.clone(),
            title: step.title.clone(),
            target: info.modes.target.as_str().to_string(),
            host: crate::run::hostname(),
            role: store.authenticated(),
            writes: self
                .session
                .runbook()
                .step_writes()
                .into_iter()
                .nth(
                    self.plan()
                        .steps
                        .iter()
                        .position(|s| s.id == step.id)
                        .unwrap_or(usize::MAX),
                )
                .unwrap_or_default(),
            signature: None,
        };
        if let Err(e) = self.prove_request(&mut request) {
            self.error = Some(e.to_string());
            let reason = format!("not requested: {e}");
            self.event(AuditEvent::ApprovalRefused {
                step: step.id.clone(),
                reason: reason.clone(),
                claimed_by: None,
                verdict: None,
            });
            self.approval_event(step, ApprovalStatus::Refused, |a| {
                a.reason = Some(reason);
            });
            self.say.problem(e);
            self.explain_left_behind();
            return Some(RunStatus::Failed);
        }
        if let Err(e) = crate::approval::file(&store, &request) {
            self.error = Some(e.to_string());
            self.say.problem(e);
            return Some(RunStatus::Failed);
        }
        self.approval_event(step, ApprovalStatus::Requested, |a| {
            a.by = Some(spec.by.clone());
            a.timeout_secs = Some(spec.timeout.as_secs());
            a.nonce = Some(request.nonce.clone());
        });
        self.event(AuditEvent::ApprovalRequested {
            step: step.id.clone(),
            by: spec.by.clone(),
            timeout_secs: spec.timeout.as_secs(),
        });
        self.say.progress(format!(
            "  ⧗ waiting for approval by {} (up to {}): `runbook approve {}` or `runbook deny {} --reason ...`, as another actor",
            spec.by,
            crate::interrupt::human(spec.timeout),
            info.run_id,
            info.run_id
        ));
        let waiting = Instant::now();
        let decision = {
            let _paused = crate::interrupt::pause_budget();
            let (session, say) = (self.session, &self.say);
            crate::approval::wait(
                &store,
                &info.run_id,
                &request.nonce,
                spec.timeout,
                &|| session.lock_lost().is_some(),
                &|warning| say.warning(warning),
            )
        };
        // A timeout is this run's own only once its deadline passed: one found before was
        // written by someone else (any login that can write the approvals), and is a
        // refusal, not a timeout nobody answers for (cold review of team mode).
        if let Some(d @ crate::approval::Decision::Timeout { .. }) = &decision {
            if waiting.elapsed() < spec.timeout {
                let e = crate::error::Error::usage(
                    "the request was closed as timed out before the request's deadline: a timeout this run did not write",
                    format!(
                        "find who wrote it (`runbook audit show`, the store's logins); then `runbook resume {}` files a new request",
                        info.run_id
                    ),
                );
                return self.refused(step, d, e);
            }
        }
        let decider = match &decision {
            Some(d) => match self.accepted(&request, d) {
                Ok(who) => who,
                Err(e) => return self.refused(step, d, e),
            },
            None => None,
        };
        self.decided(step, &spec, decision, decider, &request)
    }

    /// Signs the request with this person's SSH key (and checks the signature against the
    /// allowed signers now, not when the approver is at the keyboard). In production, a
    /// request whose asker is only a label is refused before anyone is asked: no approver
    /// could make it four eyes.
    fn prove_request(&self, request: &mut crate::approval::Request) -> crate::error::Result<()> {
        let keys = &self.opts.keys;
        if let Some(key) = &keys.signing_key {
            let text = request.signed_text();
            request.signature =
                Some(crate::approval::ssh::sign(key, &text).map_err(|why| {
                    crate::error::Error::usage(
                        why,
                        "[identity] ssh_key (or RUNBOOK_SSH_KEY) names your private key, or its .pub when the key is in ssh-agent",
                    )
                })?);
        }
        let asker = crate::approval::requester(request, keys)?;
        if self.session.run().info().modes.target == crate::run::Target::Production
            && !asker.proven()
        {
            return Err(crate::error::Error::usage(
                format!(
                    "step '{}' needs another person's approval, and this run writes to production: four eyes there needs proven identities, and this run's actor is {}",
                    request.step,
                    asker.describe()
                ),
                "in team mode each person connects with their own database login; on the file store, sign with an SSH key the team's allowed signers list: [identity] ssh_key and allowed_signers in runbook.toml, or RUNBOOK_SSH_KEY and RUNBOOK_ALLOWED_SIGNERS (docs/team.md, \"Identities\")",
            ));
        }
        Ok(())
    }

    /// The decision as this run accepts it: the run checks four eyes itself, on its own
    /// allowed signers, its own target and the request it holds, for a decision can reach
    /// the store without `runbook approve`. `Err` says why it cannot accept one: that is a
    /// refusal, never an approval.
    fn accepted(
        &self,
        request: &crate::approval::Request,
        decision: &crate::approval::Decision,
    ) -> crate::error::Result<Option<crate::approval::Identity>> {
        use crate::approval::Decision;
        if matches!(decision, Decision::Timeout { .. }) {
            return Ok(None);
        }
        if !decision.answers(request) {
            return Err(crate::error::Error::usage(
                "the decision answers a request other than the one this run filed (it was changed after it was shown)",
                "ask again: `runbook resume RUN_ID` files a new request",
            ));
        }
        let keys = &self.opts.keys;
        let production = self.session.run().info().modes.target == crate::run::Target::Production;
        let asker = crate::approval::requester(request, keys)?;
        let decider = crate::approval::decider(request, decision, keys)?;
        crate::approval::four_eyes(&request.run_id, request, &asker, &decider, production)?;
        Ok(Some(decider))
    }

    /// A decision the run cannot accept: recorded as refused, with who it claims to be from
    /// and its verdict as claims; the step does not run.
    fn refused(
        &mut self,
        step: &Step,
        decision: &crate::approval::Decision,
        why: crate::error::Error,
    ) -> Option<RunStatus> {
        use crate::approval::Decision;
        let (claimed_by, verdict) = match decision {
            Decision::Approved { by, .. } => (Some(by.clone()), Some("approved".to_string())),
            Decision::Denied { by, .. } => (Some(by.clone()), Some("denied".to_string())),
            Decision::Timeout { .. } => (None, None),
        };
        let reason = format!("the decision is not accepted: {why}");
        let verdict_word = verdict.clone().unwrap_or_default();
        let claimed_word = claimed_by.clone().unwrap_or_default();
        self.event(AuditEvent::ApprovalRefused {
            step: step.id.clone(),
            reason: reason.clone(),
            claimed_by: claimed_by.clone(),
            verdict,
        });
        self.approval_event(step, ApprovalStatus::Refused, |a| {
            a.approver = claimed_by;
            a.approver_unverified = true;
            a.reason = Some(reason.clone());
        });
        self.error = Some(reason);
        self.say.problem(why);
        self.say.warning(format!(
            "\nStep '{}' not run: the decision ({} by {}) is not accepted.",
            step.id, verdict_word, claimed_word
        ));
        self.explain_left_behind();
        Some(RunStatus::Failed)
    }

    /// What came of an approval request.
    fn decided(
        &mut self,
        step: &Step,
        spec: &crate::plan::ApprovalSpec,
        decision: Option<crate::approval::Decision>,
        decider: Option<crate::approval::Identity>,
        request: &crate::approval::Request,
    ) -> Option<RunStatus> {
        use crate::approval::Decision;
        let signed = match &decision {
            Some(
                d @ (Decision::Approved {
                    signature: Some(sig),
                    ..
                }
                | Decision::Denied {
                    signature: Some(sig),
                    ..
                }),
            ) => Some((d.signed_text(&request.run_id, &request.nonce), sig.clone())),
            _ => None,
        };
        let allowed_signers_sha256 = self
            .opts
            .keys
            .allowed_signers
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|bytes| crate::text::sha256_hex(&bytes));
        let (status, approver, reason, host, role) = match decision {
            Some(Decision::Approved { by, host, role, .. }) => {
                (ApprovalStatus::Approved, Some(by), None, host, role)
            }
            Some(Decision::Denied {
                by,
                reason,
                host,
                role,
                ..
            }) => (ApprovalStatus::Denied, Some(by), Some(reason), host, role),
            Some(Decision::Timeout { .. }) => {
                (ApprovalStatus::Timeout, None, None, String::new(), None)
            }
            None if !crate::interrupt::is_set() => {
                // Not Ctrl-C: the run lost its lock while it waited.
                let why = self.session.lock_lost().unwrap_or_else(|| {
                    "the approval request was replaced by another process's (it took this run over)"
                        .into()
                });
                return Some(self.lease_lost(step, why));
            }
            None => {
                self.say.warning(format!(
                    "Interrupted ({}) waiting for the approval of step '{}'.",
                    crate::interrupt::cause(),
                    step.id
                ));
                self.explain_left_behind();
                return Some(RunStatus::Interrupted);
            }
        };
        let timeout_secs = spec.timeout.as_secs();
        let (id, who) = (step.id.clone(), approver.clone().unwrap_or_default());
        let signed = signed.filter(|_| decider.as_ref().is_some_and(|d| d.key.is_some()));
        let key = decider
            .as_ref()
            .and_then(|d| d.key.as_ref())
            .map(|k| k.fingerprint.clone());
        let unverified = !decider.as_ref().is_some_and(|d| d.proven());
        self.event(match status {
            ApprovalStatus::Approved => AuditEvent::ApprovalApproved {
                step: id,
                approver: who,
                host: host.clone(),
                role: role.clone(),
                key: key.clone(),
                unverified,
            },
            ApprovalStatus::Denied => AuditEvent::ApprovalDenied {
                step: id,
                approver: who,
                reason: reason.clone().unwrap_or_default(),
                host: host.clone(),
                role: role.clone(),
                key: key.clone(),
                unverified,
            },
            _ => AuditEvent::ApprovalTimeout {
                step: id,
                timeout_secs,
            },
        });
        self.approval_event(step, status, |a| {
            a.approver = approver.clone();
            a.approver_host = Some(host).filter(|h| !h.is_empty());
            a.approver_role = role;
            a.approver_key = key;
            a.approver_unverified = unverified && status != ApprovalStatus::Timeout;
            if let Some((text, signature)) = signed {
                a.signed_text = Some(text);
                a.signature = Some(signature);
                a.allowed_signers_sha256 = allowed_signers_sha256;
            }
            a.reason = reason;
            a.timeout_secs = (status == ApprovalStatus::Timeout).then_some(timeout_secs);
            a.nonce = Some(request.nonce.clone());
        });
        if status == ApprovalStatus::Approved {
            let by = decider
                .map(|d| match (&d.login, &d.key) {
                    (None, None) => format!("{} (unverified: a rehearsal)", d.label),
                    _ => format!("{} ({})", d.label, d.describe()),
                })
                .unwrap_or_else(|| approver.unwrap_or_default());
            self.say.progress(format!("  ✓ approved by {by}"));
            return None;
        }
        let why = self
            .session
            .run()
            .ledger()
            .read(None, |l| l.step(&step.id).and_then(|s| s.error.clone()))
            .unwrap_or_default();
        self.say
            .warning(format!("\nStep '{}' not run: {why}", step.id));
        self.explain_left_behind();
        Some(RunStatus::Failed)
    }

    fn confirm_step(&mut self, step: &Step, question: &str) -> Option<RunStatus> {
        if self.opts.dry_run {
            self.say
                .progress(format!("  ? {question} (dry-run: not asked)"));
            return None;
        }
        match step::confirm(self.session, step, question) {
            Confirmation::Yes => None,
            Confirmation::No => {
                self.say.warning(format!(
                    "Stopped before step '{}' at the operator's request.",
                    step.id
                ));
                self.explain_left_behind();
                Some(RunStatus::Aborted)
            }
            Confirmation::Interrupted => {
                self.say.warning(format!(
                    "Interrupted ({}) at the confirmation of step '{}'.",
                    crate::interrupt::cause(),
                    step.id
                ));
                self.explain_left_behind();
                Some(RunStatus::Interrupted)
            }
            Confirmation::NoAnswer(diag) => {
                self.error = Some(diag.to_string());
                self.say.problem(*diag);
                self.explain_left_behind();
                Some(RunStatus::Aborted)
            }
        }
    }

    /// Before a retry: a write of the failed attempt whose answer was lost may have taken
    /// effect, so the step's verify (or the operator) decides first.
    fn before_retry(&self, step: &Step) -> Settle {
        if !self.session.run().ledger().in_doubt(&step.id) {
            return Settle::Rerun;
        }
        match step::settle(self.session, step, false) {
            Ok(Settle::Done(by)) => {
                step::settled_done(self.session, step, by);
                Settle::Done(by)
            }
            Ok(other) => other,
            Err(e) => {
                self.say.warning(format!("{e}; stopping here"));
                Settle::Stop
            }
        }
    }

    /// The last completed step that cannot be undone: once it ran, the run only goes forward.
    fn point_of_no_return(&self) -> Option<&Step> {
        let plan = self.plan();
        self.completed()
            .into_iter()
            .rev()
            .map(|i| &plan.steps[i])
            .find(|s| s.irreversible.is_some())
    }

    fn choose_after_failure(&self, step: &Step) -> Choice {
        let forward_only = self.point_of_no_return();
        let policy = self.plan().meta().on_failure;
        let stop_by_default =
            forward_only.is_some() || self.opts.no_rollback || policy == FailurePolicy::Stop;
        let yes_default = if stop_by_default { "stop" } else { "rollback" };
        let (options, question): (&[&str], String) = match forward_only {
            Some(done) => (
                &["retry", "stop"],
                format!(
                    "Retry the step, or stop here? (Step '{}' cannot be undone, so the run only goes forward.)",
                    done.id
                ),
            ),
            None => (
                &["retry", "rollback", "stop"],
                "Retry the step, roll back completed steps, or stop here?".to_string(),
            ),
        };
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        let id = format!("{}.on-failure", step.id);
        let operator = self.session.run().operator();
        if !operator.prompter().can_confirm(&id) {
            // Nobody to ask: leave everything as it is, and say how to continue.
            return Choice::Stop;
        }
        match operator.choose(&id, &question, &options, Some(yes_default)) {
            Ok(c) if c == "retry" => Choice::Retry,
            Ok(c) if c == "rollback" => Choice::Rollback,
            Ok(_) => Choice::Stop,
            Err(PromptError::Interrupted) => {
                // Marks Ctrl-C for the rest of the run, as a script's prompt would.
                let _ = prompt_error(PromptError::Interrupted);
                Choice::Stop
            }
            Err(e) => {
                self.say.warning(format!("{e}; stopping here"));
                Choice::Stop
            }
        }
    }

    /// Undoes completed steps (and `also`), newest first, and the failed step first if it
    /// wrote something, stopping at an irreversible step.
    fn rollback(&mut self, failed: Option<usize>, also: &[usize], refreshed: bool) -> RunStatus {
        self.say.progress("");
        self.say.heading("Rolling back");
        // `also` (a step that died mid-way, a failed one that applied part of its writes) is
        // undone as far as it took effect, not taken for completed: an irreversible step
        // that died before doing anything stopped the rollback, which the check before it
        // had judged not done.
        let completed = self.completed();
        let mut undoing = completed.clone();
        undoing.extend(also.iter().filter(|i| !completed.contains(i)).copied());
        undoing.sort();
        let order: Vec<usize> = failed
            .into_iter()
            .chain(undoing.iter().rev().copied())
            .collect();
        // The `rollback` command refreshed before its confirmation; a rollback chosen after
        // a failure refreshes here.
        if !refreshed {
            if let Err(refusal) = refresh::before_rollback(self.session, &order, &completed) {
                refresh::refuse(self.session, &refusal);
                return RunStatus::Failed;
            }
        }
        for i in order {
            if let Some(status) = self.undo_one(i, completed.contains(&i)) {
                return status;
            }
        }
        if let Some(unsure) = super::refresh::not_shown(self.session, true) {
            self.say.progress(format!(
                "  not undone, as they do not hold what this run wrote (its writes there may not have applied): {unsure}"
            ));
        }
        match super::refresh::changed_since(self.session) {
            Some(left) => {
                self.say.warning(format!(
                    "  partly rolled back: what changed since this run was left alone: {left}"
                ));
                RunStatus::PartlyRolledBack
            }
            None => {
                self.say.progress("  rollback complete");
                RunStatus::RolledBack
            }
        }
    }

    /// Undoes one step of a rollback; `Some` when the rollback stops there.
    fn undo_one(&mut self, i: usize, completed: bool) -> Option<RunStatus> {
        let step = &self.plan().steps[i];
        if let (Some(why), true) = (
            &step.irreversible,
            refresh::blocks(self.session, step, completed),
        ) {
            if !self.rehearsal_in_process() {
                refresh::say_blocked(self.session, step, true);
            } else {
                self.say.warning(format!(
                    "  ✗ cannot roll back past step '{}': {why}",
                    step.id
                ));
                self.session.run().ledger().record(Event::RollbackBlocked {
                    step: step.id.clone(),
                    why: why.clone(),
                });
            }
            return Some(RunStatus::Failed);
        }
        if step.irreversible.is_some() && refresh::took_effect(self.session, &step.id) {
            self.say.progress(format!(
                "  · {}: the journal says it took effect, its verify reads at the vendor that it did not: nothing of it to undo, the rollback goes on",
                step.id
            ));
            // Recorded: the journal's "applied" was the operator's word; every later view
            // (the summary, `runs`, the evidence) says what the vendor read.
            let ledger = self.session.run().ledger();
            for w in ledger.writes_of(&step.id) {
                if w.outcome.may_have_applied() {
                    ledger.record(Event::Refreshed(crate::events::Refreshed {
                        step: w.step.clone(),
                        function: w.function.clone(),
                        target: w.target.clone(),
                        holds: crate::events::Holds::Refuted,
                        now: None,
                    }));
                }
            }
        }
        step.undo.as_ref()?;
        if !refresh::took_effect(self.session, &step.id) && !step.undo_always {
            if completed {
                self.say.progress(format!(
                    "  · {}: nothing to undo (none of its writes took effect)",
                    step.id
                ));
            }
            return None;
        }
        self.say
            .progress(format!("  ↶ undoing {} · {}", step.id, step.title));
        let again = if self.rehearsal_in_process() {
            "rehearse again".to_string()
        } else {
            format!("`runbook rollback {}`", self.session.run_id())
        };
        match step::execute(self.session, step, Direction::Undo, 0).outcome {
            Outcome::Done => None,
            Outcome::Failed(diag) => {
                self.say
                    .warning(format!("  ✗ undo of '{}' failed:", step.id));
                self.say.problem(*diag);
                self.say.warning(format!(
                    "  Rollback stopped here: the steps before it are still applied. Fix the cause, then {again}."
                ));
                // An undo that can never pass (its target is gone) would send the operator
                // between rollback and resume, which refuses a half-undone run, for ever.
                if !self.rehearsal_in_process() {
                    self.say.warning(format!(
                        "  If it cannot be fixed, end the run with `runbook abandon {} --reason TEXT` and put back by hand what this undo could not.",
                        self.session.run_id()
                    ));
                }
                Some(RunStatus::Failed)
            }
            // Stopped mid-undo: part of it may be done (an app set back, its dynos not up
            // yet); the rollback run again goes on from what it put back.
            stopped @ (Outcome::Aborted | Outcome::Interrupted) => {
                self.say.warning(format!(
                    "  Rollback stopped in the undo of '{}' ({}): part of it may be done, and the steps before it are still applied. Finish it with {again}.",
                    step.id,
                    if matches!(stopped, Outcome::Interrupted) { "Ctrl-C" } else { "stopped" }
                ));
                Some(if matches!(stopped, Outcome::Interrupted) {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Aborted
                })
            }
            Outcome::Fenced(why) => {
                self.say
                    .warning(format!("  ✗ undo of '{}' stopped: {why}", step.id));
                Some(RunStatus::Failed)
            }
        }
    }

    /// Whether the run rehearses against an in-process sandbox, whose vendors end with it:
    /// nothing can resume or roll it back later.
    fn rehearsal_in_process(&self) -> bool {
        self.session.run().info().modes.target == Target::Sandbox
    }

    fn explain_left_behind(&self) {
        let plan = self.plan();
        let applied: Vec<&str> = self
            .completed()
            .iter()
            .map(|i| plan.steps[*i].id.as_str())
            .collect();
        if applied.is_empty() {
            self.say
                .warning("No step had completed; nothing was changed by completed steps.");
            return;
        }
        self.say.warning(format!(
            "Completed steps left in place: {}.",
            applied.join(", ")
        ));
        if self.opts.dry_run {
            return;
        }
        let run_id = self.session.run_id();
        // Another process holds the run now: what happens next is its call (a review).
        if self.session.lock_lost().is_some() {
            self.say.warning(format!(
                "Another process holds this run now: `runbook runs {run_id}` shows what it did."
            ));
        } else if self.rehearsal_in_process() {
            self.say.warning("This rehearsal's simulated vendors end with this process, so it cannot be resumed or rolled back. To rehearse resume and rollback, start `runbook sandbox` in another shell, load its exports, and run `runbook exec` without --sandbox.");
        } else if let Some(done) = self.point_of_no_return() {
            self.say.warning(format!(
                "Step '{}' cannot be undone, so the run only goes forward: fix the cause, then continue with `runbook resume {run_id}`.",
                done.id
            ));
        } else {
            self.say.warning(format!(
                "Continue with `runbook resume {run_id}`, or undo them with `runbook rollback {run_id}`."
            ));
        }
    }
}
