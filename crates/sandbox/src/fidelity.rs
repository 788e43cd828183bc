//! Fidelity: every answer the engine relies on, validated strictly against the vendor's own
//! published schema (`tests/specs/`), so a simulator cannot drift kinder than the real API.
//!
//! Heroku against its hyper-schema (strict: every property, no extras, nested identities
//! too), Infisical against the zod response schemas of its v4 secret router (transcribed in
//! `infisical-v4-secrets.schema.json`), Postmark against its server swagger. Error bodies are
//! validated as well as successes.

use crate::scenario::{RateLimitSpec, SecretSpec};
use crate::testkit::{
    heroku_check, heroku_config_vars_check, heroku_error_check, heroku_link_check, infisical_check,
    postmark_check, raw,
};
use crate::{FaultRule, Sandbox, Scenario};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

/// Sends `req`; its status and JSON body (a body that is not JSON fails the test).
async fn answer(req: RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {text}"));
    (status, body)
}

// ---------------------------------------------------------------------------------------
// Heroku
// ---------------------------------------------------------------------------------------

const ACCEPT: &str = "application/vnd.heroku+json; version=3";
const APP: &str = "raxx-api-prod";
/// The href suffix of the dyno `Restart` link (`DELETE /apps/{app}/dynos/{dyno}`).
const DYNO_IDENTITY: &str = "/dynos/{(%23%2Fdefinitions%2Fdyno%2Fdefinitions%2Fidentity)}";

async fn heroku() -> Sandbox {
    Sandbox::start(Scenario::default()).await.unwrap()
}

/// A Platform API request as the engine sends it: version 3 Accept and the API key.
fn platform(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    raw()
        .request(method, format!("{}{path}", sb.heroku_url()))
        .header("Accept", ACCEPT)
        .bearer_auth(&sb.credentials().heroku_api_key)
}

#[tokio::test]
async fn heroku_app_info_matches_the_schema_strictly() {
    let sb = heroku().await;
    let (status, app) = answer(platform(&sb, Method::GET, &format!("/apps/{APP}"))).await;
    assert_eq!(status, 200);
    heroku_check("/definitions/app", &app, true);
    assert_eq!(app["name"], APP);
    // The app's id names it as well as its name does.
    let id = app["id"].as_str().unwrap();
    let (status, by_id) = answer(platform(&sb, Method::GET, &format!("/apps/{id}"))).await;
    assert_eq!(status, 200);
    heroku_check("/definitions/app", &by_id, true);
    assert_eq!(by_id["name"], APP);
}

#[tokio::test]
async fn heroku_config_vars_are_a_map_of_strings() {
    let sb = heroku().await;
    let (status, vars) = answer(platform(
        &sb,
        Method::GET,
        &format!("/apps/{APP}/config-vars"),
    ))
    .await;
    assert_eq!(status, 200);
    heroku_link_check("config-var", "GET", "/config-vars", &vars);
    heroku_config_vars_check(&vars, false);
    assert!(vars["POSTMARK_SERVER_TOKEN"].is_string());
}

#[tokio::test]
async fn heroku_config_vars_patch_answers_the_whole_map_of_strings() {
    let sb = heroku().await;
    let change = json!({"FOO": "bar", "RAPTOR_ENV": null});
    // The body itself is what the schema allows a PATCH: strings set, null removes.
    heroku_config_vars_check(&change, true);
    let (status, vars) =
        answer(platform(&sb, Method::PATCH, &format!("/apps/{APP}/config-vars")).json(&change))
            .await;
    assert_eq!(status, 200);
    heroku_link_check("config-var", "PATCH", "/config-vars", &vars);
    heroku_config_vars_check(&vars, false);
    assert_eq!(vars["FOO"], "bar");
    assert!(vars.get("RAPTOR_ENV").is_none());
    assert!(vars["POSTMARK_SERVER_TOKEN"].is_string());
}

#[tokio::test]
async fn heroku_release_config_vars_are_a_map_of_strings() {
    let sb = heroku().await;
    let (status, vars) = answer(platform(
        &sb,
        Method::GET,
        &format!("/apps/{APP}/releases/1/config-vars"),
    ))
    .await;
    assert_eq!(status, 200);
    heroku_link_check("config-var", "GET", "/config-vars", &vars);
    heroku_config_vars_check(&vars, false);
    assert!(vars["POSTMARK_SERVER_TOKEN"].is_string());
}

#[tokio::test]
async fn heroku_dynos_match_the_schema_strictly() {
    let sb = heroku().await;
    let (status, dynos) = answer(platform(&sb, Method::GET, &format!("/apps/{APP}/dynos"))).await;
    assert_eq!(status, 200);
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

#[tokio::test]
async fn heroku_restart_all_answers_the_empty_object_of_the_schema() {
    let sb = heroku().await;
    let (status, body) = answer(platform(&sb, Method::DELETE, &format!("/apps/{APP}/dynos"))).await;
    assert!((200..300).contains(&status), "{status}");
    heroku_link_check("dyno", "DELETE", "/dynos", &body);
}

#[tokio::test]
async fn heroku_restart_one_dyno_answers_the_empty_object_of_the_schema() {
    let sb = heroku().await;
    let (status, body) = answer(platform(
        &sb,
        Method::DELETE,
        &format!("/apps/{APP}/dynos/web.1"),
    ))
    .await;
    assert!((200..300).contains(&status), "{status}");
    heroku_link_check("dyno", "DELETE", DYNO_IDENTITY, &body);
}

#[tokio::test]
async fn heroku_release_list_matches_the_schema_strictly() {
    let sb = heroku().await;
    // A config change makes a second release.
    let (status, _) = answer(
        platform(&sb, Method::PATCH, &format!("/apps/{APP}/config-vars")).json(&json!({"N": "1"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, list) = answer(platform(&sb, Method::GET, &format!("/apps/{APP}/releases"))).await;
    assert_eq!(status, 200);
    heroku_link_check("release", "GET", "/releases", &list);
    let releases = list.as_array().unwrap();
    assert_eq!(releases.len(), 2);
    for r in releases {
        heroku_check("/definitions/release", r, true);
    }
    // A page of a ranged list (206) holds the same objects.
    let (status, page) = answer(
        platform(&sb, Method::GET, &format!("/apps/{APP}/releases"))
            .header("Range", "version ..; max=1, order=desc"),
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    heroku_check("/definitions/release", &page[0], true);
    assert_eq!(page[0]["version"], 2);
}

#[tokio::test]
async fn heroku_release_info_matches_the_schema_strictly() {
    let sb = heroku().await;
    let (status, by_version) = answer(platform(
        &sb,
        Method::GET,
        &format!("/apps/{APP}/releases/1"),
    ))
    .await;
    assert_eq!(status, 200);
    heroku_check("/definitions/release", &by_version, true);
    let id = by_version["id"].as_str().unwrap();
    let (status, by_id) = answer(platform(
        &sb,
        Method::GET,
        &format!("/apps/{APP}/releases/{id}"),
    ))
    .await;
    assert_eq!(status, 200);
    heroku_check("/definitions/release", &by_id, true);
    assert_eq!(by_id["version"], 1);
}

#[tokio::test]
async fn heroku_log_session_matches_the_schema_strictly() {
    let sb = heroku().await;
    // The body the engine sends.
    let (status, session) = answer(
        platform(&sb, Method::POST, &format!("/apps/{APP}/log-sessions"))
            .json(&json!({"lines": 10, "tail": false})),
    )
    .await;
    assert_eq!(status, 201);
    heroku_check("/definitions/log-session", &session, true);
}

#[tokio::test]
async fn heroku_401_for_a_bad_or_missing_key_matches_the_error_schema() {
    let sb = heroku().await;
    let url = format!("{}/apps/{APP}/config-vars", sb.heroku_url());
    for req in [
        raw().get(&url).header("Accept", ACCEPT).bearer_auth("nope"),
        raw().get(&url).header("Accept", ACCEPT),
    ] {
        let (status, body) = answer(req).await;
        assert_eq!(status, 401);
        heroku_error_check(&body);
        assert_eq!(body["id"], "unauthorized");
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
        let (status, body) = answer(platform(&sb, method.clone(), path)).await;
        assert_eq!(status, 404, "{method} {path}");
        heroku_error_check(&body);
        assert_eq!(body["id"], "not_found", "{method} {path}");
    }
}

#[tokio::test]
async fn heroku_404_for_an_unknown_release_dyno_or_route_matches_the_error_schema() {
    let sb = heroku().await;
    for (method, path) in [
        (Method::GET, format!("/apps/{APP}/releases/99")),
        (Method::DELETE, format!("/apps/{APP}/dynos/web.9")),
        (Method::GET, "/no-such-endpoint".to_string()),
    ] {
        let (status, body) = answer(platform(&sb, method.clone(), &path)).await;
        assert_eq!(status, 404, "{method} {path}");
        heroku_error_check(&body);
        assert_eq!(body["id"], "not_found", "{method} {path}");
    }
}

#[tokio::test]
async fn heroku_406_without_the_accept_header_matches_the_error_schema() {
    let sb = heroku().await;
    let (status, body) = answer(
        raw()
            .get(format!("{}/apps/{APP}/config-vars", sb.heroku_url()))
            .bearer_auth(&sb.credentials().heroku_api_key),
    )
    .await;
    assert_eq!(status, 406);
    heroku_error_check(&body);
    assert_eq!(body["id"], "not_acceptable");
}

#[tokio::test]
async fn heroku_400_for_a_config_body_that_is_not_an_object_matches_the_error_schema() {
    let sb = heroku().await;
    let (status, body) = answer(
        platform(&sb, Method::PATCH, &format!("/apps/{APP}/config-vars")).json(&json!(["A"])),
    )
    .await;
    assert_eq!(status, 400);
    heroku_error_check(&body);
    assert_eq!(body["id"], "bad_request");
}

#[tokio::test]
async fn heroku_422_invalid_params_matches_the_error_schema() {
    let sb = heroku().await;
    let config = format!("/apps/{APP}/config-vars");
    let sessions = format!("/apps/{APP}/log-sessions");
    for (method, path, body) in [
        (Method::PATCH, &config, json!({"NOT-A-NAME": "x"})),
        (Method::PATCH, &config, json!({"A": 1})),
        (Method::POST, &sessions, json!({"lines": "ten"})),
        (Method::POST, &sessions, json!({"source": "router"})),
    ] {
        let (status, answer_body) = answer(platform(&sb, method, path).json(&body)).await;
        assert_eq!(status, 422, "{body}");
        heroku_error_check(&answer_body);
        assert_eq!(answer_body["id"], "invalid_params", "{body}");
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
    let (status, _) = answer(platform(&sb, Method::GET, &format!("/apps/{APP}"))).await;
    assert_eq!(status, 200);
    let (status, body) = answer(platform(&sb, Method::GET, &format!("/apps/{APP}"))).await;
    assert_eq!(status, 429);
    heroku_error_check(&body);
    assert_eq!(body["id"], "rate_limit");
}

#[tokio::test]
async fn heroku_fault_answers_match_the_error_schema() {
    let sb = heroku().await;
    for status in [400, 401, 403, 404, 406, 409, 416, 422, 429, 500, 503] {
        sb.add_fault(FaultRule::parse(&format!("heroku:GET:/apps/{APP}={status}:once")).unwrap());
        let (got, body) = answer(platform(&sb, Method::GET, &format!("/apps/{APP}"))).await;
        assert_eq!(got, status);
        heroku_error_check(&body);
    }
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

fn v4(sb: &Sandbox, method: Method, path_and_query: &str) -> RequestBuilder {
    raw()
        .request(
            method,
            format!("{}/api/v4{path_and_query}", sb.infisical_url()),
        )
        .bearer_auth(&sb.credentials().infisical_token)
}

/// The body of a v4 write to `raxx-project`/`prod`/`/`.
fn write_body(extra: Value) -> Value {
    let mut body = json!({"projectId": "raxx-project", "environment": "prod", "secretPath": "/"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// An Infisical error: the envelope, with its status and `error` name.
fn infisical_error(status: u16, body: &Value, error: &str) {
    infisical_check("error", body);
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn infisical_v4_get_one_matches_the_schema() {
    let sb = infisical().await;
    for query in ["", "&version=1"] {
        let (status, body) = answer(v4(
            &sb,
            Method::GET,
            &format!(
                "/secrets/{SECRET}?projectId=raxx-project&environment=prod&secretPath=/{query}"
            ),
        ))
        .await;
        assert_eq!(status, 200, "{query}");
        infisical_check("getSecretByNameV4Response", &body);
        assert_eq!(body["secret"]["secretKey"], SECRET);
    }
}

#[tokio::test]
async fn infisical_v4_list_matches_the_schema() {
    let sb = infisical().await;
    let (status, body) = answer(v4(
        &sb,
        Method::GET,
        "/secrets?projectId=raxx-project&environment=prod&secretPath=/",
    ))
    .await;
    assert_eq!(status, 200);
    infisical_check("listSecretsV4Response", &body);
    assert_eq!(body["secrets"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn infisical_v4_recursive_list_matches_the_schema() {
    let sb = infisical().await;
    let (status, body) = answer(v4(
        &sb,
        Method::GET,
        "/secrets?projectId=raxx-project&environment=prod&secretPath=/&recursive=true",
    ))
    .await;
    assert_eq!(status, 200);
    infisical_check("listSecretsV4Response", &body);
    // The folder's secret is in it too.
    assert_eq!(body["secrets"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn infisical_v4_create_matches_the_schema() {
    let sb = infisical().await;
    let (status, body) = answer(
        v4(&sb, Method::POST, "/secrets/NEW_ONE")
            .json(&write_body(json!({"secretValue": "v1", "type": "shared"}))),
    )
    .await;
    assert_eq!(status, 200);
    infisical_check("createSecretV4Response", &body);
    assert_eq!(
        (
            body["secret"]["secretKey"].as_str(),
            body["secret"]["version"].as_u64()
        ),
        (Some("NEW_ONE"), Some(1))
    );
}

#[tokio::test]
async fn infisical_v4_update_matches_the_schema() {
    let sb = infisical().await;
    let (status, body) = answer(
        v4(&sb, Method::PATCH, &format!("/secrets/{SECRET}"))
            .json(&write_body(json!({"secretValue": "v3", "type": "shared"}))),
    )
    .await;
    assert_eq!(status, 200);
    infisical_check("updateSecretV4Response", &body);
    assert_eq!(
        (
            body["secret"]["secretValue"].as_str(),
            body["secret"]["version"].as_u64()
        ),
        (Some("v3"), Some(3))
    );
}

#[tokio::test]
async fn infisical_v4_delete_matches_the_schema() {
    let sb = infisical().await;
    let (status, body) = answer(
        v4(&sb, Method::DELETE, &format!("/secrets/{SECRET}"))
            .json(&write_body(json!({"type": "shared"}))),
    )
    .await;
    assert_eq!(status, 200);
    infisical_check("deleteSecretV4Response", &body);
    assert_eq!(body["secret"]["secretKey"], SECRET);
}

#[tokio::test]
async fn infisical_401_without_an_authorization_header_matches_the_error_envelope() {
    let sb = infisical().await;
    let (status, body) = answer(raw().get(format!(
        "{}/api/v4/secrets/{SECRET}?projectId=raxx-project&environment=prod",
        sb.infisical_url()
    )))
    .await;
    assert_eq!(status, 401);
    infisical_error(401, &body, "UnauthorizedError");
}

#[tokio::test]
async fn infisical_403_token_error_for_a_malformed_token_matches_the_error_envelope() {
    let sb = infisical().await;
    let (status, body) = answer(
        raw()
            .get(format!(
                "{}/api/v4/secrets/{SECRET}?projectId=raxx-project&environment=prod",
                sb.infisical_url()
            ))
            .bearer_auth("not.a.jwt"),
    )
    .await;
    assert_eq!(status, 403);
    infisical_error(403, &body, "TokenError");
}

#[tokio::test]
async fn infisical_403_token_error_for_an_expired_token_matches_the_error_envelope() {
    let sb = infisical().await;
    let c = sb.credentials();
    let (status, login) = answer(
        raw()
            .post(format!("{}/api/v1/auth/universal-auth/login", sb.infisical_url()))
            .json(&json!({"clientId": c.infisical_client_id, "clientSecret": c.infisical_client_secret})),
    )
    .await;
    assert_eq!(status, 200);
    sb.infisical_expire_tokens();
    let (status, body) = answer(
        raw()
            .get(format!(
                "{}/api/v4/secrets/{SECRET}?projectId=raxx-project&environment=prod",
                sb.infisical_url()
            ))
            .bearer_auth(login["accessToken"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 403);
    infisical_error(403, &body, "TokenError");
}

#[tokio::test]
async fn infisical_403_permission_denied_for_another_project_matches_the_error_envelope() {
    let sb = infisical().await;
    let (status, body) = answer(v4(
        &sb,
        Method::GET,
        &format!("/secrets/{SECRET}?projectId=someone-elses&environment=prod"),
    ))
    .await;
    assert_eq!(status, 403);
    infisical_error(403, &body, "PermissionDenied");
}

#[tokio::test]
async fn infisical_404_for_a_missing_secret_matches_the_error_envelope() {
    let sb = infisical().await;
    let (status, body) = answer(v4(
        &sb,
        Method::GET,
        "/secrets/NO_SUCH_SECRET?projectId=raxx-project&environment=prod",
    ))
    .await;
    assert_eq!(status, 404);
    infisical_error(404, &body, "NotFound");
    let (status, body) = answer(
        v4(&sb, Method::PATCH, "/secrets/NO_SUCH_SECRET")
            .json(&write_body(json!({"secretValue": "x"}))),
    )
    .await;
    assert_eq!(status, 404);
    infisical_error(404, &body, "NotFound");
}

#[tokio::test]
async fn infisical_422_validation_failure_without_a_project_id_matches_the_error_envelope() {
    let sb = infisical().await;
    let (status, body) = answer(v4(
        &sb,
        Method::GET,
        &format!("/secrets/{SECRET}?environment=prod"),
    ))
    .await;
    assert_eq!(status, 422);
    infisical_error(422, &body, "ValidationFailure");
    assert_eq!(body["message"][0]["path"], json!(["projectId"]));
    let (status, body) = answer(
        v4(&sb, Method::POST, "/secrets/NEW_ONE")
            .json(&json!({"environment": "prod", "secretValue": "v"})),
    )
    .await;
    assert_eq!(status, 422);
    infisical_error(422, &body, "ValidationFailure");
}

#[tokio::test]
async fn infisical_400_when_the_secret_already_exists_matches_the_error_envelope() {
    let sb = infisical().await;
    let (status, body) = answer(
        v4(&sb, Method::POST, &format!("/secrets/{SECRET}"))
            .json(&write_body(json!({"secretValue": "again"}))),
    )
    .await;
    assert_eq!(status, 400);
    infisical_error(400, &body, "BadRequest");
    assert_eq!(body["message"], "Secret already exist");
}

#[tokio::test]
async fn infisical_fault_answers_match_the_error_envelope() {
    let sb = infisical().await;
    for status in [400, 401, 403, 404, 422, 429, 500, 504] {
        sb.add_fault(
            FaultRule::parse(&format!("infisical:GET:/api/v4/secrets={status}:once")).unwrap(),
        );
        let (got, body) = answer(v4(
            &sb,
            Method::GET,
            "/secrets?projectId=raxx-project&environment=prod",
        ))
        .await;
        assert_eq!(got, status);
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
        .push(crate::scenario::ApprovalPolicySpec::default());
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
        let (status, body) =
            answer(v4(&sb, method.clone(), &format!("/secrets/{name}")).json(&write_body(extra)))
                .await;
        assert_eq!(status, 200, "{method}: {body}");
        infisical_check(definition, &body);
        infisical_check("secretApprovalRequest", &body["approval"]);
    }
}

/// A key without the scope a route needs is refused in Heroku's error shape.
#[tokio::test]
async fn heroku_403_for_a_missing_scope_matches_the_error_schema() {
    let mut scenario = Scenario::default();
    scenario.heroku.scopes = vec!["read".into()];
    let sb = Sandbox::start(scenario).await.unwrap();
    let (status, body) = answer(platform(
        &sb,
        Method::GET,
        &format!("/apps/{APP}/config-vars"),
    ))
    .await;
    assert_eq!(status, 403);
    heroku_error_check(&body);
    assert_eq!(body["id"], "forbidden");
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

fn server_api(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    raw()
        .request(method, format!("{}{path}", sb.postmark_url()))
        .header("Accept", "application/json")
        .header("X-Postmark-Server-Token", PM_TOKEN)
}

fn email(from: &str, to: &str) -> Value {
    json!({"From": from, "To": to, "Subject": "s", "TextBody": "t"})
}

/// A Postmark error: `StandardPostmarkResponse` with both fields, at `status`, with `code`.
fn postmark_error(status: u16, got: u16, body: &Value, code: i64) {
    assert_eq!(got, status, "{body}");
    postmark_check("StandardPostmarkResponse", body, true);
    assert_eq!(body["ErrorCode"], code, "{body}");
}

#[tokio::test]
async fn postmark_get_server_matches_the_swagger() {
    let sb = postmark().await;
    let (status, server) = answer(server_api(&sb, Method::GET, "/server")).await;
    assert_eq!(status, 200);
    postmark_check("ServerConfigurationResponse", &server, true);
}

#[tokio::test]
async fn postmark_put_server_answers_the_edited_server_per_the_swagger() {
    let sb = postmark().await;
    let edit =
        json!({"Name": "renamed", "Color": "Red", "TrackOpens": true, "TrackLinks": "HtmlOnly"});
    postmark_check("EditServerConfigurationRequest", &edit, false);
    let (status, server) = answer(server_api(&sb, Method::PUT, "/server").json(&edit)).await;
    assert_eq!(status, 200);
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
    let (status, sent) = answer(server_api(&sb, Method::POST, "/email").json(&request)).await;
    assert_eq!(status, 200);
    postmark_check("SendEmailResponse", &sent, true);
    assert_eq!(sent["ErrorCode"], 0);
}

#[tokio::test]
async fn postmark_invalid_email_requests_are_422_with_error_code_300() {
    let sb = postmark().await;
    for bad in [
        json!({"To": "kris@example.com", "Subject": "s", "TextBody": "t"}),
        json!({"From": "noreply@raxx.app", "Subject": "s", "TextBody": "t"}),
        json!({"From": "noreply@raxx.app", "To": "kris@example.com", "Subject": "s"}),
        email("noreply@raxx.app", "not-an-address"),
    ] {
        let (status, body) = answer(server_api(&sb, Method::POST, "/email").json(&bad)).await;
        postmark_error(422, status, &body, 300);
    }
}

#[tokio::test]
async fn postmark_unknown_sender_signature_is_422_with_error_code_400() {
    let sb = postmark().await;
    let (status, body) = answer(
        server_api(&sb, Method::POST, "/email")
            .json(&email("someone@else.example", "kris@example.com")),
    )
    .await;
    postmark_error(422, status, &body, 400);
}

#[tokio::test]
async fn postmark_unconfirmed_sender_signature_is_422_with_error_code_401() {
    let sb = postmark().await;
    let (status, body) = answer(
        server_api(&sb, Method::POST, "/email")
            .json(&email("Raxx <new@raxx.app>", "kris@example.com")),
    )
    .await;
    postmark_error(422, status, &body, 401);
}

#[tokio::test]
async fn postmark_inactive_recipient_is_422_with_error_code_406() {
    let sb = postmark().await;
    let (status, body) = answer(server_api(&sb, Method::POST, "/email").json(&email(
        "noreply@raxx.app",
        "kris@example.com, gone@example.com",
    )))
    .await;
    postmark_error(422, status, &body, 406);
}

#[tokio::test]
async fn postmark_unknown_message_stream_is_422_with_error_code_1235() {
    let sb = postmark().await;
    let mut request = email("noreply@raxx.app", "kris@example.com");
    request["MessageStream"] = json!("no-such-stream");
    let (status, body) = answer(server_api(&sb, Method::POST, "/email").json(&request)).await;
    postmark_error(422, status, &body, 1235);
}

#[tokio::test]
async fn postmark_invalid_json_is_422_with_error_code_402() {
    let sb = postmark().await;
    let (status, body) = answer(
        server_api(&sb, Method::POST, "/email")
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    postmark_error(422, status, &body, 402);
}

#[tokio::test]
async fn postmark_put_server_with_a_wrong_type_is_422_with_error_code_402() {
    let sb = postmark().await;
    let (status, body) =
        answer(server_api(&sb, Method::PUT, "/server").json(&json!({"TrackOpens": "yes"}))).await;
    postmark_error(422, status, &body, 402);
}

#[tokio::test]
async fn postmark_put_server_with_an_unknown_choice_is_422_with_error_code_403() {
    let sb = postmark().await;
    let (status, body) =
        answer(server_api(&sb, Method::PUT, "/server").json(&json!({"Color": "Pink"}))).await;
    postmark_error(422, status, &body, 403);
}

#[tokio::test]
async fn postmark_put_server_with_a_blank_name_is_422_with_error_code_607() {
    let sb = postmark().await;
    let (status, body) =
        answer(server_api(&sb, Method::PUT, "/server").json(&json!({"Name": " "}))).await;
    postmark_error(422, status, &body, 607);
}

#[tokio::test]
async fn postmark_missing_or_bad_token_is_401_with_error_code_10() {
    let sb = postmark().await;
    let url = |path: &str| format!("{}{path}", sb.postmark_url());
    let send = email("noreply@raxx.app", "kris@example.com");
    for token in [None, Some("wrong")] {
        for (method, path, body) in [
            (Method::GET, "/server", None),
            (Method::PUT, "/server", Some(json!({"Color": "Red"}))),
            (Method::POST, "/email", Some(send.clone())),
            (Method::POST, "/email/batch", Some(json!([send.clone()]))),
        ] {
            let mut req = raw()
                .request(method.clone(), url(path))
                .header("Accept", "application/json");
            if let Some(t) = token {
                req = req.header("X-Postmark-Server-Token", t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let (status, answer_body) = answer(req).await;
            postmark_error(401, status, &answer_body, 10);
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
        let (status, body) = answer(
            server_api(&sb, method, path)
                .header("Content-Type", "text/plain")
                .body("From: noreply@raxx.app"),
        )
        .await;
        postmark_error(415, status, &body, 409);
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
    let (status, results) =
        answer(server_api(&sb, Method::POST, "/email/batch").json(&batch)).await;
    assert_eq!(status, 200);
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
    let (status, body) = answer(server_api(&sb, Method::POST, "/email/batch").json(&batch)).await;
    postmark_error(422, status, &body, 410);
}

#[tokio::test]
async fn postmark_fault_answers_match_the_error_body() {
    let sb = postmark().await;
    for status in [401, 404, 415, 422, 429, 500, 503] {
        sb.add_fault(FaultRule::parse(&format!("postmark:GET:/server={status}:once")).unwrap());
        let (got, body) = answer(server_api(&sb, Method::GET, "/server")).await;
        assert_eq!(got, status);
        postmark_check("StandardPostmarkResponse", &body, true);
    }
}
