//! Four-eyes approvals: a run that reaches a step needing approval files a request in the
//! store and waits; `runbook approve` / `runbook deny` (by another actor, on this machine
//! with the file backend, on any with the shared database) record the decision, once (the
//! first decision wins). A request not decided in time is closed by the run as `timeout`,
//! which is never the same as `denied`.
//!
//! Four eyes stands on proven identities: in production the requester and the approver
//! must each be a database login (team mode) or an SSH signature that verifies against the
//! team's allowed signers ([`ssh`]); a name from `--actor`, `RUNBOOK_ACTOR` or git is a
//! label, recorded as unverified, and satisfies four eyes only in a rehearsal.

pub mod ssh;

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
    /// The requester's SSH signature over [`Request::signed_text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Request {
    /// What the requester's signature covers: everything `approve` shows, and the nonce
    /// that ties every decision to it. (Values JSON-quoted, so no field can forge another's
    /// line.)
    pub fn signed_text(&self) -> String {
        let timeout = self.timeout_secs.to_string();
        let writes = serde_json::to_string(&self.writes).unwrap_or_default();
        lines(
            "runbook-approval-request/1",
            &[
                ("run", &self.run_id),
                ("nonce", &self.nonce),
                ("step", &self.step),
                ("title", &self.title),
                ("runbook", &self.runbook),
                ("target", &self.target),
                ("writes", &writes),
                ("by", &self.by),
                ("timeout_secs", &timeout),
                ("requested_by", &self.requested_by),
                ("requested_at", &self.requested_at),
                ("host", &self.host),
            ],
        )
    }

    /// The request as shown to an approver, by hash: a decision names the one it answers,
    /// so a request changed after it was shown (same run, same nonce, another step or
    /// title) is not approved by it.
    pub fn digest(&self) -> String {
        crate::text::sha256_hex(self.signed_text().as_bytes())
    }
}

fn lines(head: &str, fields: &[(&str, &str)]) -> String {
    let mut text = format!("{head}\n");
    for (k, v) in fields {
        text.push_str(&format!(
            "{k} {}\n",
            serde_json::to_string(v).unwrap_or_default()
        ));
    }
    text
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
        /// The approver's SSH signature over [`Decision::signed_text`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// [`Request::digest`] of the request the approver was shown.
        #[serde(default)]
        request_digest: String,
    },
    Denied {
        by: String,
        at: String,
        reason: String,
        #[serde(default)]
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        #[serde(default)]
        request_digest: String,
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

impl Decision {
    /// What the approver's signature covers: the verdict, who, where, when, and the
    /// request it answers (run, nonce and the digest of what was shown), so it cannot be
    /// replayed on another request or stand for one changed after it was shown.
    pub fn signed_text(&self, run_id: &str, nonce: &str) -> String {
        let (verdict, by, at, host, digest, reason) = match self {
            Decision::Approved {
                by,
                at,
                host,
                request_digest,
                ..
            } => ("approved", by, at, host, request_digest, None),
            Decision::Denied {
                by,
                at,
                host,
                request_digest,
                reason,
                ..
            } => (
                "denied",
                by,
                at,
                host,
                request_digest,
                Some(reason.as_str()),
            ),
            Decision::Timeout { .. } => return String::new(),
        };
        let mut fields = vec![
            ("run", run_id),
            ("nonce", nonce),
            ("request", digest.as_str()),
            ("verdict", verdict),
            ("by", by.as_str()),
            ("at", at.as_str()),
            ("host", host.as_str()),
        ];
        fields.extend(reason.map(|r| ("reason", r)));
        lines("runbook-approval-decision/1", &fields)
    }

    /// One line: the verdict, by whom, when.
    pub fn summary(&self) -> String {
        match self {
            Decision::Approved { by, at, .. } => {
                format!("approved by {} at {at}", crate::text::truncate(by, 120))
            }
            Decision::Denied { by, at, reason, .. } => format!(
                "denied by {} at {at}: {}",
                crate::text::truncate(by, 120),
                crate::text::truncate(reason, 200)
            ),
            Decision::Timeout { at } => format!("timed out at {at}"),
        }
    }

    /// Names the request the decider was shown.
    pub fn answering(mut self, request: &Request) -> Decision {
        if let Decision::Approved { request_digest, .. } | Decision::Denied { request_digest, .. } =
            &mut self
        {
            *request_digest = request.digest();
        }
        self
    }

    /// Whether this decision answers `request` as it is now.
    pub fn answers(&self, request: &Request) -> bool {
        match self {
            Decision::Approved { request_digest, .. } | Decision::Denied { request_digest, .. } => {
                *request_digest == request.digest()
            }
            Decision::Timeout { .. } => true,
        }
    }

    fn signature_mut(&mut self) -> Option<&mut Option<String>> {
        match self {
            Decision::Approved { signature, .. } | Decision::Denied { signature, .. } => {
                Some(signature)
            }
            Decision::Timeout { .. } => None,
        }
    }

    /// Signs the decision for the request it answers.
    pub fn sign(&mut self, key: &std::path::Path, run_id: &str, nonce: &str) -> Result<()> {
        let text = self.signed_text(run_id, nonce);
        let signature = ssh::sign(key, &text).map_err(|why| {
            Error::usage(
                why,
                "[identity] ssh_key (or RUNBOOK_SSH_KEY, or --ssh-key) names your private key, or its .pub when the key is in ssh-agent",
            )
        })?;
        if let Some(slot) = self.signature_mut() {
            *slot = Some(signature);
        }
        Ok(())
    }
}

/// Who someone is, as far as it is proven: the name they gave, the database login the
/// store authenticated, the SSH key whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub label: String,
    pub login: Option<String>,
    pub key: Option<ssh::Verified>,
}

impl Identity {
    pub fn proven(&self) -> bool {
        self.login.is_some() || self.key.is_some()
    }

    /// The names this identity goes by: a person is one, whichever of them they use.
    fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.label.as_str())
            .chain(self.login.as_deref())
            .chain(self.key.as_ref().map(|k| k.principal.as_str()))
    }

    /// How it is proven, for a person to read.
    pub fn describe(&self) -> String {
        match (&self.login, &self.key) {
            (_, Some(k)) => format!("SSH key {} of {}", k.fingerprint, k.principal),
            (Some(login), None) => format!("database login {login}"),
            (None, None) => format!("{} (unverified label)", self.label),
        }
    }
}

/// The requester's identity: their login, and their signature verified against the
/// allowed signers. A signature that does not verify is an error, never a label.
pub fn requester(request: &Request, keys: &ssh::Keys) -> Result<Identity> {
    let key = match &request.signature {
        None => None,
        Some(signature) => verified(
            keys,
            &request.signed_text(),
            signature,
            &request.requested_by,
            "the request",
        )?,
    };
    Ok(Identity {
        label: request.requested_by.clone(),
        login: request.role.clone(),
        key,
    })
}

/// The decider's identity, as [`requester`].
pub fn decider(request: &Request, decision: &Decision, keys: &ssh::Keys) -> Result<Identity> {
    let (by, role, signature) = match decision {
        Decision::Approved {
            by,
            role,
            signature,
            ..
        }
        | Decision::Denied {
            by,
            role,
            signature,
            ..
        } => (by, role, signature),
        Decision::Timeout { .. } => {
            return Ok(Identity {
                label: String::new(),
                login: None,
                key: None,
            })
        }
    };
    let key = match signature {
        None => None,
        Some(signature) => verified(
            keys,
            &decision.signed_text(&request.run_id, &request.nonce),
            signature,
            by,
            "the decision",
        )?,
    };
    Ok(Identity {
        label: by.clone(),
        login: role.clone(),
        key,
    })
}

/// A signature checked against the allowed signers: `None` when there is no allowed
/// signers file to check it against (a signature nobody can check proves nothing, and a
/// login may still prove the person), an error when it does not verify.
fn verified(
    keys: &ssh::Keys,
    text: &str,
    signature: &str,
    claimed: &str,
    what: &str,
) -> Result<Option<ssh::Verified>> {
    let Some(allowed) = &keys.allowed_signers else {
        return Ok(None);
    };
    ssh::verify(allowed, text, signature, claimed)
        .map(Some)
        .map_err(|why| {
            Error::usage(
                format!("{what}'s SSH signature is not accepted: {why}"),
                "the allowed signers file lists each person's principal and public key: `alice@example.com ssh-ed25519 AAAA…` (docs/team.md, \"Identities\")",
            )
        })
}

/// Four eyes on what is proven: the decider is not the requester under any of their names
/// (label, login, SSH principal, look-alike letters folded) or keys; and where proof is
/// `required` (a production run), both sides are proven the same way, by two logins or
/// two SSH keys, for a label proves nothing.
pub fn four_eyes(
    run_id: &str,
    request: &Request,
    asker: &Identity,
    decider: &Identity,
    required: bool,
) -> Result<()> {
    if let (Some(asked), Some(deciding)) = (&asker.login, &decider.login) {
        if asked == deciding {
            return Err(Error::usage(
                format!(
                    "run {run_id}'s approval was requested under the database login '{asked}', and this decision comes from the same login: four eyes needs a second person's own login, whatever name --actor gives"
                ),
                format!(
                    "ask {} to decide with their own login role (docs/team.md, \"Identities\")",
                    request.by
                ),
            ));
        }
    }
    if let (Some(a), Some(d)) = (&asker.key, &decider.key) {
        if a.fingerprint == d.fingerprint {
            return Err(Error::usage(
                format!(
                    "run {run_id} was requested and decided with the same SSH key ({}): four eyes needs a second person's own key",
                    a.fingerprint
                ),
                format!("ask {} to decide with their own key", request.by),
            ));
        }
    }
    let same = asker
        .names()
        .find(|a| decider.names().any(|d| same_actor(a, d)));
    if let Some(name) = same {
        return Err(Error::usage(
            format!(
                "{} started run {run_id}: the run's own actor cannot approve or deny it (both go by '{}')",
                crate::text::truncate(&request.requested_by, 120),
                crate::text::truncate(name, 120)
            ),
            format!("ask {} to decide (`runbook approve {run_id}`)", request.by),
        ));
    }
    let by_logins = asker.login.is_some() && decider.login.is_some();
    let by_keys = asker.key.is_some() && decider.key.is_some();
    if required && !by_logins && !by_keys {
        return Err(Error::usage(
            format!(
                "run {run_id} writes to production, and four eyes there needs proven identities: the request comes from {}, the decision from {}",
                asker.describe(),
                decider.describe()
            ),
            "in team mode each person connects with their own database login; on the file store both sign with SSH keys listed in the team's allowed signers ([identity] ssh_key and allowed_signers in runbook.toml, docs/team.md \"Identities\")",
        ));
    }
    Ok(())
}

/// The decider drove none of the run's processes (started it, resumed it, rolled it back,
/// attached to it), by login or by name: a run alice started and bob resumed asked bob's
/// approval, and alice could give it (team review). A journal that cannot be read leaves
/// the check to the request's asker (`four_eyes`).
fn not_an_actor_of_the_run(store: &Store, run_id: &str, decider: &Identity) -> Result<()> {
    // Unread, it cannot say who ran the run: no decision (second reading: skipping the
    // check let a damaged or unreachable journal through).
    let (_, ledger) = crate::ledger::open(store, run_id).map_err(|e| {
        Error::usage(
            format!("run {run_id}'s journal cannot be read to check who ran it: {e}; nothing was decided"),
            format!("decide once it can be read (`runbook runs {run_id}`)"),
        )
    })?;
    // Every process of the run, whether it reached a step or not: one that only filed its
    // request, or wrote at the REPL, ran it too (second reading).
    for p in &ledger.processes {
        let by_login = matches!((&p.login, &decider.login), (Some(a), Some(d)) if a == d);
        let by_name = decider.names().any(|d| same_actor(&p.actor, d));
        if by_login || by_name {
            return Err(Error::usage(
                format!(
                    "{} ran run {run_id} ({} at {}): the run's own actors cannot approve or deny its steps, whoever asked",
                    crate::text::truncate(&p.actor, 120),
                    p.entry.as_str(),
                    p.started_at
                ),
                format!("ask someone who has not run it to decide (`runbook approve {run_id}`)"),
            ));
        }
    }
    Ok(())
}

/// Actor names compare as people read them: without case, width or invisible characters,
/// with look-alike letters folded ("аlice" with a Cyrillic а is Alice).
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
    read_decision(store, run_id, nonce).ok().flatten()
}

/// `decision`, saying when the store could not be read.
fn read_decision(store: &Store, run_id: &str, nonce: &str) -> Result<Option<Decision>> {
    Ok(store
        .approval_decision(run_id)?
        .and_then(|t| serde_json::from_str::<Written>(&t).ok())
        .filter(|w| w.nonce == nonce)
        .map(|w| w.decision))
}

/// Records a decision, once: `Err` says why it was not taken (no request, already
/// decided, the run's own actor, or, with `expect`, a request other than the one carrying
/// that nonce).
pub fn decide(
    store: &Store,
    run_id: &str,
    decision: &Decision,
    keys: &ssh::Keys,
    expect: Option<&str>,
) -> Result<Request> {
    let Some(request) = pending(store, run_id)? else {
        return Err(Error::usage(
            format!("run {run_id} is not waiting for an approval"),
            "`runbook runs` shows the runs; a run files its request when it reaches the step",
        ));
    };
    // A request copied under another run's id: a decision here would be moved to the run
    // it names and read there as given for it.
    if request.run_id != run_id {
        return Err(Error::usage(
            format!(
                "the approval request filed under run {run_id} is run {}'s: nothing was decided",
                request.run_id
            ),
            "someone copied a request; decide on the run it names, after checking with its operator",
        ));
    }
    if let Some(earlier) = self::decision(store, run_id, &request.nonce) {
        return Err(already_decided(run_id, &earlier));
    }
    // A wait's timeout closes the request it waited on, never one filed since by the
    // process that took the run over.
    if expect.is_some_and(|mine| mine != request.nonce) {
        return Err(Error::usage(
            format!("run {run_id}'s approval request is another process's now: this wait's timeout closes nothing"),
            "the run was taken over; `runbook runs` shows it",
        ));
    }
    if !decision.answers(&request) {
        return Err(Error::usage(
            format!(
                "run {run_id}'s approval request changed after it was shown to you (step '{}' now): nothing was decided",
                request.step
            ),
            format!("read the request again and decide on it: `runbook approve {run_id}`"),
        ));
    }
    // A timeout is the run's own record; every other decision is a person's, checked.
    if !matches!(decision, Decision::Timeout { .. }) {
        let asker = requester(&request, keys)?;
        let deciding = decider(&request, decision, keys)?;
        four_eyes(
            run_id,
            &request,
            &asker,
            &deciding,
            request.target == crate::run::Target::Production.as_str(),
        )?;
        not_an_actor_of_the_run(store, run_id, &deciding)?;
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
    // Not stored: decided meanwhile, or a new request filed since it was read (the run
    // was taken over), which this decision was not made on.
    if let Ok(Some(now)) = pending(store, run_id) {
        if now.nonce != request.nonce {
            return Err(Error::usage(
                format!("run {run_id}'s approval request was replaced after it was shown to you (another process filed its own): nothing was decided"),
                format!("read the request again and decide on it: `runbook approve {run_id}`"),
            ));
        }
    }
    Err(match earlier {
        Some(d) => already_decided(run_id, &d),
        None => already_decided_unread(run_id),
    })
}

fn already_decided(run_id: &str, earlier: &Decision) -> Error {
    Error::usage(
        format!(
            "run {run_id}'s approval is already decided: {}",
            earlier.summary()
        ),
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
    keys: &ssh::Keys,
    expect: Option<&str>,
    wait: Duration,
    retrying: &dyn Fn(&Error),
) -> Result<Request> {
    let mut backoff = crate::interrupt::Backoff::new(wait);
    let mut told = false;
    loop {
        match decide(store, run_id, decision, keys, expect) {
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
/// decided in the meantime). `None` when Ctrl-C stopped the wait, or the run lost its lock
/// (`lost`, asked every two seconds: another run took it over and files its own request).
/// Only the request carrying `nonce` is closed: a run taken over must not close the request
/// of the run that took it. A store that cannot be read is `told` once (the wait goes on:
/// a decision stored meanwhile is read when it answers again).
pub fn wait(
    store: &Store,
    run_id: &str,
    nonce: &str,
    timeout: Duration,
    lost: &dyn Fn() -> bool,
    told: &dyn Fn(String),
) -> Option<Decision> {
    let deadline = Instant::now() + timeout;
    let mut next_check = Instant::now() + Duration::from_secs(2);
    let mut unread = false;
    loop {
        match read_decision(store, run_id, nonce) {
            Ok(Some(d)) => return Some(d),
            Ok(None) => unread = false,
            // Interrupted: the run stops below; it is not still waiting.
            Err(e) if !unread && !crate::interrupt::is_set() => {
                told(format!(
                    "warning: cannot read the approval decision ({e}); still waiting, until the deadline"
                ));
                unread = true;
            }
            Err(_) => {}
        }
        if crate::interrupt::is_set() {
            return None;
        }
        if Instant::now() >= next_check {
            if lost() {
                return None;
            }
            next_check = Instant::now() + Duration::from_secs(2);
        }
        if Instant::now() >= deadline {
            // Another process's request on file: the run was taken over. (A store that
            // cannot be read is not that: its timeout is recorded below, within its wait.)
            let replaced =
                |store: &Store| matches!(pending(store, run_id), Ok(Some(r)) if r.nonce != nonce);
            if replaced(store) {
                return None;
            }
            let closed = Decision::Timeout {
                at: crate::run::now_rfc3339(),
            };
            // A decision that landed at the last moment wins over the timeout; a store that
            // is restarting gets its wait to record the timeout.
            let wait = store.wait();
            let keys = ssh::Keys::default();
            return match decide_within(store, run_id, &closed, &keys, Some(nonce), wait, &|_| {}) {
                Ok(_) => Some(closed),
                Err(_) if replaced(store) => None,
                Err(_) => decision(store, run_id, nonce).or(Some(closed)),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A production request of `run_id` by `by`, carrying `nonce`.
    fn request(run_id: &str, by: &str, nonce: &str) -> Request {
        Request {
            run_id: run_id.into(),
            step: "gated".into(),
            requested_by: by.into(),
            requested_at: "2026-12-05T00:00:00Z".into(),
            by: "another operator".into(),
            timeout_secs: 60,
            nonce: nonce.into(),
            runbook: "gated".into(),
            title: "The change".into(),
            target: "production".into(),
            host: "bastion".into(),
            writes: Vec::new(),
            role: None,
            signature: None,
        }
    }

    /// A decision that cannot be read (here a folder where its file goes) is said once; the
    /// wait goes on to its deadline instead of waiting in silence.
    #[test]
    fn a_decision_that_cannot_be_read_is_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let say = crate::sink::Say::new(std::sync::Arc::new(crate::sink::Quiet), "run");
        let files = crate::store::Files::new(dir.path(), say).waiting(Duration::from_millis(1));
        let store: Store = std::sync::Arc::new(files);
        let run_id = "20261205T000000000Z-unread";
        let request = request(run_id, "alice", "mine");
        file(&store, &request).unwrap();
        std::fs::create_dir_all(dir.path().join(format!("approvals/{run_id}.decision"))).unwrap();
        let told = std::sync::Mutex::new(Vec::new());
        let waited = wait(
            &store,
            run_id,
            "mine",
            Duration::from_millis(300),
            &|| false,
            &|w| told.lock().unwrap().push(w),
        );
        assert!(
            matches!(waited, Some(Decision::Timeout { .. })),
            "{waited:?}"
        );
        let told = told.into_inner().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0].starts_with("warning: cannot read the approval decision"),
            "{told:?}"
        );
    }

    /// A decision made on one request is not stored over another filed since (the run was
    /// taken over between the read and the write): before, it closed the new request, which
    /// nobody could then decide (cold review of team mode).
    #[test]
    fn a_decision_is_not_stored_on_a_request_filed_since() {
        let dir = tempfile::tempdir().unwrap();
        let say = crate::sink::Say::new(std::sync::Arc::new(crate::sink::Quiet), "run");
        let store: Store = std::sync::Arc::new(crate::store::Files::new(dir.path(), say));
        let now = request("20261205T000000000Z-taken", "bob", "the-new-request");
        file(&store, &now).unwrap();
        let on = |nonce: &str| {
            serde_json::json!({ "nonce": nonce, "verdict": "timeout", "at": "2026-12-07T00:00:00Z" })
                .to_string()
        };
        assert!(!store
            .approval_put_decision(&now.run_id, &on("the-old-request"))
            .unwrap());
        assert_eq!(store.approval_decision(&now.run_id).unwrap(), None);
        assert!(store
            .approval_put_decision(&now.run_id, &on("the-new-request"))
            .unwrap());
    }

    /// A run taken over while it waited: the request on file is the new run's. At its
    /// deadline the old wait closes nothing; before, its timeout landed on the new request.
    #[test]
    fn a_wait_closes_only_its_own_request() {
        let dir = tempfile::tempdir().unwrap();
        let say = crate::sink::Say::new(std::sync::Arc::new(crate::sink::Quiet), "run");
        let store: Store = std::sync::Arc::new(crate::store::Files::new(dir.path(), say));
        let theirs = request("20261205T000000000Z-taken", "bob", "the-new-runs");
        file(&store, &theirs).unwrap();
        let waited = wait(
            &store,
            &theirs.run_id,
            "the-old-runs",
            Duration::ZERO,
            &|| false,
            &|_| {},
        );
        assert_eq!(waited, None);
        assert_eq!(decision(&store, &theirs.run_id, "the-new-runs"), None);
        // Its own request is closed as ever.
        let closed = wait(
            &store,
            &theirs.run_id,
            "the-new-runs",
            Duration::ZERO,
            &|| false,
            &|_| {},
        );
        assert!(
            matches!(closed, Some(Decision::Timeout { .. })),
            "{closed:?}"
        );
    }
}
