//! `runs`, `audit show|verify`, `due`: what the state directory tells afterwards.

use crate::support::items;
use crate::support::{rehearsed_rotation, webhook, with_script, Exit, Rig, Test};
use serde_json::{json, Value};

/// The Postmark rotation's row in `due --json`.
fn postmark_row(due: &Value) -> Value {
    due.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "postmark-server-token")
        .unwrap()
        .clone()
}

/// A chained audit log written the way the engine writes it.
fn write_log(path: &std::path::Path, n: usize) -> Vec<String> {
    let mut prev = runbook_core::audit::GENESIS.to_string();
    let mut lines = Vec::with_capacity(n);
    for i in 0..n {
        let mut e = json!({
            "time": "2026-11-26T10:00:00Z", "actor": "ops", "run_id": "r", "runbook": "rb",
            "step": "s", "action": format!("test.{i}"), "mode": "exec", "context": {"i": i},
            "prev_hash": prev,
        });
        let h = runbook_core::audit::entry_hash(&e);
        e["hash"] = Value::String(h.clone());
        prev = h;
        lines.push(e.to_string());
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    lines
}

#[test]
fn audit_verify_passes_a_long_untouched_log() {
    let test = Test::new();
    write_log(&test.path().join("state/audit.jsonl"), 10_000);
    let out = test.args(&["audit", "verify"]).run();
    out.exit(Exit::Ok).stdout_has("OK: 10000 entries, head ");
}

#[test]
fn audit_verify_finds_an_edited_a_removed_and_a_swapped_entry() {
    type Tamper = fn(&mut Vec<String>);
    let cases: [(&str, Tamper); 3] = [
        ("edited", |l| l[4] = l[4].replace("\"i\":4", "\"i\":40")),
        ("removed", |l| {
            l.remove(4);
        }),
        ("swapped", |l| l.swap(4, 5)),
    ];
    for (what, tamper) in cases {
        let test = Test::new();
        let path = test.path().join("state/audit.jsonl");
        let mut lines = write_log(&path, 10);
        tamper(&mut lines);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let out = test.args(&["audit", "verify"]).run();
        out.exit(Exit::StepFailed)
            .stderr_has("BROKEN: ")
            .stderr_has("audit.jsonl entry 5: ");
        let reason = if what == "edited" {
            "(edited)"
        } else {
            "removed, inserted or reordered"
        };
        out.stderr_has(reason);
    }
}

#[test]
fn a_sandbox_run_is_listed_audited_and_never_counts_as_a_rotation() {
    let out = rehearsed_rotation(Test::new());
    out.exit(Exit::Ok);
    // Later commands share the first one's directory and state dir.
    let run = |args: &[&str]| {
        let o = Test::in_dir(out.path()).shipped_runbooks().args(args).run();
        (o.code, o.stdout.clone())
    };
    let (code, runs) = run(&["runs", "--json"]);
    assert_eq!(code, 0);
    let runs: Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs[0]["runbook"], "postmark-server-token");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["mode"], "sandbox");
    assert_eq!(runs[0]["actor"], "ops-test");
    assert_eq!(runs[0]["last_step"], "audit");

    let (code, shown) = run(&[
        "audit",
        "show",
        "--action",
        "secret.rotate.completed",
        "--json",
    ]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 1);
    assert_eq!(shown[0]["mode"], "sandbox");
    let (_, all) = run(&["audit", "show", "--json"]);
    let actions: Vec<String> = serde_json::from_str::<Value>(&all)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for a in [
        "run.started",
        "step.completed",
        "host.call",
        "secret.rotate.completed",
        "run.completed",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    let (code, verified) = run(&["audit", "verify"]);
    assert_eq!(code, 0, "{verified}");

    // A rehearsal is not a rotation: postmark is still due.
    let (_, due) = run(&["due", "--json"]);
    let pm = postmark_row(&serde_json::from_str(&due).unwrap());
    assert_eq!(pm["last_rotation"], Value::Null);
    // Never rotated: due today, and overdue only after today.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(pm["due"], today.as_str());
    assert_eq!(pm["overdue"], false);
}

#[test]
fn due_counts_a_real_rotation_and_adds_the_cadence() {
    let test = Test::new();
    let today = time::OffsetDateTime::now_utc().date();
    let last = journalled_rotation(&test, 10, &[]);
    let pm = postmark_due(test);
    assert_eq!(pm["last_rotation"], last.as_str());
    assert_eq!(pm["due"], (today + time::Duration::days(170)).to_string());
    assert_eq!(pm["overdue"], false);
}

/// A rotation whose every vendor endpoint was on this machine, against a separate
/// `runbook sandbox`, used to be recorded as a production run and counted by `due`: its
/// vendors answer as simulators, so it is a rehearsal, and `runs` says so.
#[test]
fn a_loopback_rehearsal_is_listed_as_one_and_never_counts_as_a_rotation() {
    let rig = Rig::new();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    let listed = rig.runs();
    assert_eq!(listed[0]["target"], "rehearsal", "{listed}");
    assert_eq!(listed[0]["status"], "succeeded");
    let table = rig.runbook(&["runs"], &[]);
    table.stdout_has("TARGET").stdout_has(" rehearsal ");
    let pm = postmark_row(&rig.runbook(&["due", "--json"], &[]).json());
    assert_eq!(pm["last_rotation"], Value::Null, "{pm}");
    let evidence = rig.runbook(&["evidence", &rig.run_id()], &[]).json();
    assert_eq!(evidence["target"], "rehearsal");
    assert_eq!(evidence["rehearsal"], true);
}

#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let out = rehearsed_rotation(Test::new());
    out.exit(Exit::Ok);
    let state = out.path().join("state");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("runs")), 0o700);
    assert_eq!(mode(&state.join("audit.jsonl")), 0o600);
    for e in std::fs::read_dir(state.join("runs")).unwrap().flatten() {
        assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
    }
}

#[test]
fn dry_run_journal_is_marked_and_audits_nothing() {
    let out = Test::new()
        .rehearse("postmark")
        .canary()
        .args(&["--dry-run"])
        .run();
    out.exit(Exit::Ok);
    assert!(out.audit().is_empty());
    let first: Value = serde_json::from_str(out.journal().lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "run_started");
    assert_eq!(first["effect"], "dry-run");
}

#[test]
fn audit_entries_also_go_to_the_webhook_and_a_failing_one_loses_nothing() {
    let (url, bodies) = webhook(200);
    let out = rehearsed_rotation(Test::new().env("RUNBOOK_AUDIT_WEBHOOK", &url));
    out.exit(Exit::Ok);
    let local = out.audit();
    let sent = bodies.lock().unwrap().clone();
    assert_eq!(
        sent.len(),
        local.len(),
        "every local entry reached the webhook"
    );
    let first: Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(first["hash"], local[0]["hash"]);

    let (url, bodies) = webhook(500);
    let out = rehearsed_rotation(Test::new().env("RUNBOOK_AUDIT_WEBHOOK", &url));
    out.exit(Exit::Ok)
        .stderr_has("the audit webhook did not take entry");
    assert_eq!(
        out.stderr
            .matches("the audit webhook did not take entry")
            .count(),
        1,
        "warned once"
    );
    assert!(out.audit().len() > 10, "the local log keeps every entry");
    assert!(bodies.lock().unwrap().len() >= 2, "a 5xx answer is retried");
}

/// A webhook URL carries its secret in its path (Slack, Teams, Discord): a webhook that
/// cannot be reached is reported without it, on the terminal and in `--json`.
#[test]
fn an_unreachable_audit_webhook_is_reported_without_its_url() {
    let secret_path = "/services/T0AAAA/B0BBBB/whsecretXXXXXXXXXXXXXXXX";
    // Nothing listens on the discard port: the connection is refused.
    let url = format!("http://127.0.0.1:9{secret_path}");
    for json in [false, true] {
        let t = Test::new()
            .env("RUNBOOK_AUDIT_WEBHOOK", &url)
            .rehearse("postmark")
            .canary()
            .args(&["--yes", "--actor", "ops-test"]);
        let out = if json { t.args(&["--json"]) } else { t }.run();
        out.exit(Exit::Ok)
            .stderr_has("the audit webhook did not take entry");
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains("whsecret") && !text.contains("B0BBBB"),
                "{name} shows the webhook's URL (json: {json}):\n{text}"
            );
        }
    }
}

/// A journal of one production run of the Postmark rotation that started `days` ago at
/// 09:00 and succeeded, with `extra` events between its start and its end (a resume);
/// the time it ended.
fn journalled_rotation(test: &Test, days: i64, extra: &[Value]) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let last = format!("{}T09:00:00Z", today - time::Duration::days(days));
    let stamp = |body: Value| {
        let mut e = json!({"v": 1, "run_id": "20260101T090000000Z-abcdef", "time": last});
        e.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        e.to_string()
    };
    let mut lines = vec![stamp(json!({
        "type": "run_started", "runbook": "postmark-server-token",
        "source": {"path": "/nowhere/postmark.rhai", "sha256": "00", "modules": []},
        "params": {}, "actor": "ops", "host": "vm", "pid": 1,
        "target": "production", "effect": "apply", "entry": "exec",
    }))];
    lines.extend(extra.iter().cloned().map(stamp));
    lines.push(stamp(
        json!({"type": "run_finished", "status": "succeeded"}),
    ));
    let runs = test.path().join("state/runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(
        runs.join("20260101T090000000Z-abcdef.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    last
}

fn postmark_due(test: Test) -> Value {
    let out = test.shipped_runbooks().args(&["due", "--json"]).run();
    out.exit(Exit::Ok);
    postmark_row(&out.json())
}

/// A rotation that stopped and was finished by `runbook resume` is a rotation; a rotation
/// due today is due, not overdue; the day after, it is overdue.
#[test]
fn due_counts_rotations_finished_by_resume_and_overdue_starts_the_day_after() {
    let test = Test::new();
    let resumed = [
        json!({"type": "run_finished", "status": "failed"}),
        json!({"type": "run_resumed", "actor": "ops", "pid": 2, "entry": "resume"}),
    ];
    let last = journalled_rotation(&test, 10, &resumed);
    let pm = postmark_due(test);
    assert_eq!(pm["last_rotation"], last.as_str());
    let test = Test::new();
    journalled_rotation(&test, 180, &[]);
    let pm = postmark_due(test);
    assert_eq!(pm["overdue"], false, "{pm}");
    let test = Test::new();
    journalled_rotation(&test, 181, &[]);
    assert_eq!(postmark_due(test)["overdue"], true);
    // A rehearsal never counts: a vendor answered as a simulator.
    let test = Test::new();
    let rehearsed = [json!({"type": "simulator_answered", "vendor": "heroku"})];
    journalled_rotation(&test, 1, &rehearsed);
    assert_eq!(postmark_due(test)["last_rotation"], Value::Null);
}

#[test]
fn entries_cut_off_the_end_are_found_with_the_head_a_run_printed() {
    let out = rehearsed_rotation(Test::new());
    out.exit(Exit::Ok);
    // The run prints the head it left: its last audit entry, which names the journal's
    // last line (the run's end), so the journal is under the chain through it.
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Audit head: "))
        .unwrap_or_else(|| panic!("no audit head in:\n{}", out.stdout));
    let head = line["Audit head: ".len()..][..64].to_string();
    let journal = out.journal();
    let audit = out.path().join("state/audit.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["hash"], head.as_str());
    assert_eq!(last["action"], "run.completed");
    let journal_lines: Vec<&str> = journal.lines().collect();
    assert_eq!(last["journal"]["lines"], journal_lines.len());
    let end: Value = serde_json::from_str(journal_lines.last().unwrap()).unwrap();
    assert_eq!(end["type"], "run_finished");
    assert_eq!(last["journal"]["head"], end["hash"]);

    let test = out.next();
    let ok = test.args(&["audit", "verify", "--head", &head]).run();
    ok.exit(Exit::Ok)
        .stdout_has("the recorded head is entry ")
        .stdout_has(", 0 appended since");

    // Cut the last two entries: the chain that is left is whole, but the run's end names an
    // entry it lost (before, this verified)...
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&audit, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let test = ok.next();
    let plain = test.args(&["audit", "verify"]).run();
    plain
        .exit(Exit::StepFailed)
        .stderr_has("which the audit log does not hold (the log was cut or rewritten)");
    // ...and against the head the run recorded, it is found cut at its end.
    let cut = plain
        .next()
        .args(&["audit", "verify", "--head", &head])
        .run();
    cut.exit(Exit::StepFailed)
        .stderr_has(&format!("does not contain the recorded head {head}"))
        .stderr_has("entries were cut off the end");

    // A mistyped head file is said to be missing, not read as a log cut off; a key with a
    // bare hash has nothing to check, and says so (cold review: OK without a check).
    let typo = cut
        .next()
        .args(&["audit", "verify", "--head", "head-Q4.jsonn"])
        .run();
    typo.exit(Exit::Usage)
        .stderr_has("--head head-Q4.jsonn: no such file, and not a head's hash (64 hex digits)");
    typo.next()
        .args(&["audit", "verify", "--head", &head, "--pubkey", "audit.pub"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("is a bare hash: --pubkey has no signature to check");
}

#[test]
fn an_audit_entry_over_the_limit_is_refused_and_the_log_stays_usable() {
    // Before: a non-ASCII entry over 64 KiB made every later append fail; the rotation then
    // failed at its audit step after revoking.
    let runbook = r#"runbook(#{ id: "big-audit", title: "Large audit entries" });
step("fits", "A large entry that fits", |ctx| {
    let note = "é→";
    for i in 0..15 { note += note; }
    audit::log("big.fits", #{ note: note });
}).no_undo("audit only");
step("too_big", "An entry over the limit", |ctx| {
    let note = "ü";
    for i in 0..18 { note += note; }
    audit::log("big.refused", #{ note: note });
}).no_undo("audit only");
"#;
    let out = with_script("exec", "big.rhai", runbook)
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed)
        // Its own code and help (before: runbook::host::bad_argument, "check that the
        // state directory is writable").
        .stderr_has("runbook::audit::too_large")
        .stderr_has("log a summary (ids, counts, fingerprints) instead of whole documents")
        .stderr_has("the audit entry 'big.refused' is 524")
        .stderr_has("bytes; the limit is 262144 bytes");
    let entries = out.audit();
    assert!(entries.iter().any(|e| e["action"] == "big.fits"));
    assert!(!entries.iter().any(|e| e["action"] == "big.refused"));
    // The run's own later events were still appended, and the chain holds.
    assert!(entries.iter().any(|e| e["action"] == "run.completed"));
    let verify = out.next().args(&["audit", "verify"]).run();
    verify.exit(Exit::Ok).stdout_has("OK: ");
}

/// `runs` reads like `kubectl get`: a header, a MODE column (real, sandbox, dry-run, repl),
/// and a REPL session left with :quit as `ended`, not `interrupted`.
#[test]
fn runs_lists_each_run_with_its_mode_and_a_repl_session_as_ended() {
    let out = Test::new().rehearse("postmark").args(&["--yes"]).run();
    out.exit(Exit::Ok);
    let out = out.next().rehearse("postmark").args(&["--dry-run"]).run();
    out.exit(Exit::Ok);
    let out = out
        .next()
        .shipped_runbooks()
        .args(&["repl", "postmark", "--sandbox"])
        .stdin("1 + 1\n:quit\n")
        .run();
    let out = out.next().args(&["runs"]).run();
    out.exit(Exit::Ok);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("RUN ")
            && lines[0].contains("  TARGET  ")
            && lines[0].contains("  MODE  ")
            && lines[0].contains("  STATUS  "),
        "{}",
        out.stdout
    );
    let cols = |line: &str| {
        line.split("  ")
            .filter(|c| !c.trim().is_empty())
            .map(str::trim)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Where each went, how it was entered (and what it did), and how it ended.
    let modes: Vec<[String; 3]> = lines[1..]
        .iter()
        .map(|l| {
            let c = cols(l);
            [c[2].clone(), c[3].clone(), c[4].clone()]
        })
        .collect();
    let row = |a: &str, b: &str, c: &str| [a.to_string(), b.to_string(), c.to_string()];
    assert_eq!(
        modes,
        vec![
            row("sandbox", "repl", "ended"),
            row("sandbox", "dry-run", "succeeded"),
            row("sandbox", "exec", "succeeded"),
        ],
        "{}",
        out.stdout
    );
}

/// `runs RUN_ID` is the run's timeline: each step and its duration, each write with its
/// target and outcome, the undo, and what is still in effect.
#[test]
fn a_runs_timeline_shows_steps_writes_undo_and_what_is_in_effect() {
    let out = Test::new()
        .rehearse("postmark")
        .args(&[
            "--yes",
            "--fault",
            "heroku:PATCH:/apps/raxx-api-staging/config-vars=422:always",
        ])
        .run();
    out.exit(Exit::StepFailed).stdout_has("  ↶ undoing store");
    let id = out.last_run_id();
    let out = out.next().args(&["runs", &id]).run();
    out.exit(Exit::Ok)
        .stdout_has(&format!("run {id} · postmark-server-token · sandbox · rolled back · actor "))
        .stdout_has("  step propagate: failed in ")
        .stdout_has("    heroku::set_config on raxx-api-prod: applied")
        .stdout_has("    heroku::set_config on raxx-api-staging: refused")
        .stdout_has("  undo propagate: done")
        .stdout_has("  undo store: done")
        .stdout_has("  ended: rolled back")
        .stdout_has("  undo generate: done")
        // Undone steps' writes are no longer in effect; the test email stays sent.
        .stdout_has("in effect:\n  validate · postmark::send_email on POST /email to rehearsal@sandbox.invalid: applied\n");
    let json = out.next().args(&["runs", &id, "--json"]).run();
    json.exit(Exit::Ok);
    let v = json.json();
    assert_eq!(v["run"]["status"], "rolled back");
    assert!(items(&v["events"])
        .iter()
        .any(|e| e["type"] == "undo_finished"));

    let missing = json.next().args(&["runs", "20990101T000000Z-abcdef"]).run();
    missing
        .exit(Exit::Usage)
        .stderr_has("no run '20990101T000000Z-abcdef'");
}

/// `list` has a header and shows each runbook's id and the file `exec` takes.
#[test]
fn list_shows_a_header_the_id_and_the_file_name() {
    let out = Test::new().shipped_runbooks().args(&["list"]).run();
    out.exit(Exit::Ok);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("  FILE  "),
        "{}",
        out.stdout
    );
    let postmark = lines
        .iter()
        .find(|l| l.starts_with("postmark-server-token"))
        .unwrap();
    assert!(postmark.contains("  postmark.rhai  "), "{postmark}");
    assert!(postmark.contains("  every 180d  "), "{postmark}");
}

/// A step that failed once and passed on a retry does not make a succeeded run's audit
/// entry name a failed step; `audit show` has the run id, the mode and readable context.
#[test]
fn a_succeeded_run_after_a_retry_names_no_failed_step_and_audit_show_reads_well() {
    let answers = "prerequisites = true\n\"validate.received\" = true\n\"validate.on-failure\" = \"retry\"\n\"revoke.confirm\" = true\n";
    let out = Test::new()
        .rehearse("postmark")
        .answers(answers)
        .args(&[
            "--param",
            "test_recipient=ops@sandbox.invalid",
            "--fault",
            "postmark:POST:/email=422:once",
            "--json",
        ])
        .run();
    out.exit(Exit::Ok);
    let report = out.report();
    let validate = items(&report["steps"])
        .iter()
        .find(|s| s["id"] == "validate")
        .unwrap();
    assert_eq!(
        validate["attempts"], 2,
        "the fault made validate fail once: {report}"
    );
    assert!(report.get("failed_step").is_none(), "{report}");
    let id = out.last_run_id();
    let audit = out.next().args(&["audit", "show", "--json"]).run();
    let entries: Vec<Value> = serde_json::from_str(&audit.stdout).unwrap();
    let done = entries
        .iter()
        .rev()
        .find(|e| e["action"] == "run.completed")
        .unwrap();
    assert_eq!(
        done["context"],
        json!({"status": "succeeded", "failed_step": null})
    );

    let shown = audit
        .next()
        .args(&["audit", "show", "--action", "run.completed"])
        .run();
    shown.exit(Exit::Ok);
    let lines: Vec<&str> = shown.stdout.lines().collect();
    assert!(
        lines[0].starts_with("TIME ")
            && lines[0].contains("  RUN  ")
            && lines[0].contains("  MODE  "),
        "{}",
        shown.stdout
    );
    assert!(
        lines[1].contains(&format!("  {id}  sandbox  "))
            && lines[1].ends_with("  status=succeeded"),
        "{}",
        shown.stdout
    );
}

/// A stored name of any length (an old journal, a row edited in the database) never panics
/// a listing: `runs`, `runs RUN_ID` and `audit show` cut it with an ellipsis.
#[test]
fn a_huge_stored_actor_is_cut_in_every_listing() {
    let out = rehearsed_rotation(Test::new());
    out.exit(Exit::Ok);
    let run_id = out.last_run_id();
    let huge = format!("{}\u{1b}[2J", "m".repeat(100_000));
    let actor = format!("\"actor\":{}", serde_json::to_string(&huge).unwrap());
    for file in [out.journal_path(), out.path().join("state/audit.jsonl")] {
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("\"actor\":\"ops-test\"", &actor)).unwrap();
    }
    let mut test = out.next();
    for args in [
        vec!["runs"],
        vec!["runs", run_id.as_str()],
        vec!["audit", "show"],
    ] {
        let shown = test.args(&args).run();
        shown.exit(Exit::Ok);
        assert!(
            shown.stdout.contains("mmm…"),
            "{args:?}: {}",
            &shown.stdout[..shown.stdout.len().min(500)]
        );
        for line in shown.stdout.lines() {
            assert!(
                line.chars().count() < 2_000,
                "{args:?}: a line of {}",
                line.len()
            );
        }
        assert!(
            !shown.stdout.contains('\u{1b}'),
            "{args:?} printed an escape"
        );
        test = shown.next();
    }
}

/// The STATUS column says where a run stands now: a run killed and then resumed to the
/// end reads `succeeded`, with the first attempt's end kept in `--json` (`status`).
#[test]
fn the_status_column_shows_the_latest_attempt() {
    let rig = Rig::new();
    rig.crash_and_resume("postmark", "after:store");
    let run_id = rig.run_id();
    let runs = rig.runs();
    assert_eq!(runs[0]["status"], "interrupted");
    assert_eq!(runs[0]["current"], "succeeded");
    let table = rig.runbook(&["runs"], &[]);
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[4], "succeeded", "{line}");
}

/// A journal that cannot be read is listed as damaged, with its file and the reason, in its
/// place among the others; `--json` has it too. Before: it was left out of `runs` (and of
/// `--json` entirely), so the run most in need of attention was the one nobody saw.
#[test]
fn a_damaged_journal_is_listed_as_damaged_with_its_file_and_reason() {
    let script =
        "runbook(#{ id: \"t\", title: \"T\" });\nstep(\"a\", \"A\", |ctx| { print(\"a\"); });\n";
    let first = with_script("exec", "t.rhai", script)
        .args(&["--sandbox", "--yes"])
        .run();
    first.exit(Exit::Ok);
    let damaged = first.last_run_id();
    let second = first
        .next()
        .args(&["exec", "t.rhai", "--sandbox", "--yes"])
        .run();
    second.exit(Exit::Ok);
    let good = second.last_run_id();
    let journal = second.path().join(format!("state/runs/{damaged}.jsonl"));
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{garbage";
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();

    let listed = second.next().args(&["runs"]).run();
    listed.exit(Exit::Ok).stderr_has(&format!(
        "warning: run {damaged}: the journal {} is damaged at line 2: not a JSON record",
        journal.display()
    ));
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", listed.stdout);
    assert!(
        rows[0].starts_with(&good) && rows[0].contains("succeeded"),
        "{}",
        listed.stdout
    );
    assert!(
        rows[1].starts_with(&damaged) && rows[1].contains("damaged"),
        "{}",
        listed.stdout
    );
    let as_json = listed.next().args(&["runs", "--json"]).run();
    let json = as_json.json();
    assert_eq!(json[0]["run_id"], good.as_str());
    assert_eq!(json[1]["run_id"], damaged.as_str());
    assert_eq!(json[1]["current"], "damaged");
    assert!(json[1]["problem"]
        .as_str()
        .is_some_and(|p| p.contains(&journal.display().to_string()) && p.contains("line 2")));
    // Abandoned as it is: listed so, without the warning.
    let abandoned = as_json
        .next()
        .args(&["abandon", &damaged, "--reason", "read by hand"])
        .run();
    abandoned.exit(Exit::Ok);
    let listed = abandoned.next().args(&["runs"]).run();
    listed.exit(Exit::Ok);
    assert!(!listed.stderr.contains("warning: run"), "{}", listed.stderr);
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert!(
        rows[1].starts_with(&damaged) && rows[1].contains("damaged, abandoned"),
        "{}",
        listed.stdout
    );
}
