//! What a runbook declares: metadata, params, prerequisites and steps. Loading runs only the
//! script's top level, whose `runbook()`, `param()` and `step()` calls fill a builder; the
//! plan that comes out is immutable.

pub mod effect;
pub mod egress;
pub mod spec;

use rhai::{FnPtr, Position};
use serde_json::Value;

/// A runbook's word on which bulk-read values are credentials (config var names).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Masking {
    /// Plain settings, shown as text, whatever their names or shapes suggest.
    pub plain: Vec<String>,
    /// Credentials, kept as Secrets, whatever their names or shapes suggest.
    pub secret: Vec<String>,
}

impl Masking {
    /// Whether the value of config var `name` is a credential (joins the redactor).
    pub fn is_secret(&self, name: &str, value: &str) -> bool {
        if self.secret.iter().any(|n| n == name) {
            return true;
        }
        if self.plain.iter().any(|n| n == name) {
            // Still a Secret if it is one the run already holds: a plain copy would leak it.
            return runbook_secret::contains_secret(value);
        }
        runbook_secret::bulk_value_is_secret(name, value)
    }

    /// Whether the value comes back as text: the runbook says it is plain, or it is clearly
    /// a setting. Everything else stays a Secret, masked, even when not a known credential.
    pub fn is_plain(&self, name: &str, value: &str) -> bool {
        if self.secret.iter().any(|n| n == name) {
            return false;
        }
        if self.plain.iter().any(|n| n == name) {
            return !runbook_secret::contains_secret(value);
        }
        runbook_secret::bulk_value_is_plain(name, value)
    }
}

/// The runbook's `runbook(#{...})` block, read from its map (`spec::read`): the accepted
/// keys are these fields, and a key that is not one of them is an error that lists them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
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
    #[serde(default, deserialize_with = "spec::one_or_many")]
    pub when_to_run: Vec<String>,
    #[serde(default, deserialize_with = "spec::one_or_many")]
    pub references: Vec<String>,
    #[serde(default, deserialize_with = "spec::one_or_many")]
    pub gotchas: Vec<String>,
    #[serde(default, deserialize_with = "spec::one_or_many")]
    pub rollback: Vec<String>,
    /// What a failed step offers by default before the point of no return.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// The hosts `http::` may reach (see `egress`).
    #[serde(default, deserialize_with = "egress::entries")]
    pub egress: Vec<egress::Entry>,
    /// Vendor modules the runbook calls only in some runs (a param decides): preflight
    /// warns about their missing configuration instead of stopping.
    #[serde(default, deserialize_with = "spec::one_or_many")]
    pub optional_vendors: Vec<String>,
    /// Which values of bulk reads (Heroku config vars) are credentials, where the names and
    /// shapes alone would judge wrongly: `#{ plain: ["ACCOUNT_SID"], secret: ["OPAQUE"] }`.
    #[serde(default)]
    pub masking: Masking,
}

/// What a failure does when nobody chooses (`--yes`): roll back what completed, or stop and
/// leave it for `resume`. After an irreversible step has completed the run is forward-only
/// whatever the policy: rollback would be refused at that step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    #[default]
    Rollback,
    Stop,
}

/// Whether a param picks which secret is rotated, and how its values compare at the
/// vendor: `locates: true` (as written, trimmed, Unicode NFC), `"path"` (a folder path:
/// `/a//b/` is `/a/b`), `"case-insensitive"` (a name the vendor does not tell apart by
/// case, such as an IAM user). Two values the vendor treats as one give one lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Locates {
    #[default]
    No,
    Exact,
    Path,
    CaseInsensitive,
}

impl Locates {
    pub fn locates(self) -> bool {
        self != Locates::No
    }

    /// The value as the vendor tells values apart.
    pub fn canonical(self, value: &Value) -> Value {
        use unicode_normalization::UnicodeNormalization;
        let Value::String(text) = value else {
            return value.clone();
        };
        let text: String = text.trim().nfc().collect();
        Value::String(match self {
            Locates::Path => {
                let parts: Vec<&str> = text
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .collect();
                format!("/{}", parts.join("/"))
            }
            Locates::CaseInsensitive => text.to_lowercase(),
            Locates::No | Locates::Exact => text,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Locates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            Flag(bool),
            How(String),
        }
        match Given::deserialize(d)? {
            Given::Flag(false) => Ok(Locates::No),
            Given::Flag(true) => Ok(Locates::Exact),
            Given::How(how) => match how.as_str() {
                "exact" => Ok(Locates::Exact),
                "path" => Ok(Locates::Path),
                "case-insensitive" => Ok(Locates::CaseInsensitive),
                _ => Err(serde::de::Error::custom(
                    "locates is true, \"path\" or \"case-insensitive\"",
                )),
            },
        }
    }
}

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
    /// Part of the secret's identity, and so of the rotation's lock.
    pub locates: Locates,
    #[serde(skip)]
    pub position: Position,
}

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub run: FnPtr,
    pub undo: Option<FnPtr>,
    /// Run the undo even when none of the step's writes took effect (`#{ always: true }`).
    pub undo_always: bool,
    pub verify: Option<FnPtr>,
    /// Why the step cannot be undone, when it cannot.
    pub irreversible: Option<String>,
    pub idempotent: bool,
    /// A question the operator must answer yes to before the step runs.
    pub confirm: Option<String>,
    /// Another actor must approve before the step runs (four eyes).
    pub approval: Option<ApprovalSpec>,
    /// What the step checks, for `show` and `doc`.
    pub checks: Vec<String>,
    /// Why the step needs no undo although it writes (a restart, a test email).
    pub no_undo: Option<String>,
    /// A paragraph for `doc`: what the step does and why.
    pub description: Option<String>,
    /// The wall-clock limit of one attempt (or undo), prompts excluded.
    pub timeout: std::time::Duration,
    pub position: Position,
    /// The script that declared the step: the runbook's file name, or a module such as
    /// `<std/rotation>` when a stdlib function registered it.
    pub source: String,
}

/// `.approval(#{ by, timeout })`: who must approve, and how long the run waits.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalSpec {
    pub by: String,
    pub timeout: std::time::Duration,
}

/// A step's wall-clock limit unless it sets `.timeout(...)`: long enough for a slow vendor
/// with retries, short enough that a stuck step does not hold a rotation's lock all night.
pub const DEFAULT_STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// How `resume` gets a secret in `ctx` back (values are never journalled):
/// `recover("new_token", |ctx| ...)`.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub key: String,
    pub how: FnPtr,
}

/// A value rollback puts back, and how to tell that it still works at the vendor:
/// `restores("old_token", |ctx| postmark::token_status(ctx.old_token) == 200)`.
#[derive(Debug, Clone)]
pub struct Restore {
    pub key: String,
    pub works: FnPtr,
}

/// Everything a runbook declared.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub meta: Meta,
    pub meta_position: Position,
    pub params: Vec<Param>,
    pub prerequisites: Vec<String>,
    pub steps: Vec<Step>,
    pub recover: Vec<Recovery>,
    pub restores: Vec<Restore>,
}

impl Plan {
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub(crate) fn recovery(&self, key: &str) -> Option<&FnPtr> {
        self.recover.iter().find(|r| r.key == key).map(|r| &r.how)
    }
}

/// The plan while the top level declares it.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    pub meta: Option<(Meta, Position)>,
    pub params: Vec<Param>,
    pub prerequisites: Vec<String>,
    pub steps: Vec<Step>,
    pub recover: Vec<Recovery>,
    pub restores: Vec<Restore>,
}

/// What a declared plan lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    NoMetadata,
    NoSteps(Position),
    /// `egress: ["param:NAME"]` names a param the runbook does not declare.
    EgressParam(String, Position),
}

impl PlanBuilder {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The plan, if it declares itself and has at least one step.
    pub fn finish(self) -> Result<Plan, Incomplete> {
        let Some((meta, meta_position)) = self.meta else {
            return Err(Incomplete::NoMetadata);
        };
        if self.steps.is_empty() {
            return Err(Incomplete::NoSteps(meta_position));
        }
        for e in &meta.egress {
            if let egress::Entry::Param(p) = e {
                if !self.params.iter().any(|d| &d.name == p) {
                    return Err(Incomplete::EgressParam(p.clone(), meta_position));
                }
            }
        }
        Ok(Plan {
            meta,
            meta_position,
            params: self.params,
            prerequisites: self.prerequisites,
            steps: self.steps,
            recover: self.recover,
            restores: self.restores,
        })
    }
}
