//! `--dry-run` values. A write (or a read that needs a value only a write would produce)
//! returns a `Placeholder`: any property of it is a placeholder too, and comparisons with it
//! hold, so the rest of the step runs and every later write is recorded in the plan.

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Placeholder {
    /// What would have produced the value, e.g. `postmark::send_email`.
    pub origin: String,
    /// Properties whose value is known even without the write (e.g. a response field the
    /// script declared secret is a dry-run `Secret`, so host functions that take a Secret
    /// accept it).
    fields: BTreeMap<String, Dynamic>,
}

impl Placeholder {
    /// A placeholder value standing for what `origin` would have produced.
    pub fn of(origin: impl Into<String>) -> Dynamic {
        Dynamic::from(Placeholder {
            origin: origin.into(),
            fields: BTreeMap::new(),
        })
    }

    /// A placeholder with some properties known.
    pub fn with_fields(origin: impl Into<String>, fields: BTreeMap<String, Dynamic>) -> Dynamic {
        Dynamic::from(Placeholder {
            origin: origin.into(),
            fields,
        })
    }

    fn get(&self, key: &str) -> Dynamic {
        match self.fields.get(key) {
            Some(v) => v.clone(),
            None => Placeholder::of(format!("{}.{key}", self.origin)),
        }
    }
}

pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Placeholder>("Placeholder")
        .register_indexer_get(|p: &mut Placeholder, key: &str| p.get(key))
        .register_indexer_get(|p: &mut Placeholder, i: i64| {
            Placeholder::of(format!("{}[{i}]", p.origin))
        })
        .register_fn("to_string", |p: &mut Placeholder| {
            format!("<dry-run: {}>", p.origin)
        })
        .register_fn("to_debug", |p: &mut Placeholder| {
            format!("<dry-run: {}>", p.origin)
        })
        .register_fn("len", |p: &mut Placeholder| {
            Placeholder::of(format!("{}.len()", p.origin))
        })
        .register_fn("contains", |_: &mut Placeholder, _: Dynamic| true)
        .register_fn("==", |_: Placeholder, _: Dynamic| true)
        .register_fn("==", |_: Dynamic, _: Placeholder| true)
        .register_fn("!=", |_: Placeholder, _: Dynamic| true)
        .register_fn("!=", |_: Dynamic, _: Placeholder| true)
        .register_fn("+", |p: Placeholder, _: Dynamic| Dynamic::from(p))
        .register_fn("+", |_: ImmutableString, p: Placeholder| Dynamic::from(p))
        .register_fn("ensure", |_: Placeholder, _: &str| {})
        .register_fn("ensure", |_: Placeholder, _: &str, _: &str| {})
        .register_fn(
            "is_placeholder",
            |v: Dynamic| -> Result<bool, Box<EvalAltResult>> { Ok(v.is::<Placeholder>()) },
        );
}
