//! The sandbox's one error type.

/// Something the sandbox could not do.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    #[error("cannot start the {vendor} simulator: {source}")]
    #[diagnostic(
        code(runbook::sandbox::bind),
        help("the sandbox listens on 127.0.0.1 with OS-assigned ports; check loopback networking")
    )]
    Bind {
        vendor: &'static str,
        source: std::io::Error,
    },
    #[error("invalid sandbox scenario: {message}")]
    #[diagnostic(
        code(runbook::sandbox::scenario),
        help("every table and key is in docs/authoring.md, \"Scenario reference\"; `runbook sandbox --schema` prints the JSON Schema")
    )]
    Scenario { message: String },
    #[error("Postmark server '{server}' already has {limit} API tokens, the most it can hold")]
    #[diagnostic(
        code(runbook::sandbox::token_limit),
        help("delete an unused token first (Postmark → Server → API Tokens)")
    )]
    TokenLimit { server: String, limit: usize },
    #[error("no Postmark server named '{name}'")]
    #[diagnostic(code(runbook::sandbox::unknown_server))]
    UnknownServer { name: String },
    #[error("that token is not a token of Postmark server '{server}'")]
    #[diagnostic(code(runbook::sandbox::unknown_token))]
    UnknownToken { server: String },
}
