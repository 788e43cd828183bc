//! The runbooks written with the stdlib and `http::` only (SendGrid key rotation, Infisical
//! re-sync), end to end against the sandbox with the scenarios they ship.

use crate::support::items;
use crate::support::{root, scripted, secret_versions, step_statuses, Exit, Output, Test};
use serde_json::Value;

const SG_CURRENT: &str = "SG.sandbox-current-key.00000000000000000000000";
const SG_PREVIOUS: &str = "SG.sandbox-previous-key.0000000000000000000000";
const SG_ADMIN: &str = "SG.sandbox-admin-key.000000000000000000000000";
const SG_OLD_ID: &str = "kC9vQ3sWQY6v0u1m2o3p4q";
const SYNC_STALE: &str = "5a1dbe0c-0000-4000-8000-0000000005a1";

/// `runbook exec NAME --sandbox` from the repo's runbooks, with the scenario found next to
/// the runbook (no --scenario).
fn exec(name: &str, extra: &[&str]) -> Output {
    Test::new()
        .rehearse(name)
        .keep_sandbox_state()
        .args(&["--actor", "ops-test", "--json"])
        .args(extra)
        .run()
}

/// SendGrid's shipped rehearsal scenario with `settings` added to the app raxx-api-prod.
fn sendgrid_with_prod(settings: &str) -> String {
    std::fs::read_to_string(root().join("runbooks/sandbox/sendgrid.toml"))
        .unwrap()
        .replacen(
            "name = \"raxx-api-prod\"\n",
            &format!("name = \"raxx-api-prod\"\n{settings}"),
            1,
        )
}

fn keys(state: &Value) -> Vec<Value> {
    scripted(state, "sendgrid", "api_keys")
}

fn config(state: &Value, app: &str, var: &str) -> String {
    state["heroku"]["apps"][app]["config_vars"][var]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn assert_no_key_leaks(out: &Output, extra: &[&str]) {
    for v in [SG_CURRENT, SG_PREVIOUS, SG_ADMIN].iter().chain(extra) {
        out.assert_absent(v);
    }
}

#[test]
fn sendgrid_rotation_creates_propagates_and_deletes_the_old_key() {
    let out = exec("sendgrid", &["--yes"]);
    out.exit(Exit::Ok);
    assert_eq!(out.report()["status"], "succeeded");
    out.stderr_has("sandbox: scenario ")
        .stderr_has("runbooks/sandbox/sendgrid.toml");
    let state = out.sandbox_state();

    let keys = keys(&state);
    let names: Vec<&str> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["runbook-key-manager", "raxx-prod-mail"]);
    let new = &keys[1];
    assert_ne!(new["api_key_id"], SG_OLD_ID, "the old key is deleted");
    assert_eq!(
        new["scopes"],
        serde_json::json!(["mail.send"]),
        "same scopes"
    );
    let new_key = new["api_key"].as_str().unwrap();

    assert_eq!(
        secret_versions(&state, "SENDGRID_API_KEY"),
        [SG_PREVIOUS, SG_CURRENT, new_key]
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(config(&state, app, "SENDGRID_API_KEY"), new_key, "{app}");
        // One restart per app: the release propagate's config change made. Before, the
        // verify step restarted every app a second time.
        assert_eq!(state["heroku"]["apps"][app]["restarts"], 1, "{app}");
    }
    // The old key was refused once it was deleted (the runbook checks it).
    let refused = items(&state["requests"])
        .iter()
        .any(|r| r["vendor"] == "sendgrid" && r["path"] == "/v3/scopes" && r["status"] == 401);
    assert!(refused);

    let done = out.audited("secret.rotate.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["actor"], "ops-test");
    assert_eq!(done[0]["context"]["vendor"], "SendGrid");
    assert_eq!(done[0]["context"]["method"], "sendgrid-api");
    assert_eq!(done[0]["context"]["old_version"], 2);
    assert_eq!(done[0]["context"]["new_version"], 3);
    assert_no_key_leaks(&out, &[new_key]);
}

/// The stdlib's rollback deletes the new key after propagate's undo: on an app with preboot
/// the dynos holding it keep the traffic for the window after the undo's change, so the undo
/// waits that out first. Before, the key was deleted under them.
#[test]
fn a_stdlib_rollback_waits_out_the_preboot_window_before_deleting_the_new_key() {
    let scenario = sendgrid_with_prod("preboot = true\npreboot_window_ms = 1000\nboot_ms = 0\n");
    assert!(scenario.contains("preboot = true"));
    let out = Test::new()
        .rehearse("sendgrid")
        .scenario("preboot.toml", &scenario)
        .keep_sandbox_state()
        .args(&[
            "--json",
            "--yes",
            "--fault",
            "heroku:PATCH:/apps/raxx-api-staging/config-vars=500:times=4",
        ])
        .run();
    out.exit(Exit::StepFailed);
    assert_eq!(out.report()["status"], "rolled_back");
    // Only the undo waits here: verify never ran.
    out.stdout_has("raxx-api-prod: preboot is on: its old web dynos keep the traffic");
    let state = out.sandbox_state();
    let logs = crate::support::app_logs(&state, "raxx-api-prod");
    assert!(
        logs.iter()
            .any(|l| l.contains("replaced by the prebooted dyno")),
        "{logs:#?}"
    );
}

#[test]
fn sendgrid_failure_on_one_app_rolls_back_everywhere_and_deletes_the_new_key() {
    let out = exec(
        "sendgrid",
        &[
            "--yes",
            "--fault",
            "heroku:PATCH:/apps/raxx-api-staging/config-vars=500:times=4",
        ],
    );
    out.exit(Exit::StepFailed);
    let report = out.report();
    assert_eq!(report["status"], "rolled_back");
    assert_eq!(report["failed_step"], "propagate");
    let state = out.sandbox_state();
    // Back where it started: the old key is the only app key, everywhere.
    let ids: Vec<String> = keys(&state)
        .iter()
        .map(|k| k["api_key_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [SG_OLD_ID, "aD7mK2pLr8sT1u2v3w4x5y"]);
    assert_eq!(
        secret_versions(&state, "SENDGRID_API_KEY").last().unwrap(),
        SG_CURRENT
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(config(&state, app, "SENDGRID_API_KEY"), SG_CURRENT, "{app}");
    }
    assert_eq!(
        step_statuses(&report),
        [
            ("precheck", "completed"),
            ("create", "undone"),
            ("validate", "completed"),
            ("store", "undone"),
            ("propagate", "undone"),
            ("verify", "not_run"),
            ("revoke", "not_run"),
            ("audit", "not_run"),
        ]
    );
    assert_no_key_leaks(&out, &[]);
}

#[test]
fn sendgrid_dry_run_plans_every_write_and_changes_nothing() {
    let out = exec("sendgrid", &["--dry-run"]);
    out.exit(Exit::Ok);
    let planned = crate::support::planned_writes(&out.report());
    assert_eq!(
        planned,
        [
            "create http::post",
            // The new key staged as SENDGRID_API_KEY_PENDING before anything else can fail.
            "create infisical::set_secret",
            "store infisical::set_secret",
            "propagate heroku::set_config",
            "revoke http::delete",
            "audit audit::log",
        ]
    );
    out.stderr_has("[dry-run] not sent: GET ");
    let state = out.sandbox_state();
    assert_eq!(keys(&state).len(), 2);
    assert_eq!(secret_versions(&state, "SENDGRID_API_KEY").len(), 2);
    assert!(out.audit().is_empty());
    assert_no_key_leaks(&out, &[]);
}

/// Killed in propagate; meanwhile someone rotated the secret by hand (a newer version in
/// Infisical). The resume pushed the version the sync had read over the newer one on every
/// consumer and succeeded (way-back review). It now stops: the sync is no longer current.
#[test]
fn a_resumed_sync_does_not_push_a_version_infisical_has_replaced() {
    const HAND: &str = "a-token-rotated-by-hand-0000000000001";
    let rig =
        crate::support::Rig::with_scenario(&root().join("runbooks/sandbox/infisical-sync.toml"));
    rig.crash("infisical-sync", "started:propagate");
    assert_eq!(
        rig.sandbox
            .set_infisical_secret("POSTMARK_SERVER_TOKEN", HAND),
        200
    );
    let before = rig.state();
    let out = rig.resume(&[]);
    out.exit(Exit::StepFailed)
        .stderr_has("Infisical holds version 3 of POSTMARK_SERVER_TOKEN, newer than version 2 this sync read: someone changed it since");
    let state = rig.state();
    assert_eq!(
        config(&state, "raxx-api-staging", "POSTMARK_SERVER_TOKEN"),
        config(&before, "raxx-api-staging", "POSTMARK_SERVER_TOKEN"),
        "staging is not given the older version"
    );
    out.assert_absent(HAND);
}

#[test]
fn infisical_sync_fixes_only_the_consumers_that_differ_and_verifies_them() {
    let out = exec(
        "infisical-sync",
        &["--yes", "--param", "github_repos=raxx/raptor"],
    );
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let current = secret_versions(&state, "POSTMARK_SERVER_TOKEN")
        .pop()
        .unwrap();
    assert_ne!(current, SYNC_STALE);
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            config(&state, app, "POSTMARK_SERVER_TOKEN"),
            current,
            "{app}"
        );
    }
    // prod already held the value: no release, no restart.
    assert_eq!(state["heroku"]["apps"]["raxx-api-prod"]["restarts"], 0);
    assert!(
        state["heroku"]["apps"]["raxx-api-staging"]["restarts"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(
        state["github"]["repos"]["raxx/raptor"]["secrets"]["POSTMARK_SERVER_TOKEN"],
        current.as_str()
    );
    // The health endpoint was asked once the apps were back.
    assert_eq!(
        items(&state["requests"])
            .iter()
            .filter(|r| r["vendor"] == "raxx-web" && r["status"] == 200)
            .count(),
        1
    );
    let done = out.audited("secret.resync.completed");
    let done = done.first().expect("audit entry");
    assert_eq!(
        done["context"]["heroku_apps"],
        serde_json::json!(["raxx-api-staging"])
    );
    assert_eq!(
        done["context"]["github_repos"],
        serde_json::json!(["raxx/raptor"])
    );
    out.assert_absent(&current);
    out.assert_absent(SYNC_STALE);
}

#[test]
fn infisical_sync_rolls_back_when_the_health_check_never_passes() {
    // The health endpoint answers 503, and the sync runs with `param`.
    let unhealthy = |param: &str| {
        exec(
            "infisical-sync",
            &["--yes", "--fault", "raxx-web:GET:/=503", "--param", param],
        )
    };
    // health_urls= (empty) disables the check: the fault is never hit.
    unhealthy("health_urls=").exit(Exit::Ok);
    let out = unhealthy("health_timeout=2");
    out.exit(Exit::StepFailed);
    out.stderr_has("timed out after 2s")
        .stderr_has("to answer 2xx");
    let state = out.sandbox_state();
    assert_eq!(out.report()["status"], "rolled_back");
    // staging is back on the value it had, and restarted.
    assert_eq!(
        config(&state, "raxx-api-staging", "POSTMARK_SERVER_TOKEN"),
        SYNC_STALE
    );
}

/// The rotation shape runs discovery at precheck too: an app holding the current key that
/// the runbook does not list stops the run before any write; included (answers file), it
/// is propagated and verified with the others.
#[test]
fn the_rotation_shape_finds_an_unlisted_consumer_and_covers_it_when_included() {
    let shipped = std::fs::read_to_string(root().join("runbooks/sandbox/sendgrid.toml")).unwrap();
    let scenario = format!(
        "{shipped}\n[[heroku.apps]]\nname = \"mail-cron\"\nconfig = {{ SENDGRID_API_KEY = \"{SG_CURRENT}\" }}\n"
    );
    let run = |answers: Option<&str>| {
        let t = Test::new()
            .rehearse("sendgrid")
            .scenario("more.toml", &scenario)
            .keep_sandbox_state()
            .args(&["--json"]);
        match answers {
            Some(a) => t.answers(a),
            None => t.args(&["--yes"]),
        }
        .run()
    };
    let out = run(None);
    out.exit(Exit::StepFailed)
        .stderr_has("Heroku app mail-cron holds the current value as SENDGRID_API_KEY and is not a listed consumer")
        .stderr_has("add mail-cron to the consumers the runbook lists");
    assert_eq!(out.report()["failed_step"], "precheck");
    let state = out.sandbox_state();
    assert_eq!(keys(&state).len(), 2, "no key was created");
    assert_no_key_leaks(&out, &[]);

    let answers = "prerequisites = true\n\"precheck.unlisted.heroku.mail-cron.SENDGRID_API_KEY\" = \"include\"\n\"revoke.confirm\" = true\n";
    let out = run(Some(answers));
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let new = secret_versions(&state, "SENDGRID_API_KEY")
        .last()
        .unwrap()
        .clone();
    assert_ne!(new, SG_CURRENT);
    for app in ["raxx-api-prod", "raxx-api-staging", "mail-cron"] {
        assert_eq!(config(&state, app, "SENDGRID_API_KEY"), new, "{app}");
    }
    assert_no_key_leaks(&out, &[&new]);
}

/// A repository's deployment environment, and its organisation, with an Actions secret of
/// the rotated name: discovery named only repositories' own secrets, so an environment's
/// copy (which wins in the workflows that deploy there) went unmentioned. Both are named
/// now, each with what it means for the rotation.
#[test]
fn environment_and_organisation_secrets_of_the_same_name_are_named_before_any_write() {
    let shipped = std::fs::read_to_string(root().join("runbooks/sandbox/sendgrid.toml")).unwrap();
    let scenario = format!(
        "{shipped}\n[[github.repos]]\nname = \"raxx/mailer\"\nenvironments = {{ prod = {{ SENDGRID_API_KEY = \"{SG_CURRENT}\" }} }}\n\n[[github.org_secrets]]\norg = \"raxx\"\nname = \"SENDGRID_API_KEY\"\nvalue = \"{SG_CURRENT}\"\n"
    );
    let out = Test::new()
        .rehearse("sendgrid")
        .scenario("more.toml", &scenario)
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("raxx/mailer (environment prod) has an Actions secret SENDGRID_API_KEY (updated ")
        .stdout_has("it wins over the repository's secret in the workflows that deploy there, and this rotation does not update it")
        .stdout_has("organization raxx has an Actions secret SENDGRID_API_KEY (updated ")
        .stdout_has("the organisation's repositories without a secret of their own use it");
    assert_no_key_leaks(&out, &[]);
}

/// `consumers::report` names each GitHub holder by its scope: it printed "GitHub repository
/// organization raxx" for an organisation's secret.
#[test]
fn the_discovery_report_names_an_organisation_as_one() {
    let runbook = r#"
import "std/consumers" as consumers;
runbook(#{ id: "report-scopes", title: "Reports where a value may live" });
step("look", "Look for the value", |ctx| {
    let found = consumers::discover(secret::from_text("any-value-0001"), #{ name: "MAIL_KEY", heroku: false, infisical: false });
    consumers::report(found);
}).idempotent();
"#;
    let scenario = r#"
[[github.repos]]
name = "raxx/mailer"
secrets = { MAIL_KEY = "any-value-0001" }
environments = { prod = { MAIL_KEY = "any-value-0001" } }

[[github.org_secrets]]
org = "raxx"
name = "MAIL_KEY"
value = "any-value-0001"
"#;
    let out = Test::new()
        .file("runbooks/report-scopes.rhai", runbook)
        .file("runbooks/sandbox/report-scopes.toml", scenario)
        .args(&["exec", "report-scopes", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("  |   GitHub repository raxx/mailer: MAIL_KEY may hold it")
        .stdout_has("  |   GitHub repository raxx/mailer (environment prod): MAIL_KEY may hold it")
        .stdout_has("  |   GitHub organization raxx: MAIL_KEY may hold it");
    assert!(!out.stdout.contains("GitHub repository organization"));
}

/// Before: the stdlib's precheck read the stored key, then each consumer's config one app
/// after another, then discovery listed every app and read each config again. Now
/// discovery's listings go out beside the stored key's read, and its config reads answer
/// "every consumer holds the stored key": one read per app, before any write.
#[test]
fn the_stdlib_precheck_lists_while_it_reads_and_reads_each_config_once() {
    let out = exec(
        "sendgrid",
        &[
            "--yes",
            "--fault",
            "infisical=latency=200",
            "--fault",
            "heroku=latency=200",
        ],
    );
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let requests = items(&state["requests"]);
    let span = |r: &Value| {
        (
            r["start_us"].as_u64().unwrap(),
            r["end_us"].as_u64().unwrap(),
        )
    };
    let first_write = crate::support::writes(&state)
        .into_iter()
        .map(|r| span(r).0)
        .min()
        .unwrap();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        let path = format!("/apps/{app}/config-vars");
        let reads = requests
            .iter()
            .filter(|r| {
                r["method"] == "GET" && r["path"] == path.as_str() && span(r).0 < first_write
            })
            .count();
        assert_eq!(reads, 1, "{app}");
    }
    let find = |vendor: &str, path: &str| {
        let r = requests
            .iter()
            .find(|r| r["vendor"] == vendor && r["method"] == "GET" && r["path"] == path)
            .unwrap_or_else(|| panic!("{vendor} GET {path}"));
        span(r)
    };
    let stored = find("infisical", "/api/v4/secrets/SENDGRID_API_KEY");
    let apps = find("heroku", "/apps");
    assert!(
        apps.0 < stored.1 && stored.0 < apps.1,
        "the app list {apps:?} and the stored key's read {stored:?} overlap"
    );
}

/// A rollback run again (its first attempt's wait failed) finds apps whose config the first
/// attempt put back already. Before, `consumers::restore` set them again: another release
/// and restart in production, and, with preboot, another whole window to wait. It now sets
/// and restarts only the apps that do not hold their old value yet.
#[test]
fn the_stdlib_restores_only_the_apps_not_yet_restored() {
    let runbook = r#"import "std/consumers" as consumers;
runbook(#{ id: "std-restore", title: "Restore twice" });
step("restore", "Put the token back twice", |ctx| {
    let t = #{ heroku: ["raxx-api-prod", "raxx-api-staging"] };
    let before = consumers::snapshot(t, "POSTMARK_SERVER_TOKEN");
    heroku::set_config("raxx-api-prod", #{ POSTMARK_SERVER_TOKEN: secret::from_text("a-value-set-by-the-step-0123") });
    consumers::restore(t, "POSTMARK_SERVER_TOKEN", before, ());
    print("first restore done");
    consumers::restore(t, "POSTMARK_SERVER_TOKEN", before, ());
}).no_undo("a test");
"#;
    let out = Test::new()
        .file("restore.rhai", runbook)
        .rehearse("restore.rhai")
        .keep_sandbox_state()
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("raxx-api-staging: holds what it held before the run already; not set again");
    // The second restore sets nothing: prod is back as well.
    let second = out
        .stdout
        .split("first restore done")
        .nth(1)
        .unwrap_or_default();
    assert!(
        second.contains("raxx-api-prod: holds what it held before the run already"),
        "{second}"
    );
    let state = out.sandbox_state();
    let apps = &state["heroku"]["apps"];
    // Prod: the step's change and one restore, each a release that restarts it (and no
    // second restart); staging: none.
    let releases = |app: &str| items(&apps[app]["releases"]).len();
    let restarts = |app: &str| apps[app]["restarts"].as_u64().unwrap_or(0);
    assert_eq!(
        releases("raxx-api-staging"),
        1,
        "{}",
        apps["raxx-api-staging"]
    );
    assert_eq!(releases("raxx-api-prod"), 3, "{}", apps["raxx-api-prod"]);
    assert_eq!(restarts("raxx-api-staging"), 0);
    assert_eq!(restarts("raxx-api-prod"), 2);
}

/// A rollback of `consumers::steps` whose targets name an app twice (discovery's consumers
/// joined to a runbook's own) puts that app back once. Before, the undo read every config
/// once, then set the app back once per mention (an undo does not skip a write already
/// applied): a second release and restart in production, in the middle of a rollback.
#[test]
fn a_rollback_puts_an_app_named_twice_back_once() {
    let runbook = r#"import "std/consumers" as consumers;
runbook(#{ id: "twice-back", title: "Roll back an app named twice" });
consumers::steps(#{
    var: "POSTMARK_SERVER_TOKEN",
    value: |ctx| secret::from_text("a-value-set-by-the-step-0123"),
    targets: |ctx| #{ heroku: ["raxx-api-prod", "raxx-api-staging", "raxx-api-prod"] },
});
"#;
    let out = Test::new()
        .file("twice.rhai", runbook)
        .rehearse("twice.rhai")
        .keep_sandbox_state()
        .args(&["--yes"])
        .run();
    // The value set is no token: verify finds the apps' 401s, and the run rolls back.
    out.exit(Exit::StepFailed)
        .stderr_has("raxx-api-prod logged an error after the restart");
    let state = out.sandbox_state();
    let apps = &state["heroku"]["apps"];
    // Each app: its first release, the step's change and one restore.
    let releases = |app: &str| items(&apps[app]["releases"]).len();
    assert_eq!(releases("raxx-api-prod"), 3, "{}", apps["raxx-api-prod"]);
    assert_eq!(
        releases("raxx-api-staging"),
        3,
        "{}",
        apps["raxx-api-staging"]
    );
}

/// The stdlib's rotations ask about one-off dynos too: SendGrid's verify names a console
/// started before the change, which keeps the old key, and asks before the revoke.
#[test]
fn a_stdlib_verify_names_the_one_offs_still_on_the_old_key() {
    let scenario = sendgrid_with_prod("dynos = [\"web.1\", \"run.1\"]\n");
    assert!(scenario.contains("run.1"));
    let out = Test::new()
        .rehearse("sendgrid")
        .scenario("oneoff.toml", &scenario)
        .keep_sandbox_state()
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok).stdout_has(
        "One-off dynos started before the change still hold the old SENDGRID_API_KEY: raxx-api-prod run.1 (up, v1). Go on to revoke it anyway?",
    );
}
