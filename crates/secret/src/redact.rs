//! The process-wide redactor: every secret value seen in this run is replaced by its mask in
//! anything we print or write. It is global on purpose: an output path that forgets to ask
//! for it is the bug we are guarding against.
//!
//! A value is searched for in the forms it takes on its way out without anyone meaning to
//! encode it: JSON and Rust-debug escaping, percent-encoding, base64 (standard and URL-safe,
//! at every byte alignment, so a secret inside a larger encoded blob is found too), hex, and
//! each long line of a multi-line value (a PEM key printed with a prefix on every line).
//!
//! Encodings a writer may apply to any subset of characters (percent-escapes, JSON `\u`
//! escapes, HTML character references) and line breaks inside a value cannot be listed as
//! examples: the text is also searched in a decoded view ([`View`]), where each of those
//! is undone and line breaks are dropped, and what matches there is masked in the text.

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
    matcher: Option<Matcher>,
    /// Values were added since `matcher` was built: it is rebuilt before the next search,
    /// once, however many values a discovery scan registered in between.
    stale: bool,
    /// Every value registered: one registered again adds nothing. (A value equal to another's
    /// encoded form, say a token in the other letter case, is still a value of its own, with
    /// forms of its own.)
    values: std::collections::BTreeSet<String>,
}

static SEEN: RwLock<Patterns> = RwLock::new(Patterns {
    forms: Vec::new(),
    masks: Vec::new(),
    matcher: None,
    stale: false,
    values: std::collections::BTreeSet::new(),
});

/// Remembers a secret value so that later output is redacted, in every encoded form.
pub fn register(value: &str) {
    SEEN.write().unwrap_or_else(|e| e.into_inner()).add(value);
}

/// The patterns, with the matcher built for every value registered so far. Only a guard
/// that sees the matcher current is returned: between building it and reading, another
/// thread may register a value (re-sorting the masks the matcher's ids index).
fn current() -> std::sync::RwLockReadGuard<'static, Patterns> {
    loop {
        let seen = SEEN.read().unwrap_or_else(|e| e.into_inner());
        if !seen.stale {
            return seen;
        }
        drop(seen);
        SEEN.write().unwrap_or_else(|e| e.into_inner()).build();
    }
}

impl Patterns {
    #[cfg(test)]
    const fn new() -> Patterns {
        Patterns {
            forms: Vec::new(),
            masks: Vec::new(),
            matcher: None,
            stale: false,
            values: std::collections::BTreeSet::new(),
        }
    }

    /// Forgets every value, and that it was registered.
    #[cfg(any(test, feature = "fuzzing"))]
    fn clear(&mut self) {
        self.forms.clear();
        self.masks.clear();
        self.matcher = None;
        self.stale = false;
        self.values.clear();
    }

    fn add(&mut self, value: &str) {
        if value.len() < MIN_LEN {
            return;
        }
        let seen = self;
        if !seen.values.insert(value.to_string()) {
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
        seen.forms = forms;
        seen.masks = masks;
        seen.stale = true;
    }

    /// Builds the matcher, if values were added since it was last built.
    fn build(&mut self) {
        if !self.stale {
            return;
        }
        // Building cannot fail for a few thousand short patterns; if it ever did, redact
        // falls back to plain search.
        self.matcher = Matcher::build(&self.forms);
        self.stale = false;
    }
}

/// Forms are searched for by their first `PREFIX` bytes, and compared whole where one of
/// those starts. Building the automaton costs by the bytes it holds: over whole forms it
/// was 0.4 ms for the few values of a rotation (34–54 forms, 5–7 KB: percent-encoded and
/// hex forms are two and three times the value), built again as values are registered, and a PEM key's forms
/// alone hold tens of kilobytes. Every form is at least `MIN_LEN` long, so no prefix is
/// shorter than that.
const PREFIX: usize = 24;

struct Matcher {
    /// Over the distinct prefixes; every occurrence is reported (overlapping), since the
    /// form a prefix starts may not be there in full while another's is.
    prefixes: AhoCorasick,
    /// For each prefix, the forms (indices into `Patterns::forms`) that start with it,
    /// longest first.
    forms_of: Vec<Vec<usize>>,
}

impl Matcher {
    fn build(forms: &[String]) -> Option<Matcher> {
        let mut prefixes: Vec<&[u8]> = Vec::new();
        let mut index: std::collections::HashMap<&[u8], usize> = Default::default();
        let mut forms_of: Vec<Vec<usize>> = Vec::new();
        // `forms` is longest first, and so each prefix's list.
        for (i, form) in forms.iter().enumerate() {
            let prefix = &form.as_bytes()[..form.len().min(PREFIX)];
            let at = *index.entry(prefix).or_insert_with(|| {
                prefixes.push(prefix);
                forms_of.push(Vec::new());
                prefixes.len() - 1
            });
            forms_of[at].push(i);
        }
        // A contiguous NFA: a DFA took a quarter of a rotation's CPU to build and searches
        // the short texts we redact no faster that matters.
        let prefixes = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&prefixes)
            .ok()?;
        Some(Matcher { prefixes, forms_of })
    }

    /// Every place a form shows in `hay` whole, lazily: (start, end, form), the longest
    /// form at each place a prefix starts. Places may overlap; `found` merges them.
    fn places<'h>(
        &'h self,
        forms: &'h [String],
        hay: &'h [u8],
    ) -> impl Iterator<Item = (usize, usize, usize)> + 'h {
        self.prefixes
            .find_overlapping_iter(hay)
            .filter_map(move |m| {
                let rest = &hay[m.start()..];
                self.forms_of[m.pattern().as_usize()]
                    .iter()
                    .find(|&&f| rest.starts_with(forms[f].as_bytes()))
                    .map(|&f| (m.start(), m.start() + forms[f].len(), f))
            })
    }

    fn find(&self, forms: &[String], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        self.places(forms, hay).collect()
    }

    fn is_match(&self, forms: &[String], hay: &[u8]) -> bool {
        self.places(forms, hay).next().is_some()
    }
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
    // In the other letter case: a vendor that echoes a UUID or hex token may normalise it
    // (they are case-blind), and an uppercased token still shows most of it.
    add(value.to_ascii_uppercase());
    add(value.to_ascii_lowercase());
    // Hex, as a digest or a byte dump prints it.
    add(value.bytes().map(|b| format!("{b:02x}")).collect());
    add(value.bytes().map(|b| format!("{b:02X}")).collect());
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

/// `text` with what writers legitimately encode undone: percent-escapes (`%7e`, `%7E`),
/// JSON escapes (`\u0041`, surrogate pairs, `\"`, `\/`), HTML character references
/// (`&#65;`, `&#x41;`, `&amp;`), and line breaks (raw, or `\n` escaped) dropped so a value
/// split across lines is whole again. Each byte of the view remembers the span of `text`
/// it came from, so a match in the view masks exactly that text.
struct View {
    bytes: Vec<u8>,
    /// Where in the text each byte of the view starts, and how long its source is (an
    /// escape is at most 12 bytes).
    from: Vec<u32>,
    lens: Vec<u8>,
}

/// One way of writing text a view undoes; each view undoes one, so a value that itself
/// holds what looks like another's escape (`%09` inside a JSON string) still matches.
#[derive(Clone, Copy, PartialEq)]
enum Scheme {
    /// Line breaks only.
    Lines,
    Percent,
    /// Percent-escapes, and `+` for a space as HTML forms write one.
    Form,
    Json,
    Html,
}

impl Scheme {
    /// The views worth building for `text`: those whose escapes it holds.
    fn for_text(text: &str) -> Vec<Scheme> {
        let mut out = Vec::new();
        if text.contains(['\n', '\r']) {
            out.push(Scheme::Lines);
        }
        if text.contains('%') {
            out.push(Scheme::Percent);
        }
        if text.contains('+') {
            out.push(Scheme::Form);
        }
        if text.contains('\\') {
            out.push(Scheme::Json);
        }
        if text.contains('&') {
            out.push(Scheme::Html);
        }
        out
    }
}

impl View {
    /// The view of `text` with `scheme` undone and line breaks dropped.
    fn of(text: &str, scheme: Scheme) -> View {
        let percent = matches!(scheme, Scheme::Percent | Scheme::Form);
        let b = text.as_bytes();
        let mut view = View {
            bytes: Vec::with_capacity(b.len()),
            from: Vec::with_capacity(b.len()),
            lens: Vec::with_capacity(b.len()),
        };
        let hex = |s: &[u8]| -> Option<u32> {
            let s = std::str::from_utf8(s).ok()?;
            u32::from_str_radix(s, 16).ok()
        };
        let mut i = 0;
        while i < b.len() {
            let rest = &b[i..];
            // A percent-escape: one byte.
            if percent && rest[0] == b'%' && rest.len() >= 3 {
                if let Some(v) = hex(&rest[1..3])
                    .filter(|_| rest[1].is_ascii_hexdigit() && rest[2].is_ascii_hexdigit())
                {
                    // An encoded line break inside a value is dropped, as a raw one is
                    // (`%0A` splitting a wrapped base64 form).
                    if v != u32::from(b'\n') && v != u32::from(b'\r') {
                        view.push(v as u8, i, i + 3);
                    }
                    i += 3;
                    continue;
                }
            }
            if scheme == Scheme::Json && rest[0] == b'\\' && rest.len() >= 2 {
                match rest[1] {
                    b'u' if rest.len() >= 6 => {
                        if let Some(unit) = hex(&rest[2..6]) {
                            // A surrogate pair is two escapes for one character.
                            let pair = (0xD800..0xDC00).contains(&unit)
                                && rest.len() >= 12
                                && rest[6] == b'\\'
                                && rest[7] == b'u';
                            let (c, len) = match pair.then(|| hex(&rest[8..12])).flatten() {
                                Some(low) if (0xDC00..0xE000).contains(&low) => (
                                    char::from_u32(
                                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00),
                                    ),
                                    12,
                                ),
                                _ => (char::from_u32(unit), 6),
                            };
                            if let Some(c) = c {
                                if c != '\n' && c != '\r' {
                                    view.push_char(c, i, i + len);
                                }
                                i += len;
                                continue;
                            }
                        }
                    }
                    b'n' | b'r' => {
                        // An escaped line break inside a value: dropped, as a raw one is.
                        i += 2;
                        continue;
                    }
                    b'"' | b'\\' | b'/' | b'\'' => {
                        view.push(rest[1], i, i + 2);
                        i += 2;
                        continue;
                    }
                    b't' => {
                        view.push(b'\t', i, i + 2);
                        i += 2;
                        continue;
                    }
                    _ => {}
                }
            }
            if scheme == Scheme::Html && rest[0] == b'&' {
                if let Some((c, len)) = html_reference(rest) {
                    if c != '\n' && c != '\r' {
                        view.push_char(c, i, i + len);
                    }
                    i += len;
                    continue;
                }
            }
            if rest[0] == b'\n' || rest[0] == b'\r' {
                i += 1;
                continue;
            }
            if scheme == Scheme::Form && rest[0] == b'+' {
                view.push(b' ', i, i + 1);
                i += 1;
                continue;
            }
            view.push(rest[0], i, i + 1);
            i += 1;
        }
        view
    }

    fn push(&mut self, byte: u8, start: usize, end: usize) {
        self.bytes.push(byte);
        self.from.push(start as u32);
        self.lens.push((end - start) as u8);
    }

    fn push_char(&mut self, c: char, start: usize, end: usize) {
        let mut buf = [0u8; 4];
        for byte in c.encode_utf8(&mut buf).bytes() {
            self.push(byte, start, end);
        }
    }

    /// Where the view's byte `i` ends in the text.
    fn end_of(&self, i: usize) -> usize {
        self.from[i] as usize + self.lens[i] as usize
    }

    /// The spans of the original text behind each match, with the pattern matched.
    fn spans(&self, matcher: &Matcher, forms: &[String]) -> Vec<(usize, usize, usize)> {
        matcher
            .find(forms, &self.bytes)
            .into_iter()
            .filter(|(start, end, _)| end > start)
            .map(|(start, end, form)| (self.from[start] as usize, self.end_of(end - 1), form))
            .collect()
    }
}

/// An HTML character reference at the start of `text` (`&#65;`, `&#x41;`, `&amp;`,
/// `&lt;`, `&gt;`, `&quot;`, `&apos;`): the character and the reference's length.
fn html_reference(text: &[u8]) -> Option<(char, usize)> {
    let end = text.iter().take(12).position(|b| *b == b';')?;
    let body = std::str::from_utf8(&text[1..end]).ok()?;
    let c = if let Some(n) = body.strip_prefix("#x").or_else(|| body.strip_prefix("#X")) {
        char::from_u32(u32::from_str_radix(n, 16).ok()?)?
    } else if let Some(n) = body.strip_prefix('#') {
        char::from_u32(n.parse().ok()?)?
    } else {
        match body {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

/// Where in `text` a registered secret shows, in any form, plainly or through the view:
/// sorted, overlapping spans merged; each with the mask of its secret.
fn found(matcher: &Matcher, forms: &[String], text: &str) -> Vec<(usize, usize, usize)> {
    let mut spans = matcher.find(forms, text.as_bytes());
    for scheme in Scheme::for_text(text) {
        spans.extend(View::of(text, scheme).spans(matcher, forms));
    }
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.0 < last.1 => last.1 = last.1.max(s.1),
            _ => merged.push(s),
        }
    }
    // A span cut inside a character (a view byte of a multi-byte escape) widens to it.
    merged
        .into_iter()
        .map(|(mut a, mut b, p)| {
            while a > 0 && !text.is_char_boundary(a) {
                a -= 1;
            }
            while b < text.len() && !text.is_char_boundary(b) {
                b += 1;
            }
            (a, b, p)
        })
        .collect()
}

/// Replaces every registered secret value (in any encoded form) with its mask and drops
/// interpolation markers.
pub fn redact(text: &str) -> Cow<'_, str> {
    current().redact(text)
}

impl Patterns {
    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let seen = self;
        let mut out = Cow::Borrowed(text);
        match &seen.matcher {
            Some(matcher) => {
                let spans = found(matcher, &seen.forms, text);
                if !spans.is_empty() {
                    let mut replaced = String::with_capacity(text.len());
                    let mut last = 0;
                    for (start, end, pattern) in spans {
                        if start < last {
                            continue;
                        }
                        replaced.push_str(&text[last..start]);
                        replaced.push_str(&seen.masks[pattern]);
                        last = end;
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
}

/// Redacts every string inside a JSON value, object keys included (a vendor may key its
/// answer by a token).
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => {
            map.values_mut().for_each(redact_json);
            redact_keys(map);
        }
        _ => {}
    }
}

/// Masks the keys of `map`, in place and in order. Two keys can mask alike (same last 4
/// characters): the later one gets a `#2`, `#3`… suffix rather than replacing the first.
fn redact_keys(map: &mut serde_json::Map<String, serde_json::Value>) {
    let masked: Vec<Option<String>> = map
        .keys()
        .map(|k| match redact(k) {
            Cow::Owned(r) => Some(r),
            Cow::Borrowed(_) => None,
        })
        .collect();
    if masked.iter().all(Option::is_none) {
        return;
    }
    for ((key, value), masked) in std::mem::take(map).into_iter().zip(masked) {
        let base = masked.unwrap_or(key);
        let mut key = base.clone();
        let mut n = 2;
        while map.contains_key(&key) {
            key = format!("{base}#{n}");
            n += 1;
        }
        map.insert(key, value);
    }
}

/// True when `text` holds a registered secret in any form; used to re-wrap vendor answers
/// that echo a secret back.
pub fn contains_secret(text: &str) -> bool {
    let seen = current();
    match &seen.matcher {
        Some(matcher) => {
            matcher.is_match(&seen.forms, text.as_bytes())
                || Scheme::for_text(text)
                    .into_iter()
                    .any(|s| matcher.is_match(&seen.forms, &View::of(text, s).bytes))
        }
        None => seen.forms.iter().any(|f| text.contains(f.as_str())),
    }
}

/// Forgets every registered value. Only the fuzz target has it: each input must be judged
/// alone, not against the masks of earlier inputs.
#[cfg(feature = "fuzzing")]
pub fn forget_all() {
    SEEN.write().unwrap_or_else(|e| e.into_inner()).clear();
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

    /// A vendor may key its answer by a token; two keys that mask alike are both kept.
    #[test]
    fn json_keys_are_redacted_and_none_is_lost() {
        register("redact-json-key-one-0009");
        register("redact-json-key-two-0009");
        let mut v = serde_json::json!({
            "first": 1,
            "redact-json-key-one-0009": {"x redact-json-key-two-0009": true},
            "redact-json-key-two-0009": 2,
            "secret(…0009)#2": 3,
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert_eq!(
            text,
            r##"{"first":1,"secret(…0009)":{"x secret(…0009)":true},"secret(…0009)#2":2,"secret(…0009)#2#2":3}"##
        );
    }

    /// A UUID token echoed in capitals (a vendor that normalises it) is masked as well.
    #[test]
    fn a_token_in_the_other_letter_case_is_masked() {
        let token = "9f3c2a7b-41d8-4e2a-b6c1-5d7e8f9a0011";
        register(token);
        let upper = token.to_ascii_uppercase();
        assert_eq!(
            redact(&format!("invalid token {upper}")),
            format!("invalid token {}", crate::mask(token))
        );
        assert!(contains_secret(&upper));
        let mixed = "Mixed-Case-Token-Value-0012";
        register(mixed);
        assert_eq!(
            redact(&mixed.to_ascii_lowercase()),
            crate::mask(mixed).to_string()
        );
    }

    /// A value registered after another whose encoded form it equals (a token pasted in upper
    /// case, then the vendor's lower-case one) gets forms of its own: its base64 is masked
    /// too. Before, registering it stopped at "already a form" (cold review).
    #[test]
    fn a_value_equal_to_another_values_form_gets_forms_of_its_own() {
        use base64::Engine as _;
        let upper = "7A1C2E3D-41D8-4E2A-B6C1-5D7E8F9A0013";
        register(upper);
        let lower = upper.to_ascii_lowercase();
        register(&lower);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&lower);
        assert!(contains_secret(&b64), "{b64}");
    }

    /// A value split by an encoded line break (`%0A`, a JSON `\u000a`, an HTML `&#10;`: a
    /// wrapped base64 block, a canonicalised XML attribute) is masked as one split by a raw
    /// break is. Before, only raw breaks and `\n` were dropped (cold review).
    #[test]
    fn a_value_split_by_an_encoded_line_break_is_masked() {
        let secret = "Zq7mK2pLr8sT1u2v3w4xY5z6";
        register(secret);
        for text in [
            "token=Zq7mK2pLr8sT%0Au2v3w4xY5z6".replace("sT%0Au", "sT1%0Au"),
            r#"{"v":"Zq7mK2pLr8sT1u2v\u000a3w4xY5z6"}"#.to_string(),
            "<a v=\"Zq7mK2pLr8sT1u2v&#10;3w4xY5z6\"/>".to_string(),
            "<a v=\"Zq7mK2pLr8sT1u2v&#xD;&#xA;3w4xY5z6\"/>".to_string(),
        ] {
            let out = redact(&text);
            assert!(!out.contains("Zq7mK2pLr8"), "{text} -> {out}");
            assert!(contains_secret(&text), "{text}");
        }
    }

    /// Forgetting every value forgets that it was registered too: registered again, it is
    /// masked again. Before, the set of registered values outlived `forget_all`, and a value
    /// registered a second time got no forms (the fuzz target found it).
    #[test]
    fn a_value_forgotten_and_registered_again_is_masked() {
        let mut p = Patterns::new();
        p.add("Qw8rTy2uIo4pAs6d");
        p.clear();
        assert!(p.forms.is_empty());
        p.add("Qw8rTy2uIo4pAs6d");
        assert!(p.forms.iter().any(|f| f == "Qw8rTy2uIo4pAs6d"));
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

    /// Forms are found by their first bytes and then compared whole: a text that starts like
    /// a secret and goes on otherwise is left alone, two secrets that begin alike are each
    /// found, and so is one that starts inside text that began like it.
    #[test]
    fn forms_that_begin_alike_are_told_apart() {
        let mut patterns = Patterns::new();
        let a = "shared-prefix-0123456789-abcdefghij-first";
        let b = "shared-prefix-0123456789-abcdefghij-second-and-longer";
        patterns.add(a);
        patterns.add(b);
        patterns.build();
        let near = "shared-prefix-0123456789-abcdefghij-fir";
        assert_eq!(
            patterns.redact(&format!("x {near} y")),
            format!("x {near} y")
        );
        assert_eq!(
            patterns.redact(&format!("{a} {b}")),
            format!("{} {}", crate::mask(a), crate::mask(b))
        );
        assert_eq!(
            patterns.redact(&format!("shared-prefix-{b}")),
            format!("shared-prefix-{}", crate::mask(b))
        );
        // A secret that starts inside the first bytes of another's near miss: the search
        // must report overlapping starts (a non-overlapping one resumes after the miss).
        let c = "prefix-0123456789-abcdefghij-xyz";
        patterns.add(c);
        patterns.build();
        assert_eq!(
            patterns.redact("shared-prefix-0123456789-abcdefghij-xyz"),
            format!("shared-{}", crate::mask(c))
        );
        // Percent-encoded, the two differ only after the prefix the matcher holds.
        let encoded = percent_encoded(b, true, false, b"-");
        assert_eq!(patterns.redact(&encoded), crate::mask(b));
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

/// Secrets and the encodings a writer may legally give them, generated: every one must be
/// masked. Shared by the unit test (bounded, in `cargo test` and so in CI) and the `redact`
/// fuzz target (unbounded).
#[cfg(any(test, feature = "fuzzing"))]
pub mod generated {
    /// A small deterministic generator (xorshift64*), seeded per case.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        pub fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    /// A secret of 4 to 40 characters: letters, digits, URL punctuation, spaces, quotes,
    /// slashes, and now and then a non-ASCII or astral character.
    pub fn secret(rng: &mut Rng) -> String {
        const POOL: &[char] = &[
            'a', 'Z', 'q', '7', '0', '-', '.', '_', '~', '+', '/', '=', ' ', '"', '\'', '&', '<',
            '%', '\\', ':', '@', '?', '#', 'é', 'ü', '→', '😀', 'k', 'X', '9',
        ];
        let n = 4 + rng.below(37);
        (0..n).map(|_| POOL[rng.below(POOL.len())]).collect()
    }

    fn percent_byte(b: u8, upper: bool) -> String {
        if upper {
            format!("%{b:02X}")
        } else {
            format!("%{b:02x}")
        }
    }

    /// One encoding of `secret`, chosen by `rng`, as a list of units (a unit is never split
    /// by a line break), and its name for failure messages.
    pub fn encoded(secret: &str, rng: &mut Rng) -> (&'static str, Vec<String>) {
        use base64::Engine as _;
        match rng.below(7) {
            // Percent-encoding of any subset of bytes, in either case; `+` for a space as
            // forms write it.
            0 => {
                let form = rng.chance(30);
                let units = secret
                    .bytes()
                    .map(|b| {
                        let must = !b.is_ascii_alphanumeric() && !b"-._~".contains(&b);
                        if b == b' ' && form {
                            "+".to_string()
                        } else if must || rng.chance(40) {
                            percent_byte(b, rng.chance(50))
                        } else {
                            (b as char).to_string()
                        }
                    })
                    .collect();
                ("percent", units)
            }
            // JSON: escaped as JSON must be, and any other character as \uXXXX.
            1 => {
                let units = secret
                    .chars()
                    .map(|c| {
                        let mut buf = [0u16; 2];
                        let as_u = |buf: &mut [u16; 2], upper: bool| {
                            c.encode_utf16(buf)
                                .iter()
                                .map(|u| {
                                    if upper {
                                        format!("\\u{u:04X}")
                                    } else {
                                        format!("\\u{u:04x}")
                                    }
                                })
                                .collect::<String>()
                        };
                        match c {
                            '"' => "\\\"".to_string(),
                            '\\' => "\\\\".to_string(),
                            '/' if rng.chance(50) => "\\/".to_string(),
                            _ if rng.chance(40) || (c as u32) < 0x20 => {
                                as_u(&mut buf, rng.chance(50))
                            }
                            _ => c.to_string(),
                        }
                    })
                    .collect();
                ("json", units)
            }
            // HTML character references: decimal, hex, or the named five.
            2 => {
                let units = secret
                    .chars()
                    .map(|c| {
                        let named = match c {
                            '&' => Some("&amp;"),
                            '<' => Some("&lt;"),
                            '>' => Some("&gt;"),
                            '"' => Some("&quot;"),
                            '\'' => Some("&apos;"),
                            _ => None,
                        };
                        match (named, rng.below(4)) {
                            (Some(n), 0) | (Some(n), 1) => n.to_string(),
                            (_, 0) => format!("&#{};", c as u32),
                            (_, 1) => format!("&#x{:x};", c as u32),
                            (_, 2) => format!("&#X{:X};", c as u32),
                            _ if named.is_some() => format!("&#{};", c as u32),
                            _ => c.to_string(),
                        }
                    })
                    .collect();
                ("html", units)
            }
            // Hex, either case.
            3 => {
                let upper = rng.chance(50);
                let units = secret
                    .bytes()
                    .map(|b| {
                        if upper {
                            format!("{b:02X}")
                        } else {
                            format!("{b:02x}")
                        }
                    })
                    .collect();
                ("hex", units)
            }
            // Base64 of the secret inside a larger message, at any alignment, standard or
            // URL-safe, padded or not; a unit is four characters (a MIME line break falls
            // between them).
            4 => {
                let mut bytes: Vec<u8> = (0..rng.below(3)).map(|i| b'A' + i as u8).collect();
                bytes.extend_from_slice(secret.as_bytes());
                bytes.extend((0..rng.below(3)).map(|i| b'a' + i as u8));
                let engine = match rng.below(4) {
                    0 => base64::engine::general_purpose::STANDARD,
                    1 => base64::engine::general_purpose::URL_SAFE,
                    2 => base64::engine::general_purpose::STANDARD_NO_PAD,
                    _ => base64::engine::general_purpose::URL_SAFE_NO_PAD,
                };
                let text = engine.encode(&bytes);
                let units = text
                    .as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                ("base64", units)
            }
            // Rust's `{:?}` of the value.
            5 => {
                let d = format!("{secret:?}");
                ("debug", vec![d[1..d.len() - 1].to_string()])
            }
            // As it is.
            _ => ("raw", secret.chars().map(String::from).collect()),
        }
    }

    /// The units joined, a line break (`\n`, `\r\n`, or JSON's escaped `\n`) put between
    /// two of them now and then: a value split across lines.
    pub fn joined(units: &[String], rng: &mut Rng, json: bool) -> String {
        let mut out = String::new();
        for (i, u) in units.iter().enumerate() {
            if i > 0 && rng.chance(8) {
                out.push_str(match (json, rng.below(2)) {
                    (true, 0) => "\\n",
                    (_, 0) => "\n",
                    _ => "\r\n",
                });
            }
            out.push_str(u);
        }
        out
    }
}

#[cfg(test)]
mod generated_tests {
    use super::generated::{encoded, joined, secret, Rng};
    use super::*;

    /// Three thousand secrets, each in one generated encoding inside text: none reaches the
    /// redacted output, whether read as it stands or decoded.
    #[test]
    fn every_generated_encoding_of_a_secret_is_masked() {
        for case in 0..3_000u64 {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (case + 1).wrapping_mul(0x1000_0001));
            let value = secret(&mut rng);
            let (how, units) = encoded(&value, &mut rng);
            let shown = joined(&units, &mut rng, how == "json");
            let text = format!("before {shown} after");
            // A registry of its own: the global one is shared with the tests running beside.
            let mut patterns = Patterns::new();
            patterns.add(&value);
            patterns.build();
            let out = patterns
                .redact(&text)
                .replace(&crate::mask(&value), "\u{1}");
            assert!(
                !out.contains(&shown),
                "case {case} ({how}): {value:?} as {shown:?} shown in {out:?}"
            );
            for scheme in [
                Scheme::Lines,
                Scheme::Percent,
                Scheme::Form,
                Scheme::Json,
                Scheme::Html,
            ] {
                let decoded = View::of(&out, scheme).bytes;
                assert!(
                    !decoded.windows(value.len()).any(|w| w == value.as_bytes()),
                    "case {case} ({how}): {value:?} as {shown:?} readable in {out:?}"
                );
            }
        }
    }
}
