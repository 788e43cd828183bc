//! The write path every mutating host call takes: under `--dry-run` recorded as planned and
//! not sent; otherwise the write is put in the ledger before it is sent and its outcome
//! after (one of `WriteOutcome`), and audited. A fan-out writes each target as its own
//! write, and skips a target this step already changed the same way in an earlier attempt.

use super::context::RunContext;
use super::together::{Reach, StartedWrite};
use super::vendor_call::vendor_error;
use super::{Effect, R};
use crate::audit::{AuditEvent, HostCall};
use crate::events::{Event, Filed, WriteOutcome, WritePlanned, WriteSent, WriteSettled};
use crate::ledger::Unrecorded;
use rhai::Dynamic;
use runbook_vendors::{VendorError, Vendors};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::future::Future;

/// One target of a fan-out: its result, or `None` when an earlier attempt already did it.
pub(crate) type TargetResult<T> = (String, Option<Result<T, VendorError>>);

/// A script error's map, if it is one.
fn error_map(e: &rhai::EvalAltResult) -> Option<rhai::Map> {
    match e {
        rhai::EvalAltResult::ErrorRuntime(v, _) => v.read_lock::<rhai::Map>().map(|m| m.clone()),
        _ => None,
    }
}

/// What a failed write's error says of it: filed for approval, answer lost (it may have
/// applied), never sent (a vendor error with no answer, and not lost), or refused. Ctrl-C
/// or a spent budget stops the wait for the answer, not the request: it may have applied.
/// So may a write the vendor answered with a server error (5xx): that says it failed to
/// answer, not that it did nothing (Heroku applies a config change and answers 500).
pub(crate) fn outcome_of_failure(e: &rhai::EvalAltResult) -> WriteOutcome {
    if matches!(e.unwrap_inner(), rhai::EvalAltResult::ErrorTerminated(..)) {
        return WriteOutcome::Unknown;
    }
    let Some(m) = error_map(e) else {
        return WriteOutcome::Failed;
    };
    let flag = |key: &str| m.get(key).and_then(|b| b.as_bool().ok()).unwrap_or(false);
    if flag("pending_approval") {
        WriteOutcome::Pending
    } else if flag("maybe_applied") || (server_error(m.get("status")) && !a_read(&m)) {
        WriteOutcome::Unknown
    } else if m.contains_key("vendor") && m.get("status").is_none_or(|s| s.is_unit()) {
        WriteOutcome::NotSent
    } else {
        WriteOutcome::Failed
    }
}

/// Whether the request that failed was a read: one a vendor call makes before its write
/// (GitHub's public key, Infisical's current value), whose 5xx says the write never left.
fn a_read(m: &rhai::Map) -> bool {
    m.get("method")
        .is_some_and(|v| matches!(v.to_string().as_str(), "GET" | "HEAD"))
}

/// A status of 500 or more.
pub(crate) fn server_error(status: Option<&Dynamic>) -> bool {
    status
        .and_then(|s| s.as_int().ok())
        .is_some_and(|s| s >= 500)
}

/// The change request a pending-approval error names (`request`, `request_id`).
fn filed_request(e: &rhai::EvalAltResult) -> Option<Filed> {
    let m = error_map(e)?;
    let get = |k: &str| m.get(k).map(|v| v.to_string());
    Some(Filed {
        id: get("request_id")?,
        slug: get("request")?,
    })
}

/// A detail as the ledger keeps it: redacted.
fn redacted(detail: &Value) -> Value {
    let mut d = detail.clone();
    runbook_secret::redact_json(&mut d);
    d
}

/// The error that stops a step whose write cannot be recorded (or whose lease is gone).
fn fenced(why: &Unrecorded) -> Box<rhai::EvalAltResult> {
    rhai::EvalAltResult::ErrorTerminated(
        Dynamic::from(format!("{}{why}", crate::interrupt::FENCED)),
        rhai::Position::NONE,
    )
    .into()
}

/// Whether `function`'s writes may be sent again safely (its registration says).
fn idempotent(function: &str) -> bool {
    super::modules()
        .find(function)
        .and_then(|f| f.repeat)
        .is_some_and(|r| r == crate::engine::Repeat::Safe)
}

/// The write path of a run: its ledger, step scope and audit trail, as writes use them.
pub(crate) struct Writes<'a> {
    run: &'a RunContext,
    /// What a call that answered says of its write: applied, unless `judged_by` says how
    /// to read the answer.
    judge: fn(&Dynamic) -> WriteOutcome,
    /// Dotted paths of the answer's fields to keep with the outcome (`record:`).
    record: Vec<String>,
    /// Whose answers the write may change, where the script says (`http::`'s `changes:`);
    /// else the function's own vendor's ([`Reach::of_write`]).
    reach: Option<Reach>,
}

/// How a write ended, as its outcome event records it.
struct End<'e> {
    outcome: WriteOutcome,
    error: Option<&'e rhai::EvalAltResult>,
    answer: Option<Value>,
}

impl End<'_> {
    /// An outcome known without an error or an answer to keep.
    fn only(outcome: WriteOutcome) -> End<'static> {
        End {
            outcome,
            error: None,
            answer: None,
        }
    }
}

/// A fan-out target's task, ended: its id and the request's result, or why it did not end.
type Joined<T> = Result<(tokio::task::Id, Result<T, VendorError>), tokio::task::JoinError>;

/// One write of a fan-out, as each of its targets is recorded and settled.
struct Write<'w> {
    step: &'w str,
    function: &'w str,
    effect: Effect,
    detail: &'w Value,
}

impl Write<'_> {
    fn settle(&self, writes: &Writes<'_>, target: &str, end: End<'_>) {
        writes.write_settled(
            self.step,
            self.function,
            self.effect,
            target,
            self.detail,
            end,
        );
    }
}

impl<'a> Writes<'a> {
    pub(crate) fn of(run: &'a RunContext) -> Writes<'a> {
        Writes {
            run,
            judge: |_| WriteOutcome::Applied,
            record: Vec::new(),
            reach: None,
        }
    }

    /// The write may change only these vendors' answers (see [`Reach`]).
    pub(crate) fn reaching(self, reach: Option<Reach>) -> Self {
        Writes { reach, ..self }
    }

    fn note_effect(&self, function: &str) {
        let reach = self.reach.unwrap_or_else(|| Reach::of_write(function));
        self.run.ahead().note_effect(reach);
    }

    /// For calls that answer any outcome as a value (`http::`): `judge` says from the
    /// value whether the write applied.
    pub(crate) fn judged_by(self, judge: fn(&Dynamic) -> WriteOutcome) -> Self {
        Writes { judge, ..self }
    }

    /// Keeps these fields of the answer (`json` or `xml`, by dotted path) with the write's
    /// outcome: the id of a credential the write created, say.
    pub(crate) fn recording(self, record: Vec<String>) -> Self {
        Writes { record, ..self }
    }

    /// The recorded fields of an answer: plain values only (a Secret is never kept).
    fn kept(&self, answer: &Dynamic) -> Option<Value> {
        if self.record.is_empty() {
            return None;
        }
        let m = answer.read_lock::<rhai::Map>()?;
        let mut out = serde_json::Map::new();
        for path in &self.record {
            let found = ["json", "xml"].iter().find_map(|root| {
                crate::value::at_path(m.get(*root)?, path).filter(|at| !at.is_unit())
            });
            if let Some(v) = found.filter(|v| !v.is::<runbook_secret::Secret>()) {
                out.insert(path.clone(), crate::value::to_json(&v));
            }
        }
        Some(Value::Object(out))
    }

    fn step_name(&self) -> String {
        self.run.step_name()
    }

    fn ledger(&self) -> &crate::ledger::LedgerWriter {
        self.run.ledger()
    }

    fn in_undo(&self) -> bool {
        self.run.scope().in_undo()
    }

    /// Whether an undo's write would replace what someone changed since the run wrote
    /// `target` (a rollback's refresh found it): it is left alone, and said so.
    fn left_alone(&self, function: &str, target: &str) -> bool {
        let left = self.in_undo()
            && self
                .ledger()
                .read(false, |l| l.left_alone(function, target));
        if left {
            self.run.say().progress(format!(
                "    {target}: does not hold what this run wrote; left alone"
            ));
        }
        left
    }

    /// At the REPL in production, the operator confirms each write before it is sent (until
    /// `:confirm always`): a line typed at a prompt is not a reviewed step.
    fn confirmed_at_repl(&self, function: &str, targets: &str) -> R<()> {
        let scope = self.run.scope();
        // A REPL session's writes, typed or by `:run STEP`.
        if self.run.info().modes.entry != crate::run::Entry::Repl || self.run.dry_run() {
            return Ok(());
        }
        // A run rotating the same secret now may be writing to the same targets.
        let holder = || {
            scope.rotation().and_then(|lock| {
            match self.run.parts().store.lock_read(&lock) {
                Ok(crate::store::Slot::Held(Some(h))) => {
                    let who = format!("run {} ({} on {}, pid {})", h.run_id, h.actor, h.host, h.pid);
                    // Refused only beside a holder shown alive: its process here, or a lease
                    // it keeps renewing. One that cannot be shown either way (another host
                    // on a shared folder) is said, as before.
                    let leased = self.run.parts().store.lease().is_some() && !h.expired;
                    Some(if h.is_dead() {
                        (format!("{who} holds this rotation's lock, but its process is gone (the run is unfinished, not writing now)"), false)
                    } else {
                        (format!("{who} holds this rotation's lock and may be writing to the same targets now"), h.is_alive_here() || leased)
                    })
                }
                Ok(crate::store::Slot::Held(None)) => Some((
                    "another run holds this rotation's lock and may be writing to the same targets now"
                        .to_string(),
                    false,
                )),
                _ => None,
            }
        })
        };
        // Two writers of one rotation at once is what the lock exists to prevent: a live
        // holder's rotation is not written from here, asked or not (before, a warning, and
        // `:run propagate` went out beside a live exec's propagate: cold review).
        let refused = |held: &Option<(String, bool)>| match held {
            Some((busy, true)) => Err(super::throw(
                "usage",
                format!("{function} on {targets}: not sent: {busy}"),
                Some("let that run end (or stop it); `runbook runs` shows it".into()),
            )),
            _ => Ok(()),
        };
        let held = holder();
        refused(&held)?;
        let busy = held.map(|(busy, _)| busy);
        if scope.phase() != super::Phase::Repl || !scope.confirm_repl_writes() {
            if let Some(busy) = busy {
                self.run.say().warning(format!(
                    "warning: {busy}; {function} on {targets} goes beside it"
                ));
            }
            return Ok(());
        }
        let question = match busy {
            Some(busy) => format!("Write to PRODUCTION: {function} on {targets}? {busy}."),
            None => format!("Write to PRODUCTION: {function} on {targets}?"),
        };
        let said = self.run.operator().confirm("repl.write", &question);
        if said.map_err(super::prompt::prompt_error)? {
            // Read again once answered: a run that took the rotation while the question
            // waited is not written beside either (cold review of team mode).
            crate::hooks::pause_point("repl-answered");
            return refused(&holder());
        }
        Err(super::throw(
            "usage",
            format!("{function} on {targets}: not sent (the operator said no)"),
            Some("`:confirm always` stops asking for the rest of this session".into()),
        ))
    }

    /// A step's write in a run that asks before its first write, where the question was not
    /// asked (the plan's list of writes missed this one): asked now, before it is sent.
    fn first_write_asked(&self, function: &str, targets: &str) -> R<()> {
        let scope = self.run.scope();
        if !scope.first_write_unasked() || !scope.forward() || self.run.dry_run() {
            return Ok(());
        }
        let step = self.step_name();
        let said = self.run.operator().confirm(
            "writes.confirm",
            &format!(
                "Step '{step}' writes {function} on {targets}, a write the list of the plan's writes did not show (the script reaches it in a way read before the run cannot follow). Go ahead with the first write?"
            ),
        );
        use crate::prompt::PromptError;
        match said {
            Ok(true) => {
                scope.set_first_write_unasked(false);
                Ok(())
            }
            Ok(false) => Err(super::prompt::prompt_error(PromptError::Aborted)),
            Err(PromptError::Interrupted) => {
                Err(super::prompt::prompt_error(PromptError::Interrupted))
            }
            // Nobody could answer: the run stops as at the listed question, and no script's
            // `catch` can take it for an ordinary error and go on without the write.
            Err(e) => {
                let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
                self.run.say().warning(format!("{e}{help}"));
                Err(super::prompt::prompt_error(PromptError::Aborted))
            }
        }
    }

    /// A write needs a step or an undo: not the top level, not a read-only probe.
    fn require_write(&self, function: &str) -> R<()> {
        self.run.require_step(function)?;
        if self.run.scope().probing() {
            return Err(super::throw(
                "usage",
                format!("{function} writes, and a probe may only read"),
                None,
            ));
        }
        Ok(())
    }

    /// Records a write that `--dry-run` skips.
    pub(crate) fn planned(&self, function: &str, effect: Effect, target: &str, detail: Value) {
        self.ledger().record(Event::WritePlanned(WritePlanned {
            step: self.step_name(),
            function: function.to_string(),
            effect,
            target: target.to_string(),
            detail: redacted(&detail),
        }));
    }

    /// Whether a dry run already skipped a write, whose effects later checks may depend on.
    pub(crate) fn has_planned(&self) -> bool {
        self.ledger().read(false, |l| !l.planned.is_empty())
    }

    /// Runs a mutating call on one target (see the module doc).
    pub(crate) fn mutate(
        &self,
        function: &str,
        effect: Effect,
        target: &str,
        detail: Value,
        call: impl FnOnce() -> R<Dynamic>,
    ) -> R<Dynamic> {
        if let Some(i) = self.run.ahead().starting_write() {
            return self.start_ahead(i, function, effect, target, detail, call);
        }
        if let Some(w) = self.run.ahead().take_write() {
            return self.take_ahead(w, function, effect, target, detail, call);
        }
        self.require_write(function)?;
        self.note_effect(function);
        self.confirmed_at_repl(function, target)?;
        self.first_write_asked(function, target)?;
        if self.run.dry_run() {
            self.planned(function, effect, target, detail);
            return Ok(super::Placeholder::of(function));
        }
        if self.left_alone(function, target) {
            return Ok(Dynamic::UNIT);
        }
        let step = self.step_name();
        self.write_sent(&step, function, effect, target, &detail, true)?;
        let result = call();
        self.settle(&step, function, effect, target, &detail, &result);
        result
    }

    fn settle(
        &self,
        step: &str,
        function: &str,
        effect: Effect,
        target: &str,
        detail: &Value,
        result: &R<Dynamic>,
    ) {
        let outcome = match result {
            Ok(v) => (self.judge)(v),
            Err(e) => outcome_of_failure(e),
        };
        let end = End {
            outcome,
            error: result.as_ref().err().map(|e| &**e),
            answer: result.as_ref().ok().and_then(|v| self.kept(v)),
        };
        self.write_settled(step, function, effect, target, detail, end);
    }

    /// `run::together`'s first pass: the write is journalled as sent and its request sent,
    /// not waited for ([`RunContext::write_request`]). A dry run, an undo and the REPL run it
    /// in its turn instead.
    fn start_ahead(
        &self,
        i: usize,
        function: &str,
        effect: Effect,
        target: &str,
        detail: Value,
        call: impl FnOnce() -> R<Dynamic>,
    ) -> R<Dynamic> {
        self.require_write(function)?;
        let scope = self.run.scope();
        // Nothing is journalled for a write that cannot leave now (Ctrl-C, a spent budget,
        // no credentials): the second pass runs it in its turn, and says why.
        // A REPL session's writes, `:run` included, go in their turn: `confirmed_at_repl`
        // (a live holder of the rotation, the production confirmation) is asked there.
        if self.run.dry_run()
            || !scope.forward()
            || scope.first_write_unasked()
            || scope.phase() == super::Phase::Repl
            || self.run.info().modes.entry == crate::run::Entry::Repl
            || self.run.services().runtime.check().is_err()
            || self.run.vendors().is_err()
        {
            return Err(RunContext::stop_starting());
        }
        let step = self.step_name();
        self.write_sent(&step, function, effect, target, &detail, true)?;
        let reach = self.reach.unwrap_or_else(|| Reach::of_write(function));
        self.run.ahead().begin_write(
            i,
            reach,
            StartedWrite::new(function, effect, target, detail.clone()),
        );
        let result = call();
        if self.run.ahead().write_left(i) {
            // In flight from now: what runs before its turn must not trust a read from
            // before it.
            self.note_effect(function);
            return Err(RunContext::stop_starting());
        }
        // It stopped before its request (Ctrl-C, a missing credential): the second pass
        // runs it in its turn.
        let end = End {
            outcome: WriteOutcome::NotSent,
            error: result.as_ref().err().map(|e| &**e),
            answer: None,
        };
        self.write_settled(&step, function, effect, target, &detail, end);
        Err(RunContext::stop_starting())
    }

    /// `run::together`'s second pass: the answer of a write its first pass sent.
    fn take_ahead(
        &self,
        mut w: StartedWrite,
        function: &str,
        effect: Effect,
        target: &str,
        detail: Value,
        call: impl FnOnce() -> R<Dynamic>,
    ) -> R<Dynamic> {
        let step = self.step_name();
        if (w.function.as_str(), w.target.as_str(), &w.detail) != (function, target, &detail) {
            // Its answer is not read by its own call: an answer is only "it may have applied".
            let outcome = match self.run.finish_write(&mut w) {
                Ok(()) => WriteOutcome::Unknown,
                Err(e) => outcome_of_failure(&e),
            };
            let end = End::only(outcome);
            self.write_settled(&step, &w.function, effect, &w.target, &w.detail, end);
            return Err(super::throw(
                "usage",
                format!(
                    "run::together: {} was sent on {} and then called on {target}: a write started ahead must keep its arguments",
                    w.function, w.target
                ),
                Some("do not change, in the functions before it, the variables a write in run::together names".into()),
            ));
        }
        self.note_effect(function);
        self.run.ahead().resume_write(&mut w);
        let result = call();
        // A call that ended before taking its answer (it cannot, today) leaves nothing for
        // the next one.
        self.run.ahead().clear_slot();
        self.settle(&step, function, effect, target, &detail, &result);
        result
    }

    /// A write `run::together` started whose function never ran again (Ctrl-C, a spent
    /// budget): its outcome as far as can be told ([`StartedWrite::left_outcome`]).
    pub(crate) fn settle_left(&self, mut w: StartedWrite) {
        let outcome = w.left_outcome(self.run);
        let end = End::only(outcome);
        let step = self.step_name();
        self.write_settled(&step, &w.function, w.effect, &w.target, &w.detail, end);
    }

    /// Runs a write on many targets at once (a fan-out): `send` is one target's request.
    /// Targets where this step already made the same change, in an earlier attempt, are not
    /// written again: they come back as `None`. The others go out as [`Writes::send_each`]
    /// says, each recorded before it is sent and settled as its answer comes.
    pub(crate) fn mutate_each<T, F, Fut>(
        &self,
        function: &str,
        effect: Effect,
        targets: &[String],
        detail: Value,
        label: impl Fn(usize) -> String,
        send: F,
    ) -> R<Vec<TargetResult<T>>>
    where
        T: Send + 'static,
        F: Fn(Vendors, String) -> Fut,
        Fut: Future<Output = Result<T, VendorError>> + Send + 'static,
    {
        self.require_write(function)?;
        // `run::together` starts no fan-out ahead: nothing is recorded in its first pass.
        if self.run.starting_ahead() {
            return Err(RunContext::stop_starting());
        }
        self.note_effect(function);
        self.confirmed_at_repl(function, &targets.join(", "))?;
        self.first_write_asked(function, &targets.join(", "))?;
        let step = self.step_name();
        // Only a step's forward body skips what it already did; an undo repeats nothing of
        // its own but must not be mistaken for the step it undoes.
        let forward = self.run.scope().forward();
        let change = redacted(&detail);
        let (done, todo): (Vec<String>, Vec<String>) = targets.iter().cloned().partition(|t| {
            (forward
                && self
                    .ledger()
                    .read(false, |l| l.already_applied(&step, function, t, &change)))
                || self.left_alone(function, t)
        });
        // In an undo, `done` holds only what was left alone (and said so).
        for t in done.iter().filter(|_| forward) {
            self.run.say().progress(format!(
                "    {t}: already done in an earlier attempt of this step; not repeated"
            ));
        }
        let results = if todo.is_empty() {
            Vec::new()
        } else {
            let vendors = self.run.vendors()?;
            let write = Write {
                step: &step,
                function,
                effect,
                detail: &detail,
            };
            let sent = self.send_each(&write, &todo, &label(todo.len()), &vendors, send);
            self.run.note_simulators();
            sent?
        };
        let mut results: Vec<TargetResult<T>> =
            results.into_iter().map(|(t, r)| (t, Some(r))).collect();
        results.extend(done.into_iter().map(|t| (t, None)));
        // In the order the script named them (by a map: looking each one's place up in
        // the list was 22 ms of a 1,000-app fan-out's end).
        let mut place: HashMap<&str, usize> = HashMap::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            place.entry(t.as_str()).or_insert(i);
        }
        results.sort_by_key(|(t, _)| place.get(t.as_str()).copied());
        Ok(results)
    }

    /// Sends a fan-out's targets, at most the vendors' concurrency at once. Each target's
    /// line is stored before it is sent, in batches of four times that many, one sync (at
    /// the batch's last line, with the audit trail) making a batch durable, and its lease
    /// confirmed, before any of it is sent; later batches are recorded, a line at a time,
    /// while the requests before them are out, and a slot an answer frees goes to the next
    /// durable target before the answer is recorded. Each outcome is recorded as its
    /// answer comes, so a crash or Ctrl-C in a long fan-out leaves only the requests then
    /// out in doubt. (An outcome recorded after the last batch's sync may be lost to a power
    /// loss while later targets go out: the state of a crash before it was written, which
    /// resume reconciles.)
    ///
    /// Before, every line was stored before the first request and every outcome after the
    /// last answer: a 1,000-app fan-out left all 1,000 in doubt until its end, and its
    /// bookkeeping (a quarter of a second at 20 ms per call) was not overlapped with the
    /// requests. A record that cannot be stored, or a lease another run took, stops the
    /// fan-out: nothing more is sent, what is out is waited for and settled, what was
    /// recorded and not sent is settled as not sent.
    fn send_each<T, F, Fut>(
        &self,
        write: &Write<'_>,
        todo: &[String],
        label: &str,
        vendors: &Vendors,
        send: F,
    ) -> R<Vec<(String, Result<T, VendorError>)>>
    where
        T: Send + 'static,
        F: Fn(Vendors, String) -> Fut,
        Fut: Future<Output = Result<T, VendorError>> + Send + 'static,
    {
        let at_once = vendors.config().concurrency.clamp(1, 1024);
        let batch = at_once * 4;
        let runtime = &self.run.services().runtime;
        let _call = self.run.say().call(label);
        let not_sent = |i: usize| write.settle(self, &todo[i], End::only(WriteOutcome::NotSent));
        // The next target to record, and where its batch ends; the batch's targets stored
        // so far; those durable and not yet sent; those out, by task (indices in `todo`).
        let (mut next, mut batch_end) = (0, 0);
        let mut stored: Vec<usize> = Vec::new();
        let mut ready: VecDeque<usize> = VecDeque::new();
        let mut out = tokio::task::JoinSet::new();
        let mut out_to: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut answered = Vec::with_capacity(todo.len());
        let mut refused: Option<Box<rhai::EvalAltResult>> = None;
        // A target the vendor refused for its rate limit, longer than the transport waits
        // (or than the step has left): nothing more is sent to it. Before, the fan-out's
        // other targets went on being sent, each refused at once, to a vendor that had asked
        // us to wait (GitHub bans integrations that do).
        let mut halted: Option<VendorError> = None;
        // Sends the next durable targets while slots are free: not after Ctrl-C, nor once a
        // record made since their batch's sync could not be stored (or the lease is gone).
        let fill = |out: &mut tokio::task::JoinSet<_>,
                    out_to: &mut HashMap<tokio::task::Id, usize>,
                    ready: &mut VecDeque<usize>,
                    refused: &mut Option<Box<rhai::EvalAltResult>>,
                    halted: bool| {
            if refused.is_some() || halted || ready.is_empty() || out.len() >= at_once {
                return;
            }
            if runtime.check().is_err() {
                return;
            }
            if let Err(why) = self.may_send() {
                *refused = Some(fenced(&why));
                return;
            }
            while out.len() < at_once {
                let Some(i) = ready.pop_front() else { break };
                let sending = send(vendors.clone(), todo[i].clone());
                #[cfg(feature = "test-hooks")]
                let sending = {
                    let target = todo[i].clone();
                    async move {
                        crate::hooks::panic_sending_to(&target);
                        sending.await
                    }
                };
                let sending = runbook_vendors::transport::within_step(
                    crate::interrupt::budget_end(),
                    sending,
                );
                let id = out.spawn_on(sending, runtime.handle()).id();
                out_to.insert(id, i);
            }
        };
        loop {
            fill(
                &mut out,
                &mut out_to,
                &mut ready,
                &mut refused,
                halted.is_some(),
            );
            let stopped = runtime.check().err();
            let recording = refused.is_none()
                && halted.is_none()
                && stopped.is_none()
                && next < todo.len()
                && (ready.len() < at_once || !stored.is_empty());
            let joined: Option<Result<Joined<T>, crate::runtime::Interrupted>> =
                if let Some(why) = stopped {
                    Some(Err(why))
                } else if recording {
                    // Without waiting: the batch is recorded between answers.
                    out.try_join_next_with_id().map(Ok)
                } else if out.is_empty() {
                    break;
                } else {
                    match runtime.block_on(out.join_next_with_id()) {
                        Ok(Some(joined)) => Some(Ok(joined)),
                        Ok(None) => break,
                        Err(why) => Some(Err(why)),
                    }
                };
            let joined = match joined {
                None => {
                    if stored.is_empty() {
                        batch_end = (next + batch).min(todo.len());
                    }
                    let (i, t) = (next, &todo[next]);
                    next += 1;
                    let last = next == batch_end;
                    match self.write_sent(
                        write.step,
                        write.function,
                        write.effect,
                        t,
                        write.detail,
                        last,
                    ) {
                        Ok(()) if last => {
                            ready.extend(stored.drain(..));
                            ready.push_back(i);
                        }
                        Ok(()) => stored.push(i),
                        Err(stop) => {
                            // The batch's lines before it are stored, not durable: not sent.
                            stored.drain(..).for_each(not_sent);
                            refused = Some(stop);
                        }
                    }
                    continue;
                }
                Some(Ok(joined)) => joined,
                Some(Err(why)) => {
                    // Ctrl-C or the step's time limit. The answers already in are taken;
                    // what is still out may have applied; the rest was never sent.
                    while let Some(joined) = out.try_join_next_with_id() {
                        if let Some((i, result)) = self.answered(write, todo, &mut out_to, joined) {
                            answered.push((todo[i].clone(), result));
                        }
                    }
                    out.abort_all();
                    let stopped = super::vendor_call::stopped(why);
                    let outcome = outcome_of_failure(&stopped);
                    let mut left: Vec<usize> = out_to.into_values().collect();
                    left.sort_unstable();
                    for i in left {
                        let end = End {
                            outcome,
                            error: Some(&*stopped),
                            answer: None,
                        };
                        write.settle(self, &todo[i], end);
                    }
                    ready.iter().chain(&stored).copied().for_each(not_sent);
                    // A refused record is the first reason the fan-out stopped.
                    return Err(refused.unwrap_or(stopped));
                }
            };
            if let Ok((_, Err(e))) = &joined {
                if e.kind() == runbook_vendors::ErrorKind::RateLimited && halted.is_none() {
                    halted = Some(e.clone());
                }
            }
            // The freed slot first, then the answer's record.
            fill(
                &mut out,
                &mut out_to,
                &mut ready,
                &mut refused,
                halted.is_some(),
            );
            if let Some((i, result)) = self.answered(write, todo, &mut out_to, joined) {
                answered.push((todo[i].clone(), result));
            }
        }
        debug_assert!(out_to.is_empty(), "a fan-out target left unsettled");
        match refused {
            Some(stop) => {
                // A refusal by `may_send` may come while a batch is half recorded.
                ready.iter().chain(&stored).copied().for_each(not_sent);
                Err(stop)
            }
            None => {
                if let Some(limit) = halted {
                    // Recorded and not sent, or never recorded: each one is a failure of
                    // its own in the results, saying why.
                    ready.iter().chain(&stored).copied().for_each(not_sent);
                    let unsent = ready.iter().chain(&stored).copied().chain(next..todo.len());
                    for i in unsent {
                        let e = VendorError::new(
                            limit.vendor(),
                            limit.method(),
                            &todo[i],
                            runbook_vendors::ErrorKind::RateLimited,
                            format!(
                                "not sent: {} refused {} for its rate limit, beyond the waits this step allows",
                                limit.vendor(),
                                limit.route()
                            ),
                        )
                        .with_hint(limit.help_text());
                        answered.push((todo[i].clone(), Err(e)));
                    }
                }
                Ok(answered)
            }
        }
    }

    /// Records the outcome of a fan-out target whose task ended: by its answer, or, when
    /// the task failed (a panic), as unknown, since its request may have left.
    fn answered<T>(
        &self,
        write: &Write<'_>,
        todo: &[String],
        out_to: &mut HashMap<tokio::task::Id, usize>,
        joined: Joined<T>,
    ) -> Option<(usize, Result<T, VendorError>)> {
        match joined {
            Ok((id, result)) => {
                let i = out_to.remove(&id)?;
                let err = result.as_ref().err().map(vendor_error);
                let end = End {
                    outcome: err
                        .as_deref()
                        .map_or(WriteOutcome::Applied, outcome_of_failure),
                    error: err.as_deref(),
                    answer: None,
                };
                write.settle(self, &todo[i], end);
                Some((i, result))
            }
            Err(failed) => {
                let i = out_to.remove(&failed.id())?;
                let e = VendorError::new(
                    "runbook",
                    "-",
                    &todo[i],
                    runbook_vendors::ErrorKind::Other,
                    "the call did not finish (internal error); it may have been sent",
                );
                let err = vendor_error(&e);
                let end = End {
                    outcome: WriteOutcome::Unknown,
                    error: Some(&*err),
                    answer: None,
                };
                write.settle(self, &todo[i], end);
                Some((i, Err(e)))
            }
        }
    }

    /// Before a write recorded durably earlier is sent (a fan-out's later targets): what
    /// the run recorded since, and the audit entries the log refused, are stored first
    /// (`LedgerWriter::catch_up`, which waits out a store that blinks); not once another
    /// run took the lease, nor while the store still refuses them.
    fn may_send(&self) -> Result<(), Unrecorded> {
        let auditor = self.run.auditor();
        self.ledger().catch_up(&|| auditor.flush())
    }

    /// Records a write before it is sent (see `LedgerWriter::before_write`): `Err`, and the
    /// run stops, when the record cannot be stored or the run's lease is gone.
    fn write_sent(
        &self,
        step: &str,
        function: &str,
        effect: Effect,
        target: &str,
        detail: &Value,
        durable: bool,
    ) -> R<()> {
        let auditor = self.run.auditor();
        let event = Event::Write(WriteSent {
            step: step.to_string(),
            function: function.to_string(),
            target: target.to_string(),
            detail: detail.clone(),
            idempotent: idempotent(function),
            undo: self.in_undo(),
        });
        // The audit trail is made whole and durable with the line that makes the journal
        // durable: a fan-out's batch syncs both once, at its last line, not at every line
        // an answer's entry came before.
        let also = || {
            if durable {
                auditor.before_write()
            } else {
                Ok(())
            }
        };
        let recorded = self.ledger().before_write(event, &also, durable);
        if let Err(refused) = recorded {
            // Its line went in before the store failed: the journal must not leave it in
            // doubt (a resume would stop over it), nor the audit trail without it.
            if refused.stored {
                let end = End::only(WriteOutcome::NotSent);
                self.write_settled(step, function, effect, target, detail, end);
            }
            return Err(fenced(&refused.why));
        }
        self.run.scope().count_write();
        Ok(())
    }

    fn write_settled(
        &self,
        step: &str,
        function: &str,
        effect: Effect,
        target: &str,
        detail: &Value,
        end: End<'_>,
    ) {
        let End {
            outcome,
            error,
            answer,
        } = end;
        // A refused request is named too: the journal no longer counts it open.
        let filed = matches!(outcome, WriteOutcome::Pending | WriteOutcome::Failed)
            .then(|| error.and_then(filed_request))
            .flatten();
        self.ledger().record(Event::WriteOutcome(WriteSettled {
            step: step.to_string(),
            function: function.to_string(),
            target: target.to_string(),
            outcome,
            filed,
            undo: self.in_undo(),
            answer,
        }));
        crate::hooks::crash_point("inside", step);
        let call = HostCall {
            function: function.to_string(),
            effect,
            target: target.to_string(),
            detail: detail.clone(),
            ok: outcome == WriteOutcome::Applied,
            outcome: match outcome {
                WriteOutcome::Unknown => Some("unknown"),
                WriteOutcome::Pending => Some("pending_approval"),
                WriteOutcome::NotSent => Some("not_sent"),
                WriteOutcome::Applied | WriteOutcome::Failed => None,
            },
            error: error.map(|e| runbook_secret::redact(&e.to_string()).into_owned()),
        };
        self.run.auditor().note(step, AuditEvent::HostCall(call));
    }

    /// The change request a write of `function` on `target` was filed as and that no later
    /// write of the same change has seen applied: its journalled detail and the request.
    pub(crate) fn open_request(&self, function: &str, target: &str) -> Option<(Value, Filed)> {
        self.ledger()
            .read(None, |l| l.open_request(function, target))
    }
}

#[cfg(test)]
mod tests {
    use super::outcome_of_failure;
    use crate::events::WriteOutcome;
    use rhai::{Dynamic, EvalAltResult, Position};

    /// Before: Ctrl-C (or a spent budget) while a write's answer was awaited recorded the
    /// write as refused, though its request had left: a resume or rollback took it as never
    /// applied. It may have applied.
    #[test]
    fn a_write_whose_wait_was_stopped_may_have_applied() {
        let stopped = EvalAltResult::ErrorTerminated(Dynamic::from("interrupted"), Position::NONE);
        assert_eq!(outcome_of_failure(&stopped), WriteOutcome::Unknown);
        let answered = |status: i64| {
            let mut m = rhai::Map::new();
            m.insert("vendor".into(), "infisical".into());
            m.insert("status".into(), Dynamic::from(status));
            EvalAltResult::ErrorRuntime(m.into(), Position::NONE)
        };
        assert_eq!(outcome_of_failure(&answered(422)), WriteOutcome::Failed);
        // A server error says the vendor failed to answer, not that it did nothing.
        assert_eq!(outcome_of_failure(&answered(500)), WriteOutcome::Unknown);
        assert_eq!(outcome_of_failure(&answered(503)), WriteOutcome::Unknown);
        // A read the call made before its write (GitHub's public key) failed: the write
        // never left (review of this session's change).
        let mut read = rhai::Map::new();
        read.insert("vendor".into(), "github".into());
        read.insert("method".into(), "GET".into());
        read.insert("status".into(), Dynamic::from(500_i64));
        let read = EvalAltResult::ErrorRuntime(read.into(), Position::NONE);
        assert_eq!(outcome_of_failure(&read), WriteOutcome::Failed);
    }
}
