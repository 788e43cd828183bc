//! One running rotation per runbook and target at a time: a lock file created with
//! `O_EXCL`, naming its holder, removed when the run ends.

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::run;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Who holds a lock, as written in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub actor: String,
    pub pid: u32,
    pub host: String,
    pub since: String,
}

impl Holder {
    /// Whether the holder is a process of this host that no longer runs.
    pub(crate) fn is_dead(&self) -> bool {
        self.host == run::hostname() && !run::pid_alive(i64::from(self.pid))
    }

    pub fn is_alive_here(&self) -> bool {
        self.host == run::hostname() && run::pid_alive(i64::from(self.pid))
    }
}

pub struct Lock {
    path: PathBuf,
    held: bool,
    /// Set when the lock was taken from another holder (`--break-lock`, or this run's own
    /// dead process): who that was, if its lock file said.
    broken: Option<Option<Holder>>,
}

/// The lock's name: the secret a rotation changes, not how it is run. It is the runbook's
/// declared `secret` (or its id when it declares none) and the values of the params marked
/// `locates` (a server, a project): every other param (a log window, a test address) could
/// differ between two runs of the same rotation, and must not let both run at once.
pub fn key(plan: &Plan, params: &Value) -> String {
    let meta = plan.meta();
    let name = meta.secret.as_deref().unwrap_or(&meta.id);
    let mut locating: Vec<(&str, String)> = plan
        .params
        .iter()
        .filter(|p| p.locates)
        .map(|p| (p.name.as_str(), params[&p.name].to_string()))
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

/// Who holds a lock, as recorded in it; `None` when unreadable.
pub fn holder(path: &Path) -> Option<Holder> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Every lock held in `state_dir`.
pub fn holders(state_dir: &Path) -> Vec<Holder> {
    std::fs::read_dir(state_dir.join("locks"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| holder(&e.path()))
        .collect()
}

impl Lock {
    pub(crate) fn path_for(state_dir: &Path, key: &str) -> PathBuf {
        state_dir.join("locks").join(format!("{key}.lock"))
    }

    /// Takes the lock for `run_id`. If another run holds it, fails naming the holder, unless
    /// `break_lock` (journalled by the caller) or the holder is this same run resuming after
    /// its process died.
    pub(crate) fn acquire(
        state_dir: &Path,
        key: &str,
        run_id: &str,
        actor: &str,
        break_lock: bool,
    ) -> Result<Lock> {
        let path = Self::path_for(state_dir, key);
        if let Some(parent) = path.parent() {
            crate::state::ensure_dir(parent).map_err(|source| Error::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut broken = None;
        for _ in 0..2 {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match created {
                Ok(mut f) => {
                    let me = Holder {
                        run_id: run_id.to_string(),
                        actor: actor.to_string(),
                        pid: std::process::id(),
                        host: run::hostname(),
                        since: run::now_rfc3339(),
                    };
                    let text = serde_json::to_string(&me).unwrap_or_default();
                    let _ = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
                    crate::interrupt::hold(path.clone());
                    return Ok(Lock {
                        path,
                        held: true,
                        broken,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let h = holder(&path);
                    let same_run = h.as_ref().is_some_and(|h| h.run_id == run_id);
                    let dead = h.as_ref().is_some_and(Holder::is_dead);
                    if break_lock || (same_run && dead) {
                        let _ = std::fs::remove_file(&path);
                        broken = Some(h);
                        continue;
                    }
                    return Err(held(h.as_ref(), dead));
                }
                Err(source) => return Err(Error::Write { path, source }),
            }
        }
        Err(Error::LockHeld {
            message: format!("cannot take the lock {}", path.display()),
            help: "another run took it at the same moment; try again".into(),
        })
    }

    /// When the lock was broken: the holder it was taken from, if known.
    pub(crate) fn broken(&self) -> Option<Option<&Holder>> {
        self.broken.as_ref().map(Option::as_ref)
    }

    pub fn release(&mut self) {
        if self.held {
            let _ = std::fs::remove_file(&self.path);
            crate::interrupt::release(&self.path);
            self.held = false;
        }
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
                if dead { ", no longer running" } else { "" }
            ),
            h.run_id.as_str(),
        ),
        None => ("a run whose lock file is unreadable".to_string(), "?"),
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
