//! A run as the host functions see it: who runs what and how, the vendor clients, the
//! journal, the audit log and the operator, built once when the run starts.

use super::vendor_call::vendor_error;
use super::{Effect, Phase, PlannedWrite, R};
use crate::audit::{AuditLog, Event};
use crate::journal::{Filed, Journal, Record, Write, WriteState};
use crate::prompt::Prompter;
use crate::run::{Mode, RunInfo};
use crate::value::throw;
use rhai::Dynamic;
use runbook_vendors::{VendorError, Vendors};
use std::cell::{Cell, RefCell, RefMut};
use std::future::Future;
use std::rc::Rc;

use super::services::Services;

/// One target of a fan-out: its result, or `None` when an earlier attempt already did it.
pub(crate) type TargetResult<T> = (String, Option<Result<T, VendorError>>);

/// Whether a failed write may still have taken effect: its answer was lost (a timeout or a
/// dropped connection after the request was sent).
fn state_of_failure(e: &rhai::EvalAltResult) -> WriteState {
    let flag = |key: &str| match e {
        rhai::EvalAltResult::ErrorRuntime(v, _) => v
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get(key).and_then(|b| b.as_bool().ok()))
            .unwrap_or(false),
        _ => false,
    };
    if flag("pending_approval") {
        WriteState::Pending
    } else if flag("maybe_applied") {
        WriteState::Unknown
    } else {
        WriteState::Failed
    }
}

/// The change request a pending-approval error names (`request`, `request_id`).
fn filed_request(e: &rhai::EvalAltResult) -> Option<Filed> {
    let rhai::EvalAltResult::ErrorRuntime(v, _) = e else {
        return None;
    };
    let m = v.read_lock::<rhai::Map>()?;
    let get = |k: &str| m.get(k).map(|v| v.to_string());
    Some(Filed {
        id: get("request_id")?,
        slug: get("request")?,
    })
}

/// What a run is made of; the REPL builds a new context from the same parts when it loads
/// another runbook into its session.
#[derive(Clone)]
pub struct RunParts {
    pub info: RunInfo,
    pub services: Rc<Services>,
    pub journal: Rc<Journal>,
    pub audit: AuditLog,
    /// Where the run's state lives (approvals go there too).
    pub store: crate::store::Store,
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
    /// The hash of the last audit entry this run wrote: the head it leaves.
    audit_head: RefCell<Option<String>>,
    /// The hosts `http::` may reach in this run.
    egress: RefCell<crate::plan::egress::Egress>,
    /// The runbook's word on which bulk-read values are credentials.
    masking: RefCell<crate::plan::Masking>,
    /// Every write of the run not undone since (restored from the journal on reopen).
    writes: RefCell<Vec<Write>>,
}

impl RunContext {
    /// A run; `writes` are those of its earlier processes still in effect (from the journal).
    pub fn new(parts: RunParts, prompter: Prompter, writes: Vec<Write>) -> Rc<RunContext> {
        Rc::new(RunContext {
            parts,
            prompter: RefCell::new(prompter),
            phase: RefCell::new(Phase::Idle),
            planned: RefCell::new(Vec::new()),
            writes_in_step: Cell::new(0),
            sink_down: Cell::new(false),
            audit_head: RefCell::new(None),
            egress: RefCell::new(crate::plan::egress::Egress::unrestricted()),
            masking: RefCell::new(crate::plan::Masking::default()),
            writes: RefCell::new(writes),
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

    /// Whether a step's undo is running (its writes restore what the step changed).
    pub(crate) fn in_undo(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Undo(_))
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

    /// Records what the run cannot go on without (see `Journal::record_required`).
    pub fn record_required(&self, record: Record) -> crate::error::Result<()> {
        self.parts.journal.record_required(record)
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

    /// Appends an audit entry for this run. An engine event whose context is over the
    /// entry limit (a huge error text) is still recorded, with the context summarised.
    pub(crate) fn audit_event(
        &self,
        action: &str,
        context: serde_json::Value,
    ) -> crate::error::Result<()> {
        match self.audit_entry(action, context) {
            Err(crate::error::Error::AuditTooLarge { bytes, limit, .. }) => self.audit_entry(
                action,
                serde_json::json!({
                    "omitted": format!("the context made a {bytes}-byte entry, over the {limit}-byte limit")
                }),
            ),
            other => other,
        }
    }

    /// Sets the hosts `http::` may reach (the runbook's declaration, resolved).
    pub fn set_masking(&self, masking: crate::plan::Masking) {
        *self.masking.borrow_mut() = masking;
    }

    /// Whether the value of a bulk read's field `name` is a credential, for this runbook.
    pub fn bulk_is_secret(&self, name: &str, value: &str) -> bool {
        self.masking.borrow().is_secret(name, value)
    }

    /// Whether it comes back as plain text (clearly a setting, or declared plain).
    pub fn bulk_is_plain(&self, name: &str, value: &str) -> bool {
        self.masking.borrow().is_plain(name, value)
    }

    pub fn set_egress(&self, egress: crate::plan::egress::Egress) {
        *self.egress.borrow_mut() = egress;
    }

    pub fn egress(&self) -> crate::plan::egress::Egress {
        self.egress.borrow().clone()
    }

    /// The head of the audit chain after this run's last entry, if it wrote one.
    pub fn audit_head(&self) -> Option<String> {
        self.audit_head.borrow().clone()
    }

    /// Appends an audit entry for this run, refusing one over the entry limit.
    pub(crate) fn audit_entry(
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
        *self.audit_head.borrow_mut() = Some(entry.hash.clone());
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
            Err(why) => Err(super::vendor_call::stopped(why)),
        }
    }

    /// Runs a mutating call on one target: under `--dry-run` records it and returns a
    /// placeholder; otherwise counts it for rollback, journals it before and after (with
    /// whether it applied, failed, or its answer was lost) and writes an audit event.
    pub(crate) fn mutate(
        &self,
        function: &str,
        effect: Effect,
        target: &str,
        detail: serde_json::Value,
        call: impl FnOnce() -> R<Dynamic>,
    ) -> R<Dynamic> {
        self.mutate_judged(function, effect, target, detail, call, |_| {
            WriteState::Applied
        })
    }

    /// `mutate` for calls that answer any outcome as a value (`http::`): `judge` says from
    /// the value whether the write applied.
    pub(crate) fn mutate_judged(
        &self,
        function: &str,
        effect: Effect,
        target: &str,
        detail: serde_json::Value,
        call: impl FnOnce() -> R<Dynamic>,
        judge: impl Fn(&Dynamic) -> WriteState,
    ) -> R<Dynamic> {
        self.require_step(function)?;
        if self.dry_run() {
            self.record_planned(function, effect, target, detail);
            return Ok(super::Placeholder::of(function));
        }
        let step = self.step_name();
        self.write_intent(&step, function, target, &detail);
        let result = call();
        let state = match &result {
            Ok(v) => judge(v),
            Err(e) => state_of_failure(e),
        };
        self.write_outcome(
            &step,
            function,
            effect,
            target,
            &detail,
            state,
            result.as_ref().err().map(|e| &**e),
        );
        result
    }

    /// Runs a write on many targets at once (a fan-out). Targets where this step already
    /// made the same change, in an earlier attempt, are not written again: `call` gets only
    /// the others, and they come back as `None`. Each target is journalled and audited as
    /// its own write.
    pub(crate) fn mutate_each<T>(
        &self,
        function: &str,
        effect: Effect,
        targets: &[String],
        detail: serde_json::Value,
        call: impl FnOnce(Vec<String>) -> R<Vec<(String, Result<T, VendorError>)>>,
    ) -> R<Vec<TargetResult<T>>> {
        self.require_step(function)?;
        let step = self.step_name();
        // Only a step's forward body skips what it already did; an undo repeats nothing of
        // its own but must not be mistaken for the step it undoes.
        let forward = matches!(*self.phase.borrow(), Phase::Step(_));
        let (done, todo): (Vec<String>, Vec<String>) = targets
            .iter()
            .cloned()
            .partition(|t| forward && self.already_applied(&step, function, t, &detail));
        for t in &done {
            crate::ui::progress(&format!(
                "    {t}: already done in an earlier attempt of this step; not repeated"
            ));
        }
        for t in &todo {
            self.write_intent(&step, function, t, &detail);
        }
        let results = if todo.is_empty() {
            Vec::new()
        } else {
            call(todo.clone())?
        };
        for (t, r) in &results {
            let (state, err) = match r {
                Ok(_) => (WriteState::Applied, None),
                Err(e) => {
                    let script = vendor_error(e);
                    (state_of_failure(&script), Some(script))
                }
            };
            self.write_outcome(&step, function, effect, t, &detail, state, err.as_deref());
        }
        let mut results: Vec<TargetResult<T>> =
            results.into_iter().map(|(t, r)| (t, Some(r))).collect();
        results.extend(done.into_iter().map(|t| (t, None)));
        // In the order the script named them.
        results.sort_by_key(|(t, _)| targets.iter().position(|x| x == t));
        Ok(results)
    }

    fn write_intent(&self, step: &str, function: &str, target: &str, detail: &serde_json::Value) {
        self.writes_in_step.set(self.writes_in_step.get() + 1);
        let mut redacted = detail.clone();
        runbook_secret::redact_json(&mut redacted);
        // The ledger holds a step's effects; what an undo writes is not one of them.
        if matches!(*self.phase.borrow(), Phase::Step(_)) {
            self.writes.borrow_mut().push(Write {
                step: step.to_string(),
                function: function.to_string(),
                target: target.to_string(),
                detail: redacted,
                state: WriteState::Unknown,
                filed: None,
            });
        }
        self.record(Record::WriteIntent {
            step: step.to_string(),
            function: function.to_string(),
            target: target.to_string(),
            detail: detail.clone(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn write_outcome(
        &self,
        step: &str,
        function: &str,
        effect: Effect,
        target: &str,
        detail: &serde_json::Value,
        state: WriteState,
        error: Option<&rhai::EvalAltResult>,
    ) {
        if matches!(*self.phase.borrow(), Phase::Step(_)) {
            if let Some(w) = self
                .writes
                .borrow_mut()
                .iter_mut()
                .rev()
                .find(|w| w.step == step && w.function == function && w.target == target)
            {
                w.state = state;
            }
        }
        let filed = (state == WriteState::Pending)
            .then(|| error.and_then(filed_request))
            .flatten();
        if matches!(*self.phase.borrow(), Phase::Step(_)) {
            if let Some(w) = self
                .writes
                .borrow_mut()
                .iter_mut()
                .rev()
                .find(|w| w.step == step && w.function == function && w.target == target)
            {
                w.filed = filed.clone();
            }
        }
        self.record(Record::WriteOutcome {
            step: step.to_string(),
            function: function.to_string(),
            target: target.to_string(),
            ok: state == WriteState::Applied,
            unknown: state.uncertain(),
            pending: state == WriteState::Pending,
            filed,
        });
        crate::hooks::crash_point("inside", step);
        let mut context = serde_json::json!({
            "function": function,
            "effect": effect.as_str(),
            "target": target,
            "detail": detail,
            "ok": state == WriteState::Applied,
        });
        match state {
            WriteState::Unknown => context["outcome"] = "unknown".into(),
            WriteState::Pending => context["outcome"] = "pending_approval".into(),
            _ => {}
        }
        if let Some(e) = error {
            context["error"] = runbook_secret::redact(&e.to_string()).into_owned().into();
        }
        if let Err(e) = self.audit_event("host.call", context) {
            crate::ui::err(&format!("warning: could not write the audit log: {e}"));
        }
    }

    /// Whether this step already applied this very change to this target.
    fn already_applied(
        &self,
        step: &str,
        function: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> bool {
        let mut redacted = detail.clone();
        runbook_secret::redact_json(&mut redacted);
        self.writes.borrow().iter().any(|w| {
            w.step == step
                && w.function == function
                && w.target == target
                && w.detail == redacted
                && w.state == WriteState::Applied
        })
    }

    /// The change request a write of `function` on `target` was filed as and that no later
    /// write of the same change has seen applied: its journalled detail and the request.
    pub(crate) fn open_request(
        &self,
        function: &str,
        target: &str,
    ) -> Option<(serde_json::Value, Filed)> {
        let mut open: Option<(serde_json::Value, Filed)> = None;
        for w in self.writes.borrow().iter() {
            if w.function != function || w.target != target {
                continue;
            }
            match (&w.state, &w.filed) {
                (WriteState::Pending, Some(f)) => open = Some((w.detail.clone(), f.clone())),
                (WriteState::Applied, _) if open.as_ref().is_some_and(|(d, _)| *d == w.detail) => {
                    open = None
                }
                _ => {}
            }
        }
        open
    }

    /// The writes of a step that are in effect (not undone since), for its undo.
    pub fn writes_of(&self, step: &str) -> Vec<Write> {
        self.writes
            .borrow()
            .iter()
            .filter(|w| w.step == step)
            .cloned()
            .collect()
    }

    /// After a step's undo: what it wrote is no longer in effect.
    pub fn forget_writes_of(&self, step: &str) {
        self.writes.borrow_mut().retain(|w| w.step != step);
    }

    /// The writes still in effect, for a REPL session that loads another runbook.
    pub fn writes(&self) -> Vec<Write> {
        self.writes.borrow().clone()
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
