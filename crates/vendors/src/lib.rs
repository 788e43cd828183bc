//! Typed async clients for each vendor (no rhai here).
//!
//! One `Transport` (a single reqwest client) is shared by every vendor client; `Vendors`
//! bundles them and is cheap to clone into tokio tasks.

pub mod config;
pub mod discovery;
pub mod error;
pub mod github;
pub mod heroku;
pub mod infisical;
mod pacing;
pub mod postmark;
pub mod spec;
pub mod transport;

#[cfg(test)]
mod simulators;
#[cfg(test)]
mod testkit;

pub use config::{ConfigError, InfisicalAuth, VendorConfig, VendorFileConfig};
pub use error::{ErrorKind, VendorCode, VendorError};
pub use github::GithubClient;
pub use heroku::HerokuClient;
pub use infisical::InfisicalClient;
pub use postmark::PostmarkClient;
pub use transport::{HeaderValueSource, RawResponse, Request, Transport, TransportConfig};

use std::future::Future;
use std::sync::Arc;

/// The vendors with a typed client, named once: their clients, host modules and error
/// rendering refer to them through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    Postmark,
    Infisical,
    Heroku,
    Github,
}

impl Vendor {
    pub const ALL: [Vendor; 4] = [
        Vendor::Postmark,
        Vendor::Infisical,
        Vendor::Heroku,
        Vendor::Github,
    ];

    /// The name used in errors, audit entries and as the host module (`postmark::`).
    pub const fn name(self) -> &'static str {
        match self {
            Vendor::Postmark => "postmark",
            Vendor::Infisical => "infisical",
            Vendor::Heroku => "heroku",
            Vendor::Github => "github",
        }
    }

    pub fn from_name(name: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.name() == name)
    }

    /// What the vendor calls the code in its error bodies.
    pub(crate) fn code_label(self) -> &'static str {
        self.spec().error_code
    }
}

/// Every vendor client, sharing one transport; clones share everything.
#[derive(Debug, Clone)]
pub struct Vendors {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: VendorConfig,
    transport: Transport,
    postmark: PostmarkClient,
    infisical: InfisicalClient,
    heroku: HerokuClient,
    github: GithubClient,
}

impl Vendors {
    /// Builds the shared transport and one client per vendor. Missing credentials are not an
    /// error here: they are reported when that vendor is first used.
    pub fn new(config: VendorConfig) -> Result<Self, VendorError> {
        let transport = Transport::new(config.transport.clone())?;
        let postmark = PostmarkClient::new(transport.clone(), &config.postmark.api_url);
        let infisical = InfisicalClient::new(
            transport.clone(),
            &config.infisical.api_url,
            config.infisical.auth.clone(),
        );
        let heroku = HerokuClient::new(
            transport.clone(),
            &config.heroku.api_url,
            config.heroku.api_key.clone(),
        );
        let github = GithubClient::new(
            transport.clone(),
            &config.github.api_url,
            config.github.token.clone(),
        );
        Ok(Vendors {
            inner: Arc::new(Inner {
                config,
                transport,
                postmark,
                infisical,
                heroku,
                github,
            }),
        })
    }

    pub fn config(&self) -> &VendorConfig {
        &self.inner.config
    }

    /// The shared HTTP client, also for a generic `http::` module.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub fn postmark(&self) -> &PostmarkClient {
        &self.inner.postmark
    }

    pub fn infisical(&self) -> &InfisicalClient {
        &self.inner.infisical
    }

    pub fn heroku(&self) -> &HerokuClient {
        &self.inner.heroku
    }

    pub fn github(&self) -> &GithubClient {
        &self.inner.github
    }

    /// Runs `f` for every item on tokio tasks, at most `config.concurrency` at once; results
    /// come back in the order of `items`. A task that panicked yields `None`.
    pub async fn fan_out<I, R, F, Fut>(&self, items: Vec<I>, f: F) -> Vec<Option<R>>
    where
        I: Send + 'static,
        R: Send + 'static,
        F: Fn(Vendors, I) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
    {
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.config().concurrency.max(1),
        ));
        let mut handles = Vec::with_capacity(items.len());
        for item in items {
            let fut = f(self.clone(), item);
            let limit = limit.clone();
            handles.push(tokio::spawn(async move {
                // The semaphore is never closed, so acquiring only waits.
                let _permit = limit.acquire_owned().await.ok();
                fut.await
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.ok());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::start;
    use heroku::ConfigValue;
    use runbook_sandbox::{Sandbox, Scenario};
    use runbook_secret::{Secret, Source};
    use std::collections::BTreeMap;

    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn clients_can_cross_threads() {
        assert_shareable::<Vendors>();
        assert_shareable::<VendorError>();
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Sandbox>();
    }

    #[tokio::test]
    async fn fan_out_updates_every_app_in_order() {
        let (sb, v) = start(Scenario::default()).await;
        let token = Secret::new("fan-out-token-0001", Source::Literal);
        let apps = vec![
            "raxx-api-prod".to_string(),
            "ghost".into(),
            "raxx-api-staging".into(),
        ];
        let results = v
            .fan_out(apps, move |v, app| {
                let changes = BTreeMap::from([(
                    "POSTMARK_SERVER_TOKEN".to_string(),
                    Some(ConfigValue::from(&token)),
                )]);
                async move { v.heroku().update_config_vars(&app, &changes).await }
            })
            .await;
        assert!(matches!(results[0], Some(Ok(_))));
        assert!(matches!(&results[1], Some(Err(e)) if e.kind() == ErrorKind::NotFound));
        assert!(matches!(results[2], Some(Ok(_))));
        let st = sb.state();
        assert_eq!(st["heroku"]["apps"]["raxx-api-staging"]["restarts"], 1);
    }
}
