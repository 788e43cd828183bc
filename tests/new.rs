//! `runbook new`: the skeleton passes `check`, runs in the sandbox, and never overwrites.

use crate::support::{scripted, Exit, Test};

/// The promise of the issue: `runbook new x && runbook check x && runbook exec x --sandbox
/// --yes` works from a fresh checkout (here: a folder with an empty runbooks/).
#[test]
fn new_rotation_runbook_checks_and_rotates_in_the_sandbox() {
    let out = Test::new()
        .file("runbooks/.keep", "")
        .args(&["new", "x"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("created runbooks/x.rhai and runbooks/sandbox/x.toml")
        .stdout_has("  runbook exec x --sandbox --yes");
    let out = out.next().args(&["check", "x"]).run();
    out.exit(Exit::Ok).stdout_has("ok  runbooks/x.rhai");
    let out = out
        .next()
        .args(&["exec", "x", "--sandbox", "--yes", "--json"])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok);
    assert_eq!(out.report()["status"], "succeeded");
    let state = out.sandbox_state();
    let keys: Vec<String> = scripted(&state, "x-api", "keys")
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], "key-admin");
    assert_ne!(keys[1], "key-current", "the old key is deleted");
    let new_key = state["scripted"]["x-api"]["collections"]["keys"][1]["key"]
        .as_str()
        .unwrap();
    assert_eq!(
        state["heroku"]["apps"]["x-app"]["config_vars"]["X_API_KEY"],
        new_key
    );
    out.assert_absent(new_key);
    assert!(out
        .audit()
        .iter()
        .any(|e| e["action"] == "secret.rotate.completed"));
}

#[test]
fn new_steps_template_checks_and_runs_in_the_sandbox() {
    let out = Test::new().args(&["new", "maint", "--from", "steps"]).run();
    out.exit(Exit::Ok).stdout_has("created runbooks/maint.rhai");
    let out = out.next().args(&["check", "runbooks/maint.rhai"]).run();
    out.exit(Exit::Ok);
    let out = out
        .next()
        .args(&["exec", "maint", "--sandbox", "--yes"])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    assert_eq!(
        state["heroku"]["apps"]["maint-app"]["config_vars"]["APP_MODE"],
        "maintenance"
    );
}

#[test]
fn new_refuses_to_overwrite_the_runbook_or_its_scenario() {
    let out = Test::new()
        .file("runbooks/x.rhai", "// mine\n")
        .args(&["new", "x"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("runbooks/x.rhai already exists; not overwriting it")
        .stderr_has("choose another name");
    assert_eq!(
        std::fs::read_to_string(out.path().join("runbooks/x.rhai")).unwrap(),
        "// mine\n"
    );
    let out = out
        .next()
        .file("runbooks/sandbox/y.toml", "# mine\n")
        .args(&["new", "y"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("runbooks/sandbox/y.toml already exists");
    assert!(
        !out.path().join("runbooks/y.rhai").exists(),
        "nothing half-written"
    );
}

/// A step added after the template's rotation reads what the closures handed to
/// `rotation::steps` set (the stdlib runs them through `call`): not flagged. A misspelled
/// key still is. Before: the first step an author added to the template failed `check`.
#[test]
fn a_step_added_to_the_template_reads_what_its_closures_set() {
    let out = Test::new()
        .file("runbooks/.keep", "")
        .args(&["new", "x"])
        .run();
    out.exit(Exit::Ok);
    let path = out.path().join("runbooks/x.rhai");
    let mut text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("ctx.old_key_id = "), "the template sets it");
    text.push_str("\nstep(\"report\", \"Report\", |ctx| { print(`${ctx.old_key_id}`); });\n");
    std::fs::write(&path, &text).unwrap();
    let checked = out.next().args(&["check", "x"]).run();
    checked.exit(Exit::Ok);
    text.push_str("step(\"typo\", \"Typo\", |ctx| { print(`${ctx.old_kee_id}`); });\n");
    std::fs::write(&path, &text).unwrap();
    checked
        .next()
        .args(&["check", "x"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("step 'typo' reads ctx.old_kee_id, which no step up to it sets")
        .stderr_has("did you mean ctx.old_key_id?");
}

/// A link where the runbook would go, even one to nothing, is not written through.
/// Before: `exists()` is false for a dangling link, and the write made its target.
#[test]
fn new_does_not_write_through_a_link_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
    let elsewhere = dir.path().join("elsewhere.rhai");
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("runbooks/z.rhai")).unwrap();
    let out = Test::in_dir(dir.path()).args(&["new", "z"]).run();
    out.exit(Exit::Usage)
        .stderr_has("runbooks/z.rhai already exists; not overwriting it");
    assert!(!elsewhere.exists(), "written through the link");
}

#[test]
fn new_from_a_shipped_runbook_copies_it_with_a_new_id() {
    let out = Test::new()
        .shipped_runbooks()
        .args(&["new", "mailer", "--from", "sendgrid"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("created runbooks/mailer.rhai and runbooks/sandbox/mailer.toml");
    let text = std::fs::read_to_string(out.path().join("runbooks/mailer.rhai")).unwrap();
    assert!(text.contains("    id: \"mailer\",\n"));
    let out = out
        .next()
        .args(&["exec", "mailer", "--sandbox", "--yes", "--json"])
        .run();
    out.exit(Exit::Ok);
    assert_eq!(out.report()["runbook"], "mailer");
}

#[test]
fn new_with_an_unknown_template_or_bad_name_says_what_exists() {
    let out = Test::new().args(&["new", "x", "--from", "nosuch"]).run();
    out.exit(Exit::Usage)
        .stderr_has("no template or runbook named 'nosuch'")
        .stderr_has("templates: rotation, steps");
    let out = Test::new().args(&["new", "bad name"]).run();
    out.exit(Exit::Usage)
        .stderr_has("'bad name' cannot name a runbook");
}
