//! The shared harness (`crates/testkit`): the binary in a temp dir, a separate sandbox
//! process, exit codes by name, the leaked-secret scan and snapshots.

pub use runbook_testkit::*;

// The Postmark world of the canary scenario, as the simulators' state shows it.

use serde_json::Value;

pub fn current_infisical(state: &Value) -> String {
    let v = state["infisical"]["secrets"][0]["versions"]
        .as_array()
        .unwrap();
    v.last().unwrap()["secretValue"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn live_tokens(state: &Value) -> Vec<String> {
    state["postmark"]["servers"][0]["ApiTokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// What must hold at every moment: Infisical's token works; the app never failed to send.
#[track_caller]
pub fn assert_safe(state: &Value, when: &str) {
    assert!(
        live_tokens(state).contains(&current_infisical(state)),
        "{when}: Infisical holds a dead token"
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["downstream"][app]["failed"], 0,
            "{when}: {app} failed to send"
        );
    }
}

/// After a completed rotation: one new token everywhere, the old one gone.
#[track_caller]
pub fn assert_rotated(state: &Value, when: &str) {
    let current = current_infisical(state);
    assert_ne!(
        current, OLD_TOKEN,
        "{when}: Infisical still holds the old token"
    );
    assert!(
        !live_tokens(state).contains(&OLD_TOKEN.to_string()),
        "{when}: old token not revoked"
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"],
            current.as_str(),
            "{when}: {app}"
        );
    }
    assert_safe(state, when);
}
