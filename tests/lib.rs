//! Integration tests: the real `runbook` binary, in a temp dir, asserting on outcomes.

// Tests report a failed expectation by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod approvals;
mod authoring;
mod aws;
mod check;
mod cloudflare;
mod companions;
mod consumers;
mod crash;
mod datadog;
mod diagnostics;
mod docs;
mod evidence;
mod exec;
mod failures;
mod fan_out;
mod fenced;
mod fidelity;
mod hostile;
mod http;
mod interactive;
mod neon;
mod new;
mod postmark;
mod property;
mod rate_limits;
mod reconcile;
mod reliability;
mod repl;
mod runbooks;
mod runs;
mod secrets;
mod team;
mod timeline;
mod together;
mod twilio;
mod views;
