//! The shared harness (`crates/testkit`): the binary in a temp dir, a separate sandbox
//! process, exit codes by name, the leaked-secret scan and snapshots; and what several test
//! modules run and read: fixtures and inline runbooks, the Postmark rehearsal, the canary
//! world as the simulators' state shows it, evidence packs.

pub use runbook_testkit::*;

use serde_json::Value;
use std::path::Path;

// Runs.

/// `runbook COMMAND FIXTURE`, the fixture (tests/fixtures) copied into the test's directory.
pub fn with_fixture(command: &str, name: &str) -> Test {
    Test::new().fixture(name).args(&[command, name])
}

/// `runbook COMMAND NAME`, NAME a runbook of `text` written in the test's directory.
pub fn with_script(command: &str, name: &str, text: &str) -> Test {
    Test::new().file(name, text).args(&[command, name])
}

/// `exec prompts.rhai --answers FILE` (tests/fixtures/prompts.rhai), FILE holding `text`.
pub fn prompts_answered(file: &str, text: &str) -> Test {
    with_fixture("exec", "prompts.rhai")
        .file(file, text)
        .args(&["--answers", file])
}

/// The Postmark rotation rehearsed on the canary scenario, streamed as JSON, the simulators'
/// final state kept; then `extra`.
pub fn rehearse_postmark(extra: &[&str]) -> Output {
    Test::new()
        .rehearse("postmark")
        .canary()
        .keep_sandbox_state()
        .args(&["--json"])
        .args(extra)
        .run()
}

/// The Postmark rotation rehearsed to the end (`--yes`) on the canary scenario by ops-test,
/// in `t` (its directory and environment).
pub fn rehearsed_rotation(t: Test) -> Output {
    t.rehearse("postmark")
        .canary()
        .args(&["--yes", "--actor", "ops-test"])
        .run()
}

// Listeners.

/// A loopback HTTP server that answers each request with `status` and keeps the bodies.
pub fn webhook(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/audit", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

// Tests that only run and read.

/// One `#[test]` per case, for the families whose every test is "run this, expect this exit
/// code, expect (or not) these texts". A case is its doc comment, its name, the [`Test`] to run
/// (without `.run()`), `=>` the [`Exit`] it must end with (by name), then any clauses, each a
/// name and a list, in the order they are checked:
///
/// - `stdout [..]`, `stderr [..]`: each text is in that stream ([`Output::stdout_has`]);
/// - `stdout_lacks [..]`, `stderr_lacks [..]`: none of them is ([`assert_lacks`]);
/// - `stderr_snapshot [..]`: stderr is each snapshot ([`Output::stderr_snapshot`]);
/// - `holds [..]`: each function is called with the output (`fn(&Output)`), for a check a
///   module makes of every run (hostile.rs's `no_panic`).
///
/// ```ignore
/// exits_with! {
///     /// What the case guards.
///     endless_loop_hits_the_operation_limit_naming_the_step:
///         with_fixture("exec", "endless_loop.rhai") => StepFailed,
///         stderr ["Step 'spin' failed:", "runbook::script::operation_limit"];
/// }
/// ```
///
/// A test that reads more than that (a report, a file, a second run) stays a function.
macro_rules! exits_with {
    (@expect $out:ident stdout [$($text:expr),* $(,)?]) => {
        $($out.stdout_has($text);)*
    };
    (@expect $out:ident stderr [$($text:expr),* $(,)?]) => {
        $($out.stderr_has($text);)*
    };
    (@expect $out:ident stdout_lacks [$($text:expr),* $(,)?]) => {
        $($crate::support::assert_lacks("stdout", &$out.stdout, $text);)*
    };
    (@expect $out:ident stderr_lacks [$($text:expr),* $(,)?]) => {
        $($crate::support::assert_lacks("stderr", &$out.stderr, $text);)*
    };
    (@expect $out:ident stderr_snapshot [$($name:expr),* $(,)?]) => {
        $($out.stderr_snapshot($name);)*
    };
    (@expect $out:ident holds [$($check:expr),* $(,)?]) => {
        $($check(&$out);)*
    };
    ($(
        $(#[$attr:meta])*
        $name:ident: $test:expr => $exit:ident $(, $clause:ident [$($arg:expr),* $(,)?])* ;
    )*) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                let out = $test.run();
                out.exit($crate::support::Exit::$exit);
                $($crate::support::exits_with!(@expect out $clause [$($arg),*]);)*
            }
        )*
    };
}
pub(crate) use exits_with;

/// `text`, the output `stream`, does not hold `needle`.
#[track_caller]
pub fn assert_lacks(stream: &str, text: &str, needle: &str) {
    assert!(!text.contains(needle), "{stream} holds {needle:?}:\n{text}");
}

// The canary scenario and the Postmark rotation.

/// The Postmark rotation's steps, in order.
pub const POSTMARK_STEPS: [&str; 8] = [
    "precheck",
    "generate",
    "validate",
    "store",
    "propagate",
    "verify",
    "revoke",
    "audit",
];

/// The apps of the canary scenario that send mail with the Postmark token.
pub const APPS: [&str; 2] = ["raxx-api-prod", "raxx-api-staging"];

/// The canary scenario's text (tests/fixtures/sop_canary.toml), for a test to change.
pub fn canary_scenario() -> String {
    std::fs::read_to_string(fixture(CANARY)).unwrap()
}

/// The canary scenario with the first `from` replaced by `to`; `from` must be there.
pub fn canary_with(from: &str, to: &str) -> String {
    let canary = canary_scenario();
    let scenario = canary.replacen(from, to, 1);
    assert_ne!(scenario, canary, "the canary scenario has no {from:?}");
    scenario
}

/// `scenario` with `fault` from the start (top-level keys come before the first table in
/// TOML).
pub fn with_fault(scenario: &str, fault: &str) -> String {
    format!("faults = [\"{fault}\"]\n{scenario}")
}

// JSON.

/// The elements of `list`, a JSON array.
#[track_caller]
pub fn items(list: &Value) -> &[Value] {
    list.as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {list}"))
}

/// The string `field` of each element of `list`, a JSON array.
#[track_caller]
pub fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    items(list)
        .iter()
        .map(|e| {
            e[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field:?} in {e}"))
        })
        .collect()
}

// The simulators' state.

/// The records of a scripted vendor's collection.
pub fn scripted(state: &Value, vendor: &str, collection: &str) -> Vec<Value> {
    items(&state["scripted"][vendor]["collections"][collection]).to_vec()
}

/// Every value Infisical holds for the secret `name`, oldest first.
pub fn secret_versions(state: &Value, name: &str) -> Vec<String> {
    items(&state["infisical"]["secrets"])
        .iter()
        .find(|s| s["secretKey"] == name)
        .unwrap_or_else(|| panic!("no secret {name}"))["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["secretValue"].as_str().unwrap().to_string())
        .collect()
}

/// Every value Infisical holds for the Postmark token, oldest first.
pub fn infisical_versions(state: &Value) -> Vec<String> {
    items(&state["infisical"]["secrets"][0]["versions"])
        .iter()
        .map(|v| v["secretValue"].as_str().unwrap().to_string())
        .collect()
}

/// Infisical's current value of the Postmark token.
pub fn current_infisical(state: &Value) -> String {
    infisical_versions(state).pop().unwrap()
}

/// The Postmark server's live tokens.
pub fn live_tokens(state: &Value) -> Vec<String> {
    items(&state["postmark"]["servers"][0]["ApiTokens"])
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// The live tokens besides the old one: those the runs generated.
pub fn new_tokens(state: &Value) -> Vec<String> {
    live_tokens(state)
        .into_iter()
        .filter(|t| t != OLD_TOKEN)
        .collect()
}

/// The Postmark token in `app`'s Heroku config.
pub fn app_token(state: &Value, app: &str) -> String {
    state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The tokens Infisical or an app holds.
pub fn held_tokens(state: &Value) -> Vec<String> {
    let mut held: Vec<String> = APPS
        .iter()
        .filter_map(|a| {
            state["heroku"]["apps"][*a]["config_vars"]["POSTMARK_SERVER_TOKEN"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    if let Some(v) = state["infisical"]["secrets"][0]["versions"]
        .as_array()
        .and_then(|v| v.last())
    {
        held.push(v["secretValue"].as_str().unwrap_or_default().to_string());
    }
    held
}

/// The requests that change something: all but reads (a log session is how logs are read).
pub fn writes(state: &Value) -> Vec<&Value> {
    items(&state["requests"])
        .iter()
        .filter(|r| r["method"] != "GET" && !r["path"].as_str().unwrap().ends_with("/log-sessions"))
        .collect()
}

/// An app's log lines in the Heroku simulator's state, oldest first.
pub fn app_logs<'a>(state: &'a Value, app: &str) -> Vec<&'a str> {
    items(&state["heroku"]["apps"][app]["logs"])
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect()
}

/// How many requests the simulators served for `method` on `path`.
pub fn served(state: &Value, method: &str, path: &str) -> usize {
    items(&state["requests"])
        .iter()
        .filter(|r| r["method"] == method && r["path"] == path)
        .count()
}

// What must hold.

/// Infisical and every app hold `token`.
#[track_caller]
pub fn assert_everywhere(state: &Value, token: &str) {
    assert_eq!(current_infisical(state), token, "Infisical");
    for app in APPS {
        assert_eq!(app_token(state, app), token, "{app}");
    }
}

/// Every consumer and Infisical are back on the old token, which still works.
#[track_caller]
pub fn assert_back_on_old_token(state: &Value) {
    assert_everywhere(state, OLD_TOKEN);
    assert!(
        live_tokens(state).contains(&OLD_TOKEN.to_string()),
        "old token must survive"
    );
}

/// What must hold at every moment: Infisical's token works; the app never failed to send.
#[track_caller]
pub fn assert_safe(state: &Value, when: &str) {
    assert!(
        live_tokens(state).contains(&current_infisical(state)),
        "{when}: Infisical holds a dead token"
    );
    for app in APPS {
        assert_eq!(
            state["downstream"][app]["failed"], 0,
            "{when}: {app} failed to send"
        );
    }
}

/// [`assert_safe`], and every app's token works too.
#[track_caller]
pub fn assert_every_token_works(state: &Value, when: &str) {
    assert_safe(state, when);
    let live = live_tokens(state);
    for app in APPS {
        assert!(
            live.contains(&app_token(state, app)),
            "{when}: {app} holds a token that does not work"
        );
    }
}

/// After a completed rotation: one new token everywhere, the old one gone.
#[track_caller]
pub fn assert_rotated(state: &Value, when: &str) {
    let current = current_infisical(state);
    assert_ne!(
        current, OLD_TOKEN,
        "{when}: Infisical still holds the old token"
    );
    assert!(
        !live_tokens(state).contains(&OLD_TOKEN.to_string()),
        "{when}: old token not revoked"
    );
    for app in APPS {
        assert_eq!(app_token(state, app), current, "{when}: {app}");
    }
    assert_safe(state, when);
}

/// A resume that recovered every key from Infisical instead of asking the operator.
#[track_caller]
pub fn assert_recovered(resumed: &Output, point: &str) {
    assert!(
        !resumed.stderr.contains("asking instead"),
        "{point}: every key was recovered from Infisical\n{}",
        resumed.stderr
    );
}

// Answers, reports, clean-up.

/// An answers line giving `resume` the token a run generated and had not stored.
pub fn token_answer(token: &str) -> String {
    format!("\"resume.new_token\" = \"{token}\"\n")
}

/// [`token_answer`] for the one new live token; nothing when there is not exactly one.
pub fn new_token_answer(state: &Value) -> String {
    match new_tokens(state).as_slice() {
        [one] => token_answer(one),
        _ => String::new(),
    }
}

/// Each step of a report, with its status.
pub fn step_statuses(report: &Value) -> Vec<(&str, &str)> {
    items(&report["steps"])
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect()
}

/// The ids of a report's steps, in order.
pub fn step_ids(report: &Value) -> Vec<&str> {
    step_statuses(report)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Deletes the tokens nobody holds (a failed run leaves its new one for diagnosis), as an
/// operator would, so the server keeps room for the next rotation.
pub fn delete_unheld_tokens(sandbox: &SandboxProcess) {
    let state = sandbox.state();
    let held = held_tokens(&state);
    for t in live_tokens(&state).iter().filter(|t| !held.contains(t)) {
        sandbox.delete_postmark_token(t);
    }
}

/// Every vendor route the Postmark rotation uses.
pub const ROTATION_ROUTES: &[&str] = &[
    "postmark:GET:/server",
    "postmark:POST:/email",
    "infisical:GET:/api/v4/secrets/POSTMARK_SERVER_TOKEN",
    "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN",
    "heroku:GET:/apps/*/config-vars",
    "heroku:PATCH:/apps/*/config-vars",
    "heroku:DELETE:/apps/*/dynos",
    "heroku:POST:/apps/*/log-sessions",
    "heroku:GET:/sessions/*",
    "raptor:POST:/api/notifications/test-email",
];

/// Sets `app`'s Postmark token through Heroku's API, as someone fixing things by hand would.
pub fn set_app_token(sandbox: &SandboxProcess, app: &str, token: &str) {
    set_app_var(sandbox, app, "POSTMARK_SERVER_TOKEN", token);
}

/// Sets `var` on `app` as someone at the Heroku dashboard would.
pub fn set_app_var(sandbox: &SandboxProcess, app: &str, var: &str, value: &str) {
    let env = &sandbox.env;
    let (status, body) = http(
        &env["HEROKU_HOST"],
        "PATCH",
        &format!("/apps/{app}/config-vars"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/vnd.heroku+json; version=3"),
            (
                "Authorization",
                &format!("Bearer {}", env["HEROKU_API_KEY"]),
            ),
        ],
        &serde_json::json!({ var: value }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
}

// Evidence packs.

/// The pack of `run_id` signed with keys/evidence.key into pack.json by `cmd` (a command in
/// `dir`); its text.
pub fn signed_pack(dir: &Path, cmd: &dyn Fn(&[&str]) -> Output, run_id: &str) -> String {
    signed_pack_exiting(dir, cmd, run_id, Exit::Ok)
}

/// As [`signed_pack`], of a run whose journal or chain does not hold: the pack is written
/// (it is the evidence of that), and the command says so and fails.
pub fn signed_pack_of_broken(dir: &Path, cmd: &dyn Fn(&[&str]) -> Output, run_id: &str) -> String {
    signed_pack_exiting(dir, cmd, run_id, Exit::StepFailed)
}

fn signed_pack_exiting(
    dir: &Path,
    cmd: &dyn Fn(&[&str]) -> Output,
    run_id: &str,
    exit: Exit,
) -> String {
    let out = cmd(&[
        "evidence",
        run_id,
        "--sign",
        "keys/evidence.key",
        "-o",
        "pack.json",
    ]);
    out.exit(exit);
    if exit != Exit::Ok {
        out.stderr_has(&format!(
            "warning: the evidence of run {run_id} records a problem: "
        ));
    }
    std::fs::read_to_string(dir.join("pack.json")).unwrap()
}

/// pack.json, of `text`, verifies with keys/evidence.pub; a copy with `from` changed to `to`
/// does not.
#[track_caller]
pub fn assert_only_the_unedited_pack_verifies(
    dir: &Path,
    cmd: &dyn Fn(&[&str]) -> Output,
    text: &str,
    (from, to): (&str, &str),
) {
    let verify = |pack: &str| cmd(&["evidence", "verify", pack, "--pubkey", "keys/evidence.pub"]);
    verify("pack.json")
        .exit(Exit::Ok)
        .stdout_has("verified: run");
    let edited = text.replacen(from, to, 1);
    assert_ne!(edited, text);
    std::fs::write(dir.join("edited.json"), edited).unwrap();
    verify("edited.json")
        .exit(Exit::StepFailed)
        .stderr_has("NOT verified: the signature does not match its content");
}

// Rehearsals of the shipped rotations (tests/cloudflare.rs, twilio.rs, datadog.rs, neon.rs).

/// `case` for every point at once, each in its own thread (each case makes its own [`Rig`]):
/// a crash loop waits on processes, so side by side it takes the time of its slowest case.
pub fn concurrently<T: Sync>(points: &[T], case: impl Fn(&T) + Sync) {
    std::thread::scope(|s| {
        for p in points {
            let case = &case;
            s.spawn(move || case(p));
        }
    });
}

/// The shipped runbook `name` rehearsed to the end (`--yes`) on its own scenario by
/// ops-test, streamed as JSON, the simulators' final state kept; then `extra`.
pub fn rehearse_shipped(name: &str, extra: &[&str]) -> Output {
    Test::new()
        .rehearse(name)
        .keep_sandbox_state()
        .args(&["--actor", "ops-test", "--json"])
        .args(extra)
        .run()
}

/// `exec RUNBOOK --yes` killed (SIGKILL) at `point` on `rig`, then `resume`, which must
/// complete having recovered every credential (from Infisical, never by asking): the killed
/// run's output and the resumed one's, for the leak checks.
#[track_caller]
pub fn crash_then_resume(rig: &Rig, runbook: &str, point: &str) -> (Output, Output) {
    let crashed = rig.crash(runbook, point);
    let resumed = rig.resume(&[]);
    assert_eq!(
        resumed.code, 0,
        "{point}: resume failed\n{}\n{}",
        resumed.stdout, resumed.stderr
    );
    assert_recovered(&resumed, point);
    (crashed, resumed)
}

/// A dry run's planned writes from its report, as "step function", in order.
pub fn planned_writes(report: &Value) -> Vec<String> {
    items(&report["planned_writes"])
        .iter()
        .map(|w| {
            format!(
                "{} {}",
                w["step"].as_str().unwrap(),
                w["function"].as_str().unwrap()
            )
        })
        .collect()
}

/// The steps `std/rotation` registers for the overlap shape, in order.
pub const ROTATION_STEPS: [&str; 8] = [
    "precheck",
    "create",
    "validate",
    "store",
    "propagate",
    "verify",
    "revoke",
    "audit",
];

/// The shipped runbook `name` under `--dry-run` in the sandbox: it ends, plans exactly
/// `planned` ("step function", in order), and no simulator saw a write. Its output.
#[track_caller]
pub fn assert_dry_run_plans(name: &str, planned: &[&str]) -> Output {
    let out = rehearse_shipped(name, &["--dry-run"]);
    out.exit(Exit::Ok);
    let got = planned_writes(&out.report());
    assert_eq!(got, planned, "{name}: planned writes");
    let state = out.sandbox_state();
    let sent: Vec<&Value> = writes(&state);
    assert!(sent.is_empty(), "{name}: a dry run wrote: {sent:?}");
    assert!(out.audit().is_empty(), "{name}: a dry run audits nothing");
    out
}

/// No value of `values` in `out`'s stdout, stderr or state files.
#[track_caller]
pub fn assert_none_leaked(out: &Output, values: &[&str]) {
    for v in values {
        out.assert_absent(v);
    }
}

/// Infisical's current value of the secret `name`.
pub fn current_secret(state: &Value, name: &str) -> String {
    secret_versions(state, name).pop().unwrap()
}

/// `var` in `app`'s Heroku config ("" when unset).
pub fn app_var(state: &Value, app: &str, var: &str) -> String {
    state["heroku"]["apps"][app]["config_vars"][var]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The requests the simulators served for `vendor` (method, path, status).
pub fn vendor_requests(state: &Value, vendor: &str) -> Vec<(String, String, u64)> {
    items(&state["requests"])
        .iter()
        .filter(|r| r["vendor"] == vendor)
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_string(),
                r["path"].as_str().unwrap_or_default().to_string(),
                r["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

// Replayable randomness.

/// A small deterministic generator (xorshift): the same sequence for the same seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// `t` started with `input` as its whole stdin (then closed), stdout and stderr piped.
pub fn fed(t: &Test, input: &[u8]) -> std::process::Child {
    use std::io::Write;
    let mut child = t
        .command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child
}

/// The one lock file in `locks` (a state dir's `locks/`): the run's.
pub fn lock_file(locks: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(locks)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "lock"))
        .expect("the run's lock file")
}
