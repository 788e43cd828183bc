//! The Postmark dashboard's API Tokens tab, as plain HTML forms (a rehearsal aid: tokens show).

use super::state::PostmarkState;
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
        .route("/_sandbox/faults", post(control_fault))
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

async fn control_generate(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match act(&s, |pm| pm.generate_token(&name)) {
        Ok(token) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "token": token })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({ "message": e.to_string() })),
        )
            .into_response(),
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
        Err(e) => (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({ "message": e.to_string() })),
        )
            .into_response(),
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

async fn generate(State(s): State<Arc<Shared>>, Path(id): Path<i64>) -> Response {
    let result = act(&s, |pm| {
        let name = pm.server_name(id)?;
        pm.generate_token(&name).map(|_| name)
    });
    match result {
        Ok(name) => Redirect::to(&format!(
            "/dashboard?notice=new+token+for+{}",
            urlencode(&name)
        ))
        .into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Html(render(&s, None, Some(&e.to_string()))),
        )
            .into_response(),
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
        Err(e) => (
            StatusCode::NOT_FOUND,
            Html(render(&s, None, Some(&e.to_string()))),
        )
            .into_response(),
    }
}

fn render(s: &Shared, notice: Option<&str>, error: Option<&str>) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Postmark sandbox — API Tokens</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:.3em .6em}code{font-size:1.05em}\
         .error{color:#b00}.notice{color:#070}</style></head><body>\n\
         <h1>Postmark sandbox</h1>\n<p>Rehearsal only: tokens are shown in full.</p>\n",
    );
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
                "<h2>Server {} (ID {})</h2>\n<h3>API Tokens ({} of {limit})</h3>\n<table><tr><th>Token</th><th></th></tr>\n",
                esc(&server.name),
                server.id,
                server.tokens.len()
            ));
            for t in &server.tokens {
                html.push_str(&format!(
                    "<tr><td><code>{t}</code></td><td><form method=\"post\" action=\"/dashboard/servers/{id}/tokens/delete\">\
                     <input type=\"hidden\" name=\"token\" value=\"{t}\"><button type=\"submit\">Delete</button></form></td></tr>\n",
                    t = esc(t),
                    id = server.id
                ));
            }
            html.push_str(&format!(
                "</table>\n<form method=\"post\" action=\"/dashboard/servers/{}/tokens\"><button type=\"submit\">Generate New</button></form>\n",
                server.id
            ));
        }
    });
    html.push_str("</body></html>\n");
    html
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
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({ "message": e.to_string() })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sandbox;
    use crate::testkit::raw;

    #[tokio::test]
    async fn the_dashboard_lists_generates_and_deletes() {
        let sb = sandbox().await;
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
