//! Serving a scripted vendor: matching a request to a route, authenticating it, running the
//! route's action on the collections and rendering the answer.

use super::spec::{answer, Answer, Select};
use super::template::{interpolate, template};
use super::{ScriptedState, VendorState};
use crate::http::header;
use crate::shared::Shared;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

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
        let Some(vendor) = w
            .get_mut::<ScriptedState>()
            .and_then(|st| st.vendors.get_mut(s.index))
        else {
            return error_for_status(500);
        };
        let request = Incoming {
            method: &method,
            path: &path,
            query,
            body,
            auth_value: None,
        };
        serve(vendor, request, &headers)
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
    vendor: &mut VendorState,
    mut req: Incoming<'_>,
    headers: &axum::http::HeaderMap,
) -> Response {
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
    use crate::testkit::raw;
    use crate::{FaultRule, Sandbox, Scenario};
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
}
