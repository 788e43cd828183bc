//! Turning rhai errors into diagnostics that point at `file:line:col` with a snippet.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use rhai::{Dynamic, EvalAltResult, ParseError, Position};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Every script text seen while loading (the runbook and the modules it imports), by the
/// source name rhai reports, so an error in any of them can show its line.
#[derive(Default)]
pub struct Sources {
    texts: RefCell<HashMap<String, Arc<String>>>,
    main: RefCell<Option<String>>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&self, name: &str, text: &str) {
        self.texts
            .borrow_mut()
            .insert(name.to_string(), Arc::new(text.to_string()));
    }

    pub(crate) fn set_main(&self, name: &str, text: &str) {
        self.add(name, text);
        *self.main.borrow_mut() = Some(name.to_string());
    }

    pub fn main(&self) -> String {
        self.main.borrow().clone().unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<Arc<String>> {
        self.texts.borrow().get(name).cloned()
    }

    /// Every text loaded: the runbook and the modules it imports.
    pub fn all(&self) -> Vec<Arc<String>> {
        self.texts.borrow().values().cloned().collect()
    }

    /// Names and texts of every imported module (not the runbook itself).
    pub fn modules(&self) -> Vec<(String, Arc<String>)> {
        let main = self.main();
        let mut v: Vec<_> = self
            .texts
            .borrow()
            .iter()
            .filter(|(k, _)| **k != main)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A place in a script: 1-based line and column, as rhai counts them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A diagnostic as data: what `check --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// A problem in a script, with where it is and what to do about it.
#[derive(Debug)]
pub struct ScriptError {
    pub code: String,
    pub message: String,
    pub location: Option<Location>,
    pub label: String,
    pub help: Option<String>,
    snippet: Option<(NamedSource<String>, SourceSpan)>,
    /// Call sites, innermost first: a stdlib function's error also shows the runbook line.
    pub related: Vec<ScriptError>,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ScriptError {}

impl Diagnostic for ScriptError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.snippet
            .as_ref()
            .map(|(s, _)| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (_, span) = self.snippet.as_ref()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            *span,
        ))))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|e| e as &dyn Diagnostic)))
    }
}

impl ScriptError {
    /// A diagnostic at a position of a named source.
    pub fn at(
        code: &str,
        message: impl Into<String>,
        sources: &Sources,
        file: &str,
        pos: Position,
    ) -> Self {
        let mut err = ScriptError {
            code: code.to_string(),
            message: shown_message(&message.into()),
            location: None,
            label: "here".into(),
            help: None,
            snippet: None,
            related: Vec::new(),
        };
        if let (Some(line), Some(text)) = (pos.line(), sources.get(file)) {
            let column = pos.position().unwrap_or(1).max(1);
            err.location = Some(Location {
                file: file.to_string(),
                line,
                column,
            });
            let span = span_at(&text, line, column);
            err.snippet = Some((
                NamedSource::new(file, runbook_secret::redact(&text).into_owned()),
                span,
            ));
        } else if !file.is_empty() {
            err.location = None;
            err.message = format!("{file}: {}", err.message);
        }
        err
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// A parse error of the runbook (or of a module it imports).
    pub(crate) fn from_parse(err: &ParseError, sources: &Sources, file: &str) -> Self {
        let message = err.err_type().to_string();
        let help = parse_help(&message);
        let (code, label) = if message.starts_with("Undefined variable") {
            ("runbook::script::undefined_variable", "not declared")
        } else {
            ("runbook::script::parse", "syntax error here")
        };
        let mut e = ScriptError::at(code, message, sources, file, err.1).with_label(label);
        e.help = Some(help);
        e
    }

    /// A runtime error, unwrapping function-call and module layers so the innermost problem is
    /// labelled and every call site is shown after it.
    pub(crate) fn from_eval(err: &EvalAltResult, sources: &Sources) -> Self {
        Self::from_eval_in(err, sources, &sources.main())
    }

    /// Like `from_eval`, for code whose top level is `file` (the REPL's `<repl>`).
    pub fn from_eval_in(err: &EvalAltResult, sources: &Sources, file: &str) -> Self {
        let mut file = file.to_string();
        let mut call_sites: Vec<(String, String, Position)> = Vec::new();
        let mut e = err;
        loop {
            match e {
                EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                    call_sites.push((file.clone(), describe_fn(name), *pos));
                    // Module functions carry their module's name; the runbook's own functions
                    // (and closures) carry none, also when a stdlib function calls them.
                    file = if src.is_empty() {
                        sources.main()
                    } else {
                        src.clone()
                    };
                    e = inner;
                }
                EvalAltResult::ErrorInModule(name, inner, pos) => {
                    call_sites.push((file.clone(), format!("import of {name}"), *pos));
                    file = name.clone();
                    e = inner;
                }
                _ => break,
            }
        }
        let (code, message, help) = classify(e);
        let mut diag = ScriptError::at(&code, message, sources, &file, e.position());
        diag.help = help;
        for (site_file, what, pos) in call_sites.into_iter().rev() {
            if pos.is_none() {
                continue;
            }
            let site = ScriptError::at(
                "runbook::script::call_site",
                format!("in {what}"),
                sources,
                &site_file,
                pos,
            )
            .with_label("called from here");
            diag.related.push(site);
        }
        diag
    }

    /// The form `check --json` prints.
    pub fn summary(&self) -> Summary {
        Summary {
            code: self.code.clone(),
            message: self.message.clone(),
            file: self.location.as_ref().map(|l| l.file.clone()),
            line: self.location.as_ref().map(|l| l.line),
            column: self.location.as_ref().map(|l| l.column),
            help: self.help.clone(),
        }
    }
}

fn describe_fn(name: &str) -> String {
    if name.starts_with("anon$") {
        "a closure".to_string()
    } else {
        format!("function '{name}'")
    }
}

/// Byte span of the token that starts at `line:column` (1-based, column in characters).
fn span_at(text: &str, line: usize, column: usize) -> SourceSpan {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let line_text = text[line_start.min(text.len())..]
        .split('\n')
        .next()
        .unwrap_or("");
    let offset_in_line: usize = line_text
        .chars()
        .take(column.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let start = line_start + offset_in_line;
    let rest = &text[start.min(text.len())..];
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut len: usize = rest
        .char_indices()
        .take_while(|(_, c)| is_word(*c))
        .map(|(_, c)| c.len_utf8())
        .sum();
    if len == 0 {
        len = rest.chars().next().map(char::len_utf8).unwrap_or(0);
    }
    SourceSpan::new(start.into(), len)
}

fn parse_help(message: &str) -> String {
    if message.contains("Undefined variable") || message.contains("Variable not found") {
        "declare it with `let` first; inside a step, values shared between steps live in `ctx` (e.g. `ctx.server_id`)".into()
    } else if message.contains("to close") || message.contains("Expecting") {
        "check the brackets and separators just before this point".into()
    } else {
        "fix the syntax at this point; `runbook check` lists every problem".into()
    }
}

/// Message prefixes of the import resolver's errors, which get codes of their own.
pub const IMPORT_CYCLE: &str = "an import cycle: ";
pub const IMPORT_DEPTH: &str = "imports nest too deep: ";

/// The message a diagnostic would show for `e` (its innermost error), for a warning that
/// quotes an error the run goes on past.
pub(crate) fn message_of(e: &EvalAltResult) -> String {
    classify(e.unwrap_inner()).1
}

/// Stable code, message and help for the innermost error.
fn classify(e: &EvalAltResult) -> (String, String, Option<String>) {
    use EvalAltResult as E;
    // rhai appends " (line L, position P)"; the diagnostic shows the place itself.
    let plain = || {
        let s = e.to_string();
        match s.rfind(" (line ") {
            Some(i) if s.ends_with(')') => s[..i].to_string(),
            _ => s,
        }
    };
    let (code, message, help): (&str, String, Option<String>) = match e {
        E::ErrorRuntime(what, _)
            if what
                .read_lock::<rhai::ImmutableString>()
                .is_some_and(|w| w.starts_with(IMPORT_CYCLE)) =>
        {
            (
                "runbook::script::import_cycle",
                what.to_string(),
                Some("a module cannot import the runbook or a module that imports it: move what both need into a third module".into()),
            )
        }
        E::ErrorRuntime(what, _)
            if what
                .read_lock::<rhai::ImmutableString>()
                .is_some_and(|w| w.starts_with(IMPORT_DEPTH)) =>
        {
            (
                "runbook::script::import_depth",
                what.to_string(),
                Some("flatten the imports: a module may import others, but not through more than 16 levels".into()),
            )
        }
        E::ErrorRuntime(value, _) => return runtime_value(value),
        E::ErrorFunctionNotFound(sig, _) => (
            "runbook::script::unknown_function",
            format!("no function matches {sig}"),
            Some("check the name and the argument types; `runbook api` lists every host function".into()),
        ),
        E::ErrorVariableNotFound(name, _) => (
            "runbook::script::undefined_variable",
            format!("undefined variable '{name}'"),
            Some("declare it with `let`; values shared between steps live in `ctx`".into()),
        ),
        E::ErrorTooManyOperations(_) => (
            "runbook::script::operation_limit",
            "the script ran too many operations (is there an endless loop?)".into(),
            Some("look for a loop that never ends; long waits belong in host functions like checks::wait_until".into()),
        ),
        E::ErrorStackOverflow(_) => (
            "runbook::script::call_depth",
            "functions call each other too deeply (endless recursion?)".into(),
            Some("look for a function that calls itself without a stopping condition".into()),
        ),
        E::ErrorDataTooLarge(what, _) => (
            "runbook::script::too_large",
            format!("{what} is larger than the engine allows"),
            Some("runbooks handle small values; build large data in a host function".into()),
        ),
        E::ErrorTerminated(token, _) if token.to_string() == ABORTED_STR => (
            "runbook::aborted",
            "the operator aborted the run".into(),
            None,
        ),
        E::ErrorTerminated(token, _)
            if token.to_string().starts_with(crate::interrupt::TIMED_OUT) =>
        {
            let text = token.to_string();
            let mut lines = text.lines().skip(1);
            let message = lines.next().unwrap_or("ran past its time limit").to_string();
            let help = lines.next().map(str::to_string);
            ("runbook::timeout", message, help)
        }
        E::ErrorTerminated(token, _) if token.to_string().starts_with(crate::interrupt::FENCED) => (
            "runbook::state::unrecorded",
            token.to_string()[crate::interrupt::FENCED.len()..].to_string(),
            Some("see `runbook runs`; once the state store answers, `runbook resume RUN_ID` goes on from the last recorded step".into()),
        ),
        E::ErrorTerminated(..) => (
            "runbook::interrupted",
            format!("interrupted ({})", crate::interrupt::cause()),
            None,
        ),
        E::ErrorArithmetic(..) => (
            "runbook::script::arithmetic",
            runbook_secret::without_values(&plain()),
            Some("check the value before converting or computing with it (the value is not shown: it may be a secret)".into()),
        ),
        E::ErrorMismatchDataType(..) | E::ErrorMismatchOutputType(..) => (
            "runbook::script::type_mismatch",
            plain(),
            Some("check the types of the values used here".into()),
        ),
        E::ErrorPropertyNotFound(..) | E::ErrorIndexNotFound(..) => (
            "runbook::script::missing_property",
            plain(),
            Some("check the property name; `print(value)` shows what a value holds".into()),
        ),
        E::ErrorModuleNotFound(..) => ("runbook::script::import", plain(), None),
        E::ErrorParsing(..) => ("runbook::script::parse", plain(), None),
        E::Exit(..) => (
            "runbook::script::exit",
            "the script called exit()".into(),
            Some("use fail(message) to stop a step with an explanation".into()),
        ),
        _ => ("runbook::script::runtime", plain(), None),
    };
    (code.to_string(), message, help)
}

const ABORTED_STR: &str = crate::interrupt::ABORTED;

/// Errors thrown by `fail`, `ensure` and host functions carry a map:
/// `#{message, help?, code?, vendor?, status?}` or just a string.
fn runtime_value(value: &Dynamic) -> (String, String, Option<String>) {
    if let Some(map) = value.read_lock::<rhai::Map>() {
        let get = |k: &str| map.get(k).map(|v| v.to_string());
        let message = get("message").unwrap_or_else(|| value.to_string());
        let help = get("help");
        let code = match get("code_kind").as_deref() {
            Some(full) if full.contains("::") => return (full.to_string(), message, help),
            Some("vendor") => "runbook::vendor::error",
            Some("ensure") => "runbook::step::ensure_failed",
            Some("prompt") => "runbook::prompt::no_answer",
            Some("secret") => "runbook::secret::misuse",
            Some("egress") => "runbook::egress::undeclared",
            Some("usage") => "runbook::host::bad_argument",
            _ => "runbook::step::failed",
        };
        return (code.to_string(), message, help);
    }
    ("runbook::step::failed".into(), value.to_string(), None)
}

/// A message as shown: redacted, control characters made visible, and cut at a length no
/// honest message reaches (an error can quote a megabyte-long identifier).
fn shown_message(message: &str) -> String {
    const MAX_CHARS: usize = 1_000;
    let text = runbook_secret::redact(message);
    let text = runbook_secret::neutralise(&text, false);
    let total = text.chars().count();
    if total <= MAX_CHARS {
        return text.into_owned();
    }
    format!(
        "{} ({} more characters not shown)",
        crate::text::truncate(&text, MAX_CHARS),
        total - MAX_CHARS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_points_at_the_token() {
        let text = "let a = 1;\nlet bb = foo(2);\n";
        let span = span_at(text, 2, 10);
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "foo");
    }

    #[test]
    fn span_handles_multibyte_columns() {
        let text = "let é = x;\n";
        let span = span_at(text, 1, 9);
        assert_eq!(&text[span.offset()..span.offset() + span.len()], "x");
    }
}
