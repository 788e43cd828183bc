//! `runbook runs RUN_ID --html`: the run's timeline as one self-contained page, checked as
//! text here and in a real headless browser (Chromium through Playwright) when the machine
//! has one (`.ci/run` installs it, and sets RUNBOOK_TEST_REQUIRE_BROWSER=1).

use crate::support::{
    new_tokens, rehearse_postmark, Exit, Test, CANARIES, OLD_TOKEN, POSTMARK_STEPS,
};

/// Whether `python3` with Playwright and a Chromium are here; why not, when not.
fn browser() -> Result<(), String> {
    let chromium =
        std::env::var("RUNBOOK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return Err(format!("no Chromium at {chromium}"));
    }
    let playwright = std::process::Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !playwright {
        return Err("python3 cannot import playwright".into());
    }
    Ok(())
}

/// A rehearsed rotation's page: a bar per step, the writes, the point of no return, the
/// target; no secret value in it; and in a headless browser it loads without an error or a
/// network request, draws one bar per step, and shows no secret value.
#[test]
fn a_runs_timeline_page_draws_the_run_and_holds_no_secret() {
    let out = rehearse_postmark(&["--yes"]);
    out.exit(Exit::Ok);
    let run_id = out.last_run_id();
    let tokens: Vec<String> = new_tokens(&out.sandbox_state())
        .into_iter()
        .chain([OLD_TOKEN.to_string()])
        .chain(CANARIES.iter().map(|c| c.to_string()))
        .collect();
    let page = out.next().args(&["runs", &run_id, "--html"]).run();
    page.exit(Exit::Ok)
        .stdout_has("<!doctype html>")
        .stdout_has(&format!("<h1>Run {run_id}</h1>"))
        .stdout_has("<span class=\"target\">sandbox</span>")
        .stdout_has("point of no return (revoke)");
    let html = &page.stdout;
    assert_eq!(
        html.matches("class=\"step-bar\"").count(),
        POSTMARK_STEPS.len()
    );
    assert!(html.contains("class=\"write\" data-outcome=\"applied\""));
    assert!(
        !html.contains("<script") && !html.contains("http-equiv"),
        "self-contained"
    );
    for t in &tokens {
        assert!(!html.contains(t.as_str()), "a token is in the page");
    }
    let file = page.path().join("run.html");
    std::fs::write(&file, html).unwrap();
    match browser() {
        Ok(()) => {
            let script = runbook_testkit::root().join("tests/browser/timeline.py");
            let checked = std::process::Command::new("python3")
                .arg(&script)
                .arg(&file)
                .arg(POSTMARK_STEPS.len().to_string())
                .args(&tokens)
                .output()
                .unwrap();
            assert!(
                checked.status.success(),
                "in the browser:\n{}{}",
                String::from_utf8_lossy(&checked.stdout),
                String::from_utf8_lossy(&checked.stderr)
            );
        }
        Err(why) if std::env::var("RUNBOOK_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("RUNBOOK_TEST_REQUIRE_BROWSER=1, but {why}")
        }
        Err(why) => eprintln!("the browser check is skipped: {why}"),
    }
    // Without a run id there is no page to draw.
    Test::new()
        .args(&["runs", "--html"])
        .run()
        .exit(Exit::Usage);
}

/// A run killed between a write and its answer: the page draws the write as unknown (it may
/// have taken effect) and the step as unended. Before: the step had only its label, and the
/// write, the one thing that needs looking at, was not drawn at all.
#[test]
fn a_run_killed_mid_write_shows_the_unknown_write_and_the_unended_step() {
    let rig = crate::support::Rig::new();
    rig.crash("postmark", "inside:propagate");
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = std::fs::read_to_string(&path).unwrap();
    // The crash came right after a write's outcome: without it, the answer never came.
    let (kept, last) = journal.trim_end().rsplit_once('\n').unwrap();
    assert!(last.contains("\"type\":\"write_outcome\""), "{last}");
    std::fs::write(&path, format!("{kept}\n")).unwrap();
    let page = rig.runbook(&["runs", &run_id, "--html"], &[]);
    page.exit(Exit::Ok);
    let html = &page.stdout;
    assert!(
        html.contains("class=\"write\" data-outcome=\"unknown\""),
        "{html}"
    );
    assert!(html.contains("sent, no answer recorded (it may have taken effect)"));
    assert!(
        html.contains("class=\"step-open\" data-step=\"propagate\""),
        "{html}"
    );
}
