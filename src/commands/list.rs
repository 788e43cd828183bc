//! `runbook list`: the runbooks found, with their secret, cadence, last rotation and due date.

use crate::cli::ListArgs;
use crate::error::{exit, Result};
use crate::ui;

pub fn run(args: ListArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let (rows, broken) = super::due::rows(settings)?;
    if args.json {
        // Each runbook found, and each that does not load with why.
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum Listed<'a> {
            Loaded(&'a super::due::DueRow),
            Broken { path: &'a str, error: &'a str },
        }
        let listed: Vec<Listed> = rows
            .iter()
            .map(Listed::Loaded)
            .chain(broken.iter().map(|b| Listed::Broken {
                path: &b.path,
                error: &b.error,
            }))
            .collect();
        ui::json(&listed);
        return Ok(exit::OK);
    }
    if rows.is_empty() && broken.is_empty() {
        ui::err("no runbooks found in ./runbooks or RUNBOOK_PATH");
        return Ok(exit::OK);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let file = std::path::Path::new(&r.path)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| r.path.clone());
            let cadence = r
                .cadence_days
                .map(|d| format!("every {d}d"))
                .unwrap_or_else(|| "-".into());
            let due = match (&r.due, r.overdue) {
                (Some(d), true) => format!("{d} OVERDUE"),
                (Some(d), false) => d.clone(),
                (None, _) => "-".into(),
            };
            // An unfinished run is named where the due date is: it is what to act on first.
            let due = match &r.unfinished {
                Some(u) => format!("{due} (unfinished {u})"),
                None => due,
            };
            vec![
                r.id.clone(),
                file,
                r.secret.clone().unwrap_or_else(|| "-".into()),
                cadence,
                due,
                r.title.clone(),
            ]
        })
        .collect();
    if !table.is_empty() {
        super::print_table(&["ID", "FILE", "SECRET", "CADENCE", "DUE", "TITLE"], &table);
    }
    for b in &broken {
        ui::err(&format!(
            "warning: {} does not load: {} (`runbook check` says more)",
            b.path, b.error
        ));
    }
    Ok(exit::OK)
}
