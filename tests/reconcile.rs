//! Rollback and resume look at the vendors before they act: a value that no longer works is
//! never restored, and what changed since the run is left alone.

use crate::support::{
    app_token, assert_back_on_old_token, assert_every_token_works, assert_everywhere, assert_lacks,
    assert_rotated, current_infisical, live_tokens, new_tokens, served, writes, Exit, Rig,
    OLD_TOKEN,
};
use crate::support::{items, new_token_answer, root, scripted, set_app_token, set_app_var};

/// The current value Infisical holds for `name`.
fn secret_value(state: &serde_json::Value, name: &str) -> String {
    let s = items(&state["infisical"]["secrets"])
        .iter()
        .find(|s| s["secretKey"] == name)
        .unwrap_or_else(|| panic!("no secret {name}"));
    items(&s["versions"]).last().unwrap()["secretValue"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Killed inside revoke, after Postmark deleted the old token: restoring it would put a
/// dead token into Infisical and every app. Revoke never completed, but its delete was sent,
/// so the rollback stops there before any write, as after a completed revoke.
#[test]
fn a_rollback_never_restores_a_token_the_vendor_deleted() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:revoke");
    let before = writes(&rig.state()).len();
    let out = rig.rollback(&[]);
    // The way that works is named (before, only the runbook's "rotate afresh").
    out.exit(Exit::StepFailed)
        .stderr_has("✗ cannot roll back past step 'revoke': the old token is deleted")
        .stderr_has(&format!(
            "  the rotation can still go forward: `runbook resume {}` finishes it",
            rig.run_id()
        ));
    assert_lacks("stderr", &out.stderr, "undoing");
    let state = rig.state();
    assert_eq!(writes(&state).len(), before, "the rollback wrote nothing");
    assert_every_token_works(&state, "after the refused rollback");
    assert!(rig
        .journal()
        .contains("\"type\":\"rollback_blocked\",\"step\":\"revoke\""));
    // Forward still works: resume finishes the rotation on the new token.
    rig.resume(&[]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "after resume");
}

/// Stopped after verify, and the NEW token deleted in the dashboard before the resume: the
/// journal says verify passed, Postmark says the token every consumer now holds is dead.
/// Revoking the old one too would take every consumer's email down. The resume checks the
/// new token before the delete and stops; the rollback puts every consumer back on the old
/// token, which still works.
#[test]
fn a_resume_does_not_revoke_the_old_token_when_the_new_one_died_meanwhile() {
    let rig = Rig::new();
    rig.crash("postmark", "after:verify");
    let new = current_infisical(&rig.state());
    rig.sandbox.delete_postmark_token(&new);
    // With --yes the failed step rolls back at once.
    // Generate's undo does not say the deleted token was "left" on the server (hostile
    // review).
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("the new token no longer works at Postmark (GET /server answers 401)")
        .stdout_has("rollback complete")
        .stdout_has(
            "is refused by Postmark already (deleted since): nothing of it is left on raxx-prod",
        );
    let state = rig.state();
    assert!(
        live_tokens(&state).contains(&OLD_TOKEN.to_string()),
        "the old token was not revoked: {:?}",
        live_tokens(&state)
    );
    assert_back_on_old_token(&state);
}

/// Someone deleted the old token in the dashboard while the run was stopped before revoke:
/// the journal cannot know, the probe at the vendor does. Nothing is written, and the way
/// forward is named.
#[test]
fn a_rollback_probes_the_vendor_not_the_journal() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    rig.sandbox.delete_postmark_token(OLD_TOKEN);
    let before = writes(&rig.state()).len();
    let run_id = rig.run_id();
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ ctx.old_token secret(…c001) no longer works (deleted, revoked or expired)")
        .stderr_has("✗ rollback refused: the value rollback would restore is not usable: ctx.old_token secret(…c001) no longer works at the vendor")
        .stderr_has("Nothing was undone")
        .stderr_has(&format!(
            "`runbook resume {run_id}` finishes the rotation on the new value"
        ));
    let state = rig.state();
    assert_eq!(writes(&state).len(), before, "the rollback wrote nothing");
    assert_every_token_works(&state, "after the refused rollback");
    assert_eq!(new_tokens(&state).len(), 1);
    assert!(rig
        .journal()
        .contains("\"type\":\"rollback_blocked\",\"step\":\"restore\""));
}

/// Heroku does not answer the rollback's read of the apps' configs (503 on every attempt).
/// Before, a failed read was "its undo runs as the journal says": the undo wrote the old
/// token over whatever the apps held, another rotation's token included. Now the rollback
/// restores nothing until the targets can be read, and says to try again (cold review).
#[test]
fn a_rollback_whose_read_back_gets_no_answer_undoes_nothing() {
    refused_until_the_vendor_answers(
        "heroku:GET:/apps/raxx-api-staging/config-vars=503",
        |run_id, out| {
            out.stderr_has("? heroku::set_config on raxx-api-staging: could not be read back (")
            .stderr_has("✗ rollback refused: what the run's targets hold now could not be read: heroku::set_config on raxx-api-staging (")
            .stderr_has(&format!(
                "run `runbook rollback {run_id}` again once the vendor answers"
            ));
        },
    );
}

/// A run stopped after propagate whose rollback meets `fault`: refused, nothing undone and
/// nothing written (`said` checks what it says); once the vendor answers, the same rollback
/// goes through.
fn refused_until_the_vendor_answers(fault: &str, said: impl Fn(&str, &crate::support::Output)) {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    rig.sandbox.add_fault(fault);
    let before = writes(&rig.state()).len();
    let run_id = rig.run_id();
    let out = rig.rollback(&[]);
    out.exit(Exit::StepFailed).stderr_has("Nothing was undone");
    said(&run_id, &out);
    assert_eq!(
        writes(&rig.state()).len(),
        before,
        "the rollback wrote nothing"
    );
    rig.sandbox.clear_faults();
    rig.rollback(&[]).exit(Exit::Ok);
    assert_back_on_old_token(&rig.state());
}

/// The same read answered 404 (a lasting answer, not a vendor that did not answer): asking
/// again would never tell more, so the rollback does not wait on it: the undo goes as the
/// journal says, as for a target that cannot be read (review of this session's change: it
/// refused every rollback, saying to try again, for ever).
#[test]
fn a_read_back_refused_for_good_does_not_block_the_rollback() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    rig.sandbox
        .add_fault("heroku:GET:/apps/raxx-api-staging/config-vars=404");
    rig.rollback(&[])
        .exit(Exit::Ok)
        .stdout_has("? heroku::set_config on raxx-api-staging: ")
        .stdout_has("its undo runs as the journal says");
    rig.sandbox.clear_faults();
    assert_back_on_old_token(&rig.state());
}

/// Postmark does not answer the rollback's check of the old token: the rollback restores
/// nothing, as for a dead token, but the advice is to try the rollback again, not to go
/// forward (which would revoke the very token the operator chose to keep).
#[test]
fn a_rollback_whose_check_gets_no_answer_says_to_try_again_not_to_go_forward() {
    refused_until_the_vendor_answers("postmark:GET:/server=503", |run_id, out| {
        out.stderr_has("? ctx.old_token secret(…c001) could not be checked")
            .stderr_has(&format!(
                "the check got no answer, so nothing is known to be dead: run `runbook rollback {run_id}` again once the vendor answers"
            ));
        assert_lacks("stderr", &out.stderr, "Go forward instead");
    });
}

/// The check fails for a cause that lasts (Postmark refuses the request itself, 422): not
/// "try again later" (it would fail again), not "go forward" (nothing is known to be dead),
/// but fix the cause, then roll back.
#[test]
fn a_rollback_whose_check_fails_says_to_fix_it_not_to_go_forward() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    rig.sandbox.add_fault("postmark:GET:/server=422");
    let run_id = rig.run_id();
    let out = rig.rollback(&[]);
    out.exit(Exit::StepFailed).stderr_has(&format!(
        "the check failed, so nothing is known to be dead: fix what stops it (the probe's credential, the runbook), then run `runbook rollback {run_id}` again"
    ));
    assert_lacks("stderr", &out.stderr, "Go forward instead");
    assert_lacks("stderr", &out.stderr, "once the vendor answers");
}

/// A Postmark rotation killed at `point`, after which someone put raxx-api-staging back on
/// the old token by hand.
fn staging_put_back_after(point: &str) -> Rig {
    let rig = Rig::new();
    rig.crash("postmark", point);
    set_app_token(&rig.sandbox, "raxx-api-staging", OLD_TOKEN);
    rig
}

/// After the run stopped, someone put raxx-api-staging back on the old token by hand. The
/// rollback reads every target first: staging no longer holds what the run wrote, so it is
/// left alone (not written, not restarted) and the rollback says it is partial; the rest is
/// restored.
#[test]
fn a_rollback_leaves_alone_what_changed_since_the_run() {
    let rig = staging_put_back_after("after:propagate");
    let patches = |s: &serde_json::Value| served(s, "PATCH", "/apps/raxx-api-staging/config-vars");
    let before = patches(&rig.state());
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok)
        .stderr_has("≠ heroku::set_config on raxx-api-staging: changed since this run (POSTMARK_SERVER_TOKEN holds secret(…")
        .stderr_has("partly rolled back: what changed since this run was left alone: raxx-api-staging (POSTMARK_SERVER_TOKEN holds secret(…c001))")
        // The summary lists it too (before, only the warning above; hostile review).
        .stdout_has("Left alone (changed by someone since the run; not undone, not overwritten):\n  propagate · heroku::set_config on raxx-api-staging: POSTMARK_SERVER_TOKEN holds secret(…c001)")
        // A step with a target left alone is not said to be undone whole (fault review).
        .stdout_has("propagate (except what is left alone, below)");
    // The operator sees what is true at the vendors before being asked to undo anything.
    let refreshed = out.stdout.find(
        "= heroku::set_config on raxx-api-prod: holds what this run wrote; its undo restores it",
    );
    let asked = out.stdout.find("Undo these now?");
    assert!(
        matches!((refreshed, asked), (Some(r), Some(a)) if r < a),
        "{}",
        out.stdout
    );
    // What the undo restores does not name staging, found changed just above (before, the
    // list the operator confirms named it under "restores").
    out.stdout_has("propagate · its undo reverses: heroku::set_config on raxx-api-prod · left alone (changed since the run): heroku::set_config on raxx-api-staging");
    let state = rig.state();
    assert_eq!(patches(&state), before, "staging was not written again");
    assert_back_on_old_token(&state);
    assert!(rig.journal().contains("\"type\":\"refreshed\",\"step\":\"propagate\",\"function\":\"heroku::set_config\",\"target\":\"raxx-api-staging\",\"holds\":\"changed\""));
    // The status says what is true: the run's changes are undone, staging is as someone left it.
    assert_eq!(rig.runs()[0]["settled"], "partly rolled back");
    rig.runbook(&["runs", &rig.run_id()], &[])
        .exit(Exit::Ok)
        .stdout_has("refresh: heroku::set_config on raxx-api-staging: changed since this run");
    // The audit log's end of the run and the evidence name what was left alone (before:
    // only `status=partly_rolled_back`, and the pack's writes said propagate was undone).
    let run_id = rig.run_id();
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    let completed: serde_json::Value = serde_json::from_str(
        audit
            .lines()
            .rev()
            .find(|l| l.contains(&run_id) && l.contains("\"run.completed\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        completed["context"]["left_alone"],
        serde_json::json!(["propagate · heroku::set_config on raxx-api-staging"]),
        "{completed}"
    );
    let pack = rig.runbook(&["evidence", &run_id], &[]).json();
    assert_eq!(
        pack["left_alone"][0]["target"], "raxx-api-staging",
        "{pack}"
    );
    assert_eq!(pack["left_alone"][0]["holds"], "changed", "{pack}");
    // Signed, it verifies; signed again without it, it does not (verify rebuilds it).
    let cmd = |args: &[&str]| rig.runbook(args, &[]);
    cmd(&["evidence", "keygen", "--out", "keys"]).exit(Exit::Ok);
    let text = crate::support::signed_pack(rig.path(), &cmd, &run_id);
    cmd(&[
        "evidence",
        "verify",
        "pack.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .exit(Exit::Ok)
    .stdout_has("verified: run");
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    forged["left_alone"] = serde_json::json!([]);
    crate::evidence::verify_forged(rig.path(), &cmd, &mut forged)
        .exit(Exit::StepFailed)
        .stderr_has("its `left_alone` is not what its journal records (edited)");
}

/// Killed once generate had staged the new token; then someone staged a value of their own
/// under the same name. The rollback reads it changed and leaves it alone: generate's undo,
/// a delete (not the set the run wrote), does not remove it.
#[test]
fn an_undo_that_deletes_leaves_alone_a_value_changed_since_the_run() {
    const THEIRS: &str = "someone-elses-staged-token-0000000001";
    let rig = Rig::new();
    rig.crash("postmark", "after:generate");
    assert_eq!(
        rig.sandbox
            .set_infisical_secret("POSTMARK_SERVER_TOKEN_PENDING", THEIRS),
        200
    );
    // The token the run generated is no longer staged to be read back: the operator gives it.
    rig.file("answers.toml", &new_token_answer(&rig.state()));
    let out = rig.rollback(&["--answers", "answers.toml"]);
    out.exit(Exit::Ok).stderr_has(
        "≠ infisical::set_secret on POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/: changed since this run",
    );
    assert!(in_infisical(&rig.state(), "POSTMARK_SERVER_TOKEN_PENDING"));
    assert_eq!(
        secret_value(&rig.state(), "POSTMARK_SERVER_TOKEN_PENDING"),
        THEIRS,
        "{}",
        out.stdout
    );
    assert_eq!(rig.runs()[0]["settled"], "partly rolled back");
}

/// A Postmark rotation stopped by `fault` (--no-rollback): its lock released, its changes
/// in place.
fn stopped_by(fault: &str) -> (Rig, String) {
    let rig = Rig::new();
    rig.sandbox.add_fault(fault);
    rig.exec("postmark", &["--no-rollback"])
        .exit(Exit::StepFailed);
    let run_id = rig.run_id();
    (rig, run_id)
}

/// Propagate's write to staging got a 500 (its outcome unknown), the run stopped; during
/// the incident someone set staging by hand. The resume read staging back, said "left
/// alone", then wrote it again over the hand fix and went on to revoke the old token (way-
/// back review, with sendgrid and infisical-sync). It now stops and asks whether what
/// staging holds is the value from before the run; the operator's word lets it go on.
#[test]
fn a_resume_does_not_write_over_a_target_a_lost_write_may_have_missed() {
    const HAND: &str = "a-token-set-by-hand-during-the-incident";
    let (rig, run_id) = stopped_by("heroku:PATCH:/apps/raxx-api-staging/config-vars=500:always");
    rig.sandbox.clear_faults();
    set_app_token(&rig.sandbox, "raxx-api-staging", HAND);
    let patches = |s: &serde_json::Value| served(s, "PATCH", "/apps/raxx-api-staging/config-vars");
    let before = rig.state();
    let out = rig.resume(&[]);
    out.exit(Exit::StepFailed)
        .stdout_has("· heroku::set_config on raxx-api-staging: may have applied, but does not hold what this run wrote (POSTMARK_SERVER_TOKEN holds secret(…dent))\n")
        .stderr_has("✗ not resumed: a write of this run may have applied and its target holds another value now: raxx-api-staging (POSTMARK_SERVER_TOKEN holds secret(…dent))")
        .stderr_has("\"resume.rewrite\" = true")
        .stderr_has(&format!("roll back (`runbook rollback {run_id}`, which leaves it alone)"));
    out.assert_absent(HAND);
    let state = rig.state();
    assert_eq!(
        app_token(&state, "raxx-api-staging"),
        HAND,
        "the hand fix stays"
    );
    assert_eq!(patches(&state), patches(&before), "staging was not written");
    assert!(
        state["postmark"]["servers"][0]["ApiTokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == OLD_TOKEN),
        "the old token is not revoked"
    );
    // The operator says that is the value from before the run (here it is not, which only
    // the operator can tell): the step writes staging again and the run goes on.
    rig.file("rewrite.toml", "\"resume.rewrite\" = true\n");
    let resumed = rig.resume(&["--answers", "rewrite.toml"]);
    resumed
        .exit(Exit::Ok)
        .stderr_has("writing them again: they hold the value from before this run, as the operator said (resume.rewrite)");
    assert_ne!(app_token(&rig.state(), "raxx-api-staging"), HAND);
}

/// Stopped at verify: Raptor refused the downstream test email once.
fn stopped_at_verify() -> (Rig, String) {
    stopped_by("raptor:POST:/api/notifications/test-email=500:once")
}

/// A rollback killed inside propagate's undo, after it put an app back on the old token:
/// the rollback run again reads that app as this run's own undo left it, not as "changed
/// since this run". It is not left alone: the undo waits for it again (its dynos may not be
/// up on the restoring release yet), and the run ends rolled back, not partly.
#[test]
fn a_rollback_run_again_knows_what_its_own_undo_restored() {
    let (rig, run_id) = stopped_at_verify();
    let killed = rig.runbook(
        &["rollback", &run_id, "--yes"],
        &[("RUNBOOK_CRASH_AT", "inside:propagate")],
    );
    assert_eq!(killed.code, -9, "killed:\n{}", killed.stderr);
    // Going forward over a half-undone run is refused: the rollback is to be finished.
    rig.resume(&[])
        .exit(Exit::StepFailed)
        // Either app's restoring answer may come first, and the other's may be in too.
        .stderr_has("✗ not resumed: this run's rollback stopped part way (the undo of propagate did not finish; it already put back raxx-api-")
        .stderr_has(&format!("Finish it with `runbook rollback {run_id}`"));
    let polls = |s: &serde_json::Value| served(s, "GET", "/apps/raxx-api-prod/dynos");
    let before = rig.state();
    // The app the killed undo put back: either answer may have come first.
    let restored = ["raxx-api-prod", "raxx-api-staging"]
        .into_iter()
        .find(|app| app_token(&before, app) == OLD_TOKEN)
        .expect("the killed undo put one app back");
    let config = format!("/apps/{restored}/config-vars");
    let patches = served(&before, "PATCH", &config);
    let again = rig.rollback(&[]);
    again.exit(Exit::Ok)
        // The staging copy this run's cleanup removed reads as such, not as a script error.
        .stdout_has("infisical::set_secret on POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/: it is not there: removed since, by this run's cleanup or by hand; its undo runs as the journal says");
    assert_lacks("stdout", &again.stdout, "Runtime error");
    let state = rig.state();
    assert!(
        polls(&state) > polls(&before),
        "the undo waited for the dynos again"
    );
    assert_eq!(
        served(&state, "PATCH", &config),
        patches,
        "an app already back on the old token is not set (and restarted) again"
    );
    assert_lacks("stderr", &again.stderr, "changed since this run");
    assert_lacks("stderr", &again.stderr, "left alone");
    again.stdout_has("restored by this run's rollback");
    assert_back_on_old_token(&rig.state());
    assert_eq!(rig.runs()[0]["settled"], "rolled back");
}

/// The same app, with the rollback killed after its undo put one var back: the other var
/// hand-set since is someone else's change, not the run's own restore (the undo's write
/// covered the first var only), so the app is left alone whole.
#[test]
fn what_the_undo_put_back_under_one_var_does_not_cover_another() {
    let rig = two_vars_on_prod();
    let killed = rig.runbook(
        &["exec", "postmark", "--yes", "--answers", "include.toml"],
        &[("RUNBOOK_CRASH_AT", "after:propagate")],
    );
    assert_eq!(killed.code, -9, "{}", killed.stderr);
    let undoing = rig.runbook(
        &["rollback", &rig.run_id(), "--yes"],
        &[("RUNBOOK_CRASH_AT", "inside:propagate")],
    );
    assert_eq!(undoing.code, -9, "{}", undoing.stderr);
    let by_hand = "c0ffee00-0000-4000-8000-0000000fa11d";
    let state = rig.state();
    let vars = &state["heroku"]["apps"]["raxx-api-prod"]["config_vars"];
    // Which var the undo put back first; the other is the one someone sets by hand.
    let other = if vars["POSTMARK_SERVER_TOKEN"] == OLD_TOKEN {
        "POSTMARK_TOKEN"
    } else {
        "POSTMARK_SERVER_TOKEN"
    };
    assert_ne!(
        vars[other], OLD_TOKEN,
        "the undo put back one var only: {vars}"
    );
    set_app_var(&rig.sandbox, "raxx-api-prod", other, by_hand);
    rig.rollback(&[]).exit(Exit::Ok).stderr_has(
        "≠ heroku::set_config on raxx-api-prod: changed under another of its writes, so left alone whole",
    ).stderr_has(
        "partly rolled back: what changed since this run was left alone: raxx-api-prod",
    );
    let state = rig.state();
    assert_eq!(
        state["heroku"]["apps"]["raxx-api-prod"]["config_vars"][other], by_hand,
        "the hand-set var is kept"
    );
}

/// The canary world with raxx-api-prod holding the token under a second var too, and the
/// answer that includes it in the run (`include.toml`).
fn two_vars_on_prod() -> Rig {
    use crate::support::canary_with;
    let old = "c0ffee00-0000-4000-8000-00000000c001";
    let rig = Rig::with_scenario_text(&canary_with(
        &format!("config = {{ POSTMARK_SERVER_TOKEN = \"{old}\", RAPTOR_ENV = \"production\" }}"),
        &format!("config = {{ POSTMARK_SERVER_TOKEN = \"{old}\", POSTMARK_TOKEN = \"{old}\", RAPTOR_ENV = \"production\" }}"),
    ));
    rig.file(
        "include.toml",
        "\"precheck.unlisted.heroku.raxx-api-prod.POSTMARK_TOKEN\" = \"include\"\n",
    );
    rig
}

/// An app that holds the token under a second var, included in the run: propagate writes it
/// twice (one write per var). Someone then hand-sets one of the two. The app changed since
/// the run, so the whole app is left alone; before, the write whose var still held the new
/// token decided, and the rollback overwrote the hand-set var.
#[test]
fn an_app_changed_under_one_of_its_vars_is_left_alone_whole() {
    let rig = two_vars_on_prod();
    let killed = rig.runbook(
        &["exec", "postmark", "--yes", "--answers", "include.toml"],
        &[("RUNBOOK_CRASH_AT", "after:propagate")],
    );
    assert_eq!(killed.code, -9, "{}", killed.stderr);
    let by_hand = "c0ffee00-0000-4000-8000-0000000fa11d";
    set_app_token(&rig.sandbox, "raxx-api-prod", by_hand);
    rig.rollback(&[]).exit(Exit::Ok).stderr_has(
        "partly rolled back: what changed since this run was left alone: raxx-api-prod",
    );
    let state = rig.state();
    assert_eq!(
        app_token(&state, "raxx-api-prod"),
        by_hand,
        "the hand-set var is kept"
    );
    assert_eq!(app_token(&state, "raxx-api-staging"), OLD_TOKEN);
}

/// A rotation stopped halfway leaves its new token valid and in every app. A new rotation of
/// the same secret stops before any write, names the run and what it left, and says how to
/// finish it; once it is rolled back, the rotation runs.
#[test]
fn an_unfinished_run_stops_the_next_rotation_before_any_write() {
    let (rig, run_id) = stopped_at_verify();
    let before = writes(&rig.state()).len();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run of this rotation is unfinished: {run_id} (started "
        ))
        .stderr_has("failed at step verify) left in effect: postmark::dashboard_new_token on dashboard: new API token on raxx-prod")
        .stderr_has("heroku::set_config on raxx-api-staging")
        .stderr_has(&format!("continue it with `runbook resume {run_id}`, undo it with `runbook rollback {run_id}`, or, when it can do neither, end it with `runbook abandon {run_id} --reason TEXT`"));
    assert_eq!(
        writes(&rig.state()).len(),
        before,
        "the new run wrote nothing"
    );
    rig.rollback(&[]).exit(Exit::Ok);
    rig.exec("postmark", &[]).exit(Exit::Ok);
    assert_rotated(&rig.state(), "after the second rotation");
}

/// `exec --break-lock` while an earlier run of the rotation is unfinished (killed, its lock
/// left): the new run is refused, and now before the lock is broken. Before, the lock was
/// broken first and then the start refused: a live holder (`--lease-id`) was stopped for
/// nothing, and nothing recorded who broke its lock (cold review).
#[test]
fn a_refused_start_does_not_break_the_lock_first() {
    let rig = Rig::new();
    rig.crash("postmark", "after:propagate");
    let run_id = rig.run_id();
    let lock_of = |rig: &Rig| -> Vec<String> {
        std::fs::read_dir(rig.path().join("state/locks"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    };
    let before = lock_of(&rig);
    assert_eq!(before.len(), 1);
    assert!(before[0].contains(&run_id), "{before:?}");
    rig.exec("postmark", &["--break-lock"])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run of this rotation is unfinished: {run_id} (started "
        ));
    assert_eq!(lock_of(&rig), before, "the lock is left as it was");
    rig.resume(&[]).exit(Exit::Ok);
}

/// The journal of a rotation stopped halfway is damaged in its middle (a bad disk, a hand
/// edit). Before, the search for unfinished runs skipped a journal it could not read, and
/// the next rotation went ahead over the run. Now it stops before any write and names the
/// file; once the team has moved that journal away, the rotation runs.
#[test]
fn an_unreadable_journal_of_an_unfinished_run_stops_the_next_rotation() {
    let (rig, run_id) = stopped_at_verify();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = rig.journal();
    let mut lines: Vec<&str> = journal.lines().collect();
    assert!(lines.len() > 3, "{journal}");
    // Near its end: the part before it shows the writes the run made.
    let at = lines.len() - 2;
    lines[at] = "{not a record";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let before = writes(&rig.state()).len();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {run_id} (started "
        ))
        .stderr_has(&format!("is damaged at line {}: not a JSON record", at + 1))
        .stderr_has(&format!(
            "if that run is over, end it with `runbook abandon {run_id} --reason TEXT` (its journal is kept as it is)"
        ));
    assert_eq!(
        writes(&rig.state()).len(),
        before,
        "the new run wrote nothing"
    );
    // `due` cannot say whether that run rotated the secret, or left it half done: it says
    // so on the runbook's row, and how to end it.
    rig.runbook(&["due"], &[])
        .exit(Exit::Ok)
        .stderr_has(&format!("is damaged at line {}: not a JSON record", at + 1))
        .stderr_has(&format!(
            "it cannot be resumed: read it, finish or undo its rotation at the vendors if needed, then end the run with `runbook abandon {run_id} --reason TEXT`"
        ))
        .stdout_has(&format!(
            "unfinished may be: the journal of run {run_id} cannot be read"
        ));
    // Abandoned as it is: the journal stays byte for byte, the audit log says why, and
    // the rotation runs.
    let damaged = std::fs::read(&path).unwrap();
    rig.runbook(&["abandon", &run_id, "--reason", "disk fault; vendors checked by hand"], &[])
        .exit(Exit::Ok)
        .stdout_has(&format!("Run {run_id} abandoned by "))
        .stdout_has(&format!(
            "Its journal cannot be read (damaged at line {}: not a JSON record",
            at + 1
        ))
        .stdout_has("It blocks no new rotation now")
        .stdout_has("it is kept as it is, and the audit log records this abandonment with the journal's SHA-256")
        .stdout_has("Left in place as far as the part that can be read shows")
        .stdout_has("generate · postmark::dashboard_new_token on dashboard: new API token on raxx-prod")
        .stdout_has("propagate · heroku::set_config on raxx-api-staging");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "the journal is kept as it was"
    );
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    let entry = audit
        .lines()
        .rev()
        .find(|l| l.contains("run.abandoned"))
        .expect("an abandon entry");
    let entry: serde_json::Value = serde_json::from_str(entry).unwrap();
    assert_eq!(entry["run_id"], run_id.as_str());
    assert_eq!(
        entry["context"]["journal"]["sha256"],
        runbook_core::text::sha256_hex(&damaged).as_str()
    );
    let due = rig.runbook(&["due"], &[]);
    due.exit(Exit::Ok);
    assert!(!due.stdout.contains("may be:"), "{}", due.stdout);
    rig.runbook(&["runs", &run_id], &[])
        .exit(Exit::Usage)
        .stderr_has("abandoned it as it is at ")
        .stderr_has("it blocks no new rotation, and its journal is kept for the record");
    rig.exec("postmark", &[]).exit(Exit::Ok);
    // The audit check still names the damage, with who accepted it, and passes.
    rig.runbook(&["audit", "verify"], &[])
        .exit(Exit::Ok)
        .stderr_has(&format!(
            "damaged, abandoned as it is: the journal of run {run_id}: journal line {}: not valid JSON (edited or truncated) (abandoned by unknown@vm at ",
            at + 1
        ))
        .stderr_has(": disk fault; vendors checked by hand)");
    // Once the journal changes, the run may be going on again: refused as before.
    let mut changed = damaged.clone();
    changed.extend_from_slice(b"{\"type\":\"step_started\"}\n");
    std::fs::write(&path, changed).unwrap();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {run_id} (started "
        ));
    rig.runbook(&["audit", "verify"], &[])
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
            "BROKEN: the journal of run {run_id}: journal line {}: ",
            at + 1
        ));
}

/// An unreadable journal whose first line names another runbook, or a dry run, does not
/// stop this rotation; one whose first line cannot be read either (which rotation it was is unknown)
/// does.
#[test]
fn an_unreadable_journal_stops_only_the_rotation_it_may_belong_to() {
    let rig = Rig::new();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    let first_run = rig.run_id();
    let journal = rig.journal();
    let other = "20250101T000000000Z-0a0a0a";
    // A journal of its own: lines copied from another run say nothing of this one.
    let mut lines: Vec<String> = journal
        .lines()
        .map(|l| l.replace(&first_run, other))
        .collect();
    assert!(
        lines[0].contains(r#""runbook":"postmark-server-token""#),
        "{}",
        lines[0]
    );
    // A dry run of this very rotation changes nothing: it does not stop it.
    let dry = lines[0].replace(r#""effect":"apply""#, r#""effect":"dry-run""#);
    assert_ne!(dry, lines[0]);
    let mut dry_run = lines.clone();
    dry_run[0] = dry;
    dry_run[2] = "{not a record".into();
    dry_run.pop();
    let runs = rig.path().join("state/runs");
    std::fs::write(
        runs.join(format!("{other}.jsonl")),
        dry_run.join("\n") + "\n",
    )
    .unwrap();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    lines[0] = lines[0].replace(
        r#""runbook":"postmark-server-token""#,
        r#""runbook":"sendgrid""#,
    );
    lines[2] = "{not a record".into();
    lines.pop();
    std::fs::write(runs.join(format!("{other}.jsonl")), lines.join("\n") + "\n").unwrap();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    lines[0] = "{not a record either".into();
    std::fs::write(runs.join(format!("{other}.jsonl")), lines.join("\n") + "\n").unwrap();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
        "an earlier run may be unfinished, and its journal cannot be read: {other} (which runbook it was is unknown): the journal "
    ));
    // Which rotation it was is unknown; no lock names it, so it can be abandoned as it is.
    rig.runbook(&["abandon", other, "--reason", "an old copy"], &[])
        .exit(Exit::Ok)
        .stdout_has("The part of its journal that can be read shows no change in effect");
    rig.exec("postmark", &[]).exit(Exit::Ok);
    // A journal read whole whose start is gone is no run the check can place: refused too.
    let rest: Vec<&str> = journal.lines().skip(1).collect();
    let unsettled = rest[..rest.len() - 1].join("\n") + "\n";
    std::fs::write(runs.join(format!("{other}.jsonl")), unsettled).unwrap();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "{other} (which runbook it was is unknown): the journal "
        ))
        .stderr_has("is damaged at line 1: no run_started record");
    // Not text at all (a bad sector): which rotation it was is unknown, and it says so
    // with the same help, not as a bare read error.
    std::fs::write(runs.join(format!("{other}.jsonl")), [0xff, 0xfe, b'\n']).unwrap();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {other} (which runbook it was is unknown): "
        ))
        .stderr_has(&format!(
            "if that run is over, end it with `runbook abandon {other} --reason TEXT`"
        ));
    // `audit verify` names it among the journals that do not hold, and goes on.
    rig.runbook(&["audit", "verify"], &[])
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
            "BROKEN: the journal of run {other}: it cannot be read: "
        ));
    // Its bytes are what abandon records.
    rig.runbook(&["abandon", other, "--reason", "a bad sector"], &[])
        .exit(Exit::Ok)
        .stdout_has("Its journal cannot be read (not text (not UTF-8))");
    rig.exec("postmark", &[]).exit(Exit::Ok);
    rig.runbook(&["audit", "verify"], &[])
        .exit(Exit::Ok)
        .stderr_has(&format!(
            "damaged, abandoned as it is: the journal of run {other}: it cannot be read: "
        ))
        .stderr_has(": a bad sector)");
    // Not one whole line (a crash right after the file was made): no record was durable,
    // so nothing was sent; no run happened, and nothing is blocked.
    std::fs::remove_file(runs.join(format!("{other}.jsonl"))).unwrap();
    let never = "20250102T000000000Z-0b0b0b";
    for text in ["", "{\"v\":1,\"run_id\":\"2025"] {
        std::fs::write(runs.join(format!("{never}.jsonl")), text).unwrap();
        rig.exec("postmark", &[]).exit(Exit::Ok);
    }
    // The journal of a run the audit log knows, cut to a fragment: it was written, then
    // damaged, and may be anything.
    std::fs::write(
        runs.join(format!("{first_run}.jsonl")),
        "{\"v\":1,\"run_id\":\"2026",
    )
    .unwrap();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {first_run} (runbook postmark-server-token, as the audit log names it): "
        ))
        .stderr_has("it holds no whole record, though the audit log records the run");
}

/// A journal whose first line is gone: the audit log's entries of the run still name its
/// runbook, so it stops that runbook's rotations and not another's.
#[test]
fn a_journal_without_its_first_line_stops_the_runbook_the_audit_log_names() {
    let rig = Rig::new();
    rig.file(
        "t.rhai",
        "runbook(#{ id: \"t\", title: \"T\" });\nstep(\"a\", \"A\", |ctx| { print(\"a\"); });\n",
    );
    rig.exec("t.rhai", &[]).exit(Exit::Ok);
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = journal.lines().collect();
    lines[0] = "{not a record";
    lines.pop();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    // Nor does it leave postmark's due date in doubt.
    let due = rig.runbook(&["due"], &[]);
    due.exit(Exit::Ok).stdout_has("postmark-server-token");
    assert!(!due.stdout.contains("may be:"), "{}", due.stdout);
    rig.exec("t.rhai", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {run_id} (runbook t, as the audit log names it): "
        ));
}

/// The downstream check failed and the team decides to keep things as they are (the new
/// token works, a ticket tracks the cleanup). `abandon` ends the run without touching a
/// vendor: it records what stays and how to clean up, frees the rotation, and the run reads
/// as abandoned in `runs`, the audit log and the evidence; `due` and `list` said unfinished
/// until then and never counted it as a rotation. (A rehearsal, here: they say so, since it
/// blocks no production rotation; they did not.)
#[test]
fn abandon_ends_a_run_records_what_it_leaves_and_frees_the_rotation() {
    let (rig, run_id) = stopped_at_verify();
    rig.runbook(&["due"], &[])
        .exit(Exit::Ok)
        .stdout_has("never")
        .stdout_has("unfinished rehearsal since ")
        .stdout_has(&format!("({run_id})"));
    rig.runbook(&["list"], &[])
        .exit(Exit::Ok)
        .stdout_has("(unfinished rehearsal since ");
    assert_eq!(rig.runs()[0]["unfinished"], true);
    let before = writes(&rig.state()).len();

    rig.runbook(&["abandon", &run_id, "--reason", "  "], &[])
        .exit(Exit::Usage)
        .stderr_has("abandon needs a reason");
    let out = rig.runbook(
        &[
            "abandon",
            &run_id,
            "--reason",
            "new token kept; INC-42 tracks the cleanup",
        ],
        &[],
    );
    out.exit(Exit::Ok)
        .stdout_has(&format!("Run {run_id} abandoned by unknown@"))
        .stdout_has("propagate · heroku::set_config on raxx-api-prod")
        .stdout_has(
            "not undone: do by hand what step 'propagate''s undo does in postmark-server-token",
        )
        // The staging copy's removal is a cleanup: no hand work puts it back.
        .stdout_has(
            "propagate · infisical::delete_secret on POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/\n      a cleanup (a leftover removed): nothing to restore",
        )
        .stdout_has("Its lock is released");
    assert_eq!(
        writes(&rig.state()).len(),
        before,
        "abandon changed nothing at a vendor"
    );
    rig.runbook(&["abandon", &run_id, "--reason", "again"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!("run {run_id} was already abandoned"));

    let runs = rig.runs();
    assert_eq!(runs[0]["settled"], "abandoned", "{runs}");
    assert_eq!(runs[0]["unfinished"], false);
    assert_eq!(runs[0]["attempts"][0]["mode"], "abandon");
    rig.runbook(&["runs", &run_id], &[])
        .exit(Exit::Ok)
        .stdout_has("abandoned by unknown@");
    assert!(rig.journal().contains("\"type\":\"abandoned\""));
    let audit = std::fs::read_to_string(rig.path().join("state/audit.jsonl")).unwrap();
    assert!(audit.contains("\"action\":\"run.abandoned\""), "{audit}");
    assert!(audit.contains("INC-42 tracks the cleanup"));
    let pack = rig.runbook(&["evidence", &run_id], &[]).json();
    assert_eq!(
        pack["abandoned"]["reason"], "new token kept; INC-42 tracks the cleanup",
        "{pack}"
    );
    let due = rig.runbook(&["due"], &[]);
    assert_lacks("stdout", &due.stdout, "unfinished");
    // The rotation is free again.
    rig.exec("postmark", &[]).exit(Exit::Ok);
    rig.assert_no_secrets_on_disk();
}

/// Propagate patched raxx-api-prod and Heroku refused raxx-api-staging; the operator stopped
/// there. A later rollback undoes the applied half of the failed step too (not only the
/// completed steps), and exactly that half: staging is never written.
#[test]
fn a_later_rollback_undoes_the_applied_half_of_a_failed_step() {
    let (rig, _) = stopped_by("heroku:PATCH:/apps/raxx-api-staging/config-vars=422:always");
    let state = rig.state();
    assert_ne!(
        app_token(&state, "raxx-api-prod"),
        OLD_TOKEN,
        "prod got the new token"
    );
    let staging = |s: &serde_json::Value| served(s, "PATCH", "/apps/raxx-api-staging/config-vars");
    let before = staging(&state);
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok);
    assert!(
        out.stdout.contains("↶ undoing propagate"),
        "the failed step's applied half is undone\n{}",
        out.stdout
    );
    let state = rig.state();
    assert_back_on_old_token(&state);
    assert_eq!(
        staging(&state),
        before,
        "staging, never changed, is not written"
    );
    assert_eq!(rig.runs()[0]["settled"], "rolled back");
}

/// Run A stopped at verify, was abandoned, and run B then rotated the same secret; A's
/// journal is put back as it was before the abandon (so A can be resumed or rolled back).
/// Returns the rig, A and B.
fn a_run_and_the_rotation_after_it() -> (Rig, String, String) {
    let (rig, a) = stopped_at_verify();
    // Away while B runs, then back as it was (as from another machine). Not abandoned and
    // put back older: the audit log would then show it cut back, which resume and rollback
    // refuse (`a_journal_the_audit_log_shows_cut_back_is_not_resumed_or_rolled_back`).
    let journal = rig.path().join(format!("state/runs/{a}.jsonl"));
    let away = rig.path().join("away.jsonl");
    std::fs::rename(&journal, &away).unwrap();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    let b = rig.run_id();
    assert_ne!(a, b);
    std::fs::rename(&away, &journal).unwrap();
    (rig, a, b)
}

/// A forced rollback of A, its id typed back, reconciles with the vendors: the later
/// rotation's token stays everywhere it was put, and works.
fn forced_rollback_leaves(rig: &Rig, a: &str, b_token: &str) {
    forced_rollback(rig, a, a)
        .stderr_has("≠ heroku::set_config on raxx-api-prod: changed since this run");
    let after = rig.state();
    assert_everywhere(&after, b_token);
    assert_every_token_works(&after, "after the forced rollback");
}

/// `rollback A --yes --force`, with `typed` typed back for the run id.
fn forced_rollback(rig: &Rig, a: &str, typed: &str) -> crate::support::Output {
    rig.file(
        "typed.toml",
        &format!("\"rollback.superseded\" = \"{typed}\"\n"),
    );
    rig.runbook(
        &["rollback", a, "--yes", "--force", "--answers", "typed.toml"],
        &[],
    )
}

/// Run A stopped after propagate; a later run B rotated the same secret to the end (A's
/// journal was away, then put back, as a journal from another machine would be). Rolling A back would put back the token B replaced: refused,
/// naming B, and `runs` says A is superseded. --force needs A's id typed back, and even then
/// the refresh leaves every target B changed alone.
#[test]
fn a_superseded_run_is_never_rolled_back_over_the_later_rotation() {
    let (rig, a, b) = a_run_and_the_rotation_after_it();
    let before = rig.state();
    let b_token = current_infisical(&before);
    assert_everywhere(&before, &b_token);

    rig.runbook(&["rollback", &a, "--yes"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!("run {a} is superseded by run {b} (started "))
        .stderr_has("which rotated the same secret after it: rolling it back would put back what that run replaced")
        .stderr_has("pass --force and type its id back");
    rig.runbook(&["resume", &a, "--yes"], &[])
        .exit(Exit::Usage)
        .stderr_has("resuming it would write its values over what that run put in place");
    // The REPL attached to A could undo A's steps or run them again, over B's rotation:
    // refused the same way (before, it attached, and `:undo propagate` put A's old token
    // back on the apps).
    rig.runbook_stdin(&["repl", "--attach", &a, "--yes"], &[], ":undo propagate\n")
        .exit(Exit::Usage)
        .stderr_has(&format!("run {a} is superseded by run {b} (started "))
        .stderr_has("writing from it at the REPL would put back or over what that run put in place")
        .stderr_has("to attach to run");
    assert_everywhere(&rig.state(), &b_token);
    let runs = rig.runs();
    let row = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == a.as_str())
        .unwrap();
    assert_eq!(row["superseded_by"], b.as_str());
    rig.runbook(&["runs"], &[])
        .exit(Exit::Ok)
        .stdout_has(&format!("(superseded by {b})"));
    // A forced rollback with `typed` typed back for the run id.
    forced_rollback(&rig, &a, "not-the-id")
        .exit(Exit::Usage)
        .stderr_has("not done: the run id was not typed back");
    assert_eq!(
        writes(&rig.state()).len(),
        writes(&before).len(),
        "nothing was written"
    );

    // A forced rollback of A leaves B's rotation in place.
    forced_rollback_leaves(&rig, &a, &b_token);
}

/// The later rotation's journal is damaged (a bad disk, a hand edit). Before, the search
/// for a later run left a journal it could not read out, so the older run read as not
/// superseded and its rollback went ahead over the later rotation. Now it is refused, naming
/// that journal; a rollback forced with the id typed back still reconciles with the vendors.
#[test]
fn a_rollback_is_refused_while_a_later_journal_of_the_rotation_cannot_be_read() {
    let (rig, a, b) = a_run_and_the_rotation_after_it();
    let b_path = rig.path().join(format!("state/runs/{b}.jsonl"));
    let b_journal = std::fs::read_to_string(&b_path).unwrap();
    let mut lines: Vec<&str> = b_journal.lines().collect();
    lines[3] = "{not a record";
    std::fs::write(&b_path, lines.join("\n") + "\n").unwrap();
    let before = rig.state();
    let b_token = current_infisical(&before);

    for (verb, what) in [
        (
            "rollback",
            "rolling it back would put back what that run replaced",
        ),
        (
            "resume",
            "resuming it would write its values over what that run put in place",
        ),
    ] {
        rig.runbook(&[verb, &a, "--yes"], &[])
            .exit(Exit::Usage)
            .stderr_has(&format!(
                "run {a} may be superseded: the journal of a later run, {b} (started "
            ))
            .stderr_has("is damaged at line 4: not a JSON record")
            .stderr_has(&format!("and that run may have rotated the same secret after it: {what}"))
            .stderr_has("read that journal by hand (one JSON record per line) and check the vendors first; ")
            .stderr_has("pass --force and type its id back");
    }
    assert_eq!(
        writes(&rig.state()).len(),
        writes(&before).len(),
        "nothing was written"
    );
    // Abandoned as it is, it still may have rotated the secret (it succeeded, here): the
    // refusal stands, and says who abandoned it.
    rig.runbook(&["abandon", &b, "--reason", "read by hand"], &[])
        .exit(Exit::Ok);
    rig.runbook(&["rollback", &a, "--yes"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "run {a} may be superseded: the journal of a later run, {b} (started "
        ))
        .stderr_has("abandoned it as it is at ");
    assert_eq!(
        writes(&rig.state()).len(),
        writes(&before).len(),
        "nothing was written"
    );
    // Forced, with the id typed back: the rollback reconciles with the vendors, and leaves
    // alone what that run changed.
    forced_rollback_leaves(&rig, &a, &b_token);
}

/// An unfinished run, and a later journal that cannot be read: its rotation decides. Of the
/// same rotation, or of one nothing can tell (its first line is damaged too), the rollback
/// is refused; of another runbook's, it goes ahead.
#[test]
fn an_unreadable_later_journal_stops_only_rollbacks_of_its_own_rotation() {
    let (rig, a) = stopped_at_verify();
    let journal = rig.journal();
    let later = "29991231T000000000Z-0a0a0a";
    let first = journal.lines().next().unwrap().replace(&a, later);
    let path = rig.path().join(format!("state/runs/{later}.jsonl"));
    let write = |first: &str| {
        std::fs::write(&path, format!("{first}\n{{not a record\n")).unwrap();
    };
    let before = writes(&rig.state()).len();
    write(&first);
    rig.runbook(&["rollback", &a, "--yes"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "run {a} may be superseded: the journal of a later run, {later} (started "
        ));
    rig.runbook(&["runs", &a], &[])
        .exit(Exit::Ok)
        .stdout_has(&format!(
            "may be superseded by {later}: a later run whose journal cannot be read"
        ));
    write("{not a record either");
    rig.runbook(&["rollback", &a, "--yes"], &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "run {a} may be superseded: the journal of a later run, {later}, cannot be read"
        ));
    assert_eq!(writes(&rig.state()).len(), before, "nothing was written");
    let other = first.replace(
        r#""runbook":"postmark-server-token""#,
        r#""runbook":"sendgrid""#,
    );
    assert_ne!(other, first);
    write(&other);
    rig.runbook(&["rollback", &a, "--yes"], &[]).exit(Exit::Ok);
    assert_back_on_old_token(&rig.state());
}

/// A succeeded run's rollback began, and its last record was damaged on disk: the line
/// ends with its newline, so it was written whole. Before, a reader dropped any last line it
/// could not parse as if a crash had torn it, the run read as succeeded, and the next
/// rotation went ahead over a half-undone one. Now the journal is damaged there and the
/// rotation is refused.
#[test]
fn a_damaged_last_record_does_not_settle_a_run() {
    let rig = Rig::new();
    rig.exec("postmark", &[]).exit(Exit::Ok);
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = std::fs::read_to_string(&path).unwrap();
    let n = journal.lines().count();
    std::fs::write(
        &path,
        format!("{journal}{{\"v\":1,\"run_id\":\"{run_id}\",\"type\":\"undo_st\n"),
    )
    .unwrap();
    let before = writes(&rig.state()).len();
    rig.exec("postmark", &[])
        .exit(Exit::Usage)
        .stderr_has(&format!(
            "an earlier run may be unfinished, and its journal cannot be read: {run_id} (started "
        ))
        .stderr_has(&format!("is damaged at line {}: not a JSON record", n + 1));
    assert_eq!(
        writes(&rig.state()).len(),
        before,
        "the new run wrote nothing"
    );
    // Without its newline the same bytes are a write a crash cut short: dropped, and the
    // run is settled.
    std::fs::write(
        &path,
        format!("{journal}{{\"v\":1,\"run_id\":\"{run_id}\",\"type\":\"undo_st"),
    )
    .unwrap();
    rig.exec("postmark", &[]).exit(Exit::Ok);
}

/// Validate's test email lost its answer (it may have been sent). Sending it again is not
/// safe and nothing at the vendor can be read to tell, so the operator is asked; "done"
/// counts the step as completed on the operator's word, and the ledger says exactly that.
#[test]
fn done_after_a_lost_answer_is_recorded_as_the_operators_word() {
    let rig = Rig::new();
    rig.sandbox.add_fault("postmark:POST:/email=lost:once");
    rig.exec("postmark", &["--no-rollback"])
        .exit(Exit::StepFailed);
    let run_id = rig.run_id();
    rig.file(
        "done.toml",
        &format!(
            "\"validate.rerun\" = \"done\"\n{}",
            new_token_answer(&rig.state())
        ),
    );
    rig.runbook(&["resume", &run_id, "--yes", "--answers", "done.toml"], &[])
        .exit(Exit::Ok)
        .stderr_has("step 'validate' counted as done on the operator's word: nothing at the vendor could be read to check it");
    let journal = rig.journal();
    assert!(
        journal.contains("\"step\":\"validate\",\"outcome\":\"completed\",\"verified\":true,\"confirmed_by\":\"operator\""),
        "{journal}"
    );
    let pack = rig.runbook(&["evidence", &run_id], &[]).json();
    let validate = items(&pack["steps"])
        .iter()
        .rfind(|s| s["id"] == "validate")
        .unwrap();
    assert_eq!(validate["confirmed_by"], "operator", "{pack}");
    assert_rotated(&rig.state(), "after resume");
}

/// The SendGrid app keys live at the simulator (the admin key left out): `(id, key)`.
fn sendgrid_keys(state: &serde_json::Value) -> Vec<(String, String)> {
    scripted(state, "sendgrid", "api_keys")
        .iter()
        .filter(|k| {
            !k["api_key"]
                .as_str()
                .unwrap_or_default()
                .starts_with("SG.sandbox-admin-key")
        })
        .map(|k| {
            (
                k["api_key_id"].as_str().unwrap_or_default().to_string(),
                k["api_key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The SendGrid rotation's first key: the one the sandbox starts with.
const SG_OLD_ID: &str = "kC9vQ3sWQY6v0u1m2o3p4q";

/// Both apps of the SendGrid sandbox hold `key`.
fn sendgrid_apps_hold(state: &serde_json::Value, key: &str, why: &str) {
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["SENDGRID_API_KEY"], key,
            "{app} {why}"
        );
    }
}

/// One 429 on the undo's delete of the new key stopped the rollback at once, as
/// `runbook::step::failed` ("expected HTTP 204, got 429"): the delete by id (a 404 is done)
/// did not say it is safe to repeat, so it was never retried (way-back review). It waits
/// out the vendor's Retry-After and the rollback completes.
#[test]
fn a_rate_limited_delete_in_a_rollback_is_waited_out() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:propagate");
    rig.sandbox
        .add_fault("sendgrid:DELETE=429:retry_after=1:once");
    rig.rollback(&[]).exit(Exit::Ok);
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].0, SG_OLD_ID, "the new key is deleted");
    sendgrid_apps_hold(&state, &keys[0].1, "after the rollback");
}

/// Deletes SendGrid API key `id` with the sandbox's admin key, as someone would in the
/// dashboard.
fn delete_sendgrid_key(rig: &Rig, id: &str) {
    let (status, body) = crate::support::http(
        &rig.sandbox.env["SENDGRID_API_URL"],
        "DELETE",
        &format!("/v3/api_keys/{id}"),
        &[(
            "Authorization",
            "Bearer SG.sandbox-admin-key.000000000000000000000000",
        )],
        "",
    );
    assert_eq!(status, 204, "{body}");
}

/// A SendGrid rotation (through `std/rotation`) stopped after propagate; then the old key
/// was deleted at SendGrid (the rotation was for its exposure). Before, the rollback put
/// the dead key on every app and back into Infisical, then deleted the new key, the only
/// one working: every consumer down, "rollback complete". Now the stdlib declares what
/// rollback restores, the rollback asks SendGrid first, and restores nothing (cold review).
#[test]
fn a_stdlib_rollback_does_not_restore_a_key_deleted_at_the_vendor() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:propagate");
    delete_sendgrid_key(&rig, SG_OLD_ID);
    let keys = sendgrid_keys(&rig.state());
    assert_eq!(keys.len(), 1, "only the new key is left: {keys:?}");
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ ctx.old_value secret(")
        .stderr_has("no longer works (deleted, revoked or expired)")
        .stderr_has("Nothing was undone");
    let state = rig.state();
    assert_eq!(sendgrid_keys(&state), keys, "the new key is not deleted");
    assert_eq!(secret_value(&state, "SENDGRID_API_KEY"), keys[0].1);
    sendgrid_apps_hold(&state, &keys[0].1, "keeps the working key");
}

/// A SendGrid rotation stopped before revoke; then the new key was deleted at SendGrid (an
/// unknown key made at 3 a.m.). Before, the resume went on to revoke and deleted the old
/// key too: both dead, every consumer down. Now a resumed run asks SendGrid whether the new
/// key still works before revoking, stops, and the rollback (the old key works) puts the old
/// key back everywhere; the new key's discard takes "already gone" for done (cold review).
#[test]
fn a_stdlib_resume_does_not_revoke_when_the_new_key_died_meanwhile() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:verify");
    let keys = sendgrid_keys(&rig.state());
    let new: Vec<_> = keys.iter().filter(|(id, _)| id != SG_OLD_ID).collect();
    assert_eq!(new.len(), 1, "{keys:?}");
    delete_sendgrid_key(&rig, &new[0].0);
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("the new SendGrid credential no longer works at SendGrid");
    let state = rig.state();
    let left = sendgrid_keys(&state);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, SG_OLD_ID, "the old key is not revoked");
    assert_eq!(secret_value(&state, "SENDGRID_API_KEY"), left[0].1);
    sendgrid_apps_hold(&state, &left[0].1, "is back on the old key");
}

/// Killed right after SendGrid deleted the old key, before the step checked it is refused.
/// Before, the resumed revoke sent the DELETE again, SendGrid answered 404, and the step
/// failed on every retry: the run never reached its audit entry. A key already gone is
/// what the revoke wants; the check that it is refused decides (cold review).
#[test]
fn a_revoke_whose_delete_went_through_is_finished_by_resume() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "inside:revoke");
    let keys = sendgrid_keys(&rig.state());
    assert!(!keys.iter().any(|(id, _)| id == SG_OLD_ID), "{keys:?}");
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].1, secret_value(&state, "SENDGRID_API_KEY"));
    assert_eq!(rig.runs()[0]["current"], "succeeded");
}

/// A SendGrid run stopped after store (Infisical holds the new key, the apps the old); a
/// colleague then synced the apps with Infisical (the shipped infisical-sync, another lock).
/// Before, the rollback restored Infisical and deleted the new key at SendGrid: both apps
/// held a deleted key, and the rollback said "complete". Create's undo looks for holders of
/// the new key first, and stops naming them.
#[test]
fn a_stdlib_rollback_does_not_delete_a_new_key_a_consumer_holds_now() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:store");
    let keys = sendgrid_keys(&rig.state());
    let new = keys
        .iter()
        .find(|(id, _)| id != SG_OLD_ID)
        .unwrap()
        .1
        .clone();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        crate::support::set_app_var(&rig.sandbox, app, "SENDGRID_API_KEY", &new);
    }
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("the new SendGrid credential may be held now by heroku raxx-api-prod (SENDGRID_API_KEY), heroku raxx-api-staging (SENDGRID_API_KEY): deleting it at SendGrid would break them")
        .stderr_has("end the run instead (runbook abandon");
    let state = rig.state();
    assert!(
        sendgrid_keys(&state).iter().any(|(_, k)| *k == new),
        "the new key is not deleted"
    );
    sendgrid_apps_hold(&state, &new, "keeps the key it was synced to");
}

/// As above, with only staging synced and its config unreadable at the rollback (a 503):
/// not deleted blind (review of this session's fix: an app that could not be read was
/// passed over, and the key deleted under it).
#[test]
fn a_stdlib_rollback_does_not_delete_a_new_key_where_an_app_cannot_be_read() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:store");
    let keys = sendgrid_keys(&rig.state());
    let new = keys
        .iter()
        .find(|(id, _)| id != SG_OLD_ID)
        .unwrap()
        .1
        .clone();
    crate::support::set_app_var(&rig.sandbox, "raxx-api-staging", "SENDGRID_API_KEY", &new);
    rig.sandbox
        .add_fault("heroku:GET:/apps/raxx-api-staging/config-vars=503");
    rig.rollback(&[])
        .exit(Exit::StepFailed)
        .stderr_has("heroku raxx-api-staging (not readable now:");
    let state = rig.state();
    assert!(
        sendgrid_keys(&state).iter().any(|(_, k)| *k == new),
        "the new key is not deleted"
    );
}

/// Killed as revoke started, before it sent anything (Ctrl-C twice during its first read
/// does the same): the old key is intact. Before, the rollback took the step for completed
/// and stopped at it ("cannot roll back past step 'revoke'"), undoing nothing; the check
/// before it had judged the same step not done.
#[test]
fn a_rollback_goes_past_an_irreversible_step_that_died_before_doing_anything() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "started:revoke");
    let keys = sendgrid_keys(&rig.state());
    assert_eq!(keys.len(), 2, "{keys:?}");
    let old = keys
        .iter()
        .find(|(id, _)| id == SG_OLD_ID)
        .unwrap()
        .1
        .clone();
    // The plan the operator confirms says so too: before, it said the rollback would stop
    // at revoke, and an operator who believed it and answered no never rolled back.
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok)
        .stdout_has("rollback complete")
        .stdout_has("  revoke · nothing of it took effect (its journal, or its check at the vendor, says so): nothing to undo");
    assert!(
        !out.stdout.contains("the rollback stops there"),
        "{}",
        out.stdout
    );
    let state = rig.state();
    sendgrid_apps_hold(&state, &old, "is back on the old key");
    assert_eq!(secret_value(&state, "SENDGRID_API_KEY"), old);
    assert!(sendgrid_keys(&state).iter().any(|(id, _)| id == SG_OLD_ID));
}

/// Whether Infisical holds a secret named `name` (not deleted).
fn in_infisical(state: &serde_json::Value, name: &str) -> bool {
    items(&state["infisical"]["secrets"])
        .iter()
        .any(|s| s["secretKey"] == name && s["deleted"] != true)
}

/// Killed right after SendGrid created the new key (its value was only in the answer): the
/// journal kept the key's id with the write's outcome. Resume deletes that key by its id and
/// creates another, which it stages before anything else can fail; the rotation ends with
/// one key, in Infisical and every app, and no key left that nothing records.
#[test]
fn a_crash_right_after_create_is_resumed_without_leaving_a_key_behind() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "inside:create");
    let orphan = sendgrid_keys(&rig.state());
    assert_eq!(
        orphan.len(),
        2,
        "the old key and the one the crash orphaned"
    );
    assert!(
        rig.journal().contains("\"answer\":{\"api_key_id\":"),
        "the id is journalled with the outcome"
    );
    rig.resume(&[])
        .exit(Exit::Ok)
        .stdout_has("deleted the SendGrid credential");
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "only the new key remains: {keys:?}");
    assert!(!keys.contains(&orphan[1]), "the orphan was deleted");
    let current = secret_value(&state, "SENDGRID_API_KEY");
    assert_eq!(keys[0].1, current, "Infisical holds the live key");
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["SENDGRID_API_KEY"],
            current.as_str()
        );
    }
    assert!(
        !in_infisical(&state, "SENDGRID_API_KEY_PENDING"),
        "the staging copy is gone"
    );
    rig.assert_no_secrets_on_disk();
}

/// The same crash, then rollback: the created key is deleted by its recorded id, and the old
/// key stays in use everywhere.
#[test]
fn a_crash_right_after_create_is_rolled_back_by_deleting_the_key_by_id() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    let before = sendgrid_keys(&rig.state());
    rig.crash("sendgrid", "inside:create");
    assert_eq!(sendgrid_keys(&rig.state()).len(), 2);
    rig.rollback(&[]).exit(Exit::Ok);
    let state = rig.state();
    assert_eq!(sendgrid_keys(&state), before, "only the old key remains");
    assert_eq!(secret_value(&state, "SENDGRID_API_KEY"), before[0].1);
    assert!(!in_infisical(&state, "SENDGRID_API_KEY_PENDING"));
}

/// Killed after the new key was staged, inside create: resume reads the staged value back
/// (the create step's verify finds it) instead of creating a second key.
#[test]
fn a_crash_after_staging_resumes_with_the_staged_key() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "after:create");
    assert!(in_infisical(&rig.state(), "SENDGRID_API_KEY_PENDING"));
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].1, secret_value(&state, "SENDGRID_API_KEY"));
    assert!(!in_infisical(&state, "SENDGRID_API_KEY_PENDING"));
}

/// `rollback` without --yes is the plan: it reads the vendors, shows what it would restore
/// and what it would leave alone, and asks. Declined, nothing changes, and `runs RUN_ID`
/// keeps what the refresh found.
#[test]
fn a_declined_rollback_is_the_refresh_plan_and_changes_nothing() {
    let rig = staging_put_back_after("after:propagate");
    let before = writes(&rig.state()).len();
    rig.file("no.toml", "\"rollback.confirm\" = false\n");
    let run_id = rig.run_id();
    let out = rig.runbook(&["rollback", &run_id, "--answers", "no.toml"], &[]);
    out.stdout_has("✓ ctx.old_token secret(…c001) still works")
        .stdout_has("= infisical::set_secret on POSTMARK_SERVER_TOKEN in raxx-project:prod/: holds what this run wrote; its undo restores it")
        .stderr_has("≠ heroku::set_config on raxx-api-staging: changed since this run")
        .stderr_has("Nothing was undone");
    assert_eq!(writes(&rig.state()).len(), before, "nothing was written");
    rig.runbook(&["runs", &run_id], &[])
        .exit(Exit::Ok)
        .stdout_has("refresh: heroku::set_config on raxx-api-prod: holds what this run wrote")
        .stdout_has("refresh: heroku::set_config on raxx-api-staging: changed since this run (holds POSTMARK_SERVER_TOKEN holds secret(…c001)): left alone");
}

/// After the run propagated, someone put raxx-api-staging back on the old token. Resume
/// would go on to revoke the old token and break staging: it reads the targets first,
/// refuses, and names the way (rollback leaves staging alone).
#[test]
fn resume_refuses_to_build_on_a_world_changed_since_the_run() {
    let rig = staging_put_back_after("after:verify");
    let before = writes(&rig.state()).len();
    let run_id = rig.run_id();
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: the vendors changed since this run: raxx-api-staging (POSTMARK_SERVER_TOKEN holds secret(…c001))")
        .stderr_has(&format!("Roll back with `runbook rollback {run_id}`"));
    let state = rig.state();
    assert_eq!(writes(&state).len(), before, "nothing was written");
    assert_every_token_works(&state, "after the refused resume");
    rig.rollback(&[]).exit(Exit::Ok);
    assert_back_on_old_token(&rig.state());
}

/// The same world, but Heroku does not answer the read of staging's config: before, the
/// resume went on blind (the read "stops nothing here"), and revoke deleted the old token
/// staging was put back on. A target that cannot be read back stops the resume, as it
/// stops a rollback; once Heroku answers, the resume sees the change.
#[test]
fn resume_does_not_go_on_blind_when_a_target_cannot_be_read_back() {
    let rig = staging_put_back_after("after:verify");
    let before = writes(&rig.state()).len();
    let run_id = rig.run_id();
    rig.sandbox
        .add_fault("heroku:GET:/apps/raxx-api-staging/config-vars=503");
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: what the run's targets hold now could not be read: heroku::set_config on raxx-api-staging")
        .stderr_has(&format!("run `runbook resume {run_id}` again once the vendor answers"))
        .stderr_has("`\"resume.unread\" = true` in an answers file");
    let state = rig.state();
    assert_eq!(writes(&state).len(), before, "nothing was written");
    assert_every_token_works(&state, "after the refused resume");
    rig.sandbox.clear_faults();
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: the vendors changed since this run: raxx-api-staging");
}

/// The operator may go on without the read-back: a judgement, said in an answers entry
/// (`--yes` alone does not), and the resume finishes the rotation (review: a vendor outage
/// held a forward-only run at the refusal for as long as it lasted).
#[test]
fn resume_goes_on_unchecked_when_the_operator_says_so() {
    let rig = staging_unreadable_after_verify("\"resume.unread\" = true\n");
    rig.resume(&[])
        .exit(Exit::Ok)
        .stderr_has("going on without reading them back, as the operator said (resume.unread)");
}

/// An answer that is not one (`= "yes"`) is said, not taken for a quiet "no" behind a
/// refusal that tells the operator to add the answer they added (second review).
#[test]
fn a_resume_unread_answer_that_is_not_one_is_said() {
    let rig = staging_unreadable_after_verify("\"resume.unread\" = \"yes\"\n");
    rig.resume(&[])
        .exit(Exit::StepFailed)
        .stderr_has("answer to prompt 'resume.unread' is not usable");
}

/// A Postmark run stopped after verify whose commands answer with `answers`, and Heroku
/// answering 503 to staging's config from then on.
fn staging_unreadable_after_verify(answers: &str) -> Rig {
    let rig = Rig::new().answering(answers);
    rig.crash("postmark", "after:verify");
    rig.sandbox
        .add_fault("heroku:GET:/apps/raxx-api-staging/config-vars=503");
    rig
}

/// Heroku never got propagate's PATCH for staging (the connection dropped each time): the
/// write's outcome is unknown, and staging still holds the old token. That is not "changed
/// since the run": no release of staging is newer than the run's start, so the write did
/// not land; resume does not stop on it (its step writes it again) and finishes the
/// rotation. (A change since, even back to the old token, stops it: the next test.)
#[test]
fn a_lost_write_that_did_not_apply_does_not_stop_resume() {
    let (rig, _) = stopped_by("heroku:PATCH:/apps/raxx-api-staging/config-vars=drop:times=4");
    assert!(
        rig.journal()
            .contains("\"target\":\"raxx-api-staging\",\"outcome\":\"unknown\""),
        "{}",
        rig.journal()
    );
    let out = rig.resume(&[]);
    out.exit(Exit::Ok).stdout_has(
        "· heroku::set_config on raxx-api-staging: its write did not land (nothing changed it since the run started); the step writes it again",
    );
    assert_rotated(&rig.state(), "after resume");
}

/// The same lost write, but staging was put back on the old token by hand during the
/// incident (a release since the run started): it holds the value from before, yet the
/// write may have landed and been reverted on purpose. The resume asks, as for any other
/// value (second reading: it wrote the new token again and went on to revoke).
#[test]
fn a_lost_write_whose_target_was_put_back_by_hand_stops_resume() {
    let (rig, _) = stopped_by("heroku:PATCH:/apps/raxx-api-staging/config-vars=drop:times=4");
    rig.sandbox.clear_faults();
    set_app_token(&rig.sandbox, "raxx-api-staging", OLD_TOKEN);
    let out = rig.resume(&[]);
    out.exit(Exit::StepFailed)
        .stderr_has("✗ not resumed: a write of this run may have applied and its target holds another value now: raxx-api-staging (POSTMARK_SERVER_TOKEN holds secret(…");
    assert_eq!(app_token(&rig.state(), "raxx-api-staging"), OLD_TOKEN);
    assert!(
        live_tokens(&rig.state()).contains(&OLD_TOKEN.to_string()),
        "not revoked"
    );
}

/// Killed inside create twice: the second time right after the retry deleted the first
/// attempt's key. The next resume does not delete that key again (SendGrid would answer
/// 404 and the retry, and every rollback, would fail): the delete is in the journal.
#[test]
fn a_key_deleted_by_an_earlier_retry_is_not_deleted_again() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "inside:create");
    let run_id = rig.run_id();
    let again = rig.runbook(
        &["resume", &run_id, "--yes"],
        &[("RUNBOOK_CRASH_AT", "inside:create")],
    );
    assert_eq!(again.code, -9, "{}", again.stderr);
    assert!(rig.journal().contains("\"function\":\"http::delete\""));
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].1, secret_value(&state, "SENDGRID_API_KEY"));
}

/// Store filed a change request nobody merged, and the run stopped there. Abandoning it says
/// first that the request is still open and must be closed: an approver merging it later
/// would put this run's token into Infisical after the run ended.
#[test]
fn abandon_names_an_open_change_request_first() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/sop_canary.toml")).unwrap();
    let rig = Rig::with_scenario_text(&format!(
        "{text}\n[[infisical.approval_policies]]\nname = \"prod-review\"\nenvironment = \"prod\"\napplies_to = \"everyone\"\napprove_keys = [\"POSTMARK_SERVER_TOKEN_PENDING\"]\n"
    ));
    rig.exec("postmark", &["--no-rollback", "--param", "approval_wait=1"])
        .exit(Exit::StepFailed);
    let run_id = rig.run_id();
    rig.runbook(&["abandon", &run_id, "--reason", "the approver is away"], &[])
        .exit(Exit::Ok)
        .stdout_has("store · infisical::set_secret on POSTMARK_SERVER_TOKEN in raxx-project:prod/")
        .stdout_has("change request update-")
        .stdout_has("is still open: close it in Infisical (the project's Secret Approvals) before anything else");
    let pack = rig.runbook(&["evidence", &run_id], &[]).json();
    assert!(
        pack["abandoned"]["left"]
            .to_string()
            .contains("is still open"),
        "{pack}"
    );
}

/// The same run, its journal's last record damaged before anyone abandoned it: the part
/// that can be read still shows the open change request, and abandon says it first.
#[test]
fn abandoning_a_damaged_journal_names_an_open_change_request() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/sop_canary.toml")).unwrap();
    let rig = Rig::with_scenario_text(&format!(
        "{text}\n[[infisical.approval_policies]]\nname = \"prod-review\"\nenvironment = \"prod\"\napplies_to = \"everyone\"\napprove_keys = [\"POSTMARK_SERVER_TOKEN_PENDING\"]\n"
    ));
    rig.exec("postmark", &["--no-rollback", "--param", "approval_wait=1"])
        .exit(Exit::StepFailed);
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let journal = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = journal.lines().collect();
    *lines.last_mut().unwrap() = "{not a record";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    rig.runbook(&["abandon", &run_id, "--reason", "the approver is away"], &[])
        .exit(Exit::Ok)
        .stdout_has("Its journal cannot be read (damaged at line ")
        .stdout_has("change request update-")
        .stdout_has("is still open: close it in Infisical (the project's Secret Approvals) before anything else");
}

/// A staging copy this run did not write (another run's, or one left by hand) is not taken
/// for the credential this run created: after a crash before staging, resume creates the
/// credential again (deleting the orphan by id) and stages its own over the stranger.
#[test]
fn a_staging_copy_this_run_did_not_write_is_not_taken_for_its_own() {
    let scenario = std::fs::read_to_string(root().join("runbooks/sandbox/sendgrid.toml"))
        .unwrap()
        .replacen(
            "[[infisical.secrets]]",
            "[[infisical.secrets]]\nname = \"SENDGRID_API_KEY_PENDING\"\nversions = [\"SG.left-by-someone-else.000000000000000000\"]\n\n[[infisical.secrets]]",
            1,
        );
    let rig = Rig::with_scenario_text(&scenario);
    rig.crash("sendgrid", "inside:create");
    assert!(in_infisical(&rig.state(), "SENDGRID_API_KEY_PENDING"));
    rig.resume(&[])
        .exit(Exit::Ok)
        .stdout_has("SENDGRID_API_KEY_PENDING in Infisical is not the value this step staged");
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "only the new key remains: {keys:?}");
    let current = secret_value(&state, "SENDGRID_API_KEY");
    assert_eq!(
        keys[0].1, current,
        "Infisical holds the key this run created"
    );
    assert_ne!(current, "SG.left-by-someone-else.000000000000000000");
}

/// Killed inside store after it promoted the new key and deleted the staging copy: resume
/// recovers the new value from the secret's latest version (checked by fingerprint) and
/// finishes with one key everywhere.
#[test]
fn a_crash_after_store_removed_the_staging_copy_resumes_from_the_latest_version() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.crash("sendgrid", "inside:store#2");
    let state = rig.state();
    assert!(
        !in_infisical(&state, "SENDGRID_API_KEY_PENDING"),
        "the crash came after the delete"
    );
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let current = secret_value(&state, "SENDGRID_API_KEY");
    assert_eq!(keys[0].1, current);
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            state["heroku"]["apps"][app]["config_vars"]["SENDGRID_API_KEY"],
            current.as_str()
        );
    }
}

/// SendGrid made a key and its answer never came back: the run cannot know the key's id or
/// value. Before, resume sent the create again without asking, and the first key stayed at
/// SendGrid with nothing recording it. Now the retry stops before any create and asks
/// (`--yes` does not answer it); answered after a look at the vendor, it creates another.
#[test]
fn a_create_whose_answer_was_lost_is_not_sent_again_without_asking() {
    let rig = Rig::with_scenario(&root().join("runbooks/sandbox/sendgrid.toml"));
    rig.sandbox
        .add_fault("sendgrid:POST:/v3/api_keys=lost:once");
    rig.exec("sendgrid", &["--no-rollback"])
        .exit(Exit::StepFailed);
    assert_eq!(
        sendgrid_keys(&rig.state()).len(),
        2,
        "the old key and the one whose answer was lost"
    );
    rig.resume(&["--no-rollback"])
        .exit(Exit::StepFailed)
        .stderr_has("prompt 'create.lost_answer' needs an answer")
        .stderr_has("The answer to an earlier attempt's call (POST http://");
    assert_eq!(
        sendgrid_keys(&rig.state()).len(),
        2,
        "nothing was created again without asking"
    );
    rig.file(
        "stop.toml",
        "\"create.lost_answer\" = \"stop: I will look first\"\n",
    );
    rig.resume(&["--no-rollback", "--answers", "stop.toml"])
        .exit(Exit::StepFailed)
        .stderr_has("an earlier create call's answer was lost; SendGrid may hold a credential this run cannot see")
        .stderr_has(&format!("runbook resume {}", rig.run_id()));
    assert_eq!(sendgrid_keys(&rig.state()).len(), 2);
    rig.file(
        "looked.toml",
        "\"create.lost_answer\" = \"looked (and deleted any): create another\"\n",
    );
    rig.resume(&["--answers", "looked.toml"]).exit(Exit::Ok);
    let state = rig.state();
    let keys = sendgrid_keys(&state);
    let current = secret_value(&state, "SENDGRID_API_KEY");
    assert!(keys.iter().any(|k| k.1 == current), "{keys:?}");
    assert_eq!(
        keys.len(),
        2,
        "the new key, and the lost one the operator kept: {keys:?}"
    );
}

/// Killed right after generate: the pasted token was staged in Infisical at once, so resume
/// reads it back from there and asks nobody to paste it again (before, it lived only in the
/// dead process and the operator's clipboard, and a token deleted meanwhile left the run
/// able to go neither on nor back). Store promotes it and removes the staging copy.
#[test]
fn a_crash_after_generate_resumes_from_the_staged_token_without_asking() {
    let rig = Rig::new();
    rig.crash("postmark", "after:generate");
    let state = rig.state();
    assert!(in_infisical(&state, "POSTMARK_SERVER_TOKEN_PENDING"));
    assert_eq!(
        secret_value(&state, "POSTMARK_SERVER_TOKEN_PENDING"),
        new_tokens(&state)[0]
    );
    rig.resume(&[]).exit(Exit::Ok);
    let state = rig.state();
    assert_rotated(&state, "resumed from the staged token");
    assert!(!in_infisical(&state, "POSTMARK_SERVER_TOKEN_PENDING"));
    rig.assert_no_secrets_on_disk();
}

/// The same crash, rolled back: the staging copy is removed, every consumer keeps the old
/// token, and the new one is left on the server for diagnosis (the SOP's rule).
#[test]
fn a_crash_after_generate_rolls_back_without_a_staging_copy_left() {
    let rig = Rig::new();
    rig.crash("postmark", "after:generate");
    rig.rollback(&[]).exit(Exit::Ok);
    let state = rig.state();
    assert!(!in_infisical(&state, "POSTMARK_SERVER_TOKEN_PENDING"));
    assert_back_on_old_token(&state);
}

/// Under a secret-approval policy the staging copy of a new key waits in a change request.
/// Before, each resume before the approval deleted the key in that request, created another
/// and filed another request (it never converged). Now the retry asks (`--yes` does not
/// answer), creates nothing while the request is open, and once an approver merges it,
/// takes the staged key.
#[test]
fn a_staging_copy_waiting_for_approval_is_not_replaced_by_another_key() {
    let scenario = format!(
        "{}\n[[infisical.approval_policies]]\nname = \"prod-review\"\nenvironment = \"prod\"\napplies_to = \"everyone\"\n",
        std::fs::read_to_string(root().join("runbooks/sandbox/sendgrid.toml")).unwrap()
    );
    let rig = Rig::with_scenario_text(&scenario);
    let runbook = std::fs::read_to_string(root().join("runbooks/sendgrid.rhai"))
        .unwrap()
        .replacen(
            "rotation::steps(#{",
            "rotation::steps(#{ approval_wait: 1,",
            1,
        );
    rig.file("sendgrid.rhai", &runbook);
    let path = rig.path().join("sendgrid.rhai");
    let path = path.to_str().unwrap();
    rig.exec(path, &["--no-rollback"])
        .exit(Exit::StepFailed)
        .stderr_has("runbook::vendor::pending_approval");
    let keys = sendgrid_keys(&rig.state());
    assert_eq!(keys.len(), 2, "{keys:?}");
    let approvals = |rig: &Rig| items(&rig.state()["infisical"]["approvals"]).to_vec();
    assert_eq!(approvals(&rig).len(), 1);

    rig.resume(&["--no-rollback"])
        .exit(Exit::StepFailed)
        .stderr_has("prompt 'create.staging_request' needs an answer")
        .stderr_has("through Infisical change request ");
    assert_eq!(
        sendgrid_keys(&rig.state()),
        keys,
        "no key deleted or created"
    );
    assert_eq!(approvals(&rig).len(), 1, "no second request filed");

    let id = approvals(&rig)[0]["id"].as_str().unwrap().to_string();
    assert_eq!(rig.sandbox.decide_change_request(&id, true), 200);
    // Merged: the staged key is this run's; create is done without creating anything, and
    // the run goes on to store (whose own request nobody merges here).
    let out = rig.resume(&["--no-rollback"]);
    out.exit(Exit::StepFailed);
    out.stdout_has("Step 4/").stderr_has("Step 'store' failed");
    assert_eq!(sendgrid_keys(&rig.state()), keys, "still the same two keys");
}

/// A Postmark rotation with a GitHub repository among its consumers, killed once propagate
/// had set the token there.
fn stopped_after_github_propagate() -> Rig {
    let rig = Rig::new();
    let out = rig.runbook(
        &[
            "exec",
            "postmark",
            "--yes",
            "--param",
            "github_repos=raxx/raptor",
        ],
        &[("RUNBOOK_CRASH_AT", "after:propagate")],
    );
    assert_eq!(out.code, -9, "{}", out.stderr);
    rig
}

/// GitHub never gives an Actions secret's value back, so a rollback read it as "cannot be
/// read back" and put the old token back whatever happened since (cold review: a secret
/// deleted since, the workflow moved to OIDC, was created again). It reads the secret's
/// date: deleted since, it is left alone; untouched since, it is restored.
#[test]
fn a_rollback_does_not_put_back_a_github_secret_deleted_since_the_run() {
    let github = |state: &serde_json::Value| {
        state["github"]["repos"]["raxx/raptor"]["secrets"]["POSTMARK_SERVER_TOKEN"].clone()
    };
    let rig = stopped_after_github_propagate();
    assert_eq!(
        rig.sandbox
            .delete_github_secret("raxx/raptor", "POSTMARK_SERVER_TOKEN"),
        204
    );
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok).stderr_has(
        "≠ github::set_secret on raxx/raptor: changed since this run (nothing: the secret was deleted since, or this token can no longer see it); left alone",
    );
    assert!(github(&rig.state()).is_null(), "{}", out.stdout);
    assert_eq!(rig.runs()[0]["settled"], "partly rolled back");

    let rig = stopped_after_github_propagate();
    let out = rig.rollback(&[]);
    out.exit(Exit::Ok).stdout_has(
        "= github::set_secret on raxx/raptor: holds what this run wrote; its undo restores it",
    );
    assert_eq!(github(&rig.state()), OLD_TOKEN);
}

/// A fan-out whose write to one app got a 500 on every attempt, rolled back: the app the
/// write may not have reached is named as one the rollback leaves, without blaming anyone.
/// Before: "raxx-api-staging (changed by someone else)", for a write that simply failed
/// (author review).
#[test]
fn a_write_that_did_not_show_is_not_blamed_on_someone_else() {
    let rb = r#"runbook(#{ id: "two-apps", title: "Two apps" });
step("mark", "Mark both apps", |ctx| {
    heroku::set_config(["raxx-api-prod", "raxx-api-staging"], #{ FAN_MARK: "on" });
}).undo(|ctx| {
    for app in ctx.changed("heroku::set_config") { heroku::set_config(app, #{ FAN_MARK: () }); }
});
"#;
    let out = crate::support::Test::new()
        .file("two.rhai", rb)
        .args(&[
            "exec",
            "two.rhai",
            "--sandbox",
            "--yes",
            "--fault",
            "heroku:PATCH:/apps/raxx-api-staging/config-vars=500",
        ])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::StepFailed).stdout_has(
        "not undone, as they do not hold what this run wrote (its writes there may not have applied): raxx-api-staging (FAN_MARK holds nothing)\n",
    );
    assert!(
        !out.text().contains("changed by someone else"),
        "{}",
        out.text()
    );
    let state = out.sandbox_state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert!(
            state["heroku"]["apps"][app]["config_vars"]["FAN_MARK"].is_null(),
            "{app}"
        );
    }
}

/// A journal cut back after the run's last lines were written (the audit log names a line
/// it no longer has): before, resume trusted it, ran `generate` again (a third token) and
/// then "rolled back". Now resume and rollback refuse it, naming the missing lines, and
/// write nothing; an abandon still ends the run (fault review).
#[test]
fn a_journal_the_audit_log_shows_cut_back_is_not_resumed_or_rolled_back() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines
        .iter()
        .position(|l| {
            l.contains("\"type\":\"step_started\"") && l.contains("\"step\":\"generate\"")
        })
        .expect("generate started")
        + 1;
    std::fs::write(&path, format!("{}\n", lines[..cut].join("\n"))).unwrap();
    let before = writes(&rig.state()).len();
    let tokens = new_tokens(&rig.state()).len();
    for out in [rig.resume(&[]), rig.rollback(&[])] {
        out.exit(Exit::Usage)
            .stderr_has("runbook::journal::damaged")
            .stderr_has(&format!(
                "is damaged at line {cut}: the audit log names journal line"
            ))
            .stderr_has(&format!("but the journal has {cut} (lines were removed)"))
            .stderr_has("the audit log says what the run did: `runbook audit show --since ");
    }
    let state = rig.state();
    assert_eq!(writes(&state).len(), before, "nothing was written");
    assert_eq!(new_tokens(&state).len(), tokens, "no token was generated");
    rig.runbook(
        &[
            "abandon",
            &run_id,
            "--reason",
            "journal cut; vendors put right by hand",
        ],
        &[],
    )
    .exit(Exit::Ok);
}

/// A journal line rewritten in place (still JSON, its hash no longer its own): the resume
/// names that line, once (fault review, second reading).
#[test]
fn a_journal_line_rewritten_is_named_by_the_refused_resume() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let run_id = rig.run_id();
    let path = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1] = lines[1].replacen("\"type\":\"", "\"note\":\"x\",\"type\":\"", 1);
    std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    let before = writes(&rig.state()).len();
    rig.resume(&[]).exit(Exit::Usage).stderr_has(
        "is damaged at line 2: its content does not match its hash (edited); the audit log says",
    );
    assert_eq!(writes(&rig.state()).len(), before, "nothing was written");
}

/// A journal deleted under a stopped run: before, `resume`, `rollback`, `abandon` and
/// `runs RUN` all said there was no such run, and nothing named the token the run left
/// live. Each now says the journal is gone, that the audit log records the run, and what
/// to do (fault review).
#[test]
fn a_run_whose_journal_was_deleted_is_not_said_to_be_unknown() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let run_id = rig.run_id();
    std::fs::remove_file(rig.path().join(format!("state/runs/{run_id}.jsonl"))).unwrap();
    for args in [
        vec!["resume", run_id.as_str(), "--yes"],
        vec!["rollback", run_id.as_str(), "--yes"],
        vec!["abandon", run_id.as_str(), "--reason", "gone"],
        vec!["runs", run_id.as_str()],
    ] {
        rig.runbook(&args, &[])
            .exit(Exit::Usage)
            .stderr_has("runbook::journal::gone")
            .stderr_has(&format!("the journal of run {run_id} is gone ("))
            .stderr_has("): the audit log holds ")
            .stderr_has("restore the file as it was from a backup")
            .stderr_has("`runbook audit show --since ")
            .stderr_has("--break-lock");
    }
    rig.runbook(&["resume", "20261207T000000000Z-abcdef", "--yes"], &[])
        .exit(Exit::Usage)
        .stderr_has("runbook::run::not_found");
}

/// The list of runs saw only the runs folder: with the one run's journal deleted mid-run it
/// said "no runs yet", while the Postmark token it made may be live. A run whose audit
/// entries end without its end is listed, as gone; one the log shows ended (a journal
/// cleared away afterwards) is not.
#[test]
fn the_list_of_runs_names_a_run_whose_journal_was_deleted_before_its_end() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let run_id = rig.run_id();
    let journal = rig.path().join(format!("state/runs/{run_id}.jsonl"));
    std::fs::remove_file(&journal).unwrap();
    let out = rig.runbook(&["runs"], &[]);
    out.exit(Exit::Ok)
        .stderr_has(&format!(
            "warning: run {run_id}: the journal of run {run_id} is gone ("
        ))
        .stderr_has("`runbook runs ")
        .stdout_has("journal gone (see the warning above)");
    assert!(
        !out.stderr.contains("no runs yet"),
        "the list said there were no runs:\n{}",
        out.stderr
    );
    let listed: serde_json::Value =
        serde_json::from_str(&rig.runbook(&["runs", "--json"], &[]).exit(Exit::Ok).stdout).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap_or_else(|| panic!("run {run_id} not in the --json list: {listed}"));
    assert_eq!(row["current"], "journal gone");

    // A run that ended, its journal cleared away afterwards: housekeeping, not listed.
    let done = Rig::new();
    done.exec("postmark", &[]).exit(Exit::Ok);
    let ended = done.run_id();
    std::fs::remove_file(done.path().join(format!("state/runs/{ended}.jsonl"))).unwrap();
    let out = done.runbook(&["runs"], &[]);
    out.exit(Exit::Ok).stderr_has("no runs yet");
    assert!(!out.stdout.contains(&ended), "{}", out.stdout);

    // A run that failed before any write (precheck), its journal cleared away: it changed
    // nothing at a vendor, so nothing is said of it (a second reading: before, every such
    // run was listed as gone, "a token it made may still be live", for ever).
    let early = Rig::new();
    early.sandbox.add_fault("postmark:GET:/server=401");
    early.exec("postmark", &[]).exit(Exit::StepFailed);
    let failed = early.run_id();
    std::fs::remove_file(early.path().join(format!("state/runs/{failed}.jsonl"))).unwrap();
    let out = early.runbook(&["runs"], &[]);
    out.exit(Exit::Ok).stderr_has("no runs yet");
    assert!(!out.stderr.contains("is gone"), "{}", out.stderr);
}

/// A byte that is not UTF-8 in the audit log (a disk error, an editor) refused a resume
/// with an io error whose help named permissions: the log is named as damaged, where, and
/// what to run.
#[test]
fn an_audit_log_with_a_byte_that_is_not_text_is_named_when_a_resume_is_refused() {
    let rig = Rig::new();
    rig.crash("postmark", "inside:propagate");
    let log = rig.path().join("state/audit.jsonl");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 5;
    bytes[at] = 0xff;
    std::fs::write(&log, bytes).unwrap();
    let line = 2;
    for out in [rig.resume(&[]), rig.runbook(&["audit", "verify"], &[])] {
        out.exit(Exit::Usage)
            .stderr_has("runbook::state::not_text")
            .stderr_has(&format!(
                "audit.jsonl is damaged at line {line}: it holds bytes that are not UTF-8 text"
            ))
            .stderr_has("restore the file from a backup")
            .stderr_has("runbook abandon RUN_ID");
        assert!(!out.stderr.contains("permissions"), "{}", out.stderr);
    }
    // A journal likewise: not "save the runbook as UTF-8".
    let journal = rig
        .path()
        .join(format!("state/runs/{}.jsonl", rig.run_id()));
    let mut bytes = std::fs::read(&journal).unwrap();
    let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 5;
    bytes[at] = 0xff;
    std::fs::write(&journal, bytes).unwrap();
    rig.runbook(&["runs", &rig.run_id()], &[])
        .exit(Exit::Usage)
        .stderr_has("runbook::state::not_text")
        .stderr_has(".jsonl is damaged at line 2: it holds bytes that are not UTF-8 text");
}

/// A rollback left the new Postmark token on the server for diagnosis (the SOP) and said
/// "Undone: generate": a live credential that only a printed line named, missing from the
/// summary's lists, `runs RUN` and the evidence. The undo says what it leaves
/// (`ctx.leave`), and every record lists it as left in place.
#[test]
fn what_an_undo_leaves_on_purpose_is_listed_as_left_in_place() {
    let rig = Rig::new();
    rig.sandbox
        .add_fault("raptor:POST:/raxx-api-staging/postmark/email=401");
    let out = rig.exec("postmark", &[]);
    out.exit(Exit::StepFailed)
        .stdout_has("Undone: generate (except what it left, below), store, propagate")
        .stdout_has("Left at the vendors by an undo, on purpose (not undone):\n  generate · the new token secret(…");
    assert_eq!(
        live_tokens(&rig.state()).len(),
        2,
        "old and new token both live"
    );
    let run_id = rig.run_id();
    rig.runbook(&["runs", &run_id], &[])
        .exit(Exit::Ok)
        .stdout_has("undo of generate left: the new token secret(…")
        .stdout_has("left by an undo, on purpose:\n  generate · the new token secret(…");
    let timeline = rig.runbook(&["runs", &run_id, "--json"], &[]).json();
    assert_eq!(timeline["kept"][0]["step"], "generate", "{timeline}");
    let pack = rig.runbook(&["evidence", &run_id], &[]).json();
    let left = pack["writes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["outcome"] == "left in place by the undo")
        .unwrap_or_else(|| panic!("the evidence does not list it: {pack}"))
        .clone();
    assert_eq!(left["step"], "generate");
    assert!(
        left["target"]
            .as_str()
            .unwrap()
            .starts_with("the new token secret(…"),
        "{left}"
    );
}

/// A run a later rotation superseded: `runs A` listed its writes as "in effect", and its
/// evidence said nothing of the later run, whose cleanup by hand (what A's undo does) would
/// revert the later rotation. Both say what superseded it, and that A's writes are not the
/// world now.
#[test]
fn a_superseded_runs_writes_are_not_said_to_be_in_effect() {
    let (rig, a, b) = a_run_and_the_rotation_after_it();
    rig.runbook(&["runs", &a], &[])
        .exit(Exit::Ok)
        .stdout_has(&format!(
            "in effect when it ended (run {b} rotated the same secret since: not what the vendors hold now; do not undo them by hand):\n  generate · "
        ))
        .stdout_has("\n  propagate · heroku::set_config on raxx-api-prod: applied\n");
    let pack = rig.runbook(&["evidence", &a], &[]).json();
    assert_eq!(pack["superseded_by"], b.as_str(), "{pack}");
    let pack = rig.runbook(&["evidence", &b], &[]).json();
    assert!(pack.get("superseded_by").is_none(), "{pack}");
}

/// With no terminal, `--yes` at the dashboard's "Have you deleted the old token?" (a
/// judgement it does not answer) failed revoke, and `--yes` chose the failed step's
/// rollback: a rotation verified on every consumer undone because nobody was there to
/// delete a token. The run stops at the question instead (exit 3), and says how to go on.
#[test]
fn an_unanswerable_dashboard_question_stops_the_run_and_rolls_nothing_back() {
    let rig = Rig::new();
    rig.crash("postmark", "after:verify");
    let run_id = rig.run_id();
    let out = rig.shell(&["resume", &run_id, "--yes"]).run();
    out.exit(Exit::Aborted)
        .stderr_has("prompt 'revoke.deleted' needs an answer, and there is no terminal to ask on")
        .stderr_has("a judgement --yes does not make");
    assert!(!out.stdout.contains("undoing"), "{}", out.stdout);
    let state = rig.state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_ne!(
            state["heroku"]["apps"][app]["config_vars"]["POSTMARK_SERVER_TOKEN"], OLD_TOKEN,
            "{app} was put back on the old token"
        );
    }
    // Deleted by hand, then said in an answers file: the resume finishes the rotation.
    rig.sandbox.delete_postmark_token(OLD_TOKEN);
    rig.file("deleted.toml", "\"revoke.deleted\" = true\n");
    rig.shell(&["resume", &run_id, "--yes", "--answers", "deleted.toml"])
        .run()
        .exit(Exit::Ok);
    assert_rotated(&rig.state(), "deleted by hand, then resumed");
}
