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

    /// What it serves (its `routes` module says).
    fn routes(&self) -> Routes;

    /// The variables that point clients at it, given its base URL.
    fn env(&self, url: &str, world: &World) -> Vec<(&'static str, String)>;

    /// Its entries in the sandbox's state (`--sandbox-state`).
    fn state(&self, world: &World) -> Vec<(&'static str, Value)>;
}

/// What a simulator serves: its routes, the vendor's error answers (what a fault answers
/// with) and, around both, the layer that sees every answer.
#[derive(Clone, Copy)]
pub(crate) struct Routes {
    /// Its routes, over the shared world.
    router: fn(Arc<Shared>) -> Router,
    /// The vendor's own error answer for a bare status.
    error_for_status: fn(u16) -> Response,
    /// Its refusal asking for a wait of so many seconds (a fault's `retry_after`), for a
    /// vendor that says it otherwise than with a `Retry-After` header on its error answer.
    error_with_wait: Option<fn(u16, u64) -> Response>,
    /// A layer outside the faults (a rate-limit pool that counts every request and stamps
    /// every response).
    outer: Option<fn(Router, Arc<Shared>) -> Router>,
}

impl Routes {
    /// `router`'s routes, with `error_for_status` for a fault's answers.
    pub(crate) const fn new(
        router: fn(Arc<Shared>) -> Router,
        error_for_status: fn(u16) -> Response,
    ) -> Routes {
        Routes {
            router,
            error_for_status,
            error_with_wait: None,
            outer: None,
        }
    }

    /// The same, asking for a wait with `error_with_wait`.
    pub(crate) const fn waits_with(self, error_with_wait: fn(u16, u64) -> Response) -> Routes {
        Routes {
            error_with_wait: Some(error_with_wait),
            ..self
        }
    }

    /// The same, inside `outer`.
    pub(crate) const fn inside(self, outer: fn(Router, Arc<Shared>) -> Router) -> Routes {
        Routes {
            outer: Some(outer),
            ..self
        }
    }

    /// The routes over the shared world.
    pub(crate) fn router(&self, shared: Arc<Shared>) -> Router {
        (self.router)(shared)
    }

    /// The error answer for `status`, asking for a wait of `wait` seconds when given.
    pub(crate) fn error(&self, status: u16, wait: Option<u64>) -> Response {
        match (wait, self.error_with_wait) {
            (Some(secs), Some(answer)) => answer(status, secs),
            _ => crate::http::error_answer(self.error_for_status, status, wait),
        }
    }

    /// `router` inside the outer layer, if there is one.
    pub(crate) fn outer(&self, router: Router, shared: Arc<Shared>) -> Router {
        match self.outer {
            Some(outer) => outer(router, shared),
            None => router,
        }
    }
}

/// Every built-in simulator, in the order they install, serve and report. Each may use what
/// an earlier one provides: Postmark's tokens fill the others' placeholders, Raptor runs on
/// Heroku's apps. Adding a simulator is writing its folder and adding it here.
pub(crate) const BUILT_IN: &[&dyn Simulator] = &[&Postmark, &Infisical, &Heroku, &Github, &Raptor];

/// The names of the built-in simulators, in order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|s| s.name())
}

/// A simulator's variables: its base URL `url` as `url_var`, then the ones `credentials`
/// reads from its state `T`, which are none when it installed no state.
pub(crate) fn env_with_state<T: Any>(
    world: &World,
    url_var: &'static str,
    url: &str,
    credentials: impl FnOnce(&T) -> Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![(url_var, url.to_string())];
    env.extend(world.get::<T>().map(credentials).unwrap_or_default());
    env
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
