//! The downstream app's own API: a test email through its Postmark client.

use super::state::{failure_line, outbound_fault, RaptorState, SOURCE};
use crate::http::json_answer;
use crate::shared::Shared;
use crate::simulator::Routes;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// The app's own refusal: `{"error": what}` with `status`.
fn refusal(status: u16, what: &str) -> Response {
    json_answer(status, json!({ "error": what }))
}

/// What the downstream app serves.
pub(super) const ROUTES: Routes = Routes::new(router, error_for_status);

fn error_for_status(status: u16) -> Response {
    json_answer(status, json!({"error": "injected", "status": status}))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/notifications/test-email", post(test_email_default))
        .route("/{app}/api/notifications/test-email", post(test_email))
        .fallback(|| async { refusal(404, "not_found") })
        .with_state(shared)
}

async fn test_email_default(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let first = s
        .with_state(|st: &mut RaptorState| st.instances.first().map(|i| i.app.clone()))
        .flatten();
    match first {
        Some(app) => send_test(&s, &app, &body),
        None => refusal(404, "no app"),
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
        Err(_) => return refusal(400, "invalid JSON"),
    };
    let Some(to) = req.get("to").and_then(Value::as_str) else {
        return refusal(422, "'to' is required");
    };
    let subject = req
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or("Raptor test email");
    let answer = s.with_world(|w| {
        w.scope(|st: &mut RaptorState, w| {
            let Some(inst) = st.instances.iter_mut().find(|i| i.app == app) else {
                return refusal(404, &format!("no Raptor app '{app}'"));
            };
            // A dyno that is still booting is not serving: the router answers 503 (unless old
            // dynos serve meanwhile: preboot).
            if w.platform_mut().is_some_and(|p| !p.serving(app)) {
                return refusal(503, "Application is starting; try again shortly");
            }
            inst.catch_up(w);
            let email = json!({
                "From": "noreply@raxx.app",
                "To": to,
                "Subject": subject,
                "TextBody": "Raptor notification test email.",
                "MessageStream": "outbound",
            });
            let result = match outbound_fault(&s.faults, app) {
                Some(e) => Err(e),
                None => match w.mail_mut() {
                    Some(mail) => mail.send(inst.token.as_deref(), &email, &format!("raptor:{app}")),
                    None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                },
            };
            inst.test_emails += 1;
            let (line, answer) = match result {
                Ok(v) => {
                    let id = v.get("MessageID").and_then(Value::as_str).unwrap_or("").to_string();
                    (
                        format!("postmark send ok MessageID={id}"),
                        Json(json!({"MessageID": id})).into_response(),
                    )
                }
                Err(e) => (
                    failure_line(&e),
                    (
                        StatusCode::BAD_GATEWAY,
                        Json(json!({"error": "postmark_error", "status": e.status, "ErrorCode": e.code, "message": e.message})),
                    )
                        .into_response(),
                ),
            };
            if let Some(p) = w.platform_mut() {
                // LOG_LEVEL=warn (or error) in the app's config: its sends are not logged,
                // its failures are.
                let quiet = p
                    .config_var(app, "LOG_LEVEL")
                    .is_some_and(|l| matches!(l.to_ascii_lowercase().as_str(), "warn" | "error"));
                if !(quiet && answer.status().is_success()) {
                    p.log(app, SOURCE, &line);
                }
            }
            answer
        })
    });
    answer.unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
