//! Compiling a runbook and running its top level to build the plan.

use super::SourceFile;
use crate::diagnostic::{ScriptError, Sources};
use crate::engine::{self, Limits, Resolver};
use crate::error::{Error, Result};
use crate::host::{self, Stage};
use crate::plan::{Incomplete, Plan, PlanBuilder};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Position, Scope, AST};
use std::cell::RefCell;
use std::rc::Rc;

/// A runbook ready to run: its engine (with the host modules), compiled script and plan.
/// The plan never changes once loaded; a run hands the engine its context (`attach`).
pub struct Runbook {
    file: SourceFile,
    engine: Engine,
    /// What step closures are called with: the runbook's functions plus those of every module
    /// it imported (see `callable`).
    ast: AST,
    /// The runbook's own compiled script, for lints and docs.
    script: AST,
    plan: Plan,
    sources: Rc<Sources>,
    resolver: Resolver,
    /// What the top level printed while loading, for the caller to show.
    printed: Vec<String>,
    /// The runbook and its imports compiled for the lints and the plan's listings: built
    /// once (an exec asks for it three times; each build compiled every import again).
    program: std::cell::OnceCell<super::program::Program>,
}

/// Wall-clock budget for evaluating a runbook's top level and its imports.
const LOAD_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

impl Runbook {
    /// Compiles the script and evaluates its top level. Nothing outside the process is
    /// touched: host functions that reach vendors or the operator refuse to run there.
    pub fn load(file: SourceFile) -> Result<Runbook> {
        let (mut engine, sources, resolver) = build_engine(&file);
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = printed.clone();
        engine::print_to(&mut engine, move |text| {
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(text.to_string())
        });
        let builder = Rc::new(RefCell::new(PlanBuilder::default()));
        Stage::Loading(builder.clone()).install(&mut engine);
        let ast = compile(&engine, &file, &sources)?;
        // `list`, `check` and `show` load every runbook they find: a top level that loops
        // (or sleeps) must not hang them.
        let _budget = crate::interrupt::budget(
            LOAD_BUDGET,
            &format!("loading {}", file.name),
            "a runbook's top level only declares (runbook, param, step): move work into a step",
        );
        register_imports(&mut engine, &resolver, &ast, &sources)?;
        let ran = engine.run_ast(&ast);
        Stage::Inert.install(&mut engine);
        ran.map_err(|e| Error::script(ScriptError::from_eval(&e, &sources)))?;
        let declared = std::mem::take(&mut *builder.borrow_mut());
        let plan = declared
            .finish()
            .map_err(|why| incomplete(why, &file, &sources))?;
        let callable = callable(&ast, &resolver, &file);
        let printed = std::mem::take(&mut *printed.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Runbook {
            file,
            engine,
            ast: callable,
            script: ast,
            plan,
            sources,
            resolver,
            printed,
            program: std::cell::OnceCell::new(),
        })
    }

    /// The vendor modules the runbook (or a module it imports) calls.
    pub fn vendor_modules(&self) -> Vec<&'static str> {
        let texts = self.sources.all();
        crate::plan::egress::vendor_modules()
            .filter(|m| {
                let call = format!("{m}::");
                texts.iter().any(|t| t.contains(&call))
            })
            .collect()
    }

    /// The vendor modules the runbook's own files call (itself and the files next to it that
    /// it imports), not counting the stdlib's: a stdlib module calls every vendor it can
    /// serve (`std/rotation` reads Heroku apps when there are any), which says nothing of
    /// whether this runbook needs that vendor.
    pub fn own_vendor_modules(&self) -> Vec<&'static str> {
        let own: Vec<std::sync::Arc<String>> = std::iter::once(self.sources.main())
            .chain(
                self.sources
                    .modules()
                    .into_iter()
                    .map(|(name, _)| name)
                    .filter(|name| !name.starts_with("<std/")),
            )
            .filter_map(|name| self.sources.get(&name))
            .collect();
        crate::plan::egress::vendor_modules()
            .filter(|m| {
                let call = format!("{m}::");
                own.iter().any(|t| t.contains(&call))
            })
            .collect()
    }

    /// Every question the runbook can ask, in plan order, with the id an answers file gives
    /// its answer under: the engine's own (prerequisites, a step's confirmation, what to do
    /// when a step fails, the rollback's), and the script's (`prompt::*`, the Postmark
    /// dashboard's pastes), as far as their literal arguments say (`…` where the script
    /// computes a part at run time).
    pub fn prompts(&self) -> Vec<Prompt> {
        let program = self.program();
        let plan = self.plan();
        let mut out = Vec::new();
        if !plan.prerequisites.is_empty() {
            out.push(Prompt::engine(
                "",
                "prerequisites",
                Answer::AllConfirmed,
                "Confirm each prerequisite",
            ));
        }
        if self.step_writes().iter().any(|w| !w.is_empty()) {
            out.push(Prompt::engine(
                "",
                "writes.confirm",
                Answer::YesNo,
                "Go ahead with the first write? (asked before a run's first write outside a sandbox)",
            ));
        }
        for step in &plan.steps {
            if let Some(q) = &step.confirm {
                out.push(Prompt::engine(
                    &step.id,
                    &format!("{}.confirm", step.id),
                    Answer::YesNo,
                    q,
                ));
            }
            if let Some(unit) = program.units.iter().position(|u| u.name == step.source) {
                let arity = step.run.curry().len() + 1;
                for call in program.prompts_from(unit, step.run.fn_name(), arity) {
                    out.extend(Prompt::from_call(&step.id, &call));
                }
            }
            out.push(Prompt::engine(
                &step.id,
                &format!("{}.on-failure", step.id),
                Answer::OneOf(vec!["retry".into(), "rollback".into(), "stop".into()]),
                "When the step fails: retry it, roll back, or stop",
            ));
        }
        out.push(Prompt::engine(
            "",
            "rollback.confirm",
            Answer::YesNo,
            "Undo these now? (asked by a rollback)",
        ));
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert(p.id.clone()));
        out
    }

    /// The keys of an answers file that answer no question this runbook can ask (each with
    /// the nearest id that does): a typo there is a "no" that `--yes` turns into a yes.
    /// The engine's questions not listed by `prompts` (a resume's rerun, the REPL's write)
    /// count as known; an id the script computes, or derives from a question it computes
    /// (shown with `…`), matches whatever its literal parts allow.
    pub fn unanswered_keys<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Vec<(String, Option<String>)> {
        let prompts = self.prompts();
        let mut ids: Vec<String> = prompts.iter().map(|p| p.id.clone()).collect();
        ids.push("repl.write".into());
        // Asked for a write the static list missed, too.
        ids.push("writes.confirm".into());
        // A resume that cannot read its targets back; an Infisical undo whose change
        // request cannot be read.
        ids.push("resume.unread".into());
        // A resume over a lost write whose target holds another value.
        ids.push("resume.rewrite".into());
        for step in &self.plan().steps {
            ids.push(format!("{}.rerun", step.id));
            ids.push(format!("{}.request_closed", step.id));
        }
        // A key holding `…` (a pattern copied from `runbook answers`) answers nothing: the
        // caller says so on its own.
        // A resume or rollback asks for each Secret the run held under `resume.KEY` (or
        // `resume.params.NAME`): which keys hold one is known only from the run's journal,
        // so any such id is taken (an answers file for the next resume was warned about).
        // One a letter or two from a known id (`resume.unraed`) is still a typo.
        let resume_value = |key: &str| {
            key.strip_prefix("resume.").is_some_and(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            }) && crate::suggest::closest(key, ids.iter().map(String::as_str)).is_none()
        };
        keys.into_iter()
            .filter(|key| !key.contains('…'))
            .filter(|key| !resume_value(key))
            .filter(|key| !ids.iter().any(|id| matches_id(id, key)))
            .map(|key| {
                let near = crate::suggest::closest(key, ids.iter().map(String::as_str));
                (key.to_string(), near.map(str::to_string))
            })
            .collect()
    }

    /// The judgements (`judgement: true` confirmations) the runbook can ask that none of
    /// `keys` answers: with no terminal, `--yes` cannot answer them either.
    pub fn unanswered_judgements<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Vec<Prompt> {
        // Reading every step's questions costs the program's analysis: only for a runbook
        // whose text can ask one (the start of every run comes through here).
        if !self.sources.all().iter().any(|t| t.contains("judgement")) {
            return Vec::new();
        }
        let keys: Vec<&str> = keys.into_iter().collect();
        self.prompts()
            .into_iter()
            .filter(|p| p.answer == Answer::Judgement)
            // The dashboard's is asked when its step reaches it, and a rehearsal's simulated
            // dashboard answers it: the text cannot say that no one will.
            .filter(|p| p.question != crate::host::postmark::DELETED_QUESTION)
            // A key holding `…` is a pattern copied from `runbook answers`, never the id
            // the run asks.
            .filter(|p| {
                !keys
                    .iter()
                    .any(|k| !k.contains('…') && matches_id(&p.id, k))
            })
            .collect()
    }

    /// For each step of the plan, in order, the host functions that change a vendor's state
    /// (write or destructive) its code can reach: what a confirmation before the first
    /// write lists. Static, so a call a param leaves out is listed too.
    pub fn step_writes(&self) -> Vec<Vec<String>> {
        let program = self.program();
        let host = crate::host::modules();
        self.plan()
            .steps
            .iter()
            .map(|step| {
                let Some(unit) = program.units.iter().position(|u| u.name == step.source) else {
                    return Vec::new();
                };
                let arity = step.run.curry().len() + 1;
                let mut names: Vec<String> = program
                    .reachable_from(unit, step.run.fn_name(), arity)
                    .into_iter()
                    // The audit log is this tool's own record, not a vendor's state.
                    .filter(|c| !c.function.starts_with("audit::"))
                    .filter(|c| c.mutates(&host))
                    .map(|c| c.function)
                    .collect();
                names.sort();
                names.dedup();
                names
            })
            .collect()
    }

    /// For each step of the plan, in order, the calls to vendors its code makes, in the
    /// order it makes them: what runs at once (a fan-out over apps, `run::together`) and
    /// what waits for what. Static, so a call a param leaves out is listed too.
    pub fn step_calls(&self) -> Vec<Vec<super::program::Outlined>> {
        let program = self.program();
        self.plan()
            .steps
            .iter()
            .map(|step| step_calls(program, step))
            .collect()
    }

    /// No runbook at all: an engine with every host module, for the REPL.
    pub fn bare(dir: &std::path::Path) -> Runbook {
        let file = SourceFile {
            path: dir.join("<repl>"),
            name: "<repl>".into(),
            text: String::new(),
        };
        let (mut engine, sources, resolver) = build_engine(&file);
        Stage::Inert.install(&mut engine);
        Runbook {
            file,
            engine,
            ast: AST::empty(),
            script: AST::empty(),
            plan: Plan::default(),
            sources,
            resolver,
            printed: Vec::new(),
            program: std::cell::OnceCell::new(),
        }
    }

    pub(crate) fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The runbook and every module it imports, compiled for static analysis.
    pub(crate) fn program(&self) -> &super::program::Program {
        self.program
            .get_or_init(|| super::program::Program::new(self))
    }

    /// What the top level printed while it loaded.
    pub fn printed(&self) -> &[String] {
        &self.printed
    }

    pub fn file(&self) -> &SourceFile {
        &self.file
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn sources(&self) -> &Rc<Sources> {
        &self.sources
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runbook's own compiled script.
    pub fn script(&self) -> &AST {
        &self.script
    }

    /// The library step closures are called with.
    pub fn callable(&self) -> &AST {
        &self.ast
    }

    /// Hands every later call of this runbook's functions the stage they act on; what a
    /// running script prints goes to the run's sink.
    pub fn attach(&mut self, stage: Stage) {
        if let Stage::Running(run) = &stage {
            let say = run.say().clone();
            engine::print_to(&mut self.engine, move |text| {
                say.notice(crate::sink::Notice::ScriptOutput {
                    text: text.to_string(),
                })
            });
        }
        stage.install(&mut self.engine);
    }

    /// Calls one of the runbook's closures (a step, an undo, a verify) with `ctx`.
    pub fn call<T: rhai::Variant + Clone>(
        &self,
        f: &FnPtr,
        ctx: crate::value::Ctx,
    ) -> std::result::Result<T, Box<EvalAltResult>> {
        f.call::<T>(&self.engine, &self.ast, (ctx,))
    }

    /// Compiles one REPL input against the session's scope.
    pub fn compile_input(
        &self,
        scope: &Scope,
        input: &str,
    ) -> std::result::Result<AST, Box<ScriptError>> {
        self.sources.add("<repl>", input);
        let mut ast = self
            .engine
            .compile_with_scope(scope, input)
            .map_err(|e| Box::new(ScriptError::from_parse(&e, &self.sources, "<repl>")))?;
        ast.set_source("<repl>");
        Ok(ast)
    }

    /// Registers `import "x" as alias` statements of `ast` (REPL input) as static modules.
    pub fn import_modules(&mut self, ast: &AST) -> Result<()> {
        register_imports(&mut self.engine, &self.resolver, ast, &self.sources)
    }

    /// Evaluates REPL input (with the functions defined so far) in the session's scope.
    pub fn eval_with_scope(
        &self,
        scope: &mut Scope<'static>,
        ast: &AST,
    ) -> std::result::Result<Dynamic, Box<EvalAltResult>> {
        self.engine.eval_ast_with_scope::<Dynamic>(scope, ast)
    }
}

fn incomplete(why: Incomplete, file: &SourceFile, sources: &Sources) -> Error {
    match why {
        Incomplete::NoMetadata => Error::script(
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
        ),
        Incomplete::NoSteps(at) => Error::script(
            ScriptError::at(
                "runbook::plan::no_steps",
                "the runbook has no steps",
                sources,
                &file.name,
                at,
            )
            .with_help("add at least one step(\"id\", \"title\", |ctx| { ... });"),
        ),
        Incomplete::EgressParam(name, at) => Error::script(
            ScriptError::at(
                "runbook::usage",
                format!("egress names param:{name}, which the runbook does not declare"),
                sources,
                &file.name,
                at,
            )
            .with_help(format!(
                "declare it: param(\"{name}\", #{{ help: \"...\" }})"
            )),
        ),
    }
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
fn build_engine(file: &SourceFile) -> (Engine, Rc<Sources>, Resolver) {
    let sources = Rc::new(Sources::new());
    sources.set_main(&file.name, &file.text);
    let resolver = Resolver::new(file.dir(), sources.clone());
    resolver.loading_main(&file.path, &file.name);
    let mut engine = engine::new_engine(Limits::default(), resolver.clone());
    host::modules().install(&mut engine);
    (engine, sources, resolver)
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
        // Under a host module's name, every call meant for the host would reach the script.
        if host::modules().is_module(alias.name.as_str()) {
            return Err(Error::script(ScriptError::from_eval(
                &EvalAltResult::ErrorRuntime(
                    format!(
                        "import \"{path}\" as {}: {} is a host module; import it under another name",
                        alias.name, alias.name
                    )
                    .into(),
                    *pos,
                ),
                sources,
            )));
        }
        let module = resolver
            .resolve(engine, None, path, *pos)
            .map_err(|e| Error::script(ScriptError::from_eval(&e, sources)))?;
        engine.register_static_module(alias.name.as_str(), module);
    }
    Ok(())
}

/// Compiles a runbook's text (named for diagnostics).
pub fn compile(engine: &Engine, file: &SourceFile, sources: &Sources) -> Result<AST> {
    let mut ast = engine
        .compile(&file.text)
        .map_err(|e| Error::script(ScriptError::from_parse(&e, sources, &file.name)))?;
    ast.set_source(file.name.as_str());
    Ok(ast)
}

/// A question a runbook can ask, as `runbook answers`, `show` and `doc` list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Prompt {
    /// The step that asks it ("" for the run's own questions).
    pub step: String,
    /// The answers file's key.
    pub id: String,
    /// What answers it.
    pub answer: Answer,
    pub question: String,
    /// What `--yes` or the default gives, when the script says.
    pub default: Option<String>,
}

impl Prompt {
    /// The question as listed: one the script computes whole (a variable) is said so, where
    /// `runbook answers` printed an empty comment (author review).
    pub fn shown_question(&self) -> &str {
        match self.question.trim() {
            "" => "(a question the script computes at run time)",
            _ => &self.question,
        }
    }

    fn engine(step: &str, id: &str, answer: Answer, question: &str) -> Prompt {
        Prompt {
            step: step.into(),
            id: id.into(),
            answer,
            question: question.into(),
            default: None,
        }
    }

    /// The questions one host call asks, with the ids it gives them (as the host functions
    /// derive them: `crates/core/src/host/prompt.rs`, `postmark.rs`).
    fn from_call(step: &str, c: &super::program::PromptCall) -> Vec<Prompt> {
        let question = c.question.clone().unwrap_or_default();
        // The id the host derives from the question's text; of a question computed in part,
        // only what its literal start gives is known (the rest is `…`).
        let derived = || match question.split_once('…') {
            // A question the script computes whole: its id is the step's and text.
            None if c.question.is_none() => format!("{step}.…"),
            None => crate::host::prompt_id_for(step, &question),
            Some((start, _)) => {
                let known = crate::host::prompt_id_for(step, start);
                let whole = crate::host::prompt_id_for(step, &format!("{start}{}", "x".repeat(40)));
                if known == whole {
                    known
                } else {
                    format!("{known}…")
                }
            }
        };
        let one = |id: String, answer: Answer, question: String| Prompt {
            step: step.into(),
            id,
            answer,
            question,
            default: c.default.clone(),
        };
        match c.function.as_str() {
            "prompt::confirm" => vec![one(
                c.id.clone().unwrap_or_else(derived),
                if c.judgement {
                    Answer::Judgement
                } else {
                    Answer::YesNo
                },
                question.clone(),
            )],
            "prompt::ask" => vec![one(
                c.id.clone().unwrap_or_else(derived),
                Answer::Text,
                question.clone(),
            )],
            "prompt::secret" => vec![one(
                c.id.clone().unwrap_or_else(derived),
                Answer::Secret("masked at a terminal; an answers file must be chmod 600"),
                question.clone(),
            )],
            "prompt::choose" => vec![one(
                c.id.clone().unwrap_or_else(derived),
                Answer::OneOf(c.options.clone()),
                question.clone(),
            )],
            "prompt::checklist" => vec![one(
                c.id.clone().unwrap_or_else(|| format!("{step}.checklist")),
                Answer::AllConfirmed,
                "Confirm each item".into(),
            )],
            "postmark::dashboard_new_token" => {
                let (id, earlier) = match &c.id {
                    Some(id) => (id.clone(), format!("{id}.earlier")),
                    None => (format!("{step}.new_token"), format!("{step}.earlier_token")),
                };
                vec![
                    one(
                        id,
                        Answer::Secret("the token the dashboard shows once"),
                        "Paste the new server API token".into(),
                    ),
                    one(
                        earlier,
                        Answer::Secret(""),
                        "Paste the token the earlier attempt generated (a retry)".into(),
                    ),
                ]
            }
            "postmark::dashboard_delete_token" => vec![one(
                format!("{step}.deleted"),
                Answer::Judgement,
                crate::host::postmark::DELETED_QUESTION.into(),
            )],
            _ => Vec::new(),
        }
    }
}

/// Whether `key` is `id`, where each `…` of `id` (a part computed at run time) stands for
/// any text.
fn matches_id(id: &str, key: &str) -> bool {
    let mut parts = id.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = key.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    if parts.is_empty() {
        return rest.is_empty();
    }
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// What answers a question.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Answer {
    YesNo,
    /// Yes or no, from a person (`judgement: true`): `--yes` does not answer it.
    Judgement,
    /// Every item confirmed (a checklist): `true`.
    AllConfirmed,
    Text,
    /// A secret, with a word on it ("" for none).
    Secret(&'static str),
    /// One of the choices (empty when the script computes them).
    OneOf(Vec<String>),
}

impl Answer {
    /// A value of the right kind for an answers file: `default` when the script gives one.
    pub fn example(&self, default: Option<&str>) -> String {
        if let Some(d) = default {
            return format!("{d:?}");
        }
        match self {
            Answer::YesNo | Answer::Judgement | Answer::AllConfirmed => "true".into(),
            Answer::OneOf(choices) if !choices.is_empty() => format!("{:?}", choices[0]),
            _ => "\"...\"".into(),
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::YesNo => write!(f, "true or false"),
            Answer::Judgement => write!(
                f,
                "true or false; a person's judgement: --yes does not answer it"
            ),
            Answer::AllConfirmed => write!(f, "true (every item confirmed)"),
            Answer::Text => write!(f, "text"),
            Answer::Secret("") => write!(f, "a secret"),
            Answer::Secret(note) => write!(f, "a secret ({note})"),
            Answer::OneOf(c) if c.is_empty() => write!(f, "one of the choices"),
            Answer::OneOf(c) => {
                let quoted: Vec<String> = c.iter().map(|o| format!("{o:?}")).collect();
                write!(f, "one of: {}", quoted.join(", "))
            }
        }
    }
}

/// One step's vendor calls in order (see `Runbook::step_calls`).
pub(crate) fn step_calls(
    program: &super::program::Program,
    step: &crate::plan::Step,
) -> Vec<super::program::Outlined> {
    // A stdlib step calls the runbook's closures, which analysis does not follow: a list of
    // its own calls alone would leave out the vendor's.
    if step.source.starts_with("<std/") {
        return Vec::new();
    }
    let Some(unit) = program.units.iter().position(|u| u.name == step.source) else {
        return Vec::new();
    };
    let vendors: Vec<&str> = crate::plan::egress::vendor_modules()
        .chain(["http", "scan"])
        .collect();
    let host = crate::host::modules();
    // A vendor module's function that reaches the vendor (`dashboard_url` only builds a
    // link).
    let keep = |function: &str| {
        function
            .split_once("::")
            .is_some_and(|(module, _)| vendors.contains(&module))
            && host.effect_of(function) != Some(crate::plan::effect::Effect::None)
    };
    program.outline(unit, step.run.fn_name(), step.run.curry().len() + 1, &keep)
}
