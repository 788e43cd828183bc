//! Loading every runbook of a folder (`list`, `due`): side by side, each within its own
//! load budget and all within one, so a folder with a few hostile files (a top level that
//! loops or sleeps) costs about one budget, not one each.

use super::{Runbook, SourceFile};
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a whole folder may take to load.
pub const FOLDER_BUDGET: Duration = Duration::from_secs(10);

/// How many runbooks load at once: waiting (a sleeping top level) costs no CPU, spinning
/// does, and each is stopped by its own budget either way.
const WORKERS: usize = 8;

/// A loader thread's stack, as roomy as the main thread's (rhai walks nested values
/// recursively; only touched pages cost memory).
const STACK_BYTES: usize = 512 << 20;

/// Loads each of `paths` and keeps what `summarise` takes from it (a loaded runbook stays
/// on the thread that loaded it). In the order of `paths`; a file not started before the
/// folder's budget ran out is an error saying so.
pub fn load_each<T: Send>(
    paths: &[PathBuf],
    summarise: impl Fn(&Runbook) -> T + Sync,
) -> Vec<(PathBuf, Result<T>)> {
    let deadline = Instant::now() + FOLDER_BUDGET;
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..paths.len()).map(|_| None).collect());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = paths.get(i) else { return };
        let left = deadline.saturating_duration_since(Instant::now());
        let loaded = if left.is_zero() {
            Err(Error::usage(
                format!(
                    "{}: not loaded: the folder's load budget of {} ran out first",
                    path.display(),
                    crate::interrupt::human(FOLDER_BUDGET)
                ),
                "`runbook check` on the folder's other files names the ones that take their whole budget",
            ))
        } else {
            // The folder's remaining time bounds this file's own budget.
            let _folder = crate::interrupt::budget(
                left,
                &format!("loading the folder of {}", path.display()),
                "move work out of the runbooks' top levels, into steps",
            );
            SourceFile::read(path)
                .and_then(Runbook::load)
                .map(|r| summarise(&r))
        };
        if let Some(slot) = done.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
            *slot = Some(loaded);
        }
    };
    std::thread::scope(|s| {
        let spawned = (0..WORKERS.min(paths.len()))
            .filter(|_| {
                std::thread::Builder::new()
                    .stack_size(STACK_BYTES)
                    .spawn_scoped(s, work)
                    .is_ok()
            })
            .count();
        // No thread to be had (a tight ulimit): one after another, here.
        if spawned == 0 {
            work();
        }
    });
    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    paths
        .iter()
        .cloned()
        .zip(done)
        .map(|(p, r)| {
            let r = r.unwrap_or_else(|| {
                Err(Error::Internal {
                    message: format!("{} was not loaded", p.display()),
                })
            });
            (p, r)
        })
        .collect()
}
