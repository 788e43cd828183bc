//! The scripted vendors' scenario format: vendors, auth, routes, actions and answers, and
//! the checks a scenario must pass before the sandbox starts.

use crate::simulator;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One scripted vendor, as the scenario declares it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptedVendor {
    /// Lower-case name: faults, the request log and the state use it.
    pub name: String,
    /// The environment variable that carries the simulator's base URL.
    #[serde(default)]
    pub env: Option<String>,
    /// More hosts of the same vendor, sharing its collections (an API host and an accounts
    /// host): each listens on its own port, its URL exported as `NAME_HOST_URL`, and serves
    /// the routes that name it with `host`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// How requests authenticate: one scheme (a table), or a list of them (each with a
    /// `name`), tried in order: the first that accepts a request authenticates it. Absent,
    /// every route is open.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Named lists of items: the simulator's state.
    #[serde(default)]
    pub collections: BTreeMap<String, Vec<Value>>,
    /// Collection → the item field that holds the item's expiry, an RFC 3339 time
    /// (`{ keys = "expires_at" }`). Once the sandbox clock passes it the item is gone: it no
    /// longer authenticates, no route finds, lists, updates or deletes it, and the state
    /// leaves it out. An item without the field never expires.
    #[serde(default)]
    pub expiry: BTreeMap<String, String>,
    /// The API, route by route (first match wins).
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Answer when a route's lookup (`find`, `update`, `delete`) finds no item.
    #[serde(default = "default_not_found")]
    pub not_found: Answer,
    /// Answer when no route matches the request (distinct from `not_found`, so a rehearsal
    /// tells a wrong path from a missing item).
    #[serde(default = "default_no_route")]
    pub no_route: Answer,
}

/// A vendor's auth: one scheme, or several tried in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// `auth = { ... }`: one scheme.
    One(Box<AuthSpec>),
    /// `auth = [{ name = "api_key", ... }, { name = "app_key", ... }]`: several.
    Many(Vec<AuthSpec>),
}

impl Auth {
    /// The schemes, in the order they are tried.
    pub fn schemes(&self) -> &[AuthSpec] {
        match self {
            Auth::One(a) => std::slice::from_ref(&**a),
            Auth::Many(all) => all,
        }
    }
}

impl Serialize for Auth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Auth::One(a) => a.serialize(s),
            Auth::Many(all) => all.serialize(s),
        }
    }
}

/// A table is one scheme, a list several: each keeps its own error messages (an unknown
/// key is named), which an untagged enum would lose.
impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Auth;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an auth scheme (a table) or a list of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Auth, A::Error> {
                AuthSpec::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(|a| Auth::One(Box::new(a)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Auth, A::Error> {
                Vec::<AuthSpec>::deserialize(de::value::SeqAccessDeserializer::new(s))
                    .map(Auth::Many)
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

impl JsonSchema for Auth {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Auth".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let one = g.subschema_for::<AuthSpec>();
        json_schema!({ "anyOf": [one, { "type": "array", "items": one }] })
    }
}

/// One way requests authenticate: they carry (in a header after `prefix`, in HTTP Basic
/// auth, an AWS signature or a query parameter) the `field` of an item of `collection`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The scheme's name (letters, digits, `_`, `-`): a route's `auth = ["api_key",
    /// "app_key"]`, `requires.auth` and `{{auths.NAME.field}}` in templates use it.
    #[serde(default)]
    pub name: Option<String>,
    /// `header` (the credential in `header` after `prefix`), `query` (the credential in
    /// query parameter `param`), `basic` (HTTP Basic: the user name is `field` of an item,
    /// the password its `secret_field`) or `sigv4` (AWS Signature Version 4: the access key
    /// id is `field`, the secret key `secret_field`, and the signature is checked; a wrong
    /// one answers `signature_mismatch`).
    #[serde(default)]
    pub scheme: AuthScheme,
    /// The request header that carries the credential (`header` scheme).
    #[serde(default = "default_auth_header")]
    pub header: String,
    /// What precedes the credential in the header (`Bearer `).
    #[serde(default)]
    pub prefix: String,
    /// The query parameter that carries the credential (`query` scheme: `api_key` for
    /// `?api_key=...`). It is left out of `query` in templates and conditions.
    #[serde(default)]
    pub param: Option<String>,
    /// The collection whose items are the valid credentials.
    pub collection: String,
    /// The item field that holds the credential (the user name, the access key id).
    pub field: String,
    /// The item field that holds the password (basic) or secret key (sigv4).
    #[serde(default)]
    pub secret_field: Option<String>,
    /// Field → value an item must have to authenticate (`{ Status = "Active" }`: a
    /// deactivated key is refused as an unknown one is).
    #[serde(default)]
    pub only: BTreeMap<String, Value>,
    /// The answer without a valid credential.
    #[serde(default = "default_unauthorized")]
    pub unauthorized: Answer,
    /// The answer to a sigv4 request whose signature does not match (AWS: 403
    /// SignatureDoesNotMatch).
    #[serde(default = "default_signature_mismatch")]
    pub signature_mismatch: Answer,
}

/// How a scripted vendor's requests carry their credential.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    #[default]
    Header,
    Query,
    Basic,
    Sigv4,
}

/// One route: a method and a path pattern (`/v3/api_keys/{id}`), its actions, and the
/// answer. Actions run in the order create, find, update, delete, list, each on what the
/// one before left; `item` is the last one's. A lookup that finds nothing answers
/// `not_found` at once, and what the actions before it changed stays: a `find` first checks
/// what the others need (a promotion is a find, an update and a delete).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// The path; `{name}` captures a segment or part of one (`/Accounts/{sid}.json`),
    /// `path.name` in templates.
    pub path: String,
    /// Which of the vendor's `hosts` serves this route; absent, the main one.
    #[serde(default)]
    pub host: Option<String>,
    /// Conditions on the request: dotted paths (`body.Action`, `query.page`,
    /// `headers.x-api-version`, a header by its lower-case name) and the values they must
    /// equal; a query API (one path, the operation in a form field) routes by it.
    #[serde(default)]
    pub when: BTreeMap<String, Value>,
    /// `true`: any of the vendor's auth schemes authenticates the request (the first that
    /// accepts it); `false`: no authentication on this route even when the vendor has
    /// `auth`; a list of scheme names (`["api_key", "app_key"]`): every one of them must
    /// accept the request.
    #[serde(default)]
    pub auth: RouteAuth,
    /// The authenticated item must have `field` containing (or equal to) `value`.
    #[serde(default)]
    pub requires: Option<Requirement>,
    /// Adds an item to a collection.
    #[serde(default)]
    pub create: Option<Create>,
    /// Looks an item up (404 `not_found` when none matches).
    #[serde(default)]
    pub find: Option<Select>,
    /// Removes an item (404 `not_found` when none matches).
    #[serde(default)]
    pub delete: Option<Select>,
    /// Changes fields of an item (404 `not_found` when none matches): rolling or promoting
    /// a credential in place, as many times as a sandbox needs.
    #[serde(default)]
    pub update: Option<Update>,
    /// Selects items.
    #[serde(default)]
    pub list: Option<List>,
    /// The answer when the action succeeded.
    #[serde(default = "default_ok")]
    pub respond: Answer,
}

/// Which of the vendor's auth schemes a route needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RouteAuth {
    /// `true`: any scheme (the first that accepts the request).
    #[default]
    Any,
    /// `false`: none; the route is open.
    Open,
    /// `["api_key", "app_key"]`: every scheme named.
    All(Vec<String>),
}

impl Serialize for RouteAuth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RouteAuth::Any => s.serialize_bool(true),
            RouteAuth::Open => s.serialize_bool(false),
            RouteAuth::All(names) => names.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RouteAuth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FlagOrNames;
        impl<'de> Visitor<'de> for FlagOrNames {
            type Value = RouteAuth;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a list of auth scheme names")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RouteAuth, E> {
                Ok(if b { RouteAuth::Any } else { RouteAuth::Open })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<RouteAuth, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(s))
                    .map(RouteAuth::All)
            }
        }
        d.deserialize_any(FlagOrNames)
    }
}

impl JsonSchema for RouteAuth {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "RouteAuth".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [{ "type": "boolean" }, { "type": "array", "items": { "type": "string" } }],
            "default": true,
        })
    }
}

/// What the item that authenticated a request must hold for the route to serve it (a
/// scope, an admin flag); otherwise the answer is `forbidden`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The auth scheme (by `name`) whose item is checked; absent, the item that
    /// authenticated the request. A scheme that did not accept the request has no item, so
    /// the answer is `forbidden`.
    #[serde(default)]
    pub auth: Option<String>,
    /// A field of the authenticated item.
    pub field: String,
    /// The value it must equal (or, for a list, contain).
    pub value: Value,
    /// The answer otherwise.
    #[serde(default = "default_forbidden")]
    pub forbidden: Answer,
}

/// Adds the rendered `item` to `collection`; over `limit` items answers `over_limit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// The collection (a key of the vendor's `collections`).
    pub collection: String,
    /// The new item, a template (`{{body.name}}`, `{{uuid}}`, `{{random}}`).
    pub item: Value,
    /// The most items the collection may hold (counting those matching `limit_where`).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Field → value (a template) of the items `limit` counts: "at most two keys per user".
    #[serde(default)]
    pub limit_where: BTreeMap<String, Value>,
    /// The answer when it is full.
    #[serde(default = "default_forbidden")]
    pub over_limit: Answer,
    /// Sets the collection's `expiry` field of the new item to this many milliseconds of
    /// sandbox time from now (the collection must declare one).
    #[serde(default)]
    pub expires_in_ms: Option<u64>,
    /// A change the item undergoes later on its own (an export that finishes, a key that
    /// becomes active).
    #[serde(default)]
    pub later: Option<Later>,
}

/// `after_ms` of sandbox time after the action, the item gets the rendered `set` fields: an
/// item created `processing` reads `done` later, as a vendor's asynchronous job does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Later {
    /// How long after the action, in milliseconds of sandbox time.
    pub after_ms: u64,
    /// Field → new value, a template rendered when the change happens: `{{item}}` is the
    /// item then, `{{now}}` that time, `body`, `path`, `query` and `headers` the request's.
    pub set: BTreeMap<String, Value>,
}

/// The first item of `collection` whose fields equal every rendered `where` value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// The collection (a key of the vendor's `collections`).
    pub collection: String,
    /// Field → value (a template) the item must have.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
}

/// The first item of `collection` matching `where` gets the rendered `set` fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// The collection (a key of the vendor's `collections`).
    pub collection: String,
    /// Field → value (a template) the item must have.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
    /// Field → new value (a template; `@uuid`, `@random:40` generate one).
    pub set: BTreeMap<String, Value>,
    /// A further change the item undergoes later on its own.
    #[serde(default)]
    pub later: Option<Later>,
}

/// Every item of `collection` (matching `where`), keeping only `fields`, or each made into
/// `map`, when given: a list route must not echo the credentials it stores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct List {
    /// The collection (a key of the vendor's `collections`).
    pub collection: String,
    /// Field → value (a template, `{{query.status}}`) the items must have. A condition
    /// whose value renders empty (a query parameter the request left out) is skipped, so an
    /// optional filter works; a text value also matches a number or boolean that reads the
    /// same (`"2"` matches `2`), as query parameters are text.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
    /// The fields to keep; empty, all.
    #[serde(default)]
    pub fields: Vec<String>,
    /// A template each item is made into, the item being `item`
    /// (`{ id = "{{item.key_id}}", attributes = { name = "{{item.name}}" } }`): the vendor's
    /// list-entry shape. Not with `fields`.
    #[serde(default)]
    pub map: Option<Value>,
}

/// A status, a JSON body template and extra headers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body, a template (`"{{item}}"` is the whole item).
    #[serde(default)]
    pub body: Option<Value>,
    /// An XML body instead, a text template (`<Id>{{item.id}}</Id>`; values are escaped),
    /// sent as `text/xml`.
    #[serde(default)]
    pub xml: Option<String>,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_auth_header() -> String {
    "Authorization".into()
}

pub(super) fn answer(status: u16, message: &str) -> Answer {
    Answer {
        status,
        body: Some(json!({"errors": [{"message": message}]})),
        xml: None,
        headers: BTreeMap::new(),
    }
}

fn default_no_route() -> Answer {
    answer(404, "no route matches {{method}} {{path_text}}")
}

fn default_signature_mismatch() -> Answer {
    answer(
        403,
        "The request signature we calculated does not match the signature you provided.",
    )
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
        xml: None,
        headers: BTreeMap::new(),
    }
}

/// `s` as a word of an environment variable's name: upper case, `_` for anything but an
/// ASCII letter or digit.
fn env_word(s: &str) -> String {
    s.to_ascii_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

impl ScriptedVendor {
    /// The environment variable for the base URL: `env`, else `NAME_API_URL`.
    pub(crate) fn env_var(&self) -> String {
        self.env
            .clone()
            .unwrap_or_else(|| format!("{}_API_URL", env_word(&self.name)))
    }

    /// The environment variable for extra host `host`'s base URL: `NAME_HOST_URL`.
    pub(crate) fn host_env_var(&self, host: &str) -> String {
        format!("{}_{}_URL", env_word(&self.name), env_word(host))
    }

    /// The auth schemes, in the order they are tried; none for an open vendor.
    pub(crate) fn schemes(&self) -> &[AuthSpec] {
        self.auth.as_ref().map_or(&[], Auth::schemes)
    }

    /// The request headers that carry a credential, in lower case: they are kept out of
    /// `headers` in conditions and templates, so no answer echoes a credential.
    pub(crate) fn withheld_headers(&self) -> Vec<String> {
        let mut out: Vec<String> = ["authorization", "proxy-authorization", "cookie"]
            .map(String::from)
            .to_vec();
        for a in self.schemes() {
            let carried = match a.scheme {
                AuthScheme::Query => vec![],
                AuthScheme::Sigv4 => vec![a.header.as_str(), "x-amz-security-token"],
                AuthScheme::Header | AuthScheme::Basic => vec![a.header.as_str()],
            };
            for h in carried.into_iter().map(str::to_ascii_lowercase) {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
        out
    }

    /// The query parameters that carry a credential (`query` schemes'): kept out of `query`.
    pub(crate) fn withheld_query(&self) -> Vec<String> {
        self.schemes()
            .iter()
            .filter(|a| a.scheme == AuthScheme::Query)
            .filter_map(|a| a.param.clone())
            .collect()
    }

    /// Every mistake a scenario author can make that would otherwise surface as a confusing
    /// answer mid-run.
    pub(crate) fn validate(&self) -> Result<(), String> {
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
        if simulator::names().any(|n| n == name) {
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
        for h in &self.hosts {
            let valid = !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(format!(
                    "scripted vendor '{name}': host '{h}' must be lower-case letters, digits and '-'"
                ));
            }
        }
        let has = |c: &str| self.collections.contains_key(c);
        let schemes = self.schemes();
        if self.auth.is_some() && schemes.is_empty() {
            return Err(format!(
                "scripted vendor '{name}': `auth = []` lists no scheme (leave `auth` out for an open vendor)"
            ));
        }
        for (i, a) in schemes.iter().enumerate() {
            let at = match &a.name {
                Some(n) => format!("scripted vendor '{name}': auth scheme '{n}'"),
                None => format!("scripted vendor '{name}': auth"),
            };
            if let Some(n) = &a.name {
                let valid = !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(format!(
                        "{at}: a name is letters, digits, '_' and '-' (templates reach it as auths.NAME)"
                    ));
                }
                if schemes[..i].iter().any(|o| o.name.as_ref() == Some(n)) {
                    return Err(format!("{at} is declared twice"));
                }
            }
            let needs_secret = matches!(a.scheme, AuthScheme::Basic | AuthScheme::Sigv4);
            if needs_secret && a.secret_field.is_none() {
                return Err(format!(
                    "{at}: scheme {:?} needs `secret_field` (the password or secret key)",
                    a.scheme
                ));
            }
            match (a.scheme, &a.param) {
                (AuthScheme::Query, None) => {
                    return Err(format!(
                        "{at}: scheme query needs `param`, the query parameter that carries the credential"
                    ))
                }
                (AuthScheme::Query, Some(_)) | (_, None) => {}
                (other, Some(_)) => {
                    return Err(format!(
                        "{at}: `param` is for scheme query, not {other:?}"
                    ))
                }
            }
            if !has(&a.collection) {
                return Err(format!(
                    "{at} uses collection '{}', which is not declared",
                    a.collection
                ));
            }
        }
        for (collection, field) in &self.expiry {
            let Some(items) = self.collections.get(collection) else {
                return Err(format!(
                    "scripted vendor '{name}': expiry names collection '{collection}', which is not declared"
                ));
            };
            for item in items {
                let ok = match item.get(field) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(t)) => super::clock::parse(t).is_some(),
                    Some(_) => false,
                };
                if !ok {
                    return Err(format!(
                        "scripted vendor '{name}': collection '{collection}': `{field}` must be an RFC 3339 time (2026-12-31T00:00:00Z), got {}",
                        item[field]
                    ));
                }
            }
        }
        let scheme_named = |n: &str| schemes.iter().any(|a| a.name.as_deref() == Some(n));
        let withheld_headers = self.withheld_headers();
        let withheld_query = self.withheld_query();
        for r in &self.routes {
            let at = format!("scripted vendor '{name}', route {} {}", r.method, r.path);
            if !METHODS.contains(&r.method.as_str()) {
                return Err(format!(
                    "{at}: method must be one of {}",
                    METHODS.join(", ")
                ));
            }
            if let Some(h) = &r.host {
                if !self.hosts.contains(h) {
                    return Err(format!(
                        "{at}: host '{h}' is not one of the vendor's hosts {:?}",
                        self.hosts
                    ));
                }
            }
            if !r.path.starts_with('/') {
                return Err(format!("{at}: the path must start with '/'"));
            }
            let actions = [
                r.create.as_ref().map(|c| &c.collection),
                r.find.as_ref().map(|c| &c.collection),
                r.delete.as_ref().map(|c| &c.collection),
                r.list.as_ref().map(|c| &c.collection),
                r.update.as_ref().map(|c| &c.collection),
            ];
            if r.respond.body.is_some() && r.respond.xml.is_some() {
                return Err(format!(
                    "{at}: an answer has a JSON body or an XML one, not both"
                ));
            }
            if let Some(c) = actions.iter().flatten().find(|c| !has(c)) {
                return Err(format!("{at}: collection '{c}' is not declared"));
            }
            for key in r.when.keys() {
                if let Some(h) = key.strip_prefix("headers.") {
                    if h != h.to_ascii_lowercase() {
                        return Err(format!(
                            "{at}: when `{key}`: a header is named in lower case (`headers.{}`)",
                            h.to_ascii_lowercase()
                        ));
                    }
                    if withheld_headers.iter().any(|w| w == h) {
                        return Err(format!(
                            "{at}: when `{key}`: that header carries a credential, which the sandbox keeps out of conditions and templates (the auth schemes check it)"
                        ));
                    }
                }
                if let Some(q) = key.strip_prefix("query.") {
                    if withheld_query.iter().any(|w| w == q) {
                        return Err(format!(
                            "{at}: when `{key}`: that query parameter carries a credential, which the sandbox keeps out of conditions and templates (the auth schemes check it)"
                        ));
                    }
                }
            }
            let needs: &[String] = match &r.auth {
                RouteAuth::All(names) => names,
                _ => &[],
            };
            if matches!(r.auth, RouteAuth::All(_)) {
                if schemes.is_empty() {
                    return Err(format!(
                        "{at}: `auth` names schemes, but the vendor declares no `auth`"
                    ));
                }
                if needs.is_empty() {
                    return Err(format!(
                        "{at}: `auth = []` names no scheme (`true` for any, `false` for none)"
                    ));
                }
                if let Some(n) = needs.iter().find(|n| !scheme_named(n)) {
                    return Err(format!(
                        "{at}: `auth` names scheme '{n}', which the vendor does not declare"
                    ));
                }
            }
            if let Some(req) = &r.requires {
                if schemes.is_empty() || r.auth == RouteAuth::Open {
                    return Err(format!(
                        "{at}: `requires` checks the authenticated item, so the route needs auth"
                    ));
                }
                if let Some(n) = &req.auth {
                    if !scheme_named(n) {
                        return Err(format!(
                            "{at}: `requires` checks scheme '{n}', which the vendor does not declare"
                        ));
                    }
                    if !needs.is_empty() && !needs.contains(n) {
                        return Err(format!(
                            "{at}: `requires` checks scheme '{n}', which the route's `auth` does not name"
                        ));
                    }
                }
            }
            if let Some(c) = &r.create {
                if c.expires_in_ms.is_some() && !self.expiry.contains_key(&c.collection) {
                    return Err(format!(
                        "{at}: `expires_in_ms` needs the vendor's `expiry` to name the field of collection '{}'",
                        c.collection
                    ));
                }
            }
            if let Some(l) = &r.list {
                if l.map.is_some() && !l.fields.is_empty() {
                    return Err(format!(
                        "{at}: a list has `fields` or `map`, not both (`map` picks the fields itself)"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Sandbox, SandboxError, Scenario};

    /// A vendor with two named header schemes and a query one, and one route with `extra`.
    fn route(extra: &str) -> String {
        format!(
            r#"
            [[scripted]]
            name = "v"
            auth = [
                {{ name = "api_key", header = "DD-API-KEY", collection = "keys", field = "k" }},
                {{ name = "by_query", scheme = "query", param = "api_key", collection = "keys", field = "k" }},
            ]
            collections = {{ keys = [] }}
            [[scripted.routes]]
            method = "GET"
            path = "/x"
            {extra}
            "#
        )
    }

    /// `auth` is a table or a list of them, and either names an unknown key; a route's
    /// `auth` is a flag or a list of names.
    #[test]
    fn auth_is_one_scheme_or_a_list_and_routes_take_a_flag_or_names() {
        use super::{Auth, RouteAuth};
        let one = Scenario::from_toml(
            "[[scripted]]\nname = \"v\"\nauth = { collection = \"keys\", field = \"k\" }\n",
        )
        .unwrap();
        assert!(matches!(one.scripted[0].auth, Some(Auth::One(_))));
        let many = Scenario::from_toml(&route("auth = [\"api_key\"]")).unwrap();
        let v = &many.scripted[0];
        assert_eq!(v.schemes().len(), 2);
        assert_eq!(v.routes[0].auth, RouteAuth::All(vec!["api_key".into()]));
        let open = Scenario::from_toml(&route("auth = false")).unwrap();
        assert_eq!(open.scripted[0].routes[0].auth, RouteAuth::Open);
        assert_eq!(
            Scenario::from_toml(&route("")).unwrap().scripted[0].routes[0].auth,
            RouteAuth::Any
        );
        // What a scenario says survives a round trip through JSON.
        let back = Scenario::from_json(&serde_json::to_string(&many).unwrap()).unwrap();
        assert_eq!(back, many);
        for (toml, expected) in [
            (
                "[[scripted]]\nname = \"v\"\nauth = [{ collection = \"keys\", field = \"k\", bogus = 1 }]\n",
                "unknown field `bogus`",
            ),
            (
                "[[scripted]]\nname = \"v\"\nauth = { collection = \"keys\", field = \"k\", bogus = 1 }\n",
                "unknown field `bogus`",
            ),
            (&route("auth = \"api_key\""), "true, false or a list of auth scheme names"),
        ] {
            let e = Scenario::from_toml(toml).unwrap_err().to_string();
            assert!(e.contains(expected), "{toml}: {e}");
        }
    }

    #[tokio::test]
    async fn scenario_mistakes_are_refused_at_start() {
        let cases: [(&str, &str); 15] = [
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
            (
                &route("when = { \"headers.X-Api-Version\" = \"2\" }"),
                "a header is named in lower case (`headers.x-api-version`)",
            ),
            (
                &route("when = { \"headers.dd-api-key\" = \"k\" }"),
                "that header carries a credential",
            ),
            (
                &route("when = { \"query.api_key\" = \"k\" }"),
                "that query parameter carries a credential",
            ),
            (
                &route("auth = [\"api_key\", \"nope\"]"),
                "`auth` names scheme 'nope'",
            ),
            (
                &route("auth = [\"api_key\"]\nrequires = { auth = \"by_query\", field = \"k\", value = 1 }"),
                "which the route's `auth` does not name",
            ),
            (
                &route("auth = false\nrequires = { field = \"k\", value = 1 }"),
                "so the route needs auth",
            ),
            (
                &route("create = { collection = \"keys\", item = {}, expires_in_ms = 5 }"),
                "`expires_in_ms` needs the vendor's `expiry`",
            ),
            (
                &route("list = { collection = \"keys\", fields = [\"k\"], map = { id = \"{{item.k}}\" } }"),
                "a list has `fields` or `map`, not both",
            ),
            (
                "[[scripted]]\nname = \"v\"\nauth = [{ scheme = \"query\", collection = \"keys\", field = \"k\" }]\ncollections = { keys = [] }\n",
                "scheme query needs `param`",
            ),
            (
                "[[scripted]]\nname = \"v\"\nauth = [{ name = \"a\", collection = \"keys\", field = \"k\" }, { name = \"a\", collection = \"keys\", field = \"s\" }]\ncollections = { keys = [] }\n",
                "auth scheme 'a' is declared twice",
            ),
            (
                "[[scripted]]\nname = \"v\"\nexpiry = { keys = \"until\" }\ncollections = { keys = [{ until = \"tomorrow\" }] }\n",
                "`until` must be an RFC 3339 time",
            ),
        ];
        for (toml, expected) in cases {
            let scenario = Scenario::from_toml(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
            match Sandbox::start(scenario).await {
                Err(SandboxError::Scenario { message }) => {
                    assert!(message.contains(expected), "{message}")
                }
                other => panic!("{toml}: {other:?}"),
            }
        }
    }
}
