//! The test harness shared by every integration test of `runbook`: the real binary run in a
//! temp dir with its own state dir ([`Test`]), a separate `runbook sandbox` process for runs
//! that must outlive the engine ([`SandboxProcess`]), exit codes by name ([`Exit`]), the
//! leaked-secret scan (once, here), and snapshot files for exact diagnostics.

// A harness: panicking with a clear message is how it reports a failed expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod pg;
mod rig;
mod sandbox;
mod snapshot;

pub use rig::Rig;
pub use sandbox::{http, SandboxProcess};
pub use snapshot::assert_snapshot;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Raw secret values tests use; none may ever appear in any output or file.
pub const CANARIES: &[&str] = &[
    "canary-secret-0123456789abcdef",
    "answer-token-0123456789abcdef",
    // tests/fixtures/sop_canary.toml: the current and previous Postmark tokens, credentials.
    "c0ffee00-0000-4000-8000-00000000c001",
    "c0ffee00-0000-4000-8000-00000000c000",
    "canary-infisical-token-0123456789",
    "canary-heroku-key-0123456789",
    "canary-github-token-0123456789",
];

/// The Postmark token the canary scenario starts with.
pub const OLD_TOKEN: &str = "c0ffee00-0000-4000-8000-00000000c001";

/// The canary scenario: the Postmark SOP's world with known secret values (tests/fixtures).
pub const CANARY: &str = "sop_canary.toml";

/// Where `--sandbox-state` leaves the simulators' final state ([`Test::keep_sandbox_state`]).
pub const SANDBOX_STATE: &str = "sandbox.json";

/// The documented exit codes, by name (README.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    StepFailed,
    Usage,
    Aborted,
    Interrupted,
    /// Killed by a signal (the crash tests' SIGKILL): no exit code at all.
    Killed,
}

impl Exit {
    pub fn from_code(code: i32) -> Option<Exit> {
        Some(match code {
            0 => Exit::Ok,
            1 => Exit::StepFailed,
            2 => Exit::Usage,
            3 => Exit::Aborted,
            130 => Exit::Interrupted,
            c if c < 0 => Exit::Killed,
            _ => return None,
        })
    }
}

/// The repository root (the workspace holding `runbooks/` and `tests/`).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The `runbook` binary the tests run: `RUNBOOK_BIN`, else the one cargo built next to the
/// test executable (`target/<profile>/runbook`).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RUNBOOK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let bin = profile_dir.join("runbook");
    assert!(
        bin.is_file(),
        "{} is not built: run the tests with `cargo test`",
        bin.display()
    );
    bin
}

/// Where a test's files live: its own temp dir, or one a rig shares across commands.
enum Dir {
    Owned(tempfile::TempDir),
    Shared(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Owned(t) => t.path(),
            Dir::Shared(p) => p,
        }
    }
}

/// One run of the binary: in a temp dir, with `state/` there as its state dir, never the
/// home dir, and every output scanned for leaked secrets.
pub struct Test {
    dir: Dir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    remove: Vec<String>,
    stdin: Option<String>,
    scan: bool,
}

/// What a run printed and left behind.
pub struct Output {
    /// The exit code, or minus the signal that killed it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    dir: Dir,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Self {
        Self::with_dir(Dir::Owned(tempfile::tempdir().expect("temp dir")))
    }

    /// A run in a directory another test object owns (a rig running several commands).
    pub fn in_dir(dir: &Path) -> Self {
        Self::with_dir(Dir::Shared(dir.to_path_buf()))
    }

    fn with_dir(dir: Dir) -> Self {
        Test {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            remove: Vec::new(),
            stdin: None,
            scan: true,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies a fixture into the test dir under the same name.
    pub fn fixture(self, name: &str) -> Self {
        std::fs::copy(fixture(name), self.path().join(name)).expect("copy fixture");
        self
    }

    pub fn file(self, name: &str, contents: &str) -> Self {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, contents).expect("write file");
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn arg(mut self, arg: impl AsRef<Path>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn envs(mut self, vars: &HashMap<String, String>) -> Self {
        self.env
            .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.remove.push(k.into());
        self
    }

    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.into());
        self
    }

    /// Finds runbooks by name in the repository's `runbooks/` (`RUNBOOK_PATH`).
    pub fn shipped_runbooks(self) -> Self {
        let dir = root().join("runbooks");
        self.env("RUNBOOK_PATH", &dir.to_string_lossy())
    }

    /// `exec RUNBOOK --sandbox` from the shipped runbooks: a rehearsal against simulators in
    /// the process.
    pub fn rehearse(self, runbook: &str) -> Self {
        self.shipped_runbooks()
            .args(&["exec", runbook, "--sandbox"])
    }

    /// The canary scenario copied in and passed as `--scenario`.
    pub fn canary(self) -> Self {
        self.scenario_fixture(CANARY)
    }

    /// A scenario from tests/fixtures copied in and passed as `--scenario`.
    pub fn scenario_fixture(self, name: &str) -> Self {
        self.fixture(name).args(&["--scenario", name])
    }

    /// A scenario of `text` written as NAME and passed as `--scenario`.
    pub fn scenario(self, name: &str, text: &str) -> Self {
        self.file(name, text).args(&["--scenario", name])
    }

    /// `--sandbox-state`: the simulators' final state, read with [`Output::sandbox_state`].
    pub fn keep_sandbox_state(self) -> Self {
        self.args(&["--sandbox-state", SANDBOX_STATE])
    }

    /// An answers file of `text`, passed as `--answers answers.toml`.
    pub fn answers(self, text: &str) -> Self {
        self.file("answers.toml", text)
            .args(&["--answers", "answers.toml"])
    }

    /// Points the run at a separate sandbox: its exports, and its dashboard for the steps a
    /// person would do there.
    pub fn against(self, sandbox: &SandboxProcess) -> Self {
        let url = sandbox.env["POSTMARK_API_URL"].clone();
        self.envs(&sandbox.env)
            .env("RUNBOOK_SANDBOX_DASHBOARD", &url)
    }

    /// Skips the leaked-secret scan (for runs whose secrets the test checks itself).
    pub fn unscanned(mut self) -> Self {
        self.scan = false;
        self
    }

    /// The command, for tests that drive it themselves (a pseudo-terminal).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.current_dir(self.path())
            .args(&self.args)
            .env("RUNBOOK_STATE_DIR", self.path().join("state"))
            .env("NO_COLOR", "1")
            // The home dir is the test's own: no git identity, history or config leaks in.
            .env("HOME", self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("RUNBOOK_PATH")
            .env_remove("RUNBOOK_ACTOR")
            .env_remove("RUNBOOK_CRASH_AT")
            // A developer's shared state never reaches a test: each names its own database.
            .env_remove("RUNBOOK_STATE_URL")
            .env_remove("RUNBOOK_LEASE_SECONDS")
            .env_remove("RUNBOOK_STATE_WAIT_SECONDS")
            .env_remove("RUNBOOK_SANDBOX_DASHBOARD")
            // A developer's SSH identity never signs a test's decisions.
            .env_remove("RUNBOOK_SSH_KEY")
            .env_remove("RUNBOOK_ALLOWED_SIGNERS")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("POSTMARK_DASHBOARD_URL");
        // libpq's variables name a developer's databases: a test sets its own.
        for k in [
            "PGHOST",
            "PGPORT",
            "PGDATABASE",
            "PGUSER",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGSYSCONFDIR",
            "PGSSLMODE",
            "PGSSLROOTCERT",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.remove {
            cmd.env_remove(k);
        }
        cmd
    }

    /// The command started in the background, stdout and stderr piped (read them with
    /// [`assert_finished`]); the test keeps `self`, and so its directory, until then.
    pub fn spawn(&self) -> Child {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runbook")
    }

    pub fn run(self) -> Output {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn runbook");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            if let Some(s) = &self.stdin {
                // The binary may exit before reading it all (a usage error): not our failure.
                let _ = stdin.write_all(s.as_bytes());
            }
        }
        let out = child.wait_with_output().expect("wait for runbook");
        let output = Output {
            code: status_code(out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        };
        if self.scan {
            output.assert_no_canaries();
        }
        output
    }
}

impl Output {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Another command in the same directory (and state dir), e.g. `new` then `check`.
    pub fn next(self) -> Test {
        Test::with_dir(self.dir)
    }

    /// How the run exited, by name; panics on a code outside the contract.
    pub fn exit_code(&self) -> Exit {
        Exit::from_code(self.code).unwrap_or_else(|| {
            panic!(
                "exit code {} is not one of the documented codes\n--- stderr\n{}",
                self.code, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn exit(&self, expected: Exit) -> &Self {
        assert_eq!(
            Exit::from_code(self.code),
            Some(expected),
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// No canary secret in stdout, stderr, or any file the run wrote.
    #[track_caller]
    pub fn assert_no_canaries(&self) {
        for canary in CANARIES {
            self.assert_absent(canary);
        }
    }

    /// Fails if `value` appears in stdout, stderr or any state file.
    #[track_caller]
    pub fn assert_absent(&self, value: &str) {
        assert!(!value.is_empty());
        assert!(
            !self.stdout.contains(value),
            "a secret leaked to stdout:\n{}",
            self.stdout
        );
        assert!(
            !self.stderr.contains(value),
            "a secret leaked to stderr:\n{}",
            self.stderr
        );
        if let Some(file) = find_in_files(&self.path().join("state"), &[value]) {
            panic!("a secret leaked to {}", file.display());
        }
    }

    /// stdout then stderr, for what may be on either.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn state_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join("state").join(name)).unwrap_or_default()
    }

    /// A JSON file the run wrote in the test dir (e.g. `--sandbox-state`).
    pub fn read_json(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The simulators' final state, left by [`Test::keep_sandbox_state`].
    pub fn sandbox_state(&self) -> serde_json::Value {
        self.read_json(SANDBOX_STATE)
    }

    /// The newest run's journal, as the engine wrote it.
    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.journal_path()).unwrap_or_default()
    }

    /// Where the newest run's journal is.
    pub fn journal_path(&self) -> PathBuf {
        self.path()
            .join(format!("state/runs/{}.jsonl", self.last_run_id()))
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        audit_entries(self.path())
    }

    /// The audit log's entries of `action`, oldest first.
    pub fn audited(&self, action: &str) -> Vec<serde_json::Value> {
        self.audit()
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// `--json` of `exec`, `resume` and `rollback`: the stream, one object per line.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("a stream line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The report that ends a `--json` stream.
    pub fn report(&self) -> serde_json::Value {
        self.events()
            .into_iter()
            .rfind(|e| e["type"] == "report")
            .unwrap_or_else(|| panic!("no report ends the stream:\n{}", self.stdout))
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert_has("stderr", &self.stderr, needle);
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert_has("stdout", &self.stdout, needle);
        self
    }

    /// stderr equals `tests/snapshots/NAME.txt` once the temp dir and run ids are masked.
    #[track_caller]
    pub fn stderr_snapshot(&self, name: &str) -> &Self {
        assert_snapshot(name, &self.masked(&self.stderr));
        self
    }

    /// stdout equals `tests/snapshots/NAME.txt`, likewise masked.
    #[track_caller]
    pub fn stdout_snapshot(&self, name: &str) -> &Self {
        assert_snapshot(name, &self.masked(&self.stdout));
        self
    }

    /// Text with what changes between runs replaced by stable placeholders.
    pub fn masked(&self, text: &str) -> String {
        snapshot::mask(text, self.path())
    }

    /// The newest run id in the state dir.
    pub fn last_run_id(&self) -> String {
        last_run_id(&self.path().join("state"))
    }
}

/// Waits for a run [`Test::spawn`] started and checks how it ended: its exit code (-1 when a
/// signal ended it), what its output shows and what it must not. The output, stdout then
/// stderr.
#[track_caller]
pub fn assert_finished(child: Child, code: i32, shown: &[&str], hidden: &[&str]) -> String {
    let out = child.wait_with_output().expect("wait for runbook");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code().unwrap_or(-1), code, "{text}");
    for s in shown {
        assert!(text.contains(s), "{s:?} not shown:\n{text}");
    }
    for s in hidden {
        assert!(!text.contains(s), "{s:?} shown:\n{text}");
    }
    text
}

/// Starts `cmd` with stdout piped and reads it up to the first line holding `needle` (a
/// condition, not a delay); the rest of stdout is the caller's to read.
pub fn start_until(cmd: &mut Command, needle: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn runbook");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    for line in lines.by_ref() {
        if line.expect("stdout").contains(needle) {
            break;
        }
    }
    (child, lines)
}

/// `inner` run behind `stty SETTINGS` (e.g. `echo echoctl`), as an operator's terminal is
/// set: a test's pseudo-terminal starts without them.
pub fn behind_stty(settings: &str, inner: &Command) -> Command {
    behind_sh(&format!("stty {settings}"), inner)
}

/// `inner` run by `sh` once `prelude` (shell code) has succeeded, with `inner`'s
/// environment and directory.
pub fn behind_sh(prelude: &str, inner: &Command) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{prelude} && exec \"$0\" \"$@\""))
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(d) = inner.get_current_dir() {
        cmd.current_dir(d);
    }
    cmd
}

/// Sends `signal` (`libc::SIGINT`, `SIGTERM`...) to a child the test started.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// `text`, the output `stream`, holds `needle`.
#[track_caller]
fn assert_has(stream: &str, text: &str, needle: &str) {
    assert!(text.contains(needle), "{stream} lacks {needle:?}:\n{text}");
}

/// The exit code, or minus the signal that killed the process (`-9` for SIGKILL).
pub fn status_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// The audit log's entries in `dir`'s state dir (none when there is no log).
pub fn audit_entries(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// The newest run id whose journal is in `state_dir`.
pub fn last_run_id(state_dir: &Path) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(state_dir.join("runs"))
        .expect("a runs folder")
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".jsonl")
                .to_string()
        })
        .collect();
    ids.sort();
    ids.pop().expect("at least one run")
}

/// The first file under `dir` (recursively) that contains any of `values`.
pub fn find_in_files(dir: &Path, values: &[&str]) -> Option<PathBuf> {
    walk(dir).into_iter().find(|file| {
        let bytes = std::fs::read(file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        values.iter().any(|v| text.contains(v))
    })
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
