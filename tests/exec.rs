//! `runbook exec`: steps, prompts, params, failures and exit codes.

use crate::support::{
    assert_lacks, current_infisical, exits_with, fixture, new_tokens, prompts_answered, signal,
    start_until, step_statuses, with_fixture, writes, Exit, Rig, Test, OLD_TOKEN,
};

/// `exec prompts.rhai` (tests/fixtures/prompts.rhai), then `extra`.
fn prompts(extra: &[&str]) -> Test {
    with_fixture("exec", "prompts.rhai").args(extra)
}

/// prompts.rhai answered with blue, which its check step refuses.
const BLUE: &str =
    "prerequisites = true\ncolor = \"blue\"\ntoken = \"t-0123456789\"\nproceed = true\n";

#[test]
fn answers_and_ctx_flow_through_steps_and_json_reports_each_step() {
    let out = with_fixture("exec", "prompts.rhai")
        .fixture("answers.toml")
        .args(&[
            "--answers",
            "answers.toml",
            "--json",
            "--param",
            "attempts=5",
        ])
        .run();
    out.exit(Exit::Ok);
    out.stderr_has("Step 2/3 · use · Use the answers")
        .stderr_has("  | color=green apps=2 attempts=5")
        .stderr_has("  | secret(…cdef)");
    let report = out.report();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["runbook"], "prompts");
    assert_eq!(
        step_statuses(&report),
        vec![
            ("ask", "completed"),
            ("use", "completed"),
            ("check", "completed")
        ]
    );
    assert!(report["steps"][0]["duration_ms"].is_u64());
    assert!(report["run_id"].as_str().unwrap().len() > 10);
}

/// `--json` streams the run as JSON Lines: each line has its type, run id and time and is
/// valid against the schema `api --stream-schema` publishes; its ledger events are the
/// journal's, so replayed they fold to the same state; the last line is the report.
#[test]
fn json_streams_events_that_replay_into_the_same_ledger() {
    use runbook_core::ledger::{Ledger, Stamped};
    let out = Test::new()
        .rehearse("postmark")
        .args(&["--yes", "--json"])
        .run();
    out.exit(Exit::Ok);
    // The terminal view goes on, on stderr.
    out.stderr_has("Step 1/8 · precheck");
    let lines = out.events();
    let run_id = out.last_run_id();
    let schema = Test::new().args(&["api", "--stream-schema"]).run().json();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    for line in &lines {
        let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}: {line}");
        assert_eq!(line["run_id"], run_id.as_str(), "{line}");
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    for t in [
        "run_started",
        "step_started",
        "write",
        "write_outcome",
        "step_finished",
        "run_finished",
        "step_reached",
        "report",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }
    assert_eq!(types.last(), Some(&"report"));
    let streamed: Vec<Stamped> = lines
        .iter()
        .filter_map(|l| serde_json::from_value(l.clone()).ok())
        .collect();
    let journal = runbook_core::ledger::read(&out.journal_path()).unwrap();
    assert_eq!(streamed, journal, "the stream carries the journal's events");
    let replayed = Ledger::fold(&streamed).unwrap();
    assert_eq!(replayed, Ledger::fold(&journal).unwrap());
    let report = out.report();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(
        report["changes"].as_array().map(Vec::len),
        Some(replayed.changes().len())
    );
}

#[test]
fn yes_rolls_back_completed_steps_newest_first() {
    let out = prompts_answered("blue.toml", BLUE)
        .args(&["--yes", "--json"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("unexpected summary raxx-prod:blue")
        .stderr_has("  | undo use");
    let report = out.report();
    assert_eq!(report["status"], "rolled_back");
    assert_eq!(report["failed_step"], "check");
    assert_eq!(report["steps"][1]["status"], "undone");
    assert_eq!(report["steps"][2]["status"], "failed");
}

#[test]
fn no_rollback_with_yes_stops_instead() {
    let out = prompts_answered("blue.toml", BLUE)
        .args(&["--yes", "--no-rollback", "--json"])
        .run();
    out.exit(Exit::StepFailed);
    assert_eq!(out.report()["status"], "failed");
    assert_eq!(out.report()["steps"][1]["status"], "completed");
}

/// A test dir whose runbooks/ holds tests/fixtures/clean.rhai.
fn with_clean_runbook() -> Test {
    Test::new().file(
        "runbooks/clean.rhai",
        &std::fs::read_to_string(fixture("clean.rhai")).unwrap(),
    )
}

exits_with! {
    failing_ensure_names_the_step_and_message_and_exits_1:
        prompts_answered(
            "no.json",
            r#"{"prerequisites": true, "color": "green", "token": "x-token-value", "proceed": false}"#,
        ) => StepFailed,
        stderr [
            "Step 'use' failed:",
            "runbook::step::ensure_failed",
            "prompts.rhai:14:5: the operator did not confirm",
            "Completed steps left in place: ask.",
        ];

    prompt_without_answer_or_terminal_fails_at_once_naming_it:
        prompts_answered("partial.toml", "prerequisites = true\n") => StepFailed,
        // `color` has a default, so the first prompt that cannot be answered is the token.
        stderr [
            "prompts.rhai:10:25: prompt 'token' needs an answer, and there is no terminal to ask on",
            "add `token = \"...\"` to a file passed with --answers",
        ];

    prerequisites_need_confirmation: prompts(&[]) => Usage,
        stderr [
            "prompt 'prerequisites' needs an answer",
            "confirm the prerequisites with --yes",
        ];

    undeclared_param_is_a_usage_error: prompts(&["--yes", "--param", "nope=1"]) => Usage,
        stderr ["unknown param 'nope'", "declared params: server_name, apps, attempts"];

    param_of_the_wrong_type_is_a_usage_error:
        prompts(&["--yes", "--param", "attempts=many"]) => Usage,
        stderr ["param 'attempts' expects a whole number; the value given (4 characters) is not one"];

    malformed_answers_file_is_a_usage_error_with_its_line:
        prompts(&["--answers", "bad_answers.toml"]).fixture("bad_answers.toml") => Usage,
        stderr ["bad_answers.toml:2: malformed answers file"];

    missing_runbook_lists_what_exists: with_clean_runbook().args(&["exec", "nope"]) => Usage,
        stderr ["no runbook named 'nope'", "available: clean"];

    runbook_is_found_by_name_in_runbooks_folder:
        with_clean_runbook().args(&["exec", "clean", "--yes"]) => Ok,
        stdout ["  | hello demo"];

    runbook_with_no_steps_is_refused:
        with_fixture("exec", "no_steps.rhai") => Usage,
        stderr ["the runbook has no steps"];

    endless_loop_hits_the_operation_limit_naming_the_step:
        with_fixture("exec", "endless_loop.rhai") => StepFailed,
        stderr ["Step 'spin' failed:", "runbook::script::operation_limit"];

    deep_recursion_hits_the_call_depth_limit:
        with_fixture("exec", "deep_recursion.rhai") => StepFailed,
        stderr ["Step 'recurse' failed:", "runbook::script::call_depth"];

    huge_string_hits_the_size_limit:
        with_fixture("exec", "huge_string.rhai") => StepFailed,
        stderr ["runbook::script::too_large"];

    wrong_argument_types_name_the_call:
        with_fixture("exec", "wrong_types.rhai") => StepFailed,
        stderr [
            "runbook::script::unknown_function",
            "wrong_types.rhai:3:13: no function matches secret::from_env (i64)",
        ];

    host_calls_at_the_top_level_are_refused:
        with_fixture("exec", "top_level_prompt.rhai").args(&["--yes"]) => Usage,
        stderr [
            "top_level_prompt.rhai:2:17: prompt::confirm cannot be called at the top level of a runbook",
        ];

    /// A closure written inside an imported module lives in that module's library, not the
    /// runbook's: steps that a module registers (std/rotation does) must still run, and undo.
    steps_registered_by_an_imported_module_run_and_undo:
        Test::new().args(&[
            "exec",
            &format!("{}/main.rhai", fixture("module_steps").display()),
            "--yes",
        ]) => StepFailed,
        stdout [
            "  | runbook closure called by the module",
            "  | step 1 ran",
            "  | ctx.from_module = 42",
            "  | module undo",
        ];
}

/// SIGTERM (systemd, `timeout`) and SIGHUP (a dropped SSH session) stop the step as
/// Ctrl-C does, and are named for what they are: before, the operator read that they had
/// pressed Ctrl-C (fault review).
#[test]
fn a_terminate_or_hangup_signal_is_named_not_called_ctrl_c() {
    for (number, named) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP (the terminal went away)"),
    ] {
        let test = with_fixture("exec", "interrupt.rhai").args(&["--yes"]);
        let (mut child, lines) = start_until(
            test.command().stderr(std::process::Stdio::piped()),
            "waiting",
        );
        signal(&child, number);
        let _: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(130), "{named}: {stderr}");
        assert!(
            stderr.contains(&format!("Interrupted ({named}) during step 'wait'.")),
            "{named}: {stderr}"
        );
    }
}

#[test]
fn ctrl_c_stops_the_running_step_with_exit_130() {
    let test = with_fixture("exec", "interrupt.rhai").args(&["--yes"]);
    // Wait until the step is running, then interrupt it.
    let (mut child, lines) = start_until(
        test.command().stderr(std::process::Stdio::piped()),
        "waiting",
    );
    signal(&child, libc::SIGINT);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "stdout: {rest:?}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("Interrupted (Ctrl-C) during step 'wait'."),
        "{stderr}"
    );
    assert!(
        !rest.iter().any(|l| l.contains("undo done")),
        "interrupt must not roll back by itself"
    );
}

/// The vendor settings of a production run, at hosts that do not resolve: these tests stop
/// before any call, so nothing leaves the machine.
fn production_env(t: Test) -> Test {
    t.shipped_runbooks()
        .env("POSTMARK_API_URL", "https://postmark.invalid")
        .env("INFISICAL_DOMAIN", "https://infisical.invalid")
        .env("INFISICAL_TOKEN", "banner-test-infisical-token-0001")
        .env("INFISICAL_PROJECT_ID", "raxx-project")
        .env("HEROKU_HOST", "https://heroku.invalid")
        .env("HEROKU_API_KEY", "banner-test-heroku-key-0001")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .env("POSTMARK_TEST_RECIPIENT", "ops@example.com")
}

/// A production run of the Postmark rotation that the operator declines at the
/// prerequisites, in `t`.
fn declined(t: Test) -> Test {
    production_env(t)
        .args(&["exec", "postmark"])
        .answers("prerequisites = false\n")
}

/// The banner says where the run goes: PRODUCTION with each vendor's endpoint, or SANDBOX
/// with the faults injected. A run the operator declines at the prerequisites stops there.
#[test]
fn the_banner_says_production_with_each_endpoint_or_sandbox_with_its_faults() {
    let out = declined(Test::new()).args(&["--actor", "ops-test"]).run();
    out.exit(Exit::Aborted).stdout_has(
        "PRODUCTION · postmark https://postmark.invalid (dashboard https://account.postmarkapp.com) · infisical https://infisical.invalid/api · heroku https://heroku.invalid · github https://api.github.com",
    );
    // GitHub is optional for this runbook: a warning, not a stop.
    out.stderr_has("warning: GITHUB_TOKEN is not set: steps that call github:: will fail");

    let out = Test::new()
        .rehearse("postmark")
        .args(&["--yes", "--fault", "postmark:GET:/server=500:once"])
        .run();
    out.exit(Exit::Ok).stdout_has(
        "SANDBOX · simulated vendors in this process · faults: postmark:GET:/server=500:once",
    );
}

/// `--fault` and `--scenario` shape simulators; without `--sandbox` there are none, and the
/// run would have gone to the real endpoints with the fault silently ignored.
#[test]
fn a_fault_or_scenario_without_sandbox_is_refused_with_the_reason() {
    for (command, flag) in [
        (
            vec!["exec", "postmark", "--yes"],
            vec!["--fault", "postmark=500"],
        ),
        (
            vec!["exec", "postmark", "--yes"],
            vec!["--scenario", "s.toml"],
        ),
        (vec!["repl", "postmark"], vec!["--fault", "heroku=500"]),
        (
            vec!["consumers", "POSTMARK_SERVER_TOKEN"],
            vec!["--fault", "heroku=500"],
        ),
    ] {
        let args: Vec<&str> = command.iter().chain(flag.iter()).copied().collect();
        let out = production_env(Test::new()).args(&args).run();
        out.exit(Exit::Usage)
            .stderr_has(&format!(
                "{} applies only to a rehearsal: without --sandbox nothing is simulated",
                flag[0]
            ))
            .stderr_has("add --sandbox to rehearse with it");
    }
}

/// A missing setting is found before any question: every one is listed with how to set it,
/// nothing is asked, no run starts.
#[test]
fn preflight_lists_every_missing_setting_before_any_question() {
    let out = Test::new()
        .shipped_runbooks()
        .env_remove("INFISICAL_TOKEN")
        .env_remove("INFISICAL_PROJECT_ID")
        .env_remove("HEROKU_API_KEY")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args(&[
            "exec",
            "postmark",
            "--yes",
            "--param",
            "test_recipient=ops@example.com",
        ])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::preflight::missing")
        .stderr_has("postmark-server-token cannot start: 3 setting(s) its vendors need are missing")
        .stderr_has("INFISICAL_TOKEN (infisical)")
        .stderr_has("INFISICAL_PROJECT_ID (infisical)")
        .stderr_has("HEROKU_API_KEY (heroku): an API key (`heroku auth:token`)")
        .stderr_has("nothing was asked or changed");
    assert!(!out.stderr.contains("Prerequisites"), "{}", out.stderr);
    assert!(!out.path().join("state/runs").exists(), "no run started");

    // A param bound to the variable supplies it as well.
    let out = declined(Test::new())
        .env_remove("INFISICAL_PROJECT_ID")
        .args(&["--param", "project_id=raxx-project"])
        .run();
    out.exit(Exit::Aborted);
}

/// `runbook sandbox` exports its scenario's compressed preboot window (9 s for the realistic
/// one). Before, carried into a shell that runs against Heroku itself, it cut the wait for
/// the old dynos to hand over the traffic from about 3.5 minutes to 10 seconds: verify and
/// revoke then ran while the old dynos still served the old token. Now the run stops at its
/// start, saying why, before any question or change.
#[test]
fn a_sandbox_preboot_window_is_refused_against_heroku_itself() {
    let out = Test::new()
        .shipped_runbooks()
        .env("RUNBOOK_HEROKU_PREBOOT_WINDOW", "9")
        .env("HEROKU_HOST", "https://api.heroku.invalid")
        .args(&[
            "exec",
            "postmark",
            "--yes",
            "--param",
            "test_recipient=ops@example.com",
        ])
        .run();
    out.exit(Exit::Usage)
        .stderr_has(
            "RUNBOOK_HEROKU_PREBOOT_WINDOW = '9' is not valid: against Heroku itself at least 180",
        )
        .stderr_has("so unset it in a shell that runs against production");
    assert!(!out.path().join("state/runs").exists(), "no run started");
}

/// The same floor for a runbook's own `preboot_window` option: against Heroku itself a
/// window under 180 s is refused where it is given, before any request.
#[test]
fn a_runbooks_short_preboot_window_is_refused_against_heroku_itself() {
    let runbook = r#"runbook(#{ id: "short", title: "Short window" });
step("wait", "Wait", |ctx| {
    heroku::wait_up(["raxx-api-prod"], #{ timeout: 1, preboot_window: 9 });
}).no_undo("a wait");
"#;
    let out = Test::new()
        .file("short.rhai", runbook)
        .env("HEROKU_HOST", "https://api.heroku.invalid")
        .env("HEROKU_API_KEY", "not-a-key-for-a-test-0123456789")
        .args(&["exec", "short.rhai", "--yes", "--no-rollback"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("heroku::wait_up: preboot_window 9s is shorter than any Heroku app's (180 s: the boot timeout, 60 s at least, plus 2 minutes)")
        .stderr_has("a shorter window is only for a sandbox");
}

/// The actor comes from --actor, RUNBOOK_ACTOR, git's user.email, then USER; when nothing
/// names anyone, a production run says the audit log will record it as unknown.
#[test]
fn the_actor_comes_from_git_then_user_and_unknown_is_warned_about() {
    let out = declined(Test::new())
        .file(".gitconfig", "[user]\n\temail = jo@raxx.app\n")
        .run();
    out.exit(Exit::Aborted).stdout_has("· actor jo@raxx.app");

    let out = declined(Test::new())
        .env_remove("USER")
        .env_remove("LOGNAME")
        .run();
    out.exit(Exit::Aborted)
        .stdout_has("· actor unknown@")
        .stderr_has("warning: who runs this is unknown, so the audit log records unknown@");
}

/// A production run (here: a separate `runbook sandbox`, whose endpoints the banner calls
/// LOOPBACK) asks once before its first write, listing every write the plan can make;
/// "no" stops with nothing changed. `--yes` answers it.
#[test]
fn a_production_run_lists_its_writes_and_asks_before_the_first() {
    let rig = Rig::new();
    let out = rig
        .shell(&["exec", "postmark"])
        .answers("prerequisites = true\n\"writes.confirm\" = false\n")
        .args(&["--actor", "ops-test"])
        .run();
    out.exit(Exit::Aborted)
        .stdout_has("The next steps write to the vendors this run points at (see the banner):\n  generate · infisical::set_secret, postmark::dashboard_new_token\n  validate · postmark::send_email\n  store · infisical::set_secret\n  propagate · github::set_secret, heroku::set_config, infisical::delete_secret\n")
        .stderr_has("Stopped before the first write at the operator's request. Nothing was changed.");
    // precheck ran (reads only); nothing was written anywhere.
    assert!(out.stdout.contains("✓ precheck"), "{}", out.stdout);
    let state = rig.state();
    let writes = writes(&state);
    assert!(writes.is_empty(), "{writes:?}");
}

/// A run stopped at its questions (a prerequisite not confirmed, the first write declined)
/// asks them again when resumed: before, `resume` started at precheck, never showed the
/// checklist nor the list of writes, and rotated on the checklist the operator refused.
/// A REPL session is not resumed as a rotation.
#[test]
fn a_resumed_run_asks_the_questions_it_was_stopped_at() {
    let rig = Rig::new();
    rig.file(
        "no.toml",
        "prerequisites = true\n\"writes.confirm\" = false\n",
    );
    let out = rig
        .shell(&[
            "exec",
            "postmark",
            "--actor",
            "ops-test",
            "--answers",
            "no.toml",
        ])
        .run();
    out.exit(Exit::Aborted);
    let run = rig.run_id();
    let out = rig
        .shell(&[
            "resume",
            &run,
            "--actor",
            "ops-test",
            "--answers",
            "no.toml",
        ])
        .run();
    out.exit(Exit::Aborted)
        .stdout_has("The next steps write to the vendors this run points at (see the banner):")
        .stderr_has(
            "Stopped before the first write at the operator's request. Nothing was changed.",
        );
    let state = rig.state();
    let written = writes(&state);
    assert!(written.is_empty(), "{written:?}");
    // The checklist the first process confirmed (five items) was not asked again.
    let journal = rig.journal();
    assert_eq!(
        journal.matches("\"id\":\"prerequisites\"").count(),
        5,
        "{journal}"
    );
    // A prerequisite refused: the resume shows the checklist again, and with nobody to
    // answer it, stops there.
    rig.file("unready.toml", "prerequisites = false\n");
    rig.shell(&[
        "exec",
        "postmark",
        "--actor",
        "ops-test",
        "--answers",
        "unready.toml",
    ])
    .run()
    .exit(Exit::Aborted);
    let run = rig.run_id();
    let out = rig.shell(&["resume", &run, "--actor", "ops-test"]).run();
    out.exit(Exit::Aborted)
        .stderr_has("prompt 'prerequisites' needs an answer");
    assert_lacks("stdout", &out.stdout, "✓ precheck");
    let state = rig.state();
    let written = writes(&state);
    assert!(written.is_empty(), "{written:?}");
    // Answered at last, it goes on, the checklist's five items recorded once.
    rig.resume(&["--actor", "ops-test"]).exit(Exit::Ok);
    let journal = rig.journal();
    assert_eq!(
        journal.matches("\"id\":\"prerequisites\"").count(),
        5,
        "{journal}"
    );
}

/// The operator generated the token in the dashboard, then pasted something else. Before,
/// the write was recorded failed (nothing generated) though the token was on the server;
/// now it is in doubt, the step's help says the token is there, and a resume asks for the
/// token the earlier attempt generated rather than a second one (the server's third).
#[test]
fn a_paste_that_is_not_a_token_leaves_the_generated_one_in_doubt_for_the_resume() {
    let rig = Rig::new();
    let postmark = rig.sandbox.postmark_url().to_string();
    rig.file(
        "typo.toml",
        "prerequisites = true\n\"writes.confirm\" = true\n\"generate.new_token\" = \"4f1e9a-not-a-token\"\n",
    );
    let typo = ["--actor", "ops-test", "--answers", "typo.toml"];
    // Stopped after the precheck counted the server's tokens, so that the operator's
    // generating comes after it, as at a terminal.
    rig.shell(&[&["exec", "postmark"][..], &typo[..]].concat())
        .env("RUNBOOK_CRASH_AT", "after:precheck")
        .run();
    let run = rig.run_id();
    let (status, _) = crate::support::http(
        &postmark,
        "POST",
        "/dashboard/servers/4242/tokens",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "name=rotation",
    );
    assert_eq!(status, 303);
    let generated = new_tokens(&rig.state()).remove(0);
    let out = rig
        .shell(&[&["resume", &run][..], &typo[..]].concat())
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::prompt::bad_answer")
        .stderr_has("the pasted value does not look like a Postmark server token (a UUID)")
        .stderr_has("help: the token you generated is on the server now: retry the step and paste it")
        .stdout_has("generate · postmark::dashboard_new_token on dashboard: new API token on raxx-prod: outcome unknown");
    // An answers file gives the same answer each time: asked once.
    assert_lacks("stderr", &out.stderr, "Try again");
    assert_lacks("journal", &rig.journal(), "4f1e9a-not-a-token");
    // The resume's retry of the step finds the token on the server and asks for it.
    rig.file(
        "right.toml",
        &format!("\"generate.earlier_token\" = \"{generated}\"\n\"validate.received\" = true\n"),
    );
    // Stopped before revoke: the operator deletes the old token at the dashboard, not here.
    rig.shell(&[
        "resume",
        &run,
        "--actor",
        "ops-test",
        "--answers",
        "right.toml",
        "--yes",
    ])
    .env("RUNBOOK_CRASH_AT", "after:verify")
    .run()
    .stdout_has(
        "the server holds 2 tokens, 1 before this run: using the one an earlier attempt generated",
    );
    let state = rig.state();
    assert_eq!(
        current_infisical(&state),
        generated,
        "stored: the token generated first"
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(crate::support::app_token(&state, app), generated, "{app}");
    }
    assert_eq!(
        crate::support::live_tokens(&state).len(),
        2,
        "the old token and the one generated: no third"
    );
}

/// An answers file's key that answers no question is refused with `--yes` (the question
/// it was meant to answer "no" would be answered yes) and said without it. Before, it was
/// ignored: a mistyped `"validate.receivd" = false` let `--yes` answer that the validation
/// email arrived.
#[test]
fn an_answers_key_that_answers_no_question_is_refused_with_yes() {
    let rig = Rig::new();
    rig.file(
        "typo.toml",
        "\"validate.receivd\" = false\n\"precheck.unlisted.heroku.raxx-api-old.POSTMARK_SERVER_TOKEN\" = \"exclude\"\n",
    );
    let out = rig.exec("postmark", &["--answers", "typo.toml"]);
    out.exit(Exit::Usage)
        .stderr_has("typo.toml: this key answers no question of runbook postmark-server-token: `validate.receivd` (did you mean `validate.received`?); with --yes, the question it was meant for would be answered yes")
        .stderr_has("`runbook answers postmark-server-token` lists every question's id; correct or remove `validate.receivd`");
    let state = rig.state();
    let written = writes(&state);
    assert!(written.is_empty(), "{written:?}");
    assert!(rig.runs().as_array().unwrap().is_empty(), "no run started");
    // A resume (or rollback) checks the file the same way, before it takes the run's lock.
    rig.crash("postmark", "after:validate");
    let run_id = rig.run_id();
    let journal = rig.journal();
    let out = rig.runbook(&["resume", &run_id, "--yes", "--answers", "typo.toml"], &[]);
    out.exit(Exit::Usage)
        .stderr_has("typo.toml: this key answers no question of runbook postmark-server-token: `validate.receivd` (did you mean `validate.received`?)");
    assert_eq!(rig.journal(), journal, "nothing recorded");
    rig.runbook(
        &["rollback", &run_id, "--yes", "--answers", "typo.toml"],
        &[],
    )
    .exit(Exit::Usage)
    .stderr_has("`validate.receivd` (did you mean `validate.received`?)");
    rig.rollback(&[]).exit(Exit::Ok);
    // The values a resume asks for (`resume.KEY`, one per Secret the run held) are known
    // only from a journal: such a key is taken, not called a typo (author review: the
    // answers file that let a resume go on was warned about, and refused with --yes).
    rig.file(
        "values.toml",
        "\"resume.old_pw\" = \"x\"\n\"resume.params.admin_key\" = \"y\"\n",
    );
    rig.file(
        "pw.rhai",
        "runbook(#{ id: \"pw\", title: \"P\" });\nstep(\"read\", \"Read\", |ctx| { ctx.old_pw = infisical::secret(\"POSTMARK_SERVER_TOKEN\").value; }).no_undo(\"a read\");\n",
    );
    let out = rig.exec("pw.rhai", &["--answers", "values.toml"]);
    out.exit(Exit::Ok);
    assert!(
        !out.stderr.contains("no question of runbook"),
        "{}",
        out.stderr
    );
    // A typo of a known one (`resume.unread`) is still one (a second reading).
    rig.file("unraed.toml", "\"resume.unraed\" = true\n");
    rig.exec("pw.rhai", &["--answers", "unraed.toml"])
        .exit(Exit::Usage)
        .stderr_has("`resume.unraed` (did you mean `resume.unread`?)");
    // A key far from every question (reading the script does not see every one: a
    // question computed whole, one in a closure) is said, not refused.
    rig.file("other.toml", "\"verify.some_computed_question\" = true\n");
    rig.exec("postmark", &["--answers", "other.toml"])
        .exit(Exit::Ok)
        .stderr_has("warning: other.toml: this key answers no question of runbook postmark-server-token: `verify.some_computed_question` (as far as reading the runbook shows");
    // A checklist's id (its step's, `.checklist`) is known.
    rig.file(
        "list.rhai",
        "runbook(#{ id: \"list\", title: \"List\" });\nstep(\"s\", \"S\", |ctx| { prompt::checklist([\"a\"]); print(\"checked\"); });\n",
    );
    rig.file("list.toml", "\"s.checklist\" = true\n");
    let out = rig.exec("list.rhai", &["--answers", "list.toml"]);
    out.exit(Exit::Ok).stdout_has("checked");
    assert_lacks("stderr", &out.stderr, "answers no question");
    // Without --yes the operator is told, and the questions are asked as usual (here,
    // with no terminal, the prerequisites cannot be).
    let out = rig
        .shell(&[
            "exec",
            "postmark",
            "--actor",
            "ops-test",
            "--answers",
            "typo.toml",
        ])
        .run();
    out.exit(Exit::Usage).stderr_has("prompt 'prerequisites' needs an answer").stderr_has(
        "warning: typo.toml: this key answers no question of runbook postmark-server-token: `validate.receivd`",
    );
}

/// A run stopped by a question nobody can answer (no terminal, no --answers entry, no
/// --yes) says how to answer it. Before, only "needs an answer": the hint was dropped.
#[test]
fn an_unanswerable_first_write_question_says_how_to_answer_it() {
    let rig = Rig::new();
    let out = rig
        .shell(&["exec", "postmark", "--actor", "ops-test"])
        .answers("prerequisites = true\n")
        .run();
    out.exit(Exit::Aborted)
        .stderr_has("prompt 'writes.confirm' needs an answer")
        .stderr_has("  help: it asks: Go ahead with the first write?\nadd `writes.confirm = true` to a file passed with --answers, or pass --yes, or run on a terminal");
    let state = rig.state();
    let written = writes(&state);
    assert!(written.is_empty(), "{written:?}");
}

/// A write the plan's list cannot see (here through a function pointer built from a string,
/// which reading the script cannot follow) still asks before it is sent: before, the run
/// sent it with no question at all, and the list said the run wrote nothing.
#[test]
fn a_write_the_plan_did_not_list_asks_before_it_is_sent() {
    let rig = Rig::new();
    rig.file(
        "mode.rhai",
        r#"
runbook(#{ id: "mode", title: "Maintenance mode" });
param("how", #{ default: "set_mode", help: "the function that sets the mode" });
fn set_mode(mode) { heroku::set_config("raxx-api-prod", #{ APP_MODE: mode }); }
step("look", "Look", |ctx| { print("looked"); });
step("apply", "Maintenance on", |ctx| { Fn(ctx.params.how).call("maintenance"); })
    .undo(|ctx| { Fn(ctx.params.how).call(()); });
"#,
    );
    let mode = |rig: &Rig| {
        rig.state()["heroku"]["apps"]["raxx-api-prod"]["config_vars"]["APP_MODE"].clone()
    };
    let out = rig
        .shell(&["exec", "mode.rhai", "--actor", "ops-test"])
        .answers("\"writes.confirm\" = false\n")
        .run();
    out.exit(Exit::Aborted)
        .stdout_has("looked")
        .stderr_has("Stopped in step 'apply' before the first write. Nothing was changed.");
    assert_eq!(mode(&rig), serde_json::Value::Null, "not sent");
    let state = rig.state();
    let written = writes(&state);
    assert!(written.is_empty(), "{written:?}");
    // A write on one target (not a fan-out) asks the same way.
    rig.file(
        "clean.rhai",
        r#"
runbook(#{ id: "clean", title: "Clean up" });
param("how", #{ default: "clean", help: "the function that cleans" });
fn clean() { infisical::delete_secret("POSTMARK_SERVER_TOKEN", #{}); }
step("apply", "Clean", |ctx| { Fn(ctx.params.how).call(); }).undo(|ctx| { print("nothing"); });
"#,
    );
    rig.shell(&["exec", "clean.rhai", "--actor", "ops-test"])
        .answers("\"writes.confirm\" = false\n")
        .run()
        .exit(Exit::Aborted)
        .stderr_has("Stopped in step 'apply' before the first write");
    let state = rig.state();
    let written = writes(&state);
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(current_infisical(&state), OLD_TOKEN, "not deleted");
    // Unanswerable (no terminal, no answer), inside a `try`: the run still stops there.
    // Before: the error was an ordinary one, which the script's catch took, and the run
    // went on without the write, then ended as a success.
    rig.file(
        "caught.rhai",
        r#"
runbook(#{ id: "caught", title: "Caught" });
param("how", #{ default: "set_mode", help: "the function that sets the mode" });
fn set_mode(mode) { heroku::set_config("raxx-api-prod", #{ APP_MODE: mode }); }
step("apply", "Maintenance on", |ctx| {
    try { Fn(ctx.params.how).call("maintenance"); } catch (e) { print("went on without it"); }
}).undo(|ctx| { Fn(ctx.params.how).call(()); });
"#,
    );
    let out = rig
        .shell(&["exec", "caught.rhai", "--actor", "ops-test"])
        .run();
    out.exit(Exit::Aborted)
        .stderr_has("needs an answer")
        .stderr_has("Stopped in step 'apply' before the first write. Nothing was changed.");
    assert_lacks("stdout", &out.stdout, "went on without it");
    assert_eq!(mode(&rig), serde_json::Value::Null, "not sent");
    // Said yes, it is sent, and asked once.
    let out = rig
        .shell(&["exec", "mode.rhai", "--actor", "ops-test"])
        .answers("\"writes.confirm\" = true\n")
        .run();
    out.exit(Exit::Ok);
    assert_eq!(mode(&rig), "maintenance");
    let journal = rig.journal();
    assert_eq!(
        journal.matches("\"id\":\"writes.confirm\"").count(),
        1,
        "{journal}"
    );
}

/// Without a terminal and without --yes, a missing setting is reported first: the preflight
/// runs before anything asks whether the questions can be answered. Before: "prompt
/// 'prerequisites' needs an answer" hid the settings that were missing.
#[test]
fn without_a_terminal_the_preflight_speaks_before_any_question() {
    let out = Test::new()
        .shipped_runbooks()
        .args(&["exec", "postmark", "--param", "test_recipient=ops@raxx.app"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::preflight::missing")
        .stderr_has("INFISICAL_PROJECT_ID (infisical)")
        .stderr_has("nothing was asked or changed");
    assert!(
        !out.stderr
            .contains("needs an answer, and there is no terminal"),
        "{}",
        out.stderr
    );
    // With the settings in place, the missing answer is the next thing said.
    let out = Test::new()
        .shipped_runbooks()
        .args(&["exec", "postmark", "--param", "test_recipient=ops@raxx.app"])
        .env("INFISICAL_TOKEN", "st.x")
        .env("INFISICAL_PROJECT_ID", "p")
        .env("HEROKU_API_KEY", "h")
        .env("POSTMARK_ACCOUNT_TOKEN", "a")
        .run();
    out.exit(Exit::Usage)
        .stderr_has("prompt 'prerequisites' needs an answer, and there is no terminal to ask on");
}

/// A rotation whose consumers are GitHub repositories only, through `std/rotation` (which
/// calls Heroku for the apps a runbook lists, here none). Before, preflight stopped it for
/// want of HEROKU_API_KEY; now Heroku, called only by the stdlib, is a warning, while
/// Infisical, where the stdlib always stores, still stops it.
#[test]
fn preflight_asks_only_for_the_vendors_a_runbook_uses() {
    let runbook = r#"
import "std/rotation" as rotation;
runbook(#{ id: "gh-only", title: "A key only GitHub Actions hold", secret: "DEPLOY_KEY", egress: ["api.vendor.example"] });
prerequisite("an account at the vendor");
rotation::steps(#{
    secret: "DEPLOY_KEY",
    vendor: "Vendor",
    consumers: |ctx| #{ github: ["raxx/deploy"] },
    discover: false,
    create: |ctx| http::post("https://api.vendor.example/keys", #{ json: #{}, secrets: ["key"] }).json.key,
    validate: |ctx| (),
    works: |ctx, key| true,
    revoke: |ctx| (),
});
"#;
    let base = |t: Test| {
        production_env(t)
            .file("gh-only.rhai", runbook)
            .env_remove("HEROKU_API_KEY")
            .env("GITHUB_TOKEN", "ghp_preflight_test_token_0001")
            .args(&["exec", "gh-only.rhai"])
            .answers("prerequisites = false\n")
    };
    let out = base(Test::new()).run();
    out.exit(Exit::Aborted)
        .stderr_has("warning: HEROKU_API_KEY is not set: steps that call heroku:: will fail");
    assert!(
        !out.stderr.contains("runbook::preflight::missing"),
        "{}",
        out.stderr
    );

    let out = base(Test::new()).env_remove("INFISICAL_TOKEN").run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::preflight::missing")
        .stderr_has("INFISICAL_TOKEN (infisical)");
}

/// A production run killed mid-way holds its rotation's lock until it is resumed, rolled
/// back or abandoned. Before, that lock also stopped every rehearsal of the same rotation,
/// the very thing an operator runs to try the fix; and a crashed rehearsal stopped
/// production. Now a rehearsal's lock is its own.
#[test]
fn a_rehearsal_never_waits_on_a_production_lock_nor_the_reverse() {
    let runbook = r#"
runbook(#{ id: "two-steps", title: "Two steps", secret: "SOME_TOKEN" });
step("one", "One", |ctx| { print("one"); }).no_undo("nothing");
step("two", "Two", |ctx| { print("two"); }).no_undo("nothing");
"#;
    let run = |dir: &std::path::Path, args: &[&str], crash: Option<&str>| {
        let mut t = production_env(Test::in_dir(dir).file("two.rhai", runbook)).args(args);
        if let Some(point) = crash {
            t = t.env("RUNBOOK_CRASH_AT", point);
        }
        t.run()
    };
    let production = ["exec", "two.rhai", "--yes"];
    let rehearsal = ["exec", "two.rhai", "--sandbox", "--yes"];

    // A production run dies after step one: production waits for it, a rehearsal does not.
    let first = Test::new();
    let crashed = run(first.path(), &production, Some("after:one"));
    assert_eq!(crashed.code, -9, "{}", crashed.stderr);
    run(first.path(), &production, None)
        .exit(Exit::Usage)
        .stderr_has("this rotation is already running");
    run(first.path(), &rehearsal, None)
        .exit(Exit::Ok)
        .stdout_has("two");

    // A rehearsal dies after step one: another rehearsal waits for it, production does not.
    let second = Test::new();
    let crashed = run(second.path(), &rehearsal, Some("after:one"));
    assert_eq!(crashed.code, -9, "{}", crashed.stderr);
    run(second.path(), &rehearsal, None)
        .exit(Exit::Usage)
        .stderr_has("this rotation is already running");
    run(second.path(), &production, None)
        .exit(Exit::Ok)
        .stdout_has("two");
}
