//! Finding a runbook by path or name, and reading it.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A runbook's text and where it came from.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The name diagnostics show (the path as the user gave it, or as found).
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile> {
        let text = crate::state::read_text(path)?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            text,
        })
    }

    /// Whether this file is a module a runbook imports, not a runbook: it parses to
    /// functions (and imports) only, with nothing at its top level to run. Asked only of
    /// a file that did not load as a runbook (`check`, `list` and `due` of a folder).
    pub fn is_module(&self) -> bool {
        let resolver = crate::engine::resolver::Resolver::new(self.dir(), Default::default());
        let engine = crate::engine::new_engine(crate::engine::Limits::default(), resolver);
        match engine.compile(&self.text) {
            Ok(ast) => {
                ast.iter_functions().next().is_some()
                    && ast
                        .statements()
                        .iter()
                        .all(|s| matches!(s, rhai::Stmt::Import(..)))
            }
            Err(_) => false,
        }
    }

    /// The folder imports resolve against.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// Where runbooks are found by name: `./runbooks`, then the folders of `RUNBOOK_PATH`.
#[derive(Debug, Clone)]
pub struct Library {
    dirs: Vec<PathBuf>,
}

impl Library {
    /// `./runbooks`, then each folder of `runbook_path` (as `RUNBOOK_PATH` lists them).
    pub fn new(runbook_path: Option<&std::ffi::OsStr>) -> Library {
        let mut dirs = vec![PathBuf::from("runbooks")];
        if let Some(p) = runbook_path {
            dirs.extend(std::env::split_paths(p).filter(|d| !d.as_os_str().is_empty()));
        }
        Library { dirs }
    }

    /// Resolves RUNBOOK: an existing path, else a file name (`postmark` or `postmark.rhai`)
    /// in the search folders, else a runbook id (`postmark-server-token`, what `list`,
    /// `runs` and `due` show). Not found lists what exists, by file and id.
    pub fn find(&self, name: &str) -> Result<PathBuf> {
        let direct = Path::new(name);
        if direct.is_file() {
            return Ok(direct.to_path_buf());
        }
        let file = if name.ends_with(".rhai") {
            name.to_string()
        } else {
            format!("{name}.rhai")
        };
        for dir in &self.dirs {
            let candidate = dir.join(&file);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        if let Some(path) = self.find_by_id(name) {
            return Ok(path);
        }
        let known = self.list_names();
        let help = if known.is_empty() {
            "no runbooks found in ./runbooks or RUNBOOK_PATH; give a path to a .rhai file, or create one with `runbook new NAME`".to_string()
        } else {
            format!(
                "available: {}; or give a path to a .rhai file",
                known.join(", ")
            )
        };
        Err(Error::RunbookNotFound {
            name: name.to_string(),
            help,
        })
    }

    /// Every `.rhai` file under the search folders, as paths.
    pub fn list_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in &self.dirs {
            for entry in walkdir::WalkDir::new(dir)
                .follow_links(true)
                .sort_by_file_name()
                .into_iter()
                .filter_map(|e| e.ok())
            {
                let p = entry.path();
                if entry.file_type().is_file() && p.extension().is_some_and(|e| e == "rhai") {
                    out.push(p.to_path_buf());
                }
            }
        }
        out
    }

    /// The runbook whose meta id is `id`. Only files that mention the id in quotes are
    /// loaded, so a miss costs a read of each file, not a compile.
    fn find_by_id(&self, id: &str) -> Option<PathBuf> {
        let quoted = format!("\"{id}\"");
        self.list_paths().into_iter().find(|p| {
            let Ok(file) = SourceFile::read(p) else {
                return false;
            };
            file.text.contains(&quoted)
                && super::Runbook::load(file).is_ok_and(|rb| rb.plan().meta().id == id)
        })
    }

    /// `file (id)` for every runbook found; the file alone when it does not load.
    fn list_names(&self) -> Vec<String> {
        self.list_paths()
            .iter()
            .filter_map(|p| {
                let stem = p.file_stem()?.to_string_lossy().into_owned();
                let id = SourceFile::read(p)
                    .and_then(super::Runbook::load)
                    .map(|rb| rb.plan().meta().id.clone())
                    .ok();
                Some(match id {
                    Some(id) if id != stem => format!("{stem} (id {id})"),
                    _ => stem,
                })
            })
            .collect()
    }
}
