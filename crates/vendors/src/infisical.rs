//! Infisical client: universal-auth login with a cached access token, and the v4 secrets API
//! (`/api/v4/secrets/{name}`, with `projectId`).

use super::config::InfisicalAuth;
use super::error::{ErrorKind, VendorCode, VendorError};
use super::transport::{
    decode_json, endpoint, status_error, ErrorDetail, RawResponse, Request, Transport,
};
use reqwest::Method;
use runbook_secret::{Secret, Source};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const VENDOR: &str = crate::Vendor::Infisical.name();

/// One secret as read from Infisical; the value is a `Secret`.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub id: String,
    pub name: String,
    pub value: Secret,
    pub version: u64,
    pub environment: String,
    pub secret_path: String,
    pub project_id: String,
    pub comment: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Where a secret lives: project, environment slug and folder path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecretScope {
    pub project_id: String,
    pub environment: String,
    pub secret_path: String,
}

impl SecretScope {
    fn new(
        project_id: impl Into<String>,
        environment: impl Into<String>,
        secret_path: impl Into<String>,
    ) -> Self {
        SecretScope {
            project_id: project_id.into(),
            environment: environment.into(),
            secret_path: secret_path.into(),
        }
    }
}

/// Whether `set_secret` updated an existing secret, created it, or found the value in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Updated,
    Created,
    /// The secret already held the value: nothing was sent (as `infisical secrets set`).
    Unchanged,
}

/// What Infisical says of a change request (`SecretApprovalRequestsSchema`'s `status`,
/// `open` or `close`, and `hasMerged`).
#[derive(Debug, Clone, Deserialize)]
pub struct RequestState {
    pub status: String,
    #[serde(rename = "hasMerged", default)]
    pub merged: bool,
}

impl RequestState {
    /// Closed by an approver without being merged: the change was refused.
    pub fn refused(&self) -> bool {
        self.status == "close" && !self.merged
    }
}

/// A change request Infisical filed instead of applying a write: a secret-approval policy
/// covers the environment, and the change waits for an approver to merge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub id: String,
    pub slug: String,
    pub status: String,
    pub policy_id: String,
}

/// What a write did: applied, or filed for approval.
#[derive(Debug, Clone)]
pub enum Written<T> {
    Done(T),
    Pending(ChangeRequest),
}

/// What a merged change request leaves behind, for `await_merge`.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// The secret holds this value.
    Value(&'a Secret),
    /// The secret is gone.
    Gone,
}

/// One answer of a secret route: the secret, or a change request.
enum Answer {
    Secret(SecretRecord),
    Approval(ChangeRequest),
}

/// How waiting for a change request ended.
#[derive(Debug, Clone)]
pub enum Merged {
    /// Merged: the secret as it is now (`None` when the change deleted it).
    Yes(Option<Box<SecretRecord>>),
    /// Still not merged when the wait ended.
    NotYet,
}

/// What a listing found: the secrets holding a value, and those whose values this identity
/// may not read (whether they hold it is unknown). `(path, name)` pairs.
#[derive(Debug, Default)]
pub struct Holding {
    pub found: Vec<(String, String)>,
    pub hidden: Vec<(String, String)>,
}

/// A write sent on what `Seen` said that the vendor contradicts: an update of a secret that
/// is gone, a create of one that exists.
fn stale_guess(e: &VendorError) -> bool {
    e.kind() == ErrorKind::NotFound
        || (matches!(e.status(), Some(400 | 409))
            && e.message().to_ascii_lowercase().contains("already exist"))
}

/// Client for Infisical; clones share the cached access token.
#[derive(Debug, Clone)]
pub struct InfisicalClient {
    transport: Transport,
    base: String,
    auth: Option<InfisicalAuth>,
    cache: Arc<Mutex<Option<CachedToken>>>,
    seen: Arc<std::sync::Mutex<Seen>>,
}

/// (project, environment, folder path, name).
type SecretKey = (String, String, String, String);

/// What this process has seen of Infisical's secrets: whether one exists (and the
/// fingerprint of its value, when it was read or written). `set_secret` uses it to skip the
/// read before a write that reading could not change: an update of a secret seen to exist
/// with another value, a create of one seen not to exist. Seen may be stale (another hand
/// changed it since): a write that finds otherwise (404 on update, "already exist" on
/// create) forgets it and reads first; and it is never trusted to say "the value is already
/// there", which is only ever concluded from a fresh read.
#[derive(Debug, Default)]
struct Seen {
    /// Secrets seen to exist; the fingerprint of their value when known.
    holds: std::collections::HashMap<SecretKey, Option<String>>,
    /// Secrets seen not to exist (a 404, a delete).
    absent: std::collections::HashSet<SecretKey>,
    /// Folders listed in full, recursively: (project, environment, folder path).
    listed: Vec<(String, String, String)>,
}

/// What `Seen` says of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Holds(Option<String>),
    Absent,
    Unknown,
}

impl Seen {
    fn known(&self, key: &SecretKey) -> Known {
        if let Some(fp) = self.holds.get(key) {
            return Known::Holds(fp.clone());
        }
        let (project, env, path, _) = key;
        let under = |root: &str| {
            root == "/"
                || path == root
                || path.starts_with(&format!("{}/", root.trim_end_matches('/')))
        };
        let listed = self
            .listed
            .iter()
            .any(|(p, e, root)| p == project && e == env && under(root));
        if self.absent.contains(key) || listed {
            Known::Absent
        } else {
            Known::Unknown
        }
    }

    fn exists(&mut self, key: SecretKey, fp: Option<String>) {
        self.absent.remove(&key);
        self.holds.insert(key, fp);
    }

    fn gone(&mut self, key: SecretKey) {
        self.holds.remove(&key);
        self.absent.insert(key);
    }

    /// Nothing is known of it any more (a write whose outcome is unknown, a stale guess).
    fn forget(&mut self, key: &SecretKey) {
        self.holds.remove(key);
        self.absent.remove(key);
        let (project, env, path, _) = key;
        // A listing said it was absent, and it was not: the listing is stale for that folder.
        self.listed.retain(|(p, e, root)| {
            !(p == project && e == env && (root == "/" || path.starts_with(root.as_str())))
        });
    }
}

fn secret_key(scope: &SecretScope, name: &str) -> SecretKey {
    (
        scope.project_id.clone(),
        scope.environment.clone(),
        scope.secret_path.clone(),
        name.to_string(),
    )
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    renew_at: Instant,
}

impl InfisicalClient {
    /// `base` is the API base ending in `/api` (see `config::infisical_api_base`).
    pub fn new(transport: Transport, base: impl Into<String>, auth: Option<InfisicalAuth>) -> Self {
        InfisicalClient {
            transport,
            base: base.into().trim_end_matches('/').to_string(),
            auth,
            cache: Arc::new(Mutex::new(None)),
            seen: Arc::new(std::sync::Mutex::new(Seen::default())),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads a secret, at `version` when given (older versions stay readable).
    pub async fn get_secret(
        &self,
        project_id: &str,
        environment: &str,
        secret_path: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<SecretRecord, VendorError> {
        let scope = &SecretScope::new(project_id, environment, secret_path);
        let mut query = vec![
            ("projectId", scope.project_id.clone()),
            ("environment", scope.environment.clone()),
            ("secretPath", scope.secret_path.clone()),
            ("viewSecretValue", "true".into()),
            ("expandSecretReferences", "false".into()),
            ("type", "shared".into()),
        ];
        if let Some(v) = version {
            query.push(("version", v.to_string()));
        }
        let answer = self
            .call(Method::GET, &["v4", "secrets", name], &query, None)
            .await;
        // What is there now (an old version says nothing of that).
        if let (None, Err(e)) = (version, &answer) {
            if e.kind() == ErrorKind::NotFound {
                self.seen().gone(secret_key(scope, name));
            }
        }
        let (req, resp) = answer?;
        match self.answer(&req, &resp, scope, Some(version))? {
            Answer::Secret(r) => {
                if version.is_none() {
                    self.seen()
                        .exists(secret_key(scope, name), Some(r.value.fingerprint()));
                }
                Ok(r)
            }
            Answer::Approval(_) => Err(req
                .error(
                    ErrorKind::InvalidResponse,
                    "a read answered with a change request",
                )
                .with_status(resp.status)),
        }
    }

    /// Every secret in `environment` at `secret_path` and below whose value has fingerprint
    /// `fp` (keyed; compared here, so no value leaves this call), and apart the secrets this
    /// identity may see but not read: `(path, name)` pairs.
    ///
    /// Infisical leaves a secret whose value the identity may not read out of a recursive
    /// listing with values, silently (it refuses one in the folder asked for): the same
    /// listing without values, sent at once, names them, so none is taken for absent.
    pub async fn secrets_holding(
        &self,
        project_id: &str,
        environment: &str,
        secret_path: &str,
        fp: &crate::discovery::Wanted,
    ) -> Result<Holding, VendorError> {
        #[derive(Deserialize)]
        struct List {
            secrets: Vec<Item>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Item {
            secret_key: String,
            #[serde(default)]
            secret_value: String,
            #[serde(default)]
            secret_path: Option<String>,
            #[serde(default)]
            environment: Option<String>,
            /// Infisical's placeholder stands in the value (`<hidden-by-infisical>`).
            #[serde(default)]
            secret_value_hidden: bool,
        }
        let query = |values: bool| {
            [
                ("projectId", project_id.to_string()),
                ("environment", environment.to_string()),
                ("secretPath", secret_path.to_string()),
                ("recursive", "true".into()),
                ("viewSecretValue", values.to_string()),
                ("expandSecretReferences", "false".into()),
                // v4 defaults these to true on the newest servers: ask for exactly this folder.
                ("include_imports", "false".into()),
                ("includeImports", "false".into()),
                ("includePersonalOverrides", "false".into()),
            ]
        };
        let (with_values, names_only) = (query(true), query(false));
        let (valued, named) = tokio::join!(
            self.call(Method::GET, &["v4", "secrets"], &with_values, None),
            self.call(Method::GET, &["v4", "secrets"], &names_only, None),
        );
        let (req, resp) = valued?;
        let mut list: List = decode_json(&req, &resp)?;
        // A value Infisical hid (its placeholder, where it does not refuse the listing) is
        // not a value: such a secret is unchecked, as one left out of the listing is. Taken
        // for its placeholder, it read as holding something else.
        list.secrets.retain(|i| !i.secret_value_hidden);
        // A listing of somewhere else (a service token's one scope wins over the request's)
        // would put another environment's secrets here.
        for i in &list.secrets {
            let path = i.secret_path.as_deref().unwrap_or(secret_path);
            if i.environment.as_deref().is_some_and(|e| e != environment)
                || !within(path, secret_path)
            {
                return Err(elsewhere(
                    &req,
                    environment,
                    secret_path,
                    i.environment.as_deref().unwrap_or(environment),
                    path,
                ));
            }
        }
        let (req, resp) = named?;
        let named: List = decode_json(&req, &resp)?;
        let path_of = |i: &Item| {
            i.secret_path
                .clone()
                .unwrap_or_else(|| secret_path.to_string())
        };
        let read: std::collections::HashSet<(String, String)> = list
            .secrets
            .iter()
            .map(|i| (path_of(i), i.secret_key.clone()))
            .collect();
        let hidden: Vec<(String, String)> = named
            .secrets
            .iter()
            .map(|i| (path_of(i), i.secret_key.clone()))
            .filter(|k| !read.contains(k))
            .collect();
        {
            let mut seen = self.seen();
            for i in &list.secrets {
                let path = i
                    .secret_path
                    .clone()
                    .unwrap_or_else(|| secret_path.to_string());
                let key = (
                    project_id.to_string(),
                    environment.to_string(),
                    path,
                    i.secret_key.clone(),
                );
                // The listing shows values: what it holds is known (by keyed fingerprint).
                seen.exists(key, Some(runbook_secret::fingerprint(&i.secret_value)));
            }
            // There, value unknown: never taken for absent.
            for (path, name) in &hidden {
                let key = (
                    project_id.to_string(),
                    environment.to_string(),
                    path.clone(),
                    name.clone(),
                );
                seen.exists(key, None);
            }
            let folder = (
                project_id.to_string(),
                environment.to_string(),
                secret_path.to_string(),
            );
            if !seen.listed.contains(&folder) {
                seen.listed.push(folder);
            }
        }
        // Listed (and its values seen) before the fingerprint is waited for.
        let fp = fp.get().await?;
        let found = list
            .secrets
            .into_iter()
            .filter(|i| runbook_secret::fingerprint_matches(&i.secret_value, &fp))
            .map(|i| {
                let path = i.secret_path.unwrap_or_else(|| secret_path.to_string());
                (path, i.secret_key)
            })
            .collect();
        Ok(Holding { found, hidden })
    }

    /// Sets a secret like `infisical secrets set`: nothing when it already holds the value,
    /// else update it, or create it if it does not exist. Under a secret-approval policy the
    /// answer is the change request Infisical filed instead.
    pub async fn set_secret(
        &self,
        project_id: &str,
        environment: &str,
        secret_path: &str,
        name: &str,
        value: &Secret,
    ) -> Result<Written<(SecretRecord, SetOutcome)>, VendorError> {
        let scope = &SecretScope::new(project_id, environment, secret_path);
        let key = secret_key(scope, name);
        // Seen to exist with another value, or not at all: the write needs no read first.
        let blind = match self.seen().known(&key) {
            Known::Holds(Some(fp)) if fp == value.fingerprint() => None,
            Known::Holds(_) => Some(Method::PATCH),
            Known::Absent => Some(Method::POST),
            Known::Unknown => None,
        };
        if let Some(method) = blind {
            match self.write_secret(scope, name, value, method).await {
                Err(e) if stale_guess(&e) => self.seen().forget(&key),
                done => return done,
            }
        }
        let method = match self
            .get_secret(project_id, environment, secret_path, name, None)
            .await
        {
            Ok(current) if current.value.expose() == value.expose() => {
                return Ok(Written::Done((current, SetOutcome::Unchanged)))
            }
            Ok(_) => Method::PATCH,
            Err(e) if e.kind() == ErrorKind::NotFound => Method::POST,
            Err(e) => return Err(e),
        };
        self.write_secret(scope, name, value, method).await
    }

    /// Updates (PATCH) or creates (POST) a secret, and notes what it then holds.
    async fn write_secret(
        &self,
        scope: &SecretScope,
        name: &str,
        value: &Secret,
        method: Method,
    ) -> Result<Written<(SecretRecord, SetOutcome)>, VendorError> {
        let key = secret_key(scope, name);
        let body = json!({
            "projectId": scope.project_id,
            "environment": scope.environment,
            "secretPath": scope.secret_path,
            // A value stored in a secrets manager is a credential: one read as an opaque
            // bulk value joins the redactor now, so an answer quoting it comes back masked.
            "secretValue": value.expose_to_send(),
            "type": "shared",
        });
        let outcome = if method == Method::POST {
            SetOutcome::Created
        } else {
            SetOutcome::Updated
        };
        let sent = self
            .call(method, &["v4", "secrets", name], &[], Some(body))
            .await;
        let answer = sent.and_then(|(req, resp)| self.answer(&req, &resp, scope, None));
        let mut seen = self.seen();
        Ok(match answer {
            Ok(Answer::Secret(r)) => {
                seen.exists(key, Some(value.fingerprint()));
                Written::Done((r, outcome))
            }
            // Filed for approval: what it holds depends on an approver.
            Ok(Answer::Approval(c)) => {
                seen.forget(&key);
                Written::Pending(c)
            }
            Err(e) => {
                seen.forget(&key);
                return Err(e);
            }
        })
    }

    /// Deletes a secret; returns what was deleted, or the change request filed instead.
    pub async fn delete_secret(
        &self,
        project_id: &str,
        environment: &str,
        secret_path: &str,
        name: &str,
    ) -> Result<Written<SecretRecord>, VendorError> {
        let scope = &SecretScope::new(project_id, environment, secret_path);
        let body = json!({
            "projectId": scope.project_id,
            "environment": scope.environment,
            "secretPath": scope.secret_path,
            "type": "shared",
        });
        let key = secret_key(scope, name);
        let sent = self
            .call(Method::DELETE, &["v4", "secrets", name], &[], Some(body))
            .await;
        let answer = sent.and_then(|(req, resp)| self.answer(&req, &resp, scope, None));
        let mut seen = self.seen();
        Ok(match answer {
            Ok(Answer::Secret(r)) => {
                seen.gone(key);
                Written::Done(r)
            }
            Ok(Answer::Approval(c)) => {
                seen.forget(&key);
                Written::Pending(c)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                seen.gone(key);
                return Err(e);
            }
            Err(e) => {
                seen.forget(&key);
                return Err(e);
            }
        })
    }

    /// Waits until a change request is merged, by reading the secret (a machine identity
    /// cannot read change requests) with a backoff from 250 ms to 5 s, for at most `timeout`.
    #[allow(clippy::too_many_arguments)]
    pub async fn await_merge(
        &self,
        project_id: &str,
        environment: &str,
        secret_path: &str,
        name: &str,
        expect: Expect<'_>,
        timeout: Duration,
    ) -> Result<Merged, VendorError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(250);
        loop {
            match self
                .get_secret(project_id, environment, secret_path, name, None)
                .await
            {
                Ok(r) => {
                    if let Expect::Value(v) = expect {
                        if r.value.expose() == v.expose() {
                            return Ok(Merged::Yes(Some(Box::new(r))));
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if matches!(expect, Expect::Gone) {
                        return Ok(Merged::Yes(None));
                    }
                }
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Merged::NotYet);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// `GET /api/v1/secret-approval-requests/{id}`: whether a change request is still open,
    /// merged, or closed without being merged. `None` when this caller cannot read requests:
    /// those routes take a user's session only, and a machine identity gets 403 (it learns
    /// of a merge from the secret alone).
    pub async fn change_request(&self, id: &str) -> Result<Option<RequestState>, VendorError> {
        #[derive(Deserialize)]
        struct Body {
            approval: RequestState,
        }
        match self
            .call(
                Method::GET,
                &["v1", "secret-approval-requests", id],
                &[],
                None,
            )
            .await
        {
            Ok((req, resp)) => decode_json::<Body>(&req, &resp).map(|b| Some(b.approval)),
            Err(e) if matches!(e.kind(), ErrorKind::Forbidden | ErrorKind::Unauthorized) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// One authenticated call; a rejected cached login token triggers one fresh login.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<(Request, RawResponse), VendorError> {
        let url = self.url(segments, query)?;
        let route = format!("/api/{}", segments.join("/"));
        let mut relogged = false;
        loop {
            let token = self.token().await?;
            let mut req = Request::new(VENDOR, method.clone(), url.clone())
                .route(route.clone())
                .header("Accept", "application/json")
                .header(
                    "Authorization",
                    super::transport::HeaderValueSource::Bearer(token),
                );
            if method == Method::PATCH {
                // Setting the same value twice is harmless.
                req = req.idempotent(true);
            }
            if let Some(b) = &body {
                req = req.json(b.clone());
            }
            let resp = self.transport.send(req.clone()).await?;
            if resp.is_success() {
                return Ok((req, resp));
            }
            let err = status_error(&req, &resp, parse_error);
            let is_login = matches!(self.auth, Some(InfisicalAuth::UniversalAuth { .. }));
            if is_login && !relogged && err.kind() == ErrorKind::Unauthorized {
                *self.cache.lock().await = None;
                relogged = true;
                continue;
            }
            return Err(err);
        }
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<String, VendorError> {
        let mut url = endpoint(
            VENDOR,
            &self.base,
            "INFISICAL_DOMAIN",
            "set INFISICAL_DOMAIN to e.g. https://app.infisical.com",
            segments,
        )?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url.to_string())
    }

    /// The token to send: the configured one, or a cached universal-auth access token.
    async fn token(&self) -> Result<Secret, VendorError> {
        let auth = self.auth.as_ref().ok_or_else(|| {
            VendorError::config(
                VENDOR,
                "no credentials: INFISICAL_TOKEN is not set",
                "set INFISICAL_TOKEN, or INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
            )
        })?;
        match auth {
            InfisicalAuth::Token(t) => Ok(t.clone()),
            InfisicalAuth::UniversalAuth {
                client_id,
                client_secret,
            } => {
                let mut cache = self.cache.lock().await;
                if let Some(c) = cache.as_ref() {
                    if Instant::now() < c.renew_at {
                        return Ok(c.token.clone());
                    }
                }
                let fresh = self.login(client_id, client_secret).await?;
                let token = fresh.token.clone();
                *cache = Some(fresh);
                Ok(token)
            }
        }
    }

    /// `POST /api/v1/auth/universal-auth/login`.
    async fn login(
        &self,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<CachedToken, VendorError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Login {
            access_token: String,
            expires_in: f64,
        }
        let url = self.url(&["v1", "auth", "universal-auth", "login"], &[])?;
        let req = Request::new(VENDOR, Method::POST, url)
            .route("/api/v1/auth/universal-auth/login")
            .header("Accept", "application/json")
            .json(json!({"clientId": client_id, "clientSecret": client_secret.expose()}))
            // Logging in twice is harmless.
            .idempotent(true);
        let resp = self.transport.send(req.clone()).await?;
        if !resp.is_success() {
            let e = status_error(&req, &resp, parse_error);
            let hint = "check INFISICAL_UNIVERSAL_AUTH_CLIENT_ID / _CLIENT_SECRET (Infisical → Access Control → Machine Identities)";
            return Err(if e.kind() == ErrorKind::Unauthorized {
                e.with_hint(hint)
            } else {
                e
            });
        }
        let login: Login = decode_json(&req, &resp)?;
        let token = Secret::new(
            login.access_token,
            Source::Vendor {
                what: "Infisical universal-auth access token".into(),
            },
        );
        let ttl = token_lifetime(login.expires_in);
        // Renew a little early so a token never expires mid-request.
        let margin = (ttl / 10).min(Duration::from_secs(60));
        let now = Instant::now();
        Ok(CachedToken {
            token,
            renew_at: now.checked_add(ttl.saturating_sub(margin)).unwrap_or(now),
        })
    }

    /// Reads `{"secret": ...}` or `{"approval": ...}`.
    fn answer(
        &self,
        req: &Request,
        resp: &RawResponse,
        scope: &SecretScope,
        version: Option<Option<u64>>,
    ) -> Result<Answer, VendorError> {
        #[derive(Deserialize)]
        struct Envelope {
            secret: Option<Raw>,
            approval: Option<Approval>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Approval {
            id: String,
            #[serde(default)]
            slug: String,
            #[serde(default)]
            status: String,
            #[serde(default)]
            policy_id: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            #[serde(default)]
            id: String,
            #[serde(rename = "_id", default)]
            legacy_id: String,
            secret_key: String,
            #[serde(default)]
            secret_value: String,
            version: u64,
            #[serde(default)]
            environment: Option<String>,
            #[serde(default)]
            secret_path: Option<String>,
            #[serde(default)]
            workspace: Option<String>,
            #[serde(default)]
            secret_comment: Option<String>,
            #[serde(default)]
            created_at: String,
            #[serde(default)]
            updated_at: String,
        }
        let env: Envelope = decode_json(req, resp)?;
        let raw = match (env.secret, env.approval) {
            (Some(s), _) => s,
            (None, Some(a)) => {
                return Ok(Answer::Approval(ChangeRequest {
                    slug: if a.slug.is_empty() {
                        a.id.clone()
                    } else {
                        a.slug
                    },
                    id: a.id,
                    status: a.status,
                    policy_id: a.policy_id,
                }))
            }
            (None, None) => {
                let err = req
                    .error(ErrorKind::InvalidResponse, "the response has no 'secret'")
                    .with_status(resp.status);
                return Err(crate::transport::unreadable_answer(req, resp, err));
            }
        };
        // The secret of another environment or folder (a service token's one scope wins
        // over the request's) is not the one asked for.
        let (env, path) = (raw.environment.as_deref(), raw.secret_path.as_deref());
        if env.is_some_and(|e| e != scope.environment)
            || path.is_some_and(|p| folder(p) != folder(&scope.secret_path))
        {
            // A write answered so applied, there: recorded unknown, never "not sent".
            let err = elsewhere(
                req,
                &scope.environment,
                &scope.secret_path,
                env.unwrap_or(&scope.environment),
                path.unwrap_or(&scope.secret_path),
            );
            return Err(crate::transport::unreadable_answer(req, resp, err));
        }
        let value_version = match version {
            Some(asked) => asked.or(Some(raw.version)),
            None => Some(raw.version),
        };
        Ok(Answer::Secret(SecretRecord {
            id: if raw.id.is_empty() {
                raw.legacy_id
            } else {
                raw.id
            },
            value: Secret::new(
                raw.secret_value,
                Source::Infisical {
                    name: raw.secret_key.clone(),
                    version: value_version,
                },
            ),
            name: raw.secret_key,
            version: raw.version,
            environment: raw.environment.unwrap_or_else(|| scope.environment.clone()),
            secret_path: raw.secret_path.unwrap_or_else(|| scope.secret_path.clone()),
            project_id: raw.workspace.unwrap_or_else(|| scope.project_id.clone()),
            comment: raw.secret_comment.unwrap_or_default(),
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        }))
    }
}

/// Reads `{reqId, statusCode, message, error}`; `message` may be an array of zod issues.
fn parse_error(resp: &RawResponse) -> ErrorDetail {
    let body: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
    let error = body
        .as_ref()
        .and_then(|b| b.get("error"))
        .and_then(|e| e.as_str())
        .map(str::to_string);
    let message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => s.clone(),
                    other => {
                        let msg = other
                            .get("message")
                            .and_then(|m| m.as_str())
                            .unwrap_or("invalid");
                        match other.get("path").and_then(|p| p.as_array()) {
                            Some(p) if !p.is_empty() => {
                                let path: Vec<String> = p
                                    .iter()
                                    .map(|x| {
                                        x.as_str().map(str::to_string).unwrap_or(x.to_string())
                                    })
                                    .collect();
                                format!("{}: {msg}", path.join("."))
                            }
                            _ => msg.to_string(),
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        });
    let (kind, hint) = match (resp.status, error.as_deref()) {
        (403, Some("TokenError")) => (
            Some(ErrorKind::Unauthorized),
            Some("the Infisical token is expired or malformed: renew it (or set INFISICAL_UNIVERSAL_AUTH_CLIENT_ID/_SECRET so runbook logs in itself)".to_string()),
        ),
        (401, _) => (
            Some(ErrorKind::Unauthorized),
            Some("check INFISICAL_TOKEN (or the universal-auth client id and secret)".to_string()),
        ),
        (403, _) => (
            Some(ErrorKind::Forbidden),
            Some("the identity lacks permission on this project, environment or path; grant it in Infisical → Access Control".to_string()),
        ),
        (404, _) if says_absent(message.as_deref().unwrap_or("")) => (
            Some(ErrorKind::NotFound),
            Some("check the project id, environment slug, secret path and secret name".to_string()),
        ),
        (404, _) if said(&message, "Service token") => (
            Some(ErrorKind::Unauthorized),
            Some("the service token in INFISICAL_TOKEN is deleted or unknown: set a current one (or the universal-auth client id and secret)".to_string()),
        ),
        (404, _) if said(&message, "Route ") => (
            Some(ErrorKind::Other),
            Some("this Infisical does not serve the route: it is older than the v4 API runbook speaks (self-hosted: upgrade it)".to_string()),
        ),
        // An unknown environment or project, or a 404 without a word on what is missing:
        // nothing is known of the secret, so it is not taken as absent.
        (404, _) => (
            Some(ErrorKind::Other),
            Some("check the project id, environment slug and secret path (Infisical answers an environment that does not exist as a folder it cannot find)".to_string()),
        ),
        _ => (None, None),
    };
    ErrorDetail {
        code: error.map(VendorCode::Text),
        message,
        kind,
        hint,
    }
}

/// Whether `path` is `folder` or below it.
fn within(path: &str, parent: &str) -> bool {
    let (path, parent) = (folder(path), folder(parent));
    parent == "/" || path == parent || path.starts_with(&format!("{parent}/"))
}

/// A folder path as Infisical keeps it: from the root, without a trailing slash (`mail`,
/// `/mail/` and `/mail` are one folder; `` and `/` the root).
fn folder(path: &str) -> String {
    let inner = path.trim().trim_matches('/');
    format!("/{inner}")
}

/// Infisical answered from another environment or folder than the one asked.
fn elsewhere(req: &Request, env: &str, path: &str, got_env: &str, got_path: &str) -> VendorError {
    req.error(
        ErrorKind::Config,
        format!("Infisical answered from {got_env}:{got_path} where {env}:{path} was asked: a service token scoped to one environment and folder answers from there whatever is asked"),
    )
    .with_hint("use a machine identity (INFISICAL_UNIVERSAL_AUTH_CLIENT_ID/_SECRET, or its access token in INFISICAL_TOKEN), or a token scoped to this environment and folder")
}

/// Whether a 404's message says the secret is not there. Infisical answers 404 too for a
/// deleted service token, an unknown project, a route an older server lacks, and a folder
/// it cannot find, which is also its answer for an environment slug that does not exist
/// ("Folder with path '/' in environment with slug 'qa' not found"): none of those says the
/// secret is absent, and a delete "if present" or a wait for a merged deletion must not
/// read them as done.
fn says_absent(message: &str) -> bool {
    ["Secret with name", "Secret not found"]
        .iter()
        .any(|p| message.trim_start().starts_with(p))
}

fn said(message: &Option<String>, start: &str) -> bool {
    message
        .as_deref()
        .is_some_and(|m| m.trim_start().starts_with(start))
}

/// Infisical's longest access-token TTL is 30 days; anything beyond (or not a number) is a
/// vendor bug that must not panic the run, so the lifetime is clamped into that range.
const MAX_TOKEN_LIFETIME_SECS: f64 = 30.0 * 24.0 * 3600.0;

fn token_lifetime(expires_in: f64) -> Duration {
    if expires_in.is_nan() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(expires_in.clamp(0.0, MAX_TOKEN_LIFETIME_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{start, start_with, universal_auth};

    #[test]
    fn a_token_lifetime_from_the_vendor_is_range_checked() {
        // `expiresIn: 1e300` panicked in Duration::from_secs_f64 (exit 101).
        let max = Duration::from_secs(MAX_TOKEN_LIFETIME_SECS as u64);
        assert_eq!(token_lifetime(1e300), max);
        assert_eq!(token_lifetime(f64::INFINITY), max);
        assert_eq!(token_lifetime(f64::NAN), Duration::ZERO);
        assert_eq!(token_lifetime(-5.0), Duration::ZERO);
        assert_eq!(token_lifetime(7200.0), Duration::from_secs(7200));
    }
    use runbook_sandbox::Scenario;

    const P: &str = "raxx-project";
    const TOKEN_NAME: &str = "POSTMARK_SERVER_TOKEN";

    /// Reads secret `name` of `raxx-project`/`prod`/`/`, at its newest version.
    async fn read(i: &InfisicalClient, name: &str) -> Result<SecretRecord, VendorError> {
        i.get_secret(P, "prod", "/", name, None).await
    }

    fn sop() -> Scenario {
        Scenario::default()
            .with_postmark_token("inf-current-0001")
            .with_old_token("inf-old-0001")
    }

    #[tokio::test]
    async fn reads_the_current_and_an_older_version() {
        let (_sb, v) = start(sop()).await;
        let i = v.infisical();
        let cur = read(i, TOKEN_NAME).await.unwrap();
        assert_eq!((cur.version, cur.value.expose()), (2, "inf-current-0001"));
        assert_eq!(
            cur.value.source(),
            &Source::Infisical {
                name: "POSTMARK_SERVER_TOKEN".into(),
                version: Some(2)
            }
        );
        assert_eq!(
            (cur.environment.as_str(), cur.secret_path.as_str()),
            ("prod", "/")
        );
        assert!(!format!("{cur:?}").contains("inf-current-0001"));
        let old = i
            .get_secret(P, "prod", "/", TOKEN_NAME, Some(1))
            .await
            .unwrap();
        assert_eq!((old.version, old.value.expose()), (1, "inf-old-0001"));
    }

    fn done<T>(w: Written<T>) -> T {
        match w {
            Written::Done(t) => t,
            Written::Pending(c) => panic!("unexpected change request {c:?}"),
        }
    }

    #[tokio::test]
    async fn set_updates_with_a_new_version_creates_or_leaves_an_equal_value() {
        let (sb, v) = start(sop()).await;
        let i = v.infisical();
        let new = Secret::new("inf-new-0002", Source::Literal);
        let set = |name| i.set_secret(P, "prod", "/", name, &new);
        let (rec, outcome) = done(set(TOKEN_NAME).await.unwrap());
        assert_eq!((outcome, rec.version), (SetOutcome::Updated, 3));
        let back = read(i, TOKEN_NAME).await.unwrap();
        assert_eq!(back.value, new);
        // The same value again: read, found in place, nothing written (no version 4).
        let (rec, outcome) = done(set(TOKEN_NAME).await.unwrap());
        assert_eq!((outcome, rec.version), (SetOutcome::Unchanged, 3));
        assert_eq!(
            sb.count_requests(
                "infisical",
                "PATCH",
                "/api/v4/secrets/POSTMARK_SERVER_TOKEN"
            ),
            1
        );
        let (rec, outcome) = done(set("BRAND_NEW").await.unwrap());
        assert_eq!((outcome, rec.version), (SetOutcome::Created, 1));
        let st = sb.state();
        let versions = &st["infisical"]["secrets"][0]["versions"];
        assert_eq!(versions.as_array().map(Vec::len), Some(3));
        assert_eq!(versions[2]["secretValue"], "inf-new-0002");
    }

    /// A second client of the same Infisical, seeing nothing of what `i` saw.
    fn another(i: &InfisicalClient) -> InfisicalClient {
        InfisicalClient::new(i.transport.clone(), i.base.clone(), i.auth.clone())
    }

    #[tokio::test]
    async fn a_write_sends_no_read_when_one_was_seen_and_never_assumes_the_value_is_there() {
        let (sb, v) = start(sop()).await;
        let i = v.infisical();
        let gets =
            |name: &str| sb.count_requests("infisical", "GET", &format!("/api/v4/secrets/{name}"));
        let new = Secret::new("inf-new-0002", Source::Literal);
        // Listed with the value it is set to: confirmed by a read, nothing written (a blind
        // update would add a version, or file a change request that changes nothing).
        i.secrets_holding(
            P,
            "prod",
            "/",
            &crate::discovery::Wanted::now("sha256:000000000000"),
        )
        .await
        .unwrap();
        let current = Secret::new("inf-current-0001", Source::Literal);
        let (rec, outcome) = done(
            i.set_secret(P, "prod", "/", TOKEN_NAME, &current)
                .await
                .unwrap(),
        );
        assert_eq!((outcome, rec.version), (SetOutcome::Unchanged, 2));
        assert_eq!(gets(TOKEN_NAME), 1);
        // Read with another value: the update goes at once (the precheck's read, then store).
        read(i, TOKEN_NAME).await.unwrap();
        let (rec, outcome) = done(
            i.set_secret(P, "prod", "/", TOKEN_NAME, &new)
                .await
                .unwrap(),
        );
        assert_eq!((outcome, rec.version), (SetOutcome::Updated, 3));
        assert_eq!(gets(TOKEN_NAME), 2);
        // The value this client wrote: "already there" is still only concluded from a read.
        let (rec, outcome) = done(
            i.set_secret(P, "prod", "/", TOKEN_NAME, &new)
                .await
                .unwrap(),
        );
        assert_eq!((outcome, rec.version), (SetOutcome::Unchanged, 3));
        assert_eq!(gets(TOKEN_NAME), 3);
        // Not in the listing of its folder: created at once (discovery's listing, then staging).
        let (rec, outcome) = done(i.set_secret(P, "prod", "/", "STAGED", &new).await.unwrap());
        assert_eq!((outcome, rec.version), (SetOutcome::Created, 1));
        assert_eq!(gets("STAGED"), 0);
        // Deleted by this client: created again at once.
        done(i.delete_secret(P, "prod", "/", "STAGED").await.unwrap());
        let (_, outcome) = done(i.set_secret(P, "prod", "/", "STAGED", &new).await.unwrap());
        assert_eq!(outcome, SetOutcome::Created);
        assert_eq!(gets("STAGED"), 0);
        // Another environment, never seen: read first, as always.
        let (_, outcome) = done(i.set_secret(P, "dev", "/", "STAGED", &new).await.unwrap());
        assert_eq!(outcome, SetOutcome::Created);
        assert_eq!(gets("STAGED"), 1);
    }

    #[tokio::test]
    async fn a_write_on_what_another_hand_changed_since_it_was_seen_reads_and_lands() {
        let (sb, v) = start(sop()).await;
        let i = v.infisical();
        let other = another(i);
        let theirs = Secret::new("inf-theirs-0003", Source::Literal);
        let mine = Secret::new("inf-mine-0004", Source::Literal);
        // Seen absent, then created by someone else: the create answers "already exist",
        // the write reads and updates instead.
        i.secrets_holding(
            P,
            "prod",
            "/",
            &crate::discovery::Wanted::now("sha256:000000000000"),
        )
        .await
        .unwrap();
        done(
            other
                .set_secret(P, "prod", "/", "STAGED", &theirs)
                .await
                .unwrap(),
        );
        let (rec, outcome) = done(i.set_secret(P, "prod", "/", "STAGED", &mine).await.unwrap());
        assert_eq!((outcome, rec.version), (SetOutcome::Updated, 2));
        assert_eq!(read(i, "STAGED").await.unwrap().value, mine);
        assert_eq!(
            sb.count_requests("infisical", "POST", "/api/v4/secrets/STAGED"),
            2
        );
        // Seen to exist, then deleted by someone else: the update answers 404, the write
        // reads and creates instead.
        read(i, TOKEN_NAME).await.unwrap();
        done(
            other
                .delete_secret(P, "prod", "/", TOKEN_NAME)
                .await
                .unwrap(),
        );
        let (rec, outcome) = done(
            i.set_secret(P, "prod", "/", TOKEN_NAME, &mine)
                .await
                .unwrap(),
        );
        assert_eq!(outcome, SetOutcome::Created);
        assert_eq!(read(i, TOKEN_NAME).await.unwrap().value, mine);
        assert_eq!(rec.value, mine);
    }

    #[tokio::test]
    async fn a_protected_environment_answers_a_change_request_and_the_merge_is_awaited() {
        let mut scenario = sop();
        scenario
            .infisical
            .approval_policies
            .push(runbook_sandbox::scenario::ApprovalPolicySpec {
                // The client writes as a machine identity, which Infisical's own policies
                // skip: this one covers everyone, to rehearse the wait.
                applies_to: runbook_sandbox::scenario::AppliesTo::Everyone,
                ..Default::default()
            });
        let (sb, v) = start(scenario).await;
        let i = v.infisical();
        let new = Secret::new("inf-new-0002", Source::Literal);
        let Written::Pending(request) = i
            .set_secret(P, "prod", "/", "POSTMARK_SERVER_TOKEN", &new)
            .await
            .unwrap()
        else {
            panic!("expected a change request");
        };
        assert_eq!(request.status, "open");
        assert!(request.slug.starts_with("update-"), "{request:?}");
        let wait = |t| {
            i.await_merge(
                P,
                "prod",
                "/",
                "POSTMARK_SERVER_TOKEN",
                Expect::Value(&new),
                t,
            )
        };
        assert!(matches!(
            wait(Duration::from_millis(300)).await.unwrap(),
            Merged::NotYet
        ));
        let merge = format!(
            "{}/_sandbox/approvals/{}/merge",
            sb.infisical_url(),
            request.id
        );
        let status = reqwest::Client::new()
            .post(merge)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        let Merged::Yes(Some(rec)) = wait(Duration::from_secs(5)).await.unwrap() else {
            panic!("the merge was not seen");
        };
        assert_eq!((rec.version, rec.value.expose()), (3, "inf-new-0002"));
    }

    /// An opaque value (read in bulk, not judged a credential by its name) stored in
    /// Infisical joins the redactor as it is sent: an error quoting it is masked. Before,
    /// only `http::` registered what it sent (cold review).
    #[tokio::test]
    async fn a_value_stored_in_infisical_joins_the_redactor_as_it_is_sent() {
        // Refused: no answer gives the value back as a Secret (which would register it).
        let mut scenario = sop();
        scenario.faults = vec![runbook_sandbox::FaultRule::parse("infisical:POST=400").unwrap()];
        let (_sb, v) = start(scenario).await;
        let i = v.infisical();
        let opaque = "moonbase7";
        let value = Secret::from_bulk("LAUNCH_CODE", opaque, Source::Prompt { id: "t".into() });
        assert!(
            !runbook_secret::contains_secret(opaque),
            "not registered before"
        );
        assert!(i
            .set_secret(P, "prod", "/", "LAUNCH_CODE", &value)
            .await
            .is_err());
        assert!(runbook_secret::contains_secret(opaque));
    }

    #[tokio::test]
    async fn delete_then_get_is_not_found() {
        let (_sb, v) = start(sop()).await;
        let i = v.infisical();
        let gone = done(i.delete_secret(P, "prod", "/", TOKEN_NAME).await.unwrap());
        assert_eq!(gone.name, TOKEN_NAME);
        let e = read(i, TOKEN_NAME).await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::NotFound, Some(404)));
        assert_eq!(e.code(), Some(&VendorCode::Text("NotFound".into())));
        assert!(e
            .message()
            .contains("Secret with name 'POSTMARK_SERVER_TOKEN' not found"));
    }

    #[tokio::test]
    async fn a_bad_token_is_403_token_error_mapped_to_unauthorized() {
        let (_sb, v) = start_with(sop(), |_, c| {
            let garbage = Secret::new("garbage-token-xyz", Source::Literal);
            c.infisical.auth = Some(InfisicalAuth::Token(garbage));
        })
        .await;
        let e = read(v.infisical(), TOKEN_NAME).await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Unauthorized, Some(403)));
        assert_eq!(e.code(), Some(&VendorCode::Text("TokenError".into())));
        assert!(e.message().contains("malformed"));
        assert!(e.help_text().contains("renew"));
        assert!(e.to_string().contains("(error TokenError)"));
    }

    /// A service token scoped to prod:/ is answered from prod whatever the request names
    /// (Infisical's v4 list and read): taken as staging's, discovery found prod's token in
    /// every environment and a read of staging returned prod's secret. Refused now, naming
    /// what to use instead.
    #[tokio::test]
    async fn an_answer_from_another_environment_than_asked_is_refused() {
        let mut s = sop();
        s.infisical.service_tokens = vec![runbook_sandbox::scenario::ServiceTokenSpec {
            token: "st.5c0be.scoped-secret".into(),
            environment: "prod".into(),
            path: "/".into(),
        }];
        let (_sb, v) = start_with(s, |_, c| {
            let scoped = Secret::new("st.5c0be.scoped-secret", Source::Literal);
            c.infisical.auth = Some(InfisicalAuth::Token(scoped));
        })
        .await;
        let i = v.infisical();
        let e = i
            .get_secret(P, "staging", "/", TOKEN_NAME, None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message()
                .contains("Infisical answered from prod:/ where staging:/ was asked"),
            "{e}"
        );
        assert!(e.help_text().contains("machine identity"));
        let fp = crate::discovery::Wanted::now("sha256:000000000000");
        let e = i.secrets_holding(P, "staging", "/", &fp).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        // Its own scope reads as it is, however the folder is written.
        for path in ["/", ""] {
            i.get_secret(P, "prod", path, TOKEN_NAME, None)
                .await
                .unwrap();
        }
    }

    /// A deleted service token is answered 404 (Infisical looks the token up by its id): it
    /// is a credential error, not "the secret is absent", which a delete "if present" and
    /// a wait for a merged deletion would take as done.
    #[tokio::test]
    async fn a_deleted_service_token_is_not_a_missing_secret() {
        let (_sb, v) = start_with(sop(), |_, c| {
            let gone = Secret::new("st.6f1e0c.deleted-secret-xyz", Source::Literal);
            c.infisical.auth = Some(InfisicalAuth::Token(gone));
        })
        .await;
        let e = v
            .infisical()
            .delete_secret(P, "prod", "/", TOKEN_NAME)
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Unauthorized, Some(404)));
        assert!(e
            .message()
            .contains("Service token with ID '6f1e0c' not found"));
        assert!(e.help_text().contains("INFISICAL_TOKEN"));
        // A route an older server lacks, and an environment that is not there, say nothing
        // of the secret either.
        for message in [
            "Route DELETE:/api/v4/secrets/X not found",
            "Environment with slug 'qa' in project with ID 'p' not found",
            "Folder with path '/' in environment with slug 'qa' not found",
            "Not found",
        ] {
            assert!(!says_absent(message), "{message}");
        }
        assert!(says_absent("Secret with name 'X' not found at path '/'"));
        // One folder however it is written: none is "elsewhere".
        for (a, b) in [
            ("mail", "/mail"),
            ("/mail/", "/mail"),
            ("", "/"),
            ("/", "/"),
        ] {
            assert_eq!(folder(a), folder(b), "{a} {b}");
        }
        assert!(within("/mail/ci", "mail") && within("/x", "") && !within("/mailbox", "/mail"));
    }

    #[tokio::test]
    async fn universal_auth_logs_in_once_and_again_after_expiry() {
        let (sb, v) = start_with(sop(), |sb, c| {
            c.infisical.auth = Some(universal_auth(sb));
        })
        .await;
        let i = v.infisical();
        read(i, TOKEN_NAME).await.unwrap();
        read(i, TOKEN_NAME).await.unwrap();
        assert_eq!(sb.state()["infisical"]["logins"], 1);
        sb.infisical_expire_tokens();
        read(i, TOKEN_NAME).await.unwrap();
        assert_eq!(sb.state()["infisical"]["logins"], 2);
        assert_eq!(
            sb.count_requests("infisical", "POST", "/api/v1/auth/universal-auth/login"),
            2
        );
    }

    #[tokio::test]
    async fn wrong_client_secret_is_unauthorized() {
        let (_sb, v) = start_with(sop(), |sb, c| {
            c.infisical.auth = Some(InfisicalAuth::UniversalAuth {
                client_id: sb.credentials().infisical_client_id.clone(),
                client_secret: Secret::new("wrong-secret-0000", Source::Literal),
            });
        })
        .await;
        let e = read(v.infisical(), "X").await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Unauthorized, Some(401)));
        assert_eq!(e.route(), "/api/v1/auth/universal-auth/login");
        assert!(e.help_text().contains("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"));
    }

    #[tokio::test]
    async fn an_unknown_environment_is_not_found_and_an_unseen_project_forbidden() {
        let (_sb, v) = start(sop()).await;
        let e = v
            .infisical()
            .get_secret(P, "qa", "/", "X", None)
            .await
            .unwrap_err();
        // Not "absent": nothing is known of the secret in an environment that is not there.
        assert_eq!((e.kind(), e.status()), (ErrorKind::Other, Some(404)));
        let e = v
            .infisical()
            .get_secret("other", "prod", "/", "X", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
    }

    #[test]
    fn validation_messages_arrays_are_joined() {
        let resp = RawResponse {
            status: 422,
            headers: Default::default(),
            body: serde_json::to_vec(&json!({
                "reqId": "req-1", "statusCode": 422, "error": "ValidationFailure",
                "message": [
                    {"code": "invalid_type", "path": ["projectId"], "message": "Required"},
                    {"code": "custom", "path": [], "message": "Bad"}
                ]
            }))
            .unwrap(),
            attempts: 1,
            earlier_lost: false,
            not_waited: false,
        };
        let d = parse_error(&resp);
        assert_eq!(d.message.as_deref(), Some("projectId: Required; Bad"));
        assert_eq!(d.code, Some(VendorCode::Text("ValidationFailure".into())));
    }

    #[tokio::test]
    async fn missing_credentials_name_the_variables() {
        let (_sb, v) = start_with(sop(), |_, c| c.infisical.auth = None).await;
        let e = read(v.infisical(), "X").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("INFISICAL_TOKEN"));
    }
}
