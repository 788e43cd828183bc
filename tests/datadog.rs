//! runbooks/datadog-app-key.rhai: an overlap rotation (std/rotation) of a service account's
//! application key against its shipped scenario, a simulated Datadog in JSON:API shapes:
//! rehearsed, killed at every step boundary and resumed, rolled back (the new key deleted by
//! the id its create journalled) and refused a rollback once the old key is deleted.

use crate::support::{
    app_var, assert_dry_run_plans, assert_none_leaked, concurrently, crash_then_resume,
    current_secret, items, rehearse_shipped, root, scripted, secret_versions, step_ids,
    vendor_requests, Exit, Rig, Test, ROTATION_STEPS,
};
use serde_json::Value;

const RUNBOOK: &str = "datadog-app-key";
const CURRENT: &str = "ddsandboxcurrentappkey0000000000000000000";
const PREVIOUS: &str = "ddsandboxpreviousappkey000000000000000000";
const ADMIN: &str = "ddsandboxadminappkey000000000000000000000";
const API_KEY: &str = "ddsandboxorgapikey000000000000";
const OLD_ID: &str = "4b7e8a2c-1d3f-4e5a-9b6c-7d8e9f0a1b2c";
const OWNER: &str = "9c1d2e3f-4a5b-11ef-8c6d-7e8f9a0b1c2d";
const VAR: &str = "DD_APP_KEY";
const STEPS: [&str; 8] = ROTATION_STEPS;

fn scenario() -> std::path::PathBuf {
    root().join("runbooks/sandbox/datadog-app-key.toml")
}

/// The service account's keys at Datadog: (id, secret, name).
fn app_keys(state: &Value) -> Vec<(String, String, String)> {
    scripted(state, "datadog", "application_keys")
        .iter()
        .filter(|k| k["owner"] == OWNER)
        .map(|k| {
            let s = |v: &Value| v.as_str().unwrap().to_string();
            (s(&k["id"]), s(&k["key"]), s(&k["attributes"]["name"]))
        })
        .collect()
}

/// Infisical and both apps hold `key`; no staging copy is left.
#[track_caller]
fn assert_everywhere(state: &Value, key: &str, when: &str) {
    assert_eq!(current_secret(state, VAR), key, "{when}: Infisical");
    for app in ["raxx-api-prod", "raxx-worker"] {
        assert_eq!(app_var(state, app, VAR), key, "{when}: {app}");
    }
    let pending = items(&state["infisical"]["secrets"])
        .iter()
        .any(|s| s["secretKey"] == "DD_APP_KEY_PENDING" && s["deleted"] != true);
    assert!(!pending, "{when}: DD_APP_KEY_PENDING is left in Infisical");
}

/// After a completed rotation: one new key for the service account, everywhere.
#[track_caller]
fn assert_rotated(state: &Value, when: &str) -> String {
    let keys = app_keys(state);
    assert_eq!(keys.len(), 1, "{when}: only the new key is left: {keys:?}");
    let (id, key, name) = &keys[0];
    assert!(id != OLD_ID && key != CURRENT, "{when}: {keys:?}");
    assert_eq!(name, "raxx-apps", "{when}: same name");
    assert_everywhere(state, key, when);
    key.clone()
}

/// How many keys the run created.
fn creates(state: &Value) -> usize {
    vendor_requests(state, "datadog")
        .iter()
        .filter(|(m, _, _)| m == "POST")
        .count()
}

#[test]
fn the_key_is_created_for_the_same_service_account_propagated_and_the_old_one_deleted() {
    let out = rehearse_shipped(RUNBOOK, &["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let key = assert_rotated(&state, "after the rotation");
    assert_eq!(
        secret_versions(&state, VAR),
        [PREVIOUS, CURRENT, key.as_str()]
    );
    let new = scripted(&state, "datadog", "application_keys")
        .into_iter()
        .find(|k| k["key"] == key.as_str())
        .unwrap();
    assert_eq!(
        new["attributes"]["scopes"],
        serde_json::json!(["monitors_read", "events_write"]),
        "the old key's scopes"
    );
    // The run proved the old key dead: its last request, with the old key, was refused.
    let last = vendor_requests(&state, "datadog").pop().unwrap();
    assert_eq!(
        last,
        (
            "GET".into(),
            format!("/api/v2/current_user/application_keys/{OLD_ID}"),
            403
        )
    );
    assert_eq!(creates(&state), 1);
    assert_eq!(step_ids(&out.report()), STEPS);
    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    let context = &done[0]["context"];
    assert_eq!(
        (
            &context["method"],
            &context["service_account"],
            &context["old_key_id"]
        ),
        (
            &Value::from("datadog-api"),
            &Value::from(OWNER),
            &Value::from(OLD_ID)
        )
    );
    assert_eq!(context["new_key_id"], new["id"]);
    assert_none_leaked(&out, &[CURRENT, PREVIOUS, ADMIN, API_KEY, &key]);
}

/// Killed (SIGKILL) after each step, the run resumes to one new key everywhere: no second
/// key is created, and nothing on disk holds a key.
#[test]
fn a_crash_at_every_step_boundary_resumes_to_one_new_key() {
    concurrently(&STEPS, |step| {
        let point = format!("after:{step}");
        let rig = Rig::with_scenario(&scenario());
        let (crashed, resumed) = crash_then_resume(&rig, RUNBOOK, &point);
        let state = rig.state();
        let key = assert_rotated(&state, &point);
        assert_eq!(creates(&state), 1, "{point}: one key created");
        for out in [&crashed, &resumed] {
            assert_none_leaked(out, &[CURRENT, ADMIN, API_KEY, &key]);
        }
    });
}

/// Rolled back before the old key is deleted, the old key works everywhere again and the new
/// one is deleted at Datadog: by the id its create journalled, even when the engine died
/// right after that call. After the revoke, rollback is refused.
#[test]
fn rollback_puts_the_old_key_back_and_deletes_the_new_one_until_the_revoke() {
    concurrently(
        &["inside:create", "after:verify", "after:revoke"],
        |point| {
            let rig = Rig::with_scenario(&scenario());
            rig.crash(RUNBOOK, point);
            let rolled_back = rig.rollback(&[]);
            let state = rig.state();
            if *point == "after:revoke" {
                rolled_back
                    .exit(Exit::StepFailed)
                    .stderr_has("cannot roll back past step 'revoke'");
                assert_rotated(&state, point);
            } else {
                rolled_back.exit(Exit::Ok);
                assert_eq!(
                    app_keys(&state),
                    [(OLD_ID.into(), CURRENT.into(), "raxx-apps".into())],
                    "{point}: the new key is deleted, the old one untouched"
                );
                assert_everywhere(&state, CURRENT, point);
                assert_eq!(creates(&state), 1, "{point}");
            }
            assert_none_leaked(&rolled_back, &[CURRENT, ADMIN, API_KEY]);
        },
    );
}

/// Under --dry-run every read is real and no write is sent: the run ends (a check that needs
/// a skipped write is reported, not waited on) and plans exactly the writes of a rotation.
#[test]
fn the_dry_run_plans_every_write_and_changes_nothing() {
    let out = assert_dry_run_plans(
        RUNBOOK,
        &[
            "create http::post",
            "create infisical::set_secret",
            "store infisical::set_secret",
            "propagate heroku::set_config",
            "revoke http::delete",
            "audit audit::log",
        ],
    );
    assert_none_leaked(&out, &[CURRENT, ADMIN, API_KEY]);
}

#[test]
fn the_datadog_runbook_passes_check() {
    Test::new()
        .args(&["check"])
        .arg(root().join("runbooks/datadog-app-key.rhai"))
        .run()
        .exit(Exit::Ok)
        .stdout_has("ok  ");
}

/// Datadog needs the org's API key with every application key: the rehearsal checked only
/// the application key (one auth header per scripted vendor). With both checked, a wrong
/// DD_API_KEY in Infisical stops the rotation at precheck, before any key is made.
#[test]
fn a_wrong_api_key_is_refused_before_any_write() {
    let shipped = std::fs::read_to_string(scenario()).unwrap();
    let wrong = shipped.replacen(
        &format!("name = \"DD_API_KEY\"\nversions = [\"{API_KEY}\"]"),
        "name = \"DD_API_KEY\"\nversions = [\"ddsandboxwrongapikey0000000000\"]",
        1,
    );
    assert_ne!(
        wrong, shipped,
        "the scenario names DD_API_KEY as the test expects"
    );
    let out = Test::new()
        .rehearse(RUNBOOK)
        .scenario("wrong.toml", &wrong)
        .keep_sandbox_state()
        .args(&["--yes", "--json"])
        .run();
    out.exit(Exit::StepFailed).stderr_has("403");
    assert_eq!(out.report()["failed_step"], "precheck");
    assert_eq!(
        app_keys(&out.sandbox_state()).len(),
        1,
        "no key was created"
    );
}
