//! `runbook new`: a runbook skeleton (and the sandbox scenario it rehearses against) that
//! passes `check` and runs with `exec --sandbox`; never overwrites a file.

use crate::cli::NewArgs;
use crate::error::{exit, Error, Result};
use crate::ui;
use runbook_core::error::Error as CoreError;
use std::path::{Path, PathBuf};

/// Built-in templates: (name, runbook, scenario).
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "rotation",
        include_str!("../../templates/rotation.rhai"),
        include_str!("../../templates/rotation.toml"),
    ),
    (
        "steps",
        include_str!("../../templates/steps.rhai"),
        include_str!("../../templates/steps.toml"),
    ),
];

/// Where the new runbook goes: `runbooks/NAME.rhai`, or the path given.
fn target(name: &str) -> Result<(PathBuf, String)> {
    let as_path = name.ends_with(".rhai") || name.contains('/') || name.contains('\\');
    let path = if as_path {
        PathBuf::from(name)
    } else {
        PathBuf::from("runbooks").join(format!("{name}.rhai"))
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let valid = !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Error::usage(
            format!("'{stem}' cannot name a runbook"),
            "use letters, digits, '-' and '_', e.g. runbook new mailgun-api-key",
        ));
    }
    Ok((path, stem.to_lowercase()))
}

fn scenario_path(runbook: &Path) -> PathBuf {
    let dir = match runbook.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = runbook.file_stem().unwrap_or_default();
    dir.join("sandbox").join(stem).with_extension("toml")
}

/// Fills a built-in template's placeholders for runbook `slug`.
fn fill(template: &str, slug: &str) -> String {
    let upper: String = slug
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let vendor: String = {
        let mut c = slug.chars();
        match c.next() {
            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    };
    let title = format!("{} procedure", vendor.replace(['-', '_'], " "));
    template
        .replace("__SECRET_ADMIN__", &format!("{upper}_ADMIN_API_KEY"))
        .replace("__SECRET__", &format!("{upper}_API_KEY"))
        .replace("__ENV__", &format!("{upper}_API_URL"))
        .replace("__VENDOR_SLUG__", &format!("{slug}-api"))
        .replace("__VENDOR__", &vendor)
        .replace("__TITLE__", &title)
        .replace("__NAME__", slug)
}

/// An existing runbook as the template: its text with the new id, and its scenario.
fn copy_of(
    library: &runbook_core::runbook::Library,
    from: &str,
    slug: &str,
) -> Result<(String, Option<String>)> {
    let source = library.find(from)?;
    let text = std::fs::read_to_string(&source).map_err(|e| CoreError::Read {
        path: source.clone(),
        source: e,
    })?;
    let text = replace_id(&text, slug).ok_or_else(|| {
        Error::usage(
            format!(
                "{} declares no id: runbook(#{{ id: \"...\" }})",
                source.display()
            ),
            "copy a runbook that passes `runbook check`",
        )
    })?;
    let scenario =
        super::sandbox::sibling_scenario(&source).and_then(|p| std::fs::read_to_string(p).ok());
    Ok((text, scenario))
}

/// The text with the first `id: "..."` (the runbook's) set to `id`.
fn replace_id(text: &str, id: &str) -> Option<String> {
    let start = text.find("runbook(")?;
    let rel = text[start..].find("id:")?;
    let at = start + rel;
    let open = at + text[at..].find('"')? + 1;
    let close = open + text[open..].find('"')?;
    Some(format!("{}{id}{}", &text[..open], &text[close..]))
}

pub fn run(args: NewArgs, settings: &crate::settings::Settings) -> Result<u8> {
    let (path, slug) = target(&args.name)?;
    let scenario = scenario_path(&path);
    let (text, scenario_text) = match TEMPLATES.iter().find(|(n, ..)| *n == args.from) {
        Some((_, rhai, toml)) => (fill(rhai, &slug), Some(fill(toml, &slug))),
        None => copy_of(&settings.library, &args.from, &slug).map_err(|e| match e {
            Error::Core(CoreError::RunbookNotFound { name, .. }) => Error::usage(
                format!("no template or runbook named '{name}'"),
                format!(
                    "templates: {}; or the name or path of a runbook to copy",
                    TEMPLATES.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
                ),
            ),
            other => other,
        })?,
    };
    for p in std::iter::once(&path).chain(scenario_text.as_ref().map(|_| &scenario)) {
        // A link there, even one to nothing, is something the author made: not replaced.
        if p.symlink_metadata().is_ok() {
            return Err(Error::usage(
                format!("{} already exists; not overwriting it", p.display()),
                "choose another name, or move the existing file away first",
            ));
        }
    }
    let write = |p: &Path, text: &str| -> Result<()> {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CoreError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Made new, never through a link put there since the check above.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|source| {
                CoreError::Write {
                    path: p.to_path_buf(),
                    source,
                }
                .into()
            })
    };
    write(&path, &text)?;
    let mut created = vec![path.display().to_string()];
    if let Some(s) = &scenario_text {
        write(&scenario, s)?;
        created.push(scenario.display().to_string());
    }
    let name = if path.starts_with("runbooks") {
        slug.clone()
    } else {
        path.display().to_string()
    };
    ui::out(&format!("created {}", created.join(" and ")));
    ui::out("next:");
    ui::out(&format!("  runbook check {name}"));
    ui::out(&format!("  runbook exec {name} --sandbox --yes"));
    ui::out(&format!("  runbook doc {name}"));
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_runbook_id() {
        let t = "// id: \"not this\"\nrunbook(#{\n    id: \"old\",\n    title: \"T\",\n});\nstep(\"id\", \"x\", |ctx| {});\n";
        let r = replace_id(t, "new-one").unwrap();
        assert!(r.contains("    id: \"new-one\",\n"));
        assert!(r.contains("// id: \"not this\""));
        assert_eq!(replace_id("step(\"a\")", "x"), None);
    }

    #[test]
    fn names_become_valid_ids_and_env_names() {
        let filled = fill(
            "__NAME__ __SECRET__ __ENV__ __VENDOR__ __VENDOR_SLUG__ __SECRET_ADMIN__",
            "mail-co",
        );
        assert_eq!(
            filled,
            "mail-co MAIL_CO_API_KEY MAIL_CO_API_URL Mail-co mail-co-api MAIL_CO_ADMIN_API_KEY"
        );
        assert!(target("a b").is_err());
        assert_eq!(target("x").unwrap().0, PathBuf::from("runbooks/x.rhai"));
        assert_eq!(target("dir/y.rhai").unwrap().1, "y");
    }
}
