//! Heroku simulator: config vars (each change = release + restart), dynos, releases, log
//! sessions whose `logplex_url` points back here and serves plain text. It is the platform
//! the world's apps run on, and announces their restarts.

mod routes;
mod state;

use crate::scenario::Scenario;
use crate::simulator::{env_with_state, state_entry, Routes, Simulator};
use crate::world::World;
use crate::SandboxError;
use serde_json::Value;
pub(crate) use state::HerokuState;

pub(crate) struct Heroku;

impl Simulator for Heroku {
    fn name(&self) -> &'static str {
        "heroku"
    }

    fn install(&self, scenario: &Scenario, world: &mut World) -> Result<(), SandboxError> {
        world.insert_built(|tokens_of| HerokuState::from_scenario(&scenario.heroku, tokens_of))?;
        world.provide_platform::<HerokuState>();
        world.subscribe(state::on_event);
        Ok(())
    }

    fn routes(&self) -> Routes {
        routes::ROUTES
    }

    fn env(&self, url: &str, world: &World) -> Vec<(&'static str, String)> {
        env_with_state(world, "HEROKU_HOST", url, |st: &HerokuState| {
            vec![
                ("HEROKU_API_KEY", st.api_key.clone()),
                // The pool's refill rate, which Heroku documents and the engine paces by: the
                // rehearsal's pool (a scenario may scale it) is the one to pace by here.
                (
                    "RUNBOOK_HEROKU_REFILL_PER_MINUTE",
                    format!("{}", st.pool.per_minute()),
                ),
                // How long its preboot apps' old dynos keep the traffic, which the engine
                // waits out: a scenario compresses it, and only the scenario knows by how much.
                (
                    "RUNBOOK_HEROKU_PREBOOT_WINDOW",
                    st.preboot_window_secs().to_string(),
                ),
            ]
        })
    }

    fn state(&self, world: &World) -> Vec<(&'static str, Value)> {
        state_entry(world, "heroku", HerokuState::to_json)
    }
}

/// Test seams.
#[cfg(any(test, feature = "test-api"))]
impl crate::Sandbox {
    /// The Heroku simulator's base URL (`HEROKU_HOST`).
    pub fn heroku_url(&self) -> &str {
        self.url(Heroku.name())
    }

    /// Sets an app's config var without the restart Heroku would do (to show that the
    /// downstream app reads its token only at a restart).
    pub fn set_config_without_restart(&self, app: &str, key: &str, value: &str) {
        self.shared
            .with_state(|h: &mut HerokuState| h.set_config_without_restart(app, key, value));
    }
}
