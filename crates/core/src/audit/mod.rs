//! The audit log: one JSON line per event (in `audit.jsonl`, or a table of the shared
//! database), each carrying the hash of the one before it, so an edited, removed or
//! reordered entry breaks the chain.

use crate::error::{Error, Result};
use crate::run::now_rfc3339;
use crate::run::Mode;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use crate::store::GENESIS;

/// The largest entry the log takes, as written (one JSON line). Larger contexts are refused
/// whole: a log of bounded lines stays readable by every tool that reads it line by line.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// What an audit entry records: the engine's own actions by name, or a runbook's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    RunStarted,
    RunResumed,
    RunRollback,
    RunCompleted,
    StepCompleted,
    StepFailed,
    StepUndone,
    StepUndoFailed,
    /// A write to a vendor.
    HostCall,
    LockBroken,
    /// `runbook abandon` ended a run, leaving its changes in place.
    RunAbandoned,
    ApprovalRequested,
    ApprovalApproved,
    ApprovalDenied,
    ApprovalTimeout,
    ApprovalRefused,
    /// Infisical filed a write as a change request.
    ChangeRequest,
    /// `:confirm always` or `:confirm each` at the REPL: whether production writes typed
    /// there are confirmed one by one.
    ReplConfirm,
    /// An entry a runbook wrote (`audit::log`), by the name it chose.
    Script(String),
}

impl Action {
    /// The engine's actions, with the names the log has always used.
    const NAMED: [(Action, &'static str); 18] = [
        (Action::RunStarted, "run.started"),
        (Action::RunResumed, "run.resumed"),
        (Action::RunRollback, "run.rollback"),
        (Action::RunCompleted, "run.completed"),
        (Action::StepCompleted, "step.completed"),
        (Action::StepFailed, "step.failed"),
        (Action::StepUndone, "step.undone"),
        (Action::StepUndoFailed, "step.undo_failed"),
        (Action::HostCall, "host.call"),
        (Action::LockBroken, "lock.broken"),
        (Action::RunAbandoned, "run.abandoned"),
        (Action::ApprovalRequested, "approval.requested"),
        (Action::ApprovalApproved, "approval.approved"),
        (Action::ApprovalDenied, "approval.denied"),
        (Action::ApprovalTimeout, "approval.timeout"),
        (Action::ApprovalRefused, "approval.refused"),
        (Action::ChangeRequest, "infisical.change_request"),
        (Action::ReplConfirm, "repl.confirm"),
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Action::Script(name) => name,
            named => Self::NAMED
                .iter()
                .find(|(a, _)| a == named)
                .map_or("", |(_, n)| n),
        }
    }

    /// The action a name in the log stands for.
    pub fn parse(name: &str) -> Action {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map_or_else(|| Action::Script(name.to_string()), |(a, _)| a.clone())
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Action::parse(&String::deserialize(d)?))
    }
}

/// What the engine writes to the log: each of its own events with its context as a type,
/// or a runbook's own entry.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum AuditEvent {
    RunStarted {
        dry_run: bool,
    },
    RunResumed {
        at: Option<String>,
    },
    RunRollback {},
    RunCompleted {
        status: crate::run::RunStatus,
        failed_step: Option<String>,
        /// What a rollback left alone (someone changed it since the run): `step · function
        /// on target`, so the log says what "partly" means.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        left_alone: Vec<String>,
    },
    StepCompleted {
        duration_ms: u64,
    },
    StepFailed {
        error: Option<String>,
    },
    StepUndone {
        step: String,
    },
    StepUndoFailed {
        step: String,
        error: Option<String>,
    },
    HostCall(HostCall),
    LockBroken {
        holder: Value,
    },
    RunAbandoned {
        reason: String,
        /// Each change left in place, as `function on target`.
        left: Vec<String>,
        /// The run's journal could not be read: it stays as it was, and this says which
        /// text was abandoned (`SetAside`).
        #[serde(skip_serializing_if = "Option::is_none")]
        journal: Option<SetAside>,
    },
    ApprovalRequested {
        step: String,
        by: String,
        timeout_secs: u64,
    },
    ApprovalApproved {
        step: String,
        approver: String,
        /// The machine the approver decided on.
        #[serde(skip_serializing_if = "String::is_empty")]
        host: String,
        /// The approver's login role, authenticated by the database.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// The SSH key whose signature over the decision verified.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// Neither a login nor a key proves the approver's name.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        unverified: bool,
    },
    ApprovalDenied {
        step: String,
        approver: String,
        reason: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        host: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        unverified: bool,
    },
    ApprovalTimeout {
        step: String,
        timeout_secs: u64,
    },
    /// The run refused an approval: a request it could not prove, or a decision it could
    /// not accept (who it claims to be from, and its verdict, are kept as claims).
    ApprovalRefused {
        step: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        claimed_by: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
    },
    /// `:confirm always` (`always: true`) or `:confirm each` at the REPL.
    ReplConfirm {
        always: bool,
        production: bool,
    },
    ChangeRequest {
        secret: String,
        env: String,
        path: String,
        project_id: String,
        request: String,
        request_id: String,
    },
    /// `audit::log(action, context)`.
    #[serde(skip)]
    Script {
        action: String,
        context: Value,
    },
}

/// A journal that cannot be read, ended by `runbook abandon` as it is: why it cannot be
/// read, and the SHA-256 of its bytes then. While the journal still has those bytes, the run
/// is over; once it changes, the run may be going on again (`set_aside`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetAside {
    pub damage: String,
    pub sha256: String,
}

/// A journal `runbook abandon` set aside, as the log recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAsideBy {
    pub set: SetAside,
    pub actor: String,
    pub time: String,
    pub reason: String,
}

impl SetAsideBy {
    /// Whether a journal whose text has this SHA-256 is the one that was set aside.
    pub fn holds(&self, sha256: Option<&str>) -> bool {
        sha256 == Some(self.set.sha256.as_str())
    }
}

/// Every journal `runbook abandon` set aside, by run id (the last entry for a run counts).
/// Only the engine's own entries of an abandon count: a runbook's `audit::log` runs in a
/// step of a run, never in one.
pub fn set_aside(entries: &[AuditEntry]) -> std::collections::HashMap<String, SetAsideBy> {
    entries
        .iter()
        .filter(|e| {
            e.event.action == Action::RunAbandoned
                && e.event.mode == crate::run::Mode::Abandon
                && e.event.step.is_empty()
        })
        .filter_map(|e| {
            let journal = e.event.context.get("journal")?;
            let set: SetAside = serde_json::from_value(journal.clone()).ok()?;
            let reason = e.event.context.get("reason").and_then(Value::as_str);
            Some((
                e.event.run_id.clone(),
                SetAsideBy {
                    set,
                    actor: e.event.actor.clone(),
                    time: e.time.clone(),
                    reason: reason.unwrap_or_default().to_string(),
                },
            ))
        })
        .collect()
}

/// A write to a vendor, as the log records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostCall {
    pub function: String,
    pub effect: crate::plan::effect::Effect,
    pub target: String,
    pub detail: Value,
    pub ok: bool,
    /// `unknown`, `pending_approval` or `not_sent`, when it is none of applied or refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditEvent {
    pub fn action(&self) -> Action {
        match self {
            AuditEvent::RunStarted { .. } => Action::RunStarted,
            AuditEvent::RunResumed { .. } => Action::RunResumed,
            AuditEvent::RunRollback {} => Action::RunRollback,
            AuditEvent::RunCompleted { .. } => Action::RunCompleted,
            AuditEvent::StepCompleted { .. } => Action::StepCompleted,
            AuditEvent::StepFailed { .. } => Action::StepFailed,
            AuditEvent::StepUndone { .. } => Action::StepUndone,
            AuditEvent::StepUndoFailed { .. } => Action::StepUndoFailed,
            AuditEvent::HostCall(_) => Action::HostCall,
            AuditEvent::LockBroken { .. } => Action::LockBroken,
            AuditEvent::RunAbandoned { .. } => Action::RunAbandoned,
            AuditEvent::ApprovalRequested { .. } => Action::ApprovalRequested,
            AuditEvent::ApprovalApproved { .. } => Action::ApprovalApproved,
            AuditEvent::ApprovalDenied { .. } => Action::ApprovalDenied,
            AuditEvent::ApprovalTimeout { .. } => Action::ApprovalTimeout,
            AuditEvent::ApprovalRefused { .. } => Action::ApprovalRefused,
            AuditEvent::ChangeRequest { .. } => Action::ChangeRequest,
            AuditEvent::ReplConfirm { .. } => Action::ReplConfirm,
            AuditEvent::Script { action, .. } => Action::parse(action),
        }
    }

    /// The entry's context.
    pub fn context(&self) -> Value {
        match self {
            AuditEvent::Script { context, .. } => context.clone(),
            typed => serde_json::to_value(typed).unwrap_or_default(),
        }
    }
}

/// One event of a run, as the log records it (its entry chains it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub actor: String,
    pub run_id: String,
    pub runbook: String,
    pub step: String,
    pub action: Action,
    pub mode: Mode,
    pub context: Value,
    /// The run's journal line this entry follows: the journal is under the chain through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalLink>,
    /// The login the store authenticated the writer as (the database's; none on files),
    /// which the server stamps on the row too: `audit verify` holds one against the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

/// An entry as it is hashed: the event, when it was written and the entry it follows.
#[derive(serde::Serialize)]
struct Unhashed<'a> {
    time: String,
    #[serde(flatten)]
    event: &'a Event,
    prev_hash: &'a str,
}

/// One entry of the log, as written: the event, chained.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone)]
pub struct AuditLog {
    store: crate::store::Store,
}

impl AuditLog {
    pub fn new(store: &crate::store::Store) -> Self {
        AuditLog {
            store: store.clone(),
        }
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.store.audit_sync()
    }

    /// Whether each append is on stable storage when it returns (a database's commit).
    pub(crate) fn appends_are_durable(&self) -> bool {
        self.store.appends_are_durable()
    }

    /// Where the log is, for messages.
    pub fn location(&self) -> String {
        self.store.audit_where()
    }

    /// Appends an event (context redacted), chained to the last entry; the store serialises
    /// appends, so concurrent runs never fork the chain. `durable` as for the store's
    /// `audit_append`; `sync` makes the entries appended without it durable.
    pub(crate) fn append(&self, event: &Event, durable: bool) -> Result<AuditEntry> {
        let claimed;
        let event = match self.store.authenticated() {
            Some(login) => {
                claimed = Event {
                    login: Some(login),
                    ..event.clone()
                };
                &claimed
            }
            None => event,
        };
        let mut made = None;
        let landed = self.store.audit_append(
            &mut |prev: &str| {
                let mut entry = serde_json::to_value(Unhashed {
                    time: now_rfc3339(),
                    event,
                    prev_hash: prev,
                })
                .unwrap_or_default();
                // Redact before hashing: the hash must cover exactly the bytes written.
                runbook_secret::redact_json(&mut entry);
                let line = match &mut entry {
                    Value::Object(fields) => {
                        let (line, hash) = with_hash(fields);
                        fields.insert("hash".into(), Value::String(hash));
                        line
                    }
                    other => other.to_string(),
                };
                if line.len() > MAX_ENTRY_BYTES {
                    return Err(Error::AuditTooLarge {
                        action: event.action.to_string(),
                        bytes: line.len(),
                        limit: MAX_ENTRY_BYTES,
                    });
                }
                made = Some(entry);
                Ok(line)
            },
            durable,
        )?;
        // An earlier try of this entry is in the chain: that is the entry.
        let landed = landed.and_then(|line| serde_json::from_str::<Value>(&line).ok());
        let entry = landed.or(made).ok_or_else(|| Error::Internal {
            message: "the audit store appended nothing".into(),
        })?;
        serde_json::from_value(entry).map_err(|e| Error::Internal {
            message: format!("an audit entry does not read back: {e}"),
        })
    }

    /// Every entry, in order (lines that are not entries are reported by `verify`).
    pub fn entries(&self) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .audit_lines()?
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// The entries of one run, in order.
    pub fn entries_of(&self, run_id: &str) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .audit_lines_of(run_id)?
            .iter()
            .filter_map(|l| serde_json::from_str::<AuditEntry>(l).ok())
            .filter(|e| e.event.run_id == run_id)
            .collect())
    }

    /// Every line as stored (`audit export`): verifies offline exactly as here.
    pub fn lines(&self) -> Result<Vec<String>> {
        self.store.audit_lines()
    }

    /// Each line as stored, one at a time (see `AuditStore::audit_each_line`).
    pub fn each_line(&self, each: &mut dyn FnMut(&str)) -> Result<()> {
        self.store.audit_each_line(each)
    }

    /// Every line as stored, read once, with the login stamped on each on a store that
    /// stamps them (`None` on files).
    pub fn lines_stamped(&self) -> Result<(Vec<String>, Option<Vec<crate::store::Stamp>>)> {
        match self.store.audit_stamped()? {
            Some(rows) => Ok((rows.iter().map(|r| r.text.clone()).collect(), Some(rows))),
            None => Ok((self.store.audit_lines()?, None)),
        }
    }
}

/// What `audit verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        entries: usize,
        head: String,
    },
    /// The first entry (1-based line) that breaks the chain, and why.
    Broken {
        line: usize,
        reason: String,
    },
}

/// What `audit verify --head` found about a head recorded earlier.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadCheck {
    /// The recorded head is entry `line`; `after` entries were appended since.
    Present { line: usize, after: usize },
    /// The recorded head is not in the log: entries were cut off the end (or the log was
    /// replaced).
    Missing,
}

impl AuditLog {
    /// Where a head recorded earlier (printed by a run, stored in its journal) sits in the
    /// log. A chain that verifies can still have lost its last entries; only a head kept
    /// elsewhere shows that.
    pub fn find_head(&self, head: &str) -> Result<HeadCheck> {
        let hashes: Vec<String> = self.entries()?.into_iter().map(|e| e.hash).collect();
        Ok(find_head_in(&hashes, head))
    }

    /// Walks the chain: every entry's hash must match its content, and every `prev_hash`
    /// the entry before it. An edited entry breaks its own hash; a removed or moved one
    /// breaks the link of the entry after it.
    pub fn verify(&self) -> Result<Verdict> {
        Ok(verify_lines(&self.store.audit_lines()?))
    }
}

/// Where a run's journal stood when an audit entry was written: its `lines`-th line (1-based,
/// counting every non-empty line) has the hash `head` (`ledger::chain` makes and checks it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalLink {
    pub lines: u64,
    pub head: String,
}

/// Where `head` sits among a chain's entry hashes (in order).
pub fn find_head_in(hashes: &[String], head: &str) -> HeadCheck {
    if head == GENESIS {
        return HeadCheck::Present {
            line: 0,
            after: hashes.len(),
        };
    }
    match hashes.iter().position(|h| h == head) {
        Some(i) => HeadCheck::Present {
            line: i + 1,
            after: hashes.len() - i - 1,
        },
        None => HeadCheck::Missing,
    }
}

/// The `hash` of each line that has one (an export read back).
pub fn hashes_of<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Link>(l.as_ref()).ok())
        .map(|l| l.hash)
        .filter(|h| !h.is_empty())
        .collect()
}

/// What verifying reads of an entry: its hash and the one it follows.
#[derive(serde::Deserialize)]
struct Link {
    #[serde(default)]
    hash: String,
    #[serde(default)]
    prev_hash: Option<String>,
}

/// Walks a chain given as its lines (the log, or an export read back).
pub fn verify_lines<S: AsRef<str>>(lines: &[S]) -> Verdict {
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for (i, line) in lines.iter().map(AsRef::as_ref).enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let broken = |reason: &str| Verdict::Broken {
            line: n,
            reason: reason.into(),
        };
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            return broken("not valid JSON (edited or truncated)");
        };
        let link: Link = serde_json::from_value(entry.clone()).unwrap_or(Link {
            hash: String::new(),
            prev_hash: None,
        });
        if entry_hash(&entry) != link.hash {
            return broken("its content does not match its hash (edited)");
        }
        // The hash is over the entry as parsed: a key written twice (the parse keeps one)
        // hashes the same, yet every typed reader refuses the line and so skips the entry,
        // hiding it from the journals' check (cold review). (Not a comparison with the
        // line written again: an export escapes characters a terminal would act on.)
        if serde_json::from_str::<crate::text::NoRepeatedKeys>(line).is_err() {
            return broken("a key is written twice in it (edited)");
        }
        if link.prev_hash.as_deref() != Some(prev.as_str()) {
            return broken("it does not follow the entry before it (an entry was removed, inserted or reordered)");
        }
        prev = link.hash;
        count += 1;
    }
    Verdict::Intact {
        entries: count,
        head: prev,
    }
}

/// SHA-256 over the entry's JSON without its `hash` field, in the order it was written.
pub fn entry_hash(entry: &Value) -> String {
    let mut e = entry.clone();
    if let Some(o) = e.as_object_mut() {
        o.remove("hash");
    }
    sha256_hex(e.to_string().as_bytes())
}

/// An entry's line as written, with `hash` last, and that hash: the hash is over the
/// entry's text without it (`entry_hash`), so the line is that text with `hash` appended,
/// not the entry copied and written again. `fields` is left without `hash`; one it holds
/// already is hashed without it and keeps its place, as `entry_hash` and an insert do.
pub(crate) fn with_hash(fields: &serde_json::Map<String, Value>) -> (String, String) {
    if fields.contains_key("hash") {
        let mut value = Value::Object(fields.clone());
        let hash = entry_hash(&value);
        if let Value::Object(f) = &mut value {
            f.insert("hash".into(), Value::String(hash.clone()));
        }
        return (value.to_string(), hash);
    }
    let mut line = serde_json::to_string(fields).unwrap_or_default();
    let hash = sha256_hex(line.as_bytes());
    line.pop();
    if line.len() > 1 {
        line.push(',');
    }
    line.push_str("\"hash\":\"");
    line.push_str(&hash);
    line.push_str("\"}");
    (line, hash)
}

/// SHA-256 of `bytes`, as lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A verify reads each line back and hashes it again: a float must come back as the
    /// same text. Without serde_json's `float_roundtrip` (the dist build had it only when a
    /// dev-dependency brought it) about one ratio in ten read back a digit off, and an
    /// honest entry was called edited (cold review).
    #[test]
    fn an_entry_holding_floats_verifies_as_written() {
        for (i, j) in [
            (1.0, 11.0),
            (2.0, 3.0),
            (1.0, 7.0),
            (5.0, 13.0),
            (22.0, 7.0),
        ] {
            let mut fields = serde_json::Map::new();
            fields.insert("ratio".into(), json!(i / j));
            let (line, hash) = with_hash(&fields);
            let back: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(entry_hash(&back), hash, "{line}");
        }
    }

    /// A key written twice parses to the same entry, with the same hash, but no typed
    /// reader takes the line (so the journals' check skipped the entry): the chain calls it
    /// edited. Before, it verified (cold review).
    #[test]
    fn an_entry_with_a_key_written_twice_breaks_the_chain() {
        let mut fields = serde_json::Map::new();
        fields.insert("prev_hash".into(), json!(GENESIS));
        fields.insert("actor".into(), json!("ops"));
        fields.insert("run_id".into(), json!("r1"));
        let (line, _) = with_hash(&fields);
        assert!(matches!(
            verify_lines(&[line.as_str()]),
            Verdict::Intact { entries: 1, .. }
        ));
        let doubled = line.replacen(
            "\"actor\":\"ops\"",
            "\"actor\":\"ops\",\"actor\":\"ops\"",
            1,
        );
        assert_ne!(doubled, line);
        match verify_lines(&[doubled.as_str()]) {
            Verdict::Broken { line: 1, reason } => {
                assert!(reason.contains("a key is written twice"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // An export escapes what a terminal would act on (a zero-width joiner as \u200c):
        // the same entry, and it verifies.
        fields.insert("name".into(), json!("a\u{200c}b"));
        let (line, _) = with_hash(&fields);
        let escaped = line.replace('\u{200c}', "\\u200c");
        assert_ne!(escaped, line);
        assert!(matches!(
            verify_lines(&[escaped.as_str()]),
            Verdict::Intact { entries: 1, .. }
        ));
    }

    fn files_log(dir: &std::path::Path) -> AuditLog {
        let say = crate::sink::Say::outside(std::sync::Arc::new(crate::sink::Quiet));
        let store: crate::store::Store = std::sync::Arc::new(crate::store::Files::new(dir, say));
        AuditLog::new(&store)
    }

    fn event(action: &str) -> Event {
        Event {
            actor: "tester".into(),
            run_id: "r1".into(),
            runbook: "rb".into(),
            step: "s".into(),
            action: Action::parse(action),
            mode: Mode::Exec,
            context: json!({"k": "v"}),
            journal: None,
            login: None,
        }
    }

    /// Only the engine's own abandon entries set a journal aside: a runbook's
    /// `audit::log("run.abandoned", …)` runs in a step of an exec, and must not unblock
    /// a rotation.
    #[test]
    fn only_an_abandons_own_entry_sets_a_journal_aside() {
        let dir = tempfile::tempdir().unwrap();
        let log = files_log(dir.path());
        let journal = json!({"journal": {"damage": "damaged at line 2: not a JSON record", "sha256": "ab"}, "reason": "r"});
        let mut scripted = event("run.abandoned");
        scripted.context = journal.clone();
        // A step's entry, whatever its mode; an entry outside a step of another mode.
        for (step, mode) in [("s", Mode::Exec), ("s", Mode::Abandon), ("", Mode::Exec)] {
            let mut e = scripted.clone();
            e.step = step.into();
            e.mode = mode;
            log.append(&e, true).unwrap();
        }
        assert!(set_aside(&log.entries().unwrap()).is_empty());
        let mut abandoned = scripted.clone();
        abandoned.step = String::new();
        abandoned.mode = Mode::Abandon;
        log.append(&abandoned, true).unwrap();
        let set = set_aside(&log.entries().unwrap());
        assert_eq!(set.len(), 1);
        assert!(set["r1"].holds(Some("ab")));
        assert!(!set["r1"].holds(Some("cd")));
        assert!(!set["r1"].holds(None));
        // Abandoned again once the journal changed: the last entry counts.
        abandoned.context["journal"]["sha256"] = json!("cd");
        log.append(&abandoned, true).unwrap();
        let set = set_aside(&log.entries().unwrap());
        assert!(set["r1"].holds(Some("cd")));
        assert!(!set["r1"].holds(Some("ab")));
    }

    #[test]
    fn verify_finds_edits_removals_and_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let log = files_log(dir.path());
        for a in ["a", "b", "c", "d"] {
            log.append(&event(a), true).unwrap();
        }
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Intact { entries: 4, .. }
        ));
        let good = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        let write = |ls: Vec<String>| {
            std::fs::write(dir.path().join("audit.jsonl"), ls.join("\n") + "\n").unwrap()
        };
        let owned = |ls: &[&str]| ls.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        write(owned(&[
            lines[0],
            &lines[1].replace("\"b\"", "\"x\""),
            lines[2],
            lines[3],
        ]));
        assert_eq!(
            log.verify().unwrap(),
            Verdict::Broken {
                line: 2,
                reason: "its content does not match its hash (edited)".into()
            }
        );

        write(owned(&[lines[0], lines[2], lines[3]]));
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Broken { line: 2, .. }
        ));

        write(owned(&[lines[0], lines[2], lines[1], lines[3]]));
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Broken { line: 2, .. }
        ));
    }

    /// The entry before an append is found whatever its length, and however the bytes before
    /// it fall: a window that starts inside a character, or a last entry longer than any
    /// window, must not break the chain.
    #[test]
    fn appends_chain_after_long_and_non_ascii_entries() {
        let dir = tempfile::tempdir().unwrap();
        let log = files_log(dir.path());
        let mut long = event("long");
        long.context = json!({ "note": "é…→".repeat(20_000), "ascii": "x".repeat(80_000) });
        for i in 0..3 {
            log.append(&event(&format!("small-{i}")), true).unwrap();
            log.append(&long, true).unwrap();
        }
        let last = log.append(&event("after"), true).unwrap();
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Intact { entries: 7, .. }
        ));
        assert_eq!(log.entries().unwrap()[5].hash, last.prev_hash);
    }

    #[test]
    fn an_entry_over_the_limit_is_refused_and_the_log_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = files_log(dir.path());
        log.append(&event("a"), true).unwrap();
        let mut big = event("big");
        big.context = json!({ "doc": "ü".repeat(MAX_ENTRY_BYTES) });
        let err = log.append(&big, true).unwrap_err();
        assert!(matches!(err, Error::AuditTooLarge { .. }), "{err}");
        let b = log.append(&event("b"), true).unwrap();
        assert!(matches!(
            log.verify().unwrap(),
            Verdict::Intact { entries: 2, .. }
        ));
        assert_eq!(
            log.find_head(&b.hash).unwrap(),
            HeadCheck::Present { line: 2, after: 0 }
        );
        assert_eq!(log.find_head("abc").unwrap(), HeadCheck::Missing);
    }

    /// One run's entries are found without reading every entry of the log, and only its
    /// own: another run's entry whose context holds the text is not one.
    #[test]
    fn a_runs_own_entries_are_found_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let log = files_log(dir.path());
        log.append(&event("mine"), true).unwrap();
        let mut other = event("theirs");
        other.run_id = "r2".into();
        other.context = json!({ "note": "\"run_id\":\"r1\"" });
        log.append(&other, true).unwrap();
        log.append(&event("mine.again"), true).unwrap();
        let actions: Vec<String> = log
            .entries_of("r1")
            .unwrap()
            .iter()
            .map(|e| e.event.action.to_string())
            .collect();
        assert_eq!(actions, ["mine", "mine.again"]);
        assert!(log.entries_of("r3").unwrap().is_empty());
    }

    #[test]
    fn entries_are_chained() {
        let dir = tempfile::tempdir().unwrap();
        let log = files_log(dir.path());
        let a = log.append(&event("a"), true).unwrap();
        let b = log.append(&event("b"), true).unwrap();
        assert_eq!(a.prev_hash, GENESIS);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(entry_hash(&serde_json::to_value(&b).unwrap()), b.hash);
        assert_eq!(log.entries().unwrap().len(), 2);
    }
}
