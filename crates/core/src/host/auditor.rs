//! A run's audit trail: entries appended to the hash-chained log under the run's identity,
//! the head it leaves, and the optional webhook every entry is also sent to.

use crate::audit::{Action, AuditEvent, AuditLog, Event};
use crate::error::{Error, Result};
use crate::run::RunInfo;
use crate::sink::Say;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Where every entry is also sent (`RUNBOOK_AUDIT_WEBHOOK`), over the run's own client.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    pub services: Rc<super::Services>,
}

pub struct Auditor {
    log: AuditLog,
    info: RunInfo,
    say: Say,
    /// `RUNBOOK_AUDIT_WEBHOOK`, when set: every entry is also sent there.
    webhook: Option<Webhook>,
    /// The webhook failed once in this run.
    webhook_down: Cell<bool>,
    /// The hash of the last entry this run wrote: the head it leaves.
    head: RefCell<Option<String>>,
    /// The hash of the last entry this run wrote that is durable: what the run's end
    /// journals (a journal naming an entry a power loss took back would read as a log cut).
    durable_head: RefCell<Option<String>>,
    /// The run's journal, whose stored tip each entry names.
    journal: Option<Rc<crate::ledger::LedgerWriter>>,
    /// Entries the log could not take, in order: written before anything else, and before
    /// any vendor write is sent (`flush`).
    unsaved: RefCell<std::collections::VecDeque<(String, Action, serde_json::Value)>>,
    /// Entries appended without being made durable: `before_write` and `settle` sync them.
    unsynced: Cell<bool>,
}

impl Auditor {
    pub fn new(log: AuditLog, info: RunInfo, say: Say, webhook: Option<Webhook>) -> Auditor {
        Auditor {
            log,
            info,
            say,
            webhook,
            webhook_down: Cell::new(false),
            head: RefCell::new(None),
            durable_head: RefCell::new(None),
            journal: None,
            unsaved: RefCell::default(),
            unsynced: Cell::new(false),
        }
    }

    /// Links every entry to the run's journal (its stored tip), so the journal is under
    /// the audit chain.
    pub fn linked(self, journal: Rc<crate::ledger::LedgerWriter>) -> Auditor {
        let mut linked = self;
        linked.journal = Some(journal);
        linked
    }

    /// Writes what the log refused earlier, retrying for `wait`, and makes the run's
    /// entries durable; says what stays unwritten.
    pub fn settle(&self, wait: std::time::Duration) {
        let mut backoff = crate::interrupt::Backoff::new(wait);
        loop {
            match self.before_write() {
                Ok(()) => return,
                Err(e) if !e.is_final() && backoff.wait() => {}
                Err(e) => {
                    let unsaved = self.unsaved.borrow().len();
                    self.say.warning(if unsaved > 0 {
                        format!(
                            "warning: {unsaved} audit entr(ies) of this run could not be written to {}: {e}",
                            self.log.location()
                        )
                    } else {
                        // Written, but not made durable (the journal they name first, so the
                        // error may be the journal's).
                        format!(
                            "warning: this run's last records may not survive a power loss: {e}"
                        )
                    });
                    // Said once: the drop does not try (and say) it again.
                    self.unsynced.set(false);
                    return;
                }
            }
        }
    }

    /// Writes the entries the log could not take earlier, in order: `Err` while it still
    /// cannot (a vendor write then waits, or is not sent).
    pub fn flush(&self) -> Result<()> {
        loop {
            let Some((step, action, context)) = self.unsaved.borrow().front().cloned() else {
                return Ok(());
            };
            self.write(&step, action, context)?;
            self.unsaved.borrow_mut().pop_front();
        }
    }

    /// Before a vendor write is sent: every entry so far written (`flush`) and durable.
    /// Entries are appended without an fsync each; they are made durable here, before the
    /// next effect at a vendor, and at the run's end, so a power loss can only lose entries
    /// after the last effect: the state of a crash before they were written.
    pub fn before_write(&self) -> Result<()> {
        self.flush()?;
        if self.unsynced.get() {
            // The entries name journal lines already durable when they were written (see
            // `write`), so the log's sync need not wait for the journal's: the two run at
            // once, one fsync's time off every vendor write. A power loss between them
            // leaves entries naming lines that are there, and no write sent.
            match &self.journal {
                Some(journal) if !self.log.appends_are_durable() => {
                    let log = &self.log;
                    std::thread::scope(|s| {
                        let synced = s.spawn(|| log.sync());
                        let journal_synced = journal.sync();
                        let log_synced = synced
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                        journal_synced.and(log_synced)
                    })?;
                }
                Some(journal) => {
                    journal.sync()?;
                    self.log.sync()?;
                }
                None => self.log.sync()?,
            }
            self.unsynced.set(false);
        }
        *self.durable_head.borrow_mut() = self.head.borrow().clone();
        Ok(())
    }

    /// The same trail for another runbook of the same run (the REPL loads runbooks).
    pub fn for_runbook(&self, runbook_id: &str) -> Auditor {
        let mut info = self.info.clone();
        info.runbook_id = runbook_id.to_string();
        Auditor {
            log: self.log.clone(),
            info,
            say: self.say.clone(),
            webhook: self.webhook.clone(),
            webhook_down: Cell::new(self.webhook_down.get()),
            head: RefCell::new(self.head.borrow().clone()),
            durable_head: RefCell::new(self.durable_head.borrow().clone()),
            journal: self.journal.clone(),
            // What this trail still owes moves with it: the entries the log refused, and
            // the ones not yet synced (this one is replaced).
            unsaved: RefCell::new(std::mem::take(&mut *self.unsaved.borrow_mut())),
            unsynced: Cell::new(self.unsynced.replace(false)),
        }
    }

    /// The head of the audit chain after this run's last entry, if it wrote one.
    pub fn head(&self) -> Option<String> {
        self.head.borrow().clone()
    }

    /// This run's last entry that is durable, if it wrote one: what a journal line names.
    pub fn durable_head(&self) -> Option<String> {
        self.durable_head.borrow().clone()
    }

    /// Appends an engine event for `step`. One whose context is over the entry limit (a
    /// huge error text) is still recorded, with the context summarised.
    pub fn event(&self, step: &str, event: AuditEvent) -> Result<()> {
        let action = event.action();
        match self.write(step, action.clone(), event.context()) {
            Err(Error::AuditTooLarge { bytes, limit, .. }) => {
                #[derive(serde::Serialize)]
                struct Omitted {
                    omitted: String,
                }
                let omitted = Omitted {
                    omitted: format!(
                        "the context made a {bytes}-byte entry, over the {limit}-byte limit"
                    ),
                };
                let context = serde_json::to_value(omitted).unwrap_or_default();
                self.write(step, action, context)
            }
            other => other,
        }
    }

    /// `event`, with a warning instead of an error: a log that cannot be written must not
    /// end a run that already changed things. The entry is kept and written before the
    /// run's next vendor write, which waits for it.
    pub fn note(&self, step: &str, event: AuditEvent) {
        let kept = self.flush().and_then(|()| self.event(step, event.clone()));
        if let Err(e) = kept {
            self.say.warning(format!(
                "warning: could not write the audit log: {e}; the entry is kept, and no vendor write is sent until the log takes it"
            ));
            self.unsaved.borrow_mut().push_back((
                step.to_string(),
                event.action(),
                event.context(),
            ));
        }
    }

    /// Appends an entry for `step`, refusing one over the entry limit (a runbook's own entry
    /// is its author's to shrink).
    pub fn entry(&self, step: &str, event: AuditEvent) -> Result<()> {
        self.write(step, event.action(), event.context())
    }

    fn write(&self, step: &str, action: Action, context: serde_json::Value) -> Result<()> {
        // Another run holds the lock now: this process's verdicts (a step failed, undone,
        // the run completed) are not the run's, and stood in the evidence beside the new
        // holder's. What it did at a vendor (a write answered after the loss) stays true,
        // and is kept.
        if action != Action::HostCall && self.journal.as_ref().is_some_and(|j| j.lease_lost()) {
            return Ok(());
        }
        // An entry the webhook is sent is durable first: a power loss must not leave the
        // webhook holding an entry the local chain then lost (and forked from).
        let durable = self.webhook.is_some() && !self.webhook_down.get();
        if durable {
            // And the journal line it names.
            if let Some(journal) = &self.journal {
                journal.sync()?;
            }
        }
        let entry = self.log.append(
            &Event {
                actor: self.info.actor.clone(),
                run_id: self.info.run_id.clone(),
                runbook: self.info.runbook_id.clone(),
                step: step.to_string(),
                action,
                mode: self.info.modes.label(),
                context,
                journal: self.journal.as_ref().and_then(|j| j.durable()),
                login: None,
            },
            durable,
        )?;
        self.unsynced.set(!durable || self.unsynced.get());
        *self.head.borrow_mut() = Some(entry.hash.clone());
        if !self.unsynced.get() {
            *self.durable_head.borrow_mut() = Some(entry.hash.clone());
        }
        self.send(&entry);
        Ok(())
    }

    /// Sends an entry to the webhook (retried like any idempotent call). The local entry is
    /// already written; a failing webhook only warns, once, and is skipped from then on: a
    /// dead webhook must not stall a rotation at every step.
    fn send(&self, entry: &crate::audit::AuditEntry) {
        let Some(hook) = &self.webhook else {
            return;
        };
        if self.webhook_down.get() {
            return;
        }
        let failure = match post(hook, entry) {
            None => return,
            Some(why) => why,
        };
        self.webhook_down.set(true);
        self.say.warning(format!(
            "warning: the audit webhook did not take entry {} ({failure}); the local audit log has it and every later entry of this run (the webhook is skipped from now on)",
            entry.hash
        ));
    }
}

impl Drop for Auditor {
    /// A last sync for an end that did not `settle` (an error's early return); a failure is
    /// said, as `settle` says it.
    fn drop(&mut self) {
        if self.unsynced.get() {
            // The journal lines the entries name first: an audit trail durable ahead of its
            // journal reads as a journal cut short after a power loss.
            let journal = self.journal.as_ref().map_or(Ok(()), |j| j.sync());
            if let Err(e) = journal.and_then(|()| self.log.sync()) {
                self.say.warning(format!(
                    "warning: this run's last audit entries may not survive a power loss: {e}"
                ));
            }
        }
    }
}

/// Posts one entry; `None` when the webhook took it, else why not.
fn post(hook: &Webhook, entry: &crate::audit::AuditEntry) -> Option<String> {
    let vendors = hook.services.vendors().ok()?;
    let req = runbook_vendors::Request::new("audit-webhook", reqwest::Method::POST, &hook.url)
        // Its path is a credential (Slack, Teams, Discord): errors name the hook, not it.
        .route("RUNBOOK_AUDIT_WEBHOOK")
        .json(serde_json::to_value(entry).unwrap_or_default())
        .idempotent(true);
    let transport = vendors.transport().clone();
    let sent = hook
        .services
        .runtime
        .block_on(async move { transport.send(req).await });
    match sent {
        Ok(Ok(r)) if r.is_success() => None,
        Ok(Ok(r)) => Some(format!("HTTP {}", r.status)),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("interrupted".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A record is not fsynced on its own: before each vendor write the write's own line is
    /// stored, then the journal and the audit entries made durable (at once: the entries
    /// name lines already durable); and at the end.
    #[test]
    fn records_are_made_durable_before_each_vendor_write_and_at_the_end_not_one_by_one() {
        use crate::audit::{AuditEvent, AuditLog};
        use crate::ledger::tests::{ended, finished, sent, started};
        use crate::ledger::*;
        use crate::run::{Effect, Entry, Modes, RunStatus, Target};
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let run_id = "20261205T000000000Z-durable";
        let say = crate::sink::Say::new(std::sync::Arc::new(crate::sink::Quiet), run_id);
        let files = crate::store::Files::new(dir.path(), say.clone());
        let trace = files.trace.clone();
        let store: Store = std::sync::Arc::new(files);
        let writer = std::rc::Rc::new(crate::ledger::LedgerWriter::new(&store, say.clone()));
        let info = crate::run::RunInfo {
            run_id: run_id.into(),
            actor: "ops".into(),
            runbook_id: "rb".into(),
            modes: Modes {
                target: Target::Production,
                effect: Effect::Apply,
                entry: Entry::Exec,
            },
        };
        let auditor = Auditor::new(AuditLog::new(&store), info, say, None).linked(writer.clone());
        let step = |name: &str| {
            Event::StepStarted(StepStarted {
                step: name.into(),
                attempt: Some(1),
                out_of_order: false,
            })
        };
        let taken =
            |trace: &std::sync::Mutex<Vec<String>>| std::mem::take(&mut *trace.lock().unwrap());

        writer.required(started(Target::Production)).unwrap();
        assert_eq!(
            taken(&trace),
            ["journal line", "journal sync"],
            "the start is durable: the run's audit entries, in a log other runs sync, name it"
        );
        let synced = crate::state::SYNCED_DIRS.lock().unwrap().clone();
        assert!(
            synced.contains(&dir.path().join("runs")) && synced.contains(&dir.path().to_path_buf()),
            "the new journal's folder entry is durable, and the new runs folder's: {synced:?}"
        );

        // The journal line an entry names, read back from the log's last entry.
        let named = || {
            let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
            let last: serde_json::Value =
                serde_json::from_str(log.lines().last().unwrap()).unwrap();
            last["journal"]["lines"].as_u64().unwrap()
        };
        writer.record(step("precheck"));
        auditor
            .entry("precheck", AuditEvent::StepCompleted { duration_ms: 1 })
            .unwrap();
        assert_eq!(
            named(),
            1,
            "an entry names the last durable line: a power loss could take line 2 back while another run's sync keeps the entry"
        );
        // So does a run's end name only a durable entry: this one is not, yet.
        assert!(auditor.head().is_some());
        assert_ne!(auditor.durable_head(), auditor.head());
        writer.record(step("store"));
        assert_eq!(
            taken(&trace),
            ["journal line", "audit entry", "journal line"],
            "reads and step boundaries are not fsynced one by one"
        );

        writer
            .before_write(sent("store", "A"), &|| auditor.before_write(), true)
            .unwrap();
        // The two syncs run at once (on two threads): in either order.
        let mut before = taken(&trace);
        before[1..].sort();
        assert_eq!(
            before,
            ["journal line", "audit sync", "journal sync"],
            "before the write: its own line, then the journal and the audit entries (which name lines already durable) made durable: two fsyncs, not three"
        );

        writer
            .before_write(sent("store", "B"), &|| auditor.before_write(), true)
            .unwrap();
        assert_eq!(
            taken(&trace),
            ["journal line", "journal sync"],
            "no audit entry to sync before a second write: one fsync"
        );

        // A fan-out's batch: every target's line, the last one durable, before any is sent.
        for (target, last) in [("C", false), ("D", false), ("E", true)] {
            writer
                .before_write(sent("store", target), &|| auditor.before_write(), last)
                .unwrap();
        }
        assert_eq!(
            taken(&trace),
            [
                "journal line",
                "journal line",
                "journal line",
                "journal sync"
            ],
            "one fsync for a fan-out's lines"
        );

        // The end as the runner makes it: the journal's last line durable, then the entry
        // that names it (the run's status under the chain), then the log synced.
        writer.record(ended("store", "B", WriteOutcome::Applied));
        writer.record(finished(RunStatus::Succeeded));
        writer.settle();
        auditor
            .entry(
                "",
                AuditEvent::RunCompleted {
                    status: RunStatus::Succeeded,
                    failed_step: None,
                    left_alone: Vec::new(),
                },
            )
            .unwrap();
        auditor.settle(std::time::Duration::from_secs(1));
        assert_eq!(
            taken(&trace),
            [
                "journal line",
                "journal line",
                "journal sync",
                "audit entry",
                "audit sync"
            ],
            "the end is durable"
        );
        assert_eq!(named(), 10, "the run's end is under the chain");
        assert_eq!(auditor.durable_head(), auditor.head());
        // What was written is all there, chained.
        let text =
            std::fs::read_to_string(dir.path().join(format!("runs/{run_id}.jsonl"))).unwrap();
        assert_eq!(text.lines().count(), 10);
    }

    /// The REPL's `:load` gives the run's trail to another runbook: the entries not yet
    /// synced go with it, and are synced before its first write. Before, the new trail
    /// started clean and the next write went out with them unsynced.
    #[test]
    fn a_trail_given_to_another_runbook_still_syncs_what_it_owes() {
        use crate::audit::{AuditEvent, AuditLog};
        use crate::run::{Effect, Entry, Modes, Target};
        let dir = tempfile::tempdir().unwrap();
        let say = crate::sink::Say::new(
            std::sync::Arc::new(crate::sink::Quiet),
            "20261205T000000000Z-moved",
        );
        let files = crate::store::Files::new(dir.path(), say.clone());
        let trace = files.trace.clone();
        let store: crate::store::Store = std::sync::Arc::new(files);
        let info = crate::run::RunInfo {
            run_id: "20261205T000000000Z-moved".into(),
            actor: "ops".into(),
            runbook_id: "a".into(),
            modes: Modes {
                target: Target::Production,
                effect: Effect::Apply,
                entry: Entry::Repl,
            },
        };
        let first = Auditor::new(AuditLog::new(&store), info, say, None);
        first
            .entry("", AuditEvent::StepCompleted { duration_ms: 1 })
            .unwrap();
        let second = first.for_runbook("b");
        drop(first);
        trace.lock().unwrap().clear();
        second.before_write().unwrap();
        assert_eq!(*trace.lock().unwrap(), ["audit sync"]);
    }
}
