//! The clients against the simulators: what a run sees end to end, the downstream app's
//! behaviour through Heroku, and that no credential leaks into an error.

use crate::heroku::ConfigValue;
use crate::testkit::{config, fast, keys, raw, sorted, start};
use crate::{ErrorKind, VendorConfig, Vendors};
use runbook_sandbox::{FaultRule, Sandbox, Scenario};
use runbook_secret::{Secret, Source};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

#[tokio::test]
async fn env_points_vendor_config_at_the_simulators() {
    let sb = Sandbox::start(Scenario::default()).await.unwrap();
    let env: HashMap<String, String> = sb.env().into_iter().collect();
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "GITHUB_API_URL",
            "GITHUB_TOKEN",
            "HEROKU_API_KEY",
            "HEROKU_HOST",
            "INFISICAL_DISABLE_UPDATE_CHECK",
            "INFISICAL_DOMAIN",
            "INFISICAL_PROJECT_ID",
            "INFISICAL_TOKEN",
            "POSTMARK_API_URL",
            "POSTMARK_DASHBOARD_URL",
            "POSTMARK_TEST_RECIPIENT",
            "RAPTOR_API_URL",
            "RUNBOOK_HEROKU_PREBOOT_WINDOW",
            "RUNBOOK_HEROKU_REFILL_PER_MINUTE",
        ]
    );
    let cfg = VendorConfig::from_env(|k| env.get(k).cloned()).unwrap();
    assert_eq!(cfg.infisical.api_url, format!("{}/api", sb.infisical_url()));
    assert_eq!(
        cfg.postmark.dashboard_url,
        format!("{}/dashboard", sb.postmark_url())
    );
    let v = Vendors::new(fast(cfg)).unwrap();
    let token = v
        .infisical()
        .get_secret(
            &sb.infisical_project_id(),
            "prod",
            "/",
            "POSTMARK_SERVER_TOKEN",
            None,
        )
        .await
        .unwrap();
    let server = v.postmark().server(&token.value).await.unwrap();
    assert_eq!(server.name, "raxx-prod");
    assert_eq!(
        v.heroku()
            .config_vars("raxx-api-staging")
            .await
            .unwrap()
            .get("POSTMARK_SERVER_TOKEN"),
        Some(token.value.expose())
    );
}

#[tokio::test]
async fn state_reports_every_simulator() {
    let (sb, v) = start(Scenario::default().with_github_repo("raxx/raptor")).await;
    v.heroku().restart_all("raxx-api-prod").await.unwrap();
    let st = sb.state();
    assert_eq!(
        keys(&st),
        sorted(&[
            "downstream",
            "downstream_401s",
            "faults",
            "github",
            "heroku",
            "infisical",
            "postmark",
            "requests",
            "scripted"
        ])
    );
    assert_eq!(st["postmark"]["servers"][0]["Name"], "raxx-prod");
    assert_eq!(
        st["infisical"]["secrets"][0]["versions"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(st["heroku"]["apps"]["raxx-api-prod"]["restarts"], 1);
    assert!(st["heroku"]["apps"]["raxx-api-prod"]["releases"].is_array());
    assert!(st["github"]["repos"]["raxx/raptor"]["secrets"].is_object());
    assert_eq!(
        keys(&st["downstream"]),
        vec!["raxx-api-prod", "raxx-api-staging"]
    );
    let first = &st["requests"][0];
    let seen = ["vendor", "method", "path", "status", "fault"].map(|k| first[k].clone());
    assert_eq!(
        seen,
        [
            serde_json::json!("heroku"),
            serde_json::json!("DELETE"),
            serde_json::json!("/apps/raxx-api-prod/dynos"),
            serde_json::json!(202),
            serde_json::Value::Null
        ]
    );
    // When it arrived and left: what the benches read the critical path from.
    assert!(first["start_us"].as_u64() <= first["end_us"].as_u64());
}

/// No sandbox token or credential may appear in any error a client returns.
#[tokio::test]
async fn secrets_never_leak_into_vendor_errors() {
    const CANARIES: [&str; 5] = [
        "canary-pm-token-5d1f",
        "canary-pm-old-77ab",
        "canary-heroku-key-c0ffee",
        "canary-infisical-token-beef",
        "canary-github-token-f00d",
    ];
    let scenario = Scenario::default()
        .with_postmark_token(CANARIES[0])
        .with_old_token(CANARIES[1])
        .with_credentials(CANARIES[2], CANARIES[3], CANARIES[4])
        .with_github_repo("raxx/raptor");
    let (sb, v) = start(scenario).await;
    let pm = |t: &str| Secret::new(t, Source::Literal);
    sb.dashboard_generate_token("raxx-prod").unwrap();
    sb.dashboard_delete_token("raxx-prod", CANARIES[0]).unwrap();
    let mut errors = Vec::new();
    errors.push(v.postmark().server(&pm(CANARIES[0])).await.unwrap_err());
    errors.push(v.postmark().server(&pm(CANARIES[1])).await.unwrap_err());
    let bad_name = BTreeMap::from([(
        "BAD NAME".to_string(),
        Some(ConfigValue::from(&pm(CANARIES[0]))),
    )]);
    errors.push(
        v.heroku()
            .update_config_vars("raxx-api-prod", &bad_name)
            .await
            .unwrap_err(),
    );
    errors.push(v.heroku().config_vars("ghost").await.unwrap_err());
    errors.push(
        v.infisical()
            .get_secret("raxx-project", "qa", "/", "X", None)
            .await
            .unwrap_err(),
    );
    errors.push(
        v.github()
            .set_secret("raxx/raptor", "GITHUB_X", &pm(CANARIES[0]))
            .await
            .unwrap_err(),
    );
    sb.add_fault(FaultRule::parse("heroku=401").unwrap());
    errors.push(v.heroku().restart_all("raxx-api-prod").await.unwrap_err());
    // A vendor that echoes the token back in its message.
    let echo = crate::VendorError::new(
        "postmark",
        "GET",
        "/server",
        ErrorKind::Unauthorized,
        format!("token {} rejected", CANARIES[0]),
    );
    errors.push(echo);
    let server = v
        .postmark()
        .server(&pm(&sb.postmark_tokens("raxx-prod").unwrap()[0]))
        .await
        .unwrap();
    let record = v
        .infisical()
        .get_secret(
            "raxx-project",
            "prod",
            "/",
            "POSTMARK_SERVER_TOKEN",
            Some(1),
        )
        .await
        .unwrap();
    let vars = Vendors::new(config(&sb)).unwrap();
    let mut outputs = vec![
        format!("{server:?}"),
        format!("{record:?}"),
        format!("{vars:?}"),
        format!("{sb:?}"),
    ];
    for e in &errors {
        outputs.push(e.to_string());
        outputs.push(format!("{e:?}"));
        outputs.push(e.to_json().to_string());
        outputs.push(e.help_text());
    }
    for out in &outputs {
        for c in CANARIES {
            assert!(!out.contains(c), "{c} leaked in: {out}");
        }
    }
}

async fn test_email(sb: &Sandbox, path: &str) -> (u16, Value) {
    let resp = raw()
        .post(format!("{}{path}", sb.raptor_url()))
        .json(&json!({"to": "kris@moosequest.net", "subject": "rotation validation"}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn test_email_goes_through_postmark_and_is_logged() {
    let (sb, v) = start(Scenario::default().with_postmark_token("rp-cur-0001")).await;
    let (status, body) = test_email(&sb, "/api/notifications/test-email").await;
    assert_eq!(status, 200);
    let id = body["MessageID"].as_str().unwrap().to_string();
    let (status, _) = test_email(&sb, "/raxx-api-staging/api/notifications/test-email").await;
    assert_eq!(status, 200);
    let st = sb.state();
    assert_eq!(st["postmark"]["emails"]["by_token"]["rp-cur-0001"], 2);
    assert_eq!(st["postmark"]["messages"][0]["via"], "raptor:raxx-api-prod");
    let lines = v.heroku().log_lines("raxx-api-prod", 100).await.unwrap();
    assert!(lines
        .iter()
        .any(|l| l.ends_with(&format!("app[web.1]: postmark send ok MessageID={id}"))));
    assert_eq!(
        test_email(&sb, "/nope/api/notifications/test-email")
            .await
            .0,
        404
    );
}

/// Apps that restart at once: these tests are about which token an app uses, not its boot
/// (`heroku::routes` tests the boot).
fn instant_boot(mut s: Scenario) -> Scenario {
    for app in &mut s.heroku.apps {
        app.boot_ms = 0;
    }
    s
}

/// A rotation begun: the SOP's world with token `old` on apps that restart at once, and a
/// new token generated at the dashboard but not yet anywhere else.
async fn mid_rotation(old: &str) -> (Sandbox, Vendors, String) {
    let (sb, v) = start(instant_boot(Scenario::default().with_postmark_token(old))).await;
    let new = sb.dashboard_generate_token("raxx-prod").unwrap();
    (sb, v, new)
}

#[tokio::test]
async fn a_proper_rotation_never_fails_a_send() {
    let (sb, v, new) = mid_rotation("rp-old-0002").await;
    let secret = Secret::new(new.clone(), Source::Literal);
    let changes = BTreeMap::from([(
        "POSTMARK_SERVER_TOKEN".to_string(),
        Some(ConfigValue::from(&secret)),
    )]);
    for app in ["raxx-api-prod", "raxx-api-staging"] {
        v.heroku().update_config_vars(app, &changes).await.unwrap();
    }
    sb.dashboard_delete_token("raxx-prod", "rp-old-0002")
        .unwrap();
    let (status, _) = test_email(&sb, "/api/notifications/test-email").await;
    assert_eq!(status, 200);
    v.heroku().config_vars("raxx-api-prod").await.unwrap();
    let st = sb.state();
    assert_eq!(st["downstream_401s"], 0);
    assert_eq!(st["downstream"]["raxx-api-prod"]["failed"], 0);
    assert!(st["downstream"]["raxx-api-prod"]["sent"].as_u64().unwrap() >= 4);
    assert_eq!(st["postmark"]["emails"]["by_token"][&new], 1);
}

#[tokio::test]
async fn deleting_the_old_token_before_propagating_breaks_production() {
    let (sb, v) = start(Scenario::default().with_postmark_token("rp-old-0003")).await;
    sb.dashboard_generate_token("raxx-prod").unwrap();
    sb.dashboard_delete_token("raxx-prod", "rp-old-0003")
        .unwrap();
    let (status, body) = test_email(&sb, "/api/notifications/test-email").await;
    assert_eq!(status, 502);
    assert_eq!(
        (body["status"].as_u64(), body["ErrorCode"].as_u64()),
        (Some(401), Some(10))
    );
    let lines = v.heroku().log_lines("raxx-api-prod", 200).await.unwrap();
    assert!(lines
        .iter()
        .any(|l| l.contains("app[web.1]: postmark error 401 InvalidAPIToken: The Server Token")));
    let st = sb.state();
    assert!(
        st["downstream_401s"].as_u64().unwrap() >= 4,
        "{}",
        st["downstream"]
    );
    assert!(
        st["downstream"]["raxx-api-staging"]["failed"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[tokio::test]
async fn the_token_is_read_at_restart_not_continuously() {
    let (sb, v, new) = mid_rotation("rp-old-0004").await;
    // A config edit that (unlike Heroku's) does not restart the app.
    sb.set_config_without_restart("raxx-api-prod", "POSTMARK_SERVER_TOKEN", &new);
    sb.dashboard_delete_token("raxx-prod", "rp-old-0004")
        .unwrap();
    assert_eq!(
        test_email(&sb, "/api/notifications/test-email").await.0,
        502
    );
    v.heroku().restart_all("raxx-api-prod").await.unwrap();
    assert_eq!(
        test_email(&sb, "/api/notifications/test-email").await.0,
        200
    );
}
