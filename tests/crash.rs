//! Runs that survive crashes: the engine is killed (SIGKILL) at every step boundary and
//! inside every step that writes, against a separate `runbook sandbox` whose vendors outlive
//! it; `resume` then completes the rotation, or `rollback` restores the old token.

use crate::support::{
    app_token, assert_everywhere, assert_recovered, assert_rotated, assert_safe, canary_scenario,
    current_infisical, live_tokens, new_token_answer, new_tokens, root, scripted, start_until,
    token_answer, with_fault, Exit, Output, Rig, CANARIES, OLD_TOKEN, POSTMARK_STEPS,
};

fn crash_then_resume(point: &str) {
    let rig = Rig::new();
    rig.crash("postmark", point);
    assert_safe(&rig.state(), &format!("{point}, crashed"));
    assert_eq!(
        rig.runs()[0]["status"],
        "interrupted",
        "{point}: runs shows the dead run"
    );
    // A new rotation is refused while the dead run holds the lock.
    let blocked = rig.exec("postmark", &[]);
    assert_eq!(blocked.code, 2, "{point}: {}", blocked.stderr);
    blocked.stderr_has("this rotation is already running");
    // A token generated but not yet stored is staged in Infisical: resume reads it back and
    // asks nobody for it (no answers file here).
    let resumed = rig.resume(&[]);
    assert_eq!(
        resumed.code, 0,
        "{point}: resume failed\n{}\n{}",
        resumed.stdout, resumed.stderr
    );
    assert_rotated(&rig.state(), point);
    // The summary counts the whole run, not only the session that finished it.
    assert!(
        resumed.stdout.contains("succeeded in ")
            && resumed.stdout.contains("(this session; ")
            && resumed.stdout.contains("s in steps across 2 sessions)"),
        "{point}: {}",
        resumed.stdout
    );
    rig.assert_no_secrets_on_disk();
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    assert_eq!(
        audit
            .matches("\"action\":\"secret.rotate.completed\"")
            .count(),
        1,
        "{point}: exactly one completion entry"
    );
}

#[test]
fn crash_at_every_step_boundary_then_resume_completes() {
    // Each boundary in its own world, side by side (much of each is waiting on boots).
    std::thread::scope(|s| {
        for step in POSTMARK_STEPS {
            s.spawn(move || crash_then_resume(&format!("after:{step}")));
        }
    });
}

#[test]
fn crash_inside_every_writing_step_then_resume_completes() {
    // `inside` fires right after the step's first write: the effect happened, the outcome
    // was never journalled. Every step between precheck (reads) and audit writes.
    std::thread::scope(|s| {
        for step in &POSTMARK_STEPS[1..7] {
            s.spawn(move || crash_then_resume(&format!("inside:{step}")));
        }
    });
}

#[test]
fn crash_inside_propagate_then_rollback_restores_the_old_token_everywhere() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let rolled = rig.rollback(&["--json"]);
    rolled.exit(Exit::Ok);
    assert_eq!(rolled.report()["status"], "rolled_back");
    let state = rig.state();
    assert_everywhere(&state, OLD_TOKEN);
    assert_eq!(
        live_tokens(&state).len(),
        2,
        "the new token is left for diagnosis"
    );
    assert_safe(&state, "after rollback");
    let journal = rig.journal();
    for step in ["propagate", "store", "generate"] {
        assert!(
            journal.contains(&format!(
                "\"type\":\"undo_finished\",\"step\":\"{step}\",\"outcome\":\"completed\""
            )),
            "{step} undo journalled"
        );
    }
    rig.assert_no_secrets_on_disk();
}

/// A rotation stopped after propagate, whose rollback died between two undos (propagate's
/// done, store's not begun).
fn rolled_back_part_way() -> Rig {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    let died = rig.runbook(
        &["rollback", &rig.run_id(), "--yes"],
        &[("RUNBOOK_CRASH_AT", "undone:propagate")],
    );
    assert_eq!(died.code, -9, "{}", died.stderr);
    rig
}

/// A rollback that dies between two undos (propagate's done, store's not begun) is not
/// resumed forward: the apps are back on the old token, and going on would set the new
/// one on them again and revoke the old one, finishing the rotation the operator was
/// undoing. Before, resume skipped what the undone step had written, ran propagate again
/// and revoked the old token (found by a cold review). `rollback` then finishes the job.
#[test]
fn a_rollback_that_died_between_two_undos_is_not_resumed_forward() {
    let rig = rolled_back_part_way();
    let state = rig.state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(app_token(&state, app), OLD_TOKEN, "{app}: propagate undone");
    }
    assert_ne!(current_infisical(&state), OLD_TOKEN, "store not undone yet");
    let resumed = rig.resume(&[]);
    assert_eq!(resumed.code, 1, "{}\n{}", resumed.stdout, resumed.stderr);
    resumed
        .stderr_has("✗ not resumed: this run's rollback stopped part way (propagate undone)")
        .stderr_has(&format!(
            "Finish it with `runbook rollback {}`",
            rig.run_id()
        ));
    // Asked again (a teammate, a retry): the refused resume did nothing, so it does not
    // wipe out what the dead rollback left (before, only the last process was looked at,
    // and the second resume re-set the new token everywhere and revoked the old one).
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: this run's rollback stopped part way (propagate undone)");
    let state = rig.state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            app_token(&state, app),
            OLD_TOKEN,
            "{app}: set again by resume"
        );
    }
    assert!(
        live_tokens(&state).contains(&OLD_TOKEN.to_string()),
        "the old token was revoked"
    );
    rig.rollback(&[]).exit(Exit::Ok);
    assert_everywhere(&rig.state(), OLD_TOKEN);
}

/// The same dead rollback, and then the old token deleted by hand: the next rollback is
/// refused (it would restore a dead token), and its advice must be what works. Before, it
/// said "go forward: `runbook resume`", judging a half-undone run by unfinished undos only,
/// and resume refused the run as half undone: the operator was sent round (stop review).
#[test]
fn a_refused_rollback_after_one_that_died_undoing_names_abandon_not_resume() {
    let rig = rolled_back_part_way();
    rig.sandbox.delete_postmark_token(OLD_TOKEN);
    let id = rig.run_id();
    let refused = rig.rollback(&[]);
    refused
        .exit(Exit::StepFailed)
        .stderr_has("✗ rollback refused: the value rollback would restore is not usable")
        .stderr_has(&format!(
            "this run's rollback stopped part way earlier, so it cannot be resumed: end it with `runbook abandon {id} --reason TEXT`"
        ));
    assert!(
        !refused.stderr.contains(&format!("runbook resume {id}")),
        "resume offered for a run it refuses:\n{}",
        refused.stderr
    );
    // What it would have sent the operator to: refused, as the advice now says.
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: this run's rollback stopped part way (propagate undone)");
}

/// A rollback that undid a step and then stopped at a point of no return recorded its end:
/// the run is left to go forward, and resume is not refused as a half-done rollback
/// (a1738db: only a process that died between two undos makes resume refuse). It runs the
/// undone step again, then the rest.
#[test]
fn a_rollback_blocked_at_a_point_of_no_return_leaves_the_run_to_go_forward() {
    let rig = Rig::new();
    rig.file(
        "cut.rhai",
        r#"
runbook(#{ id: "cut", title: "A cut-over in the middle" });
step("prepare", "Prepare", |ctx| { ctx.prepared = true; }).undo(|ctx| { print("undoing prepare"); });
step("cut", "Cut over", |ctx| { ctx.cut = true; })
    .irreversible("the old value is gone once the new one is live").confirm("Cut over now?");
step("after", "After", |ctx| {
    heroku::set_config("raxx-api-prod", #{ CUT_MARK: "on" });
    print("after ran");
}).undo(|ctx| {
    heroku::set_config("raxx-api-prod", #{ CUT_MARK: () });
    print("undoing after");
});
step("last", "Last", |ctx| { print("last ran"); });
"#,
    );
    let mark = |state: &serde_json::Value| {
        state["heroku"]["apps"]["raxx-api-prod"]["config_vars"]["CUT_MARK"].clone()
    };
    rig.crash("cut.rhai", "after:after");
    assert_eq!(mark(&rig.state()), "on");
    let blocked = rig.rollback(&[]);
    blocked
        .exit(Exit::StepFailed)
        .stdout_has("undoing after")
        .stderr_has("cannot roll back past step 'cut'");
    assert!(
        !blocked.stdout.contains("undoing prepare"),
        "{}",
        blocked.stdout
    );
    assert_eq!(mark(&rig.state()), serde_json::Value::Null, "undone");
    let resumed = rig.resume(&[]);
    resumed
        .exit(Exit::Ok)
        .stdout_has("after ran")
        .stdout_has("last ran");
    assert_eq!(mark(&rig.state()), "on", "set again going forward");
    assert!(
        !resumed.stderr.contains("rollback stopped part way"),
        "{}",
        resumed.stderr
    );
    let runs = rig.runs();
    assert_eq!(runs[0]["settled"], "succeeded", "{runs:#}");
}

/// A Secret kept inside a ctx map (allowed by the author, against `check`'s advice) comes
/// back from the journal as its fingerprint after a crash; the undo that restores it now
/// says so and what to do. Before: "config var must be a string, a Secret or () to remove
/// it", mid-rollback, nothing about why (author review).
#[test]
fn an_undo_given_a_secret_the_journal_kept_only_as_its_fingerprint_says_so() {
    let rig = Rig::new();
    rig.file(
        "nested.rhai",
        r#"
runbook(#{ id: "nested", title: "A Secret in a map" });
step("read", "Read", |ctx| {
    let c = infisical::secret("POSTMARK_SERVER_TOKEN");
    // check:allow(secret_inside_ctx): the test of what a resumed undo is told
    ctx.pw = #{ old: c.value, version: c.version };
}).no_undo("a read");
step("w", "Write", |ctx| {
    heroku::set_config("raxx-api-prod", #{ POSTMARK_SERVER_TOKEN: secret::random(24, "alnum") });
}).undo(|ctx| {
    heroku::set_config("raxx-api-prod", #{ POSTMARK_SERVER_TOKEN: ctx.pw.old });
});
step("last", "Last", |ctx| { print("last ran"); });
"#,
    );
    rig.crash("nested.rhai", "after:w");
    let out = rig.rollback(&[]);
    out.exit(Exit::StepFailed)
        .stderr_has("config var POSTMARK_SERVER_TOKEN is a Secret this run has only as its fingerprint (hmac:")
        .stderr_has("it was kept inside a map or list in ctx")
        .stderr_has("put the value back by hand where the step needs it");
}

/// A run stopped past its point of no return, with nothing to undo after it: `rollback`
/// says so at once. Before, it first asked for every Secret the run held (one failed
/// invocation at a time), listed the undos it would run, asked "Undo these now?", and
/// only then stopped at the point of no return (author review).
#[test]
fn a_rollback_past_the_point_of_no_return_is_refused_before_asking_for_anything() {
    let rig = Rig::new();
    rig.file(
        "purge.rhai",
        r#"
runbook(#{ id: "purge", title: "A purge" });
step("read", "Read", |ctx| {
    ctx.old_pw = infisical::secret("POSTMARK_SERVER_TOKEN").value;
}).no_undo("a read");
step("mark", "Mark", |ctx| {
    heroku::set_config("raxx-api-prod", #{ PURGE_MARK: "on" });
}).undo(|ctx| { heroku::set_config("raxx-api-prod", #{ PURGE_MARK: () }); });
step("purge", "Purge", |ctx| { print("purged"); })
    .irreversible("the old records are gone").confirm("Purge now?");
step("audit", "Audit", |ctx| { print(`${ctx.old_pw}`); });
"#,
    );
    rig.crash("purge.rhai", "after:purge");
    let id = rig.run_id();
    let out = rig.rollback(&[]);
    out.exit(Exit::StepFailed)
        .stderr_has("✗ cannot roll back past step 'purge': the old records are gone")
        .stderr_has(&format!(
            "the rotation can still go forward: `runbook resume {id}` finishes it"
        ));
    for said in ["ctx.old_pw", "Rolling back undoes", "Undo these now?"] {
        assert!(!out.text().contains(said), "{said}:\n{}", out.text());
    }
    assert_eq!(
        rig.state()["heroku"]["apps"]["raxx-api-prod"]["config_vars"]["PURGE_MARK"],
        "on",
        "nothing undone"
    );
    assert!(rig
        .journal()
        .contains("\"type\":\"rollback_blocked\",\"step\":\"purge\""));
}

/// A run holding two Secrets that nothing here can give back (no terminal, no answers, no
/// recover): the resume names both at once, with the answers file's lines. Before, each
/// attempt failed on the next key, one at a time (author review).
#[test]
fn a_resume_names_every_value_it_needs_back_at_once() {
    let rig = Rig::new();
    rig.file(
        "two.rhai",
        r#"
runbook(#{ id: "two-values", title: "Two values" });
step("make", "Make", |ctx| {
    ctx.new_pw = secret::random(24, "alnum");
    ctx.new_pin = secret::random(8, "digits");
}).no_undo("nothing outside");
step("last", "Last", |ctx| { print("last ran"); });
"#,
    );
    rig.crash("two.rhai", "after:make");
    rig.resume(&[])
        .exit(Exit::Usage)
        .stderr_has("this run holds 2 values it needs back, and nothing here can give them (no terminal, no answers file entry, no recover): ctx.new_pin, ctx.new_pw")
        .stderr_has("\"resume.new_pin\" = \"...\"\n")
        .stderr_has("\"resume.new_pw\" = \"...\"\n");
    // The refused resume did nothing and says how it ended; the run stands as the crash
    // left it (before, its STATUS became the refused resume's "aborted").
    let runs = rig.runbook(&["runs", &rig.run_id()], &[]);
    runs.exit(Exit::Ok)
        .stdout_has(" · two-values · production · interrupted · ")
        .stdout_has("ended: aborted");
}

/// A step undone by hand in the REPL (`:undo`) leaves the run to go forward too: the REPL
/// is not a rollback that died between two undos (a1738db), and resume sets the step again.
#[test]
fn a_step_undone_in_the_repl_is_set_again_by_resume() {
    let rig = Rig::new();
    rig.file(
        "two.rhai",
        r#"
runbook(#{ id: "two", title: "Two marks" });
step("first", "First", |ctx| {
    heroku::set_config("raxx-api-prod", #{ FIRST_MARK: "on" });
}).undo(|ctx| { heroku::set_config("raxx-api-prod", #{ FIRST_MARK: () }); });
step("second", "Second", |ctx| {
    heroku::set_config("raxx-api-prod", #{ SECOND_MARK: "on" });
}).undo(|ctx| { heroku::set_config("raxx-api-prod", #{ SECOND_MARK: () }); });
step("last", "Last", |ctx| { print("last ran"); });
"#,
    );
    let mark =
        |name: &str| rig.state()["heroku"]["apps"]["raxx-api-prod"]["config_vars"][name].clone();
    rig.crash("two.rhai", "after:second");
    assert_eq!(mark("SECOND_MARK"), "on");
    let attached = rig.runbook_stdin(
        &["repl", "--attach", &rig.run_id(), "--yes"],
        &[],
        ":undo second\n",
    );
    attached.exit(Exit::Ok);
    assert_eq!(
        mark("SECOND_MARK"),
        serde_json::Value::Null,
        "undone in the REPL"
    );
    let resumed = rig.resume(&[]);
    resumed.exit(Exit::Ok).stdout_has("last ran");
    assert!(
        !resumed.stderr.contains("rollback stopped part way"),
        "{}",
        resumed.stderr
    );
    assert_eq!(mark("SECOND_MARK"), "on", "set again going forward");
    assert_eq!(mark("FIRST_MARK"), "on");
}

#[test]
fn rollback_after_the_revocation_stops_and_says_why() {
    let rig = Rig::new();
    rig.crash("postmark", "after:revoke");
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has(
            "cannot roll back past step 'revoke': the old token is deleted and cannot be restored",
        )
        .stderr_has("rotate afresh");
}

#[test]
fn resume_refuses_a_changed_runbook_unless_forced() {
    let rig = Rig::new();
    let book = rig.path().join("postmark.rhai");
    std::fs::copy(root().join("runbooks/postmark.rhai"), &book).unwrap();
    rig.crash("postmark.rhai", "after:store");
    let text = std::fs::read_to_string(&book).unwrap() + "\n// an edit after the crash\n";
    std::fs::write(&book, text).unwrap();
    rig.resume(&[])
        .exit(Exit::Usage)
        .stderr_has("the runbook changed since this run started: ")
        .stderr_has("postmark.rhai changed");
    rig.resume(&["--force"])
        .exit(Exit::Ok)
        .stderr_has("resuming with a changed runbook (--force): ");
    assert_rotated(&rig.state(), "forced resume");
}

/// A run stopped against one sandbox, resumed from a shell that points at another: the
/// rest of the run would go to a world it never read (in production: a rehearsal resumed
/// in a production shell would rotate production under a rehearsal's lock and name). It is
/// refused, naming each endpoint that differs, and the other sandbox is sent nothing.
/// Before, it went on against whatever the shell pointed at (found by a cold review).
#[test]
fn resume_refuses_vendor_endpoints_other_than_the_runs() {
    let rig = Rig::new();
    rig.crash("postmark", "after:precheck");
    let other = Rig::new();
    let state_dir = rig.path().join("state");
    let before = other.state()["requests"].as_array().unwrap().len();
    let resumed = other.runbook(
        &["resume", &rig.run_id(), "--yes"],
        &[("RUNBOOK_STATE_DIR", &state_dir.to_string_lossy())],
    );
    resumed
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "run {} started against other vendor endpoints than this shell's: ",
            rig.run_id()
        ))
        .stderr_has(&format!(
            "postmark {} then, {} now",
            rig.sandbox.env["POSTMARK_API_URL"], other.sandbox.env["POSTMARK_API_URL"]
        ));
    assert_eq!(
        other.state()["requests"].as_array().unwrap().len(),
        before,
        "the other sandbox was sent a request"
    );
    // The REPL attaching to it is held to the same check (it reopens the run too).
    let attached = other.runbook_stdin(
        &["repl", "--attach", &rig.run_id(), "--yes"],
        &[("RUNBOOK_STATE_DIR", &state_dir.to_string_lossy())],
        ":run generate\n",
    );
    attached.exit(Exit::Usage).stderr_has(&format!(
        "run {} started against other vendor endpoints than this shell's: ",
        rig.run_id()
    ));
    assert_eq!(
        other.state()["requests"].as_array().unwrap().len(),
        before,
        "the other sandbox was sent a request from the REPL"
    );
    // The shell that points where the run started resumes it.
    rig.resume(&[]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "resumed where it started");
}

/// The endpoint check on resume compares only the vendors the runbook's own files call and
/// those the run wrote to (f091c8f): a vendor that only a stdlib module it imports could
/// call (GitHub, through `std/consumers`) may point elsewhere now, and the run resumes
/// against the endpoints of its own vendor, which did not move. Its own vendor moved is
/// still refused.
#[test]
fn resume_lets_a_vendor_the_runbook_never_calls_itself_point_elsewhere() {
    let rig = Rig::new();
    rig.file(
        "reads.rhai",
        r#"
import "std/consumers" as discovery;
runbook(#{ id: "reads", title: "Reads an app's config twice" });
step("first", "First read", |ctx| {
    print(`first: ${heroku::config("raxx-api-prod").keys().len()} vars`);
}).no_undo("a read");
step("second", "Second read", |ctx| {
    print(`second: ${heroku::config("raxx-api-prod").keys().len()} vars`);
}).no_undo("a read");
"#,
    );
    rig.crash("reads.rhai", "after:first");
    let other = Rig::new();
    let heroku_calls = |state: &serde_json::Value| {
        state["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["vendor"] == "heroku")
            .count()
    };
    let before = heroku_calls(&rig.state());
    let moved_github = [(
        "GITHUB_API_URL",
        other.sandbox.env["GITHUB_API_URL"].as_str(),
    )];
    let moved_heroku = [("HEROKU_HOST", other.sandbox.env["HEROKU_HOST"].as_str())];
    rig.runbook(&["resume", &rig.run_id(), "--yes"], &moved_heroku)
        .exit(Exit::Usage)
        .stderr_has("started against other vendor endpoints than this shell's: heroku ");
    rig.runbook(&["resume", &rig.run_id(), "--yes"], &moved_github)
        .exit(Exit::Ok)
        .stdout_has("second: ");
    assert_eq!(
        heroku_calls(&rig.state()),
        before + 1,
        "the second read went to the run's Heroku"
    );
}

#[test]
fn resume_refuses_a_different_token() {
    let rig = Rig::new();
    // After `generate`, before `store`: the new token is staged in Infisical; once someone
    // removed that copy, it is only in the operator's clipboard, so resume asks for it.
    rig.crash("postmark", "after:generate");
    assert_eq!(
        rig.sandbox
            .delete_infisical_secret("POSTMARK_SERVER_TOKEN_PENDING"),
        200
    );
    rig.file(
        "wrong.toml",
        &token_answer("c0ffee00-0000-4000-8000-0000000000ff"),
    );
    rig.resume(&["--answers", "wrong.toml"])
        .exit(Exit::Usage)
        .stderr_has("the value entered for ctx.new_token is not the one this run used");
    // With the right token it completes.
    let new = new_tokens(&rig.state()).remove(0);
    rig.file("right.toml", &token_answer(&new));
    rig.resume(&["--answers", "right.toml"]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "resumed with the right token");
}

/// Two resumes of one crashed run, the second held between its read of the journal and
/// its taking of the lock while the first finishes the rotation. The second reads the
/// journal again under the lock and refuses: the run already succeeded. Before, it went on
/// from what it had read: verify sent Raptor's email again, revoke failed on the token the
/// first had deleted, and the run ended "failed" after it had succeeded.
#[test]
fn a_resume_that_waited_for_the_lock_reads_the_journal_again_under_it() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    let run_id = rig.run_id();
    let go = rig.path().join("go");
    let reached = rig.path().join("go.reached");
    let late = rig
        .command(
            &["resume", &run_id, "--yes"],
            &[("RUNBOOK_PAUSE_AT", &format!("reopen:{}", go.display()))],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !reached.exists() {
        assert!(
            std::time::Instant::now() < bound,
            "the second resume never read the journal"
        );
        std::thread::yield_now();
    }
    let first = rig.resume(&[]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    std::fs::write(&go, "").unwrap();
    let late = late.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert_eq!(late.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run {run_id} already succeeded: nothing to resume"
        )),
        "{stderr}"
    );
    assert_eq!(rig.runs()[0]["current"], "succeeded");
    assert_eq!(
        rig.journal().matches("\"type\":\"run_finished\"").count(),
        1,
        "{stderr}"
    );
    assert_rotated(&rig.state(), "two resumes");
}

#[test]
fn resume_of_an_unknown_run_is_a_usage_error() {
    let rig = Rig::new();
    rig.runbook(&["resume", "20990101T000000Z-abcdef"], &[])
        .exit(Exit::Usage)
        .stderr_has("no run '20990101T000000Z-abcdef' in ")
        .stderr_has("`runbook runs` lists the runs");
}

#[test]
fn two_concurrent_rotations_exactly_one_runs() {
    // The first run's precheck waits on a slow Postmark while the second one starts.
    let rig = Rig::with_scenario_text(&with_fault(
        &canary_scenario(),
        "postmark:GET:/server=latency=3000:once",
    ));
    let (mut first, lines) = start_until(
        rig.command(&["exec", "postmark", "--yes"], &[])
            .stderr(std::process::Stdio::null()),
        "Step 1/8",
    );
    // Same secret, a different log window: still the same rotation, still refused.
    let second = rig.exec("postmark", &["--param", "log_lines=301"]);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = first.wait().unwrap();
    second
        .exit(Exit::Usage)
        .stderr_has("this rotation is already running: run ");
    assert!(status.success(), "the first run completes: {rest:?}");
    assert_rotated(&rig.state(), "the one run");
}

#[test]
fn repl_attach_inspects_and_advances_a_stopped_run_that_resume_then_finishes() {
    let rig = Rig::new();
    rig.crash("postmark", "after:store");
    let attached = rig.runbook_stdin(
        &["repl", "--attach", &rig.run_id(), "--yes"],
        &[],
        ":steps\nctx.new_version\n:run propagate\n",
    );
    attached.exit(Exit::Ok).stdout_has("4. store        done");
    assert!(
        attached.stdout.contains("\n3\n"),
        "ctx restored: {}",
        attached.stdout
    );
    attached.stderr_has("✓ step propagate");
    // The REPL left as it should: its attempt ended (before: "interrupted", as if its
    // process had died), and the run stands where the killed exec left it.
    let runs = rig.runs();
    assert_eq!(runs[0]["attempts"][0]["mode"], "repl", "{runs:#}");
    assert_eq!(runs[0]["attempts"][0]["status"], "ended", "{runs:#}");
    assert_eq!(runs[0]["current"], "interrupted", "{runs:#}");
    let state = rig.state();
    assert_eq!(
        app_token(&state, "raxx-api-prod"),
        current_infisical(&state)
    );
    // resume continues after what the REPL did.
    rig.resume(&[])
        .exit(Exit::Ok)
        .stdout_has("Resuming at step 6/8 · verify");
    assert_rotated(&rig.state(), "attached then resumed");
}

/// `:undo STEP` at a REPL attached to a stopped run checks the vendors first, as rollback
/// does. Before, it skipped every check: with the old token deleted in the dashboard since,
/// `:undo propagate` put the dead token on every app (cold review).
#[test]
fn an_undo_typed_at_an_attached_repl_checks_the_vendors_first() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    rig.sandbox.delete_postmark_token(OLD_TOKEN);
    let attached = rig.runbook_stdin(
        &["repl", "--attach", &rig.run_id(), "--yes"],
        &[],
        ":undo propagate\n",
    );
    attached
        .exit(Exit::StepFailed)
        .stderr_has("✗ ctx.old_token secret(…c001) no longer works (deleted, revoked or expired)")
        .stderr_has("Nothing was undone")
        .stderr_has("step 'propagate' not undone");
    let state = rig.state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            app_token(&state, app),
            current_infisical(&state),
            "{app} keeps the working token"
        );
    }
}

/// The old token deleted in the dashboard by hand after propagate: rollback refuses (it
/// would restore a dead token) and says to go forward; resume then finds the old token
/// already refused and finishes without asking for its deletion again. Before, revoke asked
/// the dashboard to delete a token it no longer had and failed, and rollback and resume sent
/// the operator to each other (hostile review).
#[test]
fn resume_finishes_when_the_old_token_was_deleted_by_hand() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    rig.sandbox.delete_postmark_token(OLD_TOKEN);
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("Go forward instead");
    // Its read-back says what a resume does with a target: keeps it (it said "restored").
    rig.resume(&[])
        .exit(Exit::Ok)
        .stdout_has("the old token is refused by Postmark already (deleted since): nothing to delete")
        .stdout_has("= infisical::set_secret on POSTMARK_SERVER_TOKEN in raxx-project:prod/: holds what this run wrote; kept");
    assert_rotated(
        &rig.state(),
        "resumed after the old token was deleted by hand",
    );
}

/// `runs RUN_ID` says where the run stands now, as `runs` and the page do. Before: its
/// header showed how the first process ended ("interrupted") after a resume finished it.
#[test]
fn a_run_resumed_to_its_end_is_shown_finished_in_its_own_view() {
    let rig = Rig::new();
    rig.crash("postmark", "after:store");
    rig.resume(&[]).exit(Exit::Ok);
    let id = rig.run_id();
    let out = rig.runbook(&["runs", &id], &[]);
    out.exit(Exit::Ok);
    let header = out.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with(&format!("run {id} · postmark-server-token · ")),
        "{header}"
    );
    assert!(header.contains(" · succeeded · actor "), "{header}");
    let table = rig.runbook(&["runs"], &[]);
    assert!(table.stdout.contains("succeeded"), "{}", table.stdout);
}

/// `:reload` (or `:load`) inside an attached run would start over from the runbook's
/// defaults: ctx without the run's values, steps journalled into the run on other params.
/// Before: ctx lost `new_version`, and `:run` journalled a snapshot without it that resume
/// and rollback then restored from. It is refused; ctx and the journal are as they were.
#[test]
fn reload_in_an_attached_run_is_refused_and_keeps_its_ctx() {
    let rig = Rig::new();
    rig.crash("postmark", "after:store");
    let journal = rig.journal();
    let run_id = rig.run_id();
    for command in [":reload", ":load postmark"] {
        let attached = rig.runbook_stdin(
            &["repl", "--attach", &run_id, "--yes"],
            &[],
            &format!("{command}\nctx.new_version\n"),
        );
        attached.exit(Exit::StepFailed).stderr_has(&format!(
            "{} is not available in a session attached to run {run_id}: the run goes on with the runbook, params and ctx it recorded",
            command.split(' ').next().unwrap()
        ));
        assert!(
            attached.stdout.contains("\n3\n") || attached.stdout.starts_with("3\n"),
            "ctx kept: {}",
            attached.stdout
        );
    }
    let after = rig.journal();
    assert!(after.starts_with(&journal), "the run's records are kept");
    for line in after[journal.len()..].lines() {
        assert!(!line.contains("\"step_started\""), "{line}");
    }
    rig.resume(&[]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "attached, refused a reload, then resumed");
}

#[test]
fn a_stdlib_rotation_resumes_after_a_crash_by_recovering_its_keys_from_infisical() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    for point in ["after:store", "inside:propagate"] {
        assert_recovered(&rig.crash_and_resume("sendgrid", point), point);
        let state = rig.state();
        let secrets = state["infisical"]["secrets"].as_array().unwrap();
        let key = secrets
            .iter()
            .find(|s| s["secretKey"] == "SENDGRID_API_KEY")
            .unwrap();
        let current = key["versions"].as_array().unwrap().last().unwrap()["secretValue"]
            .as_str()
            .unwrap()
            .to_string();
        for app in ["raxx-api-prod", "raxx-api-staging"] {
            assert_eq!(
                state["heroku"]["apps"][app]["config_vars"]["SENDGRID_API_KEY"],
                current.as_str(),
                "{point}: {app}"
            );
        }
        let live: Vec<String> = scripted(&state, "sendgrid", "api_keys")
            .iter()
            .map(|k| k["api_key"].as_str().unwrap().to_string())
            .collect();
        assert!(
            live.contains(&current),
            "{point}: Infisical holds a live key"
        );
        assert!(
            !live.contains(&"SG.sandbox-current-key.00000000000000000000000".to_string()),
            "{point}: the old key is revoked"
        );
    }
}

/// The secret canary: the whole CLI surface with known token values, then a scan of every
/// output and every file the runs wrote. Zero hits.
#[test]
fn no_secret_reaches_any_output_or_file_across_the_cli() {
    let rig = Rig::new();
    let mut outputs: Vec<String> = Vec::new();
    let mut keep = |r: Output| {
        outputs.push(r.stdout);
        outputs.push(r.stderr);
    };
    // In-process sandbox: a run, a dry run, a failing run.
    let rehearse = |extra: &[&str]| {
        rig.test(&[], &[])
            .rehearse("postmark")
            .canary()
            .args(extra)
            .run()
    };
    keep(rehearse(&["--yes", "--json"]));
    keep(rehearse(&["--dry-run", "--json"]));
    keep(rehearse(&["--yes", "--fault", "postmark:POST:/email=500"]));
    // Against the separate sandbox: crash + resume, crash + rollback.
    keep(rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "after:store")],
    ));
    keep(rig.resume(&[]));
    keep(rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "inside:propagate")],
    ));
    keep(rig.rollback(&["--json"]));
    // The REPL, piped: reading and printing secrets every way.
    keep(rig.runbook_stdin(
        &["repl", "postmark"],
        &[],
        "let t = infisical::secret(\"POSTMARK_SERVER_TOKEN\").value;\nt\nprint(t);\nprint(`${t}`);\nheroku::config(\"raxx-api-prod\")\npostmark::server(t)\n:run precheck\n:ctx\n",
    ));
    // Reading what the runs left behind, and errors.
    for args in [
        vec!["doc", "postmark"],
        vec!["audit", "show", "--json"],
        vec!["audit", "verify"],
        vec!["runs", "--json"],
        vec!["show", "postmark"],
        vec!["resume", "no-such-run"],
    ] {
        keep(rig.runbook(&args, &[]));
    }
    // Every token the Postmark simulator ever issued, and the canaries.
    let secrets = rig.secrets();
    assert!(secrets.len() > CANARIES.len() + 2, "the runs issued tokens");
    for (i, out) in outputs.iter().enumerate() {
        for s in &secrets {
            assert!(
                !out.contains(s.as_str()),
                "output {i} shows a secret:\n{out}"
            );
        }
    }
    rig.assert_no_secrets_on_disk();
}

/// Every write route of the Postmark runbook with its answer lost once: the run either
/// completes (the write was safe to repeat and was retried) or stops; resume, told to run
/// the step again, completes the rotation; the world is safe at every point.
#[test]
fn an_answer_lost_at_every_write_then_resume_completes() {
    let routes = [
        "postmark:POST:/email",
        "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars",
        // Verify restarts nothing since the config change's release does: the forward
        // path's other delete is the staging copy's.
        "infisical:DELETE:/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING",
        "raptor:POST:/api/notifications/test-email",
    ];
    // Each route in its own world, side by side.
    std::thread::scope(|s| {
        for route in routes {
            s.spawn(move || answer_lost_then_resume(route));
        }
    });
}

fn answer_lost_then_resume(route: &str) {
    let rig = Rig::new();
    rig.sandbox.add_fault(&format!("{route}=lost:once"));
    let first = rig.exec("postmark", &["--no-rollback"]);
    assert_safe(&rig.state(), &format!("{route}, first run"));
    if first.code == 0 {
        assert_rotated(&rig.state(), route);
        return;
    }
    assert_eq!(first.code, 1, "{route}: {}", first.stderr);
    let step = rig.runs()[0]["last_step"].as_str().unwrap().to_string();
    let answers = format!(
        "\"{step}.rerun\" = \"rerun\"\n{}",
        new_token_answer(&rig.state())
    );
    rig.file("answers.toml", &answers);
    let resumed = rig.resume(&["--answers", "answers.toml"]);
    assert_eq!(resumed.code, 0, "{route} at {step}: {}", resumed.stderr);
    assert_rotated(&rig.state(), route);
}

/// A std/rotation run killed after propagate, then rolled back: every app gets the old key
/// back. Before, the propagate undo's snapshot came back from the journal with the Secret as
/// its fingerprint, `heroku::set_config` refused it, and the rollback stopped half-way.
#[test]
fn a_stdlib_rotation_killed_after_propagate_rolls_back_every_app() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:propagate");
    rig.rollback(&[]).exit(Exit::Ok);
    let state = rig.state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["SENDGRID_API_KEY"],
            "SG.sandbox-current-key.00000000000000000000000",
            "{app}"
        );
    }
    let keys = scripted(&state, "sendgrid", "api_keys");
    assert_eq!(keys.len(), 2, "the new key is deleted: {keys:?}");
}

/// A journal whose last line lost its end: a power loss mid-write, or a process killed
/// between a line and its newline. `tail` changes the journal of a run crashed after
/// generate; the resume appends after it, and the journal must stay readable.
fn resumed_after_a_torn_end(tail: impl Fn(&mut String)) -> (Rig, Output) {
    let rig = Rig::new();
    rig.crash("postmark", "after:generate");
    let path = rig
        .path()
        .join(format!("state/runs/{}.jsonl", rig.run_id()));
    let mut text = std::fs::read_to_string(&path).unwrap();
    tail(&mut text);
    std::fs::write(&path, text).unwrap();
    let resumed = rig.resume(&[]);
    resumed.exit(Exit::Ok);
    assert_rotated(&rig.state(), "after the resume");
    let runs = rig.runs();
    assert_eq!(runs[0]["current"], "succeeded", "{runs}");
    assert!(rig.journal().ends_with('\n'), "every line is whole again");
    // The audit log's links into the journal count the lines the journal holds: a fragment
    // cut before the resume's first append is not one of them.
    rig.runbook(&["audit", "verify"], &[]).exit(Exit::Ok);
    (rig, resumed)
}

/// The last record is whole but its newline never reached the disk: it is kept, ended,
/// and the resume's lines follow it (before, the first was glued to it and every later
/// read of the journal failed as damaged).
#[test]
fn a_last_record_without_its_newline_is_ended_before_the_resume_appends() {
    let (rig, resumed) = resumed_after_a_torn_end(|text| {
        assert_eq!(text.pop(), Some('\n'));
    });
    assert!(
        !resumed.stderr.contains("was a fragment"),
        "{}",
        resumed.stderr
    );
    // The record that lost its newline is still read: the run shows generate completed.
    assert!(rig
        .journal()
        .contains("\"type\":\"step_finished\",\"step\":\"generate\""));
}

/// The last line is a fragment of a record (a write cut short): readers already drop it;
/// the resume cuts it off before appending instead of gluing its own first line to it.
#[test]
fn a_torn_last_line_is_cut_before_the_resume_appends() {
    let fragment = "{\"v\":1,\"type\":\"step_fin";
    let (rig, resumed) = resumed_after_a_torn_end(|text| text.push_str(fragment));
    assert!(!rig.journal().contains(fragment), "the fragment is gone");
    resumed.stderr_has(&format!(
        "was a fragment of {} bytes (a write cut short by a crash or a full disk, which no reader counts): it was cut before appending",
        fragment.len()
    ));
}

/// The disk fills mid-line: a run whose files may not grow past a size (`RLIMIT_FSIZE`,
/// the kernel's own limit, as a full disk does) has a write cut short. The line's start is
/// cut back, so the retried line, and the resume after it, do not glue onto a fragment.
#[test]
fn a_write_cut_short_by_a_full_disk_leaves_no_fragment() {
    use std::os::unix::process::CommandExt;
    let rig = Rig::new();
    let mut cmd = rig.command(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_STATE_WAIT_SECONDS", "1")],
    );
    // SAFETY: only async-signal-safe calls between fork and exec; an ignored SIGXFSZ is
    // kept across exec, so a write past the limit fails (EFBIG) instead of killing it.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 6000,
                rlim_max: 6000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    let state = rig.path().join("state");
    for file in [
        state.join(format!("runs/{}.jsonl", rig.run_id())),
        state.join("audit.jsonl"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.ends_with('\n'),
            "{} ends mid-line:\n{}",
            file.display(),
            &text[text.len().saturating_sub(300)..]
        );
    }
    // With room again, the run is read as it was left and goes on.
    assert_ne!(rig.runs()[0]["current"], "damaged");
    rig.resume(&[]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "after the resume");
}

/// Killed while taking the rotation's lock, its holder written but not yet in place: no
/// lock is left behind. Before, the lock file was made empty and then written, and a kill in
/// between left a lock naming nobody: the next exec was told the rotation was "already
/// running", and no exit cleanup removed it (cold review).
#[test]
fn a_kill_while_taking_the_lock_leaves_no_lock_behind() {
    let rig = crate::support::Rig::new();
    rig.crash("postmark", "lock:taking");
    let locks: Vec<_> = std::fs::read_dir(rig.path().join("state/locks"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        locks
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".lock")),
        "{locks:?}"
    );
    assert!(
        locks
            .iter()
            .any(|n| n.to_string_lossy().ends_with(".taking")),
        "the kill leaves its taking: {locks:?}"
    );
    rig.exec("postmark", &[]).exit(crate::support::Exit::Ok);
    // The next taking of that lock removes what the killed process left.
    let left: Vec<_> = std::fs::read_dir(rig.path().join("state/locks"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
