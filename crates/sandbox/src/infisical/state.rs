//! The Infisical simulator's data: one project's secrets with every version kept, and the
//! access tokens universal-auth login issued.

use super::approvals::{Approvals, Op};
use crate::scenario::{resolve, InfisicalScenario};
use crate::world::TokensOf;
use crate::{ts, SandboxError};
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(super) const EXPIRED: &str = "Your token has expired. Please re-authenticate.";
pub(super) const MALFORMED: &str =
    "The provided access token is malformed. Please use a valid token or generate a new one and try again.";

pub(super) struct Version {
    pub(super) value: String,
    pub(super) version: u64,
    pub(super) at: String,
}

pub(super) struct StoredSecret {
    pub(super) id: String,
    pub(super) environment: String,
    pub(super) path: String,
    pub(super) key: String,
    pub(super) versions: Vec<Version>,
    pub(super) created_at: String,
    pub(super) deleted: bool,
}

impl Version {
    /// Version `version` of a secret, `value`, made now.
    fn now(value: String, version: u64) -> Self {
        Version {
            value,
            version,
            at: ts::millis(),
        }
    }
}

impl StoredSecret {
    /// Secret `key` at `environment` and `path`, made now with its `versions`.
    fn new(environment: &str, path: &str, key: &str, versions: Vec<Version>) -> Self {
        StoredSecret {
            id: uuid::Uuid::new_v4().to_string(),
            environment: environment.to_string(),
            path: path.to_string(),
            key: key.to_string(),
            versions,
            created_at: ts::millis(),
            deleted: false,
        }
    }
}

pub(super) struct Issued {
    pub(super) token: String,
    pub(super) expires: Instant,
}

pub(crate) struct InfisicalState {
    /// The access token it accepts as `INFISICAL_TOKEN`.
    pub(crate) token: String,
    /// A person's session token, when the scenario has one.
    pub(super) user_token: Option<String>,
    /// The machine identity universal-auth login accepts.
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(super) project_id: String,
    pub(super) project_slug: String,
    pub(super) environments: Vec<String>,
    pub(super) secrets: Vec<StoredSecret>,
    pub(super) issued: Vec<Issued>,
    pub(super) ttl_secs: u64,
    logins: u64,
    /// Folders the scenario declares (in every environment), normalised.
    folders: Vec<String>,
    /// Folders whose secrets' values the identity may not read (normalised).
    value_hidden: Vec<String>,
    /// A listing with values shows them, placeholder for value, rather than leaving them out.
    pub(super) hidden_values_listed: bool,
    /// Service tokens: the token, and the environment and folder of its one scope.
    pub(super) service_tokens: Vec<(String, String, String)>,
    pub(super) approvals: Approvals,
    /// The request pool, when the scenario sets one.
    pub(super) pool: Option<crate::ratelimit::Pool>,
}

impl InfisicalState {
    /// Whether the values of the secrets at `path` are hidden from the identity.
    pub(super) fn value_hidden(&self, path: &str) -> bool {
        let path = normalize_path(path);
        self.value_hidden.iter().any(|f| {
            f == "/" || path == *f || path.starts_with(&format!("{}/", f.trim_end_matches('/')))
        })
    }

    /// Whether `path` is a folder of `env`: `/`, a declared folder, or a folder (or parent
    /// of one) that holds a secret.
    pub(super) fn folder_exists(&self, env: &str, path: &str) -> bool {
        let path = normalize_path(path);
        let under =
            |p: &str| p == path || p.starts_with(&format!("{}/", path.trim_end_matches('/')));
        path == "/"
            || self.folders.iter().any(|f| under(f))
            || self
                .secrets
                .iter()
                .any(|s| s.environment == env && under(&s.path))
    }

    pub(super) fn from_scenario(
        s: &InfisicalScenario,
        tokens_of: TokensOf<'_>,
    ) -> Result<Self, SandboxError> {
        let mut secrets = Vec::new();
        for spec in &s.secrets {
            if spec.name.is_empty() || spec.versions.is_empty() {
                return Err(SandboxError::Scenario {
                    message: "an infisical secret needs a name and at least one version".into(),
                });
            }
            let mut versions = Vec::new();
            for (i, v) in spec.versions.iter().enumerate() {
                versions.push(Version::now(resolve(v, tokens_of)?, i as u64 + 1));
            }
            let path = normalize_path(&spec.path);
            secrets.push(StoredSecret::new(
                &spec.environment,
                &path,
                &spec.name,
                versions,
            ));
        }
        Ok(InfisicalState {
            token: s.token.clone().unwrap_or_else(random_jwt),
            user_token: s.user_token.clone(),
            client_id: s
                .client_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            client_secret: s
                .client_secret
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            project_id: s.project_id.clone(),
            project_slug: s.project_slug.clone(),
            environments: s.environments.clone(),
            secrets,
            folders: s.folders.iter().map(|f| normalize_path(f)).collect(),
            value_hidden: s
                .value_hidden_folders
                .iter()
                .map(|f| normalize_path(f))
                .collect(),
            hidden_values_listed: s.hidden_values_listed,
            service_tokens: s
                .service_tokens
                .iter()
                .map(|t| {
                    (
                        t.token.clone(),
                        t.environment.clone(),
                        normalize_path(&t.path),
                    )
                })
                .collect(),
            approvals: Approvals::new(&s.approval_policies),
            issued: Vec::new(),
            ttl_secs: s.access_token_ttl_secs,
            logins: 0,
            pool: s.rate_limit.as_ref().map(crate::ratelimit::Pool::of),
        })
    }

    /// Expires every access token issued by login (tests of re-login).
    #[cfg(any(test, feature = "test-api"))]
    pub(super) fn expire_issued(&mut self) {
        let now = Instant::now();
        for t in &mut self.issued {
            t.expires = now;
        }
    }

    /// A universal-auth login: a new access token, valid for the scenario's TTL.
    pub(super) fn login(&mut self) -> String {
        self.logins += 1;
        let token = random_jwt();
        self.issued.push(Issued {
            token: token.clone(),
            expires: Instant::now() + Duration::from_secs(self.ttl_secs),
        });
        token
    }

    /// Creates secret `key` at `env` and `path` with `value` as version 1; its index.
    pub(super) fn create(&mut self, env: &str, path: &str, key: &str, value: &str) -> usize {
        let first = Version::now(trim_value(value), 1);
        self.secrets
            .push(StoredSecret::new(env, path, key, vec![first]));
        self.secrets.len() - 1
    }

    /// Adds `value` as the next version of secret `i`.
    pub(super) fn add_version(&mut self, i: usize, value: &str) {
        if let Some(secret) = self.secrets.get_mut(i) {
            let next = secret.versions.last().map_or(1, |v| v.version + 1);
            secret.versions.push(Version::now(trim_value(value), next));
        }
    }

    /// Applies the change requests the simulated approver has merged by now. Time is looked
    /// at when a request arrives, so a merge shows from the first request after it is due.
    pub(super) fn settle(&mut self) {
        for (env, path, key, op) in self.approvals.due() {
            self.apply(&env, &path, &key, op);
        }
    }

    /// What a merged change request does, as the write it stood for would have.
    pub(super) fn apply(&mut self, env: &str, path: &str, key: &str, op: Op) {
        match (op, self.find(env, path, key)) {
            (Op::Create { value }, None) => {
                self.create(env, path, key, &value);
            }
            (Op::Create { value } | Op::Update { value }, Some(i)) => self.add_version(i, &value),
            (Op::Delete, Some(i)) => self.delete(i),
            (Op::Update { .. } | Op::Delete, None) => {}
        }
    }

    /// Deletes secret `i` (its history stays in the state).
    pub(super) fn delete(&mut self, i: usize) {
        if let Some(secret) = self.secrets.get_mut(i) {
            secret.deleted = true;
        }
    }

    pub(super) fn find(&self, env: &str, path: &str, key: &str) -> Option<usize> {
        self.secrets
            .iter()
            .position(|s| !s.deleted && s.environment == env && s.path == path && s.key == key)
    }

    pub(super) fn to_json(&self) -> Value {
        let secrets: Vec<Value> = self
            .secrets
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "environment": s.environment,
                    "secretPath": s.path,
                    "secretKey": s.key,
                    "deleted": s.deleted,
                    "version": s.versions.last().map(|v| v.version),
                    "versions": s.versions.iter().map(|v| json!({"version": v.version, "secretValue": v.value, "createdAt": v.at})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "project_id": self.project_id,
            "secrets": secrets,
            "logins": self.logins,
            "approvals": self.approvals.to_json(),
            "rate_limit": self.pool.as_ref().map(|p| json!({"refused": p.refused})),
        })
    }
}

/// A random JWT-shaped access token (machine identity tokens are JWTs).
fn random_jwt() -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(format!(
        r#"{{"authTokenType":"identityAccessToken","identityAccessTokenId":"{}"}}"#,
        uuid::Uuid::new_v4()
    ));
    let sig = b64.encode(uuid::Uuid::new_v4().as_bytes());
    format!("{head}.{body}.{sig}")
}

pub(super) fn normalize_path(p: &str) -> String {
    let t = p.trim().trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// Infisical trims values but keeps one trailing newline.
fn trim_value(v: &str) -> String {
    if v.ends_with('\n') {
        format!("{}\n", v.trim())
    } else {
        v.trim().to_string()
    }
}
