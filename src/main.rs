//! `runbook`: runs operational runbooks written as rhai scripts.

mod app;
mod cli;
mod commands;
mod repl;

fn main() -> std::process::ExitCode {
    app::main()
}
