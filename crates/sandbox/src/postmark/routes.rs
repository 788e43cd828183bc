//! The Postmark API's routes: `GET/PUT /server`, `POST /email`, `POST /email/batch`, and
//! (in `messages`) the outbound message and bounce APIs.

use super::dashboard;
use super::state::{InvalidEdit, PmServer, PostmarkState, BAD_TOKEN, MISSING_TOKEN};
use crate::http::{header, json_answer};
use crate::shared::Shared;
use crate::simulator::Routes;
use crate::world::{Mail, SendError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// `{ErrorCode, Message}` with `status`.
pub(super) fn error_body(status: u16, code: i64, message: &str) -> Response {
    json_answer(status, json!({"ErrorCode": code, "Message": message}))
}

/// What the Postmark simulator serves, inside the pool the scenario may set.
pub(super) const ROUTES: Routes = Routes::new(router, error_for_status).inside(pooled);

/// Every API request takes a token from the pool, fault answers included; an empty pool
/// answers 429 (postmark.js: `RateLimitExceededError`) without reaching the API. Postmark
/// sends no rate-limit headers, so neither does this.
fn pooled(router: Router, shared: Arc<Shared>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        shared,
        |State(s): State<Arc<Shared>>,
         req: axum::extract::Request,
         next: axum::middleware::Next| async move {
            let metered = !crate::http::is_unmetered(req.uri().path());
            let refused = metered
                && s.with_state(|p: &mut PostmarkState| {
                    p.pool.as_mut().is_some_and(|pool| pool.take().is_none())
                })
                .unwrap_or(false);
            if refused {
                return error_for_status(429);
            }
            next.run(req).await
        },
    ))
}

/// The body Postmark sends for a bare status (faults).
fn error_for_status(status: u16) -> Response {
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

/// A body that is not the JSON a route takes.
fn invalid_json() -> Response {
    error_body(422, 402, "Received invalid JSON input.")
}

fn send_error(e: SendError) -> Response {
    error_body(e.status, e.code, &e.message)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/server", get(get_server).put(put_server))
        .route("/email", post(send_email))
        .route("/email/batch", post(send_batch))
        .merge(super::messages::routes())
        .merge(dashboard::routes())
        .fallback(|| async { error_for_status(404) })
        .with_state(shared)
}

fn token(headers: &HeaderMap) -> Option<&str> {
    header(headers, "x-postmark-server-token").map(str::trim)
}

pub(super) fn authorized<'a>(
    pm: &'a PostmarkState,
    headers: &HeaderMap,
) -> Result<&'a PmServer, Response> {
    match token(headers) {
        None | Some("") => Err(error_body(401, 10, MISSING_TOKEN)),
        Some(t) => pm
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
    serde_json::from_slice(body).map_err(|_| invalid_json())
}

async fn get_server(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.respond(|pm: &mut PostmarkState| match authorized(pm, &headers) {
        Ok(server) => Json(server_json(server)).into_response(),
        Err(r) => r,
    })
}

async fn put_server(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let edit = match json_body(&headers, &body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return invalid_json(),
        Err(r) => return r,
    };
    s.respond(|pm: &mut PostmarkState| {
        let id = match authorized(pm, &headers) {
            Ok(server) => server.id,
            Err(r) => return r,
        };
        let taken = edit.get("Name").and_then(Value::as_str).is_some_and(|n| {
            pm.servers
                .iter()
                .any(|x| x.id != id && x.name.eq_ignore_ascii_case(n.trim()))
        });
        let Some(server) = pm.servers.iter_mut().find(|x| x.id == id) else {
            return error_for_status(404);
        };
        let edited = if taken {
            Err(InvalidEdit::NameExists)
        } else {
            server.edit(edit)
        };
        match edited {
            Ok(()) => Json(server_json(server)).into_response(),
            Err(e) => {
                let (code, message) = e.code_and_message();
                error_body(422, code, &message)
            }
        }
    })
}

async fn send_email(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let email = match json_body(&headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    s.respond(
        |pm: &mut PostmarkState| match pm.send(token(&headers), &email, "api") {
            Ok(v) => Json(v).into_response(),
            Err(e) => send_error(e),
        },
    )
}

async fn send_batch(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let emails = match json_body(&headers, &body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return invalid_json(),
        Err(r) => return r,
    };
    if emails.len() > 500 {
        return error_body(422, 410, "Too many batch messages. The maximum is 500.");
    }
    s.respond(|pm: &mut PostmarkState| {
        if let Err(r) = authorized(pm, &headers) {
            return r;
        }
        let results: Vec<Value> = emails
            .iter()
            .map(|e| match pm.send(token(&headers), e, "api-batch") {
                Ok(v) => v,
                Err(e) => json!({"ErrorCode": e.code, "Message": e.message}),
            })
            .collect();
        Json(Value::Array(results)).into_response()
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

#[cfg(test)]
mod tests {
    use super::super::sandbox;
    use crate::testkit::{answer, expect, keys, postmark_check, raw, sent, sorted};
    use crate::Sandbox;
    use reqwest::{Method, RequestBuilder};
    use serde_json::json;

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

    /// A request without a server token.
    fn bare(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
        raw().request(method, format!("{}{path}", sb.postmark_url()))
    }

    /// A request with the known token of server `raxx-prod`.
    fn server_api(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
        bare(sb, method, path).header("X-Postmark-Server-Token", "pmsim-0001")
    }

    /// A pool the scenario sets: two requests pass, the third is refused with the 429 body
    /// postmark.js reads (no rate-limit headers: Postmark sends none), and the state counts it.
    #[tokio::test]
    async fn a_scenario_pool_refuses_with_429_once_spent() {
        let mut scenario = crate::Scenario::default().with_postmark_token("pmsim-0001");
        scenario.postmark.rate_limit = Some(crate::scenario::RateLimitSpec {
            capacity: 2,
            per_minute: 0.0,
        });
        let sb = Sandbox::start(scenario).await.unwrap();
        for _ in 0..2 {
            expect(200, server_api(&sb, Method::GET, "/server")).await;
        }
        let refused = sent(server_api(&sb, Method::GET, "/server")).await;
        assert_eq!(refused.status(), 429);
        assert!(refused.headers().get("retry-after").is_none());
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["ErrorCode"], 429);
        // The dashboard a person uses and the sandbox's control routes are not API traffic:
        // a spent pool leaves them alone (before, the control route answered 429).
        expect(200, bare(&sb, Method::GET, "/_sandbox/state")).await;
        assert_eq!(
            sent(bare(&sb, Method::GET, "/dashboard")).await.status(),
            200
        );
        assert_eq!(sb.state()["postmark"]["rate_limit"]["refused"], 1);
    }

    #[tokio::test]
    async fn get_server_matches_the_swagger_and_the_field_list() {
        let sb = sandbox().await;
        let get = server_api(&sb, Method::GET, "/server").header("Accept", "application/json");
        let body = expect(200, get).await;
        postmark_check("ServerConfigurationResponse", &body, true);
        assert_eq!(keys(&body), sorted(&SERVER_FIELDS));
        assert_eq!(body["ApiTokens"], json!(["pmsim-0001"]));
    }

    #[tokio::test]
    async fn post_email_matches_the_swagger() {
        let sb = sandbox().await;
        let (_, body) = answer(server_api(&sb, Method::POST, "/email")
            .json(&json!({"From": "noreply@raxx.app", "To": "kris@moosequest.net", "Subject": "s", "TextBody": "t"})))
            .await;
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
        let sb = sandbox().await;
        for (tok, msg) in [
            (None, super::MISSING_TOKEN),
            (Some("wrong"), super::BAD_TOKEN),
        ] {
            let mut req = bare(&sb, Method::GET, "/server");
            if let Some(t) = tok {
                req = req.header("X-Postmark-Server-Token", t);
            }
            let body = expect(401, req).await;
            postmark_check("StandardPostmarkResponse", &body, true);
            assert_eq!(body, json!({"ErrorCode": 10, "Message": msg}));
        }
    }

    #[tokio::test]
    async fn non_json_bodies_are_415_and_bad_json_422() {
        let sb = sandbox().await;
        let post = || server_api(&sb, Method::POST, "/email");
        assert_eq!(sent(post().body("x")).await.status(), 415);
        let bad_json = post()
            .header("Content-Type", "application/json")
            .body("{not json");
        assert_eq!(expect(422, bad_json).await["ErrorCode"], 402);
    }

    #[tokio::test]
    async fn put_server_refuses_wrong_types_and_unknown_choices_whole() {
        let sb = sandbox().await;
        for (edit, code) in [
            (json!({"Name": "renamed", "TrackOpens": "yes"}), 402),
            (json!({"Name": "renamed", "TrackLinks": "Sometimes"}), 403),
            (json!({"Name": "renamed", "Color": "Pink"}), 607),
            (json!({"Name": ""}), 608),
            (
                json!({"Name": "renamed", "BounceHookUrl": "ftp://hooks.example"}),
                606,
            ),
            (
                json!({"Name": "renamed", "OpenHookUrl": "http://127.0.0.1:9/x"}),
                606,
            ),
            (json!({"Name": "renamed", "InboundSpamThreshold": 7}), 611),
            (json!({"Bogus": 1}), 609),
            (json!({}), 609),
        ] {
            let body = expect(422, server_api(&sb, Method::PUT, "/server").json(&edit)).await;
            assert_eq!(body["ErrorCode"], code, "{edit}: {body}");
        }
        // Nothing of a refused edit was applied.
        let (_, server) = answer(server_api(&sb, Method::GET, "/server")).await;
        assert_ne!(server["Name"], "renamed");
    }

    #[tokio::test]
    async fn sending_needs_a_confirmed_signature_and_an_active_recipient() {
        let mut scenario = crate::Scenario::default().with_postmark_token("pmsim-0001");
        scenario.postmark.unconfirmed_signatures = vec!["new@raxx.app".into()];
        scenario.postmark.inactive_recipients = vec!["gone@example.com".into()];
        let sb = crate::Sandbox::start(scenario).await.unwrap();
        for (from, to, code) in [
            ("someone@else.example", "ok@example.com", 400),
            ("Raxx <new@raxx.app>", "ok@example.com", 401),
            (
                "Raxx <noreply@raxx.app>",
                "ok@example.com, gone@example.com",
                406,
            ),
        ] {
            let send = server_api(&sb, Method::POST, "/email")
                .json(&json!({"From": from, "To": to, "Subject": "s", "TextBody": "t"}));
            let body = expect(422, send).await;
            assert_eq!(body["ErrorCode"], code, "{from} → {to}: {body}");
        }
    }

    #[tokio::test]
    async fn put_server_edits_and_returns_the_server() {
        let sb = sandbox().await;
        let (_, body) = answer(
            server_api(&sb, Method::PUT, "/server")
                .json(&json!({"Color": "Red", "TrackOpens": true})),
        )
        .await;
        assert_eq!(
            (body["Color"].as_str(), body["TrackOpens"].as_bool()),
            (Some("Red"), Some(true))
        );
    }
}
