//! The runbook engine: a rhai script loaded into a plan, run step by step with journal,
//! audit, prompts and rollback, calling vendors through the host modules.

pub mod audit;
pub mod engine;
pub mod error;
pub mod exec;
pub mod host;
pub mod interrupt;
pub mod plan;
pub mod prompt;
pub mod runtime;
pub mod state;
pub mod ui;
