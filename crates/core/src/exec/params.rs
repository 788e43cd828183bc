//! Resolving `--param K=V`, `env` bindings and defaults into `ctx.params`.

use crate::error::{Error, Result};
use crate::plan::{Param, Plan};
use crate::value;
use rhai::{Dynamic, Map};
use runbook_secret::{Secret, Source};
use serde_json::Value;

/// Parses `K=V` strings.
pub fn parse_pairs(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(Error::usage(
                format!("--param '{kv}' is not of the form NAME=VALUE"),
                "e.g. --param server_name=raxx-prod",
            )),
        })
        .collect()
}

/// The value of every declared param, or a usage error naming what is wrong.
pub fn resolve(
    plan: &Plan,
    given: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map> {
    let declared: Vec<&str> = plan.params.iter().map(|p| p.name.as_str()).collect();
    for (k, _) in given {
        if plan.param(k).is_none() {
            let help = if declared.is_empty() {
                "this runbook declares no params".to_string()
            } else {
                format!("declared params: {}", declared.join(", "))
            };
            return Err(Error::usage(format!("unknown param '{k}'"), help));
        }
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
        let value = match raw {
            Some((text, source)) if p.secret => Dynamic::from(Secret::new(text, source)),
            Some((text, _)) => parse_value(p, &text)?,
            None => match &p.default {
                Some(d) => value::from_json(d),
                None if p.required => {
                    let mut help = format!("pass --param {}=...", p.name);
                    if let Some(var) = &p.env {
                        help.push_str(&format!(" or set {var}"));
                    }
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
