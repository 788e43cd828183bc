//! A runbook loaded: its script compiled, its top level run, its plan declared. Also what
//! reads a loaded runbook without running it: lints, the SOP page, the API reference.

pub mod folder;
pub mod lint;
mod load;
pub mod program;
pub mod reference;
pub mod secret_flow;
pub mod sop;
pub mod source;

pub use load::{compile, Runbook};
pub use source::{Library, SourceFile};
