//! The runbook format itself: `runbook`, `param`, `prerequisite`, `step` and its handle,
//! `ensure`, `fail`, and `time::`.

use super::value::{self, throw};
use super::{Effect, Host, HostFn, ModuleBuilder, Phase};
use crate::plan::{Meta, Param, Step, META_KEYS, PARAM_KEYS};
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use std::rc::Rc;

type R<T> = Result<T, Box<EvalAltResult>>;

/// What `step(...)` returns: chain `.undo(...)`, `.irreversible(...)` and friends on it.
#[derive(Debug, Clone)]
pub struct StepHandle {
    index: usize,
}

fn loading_only(host: &Host, what: &str) -> R<()> {
    if *host.phase.borrow() != Phase::Loading {
        return Err(throw(
            "usage",
            format!("{what} can only be used at the top level of a runbook"),
            None,
        ));
    }
    Ok(())
}

fn strings(v: &Dynamic, key: &str) -> R<Vec<String>> {
    if let Some(a) = v.read_lock::<Array>() {
        return Ok(a.iter().map(|x| x.to_string()).collect());
    }
    if v.is_string() {
        return Ok(vec![v.to_string()]);
    }
    Err(throw(
        "usage",
        format!("runbook: '{key}' must be a list of strings"),
        None,
    ))
}

fn parse_meta(map: &Map) -> R<Meta> {
    value::check_keys(map, META_KEYS, "runbook")?;
    let s = |k: &str| value::opt_str(map, k);
    let id = s("id").unwrap_or_default();
    let title = s("title").unwrap_or_default();
    let valid_id = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_id {
        return Err(throw(
            "usage",
            "runbook: 'id' is required: letters, digits, '-' and '_'",
            Some("e.g. runbook(#{ id: \"postmark-server-token\", title: \"...\" })".into()),
        ));
    }
    if title.is_empty() {
        return Err(throw("usage", "runbook: 'title' is required", None));
    }
    let list = |k: &str| -> R<Vec<String>> {
        match map.get(k) {
            Some(v) => strings(v, k),
            None => Ok(Vec::new()),
        }
    };
    let cadence_days = match map.get("cadence_days") {
        None => None,
        Some(v) => Some(v.as_int().map_err(|_| {
            throw(
                "usage",
                "runbook: 'cadence_days' must be a whole number of days",
                None,
            )
        })?),
    };
    Ok(Meta {
        id,
        title,
        description: s("description"),
        secret: s("secret"),
        applies_to: s("applies_to"),
        mode: s("mode"),
        role: s("role"),
        cadence_days,
        average_duration: s("average_duration"),
        last_validated: s("last_validated"),
        validation_method: s("validation_method"),
        when_to_run: list("when_to_run")?,
        references: list("references")?,
        gotchas: list("gotchas")?,
        rollback: list("rollback")?,
    })
}

fn parse_param(ctx: &NativeCallContext, name: &str, opts: &Map) -> R<Param> {
    value::check_keys(opts, PARAM_KEYS, "param")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(throw(
            "usage",
            format!("param name '{name}' must be letters, digits and '_'"),
            None,
        ));
    }
    let flag = |k: &str| opts.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
    Ok(Param {
        name: name.to_string(),
        default: opts.get("default").map(value::to_json),
        help: value::opt_str(opts, "help"),
        required: flag("required"),
        secret: flag("secret"),
        env: value::opt_str(opts, "env"),
        position: ctx.call_position(),
    })
}

/// A failed check. Under `--dry-run`, once a write has been skipped, later checks may depend
/// on it (the new token is not really in Infisical), so they are reported, not enforced.
fn check_failed(h: &Host, kind: &str, message: &str, help: Option<String>) -> R<()> {
    if h.dry_run.get() && !h.planned.borrow().is_empty() {
        crate::ui::progress(&format!(
            "    [dry-run] check not verifiable without the skipped writes: {}",
            runbook_secret::strip_markers(message)
        ));
        return Ok(());
    }
    Err(throw(kind, message, help))
}

pub fn register(engine: &mut Engine, host: &Rc<Host>, registry: &mut Vec<HostFn>) {
    engine.register_type_with_name::<StepHandle>("StepHandle");
    let mut g = ModuleBuilder::new("", registry);

    let h = host.clone();
    g.add(
        "runbook",
        Effect::None,
        &["meta: Map"],
        "()",
        "Declares the runbook: id, title, secret, mode, role, cadence_days, average_duration,\nlast_validated, validation_method, when_to_run, references, gotchas, rollback.",
        move |ctx: NativeCallContext, map: Map| -> R<()> {
            loading_only(&h, "runbook()")?;
            let meta = parse_meta(&map)?;
            let mut plan = h.plan.borrow_mut();
            if plan.meta.is_some() {
                return Err(throw("usage", "runbook() is declared twice", None));
            }
            plan.meta = Some(meta);
            plan.meta_position = ctx.call_position();
            Ok(())
        },
    );

    let h = host.clone();
    g.add(
        "param",
        Effect::None,
        &["name: string", "options: Map"],
        "()",
        "Declares a parameter: #{default, help, required, secret, env}. Values come from\n`--param name=value`, then the `env` variable, then the default.",
        move |ctx: NativeCallContext, name: &str, opts: Map| -> R<()> {
            loading_only(&h, "param()")?;
            let p = parse_param(&ctx, name, &opts)?;
            let mut plan = h.plan.borrow_mut();
            if plan.param(name).is_some() {
                return Err(throw("usage", format!("param '{name}' is declared twice"), None));
            }
            plan.params.push(p);
            Ok(())
        },
    );

    let h = host.clone();
    g.add(
        "recover",
        Effect::None,
        &["key: string", "how: Fn(ctx) -> Secret"],
        "()",
        "Declares how `runbook resume` and `rollback` get the secret `ctx[key]` back after a crash\n(the journal holds only its fingerprint), e.g. by reading a version from Infisical. The\nvalue is checked against the journalled fingerprint. Without it, resume asks for the value.",
        move |key: &str, how: FnPtr| -> R<()> {
            loading_only(&h, "recover()")?;
            h.plan.borrow_mut().recover.push((key.to_string(), how));
            Ok(())
        },
    );

    let h = host.clone();
    g.add(
        "prerequisite",
        Effect::None,
        &["text: string"],
        "()",
        "Adds an item to the checklist the operator confirms before the first step.",
        move |text: &str| -> R<()> {
            loading_only(&h, "prerequisite()")?;
            h.plan.borrow_mut().prerequisites.push(text.to_string());
            Ok(())
        },
    );

    let h = host.clone();
    g.add(
        "step",
        Effect::None,
        &["id: string", "title: string", "body: Fn(ctx)"],
        "StepHandle",
        "Declares a step. The body runs with the run's `ctx`; chain `.undo(|ctx| ...)`,\n`.irreversible(why)`, `.confirm(question)`, `.idempotent()`, `.verify(|ctx| ...)`, `.checks([...])`,\n`.no_undo(why)` (it writes, but leaves nothing to restore) and `.describe(text)` (for `runbook doc`).",
        move |ctx: NativeCallContext, id: &str, title: &str, body: FnPtr| -> R<StepHandle> {
            loading_only(&h, "step()")?;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(throw(
                    "usage",
                    format!("step id '{id}' must be letters, digits, '-' and '_'"),
                    None,
                ));
            }
            let mut plan = h.plan.borrow_mut();
            if let Some(first) = plan.step(id) {
                let line = first.position.line().unwrap_or(0);
                return Err(throw(
                    "runbook::plan::duplicate_step",
                    format!("duplicate step id '{id}' (first declared on line {line})"),
                    Some("step ids must be unique: the journal and `:run` refer to steps by id".into()),
                ));
            }
            plan.steps.push(Step {
                id: id.to_string(),
                title: title.to_string(),
                run: body,
                undo: None,
                verify: None,
                irreversible: None,
                idempotent: false,
                confirm: None,
                checks: Vec::new(),
                no_undo: None,
                description: None,
                position: ctx.call_position(),
                source: ctx.call_source().unwrap_or_default().to_string(),
            });
            Ok(StepHandle {
                index: plan.steps.len() - 1,
            })
        },
    );

    let edit = |host: &Rc<Host>,
                handle: &StepHandle,
                what: &str,
                f: &dyn Fn(&mut Step)|
     -> R<StepHandle> {
        loading_only(host, what)?;
        let mut plan = host.plan.borrow_mut();
        match plan.steps.get_mut(handle.index) {
            Some(step) => {
                f(step);
                Ok(handle.clone())
            }
            None => Err(throw("usage", format!("{what}: unknown step"), None)),
        }
    };

    let h = host.clone();
    g.method(
        "StepHandle",
        "undo",
        &["body: Fn(ctx)"],
        "StepHandle",
        "How to revert what the step did; rollback runs it (newest step first) when a later step\nfails. Reads what it needs from `ctx` (e.g. the old value the step replaced).",
        move |s: &mut StepHandle, f: FnPtr| edit(&h, s, ".undo()", &|st| st.undo = Some(f.clone())),
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "verify",
        &["body: Fn(ctx)"],
        "StepHandle",
        "A check run after the step's body.",
        move |s: &mut StepHandle, f: FnPtr| {
            edit(&h, s, ".verify()", &|st| st.verify = Some(f.clone()))
        },
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "irreversible",
        &["why: string"],
        "StepHandle",
        "Marks the point of no return: rollback stops here, and says `why` (what is lost and how\nto recover: usually, rotate afresh). Pair it with `.confirm(question)`.",
        move |s: &mut StepHandle, why: &str| {
            edit(&h, s, ".irreversible()", &|st| {
                st.irreversible = Some(why.to_string())
            })
        },
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "idempotent",
        &[],
        "StepHandle",
        "Declares that running the step twice is harmless (safe to retry after a crash).",
        move |s: &mut StepHandle| edit(&h, s, ".idempotent()", &|st| st.idempotent = true),
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "confirm",
        &["question: string"],
        "StepHandle",
        "A yes/no question the operator answers before the step runs (`--yes` answers it);\n`no` stops the run.",
        move |s: &mut StepHandle, q: &str| {
            edit(&h, s, ".confirm()", &|st| st.confirm = Some(q.to_string()))
        },
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "no_undo",
        &["why: string"],
        "StepHandle",
        "Says why a step that writes needs no undo (a restart, a test email: nothing to restore);\n`check` asks for it otherwise.",
        move |s: &mut StepHandle, why: &str| {
            edit(&h, s, ".no_undo()", &|st| st.no_undo = Some(why.to_string()))
        },
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "describe",
        &["text: string"],
        "StepHandle",
        "A paragraph for `runbook doc`: what the step does and why.",
        move |s: &mut StepHandle, text: &str| {
            edit(&h, s, ".describe()", &|st| {
                st.description = Some(text.to_string())
            })
        },
    );
    let h = host.clone();
    g.method(
        "StepHandle",
        "checks",
        &["items: Array"],
        "StepHandle",
        "What the step checks, one line each: `show` and `doc` list them under the step.",
        move |s: &mut StepHandle, items: Array| {
            let items: Vec<String> = items.iter().map(|x| x.to_string()).collect();
            edit(&h, s, ".checks()", &|st| {
                st.checks.extend(items.iter().cloned())
            })
        },
    );

    let h = host.clone();
    g.add(
        "ensure",
        Effect::None,
        &["condition: bool", "message: string"],
        "()",
        "Fails the step with `message` unless `condition` is true.",
        move |cond: bool, message: &str| -> R<()> {
            if cond {
                Ok(())
            } else {
                check_failed(&h, "ensure", message, None)
            }
        },
    );
    let h = host.clone();
    g.add(
        "ensure",
        Effect::None,
        &["condition: bool", "message: string", "help: string"],
        "()",
        "Fails the step with `message` and a hint for the operator unless `condition` is true.",
        move |cond: bool, message: &str, help: &str| -> R<()> {
            if cond {
                Ok(())
            } else {
                check_failed(&h, "ensure", message, Some(help.to_string()))
            }
        },
    );
    let h = host.clone();
    g.add(
        "fail",
        Effect::None,
        &["message: string"],
        "()",
        "Fails the step with `message`.",
        move |message: &str| -> R<()> { check_failed(&h, "fail", message, None) },
    );
    let h = host.clone();
    g.add(
        "fail",
        Effect::None,
        &["message: string", "help: string"],
        "()",
        "Fails the step with `message` and a hint saying what to do next.",
        move |message: &str, help: &str| -> R<()> {
            check_failed(&h, "fail", message, Some(help.to_string()))
        },
    );
    g.finish(engine);

    let mut t = ModuleBuilder::new("time", registry);
    t.add(
        "now",
        Effect::None,
        &[],
        "string",
        "The current UTC time, RFC 3339 (e.g. `2026-04-24T10:00:00Z`).",
        crate::audit::now_rfc3339,
    );
    t.add(
        "today",
        Effect::None,
        &[],
        "string",
        "Today's UTC date, `YYYY-MM-DD`.",
        || {
            crate::audit::now_rfc3339()
                .chars()
                .take(10)
                .collect::<String>()
        },
    );
    t.add(
        "sleep",
        Effect::None,
        &["seconds: int | float"],
        "()",
        "Waits this many seconds (at most 600); Ctrl-C cuts it short. For polling, prefer\n`checks::wait_until`, which bounds the wait and says what it was waiting for.",
        |seconds: Dynamic| -> R<()> {
            let secs = seconds
                .as_float()
                .or_else(|_| seconds.as_int().map(|i| i as f64))
                .map_err(|_| throw("usage", "time::sleep takes a number of seconds", None))?;
            sleep(secs)
        },
    );
    t.finish(engine);
}

/// Sleeps in short slices so Ctrl-C interrupts a wait promptly.
fn sleep(secs: f64) -> R<()> {
    if !(0.0..=600.0).contains(&secs) {
        return Err(throw(
            "usage",
            format!("time::sleep({secs}): the wait must be between 0 and 600 seconds"),
            None,
        ));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if crate::interrupt::is_set() {
            return Err(super::vendor_call::interrupted());
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(50)));
    }
}
