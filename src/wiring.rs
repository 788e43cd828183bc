//! What a run talks to: the real vendors (configured from the settings: the environment
//! and `./runbook.toml`), or the simulators, started here and wired into the same vendor
//! configuration an operator's shell would give (the sandbox's own exports); and where its
//! state lives.

use crate::cli::ScenarioArgs;
use crate::dashboard::SandboxDashboard;
use crate::error::Result;
use crate::settings::Settings;
use crate::ui;
use runbook_core::host::{Dashboard, Services};
use runbook_core::run::Target;
use runbook_core::runtime::Runtime;
use runbook_sandbox::Sandbox;
use runbook_vendors::VendorConfig;
use std::rc::Rc;

/// Environment variables as name/value pairs.
pub type EnvVars = Vec<(String, String)>;

/// The services a run uses and, for a rehearsal, the simulators behind them.
pub struct Wired<'a> {
    settings: &'a Settings,
    pub services: Rc<Services>,
    pub sandbox: Option<Sandbox>,
    /// The sandbox's environment: params bound to an env var read it, not the process's.
    pub env: Option<EnvVars>,
}

impl Wired<'_> {
    /// Looks up an environment variable the way this run's params see it.
    pub fn lookup(&self, name: &str) -> Option<String> {
        lookup(self.settings, self.env.as_ref(), name)
    }

    /// Where a run of `runbook` with `params` goes (`target`).
    pub fn target(&self, runbook: &runbook_core::runbook::Runbook, params: &rhai::Map) -> Target {
        target(&self.services, self.sandbox.is_some(), runbook, params)
    }
}

/// Where a run of `runbook` with `params` goes through `services`: the sandbox in this
/// process, or by the vendor modules it calls and the hosts its egress declares.
pub fn target(
    services: &Services,
    in_process_sandbox: bool,
    runbook: &runbook_core::runbook::Runbook,
    params: &rhai::Map,
) -> Target {
    if in_process_sandbox {
        return Target::Sandbox;
    }
    let params = runbook_core::value::to_json(&rhai::Dynamic::from_map(params.clone()));
    let egress =
        runbook_core::plan::egress::Egress::resolve(&runbook.plan().meta().egress, &params);
    target_of(services.config(), &runbook.vendor_modules(), egress.hosts())
}

/// Loopback when every vendor module the runbook calls has its endpoint on this machine and
/// every host its egress declares (`http::`) is this machine, else production: a runbook
/// that talks only through `http::` to a loopback server is a rehearsal too. (A vendor that
/// answers as a simulator makes a run a rehearsal, whatever its target: the ledger records
/// it.)
pub fn target_of(config: &VendorConfig, vendors: &[&str], hosts: &[String]) -> Target {
    let vendors: Vec<runbook_vendors::Vendor> = vendors
        .iter()
        .filter_map(|v| runbook_vendors::Vendor::from_name(v))
        .collect();
    let endpoints: Vec<String> = vendors
        .iter()
        .map(|v| config.endpoint(*v).to_string())
        .chain(hosts.iter().map(|h| format!("http://{h}")))
        .collect();
    let loopback = !endpoints.is_empty()
        && endpoints
            .iter()
            .all(|e| runbook_vendors::config::is_loopback_url(e));
    if loopback {
        Target::Loopback
    } else {
        Target::Production
    }
}

/// A separate `runbook sandbox`'s dashboard (`RUNBOOK_SANDBOX_DASHBOARD`), for unattended
/// rehearsals: only when it and the Postmark endpoint are on this machine, so a production
/// run never has its dashboard steps done by anything but its operator.
fn separate_sandbox_dashboard(
    settings: &Settings,
    config: &VendorConfig,
) -> Option<Rc<dyn Dashboard>> {
    let url = settings.sandbox_dashboard()?;
    let loopback = runbook_vendors::config::is_loopback_url(&url)
        && runbook_vendors::config::is_loopback_url(&config.postmark.api_url);
    if !loopback {
        ui::err("warning: RUNBOOK_SANDBOX_DASHBOARD is ignored: it and POSTMARK_API_URL must both be on this machine (a rehearsal against `runbook sandbox`)");
        return None;
    }
    Some(Rc::new(SandboxDashboard::new(&url, None)) as Rc<dyn Dashboard>)
}

/// An environment variable as a run's params see it. In a rehearsal, what the sandbox
/// exports wins; anything else comes from the shell (a runbook's own settings, such as a
/// sender address), except the vendors' endpoints and credentials: a rehearsal never reads
/// the operator's real ones.
pub fn lookup(settings: &Settings, sandbox_env: Option<&EnvVars>, name: &str) -> Option<String> {
    let from_shell = || settings.var(name);
    match sandbox_env {
        None => from_shell(),
        Some(vars) => match vars.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Some(v.clone()),
            None if runbook_vendors::config::is_vendor_setting(name) => None,
            None => from_shell(),
        },
    }
}

/// The params whose variable the sandbox exports while the shell sets it too: the
/// sandbox's value is used, and the banner says so.
pub fn shadowed_params(
    settings: &Settings,
    plan: &runbook_core::plan::Plan,
    sandbox_env: Option<&EnvVars>,
) -> Vec<String> {
    let Some(vars) = sandbox_env else {
        return Vec::new();
    };
    plan.params
        .iter()
        .filter_map(|p| {
            let var = p.env.as_deref()?;
            let exported = vars.iter().any(|(k, _)| k == var);
            (exported && settings.var(var).is_some()).then(|| format!("{} ({var})", p.name))
        })
        .collect()
}

/// The runtime, vendor clients and (with `--sandbox`) the simulators.
pub fn services<'a>(
    settings: &'a Settings,
    sandbox: bool,
    scenario: &ScenarioArgs,
) -> Result<Wired<'a>> {
    let runtime =
        Runtime::new().map_err(|source| runbook_core::error::Error::Runtime { source })?;
    if !sandbox {
        let config = settings.vendor_config()?;
        let dashboard = separate_sandbox_dashboard(settings, &config);
        let services = Services::new(runtime, config, dashboard);
        services.prepare();
        return Ok(Wired {
            settings,
            services: Rc::new(services),
            sandbox: None,
            env: None,
        });
    }
    let sandbox = crate::commands::sandbox::start(&runtime, scenario)?;
    let env = sandbox.env();
    let mut config = VendorConfig::from_env(|k| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })?;
    // Loopback answers in microseconds: back off in milliseconds, so a rehearsal with
    // injected 5xx/429 faults takes seconds, not minutes. Retry-After is still honoured.
    config.transport.base_delay = std::time::Duration::from_millis(20);
    config.transport.max_delay = std::time::Duration::from_secs(2);
    // The tuning variables still apply (a short timeout to rehearse a stalled vendor).
    let tuned = VendorConfig::from_env(|k| {
        runbook_vendors::config::TUNING
            .contains(&k)
            .then(|| settings.var(k))
            .flatten()
    })?;
    config.transport.timeout = tuned.transport.timeout;
    config.concurrency = tuned.concurrency;
    if settings.var("RUNBOOK_HEROKU_REFILL_PER_MINUTE").is_some() {
        config.transport.pools = tuned.transport.pools;
    }
    if settings.var("RUNBOOK_HEROKU_PREBOOT_WINDOW").is_some() {
        config.heroku.preboot_window = tuned.heroku.preboot_window;
    }
    ui::progress(&ui::dim(&format!(
        "sandbox: simulated Postmark, Infisical, Heroku, GitHub and Raptor on 127.0.0.1 (postmark {})",
        sandbox.postmark_url()
    )));
    for (name, url) in &sandbox.urls().scripted {
        ui::progress(&ui::dim(&format!("sandbox: scripted {name} on {url}")));
    }
    let dashboard = Some(Rc::new(SandboxDashboard::new(
        sandbox.postmark_url(),
        Some(&config.infisical.api_url),
    )) as Rc<dyn Dashboard>);
    let services = Services::new(runtime, config, dashboard);
    services.prepare();
    Ok(Wired {
        settings,
        services: Rc::new(services),
        sandbox: Some(sandbox),
        env: Some(env),
    })
}

/// Where runs, locks, the audit chain and approvals live: `RUNBOOK_STATE_URL`, else
/// `./runbook.toml` `[state] url`, else the state directory. A URL that does not work is an
/// error (exit 2), never a quiet fall back to local files.
pub fn store(settings: &Settings) -> Result<runbook_core::store::Store> {
    let state = settings.state()?;
    let dir = &settings.state_dir;
    // A machine that used the shared state remembers it: a later command without the URL
    // (another folder, a shell without the variable) must not quietly take local locks.
    let marker = dir.join("shared-state");
    if state.url.is_none() {
        if let Ok(shown) = std::fs::read_to_string(&marker) {
            return Err(runbook_core::error::Error::State {
                message: format!(
                    "this machine's runbook state is shared in {}, but neither RUNBOOK_STATE_URL nor ./runbook.toml [state] url is set here",
                    shown.trim()
                ),
                help: format!(
                    "export RUNBOOK_STATE_URL (or run from the folder whose runbook.toml names it); to keep state on this machine again, remove {}",
                    marker.display()
                ),
            }
            .into());
        }
    }
    let say = runbook_core::sink::Say::outside(crate::view::sink(false));
    let store =
        runbook_core::store::open(state.url.as_deref(), dir, (state.lease, state.wait), say)?;
    if let Some(u) = state.url.as_deref() {
        if !marker.exists() {
            let shown = runbook_core::store::redact_url(u);
            let remembered =
                runbook_core::state::ensure_dir(dir, &|w| ui::err(&w)).and_then(|_| {
                    runbook_core::state::write(&marker, format!("{shown}\n").as_bytes(), &|w| {
                        ui::err(&w)
                    })
                });
            if let Err(e) = remembered {
                ui::err(&format!(
                    "warning: cannot remember that this machine's state is shared ({}: {e}): a later command here without RUNBOOK_STATE_URL would keep its state in local files instead of refusing",
                    marker.display()
                ));
            }
        }
    }
    Ok(store)
}
