//! The rotation shapes end to end: runbooks/aws-iam-access-key.rhai (two slots written by
//! hand: IAM's query API, SigV4 checked by the simulator, two keys per user, an inactive
//! key refused), runbooks/heroku-authorization.rhai (std/rotation without overlap) and
//! tests/fixtures/two_slot.rhai (std/rotation's two-slot shape).

use crate::support::items;
use crate::support::{
    assert_lacks, assert_recovered, root, scripted, secret_versions, step_ids, with_fault,
    with_script, Exit, Output, Rig, Test,
};
use serde_json::Value;

const CURRENT_ID: &str = "AKIASANDBOXCURRENT01";
const CURRENT_SECRET: &str = "sandbox+current+secret+key+0000000000000";
const ADMIN_SECRET: &str = "sandbox+admin+secret+key+00000000000000000";
const IDS: &str = "AWS_ACCESS_KEY_ID";
const SECRETS: &str = "AWS_SECRET_ACCESS_KEY";

/// The scenario the IAM runbook ships with.
fn iam_scenario() -> std::path::PathBuf {
    root().join("runbooks/sandbox/aws-iam-access-key.toml")
}

/// The operator's word, which `--yes` does not give, that the consumers still work once the
/// old key is inactive.
const HEALTHY: &str = "\"deactivate.healthy\" = true\n";

fn scenario_text() -> String {
    std::fs::read_to_string(iam_scenario()).unwrap()
}

/// The IAM rotation rehearsed on `scenario` as ops-test, streamed as JSON, the final state
/// kept; the operator's word that the consumers still work once the old key is inactive
/// comes from an answers file (`--yes` does not give it).
fn exec(scenario: &str, extra: &[&str]) -> Output {
    Test::new()
        .rehearse("aws-iam-access-key")
        .scenario("aws.toml", scenario)
        .keep_sandbox_state()
        .answers(HEALTHY)
        .args(&["--actor", "ops-test", "--json"])
        .args(extra)
        .run()
}

/// The rotated user's keys at IAM: (id, secret, status).
fn user_keys(state: &Value) -> Vec<(String, String, String)> {
    scripted(state, "awsiam", "keys")
        .iter()
        .filter(|k| k["UserName"] == "ci-deployer")
        .map(|k| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            (s("AccessKeyId"), s("SecretAccessKey"), s("Status"))
        })
        .collect()
}

/// Infisical's current value of the secret `name`.
fn current(state: &Value, name: &str) -> String {
    secret_versions(state, name).pop().unwrap()
}

/// Everywhere the key lives holds (id, secret).
fn assert_everywhere(state: &Value, id: &str, secret: &str, when: &str) {
    assert_eq!(current(state, IDS), id, "{when}: Infisical {IDS}");
    assert_eq!(
        current(state, SECRETS),
        secret,
        "{when}: Infisical {SECRETS}"
    );
    for app in ["raxx-api-prod", "raxx-worker"] {
        let vars = &state["heroku"]["apps"][app]["config_vars"];
        assert_eq!(vars[IDS], id, "{when}: {app}");
        assert_eq!(vars[SECRETS], secret, "{when}: {app}");
    }
    let repo = &state["github"]["repos"]["raxx/deploy"]["secrets"];
    assert_eq!(repo[IDS], id, "{when}: GitHub");
    assert_eq!(repo[SECRETS], secret, "{when}: GitHub");
}

fn assert_no_leaks(out: &Output, extra: &[&str]) {
    for v in [CURRENT_SECRET, ADMIN_SECRET].iter().chain(extra) {
        out.assert_absent(v);
    }
}

#[test]
fn the_key_is_rotated_everywhere_and_the_old_one_deleted() {
    let out = exec(&scenario_text(), &["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let keys = user_keys(&state);
    assert_eq!(keys.len(), 1, "only the new key is left: {keys:?}");
    let (id, secret, status) = &keys[0];
    assert_ne!(id, CURRENT_ID);
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!((secret.len(), status.as_str()), (40, "Active"));
    assert_everywhere(&state, id, secret, "after the rotation");
    // Every IAM call was signed (a wrong signature is refused by the simulator) and the old
    // key was refused once deactivated, before it was deleted.
    let refused_old = items(&state["requests"])
        .iter()
        .any(|r| r["vendor"] == "awsiam" && r["method"] == "GET" && r["status"] == 403);
    assert!(refused_old, "the deactivated key was tried and refused");
    let report = out.report();
    let summary: Vec<&str> = items(&report["changes"])
        .iter()
        .filter_map(|w| w["target"].as_str())
        .collect();
    assert!(
        summary
            .iter()
            .any(|t| t.ends_with("(CreateAccessKey ci-deployer)")),
        "{summary:?}"
    );
    assert_no_leaks(&out, &[secret]);
}

#[test]
fn a_failure_at_propagate_rolls_back_and_deletes_the_new_key() {
    let out = exec(
        &scenario_text(),
        &[
            "--yes",
            "--fault",
            "heroku:PATCH:/apps/raxx-worker/config-vars=500:always",
        ],
    );
    out.exit(Exit::StepFailed);
    let report = out.report();
    assert_eq!(
        (report["status"].as_str(), report["failed_step"].as_str()),
        (Some("rolled_back"), Some("propagate"))
    );
    let state = out.sandbox_state();
    assert_eq!(
        user_keys(&state),
        [(
            CURRENT_ID.to_string(),
            CURRENT_SECRET.to_string(),
            "Active".to_string()
        )],
        "the new key is deleted, the old one untouched"
    );
    assert_everywhere(&state, CURRENT_ID, CURRENT_SECRET, "after the rollback");
    assert_no_leaks(&out, &[]);
}

#[test]
fn a_user_with_two_keys_or_a_wrong_admin_secret_stops_before_any_write() {
    // A second key already exists: IAM would refuse a third.
    let two = scenario_text().replace(
        "keys = [\n",
        "keys = [\n    { AccessKeyId = \"AKIASANDBOXSPARE0001\", SecretAccessKey = \"sandbox+spare+secret+key+00000000000000000\", UserName = \"ci-deployer\", Status = \"Inactive\", CreateDate = \"2026-03-01T09:00:00Z\", admin = false },\n",
    );
    let out = exec(&two, &["--yes"]);
    out.exit(Exit::StepFailed)
        .stdout_has("ci-deployer already has 2 access keys, IAM's maximum");
    assert_eq!(user_keys(&out.sandbox_state()).len(), 2);

    // The admin secret in Infisical is not the one IAM knows: the signature is refused.
    let wrong = scenario_text().replace(
        "versions = [\"sandbox+admin+secret+key+00000000000000000\"]",
        "versions = [\"sandbox+stale+admin+secret+key+000000000000\"]",
    );
    let out = exec(&wrong, &["--yes"]);
    out.exit(Exit::StepFailed).stdout_has(
        "IAM ListAccessKeys answered HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match",
    );
    assert_eq!(user_keys(&out.sandbox_state()).len(), 1);

    // The admin key in Infisical is the rotated key itself: deactivate would make it refuse
    // the delete and the reactivate (before, nothing stopped it: cold review).
    let same = scenario_text()
        .replace(
            "versions = [\"AKIASANDBOXADMIN0001\"]",
            "versions = [\"AKIASANDBOXCURRENT01\"]",
        )
        .replace(
            "versions = [\"sandbox+admin+secret+key+00000000000000000\"]",
            "versions = [\"sandbox+current+secret+key+0000000000000\"]",
        );
    let out = exec(&same, &["--yes"]);
    out.exit(Exit::StepFailed)
        .stdout_has("the admin key (AWS_ADMIN_ACCESS_KEY_ID) is the key being rotated");
    assert_eq!(user_keys(&out.sandbox_state()).len(), 1);
}

#[test]
fn a_crash_after_store_or_inside_deactivate_resumes_to_a_complete_rotation() {
    // inside:delete: killed right after IAM deleted the old key; the resumed delete finds it
    // gone (before, it sent DeleteAccessKey again, IAM answered NoSuchEntity, and the step
    // failed on every retry: cold review).
    for point in [
        "after:store",
        "inside:propagate",
        "inside:deactivate",
        "inside:delete",
    ] {
        let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
        assert_recovered(&rig.crash_and_resume("aws-iam-access-key", point), point);
        let state = rig.state();
        let keys = user_keys(&state);
        assert_eq!(keys.len(), 1, "{point}: {keys:?}");
        assert_ne!(keys[0].0, CURRENT_ID, "{point}: the old key is deleted");
        assert_eq!(keys[0].2, "Active", "{point}");
        assert_everywhere(&state, &keys[0].0, &keys[0].1, point);
        rig.assert_no_secrets_on_disk();
    }
}

/// A crash in propagate, then the old key deleted at IAM by hand (a suspected leak): the
/// rollback put the deleted key back on every consumer and in Infisical, deleted the new
/// key (the only one that worked) and said "rolled back", exit 0 (way-back review). It now
/// asks IAM first, restores nothing, deletes nothing, and names the way forward.
#[test]
fn a_rollback_after_the_old_key_was_deleted_at_iam_restores_nothing() {
    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.crash("aws-iam-access-key", "after:propagate");
    let run = rig.run_id();
    // Deleted the way an operator would, with the admin key, signed.
    rig.file(
        "delete-old.rhai",
        r#"
runbook(#{ id: "delete-old-key", title: "Delete the old key by hand" });
param("url", #{ env: "AWS_IAM_API_URL", help: "IAM" });
step("delete", "Delete", |ctx| {
    let at = #{ project_id: "raxx-project", env: "prod" };
    let r = http::post(`${ctx.params.url}/`, #{
        form: #{ Action: "DeleteAccessKey", Version: "2010-05-08", UserName: "ci-deployer", AccessKeyId: "AKIASANDBOXCURRENT01" },
        aws: #{ access_key_id: infisical::secret("AWS_ADMIN_ACCESS_KEY_ID", at).value,
                secret_access_key: infisical::secret("AWS_ADMIN_SECRET_ACCESS_KEY", at).value,
                region: "us-east-1", service: "iam" },
    });
    ensure(r.status == 200, `deleted: ${r.status}`);
}).no_undo("a test's hand");
"#,
    );
    let path = rig.path().join("delete-old.rhai");
    rig.runbook(&["exec", path.to_str().unwrap(), "--yes"], &[])
        .exit(Exit::Ok);
    let before = rig.state();
    let keys = user_keys(&before);
    assert_eq!(keys.len(), 1, "only the run's new key is left: {keys:?}");
    let new = keys[0].clone();

    let out = rig.runbook(&["rollback", &run, "--yes"], &[]);
    out.exit(Exit::StepFailed)
        .stderr_has("ctx.old_id secret(…NT01) no longer works (deleted, revoked or expired)")
        .stderr_has("Nothing was undone");
    let state = rig.state();
    assert_eq!(
        user_keys(&state),
        std::slice::from_ref(&new),
        "the new key is not deleted"
    );
    assert_everywhere(&state, &new.0, &new.1, "nothing restored");
    rig.assert_no_secrets_on_disk();
}

/// Values of a bulk read are Secrets by meaning: a key is, a region is not (it used to be,
/// and the journal's redaction then changed the region a resumed run signed with); a
/// runbook's `masking` overrides the judgement either way.
#[test]
fn bulk_reads_mask_credentials_not_settings_and_a_runbook_can_override() {
    let rb = |masking: &str| {
        format!(
            r#"
runbook(#{{ id: "masking", title: "Masking" {masking} }});
step("read", "Read", |ctx| {{
    let c = heroku::config("raxx-api-prod");
    print(`region=${{c.AWS_REGION}} region_secret=${{secret::is_secret(c.AWS_REGION)}} key_secret=${{secret::is_secret(c.AWS_ACCESS_KEY_ID)}}`);
}});
"#
        )
    };
    let run = |text: String| {
        with_script("exec", "masking.rhai", &text)
            .args(&["--sandbox"])
            .scenario("aws.toml", &scenario_text())
            .args(&["--yes"])
            .run()
    };
    let out = run(rb(""));
    out.exit(Exit::Ok)
        .stdout_has("region=us-east-1 region_secret=false key_secret=true");
    let out = run(rb(
        r#", masking: #{ secret: ["AWS_REGION"], plain: ["AWS_ACCESS_KEY_ID"] }"#,
    ));
    out.exit(Exit::Ok)
        .stdout_has("region_secret=true key_secret=false");
}

// The no-overlap shape: runbooks/heroku-authorization.rhai (std/rotation, shape no_overlap).

const HK_CURRENT: &str = "HRKU-sandbox-current-deploy-token-000000000";

fn hk_scenario() -> std::path::PathBuf {
    root().join("runbooks/sandbox/heroku-authorization.toml")
}

/// (the authorization's token, Infisical's current value, each repo's secret).
fn hk_state(state: &Value) -> (String, String, Vec<String>) {
    let token = state["scripted"]["heroku-oauth"]["collections"]["authorizations"][0]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let repos = ["raxx/deploy", "raxx/infra"]
        .iter()
        .map(|r| {
            state["github"]["repos"][r]["secrets"]["HEROKU_API_KEY"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    (token, current(state, "HEROKU_DEPLOY_TOKEN"), repos)
}

#[test]
fn a_rotation_without_overlap_rolls_stores_at_once_and_propagates() {
    let out = Test::new()
        .rehearse("heroku-authorization")
        .args(&["--yes"])
        .keep_sandbox_state()
        .args(&["--json"])
        .run();
    out.exit(Exit::Ok)
        .stderr_has("Step 2/6 · regenerate · Regenerate the authorization's token");
    let (token, stored, repos) = hk_state(&out.sandbox_state());
    assert_ne!(token, HK_CURRENT);
    assert_eq!(stored, token, "Infisical holds the live token");
    assert_eq!(repos, [token.clone(), token.clone()]);
    assert_eq!(
        step_ids(&out.report()),
        [
            "precheck",
            "regenerate",
            "validate",
            "propagate",
            "verify",
            "audit"
        ]
    );
    out.assert_absent(HK_CURRENT);
    out.assert_absent(&token);
}

/// The authorization named is another one of the same user (any of the user's tokens reads
/// it): regenerating it would kill a token nobody stored and leave the stored one working.
/// Before, nothing tied the authorization to the stored token (cold review).
#[test]
fn an_authorization_other_than_the_stored_tokens_is_refused_before_the_roll() {
    let scenario = std::fs::read_to_string(hk_scenario()).unwrap().replace(
        "authorizations = [\n",
        "authorizations = [\n    { id = \"fedcba98-7654-3210-fedc-ba9876543210\", description = \"someone's laptop\", scope = [\"global\"], token = \"HRKU-sandbox-other-token-0000000000000000\", user = \"ci@raxx.app\" },\n",
    );
    let out = Test::new()
        .rehearse("heroku-authorization")
        .scenario("two.toml", &scenario)
        .args(&[
            "--yes",
            "--param",
            "authorization_id=fedcba98-7654-3210-fedc-ba9876543210",
        ])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::StepFailed).stderr_has(
        "authorization fedcba98-7654-3210-fedc-ba9876543210 is not the one whose token Infisical holds",
    );
    let state = out.sandbox_state();
    let tokens: Vec<&str> = state["scripted"]["heroku-oauth"]["collections"]["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["token"].as_str().unwrap())
        .collect();
    assert_eq!(
        tokens,
        ["HRKU-sandbox-other-token-0000000000000000", HK_CURRENT],
        "nothing regenerated"
    );
}

/// A failure after the roll is never rolled back (that would restore a dead token): the run
/// stops, says to resume, and the resume finishes the rotation forward.
#[test]
fn after_the_roll_a_failure_stops_forward_only_and_resume_finishes() {
    let rig = Rig::with_scenario_text(&with_fault(
        &std::fs::read_to_string(hk_scenario()).unwrap(),
        "github:PUT:/repos/raxx/infra/actions/secrets/HEROKU_API_KEY=500:times=4",
    ));
    let failed = rig.exec("heroku-authorization", &[]);
    failed.exit(Exit::StepFailed);
    let all = failed.text();
    assert!(all.contains("runbook resume"), "{all}");
    assert!(
        !all.contains("Rolling back"),
        "a dead token must not be restored:\n{all}"
    );
    let (token, stored, repos) = hk_state(&rig.state());
    assert_ne!(token, HK_CURRENT);
    assert_eq!(stored, token, "stored in the same step as the roll");
    assert_eq!(repos[0], token);
    assert_eq!(
        repos[1], HK_CURRENT,
        "the refused repo still holds the dead token"
    );

    rig.resume(&[]).exit(Exit::Ok);
    let (token2, stored2, repos2) = hk_state(&rig.state());
    assert_eq!(token2, token, "resume did not roll again");
    assert_eq!(stored2, token);
    assert_eq!(repos2, [token.clone(), token.clone()]);
    rig.assert_no_secrets_on_disk();
}

#[test]
fn a_crash_after_the_roll_resumes_with_the_stored_token() {
    for point in ["after:regenerate", "inside:propagate"] {
        let rig = Rig::with_scenario(&hk_scenario());
        rig.crash_and_resume("heroku-authorization", point);
        let (token, stored, repos) = hk_state(&rig.state());
        assert_ne!(token, HK_CURRENT, "{point}");
        assert_eq!(stored, token, "{point}");
        assert_eq!(repos, [token.clone(), token.clone()], "{point}");
        rig.assert_no_secrets_on_disk();
    }
}

/// Cloudflare has no overlap: past the roll a rollback is refused. Killed in propagate, then
/// an app set by hand: the resume refused and said "roll back", the rollback refused and
/// said "resume", and neither named `abandon`, the only way out (way-back review).
#[test]
fn past_the_roll_a_refused_resume_names_abandon_not_rollback() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/cloudflare-api-token.toml"));
    rig.crash("cloudflare-api-token", "inside:propagate");
    let run = rig.run_id();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        crate::support::set_app_var(
            &rig.sandbox,
            app,
            "CLOUDFLARE_API_TOKEN",
            "cfut_setByHandDuringTheIncident000000000000",
        );
    }
    let out = rig.resume(&[]);
    out.exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: the vendors changed since this run")
        .stderr_has(&format!("A rollback is refused too (step 'roll' cannot be undone): put those values back as the run left them, then resume; or end the run with `runbook abandon {run} --reason TEXT`"));
    assert_lacks("stderr", &out.stderr, "Roll back with");
    let back = rig.rollback(&[]);
    back.exit(Exit::StepFailed)
        .stderr_has("cannot roll back past step 'roll'")
        .stderr_has(&format!(
            "end the run with `runbook abandon {run} --reason TEXT`"
        ));
}

// The two-slot shape in the stdlib: tests/fixtures/two_slot.rhai (std/rotation, two_slot).

fn slot_run(extra: &[&str], answers: &str) -> Output {
    Test::new()
        .fixture("two_slot.rhai")
        .args(&["exec", "two_slot.rhai", "--sandbox"])
        .scenario_fixture("two_slot.toml")
        .keep_sandbox_state()
        .answers(answers)
        .args(&["--json"])
        .args(extra)
        .run()
}

/// The app's keys at SlotCo: (id, key, status).
fn slot_keys(state: &Value) -> Vec<(String, String, String)> {
    scripted(state, "slotco", "keys")
        .iter()
        .filter(|k| k["owner"] == "app")
        .map(|k| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            (s("id"), s("key"), s("status"))
        })
        .collect()
}

const SLOT_CURRENT: &str = "sk_sandbox_current_slot_key_00000000000";

#[test]
fn the_two_slot_shape_deactivates_then_deletes_and_rolls_back_by_reactivating() {
    // `--yes` alone does not say the consumers still work with the old key inactive (only a
    // person sees that), and with no terminal nobody can: refused before the run starts.
    // Before, `--yes` answered it and the old key was deleted seconds after its
    // deactivation (cold review).
    let out = slot_run(&["--yes"], "");
    out.exit(Exit::Usage)
        .stderr_has("step 'deactivate' asks `deactivate.healthy`, a judgement --yes does not make (only a person can see it), and there is no terminal to ask on")
        .stderr_has("add `\"deactivate.healthy\" = true` to a file passed with --answers");
    // The pattern `runbook answers` shows (`….healthy`) is not an id: refused, not taken
    // for the answer (it would have matched, and --yes then rolled the rotation back).
    let out = slot_run(&["--yes"], "\"….healthy\" = true\n");
    out.exit(Exit::Usage).stderr_has(
        "`….healthy` is a pattern (`…` is a part computed at run time), not the id of a question",
    );
    // Said in an answers file, on purpose: deactivate, then delete.
    let out = slot_run(&["--yes"], "\"deactivate.healthy\" = true\n");
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let keys = slot_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_ne!(keys[0].1, SLOT_CURRENT);
    assert_eq!(keys[0].2, "active");
    assert_eq!(
        state["heroku"]["apps"]["slot-app"]["config_vars"]["SLOTCO_KEY"],
        keys[0].1.as_str()
    );
    assert_eq!(
        step_ids(&out.report()),
        [
            "precheck",
            "create",
            "validate",
            "store",
            "propagate",
            "verify",
            "deactivate",
            "delete",
            "audit"
        ]
    );

    // The operator reports a consumer broken once the old key is inactive: rollback
    // reactivates it, puts it back on the app and deletes the new key.
    let out = slot_run(&["--yes"], "\"deactivate.healthy\" = false\n");
    out.exit(Exit::StepFailed);
    let report = out.report();
    assert_eq!(
        (report["status"].as_str(), report["failed_step"].as_str()),
        (Some("rolled_back"), Some("deactivate"))
    );
    let state = out.sandbox_state();
    assert_eq!(
        slot_keys(&state),
        [(
            "k-current".to_string(),
            SLOT_CURRENT.to_string(),
            "active".to_string()
        )]
    );
    assert_eq!(
        state["heroku"]["apps"]["slot-app"]["config_vars"]["SLOTCO_KEY"],
        SLOT_CURRENT
    );
}

/// The old key was deleted at the vendor while the run verified (SlotCo now refuses it), and
/// deactivate's write is refused (404). Before, a flag set before that write made the
/// rollback skip its probe of the old key: it put the dead key back on the app and deleted
/// the new one, the only one working. Now the probe runs, finds the old key refused, and
/// nothing is restored (review of this session's change).
#[test]
fn a_refused_deactivate_leaves_the_rollbacks_probe_in_place() {
    let out = slot_run(
        &[
            "--yes",
            "--fault",
            "slotco:PATCH=404",
            "--fault",
            "slotco:GET:/v1/me=401:after=1",
        ],
        "\"deactivate.healthy\" = true\n",
    );
    out.exit(Exit::StepFailed);
    let state = out.sandbox_state();
    let keys = slot_keys(&state);
    let new: Vec<_> = keys.iter().filter(|k| k.0 != "k-current").collect();
    assert_eq!(new.len(), 1, "the new key is not deleted: {keys:?}");
    assert_eq!(
        state["heroku"]["apps"]["slot-app"]["config_vars"]["SLOTCO_KEY"],
        new[0].1.as_str(),
        "the app keeps the new key"
    );
}

/// Killed right after the deactivate PATCH applied (the old key inactive): the flag the
/// step sets in `ctx` died with the process. Before, the rollback probed the inactive old
/// key, read it as dead, and advised going forward, which deletes it; the way back is
/// deactivate's undo, which reactivates it. The journal says the deactivate took effect.
#[test]
fn a_rollback_after_a_kill_inside_deactivate_reactivates_the_old_key() {
    let rig = Rig::with_scenario(&crate::support::root().join("tests/fixtures/two_slot.toml"))
        .answering(HEALTHY);
    let script =
        std::fs::read_to_string(crate::support::root().join("tests/fixtures/two_slot.rhai"))
            .unwrap();
    rig.file("two_slot.rhai", &script);
    rig.crash("two_slot.rhai", "inside:deactivate");
    let current = |state: &Value| {
        slot_keys(state)
            .into_iter()
            .find(|k| k.0 == "k-current")
            .map(|k| k.2)
    };
    assert_eq!(current(&rig.state()).as_deref(), Some("inactive"));
    rig.rollback(&[])
        .exit(Exit::Ok)
        .stdout_has("rollback complete");
    let state = rig.state();
    assert_eq!(current(&state).as_deref(), Some("active"));
    assert_eq!(
        state["heroku"]["apps"]["slot-app"]["config_vars"]["SLOTCO_KEY"], SLOT_CURRENT,
        "the app is back on the old key"
    );
}

/// Whether Infisical holds a secret named `name`.
fn in_infisical(state: &Value, name: &str) -> bool {
    items(&state["infisical"]["secrets"])
        .iter()
        .any(|s| s["secretKey"] == name && s["deleted"] != true)
}

/// Killed right after IAM created the new key: its secret was only in the answer. Before,
/// the key id was declared a secret, so nothing recorded it: resume could not delete the
/// key and a second create hit IAM's two-key limit, and rollback left it behind. Now the id
/// is kept with the write's outcome: resume deletes that key by id and creates another;
/// rollback deletes it.
#[test]
fn a_crash_right_after_create_is_resumed_or_rolled_back_by_the_key_id() {
    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.crash("aws-iam-access-key", "inside:create");
    let orphan = user_keys(&rig.state());
    assert_eq!(
        orphan.len(),
        2,
        "the old key and the one the crash orphaned"
    );
    assert!(
        rig.journal().contains(&format!(
            "\"answer\":{{\"CreateAccessKeyResponse.CreateAccessKeyResult.AccessKey.AccessKeyId\":\"{}\"}}",
            orphan[1].0
        )),
        "the id is journalled with the outcome: {}",
        rig.journal()
    );
    rig.resume(&[])
        .exit(Exit::Ok)
        .stdout_has("an earlier attempt created it and could not stage it");
    let state = rig.state();
    let keys = user_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].0 != orphan[1].0 && keys[0].0 != CURRENT_ID);
    assert_everywhere(&state, &keys[0].0, &keys[0].1, "after resume");
    for name in ["AWS_ACCESS_KEY_ID_PENDING", "AWS_SECRET_ACCESS_KEY_PENDING"] {
        assert!(!in_infisical(&state, name), "{name} is removed by store");
    }
    rig.assert_no_secrets_on_disk();

    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.crash("aws-iam-access-key", "inside:create");
    rig.rollback(&[]).exit(Exit::Ok);
    let state = rig.state();
    assert_eq!(
        user_keys(&state),
        [(CURRENT_ID.into(), CURRENT_SECRET.into(), "Active".into())],
        "the created key is deleted by its id"
    );
    assert_everywhere(&state, CURRENT_ID, CURRENT_SECRET, "after rollback");
}

/// Killed inside create once a first key's id was staged, then killed again once the
/// resumed create had staged another: the first staging is this run's own, replaced by its
/// later write, not a change by someone else. The next resume goes on; a rollback deletes
/// what the run staged last.
#[test]
fn a_target_this_run_wrote_again_is_not_changed_since_this_run() {
    for then in ["resume", "rollback"] {
        let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
        rig.crash("aws-iam-access-key", "inside:create#2");
        let again = rig.runbook(
            &["resume", &rig.run_id(), "--yes"],
            &[("RUNBOOK_CRASH_AT", "after:create")],
        );
        assert_eq!(again.code, -9, "{}", again.stderr);
        let out = match then {
            "resume" => rig.resume(&[]),
            _ => rig.rollback(&[]),
        };
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, 0, "{then}: {text}");
        assert!(!text.contains("changed since this run"), "{then}: {text}");
        let state = rig.state();
        let keys = user_keys(&state);
        assert_eq!(keys.len(), 1, "{then}: {keys:?}");
        if then == "resume" {
            assert!(keys[0].0 != CURRENT_ID);
            assert_everywhere(&state, &keys[0].0, &keys[0].1, "after resume");
        } else {
            assert_eq!(keys[0].0, CURRENT_ID);
            assert_everywhere(&state, CURRENT_ID, CURRENT_SECRET, "after rollback");
        }
        for name in ["AWS_ACCESS_KEY_ID_PENDING", "AWS_SECRET_ACCESS_KEY_PENDING"] {
            assert!(!in_infisical(&state, name), "{then}: {name} is left staged");
        }
    }
}

/// Stopped after propagate; then someone deleted one of the two secrets it set in the same
/// GitHub repository. The rollback reads each secret of the repository by its own name:
/// the deleted one is not created again with the old key id (cold review: the second
/// secret's write was taken to replace the first's, since both name the repository, and only
/// it was read back), and the repository is left alone whole.
#[test]
fn a_rollback_does_not_recreate_one_of_two_github_secrets_deleted_since() {
    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.crash("aws-iam-access-key", "after:propagate");
    assert_eq!(
        rig.sandbox
            .delete_github_secret("raxx/deploy", "AWS_ACCESS_KEY_ID"),
        204
    );
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok).stderr_has(
        "≠ github::set_secret on raxx/deploy: changed since this run (nothing: the secret was deleted since",
    );
    let state = rig.state();
    let repo = &state["github"]["repos"]["raxx/deploy"]["secrets"];
    assert!(
        repo["AWS_ACCESS_KEY_ID"].is_null(),
        "{repo}\n{}",
        out.stdout
    );
}

/// As above, but the retried staging's answer is lost (Infisical applied it and the
/// connection dropped): its outcome is unknown, and the first staging must still be taken
/// for the run's own past once the target reads as the retry wrote it (cold review: only a
/// later write recorded as applied counted, so resume refused for ever).
#[test]
fn a_retried_write_whose_answer_was_lost_is_not_changed_since_this_run() {
    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.crash("aws-iam-access-key", "inside:create#2");
    for method in ["PATCH", "POST"] {
        rig.sandbox.add_fault(&format!(
            "infisical:{method}:/api/v4/secrets/AWS_ACCESS_KEY_ID_PENDING=lost"
        ));
    }
    let lost = rig.resume(&["--no-rollback"]);
    assert_ne!(lost.code, 0, "{}", lost.stderr);
    assert!(
        rig.journal().contains(r#""outcome":"unknown""#),
        "{}",
        rig.journal()
    );
    rig.sandbox.clear_faults();
    let out = rig.resume(&[]);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "{text}");
    assert!(!text.contains("changed since this run"), "{text}");
    let state = rig.state();
    let keys = user_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_everywhere(&state, &keys[0].0, &keys[0].1, "after resume");
}

/// Killed after both halves were staged: resume takes the staged key (no second create).
#[test]
fn a_crash_after_staging_resumes_with_the_staged_key() {
    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.crash("aws-iam-access-key", "after:create");
    let created = user_keys(&rig.state());
    assert_eq!(created.len(), 2);
    assert!(in_infisical(&rig.state(), "AWS_SECRET_ACCESS_KEY_PENDING"));
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    assert_eq!(
        user_keys(&state),
        [created[1].clone()],
        "the key created before the crash is the one in use"
    );
    assert_everywhere(&state, &created[1].0, &created[1].1, "after resume");
}

/// IAM created a key and its answer was lost. The retry does not create blindly (a third
/// key would be refused, and the lost one would stay): it shows the operator the key IAM
/// lists that this run never learned, and deletes it only when told to.
#[test]
fn a_key_whose_create_answer_was_lost_is_shown_before_anything_is_deleted() {
    let rig = Rig::with_scenario(&iam_scenario()).answering(HEALTHY);
    rig.sandbox.add_fault("awsiam:POST:/=lost:once");
    rig.exec("aws-iam-access-key", &["--no-rollback"])
        .exit(Exit::StepFailed);
    let lost = user_keys(&rig.state());
    assert_eq!(lost.len(), 2, "{lost:?}");
    rig.resume(&["--no-rollback"])
        .exit(Exit::StepFailed)
        .stderr_has("prompt 'create.unknown_key' needs an answer")
        .stderr_has(&format!("IAM lists access key {} (created ", lost[1].0));
    assert_eq!(
        user_keys(&rig.state()),
        lost,
        "nothing deleted or created unasked"
    );
    // The rig's answers file, with this answer added.
    rig.file(
        "rig-answers.toml",
        &format!("{HEALTHY}\"create.unknown_key\" = \"delete it and create another\"\n"),
    );
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    let keys = user_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].0 != lost[1].0 && keys[0].0 != CURRENT_ID);
    assert_everywhere(&state, &keys[0].0, &keys[0].1, "after resume");
}

/// The roll succeeds and storing its value in Infisical fails: the run stops (no rollback
/// after a roll). Before, the failed step's context was not journalled, so a resume rolled
/// again without a word, killing the value the first roll issued. Now the journal says the
/// roll happened: resume stops and asks (`--yes` does not answer) before rolling again.
#[test]
fn a_resumed_roll_whose_value_was_never_stored_is_not_rolled_again_unasked() {
    let rig = Rig::with_scenario_text(&with_fault(
        &std::fs::read_to_string(hk_scenario()).unwrap(),
        "infisical:PATCH:/api/v4/secrets/HEROKU_DEPLOY_TOKEN=500:times=4",
    ));
    rig.exec("heroku-authorization", &[]).exit(Exit::StepFailed);
    let rolls = |rig: &Rig| {
        items(&rig.state()["requests"])
            .iter()
            .filter(|r| {
                r["method"] == "POST"
                    && r["path"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("/regenerate-tokens")
            })
            .count()
    };
    assert_eq!(rolls(&rig), 1);
    let (token, stored, _) = hk_state(&rig.state());
    assert_ne!(token, HK_CURRENT, "rolled");
    assert_eq!(stored, HK_CURRENT, "the store failed");

    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("prompt 'regenerate.roll_again' needs an answer")
        .stderr_has("the value it issued never reached Infisical");
    assert_eq!(rolls(&rig), 1, "not rolled again unasked");

    // Here the roll authenticates with the token it rolls, which the first roll killed: the
    // run can go neither on nor back, and is ended as it is, saying what it leaves.
    rig.runbook(
        &[
            "abandon",
            &rig.run_id(),
            "--reason",
            "the rolled token was never stored",
        ],
        &[],
    )
    .exit(Exit::Ok);
    assert_eq!(rolls(&rig), 1);
}

/// The key id a skipped CreateAccessKey would return goes through `secret::from_text` to be
/// staged: under --dry-run that call failed ("no function matches secret::from_text
/// (Placeholder)") and the dry run rolled back at create. It now plans the whole rotation.
#[test]
fn the_dry_run_plans_every_write_of_the_two_value_rotation() {
    crate::support::assert_dry_run_plans(
        "aws-iam-access-key",
        &[
            "create http::post",
            "create infisical::set_secret",
            "create infisical::set_secret",
            "store infisical::set_secret",
            "store infisical::set_secret",
            "propagate heroku::set_config",
            "propagate github::set_secret",
            "propagate github::set_secret",
            "deactivate http::post",
            "delete http::post",
            "audit audit::log",
        ],
    )
    // The wait for IAM to list only the new key cannot end under a dry run: said at once.
    // Before, the dry run sat out its 30-second timeout first.
    .stdout_has("[dry-run] check not verifiable without the skipped writes: not met at the first attempt, and not waited for: ci-deployer to hold only the new key needs the skipped writes");
}

/// `--yes` does not say the apps still work once the old key is inactive, and with no
/// terminal nobody can: the run is refused before it starts, saying how to answer. Before,
/// `--yes` answered it, and the old key was deleted seconds after its deactivation (cold
/// review).
#[test]
fn yes_alone_does_not_answer_whether_the_apps_work_with_the_old_key_inactive() {
    let out = Test::new()
        .rehearse("aws-iam-access-key")
        .scenario("aws.toml", &scenario_text())
        .keep_sandbox_state()
        .args(&["--actor", "ops-test", "--json", "--yes"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("step 'deactivate' asks `deactivate.healthy`, a judgement --yes does not make (only a person can see it: The old key is inactive. Do the apps and CI still work (deploys, jobs, error rates)?), and there is no terminal to ask on")
        .stderr_has("add `\"deactivate.healthy\" = true` to a file passed with --answers");
    assert_lacks("stdout", &out.stdout, "Step 1/");
}
