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
    let program = loaded.program();
    let mut problems = calls(loaded, program, &loaded.file().name);
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
    if let Some(days) = meta
        .cadence_days
        .filter(|d| !(1..=MAX_CADENCE_DAYS).contains(d))
    {
        problems.push(
            ScriptError::at(
                "runbook::check::missing_metadata",
                format!("cadence_days is {days}: a cadence is 1 to {MAX_CADENCE_DAYS} days"),
                sources,
                file,
                loaded.plan().meta_position,
            )
            .with_help("set the cadence your policy sets, e.g. cadence_days: 90"),
        );
    }
    problems.extend(steps_without_a_way_back(loaded, program));
    problems.extend(irreversible_without_confirm(loaded));
    problems.extend(secret_flows(loaded, program));
    problems.extend(unused_params(loaded, program));
    problems.extend(url_params_outside_egress(loaded, program));
    problems.extend(missing_audit(loaded, program));
    problems.extend(ctx_read_before_set(loaded, program));
    problems.extend(same_name_functions(loaded, program));
    silence(loaded, problems)
}

/// The longest rotation cadence `check` accepts: ten years.
const MAX_CADENCE_DAYS: i64 = 3_650;

/// `// check:allow(CODE, ...): reason` on a problem's line, or alone on the line above it,
/// silences it there: the author has looked and says why it is fine. An allow without a
/// reason, or one that silences nothing (a stale one), is itself a problem.
fn silence(loaded: &Runbook, problems: Vec<ScriptError>) -> Vec<ScriptError> {
    struct Allow {
        file: String,
        line: usize,
        column: usize,
        codes: Vec<String>,
        reason: String,
        alone: bool,
        used: bool,
    }
    let mut files: Vec<String> = vec![loaded.file().name.clone()];
    for p in &problems {
        if let Some(l) = &p.location {
            if !files.contains(&l.file) {
                files.push(l.file.clone());
            }
        }
    }
    let mut allows: Vec<Allow> = Vec::new();
    for file in &files {
        let Some(text) = loaded.sources().get(file) else {
            continue;
        };
        for (i, row) in text.lines().enumerate() {
            let Some(at) = row.find("// check:allow(") else {
                continue;
            };
            let rest = &row[at + "// check:allow(".len()..];
            let Some(close) = rest.find(')') else {
                continue;
            };
            let codes = rest[..close]
                .split(',')
                .map(|c| c.trim().rsplit("::").next().unwrap_or("").to_string())
                .filter(|c| !c.is_empty())
                .collect();
            let reason = rest[close + 1..].trim_start_matches(':').trim().to_string();
            allows.push(Allow {
                file: file.clone(),
                line: i + 1,
                column: row[..at].chars().count() + 1,
                codes,
                reason,
                alone: row[..at].trim().is_empty() || row[..at].trim() == "/",
                used: false,
            });
        }
    }
    let mut kept = Vec::new();
    for p in problems {
        let short = p.code.rsplit("::").next().unwrap_or("").to_string();
        let allow = p.location.as_ref().and_then(|l| {
            allows.iter_mut().find(|a| {
                a.file == l.file
                    && a.codes.contains(&short)
                    && (a.line == l.line || (a.alone && a.line + 1 == l.line))
            })
        });
        match allow {
            Some(a) if !a.reason.is_empty() => a.used = true,
            Some(a) => {
                a.used = true;
                kept.push(p);
            }
            None => kept.push(p),
        }
    }
    for a in allows {
        let position = position(a.line, a.column).unwrap_or(Position::NONE);
        if a.reason.is_empty() {
            kept.push(
                ScriptError::at(
                    "runbook::check::allow_without_reason",
                    format!("check:allow({}) gives no reason", a.codes.join(", ")),
                    loaded.sources(),
                    &a.file,
                    position,
                )
                .with_help("say why it is fine after the parentheses: // check:allow(CODE): why"),
            );
        } else if !a.used {
            kept.push(
                ScriptError::at(
                    "runbook::check::unused_allow",
                    format!("check:allow({}) silences nothing here", a.codes.join(", ")),
                    loaded.sources(),
                    &a.file,
                    position,
                )
                .with_help(
                    "remove it, or put it on the problem's line (or alone on the line above)",
                ),
            );
        }
    }
    kept
}

/// Functions that rhai could confuse (see `same_name_functions`): a run refuses a runbook
/// with any, since the wrong code would run without an error.
pub fn ambiguous_functions(loaded: &Runbook) -> Vec<ScriptError> {
    let found = same_name_functions(loaded, loaded.program());
    // An author's `check:allow` for it holds here too; other allow problems are check's.
    silence(loaded, found)
        .into_iter()
        .filter(|p| p.code.ends_with("same_name_functions"))
        .collect()
}

/// Where `fn NAME(` is written in `file` (rhai keeps no position of a function definition).
fn definition(loaded: &Runbook, file: &str, name: &str) -> Position {
    let text = loaded.sources().get(file);
    let wanted = format!("fn {name}(");
    text.as_deref()
        .and_then(|t| {
            t.lines().enumerate().find_map(|(l, row)| {
                let c = row.find(&wanted)?;
                position(l + 1, row[..c].chars().count() + 4)
            })
        })
        .unwrap_or(Position::NONE)
}

/// Two scripts of one runbook (the runbook, the modules it imports, theirs) that define a
/// function with the same name and arity. rhai 1.27 caches which function a name resolves
/// to without telling modules apart, so a module's call to its own `helper(x)` can run
/// another module's `helper(x)` once that one has run (reproduced: `a::run_a()` returned
/// b's answer after `b::run_b()`). Nothing fails; the wrong code runs.
fn same_name_functions(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    // Only a call without a namespace can go astray (`consumers::steps` cannot), and only
    // between two scripts that each call their own copy so: the cache then holds one
    // script's answer for the other's call.
    let calls: Vec<HashSet<(String, usize)>> = program
        .units
        .iter()
        .map(|unit| {
            let mut own = HashSet::new();
            unit.ast.walk(&mut |path: &[ASTNode]| {
                let call = match path.last() {
                    Some(ASTNode::Expr(Expr::FnCall(call, _))) => Some(call),
                    Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => Some(call),
                    _ => None,
                };
                if let Some(call) = call.filter(|c| c.namespace.is_empty()) {
                    own.insert((call.name.to_string(), call.args.len()));
                }
                true
            });
            own
        })
        .collect();
    let mut defined: HashMap<(String, usize), Vec<usize>> = HashMap::new();
    for (i, unit) in program.units.iter().enumerate() {
        for f in unit.ast.iter_fn_def() {
            if !f.name.starts_with("anon$") {
                let at = defined
                    .entry((f.name.to_string(), f.params.len()))
                    .or_default();
                if !at.contains(&i) {
                    at.push(i);
                }
            }
        }
    }
    let mut clashes: Vec<((String, usize), Vec<usize>)> = defined
        .into_iter()
        .map(|(key, units)| {
            let calling: Vec<usize> = units
                .into_iter()
                .filter(|u| calls[*u].contains(&key))
                .collect();
            (key, calling)
        })
        .filter(|(_, calling)| calling.len() > 1)
        .collect();
    clashes.sort();
    clashes
        .into_iter()
        .map(|((name, arity), units)| {
            // Shown in the author's own script where one of them is (not in the stdlib).
            let here = units
                .iter()
                .copied()
                .find(|u| !program.units[*u].name.starts_with("<std/"))
                .unwrap_or(units[0]);
            let others: Vec<&str> = units
                .iter()
                .filter(|u| **u != here)
                .map(|u| program.units[*u].name.as_str())
                .collect();
            let unit = &program.units[here].name;
            ScriptError::at(
                "runbook::check::same_name_functions",
                format!(
                    "{unit} and {} both define {name}({arity} argument(s)) and call it without a namespace",
                    others.join(", ")
                ),
                loaded.sources(),
                unit,
                definition(loaded, unit, &name),
            )
            .with_help("rename one: rhai may run either one where the other is called, silently")
        })
        .collect()
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
    // The runbook's closures a stdlib step runs (`rotation::steps(#{ precheck: |ctx| ... })`)
    // are called through `call`, which the analysis does not follow: what they set counts
    // from the first stdlib step on.
    let mut handed_to_std = Some(keys_set_by_handed_closures(loaded, program));
    for step in &loaded.plan().steps {
        let Some(unit) = program.units.iter().position(|u| u.name == step.source) else {
            continue;
        };
        if program.units[unit].name.starts_with("<std/") {
            if let Some(keys) = handed_to_std.take() {
                set.extend(keys);
            }
        }
        // The verify runs on a resume, on the ctx of the steps before (what the step's own
        // body set died with it); the undo on the ctx the step left. Their typos were found
        // only on the way back, mid-rollback (author review).
        let mut verify_set = set.clone();
        let unset = ctx_reads_unset(program, unit, &step.run, &mut set);
        let mut found = vec![("reads", unset, set.clone())];
        if let Some(verify) = &step.verify {
            let unset = ctx_reads_unset(program, unit, verify, &mut verify_set);
            found.push(("verify reads", unset, verify_set));
        }
        if let Some(undo) = &step.undo {
            let mut undo_set = set.clone();
            let unset = ctx_reads_unset(program, unit, undo, &mut undo_set);
            found.push(("undo reads", unset, undo_set));
        }
        for (what, unset, known) in found {
            for (key, u, pos) in unset {
                let file = &program.units[u].name;
                if !reported.insert(format!("{file}:{key}:{what}")) {
                    continue;
                }
                let hint = match crate::suggest::closest(&key, known.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean ctx.{near}? Set ctx.{key} in this step or an earlier one, or read it with ctx.get(\"{key}\", default)"),
                    None => format!("set ctx.{key} in this step or an earlier one, or read it with ctx.get(\"{key}\", default) where it may be unset"),
                };
                let hint = if what == "verify reads" {
                    format!("{hint}; a verify runs after a crash inside the step, so what the step's own body set is not there")
                } else {
                    hint
                };
                problems.push(
                    ScriptError::at(
                        "runbook::check::ctx_read_before_set",
                        format!(
                            "step '{}' {what} ctx.{key}, which no step up to it sets",
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
    }
    problems
}

/// The `ctx.KEY` reads of closure `f` (and what it calls) whose KEY neither `set` holds nor
/// the closure sets; what it sets joins `set`. Reads in the stdlib are its own business.
fn ctx_reads_unset(
    program: &Program,
    unit: usize,
    f: &rhai::FnPtr,
    set: &mut HashSet<String>,
) -> Vec<(String, usize, Position)> {
    let arity = f.curry().len() + 1;
    let bodies = program.bodies_from(unit, f.fn_name(), arity);
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
    reads
        .into_iter()
        .filter(|(key, u, pos)| {
            !(set.contains(key)
                || written.contains(pos)
                || program.units[*u].name.starts_with("<std/"))
        })
        .collect()
}

/// The ctx keys set in the runbook's own closures that are not its steps' bodies, undos or
/// verifies: those it hands to the stdlib, which runs them in its steps.
fn keys_set_by_handed_closures(loaded: &Runbook, program: &Program) -> HashSet<String> {
    let runbook = program.runbook();
    let own: HashSet<String> = loaded
        .plan()
        .steps
        .iter()
        .filter(|s| s.source == runbook.name)
        .flat_map(|s| [Some(&s.run), s.undo.as_ref(), s.verify.as_ref()])
        .flatten()
        .map(|f| f.fn_name().to_string())
        .collect();
    let mut keys = HashSet::new();
    for f in runbook.ast.iter_functions() {
        if !f.name.starts_with("anon$") || own.contains(f.name) {
            continue;
        }
        let Some(body) = super::program::function_body(&runbook.ast, f.name, f.params.len()) else {
            continue;
        };
        body.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Assignment(x))) = path.last() {
                if let Some(k) = ctx_key(&x.1.lhs) {
                    keys.insert(k);
                }
            }
            true
        });
    }
    keys
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
                c.mutates(&host) && host.find(&c.function).is_some_and(|f| f.no_undo.is_none())
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
            .with_help("URLs end up in logs and proxies: send credentials in a header, e.g. #{ bearer: token }, or in the JSON body; for a vendor that takes the credential in the query only, pass it as a Secret in query and say so: `// check:allow(secret_in_url): the vendor takes it only there`"),
            Finding::InPrint { what, position } => ScriptError::at(
                "runbook::check::secret_in_print",
                format!("print shows {what} as plain text"),
                loaded.sources(),
                file,
                position,
            )
            .with_help("declare the field in the call's options, e.g. secrets: [\"api_key\"]: it then comes back as a Secret, which prints masked"),
            // A crash, then the way back: the undo got `#{secret: "hmac:..."}` where the
            // value was, failed mid-rollback, and left the app on a value nobody has.
            Finding::InsideCtx { key, position } => ScriptError::at(
                "runbook::check::secret_inside_ctx",
                format!("ctx.{key} keeps a Secret inside a map or list: the journal keeps it only as its fingerprint, so after a crash neither a resume nor an undo has its value"),
                loaded.sources(),
                file,
                position,
            )
            .with_help(format!("keep each Secret the way back needs at the top of ctx (ctx.{key}_old = value): a resume asks the operator for it or recovers it; ids and versions can stay in the map. If the undo checks a fingerprint against a value it has (as std/consumers does), say so: `// check:allow(secret_inside_ctx): REASON`")),
        })
        .collect()
}

/// A param whose default is a URL the runbook's egress does not allow, in a runbook that
/// calls `http::`: a rehearsal points it at a simulator on loopback (always allowed) and
/// passes; production refuses the call mid-run, after the earlier steps wrote (author
/// review). So is an `http::` call written with a literal URL outside the egress, and one
/// to a computed URL in a runbook that declares no egress at all.
fn url_params_outside_egress(loaded: &Runbook, program: &Program) -> Vec<ScriptError> {
    let mut calls_http = false;
    // The runbook's own `http::` calls: where, and the URL as far as it is literal.
    let mut own_calls: Vec<(String, Option<String>, Position)> = Vec::new();
    for unit in &program.units {
        let own = !unit.name.starts_with("<std/");
        unit.ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Expr(Expr::FnCall(c, pos)) | ASTNode::Stmt(Stmt::FnCall(c, pos))) =
                path.last()
            {
                let http = !c.namespace.is_empty() && c.namespace.root() == "http";
                calls_http |= http;
                if http && own {
                    let url = c.args.first().and_then(literal_url);
                    own_calls.push((unit.name.to_string(), url, *pos));
                }
            }
            true
        });
    }
    if !calls_http {
        return Vec::new();
    }
    let plan = loaded.plan();
    let defaults: serde_json::Map<String, serde_json::Value> = plan
        .params
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.default.clone()?)))
        .collect();
    let egress = crate::plan::egress::Egress::resolve(
        &plan.meta.egress,
        &serde_json::Value::Object(defaults),
    );
    let mut problems = Vec::new();
    for p in &plan.params {
        let urls = p
            .default
            .as_ref()
            .map(crate::plan::egress::urls_in)
            .unwrap_or_default();
        let outside = urls
            .iter()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .find(|u| !egress.allows(u));
        let Some(url) = outside else {
            continue;
        };
        let host = crate::plan::egress::authority(&url).unwrap_or_default();
        problems.push(
            ScriptError::at(
                "runbook::check::egress_missing",
                format!(
                    "param '{}' defaults to a URL on {host}, which this runbook's egress does not allow: a rehearsal reaches its simulator on loopback, production refuses the call",
                    p.name
                ),
                loaded.sources(),
                &loaded.file().name,
                p.position,
            )
            .with_help(format!(
                "declare it in runbook(#{{ ..., egress: [\"param:{}\"] }}) (the host the operator gives), or egress: [\"{host}\"]",
                p.name
            )),
        );
    }
    let params_flagged = !problems.is_empty();
    for (file, url, position) in own_calls {
        let problem = match url.as_deref().map(reqwest::Url::parse) {
            Some(Ok(url)) if !egress.allows(&url) => {
                let host = crate::plan::egress::authority(&url).unwrap_or_default();
                ScriptError::at(
                    "runbook::check::egress_missing",
                    format!("this http:: call goes to {host}, which this runbook's egress does not allow: a rehearsal passes (loopback is always allowed), production refuses the call"),
                    loaded.sources(),
                    &file,
                    position,
                )
                .with_help(format!(
                    "declare it in runbook(#{{ ..., egress: [\"{host}\"] }})"
                ))
            }
            None if plan.meta.egress.is_empty() && !params_flagged => ScriptError::at(
                "runbook::check::egress_missing",
                "this http:: call's URL is computed and the runbook declares no egress: production refuses every http:: call to a host it does not declare (a rehearsal, on loopback, passes)",
                loaded.sources(),
                &file,
                position,
            )
            .with_help(
                "declare the host in runbook(#{ ..., egress: [\"api.vendor.example\"] }), or the param that holds its URL: egress: [\"param:NAME\"]",
            ),
            _ => continue,
        };
        problems.push(problem);
    }
    problems
}

/// The scheme and host of a call's URL argument, when the script writes them literally
/// (`"https://host/x"`, or a template whose first part reaches past the host).
fn literal_url(e: &Expr) -> Option<String> {
    // A whole literal ends its host at its end; a template's literal start only at a `/`.
    let text = super::program::literal(e)?;
    let (start, whole) = match text.split_once('…') {
        Some((start, _)) => (start.to_string(), false),
        None => (text, true),
    };
    let (scheme, rest) = start.split_once("://")?;
    let host_end = match rest.find(['/', '?', '#']) {
        Some(i) => i,
        None if whole => rest.len(),
        None => return None,
    };
    (matches!(scheme, "http" | "https") && host_end > 0)
        .then(|| format!("{scheme}://{}/", &rest[..host_end]))
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
            let host = crate::host::modules();
            let mut names: HashSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
            for sig in loaded.engine().gen_fn_signatures(true) {
                let head = sig.split('(').next().unwrap_or("");
                let head = head.trim_start_matches("fn ").trim();
                let name = head.rsplit("::").next().unwrap_or(head);
                // A module's function is called by its module's name (`heroku::config`):
                // bare, it is not found at run time, unless the host makes it global.
                if !head.contains("::") || host.is_global(name) {
                    names.insert(name.to_string());
                }
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
    // (namespace, name, arity, position of the name, position of the namespace, arguments)
    #[allow(clippy::type_complexity)]
    let mut found: Vec<(String, String, usize, Position, Position, Vec<Literal>)> = Vec::new();
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
                let args = call.args.iter().map(Literal::of).collect();
                found.push((
                    ns,
                    call.name.to_string(),
                    call.args.len(),
                    *pos,
                    ns_pos,
                    args,
                ));
            }
        }
        true
    });
    for (ns, name, arity, pos, ns_pos, args) in found {
        if ns.is_empty() {
            if name.starts_with("anon$") || engine.contains(&name) || own.contains(name.as_str()) {
                continue;
            }
            // A module's function called without its module: name the module.
            let mut modules: Vec<&str> = host
                .functions()
                .iter()
                .filter(|(_, fns)| fns.iter().any(|(n, _)| *n == name))
                .map(|(m, _)| m.as_str())
                .collect();
            modules.sort();
            let help = match modules.as_slice() {
                [] => "`runbook api` lists every host function; vendor functions need their module, e.g. postmark::server(token)".to_string(),
                found => format!(
                    "did you mean {}? a module's functions are called with its name",
                    found
                        .iter()
                        .map(|m| format!("{m}::{name}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            };
            problems.push(
                ScriptError::at(
                    "runbook::check::unknown_function",
                    format!("unknown function '{name}'"),
                    sources,
                    file,
                    pos,
                )
                .with_help(help),
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
        } else if host.is_module(&ns) && !imported.contains_key(&ns) {
            problems.extend(host_arguments(loaded, file, &ns, &name, &args));
        } else if let Some(unit) = program.runbook().imports.get(&ns) {
            problems.extend(std_options(loaded, program, *unit, file, &ns, &name, &args));
        }
    }
    problems
}

/// What `check` can tell of an argument without running anything: its kind when it is a
/// literal, and a literal map's keys with where each is written.
struct Literal {
    kind: Option<&'static str>,
    keys: Vec<(String, Position)>,
    pos: Position,
}

impl Literal {
    fn of(e: &Expr) -> Literal {
        let pos = e.position();
        let mut keys = Vec::new();
        let kind = match e {
            Expr::StringConstant(..) | Expr::InterpolatedString(..) => Some("string"),
            Expr::IntegerConstant(..) => Some("int"),
            Expr::FloatConstant(..) => Some("float"),
            Expr::BoolConstant(..) => Some("bool"),
            Expr::Array(..) => Some("Array"),
            Expr::Unit(..) => Some("()"),
            Expr::Map(m, _) => {
                keys =
                    m.0.iter()
                        .map(|(k, _)| (k.name.to_string(), k.pos))
                        .collect();
                Some("Map")
            }
            Expr::DynamicConstant(d, _) => {
                if let Some(m) = d.read_lock::<rhai::Map>() {
                    // A map of constants is folded into one value: its keys' positions are
                    // found in the text (see `key_positions`).
                    keys = m.keys().map(|k| (k.to_string(), pos)).collect();
                    Some("Map")
                } else if d.is_array() {
                    Some("Array")
                } else if d.is_string() {
                    Some("string")
                } else {
                    None
                }
            }
            _ => None,
        };
        Literal { kind, keys, pos }
    }
}

/// Whether a declared parameter type (`string | Array`, `?`) takes a literal of `kind`.
fn accepts(declared: &str, kind: &str) -> bool {
    let ty = declared.split_once(':').map_or(declared, |(_, t)| t).trim();
    ty.split('|').map(str::trim).any(|t| {
        t == "?"
            || t == kind
            || (t == "float" && kind == "int")
            || t.starts_with("Fn") && kind == "Fn"
    })
}

fn a_kind(kind: &str) -> &'static str {
    match kind {
        "string" => "a string",
        "int" => "an integer",
        "float" => "a number",
        "bool" => "true or false",
        "Array" => "an array",
        "Map" => "a map",
        _ => "()",
    }
}

/// A host call's literal arguments against the function's declared types, and its options
/// map's keys against the ones it takes.
fn host_arguments(
    loaded: &Runbook,
    file: &str,
    ns: &str,
    name: &str,
    args: &[Literal],
) -> Vec<ScriptError> {
    let host = crate::host::modules();
    let overloads: Vec<&crate::host::HostFn> = host
        .registry()
        .iter()
        .filter(|f| f.module == ns && f.name == name && f.receiver.is_none())
        .filter(|f| f.params.len() == args.len())
        .collect();
    let sources = loaded.sources();
    let mut problems = Vec::new();
    if overloads.is_empty() {
        return problems;
    }
    for (i, arg) in args.iter().enumerate() {
        let Some(kind) = arg.kind else { continue };
        if overloads.iter().any(|f| accepts(&f.params[i], kind)) {
            continue;
        }
        let mut wanted: Vec<&str> = overloads.iter().map(|f| f.params[i].as_str()).collect();
        wanted.dedup();
        problems.push(
            ScriptError::at(
                "runbook::check::wrong_type",
                format!(
                    "{ns}::{name}: argument {} is {}, but it takes {}",
                    i + 1,
                    a_kind(kind),
                    wanted.join(" or ")
                ),
                sources,
                file,
                arg.pos,
            )
            .with_help(match overloads[0].params[i].as_str() {
                p if p.ends_with("Secret") => "a credential is a Secret: read it (infisical::secret(...).value), ask for it (prompt::secret) or make one (secret::from_text)".to_string(),
                _ => format!("`runbook api` shows {ns}::{name}'s signature"),
            }),
        );
    }
    let qualified = format!("{ns}::{name}");
    for (i, arg) in args.iter().enumerate() {
        if arg.kind != Some("Map") {
            continue;
        }
        let is_options = overloads.iter().any(|f| {
            let p = f.params[i].as_str();
            p == "options: Map" || p == "settings: Map"
        });
        if !is_options {
            continue;
        }
        let allowed = if qualified == "infisical::set_secret" {
            let text = args.get(1).is_some_and(|a| a.kind == Some("string"));
            Some(crate::host::set_secret_keys(
                text || args.get(1).is_some_and(|a| a.kind.is_none()),
            ))
        } else {
            crate::host::option_keys(&qualified)
        };
        let Some(allowed) = allowed else { continue };
        let keys = key_positions(loaded, file, &arg.keys);
        problems.extend(unknown_keys(sources, file, &qualified, &keys, allowed));
    }
    problems
}

/// `runbook::check::unknown_option` for each key of a literal options map not in `allowed`.
fn unknown_keys(
    sources: &crate::diagnostic::Sources,
    file: &str,
    function: &str,
    keys: &[(String, Position)],
    allowed: &[&str],
) -> Vec<ScriptError> {
    keys.iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .map(|(k, pos)| {
            ScriptError::at(
                "runbook::check::unknown_option",
                format!("{function}: unknown option '{k}'"),
                sources,
                file,
                *pos,
            )
            .with_help(crate::value::known_options(k, allowed))
        })
        .collect()
}

/// A stdlib function's options map against the keys its module's `NAME_options(function)`
/// lists (the same list the function checks when it runs).
fn std_options(
    loaded: &Runbook,
    program: &Program,
    unit: usize,
    file: &str,
    ns: &str,
    name: &str,
    args: &[Literal],
) -> Vec<ScriptError> {
    let Some(arg) = args.iter().find(|a| a.kind == Some("Map")) else {
        return Vec::new();
    };
    let module = &program.units[unit];
    let cache_key = (module.name.clone(), name.to_string());
    let keys = STD_OPTIONS.with(|cache| {
        if let Some(keys) = cache.borrow().get(&cache_key) {
            return keys.clone();
        }
        let keys = options_of(loaded, &module.name, &module.ast, name);
        cache.borrow_mut().insert(cache_key, keys.clone());
        keys
    });
    let Some(keys) = keys else {
        return Vec::new();
    };
    let allowed: Vec<&str> = keys.iter().map(String::as_str).collect();
    let keys = key_positions(loaded, file, &arg.keys);
    unknown_keys(
        loaded.sources(),
        file,
        &format!("{ns}::{name}"),
        &keys,
        &allowed,
    )
}

thread_local! {
    /// A stdlib function's option keys, by (module, function): `check` over a tree asks the
    /// same few once each.
    #[allow(clippy::type_complexity)]
    static STD_OPTIONS: std::cell::RefCell<HashMap<(String, String), Option<Rc<Vec<String>>>>> =
        std::cell::RefCell::new(HashMap::new());
}

/// What the module's `NAME_options(function)` returns, when it has one and it lists keys.
fn options_of(
    loaded: &Runbook,
    unit_name: &str,
    ast: &rhai::AST,
    function: &str,
) -> Option<Rc<Vec<String>>> {
    // Only the stdlib's, named after its module (`<std/rotation>` has `rotation_options`):
    // unique names, as rhai may resolve one module's call to another's function.
    let stem = unit_name.strip_prefix("<std/")?.strip_suffix('>')?;
    let lister = format!("{stem}_options");
    if !ast
        .iter_functions()
        .any(|f| f.name == lister && f.params.len() == 1)
    {
        return None;
    }
    let engine = loaded.engine();
    let call = engine.compile(format!("{lister}({function:?})")).ok()?;
    let merged = ast.clone_functions_only().merge(&call);
    let keys = engine.eval_ast::<rhai::Array>(&merged).ok()?;
    Some(Rc::new(keys.iter().map(|k| k.to_string()).collect()))
}

/// Where each key of a map literal is written: a key still at the map's own position (its
/// map was folded into a constant) is looked up in the text after it (`key:`), so the
/// diagnostic points at the key rather than at the `#{`.
fn key_positions(
    loaded: &Runbook,
    file: &str,
    keys: &[(String, Position)],
) -> Vec<(String, Position)> {
    let text = loaded.sources().get(file);
    keys.iter()
        .map(|(k, pos)| {
            let found = text.as_deref().and_then(|t| find_key(t, *pos, k));
            (k.clone(), found.unwrap_or(*pos))
        })
        .collect()
}

fn find_key(text: &str, from: Position, key: &str) -> Option<Position> {
    if key.is_empty() {
        return None;
    }
    let (line, col) = (from.line()?, from.position()?);
    for (l, row) in text.lines().enumerate().skip(line - 1) {
        // rhai counts columns in characters.
        let start = if l + 1 == line {
            row.char_indices()
                .nth(col.saturating_sub(1))
                .map_or(row.len(), |(b, _)| b)
        } else {
            0
        };
        let rest = &row[start..];
        let mut at = 0;
        while let Some(i) = rest[at..].find(key) {
            let i = at + i;
            let before = rest[..i].chars().next_back();
            let after = rest[i + key.len()..].trim_start();
            let word_start = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"');
            if word_start && after.starts_with(':') && !after.starts_with("::") {
                return position(l + 1, row[..start + i].chars().count() + 1);
            }
            at = i + key.len();
        }
    }
    None
}

/// A 1-based line and column as rhai's `Position`, if they fit.
fn position(line: usize, column: usize) -> Option<Position> {
    Some(Position::new(
        u16::try_from(line).ok()?,
        u16::try_from(column).ok()?,
    ))
}
