//! `runbook list`: the runbooks found, with their secret, cadence, last rotation and due date.

use crate::cli::ListArgs;
use crate::error::{exit, Result};
use crate::ui;

pub fn run(args: ListArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let rows = super::due::rows(settings)?;
    if args.json {
        ui::out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::err("no runbooks found in ./runbooks or RUNBOOK_PATH");
        return Ok(exit::OK);
    }
    let mut table = Vec::new();
    let mut broken = Vec::new();
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let file = std::path::Path::new(&s("path"))
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| s("path"));
        if r.get("error").is_some() {
            broken.push(format!("{} does not load: {}", s("path"), s("error")));
            continue;
        }
        let cadence = r["cadence_days"]
            .as_i64()
            .map(|d| format!("every {d}d"))
            .unwrap_or_else(|| "-".into());
        let due = match (r["due"].as_str(), r["overdue"] == true) {
            (Some(d), true) => format!("{d} OVERDUE"),
            (Some(d), false) => d.to_string(),
            (None, _) => String::new(),
        };
        table.push(vec![
            s("id"),
            file,
            if s("secret").is_empty() {
                "-".into()
            } else {
                s("secret")
            },
            cadence,
            if due.is_empty() { "-".into() } else { due },
            s("title"),
        ]);
    }
    if !table.is_empty() {
        super::print_table(&["ID", "FILE", "SECRET", "CADENCE", "DUE", "TITLE"], &table);
    }
    for b in &broken {
        ui::err(&format!("warning: {b} (`runbook check` says more)"));
    }
    Ok(exit::OK)
}
