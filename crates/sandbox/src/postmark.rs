//! Postmark simulator: `GET/PUT /server`, `POST /email`, `POST /email/batch`, the dashboard.

use super::scenario::{PostmarkScenario, ServerSpec};
use super::{dashboard, header, ts, SandboxError, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) const MISSING_TOKEN: &str = "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token.";
pub(crate) const BAD_TOKEN: &str = "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token.";

/// Postmark's test token: sends validate but are not delivered.
const TEST_TOKEN: &str = "POSTMARK_API_TEST";

/// One simulated server.
pub(crate) struct PmServer {
    pub id: i64,
    pub name: String,
    pub tokens: Vec<String>,
    pub deleted_tokens: Vec<String>,
    pub settings: Map<String, Value>,
    pub inbound_hash: String,
}

/// One accepted email.
pub(crate) struct PmMessage {
    pub message_id: String,
    pub token: String,
    pub server: String,
    pub to: String,
    pub subject: String,
    pub via: String,
}

/// Why a send failed: HTTP status, ErrorCode, Message.
#[derive(Debug, Clone)]
pub(crate) struct SendError {
    pub status: u16,
    pub code: i64,
    pub message: String,
}

pub(crate) struct PostmarkState {
    pub servers: Vec<PmServer>,
    pub messages: Vec<PmMessage>,
    pub token_limit: usize,
}

impl PostmarkState {
    pub fn from_scenario(s: &PostmarkScenario) -> Result<Self, SandboxError> {
        let mut servers = Vec::new();
        for (i, spec) in s.servers.iter().enumerate() {
            servers.push(new_server(spec, i, s.token_limit)?);
        }
        Ok(PostmarkState {
            servers,
            messages: Vec::new(),
            token_limit: s.token_limit,
        })
    }

    pub fn tokens_of(&self, name: &str) -> Option<Vec<String>> {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.tokens.clone())
    }

    fn server_for_token(&self, token: &str) -> Option<&PmServer> {
        self.servers
            .iter()
            .find(|s| s.tokens.iter().any(|t| t == token))
    }

    fn server_mut(&mut self, name: &str) -> Result<&mut PmServer, SandboxError> {
        self.servers
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| SandboxError::UnknownServer { name: name.into() })
    }

    /// Dashboard: a new token, unless the server is at the limit.
    pub fn generate_token(&mut self, server: &str) -> Result<String, SandboxError> {
        let limit = self.token_limit;
        let s = self.server_mut(server)?;
        if s.tokens.len() >= limit {
            return Err(SandboxError::TokenLimit {
                server: server.into(),
                limit,
            });
        }
        let token = uuid::Uuid::new_v4().to_string();
        s.tokens.push(token.clone());
        Ok(token)
    }

    /// Dashboard: deletes a token; later requests with it get 401.
    pub fn delete_token(&mut self, server: &str, token: &str) -> Result<(), SandboxError> {
        let s = self.server_mut(server)?;
        let before = s.tokens.len();
        s.tokens.retain(|t| t != token);
        if s.tokens.len() == before {
            return Err(SandboxError::UnknownToken {
                server: server.into(),
            });
        }
        s.deleted_tokens.push(token.to_string());
        Ok(())
    }

    /// Validates and records one email; `via` says who sent it (API, Raptor …).
    pub fn send(
        &mut self,
        token: Option<&str>,
        email: &Value,
        via: &str,
    ) -> Result<Value, SendError> {
        let token = match token {
            None | Some("") => return Err(unauthorized(MISSING_TOKEN)),
            Some(t) => t,
        };
        let server = if token == TEST_TOKEN {
            None
        } else {
            match self.server_for_token(token) {
                Some(s) => Some(s.name.clone()),
                None => return Err(unauthorized(BAD_TOKEN)),
            }
        };
        let to = validate_email(email)?;
        let message_id = uuid::Uuid::new_v4().to_string();
        if let Some(server) = server {
            self.messages.push(PmMessage {
                message_id: message_id.clone(),
                token: token.to_string(),
                server,
                to: to.clone(),
                subject: str_field(email, "Subject").to_string(),
                via: via.to_string(),
            });
        }
        Ok(json!({
            "To": to,
            "SubmittedAt": ts::postmark(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }))
    }

    /// A token's validity, for Raptor's background sends (no message recorded).
    pub fn check_token(&self, token: Option<&str>) -> Result<(), SendError> {
        match token {
            None | Some("") => Err(unauthorized(MISSING_TOKEN)),
            Some(t) if self.server_for_token(t).is_some() => Ok(()),
            Some(_) => Err(unauthorized(BAD_TOKEN)),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut by_token: BTreeMap<&str, u64> = BTreeMap::new();
        for m in &self.messages {
            *by_token.entry(m.token.as_str()).or_default() += 1;
        }
        let servers: Vec<Value> = self
            .servers
            .iter()
            .map(|s| {
                json!({
                    "ID": s.id,
                    "Name": s.name,
                    "ApiTokens": s.tokens,
                    "DeletedTokens": s.deleted_tokens,
                    "emails_sent": self.messages.iter().filter(|m| m.server == s.name).count(),
                })
            })
            .collect();
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|m| {
                json!({
                    "MessageID": m.message_id,
                    "server": m.server,
                    "token": m.token,
                    "To": m.to,
                    "Subject": m.subject,
                    "via": m.via,
                })
            })
            .collect();
        json!({
            "servers": servers,
            "token_limit": self.token_limit,
            "emails": {"count": self.messages.len(), "by_token": by_token},
            "messages": messages,
        })
    }
}

fn new_server(spec: &ServerSpec, index: usize, limit: usize) -> Result<PmServer, SandboxError> {
    if spec.name.is_empty() {
        return Err(SandboxError::Scenario {
            message: format!("postmark server #{index} has no name"),
        });
    }
    let mut tokens = spec.tokens.clone();
    if tokens.is_empty() {
        tokens.push(uuid::Uuid::new_v4().to_string());
    }
    if spec.fill_tokens_to_limit {
        while tokens.len() < limit {
            tokens.push(uuid::Uuid::new_v4().to_string());
        }
    }
    if tokens.len() > limit {
        return Err(SandboxError::Scenario {
            message: format!(
                "postmark server '{}' has {} tokens, more than the limit of {limit}",
                spec.name,
                tokens.len()
            ),
        });
    }
    let id = spec.id.unwrap_or(4242 + index as i64);
    let inbound_hash = uuid::Uuid::new_v4().simple().to_string();
    let settings = json!({
        "Color": spec.color,
        "SmtpApiActivated": true,
        "RawEmailEnabled": false,
        "DeliveryType": "Live",
        "InboundHookUrl": "",
        "BounceHookUrl": "",
        "OpenHookUrl": "",
        "DeliveryHookUrl": "",
        "PostFirstOpenOnly": false,
        "InboundDomain": "",
        "InboundSpamThreshold": 0,
        "TrackOpens": false,
        "TrackLinks": "None",
        "IncludeBounceContentInHook": true,
        "ClickHookUrl": "",
        "EnableSmtpApiErrorHooks": false,
    });
    Ok(PmServer {
        id,
        name: spec.name.clone(),
        tokens,
        deleted_tokens: Vec::new(),
        settings: settings.as_object().cloned().unwrap_or_default(),
        inbound_hash,
    })
}

fn server_json(s: &PmServer) -> Value {
    let mut out = Map::new();
    out.insert("ID".into(), json!(s.id));
    out.insert("Name".into(), json!(s.name));
    out.insert("ApiTokens".into(), json!(s.tokens));
    out.insert(
        "ServerLink".into(),
        json!(format!("https://postmarkapp.com/servers/{}/streams", s.id)),
    );
    out.insert(
        "InboundAddress".into(),
        json!(format!("{}@inbound.postmarkapp.com", s.inbound_hash)),
    );
    out.insert("InboundHash".into(), json!(s.inbound_hash));
    for (k, v) in &s.settings {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

fn unauthorized(message: &str) -> SendError {
    SendError {
        status: 401,
        code: 10,
        message: message.into(),
    }
}

fn invalid(code: i64, message: impl Into<String>) -> SendError {
    SendError {
        status: 422,
        code,
        message: message.into(),
    }
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Postmark's checks on one email; returns the `To` it will report.
fn validate_email(email: &Value) -> Result<String, SendError> {
    if !email.is_object() {
        return Err(invalid(402, "Received invalid JSON input."));
    }
    let from = str_field(email, "From").trim();
    if from.is_empty() || !from.contains('@') {
        return Err(invalid(300, format!("Invalid 'From' address: '{from}'.")));
    }
    let to = str_field(email, "To").trim();
    let recipients: Vec<&str> = ["To", "Cc", "Bcc"]
        .iter()
        .flat_map(|f| str_field(email, f).split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    if to.is_empty() && recipients.is_empty() {
        return Err(invalid(300, "Zero recipients specified"));
    }
    if let Some(bad) = recipients.iter().find(|r| !r.contains('@')) {
        return Err(invalid(
            300,
            format!("Error parsing 'To': Illegal email address '{bad}'. It must contain the '@' symbol."),
        ));
    }
    if recipients.len() > 50 {
        return Err(invalid(
            300,
            "Maximum of 50 recipients allowed per message.",
        ));
    }
    if str_field(email, "TextBody").is_empty() && str_field(email, "HtmlBody").is_empty() {
        return Err(invalid(
            300,
            "Provide either email TextBody or HtmlBody or both.",
        ));
    }
    match email.get("MessageStream").and_then(Value::as_str) {
        None | Some("outbound") | Some("broadcast") => {}
        Some(_) => {
            return Err(invalid(
                1235,
                "The 'MessageStream' provided does not exist on this server.",
            ))
        }
    }
    Ok(to.to_string())
}

/// `{ErrorCode, Message}` with `status`.
pub(crate) fn error_body(status: u16, code: i64, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"ErrorCode": code, "Message": message}))).into_response()
}

/// The body Postmark sends for a bare status (faults).
pub(crate) fn error_for_status(status: u16) -> Response {
    let (code, message) = match status {
        401 => (10, BAD_TOKEN),
        404 => (12, "Resource not found."),
        415 => (409, "JSON required."),
        422 => (300, "Invalid email request."),
        429 => (
            429,
            "Rate limit exceeded. You should reduce the rate of requests.",
        ),
        503 => (100, "The service is currently down for maintenance."),
        s if s >= 500 => (500, "Internal server error."),
        _ => (0, "Error."),
    };
    error_body(status, code, message)
}

fn send_error(e: SendError) -> Response {
    error_body(e.status, e.code, &e.message)
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/server", get(get_server).put(put_server))
        .route("/email", post(send_email))
        .route("/email/batch", post(send_batch))
        .merge(dashboard::routes())
        .fallback(|| async { error_for_status(404) })
        .with_state(shared)
}

fn token(headers: &HeaderMap) -> Option<&str> {
    header(headers, "x-postmark-server-token").map(str::trim)
}

fn authorized<'a>(w: &'a super::World, headers: &HeaderMap) -> Result<&'a PmServer, Response> {
    match token(headers) {
        None | Some("") => Err(error_body(401, 10, MISSING_TOKEN)),
        Some(t) => w
            .postmark
            .server_for_token(t)
            .ok_or_else(|| error_body(401, 10, BAD_TOKEN)),
    }
}

/// Bodies must be JSON (415 otherwise, as Postmark documents).
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let ct = header(headers, "content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(error_body(
            415,
            409,
            "JSON required. Please set the 'Content-Type' header to 'application/json'.",
        ));
    }
    serde_json::from_slice(body).map_err(|_| error_body(422, 402, "Received invalid JSON input."))
}

async fn get_server(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.with_world(|w| match authorized(w, &headers) {
        Ok(server) => Json(server_json(server)).into_response(),
        Err(r) => r,
    })
}

async fn put_server(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let edit = match json_body(&headers, &body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return error_body(422, 402, "Received invalid JSON input."),
        Err(r) => return r,
    };
    s.with_world(|w| {
        let id = match authorized(w, &headers) {
            Ok(server) => server.id,
            Err(r) => return r,
        };
        let Some(server) = w.postmark.servers.iter_mut().find(|x| x.id == id) else {
            return error_for_status(404);
        };
        for (k, v) in edit {
            match k.as_str() {
                "Name" => match v.as_str() {
                    Some(n) if !n.trim().is_empty() => server.name = n.to_string(),
                    _ => return error_body(422, 607, "Server name is missing or invalid."),
                },
                "ID" | "ApiTokens" | "ServerLink" | "InboundAddress" | "InboundHash"
                | "DeliveryType" => {}
                key if server.settings.contains_key(key) => {
                    server.settings.insert(k, v);
                }
                _ => {}
            }
        }
        Json(server_json(server)).into_response()
    })
}

async fn send_email(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let email = match json_body(&headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    s.with_world(|w| match w.postmark.send(token(&headers), &email, "api") {
        Ok(v) => Json(v).into_response(),
        Err(e) => send_error(e),
    })
}

async fn send_batch(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let emails = match json_body(&headers, &body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return error_body(422, 402, "Received invalid JSON input."),
        Err(r) => return r,
    };
    if emails.len() > 500 {
        return error_body(422, 410, "Too many batch messages. The maximum is 500.");
    }
    s.with_world(|w| {
        if let Err(r) = authorized(w, &headers) {
            return r;
        }
        let results: Vec<Value> = emails
            .iter()
            .map(|e| match w.postmark.send(token(&headers), e, "api-batch") {
                Ok(v) => v,
                Err(e) => json!({"ErrorCode": e.code, "Message": e.message}),
            })
            .collect();
        Json(Value::Array(results)).into_response()
    })
}

#[cfg(test)]
mod tests {
    use crate::testkit::{keys, postmark_check, raw, sorted};
    use crate::{Sandbox, SandboxError, Scenario};
    use serde_json::{json, Value};

    /// vendor-apis.md §1.5, field for field.
    const SERVER_FIELDS: [&str; 22] = [
        "ID",
        "Name",
        "ApiTokens",
        "Color",
        "SmtpApiActivated",
        "RawEmailEnabled",
        "DeliveryType",
        "ServerLink",
        "InboundAddress",
        "InboundHookUrl",
        "BounceHookUrl",
        "OpenHookUrl",
        "DeliveryHookUrl",
        "PostFirstOpenOnly",
        "InboundDomain",
        "InboundHash",
        "InboundSpamThreshold",
        "TrackOpens",
        "TrackLinks",
        "IncludeBounceContentInHook",
        "ClickHookUrl",
        "EnableSmtpApiErrorHooks",
    ];

    async fn sb() -> Sandbox {
        Sandbox::start(Scenario::default().with_postmark_token("pmsim-0001"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn get_server_matches_the_swagger_and_the_field_list() {
        let sb = sb().await;
        let resp = raw()
            .get(format!("{}/server", sb.postmark_url()))
            .header("X-Postmark-Server-Token", "pmsim-0001")
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        postmark_check("ServerConfigurationResponse", &body, true);
        assert_eq!(keys(&body), sorted(&SERVER_FIELDS));
        assert_eq!(body["ApiTokens"], json!(["pmsim-0001"]));
    }

    #[tokio::test]
    async fn post_email_matches_the_swagger() {
        let sb = sb().await;
        let body: Value = raw()
            .post(format!("{}/email", sb.postmark_url()))
            .header("X-Postmark-Server-Token", "pmsim-0001")
            .json(&json!({"From": "noreply@raxx.app", "To": "kris@moosequest.net", "Subject": "s", "TextBody": "t"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        postmark_check("SendEmailResponse", &body, true);
        assert_eq!(
            keys(&body),
            sorted(&["To", "SubmittedAt", "MessageID", "ErrorCode", "Message"])
        );
        let at = body["SubmittedAt"].as_str().unwrap();
        assert!(
            at.ends_with("+00:00") && at.len() == "2014-02-17T07:25:01.4178645+00:00".len(),
            "{at}"
        );
    }

    #[tokio::test]
    async fn missing_and_bad_tokens_get_the_documented_401_bodies() {
        let sb = sb().await;
        let c = raw();
        for (tok, msg) in [
            (None, super::MISSING_TOKEN),
            (Some("wrong"), super::BAD_TOKEN),
        ] {
            let mut req = c.get(format!("{}/server", sb.postmark_url()));
            if let Some(t) = tok {
                req = req.header("X-Postmark-Server-Token", t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401);
            let body: Value = resp.json().await.unwrap();
            postmark_check("StandardPostmarkResponse", &body, true);
            assert_eq!(body, json!({"ErrorCode": 10, "Message": msg}));
        }
    }

    #[tokio::test]
    async fn non_json_bodies_are_415_and_bad_json_422() {
        let sb = sb().await;
        let c = raw();
        let url = format!("{}/email", sb.postmark_url());
        let resp = c
            .post(&url)
            .header("X-Postmark-Server-Token", "pmsim-0001")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415);
        let resp = c
            .post(&url)
            .header("X-Postmark-Server-Token", "pmsim-0001")
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["ErrorCode"], 402);
    }

    #[tokio::test]
    async fn the_token_limit_is_three() {
        let sb = sb().await;
        sb.dashboard_generate_token("raxx-prod").unwrap();
        sb.dashboard_generate_token("raxx-prod").unwrap();
        let e = sb.dashboard_generate_token("raxx-prod").unwrap_err();
        assert!(matches!(e, SandboxError::TokenLimit { limit: 3, .. }));
        assert!(e.to_string().contains("already has 3 API tokens"));
        assert!(matches!(
            sb.dashboard_generate_token("nope"),
            Err(SandboxError::UnknownServer { .. })
        ));
        assert!(matches!(
            sb.dashboard_delete_token("raxx-prod", "nope"),
            Err(SandboxError::UnknownToken { .. })
        ));

        let full = Sandbox::start(Scenario::default().with_tokens_at_limit())
            .await
            .unwrap();
        assert_eq!(full.postmark_tokens("raxx-prod").map(|t| t.len()), Some(3));
        assert!(full.dashboard_generate_token("raxx-prod").is_err());
    }

    #[tokio::test]
    async fn put_server_edits_and_returns_the_server() {
        let sb = sb().await;
        let body: Value = raw()
            .put(format!("{}/server", sb.postmark_url()))
            .header("X-Postmark-Server-Token", "pmsim-0001")
            .json(&json!({"Color": "Red", "TrackOpens": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (body["Color"].as_str(), body["TrackOpens"].as_bool()),
            (Some("Red"), Some(true))
        );
    }

    #[tokio::test]
    async fn the_dashboard_lists_generates_and_deletes() {
        let sb = sb().await;
        let c = raw();
        let page = c
            .get(format!("{}/dashboard", sb.postmark_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("raxx-prod")
                && page.contains("pmsim-0001")
                && page.contains("Generate New")
        );
        let gen = format!("{}/dashboard/servers/4242/tokens", sb.postmark_url());
        let resp = c.post(&gen).send().await.unwrap();
        assert_eq!(resp.status(), 303);
        assert_eq!(sb.postmark_tokens("raxx-prod").map(|t| t.len()), Some(2));
        c.post(&gen).send().await.unwrap();
        let resp = c.post(&gen).send().await.unwrap();
        assert_eq!(resp.status(), 409);
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("already has 3 API tokens"));
        let resp = c
            .post(format!(
                "{}/dashboard/servers/4242/tokens/delete",
                sb.postmark_url()
            ))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=pmsim-0001")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let tokens = sb.postmark_tokens("raxx-prod").unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(!tokens.contains(&"pmsim-0001".to_string()));
    }
}
