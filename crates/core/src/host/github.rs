//! `github::`: Actions secrets, encrypted to each repo's public key (libsodium sealed box).

use super::placeholder::Placeholder;
use super::vendor_call::{is_dry_run_secret, per_target, targets, R};
use super::{with_run, Effect, RunContext};
use crate::engine::registry::{Registrar, Repeat};
use crate::value;
use rhai::{Array, Dynamic, Map, NativeCallContext};
use runbook_secret::Secret;
use runbook_vendors::Vendor;

fn set_secret(h: &RunContext, repos: Dynamic, name: &str, secret: Secret) -> R<Dynamic> {
    let repos = targets(&repos, "github::set_secret repos")?;
    let detail = serde_json::json!({"repos": repos, "name": name, "value": secret.fingerprint()});
    let target = format!("PUT /repos/{{{}}}/actions/secrets/{name}", repos.join(","));
    if h.dry_run() || is_dry_run_secret(&secret) {
        return h
            .writes()
            .mutate("github::set_secret", Effect::Write, &target, detail, || {
                Ok(Placeholder::of("github::set_secret"))
            });
    }
    let change = serde_json::json!({"name": name, "value": secret.fingerprint()});
    let name = name.to_string();
    let results = h.writes().mutate_each(
        "github::set_secret",
        Effect::Write,
        &repos,
        change,
        |n| format!("github PUT secret on {n} repo(s)"),
        |v, repo| {
            let name = name.clone();
            let secret = secret.clone();
            async move { v.github().set_secret(&repo, &name, &secret).await }
        },
    )?;
    per_target("github::set_secret", results, |w| {
        let mut m = Map::new();
        m.insert(
            "created".into(),
            matches!(w, runbook_vendors::github::SecretWrite::Created).into(),
        );
        m
    })
    .map(Dynamic::from)
}

fn secrets(h: &RunContext, repo: &str) -> R<Dynamic> {
    h.require_step("github::secrets")?;
    let v = h.vendors()?;
    let r = repo.to_string();
    let list = h.block(
        &format!("github GET /repos/{repo}/actions/secrets"),
        async move { v.github().list_secrets(&r).await },
    )?;
    let arr: Array = list
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("name".into(), s.name.clone().into());
            m.insert("created_at".into(), s.created_at.clone().into());
            m.insert("updated_at".into(), s.updated_at.clone().into());
            Dynamic::from(m)
        })
        .collect();
    Ok(arr.into())
}

/// The repositories (of `repos`, or all the token lists) with an Actions secret `name`.
fn possible_holders(h: &RunContext, name: &str, opts: Map) -> R<Dynamic> {
    h.require_step("github::possible_holders")?;
    value::check_keys(&opts, POSSIBLE_HOLDERS_OPTIONS, "github::possible_holders")?;
    let repos = match opts.get("repos") {
        Some(r) => Some(targets(r, "github::possible_holders repos")?),
        None => None,
    };
    let v = h.vendors()?;
    let name = name.to_string();
    let scan = h.block(
        "github: looking for the secret in every repository, its environments and its organisation",
        async move { runbook_vendors::discovery::github(&v, &name, repos).await },
    )?;
    Ok(super::vendor_call::scan_map(&scan, holder_place).into())
}

/// A repository that may hold a value, as `possible_holders` returns it: #{repo, name,
/// updated_at}.
pub(super) fn holder_place(p: &runbook_vendors::discovery::Place) -> Map {
    let mut m = Map::new();
    m.insert("repo".into(), p.place.clone().into());
    m.insert("name".into(), p.var.clone().into());
    m.insert(
        "updated_at".into(),
        p.updated_at.clone().unwrap_or_default().into(),
    );
    m.insert("scope".into(), p.scope.into());
    m
}

/// The options map's keys (the runtime refuses others; `check` flags them before a run).
pub(crate) const POSSIBLE_HOLDERS_OPTIONS: &[&str] = &["repos"];

pub(crate) fn register(reg: &mut Registrar) {
    let mut m = reg.module(Vendor::Github.name());
    m.add("set_secret", Effect::Write, &["repos: string | Array", "name: string", "value: Secret"], "Map",
        "Sets an Actions secret on one repo or many (owner/name), concurrently. Returns\n#{repo: #{ok, created}}; fails naming each repo that failed.",
        |c: NativeCallContext, r: Dynamic, n: &str, s: Secret| value::at(&c, with_run(&c, "github::set_secret", |h| set_secret(h, r, n, s))))
    .repeat(Repeat::Safe)
    .at_once("each repository");
    m.add(
        "possible_holders",
        Effect::Read,
        &["name: string", "options: Map"],
        "Map",
        "Every Actions secret `name` the repositories' workflows may see: possible holders only\n(GitHub never returns a value): each repository's own, its deployment environments'\n(`repo` reads \"owner/name (environment prod)\") and its organisation's (\"organization\nowner\"), as `scope` says. Options: #{repos (default: every repository the token lists)}.\nReturns #{found: [#{repo, name, updated_at, scope}], unchecked: [#{place, error}], scanned}.",
        |c: NativeCallContext, n: &str, o: Map| {
            value::at(&c, with_run(&c, "github::possible_holders", |h| possible_holders(h, n, o)))
        },
    )
    .at_once("each repository");
    m.add(
        "secrets",
        Effect::Read,
        &["repo: string"],
        "Array",
        "The repo's Actions secrets (names and dates; GitHub never returns values).",
        |c: NativeCallContext, r: &str| {
            value::at(&c, with_run(&c, "github::secrets", |h| secrets(h, r)))
        },
    );
    m.finish();
}
