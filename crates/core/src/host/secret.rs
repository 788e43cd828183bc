//! The `Secret` type in scripts and the `secret::` module.

use super::value::{self, throw};
use super::{Effect, Host, HostFn, ModuleBuilder};
use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, NativeCallContext};
use runbook_secret::{Secret, Source, MARK};
use std::rc::Rc;

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

pub fn register(engine: &mut Engine, _host: &Rc<Host>, registry: &mut Vec<HostFn>) {
    engine
        .register_type_with_name::<Secret>("Secret")
        // `${token}` calls to_string: mark the text so vendor-bound strings can refuse it.
        .register_fn("to_string", |s: &mut Secret| {
            format!("{MARK}{}{MARK}", s.masked())
        })
        .register_fn("to_debug", |s: &mut Secret| s.masked())
        .register_fn("==", |a: Secret, b: Secret| a == b)
        .register_fn("!=", |a: Secret, b: Secret| a != b)
        .register_fn(
            "==",
            |_: Secret, _: ImmutableString| -> Result<bool, Box<EvalAltResult>> {
                Err(no_compare())
            },
        )
        .register_fn(
            "==",
            |_: ImmutableString, _: Secret| -> Result<bool, Box<EvalAltResult>> {
                Err(no_compare())
            },
        )
        .register_fn(
            "+",
            |_: ImmutableString, _: Secret| -> Result<Dynamic, Box<EvalAltResult>> {
                Err(no_concat())
            },
        )
        .register_fn(
            "+",
            |_: Secret, _: ImmutableString| -> Result<Dynamic, Box<EvalAltResult>> {
                Err(no_concat())
            },
        )
        .register_fn(
            "+",
            |_: Secret, _: Secret| -> Result<Dynamic, Box<EvalAltResult>> { Err(no_concat()) },
        )
        .register_fn(
            "+=",
            |_: &mut ImmutableString, _: Secret| -> Result<(), Box<EvalAltResult>> {
                Err(no_concat())
            },
        )
        .register_fn(
            "append",
            |_: &mut ImmutableString, _: Secret| -> Result<(), Box<EvalAltResult>> {
                Err(no_concat())
            },
        );

    let mut methods = ModuleBuilder::new("", registry);
    methods.method(
        "Secret",
        "fingerprint",
        &[],
        "string",
        "A short hash of the value (`sha256:` + 12 hex digits): tells two values apart without showing them.",
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
    methods.finish(engine);

    let mut m = ModuleBuilder::new("secret", registry);
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
        "fingerprint",
        Effect::None,
        &["secret: Secret"],
        "string",
        "A short hash of the secret (`sha256:` + 12 hex digits): tells two values apart without showing them.",
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
    m.finish(engine);
}
