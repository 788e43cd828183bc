//! Infisical simulator: universal-auth login, v3 raw and v4 secret routes, versions kept.

mod approvals;
mod routes;
mod state;

use crate::scenario::Scenario;
use crate::simulator::{env_with_state, state_entry, Routes, Simulator};
use crate::world::World;
use crate::SandboxError;
use serde_json::Value;
pub(crate) use state::InfisicalState;

pub(crate) struct Infisical;

impl Simulator for Infisical {
    fn name(&self) -> &'static str {
        "infisical"
    }

    fn install(&self, scenario: &Scenario, world: &mut World) -> Result<(), SandboxError> {
        world
            .insert_built(|tokens_of| InfisicalState::from_scenario(&scenario.infisical, tokens_of))
    }

    fn routes(&self) -> Routes {
        routes::ROUTES
    }

    /// The "domain" is the URL without `/api`, as `INFISICAL_DOMAIN` takes it.
    fn env(&self, url: &str, world: &World) -> Vec<(&'static str, String)> {
        let mut env = env_with_state(world, "INFISICAL_DOMAIN", url, |st: &InfisicalState| {
            vec![
                ("INFISICAL_TOKEN", st.token.clone()),
                ("INFISICAL_PROJECT_ID", st.project_id.clone()),
            ]
        });
        env.push(("INFISICAL_DISABLE_UPDATE_CHECK", "true".into()));
        env
    }

    fn state(&self, world: &World) -> Vec<(&'static str, Value)> {
        state_entry(world, "infisical", InfisicalState::to_json)
    }
}

/// Test seams.
#[cfg(any(test, feature = "test-api"))]
impl crate::Sandbox {
    /// The Infisical "domain" (without `/api`, as `INFISICAL_DOMAIN` takes it).
    pub fn infisical_url(&self) -> &str {
        self.url(Infisical.name())
    }

    /// The Infisical project id of the scenario.
    pub fn infisical_project_id(&self) -> String {
        self.shared
            .with_state(|i: &mut InfisicalState| i.project_id.clone())
            .unwrap_or_default()
    }

    /// Makes every Infisical access token issued by login expire now.
    pub fn infisical_expire_tokens(&self) {
        self.shared
            .with_state(|i: &mut InfisicalState| i.expire_issued());
    }
}
