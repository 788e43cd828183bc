//! `prompt::`: asking the operator. Every prompt has an id (from `#{id: ...}` or derived from
//! the question) by which an `--answers` file answers it.

use super::{with_run, Effect, RunContext, R};
use crate::engine::registry::Registrar;
use crate::prompt::PromptError;
use crate::value::{self, throw};
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext, Position};
use runbook_secret::Secret;

/// `check-the-dashboard` from "Check the dashboard?", prefixed by the step id.
pub(crate) fn derive_id(host: &RunContext, question: &str) -> String {
    id_for(&host.step_name(), question)
}

/// The id a prompt without one gets in step `step` ("" outside a step): its question as a
/// slug, prefixed by the step id. `runbook answers` derives the same from the source.
pub(crate) fn id_for(step: &str, question: &str) -> String {
    let mut slug = String::new();
    for c in question.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    match step {
        "" => slug,
        s => format!("{s}.{slug}"),
    }
}

/// Maps a prompt failure to a script error; abort and Ctrl-C terminate (no `catch`).
pub(crate) fn prompt_error(e: PromptError) -> Box<EvalAltResult> {
    match e {
        PromptError::Aborted => {
            EvalAltResult::ErrorTerminated(Dynamic::from(crate::engine::ABORTED), Position::NONE)
                .into()
        }
        PromptError::Interrupted => {
            crate::interrupt::trigger();
            EvalAltResult::ErrorTerminated(
                Dynamic::from(crate::engine::INTERRUPTED),
                Position::NONE,
            )
            .into()
        }
        other => {
            let help = other.help();
            throw("prompt", other.to_string(), help)
        }
    }
}

fn id_of(host: &RunContext, opts: &Map, question: &str) -> String {
    value::opt_str(opts, "id").unwrap_or_else(|| derive_id(host, question))
}

/// Checks a pasted secret against an expected format.
fn check_format(secret: &Secret, opts: &Map) -> R<()> {
    let v = secret.expose();
    if let Some(min) = opts.get("min_length").and_then(|m| m.as_int().ok()) {
        if (v.chars().count() as i64) < min {
            return Err(throw(
                "prompt",
                format!("the value entered is shorter than {min} characters"),
                Some("copy the whole value and paste it again".into()),
            ));
        }
    }
    if value::opt_str(opts, "format").as_deref() == Some("uuid") && !is_uuid(v) {
        return Err(throw(
            "prompt",
            "the value entered is not in the expected format (a UUID like 8-4-4-4-12 hex digits)",
            Some("copy the whole token from the dashboard and paste it again; check for stray spaces".into()),
        ));
    }
    if v.chars().any(char::is_whitespace) {
        return Err(throw(
            "prompt",
            "the value entered contains whitespace",
            Some("paste only the token".into()),
        ));
    }
    Ok(())
}

pub(crate) fn is_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn confirm(h: &RunContext, question: &str, opts: Map) -> R<bool> {
    h.require_step("prompt::confirm")?;
    value::check_keys(&opts, CONFIRM_OPTIONS, "prompt::confirm")?;
    let id = id_of(h, &opts, question);
    let judgement = value::opt_flag(&opts, "judgement", "prompt::confirm")?;
    // A dry run's answers decide nothing at a vendor: `--yes` (or the dry run) answers it.
    if judgement && !h.dry_run() {
        return h
            .operator()
            .confirm_judgement(&id, question)
            .map_err(prompt_error);
    }
    h.operator().confirm(&id, question).map_err(prompt_error)
}

fn ask(h: &RunContext, question: &str, opts: Map) -> R<String> {
    h.require_step("prompt::ask")?;
    value::check_keys(&opts, ASK_OPTIONS, "prompt::ask")?;
    let id = id_of(h, &opts, question);
    let default = value::opt_str(&opts, "default");
    h.operator()
        .ask(&id, question, default.as_deref())
        .map_err(prompt_error)
}

fn secret(h: &RunContext, question: &str, opts: Map) -> R<Secret> {
    h.require_step("prompt::secret")?;
    value::check_keys(&opts, SECRET_OPTIONS, "prompt::secret")?;
    let id = id_of(h, &opts, question);
    let s = h.operator().secret(&id, question).map_err(prompt_error)?;
    check_format(&s, &opts)?;
    Ok(s)
}

/// The options maps' keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const CONFIRM_OPTIONS: &[&str] = &["id", "judgement"];
pub(crate) const ASK_OPTIONS: &[&str] = &["id", "default"];
pub(crate) const SECRET_OPTIONS: &[&str] = &["id", "format", "min_length"];
pub(crate) const CHOOSE_OPTIONS: &[&str] = &["id", "default"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module("prompt");

    macro_rules! both_forms {
        ($name:literal, $ret:literal, $doc:literal, $opts_doc:literal, $f:ident) => {
            m.add(
                $name,
                Effect::Operator,
                &["question: string"],
                $ret,
                $doc,
                |c: NativeCallContext, q: &str| {
                    value::at(
                        &c,
                        with_run(&c, concat!("prompt::", $name), |h| $f(h, q, Map::new())),
                    )
                },
            );
            m.add(
                $name,
                Effect::Operator,
                &["question: string", "options: Map"],
                $ret,
                $opts_doc,
                |c: NativeCallContext, q: &str, o: Map| {
                    value::at(
                        &c,
                        with_run(&c, concat!("prompt::", $name), |h| $f(h, q, o)),
                    )
                },
            );
        };
    }
    both_forms!(
        "confirm",
        "bool",
        "Asks a yes/no question; `--yes` answers yes.",
        "Asks a yes/no question; `--yes` answers yes. Options: #{id, judgement}: `judgement:\ntrue` marks a question only a person can answer (what the consumers do now): `--yes`\ndoes not answer it, an `--answers` entry or the terminal must.",
        confirm
    );
    both_forms!(
        "ask",
        "string",
        "Asks for a line of text.",
        "Asks for a line of text. Options: #{id, default}.",
        ask
    );
    both_forms!("secret", "Secret",
        "Asks for a secret with masked input; returns a Secret.",
        "Asks for a secret with masked input; returns a Secret.\nOptions: #{id, format: \"uuid\", min_length}.",
        secret);

    m.add(
        "choose",
        Effect::Operator,
        &["question: string", "options: Array"],
        "string",
        "Asks the operator to pick one of the options.",
        |c: NativeCallContext, question: &str, options: Array| -> R<String> {
            let r = with_run(&c, "prompt::choose", |h| {
                let id = derive_id(h, question);
                let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                h.operator()
                    .choose(&id, question, &options, None)
                    .map_err(prompt_error)
            });
            value::at(&c, r)
        },
    );
    m.add(
        "choose",
        Effect::Operator,
        &["question: string", "options: Array", "settings: Map"],
        "string",
        "Asks the operator to pick one of the options. Settings: #{id, default (what `--yes`\nanswers; without one, `--yes` does not answer)}.",
        |c: NativeCallContext, question: &str, options: Array, settings: Map| -> R<String> {
            let r = with_run(&c, "prompt::choose", |h| {
                value::check_keys(&settings, CHOOSE_OPTIONS, "prompt::choose")?;
                let id = id_of(h, &settings, question);
                let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                let default = value::opt_str(&settings, "default");
                if let Some(d) = &default {
                    if !options.contains(d) {
                        return Err(throw(
                            "usage",
                            format!("prompt::choose: the default '{d}' is not one of the options"),
                            None,
                        ));
                    }
                }
                h.operator()
                    .choose(&id, question, &options, default.as_deref())
                    .map_err(prompt_error)
            });
            value::at(&c, r)
        },
    );
    m.add(
        "checklist",
        Effect::Operator,
        &["items: Array"],
        "()",
        "Has the operator confirm every item; a \"no\" aborts the run (exit 3).",
        |c: NativeCallContext, items: Array| -> R<()> {
            let r = with_run(&c, "prompt::checklist", |h| {
                let id = format!("{}.checklist", h.step_name());
                let items: Vec<String> = items.iter().map(|o| o.to_string()).collect();
                h.operator().checklist(&id, &items).map_err(prompt_error)
            });
            value::at(&c, r)
        },
    );
    m.add(
        "instructions",
        Effect::Operator,
        &["lines: Array"],
        "()",
        "Shows numbered instructions for the operator to follow.",
        |c: NativeCallContext, lines: Array| {
            // Shown to the operator of a run; a runbook being inspected shows nothing.
            if let super::Stage::Running(h) = super::Stage::of(&c) {
                for (i, l) in lines.iter().enumerate() {
                    h.say().progress(format!("    {}. {}", i + 1, l));
                }
            }
        },
    );
    m.finish();
}
