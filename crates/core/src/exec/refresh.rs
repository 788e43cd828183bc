//! What is true at the vendors before a rollback acts: every value the runbook declares
//! that rollback restores (`restores(key, works)`) is probed, read-only. A value that no
//! longer works (deleted, revoked, expired) is never written back: the rollback restores
//! nothing and says how to go forward instead.

use super::session::Session;
use crate::events::{Event, Holds, Refreshed, WriteOutcome};
use crate::host::Phase;
use crate::plan::Step;

/// What a probe of a value rollback would restore found.
pub(crate) enum Verdict {
    Works,
    Dead,
    /// The probe could not tell (an error): treated as dead, since a rollback that
    /// cannot tell would be restoring blind. `passing`: the vendor did not answer (a
    /// timeout, no connection, a 5xx, a 429), which asking again later may mend.
    Unknown {
        why: String,
        passing: bool,
    },
}

use crate::host::PASSING;

/// Why a rollback restores nothing.
pub(crate) struct Refusal {
    pub why: String,
    pub kind: Refused,
}

/// What the probes found, for what to tell the operator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A value rollback would restore no longer works: the way is forward.
    Dead,
    /// Nothing found dead; the vendor did not answer: the same rollback, later.
    NoAnswer,
    /// Nothing found dead; the check failed for a cause that lasts (the probe's own
    /// credential refused, a probe that does not answer yes or no): fix it, then again.
    Unchecked,
}

/// A value rollback would restore, as the operator sees it, and what its probe found.
pub(crate) struct Probed {
    pub key: String,
    pub shown: String,
    pub verdict: Verdict,
}

/// Probes every declared `restores` value that `ctx` holds.
pub(crate) fn probe_restores(session: &Session) -> Vec<Probed> {
    let ctx = session.ctx();
    session
        .runbook()
        .plan()
        .restores
        .iter()
        .filter_map(|r| {
            let value = ctx.get(&r.key).filter(|v| !v.is_unit())?;
            let phase = Phase::Probe(format!("restores.{}", r.key));
            let verdict = match session.value_of(&r.works, ctx, phase) {
                Ok(v) => match v.as_bool() {
                    Ok(true) => Verdict::Works,
                    Ok(false) => Verdict::Dead,
                    Err(t) => Verdict::Unknown {
                        why: format!("its probe returned {t}, not a bool"),
                        passing: false,
                    },
                },
                Err(e) => Verdict::Unknown {
                    why: e.message.clone(),
                    passing: PASSING.contains(&e.code.as_str()),
                },
            };
            Some(Probed {
                key: r.key.clone(),
                shown: shown(&value),
                verdict,
            })
        })
        .collect()
}

/// A value as the operator sees it: a secret masked.
fn shown(v: &rhai::Dynamic) -> String {
    match v.clone().try_cast::<runbook_secret::Secret>() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    }
}

/// Shows what the probes found; when a value would not work, records the refusal and says
/// how to go forward. `Err` carries why the rollback must not restore anything.
pub(crate) fn check_restores(session: &Session) -> Result<(), Refusal> {
    let probed = probe_restores(session);
    if probed.is_empty() {
        return Ok(());
    }
    let say = session.run().say();
    say.progress("  What rollback would restore, checked at the vendor now:");
    let mut dead = Vec::new();
    let (mut known_dead, mut lasting) = (false, false);
    for p in &probed {
        let line = match &p.verdict {
            Verdict::Works => format!("    ✓ ctx.{} {} still works", p.key, p.shown),
            Verdict::Dead => {
                known_dead = true;
                dead.push(format!(
                    "ctx.{} {} no longer works at the vendor",
                    p.key, p.shown
                ));
                format!(
                    "    ✗ ctx.{} {} no longer works (deleted, revoked or expired)",
                    p.key, p.shown
                )
            }
            Verdict::Unknown { why, passing } => {
                lasting |= !passing;
                dead.push(format!(
                    "ctx.{} {} could not be checked ({why})",
                    p.key, p.shown
                ));
                format!(
                    "    ? ctx.{} {} could not be checked: {why}",
                    p.key, p.shown
                )
            }
        };
        if matches!(p.verdict, Verdict::Works) {
            say.progress(line);
        } else {
            say.warning(line);
        }
    }
    if dead.is_empty() {
        return Ok(());
    }
    let why = format!(
        "the value rollback would restore is not usable: {}",
        dead.join("; ")
    );
    session.run().ledger().record(Event::RollbackBlocked {
        step: "restore".into(),
        why: why.clone(),
    });
    let kind = match (known_dead, lasting) {
        (true, _) => Refused::Dead,
        (false, false) => Refused::NoAnswer,
        (false, true) => Refused::Unchecked,
    };
    Err(Refusal { why, kind })
}

/// Reads back every target the steps in `steps` wrote and that is still in effect, records
/// what each holds now, and shows it: what still holds the run's value is restored by a
/// rollback (`undoing`), kept by a resume; what changed since is left alone (the undo's
/// writes skip it). Returns the targets that can be read and whose read failed (a 5xx, no
/// connection), with why.
pub(crate) fn refresh_targets(session: &Session, steps: &[&str], undoing: bool) -> Vec<String> {
    let mut failed: Vec<String> = Vec::new();
    let run = session.run();
    let mut header = false;
    // One verdict per target: a target written more than once (an app's second var) that
    // changed under any of them changed; the undo leaves it whole.
    let mut found: Vec<Refreshed> = Vec::new();
    // Targets whose writes read differently: the verdict overrules a line already shown.
    let mut mixed: Vec<bool> = Vec::new();
    let writes = run.ledger().read(Vec::new(), |l| l.writes.clone());
    for step in steps {
        for (i, w) in writes.iter().enumerate().filter(|(_, w)| w.step == *step) {
            // What a later write of this run replaced is the run's own past: the later
            // write is the one read back (a step retried after a crash staged anew).
            if !w.outcome.may_have_applied() || superseded(session, w, &writes[i + 1..]) {
                continue;
            }
            if !header {
                run.say()
                    .progress("  What the run's targets hold now, read at the vendors:");
                header = true;
            }
            let Some((holds, now, unanswered)) = read_back(session, w, undoing) else {
                continue;
            };
            if let (true, Some(why)) = (unanswered, &now) {
                failed.push(format!("{} on {} ({why})", w.function, w.target));
            }
            // What it holds now, masked: for a change, and for a lost write that does not
            // show (a resume asks whether that is the value from before the run).
            let now = now.filter(|_| matches!(holds, Holds::Changed | Holds::NotShown));
            match found
                .iter()
                .position(|r| r.function == w.function && r.target == w.target)
            {
                Some(i) => {
                    mixed[i] |= found[i].holds != holds;
                    if weight(holds) > weight(found[i].holds) {
                        found[i].holds = holds;
                        found[i].now = now;
                    }
                }
                None => {
                    found.push(Refreshed {
                        step: step.to_string(),
                        function: w.function.clone(),
                        target: w.target.clone(),
                        holds,
                        now,
                    });
                    mixed.push(false);
                }
            }
        }
    }
    for (r, mixed) in found.into_iter().zip(mixed) {
        if mixed && r.holds == Holds::Changed {
            run.say().warning(format!(
                "    ≠ {} on {}: changed under another of its writes, so left alone whole",
                r.function, r.target
            ));
        }
        run.ledger().record(Event::Refreshed(r));
    }
    undo_requests(session);
    failed
}

/// Which of two reads of one target decides: a change by someone else over anything, then
/// what this run's rollback put back, then what the run wrote, then a write that may have
/// applied and does not show (another write of the run that holds means the undo must run:
/// an app whose token was set, beside a second var whose write got a 500), then one that
/// did not land, then no read.
fn weight(holds: Holds) -> u8 {
    match holds {
        Holds::Changed => 5,
        Holds::Restored => 4,
        Holds::AsWritten => 3,
        // A var that may be someone's fix outweighs one that did not land: the operator
        // is asked (second reading).
        Holds::NotShown => 2,
        Holds::Before => 1,
        Holds::Unread | Holds::Refuted => 0,
    }
}

/// Names the change requests an unfinished undo of this run filed and nobody merged yet.
fn undo_requests(session: &Session) {
    let run = session.run();
    let open: Vec<(String, String)> = run.ledger().read(Vec::new(), |l| {
        l.undo_requests()
            .iter()
            .map(|w| {
                let slug = w.filed.as_ref().map_or("(no id)", |f| f.slug.as_str());
                (format!("{} on {}", w.function, w.target), slug.to_string())
            })
            .collect()
    });
    for (what, slug) in open {
        run.say().warning(format!(
            "    ! {what}: this run's rollback filed change request {slug}, still open: an approver merging it applies the restore"
        ));
    }
}

/// What one write's target holds now, said to the operator; `None` for a change request
/// still open, which is not in the world yet (reading the secret would only show the value
/// before it): it is named here, and the undo reports it.
fn read_back(
    session: &Session,
    w: &crate::ledger::Write,
    undoing: bool,
) -> Option<(Holds, Option<String>, bool)> {
    let say = session.run().say();
    let what = format!("{} on {}", w.function, w.target);
    if w.outcome == WriteOutcome::Pending {
        let request = w.filed.as_ref().map_or("(no id)", |f| f.slug.as_str());
        say.warning(format!(
            "    ! {what}: change request {request} is still open, not merged: an approver merging it would apply it"
        ));
        return None;
    }
    let (holds, now, failed) = crate::host::readback::read(session.run(), w);
    // Changed, but maybe by this run's own rollback (an undo that stopped part way): not
    // someone else's change to leave alone.
    if holds == Holds::Changed && restored_by_this_run(session, w) {
        say.progress(format!(
            "    ↶ {what}: restored by this run's rollback, which goes on with it"
        ));
        return Some((Holds::Restored, None, false));
    }
    let shown = now.as_deref().unwrap_or("another value");
    match holds {
        // A write that may have applied (its answer lost, or a server error) and does not
        // show: either it did not apply, or it did and someone changed the target since.
        // Either way there is nothing of this run's there to undo, and an undo would write
        // over what the target holds now: left alone, as a target changed since is.
        Holds::Changed if w.outcome == WriteOutcome::Unknown => {
            // A resume writes it again only where nothing changed it since the run started
            // (the write did not land); anything else may be someone's fix, and the
            // operator says which (`resume.rewrite`).
            let since = session
                .run()
                .ledger()
                .read(String::new(), |l| l.started_at.clone());
            if !undoing && crate::host::readback::did_not_land(session.run(), w, &since) {
                say.progress(format!(
                    "    · {what}: its write did not land (nothing changed it since the run started); the step writes it again"
                ));
                return Some((Holds::Before, None, false));
            }
            let then = if undoing { ": left alone" } else { "" };
            say.progress(format!(
                "    · {what}: may have applied, but does not hold what this run wrote ({shown}){then}"
            ));
            return Some((Holds::NotShown, now, false));
        }
        // A resume said "restored" too, where nothing is (hostile review).
        Holds::AsWritten => say.progress(format!(
            "    = {what}: holds what this run wrote; {}",
            if undoing {
                "its undo restores it"
            } else {
                "kept"
            }
        )),
        Holds::Changed => say.warning(format!(
            "    ≠ {what}: changed since this run ({shown}); left alone"
        )),
        // Only `restored_by_this_run` and the lost write above say so.
        Holds::Restored | Holds::NotShown | Holds::Before | Holds::Refuted => {}
        Holds::Unread => match now.as_deref() {
            Some(why) if failed => {
                say.warning(format!("    ? {what}: could not be read back ({why})"))
            }
            Some(why) => say.progress(format!(
                "    ? {what}: {why}; its undo runs as the journal says"
            )),
            None => say.progress(format!(
                "    ? {what}: cannot be read back; its undo runs as the journal says"
            )),
        },
    }
    Some((holds, now, failed))
}

/// Whether what `w` wrote holds what an unfinished undo of this run put back there: the
/// newest undo write to its target that covers every var `w` set, compared on those vars
/// only (an undo that put back another var of the app says nothing of these).
fn restored_by_this_run(session: &Session, w: &crate::ledger::Write) -> bool {
    let run = session.run();
    let mine = w.detail["vars"].as_object();
    let Some(mut undo) = run.ledger().read(None, |l| {
        l.undo_writes_to(&w.function, &w.target)
            .find(|u| u.covers(w))
            .cloned()
    }) else {
        return false;
    };
    if let (Some(mine), Some(theirs)) = (mine, undo.detail["vars"].as_object_mut()) {
        theirs.retain(|k, _| mine.contains_key(k));
    }
    crate::host::readback::holds(run, &undo).0 == Holds::AsWritten
}

/// Whether a write of this run after `w`, to the same target, set all `w` set and took
/// effect: its outcome says so, or, its answer lost, the target holds what it wrote.
fn superseded(session: &Session, w: &crate::ledger::Write, later: &[crate::ledger::Write]) -> bool {
    later.iter().any(|u| {
        u.function == w.function
            && u.target == w.target
            && u.covers(w)
            && match u.outcome {
                WriteOutcome::Applied => true,
                WriteOutcome::Unknown => {
                    crate::host::readback::holds(session.run(), u).0 == Holds::AsWritten
                }
                _ => false,
            }
    })
}

/// The targets this run's own rollback put back before it stopped, as one line.
pub(crate) fn restored(session: &Session) -> Option<String> {
    let list = session
        .run()
        .ledger()
        .read(Vec::new(), |l| l.restored.clone());
    if list.is_empty() {
        return None;
    }
    let targets: Vec<&str> = list.iter().map(|r| r.target.as_str()).collect();
    Some(targets.join(", "))
}

/// What an unfinished rollback of this run left, as one line: the steps whose undo started
/// and did not complete, those whose undo completed when the process undoing them died
/// between two undos (going forward would redo them on top of what it put back), and what
/// the refresh read as put back by it. `resume` refuses such a run; a rollback that is
/// refused or blocked judges by the same line what to offer instead. `ending`: the
/// caller's process is about to record its end (a rollback blocked at a point of no
/// return), so it is not one that died undoing.
pub(crate) fn half_undone(session: &Session, ending: bool) -> Option<String> {
    let run = session.run();
    let ledger = run.ledger();
    let mut parts: Vec<String> = ledger.read(Vec::new(), |l| {
        l.unfinished_undos()
            .iter()
            .map(|s| match s.state {
                crate::ledger::StepState::UndoFailed => format!("the undo of {} failed", s.id),
                _ => format!("the undo of {} did not finish", s.id),
            })
            .collect()
    });
    if let Some(restored) = restored(session) {
        parts.push(format!("it already put back {restored}"));
    }
    // Steps already undone count only when the last process that did anything was undoing
    // them and died before recording an end (killed between two undos): a rollback that
    // ended, blocked at a point of no return, or a REPL's `:undo`, leaves the run to go
    // forward. Processes since that only looked (a resume refused here, a rollback declined,
    // a REPL attached and left) do not wipe that out.
    let undone: Vec<String> = ledger.read(Vec::new(), |l| {
        let last = l.processes.len().saturating_sub(1);
        let died_undoing = l
            .processes
            .iter()
            .enumerate()
            .rev()
            .find(|(_, p)| p.acted)
            .is_some_and(|(i, p)| {
                p.undid
                    && p.ended().is_none()
                    && !(ending && i == last)
                    && p.entry != crate::run::Entry::Repl
            });
        if !died_undoing {
            return Vec::new();
        }
        l.undone().iter().map(|s| s.id.clone()).collect()
    });
    if !undone.is_empty() {
        parts.push(format!("{} undone", undone.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The targets of writes that may have applied and do not show, as one line: a rollback
/// leaves them (nothing of the run's is there); a resume asks before it writes them again.
/// `all`: with those that hold the value from before the run (their writes did not land).
pub(crate) fn not_shown(session: &Session, all: bool) -> Option<String> {
    // Nobody is said to have changed it: the write may simply not have applied (a 500),
    // as the line naming these says.
    listed(
        session,
        |r| r.holds == Holds::NotShown || (all && r.holds == Holds::Before),
        "",
    )
}

/// The targets someone changed since the run wrote them: what stops a resume, and what makes
/// a rollback partial. A write that may have applied and does not show is not among them
/// (a resume's step writes it again; a rollback has nothing of the run's there to undo).
pub(crate) fn changed_since(session: &Session) -> Option<String> {
    listed(
        session,
        |r| r.holds == Holds::Changed,
        "changed by someone else",
    )
}

fn listed(session: &Session, keep: impl Fn(&Refreshed) -> bool, unsaid: &str) -> Option<String> {
    let list: Vec<Refreshed> = session.run().ledger().read(Vec::new(), |l| {
        l.left_alone.iter().filter(|r| keep(r)).cloned().collect()
    });
    if list.is_empty() {
        return None;
    }
    let parts: Vec<String> = list
        .iter()
        .map(|r| match r.now.as_deref().unwrap_or(unsaid) {
            "" => r.target.clone(),
            why => format!("{} ({why})", r.target),
        })
        .collect();
    Some(parts.join("; "))
}

/// Whether a write of `step` may have taken effect.
pub(crate) fn took_effect(session: &Session, step: &str) -> bool {
    session
        .run()
        .ledger()
        .writes_of(step)
        .iter()
        .any(|w| w.outcome.may_have_applied())
}

/// Whether `step` has an undo that a rollback would run: one of its writes may have taken
/// effect, or it undoes always.
pub(crate) fn would_undo(session: &Session, step: &Step) -> bool {
    step.undo.is_some() && (step.undo_always || took_effect(session, &step.id))
}

/// Whether `step` stops a rollback: it is irreversible and completed, or died after its
/// first write (it may have done what cannot be undone), unless its `.verify` reads at the
/// vendor that it did not take effect. The journal records what the operator said of a
/// dashboard step; the vendor says what happened (the NEW token deleted instead of the old
/// one leaves the old one working, and a rollback onto it the way back). A verify that
/// cannot read the vendor leaves the step blocking.
pub(crate) fn blocks(session: &Session, step: &Step, completed: bool) -> bool {
    if step.irreversible.is_none() || !(completed || took_effect(session, &step.id)) {
        return false;
    }
    let Some(verify) = &step.verify else {
        return true;
    };
    !matches!(
        session.ask(verify, Phase::Probe(format!("{}.verify", step.id))),
        Ok(false)
    )
}

/// The step that stops a rollback of `order` (newest first) before any undo would run,
/// known without the run's values: irreversible, taken effect, and with no verify to ask
/// (a verify may need the values, which are asked for first).
pub(crate) fn blocked_before_any_undo<'a>(
    session: &'a Session,
    order: &[usize],
    completed: &[usize],
) -> Option<&'a Step> {
    let plan = session.runbook().plan();
    for &i in order {
        let step = &plan.steps[i];
        if step.irreversible.is_some() && (completed.contains(&i) || took_effect(session, &step.id))
        {
            return step.verify.is_none().then_some(step);
        }
        if would_undo(session, step) {
            return None;
        }
    }
    None
}

/// A rollback stops at `step`, past the point of no return: said and journalled, with what
/// works from here (forward, unless an earlier rollback stopped part way, which resume
/// refuses). `ending`: this process has undone steps before it and ends here.
pub(crate) fn say_blocked(session: &Session, step: &Step, ending: bool) {
    let say = session.run().say();
    let why = step.irreversible.clone().unwrap_or_default();
    say.warning(format!(
        "  ✗ cannot roll back past step '{}': {why}",
        step.id
    ));
    session.run().ledger().record(Event::RollbackBlocked {
        step: step.id.clone(),
        why,
    });
    let run_id = session.run_id();
    say.warning(if half_undone(session, ending).is_some() {
        format!("  an earlier rollback of this run stopped part way, so it cannot be resumed either: end it with `runbook abandon {run_id} --reason TEXT`")
    } else {
        format!("  the rotation can still go forward: `runbook resume {run_id}` finishes it (if the resume is refused too, for a target changed since, put it back as the run left it, or end the run with `runbook abandon {run_id} --reason TEXT` and finish by hand)")
    });
}

/// Everything a rollback of `order` (step indexes, newest first) checks before it writes:
/// the probes of what it restores, then a read of every target the steps it reaches (before
/// an irreversible one stops it) wrote. `Err` says why it must restore nothing.
pub(crate) fn before_rollback(
    session: &Session,
    order: &[usize],
    completed: &[usize],
) -> Result<(), Refusal> {
    let plan = session.runbook().plan();
    let reached: Vec<&Step> = order
        .iter()
        .map(|&i| (&plan.steps[i], completed.contains(&i)))
        .take_while(|(step, done)| !blocks(session, step, *done))
        .map(|(step, _)| step)
        .filter(|step| would_undo(session, step))
        .collect();
    if reached.is_empty() {
        return Ok(());
    }
    check_restores(session)?;
    let ids: Vec<&str> = reached.iter().map(|s| s.id.as_str()).collect();
    // A target that can be read and whose read failed is not undone blind: its undo would
    // write the journal's values over whatever it holds now (another rotation's, say).
    let failed = refresh_targets(session, &ids, true);
    if !failed.is_empty() {
        return Err(Refusal {
            why: format!(
                "what the run's targets hold now could not be read: {}",
                failed.join("; ")
            ),
            kind: Refused::NoAnswer,
        });
    }
    Ok(())
}

/// A rollback that would restore a value that no longer works: nothing is undone, and the
/// way forward is named.
pub(crate) fn refuse(session: &Session, refusal: &Refusal) {
    let say = session.run().say();
    let run_id = session.run_id();
    let path = session.runbook().file().path.display().to_string();
    say.warning(format!("  ✗ rollback refused: {}.", refusal.why));
    say.warning(
        "  Nothing was undone: every consumer keeps the value it holds now, which restoring would replace with one that does not work (or could not be checked).",
    );
    // A rollback that stopped part way earlier cannot be resumed either (`resume` refuses a
    // half-undone run): the way forward is not offered then.
    let half_undone = half_undone(session, false).is_some();
    let forward = if half_undone {
        format!("this run's rollback stopped part way earlier, so it cannot be resumed: end it with `runbook abandon {run_id} --reason TEXT`, then rotate again with `runbook exec {path}`")
    } else {
        format!("`runbook resume {run_id}` would instead finish the rotation")
    };
    match refusal.kind {
        // Going forward would revoke the value the operator chose to keep.
        Refused::NoAnswer => say.warning(format!(
            "  the check got no answer, so nothing is known to be dead: run `runbook rollback {run_id}` again once the vendor answers ({forward})."
        )),
        Refused::Unchecked => say.warning(format!(
            "  the check failed, so nothing is known to be dead: fix what stops it (the probe's credential, the runbook), then run `runbook rollback {run_id}` again ({forward})."
        )),
        Refused::Dead if half_undone => say.warning(format!("  {forward}.")),
        Refused::Dead => say.warning(format!(
            "  Go forward instead: `runbook resume {run_id}` finishes the rotation on the new value; if it cannot, end this run with `runbook abandon {run_id} --reason TEXT`, then rotate again with `runbook exec {path}`."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::weight;
    use crate::events::Holds;

    /// One target written twice (an app's token, and a second var whose write got a 500 and
    /// did not apply): the write that holds decides, so the undo puts the app back. Before,
    /// "does not show" outweighed it: the app kept the run's token and the rollback said
    /// "complete" (review of this session's change).
    #[test]
    fn a_write_that_holds_outweighs_one_that_does_not_show() {
        assert!(weight(Holds::AsWritten) > weight(Holds::NotShown));
        assert!(weight(Holds::Restored) > weight(Holds::NotShown));
        assert!(weight(Holds::Changed) > weight(Holds::Restored));
        assert!(weight(Holds::NotShown) > weight(Holds::Unread));
        assert!(weight(Holds::NotShown) > weight(Holds::Before));
        assert!(weight(Holds::Before) > weight(Holds::Unread));
    }
}
