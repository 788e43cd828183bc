//! Picking a run up from its journal: is the runbook unchanged, what `ctx` held (secrets
//! supplied again and checked by fingerprint), where to continue, and the resume and
//! rollback flows themselves.

use super::report::Report;
use super::runner::{self, Start};
use super::session::{Reopened, Session};
use super::step::{self, Settle};
use super::Options;
use crate::error::{Error, Result};
use crate::events::{ModuleHash, RunStarted, SourceHashes};
use crate::host::Phase;
use crate::ledger::{Ledger, StepState};
use crate::runbook::Runbook;
use crate::sink::Say;
use crate::value::{self, Ctx};
use rhai::{Dynamic, Map};
use runbook_secret::{Secret, Source};
use serde_json::Value;

pub fn sha256(text: &str) -> String {
    crate::text::sha256_hex(text.as_bytes())
}

/// The runbook and every module it imported, with their hashes, for `run.start`.
pub(crate) fn fingerprints(runbook: &Runbook) -> SourceHashes {
    let modules = runbook
        .sources()
        .modules()
        .iter()
        .map(|(name, text)| ModuleHash {
            name: name.clone(),
            sha256: sha256(text),
        })
        .collect();
    let path = &runbook.file().path;
    SourceHashes {
        path: std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string(),
        sha256: sha256(&runbook.file().text),
        modules,
    }
}

/// Refuses a runbook whose text (or an imported module) changed since the run, unless
/// `force`, which says what changed.
pub(crate) fn check_unchanged(
    start: &RunStarted,
    runbook: &Runbook,
    force: bool,
    say: &Say,
) -> Result<()> {
    let now = fingerprints(runbook);
    let mut changes = Vec::new();
    if start.source.sha256 != now.sha256 {
        changes.push(format!("{} changed", runbook.file().name));
    }
    for m in &now.modules {
        match start.source.modules.iter().find(|b| b.name == m.name) {
            Some(b) if b.sha256 == m.sha256 => {}
            Some(_) => changes.push(format!("module {} changed", m.name)),
            None => changes.push(format!("module {} is new", m.name)),
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    if force {
        say.warning(format!(
            "warning: resuming with a changed runbook (--force): {}",
            changes.join("; ")
        ));
        return Ok(());
    }
    Err(Error::RunbookChanged {
        changes: changes.join("; "),
    })
}

/// A journalled secret: `{"secret": fingerprint, "source": ..., "masked": "secret(…9c82)"}`.
struct SecretRef {
    fingerprint: String,
    source: Source,
    /// What the operator saw of it (journals before masks were recorded have none).
    masked: Option<String>,
}

fn as_secret_ref(v: &Value) -> Option<SecretRef> {
    let fingerprint = v.get("secret")?.as_str()?.to_string();
    let source = serde_json::from_value(v.get("source")?.clone()).unwrap_or(Source::Literal);
    let masked = v.get("masked").and_then(Value::as_str).map(str::to_string);
    Some(SecretRef {
        fingerprint,
        source,
        masked,
    })
}

/// Rebuilds `ctx` from the journal's last snapshot (or the start's params). `ask`: the
/// Secrets it holds are asked for (or recovered); without, they stay their journal form
/// (`#{secret: "hmac:..."}`), for a rollback that may stop before it needs any.
pub(crate) fn restore_ctx(session: &Session, state: &Ledger, ask: bool) -> Result<Ctx> {
    let snapshot = state
        .ctx
        .clone()
        .unwrap_or_else(|| serde_json::json!({ "params": state.start.params }));
    let ctx = Ctx::default();
    let Value::Object(fields) = snapshot else {
        return Ok(ctx);
    };
    // Plain values first: recovery closures read them (versions, names).
    let mut secrets = Vec::new();
    // Every value nobody here can give is named at once: once a run, not one per attempt
    // (author review: each resume failed on the next key). Only a missing answer is
    // collected: a value given that is not the run's is its own error.
    let mut missing: Vec<(String, SecretRef, Error)> = Vec::new();
    let mut take = |key: &str, r: SecretRef, got: Result<Secret>| match got {
        Ok(s) => Ok(Some(s)),
        Err(e @ Error::SecretMismatch { .. }) => Err(e),
        Err(e) if unanswerable(session, key, &r) => {
            missing.push((key.to_string(), r, e));
            Ok(None)
        }
        Err(e) => Err(e),
    };
    for (k, v) in &fields {
        if k == "params" {
            let mut params = Map::new();
            if let Value::Object(p) = v {
                for (pk, pv) in p {
                    match as_secret_ref(pv).filter(|_| ask) {
                        Some(r) => {
                            let key = format!("params.{pk}");
                            let got = supply(session, &ctx, &key, &r);
                            if let Some(s) = take(&key, r, got)? {
                                params.insert(pk.as_str().into(), Dynamic::from(s));
                            }
                        }
                        None => {
                            params.insert(pk.as_str().into(), value::from_journal_json(pv));
                        }
                    };
                }
            }
            ctx.set("params", params.into());
        } else if let Some(r) = as_secret_ref(v).filter(|_| ask) {
            secrets.push((k.clone(), r));
        } else {
            ctx.set(k, value::from_journal_json(v));
        }
    }
    for (k, r) in secrets {
        let got = supply(session, &ctx, &k, &r);
        if let Some(s) = take(&k, r, got)? {
            ctx.set(&k, Dynamic::from(s));
        }
    }
    if missing.len() > 1 {
        let keys: Vec<String> = missing.iter().map(|(k, _, _)| format!("ctx.{k}")).collect();
        let lines: Vec<String> = missing
            .iter()
            .map(|(k, r, _)| format!("\"{}\" = \"...\"", paste_id(k, r)))
            .collect();
        return Err(Error::usage(
            format!(
                "this run holds {} values it needs back, and nothing here can give them (no terminal, no answers file entry, no recover): {}",
                missing.len(),
                keys.join(", ")
            ),
            format!(
                "give each the value the run used, in a file passed with --answers:\n{}\nor run at a terminal, which asks for each",
                lines.join("\n")
            ),
        ));
    }
    if let Some((_, _, e)) = missing.pop() {
        return Err(e);
    }
    Ok(ctx)
}

/// A process that could not get the run's values back ends here, having done nothing: its
/// end is recorded (aborted, the error said), so `runs` does not read it as interrupted
/// (author review), and the lock is released.
pub(crate) fn ended_without_values(session: &mut Session, e: Error) -> Error {
    ended(session, crate::run::RunStatus::Aborted);
    e
}

/// Records how this process ends, having run no step (refused, stopped or declined), and
/// releases the run's lock.
fn ended(session: &mut Session, status: crate::run::RunStatus) -> Report {
    let report = runner::abandoned(session, status);
    session.release_lock();
    report
}

/// Whether nobody here can give the value of ctx `key`: no terminal, and no answers file
/// entry for its question.
fn unanswerable(session: &Session, key: &str, r: &SecretRef) -> bool {
    let prompter = session.run().operator().prompter();
    let id = paste_id(key, r);
    !prompter.has_terminal() && !prompter.answered_ids().any(|a| a == id)
}

/// The id of the question that asks for ctx `key` again.
fn paste_id(key: &str, r: &SecretRef) -> String {
    match &r.source {
        Source::Prompt { id } | Source::Answers { id } => id.clone(),
        _ => format!("resume.{key}"),
    }
}

/// The error for a value that is not the one the run used.
fn mismatch(key: &str, r: &SecretRef, got: &Secret, how: &str) -> Error {
    Error::SecretMismatch {
        message: format!(
            "the value {how} for ctx.{key} is not the one this run used (expected {}, got {})",
            r.fingerprint,
            got.fingerprint()
        ),
        help: "supply the same value the run used (it was journalled only as a fingerprint); a different token would mix two rotations".into(),
    }
}

/// Gets a secret's value back: the runbook's `recover` closure, else where it came from
/// (environment, prompt/answers), else the operator. It must match the journalled
/// fingerprint.
fn supply(session: &Session, ctx: &Ctx, key: &str, r: &SecretRef) -> Result<Secret> {
    if let Some(found) = recovered(session, ctx, key, r) {
        return found;
    }
    if let Source::Env { name } = &r.source {
        if let Ok(v) = std::env::var(name) {
            let s = Secret::new(v, r.source.clone());
            return if s.matches_fingerprint(&r.fingerprint) {
                Ok(s)
            } else {
                Err(mismatch(key, r, &s, &format!("in ${name}")))
            };
        }
    }
    pasted(session, key, r)
}

/// The value the runbook's `recover` closure gets back, if it has one that answers.
fn recovered(session: &Session, ctx: &Ctx, key: &str, r: &SecretRef) -> Option<Result<Secret>> {
    let how = session.runbook().plan().recovery(key)?;
    let say = session.run().say();
    match session.value_of(how, ctx, Phase::Step(format!("recover.{key}"))) {
        Ok(v) => match v.try_cast::<Secret>() {
            Some(s) if s.matches_fingerprint(&r.fingerprint) => Some(Ok(s)),
            // Where it was kept now holds another value (removed, or written over since):
            // the operator may still have the one the run used.
            Some(s) => {
                say.warning(format!(
                    "note: recover(\"{key}\") found {}, not the value this run used ({}); asking instead",
                    s.fingerprint(),
                    r.fingerprint
                ));
                None
            }
            None => {
                say.warning(format!(
                    "warning: recover(\"{key}\") did not return a Secret; asking instead"
                ));
                None
            }
        },
        Err(e) => {
            say.warning(format!(
                "note: recover(\"{key}\") could not get the value back ({}); asking instead",
                e.message
            ));
            None
        }
    }
}

/// The value as the operator pastes it again (or the answers file gives it).
fn pasted(session: &Session, key: &str, r: &SecretRef) -> Result<Secret> {
    let source = &r.source;
    let id = paste_id(key, r);
    let ends = r
        .masked
        .as_deref()
        .and_then(|m| m.strip_prefix("secret("))
        .and_then(|m| m.strip_suffix(')'))
        .filter(|tail| tail.chars().count() > 1)
        .map(|tail| format!(", it ends {tail}"))
        .unwrap_or_default();
    let question =
        format!("Paste the value of ctx.{key} that this run used (it came from {source}{ends})");
    let operator = session.run().operator();
    // A mistyped paste gets another chance; an answers file gives the same answer each
    // time, so it gets one.
    let tries = if operator.prompter().asks_on_terminal(&id) {
        3
    } else {
        1
    };
    for left in (0..tries).rev() {
        let s = operator.secret(&id, &question).map_err(|e| {
            Error::usage(
                format!("ctx.{key} is needed to continue: {e}"),
                e.help().unwrap_or_default(),
            )
        })?;
        if s.matches_fingerprint(&r.fingerprint) {
            return Ok(s.with_source(source.clone()));
        }
        if left == 0 {
            return Err(mismatch(key, r, &s, "entered"));
        }
        session.run().say().warning(format!(
            "That is not the value this run used{ends}. Try again ({left} {} left).",
            if left == 1 { "try" } else { "tries" }
        ));
    }
    Err(Error::Internal {
        message: format!("no value was asked for ctx.{key}"),
    })
}

/// Fingerprint check used by tests and the REPL.
pub fn matches(value: &str, fp: &str) -> bool {
    runbook_secret::fingerprint_matches(value, fp)
}

/// The step a stopped run continues at, and whether its effect is in doubt: `Some(died)`
/// when the process died in it (`true`) or one of its writes lost its answer (`false`).
fn where_to_continue(r: &Reopened) -> (usize, Option<bool>) {
    let plan = r.session.runbook().plan();
    let next = (0..plan.steps.len())
        .find(|i| !r.completed.contains(i))
        .unwrap_or(plan.steps.len());
    let doubt = plan.steps.get(next).and_then(|step| {
        let died = r.state.state_of(&step.id) == Some(StepState::Started);
        let lost = r.session.run().ledger().in_doubt(&step.id);
        (died || lost).then_some(died)
    });
    (next, doubt)
}

/// The irreversible step the run is past (completed, or one of its writes took effect): a
/// rollback stops there, so a refusal does not offer one.
fn past_no_return(r: &Reopened) -> Option<String> {
    let plan = r.session.runbook().plan();
    plan.steps
        .iter()
        .enumerate()
        // As the rollback itself judges: its verify may read that it did not take effect.
        .find(|(i, s)| super::refresh::blocks(&r.session, s, r.completed.contains(i)))
        .map(|(_, s)| s.id.clone())
}

/// Ends a resume that refuses to go on, saying why and what to do: the run is recorded as
/// failed and its lock released.
fn not_resumed(r: &mut Reopened, why: [String; 2]) -> Report {
    let say = r.session.run().say();
    for line in why {
        say.warning(line);
    }
    ended(&mut r.session, crate::run::RunStatus::Failed)
}

/// Whether the operator says the targets of writes that lost their answer and hold another
/// value hold what they held before the run (`resume.rewrite`, a judgement `--yes` does not
/// give): the step then writes them again.
fn rewrite_not_shown(r: &Reopened, unsure: &str) -> bool {
    judged(
        r,
        "resume.rewrite",
        &format!(
            "These targets may have been written by this run and hold another value now: {unsure}. Is that the value from before this run (the write did not land), so that the step writes them again?"
        ),
        "  writing them again: they hold the value from before this run, as the operator said (resume.rewrite)",
    )
}

/// The operator's judgement `id` on `question`; `said` when yes. No answer is the refusal
/// the caller makes, which names the key; an answer that is not one (`= "yes"`) or Ctrl-C is
/// said, not taken for a quiet "no".
fn judged(r: &Reopened, id: &str, question: &str, said: &str) -> bool {
    let yes = match r.session.run().operator().confirm_judgement(id, question) {
        Ok(yes) => yes,
        Err(crate::prompt::PromptError::NoAnswer { .. }) => false,
        Err(e) => {
            r.session.run().say().warning(format!("  {e}"));
            false
        }
    };
    if yes {
        r.session.run().say().warning(said);
    }
    yes
}

/// Whether the operator goes on with targets that could not be read back: a judgement
/// (`resume.unread`) `--yes` does not give, for going on builds on what nobody checked.
fn go_on_unread(r: &Reopened, unread: &[String]) -> bool {
    judged(
        r,
        "resume.unread",
        &format!(
            "What the run's targets hold now could not be read: {}. Go on without checking them (the steps after may build on values someone changed)?",
            unread.join("; ")
        ),
        "  going on without reading them back, as the operator said (resume.unread)",
    )
}

/// `runbook resume`: decides where the stopped run continues (a step that died mid-way
/// is checked first), then runs the rest.
pub fn resume(r: &mut Reopened, opts: &Options) -> Result<Report> {
    let plan = r.session.runbook().plan();
    let say = r.session.run().say().clone();
    // What the run wrote must still be there: a rotation is not continued on a world
    // someone changed since (a consumer put back by hand, a later rotation).
    let done: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| super::refresh::took_effect(&r.session, &s.id))
        .map(|s| s.id.as_str())
        .collect();
    // A target whose read failed stops the resume, as it stops a rollback: the steps after
    // would build on it unchecked (revoke deleted the old value an app was put back on).
    let unread = super::refresh::refresh_targets(&r.session, &done, false);
    let id = r.session.run_id().to_string();
    if !unread.is_empty() && !go_on_unread(r, &unread) {
        // A rollback cannot pass a point of no return the run is past: not offered then.
        let back = if past_no_return(r).is_some() {
            String::new()
        } else {
            format!(", or roll back (`runbook rollback {id}`, which reads them again first)")
        };
        return Ok(not_resumed(r, [
            format!("✗ not resumed: what the run's targets hold now could not be read: {}; resuming would build on values nobody could check", unread.join("; ")),
            format!("  Nothing was written: run `runbook resume {id}` again once the vendor answers{back}; to go on without checking them, say so at a terminal or with `\"resume.unread\" = true` in an answers file (--answers FILE; --yes does not say it)."),
        ]));
    }
    if let Some(changed) = super::refresh::changed_since(&r.session) {
        // Past a point of no return a rollback is refused too: not offered (way-back
        // review: resume sent to rollback, rollback back to resume, neither to abandon).
        let next = match past_no_return(r) {
            Some(step) => format!("  A rollback is refused too (step '{step}' cannot be undone): put those values back as the run left them, then resume; or end the run with `runbook abandon {id} --reason TEXT` and finish the rotation by hand."),
            None => format!("  Roll back with `runbook rollback {id}` (it leaves what changed alone), or put those values back as the run left them, then resume."),
        };
        return Ok(not_resumed(r, [
            format!("✗ not resumed: the vendors changed since this run: {changed}; resuming would build on values that are no longer there"),
            next,
        ]));
    }
    // A write whose answer was lost and whose target holds another value: it did not land,
    // or someone changed the target since. Going on writes it again over what is there,
    // which the read-back just said it leaves alone (way-back review: a hand fix during the
    // incident overwritten, then the old key revoked). The operator, who can tell the value
    // from before the run, says which.
    if let Some(unsure) = super::refresh::not_shown(&r.session, false) {
        if !rewrite_not_shown(r, &unsure) {
            return Ok(not_resumed(r, [
                format!("✗ not resumed: a write of this run may have applied and its target holds another value now: {unsure}; either the write did not land, or someone changed it since, and going on would write it again over what it holds"),
                format!("  If that is the value from before this run (the write did not land), say so at a terminal or with `\"resume.rewrite\" = true` in an answers file (--answers FILE; --yes does not say it); if someone changed it, {}", match past_no_return(r) {
                    Some(step) => format!("put back what the run wrote, then resume, or end the run with `runbook abandon {id} --reason TEXT` and finish by hand (a rollback is refused: step '{step}' cannot be undone)."),
                    None => format!("roll back (`runbook rollback {id}`, which leaves it alone) or put back what the run wrote, then resume."),
                }),
            ]));
        }
    }
    // A rollback that stopped part way: going forward would build on a half-undone run
    // (whatever its undo could be read to have put back).
    if let Some(half) = super::refresh::half_undone(&r.session, false) {
        return Ok(not_resumed(
            r,
            [
                format!("✗ not resumed: this run's rollback stopped part way ({half})"),
                format!(
                    "  Finish it with `runbook rollback {id}` (it goes on from what it put back); if its undo cannot pass, end the run with `runbook abandon {id} --reason TEXT` and put back by hand what it could not."
                ),
            ],
        ));
    }
    let (mut next, doubt) = where_to_continue(r);
    match (plan.steps.get(next), doubt) {
        // The process died after its last step, before recording the end.
        (None, _) => say.progress("Every step had completed; recording the run as succeeded."),
        // The process died inside this step, or one of its writes lost its answer: did its
        // effect happen?
        (Some(step), Some(died)) => match step::settle(&r.session, step, died)? {
            Settle::Stop => {
                let id = r.session.run_id();
                let answers = step::rerun_answers(&r.session, step, died);
                // Past the point of no return a rollback is refused: it is not offered. The
                // step in doubt may be that point itself (its write may have applied).
                let forward_only = r
                    .completed
                    .iter()
                    .map(|i| &plan.steps[*i])
                    .rfind(|s| s.irreversible.is_some())
                    .or_else(|| super::refresh::blocks(&r.session, step, false).then_some(step));
                let otherwise = match forward_only {
                    Some(s) => format!(
                        "step '{}' cannot be undone, so the run only goes forward",
                        s.id
                    ),
                    None => format!("or undo the run with `runbook rollback {id}`"),
                };
                say.warning(format!(
                    "Stopped before step '{}': nothing was run. Check at the vendor whether it took effect, then `runbook resume {id}` and answer {}.rerun ({answers}) at a terminal or in an answers file (--answers FILE); {otherwise}.",
                    step.id, step.id
                ));
                // The operator's stop, recorded as such (not as a process that died).
                return Ok(ended(&mut r.session, crate::run::RunStatus::Aborted));
            }
            Settle::Done(by) => {
                step::settled_done(&r.session, step, by);
                r.completed.push(next);
                next += 1;
            }
            Settle::Rerun => {}
        },
        (Some(_), None) => {}
    }
    say.progress(format!(
        "Resuming at step {}/{}{}",
        next + 1,
        plan.steps.len(),
        plan.steps
            .get(next)
            .map(|s| format!(" · {}", s.id))
            .unwrap_or_default()
    ));
    let report = runner::run(&r.session, opts, Start::Resume { next });
    r.session.release_lock();
    Ok(report)
}

/// `runbook rollback`: undoes every completed step of a stopped run, newest first (and a
/// step that died mid-way, whose undo is written to be safe when it only partly happened).
pub fn rollback(r: &mut Reopened, opts: &Options) -> Result<Report> {
    // Besides the completed steps: a step that died mid-way, and a failed step that applied
    // part of its writes (a fan-out that reached one app of two), whose undos restore
    // exactly what took effect.
    let also: Vec<usize> = r
        .session
        .runbook()
        .plan()
        .steps
        .iter()
        .enumerate()
        .filter(|(i, step)| {
            !r.completed.contains(i)
                && (r.state.state_of(&step.id) == Some(StepState::Started)
                    || super::refresh::took_effect(&r.session, &step.id))
        })
        .map(|(i, _)| i)
        .collect();
    let mut undoing = r.completed.clone();
    undoing.extend(&also);
    undoing.sort();
    let say = r.session.run().say().clone();
    // What is true at the vendors first, so the operator decides on it.
    let order: Vec<usize> = undoing.iter().rev().copied().collect();
    // Past a point of no return with nothing to undo before it: said at once, before a
    // secret is asked for and an undo listed that will not run (author review).
    if let Some(step) = super::refresh::blocked_before_any_undo(&r.session, &order, &r.completed) {
        say.progress("");
        super::refresh::say_blocked(&r.session, step, false);
        return Ok(ended(&mut r.session, crate::run::RunStatus::Failed));
    }
    let ctx = restore_ctx(&r.session, &r.state, true)
        .map_err(|e| ended_without_values(&mut r.session, e))?;
    r.session.set_ctx(ctx);
    say.progress("");
    if let Err(refusal) = super::refresh::before_rollback(&r.session, &order, &r.completed) {
        super::refresh::refuse(&r.session, &refusal);
        return Ok(ended(&mut r.session, crate::run::RunStatus::Failed));
    }
    if undoing.is_empty() {
        say.progress("No step of this run completed: nothing to undo.");
    } else if !confirm_rollback(&r.session, &undoing, &r.completed) {
        say.warning(
            "Nothing was undone: the run stays as it is (`runbook rollback` again when ready).",
        );
        return Ok(ended(&mut r.session, crate::run::RunStatus::Aborted));
    }
    let report = runner::run(
        &r.session,
        opts,
        Start::Rollback {
            also,
            refreshed: true,
        },
    );
    r.session.release_lock();
    Ok(report)
}

/// What a rollback of `undoing` will undo, newest first, with the writes in effect that
/// each undo reverses; then `rollback.confirm` (`--yes` answers it). An irreversible step
/// stops it as the rollback itself judges (`refresh::blocks`): one that died before doing
/// anything does not.
fn confirm_rollback(session: &Session, undoing: &[usize], completed: &[usize]) -> bool {
    let plan = session.runbook().plan();
    let say = session.run().say();
    say.progress("");
    say.heading("Rolling back undoes, newest first:");
    for &i in undoing.iter().rev() {
        let step = &plan.steps[i];
        let (cleanups, writes): (Vec<_>, Vec<_>) = session
            .run()
            .ledger()
            .writes_of(&step.id)
            .into_iter()
            .filter(|w| w.outcome.may_have_applied())
            .partition(crate::ledger::Write::is_cleanup);
        // What the read-back just found changed since the run is not restored: said so,
        // not listed under what the undo reverses.
        let (untouched, writes): (Vec<_>, Vec<_>) =
            session.run().ledger().read((Vec::new(), Vec::new()), |l| {
                writes
                    .iter()
                    .cloned()
                    .partition(|w| l.left_alone(&w.function, &w.target))
            });
        let listed = |ws: &[crate::ledger::Write]| {
            ws.iter()
                .map(|w| format!("{} on {}", w.function, w.target))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let blocks = super::refresh::blocks(session, step, completed.contains(&i));
        let mut how = if let (Some(why), true) = (&step.irreversible, blocks) {
            format!("cannot be undone ({why}): the rollback stops there")
        } else if step.irreversible.is_some() {
            "nothing of it took effect (its journal, or its check at the vendor, says so): nothing to undo".to_string()
        } else if step.undo.is_none() {
            "no undo: nothing to restore".to_string()
        } else if writes.is_empty() && !untouched.is_empty() {
            "nothing to restore".to_string()
        } else if writes.is_empty() {
            "its undo (no write of it is recorded as in effect)".to_string()
        } else {
            format!("its undo reverses: {}", listed(&writes))
        };
        if !untouched.is_empty() {
            how.push_str(&format!(
                " · left alone (changed since the run): {}",
                listed(&untouched)
            ));
        }
        if !cleanups.is_empty() {
            how.push_str(&format!(
                " · left as they are (cleanups, nothing to restore): {}",
                listed(&cleanups)
            ));
        }
        say.progress(format!("  {} · {how}", step.id));
    }
    match session
        .run()
        .operator()
        .confirm("rollback.confirm", "Undo these now?")
    {
        Ok(yes) => yes,
        Err(e) => {
            say.warning(e.to_string());
            false
        }
    }
}
