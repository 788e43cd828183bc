//! Serving a scripted vendor: matching a request to a route, authenticating it, running the
//! route's action on the collections and rendering the answer.

use super::clock::{self, Millis};
use super::sigv4::percent_decode;
use super::spec::{answer, Answer, AuthScheme, AuthSpec, Later, RouteAuth};
use super::template::{interpolate, interpolate_xml, template};
use super::{settle, Collections, Pending, ScriptedState, Stored, VendorState};
use crate::http::{header, json_answer};
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
    if path.starts_with("/_sandbox/") {
        return s.shared.with_world(|w| match w.get_mut::<ScriptedState>() {
            Some(st) => control(st, &method, &path, &raw),
            None => error_for_status(500),
        });
    }
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
        let Some(st) = w.get_mut::<ScriptedState>() else {
            return error_for_status(500);
        };
        let now = st.now();
        let Some(vendor) = st.vendors.get_mut(s.index) else {
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
        serve(vendor, s.host.as_deref(), request, &headers, now)
    })
}

/// The sandbox's clock, on every scripted vendor's address (one clock for all of them):
/// `GET /_sandbox/clock` reads it, `POST /_sandbox/clock {"advance_ms": N}` moves it N
/// milliseconds forward; both answer `{"now": RFC 3339, "ahead_ms": how far it runs ahead
/// of the wall clock}`.
fn control(st: &mut ScriptedState, method: &str, path: &str, raw: &[u8]) -> Response {
    let refuse =
        |status: u16, why: &str| json_answer(status, json!({ "message": why.to_string() }));
    if path.trim_end_matches('/') != "/_sandbox/clock" {
        return refuse(
            404,
            "no such control route (a scripted vendor has /_sandbox/clock)",
        );
    }
    match method {
        "GET" => {}
        "POST" => {
            let ask: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
            let Some(ms) = ask["advance_ms"].as_u64() else {
                return refuse(
                    422,
                    "the body must be {\"advance_ms\": N}, N a whole number of milliseconds (the clock only moves forward)",
                );
            };
            st.ahead_ms += Millis::from(ms);
        }
        _ => return refuse(405, "GET or POST"),
    }
    json_answer(
        200,
        json!({ "now": clock::format(st.now()), "ahead_ms": st.ahead_ms as i64 }),
    )
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

/// The request's headers by lower-case name (repeated ones joined with ", "), but for those
/// in `withheld`, which carry a credential.
fn visible_headers(headers: &axum::http::HeaderMap, withheld: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        if withheld.iter().any(|w| w == name.as_str()) {
            continue;
        }
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        out.insert(name.as_str().to_string(), Value::String(values.join(", ")));
    }
    out
}

fn serve(
    vendor: &mut VendorState,
    host: Option<&str>,
    mut req: Incoming<'_>,
    headers: &axum::http::HeaderMap,
    now: Millis,
) -> Response {
    let spec = &vendor.spec;
    settle(&mut vendor.collections, &spec.expiry, now);
    for param in spec.withheld_query() {
        req.query.remove(&param);
    }
    let mut scope = json!({
        "body": req.body.take(),
        "query": Value::Object(std::mem::take(&mut req.query)),
        "headers": Value::Object(visible_headers(headers, &spec.withheld_headers())),
        "method": req.method,
        "path_text": req.path,
        "now": clock::format_seconds(now),
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
    let schemes = spec.schemes();
    if !schemes.is_empty() && route.auth != RouteAuth::Open {
        let verdicts: Vec<Verdict<'_>> = schemes
            .iter()
            .map(|a| check(a, &vendor.collections, &req, headers))
            .collect();
        let (item, auths) = match admit(schemes, &verdicts, &route.auth) {
            Ok(admitted) => admitted,
            Err(answer) => return render(answer, &scope),
        };
        scope["auth"] = item;
        scope["auths"] = Value::Object(auths);
        if let Some(req) = &route.requires {
            let checked = match &req.auth {
                Some(name) => &scope["auths"][name],
                None => &scope["auth"],
            };
            let ok = match &checked[&req.field] {
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
            .filter(|i| {
                counted
                    .iter()
                    .all(|(k, v)| i.value.get(k.as_str()) == Some(v))
            })
            .count();
        if c.limit.is_some_and(|l| held >= l) {
            return render(&c.over_limit, &scope);
        }
        let mut item = template(&c.item, &scope);
        if let (Some(ms), Some(field), Value::Object(fields)) =
            (c.expires_in_ms, spec.expiry.get(&c.collection), &mut item)
        {
            let at = clock::format(now + Millis::from(ms));
            fields.insert(field.clone(), Value::String(at));
        }
        let mut stored = Stored::new(item.clone());
        if let Some(l) = &c.later {
            stored.later.push(pending(l, &scope, now));
        }
        items.push(stored);
        scope["item"] = item;
    }
    if let Some(sel) = &route.find {
        match position(collections, &sel.collection, &sel.filter, &scope) {
            Some(i) => scope["item"] = collections[&sel.collection][i].value.clone(),
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
                let later = u.later.as_ref().map(|l| pending(l, &scope, now));
                if let Some(stored) = collections
                    .get_mut(&u.collection)
                    .and_then(|items| items.get_mut(i))
                {
                    if let Value::Object(item) = &mut stored.value {
                        item.extend(set);
                    }
                    stored.later.extend(later);
                }
                scope["item"] = collections[&u.collection][i].value.clone();
            }
            None => return render(&spec.not_found, &scope),
        }
    }
    if let Some(sel) = &route.delete {
        match position(collections, &sel.collection, &sel.filter, &scope) {
            Some(i) => {
                let removed = collections
                    .get_mut(&sel.collection)
                    .map(|items| items.remove(i).value)
                    .unwrap_or(Value::Null);
                scope["item"] = removed;
            }
            None => return render(&spec.not_found, &scope),
        }
    }
    if let Some(l) = &route.list {
        // A condition that renders empty (an optional query filter left out) is no condition.
        let wanted: BTreeMap<&String, Value> = l
            .filter
            .iter()
            .map(|(k, v)| (k, template(v, &scope)))
            .filter(|(_, v)| !matches!(v, Value::Null) && v.as_str() != Some(""))
            .collect();
        let selected: Vec<&Value> = collections
            .get(&l.collection)
            .map(|items| {
                items
                    .iter()
                    .map(|i| &i.value)
                    .filter(|i| {
                        wanted
                            .iter()
                            .all(|(k, v)| i.get(k.as_str()).is_some_and(|have| loosely(have, v)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let items: Vec<Value> = match &l.map {
            Some(map) => {
                let mut local = scope.clone();
                selected
                    .into_iter()
                    .map(|i| {
                        local["item"] = i.clone();
                        template(map, &local)
                    })
                    .collect()
            }
            None => selected
                .into_iter()
                .map(|i| project(i, &l.fields))
                .collect(),
        };
        scope["items"] = Value::Array(items);
    }
    render(&route.respond, &scope)
}

/// A `later` change scheduled at `now` from the request's `scope`.
fn pending(l: &Later, scope: &Value, now: Millis) -> Pending {
    Pending {
        due: now + Millis::from(l.after_ms),
        set: l.set.clone(),
        scope: scope.clone(),
    }
}

/// Whether an item's value `have` matches a list filter's `want`: equal, or `want` is text
/// that reads as `have` (a query parameter `2` or `true` for a number or a boolean).
fn loosely(have: &Value, want: &Value) -> bool {
    match (have, want) {
        _ if have == want => true,
        (Value::Number(_) | Value::Bool(_), Value::String(s)) => {
            serde_json::from_str::<Value>(s).is_ok_and(|v| v == *have)
        }
        _ => false,
    }
}

/// What one auth scheme makes of a request.
enum Verdict<'s> {
    /// The credential is an item's: that item.
    Accepted(Value),
    /// The request does not carry this scheme's credential at all.
    Absent,
    /// It carries one, and it is refused with this answer.
    Refused(&'s Answer),
}

/// Whether the request gets in on a route that needs `needs`, given each scheme's verdict:
/// the item that authenticates it (`auth`) and each named scheme's that accepted it
/// (`auths`), or the answer refusing it.
fn admit<'s>(
    schemes: &'s [AuthSpec],
    verdicts: &[Verdict<'s>],
    needs: &RouteAuth,
) -> Result<(Value, Map<String, Value>), &'s Answer> {
    let auths: Map<String, Value> = schemes
        .iter()
        .zip(verdicts)
        .filter_map(|(a, v)| match (&a.name, v) {
            (Some(n), Verdict::Accepted(item)) => Some((n.clone(), item.clone())),
            _ => None,
        })
        .collect();
    let refusal = |a: &'s AuthSpec, v: &Verdict<'s>| match v {
        Verdict::Refused(answer) => *answer,
        _ => &a.unauthorized,
    };
    match needs {
        RouteAuth::All(names) => {
            let mut first = None;
            for name in names {
                let Some((a, v)) = schemes
                    .iter()
                    .zip(verdicts)
                    .find(|(a, _)| a.name.as_deref() == Some(name.as_str()))
                else {
                    continue;
                };
                match v {
                    Verdict::Accepted(item) => {
                        first.get_or_insert_with(|| item.clone());
                    }
                    other => return Err(refusal(a, other)),
                }
            }
            Ok((first.unwrap_or(Value::Null), auths))
        }
        _ => {
            if let Some(item) = verdicts.iter().find_map(|v| match v {
                Verdict::Accepted(item) => Some(item.clone()),
                _ => None,
            }) {
                return Ok((item, auths));
            }
            // Refused by the scheme whose credential the request carried, else by the first.
            let carried = schemes
                .iter()
                .zip(verdicts)
                .find(|(_, v)| matches!(v, Verdict::Refused(_)));
            Err(match carried {
                Some((a, v)) => refusal(a, v),
                None => &schemes[0].unauthorized,
            })
        }
    }
}

/// What scheme `auth` makes of the request.
fn check<'s>(
    auth: &'s AuthSpec,
    collections: &Collections,
    req: &Incoming<'_>,
    headers: &axum::http::HeaderMap,
) -> Verdict<'s> {
    let items: Vec<&Value> = collections
        .get(&auth.collection)
        .map(|all| {
            all.iter()
                .map(|i| &i.value)
                .filter(|i| auth.only.iter().all(|(k, v)| i.get(k) == Some(v)))
                .collect()
        })
        .unwrap_or_default();
    let field = |i: &Value, f: &str| i.get(f).and_then(Value::as_str).map(str::to_string);
    let secret_of = |i: &Value| auth.secret_field.as_deref().and_then(|f| field(i, f));
    let with = |given: &str| {
        items
            .iter()
            .find(|i| field(i, &auth.field).as_deref() == Some(given))
            .map_or(Verdict::Refused(&auth.unauthorized), |i| {
                Verdict::Accepted((*i).clone())
            })
    };
    match auth.scheme {
        AuthScheme::Header => {
            let key = header(headers, &auth.header)
                .and_then(|v| v.strip_prefix(auth.prefix.as_str()))
                .map(str::trim);
            match key {
                Some(k) => with(k),
                None => Verdict::Absent,
            }
        }
        AuthScheme::Query => {
            let param = auth.param.as_deref().unwrap_or_default();
            let given = url_pairs(req.raw_query)
                .into_iter()
                .find(|(k, _)| k == param)
                .map(|(_, v)| v);
            match given {
                Some(k) => with(&k),
                None => Verdict::Absent,
            }
        }
        AuthScheme::Basic => {
            let Some(encoded) =
                header(headers, &auth.header).and_then(|v| v.strip_prefix("Basic "))
            else {
                return Verdict::Absent;
            };
            let decoded =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Verdict::Refused(&auth.unauthorized);
            };
            items
                .iter()
                .find(|i| {
                    field(i, &auth.field).as_deref() == Some(user)
                        && secret_of(i).as_deref() == Some(password)
                })
                .map_or(Verdict::Refused(&auth.unauthorized), |i| {
                    Verdict::Accepted((*i).clone())
                })
        }
        AuthScheme::Sigv4 => {
            let Some(parsed) = header(headers, &auth.header).and_then(super::sigv4::parse) else {
                return Verdict::Absent;
            };
            // More than 15 minutes off the clock: refused, as AWS does.
            if !super::sigv4::fresh(headers) {
                return Verdict::Refused(&auth.signature_mismatch);
            }
            let Some(item) = items
                .iter()
                .find(|i| field(i, &auth.field).as_deref() == Some(parsed.access_key.as_str()))
            else {
                return Verdict::Refused(&auth.unauthorized);
            };
            let Some(secret) = secret_of(item) else {
                return Verdict::Refused(&auth.unauthorized);
            };
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
                Verdict::Accepted((*item).clone())
            } else {
                Verdict::Refused(&auth.signature_mismatch)
            }
        }
    }
}

fn position(
    collections: &Collections,
    collection: &str,
    filter: &BTreeMap<String, Value>,
    scope: &Value,
) -> Option<usize> {
    let wanted: BTreeMap<&String, Value> = filter
        .iter()
        .map(|(k, v)| (k, template(v, scope)))
        .collect();
    collections.get(collection)?.iter().position(|i| {
        wanted
            .iter()
            .all(|(k, v)| i.value.get(k.as_str()) == Some(v))
    })
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
        let bearer = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        ask(base, method, path, &headers, body).await
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

    /// The ```toml example=NAME block of docs/authoring.md: the guide's examples are these
    /// tests' scenarios, so what the guide shows is what is tested.
    fn example(name: &str) -> String {
        const GUIDE: &str = include_str!("../../../../docs/authoring.md");
        let fence = format!("```toml example={name}\n");
        let start = GUIDE
            .find(&fence)
            .unwrap_or_else(|| panic!("docs/authoring.md has no {fence}"))
            + fence.len();
        let len = GUIDE[start..].find("```").expect("the block's end");
        GUIDE[start..start + len].to_string()
    }

    /// Sends `method` `path` with `headers` (and `body` as JSON): the status and JSON body
    /// (`null` when there is none).
    async fn ask(
        base: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = raw().request(method, format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = sent(req).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Routes by a header, renders headers into answers, and never a credential's header
    /// or query parameter.
    #[tokio::test]
    async fn headers_route_and_render_but_credentials_stay_out() {
        let (_sb, url) = serve(&example("headers"), "billing", &[]).await;
        let key = ("X-Api-Key", "billing-key-1");
        let got = ask(
            &url,
            Method::GET,
            "/v1/key",
            &[key, ("X-Api-Version", "2")],
            None,
        )
        .await;
        assert_eq!(got, (200, json!({"data": {"id": "k1"}})));
        let got = ask(
            &url,
            Method::GET,
            "/v1/key",
            &[key, ("X-Api-Version", "1")],
            None,
        )
        .await;
        assert_eq!(
            got,
            (400, json!({"error": "unsupported X-Api-Version '1'"}))
        );
        let got = ask(&url, Method::GET, "/v1/key", &[key], None).await;
        assert_eq!(got.1["error"], "unsupported X-Api-Version ''");
        let (s, _) = ask(
            &url,
            Method::GET,
            "/v1/key",
            &[("X-Api-Version", "2")],
            None,
        )
        .await;
        assert_eq!(s, 401);
        let idem = ("Idempotency-Key", "charge-7f3a");
        let got = ask(&url, Method::POST, "/v1/charges", &[key, idem], None).await;
        assert_eq!(got, (201, json!({"idempotency_key": "charge-7f3a"})));

        // A template that would echo a credential renders it empty.
        let echo = r#"
            [[scripted]]
            name = "echo"
            auth = [
                { header = "X-Api-Key", collection = "keys", field = "key" },
                { scheme = "query", param = "api_key", collection = "keys", field = "key" },
                { scheme = "basic", collection = "keys", field = "id", secret_field = "key" },
            ]
            collections = { keys = [{ id = "k1", key = "echo-secret-1" }] }

            [[scripted.routes]]
            method = "GET"
            path = "/echo"
            respond = { status = 200, body = { key = "{{headers.x-api-key}}", authorization = "{{headers.authorization}}", cookie = "{{headers.cookie}}", param = "{{query.api_key}}", page = "{{query.page}}", trace = "{{headers.x-trace}}", all = "{{headers}}" } }
        "#;
        let (_sb, url) = serve(echo, "echo", &[]).await;
        let by_header = [
            ("X-Api-Key", "echo-secret-1"),
            ("Cookie", "session=echo-secret-1"),
            ("X-Trace", "a"),
            ("X-Trace", "b"),
        ];
        let (s, body) = ask(&url, Method::GET, "/echo?page=2", &by_header, None).await;
        assert_eq!(s, 200);
        assert_eq!(
            (&body["key"], &body["cookie"], &body["page"], &body["trace"]),
            (&Value::Null, &Value::Null, &json!("2"), &json!("a, b"))
        );
        assert!(!body.to_string().contains("echo-secret-1"), "{body}");
        let (s, body) = ask(&url, Method::GET, "/echo?api_key=echo-secret-1", &[], None).await;
        assert_eq!((s, &body["param"]), (200, &Value::Null));
        assert!(!body.to_string().contains("echo-secret-1"), "{body}");
        let basic = raw()
            .get(format!("{url}/echo"))
            .basic_auth("k1", Some("echo-secret-1"));
        let body = expect(200, basic).await;
        assert_eq!(body["authorization"], Value::Null);
        assert!(!body.to_string().contains("Basic"), "{body}");
    }

    /// A request authenticates with the first scheme that accepts it; a route that names
    /// schemes needs all of them; `auths` and `requires` reach a named scheme's item.
    #[tokio::test]
    async fn several_auth_schemes_any_or_all_of_them() {
        let (sb, url) = serve(&example("auth"), "datadog", &[]).await;
        let api = ("DD-API-KEY", "dd-api-1");
        let forbidden = json!({"errors": ["Forbidden"]});
        // Any scheme: the header, or the query parameter.
        let valid = json!({"valid": true, "key": "a1"});
        let got = ask(&url, Method::GET, "/api/v1/validate", &[api], None).await;
        assert_eq!(got, (200, valid.clone()));
        let got = ask(
            &url,
            Method::GET,
            "/api/v1/validate?api_key=dd-api-1",
            &[],
            None,
        )
        .await;
        assert_eq!(got, (200, valid));
        // A wrong key, or none: 403 as Datadog answers.
        let wrong = ("DD-API-KEY", "dd-api-9");
        let got = ask(&url, Method::GET, "/api/v1/validate", &[wrong], None).await;
        assert_eq!(got, (403, forbidden.clone()));
        let got = ask(
            &url,
            Method::GET,
            "/api/v1/validate?api_key=nope",
            &[],
            None,
        )
        .await;
        assert_eq!(got.0, 401, "the query scheme's own unauthorized answer");
        let got = ask(&url, Method::GET, "/api/v1/validate", &[], None).await;
        assert_eq!(got, (403, forbidden.clone()));

        // Key management needs both keys, and the application key's scope.
        let create = |headers: Vec<(&'static str, &'static str)>| {
            let body = json!({"data": {"type": "api_keys", "attributes": {"name": "rotated"}}});
            let url = url.clone();
            async move { ask(&url, Method::POST, "/api/v2/api_keys", &headers, Some(body)).await }
        };
        let got = create(vec![api]).await;
        assert_eq!(got, (403, forbidden.clone()), "no application key");
        let got = create(vec![("DD-APPLICATION-KEY", "dd-app-1")]).await;
        assert_eq!(got, (403, forbidden), "no API key");
        let got = create(vec![api, ("DD-APPLICATION-KEY", "dd-app-2")]).await;
        assert_eq!(
            (got.0, &got.1["errors"][0]["message"]),
            (403, &json!("access forbidden")),
            "the auditor's application key may only read"
        );
        let (s, made) = create(vec![api, ("DD-APPLICATION-KEY", "dd-app-1")]).await;
        assert_eq!(s, 201);
        assert_eq!(made["data"]["attributes"]["name"], "rotated");
        assert_eq!(made["data"]["attributes"]["created_by"], "ops");
        let new_key = made["data"]["attributes"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        let got = ask(
            &url,
            Method::GET,
            &format!("/api/v1/validate?api_key={new_key}"),
            &[],
            None,
        )
        .await;
        assert_eq!(got.1["key"], made["data"]["id"]);
        let keys = &sb.state()["scripted"]["datadog"]["collections"]["api_keys"];
        assert_eq!(keys.as_array().map(Vec::len), Some(2));
    }

    /// `list` filters with `where` (an empty value is no filter; text matches a number)
    /// and shapes each item with `map`.
    #[tokio::test]
    async fn lists_filter_and_map_the_items_in_state() {
        let (_sb, url) = serve(&example("list"), "keystore", &[]).await;
        let ids = |body: &Value| -> Vec<String> {
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect()
        };
        let (s, all) = ask(&url, Method::GET, "/keys", &[], None).await;
        assert_eq!(s, 200);
        assert_eq!(ids(&all), ["k1", "k2", "k3"]);
        assert_eq!(
            all["data"][1],
            json!({"id": "k2", "type": "key", "attributes": {"name": "old-ci", "status": "revoked"}})
        );
        assert!(!all.to_string().contains("ks-secret"), "{all}");
        let (_, active) = ask(&url, Method::GET, "/keys?status=active", &[], None).await;
        assert_eq!(ids(&active), ["k1", "k3"]);
        let path = "/keys?status=active&owner=7";
        let (_, mine) = ask(&url, Method::GET, path, &[], None).await;
        assert_eq!(ids(&mine), ["k1"]);
        let (_, empty) = ask(&url, Method::GET, "/keys?status=&owner=8", &[], None).await;
        assert_eq!(ids(&empty), ["k3"], "an empty parameter filters nothing");
        let (_, none) = ask(&url, Method::GET, "/keys?status=deleted", &[], None).await;
        assert_eq!(none, json!({"data": []}));
    }

    /// Items expire and change later on sandbox time, which the test moves forward instead
    /// of waiting.
    #[tokio::test]
    async fn items_expire_and_change_later_on_sandbox_time() {
        use crate::control::{scripted_advance_clock, scripted_clock, ControlRequest};
        let (sb, url) = serve(&example("time"), "exporter", &[]).await;
        let control = |r: ControlRequest| async move {
            let req = match r.method {
                "GET" => raw().get(&r.url),
                _ => raw().post(&r.url).json(&r.body.unwrap_or_default()),
            };
            expect(200, req).await
        };
        let now = |clock: &Value| super::clock::parse(clock["now"].as_str().unwrap()).unwrap();
        let root = Some("root-token");
        let tokens = |sb: &Sandbox| -> Vec<String> {
            sb.state()["scripted"]["exporter"]["collections"]["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect()
        };

        // Expired before the sandbox started: refused, and gone from the state.
        let (s, _) = call(&url, Method::GET, "/tokens", Some("old-token"), None).await;
        assert_eq!(s, 401);
        assert_eq!(tokens(&sb), ["t-root"]);

        // A token for an hour of sandbox time.
        let before = now(&control(scripted_clock(&url)).await);
        let (s, made) = call(&url, Method::POST, "/tokens", root, None).await;
        assert_eq!(s, 201);
        let expires = super::clock::parse(made["expires_at"].as_str().unwrap()).unwrap();
        assert!(
            (3_600_000..3_660_000).contains(&(expires - before)),
            "{made}"
        );
        let token = made["token"].as_str().unwrap().to_string();
        let (s, list) = call(&url, Method::GET, "/tokens", Some(&token), None).await;
        assert_eq!(s, 200);
        assert_eq!(
            list["tokens"][1],
            json!({"id": made["id"], "expires_at": made["expires_at"]})
        );

        // An export is processing, then done 30 s later; a rerun processes again.
        let (s, export) = call(&url, Method::POST, "/exports", root, None).await;
        assert_eq!((s, &export["status"]), (202, &json!("processing")));
        let path = format!("/exports/{}", export["id"].as_str().unwrap());
        let status = |path: String| {
            let url = url.clone();
            async move {
                let (s, e) = call(&url, Method::GET, &path, root, None).await;
                assert_eq!(s, 200);
                e
            }
        };
        control(scripted_advance_clock(&url, 20_000)).await;
        assert_eq!(status(path.clone()).await["status"], "processing");
        let clock = control(scripted_advance_clock(&url, 10_000)).await;
        assert_eq!(clock["ahead_ms"], 30_000);
        let done = status(path.clone()).await;
        assert_eq!(done["status"], "done");
        let finished = super::clock::parse(done["finished_at"].as_str().unwrap()).unwrap();
        assert!(
            finished > before + 29_000 && finished <= now(&clock),
            "{done} {clock}"
        );
        let (s, again) = call(&url, Method::POST, &format!("{path}/rerun"), root, None).await;
        assert_eq!((s, &again["status"]), (202, &json!("processing")));
        control(scripted_advance_clock(&url, 30_000)).await;
        // The state is read as of now too, with no request in between.
        let exports = &sb.state()["scripted"]["exporter"]["collections"]["exports"];
        assert_eq!(exports[0]["status"], "done");

        // An hour later the new token is gone: refused, unlisted.
        control(scripted_advance_clock(&url, 3_600_000)).await;
        let (s, _) = call(&url, Method::GET, "/tokens", Some(&token), None).await;
        assert_eq!(s, 401);
        let (_, list) = call(&url, Method::GET, "/tokens", root, None).await;
        assert_eq!(list, json!({"tokens": [{"id": "t-root"}]}));
        assert_eq!(tokens(&sb), ["t-root"]);

        // The clock only moves forward.
        let back = raw()
            .post(format!("{url}/_sandbox/clock"))
            .json(&json!({"advance_ms": -1000}));
        assert!(expect(422, back).await["message"]
            .as_str()
            .unwrap()
            .contains("advance_ms"));
        assert_eq!(control(scripted_clock(&url)).await["ahead_ms"], 3_660_000);
        assert_eq!(sb.count_requests("exporter", "POST", "/_sandbox/clock"), 0);
    }
}
