//! `runbook show`: the plan, without running anything.

use crate::cli::ShowArgs;
use crate::error::{exit, Result};
use crate::ui;
use runbook_core::runbook::{Runbook, SourceFile};

pub fn run(args: ShowArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let path = settings.library.find(&args.runbook)?;
    let loaded = Runbook::load(SourceFile::read(&path)?)?;
    let plan = &loaded.plan();
    let m = plan.meta();
    let mut out: Vec<String> = Vec::new();
    out.push(ui::bold(&format!("{} ({})", m.title, m.id)));
    out.push(format!("  file: {}", path.display()));
    let facts = [
        ("secret", m.secret.clone()),
        ("mode", m.mode.clone()),
        ("role", m.role.clone()),
        ("cadence", m.cadence_days.map(|d| format!("every {d} days"))),
        ("average duration", m.average_duration.clone()),
        ("last validated", m.last_validated.clone()),
        (
            "egress",
            Some(runbook_core::plan::egress::declared(
                &m.egress,
                &loaded.vendor_modules(),
            )),
        ),
    ];
    for (k, v) in facts {
        if let Some(v) = v {
            out.push(format!("  {k}: {v}"));
        }
    }
    if !plan.params.is_empty() {
        out.push(String::new());
        out.push(ui::bold("Params"));
        for p in &plan.params {
            let default = match (&p.default, p.secret) {
                (_, true) => " (secret)".to_string(),
                (Some(d), _) => format!(" = {d}"),
                (None, _) if p.required => " (required)".to_string(),
                (None, _) => String::new(),
            };
            let env = p
                .env
                .as_ref()
                .map(|e| format!(" [env {e}]"))
                .unwrap_or_default();
            out.push(format!("  {}{default}{env}", p.name));
            if let Some(h) = &p.help {
                out.push(format!("      {h}"));
            }
        }
    }
    if !plan.prerequisites.is_empty() {
        out.push(String::new());
        out.push(ui::bold("Prerequisites"));
        for p in &plan.prerequisites {
            out.push(format!("  [ ] {p}"));
        }
    }
    out.push(String::new());
    out.push(ui::bold("Steps"));
    out.push(ui::dim(
        "  calls: every vendor call a step's code can make, in order (some only with some params); → waits for the call before it; \"at once\" and together: sent concurrently",
    ));
    let calls = loaded.step_calls();
    for (i, s) in plan.steps.iter().enumerate() {
        let mut marks = Vec::new();
        if s.undo.is_some() {
            marks.push("undo".to_string());
        }
        if s.irreversible.is_some() {
            marks.push("IRREVERSIBLE".to_string());
        }
        if s.confirm.is_some() {
            marks.push("asks for confirmation".to_string());
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!("  [{}]", marks.join(", "))
        };
        out.push(format!("  {}. {} · {}{marks}", i + 1, s.id, s.title));
        if let Some(calls) = calls.get(i).filter(|c| !c.is_empty()) {
            out.push(format!(
                "       calls: {}",
                runbook_core::runbook::program::Outlined::line(calls)
            ));
        }
        for c in &s.checks {
            out.push(format!("       check: {c}"));
        }
        if let Some(why) = &s.irreversible {
            out.push(format!("       cannot be undone: {why}"));
        }
        if let Some(why) = &s.no_undo {
            out.push(format!("       no undo needed: {why}"));
        }
    }
    out.push(String::new());
    out.push(ui::bold(
        "Questions (answers file ids; `runbook answers` prints a file to fill in)",
    ));
    for p in loaded.prompts() {
        let at = if p.step.is_empty() {
            String::new()
        } else {
            format!(" [{}]", p.step)
        };
        out.push(format!(
            "  {}{at}: {} ({})",
            p.id,
            p.shown_question(),
            p.answer
        ));
    }
    for (title, items) in [
        ("Rollback", &m.rollback),
        ("Gotchas", &m.gotchas),
        ("References", &m.references),
    ] {
        if !items.is_empty() {
            out.push(String::new());
            out.push(ui::bold(title));
            for g in items.iter() {
                out.push(format!("  - {g}"));
            }
        }
    }
    ui::out(&out.join("\n"));
    Ok(exit::OK)
}
