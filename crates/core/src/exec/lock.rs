//! One running rotation per runbook and target at a time: a lock slot in the store (a file
//! created with `O_EXCL`, or a lease row in the shared database that a heartbeat renews),
//! naming its holder, freed when the run ends.

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::store::{Slot, Store};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

pub use crate::store::Holder;

pub struct Lock {
    store: Store,
    /// Where its warnings go.
    say: crate::sink::Say,
    key: String,
    /// This taking of the lock: renewed and released by it.
    lease_id: String,
    held: bool,
    /// Set when the lock was taken from another holder (`--break-lock`, or this run's own
    /// dead process): who that was, if its record said.
    broken: Option<Option<Holder>>,
    /// Stops the lease's heartbeat (dropping it does).
    heartbeat: Option<mpsc::Sender<()>>,
    /// Set by the heartbeat when the lease was found taken by another run.
    lost: Arc<AtomicBool>,
}

/// Whether to take a lock another run holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BreakLock {
    #[default]
    No,
    /// `--break-lock`: only from a holder that is gone (its lease ran out, its process on
    /// this machine is dead) or whose record cannot be read.
    IfDead,
    /// `--break-lock --lease-id ID`: that taking of the lock, even while its holder lives
    /// (it stops before its next write). The id, typed back from the refusal, is the
    /// confirmation.
    Taking(String),
}

impl BreakLock {
    pub fn from_flags(break_lock: bool, lease_id: Option<String>) -> BreakLock {
        match (break_lock, lease_id) {
            (false, _) => BreakLock::No,
            (true, None) => BreakLock::IfDead,
            (true, Some(id)) => BreakLock::Taking(id.trim().to_string()),
        }
    }
}

/// The lock's name: the secret a rotation changes, not how it is run. It is the runbook's
/// declared `secret` (or its id when it declares none) and the values of the params marked
/// `locates` (a server, a project): every other param (a log window, a test address) could
/// differ between two runs of the same rotation, and must not let both run at once. Values
/// are compared as the vendor compares them (`Locates::canonical`): `/` and `//`, or an IAM
/// user's name in another case, are one secret and one lock.
pub fn key(plan: &Plan, params: &Value) -> String {
    let meta = plan.meta();
    let name = meta.secret.as_deref().unwrap_or(&meta.id);
    let mut locating: Vec<(&str, String)> = plan
        .params
        .iter()
        .filter(|p| p.locates.locates())
        .map(|p| {
            (
                p.name.as_str(),
                p.locates.canonical(&params[&p.name]).to_string(),
            )
        })
        .collect();
    locating.sort();
    let text = serde_json::to_string(&locating).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{hex}")
}

/// The lock a run takes for rotation `key`: a rehearsal's (sandbox or loopback) is its own,
/// so a rehearsal never waits on a production run's lock (a crashed production run must not
/// stop anyone rehearsing the fix), and production never waits on a rehearsal's.
pub fn lock_name(key: &str, target: crate::run::Target) -> String {
    match target {
        crate::run::Target::Production => key.to_string(),
        crate::run::Target::Sandbox | crate::run::Target::Loopback => format!("{key}.rehearsal"),
    }
}

/// Every lock held in the store.
pub fn holders(store: &Store) -> Result<Vec<Holder>> {
    store.lock_holders()
}

impl Lock {
    /// Takes the lock for `run_id`. If another run holds it, fails naming the holder, unless
    /// `break_lock` (journalled by the caller) or the holder is this same run resuming after
    /// its process died (or, on a shared store, its lease ran out).
    pub(crate) fn acquire(
        store: &Store,
        key: &str,
        run_id: &str,
        actor: &str,
        break_lock: &BreakLock,
        say: &crate::sink::Say,
    ) -> Result<Lock> {
        let mut broken = None;
        for _ in 0..2 {
            let me = Holder {
                run_id: run_id.to_string(),
                actor: actor.to_string(),
                pid: std::process::id(),
                host: crate::run::hostname(),
                since: crate::run::now_rfc3339(),
                lease_id: uuid::Uuid::new_v4().simple().to_string(),
                expires: None,
                expired: false,
                pid_space: crate::run::pid_space().to_string(),
                lock: key.to_string(),
            };
            if store.lock_create(key, &me)? {
                return Lock::taken(store, key, me, broken, say);
            }
            let h = match store.lock_read(key)? {
                Slot::Free => continue,
                Slot::Held(h) => h,
            };
            let same_run = h.as_ref().is_some_and(|h| h.run_id == run_id);
            let dead = h.as_ref().is_some_and(Holder::is_dead);
            let breaking = match (break_lock, h.as_ref()) {
                (BreakLock::No, _) => false,
                // A record that cannot be read names no live holder.
                (_, None) => true,
                (BreakLock::IfDead, Some(h)) if !dead => return Err(alive(h)),
                (BreakLock::IfDead, Some(_)) => true,
                (BreakLock::Taking(id), Some(h)) if *id != h.lease_id => {
                    return Err(Error::LockHeld {
                        message: format!(
                            "--lease-id {id} is not the lease run {} holds the lock by (it may have been taken again since)",
                            h.run_id
                        ),
                        help: "read the lease id again in the message --break-lock alone prints, and type it exactly".into(),
                    })
                }
                (BreakLock::Taking(_), Some(_)) => true,
            };
            if !(breaking || (same_run && dead)) {
                return Err(held(h.as_ref(), dead));
            }
            // Only the taking that was read is removed; one found dead by its lease only
            // while the lease is still out (a holder that woke up and renewed keeps it),
            // --break-lock alone included. A lease id typed back takes it whatever.
            let expired_only = !matches!(break_lock, BreakLock::Taking(_))
                && h.as_ref().is_some_and(|h| h.expired);
            let lease = h
                .as_ref()
                .map(|h| h.lease_id.as_str())
                .filter(|l| !l.is_empty());
            crate::hooks::pause_point("break");
            store.lock_remove(key, lease, expired_only)?;
            broken = Some(h);
        }
        Err(Error::LockHeld {
            message: format!("cannot take the lock {key} in {}", store.describe()),
            help: "another run took it at the same moment; try again".into(),
        })
    }

    /// The lock `me` just took: held until released, its lease (on a shared store) renewed
    /// by a heartbeat.
    fn taken(
        store: &Store,
        key: &str,
        me: Holder,
        broken: Option<Option<Holder>>,
        say: &crate::sink::Say,
    ) -> Result<Lock> {
        if let Some(path) = store.lock_path(key) {
            crate::interrupt::hold(path, &me.lease_id);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = match store.lease() {
            None => None,
            Some(lease) => Some(heartbeat(
                store.for_heartbeat()?,
                key,
                &me,
                lease,
                lost.clone(),
                say.clone(),
            )),
        };
        Ok(Lock {
            store: store.clone(),
            say: say.clone(),
            key: key.to_string(),
            lease_id: me.lease_id,
            held: true,
            broken,
            heartbeat,
            lost,
        })
    }

    /// Why the run must not go on: its lock was found taken by another run. The store is
    /// asked here too (a lease renewed, a lock file read), so a step never starts on a lock
    /// that is gone: on files nothing else asks between writes (before, a run whose lock
    /// file another taking held went on into its next step and filed its approval request
    /// over the new holder's). A store that does not answer is left to the writes' fence
    /// and the heartbeat's warning.
    pub fn lost(&self) -> Option<String> {
        if self.held && !self.lost.load(Ordering::SeqCst) {
            if let Ok(false) = self.store.lock_renew(&self.key, &self.lease_id) {
                self.lost.store(true, Ordering::SeqCst);
            }
        }
        self.lost.load(Ordering::SeqCst).then(|| {
            "this run no longer holds its rotation lock: another run took it (--break-lock, or after this run's lease ran out), or its lock was removed; it stops here so two runs do not rotate the same secret; see `runbook runs`".to_string()
        })
    }

    /// What the vendor clients ask before they send a write again (a retry after a 429 or
    /// a lost connection, maybe minutes later): whether this taking still holds the lock,
    /// asked of the store itself (the heartbeat's word can be a third of a lease late, and
    /// it says nothing while the database does not answer). A lock that cannot be
    /// confirmed stops the retry too.
    pub fn write_fence(&self) -> runbook_vendors::WriteFence {
        let (lost, store, fence) = (self.lost.clone(), self.store.clone(), self.fence());
        Box::new(move || {
            let taken = "this run no longer holds its rotation lock (another run took it, or its lock was removed)";
            if lost.load(Ordering::SeqCst) {
                return Some(taken.to_string());
            }
            match store.lock_renew(&fence.key, &fence.lease_id) {
                Ok(true) => None,
                Ok(false) => {
                    lost.store(true, Ordering::SeqCst);
                    Some(taken.to_string())
                }
                Err(e) => Some(format!(
                    "this run cannot confirm it still holds its rotation lock ({e})"
                )),
            }
        })
    }

    /// The lock's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What a write's record is fenced by: this taking of this lock.
    pub fn fence(&self) -> crate::store::Fence {
        crate::store::Fence {
            key: self.key.clone(),
            lease_id: self.lease_id.clone(),
        }
    }

    /// This taking of the lock.
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    /// When the lock was broken: the holder it was taken from, if known.
    pub(crate) fn broken(&self) -> Option<Option<&Holder>> {
        self.broken.as_ref().map(Option::as_ref)
    }

    pub fn release(&mut self) {
        if self.held {
            self.heartbeat = None;
            if let Err(e) = self
                .store
                .lock_remove(&self.key, Some(&self.lease_id), false)
            {
                // A file lock has no lease: it stays until removed.
                let after = match (self.store.lease(), self.store.lock_path(&self.key)) {
                    (None, Some(path)) => format!(
                        "it stays until removed: once this run is done with, `rm {}` or take it with `--break-lock`",
                        path.display()
                    ),
                    _ => "it frees itself when its lease runs out".to_string(),
                };
                self.say.warning(format!(
                    "warning: could not release the rotation lock: {e}; {after}"
                ));
            }
            if let Some(path) = self.store.lock_path(&self.key) {
                crate::interrupt::release(&path);
            }
            self.held = false;
        }
    }
}

/// Renews a lease at a third of its length until told to stop, on a connection of its own,
/// so a live run keeps its lock and a dead one loses it within one lease. A lease found
/// taken (someone broke the lock) sets `lost`: the run stops before its next step.
fn heartbeat(
    store: Store,
    key: &str,
    me: &Holder,
    lease: std::time::Duration,
    lost: Arc<AtomicBool>,
    say: crate::sink::Say,
) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let (key, lease_id, run_id) = (key.to_string(), me.lease_id.clone(), me.run_id.clone());
    let every = (lease / 3).max(std::time::Duration::from_millis(100));
    let warn = say.clone();
    let spawned = std::thread::Builder::new()
        .name("runbook-lease".into())
        .spawn(move || {
            let mut store = store;
            let mut warned = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let renewed = store.lock_renew(&key, &lease_id);
                // A connection that stopped answering is never used again (its call may
                // still take effect); a renewal is safe to repeat, so the heartbeat opens
                // another for the next one. (Only then: other errors keep the connection,
                // which reconnects by itself, and no thread is opened per failure.)
                let stalled = matches!(&renewed, Err(crate::error::Error::State { message, .. })
                    if message.contains("no answer") || message.contains("stopped answering"));
                if stalled {
                    if let Ok(fresh) = store.for_heartbeat() {
                        store = fresh;
                    }
                }
                match renewed {
                    // The operator was told the lock might be taken: told it is not.
                    Ok(true) if warned => {
                        warn.warning(format!(
                            "the rotation lock is renewed again; run {run_id} keeps it"
                        ));
                        warned = false;
                    }
                    Ok(true) => {}
                    Ok(false) => {
                        if !lost.swap(true, Ordering::SeqCst) {
                            warn.warning(format!(
                                "warning: run {run_id} no longer holds its rotation lock (another run took it); it stops before its next step"
                            ));
                        }
                        return;
                    }
                    Err(e) if !warned => {
                        warn.warning(format!(
                            "warning: cannot renew the rotation lock: {e}; if this lasts a whole lease ({} s), another run may take it",
                            lease.as_secs()
                        ));
                        warned = true;
                    }
                    Err(_) => {}
                }
            }
        });
    if let Err(e) = spawned {
        say.warning(format!(
            "warning: cannot start the lock's heartbeat ({e}); the lease runs out in {} s",
            lease.as_secs()
        ));
    }
    stop
}

/// `--break-lock` alone, refused: the holder is alive.
fn alive(h: &Holder) -> Error {
    Error::LockHeld {
        message: format!(
            "run {} by {} (pid {} on {}{}) is alive and holds this rotation's lock: --break-lock alone takes only a lock whose holder is gone",
            h.run_id,
            crate::text::truncate(&h.actor, 80),
            h.pid,
            crate::text::truncate(&h.host, 80),
            h.expires
                .as_deref()
                .map(|e| format!(", its lease renewed until {e}"))
                .unwrap_or_default()
        ),
        help: format!(
            "if it must stop, take its lease with --break-lock --lease-id {} (it stops before its next write, and the taking is journalled and audited)",
            h.lease_id
        ),
    }
}

fn held(h: Option<&Holder>, dead: bool) -> Error {
    let (who, run_id) = match h {
        Some(h) => (
            format!(
                "run {} by {} since {}{} (pid {} on {}{})",
                h.run_id,
                h.actor,
                h.since,
                age(&h.since)
                    .map(|a| format!(", {a} ago"))
                    .unwrap_or_default(),
                h.pid,
                h.host,
                match (&h.expires, h.expired, dead) {
                    (Some(at), true, _) =>
                        format!(", its lease ran out at {at}: no longer running"),
                    (_, _, true) => ", no longer running".to_string(),
                    _ => String::new(),
                }
            ),
            h.run_id.as_str(),
        ),
        None => ("a run whose lock record is unreadable".to_string(), "?"),
    };
    let help = if dead {
        format!("that process is no longer running: finish or undo its run with `runbook resume {run_id}` / `runbook rollback {run_id}`, or take the lock with --break-lock")
    } else {
        "wait for it to finish; if its holder is gone for good, use --break-lock".to_string()
    };
    Error::LockHeld {
        message: format!("this rotation is already running: {who}"),
        help,
    }
}

/// `3h 12m` since an RFC 3339 time.
fn age(since: &str) -> Option<String> {
    let t =
        time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    Some(match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    })
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.release();
    }
}
