//! Converting between rhai values, JSON and text; the error values host functions throw;
//! and `ctx`, the value every step of a run shares.

pub mod ctx;

pub use ctx::Ctx;

use rhai::{Dynamic, EvalAltResult, Map, Position};
use runbook_secret::{Secret, MARK};
use serde_json::Value;

/// A runtime error carrying `#{message, help, code_kind}`; `catch (e)` sees the map.
pub(crate) fn error_map(kind: &str, message: impl Into<String>, help: Option<String>) -> Dynamic {
    error_fields(kind, message, help).into()
}

/// The fields of `error_map`, for an error that carries more (`maybe_applied`).
pub(crate) fn error_fields(kind: &str, message: impl Into<String>, help: Option<String>) -> Map {
    let mut m = Map::new();
    m.insert(
        "message".into(),
        runbook_secret::redact(&message.into()).into_owned().into(),
    );
    if let Some(h) = help {
        m.insert("help".into(), h.into());
    }
    m.insert("code_kind".into(), kind.into());
    m
}

pub(crate) fn throw(
    kind: &str,
    message: impl Into<String>,
    help: Option<String>,
) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(error_map(kind, message, help), Position::NONE).into()
}

/// Points an error from a module function at its call site (rhai leaves it unset for
/// namespace-qualified native calls).
pub fn at<T>(
    ctx: &rhai::NativeCallContext,
    r: Result<T, Box<EvalAltResult>>,
) -> Result<T, Box<EvalAltResult>> {
    r.map_err(|mut e| {
        if e.position().is_none() {
            e.set_position(ctx.call_position());
        }
        e
    })
}

/// The value at a dotted path of nested maps (`data.id`), if every step is there.
pub(crate) fn at_path(v: &Dynamic, path: &str) -> Option<Dynamic> {
    let mut at = v.clone();
    for part in path.split('.') {
        let next = at.read_lock::<Map>()?.get(part)?.clone();
        at = next;
    }
    Some(at)
}

/// The fingerprint of a Secret the journal kept as `#{secret: "hmac:...", source}`: what a
/// resumed run has where a Secret was inside a map or list in ctx.
pub(crate) fn kept_as_fingerprint(v: &Dynamic) -> Option<String> {
    let m = v.read_lock::<Map>()?;
    let fp = m.get("secret")?.clone().into_string().ok()?;
    fp.starts_with("hmac:").then_some(fp)
}

/// The error for a Secret a resumed run has only as its fingerprint, given as `what`.
pub(crate) fn only_a_fingerprint(what: &str, fp: &str) -> Box<EvalAltResult> {
    throw(
        "usage",
        format!("{what} is a Secret this run has only as its fingerprint ({fp}): it was kept inside a map or list in ctx, which the journal keeps so, and the process that had its value ended"),
        Some("put the value back by hand where the step needs it; in the runbook, keep each Secret the way back needs at the top of ctx (ctx.KEY_old = value), where a resume asks for it or recovers it (`runbook check` finds the others)".into()),
    )
}

/// A string bound for a vendor must not carry a secret that `${...}` turned into text.
pub(crate) fn plain_string(s: &str, what: &str) -> Result<String, Box<EvalAltResult>> {
    if s.contains(MARK) {
        return Err(throw(
            "secret",
            format!("a Secret was interpolated into {what}"),
            Some("a Secret cannot become part of a string (the string holds its mask, not its value); pass the Secret itself (host functions accept it directly), or build text around it with secret::compose([\"postgres://app:\", pw, \"@db:5432/app\"])".into()),
        ));
    }
    Ok(s.to_string())
}

/// A value that must be plain text (an email field, a name): a Secret is refused by name,
/// not turned into its type name or its mask.
pub(crate) fn plain_text(v: &Dynamic, what: &str, why: &str) -> Result<String, Box<EvalAltResult>> {
    if v.is::<Secret>() {
        return Err(throw(
            "secret",
            format!("a Secret cannot be sent as {what}"),
            Some(why.to_string()),
        ));
    }
    plain_string(&v.to_string(), what)
}

/// How deeply values may nest where they are kept (ctx) or serialised: deeper than any
/// vendor document, shallow enough that nothing walking them runs out of stack, and, with
/// the levels a journal line or an audit entry wraps around it, within the 128 levels a
/// JSON reader (serde_json's) takes: a line written must read back.
pub const MAX_DEPTH: usize = 110;

/// How deeply `v` nests (arrays and maps), counting at most to `MAX_DEPTH + 1`.
pub fn depth(v: &Dynamic) -> usize {
    fn walk(v: &Dynamic, level: usize) -> usize {
        if level > MAX_DEPTH {
            return level;
        }
        if let Some(a) = v.read_lock::<rhai::Array>() {
            return a
                .iter()
                .map(|x| walk(x, level + 1))
                .max()
                .unwrap_or(level + 1);
        }
        if let Some(m) = v.read_lock::<Map>() {
            return m
                .values()
                .map(|x| walk(x, level + 1))
                .max()
                .unwrap_or(level + 1);
        }
        level
    }
    walk(v, 0)
}

/// A rhai value as JSON. Secrets become `{"secret": fingerprint, "source": ...}`, never the value.
pub fn to_json(v: &Dynamic) -> Value {
    to_json_at(v, 0, false)
}

/// A value as the journal keeps it: as [`to_json`], except that text redaction changed (it
/// holds a registered secret: an id also stored in Infisical, say) is marked
/// `{"masked_text": "…"}`, so that a resume never takes the mask for the value.
pub fn to_journal_json(v: &Dynamic) -> Value {
    to_json_at(v, 0, true)
}

/// Text the journal could keep only masked, as a resumed run's ctx holds it: any use of it as
/// text fails, where the mask would have been sent to a vendor as if it were the value.
#[derive(Debug, Clone)]
pub struct Masked(pub String);

/// A script's number that is a registered secret whole (a PIN a vendor echoed as a
/// number): masked, as a string holding it is. The journal and `--json` are masked as JSON
/// only, which leaves numbers alone (a duration or a pid that merely holds a PIN's digits
/// is not the PIN).
fn secret_number(text: &str, journal: bool) -> Option<Value> {
    let shown = runbook_secret::strip_markers(&runbook_secret::redact(text));
    (shown != text && shown == runbook_secret::mask(text)).then(|| {
        if journal {
            masked_json(&shown)
        } else {
            Value::String(shown)
        }
    })
}

fn masked_json(text: &str) -> Value {
    serde_json::json!({ "masked_text": text })
}

fn to_json_at(v: &Dynamic, level: usize, journal: bool) -> Value {
    if level > MAX_DEPTH {
        return Value::String(format!("…(nested deeper than {MAX_DEPTH} levels)"));
    }
    let to_json = |x: &Dynamic| to_json_at(x, level + 1, journal);
    if v.is_unit() {
        return Value::Null;
    }
    if let Ok(b) = v.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = v.as_int() {
        return secret_number(&i.to_string(), journal).unwrap_or_else(|| Value::from(i));
    }
    if let Ok(f) = v.as_float() {
        return secret_number(&f.to_string(), journal).unwrap_or_else(|| {
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        });
    }
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        let shown = runbook_secret::strip_markers(&runbook_secret::redact(&s));
        if journal && shown != s.as_str() {
            return masked_json(&shown);
        }
        return Value::String(shown);
    }
    if let Some(m) = v.read_lock::<Masked>() {
        return if journal {
            masked_json(&m.0)
        } else {
            Value::String(m.0.clone())
        };
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return Value::Array(a.iter().map(to_json).collect());
    }
    if let Some(m) = v.read_lock::<Map>() {
        return Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect());
    }
    if let Some(s) = v.read_lock::<Secret>() {
        return serde_json::json!({
            "secret": s.fingerprint(),
            "source": s.source(),
            "masked": s.masked(),
        });
    }
    if let Some(c) = v.read_lock::<ctx::Ctx>() {
        return c.snapshot();
    }
    Value::String(format!("<{}>", v.type_name()))
}

/// JSON as a rhai value (vendor responses, answers, params).
pub fn from_json(v: &Value) -> Dynamic {
    from_json_with(v, false)
}

/// The journal's JSON (see [`to_journal_json`]) as a rhai value: masked text is [`Masked`].
pub fn from_journal_json(v: &Value) -> Dynamic {
    from_json_with(v, true)
}

fn from_json_with(v: &Value, journal: bool) -> Dynamic {
    let from_json = |x: &Value| from_json_with(x, journal);
    if journal {
        if let Some(Value::String(text)) = v
            .get("masked_text")
            .filter(|_| v.as_object().is_some_and(|o| o.len() == 1))
        {
            return Dynamic::from(Masked(text.clone()));
        }
    }
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(0.0).into(),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(a) => a.iter().map(from_json).collect::<rhai::Array>().into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.as_str().into(), from_json(v)))
            .collect::<Map>()
            .into(),
    }
}

/// An indented, JSON-like rendering for people; secrets masked.
pub fn pretty(v: &Dynamic) -> String {
    let mut out = String::new();
    write_pretty(v, 0, &mut out);
    out
}

fn write_pretty(v: &Dynamic, indent: usize, out: &mut String) {
    if indent > MAX_DEPTH {
        out.push_str(&format!("…(nested deeper than {MAX_DEPTH} levels)"));
        return;
    }
    let pad = "  ".repeat(indent + 1);
    let end_pad = "  ".repeat(indent);
    if let Some(s) = v.read_lock::<Secret>() {
        out.push_str(&s.masked());
    } else if let Some(m) = v.read_lock::<Map>() {
        if m.is_empty() {
            out.push_str("#{}");
            return;
        }
        out.push_str("#{\n");
        for (k, val) in m.iter() {
            out.push_str(&format!("{pad}{k}: "));
            write_pretty(val, indent + 1, out);
            out.push_str(",\n");
        }
        out.push_str(&format!("{end_pad}}}"));
    } else if let Some(a) = v.read_lock::<rhai::Array>() {
        if a.is_empty() {
            out.push_str("[]");
            return;
        }
        out.push_str("[\n");
        for val in a.iter() {
            out.push_str(&pad);
            write_pretty(val, indent + 1, out);
            out.push_str(",\n");
        }
        out.push_str(&format!("{end_pad}]"));
    } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        out.push_str(&format!("{:?}", runbook_secret::strip_markers(&s)));
    } else if let Some(c) = v.read_lock::<ctx::Ctx>() {
        out.push_str(&c.render());
    } else if v.is_unit() {
        out.push_str("()");
    } else {
        out.push_str(&v.to_string());
    }
}

/// Option `key` of `function`: true or false, false when absent; anything else is a usage
/// error.
pub(crate) fn opt_flag(opts: &Map, key: &str, function: &str) -> Result<bool, Box<EvalAltResult>> {
    match opts.get(key) {
        None => Ok(false),
        Some(v) => v.as_bool().map_err(|_| {
            throw(
                "usage",
                format!("{function}: {key} must be true or false"),
                None,
            )
        }),
    }
}

/// Reads an optional string option from an options map.
pub(crate) fn opt_str(opts: &Map, key: &str) -> Option<String> {
    opts.get(key)
        .filter(|v| !v.is_unit())
        .map(|v| runbook_secret::strip_markers(&v.to_string()))
}

/// "did you mean KEY? known options: ..." for a key no function option is named.
pub(crate) fn known_options(key: &str, allowed: &[&str]) -> String {
    let known = format!("known options: {}", allowed.join(", "));
    match crate::suggest::closest(key, allowed.iter().copied()) {
        Some(near) => format!("did you mean '{near}'? {known}"),
        None => known,
    }
}

/// Rejects option keys the function does not know (a typo should not pass silently).
pub(crate) fn check_keys(
    opts: &Map,
    allowed: &[&str],
    function: &str,
) -> Result<(), Box<EvalAltResult>> {
    for k in opts.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(throw(
                "usage",
                format!("{function}: unknown option '{k}'"),
                Some(known_options(k, allowed)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod number_tests {
    /// A number that is a registered secret whole is masked in the journal's form of a
    /// script value; one that merely holds its digits stays a number (second review of
    /// this session's fix: the JSON-only redaction left the PIN itself in clear).
    #[test]
    fn a_number_that_is_a_secret_is_masked_and_one_holding_its_digits_is_not() {
        runbook_secret::register("739184");
        let pin = super::to_journal_json(&rhai::Dynamic::from(739184_i64));
        assert!(!pin.to_string().contains("739184"), "{pin}");
        let n = super::to_journal_json(&rhai::Dynamic::from(97391845_i64));
        assert_eq!(n, serde_json::json!(97391845));
    }
}
