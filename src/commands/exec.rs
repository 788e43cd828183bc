//! `runbook exec`.

use crate::audit::AuditLog;
use crate::cli::ExecArgs;
use crate::error::{exit, Error, Result};
use crate::exec::{self, params, Report, RunStatus};
use crate::host::services::Services;
use crate::host::RunInfo;
use crate::prompt::{Answers, Prompter};
use crate::runbook::{self, Ctx, SourceFile};
use crate::runtime::Runtime;
use crate::ui;
use crate::vendors::{VendorConfig, VendorFileConfig};
use std::rc::Rc;

pub fn run(args: ExecArgs) -> Result<u8> {
    let path = runbook::find(&args.runbook)?;
    let file = SourceFile::read(&path)?;
    let answers = match &args.answers {
        Some(p) => Answers::load(p)?,
        None => Answers::default(),
    };
    let pairs = params::parse_pairs(&args.params)?;
    let prompter = Prompter::new(answers, args.yes || args.dry_run);
    let loaded = runbook::load(file, prompter)?;
    let prompter = loaded.host.prompter.borrow();
    if !loaded.plan.prerequisites.is_empty() && !prompter.can_confirm("prerequisites") {
        return Err(Error::usage(
            "prompt 'prerequisites' needs an answer, and there is no terminal to ask on",
            "confirm the prerequisites with --yes, or add `prerequisites = true` to a file passed with --answers",
        ));
    }
    drop(prompter);
    let runtime = Runtime::new().map_err(|e| {
        Error::usage(
            format!("cannot start the I/O runtime: {e}"),
            "this is a system resource problem (threads or file descriptors); retry",
        )
    })?;
    let (config, sandbox) = if args.sandbox {
        let mut scenario = args.scenario.clone();
        if scenario.scenario.is_none() {
            scenario.scenario = super::sandbox::sibling_scenario(&path);
        }
        if let Some(p) = &scenario.scenario {
            ui::progress(&ui::dim(&format!("sandbox: scenario {}", p.display())));
        }
        let sandbox = super::sandbox::start(&runtime, &scenario)?;
        let mut config = sandbox.vendor_config();
        // Loopback answers in microseconds: back off in milliseconds, so a rehearsal with
        // injected 5xx/429 faults takes seconds, not minutes. Retry-After is still honoured.
        config.transport.base_delay = std::time::Duration::from_millis(20);
        config.transport.max_delay = std::time::Duration::from_secs(2);
        (config, Some(sandbox))
    } else {
        (vendor_config()?, None)
    };
    // Under --sandbox, params bound to an env var read the sandbox's (RAPTOR_API_URL...).
    let sandbox_env: Vec<(String, String)> = sandbox.as_ref().map(|s| s.env()).unwrap_or_default();
    let lookup = |name: &str| -> Option<String> {
        match sandbox_env.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Some(v.clone()),
            None if sandbox.is_some() => None,
            None => std::env::var(name).ok(),
        }
    };
    let params = params::resolve(&loaded.plan, &pairs, &lookup)?;
    if let Some(s) = &sandbox {
        ui::progress(&ui::dim(&format!(
            "sandbox: simulated Postmark, Infisical, Heroku, GitHub and Raptor on 127.0.0.1 (postmark {})",
            s.postmark_url()
        )));
        for (name, url) in &s.urls().scripted {
            ui::progress(&ui::dim(&format!("sandbox: scripted {name} on {url}")));
        }
    }
    *loaded.host.services.borrow_mut() = Some(Rc::new(Services::new(runtime, config, sandbox)));

    let meta = loaded.plan.meta().clone();
    let run_id = exec::new_run_id();
    let actor = exec::actor(args.actor.as_deref());
    let state_dir = crate::state::dir();
    let host = &loaded.host;
    *host.run.borrow_mut() = RunInfo {
        run_id: run_id.clone(),
        actor: actor.clone(),
        runbook_id: meta.id.clone(),
        mode: if args.dry_run { "dry-run" } else { "exec" }.into(),
    };
    host.dry_run.set(args.dry_run);
    *host.audit.borrow_mut() = Some(AuditLog::new(&state_dir));

    let opts = exec::Options {
        yes: args.yes,
        no_rollback: args.no_rollback,
        dry_run: args.dry_run,
        json: args.json,
    };
    ui::progress(&ui::bold(&format!("{} ({})", meta.title, meta.id)));
    ui::progress(&ui::dim(&format!(
        "run {run_id} · actor {actor}{}",
        if args.dry_run {
            " · dry-run: writes are recorded, not performed"
        } else {
            ""
        }
    )));
    let report = Report {
        run_id,
        runbook: meta.id.clone(),
        title: meta.title.clone(),
        actor,
        status: RunStatus::Running,
        dry_run: args.dry_run,
        started_at: crate::audit::now_rfc3339(),
        duration_ms: 0,
        steps: Vec::new(),
        planned_writes: Vec::new(),
        failed_step: None,
        error: None,
    };
    let report = exec::run(&loaded, &opts, Ctx::new(params), report);
    let services = loaded.host.services.borrow_mut().take();
    if let (Some(path), Some(services)) = (&args.sandbox_state, &services) {
        if let Some(sandbox) = &services.sandbox {
            let state = serde_json::to_string_pretty(&sandbox.state()).unwrap_or_default();
            crate::state::write(path, state.as_bytes()).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
        }
    }
    drop(services);
    summary(&report);
    if args.json {
        ui::out(&report.to_json());
    }
    Ok(match report.status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Aborted => exit::ABORTED,
        RunStatus::Interrupted => exit::INTERRUPTED,
        RunStatus::Failed | RunStatus::RolledBack | RunStatus::Running => exit::STEP_FAILED,
    })
}

fn summary(report: &Report) {
    ui::progress("");
    let secs = report.duration_ms as f64 / 1000.0;
    let line = match (&report.status, &report.failed_step) {
        (RunStatus::Succeeded, _) => format!("Run {} succeeded in {secs:.1}s", report.run_id),
        (status, Some(step)) => format!(
            "Run {} {} (step '{step}' failed) after {secs:.1}s",
            report.run_id,
            status.as_str()
        ),
        (status, None) => format!("Run {} {} after {secs:.1}s", report.run_id, status.as_str()),
    };
    ui::progress(&ui::bold(&line));
    if !report.planned_writes.is_empty() {
        ui::progress(&format!(
            "Dry run: {} write(s) would have been made:",
            report.planned_writes.len()
        ));
        for w in &report.planned_writes {
            ui::progress(&format!("  - [{}] {} → {}", w.step, w.function, w.target));
        }
    }
}

/// Vendor endpoints and credentials: the environment, then `./runbook.toml` `[vendors]`.
fn vendor_config() -> Result<VendorConfig> {
    let file = match std::fs::read_to_string("runbook.toml") {
        Ok(text) => Some(VendorFileConfig::from_toml(&text).map_err(|e| {
            Error::usage(
                format!("runbook.toml: {e}"),
                "fix the [vendors] table (keys are the env var names, lower-cased)",
            )
        })?),
        Err(_) => None,
    };
    VendorConfig::from_sources(|k| std::env::var(k).ok(), file.as_ref()).map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix the variable, or unset it to use the default",
        )
    })
}
