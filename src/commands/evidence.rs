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
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The pack's format name: a reader refuses what it does not know.
const FORMAT: &str = "runbook-evidence/2";
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
            let pack = serde_json::to_value(pack).unwrap_or_default();
            let pack = match &args.sign {
                Some(key) => sign(pack, &read_signing_key(key)?),
                None => pack,
            };
            let text = serde_json::to_string_pretty(&pack).unwrap_or_default();
            match &args.output {
                Some(path) => {
                    super::write_new(path, &format!("{text}\n"), 0o644)?;
                    ui::err(&format!(
                        "wrote the evidence of run {run_id} to {}",
                        path.display()
                    ));
                }
                None => ui::out(&text),
            }
            // A pack that records a broken chain or a journal that does not hold is still
            // written (it is the evidence of that), but not as a success: automation
            // filing it would read exit 0 as a clean run (team review).
            if let Err(problem) = check_content(&pack) {
                ui::err(&format!(
                    "warning: the evidence of run {run_id} records a problem: {problem}; `runbook audit verify` says more"
                ));
                return Ok(exit::STEP_FAILED);
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

/// An evidence pack: what an auditor checks offline.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pack {
    format: String,
    run_id: String,
    runbook: PackRunbook,
    /// The label the audit log gives the run (`exec`, `sandbox`, `dry-run`…).
    mode: String,
    /// Where it went: `production`, `loopback`, `sandbox`, or `rehearsal` when a vendor
    /// answered as a simulator.
    target: String,
    rehearsal: bool,
    /// Which environment the run touched, and the heads that pin its records.
    environment: PackEnvironment,
    status: Option<String>,
    actors: Vec<Actor>,
    approvals: Vec<ApprovalRecord>,
    steps: Vec<StepRecord>,
    writes: Vec<WriteRecord>,
    verification: Vec<Check>,
    audit: AuditSection,
    /// The run's journal, every line as stored (redacted, hash-chained): `evidence verify`
    /// checks it against the audit entries and derives the status from it again.
    journal: Vec<String>,
    /// Why the journal does not hold (edited, cut or rewritten), when it does not: the
    /// pack then states no status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal_problem: Option<String>,
    /// Set when `runbook abandon` ended the run: who, why, and what it left in the world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    abandoned: Option<runbook_core::events::Abandoned>,
    /// The later run that rotated the same secret, when one did (as `runbook runs` says):
    /// what this run left in place is not what the vendors hold since, and a cleanup by
    /// hand of it (`abandoned`) would revert that rotation. Not checked by `verify`: it is
    /// about other runs, as of `generated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superseded_by: Option<String>,
    /// What the run's rollback left alone, read at the vendor: someone changed it since
    /// the run (the journal's `refreshed` records; what makes a rollback partial).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    left_alone: Vec<runbook_core::events::Refreshed>,
    generated_at: String,
    generated_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<Signature>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PackEnvironment {
    /// `production`, `loopback`, `sandbox` or `rehearsal`.
    target: String,
    /// The `runbook` version that started the run (`null`: a journal from before it was kept).
    version: Option<String>,
    /// Each vendor module's base URL, as the run was configured.
    vendors: BTreeMap<String, String>,
    /// The hosts `http::` could reach.
    egress: Vec<String>,
    runbook_sha256: String,
    /// The audit chain's head when the pack was made, and the run journal's last line.
    audit_head: Option<String>,
    journal_head: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PackRunbook {
    id: String,
    source: String,
    source_sha256: String,
    unchanged_since_the_run: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Actor {
    actor: String,
    #[serde(rename = "as")]
    entered_as: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    host: String,
    /// The login the shared database authenticated (absent on files: `actor` is a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login: Option<String>,
    at: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ApprovalRecord {
    step: String,
    decision: ApprovalStatus,
    requested_by: Option<String>,
    /// The name the approver gave (a label).
    approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approver_host: Option<String>,
    /// The approver's login role, authenticated by the shared database (absent on files,
    /// where the name is only a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approver_login: Option<String>,
    /// The SSH key (`SHA256:…`) whose signature over the decision verified against the
    /// team's allowed signers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approver_key: Option<String>,
    /// The approver is a name only (a rehearsal's approval): no login, no key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    approver_unverified: bool,
    /// An SSH-signed decision: the text signed, the signature, and the SHA-256 of the
    /// allowed signers file the run checked it against (re-check it with `ssh-keygen -Y
    /// verify` against the team's published file: docs/team.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_signers_sha256: Option<String>,
    reason: Option<String>,
    at: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StepRecord {
    id: String,
    outcome: StepEnd,
    at: String,
    duration_ms: Option<u64>,
    error: Option<String>,
    /// What the step checked (`null` when the runbook changed since the run).
    checks: Option<Vec<String>>,
    /// For a step whose effect was in doubt: who said it took effect, a read at the vendor
    /// or only the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmed_by: Option<runbook_core::events::ConfirmedBy>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WriteRecord {
    step: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    function: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    undo: bool,
    outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprints: Option<BTreeMap<String, String>>,
    at: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Check {
    step: String,
    check: String,
    result: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AuditSection {
    entries: Vec<runbook_core::audit::AuditEntry>,
    chain: Chain,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Chain {
    intact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entries: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    broken_at_line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Signature {
    algorithm: String,
    public_key: String,
    value: String,
}

/// The evidence of one run, from its ledger, its runbook (when unchanged) and the audit log.
fn build(store: &runbook_core::store::Store, run_id: &str) -> Result<Pack> {
    let not_found = || {
        Error::usage(
            format!("no run '{run_id}' in {}", store.runs_where()),
            "`runbook runs` lists the runs and their ids",
        )
    };
    if !runbook_core::run::is_run_id(run_id) {
        return Err(not_found());
    }
    // The journal read once: the pack's status, actors and history are folded from the very
    // lines it carries (read twice, a colleague's rollback writing in between made a pack
    // whose status its own journal did not hold, and verify called it edited).
    let stamped = store.journal_stamped(run_id)?;
    let text = match &stamped {
        Some(rows) => ledger::chain::joined(rows),
        None => store.journal(run_id)?.ok_or_else(not_found)?,
    };
    // A last line without its newline is the journal's when it is a whole record, as every
    // reader of the journal counts it; only a fragment is left out.
    let whole = match text.rsplit_once('\n') {
        Some((before, last))
            if ledger::torn_tail(&text)
                && serde_json::from_str::<serde_json::Value>(last).is_err() =>
        {
            before
        }
        None if serde_json::from_str::<serde_json::Value>(&text).is_err() => "",
        _ => text.as_str(),
    };
    // A journal that cannot be read is said as the store names it (its path or row).
    let ledger = match ledger::from_text(whole, run_id) {
        Ok(l) => l,
        Err(e) => return Err(ledger::open(store, run_id).err().unwrap_or(e).into()),
    };
    let start = &ledger.start;
    // Each step's checks come from the runbook, if it is still the one the run used.
    let runbook = SourceFile::read(Path::new(&start.source.path))
        .ok()
        .filter(|f| runbook_core::exec::resume::sha256(&f.text) == start.source.sha256)
        .and_then(|f| Runbook::load(f).ok());
    let checks_of = |step: &str| -> Option<Vec<String>> {
        let rb = runbook.as_ref()?;
        Some(
            rb.plan()
                .step(step)
                .map(|s| s.checks.clone())
                .unwrap_or_default(),
        )
    };
    let label = Mode::label(start.target, start.effect, start.entry).as_str();
    let actors = actors_of(&ledger);
    let (steps, writes, approvals) = history(&ledger, &checks_of);
    // The audit log, read once: this run's entries, the whole chain's verdict, the stamps.
    let (lines, audit_rows) = AuditLog::new(store).lines_stamped()?;
    let entries: Vec<runbook_core::audit::AuditEntry> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<runbook_core::audit::AuditEntry>(l).ok())
        .filter(|a| a.event.run_id == run_id)
        .collect();
    let journal: Vec<String> = whole
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    // On the database, its rows and its audit entries were written by the logins they
    // name (the server stamps each row).
    let audit_forged = audit_rows
        .map(|rows| ledger::stamps::audit(&rows, &|run| ledger::chain::began_unstamped(store, run)))
        .unwrap_or_default()
        .into_iter()
        .find(|f| f.run_id == run_id);
    let checked = match (
        ledger::chain::check_journal(&text, &entries.iter().collect::<Vec<_>>()),
        &stamped,
    ) {
        (Ok(()), Some(rows)) => ledger::chain::check_stamps(store, run_id, rows)?,
        (checked, _) => checked,
    };
    let journal_problem = checked
        .and_then(|()| audit_forged.map_or(Ok(()), |f| Err(f.reason)))
        .err();
    let chain = match runbook_core::audit::verify_lines(&lines) {
        Verdict::Intact { entries, head } => Chain {
            intact: true,
            entries: Some(entries),
            head: Some(head),
            broken_at_line: None,
            reason: None,
        },
        Verdict::Broken { line, reason } => Chain {
            intact: false,
            entries: None,
            head: None,
            broken_at_line: Some(line),
            reason: Some(reason),
        },
    };
    let verification = steps
        .iter()
        .filter(|s| s.outcome == StepEnd::Completed)
        .flat_map(|s| {
            s.checks.iter().flatten().map(|c| Check {
                step: s.id.clone(),
                check: c.clone(),
                result: "passed".into(),
            })
        })
        .collect();
    Ok(Pack {
        format: FORMAT.into(),
        run_id: run_id.into(),
        runbook: PackRunbook {
            id: start.runbook.clone(),
            source: start.source.path.clone(),
            source_sha256: start.source.sha256.clone(),
            unchanged_since_the_run: runbook.is_some(),
        },
        mode: label.into(),
        target: ledger.target_label().into(),
        rehearsal: ledger.is_rehearsal(),
        environment: PackEnvironment {
            target: ledger.target_label().into(),
            version: start.environment.as_ref().map(|e| e.version.clone()),
            vendors: start
                .environment
                .as_ref()
                .map(|e| e.vendors.clone())
                .unwrap_or_default(),
            egress: start
                .environment
                .as_ref()
                .map(|e| e.egress.clone())
                .unwrap_or_default(),
            runbook_sha256: start.source.sha256.clone(),
            audit_head: chain.head.clone(),
            journal_head: match ledger::chain::verify(&text).1 {
                ledger::chain::Verdict::Intact { tip, .. } if tip.lines > 0 => Some(tip.head),
                _ => None,
            },
        },
        abandoned: ledger.abandoned.clone(),
        left_alone: left_alone_of(&ledger),
        superseded_by: ledger::after(&ledger::Journals::new(store), run_id)
            .ok()
            .and_then(|(later, _)| {
                ledger::superseded_by(&later, &ledger).map(|l| l.run_id.clone())
            }),
        status: journal_problem
            .is_none()
            .then(|| status_of(&ledger))
            .flatten(),
        actors,
        approvals,
        steps,
        writes,
        verification,
        audit: AuditSection { entries, chain },
        journal,
        journal_problem,
        generated_at: run::now_rfc3339(),
        generated_by: format!("runbook {}", env!("CARGO_PKG_VERSION")),
        signature: None,
    })
}

/// Who ran the run, process by process, as its journal says.
fn actors_of(ledger: &Ledger) -> Vec<Actor> {
    let start = &ledger.start;
    let label = Mode::label(start.target, start.effect, start.entry).as_str();
    ledger
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| Actor {
            actor: p.actor.clone(),
            entered_as: if i == 0 { label } else { p.entry.as_str() }.to_string(),
            host: p.host.clone(),
            login: p.login.clone(),
            at: p.started_at.clone(),
        })
        .collect()
}

/// What the run's rollback left alone, when it ended partly rolled back (a refused resume's
/// read-back finds changed targets too, and leaves nothing alone).
fn left_alone_of(ledger: &Ledger) -> Vec<runbook_core::events::Refreshed> {
    if status_of(ledger).as_deref() != Some(runbook_core::run::RunStatus::PartlyRolledBack.as_str())
    {
        return Vec::new();
    }
    ledger.changed_by_others().cloned().collect()
}

/// How the run ended, as its journal says: the last process that recorded an end.
fn status_of(ledger: &Ledger) -> Option<String> {
    ledger
        .processes
        .iter()
        .rev()
        .find_map(|p| p.ended())
        .map(|s| s.as_str().to_string())
}

/// What a signed pack must also hold: an audit chain that was intact, entries whose hashes
/// match them, a journal whose chain holds and that the entries link to, and the status the
/// journal gives.
fn check_content(pack: &Value) -> std::result::Result<(), String> {
    let chain = &pack["audit"]["chain"];
    if chain["intact"] != Value::Bool(true) {
        return Err(format!(
            "the audit chain was broken when it was made (entry {}: {})",
            chain["broken_at_line"],
            chain["reason"].as_str().unwrap_or("?")
        ));
    }
    if let Some(problem) = pack["journal_problem"].as_str() {
        return Err(format!(
            "the run's journal did not hold when it was made: {problem}"
        ));
    }
    let entries = pack["audit"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parsed = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if runbook_core::audit::entry_hash(e) != e["hash"].as_str().unwrap_or_default() {
            return Err(format!(
                "audit entry {} in it does not match its hash (edited)",
                i + 1
            ));
        }
        let entry: runbook_core::audit::AuditEntry = serde_json::from_value(e.clone())
            .map_err(|err| format!("audit entry {} in it cannot be read: {err}", i + 1))?;
        parsed.push(entry);
    }
    let Some(lines) = pack["journal"].as_array() else {
        return Err("it carries no journal".into());
    };
    let lines: Vec<&str> = lines
        .iter()
        .map(|l| l.as_str().unwrap_or_default())
        .collect();
    let mut text = lines.join("\n");
    // Packs made before the exporter left a torn last line out carry it: it stays torn.
    let torn = lines
        .last()
        .is_some_and(|l| serde_json::from_str::<serde_json::Value>(l).is_err());
    if !torn && !text.is_empty() {
        text.push('\n');
    }
    ledger::chain::check_journal(&text, &parsed.iter().collect::<Vec<_>>())?;
    let run_id = pack["run_id"].as_str().unwrap_or_default();
    let ledger =
        ledger::from_text(&text, run_id).map_err(|e| format!("its journal cannot be read: {e}"))?;
    // Every entry it carries is this run's.
    if let Some(other) = parsed.iter().find(|e| e.event.run_id != run_id) {
        return Err(format!(
            "it carries an audit entry of another run ({})",
            other.event.run_id
        ));
    }
    // Who ran it and who decided, what it wrote and where, as the journal it carries says:
    // a pack signed again with another approver, actor, write outcome or target in it (a
    // rehearsal passed off as production) does not hold. Step checks come from the
    // runbook, not the journal, and are not checked here.
    let (_, writes, approvals) = history(&ledger, &|_| None);
    let start = &ledger.start;
    let mode = Mode::label(start.target, start.effect, start.entry).as_str();
    for (field, rebuilt) in [
        ("approvals", serde_json::to_value(&approvals)),
        ("actors", serde_json::to_value(actors_of(&ledger))),
        ("writes", serde_json::to_value(&writes)),
        ("target", serde_json::to_value(ledger.target_label())),
        ("rehearsal", serde_json::to_value(ledger.is_rehearsal())),
        ("mode", serde_json::to_value(mode)),
    ] {
        // Only a pack of this format: an older one was written with other fields.
        if pack["format"] == FORMAT && rebuilt.ok().as_ref() != Some(&pack[field]) {
            return Err(format!(
                "its `{field}` is not what its journal records (edited)"
            ));
        }
    }
    // A pack from before the field has none; a signed one cannot lose it.
    if let Some(stated) = pack.get("left_alone") {
        if serde_json::to_value(left_alone_of(&ledger)).ok().as_ref() != Some(stated) {
            return Err("its `left_alone` is not what its journal records (edited)".into());
        }
    }
    let status = status_of(&ledger);
    if pack["status"].as_str() != status.as_deref() {
        return Err(format!(
            "it states the status {} but its journal says {}",
            pack["status"],
            status.as_deref().unwrap_or("none")
        ));
    }
    Ok(())
}

/// The run's steps, writes (with their secrets by fingerprint) and approval decisions, in
/// the order they happened.
fn history(
    ledger: &Ledger,
    checks_of: &dyn Fn(&str) -> Option<Vec<String>>,
) -> (Vec<StepRecord>, Vec<WriteRecord>, Vec<ApprovalRecord>) {
    let (mut steps, mut writes, mut approvals) = (Vec::new(), Vec::new(), Vec::new());
    for (at, h) in &ledger.history {
        let at = at.clone();
        match h {
            Happened::Step(o) => steps.push(StepRecord {
                id: o.step.clone(),
                outcome: o.outcome,
                at,
                duration_ms: o.duration_ms,
                error: o.error.clone(),
                checks: match o.outcome {
                    StepEnd::Completed => checks_of(&o.step),
                    _ => Some(Vec::new()),
                },
                confirmed_by: o.confirmed_by,
            }),
            Happened::Write { sent, outcome } => writes.push(WriteRecord {
                step: sent.step.clone(),
                function: sent.function.clone(),
                target: sent.target.clone(),
                undo: false,
                outcome: match outcome {
                    WriteOutcome::Failed => "refused",
                    other => other.as_str(),
                }
                .into(),
                fingerprints: Some(
                    super::exec::fingerprints(&sent.detail)
                        .into_iter()
                        .collect(),
                ),
                at,
            }),
            Happened::Undo(u) => writes.push(WriteRecord {
                step: u.step.clone(),
                function: String::new(),
                target: String::new(),
                undo: true,
                outcome: if u.outcome == StepEnd::Completed {
                    "undone"
                } else {
                    "undo failed"
                }
                .into(),
                fingerprints: None,
                at,
            }),
            Happened::Approval(a) if a.status != ApprovalStatus::Requested => {
                approvals.push(ApprovalRecord {
                    step: a.step.clone(),
                    decision: a.status,
                    requested_by: a.requested_by.clone(),
                    approver: a.approver.clone(),
                    approver_host: a.approver_host.clone(),
                    approver_login: a.approver_role.clone(),
                    approver_key: a.approver_key.clone(),
                    approver_unverified: a.approver_unverified,
                    signed_text: a.signed_text.clone(),
                    signature: a.signature.clone(),
                    allowed_signers_sha256: a.allowed_signers_sha256.clone(),
                    reason: a.reason.clone(),
                    at,
                })
            }
            Happened::Refuted(r) => writes.push(WriteRecord {
                step: r.step.clone(),
                function: r.function.clone(),
                target: r.target.clone(),
                undo: false,
                outcome:
                    "not in effect (its verify read at the vendor that it did not take effect)"
                        .into(),
                fingerprints: None,
                at,
            }),
            Happened::Kept(k) => writes.push(WriteRecord {
                step: k.step.clone(),
                function: String::new(),
                target: k.what.clone(),
                undo: true,
                outcome: "left in place by the undo".into(),
                fingerprints: None,
                at,
            }),
            Happened::Approval(_) | Happened::Decision(_) => {}
        }
    }
    (steps, writes, approvals)
}

pub(crate) fn sign(pack: Value, key: &SigningKey) -> Value {
    let signature = key.sign(&signed_bytes(&pack));
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = Signature {
        algorithm: "ed25519".into(),
        public_key: b64.encode(key.verifying_key().as_bytes()),
        value: b64.encode(signature.to_bytes()),
    };
    let mut pack = pack;
    if let Value::Object(fields) = &mut pack {
        fields.insert(
            "signature".into(),
            serde_json::to_value(signature).unwrap_or_default(),
        );
    }
    pack
}

pub(crate) fn read_signing_key(path: &Path) -> Result<SigningKey> {
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

pub(crate) fn read_public_key(path: &Path) -> Result<VerifyingKey> {
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
    std::fs::create_dir_all(out).map_err(|e| {
        Error::usage(
            format!("cannot create {}: {e}", out.display()),
            "check the path",
        )
    })?;
    let seed_line = format!("{KEY_HEADER}\n{}\n", b64.encode(seed));
    super::write_new(&private, &seed_line, 0o600)?;
    let public_line = format!("{}\n", b64.encode(key.verifying_key().as_bytes()));
    super::write_new(&public, &public_line, 0o644)?;
    ui::err(&format!(
        "wrote {} (keep it secret: it signs evidence) and {} (give it to whoever verifies)",
        private.display(),
        public.display()
    ));
    Ok(exit::OK)
}

/// Whether `value` carries an Ed25519 signature by `key` over everything else in it: the
/// signing public key (base64), or why not.
pub(crate) fn check_signature(
    value: &Value,
    key: &VerifyingKey,
) -> std::result::Result<String, String> {
    let sig = value
        .get("signature")
        .and_then(|s| serde_json::from_value::<Signature>(s.clone()).ok())
        .filter(|s| s.algorithm == "ed25519");
    let Some(sig) = sig else {
        return Err("it is not signed (no ed25519 signature)".into());
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    if sig.public_key != b64.encode(key.as_bytes()) {
        return Err("it was signed with another key".into());
    }
    let Ok(bytes) = b64.decode(&sig.value) else {
        return Err("the signature is not base64".into());
    };
    let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return Err("the signature is not 64 bytes".into());
    };
    let signature = ed25519_dalek::Signature::from_bytes(&bytes);
    if key.verify(&signed_bytes(value), &signature).is_err() {
        return Err("the signature does not match its content (edited after signing)".into());
    }
    Ok(sig.public_key)
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
    // An edited pack is read as leniently as it was written strictly: a field of the wrong
    // shape reads as absent, and the signature decides.
    let field = |path: &[&str]| -> String {
        path.iter()
            .try_fold(&pack, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    if field(&["format"]) != FORMAT {
        return fail(format!("format {} is not {FORMAT}", field(&["format"])));
    }
    let sig = match check_signature(&pack, &key) {
        Ok(sig) => sig,
        Err(why) => return fail(why),
    };
    if let Err(why) = check_content(&pack) {
        return fail(why);
    }
    ui::out(&format!(
        "evidence {}: verified: run {} of {} ({}), signed by {}",
        file.display(),
        field(&["run_id"]),
        field(&["runbook", "id"]),
        field(&["status"]),
        sig
    ));
    Ok(exit::OK)
}
