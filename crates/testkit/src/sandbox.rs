//! A separate `runbook sandbox` process, for runs that must outlive the engine (crash tests,
//! an operator's rehearsal), and a one-shot HTTP client for its routes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `runbook sandbox` running until dropped, with the exports it printed.
pub struct SandboxProcess {
    child: Child,
    /// `POSTMARK_API_URL`, `HEROKU_HOST`, credentials...: what a shell would `eval`.
    pub env: HashMap<String, String>,
}

impl SandboxProcess {
    /// Starts `runbook sandbox` with the canary scenario.
    pub fn start(dir: &Path) -> SandboxProcess {
        Self::start_with(dir, &crate::fixture(crate::CANARY))
    }

    /// Starts `runbook sandbox --scenario FILE` and reads the exports it prints.
    pub fn start_with(dir: &Path, scenario: &Path) -> SandboxProcess {
        let mut child = Command::new(crate::binary())
            .args(["sandbox", "--scenario"])
            .arg(scenario)
            .env("RUNBOOK_STATE_DIR", dir.join("state"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn runbook sandbox");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut env = HashMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("sandbox output");
            if line == "# ready" {
                break;
            }
            let Some(kv) = line.strip_prefix("export ") else {
                continue;
            };
            let (k, v) = kv.split_once('=').expect("an export line");
            env.insert(k.to_string(), v.trim_matches('\'').to_string());
        }
        assert!(
            env.contains_key("POSTMARK_API_URL"),
            "the sandbox printed no exports"
        );
        SandboxProcess { child, env }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn postmark_url(&self) -> &str {
        &self.env["POSTMARK_API_URL"]
    }

    /// The simulators' state, from the control route.
    pub fn state(&self) -> serde_json::Value {
        let (status, body) = http(self.postmark_url(), "GET", "/_sandbox/state", &[], "");
        assert_eq!(status, 200, "sandbox state");
        serde_json::from_str(&body).expect("sandbox state JSON")
    }

    /// Deletes a token of the Postmark server `raxx-prod`, as an operator would in the
    /// dashboard.
    pub fn delete_postmark_token(&self, token: &str) {
        http(
            self.postmark_url(),
            "POST",
            "/_sandbox/servers/raxx-prod/tokens/delete",
            &[("Content-Type", "application/json")],
            &serde_json::json!({ "token": token }).to_string(),
        );
    }

    /// Deletes the Infisical secret `name` in prod at `/`, as someone would by hand, through
    /// the API with the sandbox's token. Returns the status.
    pub fn delete_infisical_secret(&self, name: &str) -> u16 {
        let auth = format!("Bearer {}", self.env["INFISICAL_TOKEN"]);
        let body = serde_json::json!({
            "projectId": self.env["INFISICAL_PROJECT_ID"],
            "environment": "prod",
            "secretPath": "/",
        });
        let (status, _) = http(
            &self.env["INFISICAL_DOMAIN"],
            "DELETE",
            &format!("/api/v4/secrets/{name}"),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        );
        status
    }

    /// Sets the Infisical secret `name` in prod at `/` to `value`, as someone would by hand
    /// (another rotation of theirs), through the API with the sandbox's token. Returns the
    /// status.
    pub fn set_infisical_secret(&self, name: &str, value: &str) -> u16 {
        let auth = format!("Bearer {}", self.env["INFISICAL_TOKEN"]);
        let body = serde_json::json!({
            "projectId": self.env["INFISICAL_PROJECT_ID"],
            "environment": "prod",
            "secretPath": "/",
            "secretValue": value,
        });
        let (status, _) = http(
            &self.env["INFISICAL_DOMAIN"],
            "PATCH",
            &format!("/api/v4/secrets/{name}"),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        );
        status
    }

    /// Deletes the GitHub Actions secret `name` of `repo`, as someone would by hand, through
    /// the API with the sandbox's token. Returns the status.
    pub fn delete_github_secret(&self, repo: &str, name: &str) -> u16 {
        let auth = format!("Bearer {}", self.env["GITHUB_TOKEN"]);
        let (status, _) = http(
            &self.env["GITHUB_API_URL"],
            "DELETE",
            &format!("/repos/{repo}/actions/secrets/{name}"),
            &[("Authorization", auth.as_str())],
            "",
        );
        status
    }

    /// Merges (`merge: true`) or closes an Infisical change request, as an approver would
    /// in the dashboard. Returns the control route's status.
    pub fn decide_change_request(&self, id: &str, merge: bool) -> u16 {
        let how = if merge { "merge" } else { "close" };
        let (status, _) = http(
            &self.env["INFISICAL_DOMAIN"],
            "POST",
            &format!("/_sandbox/approvals/{id}/{how}"),
            &[],
            "",
        );
        status
    }

    /// Clears every fault rule of the running sandbox (the vendor is healthy again).
    pub fn clear_faults(&self) {
        let (status, body) = http(self.postmark_url(), "DELETE", "/_sandbox/faults", &[], "");
        assert!(status < 300, "clearing the faults: {status} {body}");
    }

    /// Adds a fault rule to the running sandbox.
    pub fn add_fault(&self, spec: &str) {
        let (code, body) = http(
            self.postmark_url(),
            "POST",
            "/_sandbox/faults",
            &[("Content-Type", "application/json")],
            &serde_json::json!({ "fault": spec }).to_string(),
        );
        assert_eq!(code, 204, "fault {spec}: {body}");
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    s.write_all(req.as_bytes()).expect("send the request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read the answer");
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
