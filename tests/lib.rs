//! Integration tests: the real `runbook` binary, in a temp dir, asserting on outcomes.

mod support;

mod authoring;
mod check;
mod docs;
mod exec;
mod http;
mod interactive;
mod new;
mod postmark;
mod runbooks;
mod secrets;
