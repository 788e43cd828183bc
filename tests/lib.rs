//! Integration tests: the real `runbook` binary, in a temp dir, asserting on outcomes.

mod support;

mod check;
mod crash;
mod exec;
mod fidelity;
mod hostile;
mod interactive;
mod postmark;
mod reliability;
mod repl;
mod runs;
mod secrets;
