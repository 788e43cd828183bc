//! The Heroku Platform API's routes: apps, config vars, releases, dynos, log sessions, and
//! the logplex stream a session's `logplex_url` points at.

use super::state::{find_release, restart, HApp, HRelease, HerokuState, LogSession};
use super::Heroku;
use crate::http::{header, json_answer, json_or_empty};
use crate::shared::Shared;
use crate::simulator::{Routes, Simulator};
use crate::ts;
use crate::world::World;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `{id, message}` with `status`.
fn error_body(status: u16, id: &str, message: &str) -> Response {
    json_answer(status, json!({"id": id, "message": message}))
}

/// What the Heroku simulator serves, inside the account's request pool.
pub(super) const ROUTES: Routes = Routes::new(router, error_for_status).inside(pooled);

/// The account's request pool (`rate_limit`) around every answer, injected faults included.
fn pooled(router: Router, shared: Arc<Shared>) -> Router {
    router.layer(middleware::from_fn_with_state(shared, rate_limit))
}

fn error_for_status(status: u16) -> Response {
    let (id, message) = match status {
        400 => ("bad_request", "Invalid request."),
        401 => ("unauthorized", "Invalid credentials provided."),
        403 => ("forbidden", "You do not have access to the app."),
        404 => ("not_found", "Couldn't find that app."),
        406 => (
            "not_acceptable",
            "The requested API version is not acceptable.",
        ),
        409 => ("conflict", "A conflicting change is in progress."),
        416 => (
            "requested_range_not_satisfiable",
            "Requested Range Not Satisfiable",
        ),
        422 => ("invalid_params", "Invalid params."),
        429 => ("rate_limit", "Your account reached the API rate limit"),
        503 => ("service_unavailable", "The API is temporarily unavailable."),
        _ => ("internal_server_error", "Internal server error."),
    };
    error_body(status, id, message)
}

fn app_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"id": "not_found", "message": "Couldn't find that app.", "resource": "app"})),
    )
        .into_response()
}

/// A `Range` header Heroku cannot serve.
fn range_not_satisfiable() -> Response {
    error_body(
        416,
        "requested_range_not_satisfiable",
        "Requested Range Not Satisfiable",
    )
}

/// The answer `f` gives from app `app` (a name or an id), or Heroku's 404 for the app.
fn with_app(s: &Shared, app: &str, f: impl FnOnce(&HerokuState, &HApp) -> Response) -> Response {
    s.respond(|h: &mut HerokuState| match h.app(app) {
        Some(a) => f(h, a),
        None => app_not_found(),
    })
}

/// The same with the app's release `rel` (a version or an id), or Heroku's 404 for either.
fn with_release(
    s: &Shared,
    app: &str,
    rel: &str,
    f: impl FnOnce(&HerokuState, &HApp, &HRelease) -> Response,
) -> Response {
    with_app(s, app, |h, a| match find_release(a, rel) {
        Some(r) => f(h, a, r),
        None => error_body(404, "not_found", "Couldn't find that release."),
    })
}

/// A list, whole (200) or a page of it (206 with `Next-Range: next` to the rest).
fn ranged(body: Vec<Value>, next: Option<String>) -> Response {
    let mut resp = Json(body).into_response();
    if let Some(next) = next {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&next) {
            resp.headers_mut().insert("next-range", v);
        }
    }
    resp
}

/// Restarts `app` and answers as Heroku does: 202 with an empty object.
fn restarted(w: &mut World, app: &str) -> Response {
    restart(w, app);
    (StatusCode::ACCEPTED, Json(json!({}))).into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/apps", get(list_apps))
        .route("/apps/{app}", get(app_info))
        .route(
            "/apps/{app}/config-vars",
            get(get_config).patch(patch_config),
        )
        .route("/apps/{app}/releases", get(list_releases))
        .route("/apps/{app}/releases/{release}", get(release_info))
        .route(
            "/apps/{app}/releases/{release}/config-vars",
            get(release_config),
        )
        .route("/apps/{app}/dynos", delete(restart_all).get(list_dynos))
        .route("/apps/{app}/dynos/{dyno}", delete(restart_one))
        .route("/apps/{app}/formation", get(list_formation))
        .route("/apps/{app}/features", get(list_features))
        .route("/apps/{app}/features/{feature}", get(feature_info))
        .route("/apps/{app}/log-sessions", post(create_log_session))
        .route("/oauth/authorizations", get(list_authorizations))
        .route("/account/rate-limits", get(rate_limits))
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .merge(api)
        .route("/sessions/{id}", get(read_log_session))
        .fallback(|| async { error_body(404, "not_found", "The requested API endpoint was not found. Are you using the right HTTP verb (i.e. `GET` vs. `POST`), and did you specify your intended version with the `Accept` header?") })
        .layer(middleware::map_response(|mut r: Response| async move {
            r.headers_mut().insert(
                "request-id",
                HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("sandbox")),
            );
            r
        }))
        .with_state(shared)
}

/// The account's request pool, outside the fault layer: every request takes a token, fault
/// answers included, and every answer says what remains (`RateLimit-Remaining`); an empty
/// pool answers 429 `rate_limit` without reaching the API.
async fn rate_limit(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    // Asking what remains costs nothing (Heroku: it "doesn't count against the limit").
    let path = req.uri().path();
    let taken = if path == "/account/rate-limits" || crate::http::is_unmetered(path) {
        Some(0)
    } else {
        s.with_state(|h: &mut HerokuState| h.pool.take()).flatten()
    };
    let mut resp = match taken {
        Some(_) => next.run(req).await,
        None => error_body(
            429,
            "rate_limit",
            "Your account reached the API rate limit\nPlease wait a few minutes before making new requests",
        ),
    };
    let remaining = s
        .with_state(|h: &mut HerokuState| h.pool.remaining())
        .unwrap_or(0);
    resp.headers_mut()
        .insert("ratelimit-remaining", HeaderValue::from(remaining));
    resp
}

/// The scope a request needs: config vars are protected, authorizations need `global`.
fn needed_scope(method: &axum::http::Method, path: &str) -> &'static str {
    let read = method == axum::http::Method::GET;
    if path.starts_with("/oauth/") {
        "global"
    } else if path.ends_with("/config-vars") {
        if read {
            "read-protected"
        } else {
            "write-protected"
        }
    } else if read || path.ends_with("/log-sessions") {
        "read"
    } else {
        "write"
    }
}

/// Accept header (version 3), the API key as a Bearer token (Heroku no longer takes Basic
/// auth) and the scope the route needs.
async fn guard(State(s): State<Arc<Shared>>, req: axum::extract::Request, next: Next) -> Response {
    let headers = req.headers();
    let accept = header(headers, "accept").unwrap_or("");
    if !accept.contains("application/vnd.heroku+json; version=3") {
        return error_body(
            406,
            "not_acceptable",
            "The requested API version is not acceptable. Please specify `Accept: application/vnd.heroku+json; version=3`.",
        );
    }
    let key = header(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let need = needed_scope(req.method(), req.uri().path());
    // None: no such key; Some(false): the key lacks the scope.
    let allowed = s
        .with_state(|h: &mut HerokuState| {
            (key.as_deref() == Some(h.api_key.as_str())).then(|| h.grants(need))
        })
        .flatten();
    match allowed {
        Some(true) => next.run(req).await,
        Some(false) => error_body(
            403,
            "forbidden",
            &format!("This token does not have the {need} scope needed for this request."),
        ),
        None => error_body(401, "unauthorized", "Invalid credentials provided."),
    }
}

async fn list_authorizations(State(s): State<Arc<Shared>>) -> Response {
    s.respond(|h: &mut HerokuState| Json(json!([h.authorization()])).into_response())
}

/// Sandbox ids of the stack, the region and the two generations (made up, but stable).
const STACK_ID: &str = "0c1f7c3e-2d4b-4a6e-9f10-000000000024";
const REGION_ID: &str = "5e2c8a1d-7b3f-4c9e-8d21-0000000000a1";
const CEDAR_ID: &str = "9b4d2e6f-1a3c-4e5b-8f70-00000000ced0";
const FIR_ID: &str = "9b4d2e6f-1a3c-4e5b-8f70-0000000000f1";

/// The whole app object: the Platform API answers every property of the schema's `app`.
/// An app as the Platform API describes one (`definitions/app`).
fn app_json(h: &HerokuState, a: &super::state::HApp) -> Value {
    let released_at = a.releases.last().map(|r| r.created_at.clone());
    let generation_id = if a.generation == "fir" {
        FIR_ID
    } else {
        CEDAR_ID
    };
    json!({
        "acm": false, "archived_at": null, "buildpack_provided_description": null,
        "build_stack": {"id": STACK_ID, "name": "heroku-24"},
        "created_at": a.created_at,
        "generation": {"id": generation_id, "name": a.generation},
        "git_url": format!("https://git.heroku.com/{}.git", a.name),
        "id": a.id, "internal_routing": null, "maintenance": false, "name": a.name,
        "owner": {"email": h.user_email, "id": h.user_id},
        "organization": null, "team": null, "space": null,
        "region": {"id": REGION_ID, "name": "us"},
        "released_at": released_at,
        "repo_size": null, "slug_size": null,
        "stack": {"id": STACK_ID, "name": "heroku-24"},
        "updated_at": released_at.as_deref().unwrap_or(&a.created_at),
        "web_url": format!("https://{}.herokuapp.com/", a.name),
    })
}

async fn app_info(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    with_app(&s, &app, |h, a| Json(app_json(h, a)).into_response())
}

/// `GET /apps`: the apps the key can see, by name, in pages (`Range: name [start]..;
/// max=N`, 200 by default; 206 with `Next-Range` while more remain).
async fn list_apps(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (mut after, mut from, mut max) = (None::<String>, None::<String>, 200usize);
    if let Some(range) = header(&headers, "range") {
        let (spec, opts) = range.split_once(';').unwrap_or((range, ""));
        let Some(bounds) = spec.trim().strip_prefix("name") else {
            return range_not_satisfiable();
        };
        let start = bounds
            .trim()
            .split_once("..")
            .map_or(bounds.trim(), |(a, _)| a)
            .trim();
        match start.strip_prefix(']') {
            Some(name) => after = Some(name.trim().to_string()),
            None if !start.is_empty() => from = Some(start.to_string()),
            None => {}
        }
        for o in opts.split(',') {
            match o.trim().split_once('=') {
                Some(("max", n)) => match n.trim().parse::<usize>() {
                    Ok(n) => max = n.clamp(1, 1000),
                    Err(_) => return range_not_satisfiable(),
                },
                Some(("order", _)) => {}
                None if o.trim().is_empty() => {}
                _ => return range_not_satisfiable(),
            }
        }
    }
    s.respond(|h: &mut HerokuState| {
        let max = max.min(h.page_size);
        let mut names = h.app_names();
        names.sort();
        names.retain(|n| {
            after.as_ref().is_none_or(|a| n > a) && from.as_ref().is_none_or(|f| n >= f)
        });
        let truncated = names.len() > max;
        names.truncate(max);
        let body: Vec<Value> = names
            .iter()
            .filter_map(|n| h.app(n).map(|a| app_json(h, a)))
            .collect();
        let next = names
            .last()
            .filter(|_| truncated)
            .map(|last| format!("name ]{last}..; max={max}"));
        ranged(body, next)
    })
}

async fn get_config(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    with_app(&s, &app, |_, a| Json(json!(a.config)).into_response())
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Merge; `null` deletes. A real change makes a release and restarts the app.
async fn patch_config(
    State(s): State<Arc<Shared>>,
    Path(app): Path<String>,
    body: Bytes,
) -> Response {
    let changes: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        _ => {
            return error_body(
                400,
                "bad_request",
                "Invalid JSON: expected an object of config vars.",
            )
        }
    };
    for (k, v) in &changes {
        if !valid_key(k) {
            return error_body(
                422,
                "invalid_params",
                &format!("Invalid config var name: {k}"),
            );
        }
        if !(v.is_string() || v.is_null()) {
            return error_body(
                422,
                "invalid_params",
                &format!("Invalid value for {k}: must be a string or null"),
            );
        }
    }
    s.with_world(|w| {
        let Some(heroku) = w.get_mut::<HerokuState>() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let Some((config, changed)) = heroku.patch_config(&app, changes) else {
            return app_not_found();
        };
        if let Some(name) = changed {
            restart(w, &name);
        }
        Json(json!(config)).into_response()
    })
}

/// `Range: version [start]..[end]; max=N, order=desc` (either order, `,` or `, `).
struct Range {
    start: Option<(u64, bool)>,
    max: usize,
    desc: bool,
}

fn parse_range(h: Option<&str>) -> Result<Range, Response> {
    let mut r = Range {
        start: None,
        max: 200,
        desc: false,
    };
    let Some(h) = h else { return Ok(r) };
    let (spec, opts) = h.split_once(';').unwrap_or((h, ""));
    let spec = spec.trim();
    let bounds = spec
        .strip_prefix("version")
        .or_else(|| spec.strip_prefix("id"))
        .ok_or_else(range_not_satisfiable)?
        .trim();
    let (start, _end) = bounds.split_once("..").unwrap_or((bounds, ""));
    let start = start.trim();
    if !start.is_empty() {
        let (exclusive, n) = match start.strip_prefix(']') {
            Some(n) => (true, n),
            None => (false, start),
        };
        r.start = Some((
            n.trim().parse().map_err(|_| range_not_satisfiable())?,
            exclusive,
        ));
    }
    for o in opts.split(',') {
        match o.trim().split_once('=') {
            Some(("max", n)) => {
                r.max = n
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| range_not_satisfiable())?
                    .clamp(1, 1000)
            }
            Some(("order", o)) => r.desc = o.trim() == "desc",
            None if o.trim().is_empty() => {}
            _ => return Err(range_not_satisfiable()),
        }
    }
    Ok(r)
}

async fn list_releases(
    State(s): State<Arc<Shared>>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Response {
    let range = match parse_range(header(&headers, "range")) {
        Ok(r) => r,
        Err(e) => return e,
    };
    with_app(&s, &app, |h, a| {
        let max = range.max.min(h.page_size);
        let mut list: Vec<&HRelease> = a.releases.iter().collect();
        if range.desc {
            list.reverse();
        }
        if let Some((n, exclusive)) = range.start {
            list.retain(|r| match (range.desc, exclusive) {
                (false, false) => r.version >= n,
                (false, true) => r.version > n,
                (true, false) => r.version <= n,
                (true, true) => r.version < n,
            });
        }
        let truncated = list.len() > max;
        list.truncate(max);
        let body: Vec<Value> = list.iter().map(|r| h.release_json(a, r)).collect();
        let order = if range.desc { "desc" } else { "asc" };
        let next = list
            .last()
            .filter(|_| truncated)
            .map(|last| format!("version ]{}..; max={}, order={order}", last.version, max));
        ranged(body, next)
    })
}

async fn release_info(
    State(s): State<Arc<Shared>>,
    Path((app, rel)): Path<(String, String)>,
) -> Response {
    with_release(&s, &app, &rel, |h, a, r| {
        Json(h.release_json(a, r)).into_response()
    })
}

async fn release_config(
    State(s): State<Arc<Shared>>,
    Path((app, rel)): Path<(String, String)>,
) -> Response {
    with_release(&s, &app, &rel, |_, _, r| {
        Json(json!(r.config)).into_response()
    })
}

async fn restart_all(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    s.with_world(|w| {
        if w.get::<HerokuState>().and_then(|h| h.app(&app)).is_none() {
            return app_not_found();
        }
        restarted(w, &app)
    })
}

async fn restart_one(
    State(s): State<Arc<Shared>>,
    Path((app, dyno)): Path<(String, String)>,
) -> Response {
    s.with_world(|w| {
        let Some(a) = w.get::<HerokuState>().and_then(|h| h.app(&app)) else {
            return app_not_found();
        };
        if !a.dynos.contains(&dyno) {
            return error_body(404, "not_found", "Couldn't find that dyno.");
        }
        // An app runs one process: restarting its dyno restarts the app.
        restarted(w, &app)
    })
}

/// `GET /apps/{app}/dynos`: each dyno with its state and the release it runs. While a
/// restart boots, the dynos are `starting` on the new release. With preboot the old dynos,
/// which still take the traffic, are not listed (Heroku's Preboot article: "Old dynos are
/// still running but won't appear in heroku ps"). A one-off stays `up` on the release it
/// started on.
async fn list_dynos(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    s.respond(|h: &mut HerokuState| {
        let Some(a) = h.app_mut(&app) else {
            return app_not_found();
        };
        a.settle();
        let a = &*a;
        let booting = a.booting();
        let app_id = uuid::Uuid::parse_str(&a.id)
            .map(|u| u.as_u128())
            .unwrap_or(0);
        let dyno = |i: usize, name: &str, state: &str, (id, version): &(String, u64)| {
            json!({
                "attach_url": null, "command": "bin/raptor", "created_at": a.dynos_created_at,
                "id": uuid::Uuid::from_u128(app_id ^ (i as u128 + 1)).to_string(),
                "name": name,
                "release": {"id": id, "version": version},
                "app": {"id": a.id, "name": a.name},
                "size": "Basic", "state": state,
                "type": name.split('.').next().unwrap_or("web"),
                "updated_at": a.dynos_changed_at,
            })
        };
        let mut dynos: Vec<Value> = Vec::new();
        let state = if booting { "starting" } else { "up" };
        // A one-off runs the release it started on (here: the first), whatever came since.
        let first = a
            .releases
            .first()
            .map_or(a.running.clone(), |r| (r.id.clone(), r.version));
        for (i, d) in a.dynos.iter().enumerate() {
            if super::state::is_one_off(d) {
                dynos.push(dyno(i, d, "up", &first));
            } else {
                dynos.push(dyno(i, d, state, &a.running));
            }
        }
        Json(dynos).into_response()
    })
}

/// `GET /apps/{app}/formation`: each process type and how many dynos it asks for (the
/// app's one process type, `web`, with as many as its dynos that are not one-offs: none
/// when scaled to zero).
async fn list_formation(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    s.respond(|h: &mut HerokuState| {
        let Some(a) = h.app(&app) else {
            return app_not_found();
        };
        let app_id = uuid::Uuid::parse_str(&a.id)
            .map(|u| u.as_u128())
            .unwrap_or(0);
        Json(json!([{
            "app": {"id": a.id, "name": a.name},
            "command": "bin/raptor",
            "created_at": a.created_at, "updated_at": a.created_at,
            "dyno_size": {"id": uuid::Uuid::from_u128(app_id ^ 0x5151).to_string(), "name": "Basic"},
            "id": uuid::Uuid::from_u128(app_id ^ 0x7f4a7c15).to_string(),
            "quantity": a.formation_dynos().count(),
            "size": "Basic",
            "type": "web",
        }]))
        .into_response()
    })
}

/// The app features the simulator knows: preboot, as the app's scenario sets it.
fn features(a: &super::state::HApp) -> Vec<Value> {
    let app_id = uuid::Uuid::parse_str(&a.id)
        .map(|u| u.as_u128())
        .unwrap_or(0);
    vec![json!({
        "created_at": a.created_at, "updated_at": a.created_at,
        "description": "Provide seamless web dyno deploys",
        "display_name": "Preboot",
        "doc_url": "http://devcenter.heroku.com/articles/preboot",
        "enabled": a.preboot,
        "feedback_email": "",
        "id": uuid::Uuid::from_u128(app_id ^ 0x9e3779b9).to_string(),
        "name": "preboot",
        "state": "general",
    })]
}

/// `GET /apps/{app}/features`: the app's features and whether each is enabled.
async fn list_features(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    s.respond(|h: &mut HerokuState| match h.app(&app) {
        Some(a) => Json(features(a)).into_response(),
        None => app_not_found(),
    })
}

/// `GET /apps/{app}/features/{feature}`, by name or id.
async fn feature_info(
    State(s): State<Arc<Shared>>,
    Path((app, feature)): Path<(String, String)>,
) -> Response {
    s.respond(|h: &mut HerokuState| {
        let Some(a) = h.app(&app) else {
            return app_not_found();
        };
        match features(a)
            .into_iter()
            .find(|f| f["name"] == feature.as_str() || f["id"] == feature.as_str())
        {
            Some(f) => Json(f).into_response(),
            None => error_body(404, "not_found", "Couldn't find that feature."),
        }
    })
}

/// `GET /account/rate-limits`: what remains of the account's request pool. Heroku does not
/// count this request against it.
async fn rate_limits(State(s): State<Arc<Shared>>) -> Response {
    s.respond(|h: &mut HerokuState| Json(json!({"remaining": h.pool.remaining()})).into_response())
}

/// `201 {id, logplex_url, created_at, updated_at}`; accepts `dyno` and `dyno_name`.
async fn create_log_session(
    State(s): State<Arc<Shared>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The Heroku CLI of today asks with the SDK variant and reads the session as
    // server-sent events (`data: <line>`); asked with plain version 3, the session is the
    // older `srv` form, plain text lines.
    let sse = header(&headers, "accept").is_some_and(|a| a.contains("version=3.sdk"));
    let body = match json_or_empty(&body) {
        Ok(v) => v,
        Err(_) => return error_body(400, "bad_request", "Invalid JSON."),
    };
    if let Some(problem) = invalid_log_session(&body) {
        return error_body(422, "invalid_params", &problem);
    }
    let base = s.url_of(Heroku.name());
    s.respond(|h: &mut HerokuState| {
        let Some(a) = h.app(&app) else {
            return app_not_found();
        };
        // A Fir app keeps no log history: its session streams what is logged from now on
        // and does not end (the Heroku CLI: `--num` "ignored for Fir generation apps",
        // `--tail` "always enabled for Fir-generation apps").
        let from = (a.generation == "fir").then_some(a.logged);
        let id = uuid::Uuid::new_v4().to_string();
        let session = LogSession {
            app: a.name.clone(),
            from,
            tail: body.get("tail").and_then(Value::as_bool).unwrap_or(false),
            sse,
            lines: body
                .get("lines")
                .and_then(Value::as_u64)
                .map_or(100, |n| n.min(1500) as usize),
            dyno: body
                .get("dyno_name")
                .or_else(|| body.get("dyno"))
                .and_then(Value::as_str)
                .map(str::to_string),
            source: body
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        h.sessions.insert(id.clone(), session);
        let now = ts::seconds();
        (
            StatusCode::CREATED,
            Json(json!({
                "id": id,
                "logplex_url": if sse {
                    format!("{base}/sessions/{id}")
                } else {
                    format!("{base}/sessions/{id}?srv=1")
                },
                "created_at": now,
                "updated_at": now,
            })),
        )
            .into_response()
    })
}

/// The logplex stream, as plain text (the `srv` form the CLI reads as v1 text).
/// The log-session body as the Platform API schema types it: `dyno_name` and `source`
/// strings (`source` is `app` or `heroku`), `lines` an integer, `tail` a boolean.
fn invalid_log_session(body: &Value) -> Option<String> {
    let Some(o) = body.as_object() else {
        return Some("Invalid params: expected an object.".into());
    };
    for (k, v) in o {
        let ok = match k.as_str() {
            "dyno_name" | "dyno" => v.is_string(),
            "source" => matches!(v.as_str(), Some("app") | Some("heroku")),
            "lines" => v.as_u64().is_some(),
            "tail" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            return Some(format!("Invalid params: {k} is not valid."));
        }
    }
    None
}

async fn read_log_session(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(_q): Query<HashMap<String, String>>,
) -> Response {
    let first = s.with_state(|h: &mut HerokuState| {
        let sse = h.sessions.get(&id).is_some_and(|s| s.sse);
        h.session_lines(&id, None)
            .map(|(lines, next)| (lines, next, h.session_streams(&id), h.log_stream, sse))
    });
    let Some(Some((lines, next, streams, open, sse))) = first else {
        return (StatusCode::NOT_FOUND, "Session not found\n").into_response();
    };
    let plain = [(
        "content-type",
        if sse {
            "text/event-stream"
        } else {
            "text/plain; charset=utf-8"
        },
    )];
    if !streams {
        return (plain, text_of(&lines, sse)).into_response();
    }
    // A tail: what is there now, then each line as it is logged, until the session's hour
    // is up (`log_stream_ms`) or the sandbox stops (a reader waiting for the end waits
    // that long, as against Heroku).
    let until = tokio::time::Instant::now() + open;
    let tail = Tail {
        shared: s.clone(),
        id,
        next,
        pending: text_of(&lines, sse),
        sse,
        stop: s.stop.clone(),
        until,
    };
    let body = futures_util::stream::unfold(tail, |mut t| async move {
        let text = t.next_text().await?;
        Some((Ok::<_, std::convert::Infallible>(text), t))
    });
    (plain, axum::body::Body::from_stream(body)).into_response()
}

/// Lines as the session serves them: plain lines, or one server-sent event each.
fn text_of(lines: &[String], sse: bool) -> String {
    let mut text = String::new();
    for l in lines {
        if sse {
            text.push_str("data: ");
            text.push_str(l);
            text.push_str("\n\n");
        } else {
            text.push_str(l);
            text.push('\n');
        }
    }
    text
}

/// A live log session's reader: the lines logged since its last read.
struct Tail {
    shared: Arc<Shared>,
    id: String,
    /// How many lines its app had logged at the last read.
    next: usize,
    /// Read, not yet sent.
    pending: String,
    /// Served as server-sent events.
    sse: bool,
    stop: tokio::sync::watch::Receiver<bool>,
    until: tokio::time::Instant,
}

impl Tail {
    /// The next chunk of lines; `None` when the session ends.
    async fn next_text(&mut self) -> Option<String> {
        // A busy stream ends on time too.
        if tokio::time::Instant::now() >= self.until {
            return None;
        }
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        loop {
            // Registered before the read, so an answer in between still wakes it; the tick
            // lets lines that are due by the clock (a dyno that finished booting) appear
            // without a request.
            let woken = self.shared.activity.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let read = self
                .shared
                .with_state(|h: &mut HerokuState| h.session_lines(&self.id, Some(self.next)));
            let (lines, next) = read.flatten()?;
            self.next = next;
            if !lines.is_empty() {
                return Some(text_of(&lines, self.sse));
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(self.until) => return None,
                _ = self.stop.changed() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{
        answer, expect, heroku_check, heroku_link_check, on_app, platform, raw, sent, HEROKU_ACCEPT,
    };
    use crate::{Sandbox, Scenario};
    use reqwest::Method;
    use serde_json::{json, Value};

    async fn sb() -> Sandbox {
        Sandbox::start(Scenario::default()).await.unwrap()
    }

    /// A GET of `raxx-api-prod/config-vars` without the Accept header Heroku wants.
    fn config_vars_without_accept(sb: &Sandbox) -> reqwest::RequestBuilder {
        raw().get(format!(
            "{}/apps/raxx-api-prod/config-vars",
            sb.heroku_url()
        ))
    }

    #[tokio::test]
    async fn config_vars_match_the_schema() {
        let sb = sb().await;
        let body = expect(200, on_app(&sb, Method::GET, "/config-vars")).await;
        heroku_check(
            "/definitions/config-var/definitions/config_vars",
            &body,
            false,
        );
        let change = json!({"FOO": "bar", "RAPTOR_ENV": null});
        let body = expect(
            200,
            on_app(&sb, Method::PATCH, "/config-vars").json(&change),
        )
        .await;
        heroku_link_check("config-var", "PATCH", "/config-vars", &body);
        assert_eq!(body["FOO"], "bar");
        assert!(body.get("RAPTOR_ENV").is_none());
        assert!(body.get("POSTMARK_SERVER_TOKEN").is_some());
    }

    #[tokio::test]
    async fn restart_release_and_log_session_match_the_schema() {
        let sb = sb().await;
        let body = expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        heroku_link_check("dyno", "DELETE", "/dynos", &body);

        let list = expect(200, on_app(&sb, Method::GET, "/releases")).await;
        heroku_check("/definitions/release", &list[0], true);
        let one = expect(200, on_app(&sb, Method::GET, "/releases/1")).await;
        heroku_check("/definitions/release", &one, true);

        for body in [
            json!({"dyno": "web.1", "lines": 10, "source": "app"}),
            json!({"dyno_name": "web.1", "tail": false}),
        ] {
            let session = expect(201, on_app(&sb, Method::POST, "/log-sessions").json(&body)).await;
            heroku_check("/definitions/log-session", &session, true);
            let url = session["logplex_url"].as_str().unwrap();
            assert!(url.starts_with(sb.heroku_url()) && url.contains("?srv="));
            let resp = sent(raw().get(url)).await;
            assert!(resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"));
        }
    }

    #[tokio::test]
    async fn setting_a_var_to_its_value_still_releases_and_bad_log_session_params_are_422() {
        let sb = sb().await;
        let releases = || async {
            let list = expect(200, on_app(&sb, Method::GET, "/releases")).await;
            list.as_array().unwrap().len()
        };
        let before = releases().await;
        let config = expect(200, on_app(&sb, Method::GET, "/config-vars")).await;
        let same = json!({"RAPTOR_ENV": config["RAPTOR_ENV"].clone()});
        expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&same)).await;
        assert_eq!(
            releases().await,
            before + 1,
            "an unchanged value still makes a release"
        );

        for bad in [
            json!({"lines": "ten"}),
            json!({"source": "router"}),
            json!({"tail": 1}),
        ] {
            let body = expect(422, on_app(&sb, Method::POST, "/log-sessions").json(&bad)).await;
            assert_eq!(body["id"], "invalid_params", "{bad}");
        }
    }

    #[tokio::test]
    async fn the_request_pool_drains_stamps_every_answer_and_429s_when_empty() {
        let mut scenario = Scenario::default();
        scenario.heroku.rate_limit = crate::scenario::RateLimitSpec {
            capacity: 3,
            per_minute: 0.0,
        };
        let sb = Sandbox::start(scenario).await.unwrap();
        sb.add_fault(
            crate::FaultRule::parse("heroku:GET:/apps/raxx-api-prod/releases=500:once").unwrap(),
        );
        let remaining = |r: &reqwest::Response| {
            r.headers()["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string()
        };
        let r = sent(on_app(&sb, Method::GET, "")).await;
        assert_eq!((r.status().as_u16(), remaining(&r)), (200, "2".into()));
        // A fault's answer takes a token and says so too.
        let r = sent(on_app(&sb, Method::GET, "/releases")).await;
        assert_eq!((r.status().as_u16(), remaining(&r)), (500, "1".into()));
        let r = sent(on_app(&sb, Method::GET, "")).await;
        assert_eq!((r.status().as_u16(), remaining(&r)), (200, "0".into()));
        let r = sent(on_app(&sb, Method::GET, "")).await;
        assert_eq!((r.status().as_u16(), remaining(&r)), (429, "0".into()));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["id"], "rate_limit");
    }

    /// `committed`: the vendor applies the write, then answers a 5xx; the client sees the
    /// failure, the state holds the change.
    #[tokio::test]
    async fn a_committed_fault_applies_the_write_and_answers_a_5xx() {
        let sb = sb().await;
        sb.add_fault(
            crate::FaultRule::parse("heroku:PATCH:/apps/*/config-vars=committed:once").unwrap(),
        );
        let patch = |v: &str| on_app(&sb, Method::PATCH, "/config-vars").json(&json!({"FOO": v}));
        let body = expect(500, patch("applied")).await;
        assert_eq!(body["id"], "internal_server_error");
        let st = sb.state();
        let app = &st["heroku"]["apps"]["raxx-api-prod"];
        assert_eq!(app["config_vars"]["FOO"], "applied");
        assert_eq!(
            app["restarts"], 1,
            "the change released and restarted the app"
        );
        let logged = sb
            .requests()
            .into_iter()
            .find(|r| r.method == "PATCH")
            .unwrap();
        assert_eq!(
            (logged.status, logged.fault),
            (Some(500), Some("committed"))
        );

        sb.add_fault(
            crate::FaultRule::parse("heroku:PATCH:/apps/*/config-vars=committed=503:once").unwrap(),
        );
        assert_eq!(
            expect(503, patch("again")).await["id"],
            "service_unavailable"
        );
        assert_eq!(
            sb.state()["heroku"]["apps"]["raxx-api-prod"]["config_vars"]["FOO"],
            "again"
        );
    }

    #[tokio::test]
    async fn a_restart_boots_for_a_while_starting_dynos_and_a_503_until_up() {
        let mut scenario = Scenario::default();
        for app in &mut scenario.heroku.apps {
            app.boot_ms = 600_000;
        }
        let sb = Sandbox::start(scenario).await.unwrap();
        let dyno_state = || async {
            let d = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
            d[0]["state"].as_str().unwrap().to_string()
        };
        assert_eq!(dyno_state().await, "up");
        expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        // The 202 is not the end of the boot.
        assert_eq!(dyno_state().await, "starting");
        let raptor = raw()
            .post(format!(
                "{}/raxx-api-prod/api/notifications/test-email",
                sb.urls().get("raptor").unwrap()
            ))
            .json(&json!({"to": "a@sandbox.invalid"}));
        assert_eq!(sent(raptor).await.status(), 503);
    }

    #[tokio::test]
    async fn the_scenario_page_size_makes_ranged_lists_page() {
        let mut scenario = Scenario::default();
        scenario.heroku.page_size = Some(1);
        let sb = Sandbox::start(scenario).await.unwrap();
        let resp =
            sent(platform(&sb, Method::GET, "/apps").header("Range", "name ..; max=1000")).await;
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.headers()["next-range"], "name ]raxx-api-prod..; max=1");
        let resp = sent(on_app(&sb, Method::GET, "/releases")).await;
        assert_eq!(resp.status(), 200, "one release: one page");
        expect(
            200,
            on_app(&sb, Method::PATCH, "/config-vars").json(&json!({"A": "1"})),
        )
        .await;
        let resp = sent(on_app(&sb, Method::GET, "/releases")).await;
        assert_eq!(resp.status(), 206);
        assert_eq!(
            resp.headers()["next-range"],
            "version ]1..; max=1, order=asc"
        );
    }

    #[tokio::test]
    async fn account_rate_limits_reads_the_pool_without_spending_it() {
        let mut scenario = Scenario::default();
        scenario.heroku.rate_limit = crate::scenario::RateLimitSpec {
            capacity: 10,
            per_minute: 0.0,
        };
        let sb = Sandbox::start(scenario).await.unwrap();
        expect(200, on_app(&sb, Method::GET, "")).await;
        expect(200, on_app(&sb, Method::GET, "/config-vars")).await;
        for _ in 0..2 {
            let resp = sent(platform(&sb, Method::GET, "/account/rate-limits")).await;
            assert_eq!(resp.headers()["ratelimit-remaining"], "8");
            let body: Value = resp.json().await.unwrap();
            heroku_check("/definitions/rate-limit", &body, true);
            assert_eq!(body, json!({"remaining": 8}));
        }
    }

    /// A Fir app keeps no log history: its session answers at once with only what was
    /// logged after it opened, then stays open (a stream) instead of ending.
    #[tokio::test]
    async fn a_fir_log_session_streams_without_history() {
        let sb = with_prod(|app| {
            app.generation = "fir".into();
            app.boot_ms = 0;
        })
        .await;
        // A first restart before the session: its lines are history the session never shows.
        expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        let session = expect(
            201,
            on_app(&sb, Method::POST, "/log-sessions").json(&json!({"lines": 100})),
        )
        .await;
        expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        let url = session["logplex_url"].as_str().unwrap();
        let mut resp = raw().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let first = String::from_utf8(resp.chunk().await.unwrap().unwrap().to_vec()).unwrap();
        let restarts = first.matches("Restarting").count();
        assert_eq!(
            restarts, 1,
            "only the restart after the session opened:\n{first}"
        );
        // The stream does not end: a reader waiting for the end would wait.
        let more = tokio::time::timeout(std::time::Duration::from_millis(300), resp.chunk()).await;
        assert!(more.is_err(), "the stream ended: {more:?}");
    }

    /// `tail: true` (what `heroku logs --tail` asks): the last lines, then every line as it
    /// is logged, on the answer that stays open. Before, a session only ever answered what
    /// was there when it was read.
    #[tokio::test]
    async fn a_tail_session_streams_its_history_then_each_new_line() {
        let sb = with_prod(|app| app.boot_ms = 0).await;
        expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        let session = expect(
            201,
            on_app(&sb, Method::POST, "/log-sessions").json(&json!({"lines": 100, "tail": true})),
        )
        .await;
        let url = session["logplex_url"].as_str().unwrap();
        let mut resp = raw().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let first = String::from_utf8(resp.chunk().await.unwrap().unwrap().to_vec()).unwrap();
        assert_eq!(first.matches("Restarting").count(), 1, "history:\n{first}");
        // A restart after the read began arrives on the same answer.
        expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        let mut more = String::new();
        let read = async {
            while more.matches("Restarting").count() < 1 {
                let chunk = resp.chunk().await.unwrap().unwrap();
                more.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        // A bug fails the test, it does not hang it.
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("the restart never arrived on the stream");
        assert!(!more.contains(first.lines().next().unwrap()), "{more}");
    }

    /// A scenario whose app `raxx-api-prod` has these settings.
    async fn with_prod(f: impl FnOnce(&mut crate::scenario::AppSpec)) -> Sandbox {
        let mut scenario = Scenario::default().with_postmark_token("pm-old-0001");
        if let Some(app) = scenario.heroku.apps.first_mut() {
            f(app);
        }
        Sandbox::start(scenario).await.unwrap()
    }

    fn phase(
        duration_ms: u64,
        outcome: crate::scenario::ReleaseOutcome,
    ) -> impl FnOnce(&mut crate::scenario::AppSpec) {
        move |app| {
            // Restarts are up at once: the tests look at which release runs, not the boot.
            app.boot_ms = 0;
            app.release_phase = Some(crate::scenario::ReleasePhaseSpec {
                duration_ms,
                outcome,
            })
        }
    }

    /// The newest release's (version, status, current) from the list.
    async fn newest_release(sb: &Sandbox) -> (u64, String, bool) {
        let req =
            on_app(sb, Method::GET, "/releases").header("Range", "version ..; max=1, order=desc");
        let list = answer(req).await.1;
        heroku_check("/definitions/release", &list[0], true);
        let r = &list[0];
        (
            r["version"].as_u64().unwrap(),
            r["status"].as_str().unwrap().to_string(),
            r["current"].as_bool().unwrap(),
        )
    }

    /// A test email through the downstream app on `raxx-api-prod`: its status.
    async fn app_sends(sb: &Sandbox) -> u16 {
        let raptor = raw()
            .post(format!(
                "{}/raxx-api-prod/api/notifications/test-email",
                sb.raptor_url()
            ))
            .json(&json!({"to": "a@sandbox.invalid"}));
        sent(raptor).await.status().as_u16()
    }

    /// The token the downstream app's last accepted email was sent with.
    fn last_token(sb: &Sandbox) -> String {
        let st = sb.state();
        let messages = st["postmark"]["messages"].as_array().unwrap().clone();
        messages.last().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_release_phase_keeps_the_release_pending_and_the_app_unrestarted() {
        let sb = with_prod(phase(600_000, crate::scenario::ReleaseOutcome::Succeeded)).await;
        let patch = json!({"FOO": "bar"});
        expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&patch)).await;
        assert_eq!(newest_release(&sb).await, (2, "pending".into(), false));
        let v1 = expect(200, on_app(&sb, Method::GET, "/releases/1")).await;
        assert_eq!(v1["current"], true);
        let dynos = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
        assert_eq!(
            (
                dynos[0]["state"].as_str(),
                dynos[0]["release"]["version"].as_u64()
            ),
            (Some("up"), Some(1))
        );
        assert_eq!(sb.state()["heroku"]["apps"]["raxx-api-prod"]["restarts"], 0);
    }

    #[tokio::test]
    async fn a_release_phase_that_succeeds_restarts_the_app_on_the_new_release() {
        let sb = with_prod(phase(0, crate::scenario::ReleaseOutcome::Succeeded)).await;
        let patch = json!({"FOO": "bar"});
        expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&patch)).await;
        assert_eq!(newest_release(&sb).await, (2, "succeeded".into(), true));
        let st = sb.state();
        assert_eq!(st["heroku"]["apps"]["raxx-api-prod"]["restarts"], 1);
        assert_eq!(st["heroku"]["apps"]["raxx-api-prod"]["running_release"], 2);
    }

    #[tokio::test]
    async fn a_failed_release_phase_leaves_the_dynos_on_the_previous_release() {
        let sb = with_prod(phase(0, crate::scenario::ReleaseOutcome::Failed)).await;
        let patch = json!({"POSTMARK_SERVER_TOKEN": "pm-not-a-token"});
        let vars = expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&patch)).await;
        assert_eq!(vars["POSTMARK_SERVER_TOKEN"], "pm-not-a-token");
        assert_eq!(newest_release(&sb).await, (2, "failed".into(), false));
        // Even a restart runs the release that succeeded last, with its token.
        expect(202, on_app(&sb, Method::DELETE, "/dynos")).await;
        let dynos = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
        assert_eq!(dynos[0]["release"]["version"], 1);
        assert_eq!(app_sends(&sb).await, 200);
        assert_eq!(last_token(&sb), "pm-old-0001");
        let logs = sb.state()["heroku"]["apps"]["raxx-api-prod"]["logs"].to_string();
        assert!(logs.contains("Release v2 command failed"), "{logs}");
    }

    /// Only the new dynos are listed; until they are up they are `starting`.
    fn listed(dynos: &Value) -> Vec<(String, u64)> {
        dynos
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                heroku_check("/definitions/dyno", d, true);
                (
                    d["state"].as_str().unwrap().to_string(),
                    d["release"]["version"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn with_preboot_the_old_dynos_serve_with_the_old_token_and_are_not_listed() {
        let sb = with_prod(|app| {
            app.preboot = true;
            app.boot_ms = 600_000;
        })
        .await;
        let new = sb.dashboard_generate_token("raxx-prod").unwrap();
        let patch = json!({"POSTMARK_SERVER_TOKEN": new});
        expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&patch)).await;
        let dynos = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
        assert_eq!(listed(&dynos), vec![("starting".to_string(), 2)]);
        // No 503 while the new dynos boot: the old ones answer, with the old token.
        assert_eq!(app_sends(&sb).await, 200);
        assert_eq!(last_token(&sb), "pm-old-0001");
    }

    /// A preboot app whose new dynos boot at once, right after a token change, with a window
    /// of `window_ms`: the simulator and the new token. Only the new dynos are listed, up.
    async fn prebooted(window_ms: u64) -> (Sandbox, String) {
        let sb = with_prod(|app| {
            app.preboot = true;
            app.boot_ms = 0;
            app.preboot_window_ms = window_ms;
        })
        .await;
        let new = sb.dashboard_generate_token("raxx-prod").unwrap();
        let patch = json!({"POSTMARK_SERVER_TOKEN": new.clone()});
        expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&patch)).await;
        let dynos = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
        assert_eq!(listed(&dynos), vec![("up".to_string(), 2)]);
        (sb, new)
    }

    fn prebooted_dynos_stopped(sb: &Sandbox) -> bool {
        sb.state()["heroku"]["apps"]["raxx-api-prod"]["logs"]
            .to_string()
            .contains("replaced by the prebooted dyno")
    }

    /// Heroku moves the traffic the preboot window after the change, not when the new dynos
    /// are up: until then the old dynos serve, unlisted, with the old token.
    #[tokio::test]
    async fn with_preboot_traffic_moves_to_the_new_dynos_only_after_the_window() {
        let (sb, _) = prebooted(600_000).await;
        assert_eq!(app_sends(&sb).await, 200);
        assert_eq!(last_token(&sb), "pm-old-0001");
        assert!(!prebooted_dynos_stopped(&sb));
    }

    #[tokio::test]
    async fn with_preboot_the_new_dynos_take_over_once_the_window_ends() {
        let (sb, new) = prebooted(0).await;
        assert_eq!(app_sends(&sb).await, 200);
        assert_eq!(last_token(&sb), new);
        assert!(prebooted_dynos_stopped(&sb));
    }

    /// The formation says how many dynos run, in the schema's shape; an app scaled to zero
    /// lists no dyno, asks for none, and a config change boots nothing there.
    #[tokio::test]
    async fn an_app_scaled_to_zero_has_no_dynos_and_a_formation_of_zero() {
        let sb = with_prod(|app| app.dynos = vec![]).await;
        let f = expect(200, on_app(&sb, Method::GET, "/formation")).await;
        heroku_check("/definitions/formation", &f[0], true);
        assert_eq!(
            (f[0]["type"].as_str(), f[0]["quantity"].as_u64()),
            (Some("web"), Some(0))
        );
        let patch = json!({"OTHER": "1"});
        expect(200, on_app(&sb, Method::PATCH, "/config-vars").json(&patch)).await;
        let dynos = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
        assert_eq!(dynos, json!([]));
        let sb = with_prod(|_| {}).await;
        let f = expect(200, on_app(&sb, Method::GET, "/formation")).await;
        assert_eq!(f[0]["quantity"], 1);
    }

    /// `GET /apps/{app}/features/preboot` says whether preboot is on, in the schema's shape;
    /// a feature Heroku does not have is 404.
    #[tokio::test]
    async fn the_preboot_feature_is_read_by_name() {
        let sb = with_prod(|app| app.preboot = true).await;
        let f = expect(200, on_app(&sb, Method::GET, "/features/preboot")).await;
        heroku_check("/definitions/app-feature", &f, true);
        assert_eq!(
            (f["name"].as_str(), f["enabled"].as_bool()),
            (Some("preboot"), Some(true))
        );
        let all = expect(200, on_app(&sb, Method::GET, "/features")).await;
        assert_eq!(all[0]["id"], f["id"]);
        expect(404, on_app(&sb, Method::GET, "/features/no-such-feature")).await;
        let sb = with_prod(|_| {}).await;
        let f = expect(200, on_app(&sb, Method::GET, "/features/preboot")).await;
        assert_eq!(f["enabled"], false);
    }

    #[tokio::test]
    async fn accept_auth_and_unknown_apps_are_checked() {
        let sb = sb().await;
        let key = &sb.credentials().heroku_api_key;
        let resp = sent(config_vars_without_accept(&sb).bearer_auth(key)).await;
        assert_eq!(resp.status(), 406);
        let resp = sent(
            config_vars_without_accept(&sb)
                .header("Accept", "application/vnd.heroku+json; version=3.sdk")
                .bearer_auth(key),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("ratelimit-remaining"));
        // Heroku no longer takes the key as Basic auth.
        let resp = sent(
            raw()
                .get(format!("{}/apps/raxx-api-prod", sb.heroku_url()))
                .header("Accept", HEROKU_ACCEPT)
                .basic_auth("", Some(key)),
        )
        .await;
        assert_eq!(resp.status(), 401);
        let body = expect(404, platform(&sb, Method::GET, "/apps/ghost/config-vars")).await;
        assert_eq!(
            (body["id"].as_str(), body["message"].as_str()),
            (Some("not_found"), Some("Couldn't find that app."))
        );
        let bad_key = config_vars_without_accept(&sb)
            .header("Accept", HEROKU_ACCEPT)
            .bearer_auth("nope");
        assert_eq!(expect(401, bad_key).await["id"], "unauthorized");
    }

    #[tokio::test]
    async fn release_ranges_page_with_next_range() {
        let sb = sb().await;
        for i in 0..3 {
            sent(on_app(&sb, Method::PATCH, "/config-vars").json(&json!({"N": i.to_string()})))
                .await;
        }
        let releases = |range: &str| on_app(&sb, Method::GET, "/releases").header("Range", range);
        for range in [
            "version ..; max=2, order=desc",
            "version ..; order=desc,max=2",
        ] {
            let resp = sent(releases(range)).await;
            assert_eq!(resp.status(), 206);
            let next = resp.headers()["next-range"].to_str().unwrap().to_string();
            let page: Value = resp.json().await.unwrap();
            assert_eq!(
                (page[0]["version"].as_u64(), page[1]["version"].as_u64()),
                (Some(4), Some(3))
            );
            let rest = expect(200, releases(&next)).await;
            assert_eq!(
                rest.as_array().map(|a| a
                    .iter()
                    .map(|r| r["version"].as_u64().unwrap_or(0))
                    .collect::<Vec<_>>()),
                Some(vec![2, 1])
            );
        }
        assert_eq!(sent(releases("bogus")).await.status(), 416);
    }

    async fn scoped(scopes: &[&str]) -> Sandbox {
        let mut s = Scenario::default();
        s.heroku.scopes = scopes.iter().map(|s| s.to_string()).collect();
        Sandbox::start(s).await.unwrap()
    }

    #[tokio::test]
    async fn config_vars_need_the_protected_scopes_and_only_global_lists_authorizations() {
        let sb = scoped(&["read", "write"]).await;
        let body = expect(403, on_app(&sb, Method::GET, "/config-vars")).await;
        assert_eq!(body["id"], "forbidden");
        assert!(body["message"].as_str().unwrap().contains("read-protected"));
        // Plain resources stay readable and restartable.
        for (m, path, status) in [
            (Method::GET, "/apps/raxx-api-prod", 200),
            (Method::GET, "/apps/raxx-api-prod/dynos", 200),
            (Method::DELETE, "/apps/raxx-api-prod/dynos", 202),
            (Method::GET, "/oauth/authorizations", 403),
        ] {
            let resp = sent(platform(&sb, m.clone(), path)).await;
            assert_eq!(resp.status(), status, "{m} {path}");
        }

        let sb = scoped(&["read-protected"]).await;
        expect(200, on_app(&sb, Method::GET, "/config-vars")).await;
        let write = on_app(&sb, Method::PATCH, "/config-vars").json(&json!({"FOO": "bar"}));
        let body = expect(403, write).await;
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("write-protected"));
        assert_eq!(
            sb.state()["heroku"]["apps"]["raxx-api-prod"]["config_vars"].get("FOO"),
            None
        );

        let sb = scoped(&["global"]).await;
        let list = expect(200, platform(&sb, Method::GET, "/oauth/authorizations")).await;
        heroku_check("/definitions/oauth-authorization", &list[0], true);
        assert_eq!(list[0]["scope"], json!(["global"]));
        assert_eq!(
            list[0]["access_token"]["token"].as_str(),
            Some(sb.credentials().heroku_api_key.as_str())
        );
    }

    #[tokio::test]
    async fn the_app_list_pages_by_name_with_next_range() {
        let sb = sb().await;
        let mut names = Vec::new();
        let mut range = "name ..; max=1".to_string();
        for _ in 0..5 {
            let resp = sent(platform(&sb, Method::GET, "/apps").header("Range", &range)).await;
            let status = resp.status().as_u16();
            let next = resp
                .headers()
                .get("next-range")
                .map(|v| v.to_str().unwrap().to_string());
            let page: Value = resp.json().await.unwrap();
            for app in page.as_array().unwrap() {
                heroku_check("/definitions/app", app, true);
                names.push(app["name"].as_str().unwrap().to_string());
            }
            match (status, next) {
                (206, Some(n)) => range = n,
                (200, None) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(names, vec!["raxx-api-prod", "raxx-api-staging"]);
    }
}
