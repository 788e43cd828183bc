//! What a run talks to: the real vendors (configured from the environment and
//! `./runbook.toml`), or the simulators, started here and wired into the same vendor
//! configuration an operator's shell would give (the sandbox's own exports).

use crate::cli::ScenarioArgs;
use crate::dashboard::SandboxDashboard;
use crate::error::Result;
use crate::ui;
use runbook_core::host::{Dashboard, Services};
use runbook_core::run::Target;
use runbook_core::runtime::Runtime;
use runbook_sandbox::Sandbox;
use runbook_vendors::{VendorConfig, VendorFileConfig};
use std::path::Path;
use std::rc::Rc;

/// Environment variables as name/value pairs.
pub type EnvVars = Vec<(String, String)>;

/// The services a run uses and, for a rehearsal, the simulators behind them.
pub struct Wired {
    pub services: Services,
    pub sandbox: Option<Sandbox>,
    /// The sandbox's environment: params bound to an env var read it, not the process's.
    pub env: Option<EnvVars>,
}

impl Wired {
    /// Looks up an environment variable the way this run's params see it.
    pub fn lookup(&self, name: &str) -> Option<String> {
        lookup(self.env.as_ref(), name)
    }

    /// Where a run of a runbook calling `vendors` goes.
    pub fn target(&self, vendors: &[&str]) -> Target {
        if self.sandbox.is_some() {
            return Target::Sandbox;
        }
        target_of(self.services.config(), vendors)
    }
}

/// Loopback when every vendor module the runbook calls has its endpoint on this machine,
/// else production. (A vendor that answers as a simulator makes a run a rehearsal, whatever
/// its target: the ledger records it.)
pub fn target_of(config: &VendorConfig, vendors: &[&str]) -> Target {
    let vendors: Vec<runbook_vendors::Vendor> = vendors
        .iter()
        .filter_map(|v| runbook_vendors::Vendor::from_name(v))
        .collect();
    let loopback = !vendors.is_empty()
        && vendors
            .iter()
            .all(|v| runbook_vendors::config::is_loopback_url(config.endpoint(*v)));
    if loopback {
        Target::Loopback
    } else {
        Target::Production
    }
}

/// A separate `runbook sandbox`'s dashboard (`RUNBOOK_SANDBOX_DASHBOARD`), for unattended
/// rehearsals: only when it and the Postmark endpoint are on this machine, so a production
/// run never has its dashboard steps done by anything but its operator.
fn separate_sandbox_dashboard(config: &VendorConfig) -> Option<Rc<dyn Dashboard>> {
    let url = std::env::var("RUNBOOK_SANDBOX_DASHBOARD")
        .ok()
        .filter(|u| !u.trim().is_empty())?;
    let loopback = runbook_vendors::config::is_loopback_url(&url)
        && runbook_vendors::config::is_loopback_url(&config.postmark_api_url);
    if !loopback {
        ui::err("warning: RUNBOOK_SANDBOX_DASHBOARD is ignored: it and POSTMARK_API_URL must both be on this machine (a rehearsal against `runbook sandbox`)");
        return None;
    }
    SandboxDashboard::new(&url, None).map(|d| Rc::new(d) as Rc<dyn Dashboard>)
}

/// An environment variable as a run's params see it. In a rehearsal, what the sandbox
/// exports wins; anything else comes from the shell (a runbook's own settings, such as a
/// sender address), except the vendors' endpoints and credentials: a rehearsal never reads
/// the operator's real ones.
pub fn lookup(sandbox_env: Option<&EnvVars>, name: &str) -> Option<String> {
    let from_shell = || std::env::var(name).ok();
    match sandbox_env {
        None => from_shell(),
        Some(vars) => match vars.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Some(v.clone()),
            None if runbook_vendors::config::VENDOR_SETTINGS.contains(&name) => None,
            None => from_shell(),
        },
    }
}

/// The params whose variable the sandbox exports while the shell sets it too: the
/// sandbox's value is used, and the banner says so.
pub fn shadowed_params(
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
            (exported && std::env::var_os(var).is_some()).then(|| format!("{} ({var})", p.name))
        })
        .collect()
}

/// The runtime, vendor clients and (with `--sandbox`) the simulators.
pub fn services(sandbox: bool, scenario: &ScenarioArgs) -> Result<Wired> {
    let runtime =
        Runtime::new().map_err(|source| runbook_core::error::Error::Runtime { source })?;
    if !sandbox {
        let config = vendor_config()?;
        let dashboard = separate_sandbox_dashboard(&config);
        return Ok(Wired {
            services: Services::new(runtime, config, dashboard),
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
        k.starts_with("RUNBOOK_")
            .then(|| std::env::var(k).ok())
            .flatten()
    })?;
    config.transport.timeout = tuned.transport.timeout;
    config.concurrency = tuned.concurrency;
    if std::env::var_os("RUNBOOK_HEROKU_REFILL_PER_MINUTE").is_some() {
        config.transport.pools = tuned.transport.pools;
    }
    ui::progress(&ui::dim(&format!(
        "sandbox: simulated Postmark, Infisical, Heroku, GitHub and Raptor on 127.0.0.1 (postmark {})",
        sandbox.postmark_url()
    )));
    for (name, url) in &sandbox.urls().scripted {
        ui::progress(&ui::dim(&format!("sandbox: scripted {name} on {url}")));
    }
    let dashboard = SandboxDashboard::new(sandbox.postmark_url(), Some(&config.infisical_api_url))
        .map(|d| Rc::new(d) as Rc<dyn Dashboard>);
    Ok(Wired {
        services: Services::new(runtime, config, dashboard),
        sandbox: Some(sandbox),
        env: Some(env),
    })
}

/// `RUNBOOK_AUDIT_WEBHOOK`: where every audit entry is also sent.
pub fn audit_webhook() -> Option<String> {
    std::env::var("RUNBOOK_AUDIT_WEBHOOK")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// Vendor endpoints and credentials: the environment, then `./runbook.toml` `[vendors]`.
pub fn vendor_config() -> Result<VendorConfig> {
    let file = VendorFileConfig::load(Path::new("runbook.toml"))?;
    Ok(VendorConfig::from_sources(
        |k| std::env::var(k).ok(),
        file.as_ref(),
    )?)
}

/// The organisation's approval policy, `[policy] approve_irreversible = "30m"` in
/// `./runbook.toml`: every irreversible step waits for another actor's approval that long.
pub fn approval_policy() -> Result<Option<std::time::Duration>> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        policy: Policy,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Policy {
        approve_irreversible: Option<String>,
    }
    let text = match std::fs::read_to_string("runbook.toml") {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let bad = |why: String| {
        crate::error::Error::usage(
            format!("runbook.toml [policy]: {why}"),
            "e.g. [policy] approve_irreversible = \"30m\" (every irreversible step needs another actor's approval)",
        )
    };
    let file: File = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
    match file.policy.approve_irreversible {
        None => Ok(None),
        Some(t) => runbook_core::interrupt::parse_duration(&t)
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(|| bad(format!("approve_irreversible = '{t}' is not a duration"))),
    }
}

/// Where runs, locks, the audit chain and approvals live: `RUNBOOK_STATE_URL`, else
/// `./runbook.toml` `[state] url`, else the state directory. A URL that does not work is an
/// error (exit 2), never a quiet fall back to local files.
pub fn store() -> Result<runbook_core::store::Store> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        state: State,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct State {
        url: Option<String>,
        lease_seconds: Option<u64>,
    }
    let file = match std::fs::read_to_string("runbook.toml") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            // Unreadable is not absent: a team's [state] url may be in it.
            return Err(crate::error::Error::usage(
                format!("cannot read ./runbook.toml: {e}"),
                "fix its permissions (it may name the team's shared state)",
            ));
        }
        Ok(text) => toml::from_str::<File>(&text)
            .map_err(|e| {
                crate::error::Error::usage(
                    format!("runbook.toml [state]: {}", e.message()),
                    "e.g. [state] url = \"postgres://runbook@db.internal/runbook\" (a lease_seconds = 30 may follow)",
                )
            })?
            .state,
        Err(_) => State::default(),
    };
    let url = std::env::var("RUNBOOK_STATE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or(file.url);
    let lease = match std::env::var("RUNBOOK_LEASE_SECONDS").ok() {
        Some(t) => t
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                crate::error::Error::usage(
                    format!("RUNBOOK_LEASE_SECONDS = '{t}' is not a whole number of seconds"),
                    "e.g. RUNBOOK_LEASE_SECONDS=30 (how long a crashed run's lock outlives it)",
                )
            })?,
        None => file.lease_seconds.unwrap_or(30),
    };
    let dir = runbook_core::state::dir();
    // A machine that used the shared state remembers it: a later command without the URL
    // (another folder, a shell without the variable) must not quietly take local locks.
    let marker = dir.join("shared-state");
    if url.is_none() {
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
    let store = runbook_core::store::open(
        url.as_deref(),
        &dir,
        std::time::Duration::from_secs(lease),
        say,
    )?;
    if let Some(u) = url.as_deref() {
        if !marker.exists() {
            let shown = runbook_core::store::redact_url(u);
            let _ = runbook_core::state::ensure_dir(&dir, &|w| ui::err(&w))
                .and_then(|_| runbook_core::state::write(&marker, format!("{shown}\n").as_bytes()));
        }
    }
    Ok(store)
}
