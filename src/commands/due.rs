//! `runbook due`: when each runbook last rotated for real (from the runs' ledgers) and
//! when it is due.

use crate::cli::DueArgs;
use crate::error::{exit, Result};
use crate::settings::Settings;
use crate::ui;
use runbook_core::ledger::{self, Ledger};
use runbook_core::run::RunStatus;
use runbook_core::store::Store;
use std::collections::HashMap;

/// What the runs' ledgers say per runbook id.
#[derive(Default)]
pub struct History {
    /// Last real rotation (RFC 3339): a run against production, applying its writes, that
    /// no vendor answered as a simulator, settled as succeeded (by itself or by a resume).
    /// Rehearsals and dry runs never count.
    pub last: HashMap<String, String>,
    /// The newest unfinished run, as `since TIME (RUN_ID)`: stopped with changes in effect
    /// that nothing settled. It is not a rotation, and a new one waits for it.
    pub unfinished: HashMap<String, String>,
    /// Journals that cannot be read (not set aside by `runbook abandon`), with the runbook
    /// they may belong to (`None`: any). Such a run may be the last rotation, or an
    /// unfinished one: what the rows say of that runbook is not known.
    pub damaged: Vec<(Option<String>, String)>,
}

impl History {
    /// Why what the runs say of `runbook` is not known, if it is not: a journal of it (or
    /// of a runbook nothing can name) cannot be read.
    pub fn damaged(&self, runbook: &str) -> Option<String> {
        let runs: Vec<&str> = self
            .damaged
            .iter()
            .filter(|(of, _)| of.as_deref().is_none_or(|r| r == runbook))
            .map(|(_, run)| run.as_str())
            .collect();
        match runs[..] {
            [] => None,
            [run] => Some(format!("may be: the journal of run {run} cannot be read")),
            _ => Some(format!(
                "may be: the journals of runs {} cannot be read",
                runs.join(", ")
            )),
        }
    }
}

/// [`History`] from every run in the store. A ledger that cannot be read is never "never
/// rotated": it is kept in `damaged`, said for the runbook it may belong to (every runbook
/// when none can be named), unless `runbook abandon` set it aside as it is: that run is
/// over and counts as no rotation.
pub fn history(store: &Store) -> Result<History> {
    let mut out = History::default();
    let journals = ledger::Journals::new(store);
    for id in store.runs()? {
        let l: Ledger = match journals.read(id)? {
            None => continue,
            Some(Ok(l)) => l,
            Some(Err(u)) if journals.holds(&u) => continue,
            Some(Err(u)) => {
                let next = match u.error {
                    runbook_core::error::Error::JournalNewer { .. } => {
                        "see or finish it with the version of runbook that wrote it".to_string()
                    }
                    _ => format!(
                        "it cannot be resumed: read it, finish or undo its rotation at the vendors if needed, then end the run with `runbook abandon {} --reason TEXT`",
                        u.run_id
                    ),
                };
                crate::ui::err(&format!("warning: {} ({next})", u.error));
                out.damaged.push((u.runbook, u.run_id));
                continue;
            }
        };
        if l.start.runbook.is_empty() {
            continue;
        }
        if l.is_unfinished() {
            // Run ids sort by time: the last one seen is the newest. A rehearsal's (its
            // vendors answered as simulators, or it went to loopback) blocks no production
            // rotation, and is said to be one.
            let what = if l.is_production() { "" } else { "rehearsal " };
            // A production run is named over any rehearsal, however new: it is the one
            // that blocks the next rotation.
            let named = out.unfinished.get(&l.start.runbook);
            if l.is_production() || named.is_none_or(|n| n.starts_with("rehearsal ")) {
                out.unfinished.insert(
                    l.start.runbook.clone(),
                    format!("{what}since {} ({})", l.started_at, l.run_id),
                );
            }
        }
        let Some((RunStatus::Succeeded, at)) = l.settled_at() else {
            continue;
        };
        if !l.is_production() {
            continue;
        }
        let later = out
            .last
            .get(&l.start.runbook)
            .is_none_or(|t| t.as_str() < at);
        if later {
            out.last.insert(l.start.runbook.clone(), at.to_string());
        }
    }
    Ok(out)
}

/// Due date (`YYYY-MM-DD`) and whether it has passed. A rotation is due on its due date and
/// overdue only after it; one never rotated is due today.
pub fn due(last: Option<&str>, cadence_days: Option<i64>) -> (Option<String>, bool) {
    let today = time::OffsetDateTime::now_utc().date();
    let Some(days) = cadence_days else {
        return (None, false);
    };
    let Some(last) = last else {
        return (Some(today.to_string()), false);
    };
    let parsed = time::OffsetDateTime::parse(last, &time::format_description::well_known::Rfc3339);
    match parsed {
        // A cadence past the calendar's end (a typo of many digits) is never due: `+`
        // panics there, and one runbook's file must not stop `due` for every runbook.
        Ok(t) => match days
            .checked_mul(86_400)
            .and_then(|s| t.date().checked_add(time::Duration::seconds(s)))
        {
            Some(due) => (Some(due.to_string()), due < today),
            None => (None, false),
        },
        Err(_) => (Some(today.to_string()), false),
    }
}

/// A runbook found, with its cadence, last rotation and due date (`due --json`, `list`).
#[derive(serde::Serialize)]
pub struct DueRow {
    pub path: String,
    pub id: String,
    pub title: String,
    pub secret: Option<String>,
    pub cadence_days: Option<i64>,
    pub steps: usize,
    pub last_rotation: Option<String>,
    pub due: Option<String>,
    pub overdue: bool,
    /// An unfinished run of it, `since TIME (RUN_ID)`: finish it before rotating again; and
    /// `may be: the journal of run RUN_ID cannot be read` when a damaged journal may be one.
    pub unfinished: Option<String>,
}

/// A runbook found that does not load: its due date is unknown.
pub struct Broken {
    pub path: String,
    pub error: String,
}

/// One row per runbook found, and the runbooks that do not load.
pub fn rows(settings: &Settings) -> Result<(Vec<DueRow>, Vec<Broken>)> {
    let history = history(&crate::wiring::store(settings)?)?;
    let History {
        last, unfinished, ..
    } = &history;
    let (mut rows, mut broken) = (Vec::new(), Vec::new());
    // Loaded side by side: a few hostile files cost one load budget, not one each.
    let paths = settings.library.list_paths();
    let loaded = runbook_core::runbook::folder::load_each(&paths, |l| {
        let m = l.plan().meta();
        (
            m.id.clone(),
            m.title.clone(),
            m.secret.clone(),
            m.cadence_days,
            l.plan().steps.len(),
        )
    });
    for (path, loaded) in loaded {
        let path = path.display().to_string();
        match loaded {
            Ok((id, title, secret, cadence_days, steps)) => {
                let last_run = last.get(&id).cloned();
                let (due_on, overdue) = due(last_run.as_deref(), cadence_days);
                rows.push(DueRow {
                    path,
                    unfinished: match (unfinished.get(&id), history.damaged(&id)) {
                        (Some(u), Some(d)) => Some(format!("{u}; {d}")),
                        (u, d) => u.cloned().or(d),
                    },
                    id,
                    title,
                    secret,
                    cadence_days,
                    steps,
                    last_rotation: last_run,
                    due: due_on,
                    overdue,
                });
            }
            // A module a runbook imports, not a runbook: not listed.
            Err(runbook_core::error::Error::Script(e))
                if super::check::is_undeclared(&e)
                    && runbook_core::runbook::SourceFile::read(std::path::Path::new(&path))
                        .is_ok_and(|f| f.is_module()) => {}
            Err(e) => broken.push(Broken {
                path,
                error: e.to_string(),
            }),
        }
    }
    Ok((rows, broken))
}

pub fn run(args: DueArgs, settings: &Settings) -> Result<u8> {
    let (rows, broken) = rows(settings)?;
    // A runbook that does not load may be the one that is overdue: never skip it silently.
    for b in &broken {
        ui::err(&format!(
            "warning: {} does not load, so its due date is unknown: {}",
            b.path, b.error
        ));
    }
    let rows: Vec<DueRow> = rows
        .into_iter()
        .filter(|r| r.cadence_days.is_some())
        .collect();
    if args.json {
        ui::json(&rows);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        ui::err("no runbook declares a cadence (cadence_days)");
        return Ok(exit::OK);
    }
    ui::out(&format!(
        "{:<28} {:<24} {:<8} {:<22} {:<12}",
        "RUNBOOK", "SECRET", "CADENCE", "LAST ROTATION", "DUE"
    ));
    let today = time::OffsetDateTime::now_utc().date().to_string();
    for r in rows {
        let on = r.due.clone().unwrap_or_else(|| "-".into());
        let due = if r.overdue {
            format!("{on} OVERDUE")
        } else if on == today {
            format!("{on} (today)")
        } else {
            on
        };
        let unfinished = r
            .unfinished
            .as_deref()
            .map(|u| format!(" · unfinished {u}"))
            .unwrap_or_default();
        ui::out(&format!(
            "{:<28} {:<24} {:<8} {:<22} {due}{unfinished}",
            r.id,
            r.secret.as_deref().unwrap_or("-"),
            format!("{}d", r.cadence_days.unwrap_or_default()),
            r.last_rotation.as_deref().unwrap_or("never"),
        ));
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::{due, history};

    /// An unfinished production run is the one `due` names, even when a rehearsal of the
    /// same runbook stopped after it: before, the newest unfinished run was named, and read
    /// as a rehearsal it hid the run that blocks the next rotation.
    #[test]
    fn an_unfinished_production_run_is_named_over_a_newer_rehearsal() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        let journal = |id: &str, extra: &str| {
            let at = |t: &str| format!(r#""v":1,"run_id":"{id}","time":"2026-12-07T0{t}Z""#);
            let text = [
                format!(r#"{{{},"type":"run_started","runbook":"rb","source":{{"path":"rb.rhai","sha256":"00"}},"params":{{}},"actor":"a","host":"h","pid":1,"target":"production","effect":"apply","entry":"exec"}}"#, at("1:00:00")),
                extra.replace("AT", &at("1:00:01")),
                format!(r#"{{{},"type":"step_started","step":"s","attempt":1}}"#, at("1:00:02")),
                format!(r#"{{{},"type":"write","step":"s","function":"heroku::set_config","target":"app"}}"#, at("1:00:03")),
                format!(r#"{{{},"type":"write_outcome","step":"s","function":"heroku::set_config","target":"app","outcome":"applied"}}"#, at("1:00:04")),
            ]
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
            std::fs::write(runs.join(format!("{id}.jsonl")), text + "\n").unwrap();
        };
        journal("20261207T010000000Z-aaaaaa", "");
        journal(
            "20261207T020000000Z-bbbbbb",
            r#"{AT,"type":"simulator_answered","vendor":"heroku"}"#,
        );
        let say = runbook_core::sink::Say::outside(std::sync::Arc::new(runbook_core::sink::Quiet));
        let store: runbook_core::store::Store =
            std::sync::Arc::new(runbook_core::store::Files::new(dir.path(), say));
        let h = history(&store).unwrap();
        let named = h.unfinished.get("rb").unwrap();
        assert!(named.contains("20261207T010000000Z-aaaaaa"), "{named}");
        assert!(!named.starts_with("rehearsal"), "{named}");
    }

    /// A cadence past the calendar's end panicked in the date's `+` (exit 101 for every
    /// runbook `due` or `list` looked at): it is never due.
    #[test]
    fn a_cadence_past_the_calendars_end_is_never_due() {
        let last = Some("2026-01-01T00:00:00Z");
        assert_eq!(due(last, Some(3_000_000)), (None, false));
        assert_eq!(due(last, Some(i64::MAX)), (None, false));
        assert_eq!(due(last, Some(90)), (Some("2026-04-01".into()), true));
    }
}
