//! Simulated vendor APIs on loopback, the simulated downstream app and fault injection.
//!
//! `Sandbox::start` serves Postmark, Infisical, Heroku, GitHub and Raptor (the downstream
//! app) each on its own 127.0.0.1 port, all sharing one in-memory world behind one mutex, so
//! cross-vendor effects (a Heroku restart makes Raptor re-read its token; Raptor sends mail
//! through Postmark) are plain function calls and fully deterministic.

// Handlers return the vendor's error `Response` early with `?`; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod faults;
mod github;
mod heroku;
mod http;
mod infisical;
mod postmark;
mod raptor;
pub mod scenario;
pub mod scripted;
mod shared;
#[cfg(test)]
pub(crate) mod testkit;
mod ts;
mod world;

pub use faults::{FaultAction, FaultParseError, FaultRule};
pub use http::RequestRecord;
pub use scenario::Scenario;

use axum::response::Response;
use faults::FaultSet;
use github::GithubState;
use heroku::HerokuState;
use infisical::InfisicalState;
use postmark::PostmarkState;
use raptor::RaptorState;
use scripted::ScriptedState;
use serde_json::json;
use shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use world::World;

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
        help("see `runbook sandbox --help` for the scenario format")
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

/// The base URLs of the simulators, `http://127.0.0.1:PORT`.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    pub postmark: String,
    pub infisical: String,
    pub heroku: String,
    pub github: String,
    pub raptor: String,
    /// Scripted vendors by name.
    pub scripted: std::collections::BTreeMap<String, String>,
}

/// The credentials the simulators accept (sandbox data, not real secrets).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub heroku_api_key: String,
    pub infisical_token: String,
    pub infisical_client_id: String,
    pub infisical_client_secret: String,
    pub github_token: String,
}

impl Credentials {
    fn of(w: &World) -> Credentials {
        let infisical = w.get::<InfisicalState>();
        Credentials {
            heroku_api_key: w
                .get::<HerokuState>()
                .map(|h| h.api_key.clone())
                .unwrap_or_default(),
            infisical_token: infisical.map(|i| i.token.clone()).unwrap_or_default(),
            infisical_client_id: infisical.map(|i| i.client_id.clone()).unwrap_or_default(),
            infisical_client_secret: infisical
                .map(|i| i.client_secret.clone())
                .unwrap_or_default(),
            github_token: w
                .get::<GithubState>()
                .map(|g| g.token.clone())
                .unwrap_or_default(),
        }
    }
}

/// A running sandbox; stops its simulators on drop or `shutdown`.
pub struct Sandbox {
    shared: Arc<Shared>,
    creds: Credentials,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    urls: Urls,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("urls", &self.urls).finish()
    }
}

impl Sandbox {
    /// Builds the world from `scenario` and serves every simulator on 127.0.0.1.
    pub async fn start(scenario: Scenario) -> Result<Sandbox, SandboxError> {
        let mut world = World::default();
        world.insert(PostmarkState::from_scenario(&scenario.postmark)?);
        world.provide_mail::<PostmarkState>();
        let tokens_of = |name: &str| world.server_tokens(name);
        let infisical = InfisicalState::from_scenario(&scenario.infisical, &tokens_of)?;
        let heroku = HerokuState::from_scenario(&scenario.heroku, &tokens_of)?;
        let github = GithubState::from_scenario(&scenario.github, &tokens_of)?;
        world.insert(infisical);
        world.insert(heroku);
        world.provide_platform::<HerokuState>();
        world.insert(github);
        world.insert(RaptorState::from_platform(world.platform()));
        world.subscribe(raptor::on_event);
        let scripted = ScriptedState::from_scenario(&scenario.scripted)
            .map_err(|message| SandboxError::Scenario { message })?;
        let mut vendors: Vec<&str> = faults::BUILT_IN_VENDORS.to_vec();
        vendors.extend(scripted.names());
        if let Some(f) = scenario
            .faults
            .iter()
            .find(|f| !vendors.contains(&f.vendor.as_str()))
        {
            return Err(SandboxError::Scenario {
                message: format!(
                    "fault for unknown vendor '{}' (simulated vendors: {})",
                    f.vendor,
                    vendors.join(", ")
                ),
            });
        }
        let scripted_names = scripted.names();
        world.insert(scripted);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(
            world,
            FaultSet::new(scenario.faults.clone()),
            stop_rx,
        ));
        let mut tasks = Vec::new();
        let mut routers = vec![
            ("postmark", postmark::router(shared.clone())),
            ("infisical", infisical::router(shared.clone())),
            ("heroku", heroku::router(shared.clone())),
            ("github", github::router(shared.clone())),
            ("raptor", raptor::router(shared.clone())),
        ];
        for (i, name) in scripted_names.iter().enumerate() {
            routers.push((name, scripted::router(shared.clone(), i)));
        }
        let mut urls = Urls::default();
        for (vendor, router) in routers {
            let (addr, task) = http::serve(vendor, router, shared.clone())
                .await
                .map_err(|source| SandboxError::Bind { vendor, source })?;
            tasks.push(task);
            let u = format!("http://{addr}");
            match vendor {
                "postmark" => urls.postmark = u,
                "infisical" => urls.infisical = u,
                "heroku" => urls.heroku = u,
                "github" => urls.github = u,
                "raptor" => urls.raptor = u,
                name => {
                    shared.with_world(|w| {
                        let vendors = w.get_mut::<ScriptedState>().map(|s| &mut s.vendors);
                        if let Some(v) = vendors.into_iter().flatten().find(|v| v.spec.name == name)
                        {
                            v.url = u.clone();
                        }
                    });
                    urls.scripted.insert(name.to_string(), u);
                }
            }
        }
        let _ = shared.urls.set(urls.clone());
        let creds = shared.with_world(|w| Credentials::of(w));
        Ok(Sandbox {
            shared,
            creds,
            stop: stop_tx,
            tasks,
            urls,
        })
    }

    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    pub fn postmark_url(&self) -> &str {
        &self.urls.postmark
    }

    /// The Infisical "domain" (without `/api`, as `INFISICAL_DOMAIN` takes it).
    pub fn infisical_url(&self) -> &str {
        &self.urls.infisical
    }

    pub fn heroku_url(&self) -> &str {
        &self.urls.heroku
    }

    pub fn github_url(&self) -> &str {
        &self.urls.github
    }

    pub fn raptor_url(&self) -> &str {
        &self.urls.raptor
    }

    /// The credentials the simulators accept.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The Infisical project id of the scenario.
    pub fn infisical_project_id(&self) -> String {
        self.shared
            .with_state(|i: &mut InfisicalState| i.project_id.clone())
            .unwrap_or_default()
    }

    /// Environment variables that point the vendors' own CLIs and `VendorConfig::from_env`
    /// at the simulators.
    pub fn env(&self) -> Vec<(String, String)> {
        let c = &self.creds;
        [
            ("POSTMARK_API_URL", self.urls.postmark.clone()),
            ("INFISICAL_DOMAIN", self.urls.infisical.clone()),
            ("INFISICAL_TOKEN", c.infisical_token.clone()),
            ("INFISICAL_PROJECT_ID", self.infisical_project_id()),
            ("HEROKU_HOST", self.urls.heroku.clone()),
            ("HEROKU_API_KEY", c.heroku_api_key.clone()),
            ("GITHUB_API_URL", self.urls.github.clone()),
            ("GITHUB_TOKEN", c.github_token.clone()),
            ("RAPTOR_API_URL", self.urls.raptor.clone()),
            ("INFISICAL_DISABLE_UPDATE_CHECK", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.scripted_env())
        .collect()
    }

    /// `(ENV_VAR, url)` of every scripted vendor.
    pub fn scripted_env(&self) -> Vec<(String, String)> {
        self.shared
            .with_state(|s: &mut ScriptedState| {
                s.vendors
                    .iter()
                    .map(|v| (v.spec.env_var(), v.url.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Dashboard "Generate token" on server `server_name`; fails at the token limit.
    pub fn dashboard_generate_token(&self, server_name: &str) -> Result<String, SandboxError> {
        self.shared
            .with_state(|p: &mut PostmarkState| p.generate_token(server_name))
            .unwrap_or_else(|| {
                Err(SandboxError::UnknownServer {
                    name: server_name.into(),
                })
            })
    }

    /// Dashboard "Delete" of one token of `server_name`.
    pub fn dashboard_delete_token(
        &self,
        server_name: &str,
        token: &str,
    ) -> Result<(), SandboxError> {
        self.shared
            .with_state(|p: &mut PostmarkState| p.delete_token(server_name, token))
            .unwrap_or_else(|| {
                Err(SandboxError::UnknownServer {
                    name: server_name.into(),
                })
            })
    }

    /// The current tokens of a Postmark server.
    pub fn postmark_tokens(&self, server_name: &str) -> Option<Vec<String>> {
        self.shared.with_world(|w| w.server_tokens(server_name))
    }

    /// Adds a fault rule while running.
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.with_world(|w| w.requests.clone())
    }

    /// How many requests matched `vendor`, `method` and exact `path`.
    pub fn count_requests(&self, vendor: &str, method: &str, path: &str) -> usize {
        self.shared.with_world(|w| {
            w.requests
                .iter()
                .filter(|r| r.vendor == vendor && r.method == method && r.path == path)
                .count()
        })
    }

    /// Makes every Infisical access token issued by login expire now.
    pub fn infisical_expire_tokens(&self) {
        self.shared
            .with_state(|i: &mut InfisicalState| i.expire_issued());
    }

    /// Sets an app's config var without the restart Heroku would do (to show that the
    /// downstream app reads its token only at a restart).
    pub fn set_config_without_restart(&self, app: &str, key: &str, value: &str) {
        self.shared
            .with_state(|h: &mut HerokuState| h.set_config_without_restart(app, key, value));
    }

    /// The final state, for tests and `--sandbox-state FILE`.
    pub fn state(&self) -> serde_json::Value {
        self.shared.state()
    }
}

impl Shared {
    /// Every simulator's state as JSON (what `--sandbox-state` writes).
    pub fn state(&self) -> serde_json::Value {
        let faults: Vec<serde_json::Value> = self
            .faults
            .fired()
            .into_iter()
            .map(|(rule, fired)| json!({"rule": rule, "fired": fired}))
            .collect();
        self.with_world(|w| {
            json!({
                "postmark": w.get::<PostmarkState>().map(PostmarkState::to_json),
                "infisical": w.get::<InfisicalState>().map(InfisicalState::to_json),
                "heroku": w.get::<HerokuState>().map(HerokuState::to_json),
                "github": w.get::<GithubState>().map(GithubState::to_json),
                "downstream": w.get::<RaptorState>().map(RaptorState::to_json),
                "downstream_401s": w.get::<RaptorState>().map(RaptorState::total_401s),
                "scripted": w.get::<ScriptedState>().map(ScriptedState::to_json),
                "requests": w.requests,
                "faults": faults,
            })
        })
    }
}

impl Sandbox {
    /// Stops every simulator and waits (briefly) for them to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The vendor's own error answer for `status` (used by faults).
pub(crate) fn vendor_error(vendor: &str, status: u16) -> Response {
    match vendor {
        "postmark" => postmark::error_for_status(status),
        "infisical" => infisical::error_for_status(status),
        "heroku" => heroku::error_for_status(status),
        "github" => github::error_for_status(status),
        "raptor" => raptor::error_for_status(status),
        _ => scripted::error_for_status(status),
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::keys;
    use super::*;

    #[tokio::test]
    async fn starts_and_shuts_down() {
        let sb = Sandbox::start(Scenario::default()).await.unwrap();
        let url = sb.heroku_url().to_string();
        sb.shutdown().await;
        let e = testkit::raw().get(format!("{url}/apps/x")).send().await;
        assert!(e.is_err());
    }

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
        assert_eq!(
            scenario::resolve("@postmark:acme-prod:1", &tokens).unwrap(),
            "t-2"
        );
        assert_eq!(scenario::resolve("plain", &tokens).unwrap(), "plain");
        assert!(scenario::resolve("@postmark:ghost", &tokens).is_err());
    }

    #[tokio::test]
    async fn a_file_scenario_starts_consistently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[postmark]\nservers = [{ name = \"acme\", tokens = [\"acme-tok-1\"] }]\n[heroku]\napps = [{ name = \"a\", config = { POSTMARK_SERVER_TOKEN = \"@postmark:acme\" } }]\n").unwrap();
        let sb = Sandbox::start(Scenario::from_file(&path).unwrap())
            .await
            .unwrap();
        let st = sb.state();
        assert_eq!(
            st["heroku"]["apps"]["a"]["config_vars"]["POSTMARK_SERVER_TOKEN"],
            "acme-tok-1"
        );
        assert_eq!(keys(&st["downstream"]), vec!["a"]);
        let bad = Scenario::default().with_postmark_token("x");
        let mut bad = bad;
        bad.heroku.apps[0]
            .config
            .insert("X".into(), "@postmark:nope".into());
        assert!(matches!(
            Sandbox::start(bad).await,
            Err(SandboxError::Scenario { .. })
        ));
    }
}
