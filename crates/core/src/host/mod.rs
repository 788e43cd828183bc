//! What scripts can call. One file per rhai module; each function is registered with its
//! effect (read, write, destructive), which `--dry-run` and `check` rely on.

pub mod audit;
pub mod core;
pub mod github;
pub mod heroku;
pub mod http;
pub mod infisical;
pub mod placeholder;
pub mod postmark;
pub mod prompt;
pub mod secret;
pub mod services;
pub mod value;
pub mod vendor_call;

use crate::engine::Sources;
use crate::plan::Plan;
use crate::prompt::Prompter;
use rhai::{Engine, EvalAltResult, FnNamespace, FuncRegistration, Module, RhaiNativeFunc, Variant};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What a host function does to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// No effect outside the script (formatting, fingerprints).
    None,
    /// Talks to the operator (prompts); no vendor effect.
    Operator,
    /// Reads from a vendor; runs for real under `--dry-run`.
    Read,
    /// Changes vendor state; recorded, not performed, under `--dry-run`.
    Write,
    /// Changes vendor state in a way that cannot be undone.
    Destructive,
}

impl Effect {
    pub fn mutates(self) -> bool {
        matches!(self, Effect::Write | Effect::Destructive)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::None => "none",
            Effect::Operator => "operator",
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Destructive => "destructive",
        }
    }
}

/// Metadata of one registered host function.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostFn {
    /// The rhai module (`postmark`), or empty for global functions.
    pub module: &'static str,
    pub name: String,
    /// The parameters after the receiver, for methods.
    pub params: Vec<String>,
    pub returns: String,
    pub effect: Effect,
    pub doc: String,
    /// The type a method is called on (`StepHandle` for `.undo(...)`), if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<&'static str>,
}

impl HostFn {
    pub fn qualified(&self) -> String {
        match (self.receiver, self.module.is_empty()) {
            (Some(ty), _) => format!("{ty}.{}", self.name),
            (None, true) => self.name.clone(),
            (None, false) => format!("{}::{}", self.module, self.name),
        }
    }

    pub fn signature(&self) -> String {
        format!(
            "{}({}) -> {}",
            self.qualified(),
            self.params.join(", "),
            self.returns
        )
    }
}

/// Where the script is: its top level (loading) or inside a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Loading,
    Step(String),
    Undo(String),
    Repl,
}

/// A write that `--dry-run` recorded instead of performing (arguments redacted).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedWrite {
    pub step: String,
    pub function: String,
    pub effect: Effect,
    pub target: String,
    pub detail: serde_json::Value,
}

/// Who runs what; stamped on audit entries.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub actor: String,
    pub runbook_id: String,
    pub mode: String,
}

/// Shared state of the host functions for one loaded runbook.
pub struct Host {
    pub phase: RefCell<Phase>,
    pub plan: RefCell<Plan>,
    pub sources: Rc<Sources>,
    pub prompter: RefCell<Prompter>,
    pub run: RefCell<RunInfo>,
    pub dry_run: Cell<bool>,
    pub planned: RefCell<Vec<PlannedWrite>>,
    /// Mutating calls performed in the current step (rollback includes a failed step's undo
    /// only if it wrote something).
    pub writes_in_step: Cell<usize>,
    pub audit: RefCell<Option<crate::audit::AuditLog>>,
    pub registry: RefCell<Vec<HostFn>>,
    pub services: RefCell<Option<Rc<services::Services>>>,
    pub journal: RefCell<Option<Rc<crate::exec::Journal>>>,
    /// The audit webhook failed once in this run.
    sink_down: Cell<bool>,
}

impl Host {
    pub fn new(sources: Rc<Sources>, prompter: Prompter) -> Rc<Host> {
        Rc::new(Host {
            phase: RefCell::new(Phase::Loading),
            plan: RefCell::new(Plan::default()),
            sources,
            prompter: RefCell::new(prompter),
            run: RefCell::new(RunInfo::default()),
            dry_run: Cell::new(false),
            planned: RefCell::new(Vec::new()),
            writes_in_step: Cell::new(0),
            audit: RefCell::new(None),
            registry: RefCell::new(Vec::new()),
            services: RefCell::new(None),
            journal: RefCell::new(None),
            sink_down: Cell::new(false),
        })
    }

    /// The run-time services; only steps have them (loading and `check` do not).
    pub fn services(&self) -> Result<Rc<services::Services>, Box<EvalAltResult>> {
        self.services.borrow().clone().ok_or_else(|| {
            value::throw(
                "usage",
                "vendor calls are only available while a runbook runs",
                None,
            )
        })
    }

    pub fn set_phase(&self, phase: Phase) {
        *self.phase.borrow_mut() = phase;
    }

    /// The step id for audit entries and planned writes.
    pub fn step_name(&self) -> String {
        match &*self.phase.borrow() {
            Phase::Step(s) | Phase::Undo(s) => s.clone(),
            Phase::Repl => "repl".into(),
            Phase::Loading => String::new(),
        }
    }

    /// Vendor and operator calls belong in steps: loading a runbook must not touch anything.
    pub fn require_step(&self, function: &str) -> Result<(), Box<EvalAltResult>> {
        if *self.phase.borrow() == Phase::Loading {
            return Err(value::throw(
                "usage",
                format!("{function} cannot be called at the top level of a runbook"),
                Some("call it inside a step: step(\"id\", \"title\", |ctx| { ... })".into()),
            ));
        }
        Ok(())
    }

    /// Records a write that `--dry-run` skips, and says so.
    pub fn record_planned(
        &self,
        function: &str,
        effect: Effect,
        target: &str,
        mut detail: serde_json::Value,
    ) {
        runbook_secret::redact_json(&mut detail);
        crate::ui::progress(&format!("    [dry-run] would call {function} on {target}"));
        self.planned.borrow_mut().push(PlannedWrite {
            step: self.step_name(),
            function: function.to_string(),
            effect,
            target: target.to_string(),
            detail,
        });
    }

    /// Appends a record to the run's journal, if it has one.
    pub fn journal(&self, kind: &str, fields: serde_json::Value) {
        if let Some(j) = self.journal.borrow().as_ref() {
            j.record(kind, fields);
        }
    }

    /// Counts a mutating call performed in the current step.
    pub fn note_write(&self) {
        self.writes_in_step.set(self.writes_in_step.get() + 1);
    }

    /// Appends an audit entry for this run (no-op when the run has no audit log).
    pub fn audit_event(
        &self,
        action: &str,
        context: serde_json::Value,
    ) -> crate::error::Result<()> {
        let log = self.audit.borrow();
        let Some(log) = log.as_ref() else {
            return Ok(());
        };
        let run = self.run.borrow();
        let entry = log.append(&crate::audit::Event {
            actor: run.actor.clone(),
            run_id: run.run_id.clone(),
            runbook: run.runbook_id.clone(),
            step: self.step_name(),
            action: action.to_string(),
            mode: run.mode.clone(),
            context,
        })?;
        self.audit_sink(&entry);
        Ok(())
    }

    /// The optional second sink: `RUNBOOK_AUDIT_WEBHOOK` receives each entry as JSON (retried
    /// like any idempotent call). The local entry is already written; a failing sink only warns.
    fn audit_sink(&self, entry: &serde_json::Value) {
        let Ok(url) = std::env::var("RUNBOOK_AUDIT_WEBHOOK") else {
            return;
        };
        // After one entry failed (retries included), the rest of the run stays local: a
        // dead sink must not stall a rotation at every step.
        if self.sink_down.get() {
            return;
        }
        let Some(services) = self.services.borrow().clone() else {
            return;
        };
        let Ok(vendors) = services.vendors() else {
            return;
        };
        let req = runbook_vendors::Request::new("audit-webhook", reqwest::Method::POST, url)
            .json(entry.clone())
            .idempotent(true);
        let transport = vendors.transport().clone();
        let sent = services
            .runtime
            .block_on(async move { transport.send(req).await });
        let failure = match sent {
            Ok(Ok(r)) if r.is_success() => return,
            Ok(Ok(r)) => format!("HTTP {}", r.status),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "interrupted".to_string(),
        };
        self.sink_down.set(true);
        crate::ui::err(&format!(
            "warning: the audit webhook did not take entry {} ({failure}); the local audit log has it and every later entry of this run (the webhook is skipped from now on)",
            entry["hash"].as_str().unwrap_or("?")
        ));
    }

    pub fn effect_of(&self, qualified: &str) -> Option<Effect> {
        self.registry
            .borrow()
            .iter()
            .find(|f| f.qualified() == qualified)
            .map(|f| f.effect)
    }
}

/// Builds one rhai module of host functions, recording each function's metadata.
pub struct ModuleBuilder<'h> {
    name: &'static str,
    module: Module,
    registry: &'h mut Vec<HostFn>,
}

impl<'h> ModuleBuilder<'h> {
    pub fn new(name: &'static str, registry: &'h mut Vec<HostFn>) -> Self {
        ModuleBuilder {
            name,
            module: Module::new(),
            registry,
        }
    }

    /// Adds `name(params) -> returns` with its effect and doc. `params` name each argument
    /// as `name: Type`.
    #[allow(clippy::too_many_arguments)]
    pub fn add<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        effect: Effect,
        params: &[&str],
        returns: &str,
        doc: &str,
        func: FUNC,
    ) -> &mut Self
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
    {
        self.register(None, name, effect, params, returns, doc, func)
    }

    /// Adds a method `receiver.name(params) -> returns` (its first argument is the
    /// receiver, e.g. `&mut StepHandle`), with its doc; methods change nothing outside the
    /// script.
    pub fn method<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        receiver: &'static str,
        name: &str,
        params: &[&str],
        returns: &str,
        doc: &str,
        func: FUNC,
    ) -> &mut Self
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
    {
        self.register(
            Some(receiver),
            name,
            Effect::None,
            params,
            returns,
            doc,
            func,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn register<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        receiver: Option<&'static str>,
        name: &str,
        effect: Effect,
        params: &[&str],
        returns: &str,
        doc: &str,
        func: FUNC,
    ) -> &mut Self
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
    {
        let info = HostFn {
            module: self.name,
            name: name.to_string(),
            params: params.iter().map(|s| s.to_string()).collect(),
            returns: returns.to_string(),
            effect,
            doc: doc.to_string(),
            receiver,
        };
        let mut params_info: Vec<String> = receiver
            .map(|ty| format!("self: {ty}"))
            .into_iter()
            .chain(info.params.iter().cloned())
            .collect();
        params_info.push(returns.to_string());
        FuncRegistration::new(name)
            .with_namespace(if self.name.is_empty() {
                FnNamespace::Global
            } else {
                FnNamespace::Internal
            })
            .with_volatility(effect != Effect::None)
            .with_purity(effect == Effect::None)
            .with_params_info(params_info)
            .with_comments([doc_comment(doc, effect)])
            .set_into_module(&mut self.module, func);
        self.registry.push(info);
        self
    }

    /// Registers the module with the engine (global functions go into the global namespace).
    pub fn finish(self, engine: &mut Engine) {
        if self.name.is_empty() {
            engine.register_global_module(self.module.into());
        } else {
            engine.register_static_module(self.name, self.module.into());
        }
    }
}

fn doc_comment(doc: &str, effect: Effect) -> String {
    let mut lines: Vec<String> = doc.lines().map(|l| format!("/// {l}")).collect();
    lines.push(format!("/// Effect: {}.", effect.as_str()));
    lines.join("\n")
}

/// Registers every host module on an engine for the given host state.
pub fn register_all(engine: &mut Engine, host: &Rc<Host>) {
    let mut registry = Vec::new();
    crate::plan::Ctx::register(engine, &mut registry);
    placeholder::register(engine);
    secret::register(engine, host, &mut registry);
    core::register(engine, host, &mut registry);
    prompt::register(engine, host, &mut registry);
    audit::register(engine, host, &mut registry);
    postmark::register(engine, host, &mut registry);
    infisical::register(engine, host, &mut registry);
    heroku::register(engine, host, &mut registry);
    github::register(engine, host, &mut registry);
    http::register(engine, host, &mut registry);
    *host.registry.borrow_mut() = registry;
}
