//! `check`'s lints: calls to functions that do not exist (or with the wrong number of
//! arguments), params without help or never used, rotation runbooks without a cadence or an
//! audit entry, steps that write without a way back, irreversible steps nobody confirms,
//! and secrets put into URLs or printed as plain text.

use super::program::Program;
use super::secret_flow::{self, Finding};
use super::Runbook;
use crate::diagnostic::ScriptError;
use rhai::{ASTNode, Expr, Position, Stmt};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

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

pub fn lint(loaded: &Runbook) -> Vec<ScriptError> {
    let program = Program::new(loaded);
    let mut problems = calls(loaded, &program, &loaded.file().name);
    let sources = loaded.sources();
    let file = &loaded.file().name;
    for p in &loaded.plan().params {
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
    let meta = loaded.plan().meta();
    if meta.secret.is_some() && meta.cadence_days.is_none() {
        problems.push(
            ScriptError::at(
                "runbook::check::missing_metadata",
                "a rotation runbook (with `secret`) needs `cadence_days`",
                sources,
                file,
                loaded.plan().meta_position,
            )
            .with_help("add cadence_days: 180 (or the cadence your policy sets) so due dates can be computed"),
        );
    }
    problems.extend(steps_without_a_way_back(loaded, &program));
    problems.extend(irreversible_without_confirm(loaded));
    problems.extend(secret_flows(loaded, &program));
    problems.extend(unused_params(loaded, &program));
    problems.extend(missing_audit(loaded, &program));
    problems.extend(ctx_read_before_set(loaded, &program));
    problems
}

/// `ctx.KEY` (or `ctx["KEY"]`): KEY, when the expression reads or writes a ctx value.
fn ctx_key(e: &Expr) -> Option<String> {
    use super::secret_flow::{chain, Seg};
    match chain(e)? {
        (Expr::Variable(v, _, _), segs) if v.1 == "ctx" => match segs.first()? {
            Seg::Prop(p) => Some(p.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A step that reads `ctx.KEY` when no step up to it (itself included) sets KEY: the run
/// fails there ("unknown property"), typically a key misspelled or set by a later step.
/// `ctx.get(KEY, default)` and `"KEY" in ctx` are how a step reads what may be unset; they
/// are not flagged.
fn ctx_read_before_set(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    let mut set: HashSet<String> = HashSet::from(["params".to_string()]);
    let mut problems = Vec::new();
    let mut reported: HashSet<String> = HashSet::new();
    for step in &loaded.plan().steps {
        let Some(unit) = program.units.iter().position(|u| u.name == step.source) else {
            continue;
        };
        let arity = step.run.curry().len() + 1;
        let bodies = program.bodies_from(unit, step.run.fn_name(), arity);
        let mut written: HashSet<Position> = HashSet::new();
        let mut reads: Vec<(String, usize, Position)> = Vec::new();
        for (u, body) in &bodies {
            body.walk(&mut |path: &[ASTNode]| {
                match path.last() {
                    Some(ASTNode::Stmt(Stmt::Assignment(x))) => {
                        if let Some(k) = ctx_key(&x.1.lhs) {
                            set.insert(k);
                            written.insert(x.1.lhs.position());
                        }
                    }
                    Some(ASTNode::Expr(e @ (Expr::Dot(..) | Expr::Index(..)))) => {
                        if let Some(k) = ctx_key(e) {
                            reads.push((k, *u, e.position()));
                        }
                    }
                    _ => {}
                }
                true
            });
        }
        for (key, u, pos) in reads {
            let file = &program.units[u].name;
            if set.contains(&key) || written.contains(&pos) || file.starts_with("<std/") {
                continue;
            }
            if !reported.insert(format!("{file}:{key}")) {
                continue;
            }
            let known: Vec<&str> = set.iter().map(String::as_str).collect();
            let hint = match crate::suggest::closest(&key, known.iter().copied()) {
                Some(near) => format!("did you mean ctx.{near}? Set ctx.{key} in this step or an earlier one, or read it with ctx.get(\"{key}\", default)"),
                None => format!("set ctx.{key} in this step or an earlier one, or read it with ctx.get(\"{key}\", default) where it may be unset"),
            };
            problems.push(
                ScriptError::at(
                    "runbook::check::ctx_read_before_set",
                    format!(
                        "step '{}' reads ctx.{key}, which no step up to it sets",
                        step.id
                    ),
                    loaded.sources(),
                    file,
                    pos,
                )
                .with_help(hint),
            );
        }
    }
    problems
}

/// A step that writes must say how to go back: an undo, or why there is none.
fn steps_without_a_way_back(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    let host = crate::host::modules();
    let mut out = Vec::new();
    for step in &loaded.plan().steps {
        if step.undo.is_some() || step.irreversible.is_some() || step.no_undo.is_some() {
            continue;
        }
        // Steps the stdlib registers are its own, tested, business; a local module's are not.
        let Some(unit) = program.units.iter().position(|u| u.name == step.source) else {
            continue;
        };
        if program.units[unit].name.starts_with("<std/") {
            continue;
        }
        let arity = step.run.curry().len() + 1;
        let writes: Vec<_> = program
            .reachable_from(unit, step.run.fn_name(), arity)
            .into_iter()
            .filter(|c| {
                host.find(&c.function)
                    .is_some_and(|f| f.effect.mutates() && f.no_undo.is_none())
            })
            .collect();
        let Some(first) = writes.first() else {
            continue;
        };
        let mut names: Vec<&str> = writes.iter().map(|c| c.function.as_str()).collect();
        names.dedup();
        let at = match first.position.line() {
            Some(line) => format!(
                " ({} on line {line} of {})",
                first.function, program.units[first.unit].name
            ),
            None => String::new(),
        };
        out.push(
            ScriptError::at(
                "runbook::check::write_without_undo",
                format!(
                    "step '{}' writes ({}) but has no undo and is not marked irreversible",
                    step.id,
                    names.join(", ")
                ),
                loaded.sources(),
                &step.source,
                step.position,
            )
            .with_help(format!(
                "add .undo(|ctx| {{ ... }}) that reverts it{at}; or, if it cannot be undone, .irreversible(\"why\") with .confirm(\"question\"); or, if it leaves nothing to restore, .no_undo(\"why\")"
            )),
        );
    }
    out
}

/// The point of no return needs the operator's yes.
fn irreversible_without_confirm(loaded: &Runbook) -> Vec<ScriptError> {
    loaded
        .plan()
        .steps
        .iter()
        .filter(|s| s.irreversible.is_some() && s.confirm.is_none())
        .map(|s| {
            ScriptError::at(
                "runbook::check::irreversible_without_confirm",
                format!("step '{}' is irreversible but asks for no confirmation", s.id),
                loaded.sources(),
                &s.source,
                s.position,
            )
            .with_help("add .confirm(\"...?\") so the operator says yes before the point of no return (--yes answers it in automation)")
        })
        .collect()
}

fn secret_flows(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    let secret_params: HashSet<String> = loaded
        .plan()
        .params
        .iter()
        .filter(|p| p.secret)
        .map(|p| p.name.clone())
        .collect();
    let host = crate::host::modules();
    let file = &loaded.file().name;
    secret_flow::analyse(program, secret_params, host.secret_returning())
        .into_iter()
        .map(|f| match f {
            Finding::InUrl {
                function,
                what,
                position,
            } => ScriptError::at(
                "runbook::check::secret_in_url",
                format!("{function} is given {what}"),
                loaded.sources(),
                file,
                position,
            )
            .with_help("URLs end up in logs and proxies: send credentials in a header, e.g. #{ bearer: token }, or in the JSON body"),
            Finding::InPrint { what, position } => ScriptError::at(
                "runbook::check::secret_in_print",
                format!("print shows {what} as plain text"),
                loaded.sources(),
                file,
                position,
            )
            .with_help("declare the field in the call's options, e.g. secrets: [\"api_key\"]: it then comes back as a Secret, which prints masked"),
        })
        .collect()
}

/// A declared param nothing reads is a typo or a leftover, and an operator setting it would
/// believe it changed something.
fn unused_params(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    let mut used: HashSet<String> = HashSet::new();
    let mut declared_at: HashSet<Position> = HashSet::new();
    let mut strings: Vec<(String, Position)> = Vec::new();
    for unit in program
        .units
        .iter()
        .filter(|u| !u.name.starts_with("<std/"))
    {
        unit.ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(Expr::Property(p, _))) => {
                    used.insert(p.2.to_string());
                }
                Some(ASTNode::Expr(Expr::StringConstant(s, pos))) => {
                    strings.push((s.to_string(), *pos));
                }
                Some(ASTNode::Expr(Expr::FnCall(c, _)))
                | Some(ASTNode::Stmt(Stmt::FnCall(c, _)))
                    if c.name == "param" && c.namespace.is_empty() =>
                {
                    if let Some(Expr::StringConstant(_, pos)) = c.args.first() {
                        declared_at.insert(*pos);
                    }
                }
                _ => {}
            }
            true
        });
    }
    used.extend(
        strings
            .into_iter()
            .filter(|(_, pos)| !declared_at.contains(pos))
            .map(|(s, _)| s),
    );
    loaded
        .plan()
        .params
        .iter()
        .filter(|p| !used.contains(&p.name))
        .map(|p| {
            ScriptError::at(
                "runbook::check::unused_param",
                format!("param '{}' is never used", p.name),
                loaded.sources(),
                &loaded.file().name,
                p.position,
            )
            .with_help(format!(
                "read it in a step as ctx.params.{}, or remove the declaration",
                p.name
            ))
        })
        .collect()
}

/// A rotation leaves an audit entry saying it happened, who did it and to what.
fn missing_audit(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    if loaded.plan().meta().secret.is_none() {
        return Vec::new();
    }
    if program
        .reachable_from_runbook()
        .iter()
        .any(|c| c.function == "audit::log")
    {
        return Vec::new();
    }
    vec![ScriptError::at(
        "runbook::check::missing_audit",
        "a rotation runbook (with `secret`) never calls audit::log",
        loaded.sources(),
        &loaded.file().name,
        loaded.plan().meta_position,
    )
    .with_help("end with a step that records the rotation: audit::log(\"secret.rotate.completed\", #{ secret_name: ... }) (std/rotation's steps do)")]
}

thread_local! {
    /// The engine's own function names. Every engine is built the same way, and generating
    /// the signatures was half of `check`'s time (measured with callgrind), so once per
    /// process is enough.
    static ENGINE_NAMES: std::cell::OnceCell<Rc<HashSet<String>>> = const { std::cell::OnceCell::new() };
}

fn engine_names(loaded: &Runbook) -> Rc<HashSet<String>> {
    ENGINE_NAMES.with(|cell| {
        cell.get_or_init(|| {
            let mut names: HashSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
            for sig in loaded.engine().gen_fn_signatures(true) {
                let head = sig.split('(').next().unwrap_or("");
                let head = head.trim_start_matches("fn ").trim();
                let name = head.rsplit("::").next().unwrap_or(head);
                names.insert(name.to_string());
            }
            Rc::new(names)
        })
        .clone()
    })
}

/// Function names and arities of the modules a runbook imports (`import ... as alias`);
/// the host modules' come from the registry.
fn imported_functions(program: &Program) -> HashMap<String, Vec<(String, usize)>> {
    let mut modules = HashMap::new();
    for (alias, index) in &program.runbook().imports {
        let fns = program.units[*index]
            .ast
            .iter_functions()
            .filter(|f| f.access == rhai::FnAccess::Public)
            .map(|f| (f.name.to_string(), f.params.len()))
            .collect();
        modules.insert(alias.clone(), fns);
    }
    modules
}

fn calls(loaded: &Runbook, program: &Program, file: &str) -> Vec<ScriptError> {
    let ast = &program.runbook().ast;
    let engine = engine_names(loaded);
    let own: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    let host = crate::host::modules();
    let imported = imported_functions(program);
    let module_fns = |ns: &str| imported.get(ns).or_else(|| host.functions().get(ns));
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
            if name.starts_with("anon$") || engine.contains(&name) || own.contains(name.as_str()) {
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
        let Some(fns) = module_fns(&ns) else {
            let mut known: Vec<&String> = imported.keys().chain(host.functions().keys()).collect();
            known.sort();
            known.dedup();
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
                .with_help(
                    match crate::suggest::closest(&name, names.iter().copied()) {
                        Some(near) => {
                            format!("did you mean {ns}::{near}? {ns} has: {}", names.join(", "))
                        }
                        None => format!("{ns} has: {}", names.join(", ")),
                    },
                ),
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
