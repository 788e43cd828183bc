//! `runbook audit show`, `runbook audit verify` and `runbook audit export`.

use crate::cli::{AuditCommand, AuditExportArgs, AuditShowArgs, AuditVerifyArgs};
use crate::error::{exit, Error, Result};
use crate::ui;
use runbook_core::audit::{AuditEntry, AuditLog, HeadCheck, Verdict};

pub fn run(cmd: AuditCommand, settings: &crate::settings::Settings) -> Result<u8> {
    // An export is verified on its own: no store (and no database) is needed.
    if let AuditCommand::Verify(AuditVerifyArgs {
        file: Some(file), ..
    }) = &cmd
    {
        return verify_export(file);
    }
    let log = AuditLog::new(&crate::wiring::store(settings)?);
    match cmd {
        AuditCommand::Show(args) => show(&log, &args),
        AuditCommand::Verify(args) => verify(&log, &args),
        AuditCommand::Export(args) => export(&log, &args),
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

fn verify_export(file: &std::path::Path) -> Result<u8> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::usage(
            format!("cannot read {}: {e}", file.display()),
            "name a file written by `runbook audit export`",
        )
    })?;
    let lines: Vec<&str> = text.lines().collect();
    report(
        runbook_core::audit::verify_lines(&lines),
        &file.display().to_string(),
    )
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
        ui::out(&serde_json::to_string_pretty(&entries).unwrap_or_default());
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

fn verify(log: &AuditLog, args: &AuditVerifyArgs) -> Result<u8> {
    match log.verify()? {
        Verdict::Intact { entries, head } => {
            let Some(recorded) = &args.head else {
                ui::out(&format!("OK: {entries} entries, head {head}"));
                return Ok(exit::OK);
            };
            match log.find_head(recorded)? {
                HeadCheck::Present { line, after } => {
                    ui::out(&format!(
                        "OK: {entries} entries, head {head}; the recorded head is entry {line}, {after} appended since"
                    ));
                    Ok(exit::OK)
                }
                HeadCheck::Missing => {
                    ui::err(&format!(
                        "BROKEN: {} does not contain the recorded head {}: entries were cut off the end, or the log was replaced",
                        log.location(),
                        ui::truncate(recorded, 80)
                    ));
                    ui::err(&format!("The chain that is left verifies ({entries} entries, head {head}); compare with a copy of the log (or its webhook sink) to see what is missing."));
                    Ok(exit::STEP_FAILED)
                }
            }
        }
        broken @ Verdict::Broken { .. } => report(broken, &log.location()),
    }
}
