//! `ctx`: the object every step of a run shares. Values one step sets are seen by the next;
//! it is what the journal snapshots (secrets as fingerprints) and what the REPL shows.

use crate::engine::registry::{global_fn, Registrar};
use crate::value;
use rhai::{Dynamic, EvalAltResult, Map, Position};
use std::cell::RefCell;
use std::rc::Rc;

/// What `v` (or a value inside it) is, if it is a handle on something under way in this
/// process, and where to keep it instead.
fn live_handle(v: &Dynamic) -> Option<(&'static str, &'static str)> {
    if let Some(found) = crate::engine::registry::opaque(v) {
        return Some(found);
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return a.iter().find_map(live_handle);
    }
    if let Some(m) = v.read_lock::<Map>() {
        return m.values().find_map(live_handle);
    }
    None
}

#[derive(Clone, Default)]
pub struct Ctx {
    inner: Rc<RefCell<Map>>,
}

impl Ctx {
    pub fn new(params: Map) -> Self {
        let ctx = Ctx::default();
        ctx.set("params", params.into());
        ctx
    }

    pub fn get(&self, key: &str) -> Option<Dynamic> {
        self.inner.borrow().get(key).cloned()
    }

    pub fn set(&self, key: &str, value: Dynamic) {
        self.inner.borrow_mut().insert(key.into(), value);
    }

    pub fn remove(&self, key: &str) {
        self.inner.borrow_mut().remove(key);
    }

    /// The targets in `ctx.done` (an undo's view of its step's writes) that `function` may
    /// have changed: applied, unknown, or pending.
    fn changed(&self, function: &str) -> rhai::Array {
        let Some(done) = self.get("done") else {
            return rhai::Array::new();
        };
        let Some(list) = done.read_lock::<rhai::Array>().map(|a| a.clone()) else {
            return rhai::Array::new();
        };
        let mut out = rhai::Array::new();
        for w in list {
            let Some(m) = w.read_lock::<Map>() else {
                continue;
            };
            let field = |k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
            let target = Dynamic::from(field("target"));
            // What may be in effect: applied, unknown (it may have applied), or pending (a
            // change request an approver may still merge). Never a write refused or never
            // sent: an undo must not reach a target the step did not touch.
            let in_effect = matches!(field("outcome").as_str(), "applied" | "unknown" | "pending");
            if field("function") == function
                && in_effect
                && !out.iter().any(|t| t.to_string() == target.to_string())
            {
                out.push(target);
            }
        }
        out
    }

    pub fn keys(&self) -> Vec<String> {
        self.inner.borrow().keys().map(|k| k.to_string()).collect()
    }

    /// The values as JSON, secrets as `{"secret": fingerprint, "source": ...}`.
    pub fn snapshot(&self) -> serde_json::Value {
        value::to_journal_json(&Dynamic::from_map(self.inner.borrow().clone()))
    }

    /// A redacted, readable rendering for `print(ctx)` and the REPL.
    pub fn render(&self) -> String {
        value::pretty(&Dynamic::from_map(self.inner.borrow().clone()))
    }

    pub(crate) fn register(reg: &mut Registrar) {
        let g = reg.global();
        g.set_custom_type::<value::Masked>("Masked");
        g.set_custom_type::<Ctx>("Ctx");
        g.set_indexer_get_fn(|ctx: &mut Ctx, key: &str| ctx.lookup(key));
        g.set_indexer_set_fn(
            |ctx: &mut Ctx, key: &str, value: Dynamic| -> Result<(), Box<EvalAltResult>> {
                // ctx is journalled after every step; a value too deep to write (and read
                // back on resume) is refused here, where the script can still fix it.
                if value::depth(&value) > value::MAX_DEPTH {
                    return Err(value::throw(
                        "usage",
                        format!(
                            "ctx.{} is nested more than {} levels deep",
                            crate::text::truncate(key, 60),
                            value::MAX_DEPTH
                        ),
                        Some("keep flat records in ctx (ids, names, fingerprints)".into()),
                    ));
                }
                // A search or log sessions under way live in this process only: the journal
                // keeps them as text, so after a crash the resumed step would find a string.
                if let Some((what, hint)) = live_handle(&value) {
                    return Err(value::throw(
                        "usage",
                        format!(
                            "ctx.{} holds {what}: it lives in this process only and would not survive a crash and resume",
                            crate::text::truncate(key, 60)
                        ),
                        Some(hint.into()),
                    ));
                }
                ctx.set(key, value);
                Ok(())
            },
        );
        global_fn(g, "to_string", |ctx: &mut Ctx| ctx.render());
        global_fn(g, "to_debug", |ctx: &mut Ctx| ctx.render());
        let mut m = reg.module("");
        m.method(
            "Ctx",
            "contains",
            &["key: string"],
            "bool",
            "True when a step has set `key` (also written `\"key\" in ctx`).",
            |ctx: &mut Ctx, key: &str| ctx.inner.borrow().contains_key(key),
        );
        m.method(
            "Ctx",
            "keys",
            &[],
            "Array",
            "The names of the values set so far (`params` first).",
            |ctx: &mut Ctx| -> rhai::Array { ctx.keys().into_iter().map(Dynamic::from).collect() },
        );
        m.method(
            "Ctx",
            "changed",
            &["function: string"],
            "Array",
            "In an undo: the targets `function` (e.g. \"heroku::set_config\") changed in the step being\nundone: applied, unknown (it may have applied) or pending (a change request not merged yet),\nnever one refused or never sent; empty elsewhere. Restore exactly these.",
            |ctx: &mut Ctx, function: &str| ctx.changed(function),
        );
        m.method(
            "Ctx",
            "get",
            &["key: string", "default: ?"],
            "?",
            "The value of `key`, or `default` when no step has set it (`ctx.key` fails instead).",
            |ctx: &mut Ctx, key: &str, default: Dynamic| match ctx.get(key) {
                Some(v) => usable(key, v),
                None => Ok(default),
            },
        );
        m.finish();
    }

    fn lookup(&self, key: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        if let Some(v) = self.get(key) {
            return usable(key, v);
        }
        let mut known = self.keys();
        known.sort();
        Err(EvalAltResult::ErrorRuntime(
            value::error_map(
                "usage",
                format!("ctx has no value '{key}'"),
                Some(format!(
                    "ctx holds: {}; a value exists only after the step that sets it has run (use `\"{key}\" in ctx` to test)",
                    known.join(", ")
                )),
            ),
            Position::NONE,
        )
        .into())
    }
}

/// A ctx value as a step reads it: text the journal kept only masked fails here, naming the
/// key, rather than reaching a vendor as if the mask were the value.
fn usable(key: &str, v: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
    let Some(m) = v.read_lock::<value::Masked>().map(|m| m.0.clone()) else {
        return Ok(v);
    };
    Err(value::throw(
        "secret",
        format!(
            "ctx.{} was text holding a secret, and the journal could keep it only masked ({m}): a resumed run does not have it",
            crate::text::truncate(key, 60)
        ),
        Some("keep such a value as a Secret (secret::from_text(s)) so a resume recovers it, or compute it again in the step that uses it".into()),
    ))
}

#[cfg(test)]
mod tests {
    use super::Ctx;
    use rhai::{Dynamic, Map};

    /// Before, every outcome but "failed" counted: a fan-out's targets never sent (Ctrl-C,
    /// a lost lock) were handed to the undo, which wrote to targets the step never touched
    /// (a GitHub secret created where there was none). Cold review.
    #[test]
    fn changed_lists_only_what_may_be_in_effect() {
        let ctx = Ctx::new(Map::new());
        let write = |target: &str, outcome: &str| {
            let mut m = Map::new();
            m.insert("function".into(), "heroku::set_config".into());
            m.insert("target".into(), target.into());
            m.insert("outcome".into(), outcome.into());
            Dynamic::from(m)
        };
        let done: rhai::Array = vec![
            write("applied-app", "applied"),
            write("refused-app", "failed"),
            write("unsent-app", "not_sent"),
            write("lost-app", "unknown"),
            write("filed-app", "pending"),
        ];
        ctx.set("done", Dynamic::from(done));
        let changed: Vec<String> = ctx
            .changed("heroku::set_config")
            .into_iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(changed, ["applied-app", "lost-app", "filed-app"]);
        assert!(ctx.changed("github::set_secret").is_empty());
    }
}
