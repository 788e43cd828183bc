//! `--dry-run` values. A write (or a read that needs a value only a write would produce)
//! returns a `Placeholder`: any property of it is a placeholder too, and comparisons with it
//! hold, so the rest of the step runs and every later write is recorded in the plan.

use crate::engine::registry::{global_fn, Registrar};
use rhai::{Dynamic, EvalAltResult, ImmutableString};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub(crate) struct Placeholder {
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
    pub(crate) fn with_fields(
        origin: impl Into<String>,
        fields: BTreeMap<String, Dynamic>,
    ) -> Dynamic {
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

pub(crate) fn register(reg: &mut Registrar) {
    let g = reg.global();
    g.set_custom_type::<Placeholder>("Placeholder");
    g.set_indexer_get_fn(
        |p: &mut Placeholder, key: &str| -> Result<Dynamic, Box<EvalAltResult>> { Ok(p.get(key)) },
    );
    g.set_indexer_get_fn(
        |p: &mut Placeholder, i: i64| -> Result<Dynamic, Box<EvalAltResult>> {
            Ok(Placeholder::of(format!("{}[{i}]", p.origin)))
        },
    );
    global_fn(g, "to_string", |p: &mut Placeholder| {
        format!("<dry-run: {}>", p.origin)
    });
    global_fn(g, "to_debug", |p: &mut Placeholder| {
        format!("<dry-run: {}>", p.origin)
    });
    global_fn(g, "len", |p: &mut Placeholder| {
        Placeholder::of(format!("{}.len()", p.origin))
    });
    global_fn(g, "contains", |_: &mut Placeholder, _: Dynamic| true);
    global_fn(g, "==", |_: Placeholder, _: Dynamic| true);
    global_fn(g, "==", |_: Dynamic, _: Placeholder| true);
    global_fn(g, "!=", |_: Placeholder, _: Dynamic| true);
    global_fn(g, "!=", |_: Dynamic, _: Placeholder| true);
    global_fn(g, "+", |p: Placeholder, _: Dynamic| Dynamic::from(p));
    global_fn(g, "+", |_: ImmutableString, p: Placeholder| {
        Dynamic::from(p)
    });
    global_fn(g, "ensure", |_: Placeholder, _: &str| {});
    global_fn(g, "ensure", |_: Placeholder, _: &str, _: &str| {});
    global_fn(
        g,
        "is_placeholder",
        |v: Dynamic| -> Result<bool, Box<EvalAltResult>> { Ok(v.is::<Placeholder>()) },
    );
}
