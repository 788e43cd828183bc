//! runbooks/cloudflare-api-token.rhai: a roll without overlap (std/rotation's no_overlap
//! shape) against its shipped scenario, a simulated Cloudflare whose roll kills the old value
//! at once: rehearsed, killed at every step boundary and resumed, rolled back before the roll
//! and refused a rollback after it.

use crate::support::{
    app_var, assert_dry_run_plans, assert_none_leaked, concurrently, crash_then_resume,
    current_secret, rehearse_shipped, root, scripted, secret_versions, step_ids, vendor_requests,
    Exit, Rig, Test,
};
use serde_json::Value;

const RUNBOOK: &str = "cloudflare-api-token";
const CURRENT: &str = "cfut_sandboxCurrentToken0000000000000000000000";
const PREVIOUS: &str = "cfut_sandboxPreviousToken000000000000000000000";
const ADMIN: &str = "cfut_sandboxAdminToken000000000000000000000000";
const VAR: &str = "CLOUDFLARE_API_TOKEN";
const STEPS: [&str; 6] = [
    "precheck",
    "roll",
    "validate",
    "propagate",
    "verify",
    "audit",
];

fn scenario() -> std::path::PathBuf {
    root().join("runbooks/sandbox/cloudflare-api-token.toml")
}

/// The rolled token's value at Cloudflare (the value that authenticates as it).
fn live(state: &Value) -> String {
    let tokens = scripted(state, "cloudflare", "tokens");
    assert_eq!(
        tokens[1]["value"], ADMIN,
        "the key-management token is untouched"
    );
    tokens[0]["value"].as_str().unwrap().to_string()
}

/// Cloudflare, Infisical, both apps and the repository hold `value`.
#[track_caller]
fn assert_everywhere(state: &Value, value: &str, when: &str) {
    assert_eq!(live(state), value, "{when}: Cloudflare");
    assert_eq!(current_secret(state, VAR), value, "{when}: Infisical");
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(app_var(state, app, VAR), value, "{when}: {app}");
    }
    assert_eq!(
        state["github"]["repos"]["raxx/infra"]["secrets"][VAR], value,
        "{when}: GitHub"
    );
}

/// How many times the token was rolled.
fn rolls(state: &Value) -> usize {
    vendor_requests(state, "cloudflare")
        .iter()
        .filter(|(m, _, _)| m == "PUT")
        .count()
}

#[test]
fn the_token_is_rolled_stored_and_propagated_and_the_old_value_is_refused() {
    let out = rehearse_shipped(RUNBOOK, &["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let token = live(&state);
    assert!(token.starts_with("cfut_") && token != CURRENT, "{token}");
    assert_everywhere(&state, &token, "after the roll");
    assert_eq!(
        secret_versions(&state, VAR),
        [PREVIOUS, CURRENT, token.as_str()]
    );
    // The run proved the old value dead: its last verify was refused.
    let verifies: Vec<u64> = vendor_requests(&state, "cloudflare")
        .into_iter()
        .filter(|(_, path, _)| path == "/client/v4/user/tokens/verify")
        .map(|(_, _, status)| status)
        .collect();
    assert_eq!(verifies, [200, 200, 200, 401]);
    assert_eq!(rolls(&state), 1);
    assert_eq!(step_ids(&out.report()), STEPS);
    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["context"]["method"], "cloudflare-roll");
    assert_eq!(
        done[0]["context"]["token_id"],
        "5f8c2e1a9b7d4c3e8a6f0b1d2c3e4f5a"
    );
    assert_none_leaked(&out, &[CURRENT, PREVIOUS, ADMIN, &token]);
}

/// Killed (SIGKILL) after each step, the run resumes to the one rolled token everywhere: the
/// roll is never repeated, and nothing on disk holds a token.
#[test]
fn a_crash_at_every_step_boundary_resumes_to_the_rolled_token() {
    concurrently(&STEPS, |step| {
        let point = format!("after:{step}");
        let rig = Rig::with_scenario(&scenario());
        let (crashed, resumed) = crash_then_resume(&rig, RUNBOOK, &point);
        let state = rig.state();
        let token = live(&state);
        assert_ne!(token, CURRENT, "{point}");
        assert_everywhere(&state, &token, &point);
        assert_eq!(rolls(&state), 1, "{point}: rolled once");
        for out in [&crashed, &resumed] {
            assert_none_leaked(out, &[CURRENT, ADMIN, &token]);
        }
    });
}

/// Before the roll nothing changed: rollback leaves the old token working everywhere. After
/// it, rollback is refused (it would restore a dead value) and resume finishes forward.
#[test]
fn rollback_keeps_the_old_token_before_the_roll_and_is_refused_after_it() {
    concurrently(&["after:precheck", "after:roll"], |point| {
        let rig = Rig::with_scenario(&scenario());
        rig.crash(RUNBOOK, point);
        let rolled_back = rig.rollback(&[]);
        if *point == "after:precheck" {
            rolled_back.exit(Exit::Ok);
            assert_everywhere(&rig.state(), CURRENT, "after rollback");
            assert_eq!(rolls(&rig.state()), 0);
        } else {
            rolled_back
                .exit(Exit::StepFailed)
                .stderr_has("cannot roll back past step 'roll': Cloudflare has no overlap window");
            let token = live(&rig.state());
            assert_eq!(
                current_secret(&rig.state(), VAR),
                token,
                "stored with the roll"
            );
            rig.resume(&[]).exit(Exit::Ok);
            assert_everywhere(&rig.state(), &token, "resumed after the refused rollback");
        }
        assert_none_leaked(&rolled_back, &[CURRENT, ADMIN]);
    });
}

/// Under --dry-run every read is real and no write is sent: the run ends (a check that needs
/// a skipped write is reported, not waited on) and plans exactly the writes of a rotation.
#[test]
fn the_dry_run_plans_every_write_and_changes_nothing() {
    let out = assert_dry_run_plans(
        RUNBOOK,
        &[
            "roll http::put",
            "roll infisical::set_secret",
            "propagate heroku::set_config",
            "propagate github::set_secret",
            "audit audit::log",
        ],
    );
    assert_none_leaked(&out, &[CURRENT, ADMIN]);
}

#[test]
fn the_cloudflare_runbook_passes_check() {
    Test::new()
        .args(&["check"])
        .arg(root().join("runbooks/cloudflare-api-token.rhai"))
        .run()
        .exit(Exit::Ok)
        .stdout_has("ok  ");
}
