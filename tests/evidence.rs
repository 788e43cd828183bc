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
    assert_eq!(pack["format"], "runbook-evidence/1");
    assert_eq!(pack["run_id"], run_id.as_str());
    assert_eq!(pack["runbook"]["id"], "postmark-server-token");
    assert_eq!(pack["runbook"]["unchanged_since_the_run"], true);
    assert_eq!(pack["status"], "succeeded");
    assert_eq!(pack["actors"][0]["actor"], "ops-test");
    assert_eq!(pack["audit"]["chain"]["intact"], true);
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
