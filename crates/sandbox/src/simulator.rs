//! What a built-in simulator is to the sandbox, and the one list of them.

use crate::github::Github;
use crate::heroku::Heroku;
use crate::infisical::Infisical;
use crate::postmark::Postmark;
use crate::raptor::Raptor;
use crate::scenario::Scenario;
use crate::shared::Shared;
use crate::world::World;
use crate::SandboxError;
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use std::any::Any;
use std::sync::Arc;

/// A simulated vendor (or app) served on its own port; its state lives in the world.
pub(crate) trait Simulator: Sync {
    /// Its name in fault rules, the request log and `runbook sandbox`'s list.
    fn name(&self) -> &'static str;

    /// Builds its state from the scenario into the world, with the services it provides and
    /// the events it listens to.
    fn install(&self, scenario: &Scenario, world: &mut World) -> Result<(), SandboxError>;

    /// Its routes, over the shared world.
    fn router(&self, shared: Arc<Shared>) -> Router;

    /// The vendor's own error answer for a bare status (what a fault answers with).
    fn error_for_status(&self, status: u16) -> Response;

    /// Its refusal asking for a wait of `secs` (a fault's `retry_after`): by default the
    /// error answer with a `Retry-After` header; a vendor that says it otherwise overrides.
    fn error_with_wait(&self, status: u16, secs: u64) -> Response {
        crate::http::with_retry_after(self.error_for_status(status), secs)
    }

    /// Layers that see every answer, injected faults included (a rate-limit pool that
    /// counts every request and stamps every response). None by default.
    fn outer(&self, router: Router, _shared: Arc<Shared>) -> Router {
        router
    }

    /// The variables that point clients at it, given its base URL.
    fn env(&self, url: &str, world: &World) -> Vec<(&'static str, String)>;

    /// Its entries in the sandbox's state (`--sandbox-state`).
    fn state(&self, world: &World) -> Vec<(&'static str, Value)>;
}

/// Every built-in simulator, in the order they install, serve and report. Each may use what
/// an earlier one provides: Postmark's tokens fill the others' placeholders, Raptor runs on
/// Heroku's apps. Adding a simulator is writing its folder and adding it here.
pub(crate) const BUILT_IN: &[&dyn Simulator] = &[&Postmark, &Infisical, &Heroku, &Github, &Raptor];

/// The names of the built-in simulators, in order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|s| s.name())
}

/// A simulator's entry in the sandbox's state: its state `T` as `to_json` renders it, under
/// `key`; none when it installed no state.
pub(crate) fn state_entry<T: Any>(
    world: &World,
    key: &'static str,
    to_json: fn(&T) -> Value,
) -> Vec<(&'static str, Value)> {
    world
        .get::<T>()
        .map(|s| vec![(key, to_json(s))])
        .unwrap_or_default()
}
