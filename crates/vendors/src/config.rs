//! Vendor endpoints and credentials, from the environment (the names the vendors' own CLIs
//! use) and an optional `[vendors]` table in `runbook.toml`; the environment wins.

use super::error::VendorError;
use super::transport::TransportConfig;
use crate::Vendor;
use runbook_secret::{Secret, Source};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

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

/// Postmark: its API, and the dashboard the operator's instructions point at (a sandbox's
/// in a rehearsal).
#[derive(Debug, Clone)]
pub struct PostmarkConfig {
    pub api_url: String,
    pub dashboard_url: String,
}

#[derive(Debug, Clone)]
pub struct InfisicalConfig {
    /// The API base, already ending in `/api`.
    pub api_url: String,
    pub auth: Option<InfisicalAuth>,
    pub project_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HerokuConfig {
    pub api_url: String,
    pub api_key: Option<Secret>,
    /// How long a preboot app's old web dynos keep the traffic after a change: the app's
    /// boot timeout plus 2 minutes (`RUNBOOK_HEROKU_PREBOOT_WINDOW`, default 180 s).
    pub preboot_window: Duration,
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub api_url: String,
    pub token: Option<Secret>,
}

/// Everything the vendor clients need, a section per vendor; secrets are `Secret`s.
#[derive(Debug, Clone)]
pub struct VendorConfig {
    pub postmark: PostmarkConfig,
    pub infisical: InfisicalConfig,
    pub heroku: HerokuConfig,
    pub github: GithubConfig,
    /// Max concurrent vendor calls in a fan-out.
    pub concurrency: usize,
    pub transport: TransportConfig,
}

/// A vendor's default endpoint, from its spec.
fn default_url(v: Vendor) -> String {
    v.spec().api.default.to_string()
}

impl Default for VendorConfig {
    fn default() -> Self {
        let dashboard = Vendor::Postmark
            .spec()
            .dashboard
            .as_ref()
            .map_or(String::new(), |d| d.default.to_string());
        VendorConfig {
            postmark: PostmarkConfig {
                api_url: default_url(Vendor::Postmark),
                dashboard_url: dashboard,
            },
            infisical: InfisicalConfig {
                api_url: default_url(Vendor::Infisical),
                auth: None,
                project_id: None,
            },
            heroku: HerokuConfig {
                api_url: default_url(Vendor::Heroku),
                api_key: None,
                // Heroku's default boot timeout (60 s) plus 2 minutes.
                preboot_window: Duration::from_secs(180),
            },
            github: GithubConfig {
                api_url: default_url(Vendor::Github),
                token: None,
            },
            concurrency: 8,
            transport: TransportConfig::default(),
        }
    }
}

/// The variables that tune every vendor call (timeouts, concurrency, sizes, pacing).
pub const TUNING: &[&str] = &[
    TIMEOUT_SECS.name,
    CONCURRENCY.name,
    MAX_RESPONSE_MB.name,
    HEROKU_REFILL_PER_MINUTE.name,
    HEROKU_PREBOOT_WINDOW.name,
];

/// A numeric tuning variable: its name, the values it takes, and what it says otherwise.
struct Tuning<T> {
    name: &'static str,
    range: RangeInclusive<T>,
    expected: &'static str,
}

const TIMEOUT_SECS: Tuning<u64> = Tuning {
    name: "RUNBOOK_HTTP_TIMEOUT_SECS",
    range: 1..=3600,
    expected: "a whole number of seconds between 1 and 3600",
};

/// As many requests at once as a write fan-out allows (it clamps to 1024): more would only
/// meet the vendors' rate limits sooner, and tokio's semaphore panics past its own bound.
const CONCURRENCY: Tuning<usize> = Tuning {
    name: "RUNBOOK_CONCURRENCY",
    range: 1..=1024,
    expected: "a whole number between 1 and 1024",
};

const MAX_RESPONSE_MB: Tuning<u64> = Tuning {
    name: "RUNBOOK_MAX_RESPONSE_MB",
    range: 1..=4096,
    expected: "a whole number of MiB between 1 and 4096",
};

/// The range leaves out NaN and the infinities too.
const HEROKU_REFILL_PER_MINUTE: Tuning<f64> = Tuning {
    name: "RUNBOOK_HEROKU_REFILL_PER_MINUTE",
    range: 0.0..=1_000_000.0,
    expected: "requests a minute between 0 (no pacing) and 1000000",
};

/// Heroku's shortest window: its default (and shortest) boot timeout, 60 s, plus 2 minutes.
const SHORTEST_PREBOOT_WINDOW: Duration = Duration::from_secs(180);

/// Heroku's longest boot timeout is 180 s, so its longest window 300 s. Below 180 s only
/// against a Heroku on this machine (a sandbox: [`VendorConfig::checked`]).
const HEROKU_PREBOOT_WINDOW: Tuning<u64> = Tuning {
    name: "RUNBOOK_HEROKU_PREBOOT_WINDOW",
    range: 0..=600,
    expected: "a whole number of seconds between 0 and 600 (the apps' boot timeout plus 120; under 180 only for a Heroku on this machine, a sandbox)",
};

impl<T: FromStr + PartialOrd> Tuning<T> {
    /// Its value as `plain` reads it, when set: a number in its range, or the error saying
    /// what it takes.
    fn read(&self, plain: &dyn Fn(&str) -> Option<String>) -> Result<Option<T>, ConfigError> {
        let Some(v) = plain(self.name) else {
            return Ok(None);
        };
        match v.parse::<T>().ok().filter(|n| self.range.contains(n)) {
            Some(n) => Ok(Some(n)),
            None => Err(ConfigError::Invalid {
                name: self.name,
                value: v,
                expected: self.expected,
            }),
        }
    }
}

/// Whether `name` configures a vendor (an endpoint or a credential, from the specs). A
/// rehearsal takes these from the sandbox only, never from the operator's shell.
pub fn is_vendor_setting(name: &str) -> bool {
    crate::spec::settings().any(|s| s == name)
}

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
    pub runbook_heroku_preboot_window: Option<u64>,
}

/// The position and the complaint of a TOML error, never the text around it: toml's own
/// rendering quotes the offending line, and in this file that line is usually a credential.
pub fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
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
/// value given where another type was expected is not echoed, and a number's or boolean's
/// backticked one; key names stay (backticks).
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
    // serde quotes a value of another type in backticks ("invalid type: integer `1234`"):
    // a key given as a number is a value all the same (hostile review). Key names, also in
    // backticks, follow other words ("unknown field `x`").
    let mut message = message.to_string();
    for kind in [
        "integer `",
        "floating point `",
        "boolean `",
        "character `",
        "sequence `",
    ] {
        let mut from = 0;
        while let Some(at) = message[from..].find(kind) {
            let start = from + at + kind.len();
            let Some(len) = message[start..].find('`') else {
                break;
            };
            message.replace_range(start..start + len, "(value hidden)");
            from = start + "(value hidden)`".len();
        }
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
            // Every vendor setting and tuning variable has its key here (a test holds it).
            "RUNBOOK_HTTP_TIMEOUT_SECS" => self.runbook_http_timeout_secs.map(|n| n.to_string()),
            "RUNBOOK_CONCURRENCY" => self.runbook_concurrency.map(|n| n.to_string()),
            "RUNBOOK_MAX_RESPONSE_MB" => self.runbook_max_response_mb.map(|n| n.to_string()),
            "RUNBOOK_HEROKU_REFILL_PER_MINUTE" => {
                self.runbook_heroku_refill_per_minute.map(|n| n.to_string())
            }
            "RUNBOOK_HEROKU_PREBOOT_WINDOW" => {
                self.runbook_heroku_preboot_window.map(|n| n.to_string())
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
        let from_env = |name: &str| -> Option<(String, Source)> {
            let v = lookup(name).filter(|v| !v.trim().is_empty())?;
            Some((v, Source::Env { name: name.into() }))
        };
        let from_file = |name: &str| -> Option<(String, Source)> {
            file.and_then(|f| f.get(name)).map(|v| {
                (
                    v,
                    Source::Vendor {
                        what: format!("runbook.toml [vendors] {}", name.to_lowercase()),
                    },
                )
            })
        };
        // A setting several variables name is read whole from the shell when the shell sets
        // any of them: a file naming another of them never wins over the shell, nor mixes in
        // (a file's INFISICAL_DOMAIN took the shell's INFISICAL_API_URL's token to its host).
        let of_group = |names: &[&str], name: &str| {
            if names.iter().any(|n| from_env(n).is_some()) {
                from_env(name)
            } else {
                from_file(name)
            }
        };
        let get = |name: &str| of_group(&[name], name);
        let secret_of = |names: &[&str], name: &str| {
            of_group(names, name).map(|(v, src)| Secret::new(v.trim(), src))
        };
        let plain_of =
            |names: &[&str], name: &str| of_group(names, name).map(|(v, _)| v.trim().to_string());
        let secret = |name: &str| get(name).map(|(v, src)| Secret::new(v.trim(), src));
        let plain = |name: &str| get(name).map(|(v, _)| v.trim().to_string());

        let mut cfg = VendorConfig::default();
        // Each endpoint: the first of its variables that is set, made a base by its spec.
        let endpoint = |v: Vendor, current: &mut String| {
            let api = &v.spec().api;
            if let Some(url) = api.vars.iter().find_map(|var| plain_of(api.vars, var)) {
                *current = (api.normalise)(&url);
            }
        };
        endpoint(Vendor::Postmark, &mut cfg.postmark.api_url);
        endpoint(Vendor::Infisical, &mut cfg.infisical.api_url);
        endpoint(Vendor::Heroku, &mut cfg.heroku.api_url);
        endpoint(Vendor::Github, &mut cfg.github.api_url);
        if let Some(url) = plain("POSTMARK_DASHBOARD_URL") {
            cfg.postmark.dashboard_url = url.trim_end_matches('/').to_string();
        }
        const INFISICAL_AUTH: &[&str] = &[
            "INFISICAL_TOKEN",
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID",
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
        ];
        cfg.infisical.auth = match (
            secret_of(INFISICAL_AUTH, "INFISICAL_TOKEN"),
            plain_of(INFISICAL_AUTH, "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"),
            secret_of(INFISICAL_AUTH, "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"),
        ) {
            (Some(token), _, _) => Some(InfisicalAuth::Token(token)),
            (None, Some(client_id), Some(client_secret)) => Some(InfisicalAuth::UniversalAuth {
                client_id,
                client_secret,
            }),
            _ => None,
        };
        cfg.infisical.project_id = plain("INFISICAL_PROJECT_ID");
        cfg.heroku.api_key = secret("HEROKU_API_KEY");
        const GITHUB_TOKEN: &[&str] = &["GITHUB_TOKEN", "GH_TOKEN"];
        cfg.github.token =
            secret_of(GITHUB_TOKEN, "GITHUB_TOKEN").or_else(|| secret_of(GITHUB_TOKEN, "GH_TOKEN"));
        if let Some(secs) = TIMEOUT_SECS.read(&plain)? {
            cfg.transport.timeout = Duration::from_secs(secs);
        }
        if let Some(mb) = MAX_RESPONSE_MB.read(&plain)? {
            cfg.transport.max_body = (mb as usize) << 20;
        }
        if let Some(rate) = HEROKU_REFILL_PER_MINUTE.read(&plain)? {
            cfg.transport
                .pools
                .retain(|(vendor, _)| *vendor != "heroku");
            cfg.transport.pools.push(("heroku", rate));
        }
        if let Some(n) = CONCURRENCY.read(&plain)? {
            cfg.concurrency = n;
        }
        if let Some(secs) = HEROKU_PREBOOT_WINDOW.read(&plain)? {
            cfg.heroku.preboot_window = Duration::from_secs(secs);
        }
        Ok(cfg)
    }

    /// Refuses what is only right for a sandbox when a vendor is not on this machine: a
    /// preboot window under Heroku's shortest (180 s: the boot timeout, 60 s at least, plus
    /// 2 minutes) is a rehearsal's compressed time (`runbook sandbox` exports one). Against
    /// Heroku itself it would end the wait while the old dynos still serve the old value.
    pub fn checked(self) -> Result<Self, ConfigError> {
        // A user name or password in an endpoint would reach the run's start record, every
        // label and evidence pack (http:: refuses them in its URLs for the same reason).
        for (name, url) in [
            ("POSTMARK_API_URL", &self.postmark.api_url),
            ("POSTMARK_DASHBOARD_URL", &self.postmark.dashboard_url),
            ("INFISICAL_DOMAIN", &self.infisical.api_url),
            ("HEROKU_HOST", &self.heroku.api_url),
            ("GITHUB_API_URL", &self.github.api_url),
        ] {
            let credentials = reqwest::Url::parse(url)
                .is_ok_and(|u| !u.username().is_empty() || u.password().is_some());
            if credentials {
                return Err(ConfigError::Invalid {
                    name,
                    value: "(a URL with a user name or password, not shown)".into(),
                    expected: "a URL without credentials in it: they would be written to the run's journal, its audit trail and every evidence pack; give the vendor's token through its own variable (a proxy's own login goes in the proxy's settings)",
                });
            }
        }
        let window = self.heroku.preboot_window;
        if window < SHORTEST_PREBOOT_WINDOW && !is_loopback_url(&self.heroku.api_url) {
            return Err(ConfigError::Invalid {
                name: HEROKU_PREBOOT_WINDOW.name,
                value: window.as_secs().to_string(),
                expected: "against Heroku itself at least 180 (an app's boot timeout, 60 s or more, plus 120); a shorter window is a sandbox's compressed time (`runbook sandbox` exports one), so unset it in a shell that runs against production",
            });
        }
        Ok(self)
    }

    /// The base URL calls to `vendor` go to.
    pub fn endpoint(&self, vendor: Vendor) -> &str {
        match vendor {
            Vendor::Postmark => &self.postmark.api_url,
            Vendor::Infisical => &self.infisical.api_url,
            Vendor::Heroku => &self.heroku.api_url,
            Vendor::Github => &self.github.api_url,
        }
    }

    /// Where the operator does what `vendor`'s API cannot, if that matters to a rotation.
    pub fn dashboard(&self, vendor: Vendor) -> Option<&str> {
        match vendor {
            Vendor::Postmark => Some(&self.postmark.dashboard_url),
            _ => None,
        }
    }

    /// Where the answer to `url` holds credentials: the route under a configured vendor's
    /// endpoint, as that vendor's spec says. Compared as the vendor reads a request (the
    /// scheme and host in any letter case, the default port written or not, the path
    /// percent-decoded, dot segments and repeated slashes folded): compared as text,
    /// `HTTPS://API.HEROKU.COM/...` or `:443` missed the route, and its config vars came
    /// back as plain text (cold review).
    pub fn credential_fields(&self, url: &str) -> crate::spec::CredentialFields {
        let Ok(asked) = reqwest::Url::parse(url) else {
            return crate::spec::CredentialFields::None;
        };
        let path = folded_path(&asked);
        for v in Vendor::ALL {
            let Ok(base) = reqwest::Url::parse(self.endpoint(v)) else {
                continue;
            };
            if asked.scheme() != base.scheme()
                || asked.host_str() != base.host_str()
                || asked.port_or_known_default() != base.port_or_known_default()
            {
                continue;
            }
            let prefix = folded_path(&base);
            let prefix = prefix.trim_end_matches('/');
            let route = path
                .strip_prefix(prefix)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'));
            if let Some(route) = route {
                let fields = v.spec().credentials.at(route);
                if fields != crate::spec::CredentialFields::None {
                    return fields;
                }
            }
        }
        crate::spec::CredentialFields::None
    }

    /// Whether the setting `var` a vendor needs (one of its spec's `needs`) is given.
    fn has(&self, var: &str) -> bool {
        match var {
            "INFISICAL_TOKEN" => self.infisical.auth.is_some(),
            "INFISICAL_PROJECT_ID" => self
                .infisical
                .project_id
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty()),
            "HEROKU_API_KEY" => self.heroku.api_key.is_some(),
            "GITHUB_TOKEN" => self.github.token.is_some(),
            _ => true,
        }
    }

    /// What `vendor` still needs before a run can use it: the variables to set, each with
    /// what it is for (from its spec). Empty when it is configured.
    pub fn missing(&self, vendor: Vendor) -> Vec<(&'static str, &'static str)> {
        vendor
            .spec()
            .needs
            .iter()
            .filter(|n| !self.has(n.var))
            .map(|n| (n.var, n.what))
            .collect()
    }

    /// The GitHub token, or an error naming `GITHUB_TOKEN`.
    pub fn github_key(&self) -> Result<&Secret, VendorError> {
        self.github.token.as_ref().ok_or_else(|| {
            VendorError::config(
                "github",
                "no token: GITHUB_TOKEN (or GH_TOKEN) is not set",
                "set GITHUB_TOKEN to a token with the repo's secrets permission (e.g. from `gh auth token`)",
            )
        })
    }

    /// The Infisical credentials, or an error naming the variables.
    pub fn infisical_auth(&self) -> Result<&InfisicalAuth, VendorError> {
        self.infisical.auth.as_ref().ok_or_else(|| {
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

/// A URL's path as a server routes it: percent-decoded, repeated slashes folded (the URL
/// parser has already resolved dot segments).
fn folded_path(url: &reqwest::Url) -> String {
    let bytes = url.path().as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&out).into_owned();
    let mut folded = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && folded.ends_with('/')) {
            folded.push(c);
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    /// The vendor's credential routes are found however the URL spells them (cold review:
    /// an upper-case host or an explicit :443 missed the route, and Heroku's config vars
    /// came back as plain text); another host is never taken for the vendor.
    #[test]
    fn a_credential_route_is_found_however_its_url_is_spelled() {
        use crate::spec::CredentialFields::{ConfigVars, None as Plain};
        let c = VendorConfig::default();
        for url in [
            "https://api.heroku.com/apps/x/config-vars",
            "HTTPS://API.HEROKU.COM/apps/x/config-vars",
            "https://api.heroku.com:443/apps/x/config-vars",
            "https://api.heroku.com//apps/x/%63onfig-vars",
            "https://api.heroku.com/apps/y/../x/config-vars?x=1",
        ] {
            assert_eq!(c.credential_fields(url), ConfigVars, "{url}");
        }
        for url in [
            "https://api.heroku.com.example/apps/x/config-vars",
            "https://api.heroku.com:8443/apps/x/config-vars",
            "http://api.heroku.com/apps/x/config-vars",
            "not a url",
        ] {
            assert_eq!(c.credential_fields(url), Plain, "{url}");
        }
    }

    #[test]
    fn every_vendor_setting_is_a_key_of_the_vendors_table() {
        // Strings for the vendors' settings (from their specs), numbers for the tuning.
        let names: Vec<(&str, &str)> = crate::spec::settings()
            .map(|n| (n, "\"x\""))
            .chain(TUNING.iter().map(|n| (*n, "1")))
            .collect();
        let toml: String = names
            .iter()
            .map(|(n, v)| format!("{} = {v}\n", n.to_lowercase()))
            .collect();
        let file: VendorFileConfig = toml::from_str(&toml).unwrap();
        for (name, v) in names {
            assert_eq!(
                file.get(name).as_deref(),
                Some(v.trim_matches('"')),
                "{name}"
            );
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
        assert_eq!(c.postmark.api_url, "https://api.postmarkapp.com");
        assert_eq!(c.infisical.api_url, "https://app.infisical.com/api");
        assert_eq!(c.heroku.api_url, "https://api.heroku.com");
        assert_eq!(c.github.api_url, "https://api.github.com");
        assert_eq!(c.concurrency, 8);
        assert!(c
            .infisical_auth()
            .unwrap_err()
            .to_string()
            .contains("INFISICAL_TOKEN"));
    }

    /// An endpoint holding a user name or password is refused, and the message does not
    /// repeat it (cold review: it went into the journal's first line and every pack).
    #[test]
    fn an_endpoint_with_credentials_in_it_is_refused_without_repeating_them() {
        let cfg = VendorConfig::from_env(|k| match k {
            "INFISICAL_DOMAIN" => Some("https://ci:S3cretPw@infisical.corp".into()),
            _ => None,
        })
        .unwrap();
        let e = cfg.checked().unwrap_err();
        let text = e.to_string();
        assert!(text.contains("INFISICAL_DOMAIN"), "{text}");
        assert!(!text.contains("S3cretPw"), "{text}");
    }

    #[test]
    fn endpoint_rules_follow_the_vendor_clis() {
        let c = VendorConfig::from_env(env(&[
            ("INFISICAL_API_URL", "http://127.0.0.1:9/"),
            ("HEROKU_HOST", "example-heroku.com"),
            ("GH_TOKEN", "gh-token-value"),
        ]))
        .unwrap();
        assert_eq!(c.infisical.api_url, "http://127.0.0.1:9/api");
        assert_eq!(c.heroku.api_url, "https://api.example-heroku.com");
        assert!(c.github.token.is_some());
        let c = VendorConfig::from_env(env(&[
            ("INFISICAL_DOMAIN", "http://127.0.0.1:9/api"),
            ("INFISICAL_API_URL", "http://ignored"),
            ("HEROKU_HOST", "http://127.0.0.1:7"),
        ]))
        .unwrap();
        assert_eq!(c.infisical.api_url, "http://127.0.0.1:9/api");
        assert_eq!(c.heroku.api_url, "http://127.0.0.1:7");
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
            c.infisical.auth,
            Some(InfisicalAuth::UniversalAuth { .. })
        ));
        assert_eq!(c.transport.timeout, Duration::from_secs(5));
        assert_eq!(c.concurrency, 3);
        let bad = VendorConfig::from_env(env(&[("RUNBOOK_CONCURRENCY", "zero")])).unwrap_err();
        assert!(bad.to_string().contains("RUNBOOK_CONCURRENCY"));
        // Past what a fan-out uses, and past tokio's semaphore (a panic at the first
        // fan-out before): refused, naming the range.
        for bad in ["1025", "18446744073709551615"] {
            let e = VendorConfig::from_env(env(&[("RUNBOOK_CONCURRENCY", bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("between 1 and 1024"), "{e}");
        }
    }

    /// Heroku's preboot window: 180 s (its default boot timeout plus 2 minutes) unless set,
    /// from 0 to 600; anything else is refused, naming what it takes.
    #[test]
    fn the_preboot_window_is_180_s_unless_set() {
        let c = VendorConfig::from_env(env(&[])).unwrap();
        assert_eq!(c.heroku.preboot_window, Duration::from_secs(180));
        let c = VendorConfig::from_env(env(&[("RUNBOOK_HEROKU_PREBOOT_WINDOW", "300")])).unwrap();
        assert_eq!(c.heroku.preboot_window, Duration::from_secs(300));
        for bad in ["601", "-1", "3m"] {
            let e = VendorConfig::from_env(env(&[("RUNBOOK_HEROKU_PREBOOT_WINDOW", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("RUNBOOK_HEROKU_PREBOOT_WINDOW") && e.contains("between 0 and 600"),
                "{e}"
            );
        }
    }

    /// A window shorter than any real Heroku app's is a sandbox's: against Heroku itself it
    /// is refused, saying why, not used to end the wait early. On loopback it is taken.
    #[test]
    fn a_compressed_preboot_window_is_refused_against_heroku_itself() {
        let window = ("RUNBOOK_HEROKU_PREBOOT_WINDOW", "9");
        let e = VendorConfig::from_env(env(&[window]))
            .unwrap()
            .checked()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "RUNBOOK_HEROKU_PREBOOT_WINDOW = '9' is not valid: against Heroku itself at least 180 (an app's boot timeout, 60 s or more, plus 120); a shorter window is a sandbox's compressed time (`runbook sandbox` exports one), so unset it in a shell that runs against production"
        );
        let local = VendorConfig::from_env(env(&[window, ("HEROKU_HOST", "http://127.0.0.1:3")]))
            .unwrap()
            .checked()
            .unwrap();
        assert_eq!(local.heroku.preboot_window, Duration::from_secs(9));
        let real = VendorConfig::from_env(env(&[("RUNBOOK_HEROKU_PREBOOT_WINDOW", "180")]))
            .unwrap()
            .checked()
            .unwrap();
        assert_eq!(real.heroku.preboot_window, Duration::from_secs(180));
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
        assert_eq!(c.heroku.api_url, "http://127.0.0.1:3");
        assert_eq!(c.postmark.api_url, "http://127.0.0.1:2");
        assert!(VendorFileConfig::from_toml("[vendors]\nnope = 1\n").is_err());
        assert!(VendorFileConfig::from_toml("[other]\nx = 1\n").is_ok());
    }

    /// A setting two variables name is the shell's when the shell sets either: a
    /// runbook.toml in the current folder naming the other sent the shell's Infisical
    /// token to its host, and put its own GitHub token or Infisical token over the shell's.
    #[test]
    fn env_wins_over_the_file_for_a_setting_of_two_names() {
        let file = VendorFileConfig::from_toml(
            "[vendors]\ninfisical_domain = \"https://evil.example\"\ngithub_token = \"ghp_file\"\ninfisical_token = \"st.file\"\n",
        )
        .unwrap();
        let c = VendorConfig::from_sources(
            env(&[
                ("INFISICAL_API_URL", "https://infisical.corp/api"),
                ("GH_TOKEN", "ghp_shell"),
                ("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", "id-shell"),
                ("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET", "secret-shell"),
            ]),
            Some(&file),
        )
        .unwrap();
        assert_eq!(c.infisical.api_url, "https://infisical.corp/api");
        assert_eq!(c.github.token.as_ref().unwrap().expose(), "ghp_shell");
        match &c.infisical.auth {
            Some(InfisicalAuth::UniversalAuth { client_id, .. }) => {
                assert_eq!(client_id, "id-shell")
            }
            _ => panic!("the shell's universal auth, not the file's token"),
        }
        // Nothing in the shell: the file's.
        let c = VendorConfig::from_sources(env(&[]), Some(&file)).unwrap();
        assert_eq!(c.infisical.api_url, "https://evil.example/api");
        assert_eq!(c.github.token.as_ref().unwrap().expose(), "ghp_file");
    }
}
