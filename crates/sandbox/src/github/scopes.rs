//! Actions secrets beyond a repository's own: a deployment environment's and an
//! organisation's, and what a workflow run sees of the three. GitHub's precedence: "If a
//! secret with the same name exists at multiple levels, the secret at the lowest level takes
//! precedence": environment over repository over organisation.

use super::routes::{error_body, not_found, public_key_answer, stored, unsealed, Page};
use super::state::{GithubState, OrgSecret, Secrets};
use crate::shared::Shared;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The API routes (behind the token check).
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/repos/{owner}/{repo}/environments", get(list_environments))
        .route(
            "/repos/{owner}/{repo}/environments/{env}/secrets",
            get(list_env),
        )
        .route(
            "/repos/{owner}/{repo}/environments/{env}/secrets/public-key",
            get(|s: State<Arc<Shared>>| async move { public_key_answer(&s) }),
        )
        .route(
            "/repos/{owner}/{repo}/environments/{env}/secrets/{name}",
            get(get_env).put(put_env).delete(delete_env),
        )
        .route(
            "/repos/{owner}/{repo}/actions/organization-secrets",
            get(list_shared_with_repo),
        )
        .route("/orgs/{org}/actions/secrets", get(list_org))
        .route(
            "/orgs/{org}/actions/secrets/public-key",
            get(|s: State<Arc<Shared>>| async move { public_key_answer(&s) }),
        )
        .route(
            "/orgs/{org}/actions/secrets/{name}",
            get(get_org).put(put_org).delete(delete_org),
        )
}

/// The sandbox's own view (no token): what a workflow run would see.
pub(super) fn control_routes() -> Router<Arc<Shared>> {
    Router::new().route(
        "/_sandbox/workflow-secrets/{owner}/{repo}",
        get(workflow_secrets),
    )
}

/// `f` on environment `env` of repository `owner/repo`, or GitHub's 404.
fn with_env(
    s: &Shared,
    (owner, repo, env): (&str, &str, &str),
    f: impl FnOnce(&mut Secrets) -> Response,
) -> Response {
    s.respond(|g: &mut GithubState| {
        match g.repo_mut(owner, repo).and_then(|r| r.environment_mut(env)) {
            Some(secrets) => f(secrets),
            None => not_found(),
        }
    })
}

/// `GET /repos/{owner}/{repo}/environments`: `{total_count, environments: [...]}` (GitHub's
/// "List environments"), paged as GitHub pages it (`per_page`, `page`, `Link`).
async fn list_environments(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = s.url_of("github");
    let url = format!("{base}/repos/{owner}/{repo}/environments");
    s.respond(|g: &mut GithubState| {
        let page = Page::of(&q, g.page_size);
        match g.repo_mut(&owner, &repo) {
        Some(r) => {
            let envs: Vec<Value> = r
                .environments
                .keys()
                .enumerate()
                .map(|(i, name)| {
                    json!({
                        "id": 161_088_000 + i as u64,
                        "node_id": format!("EN_sandbox{i}"),
                        "name": name,
                        "url": format!("{base}/repos/{owner}/{repo}/environments/{name}"),
                        "html_url": format!("https://github.com/{owner}/{repo}/deployments/activity_log?environments_filter={name}"),
                        "created_at": "2026-01-05T10:00:00Z",
                        "updated_at": "2026-01-05T10:00:00Z",
                        "protection_rules": [],
                        "deployment_branch_policy": null,
                    })
                })
                .collect();
            let total = envs.len();
            let body = json!({"total_count": total, "environments": page.slice(envs)});
            page.link(Json(body).into_response(), &url, total)
        }
        None => not_found(),
    }
    })
}

async fn list_env(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, env)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let url = format!(
        "{}/repos/{owner}/{repo}/environments/{env}/secrets",
        s.url_of("github")
    );
    let cap = s.with_state(|g: &mut GithubState| g.page_size).flatten();
    let page = Page::of(&q, cap);
    with_env(&s, (&owner, &repo, &env), |secrets| {
        let all = secrets.listed();
        let total = all.len();
        let body = json!({"total_count": total, "secrets": page.slice(all)});
        page.link(Json(body).into_response(), &url, total)
    })
}

async fn get_env(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, env, name)): Path<(String, String, String, String)>,
) -> Response {
    with_env(&s, (&owner, &repo, &env), |secrets| {
        match secrets.get(&name) {
        Some(v) => Json(json!({"name": name.to_uppercase(), "created_at": v.created_at, "updated_at": v.updated_at})).into_response(),
        None => not_found(),
    }
    })
}

async fn put_env(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, env, name)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let value = match unsealed(&s, &name, &body) {
        Ok((v, _)) => v,
        Err(r) => return r,
    };
    with_env(&s, (&owner, &repo, &env), |secrets| {
        stored(secrets.put(&name, value))
    })
}

async fn delete_env(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, env, name)): Path<(String, String, String, String)>,
) -> Response {
    with_env(&s, (&owner, &repo, &env), |secrets| {
        if secrets.delete(&name) {
            StatusCode::NO_CONTENT.into_response()
        } else {
            not_found()
        }
    })
}

/// An organisation secret as GitHub lists it.
fn org_secret_json(base: &str, org: &str, name: &str, o: &OrgSecret) -> Value {
    let mut v = json!({
        "name": name,
        "created_at": o.secret.created_at,
        "updated_at": o.secret.updated_at,
        "visibility": o.visibility,
    });
    if o.visibility == "selected" {
        v["selected_repositories_url"] = json!(format!(
            "{base}/orgs/{org}/actions/secrets/{name}/repositories"
        ));
    }
    v
}

/// `GET /orgs/{org}/actions/secrets`: an organisation the sandbox knows (one that owns a
/// repository or holds a secret), else 404.
async fn list_org(
    State(s): State<Arc<Shared>>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = s.url_of("github");
    let url = format!("{base}/orgs/{org}/actions/secrets");
    s.respond(|g: &mut GithubState| {
        if !g.knows_org(&org) {
            return not_found();
        }
        let page = Page::of(&q, g.page_size);
        let all: Vec<Value> = g
            .orgs
            .get(&org.to_lowercase())
            .map(|m| {
                m.iter()
                    .map(|(k, o)| org_secret_json(&base, &org, k, o))
                    .collect()
            })
            .unwrap_or_default();
        let total = all.len();
        let body = json!({"total_count": total, "secrets": page.slice(all)});
        page.link(Json(body).into_response(), &url, total)
    })
}

/// `GET /repos/{owner}/{repo}/actions/organization-secrets`: the owner's secrets this
/// repository may use.
async fn list_shared_with_repo(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let url = format!(
        "{}/repos/{owner}/{repo}/actions/organization-secrets",
        s.url_of("github")
    );
    let full = format!("{owner}/{repo}");
    s.respond(|g: &mut GithubState| {
        if g.repo_mut(&owner, &repo).is_none() {
            return not_found();
        }
        let page = Page::of(&q, g.page_size);
        let all: Vec<Value> = g
            .orgs
            .get(&owner.to_lowercase())
            .map(|m| {
                m.iter()
                    .filter(|(_, o)| o.visible_to(&full))
                    .map(|(k, o)| json!({"name": k, "created_at": o.secret.created_at, "updated_at": o.secret.updated_at}))
                    .collect()
            })
            .unwrap_or_default();
        let total = all.len();
        let body = json!({"total_count": total, "secrets": page.slice(all)});
        page.link(Json(body).into_response(), &url, total)
    })
}

async fn get_org(
    State(s): State<Arc<Shared>>,
    Path((org, name)): Path<(String, String)>,
) -> Response {
    let base = s.url_of("github");
    s.respond(|g: &mut GithubState| {
        match g
            .orgs
            .get(&org.to_lowercase())
            .and_then(|m| m.get(&name.to_uppercase()))
        {
            Some(o) => Json(org_secret_json(&base, &org, &name.to_uppercase(), o)).into_response(),
            None => not_found(),
        }
    })
}

/// `PUT /orgs/{org}/actions/secrets/{name}`: `visibility` is required; with `selected`,
/// `selected_repository_ids` names the repositories (by id).
async fn put_org(
    State(s): State<Arc<Shared>>,
    Path((org, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (value, body) = match unsealed(&s, &name, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let visibility = match body.get("visibility").and_then(Value::as_str) {
        Some(v @ ("all" | "private" | "selected")) => v.to_string(),
        Some(_) => {
            return error_body(
                422,
                "Invalid request.\n\nvisibility must be all, private or selected.",
            )
        }
        None => return error_body(422, "Invalid request.\n\n\"visibility\" wasn't supplied."),
    };
    let ids: Vec<u64> = body
        .get("selected_repository_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    s.respond(|g: &mut GithubState| {
        if !g.knows_org(&org) {
            return not_found();
        }
        let selected: Vec<String> = ids.iter().filter_map(|id| g.repo_by_id(*id)).collect();
        let secrets = g.orgs.entry(org.to_lowercase()).or_default();
        let key = name.to_uppercase();
        let created = match secrets.get_mut(&key) {
            Some(existing) => {
                existing.secret.set(value);
                existing.visibility = visibility;
                existing.selected = selected;
                false
            }
            None => {
                secrets.insert(key, OrgSecret::new(value, visibility, selected));
                true
            }
        };
        stored(created)
    })
}

async fn delete_org(
    State(s): State<Arc<Shared>>,
    Path((org, name)): Path<(String, String)>,
) -> Response {
    s.respond(|g: &mut GithubState| {
        let removed = g
            .orgs
            .get_mut(&org.to_lowercase())
            .and_then(|m| m.remove(&name.to_uppercase()));
        match removed {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => not_found(),
        }
    })
}

/// `GET /_sandbox/workflow-secrets/{owner}/{repo}[?environment=ENV]`: each secret a
/// workflow job there would see, its value and its source (`environment`, `repository` or
/// `organization`), the winner of GitHub's precedence.
async fn workflow_secrets(
    State(s): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let env = q.get("environment").map(String::as_str);
    s.respond(
        |g: &mut GithubState| match g.workflow_view(&owner, &repo, env) {
            Some(view) => Json(view).into_response(),
            None => not_found(),
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::scenario::{OrgSecretSpec, RepoSpec};
    use crate::testkit::{expect, raw, sent};
    use crate::{Sandbox, Scenario};
    use base64::Engine as _;
    use reqwest::{Method, RequestBuilder};
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn org_secret(name: &str, value: &str, visibility: &str, selected: &[&str]) -> OrgSecretSpec {
        OrgSecretSpec {
            org: "raxx".into(),
            name: name.into(),
            value: value.into(),
            visibility: visibility.into(),
            selected_repos: selected.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `raxx/raptor` (a repository secret and a `prod` environment) and `raxx/docs`, and
    /// organisation `raxx`'s secrets, one of them shared with `raxx/docs` only.
    async fn sandbox() -> Sandbox {
        let mut scenario = Scenario::default();
        scenario.github.repos = vec![
            RepoSpec {
                name: "raxx/raptor".into(),
                secrets: BTreeMap::from([("TOKEN".into(), "from-repo".into())]),
                environments: BTreeMap::from([(
                    "prod".into(),
                    BTreeMap::from([("TOKEN".into(), "from-env".into())]),
                )]),
            },
            RepoSpec {
                name: "raxx/docs".into(),
                ..RepoSpec::default()
            },
        ];
        scenario.github.org_secrets = vec![
            org_secret("TOKEN", "from-org", "all", &[]),
            org_secret("ORG_ONLY", "org-wide", "private", &[]),
            org_secret("DOCS_ONLY", "for-docs", "selected", &["raxx/docs"]),
        ];
        Sandbox::start(scenario).await.unwrap()
    }

    fn api(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
        raw()
            .request(method, format!("{}{path}", sb.github_url()))
            .bearer_auth(sb.credentials().github_token)
    }

    /// What a workflow in `repo` (in `env`) sees: name → (value, source).
    async fn seen(
        sb: &Sandbox,
        repo: &str,
        env: Option<&str>,
    ) -> BTreeMap<String, (String, String)> {
        let query = env.map(|e| format!("?environment={e}")).unwrap_or_default();
        let url = format!(
            "{}/_sandbox/workflow-secrets/{repo}{query}",
            sb.github_url()
        );
        let body = expect(200, raw().get(url)).await;
        body["secrets"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let text = |f: &str| v[f].as_str().unwrap().to_string();
                (k.clone(), (text("value"), text("source")))
            })
            .collect()
    }

    fn pair(value: &str, source: &str) -> (String, String) {
        (value.to_string(), source.to_string())
    }

    #[tokio::test]
    async fn a_workflow_sees_environment_over_repository_over_organisation() {
        let sb = sandbox().await;
        let repo_level = seen(&sb, "raxx/raptor", None).await;
        assert_eq!(repo_level["TOKEN"], pair("from-repo", "repository"));
        assert_eq!(repo_level["ORG_ONLY"], pair("org-wide", "organization"));
        assert!(
            !repo_level.contains_key("DOCS_ONLY"),
            "not shared with raptor"
        );
        let in_prod = seen(&sb, "raxx/raptor", Some("prod")).await;
        assert_eq!(in_prod["TOKEN"], pair("from-env", "environment"));
        let docs = seen(&sb, "raxx/docs", None).await;
        assert_eq!(docs["TOKEN"], pair("from-org", "organization"));
        assert_eq!(docs["DOCS_ONLY"], pair("for-docs", "organization"));
        let missing = raw().get(format!(
            "{}/_sandbox/workflow-secrets/raxx/raptor?environment=staging",
            sb.github_url()
        ));
        assert_eq!(sent(missing).await.status(), 404);
    }

    /// Seals `value` to the key at `key_path`, as a client does.
    async fn sealed(sb: &Sandbox, key_path: &str, value: &str) -> Value {
        let key = expect(200, api(sb, Method::GET, key_path)).await;
        let raw_key = base64::engine::general_purpose::STANDARD
            .decode(key["key"].as_str().unwrap())
            .unwrap();
        let pk = crypto_box::PublicKey::from_slice(&raw_key).unwrap();
        let box_ = pk
            .seal(&mut crypto_box::aead::OsRng, value.as_bytes())
            .unwrap();
        json!({
            "encrypted_value": base64::engine::general_purpose::STANDARD.encode(box_),
            "key_id": key["key_id"],
        })
    }

    #[tokio::test]
    async fn environment_and_organisation_secrets_are_written_through_their_routes() {
        let sb = sandbox().await;
        let env = "/repos/raxx/raptor/environments/prod/secrets";
        let body = sealed(&sb, &format!("{env}/public-key"), "env-v2").await;
        assert_eq!(
            sent(api(&sb, Method::PUT, &format!("{env}/TOKEN")).json(&body))
                .await
                .status(),
            204
        );
        assert_eq!(
            sent(api(&sb, Method::PUT, &format!("{env}/NEW_ONE")).json(&body))
                .await
                .status(),
            201
        );
        let list = expect(200, api(&sb, Method::GET, env)).await;
        assert_eq!(list["total_count"], 2);
        assert_eq!(
            seen(&sb, "raxx/raptor", Some("prod")).await["TOKEN"],
            pair("env-v2", "environment")
        );

        let org = "/orgs/raxx/actions/secrets";
        let mut body = sealed(&sb, &format!("{org}/public-key"), "org-v2").await;
        let refused = expect(
            422,
            api(&sb, Method::PUT, &format!("{org}/TOKEN")).json(&body),
        )
        .await;
        assert!(refused["message"].as_str().unwrap().contains("visibility"));
        body["visibility"] = json!("selected");
        // Repository ids follow the scenario's order: raxx/docs is 2.
        body["selected_repository_ids"] = json!([2]);
        assert_eq!(
            sent(api(&sb, Method::PUT, &format!("{org}/TOKEN")).json(&body))
                .await
                .status(),
            204
        );
        let one = expect(200, api(&sb, Method::GET, &format!("{org}/TOKEN"))).await;
        assert_eq!(one["visibility"], "selected");
        assert_eq!(
            seen(&sb, "raxx/docs", None).await["TOKEN"],
            pair("org-v2", "organization")
        );
        let shared = expect(
            200,
            api(
                &sb,
                Method::GET,
                "/repos/raxx/raptor/actions/organization-secrets",
            ),
        )
        .await;
        let names: Vec<&str> = shared["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["ORG_ONLY"], "TOKEN is now for raxx/docs only");
        assert_eq!(
            sent(api(&sb, Method::GET, "/orgs/nobody/actions/secrets"))
                .await
                .status(),
            404
        );
        assert_eq!(
            sent(api(&sb, Method::DELETE, &format!("{org}/ORG_ONLY")))
                .await
                .status(),
            204
        );
        assert_eq!(
            sent(api(&sb, Method::DELETE, &format!("{org}/ORG_ONLY")))
                .await
                .status(),
            404
        );
    }
}
