//! Postmark simulator: `GET/PUT /server`, `POST /email`, `POST /email/batch`, the dashboard.

mod dashboard;
mod routes;
mod state;

pub(crate) use routes::{error_for_status, router};
pub(crate) use state::PostmarkState;

/// A sandbox whose Postmark server `raxx-prod` (ID 4242) holds one known token.
#[cfg(test)]
async fn sandbox() -> crate::Sandbox {
    crate::Sandbox::start(crate::Scenario::default().with_postmark_token("pmsim-0001"))
        .await
        .unwrap()
}
