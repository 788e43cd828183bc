//! `runbook check`: compile and lint without running anything.

use crate::cli::CheckArgs;
use crate::error::{exit, Error, Result};
use crate::settings::Settings;
use crate::ui;
use runbook_core::diagnostic::{ScriptError, Summary};
use runbook_core::error::Error as CoreError;
use runbook_core::runbook::{lint, Runbook, SourceFile};
use std::path::{Path, PathBuf};

/// The problems of one runbook file (empty when it is clean).
/// What checking one file found.
enum Checked {
    /// A runbook, with its problems (none: it passes).
    Runbook(Vec<ScriptError>),
    /// A module of functions a runbook imports: checked there, with the runbook.
    Module,
}

fn check_file(path: &Path) -> Result<Checked, CoreError> {
    let file = SourceFile::read(path)?;
    match Runbook::load(file.clone()) {
        Ok(loaded) => Ok(Checked::Runbook(lint::lint(&loaded))),
        Err(CoreError::Script(e)) if is_undeclared(&e) && file.is_module() => Ok(Checked::Module),
        Err(CoreError::Script(e)) => Ok(Checked::Runbook(vec![*e])),
        Err(e) => Err(e),
    }
}

/// A file that does not declare itself a runbook (it may be a module).
pub fn is_undeclared(e: &ScriptError) -> bool {
    e.code == "runbook::plan::no_metadata"
}

fn targets(args: &CheckArgs, settings: &Settings) -> Result<Vec<PathBuf>> {
    if args.paths.is_empty() {
        return Ok(settings.library.list_paths());
    }
    let mut out = Vec::new();
    for p in &args.paths {
        let path = Path::new(p);
        if path.is_dir() {
            out.extend(
                // A linked runbook runs as any other (exec and a bare `check` follow links),
                // so it is checked too; one whose link leads nowhere is reported, not
                // skipped. Linked folders are not walked (a link to `/` would be).
                walkdir::WalkDir::new(path)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_map(|e| e.ok())
                    .filter(|e| {
                        e.file_type().is_file() || (e.path_is_symlink() && !e.path().is_dir())
                    })
                    .map(|e| e.into_path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rhai")),
            );
        } else {
            out.push(settings.library.find(p)?);
        }
    }
    Ok(out)
}

pub fn run(args: CheckArgs, settings: &Settings) -> Result<u8> {
    let paths = targets(&args, settings)?;
    if paths.is_empty() {
        return Err(Error::usage(
            "no runbooks to check",
            "give a path, or run from a folder that has ./runbooks",
        ));
    }
    let mut all: Vec<Summary> = Vec::new();
    let mut failed = 0usize;
    for path in &paths {
        let problems = match check_file(path) {
            Ok(Checked::Runbook(p)) => p,
            Ok(Checked::Module) => {
                if !args.json {
                    ui::out(&format!(
                        "ok  {} (a module: its functions are checked with the runbooks that import it)",
                        path.display()
                    ));
                }
                continue;
            }
            Err(e) => {
                failed += 1;
                if args.json {
                    all.push(Summary {
                        code: "runbook::io".into(),
                        message: e.to_string(),
                        file: Some(path.display().to_string()),
                        line: None,
                        column: None,
                        help: None,
                    });
                } else {
                    ui::err(&ui::render(&e));
                }
                continue;
            }
        };
        if problems.is_empty() {
            if !args.json {
                ui::out(&format!("ok  {}", path.display()));
            }
            continue;
        }
        failed += 1;
        for p in &problems {
            if args.json {
                let mut v = p.summary();
                v.file.get_or_insert_with(|| path.display().to_string());
                all.push(v);
            } else {
                ui::err(&ui::render(p));
            }
        }
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct Checked {
            checked: usize,
            diagnostics: Vec<Summary>,
        }
        let out = Checked {
            checked: paths.len(),
            diagnostics: all,
        };
        ui::json(&out);
    } else if failed > 0 {
        ui::err(&format!(
            "{failed} of {} runbook(s) have problems",
            paths.len()
        ));
    }
    Ok(if failed > 0 { exit::USAGE } else { exit::OK })
}
