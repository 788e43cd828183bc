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

    #[error(transparent)]
    #[diagnostic(transparent)]
    Vendor(#[from] VendorFailure),
}

/// A vendor call of a command that is not a run (`consumers`), rendered as the run would.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct VendorFailure(#[from] runbook_vendors::VendorError);

impl Diagnostic for VendorFailure {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Diagnostic::code(&self.0)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Diagnostic::help(&self.0)
    }
}

impl From<runbook_vendors::VendorError> for Error {
    fn from(e: runbook_vendors::VendorError) -> Self {
        Error::Vendor(VendorFailure(e))
    }
}

impl Error {
    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Core(runbook_core::error::Error::usage(message, help))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Core(e) => e.exit_code(),
            Error::Sandbox(_) | Error::Fault(_) => exit::USAGE,
            Error::Vendor(VendorFailure(e)) if e.kind() == runbook_vendors::ErrorKind::Config => {
                exit::USAGE
            }
            Error::Vendor(_) => exit::STEP_FAILED,
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
