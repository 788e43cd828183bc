//! The Infisical API's routes: universal-auth login, v3 raw and v4 secret routes.

use super::approvals::{Actor, Op};
use super::state::{normalize_path, InfisicalState, StoredSecret, Version, EXPIRED, MALFORMED};
use crate::http::{header, json_answer, json_or_empty};
use crate::shared::Shared;
use crate::simulator::Routes;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// `{reqId, statusCode, message, error}`.
fn error_body(status: u16, error: &str, message: Value) -> Response {
    let req_id = format!("req-{}", &uuid::Uuid::new_v4().simple().to_string()[..14]);
    json_answer(
        status,
        json!({"reqId": req_id, "statusCode": status, "message": message, "error": error}),
    )
}

/// What the Infisical simulator serves.
pub(super) const ROUTES: Routes = Routes::new(router, error_for_status)
    .waits_with(error_with_wait)
    .inside(pooled);

/// Every request but the status check takes a token from the pool the scenario may set,
/// fault answers included; an empty pool answers 429 with the wait in the message only, as
/// Infisical Cloud does (no rate-limit headers).
fn pooled(router: Router, shared: Arc<Shared>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        shared,
        |State(s): State<Arc<Shared>>,
         req: axum::extract::Request,
         next: axum::middleware::Next| async move {
            let path = req.uri().path();
            let exempt = path == "/api/status" || crate::http::is_unmetered(path);
            let wait = s
                .with_state(|i: &mut InfisicalState| {
                    let pool = i.pool.as_mut().filter(|_| !exempt)?;
                    pool.take().is_none().then(|| pool.wait_secs())
                })
                .flatten();
            match wait {
                Some(secs) => rate_limited(secs),
                None => next.run(req).await,
            }
        },
    ))
}

fn error_for_status(status: u16) -> Response {
    match status {
        400 => error_body(400, "BadRequest", json!("Bad request")),
        401 => error_body(
            401,
            "UnauthorizedError",
            json!("You are not allowed to access this resource"),
        ),
        // A refusal by permission, as Infisical's CASL checks answer; an expired or
        // malformed token (TokenError) comes from the auth check, not from a fault.
        403 => error_body(
            403,
            "PermissionDenied",
            json!("You are not allowed to perform this action on secrets"),
        ),
        404 => error_body(404, "NotFound", json!("Not found")),
        422 => error_body(
            422,
            "ValidationFailure",
            json!([{"code": "custom", "message": "Invalid input", "path": []}]),
        ),
        429 => rate_limited(1),
        504 => error_body(504, "GatewayTimeoutError", json!("Gateway timeout")),
        s if s >= 500 => error_body(s, "InternalServerError", json!("Something went wrong")),
        s => error_body(s, "Error", json!("Error")),
    }
}

/// A refusal asking for a wait: a 429 says it in its message, any other status in the
/// `Retry-After` header.
fn error_with_wait(status: u16, secs: u64) -> Response {
    match status {
        429 => rate_limited(secs),
        _ => crate::http::with_retry_after(error_for_status(status), secs),
    }
}

/// Infisical's 429: the wait is in the message (it sends no rate-limit headers).
fn rate_limited(secs: u64) -> Response {
    error_body(
        429,
        "RateLimitExceeded",
        json!(format!(
            "Rate limit exceeded. Please try again in {secs} seconds"
        )),
    )
}

fn zod(path: &str, message: &str) -> Response {
    error_body(
        422,
        "ValidationFailure",
        json!([{"code": "invalid_type", "expected": "string", "received": "undefined", "path": [path], "message": message}]),
    )
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        // The health check (no auth, outside the rate limits), as Infisical serves it.
        .route(
            "/api/status",
            get(|| async { Json(json!({"date": crate::ts::millis(), "message": "Ok"})) }),
        )
        .route("/api/v1/auth/universal-auth/login", post(login))
        .route("/api/v1/auth/universal-auth/login/", post(login))
        .route("/api/v3/secrets/raw", get(list))
        .route(
            "/api/v3/secrets/raw/{name}",
            get(get_one).post(write).patch(write).delete(write),
        )
        .route("/api/v4/secrets", get(list))
        .route(
            "/api/v4/secrets/{name}",
            get(get_one).post(write).patch(write).delete(write),
        )
        .route(
            "/api/v1/secret-approval-requests/{id}",
            get(get_approval),
        )
        // An approver's part, for rehearsals (the real routes take a user session only).
        .route("/_sandbox/approvals", get(list_approvals))
        .route("/_sandbox/approvals/{id}/merge", post(merge_approval))
        .route("/_sandbox/approvals/{id}/close", post(close_approval))
        .fallback(|method: Method, uri: Uri| async move {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"message": format!("Route {method}:{} not found", uri.path()), "error": "Not Found", "statusCode": 404})),
            )
        })
        .with_state(shared)
}

/// `GET /api/v1/secret-approval-requests/{id}`: a user's session only (`verifyAuth([JWT])`):
/// a machine identity is forbidden, as Infisical's `ForbiddenRequestError` answers.
async fn get_approval(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    s.respond(|st: &mut InfisicalState| {
        st.settle();
        match authorize(st, &headers) {
            Err(refused) => refused,
            Ok(Actor::Identity | Actor::Service(_)) => error_body(
                403,
                "ForbiddenError",
                json!(format!(
                    "Forbidden access to /api/v1/secret-approval-requests/{id}"
                )),
            ),
            Ok(Actor::User) => match st.approvals.get(&id) {
                Some(approval) => Json(json!({ "approval": approval })).into_response(),
                None => error_body(
                    404,
                    "NotFound",
                    json!(format!("Secret approval request with id {id} not found")),
                ),
            },
        }
    })
}

async fn list_approvals(State(s): State<Arc<Shared>>) -> Response {
    s.respond(|st: &mut InfisicalState| {
        st.settle();
        Json(json!({ "approvals": st.approvals.to_json() })).into_response()
    })
}

async fn merge_approval(s: State<Arc<Shared>>, id: Path<String>) -> Response {
    decide(s, id, true)
}

async fn close_approval(s: State<Arc<Shared>>, id: Path<String>) -> Response {
    decide(s, id, false)
}

/// Merges or closes a change request (by id or slug); 409 when it is not open.
fn decide(State(s): State<Arc<Shared>>, Path(id): Path<String>, merge: bool) -> Response {
    s.respond(|st: &mut InfisicalState| {
        st.settle();
        match st.approvals.decide(&id, merge) {
            Ok(change) => {
                if let Some((env, path, key, op)) = change {
                    st.apply(&env, &path, &key, op);
                }
                Json(json!({ "approvals": st.approvals.to_json() })).into_response()
            }
            Err(message) => {
                (StatusCode::CONFLICT, Json(json!({ "message": message }))).into_response()
            }
        }
    })
}

async fn login(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return zod("clientId", "Required"),
    };
    let id = body.get("clientId").and_then(Value::as_str);
    let secret = body.get("clientSecret").and_then(Value::as_str);
    let (Some(id), Some(secret)) = (id, secret) else {
        return zod(
            if id.is_none() {
                "clientId"
            } else {
                "clientSecret"
            },
            "Required",
        );
    };
    s.respond(|st: &mut InfisicalState| {
        if id != st.client_id || secret != st.client_secret {
            return error_body(401, "UnauthorizedError", json!("Invalid credentials"));
        }
        let token = st.login();
        Json(json!({
            "accessToken": token,
            "expiresIn": st.ttl_secs,
            "accessTokenMaxTTL": st.ttl_secs.max(43200),
            "tokenType": "Bearer",
        }))
        .into_response()
    })
}

/// Checks `Authorization: Bearer`; 401 without, 403 TokenError when malformed or expired.
/// Who the token is: a person (the scenario's user token) or a machine identity.
fn authorize(st: &InfisicalState, headers: &HeaderMap) -> Result<Actor, Response> {
    let Some(auth) = header(headers, "authorization") else {
        return Err(error_body(
            401,
            "UnauthorizedError",
            json!("Missing Authorization Header in the request header."),
        ));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token == st.token {
        return Ok(Actor::Identity);
    }
    if st.user_token.as_deref() == Some(token) {
        return Ok(Actor::User);
    }
    if let Some(i) = st.service_tokens.iter().position(|(t, ..)| t == token) {
        return Ok(Actor::Service(i));
    }
    if let Some(t) = st.issued.iter().find(|t| t.token == token) {
        return if Instant::now() < t.expires {
            Ok(Actor::Identity)
        } else {
            Err(error_body(403, "TokenError", json!(EXPIRED)))
        };
    }
    // A service token the sandbox does not know is one deleted (or never made): Infisical
    // looks it up by the id after `st.` and answers 404 (`fnValidateServiceToken`), which
    // says nothing of the secret asked for.
    if let Some(rest) = token.strip_prefix("st.") {
        let id = rest.split('.').next().unwrap_or_default();
        return Err(error_body(
            404,
            "NotFound",
            json!(format!("Service token with ID '{id}' not found")),
        ));
    }
    Err(error_body(403, "TokenError", json!(MALFORMED)))
}

/// Which API flavour a request used: v3 takes `workspaceId`, v4 `projectId`.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    V3,
    V4,
}

/// The flavour is the path's: the v3 and v4 routes share their handlers.
impl<S: Send + Sync> FromRequestParts<S> for Api {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(if parts.uri.path().starts_with("/api/v4/") {
            Api::V4
        } else {
            Api::V3
        })
    }
}

struct Scope {
    env: String,
    path: String,
    /// Who asks.
    actor: Actor,
}

/// Reads project, environment and path from query or body, checking the project.
fn scope(
    api: Api,
    st: &InfisicalState,
    p: &HashMap<String, String>,
    actor: Actor,
) -> Result<Scope, Response> {
    let project = match api {
        Api::V4 => match p.get("projectId") {
            Some(id) => Some(id.clone()),
            None => return Err(zod("projectId", "Required")),
        },
        Api::V3 => p.get("workspaceId").cloned().or_else(|| {
            p.get("workspaceSlug").or(p.get("projectSlug")).map(|slug| {
                if *slug == st.project_slug {
                    st.project_id.clone()
                } else {
                    slug.clone()
                }
            })
        }),
    };
    let Some(project) = project else {
        return Err(error_body(
            400,
            "BadRequest",
            json!("You must provide workspaceSlug or workspaceId"),
        ));
    };
    if project != st.project_id {
        // A project the identity cannot see is a permission refusal, not a 404.
        return Err(error_body(
            403,
            "PermissionDenied",
            json!(format!("You are not allowed to access project '{project}'")),
        ));
    }
    let Some(env) = p.get("environment") else {
        return Err(error_body(400, "BadRequest", json!("Missing environment")));
    };
    if !st.environments.contains(env) {
        return Err(error_body(
            404,
            "NotFound",
            json!(format!(
                "Environment with slug '{env}' in project with ID '{project}' not found"
            )),
        ));
    }
    let path = normalize_path(p.get("secretPath").map(String::as_str).unwrap_or("/"));
    Ok(Scope {
        env: env.clone(),
        path,
        actor,
    })
}

/// What every secret route does first: settles the approvals that are due, checks the
/// token and reads the scope of the request from `params`; then `f` answers in that scope.
fn respond_in_scope(
    s: &Shared,
    api: Api,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    f: impl FnOnce(&mut InfisicalState, Scope) -> Response,
) -> Response {
    s.respond(|st: &mut InfisicalState| {
        st.settle();
        let admitted = authorize(st, headers).and_then(|actor| scope(api, st, params, actor));
        match admitted {
            Ok(sc) => f(st, sc),
            Err(refusal) => refusal,
        }
    })
}

/// Infisical's v4 listing and read of a service token with one scope answer from that
/// scope, whatever environment and folder the request names (`if (req.auth.actor ===
/// ActorType.SERVICE) ... secretPath = scope[0].secretPath; environment = ...`).
fn read_scope(st: &InfisicalState, mut sc: Scope) -> Scope {
    if let Actor::Service(i) = sc.actor {
        if let Some((_, env, path)) = st.service_tokens.get(i) {
            sc.env = env.clone();
            sc.path = path.clone();
        }
    }
    sc
}

/// Infisical's 404 for secret `name` in the scope.
fn secret_not_found(name: &str, sc: &Scope) -> Response {
    error_body(
        404,
        "NotFound",
        json!(format!(
            "Secret with name '{name}' not found at path '{}' in environment with slug '{}'",
            sc.path, sc.env
        )),
    )
}

/// What Infisical puts in place of a value it does not show.
const HIDDEN_VALUE: &str = "<hidden-by-infisical>";

/// A value the identity may not read (DescribeSecret without ReadValue).
fn value_refused() -> Response {
    error_body(
        403,
        "PermissionDenied",
        json!("You are not allowed to read the value of secrets in this folder"),
    )
}

fn secret_json(st: &InfisicalState, s: &StoredSecret, v: &Version) -> Value {
    json!({
        "id": s.id,
        "_id": s.id,
        "workspace": st.project_id,
        "environment": s.environment,
        "version": v.version,
        "type": "shared",
        "secretKey": s.key,
        "secretValue": v.value,
        "secretComment": "",
        "secretReminderNote": null,
        "secretReminderRepeatDays": null,
        "skipMultilineEncoding": false,
        "createdAt": s.created_at,
        "updatedAt": v.at,
        "actor": {"actorId": "sandbox-identity", "actorType": "identity", "name": "runbook-sandbox", "membershipId": null, "groupId": null},
        "isRotatedSecret": false,
        "rotationId": null,
        "secretValueHidden": false,
        "secretPath": s.path,
        "tags": [],
        "secretMetadata": [],
    })
}

/// The secret at index `i` as a write answers it: `{"secret": ...}` at its newest version,
/// with what the write routes' zod response schemas keep (Fastify serialises through them
/// and zod strips unknown keys): create answers the bare secretRawSchema, update and delete
/// add only secretValueHidden (v3 and v4 secret routers alike).
fn secret_answer(st: &InfisicalState, i: usize, method: &Method) -> Response {
    let Some((secret, v)) = st
        .secrets
        .get(i)
        .and_then(|s| s.versions.last().map(|v| (s, v)))
    else {
        return error_body(404, "NotFound", json!("Secret not found"));
    };
    let mut out = secret_json(st, secret, v);
    if let Some(o) = out.as_object_mut() {
        for key in ["secretPath", "tags", "secretMetadata"] {
            o.remove(key);
        }
        if *method == Method::POST {
            o.remove("secretValueHidden");
        }
    }
    Json(json!({ "secret": out })).into_response()
}

/// Infisical's name rules (`SecretNameSchema` for a create, `BaseSecretNameSchema`
/// otherwise): not blank; a new name holds no colon or slash.
fn invalid_name(name: &str, creating: bool) -> Option<&'static str> {
    if name.is_empty() {
        return Some("String must contain at least 1 character(s)");
    }
    (creating && (name.contains(':') || name.contains('/')))
        .then_some("Secret name cannot contain colon or forward slash.")
}

async fn list(
    api: Api,
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    respond_in_scope(&s, api, &headers, &q, |st, sc| {
        let sc = read_scope(st, sc);
        let recursive = q.get("recursive").is_some_and(|v| v == "true");
        let view = q.get("viewSecretValue").is_none_or(|v| v != "false");
        // As Infisical's getSecrets: with values, a secret the identity may see but not
        // read is refused in the folder asked for and left out below it; without, shown
        // with its value hidden.
        // Refused in the folder asked for only when a secret there cannot be read.
        let here = |x: &&StoredSecret| !x.deleted && x.environment == sc.env && x.path == sc.path;
        if view && st.value_hidden(&sc.path) && st.secrets.iter().any(|x| here(&x)) {
            return value_refused();
        }
        let secrets: Vec<Value> = st
            .secrets
            .iter()
            .filter(|x| !x.deleted && x.environment == sc.env)
            // Recursive: the folder's subfolders, never a sibling sharing its prefix (listing
            // `/app` does not list `/application`).
            .filter(|x| {
                x.path == sc.path
                    || (recursive
                        && (sc.path == "/"
                            || x.path
                                .starts_with(&format!("{}/", sc.path.trim_end_matches('/')))))
            })
            .filter(|x| !(view && st.value_hidden(&x.path) && !st.hidden_values_listed))
            .filter_map(|x| {
                let v = x.versions.last()?;
                let mut item = secret_json(st, x, v);
                if !view || st.value_hidden(&x.path) {
                    item["secretValue"] = json!(HIDDEN_VALUE);
                    item["secretValueHidden"] = json!(true);
                }
                Some(item)
            })
            .collect();
        Json(json!({"secrets": secrets, "imports": []})).into_response()
    })
}

async fn get_one(
    api: Api,
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    respond_in_scope(&s, api, &headers, &q, |st, sc| {
        let sc = read_scope(st, sc);
        let Some(i) = st.find(&sc.env, &sc.path, &name) else {
            return secret_not_found(&name, &sc);
        };
        let view = q.get("viewSecretValue").is_none_or(|v| v != "false");
        if view && st.value_hidden(&sc.path) {
            return value_refused();
        }
        let secret = &st.secrets[i];
        let version = match q.get("version") {
            None => secret.versions.last(),
            Some(v) => match v.parse::<u64>() {
                Ok(n) => secret.versions.iter().find(|x| x.version == n),
                Err(_) => return zod("version", "Expected number, received nan"),
            },
        };
        match version {
            Some(v) => {
                let mut item = secret_json(st, secret, v);
                if !view {
                    item["secretValue"] = json!(HIDDEN_VALUE);
                    item["secretValueHidden"] = json!(true);
                }
                Json(json!({ "secret": item })).into_response()
            }
            None => secret_not_found(&name, &sc),
        }
    })
}

/// POST creates, PATCH updates (a new version), DELETE removes; all answer 200 `{secret}`.
async fn write(
    api: Api,
    State(s): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match json_or_empty(&body) {
        Ok(v) => v,
        Err(_) => return error_body(400, "BadRequest", json!("Body is not valid JSON")),
    };
    let params: HashMap<String, String> = body
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let name = name.trim().to_string();
    if let Some(problem) = invalid_name(&name, method == Method::POST) {
        return error_body(
            422,
            "ValidationFailure",
            json!([{"code": "custom", "message": problem, "path": ["secretName"]}]),
        );
    }
    respond_in_scope(&s, api, &headers, &params, |st, sc| {
        let existing = st.find(&sc.env, &sc.path, &name);
        let not_found = || secret_not_found(&name, &sc);
        let op = match (method.as_str(), existing) {
            ("POST", Some(_)) => {
                return error_body(400, "BadRequest", json!("Secret already exist"))
            }
            ("POST", None) => {
                let Some(value) = params.get("secretValue") else {
                    return zod("secretValue", "Required");
                };
                if !st.folder_exists(&sc.env, &sc.path) {
                    return error_body(
                        404,
                        "NotFound",
                        json!(format!(
                            "Folder with path '{}' in environment with slug '{}' not found",
                            sc.path, sc.env
                        )),
                    );
                }
                Op::Create {
                    value: value.clone(),
                }
            }
            ("PATCH", Some(i)) => match params.get("secretValue") {
                Some(value) => Op::Update {
                    value: value.clone(),
                },
                // Nothing to change: the secret as it is.
                None => return secret_answer(st, i, &method),
            },
            ("DELETE", Some(_)) => Op::Delete,
            _ => return not_found(),
        };
        // A covered write is filed for review and changes nothing yet (200, not 202).
        let filed = st
            .approvals
            .file(sc.actor, &sc.env, &sc.path, &name, op.clone());
        if let Some(approval) = filed {
            return Json(json!({ "approval": approval })).into_response();
        }
        let deleted = existing.filter(|_| op == Op::Delete);
        st.apply(&sc.env, &sc.path, &name, op);
        match deleted.or_else(|| st.find(&sc.env, &sc.path, &name)) {
            Some(i) => secret_answer(st, i, &method),
            None => not_found(),
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::testkit::{answer, expect, keys, raw, sent, sorted};
    use crate::{Sandbox, Scenario};
    use reqwest::{Method, RequestBuilder};
    use serde_json::{json, Value};

    /// vendor-apis.md §2.3 plus the route additions.
    const SECRET_FIELDS: [&str; 21] = [
        "id",
        "_id",
        "workspace",
        "environment",
        "version",
        "type",
        "secretKey",
        "secretValue",
        "secretComment",
        "secretReminderNote",
        "secretReminderRepeatDays",
        "skipMultilineEncoding",
        "createdAt",
        "updatedAt",
        "actor",
        "isRotatedSecret",
        "rotationId",
        "secretValueHidden",
        "secretPath",
        "tags",
        "secretMetadata",
    ];

    async fn sb() -> Sandbox {
        Sandbox::start(Scenario::default().with_postmark_token("infsim-0001"))
            .await
            .unwrap()
    }

    /// Values the identity may not read: a read without values masks it as Infisical does,
    /// a read with values is refused, and a listing of an empty such folder is not.
    #[tokio::test]
    async fn a_value_the_identity_may_not_read_is_masked_or_refused() {
        let mut scenario = Scenario::default().with_postmark_token("infsim-0001");
        scenario
            .infisical
            .secrets
            .push(crate::scenario::SecretSpec {
                environment: "prod".into(),
                path: "/ci".into(),
                name: "CI_KEY".into(),
                versions: vec!["ci-value".into()],
            });
        scenario.infisical.value_hidden_folders = vec!["/ci".into(), "/empty".into()];
        scenario.infisical.folders = vec!["/empty".into()];
        let sb = Sandbox::start(scenario).await.unwrap();
        let one = "/api/v4/secrets/CI_KEY?projectId=raxx-project&environment=prod&secretPath=/ci";
        let hidden = expect(200, get(&sb, &format!("{one}&viewSecretValue=false"))).await;
        assert_eq!(
            (
                hidden["secret"]["secretValue"].as_str(),
                hidden["secret"]["secretValueHidden"].as_bool()
            ),
            (Some(super::HIDDEN_VALUE), Some(true))
        );
        expect(403, get(&sb, one)).await;
        expect(
            200,
            get(
                &sb,
                "/api/v4/secrets?projectId=raxx-project&environment=prod&secretPath=/empty",
            ),
        )
        .await;
    }

    /// A recursive listing of `/app` holds its subfolders, not the sibling `/application`
    /// (Infisical lists by folder, not by prefix).
    #[tokio::test]
    async fn a_recursive_listing_holds_subfolders_not_siblings_sharing_a_prefix() {
        let mut scenario = Scenario::default().with_postmark_token("infsim-0001");
        for (path, name) in [("/app", "A"), ("/app/ci", "B"), ("/application", "C")] {
            scenario
                .infisical
                .secrets
                .push(crate::scenario::SecretSpec {
                    environment: "prod".into(),
                    path: path.into(),
                    name: name.into(),
                    versions: vec!["v".into()],
                });
        }
        let sb = Sandbox::start(scenario).await.unwrap();
        let list = expect(
            200,
            get(&sb, "/api/v4/secrets?projectId=raxx-project&environment=prod&secretPath=/app&recursive=true"),
        )
        .await;
        let mut names: Vec<&str> = list["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["secretKey"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["A", "B"]);
    }

    /// A request without credentials.
    fn bare(sb: &Sandbox, method: Method, path_and_query: &str) -> RequestBuilder {
        raw().request(method, format!("{}{path_and_query}", sb.infisical_url()))
    }

    /// A request with the sandbox's token.
    fn call(sb: &Sandbox, method: Method, path_and_query: &str) -> RequestBuilder {
        bare(sb, method, path_and_query).bearer_auth(&sb.credentials().infisical_token)
    }

    fn get(sb: &Sandbox, path_and_query: &str) -> RequestBuilder {
        call(sb, Method::GET, path_and_query)
    }

    /// Infisical Cloud's pool: over it, 429 with the wait only in the message (the engine
    /// reads "try again in N seconds"); the status check is exempt; the state counts refusals.
    #[tokio::test]
    async fn a_scenario_pool_refuses_with_the_wait_in_the_message() {
        let mut scenario = Scenario::default().with_postmark_token("infsim-0001");
        scenario.infisical.rate_limit = Some(crate::scenario::RateLimitSpec {
            capacity: 1,
            per_minute: 6.0,
        });
        let sb = Sandbox::start(scenario).await.unwrap();
        let read = || {
            get(
                &sb,
                "/api/v4/secrets/POSTMARK_SERVER_TOKEN?projectId=raxx-project&environment=prod",
            )
        };
        expect(200, read()).await;
        let body = expect(429, read()).await;
        assert_eq!(body["error"], "RateLimitExceeded");
        // One token every ten seconds: the wait is what is left of them, in whole seconds.
        let message = body["message"].as_str().unwrap();
        let secs: u64 = message
            .trim_start_matches("Rate limit exceeded. Please try again in ")
            .trim_end_matches(" seconds")
            .parse()
            .unwrap();
        assert!((1..=10).contains(&secs), "{message}");
        expect(200, bare(&sb, Method::GET, "/api/status")).await;
        // The sandbox's control routes stand for a person, not API traffic.
        expect(200, bare(&sb, Method::GET, "/_sandbox/approvals")).await;
        assert_eq!(sb.state()["infisical"]["rate_limit"]["refused"], 1);
    }

    #[tokio::test]
    async fn v3_raw_and_v4_return_the_secret_shape() {
        let sb = sb().await;
        let fields = SECRET_FIELDS;
        for url in [
            "/api/v3/secrets/raw/POSTMARK_SERVER_TOKEN?workspaceId=raxx-project&environment=prod&secretPath=/",
            "/api/v3/secrets/raw/POSTMARK_SERVER_TOKEN?workspaceSlug=raxx&environment=prod",
            "/api/v4/secrets/POSTMARK_SERVER_TOKEN?projectId=raxx-project&environment=prod&secretPath=%2F",
        ] {
            let body = expect(200, get(&sb, url)).await;
            assert_eq!(keys(&body), vec!["secret"]);
            let s = &body["secret"];
            assert_eq!(keys(s), sorted(&fields));
            assert_eq!((s["_id"].clone(), s["workspace"].as_str()), (s["id"].clone(), Some("raxx-project")));
            assert_eq!((s["version"].as_u64(), s["secretValue"].as_str()), (Some(2), Some("infsim-0001")));
        }
        let list = expect(200, get(&sb, "/api/v4/secrets?projectId=raxx-project&environment=prod&secretPath=/&includeImports=false")).await;
        assert_eq!(keys(&list), vec!["imports", "secrets"]);
        assert_eq!(list["secrets"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn errors_carry_the_infisical_envelope() {
        let sb = sb().await;
        let body = expect(422, get(&sb, "/api/v4/secrets/X?environment=prod")).await;
        assert_eq!(keys(&body), vec!["error", "message", "reqId", "statusCode"]);
        assert_eq!(
            (body["error"].as_str(), body["statusCode"].as_u64()),
            (Some("ValidationFailure"), Some(422))
        );
        assert!(body["message"].is_array());

        let read = || {
            bare(
                &sb,
                Method::GET,
                "/api/v4/secrets/X?projectId=raxx-project&environment=prod",
            )
        };
        let body = expect(404, read().bearer_auth("st.unknown.service.token")).await;
        assert_eq!(
            (body["error"].as_str(), body["message"].as_str()),
            (
                Some("NotFound"),
                Some("Service token with ID 'unknown' not found")
            )
        );
        let body = expect(403, read().bearer_auth("not.a.jwt")).await;
        assert_eq!(
            (body["error"].as_str(), body["message"].as_str()),
            (Some("TokenError"), Some(super::MALFORMED))
        );
        let resp = sent(bare(&sb, Method::GET, "/api/v4/secrets/X")).await;
        assert_eq!(resp.status(), 401);
    }

    #[tokio::test]
    async fn login_accepts_the_trailing_slash_and_issues_bearer_tokens() {
        let sb = sb().await;
        let c = sb.credentials().clone();
        for path in [
            "/api/v1/auth/universal-auth/login",
            "/api/v1/auth/universal-auth/login/",
        ] {
            let login = bare(&sb, Method::POST, path)
                .json(&json!({"clientId": c.infisical_client_id, "clientSecret": c.infisical_client_secret}));
            let body = expect(200, login).await;
            assert_eq!(
                keys(&body),
                vec!["accessToken", "accessTokenMaxTTL", "expiresIn", "tokenType"]
            );
            assert_eq!(
                (body["tokenType"].as_str(), body["expiresIn"].as_u64()),
                (Some("Bearer"), Some(7200))
            );
            let token = body["accessToken"].as_str().unwrap();
            let list = bare(
                &sb,
                Method::GET,
                "/api/v4/secrets?projectId=raxx-project&environment=prod",
            )
            .bearer_auth(token);
            assert_eq!(sent(list).await.status(), 200);
        }
    }

    #[tokio::test]
    async fn v3_writes_follow_the_cli_flow_and_trim_values() {
        let sb = sb().await;
        let path = "/api/v3/secrets/raw/NEW_ONE";
        let write = |method: Method, body: &Value| call(&sb, method, path).json(body);
        let body = json!({"workspaceId": "raxx-project", "environment": "prod", "secretPath": "/", "secretValue": "  v1  ", "type": "shared"});
        let created = expect(200, write(Method::POST, &body)).await;
        assert_eq!(
            (
                created["secret"]["secretValue"].as_str(),
                created["secret"]["version"].as_u64()
            ),
            (Some("v1"), Some(1))
        );
        let again = expect(400, write(Method::POST, &body)).await;
        assert_eq!(again["message"], "Secret already exist");
        let patch =
            json!({"workspaceId": "raxx-project", "environment": "prod", "secretValue": "v2\n"});
        let updated = expect(200, write(Method::PATCH, &patch)).await;
        assert_eq!(
            (
                updated["secret"]["secretValue"].as_str(),
                updated["secret"]["version"].as_u64()
            ),
            (Some("v2\n"), Some(2))
        );
        let del = json!({"workspaceId": "raxx-project", "environment": "prod"});
        assert_eq!(sent(write(Method::DELETE, &del)).await.status(), 200);
        assert_eq!(sent(write(Method::PATCH, &patch)).await.status(), 404);
    }

    fn protected(approve_after_ms: Option<u64>) -> Scenario {
        let mut s = Scenario::default().with_postmark_token("infsim-0001");
        s.infisical
            .approval_policies
            .push(crate::scenario::ApprovalPolicySpec {
                approve_after_ms,
                // These tests write with the sandbox's identity token.
                applies_to: crate::scenario::AppliesTo::Everyone,
                ..Default::default()
            });
        s
    }

    async fn patch_v4(sb: &Sandbox, name: &str, value: &str) -> (u16, Value) {
        let req = call(sb, Method::PATCH, &format!("/api/v4/secrets/{name}"))
            .json(&json!({"projectId": "raxx-project", "environment": "prod", "secretPath": "/", "secretValue": value}));
        answer(req).await
    }

    async fn current(sb: &Sandbox) -> (u64, String) {
        let body = expect(
            200,
            get(
                sb,
                "/api/v4/secrets/POSTMARK_SERVER_TOKEN?projectId=raxx-project&environment=prod",
            ),
        )
        .await;
        let s = &body["secret"];
        (
            s["version"].as_u64().unwrap(),
            s["secretValue"].as_str().unwrap().to_string(),
        )
    }

    #[tokio::test]
    async fn a_protected_environment_files_a_change_request_that_applies_only_when_merged() {
        let sb = Sandbox::start(protected(None)).await.unwrap();
        let (status, body) = patch_v4(&sb, "POSTMARK_SERVER_TOKEN", "infsim-0002").await;
        assert_eq!(status, 200);
        assert_eq!(keys(&body), vec!["approval"]);
        let a = &body["approval"];
        assert_eq!(
            keys(a),
            sorted(&[
                "id",
                "policyId",
                "hasMerged",
                "status",
                "conflicts",
                "slug",
                "folderId",
                "bypassReason",
                "createdAt",
                "updatedAt",
                "isReplicated",
                "committerUserId",
                "statusChangedByUserId",
            ])
        );
        assert_eq!(
            (a["status"].as_str(), a["hasMerged"].as_bool()),
            (Some("open"), Some(false))
        );
        assert_eq!(current(&sb).await, (2, "infsim-0001".to_string()));

        let decide = |id: &str, how: &str| {
            bare(
                &sb,
                Method::POST,
                &format!("/_sandbox/approvals/{id}/{how}"),
            )
        };
        let slug = a["slug"].as_str().unwrap();
        assert_eq!(sent(decide(slug, "merge")).await.status(), 200);
        assert_eq!(current(&sb).await, (3, "infsim-0002".to_string()));
        // A request is decided once.
        assert_eq!(sent(decide(slug, "merge")).await.status(), 409);

        // A closed request changes nothing.
        let (_, body) = patch_v4(&sb, "POSTMARK_SERVER_TOKEN", "infsim-0003").await;
        let id = body["approval"]["id"].as_str().unwrap();
        assert_eq!(sent(decide(id, "close")).await.status(), 200);
        assert_eq!(current(&sb).await, (3, "infsim-0002".to_string()));
        let list = answer(bare(&sb, Method::GET, "/_sandbox/approvals"))
            .await
            .1;
        let states: Vec<(bool, &str)> = list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["hasMerged"].as_bool().unwrap(),
                    a["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(states, vec![(true, "close"), (false, "close")]);
    }

    #[tokio::test]
    async fn a_simulated_approver_merges_when_its_time_is_due() {
        let sb = Sandbox::start(protected(Some(0))).await.unwrap();
        let (_, body) = patch_v4(&sb, "POSTMARK_SERVER_TOKEN", "infsim-0002").await;
        assert!(body.get("approval").is_some());
        assert_eq!(current(&sb).await, (3, "infsim-0002".to_string()));
        // Another environment is not covered: its writes apply at once.
        let create = call(&sb, Method::POST, "/api/v4/secrets/FRESH").json(
            &json!({"projectId": "raxx-project", "environment": "staging", "secretValue": "v"}),
        );
        let (_, body) = answer(create).await;
        assert_eq!(keys(&body), vec!["secret"]);
    }

    /// Infisical's secret routes file a change request only for a user
    /// (`req.permission.type === ActorType.USER`): a machine identity writes directly.
    #[tokio::test]
    async fn a_policy_covers_users_and_lets_machine_identities_write_directly() {
        let mut scenario = Scenario::default().with_postmark_token("infsim-0001");
        scenario.infisical.user_token = Some("user-session-jwt".into());
        scenario
            .infisical
            .approval_policies
            .push(crate::scenario::ApprovalPolicySpec::default());
        let sb = Sandbox::start(scenario).await.unwrap();
        let (status, body) = patch_v4(&sb, "POSTMARK_SERVER_TOKEN", "from-the-identity").await;
        assert_eq!(status, 200);
        assert_eq!(keys(&body), vec!["secret"]);
        assert_eq!(current(&sb).await.1, "from-the-identity");

        let as_user = bare(&sb, Method::PATCH, "/api/v4/secrets/POSTMARK_SERVER_TOKEN")
            .bearer_auth("user-session-jwt")
            .json(&json!({"projectId": "raxx-project", "environment": "prod", "secretPath": "/", "secretValue": "from-a-person"}));
        let body = expect(200, as_user).await;
        assert_eq!(keys(&body), vec!["approval"]);
        assert_eq!(
            current(&sb).await.1,
            "from-the-identity",
            "waits for the merge"
        );

        // A universal-auth login is an identity too.
        let cred = sb.credentials();
        let login = bare(&sb, Method::POST, "/api/v1/auth/universal-auth/login")
            .json(&json!({"clientId": cred.infisical_client_id, "clientSecret": cred.infisical_client_secret}));
        let access = expect(200, login).await["accessToken"]
            .as_str()
            .unwrap()
            .to_string();
        let as_login = bare(&sb, Method::PATCH, "/api/v4/secrets/POSTMARK_SERVER_TOKEN")
            .bearer_auth(access)
            .json(&json!({"projectId": "raxx-project", "environment": "prod", "secretPath": "/", "secretValue": "from-a-login"}));
        assert_eq!(keys(&expect(200, as_login).await), vec!["secret"]);
        assert_eq!(current(&sb).await.1, "from-a-login");

        // A request is read with a user's session only (`verifyAuth([AuthMode.JWT])`).
        let id = body["approval"]["id"].as_str().unwrap().to_string();
        let route = format!("/api/v1/secret-approval-requests/{id}");
        let read = bare(&sb, Method::GET, &route).bearer_auth("user-session-jwt");
        let got = expect(200, read).await;
        assert_eq!(got["approval"]["status"], "open");
        assert_eq!(got["approval"]["hasMerged"], false);
        let forbidden = expect(403, call(&sb, Method::GET, &route)).await;
        assert_eq!(forbidden["error"], "ForbiddenError");
        let unknown = bare(&sb, Method::GET, "/api/v1/secret-approval-requests/nope")
            .bearer_auth("user-session-jwt");
        expect(404, unknown).await;
    }

    #[tokio::test]
    async fn a_new_secret_name_with_a_colon_or_slash_is_refused() {
        let sb = sb().await;
        for name in ["BAD:NAME", "BAD%2FNAME"] {
            let create = call(&sb, Method::POST, &format!("/api/v4/secrets/{name}")).json(
                &json!({"projectId": "raxx-project", "environment": "prod", "secretValue": "v"}),
            );
            let body = expect(422, create).await;
            assert_eq!(body["error"], "ValidationFailure");
            assert_eq!(
                body["message"][0]["message"],
                "Secret name cannot contain colon or forward slash."
            );
        }
        assert_eq!(
            sb.state()["infisical"]["secrets"].as_array().map(Vec::len),
            Some(1)
        );
    }
}
