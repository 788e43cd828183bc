//! `runbook list`: the runbooks found, with their secret and cadence.

use crate::cli::ListArgs;
use crate::error::{exit, Result};
use crate::prompt::Prompter;
use crate::runbook::{self, source, SourceFile};
use crate::ui;

pub fn run(args: ListArgs) -> Result<u8> {
    let mut rows = Vec::new();
    for path in source::list_paths() {
        let loaded = SourceFile::read(&path).and_then(|f| runbook::load(f, Prompter::silent()));
        let row = match loaded {
            Ok(l) => {
                let m = l.plan.meta();
                serde_json::json!({
                    "path": path.display().to_string(),
                    "id": m.id,
                    "title": m.title,
                    "secret": m.secret,
                    "cadence_days": m.cadence_days,
                    "steps": l.plan.steps.len(),
                })
            }
            Err(e) => serde_json::json!({
                "path": path.display().to_string(),
                "error": e.to_string(),
            }),
        };
        rows.push(row);
    }
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
        ui::out(&format!(
            "{:<28} {:<24} {:<10} {}",
            s("id"),
            if s("secret").is_empty() {
                "-".into()
            } else {
                s("secret")
            },
            cadence,
            s("title")
        ));
    }
    Ok(exit::OK)
}
