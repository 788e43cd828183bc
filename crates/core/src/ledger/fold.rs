//! The one fold: a run's events, applied in order, give what every view reads: resume and
//! rollback (which steps completed, what is in effect, the last `ctx`), `runs`, a run's
//! timeline, `due`, the closing report and the evidence pack. Nothing else re-derives it.

use crate::events::*;
use crate::run::{Entry, RunStatus, Target};
use serde::Serialize;
use serde_json::Value;

/// Where one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not run: its approval was denied or timed out, or the run lost its lock first.
    Blocked,
    /// An attempt started and has not ended (the process died in it, or it still runs).
    Started,
    Ended(StepEnd),
    UndoStarted,
    Undone,
    UndoFailed,
    /// Its undo was aborted or interrupted: what the step did is still in effect.
    UndoStopped,
}

/// One step, as the ledger knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLine {
    pub id: String,
    pub state: StepState,
    /// Attempts at its forward body in the latest process.
    pub attempts: u32,
    /// Time its attempts took in the latest process.
    pub duration_ms: u64,
    /// Why it failed (or was not run) in the latest process; cleared when it completes.
    pub error: Option<String>,
    /// Whether the latest process did anything with it.
    pub touched: bool,
}

/// One write of a step, on one target, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Write {
    pub step: String,
    pub function: String,
    pub target: String,
    /// The change, as journalled (secrets as fingerprints): a retry that makes the same
    /// change to a target where it was applied skips it.
    pub detail: Value,
    #[serde(rename = "state")]
    pub outcome: WriteOutcome,
    /// The change request it was filed as, when it is `Pending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filed: Option<Filed>,
    /// What the call asked to keep of the vendor's answer (`record:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Value>,
    /// When its outcome was recorded (the journal line's time; until then, the last line
    /// its process recorded since it was sent, as it may have landed any time then): what
    /// a read back of a target that never gives its value (a GitHub secret) compares the
    /// target's own date with.
    #[serde(skip)]
    pub at: Option<String>,
    /// Its place among the run's writes (0 first): what came after what, once an undo has
    /// dropped some of them.
    #[serde(skip)]
    pub seq: usize,
}

impl Write {
    /// Whether this write sets all `w` set on its target: every var of a config write; for
    /// a write not per var, the same named thing (a GitHub repository holds many secrets).
    pub fn covers(&self, w: &Write) -> bool {
        match (
            w.detail["vars"].as_object(),
            self.detail["vars"].as_object(),
        ) {
            (Some(mine), Some(theirs)) => mine.keys().all(|k| theirs.contains_key(k)),
            (None, _) => w.detail["name"] == self.detail["name"],
            (Some(_), None) => false,
        }
    }

    /// A write just sent: its outcome not known yet.
    fn sent(w: &WriteSent) -> Write {
        Write {
            step: w.step.clone(),
            function: w.function.clone(),
            target: w.target.clone(),
            detail: w.detail.clone(),
            outcome: WriteOutcome::Unknown,
            filed: None,
            answer: None,
            at: None,
            seq: 0,
        }
    }

    /// A removal of a leftover (`infisical::delete_secret` with `cleanup: true`): no undo
    /// puts it back, and no one should.
    pub fn is_cleanup(&self) -> bool {
        self.detail["cleanup"] == true
    }
}

/// A process that worked on the run: the one that started it, then each that took it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub entry: Entry,
    pub actor: String,
    pub host: String,
    /// The login the state database authenticated for it (none on files).
    pub login: Option<String>,
    /// Its process id on `host`.
    pub pid: u32,
    /// A REPL session of it ended (`:quit`, the end of its input): ended, not died.
    pub repl_ended: bool,
    pub started_at: String,
    /// How it ended; `None` while it runs, or when it died.
    pub finished: Option<RunFinished>,
    pub finished_at: Option<String>,
    /// Time in steps.
    pub step_ms: u64,
    /// It undid at least one step (a rollback, or a failed step undone).
    pub undid: bool,
    /// It started a step or an undo: not a process that only looked (a refused resume, a
    /// declined rollback, a REPL attached and left).
    pub acted: bool,
    /// Writes it sent undoing a step that may have taken effect (not refused, not known
    /// unsent): an undo that stopped after one may have put something back.
    pub undo_sent: u32,
}

impl Process {
    /// It ended without starting a step or an undo and without settling the run (a
    /// rollback nobody confirmed, a refused resume): the run stands as it was before it. One
    /// that found every step done and recorded the run as succeeded settled it.
    pub fn changed_nothing(&self) -> bool {
        !self.acted
            && matches!(
                self.ended(),
                Some(RunStatus::Aborted | RunStatus::Failed | RunStatus::Interrupted)
            )
    }

    pub fn ended(&self) -> Option<RunStatus> {
        self.finished.as_ref().map(|f| f.status)
    }
}

/// Something the evidence lists, with when it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Happened {
    Step(StepFinished),
    Write {
        sent: WriteSent,
        outcome: WriteOutcome,
    },
    Undo(UndoFinished),
    Approval(Approval),
    Decision(Decision),
    /// A write a vendor read showed did not take effect (`Holds::Refuted`).
    Refuted(crate::events::Refreshed),
    /// What an undo left at a vendor on purpose.
    Kept(crate::events::Kept),
}

/// Why the latest process stopped at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub step: String,
    pub error: String,
}

/// A run, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    pub run_id: String,
    pub start: RunStarted,
    pub started_at: String,
    /// The process that started the run, then every later one, in order.
    pub processes: Vec<Process>,
    /// Every step seen, in the order first seen.
    pub steps: Vec<StepLine>,
    /// `ctx` after the last completed step (or undo).
    pub ctx: Option<Value>,
    pub last_step: Option<String>,
    /// Every write of the run not undone since, in order.
    pub writes: Vec<Write>,
    /// What `--dry-run` recorded instead of performing.
    pub planned: Vec<WritePlanned>,
    /// The vendors that answered as simulators.
    pub simulators: Vec<String>,
    pub repl_ended: bool,
    /// Set when `runbook abandon` ended the run.
    pub abandoned: Option<crate::events::Abandoned>,
    /// What undos left at the vendors on purpose (`ctx.leave`), once each: counted when
    /// the undo that said it completed.
    pub kept: Vec<crate::events::Kept>,
    /// What the undo running now said it leaves, until it completes.
    kept_pending: Vec<crate::events::Kept>,
    /// Targets a rollback's refresh found changed since the run wrote them: left alone.
    pub left_alone: Vec<crate::events::Refreshed>,
    /// Targets a refresh found holding what this run's own rollback put back.
    pub restored: Vec<crate::events::Refreshed>,
    /// Writes of undos that have not completed, in order: what this run's rollback may
    /// already have put back when it stopped part way.
    pub undo_writes: Vec<Write>,
    /// Steps, writes, undos, approvals and decisions with their times, for the evidence.
    pub history: Vec<(String, Happened)>,
    /// Why the latest process stopped at a step, if it did and the step did not later pass.
    pub stop: Option<Stop>,
    /// Writes sent and not settled yet: (index in `writes`, or none inside an undo).
    open: Vec<(WriteSent, Option<usize>)>,
    /// Cleanups (a staging copy removed) of steps undone since: no undo puts them back, so
    /// what they removed stays removed (team review: a rollback's summary listed a staging
    /// copy propagate's cleanup had removed, once propagate was undone).
    cleaned: Vec<Write>,
    /// How many writes were sent, for `Write::seq`.
    sent_count: usize,
    undoing: Option<String>,
    /// The process (its count in `processes`) that sent the writes in `open`.
    open_by: usize,
}

impl Ledger {
    /// The writes sent whose outcome is not recorded yet (a call still out, or abandoned
    /// by Ctrl-C): `function on target` each.
    pub fn sent_unsettled(&self) -> Vec<String> {
        self.open
            .iter()
            .map(|(w, _)| format!("{} on {}", w.function, w.target))
            .collect()
    }

    /// Whether any process of the run sent a write (settled, in doubt or undone since).
    pub fn has_sent(&self) -> bool {
        !self.open.is_empty()
            || !self.writes.is_empty()
            || !self.undo_writes.is_empty()
            || self
                .history
                .iter()
                .any(|(_, h)| matches!(h, Happened::Write { .. }))
    }

    /// A ledger from its first event; `None` unless that is `run_started`.
    pub fn begin(first: &Stamped) -> Option<Ledger> {
        let Event::RunStarted(start) = &first.event else {
            return None;
        };
        Some(Ledger {
            run_id: first.run_id.clone(),
            start: start.clone(),
            started_at: first.time.clone(),
            processes: vec![Process {
                entry: start.entry,
                actor: start.actor.clone(),
                host: start.host.clone(),
                login: start.login.clone(),
                pid: start.pid,
                repl_ended: false,
                started_at: first.time.clone(),
                finished: None,
                finished_at: None,
                step_ms: 0,
                undid: false,
                undo_sent: 0,
                acted: false,
            }],
            steps: Vec::new(),
            ctx: None,
            last_step: None,
            writes: Vec::new(),
            planned: Vec::new(),
            simulators: Vec::new(),
            repl_ended: false,
            left_alone: Vec::new(),
            restored: Vec::new(),
            undo_writes: Vec::new(),
            abandoned: None,
            kept: Vec::new(),
            kept_pending: Vec::new(),
            history: Vec::new(),
            stop: None,
            open: Vec::new(),
            cleaned: Vec::new(),
            sent_count: 0,
            undoing: None,
            open_by: 0,
        })
    }

    /// Folds a whole run; `None` when it has no start.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Stamped>) -> Option<Ledger> {
        let mut events = events.into_iter();
        let first = events.find(|e| matches!(e.event, Event::RunStarted(_)))?;
        let mut ledger = Ledger::begin(first)?;
        for e in events {
            ledger.apply(e);
        }
        Some(ledger)
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &Stamped) {
        let t = &e.time;
        // A write whose answer is not in yet may land at the vendor any time its process
        // still lives: each later line of that process moves its time on (GitHub's read-back
        // compares the secret's date with it; a PUT paced past the line's time, then cut
        // off, read as someone else's change and was left in place).
        if !matches!(e.event, Event::RunResumed(_)) && self.open_by == self.processes.len() {
            for i in self.open.iter().filter_map(|(_, i)| *i) {
                if let Some(w) = self.writes.get_mut(i) {
                    w.at = Some(t.to_string());
                }
            }
        }
        match &e.event {
            Event::RunStarted(_) => {}
            Event::RunResumed(r) => self.take_over(r, t),
            Event::RunFinished(f) => {
                if f.status == RunStatus::Succeeded {
                    self.stop = None;
                }
                let p = self.latest();
                p.finished = Some(f.clone());
                p.finished_at = Some(t.clone());
            }
            Event::LeaseTaken(_) | Event::LockBroken { .. } | Event::RollbackBlocked { .. } => {}
            Event::LeaseLost(l) => self.blocked(&l.step, &l.why),
            Event::StepStarted(s) => self.step_started(s),
            Event::StepFinished(f) => self.step_finished(f, t),
            Event::Write(w) => self.write_sent(w, t),
            Event::WriteOutcome(o) => self.write_settled(o, t),
            Event::WritePlanned(p) => self.planned.push(p.clone()),
            Event::UndoStarted { step } => {
                self.latest().acted = true;
                self.undoing = Some(step.clone());
                self.line(step).state = StepState::UndoStarted;
            }
            Event::UndoFinished(u) => self.undo_finished(u, t),
            Event::Decision(d) => self
                .history
                .push((t.clone(), Happened::Decision(d.clone()))),
            Event::Approval(a) => self.approval(a, t),
            Event::SimulatorAnswered { vendor } => {
                if !self.simulators.contains(vendor) {
                    self.simulators.push(vendor.clone());
                }
            }
            Event::ReplEnded { .. } => {
                self.repl_ended = true;
                self.latest().repl_ended = true;
            }
            Event::Abandoned(a) => self.abandoned = Some(a.clone()),
            Event::Kept(k) => self.kept_pending.push(k.clone()),
            // What the operator said was done and the vendor reads was not: out of what is
            // in effect, and said where it happened.
            Event::Refreshed(r) if r.holds == crate::events::Holds::Refuted => {
                self.writes.retain(|w| {
                    !(w.step == r.step && w.function == r.function && w.target == r.target)
                });
                self.history.push((t.clone(), Happened::Refuted(r.clone())));
            }
            // The latest read of a target is what counts: a later refresh may find it back.
            Event::Refreshed(r) => {
                let other = |l: &crate::events::Refreshed| {
                    !(l.function == r.function && l.target == r.target)
                };
                self.left_alone.retain(other);
                self.restored.retain(other);
                match r.holds {
                    crate::events::Holds::Changed
                    | crate::events::Holds::NotShown
                    | crate::events::Holds::Before => self.left_alone.push(r.clone()),
                    crate::events::Holds::Restored => self.restored.push(r.clone()),
                    _ => {}
                }
            }
        }
    }

    fn latest(&mut self) -> &mut Process {
        // `begin` always pushes the first process, so there is a last one.
        let last = self.processes.len() - 1;
        &mut self.processes[last]
    }

    fn take_over(&mut self, r: &RunResumed, t: &str) {
        self.processes.push(Process {
            entry: r.entry,
            actor: r.actor.clone(),
            host: r.host.clone(),
            login: r.login.clone(),
            pid: r.pid,
            repl_ended: false,
            started_at: t.to_string(),
            finished: None,
            finished_at: None,
            step_ms: 0,
            undid: false,
            undo_sent: 0,
            acted: false,
        });
        self.stop = None;
        // An undo that was running died with its process: what this one writes is its own
        // (the undo's writes so far stay, for the next rollback).
        self.undoing = None;
        self.kept_pending.clear();
        for s in &mut self.steps {
            s.attempts = 0;
            s.duration_ms = 0;
            s.error = None;
            s.touched = false;
        }
    }

    /// The step's line, added when first seen.
    fn line(&mut self, id: &str) -> &mut StepLine {
        let i = match self.steps.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                self.steps.push(StepLine {
                    id: id.to_string(),
                    state: StepState::Blocked,
                    attempts: 0,
                    duration_ms: 0,
                    error: None,
                    touched: false,
                });
                self.steps.len() - 1
            }
        };
        let line = &mut self.steps[i];
        line.touched = true;
        line
    }

    fn blocked(&mut self, step: &str, why: &str) {
        let line = self.line(step);
        line.error = Some(why.to_string());
        if line.state == StepState::Started {
            line.state = StepState::Blocked;
        }
        self.stop = Some(Stop {
            step: step.to_string(),
            error: why.to_string(),
        });
    }

    fn step_started(&mut self, s: &StepStarted) {
        self.latest().acted = true;
        self.undoing = None;
        self.open.clear();
        self.last_step = Some(s.step.clone());
        let line = self.line(&s.step);
        line.state = StepState::Started;
        line.attempts += 1;
    }

    fn step_finished(&mut self, f: &StepFinished, t: &str) {
        self.open.clear();
        let ms = f.duration_ms.unwrap_or(0);
        self.latest().step_ms += ms;
        let line = self.line(&f.step);
        line.state = StepState::Ended(f.outcome);
        line.duration_ms += ms;
        line.error = match f.outcome {
            StepEnd::Completed => None,
            StepEnd::Interrupted => Some("interrupted".into()),
            StepEnd::Failed | StepEnd::Aborted => f.error.clone(),
        };
        match f.outcome {
            StepEnd::Completed => {
                self.ctx = f.ctx.clone();
                if self.stop.as_ref().is_some_and(|s| s.step == f.step) {
                    self.stop = None;
                }
            }
            StepEnd::Failed => {
                // What the failed step learned (journals before this carry none).
                if f.ctx.is_some() {
                    self.ctx = f.ctx.clone();
                }
                self.stop = Some(Stop {
                    step: f.step.clone(),
                    error: f.error.clone().unwrap_or_default(),
                })
            }
            StepEnd::Aborted | StepEnd::Interrupted => {}
        }
        self.history
            .push((t.to_string(), Happened::Step(f.clone())));
    }

    fn write_sent(&mut self, w: &WriteSent, t: &str) {
        // Until its outcome is recorded, when it was sent (a write whose answer never came
        // is read back against that).
        let sent = Write {
            at: Some(t.to_string()),
            seq: self.sent_count,
            ..Write::sent(w)
        };
        self.sent_count += 1;
        // Writes inside an undo are not effects of the step being undone.
        if w.undo || self.undoing.is_some() {
            // An undo that sent a write and then stopped may have put something back: the
            // rotation is half undone, as after an undo that finished (unless its outcome
            // says the write never took effect).
            self.latest().undo_sent += 1;
            self.undo_writes.push(sent);
            self.open.push((w.clone(), None));
            return;
        }
        self.writes.push(sent);
        self.open.push((w.clone(), Some(self.writes.len() - 1)));
        self.open_by = self.processes.len();
    }

    fn write_settled(&mut self, o: &WriteSettled, t: &str) {
        let found = self.open.iter().rposition(|(w, _)| {
            w.step == o.step && w.function == o.function && w.target == o.target
        });
        let (sent, index) = match found {
            Some(i) => self.open.remove(i),
            // An outcome without its intent (a journal cut by hand): the write it names.
            None => {
                let at = self.writes.iter().rposition(|w| {
                    w.step == o.step && w.function == o.function && w.target == o.target
                });
                let sent = WriteSent {
                    step: o.step.clone(),
                    function: o.function.clone(),
                    target: o.target.clone(),
                    detail: at
                        .map(|i| self.writes[i].detail.clone())
                        .unwrap_or_default(),
                    idempotent: false,
                    undo: o.undo,
                };
                (sent, if o.undo { None } else { at })
            }
        };
        if index.is_none() && !o.outcome.may_have_applied() {
            let p = self.latest();
            p.undo_sent = p.undo_sent.saturating_sub(1);
        }
        // A change request found closed without a merge: every write still waiting on it
        // was refused, not pending (rollback, abandon and the run's changes say so).
        if let (WriteOutcome::Failed, Some(refused)) = (o.outcome, &o.filed) {
            for w in self.writes.iter_mut().chain(self.undo_writes.iter_mut()) {
                if w.outcome == WriteOutcome::Pending && w.filed.as_ref() == Some(refused) {
                    w.outcome = WriteOutcome::Failed;
                }
            }
        }
        if let Some(w) = index.and_then(|i| self.writes.get_mut(i)) {
            w.outcome = o.outcome;
            w.filed = o.filed.clone();
            w.answer = o.answer.clone();
            w.at = Some(t.to_string());
        } else if let Some(w) = self.undo_writes.iter_mut().rev().find(|w| {
            w.step == o.step
                && w.function == o.function
                && w.target == o.target
                && w.outcome == WriteOutcome::Unknown
        }) {
            w.outcome = o.outcome;
            w.filed = o.filed.clone();
            w.at = Some(t.to_string());
        }
        if index.is_some() {
            self.history.push((
                t.to_string(),
                Happened::Write {
                    sent,
                    outcome: o.outcome,
                },
            ));
        }
    }

    fn undo_finished(&mut self, u: &UndoFinished, t: &str) {
        self.undoing = None;
        self.open.clear();
        let done = u.outcome == StepEnd::Completed;
        self.line(&u.step).state = match u.outcome {
            StepEnd::Completed => StepState::Undone,
            StepEnd::Failed => StepState::UndoFailed,
            StepEnd::Aborted | StepEnd::Interrupted => StepState::UndoStopped,
        };
        // What the undo said it leaves holds once it completed; one that failed or stopped
        // may not have got there.
        let said: Vec<crate::events::Kept> = std::mem::take(&mut self.kept_pending)
            .into_iter()
            .filter(|k| k.step == u.step)
            .collect();
        if done {
            for k in said {
                if !self.kept.contains(&k) {
                    self.kept.push(k.clone());
                }
                self.history.push((t.to_string(), Happened::Kept(k)));
            }
        }
        if done {
            self.latest().undid = true;
            self.ctx = u.ctx.clone();
            // Undone: what the step wrote is no longer in effect, but for what its cleanups
            // removed, which no undo puts back.
            let cleaned: Vec<Write> = self
                .writes
                .iter()
                .filter(|w| w.step == u.step && w.is_cleanup())
                .cloned()
                .collect();
            self.cleaned.extend(cleaned);
            self.writes.retain(|w| w.step != u.step);
            self.undo_writes.retain(|w| w.step != u.step);
        }
        self.history
            .push((t.to_string(), Happened::Undo(u.clone())));
    }

    fn approval(&mut self, a: &Approval, t: &str) {
        match a.status {
            ApprovalStatus::Denied => {
                let why = format!(
                    "{} denied the approval: {}",
                    a.approver.as_deref().unwrap_or("?"),
                    a.reason.as_deref().unwrap_or("")
                );
                self.blocked(&a.step, &why);
            }
            ApprovalStatus::Timeout => {
                let within = a
                    .timeout_secs
                    .map(|s| crate::interrupt::human(std::time::Duration::from_secs(s)))
                    .unwrap_or_else(|| "the time allowed".into());
                self.blocked(
                    &a.step,
                    &format!("no approval within {within} (recorded as timeout, not as denied)"),
                );
            }
            ApprovalStatus::Refused => {
                let why = format!(
                    "the approval was refused: {}",
                    a.reason.as_deref().unwrap_or("")
                );
                self.blocked(&a.step, &why);
            }
            ApprovalStatus::Requested | ApprovalStatus::Approved => {}
        }
        self.history
            .push((t.to_string(), Happened::Approval(a.clone())));
    }

    /// How the last process that worked on the run ended: `None` while it runs or after it
    /// died without recording an end.
    pub fn last_end(&self) -> Option<RunStatus> {
        self.processes.last().and_then(Process::ended)
    }

    /// How the run's own process ended.
    pub fn outcome(&self) -> Option<RunStatus> {
        self.processes.first().and_then(Process::ended)
    }

    /// The processes after the first: resume, rollback and REPL take-overs.
    pub fn takeovers(&self) -> &[Process] {
        self.processes.get(1..).unwrap_or_default()
    }

    /// Whether the rotation is settled: it succeeded (itself or through a resume), or a
    /// rollback undid it. The latest of those counts; a refused attempt does not, but one
    /// that undid steps and then stopped leaves the rotation half undone: not settled.
    pub fn settled(&self) -> Option<RunStatus> {
        self.settled_at().map(|(status, _)| status)
    }

    /// `settled`, with the time the settling process ended.
    pub fn settled_at(&self) -> Option<(RunStatus, &str)> {
        let mut settled = None;
        for p in &self.processes {
            if let (Some(f), Some(at)) = (&p.finished, &p.finished_at) {
                if matches!(
                    f.status,
                    RunStatus::Succeeded | RunStatus::RolledBack | RunStatus::PartlyRolledBack
                ) {
                    settled = Some((f.status, at.as_str()));
                    continue;
                }
            }
            if p.undid || p.undo_sent > 0 {
                settled = None;
            }
        }
        settled
    }

    /// Whether it rehearsed: against the in-process sandbox, or a vendor answered as a
    /// simulator.
    pub fn is_rehearsal(&self) -> bool {
        self.start.target == Target::Sandbox || !self.simulators.is_empty()
    }

    /// A rotation that counts for `due`: real writes against the real vendors.
    pub fn is_production(&self) -> bool {
        self.start.target == Target::Production
            && self.start.effect == crate::run::Effect::Apply
            && !self.is_rehearsal()
    }

    /// The target as `runs` shows it: `rehearsal` when a vendor answered as a simulator.
    pub fn target_label(&self) -> &'static str {
        if self.start.target != Target::Sandbox && !self.simulators.is_empty() {
            "rehearsal"
        } else {
            self.start.target.as_str()
        }
    }

    pub fn state_of(&self, step: &str) -> Option<StepState> {
        self.step(step).map(|s| s.state)
    }

    pub fn step(&self, id: &str) -> Option<&StepLine> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn completed(&self, step: &str) -> bool {
        self.state_of(step) == Some(StepState::Ended(StepEnd::Completed))
    }

    /// The writes of a step that are in effect (not undone since).
    pub fn writes_of(&self, step: &str) -> Vec<Write> {
        self.writes
            .iter()
            .filter(|w| w.step == step)
            .cloned()
            .collect()
    }

    /// Whether a write of the step in effect may or may not have taken effect (its answer
    /// was lost, or it waits for approval): only a check, or the operator, can tell.
    pub fn in_doubt(&self, step: &str) -> bool {
        self.writes
            .iter()
            .any(|w| w.step == step && w.outcome.uncertain())
    }

    /// Whether this step already applied this very change to this target.
    pub fn already_applied(
        &self,
        step: &str,
        function: &str,
        target: &str,
        detail: &Value,
    ) -> bool {
        self.writes.iter().any(|w| {
            w.step == step
                && w.function == function
                && w.target == target
                && &w.detail == detail
                && w.outcome == WriteOutcome::Applied
        })
    }

    /// The change request a write of `function` on `target` was filed as and that no later
    /// write of the same change has seen applied: its journalled detail and the request.
    /// An unfinished undo's writes count too (they come after the step's own): a rollback
    /// run again waits on the request its undo filed.
    pub fn open_request(&self, function: &str, target: &str) -> Option<(Value, Filed)> {
        let mut open: Option<(Value, Filed)> = None;
        for w in self.writes.iter().chain(&self.undo_writes) {
            if w.function != function || w.target != target {
                continue;
            }
            match (&w.outcome, &w.filed) {
                (WriteOutcome::Pending, Some(f)) => open = Some((w.detail.clone(), f.clone())),
                // The request was found closed without being merged: refused, not open.
                (WriteOutcome::Failed, Some(f)) if open.as_ref().is_some_and(|(_, o)| o == f) => {
                    open = None
                }
                (WriteOutcome::Applied, _)
                    if open.as_ref().is_some_and(|(d, _)| *d == w.detail) =>
                {
                    open = None
                }
                _ => {}
            }
        }
        open
    }

    /// The writes in effect that may have changed a vendor: what the run changed.
    /// Whether the run stopped with changes in effect that nothing settled: it neither
    /// succeeded, nor was rolled back or abandoned. An in-process rehearsal (its world ended
    /// with it), a dry run and a REPL session never are.
    pub fn is_unfinished(&self) -> bool {
        self.start.target != Target::Sandbox
            && self.start.effect == crate::run::Effect::Apply
            && self.start.entry != Entry::Repl
            && self.settled().is_none()
            && self.abandoned.is_none()
            && self.has_changes()
    }

    /// How the latest process of the run ended, in words.
    pub fn last_status(&self) -> &'static str {
        match self.processes.last().and_then(Process::ended) {
            Some(s) => s.as_str(),
            None => "died without recording an end",
        }
    }

    /// Whether a rollback's refresh found `target` changed since this run wrote it there:
    /// by any of the vendor's functions, for an undo may reach the target with another (a
    /// staging's undo deletes what the step set).
    pub fn left_alone(&self, function: &str, target: &str) -> bool {
        let vendor = |f: &str| f.split_once("::").map_or("", |(v, _)| v).to_string();
        self.left_alone
            .iter()
            .any(|r| vendor(&r.function) == vendor(function) && r.target == target)
    }

    /// The targets left alone because someone changed them since the run: what makes a
    /// rollback partial (a write that did not show, or did not land, is nobody's change).
    pub fn changed_by_others(&self) -> impl Iterator<Item = &crate::events::Refreshed> {
        self.left_alone
            .iter()
            .filter(|r| r.holds == crate::events::Holds::Changed)
    }

    /// The change requests unfinished undos filed that are still open: each takes effect if
    /// an approver merges it, whatever the run does next.
    pub fn undo_requests(&self) -> Vec<&Write> {
        self.undo_writes
            .iter()
            .filter(|w| {
                w.outcome == WriteOutcome::Pending
                    && self
                        .open_request(&w.function, &w.target)
                        .is_some_and(|(_, f)| w.filed.as_ref() == Some(&f))
            })
            .collect()
    }

    /// The steps whose undo completed. In a run not settled, a rollback of it stopped
    /// between two undos (the process died, the machine lost power): what those steps did
    /// is undone, what the steps before them did is not.
    pub fn undone(&self) -> Vec<&StepLine> {
        self.steps
            .iter()
            .filter(|s| s.state == StepState::Undone)
            .collect()
    }

    /// The steps whose undo started and did not complete (stopped, failed, or cut off): a
    /// rollback of this run stopped part way.
    pub fn unfinished_undos(&self) -> Vec<&StepLine> {
        self.steps
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    StepState::UndoStarted | StepState::UndoStopped | StepState::UndoFailed
                )
            })
            .collect()
    }

    /// The writes of unfinished undos to `target` by `function` that may have applied,
    /// newest first: what this run's rollback may have put back there.
    pub fn undo_writes_to<'a>(
        &'a self,
        function: &'a str,
        target: &'a str,
    ) -> impl Iterator<Item = &'a Write> + 'a {
        self.undo_writes.iter().rev().filter(move |w| {
            w.function == function && w.target == target && w.outcome.may_have_applied()
        })
    }

    /// Whether any write of the run is in effect (`changes` without the copies).
    pub fn has_changes(&self) -> bool {
        self.writes.iter().any(|w| w.outcome.may_have_applied())
    }

    /// The writes in effect: those that may have applied, less those an undo of their step
    /// (one that stopped part way) put back, its write to the same target answered applied.
    pub fn changes(&self) -> Vec<Write> {
        self.writes
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                w.outcome.may_have_applied() && !self.put_back(w) && !self.deleted_since(*i, w)
            })
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// Whether a later write of the run deleted `w`'s target (the same module's delete,
    /// the same target) and the vendor took it: a staging copy removed by a later step is
    /// not left in place (author review: the summary listed a secret a later step deleted).
    fn deleted_since(&self, i: usize, w: &Write) -> bool {
        let module = |f: &str| f.split_once("::").map(|(m, _)| m.to_string());
        let deletes = |f: &str| {
            f.split_once("::")
                .is_some_and(|(_, name)| name.starts_with("delete"))
        };
        let removes = |u: &Write| {
            u.target == w.target
                && module(&u.function) == module(&w.function)
                && deletes(&u.function)
                && u.outcome == WriteOutcome::Applied
        };
        !deletes(&w.function)
            && (self.writes[i + 1..].iter().any(removes)
                || self.cleaned.iter().any(|u| u.seq > w.seq && removes(u)))
    }

    /// Whether an undo of `w`'s step wrote again all `w` set on its target (the same
    /// function, every var or the same secret: a review), and the vendor took it.
    fn put_back(&self, w: &Write) -> bool {
        self.undo_writes.iter().any(|u| {
            u.step == w.step
                && u.function == w.function
                && u.target == w.target
                && u.covers(w)
                && u.outcome == WriteOutcome::Applied
        })
    }

    /// Time in steps of the processes before the latest.
    pub fn earlier_step_ms(&self) -> u64 {
        let n = self.processes.len().saturating_sub(1);
        self.processes[..n].iter().map(|p| p.step_ms).sum()
    }

    /// Time in steps of every process.
    pub fn step_ms(&self) -> u64 {
        self.processes.iter().map(|p| p.step_ms).sum()
    }
}
