//! `http::` for vendors without a module: credentials from Secrets (bearer, basic), response
//! fields declared secret, against a scripted simulator.

use crate::support::Exit;
use crate::support::{with_script, Test};

const SCENARIO: &str = r#"
[[infisical.secrets]]
name = "VENDOR_KEY"
versions = ["vendor-key-0123456789abcdef"]

[[scripted]]
name = "vendor"
# "Basic " + base64("api:vendor-key-0123456789abcdef")
auth = { header = "Authorization", prefix = "Basic ", collection = "users", field = "basic" }
collections = { users = [{ name = "api", basic = "YXBpOnZlbmRvci1rZXktMDEyMzQ1Njc4OWFiY2RlZg==" }] }

[[scripted.routes]]
method = "POST"
path = "/tokens"
respond = { status = 201, body = { token = "issued-token-fedcba9876543210", meta = { id = "t1" } } }
"#;

const RUNBOOK: &str = r#"
runbook(#{ id: "http-options", title: "http:: options" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
step("call", "Authenticate and receive a token", |ctx| {
    let key = infisical::secret("VENDOR_KEY").value;
    let r = http::post(`${ctx.params.url}/tokens`, #{
        basic: #{ user: "api", password: key },
        json: #{},
        secrets: ["token"],
    });
    ensure(r.status == 201, `got ${r.status}`);
    ensure(secret::is_secret(r.json.token), "the token is a Secret");
    ensure(!secret::is_secret(r.json.meta.id), "other fields stay plain");
    print(`token ${r.json.token}, body ${r.body}`);
    let refused = http::post(`${ctx.params.url}/tokens`, #{ json: #{} });
    ensure(refused.status == 401, `without credentials: ${refused.status}`);
}).no_undo("the example issues a token and keeps nothing");
"#;

#[test]
fn basic_auth_from_a_secret_and_declared_secret_fields() {
    let out = Test::new()
        .file("runbooks/http-options.rhai", RUNBOOK)
        .file("runbooks/sandbox/http-options.toml", SCENARIO)
        .args(&["exec", "http-options", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok).stdout_has(
        "  | token secret(…3210), body {\"meta\":{\"id\":\"t1\"},\"token\":\"secret(…3210)\"}",
    );
    out.assert_absent("issued-token-fedcba9876543210");
    out.assert_absent("vendor-key-0123456789abcdef");
}

/// A field declared secret that is not a string (an object holding the key, a numeric PIN)
/// or a declared field the answer lacks. Before, only a string at exactly the declared path
/// was wrapped: `secrets: ["credentials"]` left `credentials.secret` plain and the raw body
/// unmasked, so `expect_status`'s message, `print` and the journal showed the key (cold
/// review). Now everything under a declared field is a Secret, and a success that holds
/// none of the declared fields shows neither its body nor its fields.
#[test]
fn everything_under_a_declared_field_is_secret_and_a_missed_declaration_hides_the_answer() {
    let scenario = r#"
[[scripted]]
name = "vendor"

[[scripted.routes]]
method = "POST"
path = "/keys"
respond = { status = 201, body = { key_id = "k_1", credentials = { secret = "sk_live_9f3c2a7b41d84e2a", pin = 48213377 } } }
"#;
    let runbook = r#"
runbook(#{ id: "nested", title: "Nested secrets" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
param("declared", #{ default: "credentials", help: "the path declared secret" });
step("call", "Create a key", |ctx| {
    let r = http::post(`${ctx.params.url}/keys`, #{ json: #{}, secrets: [ctx.params.declared], record: ["key_id"] });
    print(`body ${r.body}`);
    if ctx.params.declared == "credentials" {
        ensure(secret::is_secret(r.json.credentials.secret), "the key is a Secret");
        ensure(secret::is_secret(r.json.credentials.pin), "the PIN is a Secret");
        print(`key ${r.json.credentials.secret}, pin ${r.json.credentials.pin}`);
    } else {
        // Only what `record:` keeps (an id) is left of the fields.
        ensure(r.json.keys() == ["key_id"], `the fields are not shown: ${r.json.keys()}`);
        print(`kept ${r.json.key_id}`);
    }
}).no_undo("the example keeps nothing");
"#;
    let out = Test::new()
        .file("runbooks/nested.rhai", runbook)
        .file("runbooks/sandbox/nested.toml", scenario)
        .args(&["exec", "nested", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("key secret(…4e2a), pin secret(…77)");
    out.assert_absent("sk_live_9f3c2a7b41d84e2a");
    out.assert_absent("48213377");
    let out = out
        .next()
        .args(&[
            "exec",
            "nested",
            "--sandbox",
            "--yes",
            "--param",
            "declared=credential.secret",
        ])
        .run();
    out.exit(Exit::Ok)
        .stdout_has(
            "body (not shown: none of the fields declared secret (credential.secret) is in this answer, so the credential may be elsewhere in it)",
        )
        .stdout_has("kept k_1");
    assert!(
        out.journal().contains(r#""answer":{"key_id":"k_1"}"#),
        "{}",
        out.journal()
    );
    out.assert_absent("sk_live_9f3c2a7b41d84e2a");
}

/// A field that quotes the declared secret and comes before it in the answer (Neon's
/// create-project: `connection_uri` ahead of `password`), and a header quoting it. Before,
/// each was judged before the password was registered: plain text, and a cut of it printed
/// a piece of the password (cold review). Now every declared field joins the redactor first.
#[test]
fn a_field_before_the_declared_secret_that_quotes_it_comes_back_a_secret() {
    let scenario = r#"
[[scripted]]
name = "vendor"

[[scripted.routes]]
method = "POST"
path = "/projects"
respond = { status = 201, headers = { "X-Connection" = "postgres://app:Xk9Qm2LpT7vR0aBc@db/app" }, body = { connection_uri = "postgres://app:Xk9Qm2LpT7vR0aBc@db/app", password = "Xk9Qm2LpT7vR0aBc" } }
"#;
    let runbook = r#"
runbook(#{ id: "ordered", title: "Ordered fields" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
step("call", "Create a project", |ctx| {
    let r = http::post(`${ctx.params.url}/projects`, #{ json: #{}, secrets: ["password"] });
    ensure(secret::is_secret(r.json.connection_uri), "the URI quoting the password is a Secret");
    ensure(secret::is_secret(r.headers["x-connection"]), "so is the header quoting it");
    print(`uri ${r.json.connection_uri}, body ${r.body}`);
}).no_undo("the example keeps nothing");
"#;
    let out = Test::new()
        .file("runbooks/ordered.rhai", runbook)
        .file("runbooks/sandbox/ordered.toml", scenario)
        .args(&["exec", "ordered", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok);
    out.assert_absent("Xk9Qm2LpT7vR0aBc");
    out.assert_absent("Xk9Qm2L");
}

#[test]
fn credentials_must_be_secrets_and_never_part_of_a_url() {
    let runbook = r#"
runbook(#{ id: "bad-http", title: "Bad http" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
param("how", #{ default: "bearer", help: "which mistake" });
step("call", "Call", |ctx| {
    let key = infisical::secret("VENDOR_KEY").value;
    if ctx.params.how == "bearer" {
        http::get(`${ctx.params.url}/tokens`, #{ bearer: "plain-text-token" });
    } else {
        http::get(`${ctx.params.url}/tokens?key=${key}`);
    }
});
"#;
    let out = Test::new()
        .file("runbooks/bad-http.rhai", runbook)
        .file("runbooks/sandbox/bad-http.toml", SCENARIO)
        .args(&["exec", "bad-http", "--sandbox"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("http::get: bearer must be a Secret")
        .stderr_has("bad-http.rhai:8:15");
    let out = out
        .next()
        .args(&["exec", "bad-http", "--sandbox", "--param", "how=url"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("a Secret was interpolated into the URL");
    out.assert_absent("vendor-key-0123456789abcdef");
}

/// A credential given as text anywhere it can travel in a request (a user and password in
/// the URL, a query parameter named as a credential, a credential header or cookie) is
/// refused before anything is sent: as text it would reach labels, the journal and errors.
/// `Idempotency-Key` and other plain headers still go as text. Before: each was sent, and
/// the URL's credentials were shown in every label.
#[test]
fn a_credential_as_text_in_a_request_is_refused_wherever_it_travels() {
    let runbook = r#"
runbook(#{ id: "text-creds", title: "Credentials as text" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
param("how", #{ default: "userinfo", help: "which mistake" });
param("cred", #{ default: "", help: "a credential, given as text" });
step("call", "Call", |ctx| {
    let u = ctx.params.url;
    let c = ctx.params.cred;
    let base = u.sub_string(u.index_of("://") + 3);
    switch ctx.params.how {
        "userinfo" => http::get(`https://api:${c}@${base}/tokens`),
        "query" => http::get(`${u}/tokens?api_key=${c}`),
        "query-map" => http::get(`${u}/tokens`, #{ query: #{ access_token: c } }),
        "header" => http::get(`${u}/tokens`, #{ headers: #{ "X-Api-Key": c } }),
        "cookie" => http::get(`${u}/tokens`, #{ headers: #{ Cookie: `session=${c}` } }),
        "plain" => {
            let r = http::post(`${u}/tokens`, #{ json: #{}, headers: #{ "Idempotency-Key": "run-1", Accept: "application/json" } });
            print(`sent, ${r.status}`);
        }
    }
}).no_undo("an example");
"#;
    let run = |how: &str| {
        Test::new()
            .file("runbooks/text-creds.rhai", runbook)
            .file("runbooks/sandbox/text-creds.toml", SCENARIO)
            .args(&["exec", "text-creds", "--sandbox", "--param"])
            .arg(format!("how={how}"))
            .args(&["--param", "cred=cr-canary-5150"])
            .keep_sandbox_state()
            .run()
    };

    for (how, said, canary) in [
        (
            "userinfo",
            "the URL carries a user name or password",
            "pw-canary-5150",
        ),
        (
            "query",
            "the URL's query carries 'api_key', a credential, as text",
            "qk-canary-5150",
        ),
        (
            "query-map",
            "the query parameter 'access_token' carries a credential, and its value is text",
            "qm-canary-5150",
        ),
        (
            "header",
            "the header 'X-Api-Key' carries a credential, and its value is text",
            "hk-canary-5150",
        ),
        (
            "cookie",
            "the header 'Cookie' carries a credential, and its value is text",
            "ck-canary-5150",
        ),
    ] {
        let out = run(how);
        out.exit(Exit::StepFailed)
            .stderr_has(&format!("http::get: {said}"))
            .stderr_has("runbook::secret::misuse");
        // The way out it names agrees with what `check` says of a Secret in a query.
        if how == "query" {
            out.stderr_has("prefer a header if the vendor takes one")
                .stderr_has("check:allow(secret_in_url)");
        }
        // Nothing reached the vendor, and the value is shown nowhere.
        assert_eq!(
            crate::support::served(&out.sandbox_state(), "GET", "/tokens"),
            0,
            "{how}: sent"
        );
        assert!(
            !out.stderr.contains(canary) && !out.stdout.contains(canary),
            "{how}"
        );
        assert!(!out.journal().contains(canary), "{how}: in the journal");
    }
    run("plain").exit(Exit::Ok).stdout_has("sent, 401");
}

/// Before: config vars read through `http::` came back as plain strings that could be cut
/// up and printed, and a value set with heroku::set_config came back laundered.
#[test]
fn credentials_read_through_http_are_secrets_and_a_round_trip_does_not_launder_them() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = crate::support::fixture("sop_canary.toml");
    let sandbox = crate::support::SandboxProcess::start_with(dir.path(), &scenario);
    let runbook = r#"
runbook(#{ id: "read-config", title: "Reads config through http::" });
param("heroku", #{ env: "HEROKU_HOST", help: "Heroku API" });
step("read", "Read config vars raw", |ctx| {
    let key = secret::from_env("HEROKU_API_KEY");
    let headers = #{ Accept: "application/vnd.heroku+json; version=3" };
    let r = http::get(`${ctx.params.heroku}/apps/raxx-api-prod/config-vars`, #{ bearer: key, headers: headers });
    ensure(r.status == 200, `status ${r.status}`);
    ensure(secret::is_secret(r.json.POSTMARK_SERVER_TOKEN), "the token is a Secret");
    print(`body: ${r.body}`);
    print(r.json);
    let fresh = secret::from_env("FRESH_VALUE");
    heroku::set_config("raxx-api-prod", #{ FRESH: fresh });
    let back = http::get(`${ctx.params.heroku}/apps/raxx-api-prod/config-vars`, #{ bearer: key, headers: headers });
    ensure(secret::is_secret(back.json.FRESH), "the round trip kept it a Secret");
    ensure(back.json.FRESH.fingerprint() == fresh.fingerprint(), "same value");
    print(`back: ${back.body}`);
}).no_undo("a test");
"#;
    let out = Test::in_dir(dir.path())
        .file("read.rhai", runbook)
        .envs(&sandbox.env)
        .env("FRESH_VALUE", "fresh-secret-value-7c3d9e1f")
        .args(&["exec", "read.rhai", "--yes"])
        .run();
    out.exit(Exit::Ok);
    out.assert_absent("fresh-secret-value-7c3d9e1f");
    out.stdout_has("body: {").stdout_has("secret(…c001)");
}

/// A credential given to heroku::set_config as text (a runbook that forgot `secrets:` on
/// the call that made it, or a value typed at the REPL) was kept in clear in the write's
/// detail, and so in the journal and the audit log. It is kept by fingerprint and joins the
/// redactor as it is sent; a plain setting beside it stays readable, and the app holds both.
#[test]
fn a_credential_set_on_heroku_as_text_is_recorded_by_fingerprint() {
    let canary = "SG.textcanary-7f3a9c1e5b2d4068a1c3";
    let dir = tempfile::tempdir().unwrap();
    let sandbox = crate::support::SandboxProcess::start(dir.path());
    let runbook = format!(
        r#"
runbook(#{{ id: "set-text", title: "Sets a credential given as text" }});
step("set", "Set config vars", |ctx| {{
    heroku::set_config("raxx-api-prod", #{{ SENDGRID_API_KEY: "{canary}", RELEASE_MODE: "on" }});
    // As a vendor's answer quoting it would: masked once it was sent.
    print("Heroku said: {canary} is set");
}}).no_undo("a test");
"#
    );
    let out = Test::in_dir(dir.path())
        .file("set.rhai", &runbook)
        .envs(&sandbox.env)
        .args(&["exec", "set.rhai", "--yes"])
        .run();
    out.exit(Exit::Ok);
    out.assert_absent(canary);
    assert!(
        out.journal().contains(r#""RELEASE_MODE":"on""#),
        "{}",
        out.journal()
    );
    let vars = &sandbox.state()["heroku"]["apps"]["raxx-api-prod"]["config_vars"];
    assert_eq!(vars["SENDGRID_API_KEY"], canary);
    assert_eq!(vars["RELEASE_MODE"], "on");
}

/// A sandbox of the canary scenario whose apps also hold `LAUNCH_CODE = opaque`: a config
/// var neither a setting nor a credential.
fn with_launch_code(dir: &std::path::Path, opaque: &str) -> crate::support::SandboxProcess {
    let scenario = dir.join("world.toml");
    std::fs::write(
        &scenario,
        crate::support::canary_with(
            "RAPTOR_ENV = \"production\" }",
            &format!("RAPTOR_ENV = \"production\", LAUNCH_CODE = \"{opaque}\" }}"),
        ),
    )
    .unwrap();
    crate::support::SandboxProcess::start_with(dir, &scenario)
}

/// A config var that is neither a setting nor a credential (`LAUNCH_CODE`) is an opaque
/// Secret in `r.json` but unknown to the redactor. Before: `r.body` kept it in clear, and
/// with it stdout, `--json` and the journal when the script printed or stored the body.
/// Settings stay readable, as `heroku::config` gives them.
#[test]
fn a_config_var_read_through_http_is_masked_in_the_body_too() {
    let opaque = "alpha-alpha-7";
    let dir = tempfile::tempdir().unwrap();
    let sandbox = with_launch_code(dir.path(), opaque);
    let runbook = r#"
runbook(#{ id: "read-body", title: "Reads config vars and keeps the body" });
param("heroku", #{ env: "HEROKU_HOST", help: "Heroku API" });
step("read", "Read config vars raw", |ctx| {
    let key = secret::from_env("HEROKU_API_KEY");
    let headers = #{ Accept: "application/vnd.heroku+json; version=3" };
    let r = http::get(`${ctx.params.heroku}/apps/raxx-api-prod/config-vars`, #{ bearer: key, headers: headers });
    print(`body: ${r.body}`);
    ctx.body = r.body;
    ensure(secret::is_secret(r.json.LAUNCH_CODE), "an opaque value is a Secret");
    ensure(r.json.RAPTOR_ENV == "production", "a setting is text");
}).no_undo("a read");
"#;
    for json in [false, true] {
        let t = Test::in_dir(dir.path())
            .file("read.rhai", runbook)
            .envs(&sandbox.env)
            .args(&["exec", "read.rhai", "--yes"]);
        let out = if json { t.args(&["--json"]) } else { t }.run();
        out.assert_absent(opaque);
        out.exit(Exit::Ok);
        // On stderr with --json, where the terminal view goes.
        let body = r#"  | body: {"LAUNCH_CODE":"secret(…-7)","POSTMARK_SERVER_TOKEN":"secret(…c001)","RAPTOR_ENV":"production"}"#;
        assert!(out.text().contains(body), "json: {json}\n{}", out.text());
    }
}

/// An opaque config var (a Secret the redactor does not know: neither a setting nor a
/// credential) sent to a vendor that echoes what it was sent: the echo comes back masked.
/// Before, the answer's body held it in clear, and so did stdout and the journal once the
/// script printed or kept it: a round trip through a vendor laundered it (found by a cold
/// review). A value sent in a request now joins the redactor.
#[test]
fn an_opaque_config_var_echoed_by_a_vendor_comes_back_masked() {
    let opaque = "alpha-alpha-7";
    let dir = tempfile::tempdir().unwrap();
    let sandbox = with_launch_code(dir.path(), opaque);
    let (url, _) = echo_server();
    let runbook = r#"
runbook(#{ id: "launder", title: "Sends an opaque value to an echo" });
param("url", #{ help: "echo server" });
step("send", "Send and keep the echo", |ctx| {
    let cfg = heroku::config("raxx-api-prod");
    ensure(secret::is_secret(cfg.LAUNCH_CODE), "an opaque value is a Secret");
    let r = http::post(`${ctx.params.url}/echo`, #{ json: #{ key: cfg.LAUNCH_CODE }, read_only: true });
    print(`echo: ${r.body}`);
    ctx.answer = r.body;
}).no_undo("a read");
"#;
    let out = launder(dir.path(), &sandbox.env, runbook, &url);
    out.assert_absent(opaque);
    out.exit(Exit::Ok).stdout_has("echo: ");
}

/// The same opaque value sent as a bearer token and in a header: the transport sends those
/// as they are, so the value joins the redactor there too, and their echoes come back
/// masked (3b6e188; the test above sends it in a JSON body only).
#[test]
fn an_opaque_config_var_sent_as_a_bearer_or_a_header_comes_back_masked() {
    let opaque = "alpha-alpha-7";
    let dir = tempfile::tempdir().unwrap();
    let sandbox = with_launch_code(dir.path(), opaque);
    let (url, count) = echo_server();
    let runbook = r#"
runbook(#{ id: "launder", title: "Sends an opaque value to an echo" });
param("url", #{ help: "echo server" });
step("bearer", "As a bearer", |ctx| {
    let cfg = heroku::config("raxx-api-prod");
    let r = http::get(`${ctx.params.url}/b`, #{ bearer: cfg.LAUNCH_CODE });
    print(`bearer echo: ${r.json.auth}`);
    ctx.bearer = r.json.auth;
}).no_undo("a read");
step("header", "In a header", |ctx| {
    let cfg = heroku::config("raxx-api-prod");
    let r = http::get(`${ctx.params.url}/h`, #{ headers: #{ "x-key": cfg.LAUNCH_CODE } });
    print(`header echo: ${r.json.key}`);
    ctx.header = r.json.key;
}).no_undo("a read");
"#;
    let out = launder(dir.path(), &sandbox.env, runbook, &url);
    out.assert_absent(opaque);
    out.exit(Exit::Ok)
        .stdout_has("bearer echo: secret(")
        .stdout_has("header echo: secret(");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// `runbook` (a script sending the sandbox's opaque LAUNCH_CODE to the echo server at `url`)
/// run in `dir` against the sandbox whose settings are `env`.
fn launder(
    dir: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
    runbook: &str,
    url: &str,
) -> crate::support::Output {
    Test::in_dir(dir)
        .file("launder.rhai", runbook)
        .envs(env)
        .args(&[
            "exec",
            "launder.rhai",
            "--yes",
            "--param",
            &format!("url={url}"),
        ])
        .run()
}

/// A loopback server that answers each request with what it received: the request line's
/// target, the Authorization and x-key headers and the body, as JSON. Counts the requests.
fn echo_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split(' ').nth(1).unwrap_or("").to_string();
            let (mut length, mut auth, mut key) = (0usize, String::new(), String::new());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_string();
                if h.is_empty() {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap_or((&h, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "authorization" => auth = value.trim().to_string(),
                    "x-key" => key = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let answer = serde_json::json!({
                "target": target,
                "auth": auth,
                "key": key,
                "body": String::from_utf8_lossy(&body),
            })
            .to_string();
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, count)
}

#[test]
fn a_secret_in_query_form_or_basic_user_is_sent_as_its_value() {
    // Before: a Secret given to query: or basic's user went out as "runbook::secret::Secret".
    let (url, _) = echo_server();
    let runbook = r#"
runbook(#{ id: "send", title: "Secrets in query, form, basic" });
param("url", #{ help: "echo server" });
step("send", "Send", |ctx| {
    let key = secret::from_env("THE_KEY");
    let q = http::get(`${ctx.params.url}/q`, #{ query: #{ api_key: key, plain: "x" } });
    ensure(secret::is_secret(q.json.target), "the echo of a secret comes back a Secret");
    let f = http::post(`${ctx.params.url}/f`, #{ form: #{ key: key, note: "hello world" } });
    ensure(secret::is_secret(f.json.body), "form echo is a Secret");
    let b = http::get(`${ctx.params.url}/b`, #{ basic: #{ user: key, password: key } });
    ensure(secret::is_secret(b.json.auth), "basic echo is a Secret");
    print(`query ${q.json.target} form ${f.json.body} body ${f.body}`);
}).no_undo("a test");
"#;
    let key = "query-secret-5b8e2a91";
    let out = with_script("exec", "send.rhai", runbook)
        .env("THE_KEY", key)
        .args(&["--yes", "--param", &format!("url={url}")])
        .run();
    out.exit(Exit::Ok);
    out.assert_absent(key);
    out.assert_absent("runbook::secret::Secret");
    out.stdout_has("query secret(…in=x) form secret(…orld)");
}

/// A webhook whose URL is the credential (Slack's `/services/T…/B…/XXXX`): given as a
/// Secret, it is sent as written and shown masked everywhere. Before, http:: took a URL as
/// text only: the secret path was in clear in the journal, the audit log and every label.
#[test]
fn a_url_that_is_a_credential_is_sent_and_never_shown() {
    let (url, count) = echo_server();
    let runbook = r#"
runbook(#{ id: "hook", title: "Posts to a webhook", egress: ["hooks.chat.example"] });
param("hook", #{ secret: true, env: "THE_WEBHOOK_URL", help: "the webhook, a credential" });
step("post", "Post", |ctx| {
    let r = http::post(ctx.params.hook, #{ json: #{ text: "rotated" } });
    ensure(r.status == 200, "answered");
    print(`posted to ${r.json.target}`);
}).no_undo("a notification");
"#;
    let hook = format!("{url}/services/T0CANARY/B0CANARY/hook-canary-5f1e2d");
    let out = with_script("exec", "hook.rhai", runbook)
        .env("THE_WEBHOOK_URL", &hook)
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    out.assert_absent("hook-canary-5f1e2d");
    out.assert_absent("B0CANARY");
    // `check` takes a Secret given whole as the URL for what it is (one built into a
    // string is still flagged: `check::a_secret_reaching_a_url_through_a_function_is_found`).
    out.next()
        .args(&["check", "hook.rhai"])
        .run()
        .exit(Exit::Ok);
}

/// A proxy in the shell (`http_proxy`, `ALL_PROXY`: common behind a corporate firewall)
/// does not see a call to this machine. Plain HTTP is allowed to loopback because its bytes
/// stay here; through the shell's proxy the bearer crossed the network in clear (and a
/// rehearsal's simulators were asked through the proxy).
#[test]
fn a_call_to_loopback_does_not_go_through_the_shells_proxy() {
    let (url, count) = echo_server();
    let (proxy, proxied) = echo_server();
    let runbook = r#"
runbook(#{ id: "proxied", title: "Calls this machine" });
param("url", #{ help: "echo server" });
step("call", "Call", |ctx| {
    let key = secret::from_env("THE_KEY");
    let r = http::get(`${ctx.params.url}/b`, #{ bearer: key });
    ensure(r.status == 200, "answered");
}).no_undo("a read");
"#;
    let out = with_script("exec", "proxied.rhai", runbook)
        .env("THE_KEY", "proxy-canary-7d1e")
        .env("http_proxy", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env("ALL_PROXY", &proxy)
        .env("all_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(&["--yes", "--param", &format!("url={url}")])
        .run();
    out.exit(Exit::Ok);
    out.assert_absent("proxy-canary-7d1e");
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_dry_run_sends_no_body_and_no_secret_in_a_query() {
    let (url, count) = echo_server();
    let runbook = r#"
runbook(#{ id: "dry", title: "Dry reads" });
param("url", #{ help: "echo server" });
step("read", "Reads", |ctx| {
    let key = secret::from_env("THE_KEY");
    http::get(`${ctx.params.url}/body`, #{ json: #{ token: key } });
    http::get(`${ctx.params.url}/query`, #{ query: #{ token: key } });
    let plain = http::get(`${ctx.params.url}/plain`);
    ensure(plain.status == 200, "a plain read is sent");
});
"#;
    let out = with_script("exec", "dry.rhai", runbook)
        .env("THE_KEY", "dry-secret-0c1d2e3f")
        .args(&["--dry-run", "--param", &format!("url={url}")])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("[dry-run] not sent: GET ")
        .stdout_has("/body carries a body")
        .stdout_has("/query carries a Secret in its query");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_secret_in_an_email_is_refused_by_name() {
    let runbook = r#"
runbook(#{ id: "mail", title: "Mails a secret" });
step("mail", "Mail", |ctx| {
    let key = secret::from_env("THE_KEY");
    postmark::send_email(key, #{ From: "ops@example.com", To: "a@example.com", Subject: "key", TextBody: key });
}).no_undo("a test");
"#;
    let out = with_script("exec", "mail.rhai", runbook)
        .env("THE_KEY", "mail-secret-9f8e7d6c")
        .args(&["--yes"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("a Secret cannot be sent as the email's TextBody")
        .stderr_has("send its fingerprint() or masked() instead");
}

/// A response header that carries a credential is a Secret, like a declared body field
/// (before: plain text a script could print letter by letter, and that reached the journal
/// and the audit log): by its name, or when the script declares it.
#[test]
fn credential_headers_in_a_response_are_secrets() {
    let scenario = r#"
[[infisical.secrets]]
name = "VENDOR_KEY"
versions = ["vendor-key-0123456789abcdef"]

[[scripted]]
name = "vendor"
auth = { header = "Authorization", prefix = "Bearer ", collection = "users", field = "token" }
collections = { users = [{ name = "api", token = "vendor-key-0123456789abcdef" }] }

[[scripted.routes]]
method = "POST"
path = "/sessions"
respond = { status = 201, body = { ok = true }, headers = { "X-Session-Token" = "header-session-token-0123456789", "X-Issued" = "header-declared-value-9876543210", "X-Request-Id" = "req-42" } }
"#;
    let runbook = r#"
runbook(#{ id: "header-secrets", title: "Credentials in headers" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
step("call", "Open a session", |ctx| {
    let key = infisical::secret("VENDOR_KEY").value;
    let r = http::post(`${ctx.params.url}/sessions`, #{ bearer: key, json: #{}, secrets: ["headers.x-issued"] });
    ensure(r.status == 201, `got ${r.status}`);
    ensure(secret::is_secret(r.headers["x-session-token"]), "a token header is a Secret");
    ensure(secret::is_secret(r.headers["x-issued"]), "a declared header is a Secret");
    ensure(!secret::is_secret(r.headers["x-request-id"]), "other headers stay plain");
    print(`session ${r.headers["x-session-token"]}, issued ${r.headers["x-issued"]}, request ${r.headers["x-request-id"]}`);
    audit::log("session.opened", #{ token: r.headers["x-session-token"] });
}).no_undo("a session expires by itself");
"#;
    let out = Test::new()
        .file("runbooks/header-secrets.rhai", runbook)
        .file("runbooks/sandbox/header-secrets.toml", scenario)
        .args(&["exec", "header-secrets", "--sandbox", "--yes"])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("session secret(…6789), issued secret(…3210), request req-42");
    out.assert_absent("header-session-token-0123456789");
    out.assert_absent("header-declared-value-9876543210");
}

/// The REPL in production says where it writes, shows it in its prompt's place, and asks
/// before each write it sends (answered here by an answers file; without one and without a
/// terminal, the write is not sent). `:confirm always` stops asking. Before: writes typed at
/// the REPL went straight to production, with no banner.
#[test]
fn the_repl_in_production_says_so_and_confirms_each_write() {
    let (url, count) = echo_server();
    let input = format!(
        "let r = http::post(\"{url}/one\", #{{ json: #{{}} }});\nprint(`sent ${{r.status}}`);\n"
    );
    let sent = || count.load(std::sync::atomic::Ordering::SeqCst);
    // No terminal, no answer: refused before it is sent.
    let out = Test::new().args(&["repl"]).stdin(&input).run();
    out.exit(Exit::StepFailed)
        .stderr_has("PRODUCTION")
        .stderr_has("prompt 'repl.write' needs an answer");
    assert_eq!(sent(), 0);
    // The operator says no.
    let out = Test::new()
        .args(&["repl"])
        .answers("\"repl.write\" = false\n")
        .stdin(&input)
        .run();
    out.exit(Exit::StepFailed).stderr_has(&format!(
        "http::post on POST {url}/one: not sent (the operator said no)"
    ));
    assert_eq!(sent(), 0);
    // Yes: sent, once.
    let out = Test::new()
        .args(&["repl"])
        .answers("\"repl.write\" = true\n")
        .stdin(&input)
        .run();
    out.exit(Exit::Ok).stderr_has("sent 200");
    assert_eq!(sent(), 1);
    // `:confirm always`: no question, even unanswered.
    let out = Test::new()
        .args(&["repl"])
        .stdin(&format!(":confirm always\n{input}"))
        .run();
    out.exit(Exit::Ok)
        .stderr_has("production writes typed here are no longer confirmed one by one")
        .stderr_has("sent 200");
    assert_eq!(sent(), 2);
}

/// `:undo` puts back what a step done in this session changed, and in production asks
/// first, as rollback does; `:run` asks there too. Before: `:undo` ran the undo of a step
/// that never ran, and both sent their writes to production with no question.
#[test]
fn an_undo_at_the_repl_needs_its_step_done_and_asks_in_production() {
    let (url, count) = echo_server();
    // heroku:: (not called here) makes the runbook's target production.
    let runbook = format!(
        r#"
runbook(#{{ id: "u", title: "U", egress: ["127.0.0.1"] }});
param("url", #{{ default: "{url}", help: "the vendor" }});
step("mark", "Mark", |ctx| {{ http::post(`${{ctx.params.url}}/do`, #{{ json: #{{}} }}); }})
    .undo(|ctx| {{ http::post(`${{ctx.params.url}}/undo`, #{{ json: #{{}} }}); }});
step("look", "Look", |ctx| {{ heroku::config("raxx-api-prod"); }});
"#
    );
    let sent = || count.load(std::sync::atomic::Ordering::SeqCst);
    let out = Test::new()
        .file("u.rhai", &runbook)
        .args(&["repl", "u.rhai"])
        .stdin(":undo mark\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("PRODUCTION")
        .stderr_has("step 'mark' has not completed in this session: its undo would put back what it never changed");
    assert_eq!(sent(), 0);
    // `:run` in production asks too (its writes went out unasked): "no" sends nothing.
    let out = Test::new()
        .file("u.rhai", &runbook)
        .args(&["repl", "u.rhai"])
        .answers("\"mark.run\" = false\n")
        .stdin(":run mark\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("step 'mark' not run: the operator said no");
    assert_eq!(sent(), 0);
    // Done here, then undone: asked, and "no" sends nothing.
    let out = Test::new()
        .file("u.rhai", &runbook)
        .args(&["repl", "u.rhai"])
        .answers("\"mark.run\" = true\n\"mark.undo\" = false\n")
        .stdin(":run mark\n:undo mark\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("step 'mark' not undone: the operator said no");
    assert_eq!(sent(), 1, "the step's own write only");
    let out = Test::new()
        .file("u.rhai", &runbook)
        .args(&["repl", "u.rhai"])
        .answers("\"mark.run\" = true\n\"mark.undo\" = true\n")
        .stdin(":run mark\n:undo mark\n")
        .run();
    out.exit(Exit::Ok).stderr_has("✓ undo mark");
    assert_eq!(sent(), 3);
    // `:confirm always` stops the questions for typed writes and `:run`, not for going back.
    let out = Test::new()
        .file("u.rhai", &runbook)
        .args(&["repl", "u.rhai"])
        .answers("\"mark.undo\" = false\n")
        .stdin(":confirm always\n:run mark\n:undo mark\n")
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("step 'mark' not undone: the operator said no");
    assert_eq!(sent(), 4, "the step's write only");
}

/// A POST that only reads (a search) is marked `read_only`: it is not a write in the
/// journal or the run's changes, and is retried like a GET. A POST with an Idempotency-Key
/// answered 429 with Retry-After is retried; one without a key never is (before, the
/// issue's authors found neither distinction documented or tested).
#[test]
fn a_read_only_post_is_a_read_and_only_a_keyed_write_is_retried_after_429() {
    let scenario = format!(
        "{SCENARIO}
[[scripted.routes]]
method = \"POST\"
path = \"/search\"
respond = {{ status = 200, body = {{ hits = 1 }} }}

[[scripted.routes]]
method = \"POST\"
path = \"/keys\"
respond = {{ status = 201, body = {{ id = \"k1\" }} }}
"
    );
    let runbook = r#"
runbook(#{ id: "http-reads", title: "POSTs that read, and retried writes" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
step("call", "Search, then create twice", |ctx| {
    let key = infisical::secret("VENDOR_KEY").value;
    let auth = #{ user: "api", password: key };
    let found = http::post(`${ctx.params.url}/search`, #{ basic: auth, json: #{ q: "x" }, read_only: true });
    ensure(found.status == 200, `search: ${found.status}`);
    let keyed = http::post(`${ctx.params.url}/tokens`, #{ basic: auth, json: #{}, headers: #{ "Idempotency-Key": "run-1" } });
    print(`keyed ${keyed.status}`);
    let plain = http::post(`${ctx.params.url}/keys`, #{ basic: auth, json: #{} });
    print(`plain ${plain.status}`);
}).no_undo("the example keeps nothing");
"#;
    let out = Test::new()
        .file("runbooks/http-reads.rhai", runbook)
        .file("runbooks/sandbox/http-reads.toml", &scenario)
        .args(&[
            "exec",
            "http-reads",
            "--sandbox",
            "--yes",
            "--json",
            "--fault",
            "vendor:POST:/search=503:once:retry_after=0",
            "--fault",
            "vendor:POST:/tokens=429:once:retry_after=0",
            "--fault",
            "vendor:POST:/keys=429:once:retry_after=0",
        ])
        .keep_sandbox_state()
        .run();
    out.exit(Exit::Ok)
        .stderr_has("keyed 201")
        .stderr_has("plain 429");
    let state = out.sandbox_state();
    let count = |path: &str| {
        crate::support::items(&state["requests"])
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == path)
            .count()
    };
    assert_eq!(
        (count("/search"), count("/tokens"), count("/keys")),
        (2, 2, 1),
        "the read and the keyed write were retried once; the plain write was not"
    );
    let changes = out.report()["changes"].to_string();
    assert!(
        !changes.contains("/search"),
        "a read is not a change: {changes}"
    );
    // The keyed write applied; the plain one was refused (429): nothing of it to undo.
    assert!(
        changes.contains("/tokens") && !changes.contains("/keys"),
        "{changes}"
    );
}

/// Under --dry-run a write is not sent, and what it would have returned is a placeholder.
/// Scripts parse such answers (a slice of an id, a split name, a loop over a list, the body
/// as JSON): before, the first string method on a placeholder failed the step ("no function
/// matches sub_string (Placeholder, ...)") and the dry run rolled back without planning the
/// rest. Now each keeps the placeholder's shape (a loop runs once, parsing yields a value
/// that reads like the JSON it stands for) and every output marks it as a dry-run value.
#[test]
fn a_dry_run_plans_past_a_script_that_parses_what_a_skipped_write_returned() {
    let runbook = r#"
runbook(#{ id: "parse-dry", title: "Parses a created key" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
step("create", "Create and parse", |ctx| {
    let key = infisical::secret("VENDOR_KEY").value;
    let r = http::post(`${ctx.params.url}/tokens`, #{
        basic: #{ user: "api", password: key }, json: #{}, secrets: ["token"],
    });
    let id = r.json.meta.id;
    print(`prefix ${id.sub_string(0, 4)}, ${id.split("-").len()} parts, ${id.to_upper()}`);
    for tag in r.json.tags { print(`tag ${tag}`); }
    let raw = parse_json(r.body);
    let kept = r.json.tags.filter(|t| t.starts_with("k")).map(|t| t.trim());
    ensure(id.len() > 0 && !raw.is_empty(), "an id has a few characters");
    let n = 0;
    while n < id.len() { n += 1; }
    let seen = http::get(ctx.params.url + "/tokens/" + id, #{ basic: #{ user: "api", password: key } });
    let found = http::get(`${ctx.params.url}/tokens`, #{ query: #{ id: id }, basic: #{ user: "api", password: key } });
    print(`counted ${n}, read ${seen.status} and ${found.status}`);
    print(`raw ${raw.meta.id}, ${kept.len()} kept, as JSON ${id.to_json()}`);
    ctx.id = id;
}).undo(|ctx| {
    http::delete(`${ctx.params.url}/tokens/${ctx.id}`);
});
step("label", "Label the key", |ctx| {
    http::put(`${ctx.params.url}/tokens/${ctx.id.trim()}/label`, #{ json: #{ label: "rotated" } });
}).no_undo("a label");
"#;
    let out = Test::new()
        .file("runbooks/parse-dry.rhai", runbook)
        .file("runbooks/sandbox/parse-dry.toml", SCENARIO)
        .args(&[
            "exec",
            "parse-dry",
            "--sandbox",
            "--dry-run",
            "--sandbox-state",
            "state.json",
        ])
        .run();
    out.exit(Exit::Ok)
        .stdout_has("  | prefix <dry-run: http::post.json.meta.id.sub_string()>, 1 parts, <dry-run: http::post.json.meta.id.to_upper()>")
        // A read whose URL or query holds what the skipped write would have returned is
        // not sent: the id does not exist. `len()` is one, so the loop ends.
        .stdout_has("/tokens/<dry-run: http::post.json.meta.id> uses a value only a skipped write would produce")
        .stdout_has("/tokens uses a value only a skipped write would produce")
        .stdout_has("  | counted 1, read <dry-run: http::get.status> and <dry-run: http::get.status>")
        .stdout_has("  | tag <dry-run: http::post.json.tags[0]>")
        .stdout_has("  | raw <dry-run: http::post.body.parse_json().meta.id>, 1 kept, as JSON \"<dry-run: http::post.json.meta.id>\"")
        // The second step's write is planned with the parsed id.
        .stdout_has("  - [label] http::put → PUT ")
        .stdout_has("Dry run: 2 write(s) would have been made:");
    out.assert_absent("vendor-key-0123456789abcdef");
    // Only the read reached a vendor: nothing was sent to the scripted one.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("state.json")).unwrap())
            .unwrap();
    let vendors: Vec<&str> = state["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["vendor"].as_str().unwrap())
        .collect();
    assert_eq!(vendors, ["infisical"], "{state:#}");
}

/// A Secret joined to what a skipped write returned is refused under --dry-run as a real run
/// refuses joining it to the text that write returns: before, the placeholder took the Secret
/// and the dry run planned a script every real run fails at that line.
#[test]
fn a_dry_run_refuses_a_secret_joined_to_a_placeholder_as_the_run_would() {
    let runbook = r#"
runbook(#{ id: "join-dry", title: "Joins a Secret" });
param("url", #{ default: "https://vendor.example", env: "VENDOR_API_URL", help: "vendor API" });
step("create", "Create and join", |ctx| {
    let key = infisical::secret("VENDOR_KEY").value;
    let r = http::post(`${ctx.params.url}/tokens`, #{ basic: #{ user: "api", password: key }, json: #{} });
    let joined = key + r.json.meta.id;
}).no_undo("a test");
"#;
    let out = Test::new()
        .file("runbooks/join-dry.rhai", runbook)
        .file("runbooks/sandbox/join-dry.toml", SCENARIO)
        .args(&["exec", "join-dry", "--sandbox", "--dry-run"])
        .run();
    out.exit(Exit::StepFailed)
        .stderr_has("a Secret cannot be concatenated with a string");
    out.assert_absent("vendor-key-0123456789abcdef");
}

/// Under --dry-run a check after a skipped write is reported, not raised: a
/// `checks::wait_until` then stops waiting. Before, its failure returned into the loop,
/// which polled until the step's own limit (10 minutes by default); then it waited out its
/// own timeout (the IAM rotation's dry run, 30 s); now it stops at its first attempt.
#[test]
fn a_dry_run_wait_that_cannot_be_met_after_a_skipped_write_ends() {
    let runbook = r#"
import "std/checks" as checks;
runbook(#{ id: "dry-wait", title: "Waits on what a skipped write would do" });
step("create", "Create, then wait for it", |ctx| {
    let made = http::post("http://127.0.0.1:9/keys", #{ secrets: ["key"] }).json.key;
    checks::wait_until(|| made == secret::from_text("never"), #{ timeout: 1, interval: 1, what: "the key" });
}).no_undo("a test").timeout("20s");
"#;
    let out = with_script("exec", "dry-wait.rhai", runbook)
        .args(&["--dry-run"])
        .run();
    out.exit(Exit::Ok).stdout_has(
        "[dry-run] check not verifiable without the skipped writes: not met at the first attempt, and not waited for: the key needs the skipped writes",
    );
}

/// A run that takes the rotation while the production REPL asks "Write to PRODUCTION …?"
/// is not written beside once the operator says yes: the lock is read again after the
/// answer. Before, it was read only before the question, and the write went out beside the
/// run that had started meanwhile (cold review of team mode).
#[test]
fn a_run_that_took_the_rotation_while_the_repl_asked_is_not_written_beside() {
    let (url, count) = echo_server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rot.rhai"),
        "runbook(#{ id: \"rot\", title: \"Rot\", secret: \"ROT_KEY\" });\nstep(\"s\", \"S\", |ctx| { print(\"s\"); });\n",
    )
    .unwrap();
    // A run of the rotation killed after its step: its lock stays, its process gone.
    let killed = Test::in_dir(dir.path())
        .args(&["exec", "rot.rhai", "--yes"])
        .env("RUNBOOK_CRASH_AT", "after:s")
        .run();
    assert_eq!(killed.code, -9, "{}", killed.stderr);
    let go = dir.path().join("go");
    let reached = dir.path().join("go.reached");
    let t = Test::in_dir(dir.path())
        .args(&["repl", "rot.rhai"])
        .answers("\"repl.write\" = true\n")
        .env(
            "RUNBOOK_PAUSE_AT",
            &format!("repl-answered:{}", go.display()),
        );
    let line = format!("http::post(\"{url}/one\", #{{ json: #{{}} }});\n");
    let mut repl = crate::support::fed(&t, line.as_bytes());
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !reached.exists() {
        if std::time::Instant::now() > bound || repl.try_wait().unwrap().is_some() {
            let _ = repl.kill();
            let out = repl.wait_with_output().unwrap();
            panic!(
                "the question was never answered:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::yield_now();
    }
    // Meanwhile a live run takes the rotation (here the lock made to name this test's own
    // process, alive).
    let lock = crate::support::lock_file(&dir.path().join("state/locks"));
    let mut holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    holder["pid"] = std::process::id().into();
    std::fs::write(&lock, holder.to_string()).unwrap();
    std::fs::write(&go, "").unwrap();
    let out = repl.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("http::post on POST {url}/one: not sent: run "))
            && stderr
                .contains("holds this rotation's lock and may be writing to the same targets now"),
        "{stderr}"
    );
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{stderr}"
    );
}

/// `:confirm always` is recorded: the run's journal says who turned the confirmation off
/// (a decision) and the audit log has a `repl.confirm` entry; a run `:load` starts while it
/// holds records it again. Before, nothing showed why the journal held production writes
/// nobody confirmed (cold review of the operator's view).
#[test]
fn confirm_always_at_the_repl_is_recorded_in_the_journal_and_the_audit_log() {
    let (url, count) = echo_server();
    let out = Test::new()
        .file(
            "x.rhai",
            "runbook(#{ id: \"x\", title: \"X\" });\nstep(\"s\", \"S\", |ctx| { print(\"s\"); });\n",
        )
        .args(&["repl", "--actor", "alice"])
        .stdin(&format!(
            ":confirm always\nhttp::post(\"{url}/one\", #{{ json: #{{}} }});\n:load x.rhai\nhttp::post(\"{url}/two\", #{{ json: #{{}} }});\n"
        ))
        .run();
    out.exit(Exit::Ok);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
    let audited = out.audited("repl.confirm");
    assert_eq!(
        audited.len(),
        2,
        "the session's run, then the loaded one's: {audited:?}"
    );
    assert!(
        audited.iter().all(|e| e["context"]["always"] == true
            && e["context"]["production"] == true
            && e["actor"] == "alice"),
        "{audited:?}"
    );
    let runs: Vec<&str> = audited
        .iter()
        .map(|e| e["run_id"].as_str().unwrap())
        .collect();
    assert_ne!(runs[0], runs[1], "{audited:?}");
    let journal = out.journal();
    assert!(
        journal.contains("\"id\":\"repl.confirm\"") && journal.contains("\"answer\":\"always\""),
        "{journal}"
    );
}
