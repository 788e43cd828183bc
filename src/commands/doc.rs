//! `runbook doc`: a runbook as an SOP page, Markdown or standalone HTML.

use crate::cli::DocArgs;
use crate::error::{exit, Result};
use crate::ui;
use runbook_core::error::Error as CoreError;
use runbook_core::runbook::{sop, Runbook, SourceFile};
use std::path::Path;

/// How a page names its source: `runbooks/postmark.rhai`, wherever the command ran from, so
/// the generated pages do not depend on the working directory.
fn label(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(dir) => format!("{}/{file}", dir.to_string_lossy()),
        None => file,
    }
}

/// The SOP page of the runbook at `path`, as Markdown or HTML.
pub fn render(path: &Path, html: bool) -> Result<String> {
    let loaded = Runbook::load(SourceFile::read(path)?)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let blocks = sop::page(&loaded, &name, &label(path));
    Ok(if html {
        sop::html(&blocks, &loaded.plan().meta().title)
    } else {
        sop::markdown(&blocks)
    })
}

pub fn run(args: DocArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let path = settings.library.find(&args.runbook)?;
    let text = render(&path, args.html)?;
    match &args.output {
        Some(out) => {
            std::fs::write(out, format!("{text}\n")).map_err(|source| CoreError::Write {
                path: out.clone(),
                source,
            })?;
            ui::err(&format!("wrote {}", out.display()));
        }
        None => ui::out(&text),
    }
    Ok(exit::OK)
}
