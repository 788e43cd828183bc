//! Who runs what, and how: run ids, actors, and the mode every journal and audit entry
//! carries.

use std::fmt;

/// Where a run's calls go.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The simulators of this process (`--sandbox`): a rehearsal that ends with the process.
    Sandbox,
    /// Every vendor endpoint is on this machine (a separate `runbook sandbox`, or a proxy).
    Loopback,
    /// The vendors' real endpoints.
    Production,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Sandbox => "sandbox",
            Target::Loopback => "loopback",
            Target::Production => "production",
        }
    }
}

/// What a run does to the vendors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Writes are performed.
    Apply,
    /// Reads for real; writes are recorded and not performed.
    DryRun,
}

/// How a process came to act on a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// `runbook exec`: a new run.
    Exec,
    /// `runbook resume`: a later process continuing a stopped run.
    Resume,
    /// `runbook rollback`: a later process undoing a stopped run.
    Rollback,
    /// The REPL: a session, or a stopped run it attached to.
    Repl,
    /// `runbook abandon`: a later process ending a run that can neither resume nor roll back.
    Abandon,
}

impl Entry {
    pub fn as_str(self) -> &'static str {
        match self {
            Entry::Exec => "exec",
            Entry::Resume => "resume",
            Entry::Rollback => "rollback",
            Entry::Repl => "repl",
            Entry::Abandon => "abandon",
        }
    }
}

/// The one-word label audit entries (and journals written before the three were apart)
/// carry: `exec` (production), `sandbox` (any rehearsal target), `dry-run`, `repl`,
/// `resume`, `rollback`. Read-only history: new code decides on `Target`, `Effect` and
/// `Entry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Exec,
    Sandbox,
    DryRun,
    Repl,
    Resume,
    Rollback,
    Abandon,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exec => "exec",
            Mode::Sandbox => "sandbox",
            Mode::DryRun => "dry-run",
            Mode::Repl => "repl",
            Mode::Resume => "resume",
            Mode::Rollback => "rollback",
            Mode::Abandon => "abandon",
        }
    }

    /// The label of a process acting on a run.
    pub fn label(target: Target, effect: Effect, entry: Entry) -> Mode {
        match (entry, effect, target) {
            (Entry::Resume, ..) => Mode::Resume,
            (Entry::Rollback, ..) => Mode::Rollback,
            (Entry::Repl, ..) => Mode::Repl,
            (Entry::Abandon, ..) => Mode::Abandon,
            (Entry::Exec, Effect::DryRun, _) => Mode::DryRun,
            (Entry::Exec, Effect::Apply, Target::Sandbox) => Mode::Sandbox,
            (Entry::Exec, Effect::Apply, _) => Mode::Exec,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run goes, what it does and how this process entered it: the three are recorded
/// apart on every run, so a rehearsal is never taken for a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub target: Target,
    pub effect: Effect,
    pub entry: Entry,
}

impl Modes {
    pub fn is_dry_run(self) -> bool {
        self.effect == Effect::DryRun
    }

    /// The audit label of this process.
    pub fn label(self) -> Mode {
        Mode::label(self.target, self.effect, self.entry)
    }
}

/// How a run ended (or that it is still going).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    RolledBack,
    /// Rolled back, except what someone changed since the run: left as they made it.
    PartlyRolledBack,
    Aborted,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled back",
            RunStatus::PartlyRolledBack => "partly rolled back",
            RunStatus::Aborted => "aborted",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// Who runs what; stamped on every audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: String,
    pub actor: String,
    pub runbook_id: String,
    pub modes: Modes,
}

/// A fresh run id: sortable by time, unique enough to name a journal.
pub(crate) fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
    );
    let stamp = now.format(&fmt).unwrap_or_default();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{stamp}-{}", &rand[..6])
}

/// Whether `id` has the shape of a run id (and so is safe in a file name).
pub fn is_run_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `--actor`, else `RUNBOOK_ACTOR`, else git's `user.email`, else `user@host` from USER or
/// LOGNAME; `unknown@host` only when none says (see `actor_is_known`). `env` looks up the
/// process's environment.
pub fn actor(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    actor_lookup(flag, env).get()
}

/// `actor`, started: asking git is a process start (a few ms), made on a thread beside the
/// runbook's load; `get` waits for it.
pub fn actor_lookup(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> ActorLookup {
    if let Some(a) = flag.filter(|a| !a.trim().is_empty()) {
        return ActorLookup::Known(a.to_string());
    }
    if let Some(a) = env("RUNBOOK_ACTOR").filter(|a| !a.trim().is_empty()) {
        return ActorLookup::Known(a);
    }
    let user = env("USER")
        .or_else(|| env("LOGNAME"))
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    ActorLookup::Git {
        asked: std::thread::spawn(git_email),
        otherwise: format!("{user}@{}", hostname()),
    }
}

/// Who runs this, being found out (`actor_lookup`).
pub enum ActorLookup {
    Known(String),
    /// git's `user.email` is being asked; `otherwise` when it has none.
    Git {
        asked: std::thread::JoinHandle<Option<String>>,
        otherwise: String,
    },
}

impl ActorLookup {
    pub fn get(self) -> String {
        match self {
            ActorLookup::Known(a) => a,
            ActorLookup::Git { asked, otherwise } => {
                asked.join().ok().flatten().unwrap_or(otherwise)
            }
        }
    }
}

/// Whether `actor` names someone (it is not the `unknown@host` last resort).
pub fn actor_is_known(actor: &str) -> bool {
    !actor.starts_with("unknown@")
}

/// `git config --get user.email`, when git is installed and has one.
fn git_email() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "--get", "user.email"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let email = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && email.contains('@') && email.len() <= 200).then_some(email)
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

/// Whether the process that wrote a run's start record at `at` (RFC 3339) on this host is
/// still running: `pid` is alive and started no later than that record (a pid reused since
/// started after it). For a run that holds no lock to say so (a REPL session, a dry run).
pub fn still_running(host: &str, pid: u32, at: &str) -> bool {
    if host != hostname() || !pid_alive(i64::from(pid)) {
        return false;
    }
    let Ok(at) = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
    else {
        return false;
    };
    // A runbook process (its command is this one's: a daemon, a kernel thread or another
    // program given the pid since is not the run's), started no later than the record.
    let comm = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .ok()
    };
    let ours = comm("self");
    ours.is_some()
        && comm(&pid.to_string()) == ours
        && process_start(pid).is_some_and(|started| started <= at.unix_timestamp() + 1)
}

/// When process `pid` started, in Unix seconds (Linux: `/proc/PID/stat` field 22 in clock
/// ticks since boot, and the boot time in `/proc/stat`).
fn process_start(pid: u32) -> Option<i64> {
    // Fields 3 onwards; the start time is the 22nd field.
    let rest = stat_fields(i64::from(pid))?;
    let ticks: i64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| boot + ticks / hz)
}

/// Where this process's pid means something: the machine's boot and its pid namespace
/// (`BOOT_ID/pid:[INODE]`, "" where Linux's /proc does not say). Two containers sharing a
/// host name (host networking) have different namespaces, and a pid of the last boot is no
/// process now.
pub fn pid_space() -> &'static str {
    static SPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SPACE.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
        let ns = std::fs::read_link("/proc/self/ns/pid");
        match (boot, ns) {
            (Ok(boot), Ok(ns)) => format!("{}/{}", boot.trim(), ns.to_string_lossy()),
            _ => String::new(),
        }
    })
}

/// Whether a process of this host with this pid is alive. One of another user (a shared
/// bastion) answers EPERM: alive, not ours to signal; only ESRCH means it is gone.
pub(crate) fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as i32, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !dead_unreaped(pid)
}

/// Whether the process is dead and only waits for its parent to read its status (a zombie):
/// `kill -9` from an operator's shell leaves one until the shell reaps it, and the signal
/// still finds it, so a resume right after was refused as "already running" (author review).
fn dead_unreaped(pid: i64) -> bool {
    stat_fields(pid)
        .as_deref()
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|state| matches!(state, "Z" | "X"))
}

/// `/proc/PID/stat` from its third field on (the state, …): after the command name's
/// closing parenthesis, since the name may itself hold spaces and parentheses.
fn stat_fields(pid: i64) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.to_string())
}

/// `2026-01-01T00:00:00Z`: the time format of journals and the audit log.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process killed and not yet reaped by its parent is dead: its lock is not held.
    #[test]
    fn a_killed_process_its_parent_has_not_reaped_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        assert!(pid_alive(pid));
        child.kill().unwrap();
        // Wait for it to die, but leave it unreaped (a zombie), as an operator's shell does.
        // SAFETY: waitid on our own child with a zeroed siginfo it fills.
        let waited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(waited, 0);
        assert!(!pid_alive(pid), "a zombie read as alive");
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    /// Only this program's process, started before the record, is the run's: pid 1 (or a
    /// daemon given a dead run's pid) never is; this very process, after its start, is.
    #[test]
    fn a_run_is_still_running_only_in_a_process_of_this_program_started_before_it() {
        let host = super::hostname();
        let later = (time::OffsetDateTime::now_utc() + time::Duration::seconds(5))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(!super::still_running(&host, 1, &later));
        assert!(super::still_running(&host, std::process::id(), &later));
        assert!(!super::still_running(
            "another-host",
            std::process::id(),
            &later
        ));
        let long_ago = "2000-01-01T00:00:00Z";
        assert!(!super::still_running(&host, std::process::id(), long_ago));
    }

    /// A live process of another user is alive (kill answers EPERM): before, a lock held by
    /// a colleague's run on a shared bastion read as dead and could be taken without its
    /// lease id. Pid 1 is another user's for a test run unprivileged (as root, it is ours).
    #[test]
    fn a_live_process_of_another_user_is_alive() {
        assert!(pid_alive(i64::from(std::process::id())));
        assert!(pid_alive(1), "init is alive, whoever owns it");
        assert!(!pid_alive(i64::from(i32::MAX)));
        assert!(!pid_alive(0));
    }

    #[test]
    fn modes_serialise_as_the_journal_always_wrote_them() {
        for m in [
            Mode::Exec,
            Mode::Sandbox,
            Mode::DryRun,
            Mode::Repl,
            Mode::Resume,
            Mode::Rollback,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }

    /// A loopback rehearsal was labelled `exec` before the modes were apart; a rehearsal's
    /// label is now `sandbox` only for the in-process one, and the target says the rest.
    #[test]
    fn the_audit_label_keeps_its_old_words() {
        for (target, effect, entry, label) in [
            (Target::Production, Effect::Apply, Entry::Exec, Mode::Exec),
            (Target::Sandbox, Effect::Apply, Entry::Exec, Mode::Sandbox),
            (Target::Sandbox, Effect::DryRun, Entry::Exec, Mode::DryRun),
            (Target::Loopback, Effect::Apply, Entry::Resume, Mode::Resume),
        ] {
            assert_eq!(Mode::label(target, effect, entry), label);
        }
    }

    #[test]
    fn run_ids_are_file_safe() {
        assert!(is_run_id(&new_run_id()));
        assert!(!is_run_id("../x"));
        assert!(!is_run_id(""));
    }
}
