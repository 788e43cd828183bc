//! The module order in the crate's doc is the architecture: a module may use only the
//! modules before it. This reads the sources and fails on any use that points up.

use std::collections::BTreeMap;
use std::path::Path;

fn order() -> Vec<String> {
    let lib = include_str!("lib.rs");
    let doc: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join(" ");
    let list = doc
        .split_once("(a test holds this order):")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Each source file's code outside its test module, by path under `src`, with its
/// top-level module (lib.rs and this file left out).
fn sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "layering" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            out.push((top, rel, code.to_string()));
        }
    }
    out
}

/// `crate::NAME` uses per top-level module, outside test code.
fn uses() -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (top, rel, code) in sources() {
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != top {
                out.entry(top.clone())
                    .or_default()
                    .push((name, rel.clone()));
            }
        }
    }
    out
}

/// The engine emits events to a sink and never writes to a terminal itself; what only the
/// sandbox knows (its control paths, its variables) stays behind the `Dashboard` trait.
#[test]
fn the_engine_neither_prints_nor_knows_the_sandbox() {
    let forbidden = [
        "print!(",
        "println!(",
        "eprint!(",
        "eprintln!(",
        "io::stdout(",
        "io::stderr(",
        " ui::",
        "(ui::",
        "/_sandbox",
        "RUNBOOK_SANDBOX",
    ];
    let mut found = Vec::new();
    for (_, rel, code) in sources() {
        if rel.ends_with("tests.rs") {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            for f in forbidden {
                if line.contains(f) {
                    found.push(format!("src/{rel}:{}: {f}", n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let order = order();
    assert!(order.len() > 10, "the order in lib.rs's doc: {order:?}");
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut wrong = Vec::new();
    for (module, used) in uses() {
        let Some(r) = rank(&module) else {
            wrong.push(format!("{module} is not in the order in lib.rs's doc"));
            continue;
        };
        for (name, file) in used {
            match rank(&name) {
                Some(u) if u < r => {}
                _ => wrong.push(format!(
                    "{file} uses crate::{name}, which is not below {module}"
                )),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
