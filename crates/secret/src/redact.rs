//! The process-wide redactor: every secret value seen in this run is replaced by its mask in
//! anything we print or write. It is global on purpose: an output path that forgets to ask
//! for it is the bug we are guarding against.

use std::borrow::Cow;
use std::sync::RwLock;

/// Wraps the text a `Secret` produces when a script turns it into a string (`${token}`).
/// Output paths drop it; host functions that send strings to a vendor refuse it.
pub const MARK: char = '\u{E000}';

/// Values shorter than this are not searched for: masking every "a" in the output would
/// destroy the output and protect nothing.
const MIN_LEN: usize = 4;

static SEEN: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

/// Remembers a secret value so that later output is redacted.
pub fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    let mut seen = SEEN.write().unwrap_or_else(|e| e.into_inner());
    if seen.iter().any(|(v, _)| v == value) {
        return;
    }
    seen.push((value.to_string(), crate::mask(value)));
    // Longest first, so a secret that contains another is masked whole.
    seen.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
}

/// Replaces every registered secret value with its mask and drops interpolation markers.
pub fn redact(text: &str) -> Cow<'_, str> {
    let seen = SEEN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for (value, mask) in seen.iter() {
        if out.contains(value.as_str()) {
            out = Cow::Owned(out.replace(value.as_str(), mask));
        }
    }
    if out.contains(MARK) {
        out = Cow::Owned(strip_markers(&out));
    }
    out
}

/// Redacts every string inside a JSON value.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_json),
        _ => {}
    }
}

pub fn strip_markers(text: &str) -> String {
    text.chars().filter(|c| *c != MARK).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_everywhere() {
        register("redact-test-value-0001");
        let out = redact("token=redact-test-value-0001; again redact-test-value-0001");
        assert_eq!(out, "token=secret(…0001); again secret(…0001)");
    }

    #[test]
    fn json_strings_are_redacted() {
        register("redact-json-value-0002");
        let mut v = serde_json::json!({"a": ["x redact-json-value-0002"], "b": 1});
        redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x secret(…0002)"], "b": 1}));
    }
}
