//! Test seams, compiled into a build only with the `test-hooks` feature (the tests' own).

/// `RUNBOOK_CRASH_AT=after:STEP` or `inside:STEP` kills the process (SIGKILL) after that
/// step completes, or after its first write. A fault-injection hook for the crash tests:
/// it lets them prove that resume and rollback recover from a machine that died there.
/// Only in builds with the `test-hooks` feature (the tests'); a release build has none.
#[cfg(feature = "test-hooks")]
pub(crate) fn crash_point(when: &str, step: &str) {
    let Ok(at) = std::env::var("RUNBOOK_CRASH_AT") else {
        return;
    };
    if at.split_once(':') == Some((when, step)) {
        // SAFETY: signalling our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub(crate) fn crash_point(_when: &str, _step: &str) {}
