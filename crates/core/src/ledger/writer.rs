//! Appending to a run's ledger: each event is stored, folded into the run's live `Ledger`
//! and handed to the sink, in that order.

use super::{encode, Event, Ledger, Stamped};
use crate::error::Result;
use crate::sink::Say;
use crate::store::Store;
use std::cell::{Cell, Ref, RefCell};

/// The run's ledger, appending. One per run, shared by everything that records.
pub struct LedgerWriter {
    store: Store,
    say: Say,
    /// The fold so far; `None` until `run_started`.
    ledger: RefCell<Option<Ledger>>,
    /// Set once an event could not be stored: the operator was told, once.
    broken: Cell<bool>,
}

impl LedgerWriter {
    /// A new run's ledger (nothing is stored until its first event).
    pub fn new(store: &Store, say: Say) -> LedgerWriter {
        LedgerWriter {
            store: store.clone(),
            say,
            ledger: RefCell::new(None),
            broken: Cell::new(false),
        }
    }

    /// A stopped run's ledger, folded from its journal, to append to.
    pub fn reopened(store: &Store, say: Say, ledger: Ledger) -> LedgerWriter {
        let w = LedgerWriter::new(store, say);
        *w.ledger.borrow_mut() = Some(ledger);
        w
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
    /// be resumed or rolled back.
    pub fn required(&self, event: Event) -> Result<()> {
        let (line, stamped) = stored_form(Stamped::now(self.run_id(), event));
        self.store.journal_append(self.run_id(), &line)?;
        self.fold_and_emit(&stamped);
        Ok(())
    }

    /// Appends an event, redacted, durably. A journal that cannot be written is reported
    /// once and then left alone: the run goes on, but the operator knows resume will not be
    /// possible. The live fold takes the event either way.
    pub fn record(&self, event: Event) {
        let (line, stamped) = stored_form(Stamped::now(self.run_id(), event));
        if !self.broken.get() {
            if let Err(e) = self.store.journal_append(self.run_id(), &line) {
                self.say.warning(format!(
                    "warning: cannot write the run journal {}: {e}; this run cannot be resumed",
                    self.location()
                ));
                self.broken.set(true);
            }
        }
        self.fold_and_emit(&stamped);
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

/// The line as stored (redacted) and the event read back from it: the live fold, the sink
/// and a later reader of the journal all see exactly the same event.
fn stored_form(event: Stamped) -> (String, Stamped) {
    let line = encode(&event);
    let stored = serde_json::from_str(&line).unwrap_or(event);
    (line, stored)
}
