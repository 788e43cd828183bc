//! Simulated vendor APIs on loopback, the simulated downstream app and fault injection.
//!
//! `Sandbox::start` serves each built-in simulator (`simulator::BUILT_IN`: Postmark,
//! Infisical, Heroku, GitHub and Raptor, the downstream app) and each scripted vendor of the
//! scenario on its own 127.0.0.1 port, all sharing one in-memory world behind one mutex, so
//! cross-vendor effects (a Heroku restart makes Raptor re-read its token; Raptor sends mail
//! through Postmark) are plain function calls and fully deterministic. Simulators never name
//! each other: they meet through the world's events and services (`world`).

// Handlers return the vendor's error `Response` early with `?`; boxing it would buy nothing.
#![allow(clippy::result_large_err)]
// What is not the crate's API is `pub(crate)` or private, so unused code is reported.
#![warn(unreachable_pub)]

pub mod control;
mod error;
mod faults;
#[cfg(test)]
mod fidelity;
mod github;
mod heroku;
mod http;
mod infisical;
mod postmark;
mod raptor;
mod ratelimit;
pub mod reference;
mod sandbox;
pub mod scenario;
mod scripted;
mod shared;
mod simulator;
#[cfg(any(test, feature = "test-api"))]
pub mod testing;
#[cfg(test)]
pub(crate) mod testkit;
mod ts;
mod world;

pub use error::SandboxError;
pub use faults::{FaultAction, FaultParseError, FaultRule};
pub use http::RequestRecord;
#[cfg(any(test, feature = "test-api"))]
pub use sandbox::Credentials;
pub use sandbox::{Sandbox, Urls};
pub use scenario::Scenario;

#[cfg(test)]
mod tests {
    use crate::testkit::{keys, raw};
    use crate::{Sandbox, SandboxError, Scenario};

    #[tokio::test]
    async fn starts_and_shuts_down() {
        let sb = Sandbox::start(Scenario::default()).await.unwrap();
        let url = sb.heroku_url().to_string();
        sb.shutdown().await;
        let e = raw().get(format!("{url}/apps/x")).send().await;
        assert!(e.is_err());
    }

    #[tokio::test]
    async fn a_file_scenario_starts_consistently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[postmark]\nservers = [{ name = \"acme\", tokens = [\"acme-tok-1\"] }]\n[heroku]\napps = [{ name = \"a\", config = { POSTMARK_SERVER_TOKEN = \"@postmark:acme\" } }]\n").unwrap();
        let sb = Sandbox::start(Scenario::from_file(&path).unwrap())
            .await
            .unwrap();
        let st = sb.state();
        assert_eq!(
            st["heroku"]["apps"]["a"]["config_vars"]["POSTMARK_SERVER_TOKEN"],
            "acme-tok-1"
        );
        assert_eq!(keys(&st["downstream"]), vec!["a"]);
        let bad = Scenario::default().with_postmark_token("x");
        let mut bad = bad;
        bad.heroku.apps[0]
            .config
            .insert("X".into(), "@postmark:nope".into());
        assert!(matches!(
            Sandbox::start(bad).await,
            Err(SandboxError::Scenario { .. })
        ));
    }
}
