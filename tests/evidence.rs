//! `runbook evidence`: a rotation's pack, signed and checked offline; a flipped byte fails.

use crate::support::items;
use crate::support::{
    assert_only_the_unedited_pack_verifies, rehearsed_rotation, signed_pack, Exit, Test,
};
use serde_json::Value;

#[test]
fn a_signed_pack_verifies_and_any_edit_breaks_it() {
    let dir = tempfile::tempdir().unwrap();
    // The canary scenario: the old token's value is known, so its absence can be checked.
    let rotated = rehearsed_rotation(Test::in_dir(dir.path()));
    rotated.exit(Exit::Ok);
    let run_id = rotated.last_run_id();
    let cmd = |args: &[&str]| Test::in_dir(dir.path()).shipped_runbooks().args(args).run();
    let verify = |pack: &str, key: &str| cmd(&["evidence", "verify", pack, "--pubkey", key]);

    cmd(&["evidence", "keygen", "--out", "keys"]).exit(Exit::Ok);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("keys/evidence.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is the owner's only");
    // A key is never overwritten.
    cmd(&["evidence", "keygen", "--out", "keys"]).exit(Exit::Usage);

    let text = signed_pack(dir.path(), &cmd, &run_id);
    let pack: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pack["format"], "runbook-evidence/2");
    assert_eq!(pack["run_id"], run_id.as_str());
    assert_eq!(pack["runbook"]["id"], "postmark-server-token");
    assert_eq!(pack["runbook"]["unchanged_since_the_run"], true);
    assert_eq!(pack["status"], "succeeded");
    assert_eq!(pack["actors"][0]["actor"], "ops-test");
    assert_eq!(pack["audit"]["chain"]["intact"], true);
    // Which environment it touched, and the heads that pin its records.
    let env = &pack["environment"];
    assert_eq!(env["target"], "sandbox");
    assert_eq!(env["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        env["vendors"]["postmark"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{env}"
    );
    assert_eq!(env["runbook_sha256"], pack["runbook"]["source_sha256"]);
    assert_eq!(env["audit_head"], pack["audit"]["chain"]["head"]);
    let last: Value = serde_json::from_str(rotated.journal().lines().last().unwrap()).unwrap();
    assert_eq!(env["journal_head"], last["hash"]);
    // The old token's refusal is among the checks that passed, and every write names its
    // secrets by fingerprint only.
    let checks: Vec<&str> = items(&pack["verification"])
        .iter()
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert!(
        checks.contains(&"GET /server with the old token returns 401"),
        "{checks:?}"
    );
    let store = items(&pack["writes"])
        .iter()
        .find(|w| w["function"] == "infisical::set_secret")
        .unwrap();
    assert!(store["fingerprints"]["value"]
        .as_str()
        .unwrap()
        .starts_with("hmac:"));
    assert!(items(&pack["audit"]["entries"])
        .iter()
        .any(|e| e["action"] == "secret.rotate.completed"));

    // One byte changed anywhere: the signature no longer matches.
    assert_only_the_unedited_pack_verifies(
        dir.path(),
        &cmd,
        &text,
        ("\"succeeded\"", "\"succeedee\""),
    );
    // A key written twice (a reader keeps one of the two) is refused, even where the
    // signature would still match the value serde_json keeps.
    let duplicated = text.replacen(
        "\"status\": \"succeeded\"",
        "\"status\": \"failed\",\n  \"status\": \"succeeded\"",
        1,
    );
    assert_ne!(duplicated, text);
    std::fs::write(dir.path().join("dup.json"), duplicated).unwrap();
    verify("dup.json", "keys/evidence.pub")
        .exit(Exit::StepFailed)
        .stderr_has("the key \"status\" appears twice");
    // The signature covers sorted keys: the same pack with its keys reordered verifies.
    let parsed: Value = serde_json::from_str(&text).unwrap();
    let mut reordered = serde_json::Map::new();
    if let Value::Object(m) = &parsed {
        for (k, v) in m.iter().rev() {
            reordered.insert(k.clone(), v.clone());
        }
    }
    std::fs::write(
        dir.path().join("reordered.json"),
        serde_json::to_string_pretty(&Value::Object(reordered)).unwrap(),
    )
    .unwrap();
    verify("reordered.json", "keys/evidence.pub").exit(Exit::Ok);
    // The pack is never written over an existing file.
    cmd(&["evidence", &run_id, "-o", "keys/evidence.key"])
        .exit(Exit::Usage)
        .stderr_has("choose a file that does not exist yet");
    // Another key's public half does not verify it either.
    cmd(&["evidence", "keygen", "--out", "other"]).exit(Exit::Ok);
    let other = verify("pack.json", "other/evidence.pub");
    other
        .exit(Exit::StepFailed)
        .stderr_has("it was signed with another key");
    // An unsigned pack is evidence too, but it does not verify.
    cmd(&["evidence", &run_id, "-o", "plain.json"]).exit(Exit::Ok);
    verify("plain.json", "keys/evidence.pub")
        .exit(Exit::StepFailed)
        .stderr_has("it is not signed");
    for f in ["pack.json", "plain.json"] {
        let t = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(!t.contains(crate::support::OLD_TOKEN), "{f} holds a secret");
    }
}

/// The rehearsed rotation in `dir`, and its run id, with an evidence key pair in keys/.
fn rotated_with_keys(dir: &std::path::Path) -> (crate::support::Output, String) {
    let rotated = rehearsed_rotation(Test::in_dir(dir));
    rotated.exit(Exit::Ok);
    let run_id = rotated.last_run_id();
    Test::in_dir(dir)
        .shipped_runbooks()
        .args(&["evidence", "keygen", "--out", "keys"])
        .run()
        .exit(Exit::Ok);
    (rotated, run_id)
}

/// A signed pack (`text`, in pack.json) of a rotation that succeeded carries every whole
/// line of `journal` (no fragment) and verifies.
fn assert_whole_pack(text: &str, journal: &str, cmd: &dyn Fn(&[&str]) -> crate::support::Output) {
    let pack: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        pack["journal"].as_array().unwrap().len(),
        journal.lines().count(),
        "every whole line, no fragment"
    );
    assert_eq!(pack["status"], "succeeded");
    cmd(&[
        "evidence",
        "verify",
        "pack.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .exit(Exit::Ok);
}

/// A journal whose last record is whole but lost its newline (a power loss, a hand repair):
/// every reader counts that record, and so does the pack. Before, the pack's status came
/// from the record while its lines left it out, and verify called the journal cut
/// (cold review).
#[test]
fn a_pack_of_a_journal_whose_last_record_lost_its_newline_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, run_id) = rotated_with_keys(dir.path());
    let cmd = |args: &[&str]| Test::in_dir(dir.path()).shipped_runbooks().args(args).run();
    let path = rotated.journal_path();
    let journal = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, journal.trim_end_matches('\n')).unwrap();
    let text = signed_pack(dir.path(), &cmd, &run_id);
    assert_whole_pack(&text, &journal, &cmd);
}

/// A run whose journal ends in a line a crash cut short: the pack leaves the fragment out
/// (no reader counts it), and verifies. Before, the pack carried it as a line of its own,
/// which its verification read as whole, and so as damage.
#[test]
fn a_pack_of_a_journal_with_a_torn_tail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, run_id) = rotated_with_keys(dir.path());
    let cmd = |args: &[&str]| Test::in_dir(dir.path()).shipped_runbooks().args(args).run();
    let path = rotated.journal_path();
    let journal = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{journal}{{\"v\":1,\"type\":\"step_sta")).unwrap();
    let text = signed_pack(dir.path(), &cmd, &run_id);
    assert_whole_pack(&text, &journal, &cmd);
    // A pack made before carries the fragment as its last line: it still reads as torn.
    let mut old: Value = serde_json::from_str(&text).unwrap();
    old["journal"]
        .as_array_mut()
        .unwrap()
        .push(Value::String("{\"v\":1,\"type\":\"step_sta".into()));
    resign(&mut old, &dir.path().join("keys/evidence.key"));
    std::fs::write(dir.path().join("old.json"), old.to_string()).unwrap();
    cmd(&[
        "evidence",
        "verify",
        "old.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .exit(Exit::Ok);
}

/// A journal edited behind runbook's back (a step's outcome turned around): `audit verify`
/// names the run and line, and a pack made from it states no status and does not verify,
/// however it is signed.
#[test]
fn an_edited_journal_fails_audit_verify_and_evidence_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, run_id) = rotated_with_keys(dir.path());
    let cmd = |args: &[&str]| Test::in_dir(dir.path()).shipped_runbooks().args(args).run();
    cmd(&["audit", "verify"]).exit(Exit::Ok);

    let path = rotated.journal_path();
    let journal = std::fs::read_to_string(&path).unwrap();
    let edited = journal.replacen("\"outcome\":\"completed\"", "\"outcome\":\"failed\"", 1);
    assert_ne!(edited, journal);
    std::fs::write(&path, edited).unwrap();
    cmd(&["audit", "verify"])
        .exit(Exit::StepFailed)
        .stderr_has(&format!(
            "BROKEN: the journal of run {run_id}: journal line "
        ))
        .stderr_has("its content does not match its hash (edited)");
    let text = crate::support::signed_pack_of_broken(dir.path(), &cmd, &run_id);
    let pack: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pack["status"], Value::Null);
    cmd(&[
        "evidence",
        "verify",
        "pack.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
    .exit(Exit::StepFailed)
    .stderr_has("NOT verified: the run's journal did not hold when it was made");

    // The journal whole again, but the pack's status edited and the pack signed again by
    // whoever holds the key: the journal it carries says otherwise.
    std::fs::write(&path, &journal).unwrap();
    std::fs::remove_file(dir.path().join("pack.json")).unwrap();
    let text = signed_pack(dir.path(), &cmd, &run_id);
    let mut pack: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pack["status"], "succeeded");
    pack["status"] = Value::String("rolled_back".into());
    verify_forged(dir.path(), &cmd, &mut pack)
        .exit(Exit::StepFailed)
        .stderr_has("it states the status \"rolled_back\" but its journal says succeeded");

    // A rehearsal passed off as production, or a write's outcome edited, and signed again:
    // the journal it carries says otherwise (cold review: only status, actors and
    // approvals were held against it).
    let forge = |field: &str, edit: &dyn Fn(&mut Value)| {
        let mut pack: Value = serde_json::from_str(&text).unwrap();
        edit(&mut pack);
        verify_forged(dir.path(), &cmd, &mut pack)
            .exit(Exit::StepFailed)
            .stderr_has(&format!(
                "its `{field}` is not what its journal records (edited)"
            ));
    };
    forge("rehearsal", &|p| p["rehearsal"] = Value::Bool(false));
    forge("target", &|p| {
        p["target"] = Value::String("production".into())
    });
    forge("writes", &|p| {
        p["writes"].as_array_mut().unwrap().pop();
    });
}

/// `pack`, edited, signed again with the team's key (keys/evidence.key in `dir`) as whoever
/// holds it could, written to forged.json and verified.
pub(crate) fn verify_forged(
    dir: &std::path::Path,
    cmd: &dyn Fn(&[&str]) -> crate::support::Output,
    pack: &mut Value,
) -> crate::support::Output {
    resign(pack, &dir.join("keys/evidence.key"));
    std::fs::write(dir.join("forged.json"), pack.to_string()).unwrap();
    cmd(&[
        "evidence",
        "verify",
        "forged.json",
        "--pubkey",
        "keys/evidence.pub",
    ])
}

/// Signs `pack` again with the key file, as `runbook evidence --sign` does (the signature
/// covers the pack without it, keys sorted, compact).
pub(crate) fn resign(pack: &mut Value, key: &std::path::Path) {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(key).unwrap();
    let seed: [u8; 32] = b64
        .decode(text.lines().nth(1).unwrap().trim())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    pack.as_object_mut().unwrap().remove("signature");
    let signature = key.sign(&serde_json::to_vec(&sorted(pack)).unwrap());
    pack["signature"] = serde_json::json!({
        "algorithm": "ed25519",
        "public_key": b64.encode(key.verifying_key().as_bytes()),
        "value": b64.encode(signature.to_bytes()),
    });
}

/// The audit log cut at its end (the last entries dropped, as a `copytruncate` log rule or a
/// person would), or emptied: `audit verify` says so, naming the run whose end named an
/// entry the log lost. Before, both verified: the chain that was left was whole, and no
/// journal named what was gone.
#[test]
fn an_audit_log_cut_at_its_end_or_emptied_fails_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (_rotated, run_id) = rotated_with_keys(dir.path());
    let cmd = |args: &[&str]| Test::in_dir(dir.path()).shipped_runbooks().args(args).run();
    cmd(&["audit", "verify"]).exit(Exit::Ok);
    let path = dir.path().join("state/audit.jsonl");
    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    for kept in [lines.len() - 2, 0] {
        let cut: String = lines[..kept].iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, cut).unwrap();
        cmd(&["audit", "verify"])
            .exit(Exit::StepFailed)
            .stderr_has(&format!(
                "BROKEN: the journal of run {run_id}: journal line "
            ))
            .stderr_has("which the audit log does not hold (the log was cut or rewritten)");
    }
}
