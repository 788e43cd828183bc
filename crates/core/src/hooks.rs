//! Test seams, compiled into a build only with the `test-hooks` feature (the tests' own).

/// `RUNBOOK_CRASH_AT=started:STEP`, `after:STEP`, `inside:STEP`, `inside:STEP#N` or
/// `undone:STEP` kills the process (SIGKILL) once that step's start is journalled (before
/// it does anything), after it completes, after its first write, after its Nth, or after
/// its undo ends (a rollback that dies between two undos). A
/// fault-injection hook for the crash tests: it lets them prove that resume and rollback
/// recover from a machine that died there. Only in builds with the `test-hooks` feature
/// (the tests'); a release build has none.
#[cfg(feature = "test-hooks")]
pub(crate) fn crash_point(when: &str, step: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let Ok(at) = std::env::var("RUNBOOK_CRASH_AT") else {
        return;
    };
    let (at, nth) = match at.split_once('#') {
        Some((at, n)) => (at.to_string(), n.parse().unwrap_or(1)),
        None => (at, 1),
    };
    if at.split_once(':') != Some((when, step)) {
        return;
    }
    let reached = when != "inside" || WRITES.fetch_add(1, Ordering::SeqCst) + 1 >= nth;
    if reached {
        // SAFETY: signalling our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn crash_point(_when: &str, _step: &str) {}

/// `RUNBOOK_INTERRUPT_AT=POINT` acts as Ctrl-C when the engine reaches `POINT`
/// (`together:STEP`: `run::together` has sent its calls ahead in step STEP; `awaiting:STEP`:
/// it is about to wait for the answer of a write it sent ahead, not in yet). A test seam, as
/// `crash_point`: Ctrl-C at a moment a test cannot otherwise hit without sleeping.
#[cfg(feature = "test-hooks")]
pub(crate) fn interrupt_point(kind: &str, step: &str) {
    if std::env::var("RUNBOOK_INTERRUPT_AT")
        .is_ok_and(|at| at.split_once(':') == Some((kind, step)))
    {
        crate::interrupt::trigger();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn interrupt_point(_kind: &str, _step: &str) {}

/// `RUNBOOK_PAUSE_AT=POINT:PATH` holds the process at `POINT` until `PATH` exists, having
/// made `PATH.reached` as it got there (`reopen`: a resume or rollback has read its run's
/// journal and not yet taken the lock; `break`: it read the holder it breaks the lock of and
/// has not yet removed it; `repl-answered`: the REPL's operator said yes to a write, not yet
/// sent): a race a test cannot otherwise line up.
#[cfg(feature = "test-hooks")]
pub(crate) fn pause_point(point: &str) {
    let Ok(at) = std::env::var("RUNBOOK_PAUSE_AT") else {
        return;
    };
    let Some((p, path)) = at.split_once(':') else {
        return;
    };
    if p != point {
        return;
    }
    let _ = std::fs::write(format!("{path}.reached"), "");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::path::Path::new(path).exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn pause_point(_point: &str) {}

/// `RUNBOOK_REFUSE_WRITE_AT=N`: the run's Nth write is refused as a state store that cannot
/// keep its record would (final, nothing stored): a fan-out stopped part-way, at a target a
/// test chooses.
#[cfg(feature = "test-hooks")]
pub(crate) fn write_refused() -> bool {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    nth("RUNBOOK_REFUSE_WRITE_AT", &WRITES)
}

/// Whether this call, counted on `calls`, is the Nth that the variable `var` names.
#[cfg(feature = "test-hooks")]
fn nth(var: &str, calls: &std::sync::atomic::AtomicUsize) -> bool {
    let Some(n) = std::env::var(var)
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return false;
    };
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn write_refused() -> bool {
    false
}

/// `RUNBOOK_REFUSE_OUTCOME_AT=N`: the run's Nth write outcome is refused once by the store,
/// as a store that blinks would (the line is kept and stored by the next record or write).
/// `N+`: from the Nth outcome on, the journal takes nothing more (`journal_down`), as a
/// store that went down would.
#[cfg(feature = "test-hooks")]
pub(crate) fn outcome_refused() -> bool {
    use std::sync::atomic::Ordering;
    static OUTCOMES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Ok(spec) = std::env::var("RUNBOOK_REFUSE_OUTCOME_AT") else {
        return false;
    };
    let (at, down) = match spec.strip_suffix('+') {
        Some(at) => (at, true),
        None => (spec.as_str(), false),
    };
    let Ok(at) = at.parse::<usize>() else {
        return false;
    };
    let n = OUTCOMES.fetch_add(1, Ordering::SeqCst) + 1;
    if down && n >= at {
        JOURNAL_DOWN.store(true, Ordering::SeqCst);
    }
    n == at || JOURNAL_DOWN.load(Ordering::SeqCst)
}

#[cfg(feature = "test-hooks")]
static JOURNAL_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `RUNBOOK_REFUSE_OUTCOME_AT=N+` took the journal down.
#[cfg(feature = "test-hooks")]
pub(crate) fn journal_down() -> bool {
    JOURNAL_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn outcome_refused() -> bool {
    false
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn journal_down() -> bool {
    false
}

/// `RUNBOOK_PANIC_SENDING_TO=TARGET`: a fan-out's task for that target panics before its
/// request leaves, as a bug in a vendor client would: the run must record the target in
/// doubt (its request may have left) and settle the others by their answers.
#[cfg(feature = "test-hooks")]
pub(crate) fn panic_sending_to(target: &str) {
    if std::env::var("RUNBOOK_PANIC_SENDING_TO").is_ok_and(|t| t == target) {
        panic!("test hook: the task sending to {target} panicked");
    }
}

/// `RUNBOOK_LOSE_AUDIT_ANSWER=N`: the Nth audit append to the database commits, and its
/// answer is then taken as lost (a proxy reset, a failover): the run sees an error, as it
/// would. A test seam, as `crash_point`.
#[cfg(feature = "test-hooks")]
pub(crate) fn audit_answer_lost() -> bool {
    static APPENDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    nth("RUNBOOK_LOSE_AUDIT_ANSWER", &APPENDS)
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn audit_answer_lost() -> bool {
    false
}

/// `RUNBOOK_AUDIT_UNREACHABLE=N`: the Nth audit append on the database fails at once, as
/// one whose server is gone (a failover under way) would. A test seam, as `crash_point`.
#[cfg(feature = "test-hooks")]
pub(crate) fn audit_unreachable() -> bool {
    static APPENDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    nth("RUNBOOK_AUDIT_UNREACHABLE", &APPENDS)
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn audit_unreachable() -> bool {
    false
}

/// `RUNBOOK_MAX_JOURNAL_BYTES=N`: the largest journal read, in place of the store's own
/// limit, so a test need not write half a gigabyte. A test seam, as `crash_point`.
#[cfg(feature = "test-hooks")]
pub(crate) fn max_journal_bytes() -> Option<u64> {
    std::env::var("RUNBOOK_MAX_JOURNAL_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn max_journal_bytes() -> Option<u64> {
    None
}

/// Every test seam's variable, for `ignored`.
const SEAMS: &[&str] = &[
    "RUNBOOK_CRASH_AT",
    "RUNBOOK_INTERRUPT_AT",
    "RUNBOOK_PAUSE_AT",
    "RUNBOOK_REFUSE_WRITE_AT",
    "RUNBOOK_REFUSE_OUTCOME_AT",
    "RUNBOOK_PANIC_SENDING_TO",
    "RUNBOOK_LOSE_AUDIT_ANSWER",
    "RUNBOOK_AUDIT_UNREACHABLE",
    "RUNBOOK_MAX_JOURNAL_BYTES",
];

/// The test seams' variables set in this process's environment that this build ignores (a
/// build without `test-hooks`, what operators install): said at the start, since a tester
/// who set `RUNBOOK_CRASH_AT=after:propagate` to rehearse a crash got a whole run, the old
/// credential revoked (way-back review).
pub fn ignored() -> Vec<&'static str> {
    seams_set(cfg!(feature = "test-hooks"), |k| {
        std::env::var_os(k).is_some()
    })
}

fn seams_set(compiled: bool, set: impl Fn(&str) -> bool) -> Vec<&'static str> {
    if compiled {
        return Vec::new();
    }
    SEAMS.iter().copied().filter(|k| set(k)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_seam_set_in_a_build_without_them_is_named() {
        let set = |k: &str| k == "RUNBOOK_CRASH_AT";
        assert_eq!(super::seams_set(false, set), ["RUNBOOK_CRASH_AT"]);
        assert!(super::seams_set(true, set).is_empty());
    }
}
