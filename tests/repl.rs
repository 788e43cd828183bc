//! `runbook repl`: through a pseudo-terminal, and with piped stdin.

use crate::support::{
    assert_lacks, audit_entries, behind_stty, fed, Exit, Output, Test, OLD_TOKEN,
};
use expectrl::session::OsSession;
use expectrl::{ControlCode, Expect, Session};
use std::time::{Duration, Instant};

/// `repl postmark --sandbox` on the canary scenario in `t`, then `extra`.
fn postmark_repl(t: Test, extra: &[&str]) -> Test {
    t.shipped_runbooks()
        .args(&["repl", "postmark", "--sandbox"])
        .canary()
        .args(extra)
}

/// [`postmark_repl`] with `--yes` and `stdin` piped in.
fn piped(stdin: &str) -> Output {
    postmark_repl(Test::new(), &["--yes"]).stdin(stdin).run()
}

/// `:run STEP --force` in a fresh session, with the step id typed back (answers file).
fn forced(step: &str) -> Output {
    postmark_repl(
        Test::new().file("typed.toml", &format!("\"{step}.type-id\" = \"{step}\"\n")),
        &["--yes", "--answers", "typed.toml"],
    )
    .stdin(&format!(":run {step} --force\n"))
    .run()
}

fn repl(dir: &std::path::Path, extra: &[&str]) -> OsSession {
    let cmd = postmark_repl(Test::in_dir(dir), extra)
        .env_remove("CI")
        .command();
    // The pty echoes what is typed and shows Ctrl-C as "^C".
    let mut p = Session::spawn(behind_stty("echo echoctl", &cmd)).unwrap();
    p.set_expect_timeout(Some(Duration::from_secs(20)));
    p.expect("postmark-server-token> ").unwrap();
    p
}

/// Types `line` and waits for each of `shown`, in order.
fn type_line(p: &mut OsSession, line: &str, shown: &[&str]) {
    p.send_line(line).unwrap();
    for s in shown {
        p.expect(*s).unwrap();
    }
}

#[test]
fn steps_run_ctx_multiline_completion_errors_audit_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = repl(dir.path(), &[]);
    let prompt = "postmark-server-token> ";

    type_line(&mut p, ":steps", &["7. revoke", prompt]);

    type_line(&mut p, ":run precheck", &["✓ step precheck", prompt]);
    type_line(&mut p, ":ctx", &["server_id: 4242", prompt]);
    type_line(&mut p, ":steps", &["1. precheck     done", prompt]);

    // An unfinished block continues on the next line, at a continuation prompt.
    let more = "                  ...> ";
    assert_eq!(more.len(), prompt.len());
    type_line(&mut p, "if ctx.token_count < 3 {", &[more]);
    type_line(&mut p, "  \"room for one more\"", &[more]);
    type_line(&mut p, "}", &["\"room for one more\"", prompt]);
    // Ctrl-C at the continuation prompt drops the unfinished input.
    type_line(&mut p, "let half = [1,", &[more]);
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("(unfinished input dropped)").unwrap();
    p.expect(prompt).unwrap();

    // Tab lists the candidates (the second Tab, as in bash), then completes a unique one.
    p.send("postmark::").unwrap();
    p.send("\t\t").unwrap();
    // The list ends where the editor redraws the line being typed.
    let listed = p.expect(format!("{prompt}postmark::")).unwrap();
    let listed = String::from_utf8_lossy(listed.before()).to_string();
    for f in ["server", "send_email", "token_status", "dashboard_url"] {
        assert!(
            listed.contains(&format!("postmark::{f}")),
            "{f} not listed:\n{listed}"
        );
    }
    p.send("se\t").unwrap();
    p.send("rv\t").unwrap();
    p.expect("postmark::server").unwrap();
    type_line(&mut p, "(ctx.old_token).Name", &["\"raxx-prod\"", prompt]);

    // A mistyped function or command gets the nearest known name; help points at :api.
    type_line(
        &mut p,
        "postmark::servr(ctx.old_token)",
        &[
            "did you mean postmark::server?",
            "`:api postmark` lists its functions",
            prompt,
        ],
    );
    type_line(
        &mut p,
        ":stpes",
        &[
            "unknown command :stpes; did you mean :steps? :help lists them",
            prompt,
        ],
    );

    // An error is shown with a diagnostic and does not end the session.
    type_line(
        &mut p,
        "nosuch(1)",
        &["<repl>:1:1: no function matches nosuch (i64)", prompt],
    );
    type_line(&mut p, "40 + 2", &["42", prompt]);

    // A mutating call is audited as made from the REPL.
    type_line(&mut p, "heroku::restart(\"raxx-api-prod\")", &[prompt]);
    // A line holding a secret's value stays out of the history file.
    type_line(&mut p, &format!("let pasted = \"{OLD_TOKEN}\""), &[prompt]);
    // So does one that makes a new value secret as it is typed (the value is registered
    // only while the line runs), and one typed before a later line made its value secret.
    type_line(
        &mut p,
        "let typed = secret::from_text(\"fresh-9f8e7d6c5b4a3210\")",
        &[prompt],
    );
    type_line(&mut p, "let early = \"later-0a1b2c3d4e5f6789\"", &[prompt]);
    type_line(&mut p, "let made = secret::from_text(early)", &[prompt]);
    p.send(ControlCode::EndOfTransmission).unwrap();
    p.expect(expectrl::Eof).unwrap();

    let restart = audit_entries(dir.path())
        .into_iter()
        .find(|e| e["context"]["function"] == "heroku::restart")
        .expect("the restart is audited");
    assert_eq!(restart["mode"], "repl");
    let history = std::fs::read_to_string(dir.path().join("state/repl_history")).unwrap();
    assert!(history.contains(":run precheck"), "{history}");
    for secret in [
        OLD_TOKEN,
        "fresh-9f8e7d6c5b4a3210",
        "later-0a1b2c3d4e5f6789",
    ] {
        assert!(
            !history.contains(secret),
            "a secret reached the history:\n{history}"
        );
    }
    assert!(
        history.contains("let made = secret::from_text(early)"),
        "{history}"
    );
    // The session is a run: `runbook runs` lists it.
    let runs = Test::in_dir(dir.path())
        .args(&["runs", "--json"])
        .run()
        .json();
    assert_eq!(runs[0]["mode"], "repl");
}

/// A line that failed is retyped, not recalled; and a literal handed to `secret::` is a
/// value being made secret. Before: a mistyped `secret::form_text("S")` (unknown function)
/// and a line that did not compile stayed in `repl_history` with the token pasted in it,
/// since only values already registered were dropped.
#[test]
fn a_token_pasted_into_a_failed_or_secret_call_stays_out_of_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = repl(dir.path(), &[]);
    let prompt = "postmark-server-token> ";
    let typo = "pasted-typo-0a1b2c3d4e5f6789";
    let broken = "pasted-broken-0a1b2c3d4e5f6789";
    let spaced = "pasted-spaced-0a1b2c3d4e5f6789";
    let refused = "pasted-refused-0a1b2c3d4e5f6789";
    let unmatched = "pasted-unmatched-0a1b2c3d4e5f6789";
    let bearer = "pasted-bearer-0a1b2c3d4e5f6789";
    type_line(
        &mut p,
        &format!("let t = secret::form_text(\"{typo}\");"),
        &["did you mean secret::from_text?", prompt],
    );
    type_line(
        &mut p,
        &format!("let = \"{broken}\";"),
        &["<repl>:1:", prompt],
    );
    type_line(&mut p, &format!("secret :: nope ( `{spaced}` )"), &[prompt]);
    // Text where a Secret belongs: refused by the call, or matching no signature of a
    // module function. Before: both lines compiled, so both were kept.
    type_line(
        &mut p,
        &format!("infisical::set_secret(\"POSTMARK_SERVER_TOKEN\", \"{refused}\", #{{}})"),
        &["is text, not a Secret", prompt],
    );
    type_line(
        &mut p,
        &format!("postmark::server(\"{unmatched}\")"),
        &["no function matches postmark::server", prompt],
    );
    type_line(
        &mut p,
        &format!("http::get(\"http://127.0.0.1:9/x\", #{{ bearer: \"{bearer}\" }})"),
        &["bearer must be a Secret", prompt],
    );
    // Lines that compiled are kept, even one that failed as it ran.
    type_line(
        &mut p,
        "nosuch(1)",
        &["no function matches nosuch (i64)", prompt],
    );
    type_line(&mut p, "40 + 2", &["42", prompt]);
    p.send(ControlCode::EndOfTransmission).unwrap();
    p.expect(expectrl::Eof).unwrap();

    let state = dir.path().join("state");
    let history = std::fs::read_to_string(state.join("repl_history")).unwrap();
    for pasted in [typo, broken, spaced, refused, unmatched, bearer] {
        assert_lacks("repl_history", &history, pasted);
    }
    if let Some(file) =
        crate::support::find_in_files(&state, &[typo, broken, spaced, refused, unmatched, bearer])
    {
        panic!("a pasted token reached {}", file.display());
    }
    assert!(history.contains("nosuch(1)"), "{history}");
    assert!(history.contains("40 + 2"), "{history}");
}

#[test]
fn ctrl_c_abandons_a_slow_call_and_returns_to_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = repl(
        dir.path(),
        &["--fault", "postmark:GET:/server=latency=20000"],
    );
    p.get_process_mut().set_window_size(100, 30).unwrap();
    p.send_line("postmark::server(infisical::secret(\"POSTMARK_SERVER_TOKEN\").value)")
        .unwrap();
    // The spinner shows the call is in flight.
    let mut shown = p
        .expect("postmark GET /server")
        .unwrap()
        .as_bytes()
        .to_vec();
    let sent = Instant::now();
    p.send(ControlCode::EndOfText).unwrap();
    for needle in ["interrupted", "postmark-server-token> "] {
        let c = p.expect(needle).unwrap();
        shown.extend_from_slice(c.before());
        shown.extend_from_slice(c.as_bytes());
    }
    // Not a timing benchmark: the call's latency is 20 s, so anything well under it means
    // Ctrl-C did not wait for the answer (with room for a loaded machine).
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?}",
        sent.elapsed()
    );
    // What the screen shows now: no spinner left behind (the terminal's "^C" echo used to
    // wrap the padded spinner line, and the clear then missed it).
    let size = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut screen = vt100::Parser::new(size(30), size(100), 0);
    screen.process(&shown);
    let text = screen.screen().contents();
    assert!(
        !text.contains("postmark GET /server"),
        "the spinner stayed on screen:\n{text}"
    );
    assert!(text.contains("interrupted"), "{text}");
    p.send_line("1 + 1").unwrap();
    p.expect("2").unwrap();
}

#[test]
fn piped_statements_run_line_by_line_and_a_failure_sets_exit_1() {
    let out = postmark_repl(Test::new(), &[])
        .stdin("let t = infisical::secret(\"POSTMARK_SERVER_TOKEN\").value;\nt\nlet n = [1,\n2,\n3];\nn.len()\n:run precheck\nctx.server_id\nnosuch()\n")
        .run();
    out.exit(Exit::StepFailed);
    // Values on stdout; progress, prints and errors on stderr.
    assert_eq!(out.stdout, "secret(…c001)\n3\n4242\n");
    out.stderr_has("✓ step precheck")
        .stderr_has("  | server raxx-prod (ID 4242) has 1 token(s); the current one works")
        .stderr_has("no function matches nosuch ()");
}

/// Ctrl-C in a piped session stops the session, not only the input it lands in. Before:
/// the slow call stopped, and the next line's write was still sent (exit 1).
#[test]
fn an_interrupted_piped_session_runs_nothing_more_and_exits_130() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let t = postmark_repl(
        Test::in_dir(dir.path()),
        &["--yes", "--fault", "postmark:GET:/server=latency=20000"],
    );
    let mut child = fed(
        &t,
        b"40 + 2\npostmark::server(infisical::secret(\"POSTMARK_SERVER_TOKEN\").value)\nheroku::set_config(\"raxx-api-prod\", #{ AFTER_MARK: \"on\" });\n\"after\"\n",
    );
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(stdout.next().unwrap().unwrap(), "42");
    // The slow read is next (or the line is being read): either way nothing after it runs.
    crate::support::signal(&child, libc::SIGINT);
    let rest: Vec<String> = stdout.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        stderr.contains("interrupted: the rest of the input was not run"),
        "{stderr}"
    );
    let journal: String = std::fs::read_dir(dir.path().join("state/runs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(journal.contains("\"type\":\"run_started\""), "{journal}");
    assert!(!journal.contains("AFTER_MARK"), "{journal}");
    assert!(!journal.contains("\"type\":\"write\""), "{journal}");
}

/// A step's confirmation nobody could answer is a failed input: a piped session exits 1
/// and says how to answer. Before: "not run", exit 0, and the help was dropped.
#[test]
fn an_unanswered_step_confirmation_fails_a_piped_session() {
    let out = Test::new()
        .file(
            "c.rhai",
            "runbook(#{ id: \"c\", title: \"C\" });\nstep(\"a\", \"A\", |ctx| { print(\"a ran\"); }).confirm(\"Go?\");\n",
        )
        .args(&["repl", "c.rhai", "--sandbox"])
        .stdin(":run a\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("step 'a' not run")
        .stderr_has("needs an answer");
    assert_lacks("stderr", &out.stderr, "a ran");
}

/// A piped line that is not UTF-8 stops the session with exit 1 and says why. Before: the
/// session ended there silently, with exit 0, and the lines after it never ran.
#[test]
fn a_piped_line_that_is_not_text_is_an_error_not_the_end_of_the_input() {
    let t = Test::new().args(&["repl"]);
    let child = fed(&t, b"40 + 2\n\"\xff\xfe\"\n1 + 1\n");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n");
    assert!(
        stderr.contains("runbook::repl::input: a line of the input is not UTF-8 text; it and the rest of the input are not run"),
        "{stderr}"
    );
}

/// A REPL session takes no lock, so only its process says it is live: `runs` shows it
/// running while it is, and ended after. Before: a colleague's live REPL session (which can
/// send writes) was listed as interrupted, as if its process were gone.
#[test]
fn a_live_repl_session_is_listed_as_running() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Test::in_dir(dir.path())
        .args(&["repl", "--sandbox"])
        .command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"40 + 2\n").unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        stdout.next().unwrap().unwrap(),
        "42",
        "the session's run has started"
    );
    let runs = Test::in_dir(dir.path()).args(&["runs", "--json"]).run();
    assert_eq!(runs.json()[0]["current"], "running", "{}", runs.stdout);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let runs = Test::in_dir(dir.path()).args(&["runs", "--json"]).run();
    assert_eq!(runs.json()[0]["current"], "ended", "{}", runs.stdout);
}

/// `audit::logged` on a log that cannot be read is an error (a verify that fails is said,
/// and the step's doubt is settled another way), never "not logged", which would log the
/// entry twice.
#[test]
fn a_question_of_an_audit_log_that_cannot_be_read_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state/audit.jsonl")).unwrap();
    let out = Test::in_dir(dir.path())
        .args(&["repl", "--sandbox"])
        .stdin("audit::logged(\"x.y\")\n")
        .run();
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_lacks("stdout", &out.stdout, "false");
    out.stderr_has("cannot read the audit log");
}

/// A run `:load` starts goes on with the session's clients: what they saw answering as a
/// simulator is that run's evidence too (it is a rehearsal), and each run counts its own
/// failed inputs. Before: the clients report a simulator once, so the second run was taken
/// for production; and it recorded the first run's failures as its own.
#[test]
fn a_run_loaded_at_the_repl_keeps_its_own_evidence() {
    let rig = crate::support::Rig::new();
    rig.file(
        "x.rhai",
        r#"
runbook(#{ id: "x", title: "X", egress: ["api.example.com"] });
step("s", "S", |ctx| { print("s"); });
"#,
    );
    let out = rig.runbook_stdin(
        &["repl"],
        &[],
        "nosuch()\nheroku::config(\"raxx-api-prod\").len()\n:load x.rhai\nheroku::config(\"raxx-api-prod\").len()\n",
    );
    out.exit(Exit::StepFailed);
    let runs = rig.runs();
    let x = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runbook"] == "x")
        .unwrap_or_else(|| panic!("{runs:#}"));
    assert_eq!(x["target"], "rehearsal", "{runs:#}");
    let journal = std::fs::read_to_string(rig.path().join(format!(
        "state/runs/{}.jsonl",
        x["run_id"].as_str().unwrap()
    )))
    .unwrap();
    assert!(journal.contains("\"failed_inputs\":0"), "{journal}");
}

#[test]
fn piped_session_without_errors_exits_0() {
    let out = Test::new()
        .args(&["repl"])
        .stdin("let x = 20;\nx * 2 + 2\n")
        .run();
    out.exit(Exit::Ok);
    assert_eq!(out.stdout, "42\n");
}

/// In a fresh session `:run revoke` would delete the only live token. It is refused until
/// the steps before it ran; `--force` still needs the step id typed for an irreversible
/// step; an out-of-order run is journalled as such.
#[test]
fn run_refuses_a_step_whose_earlier_steps_have_not_run() {
    let out = piped(":run revoke\n:run revoke --force\n:sandbox\n");
    out.exit(Exit::StepFailed)
        .stderr_has("step 'revoke' runs after precheck, generate, validate, store, propagate, verify, which have not completed in this session; run them first, or `:run revoke --force`")
        .stderr_has("step 'revoke' not run: prompt 'revoke.type-id' needs an answer")
        .stdout_has("postmark tokens: 1;");
    let journal = forced("validate").journal();
    assert!(
        journal.contains(
            "\"type\":\"step_started\",\"step\":\"validate\",\"attempt\":1,\"out_of_order\":true"
        ),
        "{journal}"
    );
}

/// Forcing revoke out of order states what is true (the steps before it have not run) and
/// asks for the id typed back; it never asks to confirm "every consumer has been verified".
#[test]
fn a_forced_step_says_what_has_not_run_and_never_confirms_an_unchecked_claim() {
    let out = forced("revoke");
    out.stderr_has("! Earlier steps have not run in this session: precheck, generate, validate, store, propagate, verify. Nothing they check has been checked.");
    assert_lacks("stderr", &out.stderr, "Every consumer has been verified");
    let journal = out.journal();
    // The typed id let it run, journalled as out of order.
    assert!(
        journal.contains("\"step\":\"revoke\",\"attempt\":1,\"out_of_order\":true"),
        "{journal}"
    );
    assert!(
        !journal.contains("Every consumer has been verified"),
        "{journal}"
    );
}

/// Retrying generate after an earlier attempt generated a token uses that token instead of
/// a second one, and validate counts from the number before the run.
#[test]
fn a_retried_generate_uses_the_token_the_earlier_attempt_generated() {
    let out = piped(":run precheck\n:run generate\nlet first = ctx.new_token.fingerprint();\n:run generate\nctx.new_token.fingerprint() == first\n:run validate\n:sandbox\n");
    out.exit(Exit::Ok)
        .stderr_has("using the one an earlier attempt generated")
        .stderr_has("✓ step validate")
        .stdout_has("true\n")
        .stdout_has("postmark tokens: 2;");
}

#[test]
fn a_value_holding_a_secret_with_quotes_is_masked_in_the_display() {
    // The display quotes strings, escaping `"` and `\`: that escaped copy was shown whole.
    let key = "q\"uote\\slash-ZZcanary78";
    let out = Test::new()
        .args(&["repl"])
        .env("REPL_KEY", key)
        .stdin("let k = secret::from_env(\"REPL_KEY\");\n\"q\\\"uote\\\\slash-ZZcanary78\"\n[\"q\\\"uote\\\\slash-ZZcanary78\"]\n")
        .run();
    out.exit(Exit::Ok);
    out.assert_absent("uote\\\\slash-ZZcanary78");
    out.assert_absent("uote\\slash-ZZcanary78");
    assert_eq!(
        out.stdout.matches("secret(…ry78)").count(),
        2,
        "{}",
        out.stdout
    );
}

const AHEAD: &str = r#"
runbook(#{ id: "ahead", title: "A write sent ahead", secret: "AHEAD_KEY" });
step("first", "First", |ctx| { print("first ran"); });
step("second", "A write sent ahead of a read", |ctx| {
    run::together([
        || heroku::set_config("raxx-api-prod", #{ AHEAD_MARK: "on" }),
        || heroku::config("raxx-api-staging"),
    ]);
}).no_undo("a test's mark");
"#;

/// `:run STEP` of a step whose write `run::together` sends ahead, beside a live run holding
/// the rotation's lock: refused as any other write from the REPL is (a review read the first
/// pass as sending it unchecked; here it was refused already, and the first pass now leaves
/// every REPL write to its turn, where the check is).
#[test]
fn a_write_sent_ahead_at_the_repl_is_not_sent_beside_a_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let killed = Test::in_dir(dir.path())
        .file("ahead.rhai", AHEAD)
        .args(&["exec", "ahead.rhai", "--sandbox", "--yes"])
        .env("RUNBOOK_CRASH_AT", "after:first")
        .run();
    assert_eq!(killed.code, -9, "{}", killed.stderr);
    // The lock made to name this test's own process: a live holder.
    let lock = crate::support::lock_file(&dir.path().join("state/locks"));
    let mut holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    holder["pid"] = std::process::id().into();
    std::fs::write(&lock, holder.to_string()).unwrap();
    let out = Test::in_dir(dir.path())
        .args(&["repl", "ahead.rhai", "--sandbox", "--yes"])
        .stdin(":run first\n:run second\nprint(`marked: ${\"AHEAD_MARK\" in heroku::config(\"raxx-api-prod\")}`)\n")
        .run();
    out.stderr_has("heroku::set_config on raxx-api-prod: not sent: run ")
        .stderr_has("holds this rotation's lock and may be writing to the same targets now");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("marked: false"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}

/// The REPL takes no lock (it is for looking around a stuck run too), but a write typed at
/// it while a run holds the rotation's lock says so: that run may be writing to the same
/// targets. Here the run was killed after generate, so its lock is still held.
#[test]
fn a_write_at_the_repl_says_when_a_run_holds_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let killed = Test::in_dir(dir.path())
        .rehearse("postmark")
        .canary()
        .args(&["--yes"])
        .env("RUNBOOK_CRASH_AT", "after:generate")
        .run();
    assert_eq!(killed.code, -9, "{}", killed.stderr);
    let run_id = std::fs::read_dir(dir.path().join("state/runs"))
        .unwrap()
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".jsonl")
                .map(str::to_string)
        })
        .unwrap();
    let out = postmark_repl(Test::in_dir(dir.path()), &["--yes"])
        .stdin("heroku::restart(\"raxx-api-prod\")\n")
        .run();
    out.exit(Exit::Ok)
        .stderr_has(&format!("warning: run {run_id} ("));
    out.stderr_has("holds this rotation's lock, but its process is gone (the run is unfinished, not writing now); heroku::restart on raxx-api-prod goes beside it");
    // So does a step run by hand, whose writes are the step's.
    let out = postmark_repl(Test::in_dir(dir.path()), &["--yes"])
        .stdin(":run precheck\n:run generate\n")
        .run();
    out.stderr_has("holds this rotation's lock, but its process is gone")
        .stderr_has("postmark::dashboard_new_token on");
    // A live holder (here the lock made to name this test's own process): nothing is sent
    // beside it, typed or by `:run`. Before, a warning, and the write went out beside a
    // live run's (cold review).
    let lock = crate::support::lock_file(&dir.path().join("state/locks"));
    let mut holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let dead_pid = holder["pid"].clone();
    let host = holder["host"].clone();
    holder["pid"] = std::process::id().into();
    std::fs::write(&lock, holder.to_string()).unwrap();
    let out = postmark_repl(Test::in_dir(dir.path()), &["--yes"])
        .stdin("heroku::restart(\"raxx-api-prod\")\n:run precheck\n:run generate\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("heroku::restart on raxx-api-prod: not sent: run ")
        .stderr_has("holds this rotation's lock and may be writing to the same targets now")
        .stderr_has("postmark::dashboard_new_token on");
    // A holder on another host cannot be shown alive or dead on a shared folder: said, not
    // refused (review of this session's change: a container restarted under a new hostname
    // locked the REPL out for good).
    holder["host"] = "another-host".into();
    std::fs::write(&lock, holder.to_string()).unwrap();
    let out = postmark_repl(Test::in_dir(dir.path()), &["--yes"])
        .stdin("heroku::restart(\"raxx-api-prod\")\n")
        .run();
    out.exit(Exit::Ok)
        .stderr_has("holds this rotation's lock and may be writing to the same targets now; heroku::restart on raxx-api-prod goes beside it");
    holder["host"] = host;
    holder["pid"] = dead_pid;
    std::fs::write(&lock, holder.to_string()).unwrap();
    // And a runbook loaded into a bare session: `:load` starts a run of that runbook, which
    // knows its rotation. Before: the loaded runbook ran inside the bare session's run (its
    // journal named no runbook, so a rollback read its steps against none) and no write
    // named the run holding the lock.
    let starts = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir.join("state/runs"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| t.lines().next().map(str::to_string))
            .collect()
    };
    let before = starts(dir.path()).len();
    let out = Test::in_dir(dir.path())
        .shipped_runbooks()
        .args(&["repl", "--sandbox"])
        .canary()
        .args(&["--yes"])
        .stdin(":load postmark\nheroku::restart(\"raxx-api-prod\")\n")
        .run();
    out.exit(Exit::Ok)
        .stderr_has(&format!("warning: run {run_id} ("))
        .stderr_has("holds this rotation's lock, but its process is gone");
    let after = starts(dir.path());
    assert_eq!(
        after.len(),
        before + 2,
        "a run for the bare session, one for the load"
    );
    assert_eq!(
        after
            .iter()
            .filter(|l| l.contains("\"runbook\":\"postmark-server-token\"")
                && l.contains("\"entry\":\"repl\""))
            .count(),
        5,
        "the four sessions before and the loaded run: {after:#?}"
    );
}

/// A REPL session over a runbook is not resumed as a rotation: before, `resume` of a
/// session the operator had quit ran the whole runbook from precheck (its prerequisites
/// and first-write question unasked), although nobody had asked for the rotation.
#[test]
fn a_repl_session_is_not_resumed_as_a_rotation() {
    let rig = crate::support::Rig::new();
    rig.runbook_stdin(&["repl", "postmark"], &[], "1 + 1\n:quit\n")
        .exit(Exit::Ok);
    let run = rig.run_id();
    let out = rig.runbook(&["resume", &run, "--yes"], &[]);
    out.exit(Exit::Usage)
        .stderr_has(&format!(
            "run {run} is a REPL session: `resume` continues only a rotation started with `runbook exec`"
        ))
        .stderr_has(&format!("runbook repl --attach {run}"));
    let state = rig.state();
    let written = crate::support::writes(&state);
    assert!(written.is_empty(), "{written:?}");
}

/// An unclosed `"` is an error as soon as its line is read, and the lines after it run:
/// before, the REPL waited for more lines to close it, and `:quit` (or anything typed
/// after) joined the broken input (cold review).
#[test]
fn an_unclosed_quote_does_not_swallow_the_lines_after_it() {
    let out = Test::new()
        .args(&["repl"])
        .stdin("let x = \"abc\nprint(\"after-\" + \"ran\");\n:quit\nprint(\"never-\" + \"ran\");\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("after-ran")
        .stderr_has("Open string is not terminated");
    assert!(!out.stderr.contains("never-ran"), "{}", out.stderr);
}
