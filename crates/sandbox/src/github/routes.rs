//! The GitHub Actions secrets routes: public key, sealed-box PUT decrypted here, list, delete.

use super::state::{GithubState, Repo};
use crate::http::{header, json_answer};
use crate::shared::Shared;
use crate::simulator::Routes;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;

const DOCS: &str = "https://docs.github.com/rest/actions/secrets";
/// A fixed key id, as GitHub's are: an opaque number-like string.
const KEY_ID: &str = "568250167242549743";

/// `{message, documentation_url, status}`.
fn error_body(status: u16, message: &str) -> Response {
    json_answer(
        status,
        json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
    )
}

/// GitHub's 404, for a repository, a secret or a route it does not have.
fn not_found() -> Response {
    error_body(404, "Not Found")
}

/// The answer `f` gives from repository `owner/repo`, or GitHub's 404.
fn with_repo(
    s: &Shared,
    owner: &str,
    repo: &str,
    f: impl FnOnce(&mut Repo) -> Response,
) -> Response {
    s.respond(|g: &mut GithubState| match g.repo_mut(owner, repo) {
        Some(r) => f(r),
        None => not_found(),
    })
}

/// What the GitHub simulator serves, inside its rate limit.
pub(super) const ROUTES: Routes = Routes::new(router, error_for_status).inside(pooled);

/// GitHub's primary rate limit (`rate_limit`) around every answer, injected faults included.
fn pooled(router: Router, shared: Arc<Shared>) -> Router {
    router.layer(middleware::from_fn_with_state(shared, rate_limit))
}

fn error_for_status(status: u16) -> Response {
    let message = match status {
        401 => "Bad credentials",
        403 => "Resource not accessible by personal access token",
        404 => "Not Found",
        422 => "Validation Failed",
        429 => "API rate limit exceeded",
        503 => "Service Unavailable",
        _ => "Server Error",
    };
    error_body(status, message)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/user/repos", get(user_repos))
        .route("/repos/{owner}/{repo}/actions/secrets", get(list))
        .route(
            "/repos/{owner}/{repo}/actions/secrets/public-key",
            get(public_key),
        )
        .route(
            "/repos/{owner}/{repo}/actions/secrets/{name}",
            get(get_secret).put(put_secret).delete(delete_secret),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth))
        .fallback(|| async { not_found() })
        .with_state(shared)
}

async fn auth(State(s): State<Arc<Shared>>, req: axum::extract::Request, next: Next) -> Response {
    let token = header(req.headers(), "authorization").and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("token "))
            .map(str::trim)
    });
    let accepted = s.with_state(|g: &mut GithubState| token == Some(g.token.as_str()));
    if accepted != Some(true) {
        return error_body(401, "Bad credentials");
    }
    next.run(req).await
}

async fn public_key(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    s.respond(|g: &mut GithubState| {
        let key = base64::engine::general_purpose::STANDARD.encode(g.key.public_key().as_bytes());
        match g.repo_mut(&owner, &repo) {
            Some(_) => Json(json!({"key_id": KEY_ID, "key": key})).into_response(),
            None => not_found(),
        }
    })
}

async fn list(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    with_repo(&s, &owner, &repo, |r| {
        let secrets: Vec<Value> = r
            .secrets
            .iter()
            .map(
                |(k, v)| json!({"name": k, "created_at": v.created_at, "updated_at": v.updated_at}),
            )
            .collect();
        Json(json!({"total_count": secrets.len(), "secrets": secrets})).into_response()
    })
}

/// `GET /user/repos`: the repositories the token can see, `per_page` (30, at most 100) a
/// `page`, with a `Link: <...>; rel="next"` while more remain.
async fn user_repos(
    State(s): State<Arc<Shared>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let per_page = q
        .get("per_page")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let base = s.url_of("github");
    s.respond(|g: &mut GithubState| {
        let names = g.repo_names();
        let body: Vec<Value> = names
            .iter()
            .enumerate()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(i, full)| {
                let (owner, name) = full.split_once('/').unwrap_or(("", full));
                json!({
                    "id": i + 1, "name": name, "full_name": full, "private": true,
                    "owner": {"login": owner, "type": "Organization"},
                    "html_url": format!("https://github.com/{full}"),
                })
            })
            .collect();
        let mut resp = Json(body).into_response();
        if page * per_page < names.len() {
            let next = format!(
                "<{base}/user/repos?per_page={per_page}&page={}>; rel=\"next\"",
                page + 1
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&next) {
                resp.headers_mut().insert("link", v);
            }
        }
        resp
    })
}

async fn get_secret(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, name)): Path<(String, String, String)>,
) -> Response {
    with_repo(&s, &owner, &repo, |r| match r.secret(&name) {
        Some(v) => Json(json!({
            "name": name.to_uppercase(),
            "created_at": v.created_at,
            "updated_at": v.updated_at,
        }))
        .into_response(),
        None => not_found(),
    })
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && !n.to_uppercase().starts_with("GITHUB_")
}

/// Decrypts the sealed box with the simulator's key; 201 on create, 204 on update.
async fn put_secret(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = headers;
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error_body(400, "Problems parsing JSON"),
    };
    if !valid_name(&name) {
        return error_body(422, "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_), must not start with a number, and must not start with GITHUB_.");
    }
    let Some(encrypted) = body.get("encrypted_value").and_then(Value::as_str) else {
        return error_body(
            422,
            "Invalid request.\n\n\"encrypted_value\" wasn't supplied.",
        );
    };
    let Some(key_id) = body.get("key_id").and_then(Value::as_str) else {
        return error_body(422, "Invalid request.\n\n\"key_id\" wasn't supplied.");
    };
    if key_id != KEY_ID {
        return error_body(
            422,
            "Bad request: key_id does not match the repository public key.",
        );
    }
    let Ok(sealed) = base64::engine::general_purpose::STANDARD.decode(encrypted) else {
        return error_body(
            422,
            "Invalid request.\n\n\"encrypted_value\" is not valid base64.",
        );
    };
    let Some(key) = s.with_state(|g: &mut GithubState| g.key.clone()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(plain) = key.unseal(&sealed) else {
        return error_body(
            422,
            "Bad request: the secret could not be decrypted with the repository key.",
        );
    };
    let Ok(value) = String::from_utf8(plain) else {
        return error_body(422, "Bad request: the decrypted secret is not UTF-8.");
    };
    with_repo(&s, &owner, &repo, |r| {
        if r.put_secret(&name, value) {
            (StatusCode::CREATED, Json(json!({}))).into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        }
    })
}

async fn delete_secret(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, name)): Path<(String, String, String)>,
) -> Response {
    with_repo(&s, &owner, &repo, |r| {
        if r.delete_secret(&name) {
            StatusCode::NO_CONTENT.into_response()
        } else {
            not_found()
        }
    })
}

/// GitHub's primary rate limit, outside the fault layer: every answer carries the
/// `x-ratelimit-*` headers of the hour's window, and a spent window answers 403 (or 429)
/// with `x-ratelimit-remaining: 0` until its reset, as GitHub does. Writes also count
/// against the secondary limit, when the scenario sets one.
async fn rate_limit(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let write = req.method() != axum::http::Method::GET;
    let verdict = s
        .with_state(|g: &mut GithubState| {
            if !g.window.take() {
                return Err(None);
            }
            if !write {
                return Ok(());
            }
            g.take_write().map_err(|wait| {
                let ask = g.secondary.as_ref().is_none_or(|l| l.retry_after);
                Some(ask.then_some(wait))
            })
        })
        .unwrap_or(Ok(()));
    let mut resp = match verdict {
        Ok(()) => next.run(req).await,
        // The secondary limit: 403, with `retry-after` unless the scenario leaves it out.
        Err(Some(wait)) => {
            let mut r = (
                StatusCode::FORBIDDEN,
                Json(json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                })),
            )
                .into_response();
            if let Some(secs) = wait {
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from(secs));
            }
            r
        }
        Err(None) => {
            let status = s
                .with_state(|g: &mut GithubState| g.limit_status)
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::FORBIDDEN);
            (
                status,
                Json(json!({
                    "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                })),
            )
                .into_response()
        }
    };
    let (limit, remaining, used, reset) = s
        .with_state(|g: &mut GithubState| {
            (
                g.window.limit,
                g.window.remaining(),
                g.window.used,
                g.window.reset,
            )
        })
        .unwrap_or((0, 0, 0, 0));
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(limit)),
        ("x-ratelimit-remaining", u64::from(remaining)),
        ("x-ratelimit-used", u64::from(used)),
        ("x-ratelimit-reset", reset),
    ] {
        h.insert(name, axum::http::HeaderValue::from(value));
    }
    h.insert(
        "x-ratelimit-resource",
        axum::http::HeaderValue::from_static("core"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::GithubState;
    use crate::testkit::{answer, expect, keys, raw, sent};
    use crate::{Sandbox, Scenario};
    use reqwest::{Method, RequestBuilder};
    use serde_json::{json, Value};

    /// A request with the sandbox's token; `path` follows the API's base URL.
    fn call(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
        raw()
            .request(method, format!("{}{path}", sb.github_url()))
            .bearer_auth(&sb.credentials().github_token)
    }

    /// The secrets route of `raxx/raptor`, with `tail` after it.
    fn secrets(sb: &Sandbox, method: Method, tail: &str) -> RequestBuilder {
        call(
            sb,
            method,
            &format!("/repos/raxx/raptor/actions/secrets{tail}"),
        )
    }

    #[tokio::test]
    async fn a_spent_rate_limit_is_githubs_403_with_its_headers() {
        let mut scenario = Scenario::default().with_github_repo("raxx/raptor");
        scenario.github.rate_limit = 2;
        let sb = Sandbox::start(scenario).await.unwrap();
        let header = |r: &reqwest::Response, n: &str| -> u64 {
            r.headers()[n].to_str().unwrap().parse().unwrap()
        };
        for left in [1, 0] {
            let r = sent(secrets(&sb, Method::GET, "")).await;
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "x-ratelimit-remaining"), left);
            assert_eq!(header(&r, "x-ratelimit-limit"), 2);
        }
        let r = sent(secrets(&sb, Method::GET, "")).await;
        assert_eq!(r.status(), 403);
        assert_eq!(header(&r, "x-ratelimit-remaining"), 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(header(&r, "x-ratelimit-reset") > now);
        let reset = header(&r, "x-ratelimit-reset");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded"));
        // A fixed window: refused until its reset, which does not move.
        let r = sent(secrets(&sb, Method::GET, "")).await;
        assert_eq!(
            (r.status().as_u16(), header(&r, "x-ratelimit-reset")),
            (403, reset)
        );
        // The hour passes: a new window, with the whole limit.
        sb.shared
            .with_state(|g: &mut GithubState| g.window.expire());
        let r = sent(secrets(&sb, Method::GET, "")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-remaining"), 1);
        assert!(header(&r, "x-ratelimit-reset") >= reset);
        assert_eq!(sb.state()["github"]["rate_limit"]["refused"], 2);
    }

    #[tokio::test]
    async fn a_spent_rate_limit_can_be_a_429() {
        let mut scenario = Scenario::default().with_github_repo("raxx/raptor");
        scenario.github.rate_limit = 1;
        scenario.github.rate_limit_status = 429;
        let sb = Sandbox::start(scenario).await.unwrap();
        assert_eq!(sent(secrets(&sb, Method::GET, "")).await.status(), 200);
        let r = sent(secrets(&sb, Method::GET, "")).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        let mut bad = Scenario::default();
        bad.github.rate_limit_status = 500;
        assert!(Sandbox::start(bad).await.is_err());
    }

    /// GitHub's docs: a secondary limit may answer without `retry-after`, and with requests
    /// left in the primary window; the client is to wait at least a minute.
    #[tokio::test]
    async fn a_secondary_limit_may_answer_without_retry_after() {
        let mut scenario = Scenario::default().with_github_repo("raxx/raptor");
        scenario.github.secondary_limit = Some(crate::scenario::SecondaryLimitSpec {
            writes: 1,
            window_secs: 30,
            retry_after: false,
        });
        let sb = Sandbox::start(scenario).await.unwrap();
        let body = json!({"encrypted_value": "AAAA", "key_id": "nope"});
        assert_ne!(
            sent(secrets(&sb, Method::PUT, "/X").json(&body))
                .await
                .status(),
            403
        );
        let second = sent(secrets(&sb, Method::PUT, "/X").json(&body)).await;
        assert_eq!(second.status(), 403);
        assert!(second.headers().get("retry-after").is_none());
        assert_ne!(second.headers()["x-ratelimit-remaining"], "0");
    }

    #[tokio::test]
    async fn public_key_put_and_errors_follow_github() {
        let sb = Sandbox::start(Scenario::default().with_github_repo("raxx/raptor"))
            .await
            .unwrap();
        let (_, key) = answer(secrets(&sb, Method::GET, "/public-key")).await;
        assert_eq!(keys(&key), vec!["key", "key_id"]);
        let put = secrets(&sb, Method::PUT, "/X").json(&json!({"encrypted_value": "AAAA"}));
        let body = expect(422, put).await;
        assert_eq!(
            body["message"],
            "Invalid request.\n\n\"key_id\" wasn't supplied."
        );
        assert!(body["documentation_url"].is_string());
        let bad_token = raw()
            .get(format!(
                "{}/repos/raxx/raptor/actions/secrets",
                sb.github_url()
            ))
            .bearer_auth("bad");
        assert_eq!(expect(401, bad_token).await["message"], "Bad credentials");
        let (_, list) = answer(secrets(&sb, Method::GET, "")).await;
        assert_eq!(
            (
                list["total_count"].as_u64(),
                list["secrets"].as_array().map(Vec::len)
            ),
            (Some(0), Some(0))
        );
    }

    #[tokio::test]
    async fn a_secondary_limit_refuses_writes_with_a_retry_after_and_spares_reads() {
        let mut scenario = Scenario::default().with_github_repo("raxx/raptor");
        scenario.github.secondary_limit = Some(crate::scenario::SecondaryLimitSpec {
            writes: 1,
            window_secs: 30,
            retry_after: true,
        });
        let sb = Sandbox::start(scenario).await.unwrap();
        // Not a valid sealed value: the answer is 422, but the write was counted.
        let body = json!({"encrypted_value": "AAAA", "key_id": "nope"});
        let first = sent(secrets(&sb, Method::PUT, "/X").json(&body)).await;
        assert_ne!(first.status(), 403);
        let second = sent(secrets(&sb, Method::PUT, "/X").json(&body)).await;
        assert_eq!(second.status(), 403);
        let wait: u64 = second.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((29..=30).contains(&wait), "{wait}");
        let msg: Value = second.json().await.unwrap();
        assert!(msg["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit"));
        assert_eq!(sent(secrets(&sb, Method::GET, "")).await.status(), 200);
    }

    #[tokio::test]
    async fn user_repos_page_with_a_link_to_the_next() {
        let sb = Sandbox::start(
            Scenario::default()
                .with_github_repo("raxx/raptor")
                .with_github_repo("raxx/docs"),
        )
        .await
        .unwrap();
        let tok = sb.credentials().github_token.clone();
        let first = sent(call(&sb, Method::GET, "/user/repos?per_page=1")).await;
        let link = first.headers()["link"].to_str().unwrap().to_string();
        assert!(link.ends_with("page=2>; rel=\"next\""), "{link}");
        let page: Value = first.json().await.unwrap();
        assert_eq!(page[0]["full_name"], "raxx/raptor");
        let url = link.trim_start_matches('<').split('>').next().unwrap();
        let second = sent(raw().get(url).bearer_auth(&tok)).await;
        assert!(second.headers().get("link").is_none());
        let page: Value = second.json().await.unwrap();
        assert_eq!(page[0]["full_name"], "raxx/docs");
    }
}
