//! A running sandbox: every simulator built from one scenario and served on 127.0.0.1.

#[cfg(any(test, feature = "test-api"))]
mod test_api;

#[cfg(any(test, feature = "test-api"))]
pub use test_api::Credentials;

use crate::faults::{FaultRule, FaultSet};
use crate::http::{self, ErrorAnswer};
use crate::scenario::Scenario;
use crate::scripted::{self, ScriptedState};
use crate::shared::Shared;
use crate::simulator::{self, BUILT_IN};
use crate::world::World;
use crate::SandboxError;
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The base URLs of the simulators, `http://127.0.0.1:PORT`.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    /// Built-in simulators by name, in the order they start.
    built_in: Vec<(&'static str, String)>,
    /// Scripted vendors by name.
    pub scripted: BTreeMap<String, String>,
}

impl Urls {
    /// The base URL of the built-in simulator or scripted vendor named `vendor`.
    pub fn get(&self, vendor: &str) -> Option<&str> {
        self.built_in
            .iter()
            .find(|(name, _)| *name == vendor)
            .map(|(_, url)| url.as_str())
            .or_else(|| self.scripted.get(vendor).map(String::as_str))
    }

    /// `(name, url)` of every built-in simulator, in the order they start.
    pub fn built_in(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.built_in
            .iter()
            .map(|(name, url)| (*name, url.as_str()))
    }
}

/// A running sandbox; stops its simulators on drop or `shutdown`.
pub struct Sandbox {
    pub(crate) shared: Arc<Shared>,
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
        for sim in BUILT_IN {
            sim.install(&scenario, &mut world)?;
        }
        let scripted = ScriptedState::from_scenario(&scenario.scripted)
            .map_err(|message| SandboxError::Scenario { message })?;
        let scripted_names = scripted.names();
        check_fault_vendors(&scenario.faults, &scripted_names)?;
        world.insert(scripted);
        let (stop, stop_rx) = watch::channel(false);
        let faults = FaultSet::new(scenario.faults.clone());
        let mut sandbox = Sandbox {
            shared: Arc::new(Shared::new(world, faults, stop_rx)),
            stop,
            tasks: Vec::new(),
            urls: Urls::default(),
        };
        for &sim in BUILT_IN {
            let routes = sim.routes();
            let router = routes.router(sandbox.shared.clone());
            let error: ErrorAnswer = Arc::new(move |status, wait| routes.error(status, wait));
            let shared = sandbox.shared.clone();
            let outer = move |r: Router| routes.outer(r, shared);
            let url = sandbox.serve(sim.name(), router, error, outer).await?;
            sandbox.urls.built_in.push((sim.name(), url));
        }
        for (index, name) in scripted_names.into_iter().enumerate() {
            let hosts = sandbox
                .shared
                .with_world(|w| w.get::<ScriptedState>().map(|s| s.hosts(index)))
                .unwrap_or_default();
            // The main host, then each extra one: one vendor (faults, the request log) on
            // several ports, sharing its collections.
            for host in std::iter::once(None).chain(hosts.into_iter().map(Some)) {
                let router = scripted::router(sandbox.shared.clone(), index, host.clone());
                let url = sandbox
                    .serve(
                        name,
                        router,
                        Arc::new(|status, wait| {
                            http::error_answer(scripted::error_for_status, status, wait)
                        }),
                        |r| r,
                    )
                    .await?;
                let key = match &host {
                    Some(h) => format!("{name}.{h}"),
                    None => name.to_string(),
                };
                sandbox.urls.scripted.insert(key, url);
            }
        }
        let _ = sandbox.shared.urls.set(sandbox.urls.clone());
        Ok(sandbox)
    }

    /// Serves `router` as `vendor` on a port of its own; its base URL.
    async fn serve(
        &mut self,
        vendor: &'static str,
        router: Router,
        error: ErrorAnswer,
        outer: impl FnOnce(Router) -> Router,
    ) -> Result<String, SandboxError> {
        let (addr, task) = http::serve(vendor, router, error, self.shared.clone(), outer)
            .await
            .map_err(|source| SandboxError::Bind { vendor, source })?;
        self.tasks.push(task);
        Ok(format!("http://{addr}"))
    }

    /// Where each simulator listens.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The base URL of `vendor`, empty when there is no such simulator.
    pub(crate) fn url(&self, vendor: &str) -> &str {
        self.urls.get(vendor).unwrap_or_default()
    }

    /// Environment variables that point the vendors' own CLIs and `VendorConfig::from_env`
    /// at the simulators.
    pub fn env(&self) -> Vec<(String, String)> {
        self.shared.with_world(|w| {
            let mut env: Vec<(String, String)> = BUILT_IN
                .iter()
                .flat_map(|sim| sim.env(self.url(sim.name()), w))
                .map(|(name, value)| (name.to_string(), value))
                .collect();
            if let Some(scripted) = w.get::<ScriptedState>() {
                env.extend(scripted.env(&self.urls.scripted));
            }
            env
        })
    }

    /// The final state, for tests and `--sandbox-state FILE`.
    pub fn state(&self) -> serde_json::Value {
        self.shared.state()
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

/// A fault must name a simulator of this sandbox: a built-in one or a scripted vendor.
fn check_fault_vendors(
    faults: &[FaultRule],
    scripted: &[&'static str],
) -> Result<(), SandboxError> {
    let vendors: Vec<&str> = simulator::names().chain(scripted.iter().copied()).collect();
    match faults
        .iter()
        .find(|f| !vendors.contains(&f.vendor.as_str()))
    {
        Some(f) => Err(SandboxError::Scenario {
            message: format!(
                "fault for unknown vendor '{}' (simulated vendors: {})",
                f.vendor,
                vendors.join(", ")
            ),
        }),
        None => Ok(()),
    }
}
