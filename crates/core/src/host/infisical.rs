//! `infisical::`: read, set (upsert) and delete secrets; values come back as `Secret`s.

use super::placeholder::Placeholder;
use super::vendor_call::{is_dry_run_secret, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::value::{self, throw};
use rhai::{Dynamic, Map, NativeCallContext};
use runbook_secret::Secret;
use runbook_vendors::infisical::SecretRecord;
use runbook_vendors::Vendor;

/// Project, environment and path from the options, the project defaulting to the config.
struct Scope {
    project_id: String,
    env: String,
    path: String,
    version: Option<u64>,
}

fn scope(h: &RunContext, opts: &Map, function: &str) -> R<Scope> {
    value::check_keys(opts, &["project_id", "env", "path", "version"], function)?;
    let configured = h
        .services()
        .config()
        .infisical_project_id
        .clone()
        .unwrap_or_default();
    let project_id = value::opt_str(opts, "project_id")
        .filter(|p| !p.is_empty())
        .unwrap_or(configured);
    if project_id.is_empty() {
        return Err(throw(
            "usage",
            format!("{function}: no Infisical project id"),
            Some("pass #{ project_id: ... } or set INFISICAL_PROJECT_ID".into()),
        ));
    }
    let version = match opts.get("version") {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => Some(v.as_int().ok().filter(|n| *n > 0).ok_or_else(|| {
            throw(
                "usage",
                format!("{function}: version must be a positive number"),
                None,
            )
        })? as u64),
    };
    Ok(Scope {
        project_id,
        env: value::opt_str(opts, "env").unwrap_or_else(|| "prod".into()),
        path: value::opt_str(opts, "path").unwrap_or_else(|| "/".into()),
        version,
    })
}

fn record_map(r: &SecretRecord) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), r.name.clone().into());
    m.insert("value".into(), Dynamic::from(r.value.clone()));
    m.insert("version".into(), (r.version as i64).into());
    m.insert("environment".into(), r.environment.clone().into());
    m.insert("path".into(), r.secret_path.clone().into());
    m.insert("updated_at".into(), r.updated_at.clone().into());
    m
}

fn get(h: &RunContext, name: &str, opts: Map) -> R<Dynamic> {
    h.require_step("infisical::secret")?;
    let s = scope(h, &opts, "infisical::secret")?;
    let v = h.vendors()?;
    let name = name.to_string();
    let label = format!("infisical GET /api/v4/secrets/{name}");
    let r = h.block(&label, async move {
        v.infisical()
            .get_secret(&s.project_id, &s.env, &s.path, &name, s.version)
            .await
    })?;
    Ok(record_map(&r).into())
}

fn set(h: &RunContext, name: &str, value: Secret, opts: Map) -> R<Dynamic> {
    let s = scope(h, &opts, "infisical::set_secret")?;
    let detail = serde_json::json!({
        "name": name, "env": s.env, "path": s.path, "project_id": s.project_id,
        "value": value.fingerprint(),
    });
    let target = format!("{name} in {}:{}{}", s.project_id, s.env, s.path);
    h.mutate(
        "infisical::set_secret",
        Effect::Write,
        &target,
        detail,
        || {
            if is_dry_run_secret(&value) {
                return Ok(Placeholder::of("infisical::set_secret"));
            }
            let v = h.vendors()?;
            let name = name.to_string();
            let label = format!("infisical PATCH /api/v4/secrets/{name}");
            let (r, outcome) = h.block(&label, async move {
                v.infisical()
                    .set_secret(&s.project_id, &s.env, &s.path, &name, &value)
                    .await
            })?;
            let mut m = record_map(&r);
            m.insert(
                "created".into(),
                matches!(outcome, runbook_vendors::infisical::SetOutcome::Created).into(),
            );
            Ok(m.into())
        },
    )
}

fn delete(h: &RunContext, name: &str, opts: Map) -> R<Dynamic> {
    let s = scope(h, &opts, "infisical::delete_secret")?;
    let detail = serde_json::json!({"name": name, "env": s.env, "path": s.path});
    let target = format!("{name} in {}:{}{}", s.project_id, s.env, s.path);
    h.mutate(
        "infisical::delete_secret",
        Effect::Destructive,
        &target,
        detail,
        || {
            let v = h.vendors()?;
            let name = name.to_string();
            let label = format!("infisical DELETE /api/v4/secrets/{name}");
            h.block(&label, async move {
                v.infisical()
                    .delete_secret(&s.project_id, &s.env, &s.path, &name)
                    .await
            })?;
            Ok(Dynamic::UNIT)
        },
    )
}

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module(Vendor::Infisical.name());
    m.add("secret", Effect::Read, &["name: string", "options: Map"], "Map",
        "Reads a secret: #{value (Secret), version, name, environment, path, updated_at}.\nOptions: #{project_id (default $INFISICAL_PROJECT_ID), env (default \"prod\"), path (default \"/\"),\nversion (an older version: how rollback reads the previous value)}.",
        |c: NativeCallContext, n: &str, o: Map| value::at(&c, with_run(&c, "infisical::secret", |h| get(h, n, o))));
    m.add(
        "secret",
        Effect::Read,
        &["name: string"],
        "Map",
        "Reads a secret in the default project, env \"prod\", path \"/\".",
        |c: NativeCallContext, n: &str| {
            value::at(
                &c,
                with_run(&c, "infisical::secret", |h| get(h, n, Map::new())),
            )
        },
    );
    m.add("set_secret", Effect::Write, &["name: string", "value: Secret", "options: Map"], "Map",
        "Sets a secret like `infisical secrets set` (update, or create when missing); a new\nversion is kept. Returns the record with its new version and `created`.",
        |c: NativeCallContext, n: &str, v: Secret, o: Map| value::at(&c, with_run(&c, "infisical::set_secret", |h| set(h, n, v, o))))
    .repeat(Repeat::Safe);
    m.add(
        "delete_secret",
        Effect::Destructive,
        &["name: string", "options: Map"],
        "()",
        "Deletes a secret.",
        |c: NativeCallContext, n: &str, o: Map| {
            value::at(
                &c,
                with_run(&c, "infisical::delete_secret", |h| delete(h, n, o)),
            )
        },
    )
    .repeat(Repeat::Safe);
    m.finish();
}
