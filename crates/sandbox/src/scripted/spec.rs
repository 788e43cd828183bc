//! The scripted vendors' scenario format: vendors, auth, routes, actions and answers, and
//! the checks a scenario must pass before the sandbox starts.

use crate::simulator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
    /// How requests authenticate; absent, every route is open.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// Named lists of items: the simulator's state.
    #[serde(default)]
    pub collections: BTreeMap<String, Vec<Value>>,
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

/// Requests must carry, in `header` after `prefix`, the `field` of an item of `collection`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// `header` (the credential in `header` after `prefix`), `basic` (HTTP Basic: the user
    /// name is `field` of an item, the password its `secret_field`) or `sigv4` (AWS
    /// Signature Version 4: the access key id is `field`, the secret key `secret_field`,
    /// and the signature is checked; a wrong one answers `signature_mismatch`).
    #[serde(default)]
    pub scheme: AuthScheme,
    /// The request header that carries the credential.
    #[serde(default = "default_auth_header")]
    pub header: String,
    /// What precedes the credential in the header (`Bearer `).
    #[serde(default)]
    pub prefix: String,
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
    /// Conditions on the request: dotted paths (`body.Action`, `query.page`) and the values
    /// they must equal; a query API (one path, the operation in a form field) routes by it.
    #[serde(default)]
    pub when: BTreeMap<String, Value>,
    /// `false`: no authentication on this route even when the vendor has `auth`.
    #[serde(default = "yes")]
    pub auth: bool,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
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
}

/// The first item of `collection` whose fields equal every rendered `where` value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub collection: String,
    /// Field → value (a template) the item must have.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
}

/// The first item of `collection` matching `where` gets the rendered `set` fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub collection: String,
    /// Field → value (a template) the item must have.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
    /// Field → new value (a template; `@uuid`, `@random:40` generate one).
    pub set: BTreeMap<String, Value>,
}

/// Every item of `collection` (matching `where`), keeping only `fields` when given: a list
/// route must not echo the credentials it stores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct List {
    pub collection: String,
    /// Field → value (a template) the items must have.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, Value>,
    /// The fields to keep; empty, all.
    #[serde(default)]
    pub fields: Vec<String>,
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

fn yes() -> bool {
    true
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
        if let Some(a) = &self.auth {
            if a.scheme != AuthScheme::Header && a.secret_field.is_none() {
                return Err(format!(
                    "scripted vendor '{name}': auth scheme {:?} needs `secret_field` (the password or secret key)",
                    a.scheme
                ));
            }
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
            if r.requires.is_some() && (self.auth.is_none() || !r.auth) {
                return Err(format!(
                    "{at}: `requires` checks the authenticated item, so the route needs auth"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Sandbox, SandboxError, Scenario};

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
