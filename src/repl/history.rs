//! What the REPL's history file may keep. Never a line that shows a secret value, nor one
//! that hands a quoted literal to a `secret::` function: that literal is a value being made
//! secret, and when the call fails (a typo) it is registered nowhere.

/// Whether the history may keep `input`, an input that compiled.
pub fn may_keep(input: &str) -> bool {
    !input.trim().is_empty()
        && holds_no_secret(input)
        && !passes_literal_to_secret(input)
        && !quotes_a_credential(input)
}

/// Whether a quoted literal in `text` holds a word shaped like a credential: a token pasted
/// into a variable (`let t = "hhhh8888-36c7-…"`, `"Bearer …"`, JSON with escaped quotes) is
/// registered nowhere, and the history kept it (hostile review; a second reading). Names,
/// words and plain URLs are kept.
fn quotes_a_credential(text: &str) -> bool {
    literals(text).iter().any(|literal| {
        literal
            .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '{' | '}' | ','))
            .any(credential_word)
    })
}

/// The contents of `text`'s quoted literals (`"…"` or `` `…` ``), escapes taken.
fn literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' && c != '`' {
            continue;
        }
        let mut literal = String::new();
        while let Some(d) = chars.next() {
            match d {
                '\\' => literal.extend(chars.next()),
                d if d == c => break,
                d => literal.push(d),
            }
        }
        out.push(literal);
    }
    out
}

/// A word of a literal that is a credential: a long one not shaped like a name; in a URL, a
/// password, a key in its query, or a path segment so shaped (a webhook's secret path).
fn credential_word(word: &str) -> bool {
    let word = word.trim_matches(|c: char| matches!(c, ':' | ';' | '(' | ')' | '[' | ']'));
    if word.starts_with("https://") || word.starts_with("http://") {
        let path = word.split_once("://").map_or("", |(_, rest)| rest);
        return runbook_secret::url_has_password(word)
            || word.contains('?')
            || path.split('/').skip(1).any(long_and_unnamed);
    }
    long_and_unnamed(word)
}

fn long_and_unnamed(word: &str) -> bool {
    word.chars().count() >= 16 && !runbook_core::text::names_something(word)
}

/// Whether `text` shows no value registered as secret.
fn holds_no_secret(text: &str) -> bool {
    runbook_secret::redact(text) == text
}

/// Whether `text` calls a `secret::` function with a quoted string among its arguments, at
/// any depth (`secret::from_text("…")`, `secret :: form_text(f(`…`))`).
fn passes_literal_to_secret(text: &str) -> bool {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(at) = text[from..].find("secret") {
        let start = from + at;
        from = start + "secret".len();
        if start > 0 && is_ident(text.as_bytes()[start - 1]) {
            continue;
        }
        let Some(rest) = text[from..].trim_start().strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        let name = rest.bytes().take_while(|b| is_ident(*b)).count();
        if name == 0 {
            continue;
        }
        if let Some(args) = rest[name..].trim_start().strip_prefix('(') {
            if quoted_before_close(args) {
                return true;
            }
        }
    }
    false
}

/// Whether a string quote opens in `args` before the bracket that closes the argument list
/// they begin.
fn quoted_before_close(args: &str) -> bool {
    let mut depth = 0usize;
    for c in args.chars() {
        match c {
            '"' | '`' => return true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_handed_to_secret_is_not_kept() {
        for line in [
            r#"let t = secret::form_text("tok-123");"#,
            r#"secret::from_text("tok-123")"#,
            "secret :: from_text ( `tok-${1}` )",
            r#"let t = secret::compose(["a:", x, "@host"]);"#,
            r#"f(secret::nope(g(1), h("tok")))"#,
            "let t = secret::from_text(\n  \"tok-123\"\n);",
            r#"let pasted = "hhhh8888-36c7-4561-9e35-1e368654e105";"#,
            "let k = `SG.canaryKEY0123456789abc`;",
            r#"http::get("https://u:pw@example.com/x")"#,
            r#"let h = #{ Authorization: "Bearer hhhh8888-36c7-4561-9e35-1e368654e105" };"#,
            r#"let b = "{\"api_key\":\"tok_AAAAbbbbCCCCdddd1111eeee\"}";"#,
            r#"http::post("https://hooks.slack.com/services/T000/B000/XyZ9aB8cD7eF6gH5iJ4kL3mN", #{})"#,
        ] {
            assert!(!may_keep(line), "kept: {line}");
        }
    }

    #[test]
    fn other_lines_are_kept() {
        for line in [
            "secret::from_text(early)",
            r#"secret::from_env(NAME) + "x""#,
            r#"mysecret::from_text("not the secret module")"#,
            r#"let secret = "a"; secret"#,
            "40 + 2",
            r#"heroku::config("raxx-api-prod")"#,
            r#"infisical::secret("SENDGRID_ADMIN_API_KEY")"#,
            r#"http::get("https://api.example.com/v1/keys/list")"#,
            r#"print("the new token is staged now")"#,
        ] {
            assert!(may_keep(line), "dropped: {line}");
        }
        assert!(!may_keep("   "));
    }
}
