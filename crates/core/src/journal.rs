//! The run journal: `runs/<run_id>.jsonl`, one record per line (`{"t": time, "kind": ...}`),
//! fsynced after each, so a crash loses at most the record being written. Records are
//! types; secrets appear only as fingerprints.

use crate::error::{Error, Result};
use crate::run::{Mode, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The runbook and the modules it imported, by hash: `resume` refuses a changed text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHashes {
    pub path: String,
    pub sha256: String,
    #[serde(default)]
    pub modules: Vec<ModuleHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleHash {
    pub name: String,
    pub sha256: String,
}

/// The first record of every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    pub run_id: String,
    pub runbook: String,
    pub source: SourceHashes,
    /// The params, secrets as fingerprints.
    pub params: Value,
    pub actor: String,
    pub host: String,
    pub pid: u32,
    pub mode: Mode,
    /// Whether the run rehearsed against an in-process sandbox (which died with it).
    pub sandbox: bool,
}

/// How a step attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepEnd {
    Completed,
    Failed,
    Aborted,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub step: String,
    pub status: StepEnd,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the failed attempt performed a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrote: Option<bool>,
    /// Completed by `resume` because the step's verify said it had taken effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// `ctx` after the step (secrets as fingerprints), when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

/// One journal record. The `kind` names are the file format: they never change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Record {
    #[serde(rename = "run.start")]
    RunStart(RunStart),
    /// A later process took the run over (`as`: resume, rollback or repl).
    #[serde(rename = "run.resume")]
    RunResume {
        actor: String,
        pid: u32,
        #[serde(rename = "as")]
        attempt: Mode,
    },
    #[serde(rename = "run.end")]
    RunEnd {
        status: RunStatus,
        /// The audit chain's head after the run's last entry: `audit verify --head` with it
        /// proves no entry was cut off the end since.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audit_head: Option<String>,
    },
    #[serde(rename = "lock.broken")]
    LockBroken { holder: Value },
    #[serde(rename = "step.intent")]
    StepIntent {
        step: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// Run by hand (the REPL's `:run --force`) before the steps it follows completed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        out_of_order: bool,
    },
    #[serde(rename = "step.outcome")]
    StepOutcome(StepOutcome),
    #[serde(rename = "write.intent")]
    WriteIntent {
        step: String,
        function: String,
        target: String,
        #[serde(default)]
        detail: Value,
    },
    /// How a write ended: applied (`ok`), refused, or sent with its answer lost (`unknown`).
    #[serde(rename = "write.outcome")]
    WriteOutcome {
        step: String,
        function: String,
        target: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unknown: bool,
        /// Filed for approval (an Infisical change request), not applied yet; `unknown` is
        /// set too, so a reader that knows only that still treats it as uncertain.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pending: bool,
        /// The change request it was filed as.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filed: Option<Filed>,
    },
    #[serde(rename = "undo.intent")]
    UndoIntent { step: String },
    #[serde(rename = "undo.outcome")]
    UndoOutcome {
        step: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ctx: Option<Value>,
    },
    #[serde(rename = "rollback.blocked")]
    RollbackBlocked { step: String, why: String },
    #[serde(rename = "repl.end")]
    ReplEnd { failed_inputs: usize },
}

/// A record and when it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub t: String,
    pub record: Record,
}

/// An open journal, appending.
pub struct Journal {
    store: crate::store::Store,
    run_id: String,
    /// Set once a record could not be written: the operator was told, once.
    broken: std::cell::Cell<bool>,
}

impl Journal {
    /// The journal of a run, for appending (nothing is written until the first record).
    pub fn open(store: &crate::store::Store, run_id: &str) -> Result<Journal> {
        Ok(Journal {
            store: store.clone(),
            run_id: run_id.to_string(),
            broken: std::cell::Cell::new(false),
        })
    }

    /// Where the journal is, for messages.
    pub fn location(&self) -> String {
        self.store.journal_where(&self.run_id)
    }

    /// Every record written so far.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        read_run(&self.store, &self.run_id)?.ok_or_else(|| Error::RunNotFound {
            run_id: self.run_id.clone(),
            dir: self.store.runs_where(),
        })
    }

    /// Appends a record the run cannot go on without (its start, a takeover): a journal that
    /// cannot be written stops the run before it changes anything, since it could not be
    /// resumed or rolled back.
    pub fn record_required(&self, record: Record) -> Result<()> {
        let line = encode(&record, &crate::run::now_rfc3339());
        self.store.journal_append(&self.run_id, &line)
    }

    /// Appends one record, redacted, durably. A journal that cannot be written is reported
    /// once and then left alone: the run goes on, but the operator knows resume will not be
    /// possible.
    pub fn record(&self, record: Record) {
        if self.broken.get() {
            return;
        }
        let line = encode(&record, &crate::run::now_rfc3339());
        if let Err(e) = self.store.journal_append(&self.run_id, &line) {
            crate::ui::err(&format!(
                "warning: cannot write the run journal {}: {e}; this run cannot be resumed",
                self.location()
            ));
            self.broken.set(true);
        }
    }
}

/// A run's records, `None` when the store has no such run.
pub fn read_run(store: &crate::store::Store, run_id: &str) -> Result<Option<Vec<Entry>>> {
    match store.journal(run_id)? {
        None => Ok(None),
        Some(text) => parse(&text, Path::new(&store.journal_where(run_id))).map(Some),
    }
}

/// One line of the file: `t` first, then the record, redacted.
fn encode(record: &Record, t: &str) -> String {
    let mut fields = serde_json::to_value(record).unwrap_or(Value::Null);
    runbook_secret::redact_json(&mut fields);
    let mut line = serde_json::Map::new();
    line.insert("t".into(), Value::String(t.to_string()));
    if let Value::Object(f) = fields {
        line.extend(f);
    }
    runbook_secret::redact(&Value::Object(line).to_string()).into_owned()
}

/// Every record of a journal, in order. A torn last line (the crash happened mid-write) is
/// dropped; anything else that cannot be read is a damaged journal, never silently skipped.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    parse(&crate::state::read_text(path)?, path)
}

/// A journal's text, parsed (`path` names it in errors).
fn parse(text: &str, path: &Path) -> Result<Vec<Entry>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let last = i + 1 == lines.len();
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if last => break,
            Err(e) => {
                return Err(Error::JournalDamaged {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: format!("not a JSON record ({e})"),
                })
            }
        };
        let t = value["t"].as_str().unwrap_or_default().to_string();
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        match serde_json::from_value::<Record>(value) {
            Ok(record) => out.push(Entry { t, record }),
            Err(e) => {
                return Err(Error::JournalDamaged {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: if KINDS.contains(&kind.as_str()) {
                        format!("a '{kind}' record this version cannot read ({e})")
                    } else {
                        format!(
                            "an unknown record kind '{kind}': a journal from another version of runbook"
                        )
                    },
                })
            }
        }
    }
    Ok(out)
}

/// Every record kind this version writes.
const KINDS: &[&str] = &[
    "run.start",
    "run.resume",
    "run.end",
    "lock.broken",
    "step.intent",
    "step.outcome",
    "write.intent",
    "write.outcome",
    "undo.intent",
    "undo.outcome",
    "rollback.blocked",
    "repl.end",
];

/// Where a step stands, from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Started; no outcome recorded (the process died in it).
    Started,
    Ended(StepEnd),
    UndoStarted,
    Undone,
    UndoFailed,
}

/// A write that started in a step whose outcome was never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWrite {
    pub function: String,
    pub target: String,
}

/// What happened to one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteState {
    Applied,
    Failed,
    /// Sent, and its answer never came (or the process died before recording it): it may
    /// have taken effect.
    Unknown,
    /// Filed for approval and not merged yet: it takes effect if an approver merges it.
    Pending,
}

impl WriteState {
    /// Whether the vendor may have changed: an undo has something to restore.
    pub fn may_have_applied(self) -> bool {
        self != WriteState::Failed
    }

    /// Whether only a check (or the operator) can tell if it took effect.
    pub fn uncertain(self) -> bool {
        matches!(self, WriteState::Unknown | WriteState::Pending)
    }
}

/// The change request a write was filed as (an Infisical secret-approval policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filed {
    pub id: String,
    pub slug: String,
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
    pub state: WriteState,
    /// The change request it was filed as, when it is `Pending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filed: Option<Filed>,
}

/// A later process's attempt at a run (`runbook resume`, `rollback`, `repl --attach`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub mode: Mode,
    pub actor: String,
    pub started_at: String,
    /// How it ended; `None` while it runs, or when its process died.
    pub ended: Option<RunStatus>,
}

/// What a journal says about a run. The record is append-only: how the run itself ended
/// (`outcome`) is never changed by what later attempts did; they are listed after it.
#[derive(Debug, Clone)]
pub struct RunState {
    pub start: RunStart,
    /// When it was written (`t` of the start record).
    pub started_at: String,
    /// How the run's own process ended; `None` if it is running or died.
    pub outcome: Option<RunStatus>,
    /// Later processes that took the run over, in order.
    pub attempts: Vec<Attempt>,
    /// Per step id, the last thing seen.
    pub steps: Vec<(String, StepState)>,
    /// The `ctx` snapshot after the last completed step (or undo).
    pub ctx: Option<Value>,
    pub open_writes: Vec<OpenWrite>,
    pub last_step: Option<String>,
    /// Every write of the run that was not undone since, in order.
    pub writes: Vec<Write>,
}

impl RunState {
    /// Summarises a run's records; `None` when there is no start record.
    pub fn from_entries(entries: &[Entry]) -> Option<RunState> {
        let (started_at, start) = entries.iter().find_map(|e| match &e.record {
            Record::RunStart(s) => Some((e.t.clone(), s.clone())),
            _ => None,
        })?;
        let mut s = RunState {
            start,
            started_at,
            outcome: None,
            attempts: Vec::new(),
            steps: Vec::new(),
            ctx: None,
            open_writes: Vec::new(),
            last_step: None,
            writes: Vec::new(),
        };
        // Writes inside an undo are not effects of the step being undone.
        let mut undoing: Option<String> = None;
        for e in entries {
            match &e.record {
                Record::RunResume { actor, attempt, .. } => s.attempts.push(Attempt {
                    mode: *attempt,
                    actor: actor.clone(),
                    started_at: e.t.clone(),
                    ended: None,
                }),
                Record::RunEnd { status, .. } => match s.attempts.last_mut() {
                    Some(a) => a.ended = Some(*status),
                    None => s.outcome = Some(*status),
                },
                Record::StepIntent { step, .. } => {
                    undoing = None;
                    s.set(step, StepState::Started);
                    s.open_writes.clear();
                    s.last_step = Some(step.clone());
                }
                Record::WriteIntent {
                    step,
                    function,
                    target,
                    detail,
                } => {
                    s.open_writes.push(OpenWrite {
                        function: function.clone(),
                        target: target.clone(),
                    });
                    if undoing.is_some() {
                        continue;
                    }
                    s.writes.push(Write {
                        step: step.clone(),
                        function: function.clone(),
                        target: target.clone(),
                        detail: detail.clone(),
                        state: WriteState::Unknown,
                        filed: None,
                    });
                }
                Record::WriteOutcome {
                    step,
                    function,
                    target,
                    ok,
                    unknown,
                    pending,
                    filed,
                } => {
                    if undoing.is_some() {
                        continue;
                    }
                    let state = match (ok, unknown) {
                        _ if *pending => WriteState::Pending,
                        (_, true) => WriteState::Unknown,
                        (true, false) => WriteState::Applied,
                        (false, false) => WriteState::Failed,
                    };
                    if let Some(w) =
                        s.writes.iter_mut().rev().find(|w| {
                            &w.step == step && &w.function == function && &w.target == target
                        })
                    {
                        w.state = state;
                        w.filed = filed.clone();
                    }
                }
                Record::StepOutcome(o) => {
                    s.set(&o.step, StepState::Ended(o.status));
                    s.open_writes.clear();
                    if o.status == StepEnd::Completed {
                        s.ctx = o.ctx.clone();
                    }
                }
                Record::UndoIntent { step } => {
                    undoing = Some(step.clone());
                    s.set(step, StepState::UndoStarted);
                }
                Record::UndoOutcome { step, ok, ctx, .. } => {
                    undoing = None;
                    s.set(
                        step,
                        if *ok {
                            StepState::Undone
                        } else {
                            StepState::UndoFailed
                        },
                    );
                    if *ok {
                        s.ctx = ctx.clone();
                        // Undone: what the step wrote is no longer in effect.
                        s.writes.retain(|w| &w.step != step);
                    }
                }
                Record::RunStart(_)
                | Record::LockBroken { .. }
                | Record::RollbackBlocked { .. }
                | Record::ReplEnd { .. } => {}
            }
        }
        Some(s)
    }

    fn set(&mut self, id: &str, state: StepState) {
        match self.steps.iter_mut().find(|(s, _)| s == id) {
            Some(e) => e.1 = state,
            None => self.steps.push((id.to_string(), state)),
        }
    }

    /// How the last process that worked on the run ended: `None` while it runs or after it
    /// died without recording an end.
    pub fn last_end(&self) -> Option<RunStatus> {
        match self.attempts.last() {
            Some(a) => a.ended,
            None => self.outcome,
        }
    }

    /// Whether the rotation is settled: it succeeded (itself or through a resume), or a
    /// rollback undid it. The latest of those counts; failed or refused attempts do not.
    pub fn settled(&self) -> Option<RunStatus> {
        let settles = |s: &Option<RunStatus>| {
            matches!(s, Some(RunStatus::Succeeded) | Some(RunStatus::RolledBack))
        };
        let mut settled = self.outcome.filter(|_| settles(&self.outcome));
        for a in &self.attempts {
            if settles(&a.ended) {
                settled = a.ended;
            }
        }
        settled
    }

    pub(crate) fn state_of(&self, step: &str) -> Option<StepState> {
        self.steps
            .iter()
            .find(|(s, _)| s == step)
            .map(|(_, st)| *st)
    }

    pub fn completed(&self, step: &str) -> bool {
        self.state_of(step) == Some(StepState::Ended(StepEnd::Completed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal written by the string-typed engine before records were types.
    const OLD: &str = r#"{"t":"2026-11-20T10:00:00Z","kind":"run.start","run_id":"20261120T100000Z-abcdef","runbook":"postmark-server-token","source":{"path":"/r/postmark.rhai","sha256":"00","modules":[]},"params":{"apps":["a"]},"actor":"ops@vm","host":"vm","pid":7,"mode":"exec","sandbox":false}
{"t":"2026-11-20T10:00:01Z","kind":"step.intent","step":"precheck","attempt":1}
{"t":"2026-11-20T10:00:02Z","kind":"step.outcome","step":"precheck","status":"completed","duration_ms":12,"ctx":{"server_id":4242}}
{"t":"2026-11-20T10:00:03Z","kind":"step.intent","step":"store","attempt":1}
{"t":"2026-11-20T10:00:03Z","kind":"write.intent","step":"store","function":"infisical::set_secret","target":"POSTMARK_SERVER_TOKEN","detail":{}}
{"t":"2026-11-20T10:00:04Z","kind":"step.outcome","step":"store","status":"failed","ok":false,"error":"boom"}
{"t":"2026-11-20T10:00:05Z","kind":"undo.intent","step":"precheck"}
{"t":"2026-11-20T10:00:06Z","kind":"run.end","status":"rolled_back"}
"#;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_a_journal_written_by_the_string_format() {
        let (_d, p) = write(OLD);
        let entries = read(&p).unwrap();
        assert_eq!(entries.len(), 8);
        let st = RunState::from_entries(&entries).unwrap();
        assert_eq!(st.start.mode, Mode::Exec);
        assert_eq!(st.outcome, Some(RunStatus::RolledBack));
        assert_eq!(st.settled(), Some(RunStatus::RolledBack));
        assert_eq!(st.state_of("precheck"), Some(StepState::UndoStarted));
        assert_eq!(
            st.state_of("store"),
            Some(StepState::Ended(StepEnd::Failed))
        );
        assert_eq!(st.ctx, Some(serde_json::json!({"server_id": 4242})));
    }

    #[test]
    fn writes_the_same_lines_it_reads() {
        let (_d, p) = write(OLD);
        for (line, e) in OLD.lines().zip(read(&p).unwrap()) {
            let again: Value = serde_json::from_str(&encode(&e.record, &e.t)).unwrap();
            let before: Value = serde_json::from_str(line).unwrap();
            // The old REPL wrote `ok` into step outcomes too; nothing else differs.
            let mut before = before;
            if let Some(o) = before.as_object_mut() {
                if o["kind"] == "step.outcome" {
                    o.remove("ok");
                }
            }
            assert_eq!(again, before);
        }
    }

    /// A refused rollback of a rotation that succeeded leaves the rotation succeeded; the
    /// attempt is listed after it. A resume that finishes a stopped run settles it.
    #[test]
    fn later_attempts_never_rewrite_how_the_run_ended() {
        let line = |t: &str, r: Record| encode(&r, t);
        let start = OLD.lines().next().unwrap().to_string();
        let attempt = |mode| Record::RunResume {
            actor: "other@vm".into(),
            pid: 9,
            attempt: mode,
        };
        let text = [
            start.clone(),
            line(
                "t1",
                Record::RunEnd {
                    status: RunStatus::Succeeded,
                    audit_head: None,
                },
            ),
            line("t2", attempt(Mode::Rollback)),
            line(
                "t3",
                Record::RunEnd {
                    status: RunStatus::Failed,
                    audit_head: None,
                },
            ),
            line("t4", attempt(Mode::Resume)),
        ]
        .join("\n");
        let (_d, p) = write(&text);
        let st = RunState::from_entries(&read(&p).unwrap()).unwrap();
        assert_eq!(st.outcome, Some(RunStatus::Succeeded));
        assert_eq!(st.settled(), Some(RunStatus::Succeeded));
        assert_eq!(st.attempts.len(), 2);
        assert_eq!(st.attempts[0].mode, Mode::Rollback);
        assert_eq!(st.attempts[0].ended, Some(RunStatus::Failed));
        assert_eq!(
            st.last_end(),
            None,
            "the resume's process never recorded an end"
        );

        let text = [
            start,
            line(
                "t1",
                Record::RunEnd {
                    status: RunStatus::Failed,
                    audit_head: None,
                },
            ),
            line("t2", attempt(Mode::Resume)),
            line(
                "t3",
                Record::RunEnd {
                    status: RunStatus::Succeeded,
                    audit_head: None,
                },
            ),
        ]
        .join("\n");
        let (_d, p) = write(&text);
        let st = RunState::from_entries(&read(&p).unwrap()).unwrap();
        assert_eq!(st.outcome, Some(RunStatus::Failed));
        assert_eq!(st.settled(), Some(RunStatus::Succeeded));
    }

    #[test]
    fn a_torn_last_line_is_dropped_but_damage_elsewhere_is_an_error() {
        let (_d, p) = write(&format!("{OLD}{{\"t\":\"x\",\"kind\":\"st"));
        assert_eq!(read(&p).unwrap().len(), 8);
        let damaged = OLD.replacen("\"kind\":\"step.intent\"", "\"kind\":\"step.intent\",", 1);
        let (_d, p) = write(&damaged);
        assert!(matches!(
            read(&p),
            Err(Error::JournalDamaged { line: 2, .. })
        ));
        let newer = OLD.replacen("\"kind\":\"undo.intent\"", "\"kind\":\"undo.planned\"", 1);
        let (_d, p) = write(&newer);
        match read(&p) {
            Err(Error::JournalDamaged {
                line: 7, reason, ..
            }) => {
                assert!(reason.contains("another version"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
