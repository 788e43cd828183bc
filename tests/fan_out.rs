//! A fan-out's targets go out at most the concurrency at once, each recorded before it is
//! sent and settled as its answer comes: a fan-out stopped part-way leaves in doubt only
//! the requests then out, and sends nothing after a record it could not store.

use crate::support::{Exit, Output, Test};
use serde_json::Value;
use std::collections::BTreeMap;

/// Sets FAN_VAR on app-0001 ... app-COUNT, in a step of at most `limit`.
fn runbook(limit: &str) -> String {
    format!(
        r#"runbook(#{{ id: "fan", title: "Set a variable on many apps" }});
param("count", #{{ default: 4, help: "how many apps" }});
step("propagate", "Set it on every app", |ctx| {{
    let apps = [];
    for i in 1..=ctx.params.count {{
        let n = `${{i}}`;
        while n.len() < 4 {{ n = "0" + n; }}
        apps.push(`app-${{n}}`);
    }}
    heroku::set_config(apps, #{{ FAN_VAR: "new" }});
}}).no_undo("a test fan-out").timeout("{limit}");
"#
    )
}

fn scenario(apps: usize) -> String {
    (1..=apps)
        .map(|i| format!("[[heroku.apps]]\nname = \"app-{i:04}\"\nboot_ms = 0\n"))
        .collect()
}

fn fan_out(apps: usize, limit: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut t = Test::new()
        .file("fan.rhai", &runbook(limit))
        .args(&["exec", "fan.rhai", "--sandbox"])
        .scenario("apps.toml", &scenario(apps))
        .args(&["--yes", "--param", &format!("count={apps}")])
        .args(extra)
        .keep_sandbox_state();
    for (k, v) in env {
        t = t.env(k, v);
    }
    t.run()
}

/// Each target's recorded outcome: `(write lines, outcome)` by app.
fn outcomes(out: &Output) -> BTreeMap<String, (usize, String)> {
    let mut by_app: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for e in out
        .journal()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let app = e["target"].as_str().unwrap_or_default().to_string();
        match e["type"].as_str() {
            Some("write") => by_app.entry(app).or_default().0 += 1,
            Some("write_outcome") => {
                by_app.entry(app).or_default().1 = e["outcome"].as_str().unwrap_or("?").into()
            }
            _ => {}
        }
    }
    by_app
}

/// The apps whose config the simulated Heroku changed.
fn changed(out: &Output, apps: usize) -> Vec<String> {
    let state = out.sandbox_state();
    (1..=apps)
        .map(|i| format!("app-{i:04}"))
        .filter(|a| state["heroku"]["apps"][a]["config_vars"]["FAN_VAR"] == "new")
        .collect()
}

/// One app's request never answers and the step's time limit (5 s) ends the wait. The apps that
/// answered are recorded as applied, and only the one still out is in doubt. Before, the
/// outcomes were recorded after the last answer: all four were left `unknown`, and a resume
/// would have had to reconcile every one.
#[test]
fn a_fan_out_stopped_at_its_time_limit_leaves_in_doubt_only_the_request_still_out() {
    let out = fan_out(
        4,
        "5s",
        &["--fault", "heroku:PATCH:/apps/app-0003/config-vars=stall"],
        &[],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("step 'propagate' ran past its limit of 5s");
    let by_app = outcomes(&out);
    let expected: BTreeMap<String, (usize, String)> = [
        ("app-0001", "applied"),
        ("app-0002", "applied"),
        ("app-0003", "unknown"),
        ("app-0004", "applied"),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_string(), (1, o.to_string())))
    .collect();
    assert_eq!(by_app, expected, "{}", out.journal());
    assert_eq!(changed(&out, 4), ["app-0001", "app-0002", "app-0004"]);
}

/// Heroku refuses one app's change with a 429 asking for 60 s, more than the step's 5 s
/// limit has left: the refusal is the step's error at once, and the write is recorded as
/// refused (Heroku said so: nothing applied there); the next app's change is not sent
/// (recorded not sent): the fan-out stops at a rate limit it does not wait out. Before, the run waited until the limit cut the
/// wait, and the write was recorded `unknown`: a rollback or resume had to reconcile a
/// change the vendor had refused, and the operator waited for nothing.
#[test]
fn a_wait_the_vendor_asks_for_past_the_steps_limit_is_not_waited_and_its_refusal_stands() {
    let out = fan_out(
        3,
        "5s",
        &[
            "--fault",
            "heroku:PATCH:/apps/app-0002/config-vars=429:retry_after=60",
        ],
        &[("RUNBOOK_CONCURRENCY", "1")],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("heroku asked to wait 60s, more than the step has left: not sent again")
        .stderr_has("app-0003: heroku PATCH app-0003 → rate_limited: not sent: heroku refused /apps/app-0002/config-vars for its rate limit, beyond the waits this step allows");
    assert!(!out.stderr.contains("ran past its limit"), "{}", out.stderr);
    let by_app = outcomes(&out);
    let expected: BTreeMap<String, (usize, String)> = [
        ("app-0001", "applied"),
        ("app-0002", "failed"),
        ("app-0003", "not_sent"),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_string(), (1, o.to_string())))
    .collect();
    assert_eq!(by_app, expected, "{}", out.journal());
    assert_eq!(changed(&out, 3), ["app-0001"]);
}

/// The tenth record of a twenty-app fan-out, two at a time, is refused (a store that cannot
/// keep it): nothing after it is recorded or sent. What went out before it is settled by
/// its answer, and what was recorded but not yet sent is settled as not sent, so every
/// recorded write has its outcome and exactly the apps recorded as applied changed.
#[test]
fn a_fan_out_whose_record_is_refused_part_way_sends_nothing_after_it() {
    let out = fan_out(
        20,
        "10m",
        &[],
        &[
            ("RUNBOOK_CONCURRENCY", "2"),
            ("RUNBOOK_REFUSE_WRITE_AT", "10"),
        ],
    );
    out.exit(Exit::StepFailed)
        .stderr_has("the write was not sent because its record could not be stored");
    let by_app = outcomes(&out);
    let applied: Vec<String> = by_app
        .iter()
        .filter(|(_, (_, o))| o == "applied")
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(changed(&out, 20), applied, "{}", out.journal());
    // Batches of eight: the first went out; the second was being recorded.
    assert!(
        (6..=8).contains(&applied.len()),
        "{applied:?}\n{}",
        out.journal()
    );
    for (app, (writes, outcome)) in &by_app {
        assert_eq!(*writes, 1, "{app} recorded {writes} times");
        let n: usize = app["app-".len()..].parse().unwrap();
        assert!(n <= 9, "{app} was recorded after the refused record");
        if !applied.contains(app) {
            assert_eq!(outcome, "not_sent", "{app}\n{}", out.journal());
        }
    }
    assert!(by_app.contains_key("app-0009"), "{by_app:?}");
}

/// The third answer's record is refused once (a store that blinks) while later targets
/// wait, recorded durably, to go out: they are sent only once the store took it, and the
/// fan-out goes on to every app. Every app has one write and one outcome, applied.
#[test]
fn a_fan_out_waits_for_a_refused_record_to_be_stored_then_goes_on() {
    let out = fan_out(
        40,
        "10m",
        &[],
        &[
            ("RUNBOOK_CONCURRENCY", "2"),
            ("RUNBOOK_REFUSE_OUTCOME_AT", "3"),
        ],
    );
    out.exit(Exit::Ok)
        .stderr_has("refused by RUNBOOK_REFUSE_OUTCOME_AT")
        .stderr_has("the state store takes records again; the run goes on");
    let by_app = outcomes(&out);
    assert_eq!(by_app.len(), 40, "{by_app:?}");
    for (app, (writes, outcome)) in &by_app {
        assert_eq!((*writes, outcome.as_str()), (1, "applied"), "{app}");
    }
    assert_eq!(changed(&out, 40).len(), 40);
}

/// The journal goes down after the Nth answer's record (a store that stays down for longer
/// than its wait) while targets recorded durably wait to go out, or a batch is half
/// recorded: nothing more is sent, and every target recorded gets one outcome (in the
/// run's event stream: the journal takes none of them). Before, a half-recorded batch was
/// left without outcomes (a debug build panicked on it).
#[test]
fn a_journal_that_goes_down_mid_fan_out_stops_it_with_every_recorded_target_settled() {
    // Eight at a time, batches of 32: the second batch is recorded while the first's last
    // targets wait to go out, around the 20th answer.
    for at in ["3+", "17+", "19+", "21+", "23+", "25+", "27+"] {
        let out = fan_out(
            60,
            "10m",
            &["--json"],
            &[
                ("RUNBOOK_CONCURRENCY", "8"),
                ("RUNBOOK_STATE_WAIT_SECONDS", "1"),
                ("RUNBOOK_REFUSE_OUTCOME_AT", at),
            ],
        );
        assert!(!out.stderr.contains("panicked"), "{at}: {}", out.stderr);
        assert_ne!(out.code, 0, "{at}: {}", out.stderr);
        let mut by_app: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
        for e in out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let app = e["target"].as_str().unwrap_or_default().to_string();
            match e["type"].as_str() {
                Some("write") => by_app.entry(app).or_default().0 += 1,
                Some("write_outcome") => by_app
                    .entry(app)
                    .or_default()
                    .1
                    .push(e["outcome"].as_str().unwrap_or("?").into()),
                _ => {}
            }
        }
        let applied: Vec<String> = by_app
            .iter()
            .filter(|(_, (_, o))| o == &["applied".to_string()])
            .map(|(a, _)| a.clone())
            .collect();
        // Sent: at most the N answered and the eight then out (the Nth answer's refill
        // among them). Every app may be recorded: the second batch's records can all be
        // stored before the Nth answer, on a busy machine.
        let down_at: usize = at.trim_end_matches('+').parse().unwrap();
        assert!(
            applied.len() <= down_at + 8,
            "{at}: the fan-out went on after the journal went down: {by_app:?}"
        );
        assert_eq!(changed(&out, 60), applied, "{at}: {by_app:?}");
        for (app, (writes, outcomes)) in &by_app {
            assert_eq!(*writes, 1, "{at}: {app}");
            assert_eq!(outcomes.len(), 1, "{at}: {app}: {outcomes:?}");
            assert!(
                ["applied", "not_sent"].contains(&outcomes[0].as_str()),
                "{at}: {app}: {outcomes:?}"
            );
        }
    }
}

/// An app named twice in a fan-out's list (discovery's consumers joined to a runbook's
/// own) is written once: one journalled write and one release, not two restarts of its
/// dynos. Before, each copy was recorded and sent.
#[test]
fn an_app_named_twice_is_written_once() {
    let out = Test::new()
        .file(
            "twice.rhai",
            r#"runbook(#{ id: "twice", title: "Set a variable, one app named twice" });
step("propagate", "Set it", |ctx| {
    let found = ["app-0001", "app-0002"];
    heroku::set_config(found + ["app-0001"], #{ FAN_VAR: "new" });
}).no_undo("a test fan-out");
"#,
        )
        .args(&["exec", "twice.rhai", "--sandbox", "--yes"])
        .scenario("apps.toml", &scenario(2))
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok);
    let expected: BTreeMap<String, (usize, String)> = ["app-0001", "app-0002"]
        .into_iter()
        .map(|a| (a.to_string(), (1, "applied".to_string())))
        .collect();
    assert_eq!(outcomes(&out), expected, "{}", out.journal());
    let state = out.sandbox_state();
    let releases =
        |app: &str| crate::support::items(&state["heroku"]["apps"][app]["releases"]).len();
    assert_eq!(
        releases("app-0001"),
        releases("app-0002"),
        "{}",
        state["heroku"]
    );
    assert_eq!(changed(&out, 2), ["app-0001", "app-0002"]);
}

/// A fan-out's task that panics (a bug in a vendor client, here before its request left)
/// leaves its target in doubt, not applied and not failed: the run cannot know whether its
/// request went out. The others are settled by their answers, and the run stops at the
/// step rather than hang or abort.
#[test]
fn a_fan_out_task_that_panics_leaves_its_target_in_doubt_and_the_others_settled() {
    let out = fan_out(4, "10m", &[], &[("RUNBOOK_PANIC_SENDING_TO", "app-0002")]);
    out.exit(Exit::StepFailed)
        .stderr_has("the call did not finish (internal error); it may have been sent");
    let expected: BTreeMap<String, (usize, String)> = [
        ("app-0001", "applied"),
        ("app-0002", "unknown"),
        ("app-0003", "applied"),
        ("app-0004", "applied"),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_string(), (1, o.to_string())))
    .collect();
    assert_eq!(outcomes(&out), expected, "{}", out.journal());
    assert_eq!(changed(&out, 4), ["app-0001", "app-0003", "app-0004"]);
}
