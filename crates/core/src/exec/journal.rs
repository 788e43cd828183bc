//! The run journal: `runs/<run_id>.jsonl`, one JSON record per line, fsynced after each, so a
//! crash loses at most the record being written. Secrets appear only as fingerprints.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub struct Journal {
    path: PathBuf,
    file: RefCell<Option<File>>,
}

impl Journal {
    pub fn path_for(state_dir: &Path, run_id: &str) -> PathBuf {
        state_dir.join("runs").join(format!("{run_id}.jsonl"))
    }

    /// Opens (creating) the journal of a run for appending.
    pub fn open(state_dir: &Path, run_id: &str) -> Result<Journal> {
        let path = Self::path_for(state_dir, run_id);
        let file = crate::state::append(&path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        Ok(Journal {
            path,
            file: RefCell::new(Some(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (`kind` plus fields), redacted, and syncs it to disk. A journal
    /// that cannot be written is reported once and then left alone: the run goes on, but the
    /// operator knows resume will not be possible.
    pub fn record(&self, kind: &str, mut fields: Value) {
        let mut slot = self.file.borrow_mut();
        let Some(file) = slot.as_mut() else { return };
        runbook_secret::redact_json(&mut fields);
        let mut rec = json!({ "t": crate::audit::now_rfc3339(), "kind": kind });
        if let (Some(r), Value::Object(f)) = (rec.as_object_mut(), fields) {
            r.extend(f);
        }
        let line = runbook_secret::redact(&rec.to_string()).into_owned();
        let ok = writeln!(file, "{line}").and_then(|_| file.sync_data());
        if let Err(e) = ok {
            crate::ui::err(&format!(
                "warning: cannot write the run journal {}: {e}; this run cannot be resumed",
                self.path.display()
            ));
            *slot = None;
        }
    }
}

/// Every record of a journal, in order.
pub fn read(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // A torn last line (the crash happened mid-write) is skipped.
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            out.push(v);
        }
    }
    Ok(out)
}

/// What a journal says about a run.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub start: Value,
    pub ended: Option<String>,
    /// Per step id: the last thing seen (`intent`, `completed`, `failed`, `undone`, ...).
    pub steps: Vec<(String, String)>,
    /// The `ctx` snapshot after the last completed step (or undo).
    pub ctx: Option<Value>,
    /// Writes started in a step whose outcome was never recorded.
    pub open_writes: Vec<Value>,
    pub last_step: Option<String>,
}

impl RunState {
    pub fn from_records(records: &[Value]) -> RunState {
        let mut s = RunState::default();
        let set = |steps: &mut Vec<(String, String)>, id: &str, status: &str| match steps
            .iter_mut()
            .find(|(s, _)| s == id)
        {
            Some(e) => e.1 = status.to_string(),
            None => steps.push((id.to_string(), status.to_string())),
        };
        for r in records {
            let step = r["step"].as_str().unwrap_or("");
            match r["kind"].as_str().unwrap_or("") {
                "run.start" => s.start = r.clone(),
                "run.resume" => s.ended = None,
                "run.end" => s.ended = r["status"].as_str().map(str::to_string),
                "step.intent" => {
                    set(&mut s.steps, step, "intent");
                    s.open_writes.clear();
                    s.last_step = Some(step.to_string());
                }
                "write.intent" => s.open_writes.push(r.clone()),
                "step.outcome" => {
                    let status = r["status"].as_str().unwrap_or("failed");
                    set(&mut s.steps, step, status);
                    s.open_writes.clear();
                    if status == "completed" {
                        s.ctx = Some(r["ctx"].clone());
                    }
                }
                "undo.intent" => set(&mut s.steps, step, "undo-intent"),
                "undo.outcome" => {
                    let ok = r["ok"].as_bool().unwrap_or(false);
                    set(
                        &mut s.steps,
                        step,
                        if ok { "undone" } else { "undo-failed" },
                    );
                    if ok {
                        s.ctx = Some(r["ctx"].clone());
                    }
                }
                _ => {}
            }
        }
        s
    }

    pub fn status_of(&self, step: &str) -> Option<&str> {
        self.steps
            .iter()
            .find(|(s, _)| s == step)
            .map(|(_, st)| st.as_str())
    }
}
