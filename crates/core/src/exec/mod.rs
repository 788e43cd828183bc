//! Running a plan: params, the step loop with retry/rollback/stop, dry-run and the report.

pub mod journal;
pub mod lock;
pub mod params;
pub mod report;
pub mod resume;
pub mod runner;

pub use journal::Journal;
pub use report::{Report, RunStatus, StepReport, StepStatus};
pub use runner::{run, Start};

/// How `exec` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub yes: bool,
    pub no_rollback: bool,
    pub dry_run: bool,
    pub json: bool,
}

/// `RUNBOOK_CRASH_AT=after:STEP` or `inside:STEP` kills the process (SIGKILL) after that
/// step completes, or after its first write. A fault-injection hook for the crash tests:
/// it lets them prove that resume and rollback recover from a machine that died there.
/// Only in builds with the `test-hooks` feature (the tests'); a release build has none.
#[cfg(feature = "test-hooks")]
pub fn crash_point(when: &str, step: &str) {
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
pub fn crash_point(_when: &str, _step: &str) {}

/// A fresh run id: sortable by time, unique enough to name a journal.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
    );
    let stamp = now.format(&fmt).unwrap_or_default();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{stamp}-{}", &rand[..6])
}

/// `--actor`, else `RUNBOOK_ACTOR`, else `user@host`.
pub fn actor(flag: Option<&str>) -> String {
    if let Some(a) = flag.filter(|a| !a.is_empty()) {
        return a.to_string();
    }
    if let Ok(a) = std::env::var("RUNBOOK_ACTOR") {
        if !a.is_empty() {
            return a;
        }
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", hostname())
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
