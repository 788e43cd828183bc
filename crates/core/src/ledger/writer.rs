//! Appending to a run's ledger: each event is chained (`chain`), stored, folded into the
//! run's live `Ledger` and handed to the sink, in that order. A vendor write is recorded
//! before it is sent, fenced by the run's lease, or not sent at all.

use super::chain::{self, Link};
use super::{encode, Event, Ledger, Stamped};
use crate::error::Result;
use crate::interrupt::Backoff;
use crate::sink::Say;
use crate::store::{Fence, Store};
use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Why a write was not sent: its record could not be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrecorded {
    /// Another run took this run's lock: it never writes again.
    LeaseLost,
    /// The store did not take the record within the wait; the error it last gave.
    StoreDown(String),
}

impl std::fmt::Display for Unrecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unrecorded::LeaseLost => f.write_str(
                "this run no longer holds its rotation lock: another run took it (--break-lock, or after this run's lease ran out), or its lock was removed; it makes no further write, so two runs never rotate the same secret",
            ),
            Unrecorded::StoreDown(e) => write!(
                f,
                "the write was not sent because its record could not be stored: {e}"
            ),
        }
    }
}

/// Why a write must not be sent, and whether its line is in the journal already (then its
/// outcome, not sent, is the caller's to record, with its audit entry).
#[derive(Debug)]
pub struct Refused {
    pub why: Unrecorded,
    pub stored: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.why.fmt(f)
    }
}

/// A line made but not yet stored: its place in the chain and its text.
struct Unsaved {
    link: Link,
    line: String,
}

/// The run's ledger, appending. One per run, shared by everything that records.
pub struct LedgerWriter {
    store: Store,
    say: Say,
    /// The fold so far; `None` until `run_started`.
    ledger: RefCell<Option<Ledger>>,
    /// The chain's tip: the last line made.
    tip: RefCell<Link>,
    /// The last line the store holds.
    stored: RefCell<Link>,
    /// The last line the store holds durably: what an audit entry names. An entry naming a
    /// line a power loss could take back (the log is one file every run syncs, so the entry
    /// may outlive the line) would leave an honest crash looking like a rewritten journal.
    durable: RefCell<Link>,
    /// Lines made while the store could not take them, in order: stored before anything
    /// else, and before any write is sent.
    unsaved: RefCell<VecDeque<Unsaved>>,
    /// The lease a write's record is fenced by (a run that holds a rotation lock).
    fence: RefCell<Option<Fence>>,
    /// Set once the fence found the lease taken: nothing is written again.
    lost: Cell<bool>,
    /// Set while the store refuses records: the operator was told, once per outage.
    outage: Cell<bool>,
    /// Set once the store refused records past its wait (the run stops writing), cleared
    /// once it takes them again: asked by the transport's write fence, so that a write
    /// already on its way (a fan-out target waiting for a vendor's pool) is not sent while
    /// the run cannot record what it does. A refusal within the wait holds new targets
    /// (`catch_up`), not those already on their way.
    unrecorded: Arc<AtomicBool>,
    /// Lines stored without being made durable since the last sync.
    unsynced: Cell<bool>,
    /// Set once `settle` said the last lines may not survive a power loss.
    sync_said: Cell<bool>,
}

impl LedgerWriter {
    /// A new run's ledger (nothing is stored until its first event).
    pub fn new(store: &Store, say: Say) -> LedgerWriter {
        LedgerWriter {
            store: store.clone(),
            say,
            ledger: RefCell::new(None),
            tip: RefCell::new(Link::start()),
            stored: RefCell::new(Link::start()),
            durable: RefCell::new(Link::start()),
            unsaved: RefCell::new(VecDeque::new()),
            fence: RefCell::new(None),
            lost: Cell::new(false),
            outage: Cell::new(false),
            unrecorded: Default::default(),
            unsynced: Cell::new(false),
            sync_said: Cell::new(false),
        }
    }

    /// A stopped run's ledger, folded from its journal, to append to after `tip` (its last
    /// line and that line's hash).
    pub fn reopened(store: &Store, say: Say, ledger: Ledger, tip: Link) -> LedgerWriter {
        let w = LedgerWriter::new(store, say);
        *w.ledger.borrow_mut() = Some(ledger);
        *w.tip.borrow_mut() = tip.clone();
        *w.stored.borrow_mut() = tip.clone();
        *w.durable.borrow_mut() = tip;
        w
    }

    /// Fences every later write's record by this lease.
    pub fn fence(&self, fence: Fence) {
        *self.fence.borrow_mut() = Some(fence);
    }

    /// Set while the journal refuses records (`unrecorded`), for the transport's fence.
    pub fn unrecorded_flag(&self) -> Arc<AtomicBool> {
        self.unrecorded.clone()
    }

    /// Whether the fence found the run's lease taken: this process records nothing more.
    pub fn lease_lost(&self) -> bool {
        self.lost.get()
    }

    /// The last line the store holds durably, for the audit entries that link to it
    /// (`None` before the first).
    pub fn durable(&self) -> Option<Link> {
        Some(self.durable.borrow().clone()).filter(|l| l.lines > 0)
    }

    pub fn run_id(&self) -> &str {
        self.say.run_id()
    }

    /// Where the journal is, for messages.
    pub fn location(&self) -> String {
        self.store.journal_where(self.run_id())
    }

    /// The fold so far (`None` before the run's first event).
    pub fn ledger(&self) -> Option<Ref<'_, Ledger>> {
        Ref::filter_map(self.ledger.borrow(), Option::as_ref).ok()
    }

    /// Reads the fold: `f` gets it, or `or` before the first event.
    pub fn read<T>(&self, or: T, f: impl FnOnce(&Ledger) -> T) -> T {
        match self.ledger() {
            Some(l) => f(&l),
            None => or,
        }
    }

    /// The writes of a step that are in effect (not undone since).
    pub fn writes_of(&self, step: &str) -> Vec<super::Write> {
        self.read(Vec::new(), |l| l.writes_of(step))
    }

    /// Whether a write of the step may or may not have taken effect (see `Ledger::in_doubt`).
    pub fn in_doubt(&self, step: &str) -> bool {
        self.read(false, |l| l.in_doubt(step))
    }

    /// Appends an event the run cannot go on without (its start, a takeover): a journal
    /// that cannot be written stops the run before it changes anything, since it could not
    /// be resumed or rolled back. Durable at once: the run's audit entries follow it, and
    /// another process's sync of the shared audit log may make them durable at any time;
    /// entries that outlive a power loss must not name a journal without its start.
    pub fn required(&self, event: Event) -> Result<()> {
        let stamped = self.make(event);
        self.flush()?;
        self.sync()?;
        self.fold_and_emit(&stamped);
        Ok(())
    }

    /// Appends an event, redacted. A journal that cannot take it keeps it, in order, for
    /// later: the operator is told, and no vendor write is sent until every kept line is
    /// stored (`before_write`). The live fold takes the event either way.
    ///
    /// It is not fsynced on its own: every line is durable before the run's next vendor
    /// write is sent and at its end (`before_write`, `settle`). A power loss in between
    /// loses only lines after the last effect, which is the state of a crash before they
    /// were written, the state resume already reconciles. An fsync per record cost 60-odd
    /// fsyncs per rotation on the critical path.
    pub fn record(&self, event: Event) {
        if self.lost.get() {
            // Another run holds the lock and appends to this journal now.
            let (_, stamped) = stored_form(Stamped::now(self.run_id(), event));
            self.fold_and_emit(&stamped);
            return;
        }
        let refused = matches!(event, Event::WriteOutcome(_)) && crate::hooks::outcome_refused();
        let stamped = self.make(event);
        let flushed = if refused {
            Err(crate::error::Error::State {
                message: "refused by RUNBOOK_REFUSE_OUTCOME_AT (a test hook)".into(),
                help: String::new(),
            })
        } else {
            self.flush()
        };
        if let Err(e) = flushed {
            if self.lost.get() {
                self.say.warning(format!(
                    "warning: {}; this process records nothing more",
                    Unrecorded::LeaseLost
                ));
            } else if !self.outage.replace(true) {
                self.say.warning(format!(
                    "warning: cannot write the run journal {}: {e}; this run sends no vendor write until the journal takes its records again",
                    self.location()
                ));
            }
        }
        self.fold_and_emit(&stamped);
    }

    /// Records a write before it is sent: every kept line first, then `also` (the audit
    /// trail's kept entries, which name journal lines already durable: the auditor syncs
    /// this journal and its log at once) and the write's own line, fenced by the run's lease. A
    /// store that does not answer is retried with backoff for the store's wait; a lease
    /// another run took is final. `Err`: the write must not be sent; when its line was
    /// stored, the caller records its outcome (not sent).
    ///
    /// `durable`: the line, and every line before it, is on stable storage when this
    /// returns. A fan-out records a batch of its targets' lines and makes only the last one
    /// durable, before any of them is sent: one fsync, not one per target. On a store whose appends
    /// need an fsync (files) the write's line is stored before `also`, so the journal's one
    /// sync covers it (two fsyncs before a write, not three), and the lease is checked again
    /// after the syncs; on a database, whose every append is a commit, it is stored last,
    /// fenced, as the last thing before the send.
    pub fn before_write(
        &self,
        event: Event,
        also: &dyn Fn() -> Result<()>,
        durable: bool,
    ) -> std::result::Result<(), Refused> {
        let refused = |why| Refused { why, stored: false };
        if self.lost.get() {
            return Err(refused(Unrecorded::LeaseLost));
        }
        if crate::hooks::write_refused() {
            let why = "refused by RUNBOOK_REFUSE_WRITE_AT (a test hook)".to_string();
            return Err(refused(Unrecorded::StoreDown(why)));
        }
        let stamped = Stamped::now(self.run_id(), event);
        let line = encode(&stamped);
        let line_first = !self.store.appends_are_durable();
        // Stored once; a try after a failure only makes it durable.
        let mut stored = false;
        let tried = self.until_stored("the next vendor write before sending it", || {
            self.flush()?;
            if line_first && !stored {
                stored = self.store_line(&line, &stamped, false)?;
                if !stored {
                    return Ok(false);
                }
            }
            also()?;
            if !line_first {
                stored = self.store_line(&line, &stamped, durable)?;
                return Ok(stored);
            }
            if durable {
                self.sync()?;
            }
            // The lease was confirmed when the line was stored; the syncs (and a retry)
            // came since: confirmed again, as the last thing before the send.
            self.still_held()
        });
        match tried {
            Ok((true, told)) => {
                self.said_stored_again(told);
                Ok(())
            }
            Ok((false, _)) => {
                if stored {
                    self.not_sent_after_loss(&stamped.event);
                }
                self.lost.set(true);
                Err(Refused {
                    why: Unrecorded::LeaseLost,
                    stored,
                })
            }
            Err(why) => Err(Refused { why, stored }),
        }
    }

    /// Tries `attempt` until the store takes it, for the store's wait: a store that does
    /// not answer is tried again with backoff, the operator told once that `doing` waits
    /// on it. A lease another run took, a final error, Ctrl-C or the wait spent ends it.
    /// `Ok` holds whether the operator was told.
    fn until_stored<T>(
        &self,
        doing: &str,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> std::result::Result<(T, bool), Unrecorded> {
        let wait = self.store.wait();
        let mut backoff = Backoff::new(wait);
        let mut told = false;
        loop {
            if self.lost.get() {
                return Err(Unrecorded::LeaseLost);
            }
            let tried = attempt();
            if self.lost.get() {
                return Err(Unrecorded::LeaseLost);
            }
            match tried {
                Ok(v) => return Ok((v, told)),
                // Trying again cannot help: not sent, at once.
                Err(e) if e.is_final() => return Err(self.store_down(&e)),
                Err(e) => {
                    if !told {
                        self.say.warning(format!(
                            "warning: cannot record {doing}: {e}; nothing is sent until it is recorded; retrying for up to {} s",
                            wait.as_secs()
                        ));
                        told = true;
                    }
                    if !backoff.wait() {
                        return Err(self.store_down(&e));
                    }
                }
            }
        }
    }

    /// The store refused past its wait: the run stops writing (the transport's fence too).
    fn store_down(&self, e: &crate::error::Error) -> Unrecorded {
        self.unrecorded.store(true, Ordering::SeqCst);
        Unrecorded::StoreDown(e.to_string())
    }

    /// The store took records again after the operator was told it did not.
    fn said_stored_again(&self, told: bool) {
        self.unrecorded.store(false, Ordering::SeqCst);
        if told || self.outage.replace(false) {
            self.say
                .warning("the state store takes records again; the run goes on");
        }
    }

    /// Stores a write's line after the tip, fenced by the run's lease: `false` (nothing
    /// stored) when another run took it.
    fn store_line(&self, line: &str, stamped: &Stamped, durable: bool) -> Result<bool> {
        if !self.append_after_tip(line, true, durable)? {
            return Ok(false);
        }
        let read_back = serde_json::from_str(line).unwrap_or_else(|_| stamped.clone());
        self.fold_and_emit(&read_back);
        Ok(true)
    }

    /// Chains `line` after the tip and stores it, fenced by the run's lease or not: the tip
    /// moves to it once it is stored; `false` (nothing stored) when the fence found the
    /// lease taken.
    fn append_after_tip(&self, line: &str, fenced: bool, durable: bool) -> Result<bool> {
        let prev = self.tip.borrow().head.clone();
        let (chained, hash) = chain::chained(line, &prev);
        let stored = if fenced {
            self.append(&chained, durable)?
        } else {
            self.store
                .journal_append(self.run_id(), &chained, durable)?;
            true
        };
        if stored {
            let link = Link {
                lines: self.tip.borrow().lines + 1,
                head: hash,
            };
            *self.tip.borrow_mut() = link.clone();
            if durable {
                *self.durable.borrow_mut() = link.clone();
            }
            *self.stored.borrow_mut() = link;
        }
        Ok(stored)
    }

    /// A write whose line is stored and whose lock was taken before it left: when another
    /// run holds it (not this run resumed elsewhere), nothing else writes this journal, so
    /// the write's outcome, not sent, is stored without the fence; else (this run resumed,
    /// or the lock free again) it stays in doubt, for a resume to check at the vendor.
    fn not_sent_after_loss(&self, event: &Event) {
        let (Some(fence), Event::Write(w)) = (&*self.fence.borrow(), event) else {
            return;
        };
        // A free lock says nothing of who took it meanwhile (a resume of this run may have
        // come and gone): in doubt.
        let other = match self.store.lock_read(&fence.key) {
            Ok(crate::store::Slot::Held(Some(h))) => h.run_id != self.run_id(),
            _ => false,
        };
        if !other {
            return;
        }
        let stamped = Stamped::now(
            self.run_id(),
            Event::WriteOutcome(super::WriteSettled {
                step: w.step.clone(),
                function: w.function.clone(),
                target: w.target.clone(),
                outcome: super::WriteOutcome::NotSent,
                filed: None,
                undo: w.undo,
                answer: None,
            }),
        );
        let (line, _) = stored_form(stamped);
        // Best effort: a journal that refuses it leaves the write in doubt.
        let _ = self.append_after_tip(&line, false, true);
    }

    /// Whether this run still holds its lock (always, without a fence).
    fn still_held(&self) -> Result<bool> {
        match &*self.fence.borrow() {
            Some(f) => self.store.lock_renew(&f.key, &f.lease_id),
            None => Ok(true),
        }
    }

    /// Stores what the store refused earlier, retrying for the store's wait, and makes the
    /// journal durable: a run that ends while its store is down still leaves its end
    /// recorded if the store comes back in time. The operator is told what could not be
    /// stored.
    pub fn settle(&self) {
        if self.lost.get()
            || self.sync_said.get()
            || (self.unsaved.borrow().is_empty() && !self.unsynced.get())
        {
            return;
        }
        let mut backoff = Backoff::new(self.store.wait());
        loop {
            match self.flush().and_then(|()| self.sync()) {
                Ok(()) => return,
                Err(e) if !e.is_final() && backoff.wait() => {}
                Err(e) => {
                    let unsaved = self.unsaved.borrow().len();
                    self.say.warning(if unsaved > 0 {
                        format!(
                            "warning: {unsaved} record(s) of this run could not be stored in {}: {e}; its journal ends before them (`runbook runs {}` shows where)",
                            self.location(),
                            self.run_id()
                        )
                    } else {
                        format!(
                            "warning: this run's last records in {} may not survive a power loss: {e}",
                            self.location()
                        )
                    });
                    // Said once: the drop does not try (and say) it again. The lines stay
                    // unsynced: a later sync tries again, and until one succeeds no audit
                    // entry names them (before, a sync after this one did nothing and
                    // counted them durable).
                    self.sync_said.set(true);
                    return;
                }
            }
        }
    }

    /// Chains an event's line after the tip and keeps it to be stored.
    fn make(&self, event: Event) -> Stamped {
        let (line, parsed, stamped) = stored_parts(Stamped::now(self.run_id(), event));
        let prev = self.tip.borrow().head.clone();
        let (chained, hash) = match parsed {
            Some(serde_json::Value::Object(fields)) => chain::chained_fields(fields, &prev),
            _ => chain::chained(&line, &prev),
        };
        let link = Link {
            lines: self.tip.borrow().lines + 1,
            head: hash,
        };
        *self.tip.borrow_mut() = link.clone();
        self.unsaved.borrow_mut().push_back(Unsaved {
            link,
            line: chained,
        });
        stamped
    }

    /// Stores the kept lines, in order, up to the first the store refuses.
    fn flush(&self) -> Result<()> {
        if crate::hooks::journal_down() && !self.unsaved.borrow().is_empty() {
            return Err(crate::error::Error::State {
                message: "the journal is down (RUNBOOK_REFUSE_OUTCOME_AT, a test hook)".into(),
                help: String::new(),
            });
        }
        loop {
            let Some((line, link)) = self
                .unsaved
                .borrow()
                .front()
                .map(|u| (u.line.clone(), u.link.clone()))
            else {
                return Ok(());
            };
            if !self.append(&line, false)? {
                self.lost.set(true);
                self.unsaved.borrow_mut().clear();
                return Err(crate::error::Error::State {
                    message: Unrecorded::LeaseLost.to_string(),
                    help: "see `runbook runs` for the run that holds it".into(),
                });
            }
            self.unsaved.borrow_mut().pop_front();
            *self.stored.borrow_mut() = link;
        }
    }

    /// Before a write whose line is already durable is sent (a fan-out's later targets):
    /// the lines made since (its answers' outcomes) and `also` (the audit entries the log
    /// refused) are stored, retried with backoff for the store's wait as `before_write`
    /// does. `Err` once another run took the lease, or when the store still refuses them:
    /// the write must not be sent.
    ///
    /// The lease is confirmed as the last thing before the send, as `before_write` does: the
    /// target's line was stored under it, but perhaps long before (a slot freed, a batch
    /// recorded ahead), and `--break-lock` promises the holder stops before its next write.
    pub fn catch_up(&self, also: &dyn Fn() -> Result<()>) -> std::result::Result<(), Unrecorded> {
        let doing = "what this run did before its next vendor write";
        let (held, told) = self.until_stored(doing, || {
            self.flush()?;
            also()?;
            match &*self.fence.borrow() {
                Some(f) => self.store.lock_confirm(&f.key, &f.lease_id),
                None => Ok(true),
            }
        })?;
        self.said_stored_again(told);
        if !held {
            self.lost.set(true);
            return Err(Unrecorded::LeaseLost);
        }
        Ok(())
    }

    /// Makes every line stored so far durable.
    pub fn sync(&self) -> Result<()> {
        if self.unsynced.get() {
            self.store.journal_sync(self.run_id())?;
            self.unsynced.set(false);
        }
        *self.durable.borrow_mut() = self.stored.borrow().clone();
        Ok(())
    }

    /// Stores one line, fenced by the run's lease when it holds one: `false` when another
    /// run took the lease (nothing stored). `durable`: with every line before it.
    fn append(&self, line: &str, durable: bool) -> Result<bool> {
        let stored = match &*self.fence.borrow() {
            Some(f) => self
                .store
                .journal_append_fenced(self.run_id(), line, f, durable)?,
            None => {
                self.store.journal_append(self.run_id(), line, durable)?;
                true
            }
        };
        if stored {
            self.unsynced.set(!durable);
        }
        Ok(stored)
    }

    fn fold_and_emit(&self, stamped: &Stamped) {
        {
            let mut ledger = self.ledger.borrow_mut();
            match ledger.as_mut() {
                Some(l) => l.apply(stamped),
                None => *ledger = Ledger::begin(stamped),
            }
        }
        self.say.sink().event(stamped);
    }
}

impl Drop for LedgerWriter {
    /// A last sync for an end that did not `settle` (an error's early return); a failure is
    /// said, as `settle` says it.
    fn drop(&mut self) {
        if self.unsynced.get() && !self.lost.get() && !self.sync_said.get() {
            if let Err(e) = self.store.journal_sync(self.run_id()) {
                self.say.warning(format!(
                    "warning: this run's last records in {} may not survive a power loss: {e}",
                    self.location()
                ));
            }
        }
    }
}

/// The line as stored (redacted) and the event read back from it: the live fold, the sink
/// and a later reader of the journal all see exactly the same event.
fn stored_form(event: Stamped) -> (String, Stamped) {
    let (line, _, stored) = stored_parts(event);
    (line, stored)
}

/// As `stored_form`, with the line's fields as read back (once, for the fold and the chain
/// alike).
fn stored_parts(event: Stamped) -> (String, Option<serde_json::Value>, Stamped) {
    let line = encode(&event);
    let parsed = serde_json::from_str::<serde_json::Value>(&line).ok();
    let stored = parsed
        .as_ref()
        .and_then(|v| serde::Deserialize::deserialize(v).ok())
        .unwrap_or(event);
    (line, parsed, stored)
}

/// Where a journal ends: its last line and that line's hash (the genesis hash when the
/// journal predates the chain), to append after. A torn last line is not counted: the
/// store cuts it before the next append (counted, every later audit link named a line one
/// past the one it followed, and `audit verify` called the journal rewritten).
pub fn tip_of(text: &str) -> Link {
    let (hashes, verdict) = chain::verify(text);
    let lines = match verdict {
        chain::Verdict::Intact { .. } => hashes.len(),
        // Broken already: every line counts, as before; `audit verify` says where.
        chain::Verdict::Broken { .. } => text.lines().filter(|l| !l.trim().is_empty()).count(),
    };
    Link {
        lines: lines as u64,
        head: hashes
            .iter()
            .rev()
            .find_map(Clone::clone)
            .unwrap_or_else(|| crate::store::GENESIS.to_string()),
    }
}
