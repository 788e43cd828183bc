//! The Postmark rotation SOP end to end against the sandbox, asserting on the simulators'
//! final state.

use crate::support::{
    app_token, assert_back_on_old_token, canary_scenario, canary_with, infisical_versions,
    live_tokens, rehearse_postmark, step_ids, step_statuses, writes, Exit, Output, Test, APPS,
    OLD_TOKEN, POSTMARK_STEPS,
};
use crate::support::{assert_everywhere, current_infisical, items, root, served, strs};
use serde_json::Value;

const PREVIOUS: &str = "c0ffee00-0000-4000-8000-00000000c000";

/// [`rehearse_postmark`] as ops-test.
fn postmark(extra: &[&str]) -> Output {
    rehearse_postmark(&[&["--actor", "ops-test"], extra].concat())
}

/// A script of a test's own (`runbook`), rehearsed on `scenario`.
fn script_on(runbook: &str, scenario: &str) -> Test {
    Test::new()
        .file("script.rhai", runbook)
        .rehearse("script.rhai")
        .scenario("script.toml", scenario)
}

/// The rotation rehearsed on `scenario`, the simulators' final state kept: with `--yes`, or
/// with `answers` and the sandbox's test recipient; then `extra`.
fn on_scenario(scenario: &str, answers: Option<&str>, extra: &[&str]) -> Output {
    let t = Test::new()
        .rehearse("postmark")
        .scenario("scenario.toml", scenario)
        .keep_sandbox_state();
    let t = match answers {
        Some(a) => t
            .answers(a)
            .args(&["--param", "test_recipient=ops@sandbox.invalid"]),
        None => t.args(&["--yes"]),
    };
    t.args(extra).run()
}

#[test]
fn happy_path_rotates_everywhere_and_revokes_the_old_token() {
    let out = postmark(&["--yes"]);
    out.exit(Exit::Ok);
    // The repository secret discovery could not read (not in github_repos) is named again
    // right before revoke's question (before, only in precheck's output; hostile review).
    let lines: Vec<&str> = out.stdout.lines().collect();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let said = at("before revoke: raxx/raptor's Actions secret POSTMARK_SERVER_TOKEN may still hold the old token (GitHub cannot show it): a workflow using it fails once the old token is deleted. If it does, answer no at revoke's question");
    let revoke = at(r#""type":"step_reached","index":7"#);
    assert!(
        said.is_some() && said < revoke && said > at(r#""type":"step_reached","index":6"#),
        "{said:?} {revoke:?}\n{}",
        out.stdout
    );
    let report = out.report();
    assert_eq!(report["status"], "succeeded");
    assert!(step_statuses(&report)
        .iter()
        .all(|(_, s)| *s == "completed"));
    assert_eq!(step_ids(&report), POSTMARK_STEPS);

    let state = out.sandbox_state();
    let live = live_tokens(&state);
    assert_eq!(live.len(), 1, "only the new token is left");
    let new = live[0].clone();
    assert_ne!(new, OLD_TOKEN);
    assert_eq!(
        state["postmark"]["servers"][0]["DeletedTokens"],
        serde_json::json!([OLD_TOKEN])
    );
    // Infisical: the new token is a new version on top of the history.
    assert_eq!(
        infisical_versions(&state),
        [PREVIOUS, OLD_TOKEN, new.as_str()]
    );
    for app in APPS {
        assert_eq!(app_token(&state, app), new, "{app} config");
        // One restart per app: the release the config change made. Before, verify
        // restarted every app a second time.
        assert_eq!(
            state["heroku"]["apps"][app]["restarts"], 1,
            "{app} restarted once"
        );
        assert_eq!(
            state["downstream"][app]["failed"], 0,
            "{app} never failed to send"
        );
    }
    assert_eq!(state["downstream_401s"], 0);
    // The validation email went out through the new token, and Raptor's test email too.
    assert_eq!(state["postmark"]["emails"]["by_token"][&new], 2);
    assert_eq!(state["downstream"]["raxx-api-prod"]["test_emails"], 1);
    // The old token is refused with Postmark's 401 (checked by the runbook itself): a GET
    // /server answered 401 after the delete.
    let requests = state["requests"].as_array().unwrap();
    assert!(requests
        .iter()
        .any(|r| r["path"] == "/server" && r["status"] == 401));

    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["actor"], "ops-test");
    assert_eq!(
        done[0]["context"],
        serde_json::json!({
            "method": "operator-assisted-dashboard",
            "secret_name": "POSTMARK_SERVER_TOKEN",
            "server_name": "raxx-prod",
        })
    );
    out.assert_absent(&new);
}

/// Issue 31: the rotation reads nothing twice. The key's scopes come with discovery (one
/// authorization read), Infisical is written without a read first where the run has seen
/// the secret (the precheck read it; discovery listed the folder without the staging copy),
/// and verify reads each app's config back once its dynos are up on the restart.
#[test]
fn the_rotation_reads_nothing_twice_and_reads_the_config_back_after_the_restart() {
    let out = postmark(&["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let requests = items(&state["requests"]);
    let count = |method: &str, path: &str| {
        requests
            .iter()
            .filter(|r| r["method"] == method && r["path"] == path)
            .count()
    };
    assert_eq!(count("GET", "/oauth/authorizations"), 1);
    assert_eq!(count("GET", "/api/v4/secrets/POSTMARK_SERVER_TOKEN"), 1);
    assert_eq!(
        count("GET", "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING"),
        0
    );
    assert_eq!(
        count("POST", "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING"),
        1
    );
    assert_eq!(count("PATCH", "/api/v4/secrets/POSTMARK_SERVER_TOKEN"), 1);
    for app in APPS {
        let config = format!("/apps/{app}/config-vars");
        // Discovery's read, and verify's.
        assert_eq!(count("GET", &config), 2, "{app}");
        let position = |method: &str, path: &str| {
            requests
                .iter()
                .rposition(|r| r["method"] == method && r["path"] == path)
                .unwrap()
        };
        assert!(
            position("GET", &config) > position("GET", &format!("/apps/{app}/dynos")),
            "{app}: the config is read back once the dynos are up"
        );
    }
}

/// Runs the rotation with a fault and checks the rollback left the old token everywhere.
fn fails_and_rolls_back(fault: &str, failed_step: &str) -> (Output, Value) {
    fails_and_rolls_back_with(&[fault], failed_step)
}

fn fails_and_rolls_back_with(faults: &[&str], failed_step: &str) -> (Output, Value) {
    let fault = faults.join(" ");
    let mut args = vec!["--yes"];
    for f in faults {
        args.extend(["--fault", f]);
    }
    let out = postmark(&args);
    out.exit(Exit::StepFailed);
    let report = out.report();
    assert_eq!(report["status"], "rolled_back", "{fault}\n{}", out.stderr);
    assert_eq!(report["failed_step"], failed_step, "{fault}");
    let state = out.sandbox_state();
    assert_back_on_old_token(&state);
    // The engine never deletes the new token: it stays for diagnosis.
    assert_eq!(
        live_tokens(&state).len(),
        2,
        "{fault}: old and new token both remain"
    );
    let new = live_tokens(&state)
        .into_iter()
        .find(|t| t != OLD_TOKEN)
        .unwrap();
    out.assert_absent(&new);
    (out, report)
}

#[test]
fn postmark_500_on_the_validation_email_rolls_back() {
    let (out, report) = fails_and_rolls_back("postmark:POST:/email=500", "validate");
    out.stderr_has("postmark POST /email → 500");
    // Nothing was stored or propagated, so there was nothing to undo but the note on the token.
    assert_eq!(infisical_versions(&out.sandbox_state()).len(), 2);
    assert_eq!(step_statuses(&report)[1], ("generate", "undone"));
}

#[test]
fn infisical_500_on_store_rolls_back_after_retries() {
    let (out, report) = fails_and_rolls_back(
        "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN=500:times=4",
        "store",
    );
    out.stderr_has("infisical PATCH /api/v4/secrets/POSTMARK_SERVER_TOKEN → 500");
    // A 500 does not say the store did nothing, so its undo runs; but Infisical does not
    // hold this run's token, so the undo writes nothing (it used to write the old value
    // back as a version nobody needed), and says so.
    assert_eq!(step_statuses(&report)[3], ("store", "undone"));
    out.stderr_has("may have applied, but does not hold what this run wrote");
    assert_eq!(infisical_versions(&out.sandbox_state()).len(), 2);
    let journal = out.journal();
    assert!(journal.contains(r#""outcome":"unknown""#), "{journal}");
}

/// Infisical applied the store and answered 500; its retry was refused with a long 429.
/// Before, the last answer alone decided: "refused", so the rollback skipped the store's
/// undo, and Infisical kept the new token with the apps back on the old one (and the
/// operator told to delete the new one). A 5xx to a write may have applied whatever a
/// later attempt answers.
#[test]
fn a_store_answered_500_then_refused_on_its_retry_is_in_doubt_and_undone() {
    const PATCH: &str = "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN";
    let (out, report) = fails_and_rolls_back_with(
        &[
            &format!("{PATCH}=committed:once"),
            &format!("{PATCH}=429:retry_after=600:times=1"),
        ],
        "store",
    );
    assert_eq!(step_statuses(&report)[3], ("store", "undone"));
    let state = out.sandbox_state();
    assert_eq!(current_infisical(&state), OLD_TOKEN);
    let journal = out.journal();
    assert!(journal.contains(r#""outcome":"unknown""#), "{journal}");
}

#[test]
fn heroku_500_on_one_app_rolls_back_every_app() {
    let (out, report) = fails_and_rolls_back(
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=500:times=4",
        "propagate",
    );
    out.stderr_has("heroku::set_config failed for 1 of 2 target(s) (1 succeeded)");
    assert_eq!(step_statuses(&report)[4], ("propagate", "undone"));
    let state = out.sandbox_state();
    // prod was switched, then switched back and restarted.
    assert!(
        state["heroku"]["apps"]["raxx-api-prod"]["restarts"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

/// The rotation on `scenario` with Postmark rejecting prod's downstream mail: verify fails
/// after propagate, and the run rolls back (`--yes`).
fn rejected_downstream_on(scenario: &str) -> Output {
    let out = Test::new()
        .rehearse("postmark")
        .scenario("scenario.toml", scenario)
        .args(&[
            "--json",
            "--yes",
            "--fault",
            "raptor:POST:/raxx-api-prod/postmark/email=401",
        ])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::StepFailed);
    out
}

/// The rollback of propagate is done when the apps run the old token again: with preboot,
/// once the traffic has left the dynos that hold the new one. Before, it ended right after
/// the restart's 202, while those dynos still served: deleting the new token then, as an
/// operator cleaning up might, would have broken them.
#[test]
fn the_rollback_of_propagate_waits_until_the_old_token_serves_again() {
    let scenario = canary_with(
        "name = \"raxx-api-prod\"\n",
        "name = \"raxx-api-prod\"\npreboot = true\npreboot_window_ms = 2000\nboot_ms = 0\n",
    );
    let out = rejected_downstream_on(&scenario);
    assert_eq!(out.report()["status"], "rolled_back");
    // Verify waited out the window after propagate's change, and the undo after its own.
    assert_eq!(
        out.stdout
            .matches("raxx-api-prod: preboot is on: its old web dynos keep the traffic")
            .count(),
        2,
        "{}",
        out.stdout
    );
    let state = out.sandbox_state();
    assert_back_on_old_token(&state);
    // The undo's restart, then the prebooted dynos (on the old token) taking the traffic.
    let logs = crate::support::app_logs(&state, "raxx-api-prod");
    let restarted = logs
        .iter()
        .rposition(|l| l.ends_with(": Restarting"))
        .expect("the undo restarted the app");
    assert!(
        logs[restarted..]
            .iter()
            .any(|l| l.contains("replaced by the prebooted dyno")),
        "{:#?}",
        &logs[restarted..]
    );
}

/// The rollback of propagate tells apps still on the new token from apps already restored
/// by the vars this run set, not by every config var: a plain setting (a region, a locale)
/// is text, and a Secret is not compared with text. Before, an app with such a var sorting
/// before the token made every rollback of propagate fail.
#[test]
fn the_rollback_of_propagate_passes_apps_with_plain_settings() {
    let scenario = canary_with(
        "config = { POSTMARK_SERVER_TOKEN",
        "config = { AWS_REGION = \"us-east-1\", LANG = \"en_US.UTF-8\", POSTMARK_SERVER_TOKEN",
    );
    let out = rejected_downstream_on(&scenario);
    let report = out.report();
    assert_eq!(report["status"], "rolled_back", "{}", out.stderr);
    assert_eq!(step_statuses(&report)[4], ("propagate", "undone"));
    assert_back_on_old_token(&out.sandbox_state());
}

#[test]
fn raptor_rejected_by_postmark_fails_verify_and_rolls_back() {
    let (out, _) = fails_and_rolls_back("raptor:POST:/raxx-api-prod/postmark/email=401", "verify");
    out.stderr_has("Raptor test email: expected HTTP 200, got 502");
    // The undo says what it put back, masked: the old token's last characters.
    out.stderr_has("raxx-api-prod: POSTMARK_SERVER_TOKEN restored to secret(…c001) (new release, dynos restart)")
        .stderr_has("POSTMARK_SERVER_TOKEN in raxx-project:prod/: restored to secret(…c001) (version 4)");
}

#[test]
fn a_401_in_the_logs_fails_verify_and_rolls_back() {
    let (out, _) =
        fails_and_rolls_back("raptor:POST:/raxx-api-staging/postmark/email=401", "verify");
    out.stderr_has("raxx-api-staging logged a Postmark auth failure after the restart")
        .stderr_has("InvalidAPIToken");
}

#[test]
fn three_tokens_stop_in_precheck_with_no_writes() {
    let scenario = canary_with("id = 4242\n", "id = 4242\nfill_tokens_to_limit = true\n");
    let out = on_scenario(&scenario, None, &["--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("server 'raxx-prod' already has 3 API tokens, Postmark's maximum")
        .stderr_has("delete an unused token in the dashboard");
    assert_eq!(out.report()["failed_step"], "precheck");
    assert_no_writes(&out.sandbox_state());
}

#[test]
fn wrong_server_stops_in_precheck_with_no_writes() {
    let out = postmark(&["--yes", "--param", "server_name=raxx-staging"]);
    out.exit(Exit::StepFailed).stderr_has(
        "the token in Infisical belongs to Postmark server 'raxx-prod', not 'raxx-staging'",
    );
    assert_eq!(out.report()["failed_step"], "precheck");
    assert_no_writes(&out.sandbox_state());
}

/// Nothing was changed: no write, no new version in Infisical, no email sent.
fn assert_no_writes(state: &Value) {
    let writes = writes(state);
    assert!(writes.is_empty(), "unexpected writes: {writes:?}");
    assert_eq!(infisical_versions(state).len(), 2);
    assert_eq!(state["postmark"]["emails"]["count"], 0);
}

#[test]
fn dry_run_reads_for_real_and_changes_nothing() {
    let out = postmark(&["--dry-run"]);
    out.exit(Exit::Ok);
    let report = out.report();
    assert_eq!(report["dry_run"], true);
    let planned: Vec<&str> = strs(&report["planned_writes"], "function");
    assert_eq!(
        planned,
        [
            "postmark::dashboard_new_token",
            "infisical::set_secret",
            "postmark::send_email",
            "infisical::set_secret",
            // propagate: the staging copy's removal is sent beside the apps' changes
            "heroku::set_config",
            "infisical::delete_secret",
            "http::post",
            "postmark::dashboard_delete_token",
            "audit::log",
        ]
    );
    let state = out.sandbox_state();
    assert_eq!(live_tokens(&state), [OLD_TOKEN]);
    assert_no_writes(&state);
    // The reads really happened.
    assert!(items(&state["requests"])
        .iter()
        .any(|r| r["path"] == "/server"));
    // No audit entry of a mutating call under dry-run.
    assert!(out.audit().is_empty(), "dry-run must not audit writes");
}

#[test]
fn show_lists_every_step_with_undo_and_the_irreversible_revoke() {
    let out = Test::new()
        .shipped_runbooks()
        .args(&["show", "postmark"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("Rotate the Postmark server API token (postmark-server-token)")
        .stdout_has("  1. precheck · Pre-rotation checks: the current token works")
        .stdout_has("  4. store · Store the new token in Infisical  [undo]")
        .stdout_has("  7. revoke · Revoke the old token  [IRREVERSIBLE, asks for confirmation]")
        .stdout_has("Max 3 active tokens per server.")
        .stdout_has("https://postmarkapp.com/developer/api/server-api");
}

/// The validation emails go to an address the operator names; the runbook has no personal
/// default. A real run without one stops before any question or write; a rehearsal gets the
/// sandbox's own address.
#[test]
fn the_test_recipient_is_never_a_default_address() {
    let out = Test::new()
        .shipped_runbooks()
        .env_remove("POSTMARK_TEST_RECIPIENT")
        .args(&["exec", "postmark", "--yes"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("param 'test_recipient' is required and has no value")
        .stderr_has("pass --param test_recipient=... or set POSTMARK_TEST_RECIPIENT");
    assert!(!out.stdout.contains("Prerequisites"), "{}", out.stdout);
    let out = postmark(&["--yes"]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    assert!(
        items(&state["postmark"]["messages"])
            .iter()
            .all(|m| m["To"] == "rehearsal@sandbox.invalid"),
        "{}",
        state["postmark"]["messages"]
    );
}

/// Postmark refuses a sender that is not a confirmed Sender Signature (422 ErrorCode 400)
/// and a suppressed recipient (406). Before, the sandbox accepted any `From` with an `@`, so
/// a rehearsal passed where production would fail at validate.
#[test]
fn an_unconfirmed_sender_or_an_inactive_recipient_stops_validate_with_guidance() {
    let out = postmark(&["--yes", "--param", "sender=ops@unconfirmed.example"]);
    out.exit(Exit::StepFailed)
        .stderr_has("Postmark refused the sender ops@unconfirmed.example: it is not a confirmed Sender Signature (ErrorCode 400)")
        .stderr_has("pass --param sender=ADDRESS (or set POSTMARK_SENDER)");
    let report = out.report();
    assert_eq!(report["status"], "rolled_back", "{report}");
    assert_eq!(report["failed_step"], "validate", "{report}");
    assert_back_on_old_token(&out.sandbox_state());

    let scenario = canary_with(
        "token_limit = 3",
        "token_limit = 3\ninactive_recipients = [\"bounced@sandbox.invalid\"]",
    );
    let out = on_scenario(
        &scenario,
        None,
        &["--param", "test_recipient=bounced@sandbox.invalid"],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("Postmark refused the recipient bounced@sandbox.invalid: it is marked inactive")
        .stderr_has("pass --param test_recipient=ADDRESS");
}

/// A permission refusal is Infisical's 403 PermissionDenied, not TokenError: the engine
/// reports it as a permission problem and does not log in again (before, the sandbox's 403
/// was a TokenError and sent the engine down its re-login path).
#[test]
fn an_infisical_permission_refusal_is_reported_as_such_without_logging_in_again() {
    let (out, _) = fails_and_rolls_back(
        "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN=403",
        "store",
    );
    out.stderr_has("infisical PATCH /api/v4/secrets/POSTMARK_SERVER_TOKEN → 403")
        .stderr_has("PermissionDenied")
        .stderr_has("the identity lacks permission on this project, environment or path");
    let state = out.sandbox_state();
    assert_eq!(state["infisical"]["logins"], 0, "{}", state["infisical"]);
}

/// Infisical refuses to create a secret in a folder that does not exist, and a project the
/// identity cannot see is a 403.
#[test]
fn infisical_refuses_a_missing_folder_and_an_unseen_project() {
    let runbook = r#"runbook(#{ id: "folders", title: "Folders" });
param("path", #{ default: "/missing", help: "where" });
param("project", #{ default: "raxx-project", help: "which project" });
step("store", "Store", |ctx| {
    infisical::set_secret("NEW_ONE", secret::from_env("NEW_VALUE"), #{ project_id: ctx.params.project, env: "prod", path: ctx.params.path });
}).no_undo("a test");
"#;
    let run = |extra: &[&str]| {
        Test::new()
            .file("folders.rhai", runbook)
            .env("NEW_VALUE", "folder-test-value-1234")
            .rehearse("folders.rhai")
            .canary()
            .args(&["--yes"])
            .args(extra)
            .run()
    };
    let out = run(&[]);
    out.exit(Exit::StepFailed)
        .stderr_has("Folder with path '/missing' in environment with slug 'prod' not found");
    let out = run(&["--param", "project=someone-elses"]);
    out.exit(Exit::StepFailed)
        .stderr_has("→ 403")
        .stderr_has("You are not allowed to access project 'someone-elses'");
    let out = run(&["--param", "path=/"]);
    out.exit(Exit::Ok);
}

/// Fir-generation apps keep no log history: their log sessions stream only what comes
/// next. Before, verify skipped a Fir app's log scan (a read after the email had nothing to
/// read), so a Fir app failing at Postmark after the restart passed. Its tail, opened
/// beside the dyno wait, brings what it logs during verify: a clean one passes, one that
/// logs a 401 fails verify and is rolled back.
#[test]
fn a_fir_apps_log_is_scanned_from_its_stream() {
    let fir = canary_with(
        "name = \"raxx-api-staging\"",
        "name = \"raxx-api-staging\"\ngeneration = \"fir\"",
    );
    let out = on_scenario(&fir, None, &[]);
    out.exit(Exit::Ok);
    assert!(
        !out.stdout.contains("log scan is skipped"),
        "{}",
        out.stdout
    );
    assert_ne!(
        app_token(&out.sandbox_state(), "raxx-api-staging"),
        OLD_TOKEN
    );
    let out = on_scenario(
        &fir,
        None,
        &[
            "--fault",
            "raptor:POST:/raxx-api-staging/postmark/email=401",
        ],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("raxx-api-staging logged a Postmark auth failure after the restart")
        .stderr_has("InvalidAPIToken");
    assert_back_on_old_token(&out.sandbox_state());
}

/// Answers for every question of the rotation, `message_id` for verify's about a MessageID
/// no log showed.
fn answers_with_message_id(message_id: bool) -> String {
    format!(
        "prerequisites = true\n\"validate.received\" = true\n\"verify.message_id\" = {message_id}\n\"revoke.confirm\" = true\n"
    )
}

/// The SOP: "confirm the Raptor logs show MessageID returned by Postmark". Verify waits on
/// the consumers' log streams for the MessageID Raptor returned. An app that does not log
/// it (LOG_LEVEL=warn) makes verify ask whether to go on without it: no stops the step,
/// saying how to run without the check; `--yes` goes on, saying so; `log_wait=0` does not
/// ask. Before, verify never looked for the MessageID.
#[test]
fn verify_waits_for_raptors_message_id_in_the_logs() {
    // Raptor on prod (the app its test email goes to) logs failures only.
    let quiet = canary_with(
        "RAPTOR_ENV = \"production\"",
        "RAPTOR_ENV = \"production\", LOG_LEVEL = \"warn\"",
    );
    let question = "No consumer's Heroku log showed Raptor's MessageID";
    let out = on_scenario(
        &quiet,
        Some(&answers_with_message_id(false)),
        &["--param", "log_wait=1", "--no-rollback"],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("no consumer's Heroku log showed Raptor's MessageID")
        .stderr_has("within 1s")
        .stderr_has(
            "if Raptor does not log the MessageID, run the rotation with --param log_wait=0",
        );
    assert!(
        live_tokens(&out.sandbox_state()).contains(&OLD_TOKEN.to_string()),
        "not revoked"
    );
    let out = on_scenario(&quiet, None, &["--param", "log_wait=1"]);
    out.exit(Exit::Ok)
        .stdout_has(question)
        .stdout_has("going on without Raptor's MessageID in the logs");
    let out = on_scenario(&quiet, None, &["--param", "log_wait=0"]);
    out.exit(Exit::Ok);
    assert!(!out.stdout.contains(question), "{}", out.stdout);
    // Out of range: refused in precheck, before the token goes anywhere (verify would
    // refuse it after).
    let out = on_scenario(&quiet, None, &["--param", "log_wait=99999"]);
    out.exit(Exit::StepFailed)
        .stderr_has("log_wait must be 0 to 3600 seconds (it is 99999)");
    assert_eq!(
        live_tokens(&out.sandbox_state()),
        vec![OLD_TOKEN.to_string()]
    );
}

/// The stdlib's log scan (every runbook's verify through `consumers::steps`) looked for a
/// whole-word 401 in every line since the restart: a busy app's router logs its clients'
/// failed logins (`heroku[router]: … status=401`), and the scan failed a rotation that
/// worked. It reads the app's own lines; a vendor's refusal there still fails it.
#[test]
fn the_stdlib_log_scan_reads_the_apps_own_lines() {
    let runbook = r#"import "std/consumers" as consumers;
runbook(#{ id: "scan", title: "Scan" });
step("scan", "Scan the logs", |ctx| {
    consumers::scan_logs(#{ heroku: ["raxx-api-staging"] }, ["401", "unauthorized"], 300);
    print("no error logged");
}).no_undo("reads");
"#;
    let busy = canary_with(
        "name = \"raxx-api-staging\"",
        "name = \"raxx-api-staging\"\nclient_401s = true",
    );
    script_on(runbook, &busy)
        .args(&["--yes"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("no error logged");
    script_on(
        runbook,
        &crate::support::with_fault(&busy, "raptor:POST:/raxx-api-staging/postmark/email=401"),
    )
    .args(&["--yes"])
    .run()
    .exit(Exit::StepFailed)
    .stderr_has("raxx-api-staging logged an error after the restart");
}

/// Heroku's log delivery lags: the email's line reaches the log stream after Raptor has
/// answered. Verify waits for it on the stream (a read right after the email, as before,
/// would miss it), so it is found and nothing is asked.
#[test]
fn verify_waits_for_a_message_id_that_the_log_delivers_late() {
    let late = canary_with(
        "name = \"raxx-api-prod\"",
        "name = \"raxx-api-prod\"\nlog_delay_ms = 400",
    );
    let out = on_scenario(&late, Some(&answers_with_message_id(false)), &[]);
    out.exit(Exit::Ok);
    assert!(
        !out.stdout.contains("No consumer's Heroku log showed"),
        "{}",
        out.stdout
    );
}

/// `heroku logs --tail | grep -i postmark`: a busy app's router logs its clients' failed
/// logins (`status=401`) all through verify; those are not Postmark refusing the token.
/// Before, every line since the restart was scanned for a whole-word 401, and verify
/// failed (and with `--yes` rolled back) a rotation that worked.
#[test]
fn a_clients_401_in_the_router_log_does_not_fail_verify() {
    let busy = canary_with(
        "name = \"raxx-api-staging\"",
        "name = \"raxx-api-staging\"\nclient_401s = true",
    );
    let out = on_scenario(&busy, None, &[]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let logs = crate::support::app_logs(&state, "raxx-api-staging");
    let changed = logs
        .iter()
        .position(|l| l.contains("Set POSTMARK_SERVER_TOKEN config vars by"))
        .expect("the config change is logged");
    assert!(
        logs[changed..].iter().any(|l| l.contains("status=401")),
        "a client's 401 after the change: {logs:#?}"
    );
}

/// A restart answers 202 before the dynos boot. `heroku::wait_up` waits for them and, when
/// they do not come up in time, fails naming the app and its dyno states.
#[test]
fn wait_up_waits_for_booting_dynos_and_names_the_ones_that_never_come_up() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"",
        "name = \"raxx-api-staging\"\nboot_ms = 600000",
    );
    let runbook = r#"runbook(#{ id: "boot", title: "Boot" });
step("restart", "Restart and wait", |ctx| {
    heroku::restart(["raxx-api-prod", "raxx-api-staging"]);
    heroku::wait_up(["raxx-api-prod", "raxx-api-staging"], #{ timeout: 1 });
}).no_undo("a restart");
"#;
    let out = script_on(runbook, &scenario).args(&["--yes"]).run();
    out.exit(Exit::StepFailed)
        .stderr_has("heroku::wait_up: not up after 1s: raxx-api-staging (web.1 starting)");
    assert!(!out.stderr.contains("raxx-api-prod ("), "{}", out.stderr);
}

/// The canary scenario with a secret-approval policy on `prod`.
fn protected_scenario(approver: &str) -> String {
    let canary = canary_scenario();
    // `everyone`: Infisical's policies skip machine identities, the run's kind of caller.
    format!("{canary}\n[[infisical.approval_policies]]\nname = \"prod-review\"\nenvironment = \"prod\"\napplies_to = \"everyone\"\n{approver}")
}

/// On an environment with a secret-approval policy Infisical answers a write with a change
/// request (`{"approval": ...}`) and changes nothing until an approver merges it. Before,
/// the engine failed the store step on that answer and the sandbox could not rehearse it;
/// now each write waits for the merge (reading the secret) and the rotation completes.
/// Where the policy applies to the run's identity, staging costs two requests of its own
/// (the copy, and its removal at store): three in all, each merged before the run goes on.
#[test]
fn a_protected_environment_waits_for_the_change_request_and_the_rotation_completes() {
    let out = on_scenario(&protected_scenario("approve_after_ms = 300"), None, &[]);
    out.exit(Exit::Ok)
        .stdout_has("POSTMARK_SERVER_TOKEN: Infisical filed change request update-")
        .stdout_has("(a secret-approval policy covers prod at /)")
        .stdout_has("(change request update-");
    let state = out.sandbox_state();
    let approvals = state["infisical"]["approvals"].as_array().unwrap();
    let filed: Vec<(&str, &str, Option<bool>, &str)> = approvals
        .iter()
        .map(|a| {
            (
                a["op"].as_str().unwrap(),
                a["secretKey"].as_str().unwrap(),
                a["hasMerged"].as_bool(),
                a["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        filed,
        [
            (
                "create",
                "POSTMARK_SERVER_TOKEN_PENDING",
                Some(true),
                "close"
            ),
            ("update", "POSTMARK_SERVER_TOKEN", Some(true), "close"),
            (
                "delete",
                "POSTMARK_SERVER_TOKEN_PENDING",
                Some(true),
                "close"
            ),
        ]
    );
    let versions = infisical_versions(&state);
    assert_eq!(versions.len(), 3);
    let new = versions[2].clone();
    assert_ne!(new, OLD_TOKEN);
    for app in APPS {
        assert_eq!(app_token(&state, app), new, "{app}");
    }
}

/// The change requests filed for POSTMARK_SERVER_TOKEN itself, in the rig's sandbox.
fn token_requests(rig: &crate::support::Rig) -> Vec<Value> {
    items(&rig.state()["infisical"]["approvals"])
        .iter()
        .filter(|a| a["secretKey"] == "POSTMARK_SERVER_TOKEN")
        .cloned()
        .collect()
}

/// The protected scenario where an approver merges the staging copy at once and leaves the
/// request for the secret itself waiting.
fn store_waits_scenario() -> String {
    protected_scenario("approve_keys = [\"POSTMARK_SERVER_TOKEN_PENDING\"]")
}

/// Ctrl-C while the store step waits for its change request: the write is pending on that
/// request, not "an answer lost" (cold review: the request's id never reached the journal,
/// so a rollback said the write "did not apply" and reported success while the request
/// could still be merged, and a retry would file a second one). The rollback names it.
#[test]
fn ctrl_c_while_a_change_request_waits_leaves_the_write_pending_on_it() {
    use crate::support::Rig;
    let rig = Rig::with_scenario_text(&store_waits_scenario());
    let mut cmd = rig.command(
        &["exec", "postmark", "--yes", "--param", "approval_wait=60"],
        &[],
    );
    cmd.stderr(std::process::Stdio::piped());
    // The store's own request (the staging copy's is merged at once in this scenario).
    let (mut child, mut lines) = crate::support::start_until(
        &mut cmd,
        "POSTMARK_SERVER_TOKEN: Infisical filed change request",
    );
    for line in lines.by_ref() {
        if line.unwrap().contains("waiting up to 60s") {
            break;
        }
    }
    crate::support::signal(&child, libc::SIGINT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let filed = token_requests(&rig);
    assert_eq!(filed.len(), 1, "{filed:?}");
    let slug = filed[0]["slug"].as_str().unwrap();
    let journal = rig.journal();
    assert!(
        journal.contains(r#""outcome":"pending","filed":{"id":"#) && journal.contains(slug),
        "{journal}"
    );
    rig.rollback(&[]).stderr_has(&format!(
        "change request {slug} is still open, not merged: an approver merging it would apply it"
    ));
}

/// A run with a person's session (a user JWT, which Infisical's approval policies cover and
/// which may read change requests) whose store was filed as a change request, and an
/// approver who closes it without merging. Before, every resume waited on the closed request
/// again ("from an earlier attempt is still open") and filed nothing new: the run could
/// never go forward (cold review). Now the closed request is named as refused, the next
/// resume files a new one, and once that is merged the rotation completes.
#[test]
fn a_change_request_closed_without_merging_is_not_waited_on_again() {
    use crate::support::Rig;
    const USER: &str = "user-session-jwt-0000000000000001";
    let scenario = canary_scenario().replacen(
        "[infisical]\n",
        &format!("[infisical]\nuser_token = \"{USER}\"\n"),
        1,
    );
    let scenario = format!(
        "{scenario}\n[[infisical.approval_policies]]\nname = \"prod-review\"\nenvironment = \"prod\"\napprove_keys = [\"POSTMARK_SERVER_TOKEN_PENDING\"]\n"
    );
    let rig = Rig::with_scenario_text(&scenario);
    let as_user = [("INFISICAL_TOKEN", USER)];
    let wait = ["--no-rollback", "--param", "approval_wait=1"];
    let requests = token_requests;
    let mut exec = vec!["exec", "postmark", "--yes"];
    exec.extend_from_slice(&wait);
    rig.runbook(&exec, &as_user).exit(Exit::StepFailed);
    let first = requests(&rig);
    assert_eq!(first.len(), 1, "{first:?}");
    let first = first[0]["id"].as_str().unwrap().to_string();
    assert_eq!(rig.sandbox.decide_change_request(&first, false), 200);
    let run_id = rig.run_id();
    // A resume keeps the run's params (approval_wait=1).
    let resume = ["resume", run_id.as_str(), "--yes", "--no-rollback"];
    rig.runbook(&resume, &as_user)
        .exit(Exit::StepFailed)
        .stderr_has("was closed without being merged: an approver refused the change")
        .stderr_has("`runbook resume` files a new change request for it");
    assert_eq!(
        requests(&rig).len(),
        1,
        "nothing filed while the refusal is said"
    );
    // The next resume files a new request, and waits on it.
    rig.runbook(&resume, &as_user)
        .exit(Exit::StepFailed)
        .stderr_has("runbook::vendor::pending_approval");
    let filed = requests(&rig);
    assert_eq!(filed.len(), 2, "{filed:?}");
    let second = filed[1]["id"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(rig.sandbox.decide_change_request(&second, true), 200);
    rig.runbook(&resume, &as_user).exit(Exit::Ok);
    crate::support::assert_rotated(&rig.state(), "after the second request was merged");

    // Refused, the request is not "still open" anywhere: a rollback does not tell the
    // operator that an approver merging it would apply it (cold review).
    let rig = Rig::with_scenario_text(&scenario);
    rig.runbook(&exec, &as_user).exit(Exit::StepFailed);
    let request = requests(&rig)[0].clone();
    let (id, slug) = (
        request["id"].as_str().unwrap(),
        request["slug"].as_str().unwrap(),
    );
    assert_eq!(rig.sandbox.decide_change_request(id, false), 200);
    let run_id = rig.run_id();
    let resume = ["resume", run_id.as_str(), "--yes", "--no-rollback"];
    rig.runbook(&resume, &as_user).exit(Exit::StepFailed);
    let out = rig.runbook(&["rollback", run_id.as_str(), "--yes"], &as_user);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !text.contains(&format!("change request {slug} is still open")),
        "{text}"
    );
    assert!(
        !text.contains(&format!("change request {slug} from an earlier")),
        "{text}"
    );
}

/// Infisical applies secret-approval policies to users; the run's machine identity writes
/// directly (Infisical's secret routes check the actor's type). Before, the sandbox filed a
/// change request for it, so a rehearsal waited for approvals production never asks for.
#[test]
fn a_policy_for_users_lets_the_runs_machine_identity_store_directly() {
    let scenario = format!(
        "{}\n[[infisical.approval_policies]]\nname = \"prod-review\"\nenvironment = \"prod\"\n",
        canary_scenario()
    );
    let out = on_scenario(&scenario, None, &[]);
    out.exit(Exit::Ok);
    assert!(
        !out.stdout.contains("filed change request"),
        "{}",
        out.stdout
    );
    let state = out.sandbox_state();
    assert!(items(&state["infisical"]["approvals"]).is_empty());
    let versions = infisical_versions(&state);
    assert_eq!(versions.len(), 3, "stored directly: {versions:?}");
}

/// A send's 200 says Postmark accepted the email, not that it was delivered. Validate reads
/// what Postmark made of it once processed (`/messages/outbound/{id}/details`): a hard
/// bounce of the test address fails the step, before anything is stored, naming the
/// address and the fix. Before, the validation passed on the 200.
#[test]
fn a_validation_email_that_bounces_fails_validate_before_any_store() {
    let scenario = canary_with(
        "[postmark]",
        "[postmark]\nbounce = [\"rehearsal@sandbox.invalid\"]",
    );
    let out = on_scenario(&scenario, None, &["--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("Postmark bounced the validation email to rehearsal@sandbox.invalid")
        .stderr_has("pass --param test_recipient=ADDRESS");
    assert_eq!(out.report()["failed_step"], "validate");
    let state = out.sandbox_state();
    assert_eq!(infisical_versions(&state).len(), 2, "nothing stored");
    for app in APPS {
        assert_eq!(app_token(&state, app), OLD_TOKEN, "{app}");
    }
}

/// With a release phase, a config change takes effect only when the release command
/// succeeds; until then the dynos run the previous release, with the old token. Verify waits
/// for a pending release and completes the rotation; a failed release stops verify before
/// revoke, so the old token the dynos still use is never deleted. Before, the rotation
/// revoked it while the app still ran on it.
#[test]
fn a_release_phase_is_waited_for_and_a_failed_one_stops_before_revoke() {
    let phase = |outcome: &str| {
        canary_with(
            "name = \"raxx-api-staging\"\n",
            &format!("name = \"raxx-api-staging\"\nrelease_phase = {{ duration_ms = 300, outcome = \"{outcome}\" }}\n"),
        )
    };
    let out = on_scenario(&phase("succeeded"), None, &[]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let new = infisical_versions(&state)[2].clone();
    assert_eq!(app_token(&state, "raxx-api-staging"), new);
    assert!(
        !live_tokens(&state).contains(&OLD_TOKEN.to_string()),
        "revoked at the end"
    );

    let out = on_scenario(&phase("failed"), None, &["--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("raxx-api-staging: release v")
        .stderr_has("is failed: its dynos run the last release that succeeded, which may not hold the change");
    // The rollback's own release fails too: the dynos run the last release that succeeded,
    // which this rollback cannot tell apart from the new token's, so it stops, saying what to
    // fix, rather than report a rollback it cannot vouch for (or wait for a release that
    // never comes).
    out.stderr_has("which puts the previous config back, is failed: the dynos run the last release that succeeded, which may hold the value being rolled back")
        .stderr_has("then run the rollback again; keep that value valid until it passes");
    let report = out.report();
    assert_eq!(report["failed_step"], "verify");
    assert_eq!(report["status"], "failed");
    assert_eq!(step_statuses(&report)[4], ("propagate", "undo_failed"));
    assert!(
        live_tokens(&out.sandbox_state()).contains(&OLD_TOKEN.to_string()),
        "the old token was not revoked"
    );
}

/// A change request nobody merges in time fails the store step as pending approval, with
/// what to do; the rollback changes nothing in Infisical (the value was never applied) and
/// warns that the open request could still be merged.
#[test]
fn an_unmerged_change_request_stops_store_with_guidance_and_the_rollback_warns() {
    let out = on_scenario(
        &store_waits_scenario(),
        None,
        &["--json", "--param", "approval_wait=1"],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("Step 'store' failed")
        .stderr_has("runbook::vendor::pending_approval")
        .stderr_has("was not merged within 1s; the change waits for approval")
        .stderr_has("To abandon the change instead, close the request in Infisical first, then roll back")
        // The rollback's refresh names the open request before any undo runs.
        .stderr_has("! infisical::set_secret on POSTMARK_SERVER_TOKEN in raxx-project:prod/: change request update-")
        .stderr_has("is still open, not merged: an approver merging it would apply it")
        // The store's undo does not pass it by: before, it warned, the run settled as
        // rolled back and unlocked, and an approver merging the request the next morning
        // put the new token in Infisical (cold review).
        .stderr_has("✗ undo of 'store' failed:")
        .stderr_has("(filed by this run for its new value) may still be open (it cannot be read with this identity, and nobody said it is closed)")
        .stderr_has("close change request update-")
        .stderr_has("and say it is closed: at a terminal, or `\"store.request_closed\" = true` in an answers file");
    assert_ne!(out.report()["status"], "rolled_back");
    let state = out.sandbox_state();
    let open: Vec<&Value> = items(&state["infisical"]["approvals"])
        .iter()
        .filter(|a| a["status"] == "open")
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["secretKey"], "POSTMARK_SERVER_TOKEN");
    assert_back_on_old_token(&state);
    assert_eq!(infisical_versions(&state).len(), 2);

    // The operator closed it (a machine identity cannot read requests): said in an answers
    // entry, which `--yes` alone never gives, the rollback goes past it.
    let out = on_scenario(
        &store_waits_scenario(),
        Some("\"store.request_closed\" = true\n"),
        &["--yes", "--json", "--param", "approval_wait=1"],
    );
    out.exit(Exit::StepFailed);
    assert_eq!(out.report()["status"], "rolled_back", "{}", out.stderr);
}

/// The read that follows the change request fails while store waits on it (Infisical
/// answers 500 from then on). Before, the write was recorded as refused, without its
/// request: the rollback took the store as never applied and did not name the request, so
/// an approver merging it later put the new token into Infisical after the rollback. Now
/// the write stays pending on its request, named as a timeout's is (cold review).
#[test]
fn a_failed_read_while_waiting_on_a_change_request_keeps_the_write_pending_on_it() {
    let out = on_scenario(
        &store_waits_scenario(),
        None,
        &[
            "--param",
            "approval_wait=30",
            "--fault",
            "infisical:GET:/api/v4/secrets/POSTMARK_SERVER_TOKEN=500:after=1",
        ],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::vendor::pending_approval")
        .stderr_has("could not be followed: a read during the wait failed")
        .stderr_has("is still open, not merged: an approver merging it would apply it");
    let journal = out.journal();
    assert!(
        journal.contains(r#""function":"infisical::set_secret","target":"POSTMARK_SERVER_TOKEN in raxx-project:prod/","outcome":"pending","filed":{"#),
        "{journal}"
    );
    let state = out.sandbox_state();
    let open = items(&state["infisical"]["approvals"])
        .iter()
        .filter(|a| a["status"] == "open")
        .count();
    assert_eq!(open, 1);
}

/// A retry of a store step whose change request is still open waits on that request; it
/// does not file a second one (which an approver could merge after closing the first).
#[test]
fn a_retry_waits_on_the_same_change_request_instead_of_filing_another() {
    let answers =
        "prerequisites = true\n\"validate.received\" = true\n\"store.on-failure\" = \"retry\"\n";
    let out = on_scenario(
        &store_waits_scenario(),
        Some(answers),
        &["--param", "approval_wait=1"],
    );
    out.exit(Exit::StepFailed)
        .stdout_has("step 'store' filed a change for approval that is not merged yet; it runs again and waits on the same request")
        .stdout_has("from an earlier attempt is still open");
    let state = out.sandbox_state();
    let updates: Vec<&Value> = items(&state["infisical"]["approvals"])
        .iter()
        .filter(|a| a["secretKey"] == "POSTMARK_SERVER_TOKEN")
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(infisical_versions(&state).len(), 2);
}

/// The canary scenario with the Heroku key limited to `scopes` (a TOML array).
fn scoped_scenario(scopes: &str) -> String {
    canary_with(
        "api_key = \"canary-heroku-key-0123456789\"",
        &format!("api_key = \"canary-heroku-key-0123456789\"\nscopes = {scopes}"),
    )
}

/// Heroku keys can be scoped: `read`/`write` cannot see config vars. Before, the sandbox
/// took any key for anything, so a rehearsal passed with a key production refuses. Now a
/// key that cannot read them stops precheck, before any write, with how to get one.
#[test]
fn a_heroku_key_that_cannot_read_config_vars_stops_precheck_with_no_writes() {
    let out = on_scenario(&scoped_scenario("[\"read\", \"write\"]"), None, &["--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("heroku GET /apps/raxx-api-prod/config-vars → 403")
        .stderr_has("does not have the read-protected scope")
        .stderr_has("heroku authorizations:create --scope read-protected,write-protected");
    assert_eq!(out.report()["failed_step"], "precheck");
    assert_no_writes(&out.sandbox_state());
}

/// A scoped key cannot list its own scopes (only a global key may list authorizations), so
/// precheck asks whether it has write-protected; "no" stops before any write. A global key
/// is checked from its authorization and asks nothing (the happy path).
#[test]
fn a_scoped_key_without_write_protected_stops_precheck_with_no_writes() {
    let answers = "prerequisites = true\n\"precheck.heroku_write_scope\" = false\n";
    let out = on_scenario(
        &scoped_scenario("[\"read-protected\"]"),
        Some(answers),
        &["--json"],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("the Heroku key may not be able to change config vars (write-protected)");
    assert_eq!(out.report()["failed_step"], "precheck");
    assert_no_writes(&out.sandbox_state());

    let out = postmark(&["--yes"]);
    out.exit(Exit::Ok);
    assert!(!out.stdout.contains("scoped token"), "{}", out.stdout);
}

/// Infisical says how long to wait in its 429's message (it sends no rate-limit headers).
/// A wait longer than a run should take (here 10 minutes) is reported at once with that
/// wait, not retried early into another refusal.
#[test]
fn a_long_infisical_rate_limit_is_reported_with_its_wait_and_not_retried_early() {
    let (out, _) = fails_and_rolls_back(
        "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN=429:retry_after=600",
        "store",
    );
    out.stderr_has("Rate limit exceeded. Please try again in 600 seconds")
        .stderr_has("infisical is rate limiting us; wait 600s and retry the step");
    let state = out.sandbox_state();
    let refused: Vec<&Value> = items(&state["requests"])
        .iter()
        .filter(|r| r["method"] == "PATCH" && r["status"] == 429)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

/// The canary scenario with more places holding the current token than the runbook lists.
fn with_unlisted(extra: &str) -> String {
    format!("{}\n{extra}", canary_scenario())
}

const BILLING_WORKER: &str = "[[heroku.apps]]\nname = \"billing-worker\"\nconfig = { POSTMARK_SERVER_TOKEN = \"c0ffee00-0000-4000-8000-00000000c001\" }\n";
const LEGACY_MAILER: &str = "[[heroku.apps]]\nname = \"legacy-mailer\"\nconfig = { MAIL_API_KEY = \"c0ffee00-0000-4000-8000-00000000c001\" }\n\n[[infisical.secrets]]\nenvironment = \"staging\"\npath = \"/\"\nname = \"PM_COPY\"\nversions = [\"c0ffee00-0000-4000-8000-00000000c001\"]\n";

/// The most common rotation outage: an app nobody listed still uses the old token when it
/// is revoked. Discovery finds it at precheck and stops the run before any write, naming
/// the app and how to add it; once added, the rotation covers it.
#[test]
fn an_unlisted_app_holding_the_token_stops_precheck_and_is_covered_once_added() {
    let scenario = with_unlisted(BILLING_WORKER);
    let out = on_scenario(&scenario, None, &["--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("Heroku app billing-worker holds the current value as POSTMARK_SERVER_TOKEN and is not a listed consumer")
        .stderr_has("--param apps=raxx-api-prod,raxx-api-staging,billing-worker");
    assert_eq!(out.report()["failed_step"], "precheck");
    assert_no_writes(&out.sandbox_state());

    let out = on_scenario(
        &scenario,
        None,
        &[
            "--json",
            "--param",
            "apps=raxx-api-prod,raxx-api-staging,billing-worker",
        ],
    );
    out.exit(Exit::Ok)
        .stderr_has("discovery: 4 place(s) hold the current token; 0 more included")
        // Named, not counted (before: only the count).
        .stderr_has(
            "  Heroku app billing-worker: POSTMARK_SERVER_TOKEN holds it; covered by this runbook",
        )
        .stderr_has("  Infisical prod:/: POSTMARK_SERVER_TOKEN holds it; covered by this runbook");
    let state = out.sandbox_state();
    let new = infisical_versions(&state).last().unwrap().clone();
    assert_ne!(new, OLD_TOKEN);
    for app in ["raxx-api-prod", "raxx-api-staging", "billing-worker"] {
        assert_eq!(app_token(&state, app), new, "{app}");
    }
}

/// The same value under another config var name is found too. "include" sets that var in
/// this run (propagate, verify); an Infisical copy can be excluded on purpose, which is
/// audited; `--yes` alone never includes or excludes anything.
#[test]
fn the_token_under_another_name_is_found_and_covered_when_included() {
    let scenario = with_unlisted(LEGACY_MAILER);
    let out = on_scenario(&scenario, None, &["--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("  Heroku app legacy-mailer: MAIL_API_KEY holds it; NOT covered by this runbook")
        .stderr_has("Heroku app legacy-mailer holds the current value as MAIL_API_KEY")
        .stderr_has("answer \"include\" to precheck.unlisted.heroku.legacy-mailer.MAIL_API_KEY to set MAIL_API_KEY there in this run");
    assert_no_writes(&out.sandbox_state());

    let answers = "prerequisites = true\n\"validate.received\" = true\n\
        \"precheck.unlisted.heroku.legacy-mailer.MAIL_API_KEY\" = \"include\"\n\
        \"precheck.unlisted.infisical.staging:/.PM_COPY\" = \"exclude\"\n\
        \"revoke.confirm\" = true\n";
    let out = on_scenario(&scenario, Some(answers), &["--json"]);
    out.exit(Exit::Ok).stderr_has(
        "discovery: 5 place(s) hold the current token; 1 more included, 1 excluded on purpose",
    );
    let state = out.sandbox_state();
    let new = infisical_versions(&state).last().unwrap().clone();
    assert_eq!(
        state["heroku"]["apps"]["legacy-mailer"]["config_vars"]["MAIL_API_KEY"],
        new.as_str()
    );
    // The listed apps were set once, under their own var only.
    assert_eq!(app_token(&state, "raxx-api-prod"), new);
    assert!(state["heroku"]["apps"]["legacy-mailer"]["config_vars"]
        .get("POSTMARK_SERVER_TOKEN")
        .is_none());
    let audit = out.next().args(&["audit", "show", "--json"]).run();
    assert!(
        audit.stdout.contains("consumer.excluded") && audit.stdout.contains("PM_COPY"),
        "{}",
        audit.stdout
    );
}

/// A stop says everything it leaves changed, writes of the failed step included: here one
/// app already holds the new token while the other refused it (a 422: a 500 may have
/// applied, and is listed as outcome unknown). Before, the footer named
/// only the completed steps. The JSON report lists the same changes, values as fingerprints.
#[test]
fn a_stopped_run_lists_every_change_left_in_place_including_the_failed_steps() {
    let out = postmark(&[
        "--yes",
        "--no-rollback",
        "--fault",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=422:always",
    ]);
    out.exit(Exit::StepFailed)
        .stderr_has("Left in place (changed, not undone):")
        .stderr_has("  store · infisical::set_secret on POSTMARK_SERVER_TOKEN in raxx-project:prod/ (value=hmac:")
        .stderr_has("  propagate · heroku::set_config on raxx-api-prod (POSTMARK_SERVER_TOKEN=hmac:");
    assert!(
        !out.stderr
            .contains("heroku::set_config on raxx-api-staging"),
        "the refused app is not a change: {}",
        out.stderr
    );
    // The staging copy's removal, sent beside the apps' changes, was waited for and
    // recorded though an app failed.
    out.stderr_has("  propagate · infisical::delete_secret on POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/");
    let report = out.report();
    let changes: Vec<(String, String)> = items(&report["changes"])
        .iter()
        .map(|c| {
            (
                c["function"].as_str().unwrap().to_string(),
                c["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("heroku::set_config".into(), "raxx-api-prod".into())),
        "{changes:?}"
    );
}

/// The staging copy's removal goes out beside the apps' changes (`run::together` sends it
/// first, journalled as sent). When Infisical refuses it, the copy (of the stored token by
/// then) stays with a warning that says so, and the rotation goes on: a cleanup must not
/// roll back apps that already run the new token.
#[test]
fn a_refused_staging_removal_leaves_the_copy_with_a_warning_and_the_rotation_completes() {
    let out = postmark(&[
        "--yes",
        "--fault",
        "infisical:DELETE:/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING=500:always",
    ]);
    out.exit(Exit::Ok).stderr_has(
        "POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/ was not removed (infisical DELETE /api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING → 500 Internal Server Error: Something went wrong (error InternalServerError) after 4 attempts): it may still be there; delete it in Infisical once it answers",
    );
    let state = out.sandbox_state();
    assert_everywhere(&state, &current_infisical(&state));
    assert_ne!(current_infisical(&state), OLD_TOKEN);
    // Retried as any DELETE is, then given up.
    assert!(
        served(
            &state,
            "DELETE",
            "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING"
        ) > 1
    );
    // The copy is still there, as the warning says.
    assert!(
        items(&state["infisical"]["secrets"])
            .iter()
            .any(|s| s["secretKey"] == "POSTMARK_SERVER_TOKEN_PENDING"),
        "{}",
        state["infisical"]["secrets"]
    );
}

/// The shipped realistic scenario (docs/fidelity.md, "Realistic timing": boot, preboot,
/// release phase and mail processing compressed 20x, Heroku's request pool, a policy for
/// users): the rotation completes, and no consumer ever sends with a revoked token (the
/// downstream apps send all along; preboot keeps the old dynos on the old token, unlisted,
/// for the preboot window after the change, and verify waits for that before anything is
/// checked). Before, verify went on once the listed (new) dynos were up: Raptor's test email
/// went out through an old dyno with the old token, and revoke left those dynos failing.
#[test]
fn the_realistic_rehearsal_leaves_no_consumer_on_a_revoked_token() {
    let out = Test::new()
        .rehearse("postmark")
        .args(&[
            "--yes",
            "--scenario",
            root()
                .join("runbooks/sandbox/realistic/postmark.toml")
                .to_str()
                .unwrap(),
        ])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok)
        .stdout_has("Postmark processed it: Sent, delivered to 1 recipient(s)");
    let state = out.sandbox_state();
    crate::support::assert_safe(&state, "after the realistic rehearsal");
    // Raptor's test email went out with the new token, through a new dyno: the check
    // checked the new token.
    let current = crate::support::current_infisical(&state);
    let tests: Vec<&Value> = items(&state["postmark"]["messages"])
        .iter()
        .filter(|m| m["Subject"] == "rotation validation")
        .collect();
    assert_eq!(tests.len(), 1, "{tests:#?}");
    assert_eq!(tests[0]["token"], current.as_str(), "{tests:#?}");
    out.stdout_has("raxx-api-prod: preboot is on: its old web dynos keep the traffic, on the old config, until about 9s after the change; waiting ");
    let current = crate::support::current_infisical(&state);
    for app in APPS {
        assert_eq!(app_token(&state, app), current, "{app}");
    }
    assert_eq!(live_tokens(&state), [current], "the old token is revoked");
    assert!(
        items(&state["infisical"]["approvals"]).is_empty(),
        "no change request for the machine identity"
    );
    // A rotation stays well inside Infisical Cloud's pool.
    assert_eq!(state["infisical"]["rate_limit"]["refused"], 0, "{state:#}");
}

/// The wait after a restart ends when every dyno runs the release with the new config, not
/// when every dyno is up: a dyno up on an older release (its newer one still in a release
/// phase) is not the new token running. Before, `wait_up` looked at the state alone.
#[test]
fn wait_up_counts_a_dyno_only_on_the_release_it_was_given() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\nrelease_phase = { duration_ms = 600000, outcome = \"succeeded\" }\n",
    );
    let runbook = r#"runbook(#{ id: "rel", title: "Release" });
step("wait", "Change and wait", |ctx| {
    heroku::set_config(["raxx-api-staging"], #{ OTHER: "1" });
    let list = heroku::releases("raxx-api-staging");
    let newest = list[list.len() - 1].version;
    // Without a release to wait for, up is up.
    heroku::wait_up(["raxx-api-staging"], #{ timeout: 1 });
    print(`up, on some release; waiting for v${newest}`);
    heroku::wait_up(["raxx-api-prod", "raxx-api-staging"], #{ timeout: 1, releases: #{ "raxx-api-staging": newest } });
}).undo(|ctx| { heroku::set_config(["raxx-api-staging"], #{ OTHER: () }); });
"#;
    let out = script_on(runbook, &scenario)
        .args(&["--yes", "--no-rollback"])
        .run();
    out.exit(Exit::StepFailed)
        .stdout_has("up, on some release; waiting for v");
    let newest: u64 = out
        .stdout
        .split("waiting for v")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("the newest release is printed");
    out.stderr_has(&format!(
        "heroku::wait_up: not up after 1s: raxx-api-staging (web.1 up on v{}, not v{newest} yet)",
        newest - 1
    ));
    assert!(!out.stderr.contains("raxx-api-prod ("), "{}", out.stderr);
}

/// On an app with preboot the dynos Heroku lists are the new ones; the old ones keep the
/// traffic, on the old config, for the preboot window. `wait_up` reads the feature and waits
/// out the window after the boot (the timeout is for the boot): when it returns, the old
/// dynos have stopped. An app without preboot is up when its dynos are. Before, both apps
/// passed as soon as the listed dynos were up.
#[test]
fn wait_up_on_a_preboot_app_waits_for_the_traffic_to_move() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\npreboot = true\npreboot_window_ms = 2000\nboot_ms = 0\n",
    );
    let runbook = r#"runbook(#{ id: "pre", title: "Preboot" });
step("wait", "Change and wait", |ctx| {
    heroku::set_config(["raxx-api-prod", "raxx-api-staging"], #{ OTHER: "1" });
    heroku::wait_up(["raxx-api-prod"], #{ timeout: 5 });
    print("raxx-api-prod is up");
    // The window the sandbox exports (RUNBOOK_HEROKU_PREBOOT_WINDOW, 2 here).
    heroku::wait_up(["raxx-api-prod", "raxx-api-staging"], #{ timeout: 1 });
    let logs = heroku::logs(["raxx-api-staging"], #{ lines: 50 });
    ensure(logs["raxx-api-staging"].lines.some(|l| l.contains("replaced by the prebooted dyno")),
        "wait_up returned while the old dynos still had the traffic");
    print("the old dynos have stopped");
}).undo(|ctx| { heroku::set_config(["raxx-api-prod", "raxx-api-staging"], #{ OTHER: () }); });
"#;
    let out = script_on(runbook, &scenario)
        .args(&["--yes", "--no-rollback"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("raxx-api-prod is up")
        .stdout_has("raxx-api-staging: preboot is on: its old web dynos keep the traffic, on the old config, until about 2s after the change; waiting ")
        .stdout_has("the old dynos have stopped");
    assert!(
        !out.stdout.contains("raxx-api-prod: preboot"),
        "{}",
        out.stdout
    );
}

/// Verify reads each app's newest release, one request per app, not the app's whole
/// history page after page: a production app has thousands of releases (every deploy and
/// config change is one), and the poll reread them every second while one was pending.
/// Here a page holds one release, so the whole history of two took two requests per app.
#[test]
fn verify_reads_each_apps_newest_release_once_not_its_history() {
    let scenario = canary_with("[heroku]\n", "[heroku]\npage_size = 1\n");
    let out = Test::new()
        .rehearse("postmark")
        .scenario("paged.toml", &scenario)
        .args(&["--yes"])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    for app in APPS {
        assert_eq!(
            crate::support::served(&state, "GET", &format!("/apps/{app}/releases")),
            1,
            "{app}"
        );
    }
}

/// An app scaled to zero runs no dyno, so no process holds the old token: the rotation
/// passes it, saying so, instead of waiting for dynos that never come. Before, verify
/// failed after its whole timeout with "no dynos".
#[test]
fn an_app_scaled_to_zero_is_not_waited_for() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\ndynos = []\n",
    );
    let runbook = r#"runbook(#{ id: "zero", title: "Zero" });
step("wait", "Change and wait", |ctx| {
    heroku::set_config(["raxx-api-prod", "raxx-api-staging"], #{ OTHER: "1" });
    heroku::wait_up(["raxx-api-prod", "raxx-api-staging"], #{ timeout: 1 });
}).undo(|ctx| { heroku::set_config(["raxx-api-prod", "raxx-api-staging"], #{ OTHER: () }); });
"#;
    script_on(runbook, &scenario)
        .args(&["--yes", "--no-rollback"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("raxx-api-staging: scaled to zero (its formation runs no dyno): no process to wait for; the config is read when it is scaled up");
    let out = Test::new()
        .rehearse("postmark")
        .scenario("zero.toml", &scenario)
        .args(&["--yes"])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok)
        .stdout_has("raxx-api-staging: scaled to zero");
    let state = out.sandbox_state();
    let current = crate::support::current_infisical(&state);
    assert_eq!(app_token(&state, "raxx-api-staging"), current);
    assert_eq!(live_tokens(&state), [current]);
}

/// The stdlib's verify and rollback wait through `consumers::wait_for_release`: the newest
/// release out of its release phase first, then the dynos on it. One that failed its phase
/// stops them, saying what to fix: the dynos run the release before, which may not hold the
/// change. Before, the wait gave a release phase and the boot 120 s together and then said a
/// dyno was on an older release.
#[test]
fn the_stdlib_waits_out_a_release_phase_and_stops_on_a_failed_one() {
    let runbook = r#"import "std/consumers" as consumers;
runbook(#{ id: "std-phase", title: "Stdlib release phase" });
step("wait", "Change and wait", |ctx| {
    heroku::set_config(["raxx-api-staging"], #{ OTHER: "1" });
    consumers::wait_for_release(#{ heroku: ["raxx-api-prod", "raxx-api-staging"] }, 1);
    print("both apps run the change");
}).undo(|ctx| { heroku::set_config(["raxx-api-staging"], #{ OTHER: () }); });
"#;
    let phase = |outcome: &str| {
        canary_with(
            "name = \"raxx-api-staging\"\n",
            &format!("name = \"raxx-api-staging\"\nrelease_phase = {{ duration_ms = 1500, outcome = \"{outcome}\" }}\n"),
        )
    };
    // A release phase longer than the boot's timeout (1 s) is waited for, then the dynos.
    script_on(runbook, &phase("succeeded"))
        .args(&["--yes", "--no-rollback"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("both apps run the change");
    script_on(runbook, &phase("failed"))
        .args(&["--yes", "--no-rollback"])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("raxx-api-staging: release v2 (Set OTHER config vars) is failed: its dynos run the last release that succeeded, which may not hold the change")
        .stderr_has("fix the release command (heroku releases:output v2 -a raxx-api-staging), run it again (heroku releases:retry -a raxx-api-staging), then retry the step");
}

/// Heroku restarts the dynos after it answers the config change: for a moment the new
/// release is listed as succeeded while the dynos are still up on the one before, with the
/// old config. `releases: "newest"` waits for the dynos on the newest release; waiting for
/// "up" alone ends at once, before the restart has even begun (what the rotation's verify
/// did before it waited on the release).
#[test]
fn wait_up_on_the_newest_release_outlasts_a_restart_that_has_not_begun() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\nrestart_delay_ms = 1500\nboot_ms = 0\n",
    );
    let runbook = r#"runbook(#{ id: "late", title: "A late restart" });
step("wait", "Change and wait", |ctx| {
    let app = "raxx-api-staging";
    heroku::set_config([app], #{ OTHER: "1" });
    heroku::wait_up([app], #{ timeout: 5 });
    print(`up alone, restarted: ${heroku::logs(app, #{ lines: 50 }).some(|l| l.contains("Restarting"))}`);
    heroku::wait_up([app], #{ timeout: 5, releases: "newest" });
    print(`on the newest release, restarted: ${heroku::logs(app, #{ lines: 50 }).some(|l| l.contains("Restarting"))}`);
}).undo(|ctx| { heroku::set_config(["raxx-api-staging"], #{ OTHER: () }); });
"#;
    let out = script_on(runbook, &scenario)
        .args(&["--yes", "--no-rollback"])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok)
        .stdout_has("up alone, restarted: false")
        .stdout_has("on the newest release, restarted: true");
    let state = out.sandbox_state();
    let app = &state["heroku"]["apps"]["raxx-api-staging"];
    let newest = items(&app["releases"]).last().map(|r| r["version"].clone());
    assert_eq!(Some(app["running_release"].clone()), newest, "{app}");
}

/// A one-off dyno (a console, a scheduled job) started before the change keeps the old token
/// until it exits: no restart moves it. Before, verify named it in passing and revoke's
/// question said every consumer had been verified on the new token; deleting it broke the
/// job. Verify, the last step before revoke's question and approval, now names it and asks;
/// "no" keeps the old token, saying what to do (a retry looks at the dynos again).
#[test]
fn verify_names_the_one_offs_still_on_the_old_token_and_asks() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\ndynos = [\"web.1\", \"run.1\"]\n",
    );
    let question = "One-off dynos started before the change still hold the old token: raxx-api-staging run.1 (up, v1). Go on to revoke it anyway? They fail at their next Postmark call.";
    let out = on_scenario(&scenario, None, &[]);
    out.exit(Exit::Ok).stdout_has(question);
    let state = out.sandbox_state();
    assert!(!live_tokens(&state).contains(&OLD_TOKEN.to_string()));
    // Going on is audited, naming the dynos.
    let kept = out.audited("consumer.one_offs_on_old_value");
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0]["context"]["dynos"],
        "raxx-api-staging run.1 (up, v1)"
    );

    let answers = "prerequisites = true\n\"validate.received\" = true\n\
        \"verify.one_offs\" = false\n\"revoke.confirm\" = true\n";
    let out = on_scenario(&scenario, Some(answers), &["--no-rollback", "--json"]);
    out.exit(Exit::StepFailed)
        .stderr_has("one-off dynos started before the change still use the old token (raxx-api-staging run.1 (up, v1))")
        .stderr_has("let them finish (heroku ps -a APP) or stop them (heroku ps:stop DYNO -a APP), then retry this step: it looks at the dynos again");
    assert_eq!(out.report()["failed_step"], "verify");
    let state = out.sandbox_state();
    assert!(
        live_tokens(&state).contains(&OLD_TOKEN.to_string()),
        "not revoked"
    );
    // Everything before revoke is done: the apps run the new token.
    let new = infisical_versions(&state).last().unwrap().clone();
    assert_eq!(app_token(&state, "raxx-api-staging"), new);
}

/// `releases` names the apps waited for: a key that is not one of them (a typo, an app
/// passed by id) is refused, not quietly never checked.
#[test]
fn wait_up_refuses_a_release_for_an_app_it_does_not_wait_for() {
    let runbook = r#"runbook(#{ id: "rel", title: "Release" });
step("wait", "Wait", |ctx| {
    heroku::wait_up(["raxx-api-prod"], #{ timeout: 1, releases: #{ "raxx-api-stagign": 3 } });
});
"#;
    script_on(runbook, &canary_scenario())
        .args(&["--yes"])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("heroku::wait_up: releases names 'raxx-api-stagign', which is not one of the apps waited for");
}

/// `consumers::wait_up_on_newest`: up on each app's newest release, the one a config
/// change made. Before, it waited for the dynos' state alone, which the processes still on
/// the release before already satisfied.
#[test]
fn the_stdlib_waits_for_the_newest_release_not_just_up() {
    let scenario = canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\nrelease_phase = { duration_ms = 600000, outcome = \"succeeded\" }\n",
    );
    let runbook = r#"import "std/consumers" as consumers;
runbook(#{ id: "std-rel", title: "Stdlib release" });
step("wait", "Change and wait", |ctx| {
    heroku::set_config(["raxx-api-staging"], #{ OTHER: "1" });
    consumers::wait_up_on_newest(#{ heroku: ["raxx-api-prod", "raxx-api-staging"] }, 1);
}).undo(|ctx| { heroku::set_config(["raxx-api-staging"], #{ OTHER: () }); });
"#;
    script_on(runbook, &scenario)
        .args(&["--yes", "--no-rollback"])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("heroku::wait_up: not up after 1s: raxx-api-staging (web.1 up on v")
        .stderr_has("a dyno on an older release still serves the old config");
}

/// The store's undo, under the same approval policy, files its own change request (the old
/// value back), and nobody merges it in time: the rollback stops there. That request is the
/// run's: a rollback run again waits on it instead of filing another, and abandoning the run
/// names it as the first thing to close (an approver merging it later would put the old
/// token back over whatever came next).
#[test]
fn a_change_request_filed_by_an_undo_is_not_forgotten() {
    use crate::support::Rig;
    let rig = Rig::with_scenario_text(&store_waits_scenario());
    let wait = ["--no-rollback", "--param", "approval_wait=1"];
    rig.exec("postmark", &wait).exit(Exit::StepFailed);
    let requests = token_requests;
    // The approver merges the store's request; the run goes on and fails at verify.
    let forward = requests(&rig)[0]["id"].as_str().unwrap().to_string();
    assert_eq!(rig.sandbox.decide_change_request(&forward, true), 200);
    rig.sandbox
        .add_fault("raptor:POST:/api/notifications/test-email=500");
    rig.resume(&["--no-rollback"])
        .exit(Exit::StepFailed)
        .stderr_has("Step 'verify' failed");
    // The rollback's restore of the old value waits for approval, in vain.
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("runbook::vendor::pending_approval");
    assert_eq!(requests(&rig).len(), 2, "the undo filed one request");
    let undo_request = requests(&rig)[1]["slug"].as_str().unwrap().to_string();
    // Run again, it waits on that request: no third one. An undo that cannot pass names the
    // way out of the loop between rollback and resume.
    let run_id = rig.run_id();
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
            "this run's rollback filed change request {undo_request}, still open"
        ))
        .stderr_has(&format!(
            "If it cannot be fixed, end the run with `runbook abandon {run_id} --reason TEXT`"
        ))
        .stdout_has(&format!(
            "change request {undo_request} from an earlier attempt is still open"
        ));
    assert_eq!(
        requests(&rig).len(),
        2,
        "no second request for the same restore"
    );
    // Going forward over the half-undone run is refused (the restore is still filed).
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: this run's rollback stopped part way (the undo of store failed")
        .stderr_has(&format!(
            "if its undo cannot pass, end the run with `runbook abandon {run_id} --reason TEXT`"
        ));
    // Abandoned, the run names it first.
    rig.runbook(
        &["abandon", &rig.run_id(), "--reason", "approver away"],
        &[],
    )
    .exit(Exit::Ok)
    .stdout_has(&format!(
        "change request {undo_request} is still open: close it in Infisical"
    ));
}
