//! A generic HTTP simulator declared in the scenario file, so a runbook for a vendor without a
//! built-in module (a mail provider's key API, an app's health endpoint) is rehearsed and
//! tested end to end like the built-in ones.
//!
//! Each `[[scripted]]` table is one vendor on its own 127.0.0.1 port. Its state is a set of
//! named collections of JSON objects; routes answer from templates and may create, find, list
//! or delete items, so an API-key vendor is simulated statefully: a created key is listed and
//! authenticates, a deleted key gets 401.
//!
//! ```toml
//! [[scripted]]
//! name = "sendgrid"                    # faults: sendgrid:POST:/v3/api_keys=500
//! env = "SENDGRID_API_URL"             # default: NAME_API_URL
//! auth = { header = "Authorization", prefix = "Bearer ", collection = "keys", field = "api_key" }
//! collections = { keys = [{ api_key_id = "k1", name = "app", api_key = "SG.k1.secret" }] }
//!
//! [[scripted.routes]]
//! method = "POST"
//! path = "/v3/api_keys"
//! create = { collection = "keys", item = { api_key_id = "{{random}}", name = "{{body.name}}", api_key = "SG.{{random}}" } }
//! respond = { status = 201, body = "{{item}}" }
//!
//! [[scripted.routes]]
//! method = "DELETE"
//! path = "/v3/api_keys/{id}"
//! delete = { collection = "keys", where = { api_key_id = "{{path.id}}" } }
//! respond = { status = 204 }
//! ```
//!
//! Templates: a string that is exactly `{{expr}}` becomes the value of `expr` (any JSON type);
//! `{{expr}}` inside other text is interpolated. `expr` is a dotted path from `body`, `path`
//! (captures), `query`, `auth` (the item that authenticated the request), `item` (the item the
//! route created, found or deleted), `items` (what `list` selected), or `random` (32 hex
//! digits), `uuid`, `now`.

use super::{header, Shared, World};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One scripted vendor, as the scenario declares it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptedVendor {
    /// Lower-case name: faults, the request log and the state use it.
    pub name: String,
    /// The environment variable that carries the simulator's base URL.
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// Named lists of items: the simulator's state.
    #[serde(default)]
    pub collections: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Answer for a route, item or path that does not exist.
    #[serde(default = "default_not_found")]
    pub not_found: Answer,
}

/// Requests must carry, in `header` after `prefix`, the `field` of an item of `collection`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(default = "default_auth_header")]
    pub header: String,
    #[serde(default)]
    pub prefix: String,
    pub collection: String,
    pub field: String,
    #[serde(default = "default_unauthorized")]
    pub unauthorized: Answer,
}

/// One route: a method and a path pattern (`/v3/api_keys/{id}`), at most one action, and the
/// answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub method: String,
    pub path: String,
    /// `false`: no authentication on this route even when the vendor has `auth`.
    #[serde(default = "yes")]
    pub auth: bool,
    /// The authenticated item must have `field` containing (or equal to) `value`.
    #[serde(default)]
    pub requires: Option<Requirement>,
    #[serde(default)]
    pub create: Option<Create>,
    #[serde(default)]
    pub find: Option<Select>,
    #[serde(default)]
    pub delete: Option<Select>,
    #[serde(default)]
    pub list: Option<List>,
    #[serde(default = "default_ok")]
    pub respond: Answer,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub field: String,
    pub value: Value,
    #[serde(default = "default_forbidden")]
    pub forbidden: Answer,
}

/// Adds the rendered `item` to `collection`; over `limit` items answers `over_limit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Create {
    pub collection: String,
    pub item: Value,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default = "default_forbidden")]
    pub over_limit: Answer,
}

/// The first item of `collection` whose fields equal every rendered `where` value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub collection: String,
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
}

/// Every item of `collection` (matching `where`), keeping only `fields` when given: a list
/// route must not echo the credentials it stores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct List {
    pub collection: String,
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A status, a JSON body template and extra headers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub status: u16,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn default_auth_header() -> String {
    "Authorization".into()
}

fn answer(status: u16, message: &str) -> Answer {
    Answer {
        status,
        body: Some(json!({"errors": [{"message": message}]})),
        headers: BTreeMap::new(),
    }
}

fn default_not_found() -> Answer {
    answer(404, "not found")
}

fn default_unauthorized() -> Answer {
    answer(401, "authorization required")
}

fn default_forbidden() -> Answer {
    answer(403, "access forbidden")
}

fn default_ok() -> Answer {
    Answer {
        status: 200,
        body: None,
        headers: BTreeMap::new(),
    }
}

const BUILT_IN: [&str; 5] = ["postmark", "infisical", "heroku", "github", "raptor"];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

impl ScriptedVendor {
    /// The environment variable for the base URL: `env`, else `NAME_API_URL`.
    pub fn env_var(&self) -> String {
        self.env.clone().unwrap_or_else(|| {
            let upper: String = self
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{upper}_API_URL")
        })
    }

    /// Every mistake a scenario author can make that would otherwise surface as a confusing
    /// answer mid-run.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(format!(
                "scripted vendor name '{name}' must be lower-case letters, digits, '-' and '_'"
            ));
        }
        if BUILT_IN.contains(&name.as_str()) {
            return Err(format!(
                "scripted vendor '{name}' has the name of a built-in simulator"
            ));
        }
        let env = self.env_var();
        if env.is_empty()
            || !env
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "scripted vendor '{name}': env '{env}' must be an upper-case variable name"
            ));
        }
        let has = |c: &str| self.collections.contains_key(c);
        if let Some(a) = &self.auth {
            if !has(&a.collection) {
                return Err(format!(
                    "scripted vendor '{name}': auth uses collection '{}', which is not declared",
                    a.collection
                ));
            }
        }
        for r in &self.routes {
            let at = format!("scripted vendor '{name}', route {} {}", r.method, r.path);
            if !METHODS.contains(&r.method.as_str()) {
                return Err(format!(
                    "{at}: method must be one of {}",
                    METHODS.join(", ")
                ));
            }
            if !r.path.starts_with('/') {
                return Err(format!("{at}: the path must start with '/'"));
            }
            let actions = [
                r.create.as_ref().map(|c| &c.collection),
                r.find.as_ref().map(|c| &c.collection),
                r.delete.as_ref().map(|c| &c.collection),
                r.list.as_ref().map(|c| &c.collection),
            ];
            if actions.iter().flatten().count() > 1 {
                return Err(format!(
                    "{at}: a route has at most one of create, find, delete, list"
                ));
            }
            if let Some(c) = actions.iter().flatten().find(|c| !has(c)) {
                return Err(format!("{at}: collection '{c}' is not declared"));
            }
            if r.requires.is_some() && (self.auth.is_none() || !r.auth) {
                return Err(format!(
                    "{at}: `requires` checks the authenticated item, so the route needs auth"
                ));
            }
        }
        Ok(())
    }
}

/// Interns a vendor name: the request log and the fault middleware name vendors with
/// `&'static str`, and scenario names are few and live for the process.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// The live state of every scripted vendor.
#[derive(Default)]
pub(crate) struct ScriptedState {
    pub vendors: Vec<VendorState>,
}

pub(crate) struct VendorState {
    pub spec: ScriptedVendor,
    pub collections: BTreeMap<String, Vec<Value>>,
    pub url: String,
}

impl ScriptedState {
    pub fn from_scenario(specs: &[ScriptedVendor]) -> Result<Self, String> {
        let mut vendors: Vec<VendorState> = Vec::new();
        for spec in specs {
            spec.validate()?;
            if vendors.iter().any(|v| v.spec.name == spec.name) {
                return Err(format!("scripted vendor '{}' is declared twice", spec.name));
            }
            if vendors.iter().any(|v| v.spec.env_var() == spec.env_var()) {
                return Err(format!(
                    "scripted vendors share the env variable {}",
                    spec.env_var()
                ));
            }
            vendors.push(VendorState {
                spec: spec.clone(),
                collections: spec.collections.clone(),
                url: String::new(),
            });
        }
        Ok(ScriptedState { vendors })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.vendors.iter().map(|v| intern(&v.spec.name)).collect()
    }

    pub fn to_json(&self) -> Value {
        let m: Map<String, Value> = self
            .vendors
            .iter()
            .map(|v| {
                (
                    v.spec.name.clone(),
                    json!({"url": v.url, "env": v.spec.env_var(), "collections": v.collections}),
                )
            })
            .collect();
        Value::Object(m)
    }
}

/// The generic error answer for an injected fault.
pub(crate) fn error_for_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = code.canonical_reason().unwrap_or("error");
    (code, axum::Json(json!({"errors": [{"message": reason}]}))).into_response()
}

#[derive(Clone)]
struct Served {
    shared: Arc<Shared>,
    index: usize,
}

pub(crate) fn router(shared: Arc<Shared>, index: usize) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Served { shared, index })
}

async fn handle(State(s): State<Served>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query: Map<String, Value> = req
        .uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        })
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return render(&answer(400, "the body is not valid JSON"), &Value::Null),
        }
    };
    s.shared.with_world(|w| {
        let request = Incoming {
            method: &method,
            path: &path,
            query,
            body,
            auth_value: None,
        };
        serve(w, s.index, request, &headers)
    })
}

struct Incoming<'a> {
    method: &'a str,
    path: &'a str,
    query: Map<String, Value>,
    body: Value,
    auth_value: Option<String>,
}

fn serve(
    w: &mut World,
    index: usize,
    mut req: Incoming<'_>,
    headers: &axum::http::HeaderMap,
) -> Response {
    let Some(vendor) = w.scripted.vendors.get_mut(index) else {
        return error_for_status(500);
    };
    let spec = &vendor.spec;
    let matched = spec.routes.iter().find_map(|r| {
        if !r.method.eq_ignore_ascii_case(req.method) {
            return None;
        }
        captures(&r.path, req.path).map(|c| (r, c))
    });
    let Some((route, captured)) = matched else {
        return render(&spec.not_found, &Value::Null);
    };
    let mut scope = json!({
        "body": req.body.take(),
        "query": Value::Object(std::mem::take(&mut req.query)),
        "path": Value::Object(captured),
    });
    if let (Some(auth), true) = (&spec.auth, route.auth) {
        req.auth_value = header(headers, &auth.header)
            .and_then(|v| v.strip_prefix(auth.prefix.as_str()))
            .map(|v| v.trim().to_string());
        let item = req.auth_value.as_deref().and_then(|given| {
            vendor
                .collections
                .get(&auth.collection)
                .and_then(|items| {
                    items
                        .iter()
                        .find(|i| i.get(&auth.field).and_then(Value::as_str) == Some(given))
                })
                .cloned()
        });
        match item {
            Some(i) => scope["auth"] = i,
            None => return render(&auth.unauthorized, &scope),
        }
        if let Some(req) = &route.requires {
            let have = &scope["auth"][&req.field];
            let ok = match have {
                Value::Array(a) => a.contains(&req.value),
                other => *other == req.value,
            };
            if !ok {
                return render(&req.forbidden, &scope);
            }
        }
    }
    let collections = &mut vendor.collections;
    if let Some(c) = &route.create {
        let items = collections.entry(c.collection.clone()).or_default();
        if c.limit.is_some_and(|l| items.len() >= l) {
            return render(&c.over_limit, &scope);
        }
        let item = template(&c.item, &scope);
        items.push(item.clone());
        scope["item"] = item;
    }
    if let Some(sel) = &route.find {
        match position(collections, sel, &scope) {
            Some(i) => scope["item"] = collections[&sel.collection][i].clone(),
            None => return render(&spec.not_found, &scope),
        }
    }
    if let Some(sel) = &route.delete {
        match position(collections, sel, &scope) {
            Some(i) => {
                let removed = collections
                    .get_mut(&sel.collection)
                    .map(|items| items.remove(i))
                    .unwrap_or(Value::Null);
                scope["item"] = removed;
            }
            None => return render(&spec.not_found, &scope),
        }
    }
    if let Some(l) = &route.list {
        let wanted: BTreeMap<String, Value> = l
            .filter
            .iter()
            .map(|(k, v)| (k.clone(), template(v, &scope)))
            .collect();
        let items: Vec<Value> = collections
            .get(&l.collection)
            .map(|items| {
                items
                    .iter()
                    .filter(|i| wanted.iter().all(|(k, v)| i.get(k) == Some(v)))
                    .map(|i| project(i, &l.fields))
                    .collect()
            })
            .unwrap_or_default();
        scope["items"] = Value::Array(items);
    }
    render(&route.respond, &scope)
}

fn position(
    collections: &BTreeMap<String, Vec<Value>>,
    sel: &Select,
    scope: &Value,
) -> Option<usize> {
    let wanted: BTreeMap<&String, Value> = sel
        .filter
        .iter()
        .map(|(k, v)| (k, template(v, scope)))
        .collect();
    collections
        .get(&sel.collection)?
        .iter()
        .position(|i| wanted.iter().all(|(k, v)| i.get(k.as_str()) == Some(v)))
}

fn project(item: &Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return item.clone();
    }
    let m: Map<String, Value> = fields
        .iter()
        .filter_map(|f| item.get(f).map(|v| (f.clone(), v.clone())))
        .collect();
    Value::Object(m)
}

fn render(a: &Answer, scope: &Value) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match &a.body {
        Some(b) if status != StatusCode::NO_CONTENT => {
            (status, axum::Json(template(b, scope))).into_response()
        }
        _ => status.into_response(),
    };
    for (k, v) in &a.headers {
        let rendered = interpolate(v, scope);
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k.as_str()),
            HeaderValue::from_str(&rendered),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// `{name}` segments capture; other segments match exactly; a trailing '/' is ignored.
fn captures(pattern: &str, path: &str) -> Option<Map<String, Value>> {
    let pat: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if pat.len() != got.len() {
        return None;
    }
    let mut out = Map::new();
    for (p, g) in pat.iter().zip(&got) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !g.is_empty() => {
                out.insert(name.to_string(), Value::String(percent_decode(g)));
            }
            Some(_) => return None,
            None if p == g => {}
            None => return None,
        }
    }
    Some(out)
}

/// Renders a template value: strings with `{{...}}` are filled in from `scope`.
fn template(t: &Value, scope: &Value) -> Value {
    match t {
        Value::String(s) => {
            let trimmed = s.trim();
            if let Some(expr) = trimmed
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .filter(|e| !e.contains("{{"))
            {
                return lookup(expr.trim(), scope);
            }
            Value::String(interpolate(s, scope))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| template(x, scope)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), template(v, scope)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn interpolate(s: &str, scope: &Value) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match lookup(after[..end].trim(), scope) {
            Value::String(v) => out.push_str(&v),
            Value::Null => {}
            v => out.push_str(&v.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(expr: &str, scope: &Value) -> Value {
    match expr {
        "random" => return Value::String(uuid::Uuid::new_v4().simple().to_string()),
        "uuid" => return Value::String(uuid::Uuid::new_v4().to_string()),
        "now" => return Value::String(super::ts::seconds()),
        _ => {}
    }
    let mut v = scope;
    for part in expr.split('.') {
        v = match v {
            Value::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return Value::Null,
            },
            Value::Object(o) => match o.get(part) {
                Some(x) => x,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    v.clone()
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::raw;
    use super::super::{FaultRule, Sandbox, SandboxError, Scenario};
    use serde_json::{json, Value};

    /// A key vendor: an admin key may create keys; any live key authenticates; deleted keys
    /// get 401.
    const KEYS: &str = r#"
        [[scripted]]
        name = "keyvendor"
        auth = { header = "Authorization", prefix = "Bearer ", collection = "keys", field = "secret" }
        collections = { keys = [
            { id = "k-app", name = "app", secret = "app-secret-1", scopes = ["mail.send"] },
            { id = "k-admin", name = "admin", secret = "admin-secret-1", scopes = ["keys.manage"] },
        ] }

        [[scripted.routes]]
        method = "GET"
        path = "/whoami"
        respond = { status = 200, body = { id = "{{auth.id}}", scopes = "{{auth.scopes}}" } }

        [[scripted.routes]]
        method = "POST"
        path = "/keys"
        requires = { field = "scopes", value = "keys.manage" }
        create = { collection = "keys", limit = 3, item = { id = "k-{{random}}", name = "{{body.name}}", secret = "s-{{random}}", scopes = "{{body.scopes}}" } }
        respond = { status = 201, body = "{{item}}", headers = { location = "/keys/{{item.id}}" } }

        [[scripted.routes]]
        method = "GET"
        path = "/keys"
        list = { collection = "keys", fields = ["id", "name"] }
        respond = { status = 200, body = { result = "{{items}}" } }

        [[scripted.routes]]
        method = "DELETE"
        path = "/keys/{id}"
        requires = { field = "scopes", value = "keys.manage" }
        delete = { collection = "keys", where = { id = "{{path.id}}" } }
        respond = { status = 204 }

        [[scripted.routes]]
        method = "GET"
        path = "/health"
        auth = false
        respond = { status = 200, body = { ok = true, asked = "{{query.who}}" } }
    "#;

    async fn start() -> (Sandbox, String) {
        let sb = Sandbox::start(Scenario::from_toml(KEYS).unwrap())
            .await
            .unwrap();
        let url = sb.urls().scripted["keyvendor"].clone();
        (sb, url)
    }

    async fn call(
        method: reqwest::Method,
        url: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = raw().request(method, url);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn keys_are_created_listed_authenticate_and_die_when_deleted() {
        use reqwest::Method;
        let (sb, url) = start().await;
        let (s, me) = call(
            Method::GET,
            &format!("{url}/whoami"),
            Some("app-secret-1"),
            None,
        )
        .await;
        assert_eq!((s, me["id"].clone()), (200, json!("k-app")));
        let (s, _) = call(Method::GET, &format!("{url}/whoami"), Some("nope"), None).await;
        assert_eq!(s, 401);
        let (s, _) = call(Method::GET, &format!("{url}/whoami"), None, None).await;
        assert_eq!(s, 401);

        // The app key may not manage keys.
        let body = json!({"name": "app-2", "scopes": ["mail.send"]});
        let (s, e) = call(
            Method::POST,
            &format!("{url}/keys"),
            Some("app-secret-1"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s, e["errors"][0]["message"].clone()),
            (403, json!("access forbidden"))
        );

        let (s, created) = call(
            Method::POST,
            &format!("{url}/keys"),
            Some("admin-secret-1"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 201);
        assert_eq!(created["name"], "app-2");
        assert_eq!(created["scopes"], json!(["mail.send"]));
        let new_secret = created["secret"].as_str().unwrap().to_string();
        let new_id = created["id"].as_str().unwrap().to_string();
        assert!(
            new_secret.starts_with("s-") && new_secret.len() == 34,
            "{new_secret}"
        );
        let (_, me) = call(
            Method::GET,
            &format!("{url}/whoami"),
            Some(&new_secret),
            None,
        )
        .await;
        assert_eq!(me["id"], json!(new_id));

        // Lists never show the secrets.
        let (_, list) = call(
            Method::GET,
            &format!("{url}/keys"),
            Some("admin-secret-1"),
            None,
        )
        .await;
        assert_eq!(list["result"].as_array().unwrap().len(), 3);
        assert!(!list.to_string().contains("secret-1"));

        // The limit answers 403.
        let (s, _) = call(
            Method::POST,
            &format!("{url}/keys"),
            Some("admin-secret-1"),
            Some(body),
        )
        .await;
        assert_eq!(s, 403);

        let (s, _) = call(
            Method::DELETE,
            &format!("{url}/keys/k-app"),
            Some("admin-secret-1"),
            None,
        )
        .await;
        assert_eq!(s, 204);
        let (s, _) = call(
            Method::GET,
            &format!("{url}/whoami"),
            Some("app-secret-1"),
            None,
        )
        .await;
        assert_eq!(s, 401);
        let (s, e) = call(
            Method::DELETE,
            &format!("{url}/keys/k-app"),
            Some("admin-secret-1"),
            None,
        )
        .await;
        assert_eq!(
            (s, e["errors"][0]["message"].clone()),
            (404, json!("not found"))
        );

        let (s, h) = call(
            Method::GET,
            &format!("{url}/health?who=ops%20team"),
            None,
            None,
        )
        .await;
        assert_eq!((s, h), (200, json!({"ok": true, "asked": "ops team"})));
        let (s, _) = call(Method::GET, &format!("{url}/nowhere"), None, None).await;
        assert_eq!(s, 404);

        let st = sb.state();
        let ids: Vec<&str> = st["scripted"]["keyvendor"]["collections"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["k-admin", new_id.as_str()]);
        assert_eq!(st["scripted"]["keyvendor"]["url"], json!(url));
        assert!(sb
            .env()
            .contains(&("KEYVENDOR_API_URL".to_string(), url.clone())));
        assert_eq!(sb.count_requests("keyvendor", "DELETE", "/keys/k-app"), 2);
    }

    #[tokio::test]
    async fn faults_apply_to_scripted_vendors() {
        let mut scenario = Scenario::from_toml(KEYS).unwrap();
        scenario
            .faults
            .push(FaultRule::parse("keyvendor:GET:/health=503:once").unwrap());
        let sb = Sandbox::start(scenario).await.unwrap();
        let url = sb.urls().scripted["keyvendor"].clone();
        let (s, _) = call(reqwest::Method::GET, &format!("{url}/health"), None, None).await;
        assert_eq!(s, 503);
        let (s, _) = call(reqwest::Method::GET, &format!("{url}/health"), None, None).await;
        assert_eq!(s, 200);
    }

    #[tokio::test]
    async fn scenario_mistakes_are_refused_at_start() {
        let cases = [
            (
                "[[scripted]]\nname = \"heroku\"\n",
                "has the name of a built-in simulator",
            ),
            (
                "[[scripted]]\nname = \"v\"\n[[scripted.routes]]\nmethod = \"GET\"\npath = \"/x\"\nfind = { collection = \"nope\" }\n",
                "collection 'nope' is not declared",
            ),
            (
                "[[scripted]]\nname = \"v\"\nauth = { collection = \"keys\", field = \"k\" }\n",
                "auth uses collection 'keys'",
            ),
            ("faults = [\"nosuch=500\"]\n", "fault for unknown vendor 'nosuch'"),
        ];
        for (toml, expected) in cases {
            let scenario = Scenario::from_toml(toml).unwrap();
            match Sandbox::start(scenario).await {
                Err(SandboxError::Scenario { message }) => {
                    assert!(message.contains(expected), "{message}")
                }
                other => panic!("{toml}: {other:?}"),
            }
        }
    }
}
