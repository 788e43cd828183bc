//! `runbook check`: diagnostics with file:line:col, exit 2 on problems, 0 when clean.

use crate::support::{assert_lacks, exits_with, root, with_fixture, with_script, Exit, Test};
use crate::support::{items, strs};

exits_with! {
    syntax_error_is_reported_with_location_and_snippet:
        with_fixture("check", "syntax_error.rhai") => Usage,
        stderr [
            "runbook::script::parse",
            "syntax_error.rhai:4:18: Unexpected ';'",
            "4 │     let x = (1 + ;",
            "syntax error here",
        ];

    clean_runbook_passes: with_fixture("check", "clean.rhai") => Ok, stdout ["ok  clean.rhai"];

    duplicate_step_ids_are_an_error_at_the_second_declaration:
        with_fixture("check", "duplicate_steps.rhai") => Usage,
        stderr [
            "runbook::plan::duplicate_step",
            "duplicate_steps.rhai:3:1: duplicate step id 'same' (first declared on line 2)",
        ];

    unknown_host_function_is_found_without_running:
        with_fixture("check", "unknown_function.rhai") => Usage,
        stderr [
            "unknown_function.rhai:3:13: unknown function 'secret::from_envv'",
            "did you mean secret::from_env? secret has: compose, fingerprint, from_env, from_text, is_secret, random",
        ];

    undefined_variable_is_a_compile_error:
        with_script(
            "check",
            "undef.rhai",
            "runbook(#{ id: \"u\", title: \"U\" });\nstep(\"a\", \"A\", |ctx| { let y = missing + 1; });\n",
        ) => Usage,
        stderr [
            "runbook::script::undefined_variable",
            "undef.rhai:2:32: Undefined variable: missing",
        ];

    no_steps_and_no_metadata_are_errors:
        Test::new()
            .fixture("no_steps.rhai")
            .file("bare.rhai", "step(\"a\", \"A\", |ctx| {});\n")
            .args(&["check", "no_steps.rhai", "bare.rhai"]) => Usage,
        stderr [
            "no_steps.rhai:1:1: the runbook has no steps",
            "bare.rhai:1:1: the runbook does not declare itself",
        ];

    unknown_metadata_key_is_a_typo_error:
        with_script(
            "check",
            "typo.rhai",
            "runbook(#{ id: \"t\", title: \"T\", cadnce_days: 3 });\nstep(\"a\", \"A\", |ctx| {});\n",
        ) => Usage,
        stderr [
            "typo.rhai:1:1: runbook: unknown option 'cadnce_days'",
            "known options: id, title",
        ];

    non_utf8_file_is_refused_clearly:
        with_fixture("check", "not_utf8.rhai") => Usage,
        stderr ["not_utf8.rhai is not valid UTF-8 (first bad byte at offset 36)"];

    stdlib_import_errors_show_module_and_call_site:
        with_fixture("exec", "uses_stdlib.rhai") => StepFailed,
        stderr [
            "<std/checks>:",
            "a consumer got 401: status=401 InvalidAPIToken",
            "uses_stdlib.rhai:4:13: in function 'no_lines_matching'",
        ];

    /// Regression: the verify step's log scan matched "401" inside timestamps
    /// (`19:26:01.840117`), failing healthy rotations at random.
    log_scan_matches_whole_words_only:
        with_fixture("exec", "stdlib_words.rhai") => Ok, stdout ["  | words ok"];

    write_lint_names_the_call_and_the_three_ways_out:
        with_fixture("check", "author_lints.rhai") => Usage,
        stderr [
            "author_lints.rhai:4:1: step 'write' writes (heroku::set_config)",
            "(heroku::set_config on line 5 of author_lints.rhai)",
            ".irreversible(\"why\") with .confirm(\"question\")",
            ".no_undo(\"why\")",
        ];

    /// The shipped runbooks are what authors copy: every lint must pass on them.
    shipped_runbooks_pass_every_lint:
        Test::new().args(&["check"]).arg(root().join("runbooks")) => Ok,
        stdout ["postmark.rhai", "sendgrid.rhai", "infisical-sync.rhai", "cloudflare-api-token.rhai", "datadog-app-key.rhai", "neon-blue-green.rhai", "twilio-auth-token.rhai"];

    /// What makes a step safe without an undo: writes that leave nothing to restore
    /// (restarts, audit entries) and `.no_undo(why)`.
    steps_that_need_no_undo_pass:
        with_script(
            "check",
            "fine.rhai",
            r#"runbook(#{ id: "fine", title: "Fine", egress: ["hooks.example.com"] });
param("apps", #{ default: ["a"], help: "Heroku apps" });
step("restart", "Restart", |ctx| { heroku::restart(ctx.params.apps); });
step("ping", "Ping", |ctx| {
    http::post("https://hooks.example.com/ping", #{ json: #{ ok: true } });
}).no_undo("a notification changes nothing to restore");
step("audit", "Audit", |ctx| { audit::log("fine.done", #{}); });
"#,
        ) => Ok,
        stdout ["ok  fine.rhai"];
}

#[test]
fn json_lists_every_problem_with_position() {
    let out = with_script(
        "check",
        "lints.rhai",
        r#"runbook(#{ id: "lints", title: "Lints", secret: "X" });
param("p", #{ default: 1 });
step("a", "A", |ctx| {
    vendorx::call(1);
    nosuch(2);
    secret::from_env("A", "B");
});
"#,
    )
    .args(&["--json"])
    .run();
    out.exit(Exit::Usage);
    let v = out.json();
    let diags: Vec<(String, i64, i64)> = items(&v["diagnostics"])
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_i64().unwrap(),
                d["column"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        diags,
        vec![
            ("runbook::check::unknown_module".to_string(), 4, 5),
            ("runbook::check::unknown_function".to_string(), 5, 5),
            ("runbook::check::wrong_arity".to_string(), 6, 13),
            ("runbook::check::param_without_help".to_string(), 2, 1),
            ("runbook::check::missing_metadata".to_string(), 1, 1),
            ("runbook::check::unused_param".to_string(), 2, 1),
            ("runbook::check::missing_audit".to_string(), 1, 1),
        ]
    );
    assert_eq!(
        v["diagnostics"][2]["message"],
        "secret::from_env takes 1 argument(s), not 2"
    );
}

/// Each authoring lint, with its code and where it points.
#[test]
fn authoring_lints_point_at_the_step_call_or_param() {
    let out = with_fixture("check", "author_lints.rhai")
        .args(&["--json"])
        .run();
    out.exit(Exit::Usage);
    let v = out.json();
    let diags: Vec<(String, String, i64, i64)> = items(&v["diagnostics"])
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["file"].as_str().unwrap().to_string(),
                d["line"].as_i64().unwrap(),
                d["column"].as_i64().unwrap(),
            )
        })
        .collect();
    let at = |code: &str, line: i64, col: i64| {
        (
            format!("runbook::check::{code}"),
            "author_lints.rhai".to_string(),
            line,
            col,
        )
    };
    assert_eq!(
        diags,
        vec![
            at("write_without_undo", 4, 1),
            at("irreversible_without_confirm", 7, 1),
            at("secret_in_url", 12, 11),
            at("secret_in_print", 14, 5),
            at("secret_in_url", 15, 11),
            at("unused_param", 3, 1),
            at("missing_audit", 1, 1),
            // ctx.admin_token is read and never set.
            at("ctx_read_before_set", 15, 66),
        ]
    );
    let messages: Vec<&str> = strs(&v["diagnostics"], "message");
    assert_eq!(
        messages,
        [
            "step 'write' writes (heroku::set_config) but has no undo and is not marked irreversible",
            "step 'delete' is irreversible but asks for no confirmation",
            "http::get is given a Secret in the URL",
            "print shows the http:: response field 'api_key' (not declared in `secrets`) as plain text",
            "http::get is given a Secret in the query parameter 'auth'",
            "param 'unused' is never used",
            "a rotation runbook (with `secret`) never calls audit::log",
            "step 'leak' reads ctx.admin_token, which no step up to it sets",
        ]
    );
}

/// A Secret that reaches a URL through the runbook's own functions is found before the
/// run: a function that puts its argument in an http:: URL, and one that builds the URL
/// text; a function that sends it as a bearer token is fine.
#[test]
fn a_secret_reaching_a_url_through_a_function_is_found() {
    let out = with_fixture("check", "secret_url_through_fn.rhai").run();
    out.exit(Exit::Usage)
        .stderr_has(
            "secret_url_through_fn.rhai:11:5: fetch() is given a Secret it puts in an http:: URL",
        )
        .stderr_has("secret_url_through_fn.rhai:18:11: http::get is given a Secret in the URL");
    assert!(
        !out.stderr.contains(":10:5:"),
        "fine() sends it as a header: {}",
        out.stderr
    );
}

/// A write reached through a method call (`ctx.set_mode(...)` calling the runbook's own
/// `fn set_mode`) is a step's write too. Before: the analysis followed plain calls only,
/// so the step passed `check` without an undo and exec's list of writes left it out.
#[test]
fn a_write_reached_through_a_method_call_is_found() {
    let script = r#"
runbook(#{ id: "m", title: "M" });
fn set_mode(mode) { heroku::set_config("raxx-api-prod", #{ APP_MODE: mode }); }
step("apply", "Maintenance on", |ctx| { ctx.set_mode("maintenance"); });
"#;
    let out = with_script("check", "m.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("m.rhai:4:1: step 'apply' writes (heroku::set_config) but has no undo and is not marked irreversible");
    // `show` outlines the same call.
    out.next()
        .args(&["show", "m.rhai"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("calls: heroku::set_config");
}

/// `http::post(..., #{ read_only: true })` is a read (a search): the host records it as
/// one. Before: `check` asked for an undo for it, and exec listed it before the first write.
#[test]
fn a_post_that_only_reads_is_not_a_write() {
    let script = r#"
runbook(#{ id: "s", title: "S", egress: ["api.vendor.example"] });
step("look", "Look", |ctx| {
    http::post("https://api.vendor.example/search", #{ json: #{ q: 1 }, read_only: true });
});
step("write", "Write", |ctx| {
    http::post("https://api.vendor.example/things", #{ json: #{ q: 1 }, read_only: false });
});
"#;
    let out = with_script("check", "s.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("step 'write' writes (http::post) but has no undo");
    assert_lacks("stderr", &out.stderr, "step 'look'");
    // The SOP page says the same (it said "No undo needed: ." for it).
    let doc = out.next().args(&["doc", "s.rhai"]).run();
    doc.exit(Exit::Ok)
        .stdout_has("Undo: none needed (the step only reads).")
        .stdout_has(
            "No undo: the step writes (http::post) and declares none; `runbook check` flags it.",
        );
    assert_lacks("doc", &doc.stdout, "No undo needed: .");
}

/// `check DIR` checks a linked runbook as exec runs it. Before: the walk skipped links, and
/// a linked runbook with a problem was never checked (exit 0).
#[test]
fn check_of_a_folder_follows_a_linked_runbook() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
    std::fs::write(
        dir.path().join("lib/w.rhai"),
        "runbook(#{ id: \"w\", title: \"W\" });\nstep(\"write\", \"W\", |ctx| { heroku::set_config(\"a\", #{ X: \"1\" }); });\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("lib/w.rhai"),
        dir.path().join("runbooks/w.rhai"),
    )
    .unwrap();
    Test::in_dir(dir.path())
        .args(&["check", "runbooks"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("step 'write' writes (heroku::set_config) but has no undo");
    // A link to nothing is reported; a linked folder is not walked.
    std::fs::remove_file(dir.path().join("runbooks/w.rhai")).unwrap();
    let (gone, dangling) = (
        dir.path().join("gone.rhai"),
        dir.path().join("runbooks/g.rhai"),
    );
    std::os::unix::fs::symlink(gone, dangling).unwrap();
    std::os::unix::fs::symlink(dir.path().join("lib"), dir.path().join("runbooks/lib")).unwrap();
    let out = Test::in_dir(dir.path()).args(&["check", "runbooks"]).run();
    out.exit(Exit::Usage).stderr_has("runbooks/g.rhai");
    assert_lacks("check", &out.stderr, "step 'write'");
}

/// An imported module over the input limit is refused unread, as a runbook is. Before: it
/// was read whole, however large.
#[test]
fn a_module_over_the_input_limit_is_refused_unread() {
    let big = "// x\n".repeat(2 << 20);
    with_script(
        "check",
        "m.rhai",
        "import \"big\" as b;\nrunbook(#{ id: \"m\", title: \"M\" });\nstep(\"s\", \"S\", |ctx| { print(b::f()); });\n",
    )
    .file("big.rhai", &format!("{big}fn f() {{ 1 }}\n"))
    .run()
    .exit(Exit::Usage)
    .stderr_has("is 10485773 bytes; an input file may be at most 8388608 bytes");
}

/// A module of functions beside the runbooks that import it (imports must stay inside the
/// runbook's folder) is not a runbook that fails to declare itself. Before: a bare `check`
/// failed on it (exit 2) and `list` called it broken. A file with a top level to run and
/// no declaration is still an error.
#[test]
fn a_module_beside_the_runbooks_is_not_a_broken_runbook() {
    let module = "fn greet(x) { `hello ${x}` }\n";
    let runbook = "import \"helpers\" as h;\nrunbook(#{ id: \"m\", title: \"M\" });\nstep(\"s\", \"S\", |ctx| { print(h::greet(\"ops\")); });\n";
    let out = Test::new()
        .file("runbooks/helpers.rhai", module)
        .file("runbooks/m.rhai", runbook)
        .args(&["check"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("ok  runbooks/m.rhai")
        .stdout_has("runbooks/helpers.rhai (a module");
    let listed = out.next().args(&["list"]).run();
    listed.exit(Exit::Ok);
    assert_lacks("list", &listed.stderr, "helpers.rhai does not load");
    Test::new()
        .file("runbooks/stray.rhai", "print(\"hello\");\n")
        .args(&["check"])
        .run()
        .exit(Exit::Usage)
        .stderr_has("the runbook does not declare itself");
}

/// A host module's function called without its module is not found at run time (after the
/// steps before it have written): `check` says so, naming the module. Before: the bare name
/// counted as known.
#[test]
fn a_module_function_called_without_its_module_is_found() {
    let script = r#"
runbook(#{ id: "u", title: "U" });
step("s", "S", |ctx| { print(config("raxx-api-prod").len()); });
"#;
    with_script("check", "u.rhai", script)
        .run()
        .exit(Exit::Usage)
        .stderr_has("u.rhai:3:30: unknown function 'config'")
        .stderr_has("did you mean heroku::config?");
}

/// A cadence of zero days, or one past any calendar, is a typo `check` names.
#[test]
fn a_cadence_out_of_range_is_found() {
    let script = r#"
runbook(#{ id: "c", title: "C", secret: "T", cadence_days: 3000000 });
step("s", "S", |ctx| { audit::log("x", #{}); });
"#;
    with_script("check", "c.rhai", script)
        .run()
        .exit(Exit::Usage)
        .stderr_has("c.rhai:2:1: cadence_days is 3000000: a cadence is 1 to 3650 days");
}

/// A step reading a ctx value no step up to it sets fails only at run time, after the
/// earlier steps' writes ("unknown property"). `check` now finds it, with the key a typo
/// most likely meant; `ctx.get(KEY, default)` and a key set later in the same step are fine.
#[test]
fn a_ctx_value_read_before_any_step_sets_it_is_found_without_running() {
    let script = r#"
runbook(#{ id: "c", title: "C" });
step("one", "One", |ctx| {
    ctx.server_id = 42;
    let later = ctx.get("not_yet", 0);
    print(`${later}`);
}).no_undo("nothing");
step("two", "Two", |ctx| {
    print(`${ctx.serverid}`);
    ctx.made_here = 1;
    print(`${ctx.made_here} ${ctx.server_id} ${ctx.params}`);
    print(`${ctx.from_three}`);
}).no_undo("nothing");
step("three", "Three", |ctx| { ctx.from_three = 3; }).no_undo("nothing");
"#;
    let out = with_script("check", "c.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("runbook::check::ctx_read_before_set")
        .stderr_has("c.rhai:9:17: step 'two' reads ctx.serverid, which no step up to it sets")
        .stderr_has("did you mean ctx.server_id?")
        .stderr_has("step 'two' reads ctx.from_three, which no step up to it sets");
    assert_eq!(
        out.stderr.matches("ctx_read_before_set").count(),
        2,
        "only the two: {}",
        out.stderr
    );
}

/// The same in an undo and a verify: before, they were not looked at, and a typo in an
/// undo was found in the middle of a rollback, the new password left on the app (author
/// review). A verify runs after a crash inside its step, on the ctx of the steps before:
/// what the step's own body sets is not there.
#[test]
fn a_ctx_value_an_undo_or_a_verify_reads_unset_is_found_without_running() {
    let script = r#"
runbook(#{ id: "c", title: "C" });
step("read", "Read", |ctx| { ctx.old_password = "x"; }).no_undo("a read");
step("w", "Write", |ctx| {
    ctx.new_password = "y";
}).verify(|ctx| {
    ctx.checked = ctx.old_password;
    ctx.new_password == ctx.checked
}).undo(|ctx| {
    print(`${ctx.old_pasword} ${ctx.new_password} ${ctx.old_password}`);
});
"#;
    let out = with_script("check", "c.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("c.rhai:10:17: step 'w' undo reads ctx.old_pasword, which no step up to it sets")
        .stderr_has("did you mean ctx.old_password?")
        .stderr_has("c.rhai:8:8: step 'w' verify reads ctx.new_password, which no step up to it sets")
        .stderr_has("a verify runs after a crash inside the step, so what the step's own body set is not there");
    assert_eq!(
        out.stderr.matches("ctx_read_before_set").count(),
        2,
        "only the two: {}",
        out.stderr
    );
}

/// A Secret inside a ctx map came back from the journal as its fingerprint after a crash:
/// the undo that restores it failed mid-rollback ("must be a string, a Secret or ()"), the
/// app left on a password nobody has (author review). `check` finds the ways a runbook
/// puts one there (an Infisical record and one nested deeper: a second reading); ids and
/// versions beside a Secret kept at the top are fine.
#[test]
fn a_secret_kept_inside_a_ctx_map_is_found_without_running() {
    let script = r#"
runbook(#{ id: "c", title: "C" });
step("read", "Read", |ctx| {
    let c = infisical::secret("DATABASE_PASSWORD");
    ctx.pw = #{ old: c.value, version: c.version };
    ctx.list = [c.value];
    ctx.before = heroku::config("raxx-api-prod");
    ctx.flat = #{ version: c.version };
    ctx.flat.old = c.value;
    ctx.pw_old = c.value;
    ctx.meta = #{ version: c.version, name: "DATABASE_PASSWORD" };
    ctx.record = infisical::secret("DATABASE_PASSWORD");
    ctx.deep = #{ a: [#{ v: c.value }] };
}).no_undo("a read");
"#;
    let out = with_script("check", "c.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("c.rhai:5:8: ctx.pw keeps a Secret inside a map or list: the journal keeps it only as its fingerprint, so after a crash neither a resume nor an undo has its value")
        .stderr_has("keep each Secret the way back needs at the top of ctx (ctx.pw_old = value)")
        .stderr_has("c.rhai:6:8: ctx.list keeps a Secret inside a map or list")
        .stderr_has("c.rhai:7:8: ctx.before keeps a Secret inside a map or list")
        .stderr_has("c.rhai:9:8: ctx.flat keeps a Secret inside a map or list")
        .stderr_has("c.rhai:12:8: ctx.record keeps a Secret inside a map or list")
        .stderr_has("c.rhai:13:8: ctx.deep keeps a Secret inside a map or list");
    assert_eq!(
        out.stderr
            .matches("runbook::check::secret_inside_ctx")
            .count(),
        6,
        "only the six: {}",
        out.stderr
    );
    // An undo that checks the fingerprint against a value it has says so.
    let allowed = r#"
runbook(#{ id: "c", title: "C" });
step("read", "Read", |ctx| {
    let c = infisical::secret("DATABASE_PASSWORD");
    // check:allow(secret_inside_ctx): the undo compares the fingerprint with ctx.params' value
    ctx.pw = #{ old: c.value, version: c.version };
}).no_undo("a read");
"#;
    with_script("check", "a.rhai", allowed).run().exit(Exit::Ok);
}

/// A vendor URL in a param with no egress for it: the rehearsal points it at a simulator
/// on loopback, which is always allowed, and passes; production refused the call mid-run,
/// after earlier writes (author review). `check` finds it; declared, it passes.
#[test]
fn a_url_param_outside_the_egress_is_found_before_production_refuses_it() {
    let script = r#"
runbook(#{ id: "eg", title: "E" });
param("api_url", #{ default: "https://api.dbvendor.example", env: "DBV_API_URL", help: "vendor" });
param("docs", #{ default: "https://docs.dbvendor.example", help: "shown, never called" });
step("w", "W", |ctx| {
    print(`see ${ctx.params.docs}`);
    http::post(`${ctx.params.api_url}/reset`, #{ json: #{} });
}).no_undo("x");
"#;
    let out = with_script("check", "eg.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("eg.rhai:3:1: param 'api_url' defaults to a URL on api.dbvendor.example, which this runbook's egress does not allow")
        .stderr_has("egress: [\"param:api_url\"]");
    // Judged by the runbook's egress as a whole: the docs param is flagged too, unless
    // declared (a URL the runbook only shows is one line of egress, or `check:allow`).
    let declared = script.replace(
        r#"title: "E" }"#,
        r#"title: "E", egress: ["param:api_url", "docs.dbvendor.example"] }"#,
    );
    with_script("check", "eg.rhai", &declared)
        .run()
        .exit(Exit::Ok);
}

/// The same mistake without a param: an `http::` call written with a literal URL the egress
/// does not name, or to a URL the operator gives in a runbook that declares no egress at
/// all, passed `check` and every rehearsal (loopback is always allowed) and was refused in
/// production mid-run (author review).
#[test]
fn an_http_call_outside_the_egress_is_found_without_a_param() {
    let script = r#"
runbook(#{ id: "eg", title: "E", egress: ["api.dbvendor.example"] });
param("hook", #{ help: "where to say it is done" });
step("w", "W", |ctx| {
    http::post("https://api.dbvendor.example/reset", #{ json: #{} });
    http::post(`https://hooks.chat.example/services/${ctx.params.hook}`, #{ json: #{} });
    http::get("https://status.dbvendor.example");
}).no_undo("x");
"#;
    let out = with_script("check", "eg.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("eg.rhai:6:11: this http:: call goes to hooks.chat.example, which this runbook's egress does not allow")
        .stderr_has("eg.rhai:7:11: this http:: call goes to status.dbvendor.example")
        .stderr_has("egress: [\"hooks.chat.example\"]");
    assert_eq!(
        out.stderr.matches("egress_missing").count(),
        2,
        "{}",
        out.stderr
    );
    // A URL the operator gives, and no egress at all: every call is refused in production.
    let computed = r#"
runbook(#{ id: "eg", title: "E" });
param("api_url", #{ env: "DBV_API_URL", help: "vendor" });
step("w", "W", |ctx| {
    http::post(`${ctx.params.api_url}/reset`, #{ json: #{} });
}).no_undo("x");
"#;
    with_script("check", "eg.rhai", computed)
        .run()
        .exit(Exit::Usage)
        .stderr_has(
            "eg.rhai:5:11: this http:: call's URL is computed and the runbook declares no egress",
        )
        .stderr_has("egress: [\"param:NAME\"]");
    let declared = computed.replace(
        r#"title: "E" }"#,
        r#"title: "E", egress: ["param:api_url"] }"#,
    );
    with_script("check", "eg.rhai", &declared)
        .run()
        .exit(Exit::Ok);
    let listed = script.replace(
        r#"egress: ["api.dbvendor.example"]"#,
        r#"egress: ["*.dbvendor.example", "hooks.chat.example"]"#,
    );
    with_script("check", "eg.rhai", &listed)
        .run()
        .exit(Exit::Ok);
}

/// A misspelled option key and a literal of the wrong type were found only when the step ran
/// (in production, possibly after earlier steps had written). `check` now finds both from
/// the host functions' signatures and option lists, and the stdlib's, with file:line:col and
/// the nearest known key.
#[test]
fn misspelled_options_and_wrong_literal_types_are_found_without_running() {
    let script = r#"
import "std/consumers" as consumers;
import "std/checks" as checks;
runbook(#{ id: "opts", title: "Options" });
param("url", #{ default: "https://vendor.example", help: "vendor API" });
step("one", "One", |ctx| {
    let key = infisical::secret("VENDOR_KEY", #{ projct_id: "p", env: "prod" }).value;
    http::post(`${ctx.params.url}/tokens`, #{ bearer: key, jsn: #{}, secrets: ["token"] });
    heroku::wait_up(["app"], #{ timout: 30 });
    infisical::secret(42);
    heroku::restart(#{ app: "x" });
    postmark::server("a-token-as-text");
    infisical::set_secret("ID", "plain-id", #{ plain: true, env: "prod" });
    infisical::delete_secret("OLD", #{ env: "prod", if_present: true, cleanup: true });
    checks::wait_until(|| true, #{ timeout: 5, intervall: 1 });
    consumers::discover(key, #{ var: "KEY", heroku: true, infiscal: false });
}).no_undo("test");
"#;
    let out = with_script("check", "c.rhai", script).run();
    out.exit(Exit::Usage)
        .stderr_has("c.rhai:7:50: infisical::secret: unknown option 'projct_id'")
        .stderr_has("did you mean 'project_id'? known options: project_id, env, path, version")
        .stderr_has("c.rhai:8:60: http::post: unknown option 'jsn'")
        .stderr_has("did you mean 'json'?")
        .stderr_has("c.rhai:9:33: heroku::wait_up: unknown option 'timout'")
        .stderr_has("c.rhai:10:23: infisical::secret: argument 1 is an integer, but it takes name: string")
        .stderr_has("c.rhai:11:21: heroku::restart: argument 1 is a map, but it takes apps: string | Array")
        .stderr_has("c.rhai:12:22: postmark::server: argument 1 is a string, but it takes token: Secret")
        .stderr_has("a credential is a Secret: read it (infisical::secret(...).value), ask for it (prompt::secret) or make one (secret::from_text)")
        .stderr_has("c.rhai:15:48: checks::wait_until: unknown option 'intervall'")
        .stderr_has("did you mean 'interval'?")
        .stderr_has("c.rhai:16:59: consumers::discover: unknown option 'infiscal'")
        .stderr_has("did you mean 'infisical'?");
    // Exactly these eight: `plain` is an option of set_secret with text, `if_present` and
    // `cleanup` of delete_secret (flagged before: the runtime takes them, author review).
    assert_eq!(
        out.stderr.matches("runbook::check::unknown_option").count()
            + out.stderr.matches("runbook::check::wrong_type").count(),
        8,
        "{}",
        out.stderr
    );
}

/// rhai 1.27 remembers which function a name resolved to without telling modules apart: two
/// imported modules with a private `helper(x)` each, and after `b::run_b()` ran, `a::run_a()`
/// ran b's helper (it printed "abb" for a, b, a). `check` names the pair, and a run refuses
/// the runbook before anything is sent, rather than run the wrong code.
#[test]
fn two_modules_defining_one_function_name_are_refused_before_a_run() {
    let t = || {
        Test::new()
            .file(
                "runbooks/a.rhai",
                "private fn helper(x) { \"a\" }\nfn run_a(x) { helper(x) }\n",
            )
            .file(
                "runbooks/b.rhai",
                "private fn helper(x) { \"b\" }\nfn run_b(x) { helper(x) }\n",
            )
            .file(
                "runbooks/m.rhai",
                r#"import "a" as a;
import "b" as b;
runbook(#{ id: "mods", title: "Mods" });
step("s", "S", |ctx| { print(`${a::run_a(1)}${b::run_b(1)}${a::run_a(1)}`); }).no_undo("a test");
"#,
            )
    };
    let checked = t().args(&["check", "runbooks/m.rhai"]).run();
    checked
        .exit(Exit::Usage)
        .stderr_has("runbook::check::same_name_functions")
        .stderr_has("a.rhai and ")
        .stderr_has("b.rhai both define helper(1 argument(s)) and call it without a namespace");
    let run = t().args(&["exec", "runbooks/m.rhai", "--yes"]).run();
    run.exit(Exit::Usage)
        .stderr_has("runbook::check::same_name_functions")
        .stderr_has("rename one: rhai may run either one where the other is called, silently");
    run.assert_absent("Step 1/1");
}

/// A lint that is wrong for one line can be silenced there, with the reason written down: a
/// field the lint takes for a credential that is an identifier here. Without a reason the
/// problem stays and the allow is flagged too; an allow that silences nothing is flagged.
#[test]
fn a_lint_is_silenced_on_its_line_only_with_a_reason() {
    let script = |allow: &str| {
        format!(
            r#"runbook(#{{ id: "allow", title: "Allow", egress: ["vendor.example"] }});
step("read", "Read", |ctx| {{
    let r = http::get("https://vendor.example/keys");
    {allow}
    print(`key ${{r.json.api_key}}`);
}});
"#
        )
    };
    let fine = with_script(
        "check",
        "a.rhai",
        &script("// check:allow(secret_in_print): this vendor's api_key is the key's public id"),
    )
    .run();
    fine.exit(Exit::Ok);
    let bare = with_script(
        "check",
        "a.rhai",
        &script("// check:allow(secret_in_print)"),
    )
    .run();
    bare.exit(Exit::Usage)
        .stderr_has("runbook::check::secret_in_print")
        .stderr_has("a.rhai:4:5: check:allow(secret_in_print) gives no reason");
    let stale = with_script(
        "check",
        "a.rhai",
        &script("// check:allow(secret_in_url): nothing to silence\n    print(\"spacer\");"),
    )
    .run();
    stale
        .exit(Exit::Usage)
        .stderr_has("runbook::check::secret_in_print")
        .stderr_has("a.rhai:4:5: check:allow(secret_in_url) silences nothing here");
}

/// Only two scripts that each call their own copy without a namespace can be confused: a
/// runbook's own `report(x)` and `restart(x)`, next to std/consumers' (which it only calls
/// as `consumers::report`), are fine, and were refused by the first version of the lint.
#[test]
fn a_runbook_function_named_like_an_uncalled_stdlib_one_is_not_refused() {
    let script = r#"
import "std/consumers" as consumers;
runbook(#{ id: "names", title: "Names" });
fn report(x) { `report ${x}` }
fn restart(apps) { `restart ${apps.len()}` }
step("s", "S", |ctx| { print(report(1)); print(restart([1, 2])); }).no_undo("a test");
"#;
    with_script("check", "n.rhai", script).run().exit(Exit::Ok);
    with_script("exec", "n.rhai", script)
        .args(&["--yes"])
        .run()
        .exit(Exit::Ok)
        .stdout_has("  | report 1")
        .stdout_has("  | restart 2");
}
