//! A rehearsal's dashboard: the engine's `Dashboard`, performed through the sandbox's
//! control routes (the sandbox knows the routes; the engine knows neither them nor the
//! sandbox). An in-process sandbox has one; so has a separate `runbook sandbox` named by
//! `RUNBOOK_SANDBOX_DASHBOARD`, for unattended rehearsals, when every vendor endpoint of the
//! run is on this machine.

use runbook_core::host::dashboard::{Dashboard, DashboardFuture};
use runbook_sandbox::control::{self, ControlRequest};
use runbook_vendors::{Request, Transport, TransportConfig};

pub struct SandboxDashboard {
    postmark_url: String,
    /// The simulated Infisical, when the sandbox is this process's.
    infisical_url: Option<String>,
    /// The vendors' transport (`share_transport`), or one of its own built at the first
    /// request when no vendor was called before it.
    transport: std::cell::OnceCell<Transport>,
}

impl SandboxDashboard {
    /// The dashboard of a sandbox whose Postmark simulator is at `postmark_url`.
    pub fn new(postmark_url: &str, infisical_url: Option<&str>) -> SandboxDashboard {
        SandboxDashboard {
            postmark_url: postmark_url.to_string(),
            infisical_url: infisical_url.map(str::to_string),
            transport: std::cell::OnceCell::new(),
        }
    }

    fn transport(&self) -> Result<Transport, String> {
        if let Some(t) = self.transport.get() {
            return Ok(t.clone());
        }
        let t = Transport::new(TransportConfig::default()).map_err(|e| e.to_string())?;
        Ok(self.transport.get_or_init(|| t).clone())
    }

    /// Sends a control request; its answer's JSON, or the sandbox's reason for refusing.
    fn send(&self, r: ControlRequest) -> DashboardFuture<serde_json::Value> {
        let method = match r.method {
            "GET" => reqwest::Method::GET,
            _ => reqwest::Method::POST,
        };
        let mut req = Request::new("sandbox", method, r.url).idempotent(false);
        if let Some(body) = r.body {
            req = req.json(body);
        }
        let transport = self.transport();
        Box::pin(async move {
            let resp = transport?.send(req).await.map_err(|e| e.to_string())?;
            let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            if resp.is_success() {
                Ok(json)
            } else {
                Err(control::refusal_of(&json))
            }
        })
    }
}

impl Dashboard for SandboxDashboard {
    fn share_transport(&self, transport: &Transport) {
        let _ = self.transport.set(transport.clone());
    }

    fn postmark_new_token(&self, server: &str, label: &str) -> DashboardFuture<String> {
        let answer = self.send(control::postmark_new_token(
            &self.postmark_url,
            server,
            label,
        ));
        Box::pin(async move {
            control::new_token_of(&answer.await?)
                .ok_or_else(|| "the sandbox dashboard answered without a token".to_string())
        })
    }

    fn postmark_delete_token(&self, server: &str, token: &str) -> DashboardFuture<()> {
        let answer = self.send(control::postmark_delete_token(
            &self.postmark_url,
            server,
            token,
        ));
        Box::pin(async move { answer.await.map(|_| ()) })
    }

    fn postmark_newest_token(&self, server: &str) -> DashboardFuture<Option<String>> {
        let answer = self.send(control::state(&self.postmark_url));
        let server = server.to_string();
        Box::pin(async move { Ok(control::newest_token_of(&answer.await?, &server)) })
    }

    fn change_request_hint(&self, request_id: &str) -> Option<String> {
        let url = self.infisical_url.as_deref()?;
        Some(control::infisical_merge_hint(url, request_id))
    }
}
