//! `http::`: plain HTTP for vendors without a built-in module, so a new SOP needs no Rust.
//! Header values may be Secrets; JSON bodies may hold Secrets (sent, never shown).

use super::value::{self, throw};
use super::vendor_call::R;
use super::{Effect, Host, HostFn, ModuleBuilder};
use crate::secret::Secret;
use crate::vendors::{HeaderValueSource, Request};
use reqwest::Method;
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};
use std::rc::Rc;

/// A rhai value as the JSON a vendor receives: Secrets are sent as their value.
fn outgoing_json(v: &Dynamic, path: &str) -> R<serde_json::Value> {
    if let Some(s) = v.read_lock::<Secret>() {
        return Ok(s.expose().into());
    }
    if let Some(a) = v.read_lock::<Array>() {
        return a
            .iter()
            .map(|x| outgoing_json(x, path))
            .collect::<R<Vec<_>>>()
            .map(serde_json::Value::Array);
    }
    if let Some(m) = v.read_lock::<Map>() {
        let mut o = serde_json::Map::new();
        for (k, x) in m.iter() {
            o.insert(k.to_string(), outgoing_json(x, &format!("{path}.{k}"))?);
        }
        return Ok(serde_json::Value::Object(o));
    }
    if v.is_string() {
        return Ok(value::plain_string(&v.to_string(), path)?.into());
    }
    Ok(value::to_json(v))
}

fn build(method: Method, url: &str, opts: &Map, function: &str) -> R<Request> {
    value::check_keys(opts, &["headers", "json", "query"], function)?;
    let mut url = value::plain_string(url, "the URL")?;
    if let Some(q) = opts
        .get("query")
        .and_then(|q| q.read_lock::<Map>().map(|m| m.clone()))
    {
        let mut parsed = reqwest::Url::parse(&url)
            .map_err(|e| throw("usage", format!("{function}: bad URL '{url}': {e}"), None))?;
        for (k, v) in q.iter() {
            let v = value::plain_string(&v.to_string(), "a query value")?;
            parsed.query_pairs_mut().append_pair(k, &v);
        }
        url = parsed.to_string();
    }
    let mut req = Request::new("http", method, url);
    if let Some(h) = opts.get("headers") {
        let Some(headers) = h.read_lock::<Map>().map(|m| m.clone()) else {
            return Err(throw(
                "usage",
                format!("{function}: headers must be a map"),
                None,
            ));
        };
        for (k, v) in headers.iter() {
            let value = if let Some(s) = v.read_lock::<Secret>() {
                HeaderValueSource::Secret(s.clone())
            } else {
                HeaderValueSource::Plain(value::plain_string(
                    &v.to_string(),
                    &format!("header {k}"),
                )?)
            };
            req = req.header(k, value);
        }
    }
    if let Some(body) = opts.get("json") {
        req = req
            .header("Content-Type", "application/json")
            .json(outgoing_json(body, "the JSON body")?);
    }
    Ok(req)
}

fn call(h: &Host, method: Method, effect: Effect, url: &str, opts: Map) -> R<Dynamic> {
    let function = format!("http::{}", method.as_str().to_lowercase());
    let req = build(method.clone(), url, &opts, &function)?;
    let run = || -> R<Dynamic> {
        let v = h.vendors()?;
        let label = format!("{} {}", req.method, req.url);
        let resp = h.block(&label, async move { v.transport().send(req).await })?;
        let mut m = Map::new();
        m.insert("status".into(), (resp.status as i64).into());
        let headers: Map = resp
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().into(),
                    v.to_str().unwrap_or("").to_string().into(),
                )
            })
            .collect();
        m.insert("headers".into(), headers.into());
        let text = resp.text();
        let json = serde_json::from_str::<serde_json::Value>(&text)
            .map(|j| value::from_json(&j))
            .unwrap_or(Dynamic::UNIT);
        m.insert("body".into(), text.into());
        m.insert("json".into(), json);
        Ok(m.into())
    };
    if effect == Effect::Read {
        h.require_step(&function)?;
        return run();
    }
    let detail = serde_json::json!({"url": url});
    h.mutate(&function, effect, &format!("{method} {url}"), detail, run)
}

pub fn register(engine: &mut Engine, host: &Rc<Host>, registry: &mut Vec<HostFn>) {
    let mut m = ModuleBuilder::new("http", registry);
    let verbs = [
        ("get", Method::GET, Effect::Read),
        ("post", Method::POST, Effect::Write),
        ("put", Method::PUT, Effect::Write),
        ("patch", Method::PATCH, Effect::Write),
        ("delete", Method::DELETE, Effect::Destructive),
    ];
    for (name, method, effect) in verbs {
        let doc = format!(
            "{} a URL. Options: #{{headers (values may be Secrets), json (a body; may hold Secrets), query}}.\nReturns #{{status, headers, body, json}} for any status; retried on 429/5xx only when\nidempotent. Plain http:// is refused except to loopback.",
            method.as_str()
        );
        let h = host.clone();
        let (mt, ef) = (method.clone(), effect);
        m.add(
            name,
            effect,
            &["url: string", "options: Map"],
            "Map",
            &doc,
            move |c: NativeCallContext, u: &str, o: Map| {
                value::at(&c, call(&h, mt.clone(), ef, u, o))
            },
        );
        let h = host.clone();
        m.add(
            name,
            effect,
            &["url: string"],
            "Map",
            &format!("{} a URL without options.", method.as_str()),
            move |c: NativeCallContext, u: &str| {
                value::at(&c, call(&h, method.clone(), effect, u, Map::new()))
            },
        );
    }
    m.finish(engine);
}
