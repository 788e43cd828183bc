//! `runbook consumers`: every place a secret's current value lives, named, never shown.

use crate::support::items;
use crate::support::{canary_scenario, Exit, Test};
use serde_json::Value;

const EXTRA: &str = "\n[[heroku.apps]]\nname = \"billing-worker\"\nconfig = { POSTMARK_SERVER_TOKEN = \"c0ffee00-0000-4000-8000-00000000c001\" }\n\n[[heroku.apps]]\nname = \"legacy-mailer\"\nconfig = { MAIL_API_KEY = \"c0ffee00-0000-4000-8000-00000000c001\", OTHER = \"x\" }\n\n[[infisical.secrets]]\nenvironment = \"staging\"\npath = \"/mail\"\nname = \"PM_COPY\"\nversions = [\"c0ffee00-0000-4000-8000-00000000c001\"]\n";

/// `consumers POSTMARK_SERVER_TOKEN --sandbox` on the canary scenario with EXTRA's places,
/// then `extra`.
fn consumers(extra: &[&str]) -> Test {
    Test::new()
        .args(&["consumers", "POSTMARK_SERVER_TOKEN", "--sandbox"])
        .scenario("more.toml", &format!("{}{EXTRA}", canary_scenario()))
        .args(extra)
}

fn places(report: &Value) -> Vec<(String, String, String, bool)> {
    items(&report["places"])
        .iter()
        .map(|p| {
            (
                p["vendor"].as_str().unwrap().to_string(),
                p["place"].as_str().unwrap().to_string(),
                p["var"].as_str().unwrap().to_string(),
                p["verified"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Reads the current value from Infisical and names every Heroku app (under any var name),
/// Infisical copy and GitHub repository holding it; the value itself appears nowhere (the
/// test builder scans every output for the canaries).
#[test]
fn consumers_names_every_place_holding_the_current_value() {
    let out = consumers(&["--json"]).run();
    out.exit(Exit::Ok);
    let report = out.json();
    let p = |v: &str, place: &str, var: &str, verified| {
        (v.to_string(), place.to_string(), var.to_string(), verified)
    };
    assert_eq!(
        places(&report),
        vec![
            p("heroku", "billing-worker", "POSTMARK_SERVER_TOKEN", true),
            p("heroku", "legacy-mailer", "MAIL_API_KEY", true),
            p("heroku", "raxx-api-prod", "POSTMARK_SERVER_TOKEN", true),
            p("heroku", "raxx-api-staging", "POSTMARK_SERVER_TOKEN", true),
            p("infisical", "staging:/mail", "PM_COPY", true),
            p("infisical", "prod:/", "POSTMARK_SERVER_TOKEN", true),
            p("github", "raxx/raptor", "POSTMARK_SERVER_TOKEN", false),
        ]
    );
    assert!(report["unchecked"].as_array().unwrap().is_empty());

    // The table, and a value given through the environment instead of Infisical: here the
    // plain value of legacy-mailer's OTHER var.
    let out = consumers(&["--from-env", "SOME_VALUE"])
        .env("SOME_VALUE", "x")
        .run();
    out.exit(Exit::Ok)
        .stdout_has("POSTMARK_SERVER_TOKEN = secret(")
        .stdout_has("is held in 1 place(s) (9 looked at):")
        .stdout_has("VENDOR  PLACE          NAME                   HOLDS THE VALUE\n")
        .stdout_has("heroku  legacy-mailer  OTHER                  yes\n")
        .stdout_has("github  raxx/raptor    POSTMARK_SERVER_TOKEN  maybe (GitHub never shows values; updated ");
}

/// A place that cannot be checked (an environment the project lacks) is named, and the
/// command exits 1: the list is not known to be complete.
#[test]
fn consumers_names_what_it_could_not_check_and_exits_1() {
    let out = consumers(&["--envs", "qa,prod"]).run();
    out.exit(Exit::StepFailed).stderr_has(
        "could not check infisical qa:/: infisical GET /api/v4/secrets → 404 Not Found: Environment with slug 'qa'",
    );
}

/// A token pasted where its name goes, or given to `--from-env`: refused without repeating
/// it. Before, "reading TOKEN from Infisical", Infisical's 404 and "--from-env TOKEN: the
/// variable is not set" each printed it (hostile review).
#[test]
fn a_value_given_where_a_name_goes_is_not_repeated() {
    let token = "5f1b2c3d-1111-4222-8333-944455556666";
    let out = Test::new().args(&["consumers", token, "--sandbox"]).run();
    out.exit(Exit::Usage).stderr_has(
        "the secret's NAME given is shaped like a value, not a name: not repeated here",
    );
    out.assert_absent(token);
    let out = Test::new()
        .args(&[
            "consumers",
            "POSTMARK_SERVER_TOKEN",
            "--from-env",
            token,
            "--sandbox",
        ])
        .run();
    out.exit(Exit::Usage).stderr_has(
        "--from-env takes an environment variable's name, and what was given is not one: not repeated here",
    );
    out.assert_absent(token);
}
