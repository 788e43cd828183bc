//! The GitHub Actions secrets routes: public key, sealed-box PUT decrypted here, list, delete.

use super::state::{GithubState, Repo};
use crate::http::{header, json_answer};
use crate::shared::Shared;
use crate::simulator::Routes;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const DOCS: &str = "https://docs.github.com/rest/actions/secrets";
/// A fixed key id, as GitHub's are: an opaque number-like string.
pub(super) const KEY_ID: &str = "568250167242549743";

/// `{message, documentation_url, status}`.
pub(super) fn error_body(status: u16, message: &str) -> Response {
    json_answer(
        status,
        json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
    )
}

/// GitHub's 404, for a repository, a secret or a route it does not have.
pub(super) fn not_found() -> Response {
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
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route("/repos/{owner}/{repo}/actions/secrets", get(list))
        .route(
            "/repos/{owner}/{repo}/actions/secrets/public-key",
            get(public_key),
        )
        .route(
            "/repos/{owner}/{repo}/actions/secrets/{name}",
            get(get_secret).put(put_secret).delete(delete_secret),
        )
        .merge(super::scopes::routes())
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth))
        .merge(super::scopes::control_routes())
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

/// The public key secrets are sealed to (one for every repository, environment and
/// organisation of the sandbox).
pub(super) fn public_key_answer(s: &Shared) -> Response {
    s.respond(|g: &mut GithubState| {
        let key = base64::engine::general_purpose::STANDARD.encode(g.key.public_key().as_bytes());
        Json(json!({"key_id": KEY_ID, "key": key})).into_response()
    })
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

/// A page of a GitHub list: `per_page` (30 by default, at most 100, and at most the
/// scenario's `page_size`) and `page` (from 1).
pub(super) struct Page {
    per_page: usize,
    page: usize,
}

impl Page {
    pub(super) fn of(q: &HashMap<String, String>, cap: Option<u32>) -> Page {
        let cap = cap.map_or(100, |c| (c as usize).clamp(1, 100));
        let num = |name: &str| q.get(name).and_then(|n| n.trim().parse::<usize>().ok());
        Page {
            per_page: num("per_page").unwrap_or(30).clamp(1, cap),
            page: num("page").unwrap_or(1).max(1),
        }
    }

    /// This page's items of `all`.
    pub(super) fn slice<T>(&self, all: Vec<T>) -> Vec<T> {
        all.into_iter()
            .skip((self.page - 1) * self.per_page)
            .take(self.per_page)
            .collect()
    }

    /// `resp` with GitHub's `Link` header to the other pages of `total` items of `url`
    /// (`next`, `last`, `first`, `prev`, as they apply).
    pub(super) fn link(&self, mut resp: Response, url: &str, total: usize) -> Response {
        let last = total.div_ceil(self.per_page).max(1);
        let at = |page: usize, rel: &str| {
            format!(
                "<{url}?per_page={}&page={page}>; rel=\"{rel}\"",
                self.per_page
            )
        };
        let mut parts = Vec::new();
        if self.page < last {
            parts.push(at(self.page + 1, "next"));
            parts.push(at(last, "last"));
        }
        if self.page > 1 {
            parts.push(at(1, "first"));
            parts.push(at((self.page - 1).min(last), "prev"));
        }
        if parts.is_empty() {
            return resp;
        }
        if let Ok(v) = axum::http::HeaderValue::from_str(&parts.join(", ")) {
            resp.headers_mut().insert("link", v);
        }
        resp
    }
}

/// `GET /repos/{owner}/{repo}/actions/secrets`: `{total_count, secrets}` a page at a time.
async fn list(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let url = format!(
        "{}/repos/{owner}/{repo}/actions/secrets",
        s.url_of("github")
    );
    s.respond(|g: &mut GithubState| {
        let page = Page::of(&q, g.page_size);
        let Some(r) = g.repo_mut(&owner, &repo) else {
            return not_found();
        };
        let all = r.secrets.listed();
        let total = all.len();
        let body = json!({"total_count": total, "secrets": page.slice(all)});
        page.link(Json(body).into_response(), &url, total)
    })
}

/// `GET /user/repos`: the repositories the token can see, a page at a time with `Link`.
async fn user_repos(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let url = format!("{}/user/repos", s.url_of("github"));
    s.respond(|g: &mut GithubState| {
        let page = Page::of(&q, g.page_size);
        let names = g.repo_names();
        let total = names.len();
        let all: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, full)| {
                let (owner, name) = full.split_once('/').unwrap_or(("", full));
                json!({
                    "id": i + 1, "name": name, "full_name": full, "private": true,
                    "owner": {"login": owner, "type": "Organization"},
                    "html_url": format!("https://github.com/{full}"),
                })
            })
            .collect();
        page.link(Json(page.slice(all)).into_response(), &url, total)
    })
}

/// `GET /repos/{owner}/{repo}`: the repository, or 404 when this token cannot see it (a
/// private repository it cannot read looks, to it, like one that does not exist).
async fn get_repo(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let full = format!("{owner}/{repo}");
    with_repo(&s, &owner, &repo, |_| {
        Json(json!({
            "name": repo, "full_name": full, "private": true,
            "owner": {"login": owner, "type": "Organization"},
            "html_url": format!("https://github.com/{full}"),
        }))
        .into_response()
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
    body: Bytes,
) -> Response {
    let value = match unsealed(&s, &name, &body) {
        Ok(v) => v.0,
        Err(r) => return r,
    };
    with_repo(&s, &owner, &repo, |r| stored(r.put_secret(&name, value)))
}

/// GitHub's answer to a stored secret: 201 when `created`, else 204.
pub(super) fn stored(created: bool) -> Response {
    if created {
        (StatusCode::CREATED, Json(json!({}))).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// The value of a secret PUT (name `name`, JSON `body`) once decrypted with the simulator's
/// key, and the body; or GitHub's refusal.
pub(super) fn unsealed(s: &Shared, name: &str, body: &[u8]) -> Result<(String, Value), Response> {
    let body: Value =
        serde_json::from_slice(body).map_err(|_| error_body(400, "Problems parsing JSON"))?;
    if !valid_name(name) {
        return Err(error_body(422, "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_), must not start with a number, and must not start with GITHUB_."));
    }
    let Some(encrypted) = body.get("encrypted_value").and_then(Value::as_str) else {
        return Err(error_body(
            422,
            "Invalid request.\n\n\"encrypted_value\" wasn't supplied.",
        ));
    };
    let Some(key_id) = body.get("key_id").and_then(Value::as_str) else {
        return Err(error_body(
            422,
            "Invalid request.\n\n\"key_id\" wasn't supplied.",
        ));
    };
    if key_id != KEY_ID {
        return Err(error_body(
            422,
            "Bad request: key_id does not match the repository public key.",
        ));
    }
    let Ok(sealed) = base64::engine::general_purpose::STANDARD.decode(encrypted) else {
        return Err(error_body(
            422,
            "Invalid request.\n\n\"encrypted_value\" is not valid base64.",
        ));
    };
    let Some(key) = s.with_state(|g: &mut GithubState| g.key.clone()) else {
        return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    let Ok(plain) = key.unseal(&sealed) else {
        return Err(error_body(
            422,
            "Bad request: the secret could not be decrypted with the repository key.",
        ));
    };
    let value = String::from_utf8(plain)
        .map_err(|_| error_body(422, "Bad request: the decrypted secret is not UTF-8."))?;
    Ok((value, body))
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
    // The sandbox's own view is no API traffic: it spends nothing.
    if crate::http::is_unmetered(req.uri().path()) {
        return next.run(req).await;
    }
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
        let base = format!("{}/user/repos", sb.github_url());
        assert_eq!(
            link,
            format!("<{base}?per_page=1&page=2>; rel=\"next\", <{base}?per_page=1&page=2>; rel=\"last\"")
        );
        let page: Value = first.json().await.unwrap();
        assert_eq!(page[0]["full_name"], "raxx/raptor");
        let url = link.trim_start_matches('<').split('>').next().unwrap();
        let second = sent(raw().get(url).bearer_auth(&tok)).await;
        let link = second.headers()["link"].to_str().unwrap().to_string();
        assert!(!link.contains("rel=\"next\""), "{link}");
        assert!(link.contains("page=1>; rel=\"prev\""), "{link}");
        let page: Value = second.json().await.unwrap();
        assert_eq!(page[0]["full_name"], "raxx/docs");
    }

    /// The next page's URL of a `Link` header, if any.
    fn next_of(resp: &reqwest::Response) -> Option<String> {
        let link = resp.headers().get("link")?.to_str().ok()?;
        link.split(", ").find_map(|part| {
            let (url, rel) = part.split_once("; ")?;
            (rel == "rel=\"next\"").then(|| url.trim_matches(['<', '>']).to_string())
        })
    }

    #[tokio::test]
    async fn the_secrets_list_pages_by_per_page_and_the_scenario_caps_the_page() {
        let mut scenario = Scenario::default().with_github_repo("raxx/raptor");
        scenario.github.page_size = Some(2);
        for name in ["A", "B", "C", "D", "E"] {
            scenario.github.repos[0]
                .secrets
                .insert(name.into(), "v".into());
        }
        let sb = Sandbox::start(scenario).await.unwrap();
        let tok = sb.credentials().github_token.clone();
        let mut names = Vec::new();
        let mut resp = sent(secrets(&sb, Method::GET, "?per_page=100")).await;
        let mut pages = 0;
        loop {
            pages += 1;
            let next = next_of(&resp);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["total_count"], 5);
            for s in body["secrets"].as_array().unwrap() {
                names.push(s["name"].as_str().unwrap().to_string());
            }
            match next {
                Some(url) => resp = sent(raw().get(url).bearer_auth(&tok)).await,
                None => break,
            }
        }
        assert_eq!(
            (pages, names),
            (
                3,
                vec!["A", "B", "C", "D", "E"]
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>()
            )
        );
    }
}
