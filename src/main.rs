//! `runbook`: runs operational runbooks written as rhai scripts.

mod app;
mod cli;
mod commands;
mod error;
mod repl;
mod wiring;

fn main() -> std::process::ExitCode {
    app::main()
}
