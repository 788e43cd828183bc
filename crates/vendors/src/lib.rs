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
mod tls;
pub mod transport;

/// A fan-out's tasks, stopped when the fan-out is dropped before they end (a read abandoned
/// by `run::together`, a discovery search made stale, Ctrl-C): each would otherwise go on
/// sending its request on its own.
struct Tasks<R>(Vec<tokio::task::JoinHandle<R>>);

impl<R> Drop for Tasks<R> {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

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
pub use transport::{
    HeaderValueSource, RawResponse, Request, Transport, TransportConfig, WriteFence,
};

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
        // A vendor reached over TLS (every one, outside a rehearsal): its first handshake
        // needs the system's roots, read meanwhile.
        let urls = [
            &config.postmark.api_url,
            &config.infisical.api_url,
            &config.heroku.api_url,
            &config.github.api_url,
        ];
        if urls
            .iter()
            .any(|u| reqwest::Url::parse(u.trim()).is_ok_and(|u| u.scheme() == "https"))
        {
            transport.prefetch_roots();
        }
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
            self.config().concurrency.clamp(1, 1024),
        ));
        let mut handles = Tasks(Vec::with_capacity(items.len()));
        // Each task is its own: the step's end goes with it.
        let ends = transport::step_end();
        for item in items {
            let fut = transport::within_step(ends.clone(), f(self.clone(), item));
            let limit = limit.clone();
            handles.0.push(tokio::spawn(async move {
                // The semaphore is never closed, so acquiring only waits.
                let _permit = limit.acquire_owned().await.ok();
                fut.await
            }));
        }
        let mut out = Vec::with_capacity(handles.0.len());
        for h in handles.0.iter_mut() {
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

    /// Before: dropping a fan-out (a read `run::together` abandoned, a discovery search a
    /// write made stale) stopped only the task awaiting it; each target's task went on and
    /// sent its request anyway.
    #[tokio::test]
    async fn a_dropped_fan_out_sends_nothing_more() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let v = Vendors::new(VendorConfig {
            concurrency: 1,
            ..VendorConfig::default()
        })
        .unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let first_in = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let (s, f, r) = (started.clone(), first_in.clone(), release.clone());
        let outer = tokio::spawn(async move {
            v.fan_out(vec![1, 2, 3], move |_, _| {
                let (s, f, r) = (s.clone(), f.clone(), r.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    f.notify_one();
                    // Holds the only permit until the test lets it go.
                    let _ = r.acquire().await;
                }
            })
            .await
        });
        first_in.notified().await;
        outer.abort();
        assert!(outer.await.unwrap_err().is_cancelled());
        // Were the first target's task still alive, this would let it end and the next one
        // start with its permit.
        release.add_permits(3);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
