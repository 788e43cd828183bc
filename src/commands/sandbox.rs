//! `runbook sandbox`, and starting the simulators for `exec --sandbox`.

use crate::cli::{SandboxArgs, ScenarioArgs};
use crate::error::{exit, Result};
use crate::ui;
use runbook_core::error::Error as CoreError;
use runbook_core::runtime::Runtime;
use runbook_sandbox::{FaultRule, Sandbox, Scenario};

/// The scenario from `--scenario` (default: the SOP's) plus every `--fault`.
pub fn scenario(args: &ScenarioArgs) -> Result<Scenario> {
    let mut scenario = match &args.scenario {
        Some(p) => Scenario::from_file(p)?,
        None => Scenario::default(),
    };
    for spec in &args.faults {
        scenario.faults.push(FaultRule::parse(spec)?);
    }
    Ok(scenario)
}

/// `--scenario` and `--fault` shape the simulators: without `--sandbox` there are none, so
/// they would be silently ignored while the run goes to the real endpoints.
pub fn require_sandbox(sandbox: bool, args: &ScenarioArgs) -> Result<()> {
    if sandbox {
        return Ok(());
    }
    let flag = if !args.faults.is_empty() {
        "--fault"
    } else if args.scenario.is_some() {
        "--scenario"
    } else {
        return Ok(());
    };
    Err(crate::error::Error::usage(
        format!("{flag} applies only to a rehearsal: without --sandbox nothing is simulated, and this run would go to the real endpoints"),
        "add --sandbox to rehearse with it, or drop it to run for real",
    ))
}

/// The scenario a runbook ships for rehearsal: `sandbox/NAME.toml` (or `.json`) in the
/// runbook's folder. A convention rather than a metadata key, so the scenario is found the
/// same way the runbook is, and a runbook without one runs against the SOP's default world.
pub fn sibling_scenario(runbook: &std::path::Path) -> Option<std::path::PathBuf> {
    let stem = runbook.file_stem()?;
    let dir = match runbook.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    ["toml", "json"]
        .iter()
        .map(|ext| dir.join("sandbox").join(stem).with_extension(ext))
        .find(|p| p.is_file())
}

/// Starts the simulators on the runtime.
pub fn start(runtime: &Runtime, args: &ScenarioArgs) -> Result<Sandbox> {
    let scenario = scenario(args)?;
    match runtime.block_on(Sandbox::start(scenario)) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(CoreError::Interrupted.into()),
    }
}

pub fn run(args: SandboxArgs) -> Result<u8> {
    if args.schema {
        let schema = runbook_sandbox::reference::schema();
        ui::json(&schema);
        return Ok(exit::OK);
    }
    let runtime = Runtime::new().map_err(|source| CoreError::Runtime { source })?;
    let sandbox = start(&runtime, &args.scenario)?;
    let urls = sandbox.urls();
    ui::err("Sandbox running on loopback (Ctrl-C to stop). Simulated vendors:");
    for (name, url) in urls.built_in() {
        // The Postmark simulator also serves its dashboard.
        let dashboard = if url == sandbox.postmark_url() {
            format!("  (dashboard: {url}/dashboard)")
        } else {
            String::new()
        };
        ui::err(&format!("  {name:<10} {url}{dashboard}"));
    }
    for (name, url) in &urls.scripted {
        ui::err(&format!("  {name:<10} {url}  (scripted)"));
    }
    let all = scenario(&args.scenario)?.faults.len();
    let given = &args.scenario.faults;
    if all == 0 {
        ui::err("No faults injected (add them with --fault, or POST /_sandbox/faults).");
    } else {
        ui::err("Faults injected:");
        for f in given {
            ui::err(&format!("  {f}"));
        }
        if all > given.len() {
            ui::err(&format!(
                "  and {} from the scenario file",
                all - given.len()
            ));
        }
    }
    ui::err("Point a shell at it with:");
    // The exports carry the sandbox's own credentials: sandbox data, meant to be copied.
    // Quoted for the shell that evals them: a scenario (shared in a library) names some
    // values, and one holding a quote must not run as a command, nor a control character
    // reach the terminal.
    let mut exports = String::new();
    for (k, v) in sandbox.env() {
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            return Err(crate::error::Error::usage(
                format!(
                    "the sandbox's value for {k} holds a control character (U+{:04X}): it is not printed as a shell export",
                    c as u32
                ),
                "fix the scenario file's value for it",
            ));
        }
        exports.push_str(&format!("export {k}='{}'\n", v.replace('\'', "'\\''")));
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // The last line tells a script reading the exports that there are no more.
    exports.push_str("# ready\n");
    let _ = out.write_all(exports.as_bytes());
    let _ = out.flush();
    drop(out);
    let _ = runtime.block_on(std::future::pending::<()>());
    ui::err("sandbox stopped");
    drop(sandbox);
    Ok(exit::OK)
}
