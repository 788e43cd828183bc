//! What scripts can call, for `runbook api`: host functions from the registry the host
//! modules fill as they register (effect, parameters, doc), stdlib functions from their doc
//! comments, and `.d.rhai` definition files from rhai's own metadata. Nothing here is a
//! hand-kept list: a function that is registered or written is documented.

use crate::diagnostic::Sources;
use crate::engine::resolver::STDLIB;
use crate::engine::{Effect, HostFn, Limits, Resolver};
use crate::host;
use rhai::Engine;
use std::rc::Rc;

/// One module of the reference: the global functions, a type's methods, a host module or a
/// stdlib module.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleDoc {
    pub name: String,
    /// `global`, `methods`, `host` or `stdlib`.
    pub kind: &'static str,
    /// The line that imports a stdlib module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<String>,
    pub doc: String,
    pub functions: Vec<FnDoc>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FnDoc {
    pub name: String,
    pub signature: String,
    pub params: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returns: Option<String>,
    /// Host functions only: what calling it does to the world.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// Writes only: whether repeating one is safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<crate::engine::Repeat>,
    pub doc: String,
}

/// Every module scripts can use.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reference {
    pub modules: Vec<ModuleDoc>,
}

/// An engine with every host module, as a runbook sees them.
pub fn engine() -> Engine {
    let sources = Rc::new(Sources::new());
    let resolver = Resolver::new(".", sources);
    let mut engine = crate::engine::new_engine(Limits::default(), resolver);
    host::install(&mut engine, host::Stage::Inert);
    engine
}

/// `rotation` for `std/rotation`: the alias the docs and templates use.
pub(crate) fn alias(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn strip_doc(lines: &[&str], marker: &str) -> String {
    lines
        .iter()
        .flat_map(|l| l.lines())
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix(marker).unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l).trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

impl Reference {
    pub fn build() -> Reference {
        let engine = engine();
        let modules = host::modules();
        let registry = modules.registry();
        let mut modules: Vec<ModuleDoc> = vec![ModuleDoc {
            name: "global".into(),
            kind: "global",
            import: None,
            doc: "The runbook format: declare the runbook, its params, prerequisites and steps; fail a step.".into(),
            functions: Vec::new(),
        }];
        for f in registry {
            let (name, kind, doc) = match (f.receiver, f.module) {
                (Some(ty), _) => (
                    ty.to_string(),
                    "methods",
                    format!("Methods of {ty} values."),
                ),
                (None, "") => ("global".to_string(), "global", String::new()),
                (None, m) => (m.to_string(), "host", String::new()),
            };
            let index = match modules.iter().position(|m| m.name == name) {
                Some(i) => i,
                None => {
                    modules.push(ModuleDoc {
                        name,
                        kind,
                        import: None,
                        doc,
                        functions: Vec::new(),
                    });
                    modules.len() - 1
                }
            };
            modules[index].functions.push(host_fn(f));
        }
        // The runbook format first, then the types' methods, host modules, the stdlib.
        let rank = |m: &ModuleDoc| match (m.kind, m.name.as_str()) {
            ("global", _) => 0,
            ("methods", "StepHandle") => 1,
            ("methods", _) => 2,
            _ => 3,
        };
        modules.sort_by_key(rank);
        for (path, text) in STDLIB {
            modules.push(stdlib_module(&engine, path, text));
        }
        Reference { modules }
    }

    pub fn module(&self, name: &str) -> Option<&ModuleDoc> {
        let name = name.strip_prefix("std/").unwrap_or(name);
        self.modules.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.modules.iter().map(|m| m.name.as_str()).collect()
    }
}

fn host_fn(f: &HostFn) -> FnDoc {
    FnDoc {
        name: f.name.clone(),
        signature: f.signature(),
        params: f.params.clone(),
        returns: Some(f.returns.clone()),
        effect: Some(f.effect),
        repeat: f.repeat,
        doc: f.doc.clone(),
    }
}

fn stdlib_module(engine: &Engine, path: &str, text: &str) -> ModuleDoc {
    let name = alias(path).to_string();
    let mut functions = Vec::new();
    let mut doc = String::new();
    if let Ok(ast) = engine.compile(text) {
        doc = strip_doc(&ast.doc().lines().collect::<Vec<_>>(), "//!");
        let mut defs: Vec<(usize, FnDoc)> = ast
            .shared_lib()
            .iter_script_fn_info()
            .filter(|(_, access, n, ..)| {
                !n.starts_with("anon$") && *access == rhai::FnAccess::Public
            })
            .map(|(.., def)| {
                let params: Vec<String> = def.params.iter().map(|p| p.to_string()).collect();
                let comments: Vec<&str> = def.comments.iter().map(|c| c.as_ref()).collect();
                let line = def.body.start_position().line().unwrap_or(0);
                (
                    line,
                    FnDoc {
                        name: def.name.to_string(),
                        signature: format!("{name}::{}({})", def.name, params.join(", ")),
                        params,
                        returns: None,
                        effect: None,
                        repeat: None,
                        doc: strip_doc(&comments, "///"),
                    },
                )
            })
            .collect();
        defs.sort_by_key(|(line, _)| *line);
        functions = defs.into_iter().map(|(_, f)| f).collect();
    }
    ModuleDoc {
        import: Some(format!("import \"{path}\" as {name};")),
        name,
        kind: "stdlib",
        doc,
        functions,
    }
}

/// `.d.rhai` definition files for editors, as (file name, content): rhai's own for the host
/// modules (with their docs and effects), and one per stdlib module (`rotation.d.rhai`) from
/// its doc comments, under the alias the docs use.
pub fn definitions() -> Vec<(String, String)> {
    let engine = engine();
    // rhai writes `-> ;` for a function whose return type it cannot name (the operators
    // that refuse a Secret next to a string): editors' definition parsers reject that, so
    // it is written as rhai's own "any type", `?`.
    let mut files: Vec<(String, String)> = engine
        .definitions()
        .include_standard_packages(false)
        .iter_files()
        .map(|(name, text)| (name, text.replace(") -> ;", ") -> ?;")))
        .collect();
    for (path, text) in STDLIB {
        let m = stdlib_module(&engine, path, text);
        let mut out = format!("module {};\n", m.name);
        for f in &m.functions {
            out.push('\n');
            for line in f.doc.lines() {
                out.push_str(&format!("/// {line}\n").replace("/// \n", "///\n"));
            }
            let params: Vec<String> = f.params.iter().map(|p| format!("{p}: ?")).collect();
            out.push_str(&format!("fn {}({}) -> ?;\n", f.name, params.join(", ")));
        }
        files.push((format!("{}.d.rhai", m.name), out));
    }
    files
}

#[cfg(test)]
mod definition_tests {
    /// Every declaration in the generated `.d.rhai` files has its parameters and a return
    /// type, as an editor's definition parser needs: `fn NAME(PARAMS) -> TYPE;` or
    /// `op OP(PARAMS) -> TYPE;`. rhai wrote `-> ;` in 30 places.
    #[test]
    fn every_declaration_has_parameter_and_return_types() {
        let mut checked = 0;
        for (file, text) in super::definitions() {
            for line in text.lines() {
                let Some(rest) = line
                    .strip_prefix("fn ")
                    .or_else(|| line.strip_prefix("op "))
                else {
                    continue;
                };
                let (head, ret) = rest
                    .rsplit_once(" -> ")
                    .unwrap_or_else(|| panic!("{file}: no return type: {line}"));
                let ret = ret
                    .strip_suffix(';')
                    .unwrap_or_else(|| panic!("{file}: not ended by `;`: {line}"));
                assert!(!ret.trim().is_empty(), "{file}: empty return type: {line}");
                let open = head
                    .find('(')
                    .unwrap_or_else(|| panic!("{file}: no parameters: {line}"));
                assert!(open > 0 && head.ends_with(')'), "{file}: {line}");
                let params = &head[open + 1..head.len() - 1];
                for p in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    assert!(
                        p == "?" || p.contains(": ") || !p.contains(' '),
                        "{file}: a parameter without a type: {line}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} declarations");
    }
}
