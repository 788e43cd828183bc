//! `runbook evidence`: one JSON pack per rotation an auditor can check offline (who, when,
//! what, each write by fingerprint, the checks that passed, the audit entries and the chain
//! head), optionally signed with Ed25519; `keygen` makes a key pair, `verify` checks a pack.

use crate::cli::{EvidenceArgs, EvidenceCommand};
use crate::error::{exit, Error, Result};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use runbook_core::audit::{AuditLog, Verdict};
use runbook_core::journal::{self, Record};
use runbook_core::runbook::{Runbook, SourceFile};
use runbook_core::{run, ui};
use serde_json::{json, Value};
use std::path::Path;

/// The pack's format name: a reader refuses what it does not know.
const FORMAT: &str = "runbook-evidence/1";
/// The first line of a private key file.
const KEY_HEADER: &str = "runbook evidence signing key (ed25519, base64 seed)";

pub fn run(args: EvidenceArgs) -> Result<u8> {
    match args.command {
        Some(EvidenceCommand::Keygen { out }) => keygen(&out),
        Some(EvidenceCommand::Verify { file, pubkey }) => verify(&file, &pubkey),
        None => {
            let Some(run_id) = args.run_id else {
                return Err(Error::usage(
                    "which run? `runbook evidence RUN_ID`",
                    "`runbook runs` lists the runs; `runbook evidence keygen` and `runbook evidence verify FILE --pubkey KEY` are the other forms",
                ));
            };
            let pack = build(&crate::wiring::store()?, &run_id)?;
            let pack = match &args.sign {
                Some(key) => sign(pack, &read_signing_key(key)?),
                None => pack,
            };
            let text = serde_json::to_string_pretty(&pack).unwrap_or_default();
            match &args.output {
                Some(path) => {
                    // Never over an existing file (a key, an earlier pack).
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(path)
                        .map_err(|e| {
                            Error::usage(
                                format!("cannot write {}: {e}", path.display()),
                                "choose a file that does not exist yet",
                            )
                        })?;
                    f.write_all(format!("{text}\n").as_bytes()).map_err(|e| {
                        Error::usage(
                            format!("cannot write {}: {e}", path.display()),
                            "check the disk",
                        )
                    })?;
                    ui::err(&format!(
                        "wrote the evidence of run {run_id} to {}",
                        path.display()
                    ));
                }
                None => ui::out(&text),
            }
            Ok(exit::OK)
        }
    }
}

/// The bytes a signature covers: the pack without its `signature`, as compact JSON with
/// every object's keys sorted (this crate's serde_json keeps insertion order, so the
/// sorting is done here), so any verifier rebuilds them from the parsed pack.
fn signed_bytes(pack: &Value) -> Vec<u8> {
    // Only the top level's `signature` is the signature; a nested one is content.
    let mut p = pack.clone();
    if let Some(o) = p.as_object_mut() {
        o.shift_remove("signature");
    }
    serde_json::to_vec(&sorted_keep(&p)).unwrap_or_default()
}

/// Sorted keys all the way down (every key kept).
fn sorted_keep(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keep(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_keep).collect()),
        other => other.clone(),
    }
}

/// A JSON value that refuses an object with a key twice: a parser keeps one of the two
/// (serde_json the last, others the first), so a duplicate could show a reader a forged
/// value the signature never covered.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "the key \"{k}\" appears twice"
                        )));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(V)
    }
}

/// The evidence of one run, from its journal, its runbook (when unchanged) and the audit log.
fn build(store: &runbook_core::store::Store, run_id: &str) -> Result<Value> {
    let not_found = || {
        Error::usage(
            format!("no run '{run_id}' in {}", store.runs_where()),
            "`runbook runs` lists the runs and their ids",
        )
    };
    if !run::is_run_id(run_id) {
        return Err(not_found());
    }
    let entries = journal::read_run(store, run_id)?.ok_or_else(not_found)?;
    let Some(start) = entries.iter().find_map(|e| match &e.record {
        Record::RunStart(s) => Some(s.clone()),
        _ => None,
    }) else {
        return Err(Error::usage(
            format!("run {run_id} has no start record"),
            "its journal is damaged; `runbook runs RUN_ID` shows what it holds",
        ));
    };
    // Each step's checks come from the runbook, if it is still the one the run used.
    let runbook = SourceFile::read(Path::new(&start.source.path))
        .ok()
        .filter(|f| runbook_core::exec::resume::sha256(&f.text) == start.source.sha256)
        .and_then(|f| Runbook::load(f).ok());
    let checks_of = |step: &str| -> Value {
        match &runbook {
            Some(rb) => rb
                .plan()
                .step(step)
                .map(|s| json!(s.checks))
                .unwrap_or(json!([])),
            None => Value::Null,
        }
    };
    let mut actors = vec![json!({
        "actor": start.actor, "as": start.mode.as_str(), "host": start.host,
        "at": entries.first().map(|e| e.t.clone()),
    })];
    let mut steps: Vec<Value> = Vec::new();
    let mut writes: Vec<Value> = Vec::new();
    let mut status = Value::Null;
    let mut intents: Vec<(String, String, Value)> = Vec::new();
    for e in &entries {
        match &e.record {
            Record::RunResume { actor, attempt, .. } => {
                actors.push(json!({"actor": actor, "as": attempt.as_str(), "at": e.t}));
            }
            Record::StepOutcome(o) => {
                steps.push(json!({
                    "id": o.step,
                    "outcome": o.status,
                    "at": e.t,
                    "duration_ms": o.duration_ms,
                    "error": o.error,
                    "checks": if o.status == journal::StepEnd::Completed { checks_of(&o.step) } else { json!([]) },
                }));
            }
            Record::WriteIntent {
                function,
                target,
                detail,
                ..
            } => intents.push((function.clone(), target.clone(), detail.clone())),
            Record::WriteOutcome {
                step,
                function,
                target,
                ok,
                unknown,
                pending,
                ..
            } => {
                let detail = intents
                    .iter()
                    .rev()
                    .find(|(f, t, _)| f == function && t == target)
                    .map(|(_, _, d)| {
                        let named: serde_json::Map<String, Value> = super::exec::fingerprints(d)
                            .into_iter()
                            .map(|(k, fp)| (k, json!(fp)))
                            .collect();
                        Value::Object(named)
                    })
                    .unwrap_or_default();
                let outcome = match (ok, unknown, pending) {
                    (_, _, true) => "pending",
                    (_, true, _) => "unknown",
                    (true, _, _) => "applied",
                    _ => "refused",
                };
                writes.push(json!({
                    "step": step, "function": function, "target": target,
                    "outcome": outcome, "fingerprints": detail, "at": e.t,
                }));
            }
            Record::UndoOutcome { step, ok, .. } => {
                writes.push(json!({"step": step, "undo": true, "outcome": if *ok { "undone" } else { "undo failed" }, "at": e.t}));
            }
            Record::RunEnd { status: s, .. } => status = json!(s.as_str()),
            _ => {}
        }
    }
    let log = AuditLog::new(store);
    let audit: Vec<Value> = log
        .entries()?
        .into_iter()
        .filter(|a| a.run_id == run_id)
        .map(|a| serde_json::to_value(a).unwrap_or_default())
        .collect();
    // Who approved (or denied, or let time out) which step: from the run's audit entries.
    let approvals: Vec<Value> = audit
        .iter()
        .filter(|a| {
            a["action"]
                .as_str()
                .is_some_and(|x| x.starts_with("approval.") && x != "approval.requested")
        })
        .map(|a| {
            json!({
                // The gated step (the entry's own `step` is the last one that ran).
                "step": a["context"]["step"],
                "decision": a["action"].as_str().unwrap_or("").trim_start_matches("approval."),
                "requested_by": a["actor"],
                "approver": a["context"]["approver"],
                "reason": a["context"]["reason"],
                "at": a["time"],
            })
        })
        .collect();
    let chain = match log.verify()? {
        Verdict::Intact { entries, head } => {
            json!({"intact": true, "entries": entries, "head": head})
        }
        Verdict::Broken { line, reason } => {
            json!({"intact": false, "broken_at_line": line, "reason": reason})
        }
    };
    let verification: Vec<Value> = steps
        .iter()
        .filter(|s| s["outcome"] == "completed")
        .flat_map(|s| {
            let id = s["id"].clone();
            s["checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| json!({"step": id, "check": c, "result": "passed"}))
        })
        .collect();
    Ok(json!({
        "format": FORMAT,
        "run_id": run_id,
        "runbook": {
            "id": start.runbook,
            "source": start.source.path,
            "source_sha256": start.source.sha256,
            "unchanged_since_the_run": runbook.is_some(),
        },
        "mode": start.mode.as_str(),
        "status": status,
        "actors": actors,
        "approvals": approvals,
        "steps": steps,
        "writes": writes,
        "verification": verification,
        "audit": {"entries": audit, "chain": chain},
        "generated_at": run::now_rfc3339(),
        "generated_by": format!("runbook {}", env!("CARGO_PKG_VERSION")),
    }))
}

fn sign(mut pack: Value, key: &SigningKey) -> Value {
    let signature = key.sign(&signed_bytes(&pack));
    let b64 = base64::engine::general_purpose::STANDARD;
    pack["signature"] = json!({
        "algorithm": "ed25519",
        "public_key": b64.encode(key.verifying_key().as_bytes()),
        "value": b64.encode(signature.to_bytes()),
    });
    pack
}

fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let bad = |why: &str| {
        Error::usage(
            format!("{}: {why}", path.display()),
            "make a key pair with `runbook evidence keygen --out DIR`",
        )
    };
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad("others may read it (it must be 0600): `chmod 600` it, and make a new pair if it may have been copied"));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let mut lines = text.lines();
    if lines.next() != Some(KEY_HEADER) {
        return Err(bad("not a runbook evidence signing key"));
    }
    let seed = base64::engine::general_purpose::STANDARD
        .decode(lines.next().unwrap_or("").trim())
        .map_err(|_| bad("the key is not base64"))?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| bad("the key is not 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let bad = |why: &str| {
        Error::usage(
            format!("{}: {why}", path.display()),
            "give the .pub file `runbook evidence keygen` wrote",
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| bad("not base64"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad("not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an Ed25519 public key"))
}

fn keygen(out: &Path) -> Result<u8> {
    let (private, public) = (out.join("evidence.key"), out.join("evidence.pub"));
    if private.exists() || public.exists() {
        return Err(Error::usage(
            format!("{} already holds a key pair", out.display()),
            "keep it, or choose another --out directory; a key is never overwritten",
        ));
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| {
        Error::usage(
            format!("no randomness for a key: {e}"),
            "retry on a machine with /dev/urandom",
        )
    })?;
    let key = SigningKey::from_bytes(&seed);
    let b64 = base64::engine::general_purpose::STANDARD;
    let write = |path: &Path, text: String, mode: u32| -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(out).map_err(|e| {
            Error::usage(
                format!("cannot create {}: {e}", out.display()),
                "check the path",
            )
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                Error::usage(
                    format!("cannot write {}: {e}", path.display()),
                    "check the path",
                )
            })?;
        f.write_all(text.as_bytes()).map_err(|e| {
            Error::usage(
                format!("cannot write {}: {e}", path.display()),
                "check the disk",
            )
        })
    };
    write(
        &private,
        format!("{KEY_HEADER}\n{}\n", b64.encode(seed)),
        0o600,
    )?;
    write(
        &public,
        format!("{}\n", b64.encode(key.verifying_key().as_bytes())),
        0o644,
    )?;
    ui::err(&format!(
        "wrote {} (keep it secret: it signs evidence) and {} (give it to whoever verifies)",
        private.display(),
        public.display()
    ));
    Ok(exit::OK)
}

fn verify(file: &Path, pubkey: &Path) -> Result<u8> {
    let key = read_public_key(pubkey)?;
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::usage(
            format!("cannot read {}: {e}", file.display()),
            "check the path",
        )
    })?;
    let fail = |why: String| -> Result<u8> {
        ui::err(&format!("evidence {}: NOT verified: {why}", file.display()));
        Ok(exit::STEP_FAILED)
    };
    if let Err(e) = serde_json::from_str::<NoDuplicateKeys>(&text) {
        return fail(format!("not valid evidence JSON: {e}"));
    }
    let Ok(pack) = serde_json::from_str::<Value>(&text) else {
        return fail("not valid JSON (edited or truncated)".into());
    };
    if pack["format"] != FORMAT {
        return fail(format!("format {} is not {FORMAT}", pack["format"]));
    }
    let sig = &pack["signature"];
    let b64 = base64::engine::general_purpose::STANDARD;
    if sig["algorithm"] != "ed25519" {
        return fail("it is not signed (no ed25519 signature)".into());
    }
    if sig["public_key"].as_str() != Some(b64.encode(key.as_bytes()).as_str()) {
        return fail("it was signed with another key".into());
    }
    let Some(value) = sig["value"].as_str().and_then(|v| b64.decode(v).ok()) else {
        return fail("the signature is not base64".into());
    };
    let Ok(bytes) = <[u8; 64]>::try_from(value.as_slice()) else {
        return fail("the signature is not 64 bytes".into());
    };
    let signature = ed25519_dalek::Signature::from_bytes(&bytes);
    if key.verify(&signed_bytes(&pack), &signature).is_err() {
        return fail("the signature does not match its content (edited after signing)".into());
    }
    ui::out(&format!(
        "evidence {}: verified: run {} of {} ({}), signed by {}",
        file.display(),
        pack["run_id"].as_str().unwrap_or("?"),
        pack["runbook"]["id"].as_str().unwrap_or("?"),
        pack["status"].as_str().unwrap_or("?"),
        sig["public_key"].as_str().unwrap_or("?")
    ));
    Ok(exit::OK)
}
