//! `runbook doc` and `runbook api`: the SOP pages and the API reference are generated, and
//! the copies in docs/ are never stale.

use crate::support::{items, strs};
use crate::support::{Exit, Output, Test};
use serde_json::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_runbooks() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("runbooks"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// docs/runbooks/NAME.md is exactly what `runbook doc NAME` prints, for every shipped runbook,
/// and docs/api.md is `runbook api --markdown`.
/// `runbook doc` of the shipped runbook `name`, with `flags`.
fn doc(name: &str, flags: &[&str]) -> Output {
    let path = root().join(format!("runbooks/{name}.rhai"));
    let path = path.display().to_string();
    let mut args = vec!["doc", path.as_str()];
    args.extend_from_slice(flags);
    Test::new().args(&args).run()
}

#[test]
fn generated_docs_are_up_to_date() {
    let mut stale = Vec::new();
    for name in shipped_runbooks() {
        let out = doc(&name, &[]);
        out.exit(Exit::Ok);
        let file = format!("docs/runbooks/{name}.md");
        let committed = std::fs::read_to_string(root().join(&file)).unwrap_or_default();
        if committed != out.stdout {
            stale.push(format!(
                "{file}: regenerate with `cargo run -- doc {name} -o {file}`"
            ));
        }
    }
    let api = Test::new().args(&["api", "--markdown"]).run();
    api.exit(Exit::Ok);
    if std::fs::read_to_string(root().join("docs/api.md")).unwrap_or_default() != api.stdout {
        stale.push(
            "docs/api.md: regenerate with `cargo run -- api --markdown > docs/api.md`".into(),
        );
    }
    let documented: Vec<String> = std::fs::read_dir(root().join("docs/runbooks"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for d in documented {
        if !shipped_runbooks().contains(&d) {
            stale.push(format!(
                "docs/runbooks/{d}.md documents no runbook: delete it"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "generated docs are stale:\n{}",
        stale.join("\n")
    );
}

#[test]
fn postmark_sop_page_has_every_section() {
    let out = Test::new()
        .env(
            "RUNBOOK_PATH",
            &root().join("runbooks").display().to_string(),
        )
        .args(&["doc", "postmark"])
        .run();
    out.exit(Exit::Ok);
    for needle in [
        "# Rotate the Postmark server API token",
        "> Generated from `runbooks/postmark.rhai` by `runbook doc`",
        "- **Secret:** `POSTMARK_SERVER_TOKEN`",
        "- **Mode:** operator-assisted",
        "- **Role:** ops",
        "- **Cadence:** every 180 days",
        "- **Average duration:** 6m",
        "- **Last validated:** 2026-04-24 UTC (read-only-docs)",
        "## When to run\n\n- Scheduled rotation",
        "## Parameters",
        "| `server_name` | `\"raxx-prod\"` | Postmark server whose token is rotated",
        "## Prerequisites\n\n- [ ] Postmark dashboard access",
        "## Steps",
        "### 1. Pre-rotation checks: the current token works (`precheck`)",
        "Checks:\n\n- GET /server with the current token returns the expected server Name",
        "### 4. Store the new token in Infisical (`store`)",
        "Undo (run by rollback):\n\n```rhai\n// Restore the previous version's value (Infisical keeps history).",
        "No undo needed: a sent email cannot be unsent",
        "No undo needed: Raptor's test email and reading releases, dynos, configs and logs change nothing",
        "### 7. Revoke the old token (`revoke`)",
        "**Asks for confirmation:** Delete the OLD token in the Postmark dashboard now?",
        "**Irreversible — the point of no return.** The old token is deleted and cannot be restored.",
        "<details><summary>What the step runs</summary>",
        "// curl -H \"X-Postmark-Server-Token: $CURRENT_TOKEN\" https://api.postmarkapp.com/server | jq .Name",
        "## Rollback\n\n- Until step 7 (revoke), both old and new tokens are valid.",
        "## Gotchas\n\n- Max 3 active tokens per server.",
        "## References\n\n- How to cycle a server token: https://postmarkapp.com/support/article/1293-how-to-cycle-a-server-api-token",
    ] {
        out.stdout_has(needle);
    }
    // Steps in order, numbered.
    let steps: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("### "))
        .collect();
    assert_eq!(steps.len(), 8);
    assert!(steps[7].starts_with("### 8. Audit log entry"));
}

#[test]
fn stdlib_steps_show_the_runbooks_own_closures() {
    let out = doc("sendgrid", &[]);
    out.exit(Exit::Ok)
        .stdout_has("Undo: provided by `std/rotation` (run by rollback).")
        .stdout_has(
            "<details><summary>The runbook's <code>create</code>, which the step calls</summary>",
        )
        .stdout_has("// POST /v3/api_keys {name, scopes}: the only answer that ever shows the key.")
        .stdout_has(
            "<details><summary>The runbook's <code>discard</code>, which the undo calls</summary>",
        );
}

#[test]
fn html_is_a_standalone_escaped_page() {
    let out = doc("postmark", &["--html"]);
    out.exit(Exit::Ok)
        .stdout_has("<!doctype html>")
        .stdout_has("<title>Rotate the Postmark server API token</title>")
        .stdout_has("<h3>7. Revoke the old token (<code>revoke</code>)</h3>")
        .stdout_has("<strong>Irreversible — the point of no return.</strong>")
        .stdout_has("<a href=\"https://postmarkapp.com/developer/api/server-api\">")
        .stdout_has("<li><label><input type=\"checkbox\"> Postmark dashboard access")
        // Code is escaped, never interpreted.
        .stdout_has("&quot;X-Postmark-Server-Token: $CURRENT_TOKEN&quot;");
    assert!(out.stdout.trim_end().ends_with("</html>"));
    assert!(!out.stdout.contains("```"));
}

#[test]
fn doc_writes_a_file_with_output() {
    let out = doc("infisical-sync", &["-o", "sync.md"]);
    out.exit(Exit::Ok).stderr_has("wrote sync.md");
    let text = std::fs::read_to_string(out.path().join("sync.md")).unwrap();
    assert!(text.starts_with("# Re-sync a secret from Infisical to every consumer\n"));
}

fn api_json() -> Value {
    let out = Test::new().args(&["api", "--json"]).run();
    out.exit(Exit::Ok);
    out.json()
}

fn module<'a>(v: &'a Value, name: &str) -> &'a Value {
    items(&v["modules"])
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no module {name}"))
}

fn function<'a>(m: &'a Value, name: &str) -> &'a Value {
    items(&m["functions"])
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no function {name} in {}", m["name"]))
}

#[test]
fn api_json_lists_every_module_with_signatures_effects_and_docs() {
    let v = api_json();
    let names: Vec<&str> = strs(&v["modules"], "name");
    assert_eq!(&names[..2], ["global", "StepHandle"]);
    for expected in [
        "Ctx",
        "Secret",
        "secret",
        "time",
        "prompt",
        "audit",
        "postmark",
        "infisical",
        "heroku",
        "github",
        "http",
        "checks",
        "consumers",
        "rotation",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let set_config = function(module(&v, "heroku"), "set_config");
    assert_eq!(
        set_config["signature"],
        "heroku::set_config(apps: string | Array, vars: Map) -> Map"
    );
    assert_eq!(set_config["effect"], "write");
    assert_eq!(set_config["returns"], "Map");
    assert_eq!(
        set_config["params"],
        serde_json::json!(["apps: string | Array", "vars: Map"])
    );
    assert_eq!(
        function(module(&v, "http"), "delete")["effect"],
        "destructive"
    );
    let undo = function(module(&v, "StepHandle"), "undo");
    assert_eq!(
        undo["signature"],
        "StepHandle.undo(body: Fn(ctx)) -> StepHandle"
    );

    let rotation = module(&v, "rotation");
    assert_eq!(rotation["kind"], "stdlib");
    assert_eq!(rotation["import"], "import \"std/rotation\" as rotation;");
    let steps = function(rotation, "steps");
    assert_eq!(steps["signature"], "rotation::steps(spec)");
    assert!(steps.get("effect").is_none());
    // Nothing undocumented, host or stdlib; no closure or private helper listed.
    for m in v["modules"].as_array().unwrap() {
        for f in m["functions"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            assert!(
                !f["doc"].as_str().unwrap().is_empty(),
                "{} has no doc",
                f["signature"]
            );
            assert!(!name.starts_with("anon$") && name != "options", "{name}");
        }
    }
}

#[test]
fn api_module_filter_markdown_and_unknown_module() {
    let out = Test::new().args(&["api", "std/checks"]).run();
    out.exit(Exit::Ok)
        .stdout_has("checks (stdlib: import \"std/checks\" as checks;)")
        .stdout_has("  checks::wait_until(condition, options)");
    assert!(!out.stdout.contains("heroku::"));
    let out = Test::new().args(&["api", "heroku", "--markdown"]).run();
    out.exit(Exit::Ok)
        .stdout_has("## heroku (host module)")
        .stdout_has(
        "### `heroku::restart(apps: string | Array) -> Map`\n\nEffect: `write`, safe to repeat.",
    );
    let out = Test::new().args(&["api", "mailgun"]).run();
    out.exit(Exit::Usage)
        .stderr_has("no module named 'mailgun'")
        .stderr_has("modules: global, StepHandle,");
}

#[test]
fn api_definitions_writes_d_rhai_files_for_editors() {
    let out = Test::new().args(&["api", "--definitions", "defs"]).run();
    out.exit(Exit::Ok).stderr_has("definition file(s) to defs");
    let read = |f: &str| std::fs::read_to_string(out.path().join("defs").join(f)).unwrap();
    let heroku = read("heroku.d.rhai");
    assert!(heroku.starts_with("module heroku;"));
    assert!(heroku
        .contains("/// Effect: write.\nfn set_config(apps: string | Array, vars: map) -> map;"));
    let rotation = read("rotation.d.rhai");
    assert!(rotation.starts_with("module rotation;\n"));
    assert!(rotation.contains("/// Registers the rotation steps. Shape `overlap` (the default)"));
    assert!(rotation.contains("fn steps(spec: ?) -> ?;"));
    assert!(!rotation.contains("anon$"));
    assert!(read("__static__.d.rhai")
        .contains("fn step(id: string, title: string, body: Fn(ctx)) -> StepHandle;"));
}

/// Every code a source file can emit, outside its tests: derive attributes, code strings, and
/// `runbook::vendor::KIND` for every vendor error kind.
fn codes_in_sources() -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![root().join("src"), root().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "testkit" && name != "target" && name != "tests" {
                    dirs.push(path);
                }
                continue;
            }
            if !name.ends_with(".rs") || name == "codes.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for (i, _) in code.match_indices("runbook::") {
                let rest: String = code[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let rest = rest.trim_end_matches(':');
                let before = &code[..i];
                let quoted = before.ends_with('"');
                let derived = before.ends_with("code(");
                // `runbook::vendor::{}` is formatted from the kinds below.
                if (quoted || derived)
                    && rest.matches("::").count() >= 1
                    && !rest.ends_with("vendor")
                {
                    found.insert(rest.to_string());
                }
            }
        }
    }
    for kind in runbook_vendors::ErrorKind::ALL {
        found.insert(format!("runbook::vendor::{}", kind.as_str()));
    }
    found
}

/// docs/errors.md lists every code, once, with what it means and what to do; the catalogue
/// holds no code that nothing emits. `UPDATE_DOCS=1` rewrites the page.
#[test]
fn every_error_code_is_documented_and_the_page_is_fresh() {
    use runbook_core::codes::{markdown, CATALOGUE};
    let listed: std::collections::BTreeSet<String> =
        CATALOGUE.iter().map(|c| c.code.to_string()).collect();
    let emitted = codes_in_sources();
    let undocumented: Vec<&String> = emitted.difference(&listed).collect();
    let unused: Vec<&String> = listed.difference(&emitted).collect();
    assert!(
        undocumented.is_empty(),
        "codes missing from crates/core/src/codes.rs: {undocumented:?}"
    );
    assert!(
        unused.is_empty(),
        "codes in crates/core/src/codes.rs that nothing emits: {unused:?}"
    );
    let page = root().join("docs/errors.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&page, markdown()).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&page).unwrap_or_default(),
        markdown(),
        "docs/errors.md is stale: regenerate with `UPDATE_DOCS=1 cargo test --test integration every_error_code`"
    );
}

/// docs/authoring.md's scenario reference is the one rendered from the scenario structs'
/// schema (`UPDATE_DOCS=1` rewrites it), and `runbook sandbox --schema` prints that schema.
#[test]
fn the_scenario_reference_is_rendered_from_the_code_and_fresh() {
    const START: &str = "<!-- scenario-reference:start -->\n";
    const END: &str = "<!-- scenario-reference:end -->";
    let page = root().join("docs/authoring.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let (before, rest) = text.split_once(START).expect("the start marker");
    let (current, after) = rest.split_once(END).expect("the end marker");
    let fresh = runbook_sandbox::reference::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&page, format!("{before}{START}{fresh}{END}{after}")).unwrap();
    } else {
        assert_eq!(
            current, fresh,
            "docs/authoring.md's scenario reference is stale: regenerate with `UPDATE_DOCS=1 cargo test --test integration scenario_reference`"
        );
    }
    let out = Test::new().args(&["sandbox", "--schema"]).run();
    out.exit(Exit::Ok);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema, runbook_sandbox::reference::schema());
    assert!(schema["$defs"]["AppSpec"]["properties"]["boot_ms"].is_object());

    // A scenario error says what is wrong once, and where the format is described.
    let out = Test::new()
        .file(
            "bad.toml",
            "[heroku]\napps = [{ name = \"a\", bogus = 1 }]\n",
        )
        .args(&["sandbox", "--scenario", "bad.toml"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("invalid sandbox scenario: bad.toml: line 2: unknown field `bogus`")
        .stderr_has("docs/authoring.md, \"Scenario reference\"");
    assert_eq!(
        out.stderr.matches("invalid sandbox scenario").count(),
        1,
        "{}",
        out.stderr
    );
}

/// Completions and the man page come from the command definitions: every subcommand is in
/// them, for each shell, and the man pages are one per command.
#[test]
fn completions_and_man_pages_cover_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = Test::new().args(&["completions", shell]).run();
        out.exit(Exit::Ok);
        for cmd in [
            "exec",
            "resume",
            "rollback",
            "consumers",
            "sandbox",
            "audit",
            "repl",
        ] {
            assert!(out.stdout.contains(cmd), "{shell} completions lack {cmd}");
        }
    }
    let out = Test::new().args(&["completions", "tcsh"]).run();
    out.exit(Exit::Usage);

    let out = Test::new().args(&["man"]).run();
    out.exit(Exit::Ok)
        .stdout_has(".TH runbook 1")
        .stdout_has("Runs operational runbooks written as rhai scripts");
    let out = out.next().args(&["man", "--dir", "man"]).run();
    out.exit(Exit::Ok);
    let page = std::fs::read_to_string(out.path().join("man/runbook-exec.1")).unwrap();
    assert!(
        page.contains("\\-\\-sandbox") && page.contains("\\-\\-fault"),
        "{page}"
    );
    // The variables each vendor reads come from its spec, in the page and in --help.
    for spec in &runbook_vendors::spec::SPECS {
        for var in spec
            .api
            .vars
            .iter()
            .chain(spec.needs.iter().map(|n| &n.var))
        {
            assert!(page.contains(var), "{var} is not in runbook-exec.1");
        }
    }
    assert!(out.path().join("man/runbook-consumers.1").exists());
    let help = out.next().args(&["exec", "--help"]).run();
    help.exit(Exit::Ok)
        .stdout_has("  heroku     HEROKU_HOST (default https://api.heroku.com); HEROKU_API_KEY");
}

/// `runbook sandbox` says which faults it injects, and `--help` documents the fault
/// actions and the scenario's sections.
#[test]
fn the_sandbox_banner_lists_its_faults_and_help_documents_them() {
    use std::io::BufRead;
    let t = Test::new().args(&["sandbox", "--fault", "heroku:PATCH=500:once"]);
    let mut child = t
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let done = line.starts_with("Point a shell at it");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("Faults injected:\n  heroku:PATCH=500:once"),
        "{text}"
    );

    let help = Test::new().args(&["sandbox", "--help"]).run();
    help.exit(Exit::Ok)
        .stdout_has("drop, lost")
        .stdout_has("latency=MS")
        .stdout_has("[postmark], [infisical], [heroku]");
    assert!(
        !help
            .stdout
            .contains("the runbook's `sandbox/NAME.toml` when it has one, else"),
        "{}",
        help.stdout
    );
}
