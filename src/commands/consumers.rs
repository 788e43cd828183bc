//! `runbook consumers SECRET`: every place the secret's current value lives, before a
//! rotation revokes it. Read-only; values are compared by keyed fingerprint and never shown.

use crate::cli::ConsumersArgs;
use crate::error::{exit, Error, Result};
use crate::ui;
use runbook_core::error::Error as CoreError;
use runbook_secret::{Secret, Source};
use runbook_vendors::discovery::{self, Scan};
use serde_json::json;
use std::sync::Arc;

pub fn run(args: ConsumersArgs, settings: &crate::settings::Settings) -> Result<u8> {
    // A value pasted where a name goes (`"$POSTMARK_SERVER_TOKEN"` for its name) is not
    // repeated in the errors that would quote it (hostile review).
    if !runbook_core::text::names_something(&args.secret) {
        return Err(Error::usage(
            "the secret's NAME given is shaped like a value, not a name: not repeated here",
            "give the name the secret has in Infisical (e.g. POSTMARK_SERVER_TOKEN), not its value",
        ));
    }
    if let Some(var) = &args.from_env {
        let name = var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && var.chars().next().is_some_and(|c| !c.is_ascii_digit());
        if !name {
            return Err(Error::usage(
                "--from-env takes an environment variable's name, and what was given is not one: not repeated here",
                "give the variable's name (e.g. --from-env POSTMARK_SERVER_TOKEN), not its value",
            ));
        }
    }
    super::sandbox::require_sandbox(args.sandbox, &args.scenario)?;
    let wired = crate::wiring::services(settings, args.sandbox, &args.scenario)?;
    let services = &wired.services;
    let vendors = services.vendors()?.clone();
    let project = services
        .config()
        .infisical
        .project_id
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::usage(
                "no Infisical project: INFISICAL_PROJECT_ID is not set",
                "set INFISICAL_PROJECT_ID (or infisical_project_id in runbook.toml [vendors])",
            )
        })?;
    let block = |what: &str| {
        ui::progress(&ui::dim(what));
    };
    let value = match &args.from_env {
        Some(var) => {
            // The operator's shell first; in a rehearsal, the sandbox's exports too.
            let v = settings
                .var(var)
                .or_else(|| wired.lookup(var))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::usage(
                        format!("--from-env {var}: the variable is not set"),
                        "export it first, or leave out --from-env to read the value from Infisical",
                    )
                })?;
            Secret::new(v, Source::Env { name: var.clone() })
        }
        None => {
            block(&format!(
                "reading {} from Infisical ({project}, {}:{})",
                args.secret, args.env, args.path
            ));
            let v = vendors.clone();
            let (name, env, path, p) = (
                args.secret.clone(),
                args.env.clone(),
                args.path.clone(),
                project.clone(),
            );
            let record = services
                .runtime
                .block_on(
                    async move { v.infisical().get_secret(&p, &env, &path, &name, None).await },
                )
                .map_err(|_| CoreError::Interrupted)??;
            record.value
        }
    };
    let fp = discovery::Wanted::now(value.fingerprint());
    let mut scan = Scan::default();

    block("heroku: reading every app's config vars");
    let progress: discovery::Progress = Arc::new(|done, total| {
        if total >= 100 && (done % 100 == 0 || done == total) {
            ui::progress(&ui::dim(&format!("  heroku: {done}/{total} apps")));
        }
    });
    let apps = (!args.apps.is_empty()).then(|| args.apps.clone());
    let (v, f) = (vendors.clone(), fp.clone());
    scan.extend(
        services
            .runtime
            .block_on(async move { discovery::heroku(&v, &f, apps, progress).await })
            .map_err(|_| CoreError::Interrupted)??,
    );

    block("infisical: listing secrets");
    let (v, f, envs, p) = (
        vendors.clone(),
        fp.clone(),
        args.envs.clone(),
        project.clone(),
    );
    scan.extend(
        services
            .runtime
            .block_on(async move { discovery::infisical(&v, &f, &p, &envs, "/").await })
            .map_err(|_| CoreError::Interrupted)?,
    );

    if services.config().github.token.is_some() {
        block("github: looking for the secret in every repository, its environments and its organisation");
        let (v, name) = (vendors.clone(), args.secret.clone());
        scan.extend(
            services
                .runtime
                .block_on(async move { discovery::github(&v, &name, None).await })
                .map_err(|_| CoreError::Interrupted)??,
        );
    } else {
        ui::progress(&ui::dim("github: skipped (GITHUB_TOKEN is not set)"));
    }

    if args.json {
        let places: Vec<_> = scan
            .places
            .iter()
            .map(|p| {
                json!({"vendor": p.vendor, "place": p.place, "var": p.var, "verified": p.verified, "updated_at": p.updated_at})
            })
            .collect();
        let unchecked: Vec<_> = scan
            .unchecked
            .iter()
            .map(|u| json!({"vendor": u.vendor, "place": u.place, "error": u.error}))
            .collect();
        let mut out = json!({"secret": args.secret, "value": value.masked(), "scanned": scan.scanned, "places": places, "unchecked": unchecked});
        runbook_secret::redact_json(&mut out);
        ui::json(&out);
    } else {
        print_table(&args.secret, &value, &scan);
    }
    Ok(if scan.unchecked.is_empty() {
        exit::OK
    } else {
        exit::STEP_FAILED
    })
}

fn print_table(secret: &str, value: &Secret, scan: &Scan) {
    ui::out(&format!(
        "{secret} = {} is held in {} place(s) ({} looked at):",
        value.masked(),
        scan.places.iter().filter(|p| p.verified).count(),
        scan.scanned
    ));
    let rows: Vec<[String; 4]> = scan
        .places
        .iter()
        .map(|p| {
            let holds = if p.verified {
                "yes".to_string()
            } else {
                format!(
                    "maybe (GitHub never shows values; updated {})",
                    p.updated_at.as_deref().unwrap_or("?")
                )
            };
            [p.vendor.to_string(), p.place.clone(), p.var.clone(), holds]
        })
        .collect();
    let header = [
        "VENDOR".to_string(),
        "PLACE".into(),
        "NAME".into(),
        "HOLDS THE VALUE".into(),
    ];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for r in std::iter::once(&header).chain(rows.iter()) {
        ui::out(&format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0], r[1], r[2], r[3]
        ));
    }
    for u in &scan.unchecked {
        ui::err(&format!(
            "could not check {} {}: {}",
            u.vendor, u.place, u.error
        ));
    }
}
