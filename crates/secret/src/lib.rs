//! Secrets as opaque values, and the redactor every output passes through.

mod controls;
mod echo;
mod redact;

pub use controls::{is_invisible, json_visible, neutralise, one_line};
pub use echo::without_values;

pub use redact::{contains_secret, redact, redact_json, register, strip_markers, MARK};
#[cfg(feature = "fuzzing")]
pub use redact::{forget_all, generated};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// Where a secret value came from; journalled next to its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Prompt {
        id: String,
    },
    Answers {
        id: String,
    },
    Env {
        name: String,
    },
    Param {
        name: String,
    },
    Infisical {
        name: String,
        version: Option<u64>,
    },
    Vendor {
        what: String,
    },
    Literal,
    /// Text the script made a Secret (`secret::from_text`), e.g. an identifier a vendor
    /// returned as text that is stored where only Secrets go.
    Text,
    /// Drawn by `secret::random`.
    Generated,
    /// Text and Secrets joined by `secret::compose`.
    Composed,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Prompt { id } => write!(f, "prompt '{id}'"),
            Source::Answers { id } => write!(f, "answers file entry '{id}'"),
            Source::Env { name } => write!(f, "environment variable {name}"),
            Source::Param { name } => write!(f, "param '{name}'"),
            Source::Infisical {
                name,
                version: Some(v),
            } => write!(f, "Infisical secret {name} (version {v})"),
            Source::Infisical {
                name,
                version: None,
            } => write!(f, "Infisical secret {name}"),
            Source::Vendor { what } => write!(f, "{what}"),
            Source::Literal => write!(f, "a literal in the script"),
            Source::Text => write!(f, "text the script made a Secret"),
            Source::Generated => write!(f, "a value secret::random generated"),
            Source::Composed => write!(f, "a value secret::compose joined"),
        }
    }
}

/// An opaque secret value. Displays as `secret(…ab12)`; the value itself is only reachable
/// through [`Secret::expose`], which host code calls at the moment it talks to a vendor.
#[derive(Clone)]
pub struct Secret {
    value: Arc<SecretString>,
    source: Source,
    /// Whether the redactor knows the value (an opaque bulk value joins it once sent).
    registered: bool,
}

impl Secret {
    /// Wraps a value and registers it with the redactor, so no output can show it.
    pub fn new(value: impl Into<String>, source: Source) -> Self {
        let value: String = value.into();
        register(&value);
        Secret {
            value: Arc::new(SecretString::from(value)),
            source,
            registered: true,
        }
    }

    /// Wraps one value (of field `name`) of a bulk read that mixes secrets with plain
    /// settings (a Heroku app's config vars). The value is opaque either way, but only
    /// credentials (`bulk_value_is_secret`) join the output redactor: masking every
    /// "production" or "us-east-1" in the output, and in the journal, would hide what the
    /// operator needs to read and change the values a resumed run reads back.
    pub fn from_bulk(name: &str, value: impl Into<String>, source: Source) -> Self {
        let value: String = value.into();
        let registered = bulk_value_is_secret(name, &value);
        if registered {
            register(&value);
        }
        Secret {
            value: Arc::new(SecretString::from(value)),
            source,
            registered,
        }
    }

    /// The raw value, for building a vendor request. Never format it.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// The raw value as a request a script built sends it: an opaque bulk value joins the
    /// redactor now, so an answer that echoes it back (an error quoting what it was sent)
    /// comes back masked instead of laundering it into text.
    pub fn expose_to_send(&self) -> &str {
        if !self.registered {
            register(self.expose());
        }
        self.expose()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn with_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    pub fn len(&self) -> usize {
        self.expose().chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// A short, stable hash of the value: enough to tell two tokens apart in a journal.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.expose())
    }

    /// Whether this is the value a journalled fingerprint was made from.
    pub fn matches_fingerprint(&self, fp: &str) -> bool {
        fingerprint_matches(self.expose(), fp)
    }

    /// The redacted form, `secret(…ab12)`.
    pub fn masked(&self) -> String {
        mask(self.expose())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Constant-time enough for our purpose: compare the hashes, not the bytes.
        Sha256::digest(self.expose().as_bytes()) == Sha256::digest(other.expose().as_bytes())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Long values, or values mixing letters with digits, symbols or case, are treated as
/// credentials; short plain words ("production", "web") are not.
/// Whether a value of a bulk read (a config var `name` = `value`) is a credential: by the
/// name first (`*_KEY`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`...: a credential; `*_REGION`,
/// `*_ENV`, `*_HOST`...: a setting), a URL with a password in it, else by the value's
/// shape (long, or mixing letters and digits with high entropy). An already registered
/// secret is one whatever its name.
pub fn bulk_value_is_secret(name: &str, value: &str) -> bool {
    // Short words match whole words only ("PIN" is not in "SHIPPING").
    const SECRET_EXACT: &[&str] = &["PW", "PIN", "OTP", "SEED", "MFA"];
    const SECRET_WORDS: &[&str] = &[
        "HOOK",
        "SIGNING",
        "KEY",
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "PWD",
        "PASS",
        "CRED",
        "AUTH",
        "PRIVATE",
        "CERT",
        "SALT",
        "SIGNATURE",
        "DSN",
        "COOKIE",
        "SESSION",
    ];
    if contains_secret(value) {
        return true;
    }
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    if words
        .iter()
        .any(|w| SECRET_EXACT.contains(w) || SECRET_WORDS.iter().any(|s| w.contains(s)))
    {
        return true;
    }
    if url_has_password(value) {
        return true;
    }
    if names_a_setting(name) || upper.ends_with("_URL") {
        // A setting, unless its value is unmistakably random.
        return value.chars().count() >= 40 && entropy(value) >= 4.5;
    }
    looks_like_credential(value) && (value.chars().count() >= 20 || entropy(value) >= 3.0)
}

/// Whether a bulk-read value is clearly a plain setting, to be shown as text: not a
/// credential by name, URL or registration, and either named as a setting (`*_REGION`,
/// `*_ENV`, `*_SID`...) or shaped like a word. Anything in between stays an opaque Secret
/// (shown masked), without joining the redactor.
pub fn bulk_value_is_plain(name: &str, value: &str) -> bool {
    if bulk_value_is_secret(name, value) {
        return false;
    }
    names_a_setting(name) || !looks_like_credential(value)
}

/// Whether a var's last word names a setting: `AWS_REGION`, `RAPTOR_ENV`, `ACCOUNT_SID`.
fn names_a_setting(name: &str) -> bool {
    const SETTING_WORDS: &[&str] = &[
        "REGION",
        "ENV",
        "ENVIRONMENT",
        "NAME",
        "HOST",
        "HOSTNAME",
        "PORT",
        "LEVEL",
        "MODE",
        "DOMAIN",
        "LOCALE",
        "LANG",
        "TZ",
        "TIMEZONE",
        "STACK",
        "VERSION",
        "SIZE",
        "COUNT",
        "TIMEOUT",
        "CONCURRENCY",
        "WORKERS",
        "THREADS",
        "SID",
        "ACCOUNT",
        "BUCKET",
        "QUEUE",
        "EMAIL",
        "SENDER",
        "FROM",
        "ORIGIN",
        "PATH",
        "DIR",
        "ENABLED",
        "DISABLED",
        "FLAG",
    ];
    let upper = name.to_ascii_uppercase();
    let last = upper
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    SETTING_WORDS.contains(&last)
}

/// `scheme://user:password@host`.
pub fn url_has_password(value: &str) -> bool {
    value
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Shannon entropy in bits per character.
fn entropy(value: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in value.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

pub(crate) fn looks_like_credential(value: &str) -> bool {
    let n = value.chars().count();
    if n >= 20 {
        return true;
    }
    if n < 8 {
        return false;
    }
    let plain_word = value.chars().all(|c| c.is_ascii_lowercase())
        || value.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    !plain_word
}

/// The key fingerprints are made with: the state directory's own (see
/// `set_fingerprint_key`), else one drawn for this process, so that a fingerprint never is
/// a plain hash a short secret (a PIN) can be recovered from by trying every value.
static FINGERPRINT_KEY: std::sync::RwLock<Option<[u8; 32]>> = std::sync::RwLock::new(None);

/// Sets the key for every later fingerprint: the random key kept in the state directory,
/// so that journals and audit entries written there compare across processes.
pub fn set_fingerprint_key(key: [u8; 32]) {
    *FINGERPRINT_KEY.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
}

fn fingerprint_key() -> [u8; 32] {
    if let Some(k) = *FINGERPRINT_KEY.read().unwrap_or_else(|e| e.into_inner()) {
        return k;
    }
    let key = random_key();
    let mut slot = FINGERPRINT_KEY.write().unwrap_or_else(|e| e.into_inner());
    *slot.get_or_insert(key)
}

/// 32 bytes from the kernel's random source.
pub fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut key = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key));
    if read.is_err() {
        // No /dev/urandom (a bare chroot): still unguessable enough for a per-process key,
        // and never a fixed one.
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            std::process::id(),
            &key
        );
        key.copy_from_slice(&Sha256::digest(seed.as_bytes()));
    }
    key
}

/// `hmac:` and the first 24 hex digits (96 bits) of the value's HMAC-SHA-256 under the
/// state's key.
pub fn fingerprint(value: &str) -> String {
    use hmac::{Mac, SimpleHmac};
    let key = fingerprint_key();
    let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("hmac:{hex}")
}

/// Whether `value` is the one `fp` was made from: a keyed fingerprint, or the unkeyed
/// `sha256:` form that journals written before keyed fingerprints hold.
pub fn fingerprint_matches(value: &str, fp: &str) -> bool {
    if fp.starts_with("sha256:") {
        let digest = Sha256::digest(value.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return format!("sha256:{hex}") == fp;
    }
    fingerprint(value) == fp
}

/// Shows at most the last 4 characters, fewer for short values, none for very short ones.
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    let shown = match n {
        0..=7 => 0,
        8..=15 => 2,
        _ => 4,
    };
    let tail: String = value.chars().skip(n - shown).collect();
    format!("secret(…{tail})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_show_at_most_four_chars() {
        assert_eq!(mask("0123456789abcdef"), "secret(…cdef)");
        assert_eq!(mask("01234567"), "secret(…67)");
        assert_eq!(mask("abc"), "secret(…)");
        assert_eq!(mask(""), "secret(…)");
    }

    #[test]
    fn display_and_debug_never_show_the_value() {
        let s = Secret::new("tok-0123456789-secretvalue", Source::Literal);
        assert_eq!(format!("{s}"), "secret(…alue)");
        assert_eq!(format!("{s:?}"), "secret(…alue)");
    }

    #[test]
    fn bulk_values_join_the_redactor_only_when_they_look_like_credentials() {
        assert!(looks_like_credential(
            "c0ffee00-0000-4000-8000-00000000c001"
        ));
        assert!(looks_like_credential("postgres://u:p@h/db"));
        assert!(looks_like_credential("Hunter2Hunter2"));
        assert!(!looks_like_credential("production"));
        assert!(!looks_like_credential("staging"));
        assert!(!looks_like_credential("RAPTOR_ENV"));
    }

    #[test]
    fn bulk_values_are_secrets_by_name_and_shape_not_by_length_alone() {
        for (name, value) in [
            ("AWS_REGION", "us-east-1"),
            ("RAPTOR_ENV", "production"),
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("DATABASE_HOST", "db-1.internal.example.com"),
            ("WEB_CONCURRENCY", "2"),
            ("SHIPPING_ZONE", "eu-west"),
            ("API_BASE_URL", "https://api.example.com/v2"),
        ] {
            assert!(!bulk_value_is_secret(name, value), "{name}={value}");
        }
        for (name, value) in [
            ("ADMIN_PW", "Tr0ub4dor"),
            (
                "ZAPIER_WEBHOOK_URL",
                "https://hooks.zapier.com/hooks/catch/123/abc",
            ),
            ("AWS_SECRET_ACCESS_KEY", "short"),
            ("AWS_ACCESS_KEY_ID", "AKIASANDBOXCURRENT01"),
            (
                "POSTMARK_SERVER_TOKEN",
                "c0ffee00-0000-4000-8000-00000000c001",
            ),
            ("DATABASE_URL", "postgres://app:hunter2@db/app"),
            ("MAILCO", "k9Xq2LmP7vRt4WzB"),
        ] {
            assert!(bulk_value_is_secret(name, value), "{name}={value}");
        }
    }

    #[test]
    fn only_clear_settings_come_back_as_text() {
        assert!(bulk_value_is_plain("AWS_REGION", "us-east-1"));
        assert!(bulk_value_is_plain("RAPTOR_ENV", "production"));
        assert!(bulk_value_is_plain(
            "TWILIO_ACCOUNT_SID",
            "AC0123456789abcdef0123456789abcdef"
        ));
        // Neither clearly a setting nor clearly a credential: kept opaque.
        assert!(!bulk_value_is_plain("MISC", "Tr0ub4dor"));
        assert!(!bulk_value_is_plain("ADMIN_PW", "Tr0ub4dor"));
    }

    #[test]
    fn fingerprints_are_keyed_stable_and_96_bits() {
        assert_eq!(fingerprint("a"), fingerprint("a"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("a").len(), "hmac:".len() + 24);
        // Not the plain hash: without the key, a PIN cannot be found by trying them all.
        assert!(!fingerprint("123456").contains("8d969eef6eca"));
        // Journals from before keyed fingerprints still match their value.
        assert!(fingerprint_matches("123456", "sha256:8d969eef6eca"));
        assert!(!fingerprint_matches("123457", "sha256:8d969eef6eca"));
        assert!(fingerprint_matches("123456", &fingerprint("123456")));
    }
}
