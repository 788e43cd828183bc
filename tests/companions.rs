//! std/rotation with `companions` (tests/fixtures/keypair.rhai): a key id and its secret
//! rotated as one credential. Both reach Infisical and every consumer in one change per app,
//! a crash at any step boundary resumes to the new pair, and a rollback puts the old pair back
//! and deletes the new key.

use crate::support::{
    app_var, concurrently, crash_then_resume, current_secret, fixture, items, planned_writes,
    scripted, secret_versions, Exit, Rig, Test, ROTATION_STEPS,
};
use serde_json::Value;

const SID: &str = "SK-current-0001";
const SECRET: &str = "kpsecretcurrent0000000000000000";
const ADMIN: &str = "kpadmintoken00000000000000000000";
const APPS: [&str; 2] = ["raxx-api-prod", "raxx-worker"];
const STEPS: [&str; 8] = ROTATION_STEPS;

fn rig() -> Rig {
    let rig = Rig::with_scenario(&fixture("keypair.toml"));
    rig.file(
        "keypair.rhai",
        &std::fs::read_to_string(fixture("keypair.rhai")).unwrap(),
    );
    rig
}

/// The vendor's keys: (sid, secret).
fn keys(state: &Value) -> Vec<(String, String)> {
    scripted(state, "vendor", "keys")
        .iter()
        .map(|k| {
            (
                k["sid"].as_str().unwrap().to_string(),
                k["secret"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Infisical and both apps hold the pair (sid, secret); no staging copy is left.
#[track_caller]
fn assert_everywhere(state: &Value, (sid, secret): (&str, &str), when: &str) {
    assert_eq!(current_secret(state, "KEY_SID"), sid, "{when}: Infisical");
    assert_eq!(
        current_secret(state, "KEY_SECRET"),
        secret,
        "{when}: Infisical"
    );
    for app in APPS {
        assert_eq!(app_var(state, app, "KEY_SID"), sid, "{when}: {app}");
        assert_eq!(app_var(state, app, "KEY_SECRET"), secret, "{when}: {app}");
    }
    let pending: Vec<&Value> = items(&state["infisical"]["secrets"])
        .iter()
        .filter(|s| {
            s["secretKey"].as_str().unwrap_or("").ends_with("_PENDING") && s["deleted"] != true
        })
        .collect();
    assert!(
        pending.is_empty(),
        "{when}: staging copies left: {pending:?}"
    );
}

/// After a completed rotation: one new key at the vendor, the pair everywhere. Its sid.
#[track_caller]
fn assert_rotated(state: &Value, when: &str) -> (String, String) {
    let keys = keys(state);
    assert_eq!(keys.len(), 1, "{when}: only the new key is left: {keys:?}");
    let (sid, secret) = keys[0].clone();
    assert!(sid != SID && secret != SECRET, "{when}: {keys:?}");
    assert_everywhere(state, (&sid, &secret), when);
    (sid, secret)
}

/// One config change per app for the pair: a release that changed both vars at once.
fn config_changes(state: &Value, app: &str) -> usize {
    items(&state["requests"])
        .iter()
        .filter(|r| {
            r["vendor"] == "heroku"
                && r["method"] == "PATCH"
                && r["path"] == format!("/apps/{app}/config-vars").as_str()
        })
        .count()
}

#[test]
fn the_pair_is_rotated_as_one_credential() {
    let rig = rig();
    let out = rig.exec("keypair.rhai", &["--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let state = rig.state();
    let (sid, secret) = assert_rotated(&state, "after the rotation");
    // The id is stored as a new version next to the secret's.
    assert_eq!(secret_versions(&state, "KEY_SID"), [SID, sid.as_str()]);
    assert_eq!(
        secret_versions(&state, "KEY_SECRET"),
        [SECRET, secret.as_str()]
    );
    for app in APPS {
        assert_eq!(
            config_changes(&state, app),
            1,
            "{app}: one change for the pair"
        );
    }
    // GitHub holds both Actions secrets (set again: GitHub shows no values).
    let repo = &state["github"]["repos"]["raxx/ci"]["secrets"];
    assert_eq!(repo["KEY_SID"], sid.as_str(), "{repo:#}");
    assert_eq!(repo["KEY_SECRET"], secret.as_str(), "{repo:#}");
    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0]["context"]["companions"],
        serde_json::json!(["KEY_SID"])
    );
    // Neither output nor the state dir holds a key (the canary check knows only its own).
    for v in [SECRET, ADMIN, secret.as_str()] {
        out.assert_absent(v);
    }
    rig.assert_no_secrets_on_disk();
}

/// Killed (SIGKILL) after each step, the run resumes to one new pair everywhere: both values
/// come back from their staging copies or Infisical.
#[test]
fn a_crash_at_every_step_boundary_resumes_to_the_new_pair() {
    concurrently(&STEPS, |step| {
        let point = format!("after:{step}");
        let rig = rig();
        crash_then_resume(&rig, "keypair.rhai", &point);
        let state = rig.state();
        assert_rotated(&state, &point);
        let creates = items(&state["requests"])
            .iter()
            .filter(|r| r["vendor"] == "vendor" && r["method"] == "POST")
            .count();
        assert_eq!(creates, 1, "{point}: one key created");
    });
}

/// Rolled back before the revoke, the old pair is back everywhere and the new key is deleted
/// at the vendor by the id its create journalled.
#[test]
fn rollback_puts_the_old_pair_back_and_deletes_the_new_key() {
    concurrently(
        &[
            "after:create",
            "after:store",
            "inside:propagate",
            "after:verify",
        ],
        |point| {
            let rig = rig();
            rig.crash("keypair.rhai", point);
            let rolled_back = rig.rollback(&[]);
            assert_eq!(
                rolled_back.code, 0,
                "{point}\n{}\n{}",
                rolled_back.stdout, rolled_back.stderr
            );
            let state = rig.state();
            assert_eq!(
                keys(&state),
                [(SID.to_string(), SECRET.to_string())],
                "{point}: the new key is deleted, the old one untouched"
            );
            assert_everywhere(&state, (SID, SECRET), point);
            let repo = &state["github"]["repos"]["raxx/ci"]["secrets"];
            assert_eq!(repo["KEY_SID"], SID, "{point}: {repo:#}");
            assert_eq!(repo["KEY_SECRET"], SECRET, "{point}: {repo:#}");
        },
    );
}

/// A create that returns the secret alone, when companions are declared, is refused naming
/// what it must return.
#[test]
fn a_create_without_its_companion_is_refused_clearly() {
    let runbook = std::fs::read_to_string(fixture("keypair.rhai"))
        .unwrap()
        .replace(
            "#{ value: r.json.secret, KEY_SID: r.json.sid }",
            "r.json.secret",
        );
    Test::new()
        .file("keypair.rhai", &runbook)
        .args(&["exec", "keypair.rhai", "--sandbox", "--yes"])
        .scenario_fixture("keypair.toml")
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("rotation: create returned a Secret, and with companions it returns a map");
}

/// Under --dry-run the companions are planned with the secret: staged, stored and set on the
/// consumers, and nothing is written.
#[test]
fn the_dry_run_plans_the_pair() {
    let out = Test::new()
        .fixture("keypair.rhai")
        .args(&["exec", "keypair.rhai", "--sandbox", "--dry-run", "--json"])
        .scenario_fixture("keypair.toml")
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok);
    let planned: Vec<String> = items(&out.report()["planned_writes"])
        .iter()
        .map(|w| {
            format!(
                "{} {}",
                w["step"].as_str().unwrap(),
                w["target"].as_str().unwrap_or("")
            )
        })
        .filter(|w| w.contains("infisical") || w.contains("KEY_"))
        .collect();
    let functions = planned_writes(&out.report());
    for expected in [
        "store infisical::set_secret",
        "propagate heroku::set_config",
        "propagate github::set_secret",
        "revoke http::delete",
    ] {
        assert!(
            functions.iter().any(|f| f == expected),
            "{expected}: {functions:?}"
        );
    }
    // The secret and its companion, each set on the repository.
    let github = functions
        .iter()
        .filter(|f| *f == "propagate github::set_secret")
        .count();
    assert_eq!(github, 2, "{functions:?}");
    for staged in ["KEY_SID_PENDING", "KEY_SECRET_PENDING"] {
        assert!(
            planned
                .iter()
                .any(|w| w.starts_with("create ") && w.contains(staged)),
            "{staged} staged: {planned:?}"
        );
    }
    let state = out.sandbox_state();
    assert_eq!(keys(&state), [(SID.to_string(), SECRET.to_string())]);
}

/// The no-overlap shape with a companion: the roll's answer is the pair, stored at once (the
/// secret first: it is the only working credential), then set on every consumer.
#[test]
fn a_no_overlap_roll_of_the_pair_reaches_every_consumer() {
    let runbook = std::fs::read_to_string(fixture("keypair.rhai")).unwrap();
    let start = runbook.find("rotation::steps(").unwrap();
    let runbook = format!(
        "{}{}",
        &runbook[..start],
        r#"rotation::steps(#{
    secret: "KEY_SECRET",
    companions: #{ KEY_SID: "KEY_SID" },
    shape: "no_overlap",
    vendor: "Vendor",
    consumers: |ctx| #{ heroku: ["raxx-api-prod", "raxx-worker"], github: ["raxx/ci"] },
    roll: |ctx| {
        let r = http::post(`${ctx.params.url}/me/roll`, #{ headers: #{ "X-Api-Secret": ctx.old_value }, secrets: ["secret"] });
        ensure(r.status == 200, `rolling answered ${r.status}`);
        #{ value: r.json.secret, KEY_SID: r.json.sid }
    },
    validate: |ctx| {
        let r = http::get(`${ctx.params.url}/me`, #{ headers: #{ "X-Api-Secret": ctx.new_value } });
        ensure(r.status == 200 && consumers::same(r.json.sid, ctx.new_KEY_SID), "the new key is refused");
        ensure(http::get(`${ctx.params.url}/me`, #{ headers: #{ "X-Api-Secret": ctx.old_value } }).status == 401, "the old key still works");
    },
});
"#
    );
    let scenario = format!(
        "{}
[[scripted.routes]]
auth = [\"key\"]
method = \"POST\"
path = \"/me/roll\"
update = {{ collection = \"keys\", where = {{ sid = \"{{{{auths.key.sid}}}}\" }}, set = {{ secret = \"@random:32\" }} }}
respond = {{ status = 200, body = {{ sid = \"{{{{item.sid}}}}\", secret = \"{{{{item.secret}}}}\" }} }}
",
        std::fs::read_to_string(fixture("keypair.toml")).unwrap()
    );
    let rig = Rig::with_scenario_text(&scenario);
    rig.file("roll.rhai", &runbook);
    let out = rig.exec("roll.rhai", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let state = rig.state();
    let keys = keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (sid, secret) = &keys[0];
    assert_eq!(sid, SID, "a roll keeps the key's sid");
    assert_ne!(secret, SECRET);
    assert_everywhere(&state, (sid, secret), "after the roll");
}
