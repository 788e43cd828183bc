//! Secrets never reach the screen or a file; they print masked and refuse concatenation.

use crate::support::{exits_with, with_fixture, with_script, Exit, Test, CANARIES};

#[test]
fn printing_a_secret_every_way_shows_only_the_mask() {
    let out = with_fixture("exec", "print_secret.rhai")
        .env("RUNBOOK_TEST_SECRET", CANARIES[0])
        .run();
    // The step ends with fail(...) so the message path is covered too.
    out.exit(Exit::StepFailed);
    let masked = "secret(…cdef)";
    let progress_lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  | "))
        .collect();
    assert_eq!(progress_lines[0], format!("  | {masked}"));
    assert_eq!(progress_lines[1], format!("  | {masked}"));
    assert_eq!(progress_lines[2], format!("  | interpolated: {masked}"));
    out.stderr_has(&format!("failing with {masked} in the message"));
    let audit = out.state_file("audit.jsonl");
    assert!(audit.contains("\"secret\":\"hmac:"), "{audit}");
    assert!(audit.contains("\"source\":{\"kind\":\"env\",\"name\":\"RUNBOOK_TEST_SECRET\"}"));
}

exits_with! {
    concatenating_a_secret_is_an_error:
        with_fixture("exec", "concat_secret.rhai").env("RUNBOOK_TEST_SECRET", CANARIES[0])
            => StepFailed,
        stderr [
            "runbook::secret::misuse",
            "concat_secret.rhai:4:28: a Secret cannot be concatenated with a string",
        ];

    missing_env_secret_says_what_to_export:
        with_fixture("exec", "print_secret.rhai") => StepFailed,
        stderr [
            "environment variable RUNBOOK_TEST_SECRET is not set",
            "export RUNBOOK_TEST_SECRET=...",
        ];

    // `${t}` inside a string shows `secret(…cdef)`; sending that to a vendor would send
    // garbage (or, without the mask, the secret in a log): it is refused before any request.
    a_secret_interpolated_into_a_vendor_bound_string_is_refused:
        with_fixture("exec", "interpolated_secret.rhai").env("RUNBOOK_TEST_SECRET", CANARIES[0])
            => StepFailed,
        stderr [
            "runbook::secret::misuse",
            "interpolated_secret.rhai:4:11: a Secret was interpolated into header Authorization",
            "pass the Secret itself",
        ];
}

/// `exec one.rhai --yes`, a runbook of one step that prints.
fn one_step() -> Test {
    with_script("exec", "one.rhai", ONE_STEP).args(&["--yes"])
}

const ONE_STEP: &str = r#"runbook(#{ id: "one", title: "One step" });
step("only", "The only step", |ctx| { print("done"); });
"#;

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn loose_state_files_are_tightened_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let t = one_step();
    let state = t.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let audit = state.join("audit.jsonl");
    std::fs::write(&audit, "").unwrap();
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = t.run();
    out.exit(Exit::Ok)
        .stderr_has("was readable by others (mode 0755); tightened it to 0700")
        .stderr_has("audit.jsonl was readable by others (mode 0644); tightened it to 0600");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&audit), 0o600);
    assert!(!std::fs::read_to_string(&audit).unwrap().is_empty());
}

#[test]
fn a_symlinked_audit_log_is_refused_not_appended_through() {
    let t = one_step();
    let state = t.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let elsewhere = t.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, state.join("audit.jsonl")).unwrap();
    // The run waits for the log to take its entries before it ends: one second, here.
    let out = t.env("RUNBOOK_STATE_WAIT_SECONDS", "1").run();
    // Run events that cannot be audited warn (as they did before); the link is never followed.
    out.exit(Exit::Ok)
        .stderr_has("could not write the audit log: cannot write ")
        .stderr_has("audit.jsonl is a symbolic link; runbook does not keep state through links");
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep me\n");
}

#[test]
fn a_malformed_runbook_toml_names_line_and_column_but_not_the_token() {
    let canary = CANARIES[0];
    let out = one_step()
        .file(
            "runbook.toml",
            &format!("[vendors]\nheroku_api_key = \"{canary}\n"),
        )
        .unscanned()
        .run();
    out.exit(Exit::Usage)
        .stderr_has("runbook.toml: key heroku_api_key, line 2, column ");
    out.assert_absent(canary);
    // A key written as a number: serde quotes it in backticks, which were shown (hostile
    // review).
    let out = one_step()
        .file(
            "runbook.toml",
            "[vendors]\nheroku_api_key = 123456789012345678\n",
        )
        .unscanned()
        .run();
    out.exit(Exit::Usage)
        .stderr_has("invalid type: integer `(value hidden)`");
    out.assert_absent("123456789012345678");
}

/// A scripted vendor that echoes what it is sent, the way an API that validates a key and
/// quotes it back in its answer does.
const ECHO_SCENARIO: &str = r#"
[[scripted]]
name = "echo"

[[scripted.routes]]
method = "POST"
path = "/echo"
respond = { status = 200, body = { got = "{{body.key}}", note = "checked" } }
"#;

const ECHO_RUNBOOK: &str = r#"
runbook(#{ id: "echo", title: "A vendor echoes a key" });
param("url", #{ default: "https://echo.example", env: "ECHO_API_URL", help: "vendor API" });
step("send", "Send the key and print the answer", |ctx| {
    let key = secret::from_env("ECHO_KEY");
    let r = http::post(`${ctx.params.url}/echo`, #{ json: #{ key: key } });
    print(`body: ${r.body}`);
    debug(r.body);
    print(r.json.got);
    print(key);
    ctx.answer = r.body;
    audit::log("echo.answer", #{ body: r.body });
}).no_undo("the echo keeps nothing");
"#;

#[test]
fn a_key_echoed_json_escaped_or_multi_line_is_masked_on_every_channel() {
    // A PEM-like key: quotes, backslashes and newlines are escaped by the vendor's JSON, and
    // `print` prefixes every line. Before: the escaped copy reached stdout, journal and audit.
    let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\nq\"uote\\slash/ZZcanary77\n-----END KEY-----";
    let out = Test::new()
        .file("runbooks/echo.rhai", ECHO_RUNBOOK)
        .file("runbooks/sandbox/echo.toml", ECHO_SCENARIO)
        .env("ECHO_KEY", key)
        .args(&["exec", "echo", "--sandbox", "--yes", "--json"])
        .run();
    out.exit(Exit::Ok);
    let escaped = serde_json::to_string(key).unwrap();
    for leaked in [
        key,
        &escaped[1..escaped.len() - 1],
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw",
        "q\"uote\\slash/ZZcanary77",
        "q\\\"uote\\\\slash/ZZcanary77",
    ] {
        out.assert_absent(leaked);
    }
    // With --json, progress goes to stderr.
    assert!(out.stderr.contains("secret(…"), "{}", out.stderr);
}

#[test]
fn a_short_pin_cannot_be_recovered_from_the_journal_by_trying_every_value() {
    // Before: `sha256:` + 48 bits, unkeyed; every 6-digit PIN hashed in under 2 s found it.
    let runbook = r#"runbook(#{ id: "pin", title: "Uses a PIN" });
step("only", "Keep the PIN", |ctx| { ctx.pin = secret::from_env("THE_PIN"); print(ctx.pin.fingerprint()); });
"#;
    let out = with_script("exec", "pin.rhai", runbook)
        .env("THE_PIN", "731904")
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok);
    let key = out.path().join("state/fingerprint.key");
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    assert_eq!(mode(&key), 0o600);
    let mut state = String::new();
    for f in crate::support::walk(&out.path().join("state")) {
        state.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    state.push_str(&out.stdout);
    let fps: Vec<&str> = state
        .match_indices("hmac:")
        .map(|(i, _)| &state[i..i + "hmac:".len() + 24])
        .collect();
    assert!(!fps.is_empty(), "{state}");
    assert!(!state.contains("sha256:"), "{state}");
    // No unkeyed hash of any PIN appears: try them all, as the attacker did.
    // Every 12-hex-digit window of the state, as the 6 bytes it spells (compared as bytes:
    // formatting a million digests as text was most of this test's time).
    use sha2::Digest;
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let windows: std::collections::HashSet<[u8; 6]> = state
        .as_bytes()
        .windows(12)
        .filter_map(|w| {
            let mut b = [0u8; 6];
            for (i, pair) in w.chunks(2).enumerate() {
                b[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
            }
            Some(b)
        })
        .collect();
    let mut pin = *b"000000";
    for n in 0..1_000_000u32 {
        let mut k = n;
        for d in pin.iter_mut().rev() {
            *d = b'0' + (k % 10) as u8;
            k /= 10;
        }
        let digest = sha2::Sha256::digest(pin);
        let head: [u8; 6] = digest[..6].try_into().unwrap();
        assert!(
            !windows.contains(&head),
            "the unkeyed hash of {n:06} is in the state"
        );
    }
}

/// A param that reads a credential-named variable as text is refused where it is declared:
/// before, the key was in clear in the journal and the `--json` stream, and a script could
/// print it reversed, with no egress at all.
#[test]
fn a_param_reading_a_credential_from_the_environment_as_text_is_refused() {
    let runbook = r#"runbook(#{ id: "leaky", title: "Reads a key as text" });
param("region", #{ env: "SENDGRID_API_KEY", default: "", help: "not really a region" });
step("only", "Print it backwards", |ctx| {
    let r = "";
    for c in ctx.params.region.chars() { r = c.to_string() + r; }
    print(r);
});
"#;
    let out = with_script("exec", "leaky.rhai", runbook)
        .env("SENDGRID_API_KEY", "SG.canary-reads-backwards")
        .args(&["--yes"])
        .run();
    out.exit(Exit::Usage);
    out.stderr_has("param 'region' reads SENDGRID_API_KEY, which names a credential, as text")
        .stderr_has("secret: true");
    out.assert_absent("sdrawkcab-sdaer");
    out.assert_absent("SG.canary-reads-backwards");
    // A webhook's URL is its credential; a connection string with a password is one too,
    // whatever the variable's name (review of this session's rule).
    let hook = runbook
        .replace("SENDGRID_API_KEY", "RUNBOOK_AUDIT_WEBHOOK")
        .replace("id: \"leaky\"", "id: \"hooky\"");
    let out = with_script("exec", "hooky.rhai", &hook)
        .env(
            "RUNBOOK_AUDIT_WEBHOOK",
            "https://hooks.example.com/services/T0/B0/canary-hook",
        )
        .args(&["--yes"])
        .run();
    out.exit(Exit::Usage);
    out.stderr_has("param 'region' reads RUNBOOK_AUDIT_WEBHOOK, which names a credential, as text");
    let dsn = runbook
        .replace("SENDGRID_API_KEY", "DATABASE_URL")
        .replace("id: \"leaky\"", "id: \"dsn\"");
    let out = with_script("exec", "dsn.rhai", &dsn)
        .env(
            "DATABASE_URL",
            "postgres://app:canary-pass-4d1f@db.example.com/app",
        )
        .args(&["--yes"])
        .run();
    out.exit(Exit::Usage);
    out.stderr_has("param 'region' is given a URL with a password or key in it, as text");
    out.assert_absent("canary-pass-4d1f");
    // Each item of a list is looked at (second review: only the first was).
    let list = r#"runbook(#{ id: "urls", title: "Health URLs" });
param("urls", #{ default: [], env: "RAXX_HEALTH_URL", help: "health URLs" });
step("only", "Show", |ctx| { print(ctx.params.urls); });
"#;
    let out = with_script("exec", "urls.rhai", list)
        .env(
            "RAXX_HEALTH_URL",
            "https://a.example/h,https://u:canary-pw-77@b.example/h",
        )
        .args(&["--yes"])
        .run();
    out.exit(Exit::Usage);
    out.assert_absent("canary-pw-77");
    // A webhook's timeout is no credential (second review: refused as one).
    let timeout = runbook
        .replace("SENDGRID_API_KEY", "WEBHOOK_TIMEOUT_SECONDS")
        .replace("id: \"leaky\"", "id: \"timeout\"");
    with_script("exec", "timeout.rhai", &timeout)
        .env("WEBHOOK_TIMEOUT_SECONDS", "30")
        .args(&["--yes"])
        .run()
        .exit(Exit::Ok);
    // A setting about a credential is no credential: read as text.
    let ttl = runbook
        .replace("SENDGRID_API_KEY", "GITHUB_TOKEN_TTL")
        .replace("id: \"leaky\"", "id: \"ttl\"");
    with_script("exec", "ttl.rhai", &ttl)
        .env("GITHUB_TOKEN_TTL", "3600")
        .args(&["--yes"])
        .run()
        .exit(Exit::Ok);
}

/// Three ways an honest author's param kept a credential as text, in the journal, the
/// stream and the evidence (hostile review): a Secret param's default written in the
/// runbook; a param named as a credential, given one; a URL with a key in its query.
#[test]
fn a_credential_in_a_param_is_refused_unless_it_is_a_secret() {
    let with_default = r#"runbook(#{ id: "d", title: "Default" });
param("api_key", #{ secret: true, default: "DEFAULTsecretVALUE1234567890", help: "key" });
step("one", "One", |ctx| { print(`k ${ctx.params.api_key}`); });
"#;
    // (`check` quotes the source line, which holds it: the file is where it leaked.)
    let out = with_script("check", "d.rhai", with_default).run();
    out.exit(Exit::Usage)
        .stderr_has("param 'api_key' is a Secret with a default value written in the runbook")
        .stderr_has("remove the default and pass --param api_key=...");
    // A password made of letters is a password (a second reading: it passed as a name).
    with_script(
        "check",
        "d.rhai",
        &with_default.replace("DEFAULTsecretVALUE1234567890", "postgres"),
    )
    .run()
    .exit(Exit::Usage)
    .stderr_has("param 'api_key' is a Secret with a default value written in the runbook");
    // "None" is a default a Secret may have.
    let empty = with_default.replace("DEFAULTsecretVALUE1234567890", "");
    with_script("exec", "d.rhai", &empty)
        .args(&["--yes"])
        .run()
        .exit(Exit::Ok);

    let named = r#"runbook(#{ id: "p", title: "Named" });
param("api_token", #{ default: "", help: "the API token" });
step("one", "One", |ctx| { print(ctx.params.api_token); });
"#;
    let out = with_script("exec", "p.rhai", named)
        .args(&["--yes", "--param", "api_token=tok_AAAAbbbbCCCCdddd1111eeee"])
        .run();
    out.exit(Exit::Usage).stderr_has(
        "param 'api_token' is named as a credential, its value looks like one, and it is not declared a Secret",
    );
    out.assert_absent("AAAAbbbbCCCCdddd1111eeee");
    // A param that names a credential (which Infisical secret holds the admin key, as the
    // shipped runbooks' `admin_secret`) takes its name as text.
    let out = with_script("exec", "p.rhai", named)
        .args(&["--yes", "--param", "api_token=SENDGRID_ADMIN_API_KEY"])
        .run();
    out.exit(Exit::Ok).stdout_has("| SENDGRID_ADMIN_API_KEY");
    // Names with a word and a number in it, lists, a lifetime: names (a second reading:
    // refused).
    for given in [
        "AUTH0_MGMT_CLIENT_SECRET",
        "OAUTH2_CLIENT_SECRET,ED25519_PRIVATE_KEY",
        "86400",
    ] {
        with_script("exec", "p.rhai", named)
            .args(&["--yes", "--param", &format!("api_token={given}")])
            .run()
            .exit(Exit::Ok);
    }
    // The same judgement of a default, at load.
    let out = with_script(
        "check",
        "p.rhai",
        &named.replace(
            "default: \"\"",
            "default: \"3bf751ac-94e0-4f1c-9d2e-5a6b7c8d9e0f\"",
        ),
    )
    .run();
    out.exit(Exit::Usage)
        .stderr_has("param 'api_token' is named as a credential, its value looks like one");

    let url = r#"runbook(#{ id: "u", title: "Ingest" });
param("ingest_url", #{ env: "LOG_INGEST_URL", default: "", help: "ingest URL" });
step("one", "One", |ctx| { print(ctx.params.ingest_url); });
"#;
    let out = with_script("exec", "u.rhai", url)
        .env(
            "LOG_INGEST_URL",
            "http://127.0.0.1:18081/ingest?api_key=SEKRETabc1234567890xyz",
        )
        .args(&["--yes"])
        .run();
    out.exit(Exit::Usage)
        .stderr_has("param 'ingest_url' is given a URL with a password or key in it, as text");
    out.assert_absent("SEKRETabc1234567890xyz");
    // A paging token or a session's name in the query is not a key.
    with_script("exec", "u.rhai", url)
        .env(
            "LOG_INGEST_URL",
            "http://127.0.0.1:18081/ingest?page_token=2&session_id=web",
        )
        .args(&["--yes"])
        .run()
        .exit(Exit::Ok);
}

/// A Secret URL that does not parse (pasted with its JSON quotes) and is longer than the
/// 200 characters an error quotes: the quote was cut first and masked after, so the cut
/// no longer matched the Secret and its first 200 characters were shown (hostile review).
#[test]
fn a_long_secret_url_that_does_not_parse_is_not_shown_in_part() {
    let runbook = r#"runbook(#{ id: "w", title: "Webhook", egress: ["param:webhook_url"] });
param("webhook_url", #{ secret: true, env: "TEAMS_WEBHOOK_URL", help: "webhook" });
step("notify", "Notify", |ctx| { http::post(ctx.params.webhook_url, #{ json: #{ text: "x" } }); }).no_undo("a message");
"#;
    let path = "webhookb2/3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b@7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d/IncomingWebhook/9f8e7d6c5b4a39281726354433221100/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let url = format!("\"https://raxxcorp.webhook.office.com/{path}\"");
    assert!(url.len() > 200);
    let out = with_script("exec", "w.rhai", runbook)
        .env("TEAMS_WEBHOOK_URL", &url)
        .args(&["--sandbox", "--yes"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("http::post: bad URL 'secret(…");
    out.assert_absent("3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b");
    out.assert_absent("raxxcorp.webhook.office.com/webhookb2");
}

/// A key an API creates comes back in a field named as a credential; the author forgot
/// `secrets: ["api_key"]`. Before, it was text: in ctx, the journal, the stream and the
/// evidence (hostile review). Judged by name and shape now; an id beside it, a paging
/// token and a word-shaped value stay text.
#[test]
fn a_credential_field_of_an_answer_is_a_secret_even_undeclared() {
    let scenario = r#"
[[scripted]]
name = "keys"

[[scripted.routes]]
method = "POST"
path = "/v3/api_keys"
respond = { status = 201, body = { api_key = "SG.canaryKEY0123456789abcdefXYZ", api_key_id = "kid-0042", next_token = "pg2", token_type = "Bearer", tokenId = "5f1b2c3d-1111-4222-8333-944455556666", PasswordLastUsed = "2026-12-01T10:00:00Z", token_expires_in = 86400 } }
"#;
    let runbook = r#"
runbook(#{ id: "keys", title: "Create a key" });
param("url", #{ default: "https://keys.example", env: "KEYS_API_URL", help: "vendor API" });
step("create", "Create", |ctx| {
    let r = http::post(`${ctx.params.url}/v3/api_keys`, #{ json: #{ name: "raxx" } });
    ctx.new_key = r.json.api_key;
    ctx.new_id = r.json.api_key_id;
    print(`key ${r.json.api_key} id ${r.json.api_key_id} ${r.json.token_type} ${r.json.next_token}`);
    print(r.body);
    ensure(secret::is_secret(r.json.api_key), "the key is a Secret");
    ensure(type_of(r.json.api_key_id) == "string", "the id is text");
    // camelCase ids and times, and numbers, stay what they are (a second reading).
    ensure(type_of(r.json.tokenId) == "string", "a camelCase id is text");
    ensure(type_of(r.json.PasswordLastUsed) == "string", "a time is text");
    print(`undo at /v3/api_keys/${r.json.tokenId} after ${r.json.token_expires_in}`);
}).no_undo("a test");
"#;
    let out = Test::new()
        .file("runbooks/keys.rhai", runbook)
        .file("runbooks/sandbox/keys.toml", scenario)
        .args(&["exec", "keys", "--sandbox", "--yes", "--json"])
        .run();
    out.exit(Exit::Ok)
        .stderr_has("id kid-0042 Bearer pg2")
        .stderr_has("undo at /v3/api_keys/5f1b2c3d-1111-4222-8333-944455556666 after 86400");
    out.assert_absent("canaryKEY0123456789abcdefXYZ");
}

/// A number holding a secret's digits leaves the journal readable: before, the journal
/// line read `"n":1secret(…)5`, and `runs`, `resume` and `rollback` called the journal
/// damaged (a hostile script could make any run unrecoverable so). The PIN itself is
/// masked; a number is data, not the Secret's text.
#[test]
fn a_number_holding_a_secrets_digits_leaves_the_journal_readable() {
    let runbook = r#"runbook(#{ id: "pin", title: "Uses a PIN" });
step("first", "Keep the PIN", |ctx| { ctx.pin = secret::from_env("THE_PIN"); ctx.n = 97391825; });
step("second", "Then more", |ctx| { ctx.m = ctx.n + 1; });
"#;
    let out = with_script("exec", "pin.rhai", runbook)
        .env("THE_PIN", "739182")
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok);
    assert!(!out.text().contains("\"739182\""), "{}", out.text());
    let id = out.last_run_id();
    let runs = out.next().args(&["runs", &id]).run();
    runs.exit(Exit::Ok);
    assert!(runs.text().contains("succeeded"), "{}", runs.text());
}

/// A generated password, a connection string built around it and an identifier stored as
/// text: `secret::random` draws from the alphabet asked, `secret::compose` joins text and
/// Secrets into a Secret (masked whole, sent whole), and `infisical::set_secret` takes text
/// only when the script says it is not a credential (`plain: true`). No value is printed.
#[test]
fn generated_composed_and_plain_values_reach_infisical_and_never_the_screen() {
    let runbook = r#"
runbook(#{ id: "made-secrets", title: "Secrets a script makes" });
step("make", "Make and store them", |ctx| {
    let a = secret::random(24, "hex");
    let b = secret::random(24, "hex");
    ensure(a != b, "two draws are different");
    let pw = secret::random(32, "alnum");
    let url = secret::compose(["postgres://app:", pw, "@db.internal:5432/app"]);
    print(`password ${pw}, url ${url}`);
    infisical::set_secret("DB_PASSWORD", pw, #{});
    infisical::set_secret("DATABASE_URL", url, #{});
    infisical::set_secret("DB_USER_ID", "app-0042", #{ plain: true });
    let refused = false;
    try { infisical::set_secret("DB_USER_ID", "app-0042", #{}); } catch (e) { refused = e.message.contains("is text, not a Secret"); }
    ensure(refused, "text without plain: true is refused");
    let none = false;
    try { secret::compose(["a", "b"]); } catch (e) { none = e.message.contains("no part is a Secret"); }
    ensure(none, "compose needs a Secret");
    // Text built with `${pw}` holds the mask, not the value: before, each of these wrote
    // `postgres://app:secret(…)@…` to the vendor, a connection string broken everywhere
    // (author review). Refused, naming compose.
    let interpolated = `postgres://app:${pw}@db.internal:5432/app`;
    let said = [];
    try { secret::from_text(interpolated); } catch (e) { said.push(e.message); ensure(e.help.contains("secret::compose(["), e.help); }
    try { secret::compose([interpolated, pw]); } catch (e) { said.push(e.message); }
    try { infisical::set_secret("DATABASE_URL_2", interpolated, #{ plain: true }); } catch (e) { said.push(e.message); }
    ensure(said == [
        "a Secret was interpolated into the text given to secret::from_text",
        "a Secret was interpolated into secret::compose part 0",
        "a Secret was interpolated into the value for DATABASE_URL_2",
    ], `${said}`);
}).no_undo("a test of values");
"#;
    let out = Test::new()
        .file("made.rhai", runbook)
        .args(&["exec", "made.rhai", "--sandbox", "--yes"])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let pw = crate::support::secret_versions(&state, "DB_PASSWORD")
        .pop()
        .unwrap();
    assert_eq!(pw.len(), 32);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw}");
    let url = crate::support::secret_versions(&state, "DATABASE_URL")
        .pop()
        .unwrap();
    assert_eq!(url, format!("postgres://app:{pw}@db.internal:5432/app"));
    assert!(
        !state["infisical"].to_string().contains("DATABASE_URL_2"),
        "the masked text was stored"
    );
    assert_eq!(
        crate::support::secret_versions(&state, "DB_USER_ID")
            .pop()
            .unwrap(),
        "app-0042"
    );
    out.assert_absent(&pw);
    out.assert_absent(&url);
    out.stdout_has("password secret(…");
}

/// Text in ctx that is also a registered secret (an id a run stored in Infisical, say) is
/// journalled masked. Before, a resume restored the mask as if it were the value
/// ("secret(…0123)") and the run went on to use it; now any use of it fails and says why.
#[test]
fn text_the_journal_kept_masked_is_not_used_as_the_value_after_a_resume() {
    let rig = crate::support::Rig::new();
    rig.file(
        "masked.rhai",
        r#"
runbook(#{ id: "masked-ctx", title: "Keeps an id that is also a secret" });
step("one", "Learn the id", |ctx| {
    let id = "kp-ident" + "ifier-000123";
    let known = secret::from_text(id);
    ctx.id = id;
}).no_undo("a test");
step("two", "Use the id", |ctx| {
    print(`using ${ctx.id}`);
}).no_undo("a test");
"#,
    );
    rig.crash("masked.rhai", "after:one");
    let resumed = rig.resume(&[]);
    resumed
        .exit(Exit::StepFailed)
        .stderr_has("ctx.id was text holding a secret, and the journal could keep it only masked");
    assert!(
        !resumed.stdout.contains("using secret("),
        "{}",
        resumed.stdout
    );
    assert!(!rig.journal().contains("kp-identifier-000123"));
}

/// A vendor that lists tokens keyed by their value: the secret is a JSON object key.
const KEYED_SCENARIO: &str = r#"
[[scripted]]
name = "echo"

[[scripted.routes]]
method = "GET"
path = "/tokens"
respond = { status = 200, body = { tokens = { "canary-secret-0123456789abcdef" = { name = "prod" } } } }
"#;

const KEYED_RUNBOOK: &str = r#"
runbook(#{ id: "echo-keys", title: "A vendor keys its answer by the token" });
param("url", #{ default: "https://echo.example", env: "ECHO_API_URL", help: "vendor API" });
step("list", "List the tokens and audit them", |ctx| {
    let key = secret::from_env("ECHO_KEY");
    let r = http::get(`${ctx.params.url}/tokens`, #{ bearer: key });
    audit::log("echo.tokens", #{ tokens: r.json.tokens });
}).no_undo("a read");
"#;

/// Before: object keys were not redacted, so the token reached audit.jsonl, the webhook and
/// `audit show` as a key of the entry's context.
#[test]
fn a_secret_as_a_json_key_is_masked_in_the_audit_log_and_its_webhook() {
    let (url, bodies) = crate::support::webhook(200);
    let out = Test::new()
        .file("runbooks/echo.rhai", KEYED_RUNBOOK)
        .file("runbooks/sandbox/echo.toml", KEYED_SCENARIO)
        .env("ECHO_KEY", CANARIES[0])
        .env("RUNBOOK_AUDIT_WEBHOOK", &url)
        .args(&["exec", "echo", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok);
    let entry = out
        .audited("echo.tokens")
        .pop()
        .expect("the entry is logged");
    assert_eq!(
        entry["context"]["tokens"]["secret(…cdef)"]["name"], "prod",
        "{entry}"
    );
    let sent = bodies.lock().unwrap().clone();
    assert!(sent.iter().any(|b| b.contains("echo.tokens")), "{sent:?}");
    for body in &sent {
        assert!(!body.contains(CANARIES[0]), "the webhook got it: {body}");
    }
    let shown = out.next().args(&["audit", "show", "--json"]).run();
    shown.exit(Exit::Ok).stdout_has("secret(…cdef)");
    // The hash covers the entry as stored.
    shown.next().args(&["audit", "verify"]).run().exit(Exit::Ok);
}
