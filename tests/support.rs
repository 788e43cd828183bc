//! The shared harness (`crates/testkit`): the binary in a temp dir, a separate sandbox
//! process, exit codes by name, the leaked-secret scan and snapshots.

pub use runbook_testkit::*;
