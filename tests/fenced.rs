//! Fail closed: no vendor write without its record. A run whose state store cannot take a
//! write's record (a full or read-only disk, a database that is down) sends nothing until
//! it can, and goes on when it can; a run whose lease another machine took never writes
//! again. The "vendor" here is the test's own HTTP server: it records every request and
//! holds the first `GET /gate` until the test lets it go, so the test knows which step the
//! run is in without sleeping.

use crate::support::pg::{Cluster, Database};
use crate::support::{status_code, Exit, Test};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const RUNBOOK: &str = r#"
runbook(#{ id: "fenced", title: "A write behind a gate", secret: "FENCED_KEY" });
param("url", #{ default: "http://127.0.0.1:9", env: "FENCED_URL", help: "the vendor" });
step("reach", "Reach the gate", |ctx| { http::get(`${ctx.params.url}/gate`); });
step("write", "Write", |ctx| {
    let r = http::post(`${ctx.params.url}/things`, #{ json: #{ n: 1 } });
    ensure(r.status == 200, `got ${r.status}`);
}).no_undo("the test's vendor keeps what it is sent");
"#;

/// Two writes, the first held by the vendor (`POST /gate`) until the test lets it go.
const HELD_WRITE: &str = r#"
runbook(#{ id: "held", title: "A write held at the vendor", secret: "HELD_KEY" });
param("url", #{ default: "http://127.0.0.1:9", env: "FENCED_URL", help: "the vendor" });
step("first", "First write", |ctx| {
    http::post(`${ctx.params.url}/gate`, #{ json: #{ n: 1 } });
}).no_undo("the test's vendor keeps what it is sent");
step("second", "Second write", |ctx| {
    http::post(`${ctx.params.url}/things`, #{ json: #{ n: 2 } });
}).no_undo("the test's vendor keeps what it is sent");
"#;

/// Reads one HTTP request from `conn`, its body too: "METHOD /path", or `None` when the
/// connection closed first.
fn read_request(conn: &std::net::TcpStream) -> Option<String> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let request: Vec<&str> = first.split_whitespace().take(2).collect();
    Some(request.join(" "))
}

/// The test's vendor.
struct Vendor {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    reached: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl Vendor {
    fn start() -> Vendor {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (reached_tx, reached) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, reached_tx, release_rx, held) = (
                    log.clone(),
                    reached_tx.clone(),
                    release_rx.clone(),
                    held.clone(),
                );
                std::thread::spawn(move || {
                    let Some(request) = read_request(&conn) else {
                        return;
                    };
                    log.lock().unwrap().push(request.clone());
                    if (request == "GET /gate" || request == "POST /gate")
                        && !held.swap(true, std::sync::atomic::Ordering::SeqCst)
                    {
                        let _ = reached_tx.send(());
                        let _ = release_rx
                            .lock()
                            .unwrap()
                            .recv_timeout(Duration::from_secs(120));
                    }
                    let mut conn = conn;
                    // `/refused`: the vendor turns the request down, and nothing changes.
                    let _ = conn.write_all(if request.contains(" /refused") {
                        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                    });
                });
            }
        });
        Vendor {
            url,
            seen,
            reached,
            release,
        }
    }

    /// Whether it was sent `request` (`"DELETE /b"`).
    fn saw(&self, request: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|r| r == request)
    }

    /// How many requests it was sent that start with `prefix` (`"PUT"`).
    fn count(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// Waits until a run holds at the gate.
    fn wait_at_gate(&self) {
        self.reached
            .recv_timeout(Duration::from_secs(120))
            .expect("the run never reached the gate");
    }

    fn open_gate(&self) {
        self.release.send(()).unwrap();
    }

    /// The writes it was sent.
    fn writes(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with("POST"))
            .cloned()
            .collect()
    }
}

/// A run started in the background with stdout and stderr piped, to read as it goes.
trait SpawnPiped {
    fn spawn_piped(&self) -> Child;
}

impl SpawnPiped for Test {
    fn spawn_piped(&self) -> Child {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// fenced.rhai run on the file store, its state broken by `sabotage` while the run waits
/// at the gate: it must stop before its write, exit 1, saying `said` first. Its whole output.
fn stopped_by(
    sabotage: impl FnOnce(&std::path::Path),
    said: &str,
) -> (Vendor, tempfile::TempDir, String) {
    let vendor = Vendor::start();
    let dir = folder();
    let mut child = runbook(dir.path(), &vendor, &["exec", "fenced.rhai", "--yes"])
        .env("RUNBOOK_STATE_WAIT_SECONDS", "1")
        .spawn_piped();
    vendor.wait_at_gate();
    sabotage(&dir.path().join("state"));
    vendor.open_gate();
    let (told, stderr) = stderr_until(&mut child, said);
    let (code, rest) = finish(child, stderr);
    let text = format!("{told}{rest}");
    assert_eq!(Exit::from_code(code), Some(Exit::StepFailed), "{text}");
    // Stopped at its write, or (a lock found lost) before the step began.
    assert!(
        text.contains("Step 'write' stopped before its write")
            || text.contains("Step 'write' not run: "),
        "{text}"
    );
    assert_eq!(
        vendor.writes(),
        Vec::<String>::new(),
        "a write went out unrecorded:\n{text}"
    );
    (vendor, dir, text)
}

/// A temp dir holding fenced.rhai.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fenced.rhai"), RUNBOOK).unwrap();
    dir
}

/// `runbook ARGS` in `dir`, its state in `dir/state`, the vendor at `vendor`.
fn runbook(dir: &std::path::Path, vendor: &Vendor, args: &[&str]) -> Test {
    Test::in_dir(dir)
        .env("RUNBOOK_STATE_DIR", &dir.join("state").to_string_lossy())
        .env("FENCED_URL", &vendor.url)
        .args(args)
}

/// Reads stderr up to the first line holding `needle` (a condition, not a delay); the lines
/// read come back.
fn stderr_until(child: &mut Child, needle: &str) -> (String, BufReader<std::process::ChildStderr>) {
    let mut reader = BufReader::new(child.stderr.take().expect("piped stderr"));
    let seen = read_until(&mut reader, needle);
    (seen, reader)
}

/// Reads `reader` up to the first line holding `needle`; the lines read come back.
fn read_until(reader: &mut BufReader<std::process::ChildStderr>, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("{needle:?} never shown; stderr:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

/// The rest of a child's output once it ends, and its exit code.
fn finish(mut child: Child, mut stderr: BufReader<std::process::ChildStderr>) -> (i32, String) {
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut rest);
    }
    let status = child.wait().unwrap();
    (status_code(status), rest)
}

/// The file store: the journal's folder replaced by a file mid-run (as a disk that turned
/// read-only or full refuses appends). The write is not sent; the run says why and stops
/// once the wait is over; back in order, `resume` sends it exactly once.
#[test]
fn a_journal_that_cannot_be_written_stops_the_write_and_resume_sends_it_once() {
    let (vendor, dir, text) = stopped_by(
        |state| {
            std::fs::rename(state.join("runs"), state.join("runs.aside")).unwrap();
            std::fs::write(state.join("runs"), "not a folder").unwrap();
        },
        "cannot record the next vendor write before sending it",
    );
    assert!(
        text.contains("nothing is sent until it is recorded; retrying for up to 1 s"),
        "{text}"
    );
    assert!(
        text.contains("Step 'write' stopped before its write: the write was not sent because its record could not be stored"),
        "{text}"
    );

    let (runs, aside) = (
        dir.path().join("state/runs"),
        dir.path().join("state/runs.aside"),
    );
    std::fs::remove_file(&runs).unwrap();
    std::fs::rename(&aside, &runs).unwrap();
    let run_id = crate::support::last_run_id(&dir.path().join("state"));
    let resumed = runbook(dir.path(), &vendor, &["resume", &run_id, "--yes"]).run();
    resumed.exit(Exit::Ok);
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
    runbook(dir.path(), &vendor, &["audit", "verify"])
        .run()
        .exit(Exit::Ok);
}

/// PostgreSQL stopped while the run is inside a step: the write waits, unsent, while the
/// database is down; once it is back the run reconnects, records the write, sends it and
/// finishes with a journal that verifies.
#[test]
fn a_database_outage_holds_the_write_until_the_database_is_back() {
    let Some(mut cluster) = Cluster::start("a_database_outage_holds_the_write") else {
        return;
    };
    let vendor = Vendor::start();
    let dir = folder();
    let mut child = runbook(dir.path(), &vendor, &["exec", "fenced.rhai", "--yes"])
        .env("RUNBOOK_STATE_URL", &cluster.url)
        .env("RUNBOOK_STATE_WAIT_SECONDS", "300")
        .spawn_piped();
    vendor.wait_at_gate();
    cluster.stop();
    vendor.open_gate();
    let (told, stderr) = stderr_until(
        &mut child,
        "cannot record the next vendor write before sending it",
    );
    assert_eq!(
        vendor.writes(),
        Vec::<String>::new(),
        "sent while the database was down:\n{told}"
    );
    cluster.restart();
    let (code, rest) = finish(child, stderr);
    let text = format!("{told}{rest}");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("the state store takes records again; the run goes on"),
        "{text}"
    );
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
    // The journal is whole: the write's record, its outcome and the end, in one chain.
    let lines = crate::support::pg::journal_lines(&mut cluster.client());
    let types: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for t in [
        "run_started",
        "step_finished",
        "write",
        "write_outcome",
        "run_finished",
    ] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    runbook(dir.path(), &vendor, &["audit", "verify"])
        .env("RUNBOOK_STATE_URL", &cluster.url)
        .run()
        .exit(Exit::Ok);
}

/// The server processes serving a run's connections, stopped (SIGSTOP) while the guard
/// lives and let go (SIGCONT) when it drops: a database that hangs, neither answering nor
/// taking a cancel. Let go even when the test fails, or the cluster's own stop would wait
/// on them for ever.
struct Hung(Vec<i32>);

impl Hung {
    fn sessions_of_others(client: &mut postgres::Client) -> Hung {
        let pids: Vec<i32> = client
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!pids.is_empty(), "the run has no session to stop");
        for &pid in &pids {
            // SAFETY: signalling a server process of this test's own cluster.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        Hung(pids)
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

/// A database that hangs outright (its server processes stopped: no answer, and a cancel
/// request is not taken either) when the operator presses Ctrl-C: the call is given up 3 s
/// after the interrupt and 2 s after its cancel, nothing more is sent to the database, no
/// vendor write goes out, and the run exits 130 saying its lock was left to its lease.
/// Before the eighteenth session such a call held Ctrl-C for up to a minute; this path had
/// no test.
#[test]
fn ctrl_c_with_a_database_that_hangs_ends_the_run_without_a_write() {
    let Some(cluster) = Cluster::start("ctrl_c_with_a_database_that_hangs") else {
        return;
    };
    let vendor = Vendor::start();
    let dir = folder();
    let mut child = runbook(dir.path(), &vendor, &["exec", "fenced.rhai", "--yes"])
        .env("RUNBOOK_STATE_URL", &cluster.url)
        .spawn_piped();
    vendor.wait_at_gate();
    let mut watch = cluster.client();
    let hung = Hung::sessions_of_others(&mut watch);
    vendor.open_gate();
    crate::support::signal(&child, libc::SIGINT);
    // A bound on a hang, not a measure of speed: the waits add up to 5 s.
    let bound = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < bound,
            "the run did not end 30 s after Ctrl-C"
        );
        std::thread::yield_now();
    }
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (code, text) = finish(child, stderr);
    assert_eq!(code, 130, "{text}");
    assert!(
        text.contains("s after the run was interrupted, nor once cancelled"),
        "{text}"
    );
    assert!(
        text.contains("could not release the rotation lock")
            && text.contains("it frees itself when its lease runs out"),
        "{text}"
    );
    assert_eq!(
        vendor.writes(),
        Vec::<String>::new(),
        "a write went out:\n{text}"
    );
    drop(hung);
    // The lock the run could not release is there, for its lease to end.
    let locks: i64 = watch
        .query_one("SELECT count(*) FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    assert_eq!(locks, 1, "{text}");
}

/// The cancel of a call the database holds (another session locks the journal) is sent
/// over the connection's TLS: the server takes it, the call ends "cancelled", and the run
/// goes on to a new connection that frees its lock. A cancel that could not be sent over
/// TLS would leave the call unanswered: "nor once cancelled", and the lock kept. (The run's
/// later records, held by the same lock, are cancelled after a last chance of 1 s each:
/// each waited its own 3 s before, and this run took 12 s to stop; about 6 s now.)
#[test]
fn ctrl_c_cancels_a_held_call_over_tls_and_frees_the_lock() {
    let Some((cluster, ca)) = Cluster::start_tls("ctrl_c_cancels_a_held_call_over_tls") else {
        return;
    };
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster.url,
        ca.display()
    );
    let vendor = Vendor::start();
    let dir = folder();
    let mut child = runbook(dir.path(), &vendor, &["exec", "fenced.rhai", "--yes"])
        .env("RUNBOOK_STATE_URL", &url)
        .spawn_piped();
    vendor.wait_at_gate();
    let mut locker = cluster.client();
    locker
        .batch_execute("BEGIN; LOCK TABLE runbook_journal IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    vendor.open_gate();
    // The run's next record waits on that lock.
    let mut watch = cluster.client();
    crate::support::pg::wait_for_a_waiter_on(&mut watch, "runbook_journal");
    crate::support::signal(&child, libc::SIGINT);
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (code, text) = finish(child, stderr);
    locker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(code, 130, "{text}");
    assert!(
        text.contains(
            "s after the run was interrupted (canceling statement due to user request (57014))"
        ),
        "{text}"
    );
    assert!(!text.contains("nor once cancelled"), "{text}");
    assert!(!text.contains("could not release"), "{text}");
    assert_eq!(vendor.writes(), Vec::<String>::new(), "{text}");
    let locks: i64 = watch
        .query_one("SELECT count(*) FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "the run's lock was left held:\n{text}");
}

/// PostgreSQL restarted while a run holds its lease: the heartbeat's renewals fail while
/// the database is down (said once), then renew on a connection opened again, which the
/// run says; the lock is still the run's, and it finishes. A heartbeat that never renews
/// again would leave the run at the gate: it is killed after 60 s and the test fails.
#[test]
fn the_lease_heartbeat_renews_again_after_the_database_restarts() {
    let Some(mut cluster) = Cluster::start("the_lease_heartbeat_renews_again") else {
        return;
    };
    let vendor = Vendor::start();
    let dir = folder();
    let mut child = runbook(dir.path(), &vendor, &["exec", "fenced.rhai", "--yes"])
        .env("RUNBOOK_STATE_URL", &cluster.url)
        .env("RUNBOOK_LEASE_SECONDS", "3")
        .spawn_piped();
    vendor.wait_at_gate();
    cluster.stop();
    let (down, mut stderr) = stderr_until(&mut child, "cannot renew the rotation lock");
    cluster.restart();
    let (done, watchdog) = mpsc::channel::<()>();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
        }
    });
    let back = read_until(&mut stderr, "the rotation lock is renewed again; run ");
    // Still the run's: nobody can take a lease that is renewed.
    let holder: String = cluster
        .client()
        .query_one("SELECT run_id FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    assert!(
        back.contains(&format!("run {holder} keeps it")),
        "{holder} holds the lock:\n{back}"
    );
    let _ = done.send(());
    vendor.open_gate();
    let (code, rest) = finish(child, stderr);
    let text = format!("{down}{back}{rest}");
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains("no longer holds its rotation lock"),
        "{text}"
    );
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
}

/// `runbook ARGS` on `machine` (its own state dir) against the shared database, with
/// leases of 1 s.
fn on_lease(
    dir: &std::path::Path,
    db: &Database,
    vendor: &Vendor,
    machine: &str,
    args: &[&str],
) -> Test {
    Test::in_dir(dir)
        .env("RUNBOOK_STATE_DIR", &dir.join(machine).to_string_lossy())
        .env("RUNBOOK_STATE_URL", &db.url)
        .env("RUNBOOK_LEASE_SECONDS", "1")
        .env("FENCED_URL", &vendor.url)
        .args(args)
}

/// Whether the lock's lease has run out, by the database's clock.
fn lease_ran_out(c: &mut postgres::Client) -> bool {
    c.query_one("SELECT bool_and(expires < now()) FROM runbook_locks", &[])
        .ok()
        .and_then(|r| r.get::<_, Option<bool>>(0))
        .unwrap_or(false)
}

/// Alice's run on laptop-a, paused (SIGSTOP) at the gate until its lease runs out: the
/// paused process and its run id.
fn paused_past_its_lease(dir: &std::path::Path, db: &Database, vendor: &Vendor) -> (Child, String) {
    let a = on_lease(
        dir,
        db,
        vendor,
        "laptop-a",
        &["exec", "fenced.rhai", "--yes", "--actor", "alice"],
    )
    .spawn_piped();
    vendor.wait_at_gate();
    crate::support::signal(&a, libc::SIGSTOP);
    let mut c = db.client();
    while !lease_ran_out(&mut c) {
        std::thread::yield_now();
    }
    let run_id: String = c
        .query_one("SELECT run_id FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    (a, run_id)
}

/// Machine A is paused (SIGSTOP) inside a step until its lease runs out; machine B takes
/// the run over and finishes it. A, woken, makes no further write and records nothing.
#[test]
fn a_paused_machine_whose_lease_was_taken_never_writes_again() {
    let Some(db) = Database::fresh("a_paused_machine_whose_lease_was_taken") else {
        return;
    };
    let vendor = Vendor::start();
    let dir = folder();
    let on = |machine: &str, args: &[&str]| on_lease(dir.path(), &db, &vendor, machine, args);
    let (mut a, run_id) = paused_past_its_lease(dir.path(), &db, &vendor);
    let mut c = db.client();
    let journal_before: i64 = c
        .query_one("SELECT count(*) FROM runbook_journal", &[])
        .unwrap()
        .get(0);
    assert!(journal_before > 0);
    on("laptop-b", &["resume", &run_id, "--yes", "--actor", "bob"])
        .run()
        .exit(Exit::Ok);
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
    let lines_after_b: i64 = c
        .query_one("SELECT count(*) FROM runbook_journal", &[])
        .unwrap()
        .get(0);

    vendor.open_gate();
    crate::support::signal(&a, libc::SIGCONT);
    let stderr = BufReader::new(a.stderr.take().unwrap());
    let (code, text) = finish(a, stderr);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("no longer holds its rotation lock"), "{text}");
    assert_eq!(
        vendor.writes(),
        vec!["POST /things".to_string()],
        "A wrote after B took over:\n{text}"
    );
    let lines_at_end: i64 = c
        .query_one("SELECT count(*) FROM runbook_journal", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        lines_at_end, lines_after_b,
        "A appended to a journal B owns:\n{text}"
    );
    on("laptop-b", &["audit", "verify"]).run().exit(Exit::Ok);
}

/// `--break-lock` from a holder found dead by its lease only (its machine paused past it)
/// that wakes and renews before the lock is removed: it keeps the lock, the breaker is
/// refused, and the holder finishes with its one write. Before, plain --break-lock removed
/// whatever the lease was by then, as only a lease id typed back should (found by a cold
/// review).
#[test]
fn a_holder_that_renews_before_its_lock_is_broken_keeps_it() {
    let Some(db) = Database::fresh("a_holder_that_renews_before_its_lock_is_broken") else {
        return;
    };
    let vendor = Vendor::start();
    let dir = folder();
    let on = |machine: &str, args: &[&str]| on_lease(dir.path(), &db, &vendor, machine, args);
    let (mut a, run_id) = paused_past_its_lease(dir.path(), &db, &vendor);
    let mut c = db.client();
    let go = dir.path().join("go");
    let reached = dir.path().join("go.reached");
    let b = on(
        "laptop-b",
        &["resume", &run_id, "--break-lock", "--yes", "--actor", "bob"],
    )
    .env("RUNBOOK_PAUSE_AT", &format!("break:{}", go.display()))
    .command()
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let bound = std::time::Instant::now() + Duration::from_secs(60);
    while !reached.exists() {
        assert!(std::time::Instant::now() < bound, "B never read the holder");
        std::thread::yield_now();
    }
    // A wakes and its heartbeat renews the lease before B removes the lock.
    crate::support::signal(&a, libc::SIGCONT);
    while lease_ran_out(&mut c) {
        std::thread::yield_now();
    }
    std::fs::write(&go, "").unwrap();
    let b = b.wait_with_output().unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr);
    assert_ne!(b.status.code(), Some(0), "{b_err}");
    assert!(
        b_err.contains("is alive and holds this rotation's lock"),
        "{b_err}"
    );
    vendor.open_gate();
    let stderr = BufReader::new(a.stderr.take().unwrap());
    let (code, text) = finish(a, stderr);
    assert_eq!(code, 0, "{text}\n--- B:\n{b_err}");
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
}

/// A decision given while the database is down is retried, not lost: `approve` says it is
/// not recorded yet and waits; when the database is back it is stored, and the run that
/// waited through the restart goes on.
#[test]
fn an_approval_given_while_the_database_restarts_is_stored_when_it_is_back() {
    let Some(mut cluster) = Cluster::start("an_approval_given_while_the_database_restarts") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gated.rhai"),
        r#"
runbook(#{ id: "gated", title: "A gated change", secret: "GATED_KEY" });
step("gated", "The change", |ctx| { print("gated step ran"); })
    .approval(#{ by: "another operator", timeout: "300s" });
"#,
    )
    .unwrap();
    let url = cluster.url.clone();
    let on = |machine: &str, args: &[&str]| {
        Test::in_dir(dir.path())
            .env(
                "RUNBOOK_STATE_DIR",
                &dir.path().join(machine).to_string_lossy(),
            )
            .env("RUNBOOK_STATE_URL", &url)
            .env("RUNBOOK_STATE_WAIT_SECONDS", "300")
            .args(args)
    };
    let alice = on(
        "laptop-a",
        &[
            "exec",
            "gated.rhai",
            "--sandbox",
            "--yes",
            "--actor",
            "alice",
        ],
    )
    .spawn();
    let mut c = cluster.client();
    let run_id: String = loop {
        if let Ok(Some(row)) = c.query_opt("SELECT run_id FROM runbook_approvals", &[]) {
            break row.get(0);
        }
        std::thread::yield_now();
    };
    drop(c);
    let bob_login = cluster.login("bob");
    cluster.stop();
    let mut bob = on("laptop-b", &["approve", &run_id, "--actor", "bob"])
        .env("RUNBOOK_STATE_URL", &bob_login)
        .spawn_piped();
    let (told, stderr) = stderr_until(&mut bob, "retrying for up to 300 s");
    assert!(told.contains("the decision is not recorded yet"), "{told}");
    cluster.restart();
    let (code, rest) = finish(bob, stderr);
    assert_eq!(code, 0, "{told}{rest}");
    assert!(rest.contains("approved step 'gated'"), "{rest}");
    crate::support::assert_finished(alice, 0, &["approved by bob", "gated step ran"], &[]);
}

/// A runbook that talks only through `http::` to a server on this machine is a loopback
/// rehearsal, recorded as one: never a production rotation `due` would count.
#[test]
fn an_http_only_run_against_loopback_is_recorded_as_loopback() {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("http-only.rhai"),
        r#"
runbook(#{ id: "http-only", title: "http:: only", secret: "HTTP_KEY", cadence_days: 30, egress: ["param:url"] });
param("url", #{ default: "https://api.vendor.example", env: "FENCED_URL", help: "the vendor" });
step("write", "Write", |ctx| { http::post(`${ctx.params.url}/things`, #{ json: #{} }); })
    .no_undo("the test's vendor keeps what it is sent");
step("log", "Log", |ctx| { audit::log("secret.rotate.completed", #{}); });
"#,
    )
    .unwrap();
    runbook(dir.path(), &vendor, &["exec", "http-only.rhai", "--yes"])
        .run()
        .exit(Exit::Ok);
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
    let runs = runbook(dir.path(), &vendor, &["runs", "--json"]).run();
    assert_eq!(runs.json()[0]["target"], "loopback");
}

/// The audit log is part of the record: with the log unwritable mid-run, the entry it
/// refused is kept, the next write waits for it and is not sent, and the run says why.
/// The write's own line is stored before the audit's sync (two fsyncs before a write, not
/// three), so the journal also says it was not sent: back in order, `resume` sends it
/// once, without stopping over a write in doubt.
#[test]
fn an_audit_log_that_cannot_be_written_stops_the_next_write() {
    let (vendor, dir, text) = stopped_by(
        |state| {
            let log = state.join("audit.jsonl");
            std::fs::rename(&log, state.join("audit.aside")).unwrap();
            std::fs::create_dir(&log).unwrap();
        },
        "could not write the audit log",
    );
    assert!(
        text.contains("no vendor write is sent until the log takes it"),
        "{text}"
    );
    let state = dir.path().join("state");
    std::fs::remove_dir(state.join("audit.jsonl")).unwrap();
    std::fs::rename(state.join("audit.aside"), state.join("audit.jsonl")).unwrap();
    let run_id = crate::support::last_run_id(&state);
    let journal = std::fs::read_to_string(state.join(format!("runs/{run_id}.jsonl"))).unwrap();
    assert!(journal.contains("\"not_sent\""), "{journal}");
    let resumed = runbook(dir.path(), &vendor, &["resume", &run_id, "--yes"]).run();
    resumed.exit(Exit::Ok);
    assert_eq!(vendor.writes(), vec!["POST /things".to_string()]);
}

/// `file` (in the state directory) removed while the run's first write is out, every line
/// before it synced: the run records nothing more there, sends no other write and fails;
/// its output, and the state directory after it.
fn removed_while_a_write_is_out(file: impl Fn(&std::path::Path) -> std::path::PathBuf) -> String {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("held.rhai"), HELD_WRITE).unwrap();
    let mut child = runbook(dir.path(), &vendor, &["exec", "held.rhai", "--yes"])
        .env("RUNBOOK_STATE_WAIT_SECONDS", "1")
        .spawn_piped();
    vendor.wait_at_gate();
    let state = dir.path().join("state");
    let removed = file(&state);
    std::fs::remove_file(&removed).unwrap();
    vendor.open_gate();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (code, text) = finish(child, stderr);
    assert_eq!(Exit::from_code(code), Some(Exit::StepFailed), "{text}");
    assert_eq!(
        vendor.writes(),
        vec!["POST /gate".to_string()],
        "a write went out unrecorded:\n{text}"
    );
    assert!(
        text.contains("it was removed during the run, with what was appended to it"),
        "{text}"
    );
    assert!(!removed.exists(), "made again:\n{text}");
    text
}

/// The run's lock file removed by hand mid-run: the run stops before its write, and says
/// its lock may have been removed, not only that another run took it (it did not).
#[test]
fn a_lock_file_removed_mid_run_is_not_said_to_be_taken_only() {
    let (_vendor, _dir, text) = stopped_by(
        |state| {
            for f in std::fs::read_dir(state.join("locks")).unwrap() {
                std::fs::remove_file(f.unwrap().path()).unwrap();
            }
        },
        "no longer holds its rotation lock",
    );
    assert!(text.contains("or its lock was removed"), "{text}");
}

/// A file lock the run cannot remove at its end stays until someone does: the warning
/// names the file and `--break-lock`. Before, it said the lock "frees itself when its lease
/// runs out", which a file lock never does, and the next exec was refused while resume
/// said there was nothing to resume (found by a cold review).
#[test]
fn a_file_lock_left_behind_is_named_with_how_to_free_it() {
    let mut lock = std::path::PathBuf::new();
    let (_vendor, _dir, text) = stopped_by(
        |state| {
            let locks = state.join("locks");
            let file = std::fs::read_dir(&locks)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            std::fs::remove_file(&file).unwrap();
            std::fs::create_dir(&file).unwrap();
            std::fs::write(file.join("keep"), "").unwrap();
            lock = file;
        },
        "stopped before its write",
    );
    assert!(
        text.contains(&format!(
            "it stays until removed: once this run is done with, `rm {}` or take it with `--break-lock`",
            lock.display()
        )),
        "{text}"
    );
    assert!(
        !text.contains("frees itself when its lease runs out"),
        "{text}"
    );
}

/// The journal removed while a write is out, every line synced: the rest is not written
/// to a journal made again from the next line, which lacked the run's start and read as
/// damaged, while the run said "succeeded" (found by a cold review).
#[test]
fn a_journal_removed_while_a_write_is_out_is_not_made_again() {
    removed_while_a_write_is_out(|state| {
        let run_id = crate::support::last_run_id(state);
        state.join(format!("runs/{run_id}.jsonl"))
    });
}

/// The audit log removed while a write is out: no chain begun again from nothing, which
/// `audit verify` called whole.
#[test]
fn an_audit_log_removed_while_a_write_is_out_is_not_begun_again() {
    removed_while_a_write_is_out(|state| state.join("audit.jsonl"));
}

/// A rollback of a succeeded run that undid a step and then failed leaves the rotation half
/// undone: the run is no longer settled as succeeded.
#[test]
fn a_rollback_that_fails_halfway_unsettles_a_succeeded_run() {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("two.rhai"),
        r#"
runbook(#{ id: "two", title: "Two undoable writes", secret: "TWO_KEY", egress: ["param:url"] });
param("url", #{ default: "https://api.vendor.example", env: "FENCED_URL", help: "the vendor" });
step("a", "A", |ctx| { http::put(`${ctx.params.url}/a`, #{ json: #{}, idempotent: true }); })
    .undo(|ctx| { fail("the undo of a cannot run"); });
step("b", "B", |ctx| { http::put(`${ctx.params.url}/b`, #{ json: #{}, idempotent: true }); })
    .undo(|ctx| { http::delete(`${ctx.params.url}/b`, #{ idempotent: true }); });
"#,
    )
    .unwrap();
    runbook(dir.path(), &vendor, &["exec", "two.rhai", "--yes"])
        .run()
        .exit(Exit::Ok);
    let run_id = crate::support::last_run_id(&dir.path().join("state"));
    assert_eq!(settled(dir.path(), &vendor), "succeeded");
    runbook(dir.path(), &vendor, &["rollback", &run_id, "--yes"])
        .run()
        .exit(Exit::StepFailed);
    assert!(vendor.saw("DELETE /b"));
    assert_eq!(settled(dir.path(), &vendor), serde_json::Value::Null);
}

/// A succeeded run of one.rhai: one undoable write, `PUT /b`, whose undo is `undo`.
/// Returns its vendor, its folder and the run's id.
fn succeeded_one(undo: &str) -> (Vendor, tempfile::TempDir, String) {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
runbook(#{ id: "one", title: "One undoable write", secret: "ONE_KEY", egress: ["param:url"] });
param("url", #{ default: "https://api.vendor.example", env: "FENCED_URL", help: "the vendor" });
step("b", "B", |ctx| { http::put(`${ctx.params.url}/b`, #{ json: #{}, idempotent: true }); })
    .undo(|ctx| { UNDO });
"#;
    std::fs::write(dir.path().join("one.rhai"), script.replace("UNDO", undo)).unwrap();
    runbook(dir.path(), &vendor, &["exec", "one.rhai", "--yes"])
        .run()
        .exit(Exit::Ok);
    let run_id = crate::support::last_run_id(&dir.path().join("state"));
    (vendor, dir, run_id)
}

/// The newest run's `settled`, as `runs --json` says it.
fn settled(dir: &std::path::Path, vendor: &Vendor) -> serde_json::Value {
    runbook(dir, vendor, &["runs", "--json"]).run().json()[0]["settled"].clone()
}

/// A rollback of a succeeded run whose first undo sent its write and then failed: nothing
/// finished undoing, but the vendor may hold the undone value. Before, the run still read
/// as succeeded and a new rotation went ahead over it; now it is unsettled, and the next
/// rotation is refused until the rollback is finished.
#[test]
fn a_rollback_stopped_inside_its_first_undo_unsettles_a_succeeded_run() {
    let (vendor, dir, run_id) = succeeded_one(
        r#"http::delete(`${ctx.params.url}/b`, #{ idempotent: true }); fail("the check after the delete failed");"#,
    );
    assert_eq!(settled(dir.path(), &vendor), "succeeded");
    runbook(dir.path(), &vendor, &["rollback", &run_id, "--yes"])
        .run()
        .exit(Exit::StepFailed);
    assert!(vendor.saw("DELETE /b"));
    assert_eq!(settled(dir.path(), &vendor), serde_json::Value::Null);
    let before = vendor.count("PUT");
    runbook(dir.path(), &vendor, &["exec", "one.rhai", "--yes"])
        .run()
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run of this rotation is unfinished: {run_id}"
        ));
    assert_eq!(vendor.count("PUT"), before, "the refused run wrote");
}

/// A rollback whose undo write the vendor refused, and that then stopped, changed nothing:
/// the succeeded run stays settled and the next rotation runs.
#[test]
fn a_rollback_whose_undo_write_was_refused_leaves_a_succeeded_run_settled() {
    let (vendor, dir, run_id) = succeeded_one(
        r#"http::delete(`${ctx.params.url}/refused`, #{ idempotent: true }); fail("the vendor refused the undo");"#,
    );
    runbook(dir.path(), &vendor, &["rollback", &run_id, "--yes"])
        .run()
        .exit(Exit::StepFailed);
    assert!(vendor.saw("DELETE /refused"));
    assert_eq!(settled(dir.path(), &vendor), "succeeded");
    runbook(dir.path(), &vendor, &["exec", "one.rhai", "--yes"])
        .run()
        .exit(Exit::Ok);
}

const THROTTLED: &str = r#"
runbook(#{ id: "throttled", title: "A write the vendor throttles", secret: "THROTTLED_KEY" });
param("url", #{ default: "http://127.0.0.1:9", env: "FENCED_URL", help: "the vendor" });
step("write", "Write", |ctx| {
    let r = http::put(`${ctx.params.url}/things`, #{ json: #{ n: 1 }, idempotent: true });
    ensure(r.status == 200, `got ${r.status}`);
}).no_undo("the test's vendor keeps what it is sent");
"#;

/// A vendor that answers the first `PUT` with 429 and `Retry-After: 2`, and says when it
/// came; every request is logged.
fn throttling_vendor() -> (String, Arc<Mutex<Vec<String>>>, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (came, first_put) = mpsc::channel();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Some(request) = read_request(&conn) else {
                continue;
            };
            let puts = {
                let mut log = log.lock().unwrap();
                log.push(request.clone());
                log.iter().filter(|r| r.starts_with("PUT")).count()
            };
            let answer: &[u8] = if request.starts_with("PUT") && puts == 1 {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            };
            let mut conn = conn;
            let _ = conn.write_all(answer);
            if request.starts_with("PUT") && puts == 1 {
                let _ = came.send(());
            }
        }
    });
    (url, seen, first_put)
}

/// `throttled.rhai` run in `dir` with `store` (env pairs); `take` takes its lock once the
/// vendor has throttled its write. The write must not be sent again.
fn throttled_after_the_lock_was_taken(
    dir: &std::path::Path,
    store: &[(&str, &str)],
    take: impl FnOnce(),
) {
    let (url, seen, first_put) = throttling_vendor();
    std::fs::write(dir.join("throttled.rhai"), THROTTLED).unwrap();
    let mut t = Test::in_dir(dir)
        .env("RUNBOOK_STATE_DIR", &dir.join("state").to_string_lossy())
        .env("FENCED_URL", &url);
    for (k, v) in store {
        t = t.env(k, v);
    }
    let child = t.args(&["exec", "throttled.rhai", "--yes"]).spawn_piped();
    first_put
        .recv_timeout(Duration::from_secs(120))
        .expect("the write never came");
    take();
    let (puts, text) = stopped_by_the_taking(child, &seen, "PUT");
    assert_eq!(puts.len(), 1, "the write was sent again:\n{text}");
}

/// The run whose lock was taken ends, not succeeding and saying why: the requests the
/// vendor was sent that start with `method`, and the run's output.
fn stopped_by_the_taking(
    mut child: Child,
    seen: &Mutex<Vec<String>>,
    method: &str,
) -> (Vec<String>, String) {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (code, text) = finish(child, stderr);
    assert_ne!(Exit::from_code(code), Some(Exit::Ok), "{text}");
    assert!(text.contains("no longer holds its rotation lock"), "{text}");
    let sent = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with(method))
        .cloned()
        .collect();
    (sent, text)
}

/// Another run takes the file lock in `locks`: its file now names another taking.
fn taken_by_another(locks: &std::path::Path) {
    let lock = crate::support::lock_file(locks);
    let mut holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    holder["lease_id"] = "another-taking".into();
    std::fs::write(&lock, holder.to_string()).unwrap();
}

/// A write the vendor throttled (429, "retry after 2 s") is not sent again once the run's
/// lock was taken in the meantime (`--break-lock` by another operator, here the lock file
/// rewritten as another taking's): its retry waits on the vendor, and the lock is checked
/// again before it goes. Before, the retry went out after the other run had taken over.
#[test]
fn a_throttled_write_is_not_sent_again_after_the_lock_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join("state/locks");
    throttled_after_the_lock_was_taken(dir.path(), &[], || taken_by_another(&locks));
}

/// The same on PostgreSQL, within the lease: the heartbeat renews only every third of it,
/// so the retry asks the database itself.
#[test]
fn a_throttled_write_is_not_sent_again_after_the_lease_was_taken() {
    let Some(db) = Database::fresh("a_throttled_write_after_the_lease") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    throttled_after_the_lock_was_taken(
        dir.path(),
        &[
            ("RUNBOOK_STATE_URL", &db.url),
            ("RUNBOOK_LEASE_SECONDS", "60"),
        ],
        || {
            let taken = db
                .client()
                .execute("UPDATE runbook_locks SET lease_id = 'another-taking'", &[])
                .unwrap();
            assert_eq!(taken, 1);
        },
    );
}

const KEYED: &str = r#"
runbook(#{ id: "keyed", title: "A GitHub secret whose key read is throttled", secret: "KEYED_KEY" });
step("write", "Write", |ctx| {
    github::set_secret(["raxx/ci"], "KEYED_KEY", secret::random(32, "abcdefghijklmnopqrstuvwxyz0123456789"));
}).no_undo("the test's vendor keeps what it is sent");
"#;

/// A GitHub whose first read of the repository's public key is throttled (429, "retry
/// after 2 s"), and says when it came; every request is logged.
fn throttling_github() -> (String, Arc<Mutex<Vec<String>>>, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (came, first_read) = mpsc::channel();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Some(request) = read_request(&conn) else {
                continue;
            };
            let reads = {
                let mut log = log.lock().unwrap();
                log.push(request.clone());
                log.iter().filter(|r| r.contains("public-key")).count()
            };
            let key = r#"{"key_id":"k1","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;
            let answer = if request.contains("public-key") && reads == 1 {
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string()
            } else if request.contains("public-key") {
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{key}", key.len())
            } else {
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string()
            };
            let mut conn = conn;
            let _ = conn.write_all(answer.as_bytes());
            if request.contains("public-key") && reads == 1 {
                let _ = came.send(());
            }
        }
    });
    (url, seen, first_read)
}

/// A write whose vendor call reads first (GitHub's public key) and whose read is throttled:
/// the lock is taken while it waits. Before, the PUT went out after the wait unchecked: the
/// write's line was fenced before the call, and only a retry of the PUT itself was fenced
/// again (cold review). Now every write is fenced right before it leaves.
#[test]
fn a_write_whose_read_first_was_throttled_is_not_sent_after_the_lock_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen, first_read) = throttling_github();
    std::fs::write(dir.path().join("keyed.rhai"), KEYED).unwrap();
    let child = Test::in_dir(dir.path())
        .env(
            "RUNBOOK_STATE_DIR",
            &dir.path().join("state").to_string_lossy(),
        )
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", "ghp_fenced_test_token_000000000000000000")
        .args(&["exec", "keyed.rhai", "--yes"])
        .spawn_piped();
    first_read
        .recv_timeout(Duration::from_secs(120))
        .expect("the key read never came");
    taken_by_another(&dir.path().join("state/locks"));
    let (puts, text) = stopped_by_the_taking(child, &seen, "PUT");
    assert!(puts.is_empty(), "the write was sent:\n{text}");
}

const FANNED: &str = r#"
runbook(#{ id: "fanned", title: "A fan-out whose lock is taken half way", secret: "FANNED_KEY" });
step("propagate", "Set it on every app", |ctx| {
    heroku::set_config(["app-0001", "app-0002", "app-0003"], #{ FAN_VAR: "new" });
}).no_undo("the test's vendor keeps what it is sent");
"#;

/// The vendor's URL, its log, when the held PATCH came, and what lets it go.
type Holding = (
    String,
    Arc<Mutex<Vec<String>>>,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
);

/// A Heroku that holds its answer to app-0001's PATCH until the test lets it go, and says
/// when that PATCH came; every request is logged.
fn holding_heroku() -> Holding {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (came, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Some(request) = read_request(&conn) else {
                continue;
            };
            log.lock().unwrap().push(request.clone());
            if request == "PATCH /apps/app-0001/config-vars" {
                let _ = came.send(());
                let _ = released.recv_timeout(Duration::from_secs(120));
            }
            let mut conn = conn;
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"FAN_VAR\": \"new\"}\r\n");
        }
    });
    (url, seen, held, release)
}

/// `fanned.rhai` run in `dir` with `store` (env pairs) and one request at a time; `take`
/// takes its lock while app-0001's write is out. No later target may be sent.
fn fan_out_after_the_lock_was_taken(
    dir: &std::path::Path,
    store: &[(&str, &str)],
    take: impl FnOnce(),
) {
    let (url, seen, held, release) = holding_heroku();
    std::fs::write(dir.join("fanned.rhai"), FANNED).unwrap();
    let mut t = Test::in_dir(dir)
        .env("RUNBOOK_STATE_DIR", &dir.join("state").to_string_lossy())
        .env("HEROKU_HOST", &url)
        .env("HEROKU_API_KEY", "fanned-test-key-0000000000000000")
        .env("RUNBOOK_CONCURRENCY", "1");
    for (k, v) in store {
        t = t.env(k, v);
    }
    let child = t.args(&["exec", "fanned.rhai", "--yes"]).spawn_piped();
    held.recv_timeout(Duration::from_secs(120))
        .expect("app-0001's write never came");
    take();
    release.send(()).unwrap();
    let (patches, text) = stopped_by_the_taking(child, &seen, "PATCH");
    assert_eq!(patches, ["PATCH /apps/app-0001/config-vars"], "{text}");
}

/// A fan-out whose lock another run takes while a target's request is out sends no later
/// target: each is sent only after the lease is confirmed again (cold review: a freed slot
/// went to the next target on the strength of the batch's record, made before the lock was
/// taken, and `--break-lock` promises the holder stops before its next write).
#[test]
fn a_fan_out_sends_no_target_after_its_lock_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join("state/locks");
    fan_out_after_the_lock_was_taken(dir.path(), &[], || taken_by_another(&locks));
}

/// The same on PostgreSQL, within the lease (the heartbeat renews only every third of it):
/// each target asks the database.
#[test]
fn a_fan_out_sends_no_target_after_its_lease_was_taken() {
    let Some(db) = Database::fresh("a_fan_out_after_the_lease") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    fan_out_after_the_lock_was_taken(
        dir.path(),
        &[
            ("RUNBOOK_STATE_URL", &db.url),
            ("RUNBOOK_LEASE_SECONDS", "60"),
        ],
        || {
            let taken = db
                .client()
                .execute("UPDATE runbook_locks SET lease_id = 'another-taking'", &[])
                .unwrap();
            assert_eq!(taken, 1);
        },
    );
}

/// The database lost the run's last records while a write was out (a failover to a standby
/// that had not received them: an asynchronous standby drops acknowledged commits). The
/// next record would name a line that is not there: the run stops, says so and sends no
/// other write (cold review: it chained on over the gap and finished with exit 0, and a
/// later resume or rollback knew nothing of the write).
#[test]
fn a_database_that_lost_the_runs_last_records_stops_the_run() {
    let Some(db) = Database::fresh("a_database_that_lost_the_last_records") else {
        return;
    };
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("held.rhai"), HELD_WRITE).unwrap();
    let mut child = runbook(dir.path(), &vendor, &["exec", "held.rhai", "--yes"])
        .env("RUNBOOK_STATE_URL", &db.url)
        .env("RUNBOOK_STATE_WAIT_SECONDS", "1")
        .spawn_piped();
    vendor.wait_at_gate();
    let mut c = db.client();
    crate::support::pg::behind_the_triggers(&mut c);
    let lost = c
        .execute(
            "DELETE FROM runbook_journal WHERE seq = (SELECT max(seq) FROM runbook_journal)",
            &[],
        )
        .unwrap();
    assert_eq!(lost, 1);
    vendor.open_gate();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (code, text) = finish(child, stderr);
    assert_ne!(Exit::from_code(code), Some(Exit::Ok), "{text}");
    assert_eq!(
        vendor.writes(),
        vec!["POST /gate".to_string()],
        "a write went out after the gap:\n{text}"
    );
    assert!(
        text.contains("the database no longer holds this run's last records"),
        "{text}"
    );
}

/// A gate, then a step that needs an approval.
const GATED_APPROVAL: &str = r#"
runbook(#{ id: "gatedapproval", title: "An approval after a gate", secret: "GATED_KEY" });
param("url", #{ default: "http://127.0.0.1:9", env: "FENCED_URL", help: "the vendor" });
step("reach", "Reach the gate", |ctx| { http::get(`${ctx.params.url}/gate`); });
step("revoke", "Revoke", |ctx| {
    http::post(`${ctx.params.url}/things`, #{ json: #{ n: 1 } });
}).no_undo("the test's vendor keeps what it is sent").approval(#{ by: "the security on-call", timeout: "60s" });
"#;

/// On the file store, a run whose lock another taking holds (`resume --break-lock
/// --lease-id` while it was in a long read) stops before its next step, and files no
/// approval request: before, only a lease's heartbeat (PostgreSQL) ever said the lock was
/// lost, and the run filed its request over the new holder's (clearing any decision on
/// it), then waited the whole timeout (cold review).
#[test]
fn a_run_whose_file_lock_was_taken_stops_before_its_next_step_and_files_no_request() {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gated.rhai"), GATED_APPROVAL).unwrap();
    let mut child = runbook(
        dir.path(),
        &vendor,
        &[
            "exec",
            "gated.rhai",
            "--yes",
            "--sandbox",
            "--actor",
            "alice",
        ],
    )
    .spawn_piped();
    vendor.wait_at_gate();
    let state = dir.path().join("state");
    taken_by_another(&state.join("locks"));
    let approvals = state.join("approvals");
    std::fs::create_dir_all(&approvals).unwrap();
    vendor.open_gate();
    let said = "no longer holds its rotation lock";
    let (told, stderr) = stderr_until(&mut child, said);
    let (code, rest) = finish(child, stderr);
    let text = format!("{told}{rest}");
    assert_eq!(Exit::from_code(code), Some(Exit::StepFailed), "{text}");
    assert!(
        text.contains("Step 'revoke' not run: this run no longer holds its rotation lock"),
        "{text}"
    );
    assert_eq!(vendor.writes(), Vec::<String>::new(), "{text}");
    let filed: Vec<_> = std::fs::read_dir(&approvals).unwrap().flatten().collect();
    assert!(filed.is_empty(), "a request was filed: {filed:?}\n{text}");
}

const GATED_FAILURE: &str = r#"
runbook(#{ id: "gatedfailure", title: "A failure after a gate", secret: "GATED_KEY" });
param("url", #{ default: "http://127.0.0.1:9", env: "FENCED_URL", help: "the vendor" });
step("first", "Write", |ctx| {
    http::post(`${ctx.params.url}/things`, #{ json: #{ n: 1 } });
}).undo(|ctx| { http::post(`${ctx.params.url}/things`, #{ json: #{ n: 0 } }); });
step("check", "Reach the gate, then fail", |ctx| {
    http::get(`${ctx.params.url}/gate`);
    throw "the check failed";
});
"#;

/// A run whose lock another process took while a step waited (here `rollback
/// --break-lock --lease-id` by a colleague, the lock file rewritten as another taking's)
/// fails that step: it stops there. It neither rolls back (the new holder does what is to
/// be done) nor writes to the audit log. Before, it chose rollback (`--yes`), sent nothing
/// but audited `step.failed`, `step.undone` and `run.completed`: entries that were not
/// true, in the evidence beside the new holder's (hostile review).
#[test]
fn a_run_whose_lock_was_taken_neither_rolls_back_nor_audits_after() {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gated.rhai"), GATED_FAILURE).unwrap();
    let mut child = runbook(
        dir.path(),
        &vendor,
        &["exec", "gated.rhai", "--yes", "--sandbox"],
    )
    .spawn_piped();
    vendor.wait_at_gate();
    let state = dir.path().join("state");
    taken_by_another(&state.join("locks"));
    let audit = || std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let entries = audit().lines().count();
    vendor.open_gate();
    let said = "no longer holds its rotation lock";
    let (told, stderr) = stderr_until(&mut child, said);
    let (code, rest) = finish(child, stderr);
    let text = format!("{told}{rest}");
    assert_eq!(Exit::from_code(code), Some(Exit::StepFailed), "{text}");
    assert!(!text.contains("Rolling back"), "{text}");
    // Not "continue with resume, or rollback": another process holds the run.
    assert!(
        text.contains("Another process holds this run now: `runbook runs "),
        "{text}"
    );
    assert!(!text.contains("Continue with `runbook resume"), "{text}");
    assert_eq!(vendor.writes(), ["POST /things"], "{text}");
    assert_eq!(audit().lines().count(), entries, "{}\n{text}", audit());
}

/// Ctrl-C (here SIGINT to a piped session) while a write typed at the production REPL is
/// held at the vendor: the REPL says the write was sent and may have applied. Before, only
/// "interrupted": the change may have been made, and nothing said so (cold review).
#[test]
fn an_interrupted_write_at_the_repl_is_said_to_maybe_have_applied() {
    let vendor = Vendor::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("yes.toml"), "\"repl.write\" = true\n").unwrap();
    let line = format!(
        "http::post(\"{}/gate\", #{{ json: #{{ n: 1 }} }});\n",
        vendor.url
    );
    let child = crate::support::fed(
        &runbook(dir.path(), &vendor, &["repl", "--answers", "yes.toml"]),
        line.as_bytes(),
    );
    vendor.wait_at_gate();
    crate::support::signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    vendor.open_gate();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "  http::post on POST {}/gate: sent, and its answer never came: it may have applied",
            vendor.url
        )),
        "{stderr}"
    );
}
