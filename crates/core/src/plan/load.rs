//! Compiling a runbook and running its top level to build the plan.

use super::{Plan, SourceFile};
use crate::engine::{self, Limits, Resolver, ScriptError, Sources};
use crate::error::{Error, Result};
use crate::host::{self, Host};
use crate::prompt::Prompter;
use rhai::{Engine, Position, AST};
use std::rc::Rc;

/// A runbook ready to run: its engine (with host modules), compiled script and plan.
pub struct Loaded {
    pub file: SourceFile,
    pub engine: Engine,
    /// What step closures are called with: the runbook's functions plus those of every module
    /// it imported (see `callable`).
    pub ast: AST,
    /// The runbook's own compiled script, for lints and docs.
    pub script: AST,
    pub host: Rc<Host>,
    pub plan: Plan,
}

impl Loaded {
    pub fn sources(&self) -> &Sources {
        &self.host.sources
    }
}

/// Compiles the script and evaluates its top level. Nothing outside the process is touched:
/// host functions that reach vendors or the operator refuse to run outside a step.
pub fn load(file: SourceFile, prompter: Prompter) -> Result<Loaded> {
    let (mut engine, host, resolver) = build_engine(&file, prompter);
    let ast = compile(&engine, &file, &host.sources)?;
    register_imports(&mut engine, &resolver, &ast, &host.sources)?;
    engine
        .run_ast(&ast)
        .map_err(|e| Error::script(ScriptError::from_eval(&e, &host.sources)))?;
    let plan = host.plan.borrow().clone();
    validate(&plan, &file, &host.sources)?;
    let callable = callable(&ast, &resolver, &file);
    Ok(Loaded {
        file,
        engine,
        ast: callable,
        script: ast,
        host,
        plan,
    })
}

/// No runbook at all: an engine with every host module, for the REPL.
pub fn bare(dir: &std::path::Path, prompter: Prompter) -> Loaded {
    let file = SourceFile {
        path: dir.join("<repl>"),
        name: "<repl>".into(),
        text: String::new(),
    };
    let (engine, host, _) = build_engine(&file, prompter);
    Loaded {
        file,
        engine,
        ast: AST::empty(),
        script: AST::empty(),
        host,
        plan: Default::default(),
    }
}

/// Registers `import "x" as alias` statements of `ast` as static modules (see `load`).
pub fn import_modules(loaded: &mut Loaded, ast: &AST) -> Result<()> {
    let resolver = Resolver::new(loaded.file.dir(), loaded.host.sources.clone());
    register_imports(&mut loaded.engine, &resolver, ast, &loaded.host.sources)
}

/// The AST step closures are called with. A closure is looked up by its hash in the library of
/// the AST it is called with; one written inside an imported module (a stdlib function that
/// registers steps, like `rotation::steps`) lives in that module, not in the runbook. So the
/// library is the runbook's functions, then every resolved module's functions: they keep
/// their module's environment (its imports and its other functions), and the runbook's own
/// functions win a name clash.
fn callable(ast: &AST, resolver: &Resolver, file: &SourceFile) -> AST {
    let modules = resolver.resolved();
    if modules.is_empty() {
        return ast.clone();
    }
    let mut lib = (**ast.shared_lib()).clone();
    for (_, module) in &modules {
        lib.fill_with(module);
    }
    let mut callable = AST::new_from_module(lib);
    callable.set_source(file.name.as_str());
    callable
}

/// An engine with every host module, for this runbook's folder.
pub fn build_engine(file: &SourceFile, prompter: Prompter) -> (Engine, Rc<Host>, Resolver) {
    let sources = Rc::new(Sources::new());
    sources.set_main(&file.name, &file.text);
    let resolver = Resolver::new(file.dir(), sources.clone());
    let mut engine = engine::new_engine(Limits::default(), resolver.clone());
    let host = Host::new(sources, prompter);
    host::register_all(&mut engine, &host);
    (engine, host, resolver)
}

/// Step closures run after the top level, without its `import` statements in effect; so
/// every top-level `import "x" as alias` is also registered as a static module `alias`.
fn register_imports(
    engine: &mut Engine,
    resolver: &Resolver,
    ast: &AST,
    sources: &Sources,
) -> Result<()> {
    use rhai::{Expr, ModuleResolver, Stmt};
    for stmt in ast.statements() {
        let Stmt::Import(x, pos) = stmt else { continue };
        let (Expr::StringConstant(path, _), alias) = (&x.0, &x.1) else {
            continue;
        };
        if alias.name.is_empty() {
            continue;
        }
        let module = resolver
            .resolve(engine, None, path, *pos)
            .map_err(|e| Error::script(ScriptError::from_eval(&e, sources)))?;
        engine.register_static_module(alias.name.as_str(), module);
    }
    Ok(())
}

pub fn compile(engine: &Engine, file: &SourceFile, sources: &Sources) -> Result<AST> {
    let mut ast = engine
        .compile(&file.text)
        .map_err(|e| Error::script(ScriptError::from_parse(&e, sources, &file.name)))?;
    ast.set_source(file.name.as_str());
    Ok(ast)
}

fn validate(plan: &Plan, file: &SourceFile, sources: &Sources) -> Result<()> {
    if plan.meta.is_none() {
        return Err(Error::script(
            ScriptError::at(
                "runbook::plan::no_metadata",
                "the runbook does not declare itself with runbook(#{ id, title, ... })",
                sources,
                &file.name,
                Position::new(1, 1),
            )
            .with_help(
                "start the script with runbook(#{ id: \"my-runbook\", title: \"What it does\" });",
            ),
        ));
    }
    if plan.steps.is_empty() {
        return Err(Error::script(
            ScriptError::at(
                "runbook::plan::no_steps",
                "the runbook has no steps",
                sources,
                &file.name,
                plan.meta_position,
            )
            .with_help("add at least one step(\"id\", \"title\", |ctx| { ... });"),
        ));
    }
    Ok(())
}
