//! `runbook`: runs operational runbooks written as rhai scripts.

pub mod app;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod exec;
pub mod host;
pub mod interrupt;
pub mod prompt;
pub mod repl;
pub mod runbook;
pub mod runtime;
pub mod sandbox;
pub mod secret;
pub mod state;
pub mod ui;
pub mod vendors;
