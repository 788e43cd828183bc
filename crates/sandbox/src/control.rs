//! The sandbox's control routes as a client sees them: what a rehearsal does in place of a
//! person at a vendor's dashboard. The routes and the shape of their answers are known
//! here only; whoever performs a dashboard step in a rehearsal builds its request here and
//! reads the answer here.

use serde_json::{json, Value};

/// One request to a control route.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    pub url: String,
    pub body: Option<Value>,
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Generates a token on a simulated Postmark server (the dashboard's API Tokens tab).
pub fn postmark_new_token(postmark_url: &str, server: &str, label: &str) -> ControlRequest {
    ControlRequest {
        method: "POST",
        url: format!("{}/_sandbox/servers/{server}/tokens", base(postmark_url)),
        body: Some(json!({ "name": label })),
    }
}

/// Deletes a token of a simulated Postmark server.
pub fn postmark_delete_token(postmark_url: &str, server: &str, token: &str) -> ControlRequest {
    ControlRequest {
        method: "POST",
        url: format!(
            "{}/_sandbox/servers/{server}/tokens/delete",
            base(postmark_url)
        ),
        body: Some(json!({ "token": token })),
    }
}

/// The simulators' state.
pub fn state(postmark_url: &str) -> ControlRequest {
    ControlRequest {
        method: "GET",
        url: format!("{}/_sandbox/state", base(postmark_url)),
        body: None,
    }
}

/// Moves the scripted vendors' clock `ms` milliseconds forward (`vendor_url` is any
/// scripted vendor's): items expire and `later` changes happen as if that time had passed.
pub fn scripted_advance_clock(vendor_url: &str, ms: u64) -> ControlRequest {
    ControlRequest {
        method: "POST",
        url: format!("{}/_sandbox/clock", base(vendor_url)),
        body: Some(json!({ "advance_ms": ms })),
    }
}

/// The scripted vendors' clock, read on any scripted vendor's address.
pub fn scripted_clock(vendor_url: &str) -> ControlRequest {
    ControlRequest {
        method: "GET",
        url: format!("{}/_sandbox/clock", base(vendor_url)),
        body: None,
    }
}

/// The token a `postmark_new_token` answer carries.
pub fn new_token_of(answer: &Value) -> Option<String> {
    answer["token"].as_str().map(str::to_string)
}

/// The newest token of a simulated Postmark server, from a `state` answer.
pub fn newest_token_of(state: &Value, server: &str) -> Option<String> {
    state["postmark"]["servers"]
        .as_array()?
        .iter()
        .find(|s| s["Name"] == server)?["ApiTokens"]
        .as_array()?
        .last()?
        .as_str()
        .map(str::to_string)
}

/// Why a control route refused, from its answer.
pub fn refusal_of(answer: &Value) -> String {
    answer["message"]
        .as_str()
        .unwrap_or("the sandbox dashboard refused")
        .to_string()
}

/// How an operator merges a simulated Infisical change request.
pub fn infisical_merge_hint(infisical_url: &str, request_id: &str) -> String {
    let domain = base(infisical_url).trim_end_matches("/api");
    format!("merge it with `curl -X POST {domain}/_sandbox/approvals/{request_id}/merge`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sandbox, Scenario};

    /// The requests built here are the ones the routes serve, and the answers read here are
    /// the ones they give.
    #[tokio::test]
    async fn the_control_requests_reach_the_routes_and_their_answers_read_back() {
        let sb = Sandbox::start(Scenario::default()).await.unwrap();
        let client = crate::testkit::raw();
        let send = |r: ControlRequest| {
            let req = match r.method {
                "GET" => client.get(&r.url),
                _ => client.post(&r.url).json(&r.body.unwrap_or_default()),
            };
            async move { req.send().await.unwrap() }
        };
        let server = "raxx-prod";
        let made = send(postmark_new_token(sb.postmark_url(), server, "rotation")).await;
        assert_eq!(made.status(), 201);
        let token = new_token_of(&made.json().await.unwrap()).unwrap();
        let state: Value = send(super::state(sb.postmark_url()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(newest_token_of(&state, server), Some(token.clone()));
        let gone = send(postmark_delete_token(sb.postmark_url(), server, &token)).await;
        assert_eq!(gone.status(), 204);
        let again = send(postmark_delete_token(sb.postmark_url(), server, &token)).await;
        assert_eq!(again.status(), 409);
        assert!(!refusal_of(&again.json().await.unwrap()).is_empty());
        sb.shutdown().await;
    }
}
