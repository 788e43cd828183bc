//! docs/authoring.md's examples are real: every ```rhai runbook block passes `runbook check`,
//! and those marked `sandbox` run with `exec --sandbox --yes`, with the ```toml scenario block
//! that follows them (before the next rhai block) as their sandbox world.

use crate::support::{with_script, Exit, Output, Test};

/// A REPL on the shipped runbook `name` against the sandbox, fed `input`.
fn sandbox_repl(t: Test, name: &str, input: &str) -> Output {
    t.shipped_runbooks()
        .args(&["repl", name, "--sandbox"])
        .stdin(input)
        .run()
}

struct Block {
    info: String,
    text: String,
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => {
                    current = Some(Block {
                        info: info.trim().to_string(),
                        text: String::new(),
                        line: i + 1,
                    })
                }
            }
            continue;
        }
        if let Some(b) = current.as_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    out
}

#[test]
fn every_example_in_the_authoring_guide_checks_and_runs() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/authoring.md"),
    )
    .unwrap();
    let blocks = blocks(&guide);
    let mut failures = Vec::new();
    let (mut checked, mut ran) = (0, 0);
    for (i, b) in blocks.iter().enumerate() {
        let words: Vec<&str> = b.info.split_whitespace().collect();
        if words.first() != Some(&"rhai") {
            continue;
        }
        assert!(
            words.contains(&"runbook"),
            "docs/authoring.md:{}: a rhai block must be a complete runbook (```rhai runbook), so it can be tested",
            b.line
        );
        let scenario = blocks[i + 1..]
            .iter()
            .take_while(|n| !n.info.starts_with("rhai"))
            .find(|n| n.info == "toml scenario");
        let name = format!("guide-{}", b.line);
        let mut test = Test::new().file(&format!("runbooks/{name}.rhai"), &b.text);
        if let Some(s) = scenario {
            test = test.file(&format!("runbooks/sandbox/{name}.toml"), &s.text);
        }
        let out = test.args(&["check", &name]).run();
        checked += 1;
        if out.code != 0 {
            failures.push(format!(
                "docs/authoring.md:{}: `runbook check` failed:\n{}",
                b.line, out.stderr
            ));
            continue;
        }
        if !words.contains(&"sandbox") {
            continue;
        }
        let out = out
            .next()
            .args(&["exec", &name, "--sandbox", "--yes"])
            .run();
        ran += 1;
        if out.code != 0 {
            failures.push(format!(
                "docs/authoring.md:{}: `runbook exec --sandbox --yes` exited {}:\n{}\n{}",
                b.line, out.code, out.stdout, out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        checked >= 7 && ran >= 7,
        "only {checked} examples checked, {ran} run"
    );
}

/// Every command that takes a runbook takes its id (what `list`, `runs` and `due` show) as
/// well as its file name; an unknown name lists both.
#[test]
fn a_runbook_is_found_by_its_id_or_its_file_name() {
    for args in [
        &["show", "sendgrid-api-key"][..],
        &["doc", "sendgrid-api-key"],
        &["check", "postmark-server-token"],
        &["exec", "sendgrid-api-key", "--sandbox", "--yes"],
    ] {
        let out = Test::new().shipped_runbooks().args(args).run();
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
    let out = Test::new()
        .shipped_runbooks()
        .args(&["show", "sendgrid-api-key"])
        .run();
    out.stdout_has("Rotate the SendGrid API key");
    let out = sandbox_repl(Test::new(), "sendgrid-api-key", ":steps\n");
    out.exit(Exit::Ok).stdout_has("1. precheck");
    let out = Test::new()
        .shipped_runbooks()
        .args(&["exec", "mailco-api-key", "--sandbox"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("no runbook named 'mailco-api-key'")
        .stderr_has("postmark (id postmark-server-token)")
        .stderr_has("sendgrid (id sendgrid-api-key)");
}

/// `repl NAME --sandbox` rehearses against the runbook's own scenario, as exec does; a
/// param's env variable is read from the shell under --sandbox unless the sandbox exports
/// it (then the sandbox's wins, and exec's banner says so); a vendor credential never comes
/// from the shell into a rehearsal.
#[test]
fn repl_uses_the_runbooks_scenario_and_params_read_the_shell_under_sandbox() {
    let out = sandbox_repl(Test::new(), "sendgrid", "ctx.params.api_url\n");
    out.exit(Exit::Ok)
        .stderr_has("sandbox: scenario ")
        .stdout_has("\"http://127.0.0.1:");

    let out = sandbox_repl(
        Test::new()
            .env("POSTMARK_SENDER", "ops@raxx.app")
            .env("POSTMARK_TEST_RECIPIENT", "someone@example.com"),
        "postmark",
        "ctx.params.sender\nctx.params.test_recipient\n",
    );
    out.exit(Exit::Ok)
        .stdout_has("\"ops@raxx.app\"")
        .stdout_has("\"rehearsal@sandbox.invalid\"");
    assert!(
        !out.stdout.contains("someone@example.com"),
        "{}",
        out.stdout
    );

    let out = Test::new()
        .shipped_runbooks()
        .env("POSTMARK_TEST_RECIPIENT", "someone@example.com")
        .args(&["exec", "postmark", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok).stdout_has(
        "sandbox: the sandbox's exports set test_recipient (POSTMARK_TEST_RECIPIENT) (the shell's values are not used)",
    );
}

/// A param bound to a vendor credential the sandbox does not export stays empty in a
/// rehearsal: the operator's real token never reaches the simulators.
#[test]
fn a_rehearsal_never_reads_a_vendor_credential_from_the_shell() {
    let rb = r#"
runbook(#{ id: "creds", title: "Credentials in a rehearsal" });
param("token", #{ default: "none", env: "GH_TOKEN", secret: true, help: "a vendor credential" });
param("label", #{ default: "none", env: "CREDS_LABEL", help: "a plain setting" });
step("show", "Show", |ctx| {
    print(`token=${ctx.params.token} label=${ctx.params.label}`);
});
"#;
    let out = with_script("exec", "creds.rhai", rb)
        .env("GH_TOKEN", "ghp_real_operator_token_0000000000000000")
        .env("CREDS_LABEL", "from-the-shell")
        .args(&["--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("token=none label=from-the-shell");
    assert!(!out.stdout.contains("ghp_real"), "{}", out.stdout);
}

/// Prompt ids are what an answers file needs, and authors could not find them. `runbook
/// answers` prints every question with its id, commented out, `show` and `doc` list them;
/// the ids are the ones the run asks under: the file, uncommented, answers a run that has
/// no terminal and no --yes.
#[test]
fn the_answers_template_lists_every_prompt_id_and_answers_the_run() {
    let runbook = r#"
runbook(#{ id: "asks", title: "Asks" });
prerequisite("a thing at hand");
step("one", "One", |ctx| {
    let ok = prompt::confirm("Go on?", #{ id: "one.go" });
    let pick = prompt::choose("Which colour?", ["red", "blue"], #{ id: "one.which" });
    let name = prompt::ask("Your name?");
    print(`ok ${ok} pick ${pick} name ${name}`);
}).no_undo("nothing to restore");
step("two", "Two", |ctx| { print("two"); })
  .confirm("Really run two?")
  .no_undo("nothing to restore");
"#;
    let t = Test::new().file("asks.rhai", runbook);
    let dir = t.path().to_path_buf();
    let template = Test::in_dir(&dir).args(&["answers", "asks.rhai"]).run();
    template
        .exit(Exit::Ok)
        .stdout_has("# \"prerequisites\" = true")
        .stdout_has("# Go on? (true or false)\n# \"one.go\" = true")
        .stdout_has("# Which colour? (one of: \"red\", \"blue\")\n# \"one.which\" = \"red\"")
        .stdout_has("# \"one.your-name\" = \"...\"")
        .stdout_has("# Really run two? (true or false)\n# \"two.confirm\" = true")
        .stdout_has("# \"two.on-failure\" = \"retry\"");
    let filled: String = template
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("# \""))
        .map(|l| format!("\"{}\n", l.replace("= \"...\"", "= \"Ada\"")))
        .collect();
    std::fs::write(dir.join("answers.toml"), filled).unwrap();
    Test::in_dir(&dir)
        .args(&[
            "exec",
            "asks.rhai",
            "--sandbox",
            "--answers",
            "answers.toml",
        ])
        .run()
        .exit(Exit::Ok)
        .stdout_has("ok true pick red name Ada")
        .stdout_has("two");
    Test::in_dir(&dir)
        .args(&["show", "asks.rhai"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("  one.which [one]: Which colour? (one of: \"red\", \"blue\")");
    drop(t);
}

/// A scenario names its world's params once (`[params]`): a rehearsal on it runs with them,
/// `--param` still wins. Before, every rehearsal had to repeat them on the command line.
#[test]
fn a_scenario_sets_the_params_of_its_world() {
    let runbook = r#"
runbook(#{ id: "p", title: "Params" });
param("server", #{ default: "default-server", help: "server" });
param("apps", #{ default: ["default-app"], help: "apps" });
step("show", "Show", |ctx| { print(`server ${ctx.params.server} apps ${ctx.params.apps} run ${run::target()}`); })
  .no_undo("nothing");
"#;
    let scenario = "[params]\nserver = \"world-server\"\napps = [\"app-a\", \"app-b\"]\n";
    let run = |extra: &[&str]| {
        let mut args = vec![
            "exec",
            "p.rhai",
            "--sandbox",
            "--yes",
            "--scenario",
            "w.toml",
        ];
        args.extend_from_slice(extra);
        Test::new()
            .file("p.rhai", runbook)
            .file("w.toml", scenario)
            .args(&args)
            .run()
    };
    run(&[])
        .exit(Exit::Ok)
        .stdout_has("server world-server apps [\"app-a\", \"app-b\"] run sandbox");
    run(&["--param", "server=from-the-command-line"])
        .exit(Exit::Ok)
        .stdout_has("server from-the-command-line apps [\"app-a\", \"app-b\"]");
}

/// The plan shows each step's vendor calls in the order its code makes them, and which go
/// out at once: a fan-out over apps, the closures of `run::together`. Before, `show` listed
/// only the author's checks, and nothing said what waits for what.
#[test]
fn show_lists_each_steps_vendor_calls_and_what_goes_out_at_once() {
    let runbook = r#"
runbook(#{ id: "calls", title: "Calls" });
param("apps", #{ default: ["a", "b"], help: "apps" });
step("read", "Read", |ctx| {
    let token = infisical::secret("T").value;
    let both = run::together([|| postmark::server(token), || heroku::scopes()]);
    print(postmark::dashboard_url());
});
step("write", "Write", |ctx| {
    heroku::set_config(ctx.params.apps, #{ X: infisical::secret("T").value });
    heroku::wait_up(ctx.params.apps, #{});
}).undo(|ctx| { heroku::set_config(ctx.params.apps, #{ X: () }); });
step("reads", "Reads", |ctx| {
    let both = run::together([|| heroku::scopes(), || heroku::apps()]);
    let fns = [|| heroku::scopes()];
    run::together(fns);
    heroku::releases("a");
});
"#;
    Test::new()
        .file("calls.rhai", runbook)
        .args(&["show", "calls.rhai"])
        .run()
        .exit(Exit::Ok)
        .stdout_has(
            "  1. read · Read\n       calls: infisical::secret → [together: postmark::server | heroku::scopes]\n",
        )
        // A call's arguments go out before it.
        .stdout_has(
            "       calls: infisical::secret → heroku::set_config (each app at once) → heroku::wait_up (each app at once)\n",
        )
        // Closures that capture nothing (folded into one constant), closures in a variable
        // (not known here), and an overload that fans out only when given a list.
        .stdout_has(
            "       calls: [together: heroku::scopes | heroku::apps] → heroku::scopes → run::together (closures not written in the call: not listed) → heroku::releases (each app at once, given a list)\n",
        );
    // The shipped rotation: the precheck's check at Postmark goes out with discovery.
    Test::new()
        .shipped_runbooks()
        .args(&["show", "postmark"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("       calls: scan::begin (every vendor at once, not waited for: scan::found takes the answers) → infisical::secret → [together: scan::found | postmark::server] → postmark::server → heroku::configs (each app at once) → heroku::scopes\n")
        // Generate: Postmark says whose token it is while Infisical stages it.
        .stdout_has("       calls: postmark::server → postmark::dashboard_new_token → [together: infisical::set_secret | postmark::server]\n")
        .stdout_has("       calls: postmark::send_email → postmark::message\n")
        // Propagate: the staging copy's removal is sent beside the apps' changes.
        .stdout_has("       calls: postmark::token_status → [together: heroku::set_config (each app at once) | infisical::delete_secret] → github::set_secret (each repository at once)\n")
        // Verify: the log tails open beside the wait for the dynos; the newest releases are
        // read inside wait_up's polls; the configs are read back while Raptor sends.
        .stdout_has("       calls: heroku::log_sessions (each app at once, not waited for: heroku::read_logs reads them) → heroku::wait_up (each app at once) → [together: http::post | heroku::configs (each app at once)] → heroku::read_logs (each app at once)\n");
}

/// A question held in a variable: `runbook answers` printed an empty comment line for it
/// (author review); it says the script computes it, and still gives the id to answer.
#[test]
fn a_question_the_script_computes_is_said_so_in_the_answers_template() {
    let rb = r#"runbook(#{ id: "q", title: "Q" });
step("j", "J", |ctx| {
    let q = "Is the backup verified?";
    prompt::confirm(q, #{ id: "j.ok", judgement: true });
}).no_undo("a question");
"#;
    let out = with_script("answers", "q.rhai", rb).run();
    out.exit(Exit::Ok)
        .stdout_has("# (a question the script computes at run time) (true or false; a person's judgement: --yes does not answer it)\n# \"j.ok\" = true");
}
