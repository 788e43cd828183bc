//! `check`'s lints: calls to functions that do not exist (or with the wrong number of
//! arguments), params without help, and rotation runbooks without a cadence.

use super::Loaded;
use crate::engine::ScriptError;
use rhai::{ASTNode, Expr, Position, Stmt, AST};
use std::collections::{HashMap, HashSet};

/// Keywords rhai implements inside the evaluator rather than as registered functions.
const BUILTINS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "this",
];

pub fn lint(loaded: &Loaded) -> Vec<ScriptError> {
    let mut problems = calls(loaded, &loaded.script, &loaded.file.name);
    let sources = loaded.sources();
    let file = &loaded.file.name;
    for p in &loaded.plan.params {
        if p.help.as_deref().unwrap_or("").trim().is_empty() {
            problems.push(
                ScriptError::at(
                    "runbook::check::param_without_help",
                    format!("param '{}' has no help text", p.name),
                    sources,
                    file,
                    p.position,
                )
                .with_help(
                    "add help: \"...\" so `show`, `doc` and the operator know what it is for",
                ),
            );
        }
    }
    let meta = loaded.plan.meta();
    if meta.secret.is_some() && meta.cadence_days.is_none() {
        problems.push(
            ScriptError::at(
                "runbook::check::missing_metadata",
                "a rotation runbook (with `secret`) needs `cadence_days`",
                sources,
                file,
                loaded.plan.meta_position,
            )
            .with_help("add cadence_days: 180 (or the cadence your policy sets) so due dates can be computed"),
        );
    }
    problems
}

/// Names of functions a call may resolve to without a namespace.
fn global_names(loaded: &Loaded, ast: &AST) -> HashSet<String> {
    let mut names: HashSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
    for sig in loaded.engine.gen_fn_signatures(true) {
        let head = sig.split('(').next().unwrap_or("");
        let head = head.trim_start_matches("fn ").trim();
        let name = head.rsplit("::").next().unwrap_or(head);
        names.insert(name.to_string());
    }
    for f in ast.iter_functions() {
        names.insert(f.name.to_string());
    }
    names
}

/// Function names and arities per module: host modules and `import ... as alias`.
fn module_functions(loaded: &Loaded, ast: &AST) -> HashMap<String, Vec<(String, usize)>> {
    let mut modules: HashMap<String, Vec<(String, usize)>> = HashMap::new();
    for f in loaded.host.registry.borrow().iter() {
        if !f.module.is_empty() {
            modules
                .entry(f.module.to_string())
                .or_default()
                .push((f.name.clone(), f.params.len()));
        }
    }
    let mut imports = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, _))) = path.last() {
            if let Expr::StringConstant(p, _) = &x.0 {
                imports.push((p.to_string(), x.1.name.to_string()));
            }
        }
        true
    });
    for (path, alias) in imports {
        let module_src = crate::engine::resolver::STDLIB
            .iter()
            .find(|(n, _)| *n == path)
            .map(|(_, t)| t.to_string())
            .or_else(|| {
                let mut f = loaded.file.dir().join(&path);
                if f.extension().is_none() {
                    f.set_extension("rhai");
                }
                std::fs::read_to_string(f).ok()
            });
        if let Some(src) = module_src {
            if let Ok(m) = loaded.engine.compile(&src) {
                let fns = m
                    .iter_functions()
                    .map(|f| (f.name.to_string(), f.params.len()))
                    .collect();
                modules.insert(alias, fns);
            }
        }
    }
    modules
}

fn calls(loaded: &Loaded, ast: &AST, file: &str) -> Vec<ScriptError> {
    let globals = global_names(loaded, ast);
    let modules = module_functions(loaded, ast);
    let sources = loaded.sources();
    let mut problems = Vec::new();
    // (namespace, name, arity, position of the name, position of the namespace)
    let mut found: Vec<(String, String, usize, Position, Position)> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        // A call is an expression, or a statement when its value is unused.
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => Some((call, pos)),
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, pos)),
            _ => None,
        };
        if let Some((call, pos)) = call {
            if call.op_token.is_none() {
                let ns = if call.namespace.is_empty() {
                    String::new()
                } else {
                    call.namespace.root().to_string()
                };
                let ns_pos = if ns.is_empty() {
                    *pos
                } else {
                    call.namespace.position()
                };
                found.push((ns, call.name.to_string(), call.args.len(), *pos, ns_pos));
            }
        }
        true
    });
    for (ns, name, arity, pos, ns_pos) in found {
        if ns.is_empty() {
            if name.starts_with("anon$") || globals.contains(&name) {
                continue;
            }
            problems.push(
                ScriptError::at(
                    "runbook::check::unknown_function",
                    format!("unknown function '{name}'"),
                    sources,
                    file,
                    pos,
                )
                .with_help("`runbook api` lists every host function; vendor functions need their module, e.g. postmark::server(token)"),
            );
            continue;
        }
        let Some(fns) = modules.get(&ns) else {
            let mut known: Vec<&String> = modules.keys().collect();
            known.sort();
            problems.push(
                ScriptError::at(
                    "runbook::check::unknown_module",
                    format!("unknown module '{ns}'"),
                    sources,
                    file,
                    ns_pos,
                )
                .with_help(format!(
                    "modules: {}",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            continue;
        };
        let arities: Vec<usize> = fns
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .collect();
        if arities.is_empty() {
            let mut names: Vec<&str> = fns.iter().map(|(n, _)| n.as_str()).collect();
            names.sort();
            names.dedup();
            problems.push(
                ScriptError::at(
                    "runbook::check::unknown_function",
                    format!("unknown function '{ns}::{name}'"),
                    sources,
                    file,
                    pos,
                )
                .with_help(format!("{ns} has: {}", names.join(", "))),
            );
        } else if !arities.contains(&arity) {
            let mut expected: Vec<String> = arities.iter().map(|a| a.to_string()).collect();
            expected.sort();
            expected.dedup();
            problems.push(
                ScriptError::at(
                    "runbook::check::wrong_arity",
                    format!(
                        "{ns}::{name} takes {} argument(s), not {arity}",
                        expected.join(" or ")
                    ),
                    sources,
                    file,
                    pos,
                )
                .with_help("`runbook api` shows its signature"),
            );
        }
    }
    problems
}
