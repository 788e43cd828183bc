//! `runbook check`: diagnostics with file:line:col, exit 2 on problems, 0 when clean.

use crate::support::{root, with_fixture, with_script, Exit, Test};

#[test]
fn syntax_error_is_reported_with_location_and_snippet() {
    let out = with_fixture("check", "syntax_error.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::script::parse")
        .stderr_has("syntax_error.rhai:4:18: Unexpected ';'")
        .stderr_has("4 │     let x = (1 + ;")
        .stderr_has("syntax error here");
}

#[test]
fn clean_runbook_passes() {
    let out = with_fixture("check", "clean.rhai").run();
    out.exit(Exit::Ok).stdout_has("ok  clean.rhai");
}

#[test]
fn json_lists_every_problem_with_position() {
    let out = with_script(
        "check",
        "lints.rhai",
        r#"runbook(#{ id: "lints", title: "Lints", secret: "X" });
param("p", #{ default: 1 });
step("a", "A", |ctx| {
    vendorx::call(1);
    nosuch(2);
    secret::from_env("A", "B");
});
"#,
    )
    .args(&["--json"])
    .run();
    out.exit(Exit::Usage);
    let v = out.json();
    let diags: Vec<(String, i64, i64)> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_i64().unwrap(),
                d["column"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        diags,
        vec![
            ("runbook::check::unknown_module".to_string(), 4, 5),
            ("runbook::check::unknown_function".to_string(), 5, 5),
            ("runbook::check::wrong_arity".to_string(), 6, 13),
            ("runbook::check::param_without_help".to_string(), 2, 1),
            ("runbook::check::missing_metadata".to_string(), 1, 1),
            ("runbook::check::unused_param".to_string(), 2, 1),
            ("runbook::check::missing_audit".to_string(), 1, 1),
        ]
    );
    assert_eq!(
        v["diagnostics"][2]["message"],
        "secret::from_env takes 1 argument(s), not 2"
    );
}

#[test]
fn duplicate_step_ids_are_an_error_at_the_second_declaration() {
    let out = with_fixture("check", "duplicate_steps.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::plan::duplicate_step")
        .stderr_has(
            "duplicate_steps.rhai:3:1: duplicate step id 'same' (first declared on line 2)",
        );
}

#[test]
fn unknown_host_function_is_found_without_running() {
    let out = with_fixture("check", "unknown_function.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has("unknown_function.rhai:3:13: unknown function 'secret::from_envv'")
        .stderr_has("did you mean secret::from_env? secret has: fingerprint, from_env, is_secret");
}

#[test]
fn undefined_variable_is_a_compile_error() {
    let out = with_script("check", "undef.rhai", "runbook(#{ id: \"u\", title: \"U\" });\nstep(\"a\", \"A\", |ctx| { let y = missing + 1; });\n",
)
        .run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::script::undefined_variable")
        .stderr_has("undef.rhai:2:32: Undefined variable: missing");
}

#[test]
fn no_steps_and_no_metadata_are_errors() {
    let out = Test::new()
        .fixture("no_steps.rhai")
        .file("bare.rhai", "step(\"a\", \"A\", |ctx| {});\n")
        .args(&["check", "no_steps.rhai", "bare.rhai"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("no_steps.rhai:1:1: the runbook has no steps")
        .stderr_has("bare.rhai:1:1: the runbook does not declare itself");
}

#[test]
fn unknown_metadata_key_is_a_typo_error() {
    let out = with_script(
        "check",
        "typo.rhai",
        "runbook(#{ id: \"t\", title: \"T\", cadnce_days: 3 });\nstep(\"a\", \"A\", |ctx| {});\n",
    )
    .run();
    out.exit(Exit::Usage)
        .stderr_has("typo.rhai:1:1: runbook: unknown option 'cadnce_days'")
        .stderr_has("known options: id, title");
}

#[test]
fn non_utf8_file_is_refused_clearly() {
    let out = with_fixture("check", "not_utf8.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has("not_utf8.rhai is not valid UTF-8 (first bad byte at offset 36)");
}

#[test]
fn stdlib_import_errors_show_module_and_call_site() {
    let out = with_fixture("exec", "uses_stdlib.rhai").run();
    out.exit(Exit::StepFailed)
        .stderr_has("<std/checks>:")
        .stderr_has("a consumer got 401: status=401 InvalidAPIToken")
        .stderr_has("uses_stdlib.rhai:4:13: in function 'no_lines_matching'");
}

/// Regression: the verify step's log scan matched "401" inside timestamps
/// (`19:26:01.840117`), failing healthy rotations at random.
#[test]
fn log_scan_matches_whole_words_only() {
    let out = with_fixture("exec", "stdlib_words.rhai").run();
    out.exit(Exit::Ok).stdout_has("  | words ok");
}

/// Each authoring lint, with its code and where it points.
#[test]
fn authoring_lints_point_at_the_step_call_or_param() {
    let out = with_fixture("check", "author_lints.rhai")
        .args(&["--json"])
        .run();
    out.exit(Exit::Usage);
    let v = out.json();
    let diags: Vec<(String, String, i64, i64)> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["file"].as_str().unwrap().to_string(),
                d["line"].as_i64().unwrap(),
                d["column"].as_i64().unwrap(),
            )
        })
        .collect();
    let at = |code: &str, line: i64, col: i64| {
        (
            format!("runbook::check::{code}"),
            "author_lints.rhai".to_string(),
            line,
            col,
        )
    };
    assert_eq!(
        diags,
        vec![
            at("write_without_undo", 4, 1),
            at("irreversible_without_confirm", 7, 1),
            at("secret_in_url", 12, 11),
            at("secret_in_print", 14, 5),
            at("secret_in_url", 15, 11),
            at("unused_param", 3, 1),
            at("missing_audit", 1, 1),
        ]
    );
    let messages: Vec<&str> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "step 'write' writes (heroku::set_config) but has no undo and is not marked irreversible",
            "step 'delete' is irreversible but asks for no confirmation",
            "http::get is given a Secret in the URL",
            "print shows the http:: response field 'api_key' (not declared in `secrets`) as plain text",
            "http::get is given a Secret in the query parameter 'auth'",
            "param 'unused' is never used",
            "a rotation runbook (with `secret`) never calls audit::log",
        ]
    );
}

#[test]
fn write_lint_names_the_call_and_the_three_ways_out() {
    let out = with_fixture("check", "author_lints.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has("author_lints.rhai:4:1: step 'write' writes (heroku::set_config)")
        .stderr_has("(heroku::set_config on line 5 of author_lints.rhai)")
        .stderr_has(".irreversible(\"why\") with .confirm(\"question\")")
        .stderr_has(".no_undo(\"why\")");
}

/// The shipped runbooks are what authors copy: every lint must pass on them.
#[test]
fn shipped_runbooks_pass_every_lint() {
    let out = Test::new()
        .args(&["check"])
        .arg(root().join("runbooks"))
        .run();
    out.exit(Exit::Ok)
        .stdout_has("postmark.rhai")
        .stdout_has("sendgrid.rhai")
        .stdout_has("infisical-sync.rhai");
}

/// What makes a step safe without an undo: writes that leave nothing to restore (restarts,
/// audit entries) and `.no_undo(why)`.
#[test]
fn steps_that_need_no_undo_pass() {
    let out = with_script(
        "check",
        "fine.rhai",
        r#"runbook(#{ id: "fine", title: "Fine" });
param("apps", #{ default: ["a"], help: "Heroku apps" });
step("restart", "Restart", |ctx| { heroku::restart(ctx.params.apps); });
step("ping", "Ping", |ctx| {
    http::post("https://hooks.example.com/ping", #{ json: #{ ok: true } });
}).no_undo("a notification changes nothing to restore");
step("audit", "Audit", |ctx| { audit::log("fine.done", #{}); });
"#,
    )
    .run();
    out.exit(Exit::Ok).stdout_has("ok  fine.rhai");
}

/// A Secret that reaches a URL through the runbook's own functions is found before the
/// run: a function that puts its argument in an http:: URL, and one that builds the URL
/// text; a function that sends it as a bearer token is fine.
#[test]
fn a_secret_reaching_a_url_through_a_function_is_found() {
    let out = with_fixture("check", "secret_url_through_fn.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has(
            "secret_url_through_fn.rhai:11:5: fetch() is given a Secret it puts in an http:: URL",
        )
        .stderr_has("secret_url_through_fn.rhai:18:11: http::get is given a Secret in the URL");
    assert!(
        !out.stderr.contains(":10:5:"),
        "fine() sends it as a header: {}",
        out.stderr
    );
}
