//! The PostgreSQL backend, for a team: one database holds every operator's journals, the
//! audit chain (appends serialised by an advisory lock, so it never forks), rotation locks as
//! leases a live run renews, and approvals. Versioned migrations run on first use.
//!
//! The client is the synchronous `postgres` crate on a thread of its own: the engine's
//! callers are synchronous, some of them inside the tokio runtime's reach, where that
//! client must not block. Calls go to the thread as jobs and wait for their answer, with a
//! deadline, so a database that stops answering fails a call instead of hanging the run.

use super::{ApprovalStore, AuditStore, Backend, Fence, Holder, JournalStore, LockStore, Slot};
use crate::error::{Error, Result};
use postgres::{Client, Config};
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

/// The schema, one migration per version; a migration never changes once released.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runbook_settings (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE runbook_journal (seq bigserial PRIMARY KEY, run_id text NOT NULL, line text NOT NULL);
CREATE INDEX runbook_journal_run ON runbook_journal (run_id, seq);
CREATE TABLE runbook_audit (seq bigint PRIMARY KEY, line text NOT NULL);
CREATE TABLE runbook_locks (key text PRIMARY KEY, run_id text NOT NULL, lease_id text NOT NULL,
                            holder text NOT NULL, expires timestamptz NOT NULL);
CREATE TABLE runbook_approvals (run_id text PRIMARY KEY, request text NOT NULL, decision text);
"#,
    r#"
ALTER TABLE runbook_approvals ADD COLUMN request_login text, ADD COLUMN decision_login text;
CREATE FUNCTION runbook_approvals_login() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.request IS DISTINCT FROM OLD.request THEN
    NEW.request_login := session_user;
  ELSE
    NEW.request_login := OLD.request_login;
  END IF;
  IF NEW.decision IS NULL THEN
    NEW.decision_login := NULL;
  ELSIF TG_OP = 'INSERT' OR NEW.decision IS DISTINCT FROM OLD.decision THEN
    NEW.decision_login := session_user;
  ELSE
    NEW.decision_login := OLD.decision_login;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER runbook_approvals_login BEFORE INSERT OR UPDATE ON runbook_approvals
  FOR EACH ROW EXECUTE FUNCTION runbook_approvals_login();
"#,
    // A decision stays with the run it was given for: moved to another run it would keep
    // its approver's login and be read as given there.
    r#"
CREATE FUNCTION runbook_approvals_keep_run() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.run_id IS DISTINCT FROM OLD.run_id THEN
    RAISE EXCEPTION 'an approval stays with its run: % cannot become %', OLD.run_id, NEW.run_id;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER runbook_approvals_keep_run BEFORE UPDATE ON runbook_approvals
  FOR EACH ROW EXECUTE FUNCTION runbook_approvals_keep_run();
"#,
    // Who wrote each journal and audit row, stamped by the server: a login that may append
    // (every operator's) could otherwise append rows that chain, under another's name. The
    // rows are appended to, never changed; every decision is kept, stamped, not only a
    // run's latest (the decisions given before this version are copied with the login
    // stamped on them then).
    r#"
ALTER TABLE runbook_journal ADD COLUMN login text;
ALTER TABLE runbook_audit ADD COLUMN login text;
CREATE TABLE runbook_decisions (seq bigserial PRIMARY KEY, run_id text NOT NULL,
                                decision text NOT NULL, request text, login text);
CREATE INDEX runbook_decisions_run ON runbook_decisions (run_id, seq);
INSERT INTO runbook_decisions (run_id, decision, request, login)
  SELECT run_id, decision, request, decision_login FROM runbook_approvals
  WHERE decision IS NOT NULL ORDER BY run_id;
CREATE FUNCTION runbook_stamp_login() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.login := session_user;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER runbook_journal_login BEFORE INSERT ON runbook_journal
  FOR EACH ROW EXECUTE FUNCTION runbook_stamp_login();
CREATE TRIGGER runbook_audit_login BEFORE INSERT ON runbook_audit
  FOR EACH ROW EXECUTE FUNCTION runbook_stamp_login();
CREATE TRIGGER runbook_decisions_login BEFORE INSERT ON runbook_decisions
  FOR EACH ROW EXECUTE FUNCTION runbook_stamp_login();
CREATE FUNCTION runbook_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION '% is only appended to: % refused', TG_TABLE_NAME, TG_OP
    USING HINT = 'runbook''s journals, audit chain and decisions are records: they are never changed or removed (docs/team.md, "Who wrote each row")';
END
$fn$;
CREATE TRIGGER runbook_journal_append_only BEFORE UPDATE OR DELETE ON runbook_journal
  FOR EACH ROW EXECUTE FUNCTION runbook_append_only();
CREATE TRIGGER runbook_journal_no_truncate BEFORE TRUNCATE ON runbook_journal
  FOR EACH STATEMENT EXECUTE FUNCTION runbook_append_only();
CREATE TRIGGER runbook_audit_append_only BEFORE UPDATE OR DELETE ON runbook_audit
  FOR EACH ROW EXECUTE FUNCTION runbook_append_only();
CREATE TRIGGER runbook_audit_no_truncate BEFORE TRUNCATE ON runbook_audit
  FOR EACH STATEMENT EXECUTE FUNCTION runbook_append_only();
CREATE TRIGGER runbook_decisions_append_only BEFORE UPDATE OR DELETE ON runbook_decisions
  FOR EACH ROW EXECUTE FUNCTION runbook_append_only();
CREATE TRIGGER runbook_decisions_no_truncate BEFORE TRUNCATE ON runbook_decisions
  FOR EACH STATEMENT EXECUTE FUNCTION runbook_append_only();
-- With the request it answered, as it stood when decided (its step and nonce). Run as the
-- tables' owner: operators need not (and should not) insert decisions themselves; the
-- stamp is still the session's login, which SECURITY DEFINER does not change.
CREATE FUNCTION runbook_approvals_decided() RETURNS trigger LANGUAGE plpgsql
  SECURITY DEFINER AS $fn$
BEGIN
  IF NEW.decision IS NOT NULL
     AND (TG_OP = 'INSERT' OR NEW.decision IS DISTINCT FROM OLD.decision) THEN
    INSERT INTO runbook_decisions (run_id, decision, request)
      VALUES (NEW.run_id, NEW.decision, NEW.request);
  END IF;
  RETURN NULL;
END
$fn$;
-- The decisions table of this schema, whatever the writer's search_path (a temporary table
-- of that name would take the row otherwise).
DO $do$
BEGIN
  EXECUTE format('ALTER FUNCTION runbook_approvals_decided() SET search_path = %I, pg_temp',
                 current_schema());
END
$do$;
CREATE TRIGGER runbook_approvals_decided AFTER INSERT OR UPDATE ON runbook_approvals
  FOR EACH ROW EXECUTE FUNCTION runbook_approvals_decided();
"#,
];

/// Advisory lock keys (arbitrary, fixed): migrations, and the audit chain's tail.
const MIGRATE_KEY: i64 = 0x7275_6e62_6f6f_6b01;
const AUDIT_KEY: i64 = 0x7275_6e62_6f6f_6b02;

/// The oldest server this schema and its SQL are written for.
const OLDEST_SERVER: i32 = 110000;

/// How long a call may wait for the database before the run is told it is not answering.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// How long a call may still wait once the run is interrupted (Ctrl-C, a stop signal):
/// plenty for a database that answers, not the whole wait for one that hangs.
const ANSWER_AFTER_INTERRUPT: Duration = Duration::from_secs(3);

/// How long a call cancelled then (its server asked to cancel it) is waited for.
const ANSWER_AFTER_CANCEL: Duration = Duration::from_secs(2);

/// How long a call made once `ANSWER_AFTER_INTERRUPT` has passed is waited for before it
/// is cancelled: enough for a database that answers, on a connection opened again after a
/// cancel (TLS, over a network), while one that holds every call (a lock another session
/// keeps) does not hold each of the run's last records for 3 s more.
const LAST_CHANCE: Duration = Duration::from_secs(1);

/// Why a call has no answer.
enum NoAnswer {
    /// The client thread is gone.
    Stopped,
    /// `ANSWER_WITHIN` passed.
    Late,
    /// `ANSWER_AFTER_INTERRUPT` passed after the run was interrupted.
    Interrupted,
}

/// Waits for a call's answer on `rx`: up to `ANSWER_WITHIN`, and once the run is
/// interrupted until `ANSWER_AFTER_INTERRUPT` after the interrupt (or `LAST_CHANCE`, for a
/// call made later). Before, the first Ctrl-C during a call the database did not answer
/// was not taken for up to a minute; and each call after it waited its own 3 s.
fn answer<T>(rx: &mpsc::Receiver<T>) -> std::result::Result<T, NoAnswer> {
    answer_until(rx, crate::interrupt::since)
}

/// `answer`, with when the run was interrupted (if it was) asked of `since`.
fn answer_until<T>(
    rx: &mpsc::Receiver<T>,
    since: impl Fn() -> Option<std::time::Instant>,
) -> std::result::Result<T, NoAnswer> {
    let mut deadline = std::time::Instant::now() + ANSWER_WITHIN;
    let mut interrupted = false;
    loop {
        if let (false, Some(at)) = (interrupted, since()) {
            interrupted = true;
            let now = std::time::Instant::now();
            deadline = deadline.min((at + ANSWER_AFTER_INTERRUPT).max(now + LAST_CHANCE));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(if interrupted {
                NoAnswer::Interrupted
            } else {
                NoAnswer::Late
            });
        }
        // Looks at the flag ten times a second: the wait is on a plain channel.
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(v) => return Ok(v),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(NoAnswer::Stopped),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

type Job = Box<dyn FnOnce(&mut Client) + Send>;

pub struct Postgres {
    jobs: mpsc::Sender<Job>,
    shown: String,
    lease: Duration,
    /// How long a run waits for the database to record a write (`Backend::wait`).
    wait: Duration,
    /// The login role the server authenticated (`session_user`).
    role: String,
    /// Kept to open the heartbeat's own connection.
    url: String,
    /// Set when a call got no answer in time: what the connection is doing is unknown, so
    /// nothing more is sent on it.
    stalled: std::sync::atomic::AtomicBool,
    /// What cancels the call in flight on the current connection (set at each connect).
    cancel: std::sync::Arc<std::sync::Mutex<Option<postgres::CancelToken>>>,
    /// The TLS the connection uses, for a cancel request's own connection.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Set when a cancel was sent: the client thread opens a new connection for its next
    /// job. The server cancels whatever the connection runs when the request lands, and
    /// sending it does not wait for that, so one landing late would hit a later statement
    /// (the run's stop record, its lock's release); a new connection is out of its reach.
    retire: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How many cancels were sent: a caller between two round trips of one job (the audit
    /// append) gives up when one was sent during the first.
    cancels: std::sync::atomic::AtomicU64,
    /// An audit append whose answer did not come (its place and line): it may have landed,
    /// and the next append, its retry as a rule, looks there before appending.
    unanswered: std::sync::Mutex<Option<(i64, String)>>,
}

/// Where the line ($2) goes in the run's ($1) journal, as `v`: `there` when it is already
/// the last (sent again after its INSERT committed and the answer was lost: stored once; a
/// chained line names the hash of the one before it, so the same line twice in a row is
/// only ever such a retry); `gap` when the run's last stored line is not the one it names
/// as before it (`prev_hash`): the database lost lines it had acknowledged, as a failover
/// to a standby that had not received them does; else `append`. Lines from before the
/// chain (without `prev_hash`, or after a last line without `hash`) are not checked.
///
/// The hashes are read as text at the line's end, where `chain::chained` always writes
/// them (`…,"prev_hash":"…","hash":"…"}`), not through `json`: PostgreSQL's JSON types
/// refuse a line holding an escaped NUL, which a vendor's answer or a script may put there.
const VERDICT: &str = concat!(
    "verdict AS (SELECT CASE ",
    "WHEN last.line = $2 THEN 'there' ",
    "WHEN substring($2 from '",
    r#""prev_hash":"([0-9a-f]{64})","hash":"[0-9a-f]{64}"}$"#,
    "') IS NULL THEN 'append' ",
    "WHEN last.line IS NULL THEN CASE WHEN substring($2 from '",
    r#""prev_hash":"([0-9a-f]{64})","hash":"[0-9a-f]{64}"}$"#,
    "') = '0000000000000000000000000000000000000000000000000000000000000000' ",
    "THEN 'append' ELSE 'gap' END ",
    "WHEN substring(last.line from '",
    r#""hash":"([0-9a-f]{64})"}$"#,
    "') IS NULL THEN 'append' ",
    "WHEN substring(last.line from '",
    r#""hash":"([0-9a-f]{64})"}$"#,
    "') = substring($2 from '",
    r#""prev_hash":"([0-9a-f]{64})","hash":"[0-9a-f]{64}"}$"#,
    "') THEN 'append' ",
    "ELSE 'gap' END AS v ",
    "FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT line FROM runbook_journal ",
    "WHERE run_id = $1 ORDER BY seq DESC LIMIT 1) last ON true)"
);

/// A failure to reach or use the database: exit 2, with what to check.
fn state_error(shown: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::State {
        message: format!("the state database {shown}: {what}: {e}"),
        help: "check that PostgreSQL is running and RUNBOOK_STATE_URL (or runbook.toml [state] url) is right; runbook never falls back to local files while a state URL is set".into(),
    }
}

impl Postgres {
    /// A run's journal rows with the login stamped on each, in order: as a journal file is,
    /// refused unread over the size limit (any login may append rows, and one inflated
    /// journal must not take every colleague's `runs`, `due` and `audit verify` down), in
    /// one statement (a row appended between a count and a read would get past it).
    fn journal_rows(&self, run_id: &str) -> Result<Vec<super::Stamp>> {
        let limit = crate::hooks::max_journal_bytes().unwrap_or(crate::state::MAX_JOURNAL_BYTES);
        let id = run_id.to_string();
        #[allow(clippy::type_complexity)]
        let rows: Vec<(Option<String>, Option<String>, i64)> =
            self.call("cannot read the run journal", move |c| {
                c.query(
                    "WITH size AS (SELECT coalesce(sum(octet_length(line) + 1), 0)::bigint AS n \
                       FROM runbook_journal WHERE run_id = $1) \
                     SELECT j.line, j.login, size.n FROM size \
                       LEFT JOIN runbook_journal j ON j.run_id = $1 AND size.n <= $2 \
                     ORDER BY j.seq",
                    &[&id, &(limit as i64)],
                )?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect()
            })?;
        let size = rows.first().map_or(0, |(_, _, n)| *n) as u64;
        if size > limit {
            return Err(Error::TooLarge {
                path: self.journal_where(run_id).into(),
                what: "a journal",
                bytes: size,
                limit,
            });
        }
        Ok(rows
            .into_iter()
            .filter_map(|(text, login, _)| Some(super::Stamp { text: text?, login }))
            .collect())
    }

    /// Connects (TLS when the server offers it; `sslmode=require` insists), applies the
    /// migrations this version knows, and refuses a server or schema it cannot work with.
    pub fn connect(url: &str, lease: Duration) -> Result<Postgres> {
        let shown = super::redact_url(url);
        // As libpq: a service name, the PG* environment, the password file, every sslmode.
        let var = |k: &str| std::env::var(k).ok();
        let env = super::libpq::Env {
            var: &var,
            home: std::env::var_os("HOME").map(std::path::PathBuf::from),
        };
        let resolved =
            super::libpq::resolve(url, &env).map_err(|e| state_error(&shown, "bad URL", e))?;
        let mut config =
            Config::from_str(&resolved.conninfo).map_err(|e| state_error(&shown, "bad URL", e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.keepalives(true);
        // On loopback (or a Unix socket) there is no network to protect unless the URL asks
        // for TLS; anywhere else TLS is required (never `prefer`, which lets anyone on the
        // path answer "no TLS") and the server's certificate is verified.
        let local = config.get_hosts().iter().all(|h| match h {
            postgres::config::Host::Tcp(name) => is_loopback(name),
            postgres::config::Host::Unix(_) => true,
        });
        let roots = match resolved.tls {
            super::libpq::Tls::Off => None,
            super::libpq::Tls::Default if local => None,
            super::libpq::Tls::Default => Some(None),
            super::libpq::Tls::Verified { roots } => Some(roots),
        };
        let tls = match roots {
            None => None,
            Some(roots) => {
                config.ssl_mode(postgres::config::SslMode::Require);
                Some(tls(roots.as_deref()).map_err(|e| state_error(&shown, "TLS setup", e))?)
            }
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel::<Result<String>>();
        let name = shown.clone();
        let cancel = std::sync::Arc::new(std::sync::Mutex::new(None));
        let retire = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cancel_slot, client_tls, retired) = (cancel.clone(), tls.clone(), retire.clone());
        std::thread::Builder::new()
            .name("runbook-state".into())
            .spawn(move || {
                let open = || -> Result<Client> {
                    let connected = match &client_tls {
                        Some(tls) => config.connect(tls.clone()),
                        None => config.connect(postgres::NoTls),
                    };
                    let mut client =
                        connected.map_err(|e| state_error(&name, "cannot connect", db_text(&e)))?;
                    *cancel_slot.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(client.cancel_token());
                    migrate(&mut client, &name)?;
                    Ok(client)
                };
                let mut client = match open() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Who the server authenticated: the login role, whatever role the session
                // then acts as.
                let who = client
                    .query_one("SELECT session_user::text", &[])
                    .and_then(|r| r.try_get::<_, String>(0))
                    .map_err(|e| state_error(&name, "cannot read the session's role", db_text(&e)));
                let _ = ready_tx.send(who);
                let mut client = Some(client);
                // A connection the server closed (a restart, a failover) is opened again
                // for the next call; while it cannot be, calls are refused at once (their
                // job is dropped unanswered), never queued behind a dead connection.
                for job in queue {
                    if retired.swap(false, std::sync::atomic::Ordering::SeqCst) {
                        // Closed: the server rolls back what it left open.
                        client = None;
                    }
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = open().ok();
                    }
                    if let Some(c) = client.as_mut() {
                        job(c);
                    }
                }
            })
            .map_err(|e| state_error(&shown, "cannot start its client", e))?;
        match answer(&ready) {
            Ok(Ok(role)) => Ok(Postgres {
                jobs,
                shown,
                role,
                lease,
                wait: super::DEFAULT_WAIT,
                url: url.to_string(),
                stalled: std::sync::atomic::AtomicBool::new(false),
                cancel,
                tls,
                retire,
                cancels: std::sync::atomic::AtomicU64::new(0),
                unanswered: std::sync::Mutex::new(None),
            }),
            Ok(Err(e)) => Err(e),
            Err(NoAnswer::Interrupted) => Err(state_error(
                &shown,
                "no answer",
                "interrupted while connecting",
            )),
            Err(_) => Err(state_error(&shown, "no answer", "connecting timed out")),
        }
    }

    /// How long a run waits for this database to record a write before giving up on it.
    pub fn waiting(self, wait: Duration) -> Postgres {
        Postgres { wait, ..self }
    }

    /// Runs `f` on the client's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T> {
        self.usable(what)?;
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.jobs
            .send(job)
            .map_err(|_| state_error(&self.shown, what, "its client has stopped"))?;
        self.answered(what, &rx)
    }

    /// The answer of the call in flight on `rx`, as `answer` waits for it. One still
    /// unanswered `ANSWER_AFTER_INTERRUPT` after the run was interrupted is cancelled on
    /// the server and waited for a little longer: with a database that answers (the call
    /// was waiting on another session's lock) the run still records its stop and frees its
    /// lock, on a new connection; only one that does not is left alone.
    fn answered<T>(
        &self,
        what: &str,
        rx: &mpsc::Receiver<std::result::Result<T, postgres::Error>>,
    ) -> Result<T> {
        let got = match answer(rx) {
            Err(NoAnswer::Interrupted) => {
                self.cancel_in_flight();
                match rx.recv_timeout(ANSWER_AFTER_CANCEL) {
                    Ok(Err(e)) if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) => {
                        // Not worded "no answer": the connection answered, and the
                        // heartbeat keeps a connection unless it stopped answering.
                        return Err(state_error(
                            &self.shown,
                            what,
                            format!(
                                "cancelled {} after the run was interrupted ({})",
                                since_interrupt(),
                                db_text(&e)
                            ),
                        ));
                    }
                    // Answered before the cancel landed, or failed on its own.
                    Ok(got) => Ok(got),
                    Err(mpsc::RecvTimeoutError::Disconnected) => Err(NoAnswer::Stopped),
                    Err(mpsc::RecvTimeoutError::Timeout) => Err(NoAnswer::Interrupted),
                }
            }
            got => got,
        };
        match got {
            Ok(Ok(v)) => Ok(v),
            // Not the database being down: this login may not do it, and waiting will not help.
            Ok(Err(e)) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                Err(Error::State {
                    message: format!("the state database {}: {what}: {}", self.shown, db_text(&e)),
                    help: "this database login lacks a right on runbook's tables: the tables' owner grants it (docs/team.md, \"Identities\", lists what operators and auditors need)".into(),
                })
            }
            Ok(Err(e)) => Err(state_error(&self.shown, what, db_text(&e))),
            Err(e) => Err(self.no_answer(what, e)),
        }
    }

    /// Asks the server to cancel the call in flight, from a thread of its own (a server
    /// that hung may not take the request either; nothing waits on it), and has the next
    /// job open a new connection, out of a late cancel's reach.
    fn cancel_in_flight(&self) {
        self.retire.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancels
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let token = self
            .cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(token) = token else { return };
        let tls = self.tls.clone();
        let _ = std::thread::Builder::new()
            .name("runbook-state-cancel".into())
            .spawn(move || {
                let _ = match tls {
                    Some(tls) => token.cancel_query(tls),
                    None => token.cancel_query(postgres::NoTls),
                };
            });
    }

    /// Refuses a call on a connection that stopped answering.
    fn usable(&self, what: &str) -> Result<()> {
        if self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(state_error(
                &self.shown,
                what,
                "it stopped answering earlier in this run, so nothing more is sent to it",
            ));
        }
        Ok(())
    }

    /// A call with no answer: gone, or none in time. One in flight may still be applied,
    /// and the connection is busy with it: nothing more is sent.
    fn no_answer(&self, what: &str, why: NoAnswer) -> Error {
        let waited = match why {
            NoAnswer::Stopped => return unreachable(&self.shown, what),
            NoAnswer::Late => format!("no answer in {} s", ANSWER_WITHIN.as_secs()),
            NoAnswer::Interrupted => format!(
                "no answer {} after the run was interrupted, nor once cancelled",
                since_interrupt()
            ),
        };
        self.stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        state_error(
            &self.shown,
            what,
            format!(
                "{waited} (the call may still take effect; nothing more is sent to it in this run)"
            ),
        )
    }
}

/// How long ago the run was interrupted, in whole seconds ("3 s").
fn since_interrupt() -> String {
    let ago = crate::interrupt::since().map_or(ANSWER_AFTER_INTERRUPT, |at| at.elapsed());
    format!("{} s", ago.as_secs_f64().round())
}

/// A call refused because the connection is gone and cannot be opened again just now.
fn unreachable(shown: &str, what: &str) -> Error {
    state_error(
        shown,
        what,
        "the connection was lost and the server cannot be reached again yet",
    )
}

/// The server's own message when it sent one (it names the table, the constraint...), else
/// the error with its cause (a refused connection, a certificate that does not verify).
fn db_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS that verifies the server's certificate and name: against the certificates in
/// `roots` (`sslrootcert`), else the platform's.
fn tls(
    roots: Option<&Path>,
) -> std::result::Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    use rustls_platform_verifier::ConfigVerifierExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match roots {
        None => rustls::ClientConfig::with_platform_verifier().map_err(|e| e.to_string())?,
        Some(path) => {
            let mut store = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                ));
            }
            rustls::ClientConfig::builder()
                .with_root_certificates(store)
                .with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Brings the schema to this version's, under an advisory lock so two first uses at once do
/// not both migrate.
fn migrate(client: &mut Client, shown: &str) -> Result<()> {
    let err = |what: &str, e: postgres::Error| state_error(shown, what, db_text(&e));
    // A call the server does not finish in time fails rather than hangs the run.
    client
        .batch_execute(
            "SET statement_timeout = '30s'; SET lock_timeout = '15s'; \
             SET standard_conforming_strings = on",
        )
        .map_err(|e| err("cannot set timeouts", e))?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| err("cannot read the server version", e))?;
    if version < OLDEST_SERVER {
        return Err(Error::State {
            message: format!(
                "the state database {shown} runs PostgreSQL {}.{}, older than this version of runbook supports (11 or newer)",
                version / 10000,
                version % 10000 / 100
            ),
            help: "upgrade the server, or point RUNBOOK_STATE_URL at a newer one".into(),
        });
    }
    // A schema that is current needs no lock and no CREATE: a read-only role (an auditor's
    // `audit verify`) connects too.
    let at = schema_version(client).map_err(|e| err("cannot read the schema version", e))?;
    if at == Some(MIGRATIONS.len() as i32) {
        return Ok(());
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_KEY])
        .map_err(|e| err("cannot lock the schema", e))?;
    let result = apply(client, shown);
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_KEY]);
    result
}

/// The schema's version, `None` before the first migration.
fn schema_version(client: &mut Client) -> std::result::Result<Option<i32>, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('runbook_schema') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    client
        .query_one("SELECT coalesce(max(version), 0) FROM runbook_schema", &[])?
        .try_get(0)
        .map(Some)
}

fn apply(client: &mut Client, shown: &str) -> Result<()> {
    let err = |what: &str, e: postgres::Error| state_error(shown, what, db_text(&e));
    // Read before anything is created: an operator's login may not create tables in the
    // schema, and PostgreSQL checks that even for a table that exists, so a newer schema
    // read as "permission denied" there (team review).
    let at: i32 =
        match schema_version(client).map_err(|e| err("cannot read the schema version", e))? {
            Some(at) => at,
            None => {
                client
                    .batch_execute(
                        "CREATE TABLE IF NOT EXISTS runbook_schema (version integer NOT NULL)",
                    )
                    .map_err(|e| err("cannot create the schema table", e))?;
                0
            }
        };
    let known = MIGRATIONS.len() as i32;
    if at > known {
        return Err(Error::State {
            message: format!(
                "the state database {shown} has schema version {at}, newer than this runbook knows ({known})"
            ),
            help: "a newer runbook uses this database: upgrade this one before it touches the shared state".into(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(at as usize) {
        let next = i as i32 + 1;
        let mut tx = client
            .transaction()
            .map_err(|e| err("cannot start a migration", e))?;
        tx.batch_execute(sql)
            .and_then(|_| tx.execute("INSERT INTO runbook_schema VALUES ($1)", &[&next]))
            .map_err(|e| err("a migration failed", e))?;
        tx.commit().map_err(|e| err("a migration failed", e))?;
    }
    Ok(())
}

const HOLDER_COLUMNS: &str = "holder, expires < now(), \
     to_char(expires AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), key";

fn holder_of(row: &postgres::Row) -> Option<Holder> {
    let text: String = row.try_get(0).ok()?;
    let mut h: Holder = serde_json::from_str(&text).ok()?;
    h.expired = row.try_get(1).unwrap_or(false);
    h.expires = row.try_get(2).ok();
    h.lock = row.try_get(3).unwrap_or_default();
    Some(h)
}

impl Backend for Postgres {
    fn describe(&self) -> String {
        format!("the state database {}", self.shown)
    }
    fn dir(&self) -> Option<&Path> {
        None
    }
    fn wait(&self) -> Duration {
        self.wait
    }
    fn authenticated(&self) -> Option<String> {
        Some(self.role.clone())
    }
    fn stamp_weakness(&self) -> Option<String> {
        let owner: bool = self
            .call("cannot read who owns the approvals table", |c| {
                c.query_one(
                    "SELECT r.rolsuper OR pg_has_role(session_user, c.relowner, 'USAGE') \
                     FROM pg_class c, pg_roles r \
                     WHERE c.oid = 'runbook_approvals'::regclass AND r.rolname = session_user",
                    &[],
                )?
                .try_get(0)
            })
            .ok()?;
        owner.then(|| {
            format!(
                "the database login '{}' can act as the owner of runbook's tables (or is a superuser), so it could switch off the triggers that prove who wrote each row and who decided: give each operator a login without the owner's role (docs/team.md, \"Identities\")",
                self.role
            )
        })
    }
    fn fingerprint_key(&self) -> Result<[u8; 32]> {
        let fresh = runbook_secret::random_key().to_vec();
        // Made once, for a database no run has written to: a key missing beside journalled
        // runs was deleted (any operator's login could), and a fresh one would make every
        // fingerprint journalled with the old one unmatchable, every unfinished run stuck
        // (team review). Said, not replaced.
        let key: Option<Vec<u8>> = self.call("cannot read the fingerprint key", move |c| {
            c.execute(
                "INSERT INTO runbook_settings SELECT 'fingerprint_key', $1 \
                 WHERE NOT EXISTS (SELECT 1 FROM runbook_journal) ON CONFLICT DO NOTHING",
                &[&fresh],
            )?;
            c.query_opt(
                "SELECT value FROM runbook_settings WHERE name = 'fingerprint_key'",
                &[],
            )?
            .map(|r| r.try_get(0))
            .transpose()
        })?;
        let Some(key) = key else {
            return Err(Error::State {
                message: format!(
                    "the state database {}: its fingerprint key is missing, though runs are journalled there (the row was deleted from runbook_settings)",
                    self.shown
                ),
                help: "fingerprints journalled there cannot be checked without it, and a new key would leave every unfinished run unresumable: restore runbook_settings from a backup (and revoke UPDATE, DELETE on it from the operators' role: docs/team.md)".into(),
            });
        };
        key.try_into().map_err(|k: Vec<u8>| Error::State {
            message: format!(
                "the state database {}: its fingerprint key is damaged ({} bytes, not 32)",
                self.shown,
                k.len()
            ),
            help: "fingerprints journalled there cannot be checked without it; restore runbook_settings from a backup".into(),
        })
    }
}

impl JournalStore for Postgres {
    fn journal_where(&self, run_id: &str) -> String {
        format!("{} (run {run_id})", self.shown)
    }
    fn runs_where(&self) -> String {
        self.describe()
    }
    // Every append is a committed transaction, durable by the server's own settings.
    fn journal_append(&self, run_id: &str, line: &str, _durable: bool) -> Result<()> {
        let place = self.journal_where(run_id);
        let (run_id, line) = (run_id.to_string(), line.to_string());
        let verdict: String = self.call("cannot write the run journal", move |c| {
            c.query_one(
                &format!(
                    "WITH {VERDICT}, stored AS (INSERT INTO runbook_journal (run_id, line) \
                     SELECT $1, $2 FROM verdict WHERE verdict.v = 'append' RETURNING 1) \
                     SELECT v FROM verdict"
                ),
                &[&run_id, &line],
            )
            .and_then(|r| r.try_get(0))
        })?;
        match verdict.as_str() {
            "gap" => Err(Error::RecordsLost { place }),
            _ => Ok(()),
        }
    }
    fn journal_append_fenced(
        &self,
        run_id: &str,
        line: &str,
        fence: &Fence,
        _durable: bool,
    ) -> Result<bool> {
        // One statement: the lease is confirmed (and extended) by its taking's id and the
        // line stored only if it still holds. A run whose lease another took stores nothing.
        // The answer is whether the lease held, stored now or by the attempt before.
        let place = self.journal_where(run_id);
        let (run_id, line) = (run_id.to_string(), line.to_string());
        let (key, lease_id) = (fence.key.clone(), fence.lease_id.clone());
        let secs = self.lease.as_secs_f64();
        let (held, verdict): (i64, String) = self.call("cannot write the run journal", move |c| {
            c.query_one(
                &format!(
                    "WITH held AS (UPDATE runbook_locks SET expires = now() + make_interval(secs => $5) \
                     WHERE key = $3 AND lease_id = $4 RETURNING 1), {VERDICT}, \
                     stored AS (INSERT INTO runbook_journal (run_id, line) SELECT $1, $2 \
                     FROM held, verdict WHERE verdict.v = 'append' RETURNING 1) \
                     SELECT (SELECT count(*) FROM held), (SELECT v FROM verdict)"
                ),
                &[&run_id, &line, &key, &lease_id, &secs],
            )
            .and_then(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        })?;
        match (held == 1, verdict.as_str()) {
            // Another run took the lease: nothing stored, and the gap is not this run's to say.
            (false, _) => Ok(false),
            (true, "gap") => Err(Error::RecordsLost { place }),
            (true, _) => Ok(true),
        }
    }
    fn journal(&self, run_id: &str) -> Result<Option<String>> {
        let lines: Vec<String> = self
            .journal_rows(run_id)?
            .into_iter()
            .map(|s| s.text)
            .collect();
        Ok((!lines.is_empty()).then(|| lines.join("\n") + "\n"))
    }
    fn journal_stamped(&self, run_id: &str) -> Result<Option<Vec<super::Stamp>>> {
        let rows = self.journal_rows(run_id)?;
        Ok((!rows.is_empty()).then_some(rows))
    }
    fn journal_last(&self, run_id: &str) -> Result<Option<String>> {
        let run_id = run_id.to_string();
        self.call("cannot read the run journal", move |c| {
            c.query_opt(
                "SELECT line FROM runbook_journal WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&run_id],
            )?
            .map(|r| r.try_get(0))
            .transpose()
        })
    }
    fn runs(&self) -> Result<Vec<String>> {
        self.call("cannot list the runs", |c| {
            c.query(
                "SELECT run_id FROM runbook_journal GROUP BY run_id ORDER BY run_id",
                &[],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
        })
    }
    fn unsettled_runs(&self, settles: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
        // One query, not one per run: a team's store holds thousands of runs, each a round
        // trip away. The runs are walked on the (run_id, seq) index, two probes each (the
        // next id, its last line), rather than the whole journal read.
        self.call("cannot read the runs' journals", |c| {
            c.query(
                "WITH RECURSIVE ids AS (
                     (SELECT run_id FROM runbook_journal ORDER BY run_id LIMIT 1)
                     UNION ALL
                     SELECT (SELECT j.run_id FROM runbook_journal j
                             WHERE j.run_id > ids.run_id ORDER BY j.run_id LIMIT 1)
                     FROM ids WHERE ids.run_id IS NOT NULL)
                 SELECT ids.run_id,
                        (SELECT j.line FROM runbook_journal j
                         WHERE j.run_id = ids.run_id ORDER BY j.seq DESC LIMIT 1)
                 FROM ids WHERE ids.run_id IS NOT NULL ORDER BY ids.run_id",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<std::result::Result<Vec<(String, String)>, postgres::Error>>()
        })
        .map(|runs| {
            runs.into_iter()
                // Rows under an id no run can have (any login may insert one) are no run:
                // nothing could resume or abandon them, and they blocked every rotation.
                .filter(|(id, last)| crate::run::is_run_id(id) && !settles(last))
                .map(|(id, _)| id)
                .collect()
        })
    }
}

/// An append whose answer was lost, handed back to the store's slot unless the append that
/// took it got as far as looking for it (`entry` cleared).
struct Unanswered<'a> {
    slot: &'a std::sync::Mutex<Option<(i64, String)>>,
    entry: Option<(i64, String)>,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(entry);
        }
    }
}

impl AuditStore for Postgres {
    fn audit_append(
        &self,
        make: &mut dyn FnMut(&str) -> Result<String>,
        _durable: bool,
    ) -> Result<Option<String>> {
        // The whole transaction is one job: the client's thread takes the lock and reads the
        // chain's tail, hands the tail over, waits for the line, then appends and commits. No
        // other job (a heartbeat, a journal record) can land inside the transaction, and a
        // caller that gives up (an error, no answer) leaves it rolled back, never open.
        const WHAT: &str = "cannot append to the audit chain";
        // An earlier append whose answer did not come: what is at its place now. Kept until
        // this append has looked there: a try that fails before (the server still gone, a
        // cancel) leaves it for the next, which would otherwise append it a second time.
        let unanswered = self
            .unanswered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut kept = Unanswered {
            slot: &self.unanswered,
            entry: unanswered.clone(),
        };
        if crate::hooks::audit_unreachable() {
            return Err(state_error(
                &self.shown,
                WHAT,
                "no answer (RUNBOOK_AUDIT_UNREACHABLE, a test hook)",
            ));
        }
        type Tail = std::result::Result<(Option<(i64, String)>, Option<String>), postgres::Error>;
        let (tail_tx, tail_rx) = mpsc::channel::<Tail>();
        let (line_tx, line_rx) = mpsc::channel::<Option<(i64, String)>>();
        let (done_tx, done_rx) = mpsc::channel::<std::result::Result<(), postgres::Error>>();
        let there = unanswered.as_ref().map(|(seq, _)| *seq);
        let job: Job = Box::new(move |c| {
            // One round trip to lock and read the tail (and the earlier append's place), one
            // to append and commit: the lock is held for as little as the chain allows.
            let earlier = there
                .map(|seq| format!("; SELECT line FROM runbook_audit WHERE seq = {seq}"))
                .unwrap_or_default();
            let got = c.simple_query(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({AUDIT_KEY}); \
                 SELECT seq, line FROM runbook_audit ORDER BY seq DESC LIMIT 1{earlier}"
            ));
            let tail = got.map(|messages| {
                let rows: Vec<&postgres::SimpleQueryRow> = messages
                    .iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => Some(r),
                        _ => None,
                    })
                    .collect();
                let last = rows.iter().find(|r| r.columns().len() == 2).map(|r| {
                    (
                        r.get(0).and_then(|s| s.parse().ok()).unwrap_or(0),
                        r.get(1).unwrap_or_default().to_string(),
                    )
                });
                let at = rows
                    .iter()
                    .find(|r| r.columns().len() == 1 && r.columns()[0].name() == "line")
                    .and_then(|r| r.get(0).map(str::to_string));
                (last, at)
            });
            let failed = tail.is_err();
            if tail_tx.send(tail).is_err() || failed {
                let _ = c.batch_execute("ROLLBACK");
                return;
            }
            let Ok(Some((seq, line))) = line_rx.recv_timeout(ANSWER_WITHIN) else {
                // Nothing to append (the entry is in already), or the caller gave up.
                let _ = c.batch_execute("ROLLBACK");
                let _ = done_tx.send(Ok(()));
                return;
            };
            // An escape-string literal (backslashes and quotes doubled: the same bytes
            // whatever the session's standard_conforming_strings; JSON text holds no NUL),
            // so the insert and the commit go in one batch; a failed insert skips the
            // commit and is rolled back.
            let done = c.batch_execute(&format!(
                "INSERT INTO runbook_audit (seq, line) VALUES ({seq}, E'{}'); COMMIT",
                line.replace('\\', "\\\\").replace('\'', "''")
            ));
            if done.is_err() {
                let _ = c.batch_execute("ROLLBACK");
            }
            let _ = done_tx.send(done);
        });
        self.usable(WHAT)?;
        self.jobs
            .send(job)
            .map_err(|_| state_error(&self.shown, WHAT, "its client has stopped"))?;
        let cancels = self.cancels.load(std::sync::atomic::Ordering::SeqCst);
        let (tail, at) = self.answered(WHAT, &tail_rx)?;
        if self.cancels.load(std::sync::atomic::Ordering::SeqCst) != cancels {
            // The tail came before a cancel sent meanwhile, which may yet land on the
            // append: given up (dropping `line_tx` rolls the transaction back).
            return Err(state_error(
                &self.shown,
                WHAT,
                "cancelled after the run was interrupted",
            ));
        }
        let (seq, prev) = match &tail {
            None => (1, super::GENESIS.to_string()),
            Some((seq, line)) => (
                seq + 1,
                super::hash_of(line.as_bytes()).map_err(|e| Error::Write {
                    path: self.audit_where().into(),
                    source: e,
                })?,
            ),
        };
        // Dropping `line_tx` on an error here rolls the transaction back.
        let line = make(&prev)?;
        // Looked: the earlier append is in the chain (and this is it again, or another entry
        // after it), or it never landed.
        kept.entry = None;
        // The earlier append landed, and this is it again: it is not appended twice.
        if let (Some((_, earlier)), Some(at)) = (&unanswered, &at) {
            if earlier == at && same_entry(earlier, &line) {
                let _ = line_tx.send(None);
                self.answered(WHAT, &done_rx)?;
                return Ok(Some(earlier.clone()));
            }
        }
        line_tx
            .send(Some((seq, line.clone())))
            .map_err(|_| state_error(&self.shown, WHAT, "its client has stopped"))?;
        let done =
            self.answered(WHAT, &done_rx)
                .and_then(|()| match crate::hooks::audit_answer_lost() {
                    true => Err(state_error(
                        &self.shown,
                        WHAT,
                        "the answer was lost (RUNBOOK_LOSE_AUDIT_ANSWER, a test hook)",
                    )),
                    false => Ok(()),
                });
        if done.is_err() {
            // Its COMMIT may have landed: the next append looks before it appends.
            *self.unanswered.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, line));
        }
        done.map(|()| None)
    }
    fn audit_lines(&self) -> Result<Vec<String>> {
        self.call("cannot read the audit chain", |c| {
            c.query("SELECT line FROM runbook_audit ORDER BY seq", &[])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
    }
    fn audit_lines_of(&self, run_id: &str) -> Result<Vec<String>> {
        // The server picks the run's rows: not the whole table across the network.
        let marker = super::run_marker(run_id);
        self.call("cannot read the audit chain", move |c| {
            c.query(
                "SELECT line FROM runbook_audit WHERE strpos(line, $1) > 0 ORDER BY seq",
                &[&marker],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
        })
    }
    fn audit_stamped(&self) -> Result<Option<Vec<super::Stamp>>> {
        self.call("cannot read the audit chain", |c| {
            stamped(c.query("SELECT line, login FROM runbook_audit ORDER BY seq", &[])?)
        })
        .map(Some)
    }
    fn audit_where(&self) -> String {
        format!("{} (table runbook_audit)", self.shown)
    }
}

impl LockStore for Postgres {
    fn lease(&self) -> Option<Duration> {
        Some(self.lease)
    }
    fn lock_create(&self, key: &str, holder: &Holder) -> Result<bool> {
        let (key, run_id) = (key.to_string(), holder.run_id.clone());
        let lease_id = holder.lease_id.clone();
        let text = serde_json::to_string(holder).unwrap_or_default();
        let secs = self.lease.as_secs_f64();
        self.call("cannot take the lock", move |c| {
            c.execute(
                "INSERT INTO runbook_locks (key, run_id, lease_id, holder, expires) \
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) ON CONFLICT (key) DO NOTHING",
                &[&key, &run_id, &lease_id, &text, &secs],
            )
            .map(|n| n == 1)
        })
    }
    fn lock_read(&self, key: &str) -> Result<Slot> {
        let key = key.to_string();
        let row = self.call("cannot read the lock", move |c| {
            c.query_opt(
                &format!("SELECT {HOLDER_COLUMNS} FROM runbook_locks WHERE key = $1"),
                &[&key],
            )
        })?;
        Ok(match row {
            None => Slot::Free,
            Some(r) => Slot::Held(holder_of(&r)),
        })
    }
    fn lock_remove(&self, key: &str, lease_id: Option<&str>, expired_only: bool) -> Result<()> {
        let (key, lease_id) = (key.to_string(), lease_id.map(str::to_string));
        let expiry = if expired_only {
            " AND expires < now()"
        } else {
            ""
        };
        self.call("cannot release the lock", move |c| {
            match lease_id {
                Some(l) => c.execute(
                    &format!("DELETE FROM runbook_locks WHERE key = $1 AND lease_id = $2{expiry}"),
                    &[&key, &l],
                ),
                None => c.execute(
                    &format!("DELETE FROM runbook_locks WHERE key = $1{expiry}"),
                    &[&key],
                ),
            }
            .map(drop)
        })
    }
    fn lock_renew(&self, key: &str, lease_id: &str) -> Result<bool> {
        let (key, lease_id) = (key.to_string(), lease_id.to_string());
        let secs = self.lease.as_secs_f64();
        self.call("cannot renew the lock", move |c| {
            c.execute(
                "UPDATE runbook_locks SET expires = now() + make_interval(secs => $3) \
                 WHERE key = $1 AND lease_id = $2",
                &[&key, &lease_id, &secs],
            )
            .map(|n| n == 1)
        })
    }
    fn lock_confirm(&self, key: &str, lease_id: &str) -> Result<bool> {
        let (key, lease_id) = (key.to_string(), lease_id.to_string());
        self.call("cannot read the lock", move |c| {
            c.query_opt(
                "SELECT 1 FROM runbook_locks WHERE key = $1 AND lease_id = $2",
                &[&key, &lease_id],
            )
            .map(|row| row.is_some())
        })
    }
    fn lock_holders(&self) -> Result<Vec<Holder>> {
        let rows = self.call("cannot read the locks", |c| {
            c.query(&format!("SELECT {HOLDER_COLUMNS} FROM runbook_locks"), &[])
        })?;
        Ok(rows.iter().filter_map(holder_of).collect())
    }
    fn for_heartbeat(&self) -> Result<super::Store> {
        Ok(std::sync::Arc::new(
            Postgres::connect(&self.url, self.lease)?.waiting(self.wait),
        ))
    }
}

impl ApprovalStore for Postgres {
    fn approval_put_request(&self, run_id: &str, request: &str) -> Result<()> {
        let (run_id, request) = (run_id.to_string(), request.to_string());
        self.call("cannot file the approval request", move |c| {
            c.execute(
                "INSERT INTO runbook_approvals (run_id, request, decision) VALUES ($1, $2, NULL) \
                 ON CONFLICT (run_id) DO UPDATE SET request = EXCLUDED.request, decision = NULL",
                &[&run_id, &request],
            )
            .map(drop)
        })
    }
    fn approval_request(&self, run_id: &str) -> Result<Option<String>> {
        let run_id = run_id.to_string();
        self.call("cannot read the approval request", move |c| {
            c.query_opt(
                "SELECT request, request_login FROM runbook_approvals WHERE run_id = $1",
                &[&run_id],
            )?
            .map(|r| Ok(super::with_login(r.try_get(0)?, r.try_get(1)?)))
            .transpose()
        })
    }
    fn approval_decision(&self, run_id: &str) -> Result<Option<String>> {
        let run_id = run_id.to_string();
        let got: Option<Option<String>> = self.call("cannot read the approval", move |c| {
            c.query_opt(
                "SELECT decision, decision_login FROM runbook_approvals WHERE run_id = $1",
                &[&run_id],
            )?
            .map(|r| {
                let decision: Option<String> = r.try_get(0)?;
                Ok(decision.map(|d| super::with_login(d, r.try_get(1).ok().flatten())))
            })
            .transpose()
        })?;
        Ok(got.flatten())
    }
    fn approval_put_decision(&self, run_id: &str, decision: &str) -> Result<bool> {
        let (run_id, decision) = (run_id.to_string(), decision.to_string());
        self.call("cannot record the decision", move |c| {
            // The request on file read under a row lock, its nonce compared here (a jsonb
            // cast in SQL fails on text jsonb refuses, such as a \u0000).
            let mut tx = c.transaction()?;
            let filed: Option<String> = tx
                .query_opt(
                    "SELECT request FROM runbook_approvals WHERE run_id = $1 AND decision IS NULL FOR UPDATE",
                    &[&run_id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let stored = match filed {
                Some(request) if super::same_request(&request, &decision) => {
                    tx.execute(
                        "UPDATE runbook_approvals SET decision = $2 WHERE run_id = $1 AND decision IS NULL",
                        &[&run_id, &decision],
                    )? == 1
                }
                _ => false,
            };
            tx.commit()?;
            Ok(stored)
        })
    }
    fn decisions(&self, run_id: &str) -> Result<Option<Vec<super::Decided>>> {
        let run_id = run_id.to_string();
        self.call("cannot read the decisions", move |c| {
            c.query(
                "SELECT decision, request, login FROM runbook_decisions WHERE run_id = $1 ORDER BY seq",
                &[&run_id],
            )?
            .iter()
            .map(|r| {
                Ok(super::Decided {
                    decision: r.try_get(0)?,
                    request: r.try_get(1)?,
                    login: r.try_get(2)?,
                })
            })
            .collect()
        })
        .map(Some)
    }
}

/// Whether two audit lines hold the same entry but for when and where it was written: its
/// time, the hashes that place it in the chain, and the journal line it followed (a retry
/// comes after the run recorded more).
fn same_entry(a: &str, b: &str) -> bool {
    let content = |line: &str| {
        let mut v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.as_object_mut()?;
        for volatile in ["time", "prev_hash", "hash", "journal"] {
            fields.remove(volatile);
        }
        Some(v)
    };
    matches!((content(a), content(b)), (Some(x), Some(y)) if x == y)
}

/// Rows of (text, login) as stamps.
fn stamped(rows: Vec<postgres::Row>) -> std::result::Result<Vec<super::Stamp>, postgres::Error> {
    rows.iter()
        .map(|r| {
            Ok(super::Stamp {
                text: r.try_get(0)?,
                login: r.try_get(1)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{answer_until, NoAnswer, ANSWER_AFTER_INTERRUPT, LAST_CHANCE};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// The journal's first line names the genesis hash as the one before it; the SQL that
    /// checks it spells the hash out.
    #[test]
    fn the_journal_verdict_knows_the_genesis_hash() {
        assert!(super::VERDICT.contains(&format!("'{}'", crate::store::GENESIS)));
    }

    /// A call made after the interrupt's grace is cancelled after its last chance, not
    /// after 3 s of its own: a database that holds every call (another session's lock)
    /// held each of an interrupted run's last records for 3 s, and its stop took 12 s.
    #[test]
    fn a_call_made_after_the_interrupts_grace_waits_only_its_last_chance() {
        let (_keep, rx) = mpsc::channel::<()>();
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .unwrap_or_else(Instant::now);
        let started = Instant::now();
        let got = answer_until(&rx, || Some(long_ago));
        assert!(matches!(got, Err(NoAnswer::Interrupted)));
        let waited = started.elapsed();
        assert!(waited >= LAST_CHANCE, "{waited:?}");
        // A bound, not a measure: its own 3 s would be three times the last chance.
        assert!(waited < ANSWER_AFTER_INTERRUPT, "{waited:?}");
    }

    /// An answer that comes within the last chance is taken, not cancelled.
    #[test]
    fn an_answer_within_the_last_chance_is_taken() {
        let (tx, rx) = mpsc::channel();
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .unwrap_or_else(Instant::now);
        tx.send(7).unwrap();
        assert!(matches!(answer_until(&rx, || Some(long_ago)), Ok(7)));
    }
}
