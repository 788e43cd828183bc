//! `--dry-run` values. A write (or a read that needs a value only a write would produce)
//! returns a `Placeholder`: any property of it is a placeholder too, and comparisons with it
//! hold, so the rest of the step runs and every later write is recorded in the plan.

use crate::engine::registry::{global_fn, Registrar};
use rhai::{Dynamic, EvalAltResult, ImmutableString};
use runbook_secret::Secret;
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

/// Placeholders iterate as one placeholder element, so a loop over what a skipped write
/// returned still plans the writes in its body.
impl IntoIterator for Placeholder {
    type Item = Dynamic;
    type IntoIter = std::iter::Once<Dynamic>;
    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(Placeholder::of(format!("{}[0]", self.origin)))
    }
}

/// Methods that reshape a value (strings, arrays, maps, parsing): on a placeholder each
/// gives a placeholder, so a script that parses what a skipped write returned keeps running
/// under --dry-run.
const RESHAPE: &[&str] = &[
    "sub_string",
    "split",
    "split_rev",
    "trim",
    "to_upper",
    "to_lower",
    "replace",
    "chars",
    "bytes",
    "pad",
    "truncate",
    "crop",
    "get",
    "remove",
    "index_of",
    "filter",
    "map",
    "find",
    "find_map",
    "reduce",
    "reduce_rev",
    "sort",
    "dedup",
    "reverse",
    "extract",
    "keys",
    "values",
    "retain",
    "drain",
    "chop",
    "parse_json",
    "parse_int",
    "parse_float",
    "to_int",
    "to_float",
    "abs",
    "round",
    "floor",
    "ceiling",
    "min",
    "max",
    "-",
    "*",
    "/",
    "%",
];

/// Questions about a value: on a placeholder each holds, as `==` does.
const HOLDS: &[&str] = &[
    "starts_with",
    "ends_with",
    "some",
    "all",
    "<",
    ">",
    "<=",
    ">=",
];

type R<T> = Result<T, Box<EvalAltResult>>;

/// A placeholder added to a value that is not text.
fn joined(p: &Placeholder, other: &Dynamic) -> R<Dynamic> {
    if other.is::<Secret>() {
        return Err(super::secret::no_concat());
    }
    Ok(Placeholder::of(format!("{}.+()", p.origin)))
}

/// Whether a value holds a placeholder, as itself or as the marker its text carries.
pub(crate) fn holds_placeholder(v: &Dynamic) -> bool {
    if v.is::<Placeholder>() {
        return true;
    }
    if let Some(s) = v.read_lock::<ImmutableString>() {
        return s.contains(MARKER);
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return a.iter().any(holds_placeholder);
    }
    if let Some(m) = v.read_lock::<rhai::Map>() {
        return m.values().any(holds_placeholder);
    }
    false
}

/// How a placeholder reads as text.
pub(crate) const MARKER: &str = "<dry-run: ";

pub(crate) fn register(reg: &mut Registrar) {
    let g = reg.global();
    g.set_custom_type::<Placeholder>("Placeholder");
    g.set_iterable::<Placeholder>();
    fn call(p: &Placeholder, name: &str) -> Dynamic {
        Placeholder::of(format!("{}.{name}()", p.origin))
    }
    for &name in RESHAPE {
        let n = name.to_string();
        global_fn(g, name, move |p: &mut Placeholder| call(p, &n));
        let n = name.to_string();
        global_fn(g, name, move |p: Placeholder, _: Dynamic| call(&p, &n));
        let n = name.to_string();
        global_fn(g, name, move |_: Dynamic, p: Placeholder| call(&p, &n));
        let n = name.to_string();
        global_fn(
            g,
            name,
            move |p: &mut Placeholder, _: Dynamic, _: Dynamic| call(p, &n),
        );
    }
    // `"/keys/" + id` is text with the marker in it, as interpolation gives: a read whose
    // URL, query or headers hold the marker is not sent (http::call). Joining a Secret is
    // refused as it is in a real run, so the dry run does not pass a script the run fails.
    global_fn(g, "+", |s: ImmutableString, p: Placeholder| {
        format!("{s}<dry-run: {}>", p.origin)
    });
    global_fn(g, "+", |p: Placeholder, s: ImmutableString| {
        format!("<dry-run: {}>{s}", p.origin)
    });
    global_fn(g, "+", |p: Placeholder, other: Dynamic| -> R<Dynamic> {
        joined(&p, &other)
    });
    global_fn(g, "+", |other: Dynamic, p: Placeholder| -> R<Dynamic> {
        joined(&p, &other)
    });
    for &name in HOLDS {
        global_fn(g, name, |_: Placeholder, _: Dynamic| true);
        global_fn(g, name, |_: Dynamic, _: Placeholder| true);
    }
    // A number or a string parsed from a placeholder's text (`parse_int("${p}")`) is not
    // reachable: the marker below is what interpolation writes, and it says dry-run.
    global_fn(g, "to_json", |p: &mut Placeholder| {
        serde_json::Value::String(format!("<dry-run: {}>", p.origin)).to_string()
    });
    global_fn(g, "is_empty", |_: &mut Placeholder| false);
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
    // One, as a loop over it runs once: `for i in 0..p.len()` plans its body, and
    // `while i < p.len()` ends (a placeholder length would hold every comparison).
    global_fn(g, "len", |_: &mut Placeholder| 1_i64);
    global_fn(g, "contains", |_: &mut Placeholder, _: Dynamic| true);
    global_fn(g, "==", |_: Placeholder, _: Dynamic| true);
    global_fn(g, "==", |_: Dynamic, _: Placeholder| true);
    global_fn(g, "!=", |_: Placeholder, _: Dynamic| true);
    global_fn(g, "!=", |_: Dynamic, _: Placeholder| true);
    global_fn(g, "ensure", |_: Placeholder, _: &str| {});
    global_fn(g, "ensure", |_: Placeholder, _: &str, _: &str| {});
    global_fn(
        g,
        "is_placeholder",
        |v: Dynamic| -> Result<bool, Box<EvalAltResult>> { Ok(v.is::<Placeholder>()) },
    );
}
