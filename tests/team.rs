//! Team mode against a real PostgreSQL: two "machines" (two processes with their own state
//! directories) share one database. Exactly one of two runs of a rotation goes ahead; a run
//! killed on one machine is resumed on the other; approvals cross machines; a lease left by
//! a machine that is gone expires; rows edited, deleted or swapped with SQL break
//! `audit verify`, and an export verifies offline as the table does.
//!
//! The server: `RUNBOOK_TEST_DATABASE_URL` (CI), else a throwaway cluster, else skipped with
//! the reason printed (a failure under CI: `RUNBOOK_TEST_REQUIRE_DATABASE=1`).

use crate::support::pg::Database;
use crate::support::{
    assert_everywhere, assert_finished, assert_lacks, assert_only_the_unedited_pack_verifies,
    assert_rotated, live_tokens, signed_pack, Exit, Output, Rig, Test, OLD_TOKEN,
};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const GATED: &str = r#"
runbook(#{ id: "gated", title: "A gated change", secret: "GATED_KEY" });
step("prepare", "Prepare", |ctx| { print("prepared"); });
step("gated", "The change", |ctx| { print("gated step ran"); })
    .approval(#{ by: "another operator", timeout: "TIMEOUT" });
"#;

/// A command on one machine: its own state directory, the shared database.
fn on(dir: &Path, machine: &str, db: &Database, args: &[&str]) -> Test {
    Test::in_dir(dir)
        .env("RUNBOOK_STATE_DIR", &dir.join(machine).to_string_lossy())
        .env("RUNBOOK_STATE_URL", &db.url)
        .args(args)
}

/// A temp dir holding gated.rhai, its gate timing out after `timeout`.
fn gated(timeout: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gated.rhai"),
        GATED.replace("TIMEOUT", timeout),
    )
    .unwrap();
    dir
}

/// Alice's (or `actor`'s) rehearsal of gated.rhai on `machine`.
fn gated_run(dir: &Path, machine: &str, db: &Database, actor: &str) -> Test {
    on(
        dir,
        machine,
        db,
        &["exec", "gated.rhai", "--sandbox", "--yes", "--actor", actor],
    )
}

/// Waits until the database holds `n` approval requests; returns their run ids, oldest first.
fn requests(db: &Database, n: usize) -> Vec<String> {
    let mut c = db.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<String> = c
            .query("SELECT run_id FROM runbook_approvals ORDER BY run_id", &[])
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();
        if ids.len() >= n {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{n} approval requests never came"
        );
        std::thread::yield_now();
    }
}

/// A command of the rig (its sandbox, the shipped runbooks) on the machine `name`: its
/// directory in the rig as the state directory, the shared database.
fn machine_run(
    rig: &Rig,
    db: &Database,
    name: &str,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Output {
    let dir = rig.path().join(name).to_string_lossy().into_owned();
    let mut env: Vec<(&str, &str)> =
        vec![("RUNBOOK_STATE_DIR", &dir), ("RUNBOOK_STATE_URL", &db.url)];
    env.extend_from_slice(extra);
    rig.runbook(args, &env)
}

/// Alice's rotation on laptop-a, killed inside propagate; the runs laptop-b then lists.
fn killed_on_laptop_a(rig: &Rig, db: &Database) -> Value {
    let crashed = machine_run(
        rig,
        db,
        "laptop-a",
        &["exec", "postmark", "--yes", "--actor", "alice"],
        &[("RUNBOOK_CRASH_AT", "inside:propagate")],
    );
    assert_eq!(crashed.code, -9, "{}", crashed.stderr);
    machine_run(rig, db, "laptop-b", &["runs", "--json"], &[]).json()
}

#[test]
fn two_machines_start_the_same_rotation_and_exactly_one_runs() {
    let Some(db) = Database::fresh("two_machines_start_the_same_rotation") else {
        return;
    };
    let dir = gated("120s");
    let exec = |machine: &str, actor: &str| gated_run(dir.path(), machine, &db, actor).spawn();
    // Both at once: one takes the lock and waits at the gate; the other is refused.
    let a = exec("laptop-a", "alice");
    let b = exec("laptop-b", "bob");
    let run_id = requests(&db, 1).remove(0);
    let mut children = vec![("alice", a), ("bob", b)];
    let mut c = db.client();
    let holder: String = c
        .query_one("SELECT holder FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    let holder: Value = serde_json::from_str(&holder).unwrap();
    assert_eq!(holder["run_id"], run_id.as_str());
    let winner = holder["actor"].as_str().unwrap().to_string();
    let loser_at = children.iter().position(|(a, _)| *a != winner).unwrap();
    let (_, loser) = children.remove(loser_at);
    let text = assert_finished(loser, 2, &[], &[]);
    assert!(
        text.contains(&format!(
            "this rotation is already running: run {run_id} by {winner} since "
        )) && text.contains(&format!("(pid {} on ", holder["pid"])),
        "the refusal names who holds it, from where and since when: {text}"
    );
    // Four eyes on the proven identity: another name typed from the same database login as
    // the run is refused; the run's own name from another login is refused too; carol, from
    // her own login on a third machine, approves.
    on(
        dir.path(),
        "laptop-b",
        &db,
        &["approve", &run_id, "--actor", "carol"],
    )
    .run()
    .exit(Exit::Usage)
    .stderr_has(
        "this decision comes from the same login: four eyes needs a second person's own login",
    );
    // Carol's login is set up as docs/team.md gives operators theirs (not the tables'
    // owner): her decision reaches runbook_decisions through the trigger, stamped.
    let carol = db.operator("carol");
    let as_carol = |args: &[&str]| {
        Test::in_dir(dir.path())
            .env(
                "RUNBOOK_STATE_DIR",
                &dir.path().join("laptop-c").to_string_lossy(),
            )
            .env("RUNBOOK_STATE_URL", &carol)
            .args(args)
            .run()
    };
    as_carol(&["approve", &run_id, "--actor", &winner])
        .exit(Exit::Usage)
        .stderr_has("the run's own actor cannot approve or deny it");
    as_carol(&["approve", &run_id, "--actor", "carol"])
        .exit(Exit::Ok)
        .stderr_has("(database login ")
        .stdout_has("approved step 'gated'");
    let (_, winner_child) = children.remove(0);
    assert_finished(
        winner_child,
        0,
        &["approved by carol", "gated step ran"],
        &[],
    );
    // The lock is gone with the run; the whole story is in the shared chain.
    let locks: i64 = c
        .query_one("SELECT count(*) FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
    let actions: Vec<String> = c
        .query("SELECT line FROM runbook_audit ORDER BY seq", &[])
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.get::<_, String>(0)).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|a| a.starts_with("approval."))
        .collect();
    assert_eq!(actions, ["approval.requested", "approval.approved"]);
    // The evidence pack is built on a machine that took no part, signed, and verified; one
    // byte changed fails it.
    let c3 = |args: &[&str]| on(dir.path(), "laptop-c", &db, args).run();
    c3(&["evidence", "keygen", "--out", "keys"]).exit(Exit::Ok);
    let text = signed_pack(dir.path(), &c3, &run_id);
    let pack: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pack["approvals"][0]["approver"], "carol");
    assert!(pack["approvals"][0]["approver_login"]
        .as_str()
        .is_some_and(|l| l.ends_with("_carol")));
    assert_eq!(pack["approvals"][0]["requested_by"], winner.as_str());
    assert!(pack["actors"][0]["login"]
        .as_str()
        .is_some_and(|l| !l.is_empty()));
    assert_eq!(pack["audit"]["chain"]["intact"], true);
    assert_eq!(pack["journal_problem"], Value::Null, "{pack}");
    // Every row stamped with the login that wrote it, the approval carol's own decision
    // for that request: the whole store verifies.
    c3(&["audit", "verify"]).exit(Exit::Ok);
    let decided: i64 = c
        .query_one(
            "SELECT count(*) FROM runbook_decisions WHERE run_id = $1 AND login LIKE '%\\_carol'",
            &[&run_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(decided, 1);
    assert_only_the_unedited_pack_verifies(dir.path(), &c3, &text, ("\"carol\"", "\"carot\""));
    // Signed again by whoever holds the key, with another approver's login in it: the
    // journal it carries says who decided. Before, the signature alone was checked there.
    let mut forged = pack.clone();
    forged["approvals"][0]["approver_login"] = Value::String("op_mallory".into());
    crate::evidence::verify_forged(dir.path(), &c3, &mut forged)
        .exit(Exit::StepFailed)
        .stderr_has("its `approvals` is not what its journal records (edited)");
    // Nothing of the shared state went to either machine's directory.
    for m in ["laptop-a", "laptop-b", "laptop-c"] {
        let m = dir.path().join(m);
        assert!(
            !m.join("runs").exists() && !m.join("audit.jsonl").exists(),
            "{}",
            m.display()
        );
    }
}

#[test]
fn a_gate_nobody_answers_is_recorded_as_a_timeout() {
    let Some(db) = Database::fresh("a_gate_nobody_answers") else {
        return;
    };
    let dir = gated("1s");
    let out = gated_run(dir.path(), "laptop-a", &db, "alice").run();
    out.exit(Exit::StepFailed)
        .stderr_has("no approval within 1s (recorded as timeout, not as denied)");
    let runs = on(dir.path(), "laptop-b", &db, &["runs", "--json"]).run();
    let run_id = runs.json()[0]["run_id"].as_str().unwrap().to_string();
    on(
        dir.path(),
        "laptop-b",
        &db,
        &["approve", &run_id, "--actor", "bob"],
    )
    .run()
    .exit(Exit::Usage)
    .stderr_has("already decided: timed out at ");
}

/// A run's request copied under another run id: `approve` of that id refuses it (it names
/// another run), and a decision row cannot be moved to another run, where it would keep its
/// approver's login and read as given there. Before, bob's approval of the copy, moved to
/// alice's waiting run, let its gated step run "approved by bob" (found by a cold review).
#[test]
fn an_approval_request_copied_under_another_run_is_not_decided() {
    let Some(db) = Database::fresh("an_approval_request_copied") else {
        return;
    };
    let dir = gated("60s");
    let mut run = gated_run(dir.path(), "laptop-a", &db, "alice").spawn();
    let run_id = requests(&db, 1).remove(0);
    let copy = "20261206T000000000Z-c0ffee";
    let mut c = db.client();
    c.execute(
        "INSERT INTO runbook_approvals (run_id, request) SELECT $1, request FROM runbook_approvals WHERE run_id = $2",
        &[&copy, &run_id],
    )
    .unwrap();
    on(
        dir.path(),
        "laptop-b",
        &db,
        &["approve", copy, "--actor", "bob"],
    )
    .run()
    .exit(Exit::Usage)
    .stderr_has(&format!(
        "the approval request filed under run {copy} is run {run_id}'s: nothing was decided"
    ));
    let decided: Option<String> = c
        .query_one(
            "SELECT decision FROM runbook_approvals WHERE run_id = $1",
            &[&copy],
        )
        .unwrap()
        .get(0);
    assert_eq!(decided, None);
    // A decision given on one run cannot be moved to another.
    c.execute(
        "UPDATE runbook_approvals SET decision = '{}' WHERE run_id = $1",
        &[&copy],
    )
    .unwrap();
    let moved = c
        .execute(
            "UPDATE runbook_approvals SET run_id = 'x' || run_id WHERE run_id = $1",
            &[&copy],
        )
        .unwrap_err();
    assert!(
        moved.to_string().contains("an approval stays with its run")
            || format!("{moved:?}").contains("an approval stays with its run"),
        "{moved:?}"
    );
    let _ = run.kill();
    let _ = run.wait();
}

/// A decision written by hand in SQL carries the login that wrote it, whatever its text
/// claims: the server stamps `session_user` on every request and decision, so the run's
/// own login cannot pass for another person's.
#[test]
fn a_decision_written_in_sql_is_the_login_that_wrote_it() {
    let Some(db) = Database::fresh("a_decision_written_in_sql") else {
        return;
    };
    let dir = gated("60s");
    let run = gated_run(dir.path(), "laptop-a", &db, "alice").spawn();
    let run_id = requests(&db, 1).remove(0);
    let mut c = db.client();
    let row = c
        .query_one(
            "SELECT request, request_login, session_user::text FROM runbook_approvals WHERE run_id = $1",
            &[&run_id],
        )
        .unwrap();
    let request: Value = serde_json::from_str(&row.get::<_, String>(0)).unwrap();
    let me: String = row.get(2);
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(me.as_str())
    );
    let digest = serde_json::from_value::<runbook_core::approval::Request>(request.clone())
        .unwrap()
        .digest();
    let forged = serde_json::json!({
        "nonce": request["nonce"], "verdict": "approved", "by": "carol",
        "at": "2026-12-04T00:00:00Z", "host": "laptop-c", "role": "carol_login",
        "request_digest": digest
    });
    c.execute(
        "UPDATE runbook_approvals SET decision = $2, decision_login = 'carol_login' WHERE run_id = $1",
        &[&run_id, &forged.to_string()],
    )
    .unwrap();
    let stamped: Option<String> = c
        .query_one(
            "SELECT decision_login FROM runbook_approvals WHERE run_id = $1",
            &[&run_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(stamped.as_deref(), Some(me.as_str()));
    let text = assert_finished(
        run,
        1,
        &[
            "is not accepted.",
            "this decision comes from the same login",
        ],
        &["gated step ran"],
    );
    assert!(!text.contains("✓ approved by carol"), "{text}");
}

/// A journal row damaged in the shared database (a hand edit): a rotation on another
/// machine is refused, naming the run; once someone has read it and abandoned it as it is,
/// rotations run again, the rows unchanged; changed again, it blocks again.
#[test]
fn a_damaged_journal_in_the_database_blocks_until_it_is_abandoned_as_it_is() {
    let Some(db) = Database::fresh("a_damaged_journal_in_the_database") else {
        return;
    };
    let rig = Rig::new();
    let run = |machine: &str, args: &[&str]| machine_run(&rig, &db, machine, args, &[]);
    let rotate = ["exec", "postmark", "--yes", "--actor", "alice"];
    rig.sandbox
        .add_fault("raptor:POST:/api/notifications/test-email=500:once");
    run("laptop-a", &[&rotate[..], &["--no-rollback"]].concat()).exit(Exit::StepFailed);
    let runs = run("laptop-a", &["runs", "--json"]).json();
    let stopped = runs[0]["run_id"].as_str().unwrap().to_string();
    let mut c = db.client();
    crate::support::pg::behind_the_triggers(&mut c);
    let seq: i64 = c
        .query_one(
            "SELECT seq FROM runbook_journal WHERE run_id = $1 ORDER BY seq OFFSET 3 LIMIT 1",
            &[&stopped],
        )
        .unwrap()
        .get(0);
    c.execute(
        "UPDATE runbook_journal SET line = '{not a record' WHERE seq = $1",
        &[&seq],
    )
    .unwrap();
    let blocked = run("laptop-b", &["exec", "postmark", "--yes", "--actor", "bob"]);
    blocked
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {stopped} (started "
        ))
        .stderr_has("is damaged at line 4: not a JSON record");
    let rows = |c: &mut postgres::Client| -> Vec<String> {
        c.query(
            "SELECT line FROM runbook_journal WHERE run_id = $1 ORDER BY seq",
            &[&stopped],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let before = rows(&mut c);
    run(
        "laptop-b",
        &[
            "abandon",
            &stopped,
            "--reason",
            "read by hand",
            "--actor",
            "bob",
        ],
    )
    .exit(Exit::Ok)
    .stdout_has("Its journal cannot be read (damaged at line 4: not a JSON record)");
    assert_eq!(rows(&mut c), before, "the rows are kept as they were");
    run("laptop-a", &["runs"])
        .exit(Exit::Ok)
        .stdout_has("damaged, abandoned");
    run(
        "laptop-a",
        &["exec", "postmark", "--yes", "--actor", "alice"],
    )
    .exit(Exit::Ok);
    c.execute(
        "UPDATE runbook_journal SET line = '{not a record either' WHERE seq = $1",
        &[&seq],
    )
    .unwrap();
    run("laptop-b", &["exec", "postmark", "--yes", "--actor", "bob"])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {stopped}"
        ));
}

/// A rotation stopped at verify in the shared database, after two that succeeded: a new
/// rotation on another machine finds it among them (the store answers every run's last line
/// in one query) and is refused before any write; once it is rolled back, the rotation runs.
#[test]
fn an_unfinished_run_in_the_database_stops_a_rotation_on_another_machine() {
    let Some(db) = Database::fresh("an_unfinished_run_in_the_database") else {
        return;
    };
    let rig = Rig::new();
    let run = |machine: &str, args: &[&str]| machine_run(&rig, &db, machine, args, &[]);
    let rotate = ["exec", "postmark", "--yes", "--actor", "alice"];
    run("laptop-a", &rotate).exit(Exit::Ok);
    run("laptop-a", &rotate).exit(Exit::Ok);
    rig.sandbox
        .add_fault("raptor:POST:/api/notifications/test-email=500:once");
    run("laptop-a", &[&rotate[..], &["--no-rollback"]].concat()).exit(Exit::StepFailed);
    let runs = run("laptop-b", &["runs", "--json"]).json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    let stopped: Vec<&str> = runs
        .iter()
        .filter(|r| r["unfinished"] == true)
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    let [stopped] = stopped[..] else {
        panic!("one unfinished run expected: {runs:?}");
    };
    let served = |s: &Value| s["requests"].as_array().map_or(0, Vec::len);
    let before = served(&rig.state());
    let blocked = run("laptop-b", &["exec", "postmark", "--yes", "--actor", "bob"]);
    assert_eq!(blocked.code, 2, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains(&format!(
            "an earlier run of this rotation is unfinished: {stopped} (started "
        )),
        "{}",
        blocked.stderr
    );
    assert_eq!(
        served(&rig.state()),
        before,
        "the refused run called a vendor"
    );
    run(
        "laptop-b",
        &["rollback", stopped, "--yes", "--actor", "bob"],
    )
    .exit(Exit::Ok);
    run("laptop-b", &["exec", "postmark", "--yes", "--actor", "bob"]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "after the rollback, on the other machine");
}

/// `audit::logged` asks the database for the run's own rows (not the whole table): true
/// for an action this run logged, false for one it did not, and another run's entries of
/// the same action do not count.
#[test]
fn a_run_asks_the_database_for_its_own_audit_entries() {
    let Some(db) = Database::fresh("a_run_asks_the_database_for_its_own") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repl = |stdin: &str| {
        on(dir.path(), "laptop-a", &db, &["repl", "--sandbox"])
            .stdin(stdin)
            .run()
    };
    repl("audit::log(\"other.did\", #{});\n").exit(Exit::Ok);
    let out = repl(
        "audit::log(\"mine.did\", #{});\naudit::logged(\"mine.did\")\naudit::logged(\"other.did\")\n",
    );
    out.exit(Exit::Ok);
    assert_eq!(out.stdout, "true\nfalse\n");
}

/// A journal over the size limit in the database is refused unread, as a file is: listed
/// as damaged, and every other run still shown. Before: it was read whole, whatever its
/// size (any login may append rows), and one inflated journal took `runs` and `due` down.
#[test]
fn a_journal_over_the_limit_in_the_database_is_listed_unread() {
    let Some(db) = Database::fresh("a_journal_over_the_limit_in_the_db") else {
        return;
    };
    let rig = Rig::new();
    killed_on_laptop_a(&rig, &db);
    let listed = machine_run(
        &rig,
        &db,
        "laptop-b",
        &["runs"],
        &[("RUNBOOK_MAX_JOURNAL_BYTES", "200")],
    );
    listed
        .exit(Exit::Ok)
        .stdout_has("damaged")
        .stderr_has("bytes; a journal may be at most 200 bytes");
    // `audit verify` reads the journals' stamps within the same limit, and one over it is
    // that journal's problem: the others are still checked (an edited one is found).
    let small = machine_run(&rig, &db, "laptop-b", &["repl"], &[]);
    small.exit(Exit::Ok);
    let listed = machine_run(&rig, &db, "laptop-b", &["runs", "--json"], &[]).json();
    assert_eq!(listed[0]["entry"], "repl", "{listed:#}");
    let small_id = listed[0]["run_id"].as_str().unwrap().to_string();
    let mut c = db.client();
    crate::support::pg::behind_the_triggers(&mut c);
    let edited = c
        .execute(
            "UPDATE runbook_journal SET line = replace(line, '\"failed_inputs\":0', '\"failed_inputs\":1') \
             WHERE run_id = $1 AND line LIKE '%repl_ended%'",
            &[&small_id],
        )
        .unwrap();
    assert_eq!(edited, 1);
    let verified = machine_run(
        &rig,
        &db,
        "laptop-b",
        &["audit", "verify"],
        &[("RUNBOOK_MAX_JOURNAL_BYTES", "4000")],
    );
    assert_ne!(verified.code, 0, "{}", verified.stdout);
    let said = format!("{}{}", verified.stdout, verified.stderr);
    assert!(
        said.contains("a journal may be at most 4000 bytes"),
        "{said}"
    );
    assert!(
        said.contains(&format!("BROKEN: the journal of run {small_id}")),
        "{said}"
    );
}

#[test]
fn a_run_killed_on_one_machine_is_resumed_on_another() {
    let Some(db) = Database::fresh("a_run_killed_on_one_machine") else {
        return;
    };
    let rig = Rig::new();
    let run = |machine: &str, args: &[&str]| machine_run(&rig, &db, machine, args, &[]);
    // The other machine sees the dead run, and a new rotation there is refused.
    let listed = killed_on_laptop_a(&rig, &db);
    assert_eq!(listed[0]["status"], "interrupted", "{listed}");
    let run_id = listed[0]["run_id"].as_str().unwrap().to_string();
    let blocked = run("laptop-b", &["exec", "postmark", "--yes", "--actor", "bob"]);
    assert_eq!(blocked.code, 2, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("this rotation is already running")
            && blocked.stderr.contains(&format!("runbook resume {run_id}")),
        "{}",
        blocked.stderr
    );
    // Bob resumes it from his machine: the token comes back through recover() (it is in
    // Infisical by now), never from the database.
    run("laptop-b", &["resume", &run_id, "--yes", "--actor", "bob"]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "resumed on another machine");
    // "bob" is a name anyone can type: the views name the login the server proved too.
    // Before: only the typed name, in files and team mode alike.
    let login: String = db
        .client()
        .query_one("SELECT session_user::text", &[])
        .unwrap()
        .get(0);
    let shown = run("laptop-b", &["runs", &run_id, "--json"]);
    run("laptop-b", &["runs", &run_id])
        .exit(Exit::Ok)
        .stdout_has(&format!("resume by bob (login {login})"));
    assert_eq!(shown.json()["run"]["attempts"][0]["login"], login.as_str());
    assert!(!live_tokens(&rig.state()).contains(&OLD_TOKEN.to_string()));
    // No secret reached the shared database.
    let mut c = db.client();
    let mut all = String::new();
    for table in ["runbook_journal", "runbook_audit"] {
        for r in c.query(&format!("SELECT line FROM {table}"), &[]).unwrap() {
            all.push_str(&r.get::<_, String>(0));
        }
    }
    for secret in rig.secrets() {
        assert!(!all.contains(&secret), "a secret is in the database");
    }
    // The database holds the same typed, versioned events a journal file does.
    let rows = c
        .query(
            "SELECT line FROM runbook_journal WHERE run_id = $1 ORDER BY seq",
            &[&run_id],
        )
        .unwrap();
    let events: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["v"] == 1 && e["run_id"] == run_id));
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let expected = "run_started step_started write write_outcome run_resumed";
    let missing: Vec<&str> = expected.split(' ').filter(|t| !types.contains(t)).collect();
    assert!(missing.is_empty(), "{missing:?} missing from {types:?}");
    assert_eq!(types.last(), Some(&"run_finished"), "{types:?}");
    run("laptop-a", &["audit", "verify"]).exit(Exit::Ok);
}

/// Any operator's login could delete the fingerprint key, and the next command made a new
/// one without a word: every fingerprint journalled with the old key then mismatched, and
/// the half-done rotation could be neither resumed nor rolled back, even with the right
/// values typed back (team review). A key missing beside journalled runs is an error that
/// says to restore it; none is made.
#[test]
fn a_deleted_fingerprint_key_is_said_not_made_again() {
    let Some(db) = Database::fresh("a_deleted_fingerprint_key") else {
        return;
    };
    let rig = Rig::new();
    let listed = killed_on_laptop_a(&rig, &db);
    let run_id = listed[0]["run_id"].as_str().unwrap().to_string();
    let mut c = db.client();
    c.execute(
        "DELETE FROM runbook_settings WHERE name = 'fingerprint_key'",
        &[],
    )
    .unwrap();
    let out = machine_run(&rig, &db, "laptop-b", &["resume", &run_id, "--yes"], &[]);
    out.exit(Exit::Usage)
        .stderr_has("its fingerprint key is missing, though runs are journalled there")
        .stderr_has("restore runbook_settings from a backup");
    let keys: i64 = c
        .query_one(
            "SELECT count(*) FROM runbook_settings WHERE name = 'fingerprint_key'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(keys, 0, "no key was made in its place");
}

#[test]
fn a_run_killed_on_one_machine_is_rolled_back_on_another() {
    let Some(db) = Database::fresh("a_run_killed_then_rolled_back") else {
        return;
    };
    let rig = Rig::new();
    let run = |machine: &str, args: &[&str]| machine_run(&rig, &db, machine, args, &[]);
    let run_id = killed_on_laptop_a(&rig, &db)[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let undone = run(
        "laptop-b",
        &["rollback", &run_id, "--yes", "--json", "--actor", "bob"],
    );
    undone.exit(Exit::Ok);
    assert_eq!(undone.report()["status"], "rolled_back");
    // Infisical and every consumer hold the old token again.
    assert_everywhere(&rig.state(), OLD_TOKEN);
    // Alice's machine sees what Bob did to her run.
    let listed = run("laptop-a", &["runs", "--json"]).json();
    let attempts = listed[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["actor"], "bob", "{listed}");
    assert_eq!(
        attempts.last().unwrap()["status"],
        "rolled back",
        "{listed}"
    );
}

#[test]
fn a_lease_left_by_a_machine_that_is_gone_expires_and_a_live_one_holds() {
    let Some(db) = Database::fresh("a_lease_left_by_a_machine") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("quick.rhai"),
        r#"
runbook(#{ id: "quick", title: "Quick", secret: "QUICK_KEY" });
step("one", "One", |ctx| {
    print("step one ran");
    // Quotes, backslashes and non-ASCII go into the table byte for byte.
    audit::log("quick.noted", #{ note: "O'Brien's \\share\\ 'quoted' é" });
});
"#,
    )
    .unwrap();
    // Create the schema, then plant the lease of a run on another machine.
    on(dir.path(), "laptop-a", &db, &["runs"])
        .run()
        .exit(Exit::Ok);
    let mut c = db.client();
    // A rehearsal's lock (`.rehearsal`): the run below is one.
    let key = "QUICK_KEY-4f53cda18c2b.rehearsal";
    let holder = serde_json::json!({
        "run_id": "20261203T010203000Z-abcdef", "actor": "dave", "pid": 4242, "lease_id": "lease-of-dave",
        "host": "laptop-far-away", "since": "2026-12-03T01:02:03Z"
    })
    .to_string();
    let plant = |c: &mut postgres::Client, interval: &str| {
        c.execute("DELETE FROM runbook_locks", &[]).unwrap();
        c.execute(
            &format!("INSERT INTO runbook_locks VALUES ($1, '20261203T010203000Z-abcdef', 'lease-of-dave', $2, now() + interval '{interval}')"),
            &[&key, &holder],
        )
        .unwrap();
    };
    let exec = |extra: &[&str]| {
        let mut args = vec![
            "exec",
            "quick.rhai",
            "--sandbox",
            "--yes",
            "--actor",
            "erin",
        ];
        args.extend_from_slice(extra);
        on(dir.path(), "laptop-a", &db, &args).run()
    };
    plant(&mut c, "10 minutes");
    let live = exec(&[]);
    live.exit(Exit::Usage)
        .stderr_has(
            "already running: run 20261203T010203000Z-abcdef by dave since 2026-12-03T01:02:03Z",
        )
        .stderr_has("(pid 4242 on laptop-far-away)");
    plant(&mut c, "-1 minute");
    let expired = exec(&[]);
    expired
        .exit(Exit::Usage)
        .stderr_has("its lease ran out at ")
        .stderr_has("runbook resume 20261203T010203000Z-abcdef");
    // Taking it over is deliberate, and journalled.
    let broke = exec(&["--break-lock"]);
    broke
        .exit(Exit::Ok)
        // Said on the screen, not only journalled (team review).
        .stderr_has("took this rotation's lock from run 20261203T010203000Z-abcdef (pid 4242 on laptop-far-away, dave): its lease ran out at ");
    assert!(format!("{}{}", broke.stdout, broke.stderr).contains("step one ran"));
    let journal = crate::support::pg::journal_lines(&mut c);
    assert!(
        journal
            .iter()
            .any(|l| l.contains("\"type\":\"lock_broken\"") && l.contains("laptop-far-away")),
        "{journal:?}"
    );
    let noted: String = c
        .query_one(
            "SELECT line FROM runbook_audit WHERE line LIKE '%quick.noted%'",
            &[],
        )
        .unwrap()
        .get(0);
    let noted: Value = serde_json::from_str(&noted).unwrap();
    assert_eq!(noted["context"]["note"], "O'Brien's \\share\\ 'quoted' é");
    on(dir.path(), "laptop-b", &db, &["audit", "verify"])
        .run()
        .exit(Exit::Ok);
}

#[test]
fn rows_edited_deleted_or_swapped_in_sql_break_the_chain_and_an_export_verifies_offline() {
    let Some(db) = Database::fresh("rows_edited_deleted_or_swapped") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = |args: &[&str]| on(dir.path(), "laptop-a", &db, args).shipped_runbooks();
    t(&["exec", "postmark", "--sandbox", "--yes"])
        .run()
        .exit(Exit::Ok);
    let ok = t(&["audit", "verify"]).run();
    ok.exit(Exit::Ok).stdout_has("OK: ");
    let head = ok.stdout.trim().rsplit(' ').next().unwrap().to_string();
    // An export verifies offline, to the same head, with no database at all.
    t(&["audit", "export", "-o", "audit.jsonl"])
        .run()
        .exit(Exit::Ok);
    let offline = Test::in_dir(dir.path())
        .env("RUNBOOK_STATE_URL", "postgres://nobody@127.0.0.1:1/none")
        .args(&["audit", "verify", "--file", "audit.jsonl"])
        .run();
    offline.exit(Exit::Ok).stdout_has(&format!("head {head}"));
    // --head is checked against an export too: a head the export lacks fails it.
    Test::in_dir(dir.path())
        .args(&["audit", "verify", "--file", "audit.jsonl", "--head", &head])
        .run()
        .exit(Exit::Ok)
        .stdout_has(", 0 appended since");
    let elsewhere = "ab".repeat(32);
    Test::in_dir(dir.path())
        .args(&[
            "audit",
            "verify",
            "--file",
            "audit.jsonl",
            "--head",
            &elsewhere,
        ])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("does not contain the recorded head");
    let exported = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    std::fs::write(
        dir.path().join("flipped.jsonl"),
        exported.replacen("\"step\":\"", "\"step\":\"x", 1),
    )
    .unwrap();
    Test::in_dir(dir.path())
        .args(&["audit", "verify", "--file", "flipped.jsonl"])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("its content does not match its hash (edited)");

    let mut c = db.client();
    crate::support::pg::behind_the_triggers(&mut c);
    let line = |c: &mut postgres::Client, seq: i64| -> String {
        c.query_one("SELECT line FROM runbook_audit WHERE seq = $1", &[&seq])
            .unwrap()
            .get(0)
    };
    let set = |c: &mut postgres::Client, seq: i64, text: &str| {
        c.execute(
            "UPDATE runbook_audit SET line = $2 WHERE seq = $1",
            &[&seq, &text],
        )
        .unwrap();
    };
    let (l3, l4, l5) = (line(&mut c, 3), line(&mut c, 4), line(&mut c, 5));
    let broken = |want: &str| {
        let out = t(&["audit", "verify"]).run();
        out.exit(Exit::StepFailed).stderr_has(want);
    };
    set(
        &mut c,
        3,
        &l3.replacen("\"actor\":\"", "\"actor\":\"mallory-", 1),
    );
    broken("entry 3: its content does not match its hash (edited)");
    set(&mut c, 3, &l3);
    t(&["audit", "verify"]).run().exit(Exit::Ok);
    c.execute("DELETE FROM runbook_audit WHERE seq = 4", &[])
        .unwrap();
    broken("entry 4: it does not follow the entry before it");
    c.execute("INSERT INTO runbook_audit VALUES (4, $1)", &[&l4])
        .unwrap();
    set(&mut c, 4, &l5);
    set(&mut c, 5, &l4);
    broken("entry 4: it does not follow the entry before it");
    set(&mut c, 4, &l4);
    set(&mut c, 5, &l5);
    // Cut off the end: the chain that is left verifies, the head kept elsewhere does not.
    c.execute(
        "DELETE FROM runbook_audit WHERE seq = (SELECT max(seq) FROM runbook_audit)",
        &[],
    )
    .unwrap();
    t(&["audit", "verify", "--head", &head])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("does not contain the recorded head");
}

/// `line`'s fields with `prev_hash` set to `prev` and `hash` over the rest: a row that
/// chains as runbook writes them (any login can compute it).
fn chained_after(fields: &Value, prev: &str) -> String {
    let mut fields = fields.clone();
    let map = fields.as_object_mut().unwrap();
    map.remove("hash");
    map.insert("prev_hash".into(), prev.into());
    let hash = runbook_core::audit::entry_hash(&fields);
    fields
        .as_object_mut()
        .unwrap()
        .insert("hash".into(), hash.into());
    fields.to_string()
}

/// Alice's login (acting as the tables' owner, as `Database::login` makes it) with a state
/// dir of her own under `dir` and the shipped runbooks: her URL, and her commands. Her
/// rotation has been rehearsed, and the store verifies, its rows stamped with her login.
fn alice_rotated<'a>(db: &Database, dir: &'a Path) -> (String, impl Fn(&[&str]) -> Output + 'a) {
    let alice = db.login("alice");
    let url = alice.clone();
    let as_alice = move |args: &[&str]| {
        Test::in_dir(dir)
            .env("RUNBOOK_STATE_DIR", &dir.join("a").to_string_lossy())
            .env("RUNBOOK_STATE_URL", &url)
            .args(args)
            .shipped_runbooks()
            .run()
    };
    as_alice(&["exec", "postmark", "--sandbox", "--yes", "--actor", "alice"]).exit(Exit::Ok);
    as_alice(&["audit", "verify"]).exit(Exit::Ok);
    (alice, as_alice)
}

/// An operator's login appends rows that chain, in another login's name: a `run_finished`
/// after a colleague's run, and an audit entry naming that colleague's login. The chain
/// holds; the login the server stamped on each row does not match the one it names, so
/// `audit verify` and the evidence pack break, naming both logins; and the login can
/// neither change nor remove a row.
#[test]
fn rows_written_in_another_logins_name_break_both_verifies() {
    let Some(db) = Database::fresh("rows_written_in_another_logins_name") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, as_alice) = alice_rotated(&db, dir.path());
    let mut c = db.client();
    let run_id: String = c
        .query_one("SELECT min(run_id) FROM runbook_journal", &[])
        .unwrap()
        .get(0);
    let alice_login: String = c
        .query_one("SELECT DISTINCT login FROM runbook_journal", &[])
        .unwrap()
        .get(0);
    as_alice(&["evidence", "keygen", "--out", "keys"]).exit(Exit::Ok);
    as_alice(&[
        "evidence",
        &run_id,
        "--sign",
        "keys/evidence.key",
        "-o",
        "honest.json",
    ])
    .exit(Exit::Ok);
    as_alice(&[
        "evidence",
        "verify",
        "honest.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .exit(Exit::Ok);

    let mallory = db.operator("mallory");
    let mut m = postgres::Client::connect(&mallory, postgres::NoTls).unwrap();
    let mallory_login: String = m
        .query_one("SELECT session_user::text", &[])
        .unwrap()
        .get(0);
    // Neither changed nor removed, by an operator's login (which may update and delete
    // rows of runbook's other tables: locks, approvals).
    for sql in [
        "UPDATE runbook_journal SET line = line WHERE seq = 1",
        "DELETE FROM runbook_audit WHERE seq = 1",
        "DELETE FROM runbook_journal",
    ] {
        let refused = m.batch_execute(sql).unwrap_err();
        let text = refused.as_db_error().map(|e| e.message().to_string());
        assert!(
            text.as_deref()
                .is_some_and(|t| t.contains("is only appended to")),
            "{sql}: {refused:?}"
        );
    }
    // A run_finished saying otherwise, after alice's last line, chained, the login column
    // given as hers.
    let last: String = m
        .query_one(
            "SELECT line FROM runbook_journal WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
            &[&run_id],
        )
        .unwrap()
        .get(0);
    let last: Value = serde_json::from_str(&last).unwrap();
    let finished = serde_json::json!({
        "v": 1, "run_id": run_id, "time": "2026-12-06T21:00:00Z",
        "type": "run_finished", "status": "failed"
    });
    let forged = chained_after(&finished, last["hash"].as_str().unwrap());
    m.execute(
        "INSERT INTO runbook_journal (run_id, line, login) VALUES ($1, $2, $3)",
        &[&run_id, &forged, &alice_login],
    )
    .unwrap();
    let stamped: String = c
        .query_one(
            "SELECT login FROM runbook_journal ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stamped, mallory_login);
    let lines = c
        .query_one(
            "SELECT count(*) FROM runbook_journal WHERE run_id = $1",
            &[&run_id],
        )
        .unwrap()
        .get::<_, i64>(0);
    let broken = as_alice(&["audit", "verify"]);
    broken.exit(Exit::StepFailed).stderr_has(&format!(
        "BROKEN: the journal of run {run_id}: journal line {lines} was written by the login \"{mallory_login}\", but the process writing there is \"{alice_login}\"'s (its run_started on line 1)"
    ));
    as_alice(&[
        "evidence",
        &run_id,
        "--sign",
        "keys/evidence.key",
        "-o",
        "forged.json",
    ])
    // Written, but not as a success (team review: exit 0, nothing said).
    .exit(Exit::StepFailed)
    .stderr_has(&format!("warning: the evidence of run {run_id} records a problem: the run's journal did not hold when it was made"));
    let pack: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("forged.json")).unwrap())
            .unwrap();
    assert_eq!(pack["status"], Value::Null, "{pack}");
    assert!(
        pack["journal_problem"]
            .as_str()
            .is_some_and(|p| p.contains(&format!("by the login \"{mallory_login}\""))),
        "{pack}"
    );
    as_alice(&[
        "evidence",
        "verify",
        "forged.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .exit(Exit::StepFailed)
    .stderr_has("the run's journal did not hold when it was made");

    // An audit entry that names alice's login, chained after the last one.
    let (seq, tail): (i64, String) = {
        let r = m
            .query_one(
                "SELECT seq, line FROM runbook_audit ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let tail: Value = serde_json::from_str(&tail).unwrap();
    let mut entry = tail.clone();
    entry["action"] = "run.completed".into();
    entry["login"] = alice_login.clone().into();
    let forged = chained_after(&entry, tail["hash"].as_str().unwrap());
    m.execute(
        "INSERT INTO runbook_audit (seq, line) VALUES ($1, $2)",
        &[&(seq + 1), &forged],
    )
    .unwrap();
    as_alice(&["audit", "verify"])
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
        "audit entry {} was written by the login \"{mallory_login}\", but names \"{alice_login}\"",
        seq + 1
    ));
}

/// A run's own login records an approval it was never given: the row is its own, but the
/// database holds no decision from the login it credits, so `audit verify` breaks.
#[test]
fn an_approval_the_database_never_recorded_breaks_audit_verify() {
    let Some(db) = Database::fresh("an_approval_the_database_never_recorded") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (alice, as_alice) = alice_rotated(&db, dir.path());
    let carol = db.operator("carol");
    let mut c = postgres::Client::connect(&carol, postgres::NoTls).unwrap();
    let carol_login: String = c
        .query_one("SELECT session_user::text", &[])
        .unwrap()
        .get(0);
    // Carol's login cannot put a decision in the table itself: only the approvals table's
    // trigger does.
    assert!(c
        .execute(
            "INSERT INTO runbook_decisions (run_id, decision) VALUES ('r', '{}')",
            &[]
        )
        .is_err());
    let mut a = postgres::Client::connect(&alice, postgres::NoTls).unwrap();
    let (run_id, last): (String, String) = {
        let r = a
            .query_one(
                "SELECT run_id, line FROM runbook_journal ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let last: Value = serde_json::from_str(&last).unwrap();
    let requested = serde_json::json!({
        "v": 1, "run_id": run_id, "time": "2026-12-06T21:00:00Z", "type": "approval",
        "step": "revoke", "status": "requested", "nonce": "0123abcd"
    });
    let requested = chained_after(&requested, last["hash"].as_str().unwrap());
    let after: Value = serde_json::from_str(&requested).unwrap();
    let approval = serde_json::json!({
        "v": 1, "run_id": run_id, "time": "2026-12-06T21:00:01Z", "type": "approval",
        "step": "revoke", "status": "approved", "approver": "carol",
        "approver_role": carol_login, "nonce": "0123abcd"
    });
    for line in [
        requested.clone(),
        chained_after(&approval, after["hash"].as_str().unwrap()),
    ] {
        a.execute(
            "INSERT INTO runbook_journal (run_id, line) VALUES ($1, $2)",
            &[&run_id, &line],
        )
        .unwrap();
    }
    as_alice(&["audit", "verify"])
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
            "records step 'revoke' approved by the login \"{carol_login}\", but the database holds no such decision from that login for that request"
        ));
}

/// An audit append whose COMMIT landed but whose answer was lost (a proxy reset, a
/// failover): the run keeps the entry and tries it again before its next write; the retry
/// finds it in the chain and does not append it twice. Before, the entry was there twice.
#[test]
fn an_audit_entry_whose_answer_was_lost_is_in_the_chain_once() {
    let Some(db) = Database::fresh("an_audit_entry_whose_answer_was_lost") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = |args: &[&str], hooks: &[(&str, &str)]| {
        let mut test = on(dir.path(), "laptop-a", &db, args).shipped_runbooks();
        for (k, v) in hooks {
            test = test.env(k, v);
        }
        test.run()
    };
    let actions = |run_id: &str| -> Vec<String> {
        let mut c = db.client();
        c.query("SELECT line FROM runbook_audit ORDER BY seq", &[])
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.get::<_, String>(0)).unwrap())
            .filter(|e| e["run_id"] == run_id)
            .map(|e| format!("{} {}", e["step"], e["action"]))
            .collect()
    };
    let rotate = ["exec", "postmark", "--sandbox", "--yes"];
    let plain = t(&rotate, &[]);
    plain.exit(Exit::Ok);
    let lost = t(&rotate, &[("RUNBOOK_LOSE_AUDIT_ANSWER", "3")]);
    lost.exit(Exit::Ok)
        .stderr_has("the answer was lost (RUNBOOK_LOSE_AUDIT_ANSWER, a test hook)");
    // The first try after the lost answer finds the server still gone (cold review: it
    // forgot the lost append, and the next try appended it a second time).
    let gone = t(
        &rotate,
        &[
            ("RUNBOOK_LOSE_AUDIT_ANSWER", "3"),
            ("RUNBOOK_AUDIT_UNREACHABLE", "4"),
        ],
    );
    gone.exit(Exit::Ok)
        .stderr_has("no answer (RUNBOOK_AUDIT_UNREACHABLE, a test hook)");
    let runs: Vec<String> = t(&["runs", "--json"], &[])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    // Newest first: the runs that lost an answer, then the plain one.
    assert_eq!(actions(&runs[1]), actions(&runs[2]));
    assert_eq!(actions(&runs[0]), actions(&runs[2]));
    let head = lost
        .stdout
        .split("Audit head: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    t(&["audit", "verify", "--head", &head], &[]).exit(Exit::Ok);
}

#[test]
fn an_unreachable_or_newer_database_is_an_error_never_a_fall_back_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = Test::in_dir(dir.path())
        .env(
            "RUNBOOK_STATE_URL",
            "postgres://ops:hunter2@127.0.0.1:1/runbook",
        )
        .args(&["runs"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("the state database postgres://ops@127.0.0.1:1/runbook: cannot connect")
        .stderr_has("never falls back to local files");
    out.assert_absent("hunter2");
    assert!(!dir.path().join("state/runs").exists());
    let Some(db) = Database::fresh("a_newer_database") else {
        return;
    };
    on(dir.path(), "laptop-a", &db, &["runs"])
        .run()
        .exit(Exit::Ok);
    // That machine now remembers it shares its state: without the URL it refuses, rather
    // than take local locks nobody else sees.
    Test::in_dir(dir.path())
        .env(
            "RUNBOOK_STATE_DIR",
            &dir.path().join("laptop-a").to_string_lossy(),
        )
        .args(&["runs"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("this machine's runbook state is shared in postgres://")
        .stderr_has("shared-state");
    let operator = db.operator("alice");
    db.client()
        .execute("INSERT INTO runbook_schema VALUES (99)", &[])
        .unwrap();
    on(dir.path(), "laptop-a", &db, &["runs"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("has schema version 99, newer than this runbook knows (4)");
    // So it is for an operator's login, which may not create tables: before, PostgreSQL's
    // "permission denied for schema public" and advice to check that it runs (team review).
    let out = on(dir.path(), "laptop-b", &db, &["runs"])
        .env("RUNBOOK_STATE_URL", &operator)
        .run();
    out.exit(Exit::Usage)
        .stderr_has("has schema version 99, newer than this runbook knows (4)");
    assert_lacks("stderr", &out.stderr, "permission denied");
}

/// Before: a machine that could not write its `shared-state` marker said nothing, and a
/// later command there without the URL took local locks nobody else sees. Now it says so.
#[test]
fn a_shared_state_marker_that_cannot_be_written_is_said() {
    let Some(db) = Database::fresh("a_shared_state_marker") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The state directory's place taken by a file: the marker cannot be written there.
    std::fs::write(dir.path().join("laptop-a"), "").unwrap();
    on(dir.path(), "laptop-a", &db, &["runs"])
        .run()
        .exit(Exit::Ok)
        .stderr_has("warning: cannot remember that this machine's state is shared (")
        .stderr_has("laptop-a/shared-state: ")
        .stderr_has("would keep its state in local files instead of refusing");
}

/// Before: Ctrl-C during a call the state database did not answer (here a table locked by
/// another session; a database that hung waits the same) was not taken until the call gave
/// up: the server's 15 s lock timeout here, a minute for a database that hung. Now the call
/// is cancelled 3 s after Ctrl-C, and the run stops: the database answering, its stop is
/// recorded and its lock freed.
#[test]
fn ctrl_c_during_a_call_the_database_does_not_answer_stops_the_run() {
    let Some(db) = Database::fresh("ctrl_c_during_a_call") else {
        return;
    };
    let dir = gated("120s");
    let mut child = gated_run(dir.path(), "laptop-a", &db, "alice").spawn();
    requests(&db, 1);
    let mut locker = db.client();
    locker
        .batch_execute("BEGIN; LOCK TABLE runbook_approvals IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    // The run's next look at its approval waits on that lock.
    let mut watch = db.client();
    crate::support::pg::wait_for_a_waiter_on(&mut watch, "runbook_approvals");
    crate::support::signal(&child, libc::SIGINT);
    // Taken well before the server's own lock timeout (15 s, which ended the wait before):
    // a bound on a hang, not a measure of speed.
    let taken = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < taken,
            "Ctrl-C was not taken before the server's lock timeout"
        );
        std::thread::yield_now();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("Interrupted (Ctrl-C) waiting for the approval of step 'gated'."),
        "{stderr}"
    );
    // Not the read that failed (the server's lock timeout, before), nor "still waiting".
    assert!(!stderr.contains("cannot read the approval"), "{stderr}");
    assert!(!stderr.contains("lock timeout"), "{stderr}");
    assert!(!stderr.contains("could not release"), "{stderr}");
    locker.batch_execute("ROLLBACK").unwrap();
    let locks: i64 = watch
        .query_one("SELECT count(*) FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "the run's lock was left held:\n{stderr}");
    let journal = crate::support::pg::journal_lines(&mut watch);
    let last: Value = serde_json::from_str(journal.last().unwrap()).unwrap();
    assert_eq!(last["type"], "run_finished", "{journal:?}");
    assert_eq!(last["status"], "interrupted", "{journal:?}");
}

/// gated-write.rhai in the rig's folder: a write to raxx-api-prod, then a gated step (two
/// minutes to decide), so that an unfinished run is one that changed something. Its path.
fn gated_write(rig: &Rig) -> std::path::PathBuf {
    rig.file(
        "gated-write.rhai",
        r#"runbook(#{ id: "gated-write", title: "A gated change after a write", secret: "GATED_KEY" });
step("prepare", "Prepare", |ctx| { heroku::set_config("raxx-api-prod", #{ GATED_MARK: "on" }); })
    .undo(|ctx| { heroku::set_config("raxx-api-prod", #{ GATED_MARK: () }); });
step("gated", "The change", |ctx| { print("gated step ran"); })
    .approval(#{ by: "another operator", timeout: "120s" });
"#,
    );
    rig.path().join("gated-write.rhai")
}

/// Alice's run wrote, then waited for an approval, alive; `exec --break-lock` from another
/// machine said it had "died without recording an end" and offered resume, rollback or
/// abandon (team review). It says the run is still running, and who holds its lock.
#[test]
fn break_lock_beside_a_live_run_says_it_runs_not_that_it_died() {
    let Some(db) = Database::fresh("break_lock_beside_a_live_run") else {
        return;
    };
    let rig = Rig::new();
    let path = gated_write(&rig);
    let path = path.to_str().unwrap();
    let a_dir = rig.path().join("laptop-a").to_string_lossy().into_owned();
    let mut a = rig
        .test(
            &["exec", path, "--yes", "--actor", "alice"],
            &[
                ("RUNBOOK_STATE_DIR", &a_dir),
                ("RUNBOOK_STATE_URL", &db.url),
            ],
        )
        .spawn();
    let first = requests(&db, 1).remove(0);
    let b = machine_run(
        &rig,
        &db,
        "laptop-b",
        &["exec", path, "--yes", "--actor", "bob", "--break-lock"],
        &[],
    );
    let _ = a.kill();
    let _ = a.wait();
    b.exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run of this rotation is still running: {first} (started "
        ))
        .stderr_has("holds its lock)")
        .stderr_has("breaking its lock would only stop it");
    assert_lacks("stderr", &b.stderr, "died without recording an end");
}

/// Alice started a gated run and it died waiting; bob resumed it, which asked again in
/// bob's name, and alice approved it: four eyes compared her only with the asker (team
/// review). Whoever ran the run cannot decide on its steps; a third person can.
#[test]
fn the_operator_who_started_a_run_cannot_approve_its_resumed_request() {
    let Some(db) = Database::fresh("who_started_cannot_approve") else {
        return;
    };
    let rig = Rig::new();
    let path = gated_write(&rig);
    let path = path.to_str().unwrap();
    let on_machine = |machine: &str, login: &str, args: &[&str]| {
        let dir = rig.path().join(machine).to_string_lossy().into_owned();
        rig.test(
            args,
            &[("RUNBOOK_STATE_DIR", &dir), ("RUNBOOK_STATE_URL", login)],
        )
    };
    let (alice, bob, carol) = (db.login("alice"), db.login("bob"), db.login("carol"));
    let mut a = on_machine(
        "laptop-a",
        &alice,
        &["exec", path, "--yes", "--actor", "alice"],
    )
    .spawn();
    let run_id = requests(&db, 1).remove(0);
    let _ = a.kill();
    let _ = a.wait();
    let b = on_machine(
        "laptop-b",
        &bob,
        &["resume", &run_id, "--yes", "--actor", "bob"],
    )
    .spawn();
    // Bob's request replaces alice's.
    let mut c = db.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c
        .query_one("SELECT request FROM runbook_approvals", &[])
        .map(|r| !r.get::<_, String>(0).contains("\"requested_by\": \"bob\""))
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "bob's request never came");
        std::thread::yield_now();
    }
    on_machine(
        "laptop-a",
        &alice,
        &["approve", &run_id, "--actor", "alice"],
    )
    .run()
    .exit(Exit::Usage)
    .stderr_has(&format!("alice ran run {run_id} (exec at "))
    .stderr_has("the run's own actors cannot approve or deny its steps, whoever asked");
    on_machine(
        "laptop-c",
        &carol,
        &["approve", &run_id, "--actor", "carol"],
    )
    .run()
    .exit(Exit::Ok);
    assert_finished(b, 0, &["gated step ran"], &[]);
}

/// A run whose lock was taken from it (--break-lock from another machine) does not go on:
/// before each step it confirms its lease, and stops when the lease is someone else's.
#[test]
fn a_run_whose_lock_was_broken_stops_before_its_next_step() {
    let Some(db) = Database::fresh("a_run_whose_lock_was_broken") else {
        return;
    };
    let dir = gated("120s");
    let exec = |machine: &str, actor: &str, extra: &[&str]| {
        let mut args = vec!["exec", "gated.rhai", "--sandbox", "--yes", "--actor", actor];
        args.extend_from_slice(extra);
        on(dir.path(), machine, &db, &args).spawn()
    };
    let a = exec("laptop-a", "alice", &[]);
    let first = requests(&db, 1).remove(0);
    // Alice's run is alive: --break-lock alone is refused, naming the lease to type back.
    let lease: String = db
        .client()
        .query_one("SELECT lease_id FROM runbook_locks", &[])
        .unwrap()
        .get(0);
    let refused = on(
        dir.path(),
        "laptop-b",
        &db,
        &[
            "exec",
            "gated.rhai",
            "--sandbox",
            "--yes",
            "--actor",
            "bob",
            "--break-lock",
        ],
    )
    .run();
    refused
        .exit(Exit::Usage)
        .stderr_has(&format!("run {first} by alice (pid "))
        .stderr_has("is alive and holds this rotation's lock")
        .stderr_has(&format!("--break-lock --lease-id {lease}"));
    let b = exec("laptop-b", "bob", &["--break-lock", "--lease-id", &lease]);
    let both = requests(&db, 2);
    let second = both.into_iter().find(|r| *r != first).unwrap();
    let carol = db.login("carol");
    // The request's asker is named as such: a resumed run's request is the resuming
    // operator's, not its starter's (team review: "started by bob" for alice's run).
    let approve = |run_id: &str, by: &str| {
        Test::in_dir(dir.path())
            .env(
                "RUNBOOK_STATE_DIR",
                &dir.path().join("laptop-c").to_string_lossy(),
            )
            .env("RUNBOOK_STATE_URL", &carol)
            .args(&["approve", run_id, "--actor", "carol"])
            .run()
            .exit(Exit::Ok)
            .stdout_has(&format!(
                "approved step 'gated' of run {run_id} (requested by {by}) as carol"
            ));
    };
    approve(&first, "alice");
    assert_finished(
        a,
        1,
        &["Step 'gated' not run: this run no longer holds its rotation lock"],
        &["gated step ran"],
    );
    approve(&second, "bob");
    assert_finished(b, 0, &["gated step ran"], &[]);
}

/// The journal is under the chain: one SQL UPDATE of a journal row (a failed step turned
/// into a completed one) fails `audit verify`, and a pack made afterwards does not verify
/// however it is signed. A head signed with a key kept off the database proves, later,
/// that the chain was not cut since.
#[test]
fn a_journal_row_edited_in_sql_fails_both_verifies_and_a_signed_head_holds_the_end() {
    let Some(db) = Database::fresh("a_journal_row_edited_in_sql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = |args: &[&str]| on(dir.path(), "laptop-a", &db, args).shipped_runbooks();
    t(&["exec", "postmark", "--sandbox", "--yes"])
        .run()
        .exit(Exit::Ok);
    t(&["evidence", "keygen", "--out", "keys"])
        .run()
        .exit(Exit::Ok);
    t(&[
        "audit",
        "head",
        "--sign",
        "keys/evidence.key",
        "-o",
        "head.json",
    ])
    .run()
    .exit(Exit::Ok);
    let check_head = || {
        t(&[
            "audit",
            "verify",
            "--head",
            "head.json",
            "--pubkey",
            "keys/evidence.pub",
        ])
        .run()
    };
    check_head().exit(Exit::Ok).stdout_has(", 0 appended since");
    // A signed head needs the key that signed it.
    t(&["audit", "verify", "--head", "head.json"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("add --pubkey KEY.pub");
    let run_id: String = db
        .client()
        .query_one("SELECT min(run_id) FROM runbook_journal", &[])
        .unwrap()
        .get(0);

    let mut c = db.client();
    crate::support::pg::behind_the_triggers(&mut c);
    let rows = c
        .query("SELECT seq, line FROM runbook_journal ORDER BY seq", &[])
        .unwrap();
    let original: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let edited = c
        .execute(
            "UPDATE runbook_journal SET line = replace(line, '\"outcome\":\"completed\"', '\"outcome\":\"failed\"') \
             WHERE seq = (SELECT min(seq) FROM runbook_journal WHERE line LIKE '%\"type\":\"step_finished\"%')",
            &[],
        )
        .unwrap();
    assert_eq!(edited, 1);
    t(&["audit", "verify"])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
            "BROKEN: the journal of run {run_id}: journal line "
        ));
    t(&[
        "evidence",
        &run_id,
        "--sign",
        "keys/evidence.key",
        "-o",
        "pack.json",
    ])
    .run()
    .exit(Exit::StepFailed)
    .stderr_has("records a problem: the run's journal did not hold when it was made");
    t(&[
        "evidence",
        "verify",
        "pack.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .run()
    .exit(Exit::StepFailed)
    .stderr_has("the run's journal did not hold when it was made");

    // The journal whole again, but its last rows cut: the audit log's links into it fail.
    for (seq, line) in &original {
        c.execute(
            "UPDATE runbook_journal SET line = $2 WHERE seq = $1",
            &[seq, line],
        )
        .unwrap();
    }
    t(&["audit", "verify"]).run().exit(Exit::Ok);
    c.execute(
        "DELETE FROM runbook_journal WHERE seq >= (SELECT max(seq) - 1 FROM runbook_journal)",
        &[],
    )
    .unwrap();
    t(&["audit", "verify"])
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("lines were removed");
    // The audit chain cut at its end: the signed head is no longer in it.
    c.execute(
        "DELETE FROM runbook_audit WHERE seq = (SELECT max(seq) FROM runbook_audit)",
        &[],
    )
    .unwrap();
    check_head()
        .exit(Exit::StepFailed)
        .stderr_has("does not contain the recorded head");
}

/// The state URL is read as `psql` reads it: the password from PGPASSWORD or the password
/// file, a service name from the service file, and `sslmode=verify-full` understood (and
/// kept: a server without TLS is refused, not used in clear).
#[test]
fn the_state_url_is_read_as_libpq_reads_it() {
    let Some(db) = Database::fresh("the_state_url_is_read_as_libpq") else {
        return;
    };
    // postgres://USER:PASSWORD@HOST:PORT/DB
    let after = db.url.split_once("://").unwrap().1;
    let (userinfo, location) = after.rsplit_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    let (hostport, dbname) = location.split_once('/').unwrap();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    let bare = format!("postgres://{user}@{hostport}/{dbname}");
    let dir = tempfile::tempdir().unwrap();
    let runs = |url: &str, env: &[(&str, &str)]| {
        let mut t = Test::in_dir(dir.path()).env("RUNBOOK_STATE_URL", url);
        for (k, v) in env {
            t = t.env(k, v);
        }
        t.args(&["runs"]).run()
    };
    runs(&bare, &[])
        .exit(Exit::Usage)
        .stderr_has("cannot connect");
    runs(&bare, &[("PGPASSWORD", password)]).exit(Exit::Ok);
    // ~/.pgpass (the test's home), only when others cannot read it.
    let pgpass = dir.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("{host}:{port}:{dbname}:{user}:{password}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    runs(&bare, &[]).exit(Exit::Usage);
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    runs(&bare, &[]).exit(Exit::Ok);
    // A service name, from the service file.
    std::fs::write(
        dir.path().join(".pg_service.conf"),
        format!("[runbook]\nhost={host}\nport={port}\ndbname={dbname}\nuser={user}\n"),
    )
    .unwrap();
    runs("service=runbook", &[]).exit(Exit::Ok);
    // verify-full to a server that offers no TLS: refused, never in clear.
    let strict = runs(&format!("{bare}?sslmode=verify-full"), &[]);
    strict.exit(Exit::Usage).stderr_has("cannot connect");
    assert!(
        !strict.stderr.contains("invalid value"),
        "{}",
        strict.stderr
    );
    runs(
        &format!("{bare}?sslmode=verify-full&sslrootcert=/nowhere/ca.pem"),
        &[],
    )
    .exit(Exit::Usage)
    .stderr_has("sslrootcert /nowhere/ca.pem is not a readable file");
}

/// `sslmode=verify-full` with `sslrootcert`: a server whose certificate that CA signed is
/// reached; with another CA the same server is refused, never used unverified.
#[test]
fn verify_full_reaches_a_server_its_ca_signed_and_refuses_one_it_did_not() {
    let Some((cluster, ca)) = crate::support::pg::Cluster::start_tls("verify_full") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = |ca: &Path| {
        let url = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            cluster.url,
            ca.display()
        );
        Test::in_dir(dir.path())
            .env("RUNBOOK_STATE_URL", &url)
            .args(&["runs"])
            .run()
    };
    runs(&ca).exit(Exit::Ok).stderr_has("no runs yet");
    let other = dir.path().join("other-ca.crt");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(dir.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other)
        .args(["-days", "2", "-subj", "/CN=another CA"])
        .output()
        .unwrap();
    assert!(made.status.success());
    let refused = runs(&other);
    refused.exit(Exit::Usage).stderr_has("cannot connect");
}

/// A journal line whose INSERT committed but whose answer was lost (a proxy reset, a
/// failover) is sent again: it is stored once, and the fenced append still says the lease
/// is held. Before, the second copy broke the chain ("does not follow the line before it"),
/// and `audit verify` and the evidence pack called an honest run's journal tampered with.
#[test]
fn a_journal_line_sent_again_after_a_lost_answer_is_stored_once() {
    use runbook_core::store::{Holder, JournalStore, LockStore};
    let Some(db) = Database::fresh("a_journal_line_sent_again") else {
        return;
    };
    let store = runbook_core::store::Postgres::connect(&db.url, Duration::from_secs(30)).unwrap();
    let holder = Holder {
        run_id: "20261205T000000000Z-retry".into(),
        actor: "ops".into(),
        pid: std::process::id(),
        host: "bastion".into(),
        since: "2026-12-05T00:00:00Z".into(),
        lease_id: "taking-1".into(),
        expires: None,
        expired: false,
        pid_space: String::new(),
        lock: String::new(),
    };
    assert!(store.lock_create("rotation", &holder).unwrap());
    let fence = runbook_core::store::Fence {
        key: "rotation".into(),
        lease_id: "taking-1".into(),
    };
    let hex = |c: char| c.to_string().repeat(64);
    let line = format!(
        r#"{{"v":1,"type":"step_started","step":"store","prev_hash":"{}","hash":"{}"}}"#,
        runbook_core::store::GENESIS,
        hex('1')
    );
    let line = line.as_str();
    for _ in 0..2 {
        assert!(store
            .journal_append_fenced(&holder.run_id, line, &fence, true)
            .unwrap());
    }
    let text = store.journal(&holder.run_id).unwrap().unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    // Another taking still stores nothing.
    let other = runbook_core::store::Fence {
        key: "rotation".into(),
        lease_id: "taking-2".into(),
    };
    assert!(!store
        .journal_append_fenced(&holder.run_id, "{\"next\":1}", &other, true)
        .unwrap());
    // A line that names another line before it than the last stored (the database lost
    // what it had acknowledged) is refused, and nothing is stored.
    let over_a_gap = format!(
        r#"{{"v":1,"type":"step_finished","step":"store","prev_hash":"{}","hash":"{}"}}"#,
        hex('2'),
        hex('3')
    );
    let over_a_gap = over_a_gap.as_str();
    let e = store
        .journal_append_fenced(&holder.run_id, over_a_gap, &fence, true)
        .unwrap_err();
    assert!(e.is_final(), "{e}");
    assert!(
        e.to_string()
            .contains("no longer holds this run's last records"),
        "{e}"
    );
    assert!(store
        .journal_append(&holder.run_id, over_a_gap, true)
        .is_err());
    // An escaped NUL (a vendor's answer, a script's error) is no JSON PostgreSQL takes:
    // the line is read as text.
    let next = format!(
        r#"{{"v":1,"type":"step_finished","step":"store","error":"x\u0000y","prev_hash":"{}","hash":"{}"}}"#,
        hex('1'),
        hex('4')
    );
    let next = next.as_str();
    assert!(store
        .journal_append_fenced(&holder.run_id, next, &fence, true)
        .unwrap());
    let text = store.journal(&holder.run_id).unwrap().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

/// A journal row under an id no run can have (any login may insert one) is not taken for an
/// unfinished run of every runbook: before, every production exec was refused, and
/// `runbook abandon` could not set it aside ("no run"), so a leaked key could not be
/// rotated (cold review of team mode).
#[test]
fn a_row_under_an_id_no_run_has_blocks_no_rotation() {
    let Some(db) = Database::fresh("a_row_under_an_id_no_run_has") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiny.rhai"),
        "runbook(#{ id: \"tiny\", title: \"Tiny\", secret: \"TINY_KEY\" });\nstep(\"s\", \"S\", |ctx| { print(\"tiny ran\"); });\n",
    )
    .unwrap();
    let exec = || {
        on(
            dir.path(),
            "laptop-a",
            &db,
            &["exec", "tiny.rhai", "--yes", "--actor", "alice"],
        )
        .run()
    };
    // The first run makes the tables.
    exec().exit(Exit::Ok);
    db.client()
        .execute(
            "INSERT INTO runbook_journal (run_id, line) VALUES ('not_a_run', '{')",
            &[],
        )
        .unwrap();
    exec().exit(Exit::Ok).stdout_has("tiny ran");
}

/// On the database, a decision made on one request is not stored over another filed since
/// (the run was taken over between the read and the write): before, `WHERE decision IS
/// NULL` let it close the new request, which nobody could then decide (cold review).
#[test]
fn a_decision_is_not_stored_on_a_request_filed_since() {
    use runbook_core::store::ApprovalStore;
    let Some(db) = Database::fresh("a_decision_is_not_stored_on_a_request") else {
        return;
    };
    let store = runbook_core::store::Postgres::connect(&db.url, Duration::from_secs(30)).unwrap();
    let run = "20261207T000000000Z-taken";
    store
        .approval_put_request(run, r#"{"nonce":"the-new-request","step":"revoke"}"#)
        .unwrap();
    let on = |nonce: &str| {
        serde_json::json!({ "nonce": nonce, "verdict": "timeout", "at": "2026-12-07T00:00:00Z" })
            .to_string()
    };
    assert!(!store
        .approval_put_decision(run, &on("the-old-request"))
        .unwrap());
    assert_eq!(store.approval_decision(run).unwrap(), None);
    assert!(store
        .approval_put_decision(run, &on("the-new-request"))
        .unwrap());
}
