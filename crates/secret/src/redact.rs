//! The process-wide redactor: every secret value seen in this run is replaced by its mask in
//! anything we print or write. It is global on purpose: an output path that forgets to ask
//! for it is the bug we are guarding against.
//!
//! A value is searched for in the forms it takes on its way out without anyone meaning to
//! encode it: JSON and Rust-debug escaping, percent-encoding, base64 (standard and URL-safe,
//! at every byte alignment, so a secret inside a larger encoded blob is found too), and each
//! long line of a multi-line value (a PEM key printed with a prefix on every line).

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use std::borrow::Cow;
use std::sync::{Arc, RwLock};

/// Wraps the text a `Secret` produces when a script turns it into a string (`${token}`).
/// Output paths drop it; host functions that send strings to a vendor refuse it.
pub const MARK: char = '\u{E000}';

/// Values shorter than this are not searched for: masking every "a" in the output would
/// destroy the output and protect nothing. Encoded forms obey the same floor.
const MIN_LEN: usize = 4;

/// A line of a multi-line secret is searched for on its own only when it is this long:
/// shorter lines ("-----", "}") are not distinctive.
const MIN_LINE: usize = 16;

struct Patterns {
    /// Every searched form, longest first; `masks[i]` replaces `forms[i]`.
    forms: Vec<String>,
    masks: Vec<Arc<str>>,
    matcher: Option<AhoCorasick>,
}

static SEEN: RwLock<Patterns> = RwLock::new(Patterns {
    forms: Vec::new(),
    masks: Vec::new(),
    matcher: None,
});

/// Remembers a secret value so that later output is redacted, in every encoded form.
pub fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    let mut seen = SEEN.write().unwrap_or_else(|e| e.into_inner());
    if seen.forms.iter().any(|f| f == value) {
        return;
    }
    let mask: Arc<str> = crate::mask(value).into();
    let mut pairs: Vec<(String, Arc<str>)> = std::mem::take(&mut seen.forms)
        .into_iter()
        .zip(std::mem::take(&mut seen.masks))
        .collect();
    for form in forms(value) {
        if !pairs.iter().any(|(f, _)| *f == form) {
            pairs.push((form, mask.clone()));
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    pairs.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
    let (forms, masks): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    // LeftmostLongest: where two forms overlap, the longer wins. Building cannot fail for
    // a few thousand short patterns; if it ever did, redact falls back to plain search.
    seen.matcher = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&forms)
        .ok();
    seen.forms = forms;
    seen.masks = masks;
}

/// The forms of `value` that output may carry, each at least `MIN_LEN` long.
pub(crate) fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    let mut add = |f: String| {
        if f.len() >= MIN_LEN && !out.contains(&f) {
            out.push(f);
        }
    };
    let json = json_escaped(value);
    add(json.replace('/', "\\/"));
    let ascii = ascii_json_escaped(&json);
    add(ascii.replace('/', "\\/"));
    add(ascii);
    // JSON quoted again by a Rust `{:?}` (an error that shows a response body).
    let twice = format!("{json:?}");
    add(twice[1..twice.len() - 1].to_string());
    add(json);
    let debug = format!("{value:?}");
    add(debug[1..debug.len() - 1].to_string());
    // RFC 3986 lets a client percent-encode any character, and encoders differ on the
    // unreserved punctuation (`-._~`: older Python quotes `~`, some encode all of it): every
    // choice of which of those characters are encoded, and the form that encodes every
    // byte.
    let punct: Vec<u8> = [b'-', b'.', b'_', b'~']
        .into_iter()
        .filter(|p| value.as_bytes().contains(p))
        .collect();
    for upper in [true, false] {
        for subset in 0..(1u32 << punct.len()) {
            let encoded: Vec<u8> = punct
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, p)| *p)
                .collect();
            add(percent_encoded(value, upper, false, &encoded));
            add(percent_encoded(value, upper, true, &encoded));
        }
        add(value
            .bytes()
            .map(|b| {
                if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect());
    }
    for b64 in base64_forms(value.as_bytes()) {
        add(b64);
    }
    if value.contains('\n') {
        for line in value.lines() {
            let line = line.trim();
            if distinctive_line(line) {
                add(line.to_string());
                for b64 in base64_forms(line.as_bytes()) {
                    add(b64);
                }
            }
        }
    }
    out
}

/// Long enough, varied enough and not PEM armour (`-----END KEY-----` names no secret).
fn distinctive_line(line: &str) -> bool {
    let mut distinct: Vec<char> = line.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    line.len() >= MIN_LINE && distinct.len() >= 8 && !line.starts_with("-----")
}

fn json_escaped(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// JSON as some encoders write it: every non-ASCII character as `\uXXXX`.
fn ascii_json_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Percent-encoding of everything but RFC 3986's unreserved characters (and of those in
/// `also`); `form` writes a space as `+` the way HTML forms do.
fn percent_encoded(value: &str, upper: bool, form: bool, also: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        match b {
            b'-' | b'.' | b'_' | b'~' if also.contains(&b) => out.push_str(&if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if form => out.push('+'),
            _ if upper => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// The part of the base64 text that depends only on `bytes`, for each of the three byte
/// offsets at which they can start inside a larger encoded message.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut buf = vec![0u8; offset];
        buf.extend_from_slice(bytes);
        // Characters wholly made of the value's bits: from ceil(8*offset/6) to floor(8*end/6).
        let start = (offset * 4).div_ceil(3);
        let end = (buf.len() * 4) / 3;
        if end <= start {
            continue;
        }
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let text = engine.encode(&buf);
            if let Some(part) = text.get(start..end) {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// Replaces every registered secret value (in any encoded form) with its mask and drops
/// interpolation markers.
pub fn redact(text: &str) -> Cow<'_, str> {
    let seen = SEEN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    match &seen.matcher {
        Some(matcher) => {
            if matcher.is_match(text) {
                let mut replaced = String::with_capacity(text.len());
                let mut last = 0;
                for m in matcher.find_iter(text) {
                    replaced.push_str(&text[last..m.start()]);
                    replaced.push_str(&seen.masks[m.pattern().as_usize()]);
                    last = m.end();
                }
                replaced.push_str(&text[last..]);
                out = Cow::Owned(replaced);
            }
        }
        None => {
            for (form, mask) in seen.forms.iter().zip(&seen.masks) {
                if out.contains(form.as_str()) {
                    out = Cow::Owned(out.replace(form.as_str(), mask));
                }
            }
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

/// True when `text` holds a registered secret in any form; used to re-wrap vendor answers
/// that echo a secret back.
pub fn contains_secret(text: &str) -> bool {
    let seen = SEEN.read().unwrap_or_else(|e| e.into_inner());
    match &seen.matcher {
        Some(matcher) => matcher.is_match(text),
        None => seen.forms.iter().any(|f| text.contains(f.as_str())),
    }
}

/// Forgets every registered value. Only the fuzz target has it: each input must be judged
/// alone, not against the masks of earlier inputs.
#[cfg(feature = "fuzzing")]
pub fn forget_all() {
    let mut seen = SEEN.write().unwrap_or_else(|e| e.into_inner());
    seen.forms.clear();
    seen.masks.clear();
    seen.matcher = None;
}

pub fn strip_markers(text: &str) -> String {
    text.chars().filter(|c| *c != MARK).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

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

    #[test]
    fn escaped_and_encoded_forms_are_masked() {
        let secret = "ab/cd\"ef\\gh\né+ü 0003&x=y";
        register(secret);
        let json = serde_json::to_string(secret).unwrap();
        let out = redact(&json);
        assert_eq!(out, format!("\"{}\"", crate::mask(secret)));
        let forms = [
            json.replace('/', "\\/"),
            format!("{secret:?}"),
            percent_encoded(secret, true, false, &[]),
            percent_encoded(secret, false, true, &[]),
            STANDARD.encode(secret),
            URL_SAFE.encode(format!("x{secret}")),
            STANDARD.encode(format!("xy{secret}tail")),
        ];
        for form in forms {
            let out = redact(&form);
            assert!(out.contains("secret(…"), "not masked: {form:?} -> {out:?}");
        }
    }

    /// RFC 3986 lets a client percent-encode unreserved characters too: `~` as `%7E` (before:
    /// shown in errors, --json, the journal, the audit log, runs and evidence).
    #[test]
    fn percent_encoded_unreserved_characters_are_masked() {
        let secret = "tok~en-with.all_0005";
        register(secret);
        for form in [
            "tok%7Een-with.all_0005",
            "tok%7Een%2Dwith%2Eall%5F0005",
            "tok%7een%2dwith%2eall%5f0005",
            "tok~en%2dwith.all_0005",
            &secret
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>(),
        ] {
            let out = redact(form);
            assert_eq!(out, crate::mask(secret), "not masked: {form}");
        }
    }

    #[test]
    fn each_long_line_of_a_multi_line_secret_is_masked() {
        let pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7redact0004\n-----END KEY-----";
        register(pem);
        let printed: String = pem.lines().map(|l| format!("[step] {l}\n")).collect();
        let out = redact(&printed);
        assert!(!out.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "{out}");
        assert!(!out.contains("BKcwggSjAgEAAoIBAQC7redact0004"), "{out}");
        // The short framing lines stay readable.
        assert!(out.contains("-----END KEY-----"));
    }

    #[test]
    fn base64_at_every_alignment() {
        let secret = "b64-secret-value-0005";
        register(secret);
        for prefix in ["", "a", "ab", "abc"] {
            for engine in [&STANDARD, &URL_SAFE] {
                let text = engine.encode(format!("{prefix}{secret}!!"));
                assert!(redact(&text).contains("secret(…"), "{prefix:?}: {text}");
            }
        }
    }
}
