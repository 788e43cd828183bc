//! A session: a loaded runbook, the run it belongs to and that run's `ctx`, built once and
//! used by everything that runs steps (`exec`, `resume`, `rollback`, the REPL). Starting a
//! run and reopening a stopped one both end here.

use super::lock::Lock;
use super::resume;
use crate::audit::AuditEvent;
use crate::audit::AuditLog;
use crate::diagnostic::ScriptError;
use crate::engine::{ABORTED, INTERRUPTED};
use crate::error::{Error, Result};
use crate::events::{
    Abandoned, Event, LeaseTaken, LeftInPlace, RunFinished, RunResumed, RunStarted,
};
use crate::host::{
    Auditor, Operator, Phase, Policy, RunContext, RunParts, Services, Stage, Webhook,
};
use crate::ledger::{Ledger, LedgerWriter};
use crate::prompt::Prompter;
use crate::run::{self, Entry, Modes, RunInfo, RunStatus, Target};
use crate::runbook::Runbook;
use crate::sink::{Say, SinkRef};
use crate::store::Store;
use crate::value::Ctx;
use rhai::{Dynamic, EvalAltResult, FnPtr};
use std::path::Path;
use std::rc::Rc;

/// How a call into the script ended.
pub enum Outcome {
    Done,
    Failed(Box<ScriptError>),
    Aborted,
    Interrupted,
    /// A write was not sent because its record could not be stored (the store is down, or
    /// the run's lease is gone): the run stops at once, and says why.
    Fenced(String),
}

/// A runbook attached to a run.
pub struct Session {
    runbook: Runbook,
    run: Rc<RunContext>,
    ctx: Ctx,
    lock: Option<Lock>,
}

/// What a run needs from the process that runs it, new or reopened.
pub struct Wiring {
    pub store: Store,
    pub actor: String,
    /// Shared: a REPL session's next run goes on with the same clients (and simulators).
    pub services: Rc<Services>,
    pub prompter: Prompter,
    /// Where the engine's events and notices go.
    pub sink: SinkRef,
    /// `RUNBOOK_AUDIT_WEBHOOK`: every audit entry is also sent there.
    pub webhook: Option<String>,
    /// Take the rotation's lock even if another run holds it (journalled).
    pub break_lock: super::lock::BreakLock,
}

/// Everything a new run needs.
pub struct NewRun {
    pub wiring: Wiring,
    /// Where it goes and what it does (`entry` is `exec` or `repl`).
    pub modes: Modes,
    /// `ctx.params`, resolved.
    pub params: rhai::Map,
}

/// Everything reopening a stopped run needs.
pub struct Reopen {
    pub wiring: Wiring,
    pub run_id: String,
    /// What the new process does with the run: resume, rollback or repl.
    pub entry: Entry,
    /// Accept a runbook that changed since the run (says what changed).
    pub force: bool,
    /// Checks the runbook once loaded, before the lock is taken or anything recorded (the
    /// answers file against its questions).
    pub vet: Option<Vet>,
}

/// A check of a reopened run's runbook (`Reopen::vet`).
pub type Vet = Box<dyn Fn(&Runbook) -> Result<()>>;

/// Everything ending a run by `runbook abandon` needs.
pub struct Abandon {
    pub wiring: Wiring,
    pub run_id: String,
    /// Why: recorded in the journal, the audit log and the evidence.
    pub reason: String,
    /// A journal of a newer format is abandoned as damaged (`--as-damaged`).
    pub as_damaged: bool,
}

/// A reopened run and what its ledger said when it was reopened.
pub struct Reopened {
    pub session: Session,
    pub state: Ledger,
    /// Indexes of the steps the ledger says completed.
    pub completed: Vec<usize>,
}

/// A run's context from its wiring, identity and ledger: its parts (see `RunContext`),
/// the operator channel, and the runbook's policy for these params.
fn context(
    w: Wiring,
    info: RunInfo,
    ledger: Rc<LedgerWriter>,
    say: Say,
    policy: Policy,
) -> Rc<RunContext> {
    let services = w.services;
    let webhook = webhook(w.webhook, &services);
    let auditor = Auditor::new(AuditLog::new(&w.store), info.clone(), say.clone(), webhook)
        .linked(ledger.clone());
    let operator = Operator::new(w.prompter, ledger.clone());
    let parts = RunParts {
        auditor: Rc::new(auditor),
        info,
        say,
        services,
        ledger,
        store: w.store,
    };
    RunContext::new(parts, operator, policy)
}

/// What a run records of the environment it touches: this binary, each vendor's base URL
/// and the runbook's declared egress.
fn environment(runbook: &Runbook, services: &Services) -> crate::events::Environment {
    crate::events::Environment {
        version: env!("CARGO_PKG_VERSION").to_string(),
        vendors: runbook_vendors::Vendor::ALL
            .iter()
            .map(|v| {
                (
                    v.name().to_string(),
                    services.config().endpoint(*v).to_string(),
                )
            })
            .collect(),
        // As declared: a host, or `param:NAME`.
        egress: runbook
            .plan()
            .meta()
            .egress
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok()?.as_str().map(str::to_string))
            .collect(),
    }
}

/// A stopped run goes on against the vendors it started against: a shell pointed elsewhere
/// (a rehearsal resumed in a production shell, a new sandbox in place of the one the run
/// wrote to) would send the rest of the run to another world, and into production under a
/// rehearsal's lock and name. Refused unless forced, naming each endpoint that differs.
fn same_vendors(
    run_id: &str,
    state: &crate::ledger::Ledger,
    runbook: &Runbook,
    services: &Services,
    force: bool,
    say: &Say,
) -> Result<()> {
    let Some(env) = &state.start.environment else {
        return Ok(());
    };
    // The vendors the runbook's own files call, and those the run wrote to (through a
    // stdlib module): not every vendor the stdlib can serve, which a shell may point
    // anywhere without it mattering to this run.
    let mut used: Vec<&str> = runbook.own_vendor_modules();
    // Every write that may have applied, a put-back one too: a rollback writes there again.
    let written: Vec<String> = state
        .writes
        .iter()
        .filter(|w| w.outcome.may_have_applied())
        .filter_map(|w| w.function.split_once("::").map(|(m, _)| m.to_string()))
        .collect();
    used.extend(written.iter().map(String::as_str));
    used.sort_unstable();
    used.dedup();
    let moved: Vec<String> = used
        .into_iter()
        .filter_map(runbook_vendors::Vendor::from_name)
        .filter_map(|v| {
            let then = env.vendors.get(v.name())?;
            let now = services.config().endpoint(v).to_string();
            (*then != now).then(|| format!("{} {then} then, {now} now", v.name()))
        })
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    if force {
        say.warning(format!(
            "warning: going on against other vendor endpoints than the run started against (--force): {}",
            moved.join("; ")
        ));
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "run {run_id} started against other vendor endpoints than this shell's: {}",
            moved.join("; ")
        ),
        "point this shell at the vendors the run started against, or pass --force to go on against these",
    ))
}

/// Stops a new run of a rotation while an earlier run of it is unfinished: its changes
/// are still in the world, and a second rotation on top would leave them there for good.
/// Only runs against the same target count: an unfinished rehearsal against a loopback
/// sandbox says nothing of production.
fn refuse_unfinished(store: &Store, runbook: &Runbook, key: &str, target: Target) -> Result<()> {
    let plan = runbook.plan();
    let same_rotation = |l: &crate::ledger::Ledger| {
        l.start.runbook == plan.meta().id
            && l.start.target == target
            && (target != Target::Production || !l.is_rehearsal())
            && super::lock::key(plan, &l.start.params) == key
    };
    let journals = crate::ledger::Journals::new(store);
    let (ledgers, unreadable) = crate::ledger::unsettled(&journals)?;
    // A journal that cannot be read may be an unfinished run of this rotation: refused,
    // unless the lines before the damage say it is another rotation's, or a run that
    // changes nothing (a dry run, a REPL session, an in-process rehearsal), or, its first
    // line gone, the audit log names another runbook. One `runbook abandon` set aside,
    // still as it was then, is over.
    let blocking: Vec<&crate::ledger::Unreadable> = unreadable
        .iter()
        .filter(|u| match &u.start {
            Some(l) => {
                same_rotation(l)
                    && l.start.target != Target::Sandbox
                    && l.start.effect == crate::run::Effect::Apply
                    && l.start.entry != Entry::Repl
            }
            None => u.runbook.as_ref().is_none_or(|r| *r == plan.meta().id),
        })
        .filter(|u| !journals.holds(u))
        .collect();
    if let Some(u) = blocking.first() {
        let who = match (&u.start, &u.runbook) {
            (Some(l), _) => format!(" (started {} by {})", l.started_at, l.start.actor),
            (None, Some(r)) => format!(" (runbook {r}, as the audit log names it)"),
            (None, None) => " (which runbook it was is unknown)".to_string(),
        };
        let others = match blocking.len() {
            1 => String::new(),
            n => format!(
                "; {} more: {}",
                n - 1,
                blocking[1..]
                    .iter()
                    .map(|u| u.run_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::usage(
            format!(
                "an earlier run may be unfinished, and its journal cannot be read: {}{who}: {}{others}",
                u.run_id, u.error
            ),
            match u.sha256 {
                Some(_) if matches!(u.error, Error::JournalNewer { .. }) => format!(
                    "finish the run with the newer version of runbook that wrote it; if none did (the record's version field is damaged), read it by hand, check the vendors, and end it with `runbook abandon {} --reason TEXT --as-damaged`",
                    u.run_id
                ),
                Some(_) => format!(
                    "read it by hand (one JSON record per line) and check the vendors; if a newer version of runbook wrote it, finish the run with that version; if that run is over, end it with `runbook abandon {} --reason TEXT` (its journal is kept as it is)",
                    u.run_id
                ),
                // Its bytes cannot be read at all: nothing could say later which journal was abandoned.
                None => format!(
                    "read it by hand and check the vendors; if that run is over, take its journal out of {} (a file there; in a database its rows of runbook_journal, which only the tables' owner can remove, with the table's triggers switched off), keeping a copy, then start again",
                    store.runs_where()
                ),
            },
        ));
    }
    let Some(l) = ledgers
        .into_iter()
        .rev()
        .find(|l| same_rotation(l) && l.is_unfinished())
    else {
        return Ok(());
    };
    let id = &l.run_id;
    let left: Vec<String> = l
        .changes()
        .iter()
        .map(|w| format!("{} on {}", w.function, w.target))
        .collect();
    let stopped = l
        .stop
        .as_ref()
        .map(|s| format!(" at step {}", s.step))
        .unwrap_or_default();
    // Asked with --break-lock, the run may be alive, holding the lock: not one that died
    // (team review: `exec --break-lock` called a run waiting for an approval dead).
    let live = match store.lock_read(&super::lock::lock_name(key, target)) {
        // Shown alive: its process here, or a lease it keeps renewing. One on another host
        // of a shared folder is not known either way: the remedies below stay.
        Ok(crate::store::Slot::Held(Some(h)))
            if h.run_id == *id && (h.is_alive_here() || (h.expires.is_some() && !h.expired)) =>
        {
            Some(h)
        }
        _ => None,
    };
    if let Some(h) = live {
        return Err(Error::usage(
            format!(
                "an earlier run of this rotation is still running: {id} (started {} by {}; pid {} on {} holds its lock) left in effect: {}",
                l.started_at,
                l.start.actor,
                h.pid,
                h.host,
                left.join("; ")
            ),
            format!("a new run cannot start beside it, and breaking its lock would only stop it: let it finish, or stop it (Ctrl-C where it runs), then finish it with `runbook resume {id}` or `runbook rollback {id}`"),
        ));
    }
    Err(Error::usage(
        format!(
            "an earlier run of this rotation is unfinished: {id} (started {} by {}; {}{stopped}) left in effect: {}",
            l.started_at,
            l.start.actor,
            l.last_status(),
            left.join("; ")
        ),
        format!("finish it first: continue it with `runbook resume {id}`, undo it with `runbook rollback {id}`, or, when it can do neither, end it with `runbook abandon {id} --reason TEXT`"),
    ))
}

/// What `runbook abandon` did.
pub struct AbandonReport {
    pub abandoned: Abandoned,
    /// Why the run's journal cannot be read, when it cannot: it was left as it is, and the
    /// run ended in the audit log alone.
    pub damaged: Option<String>,
}

/// Ends a run whose journal cannot be read. Nothing can be appended after the damage that
/// a reader would reach, and the journal is evidence: it is left exactly as it is. The
/// audit log records the abandonment with the SHA-256 of the journal's bytes
/// (`audit::SetAside`); the search for unfinished runs passes over that journal while it
/// keeps those bytes (a rollback of an earlier run still counts it: what it did is
/// unknown). The run's lock is taken first, as a resume takes it: the rotation's when the
/// readable part names it, else the lock whose holder names the run.
fn abandon_damaged(
    w: Wiring,
    damaged: crate::ledger::Unreadable,
    reason: String,
    as_damaged: bool,
) -> Result<AbandonReport> {
    let run_id = damaged.run_id.clone();
    // Not damaged: what its run did is written in records this version cannot read, and
    // abandoning it here would say nothing true of what it left in place. Unless told: a
    // version field a flipped bit raised, or a row anyone appended, would else block the
    // rotation until a release that does not exist.
    if let (Error::JournalNewer { .. }, false) = (&damaged.error, as_damaged) {
        return Err(Error::usage(
            format!("run {run_id}: {}", damaged.error),
            format!("abandon it with the version that wrote it (or a later one), which can say what it left in place; if no newer version wrote it (the record is damaged), `runbook abandon {run_id} --reason TEXT --as-damaged` ends it with its records unread"),
        ));
    }
    let Some(sha256) = damaged.sha256.clone() else {
        return Err(Error::usage(
            format!("run {run_id}'s journal cannot be read at all: {}", damaged.error),
            format!(
                "nothing can say which journal was abandoned: make it readable, or take it out of {} by hand, keeping a copy, then start again",
                w.store.runs_where()
            ),
        ));
    };
    let start = damaged.start.as_ref();
    let target = start.map_or(Target::Production, |l| l.start.target);
    let info = RunInfo {
        run_id: run_id.clone(),
        actor: w.actor.clone(),
        // Unknown stays empty: a name here would later be read as the run's runbook.
        runbook_id: damaged.runbook.clone().unwrap_or_default(),
        modes: Modes {
            target,
            effect: run::Effect::Apply,
            entry: Entry::Abandon,
        },
    };
    let say = Say::new(w.sink.clone(), &run_id);
    let already = |journals: &crate::ledger::Journals| {
        journals
            .set_aside(&run_id)
            .filter(|b| b.holds(Some(&sha256)))
            .map(|by| {
                Error::usage(
                    format!(
                        "run {run_id} was abandoned already, its journal as it is, by {} at {} ({})",
                        by.actor,
                        by.time,
                        crate::text::truncate(&by.reason, 200)
                    ),
                    "nothing to do: its journal has not changed since; it blocks no new rotation",
                )
            })
    };
    // Before the lock: a new run of the rotation may hold it now, and asking again must
    // not end in breaking that run's lock.
    if let Some(done) = already(&crate::ledger::Journals::new(&w.store)) {
        return Err(done);
    }
    let webhook = webhook(w.webhook, &w.services);
    let auditor = Auditor::new(AuditLog::new(&w.store), info, say.clone(), webhook);
    // Its lock: the rotation's when the readable part names it, or else any lock that
    // names this run. Taken as a resume would (refused while the run's process still holds
    // it, taken over from a process that is gone, or broken with --break-lock), so the
    // run is not abandoned under a process still writing it.
    let name = match start.and_then(|l| l.start.rotation.clone()) {
        Some(key) => Some(super::lock::lock_name(&key, target)),
        None => super::lock::holders(&w.store)?
            .into_iter()
            .find(|h| h.run_id == run_id)
            .map(|h| h.lock),
    };
    let lock = match &name {
        Some(name) => Some(Lock::acquire(
            &w.store,
            name,
            &run_id,
            &w.actor,
            &w.break_lock,
            &say,
        )?),
        None => None,
    };
    // A taking is audited at once, whatever comes next.
    if let Some(holder) = lock.as_ref().and_then(|l| l.broken()) {
        let holder = serde_json::to_value(holder).unwrap_or_default();
        auditor.entry("", AuditEvent::LockBroken { holder })?;
    }
    // Read again under the lock: the hash recorded is that of the bytes abandoned.
    let journals = crate::ledger::Journals::new(&w.store);
    let now = journals.read(run_id.clone())?;
    if !matches!(&now, Some(Err(u)) if u.sha256.as_deref() == Some(sha256.as_str())) {
        return Err(Error::usage(
            format!("run {run_id}'s journal changed while it was being abandoned: something may still be writing it"),
            format!(
                "read it again by hand ({}), and abandon the run again if it is still over",
                w.store.journal_where(&run_id)
            ),
        ));
    }
    // Again under the lock: two operators abandoning at once (when a lock was found)
    // record it once.
    if let Some(done) = already(&journals) {
        return Err(done);
    }
    if lock.is_none() {
        say.warning(format!(
            "warning: no lock names run {run_id} and its journal cannot say which rotation it is: if a process of it still runs somewhere, its next record changes the journal, and the run blocks again"
        ));
    }
    // As the readable abandon lists them: the changes in effect and the change requests an
    // unfinished undo filed, an open one said first.
    let left: Vec<LeftInPlace> = start
        .map(|l| {
            let (changes, requests) = (l.changes(), l.undo_requests());
            changes
                .iter()
                .chain(requests.iter().copied())
                .map(|w| left_in_place(w, cleanup(None, w)))
                .collect()
        })
        .unwrap_or_default();
    let damage = damage_of(&damaged.error);
    auditor.entry(
        "",
        AuditEvent::RunAbandoned {
            reason: reason.clone(),
            left: left
                .iter()
                .map(|l| format!("{} on {}", l.function, l.target))
                .collect(),
            journal: Some(crate::audit::SetAside {
                damage: damage.clone(),
                sha256,
            }),
        },
    )?;
    auditor.settle(w.store.wait());
    drop(lock);
    Ok(AbandonReport {
        abandoned: Abandoned {
            actor: w.actor,
            reason,
            left,
        },
        damaged: Some(damage),
    })
}

/// What is wrong with a journal, as the audit log keeps it: where, and which kind of
/// damage, never the words of the line (a hand-edited line may hold anything, and the
/// entry goes to the audit log and its webhook; a parser's message quotes values).
fn damage_of(error: &Error) -> String {
    match error {
        Error::JournalDamaged { line, reason, .. } => {
            let kind = if reason.starts_with("not a JSON record") {
                "not a JSON record"
            } else if reason.contains("another version") {
                "written by another version of runbook"
            } else if reason.starts_with("no run_started record") {
                "no run_started record"
            } else if reason.starts_with("it holds no whole record") {
                "no whole record"
            } else {
                "not an event this version reads"
            };
            format!("damaged at line {line}: {kind}")
        }
        Error::JournalNewer { line, .. } => {
            format!("unread at line {line}: a record of a newer format")
        }
        Error::NotUtf8 { .. } | Error::StateNotText { .. } => "not text (not UTF-8)".into(),
        _ => "cannot be read".into(),
    }
}

/// The audit webhook, its URL (which chat webhooks make a secret) registered so no output
/// shows it.
fn webhook(url: Option<String>, services: &Rc<Services>) -> Option<Webhook> {
    url.map(|url| {
        runbook_secret::register(&url);
        Webhook {
            url,
            services: services.clone(),
        }
    })
}

/// A change an abandoned run leaves in the world, with how to clean it up when known.
fn left_in_place(w: &crate::ledger::Write, cleanup: Option<String>) -> LeftInPlace {
    LeftInPlace {
        step: w.step.clone(),
        function: w.function.clone(),
        target: w.target.clone(),
        detail: w.detail.clone(),
        cleanup,
    }
}

/// How to clean up by hand a change an abandoned run leaves, as far as its step says.
fn cleanup(plan: Option<&crate::plan::Plan>, w: &crate::ledger::Write) -> Option<String> {
    // A change request still open takes effect when an approver merges it, even after the
    // run ended: it is the first thing to close.
    if w.outcome == crate::events::WriteOutcome::Pending {
        let request = w.filed.as_ref().map_or("(no id)", |f| f.slug.as_str());
        return Some(format!(
            "change request {request} is still open: close it in Infisical (the project's Secret Approvals) before anything else, or an approver merging it applies this write"
        ));
    }
    if w.is_cleanup() {
        return Some("a cleanup (a leftover removed): nothing to restore".into());
    }
    // Without the runbook (a journal that cannot say which), nothing more is known.
    let plan = plan?;
    let step = plan.step(&w.step)?;
    if let Some(why) = &step.no_undo {
        return Some(format!("nothing to restore: {why}"));
    }
    if step.irreversible.is_some() {
        return None;
    }
    step.undo.as_ref().map(|_| {
        format!(
            "not undone: do by hand what step '{}''s undo does in {}, or leave it on purpose",
            step.id,
            plan.meta().id
        )
    })
}

/// The indexes of the plan's steps the ledger says completed.
fn completed_steps(plan: &crate::plan::Plan, state: &Ledger) -> Vec<usize> {
    plan.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| state.completed(&s.id))
        .map(|(i, _)| i)
        .collect()
}

/// A later run that replaced `state`'s values, or may have: one that rotated the same
/// secret, or one whose journal cannot be read and may be of the same rotation.
enum Later {
    Run(Box<Ledger>),
    /// And how `runbook abandon` set it aside, if it did.
    Unreadable(
        Box<crate::ledger::Unreadable>,
        Option<crate::audit::SetAsideBy>,
    ),
}

/// The lock's write fence, and the journal's: a write already on its way (a fan-out target
/// waiting for a vendor's pool) is not sent while the journal refuses records. Before, it
/// went out seconds after the run knew it could not record (fail-closed review); its own
/// line was durable, but the run kept writing when it could not record what it did.
fn journal_fence(
    journal: &LedgerWriter,
    lock: runbook_vendors::WriteFence,
) -> runbook_vendors::WriteFence {
    let unrecorded = journal.unrecorded_flag();
    Box::new(move || {
        if unrecorded.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(
                "this run cannot record what it does now (its journal refuses records): nothing more is sent until it takes them again"
                    .into(),
            );
        }
        lock()
    })
}

/// The later run that superseded `state`'s, for a resume, a rollback or the REPL attached
/// to it (whose `:run` and `:undo` write as they do). Asked under the rotation's lock: no
/// later run of it can start while it is looked for.
fn superseding(store: &Store, entry: Entry, state: &Ledger) -> Result<Option<Later>> {
    if !matches!(entry, Entry::Resume | Entry::Rollback | Entry::Repl) {
        return Ok(None);
    }
    let journals = crate::ledger::Journals::new(store);
    let (later, unreadable) = crate::ledger::after(&journals, &state.run_id)?;
    if let Some(l) = crate::ledger::superseded_by(&later, state) {
        return Ok(Some(Later::Run(Box::new(l.clone()))));
    }
    // Set aside by `runbook abandon` or not: what that run did is unknown (it may have
    // succeeded before the damage), so it counts as a run with its changes in effect, as
    // an abandoned run whose journal reads does. The refusal says who abandoned it.
    for u in unreadable {
        if crate::ledger::may_supersede(&u, state) {
            let by = journals
                .set_aside(&u.run_id)
                .filter(|s| s.holds(u.sha256.as_deref()))
                .cloned();
            return Ok(Some(Later::Unreadable(Box::new(u), by)));
        }
    }
    Ok(None)
}

impl Session {
    /// A run a later rotation superseded (or may have: its journal cannot be read) is
    /// refused (the lock is released, nothing is recorded), unless `force` and the operator
    /// types this run's id back.
    fn accept_superseded(&self, later: &Later, entry: Entry, force: bool) -> Result<()> {
        let id = self.run_id();
        let what = match entry {
            Entry::Resume => "resuming it would write its values over what that run put in place",
            Entry::Repl => {
                "writing from it at the REPL would put back or over what that run put in place"
            }
            _ => "rolling it back would put back what that run replaced",
        };
        let (why, look) = match later {
            Later::Run(later) => (
                format!(
                    "run {id} is superseded by run {} (started {} by {}), which rotated the same secret after it: {what}",
                    later.run_id, later.started_at, later.start.actor
                ),
                format!("look at `runbook runs {}` first", later.run_id),
            ),
            Later::Unreadable(u, by) => {
                let who = u
                    .start
                    .as_ref()
                    .map(|l| format!(" (started {} by {})", l.started_at, l.start.actor))
                    .unwrap_or_default();
                let abandoned = by
                    .as_ref()
                    .map(|b| {
                        format!(
                            "; {} abandoned it as it is at {} ({})",
                            b.actor,
                            b.time,
                            crate::text::truncate(&b.reason, 120)
                        )
                    })
                    .unwrap_or_default();
                (
                    format!(
                        "run {id} may be superseded: the journal of a later run, {}{who}, cannot be read ({}){abandoned}, and that run may have rotated the same secret after it: {what}",
                        u.run_id, u.error
                    ),
                    "read that journal by hand (one JSON record per line) and check the vendors first".to_string(),
                )
            }
        };
        let verb = match entry {
            Entry::Repl => "attach to",
            other => other.as_str(),
        };
        if !force {
            return Err(Error::usage(
                why,
                format!("{look}; to {verb} run {id} anyway, pass --force and type its id back"),
            ));
        }
        self.run.say().warning(format!("warning: {why}"));
        let question = format!("Type this run's id ({id}) to {verb} it anyway");
        let typed = self
            .run
            .operator()
            .ask(&format!("{}.superseded", entry.as_str()), &question, None)
            .map_err(|e| Error::usage(format!("not done: {e}"), "answer with the run id"))?;
        if typed.trim() != id {
            return Err(Error::usage(
                format!("not done: the run id was not typed back (run {id} is superseded)"),
                "type the run id exactly, or leave the run as it is",
            ));
        }
        Ok(())
    }

    /// `runbook abandon`: ends a stopped run that can neither resume nor roll back. Takes
    /// its lock (refused while another process holds it), records what stays in the world,
    /// audits it, ends the run and releases the lock. Nothing at a vendor changes.
    ///
    /// A run whose journal cannot be read is ended in the audit log alone (`abandon_damaged`).
    pub fn abandon(a: Abandon) -> Result<AbandonReport> {
        let reason = a.reason.trim().to_string();
        if reason.is_empty() {
            return Err(Error::usage(
                "abandon needs a reason",
                "say why in --reason TEXT: it goes to the journal, the audit log and the evidence",
            ));
        }
        if run::is_run_id(&a.run_id) {
            if let Some(Err(damaged)) =
                crate::ledger::Journals::new(&a.wiring.store).read(a.run_id.clone())?
            {
                return abandon_damaged(a.wiring, damaged, reason, a.as_damaged);
            }
        }
        let mut r = Session::reopen(Reopen {
            wiring: a.wiring,
            run_id: a.run_id,
            entry: Entry::Abandon,
            force: false,
            vet: None,
        })?;
        let run = r.session.run();
        // A change request an unfinished undo filed applies if merged: it is left too.
        let (changes, requests) = (r.state.changes(), r.state.undo_requests());
        let left: Vec<LeftInPlace> = changes
            .iter()
            .chain(requests.iter().copied())
            .map(|w| left_in_place(w, cleanup(Some(r.session.runbook().plan()), w)))
            .collect();
        let abandoned = Abandoned {
            actor: run.info().actor.clone(),
            reason: reason.clone(),
            left,
        };
        run.ledger().required(Event::Abandoned(abandoned.clone()))?;
        // The end is journalled, durably, before its audit entry, which then names it (an
        // entry names only a durable line); the entries before it are durable first.
        let _ = run.auditor().before_write();
        run.ledger().record(Event::RunFinished(RunFinished {
            status: RunStatus::Aborted,
            error: Some(format!("abandoned: {reason}")),
            duration_ms: None,
            rate_limit_wait_ms: None,
            audit_head: run.auditor().durable_head(),
        }));
        run.ledger().settle();
        run.auditor().note(
            "",
            AuditEvent::RunAbandoned {
                reason: reason.clone(),
                left: abandoned
                    .left
                    .iter()
                    .map(|l| format!("{} on {}", l.function, l.target))
                    .collect(),
                journal: None,
            },
        );
        run.ledger().settle();
        run.auditor().settle(run.parts().store.wait());
        r.session.release_lock();
        Ok(AbandonReport {
            abandoned,
            damaged: None,
        })
    }

    /// Starts a new run of `runbook`: takes the lock (not for a dry run, which changes
    /// nothing), records the start and attaches the run to the engine.
    pub fn start(runbook: Runbook, new: NewRun) -> Result<Session> {
        let w = new.wiring;
        crate::store::load_fingerprint_key(&w.store)?;
        let info = RunInfo {
            run_id: run::new_run_id(),
            actor: w.actor.clone(),
            runbook_id: runbook.plan().meta().id.clone(),
            modes: new.modes,
        };
        let say = Say::new(w.sink.clone(), &info.run_id);
        let ctx = Ctx::new(new.params);
        // A dry run changes nothing; a REPL session runs single steps by hand.
        let rotation = (!new.modes.is_dry_run() && new.modes.entry != Entry::Repl)
            .then(|| super::lock::key(runbook.plan(), &ctx.snapshot()["params"]));
        // A new run of a rotation with an unfinished run is refused (under the lock, below):
        // asked to break the lock, it is refused before breaking it. Breaking it first
        // stopped the live holder for nothing, and the refusal left no record of who broke it.
        if let Some(key) = &rotation {
            if w.break_lock != super::lock::BreakLock::No && new.modes.target != Target::Sandbox {
                refuse_unfinished(&w.store, &runbook, key, new.modes.target)?;
            }
        }
        let lock = match &rotation {
            None => None,
            Some(key) => {
                let lock = Lock::acquire(
                    &w.store,
                    &super::lock::lock_name(key, new.modes.target),
                    &info.run_id,
                    &info.actor,
                    &w.break_lock,
                    &say,
                )?;
                if new.modes.target != Target::Sandbox {
                    refuse_unfinished(&w.store, &runbook, key, new.modes.target)?;
                }
                Some(lock)
            }
        };
        let environment = environment(&runbook, &w.services);
        let ledger = Rc::new(LedgerWriter::new(&w.store, say.clone()));
        if let Some(lock) = &lock {
            ledger.fence(lock.fence());
        }
        let policy = Policy::of(runbook.plan(), &ctx.snapshot()["params"]);
        let run = context(w, info, ledger, say, policy);
        if let Some(lock) = &lock {
            run.services()
                .fence_writes(journal_fence(run.ledger(), lock.write_fence()));
        }
        // A REPL session takes no lock; its writes say when a run holds its rotation's.
        if new.modes.entry == Entry::Repl && !runbook.plan().steps.is_empty() {
            let key = super::lock::key(runbook.plan(), &ctx.snapshot()["params"]);
            run.scope()
                .set_rotation(Some(super::lock::lock_name(&key, new.modes.target)));
        }
        let session = Session::attach(runbook, run, ctx, lock);
        let info = session.run.info();
        session
            .run
            .ledger()
            .required(Event::RunStarted(RunStarted {
                runbook: info.runbook_id.clone(),
                source: resume::fingerprints(&session.runbook),
                params: session.ctx.snapshot()["params"].clone(),
                actor: info.actor.clone(),
                host: run::hostname(),
                pid: std::process::id(),
                target: info.modes.target,
                effect: info.modes.effect,
                entry: info.modes.entry,
                rotation,
                environment: Some(environment),
                login: session.run.parts().store.authenticated(),
            }))?;
        session.note_lock();
        Ok(session)
    }

    /// Reopens a stopped run from its ledger: reloads its runbook (refusing a changed one
    /// unless forced), takes its lock, restores `ctx` (secrets supplied again and checked by
    /// fingerprint) and says which steps completed.
    pub fn reopen(r: Reopen) -> Result<Reopened> {
        let w = r.wiring;
        crate::store::load_fingerprint_key(&w.store)?;
        let (_, state) = crate::ledger::open(&w.store, &r.run_id)?;
        refuse_reopening(&state, &r.run_id, r.entry)?;
        let start = &state.start;
        let file = crate::runbook::SourceFile::read(Path::new(&start.source.path))?;
        let runbook = Runbook::load(file)?;
        if let Some(vet) = &r.vet {
            vet(&runbook)?;
        }
        // Ending a run changes nothing it would run: a changed runbook does not matter there.
        if r.entry != Entry::Abandon {
            resume::check_unchanged(
                start,
                &runbook,
                r.force,
                &Say::new(w.sink.clone(), &r.run_id),
            )?;
        }
        let info = RunInfo {
            run_id: r.run_id.clone(),
            actor: w.actor.clone(),
            runbook_id: runbook.plan().meta().id.clone(),
            modes: Modes {
                target: start.target,
                effect: start.effect,
                entry: r.entry,
            },
        };
        let say = Say::new(w.sink.clone(), &info.run_id);
        if r.entry != Entry::Abandon {
            same_vendors(&r.run_id, &state, &runbook, &w.services, r.force, &say)?;
        }
        let key = super::lock::key(runbook.plan(), &start.params);
        let name = super::lock::lock_name(&key, start.target);
        crate::hooks::pause_point("reopen");
        let lock = Lock::acquire(&w.store, &name, &r.run_id, &info.actor, &w.break_lock, &say)?;
        // Read again under the lock: another resume or rollback may have ended between the
        // first read and the lock's taking, and this one must start from where it left off
        // (a run it finished is not run again, nor rolled back from its last step).
        let (_, state) = crate::ledger::open(&w.store, &r.run_id)?;
        refuse_reopening(&state, &r.run_id, r.entry)?;
        let journal = w.store.journal(&r.run_id)?.unwrap_or_default();
        if r.entry != Entry::Abandon {
            agrees_with_the_audit_log(&w.store, &r.run_id, &journal)?;
        }
        let later = superseding(&w.store, r.entry, &state)?;
        let tip = crate::ledger::tip_of(&journal);
        let ledger = Rc::new(LedgerWriter::reopened(
            &w.store,
            say.clone(),
            state.clone(),
            tip,
        ));
        ledger.fence(lock.fence());
        let policy = Policy::of(runbook.plan(), &start.params);
        let actor = w.actor.clone();
        let run = context(w, info, ledger, say, policy);
        run.services()
            .fence_writes(journal_fence(run.ledger(), lock.write_fence()));
        let mut session = Session::attach(runbook, run, Ctx::default(), Some(lock));
        if let Some(later) = later {
            session.accept_superseded(&later, r.entry, r.force)?;
        }
        session
            .run
            .ledger()
            .required(Event::RunResumed(RunResumed {
                actor,
                host: run::hostname(),
                pid: std::process::id(),
                entry: r.entry,
                login: session.run.parts().store.authenticated(),
            }))?;
        session.note_lock();
        // An abandon runs nothing: it asks for no secret. A rollback asks once it knows it
        // will undo something (`resume::rollback`).
        if r.entry != Entry::Abandon {
            let ask = r.entry != Entry::Rollback;
            match resume::restore_ctx(&session, &state, ask) {
                Ok(ctx) => session.ctx = ctx,
                Err(e) => return Err(resume::ended_without_values(&mut session, e)),
            }
        }
        let completed = completed_steps(session.runbook.plan(), &state);
        Ok(Reopened {
            session,
            state,
            completed,
        })
    }

    /// A runbook attached to an existing run (the REPL loads runbooks into its session).
    pub fn attach(
        mut runbook: Runbook,
        run: Rc<RunContext>,
        ctx: Ctx,
        lock: Option<Lock>,
    ) -> Session {
        runbook.attach(Stage::Running(run.clone()));
        Session {
            runbook,
            run,
            ctx,
            lock,
        }
    }

    /// Records the lease this run took, and the holder it broke, if it broke one.
    fn note_lock(&self) {
        let Some(lock) = &self.lock else {
            return;
        };
        self.run.ledger().record(Event::LeaseTaken(LeaseTaken {
            key: lock.key().to_string(),
            lease_id: lock.lease_id().to_string(),
        }));
        let Some(holder) = lock.broken() else {
            return;
        };
        // Said, not only audited (team review: a resume took the lock of a live process
        // whose lease ran out in a database outage, and the operator's screen said nothing).
        // A crashed process of this same run, found gone, is what every resume takes over.
        if let Some(h) = holder {
            let mine = h.run_id == self.run.info().run_id;
            let whose = if mine {
                format!(
                    "this run's earlier process (pid {} on {}, {})",
                    h.pid, h.host, h.actor
                )
            } else {
                format!(
                    "run {} (pid {} on {}, {})",
                    h.run_id, h.pid, h.host, h.actor
                )
            };
            if h.expired {
                self.run.say().warning(format!(
                    "took this rotation's lock from {whose}: its lease ran out{}; if that process is still alive it stops before its next write",
                    h.expires.as_deref().map(|e| format!(" at {e}")).unwrap_or_default()
                ));
            } else if !mine || !h.is_dead() {
                self.run
                    .say()
                    .warning(format!("took this rotation's lock from {whose}"));
            }
        }
        let holder = serde_json::to_value(holder).unwrap_or_default();
        self.run.ledger().record(Event::LockBroken {
            holder: holder.clone(),
        });
        self.run
            .auditor()
            .note("", crate::audit::AuditEvent::LockBroken { holder });
    }

    pub fn runbook(&self) -> &Runbook {
        &self.runbook
    }

    /// The runbook, to register the imports of REPL input (its plan stays as loaded).
    pub fn runbook_mut(&mut self) -> &mut Runbook {
        &mut self.runbook
    }

    pub fn run(&self) -> &Rc<RunContext> {
        &self.run
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The run's values, once asked for (a rollback asks only when it will undo something).
    pub(crate) fn set_ctx(&mut self, ctx: Ctx) {
        self.ctx = ctx;
    }

    pub fn run_id(&self) -> &str {
        &self.run.info().run_id
    }

    /// Why the run must stop: it lost its rotation lock to another run.
    pub fn lock_lost(&self) -> Option<String> {
        self.lock.as_ref().and_then(Lock::lost)
    }

    /// Gives up the rotation's lock before the session ends (a finished run).
    pub fn release_lock(&mut self) {
        if let Some(l) = self.lock.as_mut() {
            l.release();
        }
    }

    /// Ends the session of a process that exits next (`exec`): the run ends as when the
    /// session is dropped (the journal's and audit trail's last syncs, the runtime, the
    /// lock), but the compiled runbook, rhai's engine and syntax trees, is left to the
    /// process's exit: freeing their thousands of allocations took 1 ms of every rotation.
    /// Only when the runbook holds nothing of the run: its ends must not be skipped.
    pub fn end(self) {
        let Session {
            mut runbook,
            run,
            ctx,
            lock,
        } = self;
        runbook.attach(Stage::Inert);
        drop(ctx);
        if Rc::strong_count(&run) == 1 {
            std::mem::forget(runbook);
        } else {
            drop(runbook);
        }
        drop(run);
        drop(lock);
    }

    /// Takes the lock out of the session (the REPL keeps it across runbook loads).
    pub fn take_lock(&mut self) -> Option<Lock> {
        self.lock.take()
    }

    /// Calls a step's closure (or its undo, or a verify) in `phase` with this run's `ctx`.
    pub fn call(&self, f: &FnPtr, phase: Phase) -> Outcome {
        self.run.set_phase(phase);
        self.run.scope().reset_writes();
        match self.runbook.call::<Dynamic>(f, self.ctx.clone()) {
            Ok(_) => Outcome::Done,
            Err(e) => self.outcome_of(&e),
        }
    }

    /// Calls a closure that answers a question (a step's verify) with this run's `ctx`.
    pub fn ask(&self, f: &FnPtr, phase: Phase) -> std::result::Result<bool, Box<ScriptError>> {
        self.run.set_phase(phase);
        self.runbook
            .call::<bool>(f, self.ctx.clone())
            .map_err(|e| Box::new(ScriptError::from_eval(&e, self.runbook.sources())))
    }

    /// Calls a closure that returns a value (a `recover`) with `ctx`.
    pub(crate) fn value_of(
        &self,
        f: &FnPtr,
        ctx: &Ctx,
        phase: Phase,
    ) -> std::result::Result<Dynamic, Box<ScriptError>> {
        self.run.set_phase(phase);
        let got = self.runbook.call::<Dynamic>(f, ctx.clone());
        self.run.set_phase(Phase::Idle);
        got.map_err(|e| Box::new(ScriptError::from_eval(&e, self.runbook.sources())))
    }

    fn outcome_of(&self, e: &EvalAltResult) -> Outcome {
        match termination(e).as_deref() {
            Some(ABORTED) => Outcome::Aborted,
            Some(INTERRUPTED) => Outcome::Interrupted,
            Some(t) if t.starts_with(crate::interrupt::FENCED) => {
                Outcome::Fenced(t[crate::interrupt::FENCED.len()..].to_string())
            }
            _ if crate::interrupt::is_set() => Outcome::Interrupted,
            _ => Outcome::Failed(Box::new(ScriptError::from_eval(e, self.runbook.sources()))),
        }
    }
}

/// The token of a termination (abort, Ctrl-C), however deep in calls it happened.
fn termination(err: &EvalAltResult) -> Option<String> {
    match err {
        EvalAltResult::ErrorTerminated(token, _) => Some(token.to_string()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => termination(inner),
        _ => None,
    }
}

/// Why a stopped run cannot be reopened for `entry`, if it cannot.
/// A journal the audit log shows cut back or rewritten is not acted on: a resume or a
/// rollback would redo or undo from a history that is not the run's (a fault review: a
/// journal cut after `generate` was resumed, generated a third token, then "rolled back").
/// An abandon still ends it: that is the way out once the vendors are put right by hand.
fn agrees_with_the_audit_log(store: &Store, run_id: &str, text: &str) -> Result<()> {
    let entries = AuditLog::new(store).entries_of(run_id)?;
    let of_run: Vec<&crate::audit::AuditEntry> = entries.iter().collect();
    let since = entries.first().map(|e| e.time.clone()).unwrap_or_default();
    crate::ledger::chain::check_journal_at(text, &of_run).map_err(|(line, reason)| {
        // The line that broke; a link past the end, the journal's last line.
        let last = text.lines().filter(|l| !l.trim().is_empty()).count();
        Error::JournalDamaged {
            path: store.journal_where(run_id).into(),
            line: line.map_or(last, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            reason: format!(
                "{reason}; the audit log says what the run did: `runbook audit show --since {since}`"
            ),
        }
    })
}

fn refuse_reopening(state: &Ledger, run_id: &str, entry: Entry) -> Result<()> {
    let what = entry.as_str();
    if state.start.effect == crate::run::Effect::DryRun {
        return Err(Error::usage(
            format!("run {run_id} was a dry run: there is nothing to {what}"),
            "start a real run with `runbook exec`",
        ));
    }
    if state.start.target == Target::Sandbox {
        return Err(Error::usage(
            format!(
                "run {run_id} used an in-process --sandbox, whose simulated vendors ended with it"
            ),
            "rehearse crash recovery against `runbook sandbox` (a separate process) instead",
        ));
    }
    if state.start.entry == Entry::Repl && entry == Entry::Resume {
        return Err(Error::usage(
            format!(
                "run {run_id} is a REPL session: `resume` continues only a rotation started with `runbook exec`"
            ),
            format!(
                "to go on where the session stopped, `runbook repl --attach {run_id}`; to rotate, `runbook exec`"
            ),
        ));
    }
    if let (Some(_), Entry::Abandon) = (&state.abandoned, entry) {
        return Err(Error::usage(
            format!("run {run_id} was already abandoned"),
            "start a new rotation with `runbook exec`",
        ));
    }
    if let Some(a) = &state.abandoned {
        return Err(Error::usage(
            format!(
                "run {run_id} was abandoned by {} ({}): it is ended, neither resumed nor rolled back",
                a.actor, a.reason
            ),
            "what it left in place is listed by `runbook runs RUN_ID` and its evidence; start a new rotation with `runbook exec`",
        ));
    }
    match state.settled() {
        Some(RunStatus::Succeeded) if entry != Entry::Rollback => Err(Error::usage(
            format!(
                "run {run_id} already succeeded: nothing to {}",
                if entry == Entry::Abandon {
                    "abandon"
                } else {
                    "resume"
                }
            ),
            "start a new rotation with `runbook exec`",
        )),
        Some(RunStatus::RolledBack | RunStatus::PartlyRolledBack) => Err(Error::usage(
            format!("run {run_id} was already rolled back"),
            "start a new rotation with `runbook exec`",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Effect, Entry, Modes, Target};

    /// A run's start is durable before anything else of it; `end` may leave the compiled
    /// runbook to the process's exit, never the run: its drop makes the last records
    /// durable and stops the runtime's tasks.
    #[test]
    fn a_session_starts_durably_and_ends_letting_the_run_go() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("one.rhai"),
            "runbook(#{ id: \"one\", title: \"One\" });\nstep(\"a\", \"A\", |ctx| {});\n",
        )
        .unwrap();
        let file = crate::runbook::SourceFile::read(&dir.path().join("one.rhai")).unwrap();
        let runbook = Runbook::load(file).unwrap();
        let sink: crate::sink::SinkRef = std::sync::Arc::new(crate::sink::Quiet);
        let state = dir.path().join("state");
        let files = crate::store::Files::new(&state, Say::outside(sink.clone()));
        let trace = files.trace.clone();
        let store: Store = std::sync::Arc::new(files);
        let session = Session::start(
            runbook,
            NewRun {
                wiring: Wiring {
                    store,
                    actor: "tester".into(),
                    services: Rc::new(crate::host::Services::new(
                        crate::runtime::Runtime::new().unwrap(),
                        Default::default(),
                        None,
                    )),
                    prompter: crate::prompt::Prompter::new(Default::default(), true, None),
                    sink,
                    webhook: None,
                    break_lock: Default::default(),
                },
                modes: Modes {
                    target: Target::Sandbox,
                    effect: Effect::Apply,
                    entry: Entry::Exec,
                },
                params: rhai::Map::new(),
            },
        )
        .unwrap();
        // The start is durable at once: the run's audit entries, in a log other runs sync,
        // will name it.
        let traced = trace.lock().unwrap().clone();
        assert_eq!(
            traced[..2],
            ["journal line", "journal sync"],
            "the run's first record, made durable"
        );
        // The engine holds the run while it runs.
        assert!(Rc::strong_count(session.run()) > 1);
        let run = Rc::downgrade(session.run());
        session.end();
        assert!(run.upgrade().is_none(), "the run outlived its session");
    }
}
