//! Serving a scripted vendor: matching a request to a route, authenticating it, running the
//! route's action on the collections and rendering the answer.

use super::sigv4::percent_decode;
use super::spec::{answer, Answer, AuthScheme, AuthSpec};
use super::template::{interpolate, interpolate_xml, template};
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
    /// The extra host this listener is; `None` for the vendor's main one.
    host: Option<String>,
}

/// The router of vendor `index` on its main host (`None`) or one of its extra `hosts`.
pub(crate) fn router(shared: Arc<Shared>, index: usize, host: Option<String>) -> Router {
    Router::new().fallback(handle).with_state(Served {
        shared,
        index,
        host,
    })
}

async fn handle(State(s): State<Served>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let query: Map<String, Value> = url_pairs(&raw_query)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let headers = req.headers().clone();
    let raw = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let form = header(&headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let body: Value = if raw.is_empty() {
        Value::Null
    } else if form {
        // A form body (AWS's query APIs, Twilio's): its fields, as `body.NAME`.
        Value::Object(
            url_pairs(&String::from_utf8_lossy(&raw))
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        match serde_json::from_slice(&raw) {
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
            raw_query: &raw_query,
            query,
            body,
            raw: &raw,
        };
        serve(vendor, s.host.as_deref(), request, &headers)
    })
}

struct Incoming<'a> {
    method: &'a str,
    path: &'a str,
    raw_query: &'a str,
    query: Map<String, Value>,
    body: Value,
    raw: &'a [u8],
}

/// Whether every `when` condition holds in the request's scope.
fn conditions_hold(when: &BTreeMap<String, Value>, scope: &Value) -> bool {
    when.iter().all(|(path, want)| {
        let got = path
            .split('.')
            .try_fold(scope, |v, part| v.get(part))
            .unwrap_or(&Value::Null);
        *got == template(want, scope)
    })
}

fn serve(
    vendor: &mut VendorState,
    host: Option<&str>,
    mut req: Incoming<'_>,
    headers: &axum::http::HeaderMap,
) -> Response {
    let spec = &vendor.spec;
    let mut scope = json!({
        "body": req.body.take(),
        "query": Value::Object(std::mem::take(&mut req.query)),
        "method": req.method,
        "path_text": req.path,
    });
    let matched = spec.routes.iter().find_map(|r| {
        if !r.method.eq_ignore_ascii_case(req.method) || r.host.as_deref() != host {
            return None;
        }
        let captured = captures(&r.path, req.path)?;
        scope["path"] = Value::Object(captured);
        conditions_hold(&r.when, &scope).then_some(r)
    });
    let Some(route) = matched else {
        return render(&spec.no_route, &scope);
    };
    if let (Some(auth), true) = (&spec.auth, route.auth) {
        let item = match authenticate(auth, &vendor.collections, &req, headers) {
            Ok(item) => item,
            Err(answer) => return render(answer, &scope),
        };
        scope["auth"] = item;
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
        let counted: BTreeMap<&String, Value> = c
            .limit_where
            .iter()
            .map(|(k, v)| (k, template(v, &scope)))
            .collect();
        let items = collections.entry(c.collection.clone()).or_default();
        let held = items
            .iter()
            .filter(|i| counted.iter().all(|(k, v)| i.get(k.as_str()) == Some(v)))
            .count();
        if c.limit.is_some_and(|l| held >= l) {
            return render(&c.over_limit, &scope);
        }
        let item = template(&c.item, &scope);
        items.push(item.clone());
        scope["item"] = item;
    }
    if let Some(sel) = &route.find {
        match position(collections, &sel.collection, &sel.filter, &scope) {
            Some(i) => scope["item"] = collections[&sel.collection][i].clone(),
            None => return render(&spec.not_found, &scope),
        }
    }
    if let Some(u) = &route.update {
        match position(collections, &u.collection, &u.filter, &scope) {
            Some(i) => {
                let set: Vec<(String, Value)> = u
                    .set
                    .iter()
                    .map(|(k, v)| (k.clone(), template(v, &scope)))
                    .collect();
                if let Some(Value::Object(item)) = collections
                    .get_mut(&u.collection)
                    .and_then(|items| items.get_mut(i))
                {
                    item.extend(set);
                }
                scope["item"] = collections[&u.collection][i].clone();
            }
            None => return render(&spec.not_found, &scope),
        }
    }
    if let Some(sel) = &route.delete {
        match position(collections, &sel.collection, &sel.filter, &scope) {
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

/// The item that authenticates the request, or the answer refusing it.
fn authenticate<'s>(
    auth: &'s AuthSpec,
    collections: &BTreeMap<String, Vec<Value>>,
    req: &Incoming<'_>,
    headers: &axum::http::HeaderMap,
) -> Result<Value, &'s Answer> {
    let items: Vec<&Value> = collections
        .get(&auth.collection)
        .map(|all| {
            all.iter()
                .filter(|i| auth.only.iter().all(|(k, v)| i.get(k) == Some(v)))
                .collect()
        })
        .unwrap_or_default();
    let field = |i: &Value, f: &str| i.get(f).and_then(Value::as_str).map(str::to_string);
    let secret_of = |i: &Value| auth.secret_field.as_deref().and_then(|f| field(i, f));
    let given = header(headers, &auth.header);
    match auth.scheme {
        AuthScheme::Header => {
            let key = given
                .and_then(|v| v.strip_prefix(auth.prefix.as_str()))
                .map(str::trim);
            key.and_then(|k| {
                items
                    .iter()
                    .find(|i| field(i, &auth.field).as_deref() == Some(k))
            })
            .map(|i| (*i).clone())
            .ok_or(&auth.unauthorized)
        }
        AuthScheme::Basic => {
            let decoded = given
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok());
            let (user, password) = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .ok_or(&auth.unauthorized)?;
            items
                .iter()
                .find(|i| {
                    field(i, &auth.field).as_deref() == Some(user)
                        && secret_of(i).as_deref() == Some(password)
                })
                .map(|i| (*i).clone())
                .ok_or(&auth.unauthorized)
        }
        AuthScheme::Sigv4 => {
            let parsed = given
                .and_then(super::sigv4::parse)
                .ok_or(&auth.unauthorized)?;
            // More than 15 minutes off the clock: refused, as AWS does.
            if !super::sigv4::fresh(headers) {
                return Err(&auth.signature_mismatch);
            }
            let item = items
                .iter()
                .find(|i| field(i, &auth.field).as_deref() == Some(parsed.access_key.as_str()))
                .ok_or(&auth.unauthorized)?;
            let item: &Value = item;
            let secret = secret_of(item).ok_or(&auth.unauthorized)?;
            let expected = super::sigv4::signature(
                &parsed,
                &secret,
                req.method,
                req.path,
                req.raw_query,
                headers,
                req.raw,
            );
            if expected.as_deref() == Some(parsed.signature.as_str()) {
                Ok(item.clone())
            } else {
                Err(&auth.signature_mismatch)
            }
        }
    }
}

fn position(
    collections: &BTreeMap<String, Vec<Value>>,
    collection: &str,
    filter: &BTreeMap<String, Value>,
    scope: &Value,
) -> Option<usize> {
    let wanted: BTreeMap<&String, Value> = filter
        .iter()
        .map(|(k, v)| (k, template(v, scope)))
        .collect();
    collections
        .get(collection)?
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
    let mut resp = match (&a.body, &a.xml) {
        _ if status == StatusCode::NO_CONTENT => status.into_response(),
        (Some(b), _) => (status, axum::Json(template(b, scope))).into_response(),
        (None, Some(x)) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            interpolate_xml(x, scope),
        )
            .into_response(),
        (None, None) => status.into_response(),
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

/// `{name}` captures a segment, or the part of one between fixed text (`{sid}.json`);
/// other segments match exactly; a trailing '/' is ignored.
fn captures(pattern: &str, path: &str) -> Option<Map<String, Value>> {
    let pat: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if pat.len() != got.len() {
        return None;
    }
    let mut out = Map::new();
    for (p, g) in pat.iter().zip(&got) {
        let Some((before, rest)) = p.split_once('{') else {
            if p == g {
                continue;
            }
            return None;
        };
        let (name, after) = rest.split_once('}')?;
        let inner = g.strip_prefix(before)?.strip_suffix(after)?;
        if inner.is_empty() {
            return None;
        }
        out.insert(name.to_string(), Value::String(percent_decode(inner)));
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

#[cfg(test)]
mod tests {
    use crate::testkit::{expect, raw, sent};
    use crate::{FaultRule, Sandbox, Scenario};
    use reqwest::Method;
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

    /// A sandbox of the scripted vendors in `toml`, with `faults`: it and the base URL of
    /// `vendor`.
    async fn serve(toml: &str, vendor: &str, faults: &[&str]) -> (Sandbox, String) {
        let mut scenario = Scenario::from_toml(toml).unwrap();
        for rule in faults {
            scenario.faults.push(FaultRule::parse(rule).unwrap());
        }
        let sb = Sandbox::start(scenario).await.unwrap();
        let url = sb.urls().scripted[vendor].clone();
        (sb, url)
    }

    /// Sends `method` `path` to the vendor at `base`, with `key` as a Bearer token and
    /// `body` as JSON when given: the status and the JSON body (`null` when there is none).
    async fn call(
        base: &str,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = raw().request(method, format!("{base}{path}"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = sent(req).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn keys_are_created_listed_authenticate_and_die_when_deleted() {
        let (sb, url) = serve(KEYS, "keyvendor", &[]).await;
        let admin = |method: Method, path: &'static str, body: Option<Value>| {
            call(&url, method, path, Some("admin-secret-1"), body)
        };
        let (s, me) = call(&url, Method::GET, "/whoami", Some("app-secret-1"), None).await;
        assert_eq!((s, me["id"].clone()), (200, json!("k-app")));
        let (s, _) = call(&url, Method::GET, "/whoami", Some("nope"), None).await;
        assert_eq!(s, 401);
        let (s, _) = call(&url, Method::GET, "/whoami", None, None).await;
        assert_eq!(s, 401);

        // The app key may not manage keys.
        let body = json!({"name": "app-2", "scopes": ["mail.send"]});
        let (s, e) = call(
            &url,
            Method::POST,
            "/keys",
            Some("app-secret-1"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s, e["errors"][0]["message"].clone()),
            (403, json!("access forbidden"))
        );

        let (s, created) = admin(Method::POST, "/keys", Some(body.clone())).await;
        assert_eq!(s, 201);
        assert_eq!(created["name"], "app-2");
        assert_eq!(created["scopes"], json!(["mail.send"]));
        let new_secret = created["secret"].as_str().unwrap().to_string();
        let new_id = created["id"].as_str().unwrap().to_string();
        assert!(
            new_secret.starts_with("s-") && new_secret.len() == 34,
            "{new_secret}"
        );
        let (_, me) = call(&url, Method::GET, "/whoami", Some(&new_secret), None).await;
        assert_eq!(me["id"], json!(new_id));

        // Lists never show the secrets.
        let (_, list) = admin(Method::GET, "/keys", None).await;
        assert_eq!(list["result"].as_array().unwrap().len(), 3);
        assert!(!list.to_string().contains("secret-1"));

        // The limit answers 403.
        let (s, _) = admin(Method::POST, "/keys", Some(body)).await;
        assert_eq!(s, 403);

        let (s, _) = admin(Method::DELETE, "/keys/k-app", None).await;
        assert_eq!(s, 204);
        let (s, _) = call(&url, Method::GET, "/whoami", Some("app-secret-1"), None).await;
        assert_eq!(s, 401);
        let (s, e) = admin(Method::DELETE, "/keys/k-app", None).await;
        assert_eq!(
            (s, e["errors"][0]["message"].clone()),
            (404, json!("not found"))
        );

        let (s, h) = call(&url, Method::GET, "/health?who=ops%20team", None, None).await;
        assert_eq!((s, h), (200, json!({"ok": true, "asked": "ops team"})));
        let (s, _) = call(&url, Method::GET, "/nowhere", None, None).await;
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
        let (_sb, url) = serve(KEYS, "keyvendor", &["keyvendor:GET:/health=503:once"]).await;
        let (s, _) = call(&url, Method::GET, "/health", None, None).await;
        assert_eq!(s, 503);
        let (s, _) = call(&url, Method::GET, "/health", None, None).await;
        assert_eq!(s, 200);
    }

    /// A url-encoded form body (reqwest's own `form` is a feature this crate does not use).
    trait WithForm {
        fn with_form(self, fields: &[(&str, &str)]) -> Self;
    }

    impl WithForm for reqwest::RequestBuilder {
        fn with_form(self, fields: &[(&str, &str)]) -> Self {
            let mut u = reqwest::Url::parse("http://form.invalid/").unwrap();
            u.query_pairs_mut().extend_pairs(fields);
            self.header("Content-Type", "application/x-www-form-urlencoded")
                .body(u.query().unwrap_or_default().to_string())
        }
    }

    /// A Twilio-like vendor: HTTP Basic auth with the account SID and a secret, a capture
    /// inside a segment (`{sid}.json`), a form body, a key rolled in place many times, and
    /// an unknown route answered differently from a missing item.
    const ROLLER: &str = r#"
        [[scripted]]
        name = "roller"
        auth = { scheme = "basic", collection = "keys", field = "sid", secret_field = "secret" }
        collections = { keys = [{ sid = "SK1", secret = "first-secret", account = "AC1" }] }

        [[scripted.routes]]
        method = "POST"
        path = "/Accounts/{account}/Keys/{sid}.json"
        update = { collection = "keys", where = { sid = "{{path.sid}}" }, set = { secret = "@random:32", name = "{{body.FriendlyName}}" } }
        respond = { status = 200, body = { sid = "{{item.sid}}", secret = "{{item.secret}}", friendly_name = "{{item.name}}" } }

        [[scripted.routes]]
        method = "POST"
        path = "/"
        when = { "body.Action" = "GetUser" }
        respond = { status = 200, xml = "<GetUserResponse><User>{{auth.sid}}</User><Asked>{{body.UserName}}</Asked></GetUserResponse>" }
    "#;

    #[tokio::test]
    async fn basic_auth_segment_captures_form_bodies_updates_and_xml() {
        let (_sb, url) = serve(ROLLER, "roller", &[]).await;
        let c = raw();
        let roll = |secret: &str| {
            sent(
                c.post(format!("{url}/Accounts/AC1/Keys/SK1.json"))
                    .basic_auth("SK1", Some(secret))
                    .with_form(&[("FriendlyName", "rolled & kept")]),
            )
        };
        // Rolled twice: each answer holds a fresh secret, and only the newest authenticates.
        let first: Value = roll("first-secret").await.json().await.unwrap();
        let second_secret = first["secret"].as_str().unwrap().to_string();
        assert_eq!(second_secret.len(), 32);
        assert_eq!(first["friendly_name"], "rolled & kept");
        assert_eq!(roll("first-secret").await.status(), 401);
        let second: Value = roll(&second_secret).await.json().await.unwrap();
        assert_ne!(second["secret"], first["secret"]);
        assert_eq!(roll("SK1").await.status(), 401);

        // A query API: one path, the operation in a form field; an XML answer, escaped.
        let third = second["secret"].as_str().unwrap().to_string();
        let resp = sent(
            c.post(format!("{url}/"))
                .basic_auth("SK1", Some(&third))
                .with_form(&[("Action", "GetUser"), ("UserName", "ci<bot>")]),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/xml");
        assert_eq!(
            resp.text().await.unwrap(),
            "<GetUserResponse><User>SK1</User><Asked>ci&lt;bot&gt;</Asked></GetUserResponse>"
        );
        // An operation no route takes, and a path no route has: "no route matches".
        for (method, path, form) in [
            ("POST", "/", Some(("Action", "DeleteUser"))),
            ("GET", "/Accounts/AC1/Keys/SK1", None),
        ] {
            let mut req = c.request(method.parse().unwrap(), format!("{url}{path}"));
            if let Some(f) = form {
                req = req.with_form(&[f]);
            }
            let body = expect(404, req).await;
            assert_eq!(
                body["errors"][0]["message"],
                json!(format!("no route matches {method} {path}"))
            );
        }
        // An update whose item is missing is a lookup miss, not a routing one.
        let missing = c
            .post(format!("{url}/Accounts/AC1/Keys/SK9.json"))
            .basic_auth("SK1", Some(&third));
        assert_eq!(
            expect(404, missing).await["errors"][0]["message"],
            "not found"
        );
    }

    /// The "applied, answer lost" fault on a scripted vendor: the update happens, the
    /// client gets no answer.
    #[tokio::test]
    async fn a_lost_answer_still_applies_the_scripted_change() {
        let lost = "roller:POST:/Accounts/AC1/Keys/SK1.json=lost:once";
        let (sb, url) = serve(ROLLER, "roller", &[lost]).await;
        let roll = raw()
            .post(format!("{url}/Accounts/AC1/Keys/SK1.json"))
            .basic_auth("SK1", Some("first-secret"))
            .send()
            .await;
        assert!(roll.is_err() || roll.unwrap().status().as_u16() >= 500);
        let secret = sb.state()["scripted"]["roller"]["collections"]["keys"][0]["secret"].clone();
        assert_ne!(secret, json!("first-secret"), "the roll was applied");
    }

    /// A route that combines actions: a promotion finds the secondary token, copies it into
    /// the primary and deletes the secondary; the old primary is refused at once. Without a
    /// secondary, the find answers not_found and nothing changes.
    #[tokio::test]
    async fn a_route_combines_find_update_and_delete_into_a_promotion() {
        let toml = r#"
            [[scripted]]
            name = "promo"
            auth = { collection = "tokens", field = "token", prefix = "Bearer " }
            collections = { tokens = [
                { slot = "primary", token = "first" },
                { slot = "secondary", token = "second" },
            ] }

            [[scripted.routes]]
            method = "POST"
            path = "/promote"
            find = { collection = "tokens", where = { slot = "secondary" } }
            update = { collection = "tokens", where = { slot = "primary" }, set = { token = "{{item.token}}" } }
            delete = { collection = "tokens", where = { slot = "secondary" } }
            respond = { status = 200, body = { token = "{{item.token}}" } }
        "#;
        let (sb, url) = serve(toml, "promo", &[]).await;
        let (s, promoted) = call(&url, Method::POST, "/promote", Some("first"), None).await;
        assert_eq!((s, promoted), (200, json!({"token": "second"})));
        let tokens =
            |sb: &Sandbox| sb.state()["scripted"]["promo"]["collections"]["tokens"].clone();
        assert_eq!(tokens(&sb), json!([{"slot": "primary", "token": "second"}]));
        let (s, _) = call(&url, Method::POST, "/promote", Some("first"), None).await;
        assert_eq!(s, 401, "the old primary is dead");
        let (s, _) = call(&url, Method::POST, "/promote", Some("second"), None).await;
        assert_eq!(s, 404, "no secondary to promote");
        assert_eq!(tokens(&sb), json!([{"slot": "primary", "token": "second"}]));
    }

    /// One vendor on two hosts: the key rolled on the accounts host is the one the API host
    /// accepts next; each host serves only its own routes.
    #[tokio::test]
    async fn one_vendor_on_two_hosts_shares_its_state() {
        let toml = r#"
            [[scripted]]
            name = "acme"
            hosts = ["accounts"]
            auth = { collection = "keys", field = "key", prefix = "Bearer " }
            collections = { keys = [{ id = "k1", key = "first" }] }

            [[scripted.routes]]
            method = "GET"
            path = "/me"
            respond = { status = 200, body = { id = "{{auth.id}}" } }

            [[scripted.routes]]
            method = "POST"
            path = "/keys/{id}/roll"
            host = "accounts"
            update = { collection = "keys", where = { id = "{{path.id}}" }, set = { key = "@random:24" } }
            respond = { status = 200, body = { key = "{{item.key}}" } }
        "#;
        let (sb, api) = serve(toml, "acme", &[]).await;
        let accounts = sb.urls().scripted["acme.accounts"].clone();
        assert_ne!(api, accounts);
        assert!(sb
            .env()
            .contains(&("ACME_ACCOUNTS_URL".to_string(), accounts.clone())));
        let (_, rolled) = call(
            &accounts,
            Method::POST,
            "/keys/k1/roll",
            Some("first"),
            None,
        )
        .await;
        let new_key = rolled["key"].as_str().unwrap().to_string();
        let me = call(&api, Method::GET, "/me", Some(&new_key), None).await;
        assert_eq!(me.0, 200);
        let old = call(&api, Method::GET, "/me", Some("first"), None).await;
        assert_eq!(old.0, 401);
        // Each host its own routes.
        let wrong = call(&accounts, Method::GET, "/me", Some(&new_key), None).await;
        assert_eq!(wrong.0, 404);
        let wrong = call(&api, Method::POST, "/keys/k1/roll", Some(&new_key), None).await;
        assert_eq!(wrong.0, 404);
        let st = sb.state();
        assert_eq!(st["scripted"]["acme"]["hosts"]["accounts"], json!(accounts));
    }
}
