//! GitHub simulator: Actions secrets (public key, sealed-box PUT decrypted here, list, delete).

mod routes;
mod state;

pub(crate) use routes::{error_for_status, router};
pub(crate) use state::GithubState;
