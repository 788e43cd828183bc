//! `run::together`: independent vendor calls of one step, sent at once. A script is
//! synchronous (each host call blocks until its answer), so reads that depend on nothing
//! between them still wait for each other. `together` takes functions; each that is a
//! single read (one call of a read this module knows, with arguments that only name values:
//! no calls, no arithmetic) is started before any of them runs, then every function runs
//! in order, a started read taking the answer that was sent for it. Any other function
//! (discovery's search, most writes) runs in its turn as it would have anyway.
//!
//! Why this shape: starting a read means calling it without waiting, and a rhai function
//! cannot be suspended. So the single read is called twice, once to start it (its host
//! function stops at the request: `Mode::Start`) and once to take its answer
//! (`Mode::Take`). Calling it twice is only safe because nothing else is in it: its
//! arguments are read from values. What ran between the two calls may have changed them,
//! or the vendor: the answer is only taken by the same call (its key names every argument)
//! and when no write or question to the operator happened since it was sent; else the read
//! is sent again, as without `together`.
//!
//! A write in [`STARTED_AHEAD_WRITES`] (one request, whose outcome is journalled like any
//! write's) is started the same way: journalled as sent, then sent, in the first pass; its
//! answer taken, and its outcome recorded, in the second, even when a function before it
//! failed. A read of a vendor it may change, sent in the same first pass, is read again.
//!
//! Which writes count is per vendor ([`Reach`]): a write at Infisical cannot change what
//! Postmark answers, so a Postmark read sent before it is still taken; a write at Infisical
//! can change Heroku's and GitHub's (its integrations sync secrets into them), and a
//! question to the operator, or a call to any other service, can change anything.

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

/// The writes `together` starts ahead (a single request each, their outcome journalled like
/// any write): their host functions send through [`RunContext::write_request`].
pub(crate) const STARTED_AHEAD_WRITES: &[&str] = &["infisical::delete_secret"];

/// The termination token of a call stopped at its request (pass one).
const STARTED: &str = "run::together: a call started ahead";

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

/// The vendors whose answers an effect may change, one bit each (`OTHER`: any service
/// `together` does not read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reach(u8);

const POSTMARK: u8 = 1;
const VENDORS: [(&str, u8); 4] = [
    ("postmark", POSTMARK),
    ("infisical", 2),
    ("heroku", 4),
    ("github", 8),
];
const OTHER: u8 = 16;

impl Reach {
    /// Every vendor: a question to the operator (they act on dashboards), a call to a
    /// service `together` knows nothing of.
    pub(crate) const ALL: Reach = Reach(u8::MAX);

    /// The vendor a read of host module `module` asks.
    fn of_read(module: &str) -> Reach {
        Reach(
            VENDORS
                .iter()
                .find(|(m, _)| *m == module)
                .map_or(OTHER, |(_, bit)| *bit),
        )
    }

    /// What a write by host function `function` (`module::name`) may change: its own
    /// vendor's answers; Infisical's also every vendor it syncs secrets into (Heroku,
    /// GitHub, any other: every one but Postmark, which holds no secrets it is given).
    pub(crate) fn of_write(function: &str) -> Reach {
        match function.split("::").next().unwrap_or("") {
            "infisical" => Reach(!POSTMARK),
            m @ ("postmark" | "heroku" | "github") => Reach::of_read(m),
            _ => Reach::ALL,
        }
    }

    /// The vendors named, as `http::`'s `changes:` option lists them.
    pub(crate) fn named(names: &[String]) -> Result<Reach, String> {
        let mut bits = 0;
        for n in names {
            let Some((_, bit)) = VENDORS.iter().find(|(m, _)| m == n) else {
                return Err(n.clone());
            };
            bits |= bit;
        }
        Ok(Reach(bits))
    }

    fn bits(self) -> impl Iterator<Item = usize> {
        (0..8).filter(move |i| self.0 & (1 << i) != 0)
    }
}

/// A read sent ahead: what it was (its host function's key: the call and its arguments)
/// and its answer, abandoned when dropped untaken.
struct Started {
    key: String,
    answer: Abandoned<Answer>,
}

/// A spawned call that is stopped when nobody will take its answer (a write started ahead is
/// always taken, or let go: [`StartedWrite::left_outcome`]).
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
    /// The same, counted for each vendor an effect may reach (one counter per bit of
    /// [`Reach`]).
    reached: [Cell<u64>; 8],
    /// `reached` when the reads were sent.
    sent_at: Cell<[u64; 8]>,
    /// The vendor each function's started read asks, by index.
    asks: RefCell<Vec<Reach>>,
    /// Writes started ahead, by index.
    writes: RefCell<Vec<Option<StartedWrite>>>,
    /// Where the write being started (pass one) or taken (pass two) sends its request.
    slot: RefCell<Slot>,
    /// The vendors a write started ahead may change: a read of one of them, sent in the
    /// same pass, may be answered before or after the write, so it is read again.
    racing: Cell<Reach>,
}

/// A write started ahead: what was journalled as sent, and its request's answer.
pub(crate) struct StartedWrite {
    pub(crate) function: String,
    pub(crate) effect: super::Effect,
    pub(crate) target: String,
    pub(crate) detail: serde_json::Value,
    answer: Option<Abandoned<Answer>>,
}

impl StartedWrite {
    /// How a write never taken ended, as far as this process can tell: refused if its
    /// answer is in and says so; else it may have taken effect. Its request, if still on
    /// its way, is left to finish, not stopped.
    pub(crate) fn left_outcome(&mut self, run: &RunContext) -> crate::events::WriteOutcome {
        use crate::events::WriteOutcome;
        let Some(mut answer) = self.answer.take() else {
            return WriteOutcome::NotSent;
        };
        if !answer.0.is_finished() {
            // Dropping the handle would stop the request: it is let go instead (until the
            // process ends: best effort).
            std::mem::forget(answer);
            return WriteOutcome::Unknown;
        }
        match run.services().runtime.finished(&mut answer.0) {
            Ok(Err(e)) => super::writes::outcome_of_failure(&super::vendor_call::vendor_error(&e)),
            _ => WriteOutcome::Unknown,
        }
    }

    pub(crate) fn new(
        function: &str,
        effect: super::Effect,
        target: &str,
        detail: serde_json::Value,
    ) -> StartedWrite {
        StartedWrite {
            function: function.to_string(),
            effect,
            target: target.to_string(),
            detail,
            answer: None,
        }
    }
}

#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    /// Send the request of function `i`'s write, and keep its answer.
    Start(usize),
    /// The answer of the write's request, sent in pass one.
    Take(Abandoned<Answer>),
}

impl Ahead {
    /// Forgets every read not taken; their requests are abandoned.
    fn clear(&self) {
        self.mode.set(Mode::Off);
        self.started.borrow_mut().clear();
        self.asks.borrow_mut().clear();
        self.writes.borrow_mut().clear();
        *self.slot.borrow_mut() = Slot::Empty;
        self.racing.set(Reach(0));
    }

    fn has_write(&self, i: usize) -> bool {
        self.writes.borrow().get(i).is_some_and(Option::is_some)
    }

    /// In pass one, `together` is calling function `i`, a write it may start ahead.
    pub(crate) fn starting_write(&self) -> Option<usize> {
        match self.mode.get() {
            Mode::Start(i) => Some(i),
            _ => None,
        }
    }

    /// The write started ahead for the function `together` is calling in pass two, if any.
    pub(crate) fn take_write(&self) -> Option<StartedWrite> {
        match self.mode.get() {
            Mode::Take(i) => self.writes.borrow_mut().get_mut(i).and_then(Option::take),
            _ => None,
        }
    }

    /// A write of function `i` journalled as sent: its request goes out next
    /// ([`RunContext::write_request`]). It may change `reach`'s answers.
    pub(crate) fn begin_write(&self, i: usize, reach: Reach, w: StartedWrite) {
        self.racing.set(Reach(self.racing.get().0 | reach.0));
        let mut all = self.writes.borrow_mut();
        if all.len() <= i {
            all.resize_with(i + 1, || None);
        }
        all[i] = Some(w);
        *self.slot.borrow_mut() = Slot::Start(i);
    }

    /// Whether function `i`'s write left in pass one (its request was sent); if not, it is
    /// forgotten (the second pass runs it in its turn).
    pub(crate) fn write_left(&self, i: usize) -> bool {
        *self.slot.borrow_mut() = Slot::Empty;
        let mut all = self.writes.borrow_mut();
        let left = all
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|w| w.answer.is_some());
        if !left {
            if let Some(w) = all.get_mut(i) {
                *w = None;
            }
        }
        left
    }

    pub(crate) fn clear_slot(&self) {
        *self.slot.borrow_mut() = Slot::Empty;
    }

    /// Pass two: the started write's request answers through the next `write_request`.
    pub(crate) fn resume_write(&self, w: &mut StartedWrite) {
        if let Some(answer) = w.answer.take() {
            *self.slot.borrow_mut() = Slot::Take(answer);
        }
    }

    fn reached(&self) -> [u64; 8] {
        std::array::from_fn(|i| self.reached[i].get())
    }

    /// Whether no effect that may reach `vendor` happened since the reads were sent.
    fn fresh_for(&self, vendor: Reach) -> bool {
        let (now, then) = (self.reached(), self.sent_at.get());
        vendor.bits().all(|b| now[b] == then[b])
    }

    /// How many writes and questions to the operator this run has had so far.
    pub(crate) fn effects(&self) -> u64 {
        self.effects.get()
    }

    /// A write, or a question to the operator, is about to happen; `reach` says whose
    /// answers it may change.
    pub(crate) fn note_effect(&self, reach: Reach) {
        self.effects.set(self.effects.get() + 1);
        for b in reach.bits() {
            self.reached[b].set(self.reached[b].get() + 1);
        }
    }
}

fn another_type(label: &str) -> Box<EvalAltResult> {
    throw(
        "internal",
        format!("{label}: a call started ahead answered with another type"),
        None,
    )
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
                // question since it was sent that may have changed this vendor's answer:
                // the answer may be stale; it is read again.
                let asks = ahead.asks.borrow().get(i).copied().unwrap_or(Reach::ALL);
                let fresh = ahead.fresh_for(asks) && ahead.racing.get().0 & asks.0 == 0;
                let Some(s) = taken.filter(|s| fresh && s.key == key) else {
                    return self.block(label, fut);
                };
                self.take_answer(label, s.answer, false)
            }
        }
    }

    /// The request of a write `together` may start ahead ([`STARTED_AHEAD_WRITES`]): in
    /// its first pass it is sent and not waited for; in its second, its answer is taken;
    /// otherwise as [`RunContext::block`].
    pub(crate) fn write_request<T, F>(&self, label: &str, fut: F) -> R<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, VendorError>> + Send + 'static,
    {
        let slot = std::mem::take(&mut *self.ahead().slot.borrow_mut());
        match slot {
            Slot::Empty => self.block(label, fut),
            Slot::Start(i) => {
                if let Ok(answer) =
                    self.send_ahead(
                        async move { fut.await.map(|t| Box::new(t) as Box<dyn Any + Send>) },
                    )
                {
                    if let Some(Some(w)) = self.ahead().writes.borrow_mut().get_mut(i) {
                        w.answer = Some(answer);
                    }
                }
                Err(started())
            }
            // Ctrl-C stops the wait, not the write: its request is let go, not aborted.
            Slot::Take(answer) => self.take_answer(label, answer, true),
        }
    }

    /// Waits for an answer sent ahead (`let_go`: as [`RunContext::take_any`]).
    fn take_answer<T: 'static>(
        &self,
        label: &str,
        answer: Abandoned<Answer>,
        let_go: bool,
    ) -> R<T> {
        self.take_any(label, answer, let_go)?
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| another_type(label))
    }

    /// The answer of a call sent ahead; `let_go`: a write's, whose request is not stopped
    /// when Ctrl-C or a spent budget stops the wait (until the process ends: best effort).
    fn take_any(
        &self,
        label: &str,
        mut answer: Abandoned<Answer>,
        let_go: bool,
    ) -> R<Box<dyn Any + Send>> {
        // An answer already in is taken even after Ctrl-C or a spent budget: a write's
        // outcome is then recorded as it is, not as a failure.
        let done = if answer.0.is_finished() {
            Ok(self.services().runtime.finished(&mut answer.0))
        } else {
            if let_go {
                crate::hooks::interrupt_point("awaiting", &self.step_name());
            }
            let _call = self.say().call(label);
            self.services().runtime.block_on(&mut answer.0)
        };
        if done.is_err() && let_go {
            std::mem::forget(answer);
        }
        self.note_simulators();
        match done {
            Ok(Ok(Ok(any))) => Ok(any),
            Ok(Ok(Err(e))) => Err(super::vendor_call::vendor_error(&e)),
            Ok(Err(e)) => Err(throw("internal", format!("{label}: {e}"), None)),
            Err(why) => Err(super::vendor_call::stopped(why)),
        }
    }

    /// A started write whose function was called again with other arguments: how its
    /// request ended, so its outcome can be recorded.
    pub(crate) fn finish_write(&self, w: &mut StartedWrite) -> R<()> {
        match w.answer.take() {
            Some(answer) => self
                .take_any(&format!("{} on {}", w.function, w.target), answer, true)
                .map(|_| ()),
            None => Ok(()),
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
        let fut = runbook_vendors::transport::within_step(crate::interrupt::budget_end(), fut);
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

/// What `together` may start ahead of its turn: one read, or one write.
#[derive(Clone, Copy)]
enum Single {
    /// A read, of this vendor.
    Read(Reach),
    Write,
}

/// Whether `f` is one call of a read in [`STARTED_AHEAD`] or a write in
/// [`STARTED_AHEAD_WRITES`] whose arguments only name values (variables, constants,
/// properties, indexes, arrays and maps of those).
fn single_call(nc: &NativeCallContext, f: &FnPtr) -> Option<Single> {
    use rhai::{ASTNode, Expr, Stmt};
    let arity = f.curry().len();
    let def = nc
        .iter_namespaces()
        .find_map(|m| m.get_script_fn(f.fn_name(), arity))?;
    let mut lib = rhai::Module::new();
    lib.set_script_fn(def.as_ref().clone());
    let body = rhai::AST::new_from_module(lib);
    let (mut calls, mut ok, mut single) = (0, true, Single::Read(Reach::ALL));
    let host = super::modules();
    body.walk(&mut |path: &[ASTNode]| {
        let fits = match path.last() {
            Some(ASTNode::Stmt(Stmt::FnCall(c, _))) | Some(ASTNode::Expr(Expr::FnCall(c, _))) => {
                calls += 1;
                // One segment naming a host module (an import cannot take a host module's
                // name: `register_imports`). `root()` of no namespace panics.
                let named = c.op_token.is_none()
                    && c.namespace.path.len() == 1
                    && host.is_module(c.namespace.root());
                let name = if named {
                    format!("{}::{}", c.namespace.root(), c.name)
                } else {
                    String::new()
                };
                if STARTED_AHEAD.contains(&name.as_str()) {
                    single = Single::Read(Reach::of_read(c.namespace.root()));
                    true
                } else if STARTED_AHEAD_WRITES.contains(&name.as_str()) {
                    single = Single::Write;
                    true
                } else {
                    false
                }
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
    (ok && calls == 1).then_some(single)
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
    let mut stopped = None;
    // A write is journalled as sent before it leaves, as any write (`Writes::mutate`).
    for (i, f) in fns.iter().enumerate() {
        let Some(single) = single_call(nc, f) else {
            continue;
        };
        if let Single::Read(vendor) = single {
            let mut asks = run.ahead().asks.borrow_mut();
            asks.resize(i + 1, Reach::ALL);
            asks[i] = vendor;
        }
        run.ahead().mode.set(Mode::Start(i));
        // A stop (the run cannot record, its lock is gone, Ctrl-C) ends the first pass: no
        // other call is started, and the second runs only the writes already started, to
        // wait for them and record them, then stops with it. Before, it was dropped as an
        // ordinary error to be raised again, and the second pass ran every function.
        if let Err(e) = f.call_within_context::<Dynamic>(nc, ()) {
            if !is_started(&e) && matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..)) {
                stopped = Some(e);
                break;
            }
        }
    }
    run.ahead().sent_at.set(run.ahead().reached());
    crate::hooks::interrupt_point("together", &run.step_name());
    let mut out = Array::with_capacity(fns.len());
    let mut failed = stopped;
    for (i, f) in fns.iter().enumerate() {
        // After a failure only the writes started ahead run on: each is waited for and
        // its outcome recorded.
        let started_write = run.ahead().has_write(i);
        if failed.is_some() && !started_write {
            continue;
        }
        run.ahead().mode.set(Mode::Take(i));
        match (f.call_within_context::<Dynamic>(nc, ()), failed.is_some()) {
            (Ok(v), false) => out.push(v),
            (Err(e), false) => failed = Some(e),
            (Ok(_), true) => {}
            (Err(_), true) if !run.ahead().has_write(i) => run.say().warning(
                "a write sent beside the failure failed too: the run's summary says which",
            ),
            (Err(_), true) => {}
        }
    }
    // A started write whose function could not run again (Ctrl-C, a spent budget stop a
    // script at its next operation) is recorded from here, its request left to finish.
    let left: Vec<StartedWrite> = run
        .ahead()
        .writes
        .borrow_mut()
        .drain(..)
        .flatten()
        .collect();
    for w in left {
        run.writes().settle_left(w);
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
        "Runs `functions` (closures, `|| ...`) and returns their results in order, sending their\nindependent vendor calls at once: each function that is one read (one call of\npostmark::server / token_status / message, heroku::scopes / configs / releases or\ninfisical::secret) or one infisical::delete_secret, with arguments that only name values, has\nits request sent before any function runs (a write journalled as sent first); then every\nfunction runs in order, a started call taking its answer. Any other function runs in its\nturn, as without `together`. A started read is sent again when a write or a question to the\noperator since may have changed its vendor's answer (a write at Infisical: every vendor but\nPostmark; an http:: write: any, unless its `changes` option says). A started write is waited\nfor and recorded even when a function before it failed. E.g. `let r = run::together([|| discovery::discover(t, o), || postmark::server(t)]);`",
        |nc: NativeCallContext, fns: Array| together(&nc, fns),
    );
    m.finish();
}
