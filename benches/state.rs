//! The state backends measured (docs/performance.md, "Team mode"): per-step overhead of
//! PostgreSQL against files, audit appends per second with 4 concurrent writers, and
//! `audit verify` over 100,000 rows. Needs a server: `RUNBOOK_BENCH_DATABASE_URL` (a role
//! with CREATEDB), else the test harness's throwaway cluster.
//! Run: `cargo bench --bench state`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use runbook_core::audit::{entry_hash, AuditLog, Verdict, GENESIS};
use runbook_core::store::{self, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(30);

/// What a step costs the store: the write's record (fenced by the run's lease, as every
/// record of a run that holds a lock is, and durable), one audit entry, the outcome's record
/// (both made durable by the next write's record, as the engine does).
fn step(store: &Store, run_id: &str, fence: &store::Fence, i: usize) {
    assert!(store
        .journal_append_fenced(
            run_id,
            &format!(r#"{{"t":"x","kind":"step.intent","step":"s{i}"}}"#),
            fence,
            true,
        )
        .unwrap());
    append(store, i);
    assert!(store
        .journal_append_fenced(
            run_id,
            &format!(r#"{{"t":"x","kind":"step.outcome","step":"s{i}","status":"completed"}}"#),
            fence,
            false,
        )
        .unwrap());
}

fn entry(prev: &str, i: usize) -> String {
    let mut e = serde_json::json!({
        "time": "2026-12-03T00:00:00Z", "actor": "bench", "run_id": "r", "runbook": "b",
        "step": format!("s{i}"), "action": "step.completed", "mode": "exec",
        "context": {"i": i}, "prev_hash": prev,
    });
    e["hash"] = serde_json::Value::String(entry_hash(&e));
    e.to_string()
}

fn append(store: &Store, i: usize) {
    store
        .audit_append(&mut |prev| Ok(entry(prev, i)), false)
        .unwrap();
}

fn per_step(store: &Store, steps: usize) -> Duration {
    let run_id = format!("20261203T000000000Z-{:06x}", rand_u32() & 0xffffff);
    let fence = store::Fence {
        key: format!("bench-{run_id}"),
        lease_id: format!("lease-{run_id}"),
    };
    let holder = store::Holder {
        run_id: run_id.clone(),
        actor: "bench".into(),
        pid: std::process::id(),
        host: "bench".into(),
        since: "2026-12-03T00:00:00Z".into(),
        lease_id: fence.lease_id.clone(),
        expires: None,
        expired: false,
        pid_space: String::new(),
        lock: fence.key.clone(),
    };
    assert!(store.lock_create(&fence.key, &holder).unwrap());
    let t = Instant::now();
    for i in 0..steps {
        step(store, &run_id, &fence, i);
    }
    let took = t.elapsed() / steps as u32;
    store
        .lock_remove(&fence.key, Some(&fence.lease_id), false)
        .unwrap();
    took
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn main() {
    let db = match std::env::var("RUNBOOK_BENCH_DATABASE_URL") {
        Ok(url) => {
            std::env::set_var("RUNBOOK_TEST_DATABASE_URL", url);
            runbook_testkit::pg::Database::fresh("bench")
        }
        Err(_) => runbook_testkit::pg::Database::fresh("bench"),
    };
    let Some(db) = db else {
        eprintln!("no PostgreSQL: set RUNBOOK_BENCH_DATABASE_URL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files: Store = Arc::new(store::Files::new(
        dir.path(),
        runbook_core::sink::Say::outside(Arc::new(runbook_core::sink::Quiet)),
    ));
    let pg: Store = Arc::new(store::Postgres::connect(&db.url, LEASE).unwrap());

    // 1. Per step: warm up, then the median of 5 rounds of 200 steps.
    let steps = 200;
    let median = |s: &Store| {
        per_step(s, 20);
        let mut v: Vec<Duration> = (0..5).map(|_| per_step(s, steps)).collect();
        v.sort();
        v[2]
    };
    let (f, p) = (median(&files), median(&pg));
    println!(
        "per step (2 fenced journal records + 1 audit entry): files {:.3} ms, postgres {:.3} ms, overhead {:.3} ms",
        f.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        (p.as_secs_f64() - f.as_secs_f64()) * 1e3
    );

    // 2. Audit appends with 4 writers, each its own connection (its own process, in life).
    let writers = 4;
    let each = 1000;
    let t = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let s: Store = Arc::new(store::Postgres::connect(&url, LEASE).unwrap());
                for i in 0..each {
                    append(&s, i);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "audit appends, {writers} writers x {each}: {:.0} appends/s ({secs:.2} s)",
        (writers * each) as f64 / secs
    );
    let log = AuditLog::new(&pg);
    match log.verify().unwrap() {
        Verdict::Intact { entries, .. } => {
            println!("  chain intact after concurrent appends: {entries} entries")
        }
        broken => panic!("the chain forked: {broken:?}"),
    }

    // 3. verify over 100,000 rows: a valid chain loaded in bulk, then walked.
    let mut c = db.client();
    // The audit table is append-only; the bench, as the tables' owner, empties it anyway.
    c.batch_execute(
        "ALTER TABLE runbook_audit DISABLE TRIGGER USER; TRUNCATE runbook_audit; \
         ALTER TABLE runbook_audit ENABLE TRIGGER USER",
    )
    .unwrap();
    let rows = 100_000;
    let mut prev = GENESIS.to_string();
    let mut tx = c.transaction().unwrap();
    {
        let mut w = tx
            .copy_in("COPY runbook_audit (seq, line) FROM STDIN")
            .unwrap();
        use std::io::Write;
        for i in 0..rows {
            let line = entry(&prev, i);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            prev = v["hash"].as_str().unwrap().to_string();
            let escaped = line.replace('\\', "\\\\");
            writeln!(w, "{}\t{}", i + 1, escaped).unwrap();
        }
        w.finish().unwrap();
    }
    tx.commit().unwrap();
    let t = Instant::now();
    let verdict = log.verify().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        matches!(verdict, Verdict::Intact { entries, .. } if entries == rows),
        "{verdict:?}"
    );
    println!("audit verify over {rows} rows: {secs:.2} s");
}
