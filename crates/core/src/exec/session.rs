//! A session: a loaded runbook, the run it belongs to and that run's `ctx`, built once and
//! used by everything that runs steps (`exec`, `resume`, `rollback`, the REPL). Starting a
//! run and reopening a stopped one both end here.

use super::lock::Lock;
use super::resume;
use crate::audit::AuditLog;
use crate::diagnostic::ScriptError;
use crate::engine::{ABORTED, INTERRUPTED};
use crate::error::{Error, Result};
use crate::host::{Phase, RunContext, RunParts, Services, Stage};
use crate::journal::{self, Journal, Record, RunStart, RunState};
use crate::prompt::Prompter;
use crate::run::{self, Mode, RunInfo, RunStatus};
use crate::runbook::Runbook;
use crate::store::Store;
use crate::value::Ctx;
use rhai::{Dynamic, EvalAltResult, FnPtr};
use std::path::Path;
use std::rc::Rc;

/// How a call into the script ended.
pub enum Outcome {
    Done,
    Failed(Box<ScriptError>),
    Aborted,
    Interrupted,
}

/// A runbook attached to a run.
pub struct Session {
    runbook: Runbook,
    run: Rc<RunContext>,
    ctx: Ctx,
    lock: Option<Lock>,
}

/// Everything a new run needs.
pub struct NewRun {
    pub store: Store,
    pub actor: String,
    pub mode: Mode,
    /// Rehearsing against an in-process sandbox (which dies with the process).
    pub sandbox: bool,
    pub services: Services,
    pub prompter: Prompter,
    /// `ctx.params`, resolved.
    pub params: rhai::Map,
    /// Take the rotation's lock even if another run holds it (journalled).
    pub break_lock: bool,
}

/// Everything reopening a stopped run needs.
pub struct Reopen {
    pub store: Store,
    pub run_id: String,
    pub actor: String,
    /// What the new process does with the run: resume, rollback or repl.
    pub attempt: Mode,
    /// Accept a runbook that changed since the run (says what changed).
    pub force: bool,
    pub break_lock: bool,
    pub services: Services,
    pub prompter: Prompter,
}

/// A reopened run and what its journal says.
pub struct Reopened {
    pub session: Session,
    pub state: RunState,
    /// Indexes of the steps the journal says completed.
    pub completed: Vec<usize>,
}

impl Session {
    /// Starts a new run of `runbook`: takes the lock (not for a dry run, which changes
    /// nothing), opens the journal and records the start.
    pub fn start(runbook: Runbook, new: NewRun) -> Result<Session> {
        crate::store::load_fingerprint_key(&new.store)?;
        let info = RunInfo {
            run_id: run::new_run_id(),
            actor: new.actor,
            runbook_id: runbook.plan().meta().id.clone(),
            mode: new.mode,
        };
        let ctx = Ctx::new(new.params);
        // A dry run changes nothing; a REPL session runs single steps by hand.
        let lock = if matches!(new.mode, Mode::DryRun | Mode::Repl) {
            None
        } else {
            let key = super::lock::key(runbook.plan(), &ctx.snapshot()["params"]);
            Some(Lock::acquire(
                &new.store,
                &key,
                &info.run_id,
                &info.actor,
                new.break_lock,
            )?)
        };
        let parts = RunParts {
            journal: Rc::new(Journal::open(&new.store, &info.run_id)?),
            audit: AuditLog::new(&new.store),
            store: new.store.clone(),
            services: Rc::new(new.services),
            info,
        };
        let run = RunContext::new(parts, new.prompter, Vec::new());
        let session = Session::attach(runbook, run, ctx, lock);
        session.run.record_required(Record::RunStart(RunStart {
            run_id: session.run.info().run_id.clone(),
            runbook: session.run.info().runbook_id.clone(),
            source: resume::fingerprints(&session.runbook),
            params: session.ctx.snapshot()["params"].clone(),
            actor: session.run.info().actor.clone(),
            host: run::hostname(),
            pid: std::process::id(),
            mode: new.mode,
            sandbox: new.sandbox,
        }))?;
        session.note_broken_lock();
        Ok(session)
    }

    /// Reopens a stopped run from its journal: reloads its runbook (refusing a changed one
    /// unless forced), takes its lock, restores `ctx` (secrets supplied again and checked by
    /// fingerprint) and says which steps completed.
    pub fn reopen(r: Reopen) -> Result<Reopened> {
        let what = r.attempt.as_str();
        crate::store::load_fingerprint_key(&r.store)?;
        let state = open_journal(&r.store, &r.run_id)?;
        let start = &state.start;
        if start.mode == Mode::DryRun {
            return Err(Error::usage(
                format!("run {} was a dry run: there is nothing to {what}", r.run_id),
                "start a real run with `runbook exec`",
            ));
        }
        if start.sandbox {
            return Err(Error::usage(
                format!(
                    "run {} used an in-process --sandbox, whose simulated vendors ended with it",
                    r.run_id
                ),
                "rehearse crash recovery against `runbook sandbox` (a separate process) instead",
            ));
        }
        match state.settled() {
            Some(RunStatus::Succeeded) if r.attempt != Mode::Rollback => {
                return Err(Error::usage(
                    format!("run {} already succeeded: nothing to resume", r.run_id),
                    "start a new rotation with `runbook exec`",
                ));
            }
            Some(RunStatus::RolledBack) => {
                return Err(Error::usage(
                    format!("run {} was already rolled back", r.run_id),
                    "start a new rotation with `runbook exec`",
                ));
            }
            _ => {}
        }
        let file = crate::runbook::SourceFile::read(Path::new(&start.source.path))?;
        let runbook = Runbook::load(file)?;
        resume::check_unchanged(start, &runbook, r.force)?;
        let key = super::lock::key(runbook.plan(), &start.params);
        let lock = Lock::acquire(&r.store, &key, &r.run_id, &r.actor, r.break_lock)?;
        let parts = RunParts {
            info: RunInfo {
                run_id: r.run_id.clone(),
                actor: r.actor.clone(),
                runbook_id: runbook.plan().meta().id.clone(),
                mode: r.attempt,
            },
            services: Rc::new(r.services),
            journal: Rc::new(Journal::open(&r.store, &r.run_id)?),
            audit: AuditLog::new(&r.store),
            store: r.store.clone(),
        };
        let run = RunContext::new(parts, r.prompter, state.writes.clone());
        let mut session = Session::attach(runbook, run, Ctx::default(), Some(lock));
        session.note_broken_lock();
        session.run.record_required(Record::RunResume {
            actor: r.actor,
            pid: std::process::id(),
            attempt: r.attempt,
        })?;
        session.ctx = resume::restore_ctx(&session, &state)?;
        let completed = session
            .runbook
            .plan()
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| state.completed(&s.id))
            .map(|(i, _)| i)
            .collect();
        Ok(Reopened {
            session,
            state,
            completed,
        })
    }

    /// A runbook attached to an existing run (the REPL loads runbooks into its session).
    pub fn attach(
        mut runbook: Runbook,
        run: Rc<RunContext>,
        ctx: Ctx,
        lock: Option<Lock>,
    ) -> Session {
        runbook.attach(Stage::Running(run.clone()));
        // The REPL without a runbook declares nothing: its operator is at the keyboard.
        let plan = runbook.plan();
        run.set_masking(plan.meta().masking.clone());
        run.set_egress(if plan.steps.is_empty() {
            crate::plan::egress::Egress::unrestricted()
        } else {
            crate::plan::egress::Egress::resolve(&plan.meta().egress, &ctx.snapshot()["params"])
        });
        Session {
            runbook,
            run,
            ctx,
            lock,
        }
    }

    fn note_broken_lock(&self) {
        let Some(holder) = self.lock.as_ref().and_then(Lock::broken) else {
            return;
        };
        let holder = serde_json::to_value(holder).unwrap_or_default();
        self.run.record(Record::LockBroken {
            holder: holder.clone(),
        });
        if let Err(e) = self
            .run
            .audit_event("lock.broken", serde_json::json!({ "holder": holder }))
        {
            crate::ui::err(&format!("warning: could not write the audit log: {e}"));
        }
    }

    pub fn runbook(&self) -> &Runbook {
        &self.runbook
    }

    /// The runbook, to register the imports of REPL input (its plan stays as loaded).
    pub fn runbook_mut(&mut self) -> &mut Runbook {
        &mut self.runbook
    }

    pub fn run(&self) -> &Rc<RunContext> {
        &self.run
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    pub fn run_id(&self) -> &str {
        &self.run.info().run_id
    }

    /// Why the run must stop: it lost its rotation lock to another run.
    pub fn lock_lost(&self) -> Option<String> {
        self.lock.as_ref().and_then(Lock::lost)
    }

    /// Gives up the rotation's lock before the session ends (a finished run).
    pub fn release_lock(&mut self) {
        if let Some(l) = self.lock.as_mut() {
            l.release();
        }
    }

    /// Takes the lock out of the session (the REPL keeps it across runbook loads).
    pub fn take_lock(&mut self) -> Option<Lock> {
        self.lock.take()
    }

    /// Calls a step's closure (or its undo, or a verify) in `phase` with this run's `ctx`.
    pub fn call(&self, f: &FnPtr, phase: Phase) -> Outcome {
        self.run.set_phase(phase);
        self.run.reset_writes();
        match self.runbook.call::<Dynamic>(f, self.ctx.clone()) {
            Ok(_) => Outcome::Done,
            Err(e) => self.outcome_of(&e),
        }
    }

    /// Calls a closure that answers a question (a step's verify) with this run's `ctx`.
    pub fn ask(&self, f: &FnPtr, phase: Phase) -> std::result::Result<bool, Box<ScriptError>> {
        self.run.set_phase(phase);
        self.runbook
            .call::<bool>(f, self.ctx.clone())
            .map_err(|e| Box::new(ScriptError::from_eval(&e, self.runbook.sources())))
    }

    /// Calls a closure that returns a value (a `recover`) with `ctx`.
    pub(crate) fn value_of(
        &self,
        f: &FnPtr,
        ctx: &Ctx,
        phase: Phase,
    ) -> std::result::Result<Dynamic, Box<ScriptError>> {
        self.run.set_phase(phase);
        let got = self.runbook.call::<Dynamic>(f, ctx.clone());
        self.run.set_phase(Phase::Idle);
        got.map_err(|e| Box::new(ScriptError::from_eval(&e, self.runbook.sources())))
    }

    fn outcome_of(&self, e: &EvalAltResult) -> Outcome {
        match termination(e).as_deref() {
            Some(ABORTED) => Outcome::Aborted,
            Some(INTERRUPTED) => Outcome::Interrupted,
            _ if crate::interrupt::is_set() => Outcome::Interrupted,
            _ => Outcome::Failed(Box::new(ScriptError::from_eval(e, self.runbook.sources()))),
        }
    }
}

/// The token of a termination (abort, Ctrl-C), however deep in calls it happened.
fn termination(err: &EvalAltResult) -> Option<String> {
    match err {
        EvalAltResult::ErrorTerminated(token, _) => Some(token.to_string()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => termination(inner),
        _ => None,
    }
}

/// A run's journal, read and summarised.
pub(crate) fn open_journal(store: &Store, run_id: &str) -> Result<RunState> {
    let not_found = || Error::RunNotFound {
        run_id: run_id.to_string(),
        dir: store.runs_where(),
    };
    if !run::is_run_id(run_id) {
        return Err(not_found());
    }
    let entries = journal::read_run(store, run_id)?.ok_or_else(not_found)?;
    RunState::from_entries(&entries).ok_or_else(|| Error::JournalDamaged {
        path: store.journal_where(run_id).into(),
        line: 1,
        reason: "it has no start record".into(),
    })
}
