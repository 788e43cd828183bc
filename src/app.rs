//! Parses arguments, runs the subcommand, renders errors and maps them to exit codes.

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::exit;
use clap::Parser;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = match &cli.command {
        Command::Exec(a) => a.json,
        Command::Resume(a) | Command::Rollback(a) => a.json,
        Command::Consumers(a) => a.json,
        // The REPL's stdout carries values; everything else goes to stderr.
        Command::Repl(_) => true,
        _ => false,
    };
    crate::ui::init(json);
    // A forced exit (a second signal while stuck) must not leave a spinner on the screen.
    runbook_core::interrupt::on_forced_exit(crate::ui::clear_spinner);
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if !e.already_reported() {
                crate::ui::err(&crate::ui::render(&e));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Command) -> crate::error::Result<u8> {
    match command {
        Command::Exec(args) => commands::exec::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Show(args) => commands::show::run(args),
        Command::List(args) => commands::list::run(args),
        Command::Sandbox(args) => commands::sandbox::run(args),
        Command::Runs(args) => commands::runs::runs(args),
        Command::Resume(args) => commands::runs::resume(args),
        Command::Rollback(args) => commands::runs::rollback(args),
        Command::Audit(cmd) => commands::audit::run(cmd),
        Command::Evidence(args) => commands::evidence::run(args),
        Command::Approve(args) => commands::approve::approve(args),
        Command::Deny(args) => commands::approve::deny(args),
        Command::Due(args) => commands::due::run(args),
        Command::Repl(args) => crate::repl::run(args),
        Command::Api(args) => commands::api::run(args),
        Command::Doc(args) => commands::doc::run(args),
        Command::New(args) => commands::new::run(args),
        Command::Consumers(args) => commands::consumers::run(args),
        Command::Completions(args) => commands::completions::completions(args),
        Command::Man(args) => commands::completions::man(args),
    }
}
