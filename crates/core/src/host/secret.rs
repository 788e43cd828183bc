//! The `Secret` type in scripts and the `secret::` module.

use super::Effect;
use crate::engine::registry::{global_fn, Registrar};
use crate::value::{self, throw};
use rhai::{Dynamic, EvalAltResult, ImmutableString, NativeCallContext};
use runbook_secret::{Secret, Source, MARK};

fn no_concat() -> Box<EvalAltResult> {
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
            Ok(Secret::new(text, Source::Text))
        },
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
