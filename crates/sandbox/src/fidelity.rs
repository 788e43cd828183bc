//! Fidelity: every answer the engine relies on, validated strictly against the vendor's own
//! published schema (`tests/specs/`), so a simulator cannot drift kinder than the real API.
//!
//! Heroku against its hyper-schema (strict: every property, no extras, nested identities
//! too), Infisical against the zod response schemas of its v4 secret router (transcribed in
//! `infisical-v4-secrets.schema.json`), Postmark against its server swagger. Error bodies are
//! validated as well as successes.

use crate::scenario::{RateLimitSpec, SecretSpec};
use crate::testkit::{
    answer, expect, heroku_check, heroku_config_vars_check, heroku_error_check, heroku_link_check,
    infisical_check, on_app, platform, postmark_check, raw, HEROKU_ACCEPT,
};
use crate::{FaultRule, Sandbox, Scenario};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Heroku
// ---------------------------------------------------------------------------------------

/// The default scenario's app (`on_app`'s).
const APP: &str = "raxx-api-prod";
/// The href suffix of the dyno `Restart` link (`DELETE /apps/{app}/dynos/{dyno}`).
const DYNO_IDENTITY: &str = "/dynos/{(%23%2Fdefinitions%2Fdyno%2Fdefinitions%2Fidentity)}";

async fn heroku() -> Sandbox {
    Sandbox::start(Scenario::default()).await.unwrap()
}

/// A Heroku refusal: `status` and the error body the CLI reads, with `id`.
async fn heroku_refusal(req: RequestBuilder, status: u16, id: &str) -> Value {
    let body = expect(status, req).await;
    heroku_error_check(&body);
    assert_eq!(body["id"], id, "{body}");
    body
}

/// A config-var answer to `method`: the link's target schema, strings only, the SOP's
/// token among them.
fn check_config_vars_answer(method: &str, vars: &Value) {
    heroku_link_check("config-var", method, "/config-vars", vars);
    heroku_config_vars_check(vars, false);
    assert!(vars["POSTMARK_SERVER_TOKEN"].is_string());
}

#[tokio::test]
async fn heroku_app_info_matches_the_schema_strictly() {
    let sb = heroku().await;
    let app = expect(200, on_app(&sb, Method::GET, "")).await;
    heroku_check("/definitions/app", &app, true);
    assert_eq!(app["name"], APP);
    // The app's id names it as well as its name does.
    let id = app["id"].as_str().unwrap();
    let by_id = expect(200, platform(&sb, Method::GET, &format!("/apps/{id}"))).await;
    heroku_check("/definitions/app", &by_id, true);
    assert_eq!(by_id["name"], APP);
}

/// The app's config vars and a release's: the same map of strings.
#[tokio::test]
async fn heroku_config_vars_and_release_config_vars_are_a_map_of_strings() {
    let sb = heroku().await;
    for suffix in ["/config-vars", "/releases/1/config-vars"] {
        let vars = expect(200, on_app(&sb, Method::GET, suffix)).await;
        check_config_vars_answer("GET", &vars);
    }
}

#[tokio::test]
async fn heroku_config_vars_patch_answers_the_whole_map_of_strings() {
    let sb = heroku().await;
    let change = json!({"FOO": "bar", "RAPTOR_ENV": null});
    // The body itself is what the schema allows a PATCH: strings set, null removes.
    heroku_config_vars_check(&change, true);
    let vars = expect(
        200,
        on_app(&sb, Method::PATCH, "/config-vars").json(&change),
    )
    .await;
    check_config_vars_answer("PATCH", &vars);
    assert_eq!(vars["FOO"], "bar");
    assert!(vars.get("RAPTOR_ENV").is_none());
}

#[tokio::test]
async fn heroku_dynos_match_the_schema_strictly() {
    let sb = heroku().await;
    let dynos = expect(200, on_app(&sb, Method::GET, "/dynos")).await;
    heroku_link_check("dyno", "GET", "/dynos", &dynos);
    let dynos = dynos.as_array().unwrap();
    assert!(!dynos.is_empty());
    for d in dynos {
        heroku_check("/definitions/dyno", d, true);
        // vendor-apis.md §3.4: the states a dyno can be in.
        let state = d["state"].as_str().unwrap();
        assert!(
            ["crashed", "down", "idle", "starting", "up"].contains(&state),
            "{state}"
        );
        assert_eq!(d["app"]["name"], APP);
    }
}

/// Restarting every dyno and restarting one: each answers its link's target schema.
#[tokio::test]
async fn heroku_restarts_answer_the_empty_object_of_the_schema() {
    let sb = heroku().await;
    for (suffix, href) in [("/dynos", "/dynos"), ("/dynos/web.1", DYNO_IDENTITY)] {
        let (status, body) = answer(on_app(&sb, Method::DELETE, suffix)).await;
        assert!((200..300).contains(&status), "{suffix}: {status}");
        heroku_link_check("dyno", "DELETE", href, &body);
    }
}

#[tokio::test]
async fn heroku_release_list_matches_the_schema_strictly() {
    let sb = heroku().await;
    // A config change makes a second release.
    expect(
        200,
        on_app(&sb, Method::PATCH, "/config-vars").json(&json!({"N": "1"})),
    )
    .await;
    let list = expect(200, on_app(&sb, Method::GET, "/releases")).await;
    heroku_link_check("release", "GET", "/releases", &list);
    let releases = list.as_array().unwrap();
    assert_eq!(releases.len(), 2);
    for r in releases {
        heroku_check("/definitions/release", r, true);
    }
    // A page of a ranged list (206) holds the same objects.
    let page = expect(
        206,
        on_app(&sb, Method::GET, "/releases").header("Range", "version ..; max=1, order=desc"),
    )
    .await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    heroku_check("/definitions/release", &page[0], true);
    assert_eq!(page[0]["version"], 2);
}

#[tokio::test]
async fn heroku_release_info_matches_the_schema_strictly() {
    let sb = heroku().await;
    let by_version = expect(200, on_app(&sb, Method::GET, "/releases/1")).await;
    heroku_check("/definitions/release", &by_version, true);
    let id = by_version["id"].as_str().unwrap();
    let by_id = expect(200, on_app(&sb, Method::GET, &format!("/releases/{id}"))).await;
    heroku_check("/definitions/release", &by_id, true);
    assert_eq!(by_id["version"], 1);
}

#[tokio::test]
async fn heroku_log_session_matches_the_schema_strictly() {
    let sb = heroku().await;
    // The body the engine sends.
    let session = expect(
        201,
        on_app(&sb, Method::POST, "/log-sessions").json(&json!({"lines": 10, "tail": false})),
    )
    .await;
    heroku_check("/definitions/log-session", &session, true);
}

#[tokio::test]
async fn heroku_401_for_a_bad_or_missing_key_matches_the_error_schema() {
    let sb = heroku().await;
    let url = format!("{}/apps/{APP}/config-vars", sb.heroku_url());
    for req in [
        raw()
            .get(&url)
            .header("Accept", HEROKU_ACCEPT)
            .bearer_auth("nope"),
        raw().get(&url).header("Accept", HEROKU_ACCEPT),
    ] {
        heroku_refusal(req, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn heroku_404_for_an_unknown_app_matches_the_error_schema() {
    let sb = heroku().await;
    for (method, path) in [
        (Method::GET, "/apps/ghost"),
        (Method::GET, "/apps/ghost/config-vars"),
        (Method::GET, "/apps/ghost/dynos"),
        (Method::DELETE, "/apps/ghost/dynos"),
        (Method::GET, "/apps/ghost/releases"),
        (Method::POST, "/apps/ghost/log-sessions"),
    ] {
        heroku_refusal(platform(&sb, method, path), 404, "not_found").await;
    }
}

#[tokio::test]
async fn heroku_404_for_an_unknown_release_dyno_or_route_matches_the_error_schema() {
    let sb = heroku().await;
    for req in [
        on_app(&sb, Method::GET, "/releases/99"),
        on_app(&sb, Method::DELETE, "/dynos/web.9"),
        platform(&sb, Method::GET, "/no-such-endpoint"),
    ] {
        heroku_refusal(req, 404, "not_found").await;
    }
}

#[tokio::test]
async fn heroku_406_without_the_accept_header_matches_the_error_schema() {
    let sb = heroku().await;
    let req = raw()
        .get(format!("{}/apps/{APP}/config-vars", sb.heroku_url()))
        .bearer_auth(&sb.credentials().heroku_api_key);
    heroku_refusal(req, 406, "not_acceptable").await;
}

#[tokio::test]
async fn heroku_400_for_a_config_body_that_is_not_an_object_matches_the_error_schema() {
    let sb = heroku().await;
    let req = on_app(&sb, Method::PATCH, "/config-vars").json(&json!(["A"]));
    heroku_refusal(req, 400, "bad_request").await;
}

#[tokio::test]
async fn heroku_422_invalid_params_matches_the_error_schema() {
    let sb = heroku().await;
    for (method, suffix, body) in [
        (Method::PATCH, "/config-vars", json!({"NOT-A-NAME": "x"})),
        (Method::PATCH, "/config-vars", json!({"A": 1})),
        (Method::POST, "/log-sessions", json!({"lines": "ten"})),
        (Method::POST, "/log-sessions", json!({"source": "router"})),
    ] {
        let req = on_app(&sb, method, suffix).json(&body);
        heroku_refusal(req, 422, "invalid_params").await;
    }
}

#[tokio::test]
async fn heroku_429_rate_limit_matches_the_error_schema() {
    let mut scenario = Scenario::default();
    scenario.heroku.rate_limit = RateLimitSpec {
        capacity: 1,
        per_minute: 0.0,
    };
    let sb = Sandbox::start(scenario).await.unwrap();
    expect(200, on_app(&sb, Method::GET, "")).await;
    heroku_refusal(on_app(&sb, Method::GET, ""), 429, "rate_limit").await;
}

#[tokio::test]
async fn heroku_fault_answers_match_the_error_schema() {
    let sb = heroku().await;
    for status in [400, 401, 403, 404, 406, 409, 416, 422, 429, 500, 503] {
        sb.add_fault(FaultRule::parse(&format!("heroku:GET:/apps/{APP}={status}:once")).unwrap());
        heroku_error_check(&expect(status, on_app(&sb, Method::GET, "")).await);
    }
}

/// A key without the scope a route needs is refused in Heroku's error shape.
#[tokio::test]
async fn heroku_403_for_a_missing_scope_matches_the_error_schema() {
    let mut scenario = Scenario::default();
    scenario.heroku.scopes = vec!["read".into()];
    let sb = Sandbox::start(scenario).await.unwrap();
    heroku_refusal(on_app(&sb, Method::GET, "/config-vars"), 403, "forbidden").await;
}

#[test]
#[should_panic(expected = "\"version\" is a required property at /release")]
fn heroku_strict_checks_reach_nested_identities() {
    // A whole dyno but for its release's version.
    heroku_check(
        "/definitions/dyno",
        &json!({
            "attach_url": null, "command": "bin/raptor", "created_at": "2026-01-01T00:00:00Z",
            "id": "01234567-89ab-cdef-0123-456789abcdef", "name": "web.1",
            "release": {"id": "01234567-89ab-cdef-0123-456789abcdef"},
            "app": {"id": "01234567-89ab-cdef-0123-456789abcdef", "name": "raxx-api-prod"},
            "size": "Basic", "state": "up", "type": "web", "updated_at": "2026-01-01T00:00:00Z",
        }),
        true,
    );
}

#[test]
#[should_panic(expected = "null is not of type \"string\" at /B")]
fn heroku_config_var_answers_may_not_hold_null() {
    heroku_config_vars_check(&json!({"A": "1", "B": null}), false);
}

#[test]
#[should_panic(expected = "\"message\" is a required property")]
fn heroku_error_checks_catch_a_missing_message() {
    heroku_error_check(&json!({"id": "not_found"}));
}

#[test]
#[should_panic(expected = "'error' was unexpected")]
fn heroku_error_checks_catch_an_unknown_key() {
    heroku_error_check(&json!({"id": "not_found", "message": "m", "error": "NotFound"}));
}

// ---------------------------------------------------------------------------------------
// Infisical v4
// ---------------------------------------------------------------------------------------

const SECRET: &str = "POSTMARK_SERVER_TOKEN";
/// The SOP's project and environment, as a query.
const PROD: &str = "projectId=raxx-project&environment=prod";

/// The SOP's project, plus a secret in folder `/nested` for recursive lists.
async fn infisical() -> Sandbox {
    let mut scenario = Scenario::default();
    scenario.infisical.secrets.push(SecretSpec {
        path: "/nested".into(),
        name: "NESTED_ONE".into(),
        versions: vec!["n1".into()],
        ..SecretSpec::default()
    });
    Sandbox::start(scenario).await.unwrap()
}

/// A v4 request without credentials.
fn v4_bare(sb: &Sandbox, method: Method, path_and_query: &str) -> RequestBuilder {
    raw().request(
        method,
        format!("{}/api/v4{path_and_query}", sb.infisical_url()),
    )
}

/// A v4 request with the sandbox's token.
fn v4(sb: &Sandbox, method: Method, path_and_query: &str) -> RequestBuilder {
    v4_bare(sb, method, path_and_query).bearer_auth(&sb.credentials().infisical_token)
}

/// A v4 write of secret `name` in `raxx-project`/`prod`/`/`, `extra` added to the body.
fn v4_write(sb: &Sandbox, method: Method, name: &str, extra: Value) -> RequestBuilder {
    let mut body = json!({"projectId": "raxx-project", "environment": "prod", "secretPath": "/"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    v4(sb, method, &format!("/secrets/{name}")).json(&body)
}

/// A v4 write that is answered 200, held to the route's response schema `definition`.
async fn v4_written(
    sb: &Sandbox,
    method: Method,
    name: &str,
    extra: Value,
    definition: &str,
) -> Value {
    let body = expect(200, v4_write(sb, method, name, extra)).await;
    infisical_check(definition, &body);
    body
}

/// A read of the SOP's secret without credentials.
fn read_bare(sb: &Sandbox) -> RequestBuilder {
    v4_bare(sb, Method::GET, &format!("/secrets/{SECRET}?{PROD}"))
}

/// An Infisical refusal: `status` and the envelope, with the same status and `error` name.
async fn infisical_refusal(req: RequestBuilder, status: u16, error: &str) -> Value {
    let body = expect(status, req).await;
    infisical_check("error", &body);
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    body
}

/// A v4 list of `/` (with `more` in the query), held to its schema.
async fn v4_list(sb: &Sandbox, more: &str) -> Value {
    let req = v4(
        sb,
        Method::GET,
        &format!("/secrets?{PROD}&secretPath=/{more}"),
    );
    let body = expect(200, req).await;
    infisical_check("listSecretsV4Response", &body);
    body
}

#[tokio::test]
async fn infisical_v4_get_one_matches_the_schema() {
    let sb = infisical().await;
    for query in ["", "&version=1"] {
        let path = format!("/secrets/{SECRET}?{PROD}&secretPath=/{query}");
        let body = expect(200, v4(&sb, Method::GET, &path)).await;
        infisical_check("getSecretByNameV4Response", &body);
        assert_eq!(body["secret"]["secretKey"], SECRET);
    }
}

#[tokio::test]
async fn infisical_v4_list_matches_the_schema() {
    let sb = infisical().await;
    let body = v4_list(&sb, "").await;
    assert_eq!(body["secrets"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn infisical_v4_recursive_list_matches_the_schema() {
    let sb = infisical().await;
    let body = v4_list(&sb, "&recursive=true").await;
    // The folder's secret is in it too.
    assert_eq!(body["secrets"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn infisical_v4_create_matches_the_schema() {
    let sb = infisical().await;
    let extra = json!({"secretValue": "v1", "type": "shared"});
    let body = v4_written(
        &sb,
        Method::POST,
        "NEW_ONE",
        extra,
        "createSecretV4Response",
    )
    .await;
    let secret = &body["secret"];
    assert_eq!(
        (secret["secretKey"].as_str(), secret["version"].as_u64()),
        (Some("NEW_ONE"), Some(1))
    );
}

#[tokio::test]
async fn infisical_v4_update_matches_the_schema() {
    let sb = infisical().await;
    let extra = json!({"secretValue": "v3", "type": "shared"});
    let body = v4_written(&sb, Method::PATCH, SECRET, extra, "updateSecretV4Response").await;
    let secret = &body["secret"];
    assert_eq!(
        (secret["secretValue"].as_str(), secret["version"].as_u64()),
        (Some("v3"), Some(3))
    );
}

#[tokio::test]
async fn infisical_v4_delete_matches_the_schema() {
    let sb = infisical().await;
    let extra = json!({"type": "shared"});
    let body = v4_written(&sb, Method::DELETE, SECRET, extra, "deleteSecretV4Response").await;
    assert_eq!(body["secret"]["secretKey"], SECRET);
}

#[tokio::test]
async fn infisical_401_without_an_authorization_header_matches_the_error_envelope() {
    let sb = infisical().await;
    infisical_refusal(read_bare(&sb), 401, "UnauthorizedError").await;
}

#[tokio::test]
async fn infisical_403_token_error_for_a_malformed_token_matches_the_error_envelope() {
    let sb = infisical().await;
    let req = read_bare(&sb).bearer_auth("not.a.jwt");
    infisical_refusal(req, 403, "TokenError").await;
}

#[tokio::test]
async fn infisical_403_token_error_for_an_expired_token_matches_the_error_envelope() {
    let sb = infisical().await;
    let c = sb.credentials();
    let login = expect(
        200,
        raw()
            .post(format!("{}/api/v1/auth/universal-auth/login", sb.infisical_url()))
            .json(&json!({"clientId": c.infisical_client_id, "clientSecret": c.infisical_client_secret})),
    )
    .await;
    sb.infisical_expire_tokens();
    let req = read_bare(&sb).bearer_auth(login["accessToken"].as_str().unwrap());
    infisical_refusal(req, 403, "TokenError").await;
}

#[tokio::test]
async fn infisical_403_permission_denied_for_another_project_matches_the_error_envelope() {
    let sb = infisical().await;
    let path = format!("/secrets/{SECRET}?projectId=someone-elses&environment=prod");
    infisical_refusal(v4(&sb, Method::GET, &path), 403, "PermissionDenied").await;
}

#[tokio::test]
async fn infisical_404_for_a_missing_secret_matches_the_error_envelope() {
    let sb = infisical().await;
    let path = format!("/secrets/NO_SUCH_SECRET?{PROD}");
    infisical_refusal(v4(&sb, Method::GET, &path), 404, "NotFound").await;
    let req = v4_write(
        &sb,
        Method::PATCH,
        "NO_SUCH_SECRET",
        json!({"secretValue": "x"}),
    );
    infisical_refusal(req, 404, "NotFound").await;
}

#[tokio::test]
async fn infisical_422_validation_failure_without_a_project_id_matches_the_error_envelope() {
    let sb = infisical().await;
    let path = format!("/secrets/{SECRET}?environment=prod");
    let body = infisical_refusal(v4(&sb, Method::GET, &path), 422, "ValidationFailure").await;
    assert_eq!(body["message"][0]["path"], json!(["projectId"]));
    let req = v4(&sb, Method::POST, "/secrets/NEW_ONE")
        .json(&json!({"environment": "prod", "secretValue": "v"}));
    infisical_refusal(req, 422, "ValidationFailure").await;
}

#[tokio::test]
async fn infisical_400_when_the_secret_already_exists_matches_the_error_envelope() {
    let sb = infisical().await;
    let req = v4_write(&sb, Method::POST, SECRET, json!({"secretValue": "again"}));
    let body = infisical_refusal(req, 400, "BadRequest").await;
    assert_eq!(body["message"], "Secret already exist");
}

#[tokio::test]
async fn infisical_fault_answers_match_the_error_envelope() {
    let sb = infisical().await;
    for status in [400, 401, 403, 404, 422, 429, 500, 504] {
        sb.add_fault(
            FaultRule::parse(&format!("infisical:GET:/api/v4/secrets={status}:once")).unwrap(),
        );
        let body = expect(status, v4(&sb, Method::GET, &format!("/secrets?{PROD}"))).await;
        infisical_check("error", &body);
        assert_eq!(body["statusCode"], status);
    }
}

/// On an environment with a secret-approval policy, each write answers the union's
/// approval branch: what the simulator files is held to `SecretApprovalRequestsSchema`.
#[tokio::test]
async fn infisical_v4_writes_under_an_approval_policy_answer_the_approval_branch() {
    let mut scenario = Scenario::default();
    scenario
        .infisical
        .approval_policies
        .push(crate::scenario::ApprovalPolicySpec {
            applies_to: crate::scenario::AppliesTo::Everyone,
            ..Default::default()
        });
    let sb = Sandbox::start(scenario).await.unwrap();
    for (method, name, definition, extra) in [
        (
            Method::POST,
            "BRAND_NEW",
            "createSecretV4Response",
            json!({"secretValue": "v1"}),
        ),
        (
            Method::PATCH,
            SECRET,
            "updateSecretV4Response",
            json!({"secretValue": "v2"}),
        ),
        (Method::DELETE, SECRET, "deleteSecretV4Response", json!({})),
    ] {
        let body = v4_written(&sb, method, name, extra, definition).await;
        infisical_check("secretApprovalRequest", &body["approval"]);
    }
}

/// A change request as `SecretApprovalRequestsSchema` serialises one (values invented).
fn approval_sample() -> Value {
    json!({
        "id": "6f1c2a8e-1b7d-4c3e-9a55-0d7f3b2e4c11",
        "policyId": "0b9e8d7c-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
        "hasMerged": false,
        "status": "open",
        "conflicts": [],
        "slug": "silver-otter-42",
        "folderId": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "bypassReason": null,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "isReplicated": false,
        "committerUserId": "f0e1d2c3-b4a5-4968-8776-655443322110",
        "statusChangedByUserId": null
    })
}

#[test]
fn infisical_approval_sample_matches_the_schema() {
    let approval = approval_sample();
    infisical_check("secretApprovalRequest", &approval);
    for definition in [
        "createSecretV4Response",
        "updateSecretV4Response",
        "deleteSecretV4Response",
    ] {
        infisical_check(definition, &json!({"approval": approval}));
    }
}

#[test]
#[should_panic(expected = "\"slug\" is a required property")]
fn infisical_approval_without_a_slug_is_refused() {
    let mut approval = approval_sample();
    approval.as_object_mut().unwrap().remove("slug");
    infisical_check("secretApprovalRequest", &approval);
}

#[test]
#[should_panic(expected = "'secretPath' was unexpected) at /secret")]
fn infisical_checks_catch_a_key_zod_would_strip() {
    // createSecretV4 answers the bare secretRawSchema: no secretPath.
    infisical_check(
        "createSecretV4Response",
        &json!({"secret": {
            "id": "s", "_id": "s", "workspace": "p", "environment": "prod", "version": 1,
            "type": "shared", "secretKey": "K", "secretValue": "v", "secretComment": "",
            "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
            "secretPath": "/"
        }}),
    );
}

#[test]
#[should_panic(expected = "\"bad\" is not of type \"array\" at /message")]
fn infisical_error_checks_catch_a_string_message_on_422() {
    infisical_check(
        "error",
        &json!({"reqId": "req-1", "statusCode": 422, "message": "bad", "error": "ValidationFailure"}),
    );
}

// ---------------------------------------------------------------------------------------
// Postmark
// ---------------------------------------------------------------------------------------

const PM_TOKEN: &str = "pmsim-0001";

/// Server `raxx-prod` with a known token; `new@raxx.app` signed but not confirmed, and
/// `gone@example.com` suppressed.
async fn postmark() -> Sandbox {
    let mut scenario = Scenario::default().with_postmark_token(PM_TOKEN);
    scenario.postmark.unconfirmed_signatures = vec!["new@raxx.app".into()];
    scenario.postmark.inactive_recipients = vec!["gone@example.com".into()];
    Sandbox::start(scenario).await.unwrap()
}

/// A server API request as the engine sends it, with `token` when given.
fn server_api_as(sb: &Sandbox, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
    let req = raw()
        .request(method, format!("{}{path}", sb.postmark_url()))
        .header("Accept", "application/json");
    match token {
        Some(t) => req.header("X-Postmark-Server-Token", t),
        None => req,
    }
}

/// The same with the server's known token.
fn server_api(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    server_api_as(sb, method, path, Some(PM_TOKEN))
}

fn email(from: &str, to: &str) -> Value {
    json!({"From": from, "To": to, "Subject": "s", "TextBody": "t"})
}

/// `POST /email` of `request`.
fn send(sb: &Sandbox, request: &Value) -> RequestBuilder {
    server_api(sb, Method::POST, "/email").json(request)
}

/// A Postmark refusal: `status` and `StandardPostmarkResponse` with both fields, with `code`.
async fn postmark_refusal(req: RequestBuilder, status: u16, code: i64) -> Value {
    let body = expect(status, req).await;
    postmark_check("StandardPostmarkResponse", &body, true);
    assert_eq!(body["ErrorCode"], code, "{body}");
    body
}

#[tokio::test]
async fn postmark_get_server_matches_the_swagger() {
    let sb = postmark().await;
    let server = expect(200, server_api(&sb, Method::GET, "/server")).await;
    postmark_check("ServerConfigurationResponse", &server, true);
}

#[tokio::test]
async fn postmark_put_server_answers_the_edited_server_per_the_swagger() {
    let sb = postmark().await;
    let edit =
        json!({"Name": "renamed", "Color": "Red", "TrackOpens": true, "TrackLinks": "HtmlOnly"});
    postmark_check("EditServerConfigurationRequest", &edit, false);
    let server = expect(200, server_api(&sb, Method::PUT, "/server").json(&edit)).await;
    postmark_check("ServerConfigurationResponse", &server, true);
    assert_eq!(
        (
            server["Name"].as_str(),
            server["Color"].as_str(),
            server["TrackLinks"].as_str()
        ),
        (Some("renamed"), Some("Red"), Some("HtmlOnly"))
    );
}

#[tokio::test]
async fn postmark_send_email_matches_the_swagger() {
    let sb = postmark().await;
    let request = email("Raxx <noreply@raxx.app>", "kris@example.com");
    postmark_check("SendEmailRequest", &request, false);
    let sent = expect(200, send(&sb, &request)).await;
    postmark_check("SendEmailResponse", &sent, true);
    assert_eq!(sent["ErrorCode"], 0);
}

/// Each send Postmark refuses, with the error code it documents for it.
#[tokio::test]
async fn postmark_refused_sends_are_422_with_the_documented_error_code() {
    let sb = postmark().await;
    let mut unknown_stream = email("noreply@raxx.app", "kris@example.com");
    unknown_stream["MessageStream"] = json!("no-such-stream");
    for (request, code) in [
        // Invalid email requests: no From, no To, no body, a bad address.
        (
            json!({"To": "kris@example.com", "Subject": "s", "TextBody": "t"}),
            300,
        ),
        (
            json!({"From": "noreply@raxx.app", "Subject": "s", "TextBody": "t"}),
            300,
        ),
        (
            json!({"From": "noreply@raxx.app", "To": "kris@example.com", "Subject": "s"}),
            300,
        ),
        (email("noreply@raxx.app", "not-an-address"), 300),
        // An unknown sender signature.
        (email("someone@else.example", "kris@example.com"), 400),
        // An unconfirmed sender signature.
        (email("Raxx <new@raxx.app>", "kris@example.com"), 401),
        // An inactive recipient.
        (
            email("noreply@raxx.app", "kris@example.com, gone@example.com"),
            406,
        ),
        // An unknown message stream.
        (unknown_stream, 1235),
    ] {
        postmark_refusal(send(&sb, &request), 422, code).await;
    }
}

#[tokio::test]
async fn postmark_invalid_json_is_422_with_error_code_402() {
    let sb = postmark().await;
    let req = server_api(&sb, Method::POST, "/email")
        .header("Content-Type", "application/json")
        .body("{not json");
    postmark_refusal(req, 422, 402).await;
}

/// Each server edit Postmark refuses, with the error code its API overview lists for it
/// ("API error codes": 603 name exists, 606 webhook URL, 607 colour, 608 name, 609 no data,
/// 611 spam threshold; 402 and 403 for types and fields).
#[tokio::test]
async fn postmark_refused_server_edits_are_422_with_the_documented_error_code() {
    let sb = postmark().await;
    for (edit, code) in [
        // A wrong type.
        (json!({"TrackOpens": "yes"}), 402),
        // An unknown choice.
        (json!({"TrackLinks": "Sometimes"}), 403),
        // A colour outside the list.
        (json!({"Color": "Pink"}), 607),
        // A blank name.
        (json!({"Name": " "}), 608),
        // A hook URL that is no URL.
        (json!({"DeliveryHookUrl": "not a url"}), 606),
        // A spam threshold off the steps of 5.
        (json!({"InboundSpamThreshold": 31}), 611),
        // Nothing to change.
        (json!({}), 609),
    ] {
        let req = server_api(&sb, Method::PUT, "/server").json(&edit);
        postmark_refusal(req, 422, code).await;
    }
}

#[tokio::test]
async fn postmark_missing_or_bad_token_is_401_with_error_code_10() {
    let sb = postmark().await;
    let send = email("noreply@raxx.app", "kris@example.com");
    for token in [None, Some("wrong")] {
        for (method, path, body) in [
            (Method::GET, "/server", None),
            (Method::PUT, "/server", Some(json!({"Color": "Red"}))),
            (Method::POST, "/email", Some(send.clone())),
            (Method::POST, "/email/batch", Some(json!([send.clone()]))),
        ] {
            let mut req = server_api_as(&sb, method, path, token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            postmark_refusal(req, 401, 10).await;
        }
    }
}

#[tokio::test]
async fn postmark_non_json_bodies_are_415_with_the_error_body() {
    let sb = postmark().await;
    for (method, path) in [
        (Method::POST, "/email"),
        (Method::POST, "/email/batch"),
        (Method::PUT, "/server"),
    ] {
        let req = server_api(&sb, method, path)
            .header("Content-Type", "text/plain")
            .body("From: noreply@raxx.app");
        postmark_refusal(req, 415, 409).await;
    }
}

#[tokio::test]
async fn postmark_batch_matches_the_swagger() {
    let sb = postmark().await;
    let batch = json!([
        email("noreply@raxx.app", "a@example.com"),
        email("someone@else.example", "b@example.com"),
        email("noreply@raxx.app", "gone@example.com"),
    ]);
    postmark_check("SendEmailBatchRequest", &batch, false);
    let results = expect(
        200,
        server_api(&sb, Method::POST, "/email/batch").json(&batch),
    )
    .await;
    postmark_check("SendEmailBatchResponse", &results, false);
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3);
    // A sent message has every field; a refused one is an error body (vendor-apis.md §1.7).
    postmark_check("SendEmailResponse", &results[0], true);
    assert_eq!(results[0]["ErrorCode"], 0);
    for (result, code) in [(&results[1], 400), (&results[2], 406)] {
        postmark_check("StandardPostmarkResponse", result, true);
        assert_eq!(result["ErrorCode"], code, "{result}");
    }
}

#[tokio::test]
async fn postmark_too_many_batch_messages_is_422_with_error_code_410() {
    let sb = postmark().await;
    let batch: Vec<Value> = (0..501)
        .map(|i| email("noreply@raxx.app", &format!("r{i}@example.com")))
        .collect();
    let req = server_api(&sb, Method::POST, "/email/batch").json(&batch);
    postmark_refusal(req, 422, 410).await;
}

#[tokio::test]
async fn postmark_fault_answers_match_the_error_body() {
    let sb = postmark().await;
    for status in [401, 404, 415, 422, 429, 500, 503] {
        sb.add_fault(FaultRule::parse(&format!("postmark:GET:/server={status}:once")).unwrap());
        let body = expect(status, server_api(&sb, Method::GET, "/server")).await;
        postmark_check("StandardPostmarkResponse", &body, true);
    }
}
