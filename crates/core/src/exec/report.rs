//! The run report: printed as a summary, or as JSON on stdout with `--json`.

use crate::host::PlannedWrite;
pub use crate::run::RunStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    NotRun,
    Completed,
    Failed,
    Undone,
    UndoFailed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub run_id: String,
    pub runbook: String,
    pub title: String,
    pub actor: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: String,
    /// This process's part of the run.
    pub duration_ms: u64,
    /// A resumed (or rolled-back) run: the time its steps took in the processes before
    /// this one, and how many processes have worked on it in all, this one included.
    #[serde(skip_serializing_if = "is_zero")]
    pub earlier_step_ms: u64,
    #[serde(skip_serializing_if = "is_one")]
    pub processes: u32,
    pub steps: Vec<StepReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned_writes: Vec<PlannedWrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The writes in effect when the run ended (not undone since), in order: what it
    /// changed where, secrets as fingerprints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<crate::journal::Write>,
    /// Wall-clock time requests waited for vendors' rate limits (pacing to a request pool,
    /// honoured refusals); concurrent waits count once.
    #[serde(skip_serializing_if = "is_zero")]
    pub rate_limit_wait_ms: u64,
    /// The audit chain's head after this run's last entry (`runbook audit verify --head`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<String>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Report {
    /// The ids of the steps this process undid.
    pub fn undone(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Undone)
            .map(|s| s.id.as_str())
            .collect()
    }

    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        runbook_secret::redact_json(&mut v);
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}
