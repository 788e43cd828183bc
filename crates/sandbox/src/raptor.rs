//! Raptor, the downstream app: one instance per Heroku app that holds the Postmark token.
//! It reads the token from its config only when (re)started, like a real process, and sends
//! mail through the Postmark simulator. Every request any simulator serves also makes every
//! instance send one background email, so "production never failed to send" is measurable.

use super::faults::{FaultAction, FaultSet};
use super::heroku::HerokuState;
use super::postmark::SendError;
use super::scenario::TOKEN_VAR;
use super::{Shared, World};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) struct Instance {
    app: String,
    token: Option<String>,
    sent: u64,
    failed: u64,
    failed_401: u64,
    test_emails: u64,
}

pub(crate) struct RaptorState {
    instances: Vec<Instance>,
}

impl RaptorState {
    /// One instance per app whose config holds the token var at start.
    pub fn from_heroku(h: &HerokuState) -> Self {
        RaptorState {
            instances: h
                .apps
                .iter()
                .filter(|a| a.config.contains_key(TOKEN_VAR))
                .map(|a| Instance {
                    app: a.name.clone(),
                    token: a.config.get(TOKEN_VAR).cloned(),
                    sent: 0,
                    failed: 0,
                    failed_401: 0,
                    test_emails: 0,
                })
                .collect(),
        }
    }

    pub fn total_401s(&self) -> u64 {
        self.instances.iter().map(|i| i.failed_401).sum()
    }

    pub fn to_json(&self) -> Value {
        let m: Map<String, Value> = self
            .instances
            .iter()
            .map(|i| {
                (
                    i.app.clone(),
                    json!({"sent": i.sent, "failed": i.failed, "failed_401": i.failed_401, "test_emails": i.test_emails}),
                )
            })
            .collect();
        Value::Object(m)
    }
}

/// The app restarted: re-read the token from its config vars.
pub(crate) fn on_restart(w: &mut World, app: &str) {
    let token = w
        .heroku
        .apps
        .iter()
        .find(|a| a.name == app)
        .and_then(|a| a.config.get(TOKEN_VAR).cloned());
    if let Some(i) = w.raptor.instances.iter_mut().find(|i| i.app == app) {
        i.token = token;
        if let Some(a) = w.heroku.app_mut(app) {
            a.log(
                "app[web.1]",
                "raptor booted; postmark client configured from POSTMARK_SERVER_TOKEN",
            );
        }
    }
}

/// A fault on Raptor's own outbound sends: `raptor:POST:/{app}/postmark/email=401` makes
/// Postmark reject that app's mail (e.g. a token Postmark no longer accepts for it).
fn outbound_fault(faults: &FaultSet, app: &str) -> Option<SendError> {
    match faults.take("raptor", "POST", &format!("/{app}/postmark/email")) {
        Some((FaultAction::Status(status), _)) => Some(SendError {
            status,
            code: if status == 401 { 10 } else { 0 },
            message: "injected: Postmark rejected the app's request".into(),
        }),
        _ => None,
    }
}

/// One background email per instance with its current token.
pub(crate) fn background_tick(w: &mut World, faults: &FaultSet) {
    for idx in 0..w.raptor.instances.len() {
        let inst = &w.raptor.instances[idx];
        let result = match outbound_fault(faults, &inst.app) {
            Some(e) => Err(e),
            None => w.postmark.check_token(inst.token.as_deref()),
        };
        let app = inst.app.clone();
        let inst = &mut w.raptor.instances[idx];
        match result {
            Ok(()) => inst.sent += 1,
            Err(e) => {
                inst.failed += 1;
                if e.status == 401 {
                    inst.failed_401 += 1;
                }
                if let Some(a) = w.heroku.app_mut(&app) {
                    a.log("app[web.1]", &failure_line(e.status, e.code, &e.message));
                }
            }
        }
    }
}

fn failure_line(status: u16, code: i64, message: &str) -> String {
    let name = if status == 401 {
        "InvalidAPIToken"
    } else {
        "PostmarkError"
    };
    format!("postmark error {status} {name}: {message} (ErrorCode {code})")
}

pub(crate) fn error_for_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({"error": "injected", "status": status}))).into_response()
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/notifications/test-email", post(test_email_default))
        .route("/{app}/api/notifications/test-email", post(test_email))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))) })
        .with_state(shared)
}

async fn test_email_default(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let first = s.with_world(|w| w.raptor.instances.first().map(|i| i.app.clone()));
    match first {
        Some(app) => send_test(&s, &app, &body),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no app"}))).into_response(),
    }
}

async fn test_email(
    State(s): State<Arc<Shared>>,
    Path(app): Path<String>,
    body: Bytes,
) -> Response {
    send_test(&s, &app, &body)
}

/// `POST …/api/notifications/test-email {"to","subject"}` → `{"MessageID"}` or 502.
fn send_test(s: &Shared, app: &str, body: &Bytes) -> Response {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid JSON"})),
            )
                .into_response()
        }
    };
    let Some(to) = req.get("to").and_then(Value::as_str) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "'to' is required"})),
        )
            .into_response();
    };
    let subject = req
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or("Raptor test email");
    s.with_world(|w| {
        let Some(idx) = w.raptor.instances.iter().position(|i| i.app == app) else {
            return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no Raptor app '{app}'")}))).into_response();
        };
        let token = w.raptor.instances[idx].token.clone();
        let email = json!({
            "From": "noreply@raxx.app",
            "To": to,
            "Subject": subject,
            "TextBody": "Raptor notification test email.",
            "MessageStream": "outbound",
        });
        let result = match outbound_fault(&s.faults, app) {
            Some(e) => Err(e),
            None => w.postmark.send(token.as_deref(), &email, &format!("raptor:{app}")),
        };
        w.raptor.instances[idx].test_emails += 1;
        match result {
            Ok(v) => {
                let id = v.get("MessageID").and_then(Value::as_str).unwrap_or("").to_string();
                if let Some(a) = w.heroku.app_mut(app) {
                    a.log("app[web.1]", &format!("postmark send ok MessageID={id}"));
                }
                Json(json!({"MessageID": id})).into_response()
            }
            Err(e) => {
                if let Some(a) = w.heroku.app_mut(app) {
                    a.log("app[web.1]", &failure_line(e.status, e.code, &e.message));
                }
                (
                    StatusCode::BAD_GATEWAY,
                    Json(json!({"error": "postmark_error", "status": e.status, "ErrorCode": e.code, "message": e.message})),
                )
                    .into_response()
            }
        }
    })
}
