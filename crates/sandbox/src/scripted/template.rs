//! The templates of scripted answers: `{{expr}}` looked up in the request's scope.

use serde_json::Value;

/// Renders a template value: strings with `{{...}}` are filled in from `scope`.
pub(super) fn template(t: &Value, scope: &Value) -> Value {
    match t {
        Value::String(s) => {
            if let Some(generated) = generate(s.trim()) {
                return Value::String(generated);
            }
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

/// `@uuid`, `@random` (32 hex digits) and `@random:N` (N letters and digits, as
/// credentials look) as a whole value: a fresh value on every use.
fn generate(s: &str) -> Option<String> {
    match s {
        "@uuid" => Some(uuid::Uuid::new_v4().to_string()),
        "@random" => Some(uuid::Uuid::new_v4().simple().to_string()),
        _ => s
            .strip_prefix("@random:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=256).contains(n))
            .map(random_alnum),
    }
}

/// N letters and digits from fresh UUIDs' randomness.
fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() == n {
                break;
            }
            // 248 = 4 x 62: no bias towards the first letters.
            if *b < 248 {
                out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// Interpolates for an XML body: the values are escaped, the template's own markup is not.
/// `{{#each items}}...{{/each}}` repeats its inner text for every element of a list, with
/// the element as `it` (`<member><Id>{{it.id}}</Id></member>`).
pub(super) fn interpolate_xml(s: &str, scope: &Value) -> String {
    let escape = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{#each ") {
        let Some(close) = rest[start..].find("}}") else {
            break;
        };
        let Some(end) = rest[start..].find("{{/each}}") else {
            break;
        };
        out.push_str(&interpolate_with(&rest[..start], scope, &escape));
        let expr = rest[start + 8..start + close].trim();
        let inner = &rest[start + close + 2..start + end];
        if let Value::Array(items) = lookup(expr, scope) {
            for it in items {
                let mut local = scope.clone();
                local["it"] = it;
                out.push_str(&interpolate_with(inner, &local, &escape));
            }
        }
        rest = &rest[start + end + "{{/each}}".len()..];
    }
    out.push_str(&interpolate_with(rest, scope, &escape));
    out
}

pub(super) fn interpolate(s: &str, scope: &Value) -> String {
    interpolate_with(s, scope, &|v: &str| v.to_string())
}

fn interpolate_with(s: &str, scope: &Value, escape: &dyn Fn(&str) -> String) -> String {
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
            Value::String(v) => out.push_str(&escape(&v)),
            Value::Null => {}
            v => out.push_str(&escape(&v.to_string())),
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
        // Sandbox time, which the request's scope carries; the wall clock without one.
        "now" if scope.get("now").is_none() => return Value::String(crate::ts::seconds()),
        _ => {}
    }
    if let Some(n) = expr.strip_prefix("random:") {
        if let Some(v) = generate(&format!("@random:{n}")) {
            return Value::String(v);
        }
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

    #[test]
    fn generated_values_are_fresh_and_shaped() {
        let scope = json!({});
        let a = template(&json!("@random:40"), &scope);
        let b = template(&json!("@random:40"), &scope);
        let a = a.as_str().unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(Some(a), b.as_str());
        assert_eq!(
            template(&json!("@uuid"), &scope).as_str().map(str::len),
            Some(36)
        );
        assert_eq!(interpolate("AKIA{{random:16}}", &scope).len(), 20);
        let xml = interpolate_xml("<Name>{{body.n}}</Name>", &json!({"body": {"n": "a<b&c"}}));
        assert_eq!(xml, "<Name>a&lt;b&amp;c</Name>");
        let list = interpolate_xml(
            "<Keys>{{#each items}}<member><Id>{{it.id}}</Id></member>{{/each}}</Keys>",
            &json!({"items": [{"id": "A"}, {"id": "B&"}]}),
        );
        assert_eq!(
            list,
            "<Keys><member><Id>A</Id></member><member><Id>B&amp;</Id></member></Keys>"
        );
    }
}
