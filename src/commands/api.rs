//! `runbook api`: every function a script can call, with its signature, effect and doc,
//! generated from the engine's metadata; `--definitions DIR` writes `.d.rhai` files.

use crate::cli::ApiArgs;
use crate::error::{exit, Error, Result};
use crate::ui;
use runbook_core::error::Error as CoreError;
use runbook_core::runbook::reference::{self, ModuleDoc, Reference};

pub fn run(args: ApiArgs) -> Result<u8> {
    if args.stream_schema {
        ui::json(&crate::view::stream_schema());
        return Ok(exit::OK);
    }
    if let Some(dir) = &args.definitions {
        std::fs::create_dir_all(dir).map_err(|source| CoreError::Write {
            path: dir.clone(),
            source,
        })?;
        let files = reference::definitions();
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| CoreError::Write { path, source })?;
        }
        ui::err(&format!(
            "wrote {} definition file(s) to {} (point your editor's rhai language server at it)",
            files.len(),
            dir.display()
        ));
        return Ok(exit::OK);
    }
    let reference = Reference::build();
    let modules: Vec<&ModuleDoc> = match &args.module {
        None => reference.modules.iter().collect(),
        Some(name) => match reference.module(name) {
            Some(m) => vec![m],
            None => {
                return Err(Error::usage(
                    format!("no module named '{name}'"),
                    format!("modules: {}", reference.names().join(", ")),
                ))
            }
        },
    };
    let text = if args.json {
        let v = serde_json::json!({ "modules": modules });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    } else if args.markdown {
        markdown(&modules)
    } else {
        plain(&modules)
    };
    ui::out(&text);
    Ok(exit::OK)
}

fn heading(m: &ModuleDoc) -> String {
    match m.kind {
        "global" => "global functions".to_string(),
        "methods" => format!("{} methods", m.name),
        "stdlib" => format!("{} (stdlib: {})", m.name, m.import.as_deref().unwrap_or("")),
        _ => format!("{} (host module)", m.name),
    }
}

fn plain(modules: &[&ModuleDoc]) -> String {
    let mut out = Vec::new();
    for m in modules {
        out.push(ui::bold(&heading(m)));
        if !m.doc.is_empty() {
            out.push(indent(&m.doc, "  "));
        }
        for f in &m.functions {
            let effect = match (f.effect, f.repeat) {
                (Some(e), Some(r)) => format!("  [{}, {}]", e.as_str(), r.describe()),
                (Some(e), None) => format!("  [{}]", e.as_str()),
                _ => String::new(),
            };
            out.push(format!("  {}{effect}", f.signature));
            if !f.doc.is_empty() {
                out.push(indent(&f.doc, "      "));
            }
        }
        out.push(String::new());
    }
    out.join("\n").trim_end().to_string()
}

fn indent(text: &str, pad: &str) -> String {
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The reference as Markdown; `docs/api.md` is this for every module.
pub fn markdown(modules: &[&ModuleDoc]) -> String {
    let mut out = vec![
        "# Runbook API reference".to_string(),
        String::new(),
        "Every function a runbook can call, generated from the engine's metadata by `runbook api --markdown`.".to_string(),
        "Effects: `none` (no effect outside the script), `operator` (asks the operator), `read` (reads a vendor; runs under `--dry-run`), `write` (changes vendor state; recorded, not performed, under `--dry-run`), `destructive` (a write that cannot be undone).".to_string(),
    ];
    for m in modules {
        out.push(String::new());
        out.push(format!("## {}", heading(m)));
        if !m.doc.is_empty() {
            out.push(String::new());
            out.push(m.doc.clone());
        }
        if let Some(import) = &m.import {
            out.push(String::new());
            out.push(format!("```rhai\n{import}\n```"));
        }
        for f in &m.functions {
            out.push(String::new());
            out.push(format!("### `{}`", f.signature));
            out.push(String::new());
            let mut body = String::new();
            match (f.effect, f.repeat) {
                (Some(e), Some(r)) => {
                    body.push_str(&format!("Effect: `{}`, {}. ", e.as_str(), r.describe()))
                }
                (Some(e), None) => body.push_str(&format!("Effect: `{}`. ", e.as_str())),
                _ => {}
            }
            body.push_str(&f.doc.replace('\n', " "));
            out.push(body.trim().to_string());
        }
    }
    out.push(String::new());
    out.push("## Vendors".to_string());
    out.push(String::new());
    out.push("The vendor modules, from each vendor's spec (`crates/vendors/src/spec.rs`): the variables that configure it (the environment wins over `./runbook.toml` `[vendors]`), what a run needs, the dashboard an operator uses, the writes runbook sends and whether repeating one is safe, and where discovery (`runbook consumers`, `std/consumers`) looks.".to_string());
    out.push(String::new());
    out.push(runbook_vendors::spec::markdown());
    out.push(String::new());
    out.push(STREAM.to_string());
    out.push(String::new());
    out.push("```json".to_string());
    out.push(serde_json::to_string_pretty(&crate::view::stream_schema()).unwrap_or_default());
    out.push("```".to_string());
    out.push(String::new());
    out.join("\n")
}

/// What the `--json` stream is, before its schema.
const STREAM: &str = "## The run stream (`--json`)

`runbook exec`, `resume` and `rollback` with `--json` write JSON Lines on stdout, one object a line, while the terminal view goes on on stderr. Every object has `v` (the format's version: 1, or 2 for an event a reader of version 1 cannot read, `kept` and a `refreshed` that is `refuted`; a reader refuses a version above its own), `run_id`, `time` and `type`. The run's ledger events come as its journal stores them (`run_started`, `run_resumed`, `step_started`, `write`, `write_outcome`, `write_planned`, `step_finished`, `undo_started`, `undo_finished`, `refreshed`, `kept`, `abandoned`, `decision`, `approval`, `lease_taken`, `lease_lost`, `lock_broken`, `rollback_blocked`, `simulator_answered`, `run_finished`, `repl_ended`): folding them gives the run's state exactly as `runbook runs RUN_ID` reads it from the journal (`resume` and `rollback` stream the events they append to it). Notices (`progress`, `heading`, `warning`, `problem`, `script_output`, `step_reached`, `step_passed`, `call_started`, `call_ended`) are what the terminal shows that is not part of the record. The last line is the `report`: the run's closing report, read off its ledger. Secrets appear only as fingerprints. `runbook api --stream-schema` prints the JSON Schema of one line:";
