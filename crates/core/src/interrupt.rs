//! Ctrl-C as a flag the engine polls and a signal async calls race against.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use tokio::sync::watch;

/// The token a script terminated by Ctrl-C carries; `catch` cannot swallow a termination.
pub const INTERRUPTED: &str = "runbook::interrupted";
/// The token of a run the operator aborted at a prompt.
pub const ABORTED: &str = "runbook::aborted";

static FLAG: AtomicBool = AtomicBool::new(false);
static WATCH: OnceLock<watch::Sender<bool>> = OnceLock::new();

fn sender() -> &'static watch::Sender<bool> {
    WATCH.get_or_init(|| watch::channel(false).0)
}

pub fn is_set() -> bool {
    FLAG.load(Ordering::SeqCst)
}

pub(crate) fn trigger() {
    FLAG.store(true, Ordering::SeqCst);
    sender().send_replace(true);
}

/// Clears the flag (the REPL returns to its prompt after an interrupted input).
pub fn reset() {
    FLAG.store(false, Ordering::SeqCst);
    sender().send_replace(false);
}

/// Resolves once Ctrl-C has been pressed.
pub async fn wait() {
    let mut rx = sender().subscribe();
    // Ignore the error: the sender is static and never dropped.
    let _ = rx.wait_for(|set| *set).await;
}

/// Starts listening for Ctrl-C on the given runtime.
pub(crate) fn install(rt: &tokio::runtime::Runtime) {
    rt.spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            trigger();
        }
    });
}
