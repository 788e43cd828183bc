//! How host functions are registered: each with its effect, parameters and doc, recorded as
//! it is registered (the registry feeds `runbook api`, the `.d.rhai` files, `docs/api.md`,
//! `check`'s lints and `--dry-run`). The modules are built once per process and shared by
//! every engine; what a function acts on comes from the engine's tag (see `host::Stage`).

use rhai::{Engine, FnNamespace, FuncRegistration, Module, RhaiNativeFunc, Shared, Variant};
use std::collections::{BTreeMap, HashMap, HashSet};

pub use crate::plan::effect::{Effect, Repeat};

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
    /// Why a write needs no undo: it leaves nothing to restore (an audit entry, a restart,
    /// a sent email). A step whose only writes are such needs no `.undo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_undo: Option<&'static str>,
    /// For writes: whether repeating one is safe, which decides retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// What the function sends at once (`each app`, `every vendor`): the plan shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_once: Option<&'static str>,
}

impl HostFn {
    pub(crate) fn qualified(&self) -> String {
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

/// Collects every host module while they are registered.
#[derive(Default)]
pub(crate) struct Registrar {
    /// Global functions, methods and the operators of our types.
    global: Module,
    statics: BTreeMap<&'static str, Module>,
    registry: Vec<HostFn>,
}

impl Registrar {
    pub fn new() -> Self {
        Self::default()
    }

    /// The global module, for a type's name, operators and indexers.
    pub fn global(&mut self) -> &mut Module {
        &mut self.global
    }

    /// A module of functions named `name` (`""` for global functions).
    pub fn module(&mut self, name: &'static str) -> ModuleBuilder<'_> {
        ModuleBuilder { name, reg: self }
    }

    /// The modules, ready to be shared by every engine: named and indexed now, so an engine
    /// takes them by reference instead of copying them.
    pub fn build(self) -> HostModules {
        let mut global = self.global;
        global.build_index();
        let statics = self
            .statics
            .into_iter()
            .map(|(name, mut m)| {
                m.set_id(name);
                m.build_index();
                (name, Shared::new(m))
            })
            .collect();
        let mut by_name = HashMap::new();
        let mut functions: HashMap<String, Vec<(String, usize)>> = HashMap::new();
        let mut globals = HashSet::new();
        for (i, f) in self.registry.iter().enumerate() {
            by_name.entry(f.qualified()).or_insert(i);
            if f.module.is_empty() {
                globals.insert(f.name.clone());
            } else {
                functions
                    .entry(f.module.to_string())
                    .or_default()
                    .push((f.name.clone(), f.params.len()));
            }
        }
        let secret_returning = self
            .registry
            .iter()
            .filter(|f| f.returns == "Secret")
            .map(HostFn::qualified)
            .collect();
        HostModules {
            global: global.into(),
            statics,
            registry: self.registry,
            by_name,
            functions,
            globals,
            secret_returning,
        }
    }

    fn target(&mut self, name: &'static str) -> &mut Module {
        if name.is_empty() {
            &mut self.global
        } else {
            self.statics.entry(name).or_default()
        }
    }
}

/// Every host module, built once and installed into each engine by reference.
pub struct HostModules {
    global: Shared<Module>,
    statics: Vec<(&'static str, Shared<Module>)>,
    registry: Vec<HostFn>,
    /// `module::name` (or `Type.method`) → the first function registered under it.
    by_name: HashMap<String, usize>,
    /// Per host module, its functions' names and arities.
    functions: HashMap<String, Vec<(String, usize)>>,
    /// Global host functions (`step`, `ensure`) and methods.
    globals: HashSet<String>,
    /// Functions that return a Secret, for the lint that follows secrets.
    secret_returning: HashSet<String>,
}

impl HostModules {
    /// Makes every module available to `engine` (no copy: the modules are shared).
    pub(crate) fn install(&self, engine: &mut Engine) {
        engine.register_global_module(self.global.clone());
        for (name, m) in &self.statics {
            engine.register_static_module(*name, m.clone());
        }
    }

    /// Every registered host function, in registration order.
    pub fn registry(&self) -> &[HostFn] {
        &self.registry
    }

    pub(crate) fn effect_of(&self, qualified: &str) -> Option<Effect> {
        self.find(qualified).map(|f| f.effect)
    }

    /// The functions of each host module: name and arity.
    pub fn functions(&self) -> &HashMap<String, Vec<(String, usize)>> {
        &self.functions
    }

    /// `module::name` of every function that returns a Secret.
    pub(crate) fn secret_returning(&self) -> &HashSet<String> {
        &self.secret_returning
    }

    /// Whether `name` is a host module (`heroku`).
    pub(crate) fn is_module(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Whether `name` is a global host function (`step`).
    pub(crate) fn is_global(&self, name: &str) -> bool {
        self.globals.contains(name)
    }

    pub fn find(&self, qualified: &str) -> Option<&HostFn> {
        self.by_name.get(qualified).map(|&i| &self.registry[i])
    }

    /// What `qualified` called with `arity` arguments sends at once (see `HostFn::at_once`).
    /// Where only the overload for a list does (`heroku::releases(apps)` beside
    /// `releases(app)`), a static call cannot tell which runs: "…, given a list".
    pub(crate) fn at_once(&self, qualified: &str, arity: usize) -> Option<String> {
        let overloads: Vec<&HostFn> = self
            .registry
            .iter()
            .filter(|f| f.params.len() == arity && f.qualified() == qualified)
            .collect();
        let what = overloads.iter().find_map(|f| f.at_once)?;
        Some(if overloads.iter().all(|f| f.at_once.is_some()) {
            what.to_string()
        } else {
            format!("{what}, given a list")
        })
    }
}

/// Registers the functions of one module, recording each one's metadata.
pub(crate) struct ModuleBuilder<'r> {
    name: &'static str,
    reg: &'r mut Registrar,
}

impl ModuleBuilder<'_> {
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

    /// Adds a method `receiver.name(params) -> returns` (its first argument, after an
    /// optional call context, is the receiver), with its doc; methods change nothing
    /// outside the script.
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

    /// Declares whether the write just added may be repeated (every write declares it).
    pub fn repeat(&mut self, repeat: Repeat) -> &mut Self {
        if let Some(f) = self.reg.registry.last_mut() {
            f.repeat = Some(repeat);
        }
        self
    }

    /// Says what the function just added sends at once (`each app`): `show` lists it.
    pub fn at_once(&mut self, what: &'static str) -> &mut Self {
        if let Some(f) = self.reg.registry.last_mut() {
            f.at_once = Some(what);
        }
        self
    }

    /// Marks the function just added as a write that leaves nothing to undo, and why.
    pub fn no_undo(&mut self, why: &'static str) -> &mut Self {
        if let Some(f) = self.reg.registry.last_mut() {
            f.no_undo = Some(why);
        }
        self
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
            no_undo: None,
            at_once: None,
            repeat: None,
        };
        let mut params_info: Vec<String> = receiver
            .map(|ty| format!("self: {ty}"))
            .into_iter()
            .chain(info.params.iter().cloned())
            .collect();
        params_info.push(returns.to_string());
        let namespace = if self.name.is_empty() {
            FnNamespace::Global
        } else {
            FnNamespace::Internal
        };
        FuncRegistration::new(name)
            .with_namespace(namespace)
            .with_volatility(effect != Effect::None)
            .with_purity(effect == Effect::None)
            .with_params_info(params_info)
            .with_comments([doc_comment(doc, effect)])
            .set_into_module(self.reg.target(self.name), func);
        self.reg.registry.push(info);
        self
    }

    /// Kept for the registration code's shape: the module is already in the registrar.
    pub fn finish(self) {}
}

fn doc_comment(doc: &str, effect: Effect) -> String {
    let mut lines: Vec<String> = doc.lines().map(|l| format!("/// {l}")).collect();
    lines.push(format!("/// Effect: {}.", effect.as_str()));
    lines.join("\n")
}

/// Registers a global function of one of our types (a conversion, an operator) into `m`,
/// as `Engine::register_fn` would into an engine.
/// A value a script holds but cannot look into (a request under way): typed `name`, shown
/// as `shown` by `print` and `debug`, never as its contents.
pub(crate) fn opaque_type<T: Variant + Clone>(
    reg: &mut Registrar,
    name: &str,
    shown: &'static str,
    keep: &'static str,
) {
    OPAQUE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(std::any::TypeId::of::<T>(), (shown, keep));
    let g = reg.global();
    g.set_custom_type::<T>(name);
    global_fn(g, "to_string", move |_: &mut T| shown.to_string());
    global_fn(g, "to_debug", move |_: &mut T| shown.to_string());
}

/// The opaque types (handles on something under way in this process), by type: how a value
/// is shown, and where a script keeps one instead of `ctx`, which the journal keeps as data.
static OPAQUE: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<std::any::TypeId, (&'static str, &'static str)>>,
> = std::sync::LazyLock::new(Default::default);

/// What `v` is and where to keep it, if it is a value of an opaque type.
pub(crate) fn opaque(v: &rhai::Dynamic) -> Option<(&'static str, &'static str)> {
    if !v.is_variant() {
        return None;
    }
    OPAQUE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&v.type_id())
        .copied()
}

pub(crate) fn global_fn<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
    m: &mut Module,
    name: &str,
    func: FUNC,
) where
    R: Variant + Clone,
    FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
{
    FuncRegistration::new(name)
        .in_global_namespace()
        .set_into_module(m, func);
}
