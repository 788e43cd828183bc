//! The closing report of a process that worked on a run: read off the run's ledger, never
//! kept beside it. The binary prints it as the summary, or streams it as the last line of
//! `--json`.

use crate::events::{StepEnd, WritePlanned};
use crate::ledger::{Ledger, StepLine, StepState, Write};
use crate::plan::Plan;
pub use crate::run::RunStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    NotRun,
    Completed,
    Failed,
    Undone,
    UndoFailed,
}

impl StepStatus {
    /// What this process's report says of a step, from where the ledger says it stands.
    fn of(line: Option<&StepLine>) -> StepStatus {
        let Some(l) = line else {
            return StepStatus::NotRun;
        };
        let completed = l.state == StepState::Ended(StepEnd::Completed);
        if !l.touched {
            // Steps earlier processes completed count as completed; nothing else of theirs.
            return if completed {
                StepStatus::Completed
            } else {
                StepStatus::NotRun
            };
        }
        match l.state {
            StepState::Ended(StepEnd::Completed) => StepStatus::Completed,
            StepState::Ended(_) | StepState::Started | StepState::Blocked => StepStatus::Failed,
            StepState::Undone => StepStatus::Undone,
            StepState::UndoFailed => StepStatus::UndoFailed,
            // An undo that did not finish left the step in effect.
            StepState::UndoStarted | StepState::UndoStopped => StepStatus::Completed,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
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
    #[serde(default, skip_serializing_if = "is_zero")]
    pub earlier_step_ms: u64,
    #[serde(default, skip_serializing_if = "is_one")]
    pub processes: u32,
    pub steps: Vec<StepReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned_writes: Vec<WritePlanned>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The writes in effect when the run ended (not undone since), in order: what it
    /// changed where, secrets as fingerprints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub changes: Vec<Write>,
    /// Targets the run wrote that someone changed since, read at the vendor: left alone by
    /// its rollback or resume (what makes a rollback partial).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub left_alone: Vec<crate::events::Refreshed>,
    /// Wall-clock time requests waited for vendors' rate limits (pacing to a request pool,
    /// honoured refusals); concurrent waits count once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limit_wait_ms: u64,
    /// The audit chain's head after this run's last entry (`runbook audit verify --head`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<String>,
    /// This process took the run over and ended without starting a step or an undo (a
    /// rollback nobody confirmed, a resume refused): `status` is its own, and the run
    /// stands as it was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed_nothing: bool,
    /// What undos left at the vendors on purpose (`ctx.leave`): in place, not undone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<crate::events::Kept>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Report {
    /// The report of the latest process that worked on the run, from its ledger.
    pub fn of(ledger: &Ledger, plan: &Plan) -> Report {
        let meta = plan.meta();
        let latest = ledger.processes.last();
        let finished = latest.and_then(|p| p.finished.as_ref());
        let status = finished.map_or(RunStatus::Running, |f| f.status);
        let stop = ledger
            .stop
            .as_ref()
            .filter(|_| status != RunStatus::Succeeded);
        let steps = plan
            .steps
            .iter()
            .map(|s| {
                let line = ledger.step(&s.id);
                let here = line.filter(|l| l.touched);
                StepReport {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    status: StepStatus::of(line),
                    duration_ms: here.map_or(0, |l| l.duration_ms),
                    attempts: here.map_or(0, |l| l.attempts),
                    error: here.and_then(|l| l.error.clone()),
                }
            })
            .collect();
        Report {
            run_id: ledger.run_id.clone(),
            runbook: meta.id.clone(),
            title: meta.title.clone(),
            actor: latest.map(|p| p.actor.clone()).unwrap_or_default(),
            status,
            dry_run: ledger.start.effect == crate::run::Effect::DryRun,
            started_at: latest.map(|p| p.started_at.clone()).unwrap_or_default(),
            duration_ms: finished.and_then(|f| f.duration_ms).unwrap_or(0),
            earlier_step_ms: ledger.earlier_step_ms(),
            // Those that did something (and this one): a resume refused, or one that could not
            // get the run's values back, is not a session of the run's work.
            processes: ledger
                .processes
                .iter()
                .enumerate()
                .filter(|(i, p)| p.acted || i + 1 == ledger.processes.len())
                .count() as u32,
            steps,
            planned_writes: ledger.planned.clone(),
            failed_step: stop.map(|s| s.step.clone()),
            error: stop
                .map(|s| s.error.clone())
                .or_else(|| finished.and_then(|f| f.error.clone())),
            changes: ledger.changes(),
            left_alone: ledger.changed_by_others().cloned().collect(),
            rate_limit_wait_ms: finished.and_then(|f| f.rate_limit_wait_ms).unwrap_or(0),
            audit_head: finished.and_then(|f| f.audit_head.clone()),
            changed_nothing: ledger.processes.len() > 1
                && latest.is_some_and(crate::ledger::Process::changed_nothing),
            kept: ledger.kept.clone(),
        }
    }

    /// The report of a run whose ledger has no start (its first event could not be
    /// recorded): the plan, and how it ended.
    pub fn unrecorded(info: &crate::run::RunInfo, plan: &Plan, status: RunStatus) -> Report {
        let meta = plan.meta();
        Report {
            run_id: info.run_id.clone(),
            runbook: meta.id.clone(),
            title: meta.title.clone(),
            actor: info.actor.clone(),
            status,
            dry_run: info.modes.is_dry_run(),
            started_at: crate::run::now_rfc3339(),
            duration_ms: 0,
            earlier_step_ms: 0,
            processes: 1,
            steps: plan
                .steps
                .iter()
                .map(|s| StepReport {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    status: StepStatus::NotRun,
                    duration_ms: 0,
                    attempts: 0,
                    error: None,
                })
                .collect(),
            planned_writes: Vec::new(),
            failed_step: None,
            error: None,
            changes: Vec::new(),
            left_alone: Vec::new(),
            rate_limit_wait_ms: 0,
            audit_head: None,
            changed_nothing: false,
            kept: Vec::new(),
        }
    }

    /// The ids of the steps this process undid.
    pub fn undone(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Undone)
            .map(|s| s.id.as_str())
            .collect()
    }
}
