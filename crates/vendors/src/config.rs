//! Vendor endpoints and credentials, from the environment (the names the vendors' own CLIs
//! use) and an optional `[vendors]` table in `runbook.toml`; the environment wins.

use super::error::VendorError;
use super::transport::TransportConfig;
use runbook_secret::{Secret, Source};
use std::time::Duration;

/// Default endpoints: the vendors' real APIs.
pub(crate) const POSTMARK_DEFAULT: &str = "https://api.postmarkapp.com";
/// Where an operator does what Postmark's API cannot (generate and delete server tokens).
pub(crate) const POSTMARK_DASHBOARD_DEFAULT: &str = "https://account.postmarkapp.com";
pub(crate) const INFISICAL_DEFAULT: &str = "https://app.infisical.com";
pub(crate) const HEROKU_DEFAULT: &str = "https://api.heroku.com";
pub(crate) const GITHUB_DEFAULT: &str = "https://api.github.com";

/// How we authenticate to Infisical.
#[derive(Debug, Clone)]
pub enum InfisicalAuth {
    /// An access token or service token used as is (`INFISICAL_TOKEN`).
    Token(Secret),
    /// Machine identity login (`INFISICAL_UNIVERSAL_AUTH_CLIENT_ID` / `_SECRET`).
    UniversalAuth {
        client_id: String,
        client_secret: Secret,
    },
}

/// Everything the vendor clients need; secrets are `Secret`s.
#[derive(Debug, Clone)]
pub struct VendorConfig {
    pub postmark_api_url: String,
    /// The dashboard the operator's instructions point at (a sandbox's in a rehearsal).
    pub postmark_dashboard_url: String,
    /// Infisical API base, already ending in `/api`.
    pub infisical_api_url: String,
    pub infisical_auth: Option<InfisicalAuth>,
    pub infisical_project_id: Option<String>,
    pub heroku_api_url: String,
    pub heroku_api_key: Option<Secret>,
    pub github_api_url: String,
    pub github_token: Option<Secret>,
    /// Max concurrent vendor calls in a fan-out.
    pub concurrency: usize,
    pub transport: TransportConfig,
}

impl Default for VendorConfig {
    fn default() -> Self {
        VendorConfig {
            postmark_api_url: POSTMARK_DEFAULT.into(),
            postmark_dashboard_url: POSTMARK_DASHBOARD_DEFAULT.into(),
            infisical_api_url: infisical_api_base(INFISICAL_DEFAULT),
            infisical_auth: None,
            infisical_project_id: None,
            heroku_api_url: HEROKU_DEFAULT.into(),
            heroku_api_key: None,
            github_api_url: GITHUB_DEFAULT.into(),
            github_token: None,
            concurrency: 8,
            transport: TransportConfig::default(),
        }
    }
}

/// Every environment variable that configures a vendor (endpoint or credential). A
/// rehearsal takes these from the sandbox only, never from the operator's shell.
pub const VENDOR_SETTINGS: &[&str] = &[
    "POSTMARK_API_URL",
    "POSTMARK_DASHBOARD_URL",
    "INFISICAL_DOMAIN",
    "INFISICAL_API_URL",
    "INFISICAL_TOKEN",
    "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID",
    "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
    "INFISICAL_PROJECT_ID",
    "HEROKU_HOST",
    "HEROKU_API_KEY",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
    "GH_TOKEN",
];

/// The `[vendors]` table of `runbook.toml`: the env var names, lower-cased.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VendorFileConfig {
    pub postmark_api_url: Option<String>,
    pub postmark_dashboard_url: Option<String>,
    pub infisical_domain: Option<String>,
    pub infisical_api_url: Option<String>,
    pub infisical_token: Option<String>,
    pub infisical_universal_auth_client_id: Option<String>,
    pub infisical_universal_auth_client_secret: Option<String>,
    pub infisical_project_id: Option<String>,
    pub heroku_host: Option<String>,
    pub heroku_api_key: Option<String>,
    pub github_api_url: Option<String>,
    pub github_token: Option<String>,
    pub gh_token: Option<String>,
    pub runbook_http_timeout_secs: Option<u64>,
    pub runbook_concurrency: Option<usize>,
    pub runbook_max_response_mb: Option<u64>,
    pub runbook_heroku_refill_per_minute: Option<f64>,
}

/// The position and the complaint of a TOML error, never the text around it: toml's own
/// rendering quotes the offending line, and in this file that line is usually a credential.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = hide_quoted(e.message());
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
                .filter(|k| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                });
            match key {
                Some(key) => format!("key {key}, line {line}, column {column}: {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// Replaces every double-quoted part of a message ("invalid type: string \"hk-...\"") so a
/// value given where another type was expected is not echoed; key names stay (backticks).
fn hide_quoted(message: &str) -> String {
    // A quote the parser expected ("expected `\"`") is not a value.
    const QUOTE: &str = "`\"`";
    if message.contains(QUOTE) {
        return message
            .split(QUOTE)
            .map(hide_quoted)
            .collect::<Vec<_>>()
            .join("a closing quote");
    }
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        if i % 2 == 0 {
            out.push_str("(value hidden)");
        } else {
            out.push_str(part);
        }
    }
    out
}

impl VendorFileConfig {
    /// Reads the `[vendors]` table from the text of a `runbook.toml` (absent table = empty).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // Read in one pass so a wrong type inside [vendors] still has a position.
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            vendors: Option<VendorFileConfig>,
        }
        let file: File = toml::from_str(text).map_err(|e| ConfigError::File {
            message: describe_toml_error(text, &e),
        })?;
        Ok(file.vendors.unwrap_or_default())
    }

    /// Reads `[vendors]` from a `runbook.toml`; `Ok(None)` when the file does not exist.
    pub fn load(path: &std::path::Path) -> Result<Option<Self>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text).map(Some).map_err(|e| match e {
                ConfigError::File { message } => ConfigError::File {
                    message: format!("{}: {message}", path.display()),
                },
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::File {
                message: format!("{}: {e}", path.display()),
            }),
        }
    }

    fn get(&self, env_name: &str) -> Option<String> {
        let v = match env_name {
            "POSTMARK_API_URL" => self.postmark_api_url.clone(),
            "POSTMARK_DASHBOARD_URL" => self.postmark_dashboard_url.clone(),
            "INFISICAL_DOMAIN" => self.infisical_domain.clone(),
            "INFISICAL_API_URL" => self.infisical_api_url.clone(),
            "INFISICAL_TOKEN" => self.infisical_token.clone(),
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID" => self.infisical_universal_auth_client_id.clone(),
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET" => {
                self.infisical_universal_auth_client_secret.clone()
            }
            "INFISICAL_PROJECT_ID" => self.infisical_project_id.clone(),
            "HEROKU_HOST" => self.heroku_host.clone(),
            "HEROKU_API_KEY" => self.heroku_api_key.clone(),
            "GITHUB_API_URL" => self.github_api_url.clone(),
            "GITHUB_TOKEN" => self.github_token.clone(),
            "GH_TOKEN" => self.gh_token.clone(),
            // A name in VENDOR_SETTINGS must have its key here (a test holds it).
            "RUNBOOK_HTTP_TIMEOUT_SECS" => self.runbook_http_timeout_secs.map(|n| n.to_string()),
            "RUNBOOK_CONCURRENCY" => self.runbook_concurrency.map(|n| n.to_string()),
            "RUNBOOK_MAX_RESPONSE_MB" => self.runbook_max_response_mb.map(|n| n.to_string()),
            "RUNBOOK_HEROKU_REFILL_PER_MINUTE" => {
                self.runbook_heroku_refill_per_minute.map(|n| n.to_string())
            }
            _ => None,
        };
        v.filter(|s| !s.trim().is_empty())
    }
}

/// A configuration value we cannot use.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    #[error("{name} = '{value}' is not valid: {expected}")]
    #[diagnostic(
        code(runbook::config::invalid),
        help("fix the variable, or unset it to use the default")
    )]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot read the [vendors] table of runbook.toml: {message}")]
    #[diagnostic(
        code(runbook::config::file),
        help("the [vendors] keys are the environment variable names in lower case, e.g. heroku_api_key")
    )]
    File { message: String },
}

impl VendorConfig {
    /// Reads the environment through `lookup` (tests pass a map).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_sources(lookup, None)
    }

    /// Environment first, then the `[vendors]` table, then the defaults.
    pub fn from_sources(
        lookup: impl Fn(&str) -> Option<String>,
        file: Option<&VendorFileConfig>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &'static str| -> Option<(String, Source)> {
            if let Some(v) = lookup(name).filter(|v| !v.trim().is_empty()) {
                return Some((v, Source::Env { name: name.into() }));
            }
            file.and_then(|f| f.get(name)).map(|v| {
                (
                    v,
                    Source::Vendor {
                        what: format!("runbook.toml [vendors] {}", name.to_lowercase()),
                    },
                )
            })
        };
        let secret = |name: &'static str| get(name).map(|(v, src)| Secret::new(v.trim(), src));
        let plain = |name: &'static str| get(name).map(|(v, _)| v.trim().to_string());

        let mut cfg = VendorConfig::default();
        if let Some(url) = plain("POSTMARK_API_URL") {
            cfg.postmark_api_url = trim_slash(&url);
        }
        if let Some(url) = plain("POSTMARK_DASHBOARD_URL") {
            cfg.postmark_dashboard_url = trim_slash(&url);
        }
        if let Some(domain) = plain("INFISICAL_DOMAIN").or_else(|| plain("INFISICAL_API_URL")) {
            cfg.infisical_api_url = infisical_api_base(&domain);
        }
        cfg.infisical_auth = match (
            secret("INFISICAL_TOKEN"),
            plain("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"),
            secret("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"),
        ) {
            (Some(token), _, _) => Some(InfisicalAuth::Token(token)),
            (None, Some(client_id), Some(client_secret)) => Some(InfisicalAuth::UniversalAuth {
                client_id,
                client_secret,
            }),
            _ => None,
        };
        cfg.infisical_project_id = plain("INFISICAL_PROJECT_ID");
        if let Some(host) = plain("HEROKU_HOST") {
            cfg.heroku_api_url = heroku_api_base(&host);
        }
        cfg.heroku_api_key = secret("HEROKU_API_KEY");
        if let Some(url) = plain("GITHUB_API_URL") {
            cfg.github_api_url = trim_slash(&url);
        }
        cfg.github_token = secret("GITHUB_TOKEN").or_else(|| secret("GH_TOKEN"));
        if let Some(v) = plain("RUNBOOK_HTTP_TIMEOUT_SECS") {
            let secs = v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=3600).contains(n))
                .ok_or(ConfigError::Invalid {
                    name: "RUNBOOK_HTTP_TIMEOUT_SECS",
                    value: v.clone(),
                    expected: "a whole number of seconds between 1 and 3600",
                })?;
            cfg.transport.timeout = Duration::from_secs(secs);
        }
        if let Some(v) = plain("RUNBOOK_MAX_RESPONSE_MB") {
            let mb = v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=4096).contains(n))
                .ok_or(ConfigError::Invalid {
                    name: "RUNBOOK_MAX_RESPONSE_MB",
                    value: v.clone(),
                    expected: "a whole number of MiB between 1 and 4096",
                })?;
            cfg.transport.max_body = (mb as usize) << 20;
        }
        if let Some(v) = plain("RUNBOOK_HEROKU_REFILL_PER_MINUTE") {
            let rate = v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && (0.0..=1_000_000.0).contains(n))
                .ok_or(ConfigError::Invalid {
                    name: "RUNBOOK_HEROKU_REFILL_PER_MINUTE",
                    value: v.clone(),
                    expected: "requests a minute between 0 (no pacing) and 1000000",
                })?;
            cfg.transport
                .pools
                .retain(|(vendor, _)| *vendor != "heroku");
            cfg.transport.pools.push(("heroku", rate));
        }
        if let Some(v) = plain("RUNBOOK_CONCURRENCY") {
            cfg.concurrency =
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError::Invalid {
                        name: "RUNBOOK_CONCURRENCY",
                        value: v.clone(),
                        expected: "a whole number, at least 1",
                    })?;
        }
        Ok(cfg)
    }

    /// The base URL calls to `vendor` go to.
    pub fn endpoint(&self, vendor: crate::Vendor) -> &str {
        match vendor {
            crate::Vendor::Postmark => &self.postmark_api_url,
            crate::Vendor::Infisical => &self.infisical_api_url,
            crate::Vendor::Heroku => &self.heroku_api_url,
            crate::Vendor::Github => &self.github_api_url,
        }
    }

    /// What `vendor` still needs before a run can use it: the variables to set, each with
    /// what it is for. Empty when it is configured.
    pub fn missing(&self, vendor: crate::Vendor) -> Vec<(&'static str, &'static str)> {
        match vendor {
            crate::Vendor::Postmark => Vec::new(),
            crate::Vendor::Infisical => {
                let mut m = Vec::new();
                if self.infisical_auth.is_none() {
                    m.push((
                        "INFISICAL_TOKEN",
                        "an access token, or INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and _CLIENT_SECRET for a machine identity",
                    ));
                }
                if self
                    .infisical_project_id
                    .as_deref()
                    .is_none_or(|p| p.trim().is_empty())
                {
                    m.push((
                        "INFISICAL_PROJECT_ID",
                        "the project holding the secrets (Infisical → Project Settings)",
                    ));
                }
                m
            }
            crate::Vendor::Heroku if self.heroku_api_key.is_none() => vec![(
                "HEROKU_API_KEY",
                "an API key (`heroku auth:token`) or an OAuth token with read-protected and write-protected",
            )],
            crate::Vendor::Github if self.github_token.is_none() => vec![(
                "GITHUB_TOKEN",
                "a token with the repositories' secrets permission (`gh auth token`); GH_TOKEN works too",
            )],
            _ => Vec::new(),
        }
    }

    /// The GitHub token, or an error naming `GITHUB_TOKEN`.
    pub fn github_key(&self) -> Result<&Secret, VendorError> {
        self.github_token.as_ref().ok_or_else(|| {
            VendorError::config(
                "github",
                "no token: GITHUB_TOKEN (or GH_TOKEN) is not set",
                "set GITHUB_TOKEN to a token with the repo's secrets permission (e.g. from `gh auth token`)",
            )
        })
    }

    /// The Infisical credentials, or an error naming the variables.
    pub fn infisical(&self) -> Result<&InfisicalAuth, VendorError> {
        self.infisical_auth.as_ref().ok_or_else(|| {
            VendorError::config(
                "infisical",
                "no credentials: INFISICAL_TOKEN is not set",
                "set INFISICAL_TOKEN, or INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
            )
        })
    }
}

/// Whether `url` points at this machine (loopback or `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| crate::transport::is_loopback(&u))
}

/// `INFISICAL_DOMAIN` → API base: `/api` is appended unless already there (as the CLI does).
pub(crate) fn infisical_api_base(domain: &str) -> String {
    let d = trim_slash(domain.trim());
    if d.ends_with("/api") {
        d
    } else {
        format!("{d}/api")
    }
}

/// `HEROKU_HOST` → API base: a full URL if it starts with `http`, else `https://api.<host>`.
pub(crate) fn heroku_api_base(host: &str) -> String {
    let h = host.trim();
    if h.starts_with("http") {
        trim_slash(h)
    } else {
        format!("https://api.{}", trim_slash(h))
    }
}

fn trim_slash(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_vendor_setting_is_a_key_of_the_vendors_table() {
        let toml: String = VENDOR_SETTINGS
            .iter()
            .map(|n| format!("{} = \"x\"\n", n.to_lowercase()))
            .collect();
        let file: VendorFileConfig = toml::from_str(&toml).unwrap();
        for name in VENDOR_SETTINGS {
            assert_eq!(file.get(name).as_deref(), Some("x"), "{name}");
        }
    }

    use super::*;

    #[test]
    fn a_malformed_runbook_toml_names_the_position_never_the_value() {
        let canary = "hk-canary-0123456789abcdef";
        for text in [
            format!("[vendors]\nheroku_api_key = \"{canary}\n"),
            format!("[vendors]\nheroku_api_key = {canary}\n"),
            format!("[vendors]\nrunbook_http_timeout_secs = \"{canary}\"\n"),
            format!("[vendors]\nheroku_api_key = \"{canary}\"\nheroku_api_key = \"{canary}\"\n"),
        ] {
            let Err(e) = VendorFileConfig::from_toml(&text) else {
                panic!("accepted {text}");
            };
            let shown = e.to_string();
            assert!(!shown.contains(canary), "{shown}");
            assert!(!shown.contains("hk-canary"), "{shown}");
            assert!(shown.contains("line "), "{shown}");
        }
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_real_endpoints() {
        let c = VendorConfig::from_env(env(&[])).unwrap();
        assert_eq!(c.postmark_api_url, "https://api.postmarkapp.com");
        assert_eq!(c.infisical_api_url, "https://app.infisical.com/api");
        assert_eq!(c.heroku_api_url, "https://api.heroku.com");
        assert_eq!(c.github_api_url, "https://api.github.com");
        assert_eq!(c.concurrency, 8);
        assert!(c
            .infisical()
            .unwrap_err()
            .to_string()
            .contains("INFISICAL_TOKEN"));
    }

    #[test]
    fn endpoint_rules_follow_the_vendor_clis() {
        let c = VendorConfig::from_env(env(&[
            ("INFISICAL_API_URL", "http://127.0.0.1:9/"),
            ("HEROKU_HOST", "example-heroku.com"),
            ("GH_TOKEN", "gh-token-value"),
        ]))
        .unwrap();
        assert_eq!(c.infisical_api_url, "http://127.0.0.1:9/api");
        assert_eq!(c.heroku_api_url, "https://api.example-heroku.com");
        assert!(c.github_token.is_some());
        let c = VendorConfig::from_env(env(&[
            ("INFISICAL_DOMAIN", "http://127.0.0.1:9/api"),
            ("INFISICAL_API_URL", "http://ignored"),
            ("HEROKU_HOST", "http://127.0.0.1:7"),
        ]))
        .unwrap();
        assert_eq!(c.infisical_api_url, "http://127.0.0.1:9/api");
        assert_eq!(c.heroku_api_url, "http://127.0.0.1:7");
    }

    #[test]
    fn infisical_universal_auth_and_tuning() {
        let c = VendorConfig::from_env(env(&[
            ("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", "cid"),
            ("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET", "csecret-value"),
            ("RUNBOOK_HTTP_TIMEOUT_SECS", "5"),
            ("RUNBOOK_CONCURRENCY", "3"),
        ]))
        .unwrap();
        assert!(matches!(
            c.infisical_auth,
            Some(InfisicalAuth::UniversalAuth { .. })
        ));
        assert_eq!(c.transport.timeout, Duration::from_secs(5));
        assert_eq!(c.concurrency, 3);
        let bad = VendorConfig::from_env(env(&[("RUNBOOK_CONCURRENCY", "zero")])).unwrap_err();
        assert!(bad.to_string().contains("RUNBOOK_CONCURRENCY"));
    }

    #[test]
    fn env_wins_over_the_file() {
        let file = VendorFileConfig::from_toml(
            "[vendors]\nheroku_host = \"http://127.0.0.1:1\"\npostmark_api_url = \"http://127.0.0.1:2\"\n",
        )
        .unwrap();
        let c =
            VendorConfig::from_sources(env(&[("HEROKU_HOST", "http://127.0.0.1:3")]), Some(&file))
                .unwrap();
        assert_eq!(c.heroku_api_url, "http://127.0.0.1:3");
        assert_eq!(c.postmark_api_url, "http://127.0.0.1:2");
        assert!(VendorFileConfig::from_toml("[vendors]\nnope = 1\n").is_err());
        assert!(VendorFileConfig::from_toml("[other]\nx = 1\n").is_ok());
    }
}
