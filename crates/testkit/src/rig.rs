//! A state dir and a separate `runbook sandbox` shared by every command of a test: the
//! engine dies and comes back, the simulated vendors (and what they hold) stay.

use crate::{find_in_files, fixture, last_run_id, Output, SandboxProcess, Test, CANARIES};
use std::path::Path;
use std::process::Command;

pub struct Rig {
    dir: tempfile::TempDir,
    pub sandbox: SandboxProcess,
    /// An answers file every `--yes` command of the rig is given (`Rig::answering`).
    answers: Option<String>,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    /// A rig with the canary scenario (tests/fixtures/sop_canary.toml).
    pub fn new() -> Rig {
        Self::with_scenario(&fixture(crate::CANARY))
    }

    /// A rig whose sandbox starts from a scenario of `text` (written in the rig's directory).
    pub fn with_scenario_text(text: &str) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, text).expect("write scenario");
        Self::start(dir, &scenario)
    }

    pub fn with_scenario(scenario: &Path) -> Rig {
        Self::start(tempfile::tempdir().expect("temp dir"), scenario)
    }

    fn start(dir: tempfile::TempDir, scenario: &Path) -> Rig {
        let sandbox = SandboxProcess::start_with(dir.path(), scenario);
        Rig {
            dir,
            sandbox,
            answers: None,
        }
    }

    /// Every `--yes` command of this rig (`exec`, `crash`, `resume`, `rollback`) also gets
    /// an answers file of `text`: the questions `--yes` does not answer (a judgement).
    pub fn answering(mut self, text: &str) -> Rig {
        self.file("rig-answers.toml", text);
        self.answers = Some("rig-answers.toml".into());
        self
    }

    /// `--answers FILE` when the rig answers (see `answering`).
    fn answer_args(&self) -> Vec<&str> {
        match &self.answers {
            Some(f) => vec!["--answers", f.as_str()],
            None => Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The operator's shell: the sandbox's exports (no automated dashboard), this rig's state
    /// dir and the shipped runbooks.
    pub fn shell(&self, args: &[&str]) -> Test {
        Test::in_dir(self.dir.path())
            .shipped_runbooks()
            .envs(&self.sandbox.env)
            .args(args)
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

    /// `COMMAND FIRST --yes`, then `extra`.
    fn with_yes(&self, command: &str, first: &str, extra: &[&str]) -> Output {
        let mut args = vec![command, first, "--yes"];
        args.extend(self.answer_args());
        args.extend_from_slice(extra);
        self.runbook(&args, &[])
    }

    /// `exec RUNBOOK --yes`, then `extra`.
    pub fn exec(&self, runbook: &str, extra: &[&str]) -> Output {
        self.with_yes("exec", runbook, extra)
    }

    /// A file in the rig's directory, e.g. an answers file for a later command.
    pub fn file(&self, name: &str, contents: &str) {
        std::fs::write(self.path().join(name), contents).expect("write file");
    }

    /// `exec RUNBOOK --yes` killed (SIGKILL) at `point` (`RUNBOOK_CRASH_AT`, e.g.
    /// `after:store` or `inside:propagate`).
    #[track_caller]
    pub fn crash(&self, runbook: &str, point: &str) -> Output {
        let mut args = vec!["exec", runbook, "--yes"];
        args.extend(self.answer_args());
        let out = self.runbook(&args, &[("RUNBOOK_CRASH_AT", point)]);
        assert_eq!(
            out.code, -9,
            "{point}: the engine should have been killed\n{}",
            out.stderr
        );
        out
    }

    /// `resume` of the newest run with `--yes`, then `extra`.
    pub fn resume(&self, extra: &[&str]) -> Output {
        self.with_yes("resume", &self.run_id(), extra)
    }

    /// [`Rig::crash`] at `point`, then `resume`, which must complete.
    #[track_caller]
    pub fn crash_and_resume(&self, runbook: &str, point: &str) -> Output {
        self.crash(runbook, point);
        let resumed = self.resume(&[]);
        assert_eq!(
            resumed.code, 0,
            "{point}: resume failed\n{}\n{}",
            resumed.stdout, resumed.stderr
        );
        resumed
    }

    /// `rollback` of the newest run with `--yes`, then `extra`.
    pub fn rollback(&self, extra: &[&str]) -> Output {
        self.with_yes("rollback", &self.run_id(), extra)
    }

    /// `runs --json`: every run in the state dir, newest first.
    pub fn runs(&self) -> serde_json::Value {
        self.runbook(&["runs", "--json"], &[]).json()
    }

    /// The simulators' state.
    pub fn state(&self) -> serde_json::Value {
        self.sandbox.state()
    }

    /// The newest run in the state dir.
    pub fn run_id(&self) -> String {
        last_run_id(&self.dir.path().join("state"))
    }

    /// The newest run's journal, as the engine wrote it.
    pub fn journal(&self) -> String {
        let path = self
            .path()
            .join(format!("state/runs/{}.jsonl", self.run_id()));
        std::fs::read_to_string(path).expect("the run's journal")
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
