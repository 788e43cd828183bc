//! Integration tests: the real `runbook` binary, in a temp dir, asserting on outcomes.

mod support;

mod authoring;
mod check;
mod crash;
mod docs;
mod exec;
mod fidelity;
mod hostile;
mod http;
mod interactive;
mod new;
mod postmark;
mod reliability;
mod repl;
mod runbooks;
mod runs;
mod secrets;
