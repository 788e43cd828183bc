//! The `Secret` type in scripts and the `secret::` module.

use super::Effect;
use super::Placeholder;
use crate::engine::registry::{global_fn, Registrar};
use crate::value::{self, throw};
use rhai::{Dynamic, EvalAltResult, ImmutableString, NativeCallContext};
use runbook_secret::{Secret, Source, MARK};

pub(crate) fn no_concat() -> Box<EvalAltResult> {
    throw(
        "secret",
        "a Secret cannot be concatenated with a string",
        Some("pass the Secret itself to the host function that needs it (e.g. as a header value); it is never turned into text".into()),
    )
}

fn no_compare() -> Box<EvalAltResult> {
    throw(
        "secret",
        "a Secret can only be compared with another Secret",
        Some("compare fingerprints instead: `token.fingerprint() == other.fingerprint()`".into()),
    )
}

fn from_env(name: &str) -> Result<Secret, Box<EvalAltResult>> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(
            v,
            Source::Env {
                name: name.to_string(),
            },
        )),
        _ => Err(throw(
            "usage",
            format!("environment variable {name} is not set"),
            Some(format!("export {name}=... before running the runbook")),
        )),
    }
}

/// The characters `secret::random` draws from: a named set, or the characters given.
fn alphabet(name: &str) -> Result<Vec<char>, Box<EvalAltResult>> {
    let set: Vec<char> = match name {
        "alnum" => ('a'..='z').chain('A'..='Z').chain('0'..='9').collect(),
        "hex" => ('0'..='9').chain('a'..='f').collect(),
        "base64url" => ('A'..='Z')
            .chain('a'..='z')
            .chain('0'..='9')
            .chain(['-', '_'])
            .collect(),
        "digits" => ('0'..='9').collect(),
        other => {
            let mut chars: Vec<char> = other.chars().collect();
            chars.sort_unstable();
            chars.dedup();
            chars
        }
    };
    if set.len() < 2 {
        return Err(throw(
            "usage",
            "secret::random: the alphabet needs at least two different characters",
            Some(
                "name a set (\"alnum\", \"hex\", \"base64url\", \"digits\") or give the characters"
                    .into(),
            ),
        ));
    }
    Ok(set)
}

/// `len` characters drawn uniformly from `alphabet` with the operating system's generator
/// (rejection sampling: no character is likelier than another).
fn random(len: i64, alphabet_name: &str) -> Result<Secret, Box<EvalAltResult>> {
    if !(8..=4096).contains(&len) {
        return Err(throw(
            "usage",
            format!("secret::random: a length of {len}; give 8 to 4096 characters"),
            None,
        ));
    }
    let set = alphabet(alphabet_name)?;
    let n = set.len() as u32;
    // The largest multiple of n that fits in a byte pair: draws above it are thrown away.
    let limit = (65536 / n) * n;
    let mut out = String::with_capacity(len as usize);
    let mut buf = [0u8; 256];
    while out.chars().count() < len as usize {
        getrandom::getrandom(&mut buf).map_err(|e| {
            throw(
                "runtime",
                format!("secret::random: the system's random generator failed: {e}"),
                None,
            )
        })?;
        for pair in buf.chunks_exact(2) {
            let draw = u32::from(u16::from_le_bytes([pair[0], pair[1]]));
            if draw < limit && out.chars().count() < len as usize {
                out.push(set[(draw % n) as usize]);
            }
        }
    }
    Ok(Secret::new(out, Source::Generated))
}

/// A Secret made of text and Secrets in order: a URL or connection string with a credential
/// inside, which never exists as plain text in the script.
fn compose(parts: rhai::Array) -> Result<Secret, Box<EvalAltResult>> {
    let mut out = String::new();
    let mut any_secret = false;
    // Under --dry-run a part a skipped write would have produced makes the whole a dry-run
    // Secret: the plan goes on, and nothing real is composed.
    if let Some(p) = parts
        .iter()
        .find_map(|p| p.read_lock::<Placeholder>().map(|p| p.origin.clone()))
    {
        return Ok(super::vendor_call::dry_run_secret(&format!(
            "secret::compose with {p}"
        )));
    }
    for (i, p) in parts.into_iter().enumerate() {
        if let Some(s) = p.clone().try_cast::<Secret>() {
            out.push_str(s.expose());
            any_secret = true;
        } else if p.is_string() {
            // A part built with `${secret}` holds the mask: composed, it would be sent so.
            out.push_str(&value::plain_string(
                &p.to_string(),
                &format!("secret::compose part {i}"),
            )?);
        } else if p.is_int() || p.is_float() {
            out.push_str(&p.to_string());
        } else {
            return Err(throw(
                "usage",
                format!(
                    "secret::compose: part {i} is a {}, not text or a Secret",
                    p.type_name()
                ),
                None,
            ));
        }
    }
    if !any_secret {
        return Err(throw(
            "usage",
            "secret::compose: no part is a Secret",
            Some("for text alone use a string; secret::from_text(s) makes a Secret of text".into()),
        ));
    }
    Ok(Secret::new(out, Source::Composed))
}

pub(crate) fn register(reg: &mut Registrar) {
    let g = reg.global();
    g.set_custom_type::<Secret>("Secret");
    global_fn(g, "to_string", |s: &mut Secret| {
        format!("{MARK}{}{MARK}", s.masked())
    });
    global_fn(g, "to_debug", |s: &mut Secret| s.masked());
    global_fn(g, "==", |a: Secret, b: Secret| a == b);
    global_fn(g, "!=", |a: Secret, b: Secret| a != b);
    // What a script must not do with a Secret and a string: compare them (a guess checked
    // against the value) or join them (the value copied into a plain string).
    macro_rules! refused {
        ($op:literal, $a:ty, $b:ty, $out:ty, $why:ident) => {
            global_fn(g, $op, |_: $a, _: $b| -> Result<$out, Box<EvalAltResult>> {
                Err($why())
            });
        };
    }
    refused!("==", Secret, ImmutableString, bool, no_compare);
    refused!("==", ImmutableString, Secret, bool, no_compare);
    refused!("+", ImmutableString, Secret, Dynamic, no_concat);
    refused!("+", Secret, ImmutableString, Dynamic, no_concat);
    refused!("+", Secret, Secret, Dynamic, no_concat);
    refused!("+=", &mut ImmutableString, Secret, (), no_concat);
    refused!("append", &mut ImmutableString, Secret, (), no_concat);

    let mut methods = reg.module("");
    methods.method(
        "Secret",
        "fingerprint",
        &[],
        "string",
        "A keyed hash of the value (`hmac:` + 24 hex digits, HMAC-SHA-256 under the state directory's key): tells two values apart without showing them, and a short value cannot be found from it by trying every candidate.",
        |s: &mut Secret| s.fingerprint(),
    );
    methods.method(
        "Secret",
        "masked",
        &[],
        "string",
        "The value masked as `secret(…ab12)`: what printing a Secret shows.",
        |s: &mut Secret| s.masked(),
    );
    methods.method(
        "Secret",
        "source",
        &[],
        "string",
        "Where the value came from (an Infisical secret, a prompt, an environment variable...).",
        |s: &mut Secret| s.source().to_string(),
    );
    methods.finish();

    let mut m = reg.module("secret");
    m.add(
        "from_env",
        Effect::Read,
        &["name: string"],
        "Secret",
        "Reads a secret from an environment variable; fails if it is unset or empty.",
        |c: NativeCallContext, name: &str| -> Result<Secret, Box<EvalAltResult>> {
            value::at(&c, from_env(name))
        },
    );
    m.add(
        "from_text",
        Effect::None,
        &["text: string"],
        "Secret",
        "Makes a Secret of text the script holds: an identifier a vendor returned as text (an access\nkey id) that goes where only Secrets go (`infisical::set_secret`). From here every output\nmasks it. Empty text is refused.",
        |text: &str| -> Result<Secret, Box<EvalAltResult>> {
            if text.is_empty() {
                return Err(throw(
                    "usage",
                    "secret::from_text: the text is empty",
                    Some("a Secret holds a value: check what the script passed".into()),
                ));
            }
            // Text built with `${secret}` holds the mask, not the value: a Secret of it would
            // be written to vendors so (a connection string broken everywhere).
            let text = value::plain_string(text, "the text given to secret::from_text")?;
            Ok(Secret::new(text, Source::Text))
        },
    );
    m.add(
        "from_text",
        Effect::None,
        &["text: Placeholder"],
        "Secret",
        "Under --dry-run, text a skipped write would have returned (a created key's id): a dry-run\nSecret, so the plan goes on.",
        |p: Placeholder| super::vendor_call::dry_run_secret(&format!("secret::from_text({})", p.origin)),
    );
    m.add(
        "random",
        Effect::None,
        &["length: int", "alphabet: string"],
        "Secret",
        "A new random value of `length` characters (8 to 4096) drawn uniformly by the operating\nsystem's generator from `alphabet`: \"alnum\", \"hex\", \"base64url\", \"digits\", or the characters\nthemselves (e.g. \"abc123!#\"): a generated database password, say. It exists only as a Secret.",
        random,
    );
    m.add(
        "compose",
        Effect::None,
        &["parts: Array"],
        "Secret",
        "A Secret made of `parts` in order, text and Secrets (at least one): a URL or connection\nstring with a credential inside, e.g. `secret::compose([\"postgres://app:\", password,\n\"@db.internal:5432/app\"])`. The whole is masked in every output, like its secret parts.",
        compose,
    );
    m.add(
        "fingerprint",
        Effect::None,
        &["secret: Secret"],
        "string",
        "A keyed hash of the secret (`hmac:` + 24 hex digits, HMAC-SHA-256 under the state directory's key): tells two values apart without showing them, and a short value cannot be found from it by trying every candidate.",
        |s: Secret| s.fingerprint(),
    );
    m.add(
        "is_secret",
        Effect::None,
        &["value: ?"],
        "bool",
        "True when the value is a Secret.",
        |v: Dynamic| v.is::<Secret>(),
    );
    m.finish();
}
