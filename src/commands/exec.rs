//! `runbook exec`, and the pieces `resume` and `rollback` share with it.

use crate::cli::{ExecArgs, ScenarioArgs};
use runbook_core::audit::AuditLog;
use runbook_core::error::{exit, Error, Result};
use runbook_core::exec::lock::{self, Lock};
use runbook_core::exec::{self, params, resume, Journal, Report, RunStatus, Start};
use runbook_core::host::services::Services;
use runbook_core::host::{value, RunInfo};
use runbook_core::plan::{self, Ctx, Loaded, SourceFile};
use runbook_core::prompt::{Answers, Prompter};
use runbook_core::runtime::Runtime;
use runbook_core::ui;
use runbook_sandbox::Sandbox;
use runbook_vendors::{VendorConfig, VendorFileConfig};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub fn run(args: ExecArgs) -> Result<u8> {
    let path = plan::find(&args.runbook)?;
    let pairs = params::parse_pairs(&args.params)?;
    let loaded = load(&path, args.answers.as_deref(), args.yes || args.dry_run)?;
    if !loaded.plan.prerequisites.is_empty()
        && !loaded.host.prompter.borrow().can_confirm("prerequisites")
    {
        return Err(Error::usage(
            "prompt 'prerequisites' needs an answer, and there is no terminal to ask on",
            "confirm the prerequisites with --yes, or add `prerequisites = true` to a file passed with --answers",
        ));
    }
    // A runbook's own sandbox scenario (sandbox/NAME.toml next to it) unless one is given.
    let mut scenario = args.scenario.clone();
    if args.sandbox && scenario.scenario.is_none() {
        scenario.scenario = super::sandbox::sibling_scenario(&path);
        if let Some(p) = &scenario.scenario {
            ui::progress(&ui::dim(&format!("sandbox: scenario {}", p.display())));
        }
    }
    let (services, sandbox, env) = services(args.sandbox, &scenario)?;
    let lookup = |name: &str| -> Option<String> {
        match &env {
            Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            None => std::env::var(name).ok(),
        }
    };
    let params = params::resolve(&loaded.plan, &pairs, &lookup)?;
    let ctx = Ctx::new(params);

    let run_id = exec::new_run_id();
    let actor = exec::actor(args.actor.as_deref());
    // Rehearsals are journalled and audited as such: they never count as a rotation.
    let mode = match (args.dry_run, args.sandbox) {
        (true, _) => "dry-run",
        (false, true) => "sandbox",
        (false, false) => "exec",
    };
    let state_dir = runbook_core::state::dir();
    // A dry run changes nothing, so it takes no lock.
    let mut lock = None;
    if !args.dry_run {
        let key = lock::key(
            &loaded.plan.meta().id,
            &ctx.get("params")
                .map(|p| value::to_json(&p))
                .unwrap_or_default(),
        );
        let (l, broken) = Lock::acquire(&state_dir, &key, &run_id, &actor, args.break_lock)?;
        lock = Some((l, broken));
    }
    install(
        &loaded,
        &state_dir,
        &run_id,
        &actor,
        mode,
        args.dry_run,
        services,
    )?;
    if let Some((_, Some(holder))) = &lock {
        loaded
            .host
            .journal("lock.broken", serde_json::json!({ "holder": holder }));
        let _ = loaded
            .host
            .audit_event("lock.broken", serde_json::json!({ "holder": holder }));
    }
    loaded.host.journal(
        "run.start",
        serde_json::json!({
            "run_id": run_id,
            "runbook": loaded.plan.meta().id,
            "source": resume::fingerprints(&loaded),
            "params": ctx.snapshot()["params"],
            "actor": actor,
            "host": exec::hostname(),
            "pid": std::process::id(),
            "mode": mode,
            "sandbox": args.sandbox,
        }),
    );
    let opts = exec::Options {
        yes: args.yes,
        no_rollback: args.no_rollback,
        dry_run: args.dry_run,
        json: args.json,
    };
    banner(&loaded, &run_id, &actor, args.dry_run);
    let report = exec::run(
        &loaded,
        &opts,
        ctx,
        new_report(&loaded, &run_id, &actor, args.dry_run),
        Start::Fresh,
    );
    drop(lock);
    let code = finish(&report, args.json)?;
    if let (Some(path), Some(sandbox)) = (args.sandbox_state.as_deref(), &sandbox) {
        write_sandbox_state(sandbox, path)?;
    }
    Ok(code)
}

/// `--sandbox-state FILE`: the simulators' final state, for tests and post-mortems.
fn write_sandbox_state(sandbox: &Sandbox, path: &Path) -> Result<()> {
    let state = serde_json::to_string_pretty(&sandbox.state()).unwrap_or_default();
    runbook_core::state::write(path, state.as_bytes()).map_err(|source| Error::Write {
        path: PathBuf::from(path),
        source,
    })
}

/// Reads and loads a runbook with a prompter for this run.
pub fn load(path: &Path, answers: Option<&Path>, yes: bool) -> Result<Loaded> {
    let file = SourceFile::read(path)?;
    let answers = match answers {
        Some(p) => Answers::load(p)?,
        None => Answers::default(),
    };
    plan::load(file, Prompter::new(answers, yes))
}

/// Environment variables as name/value pairs.
pub type EnvVars = Vec<(String, String)>;

/// The runtime, vendor clients and (with `--sandbox`) the simulators; also the sandbox's
/// environment, which params bound to an env var read instead of the process's.
pub fn services(
    sandbox: bool,
    scenario: &ScenarioArgs,
) -> Result<(Services, Option<Sandbox>, Option<EnvVars>)> {
    let runtime = Runtime::new().map_err(|e| {
        Error::usage(
            format!("cannot start the I/O runtime: {e}"),
            "this is a system resource problem (threads or file descriptors); retry",
        )
    })?;
    if !sandbox {
        return Ok((Services::new(runtime, vendor_config()?, None), None, None));
    }
    let sandbox = super::sandbox::start(&runtime, scenario)?;
    let env = sandbox.env();
    let mut config = VendorConfig::from_env(|k| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| Error::Sandbox {
        message: format!("the sandbox's own configuration is invalid: {e}"),
    })?;
    // Loopback answers in microseconds: back off in milliseconds, so a rehearsal with
    // injected 5xx/429 faults takes seconds, not minutes. Retry-After is still honoured.
    config.transport.base_delay = std::time::Duration::from_millis(20);
    config.transport.max_delay = std::time::Duration::from_secs(2);
    // The tuning variables still apply (a short timeout to rehearse a stalled vendor).
    let tuned = VendorConfig::from_env(|k| {
        k.starts_with("RUNBOOK_")
            .then(|| std::env::var(k).ok())
            .flatten()
    })
    .map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix the variable, or unset it to use the default",
        )
    })?;
    config.transport.timeout = tuned.transport.timeout;
    config.concurrency = tuned.concurrency;
    ui::progress(&ui::dim(&format!(
        "sandbox: simulated Postmark, Infisical, Heroku, GitHub and Raptor on 127.0.0.1 (postmark {})",
        sandbox.postmark_url()
    )));
    for (name, url) in &sandbox.urls().scripted {
        ui::progress(&ui::dim(&format!("sandbox: scripted {name} on {url}")));
    }
    let dashboard = Some(sandbox.postmark_url().to_string());
    Ok((
        Services::new(runtime, config, dashboard),
        Some(sandbox),
        Some(env),
    ))
}

/// Wires a loaded runbook to this run: who, how, services, audit log, journal.
pub fn install(
    loaded: &Loaded,
    state_dir: &Path,
    run_id: &str,
    actor: &str,
    mode: &str,
    dry_run: bool,
    services: Services,
) -> Result<()> {
    let host = &loaded.host;
    *host.run.borrow_mut() = RunInfo {
        run_id: run_id.to_string(),
        actor: actor.to_string(),
        runbook_id: loaded.plan.meta().id.clone(),
        mode: mode.to_string(),
    };
    host.dry_run.set(dry_run);
    *host.audit.borrow_mut() = Some(AuditLog::new(state_dir));
    *host.services.borrow_mut() = Some(Rc::new(services));
    *host.journal.borrow_mut() = Some(Rc::new(Journal::open(state_dir, run_id)?));
    Ok(())
}

pub fn banner(loaded: &Loaded, run_id: &str, actor: &str, dry_run: bool) {
    let meta = loaded.plan.meta();
    ui::progress(&ui::bold(&format!("{} ({})", meta.title, meta.id)));
    ui::progress(&ui::dim(&format!(
        "run {run_id} · actor {actor}{}",
        if dry_run {
            " · dry-run: writes are recorded, not performed"
        } else {
            ""
        }
    )));
}

pub fn new_report(loaded: &Loaded, run_id: &str, actor: &str, dry_run: bool) -> Report {
    let meta = loaded.plan.meta();
    Report {
        run_id: run_id.to_string(),
        runbook: meta.id.clone(),
        title: meta.title.clone(),
        actor: actor.to_string(),
        status: RunStatus::Running,
        dry_run,
        started_at: runbook_core::audit::now_rfc3339(),
        duration_ms: 0,
        steps: Vec::new(),
        planned_writes: Vec::new(),
        failed_step: None,
        error: None,
    }
}

/// Prints the summary (and the JSON report) and maps the run's status to the exit code.
pub fn finish(report: &Report, json: bool) -> Result<u8> {
    summary(report);
    if json {
        ui::out(&report.to_json());
    }
    Ok(match report.status {
        RunStatus::Succeeded => exit::OK,
        // `runbook rollback` asked for it: success. After a failed step: the step failed.
        RunStatus::RolledBack if report.failed_step.is_none() => exit::OK,
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
    let file = VendorFileConfig::load(Path::new("runbook.toml")).map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix the [vendors] table of runbook.toml (keys are the env var names, lower-cased)",
        )
    })?;
    VendorConfig::from_sources(|k| std::env::var(k).ok(), file.as_ref()).map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix the variable, or unset it to use the default",
        )
    })
}
