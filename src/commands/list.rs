//! `runbook list`: the runbooks found, with their secret, cadence, last rotation and due date.

use crate::cli::ListArgs;
use crate::error::{exit, Result};
use runbook_core::ui;

pub fn run(args: ListArgs) -> Result<u8> {
    let rows = super::due::rows()?;
    if args.json {
        ui::out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::err("no runbooks found in ./runbooks or RUNBOOK_PATH");
        return Ok(exit::OK);
    }
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        if r.get("error").is_some() {
            ui::out(&format!(
                "{:<28} (does not load: {})  {}",
                "?",
                s("error"),
                s("path")
            ));
            continue;
        }
        let cadence = r["cadence_days"]
            .as_i64()
            .map(|d| format!("every {d}d"))
            .unwrap_or_else(|| "-".into());
        let due = match (r["due"].as_str(), r["overdue"] == true) {
            (Some(d), true) => format!("due {d} OVERDUE"),
            (Some(d), false) => format!("due {d}"),
            (None, _) => String::new(),
        };
        ui::out(&format!(
            "{:<28} {:<24} {:<10} {:<22} {}",
            s("id"),
            if s("secret").is_empty() {
                "-".into()
            } else {
                s("secret")
            },
            cadence,
            due,
            s("title")
        ));
    }
    Ok(exit::OK)
}
