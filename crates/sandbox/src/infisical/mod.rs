//! Infisical simulator: universal-auth login, v3 raw and v4 secret routes, versions kept.

mod routes;
mod state;

pub(crate) use routes::{error_for_status, router};
pub(crate) use state::InfisicalState;
