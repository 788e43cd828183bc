//! `runbook approve RUN_ID` and `runbook deny RUN_ID --reason ...`: the second pair of eyes.

use crate::cli::{ApproveArgs, DenyArgs};
use crate::error::{exit, Error, Result};
use crate::ui;
use runbook_core::approval::{self, Decision};
use runbook_core::run;
use runbook_core::store::Store;

pub fn approve(args: ApproveArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let by = settings.actor(args.actor.as_deref())?;
    let keys = settings.keys(args.ssh_key.as_deref())?;
    let store = reachable_store(settings)?;
    let decision = Decision::Approved {
        by: by.clone(),
        at: run::now_rfc3339(),
        host: run::hostname(),
        role: store.authenticated(),
        signature: None,
        request_digest: String::new(),
    };
    let decision = signed(&store, &args.run_id, decision, &keys)?;
    let request = record(&store, &args.run_id, &decision, &keys)?;
    ui::out(&format!(
        "approved step '{}' of run {} (requested by {}) as {by} on {}",
        request.step,
        request.run_id,
        ui::truncate(&request.requested_by, 120),
        run::hostname()
    ));
    Ok(exit::OK)
}

pub fn deny(args: DenyArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let by = settings.actor(args.actor.as_deref())?;
    let keys = settings.keys(args.ssh_key.as_deref())?;
    let store = reachable_store(settings)?;
    let decision = Decision::Denied {
        by: by.clone(),
        at: run::now_rfc3339(),
        reason: args.reason.clone(),
        host: run::hostname(),
        role: store.authenticated(),
        signature: None,
        request_digest: String::new(),
    };
    let decision = signed(&store, &args.run_id, decision, &keys)?;
    let request = record(&store, &args.run_id, &decision, &keys)?;
    ui::out(&format!(
        "denied step '{}' of run {} (requested by {}) as {by}: {}",
        request.step, request.run_id, request.requested_by, args.reason
    ));
    Ok(exit::OK)
}

/// The state store, waited for (a database restarting) up to `[state] wait_seconds`: a
/// decision is stored or said to be not stored, never lost in between.
fn reachable_store(settings: &crate::settings::Settings) -> Result<Store> {
    let wait = settings.state()?.wait;
    let mut backoff = runbook_core::interrupt::Backoff::new(wait);
    let mut told = false;
    loop {
        match crate::wiring::store(settings) {
            Err(crate::error::Error::Core(e @ runbook_core::error::Error::State { .. })) => {
                if !told {
                    ui::err(&format!(
                        "the state store cannot be reached ({e}); the decision is not recorded yet: retrying for up to {} s",
                        wait.as_secs()
                    ));
                    told = true;
                }
                if !backoff.wait() {
                    return Err(e.into());
                }
            }
            other => return other,
        }
    }
}

/// Shows what is asked, then signs the decision for that request when this person has an
/// SSH key.
fn signed(
    store: &Store,
    run_id: &str,
    decision: Decision,
    keys: &approval::ssh::Keys,
) -> Result<Decision> {
    let mut decision = decision;
    let Some(request) = approval::pending(store, run_id)? else {
        return Ok(decision);
    };
    show(&request);
    if let Some(note) = store.stamp_weakness() {
        ui::err(&format!("warning: {note}"));
    }
    decision = decision.answering(&request);
    if let Some(key) = &keys.signing_key {
        ui::err(&format!("  signing the decision with {}", key.display()));
        decision.sign(key, &request.run_id, &request.nonce)?;
    }
    Ok(decision)
}

/// Stores the decision, retried while the store cannot take it; a failure says it was
/// not stored.
fn record(
    store: &Store,
    run_id: &str,
    decision: &Decision,
    keys: &approval::ssh::Keys,
) -> Result<approval::Request> {
    approval::decide_within(store, run_id, decision, keys, None, store.wait(), &|e| {
        ui::err(&format!(
            "the decision could not be stored yet ({e}); retrying for up to {} s",
            store.wait().as_secs()
        ))
    })
    .map_err(|e| match e {
        // A call whose answer was lost (a reset, a failover) may have been applied: the way
        // to know is to decide again, which a stored decision refuses.
        runbook_core::error::Error::State { message, help } => {
            Error::Core(runbook_core::error::Error::State {
                message: format!("the decision may not be recorded: {message}"),
                help: format!("run the same `runbook approve {run_id}` (or `deny`) again once the database answers: a decision already stored is refused as already decided. {help}"),
            })
        }
        other => other.into(),
    })
}

/// What the decision is about, before it is made: the run, where it writes, who asked from
/// where, and the vendor writes the step can make.
fn show(r: &approval::Request) {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            ui::truncate(s, 120)
        }
    };
    ui::err(&format!(
        "Run {} of {} ({}) asks for approval of step '{}'{}",
        r.run_id,
        or(&r.runbook, "a runbook"),
        or(&r.target, "target not recorded"),
        r.step,
        if r.title.is_empty() {
            String::new()
        } else {
            format!(": {}", ui::truncate(&r.title, 120))
        }
    ));
    ui::err(&format!(
        "  requested by {}{}{} on {} at {}",
        ui::truncate(&r.requested_by, 120),
        r.role
            .as_deref()
            .map(|role| format!(" (database login {})", ui::truncate(role, 80)))
            .unwrap_or_default(),
        if r.signature.is_some() {
            " (signed with an SSH key)"
        } else {
            ""
        },
        or(&r.host, "an unrecorded host"),
        r.requested_at
    ));
    if r.writes.is_empty() {
        ui::err("  the step makes no vendor write its code shows");
    } else {
        ui::err(&format!("  the step can write: {}", r.writes.join(", ")));
    }
}
