//! Where secret values flow in a runbook, statically: enough to catch a secret put into a URL
//! and a credential printed as plain text. Flow-insensitive and name-based where the origin
//! is unknown; it errs towards silence rather than noise.
//!
//! A `Secret` printed is masked, so printing one is fine. What leaks is credential material
//! that never became a `Secret`: a field of an `http::` response (a key an API just created)
//! read without declaring it in `secrets: [...]`.

use super::program::{bodies, Program};
use rhai::{ASTNode, Expr, Position, Stmt, AST};
use std::collections::{HashMap, HashSet};

/// What static analysis knows about a value.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Unknown,
    /// A `Secret`: masked when printed, refused in strings bound for a vendor.
    Secret,
    /// Credential material as a plain string; says where it came from.
    Plain(String),
    /// `infisical::secret(...)`: its `value` is a Secret.
    Record,
    /// `heroku::config(app)`: its values may be Secrets (a setting comes back as text).
    SecretMap,
    /// An `http::` response, with the field paths declared in `secrets`.
    Response(Vec<String>),
    /// Part of a response's `json` at a dotted path.
    Json(Vec<String>, String),
    Ctx,
    Params,
}

/// A place where a secret reaches somewhere it should not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finding {
    /// A Secret or credential in an `http::` URL or query.
    InUrl {
        function: String,
        what: String,
        position: Position,
    },
    /// A credential that is not a Secret, printed.
    InPrint { what: String, position: Position },
    /// A Secret kept inside a map or list in ctx (`ctx.pw = #{ old: c.value }`): the journal
    /// keeps only its fingerprint, so after a crash neither a resume nor an undo has it.
    InsideCtx { key: String, position: Position },
}

pub(crate) use crate::text::credential_like;

pub(super) enum Seg {
    Prop(String),
    Method(String),
    Other,
}

/// `root.a["b"].c()` as the root expression and its segments.
pub(super) fn chain(e: &Expr) -> Option<(&Expr, Vec<Seg>)> {
    fn after_dot(e: &Expr, out: &mut Vec<Seg>) {
        match e {
            Expr::Property(p, _) => out.push(Seg::Prop(p.2.to_string())),
            Expr::MethodCall(c, _) => out.push(Seg::Method(c.name.to_string())),
            Expr::Dot(x, _, _) => {
                after_dot(&x.lhs, out);
                after_dot(&x.rhs, out);
            }
            Expr::Index(x, _, _) => {
                after_dot(&x.lhs, out);
                index(&x.rhs, out);
            }
            _ => out.push(Seg::Other),
        }
    }
    fn index(e: &Expr, out: &mut Vec<Seg>) {
        let key = |k: &Expr| match k {
            Expr::StringConstant(s, _) => Seg::Prop(s.to_string()),
            _ => Seg::Other,
        };
        match e {
            Expr::Dot(x, _, _) => {
                out.push(key(&x.lhs));
                after_dot(&x.rhs, out);
            }
            Expr::Index(x, _, _) => {
                out.push(key(&x.lhs));
                index(&x.rhs, out);
            }
            other => out.push(key(other)),
        }
    }
    let mut segs = Vec::new();
    match e {
        Expr::Dot(x, _, _) => {
            after_dot(&x.rhs, &mut segs);
            Some((&x.lhs, segs))
        }
        Expr::Index(x, _, _) => {
            index(&x.rhs, &mut segs);
            Some((&x.lhs, segs))
        }
        _ => None,
    }
}

/// What a runbook's own function does with its parameters (by position).
#[derive(Debug, Default)]
struct FnSummary {
    /// Parameters built into text (an interpolated string, `+`): the text is as secret as
    /// they are, and is what the function is taken to return.
    into_text: HashSet<usize>,
    /// Parameters that reach an `http::` URL or query inside the function.
    into_url: HashSet<usize>,
}

/// Variable names anywhere in `e`.
fn variables_in(e: &Expr) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut path = Vec::new();
    e.walk(&mut path, &mut |p: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Variable(v, _, _))) = p.last() {
            out.insert(v.1.to_string());
        }
        true
    });
    out
}

/// The summaries of the functions a script defines, by name and arity.
fn summarise(ast: &AST) -> HashMap<(String, usize), FnSummary> {
    let mut out = HashMap::new();
    for f in ast.iter_functions() {
        let params: Vec<String> = f.params.iter().map(|p| p.to_string()).collect();
        let Some(body) = super::program::function_body(ast, f.name, params.len()) else {
            continue;
        };
        let index = |names: HashSet<String>| -> HashSet<usize> {
            params
                .iter()
                .enumerate()
                .filter(|(_, p)| names.contains(p.as_str()))
                .map(|(i, _)| i)
                .collect()
        };
        let mut summary = FnSummary::default();
        body.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(e @ Expr::InterpolatedString(..))) => {
                    summary.into_text.extend(index(variables_in(e)));
                }
                Some(ASTNode::Expr(e @ Expr::FnCall(c, _)))
                    if c.op_token.is_some() && c.name == "+" =>
                {
                    summary.into_text.extend(index(variables_in(e)));
                }
                Some(ASTNode::Expr(Expr::FnCall(c, _)))
                | Some(ASTNode::Stmt(Stmt::FnCall(c, _)))
                    if !c.namespace.is_empty() && c.namespace.root() == "http" =>
                {
                    if let Some(url) = c.args.first() {
                        summary.into_url.extend(index(variables_in(url)));
                    }
                    if let Some(Expr::Map(m, _)) = c.args.get(1) {
                        if let Some((_, q)) = m.0.iter().find(|(i, _)| i.name == "query") {
                            summary.into_url.extend(index(variables_in(q)));
                        }
                    }
                }
                _ => {}
            }
            true
        });
        out.insert((f.name.to_string(), params.len()), summary);
    }
    out
}

/// Everything the analysis carries across functions.
struct Facts<'a> {
    /// `ctx.NAME` values known to be secrets (assigned from a secret anywhere).
    ctx: HashMap<String, Kind>,
    secret_params: HashSet<String>,
    /// Host functions that return a Secret.
    secret_returning: &'a HashSet<String>,
    /// The runbook's own functions, followed at their call sites.
    fns: HashMap<(String, usize), FnSummary>,
}

impl Facts<'_> {
    /// Whether the value of `e` holds a Secret inside it (not as itself): a map or list
    /// literal with one at any depth, `heroku::config`'s map, `infisical::secret`'s record
    /// (its `value`), an `http::` answer with declared secrets.
    fn holds_secret_inside(&self, e: &Expr, env: &HashMap<String, Kind>) -> bool {
        let secret_or_inside =
            |x: &Expr| self.kind(x, env) == Kind::Secret || self.holds_secret_inside(x, env);
        match e {
            Expr::Map(m, _) => m.0.iter().any(|(_, x)| secret_or_inside(x)),
            Expr::Array(a, _) => a.iter().any(secret_or_inside),
            _ => match self.kind(e, env) {
                Kind::SecretMap | Kind::Record => true,
                Kind::Response(declared) => !declared.is_empty(),
                _ => false,
            },
        }
    }

    fn kind(&self, e: &Expr, env: &HashMap<String, Kind>) -> Kind {
        match e {
            Expr::Variable(x, _, _) => {
                let name = x.1.as_str();
                env.get(name).cloned().unwrap_or(if name == "ctx" {
                    Kind::Ctx
                } else {
                    Kind::Unknown
                })
            }
            Expr::FnCall(c, _) if c.op_token.is_some() => {
                // `a + b` and friends: text built from a credential is a credential.
                let kinds: Vec<Kind> = c.args.iter().map(|a| self.kind(a, env)).collect();
                kinds
                    .into_iter()
                    .find(|k| matches!(k, Kind::Plain(_)))
                    .unwrap_or(Kind::Unknown)
            }
            Expr::FnCall(c, _) => {
                if c.namespace.is_empty() {
                    // A runbook function that builds text from a credential returns one.
                    let Some(f) = self.fns.get(&(c.name.to_string(), c.args.len())) else {
                        return Kind::Unknown;
                    };
                    return f
                        .into_text
                        .iter()
                        .filter_map(|&i| c.args.get(i))
                        .map(|a| self.kind(a, env))
                        .find(|k| matches!(k, Kind::Secret | Kind::Plain(_)))
                        .unwrap_or(Kind::Unknown);
                }
                let q = format!("{}::{}", c.namespace.root(), c.name);
                match q.as_str() {
                    "infisical::secret" => Kind::Record,
                    "heroku::config" => Kind::SecretMap,
                    _ if q.starts_with("http::") => Kind::Response(declared_secrets(&c.args)),
                    _ if self.secret_returning.contains(&q) => Kind::Secret,
                    _ => Kind::Unknown,
                }
            }
            Expr::InterpolatedString(parts, _) => {
                let kinds: Vec<Kind> = parts.iter().map(|p| self.kind(p, env)).collect();
                if let Some(p) = kinds.iter().find(|k| matches!(k, Kind::Plain(_))) {
                    return p.clone();
                }
                if kinds.contains(&Kind::Secret) {
                    return Kind::Secret;
                }
                Kind::Unknown
            }
            Expr::Dot(..) | Expr::Index(..) => match chain(e) {
                Some((root, segs)) => {
                    let mut k = self.kind(root, env);
                    for s in &segs {
                        k = self.step(k, s);
                    }
                    k
                }
                None => Kind::Unknown,
            },
            _ => Kind::Unknown,
        }
    }

    fn step(&self, k: Kind, seg: &Seg) -> Kind {
        let prop = match seg {
            Seg::Prop(p) => Some(p.as_str()),
            Seg::Method(m) => {
                return match (&k, m.as_str()) {
                    (Kind::Plain(_), "to_string" | "trim" | "to_lower" | "to_upper") => k,
                    _ => Kind::Unknown,
                };
            }
            Seg::Other => None,
        };
        match (k, prop) {
            (Kind::Ctx, Some("params")) => Kind::Params,
            (Kind::Ctx, Some(p)) => match self.ctx.get(p) {
                Some(k) => k.clone(),
                None if credential_like(p) => Kind::Secret,
                None => Kind::Unknown,
            },
            (Kind::Params, Some(p)) if self.secret_params.contains(p) => Kind::Secret,
            (Kind::Record, Some("value")) => Kind::Secret,
            (Kind::SecretMap, _) => Kind::Secret,
            (Kind::Response(s), Some("json")) => Kind::Json(s, String::new()),
            (Kind::Json(s, path), p) => {
                let name = p.unwrap_or("*");
                let full = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                if s.contains(&full) {
                    Kind::Secret
                } else if credential_like(name) {
                    Kind::Plain(format!(
                        "the http:: response field '{full}' (not declared in `secrets`)"
                    ))
                } else {
                    Kind::Json(s, full)
                }
            }
            _ => Kind::Unknown,
        }
    }
}

/// `secrets: ["a", "b.c"]` in an `http::` call's options map.
fn declared_secrets(args: &[Expr]) -> Vec<String> {
    let Some(Expr::Map(m, _)) = args.get(1) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (ident, value) in &m.0 {
        if ident.name == "secrets" {
            if let Expr::Array(items, _) = value {
                for i in items.iter() {
                    if let Expr::StringConstant(s, _) = i {
                        out.push(s.to_string());
                    }
                }
            }
        }
    }
    if let Some(v) = m.1.get("secrets") {
        if let Some(a) = v.read_lock::<rhai::Array>() {
            out.extend(a.iter().map(|x| x.to_string()));
        }
    }
    out
}

/// Walks one body in source order, tracking local variables; `on_call` sees every call
/// with the variables known at that point.
fn walk_body(
    facts: &Facts<'_>,
    body: &AST,
    mut on_assign_ctx: impl FnMut(&str, Kind),
    mut on_call: impl FnMut(&rhai::FnCallExpr, Position, &HashMap<String, Kind>),
    mut on_inside_ctx: impl FnMut(&str, Position),
) {
    let mut env: HashMap<String, Kind> = HashMap::new();
    body.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, _, _))) => {
                let k = facts.kind(&x.1, &env);
                env.insert(x.0.name.to_string(), k);
            }
            Some(ASTNode::Stmt(Stmt::Assignment(x))) => {
                let (lhs, rhs) = (&x.1.lhs, &x.1.rhs);
                let k = facts.kind(rhs, &env);
                match lhs {
                    Expr::Variable(v, _, _) => {
                        env.insert(v.1.to_string(), k);
                    }
                    _ => {
                        if let Some((Expr::Variable(root, _, _), segs)) = chain(lhs) {
                            if root.1 != "ctx" {
                                return true;
                            }
                            let Some(Seg::Prop(p)) = segs.first() else {
                                return true;
                            };
                            let inside = if segs.len() > 1 {
                                k == Kind::Secret
                            } else {
                                facts.holds_secret_inside(rhs, &env)
                            };
                            if inside {
                                on_inside_ctx(p, lhs.position());
                            }
                            if segs.len() == 1 {
                                on_assign_ctx(p, k);
                            }
                        }
                    }
                }
            }
            Some(ASTNode::Expr(Expr::FnCall(c, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(c, pos))) => {
                on_call(c, *pos, &env);
            }
            _ => {}
        }
        true
    });
}

/// The secret-flow findings of the runbook (unit 0) of `program`.
pub(crate) fn analyse(
    program: &Program,
    secret_params: HashSet<String>,
    secret_returning: &HashSet<String>,
) -> Vec<Finding> {
    let mut facts = Facts {
        ctx: HashMap::new(),
        secret_params,
        secret_returning,
        fns: summarise(&program.runbook().ast),
    };
    // What each ctx value holds, from every assignment in every unit (a stdlib step sets
    // ctx.old_value); twice, so values assigned from other ctx values settle.
    for _ in 0..2 {
        let mut found: Vec<(String, Kind)> = Vec::new();
        for unit in &program.units {
            for body in bodies(&unit.ast) {
                walk_body(
                    &facts,
                    &body,
                    |p, k| found.push((p.to_string(), k)),
                    |_, _, _| {},
                    |_, _| {},
                );
            }
        }
        for (p, k) in found {
            let known = matches!(k, Kind::Secret | Kind::Plain(_));
            if known || !facts.ctx.contains_key(&p) {
                facts.ctx.insert(p, k);
            }
        }
    }
    let mut findings = Vec::new();
    let mut inside = Vec::new();
    let http_is_host = !program.runbook().imports.contains_key("http");
    for body in bodies(&program.runbook().ast) {
        walk_body(
            &facts,
            &body,
            |_, _| {},
            |c, pos, env| {
                let plain_ns = c.namespace.is_empty();
                if plain_ns && (c.name == "print" || c.name == "debug") {
                    if let Some(Kind::Plain(what)) = c.args.first().map(|a| facts.kind(a, env)) {
                        findings.push(Finding::InPrint {
                            what,
                            position: pos,
                        });
                    }
                    return;
                }
                if plain_ns {
                    // A credential handed to a runbook function that puts it in a URL.
                    let Some(f) = facts.fns.get(&(c.name.to_string(), c.args.len())) else {
                        return;
                    };
                    let leaked = f.into_url.iter().find_map(|&i| {
                        match c.args.get(i).map(|a| facts.kind(a, env)) {
                            Some(Kind::Secret) => Some("a Secret".to_string()),
                            Some(Kind::Plain(w)) => Some(w),
                            _ => None,
                        }
                    });
                    if let Some(what) = leaked {
                        findings.push(Finding::InUrl {
                            function: format!("{}()", c.name),
                            what: format!("{what} it puts in an http:: URL"),
                            position: pos,
                        });
                    }
                    return;
                }
                if !http_is_host || c.namespace.root() != "http" {
                    return;
                }
                let function = format!("http::{}", c.name);
                let url = c.args.first().map(|a| facts.kind(a, env));
                // A Secret given whole is a URL that is a credential (a webhook's secret
                // path): sent as written, shown masked. One built into a string is not.
                let whole = matches!(
                    c.args.first(),
                    Some(Expr::Variable(..) | Expr::Dot(..) | Expr::Index(..) | Expr::Property(..))
                );
                let mut what = match url {
                    Some(Kind::Secret) if whole => None,
                    Some(Kind::Secret) => Some("a Secret in the URL".to_string()),
                    Some(Kind::Plain(w)) => Some(format!("{w} in the URL")),
                    _ => None,
                };
                if what.is_none() {
                    what = query_secret(&facts, c.args.get(1), env);
                }
                if let Some(what) = what {
                    findings.push(Finding::InUrl {
                        function,
                        what,
                        position: pos,
                    });
                }
            },
            |key, position| {
                inside.push(Finding::InsideCtx {
                    key: key.to_string(),
                    position,
                })
            },
        );
    }
    findings.extend(inside);
    findings
}

/// A Secret or credential among the values of `query: #{...}` in an options map literal.
fn query_secret(
    facts: &Facts<'_>,
    opts: Option<&Expr>,
    env: &HashMap<String, Kind>,
) -> Option<String> {
    let Some(Expr::Map(m, _)) = opts else {
        return None;
    };
    let (_, query) = m.0.iter().find(|(i, _)| i.name == "query")?;
    let Expr::Map(q, _) = query else {
        return None;
    };
    q.0.iter().find_map(|(key, v)| match facts.kind(v, env) {
        Kind::Secret => Some(format!("a Secret in the query parameter '{}'", key.name)),
        Kind::Plain(w) => Some(format!("{w} in the query parameter '{}'", key.name)),
        _ => None,
    })
}
