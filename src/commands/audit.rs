//! `runbook audit show`, `runbook audit verify` and `runbook audit export`.

use crate::cli::{AuditCommand, AuditExportArgs, AuditHeadArgs, AuditShowArgs, AuditVerifyArgs};
use crate::error::{exit, Error, Result};
use crate::ui;
use runbook_core::audit::{AuditEntry, AuditLog, HeadCheck, Verdict};
use serde_json::Value;

/// The format of a signed head (`audit head`).
const HEAD_FORMAT: &str = "runbook-audit-head/1";

pub fn run(cmd: AuditCommand, settings: &crate::settings::Settings) -> Result<u8> {
    // An export is verified on its own: no store (and no database) is needed.
    if let AuditCommand::Verify(args @ AuditVerifyArgs { file: Some(_), .. }) = &cmd {
        return verify_export(args);
    }
    let store = crate::wiring::store(settings)?;
    let log = AuditLog::new(&store);
    match cmd {
        AuditCommand::Show(args) => show(&log, &args),
        AuditCommand::Verify(args) => verify(&store, &log, &args),
        AuditCommand::Export(args) => export(&log, &args),
        AuditCommand::Head(args) => head(&log, &args),
    }
}

/// The chain's head, verified first (a broken chain has no head worth publishing), signed.
fn head(log: &AuditLog, args: &AuditHeadArgs) -> Result<u8> {
    let key = super::evidence::read_signing_key(&args.sign)?;
    let (entries, head) = match log.verify()? {
        Verdict::Intact { entries, head } => (entries, head),
        broken @ Verdict::Broken { .. } => return report(broken, &log.location()),
    };
    let unsigned = serde_json::json!({
        "format": HEAD_FORMAT,
        "head": head,
        "entries": entries,
        "store": log.location(),
        "at": runbook_core::run::now_rfc3339(),
    });
    let signed = super::evidence::sign(unsigned, &key);
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&signed).unwrap_or_default()
    );
    match &args.output {
        Some(path) => {
            super::write_new(path, &text, 0o644)?;
            ui::err(&format!(
                "wrote the signed head ({entries} entries, head {head}) to {}; publish it, and check it later with `runbook audit verify --head {} --pubkey KEY.pub`",
                path.display(),
                path.display()
            ));
        }
        None => ui::out(text.trim_end()),
    }
    Ok(exit::OK)
}

/// A head to check: a hash as given, or a signed head file checked against `--pubkey`,
/// with the number of entries the chain had then.
fn recorded_head(args: &AuditVerifyArgs) -> Result<Option<(String, Option<usize>)>> {
    let Some(given) = args.head.as_deref() else {
        return Ok(None);
    };
    let path = std::path::Path::new(given);
    if !path.is_file() {
        let hash = given.trim();
        // Not a file and not a hash: a mistyped path, which must not read as a log cut.
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::usage(
                format!("--head {given}: no such file, and not a head's hash (64 hex digits)"),
                "give a file written by `runbook audit head`, or the head's hash",
            ));
        }
        // A key checks a signed head only: with a bare hash it would check nothing.
        if args.pubkey.is_some() {
            return Err(Error::usage(
                format!("--head {given} is a bare hash: --pubkey has no signature to check"),
                "give the signed head file `runbook audit head --sign` wrote, or leave out --pubkey",
            ));
        }
        return Ok(Some((hash.to_string(), None)));
    }
    let bad = |why: String| {
        Error::usage(
            format!("{}: {why}", path.display()),
            "give a file written by `runbook audit head`, or the head's hash",
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a signed head ({e})")))?;
    if value["format"] != HEAD_FORMAT {
        return Err(bad(format!(
            "not a signed head (format {})",
            value["format"]
        )));
    }
    let Some(pubkey) = &args.pubkey else {
        return Err(Error::usage(
            format!(
                "{} is a signed head: it is checked against a public key",
                path.display()
            ),
            "add --pubkey KEY.pub (the .pub of the key that signed it)",
        ));
    };
    let key = super::evidence::read_public_key(pubkey)?;
    super::evidence::check_signature(&value, &key)
        .map_err(|why| bad(format!("NOT verified: {why}")))?;
    let hash = value["head"].as_str().unwrap_or_default().to_string();
    let entries = value["entries"].as_u64().map(|n| n as usize);
    Ok(Some((hash, entries)))
}

/// Whether a recorded head is in a chain that verifies (its entry hashes): the exit code,
/// said.
fn check_head(
    hashes: &[String],
    recorded: Option<(String, Option<usize>)>,
    place: &str,
    (entries, head): (usize, &str),
) -> u8 {
    let Some((recorded, at)) = recorded else {
        ui::out(&format!("OK: {entries} entries, head {head}"));
        return exit::OK;
    };
    match runbook_core::audit::find_head_in(hashes, &recorded) {
        HeadCheck::Present { line, .. } if at.is_some_and(|n| n != line) => {
            ui::err(&format!(
                "BROKEN: {place}: the signed head was entry {}, it is now entry {line}: the chain was rewritten",
                at.unwrap_or_default()
            ));
            exit::STEP_FAILED
        }
        HeadCheck::Present { line, after } => {
            ui::out(&format!(
                "OK: {entries} entries, head {head}; the recorded head is entry {line}, {after} appended since"
            ));
            exit::OK
        }
        HeadCheck::Missing => {
            ui::err(&format!(
                "BROKEN: {place} does not contain the recorded head {}: entries were cut off the end, or the log was replaced",
                ui::truncate(&recorded, 80)
            ));
            ui::err(&format!("The chain that is left verifies ({entries} entries, head {head}); compare with a copy of the log (or its webhook sink) to see what is missing."));
            exit::STEP_FAILED
        }
    }
}

/// The chain, one entry per line as stored: nothing re-encoded, so every hash still holds.
fn export(log: &AuditLog, args: &AuditExportArgs) -> Result<u8> {
    let lines = log.lines()?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    match &args.output {
        None => {
            use std::io::Write;
            // The same data for a parser, and nothing a terminal obeys: a vendor's value in
            // an entry may hold an 8-bit escape or a bidi override (`-o FILE` keeps the bytes).
            let text = runbook_secret::json_visible(&text);
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| {
                    Error::usage(format!("cannot write the export: {e}"), "check stdout")
                })?;
        }
        Some(path) => {
            super::write_new(path, &text, 0o600)?;
            ui::err(&format!(
                "exported {} entries from {} to {}",
                lines.len(),
                log.location(),
                path.display()
            ));
        }
    }
    Ok(exit::OK)
}

fn verify_export(args: &AuditVerifyArgs) -> Result<u8> {
    let file = args.file.as_deref().unwrap_or(std::path::Path::new("-"));
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::usage(
            format!("cannot read {}: {e}", file.display()),
            "name a file written by `runbook audit export`",
        )
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let place = file.display().to_string();
    let recorded = recorded_head(args)?;
    match runbook_core::audit::verify_lines(&lines) {
        Verdict::Intact { entries, head } => {
            let hashes = runbook_core::audit::hashes_of(&lines);
            Ok(check_head(&hashes, recorded, &place, (entries, &head)))
        }
        broken => report(broken, &place),
    }
}

fn report(verdict: Verdict, place: &str) -> Result<u8> {
    match verdict {
        Verdict::Intact { entries, head } => {
            ui::out(&format!("OK: {entries} entries, head {head}"));
            Ok(exit::OK)
        }
        Verdict::Broken { line, reason } => {
            ui::err(&format!("BROKEN: {place} entry {line}: {reason}"));
            ui::err("Entries from this one on cannot be trusted; compare with a copy of the log (or its webhook sink) to see what changed.");
            Ok(exit::STEP_FAILED)
        }
    }
}

/// An entry's context as `key=value` pairs: strings unquoted, nested values compact, the
/// whole cut at 160 characters (`--json` has every entry raw).
fn readable(context: &serde_json::Value) -> String {
    let text = match context {
        serde_json::Value::Object(m) if m.is_empty() => "-".to_string(),
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={}", s.lines().next().unwrap_or("")),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    ui::truncate(&text, 160)
}

fn show(log: &AuditLog, args: &AuditShowArgs) -> Result<u8> {
    if let Some(since) = &args.since {
        let valid = since.len() >= 10 && since.as_bytes()[4] == b'-' && since.as_bytes()[7] == b'-';
        if !valid {
            return Err(Error::usage(
                format!("--since '{since}' is not a date"),
                "use YYYY-MM-DD or an RFC 3339 time like 2026-04-24T10:00:00Z",
            ));
        }
    }
    let entries: Vec<AuditEntry> = log
        .entries()?
        .into_iter()
        .filter(|e| {
            args.action
                .as_deref()
                .is_none_or(|a| e.event.action.as_str() == a)
        })
        // RFC 3339 UTC times compare as strings.
        .filter(|e| args.since.as_deref().is_none_or(|s| e.time.as_str() >= s))
        .collect();
    if args.json {
        ui::json(&entries);
        return Ok(exit::OK);
    }
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                or_dash(&e.time),
                or_dash(&e.event.run_id),
                e.event.mode.as_str().to_string(),
                or_dash(&e.event.actor),
                or_dash(&e.event.runbook),
                or_dash(&e.event.step),
                or_dash(e.event.action.as_str()),
                readable(&e.event.context),
            ]
        })
        .collect();
    if !rows.is_empty() {
        super::print_table(
            &[
                "TIME", "RUN", "MODE", "ACTOR", "RUNBOOK", "STEP", "ACTION", "CONTEXT",
            ],
            &rows,
        );
    }
    if entries.is_empty() {
        ui::err("no audit entries match");
    }
    Ok(exit::OK)
}

fn verify(
    store: &runbook_core::store::Store,
    log: &AuditLog,
    args: &AuditVerifyArgs,
) -> Result<u8> {
    let recorded = recorded_head(args)?;
    // The log is read once: its chain, its entries' links into the journals, its hashes,
    // and on the database the login stamped on each row.
    let (lines, stamped) = log.lines_stamped()?;
    let (count, head) = match runbook_core::audit::verify_lines(&lines) {
        Verdict::Intact { entries, head } => (entries, head),
        broken => return report(broken, &log.location()),
    };
    let forged = stamped
        .as_deref()
        .map(|rows| {
            runbook_core::ledger::stamps::audit(rows, &|run| {
                runbook_core::ledger::chain::began_unstamped(store, run)
            })
        })
        .unwrap_or_default();
    for problem in forged.iter().take(SHOWN) {
        ui::err(&format!("BROKEN: {}: {}", log.location(), problem.reason));
    }
    if forged.len() > SHOWN {
        ui::err(&format!(
            "BROKEN: {} more audit entries were written by a login other than the one they name",
            forged.len() - SHOWN
        ));
    }
    let entries: Vec<AuditEntry> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let problems = runbook_core::ledger::chain::verify_journals(store, &entries)?;
    // A damaged journal `runbook abandon` set aside, still as it was then, is said, and
    // does not fail the check: the log holds who accepted it, when and why.
    let set_aside = runbook_core::audit::set_aside(&entries);
    let (accepted, problems): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| {
        set_aside
            .get(&p.run_id)
            .is_some_and(|s| s.holds(p.sha256.as_deref()))
    });
    for p in &accepted {
        let by = &set_aside[&p.run_id];
        ui::err(&format!(
            "damaged, abandoned as it is: the journal of run {}: {} (abandoned by {} at {}: {})",
            ui::truncate(&p.run_id, 80),
            p.reason,
            ui::truncate(&by.actor, 120),
            by.time,
            ui::truncate(&by.reason, 200)
        ));
    }
    for p in &problems {
        ui::err(&format!(
            "BROKEN: the journal of run {}: {}",
            ui::truncate(&p.run_id, 80),
            p.reason
        ));
    }
    let hashes: Vec<String> = entries.into_iter().map(|e| e.hash).collect();
    let code = check_head(&hashes, recorded, &log.location(), (count, &head));
    if !forged.is_empty() {
        ui::err("Audit entries were written under another login's name, or with the stamping triggers off: what they say cannot be trusted. The login stamped on each row (its login column) is who wrote it; the rows stay (they are only appended to): keep this output, and take it up with the logins named and the database's owner.");
    }
    if !problems.is_empty() {
        ui::err("A run's journal no longer matches the audit chain, or holds rows its own login did not write: its status and writes cannot be trusted. Compare with a backup of the state; on the database, the login stamped on each row (its login column) is who wrote it.");
    }
    if problems.is_empty() && forged.is_empty() {
        Ok(code)
    } else {
        Ok(exit::STEP_FAILED)
    }
}

/// How many problems of one kind are shown, one line each; the rest are counted.
const SHOWN: usize = 10;
