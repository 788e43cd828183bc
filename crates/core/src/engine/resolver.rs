//! `import "std/NAME"` resolves against the stdlib compiled into the binary; any other import
//! against the runbook's own folder (and never outside it).

use super::Sources;
use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

type SharedModule = Shared<Module>;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// The stdlib modules shipped inside the binary, by import name.
pub(crate) const STDLIB: &[(&str, &str)] = &[
    ("std/checks", include_str!("../../../../stdlib/checks.rhai")),
    (
        "std/consumers",
        include_str!("../../../../stdlib/consumers.rhai"),
    ),
    (
        "std/rotation",
        include_str!("../../../../stdlib/rotation.rhai"),
    ),
];

/// Cheap to clone: the loader keeps a handle to pre-resolve top-level imports.
#[derive(Clone)]
pub(crate) struct Resolver {
    inner: Rc<Inner>,
}

struct Inner {
    base: PathBuf,
    sources: Rc<Sources>,
    cache: RefCell<HashMap<String, SharedModule>>,
    /// Each module's compiled script and shown name, by import path: the lints' program
    /// reuses them instead of compiling every import again.
    compiled: RefCell<HashMap<String, (String, rhai::AST)>>,
    /// The files being loaded, outermost first (the runbook, then each import in turn), by
    /// real path: a file met again is a cycle, named, never a stack overflow.
    loading: RefCell<Vec<(PathBuf, String)>>,
}

/// How deep imports may nest (a runbook, a module it imports, … ): far more than any real
/// runbook needs, far less than overflows the stack.
pub const MAX_IMPORT_DEPTH: usize = 16;

use crate::diagnostic::{IMPORT_CYCLE, IMPORT_DEPTH};

impl Resolver {
    /// `base` is the folder of the runbook being loaded.
    pub fn new(base: impl Into<PathBuf>, sources: Rc<Sources>) -> Self {
        Resolver {
            inner: Rc::new(Inner {
                base: base.into(),
                sources,
                cache: RefCell::new(HashMap::new()),
                compiled: RefCell::new(HashMap::new()),
                loading: RefCell::new(Vec::new()),
            }),
        }
    }

    /// The runbook file itself, as the outermost file being loaded (so a module that
    /// imports the runbook is a cycle too).
    pub fn loading_main(&self, path: &Path, shown: &str) {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut loading = self.inner.loading.borrow_mut();
        loading.clear();
        loading.push((real, shown.to_string()));
    }

    /// Every module resolved so far (imports of imports included), by import path.
    pub fn resolved(&self) -> Vec<(String, SharedModule)> {
        let mut v: Vec<_> = self
            .inner
            .cache
            .borrow()
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The compiled script of a module resolved so far, with its shown name.
    pub fn compiled(&self, path: &str) -> Option<(String, rhai::AST)> {
        self.inner.compiled.borrow().get(path).cloned()
    }

    fn locate(
        &self,
        path: &str,
        pos: Position,
    ) -> Result<(PathBuf, String, String), Box<EvalAltResult>> {
        if let Some((_, text)) = STDLIB.iter().find(|(name, _)| *name == path) {
            let name = format!("<{path}>");
            return Ok((PathBuf::from(&name), name, (*text).to_string()));
        }
        if path.starts_with("std/") {
            let known: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).collect();
            return Err(not_found(
                path,
                &format!("no such stdlib module; available: {}", known.join(", ")),
                pos,
            ));
        }
        read_local(&self.inner.base, path).map_err(|why| not_found(path, &why, pos))
    }
}

/// Reads an import from the runbook's folder: a relative path that stays inside the folder
/// once links are resolved, naming a regular file (a FIFO would block the load forever).
/// Returns the real path, the shown file name and the text, or why not.
pub(crate) fn read_local(base: &Path, path: &str) -> Result<(PathBuf, String, String), String> {
    let rel = Path::new(path);
    let escapes = rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)));
    if escapes {
        return Err("imports must stay inside the runbook's folder".into());
    }
    let mut file = base.join(rel);
    if file.extension().is_none() {
        file.set_extension("rhai");
    }
    let shown = file.display().to_string();
    let real = std::fs::canonicalize(&file).map_err(|e| format!("{shown}: {e}"))?;
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    if !real.starts_with(&base) {
        return Err(
            "it is a link that leads outside the runbook's folder; imports must stay inside it"
                .into(),
        );
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    // As a runbook is: a module fed a gigabyte must not be held whole.
    let text = crate::state::read_text(&real).map_err(|e| format!("{shown}: {e}"))?;
    Ok((real, shown, text))
}

fn not_found(path: &str, why: &str, pos: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorModuleNotFound(format!("{path} ({why})"), pos).into()
}

impl rhai::ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if let Some(m) = self.inner.cache.borrow().get(path) {
            return Ok(m.clone());
        }
        let (real, name, text) = self.locate(path, pos)?;
        let chain = |loading: &[(PathBuf, String)], from: usize| {
            loading[from..]
                .iter()
                .map(|(_, shown)| shown.as_str())
                .chain(std::iter::once(name.as_str()))
                .collect::<Vec<_>>()
                .join(" → ")
        };
        {
            let loading = self.inner.loading.borrow();
            if let Some(at) = loading.iter().position(|(p, _)| *p == real) {
                // Not ErrorModuleNotFound: rhai replaces that one's text with the bare path.
                return Err(EvalAltResult::ErrorRuntime(
                    format!("{IMPORT_CYCLE}{}", chain(&loading, at)).into(),
                    pos,
                )
                .into());
            }
            if loading.len() > MAX_IMPORT_DEPTH {
                return Err(EvalAltResult::ErrorRuntime(
                    format!(
                        "{IMPORT_DEPTH}{} (at most {MAX_IMPORT_DEPTH} levels)",
                        chain(&loading, 0)
                    )
                    .into(),
                    pos,
                )
                .into());
            }
        }
        self.inner.sources.add(&name, &text);
        let mut ast = engine.compile(&text).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                name.clone(),
                Box::new(EvalAltResult::ErrorParsing(*e.0, e.1)),
                pos,
            ))
        })?;
        ast.set_source(name.as_str());
        self.inner
            .compiled
            .borrow_mut()
            .insert(path.to_string(), (name.clone(), ast.clone()));
        self.inner
            .loading
            .borrow_mut()
            .push((real.clone(), name.clone()));
        let evaluated = Module::eval_ast_as_new(Scope::new(), &ast, engine);
        self.inner.loading.borrow_mut().pop();
        let mut module =
            evaluated.map_err(|e| Box::new(EvalAltResult::ErrorInModule(name.clone(), e, pos)))?;
        module.set_id(name.as_str());
        let shared: SharedModule = module.into();
        self.inner
            .cache
            .borrow_mut()
            .insert(path.to_string(), shared.clone());
        Ok(shared)
    }
}
