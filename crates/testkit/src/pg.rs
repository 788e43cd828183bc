//! A real PostgreSQL for the team-mode tests, each test in a database of its own.
//!
//! Where the server comes from: `RUNBOOK_TEST_DATABASE_URL` (CI starts the machine's cluster
//! and exports it; the role needs CREATEDB), else a throwaway cluster this process starts in
//! a temp dir on a free port when PostgreSQL's binaries are installed (as the `postgres` user
//! when the tests run as root; it dies with the test process), else none: the test is
//! skipped with the reason printed. With `RUNBOOK_TEST_REQUIRE_DATABASE=1` (CI) a missing
//! server fails the test instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// One test's database: its URL, dropped (with its connections) when the value is.
pub struct Database {
    pub url: String,
    admin: String,
    name: String,
    /// Login roles made for it (`login`), dropped with it.
    roles: std::sync::Mutex<Vec<String>>,
}

impl Database {
    /// A fresh database, or `None` (reason printed) when no server can be had.
    pub fn fresh(test: &str) -> Option<Database> {
        let admin = match server() {
            Ok(url) => url.clone(),
            Err(why) => {
                if std::env::var("RUNBOOK_TEST_REQUIRE_DATABASE").is_ok_and(|v| v == "1") {
                    panic!(
                        "{test}: RUNBOOK_TEST_REQUIRE_DATABASE=1 but there is no PostgreSQL: {why}"
                    );
                }
                eprintln!("skipped {test}: no PostgreSQL ({why})");
                return None;
            }
        };
        let name = format!(
            "rb_{}_{}",
            std::process::id(),
            uuid_ish().to_ascii_lowercase()
        );
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {}", detail(&e)));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a test database (the role needs CREATEDB): {}",
                    detail(&e)
                )
            });
        Some(Database {
            url: with_database(&admin, &name),
            admin,
            name,
            roles: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A URL for `who`'s personal login role in this database, as a team would give each
    /// operator: the server authenticates it as itself (`session_user`), and it acts as the
    /// role that owns runbook's tables (`SET ROLE` by default). Needs CREATEROLE.
    pub fn login(&self, who: &str) -> String {
        let role = format!("{}_{who}", self.name);
        let mut c = postgres::Client::connect(&self.admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {}", detail(&e)));
        let owner: String = c
            .query_one("SELECT current_user::text", &[])
            .unwrap()
            .get(0);
        c.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{role}'; GRANT \"{owner}\" TO {role}; \
             ALTER ROLE {role} IN DATABASE {} SET role = '{owner}'",
            self.name
        ))
        .unwrap_or_else(|e| {
            panic!(
                "cannot make a login role (the test role needs CREATEROLE): {}",
                detail(&e)
            )
        });
        self.roles.lock().unwrap().push(role.clone());
        with_user(&self.url, &role, &role)
    }

    /// A URL for `who`'s login set up as docs/team.md gives operators theirs, once the
    /// tables exist: a member of a team role granted the rows' rights, not of the owner's,
    /// so the triggers that stamp who wrote a row hold for it. Needs CREATEROLE.
    pub fn operator(&self, who: &str) -> String {
        let team = format!("{}_team", self.name);
        let role = format!("{}_{who}", self.name);
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {}", detail(&e)));
        let mut roles = self.roles.lock().unwrap();
        if !roles.contains(&team) {
            c.batch_execute(&format!(
                "CREATE ROLE {team} NOLOGIN; \
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {team}; \
                 GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {team}; \
                 REVOKE INSERT, UPDATE, DELETE ON runbook_decisions FROM {team}; \
                 REVOKE UPDATE, DELETE ON runbook_settings FROM {team}"
            ))
            .unwrap_or_else(|e| panic!("cannot make the team role: {}", detail(&e)));
            roles.push(team.clone());
        }
        c.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{role}' IN ROLE {team}; \
             ALTER ROLE {role} IN DATABASE {} SET role = '{team}'",
            self.name
        ))
        .unwrap_or_else(|e| panic!("cannot make a login role: {}", detail(&e)));
        // Dropped before the team role it is a member of.
        roles.insert(0, role.clone());
        with_user(&self.url, &role, &role)
    }

    /// A client on this database (to edit rows behind runbook's back).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test database")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            // FORCE (13+) ends connections a killed runbook left; older servers drop without.
            let forced = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
            if forced.is_err() {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
            }
            for role in self.roles.lock().map(|r| r.clone()).unwrap_or_default() {
                let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
            }
        }
    }
}

fn detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {}", db.message()),
        None => e.to_string(),
    }
}

/// Waits until a session waits on a lock of `table` (a run's call held by another
/// session's lock): a condition, bounded at 60 s.
pub fn wait_for_a_waiter_on(client: &mut postgres::Client, table: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let sql = format!(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{table}'::regclass"
    );
    while client
        .query_one(sql.as_str(), &[])
        .expect("read pg_locks")
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never waited on the lock"
        );
        std::thread::yield_now();
    }
}

/// Switches off the triggers that keep the journal and audit tables append-only and stamp
/// who wrote each row, as the tables' owner can: a test that edits rows behind runbook's
/// back plays that owner (docs/team.md gives operators logins without the owner's role).
pub fn behind_the_triggers(client: &mut postgres::Client) {
    client
        .batch_execute(
            "ALTER TABLE runbook_journal DISABLE TRIGGER USER; \
             ALTER TABLE runbook_audit DISABLE TRIGGER USER",
        )
        .expect("switch off the tables' triggers (as their owner)");
}

/// Every journal row of the database `client` is on, in order (every run's).
pub fn journal_lines(client: &mut postgres::Client) -> Vec<String> {
    client
        .query("SELECT line FROM runbook_journal ORDER BY seq", &[])
        .expect("read the journal table")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `url` with its user and password replaced.
fn with_user(url: &str, user: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

fn uuid_ish() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server's admin URL, found or started once per test process.
fn server() -> Result<&'static String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("RUNBOOK_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(url),
            _ => throwaway(),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The directory of `initdb` and `postgres`, newest version first.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// Starts a cluster in a temp dir; it lives as long as this process. It gets SIGTERM when
/// the thread that started it ends, so that thread is one that never does.
fn throwaway() -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-postgres".into())
        .spawn(move || match start_cluster() {
            Ok((url, dir, child)) => {
                let _ = tx.send(Ok(url));
                let _keep = (dir, child);
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// Clusters of test processes that ended are left on disk (a static is never dropped):
/// remove those whose server is gone, once they are old enough not to be still starting.
fn sweep() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_ours = e.file_name().to_string_lossy().starts_with("runbook-pg-");
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(600));
        let running = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            // SAFETY: kill with signal 0 only checks that the process exists.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if is_ours && old && !running {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn start_cluster() -> Result<(String, tempfile::TempDir, Child), String> {
    let (dir, url, port) = init_cluster()?;
    let child = run_cluster(dir.path(), port, &url, &[])?;
    Ok((url, dir, child))
}

/// A new cluster's directory, its URL (database `postgres`) and the port it is to use.
fn init_cluster() -> Result<(tempfile::TempDir, String, u16), String> {
    sweep();
    let bin = binaries().ok_or("no PostgreSQL binaries in /usr/lib/postgresql")?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("runbook-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    if root {
        // initdb refuses to run as root: the cluster belongs to the postgres user.
        chown_to_postgres(dir.path())?;
    }
    // A password of its own: a URL can only ever reach this cluster.
    let password = uuid_ish();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, &password).map_err(|e| e.to_string())?;
    if root {
        chown_to_postgres(&pw)?;
    }
    let init = as_owner(root, &bin.join("initdb"))
        .args(["-D"])
        .arg(&data)
        .args(["-U", "runbook", "--auth=scram-sha-256", "--pwfile"])
        .arg(&pw)
        .args(["-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let port = free_port()?;
    let url = format!("postgres://runbook:{password}@127.0.0.1:{port}/postgres");
    Ok((dir, url, port))
}

/// Starts the server of the cluster in `dir` on `port`, and waits until it answers.
fn run_cluster(dir: &Path, port: u16, url: &str, settings: &[String]) -> Result<Child, String> {
    let bin = binaries().ok_or("no PostgreSQL binaries in /usr/lib/postgresql")?;
    let data = dir.join("data");
    let mut child = as_owner(is_root(), &bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("postgres: {e}"))?;
    // Ready when it accepts a connection and is this cluster (another process may have
    // taken the port between our probe and the server's bind); a server that exits or never
    // answers is an error, not a hang.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the throwaway cluster exited ({status}); port {port} may be taken"
            ));
        }
        if let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls) {
            let theirs: String = c
                .query_one("SHOW data_directory", &[])
                .map_err(|e| detail(&e))?
                .get(0);
            let ours = data.canonicalize().unwrap_or(data.clone());
            if Path::new(&theirs).canonicalize().ok() != Some(ours) {
                return Err(format!(
                    "port {port} answers for another cluster ({theirs})"
                ));
            }
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err("the throwaway cluster did not accept connections in 30 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(child)
}

/// A cluster of one test's own, which the test may stop and start again (a database
/// outage) without touching any other test's server.
pub struct Cluster {
    pub url: String,
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
    /// `-c` settings the server runs with (TLS).
    settings: Vec<String>,
}

impl Cluster {
    /// A new cluster, running; `None` (reason printed) when PostgreSQL is not installed,
    /// a failure under `RUNBOOK_TEST_REQUIRE_DATABASE=1`.
    pub fn start(test: &str) -> Option<Cluster> {
        Self::start_with(test, false).map(|(c, _)| c)
    }

    /// A cluster that speaks TLS with a certificate for `127.0.0.1` and `localhost` signed
    /// by a CA of its own; the CA's certificate file comes back with it.
    pub fn start_tls(test: &str) -> Option<(Cluster, PathBuf)> {
        Self::start_with(test, true).map(|(c, ca)| (c, ca.expect("a CA")))
    }

    fn start_with(test: &str, tls: bool) -> Option<(Cluster, Option<PathBuf>)> {
        // A free port is probed, then bound by the server: another test's cluster may take
        // it in between. Tried again on a new port, a few times, before it is a failure.
        let mut started = Self::start_once(tls);
        for _ in 0..2 {
            if started.is_ok() {
                break;
            }
            started = Self::start_once(tls);
        }
        match started {
            Ok(c) => Some(c),
            Err(why) => {
                if std::env::var("RUNBOOK_TEST_REQUIRE_DATABASE").is_ok_and(|v| v == "1") {
                    panic!("{test}: RUNBOOK_TEST_REQUIRE_DATABASE=1 but no cluster: {why}");
                }
                eprintln!("skipped {test}: no PostgreSQL cluster ({why})");
                None
            }
        }
    }

    fn start_once(tls: bool) -> Result<(Cluster, Option<PathBuf>), String> {
        init_cluster().and_then(|(dir, url, port)| {
            let (settings, ca) = if tls {
                let (settings, ca) = certificates(dir.path())?;
                (settings, Some(ca))
            } else {
                (Vec::new(), None)
            };
            let server = run_cluster(dir.path(), port, &url, &settings)?;
            Ok((
                Cluster {
                    url,
                    dir,
                    port,
                    server: Some(server),
                    settings,
                },
                ca,
            ))
        })
    }

    /// Stops the server (a fast shutdown: its sessions are ended) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // SAFETY: signalling the server process this value started.
            unsafe {
                libc::kill(server.id() as i32, libc::SIGINT);
            }
            let _ = server.wait();
        }
    }

    /// Starts the server again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        let server = run_cluster(self.dir.path(), self.port, &self.url, &self.settings)
            .unwrap_or_else(|e| panic!("cannot start the cluster again: {e}"));
        self.server = Some(server);
    }

    /// A URL for `who`'s own login role (see `Database::login`), on the `postgres` database.
    pub fn login(&self, who: &str) -> String {
        let role = format!("op_{who}");
        let mut c = self.client();
        c.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{role}'; GRANT runbook TO {role}; \
             ALTER ROLE {role} IN DATABASE postgres SET role = 'runbook'"
        ))
        .unwrap_or_else(|e| panic!("cannot make a login role: {}", detail(&e)));
        with_user(&self.url, &role, &role)
    }

    /// A client on it.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the cluster")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA and a server certificate it signs (for `127.0.0.1` and `localhost`), made with the
/// `openssl` command in `dir`: the server's `-c` settings and the CA certificate's path.
fn certificates(dir: &Path) -> Result<(Vec<String>, PathBuf), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=runbook test CA",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ])?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| e.to_string())?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| e.to_string())?;
    if is_root() {
        chown_to_postgres(dir)?;
    }
    let settings = vec![
        "ssl=on".to_string(),
        format!("ssl_cert_file={}", dir.join("server.crt").display()),
        format!("ssl_key_file={}", dir.join("server.key").display()),
    ];
    Ok((settings, dir.join("ca.crt")))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The command, run as the `postgres` user when we are root, dying with this process.
fn as_owner(root: bool, program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    if root {
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    c.args(["--pdeathsig=SIGTERM", "--"]).arg(program);
    c
}

fn chown_to_postgres(path: &Path) -> Result<(), String> {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cannot chown {} to postgres", path.display()))
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_database_replaces_the_one_in_the_url() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/runbook_ci", "rb_1"),
            "postgres://u:p@127.0.0.1:5432/rb_1"
        );
        assert_eq!(
            with_database("postgres://u@h/x?sslmode=disable", "rb_2"),
            "postgres://u@h/rb_2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "rb_3"),
            "postgres://u@h/rb_3"
        );
    }
}
