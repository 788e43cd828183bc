//! Journals written before the ledger had typed events (`{"t":…,"kind":"run.start",…}`):
//! each old record is read as the event it meant, so a run stopped by an older binary can
//! still be resumed, rolled back, listed and evidenced.

use crate::events::*;
use crate::run::{Effect, Entry, Mode, RunStatus, Target};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct OldStart {
    run_id: String,
    runbook: String,
    source: SourceHashes,
    params: Value,
    actor: String,
    host: String,
    pid: u32,
    mode: Mode,
    #[serde(default)]
    sandbox: bool,
}

#[derive(Deserialize)]
struct OldStepOutcome {
    step: String,
    status: StepEnd,
    #[serde(default)]
    duration_ms: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    wrote: Option<bool>,
    #[serde(default)]
    verified: Option<bool>,
    #[serde(default)]
    ctx: Option<Value>,
}

/// One record of the old format.
#[derive(Deserialize)]
#[serde(tag = "kind")]
enum Record {
    #[serde(rename = "run.start")]
    RunStart(OldStart),
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
        #[serde(default)]
        audit_head: Option<String>,
    },
    #[serde(rename = "lock.broken")]
    LockBroken { holder: Value },
    #[serde(rename = "step.intent")]
    StepIntent {
        step: String,
        #[serde(default)]
        attempt: Option<u32>,
        #[serde(default)]
        out_of_order: bool,
    },
    #[serde(rename = "step.outcome")]
    StepOutcome(OldStepOutcome),
    #[serde(rename = "write.intent")]
    WriteIntent {
        step: String,
        function: String,
        target: String,
        #[serde(default)]
        detail: Value,
    },
    #[serde(rename = "write.outcome")]
    WriteOutcome {
        step: String,
        function: String,
        target: String,
        ok: bool,
        #[serde(default)]
        unknown: bool,
        #[serde(default)]
        pending: bool,
        #[serde(default)]
        filed: Option<Filed>,
    },
    #[serde(rename = "undo.intent")]
    UndoIntent { step: String },
    #[serde(rename = "undo.outcome")]
    UndoOutcome {
        step: String,
        ok: bool,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        ctx: Option<Value>,
    },
    #[serde(rename = "rollback.blocked")]
    RollbackBlocked { step: String, why: String },
    #[serde(rename = "repl.end")]
    ReplEnd { failed_inputs: usize },
}

/// Where an old run went, what it did and how: the old journals had one word for the three.
fn modes(mode: Mode, sandbox: bool) -> (Target, Effect, Entry) {
    let target = if sandbox {
        Target::Sandbox
    } else {
        Target::Production
    };
    match mode {
        Mode::Sandbox => (Target::Sandbox, Effect::Apply, Entry::Exec),
        Mode::DryRun => (target, Effect::DryRun, Entry::Exec),
        Mode::Repl => (target, Effect::Apply, Entry::Repl),
        Mode::Resume => (target, Effect::Apply, Entry::Resume),
        Mode::Rollback => (target, Effect::Apply, Entry::Rollback),
        Mode::Exec => (target, Effect::Apply, Entry::Exec),
        // Old journals never had it; an abandon is never a run's start.
        Mode::Abandon => (target, Effect::Apply, Entry::Abandon),
    }
}

fn entry_of(mode: Mode) -> Entry {
    match mode {
        Mode::Rollback => Entry::Rollback,
        Mode::Repl => Entry::Repl,
        _ => Entry::Resume,
    }
}

/// An old record as the event it meant; `run_id` is the run the journal belongs to.
pub(super) fn read(value: Value, run_id: &str) -> Result<Stamped, String> {
    let time = value
        .get("t")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let record: Record = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let event = match record {
        Record::RunStart(s) => {
            let (target, effect, entry) = modes(s.mode, s.sandbox);
            return Ok(Stamped {
                v: VERSION,
                run_id: s.run_id,
                time,
                event: Event::RunStarted(RunStarted {
                    runbook: s.runbook,
                    source: s.source,
                    params: s.params,
                    actor: s.actor,
                    host: s.host,
                    pid: s.pid,
                    target,
                    effect,
                    entry,
                    rotation: None,
                    environment: None,
                    login: None,
                }),
            });
        }
        Record::RunResume {
            actor,
            pid,
            attempt,
        } => Event::RunResumed(RunResumed {
            actor,
            host: String::new(),
            pid,
            entry: entry_of(attempt),
            login: None,
        }),
        Record::RunEnd { status, audit_head } => Event::RunFinished(RunFinished {
            status,
            error: None,
            duration_ms: None,
            rate_limit_wait_ms: None,
            audit_head,
        }),
        Record::LockBroken { holder } => Event::LockBroken { holder },
        Record::StepIntent {
            step,
            attempt,
            out_of_order,
        } => Event::StepStarted(StepStarted {
            step,
            attempt,
            out_of_order,
        }),
        Record::StepOutcome(o) => Event::StepFinished(StepFinished {
            step: o.step,
            outcome: o.status,
            duration_ms: o.duration_ms,
            error: o.error,
            wrote: o.wrote,
            verified: o.verified,
            confirmed_by: None,
            ctx: o.ctx,
        }),
        Record::WriteIntent {
            step,
            function,
            target,
            detail,
        } => Event::Write(WriteSent {
            step,
            function,
            target,
            detail,
            idempotent: false,
            undo: false,
        }),
        Record::WriteOutcome {
            step,
            function,
            target,
            ok,
            unknown,
            pending,
            filed,
        } => Event::WriteOutcome(WriteSettled {
            answer: None,
            step,
            function,
            target,
            outcome: match (ok, unknown, pending) {
                (_, _, true) => WriteOutcome::Pending,
                (_, true, _) => WriteOutcome::Unknown,
                (true, ..) => WriteOutcome::Applied,
                _ => WriteOutcome::Failed,
            },
            filed,
            undo: false,
        }),
        Record::UndoIntent { step } => Event::UndoStarted { step },
        Record::UndoOutcome {
            step,
            ok,
            error,
            ctx,
        } => Event::UndoFinished(UndoFinished {
            step,
            outcome: if ok {
                StepEnd::Completed
            } else {
                StepEnd::Failed
            },
            error,
            ctx,
        }),
        Record::RollbackBlocked { step, why } => Event::RollbackBlocked { step, why },
        Record::ReplEnd { failed_inputs } => Event::ReplEnded { failed_inputs },
    };
    Ok(Stamped {
        v: VERSION,
        run_id: run_id.to_string(),
        time,
        event,
    })
}
