//! The line editor's helper: whether an input is unfinished (more lines complete it), and
//! tab completion of commands, modules, host functions, step ids and variables.

use rhai::{Engine, ParseErrorType};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

pub const COMMANDS: &[(&str, &str)] = &[
    (":help", "this help"),
    (
        ":load",
        ":load RUNBOOK  load a runbook (its steps, params and functions)",
    ),
    (":reload", "reload the current runbook from disk"),
    (
        ":steps",
        "steps of the runbook, done/undone in this session",
    ),
    (
        ":run",
        ":run STEP  run one step with ctx, its confirmations, journal and audit",
    ),
    (
        ":undo",
        ":undo STEP  run the undo of a step done here (asked first in production)",
    ),
    (":ctx", "the session's ctx (secrets masked)"),
    (":params", "the runbook's params and their values"),
    (
        ":env",
        "where this session writes (the banner `exec` shows)",
    ),
    (
        ":confirm",
        ":confirm always|each  in production, stop or resume confirming each write",
    ),
    (
        ":api",
        ":api [MODULE]  host functions with their signatures and docs",
    ),
    (":sandbox", "the sandbox's URLs and state (with --sandbox)"),
    (":quit", "leave (Ctrl-D does too)"),
];

/// Syntax-only engine: decides whether input is complete.
fn syntax_engine() -> Engine {
    let mut e = Engine::new_raw();
    #[allow(deprecated)]
    e.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(ref w) if w.chars().all(|c| c.is_ascii_alphabetic()) => {
            rhai::Token::Identifier(w.clone())
        }
        other => other,
    });
    e
}

/// Whether `input` is an unfinished block or expression (more lines will complete it).
pub fn is_incomplete(engine: &Engine, input: &str) -> bool {
    if input.trim_start().starts_with(':') {
        return false;
    }
    match engine.compile(input) {
        Ok(_) => false,
        Err(e) => match e.err_type() {
            ParseErrorType::UnexpectedEOF => true,
            ParseErrorType::MissingToken(..) | ParseErrorType::MissingSymbol(..) => {
                // Missing at the very end of the input: it is still being typed.
                let lines = input.lines().count().max(1);
                e.position().line().is_none_or(|l| l >= lines)
            }
            // rhai ends a "…" string at the line's end (only a trailing `\` continues it):
            // more lines complete only a backtick string, or a line continued so. Before,
            // every unclosed quote waited for more, and swallowed `:quit` and every line
            // after it.
            ParseErrorType::BadInput(rhai::LexError::UnterminatedString) => {
                input.matches('`').count() % 2 == 1 || input.trim_end_matches('\n').ends_with('\\')
            }
            _ => false,
        },
    }
}

pub struct ReplHelper {
    syntax: Engine,
    /// Module name → function names.
    pub modules: Vec<(String, Vec<String>)>,
    pub steps: Vec<String>,
    pub variables: Vec<String>,
}

impl ReplHelper {
    pub fn new() -> Self {
        ReplHelper {
            syntax: syntax_engine(),
            modules: Vec::new(),
            steps: Vec::new(),
            variables: Vec::new(),
        }
    }

    pub fn syntax(&self) -> &Engine {
        &self.syntax
    }

    fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        if let Some(rest) = before.strip_prefix(':') {
            if let Some((cmd, arg)) = rest.split_once(' ') {
                if cmd == "run" || cmd == "undo" {
                    let start = pos - arg.len();
                    return (
                        start,
                        self.steps
                            .iter()
                            .filter(|s| s.starts_with(arg))
                            .cloned()
                            .collect(),
                    );
                }
                if cmd == "api" {
                    let start = pos - arg.len();
                    return (
                        start,
                        self.modules
                            .iter()
                            .map(|(m, _)| m.clone())
                            .filter(|m| m.starts_with(arg))
                            .collect(),
                    );
                }
                return (pos, Vec::new());
            }
            let names = COMMANDS
                .iter()
                .map(|(c, _)| c.to_string())
                .filter(|c| c.starts_with(before))
                .collect();
            return (0, names);
        }
        // The word being typed, `module::fn` included.
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let word = &before[start..];
        if let Some((module, prefix)) = word.split_once("::") {
            let found = self
                .modules
                .iter()
                .find(|(m, _)| m == module)
                .map(|(_, fns)| {
                    let mut v: Vec<String> = fns
                        .iter()
                        .filter(|f| f.starts_with(prefix))
                        .map(|f| format!("{module}::{f}"))
                        .collect();
                    v.sort();
                    v.dedup();
                    v
                })
                .unwrap_or_default();
            return (start, found);
        }
        let mut out: Vec<String> = self
            .modules
            .iter()
            .map(|(m, _)| format!("{m}::"))
            .chain(self.variables.iter().cloned())
            .filter(|n| n.starts_with(word) && !word.is_empty())
            .collect();
        out.sort();
        out.dedup();
        (start, out)
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, names) = self.candidates(line, pos);
        Ok((
            start,
            names
                .into_iter()
                .map(|n| Pair {
                    display: n.clone(),
                    replacement: n,
                })
                .collect(),
        ))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

/// Every line is submitted: the REPL collects an unfinished input itself, line by line at
/// a continuation prompt (the line editor's own multi-line mode shows no prompt).
impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_blocks_and_calls_are_incomplete() {
        let e = syntax_engine();
        assert!(is_incomplete(&e, "if x {"));
        assert!(is_incomplete(&e, "let m = #{ a: 1,"));
        assert!(is_incomplete(&e, "foo(1,\n2"));
        assert!(!is_incomplete(&e, "if x { 1 }"));
        assert!(is_incomplete(&e, "if x {\n  print(1);"));
        assert!(!is_incomplete(&e, "let = ;"));
        assert!(!is_incomplete(&e, "let x = (1 + ;"));
        assert!(!is_incomplete(&e, ":steps"));
    }

    /// An unclosed "…" string is an error at once (rhai ends one at the line's end): more
    /// lines never finish it, and before, `:quit` and every later line were swallowed. A
    /// backtick string, or a line continued with `\`, still waits for more.
    #[test]
    fn an_unclosed_double_quote_is_an_error_at_once() {
        let e = syntax_engine();
        assert!(!is_incomplete(&e, "let x = \"abc"));
        assert!(!is_incomplete(&e, "let x = \"abc\n:quit"));
        assert!(is_incomplete(&e, "let x = `abc"));
        assert!(is_incomplete(&e, "let x = \"abc\\"));
    }

    #[test]
    fn completes_module_functions_and_step_ids() {
        let mut h = ReplHelper::new();
        h.modules = vec![(
            "postmark".into(),
            vec!["server".into(), "send_email".into()],
        )];
        h.steps = vec!["precheck".into(), "propagate".into()];
        assert_eq!(
            h.candidates("postmark::se", 12).1,
            vec!["postmark::send_email", "postmark::server"]
        );
        assert_eq!(
            h.candidates(":run pr", 7),
            (5, vec!["precheck".to_string(), "propagate".to_string()])
        );
        assert_eq!(h.candidates(":st", 3).1, vec![":steps"]);
    }
}
