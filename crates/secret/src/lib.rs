//! Secrets as opaque values, and the redactor every output passes through.

mod controls;
mod redact;

pub use controls::neutralise;

#[cfg(feature = "fuzzing")]
pub use redact::forget_all;
pub use redact::{contains_secret, redact, redact_json, register, strip_markers, MARK};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// Where a secret value came from; journalled next to its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Prompt { id: String },
    Answers { id: String },
    Env { name: String },
    Param { name: String },
    Infisical { name: String, version: Option<u64> },
    Vendor { what: String },
    Literal,
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
        }
    }
}

/// An opaque secret value. Displays as `secret(…ab12)`; the value itself is only reachable
/// through [`Secret::expose`], which host code calls at the moment it talks to a vendor.
#[derive(Clone)]
pub struct Secret {
    value: Arc<SecretString>,
    source: Source,
}

impl Secret {
    /// Wraps a value and registers it with the redactor, so no output can show it.
    pub fn new(value: impl Into<String>, source: Source) -> Self {
        let value: String = value.into();
        register(&value);
        Secret {
            value: Arc::new(SecretString::from(value)),
            source,
        }
    }

    /// Wraps one value of a bulk read that mixes secrets with plain settings (a Heroku app's
    /// config vars). The value is opaque either way, but only values that look like
    /// credentials join the output redactor: masking every "production" or "staging" in
    /// the output would hide what the operator needs to read.
    pub fn from_bulk(value: impl Into<String>, source: Source) -> Self {
        let value: String = value.into();
        if looks_like_credential(&value) {
            register(&value);
        }
        Secret {
            value: Arc::new(SecretString::from(value)),
            source,
        }
    }

    /// The raw value, for building a vendor request. Never format it.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
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
