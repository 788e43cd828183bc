//! One running rotation per runbook and target at a time: a lock file created with
//! `O_EXCL`, naming its holder, removed when the run ends.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct Lock {
    path: PathBuf,
    held: bool,
}

/// The lock's name: the runbook id and a hash of the params that pick the target.
pub fn key(runbook_id: &str, params: &Value) -> String {
    let digest = Sha256::digest(params.to_string().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{runbook_id}-{hex}")
}

fn pid_alive(pid: i64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Who holds a lock, as recorded in it.
pub fn holder(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

impl Lock {
    pub fn path_for(state_dir: &Path, key: &str) -> PathBuf {
        state_dir.join("locks").join(format!("{key}.lock"))
    }

    /// Takes the lock for `run_id`. If another run holds it, fails naming the holder, unless
    /// `break_lock` (journalled by the caller) or the holder is this same run resuming after
    /// its process died.
    pub fn acquire(
        state_dir: &Path,
        key: &str,
        run_id: &str,
        actor: &str,
        break_lock: bool,
    ) -> Result<(Lock, Option<Value>)> {
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
                    let me = json!({
                        "run_id": run_id,
                        "actor": actor,
                        "pid": std::process::id(),
                        "host": super::hostname(),
                        "since": crate::audit::now_rfc3339(),
                    });
                    let _ = f
                        .write_all(me.to_string().as_bytes())
                        .and_then(|_| f.sync_all());
                    return Ok((Lock { path, held: true }, broken));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let h = holder(&path).unwrap_or(Value::Null);
                    let same_run = h["run_id"] == run_id;
                    let dead = h["host"] == super::hostname()
                        && !pid_alive(h["pid"].as_i64().unwrap_or(0));
                    if break_lock || (same_run && dead) {
                        let _ = std::fs::remove_file(&path);
                        broken = Some(h);
                        continue;
                    }
                    let who = format!(
                        "run {} by {} since {} (pid {} on {})",
                        h["run_id"].as_str().unwrap_or("?"),
                        h["actor"].as_str().unwrap_or("?"),
                        h["since"].as_str().unwrap_or("?"),
                        h["pid"],
                        h["host"].as_str().unwrap_or("?"),
                    );
                    let help = if dead {
                        format!("that process is no longer running: finish or undo its run with `runbook resume {0}` / `runbook rollback {0}`, or take the lock with --break-lock", h["run_id"].as_str().unwrap_or("?"))
                    } else {
                        "wait for it to finish; if its holder is gone for good, use --break-lock"
                            .to_string()
                    };
                    return Err(Error::usage(
                        format!("this rotation is already running: {who}"),
                        help,
                    ));
                }
                Err(source) => return Err(Error::Write { path, source }),
            }
        }
        Err(Error::usage(
            format!("cannot take the lock {}", path.display()),
            "another run took it at the same moment; try again",
        ))
    }

    pub fn release(&mut self) {
        if self.held {
            let _ = std::fs::remove_file(&self.path);
            self.held = false;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.release();
    }
}
