//! Vendors' rate limits as the sandbox models them: the engine paces a fan-out to Heroku's
//! request pool instead of spending it into 429s, and the report says how long it waited.

use crate::support::{root, Exit, Output, Test};

/// The SOP's secret and `apps` Heroku apps (boot 0), under a pool of `capacity` requests
/// refilled at `per_minute`.
fn scenario(apps: usize, capacity: u32, per_minute: u32) -> String {
    let mut s = format!(
        "[postmark]\ntoken_limit = 3\n[[postmark.servers]]\nname = \"raxx-prod\"\nid = 4242\n\
         [infisical]\nproject_id = \"raxx-project\"\n[[infisical.secrets]]\nname = \"POSTMARK_SERVER_TOKEN\"\n\
         versions = [\"@random\", \"@postmark:raxx-prod\"]\n\
         [heroku.rate_limit]\ncapacity = {capacity}\nper_minute = {per_minute}\n"
    );
    for i in 1..=apps {
        s.push_str(&format!(
            "[[heroku.apps]]\nname = \"app-{i:04}\"\nconfig = {{ POSTMARK_SERVER_TOKEN = \"@postmark:raxx-prod\" }}\nboot_ms = 0\n"
        ));
    }
    s
}

fn fan_out(apps: usize, env: &[(&str, &str)]) -> Output {
    let mut t = Test::new()
        .args(&["exec"])
        .arg(root().join("benches/fanout.rhai"))
        .args(&["--sandbox"])
        .scenario("pool.toml", &scenario(apps, 20, 600))
        .args(&["--yes", "--json", "--param", &format!("count={apps}")])
        .keep_sandbox_state();
    for (k, v) in env {
        t = t.env(k, v);
    }
    t.run()
}

/// 40 config changes against a pool of 20 that refills 10 a second: sent as fast as the
/// fan-out allows, the pool answers 429 (the unpaced run shows it); paced, every request
/// waits for a token the pool has, none is refused, and the report says how long it waited.
#[test]
fn a_fan_out_is_paced_to_the_heroku_pool_and_never_refused() {
    let out = fan_out(40, &[]);
    out.exit(Exit::Ok)
        .stderr_has("s for vendor rate limits (requests paced to Heroku's pool");
    let state = out.sandbox_state();
    assert_eq!(
        state["heroku"]["rate_limit"]["refused"], 0,
        "{}",
        state["heroku"]["rate_limit"]
    );
    let waited = out.report()["rate_limit_wait_ms"].as_u64().unwrap_or(0);
    // 20 of the 40 must wait for the refill: about 2 s at 10 a second.
    assert!(waited >= 1_000, "waited {waited} ms");
    for i in 1..=40 {
        let app = format!("app-{i:04}");
        assert_eq!(state["heroku"]["apps"][&app]["restarts"], 1, "{app}");
    }

    // Without pacing the same fan-out spends the pool and collects 429s.
    let out = fan_out(40, &[("RUNBOOK_HEROKU_REFILL_PER_MINUTE", "0")]);
    let state = out.sandbox_state();
    assert!(
        state["heroku"]["rate_limit"]["refused"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        state["heroku"]["rate_limit"]
    );
}
