//! Postmark simulator: `GET/PUT /server`, `POST /email`, `POST /email/batch`, the outbound
//! message and bounce APIs (mail is processed asynchronously, `delivery_ms` after the send;
//! hard bounces suppress their recipient), the dashboard. It is the world's mail service.

mod dashboard;
mod messages;
mod routes;
mod state;
#[cfg(test)]
pub(crate) use state::COLORS;

use crate::scenario::Scenario;
use crate::simulator::{state_entry, Routes, Simulator};
use crate::world::World;
use crate::{Sandbox, SandboxError};
use serde_json::Value;
use state::PostmarkState;

pub(crate) struct Postmark;

impl Simulator for Postmark {
    fn name(&self) -> &'static str {
        "postmark"
    }

    fn install(&self, scenario: &Scenario, world: &mut World) -> Result<(), SandboxError> {
        world.insert(PostmarkState::from_scenario(&scenario.postmark)?);
        world.provide_mail::<PostmarkState>();
        Ok(())
    }

    fn routes(&self) -> Routes {
        routes::ROUTES
    }

    fn env(&self, url: &str, _: &World) -> Vec<(&'static str, String)> {
        // Where rehearsals send their validation emails: the simulator accepts any address,
        // and this one (a reserved .invalid domain) can never be a person's.
        vec![
            ("POSTMARK_API_URL", url.to_string()),
            // The operator's dashboard instructions point here, not at Postmark's.
            ("POSTMARK_DASHBOARD_URL", format!("{url}/dashboard")),
            (
                "POSTMARK_TEST_RECIPIENT",
                "rehearsal@sandbox.invalid".to_string(),
            ),
        ]
    }

    fn state(&self, world: &World) -> Vec<(&'static str, Value)> {
        state_entry(world, "postmark", PostmarkState::to_json)
    }
}

impl Sandbox {
    /// The Postmark simulator's base URL; it also serves the dashboard and the `/_sandbox/`
    /// control routes.
    pub fn postmark_url(&self) -> &str {
        self.url(Postmark.name())
    }
}

/// Test seams: what a person would do at the dashboard, and what they would see there.
#[cfg(any(test, feature = "test-api"))]
impl Sandbox {
    /// Dashboard "Generate token" on server `server_name`; fails at the token limit.
    pub fn dashboard_generate_token(&self, server_name: &str) -> Result<String, SandboxError> {
        self.shared
            .with_state(|p: &mut PostmarkState| p.generate_token(server_name, None))
            .unwrap_or_else(|| Err(unknown_server(server_name)))
    }

    /// Dashboard "Delete" of one token of `server_name`.
    pub fn dashboard_delete_token(
        &self,
        server_name: &str,
        token: &str,
    ) -> Result<(), SandboxError> {
        self.shared
            .with_state(|p: &mut PostmarkState| p.delete_token(server_name, token))
            .unwrap_or_else(|| Err(unknown_server(server_name)))
    }

    /// The current tokens of a Postmark server.
    pub fn postmark_tokens(&self, server_name: &str) -> Option<Vec<String>> {
        self.shared.with_world(|w| w.server_tokens(server_name))
    }
}

#[cfg(any(test, feature = "test-api"))]
fn unknown_server(name: &str) -> SandboxError {
    SandboxError::UnknownServer { name: name.into() }
}

/// A sandbox whose Postmark server `raxx-prod` (ID 4242) holds one known token.
#[cfg(test)]
async fn sandbox() -> crate::Sandbox {
    crate::Sandbox::start(crate::Scenario::default().with_postmark_token("pmsim-0001"))
        .await
        .unwrap()
}
