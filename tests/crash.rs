//! Runs that survive crashes: the engine is killed (SIGKILL) at every step boundary and
//! inside every step that writes, against a separate `runbook sandbox` whose vendors outlive
//! it; `resume` then completes the rotation, or `rollback` restores the old token.

use crate::support::{
    assert_rotated, assert_safe, current_infisical, fixture, live_tokens, Output, Rig, CANARIES,
    OLD_TOKEN,
};
use serde_json::Value;

fn crash_then_resume(point: &str) {
    let rig = Rig::new();
    let crashed = rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", point)],
    );
    assert_eq!(
        crashed.code, -9,
        "{point}: the engine should have been killed\n{}",
        crashed.stderr
    );
    assert_safe(&rig.state(), &format!("{point}, crashed"));
    let runs = rig.runbook(&["runs", "--json"], &[]);
    let listed: Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(
        listed[0]["status"], "interrupted",
        "{point}: runs shows the dead run"
    );
    // A new rotation is refused while the dead run holds the lock.
    let blocked = rig.runbook(&["exec", "postmark", "--yes"], &[]);
    assert_eq!(blocked.code, 2, "{point}: {}", blocked.stderr);
    assert!(
        blocked.stderr.contains("this rotation is already running"),
        "{}",
        blocked.stderr
    );
    // A token generated but not yet stored exists only in the run and the operator's hands:
    // resume asks for it again (here, from an answers file).
    let fresh: Vec<String> = live_tokens(&rig.state())
        .into_iter()
        .filter(|t| t != OLD_TOKEN)
        .collect();
    let answers = match fresh.as_slice() {
        [one] => format!("\"resume.new_token\" = \"{one}\"\n"),
        _ => String::new(),
    };
    std::fs::write(rig.path().join("answers.toml"), answers).unwrap();
    let resumed = rig.runbook(
        &[
            "resume",
            &rig.run_id(),
            "--yes",
            "--answers",
            "answers.toml",
        ],
        &[],
    );
    assert_eq!(
        resumed.code, 0,
        "{point}: resume failed\n{}\n{}",
        resumed.stdout, resumed.stderr
    );
    assert_rotated(&rig.state(), point);
    // The summary counts the whole run, not only the session that finished it.
    assert!(
        resumed.stdout.contains("succeeded in ")
            && resumed.stdout.contains("(this session; ")
            && resumed.stdout.contains("s in steps across 2 sessions)"),
        "{point}: {}",
        resumed.stdout
    );
    rig.assert_no_secrets_on_disk();
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    assert_eq!(
        audit
            .matches("\"action\":\"secret.rotate.completed\"")
            .count(),
        1,
        "{point}: exactly one completion entry"
    );
}

const STEPS: [&str; 8] = [
    "precheck",
    "generate",
    "validate",
    "store",
    "propagate",
    "verify",
    "revoke",
    "audit",
];

#[test]
fn crash_at_every_step_boundary_then_resume_completes() {
    for step in STEPS {
        crash_then_resume(&format!("after:{step}"));
    }
}

#[test]
fn crash_inside_every_writing_step_then_resume_completes() {
    // `inside` fires right after the step's first write: the effect happened, the outcome
    // was never journalled.
    for step in [
        "generate",
        "validate",
        "store",
        "propagate",
        "verify",
        "revoke",
    ] {
        crash_then_resume(&format!("inside:{step}"));
    }
}

#[test]
fn crash_inside_propagate_then_rollback_restores_the_old_token_everywhere() {
    let rig = Rig::new();
    let crashed = rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "inside:propagate")],
    );
    assert_eq!(crashed.code, -9);
    let rolled = rig.runbook(&["rollback", &rig.run_id(), "--yes", "--json"], &[]);
    assert_eq!(rolled.code, 0, "{}\n{}", rolled.stdout, rolled.stderr);
    let report: Value = rolled.report();
    assert_eq!(report["status"], "rolled_back");
    let state = rig.state();
    assert_eq!(current_infisical(&state), OLD_TOKEN);
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"],
            OLD_TOKEN
        );
    }
    assert_eq!(
        live_tokens(&state).len(),
        2,
        "the new token is left for diagnosis"
    );
    assert_safe(&state, "after rollback");
    let journal = std::fs::read_to_string(
        rig.path()
            .join(format!("state/runs/{}.jsonl", rig.run_id())),
    )
    .unwrap();
    for step in ["propagate", "store", "generate"] {
        assert!(
            journal.contains(&format!(
                "\"type\":\"undo_finished\",\"step\":\"{step}\",\"outcome\":\"completed\""
            )),
            "{step} undo journalled"
        );
    }
    rig.assert_no_secrets_on_disk();
}

#[test]
fn rollback_after_the_revocation_stops_and_says_why() {
    let rig = Rig::new();
    let crashed = rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "after:revoke")],
    );
    assert_eq!(crashed.code, -9);
    let rolled = rig.runbook(&["rollback", &rig.run_id(), "--yes"], &[]);
    assert_eq!(rolled.code, 1);
    assert!(
        rolled.stderr.contains(
            "cannot roll back past step 'revoke': the old token is deleted and cannot be restored"
        ),
        "{}",
        rolled.stderr
    );
    assert!(rolled.stderr.contains("rotate afresh"));
}

#[test]
fn resume_refuses_a_changed_runbook_unless_forced() {
    let rig = Rig::new();
    let book = rig.path().join("postmark.rhai");
    std::fs::copy(
        format!("{}/runbooks/postmark.rhai", env!("CARGO_MANIFEST_DIR")),
        &book,
    )
    .unwrap();
    let crashed = rig.runbook(
        &["exec", "postmark.rhai", "--yes"],
        &[("RUNBOOK_CRASH_AT", "after:store")],
    );
    assert_eq!(crashed.code, -9);
    let text = std::fs::read_to_string(&book).unwrap() + "\n// an edit after the crash\n";
    std::fs::write(&book, text).unwrap();
    let refused = rig.runbook(&["resume", &rig.run_id(), "--yes"], &[]);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("the runbook changed since this run started: "),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("postmark.rhai changed"));
    let forced = rig.runbook(&["resume", &rig.run_id(), "--yes", "--force"], &[]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced
        .stderr
        .contains("resuming with a changed runbook (--force): "));
    assert_rotated(&rig.state(), "forced resume");
}

#[test]
fn resume_refuses_a_different_token() {
    let rig = Rig::new();
    // After `generate`, before `store`: the new token exists only in the run (and the
    // operator's clipboard), so resume asks for it.
    let crashed = rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "after:generate")],
    );
    assert_eq!(crashed.code, -9);
    std::fs::write(
        rig.path().join("wrong.toml"),
        "\"resume.new_token\" = \"c0ffee00-0000-4000-8000-0000000000ff\"\n",
    )
    .unwrap();
    let refused = rig.runbook(
        &["resume", &rig.run_id(), "--yes", "--answers", "wrong.toml"],
        &[],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the value entered for ctx.new_token is not the one this run used"),
        "{}",
        refused.stderr
    );
    // With the right token it completes.
    let state = rig.state();
    let new = live_tokens(&state)
        .into_iter()
        .find(|t| t != OLD_TOKEN)
        .unwrap();
    std::fs::write(
        rig.path().join("right.toml"),
        format!("\"resume.new_token\" = \"{new}\"\n"),
    )
    .unwrap();
    let resumed = rig.runbook(
        &["resume", &rig.run_id(), "--yes", "--answers", "right.toml"],
        &[],
    );
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_rotated(&rig.state(), "resumed with the right token");
}

#[test]
fn resume_of_an_unknown_run_is_a_usage_error() {
    let rig = Rig::new();
    let out = rig.runbook(&["resume", "20990101T000000Z-abcdef"], &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no run '20990101T000000Z-abcdef' in "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`runbook runs` lists the runs"));
}

#[test]
fn two_concurrent_rotations_exactly_one_runs() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // The first run's precheck waits on a slow Postmark while the second one starts.
    // At the top: after the tables it would belong to the last one.
    let scenario = "faults = [\"postmark:GET:/server=latency=3000:once\"]\n".to_string()
        + std::fs::read_to_string(fixture("sop_canary.toml"))
            .unwrap()
            .as_str();
    let scenario_path = dir.path().join("slow.toml");
    std::fs::write(&scenario_path, scenario).unwrap();
    let rig = Rig::with_scenario(&scenario_path);
    let mut first = rig
        .command(&["exec", "postmark", "--yes"], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("Step 1/8") {
            break;
        }
    }
    // Same secret, a different log window: still the same rotation, still refused.
    let second = rig.runbook(
        &["exec", "postmark", "--yes", "--param", "log_lines=301"],
        &[],
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = first.wait().unwrap();
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("this rotation is already running: run "),
        "{}",
        second.stderr
    );
    assert!(status.success(), "the first run completes: {rest:?}");
    assert_rotated(&rig.state(), "the one run");
}

#[test]
fn repl_attach_inspects_and_advances_a_stopped_run_that_resume_then_finishes() {
    let rig = Rig::new();
    let crashed = rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "after:store")],
    );
    assert_eq!(crashed.code, -9);
    let run_id = rig.run_id();
    let attached = rig.runbook_stdin(
        &["repl", "--attach", &run_id, "--yes"],
        &[],
        ":steps\nctx.new_version\n:run propagate\n",
    );
    assert_eq!(attached.code, 0, "{}\n{}", attached.stdout, attached.stderr);
    assert!(
        attached.stdout.contains("4. store        done"),
        "{}",
        attached.stdout
    );
    assert!(
        attached.stdout.contains("\n3\n"),
        "ctx restored: {}",
        attached.stdout
    );
    assert!(
        attached.stderr.contains("✓ step propagate"),
        "{}",
        attached.stderr
    );
    let state = rig.state();
    let new = current_infisical(&state);
    assert_eq!(
        state["heroku"]["apps"]["raxx-api-prod"]["config_vars"]["POSTMARK_SERVER_TOKEN"],
        new.as_str()
    );
    // resume continues after what the REPL did.
    let resumed = rig.runbook(&["resume", &run_id, "--yes"], &[]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stdout.contains("Resuming at step 6/8 · verify"),
        "{}",
        resumed.stdout
    );
    assert_rotated(&rig.state(), "attached then resumed");
}

#[test]
fn a_stdlib_rotation_resumes_after_a_crash_by_recovering_its_keys_from_infisical() {
    let rig = Rig::with_scenario(&crate::support::root().join("runbooks/sandbox/sendgrid.toml"));
    for point in ["after:store", "inside:propagate"] {
        let crashed = rig.runbook(
            &["exec", "sendgrid", "--yes"],
            &[("RUNBOOK_CRASH_AT", point)],
        );
        assert_eq!(crashed.code, -9, "{point}: {}", crashed.stderr);
        let resumed = rig.runbook(&["resume", &rig.run_id(), "--yes"], &[]);
        assert_eq!(
            resumed.code, 0,
            "{point}: resume failed\n{}\n{}",
            resumed.stdout, resumed.stderr
        );
        assert!(
            !resumed.stderr.contains("asking instead"),
            "{point}: every key was recovered\n{}",
            resumed.stderr
        );
        let state = rig.state();
        let secrets = state["infisical"]["secrets"].as_array().unwrap();
        let key = secrets
            .iter()
            .find(|s| s["secretKey"] == "SENDGRID_API_KEY")
            .unwrap();
        let current = key["versions"].as_array().unwrap().last().unwrap()["secretValue"]
            .as_str()
            .unwrap()
            .to_string();
        for app in ["raxx-api-prod", "raxx-api-staging"] {
            assert_eq!(
                state["heroku"]["apps"][app]["config_vars"]["SENDGRID_API_KEY"],
                current.as_str(),
                "{point}: {app}"
            );
        }
        let live: Vec<&str> = state["scripted"]["sendgrid"]["collections"]["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["api_key"].as_str().unwrap())
            .collect();
        assert!(
            live.contains(&current.as_str()),
            "{point}: Infisical holds a live key"
        );
        assert!(
            !live.contains(&"SG.sandbox-current-key.00000000000000000000000"),
            "{point}: the old key is revoked"
        );
    }
}

/// The secret canary: the whole CLI surface with known token values, then a scan of every
/// output and every file the runs wrote. Zero hits.
#[test]
fn no_secret_reaches_any_output_or_file_across_the_cli() {
    let rig = Rig::new();
    let mut outputs: Vec<String> = Vec::new();
    let mut keep = |r: Output| {
        outputs.push(r.stdout);
        outputs.push(r.stderr);
    };
    let canary = fixture("sop_canary.toml");
    let canary = canary.to_str().unwrap();
    // In-process sandbox: a run, a dry run, a failing run.
    keep(rig.runbook(
        &[
            "exec",
            "postmark",
            "--sandbox",
            "--scenario",
            canary,
            "--yes",
            "--json",
        ],
        &[],
    ));
    keep(rig.runbook(
        &[
            "exec",
            "postmark",
            "--sandbox",
            "--scenario",
            canary,
            "--dry-run",
            "--json",
        ],
        &[],
    ));
    keep(rig.runbook(
        &[
            "exec",
            "postmark",
            "--sandbox",
            "--scenario",
            canary,
            "--yes",
            "--fault",
            "postmark:POST:/email=500",
        ],
        &[],
    ));
    // Against the separate sandbox: crash + resume, crash + rollback.
    keep(rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "after:store")],
    ));
    keep(rig.runbook(&["resume", &rig.run_id(), "--yes"], &[]));
    keep(rig.runbook(
        &["exec", "postmark", "--yes"],
        &[("RUNBOOK_CRASH_AT", "inside:propagate")],
    ));
    keep(rig.runbook(&["rollback", &rig.run_id(), "--yes", "--json"], &[]));
    // The REPL, piped: reading and printing secrets every way.
    keep(rig.runbook_stdin(
        &["repl", "postmark"],
        &[],
        "let t = infisical::secret(\"POSTMARK_SERVER_TOKEN\").value;\nt\nprint(t);\nprint(`${t}`);\nheroku::config(\"raxx-api-prod\")\npostmark::server(t)\n:run precheck\n:ctx\n",
    ));
    // Reading what the runs left behind, and errors.
    for args in [
        vec!["doc", "postmark"],
        vec!["audit", "show", "--json"],
        vec!["audit", "verify"],
        vec!["runs", "--json"],
        vec!["show", "postmark"],
        vec!["resume", "no-such-run"],
    ] {
        keep(rig.runbook(&args, &[]));
    }
    // Every token the Postmark simulator ever issued, and the canaries.
    let secrets = rig.secrets();
    assert!(secrets.len() > CANARIES.len() + 2, "the runs issued tokens");
    for (i, out) in outputs.iter().enumerate() {
        for s in &secrets {
            assert!(
                !out.contains(s.as_str()),
                "output {i} shows a secret:\n{out}"
            );
        }
    }
    rig.assert_no_secrets_on_disk();
}

/// Every write route of the Postmark runbook with its answer lost once: the run either
/// completes (the write was safe to repeat and was retried) or stops; resume, told to run
/// the step again, completes the rotation; the world is safe at every point.
#[test]
fn an_answer_lost_at_every_write_then_resume_completes() {
    for route in [
        "postmark:POST:/email",
        "infisical:PATCH:/api/v4/secrets/POSTMARK_SERVER_TOKEN",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars",
        "heroku:DELETE:/apps/raxx-api-prod/dynos",
        "raptor:POST:/api/notifications/test-email",
    ] {
        let rig = Rig::new();
        rig.sandbox.add_fault(&format!("{route}=lost:once"));
        let first = rig.runbook(&["exec", "postmark", "--yes", "--no-rollback"], &[]);
        assert_safe(&rig.state(), &format!("{route}, first run"));
        if first.code == 0 {
            assert_rotated(&rig.state(), route);
            continue;
        }
        assert_eq!(first.code, 1, "{route}: {}", first.stderr);
        let step = serde_json::from_str::<Value>(&rig.runbook(&["runs", "--json"], &[]).stdout)
            .unwrap()[0]["last_step"]
            .as_str()
            .unwrap()
            .to_string();
        let fresh: Vec<String> = live_tokens(&rig.state())
            .into_iter()
            .filter(|t| t != OLD_TOKEN)
            .collect();
        let mut answers = format!("\"{step}.rerun\" = \"rerun\"\n");
        if let [one] = fresh.as_slice() {
            answers.push_str(&format!("\"resume.new_token\" = \"{one}\"\n"));
        }
        std::fs::write(rig.path().join("answers.toml"), answers).unwrap();
        let resumed = rig.runbook(
            &[
                "resume",
                &rig.run_id(),
                "--yes",
                "--answers",
                "answers.toml",
            ],
            &[],
        );
        assert_eq!(resumed.code, 0, "{route} at {step}: {}", resumed.stderr);
        assert_rotated(&rig.state(), route);
    }
}
