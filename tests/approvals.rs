//! Four-eyes approvals on the file backend: a run waits at the step, another actor approves
//! or denies it, the run's own actor cannot, and a timeout is recorded as a timeout.

use crate::support::{assert_finished, assert_lacks, audit_entries, Exit, Output, Test};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn runbook(approval: &str, gate: &str) -> String {
    format!(
        r#"
runbook(#{{ id: "gated", title: "A gated change" }});
step("prepare", "Prepare", |ctx| {{ print("prepared"); }});
step("gated", "The change", |ctx| {{ print("gated step ran"); }}){gate}{approval};
"#
    )
}

/// A temp dir holding gated.rhai, its second step gated by `approval` and `gate`.
fn gated(approval: &str, gate: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gated.rhai"), runbook(approval, gate)).unwrap();
    dir
}

/// A command in `dir`, whose state dir the run and its approvers share.
fn cmd(dir: &Path, args: &[&str]) -> Output {
    Test::in_dir(dir).args(args).run()
}

/// Alice's rehearsal of the runbook `file` in `dir`.
fn exec(dir: &Path, file: &str) -> Test {
    Test::in_dir(dir).args(&["exec", file, "--sandbox", "--yes", "--actor", "alice"])
}

/// Starts `exec` in the background; returns the child and the approval request it files.
fn start(dir: &Path, file: &str) -> (std::process::Child, String) {
    let child = exec(dir, file).spawn();
    let approvals = dir.join("state/approvals");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Wait for the request the run files when it reaches the step (a condition, not a delay).
    let run_id = loop {
        let found: Option<PathBuf> = std::fs::read_dir(&approvals).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        if let Some(p) = found {
            break p.file_stem().unwrap().to_string_lossy().into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the run filed no approval request"
        );
        std::thread::yield_now();
    };
    (child, run_id)
}

fn audit_actions(dir: &Path) -> Vec<Value> {
    audit_entries(dir)
        .into_iter()
        .filter(|e| e["action"].as_str().unwrap_or("").starts_with("approval."))
        .collect()
}

#[test]
fn another_actor_approves_the_runs_own_cannot() {
    let dir = gated(
        r#".approval(#{ by: "the security on-call", timeout: "60s" })"#,
        "",
    );
    let (child, run_id) = start(dir.path(), "gated.rhai");
    let run = |args: &[&str]| cmd(dir.path(), args);
    // Alice again, however her name is dressed up: case, width, a Cyrillic а. Four eyes
    // compares names as people read them.
    for me in ["alice", " Alice ", "ａｌｉｃｅ", "\u{430}lice"] {
        run(&["approve", &run_id, "--actor", me])
            .exit(Exit::Usage)
            .stderr_has("the run's own actor cannot approve or deny it");
    }
    // A name no terminal could show whole, or one that reads backwards, is refused outright.
    let huge = "b".repeat(100_000);
    let refused = run(&["approve", &run_id, "--actor", &huge]);
    refused
        .exit(Exit::Usage)
        .stderr_has("an actor name is at most 128 characters; this one has 100000");
    assert!(refused.stderr.len() < 2_000, "{}", refused.stderr.len());
    for (name, code) in [("bo\u{202E}b", "U+202E"), ("al\u{200B}ice", "U+200B")] {
        run(&["approve", &run_id, "--actor", name])
            .exit(Exit::Usage)
            .stderr_has(code);
    }
    // The approver sees what is approved before it is.
    run(&["approve", &run_id, "--actor", "bob"])
        .exit(Exit::Ok)
        .stderr_has(&format!(
            "Run {run_id} of gated (sandbox) asks for approval of step 'gated': The change"
        ))
        .stderr_has("  requested by alice on ")
        .stderr_has("  the step makes no vendor write its code shows")
        .stdout_has("approved step 'gated'");
    // A decision is final.
    run(&["deny", &run_id, "--actor", "carol", "--reason", "late"])
        .exit(Exit::Usage)
        .stderr_has("already decided");
    assert_finished(
        child,
        0,
        &[
            "waiting for approval by the security on-call",
            "approved by bob",
            "gated step ran",
        ],
        &[],
    );
    let audit = audit_actions(dir.path());
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["approval.requested", "approval.approved"]);
    assert_eq!(audit[1]["context"]["approver"], "bob");
    // A rehearsal's approval by a name only is recorded as such.
    assert_eq!(audit[1]["context"]["unverified"], true);
    assert!(audit[1]["context"]["host"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    // The evidence pack names the approver.
    let pack = run(&["evidence", &run_id]);
    pack.exit(Exit::Ok);
    let pack = pack.json();
    assert_eq!(pack["approvals"][0]["decision"], "approved");
    assert_eq!(pack["approvals"][0]["approver"], "bob");
    assert_eq!(pack["approvals"][0]["requested_by"], "alice");
    assert_eq!(pack["approvals"][0]["step"], "gated");
    assert_eq!(pack["approvals"][0]["approver_unverified"], true);
}

#[test]
fn a_denial_and_a_timeout_stop_the_step_and_are_recorded_apart() {
    let dir = gated(r#".approval(#{ timeout: "60s" })"#, "");
    let (child, run_id) = start(dir.path(), "gated.rhai");
    cmd(
        dir.path(),
        &[
            "deny",
            &run_id,
            "--actor",
            "bob",
            "--reason",
            "change freeze",
        ],
    )
    .exit(Exit::Ok);
    assert_finished(
        child,
        1,
        &["bob denied the approval: change freeze"],
        &["gated step ran"],
    );

    // Nobody answers: the step fails closed, recorded as a timeout.
    std::fs::write(
        dir.path().join("slow.rhai"),
        runbook(r#".approval(#{ timeout: "1s" })"#, "").replace("\"gated\",", "\"slow\","),
    )
    .unwrap();
    let out = exec(dir.path(), "slow.rhai").run();
    out.exit(Exit::StepFailed)
        .stderr_has("no approval within 1s (recorded as timeout, not as denied)");
    assert!(!out.stdout.contains("gated step ran"));
    let actions: Vec<String> = audit_actions(dir.path())
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "approval.requested",
            "approval.denied",
            "approval.requested",
            "approval.timeout"
        ]
    );
    // A late approval finds the request closed.
    let late = out.last_run_id();
    cmd(dir.path(), &["approve", &late, "--actor", "bob"])
        .exit(Exit::Usage)
        .stderr_has("already decided");
}

/// runbook.toml's policy puts every irreversible step behind an approval.
#[test]
fn the_organisation_policy_gates_irreversible_steps() {
    let dir = gated(
        "",
        r#".irreversible("it deletes the old key").confirm("Go?")"#,
    );
    std::fs::write(
        dir.path().join("runbook.toml"),
        "[policy]\napprove_irreversible = \"1s\"\n",
    )
    .unwrap();
    let out = exec(dir.path(), "gated.rhai").run();
    out.exit(Exit::StepFailed)
        .stdout_has("waiting for approval by another operator (policy: irreversible steps)")
        .stderr_has("recorded as timeout");
    assert!(!out.stdout.contains("gated step ran"));
}

/// The REPL cannot run a step that needs approval: running it by hand would skip the
/// second pair of eyes (and the journal would then let resume skip it too).
#[test]
fn the_repl_refuses_a_step_that_needs_approval() {
    let dir = gated(r#".approval(#{ timeout: "60s" })"#, "");
    let out = Test::in_dir(dir.path())
        .args(&["repl", "gated.rhai", "--sandbox", "--yes"])
        .stdin(":run prepare\n:run gated\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("step 'gated' needs another actor's approval, which the REPL does not ask for");
    assert!(!out.stdout.contains("gated step ran"), "{}", out.stdout);
}

/// A policy runbook.toml cannot say (a duration the engine does not read) refuses the REPL
/// as it refuses exec: before, the REPL read it as "no policy", and `:run` took the
/// irreversible step by hand without an approval.
#[test]
fn a_policy_that_cannot_be_read_refuses_the_repl_as_it_refuses_exec() {
    let dir = gated(
        "",
        r#".irreversible("it deletes the old key").confirm("Go?")"#,
    );
    std::fs::write(
        dir.path().join("runbook.toml"),
        "[policy]\napprove_irreversible = \"1d\"\n",
    )
    .unwrap();
    let said = "runbook.toml [policy]: approve_irreversible = '1d' is not a duration";
    exec(dir.path(), "gated.rhai")
        .run()
        .exit(Exit::Usage)
        .stderr_has(said);
    let out = Test::in_dir(dir.path())
        .args(&["repl", "gated.rhai", "--sandbox", "--yes"])
        .file("typed.toml", "\"gated.type-id\" = \"gated\"\n")
        .args(&["--answers", "typed.toml"])
        .stdin(":run prepare\n:run gated\n")
        .run();
    out.exit(Exit::Usage).stderr_has(said);
    assert_lacks("stdout", &out.stdout, "gated step ran");
    assert_lacks("stderr", &out.stderr, "gated step ran");
}

/// A decision that does not name the request (one left from an earlier request, or
/// written by hand) never passes the step: the request times out, closed.
#[test]
fn a_stale_decision_never_passes_the_step() {
    let dir = gated(r#".approval(#{ timeout: "2s" })"#, "");
    let (child, run_id) = start(dir.path(), "gated.rhai");
    let forged = dir
        .path()
        .join(format!("state/approvals/{run_id}.decision"));
    std::fs::write(
        &forged,
        r#"{"nonce":"not-this-request","verdict":"approved","by":"mallory","at":"2026-12-02T00:00:00Z"}"#,
    )
    .unwrap();
    assert_finished(child, 1, &["recorded as timeout"], &["gated step ran"]);
}

/// An ed25519 key pair made by ssh-keygen in `dir`: the private key's path and the
/// `type base64` public half.
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    (path, public.join(" "))
}

/// In production, four eyes stands on proven identities: on the file store, SSH signatures
/// checked against the team's allowed signers. A name alone cannot ask or approve; a key
/// cannot approve its own request or speak for another principal; a decision written into
/// the store by hand is not accepted by the run.
#[test]
fn production_four_eyes_needs_ssh_signed_identities() {
    // No vendor module and no egress: this runbook's run is recorded as production.
    let dir = gated(
        r#".approval(#{ by: "the security on-call", timeout: "60s" })"#,
        "",
    );
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (alice, alice_pub) = ssh_key(&keys, "alice");
    let (bob, bob_pub) = ssh_key(&keys, "bob");
    let (mallory, _) = ssh_key(&keys, "mallory");
    let allowed = keys.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "alice@example.com {alice_pub}\nbob@example.com namespaces=\"runbook-approval\" {bob_pub}\n"
        ),
    )
    .unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let production = |actor: &str| {
        Test::in_dir(dir.path())
            .args(&["exec", "gated.rhai", "--yes", "--actor", actor])
            .env("RUNBOOK_ALLOWED_SIGNERS", &path(&allowed))
    };

    // A label asks: refused before anyone is asked, and the step does not run.
    let unsigned = production("alice@example.com").run();
    unsigned
        .exit(Exit::StepFailed)
        .stderr_has("step 'gated' needs another person's approval, and this run writes to production: four eyes there needs proven identities, and this run's actor is alice@example.com (unverified label)")
        .stderr_has("[identity] ssh_key and allowed_signers");
    assert!(unsigned.stdout.contains("prepared"));
    assert!(!unsigned.stdout.contains("gated step ran"));
    assert!(!dir
        .path()
        .join(format!("state/approvals/{}.json", unsigned.last_run_id()))
        .exists());

    // A key the allowed signers file does not list cannot ask either.
    production("alice@example.com")
        .env("RUNBOOK_SSH_KEY", &path(&mallory))
        .run()
        .exit(Exit::StepFailed)
        .stderr_has("the request's SSH signature is not accepted: the key that signed is not in the allowed signers file");

    // Alice signs her request; the run waits.
    let run = production("alice@example.com")
        .env("RUNBOOK_SSH_KEY", &path(&alice))
        .spawn();
    let run_id = waiting_run(dir.path());
    // `approve RUN ARGS…` with the team's allowed signers.
    let approve_run = |run_id: &str, args: &[&str]| {
        Test::in_dir(dir.path())
            .args(&[&["approve", run_id][..], args].concat())
            .env("RUNBOOK_ALLOWED_SIGNERS", &path(&allowed))
            .run()
    };
    let approve = |args: &[&str]| approve_run(&run_id, args);
    // Bob by name only.
    approve(&["--actor", "bob@example.com"])
        .exit(Exit::Usage)
        .stderr_has("  requested by alice@example.com (signed with an SSH key) on ")
        .stderr_has(&format!("run {run_id} writes to production, and four eyes there needs proven identities: the request comes from SSH key SHA256:"))
        .stderr_has("the decision from bob@example.com (unverified label)");
    // Alice's own key, under Bob's name or her own.
    approve(&["--actor", "bob@example.com", "--ssh-key", &path(&alice)])
        .exit(Exit::Usage)
        .stderr_has("the decision's SSH signature is not accepted: the key that signed belongs to 'alice@example.com' in ");
    approve(&["--actor", "alice@example.com", "--ssh-key", &path(&alice)])
        .exit(Exit::Usage)
        .stderr_has("was requested and decided with the same SSH key (SHA256:");
    // Bob's key speaking for Alice.
    approve(&["--actor", "alice@example.com", "--ssh-key", &path(&bob)])
        .exit(Exit::Usage)
        .stderr_has("the key that signed belongs to 'bob@example.com'");
    // Nothing of that was stored: the run still waits. A decision written into the store by
    // hand with Bob's name and no signature is a refusal to the run, never an approval.
    let forged = dir
        .path()
        .join(format!("state/approvals/{run_id}.decision"));
    assert!(!forged.exists());
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("state/approvals/{run_id}.json")))
            .unwrap(),
    )
    .unwrap();
    let digest = serde_json::from_value::<runbook_core::approval::Request>(request.clone())
        .unwrap()
        .digest();
    std::fs::write(
        &forged,
        serde_json::json!({
            "nonce": request["nonce"], "verdict": "approved", "request_digest": digest,
            "by": "bob@example.com", "at": "2026-12-04T00:00:00Z", "host": "h",
            "role": "bob_login"
        })
        .to_string(),
    )
    .unwrap();
    assert_finished(
        run,
        1,
        &[
            "is not accepted.",
            "the decision from bob@example.com (unverified label)",
        ],
        &["gated step ran"],
    );
    let refused = audit_actions(dir.path())
        .into_iter()
        .rfind(|e| e["action"] == "approval.refused")
        .unwrap();
    assert_eq!(refused["context"]["claimed_by"], "bob@example.com");
    assert_eq!(refused["context"]["verdict"], "approved");

    // Alice changes her request after filing it (same nonce, a harmless title, signed
    // again with her own key), Bob approves what he is shown: the run holds the request it
    // filed, and refuses an approval of another.
    let run = production("alice@example.com")
        .env("RUNBOOK_SSH_KEY", &path(&alice))
        .spawn();
    let run_id = waiting_run(dir.path());
    let filed = dir.path().join(format!("state/approvals/{run_id}.json"));
    let mut swapped: runbook_core::approval::Request =
        serde_json::from_str(&std::fs::read_to_string(&filed).unwrap()).unwrap();
    swapped.title = "Read the dashboard (harmless)".into();
    swapped.signature =
        Some(runbook_core::approval::ssh::sign(&alice, &swapped.signed_text()).unwrap());
    std::fs::write(&filed, serde_json::to_string(&swapped).unwrap()).unwrap();
    approve_run(
        &run_id,
        &["--actor", "bob@example.com", "--ssh-key", &path(&bob)],
    )
    .exit(Exit::Ok)
    .stderr_has("Read the dashboard (harmless)");
    assert_finished(
        run,
        1,
        &["the decision answers a request other than the one this run filed"],
        &["gated step ran"],
    );

    // Again, and Bob approves with his own key: the step runs, and the record says which
    // key made the decision.
    let run = production("alice@example.com")
        .env("RUNBOOK_SSH_KEY", &path(&alice))
        .spawn();
    let run_id = waiting_run(dir.path());
    approve_run(
        &run_id,
        &["--actor", "bob@example.com", "--ssh-key", &path(&bob)],
    )
    .exit(Exit::Ok)
    .stdout_has("approved step 'gated'");
    assert_finished(
        run,
        0,
        &[
            "approved by bob@example.com (SSH key SHA256:",
            "gated step ran",
        ],
        &[],
    );
    let approved = audit_actions(dir.path())
        .into_iter()
        .rfind(|e| e["action"] == "approval.approved")
        .unwrap();
    let key = approved["context"]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("SHA256:"), "{approved}");
    assert!(
        approved["context"].get("unverified").is_none(),
        "{approved}"
    );
    let pack = cmd(dir.path(), &["evidence", &run_id]).json();
    let approval = &pack["approvals"][0];
    assert_eq!(approval["approver"], "bob@example.com");
    assert_eq!(approval["approver_key"], key.as_str());
    // What an auditor needs to check the signature later, against the team's file.
    let text = approval["signed_text"].as_str().unwrap();
    assert!(text.starts_with("runbook-approval-decision/1\n"), "{text}");
    assert!(text.contains("verdict \"approved\"\n"), "{text}");
    let sig = approval["signature"].as_str().unwrap();
    assert_eq!(
        runbook_core::approval::ssh::verify(&allowed, text, sig, "bob@example.com")
            .unwrap()
            .fingerprint,
        key
    );
    assert_eq!(
        approval["allowed_signers_sha256"].as_str().map(str::len),
        Some(64)
    );
}

/// The run waiting for an approval in `dir` (the newest request filed there).
fn waiting_run(dir: &Path) -> String {
    let approvals = dir.join("state/approvals");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: Option<String> = std::fs::read_dir(&approvals).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter(|p| !p.with_extension("decision").exists())
                .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
                .next()
        });
        if let Some(run_id) = pending {
            return run_id;
        }
        assert!(
            Instant::now() < deadline,
            "no run is waiting for an approval"
        );
        std::thread::yield_now();
    }
}

/// A "timeout" written to the store by someone else before the request's deadline (any
/// login with write access to the approvals) is refused, recorded as such, and the step
/// does not run. Before, the waiting run took it at once as its own timeout, audited as
/// `approval.timeout`, nobody credited (cold review of team mode).
#[test]
fn a_timeout_the_run_did_not_write_is_refused() {
    let dir = gated(
        r#".approval(#{ by: "the security on-call", timeout: "60s" })"#,
        "",
    );
    let (child, run_id) = start(dir.path(), "gated.rhai");
    let approvals = dir.path().join("state/approvals");
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(approvals.join(format!("{run_id}.json"))).unwrap(),
    )
    .unwrap();
    let forged = serde_json::json!({
        "nonce": request["nonce"],
        "verdict": "timeout",
        "at": "2026-12-07T00:00:00Z",
    });
    std::fs::write(
        approvals.join(format!("{run_id}.decision")),
        forged.to_string(),
    )
    .unwrap();
    assert_finished(
        child,
        1,
        &[
            "a timeout this run did not write",
            "before the request's deadline",
        ],
        &["gated step ran"],
    );
    let actions: Vec<String> = audit_actions(dir.path())
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["approval.requested", "approval.refused"]);
}
