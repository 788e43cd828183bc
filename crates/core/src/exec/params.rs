//! Resolving `--param K=V`, `env` bindings and defaults into `ctx.params`.

use crate::error::{Error, Result};
use crate::plan::{Param, Plan};
use crate::value;
use rhai::{Dynamic, Map};
use runbook_secret::{Secret, Source};
use serde_json::Value;

/// Parses `--param NAME=VALUE` strings against the plan's params. What is given is often a
/// token pasted without its `NAME=`, so an error names the `--param` by position (and by the
/// declared param it starts with), never repeating the rest.
pub fn parse_pairs(raw: &[String], plan: &Plan) -> Result<Vec<(String, String)>> {
    raw.iter()
        .enumerate()
        .map(|(i, kv)| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => match plan.param(k.trim()) {
                Some(_) => Ok((k.trim().to_string(), v.to_string())),
                None => Err(unknown(k.trim(), Some(i + 1), plan)),
            },
            _ => Err(malformed(i + 1, kv, plan)),
        })
        .collect()
}

/// Said of a malformed `--param`: the operator may wonder why their text is not shown.
const NOT_REPEATED: &str = "what was given is not repeated (it may be a secret)";

/// A letters, digits and '_' name (what `param` accepts).
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The error for the `position`th `--param`, `given`, which has no `NAME=`.
fn malformed(position: usize, given: &str, plan: &Plan) -> Error {
    let lead = given
        .trim_start()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default();
    let message = match plan.param(lead) {
        Some(p) => format!(
            "--param #{position} (for '{}') is not of the form NAME=VALUE",
            p.name
        ),
        None => format!("--param #{position} is not of the form NAME=VALUE"),
    };
    let help = match plan.param(lead).or(plan.params.first()) {
        Some(p) => format!("give --param {}=VALUE; {NOT_REPEATED}", p.name),
        None => format!("this runbook declares no params; {NOT_REPEATED}"),
    };
    Error::usage(message, help)
}

/// The error for a param `name` the plan does not declare, given as the `position`th
/// `--param` (or by a scenario). A name that is not one may be a token holding '=' (base64):
/// it is not repeated.
fn unknown(name: &str, position: Option<usize>, plan: &Plan) -> Error {
    let declared: Vec<&str> = plan.params.iter().map(|p| p.name.as_str()).collect();
    let declared = if declared.is_empty() {
        "this runbook declares no params".to_string()
    } else {
        format!("declared params: {}", declared.join(", "))
    };
    // Echoed only when it reads as a param name (lower case, as params are declared): a
    // base64 token pasted without NAME= splits at its padding into a "name" of letters and
    // digits that is most of the token.
    if is_name(name) && name.len() <= 64 && !name.chars().any(|c| c.is_ascii_uppercase()) {
        return Error::usage(format!("unknown param '{name}'"), declared);
    }
    let message = match position {
        Some(n) => format!("--param #{n} names no declared param"),
        None => "a param given names no declared param".to_string(),
    };
    Error::usage(message, format!("{declared}; {NOT_REPEATED}"))
}

/// What to say of secret params given on the command line (`--param`): other users of the
/// machine can read a process's arguments (`ps`, `/proc/PID/cmdline`) for as long as the
/// run lasts, and the shell keeps them in its history.
pub fn secrets_on_the_command_line(plan: &Plan, given: &[(String, String)]) -> Vec<String> {
    plan.params
        .iter()
        .filter(|p| p.secret && given.iter().any(|(k, _)| *k == p.name))
        .map(|p| {
            let instead = match &p.env {
                Some(var) => format!("set {var} in the environment instead"),
                None => "give it through an answers file (--answers) instead".to_string(),
            };
            format!(
                "warning: --param {} puts a secret on the command line, where other users of this machine can read it (ps) while the run lasts and the shell keeps it in its history; {instead}",
                p.name
            )
        })
        .collect()
}

/// The value of every declared param, or a usage error naming what is wrong.
pub fn resolve(
    plan: &Plan,
    given: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map> {
    if let Some((k, _)) = given.iter().find(|(k, _)| plan.param(k).is_none()) {
        return Err(unknown(k, None, plan));
    }
    let mut out = Map::new();
    for p in &plan.params {
        let raw = given
            .iter()
            .rev()
            .find(|(k, _)| *k == p.name)
            .map(|(_, v)| {
                (
                    v.clone(),
                    Source::Param {
                        name: p.name.clone(),
                    },
                )
            })
            .or_else(|| {
                let var = p.env.as_ref()?;
                let v = env(var).filter(|v| !v.is_empty())?;
                Some((v, Source::Env { name: var.clone() }))
            });
        // A URL with a password in it (a DATABASE_URL) is a credential whatever its name:
        // as text it would be in the journal and the stream, and a script could print it.
        if let (Some((text, _)), false) = (&raw, p.secret) {
            // Each item of a list (`RAXX_HEALTH_URL=https://a/h,https://u:pw@b/h`); a key in
            // the query (`?api_key=...`) as much as a password before the host.
            if text.split(',').any(|u| {
                runbook_secret::url_has_password(u) || crate::host::url_query_credential(u)
            }) {
                return Err(Error::usage(
                    format!("param '{}' is given a URL with a password or key in it, as text", p.name),
                    format!(
                        "the runbook must declare it a Secret: param(\"{}\", #{{ secret: true, ... }}); or give the URL without its password",
                        p.name
                    ),
                ));
            }
        }
        // Named as a credential and given one, as text (`--param api_token=tok_...`); or
        // named as a webhook or a DSN and given a URL: that URL is the credential.
        if let (Some((text, _)), false) = (&raw, p.secret) {
            let url_held = crate::text::url_is_credential(&p.name)
                && text.split(',').any(|u| crate::text::is_url(u.trim()));
            if url_held
                || crate::text::credential_like(&p.name) && !crate::text::names_or_locates(text)
            {
                let (message, help) = crate::host::not_a_secret(&p.name);
                return Err(Error::usage(message, help));
            }
        }
        let value = match raw {
            Some((text, source)) if p.secret => Dynamic::from(Secret::new(text, source)),
            Some((text, _)) => parse_value(p, &text)?,
            None => match &p.default {
                Some(d) => value::from_json(d),
                None if p.required => {
                    // A secret is best set in the environment: an argument is seen by `ps`.
                    let help = match (&p.env, p.secret) {
                        (Some(var), true) => {
                            format!(
                                "set {var} (or pass --param {}=..., which `ps` shows)",
                                p.name
                            )
                        }
                        (Some(var), false) => format!("pass --param {}=... or set {var}", p.name),
                        (None, _) => format!("pass --param {}=...", p.name),
                    };
                    return Err(Error::usage(
                        format!("param '{}' is required and has no value", p.name),
                        help,
                    ));
                }
                None => Dynamic::UNIT,
            },
        };
        out.insert(p.name.as_str().into(), value);
    }
    Ok(out)
}

/// Parses text by the type of the param's default: lists split on commas, numbers (whole or
/// decimal, as the default is), booleans.
fn parse_value(p: &Param, text: &str) -> Result<Dynamic> {
    let bad = |what: &str| {
        Error::usage(
            // The value is not repeated: it may be a secret given in the wrong place.
            format!(
                "param '{}' expects {what}; the value given ({} characters) is not one",
                p.name,
                text.chars().count()
            ),
            format!("e.g. --param {}=...", p.name),
        )
    };
    Ok(match &p.default {
        Some(Value::Array(_)) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Dynamic::from(s.to_string()))
            .collect::<rhai::Array>()
            .into(),
        Some(Value::Number(n)) if n.is_f64() => match text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => f.into(),
            _ => return Err(bad("a number such as 2.5")),
        },
        Some(Value::Number(_)) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| bad("a whole number"))?
            .into(),
        Some(Value::Bool(_)) => match text.trim() {
            "true" | "yes" | "1" => true.into(),
            "false" | "no" | "0" => false.into(),
            _ => return Err(bad("true or false")),
        },
        _ => text.to_string().into(),
    })
}
