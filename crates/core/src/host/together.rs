//! `run::together`: independent vendor reads of one step, sent at once. A script is
//! synchronous (each host call blocks until its answer), so reads that depend on nothing
//! between them still wait for each other. `together` takes functions; each that is a
//! single read (one call of a read this module knows, with arguments that only name values:
//! no calls, no arithmetic) is started before any of them runs, then every function runs
//! in order, a started read taking the answer that was sent for it. Any other function
//! (discovery's search, a write) runs in its turn as it would have anyway.
//!
//! Why this shape: starting a read means calling it without waiting, and a rhai function
//! cannot be suspended. So the single read is called twice, once to start it (its host
//! function stops at the request: `Mode::Start`) and once to take its answer
//! (`Mode::Take`). Calling it twice is only safe because nothing else is in it: its
//! arguments are read from values. What ran between the two calls may have changed them,
//! or the vendor: the answer is only taken by the same call (its key names every argument)
//! and when no write or question to the operator happened since it was sent; else the read
//! is sent again, as without `together`.

use super::RunContext;
use crate::runtime::Interrupted;
use crate::value::throw;
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, NativeCallContext, Position};
use runbook_vendors::VendorError;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;

type R<T> = Result<T, Box<EvalAltResult>>;

/// The reads `together` starts ahead: their host functions take their answer through
/// [`RunContext::read`].
pub(crate) const STARTED_AHEAD: &[&str] = &[
    "postmark::server",
    "postmark::token_status",
    "postmark::message",
    "heroku::scopes",
    "heroku::configs",
    "heroku::releases",
    "infisical::secret",
];

/// The termination token of a read stopped at its request (pass one).
const STARTED: &str = "run::together: a read started ahead";

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Off,
    /// Function `i` is called to start its read.
    Start(usize),
    /// Function `i` is called to take its read's answer.
    Take(usize),
}

type Answer = Result<Box<dyn Any + Send>, VendorError>;

/// A read sent ahead: what it was (its host function's key: the call and its arguments)
/// and its answer, abandoned when dropped untaken.
struct Started {
    key: String,
    answer: Abandoned<Answer>,
}

/// A spawned read that is stopped when nobody will take its answer.
pub(crate) struct Abandoned<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for Abandoned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reads of one `together` call.
#[derive(Default)]
pub(crate) struct Ahead {
    mode: Cell<Mode>,
    started: RefCell<Vec<Option<Started>>>,
    /// Writes and questions to the operator so far in this run: a read sent before one of
    /// them may answer with what it changed undone, so its answer is not used.
    effects: Cell<u64>,
    /// `effects` when the reads were sent.
    sent_at: Cell<u64>,
}

impl Ahead {
    /// Forgets every read not taken; their requests are abandoned.
    fn clear(&self) {
        self.mode.set(Mode::Off);
        self.started.borrow_mut().clear();
    }

    /// How many writes and questions to the operator this run has had so far.
    pub(crate) fn effects(&self) -> u64 {
        self.effects.get()
    }

    /// A write, or a question to the operator, is about to happen.
    pub(crate) fn note_effect(&self) {
        self.effects.set(self.effects.get() + 1);
    }
}

fn started() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(STARTED), Position::NONE).into()
}

fn is_started(e: &EvalAltResult) -> bool {
    matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(t, _) if t.clone().into_string().is_ok_and(|s| s == STARTED))
}

impl RunContext {
    /// A read `together` may start ahead: outside it, as [`RunContext::block`]. Its key is
    /// the label, which must name every argument.
    pub(crate) fn read<T, F>(&self, label: &str, fut: F) -> R<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, VendorError>> + Send + 'static,
    {
        self.read_keyed(label, label, fut)
    }

    /// A read `together` may start ahead, `key` naming the call and every argument (a
    /// secret by its keyed fingerprint): a started answer is only taken by the same call.
    pub(crate) fn read_keyed<T, F>(&self, label: &str, key: &str, fut: F) -> R<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, VendorError>> + Send + 'static,
    {
        match self.ahead().mode.get() {
            Mode::Off => self.block(label, fut),
            Mode::Start(i) => {
                // After Ctrl-C or a spent budget nothing more is sent: the second pass says so.
                let Ok(answer) = self.send_ahead(async move {
                    fut.await.map(|t| Box::new(t) as Box<dyn Any + Send>)
                }) else {
                    return Err(started());
                };
                let mut all = self.ahead().started.borrow_mut();
                if all.len() <= i {
                    all.resize_with(i + 1, || None);
                }
                all[i] = Some(Started {
                    key: key.to_string(),
                    answer,
                });
                Err(started())
            }
            Mode::Take(i) => {
                let ahead = self.ahead();
                let taken = ahead.started.borrow_mut().get_mut(i).and_then(Option::take);
                // Another call than the one sent (its arguments changed), or a write or a
                // question since it was sent: the answer may be stale; it is read again.
                let fresh = ahead.effects.get() == ahead.sent_at.get();
                let Some(mut s) = taken.filter(|s| fresh && s.key == key) else {
                    return self.block(label, fut);
                };
                let done = {
                    let _call = self.say().call(label);
                    self.services().runtime.block_on(&mut s.answer.0)
                };
                self.note_simulators();
                match done {
                    Ok(Ok(Ok(any))) => any.downcast::<T>().map(|t| *t).map_err(|_| {
                        throw(
                            "internal",
                            format!("{label}: a read started ahead answered with another type"),
                            None,
                        )
                    }),
                    Ok(Ok(Err(e))) => Err(super::vendor_call::vendor_error(&e)),
                    Ok(Err(e)) => Err(throw("internal", format!("{label}: {e}"), None)),
                    Err(why) => Err(super::vendor_call::stopped(why)),
                }
            }
        }
    }

    /// Sends `fut` without waiting for it, unless Ctrl-C or a spent budget says nothing more
    /// is sent: its answer is taken later, or abandoned (stopped) when dropped.
    pub(crate) fn send_ahead<T, F>(&self, fut: F) -> Result<Abandoned<T>, Interrupted>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.services().runtime.check()?;
        Ok(Abandoned(self.services().runtime.handle().spawn(fut)))
    }

    /// Whether a call is the first pass of `together`: it must stop before doing anything.
    pub(crate) fn starting_ahead(&self) -> bool {
        matches!(self.ahead().mode.get(), Mode::Start(_))
    }

    pub(crate) fn stop_starting() -> Box<EvalAltResult> {
        started()
    }
}

/// Whether `f` is one call of a read in [`STARTED_AHEAD`] whose arguments only name values
/// (variables, constants, properties, indexes, arrays and maps of those).
fn single_read(nc: &NativeCallContext, f: &FnPtr) -> bool {
    use rhai::{ASTNode, Expr, Stmt};
    let arity = f.curry().len();
    let Some(def) = nc
        .iter_namespaces()
        .find_map(|m| m.get_script_fn(f.fn_name(), arity))
    else {
        return false;
    };
    let mut lib = rhai::Module::new();
    lib.set_script_fn(def.as_ref().clone());
    let body = rhai::AST::new_from_module(lib);
    let (mut calls, mut ok) = (0, true);
    let host = super::modules();
    body.walk(&mut |path: &[ASTNode]| {
        let fits = match path.last() {
            Some(ASTNode::Stmt(Stmt::FnCall(c, _))) | Some(ASTNode::Expr(Expr::FnCall(c, _))) => {
                calls += 1;
                // One segment naming a host module (an import cannot take a host module's
                // name: `register_imports`). `root()` of no namespace panics.
                c.op_token.is_none()
                    && c.namespace.path.len() == 1
                    && host.is_module(c.namespace.root())
                    && STARTED_AHEAD
                        .contains(&format!("{}::{}", c.namespace.root(), c.name).as_str())
            }
            Some(ASTNode::Stmt(Stmt::Expr(_) | Stmt::Block(..))) => true,
            Some(ASTNode::Expr(e)) => matches!(
                e,
                Expr::Variable(..)
                    | Expr::DynamicConstant(..)
                    | Expr::BoolConstant(..)
                    | Expr::IntegerConstant(..)
                    | Expr::FloatConstant(..)
                    | Expr::CharConstant(..)
                    | Expr::StringConstant(..)
                    | Expr::Unit(..)
                    | Expr::Array(..)
                    | Expr::Map(..)
                    | Expr::Property(..)
                    | Expr::Dot(..)
                    | Expr::Index(..)
            ),
            None => true,
            Some(_) => false,
        };
        ok &= fits;
        ok
    });
    ok && calls == 1
}

fn together(nc: &NativeCallContext, fns: Array) -> R<Array> {
    let run = super::Stage::of(nc).run("run::together")?;
    let fns: Vec<FnPtr> = fns
        .into_iter()
        .map(|f| {
            f.try_cast::<FnPtr>().ok_or_else(|| {
                throw(
                    "usage",
                    "run::together takes an array of functions (|| ...)",
                    None,
                )
            })
        })
        .collect::<R<_>>()?;
    if run.ahead().mode.get() != Mode::Off {
        return Err(throw("usage", "run::together cannot be nested", None));
    }
    // Pass one: each single read stops at its request, sent. An error here (a bad argument)
    // is raised again in pass two, where the function runs in its turn.
    for (i, f) in fns.iter().enumerate() {
        if single_read(nc, f) {
            run.ahead().mode.set(Mode::Start(i));
            let _ = f.call_within_context::<Dynamic>(nc, ());
        }
    }
    run.ahead().sent_at.set(run.ahead().effects.get());
    let mut out = Array::with_capacity(fns.len());
    let mut failed = None;
    for (i, f) in fns.iter().enumerate() {
        run.ahead().mode.set(Mode::Take(i));
        match f.call_within_context::<Dynamic>(nc, ()) {
            Ok(v) => out.push(v),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    run.ahead().clear();
    match failed {
        Some(e) if is_started(&e) => Err(throw(
            "internal",
            "run::together: a read stopped at its request outside the first pass",
            None,
        )),
        Some(e) => Err(e),
        None => Ok(out),
    }
}

pub(crate) fn register(reg: &mut crate::engine::registry::Registrar) {
    let mut m = reg.module("run");
    m.add(
        "together",
        super::Effect::Read,
        &["functions: Array"],
        "Array",
        "Runs `functions` (closures, `|| ...`) and returns their results in order, sending their\nindependent vendor reads at once: each function that is one read (one call of\npostmark::server / token_status / message, heroku::scopes / configs / releases or\ninfisical::secret, with arguments that only name values) has its request sent before any\nfunction runs; then every function runs in order, a started read taking its answer. Any\nother function runs in its turn, as without `together` (a discovery search runs while the\nreads started before it are on their way). E.g. `let r = run::together([|| discovery::discover(t, o), || postmark::server(t)]);`",
        |nc: NativeCallContext, fns: Array| together(&nc, fns),
    );
    m.finish();
}
