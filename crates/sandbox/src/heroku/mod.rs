//! Heroku simulator: config vars (each change = release + restart), dynos, releases, log
//! sessions whose `logplex_url` points back here and serves plain text.

mod routes;
mod state;

pub(crate) use routes::{error_for_status, router};
pub(crate) use state::HerokuState;
