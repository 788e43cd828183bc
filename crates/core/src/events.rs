//! The events of a run's ledger: what happened, as types. The journal (a file per run, or
//! rows of the shared database) stores them one JSON object per line, and `--json` streams
//! the same objects; `Ledger::apply` folds them into what every view reads.

use crate::run::{Effect, Entry, RunStatus, Target};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The newest version of the event format this binary reads. A reader refuses a newer one
/// rather than misread it. Each event is written with the lowest version that holds it
/// (`Event::version`): 1 for every event a binary of version 1 reads, so its journals stay
/// readable to a teammate not yet upgraded, and 2 for what such a binary would misread
/// as damage (and then let `abandon` end a healthy run): it stops at "newer" instead.
pub const VERSION: u32 = 2;

/// One event of one run, as stored and streamed: `{"v":1,"run_id":…,"time":…,"type":…,…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stamped {
    /// The event format's version.
    pub v: u32,
    pub run_id: String,
    /// When it happened (RFC 3339, UTC, seconds).
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

impl Stamped {
    pub fn now(run_id: &str, event: Event) -> Stamped {
        Stamped {
            v: event.version(),
            run_id: run_id.to_string(),
            time: crate::run::now_rfc3339(),
            event,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first event of every run.
    RunStarted(RunStarted),
    /// A later process took the run over (resume, rollback, or the REPL attaching).
    RunResumed(RunResumed),
    /// A process that worked on the run ended.
    RunFinished(RunFinished),
    /// The run took its rotation's lock (a lease on the shared database).
    LeaseTaken(LeaseTaken),
    /// The run found its lock taken by another run and stopped before a step.
    LeaseLost(LeaseLost),
    /// The lock was taken from a holder that looked dead, or with `--break-lock`.
    LockBroken {
        #[schemars(with = "Value")]
        holder: Value,
    },
    /// An attempt at a step's forward body begins.
    StepStarted(StepStarted),
    /// An attempt at a step's forward body ended (or the step was counted as done).
    StepFinished(StepFinished),
    /// A write is about to be sent to a vendor.
    Write(WriteSent),
    /// How a write ended.
    WriteOutcome(WriteSettled),
    /// A write `--dry-run` recorded instead of performing.
    WritePlanned(WritePlanned),
    /// A step's undo begins.
    UndoStarted { step: String },
    /// A step's undo ended.
    UndoFinished(UndoFinished),
    /// Rollback reached a step that cannot be undone, and stopped there.
    RollbackBlocked { step: String, why: String },
    /// Before acting, a rollback read a target the run wrote: what it holds now.
    Refreshed(Refreshed),
    /// A step's undo leaves something at a vendor on purpose (`ctx.leave`): the new
    /// credential kept for diagnosis. Listed as left in place, not undone.
    Kept(Kept),
    /// `runbook abandon`: the run ends as it is, neither resumed nor rolled back; what it
    /// leaves in the world is listed for the people who clean it up.
    Abandoned(Abandoned),
    /// The operator (or `--yes`, an answers file, a default) answered a question.
    Decision(Decision),
    /// Four eyes: a step's approval was requested or decided.
    Approval(Approval),
    /// A vendor answered as a simulator (the sandbox says so in every answer): the run is
    /// a rehearsal, whatever its endpoints looked like.
    SimulatorAnswered { vendor: String },
    /// A REPL session ended.
    ReplEnded { failed_inputs: usize },
}

impl Event {
    /// The format version a reader needs to read this event: 2 for an undo's `kept` and a
    /// `refreshed` that is `refuted` (added together), 1 for the rest.
    pub fn version(&self) -> u32 {
        match self {
            Event::Kept(_) => 2,
            Event::Refreshed(r) if r.holds == Holds::Refuted => 2,
            _ => 1,
        }
    }

    /// The `type` of the event as it is written.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStarted(_) => "run_started",
            Event::RunResumed(_) => "run_resumed",
            Event::RunFinished(_) => "run_finished",
            Event::LeaseTaken(_) => "lease_taken",
            Event::LeaseLost(_) => "lease_lost",
            Event::LockBroken { .. } => "lock_broken",
            Event::StepStarted(_) => "step_started",
            Event::StepFinished(_) => "step_finished",
            Event::Write(_) => "write",
            Event::WriteOutcome(_) => "write_outcome",
            Event::WritePlanned(_) => "write_planned",
            Event::UndoStarted { .. } => "undo_started",
            Event::UndoFinished(_) => "undo_finished",
            Event::RollbackBlocked { .. } => "rollback_blocked",
            Event::Refreshed(_) => "refreshed",
            Event::Kept(_) => "kept",
            Event::Abandoned(_) => "abandoned",
            Event::Decision(_) => "decision",
            Event::Approval(_) => "approval",
            Event::SimulatorAnswered { .. } => "simulator_answered",
            Event::ReplEnded { .. } => "repl_ended",
        }
    }
}

/// The runbook and the modules it imported, by hash: `resume` refuses a changed text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceHashes {
    pub path: String,
    pub sha256: String,
    #[serde(default)]
    pub modules: Vec<ModuleHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModuleHash {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunStarted {
    /// The runbook's id.
    pub runbook: String,
    pub source: SourceHashes,
    /// The params, secrets as fingerprints.
    #[schemars(with = "Value")]
    pub params: Value,
    pub actor: String,
    pub host: String,
    pub pid: u32,
    pub target: Target,
    pub effect: Effect,
    pub entry: Entry,
    /// The rotation's lock key (the secret and the params that locate it): two runs with
    /// the same key rotate the same secret. None for a dry run or a REPL session, and in
    /// journals written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
    /// Where the run went and with what (none in journals written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// The login the state database authenticated (none on files, where `actor` is a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

/// Proof of which environment a run touched: the binary, each vendor's base URL and the
/// hosts `http::` could reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// The `runbook` version that started the run.
    pub version: String,
    /// Each vendor module's base URL.
    pub vendors: std::collections::BTreeMap<String, String>,
    /// The runbook's declared egress (`http::` hosts, or `param:NAME`).
    pub egress: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunResumed {
    pub actor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub pid: u32,
    pub entry: Entry,
    /// The login the state database authenticated, as for `run_started`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunFinished {
    pub status: RunStatus,
    /// Why the run stopped when no step says it (a question nobody could answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This process's part of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Wall-clock time requests waited for vendors' rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_wait_ms: Option<u64>,
    /// The audit chain's head after the run's last entry: `audit verify --head` with it
    /// proves no entry was cut off the end since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseTaken {
    pub key: String,
    /// This taking of the lock (renewed and released by it).
    pub lease_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseLost {
    /// The step that was not run.
    pub step: String,
    pub why: String,
}

/// How an attempt at a step (or its undo) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepEnd {
    Completed,
    Failed,
    Aborted,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepStarted {
    pub step: String,
    /// 1 for the first attempt in this process, 2 for its first retry…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Run by hand (the REPL's `:run --force`) before the steps it follows completed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub out_of_order: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepFinished {
    pub step: String,
    pub outcome: StepEnd,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the failed attempt performed a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrote: Option<bool>,
    /// Counted as completed because its verify (or the operator) said it had taken effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Who said so: a read at the vendor, or only the operator's word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<ConfirmedBy>,
    /// `ctx` after the step (secrets as fingerprints), when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub ctx: Option<Value>,
}

/// What came of a write: one of five, never a combination of flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// Refused before it left (a missing credential, a refused connection): the vendor
    /// never saw it.
    NotSent,
    /// The vendor answered that it took effect.
    Applied,
    /// The vendor answered that it did not.
    Failed,
    /// Sent, and its answer never came (or the process died before recording it): it may
    /// have taken effect.
    Unknown,
    /// Filed for approval and not merged yet (an Infisical change request): it takes effect
    /// if an approver merges it.
    Pending,
}

impl WriteOutcome {
    /// Whether the vendor may have changed: an undo has something to restore.
    pub fn may_have_applied(self) -> bool {
        matches!(
            self,
            WriteOutcome::Applied | WriteOutcome::Unknown | WriteOutcome::Pending
        )
    }

    /// Whether only a check (or the operator) can tell if it took effect.
    pub fn uncertain(self) -> bool {
        matches!(self, WriteOutcome::Unknown | WriteOutcome::Pending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::NotSent => "not_sent",
            WriteOutcome::Applied => "applied",
            WriteOutcome::Failed => "failed",
            WriteOutcome::Unknown => "unknown",
            WriteOutcome::Pending => "pending",
        }
    }
}

/// The change request a write was filed as (an Infisical secret-approval policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Filed {
    pub id: String,
    pub slug: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriteSent {
    pub step: String,
    pub function: String,
    pub target: String,
    /// The change (secrets as fingerprints).
    #[serde(default)]
    #[schemars(with = "Value")]
    pub detail: Value,
    /// Whether sending it again is safe (the host function's declaration).
    #[serde(default)]
    pub idempotent: bool,
    /// Written by a step's undo, to restore what the step changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
}

/// A run ended by `runbook abandon`: who, why, and every change it leaves in effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Abandoned {
    pub actor: String,
    pub reason: String,
    /// The writes still in effect (secrets as fingerprints), with where they live.
    pub left: Vec<LeftInPlace>,
}

/// One change an abandoned run leaves in the world, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeftInPlace {
    pub step: String,
    pub function: String,
    pub target: String,
    #[schemars(with = "Value")]
    pub detail: Value,
    /// How to clean it up by hand, when the step says (its undo cannot run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<String>,
}

/// Who said that a step whose effect was in doubt took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmedBy {
    /// A read at the vendor showed the effect (the step's `.verify`).
    Vendor,
    /// The operator said so, and the vendor could not be read to check.
    Operator,
}

/// What an undo left at a vendor on purpose, in its words (secrets masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Kept {
    pub step: String,
    pub what: String,
}

/// What a target the run wrote holds now, read at the vendor before a rollback acts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refreshed {
    pub step: String,
    pub function: String,
    pub target: String,
    pub holds: Holds,
    /// What it holds now, as the operator may see it (secrets masked), when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
}

/// Whether a target still holds what the run wrote there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Holds {
    /// What the run wrote: the rollback may restore it.
    AsWritten,
    /// Something else: someone (or a later run) changed it since; the rollback leaves it.
    Changed,
    /// What this run's own rollback put back there (an undo that stopped part way): not
    /// someone else's change; the rollback run again goes on with it.
    Restored,
    /// It could not be read back (the vendor keeps it write-only, or the read failed).
    Unread,
    /// A write that may have applied (its answer lost, or a server error) does not show:
    /// it did not apply, or someone changed the target since. Nothing of the run's is there
    /// to undo, so the rollback leaves it; a resume asks the operator which (`resume.rewrite`)
    /// before its step writes it again.
    NotShown,
    /// A write that may have applied does not show, and nothing changed its target since
    /// the run started (no Heroku release, no newer Infisical version): it did not land.
    /// The rollback leaves it; a resume's step writes it again.
    Before,
    /// A write the operator said was done (a dashboard step) that its step's `.verify`
    /// reads at the vendor did not take effect: not in effect, nothing of it to undo.
    Refuted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriteSettled {
    pub step: String,
    pub function: String,
    pub target: String,
    pub outcome: WriteOutcome,
    /// The change request it was filed as, when it is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed: Option<Filed>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
    /// Fields of the vendor's answer the call asked to keep (`record:`), such as the id of
    /// a credential it created: recorded with the outcome, so a crash right after cannot
    /// lose what rollback needs to delete it. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub answer: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WritePlanned {
    pub step: String,
    pub function: String,
    /// `write` or `destructive`.
    pub effect: crate::plan::effect::Effect,
    pub target: String,
    #[schemars(with = "Value")]
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UndoFinished {
    pub step: String,
    pub outcome: StepEnd,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub ctx: Option<Value>,
}

/// Who answered a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// A person at the terminal.
    Operator,
    /// The `--answers` file.
    Answers,
    /// `--yes`.
    Yes,
    /// The question's default, with nobody to ask.
    Default,
}

/// What sort of question it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// Yes or no.
    Confirm,
    /// One of a list of options.
    Choose,
    /// Free text (recorded only when its default was taken).
    Ask,
    /// One item of the prerequisites' checklist.
    Checklist,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    /// The question's id (`writes.confirm`, `propagate.on-failure`…).
    pub id: String,
    pub kind: Question,
    pub question: String,
    /// `yes`, `no`, or the option chosen. Free text and secrets are never recorded.
    pub answer: String,
    pub by: AnsweredBy,
}

/// Where a step's approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Requested,
    Approved,
    Denied,
    Timeout,
    /// The run could not accept it: the asker or the decider is not proven where proof is
    /// needed, a signature does not verify, or the request changed after it was shown.
    /// Never an approval; `approver` is who the decision claims to be.
    Refused,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Requested => "requested",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Timeout => "timeout",
            ApprovalStatus::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Approval {
    pub step: String,
    pub status: ApprovalStatus,
    /// The actor of the run that asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Who must approve, as the runbook (or the policy) says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Who approved or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The machine they decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_host: Option<String>,
    /// Their login role, authenticated by the database (none on files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_role: Option<String>,
    /// The SSH key (`SHA256:…`) whose signature over the decision verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_key: Option<String>,
    /// The approver is a name only: neither a login nor a key proves it (a rehearsal).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approver_unverified: bool,
    /// An SSH-signed decision: the exact text signed and the armored signature, so an
    /// auditor can check it later (`ssh-keygen -Y verify`) against the team's published
    /// allowed signers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// SHA-256 of the allowed signers file the run checked the signatures against: which
    /// trust root this run used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_signers_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// The request's nonce: a decision names it, so `audit verify` ties each approval the
    /// journal records to the decision the database holds for that request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}
