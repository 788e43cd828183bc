//! The scenario format, from the code: the JSON Schema the scenario structs derive, and the
//! Markdown reference docs/authoring.md carries, rendered from that schema (a test keeps
//! the page fresh), one section per TOML table.

use serde_json::Value;
use std::collections::BTreeMap;

/// The JSON Schema of a scenario file (TOML or JSON).
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(crate::Scenario)).unwrap_or_default()
}

/// Where a definition appears: the TOML headers of the tables it describes.
#[derive(Default)]
struct Place {
    headers: Vec<String>,
}

/// The reference: every table a scenario can hold, with each key's type, default and
/// meaning.
pub fn markdown() -> String {
    let mut schema = schema();
    inline_choices(&mut schema);
    let defs = schema["$defs"].as_object().cloned().unwrap_or_default();
    // Depth first from the top level: each table right after the one that holds it.
    let mut order: Vec<String> = Vec::new();
    let mut places: BTreeMap<String, Place> = BTreeMap::new();
    visit(&schema, "", &defs, &mut order, &mut places);
    let mut out = String::from(
        "Generated from the scenario structs (`runbook sandbox --schema` prints the JSON \
         Schema); a key left out takes its default.\n\n### Top level\n\n",
    );
    out.push_str(&table(&schema));
    for name in order {
        let Some(def) = defs.get(&name) else { continue };
        let headers: Vec<String> = places[&name]
            .headers
            .iter()
            .map(|h| format!("`{h}`"))
            .collect();
        out.push_str(&format!("\n### {}\n\n", headers.join(", ")));
        if let Some(d) = def["description"].as_str() {
            out.push_str(&format!("{}\n\n", one_line(d)));
        }
        out.push_str(&table(def));
    }
    out
}

fn visit(
    node: &Value,
    path: &str,
    defs: &serde_json::Map<String, Value>,
    order: &mut Vec<String>,
    places: &mut BTreeMap<String, Place>,
) {
    for (key, prop) in properties(node) {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        // A key may hold its table or a list of them (`auth`): both headers lead to it.
        for (name, array) in table_refs(&prop) {
            let header = if array {
                format!("[[{child}]]")
            } else {
                format!("[{child}]")
            };
            let place = places.entry(name.clone()).or_default();
            let first = place.headers.is_empty();
            place.headers.push(header);
            if first {
                order.push(name.clone());
                if let Some(def) = defs.get(&name) {
                    visit(def, &child, defs, order, places);
                }
            }
        }
    }
}

fn properties(node: &Value) -> Vec<(String, Value)> {
    node["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The definition a key's value is a table of, and whether it is an array of tables.
fn table_ref(prop: &Value) -> Option<(String, bool)> {
    table_refs(prop).into_iter().next()
}

/// Every way a key's value is a table: its table, an array of tables, or, for a key that
/// takes either, both.
fn table_refs(prop: &Value) -> Vec<(String, bool)> {
    if let Some(r) = def_name(prop) {
        return vec![(r, false)];
    }
    if prop["type"] == "array" {
        return def_name(&prop["items"])
            .map(|r| (r, true))
            .into_iter()
            .collect();
    }
    alternatives(prop)
        .into_iter()
        .flat_map(table_refs)
        .collect()
}

/// The alternatives of an `anyOf`, nested ones flattened (an optional key of a type that
/// is itself one of several).
fn alternatives(prop: &Value) -> Vec<&Value> {
    prop["anyOf"]
        .as_array()
        .map(|any| {
            any.iter()
                .flat_map(|v| {
                    if v.get("anyOf").is_some() {
                        alternatives(v)
                    } else {
                        vec![v]
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn def_name(v: &Value) -> Option<String> {
    v["$ref"]
        .as_str()?
        .strip_prefix("#/$defs/")
        .map(str::to_string)
}

fn table(node: &Value) -> String {
    let mut out = String::from("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
    let required: Vec<&str> = node["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, prop) in properties(node) {
        let default = match prop.get("default") {
            _ if required.contains(&key.as_str()) => "required".to_string(),
            Some(v) if table_ref(&prop).is_some_and(|(_, array)| !array) => {
                if v.is_null() {
                    "none".into()
                } else {
                    "(its table's defaults)".into()
                }
            }
            Some(Value::Null) => "none".into(),
            Some(v) => format!("`{}`", compact(v)),
            None => "none".into(),
        };
        let meaning = prop["description"]
            .as_str()
            .map(one_line)
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{key}` | {} | {default} | {} |\n",
            type_name(&prop),
            meaning.replace('|', "\\|")
        ));
    }
    out
}

/// A key that takes one of a few words is no table: every reference to such a definition
/// (a string `enum`, or a `oneOf` of string constants) becomes that list of words inline,
/// and the definition leaves the reference.
fn inline_choices(schema: &mut Value) {
    let Some(defs) = schema["$defs"].as_object().cloned() else {
        return;
    };
    let choices: BTreeMap<String, Vec<Value>> = defs
        .iter()
        .filter_map(|(name, def)| {
            let words = match (def["enum"].as_array(), def["oneOf"].as_array()) {
                (Some(e), _) => e.clone(),
                (None, Some(one)) => one
                    .iter()
                    .map(|v| v.get("const").cloned())
                    .collect::<Option<Vec<_>>>()?,
                _ => return None,
            };
            words
                .iter()
                .all(Value::is_string)
                .then(|| (name.clone(), words))
        })
        .collect();
    fn walk(v: &mut Value, choices: &BTreeMap<String, Vec<Value>>) {
        match v {
            Value::Object(m) => {
                let target = m
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .and_then(|name| choices.get(name));
                if let Some(words) = target {
                    let words = words.clone();
                    m.remove("$ref");
                    m.insert("type".into(), Value::String("string".into()));
                    m.insert("enum".into(), Value::Array(words));
                }
                m.values_mut().for_each(|x| walk(x, choices));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, choices)),
            _ => {}
        }
    }
    if let Some(d) = schema["$defs"].as_object_mut() {
        d.retain(|name, _| !choices.contains_key(name));
    }
    walk(schema, &choices);
}

fn type_name(prop: &Value) -> String {
    if let Some(words) = prop["enum"].as_array() {
        let words: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
        return format!("one of {}", words.join(", "));
    }
    if let Some(r) = def_name(prop) {
        return format!("table ({r})");
    }
    if prop.get("anyOf").is_some() {
        let any = alternatives(prop);
        let inner: Vec<String> = any
            .iter()
            .filter(|v| v["type"] != "null")
            .map(|v| type_name(v))
            .collect();
        let none = if any.iter().any(|v| v["type"] == "null") {
            " or none"
        } else {
            ""
        };
        return format!("{}{none}", inner.join(" or "));
    }
    let base = |t: &str| match t {
        "array" => match table_ref(prop) {
            Some((r, _)) => format!("array of tables ({r})"),
            None => format!("list of {}", type_name(&prop["items"])),
        },
        "object" => match prop.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of {}", type_name(v)),
            _ => "table".into(),
        },
        "integer" => match prop["minimum"].as_f64() {
            Some(m) if m >= 0.0 => "whole number".into(),
            _ => "integer".into(),
        },
        "number" => "number".into(),
        "" => "any JSON value".into(),
        other => other.to_string(),
    };
    match &prop["type"] {
        Value::String(t) => base(t),
        Value::Array(ts) => {
            let names: Vec<String> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(base)
                .collect();
            if ts.iter().any(|t| t == "null") {
                format!("{} or none", names.join(" or "))
            } else {
                names.join(" or ")
            }
        }
        _ => base(""),
    }
}

/// A default as the reader would write it: JSON, kept short.
fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_a_scenario_has_a_section() {
        let md = markdown();
        for header in [
            "### Top level",
            "`[postmark]`",
            "`[[postmark.servers]]`",
            "`[infisical]`",
            "`[[infisical.approval_policies]]`",
            "`[heroku.rate_limit]`",
            "`[[heroku.apps]]`",
            "`[github.secondary_limit]`",
            "`[[scripted]]`",
            "`[[scripted.routes]]`",
        ] {
            assert!(md.contains(header), "{header} missing:\n{md}");
        }
        // Keys carry their meaning from the structs' doc comments.
        assert!(md.contains("| `boot_ms` | whole number | `300` |"), "{md}");
        assert!(md.contains("| `faults` | list of string |"), "{md}");
        // A key that takes a table or a list of them, or a flag or a list of names.
        assert!(
            md.contains("### `[scripted.auth]`, `[[scripted.auth]]`"),
            "{md}"
        );
        assert!(
            md.contains("| `auth` | table (AuthSpec) or array of tables (AuthSpec) or none |"),
            "{md}"
        );
        assert!(
            md.contains("| `auth` | boolean or list of string | `true` |"),
            "{md}"
        );
    }

    /// The schema accepts every scenario the repository ships or documents (the shipped
    /// worlds, the guide's blocks), `auth` as a table or a list included, and refuses a key
    /// of the wrong shape.
    #[test]
    fn the_schema_accepts_the_shipped_and_documented_scenarios() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut scenarios: Vec<(String, String)> = Vec::new();
        for dir in ["runbooks/sandbox", "runbooks/sandbox/realistic"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    scenarios.push((path.display().to_string(), text));
                }
            }
        }
        let guide = std::fs::read_to_string(root.join("docs/authoring.md")).unwrap();
        let mut rest = guide.as_str();
        while let Some(start) = rest.find("```toml ") {
            let info_end = start + rest[start..].find('\n').unwrap();
            let info = rest[start + 8..info_end].to_string();
            let body_end = info_end + rest[info_end..].find("```").unwrap();
            if info == "scenario" || info.starts_with("example=") {
                scenarios.push((
                    format!("docs/authoring.md {info}"),
                    rest[info_end..body_end].into(),
                ));
            }
            rest = &rest[body_end + 3..];
        }
        assert!(scenarios.len() >= 8, "{}", scenarios.len());
        let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
        for (name, text) in &scenarios {
            let value: Value = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
        let route = |auth: Value| {
            serde_json::json!({"scripted": [{"name": "v", "routes": [
                {"method": "GET", "path": "/", "auth": auth}
            ]}]})
        };
        assert!(validator.is_valid(&route(serde_json::json!(["api_key"]))));
        assert!(validator.is_valid(&route(serde_json::json!(false))));
        assert!(!validator.is_valid(&route(serde_json::json!("api_key"))));
    }
}
