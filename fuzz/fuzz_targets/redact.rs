//! Random secrets × encodings × surrounding text: the redacted output never shows the value.
//! Input layout: [encoding] [prefix len] [suffix len] then text, split into prefix, secret
//! and suffix (lengths in characters).
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fn percent(value: &str, upper: bool, form: bool) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' if form => "+".to_string(),
            _ if upper => format!("%{b:02X}"),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

/// The redactor's rule for the lines of a multi-line secret it searches for on their own.
fn distinctive(line: &str) -> bool {
    let mut d: Vec<char> = line.chars().collect();
    d.sort_unstable();
    d.dedup();
    line.len() >= 16 && d.len() >= 8 && !line.starts_with("-----")
}

/// A generated secret in a generated encoding (percent-escapes of any subset, JSON `\u`
/// escapes, HTML references, hex, base64 at any alignment, split across lines), seeded by
/// the input: neither the encoded form nor the value itself is readable after redaction.
fn generated_case(data: &[u8]) {
    use runbook_secret::generated::{encoded, joined, secret, Rng};
    let mut seed = [0u8; 8];
    for (i, b) in data.iter().take(8).enumerate() {
        seed[i] = *b;
    }
    let mut rng = Rng(u64::from_le_bytes(seed) | 1);
    let value = secret(&mut rng);
    let (how, units) = encoded(&value, &mut rng);
    let shown = joined(&units, &mut rng, how == "json");
    runbook_secret::forget_all();
    runbook_secret::register(&value);
    let out = runbook_secret::redact(&format!("before {shown} after"))
        .replace(&runbook_secret::mask(&value), "\u{1}");
    assert!(!out.contains(&shown), "{how}: {value:?} as {shown:?} shown in {out:?}");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    if data[0] % 11 == 10 {
        generated_case(&data[1..]);
        return;
    }
    let (how, pre, post) = (data[0] % 10, data[1] as usize % 8, data[2] as usize % 8);
    let Ok(rest) = std::str::from_utf8(&data[3..]) else {
        return;
    };
    let chars: Vec<char> = rest.chars().collect();
    if chars.len() < pre + post + 1 {
        return;
    }
    let prefix: String = chars[..pre].iter().collect();
    let secret: String = chars[pre..chars.len() - post].iter().collect();
    let suffix: String = chars[chars.len() - post..].iter().collect();
    // Below the redactor's floor a value is not searched for; markers are dropped anyway.
    // U+0001 is reserved for the mask stand-in below.
    if secret.len() < 4 || secret.contains(runbook_secret::MARK) || secret.contains('\u{1}') {
        return;
    }
    runbook_secret::forget_all();
    runbook_secret::register(&secret);
    let b64 = |bytes: &[u8], url: bool| {
        let engine = if url {
            &base64::engine::general_purpose::URL_SAFE
        } else {
            &base64::engine::general_purpose::STANDARD
        };
        engine.encode(bytes)
    };
    let json = serde_json::to_string(&secret).unwrap_or_default();
    let mut needles = vec![secret.clone()];
    let shown = match how {
        0 => format!("{prefix}{secret}{suffix}"),
        1 | 2 => {
            let j = if how == 2 { json.replace('/', "\\/") } else { json.clone() };
            needles.push(j[1..j.len() - 1].to_string());
            format!("{prefix}{j}{suffix}")
        }
        3 => {
            let d = format!("{secret:?}");
            needles.push(d[1..d.len() - 1].to_string());
            format!("{prefix}{d}{suffix}")
        }
        4 | 5 => {
            let p = percent(&secret, how == 4, how == 5);
            needles.push(p.clone());
            format!("{prefix}{p}{suffix}")
        }
        6 | 7 => {
            // The secret inside a larger encoded blob, at any byte alignment.
            let url = how == 7;
            if prefix.len() % 3 == 0 {
                let whole = b64(secret.as_bytes(), url);
                needles.push(whole[..secret.len() * 4 / 3].to_string());
            }
            needles.retain(|n| n != &secret);
            b64(format!("{prefix}{secret}{suffix}").as_bytes(), url)
        }
        8 => {
            needles.clear();
            needles.extend(secret.lines().map(str::trim).filter(|l| distinctive(l)).map(String::from));
            secret.lines().map(|l| format!("{prefix}| {l}{suffix}\n")).collect()
        }
        _ => {
            let j = serde_json::json!({ "k": format!("{prefix}{secret}{suffix}") }).to_string();
            let d = format!("{j:?}");
            d
        }
    };
    let out = runbook_secret::redact(&shown);
    // The mask shows up to four characters of the value by design; judge the rest.
    // A stand-in the secret cannot span, so text on both sides of a mask stays apart.
    let out = out.replace(&runbook_secret::mask(&secret), "\u{1}");
    for needle in needles.iter().filter(|n| n.len() >= 4) {
        assert!(
            !out.contains(needle.as_str()),
            "visible {needle:?} in {out:?} (shown {shown:?})"
        );
    }
});
