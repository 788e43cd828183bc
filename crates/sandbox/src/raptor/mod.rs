//! Raptor, the downstream app: one instance per app on the platform that holds the Postmark
//! token. It reads the token from its config only when (re)started, like a real process, and
//! sends mail through the mail service. Every request any simulator serves also makes every
//! instance send one background email, so "production never failed to send" is measurable.

mod routes;
mod state;

use crate::scenario::Scenario;
use crate::simulator::{Routes, Simulator};
use crate::world::World;
use crate::SandboxError;
use serde_json::{json, Value};
use state::RaptorState;

pub(crate) struct Raptor;

impl Simulator for Raptor {
    fn name(&self) -> &'static str {
        "raptor"
    }

    fn install(&self, _: &Scenario, world: &mut World) -> Result<(), SandboxError> {
        world.insert(RaptorState::from_platform(world.platform()));
        world.subscribe(state::on_event);
        Ok(())
    }

    fn routes(&self) -> Routes {
        routes::ROUTES
    }

    fn env(&self, url: &str, _: &World) -> Vec<(&'static str, String)> {
        vec![("RAPTOR_API_URL", url.to_string())]
    }

    /// Reported as the downstream app, with its 401s summed (what a rotation must keep at 0).
    fn state(&self, world: &World) -> Vec<(&'static str, Value)> {
        world
            .get::<RaptorState>()
            .map(|s| {
                vec![
                    ("downstream", s.to_json()),
                    ("downstream_401s", json!(s.total_401s())),
                ]
            })
            .unwrap_or_default()
    }
}

/// Test seams.
#[cfg(any(test, feature = "test-api"))]
impl crate::Sandbox {
    /// The downstream app's base URL (`RAPTOR_API_URL`).
    pub fn raptor_url(&self) -> &str {
        self.url(Raptor.name())
    }
}
