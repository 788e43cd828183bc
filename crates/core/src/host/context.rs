//! A run as the host functions see it: who runs what and how, the vendor clients, the
//! journal, the audit log and the operator, built once when the run starts.

use super::vendor_call::{interrupted, vendor_error};
use super::{Effect, Phase, PlannedWrite, R};
use crate::audit::{AuditLog, Event};
use crate::journal::{Journal, Record};
use crate::prompt::Prompter;
use crate::run::{Mode, RunInfo};
use crate::value::throw;
use rhai::Dynamic;
use runbook_vendors::{VendorError, Vendors};
use std::cell::{Cell, RefCell, RefMut};
use std::future::Future;
use std::rc::Rc;

use super::services::Services;

/// What a run is made of; the REPL builds a new context from the same parts when it loads
/// another runbook into its session.
#[derive(Clone)]
pub struct RunParts {
    pub info: RunInfo,
    pub services: Rc<Services>,
    pub journal: Rc<Journal>,
    pub audit: AuditLog,
}

pub struct RunContext {
    parts: RunParts,
    prompter: RefCell<Prompter>,
    phase: RefCell<Phase>,
    /// Writes `--dry-run` recorded instead of performing.
    planned: RefCell<Vec<PlannedWrite>>,
    /// Mutating calls performed in the current step (rollback undoes a failed step only if
    /// it wrote something).
    writes_in_step: Cell<usize>,
    /// The audit webhook failed once in this run.
    sink_down: Cell<bool>,
}

impl RunContext {
    pub fn new(parts: RunParts, prompter: Prompter) -> Rc<RunContext> {
        Rc::new(RunContext {
            parts,
            prompter: RefCell::new(prompter),
            phase: RefCell::new(Phase::Idle),
            planned: RefCell::new(Vec::new()),
            writes_in_step: Cell::new(0),
            sink_down: Cell::new(false),
        })
    }

    pub fn parts(&self) -> &RunParts {
        &self.parts
    }

    pub fn info(&self) -> &RunInfo {
        &self.parts.info
    }

    pub fn mode(&self) -> Mode {
        self.parts.info.mode
    }

    pub fn dry_run(&self) -> bool {
        self.mode().is_dry_run()
    }

    pub fn services(&self) -> &Services {
        &self.parts.services
    }

    pub fn journal(&self) -> &Journal {
        &self.parts.journal
    }

    pub(crate) fn audit_log(&self) -> &AuditLog {
        &self.parts.audit
    }

    pub fn prompter(&self) -> RefMut<'_, Prompter> {
        self.prompter.borrow_mut()
    }

    pub fn set_phase(&self, phase: Phase) {
        *self.phase.borrow_mut() = phase;
    }

    /// The step id for audit entries and planned writes.
    pub(crate) fn step_name(&self) -> String {
        match &*self.phase.borrow() {
            Phase::Step(s) | Phase::Undo(s) => s.clone(),
            Phase::Repl => "repl".into(),
            Phase::Idle => String::new(),
        }
    }

    /// Vendor and operator calls belong in steps.
    pub(crate) fn require_step(&self, function: &str) -> R<()> {
        if *self.phase.borrow() == Phase::Idle {
            return Err(super::top_level(function));
        }
        Ok(())
    }

    /// Starts counting the writes of a step attempt.
    pub(crate) fn reset_writes(&self) {
        self.writes_in_step.set(0);
    }

    pub(crate) fn writes_in_step(&self) -> usize {
        self.writes_in_step.get()
    }

    pub fn planned_writes(&self) -> Vec<PlannedWrite> {
        self.planned.borrow().clone()
    }

    pub(crate) fn has_planned_writes(&self) -> bool {
        !self.planned.borrow().is_empty()
    }

    /// Appends a record to the run's journal.
    pub fn record(&self, record: Record) {
        self.parts.journal.record(record);
    }

    /// Records a write that `--dry-run` skips, and says so.
    pub(crate) fn record_planned(
        &self,
        function: &str,
        effect: Effect,
        target: &str,
        mut detail: serde_json::Value,
    ) {
        runbook_secret::redact_json(&mut detail);
        crate::ui::progress(&format!("    [dry-run] would call {function} on {target}"));
        self.planned.borrow_mut().push(PlannedWrite {
            step: self.step_name(),
            function: function.to_string(),
            effect,
            target: target.to_string(),
            detail,
        });
    }

    /// Appends an audit entry for this run.
    pub(crate) fn audit_event(
        &self,
        action: &str,
        context: serde_json::Value,
    ) -> crate::error::Result<()> {
        let info = self.info();
        let entry = self.parts.audit.append(&Event {
            actor: info.actor.clone(),
            run_id: info.run_id.clone(),
            runbook: info.runbook_id.clone(),
            step: self.step_name(),
            action: action.to_string(),
            mode: info.mode,
            context,
        })?;
        self.audit_sink(&entry);
        Ok(())
    }

    /// The optional second sink: `RUNBOOK_AUDIT_WEBHOOK` receives each entry as JSON (retried
    /// like any idempotent call). The local entry is already written; a failing sink only warns.
    fn audit_sink(&self, entry: &crate::audit::AuditEntry) {
        let Ok(url) = std::env::var("RUNBOOK_AUDIT_WEBHOOK") else {
            return;
        };
        // After one entry failed (retries included), the rest of the run stays local: a
        // dead sink must not stall a rotation at every step.
        if self.sink_down.get() {
            return;
        }
        let Ok(vendors) = self.services().vendors() else {
            return;
        };
        let body = serde_json::to_value(entry).unwrap_or_default();
        let req = runbook_vendors::Request::new("audit-webhook", reqwest::Method::POST, url)
            .json(body)
            .idempotent(true);
        let transport = vendors.transport().clone();
        let sent = self
            .services()
            .runtime
            .block_on(async move { transport.send(req).await });
        let failure = match sent {
            Ok(Ok(r)) if r.is_success() => return,
            Ok(Ok(r)) => format!("HTTP {}", r.status),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "interrupted".to_string(),
        };
        self.sink_down.set(true);
        crate::ui::err(&format!(
            "warning: the audit webhook did not take entry {} ({failure}); the local audit log has it and every later entry of this run (the webhook is skipped from now on)",
            entry.hash
        ));
    }

    /// The vendor clients, or an error naming the missing configuration.
    pub fn vendors(&self) -> R<Vendors> {
        self.services()
            .vendors()
            .cloned()
            .map_err(|e| vendor_error(&e))
    }

    /// Runs a vendor call to completion with a spinner; Ctrl-C abandons it.
    pub fn block<T>(&self, label: &str, fut: impl Future<Output = Result<T, VendorError>>) -> R<T> {
        let _spinner = crate::ui::Spinner::start(label);
        match self.services().runtime.block_on(fut) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(vendor_error(&e)),
            Err(_) => Err(interrupted()),
        }
    }

    /// Runs a mutating call: under `--dry-run` records it and returns a placeholder; otherwise
    /// counts it for rollback, journals it and writes an audit event with its outcome.
    pub(crate) fn mutate(
        &self,
        function: &str,
        effect: Effect,
        target: &str,
        detail: serde_json::Value,
        call: impl FnOnce() -> R<Dynamic>,
    ) -> R<Dynamic> {
        self.require_step(function)?;
        if self.dry_run() {
            self.record_planned(function, effect, target, detail);
            return Ok(super::Placeholder::of(function));
        }
        self.writes_in_step.set(self.writes_in_step.get() + 1);
        let step = self.step_name();
        self.record(Record::WriteIntent {
            step: step.clone(),
            function: function.to_string(),
            target: target.to_string(),
            detail: detail.clone(),
        });
        let result = call();
        self.record(Record::WriteOutcome {
            step: step.clone(),
            function: function.to_string(),
            target: target.to_string(),
            ok: result.is_ok(),
        });
        crate::hooks::crash_point("inside", &step);
        let mut context = serde_json::json!({
            "function": function,
            "effect": effect.as_str(),
            "target": target,
            "detail": detail,
            "ok": result.is_ok(),
        });
        if let Err(e) = &result {
            context["error"] = runbook_secret::redact(&e.to_string()).into_owned().into();
        }
        if let Err(e) = self.audit_event("host.call", context) {
            crate::ui::err(&format!("warning: could not write the audit log: {e}"));
        }
        result
    }

    /// A script error for an audit log that cannot be written.
    pub(crate) fn audit_failed(e: crate::error::Error) -> Box<rhai::EvalAltResult> {
        throw(
            "usage",
            format!("cannot write the audit log: {e}"),
            Some("check that the state directory (RUNBOOK_STATE_DIR) is writable".into()),
        )
    }
}
