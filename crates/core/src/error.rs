//! The error every command returns, and the exit code each kind maps to.

use crate::engine::ScriptError;
use miette::Diagnostic;
use std::path::PathBuf;

/// Documented exit codes (DESIGN.md, command-line contract).
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

    #[error("{message}")]
    #[diagnostic(code(runbook::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("no runbook named '{name}'")]
    #[diagnostic(code(runbook::not_found))]
    RunbookNotFound {
        name: String,
        #[help]
        help: String,
    },

    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(runbook::io))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path} is not valid UTF-8 (first bad byte at offset {offset})")]
    #[diagnostic(
        code(runbook::script::encoding),
        help("save the runbook as UTF-8 text")
    )]
    NotUtf8 { path: PathBuf, offset: usize },

    #[error("cannot write {path}: {source}")]
    #[diagnostic(code(runbook::io))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{message}")]
    #[diagnostic(code(runbook::sandbox))]
    Sandbox { message: String },

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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
