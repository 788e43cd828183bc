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
//! (captures), `query`, `headers` (lower-case names; never a credential's header, nor a
//! `query` scheme's parameter in `query`), `auth` (the item that authenticated the request),
//! `auths` (each named scheme's), `item` (the item the route created, found or deleted),
//! `items` (what `list` selected), or `random` (32 hex digits), `uuid`, `now`.
//!
//! `auth` is one scheme or a list (`header`, `query`, `basic`, `sigv4`): a route takes the
//! first that accepts a request, or needs every one it names. Time is sandbox time
//! (`clock`): the wall clock moved forward by `POST /_sandbox/clock`, on which items expire
//! (`expiry`) and `later` changes happen; both are applied when a request or the state
//! reads the collections, so nothing runs in the background.

mod clock;
mod serve;
mod sigv4;
mod spec;
mod template;

pub(crate) use serve::{error_for_status, router};
pub use spec::{
    Answer, Auth, AuthScheme, AuthSpec, Create, Later, List, Requirement, RouteAuth, RouteSpec,
    ScriptedVendor, Select, Update,
};

use clock::Millis;

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Interns a vendor name: the request log and the fault middleware name vendors with
/// `&'static str`, and scenario names are few and live for the process.
fn intern(name: &str) -> &'static str {
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

/// The live state of every scripted vendor, and their clock.
pub(crate) struct ScriptedState {
    vendors: Vec<VendorState>,
    /// How far sandbox time runs ahead of the wall clock (`POST /_sandbox/clock`).
    ahead_ms: Millis,
}

struct VendorState {
    spec: ScriptedVendor,
    collections: Collections,
}

type Collections = BTreeMap<String, Vec<Stored>>;

/// An item of a collection, with the changes it is to undergo on its own (`later`).
#[derive(Clone)]
struct Stored {
    value: Value,
    later: Vec<Pending>,
}

/// A `later` change, due at `due` (sandbox time).
#[derive(Clone)]
struct Pending {
    due: Millis,
    /// Field → template.
    set: BTreeMap<String, Value>,
    /// The scope of the request that scheduled it, for the templates.
    scope: Value,
}

impl Stored {
    fn new(value: Value) -> Self {
        Stored {
            value,
            later: Vec::new(),
        }
    }

    /// Applies the changes due by `now`, in the order they fall due.
    fn settle(&mut self, now: Millis) {
        if self.later.iter().all(|p| p.due > now) {
            return;
        }
        self.later.sort_by_key(|p| p.due);
        let due: Vec<Pending> = {
            let split = self.later.partition_point(|p| p.due <= now);
            self.later.drain(..split).collect()
        };
        for p in due {
            let mut scope = p.scope;
            scope["item"] = self.value.clone();
            scope["now"] = Value::String(clock::format_seconds(p.due));
            let set: Vec<(String, Value)> = p
                .set
                .iter()
                .map(|(k, v)| (k.clone(), template::template(v, &scope)))
                .collect();
            if let Value::Object(item) = &mut self.value {
                item.extend(set);
            }
        }
    }
}

/// Brings `collections` to `now`: due `later` changes applied, expired items gone.
fn settle(collections: &mut Collections, expiry: &BTreeMap<String, String>, now: Millis) {
    for (name, items) in collections.iter_mut() {
        items.iter_mut().for_each(|i| i.settle(now));
        if let Some(field) = expiry.get(name) {
            items.retain(|i| !expired(&i.value, field, now));
        }
    }
}

/// Whether `item`'s expiry `field` holds a time `now` has reached.
fn expired(item: &Value, field: &str, now: Millis) -> bool {
    item.get(field)
        .and_then(Value::as_str)
        .and_then(clock::parse)
        .is_some_and(|at| at <= now)
}

impl ScriptedState {
    pub(crate) fn from_scenario(specs: &[ScriptedVendor]) -> Result<Self, String> {
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
            let collections = spec
                .collections
                .iter()
                .map(|(k, items)| (k.clone(), items.iter().cloned().map(Stored::new).collect()))
                .collect();
            vendors.push(VendorState {
                spec: spec.clone(),
                collections,
            });
        }
        Ok(ScriptedState {
            vendors,
            ahead_ms: 0,
        })
    }

    /// Sandbox time: the wall clock plus how far the sandbox was moved forward.
    fn now(&self) -> Millis {
        clock::wall() + self.ahead_ms
    }

    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.vendors.iter().map(|v| intern(&v.spec.name)).collect()
    }

    /// The extra hosts of vendor `index`.
    pub(crate) fn hosts(&self, index: usize) -> Vec<String> {
        self.vendors
            .get(index)
            .map(|v| v.spec.hosts.clone())
            .unwrap_or_default()
    }

    /// `(ENV_VAR, url)` of every vendor and extra host, given their URLs by name (an extra
    /// host's as `NAME.HOST`).
    pub(crate) fn env(&self, urls: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for v in &self.vendors {
            out.push((v.spec.env_var(), url_of(urls, &v.spec.name)));
            for h in &v.spec.hosts {
                out.push((
                    v.spec.host_env_var(h),
                    url_of(urls, &format!("{}.{h}", v.spec.name)),
                ));
            }
        }
        out
    }

    pub(crate) fn to_json(&self, urls: &BTreeMap<String, String>) -> Value {
        let now = self.now();
        let m: Map<String, Value> = self
            .vendors
            .iter()
            .map(|v| {
                // As a request would find them now: a due change applied, an expired item gone.
                let mut settled = v.collections.clone();
                settle(&mut settled, &v.spec.expiry, now);
                let collections: Map<String, Value> = settled
                    .into_iter()
                    .map(|(k, items)| (k, items.into_iter().map(|i| i.value).collect()))
                    .collect();
                let url = url_of(urls, &v.spec.name);
                let hosts: Map<String, Value> = v
                    .spec
                    .hosts
                    .iter()
                    .map(|h| (h.clone(), url_of(urls, &format!("{}.{h}", v.spec.name)).into()))
                    .collect();
                (
                    v.spec.name.clone(),
                    json!({"url": url, "env": v.spec.env_var(), "hosts": hosts, "collections": collections}),
                )
            })
            .collect();
        Value::Object(m)
    }
}

fn url_of(urls: &BTreeMap<String, String>, name: &str) -> String {
    urls.get(name).cloned().unwrap_or_default()
}
