//! The templates of scripted answers: `{{expr}}` looked up in the request's scope.

use serde_json::Value;

/// Renders a template value: strings with `{{...}}` are filled in from `scope`.
pub(super) fn template(t: &Value, scope: &Value) -> Value {
    match t {
        Value::String(s) => {
            let trimmed = s.trim();
            if let Some(expr) = trimmed
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .filter(|e| !e.contains("{{"))
            {
                return lookup(expr.trim(), scope);
            }
            Value::String(interpolate(s, scope))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| template(x, scope)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), template(v, scope)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(super) fn interpolate(s: &str, scope: &Value) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match lookup(after[..end].trim(), scope) {
            Value::String(v) => out.push_str(&v),
            Value::Null => {}
            v => out.push_str(&v.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(expr: &str, scope: &Value) -> Value {
    match expr {
        "random" => return Value::String(uuid::Uuid::new_v4().simple().to_string()),
        "uuid" => return Value::String(uuid::Uuid::new_v4().to_string()),
        "now" => return Value::String(crate::ts::seconds()),
        _ => {}
    }
    let mut v = scope;
    for part in expr.split('.') {
        v = match v {
            Value::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return Value::Null,
            },
            Value::Object(o) => match o.get(part) {
                Some(x) => x,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    v.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_strings_keep_their_type_and_inner_ones_interpolate() {
        let scope = json!({"body": {"n": 3, "tags": ["a"]}, "path": {"id": "k1"}});
        let t = json!({"n": "{{ body.n }}", "tags": "{{body.tags}}", "at": "/keys/{{path.id}}/{{nope}}"});
        assert_eq!(
            template(&t, &scope),
            json!({"n": 3, "tags": ["a"], "at": "/keys/k1/"})
        );
        assert_eq!(interpolate("{{body.tags.0}}-{{", &scope), "a-{{");
        assert_eq!(
            template(&json!("{{random}}"), &scope)
                .as_str()
                .map(str::len),
            Some(32)
        );
    }
}
