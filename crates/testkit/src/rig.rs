//! A state dir and a separate `runbook sandbox` shared by every command of a test: the
//! engine dies and comes back, the simulated vendors (and what they hold) stay.

use crate::{find_in_files, fixture, last_run_id, Output, SandboxProcess, Test, CANARIES};
use std::path::Path;
use std::process::Command;

pub struct Rig {
    dir: tempfile::TempDir,
    pub sandbox: SandboxProcess,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    /// A rig with the canary scenario (tests/fixtures/sop_canary.toml).
    pub fn new() -> Rig {
        Self::with_scenario(&fixture("sop_canary.toml"))
    }

    pub fn with_scenario(scenario: &Path) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = SandboxProcess::start_with(dir.path(), scenario);
        Rig { dir, sandbox }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The binary aimed at this rig's sandbox, state dir and the shipped runbooks.
    pub fn test(&self, args: &[&str], extra: &[(&str, &str)]) -> Test {
        let mut t = Test::in_dir(self.dir.path())
            .shipped_runbooks()
            .against(&self.sandbox)
            .args(args);
        for (k, v) in extra {
            t = t.env(k, v);
        }
        t
    }

    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        self.test(args, extra).command()
    }

    pub fn runbook(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.test(args, extra).run()
    }

    pub fn runbook_stdin(&self, args: &[&str], extra: &[(&str, &str)], stdin: &str) -> Output {
        self.test(args, extra).stdin(stdin).run()
    }

    /// The simulators' state.
    pub fn state(&self) -> serde_json::Value {
        self.sandbox.state()
    }

    /// The newest run in the state dir.
    pub fn run_id(&self) -> String {
        last_run_id(&self.dir.path().join("state"))
    }

    /// The canaries and every token the Postmark simulator ever issued.
    pub fn secrets(&self) -> Vec<String> {
        let state = self.state();
        let mut values: Vec<String> = CANARIES.iter().map(|s| s.to_string()).collect();
        for key in ["ApiTokens", "DeletedTokens"] {
            for t in state["postmark"]["servers"][0][key]
                .as_array()
                .into_iter()
                .flatten()
            {
                values.push(t.as_str().unwrap_or_default().to_string());
            }
        }
        values
    }

    /// No canary, and no token the sandbox knows, in any file the engine wrote.
    #[track_caller]
    pub fn assert_no_secrets_on_disk(&self) {
        let secrets = self.secrets();
        let values: Vec<&str> = secrets.iter().map(String::as_str).collect();
        if let Some(file) = find_in_files(&self.dir.path().join("state"), &values) {
            panic!("a secret value is in {}", file.display());
        }
    }
}
