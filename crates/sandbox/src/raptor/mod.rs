//! Raptor, the downstream app: one instance per app on the platform that holds the Postmark
//! token. It reads the token from its config only when (re)started, like a real process, and
//! sends mail through the mail service. Every request any simulator serves also makes every
//! instance send one background email, so "production never failed to send" is measurable.

mod routes;
mod state;

pub(crate) use routes::{error_for_status, router};
pub(crate) use state::{on_event, RaptorState};
