//! Typed async clients for each vendor (no rhai here).
//!
//! One `Transport` (a single reqwest client) is shared by every vendor client; `Vendors`
//! bundles them and is cheap to clone into tokio tasks.

pub mod config;
pub mod error;
pub mod github;
pub mod heroku;
pub mod infisical;
pub mod postmark;
pub mod transport;

pub use config::{ConfigError, InfisicalAuth, VendorConfig, VendorFileConfig};
pub use error::{ErrorKind, VendorCode, VendorError};
pub use github::GithubClient;
pub use heroku::HerokuClient;
pub use infisical::InfisicalClient;
pub use postmark::PostmarkClient;
pub use transport::{HeaderValueSource, RawResponse, Request, Transport, TransportConfig};

use std::sync::Arc;

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
        let postmark = PostmarkClient::new(transport.clone(), &config.postmark_api_url);
        let infisical = InfisicalClient::new(
            transport.clone(),
            &config.infisical_api_url,
            config.infisical_auth.clone(),
        );
        let heroku = HerokuClient::new(
            transport.clone(),
            &config.heroku_api_url,
            config.heroku_api_key.clone(),
        );
        let github = GithubClient::new(
            transport.clone(),
            &config.github_api_url,
            config.github_token.clone(),
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
}
