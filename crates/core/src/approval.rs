//! Four-eyes approvals: a run that reaches a step needing approval files a request in the
//! store and waits; `runbook approve` / `runbook deny` (by another actor, on this machine
//! with the file backend, on any with the shared database) record the decision, once (the
//! first decision wins). A request not decided in time is closed by the run as `timeout`,
//! which is never the same as `denied`.

use crate::error::{Error, Result};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A pending request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub run_id: String,
    pub step: String,
    pub requested_by: String,
    pub requested_at: String,
    /// Who the runbook says must approve ("another operator", "the security on-call").
    pub by: String,
    pub timeout_secs: u64,
    /// Random, per request: a decision counts only for the request it names (a resumed run
    /// files a new request; a decision meant for the old one must not pass the new one).
    #[serde(default)]
    pub nonce: String,
    /// What is approved, shown to the approver: the runbook, the step's title, where the run
    /// writes (production, loopback, sandbox), the requester's host and the vendor writes
    /// the step's code can make.
    #[serde(default)]
    pub runbook: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub writes: Vec<String>,
    /// The requester's login role, when the store authenticated one (the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A fresh request nonce.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// How a request ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Decision {
    Approved {
        by: String,
        at: String,
        /// The machine the decision was made on.
        #[serde(default)]
        host: String,
        /// The approver's login role, when the store authenticated one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    Denied {
        by: String,
        at: String,
        reason: String,
        #[serde(default)]
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    Timeout {
        at: String,
    },
}

/// A decision as written: for which request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Written {
    nonce: String,
    #[serde(flatten)]
    decision: Decision,
}

/// Actor names compare as people read them: without case, width or invisible characters,
/// with look-alike letters folded ("аlice" with a Cyrillic а is Alice). (On the file
/// backend a name is what the actor says it is: see docs/team.md.)
fn same_actor(a: &str, b: &str) -> bool {
    crate::identity::same(a, b)
}

/// Files the request (replacing an earlier one of the same run, and its decision: a resumed
/// run asks again).
pub fn file(store: &Store, request: &Request) -> Result<()> {
    let text = serde_json::to_string_pretty(request).unwrap_or_default();
    store.approval_put_request(&request.run_id, &text)
}

/// The request of `run_id`, if one was filed.
pub fn pending(store: &Store, run_id: &str) -> Result<Option<Request>> {
    Ok(store
        .approval_request(run_id)?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

/// The decision for the request carrying `nonce`, if there is one.
pub fn decision(store: &Store, run_id: &str, nonce: &str) -> Option<Decision> {
    store
        .approval_decision(run_id)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<Written>(&t).ok())
        .filter(|w| w.nonce == nonce)
        .map(|w| w.decision)
}

/// Records a decision, once: `Err` says why it was not taken (no request, already
/// decided, or the run's own actor).
pub fn decide(store: &Store, run_id: &str, decision: &Decision) -> Result<Request> {
    let Some(request) = pending(store, run_id)? else {
        return Err(Error::usage(
            format!("run {run_id} is not waiting for an approval"),
            "`runbook runs` shows the runs; a run files its request when it reaches the step",
        ));
    };
    if let Some(earlier) = self::decision(store, run_id, &request.nonce) {
        return Err(already_decided(run_id, &earlier));
    }
    let (by, role) = match decision {
        Decision::Approved { by, role, .. } | Decision::Denied { by, role, .. } => {
            (Some(by), role.as_deref())
        }
        Decision::Timeout { .. } => (None, None),
    };
    // The proven identity first: a name is what someone typed, a login role is what the
    // database authenticated.
    if let (Some(asked), Some(deciding)) = (request.role.as_deref(), role) {
        if asked == deciding {
            return Err(Error::usage(
                format!(
                    "run {run_id} was started under the database login '{asked}', and this decision comes from the same login: four eyes needs a second person's own login, whatever name --actor gives"
                ),
                format!(
                    "ask {} to decide with their own login role (docs/team.md, \"Identities\")",
                    request.by
                ),
            ));
        }
    }
    if by.is_some_and(|b| same_actor(b, &request.requested_by)) {
        return Err(Error::usage(
            format!(
                "{} started run {run_id}: the run's own actor cannot approve or deny it",
                request.requested_by
            ),
            format!("ask {} to decide (`runbook approve {run_id}`)", request.by),
        ));
    }
    let written = Written {
        nonce: request.nonce.clone(),
        decision: decision.clone(),
    };
    let text = serde_json::to_string(&written).unwrap_or_default();
    if store.approval_put_decision(run_id, &text)? {
        return Ok(request);
    }
    let earlier = store
        .approval_decision(run_id)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<Written>(&t).ok())
        .map(|w| w.decision);
    Err(match earlier {
        Some(d) => already_decided(run_id, &d),
        None => already_decided_unread(run_id),
    })
}

fn already_decided(run_id: &str, earlier: &Decision) -> Error {
    Error::usage(
        format!("run {run_id}'s approval is already decided: {earlier:?}"),
        "a decision is final; a resumed run files a new request",
    )
}

fn already_decided_unread(run_id: &str) -> Error {
    Error::usage(
        format!("run {run_id}'s approval is already decided: a decision"),
        "a decision is final; a resumed run files a new request",
    )
}

/// `decide`, retried while the store cannot take it (a database restarting), for up to
/// `wait`: the decision is stored, or the error says it was not. `retrying` is told of the
/// first failure. Refusals (no request, the run's own actor, decided already) are final.
pub fn decide_within(
    store: &Store,
    run_id: &str,
    decision: &Decision,
    wait: Duration,
    retrying: &dyn Fn(&Error),
) -> Result<Request> {
    let mut backoff = crate::interrupt::Backoff::new(wait);
    let mut told = false;
    loop {
        match decide(store, run_id, decision) {
            Err(e @ (Error::State { .. } | Error::Write { .. } | Error::Read { .. })) => {
                if !told {
                    retrying(&e);
                    told = true;
                }
                if !backoff.wait() {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

/// Waits for the decision until `timeout`, then closes the request as `Timeout` (if no one
/// decided in the meantime). `None` when Ctrl-C stopped the wait.
pub fn wait(store: &Store, run_id: &str, nonce: &str, timeout: Duration) -> Option<Decision> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(d) = decision(store, run_id, nonce) {
            return Some(d);
        }
        if crate::interrupt::is_set() {
            return None;
        }
        if Instant::now() >= deadline {
            let closed = Decision::Timeout {
                at: crate::run::now_rfc3339(),
            };
            // A decision that landed at the last moment wins over the timeout; a store that
            // is restarting gets its wait to record the timeout.
            let wait = store.wait();
            return match decide_within(store, run_id, &closed, wait, &|_| {}) {
                Ok(_) => Some(closed),
                Err(_) => decision(store, run_id, nonce).or(Some(closed)),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
