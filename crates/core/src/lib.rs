//! The runbook engine: a rhai script loaded into a plan, run step by step with journal,
//! audit, prompts and rollback, calling vendors through the host modules.
//!
//! Modules from the bottom up; each uses only those before it (a test holds this order):
//! `suggest`, `codes`, `ui`, `interrupt`, `hooks`, `run`, `plan`, `diagnostic`, `error`, `state`, `runtime`,
//! `store`, `audit`, `journal`, `approval`, `prompt`, `engine`, `value`, `host`, `runbook`, `exec`.

pub mod approval;
pub mod audit;
pub mod codes;
pub mod diagnostic;
pub mod engine;
pub mod error;
pub mod exec;
mod hooks;
pub mod host;
pub mod interrupt;
pub mod journal;
pub mod plan;
pub mod prompt;
pub mod run;
pub mod runbook;
pub mod runtime;
pub mod state;
pub mod store;
pub mod suggest;
pub mod ui;
pub mod value;

#[cfg(test)]
mod layering;
