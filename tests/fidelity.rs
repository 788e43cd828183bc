//! The simulators against the vendors' own client code: the official Infisical Rust SDK reads
//! and writes a secret against the Infisical simulator.

use infisical::secrets::{CreateSecretRequest, GetSecretRequest, UpdateSecretRequest};
use infisical::{AuthMethod, Client};
use runbook_sandbox::{Sandbox, Scenario};

#[test]
fn official_infisical_sdk_reads_and_writes_against_the_simulator() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sandbox = Sandbox::start(Scenario::default()).await.unwrap();
        let creds = sandbox.credentials().clone();
        let project = sandbox.infisical_project_id();
        let mut client = Client::builder()
            .base_url(sandbox.infisical_url())
            .build()
            .await
            .unwrap();
        client
            .login(AuthMethod::new_universal_auth(
                creds.infisical_client_id.clone(),
                creds.infisical_client_secret.clone(),
            ))
            .await
            .unwrap();

        let current = sandbox.postmark_tokens("raxx-prod").unwrap()[0].clone();
        let got = client
            .secrets()
            .get(
                GetSecretRequest::builder("POSTMARK_SERVER_TOKEN", project.clone(), "prod")
                    .path("/")
                    .build(),
            )
            .await
            .unwrap();
        assert_eq!(got.secret_key, "POSTMARK_SERVER_TOKEN");
        assert_eq!(got.secret_value, current);

        client
            .secrets()
            .create(
                CreateSecretRequest::builder("SDK_CREATED", "first", project.clone(), "prod")
                    .path("/")
                    .build(),
            )
            .await
            .unwrap();
        client
            .secrets()
            .update(
                UpdateSecretRequest::builder("SDK_CREATED", project.clone(), "prod")
                    .path("/")
                    .secret_value("second")
                    .build(),
            )
            .await
            .unwrap();
        let read = client
            .secrets()
            .get(
                GetSecretRequest::builder("SDK_CREATED", project.clone(), "prod")
                    .path("/")
                    .build(),
            )
            .await
            .unwrap();
        assert_eq!(read.secret_value, "second");
        // The simulator kept both versions.
        let state = sandbox.state();
        let versions = state["infisical"]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["secretKey"] == "SDK_CREATED")
            .unwrap()["versions"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(versions, 2);
    });
}
