//! Test helpers: clients aimed at a sandbox, configured the way an operator's shell would be
//! (from the environment `runbook sandbox` exports), with short timeouts and fast backoff.

use crate::config::InfisicalAuth;
use crate::{VendorConfig, Vendors};
use runbook_sandbox::{Sandbox, Scenario};
use runbook_secret::{Secret, Source};
use std::time::Duration;

/// A sandbox and clients aimed at it.
pub(crate) async fn start(scenario: Scenario) -> (Sandbox, Vendors) {
    start_with(scenario, |_, _| {}).await
}

/// The same, the clients' configuration changed by `adjust` first (a wrong credential, a
/// shorter timeout).
pub(crate) async fn start_with(
    scenario: Scenario,
    adjust: impl FnOnce(&Sandbox, &mut VendorConfig),
) -> (Sandbox, Vendors) {
    let sb = Sandbox::start(scenario).await.expect("sandbox starts");
    let mut config = fast(config(&sb));
    adjust(&sb, &mut config);
    let v = Vendors::new(config).expect("clients build");
    (sb, v)
}

/// The configuration `VendorConfig::from_env` reads from the sandbox's exports.
pub(crate) fn config(sb: &Sandbox) -> VendorConfig {
    let env = sb.env();
    VendorConfig::from_env(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("the sandbox exports a valid configuration")
}

/// Logging in to Infisical with the sandbox's universal-auth identity, instead of a fixed
/// token.
pub(crate) fn universal_auth(sb: &Sandbox) -> InfisicalAuth {
    let c = sb.credentials();
    InfisicalAuth::UniversalAuth {
        client_id: c.infisical_client_id.clone(),
        client_secret: Secret::new(
            c.infisical_client_secret.clone(),
            Source::Env {
                name: "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET".into(),
            },
        ),
    }
}

pub(crate) fn fast(mut c: VendorConfig) -> VendorConfig {
    c.transport.timeout = Duration::from_secs(5);
    c.transport.base_delay = Duration::from_millis(1);
    c.transport.max_delay = Duration::from_secs(3);
    c
}

pub(crate) use runbook_sandbox::testing::{keys, sorted};

/// A plain client for requests the typed clients would not make.
pub(crate) fn raw() -> reqwest::Client {
    runbook_sandbox::testing::client().expect("client")
}
