//! GitHub simulator: Actions secrets (public key, sealed-box PUT decrypted here, list, delete)
//! of repositories, their deployment environments and their organisations, with the
//! precedence a workflow sees (`scopes`), and the REST API's rate limits and pages.

mod routes;
mod scopes;
mod state;

use crate::scenario::Scenario;
use crate::simulator::{env_with_state, state_entry, Routes, Simulator};
use crate::world::World;
use crate::SandboxError;
use serde_json::Value;
pub(crate) use state::GithubState;

pub(crate) struct Github;

impl Simulator for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn install(&self, scenario: &Scenario, world: &mut World) -> Result<(), SandboxError> {
        world.insert_built(|tokens_of| GithubState::from_scenario(&scenario.github, tokens_of))
    }

    fn routes(&self) -> Routes {
        routes::ROUTES
    }

    fn env(&self, url: &str, world: &World) -> Vec<(&'static str, String)> {
        env_with_state(world, "GITHUB_API_URL", url, |st: &GithubState| {
            vec![("GITHUB_TOKEN", st.token.clone())]
        })
    }

    fn state(&self, world: &World) -> Vec<(&'static str, Value)> {
        state_entry(world, "github", GithubState::to_json)
    }
}

/// Test seams.
#[cfg(any(test, feature = "test-api"))]
impl crate::Sandbox {
    /// The GitHub simulator's base URL (`GITHUB_API_URL`).
    pub fn github_url(&self) -> &str {
        self.url(Github.name())
    }
}
