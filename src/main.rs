//! `runbook`: runs operational runbooks written as rhai scripts.

mod app;
mod cli;
mod commands;
mod dashboard;
mod error;
mod repl;
mod settings;
mod terminal;
mod ui;
mod view;
mod wiring;

/// rhai walks nested values recursively (size checks, clones, drops), and a script decides
/// how deep they nest before any of our own checks sees them: a roomy stack turns what
/// would be a stack-overflow abort into rhai's array-size error. Only touched pages cost
/// memory.
const STACK_BYTES: usize = 512 << 20;

fn main() -> std::process::ExitCode {
    let spawned = std::thread::Builder::new()
        .name("runbook".into())
        .stack_size(STACK_BYTES)
        .spawn(app::main);
    match spawned {
        Ok(handle) => handle.join().unwrap_or(std::process::ExitCode::from(101)),
        // No thread to be had (a tight ulimit): run here, with the usual stack.
        Err(_) => app::main(),
    }
}
