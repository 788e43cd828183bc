//! Where a run's state lives: its journal, the audit chain, rotation locks, approvals and
//! the fingerprint key. One trait, two backends: files in the state directory (the default,
//! nothing to set up) and PostgreSQL (`RUNBOOK_STATE_URL=postgres://…` or `[state] url`),
//! which a team shares so that locks, resume, rollback, approvals and the audit chain reach
//! across machines. The backends store text; what the text means (records, chained entries,
//! requests) is the business of the modules above.

mod files;
mod libpq;
mod postgres;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use files::Files;
pub use postgres::Postgres;

/// Hash of the audit entry before the first.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `hash` of an audit line as stored; an error when the line is not an entry (the chain
/// is never silently restarted).
pub(crate) fn hash_of(line: &[u8]) -> std::io::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("its last entry is not valid ({e}); run `runbook audit verify`"),
        )
    })?;
    v["hash"].as_str().map(str::to_string).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "its last entry has no hash; run `runbook audit verify`",
        )
    })
}

/// How long a run waits, by default, for its state store to record a write before it gives
/// up and stops (`[state] wait_seconds`, `RUNBOOK_STATE_WAIT_SECONDS`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// What a write's record is fenced by: the lock it is made under and this taking of it. A
/// record is stored only while that taking still holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub lease_id: String,
}

/// A shared handle on the backend.
pub type Store = Arc<dyn Backend>;

/// Who holds a rotation lock, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub actor: String,
    pub pid: u32,
    pub host: String,
    pub since: String,
    /// This taking of the lock (random): a lease is renewed and released by it, never by run
    /// id alone, which a resumed run shares with the process it took over from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lease_id: String,
    /// When the lease runs out unless its holder renews it (shared backends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Whether the lease had run out when it was read (by the database's clock).
    #[serde(default, skip)]
    pub expired: bool,
    /// Where its pid means something (`run::pid_space`: the boot and the pid namespace);
    /// empty in locks taken before it was recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pid_space: String,
    /// The lock's name, as `lock_holders` found it (not stored in the holder).
    #[serde(default, skip)]
    pub lock: String,
}

impl Holder {
    /// Whether the holder no longer runs: its lease ran out, or its process is one this
    /// machine can look up and is gone. A host name alone does not say that: containers
    /// with host networking share one, each with its own pids (cold review: a resume there
    /// took a live run's lease with no flag at all), so the pid is looked up only in the
    /// holder's own boot and pid namespace; a lease is otherwise left to run out. A file
    /// lock has no lease to run out: one taken before this machine's last boot is dead; one
    /// of another pid namespace of this boot (another container) cannot be shown dead from
    /// here, and is taken only with its lease id typed back (`--break-lock --lease-id`):
    /// judged by a pid of another namespace, a resume in a second container took a live
    /// run's lock with no flag (review of this session's change).
    pub fn is_dead(&self) -> bool {
        if self.expired {
            return true;
        }
        if self.host != crate::run::hostname() {
            return false;
        }
        let gone = || !crate::run::pid_alive(i64::from(self.pid));
        let mine = crate::run::pid_space();
        let leased = self.expires.is_some();
        match (self.pid_space.as_str(), mine) {
            ("", _) | (_, "") => !leased && gone(),
            (theirs, mine) if theirs == mine => gone(),
            (_, _) if leased => false,
            (theirs, mine) => boot(theirs) != boot(mine),
        }
    }

    /// Whether its process runs on this machine, in this pid namespace, now.
    pub fn is_alive_here(&self) -> bool {
        self.host == crate::run::hostname()
            && (self.pid_space.is_empty() || self.pid_space == crate::run::pid_space())
            && crate::run::pid_alive(i64::from(self.pid))
    }
}

/// The boot of a pid space (`BOOT_ID/pid:[INODE]`).
fn boot(space: &str) -> &str {
    space.split_once('/').map_or(space, |(boot, _)| boot)
}

/// Whether a decision (`Written`: `nonce` and verdict) answers the request on file: the same
/// nonce, a missing one read as empty (requests from before nonces).
pub(crate) fn same_request(request: &str, decision: &str) -> bool {
    let nonce = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|v| {
                v.get("nonce")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_string()
            })
    };
    match (nonce(request), nonce(decision)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// What a lock slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Free,
    /// Taken, by the holder it names (`None`: its record cannot be read).
    Held(Option<Holder>),
}

/// Runs' journals: each run's ledger events, one line each, in order.
pub trait JournalStore {
    /// Where one run's journal is, for messages.
    fn journal_where(&self, run_id: &str) -> String;
    /// Where the journals are, for messages.
    fn runs_where(&self) -> String;
    /// Appends one line (a journal record, already redacted) to a run's journal. Every
    /// reader sees it at once; `durable`: it and every line before it are on stable storage
    /// before this returns. A line appended without is made durable by the next durable
    /// append or `journal_sync`, and a power loss before then loses only the journal's
    /// tail: the state of a crash before that line was written.
    fn journal_append(&self, run_id: &str, line: &str, durable: bool) -> Result<()>;
    /// Appends a line only if `fence`'s taking still holds its lock (and, on a shared
    /// store, extends its lease): `false`, with nothing stored, when another run took it.
    fn journal_append_fenced(
        &self,
        run_id: &str,
        line: &str,
        fence: &Fence,
        durable: bool,
    ) -> Result<bool>;
    /// Makes every line appended to a run's journal durable (a store whose every append
    /// is durable has nothing to do).
    fn journal_sync(&self, _run_id: &str) -> Result<()> {
        Ok(())
    }
    /// Whether every append is durable on its own (a database's commit): nothing is saved
    /// by storing a line before a sync.
    fn appends_are_durable(&self) -> bool {
        true
    }
    /// A run's journal, its lines in order; `None` when there is no such run.
    fn journal(&self, run_id: &str) -> Result<Option<String>>;
    /// A run's journal as stored, even one `journal` cannot read as text (a flipped byte):
    /// its hash is what `runbook abandon` records of a damaged journal.
    fn journal_bytes(&self, run_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.journal(run_id)?.map(String::into_bytes))
    }
    /// A run's last journal line; `None` when there is no such run. Asked of every run when
    /// one starts (is an earlier one unfinished?): a store reads the end, not the journal.
    fn journal_last(&self, run_id: &str) -> Result<Option<String>> {
        Ok(self.journal(run_id)?.map(|text| {
            text.trim_end()
                .rsplit('\n')
                .next()
                .unwrap_or_default()
                .to_string()
        }))
    }
    /// A run's journal lines, each with the login the store stamped on it when it was
    /// written (`None` on a row from before the stamp); `None` when the store stamps
    /// nothing (files, where nothing authenticates a writer) or has no such run.
    fn journal_stamped(&self, _run_id: &str) -> Result<Option<Vec<Stamp>>> {
        Ok(None)
    }
    /// The ids of every run with a journal, oldest first.
    fn runs(&self) -> Result<Vec<String>>;
    /// The ids of the runs whose journal's last line does not settle them (`settles`), oldest
    /// first: asked when a run starts (is an earlier one unfinished?), of every run in the
    /// store. A database answers in one query; the file store skips the journals it found
    /// settled before and that have not grown since.
    fn unsettled_runs(&self, settles: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in self.runs()? {
            if self.journal_last(&id)?.is_some_and(|last| !settles(&last)) {
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// How an audit line names its run: the quotes inside a JSON string are escaped, so only
/// the entry's own `run_id` field holds this text.
pub(crate) fn run_marker(run_id: &str) -> String {
    format!("\"run_id\":\"{run_id}\"")
}

/// The audit chain: entries appended one at a time, serialised against every writer.
pub trait AuditStore {
    /// Appends one audit entry, serialised against every other writer: `make` gets the hash
    /// of the last entry (or the genesis hash) and returns the line to append. `durable` as
    /// for `JournalStore::journal_append`.
    ///
    /// `Ok(Some(line))`: the entry is already in the chain as `line`, appended by an earlier
    /// call that got no answer (its commit landed, its answer was lost) and that this one
    /// retries (the same entry, but for its time and place): nothing more is appended.
    fn audit_append(
        &self,
        make: &mut dyn FnMut(&str) -> Result<String>,
        durable: bool,
    ) -> Result<Option<String>>;
    /// Makes every entry appended so far durable.
    fn audit_sync(&self) -> Result<()> {
        Ok(())
    }
    /// Every audit line, in chain order, as stored.
    fn audit_lines(&self) -> Result<Vec<String>>;
    /// Each audit line in chain order, handed to `each` one at a time: a reader that keeps
    /// a few of them (the list of runs) does not hold the whole log in memory.
    fn audit_each_line(&self, each: &mut dyn FnMut(&str)) -> Result<()> {
        for line in self.audit_lines()? {
            each(&line);
        }
        Ok(())
    }
    /// The audit lines of one run, in chain order: what a run asks of its own entries
    /// (`audit::logged`) without reading and parsing every entry of the team's history.
    fn audit_lines_of(&self, run_id: &str) -> Result<Vec<String>> {
        let marker = run_marker(run_id);
        Ok(self
            .audit_lines()?
            .into_iter()
            .filter(|l| l.contains(&marker))
            .collect())
    }
    /// Every audit line with the login stamped on it, as `journal_stamped`; `None` when
    /// the store stamps nothing.
    fn audit_stamped(&self) -> Result<Option<Vec<Stamp>>> {
        Ok(None)
    }
    /// Where the audit chain is, for messages.
    fn audit_where(&self) -> String;
}

/// Rotation locks: one holder per slot; on a shared store, leases that run out.
pub trait LockStore {
    /// How long a lock lasts without renewal; `None`: locks last until released (files,
    /// where a holder's death is seen by its pid).
    fn lease(&self) -> Option<Duration>;
    /// Takes a free lock slot for `holder`: `false` when the slot is taken.
    fn lock_create(&self, key: &str, holder: &Holder) -> Result<bool>;
    fn lock_read(&self, key: &str) -> Result<Slot>;
    /// Frees a slot if the taking `lease_id` (when given) still holds it, and, with
    /// `expired_only`, only if its lease has run out (a holder that woke up keeps it).
    fn lock_remove(&self, key: &str, lease_id: Option<&str>, expired_only: bool) -> Result<()>;
    /// Extends a lease: `false` when that taking no longer holds the lock.
    fn lock_renew(&self, key: &str, lease_id: &str) -> Result<bool>;
    /// Whether that taking still holds the lock, without extending its lease (asked before
    /// each target of a fan-out: on a database, a read, not a commit per target).
    fn lock_confirm(&self, key: &str, lease_id: &str) -> Result<bool> {
        self.lock_renew(key, lease_id)
    }
    /// Every lock held.
    fn lock_holders(&self) -> Result<Vec<Holder>>;
    /// A store for a lease's heartbeat: on a database, a connection of its own, so a slow
    /// call of the run never holds up a renewal.
    fn for_heartbeat(&self) -> Result<Store>;
    /// The file of a lock on the file backend (removed by an exiting process).
    fn lock_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// Four-eyes approvals: a run's request, and the first decision on it.
pub trait ApprovalStore {
    /// Files a run's approval request (as JSON), clearing an earlier one and its decision.
    fn approval_put_request(&self, run_id: &str, request: &str) -> Result<()>;
    fn approval_request(&self, run_id: &str) -> Result<Option<String>>;
    fn approval_decision(&self, run_id: &str) -> Result<Option<String>>;
    /// Records the decision unless one exists, or the request on file is not the one it
    /// answers (its `nonce`): `false` when another decision came first, or another request
    /// was filed since (a decision must not close a request it was not made on).
    fn approval_put_decision(&self, run_id: &str, decision: &str) -> Result<bool>;
    /// Every decision ever given on a run's requests, oldest first, each with the request
    /// it answered and the login stamped on it; `None` when the store stamps nothing (it
    /// keeps only the latest).
    fn decisions(&self, _run_id: &str) -> Result<Option<Vec<Decided>>> {
        Ok(None)
    }
}

/// A row as a store that authenticates its writers keeps it: the text, and the login the
/// server stamped on it as it was written (a trigger sets it to `session_user`, whatever
/// the writer sent), `None` on a row written before the stamp existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub text: String,
    pub login: Option<String>,
}

/// A decision as the database keeps it: its text, the request it answered as that stood
/// when the decision was given, and the login stamped on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub decision: String,
    pub request: Option<String>,
    pub login: Option<String>,
}

/// A request or decision with its `role` as the store proves it, whatever its text claims:
/// on the database the login a trigger stamped on the row (the `session_user` that wrote
/// it, so a row written by hand in SQL names the login that wrote it); on files none, for
/// nothing there authenticates anyone.
pub(crate) fn with_login(text: String, login: Option<String>) -> String {
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(mut fields)) => {
            match login {
                Some(login) => fields.insert("role".into(), login.into()),
                None => fields.remove("role"),
            };
            serde_json::Value::Object(fields).to_string()
        }
        _ => text,
    }
}

/// Where a run's state lives: every store above, and what the state is.
pub trait Backend: JournalStore + AuditStore + LockStore + ApprovalStore + Send + Sync {
    /// Where the state is, for messages: `files in /home/…/runbook`, `postgres db@host`.
    fn describe(&self) -> String;
    /// The state directory, for the file backend (the REPL's history and lock files an
    /// interrupted process removes on its way out live there).
    fn dir(&self) -> Option<&Path>;
    /// How long a run waits for this store to record a write before it stops instead.
    fn wait(&self) -> Duration;
    /// Who the store itself authenticated: on the database, the login role (the server
    /// checked its password or certificate); `None` on files, where a name is only a label.
    fn authenticated(&self) -> Option<String> {
        None
    }
    /// Why this login's proof is weaker than it looks, if it is: on the database, a login
    /// that can act as the tables' owner (or a superuser) can switch off the triggers that
    /// stamp the login on every row and keep the journal and audit rows append-only.
    fn stamp_weakness(&self) -> Option<String> {
        None
    }
    /// The key every fingerprint of this state is made with, created on first use.
    fn fingerprint_key(&self) -> Result<[u8; 32]>;
}

/// Where state goes: `RUNBOOK_STATE_URL` (or `[state] url` read by the caller) names a
/// database; without one, the state directory. A URL that cannot be used is an error, never
/// a quiet fall back to files: a team would split its state without knowing.
/// `lease`: how long a lock lasts on a shared backend unless its run renews it.
/// `wait`: how long a run waits for the store to record a write before it stops.
pub fn open(
    url: Option<&str>,
    dir: &Path,
    (lease, wait): (Duration, Duration),
    say: crate::sink::Say,
) -> Result<Store> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(Arc::new(Files::new(dir, say).waiting(wait))),
        // A URL, or a libpq `key=value` string (`service=runbook`, `host=db dbname=runbook`).
        Some(u)
            if u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || (!u.contains("://") && u.contains('=')) =>
        {
            Ok(Arc::new(Postgres::connect(u, lease)?.waiting(wait)))
        }
        Some(u) => Err(Error::State {
            message: format!("the state URL '{}' is not a PostgreSQL URL", redact_url(u)),
            help:
                "use postgres://USER@HOST/DB (or unset RUNBOOK_STATE_URL for the state directory)"
                    .into(),
        }),
    }
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    // libpq's keys that carry a secret: the password, and the client key's passphrase.
    let secret_key =
        |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
    let Some((scheme, rest)) = url.split_once("://") else {
        if url.contains('=') {
            // A key=value string: every key but the secret ones.
            return match libpq::pairs(url) {
                Ok(pairs) => pairs
                    .iter()
                    .map(|(k, v)| match secret_key(k) {
                        true => format!("{k}=***"),
                        false => format!("{k}={v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(_) => "(a connection string that cannot be read)".to_string(),
            };
        }
        return "(a URL that cannot be read)".to_string();
    };
    let masked = |q: &str| {
        q.split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if secret_key(k) => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let (head, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    // The user info ends at the last `@`: a password may hold one unencoded.
    if let Some((userinfo, host)) = head.rsplit_once('@') {
        let user = userinfo.split(':').next().unwrap_or("");
        let shown = format!("{scheme}://{user}@{host}");
        return match query {
            None => shown,
            Some(q) => format!("{shown}?{}", masked(q)),
        };
    }
    // An `@` only after a `?`: a password holding an unencoded `?`, or a query value with an
    // `@` (a password's among them): no split tells which, so nothing past the scheme is shown.
    if rest.contains('@') {
        return format!("{scheme}://(not shown: it may hold a password)");
    }
    match query {
        None => format!("{scheme}://{head}"),
        Some(q) => format!("{scheme}://{head}?{}", masked(q)),
    }
}

/// Loads the store's fingerprint key into this process: fingerprints made before it would
/// not match the ones journalled.
pub fn load_fingerprint_key(store: &Store) -> Result<()> {
    runbook_secret::set_fingerprint_key(store.fingerprint_key()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_url_in_a_message_never_shows_its_password() {
        assert_eq!(
            redact_url("postgres://ops:hunter2@db.internal:5432/runbook"),
            "postgres://ops@db.internal:5432/runbook"
        );
        assert_eq!(redact_url("postgres://db/runbook"), "postgres://db/runbook");
        assert_eq!(
            redact_url("postgres://ops:p@ss@db/runbook"),
            "postgres://ops@db/runbook"
        );
        assert_eq!(
            redact_url("postgres://db/runbook?user=ops&password=hunter2&sslmode=require"),
            "postgres://db/runbook?user=ops&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("host=db password=hunter2 dbname=runbook"),
            "host=db password=*** dbname=runbook"
        );
        assert_eq!(
            redact_url("host=db password='hunter2 with spaces' dbname=runbook"),
            "host=db password=*** dbname=runbook"
        );
        // A password holding an unencoded `?` (cold review: shown whole), and the client
        // key's passphrase, in both forms.
        for url in [
            "postgres://ops:pa?ss@db/runbook",
            "postgres://ops:pa?ss@db/runbook?sslmode=require&password=pa?ss",
            "postgres://db/runbook?user=a@b&password=pa?ss",
            "postgres://db/runbook?sslpassword=pa?ss",
            "host=db sslpassword=pa?ss dbname=runbook",
            "postgres://db/runbook?password=pa?ss@def",
        ] {
            let shown = redact_url(url);
            assert!(
                !shown.contains("pa?ss") && !shown.contains("def"),
                "{url}: {shown}"
            );
        }
        assert_eq!(
            redact_url("postgres://ops:pa?ss@db/runbook"),
            "postgres://(not shown: it may hold a password)"
        );
        assert_eq!(
            redact_url("postgres://db/runbook?sslmode=require"),
            "postgres://db/runbook?sslmode=require"
        );
    }

    #[test]
    fn a_state_url_that_is_not_postgres_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = open(
            Some("mysql://root:pw@db/x"),
            dir.path(),
            (Duration::from_secs(30), DEFAULT_WAIT),
            crate::sink::Say::outside(Arc::new(crate::sink::Quiet)),
        ) else {
            panic!("accepted a mysql URL");
        };
        let text = e.to_string();
        assert!(text.contains("mysql://root@db/x"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }

    fn holder(pid_space: &str, expires: Option<&str>, expired: bool) -> Holder {
        Holder {
            run_id: "r".into(),
            actor: "alice".into(),
            // No process has this pid here (Linux's pids stop at 2^22).
            pid: u32::MAX - 7,
            host: crate::run::hostname(),
            since: "2026-12-07T00:00:00Z".into(),
            lease_id: "l".into(),
            expires: expires.map(str::to_string),
            expired,
            pid_space: pid_space.into(),
            lock: String::new(),
        }
    }

    /// A holder of this host name whose pid is not found here: dead only if it is of this
    /// pid namespace, or (a file lock) of an earlier boot. A lease of another namespace
    /// (a container sharing the host's name) is alive until it runs out.
    #[test]
    fn a_pid_is_looked_up_only_in_the_holders_own_pid_namespace() {
        let mine = crate::run::pid_space();
        assert!(!mine.is_empty(), "Linux says where its pids are");
        let (boot, _) = mine.split_once('/').unwrap();
        let other_ns = format!("{boot}/pid:[1]");
        let lease = Some("2999-01-01T00:00:00Z");
        assert!(holder(mine, lease, false).is_dead());
        assert!(!holder(&other_ns, lease, false).is_dead());
        assert!(holder(&other_ns, lease, true).is_dead());
        assert!(
            !holder("", lease, false).is_dead(),
            "a lease of before: it runs out"
        );
        assert!(holder(mine, None, false).is_dead());
        assert!(
            !holder(&other_ns, None, false).is_dead(),
            "a file lock of another container: not shown dead from here"
        );
        assert!(holder("another-boot/pid:[1]", None, false).is_dead());
        assert!(!holder("another-boot/pid:[1]", lease, false).is_dead());
        assert!(
            holder("", None, false).is_dead(),
            "a file lock of before: by its pid"
        );
        let alive = Holder {
            pid: std::process::id(),
            ..holder(&other_ns, None, false)
        };
        assert!(
            !alive.is_alive_here(),
            "another namespace's pid is not this process"
        );
    }
}
