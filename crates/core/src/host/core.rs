//! The runbook format itself: `runbook`, `param`, `prerequisite`, `step` and its handle,
//! `ensure`, `fail`, and `time::`.

use super::{Effect, Stage, R};
use crate::engine::registry::Registrar;
use crate::plan::spec::{self, ParamSpec, SpecError};
use crate::plan::{Meta, Param, Recovery, Step};
use crate::value::{self, throw};
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};

/// What `step(...)` returns: chain `.undo(...)`, `.irreversible(...)` and friends on it.
#[derive(Debug, Clone)]
pub struct StepHandle {
    index: usize,
}

/// Reads a `runbook(...)`/`param(...)` map; errors say which option and what is known.
fn read_spec<T: serde::de::DeserializeOwned>(map: &Map, function: &str) -> R<T> {
    spec::read::<T>(map).map_err(|e| match e {
        SpecError::UnknownKey { key, known } => throw(
            "usage",
            format!("{function}: unknown option '{key}'"),
            Some(value::known_options(&key, &known)),
        ),
        SpecError::Invalid(why) => throw("usage", format!("{function}: {why}"), None),
    })
}

fn parse_meta(map: &Map) -> R<Meta> {
    let m: Meta = read_spec(map, "runbook")?;
    let valid_id = !m.id.is_empty()
        && m.id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_id {
        return Err(throw(
            "usage",
            "runbook: 'id' is required: letters, digits, '-' and '_'",
            Some("e.g. runbook(#{ id: \"postmark-server-token\", title: \"...\" })".into()),
        ));
    }
    if m.title.is_empty() {
        return Err(throw("usage", "runbook: 'title' is required", None));
    }
    if let Some(v) = m
        .optional_vendors
        .iter()
        .find(|v| runbook_vendors::Vendor::from_name(v).is_none())
    {
        return Err(throw(
            "usage",
            format!("runbook: optional_vendors: '{v}' is not a vendor module"),
            Some("the vendor modules are postmark, infisical, heroku and github".into()),
        ));
    }
    Ok(m)
}

fn parse_param(ctx: &NativeCallContext, name: &str, opts: &Map) -> R<Param> {
    let p: ParamSpec = read_spec(opts, "param")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(throw(
            "usage",
            format!("param name '{name}' must be letters, digits and '_'"),
            None,
        ));
    }
    // A credential read from the environment as text is in the journal, the stream and every
    // snapshot, and a script can print it reversed: it must be declared a Secret.
    if let (Some(var), false) = (&p.env, p.secret) {
        if crate::text::credential_env(var) {
            return Err(throw(
                "usage",
                format!("param '{name}' reads {var}, which names a credential, as text"),
                Some(format!(
                    "declare it a Secret: param(\"{name}\", #{{ env: \"{var}\", secret: true, ... }}): its value is then masked everywhere and sent only to vendors"
                )),
            ));
        }
    }
    // Named as a credential (`api_token`), not a Secret, its default shaped like one: the
    // same (a default naming a credential, `SENDGRID_ADMIN_API_KEY`, is a name).
    if let (false, Some(serde_json::Value::String(d))) = (p.secret, &p.default) {
        let url_held = crate::text::url_is_credential(name)
            && d.split(',').any(|u| crate::text::is_url(u.trim()));
        if url_held || crate::text::credential_like(name) && !crate::text::names_or_locates(d) {
            let (message, help) = not_a_secret(name);
            return Err(throw("usage", message, Some(help)));
        }
    }
    // A Secret's value written in the runbook is read by everyone who reads the file, and a
    // default is used as text wherever it is shown: only a placeholder ("", "none") is one
    // ("postgres" is a password too: a second reading).
    if p.secret
        && p.default.as_ref().is_some_and(|d| match d {
            serde_json::Value::Null => false,
            serde_json::Value::String(d) => !(d.is_empty() || d.eq_ignore_ascii_case("none")),
            _ => true,
        })
    {
        return Err(throw(
            "usage",
            format!("param '{name}' is a Secret with a default value written in the runbook"),
            Some(format!(
                "a secret's value does not belong in the runbook's source: remove the default and {}",
                match &p.env {
                    Some(var) => format!("set {var}"),
                    None => format!("pass --param {name}=... (or read it with env:)"),
                }
            )),
        ));
    }
    Ok(Param {
        name: name.to_string(),
        default: p.default,
        help: p.help,
        required: p.required,
        secret: p.secret,
        env: p.env,
        locates: p.locates,
        position: ctx.call_position(),
    })
}

/// A param named as a credential whose value looks like one, as text: what is wrong, and
/// what to do.
pub(crate) fn not_a_secret(name: &str) -> (String, String) {
    (
        format!("param '{name}' is named as a credential, its value looks like one, and it is not declared a Secret"),
        format!(
            "declare it a Secret: param(\"{name}\", #{{ secret: true, ... }}): its value is then masked everywhere and sent only to vendors. A param that names a credential (an Infisical secret's name) takes a name: letters and digits in words joined by _ - . or /"
        ),
    )
}

/// A failed check. Under `--dry-run`, once a write has been skipped, later checks may depend
/// on it (the new token is not really in Infisical), so they are reported, not enforced.
fn check_failed(stage: &Stage, kind: &str, message: &str, help: Option<String>) -> R<()> {
    if let (true, Stage::Running(h)) = (stage.checks_unverifiable(), stage) {
        h.say().progress(format!(
            "    [dry-run] check not verifiable without the skipped writes: {}",
            runbook_secret::strip_markers(message)
        ));
        return Ok(());
    }
    Err(throw(kind, message, help))
}

/// Changes the step a handle points at, while the plan is being declared.
fn edit(
    c: &NativeCallContext,
    handle: &StepHandle,
    what: &str,
    f: impl FnOnce(&mut Step),
) -> R<StepHandle> {
    let plan = Stage::of(c).plan(what)?;
    let mut plan = plan.borrow_mut();
    match plan.steps.get_mut(handle.index) {
        Some(step) => {
            f(step);
            Ok(handle.clone())
        }
        None => Err(throw("usage", format!("{what}: unknown step"), None)),
    }
}

/// A top-level declaration `name(key, closure)` that files the closure under `key` in the
/// plan (`recover`, `restores`).
fn declare_by_key(
    what: &'static str,
    file: fn(&mut crate::plan::PlanBuilder, String, FnPtr),
) -> impl Fn(NativeCallContext, &str, FnPtr) -> R<()> {
    move |ctx, key, f| {
        let plan = Stage::of(&ctx).plan(what)?;
        file(&mut plan.borrow_mut(), key.to_string(), f);
        Ok(())
    }
}

/// What `pick` takes of each write of `function` in the current step (or the step being
/// undone) that may have applied, every attempt, oldest first.
fn step_writes(
    nc: &NativeCallContext,
    what: &str,
    function: &str,
    pick: impl Fn(&crate::ledger::Write) -> Option<Dynamic>,
) -> R<Array> {
    every_step_write(nc, what, function, |w| {
        w.outcome.may_have_applied().then(|| pick(w)).flatten()
    })
}

/// Like `step_writes`, without leaving out the writes that cannot have applied.
fn every_step_write(
    nc: &NativeCallContext,
    what: &str,
    function: &str,
    pick: impl Fn(&crate::ledger::Write) -> Option<Dynamic>,
) -> R<Array> {
    super::with_run(nc, what, |run| {
        Ok(run
            .ledger()
            .writes_of(&run.step_name())
            .iter()
            .filter(|w| w.function == function)
            .filter_map(&pick)
            .collect())
    })
}

/// One write as a script sees it: where it went, what came of it, the change request it
/// was filed as, and what it kept of the answer.
fn write_map(w: &crate::ledger::Write) -> Dynamic {
    let mut m = rhai::Map::new();
    m.insert("target".into(), w.target.clone().into());
    m.insert("state".into(), w.outcome.as_str().into());
    m.insert(
        "request".into(),
        w.filed
            .as_ref()
            .map_or(Dynamic::UNIT, |f| f.slug.clone().into()),
    );
    m.insert(
        "recorded".into(),
        w.answer
            .as_ref()
            .map_or(Dynamic::UNIT, crate::value::from_json),
    );
    m.insert("sent".into(), crate::value::from_json(&w.detail));
    m.into()
}

pub(crate) fn register(reg: &mut Registrar) {
    reg.global().set_custom_type::<StepHandle>("StepHandle");
    let mut g = reg.module("");

    g.add(
        "runbook",
        Effect::None,
        &["meta: Map"],
        "()",
        "Declares the runbook: id, title, secret, mode, role, cadence_days, average_duration,\nlast_validated, validation_method, when_to_run, references, gotchas, rollback, and\non_failure (\"rollback\", the default, or \"stop\": what a failure does under --yes before\nthe point of no return; after an irreversible step the run only goes forward), and egress:\nthe hosts http:: may reach (\"api.example.com\", \"*.example.com\", \"host:8443\", or \"param:NAME\" for\nthe host of a URL param); vendor modules and loopback need no entry, anything else is refused.",
        |ctx: NativeCallContext, map: Map| -> R<()> {
            let plan = Stage::of(&ctx).plan("runbook()")?;
            let meta = parse_meta(&map)?;
            let mut plan = plan.borrow_mut();
            if plan.meta.is_some() {
                return Err(throw("usage", "runbook() is declared twice", None));
            }
            plan.meta = Some((meta, ctx.call_position()));
            Ok(())
        },
    );

    g.add(
        "param",
        Effect::None,
        &["name: string", "options: Map"],
        "()",
        "Declares a parameter: #{default, help, required, secret, env, locates}. Values come from\n`--param name=value`, then the `env` variable, then the default. `locates: true` marks a\nparam that picks which secret is rotated (a server, a project): two runs of the rotation\nwith the same values of those params cannot run at once; other params do not matter.\n`locates: \"path\"` compares folder paths as the vendor does (`/a//b/` is `/a/b`);\n`locates: \"case-insensitive\"` a name the vendor does not tell apart by case.",
        |ctx: NativeCallContext, name: &str, opts: Map| -> R<()> {
            let plan = Stage::of(&ctx).plan("param()")?;
            let p = parse_param(&ctx, name, &opts)?;
            let mut plan = plan.borrow_mut();
            if plan.param(name).is_some() {
                return Err(throw("usage", format!("param '{name}' is declared twice"), None));
            }
            plan.params.push(p);
            Ok(())
        },
    );

    g.add(
        "recover",
        Effect::None,
        &["key: string", "how: Fn(ctx) -> Secret"],
        "()",
        "Declares how `runbook resume` and `rollback` get the secret `ctx[key]` back after a crash\n(the journal holds only its fingerprint), e.g. by reading a version from Infisical. The\nvalue is checked against the journalled fingerprint. Without it, resume asks for the value.",
        declare_by_key("recover()", |plan, key, how| {
            plan.recover.push(Recovery { key, how })
        }),
    );

    g.add(
        "restores",
        Effect::None,
        &["key: string", "works: Fn(ctx) -> bool"],
        "()",
        "Declares that rollback puts `ctx[key]` back where the run replaced it, and how to tell\nthat it still works at the vendor (a read-only probe). Before undoing anything, rollback\nasks; when the value no longer works (deleted, revoked, expired) it restores nothing and\nsays how to go forward instead.",
        declare_by_key("restores()", |plan, key, works| {
            plan.restores.push(crate::plan::Restore { key, works })
        }),
    );

    g.add(
        "prerequisite",
        Effect::None,
        &["text: string"],
        "()",
        "Adds an item to the checklist the operator confirms before the first step.",
        |ctx: NativeCallContext, text: &str| -> R<()> {
            let plan = Stage::of(&ctx).plan("prerequisite()")?;
            plan.borrow_mut().prerequisites.push(text.to_string());
            Ok(())
        },
    );

    g.add(
        "step",
        Effect::None,
        &["id: string", "title: string", "body: Fn(ctx)"],
        "StepHandle",
        "Declares a step. The body runs with the run's `ctx`; chain `.undo(|ctx| ...)`,\n`.irreversible(why)`, `.confirm(question)`, `.idempotent()`, `.verify(|ctx| ...)`, `.checks([...])`,\n`.no_undo(why)` (it writes, but leaves nothing to restore) and `.describe(text)` (for `runbook doc`).",
        |ctx: NativeCallContext, id: &str, title: &str, body: FnPtr| -> R<StepHandle> {
            let plan = Stage::of(&ctx).plan("step()")?;
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
            let mut plan = plan.borrow_mut();
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
                undo_always: false,
                verify: None,
                irreversible: None,
                idempotent: false,
                confirm: None,
                approval: None,
                checks: Vec::new(),
                no_undo: None,
                description: None,
                timeout: crate::plan::DEFAULT_STEP_TIMEOUT,
                position: ctx.call_position(),
                source: ctx.call_source().unwrap_or_default().to_string(),
            });
            Ok(StepHandle {
                index: plan.steps.len() - 1,
            })
        },
    );

    g.method(
        "StepHandle",
        "undo",
        &["body: Fn(ctx)"],
        "StepHandle",
        "How to revert what the step did; rollback runs it (newest step first) when a later step\nfails, and only when at least one of the step's writes took effect. It gets `ctx.done`,\nthe step's writes (#{function, target, outcome: \"applied\" | \"failed\" | \"unknown\"}),\nand `ctx.changed(function)` lists the targets a function changed, so it restores exactly\nthose. Reads what else it needs from `ctx` (e.g. the old value the step replaced).",
        |c: NativeCallContext, s: &mut StepHandle, f: FnPtr| edit(&c, s, ".undo()", |st| st.undo = Some(f)),
    );
    g.method(
        "StepHandle",
        "undo",
        &["body: Fn(ctx)", "options: Map"],
        "StepHandle",
        "The undo, with options: #{always: true} runs it even when none of the step's writes\ntook effect (for effects the engine cannot see).",
        |c: NativeCallContext, s: &mut StepHandle, f: FnPtr, opts: Map| {
            value::check_keys(&opts, &["always"], ".undo()")?;
            let always = opts.get("always").and_then(|v| v.as_bool().ok()).unwrap_or(false);
            edit(&c, s, ".undo()", |st| {
                st.undo = Some(f);
                st.undo_always = always;
            })
        },
    );
    g.method(
        "StepHandle",
        "verify",
        &["body: Fn(ctx)"],
        "StepHandle",
        "A check run after the step's body.",
        |c: NativeCallContext, s: &mut StepHandle, f: FnPtr| {
            edit(&c, s, ".verify()", |st| st.verify = Some(f))
        },
    );
    g.method(
        "StepHandle",
        "irreversible",
        &["why: string"],
        "StepHandle",
        "Marks the point of no return: rollback stops here, and says `why` (what is lost and how\nto recover: usually, rotate afresh). Pair it with `.confirm(question)`. With a `.verify`,\nthe vendor decides: a step whose verify reads that it did not take effect (the operator\ndeleted the wrong token in a dashboard) does not stop the rollback, so that verify must\nread true as soon as any part of the effect is there.",
        |c: NativeCallContext, s: &mut StepHandle, why: &str| {
            edit(&c, s, ".irreversible()", |st| st.irreversible = Some(why.to_string()))
        },
    );
    g.method(
        "StepHandle",
        "idempotent",
        &[],
        "StepHandle",
        "Declares that running the step twice is harmless (safe to retry after a crash).",
        |c: NativeCallContext, s: &mut StepHandle| {
            edit(&c, s, ".idempotent()", |st| st.idempotent = true)
        },
    );
    g.method(
        "StepHandle",
        "confirm",
        &["question: string"],
        "StepHandle",
        "A yes/no question the operator answers before the step runs (`--yes` answers it);\n`no` stops the run.",
        |c: NativeCallContext, s: &mut StepHandle, q: &str| {
            edit(&c, s, ".confirm()", |st| st.confirm = Some(q.to_string()))
        },
    );
    g.method(
        "StepHandle",
        "approval",
        &["options: Map"],
        "StepHandle",
        "Four eyes: before the step runs, another actor must approve it with `runbook approve\nRUN_ID` (or `runbook deny RUN_ID --reason ...`). Options: #{by: who must approve (text\nfor the request), timeout: how long the run waits, like \"30m\" (default 30m)}. The run's own\nactor can never approve it; a timeout fails the step closed and is recorded as `timeout`.",
        |c: NativeCallContext, s: &mut StepHandle, opts: Map| {
            value::check_keys(&opts, &["by", "timeout"], ".approval()")?;
            let by = value::opt_str(&opts, "by").unwrap_or_else(|| "another operator".into());
            let timeout = match value::opt_str(&opts, "timeout") {
                None => std::time::Duration::from_secs(30 * 60),
                Some(t) => crate::interrupt::parse_duration(&t)
                    .filter(|d| !d.is_zero() && d.as_secs() <= 7 * 24 * 3600)
                    .ok_or_else(|| {
                        throw(
                            "usage",
                            format!(".approval(): timeout '{}' is not a duration between 1s and 7 days", crate::text::truncate(&t, 40)),
                            Some("e.g. timeout: \"30m\"".into()),
                        )
                    })?,
            };
            edit(&c, s, ".approval()", |st| {
                st.approval = Some(crate::plan::ApprovalSpec { by, timeout })
            })
        },
    );
    g.method(
        "StepHandle",
        "no_undo",
        &["why: string"],
        "StepHandle",
        "Says why a step that writes needs no undo (a restart, a test email: nothing to restore);\n`check` asks for it otherwise.",
        |c: NativeCallContext, s: &mut StepHandle, why: &str| {
            edit(&c, s, ".no_undo()", |st| st.no_undo = Some(why.to_string()))
        },
    );
    g.method(
        "StepHandle",
        "timeout",
        &["limit: string"],
        "StepHandle",
        "The step's wall-clock limit, like \"90s\", \"10m\" or \"2h\" (default 10m, at most 24h).\nTime waiting for the operator at a prompt does not count. Past it, the step fails\n(script code, `time::sleep` and vendor calls all stop) and the run's failure handling applies.",
        |c: NativeCallContext, s: &mut StepHandle, limit: &str| {
            let parsed = crate::interrupt::parse_duration(limit)
                .filter(|d| !d.is_zero() && d.as_secs() <= 24 * 3600)
                .ok_or_else(|| {
                    throw(
                        "usage",
                        format!(
                            ".timeout(\"{}\"): not a duration between 1s and 24h",
                            crate::text::truncate(limit, 40)
                        ),
                        Some("write a whole number and a unit: \"90s\", \"10m\", \"2h\"".into()),
                    )
                })?;
            edit(&c, s, ".timeout()", |st| st.timeout = parsed)
        },
    );
    g.method(
        "StepHandle",
        "describe",
        &["text: string"],
        "StepHandle",
        "A paragraph for `runbook doc`: what the step does and why.",
        |c: NativeCallContext, s: &mut StepHandle, text: &str| {
            edit(&c, s, ".describe()", |st| {
                st.description = Some(text.to_string())
            })
        },
    );
    g.method(
        "StepHandle",
        "checks",
        &["items: Array"],
        "StepHandle",
        "What the step checks, one line each: `show` and `doc` list them under the step.",
        |c: NativeCallContext, s: &mut StepHandle, items: Array| {
            let items: Vec<String> = items.iter().map(|x| x.to_string()).collect();
            edit(&c, s, ".checks()", |st| st.checks.extend(items))
        },
    );

    g.add(
        "ensure",
        Effect::None,
        &["condition: bool", "message: string"],
        "()",
        "Fails the step with `message` unless `condition` is true.",
        |c: NativeCallContext, cond: bool, message: &str| -> R<()> {
            if cond {
                Ok(())
            } else {
                check_failed(&Stage::of(&c), "ensure", message, None)
            }
        },
    );
    g.add(
        "ensure",
        Effect::None,
        &["condition: bool", "message: string", "help: string"],
        "()",
        "Fails the step with `message` and a hint for the operator unless `condition` is true.",
        |c: NativeCallContext, cond: bool, message: &str, help: &str| -> R<()> {
            if cond {
                Ok(())
            } else {
                check_failed(&Stage::of(&c), "ensure", message, Some(help.to_string()))
            }
        },
    );
    g.add(
        "fail",
        Effect::None,
        &["message: string"],
        "()",
        "Fails the step with `message`.",
        |c: NativeCallContext, message: &str| -> R<()> {
            check_failed(&Stage::of(&c), "fail", message, None)
        },
    );
    g.add(
        "fail",
        Effect::None,
        &["message: string", "help: string"],
        "()",
        "Fails the step with `message` and a hint saying what to do next.",
        |c: NativeCallContext, message: &str, help: &str| -> R<()> {
            check_failed(&Stage::of(&c), "fail", message, Some(help.to_string()))
        },
    );
    g.add(
        "checks_unverifiable",
        Effect::None,
        &[],
        "bool",
        "Whether a check cannot be verified now: under `--dry-run`, once a write has been skipped\n(a later check may need it), when `fail` reports instead of failing. A wait stops at its first\nfailed attempt then: nothing it waits for can come (std/checks' `wait_until` does).",
        |c: NativeCallContext| -> bool { Stage::of(&c).checks_unverifiable() },
    );
    g.finish();

    let mut c = reg.module("");
    c.method(
        "Ctx",
        "leave",
        &["what: string"],
        "()",
        "In an undo: says what it leaves at a vendor on purpose (a new credential kept for\ndiagnosis), in words the operator can act on. The rollback's summary, `runbook runs` and\nthe evidence list it as left in place, not undone. Outside an undo, an error.",
        |nc: NativeCallContext, _ctx: &mut crate::value::Ctx, what: &str| -> R<()> {
            super::with_run(&nc, "ctx.leave", |run| {
                if !run.scope().in_undo() {
                    return Err(super::throw(
                        "usage",
                        "ctx.leave says what an undo leaves at a vendor: call it in a step's .undo",
                        None,
                    ));
                }
                // A dry run's undo changes nothing, and leaves nothing.
                if run.dry_run() {
                    return Ok(());
                }
                run.ledger()
                    .record(crate::events::Event::Kept(crate::events::Kept {
                        step: run.step_name(),
                        // The ledger's views (the summary, --json) read it as folded.
                        what: runbook_secret::redact(what).into_owned(),
                    }));
                Ok(())
            })
        },
    );
    c.method(
        "Ctx",
        "recorded",
        &["function: string"],
        "Array",
        "What the writes of `function` in this step (every attempt, applied or with a lost answer)\nkept of their answers with `record:`, oldest first: e.g. the ids of the credentials a create\ncall made, for an undo (or a retry) that deletes them after a crash.",
        |nc: NativeCallContext, _ctx: &mut crate::value::Ctx, function: &str| -> R<Array> {
            step_writes(&nc, "ctx.recorded", function, |w| {
                w.answer.as_ref().map(crate::value::from_json)
            })
        },
    );
    c.method(
        "Ctx",
        "written",
        &["function: string"],
        "Array",
        "The targets the writes of `function` in this step reached (every attempt, applied or with\na lost answer), oldest first: e.g. the URLs an earlier attempt already deleted.",
        |nc: NativeCallContext, _ctx: &mut crate::value::Ctx, function: &str| -> R<Array> {
            step_writes(&nc, "ctx.written", function, |w| {
                Some(Dynamic::from(w.target.clone()))
            })
        },
    );
    c.method(
        "Ctx",
        "writes",
        &["function: string"],
        "Array",
        "Every write of `function` in this step (every attempt), oldest first, as\n#{target, state, request, recorded, sent}: state is \"applied\", \"failed\", \"not_sent\",\n\"unknown\" (sent, and its answer was lost or a server error: it may have taken effect) or \"pending\" (filed\nas a change request, `request`, not merged yet). A retry after a crash reads here what an\nearlier attempt may have left at the vendor before it acts again.",
        |nc: NativeCallContext, _ctx: &mut crate::value::Ctx, function: &str| -> R<Array> {
            every_step_write(&nc, "ctx.writes", function, |w| Some(write_map(w)))
        },
    );
    c.method(
        "Ctx",
        "sent",
        &["function: string"],
        "Array",
        "What the writes of `function` in this step sent (every attempt, applied or with a lost\nanswer), oldest first, as the journal keeps it: maps whose secrets are fingerprints\n(`hmac:…`). Compare one with `value.fingerprint()` to tell whether what a vendor holds is\nwhat this step wrote, or something another run left there.",
        |nc: NativeCallContext, _ctx: &mut crate::value::Ctx, function: &str| -> R<Array> {
            step_writes(&nc, "ctx.sent", function, |w| {
                Some(crate::value::from_json(&w.detail))
            })
        },
    );
    c.finish();

    let mut r = reg.module("run");
    r.add(
        "id",
        Effect::None,
        &[],
        "string",
        "This run's id (as `runbook runs` lists it): e.g. to name or tag what a step creates at a\nvendor, so a person (or a later attempt) can tell which run made it.",
        |nc: NativeCallContext| -> R<String> {
            super::with_run(&nc, "run::id", |run| Ok(run.info().run_id.clone()))
        },
    );
    r.add(
        "target",
        Effect::None,
        &[],
        "string",
        "Where this run's vendor calls go: \"sandbox\" (this process's simulators), \"loopback\" (every\nendpoint on this machine: a rehearsal) or \"production\".",
        |nc: NativeCallContext| -> R<String> {
            super::with_run(&nc, "run::target", |run| {
                Ok(run.info().modes.target.as_str().to_string())
            })
        },
    );
    r.add(
        "resumed",
        Effect::None,
        &[],
        "bool",
        "True in a process that took over a run an earlier one started (`runbook resume`): time has\npassed, and a value the run holds may have changed at the vendor since (re-check it).",
        |nc: NativeCallContext| -> R<bool> {
            super::with_run(&nc, "run::resumed", |run| {
                Ok(run.info().modes.entry == crate::run::Entry::Resume)
            })
        },
    );
    r.add(
        "took_effect",
        Effect::None,
        &["step: string"],
        "bool",
        "Whether a write of step `step` of this run may have taken effect, as its journal says
(applied, or sent with its answer lost): what a process killed in that step did survives it,
where a flag the step set in `ctx` does not.",
        |nc: NativeCallContext, step: &str| -> R<bool> {
            super::with_run(&nc, "run::took_effect", |run| {
                Ok(run
                    .ledger()
                    .writes_of(step)
                    .iter()
                    .any(|w| w.outcome.may_have_applied()))
            })
        },
    );
    r.finish();

    let mut t = reg.module("time");
    t.add(
        "now",
        Effect::None,
        &[],
        "string",
        "The current UTC time, RFC 3339 (e.g. `2026-04-24T10:00:00Z`).",
        crate::run::now_rfc3339,
    );
    t.add(
        "today",
        Effect::None,
        &[],
        "string",
        "Today's UTC date, `YYYY-MM-DD`.",
        || {
            crate::run::now_rfc3339()
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
    t.finish();
}

/// Sleeps in short slices so Ctrl-C interrupts a wait promptly.
pub(super) fn sleep(secs: f64) -> R<()> {
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
        if let Some(token) = crate::interrupt::over_budget() {
            return Err(super::vendor_call::stopped(
                crate::runtime::Interrupted::TimedOut(token),
            ));
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(50)));
    }
}
