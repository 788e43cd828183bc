//! What the sandbox starts with: servers, tokens, secrets, apps, repos, credentials, faults.
//!
//! Loadable from TOML or JSON. String values may use placeholders, resolved at start:
//! `@postmark:NAME` (the first token of Postmark server NAME), `@postmark:NAME:N` (its N-th
//! token, from 0) and `@random` (a fresh UUID).

use crate::faults::{deserialize_rules, FaultRule};
use crate::world::TokensOf;
use crate::SandboxError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub use crate::scripted::{
    Answer, Auth, AuthScheme, AuthSpec, Create, Later, List, Requirement, RouteAuth, RouteSpec,
    ScriptedVendor, Select, Update,
};

/// The whole starting world. In a file, an omitted section is empty (not the SOP's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The Postmark account: servers, tokens, sending rules.
    #[serde(default)]
    pub postmark: PostmarkScenario,
    /// The Infisical project: secrets with their history, folders, approval policies.
    #[serde(default)]
    pub infisical: InfisicalScenario,
    /// The Heroku account: apps with their config vars, the key's scopes, the request pool.
    #[serde(default)]
    pub heroku: HerokuScenario,
    /// GitHub: repositories with their Actions secrets, the token's rate limits.
    #[serde(default)]
    pub github: GithubScenario,
    /// Generic HTTP simulators declared in the file (see `sandbox::scripted`).
    #[serde(default)]
    pub scripted: Vec<ScriptedVendor>,
    /// Faults injected from the start, in the `--fault` grammar:
    /// `VENDOR[:METHOD][:PATH]=ACTION[:once|always|times=N|after=K|retry_after=S]`, where
    /// ACTION is a status (`500`), `drop`, `lost` (served, then the answer dropped),
    /// `committed[=5XX]` (served, then answered with a 5xx, 500 by default), `stall`,
    /// `malformed` or `latency=MS`.
    #[serde(default, deserialize_with = "deserialize_rules")]
    #[schemars(with = "Vec<String>")]
    pub faults: Vec<FaultRule>,
    /// The runbook's params for a rehearsal on this world (`[params]`, e.g.
    /// `apps = ["raxx-api-prod"]`): they name the world's servers and apps, so the scenario
    /// says them once. `--param` still wins; they come before the params' environment
    /// variables and defaults.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Scenario {
    /// `params` as `--param NAME=VALUE` pairs (a list is comma-separated, as on the command
    /// line).
    pub fn param_pairs(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// Postmark servers and the per-server token limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PostmarkScenario {
    /// The account's servers.
    pub servers: Vec<ServerSpec>,
    /// Tokens a server may hold at once (third-party SOP says 3).
    pub token_limit: usize,
    /// Confirmed Sender Signatures: addresses, or domains (a verified domain signs every
    /// address in it). `POST /email` from anything else answers 422 ErrorCode 400, as
    /// Postmark does; `["*"]` accepts any sender.
    pub sender_signatures: Vec<String>,
    /// Signatures added but not yet confirmed: sending from them answers ErrorCode 401.
    pub unconfirmed_signatures: Vec<String>,
    /// Suppressed recipients (hard bounce, spam complaint, manual): 422 ErrorCode 406.
    pub inactive_recipients: Vec<String>,
    /// How long Postmark takes to process a sent email, in milliseconds. `POST /email`
    /// answers a `MessageID` at once; until then `GET /messages/outbound/{id}/details`
    /// answers 422 ErrorCode 701 and `GET /messages/outbound` does not list it. Postmark
    /// documents no figure; the default is short so rehearsals stay quick.
    pub delivery_ms: u64,
    /// Recipients whose mailbox hard-bounces: once a message to one is processed, the bounce
    /// is listed by `GET /bounces` and the recipient is suppressed (later sends to it are
    /// refused with 422 ErrorCode 406), as Postmark deactivates hard-bounced addresses.
    pub bounce: Vec<String>,
    /// The largest page the message and bounce lists answer, whatever `count` asks
    /// (Postmark's: 500): a rehearsal switch that makes a client page with `offset`.
    pub page_size: Option<u32>,
    /// A request pool for the API (absent: none). Postmark publishes no figure and no
    /// rate-limit headers, only that 429 answers "requests at a rate that exceeds acceptable
    /// use": a rehearsal sets one to see a run slow down rather than fail.
    pub rate_limit: Option<RateLimitSpec>,
}

/// One Postmark server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSpec {
    /// The server's name (`GET /server`'s `Name`).
    pub name: String,
    /// Its numeric ID; absent, 4242 for the first server, then counting up.
    pub id: Option<i64>,
    /// Token values; empty = one random token. The first is "the current token".
    pub tokens: Vec<String>,
    /// Add random tokens until the server is at the limit (the "max 3 tokens" gotcha).
    pub fill_tokens_to_limit: bool,
    /// The server's color setting (Purple, Blue, Turquoise, Green, Red, Yellow, Grey, Orange).
    pub color: String,
}

/// The Infisical project and the credentials the simulator accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct InfisicalScenario {
    /// The project's id (`INFISICAL_PROJECT_ID`); another id answers 403.
    pub project_id: String,
    pub project_slug: String,
    /// Environment slugs that exist.
    pub environments: Vec<String>,
    /// Access token accepted as `INFISICAL_TOKEN`; random when absent.
    pub token: Option<String>,
    /// A person's session token (a user JWT, as the dashboard and `infisical login` hold)
    /// also accepted as a Bearer token: writes with it are a user's, which approval policies
    /// cover. Absent, only machine-identity tokens are accepted.
    pub user_token: Option<String>,
    /// Universal-auth machine identity accepted at login; random when absent.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `expiresIn` of universal-auth access tokens.
    pub access_token_ttl_secs: u64,
    /// Secrets with their version history.
    pub secrets: Vec<SecretSpec>,
    /// Folders that exist in every environment besides `/` and the folders of the secrets:
    /// Infisical refuses to create a secret in a folder that does not exist (404).
    pub folders: Vec<String>,
    /// Folders (and their subfolders) whose secrets the identity may see but not read, as
    /// Infisical's DescribeSecret without ReadValue: a recursive listing with values leaves
    /// them out, a listing of such a folder itself or a read of one of them answers 403,
    /// and a listing without values shows them, values hidden.
    pub value_hidden_folders: Vec<String>,
    /// A recursive listing with values shows those secrets with Infisical's placeholder
    /// (`<hidden-by-infisical>`, `secretValueHidden: true`) instead of leaving them out,
    /// as Infisical's servers that mask rather than filter do.
    pub hidden_values_listed: bool,
    /// Service tokens (Infisical's legacy `st.` tokens), each scoped to one environment and
    /// folder: Infisical's v4 listing and read answer from that scope whatever the request
    /// names (`environment`, `secretPath`).
    pub service_tokens: Vec<ServiceTokenSpec>,
    /// Secret-approval policies: a write they cover answers `{"approval": ...}` (a change
    /// request) and changes nothing until an approver merges it.
    pub approval_policies: Vec<ApprovalPolicySpec>,
    /// A request pool (absent: none, as self-hosted Infisical). Infisical Cloud allows 600
    /// requests a minute per client, and per category on the free plan 120 a minute to the
    /// secrets routes (`capacity = 120, per_minute = 120`); over it, 429 with the wait only in
    /// the message ("Please try again in N seconds"), no headers.
    pub rate_limit: Option<RateLimitSpec>,
}

/// A service token and the one scope it holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceTokenSpec {
    /// The whole token, `st.<id>.<secret>`.
    pub token: String,
    /// The environment slug of its scope.
    pub environment: String,
    /// The folder of its scope.
    pub path: String,
}

/// A secret-approval policy on one environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalPolicySpec {
    pub name: String,
    /// The environment slug it protects.
    pub environment: String,
    /// The folders it covers: a path, or a glob (`/**` is every folder); absent, all.
    pub secret_path: Option<String>,
    /// Approvals a request needs (shown on the request; the simulated approver gives them).
    pub approvals: u32,
    /// A simulated approver merges each request this long after it is filed; absent, a
    /// request waits for `POST /_sandbox/approvals/{id}/merge` (or `/close`).
    pub approve_after_ms: Option<u64>,
    /// Secrets whose requests the simulated approver merges even without
    /// `approve_after_ms` (then at once): a rehearsal where an approver merges one change
    /// (a staging copy) and leaves another waiting.
    pub approve_keys: Vec<String>,
    /// Whose writes it covers: `users` (Infisical's behaviour: its secret routes file a
    /// change request only when the actor is a user, so a machine identity, the sandbox's
    /// token and universal-auth logins, writes directly) or `everyone` (every caller, the
    /// sandbox's former behaviour, to rehearse waiting for an approval).
    pub applies_to: AppliesTo,
}

/// Whose writes a secret-approval policy covers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppliesTo {
    /// People (user sessions) only, as Infisical does.
    #[default]
    Users,
    /// Every caller, machine identities included.
    Everyone,
}

impl Default for ApprovalPolicySpec {
    fn default() -> Self {
        ApprovalPolicySpec {
            name: "change-review".into(),
            environment: "prod".into(),
            secret_path: None,
            approvals: 1,
            approve_after_ms: None,
            approve_keys: Vec::new(),
            applies_to: AppliesTo::Users,
        }
    }
}

/// One secret with its history, oldest value first (the last one is current).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSpec {
    pub environment: String,
    /// The folder holding it.
    pub path: String,
    pub name: String,
    /// Its values, oldest first: the last is the current version (`@postmark:SERVER`,
    /// `@random` allowed).
    pub versions: Vec<String>,
}

/// Heroku apps and the API key the simulator accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HerokuScenario {
    /// The API key accepted as `HEROKU_API_KEY`; random when absent.
    pub api_key: Option<String>,
    /// The key's OAuth scopes: `global` (an account API key) or any of `identity`, `read`,
    /// `write`, `read-protected`, `write-protected`. Config vars need the `-protected` ones.
    pub scopes: Vec<String>,
    /// The account the key belongs to (`GET /account`).
    pub user_email: String,
    /// The account's apps.
    pub apps: Vec<AppSpec>,
    /// The account's request pool: every request takes a token, the pool refills at a
    /// steady rate, and an empty pool answers 429 `rate_limit`. Heroku's: 4,500 tokens,
    /// about 75 a minute.
    pub rate_limit: RateLimitSpec,
    /// The largest page a ranged list (`GET /apps`, releases) answers, whatever `Range`'s
    /// `max` asks (Heroku's: 1,000): a rehearsal switch that makes a client follow several
    /// `Next-Range` pages (206).
    pub page_size: Option<u32>,
    /// How long a tail session's stream stays open, in milliseconds (Heroku ends a
    /// session after an hour, a Fir app's stream after 15 minutes; default an hour): a
    /// rehearsal switch that makes a reader open it again.
    pub log_stream_ms: Option<u64>,
}

/// A request pool: `capacity` tokens, refilled at `per_minute`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Tokens in a full pool.
    pub capacity: u32,
    /// Tokens added a minute.
    pub per_minute: f64,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        RateLimitSpec {
            capacity: 4500,
            per_minute: 75.0,
        }
    }
}

/// One Heroku app; it runs a Raptor instance if its config has the Postmark token var.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    /// Config vars (`@postmark:SERVER` for a server's current token).
    pub config: BTreeMap<String, String>,
    /// Dyno names (default `["web.1"]`); `[]` is an app scaled to zero: its formation asks
    /// for no dyno, nothing runs, a restart boots nothing. A `run.N`, `scheduler.N` or
    /// `release.N` is a one-off (a console, a job): `up` on the app's first release whatever
    /// came since, since no restart moves it, and not in the formation.
    pub dynos: Vec<String>,
    /// `cedar` (the default) or `fir`: Fir apps keep no log history and have no log
    /// sessions (they send telemetry through OpenTelemetry drains).
    pub generation: String,
    /// How long a restart takes, in milliseconds: until then the dynos are `starting`, the
    /// app answers 503, and the "up" line is not yet logged (Heroku restarts after the 202).
    pub boot_ms: u64,
    /// Preboot (Heroku's `preboot` feature): at a restart or a config change the old dynos
    /// keep serving, `up` and with the OLD config (the downstream app keeps its old token),
    /// until traffic moves to the new ones `preboot_window_ms` after the change; only the new
    /// dynos are listed meanwhile (Heroku's Preboot article).
    pub preboot: bool,
    /// With preboot: how long after a restart or a config change traffic moves to the new
    /// dynos and the old ones stop. On Heroku the app's boot timeout plus 2 minutes (180 s
    /// with the default timeout; Heroku changelog, 2017-04-19).
    pub preboot_window_ms: u64,
    /// How long after a config change's release its restart begins, in milliseconds (default
    /// 0): until then the dynos stay `up` on the release before, with the old config, while
    /// the new release is already listed as succeeded. Heroku restarts after answering the
    /// change; how long that takes is not published (a modelling choice, for the runbooks'
    /// release-aware waits).
    pub restart_delay_ms: u64,
    /// A release phase: every new release waits for its release command, `pending` in the
    /// releases list, and restarts the app only if it succeeds; absent, releases succeed at
    /// once (as for an app without a `release` process type).
    pub release_phase: Option<ReleasePhaseSpec>,
    /// How long a logged line takes to reach log sessions, in milliseconds (default 0):
    /// Heroku's log delivery lags, so a read right after an event can miss its lines.
    pub log_delay_ms: u64,
    /// The app serves clients that fail to log in: its router logs a `status=401` request
    /// at every request the sandbox serves (ordinary traffic, not Postmark's refusals).
    pub client_401s: bool,
}

/// An app's release phase: how long the release command runs and how it ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReleasePhaseSpec {
    /// How long a release stays `pending`, in milliseconds.
    pub duration_ms: u64,
    /// How it ends: `succeeded` (the app restarts on the new release) or `failed` (the
    /// release is `failed` and the dynos keep running the previous one, as Heroku does when
    /// the release command exits non-zero).
    pub outcome: ReleaseOutcome,
}

/// How a release phase ends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOutcome {
    Succeeded,
    Failed,
}

impl Default for ReleasePhaseSpec {
    fn default() -> Self {
        ReleasePhaseSpec {
            duration_ms: 2_000,
            outcome: ReleaseOutcome::Succeeded,
        }
    }
}

/// GitHub repositories and the token the simulator accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GithubScenario {
    /// The token accepted as `GITHUB_TOKEN`; random when absent.
    pub token: Option<String>,
    /// Repositories the token can administer.
    pub repos: Vec<RepoSpec>,
    /// Organisation Actions secrets (the repositories' owners are the organisations).
    pub org_secrets: Vec<OrgSecretSpec>,
    /// The token's primary rate limit: requests an hour (GitHub's 5,000 for a personal
    /// token), in a fixed window that starts at the window's first request and resets an
    /// hour later (`x-ratelimit-reset`). When spent, requests answer `rate_limit_status`
    /// with `x-ratelimit-remaining: 0` until the reset.
    pub rate_limit: u32,
    /// The status of a spent primary limit: 403 (the default) or 429; GitHub documents both.
    pub rate_limit_status: u16,
    /// The largest page a list answers, whatever `per_page` asks (GitHub's: 100): a
    /// rehearsal switch that makes a client follow several `Link` pages.
    pub page_size: Option<u32>,
    /// A secondary rate limit on content-creating requests (GitHub's "too many writes in a
    /// short time"): refused with 403 and a `retry-after`; absent, none.
    pub secondary_limit: Option<SecondaryLimitSpec>,
}

/// At most `writes` non-GET requests in any `window_secs` seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondaryLimitSpec {
    /// Writes allowed in a window.
    pub writes: u32,
    /// The window, in seconds.
    #[serde(default = "SecondaryLimitSpec::minute")]
    pub window_secs: u64,
    /// Whether a refusal carries `retry-after`. GitHub's docs say it may not: then the
    /// client should wait at least a minute (`x-ratelimit-remaining` is not 0).
    #[serde(default = "SecondaryLimitSpec::yes")]
    pub retry_after: bool,
}

impl SecondaryLimitSpec {
    fn minute() -> u64 {
        60
    }

    fn yes() -> bool {
        true
    }
}

impl Default for GithubScenario {
    fn default() -> Self {
        GithubScenario {
            token: None,
            repos: Vec::new(),
            org_secrets: Vec::new(),
            rate_limit: 5000,
            rate_limit_status: 403,
            page_size: None,
            secondary_limit: None,
        }
    }
}

/// One repository (`owner/name`) with its Actions secrets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RepoSpec {
    /// `owner/name`.
    pub name: String,
    /// Actions secrets by name (values are sealed with the repository's public key).
    pub secrets: BTreeMap<String, String>,
    /// Deployment environments by name, each with its secrets by name. A workflow job in
    /// an environment sees its secrets over the repository's and the organisation's.
    pub environments: BTreeMap<String, BTreeMap<String, String>>,
}

/// An organisation's Actions secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrgSecretSpec {
    /// The organisation (a repository's owner).
    pub org: String,
    pub name: String,
    pub value: String,
    /// Which repositories may use it: `all`, `private` or `selected` (absent: `all`).
    #[serde(default = "OrgSecretSpec::all")]
    pub visibility: String,
    /// With `selected`: the repositories (`owner/name`) that may.
    pub selected_repos: Vec<String>,
}

impl OrgSecretSpec {
    fn all() -> String {
        "all".into()
    }
}

impl Default for OrgSecretSpec {
    fn default() -> Self {
        OrgSecretSpec {
            org: String::new(),
            name: String::new(),
            value: String::new(),
            visibility: Self::all(),
            selected_repos: Vec::new(),
        }
    }
}

/// The config var Raptor reads its Postmark token from.
pub(crate) const TOKEN_VAR: &str = "POSTMARK_SERVER_TOKEN";

impl Default for Scenario {
    fn default() -> Self {
        Scenario::sop("raxx-prod")
    }
}

impl Default for PostmarkScenario {
    fn default() -> Self {
        PostmarkScenario {
            servers: Vec::new(),
            token_limit: 3,
            // The shipped runbook's default sender (`--param sender`) is the confirmed one.
            sender_signatures: vec!["noreply@raxx.app".into()],
            unconfirmed_signatures: Vec::new(),
            inactive_recipients: Vec::new(),
            delivery_ms: 200,
            bounce: Vec::new(),
            page_size: None,
            rate_limit: None,
        }
    }
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            name: String::new(),
            id: None,
            tokens: Vec::new(),
            fill_tokens_to_limit: false,
            color: "Blue".into(),
        }
    }
}

impl Default for InfisicalScenario {
    fn default() -> Self {
        InfisicalScenario {
            project_id: "raxx-project".into(),
            project_slug: "raxx".into(),
            environments: vec!["dev".into(), "staging".into(), "prod".into()],
            token: None,
            user_token: None,
            client_id: None,
            client_secret: None,
            access_token_ttl_secs: 7200,
            secrets: Vec::new(),
            folders: Vec::new(),
            value_hidden_folders: Vec::new(),
            hidden_values_listed: false,
            service_tokens: Vec::new(),
            approval_policies: Vec::new(),
            rate_limit: None,
        }
    }
}

impl Default for SecretSpec {
    fn default() -> Self {
        SecretSpec {
            environment: "prod".into(),
            path: "/".into(),
            name: String::new(),
            versions: Vec::new(),
        }
    }
}

impl Default for HerokuScenario {
    fn default() -> Self {
        HerokuScenario {
            api_key: None,
            scopes: vec!["global".into()],
            user_email: "ops@raxx.app".into(),
            apps: Vec::new(),
            rate_limit: RateLimitSpec::default(),
            page_size: None,
            log_stream_ms: None,
        }
    }
}

impl Default for AppSpec {
    fn default() -> Self {
        AppSpec {
            name: String::new(),
            config: BTreeMap::new(),
            dynos: vec!["web.1".into()],
            generation: "cedar".into(),
            // A restart takes time, as on Heroku: short enough for a quick rehearsal.
            boot_ms: 300,
            preboot: false,
            preboot_window_ms: 180_000,
            restart_delay_ms: 0,
            release_phase: None,
            log_delay_ms: 0,
            client_401s: false,
        }
    }
}

impl Scenario {
    /// The SOP's world: server `server_name` with one token, stored in Infisical (`prod`, `/`,
    /// version 2 current, version 1 an older value) and set on `raxx-api-prod` and
    /// `raxx-api-staging`.
    pub fn sop(server_name: &str) -> Self {
        let current = format!("@postmark:{server_name}");
        let app = |name: &str| AppSpec {
            name: name.into(),
            config: BTreeMap::from([
                (TOKEN_VAR.to_string(), current.clone()),
                ("RAPTOR_ENV".to_string(), "production".to_string()),
            ]),
            ..AppSpec::default()
        };
        Scenario {
            postmark: PostmarkScenario {
                servers: vec![ServerSpec {
                    name: server_name.into(),
                    id: Some(4242),
                    ..ServerSpec::default()
                }],
                ..PostmarkScenario::default()
            },
            infisical: InfisicalScenario {
                secrets: vec![SecretSpec {
                    name: TOKEN_VAR.into(),
                    versions: vec!["@random".into(), current.clone()],
                    ..SecretSpec::default()
                }],
                ..InfisicalScenario::default()
            },
            heroku: HerokuScenario {
                apps: vec![app("raxx-api-prod"), app("raxx-api-staging")],
                ..HerokuScenario::default()
            },
            github: GithubScenario::default(),
            scripted: Vec::new(),
            faults: Vec::new(),
            params: BTreeMap::new(),
        }
    }

    /// Fixes the first Postmark server's current token (tests use known canary values).
    pub fn with_postmark_token(mut self, token: &str) -> Self {
        if let Some(s) = self.postmark.servers.first_mut() {
            s.tokens = vec![token.to_string()];
        }
        self
    }

    /// Fixes the older Infisical value of the first secret (version 1).
    pub fn with_old_token(mut self, token: &str) -> Self {
        if let Some(s) = self.infisical.secrets.first_mut() {
            if let Some(v) = s.versions.first_mut() {
                *v = token.to_string();
            }
        }
        self
    }

    /// Fills the first Postmark server up to the token limit.
    pub fn with_tokens_at_limit(mut self) -> Self {
        if let Some(s) = self.postmark.servers.first_mut() {
            s.fill_tokens_to_limit = true;
        }
        self
    }

    /// Adds a GitHub repository (`owner/name`).
    pub fn with_github_repo(mut self, name: &str) -> Self {
        self.github.repos.push(RepoSpec {
            name: name.into(),
            ..RepoSpec::default()
        });
        self
    }

    /// Fixes every credential the sandbox accepts.
    pub fn with_credentials(mut self, heroku: &str, infisical: &str, github: &str) -> Self {
        self.heroku.api_key = Some(heroku.into());
        self.infisical.token = Some(infisical.into());
        self.github.token = Some(github.into());
        self
    }

    /// Reads a scenario from a `.toml` or `.json` file.
    pub fn from_file(path: &Path) -> Result<Self, SandboxError> {
        // No scenario comes near this; a 1 GB one must not be read whole.
        const MAX_SCENARIO_BYTES: u64 = 8 << 20;
        if let Ok(meta) = std::fs::metadata(path) {
            if !meta.is_file() {
                return Err(SandboxError::Scenario {
                    message: format!("{} is not a regular file", path.display()),
                });
            }
            if meta.len() > MAX_SCENARIO_BYTES {
                return Err(SandboxError::Scenario {
                    message: format!(
                        "{} is {} bytes; a scenario may be at most {MAX_SCENARIO_BYTES} bytes",
                        path.display(),
                        meta.len()
                    ),
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| SandboxError::Scenario {
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json(&text),
            _ => Self::from_toml(&text),
        }
        .map_err(|e| {
            let e = match e {
                SandboxError::Scenario { message } => message,
                other => other.to_string(),
            };
            SandboxError::Scenario {
                message: format!("{}: {e}", path.display()),
            }
        })
    }

    /// Errors name the line and the complaint, not the line's text (which holds tokens).
    pub fn from_toml(text: &str) -> Result<Self, SandboxError> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let at = e
                .span()
                .map(|s| {
                    let line = text.get(..s.start).unwrap_or(text).matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            SandboxError::Scenario {
                message: format!("{at}{}", runbook_secret::without_values(e.message())),
            }
        })
    }

    pub fn from_json(text: &str) -> Result<Self, SandboxError> {
        serde_json::from_str(text).map_err(|e| SandboxError::Scenario {
            message: runbook_secret::without_values(&e.to_string()),
        })
    }
}

/// Resolves `@postmark:NAME[:N]` and `@random` once the Postmark tokens exist.
pub(crate) fn resolve(value: &str, tokens_of: TokensOf<'_>) -> Result<String, SandboxError> {
    if value == "@random" {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    let Some(rest) = value.strip_prefix("@postmark:") else {
        return Ok(value.to_string());
    };
    let (name, index) = match rest.rsplit_once(':') {
        Some((n, i)) if i.parse::<usize>().is_ok() => (n, i.parse::<usize>().unwrap_or(0)),
        _ => (rest, 0),
    };
    tokens_of(name)
        .and_then(|t| t.get(index).cloned())
        .ok_or_else(|| SandboxError::Scenario {
            message: format!(
                "placeholder '{value}': no Postmark server '{name}' with a token #{index}"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_use_placeholders_and_fault_strings() {
        let toml = r#"
            faults = ["postmark:GET:/server=503:once"]
            [postmark]
            servers = [{ name = "acme-prod", id = 7, tokens = ["t-1", "t-2"] }]
            [infisical]
            project_id = "acme"
            secrets = [{ name = "POSTMARK_SERVER_TOKEN", versions = ["@random", "@postmark:acme-prod:1"] }]
            [heroku]
            apps = [{ name = "acme-api", config = { POSTMARK_SERVER_TOKEN = "@postmark:acme-prod" } }]
        "#;
        let s = Scenario::from_toml(toml).unwrap();
        assert_eq!(s.faults.len(), 1);
        assert_eq!(s.heroku.apps[0].dynos, vec!["web.1"]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(Scenario::from_json(&json).unwrap(), s);
        assert!(Scenario::from_toml("[postmark]\nbogus = 1").is_err());
        let tokens =
            |n: &str| (n == "acme-prod").then(|| vec!["t-1".to_string(), "t-2".to_string()]);
        assert_eq!(resolve("@postmark:acme-prod:1", &tokens).unwrap(), "t-2");
        assert_eq!(resolve("plain", &tokens).unwrap(), "plain");
        assert!(resolve("@postmark:ghost", &tokens).is_err());
    }
}
