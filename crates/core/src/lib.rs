//! The runbook engine: a rhai script loaded into a plan, run step by step with journal,
//! audit, prompts and rollback, calling vendors through the host modules.
//!
//! Modules from the bottom up; each uses only those before it (a test holds this order):
//! `text`, `identity`, `suggest`, `codes`, `interrupt`, `hooks`, `run`, `plan`, `events`, `sink`, `diagnostic`, `error`,
//! `state`, `runtime`, `store`, `audit`, `ledger`, `approval`, `prompt`, `engine`, `value`, `host`,
//! `runbook`, `exec`.
//!
//! The engine never writes to a terminal: what happens goes to the run's ledger (typed
//! events, `events`, folded by `ledger`) and, with what an operator should see, to a `Sink`
//! the binary provides.

pub mod approval;
pub mod audit;
pub mod codes;
pub mod diagnostic;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod hooks;
pub mod host;
pub mod identity;
pub mod interrupt;
pub mod ledger;
pub mod plan;
pub mod prompt;
pub mod run;
pub mod runbook;
pub mod runtime;
pub mod sink;
pub mod state;
pub mod store;
pub mod suggest;
pub mod text;
pub mod value;

#[cfg(test)]
mod layering;
