//! `runbook completions SHELL` and `runbook man`: generated from the clap definitions, so
//! they never drift from the flags.

use crate::cli::{CompletionsArgs, ManArgs};
use crate::error::{exit, Error, Result};
use std::io::Write;

pub fn completions(args: CompletionsArgs) -> Result<u8> {
    let mut cmd = crate::cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "runbook", &mut out);
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(&out);
    Ok(exit::OK)
}

pub fn man(args: ManArgs) -> Result<u8> {
    let cmd = crate::cli::command();
    let write_err = |path: std::path::PathBuf, source: std::io::Error| {
        Error::Core(runbook_core::error::Error::Write { path, source })
    };
    match &args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| write_err("<stdout>".into(), e))?;
            let _ = std::io::stdout().write_all(&out);
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| write_err(dir.clone(), e))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| write_err(dir.clone(), e))?;
            crate::ui::err(&format!("wrote the manual pages to {}", dir.display()));
        }
    }
    Ok(exit::OK)
}
