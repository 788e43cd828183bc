//! Ctrl-C as a flag the engine polls and a signal async calls race against. SIGTERM and
//! SIGHUP (a supervisor stopping us, a closed terminal) interrupt the same way; if the
//! process is stuck where it cannot notice (blocked reading a prompt), it releases the
//! rotation locks it holds, restores the terminal and exits a few seconds later.

use runbook_vendors::transport::StepEnd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// The token a script terminated by Ctrl-C carries; `catch` cannot swallow a termination.
pub const INTERRUPTED: &str = "runbook::interrupted";
/// The token of a run the operator aborted at a prompt.
pub const ABORTED: &str = "runbook::aborted";
/// Ends a script when a write could not be recorded before it was sent (the store is down,
/// or the run's lease is gone); the reason follows the prefix.
pub const FENCED: &str = "runbook::state::unrecorded: ";

static FLAG: AtomicBool = AtomicBool::new(false);
static WATCH: OnceLock<watch::Sender<bool>> = OnceLock::new();
/// When the flag was set: waits bounded "after the interrupt" count from it, not from
/// each call's start (a store that holds every call would otherwise hold each for it).
static SINCE: Mutex<Option<std::time::Instant>> = Mutex::new(None);

fn sender() -> &'static watch::Sender<bool> {
    WATCH.get_or_init(|| watch::channel(false).0)
}

pub fn is_set() -> bool {
    FLAG.load(Ordering::SeqCst)
}

/// The signal that set the flag first (0: none yet), for `cause`.
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// What interrupted the run, as an operator reads it: "Ctrl-C", or the signal another
/// process sent (a dropped SSH session's SIGHUP, systemd's or `timeout`'s SIGTERM), which
/// is not something they pressed (a fault review).
pub fn cause() -> &'static str {
    match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP (the terminal went away)",
        _ => "Ctrl-C",
    }
}

pub(crate) fn trigger() {
    trigger_by(libc::SIGINT);
}

fn trigger_by(signal: i32) {
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    SINCE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(std::time::Instant::now);
    FLAG.store(true, Ordering::SeqCst);
    sender().send_replace(true);
}

/// When the run was interrupted, if it was.
pub fn since() -> Option<std::time::Instant> {
    if !is_set() {
        return None;
    }
    *SINCE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clears the flag (the REPL returns to its prompt after an interrupted input).
pub fn reset() {
    FLAG.store(false, Ordering::SeqCst);
    // The next interrupt names its own cause (the REPL goes on after a Ctrl-C).
    SIGNAL.store(0, Ordering::SeqCst);
    *SINCE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    sender().send_replace(false);
}

/// Resolves once Ctrl-C has been pressed.
pub async fn wait() {
    let mut rx = sender().subscribe();
    // Ignore the error: the sender is static and never dropped.
    let _ = rx.wait_for(|set| *set).await;
}

/// Lock files this process holds, each with the lease id it wrote there, removed if it
/// has to exit without unwinding.
static HELD: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// Registers a lock file to remove on a forced exit, while it still names `lease_id`.
pub(crate) fn hold(path: PathBuf, lease_id: &str) {
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path, lease_id.to_string()));
}

/// The lock file was released normally.
pub(crate) fn release(path: &std::path::Path) {
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| p != path);
}

/// How long a terminated process has to stop by itself before it is made to.
const GRACE: Duration = Duration::from_secs(3);

/// Whether `signal` was set to be ignored when the process started (`nohup` ignores
/// SIGHUP; a shell ignores SIGINT for a job it runs in the background): a listener would
/// replace that, and a dropped session would stop a run its operator protected from it.
fn ignored_at_start(signal: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Starts listening for Ctrl-C, SIGTERM and SIGHUP on the given runtime, except for those
/// the process was started ignoring.
pub(crate) fn install(rt: &tokio::runtime::Runtime) {
    let terminal = saved_terminal();
    let sigint = !ignored_at_start(libc::SIGINT);
    rt.spawn(async move {
        if !sigint {
            return;
        }
        while tokio::signal::ctrl_c().await.is_ok() {
            // A second Ctrl-C before the first was handled: whatever the process waits on
            // (a plain read on a terminal rustyline does not drive, a call that does not
            // look at the flag), the operator gets out. What is journalled stays.
            if FLAG.load(Ordering::SeqCst) {
                forced_exit(terminal, libc::SIGINT);
            }
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
        if ignored_at_start(number) {
            continue;
        }
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        rt.spawn(async move {
            if stream.recv().await.is_some() {
                trigger_by(number);
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

/// What the binary does before a forced exit (clear a spinner it drew).
static BEFORE_FORCED_EXIT: OnceLock<fn(i32)> = OnceLock::new();

/// Registers what to do before a forced exit (given the signal: SIGINT for a second
/// Ctrl-C); the first registration counts. The engine prints nothing itself.
pub fn on_forced_exit(f: fn(i32)) {
    let _ = BEFORE_FORCED_EXIT.set(f);
}

/// Removes the lock files this process holds, but only those still its taking: one broken
/// and taken by another run (a resume with --break-lock while this one hung) is that run's.
fn remove_held_locks() {
    let held: Vec<(PathBuf, String)> = HELD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    remove_locks(held);
}

/// Removes each lock file of `held` that still names its taking.
fn remove_locks(held: Vec<(PathBuf, String)>) {
    for (path, lease) in held {
        // The lock file names its taking (`lease_id`, the store's `Holder`).
        let ours = std::fs::read_to_string(&path).is_ok_and(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|h| h["lease_id"].as_str() == Some(lease.as_str()))
        });
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn forced_exit(terminal: Option<libc::termios>, signal: i32) -> ! {
    if let Some(f) = BEFORE_FORCED_EXIT.get() {
        f(signal);
    }
    remove_held_locks();
    if let Some(t) = terminal {
        // SAFETY: restoring settings read from the same descriptor at start.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
        }
    }
    std::process::exit(128 + signal)
}

/// The token of a script stopped by its wall-clock budget; the message follows it.
pub const TIMED_OUT: &str = "runbook::timeout";

/// A wall-clock budget for what runs now: loading a runbook, or one step. Script code
/// (through the engine's progress hook), `time::sleep` and vendor calls all stop at it.
struct Budget {
    /// Shared with the tasks the step starts (`transport::within_step`): a pause for the
    /// operator moves their end too.
    end: StepEnd,
    limit: Duration,
    what: String,
    help: String,
}

// Per thread: what runs on a thread (a load, a step, and the vendor calls it blocks on) has
// its own budget, so runbooks can be loaded side by side, each within its own.
thread_local! {
    static BUDGET: std::cell::RefCell<Option<Budget>> = const { std::cell::RefCell::new(None) };
}

/// Restores the budget that was in force before it was made.
pub struct BudgetGuard(Option<Budget>);

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        BUDGET.with(|b| *b.borrow_mut() = previous);
    }
}

/// Starts a budget of `limit` for `what` ("loading x.rhai", "step 'revoke'"), with the
/// help shown when it runs out. Nested budgets (a step inside a load) keep the tighter one.
pub fn budget(limit: Duration, what: &str, help: &str) -> BudgetGuard {
    BUDGET.with(|slot| {
        let mut slot = slot.borrow_mut();
        let until = std::time::Instant::now() + limit;
        let previous = slot.take();
        let tighter = previous.as_ref().is_some_and(|p| p.end.at() < until);
        *slot = Some(match (&previous, tighter) {
            (Some(p), true) => Budget {
                end: p.end.clone(),
                limit: p.limit,
                what: p.what.clone(),
                help: p.help.clone(),
            },
            _ => Budget {
                end: StepEnd::new(until),
                limit,
                what: what.to_string(),
                help: help.to_string(),
            },
        });
        BudgetGuard(previous)
    })
}

/// Waiting for the operator (a prompt) does not count against a step's budget.
pub struct PauseGuard(std::time::Instant);

pub fn pause_budget() -> PauseGuard {
    PauseGuard(std::time::Instant::now())
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let waited = self.0.elapsed();
        BUDGET.with(|b| {
            if let Some(b) = b.borrow_mut().as_mut() {
                b.end.later_by(waited);
            }
        });
    }
}

/// When the budget in force runs out, if there is one.
pub fn budget_deadline() -> Option<std::time::Instant> {
    budget_end().map(|end| end.at())
}

/// The end of the budget in force, as the tasks a step starts share it (a pause for the
/// operator moves it), if there is one.
pub fn budget_end() -> Option<StepEnd> {
    BUDGET.with(|b| b.borrow().as_ref().map(|b| b.end.clone()))
}

/// The termination token for a spent budget (`runbook::timeout` + what and help), or None.
pub fn over_budget() -> Option<String> {
    BUDGET.with(|slot| {
        let slot = slot.borrow();
        let b = slot.as_ref()?;
        if std::time::Instant::now() < b.end.at() {
            return None;
        }
        Some(format!(
            "{TIMED_OUT}\n{} ran past its limit of {}\n{}",
            b.what,
            human(b.limit),
            b.help
        ))
    })
}

/// `90s`, `10m`, `2h`: the way `.timeout()` takes it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Parses `30s`, `10m`, `2h` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Waiting for something to come back (a state store restarting): pauses that double from a
/// quarter second up to five, for at most `limit` in all, cut short by Ctrl-C.
pub struct Backoff {
    started: std::time::Instant,
    limit: Duration,
    pause: Duration,
}

impl Backoff {
    pub fn new(limit: Duration) -> Backoff {
        Backoff {
            started: std::time::Instant::now(),
            limit,
            pause: Duration::from_millis(250),
        }
    }

    /// Waits before the next try; `false`, without waiting, once the time is up or Ctrl-C
    /// came.
    pub fn wait(&mut self) -> bool {
        let spent = self.started.elapsed();
        if spent >= self.limit || is_set() {
            return false;
        }
        let until = std::time::Instant::now() + self.pause.min(self.limit - spent);
        while !is_set() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        self.pause = (self.pause * 2).min(Duration::from_secs(5));
        !is_set()
    }
}

#[cfg(test)]
mod held_tests {
    /// A forced exit removes this process's lock, not one another run took from it.
    /// Before, every registered path was removed, whoever's lock it had become.
    #[test]
    fn a_forced_exit_leaves_a_lock_another_run_took() {
        let dir = tempfile::tempdir().unwrap();
        let holder = |lease: &str| {
            format!(
                r#"{{"run_id":"r","actor":"a","pid":1,"host":"h","since":"s","lease_id":"{lease}"}}"#
            )
        };
        let (mine, taken) = (dir.path().join("mine.lock"), dir.path().join("taken.lock"));
        std::fs::write(&mine, holder("m")).unwrap();
        std::fs::write(&taken, holder("theirs")).unwrap();
        // Not through the process's own list: another test's session in this process
        // holds a lock there, and draining it removed that lock mid-run (a flaky test).
        super::remove_locks(vec![
            (mine.clone(), "m".into()),
            (taken.clone(), "t".into()),
        ]);
        assert!(!mine.exists());
        assert!(taken.exists());
    }
}

#[cfg(test)]
mod budget_tests {
    use std::time::{Duration, Instant};

    /// A task a step starts (a write sent ahead, a fan-out) shares the step's end: a pause
    /// for the operator after it started moves its end as it moves the step's. Before, the
    /// task kept a copy of the end as it was when it started, and gave up waits early.
    #[test]
    fn a_pause_for_the_operator_moves_the_end_of_the_tasks_already_started() {
        let _step = super::budget(Duration::from_secs(60), "step 'x'", "");
        let task_end = super::budget_end().unwrap();
        let before = task_end.at();
        let paused = super::pause_budget();
        let waited_from = Instant::now();
        // The pause lasts until the clock moves on: no sleep, a bounded spin.
        while Instant::now() <= waited_from {}
        drop(paused);
        assert!(task_end.at() > before, "the task's end did not move");
        assert_eq!(Some(task_end.at()), super::budget_deadline());
        // A looser budget nested in the step keeps the step's end: the same clock.
        let inner = super::budget(Duration::from_secs(3600), "inner", "");
        assert_eq!(super::budget_deadline(), Some(task_end.at()));
        drop(inner);
    }
}
