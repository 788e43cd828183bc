//! The Postmark dashboard's API Tokens tab and Activity page, as plain HTML forms (a
//! rehearsal aid: tokens show in full, and the one generated last is marked).

use super::state::PostmarkState;
use crate::http::json_answer;
use crate::shared::Shared;
use crate::{FaultRule, SandboxError};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/activity", get(activity))
        .route("/dashboard/servers/{id}/tokens", post(generate))
        .route("/dashboard/servers/{id}/tokens/delete", post(delete))
        // Control routes for automation against a separate `runbook sandbox` process (the
        // engine's dashboard steps use them when RUNBOOK_SANDBOX_DASHBOARD points here).
        .route("/_sandbox/servers/{name}/tokens", post(control_generate))
        .route(
            "/_sandbox/servers/{name}/tokens/delete",
            post(control_delete),
        )
        .route("/_sandbox/state", get(control_state))
        .route(
            "/_sandbox/faults",
            post(control_fault)
                .get(control_faults)
                .delete(control_clear_faults),
        )
}

/// Runs a dashboard action on the Postmark state.
fn act<T>(
    s: &Shared,
    f: impl FnOnce(&mut PostmarkState) -> Result<T, SandboxError>,
) -> Result<T, SandboxError> {
    // Postmark installs its state before it serves: without one, no server exists.
    s.with_state(f).unwrap_or_else(|| {
        Err(SandboxError::UnknownServer {
            name: String::new(),
        })
    })
}

/// A control route's refusal: `{"message": why}` with `status`.
fn control_refusal(status: u16, why: impl std::fmt::Display) -> Response {
    json_answer(status, serde_json::json!({ "message": why.to_string() }))
}

/// The dashboard page again, with `status` and the error that stopped the action.
fn refused_page(s: &Shared, status: StatusCode, error: &SandboxError) -> Response {
    (status, Html(render(s, None, Some(&error.to_string())))).into_response()
}

/// `POST /_sandbox/servers/{name}/tokens`, optionally with `{"name": "..."}` for the token.
async fn control_generate(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let label = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["name"].as_str().map(str::to_string));
    match act(&s, |pm| pm.generate_token(&name, label.as_deref())) {
        Ok(token) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "token": token })),
        )
            .into_response(),
        Err(e) => control_refusal(409, e),
    }
}

async fn control_delete(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    let token = body["token"].as_str().unwrap_or_default().to_string();
    match act(&s, |pm| pm.delete_token(&name, &token)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => control_refusal(409, e),
    }
}

async fn control_state(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(s.state()).into_response()
}

async fn page(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    Html(render(&s, q.get("notice").map(String::as_str), None))
}

async fn generate(
    State(s): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let label = form.get("name").cloned();
    let result = act(&s, |pm| {
        let name = pm.server_name(id)?;
        pm.generate_token(&name, label.as_deref()).map(|_| name)
    });
    match result {
        Ok(name) => Redirect::to(&format!(
            "/dashboard?notice=new+token+for+{}",
            urlencode(&name)
        ))
        .into_response(),
        Err(e) => refused_page(&s, StatusCode::CONFLICT, &e),
    }
}

async fn delete(
    State(s): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").cloned().unwrap_or_default();
    let result = act(&s, |pm| {
        let name = pm.server_name(id)?;
        pm.delete_token(&name, &token)
    });
    match result {
        Ok(()) => Redirect::to("/dashboard?notice=token+deleted").into_response(),
        Err(e) => refused_page(&s, StatusCode::NOT_FOUND, &e),
    }
}

const HEAD: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Postmark sandbox</title>\
     <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
     td,th{border:1px solid #ccc;padding:.3em .6em}code{font-size:1.05em}\
     .error{color:#b00}.notice{color:#070}.new{background:#ffd;font-weight:bold}</style></head><body>\n\
     <h1>Postmark sandbox</h1>\n<p>Rehearsal only: tokens are shown in full. \
     <a href=\"/dashboard\">API Tokens</a> · <a href=\"/dashboard/activity\">Activity</a></p>\n";

fn render(s: &Shared, notice: Option<&str>, error: Option<&str>) -> String {
    let mut html = String::from(HEAD);
    if let Some(n) = notice {
        html.push_str(&format!("<p class=\"notice\">{}</p>\n", esc(n)));
    }
    if let Some(e) = error {
        html.push_str(&format!("<p class=\"error\">{}</p>\n", esc(e)));
    }
    s.with_state(|pm: &mut PostmarkState| {
        let limit = pm.token_limit;
        for server in &pm.servers {
            html.push_str(&format!(
                "<h2>Server {} (ID {})</h2>\n<h3>API Tokens ({} of {limit})</h3>\n<table><tr><th>Name</th><th>Token</th><th></th><th></th></tr>\n",
                esc(&server.name),
                server.id,
                server.tokens.len()
            ));
            for t in &server.tokens {
                let newest = server.newest.as_deref() == Some(t.as_str());
                html.push_str(&format!(
                    "<tr{class}><td>{name}</td><td><code>{t}</code></td><td>{mark}</td><td><form method=\"post\" action=\"/dashboard/servers/{id}/tokens/delete\">\
                     <input type=\"hidden\" name=\"token\" value=\"{t}\"><button type=\"submit\">Delete</button></form></td></tr>\n",
                    class = if newest { " class=\"new\"" } else { "" },
                    name = esc(server.token_names.get(t).map(String::as_str).unwrap_or("")),
                    mark = if newest { "new: generated last" } else { "" },
                    t = esc(t),
                    id = server.id
                ));
            }
            html.push_str(&format!(
                "</table>\n<form method=\"post\" action=\"/dashboard/servers/{}/tokens\">\
                 <label>Name <input name=\"name\" placeholder=\"optional\"></label> <button type=\"submit\">Generate New</button></form>\n",
                server.id
            ));
        }
    });
    html.push_str("</body></html>\n");
    html
}

/// `GET /dashboard/activity`: the emails each server accepted, newest first, with the token
/// that sent them (by name and last characters), so an operator can see the test email went
/// out on the new token.
async fn activity(State(s): State<Arc<Shared>>) -> Html<String> {
    let mut html = String::from(HEAD);
    html.push_str("<h2>Activity</h2>\n");
    s.with_state(|pm: &mut PostmarkState| {
        if pm.messages.is_empty() {
            html.push_str("<p>No emails sent yet.</p>\n");
            return;
        }
        pm.settle();
        html.push_str("<table><tr><th>Submitted</th><th>Server</th><th>From</th><th>To</th><th>Subject</th><th>Sent with token</th><th>Via</th><th>MessageID</th><th>Status</th></tr>\n");
        for m in pm.messages.iter().rev() {
            // Queued until Postmark processed it; then delivered, or bounced for someone.
            let bounced: Vec<String> = m
                .recipients()
                .into_iter()
                .filter(|r| pm.bounce_of(&m.message_id, r).is_some())
                .collect();
            let status = match (&m.processed_at, bounced.is_empty()) {
                (None, _) => "Queued".to_string(),
                (Some(_), true) => "Delivered".to_string(),
                (Some(_), false) => format!("Bounced: {}", bounced.join(", ")),
            };
            let server = pm.servers.iter().find(|sv| sv.name == m.server);
            let name = server
                .and_then(|sv| sv.token_names.get(&m.token))
                .map(|n| format!("{} ", esc(n)))
                .unwrap_or_default();
            let newest = server.is_some_and(|sv| sv.newest.as_deref() == Some(m.token.as_str()));
            let tail: String = m.token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            html.push_str(&format!(
                "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{name}(…{}){new}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                esc(&m.submitted_at),
                esc(&m.server),
                esc(&m.from),
                esc(&m.to),
                esc(&m.subject),
                esc(&tail),
                esc(&m.via),
                esc(&m.message_id),
                esc(&status),
                class = if newest { " class=\"new\"" } else { "" },
                new = if newest { " new" } else { "" },
            ));
        }
        html.push_str("</table>\n");
    });
    html.push_str("</body></html>\n");
    Html(html)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /_sandbox/faults` with `{"fault": "SPEC"}` adds a fault rule to a running sandbox.
async fn control_fault(
    State(s): State<Arc<Shared>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    let spec = body["fault"].as_str().unwrap_or_default();
    match FaultRule::parse(spec) {
        Ok(rule) => {
            s.faults.add(rule);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => control_refusal(422, e),
    }
}

/// `GET /_sandbox/faults`: the rules in force, each with how often it fired.
async fn control_faults(State(s): State<Arc<Shared>>) -> Response {
    let rules: Vec<serde_json::Value> = s
        .faults
        .fired()
        .into_iter()
        .map(|(rule, fired)| serde_json::json!({"rule": rule, "fired": fired}))
        .collect();
    axum::Json(serde_json::json!({ "faults": rules })).into_response()
}

/// `DELETE /_sandbox/faults`: clears every fault rule (the scenario's and those added since).
async fn control_clear_faults(State(s): State<Arc<Shared>>) -> Response {
    let cleared = s.faults.clear();
    axum::Json(serde_json::json!({ "cleared": cleared })).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::sandbox;
    use crate::testkit::{raw, sent, text};

    /// Every verb of the faults control route works: add, list, clear. Before: `DELETE`
    /// answered 405, and nothing listed the rules in force.
    #[tokio::test]
    async fn faults_are_added_listed_and_cleared() {
        let sb = sandbox().await;
        let c = raw();
        let url = format!("{}/_sandbox/faults", sb.postmark_url());
        let add = c
            .post(&url)
            .json(&serde_json::json!({"fault": "postmark:GET:/server=503:once"}));
        assert_eq!(sent(add).await.status(), 204);
        let listed: serde_json::Value = serde_json::from_str(&text(c.get(&url)).await).unwrap();
        assert_eq!(
            listed["faults"].as_array().map(Vec::len),
            Some(1),
            "{listed}"
        );
        assert_eq!(listed["faults"][0]["fired"], 0);
        let cleared = sent(c.delete(&url)).await;
        assert_eq!(cleared.status(), 200);
        let cleared: serde_json::Value = cleared.json().await.unwrap();
        assert_eq!(cleared["cleared"], 1);
        let listed: serde_json::Value = serde_json::from_str(&text(c.get(&url)).await).unwrap();
        assert_eq!(
            listed["faults"].as_array().map(Vec::len),
            Some(0),
            "{listed}"
        );
        // The fault cleared does not fire.
        let server = c
            .get(format!("{}/server", sb.postmark_url()))
            .header("X-Postmark-Server-Token", "pmsim-0001");
        assert_ne!(sent(server).await.status(), 503);
    }

    /// The activity page says what became of each email: queued until Postmark processed
    /// it, then delivered or bounced.
    #[tokio::test]
    async fn the_activity_page_shows_each_emails_status() {
        for (delivery_ms, to, status) in [
            (600_000, "kris@example.com", "Queued"),
            (0, "kris@example.com", "Delivered"),
            (0, "gone@example.com", "Bounced: gone@example.com"),
        ] {
            let mut scenario = crate::Scenario::default().with_postmark_token("pmsim-0001");
            scenario.postmark.delivery_ms = delivery_ms;
            scenario.postmark.bounce = vec!["gone@example.com".into()];
            let sb = crate::Sandbox::start(scenario).await.unwrap();
            let send = raw()
                .post(format!("{}/email", sb.postmark_url()))
                .header("X-Postmark-Server-Token", "pmsim-0001")
                .json(&serde_json::json!({"From": "noreply@raxx.app", "To": to, "Subject": "s", "TextBody": "t"}));
            assert_eq!(sent(send).await.status(), 200);
            let page = text(raw().get(format!("{}/dashboard/activity", sb.postmark_url()))).await;
            let row = page.lines().find(|l| l.contains(to)).unwrap();
            assert!(row.ends_with(&format!("<td>{status}</td></tr>")), "{row}");
        }
    }

    #[tokio::test]
    async fn the_dashboard_lists_generates_and_deletes() {
        let sb = sandbox().await;
        let c = raw();
        let page_at = |path: &str| text(c.get(format!("{}{path}", sb.postmark_url())));
        let page = page_at("/dashboard").await;
        assert!(
            page.contains("raxx-prod")
                && page.contains("pmsim-0001")
                && page.contains("Generate New")
        );
        let gen = format!("{}/dashboard/servers/4242/tokens", sb.postmark_url());
        let form = |body: &'static str| {
            c.post(&gen)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        };
        assert_eq!(sent(form("name=rotation+2026-12-02")).await.status(), 303);
        let tokens = sb.postmark_tokens("raxx-prod").unwrap();
        assert_eq!(tokens.len(), 2);
        let new = tokens[1].clone();
        // The page names the token and marks it as the one generated last.
        let page = page_at("/dashboard").await;
        let row = page
            .lines()
            .find(|l| l.contains(&format!("<code>{new}</code>")))
            .expect("the new token has a row");
        assert!(
            row.contains("rotation 2026-12-02") && row.contains("new: generated last"),
            "{row}"
        );
        let old_row = page.lines().find(|l| l.contains("pmsim-0001")).unwrap();
        assert!(!old_row.contains("new: generated last"), "{old_row}");
        // An email sent with the new token shows on the activity page, with its token.
        let send = c
            .post(format!("{}/email", sb.postmark_url()))
            .header("X-Postmark-Server-Token", &new)
            .json(&serde_json::json!({
                "From": "noreply@raxx.app",
                "To": "rehearsal@sandbox.invalid",
                "Subject": "token check",
                "TextBody": "hi",
            }));
        assert_eq!(sent(send).await.status(), 200);
        let activity = page_at("/dashboard/activity").await;
        let tail = &new[new.len() - 4..];
        let line = activity
            .lines()
            .find(|l| l.contains("token check"))
            .unwrap_or_else(|| panic!("no activity row:\n{activity}"));
        assert!(
            line.contains("rehearsal@sandbox.invalid")
                && line.contains(&format!("rotation 2026-12-02 (…{tail}) new")),
            "{line}"
        );

        sent(form("")).await;
        let resp = sent(form("")).await;
        assert_eq!(resp.status(), 409);
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("already has 3 API tokens"));
        let delete = c
            .post(format!(
                "{}/dashboard/servers/4242/tokens/delete",
                sb.postmark_url()
            ))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=pmsim-0001");
        assert_eq!(sent(delete).await.status(), 303);
        let tokens = sb.postmark_tokens("raxx-prod").unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(!tokens.contains(&"pmsim-0001".to_string()));
    }
}
