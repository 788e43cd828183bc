//! Ctrl-C as a flag the engine polls and a signal async calls race against. SIGTERM and
//! SIGHUP (a supervisor stopping us, a closed terminal) interrupt the same way; if the
//! process is stuck where it cannot notice (blocked reading a prompt), it releases the
//! rotation locks it holds, restores the terminal and exits a few seconds later.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
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

/// Lock files this process holds, removed if it has to exit without unwinding.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers a lock file to remove on a forced exit.
pub(crate) fn hold(path: PathBuf) {
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(path);
}

/// The lock file was released normally.
pub(crate) fn release(path: &std::path::Path) {
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// How long a terminated process has to stop by itself before it is made to.
const GRACE: Duration = Duration::from_secs(3);

/// Starts listening for Ctrl-C, SIGTERM and SIGHUP on the given runtime.
pub(crate) fn install(rt: &tokio::runtime::Runtime) {
    let terminal = saved_terminal();
    rt.spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            trigger();
        }
    });
    use tokio::signal::unix::{signal, SignalKind};
    // Signal streams register with the runtime that is current when they are made.
    let _entered = rt.enter();
    for (kind, number) in [
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
    ] {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        rt.spawn(async move {
            if stream.recv().await.is_some() {
                trigger();
                tokio::time::sleep(GRACE).await;
                forced_exit(terminal, number);
            }
        });
    }
}

/// The terminal's settings at start, to put back if we exit from raw mode.
fn saved_terminal() -> Option<libc::termios> {
    // SAFETY: tcgetattr writes a termios for a valid descriptor, or fails.
    unsafe {
        if libc::isatty(libc::STDIN_FILENO) != 1 {
            return None;
        }
        let mut t: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0).then_some(t)
    }
}

fn forced_exit(terminal: Option<libc::termios>, signal: i32) -> ! {
    for path in HELD.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = std::fs::remove_file(path);
    }
    if let Some(t) = terminal {
        // SAFETY: restoring settings read from the same descriptor at start.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
        }
    }
    std::process::exit(128 + signal)
}
