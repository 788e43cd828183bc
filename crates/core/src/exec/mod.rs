//! Running a plan: a session (a runbook attached to a run), one step executor, the step loop
//! with retry/rollback/stop, resume and rollback of a stopped run, params, locks, reports.

pub mod lock;
pub mod params;
pub mod preflight;
pub(crate) mod refresh;
pub mod report;
pub mod resume;
pub mod runner;
pub mod session;
pub mod step;

pub use report::{Report, RunStatus, StepReport, StepStatus};
pub use runner::{run, Start};
pub use session::{Abandon, NewRun, Outcome, Reopen, Reopened, Session, Wiring};

/// Before an undo typed at the REPL (`:undo STEP`): what a rollback checks first, the probes
/// of every value it would restore and a read of each target the step wrote (what changed
/// since is left alone). `false` when nothing may be undone; the refusal is said.
pub fn checked_before_undo(session: &Session, step: usize) -> bool {
    match refresh::before_rollback(session, &[step], &[step]) {
        Ok(()) => true,
        Err(refusal) => {
            refresh::refuse(session, &refusal);
            false
        }
    }
}

/// How `exec` (or `resume`, `rollback`) was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub yes: bool,
    pub no_rollback: bool,
    pub dry_run: bool,
    pub json: bool,
    /// The organisation's policy (`[policy]` in runbook.toml): every irreversible step
    /// needs an approval, with this timeout, even when the runbook does not ask for one.
    pub approve_irreversible: Option<std::time::Duration>,
    /// This person's SSH signing key and the team's allowed signers: how an approval
    /// request and its decision prove who made them on the file store.
    pub keys: crate::approval::ssh::Keys,
}
