//! An operator at a terminal: the Postmark rotation rehearsed against `runbook sandbox` (a
//! separate process, as an operator would run it), driven through a pseudo-terminal.

use crate::support::items;
use crate::support::{
    assert_rotated, behind_sh, behind_stty, http, new_tokens, Exit, Rig, SandboxProcess, Test,
    OLD_TOKEN,
};
use expectrl::session::OsSession;
use expectrl::{Expect, Session};
use std::time::Duration;

/// `cmd` in a pseudo-terminal, each expectation waiting at most `secs`.
fn terminal(cmd: std::process::Command, secs: u64) -> OsSession {
    let mut p = Session::spawn(cmd).unwrap();
    p.set_expect_timeout(Some(Duration::from_secs(secs)));
    p
}

/// Postmark's `GET /server` with `token`: the status and the body.
fn get_server(postmark: &str, token: &str) -> (u16, String) {
    http(
        postmark,
        "GET",
        "/server",
        &[
            ("X-Postmark-Server-Token", token),
            ("Accept", "application/json"),
        ],
        "",
    )
}

/// What the operator does in the sandbox's Postmark dashboard: a form posted to `path`.
fn in_dashboard(postmark: &str, path: &str, form: &str) {
    let (status, _) = http(
        postmark,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form,
    );
    assert_eq!(status, 303, "dashboard {path}");
}

#[test]
fn operator_is_asked_in_sop_order_and_the_pasted_token_is_never_echoed() {
    let rig = Rig::new();
    let postmark = rig.sandbox.postmark_url().to_string();
    // The operator's shell: the sandbox's exports, but no automated dashboard.
    let cmd = rig
        .shell(&["exec", "postmark", "--actor", "pty-test"])
        .command();
    let mut p = terminal(cmd, 30);
    let mut transcript: Vec<u8> = Vec::new();
    let mut expect = |p: &mut OsSession, needle: &str| {
        let c = p.expect(needle).unwrap_or_else(|e| {
            panic!(
                "waiting for {needle:?}: {e}\n--- so far:\n{}",
                String::from_utf8_lossy(&transcript)
            )
        });
        transcript.extend_from_slice(c.before());
        transcript.extend_from_slice(c.as_bytes());
    };

    // Where the run goes: the sandbox's endpoints are this machine's.
    expect(
        &mut p,
        "LOOPBACK · every vendor endpoint is on this machine",
    );
    // The SOP's prerequisites, in its order.
    for item in [
        "Postmark dashboard access",
        "Server name known",
        "Existing token in Infisical with history",
        "Downstream consumer list",
        "Aware: the server holds at most 3 API tokens",
    ] {
        expect(&mut p, item);
        p.send_line("y").unwrap();
    }
    // Before the first write: every write the plan can make.
    expect(
        &mut p,
        "The next steps write to the vendors this run points at",
    );
    expect(
        &mut p,
        "generate · infisical::set_secret, postmark::dashboard_new_token",
    );
    expect(&mut p, "propagate · github::set_secret, heroku::set_config");
    expect(&mut p, "revoke · postmark::dashboard_delete_token");
    expect(&mut p, "Go ahead with the first write?");
    p.send_line("y").unwrap();
    // Step 2: the dashboard instructions (the sandbox's dashboard, not Postmark's), then
    // the masked paste.
    expect(
        &mut p,
        &format!("Open {postmark}/dashboard and select the server raxx-prod."),
    );
    expect(&mut p, "Click \"Generate New\".");
    expect(&mut p, "Paste the new server API token");
    // The operator generates the token in the (simulated) dashboard, names it, copies it.
    in_dashboard(
        &postmark,
        "/dashboard/servers/4242/tokens",
        "name=pty+rotation",
    );
    let (_, server) = get_server(&postmark, OLD_TOKEN);
    let server: serde_json::Value = serde_json::from_str(&server).unwrap();
    let new_token = items(&server["ApiTokens"])
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .find(|t| t != OLD_TOKEN)
        .unwrap();
    // A slip of the mouse: half the token. Asked again, not a failed step (the token is
    // on the server by now); the slip is masked like any paste.
    p.send_line(&new_token[..12]).unwrap();
    expect(
        &mut p,
        "That does not look like a Postmark server token (a UUID). Try again (2 tries left).",
    );
    expect(&mut p, "Paste the new server API token");
    p.send_line(&new_token).unwrap();
    // Step 3: receipt of the validation email, which the operator finds on the sandbox
    // dashboard's activity page, sent with the token just generated.
    expect(
        &mut p,
        &format!("the dashboard's Activity tab lists it ({postmark}/dashboard → server raxx-prod → Activity)"),
    );
    expect(&mut p, "Did the validation email");
    let (_, activity) = http(&postmark, "GET", "/dashboard/activity", &[], "");
    let tail = &new_token[new_token.len() - 4..];
    assert!(
        activity
            .lines()
            .any(|l| l.contains("Token rotation validation")
                && l.contains(&format!("pty rotation (…{tail}) new"))),
        "the activity page does not show the validation email on the new token:\n{activity}"
    );
    p.send_line("y").unwrap();
    // Step 7: the explicit confirmation, then the dashboard deletion.
    expect(&mut p, "This step cannot be undone");
    expect(
        &mut p,
        "Delete the OLD token in the Postmark dashboard now?",
    );
    p.send_line("y").unwrap();
    expect(
        &mut p,
        &format!("Open {postmark}/dashboard → server raxx-prod → API Tokens."),
    );
    expect(
        &mut p,
        "Locate the OLD token: the one ending in secret(…c001)",
    );
    expect(&mut p, "Have you deleted the old token in the dashboard?");
    in_dashboard(
        &postmark,
        "/dashboard/servers/4242/tokens/delete",
        &format!("token={OLD_TOKEN}"),
    );
    p.send_line("y").unwrap();
    expect(&mut p, "succeeded");

    let text = String::from_utf8_lossy(&transcript);
    assert!(
        !text.contains(&new_token[..12]),
        "the pasted token (or the half pasted first) was echoed:\n{text}"
    );
    assert!(
        !text.contains(OLD_TOKEN),
        "the old token was shown:\n{text}"
    );
    // What the terminal did show for the paste: one mask character per token character.
    assert!(
        text.contains(&"*".repeat(new_token.len())),
        "no masked echo:\n{text}"
    );
    // The order of the steps as the operator saw them.
    let order: Vec<usize> = [
        "Step 1/8", "Step 2/8", "Step 3/8", "Step 4/8", "Step 5/8", "Step 6/8", "Step 7/8",
        "Step 8/8",
    ]
    .iter()
    .map(|s| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn sandbox_command_prints_exports_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(dir.path());
    let env = &sandbox.env;
    for var in [
        "POSTMARK_API_URL",
        "INFISICAL_DOMAIN",
        "INFISICAL_TOKEN",
        "HEROKU_HOST",
        "HEROKU_API_KEY",
        "GITHUB_API_URL",
        "GITHUB_TOKEN",
        "RAPTOR_API_URL",
    ] {
        assert!(env.contains_key(var), "{var} not exported");
    }
    let postmark = &env["POSTMARK_API_URL"];
    let (status, body) = get_server(postmark, OLD_TOKEN);
    assert_eq!(status, 200);
    let server: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(server["Name"], "raxx-prod");
    assert_eq!(server["ID"], 4242);
    let (status, body) = get_server(postmark, "not-a-token");
    assert_eq!(status, 401);
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["ErrorCode"], 10);
    assert!(err["Message"]
        .as_str()
        .unwrap()
        .contains("X-Postmark-Server-Token"));
}

/// After a crash, resume asks for the token the run generated, in plain words with its last
/// characters, and asks again when the paste is wrong.
#[test]
fn resume_asks_again_when_the_pasted_token_is_not_the_one_the_run_used() {
    let rig = Rig::new();
    rig.crash("postmark", "after:validate");
    // The staged copy removed by hand: only the operator still has the token.
    assert_eq!(
        rig.sandbox
            .delete_infisical_secret("POSTMARK_SERVER_TOKEN_PENDING"),
        200
    );
    let new = new_tokens(&rig.state()).remove(0);
    let tail: String = new
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    // Generous: the whole suite shares two cores, and a bound is not a sleep.
    let mut p = terminal(rig.command(&["resume", &rig.run_id(), "--yes"], &[]), 120);
    p.expect("Paste the value of ctx.new_token that this run used")
        .unwrap();
    p.expect(format!("it ends …{tail}").as_str()).unwrap();
    p.send_line("00000000-0000-4000-8000-000000000000").unwrap();
    p.expect("That is not the value this run used").unwrap();
    p.expect("Try again (2 tries left)").unwrap();
    p.send_line(&new).unwrap();
    p.expect("Resuming at step").unwrap();
    p.expect(expectrl::Eof).unwrap();
    assert_rotated(&rig.state(), "resumed after a wrong paste");
}

/// Masking used to depend on rustyline's highlighter, which TERM=dumb and emacs turn off:
/// the pasted value was echoed by the tty. Echo is now off at the tty itself.
#[test]
fn a_secret_typed_on_a_dumb_terminal_is_not_echoed() {
    for term in ["dumb", "emacs"] {
        // The Test owns the temp dir: it must outlive the spawned process.
        let test = Test::new()
            .fixture("prompts.rhai")
            .env("TERM", term)
            .args(&["exec", "prompts.rhai"]);
        // The pty starts with echo on, as an operator's terminal does.
        let mut p = terminal(behind_stty("echo", &test.command()), 30);
        let mut seen: Vec<u8> = Vec::new();
        for item in ["Dashboard access", "Server name known"] {
            let c = p.expect(item).unwrap();
            seen.extend_from_slice(c.before());
            p.send_line("y").unwrap();
        }
        let c = p.expect("Favourite color?").unwrap();
        seen.extend_from_slice(c.before());
        p.send_line("green").unwrap();
        let c = p.expect("Paste the token").unwrap();
        seen.extend_from_slice(c.before());
        p.send_line("dumb-term-canary-4f1e9a").unwrap();
        let c = p.expect("Proceed?").unwrap();
        seen.extend_from_slice(c.before());
        p.send_line("y").unwrap();
        let c = p.expect(expectrl::Eof).unwrap();
        seen.extend_from_slice(c.before());
        seen.extend_from_slice(c.as_bytes());
        let text = String::from_utf8_lossy(&seen);
        assert!(
            !text.contains("dumb-term-canary-4f1e9a"),
            "TERM={term} echoed the secret:\n{text}"
        );
        assert!(text.contains("secret(…1e9a)"), "TERM={term}:\n{text}");
        // Echo was on for plain answers: the check above could have seen a leak.
        assert!(text.contains("green"), "TERM={term}:\n{text}");
    }
}

/// Ctrl-C at the revoke confirmation stops the run and says how to go on: resume, or roll
/// back (nothing irreversible has happened yet).
#[test]
fn ctrl_c_at_a_confirmation_says_how_to_resume_or_roll_back() {
    let rig = Rig::new();
    let answers = "prerequisites = true\n\"writes.confirm\" = true\n\"validate.received\" = true\n";
    let cmd = rig
        .test(&["exec", "postmark"], &[])
        .answers(answers)
        .args(&["--actor", "pty-test"])
        .command();
    let mut p = terminal(cmd, 120);
    p.expect("Delete the OLD token in the Postmark dashboard now?")
        .unwrap();
    p.send(expectrl::ControlCode::EndOfText).unwrap();
    p.expect("Interrupted (Ctrl-C) at the confirmation of step 'revoke'.")
        .unwrap();
    p.expect("Continue with `runbook resume ").unwrap();
    p.expect("or undo them with `runbook rollback ").unwrap();
    p.expect(expectrl::Eof).unwrap();
}

/// Ctrl-C at "retry, roll back or stop?" after a step failed stops the run as interrupted
/// (exit 130), as Ctrl-C anywhere else does. Before, it was recorded as the operator's
/// choice to stop, a failed run (exit 1) (cold review).
#[test]
fn ctrl_c_at_the_failure_question_is_an_interruption() {
    let t = Test::new()
        .file(
            "fails.rhai",
            "runbook(#{ id: \"f\", title: \"F\" });\nstep(\"s\", \"S\", |ctx| { throw \"boom\"; }).no_undo(\"a test\");\n",
        )
        .args(&["exec", "fails.rhai", "--sandbox"]);
    let mut p = terminal(t.command(), 30);
    p.expect("[retry/rollback/stop]").unwrap();
    p.send(expectrl::ControlCode::EndOfText).unwrap();
    p.expect(expectrl::Eof).unwrap();
    let status = format!("{:?}", p.get_process().wait().unwrap());
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 130)"),
        "{status}"
    );
}

/// At a terminal, a missing setting is reported before the first question: the operator
/// never confirms a prerequisite for a run that cannot start.
#[test]
fn preflight_stops_at_a_terminal_before_the_first_question() {
    let rig = Rig::new();
    let cmd = rig
        .shell(&["exec", "postmark", "--actor", "pty-test"])
        .env_remove("INFISICAL_PROJECT_ID")
        .command();
    let mut p = terminal(cmd, 30);
    let shown = p.expect(expectrl::Eof).unwrap();
    let text = String::from_utf8_lossy(&[shown.before(), shown.as_bytes()].concat()).to_string();
    assert!(
        text.contains("cannot start: 1 setting(s) its vendors need are missing")
            && text.contains("INFISICAL_PROJECT_ID (infisical)")
            && text.contains("nothing was asked or changed"),
        "{text}"
    );
    assert!(
        !text.contains("Prerequisites"),
        "a question came first:\n{text}"
    );
    assert!(!text.contains("[y/N]"), "a question came first:\n{text}");
    // Exit 2: bad configuration.
    let status = format!("{:?}", p.get_process().wait().unwrap());
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 2)"),
        "{status}"
    );
}

/// `exec` of a one-step runbook whose step asks "Go ahead?" first, in the sandbox.
fn confirming() -> Test {
    Test::new()
        .file(
            "confirm.rhai",
            "runbook(#{ id: \"c\", title: \"C\" });\nstep(\"s\", \"S\", |ctx| { print(\"ran\"); }).confirm(\"Go ahead?\");\n",
        )
        .args(&["exec", "confirm.rhai", "--sandbox"])
}

/// The run stopped at the confirmation, and its step never ran.
fn stopped_without_running(p: &mut OsSession) {
    p.expect("Stopped before step 's' at the operator's request.")
        .unwrap();
    let rest = p.expect(expectrl::Eof).unwrap();
    assert!(!String::from_utf8_lossy(rest.before()).contains("| ran"));
}

/// A confirmation at a terminal shows `[y/N]`, as the README does, and Enter alone is no.
/// Before: `[y/n]`, and Enter asked again.
#[test]
fn enter_alone_at_a_confirmation_is_no() {
    let t = confirming();
    let mut p = terminal(t.command(), 30);
    p.expect("? Go ahead? [y/N] ").unwrap();
    p.send_line("").unwrap();
    stopped_without_running(&mut p);
}

/// `--json` sends the run's events to stdout, redirected to a file, while the operator
/// answers at the terminal: the question is asked there, and stdout holds only JSON lines.
/// Before, rustyline wrote the question (and its escape codes) into the JSON stream, and
/// the terminal showed a run that seemed to hang (cold review).
#[test]
fn a_question_is_asked_at_the_terminal_when_stdout_is_the_json_stream() {
    let t = confirming().args(&["--json"]);
    let inner = t.command();
    let dir = inner.get_current_dir().unwrap().to_path_buf();
    let mut p = terminal(behind_sh("exec > out.jsonl", &inner), 30);
    p.expect("? Go ahead? [y/N] ").unwrap();
    p.send_line("y").unwrap();
    p.expect(expectrl::Eof).unwrap();
    let out = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    assert!(!out.is_empty());
    for line in out.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON line: {line:?}"
        );
    }
    assert!(out.contains(r#""type":"report""#), "{out}");
}

/// A question holding a vendor's line breaks is drawn on one line at a terminal too (895bd0d
/// tested the piped and `--yes` paths): the breaks show as ␊, so no other question appears
/// above `[y/N]`.
#[test]
fn a_question_with_a_line_break_is_one_line_at_a_terminal() {
    let t = Test::new()
        .file(
            "ask.rhai",
            "runbook(#{ id: \"ask\", title: \"Ask\" });\nstep(\"s\", \"S\", |ctx| {\n    let id = \"b7bc) arrive?\\n  ? Roll back now\";\n    if prompt::confirm(`Did ${id}) arrive?`) { print(\"confirmed\"); }\n});\n",
        )
        .args(&["exec", "ask.rhai", "--sandbox"]);
    let mut p = terminal(t.command(), 30);
    let shown = p
        .expect("? Did b7bc) arrive?␊  ? Roll back now) arrive? [y/N] ")
        .unwrap();
    assert!(
        !String::from_utf8_lossy(shown.before()).contains("? Roll back now"),
        "a second question was drawn: {}",
        String::from_utf8_lossy(shown.before())
    );
    p.send_line("y").unwrap();
    p.expect("| confirmed").unwrap();
    p.expect(expectrl::Eof).unwrap();
}

/// At a terminal, the REPL's prompt names production, and `:env` says where it writes.
#[test]
fn the_repl_prompt_names_production() {
    let t = Test::new().args(&["repl"]);
    let mut p = terminal(t.command(), 30);
    p.expect("PRODUCTION · no vendor module").unwrap();
    p.expect("runbook[PRODUCTION]> ").unwrap();
    p.send_line(":env").unwrap();
    p.expect("PRODUCTION · no vendor module").unwrap();
    p.expect("runbook[PRODUCTION]> ").unwrap();
    p.send(expectrl::ControlCode::EndOfTransmission).unwrap();
    p.expect(expectrl::Eof).unwrap();
}

/// What was typed before a question was shown is not its answer: a "y" typed while the run
/// was still starting (before its banner) is dropped, and the question waits for one given
/// after it. Before: the early "y" answered it.
#[test]
fn an_answer_typed_before_the_question_is_not_taken() {
    let t = confirming();
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    assert!(std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap()
        .success());
    // The binary starts only once the "y" is in its terminal's input: sent as the process
    // starts is not enough on a loaded machine, where this thread can be descheduled until
    // after the question (and the "y" then rightly answers it).
    let gated = behind_sh(&format!("read -r _ < '{}'", gate.display()), &t.command());
    let mut p = terminal(gated, 30);
    p.send_line("y").unwrap();
    std::fs::write(&gate, "go\n").unwrap();
    p.expect("SANDBOX · simulated vendors in this process")
        .unwrap();
    p.expect("? Go ahead? [y/N] ").unwrap();
    p.send_line("n").unwrap();
    stopped_without_running(&mut p);
}

/// At revoke the operator deletes the NEW token in the dashboard instead of the old one and
/// says it is done: every consumer holds a dead token, the old one still works. The step
/// fails, and the rollback it offers goes through: the journal says revoke's delete took
/// effect, but revoke's verify reads at Postmark that the old token still answers, so
/// nothing irreversible happened and every consumer goes back onto it.
#[test]
fn deleting_the_new_token_by_mistake_at_revoke_can_be_rolled_back() {
    let rig = Rig::new();
    rig.crash("postmark", "after:verify");
    let new = new_tokens(&rig.state()).remove(0);
    rig.file(
        "answers.toml",
        "\"revoke.confirm\" = true\n\"revoke.on-failure\" = \"rollback\"\n\"rollback.confirm\" = true\n",
    );
    let cmd = rig
        .shell(&["resume", &rig.run_id(), "--answers", "answers.toml"])
        .command();
    let mut p = terminal(cmd, 120);
    p.expect("Have you deleted the old token in the dashboard?")
        .unwrap();
    rig.sandbox.delete_postmark_token(&new);
    p.send_line("y").unwrap();
    p.expect("the old token still answers HTTP 200").unwrap();
    p.expect("nothing of it to undo, the rollback goes on")
        .unwrap();
    p.expect("rollback complete").unwrap();
    let summary = p.expect(expectrl::Eof).unwrap();
    // Eof's match holds what came after "rollback complete": the summary.
    let summary: String = std::iter::once(summary.before())
        .chain(summary.matches())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    let state = rig.state();
    assert!(new_tokens(&state).is_empty(), "the new token is gone");
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"], OLD_TOKEN,
            "{app} is back on the old token"
        );
    }
    // What the vendor read is what every record says: the old token's delete, which the
    // operator said was done, is not "left in place" nor "in effect" (before, all of them
    // said so while the old token was live), and the journal, the timeline and the evidence
    // say what the read found.
    const DELETE: &str = "postmark::dashboard_delete_token";
    assert!(
        !summary.contains(DELETE),
        "the summary lists the delete as left in place:\n{summary}"
    );
    let run_id = rig.run_id();
    assert!(
        rig.journal().contains(r#""holds":"refuted""#),
        "the journal lacks the refutation"
    );
    let timeline = rig.runbook(&["runs", &run_id, "--json"], &[]).json();
    let in_effect = timeline["in_effect"].as_array().unwrap();
    assert!(
        !in_effect.iter().any(|w| w["function"] == DELETE),
        "in effect: {in_effect:?}"
    );
    rig.runbook(&["runs", &run_id], &[])
        .exit(Exit::Ok)
        .stdout_has(&format!("refresh: {DELETE} on dashboard: delete API token "))
        .stdout_has(" on raxx-prod: its verify read at the vendor that it did not take effect (the operator had said it was done)");
    let pack = rig.runbook(&["evidence", &run_id], &[]).json();
    let last = pack["writes"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|w| w["function"] == DELETE)
        .unwrap_or_else(|| panic!("no write of {DELETE} in the evidence: {pack}"))
        .clone();
    assert_eq!(
        last["outcome"],
        "not in effect (its verify read at the vendor that it did not take effect)"
    );
}

/// `--yes` at a terminal answered "Have you deleted the old token in the dashboard?" before
/// the operator could: the old token stayed live, revoke's check failed and the verified
/// rotation was rolled back. Only the person at the dashboard can say it: the question
/// waits for them, whatever `--yes` says.
#[test]
fn yes_does_not_say_the_old_token_was_deleted_in_the_dashboard() {
    let rig = Rig::new();
    rig.crash("postmark", "after:verify");
    let cmd = rig.shell(&["resume", &rig.run_id(), "--yes"]).command();
    let mut p = terminal(cmd, 120);
    // The question waiting for its answer (`--yes` printed it answered: "? … yes (--yes)").
    p.expect("? Have you deleted the old token in the dashboard? [y/N] ")
        .unwrap();
    rig.sandbox.delete_postmark_token(OLD_TOKEN);
    p.send_line("y").unwrap();
    p.expect("succeeded").unwrap();
    p.expect(expectrl::Eof).unwrap();
    assert_rotated(&rig.state(), "the old token deleted by the operator");
}

/// On a terminal rustyline does not drive (TERM=dumb, emacs), a prompt reads a plain line,
/// and Ctrl-C only set a flag the read never looked at: the operator could not get out. A
/// second Ctrl-C always exits now (130), saying where the run stands.
#[test]
fn a_second_ctrl_c_always_exits() {
    let test = Test::new()
        .fixture("prompts.rhai")
        .env("TERM", "dumb")
        .args(&["exec", "prompts.rhai"]);
    let mut p = terminal(behind_stty("echo", &test.command()), 30);
    p.expect("Dashboard access").unwrap();
    // Signals sent back to back may arrive as one: Ctrl-C until it says it stops (at most
    // ten), each after the last had a second to land.
    p.set_expect_timeout(Some(Duration::from_secs(1)));
    let stopped = (0..10).any(|_| {
        p.send(expectrl::ControlCode::EndOfText).unwrap();
        p.expect("Ctrl-C again: stopping now").is_ok()
    });
    assert!(stopped, "ten Ctrl-C did not stop the run");
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    p.expect(expectrl::Eof).unwrap();
}
