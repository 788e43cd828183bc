//! A runbook and the modules it imports, compiled for static analysis: which functions exist,
//! and which host functions a step can reach through the functions it calls. `check`'s lints
//! build on it; nothing here runs a script.

use super::Runbook;
use crate::engine::resolver::STDLIB;
use rhai::{ASTNode, Expr, Position, Stmt, AST};
use std::collections::{HashMap, HashSet};

/// One compiled script: the runbook (unit 0) or a module it imports.
pub(crate) struct Unit {
    /// The name diagnostics use: the runbook's file name, or `<std/NAME>` / a module's path.
    pub name: String,
    pub ast: AST,
    /// `import "..." as alias` of this script, alias → unit index.
    pub imports: HashMap<String, usize>,
    /// Its functions (closures included), name → the arities it defines: a body's every
    /// call is looked up here (searching the script's functions one by one was most of
    /// what listing each step's writes cost).
    functions: HashMap<String, Vec<usize>>,
}

impl Unit {
    fn new(name: String, ast: AST) -> Unit {
        let mut functions: HashMap<String, Vec<usize>> = HashMap::new();
        for f in ast.iter_functions() {
            functions
                .entry(f.name.to_string())
                .or_default()
                .push(f.params.len());
        }
        Unit {
            name,
            ast,
            imports: HashMap::new(),
            functions,
        }
    }
}

/// A call to a host function found in a script.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HostCall {
    /// `heroku::set_config`, or `print` for a global function.
    pub function: String,
    /// How many arguments it is given.
    pub arity: usize,
    pub unit: usize,
    pub position: Position,
    /// An `http::` write given `read_only: true` in a literal options map: a POST that
    /// reads (a search), which the host records as a read.
    pub reads_only: bool,
}

impl HostCall {
    /// Whether it changes something at a vendor: its function's effect, unless the call
    /// says it only reads.
    pub(crate) fn mutates(&self, host: &crate::engine::registry::HostModules) -> bool {
        !self.reads_only
            && host
                .find(&self.function)
                .is_some_and(|f| f.effect.mutates())
    }
}

/// `read_only: true` in the literal options map an `http::` call ends with (a map of
/// constants may reach the analysis folded into one value).
fn says_read_only(args: &[Expr]) -> bool {
    match args.last() {
        Some(Expr::Map(m, _)) => {
            m.0.iter()
                .any(|(k, v)| k.name == "read_only" && matches!(v, Expr::BoolConstant(true, _)))
        }
        Some(Expr::DynamicConstant(d, _)) => d.read_lock::<rhai::Map>().is_some_and(|m| {
            m.get("read_only")
                .and_then(|v| v.as_bool().ok())
                .unwrap_or(false)
        }),
        _ => false,
    }
}

/// A call found in a function body, resolved as far as static analysis can.
#[derive(Debug, Clone)]
enum Call {
    Host(HostCall),
    Script {
        unit: usize,
        name: String,
        arity: usize,
    },
}

/// The runbook and every module reachable through its imports.
pub(crate) struct Program {
    pub units: Vec<Unit>,
    /// The host modules, to tell host calls from script calls.
    host: std::rc::Rc<crate::engine::HostModules>,
}

impl Program {
    pub fn new(loaded: &Runbook) -> Program {
        let mut p = Program {
            units: vec![Unit::new(
                loaded.file().name.clone(),
                loaded.script().clone(),
            )],
            host: crate::host::modules(),
        };
        let mut by_path: HashMap<String, usize> = HashMap::new();
        let dir = loaded.file().dir();
        let mut i = 0;
        while i < p.units.len() {
            for (path, alias) in imports(&p.units[i].ast) {
                let index = match by_path.get(&path) {
                    Some(ix) => *ix,
                    None => {
                        // What loading compiled, else (a module only a function imports)
                        // compiled here.
                        let found = loaded.resolver().compiled(&path).or_else(|| {
                            let (name, text) = module_text(&path, &dir)?;
                            Some((name, loaded.engine().compile(&text).ok()?))
                        });
                        let Some((name, ast)) = found else {
                            continue;
                        };
                        p.units.push(Unit::new(name, ast));
                        by_path.insert(path.clone(), p.units.len() - 1);
                        p.units.len() - 1
                    }
                };
                p.units[i].imports.insert(alias, index);
            }
            i += 1;
        }
        p
    }

    pub fn runbook(&self) -> &Unit {
        &self.units[0]
    }

    /// True when `unit` defines a script function `name` taking `arity` arguments.
    pub(crate) fn defines(&self, unit: usize, name: &str, arity: usize) -> bool {
        self.units[unit]
            .functions
            .get(name)
            .is_some_and(|arities| arities.contains(&arity))
    }

    /// Host calls in one function's body (not following other functions).
    fn calls_in(&self, unit: usize, name: &str, arity: usize) -> Vec<Call> {
        match function_body(&self.units[unit].ast, name, arity) {
            Some(body) => self.calls_of(unit, &body),
            None => Vec::new(),
        }
    }

    /// Calls in the runbook's top level (outside any function).
    fn top_level_calls(&self) -> Vec<Call> {
        self.calls_of(0, &self.units[0].ast.clone_statements_only())
    }

    fn calls_of(&self, unit: usize, ast: &AST) -> Vec<Call> {
        let mut out = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            // A closure written here runs as part of this code (a step's `filter(|k| ...)`,
            // the steps a stdlib function registers): count what it calls too.
            if let Some(node) = path.last() {
                for (unit, name, arity) in self.closures_at(unit, node) {
                    out.push(Call::Script { unit, name, arity });
                }
            }
            let call = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(c, pos))) => Some((c, *pos)),
                Some(ASTNode::Stmt(Stmt::FnCall(c, pos))) => Some((c, *pos)),
                // `ctx.f(x)` calls the script's `fn f(x)` with `ctx` as `this` (its
                // arguments do not count the object).
                Some(ASTNode::Expr(Expr::MethodCall(c, pos))) => Some((c, *pos)),
                _ => None,
            };
            if let Some((c, pos)) = call {
                if c.op_token.is_none() {
                    if let Some(call) = self.resolve(unit, c, pos) {
                        out.push(call);
                    }
                }
            }
            true
        });
        out
    }

    fn resolve(&self, unit: usize, c: &rhai::FnCallExpr, pos: Position) -> Option<Call> {
        let name = c.name.to_string();
        let arity = c.args.len();
        if c.namespace.is_empty() {
            if self.defines(unit, &name, arity) {
                return Some(Call::Script { unit, name, arity });
            }
            if self.host.is_global(&name) || name == "print" || name == "debug" {
                return Some(Call::Host(HostCall {
                    function: name,
                    arity,
                    unit,
                    position: pos,
                    reads_only: false,
                }));
            }
            return None;
        }
        let ns = c.namespace.root().to_string();
        if let Some(target) = self.units[unit].imports.get(&ns) {
            return Some(Call::Script {
                unit: *target,
                name,
                arity,
            });
        }
        if self.host.is_module(&ns) {
            return Some(Call::Host(HostCall {
                function: format!("{ns}::{name}"),
                arity,
                unit,
                position: pos,
                // The host takes `read_only` on the methods that send a body only.
                reads_only: ns == "http"
                    && matches!(name.as_str(), "post" | "put" | "patch")
                    && says_read_only(&c.args),
            }));
        }
        None
    }

    /// Every host call reachable from function `name`/`arity` of `unit`, following the script
    /// functions it calls (closures passed around and called with `call` are not followed).
    pub(crate) fn reachable_from(&self, unit: usize, name: &str, arity: usize) -> Vec<HostCall> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.collect(self.calls_in(unit, name, arity), &mut seen, &mut out);
        out
    }

    /// Every host call reachable from the runbook: its top level, every function it defines
    /// (closures included) and what they call.
    pub(crate) fn reachable_from_runbook(&self) -> Vec<HostCall> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.collect(self.top_level_calls(), &mut seen, &mut out);
        let fns: Vec<(String, usize)> = self.units[0]
            .ast
            .iter_functions()
            .map(|f| (f.name.to_string(), f.params.len()))
            .collect();
        for (name, arity) in fns {
            if seen.insert((0, name.clone(), arity)) {
                self.collect(self.calls_in(0, &name, arity), &mut seen, &mut out);
            }
        }
        out
    }

    fn collect(
        &self,
        calls: Vec<Call>,
        seen: &mut HashSet<(usize, String, usize)>,
        out: &mut Vec<HostCall>,
    ) {
        for call in calls {
            match call {
                Call::Host(h) => out.push(h),
                Call::Script { unit, name, arity } => {
                    if seen.insert((unit, name.clone(), arity)) {
                        let inner = self.calls_in(unit, &name, arity);
                        self.collect(inner, seen, out);
                    }
                }
            }
        }
    }
}

/// A question a script can ask the operator, as far as its call's literal arguments say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptCall {
    /// `prompt::confirm`, `postmark::dashboard_new_token`, ...
    pub function: String,
    /// The `id` option; parts computed at run time show as `…`.
    pub id: Option<String>,
    /// The question (for `prompt::*`), with computed parts as `…`.
    pub question: Option<String>,
    /// A `choose`'s choices.
    pub options: Vec<String>,
    /// The `default` option, when literal.
    pub default: Option<String>,
    /// `judgement: true`: a question `--yes` does not answer.
    pub judgement: bool,
}

/// The host functions that ask the operator.
fn asks(function: &str) -> bool {
    function.starts_with("prompt::")
        || matches!(
            function,
            "postmark::dashboard_new_token" | "postmark::dashboard_delete_token"
        )
}

/// Text of an expression as far as it is literal: a string, or a template whose computed
/// parts show as `…`.
pub(crate) fn literal(e: &Expr) -> Option<String> {
    match e {
        Expr::StringConstant(s, _) => Some(s.to_string()),
        Expr::InterpolatedString(parts, _) => Some(
            parts
                .iter()
                .map(|p| match p {
                    Expr::StringConstant(s, _) => s.to_string(),
                    _ => "…".to_string(),
                })
                .collect(),
        ),
        Expr::DynamicConstant(v, _) if v.is_string() => Some(v.to_string()),
        // `judgement: true` in a map whose other values are computed.
        Expr::BoolConstant(b, _) => Some(b.to_string()),
        _ => None,
    }
}

/// Option `key` of a call's options map, as literal text.
fn option(args: &[Expr], key: &str) -> Option<String> {
    args.iter().find_map(|a| match a {
        Expr::Map(m, _) => {
            m.0.iter()
                .find(|(ident, _)| ident.name == key)
                .and_then(|(_, v)| literal(v).or_else(|| Some("…".into())))
        }
        // A map of constants is folded into one value when the script is compiled.
        Expr::DynamicConstant(v, _) => v
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get(key).filter(|x| !x.is_unit()).map(|x| x.to_string())),
        _ => None,
    })
}

impl Program {
    /// Every question reachable from function `name`/`arity` of `unit` (a step's body),
    /// following the script functions it calls, in the order they are written.
    /// The bodies of function `name`/`arity` of `unit` and of every script function it
    /// reaches, as (unit, body): the function's own first, then the others by unit and name.
    pub(crate) fn bodies_from(&self, unit: usize, name: &str, arity: usize) -> Vec<(usize, AST)> {
        let mut seen = HashSet::new();
        seen.insert((unit, name.to_string(), arity));
        self.collect(self.calls_in(unit, name, arity), &mut seen, &mut Vec::new());
        let mut found: Vec<(usize, String, usize)> = seen.into_iter().collect();
        found.sort_by_key(|(u, n, a)| (*u != unit || n != name || *a != arity, *u, n.clone()));
        found
            .into_iter()
            .filter_map(|(u, n, a)| function_body(&self.units[u].ast, &n, a).map(|b| (u, b)))
            .collect()
    }

    pub(crate) fn prompts_from(&self, unit: usize, name: &str, arity: usize) -> Vec<PromptCall> {
        let mut out = Vec::new();
        for (_, body) in self.bodies_from(unit, name, arity) {
            body.walk(&mut |path: &[ASTNode]| {
                let call = match path.last() {
                    Some(ASTNode::Expr(Expr::FnCall(c, _))) => Some(c),
                    Some(ASTNode::Stmt(Stmt::FnCall(c, _))) => Some(c),
                    _ => None,
                };
                if let Some(c) = call.filter(|c| !c.namespace.is_empty()) {
                    let ns = c.namespace.root().to_string();
                    let function = format!("{ns}::{}", c.name);
                    if self.host.is_module(&ns) && asks(&function) {
                        let options = match c.args.get(1) {
                            Some(Expr::Array(items, _)) if function == "prompt::choose" => items
                                .iter()
                                .map(|x| literal(x).unwrap_or_else(|| "…".into()))
                                .collect(),
                            Some(Expr::DynamicConstant(v, _)) if function == "prompt::choose" => v
                                .read_lock::<rhai::Array>()
                                .map(|a| a.iter().map(|x| x.to_string()).collect())
                                .unwrap_or_default(),
                            _ => Vec::new(),
                        };
                        let question = if function.starts_with("prompt::") {
                            c.args.first().and_then(literal)
                        } else {
                            None
                        };
                        out.push(PromptCall {
                            id: option(&c.args, "id"),
                            default: option(&c.args, "default"),
                            judgement: option(&c.args, "judgement").as_deref() == Some("true"),
                            question,
                            options,
                            function,
                        });
                    }
                }
                true
            });
        }
        out
    }
}

/// An AST holding only function `name`/`arity` of `ast`, to walk its body alone.
/// (`AST::clone_functions_only_filtered` cannot do it: rhai 1.27 copies every function when
/// the target library is empty.)
pub(crate) fn function_body(ast: &AST, name: &str, arity: usize) -> Option<AST> {
    let (.., def) = ast
        .shared_lib()
        .iter_script_fn_info()
        .find(|(_, _, n, a, _)| *n == name && *a == arity)?;
    let mut lib = rhai::Module::new();
    lib.set_script_fn(def.clone());
    Some(AST::new_from_module(lib))
}

/// Every body of a script: its top level, then each function (closures included), alone.
pub fn bodies(ast: &AST) -> Vec<AST> {
    let mut v = vec![ast.clone_statements_only()];
    for f in ast.iter_functions() {
        if let Some(body) = function_body(ast, f.name, f.params.len()) {
            v.push(body);
        }
    }
    v
}

/// `import "path" as alias` statements at the top of a script.
fn imports(ast: &AST) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stmt in ast.statements() {
        if let Stmt::Import(x, _) = stmt {
            if let (Expr::StringConstant(p, _), alias) = (&x.0, &x.1) {
                if !alias.name.is_empty() {
                    out.push((p.to_string(), alias.name.to_string()));
                }
            }
        }
    }
    out
}

/// The text of an imported module: the stdlib, or a file next to the runbook.
fn module_text(path: &str, dir: &std::path::Path) -> Option<(String, String)> {
    if let Some((_, text)) = STDLIB.iter().find(|(n, _)| *n == path) {
        return Some((format!("<{path}>"), (*text).to_string()));
    }
    crate::engine::resolver::read_local(dir, path)
        .ok()
        .map(|(_, shown, text)| (shown, text))
}

/// A step's vendor call as the plan shows it, in the order the code makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outlined {
    /// One host function, and what it sends at once (`each app`), if anything.
    Call {
        function: String,
        at_once: Option<String>,
    },
    /// `run::together`: each closure's calls; single reads among them start together.
    Together(Vec<Vec<Outlined>>),
}

/// What a function body holds, in walk order, before script calls are followed.
enum Item {
    Call(Call),
    /// `run::together`'s closures.
    Together(Vec<(usize, String, usize)>),
}

/// Whether `node` is a call of `run::together`.
fn is_together(node: &ASTNode) -> bool {
    let c = match node {
        ASTNode::Expr(Expr::FnCall(c, _)) | ASTNode::Stmt(Stmt::FnCall(c, _)) => c,
        _ => return false,
    };
    c.name.as_str() == "together" && c.namespace.path.len() == 1 && c.namespace.root() == "run"
}

impl Program {
    /// The calls function `name`/`arity` of `unit` makes, in order, following the script
    /// functions and closures it calls (each once along a path), keeping the host functions
    /// `keep` says; `run::together` keeps its closures apart. Static: a call behind an `if`
    /// is listed too.
    pub(crate) fn outline(
        &self,
        unit: usize,
        name: &str,
        arity: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Vec<Outlined> {
        // Functions are inlined at each call, so a call graph of many paths could grow the
        // list without bound: it stops after this many function bodies, and says so.
        let mut budget = 2_000;
        let mut out = self.outline_fn(unit, name, arity, keep, &mut HashSet::new(), &mut budget);
        if budget == 0 {
            out.push(Outlined::Call {
                function: "… (more calls, not listed)".into(),
                at_once: None,
            });
        }
        out
    }

    fn outline_fn(
        &self,
        unit: usize,
        name: &str,
        arity: usize,
        keep: &dyn Fn(&str) -> bool,
        stack: &mut HashSet<(usize, String, usize)>,
        budget: &mut usize,
    ) -> Vec<Outlined> {
        let key = (unit, name.to_string(), arity);
        if *budget == 0 || !stack.insert(key.clone()) {
            return Vec::new();
        }
        *budget -= 1;
        let items = match function_body(&self.units[unit].ast, name, arity) {
            Some(body) => self.items_of(unit, &body),
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Call(Call::Host(h)) => {
                    if keep(&h.function) {
                        out.push(Outlined::Call {
                            at_once: self.host.at_once(&h.function, h.arity),
                            function: h.function,
                        });
                    }
                }
                Item::Call(Call::Script { unit, name, arity }) => {
                    out.extend(self.outline_fn(unit, &name, arity, keep, stack, budget));
                }
                Item::Together(closures) if closures.is_empty() => {
                    // Closures passed in a variable: what they call is not known here.
                    out.push(Outlined::Call {
                        function: "run::together".into(),
                        at_once: Some("closures not written in the call: not listed".into()),
                    });
                }
                Item::Together(closures) => {
                    let parts: Vec<Vec<Outlined>> = closures
                        .iter()
                        .map(|(u, n, a)| self.outline_fn(*u, n, *a, keep, stack, budget))
                        .filter(|p| !p.is_empty())
                        .collect();
                    if !parts.is_empty() {
                        out.push(Outlined::Together(parts));
                    }
                }
            }
        }
        stack.remove(&key);
        out
    }

    /// The closures (script functions of `unit`) a node of its code holds: one closure, or
    /// (the optimizer folds an array of closures that capture nothing into one constant)
    /// an array of them.
    fn closures_at(&self, unit: usize, node: &ASTNode) -> Vec<(usize, String, usize)> {
        let ASTNode::Expr(Expr::DynamicConstant(v, _)) = node else {
            return Vec::new();
        };
        let ptrs: Vec<rhai::FnPtr> = match v.read_lock::<rhai::Array>() {
            Some(items) => items
                .iter()
                .filter_map(|d| d.read_lock::<rhai::FnPtr>().map(|f| f.clone()))
                .collect(),
            None => v
                .read_lock::<rhai::FnPtr>()
                .map(|f| f.clone())
                .into_iter()
                .collect(),
        };
        ptrs.iter()
            .filter_map(|f| {
                let arity = *self.units[unit].functions.get(f.fn_name())?.first()?;
                Some((unit, f.fn_name().to_string(), arity))
            })
            .collect()
    }

    /// The calls and closures of a body in the order they run: a call after its arguments
    /// (rhai's walk visits it before them); what sits inside a `run::together` call is its
    /// closures, kept apart.
    fn items_of(&self, unit: usize, ast: &AST) -> Vec<Item> {
        let closures = |node: &ASTNode| self.closures_at(unit, node);
        let mut out = Vec::new();
        // Calls seen but not yet ended: each with its depth in the tree; it ends (and is
        // listed) once the walk is back at its depth or above.
        let mut open: Vec<(usize, Item)> = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            let Some((last, above)) = path.split_last() else {
                return true;
            };
            while open.last().is_some_and(|(depth, _)| *depth >= path.len()) {
                if let Some((_, item)) = open.pop() {
                    out.push(item);
                }
            }
            if above.iter().any(is_together) {
                return true;
            }
            if is_together(last) {
                let (ASTNode::Expr(Expr::FnCall(c, _)) | ASTNode::Stmt(Stmt::FnCall(c, _))) = last
                else {
                    return true;
                };
                let mut found = Vec::new();
                for arg in c.args.iter() {
                    arg.walk(&mut Vec::new(), &mut |p: &[ASTNode]| {
                        if let Some(n) = p.last() {
                            found.extend(closures(n));
                        }
                        true
                    });
                }
                open.push((path.len(), Item::Together(found)));
                return true;
            }
            for (u, name, arity) in closures(last) {
                out.push(Item::Call(Call::Script {
                    unit: u,
                    name,
                    arity,
                }));
            }
            if let ASTNode::Expr(Expr::FnCall(c, pos) | Expr::MethodCall(c, pos))
            | ASTNode::Stmt(Stmt::FnCall(c, pos)) = last
            {
                if c.op_token.is_none() {
                    if let Some(call) = self.resolve(unit, c, *pos) {
                        open.push((path.len(), Item::Call(call)));
                    }
                }
            }
            true
        });
        while let Some((_, item)) = open.pop() {
            out.push(item);
        }
        out
    }
}

impl Outlined {
    /// The calls on one line, in order: `a → b (each app at once) → at once: c + d`.
    pub fn line(calls: &[Outlined]) -> String {
        let mut parts: Vec<String> = Vec::new();
        for c in calls {
            let text = match c {
                Outlined::Call { function, at_once } => match at_once {
                    Some(what) if function == "run::together" => format!("{function} ({what})"),
                    Some(what) => match what.split_once(", ") {
                        Some((who, when)) => format!("{function} ({who} at once, {when})"),
                        None => format!("{function} ({what} at once)"),
                    },
                    None => function.clone(),
                },
                Outlined::Together(groups) => format!(
                    "together: {}",
                    groups
                        .iter()
                        .map(|g| Outlined::line(g))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            };
            // A call repeated right after itself (a poll, a retry loop) is one call.
            if parts.last() != Some(&text) {
                parts.push(text);
            }
        }
        if calls.iter().any(|c| matches!(c, Outlined::Together(_))) {
            // Brackets only where a group needs them to read.
            parts
                .into_iter()
                .map(|p| {
                    if p.starts_with("together: ") {
                        format!("[{p}]")
                    } else {
                        p
                    }
                })
                .collect::<Vec<_>>()
                .join(" → ")
        } else {
            parts.join(" → ")
        }
    }
}
