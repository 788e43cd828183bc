//! What scripts can call. One file per rhai module; each function is registered once per
//! process with its effect (read, write, destructive), which `--dry-run` and `check` rely on.
//! What a call acts on comes from its engine's tag, a [`Stage`]: the plan being declared
//! while a runbook loads, nothing for a runbook that only is inspected, or a run's
//! [`RunContext`] while steps run.

mod audit;
pub mod auditor;
mod context;
mod core;
pub mod dashboard;
mod github;
mod heroku;
mod http;
mod infisical;
pub mod operator;
pub mod placeholder;
pub(crate) mod postmark;
mod prompt;
pub(crate) use core::not_a_secret;
pub(crate) use http::url_query_credential;
pub(crate) use prompt::id_for as prompt_id_for;
pub(crate) mod readback;
mod scan;
mod secret;
pub mod services;
mod together;
mod vendor_call;
mod writes;

pub use auditor::{Auditor, Webhook};
pub use context::{Policy, RunContext, RunParts, StepScope};
pub use dashboard::Dashboard;
pub use operator::Operator;
pub(crate) use placeholder::Placeholder;
pub(crate) use prompt::prompt_error;
pub use services::Services;
pub(crate) use vendor_call::PASSING;

use crate::engine::registry::{HostModules, Registrar};
use crate::plan::PlanBuilder;
use crate::value::throw;
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};
use std::cell::RefCell;
use std::rc::Rc;

pub use crate::engine::registry::{Effect, HostFn};

type R<T> = Result<T, Box<EvalAltResult>>;

/// Where a run's script is: between steps, inside a step or its undo, or at the REPL prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Idle,
    Step(String),
    Undo(String),
    /// A read-only check outside a step (rollback's `restores` probes): reads, never writes.
    Probe(String),
    Repl,
}

/// What the host functions of one engine act on: its tag.
#[derive(Clone)]
pub enum Stage {
    /// The top level runs: the runbook format functions record the plan.
    Loading(Rc<RefCell<PlanBuilder>>),
    /// A loaded runbook that is only inspected (`check`, `show`, `doc`): nothing reaches out.
    Inert,
    /// A run (exec, resume, rollback, the REPL).
    Running(Rc<RunContext>),
}

impl Stage {
    /// The stage of the engine a host function was called from.
    pub(crate) fn of(ctx: &NativeCallContext) -> Stage {
        ctx.tag()
            .and_then(|t| t.read_lock::<Stage>().map(|s| s.clone()))
            .unwrap_or(Stage::Inert)
    }

    /// Makes this the stage of every call `engine` makes from now on.
    pub(crate) fn install(self, engine: &mut Engine) {
        engine.set_default_tag(Dynamic::from(self));
    }

    /// The run, for a call that reaches a vendor or the operator; refused at the top level
    /// (loading must not touch anything) and outside a run.
    pub(crate) fn run(&self, function: &str) -> R<Rc<RunContext>> {
        match self {
            Stage::Running(run) => {
                run.require_step(function)?;
                Ok(run.clone())
            }
            Stage::Loading(_) => Err(top_level(function)),
            Stage::Inert => Err(throw(
                "usage",
                "vendor calls are only available while a runbook runs",
                None,
            )),
        }
    }

    /// The plan being declared, for the runbook format functions.
    pub(crate) fn plan(&self, what: &str) -> R<Rc<RefCell<PlanBuilder>>> {
        match self {
            Stage::Loading(plan) => Ok(plan.clone()),
            _ => Err(throw(
                "usage",
                format!("{what} can only be used at the top level of a runbook"),
                None,
            )),
        }
    }

    /// Whether checks are only reported: a dry run that already skipped a write, whose
    /// effects later checks may depend on.
    pub(crate) fn checks_unverifiable(&self) -> bool {
        match self {
            Stage::Running(run) => run.dry_run() && run.writes().has_planned(),
            _ => false,
        }
    }
}

/// The keys a host function's options map takes (the map argument named `options` or
/// `settings`), by `module::name`: the same lists the functions check at run time, so `check`
/// can flag a misspelled key before anything runs.
pub(crate) fn option_keys(qualified: &str) -> Option<&'static [&'static str]> {
    Some(match qualified {
        "http::get" | "http::post" | "http::put" | "http::patch" | "http::delete" => http::OPTIONS,
        "infisical::secret" => infisical::SCOPE_OPTIONS,
        "infisical::delete_secret" => infisical::DELETE_OPTIONS,
        "infisical::holders" => infisical::HOLDERS_OPTIONS,
        "heroku::wait_up" => heroku::WAIT_UP_OPTIONS,
        "heroku::holders" => heroku::HOLDERS_OPTIONS,
        "heroku::releases" => heroku::RELEASES_OPTIONS,
        "heroku::logs" => heroku::LOGS_OPTIONS,
        "heroku::log_sessions" => heroku::LOG_SESSIONS_OPTIONS,
        "heroku::read_logs" => heroku::READ_LOGS_OPTIONS,
        "github::possible_holders" => github::POSSIBLE_HOLDERS_OPTIONS,
        "scan::holders" | "scan::begin" => scan::HOLDERS_OPTIONS,
        "prompt::confirm" => prompt::CONFIRM_OPTIONS,
        "prompt::ask" => prompt::ASK_OPTIONS,
        "prompt::secret" => prompt::SECRET_OPTIONS,
        "prompt::choose" => prompt::CHOOSE_OPTIONS,
        "postmark::dashboard_new_token" => postmark::DASHBOARD_NEW_TOKEN_OPTIONS,
        _ => return None,
    })
}

/// `set_secret` takes a Secret or text, with different options: the keys for a call whose
/// value argument is a literal string (text) or not.
pub(crate) fn set_secret_keys(text: bool) -> &'static [&'static str] {
    if text {
        infisical::SET_TEXT_OPTIONS
    } else {
        infisical::WRITE_OPTIONS
    }
}

/// Runs a host function's body with the run it was called in.
pub(crate) fn with_run<T>(
    c: &NativeCallContext,
    function: &str,
    f: impl FnOnce(&RunContext) -> R<T>,
) -> R<T> {
    let run = Stage::of(c).run(function)?;
    f(&run)
}

fn top_level(function: &str) -> Box<EvalAltResult> {
    throw(
        "usage",
        format!("{function} cannot be called at the top level of a runbook"),
        Some("call it inside a step: step(\"id\", \"title\", |ctx| { ... })".into()),
    )
}

thread_local! {
    static MODULES: Rc<HostModules> = Rc::new(build());
}

/// Every host module, built on first use and shared by every engine of this thread (rhai
/// values are not `Send`; the engine lives on the main thread).
pub fn modules() -> Rc<HostModules> {
    MODULES.with(Rc::clone)
}

/// Makes every host module available to `engine`, acting on `stage`.
pub(crate) fn install(engine: &mut Engine, stage: Stage) {
    modules().install(engine);
    stage.install(engine);
}

/// What registers one host module's functions.
type Register = fn(&mut Registrar);

/// Every host module, in the order they register (the reference lists them so): adding
/// one is a file and a line here.
const REGISTERED: &[(&str, Register)] = &[
    ("ctx", crate::value::Ctx::register),
    ("placeholder", placeholder::register),
    ("secret", secret::register),
    ("runbook format", core::register),
    ("prompt", prompt::register),
    ("audit", audit::register),
    ("postmark", postmark::register),
    ("infisical", infisical::register),
    ("heroku", heroku::register),
    ("github", github::register),
    ("scan", scan::register),
    ("http", http::register),
    ("together", together::register),
];

fn build() -> HostModules {
    let mut reg = Registrar::new();
    for (_, register) in REGISTERED {
        register(&mut reg);
    }
    reg.build()
}

#[cfg(test)]
mod tests {
    /// Each vendor spec has its host module registered, and no vendor module is registered
    /// without a spec.
    #[test]
    fn every_vendor_spec_has_its_host_module() {
        let registered: Vec<&str> = super::REGISTERED.iter().map(|(n, _)| *n).collect();
        for spec in &runbook_vendors::spec::SPECS {
            assert!(
                registered.contains(&spec.name),
                "{} has no host module",
                spec.name
            );
        }
        let modules = super::modules();
        for spec in &runbook_vendors::spec::SPECS {
            assert!(
                modules.registry().iter().any(|f| f.module == spec.name),
                "{} registered no function",
                spec.name
            );
        }
    }

    /// Retries depend on it: a write that cannot say whether repeating it is safe would be
    /// retried (or not) by accident.
    #[test]
    fn every_write_declares_whether_it_may_be_repeated() {
        let modules = super::modules();
        let undeclared: Vec<String> = modules
            .registry()
            .iter()
            .filter(|f| f.effect.mutates() && f.repeat.is_none())
            .map(|f| f.signature())
            .collect();
        assert!(undeclared.is_empty(), "{undeclared:?}");
    }
}

#[cfg(test)]
mod option_tests {
    /// Every host function with an options map has its keys in `option_keys`, so `check` never
    /// lets a misspelled key through for want of a list (methods are checked at run time).
    #[test]
    fn every_options_map_has_its_keys_listed() {
        let modules = super::modules();
        for f in modules.registry() {
            let takes_options = f
                .params
                .iter()
                .any(|p| p == "options: Map" || p == "settings: Map");
            if !takes_options || f.receiver.is_some() || f.module.is_empty() {
                continue;
            }
            let q = f.qualified();
            assert!(
                super::option_keys(&q).is_some() || q == "infisical::set_secret",
                "{q} takes an options map: list its keys in host::option_keys"
            );
        }
    }
}
