//! Text echoed in messages, kept to a size a terminal can show; text hashed for comparison.

/// At most `max` characters of `text`, with `…` when cut: identifiers and values echoed
/// in messages (a 3 MB "name" must not fill the terminal).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// SHA-256 of `bytes` in lower-case hex: the hash runbook hashes, journals and signed
/// texts are compared by.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON read only to check that no object in it names a key twice (serde_json keeps the
/// last, so a hash over the parse cannot tell): deserializing fails on a repeated key.
pub struct NoRepeatedKeys;

impl<'de> serde::Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoRepeatedKeysVisitor)
    }
}

struct NoRepeatedKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeysVisitor {
    type Value = NoRepeatedKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_unit<E>(self) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<NoRepeatedKeys, A::Error> {
        while a.next_element::<NoRepeatedKeys>()?.is_some() {}
        Ok(NoRepeatedKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<NoRepeatedKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = a.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("a key written twice"));
            }
            a.next_value::<NoRepeatedKeys>()?;
        }
        Ok(NoRepeatedKeys)
    }
}

/// Whether a param's text value names or locates a credential rather than holding one: each
/// item of a list is a name, or a URL (whose own credentials, a password or a key in its
/// query, the URL checks judge).
pub fn names_or_locates(value: &str) -> bool {
    value.split(',').map(str::trim).all(|item| {
        names_something(item) || item.starts_with("https://") || item.starts_with("http://")
    })
}

/// Whether `value` is shaped like a name (`SENDGRID_ADMIN_API_KEY`, `raxx-prod/api`,
/// `AUTH0_MGMT_CLIENT_SECRET`, `POSTMARK_TOKEN_20240601`), not like a credential: words joined
/// by `_ - . / ,` or spaces, each of letters, of digits (up to 8: a date), of up to four
/// letters and digits, or, in a name of several words or in capitals, letters then up to
/// five digits (`OAUTH2`, `ED25519`). A token (`tok_AAAAbbbb1111`, a UUID, hex, `hunter2`)
/// has a part that mixes them otherwise, or a long number. Nothing ("") names nothing and
/// holds nothing.
pub fn names_something(value: &str) -> bool {
    let parts: Vec<&str> = value
        .split(|c: char| matches!(c, '_' | '-' | '.' | '/' | ',') || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    let several = parts.len() > 1;
    parts.iter().all(|part| {
        let letters = part.chars().take_while(|c| c.is_alphabetic()).count();
        let rest = &part[part
            .char_indices()
            .nth(letters)
            .map_or(part.len(), |(i, _)| i)..];
        let word_then_number = letters >= 2
            && !rest.is_empty()
            && rest.len() <= 5
            && rest.chars().all(|c| c.is_ascii_digit())
            && (several || part.chars().all(|c| !c.is_lowercase()));
        rest.is_empty()
            || (letters == 0 && part.len() <= 8 && part.chars().all(|c| c.is_ascii_digit()))
            || (part.chars().count() <= 4 && part.chars().all(char::is_alphanumeric))
            || word_then_number
    })
}

/// Names of environment variables that hold credentials: a credential's name, a webhook's
/// (its URL is the credential) or a DSN's (a connection string with its password).
pub fn credential_env(name: &str) -> bool {
    credential_like(name) || url_is_credential(name)
}

/// Names of values whose URL is itself the credential: a webhook's (`SLACK_WEBHOOK_URL`,
/// `deploy_hook`: whoever has it can post) or a DSN's (a connection string with its
/// password). Its timeout or channel is not one.
pub fn url_is_credential(name: &str) -> bool {
    let n = name.to_lowercase();
    let setting = SETTINGS.iter().any(|s| n.ends_with(s)) && !n.ends_with("_url");
    let hook = n
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "hook");
    (n.contains("webhook") || n.contains("dsn") || hook) && !setting
}

/// Whether a text value is a URL (`scheme://...`), as a webhook's or a DSN's is.
pub fn is_url(value: &str) -> bool {
    value.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    })
}

/// Suffixes of names that are settings about something (`WEBHOOK_TIMEOUT_SECONDS`,
/// `TOKEN_TTL`, `SECRET_ENV`), not the thing.
const SETTINGS: &[&str] = &[
    "_id",
    "_ids",
    "_name",
    "_at",
    "_count",
    "_version",
    "_url",
    "_type",
    "_path",
    "_ttl",
    "_env",
    "_environment",
    "_expiry",
    "_expires",
    "_days",
    "_secs",
    "_seconds",
    "_length",
    "_size",
    "_region",
    "_scope",
    "_scopes",
    "_timeout",
    "_channel",
];

/// Whether a name's suffix says it is a setting about something (`_id`, `_ttl`, `_url`).
pub fn names_a_setting(name: &str) -> bool {
    let n = name.to_lowercase();
    SETTINGS.iter().any(|s| n.ends_with(s))
}

/// Names of values that hold credentials, when nothing better is known.
pub fn credential_like(name: &str) -> bool {
    let n = name.to_lowercase();
    if names_a_setting(&n) {
        return false;
    }
    let words = [
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "apikey",
        "api_key",
        "private_key",
    ];
    n == "key" || n.ends_with("_key") || words.iter().any(|w| n.contains(w))
}

#[cfg(test)]
mod names_tests {
    use super::names_something;

    /// A webhook's or a DSN's URL is the credential; a setting about one is not.
    #[test]
    fn a_webhooks_url_is_told_from_a_setting_about_it() {
        for name in [
            "SLACK_WEBHOOK_URL",
            "deploy_hook",
            "hook",
            "sentry_dsn",
            "webhook",
        ] {
            assert!(super::url_is_credential(name), "{name}");
        }
        for name in [
            "webhook_timeout",
            "hook_channel",
            "hooks_enabled_count",
            "hooks_url",
            "hooked",
            "api_url",
        ] {
            assert!(!super::url_is_credential(name), "{name}");
        }
        assert!(super::is_url("https://hooks.slack.com/services/T/B/x"));
        assert!(super::is_url("postgres://u:p@h/db"));
        for text in ["DEPLOY_HOOK_URL", "://x", "https://", "a b://c"] {
            assert!(!super::is_url(text), "{text}");
        }
    }

    /// Names of secrets and settings, against values shaped like credentials.
    #[test]
    fn a_name_is_told_from_a_credential_by_its_shape() {
        for name in [
            "",
            "none",
            "SENDGRID_ADMIN_API_KEY",
            "DB_PASSWORD_V2",
            "raxx-prod/api",
            "Bearer",
            "S3_KEY",
            "AUTH0_MGMT_CLIENT_SECRET",
            "OAUTH2_CLIENT_SECRET",
            "ED25519_PRIVATE_KEY",
            "POSTMARK_TOKEN_20240601",
            "auth0-client-secret",
            "A,B",
            "86400",
            "my secret name",
        ] {
            assert!(names_something(name), "{name}");
        }
        for value in [
            "tok_AAAAbbbbCCCCdddd1111eeee",
            "5f1b2c3d-1111-4222-8333-944455556666",
            "hunter2",
            "SG.canaryKEY0123456789",
            "3bf751ac94e0",
            "123456789012",
        ] {
            assert!(!names_something(value), "{value}");
        }
    }
}
