//! Everything the operator sees goes through here, and through the redactor: the lines the
//! binary writes, and the engine's events as `view` renders them.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Config {
    /// Progress goes to stderr when stdout carries a JSON report.
    progress_to_stderr: bool,
    spinners: bool,
    color: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();
static SPINNER: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sets where progress goes and how it looks (`CI` turns spinners off, `NO_COLOR` colour);
/// call once, early. Defaults apply otherwise.
pub fn init(json_on_stdout: bool, settings: &crate::settings::Settings) {
    let terminal = std::io::stderr().is_terminal();
    let _ = CONFIG.set(Config {
        progress_to_stderr: json_on_stdout,
        spinners: terminal && settings.var("CI").is_none(),
        color: terminal && settings.var("NO_COLOR").is_none(),
    });
}

fn config() -> Config {
    *CONFIG.get_or_init(|| Config {
        progress_to_stderr: false,
        spinners: false,
        color: false,
    })
}

pub fn color() -> bool {
    config().color
}

fn with_spinner_suspended(f: impl FnOnce()) {
    let guard = SPINNER.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_ref() {
        Some(pb) => pb.suspend(f),
        None => f(),
    }
}

pub use runbook_core::text::truncate;

fn write_to(stderr: bool, text: &str) {
    let text = runbook_secret::redact(text);
    // Only colour sequences reach the terminal; anything else is shown, not obeyed.
    let text = runbook_secret::neutralise(&text, color()).into_owned();
    with_spinner_suspended(|| {
        // A closed pipe (`runbook show x | head`) is not an error worth a panic.
        if stderr {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    });
}

/// A line of progress (stdout, or stderr under `--json`).
pub fn progress(text: &str) {
    write_to(config().progress_to_stderr, text);
}

/// A line of primary output: always stdout.
pub fn out(text: &str) {
    write_to(false, text);
}

/// A JSON document on stdout, redacted; invisible characters written as `\uXXXX` escapes
/// (the same data for a parser; serde_json already escapes control characters).
pub fn json(value: &impl serde::Serialize) {
    // Masked as JSON (strings and keys), not as text: a text pass made a number holding a
    // secret's digits invalid JSON (`ledger::encode`).
    let mut value = serde_json::to_value(value).unwrap_or_default();
    runbook_secret::redact_json(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let text = runbook_secret::json_visible(&text);
    with_spinner_suspended(|| {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    });
}

/// A line on stderr.
pub fn err(text: &str) {
    write_to(true, text);
}

/// What a script prints with `print` or `debug`.
pub fn script_print(text: &str) {
    let text = runbook_secret::neutralise(text, false);
    let lines: Vec<String> = text.lines().map(|l| format!("  | {l}")).collect();
    progress(&lines.join("\n"));
}

pub fn bold(text: &str) -> String {
    if color() {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn dim(text: &str) -> String {
    if color() {
        format!("\x1b[2m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// stderr, reported a few columns narrower than it is. indicatif pads a spinner's line to
/// the terminal's width; the terminal's own echo of Ctrl-C ("^C") then wrapped to a new
/// line, and clearing the spinner cleared that line, leaving the spinner on screen above.
#[derive(Debug)]
struct Narrowed(console::Term);

impl indicatif::TermLike for Narrowed {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(4).max(8)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Clears the spinner, if one is on screen: for exits that do not unwind (a forced exit
/// after SIGTERM) and must not leave it behind.
pub fn clear_spinner() {
    if let Some(pb) = SPINNER.lock().unwrap_or_else(|e| e.into_inner()).take() {
        pb.finish_and_clear();
    }
}

/// Before the process is made to exit (a second Ctrl-C, or SIGTERM/SIGHUP not obeyed in
/// time): no spinner left on the screen, and after a second Ctrl-C where the run stands.
pub fn forced_exit(signal: i32) {
    clear_spinner();
    if signal == libc::SIGINT {
        err("\nCtrl-C again: stopping now. `runbook runs` shows what the journal holds; `runbook resume` or `runbook rollback` goes on from it.");
    }
}

/// Shows a spinner on a terminal while a slow call runs (nothing otherwise), until
/// `spinner_stop`; a second start replaces the first.
pub fn spinner_start(message: &str) {
    if !config().spinners {
        return;
    }
    let pb = ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::term_like(Box::new(Narrowed(console::Term::stderr()))),
    );
    pb.set_style(
        ProgressStyle::with_template("  {spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(
        runbook_secret::neutralise(&runbook_secret::redact(message), false).into_owned(),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    if let Some(old) = SPINNER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(pb)
    {
        old.finish_and_clear();
    }
}

/// Clears the spinner started last, if any.
pub fn spinner_stop() {
    clear_spinner();
}

/// Replaces the running spinner's message (a long scan's count); nothing without one.
pub fn spinner_message(message: &str) {
    if let Some(pb) = SPINNER.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        pb.set_message(
            runbook_secret::neutralise(&runbook_secret::redact(message), false).into_owned(),
        );
    }
}

/// Renders a diagnostic (with snippet) as text, redacted.
pub fn render(diag: &dyn miette::Diagnostic) -> String {
    let theme = if color() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    // On a terminal, wrap to it; otherwise keep each message on one line, for grep and logs.
    let width = if color() { 100 } else { 10_000 };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(width);
    let mut s = String::new();
    if handler.render_report(&mut s, diag).is_err() {
        s = diag.to_string();
    }
    let s = runbook_secret::redact(&s);
    // An error may quote what it was given: a megabyte-long name must not fill the screen.
    const MAX_LINE: usize = 1_000;
    let ends_with_newline = s.ends_with('\n');
    let mut shown = s
        .lines()
        .map(|line| {
            let n = line.chars().count();
            if n <= MAX_LINE {
                line.to_string()
            } else {
                format!(
                    "{} ({} more characters not shown)",
                    truncate(line, MAX_LINE),
                    n - MAX_LINE
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if ends_with_newline {
        shown.push('\n');
    }
    shown
}
