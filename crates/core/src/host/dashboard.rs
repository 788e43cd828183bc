//! What a person does at a vendor's dashboard, done by a simulator in a rehearsal. The
//! engine knows only this trait; the sandbox knows its own control routes, and the binary
//! connects the two (a production run has no `Dashboard`: its operator is the dashboard).

use std::future::Future;
use std::pin::Pin;

/// A dashboard call's answer; the error is the simulator's message.
pub type DashboardFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

pub trait Dashboard {
    /// Generates a Postmark server token labelled `label` on `server`: the token.
    fn postmark_new_token(&self, server: &str, label: &str) -> DashboardFuture<String>;
    /// Deletes a Postmark server token.
    fn postmark_delete_token(&self, server: &str, token: &str) -> DashboardFuture<()>;
    /// The newest token of a Postmark server (the one an earlier attempt generated).
    fn postmark_newest_token(&self, server: &str) -> DashboardFuture<Option<String>>;
    /// How the operator merges an Infisical change request in this rehearsal, if they can.
    fn change_request_hint(&self, request_id: &str) -> Option<String>;
    /// The vendors' transport, once built: a dashboard that sends requests may use it rather
    /// than build a client of its own (which reads every TLS root again).
    fn share_transport(&self, _transport: &runbook_vendors::Transport) {}
}
