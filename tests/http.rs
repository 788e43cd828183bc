//! `http::` for vendors without a module: credentials from Secrets (bearer, basic), response
//! fields declared secret, against a scripted simulator.

use crate::support::Exit;
use crate::support::Test;

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
