//! The binary's error: the engine's, or the sandbox's, each with its own code and help.

use miette::Diagnostic;

pub use runbook_core::error::exit;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Core(#[from] runbook_core::error::Error),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] runbook_sandbox::SandboxError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Fault(#[from] runbook_sandbox::FaultParseError),
}

impl Error {
    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Core(runbook_core::error::Error::usage(message, help))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Core(e) => e.exit_code(),
            Error::Sandbox(_) | Error::Fault(_) => exit::USAGE,
        }
    }

    /// Whether it was already reported as it happened (a failed or aborted run).
    pub fn already_reported(&self) -> bool {
        matches!(self, Error::Core(e) if e.already_reported())
    }
}

impl From<runbook_vendors::ConfigError> for Error {
    fn from(e: runbook_vendors::ConfigError) -> Self {
        Error::Core(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
