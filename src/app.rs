//! Parses arguments, runs the subcommand, renders errors and maps them to exit codes.

use crate::cli::Command;
use crate::commands;
use crate::error::exit;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = match crate::cli::parse() {
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
        Command::Exec(a) => a.run.json,
        Command::Resume(a) | Command::Rollback(a) => a.run.json,
        Command::Consumers(a) => a.json,
        // The REPL's stdout carries values; everything else goes to stderr.
        Command::Repl(_) => true,
        _ => false,
    };
    let settings = crate::settings::Settings::load();
    crate::ui::init(json, &settings);
    for seam in runbook_core::hooks::ignored() {
        crate::ui::err(&format!(
            "warning: {seam} is set, but this build has no test hooks (only the tests' builds do): it is ignored, and nothing is simulated"
        ));
    }
    // A forced exit (a second signal while stuck) must not leave a spinner on the screen.
    runbook_core::interrupt::on_forced_exit(crate::ui::forced_exit);
    match run(cli.command, &settings) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if !e.already_reported() {
                crate::ui::err(&crate::ui::render(&e));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one command with the process's settings (read once, passed down).
fn run(command: Command, s: &crate::settings::Settings) -> crate::error::Result<u8> {
    match command {
        Command::Exec(args) => commands::exec::run(args, s),
        Command::Check(args) => commands::check::run(args, s),
        Command::Show(args) => commands::show::run(args, s),
        Command::List(args) => commands::list::run(args, s),
        Command::Sandbox(args) => commands::sandbox::run(args),
        Command::Runs(args) => commands::runs::runs(args, s),
        Command::Resume(args) => commands::runs::resume(args, s),
        Command::Rollback(args) => commands::runs::rollback(args, s),
        Command::Abandon(args) => commands::runs::abandon(args, s),
        Command::Audit(cmd) => commands::audit::run(cmd, s),
        Command::Evidence(args) => commands::evidence::run(args, s),
        Command::Approve(args) => commands::approve::approve(args, s),
        Command::Deny(args) => commands::approve::deny(args, s),
        Command::Due(args) => commands::due::run(args, s),
        Command::Repl(args) => crate::repl::run(args, s),
        Command::Api(args) => commands::api::run(args),
        Command::Doc(args) => commands::doc::run(args, s),
        Command::Answers(args) => commands::answers::run(args, s),
        Command::New(args) => commands::new::run(args, s),
        Command::Consumers(args) => commands::consumers::run(args, s),
        Command::Completions(args) => commands::completions::completions(args),
        Command::Man(args) => commands::completions::man(args),
    }
}
