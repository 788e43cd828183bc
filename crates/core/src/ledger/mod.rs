//! A run's ledger: the append-only sequence of its events (`crate::events`), stored as its
//! journal (`runs/<run_id>.jsonl`, or rows of the shared database) one JSON object per
//! line, made durable before every vendor write and at the run's end (a power loss loses at
//! most the lines after the last effect: the state of a crash before they were written);
//! and the one fold of those events (`Ledger`) that every view reads. Secrets appear only as
//! fingerprints.

pub mod chain;
mod fold;
mod legacy;
pub mod stamps;
mod writer;

pub use crate::events::*;
pub use chain::Link;
pub use fold::{Happened, Ledger, Process, StepLine, StepState, Stop, Write};
pub use writer::{tip_of, LedgerWriter, Refused, Unrecorded};

use crate::error::{Error, Result};
use crate::store::Store;
use serde_json::Value;
use std::path::Path;

/// One line of the journal: the event, redacted as JSON (every string and key). Not again
/// as text: that pass rewrote a number holding a secret's digits (a pid, a duration, beside
/// a 6-digit PIN) to a bare `1secret(…)5`, and every later read called the journal damaged.
/// A number is the engine's own or a script's, never a Secret's text.
pub(crate) fn encode(event: &Stamped) -> String {
    let mut fields = serde_json::to_value(event).unwrap_or(Value::Null);
    runbook_secret::redact_json(&mut fields);
    fields.to_string()
}

/// A run's events, `None` when the store has no such run.
pub fn read_run(store: &Store, run_id: &str) -> Result<Option<Vec<Stamped>>> {
    match store.journal(run_id)? {
        None => Ok(None),
        Some(text) => parse(&text, Path::new(&store.journal_where(run_id)), run_id).map(Some),
    }
}

/// A run's events, folded; the errors name the run and what to do.
pub fn open(store: &Store, run_id: &str) -> Result<(Vec<Stamped>, Ledger)> {
    let not_found = || Error::RunNotFound {
        run_id: run_id.to_string(),
        dir: store.runs_where(),
    };
    if !crate::run::is_run_id(run_id) {
        return Err(not_found());
    }
    let Some(events) = read_run(store, run_id)? else {
        // A journal deleted under a run the audit log records: not "no such run" (a fault
        // review: every command then said so, and nothing named the token left live).
        let audited = crate::audit::AuditLog::new(store)
            .entries_of(run_id)
            .unwrap_or_default();
        return Err(gone(store, run_id, &audited).unwrap_or_else(not_found));
    };
    let ledger = Ledger::fold(&events).ok_or_else(|| Error::JournalDamaged {
        path: store.journal_where(run_id).into(),
        line: 1,
        reason: "it has no start record".into(),
    })?;
    Ok((events, ledger))
}

/// The error for a run whose journal is gone while the audit log holds `audited`, its
/// entries (`None` when it holds none: no such run).
pub fn gone(store: &Store, run_id: &str, audited: &[crate::audit::AuditEntry]) -> Option<Error> {
    let (first, last) = (audited.first()?, audited.last()?);
    Some(Error::JournalGone {
        run_id: run_id.to_string(),
        path: store.journal_where(run_id).into(),
        entries: audited.len(),
        last: last.time.clone(),
        help: format!(
            "without its journal the run cannot be resumed, rolled back or abandoned: restore the file as it was from a backup; otherwise put the vendors right by hand (`runbook audit show --since {}` lists what it did: a token it made may still be live), then start the next rotation with `runbook exec RUNBOOK --break-lock` if its lock is still held",
            first.time
        ),
    })
}

/// Whether a run's audit entries say it may have left changes at the vendors that nothing
/// settled: a vendor write that applied or may have (its answer lost, a change request
/// filed) after its last settled end (a success, a rollback, an abandon; a REPL attached
/// after it writes no entry of its own, so its writes count from that end). A rehearsal in
/// this process (its simulators ended with it) and a dry run never have.
pub fn audited_changes_unsettled(audited: &[crate::audit::AuditEntry]) -> bool {
    use crate::audit::Action;
    use crate::run::Mode;
    if audited
        .first()
        .is_some_and(|e| matches!(e.event.mode, Mode::Sandbox | Mode::DryRun))
    {
        return false;
    }
    let settled = |e: &&crate::audit::AuditEntry| match e.event.action {
        Action::RunAbandoned => true,
        Action::RunCompleted => settling(e.event.context.get("status")),
        _ => false,
    };
    let since = audited
        .iter()
        .rposition(|e| settled(&e))
        .map_or(0, |i| i + 1);
    audited[since..].iter().any(|e| {
        e.event.action == Action::HostCall
            && (e.event.context.get("ok").and_then(|v| v.as_bool()) == Some(true)
                || matches!(
                    e.event.context.get("outcome").and_then(|v| v.as_str()),
                    Some("unknown" | "pending_approval")
                ))
    })
}

/// A journal's text (an evidence pack's copy), folded.
pub fn from_text(text: &str, run_id: &str) -> Result<Ledger> {
    let path = Path::new("(the journal)");
    let events = parse(text, path, run_id)?;
    Ledger::fold(&events).ok_or_else(|| Error::JournalDamaged {
        path: path.into(),
        line: 1,
        reason: "it has no start record".into(),
    })
}

/// The runs started after `run_id` (run ids begin with their start time), folded, and
/// apart those whose journal cannot be read: a later run that may have rotated the same
/// secret is not dropped because its journal is damaged (`superseded_by`, `may_supersede`).
pub fn after(journals: &Journals, run_id: &str) -> Result<(Vec<Ledger>, Vec<Unreadable>)> {
    let later = journals
        .store
        .runs()?
        .into_iter()
        .filter(|id| id.as_str() > run_id);
    journals.read_all(later)
}

/// Whether a journal's last line settles its run: it records the run ending succeeded or
/// rolled back.
pub fn settles(last: &str) -> bool {
    // The record's own fields, not text anywhere in it: a write's detail or a step's ctx
    // holds a vendor's JSON, which may say `"status":"succeeded"`.
    let Ok(record) = serde_json::from_str::<Value>(last) else {
        return false;
    };
    record.get("type").and_then(Value::as_str) == Some("run_finished")
        && settling(record.get("status"))
}

/// Whether a recorded status (a journal's end, an audit entry's) settles its run: it
/// succeeded, or was rolled back, whole or but for what others changed since.
fn settling(status: Option<&Value>) -> bool {
    matches!(
        status.and_then(Value::as_str),
        Some("succeeded" | "rolled_back" | "partly_rolled_back")
    )
}

/// A run whose journal cannot be read: it may be unfinished, or have rotated a secret
/// again, and nothing says what it left.
pub struct Unreadable {
    pub run_id: String,
    /// The run as the lines before the damage say, when its first line can be read: which
    /// runbook, which rotation, part of what it did.
    pub start: Option<Ledger>,
    /// Its runbook: from `start`, or else from the audit log's entries of the run.
    pub runbook: Option<String>,
    pub error: Error,
    /// The SHA-256 of its bytes as stored, when they can be read at all.
    pub sha256: Option<String>,
}

/// Reads runs' journals from a store, with what the audit log says of those that cannot
/// be read (which runbook, whether `runbook abandon` set them aside, whether the run
/// existed at all). The log is read once, and only when such a journal is met: most reads
/// never touch it. A log that cannot be read says nothing, and every answer then fails
/// closed (not set aside, the runbook unknown, the run known).
pub struct Journals<'a> {
    store: &'a Store,
    /// The log's entries, or why it could not be read.
    audit: std::cell::OnceCell<std::result::Result<Vec<crate::audit::AuditEntry>, String>>,
    set_aside: std::cell::OnceCell<std::collections::HashMap<String, crate::audit::SetAsideBy>>,
}

impl<'a> Journals<'a> {
    pub fn new(store: &'a Store) -> Self {
        Journals {
            store,
            audit: std::cell::OnceCell::new(),
            set_aside: std::cell::OnceCell::new(),
        }
    }

    fn audit(&self) -> Option<&[crate::audit::AuditEntry]> {
        self.audit_read().as_deref().ok()
    }

    fn audit_read(&self) -> &std::result::Result<Vec<crate::audit::AuditEntry>, String> {
        self.audit.get_or_init(|| {
            crate::audit::AuditLog::new(self.store)
                .entries()
                .map_err(|e| e.to_string())
        })
    }

    /// How `run_id`'s journal was set aside by `runbook abandon`, if it was.
    pub fn set_aside(&self, run_id: &str) -> Option<&crate::audit::SetAsideBy> {
        self.set_aside
            .get_or_init(|| {
                self.audit()
                    .map(crate::audit::set_aside)
                    .unwrap_or_default()
            })
            .get(run_id)
    }

    /// Whether this journal is one `runbook abandon` set aside, still with the bytes it had
    /// then: its run is over (what it did stays unknown).
    pub fn holds(&self, u: &Unreadable) -> bool {
        self.set_aside(&u.run_id)
            .is_some_and(|s| s.holds(u.sha256.as_deref()))
    }

    /// Whether the audit log has an entry of the run (unknown: yes).
    fn audited(&self, run_id: &str) -> bool {
        self.audit()
            .is_none_or(|all| all.iter().any(|e| e.event.run_id == run_id))
    }

    /// The runbook the audit log's entries of the run name, when they all name the same
    /// one (a REPL session's entries, or a resume's from a renamed file, may not).
    fn runbook_audited(&self, run_id: &str) -> Option<String> {
        let mut named = self
            .audit()?
            .iter()
            .filter(|e| e.event.run_id == run_id && !e.event.runbook.is_empty())
            .map(|e| e.event.runbook.as_str());
        let first = named.next()?;
        named.all(|r| r == first).then(|| first.to_string())
    }

    /// The runs of `ids` folded, and apart those whose journal cannot be read.
    fn read_all(
        &self,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<(Vec<Ledger>, Vec<Unreadable>)> {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for id in ids {
            match self.read(id)? {
                Some(Ok(ledger)) => out.push(ledger),
                Some(Err(u)) => unreadable.push(u),
                None => {}
            }
        }
        Ok((out, unreadable))
    }

    /// A run's journal folded, or why it cannot be read (`None`: no such journal, or no
    /// run). A database that does not answer is the store's failure, not the journal's: an
    /// error.
    pub fn read(&self, id: String) -> Result<Option<std::result::Result<Ledger, Unreadable>>> {
        let store = self.store;
        let path = store.journal_where(&id);
        let path = Path::new(&path);
        let (text, sha256, error) = match store.journal(&id) {
            Ok(Some(text)) => {
                let sha256 = crate::text::sha256_hex(text.as_bytes());
                let error = match parse(&text, path, &id) {
                    // Not one whole line, and the audit log knows nothing of the run (its
                    // first entry follows the journal's first line): a crash right after
                    // the file was made. No record was ever durable, so no vendor write was
                    // sent (each waits for every line before it): no run happened. A
                    // journal the audit log knows was written, then damaged.
                    Ok(events) if events.is_empty() && !self.audited(&id) => return Ok(None),
                    Ok(events) if events.is_empty() => Error::JournalDamaged {
                        path: path.into(),
                        line: 1,
                        reason: match self.audit_read() {
                            Ok(_) => "it holds no whole record, though the audit log records the run"
                                .into(),
                            Err(e) => format!(
                                "it holds no whole record, and the audit log cannot be read to tell whether the run ever started ({e})"
                            ),
                        },
                    },
                    Ok(events) => match Ledger::fold(&events) {
                        Some(ledger) => return Ok(Some(Ok(ledger))),
                        // Read, but not a run: its start is gone.
                        None => Error::JournalDamaged {
                            path: path.into(),
                            line: 1,
                            reason: "no run_started record".into(),
                        },
                    },
                    Err(error) => error,
                };
                (text, Some(sha256), error)
            }
            Ok(None) => return Ok(None),
            // Over the size limit: unread, on any store (its bytes are not read either).
            Err(error @ Error::TooLarge { .. }) => (String::new(), None, error),
            Err(error) if store.appends_are_durable() => return Err(error),
            // Not read as text (a flipped byte, its size, its owner): its bytes as stored
            // are what an abandon records, and its whole lines before the first bad byte
            // still say which run it was.
            Err(error) => {
                let bytes = store.journal_bytes(&id).ok().flatten();
                let sha256 = bytes.as_deref().map(crate::text::sha256_hex);
                let valid = bytes
                    .as_deref()
                    .map_or("", |b| match std::str::from_utf8(b) {
                        Ok(text) => text,
                        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
                    });
                let whole = valid.rsplit_once('\n').map_or("", |(whole, _)| whole);
                (format!("{whole}\n"), sha256, error)
            }
        };
        let start = readable_start(&text, path, &id);
        let runbook = match &start {
            Some(l) => Some(l.start.runbook.clone()),
            None => self.runbook_audited(&id),
        };
        Ok(Some(Err(Unreadable {
            run_id: id,
            start,
            runbook,
            error,
            sha256,
        })))
    }
}

/// The run as the readable lines of a damaged journal say: those before the first that
/// cannot be read. Lines of another run (a copy put there) say nothing of this one.
fn readable_start(text: &str, path: &Path, id: &str) -> Option<Ledger> {
    let upto = match parse(text, path, id) {
        Ok(events) => Some(events),
        Err(Error::JournalDamaged { line, .. } | Error::JournalNewer { line, .. }) => {
            let prefix: String = text
                .lines()
                .take(line.saturating_sub(1))
                .map(|l| format!("{l}\n"))
                .collect();
            parse(&prefix, path, id).ok()
        }
        Err(_) => None,
    };
    let events = upto?;
    if events.iter().any(|e| e.run_id != id) {
        return None;
    }
    Ledger::fold(&events)
}

/// The runs that may be unfinished, folded: a journal whose last line records the run
/// ending succeeded or rolled back is settled, and is not folded (every exec asks this of
/// every run in the store). A journal that cannot be read is not skipped: it is returned
/// apart, so a new run of its rotation is refused rather than let through.
pub fn unsettled(journals: &Journals) -> Result<(Vec<Ledger>, Vec<Unreadable>)> {
    journals.read_all(journals.store.unsettled_runs(&settles)?)
}

/// The first later run that rotated the same secret as `run` (same runbook, rotation and
/// target class): it succeeded, or its changes are in effect and no rollback took them
/// back. `run`'s values were replaced by it, so rolling `run` back (or resuming it) would
/// undo that later rotation. An in-process rehearsal has a world of its own: never.
pub fn superseded_by<'a>(all: &'a [Ledger], run: &Ledger) -> Option<&'a Ledger> {
    // The nearest later run first: the search usually ends there.
    let mut later: Vec<&Ledger> = all.iter().filter(|l| l.run_id > run.run_id).collect();
    later.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    later.into_iter().find(|l| {
        same_rotation_later(l, run, true)
            && match l.settled() {
                Some(status) => status == crate::run::RunStatus::Succeeded,
                None => l.has_changes(),
            }
    })
}

/// Whether a later run whose journal cannot be read may have superseded `run`: the lines
/// before the damage say it is a rotation of the same secret, or its first line cannot be
/// read either. What it did is unknown, so it counts as if it succeeded.
pub fn may_supersede(later: &Unreadable, run: &Ledger) -> bool {
    later.run_id > run.run_id
        && match &later.start {
            Some(l) => same_rotation_later(l, run, false),
            // Its first line is gone: of the same runbook, or of one nothing can name.
            None => later
                .runbook
                .as_ref()
                .is_none_or(|r| *r == run.start.runbook),
        }
}

/// `l`, a later run, rotates the secret `run` rotated, where `run`'s values live: same
/// runbook, rotation and target class, and a real run that applies its changes. `whole`:
/// `l` is its whole journal; otherwise a part of it, which may not yet show that a
/// simulator answered it (a rehearsal), so only a part that does show it tells it apart.
fn same_rotation_later(l: &Ledger, run: &Ledger, whole: bool) -> bool {
    let same_world = if whole {
        l.is_rehearsal() == run.is_rehearsal()
    } else {
        run.is_rehearsal() || !l.is_rehearsal()
    };
    let same_rotation = match (&l.start.rotation, &run.start.rotation) {
        (Some(a), Some(b)) => a == b,
        // Journals from before the key was recorded: the same params.
        _ => l.start.params == run.start.params,
    };
    l.start.runbook == run.start.runbook
        && l.start.target == run.start.target
        && same_world
        && l.start.effect == crate::run::Effect::Apply
        && l.start.entry != crate::run::Entry::Repl
        && same_rotation
        && l.start.target != crate::run::Target::Sandbox
}

/// Every event of a journal file, in order.
pub fn read(path: &Path) -> Result<Vec<Stamped>> {
    let run_id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(
        &crate::state::read_state_within(path, crate::state::MAX_JOURNAL_BYTES, "a journal")?,
        path,
        &run_id,
    )
}

/// A journal's text, parsed (`path` names it in errors). A torn last line (the crash
/// happened mid-write) is dropped; anything else that cannot be read is a damaged journal,
/// never silently skipped.
pub(crate) fn parse(text: &str, path: &Path, run_id: &str) -> Result<Vec<Stamped>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let last = i + 1 == lines.len() && torn_tail(text);
        let damaged = |reason: String| Error::JournalDamaged {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if last => break,
            Err(e) => return Err(damaged(format!("not a JSON record ({e})"))),
        };
        out.push(event_of(value, run_id).map_err(|e| match e {
            Unread::Newer(reason) => Error::JournalNewer {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            },
            Unread::Damaged(reason) => damaged(reason),
        })?);
    }
    Ok(out)
}

/// Whether a journal's last line may be torn: only one without its newline. The store
/// writes a line and its newline in one append, and ends a torn line (or cuts it) before
/// the next; a database row is whole. A last line that has its newline and still cannot be
/// read was damaged after it was written, and dropping it could drop the very record
/// (an undo, a resume) that says the run is not settled.
pub fn torn_tail(text: &str) -> bool {
    !text.ends_with('\n')
}

/// Why a line is not an event this version reads.
enum Unread {
    /// A format version above this one's: a newer runbook wrote it.
    Newer(String),
    Damaged(String),
}

/// One parsed line as its event: the typed format, or the one before it.
fn event_of(value: Value, run_id: &str) -> std::result::Result<Stamped, Unread> {
    let newer = |what: &str| {
        Unread::Damaged(format!(
            "{what}: written by another version of runbook; use the version that wrote it"
        ))
    };
    // The format before events: `kind`, and no `type`.
    if value.get("type").is_none() {
        if let Some(kind) = value.get("kind").and_then(Value::as_str) {
            let kind = kind.to_string();
            return legacy::read(value, run_id)
                .map_err(|e| newer(&format!("a '{kind}' record this version cannot read ({e})")));
        }
    }
    let v = value.get("v").and_then(Value::as_u64).unwrap_or(0);
    if v > u64::from(VERSION) {
        return Err(Unread::Newer(format!(
            "an event of format version {v}; this version reads {VERSION}"
        )));
    }
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("(none)")
        .to_string();
    serde_json::from_value(value)
        .map_err(|e| newer(&format!("a '{kind}' event this version cannot read ({e})")))
}

#[cfg(test)]
pub(crate) mod tests;
