//! What the operator reads after a run, exactly: the end-of-run summary, `runs`, a run's
//! timeline, `list` and `audit show`, kept as snapshots (`UPDATE_SNAPSHOTS=1` rewrites
//! them) with run ids, times, ports, fingerprints and secrets' last characters masked.

use crate::support::{assert_snapshot, Exit, Test};

/// The summary at the end of a run: from its "Run …" line to the end of stdout.
fn summary(stdout: &str) -> &str {
    let at = stdout
        .rfind("\nRun ")
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    &stdout[at + 1..]
}

/// One shared state dir: a succeeded rehearsal, then one rolled back after a fault, then
/// every listing over both. A fan-out records each target's outcome as its answer comes,
/// in whatever order the apps answer: one at a time, the order is the apps'.
#[test]
fn the_summary_runs_timeline_list_and_audit_read_as_the_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let rehearse = |extra: &[&str]| {
        Test::in_dir(dir.path())
            .rehearse("postmark")
            .env("RUNBOOK_CONCURRENCY", "1")
            .args(&["--yes", "--actor", "ops-test"])
            .args(extra)
            .run()
    };
    let ok = rehearse(&[]);
    ok.exit(Exit::Ok);
    assert_snapshot("view_exec_summary", &ok.masked(summary(&ok.stdout)));
    let succeeded = ok.last_run_id();

    let failed = rehearse(&[
        "--fault",
        "heroku:PATCH:/apps/raxx-api-staging/config-vars=422:always",
    ]);
    failed.exit(Exit::StepFailed);
    assert_snapshot(
        "view_exec_summary_rolled_back",
        &failed.masked(summary(&failed.stdout)),
    );

    let cmd = |args: &[&str]| {
        let out = Test::in_dir(dir.path()).shipped_runbooks().args(args).run();
        out.exit(Exit::Ok);
        out
    };
    let runs = cmd(&["runs"]);
    assert_snapshot("view_runs", &runs.masked(&runs.stdout));
    let timeline = cmd(&["runs", &succeeded]);
    assert_snapshot("view_run_timeline", &timeline.masked(&timeline.stdout));
    let list = cmd(&["list"]);
    assert_snapshot("view_list", &list.masked(&list.stdout));
    let audit = cmd(&["audit", "show"]);
    assert_snapshot("view_audit_show", &audit.masked(&audit.stdout));
}
