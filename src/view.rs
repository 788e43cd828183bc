//! How the engine's facts look. The engine hands every ledger event and notice to a sink;
//! the terminal view draws today's output from them (spinners, headings, the `--yes`
//! echoes of answers), and `--json` streams them as JSON Lines on stdout, one object per
//! event with its `type`, `run_id` and `time`, ending with the run's `report`.

use crate::ui;
use runbook_core::events::{AnsweredBy, Decision, Event, Question, Stamped, VERSION};
use runbook_core::sink::{Notice, Sink, SinkRef};
use std::io::Write;
use std::sync::Arc;

/// The terminal view: what an operator reads.
pub struct TerminalView;

impl TerminalView {
    fn decision(d: &Decision) {
        let question = runbook_secret::one_line(&d.question);
        let line = match (d.by, d.kind) {
            (AnsweredBy::Yes, Question::Checklist) => format!("  [x] {question} (--yes)"),
            (AnsweredBy::Answers, Question::Checklist) => format!("  [x] {question}"),
            (AnsweredBy::Yes, _) => format!("  ? {question} {} (--yes)", d.answer),
            (AnsweredBy::Default, _) => format!("  ? {question} {} (default)", d.answer),
            // The operator saw their own answer; an answers file's is in the ledger.
            (AnsweredBy::Operator | AnsweredBy::Answers, _) => return,
        };
        ui::progress(&line);
    }
}

impl Sink for TerminalView {
    fn event(&self, e: &Stamped) {
        match &e.event {
            Event::WritePlanned(w) => ui::progress(&format!(
                "    [dry-run] would call {} on {}",
                w.function, w.target
            )),
            Event::Decision(d) => Self::decision(d),
            _ => {}
        }
    }

    fn notice(&self, _run_id: &str, n: &Notice) {
        match n {
            Notice::Progress { text } => ui::progress(text),
            Notice::Heading { text } => ui::progress(&ui::bold(text)),
            Notice::Warning { text } => ui::err(text),
            Notice::Problem(p) => match &p.diagnostic {
                Some(d) => ui::err(&ui::render(d.as_ref())),
                None => ui::err(&p.message),
            },
            Notice::ScriptOutput { text } => ui::script_print(text),
            Notice::StepReached {
                index,
                count,
                step,
                title,
            } => {
                ui::progress("");
                ui::progress(&ui::bold(&format!(
                    "Step {index}/{count} · {step} · {title}"
                )));
            }
            Notice::StepPassed { step, duration_ms } => {
                ui::progress(&format!("  ✓ {step} ({duration_ms} ms)"))
            }
            Notice::CallStarted { label } => ui::spinner_start(label),
            Notice::CallProgress { label } => ui::spinner_message(label),
            Notice::CallEnded => ui::spinner_stop(),
        }
    }
}

/// `--json`: every event and notice as one line of JSON on stdout (the terminal view goes
/// on, on stderr, for whoever watches).
pub struct JsonLines {
    terminal: TerminalView,
}

/// One line of the stream, redacted.
pub fn line(value: serde_json::Value) {
    let mut value = value;
    // As JSON only (strings and keys): a text pass made a number holding a secret's digits
    // invalid JSON (`ledger::encode`).
    runbook_secret::redact_json(&mut value);
    let text = runbook_secret::json_visible(&value.to_string()).into_owned();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A stream object that is not a ledger event: `{"v", "run_id", "time", "type", …}`.
pub fn stamped(run_id: &str, body: serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("v".into(), VERSION.into());
    out.insert("run_id".into(), run_id.into());
    out.insert("time".into(), runbook_core::run::now_rfc3339().into());
    if let serde_json::Value::Object(fields) = body {
        out.extend(fields);
    }
    serde_json::Value::Object(out)
}

impl Sink for JsonLines {
    fn event(&self, e: &Stamped) {
        self.terminal.event(e);
        line(serde_json::to_value(e).unwrap_or_default());
    }

    fn notice(&self, run_id: &str, n: &Notice) {
        self.terminal.notice(run_id, n);
        // A spinner's count is for eyes only.
        if matches!(n, Notice::CallProgress { .. }) {
            return;
        }
        line(stamped(run_id, serde_json::to_value(n).unwrap_or_default()));
    }
}

/// The sink for a command: the terminal view, or the JSON stream with it.
pub fn sink(json: bool) -> SinkRef {
    if json {
        Arc::new(JsonLines {
            terminal: TerminalView,
        })
    } else {
        Arc::new(TerminalView)
    }
}

/// One line of the `--json` stream, as its schema describes it.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum StreamLine {
    /// A ledger event: the run's record, as its journal stores it.
    Event(Stamped),
    /// Something shown that is not part of the record.
    Notice(NoticeLine),
    /// The last line: the run's closing report, read off its ledger.
    Report(ReportLine),
}

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub struct NoticeLine {
    pub v: u32,
    pub run_id: String,
    pub time: String,
    #[serde(flatten)]
    pub notice: Notice,
}

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub struct ReportLine {
    pub v: u32,
    pub time: String,
    /// Always `report`.
    #[serde(rename = "type")]
    pub kind: ReportType,
    #[serde(flatten)]
    pub report: runbook_core::exec::Report,
}

#[derive(schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ReportType {
    Report,
}

/// The JSON Schema of one line of the stream.
pub fn stream_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(StreamLine)).unwrap_or_default()
}
