//! `runbook evidence`: one JSON pack per rotation an auditor can check offline (who, when,
//! what, each write by fingerprint, the checks that passed, the audit entries and the chain
//! head), optionally signed with Ed25519; `keygen` makes a key pair, `verify` checks a pack.

use crate::cli::{EvidenceArgs, EvidenceCommand};
use crate::error::{exit, Error, Result};
use crate::ui;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use runbook_core::audit::{AuditLog, Verdict};
use runbook_core::events::{ApprovalStatus, StepEnd, WriteOutcome};
use runbook_core::ledger::{self, Happened, Ledger};
use runbook_core::run;
use runbook_core::run::Mode;
use runbook_core::runbook::{Runbook, SourceFile};
use serde_json::{json, Value};
use std::path::Path;

/// The pack's format name: a reader refuses what it does not know.
const FORMAT: &str = "runbook-evidence/1";
/// The first line of a private key file.
const KEY_HEADER: &str = "runbook evidence signing key (ed25519, base64 seed)";

pub fn run(args: EvidenceArgs, settings: &crate::settings::Settings) -> Result<u8> {
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
            let pack = build(&crate::wiring::store(settings)?, &run_id)?;
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

/// The evidence of one run, from its ledger, its runbook (when unchanged) and the audit log.
fn build(store: &runbook_core::store::Store, run_id: &str) -> Result<Value> {
    let (_, ledger) = ledger::open(store, run_id).map_err(|e| match e {
        runbook_core::error::Error::RunNotFound { .. } => Error::usage(
            format!("no run '{run_id}' in {}", store.runs_where()),
            "`runbook runs` lists the runs and their ids",
        ),
        other => other.into(),
    })?;
    let start = &ledger.start;
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
    let actors: Vec<Value> = ledger
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let label = if i == 0 {
                Mode::label(start.target, start.effect, start.entry).as_str()
            } else {
                p.entry.as_str()
            };
            let mut a = json!({"actor": p.actor, "as": label, "at": p.started_at});
            if !p.host.is_empty() {
                a["host"] = json!(p.host);
            }
            a
        })
        .collect();
    let (steps, writes, approvals) = history(&ledger, &checks_of);
    let status = ledger
        .processes
        .iter()
        .rev()
        .find_map(|p| p.ended())
        .map_or(Value::Null, |s| json!(s.as_str()));
    let log = AuditLog::new(store);
    let audit: Vec<Value> = log
        .entries()?
        .into_iter()
        .filter(|a| a.run_id == run_id)
        .map(|a| serde_json::to_value(a).unwrap_or_default())
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
        "mode": Mode::label(start.target, start.effect, start.entry).as_str(),
        "target": ledger.target_label(),
        "rehearsal": ledger.is_rehearsal(),
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

/// The run's steps, writes (with their secrets by fingerprint) and approval decisions, in
/// the order they happened.
fn history(
    ledger: &Ledger,
    checks_of: &dyn Fn(&str) -> Value,
) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let (mut steps, mut writes, mut approvals) = (Vec::new(), Vec::new(), Vec::new());
    for (at, h) in &ledger.history {
        match h {
            Happened::Step(o) => steps.push(json!({
                "id": o.step,
                "outcome": o.outcome,
                "at": at,
                "duration_ms": o.duration_ms,
                "error": o.error,
                "checks": if o.outcome == StepEnd::Completed { checks_of(&o.step) } else { json!([]) },
            })),
            Happened::Write { sent, outcome } => {
                let named: serde_json::Map<String, Value> = super::exec::fingerprints(&sent.detail)
                    .into_iter()
                    .map(|(k, fp)| (k, json!(fp)))
                    .collect();
                let outcome = match outcome {
                    WriteOutcome::Failed => "refused",
                    other => other.as_str(),
                };
                writes.push(json!({
                    "step": sent.step, "function": sent.function, "target": sent.target,
                    "outcome": outcome, "fingerprints": named, "at": at,
                }));
            }
            Happened::Undo(u) => {
                let outcome = if u.outcome == StepEnd::Completed {
                    "undone"
                } else {
                    "undo failed"
                };
                writes.push(json!({"step": u.step, "undo": true, "outcome": outcome, "at": at}));
            }
            Happened::Approval(a) if a.status != ApprovalStatus::Requested => {
                approvals.push(json!({
                    "step": a.step,
                    "decision": a.status,
                    "requested_by": a.requested_by,
                    "approver": a.approver,
                    "reason": a.reason,
                    "at": at,
                }))
            }
            Happened::Approval(_) | Happened::Decision(_) => {}
        }
    }
    (steps, writes, approvals)
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
