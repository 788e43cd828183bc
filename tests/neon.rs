//! runbooks/neon-blue-green.rhai: a database password rotated between two roles
//! (std/rotation, overlap) against its shipped scenario, a simulated Neon: rehearsed, run
//! twice (the live role is read from the world, so the second run goes back), killed at every
//! step boundary and resumed, rolled back before the old role is retired and refused after.

use crate::support::{
    app_var, assert_dry_run_plans, assert_none_leaked, concurrently, crash_then_resume,
    current_secret, items, rehearse_shipped, root, scripted, secret_versions, step_ids, Exit, Rig,
    Test,
};
use serde_json::Value;

const RUNBOOK: &str = "neon-blue-green";
const VAR: &str = "DATABASE_URL";
const BLUE_PASSWORD: &str = "npg_sandboxBlue01";
const GREEN_PASSWORD: &str = "npg_sandboxGreen0";
const API_KEY: &str = "napi_sandboxneonapikey0000000000000000000000000000000000000000000";
const STEPS: [&str; 8] = [
    "precheck",
    "reset_idle",
    "validate",
    "store",
    "propagate",
    "verify",
    "retire_old",
    "audit",
];

fn scenario() -> std::path::PathBuf {
    root().join("runbooks/sandbox/neon-blue-green.toml")
}

/// The connection string of `role` with `password`, as the runbook composes it.
fn url(role: &str, password: &str) -> String {
    format!("postgresql://{role}:{password}@ep-raxx-prod-a1b2c3d4.us-east-2.aws.neon.tech/raxx?sslmode=require")
}

/// The password Neon holds for `role`.
fn password(state: &Value, role: &str) -> String {
    scripted(state, "neon", "roles")
        .iter()
        .find(|r| r["name"] == role)
        .unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Infisical and both apps hold `value`; no staging copy is left.
#[track_caller]
fn assert_everywhere(state: &Value, value: &str, when: &str) {
    assert_eq!(current_secret(state, VAR), value, "{when}: Infisical");
    for app in ["raxx-api-prod", "raxx-worker"] {
        assert_eq!(app_var(state, app, VAR), value, "{when}: {app}");
    }
    let pending = items(&state["infisical"]["secrets"])
        .iter()
        .any(|s| s["secretKey"] == "DATABASE_URL_PENDING" && s["deleted"] != true);
    assert!(
        !pending,
        "{when}: DATABASE_URL_PENDING is left in Infisical"
    );
}

/// After a completed run from blue: green's connection string, with the password Neon holds
/// for it, everywhere; blue's password is no longer the one its old connection string holds.
#[track_caller]
fn assert_moved_to_green(state: &Value, when: &str) -> String {
    let green = password(state, "app_green");
    assert!(
        green.starts_with("npg_") && green != GREEN_PASSWORD,
        "{when}: {green}"
    );
    assert_everywhere(state, &url("app_green", &green), when);
    assert_ne!(
        password(state, "app_blue"),
        BLUE_PASSWORD,
        "{when}: blue is retired"
    );
    assert_eq!(
        password(state, "raxx_owner"),
        "npg_sandboxOwner0",
        "{when}: another role is untouched"
    );
    green
}

#[test]
fn the_apps_move_to_the_idle_role_and_the_old_role_is_retired() {
    let out = rehearse_shipped(RUNBOOK, &["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let green = assert_moved_to_green(&state, "after the rotation");
    assert_eq!(
        secret_versions(&state, VAR),
        [
            url("app_green", GREEN_PASSWORD),
            url("app_blue", BLUE_PASSWORD),
            url("app_green", &green)
        ]
    );
    for app in ["raxx-api-prod", "raxx-worker"] {
        assert_eq!(state["heroku"]["apps"][app]["restarts"], 1, "{app}");
    }
    assert_eq!(step_ids(&out.report()), STEPS);
    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(
        (
            &done[0]["context"]["from_role"],
            &done[0]["context"]["to_role"]
        ),
        (&Value::from("app_blue"), &Value::from("app_green"))
    );
    let blue = password(&state, "app_blue");
    assert_none_leaked(
        &out,
        &[
            BLUE_PASSWORD,
            GREEN_PASSWORD,
            API_KEY,
            &green,
            &blue,
            &url("app_green", &green),
        ],
    );
}

/// Which role is live is read from DATABASE_URL, not remembered: a second run moves the apps
/// back to blue, with a fresh password, and retires green.
#[test]
fn a_second_run_moves_the_apps_back_to_the_other_role() {
    let rig = Rig::with_scenario(&scenario());
    rig.exec(RUNBOOK, &[]).exit(Exit::Ok);
    let green = assert_moved_to_green(&rig.state(), "first run");
    let out = rig.exec(RUNBOOK, &[]);
    out.exit(Exit::Ok)
        .stdout_has("app_green is live; app_blue is idle and takes over");
    let state = rig.state();
    let blue = password(&state, "app_blue");
    assert_everywhere(&state, &url("app_blue", &blue), "second run");
    assert_ne!(password(&state, "app_green"), green, "green is retired");
    assert_none_leaked(&out, &[API_KEY, &green, &blue]);
}

/// Killed (SIGKILL) after each step, the run resumes to green everywhere: the idle role is
/// reset once, and nothing on disk holds a password.
#[test]
fn a_crash_at_every_step_boundary_resumes_to_the_other_role() {
    concurrently(&STEPS, |step| {
        let point = format!("after:{step}");
        let rig = Rig::with_scenario(&scenario());
        let (crashed, resumed) = crash_then_resume(&rig, RUNBOOK, &point);
        let state = rig.state();
        let green = assert_moved_to_green(&state, &point);
        let resets = items(&state["requests"])
            .iter()
            .filter(|r| r["vendor"] == "neon" && r["method"] == "POST")
            .count();
        assert_eq!(resets, 2, "{point}: green reset once, blue retired once");
        for out in [&crashed, &resumed] {
            assert_none_leaked(out, &[BLUE_PASSWORD, API_KEY, &green]);
        }
    });
}

/// Rolled back before the retire step, the apps are back on blue, whose password never
/// changed, and green's password is reset again so the connection string the run handed out
/// works nowhere. After the retire step, rollback is refused.
#[test]
fn rollback_puts_blue_back_until_it_is_retired() {
    concurrently(&["after:verify", "after:retire_old"], |point| {
        let rig = Rig::with_scenario(&scenario());
        rig.crash(RUNBOOK, point);
        let handed_out = current_secret(&rig.state(), VAR);
        let rolled_back = rig.rollback(&[]);
        let state = rig.state();
        if *point == "after:retire_old" {
            rolled_back
                .exit(Exit::StepFailed)
                .stderr_has("cannot roll back past step 'retire_old'");
            assert_moved_to_green(&state, point);
        } else {
            rolled_back.exit(Exit::Ok);
            assert_everywhere(&state, &url("app_blue", BLUE_PASSWORD), point);
            assert_eq!(password(&state, "app_blue"), BLUE_PASSWORD, "{point}");
            assert_ne!(
                url("app_green", &password(&state, "app_green")),
                handed_out,
                "{point}: the connection string the run made is dead"
            );
        }
        assert_none_leaked(&rolled_back, &[BLUE_PASSWORD, API_KEY, &handed_out]);
    });
}

/// Under --dry-run every read is real and no write is sent: the run ends (a check that needs
/// a skipped write is reported, not waited on) and plans exactly the writes of a rotation.
#[test]
fn the_dry_run_plans_every_write_and_changes_nothing() {
    let out = assert_dry_run_plans(
        RUNBOOK,
        &[
            "reset_idle http::post",
            "reset_idle infisical::set_secret",
            "store infisical::set_secret",
            "propagate heroku::set_config",
            "retire_old http::post",
            "audit audit::log",
        ],
    );
    assert_none_leaked(&out, &[BLUE_PASSWORD, GREEN_PASSWORD, API_KEY]);
}

#[test]
fn the_neon_runbook_passes_check() {
    Test::new()
        .args(&["check"])
        .arg(root().join("runbooks/neon-blue-green.rhai"))
        .run()
        .exit(Exit::Ok)
        .stdout_has("ok  ");
}
