//! The operator at a terminal: the engine's questions asked through rustyline (raw mode:
//! Ctrl-C arrives as a key, so the terminal is always restored).

use runbook_core::prompt::{PromptError, Terminal};
use rustyline::completion::Completer;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use std::borrow::Cow;

type R<T> = Result<T, PromptError>;

/// Shows every typed or pasted character as `*`.
struct Masked;

impl Highlighter for Masked {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Owned("*".repeat(line.chars().count()))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        true
    }
}
impl Completer for Masked {
    type Candidate = String;
}
impl Hinter for Masked {
    type Hint = String;
}
impl Validator for Masked {}
impl Helper for Masked {}

/// Terminal echo turned off at the tty (termios), restored on drop. Masking through
/// rustyline's highlighter alone fails open: terminals it does not drive (TERM=dumb,
/// emacs) fall back to a plain read, and the tty echoes what is typed.
struct NoEcho(libc::termios);

impl NoEcho {
    fn on_stdin() -> R<NoEcho> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own; failures are checked.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(libc::STDIN_FILENO) != 1
                || libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0
            {
                return Err(PromptError::NoEcho);
            }
            let saved = t;
            t.c_lflag &= !(libc::ECHO | libc::ECHONL);
            // TCSANOW, not TCSAFLUSH: a paste that arrives before the prompt is ready must
            // be read, not discarded (the operator would wait on a prompt that lost it).
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                return Err(PromptError::NoEcho);
            }
            Ok(NoEcho(saved))
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read from the same descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
        }
    }
}

fn read(prompt: &str, masked: bool) -> R<String> {
    use rustyline::error::ReadlineError;
    // A question is runbook text: shown, never obeyed, as every other line.
    let prompt = runbook_secret::redact(prompt);
    let prompt = runbook_secret::one_line(&prompt);
    let prompt = runbook_secret::neutralise(&prompt, false);
    let prompt: &str = &prompt;
    // What was typed before this question was shown (a token pasted before the banner,
    // a key pressed early) is not its answer: dropped, not read.
    // SAFETY: tcflush on descriptor 0 has no memory effects; on a non-terminal it fails
    // harmlessly.
    unsafe {
        libc::tcflush(0, libc::TCIFLUSH);
    }
    // Waiting for the operator does not count against the step's time limit.
    let _paused = runbook_core::interrupt::pause_budget();
    // Refuse rather than echo: without a tty whose echo we control, a secret is not read.
    let _no_echo = if masked {
        Some(NoEcho::on_stdin()?)
    } else {
        None
    };
    // Highlighting is what masks secret input, so it must run even without colour support.
    // With stdout redirected (`--json > events.jsonl`), the question and its editing go to
    // the terminal itself, never into what stdout carries.
    let behavior = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        rustyline::Behavior::Stdio
    } else {
        rustyline::Behavior::PreferTerm
    };
    let config = rustyline::Config::builder()
        .behavior(behavior)
        .auto_add_history(false)
        .color_mode(if masked {
            rustyline::ColorMode::Forced
        } else {
            rustyline::ColorMode::Enabled
        })
        .build();
    let line = if masked {
        let mut ed: Editor<Masked, DefaultHistory> =
            Editor::with_config(config).map_err(|_| PromptError::Interrupted)?;
        ed.set_helper(Some(Masked));
        ed.readline(prompt)
    } else {
        let mut ed: Editor<(), DefaultHistory> =
            Editor::with_config(config).map_err(|_| PromptError::Interrupted)?;
        ed.readline(prompt)
    };
    match line {
        Ok(l) => Ok(l),
        Err(ReadlineError::Interrupted) => Err(PromptError::Interrupted),
        // Ctrl-D: the operator's own way to stop here.
        Err(ReadlineError::Eof) => Err(PromptError::Aborted),
        // The terminal itself failed (it hung up): nobody chose to stop, the run was cut off.
        Err(_) => Err(PromptError::Interrupted),
    }
}

/// A person at this process's terminal.
pub struct Tty;

/// The terminal to ask on: when stdin and stderr are both terminals.
pub fn tty() -> Option<Box<dyn Terminal>> {
    use std::io::IsTerminal;
    (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
        .then(|| Box::new(Tty) as Box<dyn Terminal>)
}

impl Terminal for Tty {
    fn confirm(&self, question: &str) -> R<bool> {
        loop {
            // No is the default, capitalised as every tool that asks before a change does:
            // Enter alone never says yes.
            let answer = read(&format!("  ? {question} [y/N] "), false)?;
            match answer.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => return Ok(true),
                "" | "n" | "no" => return Ok(false),
                _ => crate::ui::err("    please answer y or n (Enter is no)"),
            }
        }
    }

    fn ask(&self, question: &str, default: Option<&str>) -> R<String> {
        let prompt = match default {
            Some(d) => format!("  ? {question} [{d}] "),
            None => format!("  ? {question} "),
        };
        let answer = read(&prompt, false)?;
        match (answer.trim(), default) {
            ("", Some(d)) => Ok(d.to_string()),
            (a, _) => Ok(a.to_string()),
        }
    }

    fn secret(&self, question: &str) -> R<String> {
        loop {
            let value = read(&format!("  ? {question} (input hidden) "), true)?;
            let value = value.trim().to_string();
            if !value.is_empty() {
                return Ok(value);
            }
            crate::ui::err("    nothing was entered; paste the value and press Enter");
        }
    }

    fn choose(&self, question: &str, options: &[String]) -> R<String> {
        loop {
            let answer = read(&format!("  ? {question} [{}] ", options.join("/")), false)?;
            if let Some(o) = chosen(&answer, options) {
                return Ok(o.to_string());
            }
            crate::ui::err(&format!("    please answer one of: {}", options.join(", ")));
        }
    }
}

/// The option an answer names: the whole word, or a single letter only one option starts
/// with (`r` at retry/rollback/stop is neither, and is asked again: it picked retry, and
/// sent the failed step's writes again to an operator who meant to roll back).
fn chosen<'a>(answer: &str, options: &'a [String]) -> Option<&'a str> {
    let a = answer.trim().to_ascii_lowercase();
    if let Some(o) = options.iter().find(|o| o.to_ascii_lowercase() == a) {
        return Some(o);
    }
    if a.chars().count() != 1 {
        return None;
    }
    let mut starting = options
        .iter()
        .filter(|o| o.to_ascii_lowercase().starts_with(&a));
    match (starting.next(), starting.next()) {
        (Some(o), None) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::chosen;

    /// A letter two options start with names neither (cold review: `r` picked retry at
    /// retry/rollback/stop); a whole word, or a letter only one starts with, names it.
    #[test]
    fn an_ambiguous_letter_chooses_nothing() {
        let options: Vec<String> = ["retry", "rollback", "stop"].map(String::from).to_vec();
        assert_eq!(chosen("r", &options), None);
        assert_eq!(chosen(" Rollback ", &options), Some("rollback"));
        assert_eq!(chosen("s", &options), Some("stop"));
        assert_eq!(chosen("ro", &options), None);
        assert_eq!(chosen("", &options), None);
    }
}
