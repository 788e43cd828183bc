//! What a host function does to the world, and whether a write may be repeated: declared
//! when it is registered, recorded with every planned write.

/// What a host function does to the world.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// No effect outside the script (formatting, fingerprints).
    None,
    /// Talks to the operator (prompts); no vendor effect.
    Operator,
    /// Reads from a vendor; runs for real under `--dry-run`.
    Read,
    /// Changes vendor state; recorded, not performed, under `--dry-run`.
    Write,
    /// Changes vendor state in a way that cannot be undone.
    Destructive,
}

impl Effect {
    pub fn mutates(self) -> bool {
        matches!(self, Effect::Write | Effect::Destructive)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::None => "none",
            Effect::Operator => "operator",
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Destructive => "destructive",
        }
    }
}

/// Whether a write may be sent again when its first try failed or its answer was lost.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Repeat {
    /// Repeating it leaves the same state (setting a value, restarting): retried.
    Safe,
    /// Each call is a new effect (an email, a new token): never retried automatically.
    Never,
    /// The script says, per call (`http::`: `idempotent: true` or an `Idempotency-Key`).
    PerCall,
}

impl Repeat {
    pub fn describe(self) -> &'static str {
        match self {
            Repeat::Safe => "safe to repeat",
            Repeat::Never => "never repeated automatically",
            Repeat::PerCall => "repeated only when the call says it is idempotent",
        }
    }
}
