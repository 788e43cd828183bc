//! Failure semantics an operator can trust: undo only what happened, never past the point of
//! no return, never rewrite a run's history. Runs against a separate `runbook sandbox` (the
//! rig), so stopped runs can be resumed and rolled back by later processes.

use crate::support::{
    assert_lacks, assert_rotated, exits_with, new_tokens, rehearse_postmark, served, signal,
    start_until, token_answer, with_fixture, with_script, Exit, Rig, Test, APPS, OLD_TOKEN,
};

/// A rollback refused at the irreversible step leaves the rotation recorded as succeeded;
/// the refused attempt is listed after it.
#[test]
fn a_refused_rollback_never_rewrites_a_succeeded_run() {
    let rig = Rig::new();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    let run_id = rig.run_id();
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("cannot roll back past step 'revoke'");
    let listed = rig.runs();
    assert_eq!(listed[0]["run_id"], run_id.as_str());
    assert_eq!(listed[0]["status"], "succeeded", "{listed:#}");
    assert_eq!(listed[0]["settled"], "succeeded");
    assert_eq!(listed[0]["attempts"][0]["mode"], "rollback");
    assert_eq!(listed[0]["attempts"][0]["status"], "failed");
    // Resuming it is refused before anything is journalled.
    rig.resume(&[])
        .exit(Exit::Usage)
        .stderr_has("already succeeded");
    let listed = rig.runs();
    assert_eq!(listed[0]["status"], "succeeded");
    assert_eq!(listed[0]["attempts"].as_array().map(Vec::len), Some(1));
    assert_rotated(&rig.state(), "after the refused rollback");
}

/// After an irreversible step has completed, `--yes` stops instead of rolling back, and
/// the footer gives the exact resume command and no rollback.
#[test]
fn past_the_point_of_no_return_yes_stops_and_says_resume() {
    let out = with_fixture("exec", "point_of_no_return.rhai")
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed);
    let run_id = out.last_run_id();
    out.stderr_has(&format!(
        "Step 'cut' cannot be undone, so the run only goes forward: fix the cause, then continue with `runbook resume {run_id}`."
    ));
    out.stdout_has("Retry the step, or stop here? (Step 'cut' cannot be undone, so the run only goes forward.) stop (--yes)");
    assert!(!out.stdout.contains("Rolling back"), "{}", out.stdout);
    assert!(!out.stdout.contains("undoing prepare"));
    assert!(!out.stderr.contains("rollback"), "{}", out.stderr);
    let journal = out.journal();
    assert!(!journal.contains("undo_started"), "{journal}");
    // Rollback is not even an option when asked.
    let asked = out
        .next()
        .args(&["exec", "point_of_no_return.rhai"])
        .answers("\"finish.on-failure\" = \"rollback\"\n")
        .args(&["--yes"])
        .run();
    asked.exit(Exit::StepFailed).stderr_has(
        "answer to prompt 'finish.on-failure' is not usable: expected one of retry, stop",
    );
    assert!(!asked.stdout.contains("undoing prepare"));
}

/// A runbook can ask to stop rather than roll back before the point of no return.
#[test]
fn a_runbook_that_asks_to_stop_on_failure_is_not_rolled_back_by_yes() {
    let out = with_fixture("exec", "stop_on_failure.rhai")
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed)
        .stdout_has("stop (--yes)")
        .stderr_has("Completed steps left in place: prepare.");
    assert!(!out.stdout.contains("undoing prepare"));
    with_script("check", "bad.rhai", "runbook(#{ id: \"b\", title: \"B\", on_failure: \"later\" });\nstep(\"s\", \"S\", |ctx| {});\n")
        .run()
        .exit(Exit::Usage)
        .stderr_has("runbook: ");
}

exits_with! {
    /// An in-process rehearsal's vendors die with it: it never suggests resume or rollback,
    /// and says how to rehearse a resumable run.
    an_in_process_rehearsal_never_suggests_resume:
        Test::new()
            .rehearse("postmark")
            .args(&["--yes", "--no-rollback"])
            .canary()
            .args(&["--fault", "heroku:PATCH:/apps/raxx-api-staging/config-vars=422:always"])
            => StepFailed,
        stderr ["cannot be resumed or rolled back", "start `runbook sandbox` in another shell"],
        stderr_lacks ["runbook resume", "runbook rollback"];

    /// A run whose journal cannot be written could be neither resumed nor rolled back: it
    /// stops before its first step, with nothing changed.
    // `runs` as a file: no journal can be created under it.
    a_journal_that_cannot_be_written_stops_the_run_before_any_step:
        Test::new()
            .file("state/runs", "not a directory")
            .rehearse("postmark")
            .args(&["--yes"])
            .keep_sandbox_state() => Usage,
        stderr ["cannot write"],
        stdout_lacks ["Step 1/"],
        stderr_lacks ["Step 1/"];
}

const PROD: &str = "/apps/raxx-api-prod/config-vars";
const STAGING: &str = "/apps/raxx-api-staging/config-vars";

/// A propagate that failed on one app is retried on that app only: the app that already
/// holds the new token is not patched (nor restarted) again.
#[test]
fn retrying_a_partly_failed_fan_out_repeats_only_the_failed_targets() {
    let out = Test::new()
        .rehearse("postmark")
        .canary()
        .keep_sandbox_state()
        .answers("\"propagate.on-failure\" = \"retry\"\n")
        .args(&[
            "--yes",
            "--fault",
            "heroku:PATCH:/apps/raxx-api-staging/config-vars=422:once",
        ])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("raxx-api-prod: already done in an earlier attempt of this step; not repeated");
    let state = out.sandbox_state();
    assert_eq!(served(&state, "PATCH", PROD), 1, "prod patched once");
    assert_eq!(
        served(&state, "PATCH", STAGING),
        2,
        "staging: refused, then retried"
    );
    assert_rotated(&state, "after the retry");
}

/// Rolling back a propagate that changed one app of two restores that app only; a store
/// whose write was refused is not undone at all.
#[test]
fn rollback_restores_exactly_what_the_failed_step_changed() {
    let out = rehearse_postmark(&[
        "--yes",
        "--fault",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=422:always",
    ]);
    out.exit(Exit::StepFailed);
    let state = out.sandbox_state();
    // prod: the propagate, then its undo; staging: only the refused attempt.
    assert_eq!(served(&state, "PATCH", PROD), 2);
    assert_eq!(served(&state, "PATCH", STAGING), 1);
    for app in APPS {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"], OLD_TOKEN,
            "{app} is back on the old token"
        );
    }
    let report = out.report();
    assert_eq!(report["status"], "rolled_back");
}

/// Heroku applied the config change and answered 500, on every attempt (the sandbox's
/// `committed`: "it worked but said it failed"). Before, the write was recorded `failed`
/// ("the vendor answered that it did not"), so the rollback left staging on the new token
/// and then deleted that token at Postmark. A server error does not say the write did
/// nothing: it is recorded `unknown`, and the rollback restores staging too (cold review).
#[test]
fn a_write_answered_500_after_it_applied_is_undone_by_the_rollback() {
    let out = rehearse_postmark(&[
        "--yes",
        "--fault",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=committed:times=4",
    ]);
    staging_in_doubt_then_rolled_back(&out);
}

/// The first attempt of staging's config change reached Heroku and its answer was lost;
/// the retries were answered 503. Before, only the last answer counted: `failed`, and the
/// rollback left staging on the new token. An attempt whose answer was lost may have
/// applied whatever a later one answers (cold review).
#[test]
fn a_write_whose_first_answer_was_lost_stays_in_doubt_after_later_refusals() {
    let out = rehearse_postmark(&[
        "--yes",
        "--fault",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=lost:once",
        "--fault",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=503:times=3",
    ]);
    staging_in_doubt_then_rolled_back(&out);
}

/// Staging's config change is recorded in doubt, and the rollback put every app back on
/// the old token.
fn staging_in_doubt_then_rolled_back(out: &crate::support::Output) {
    out.exit(Exit::StepFailed);
    let journal = out.journal();
    assert!(
        journal.contains(r#""target":"raxx-api-staging","outcome":"unknown""#),
        "{journal}"
    );
    let state = out.sandbox_state();
    for app in APPS {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"], OLD_TOKEN,
            "{app} is back on the old token"
        );
    }
    assert_eq!(out.report()["status"], "rolled_back");
}

/// The SendGrid rotation rehearsed with `--yes` and `fault`, its final state kept.
fn sendgrid_with_fault(fault: &str) -> crate::support::Output {
    Test::new()
        .rehearse("sendgrid")
        .args(&["--yes"])
        .keep_sandbox_state()
        .args(&["--fault", fault])
        .run()
}

/// SendGrid answers the create call 500 (it may have made the key: the write is unknown,
/// and no id or key came back). Before, the rollback called the discard, which read a key
/// id nobody recorded, and stopped there on every try (review of this session's change).
/// Now it says what to look for, and the rollback completes.
#[test]
fn a_create_answered_500_is_rolled_back_without_an_id_to_delete_by() {
    let out = sendgrid_with_fault("sendgrid:POST:/v3/api_keys=500:always");
    out.exit(Exit::StepFailed)
        .stdout_has("may have made a credential this run never saw")
        .stdout_has("rolled back (step 'create' failed)");
}

/// A step whose only write was refused leaves nothing to undo: its undo never runs (with the
/// SendGrid rotation, that undo would delete a key this run did not create).
#[test]
fn an_undo_never_runs_for_a_write_that_was_refused() {
    let out = sendgrid_with_fault("sendgrid:POST:/v3/api_keys=403:always");
    out.exit(Exit::StepFailed);
    let journal = out.journal();
    assert!(
        !journal.contains("\"type\":\"undo_started\",\"step\":\"create\""),
        "{journal}"
    );
    let state = out.sandbox_state();
    assert_eq!(served(&state, "DELETE", "/v3/api_keys"), 0);
}

const ROLL_SCENARIO: &str = r#"
[[scripted]]
name = "roller"

[[scripted.routes]]
method = "PUT"
path = "/keys/roll"
respond = { status = 200, body = { rolled = true } }
"#;

fn roll_runbook(options: &str) -> String {
    format!(
        r#"
runbook(#{{ id: "roll", title: "Roll a key" }});
param("url", #{{ default: "https://roller.example", env: "ROLLER_API_URL", help: "vendor API" }});
step("roll", "Roll the key", |ctx| {{
    let r = http::put(`${{ctx.params.url}}/keys/roll`, #{{ json: #{{}} {options} }});
    ensure(r.status == 200, `roll answered ${{r.status}}`);
}}).no_undo("a rolled key cannot be unrolled");
"#
    )
}

/// A PUT that rolls a credential issues a new one on every call: a 500 is not retried by
/// the transport (the vendor may have rolled it); a script that knows better says so.
#[test]
fn a_write_is_retried_only_when_the_script_says_it_is_idempotent() {
    let run = |options: &str| {
        Test::new()
            .file("runbooks/roll.rhai", &roll_runbook(options))
            .file("runbooks/sandbox/roll.toml", ROLL_SCENARIO)
            .args(&["exec", "roll", "--sandbox", "--yes"])
            .keep_sandbox_state()
            .args(&["--fault", "roller:PUT:/keys/roll=500:once"])
            .run()
    };
    let plain = run("");
    plain.exit(Exit::StepFailed).stderr_has("roll answered 500");
    assert_eq!(served(&plain.sandbox_state(), "PUT", "/keys/roll"), 1);
    let said = run(", idempotent: true");
    said.exit(Exit::Ok);
    assert_eq!(served(&said.sandbox_state(), "PUT", "/keys/roll"), 2);
}

/// A rotation started in the background and held in its precheck (one Postmark read
/// answers after 20 s): it holds its lock until it is signalled. Its output is read from
/// the second value, which must be kept while it runs.
fn held_in_its_precheck(
    rig: &Rig,
) -> (
    std::process::Child,
    impl Iterator<Item = std::io::Result<String>>,
) {
    rig.sandbox
        .add_fault("postmark:GET:/server=latency=20000:once");
    start_until(
        rig.command(&["exec", "postmark", "--yes"], &[])
            .stderr(std::process::Stdio::null()),
        "Step 1/8",
    )
}

/// The timeline page of a run still running says its step has not ended yet, not that
/// its process stopped in it (the page said so of every unended step).
#[test]
fn the_page_of_a_running_run_says_it_is_still_in_its_step() {
    let rig = Rig::new();
    let (mut run, _lines) = held_in_its_precheck(&rig);
    let run_id = rig.run_id();
    let page = rig.runbook(&["runs", &run_id, "--html"], &[]);
    page.exit(Exit::Ok)
        .stdout_has("step precheck · no end recorded: the run is still in it");
    assert_lacks("page", &page.stdout, "its process stopped in it");
    signal(&run, libc::SIGTERM);
    assert_eq!(run.wait().unwrap().code(), Some(130));
}

/// SIGTERM in the middle of a step interrupts the run like Ctrl-C: the lock is released
/// (the next rotation is not refused) and the run is listed as interrupted.
#[test]
fn sigterm_releases_the_lock_like_ctrl_c() {
    let rig = Rig::new();
    let (mut run, _lines) = held_in_its_precheck(&rig);
    let locks = rig.path().join("state/locks");
    assert_eq!(
        std::fs::read_dir(&locks).unwrap().count(),
        1,
        "the run holds its lock"
    );
    signal(&run, libc::SIGTERM);
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted, not killed");
    assert_eq!(
        std::fs::read_dir(&locks).unwrap().count(),
        0,
        "lock released"
    );
    assert_eq!(rig.runs()[0]["status"], "interrupted");
}

/// A run started with SIGHUP ignored (`nohup runbook exec … &` on a bastion, its SSH
/// session then dropped) goes on when SIGHUP comes: before, the run's own listener replaced
/// the ignored disposition, and the dropped session interrupted the rotation, then forced
/// the process out with a write possibly in doubt (cold review).
#[test]
fn a_run_started_under_nohup_goes_on_when_the_session_hangs_up() {
    use std::os::unix::process::CommandExt;
    let rig = Rig::new();
    rig.sandbox
        .add_fault("postmark:GET:/server=latency=1500:once");
    let mut cmd = rig.command(&["exec", "postmark", "--yes"], &[]);
    cmd.stderr(std::process::Stdio::null());
    // SAFETY: only an async-signal-safe call between fork and exec; an ignored SIGHUP is
    // kept across exec, as nohup leaves it.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let (mut run, _lines) = start_until(&mut cmd, "Step 1/8");
    signal(&run, libc::SIGHUP);
    assert_eq!(
        run.wait().unwrap().code(),
        Some(0),
        "the hang-up stopped it"
    );
    assert_eq!(rig.runs()[0]["status"], "succeeded");
}

/// A run still going whose journal got damaged is not abandoned under it: its process holds
/// the rotation's lock, which `abandon` takes first. Once the process has ended, it is.
#[test]
fn a_damaged_journal_is_not_abandoned_while_its_run_still_runs() {
    let rig = Rig::new();
    let (mut run, _lines) = held_in_its_precheck(&rig);
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = journal.lines().collect();
    lines.insert(1, "{not a record");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    rig.runbook(&["abandon", &run_id, "--reason", "looks stuck"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!("this rotation is already running: run {run_id}"));
    signal(&run, libc::SIGTERM);
    assert_eq!(run.wait().unwrap().code(), Some(130));
    rig.runbook(&["abandon", &run_id, "--reason", "stopped"], &[])
        .exit(Exit::Ok)
        .stdout_has("Its journal cannot be read (damaged at line 2: not a JSON record");
    // A new rotation holds the lock now: asking again answers from the audit log, and
    // never takes (or breaks) that run's lock.
    let (mut next, _output) = held_in_its_precheck(&rig);
    rig.runbook(
        &["abandon", &run_id, "--reason", "again", "--break-lock"],
        &[],
    )
    .exit(Exit::Usage)
    .stderr_has(&format!(
        "run {run_id} was abandoned already, its journal as it is, by "
    ));
    signal(&next, libc::SIGTERM);
    assert_eq!(
        next.wait().unwrap().code(),
        Some(130),
        "interrupted, its lock its own"
    );
}

/// A journal with a record of a newer format is a newer runbook's run, not damage: the
/// views say to use that version, and this one will not abandon it. Before: it was called
/// damaged, and `due` and `runs RUN_ID` told the operator to abandon a colleague's run the
/// newer version could resume.
#[test]
fn a_journal_written_by_a_newer_runbook_is_not_called_damaged_or_abandoned() {
    let rig = Rig::new();
    rig.crash("postmark", "after:store");
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let mut journal = std::fs::read_to_string(&path).unwrap();
    journal.push_str(&format!(
        "{{\"v\":3,\"run_id\":\"{run_id}\",\"time\":\"2026-12-07T00:00:00Z\",\"type\":\"step_started\",\"step\":\"propagate\",\"attempt\":1}}\n"
    ));
    std::fs::write(&path, journal).unwrap();
    let said = "was written by a newer version of runbook (line ";
    let due = rig.runbook(&["due"], &[]);
    due.stderr_has(said)
        .stderr_has("see or finish it with the version of runbook that wrote it");
    assert_lacks("due", &due.stderr, "abandon");
    let shown = rig.runbook(&["runs", &run_id], &[]);
    shown.stderr_has(said);
    assert_lacks("runs RUN_ID", &shown.stderr, "abandon RUN_ID");
    rig.runbook(&["runs"], &[])
        .stdout_has("written by a newer runbook");
    rig.runbook(&["abandon", &run_id, "--reason", "stuck"], &[])
        .exit(Exit::Usage)
        .stderr_has("abandon it with the version that wrote it")
        .stderr_has("--as-damaged");
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"v\":3"));
    // The rotation is blocked while it stands; the way out is named.
    rig.exec("postmark", &["--break-lock"])
        .exit(Exit::Usage)
        .stderr_has("finish the run with the newer version of runbook that wrote it")
        .stderr_has(&format!(
            "runbook abandon {run_id} --reason TEXT --as-damaged"
        ));
    // A version field a flipped bit raised (or a row anyone appended) must not block the
    // rotation until a release that does not exist: abandoned as damaged, it is over.
    rig.runbook(
        &[
            "abandon",
            &run_id,
            "--reason",
            "damaged record",
            "--as-damaged",
        ],
        &[],
    )
    .exit(Exit::Ok)
    .stdout_has("Its journal cannot be read (unread at line ");
    // No longer blocked (the world it left mid-propagate is the new run's precheck's to say).
    let next = rig.exec("postmark", &[]);
    assert_ne!(next.code, 2, "{}", next.stderr);
    assert_lacks("exec", &next.stderr, "may be unfinished");
}

/// A run killed holding its lock after its precheck, its journal then damaged by `damage`,
/// and abandoned: the lock is taken over from the dead process, as a resume would, said in
/// the audit log, and gone after, so the next rotation is not told the run still holds it.
fn abandoned_after_a_kill(damage: fn(&mut Vec<&str>)) -> (Rig, String, crate::support::Output) {
    let rig = Rig::new();
    rig.crash("postmark", "after:precheck");
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = journal.lines().collect();
    damage(&mut lines);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let locks = rig.path().join("state/locks");
    let held: Vec<_> = std::fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(held.len(), 1, "the dead run's lock");
    let abandoned = rig.runbook(&["abandon", &run_id, "--reason", "killed"], &[]);
    abandoned.exit(Exit::Ok);
    assert_eq!(
        std::fs::read_dir(&locks).unwrap().count(),
        0,
        "no lock left: {held:?}"
    );
    assert_eq!(abandoned.audited("lock.broken").len(), 1);
    (rig, run_id, abandoned)
}

#[test]
fn abandoning_a_damaged_journal_takes_the_lock_over_from_a_dead_process() {
    let (rig, _, abandoned) = abandoned_after_a_kill(|lines| lines.insert(1, "{not a record"));
    abandoned.stdout_has("Its journal cannot be read (damaged at line 2: not a JSON record)");
    rig.exec("postmark", &[]).exit(Exit::Ok);
}

/// The same with the journal's first line damaged: which rotation it was is unknown, so
/// the lock taken over is the one whose holder names the run. Asked again, abandon says it
/// was done already.
#[test]
fn abandoning_a_journal_without_its_first_line_takes_the_lock_that_names_the_run() {
    let (rig, run_id, abandoned) = abandoned_after_a_kill(|lines| lines[0] = "{not a record");
    abandoned.stdout_has("Its journal cannot be read (damaged at line 1: not a JSON record)");
    rig.runbook(&["abandon", &run_id, "--reason", "again"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "run {run_id} was abandoned already, its journal as it is, by "
        ))
        .stderr_has("(killed)");
    rig.exec("postmark", &[]).exit(Exit::Ok);
}

/// A lock held by a process that died is reported with its pid, how long ago it was taken
/// and that its process is gone, and how to continue.
#[test]
fn a_dead_holder_is_named_with_its_pid_and_age() {
    let rig = Rig::new();
    rig.crash("postmark", "after:precheck");
    let run_id = rig.run_id();
    let blocked = rig.exec("postmark", &[]);
    blocked
        .exit(Exit::Usage)
        .stderr_has(&format!("this rotation is already running: run {run_id}"))
        .stderr_has("s ago (pid ")
        .stderr_has(", no longer running)")
        .stderr_has(&format!("`runbook resume {run_id}`"));
    // --break-lock takes it, and says so in the journal and the audit log.
    let taken = rig.exec("postmark", &["--break-lock"]);
    taken.exit(Exit::Ok);
    let journal = rig.journal();
    assert!(
        journal.contains(&format!(
            "\"type\":\"lock_broken\",\"holder\":{{\"run_id\":\"{run_id}\""
        )),
        "{journal}"
    );
    assert!(!taken.audited("lock.broken").is_empty());
}

/// The validation email is sent and its answer lost. Sending is never safe to repeat, so the
/// journal says "outcome unknown", and resume does not send it again on --yes alone: it
/// stops and says what to check. An answer (here, from an answers file) runs it again.
#[test]
fn a_write_whose_answer_was_lost_is_never_repeated_blindly() {
    let rig = Rig::new();
    rig.sandbox.add_fault("postmark:POST:/email=lost:once");
    let stopped = rig.exec("postmark", &["--no-rollback"]);
    stopped.exit(Exit::StepFailed);
    let journal = rig.journal();
    assert!(
        journal.contains("\"type\":\"write_outcome\",\"step\":\"validate\",\"function\":\"postmark::send_email\""),
        "{journal}"
    );
    assert!(journal.contains("\"outcome\":\"unknown\""), "{journal}");
    // The engine's POST /email requests (Raptor's own mail goes through Postmark too).
    let sent = |rig: &Rig| served(&rig.state(), "POST", "/email");
    assert_eq!(sent(&rig), 1, "the vendor did send it");
    // The token generated but not yet stored is the operator's to supply again.
    let token = token_answer(&new_tokens(&rig.state())[0]);
    rig.file("token.toml", &token);
    let run_id = rig.run_id();
    rig.resume(&["--answers", "token.toml"])
        .exit(Exit::Aborted)
        .stderr_has("Step 'validate' sent a write whose outcome is unknown (its answer lost, or a server error): the journal cannot tell whether it took effect.")
        .stderr_has("postmark::send_email on ")
        .stderr_has("sent, answer lost or a server error: it may have taken effect")
        // What to do next, not a silent exit.
        .stderr_has(&format!(
            "Stopped before step 'validate': nothing was run. Check at the vendor whether it took effect, then `runbook resume {run_id}` and answer validate.rerun (\"rerun\" or \"done\") at a terminal or in an answers file (--answers FILE); or undo the run with `runbook rollback {run_id}`."
        ));
    assert_eq!(sent(&rig), 1, "not sent again on --yes");
    // The stop is recorded as the operator's, not as a process that died.
    let runs = rig.runs();
    assert_eq!(runs[0]["attempts"][0]["status"], "aborted", "{runs}");
    rig.file(
        "rerun.toml",
        &format!("{token}\"validate.rerun\" = \"rerun\"\n"),
    );
    rig.resume(&["--answers", "rerun.toml"]).exit(Exit::Ok);
    assert_eq!(sent(&rig), 2);
    assert_rotated(&rig.state(), "resumed after the lost answer");
}

/// A write that is safe to repeat (a config var) whose answer was lost is simply sent again:
/// the transport retries it, and the rotation completes.
#[test]
fn a_lost_answer_to_a_safe_write_is_retried() {
    let out = rehearse_postmark(&[
        "--yes",
        "--fault",
        "heroku:PATCH:/apps/raxx-api-prod/config-vars=lost:once",
    ]);
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    assert_eq!(served(&state, "PATCH", PROD), 2, "lost once, sent again");
    assert_rotated(&state, "after the lost answer");
}

/// `rollback RUN_ID` says what it will undo, newest first, with the writes each undo
/// restores, and asks first (`rollback.confirm`); "no" leaves every consumer as it is.
#[test]
fn rollback_lists_what_it_will_undo_and_asks_first() {
    let rig = Rig::new();
    rig.runbook(
        &["exec", "postmark", "--yes", "--no-rollback"],
        &[("RUNBOOK_CRASH_AT", "after:verify")],
    );
    let run_id = rig.run_id();
    let before = rig.state();
    rig.file("no.toml", "\"rollback.confirm\" = false\n");
    let out = rig.runbook(&["rollback", &run_id, "--answers", "no.toml"], &[]);
    out.stdout_has("Rolling back undoes, newest first:")
        // The staging copy's removal is a cleanup: nothing puts the copy back.
        .stdout_has("  propagate · its undo reverses: heroku::set_config on raxx-api-prod; heroku::set_config on raxx-api-staging · left as they are (cleanups, nothing to restore): infisical::delete_secret on POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/")
        .stdout_has("  store · its undo reverses: infisical::set_secret on POSTMARK_SERVER_TOKEN in raxx-project:prod/")
        .stdout_has("  generate · its undo")
        .stderr_has("Nothing was undone: the run stays as it is");
    assert_eq!(
        rig.state()["heroku"]["apps"],
        before["heroku"]["apps"],
        "a declined rollback changed a consumer"
    );
}

/// Ctrl-C while a rollback waits in propagate's undo (the apps set back, their dynos not up
/// yet): the rollback stopped part way, and the operator is told how to finish it. Before,
/// nothing said what to do next.
#[test]
fn ctrl_c_in_an_undo_says_how_to_finish_the_rollback() {
    use std::io::Read;
    let rig = Rig::new();
    rig.sandbox
        .add_fault("raptor:POST:/api/notifications/test-email=500");
    rig.exec("postmark", &["--no-rollback"])
        .exit(Exit::StepFailed);
    let run_id = rig.run_id();
    // The undo's wait for the dynos will not end by itself.
    rig.sandbox
        .add_fault("heroku:GET:/apps/raxx-api-prod/dynos=latency=30000");
    let mut cmd = rig.command(&["rollback", &run_id, "--yes"], &[]);
    cmd.stderr(std::process::Stdio::piped());
    let (mut child, _lines) = crate::support::start_until(&mut cmd, "undoing propagate");
    crate::support::signal(&child, libc::SIGINT);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Rollback stopped in the undo of 'propagate' (Ctrl-C): part of it may be done, and the steps before it are still applied. Finish it with `runbook rollback {run_id}`."
        )),
        "{stderr}"
    );
}

/// An abandon's audit entry names the journal's last line, the run's end, so that end is
/// under the chain (the entry names only durable lines, so the end is made durable first:
/// review of this session's change, which had left it outside).
#[test]
fn an_abandons_audit_entry_names_the_runs_end() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    let run_id = rig.run_id();
    rig.runbook(&["abandon", &run_id, "--reason", "checked by hand"], &[])
        .exit(Exit::Ok);
    let journal = rig.journal();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run_finished", "{journal}");
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(
        audit
            .lines()
            .rev()
            .find(|l| l.contains("\"action\":\"run.abandoned\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(entry["journal"]["lines"], journal.lines().count());
    assert_eq!(entry["journal"]["head"], last["hash"]);
}

/// A process that did nothing with the run (a rollback the operator declined) still names
/// its last audit entry at its end: here the `lock.broken` of the dead process's lock it took.
/// Before (this session), that entry was not durable yet, so the end named none, and a log
/// cut back past it verified (review of this session's change).
#[test]
fn a_declined_rollback_names_its_last_audit_entry_at_its_end() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    let run_id = rig.run_id();
    rig.file("no.toml", "\"rollback.confirm\" = false\n");
    rig.runbook(&["rollback", &run_id, "--answers", "no.toml"], &[])
        .exit(Exit::Aborted);
    let journal = rig.journal();
    let end: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(end["type"], "run_finished", "{journal}");
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    let last: serde_json::Value =
        serde_json::from_str(audit.lines().rev().find(|l| l.contains(&run_id)).unwrap()).unwrap();
    assert_eq!(last["action"], "lock.broken", "{audit}");
    assert_eq!(end["audit_head"], last["hash"], "{journal}");
}

/// A rollback nobody could confirm (no terminal) undid nothing, yet the run's STATUS in
/// `runbook runs` became "aborted", and the command's own last line said "Run … aborted":
/// the run, split between the old token and the new, read as if it had been ended. A
/// process that only looked leaves the run's status as it was; its own line says what it
/// did not do.
#[test]
fn a_rollback_that_undid_nothing_leaves_the_runs_status_as_it_was() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let run_id = rig.run_id();
    let out = rig.runbook(&["rollback", &run_id], &[]);
    out.exit(Exit::Aborted)
        .stderr_has("Nothing was undone: the run stays as it is");
    assert!(
        !out.stdout.contains(&format!("Run {run_id} aborted")),
        "{}",
        out.stdout
    );
    let runs = rig.runs();
    let row = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap();
    assert_eq!(row["current"], "interrupted", "{row}");
    assert_eq!(row["unfinished"], true, "{row}");
    assert_eq!(row["attempts"][0]["status"], "aborted", "{row}");
}
