//! Test helpers: raw HTTP and validators against the vendors' published specs.

use crate::Sandbox;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

pub(crate) use crate::testing::{keys, sorted};

/// A plain client for requests the typed clients would not make.
pub(crate) fn raw() -> reqwest::Client {
    crate::testing::client().expect("client")
}

/// The Heroku Platform API version the engine asks for.
pub(crate) const HEROKU_ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// A Heroku Platform API request as the engine sends it: version 3 Accept and the API key.
pub(crate) fn platform(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    raw()
        .request(method, format!("{}{path}", sb.heroku_url()))
        .header("Accept", HEROKU_ACCEPT)
        .bearer_auth(&sb.credentials().heroku_api_key)
}

/// The same on the default scenario's app `raxx-api-prod`: `suffix` follows its path.
pub(crate) fn on_app(sb: &Sandbox, method: Method, suffix: &str) -> RequestBuilder {
    platform(sb, method, &format!("/apps/raxx-api-prod{suffix}"))
}

/// What `req` asks (`METHOD URL`), to name the request in a failed assertion.
fn asked(req: &RequestBuilder) -> String {
    req.try_clone()
        .and_then(|r| r.build().ok())
        .map_or_else(String::new, |r| format!("{} {}", r.method(), r.url()))
}

/// Sends `req`: its status and JSON body (a body that is not JSON fails the test).
pub(crate) async fn answer(req: RequestBuilder) -> (u16, Value) {
    let what = asked(&req);
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what} → {status}: the body is not JSON ({e}): {text}"));
    (status, body)
}

/// Sends `req` and checks that it answers `status`: its JSON body.
pub(crate) async fn expect(status: u16, req: RequestBuilder) -> Value {
    let what = asked(&req);
    let (got, body) = answer(req).await;
    assert_eq!(got, status, "{what}: {body}");
    body
}

/// Sends `req`: the response, for a test that reads its headers.
pub(crate) async fn sent(req: RequestBuilder) -> reqwest::Response {
    req.send().await.expect("request")
}

/// Sends `req`: its body as text, whatever the status (a dashboard page).
pub(crate) async fn text(req: RequestBuilder) -> String {
    sent(req).await.text().await.expect("body")
}

fn spec(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/specs")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("spec file");
    let mut v: Value = serde_json::from_str(&text).expect("spec JSON");
    strip_meta(&mut v);
    v
}

/// Drops `$schema` and string `id` keywords (hyper-schema ids would re-base `#/...` refs).
fn strip_meta(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("$schema");
            if m.get("id").is_some_and(Value::is_string) {
                m.remove("id");
            }
            m.values_mut().for_each(strip_meta);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_meta),
        _ => {}
    }
}

/// Validates against a definition of Postmark's server swagger; `require_all` makes every
/// property the swagger lists mandatory.
pub(crate) fn postmark_check(definition: &str, instance: &Value, require_all: bool) {
    let spec = spec("postmark-server-api.swagger.json");
    let mut defs = spec["definitions"].clone();
    // The swagger is old: its Color enum is lower-case; current docs capitalise.
    for object in [
        "ServerConfigurationResponse",
        "EditServerConfigurationRequest",
    ] {
        let Some(color) = defs.pointer_mut(&format!("/{object}/properties/Color/enum")) else {
            continue;
        };
        for c in crate::postmark::COLORS {
            if let Some(a) = color.as_array_mut() {
                a.push(json!(c));
            }
        }
    }
    if require_all {
        let props: Vec<Value> = defs[definition]["properties"]
            .as_object()
            .map(|m| m.keys().map(|k| json!(k)).collect())
            .unwrap_or_default();
        defs[definition]["required"] = json!(props);
    }
    let schema = json!({"$ref": format!("#/definitions/{definition}"), "definitions": defs});
    check(&schema, instance, definition);
}

/// Validates against a Heroku hyper-schema pointer (e.g. `/definitions/release`); with
/// `strict`, the object must have exactly the schema's properties (`strictProperties`), and so
/// must every object its properties and items reach (`stack`, `owner`, a dyno's `release`…):
/// the Platform API always answers those identities whole.
pub(crate) fn heroku_check(pointer: &str, instance: &Value, strict: bool) {
    let spec = spec("heroku-platform-api.schema.json");
    let mut defs = spec["definitions"].clone();
    let local = pointer.trim_start_matches("/definitions");
    if strict {
        make_strict(&mut defs, local, &mut Vec::new());
    }
    let schema = json!({"$ref": format!("#{pointer}"), "definitions": defs});
    check(&schema, instance, pointer);
}

/// Requires every property of the object schema at `pointer` (inside `defs`) and forbids
/// others, then does the same for what its properties and items reach, through `$ref`s.
fn make_strict(defs: &mut Value, pointer: &str, seen: &mut Vec<String>) {
    if seen.iter().any(|p| p == pointer) {
        return;
    }
    seen.push(pointer.to_string());
    let Some(schema) = defs.pointer(pointer).cloned() else {
        return;
    };
    if let Some(target) = schema["$ref"].as_str() {
        if let Some(local) = target.strip_prefix("#/definitions") {
            make_strict(defs, local, seen);
        }
        return;
    }
    let names: Vec<String> = schema["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if !names.is_empty() {
        if let Some(target) = defs.pointer_mut(pointer) {
            target["required"] = json!(names);
            target["additionalProperties"] = json!(false);
        }
    }
    for name in &names {
        let escaped = name.replace('~', "~0").replace('/', "~1");
        make_strict(defs, &format!("{pointer}/properties/{escaped}"), seen);
    }
    if schema.get("items").is_some() {
        make_strict(defs, &format!("{pointer}/items"), seen);
    }
}

/// A config-var map against the schema's `config-var/definitions/config_vars` (keys `^\w+$`,
/// nothing else). That definition allows `null` values because it also types the PATCH body,
/// where `null` removes a var; Heroku's answers hold only strings, so unless `request` is set
/// a `null` is refused too.
pub(crate) fn heroku_config_vars_check(instance: &Value, request: bool) {
    let pointer = "/definitions/config-var/definitions/config_vars";
    let spec = spec("heroku-platform-api.schema.json");
    let mut defs = spec["definitions"].clone();
    if !request {
        let values = defs
            .pointer_mut("/config-var/definitions/config_vars/patternProperties")
            .and_then(Value::as_object_mut)
            .expect("config_vars has patternProperties");
        for schema in values.values_mut() {
            schema["type"] = json!(["string"]);
        }
    }
    let schema = json!({"$ref": format!("#{pointer}"), "definitions": defs});
    check(&schema, instance, pointer);
}

/// Heroku's error body. The hyper-schema does not describe errors, so this is written from
/// /work/shared/vendor-apis.md §3.6, which cites the Platform API reference ("Errors") and
/// heroku/heroku-cli-command `src/api-client.ts` (the CLI reads `message`, `id`, `app.name`
/// and `url`): `id` and `message` strings always; `url`, `app` `{name}` and `resource` on
/// some errors; no other key.
pub(crate) fn heroku_error_check(instance: &Value) {
    let schema = json!({
        "type": "object",
        "required": ["id", "message"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "message": {"type": "string", "minLength": 1},
            "url": {"type": "string"},
            "app": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}}
            },
            "resource": {"type": "string"}
        }
    });
    check(&schema, instance, "heroku error");
}

/// Validates against a definition of `infisical-v4-secrets.schema.json`, the v4 secret
/// routes' zod response schemas transcribed to JSON Schema (sources in its `$comment`).
pub(crate) fn infisical_check(definition: &str, instance: &Value) {
    let spec = spec("infisical-v4-secrets.schema.json");
    assert!(
        spec["definitions"].get(definition).is_some(),
        "no {definition} in infisical-v4-secrets.schema.json"
    );
    let defs = &spec["definitions"];
    let schema = json!({"$ref": format!("#/definitions/{definition}"), "definitions": defs});
    let mut found = errors(&schema, instance);
    // A union (`oneOf`) only says that no branch matched: say why each did not.
    if !found.is_empty() {
        for (i, branch) in defs[definition]["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut branch = branch.clone();
            branch["definitions"] = defs.clone();
            for e in errors(&branch, instance) {
                found.push(format!("oneOf[{i}]: {e}"));
            }
        }
    }
    report(definition, found, instance);
}

/// The `targetSchema` of a Heroku link, by definition, method and href suffix.
pub(crate) fn heroku_link_check(
    definition: &str,
    method: &str,
    href_suffix: &str,
    instance: &Value,
) {
    let spec = spec("heroku-platform-api.schema.json");
    let links = spec["definitions"][definition]["links"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let link = links
        .iter()
        .find(|l| {
            l["method"] == method && l["href"].as_str().is_some_and(|h| h.ends_with(href_suffix))
        })
        .unwrap_or_else(|| panic!("no {method} …{href_suffix} link in {definition}"));
    let mut target = link["targetSchema"].clone();
    if let Value::Object(m) = &mut target {
        m.insert("definitions".into(), spec["definitions"].clone());
    }
    check(&target, instance, href_suffix);
}

fn check(schema: &Value, instance: &Value, what: &str) {
    report(what, errors(schema, instance), instance);
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(schema).expect("schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Fails with one line per error (unescaped, so `should_panic` can name one).
fn report(what: &str, errors: Vec<String>, instance: &Value) {
    assert!(
        errors.is_empty(),
        "{what}:\n  - {}\ninstance: {instance:#}",
        errors.join("\n  - ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "/definitions/release")]
    fn heroku_checks_catch_a_missing_field() {
        heroku_check(
            "/definitions/release",
            &json!({"id": "x", "version": 1}),
            true,
        );
    }

    #[test]
    #[should_panic(expected = "SendEmailResponse")]
    fn postmark_checks_catch_a_wrong_type() {
        postmark_check(
            "SendEmailResponse",
            &json!({"To": "a", "SubmittedAt": "2014-02-17T07:25:01.4178645-05:00", "MessageID": "m", "ErrorCode": "0", "Message": "OK"}),
            true,
        );
    }

    #[test]
    #[should_panic(expected = "config_vars")]
    fn heroku_checks_catch_a_non_string_config_value() {
        heroku_check(
            "/definitions/config-var/definitions/config_vars",
            &json!({"A": 1}),
            false,
        );
    }
}
