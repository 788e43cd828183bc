//! What tests inspect and inject in a running sandbox (the `test-api` feature): none of it
//! is needed to run a runbook.

use super::Sandbox;
use crate::faults::FaultRule;
use crate::github::GithubState;
use crate::heroku::HerokuState;
use crate::http::RequestRecord;
use crate::infisical::InfisicalState;
use std::time::Duration;

/// The credentials the simulators accept (sandbox data, not real secrets).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub heroku_api_key: String,
    pub infisical_token: String,
    pub infisical_client_id: String,
    pub infisical_client_secret: String,
    pub github_token: String,
}

impl Sandbox {
    /// The credentials the simulators accept.
    pub fn credentials(&self) -> Credentials {
        self.shared.with_world(|w| {
            let infisical = w.get::<InfisicalState>();
            let infisical = |f: fn(&InfisicalState) -> &String| {
                infisical.map(|i| f(i).clone()).unwrap_or_default()
            };
            Credentials {
                heroku_api_key: w
                    .get::<HerokuState>()
                    .map(|h| h.api_key.clone())
                    .unwrap_or_default(),
                infisical_token: infisical(|i| &i.token),
                infisical_client_id: infisical(|i| &i.client_id),
                infisical_client_secret: infisical(|i| &i.client_secret),
                github_token: w
                    .get::<GithubState>()
                    .map(|g| g.token.clone())
                    .unwrap_or_default(),
            }
        })
    }

    /// Adds a fault rule while running.
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.with_world(|w| w.requests.clone())
    }

    /// How many requests matched `vendor`, `method` and exact `path`.
    pub fn count_requests(&self, vendor: &str, method: &str, path: &str) -> usize {
        self.shared.with_world(|w| {
            w.requests
                .iter()
                .filter(|r| r.vendor == vendor && r.method == method && r.path == path)
                .count()
        })
    }

    /// Stops every simulator and waits (briefly) for them to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
