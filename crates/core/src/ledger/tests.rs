use super::*;
use crate::run::{Effect, Entry, RunStatus, Target};
use serde_json::json;

/// A journal written by the string-typed engine before events were typed.
const OLD: &str = r#"{"t":"2026-11-20T10:00:00Z","kind":"run.start","run_id":"20261120T100000Z-abcdef","runbook":"postmark-server-token","source":{"path":"/r/postmark.rhai","sha256":"00","modules":[]},"params":{"apps":["a"]},"actor":"ops@vm","host":"vm","pid":7,"mode":"exec","sandbox":false}
{"t":"2026-11-20T10:00:01Z","kind":"step.intent","step":"precheck","attempt":1}
{"t":"2026-11-20T10:00:02Z","kind":"step.outcome","step":"precheck","status":"completed","duration_ms":12,"ctx":{"server_id":4242}}
{"t":"2026-11-20T10:00:03Z","kind":"step.intent","step":"store","attempt":1}
{"t":"2026-11-20T10:00:03Z","kind":"write.intent","step":"store","function":"infisical::set_secret","target":"POSTMARK_SERVER_TOKEN","detail":{}}
{"t":"2026-11-20T10:00:04Z","kind":"step.outcome","step":"store","status":"failed","ok":false,"error":"boom"}
{"t":"2026-11-20T10:00:05Z","kind":"undo.intent","step":"precheck"}
{"t":"2026-11-20T10:00:06Z","kind":"run.end","status":"rolled_back"}
"#;

fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("20261120T100000Z-abcdef.jsonl");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

fn at(t: &str, event: Event) -> Stamped {
    Stamped {
        v: VERSION,
        run_id: "r1".into(),
        time: t.into(),
        event,
    }
}

pub(crate) fn started(target: Target) -> Event {
    Event::RunStarted(RunStarted {
        runbook: "rb".into(),
        source: SourceHashes {
            path: "/r/rb.rhai".into(),
            sha256: "00".into(),
            modules: Vec::new(),
        },
        params: json!({}),
        actor: "ops".into(),
        host: "vm".into(),
        pid: 1,
        target,
        effect: Effect::Apply,
        entry: Entry::Exec,
        rotation: None,
        environment: None,
        login: None,
    })
}

pub(crate) fn finished(status: RunStatus) -> Event {
    Event::RunFinished(RunFinished {
        status,
        error: None,
        duration_ms: None,
        rate_limit_wait_ms: None,
        audit_head: None,
    })
}

fn resumed(entry: Entry) -> Event {
    Event::RunResumed(RunResumed {
        actor: "other@vm".into(),
        host: "vm".into(),
        pid: 9,
        entry,
        login: None,
    })
}

/// A production run of `events`, stamped t1, t2, … after its start at t0.
fn production_run(events: Vec<Event>) -> Ledger {
    let start = std::iter::once(started(Target::Production));
    let stamped: Vec<Stamped> = start
        .chain(events)
        .enumerate()
        .map(|(i, e)| at(&format!("t{i}"), e))
        .collect();
    Ledger::fold(&stamped).unwrap()
}

fn undo_started(step: &str) -> Event {
    Event::UndoStarted { step: step.into() }
}

fn undo_completed(step: &str) -> Event {
    Event::UndoFinished(UndoFinished {
        step: step.into(),
        outcome: StepEnd::Completed,
        error: None,
        ctx: None,
    })
}

pub(crate) fn sent(step: &str, target: &str) -> Event {
    Event::Write(WriteSent {
        step: step.into(),
        function: "heroku::set_config".into(),
        target: target.into(),
        detail: json!({"vars": {"T": "hmac:aa"}}),
        idempotent: true,
        undo: false,
    })
}

pub(crate) fn ended(step: &str, target: &str, outcome: WriteOutcome) -> Event {
    Event::WriteOutcome(WriteSettled {
        answer: None,
        step: step.into(),
        function: "heroku::set_config".into(),
        target: target.into(),
        outcome,
        filed: None,
        undo: false,
    })
}

#[test]
fn reads_a_journal_written_before_events_were_typed() {
    let (_d, p) = write(OLD);
    let events = read(&p).unwrap();
    assert_eq!(events.len(), 8);
    let l = Ledger::fold(&events).unwrap();
    assert_eq!(l.run_id, "20261120T100000Z-abcdef");
    assert_eq!(l.start.target, Target::Production);
    assert_eq!(l.start.entry, Entry::Exec);
    assert_eq!(l.outcome(), Some(RunStatus::RolledBack));
    assert_eq!(l.settled(), Some(RunStatus::RolledBack));
    assert_eq!(l.state_of("precheck"), Some(StepState::UndoStarted));
    assert_eq!(l.state_of("store"), Some(StepState::Ended(StepEnd::Failed)));
    assert_eq!(l.ctx, Some(json!({"server_id": 4242})));
    // The write whose outcome was never recorded may have applied.
    assert_eq!(l.writes.len(), 1);
    assert_eq!(l.writes[0].outcome, WriteOutcome::Unknown);
}

/// An old in-process rehearsal is still a rehearsal; an old dry run still a dry run.
#[test]
fn old_modes_become_a_target_an_effect_and_an_entry() {
    let sandbox = OLD.replacen(
        "\"mode\":\"exec\",\"sandbox\":false",
        "\"mode\":\"sandbox\",\"sandbox\":true",
        1,
    );
    let (_d, p) = write(&sandbox);
    let l = Ledger::fold(&read(&p).unwrap()).unwrap();
    assert_eq!(l.start.target, Target::Sandbox);
    assert!(l.is_rehearsal());
    let dry = OLD.replacen("\"mode\":\"exec\"", "\"mode\":\"dry-run\"", 1);
    let (_d, p) = write(&dry);
    let l = Ledger::fold(&read(&p).unwrap()).unwrap();
    assert_eq!(l.start.effect, Effect::DryRun);
    assert!(!l.is_production());
}

/// What is written is read back as the same events, and folds the same.
#[test]
fn events_read_back_as_written() {
    let events = vec![
        at("t0", started(Target::Loopback)),
        at(
            "t1",
            Event::StepStarted(StepStarted {
                step: "propagate".into(),
                attempt: Some(1),
                out_of_order: false,
            }),
        ),
        at("t2", sent("propagate", "app-a")),
        at("t3", ended("propagate", "app-a", WriteOutcome::Applied)),
        // Its `kind` field must not make it read as the format before events.
        at(
            "t3",
            Event::Decision(Decision {
                id: "propagate.on-failure".into(),
                kind: Question::Choose,
                question: "Retry?".into(),
                answer: "stop".into(),
                by: AnsweredBy::Yes,
            }),
        ),
        at("t4", finished(RunStatus::Failed)),
    ];
    let text: String = events.iter().map(|e| encode(e) + "\n").collect();
    let back = parse(&text, Path::new("x.jsonl"), "r1").unwrap();
    assert_eq!(back, events);
    let l = Ledger::fold(&back).unwrap();
    assert_eq!(l.changes().len(), 1);
    assert_eq!(l.last_end(), Some(RunStatus::Failed));
}

/// A refused rollback of a rotation that succeeded leaves the rotation succeeded; the
/// attempt is listed after it. A resume that finishes a stopped run settles it.
#[test]
fn later_attempts_never_rewrite_how_the_run_ended() {
    let l = production_run(vec![
        finished(RunStatus::Succeeded),
        resumed(Entry::Rollback),
        finished(RunStatus::Failed),
        resumed(Entry::Resume),
    ]);
    assert_eq!(l.outcome(), Some(RunStatus::Succeeded));
    assert_eq!(l.settled(), Some(RunStatus::Succeeded));
    assert_eq!(l.takeovers().len(), 2);
    assert_eq!(l.takeovers()[0].entry, Entry::Rollback);
    assert_eq!(l.takeovers()[0].ended(), Some(RunStatus::Failed));
    assert_eq!(
        l.last_end(),
        None,
        "the resume's process never recorded an end"
    );

    let l = production_run(vec![
        finished(RunStatus::Failed),
        resumed(Entry::Resume),
        finished(RunStatus::Succeeded),
    ]);
    assert_eq!(l.outcome(), Some(RunStatus::Failed));
    assert_eq!(l.settled_at(), Some((RunStatus::Succeeded, "t3")));
    assert!(l.is_production());
}

/// A write's outcome is one of five; an undo's writes are not effects of the step, and an
/// undone step's writes are no longer in effect.
#[test]
fn writes_fold_to_what_is_in_effect() {
    let l = Ledger::fold(&[
        at("t0", started(Target::Production)),
        at("t1", sent("propagate", "app-a")),
        at("t1", sent("propagate", "app-b")),
        at("t2", ended("propagate", "app-a", WriteOutcome::Applied)),
        at("t2", ended("propagate", "app-b", WriteOutcome::NotSent)),
        at("t3", sent("store", "SECRET")),
    ])
    .unwrap();
    let states: Vec<WriteOutcome> = l.writes.iter().map(|w| w.outcome).collect();
    assert_eq!(
        states,
        [
            WriteOutcome::Applied,
            WriteOutcome::NotSent,
            WriteOutcome::Unknown
        ]
    );
    assert_eq!(l.changes().len(), 2, "not sent is not a change");

    let mut l = l;
    for e in [
        at("t4", undo_started("propagate")),
        at("t4", sent("propagate", "app-a")),
        at("t5", ended("propagate", "app-a", WriteOutcome::Applied)),
        at("t6", undo_completed("propagate")),
    ] {
        l.apply(&e);
    }
    assert_eq!(l.writes.len(), 1);
    assert_eq!(l.writes[0].step, "store");
    assert_eq!(l.state_of("propagate"), Some(StepState::Undone));
}

/// A run is a rehearsal when a vendor answered as a simulator, whatever its target said.
#[test]
fn a_simulator_answer_makes_a_run_a_rehearsal() {
    let mut l = Ledger::fold(&[at("t0", started(Target::Loopback))]).unwrap();
    assert!(!l.is_rehearsal());
    assert_eq!(l.target_label(), "loopback");
    l.apply(&at(
        "t1",
        Event::SimulatorAnswered {
            vendor: "heroku".into(),
        },
    ));
    assert!(l.is_rehearsal());
    assert!(!l.is_production());
    assert_eq!(l.target_label(), "rehearsal");
}

/// A step whose approval was denied is not run, and says why; it did not die mid-way.
#[test]
fn a_denied_approval_stops_the_run_at_its_step() {
    let l = Ledger::fold(&[
        at("t0", started(Target::Production)),
        at(
            "t1",
            Event::Approval(Approval {
                step: "revoke".into(),
                status: ApprovalStatus::Denied,
                requested_by: Some("alice".into()),
                by: None,
                approver: Some("bob".into()),
                approver_host: None,
                approver_role: None,
                approver_key: None,
                approver_unverified: true,
                signed_text: None,
                signature: None,
                allowed_signers_sha256: None,
                reason: Some("not now".into()),
                timeout_secs: None,
                nonce: None,
            }),
        ),
    ])
    .unwrap();
    assert_eq!(l.state_of("revoke"), Some(StepState::Blocked));
    let stop = l.stop.unwrap();
    assert_eq!(stop.step, "revoke");
    assert_eq!(stop.error, "bob denied the approval: not now");
}

#[test]
fn a_torn_last_line_is_dropped_but_damage_elsewhere_is_an_error() {
    let (_d, p) = write(&format!("{OLD}{{\"t\":\"x\",\"kind\":\"st"));
    assert_eq!(read(&p).unwrap().len(), 8);
    // A last line ended by its newline was written whole (the store's append writes a line
    // and its newline at once, and ends a torn one before appending): if it cannot be read,
    // it was damaged, and dropping it could drop the record that unsettles the run.
    let (_d, p) = write(&format!("{OLD}{{\"t\":\"x\",\"kind\":\"st\n"));
    match read(&p) {
        Err(Error::JournalDamaged {
            line: 9, reason, ..
        }) => assert!(reason.contains("not a JSON record"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let damaged = OLD.replacen("\"kind\":\"step.intent\"", "\"kind\":\"step.intent\",", 1);
    let (_d, p) = write(&damaged);
    assert!(matches!(
        read(&p),
        Err(Error::JournalDamaged { line: 2, .. })
    ));
    let newer = OLD.replacen("\"kind\":\"undo.intent\"", "\"kind\":\"undo.planned\"", 1);
    let (_d, p) = write(&newer);
    match read(&p) {
        Err(Error::JournalDamaged {
            line: 7, reason, ..
        }) => {
            assert!(reason.contains("another version"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let future = format!(
        "{}\n{{\"v\":3,\"run_id\":\"r\",\"time\":\"t\",\"type\":\"step_started\",\"step\":\"x\"}}\n{{\"v\":1}}\n",
        OLD.lines().next().unwrap()
    );
    let (_d, p) = write(&future);
    // Not damaged: a newer runbook's record (`runbook::journal::newer`).
    match read(&p) {
        Err(Error::JournalNewer {
            line: 2, reason, ..
        }) => assert!(reason.contains("version 3"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// A target a refresh found changed is left alone until a later refresh finds it holding
/// what the run wrote again.
#[test]
fn the_latest_refresh_of_a_target_decides_whether_it_is_left_alone() {
    let refreshed = |holds| {
        Event::Refreshed(crate::events::Refreshed {
            step: "propagate".into(),
            function: "heroku::set_config".into(),
            target: "app-a".into(),
            holds,
            now: None,
        })
    };
    let mut l = production_run(vec![
        sent("propagate", "app-a"),
        ended("propagate", "app-a", WriteOutcome::Applied),
        refreshed(crate::events::Holds::Changed),
    ]);
    assert!(l.left_alone("heroku::set_config", "app-a"));
    l.apply(&at("t9", refreshed(crate::events::Holds::AsWritten)));
    assert!(!l.left_alone("heroku::set_config", "app-a"));
}

/// The writes of an undo that stopped part way are kept (what this run's rollback may have
/// put back); once the undo completes they go with the step's own.
/// A secret one step staged and a later step deleted is not left in place: the summary,
/// `runs` and abandon listed it (author review). A delete that may not have applied
/// leaves it listed.
#[test]
fn a_write_a_later_step_deleted_is_not_left_in_place() {
    let write = |step: &str, function: &str, outcome| {
        [
            Event::Write(WriteSent {
                step: step.into(),
                function: function.into(),
                target: "X_PENDING in p:prod/".into(),
                detail: json!({"name": "X_PENDING", "value": "hmac:aa"}),
                idempotent: true,
                undo: false,
            }),
            Event::WriteOutcome(WriteSettled {
                answer: None,
                step: step.into(),
                function: function.into(),
                target: "X_PENDING in p:prod/".into(),
                outcome,
                filed: None,
                undo: false,
            }),
        ]
    };
    let functions =
        |l: &Ledger| -> Vec<String> { l.changes().into_iter().map(|w| w.function).collect() };
    // Staged by one step, then deleted by a later one whose delete ended as `outcome`.
    let staged_then_deleted = |outcome| {
        production_run(
            [
                write("generate", "infisical::set_secret", WriteOutcome::Applied),
                write("propagate", "infisical::delete_secret", outcome),
            ]
            .concat(),
        )
    };
    let deleted = staged_then_deleted(WriteOutcome::Applied);
    assert_eq!(functions(&deleted), ["infisical::delete_secret"]);
    let unsure = staged_then_deleted(WriteOutcome::Unknown);
    assert_eq!(
        functions(&unsure),
        ["infisical::set_secret", "infisical::delete_secret"]
    );
    // The delete a cleanup (a staging copy removed), and its step undone since: no undo
    // puts a cleanup back, so the copy stays removed (team review: a rollback that stopped
    // after undoing propagate listed the copy as left in place).
    let cleanup = |w: [Event; 2]| {
        w.map(|e| match e {
            Event::Write(mut sent) => {
                sent.detail["cleanup"] = json!(true);
                Event::Write(sent)
            }
            other => other,
        })
    };
    let cleaned_then_undone = production_run(
        [
            write("generate", "infisical::set_secret", WriteOutcome::Applied).to_vec(),
            cleanup(write(
                "propagate",
                "infisical::delete_secret",
                WriteOutcome::Applied,
            ))
            .to_vec(),
            vec![undo_started("propagate"), undo_completed("propagate")],
        ]
        .concat(),
    );
    assert!(
        functions(&cleaned_then_undone).is_empty(),
        "{:?}",
        functions(&cleaned_then_undone)
    );
}

#[test]
fn an_unfinished_undo_keeps_its_writes_for_the_next_rollback() {
    let undo_write = |target: &str| {
        Event::Write(WriteSent {
            step: "propagate".into(),
            function: "heroku::set_config".into(),
            target: target.into(),
            detail: json!({"vars": {"T": "hmac:old"}}),
            idempotent: true,
            undo: true,
        })
    };
    let undo_ended = |target: &str, outcome| {
        Event::WriteOutcome(WriteSettled {
            answer: None,
            step: "propagate".into(),
            function: "heroku::set_config".into(),
            target: target.into(),
            outcome,
            filed: None,
            undo: true,
        })
    };
    let mut l = production_run(vec![
        sent("propagate", "app-a"),
        ended("propagate", "app-a", WriteOutcome::Applied),
        sent("propagate", "app-b"),
        ended("propagate", "app-b", WriteOutcome::Applied),
        undo_started("propagate"),
        undo_write("app-a"),
        undo_ended("app-a", WriteOutcome::Applied),
        undo_write("app-b"),
        undo_ended("app-b", WriteOutcome::Failed),
    ]);
    // What is left in place (the report, `runs`, abandon) is app-b's change alone: app-a's
    // was put back. Before, both were listed, under lines saying app-a was restored
    // (hostile review).
    let left: Vec<String> = l.changes().into_iter().map(|w| w.target).collect();
    assert_eq!(left, ["app-b"]);
    let found = l
        .undo_writes_to("heroku::set_config", "app-a")
        .next()
        .expect("kept");
    assert_eq!(found.detail["vars"]["T"], "hmac:old");
    assert!(
        l.undo_writes_to("heroku::set_config", "app-b")
            .next()
            .is_none(),
        "a refused undo write put nothing back"
    );
    assert_eq!(
        l.writes.len(),
        2,
        "the step's own writes are kept for the next rollback"
    );
    l.apply(&at("t9", undo_completed("propagate")));
    assert!(l
        .undo_writes_to("heroku::set_config", "app-a")
        .next()
        .is_none());
    assert!(l.writes.is_empty());
}

/// A write of two vars an undo wrote only one of back is still in effect (a review: an
/// undo's write to the same target was taken for putting back all of it).
#[test]
fn a_write_put_back_only_in_part_is_still_in_effect() {
    let write = |vars: serde_json::Value, undo: bool| {
        Event::Write(WriteSent {
            step: "propagate".into(),
            function: "heroku::set_config".into(),
            target: "app-a".into(),
            detail: json!({ "vars": vars }),
            idempotent: true,
            undo,
        })
    };
    let applied = |undo: bool| {
        Event::WriteOutcome(WriteSettled {
            answer: None,
            step: "propagate".into(),
            function: "heroku::set_config".into(),
            target: "app-a".into(),
            outcome: WriteOutcome::Applied,
            filed: None,
            undo,
        })
    };
    let l = production_run(vec![
        write(json!({"T": "hmac:new", "U": "hmac:new"}), false),
        applied(false),
        undo_started("propagate"),
        write(json!({"T": "hmac:old"}), true),
        applied(true),
    ]);
    let left: Vec<String> = l.changes().into_iter().map(|w| w.target).collect();
    assert_eq!(left, ["app-a"]);
}

/// An undo that died with its process is not running in the next one: a write there (a
/// REPL attached to the run, a forced resume) is the run's own change. Before: it was
/// taken for an undo write, missing from "in effect" and from what abandon leaves in place.
#[test]
fn an_undo_that_died_with_its_process_does_not_claim_the_next_ones_writes() {
    let l = production_run(vec![
        sent("propagate", "app-a"),
        ended("propagate", "app-a", WriteOutcome::Applied),
        undo_started("propagate"),
        resumed(Entry::Repl),
        sent("repl", "app-c"),
        ended("repl", "app-c", WriteOutcome::Applied),
    ]);
    let targets: Vec<&str> = l.writes.iter().map(|w| w.target.as_str()).collect();
    assert_eq!(targets, ["app-a", "app-c"]);
    assert!(l.changes().iter().any(|w| w.target == "app-c"));
}

/// What a run says, kept for a test to read.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<String>>);

impl crate::sink::Sink for Heard {
    fn event(&self, _: &Stamped) {}
    fn notice(&self, _: &str, notice: &crate::sink::Notice) {
        if let crate::sink::Notice::Warning { text } = notice {
            self.0.lock().unwrap().push(text.clone());
        }
    }
}

/// The one journal in state directory `dir`.
fn only_journal(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// Before: an end that did not settle (an error's early return) synced the journal when
/// the writer was dropped and dropped any error with it; the operator heard nothing.
#[test]
fn a_failed_last_sync_on_an_early_return_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let heard = std::sync::Arc::new(Heard::default());
    let say = crate::sink::Say::new(heard.clone(), "r1");
    let store: crate::store::Store =
        std::sync::Arc::new(crate::store::Files::new(dir.path(), say.clone()));
    let writer = LedgerWriter::new(&store, say);
    writer.record(started(Target::Production));
    let journal = only_journal(dir.path());
    std::fs::remove_file(&journal).unwrap();
    drop(writer);
    let heard = heard.0.lock().unwrap();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(
        heard[0].starts_with("warning: this run's last records in ")
            && heard[0].contains("may not survive a power loss"),
        "{heard:?}"
    );
}

/// Before: a journal whose sync had failed (here: replaced under the run) was retried for
/// the store's whole wait, each retry writing the write's line again (a duplicate that
/// breaks the chain), and a retry could sync the replacement and send the write. Now the
/// write is not sent, at once, and nothing more is written.
#[test]
fn a_journal_that_could_not_be_made_durable_stops_the_next_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let heard = std::sync::Arc::new(Heard::default());
    let say = crate::sink::Say::new(heard.clone(), "r1");
    // A retry loop would take this wait (and the test with it) and append again.
    let files = crate::store::Files::new(dir.path(), say.clone())
        .waiting(std::time::Duration::from_secs(2));
    let trace = files.trace.clone();
    let store: crate::store::Store = std::sync::Arc::new(files);
    let writer = LedgerWriter::new(&store, say);
    writer.record(started(Target::Production));
    let journal = only_journal(dir.path());
    let other = dir.path().join("runs/other");
    std::fs::copy(&journal, &other).unwrap();
    std::fs::rename(&other, &journal).unwrap();
    let before = std::fs::read_to_string(&journal).unwrap();
    let asked = trace
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("journal "))
        .count();
    let e = writer
        .before_write(sent("propagate", "raxx-api-prod"), &|| Ok(()), true)
        .unwrap_err();
    assert!(
        matches!(e.why, Unrecorded::StoreDown(ref m) if m.contains("could not be made durable")),
        "{e:?}"
    );
    // One attempt, refused before its line was written: the journal's descriptor found
    // another file at its path, and the lines it had not synced lost with the one replaced.
    // (Before the descriptor was held, the line went into the replacement first.)
    assert!(!e.stored);
    let tried: Vec<String> = trace.lock().unwrap()[..]
        .iter()
        .filter(|l| l.starts_with("journal "))
        .skip(asked)
        .cloned()
        .collect();
    assert_eq!(tried, ["journal line"]);
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), before);
    drop(writer);
    assert!(
        !heard
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.contains("retrying")),
        "{:?}",
        heard.0.lock().unwrap()
    );
}

/// A lock holder: run `run`, lease `lease`.
fn holder(run: &str, lease: &str) -> crate::store::Holder {
    crate::store::Holder {
        run_id: run.into(),
        actor: "ops".into(),
        pid: std::process::id(),
        host: "h".into(),
        since: "now".into(),
        lease_id: lease.into(),
        expires: None,
        expired: false,
        pid_space: String::new(),
        lock: String::new(),
    }
}

/// A file store in `dir` (waiting 300 ms on one that refuses) whose lock KEY run r1 holds
/// under lease "mine", and r1's writer, fenced by that lease, its production run started.
fn fenced_writer(dir: &std::path::Path) -> (crate::store::Store, LedgerWriter) {
    let say = crate::sink::Say::new(std::sync::Arc::new(crate::sink::Quiet), "r1");
    let files =
        crate::store::Files::new(dir, say.clone()).waiting(std::time::Duration::from_millis(300));
    let store: crate::store::Store = std::sync::Arc::new(files);
    assert!(store.lock_create("KEY", &holder("r1", "mine")).unwrap());
    let writer = LedgerWriter::new(&store, say);
    writer.fence(crate::store::Fence {
        key: "KEY".into(),
        lease_id: "mine".into(),
    });
    writer.record(started(Target::Production));
    (store, writer)
}

/// The write's line is stored (fenced) before the audit's sync; a lock broken and taken by
/// another run in between (`--break-lock` while the audit log was slow) must stop the
/// write. Before, the lease was confirmed only when the line was stored, and the write
/// went out from a run that no longer held the lock. Taken by another run, the journal is
/// still this run's alone: the write is recorded not sent; taken by this run resumed
/// elsewhere, the line stays in doubt for it to check.
#[test]
fn a_lock_taken_before_the_write_leaves_stops_it() {
    // ("", _): the lock removed and left free, which says nothing of who took it.
    for (taker, recorded) in [("r2", true), ("r1", false), ("", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = fenced_writer(dir.path());
        let lock = store.lock_path("KEY").unwrap();
        let taken = || {
            std::fs::remove_file(&lock).unwrap();
            if !taker.is_empty() {
                assert!(store.lock_create("KEY", &holder(taker, "theirs")).unwrap());
            }
            Ok(())
        };
        let e = writer
            .before_write(sent("propagate", "raxx-api-prod"), &taken, true)
            .unwrap_err();
        assert!(matches!(e.why, Unrecorded::LeaseLost), "{e:?}");
        assert!(e.stored, "its line went in before the lock was taken");
        let journal = std::fs::read_to_string(only_journal(dir.path())).unwrap();
        let last = journal.lines().last().unwrap();
        assert_eq!(
            last.contains("\"not_sent\""),
            recorded,
            "{taker}: {journal}"
        );
        // Its release does not remove the lock of the run that took it.
        store.lock_remove("KEY", Some("mine"), false).unwrap();
        assert_eq!(lock.exists(), !taker.is_empty(), "{taker}");
    }
}

/// A fan-out's later targets, recorded durably in an earlier batch, are sent only once
/// what the run recorded since (its answers' outcomes) is stored too: once a record finds
/// the lease taken, or the journal still refuses one after the store's wait, `catch_up`
/// says no. Before, a fan-out sent every target it had recorded whatever its records
/// since met.
#[test]
fn a_later_target_is_not_sent_once_a_record_since_found_the_lease_taken_or_the_store_down() {
    for taken in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = fenced_writer(dir.path());
        for app in ["app-1", "app-2"] {
            writer
                .before_write(sent("propagate", app), &|| Ok(()), app == "app-2")
                .unwrap();
        }
        assert!(writer.catch_up(&|| Ok(())).is_ok());
        if taken {
            let lock = store.lock_path("KEY").unwrap();
            std::fs::remove_file(&lock).unwrap();
            assert!(store.lock_create("KEY", &holder("r2", "theirs")).unwrap());
        } else {
            let runs = dir.path().join("runs");
            std::fs::rename(&runs, dir.path().join("runs.aside")).unwrap();
            std::fs::write(&runs, "not a folder").unwrap();
        }
        // app-1 answered: its outcome is recorded before app-2 would go out.
        writer.record(finished(RunStatus::Failed));
        let unrecorded = writer.unrecorded_flag();
        match writer.catch_up(&|| Ok(())) {
            Err(Unrecorded::LeaseLost) => assert!(taken),
            Err(Unrecorded::StoreDown(why)) => {
                assert!(!taken);
                assert!(why.contains("runs"), "{why}");
                // A write already on its way is held too, by the transport's fence (a
                // fan-out target waiting for a vendor's pool: fail-closed review).
                assert!(unrecorded.load(std::sync::atomic::Ordering::SeqCst));
            }
            Ok(()) => panic!("taken: {taken}: app-2 may still be sent"),
        }
        if !taken {
            // The store back: the records go in, and writes may leave again.
            let runs = dir.path().join("runs");
            std::fs::remove_file(&runs).unwrap();
            std::fs::rename(dir.path().join("runs.aside"), &runs).unwrap();
            assert!(writer.catch_up(&|| Ok(())).is_ok());
            assert!(!unrecorded.load(std::sync::atomic::Ordering::SeqCst));
        }
    }
}

/// A journal's last line settles its run by the record's own type and status, not by text
/// anywhere in it: a write's detail holds a vendor's answer, which may say the same words.
#[test]
fn a_last_line_settles_a_run_by_its_own_fields() {
    use super::settles;
    for status in ["succeeded", "rolled_back", "partly_rolled_back"] {
        assert!(settles(&format!(
            r#"{{"v":1,"run_id":"r","type":"run_finished","status":"{status}"}}"#
        )));
    }
    for line in [
        r#"{"v":1,"type":"run_finished","status":"failed"}"#,
        r#"{"v":1,"type":"write","detail":{"type":"run_finished","status":"succeeded"}}"#,
        r#"{"v":1,"type":"step_finished","ctx":{"x":""type":"run_finished","status":"succeeded""}}"#,
        r#"{"v":1,"type":"run_finished","status":"succeeded""#,
        "",
    ] {
        assert!(!settles(line), "{line}");
    }
}

/// A number holding a registered secret's digits (a PIN's, in a duration, a pid, a server
/// id) stays the number it is, and the line reads back as the event. Before, the text pass
/// after the JSON one rewrote it to a bare `1secret(…)5`: every later read of the journal
/// called it damaged, and the run could be neither resumed nor rolled back (and masked as
/// a string, a typed field read as an event of another version).
#[test]
fn a_number_holding_a_secrets_digits_reads_back_as_the_event() {
    runbook_secret::register("739182");
    let finished = at(
        "2026-11-20T10:00:06Z",
        Event::RunFinished(RunFinished {
            status: RunStatus::Succeeded,
            error: None,
            duration_ms: Some(97391825),
            rate_limit_wait_ms: None,
            audit_head: None,
        }),
    );
    let first = encode(&at("2026-11-20T10:00:00Z", started(Target::Production)));
    let text = format!("{first}\n{}\n", encode(&finished));
    let (_, p) = write(&text);
    let events = parse(&text, &p, "r1").unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(events[1].event, finished.event);
}

/// A write whose answer never came may have landed any time its process still lived: its
/// time moves with that process's later lines (a fan-out's other answers), not with the
/// next process's. Before, it stayed the time its line was written, and GitHub's read-back
/// took the run's own PUT, paced past that, for someone else's change.
#[test]
fn a_write_without_an_answer_is_dated_by_its_process_last_line() {
    let l = Ledger::fold(&[
        at("t0", started(Target::Production)),
        at("t1", sent("propagate", "repo-a")),
        at("t1", sent("propagate", "repo-b")),
        at("t2", ended("propagate", "repo-a", WriteOutcome::Applied)),
        at("t9", resumed(Entry::Rollback)),
    ])
    .unwrap();
    let at_of = |target: &str| {
        l.writes
            .iter()
            .find(|w| w.target == target)
            .and_then(|w| w.at.clone())
    };
    assert_eq!(at_of("repo-a").as_deref(), Some("t2"));
    assert_eq!(at_of("repo-b").as_deref(), Some("t2"));
}

/// A record a binary of format 1 would misread as damage (and then let `abandon` end a
/// healthy run) is written as format 2, which such a binary reads as "newer"; every other
/// record stays format 1, readable to a teammate not yet upgraded (a second reading).
#[test]
fn only_records_an_older_binary_cannot_read_are_written_as_format_2() {
    use crate::events::{Event, Holds, Kept, Refreshed, Stamped};
    let kept = Event::Kept(Kept {
        step: "generate".into(),
        what: "the new token".into(),
    });
    let refreshed = |holds| {
        Event::Refreshed(Refreshed {
            step: "revoke".into(),
            function: "postmark::dashboard_delete_token".into(),
            target: "t".into(),
            holds,
            now: None,
        })
    };
    assert_eq!(Stamped::now("r", kept).v, 2);
    assert_eq!(Stamped::now("r", refreshed(Holds::Refuted)).v, 2);
    assert_eq!(Stamped::now("r", refreshed(Holds::Changed)).v, 1);
    assert_eq!(
        Stamped::now("r", Event::UndoStarted { step: "s".into() }).v,
        1
    );
}

/// What an undo says it leaves (`ctx.leave`) counts once the undo completed: one that failed
/// may not have left it (a second reading), and one said twice is listed once.
#[test]
fn what_an_undo_leaves_counts_once_it_completed() {
    use crate::events::{Kept, UndoFinished};
    let kept = |step: &str| {
        Event::Kept(Kept {
            step: step.into(),
            what: format!("what {step} keeps"),
        })
    };
    let failed = Event::UndoFinished(UndoFinished {
        step: "store".into(),
        outcome: StepEnd::Failed,
        error: Some("refused".into()),
        ctx: None,
    });
    let l = production_run(vec![
        undo_started("store"),
        kept("store"),
        failed,
        undo_started("generate"),
        kept("generate"),
        kept("generate"),
        undo_completed("generate"),
    ]);
    assert_eq!(
        l.kept.iter().map(|k| k.step.as_str()).collect::<Vec<_>>(),
        ["generate"]
    );
}
