//! A small builder that runs the binary in a fresh temp dir with its own state dir, and
//! checks every run for leaked test secrets.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

pub const OLD_TOKEN: &str = "c0ffee00-0000-4000-8000-00000000c001";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies a fixture into the test dir under the same name.
    pub fn fixture(self, name: &str) -> Self {
        std::fs::copy(fixture(name), self.dir.path().join(name)).expect("copy fixture");
        self
    }

    pub fn file(self, name: &str, contents: &str) -> Self {
        let p = self.dir.path().join(name);
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

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.into());
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
        cmd.current_dir(self.dir.path())
            .args(&self.args)
            .env("RUNBOOK_STATE_DIR", self.dir.path().join("state"))
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_PATH")
            .env_remove("RUNBOOK_ACTOR");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
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
                stdin.write_all(s.as_bytes()).expect("write stdin");
            }
        }
        let out = child.wait_with_output().expect("wait for runbook");
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        };
        output.assert_no_canaries();
        output
    }
}

impl Output {
    /// Another command in the same directory (and state dir), e.g. `new` then `check`.
    pub fn next(self) -> Test {
        Test {
            dir: self.dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    /// No canary secret in stdout, stderr, or any file the run wrote.
    pub fn assert_no_canaries(&self) {
        for canary in CANARIES {
            assert!(
                !self.stdout.contains(canary),
                "secret leaked to stdout:\n{}",
                self.stdout
            );
            assert!(
                !self.stderr.contains(canary),
                "secret leaked to stderr:\n{}",
                self.stderr
            );
        }
        for entry in walk(&self.dir.path().join("state")) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for canary in CANARIES {
                assert!(
                    !text.contains(canary),
                    "secret leaked to {}",
                    entry.display()
                );
            }
        }
    }

    pub fn state_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join(name)).unwrap_or_default()
    }

    /// Fails if `value` appears in stdout, stderr or any state file.
    #[track_caller]
    pub fn assert_absent(&self, value: &str) {
        assert!(!value.is_empty());
        assert!(!self.stdout.contains(value), "value leaked to stdout");
        assert!(!self.stderr.contains(value), "value leaked to stderr");
        for entry in walk(&self.dir.path().join("state")) {
            let text =
                String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned();
            assert!(!text.contains(value), "value leaked to {}", entry.display());
        }
    }

    /// A JSON file the run wrote in the test dir (e.g. `--sandbox-state`).
    pub fn read_json(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.state_file("audit.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// --- A separate `runbook sandbox` process, for runs that must survive the engine dying. ---

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Child;

/// A one-shot HTTP/1.1 request on loopback; returns status and body.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the sandbox");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub struct SandboxProcess(Child);

impl SandboxProcess {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `runbook sandbox` and reads the exports it prints.
pub fn start_sandbox(dir: &std::path::Path) -> (SandboxProcess, HashMap<String, String>) {
    start_sandbox_with(dir, &fixture("sop_canary.toml"))
}

/// Starts `runbook sandbox --scenario FILE` and reads the exports it prints.
pub fn start_sandbox_with(
    dir: &std::path::Path,
    scenario: &Path,
) -> (SandboxProcess, HashMap<String, String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["sandbox", "--scenario"])
        .arg(scenario)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = SandboxProcess(child);
    let mut env = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line == "# ready" {
            break;
        }
        let Some(kv) = line.strip_prefix("export ") else {
            continue;
        };
        let (k, v) = kv.split_once('=').unwrap();
        env.insert(k.to_string(), v.trim_matches('\'').to_string());
    }
    (guard, env)
}

/// The simulators' state, from a separate sandbox's control route.
pub fn sandbox_state(env: &HashMap<String, String>) -> serde_json::Value {
    let (status, body) = http(&env["POSTMARK_API_URL"], "GET", "/_sandbox/state", &[], "");
    assert_eq!(status, 200, "sandbox state");
    serde_json::from_str(&body).expect("sandbox state JSON")
}
