//! runbooks/twilio-auth-token.rhai: the secondary-token rotation (std/rotation, overlap,
//! promote as the revoke) against its shipped scenario, a simulated Twilio on two hosts with
//! HTTP Basic auth: rehearsed, killed at every step boundary and resumed, rolled back before
//! the promotion (the secondary deleted) and refused a rollback after it.

use crate::support::{
    app_var, assert_dry_run_plans, assert_none_leaked, concurrently, crash_then_resume,
    current_secret, items, rehearse_shipped, root, scripted, secret_versions, step_ids, Exit, Rig,
    Test,
};
use serde_json::Value;

const RUNBOOK: &str = "twilio-auth-token";
const CURRENT: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const PREVIOUS: &str = "5a0d1b2c3e4f5a6b7c8d9e0f1a2b3c4d";
const VAR: &str = "TWILIO_AUTH_TOKEN";
const STEPS: [&str; 8] = [
    "precheck",
    "create_secondary",
    "validate",
    "store",
    "propagate",
    "verify",
    "promote",
    "audit",
];

fn scenario() -> std::path::PathBuf {
    root().join("runbooks/sandbox/twilio-auth-token.toml")
}

/// The account's tokens at Twilio: (slot, token).
fn tokens(state: &Value) -> Vec<(String, String)> {
    scripted(state, "twilio", "auth_tokens")
        .iter()
        .map(|t| {
            let s = |f: &str| t[f].as_str().unwrap().to_string();
            (s("slot"), s("token"))
        })
        .collect()
}

/// The Twilio requests of `method` on `path`, each as its status.
fn answered(state: &Value, method: &str, path: &str) -> Vec<u64> {
    items(&state["requests"])
        .iter()
        .filter(|r| {
            r["vendor"].as_str().unwrap_or("").starts_with("twilio")
                && r["method"] == method
                && r["path"] == path
        })
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

/// Infisical and both apps hold `token`.
#[track_caller]
fn assert_everywhere(state: &Value, token: &str, when: &str) {
    assert_eq!(current_secret(state, VAR), token, "{when}: Infisical");
    for app in ["raxx-api-prod", "raxx-worker"] {
        assert_eq!(app_var(state, app, VAR), token, "{when}: {app}");
    }
}

/// After a completed rotation: the secondary is the primary, the old one gone, everywhere.
#[track_caller]
fn assert_promoted(state: &Value, when: &str) -> String {
    let held = tokens(state);
    assert_eq!(held.len(), 1, "{when}: one token, no secondary: {held:?}");
    let (slot, token) = &held[0];
    assert_eq!(slot, "primary", "{when}");
    assert!(token != CURRENT && token.len() == 32, "{when}: {token}");
    assert_everywhere(state, token, when);
    token.clone()
}

#[test]
fn the_secondary_token_is_propagated_then_promoted_and_the_old_one_refused() {
    let out = rehearse_shipped(RUNBOOK, &["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let token = assert_promoted(&state, "after the rotation");
    assert_eq!(
        secret_versions(&state, VAR),
        [PREVIOUS, CURRENT, token.as_str()]
    );
    assert_eq!(answered(&state, "POST", "/v1/AuthTokens/Secondary"), [201]);
    assert_eq!(answered(&state, "POST", "/v1/AuthTokens/Promote"), [200]);
    // Both tokens worked until the promotion; then the old one was refused.
    let account = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef.json";
    assert_eq!(answered(&state, "GET", account), [200, 200, 200, 200, 401]);
    assert_eq!(step_ids(&out.report()), STEPS);
    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0]["context"]["account_sid"],
        "AC0123456789abcdef0123456789abcdef"
    );
    assert_none_leaked(&out, &[CURRENT, PREVIOUS, &token]);
}

/// Killed (SIGKILL) after each step, the run resumes to the promoted token everywhere: one
/// secondary created, one promotion, nothing on disk holding a token. Killed inside the
/// promotion (applied, its answer never journalled), the resumed step finds no secondary
/// left (404) and proves the promotion happened instead of failing.
#[test]
fn a_crash_at_every_step_boundary_resumes_to_the_promoted_token() {
    let mut points: Vec<String> = STEPS.iter().map(|s| format!("after:{s}")).collect();
    points.push("inside:promote".into());
    concurrently(&points, |point| {
        let rig = Rig::with_scenario(&scenario());
        let (crashed, resumed) = crash_then_resume(&rig, RUNBOOK, point);
        let state = rig.state();
        let token = assert_promoted(&state, point);
        assert_eq!(
            answered(&state, "POST", "/v1/AuthTokens/Secondary"),
            [201],
            "{point}"
        );
        let promotions: &[u64] = if point == "inside:promote" {
            &[200, 404]
        } else {
            &[200]
        };
        assert_eq!(
            answered(&state, "POST", "/v1/AuthTokens/Promote"),
            promotions,
            "{point}"
        );
        for out in [&crashed, &resumed] {
            assert_none_leaked(out, &[CURRENT, &token]);
        }
    });
}

/// Rolled back before the promotion, the old token is the primary and back everywhere, and
/// the secondary is deleted. After the promotion, rollback is refused.
#[test]
fn rollback_deletes_the_secondary_until_it_is_promoted() {
    concurrently(&["after:verify", "after:promote"], |point| {
        let rig = Rig::with_scenario(&scenario());
        rig.crash(RUNBOOK, point);
        let rolled_back = rig.rollback(&[]);
        let state = rig.state();
        if *point == "after:promote" {
            rolled_back
                .exit(Exit::StepFailed)
                .stderr_has("cannot roll back past step 'promote'");
            assert_promoted(&state, point);
        } else {
            rolled_back.exit(Exit::Ok);
            assert_eq!(
                tokens(&state),
                [("primary".to_string(), CURRENT.to_string())],
                "{point}: the secondary is deleted, the primary untouched"
            );
            assert_everywhere(&state, CURRENT, point);
            assert_eq!(
                answered(&state, "DELETE", "/v1/AuthTokens/Secondary"),
                [204]
            );
        }
        assert_none_leaked(&rolled_back, &[CURRENT]);
    });
}

/// After a crash, the run's secondary token was deleted in the Console and a colleague made
/// another: the rollback deleted the account's secondary, the colleague's, and said
/// nothing (way-back review). It deletes only the one this run created, which it tells by
/// whether that token still authenticates.
#[test]
fn rollback_leaves_a_secondary_token_someone_else_made() {
    let rig = Rig::with_scenario(&scenario());
    rig.crash(RUNBOOK, "after:verify");
    let url = rig.sandbox.env["TWILIO_ACCOUNTS_API_URL"].clone();
    let basic = {
        use base64::Engine as _;
        let pair = format!("AC0123456789abcdef0123456789abcdef:{CURRENT}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let auth = [("Authorization", basic.as_str())];
    for method in ["DELETE", "POST"] {
        let (status, body) =
            crate::support::http(&url, method, "/v1/AuthTokens/Secondary", &auth, "");
        assert!((200..300).contains(&status), "{method}: {status} {body}");
    }
    let theirs = tokens(&rig.state())
        .into_iter()
        .find(|(slot, _)| slot == "secondary")
        .expect("the colleague's secondary");
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok)
        .stdout_has("the secondary Auth Token this run created no longer authenticates (deleted, or replaced by another): the account's secondary is left alone");
    let state = rig.state();
    assert_eq!(
        tokens(&state),
        [("primary".to_string(), CURRENT.to_string()), theirs],
        "the colleague's secondary stays"
    );
    assert_everywhere(&state, CURRENT, "after the rollback");
}

/// Under --dry-run every read is real and no write is sent: the run ends (a check that needs
/// a skipped write is reported, not waited on) and plans exactly the writes of a rotation.
#[test]
fn the_dry_run_plans_every_write_and_changes_nothing() {
    let out = assert_dry_run_plans(
        RUNBOOK,
        &[
            "create_secondary http::post",
            "create_secondary infisical::set_secret",
            "store infisical::set_secret",
            "propagate heroku::set_config",
            "promote http::post",
            "audit audit::log",
        ],
    );
    assert_none_leaked(&out, &[CURRENT]);
}

#[test]
fn the_twilio_runbook_passes_check() {
    Test::new()
        .args(&["check"])
        .arg(root().join("runbooks/twilio-auth-token.rhai"))
        .run()
        .exit(Exit::Ok)
        .stdout_has("ok  ");
}
