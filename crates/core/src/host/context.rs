//! A run as the host functions see it: parts with one job each, built once when the run
//! starts and passed down. `info` says who runs what and how; the `LedgerWriter` records;
//! the `Operator` asks; `Services` reach the vendors; the `Auditor` keeps the audit trail;
//! `Policy` says what the run may reach and must mask; `StepScope` says where the script
//! is. The write path that ties them together is in `writes.rs`.

use super::auditor::Auditor;
use super::operator::Operator;
use super::vendor_call::vendor_error;
use super::{Phase, R};
use crate::ledger::LedgerWriter;
use crate::run::RunInfo;
use crate::sink::Say;
use runbook_vendors::{VendorError, Vendors};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use super::services::Services;

/// What a run is made of that outlives one runbook: the REPL builds a new context from the
/// same parts when it loads another runbook into its session.
#[derive(Clone)]
pub struct RunParts {
    pub info: RunInfo,
    pub say: Say,
    pub services: Rc<Services>,
    pub ledger: Rc<LedgerWriter>,
    pub auditor: Rc<Auditor>,
    /// Where the run's state lives (approvals go there too).
    pub store: crate::store::Store,
}

/// What the run may reach (`http::` egress) and which bulk-read values it must mask: the
/// runbook's declarations, resolved when it is attached.
pub struct Policy {
    pub egress: crate::plan::egress::Egress,
    pub masking: crate::plan::Masking,
}

impl Policy {
    /// The policy `plan` declares, for these params.
    pub fn of(plan: &crate::plan::Plan, params: &serde_json::Value) -> Policy {
        use crate::plan::egress::Egress;
        // The REPL without a runbook declares nothing: its operator is at the keyboard.
        let egress = if plan.steps.is_empty() {
            Egress::unrestricted()
        } else {
            Egress::resolve(&plan.meta().egress, params)
        };
        Policy {
            egress,
            masking: plan.meta().masking.clone(),
        }
    }
}

/// Where the script is (between steps, in a step or its undo, at the REPL prompt) and how
/// many writes the current attempt made.
#[derive(Default)]
pub struct StepScope {
    phase: RefCell<Phase>,
    writes: Cell<usize>,
    /// At the REPL in production, each vendor write is confirmed first (until the operator
    /// says `:confirm always`).
    confirm_repl_writes: Cell<bool>,
    /// At the REPL, the name of the lock of the runbook's rotation: the REPL takes none (it
    /// is for looking around a stuck run too), but a write says when a run holds it.
    rotation: RefCell<Option<String>>,
    /// A run that asks once before its first write (`exec` outside the sandbox) and has not
    /// asked yet: the plan's list of writes is read from the script, which cannot see every
    /// call (a method call, a function pointer), so a write it missed asks here.
    first_write_unasked: Cell<bool>,
}

impl StepScope {
    /// Whether the run's first write is still to be confirmed.
    pub fn first_write_unasked(&self) -> bool {
        self.first_write_unasked.get()
    }

    pub fn set_first_write_unasked(&self, on: bool) {
        self.first_write_unasked.set(on);
    }

    /// Whether a write typed at the REPL asks the operator first.
    pub fn confirm_repl_writes(&self) -> bool {
        self.confirm_repl_writes.get()
    }

    pub fn set_confirm_repl_writes(&self, on: bool) {
        self.confirm_repl_writes.set(on);
    }

    /// The lock of the rotation a REPL session works on, if it has a runbook.
    pub fn rotation(&self) -> Option<String> {
        self.rotation.borrow().clone()
    }

    pub fn set_rotation(&self, lock: Option<String>) {
        *self.rotation.borrow_mut() = lock;
    }

    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    pub fn set(&self, phase: Phase) {
        *self.phase.borrow_mut() = phase;
    }

    /// The step id for audit entries and planned writes.
    pub fn step_name(&self) -> String {
        match &*self.phase.borrow() {
            Phase::Step(s) | Phase::Undo(s) | Phase::Probe(s) => s.clone(),
            Phase::Repl => "repl".into(),
            Phase::Idle => String::new(),
        }
    }

    /// Whether a step's forward body runs (its writes are the step's effects).
    pub fn forward(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Step(_))
    }

    /// Whether a step's undo is running (its writes restore what the step changed).
    pub fn in_undo(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Undo(_))
    }

    /// Whether a read-only probe is running, where writes are refused.
    pub fn probing(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Probe(_))
    }

    pub fn idle(&self) -> bool {
        *self.phase.borrow() == Phase::Idle
    }

    /// Starts counting the writes of a step attempt.
    pub fn reset_writes(&self) {
        self.writes.set(0);
    }

    pub fn count_write(&self) {
        self.writes.set(self.writes.get() + 1);
    }

    pub fn writes(&self) -> usize {
        self.writes.get()
    }
}

pub struct RunContext {
    parts: RunParts,
    operator: Operator,
    policy: Policy,
    scope: StepScope,
    /// Reads `run::together` started ahead.
    ahead: super::together::Ahead,
}

impl RunContext {
    pub fn new(parts: RunParts, operator: Operator, policy: Policy) -> Rc<RunContext> {
        Rc::new(RunContext {
            parts,
            operator,
            policy,
            scope: StepScope::default(),
            ahead: Default::default(),
        })
    }

    pub(crate) fn ahead(&self) -> &super::together::Ahead {
        &self.ahead
    }

    pub fn parts(&self) -> &RunParts {
        &self.parts
    }

    pub fn info(&self) -> &RunInfo {
        &self.parts.info
    }

    pub fn say(&self) -> &Say {
        &self.parts.say
    }

    pub fn dry_run(&self) -> bool {
        self.parts.info.modes.is_dry_run()
    }

    pub fn services(&self) -> &Services {
        &self.parts.services
    }

    pub fn ledger(&self) -> &LedgerWriter {
        &self.parts.ledger
    }

    pub fn auditor(&self) -> &Auditor {
        &self.parts.auditor
    }

    /// The operator: asking them anything may change what a vendor holds (they act on a
    /// dashboard), so `run::together` does not use a read sent before the question.
    pub fn operator(&self) -> &Operator {
        self.ahead.note_effect(super::together::Reach::ALL);
        &self.operator
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn scope(&self) -> &StepScope {
        &self.scope
    }

    pub fn set_phase(&self, phase: Phase) {
        self.scope.set(phase);
    }

    /// The step id for audit entries and planned writes.
    pub(crate) fn step_name(&self) -> String {
        self.scope.step_name()
    }

    /// Vendor and operator calls belong in steps.
    pub(crate) fn require_step(&self, function: &str) -> R<()> {
        if self.scope.idle() {
            return Err(super::top_level(function));
        }
        Ok(())
    }

    /// The vendor clients, or an error naming the missing configuration.
    pub fn vendors(&self) -> R<Vendors> {
        self.services()
            .vendors()
            .cloned()
            .map_err(|e| vendor_error(&e))
    }

    /// Runs a vendor call to completion, shown as a call in progress; Ctrl-C abandons it.
    /// A vendor that answered as a simulator is recorded: the run is a rehearsal.
    pub fn block<T>(&self, label: &str, fut: impl Future<Output = Result<T, VendorError>>) -> R<T> {
        // `run::together`'s first pass starts only the reads it knows; anything else waits
        // for the second.
        if self.starting_ahead() {
            return Err(Self::stop_starting());
        }
        let done = {
            let _call = self.say().call(label);
            self.services().runtime.block_on(fut)
        };
        self.note_simulators();
        match done {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(vendor_error(&e)),
            Err(why) => Err(super::vendor_call::stopped(why)),
        }
    }

    /// Records each vendor newly seen answering as a simulator (an in-process sandbox is a
    /// rehearsal already, and says nothing more).
    pub(crate) fn note_simulators(&self) {
        let Some(vendors) = self.services().built_vendors() else {
            return;
        };
        let seen = vendors.transport().new_simulators();
        if self.info().modes.target == crate::run::Target::Sandbox {
            return;
        }
        for vendor in seen {
            self.ledger()
                .record(crate::events::Event::SimulatorAnswered { vendor });
        }
    }

    /// A run that goes on with another run's clients (the REPL's next run after `:load`):
    /// every vendor seen answering as a simulator so far is this run's evidence too, since
    /// the clients report each vendor once.
    pub fn note_simulators_seen(&self) {
        let Some(vendors) = self.services().built_vendors() else {
            return;
        };
        if self.info().modes.target == crate::run::Target::Sandbox {
            return;
        }
        for vendor in vendors.transport().simulators_seen() {
            self.ledger()
                .record(crate::events::Event::SimulatorAnswered { vendor });
        }
    }

    /// The write path of this run (see `writes.rs`).
    pub(crate) fn writes(&self) -> super::writes::Writes<'_> {
        super::writes::Writes::of(self)
    }
}
