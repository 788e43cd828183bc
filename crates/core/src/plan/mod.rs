//! A runbook loaded into a plan: metadata, params, prerequisites and steps. Loading runs only
//! the script's top level, which registers these; no vendor is touched until a step runs.

pub mod ctx;
pub mod lint;
pub mod load;
pub mod program;
pub mod secret_flow;
pub mod sop;
pub mod source;

pub use ctx::Ctx;
pub use load::{bare, load, Loaded};
pub use source::{find, SourceFile};

use rhai::{FnPtr, Position};
use serde_json::Value;

/// The runbook's `runbook(#{...})` block.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Meta {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub secret: Option<String>,
    pub applies_to: Option<String>,
    pub mode: Option<String>,
    pub role: Option<String>,
    pub cadence_days: Option<i64>,
    pub average_duration: Option<String>,
    pub last_validated: Option<String>,
    pub validation_method: Option<String>,
    pub when_to_run: Vec<String>,
    pub references: Vec<String>,
    pub gotchas: Vec<String>,
    pub rollback: Vec<String>,
}

/// Keys `runbook(#{...})` accepts; anything else is a typo worth an error.
pub const META_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "secret",
    "applies_to",
    "mode",
    "role",
    "cadence_days",
    "average_duration",
    "last_validated",
    "validation_method",
    "when_to_run",
    "references",
    "gotchas",
    "rollback",
];

/// A declared parameter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Param {
    pub name: String,
    pub default: Option<Value>,
    pub help: Option<String>,
    pub required: bool,
    pub secret: bool,
    /// An environment variable that supplies the value when `--param` does not.
    pub env: Option<String>,
    #[serde(skip)]
    pub position: Position,
}

pub const PARAM_KEYS: &[&str] = &["default", "help", "required", "secret", "env"];

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub run: FnPtr,
    pub undo: Option<FnPtr>,
    pub verify: Option<FnPtr>,
    /// Why the step cannot be undone, when it cannot.
    pub irreversible: Option<String>,
    pub idempotent: bool,
    /// A question the operator must answer yes to before the step runs.
    pub confirm: Option<String>,
    /// What the step checks, for `show` and `doc`.
    pub checks: Vec<String>,
    /// Why the step needs no undo although it writes (a restart, a test email).
    pub no_undo: Option<String>,
    /// A paragraph for `doc`: what the step does and why.
    pub description: Option<String>,
    pub position: Position,
    /// The script that declared the step: the runbook's file name, or a module such as
    /// `<std/rotation>` when a stdlib function registered it.
    pub source: String,
}

/// Everything a runbook declared.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub meta: Option<Meta>,
    pub meta_position: Position,
    pub params: Vec<Param>,
    pub prerequisites: Vec<String>,
    pub steps: Vec<Step>,
    /// How `resume` gets a secret in `ctx` back (values are never journalled):
    /// `recover("new_token", |ctx| ...)`.
    pub recover: Vec<(String, FnPtr)>,
}

impl Plan {
    pub fn meta(&self) -> &Meta {
        static EMPTY: std::sync::OnceLock<Meta> = std::sync::OnceLock::new();
        self.meta
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Meta::default))
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}
