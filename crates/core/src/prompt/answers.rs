//! `--answers FILE`: prompt answers keyed by prompt id, as TOML or JSON.

use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct Answers {
    values: BTreeMap<String, Value>,
}

impl Answers {
    pub fn load(path: &Path) -> Result<Answers> {
        Self::parse(&crate::state::read_text(path)?, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Answers> {
        let is_json =
            path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        let value: Value = if is_json {
            serde_json::from_str(text).map_err(|e| {
                Error::usage(
                    format!(
                        "{}:{}:{}: malformed answers file: {}",
                        path.display(),
                        e.line(),
                        e.column(),
                        runbook_secret::without_values(&e.to_string())
                    ),
                    "answers are a JSON object of prompt id to answer, e.g. {\"generate.token\": \"...\"}",
                )
            })?
        } else {
            let t: toml::Table = toml::from_str(text).map_err(|e| {
                let at = e
                    .span()
                    .map(|s| {
                        let line = text.get(..s.start).unwrap_or(text).matches('\n').count() + 1;
                        format!(":{line}")
                    })
                    .unwrap_or_default();
                Error::usage(
                    format!(
                        "{}{at}: malformed answers file: {}",
                        path.display(),
                        runbook_secret::without_values(e.message())
                    ),
                    "answers are TOML `id = value` lines (quote ids that contain dots), or JSON",
                )
            })?;
            serde_json::to_value(t).map_err(|e| {
                Error::usage(
                    format!("{}: unusable answers file: {e}", path.display()),
                    "use strings, booleans and numbers",
                )
            })?
        };
        let Value::Object(map) = value else {
            return Err(Error::usage(
                format!(
                    "{}: answers must be an object of id = answer",
                    path.display()
                ),
                "e.g. `prerequisites = true`",
            ));
        };
        Ok(Answers {
            values: map.into_iter().collect(),
        })
    }

    /// The ids the file answers.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.values.get(id)
    }
}

/// An answer as text (strings as they are, numbers and booleans printed).
pub(crate) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_give_the_same_answers() {
        let t = Answers::parse("\"a.b\" = true\nname = \"x\"\n", Path::new("a.toml")).unwrap();
        let j = Answers::parse(r#"{"a.b": true, "name": "x"}"#, Path::new("a.json")).unwrap();
        assert_eq!(t.get("a.b"), j.get("a.b"));
        assert_eq!(t.get("name"), j.get("name"));
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let err = Answers::parse("ok = true\nbad = = 1\n", Path::new("a.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("a.toml:2: malformed answers file"),
            "{err}"
        );
    }
}
