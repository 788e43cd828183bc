//! The engine's error type, and the exit code each kind maps to. Errors of the layers below
//! (a vendor's configuration) are wrapped transparently: their codes and help reach the
//! operator unchanged. Every code is documented in docs/errors.md (a test keeps it whole).

use crate::diagnostic::ScriptError;
use miette::Diagnostic;
use std::path::PathBuf;

/// The documented exit codes (README.md, "Exit codes"; docs/errors.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const STEP_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const ABORTED: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(Box<ScriptError>),

    /// Several script problems at once (`check`).
    #[error("{count} problem(s) in {path}", count = .problems.len())]
    #[diagnostic(code(runbook::check::failed))]
    Problems {
        path: String,
        #[related]
        problems: Vec<ScriptError>,
    },

    /// The shared state (a database) cannot be reached or used; nothing was changed.
    #[error("{message}")]
    #[diagnostic(code(runbook::state))]
    State {
        message: String,
        #[help]
        help: String,
    },

    /// The command line or its inputs are wrong; the help says what to pass instead.
    #[error("{message}")]
    #[diagnostic(code(runbook::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },

    /// Settings the runbook's vendors need are missing; nothing was asked or changed.
    #[error("{runbook} cannot start: {count} setting(s) its vendors need are missing:\n{list}")]
    #[diagnostic(
        code(runbook::preflight::missing),
        help("set them in the environment (export NAME=...) or in ./runbook.toml [vendors] (lower-case names); nothing was asked or changed")
    )]
    Preflight {
        runbook: String,
        count: usize,
        list: String,
    },

    #[error("no runbook named '{name}'")]
    #[diagnostic(code(runbook::not_found))]
    RunbookNotFound {
        name: String,
        #[help]
        help: String,
    },

    #[error("cannot read {path}: {source}")]
    #[diagnostic(
        code(runbook::io),
        help("check the path and its permissions; the state directory is RUNBOOK_STATE_DIR")
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An input file over its size limit: refused before it is read.
    #[error("{path} is {bytes} bytes; {what} may be at most {limit} bytes")]
    #[diagnostic(
        code(runbook::limit::file_size),
        help("no honest input is this large: check that the path names the file you meant (docs/security.md lists every limit)")
    )]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        bytes: u64,
        limit: u64,
    },

    #[error("{path} is not valid UTF-8 (first bad byte at offset {offset})")]
    #[diagnostic(
        code(runbook::script::encoding),
        help("save the runbook as UTF-8 text")
    )]
    NotUtf8 { path: PathBuf, offset: usize },

    /// A state file (a journal, the audit log) with bytes that are not text: runbook writes
    /// them as UTF-8, so something else changed it.
    #[error("{path} is damaged at line {line}: it holds bytes that are not UTF-8 text")]
    #[diagnostic(
        code(runbook::state::not_text),
        help("runbook writes it as text: it was changed outside runbook (a disk error, an editor, a bad copy). Keep a copy as it is and restore the file from a backup (`runbook audit verify` then checks the audit chain); a run that cannot be checked against it can still be ended with `runbook abandon RUN_ID --reason TEXT` once the vendors are put right by hand")
    )]
    StateNotText { path: PathBuf, line: usize },

    #[error("cannot write {path}: {source}")]
    #[diagnostic(
        code(runbook::io),
        help("check the path, its permissions and the free space (df); the state directory is RUNBOOK_STATE_DIR")
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A sync of a state file failed: what was written to it since its last sync may be
    /// lost, and no later sync can say otherwise. Final for that file in this process.
    #[error("{path} could not be made durable ({reason}): what was written to it since its last sync may be lost; check the disk (dmesg, df) before resuming")]
    #[diagnostic(
        code(runbook::state::not_durable),
        help("nothing more is recorded in it, so no vendor write is sent; check the disk (dmesg, df) before `runbook resume`, which reads what is on disk and checks each vendor")
    )]
    NotDurable { path: PathBuf, reason: String },

    /// The database no longer holds lines of the run it had acknowledged (a failover to a
    /// standby that had not received them): the next line would chain over the gap. Final.
    #[error("the database no longer holds this run's last records ({place}): the line this run stored last is not there, so something it recorded (perhaps a vendor write) was lost, as after a failover to a standby that had not received it")]
    #[diagnostic(
        code(runbook::state::records_lost),
        help("nothing more is recorded and no vendor write is sent; check each vendor the run writes to, then `runbook resume`, which reads what the database holds and checks the vendors; ask your DBA whether the standby was synchronous")
    )]
    RecordsLost { place: String },

    /// A vendor's endpoint or credentials are misconfigured.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] runbook_vendors::ConfigError),

    /// Another run holds the rotation's lock.
    #[error("{message}")]
    #[diagnostic(code(runbook::lock::held))]
    LockHeld {
        message: String,
        #[help]
        help: String,
    },

    /// No journal for that run id.
    #[error("no run '{run_id}' in {dir}")]
    #[diagnostic(
        code(runbook::run::not_found),
        help("`runbook runs` lists the runs this machine knows")
    )]
    RunNotFound { run_id: String, dir: String },

    /// A run the audit log records whose journal is gone (deleted or moved).
    #[error("the journal of run {run_id} is gone ({path}): the audit log holds {entries} entries of the run, the last at {last}")]
    #[diagnostic(code(runbook::journal::gone))]
    JournalGone {
        run_id: String,
        path: PathBuf,
        entries: usize,
        last: String,
        #[help]
        help: String,
    },

    /// A journal that cannot be read as this version writes them.
    #[error("the journal {path} is damaged at line {line}: {reason}")]
    #[diagnostic(
        code(runbook::journal::damaged),
        help("the run cannot be resumed from it; inspect the file by hand (one JSON record per line), and finish or undo the rotation with the vendors' own tools if needed; once it is over, end the run with `runbook abandon RUN_ID --reason TEXT` (its journal is kept as it is)")
    )]
    JournalDamaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A journal with records of a newer format than this version writes: not damaged.
    #[error(
        "the journal {path} was written by a newer version of runbook (line {line}: {reason})"
    )]
    #[diagnostic(
        code(runbook::journal::newer),
        help("see, resume, roll back or abandon the run with that version (or a later one): this one cannot read it, and changes nothing in it")
    )]
    JournalNewer {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// The runbook (or a module it imports) changed since the run started.
    #[error("the runbook changed since this run started: {changes}")]
    #[diagnostic(
        code(runbook::run::changed),
        help("restore the runbook as it was, or pass --force to continue with the new text")
    )]
    RunbookChanged { changes: String },

    /// A secret the run needs back does not match the one it used.
    #[error("{message}")]
    #[diagnostic(code(runbook::run::secret_mismatch))]
    SecretMismatch {
        message: String,
        #[help]
        help: String,
    },

    /// An audit entry over the per-entry limit: refused whole rather than written cut.
    #[error("the audit entry '{action}' is {bytes} bytes; the limit is {limit} bytes")]
    #[diagnostic(
        code(runbook::audit::too_large),
        help("log a summary (ids, counts, fingerprints) instead of whole documents")
    )]
    AuditTooLarge {
        action: String,
        bytes: usize,
        limit: usize,
    },

    /// The I/O runtime (threads, file descriptors) could not start.
    #[error("cannot start the I/O runtime: {source}")]
    #[diagnostic(
        code(runbook::runtime),
        help("this is a system resource problem (threads or file descriptors); retry")
    )]
    Runtime { source: std::io::Error },

    /// A bug: something the engine guarantees did not hold.
    #[error("internal error: {message}")]
    #[diagnostic(
        code(runbook::internal),
        help("this is a bug in runbook; please report it with the command you ran")
    )]
    Internal { message: String },

    /// A step failed and the run ended (after rollback or stop); already reported.
    #[error("run {status}: step '{step}' failed")]
    #[diagnostic(code(runbook::run::failed))]
    RunFailed { step: String, status: String },

    #[error("the operator aborted the run")]
    #[diagnostic(code(runbook::aborted))]
    Aborted,

    #[error("interrupted")]
    #[diagnostic(code(runbook::interrupted))]
    Interrupted,
}

impl Error {
    /// Whether trying again cannot help (a writer stops retrying at once).
    pub fn is_final(&self) -> bool {
        matches!(self, Error::NotDurable { .. } | Error::RecordsLost { .. })
    }

    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    pub fn script(e: ScriptError) -> Self {
        Error::Script(Box::new(e))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::RunFailed { .. } => exit::STEP_FAILED,
            Error::Aborted => exit::ABORTED,
            Error::Interrupted => exit::INTERRUPTED,
            _ => exit::USAGE,
        }
    }

    /// Whether the error was already reported as it happened (a failed run, an abort).
    pub fn already_reported(&self) -> bool {
        matches!(
            self,
            Error::RunFailed { .. } | Error::Aborted | Error::Interrupted
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
