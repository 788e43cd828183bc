//! `run::together` (issue 31): independent reads of one step sent at once; anything else
//! runs once, in its turn.

use crate::support::{canary_scenario, items, served, Exit, Test};
use serde_json::Value;

/// Every call waits: reads sent one after another could not overlap.
const SLOW: &str = "faults = [\"postmark=latency=150\", \"heroku=latency=150\"]\n";

const RUNBOOK: &str = r#"
runbook(#{ id: "together", title: "Reads sent together" });

fn token_of(ctx) {
    print("token_of ran");
    ctx.token
}

step("read", "Read at every vendor at once", |ctx| {
    ctx.token = infisical::secret("POSTMARK_SERVER_TOKEN").value;
    let apps = ["raxx-api-prod", "raxx-api-staging"];
    let r = run::together([
        || postmark::server(ctx.token),
        || heroku::configs(apps),
        || { print("in turn"); heroku::scopes() },
        || postmark::token_status(token_of(ctx)),
    ]);
    print(`server ${r[0].Name}; apps ${r[1].keys().len()}; scopes ${r[2]}; status ${r[3]}`);
}).no_undo("reads only");

step("stale", "A read sent before a write or with other arguments is read again", |ctx| {
    let a = secret::from_text("together-value-a-0123456789");
    let b = secret::from_text("together-value-b-0123456789");
    infisical::set_secret("TOGETHER_X", a, #{});
    // Sent before the write (it would answer a); taken after it: read again, b.
    let r = run::together([
        || infisical::set_secret("TOGETHER_X", b, #{}),
        || infisical::secret("TOGETHER_X"),
    ]);
    print(`after the write: ${secret::fingerprint(r[1].value) == secret::fingerprint(b)}`);
    // Sent with the current token (200); the argument changed before it is taken: read again.
    let t = ctx.token;
    let bogus = secret::from_text("not-a-postmark-token-0123456789");
    let r = run::together([
        || { t = bogus; },
        || postmark::token_status(t),
    ]);
    print(`after the change: ${r[1]}`);
}).no_undo("a test");

step("refused", "Nesting is refused", |ctx| {
    let e = "";
    try {
        run::together([|| run::together([])]);
    } catch (err) {
        e = err.message;
    }
    print(`nested: ${e}`);
    try {
        run::together([1]);
    } catch (err) {
        e = err.message;
    }
    print(`not a function: ${e}`);
}).no_undo("reads only");
"#;

fn requests<'a>(state: &'a Value, method: &str, path: &str) -> Vec<&'a Value> {
    items(&state["requests"])
        .iter()
        .filter(|r| r["method"] == method && r["path"] == path)
        .collect()
}

fn span(r: &Value) -> (u64, u64) {
    (
        r["start_us"].as_u64().unwrap(),
        r["end_us"].as_u64().unwrap(),
    )
}

/// Runs runbook `id` (its text `runbook`) in a sandbox whose vendors answer after the
/// latency `faults` say (`faults = [...]` of a scenario), keeping the sandbox's state.
fn run_slow(id: &str, runbook: &str, faults: &str) -> crate::support::Output {
    Test::new()
        .file(&format!("runbooks/{id}.rhai"), runbook)
        .file("scenario.toml", &format!("{faults}{}", canary_scenario()))
        .args(&[
            "exec",
            id,
            "--sandbox",
            "--yes",
            "--scenario",
            "scenario.toml",
        ])
        .keep_sandbox_state()
        .run()
}

#[test]
fn single_reads_are_sent_at_once_and_everything_else_runs_once_in_its_turn() {
    let out = run_slow("together", RUNBOOK, SLOW);
    out.exit(Exit::Ok)
        .stdout_has("server raxx-prod; apps 2; scopes [\"global\"]; status 200")
        .stdout_has("after the write: true")
        .stdout_has("after the change: 401")
        .stdout_has("nested: run::together cannot be nested")
        .stdout_has("not a function: run::together takes an array of functions (|| ...)");
    // A function that is more than one read ran once: its print, and the call in the
    // arguments of the last one, each shown once.
    assert_eq!(out.stdout.matches("in turn").count(), 1, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("token_of ran").count(),
        1,
        "{}",
        out.stdout
    );

    let state = out.sandbox_state();
    let servers = requests(&state, "GET", "/server");
    // The first step's two reads (none sent twice); then the stale step's status with the
    // changed token (the one sent ahead with the current token is abandoned when it is not
    // taken, whether or not it reached Postmark).
    assert!(
        servers[2..].iter().any(|r| r["status"] == 401),
        "{servers:?}"
    );
    assert_eq!(
        servers[..2].iter().filter(|r| r["status"] == 200).count(),
        2
    );
    let server = span(servers[0]);
    let configs: Vec<(u64, u64)> = ["raxx-api-prod", "raxx-api-staging"]
        .iter()
        .map(|app| {
            let r = requests(&state, "GET", &format!("/apps/{app}/config-vars"));
            assert_eq!(r.len(), 1, "{app}");
            span(r[0])
        })
        .collect();
    // The two single reads overlapped: each was sent before the other was answered.
    for c in &configs {
        assert!(
            c.0 < server.1 && server.0 < c.1,
            "server {server:?}, config {c:?}"
        );
    }
    // The others ran in their turn, after the answers before them.
    let scopes = requests(&state, "GET", "/oauth/authorizations");
    assert_eq!(scopes.len(), 1);
    let scopes = span(scopes[0]);
    assert!(configs.iter().all(|c| c.1 <= scopes.0));
    assert!(scopes.1 <= span(servers[1]).0);
}

/// An import cannot take a host module's name: every `heroku::` call would reach the script,
/// and `run::together` would run it twice taking it for a read.
#[test]
fn an_import_under_a_host_modules_name_is_refused() {
    let out = Test::new()
        .file(
            "runbooks/shadow.rhai",
            "import \"helpers\" as heroku;\nrunbook(#{ id: \"shadow\", title: \"Shadow\" });\nstep(\"s\", \"S\", |ctx| { heroku::configs([]); }).no_undo(\"a test\");\n",
        )
        .file("runbooks/helpers.rhai", "fn configs(apps) { print(\"script\"); }\n")
        .args(&["check", "runbooks/shadow.rhai"])
        .run();
    out.exit(Exit::Usage);
    assert!(
        out.stderr.contains(
            "import \"helpers\" as heroku: heroku is a host module; import it under another name"
        ),
        "{}",
        out.stderr
    );
}

const SEARCH: &str = r#"
import "std/consumers" as consumers;
runbook(#{ id: "search", title: "Discovery sent before the value is read" });

fn options() {
    #{ name: "POSTMARK_SERVER_TOKEN", listed: #{ heroku: ["raxx-api-prod"] }, envs: ["prod"], github: false, scopes: true }
}

fn say(found) {
    let held = found.places.filter(|p| p.vendor == "heroku").map(|p| `${p.place}:${p.var}`);
    held.sort();
    print(`heroku holders: ${held}; scopes ${found.heroku_scopes}`);
}

step("search", "Search while the token is read", |ctx| {
    let s = consumers::search(options());
    let token = infisical::secret("POSTMARK_SERVER_TOKEN").value;
    say(consumers::found(s, token));
    let e = "";
    try { consumers::found(s, token); } catch (err) { e = err.message; }
    print(`again: ${e}`);
}).no_undo("reads only");

step("stale", "A write between the halves searches again", |ctx| {
    let s = consumers::search(options());
    let token = infisical::secret("POSTMARK_SERVER_TOKEN").value;
    heroku::set_config("raxx-api-staging", #{ OTHER_COPY: token });
    say(consumers::found(s, token));
}).no_undo("a test");
"#;

/// Before: the precheck read the stored token, and only then could discovery start
/// listing (it took the token as an argument): two rounds one after the other.
#[test]
fn discovery_lists_while_the_value_is_read_and_searches_again_after_a_write() {
    let slow = "faults = [\"infisical=latency=150\", \"heroku=latency=150\"]\n";
    let out = run_slow("search", SEARCH, slow);
    out.exit(Exit::Ok)
        .stdout_has(
            "heroku holders: [\"raxx-api-prod:POSTMARK_SERVER_TOKEN\", \"raxx-api-staging:POSTMARK_SERVER_TOKEN\"]; scopes [\"global\"]",
        )
        .stdout_has("again: scan::found: this search has been finished already (scan::begin again)")
        .stdout_has(
            "heroku holders: [\"raxx-api-prod:POSTMARK_SERVER_TOKEN\", \"raxx-api-staging:OTHER_COPY\", \"raxx-api-staging:POSTMARK_SERVER_TOKEN\"]",
        );
    let state = out.sandbox_state();
    let secret = requests(&state, "GET", "/api/v4/secrets/POSTMARK_SERVER_TOKEN");
    let first = span(secret[0]);
    // The listings went out while the token was read: each was sent before it was answered.
    for (method, path) in [
        ("GET", "/apps"),
        ("GET", "/oauth/authorizations"),
        ("GET", "/api/v4/secrets"),
    ] {
        let r = span(requests(&state, method, path)[0]);
        assert!(
            r.0 < first.1 && first.0 < r.1,
            "{path}: {r:?}, secret {first:?}"
        );
    }
    // Each app's config: once for the first search, maybe once for the second (abandoned
    // when the write made it stale) and once more after the write, read again.
    let write = span(requests(&state, "PATCH", "/apps/raxx-api-staging/config-vars")[0]);
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        let configs = requests(&state, "GET", &format!("/apps/{app}/config-vars"));
        let after = configs.iter().filter(|r| span(r).0 >= write.1).count();
        assert_eq!(after, 1, "{app}: {configs:?}");
        assert!((2..=3).contains(&configs.len()), "{app}: {configs:?}");
    }
}

const LOGS: &str = r#"
import "std/checks" as checks;
runbook(#{ id: "logs", title: "Log sessions opened before the email, read after it", egress: ["param:raptor_url"] });
param("raptor_url", #{ default: "https://api.raxx.app", env: "RAPTOR_API_URL", help: "Raptor" });

step("email", "Email, then the logs", |ctx| {
    // As in the Postmark runbook, discovery has listed the apps (and their generation).
    heroku::holders(infisical::secret("POSTMARK_SERVER_TOKEN").value, #{});
    // An app named twice has one session.
    let sessions = heroku::log_sessions(["raxx-api-prod", "raxx-api-staging", "raxx-api-prod"], #{ lines: 50 });
    let r = http::post(`${ctx.params.raptor_url}/raxx-api-prod/api/notifications/test-email`, #{
        json: #{ to: "rehearsal@sandbox.invalid", subject: "sessions" },
    });
    let id = checks::expect_status(r, 200, "Raptor test email").MessageID;
    let logs = heroku::read_logs(sessions);
    print(`the email in prod's log: ${logs["raxx-api-prod"].lines.some(|l| l.contains(`MessageID=${id}`))}`);
    print(`staging read: ${"lines" in logs["raxx-api-staging"]}`);
    let e = "";
    try { heroku::read_logs(sessions); } catch (err) { e = err.message; }
    print(`again: ${e}`);
}).no_undo("an email and reads");
"#;

/// Before: verify opened each app's log session only after Raptor's test email had been
/// answered, then read it: three rounds where two do, since a session's lines are those
/// logged when it is read.
#[test]
fn log_sessions_open_during_the_email_and_are_read_after_it() {
    // 400 ms, not 150 as elsewhere: the email's record is fsynced before it is sent, and on
    // a machine busy writing (CI compiling beside the tests) one fsync took 290 ms, so the
    // email went out after the sessions had been answered.
    let slow = "faults = [\"heroku=latency=400\", \"raptor=latency=400\"]\n";
    let out = run_slow("logs", LOGS, slow);
    out.exit(Exit::Ok)
        .stdout_has("the email in prod's log: true")
        .stdout_has("staging read: true")
        .stdout_has("again: heroku::read_logs: these log sessions have been read already (heroku::log_sessions again)");
    let state = out.sandbox_state();
    let email = span(
        requests(
            &state,
            "POST",
            "/raxx-api-prod/api/notifications/test-email",
        )[0],
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        let open = requests(&state, "POST", &format!("/apps/{app}/log-sessions"));
        assert_eq!(open.len(), 1, "{app}");
        let open = span(open[0]);
        // Opened while the email was on its way: each sent before the other was answered.
        assert!(
            open.0 < email.1 && email.0 < open.1,
            "{app}: session {open:?}, email {email:?}"
        );
    }
    // Read after the email was answered, one read per session.
    let reads: Vec<&Value> = items(&state["requests"])
        .iter()
        .filter(|r| {
            r["method"] == "GET" && r["path"].as_str().unwrap_or("").starts_with("/sessions/")
        })
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.iter().all(|r| span(r).0 >= email.1), "{reads:?}");
}

/// Before: the AWS runbook's precheck and verify, the Infisical re-sync's read and Twilio's
/// precheck read the apps' configs one after another, a round per app. Each now reads
/// every app's config at once.
#[test]
fn shipped_runbooks_read_every_apps_config_at_once() {
    for name in ["aws-iam-access-key", "infisical-sync", "twilio-auth-token"] {
        let mut test = Test::new().rehearse(name).keep_sandbox_state();
        if name == "aws-iam-access-key" {
            // Its judgement (`--yes` does not give it) comes from a file.
            test = test.answers("\"deactivate.healthy\" = true\n");
        }
        let out = test.args(&["--yes", "--fault", "heroku=latency=200"]).run();
        out.exit(Exit::Ok);
        let state = out.sandbox_state();
        let reads: Vec<(&str, (u64, u64))> = items(&state["requests"])
            .iter()
            .filter(|r| r["method"] == "GET")
            .filter_map(|r| {
                let app = r["path"].as_str()?.strip_prefix("/apps/")?;
                let app = app.strip_suffix("/config-vars")?;
                Some((app, span(r)))
            })
            .collect();
        // Each app's n-th read, for every n all of them have (the precheck's or the
        // re-sync's; AWS's verify, Twilio's own precheck after discovery): all at once.
        let mut apps: Vec<&str> = reads.iter().map(|r| r.0).collect();
        apps.sort();
        apps.dedup();
        assert!(apps.len() >= 2, "{name}: {reads:?}");
        let nth = |app: &str| -> Vec<(u64, u64)> {
            reads.iter().filter(|r| r.0 == app).map(|r| r.1).collect()
        };
        let rounds = apps.iter().map(|a| nth(a).len()).min().unwrap();
        for n in 0..rounds {
            let spans: Vec<(u64, u64)> = apps.iter().map(|a| nth(a)[n]).collect();
            assert!(
                spans
                    .iter()
                    .all(|a| spans.iter().all(|b| a.0 < b.1 && b.0 < a.1)),
                "{name}: read {n} of each app: {reads:?}"
            );
        }
    }
}

/// Before: verify read every app's newest release, waited for the answer, then polled the
/// dynos (two rounds), and the stdlib's wait did the same. `heroku::wait_up` with
/// `releases: "newest"` reads the release beside the first dyno poll: one round. And it read
/// every app's formation, which only a list with a one-off's type, or none, needs: one
/// request per app of Heroku's pool.
#[test]
fn the_rotation_reads_each_apps_release_beside_its_first_dyno_poll() {
    let out = Test::new()
        .rehearse("postmark")
        .keep_sandbox_state()
        .args(&["--yes", "--fault", "heroku=latency=150"])
        .run();
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        let releases = requests(&state, "GET", &format!("/apps/{app}/releases"));
        let dynos = requests(&state, "GET", &format!("/apps/{app}/dynos"));
        assert!(!releases.is_empty() && !dynos.is_empty(), "{app}");
        let (release, dyno) = (span(releases[0]), span(dynos[0]));
        // Each sent before the other was answered.
        assert!(
            release.0 < dyno.1 && dyno.0 < release.1,
            "{app}: release {release:?}, dynos {dyno:?}"
        );
        // No second read of the release before the dynos are up: one poll did it.
        assert_eq!(releases.len(), 1, "{app}: {releases:?}");
        // web.1 only: no formation needed to tell it from a one-off.
        let formation = requests(&state, "GET", &format!("/apps/{app}/formation"));
        assert!(formation.is_empty(), "{app}: {formation:?}");
    }
}

/// A search or log sessions under way live in the process: the journal keeps ctx as data,
/// so kept in ctx they came back from a crash as text, and the resumed step failed on a
/// string where it wanted them. Keeping one in ctx is refused where it is written.
#[test]
fn a_search_or_log_sessions_under_way_cannot_be_kept_in_ctx() {
    let runbook = r#"runbook(#{ id: "keep", title: "Keep handles" });
step("keep", "Keep them", |ctx| {
    let apps = ["raxx-api-prod"];
    try {
        ctx.sessions = heroku::log_sessions(apps, #{ lines: 10 });
    } catch (e) {
        print(`sessions: ${e.message} / ${e.help}`);
    }
    try {
        ctx.nested = #{ pending: [scan::begin(#{ heroku: true })] };
    } catch (e) {
        print(`search: ${e.message}`);
    }
    print(`kept: ${ctx.keys()}`);
}).no_undo("a test");
"#;
    let out = run_slow("keep", runbook, "");
    out.exit(Exit::Ok)
        .stdout_has("sessions: ctx.sessions holds Heroku log sessions being opened: it lives in this process only and would not survive a crash and resume / keep them in a variable of the step that reads them (heroku::read_logs)")
        .stdout_has("search: ctx.nested holds a discovery search under way: it lives in this process only")
        .stdout_has("kept: [\"params\"]");
}

/// The formation is read for an app whose dynos need it, and only for that one: a `run.1`
/// (a console) is a one-off only if the formation runs no `run` process, which only the
/// formation says. The wait passes without waiting for it.
#[test]
fn the_formation_is_read_for_an_app_listing_a_one_off() {
    let scenario = crate::support::canary_with(
        "name = \"raxx-api-staging\"\n",
        "name = \"raxx-api-staging\"\ndynos = [\"web.1\", \"run.1\"]\n",
    );
    let out = Test::new()
        .rehearse("postmark")
        .scenario("oneoff.toml", &scenario)
        .keep_sandbox_state()
        .args(&["--yes"])
        .run();
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let read = |app: &str| requests(&state, "GET", &format!("/apps/{app}/formation")).len();
    assert_eq!(read("raxx-api-staging"), 1);
    assert_eq!(read("raxx-api-prod"), 0);
}

const REACH: &str = r#"
runbook(#{ id: "reach", title: "What a write may change", egress: ["param:raptor_url"] });
param("raptor_url", #{ default: "https://api.raxx.app", env: "RAPTOR_API_URL", help: "Raptor" });

step("reach", "Reads sent before a write", |ctx| {
    let token = infisical::secret("POSTMARK_SERVER_TOKEN").value;
    let prod = ["raxx-api-prod"];
    let staging = ["raxx-api-staging"];
    let v = secret::from_text("together-reach-value-0123456789");
    // A write at Infisical: Postmark's answer stands; Heroku's is read again (Infisical
    // syncs secrets into it).
    run::together([
        || infisical::set_secret("REACH_X", v, #{}),
        || postmark::server(token),
        || heroku::configs(prod),
    ]);
    print("infisical written");
    // A call to any other service may change anything, unless it says what it changes.
    let url = `${ctx.params.raptor_url}/raxx-api-staging/api/notifications/test-email`;
    let email = #{ to: "rehearsal@sandbox.invalid", subject: "reach" };
    run::together([|| http::post(url, #{ json: email }), || heroku::configs(staging)]);
    print("raptor 1");
    run::together([|| http::post(url, #{ json: email, changes: ["postmark"] }), || heroku::configs(staging)]);
    print("raptor 2");
    let e = "";
    try { http::post(url, #{ json: email, changes: ["mailgun"] }); } catch (err) { e = err.message; }
    print(`unknown: ${e}`);
    try { http::get(url, #{ changes: ["postmark"] }); } catch (err) { e = err.message; }
    print(`on a read: ${e}`);
}).no_undo("a test");
"#;

/// Before: any write made every read sent before it stale, so a read at Postmark sent
/// beside the staging write at Infisical was sent again, a round for nothing. A write now
/// spoils only the answers of the vendors it may change: its own, and for Infisical every
/// vendor it syncs secrets into; a call to another service, everything unless it says.
#[test]
fn a_read_stands_past_a_write_only_at_a_vendor_the_write_cannot_change() {
    let slow = "faults = [\"postmark=latency=150\", \"heroku=latency=150\", \"infisical=latency=150\", \"raptor=latency=150\"]\n";
    let out = run_slow("reach", REACH, slow);
    out.exit(Exit::Ok).stdout_has(
        "unknown: http::post: changes names 'mailgun', not one of postmark, infisical, heroku, github",
    )
    .stdout_has("on a read: http::get: changes is for a write: a read changes nothing");
    let state = out.sandbox_state();
    let write = span(requests(&state, "POST", "/api/v4/secrets/REACH_X")[0]);
    // Postmark: the read sent before the write is taken; none is sent after it.
    let servers = requests(&state, "GET", "/server");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert!(span(servers[0]).0 < write.1, "{servers:?}");
    // Heroku: read again once the write was answered.
    let prod = requests(&state, "GET", "/apps/raxx-api-prod/config-vars");
    assert!(prod.iter().any(|r| span(r).0 >= write.1), "{prod:?}");
    let posts = requests(
        &state,
        "POST",
        "/raxx-api-staging/api/notifications/test-email",
    );
    assert_eq!(posts.len(), 2, "{posts:?}");
    let (first, second) = (span(posts[0]), span(posts[1]));
    let staging = requests(&state, "GET", "/apps/raxx-api-staging/config-vars");
    // Without `changes`: read again after the call.
    assert!(
        staging
            .iter()
            .any(|r| span(r).0 >= first.1 && span(r).1 <= second.0),
        "{staging:?}"
    );
    // With `changes: ["postmark"]`: the read sent beside it stands.
    assert!(staging.iter().all(|r| span(r).0 < second.1), "{staging:?}");
    assert!(
        staging
            .iter()
            .any(|r| span(r).0 >= first.1 && span(r).0 < second.1 && span(r).1 > second.0),
        "{staging:?}"
    );
}

/// Before: the rotation's staging write and the new token's check, its staging removal and
/// the apps' changes, and verify's config read-back and Raptor's email each went one after
/// the other: three rounds where the vendors could answer at once.
#[test]
fn the_rotation_sends_its_independent_calls_of_a_step_at_once() {
    let out = Test::new()
        .rehearse("postmark")
        .keep_sandbox_state()
        .args(&[
            "--yes",
            "--fault",
            "heroku=latency=150",
            "--fault",
            "infisical=latency=150",
            "--fault",
            "postmark=latency=150",
            "--fault",
            "raptor=latency=150",
        ])
        .run();
    out.exit(Exit::Ok);
    let state = out.sandbox_state();
    let overlap = |a: (u64, u64), b: (u64, u64)| a.0 < b.1 && b.0 < a.1;
    // generate: the new token's check at Postmark beside the staging write.
    let staged = span(
        requests(
            &state,
            "POST",
            "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING",
        )[0],
    );
    let servers = requests(&state, "GET", "/server");
    assert!(
        servers.iter().any(|r| overlap(span(r), staged)),
        "{servers:?}"
    );
    // ... and taken: not sent again once the write was answered, before the test email.
    let sent = span(requests(&state, "POST", "/email")[0]);
    assert!(
        !servers
            .iter()
            .any(|r| span(r).0 >= staged.1 && span(r).0 < sent.0),
        "{servers:?}"
    );
    // propagate: the staging removal beside every app's change.
    let removed = requests(
        &state,
        "DELETE",
        "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING",
    );
    assert_eq!(removed.len(), 1, "{removed:?}");
    let removed = span(removed[0]);
    let email = span(requests(&state, "POST", "/api/notifications/test-email")[0]);
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        let patch = requests(&state, "PATCH", &format!("/apps/{app}/config-vars"));
        assert_eq!(patch.len(), 1, "{app}");
        assert!(
            overlap(span(patch[0]), removed),
            "{app}: {patch:?} {removed:?}"
        );
        // verify: the config read back while Raptor sends, once.
        let reads = requests(&state, "GET", &format!("/apps/{app}/config-vars"));
        let after: Vec<_> = reads
            .iter()
            .filter(|r| span(r).0 > span(patch[0]).1)
            .collect();
        assert_eq!(after.len(), 1, "{app}: {reads:?}");
        assert!(overlap(span(after[0]), email), "{app}: {after:?} {email:?}");
    }
    // Its outcome was recorded like any write's.
    out.stdout_has("  propagate · infisical::delete_secret on POSTMARK_SERVER_TOKEN_PENDING in raxx-project:prod/: applied");
}

/// Ctrl-C once propagate's calls are sent ahead: the staging removal has left, the apps'
/// changes have not. The removal is recorded as what it is, a write that may have applied
/// (before, it stayed journalled as sent with no outcome, or was recorded as refused), and
/// nothing else is sent.
#[test]
fn ctrl_c_after_a_write_was_sent_ahead_records_it_as_maybe_applied() {
    let out = Test::new()
        .rehearse("postmark")
        .keep_sandbox_state()
        .env("RUNBOOK_INTERRUPT_AT", "together:propagate")
        .args(&["--yes"])
        .run();
    out.exit(Exit::Interrupted);
    // Every write journalled as sent has its outcome (`SettledWrites::of` checks).
    let writes = SettledWrites::of(&out.journal());
    assert_eq!(
        writes.outcomes("infisical::delete_secret"),
        ["unknown"],
        "{}",
        writes.journal
    );
    let state = out.sandbox_state();
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert!(
            requests(&state, "PATCH", &format!("/apps/{app}/config-vars")).is_empty(),
            "{app}"
        );
    }
}

/// Ctrl-C as propagate comes to wait for the staging removal's answer (sent ahead, slow to
/// answer), after the apps' changes were made: there is no wait, the answer is not taken;
/// the removal is recorded as a write that may have applied, and the apps' changes as
/// applied. (The seam raises Ctrl-C just before the wait: a Ctrl-C arriving during it takes
/// the runtime's other branch, which ends in the same error and is not exercised here.)
#[test]
fn ctrl_c_at_the_wait_for_a_write_sent_ahead_records_it_as_maybe_applied() {
    let pending = "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING";
    let out = Test::new()
        .rehearse("postmark")
        .keep_sandbox_state()
        .env("RUNBOOK_INTERRUPT_AT", "awaiting:propagate")
        .args(&[
            "--yes",
            "--fault",
            &format!("infisical:DELETE:{pending}=latency=30000"),
        ])
        .run();
    out.exit(Exit::Interrupted);
    let writes = SettledWrites::of(&out.journal());
    let journal = &writes.journal;
    assert_eq!(
        writes.outcomes("infisical::delete_secret"),
        ["unknown"],
        "{journal}"
    );
    assert_eq!(
        writes.outcomes("heroku::set_config"),
        ["applied", "applied"],
        "{journal}"
    );
    // The run did not wait out the 30 s answer: the removal had not been answered when it
    // stopped (a request is logged once answered), and the copy is still there.
    let state = out.sandbox_state();
    assert!(requests(&state, "DELETE", pending).is_empty(), "{state}");
    let copy_left = items(&state["infisical"]["secrets"])
        .iter()
        .any(|s| s["secretKey"] == "POSTMARK_SERVER_TOKEN_PENDING" && s["deleted"] != true);
    assert!(copy_left, "the staging copy is gone");
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            requests(&state, "PATCH", &format!("/apps/{app}/config-vars")).len(),
            1,
            "{app}"
        );
    }
}

/// A run's journal, checked to hold one outcome for every write journalled as sent.
struct SettledWrites {
    journal: String,
    lines: Vec<Value>,
}

impl SettledWrites {
    fn of(journal: &str) -> SettledWrites {
        let lines: Vec<Value> = journal
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let count = |kind: &str| lines.iter().filter(|l| l["type"] == kind).count();
        assert_eq!(
            count("write"),
            count("write_outcome"),
            "a write journalled as sent has no outcome: {journal}"
        );
        SettledWrites {
            journal: journal.to_string(),
            lines,
        }
    }

    /// The outcomes recorded for `function`'s writes, once each was checked to be sent once.
    fn outcomes(&self, function: &str) -> Vec<String> {
        let of = |kind: &str| -> Vec<&Value> {
            self.lines
                .iter()
                .filter(|l| l["type"] == kind && l["function"] == function)
                .collect()
        };
        let settled = of("write_outcome");
        assert_eq!(of("write").len(), settled.len(), "{}", self.journal);
        settled
            .iter()
            .map(|w| w["outcome"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Ctrl-C while one app's change is in flight (a fan-out over apps, one record per app):
/// every app journalled as sent gets its outcome and its audit entry, as a single write
/// does: the app that answered is applied, the one still out unknown. Before, the fan-out
/// returned before recording them.
#[test]
fn ctrl_c_during_a_fan_out_records_every_target_sent() {
    let rig = crate::support::Rig::new();
    rig.sandbox
        .add_fault("heroku:PATCH:/apps/raxx-api-prod/config-vars=latency=30000");
    let mut cmd = rig.command(&["exec", "postmark", "--yes"], &[]);
    cmd.stderr(std::process::Stdio::null());
    let (mut child, _lines) = crate::support::start_until(&mut cmd, "propagate");
    // Both apps' changes go out together, once both records are durable; an outcome is
    // recorded as its answer comes. Once staging's is in the journal, prod's change is out.
    let settled =
        "\"type\":\"write_outcome\",\"step\":\"propagate\",\"function\":\"heroku::set_config\"";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !rig.journal().contains(settled) {
        assert!(
            std::time::Instant::now() < deadline,
            "no app's change was answered"
        );
        std::thread::yield_now();
    }
    crate::support::signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let journal = rig.journal();
    let writes = SettledWrites::of(&journal);
    let set = writes.outcomes("heroku::set_config");
    assert_eq!(set, ["applied", "unknown"], "{}", writes.journal);
    let outcome_of = |app: &str| {
        journal
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["type"] == "write_outcome" && e["target"] == app)
            .map(|e| e["outcome"].clone())
    };
    assert_eq!(outcome_of("raxx-api-staging"), Some("applied".into()));
    assert_eq!(outcome_of("raxx-api-prod"), Some("unknown".into()));
    let audit = crate::support::audit_entries(rig.path());
    let audited = audit
        .iter()
        .filter(|e| e["context"]["function"] == "heroku::set_config")
        .count();
    assert_eq!(audited, 2, "every app's change is audited");
}

/// The record of the staging copy's removal, which `run::together` sends ahead of the apps'
/// changes in propagate (the run's fifth write), is refused (the state store cannot keep
/// it). Before, the first pass dropped that stop as an ordinary error: the second pass ran
/// every function, and the removal and the apps' config changes went out after the run had
/// found it could not record (cold review). Now the step stops there.
#[test]
fn a_record_refused_in_the_first_pass_stops_the_step_before_any_other_write() {
    let out = Test::new()
        .rehearse("postmark")
        .canary()
        .args(&["--yes"])
        .keep_sandbox_state()
        .env("RUNBOOK_REFUSE_WRITE_AT", "5")
        .run();
    out.stderr_has("Step 'propagate' stopped before its write: the write was not sent because its record could not be stored");
    let state = out.sandbox_state();
    assert_eq!(
        served(
            &state,
            "DELETE",
            "/api/v4/secrets/POSTMARK_SERVER_TOKEN_PENDING"
        ),
        0
    );
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        assert_eq!(
            served(&state, "PATCH", &format!("/apps/{app}/config-vars")),
            0,
            "{app} was changed after the run could not record:\n{}",
            out.stderr
        );
    }
}
