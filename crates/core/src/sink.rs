//! Where the engine's facts go. The engine never writes to a terminal: it hands every ledger
//! event (after it is stored) and every notice (what an operator should see that is not part
//! of the record) to a `Sink`, and the binary decides how they look: today's terminal view,
//! or JSON Lines with `--json`.

use crate::events::Stamped;
use schemars::JsonSchema;
use serde::Serialize;
use std::sync::Arc;

/// Something to show that is not part of the run's record.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// A line of progress.
    Progress {
        text: String,
    },
    /// A section heading ("Rolling back", "Prerequisites").
    Heading {
        text: String,
    },
    /// A line that needs the operator's attention: a warning, why a run stopped, what to
    /// do next.
    Warning {
        text: String,
    },
    /// An error with its code, message and help (the terminal shows its snippet).
    Problem(Problem),
    /// What a script printed (`print`, `debug`).
    ScriptOutput {
        text: String,
    },
    /// The runner reached a step: it may still ask, wait for approval, or not run it.
    StepReached {
        /// 1-based.
        index: usize,
        count: usize,
        step: String,
        title: String,
    },
    /// A step's attempt completed, in the runner.
    StepPassed {
        step: String,
        duration_ms: u64,
    },
    /// A vendor call began (a terminal shows a spinner until `call_ended`).
    CallStarted {
        label: String,
    },
    /// A long call's progress ("scanning: 40/120").
    CallProgress {
        label: String,
    },
    CallEnded,
}

/// An error as the stream carries it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Problem {
    pub code: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The diagnostic itself, for a terminal to render with its snippet.
    #[serde(skip)]
    #[schemars(skip)]
    pub diagnostic: Option<Arc<dyn miette::Diagnostic + Send + Sync>>,
}

impl Problem {
    pub fn of<D: miette::Diagnostic + Send + Sync + 'static>(d: D) -> Problem {
        Problem {
            code: d.code().map(|c| c.to_string()),
            message: runbook_secret::redact(&d.to_string()).into_owned(),
            help: d
                .help()
                .map(|h| runbook_secret::redact(&h.to_string()).into_owned()),
            diagnostic: Some(Arc::new(d)),
        }
    }
}

/// Takes the engine's facts.
pub trait Sink: Send + Sync {
    /// A ledger event, after it was stored (or failed to be: the run says so apart).
    fn event(&self, event: &Stamped);
    /// A notice for the run `run_id` (empty outside a run).
    fn notice(&self, run_id: &str, notice: &Notice);
}

/// A shared sink.
pub type SinkRef = Arc<dyn Sink>;

/// Drops everything: for tests, and commands whose engine work shows nothing.
pub struct Quiet;

impl Sink for Quiet {
    fn event(&self, _: &Stamped) {}
    fn notice(&self, _: &str, _: &Notice) {}
}

/// A sink bound to one run: what the engine's parts hold to say things.
#[derive(Clone)]
pub struct Say {
    sink: SinkRef,
    run_id: String,
}

impl Say {
    pub fn new(sink: SinkRef, run_id: &str) -> Say {
        Say {
            sink,
            run_id: run_id.to_string(),
        }
    }

    /// Outside a run.
    pub fn outside(sink: SinkRef) -> Say {
        Say::new(sink, "")
    }

    pub fn sink(&self) -> &SinkRef {
        &self.sink
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn notice(&self, notice: Notice) {
        self.sink.notice(&self.run_id, &notice);
    }

    pub fn progress(&self, text: impl Into<String>) {
        self.notice(Notice::Progress { text: text.into() });
    }

    pub fn heading(&self, text: impl Into<String>) {
        self.notice(Notice::Heading { text: text.into() });
    }

    pub fn warning(&self, text: impl Into<String>) {
        self.notice(Notice::Warning { text: text.into() });
    }

    pub fn problem<D: miette::Diagnostic + Send + Sync + 'static>(&self, d: D) {
        self.notice(Notice::Problem(Problem::of(d)));
    }

    /// Shows a call in progress until the guard drops.
    pub fn call(&self, label: &str) -> Call {
        self.notice(Notice::CallStarted {
            label: label.to_string(),
        });
        Call { say: self.clone() }
    }
}

/// A vendor call in progress; dropping it ends it.
pub struct Call {
    say: Say,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.say.notice(Notice::CallEnded);
    }
}
