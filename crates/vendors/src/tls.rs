//! Certificate verification for the one HTTP client, with the system's roots read when a TLS
//! connection first needs them rather than when the client is built.
//!
//! reqwest builds the platform verifier (rustls-platform-verifier) eagerly, and on Linux that
//! reads and parses every file of the system's certificate store (`SSL_CERT_FILE` and each
//! file of `SSL_CERT_DIR`): 3–5 ms on the thread that builds the clients, which the first
//! vendor call waited for, also in a rehearsal whose simulators speak plain HTTP on loopback.
//! Here the same verifier is built on first use, or on a thread started as soon as the clients
//! are built for a vendor that speaks https (`prefetch`, after the runbook's compile, as the
//! clients' build was). A request does not wait for it before it connects: the roots are
//! needed only once the server's certificate arrives, a TCP and a TLS round trip later.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex, OnceLock};

type Built = Result<Arc<dyn ServerCertVerifier>, rustls::Error>;
type Build = Box<dyn Fn(Arc<CryptoProvider>) -> Built + Send + Sync>;

/// The platform's verifier, built when first asked for. A build that fails (no readable
/// root) is not kept: the next request reads the store again, so a REPL recovers once the
/// operator has installed the certificates.
pub(crate) struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    build: Build,
    built: OnceLock<Arc<dyn ServerCertVerifier>>,
    /// Why the last build failed, until one succeeds: what a failed handshake is told.
    failed: Mutex<Option<String>>,
    /// Held while a build runs: a handshake that needs the verifier meanwhile waits for that
    /// build instead of starting another.
    building: Mutex<()>,
}

impl std::fmt::Debug for LazyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyVerifier")
            .field("built", &self.is_built())
            .finish()
    }
}

impl LazyVerifier {
    /// The platform verifier over the system's roots, as reqwest builds it (reqwest fails
    /// the client's build when no root can be read; here the first https request does,
    /// `Transport::builder`).
    pub(crate) fn platform(provider: Arc<CryptoProvider>) -> Arc<LazyVerifier> {
        Self::with(
            provider,
            Box::new(|provider| {
                rustls_platform_verifier::Verifier::new(provider)
                    .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
            }),
        )
    }

    pub(crate) fn with(provider: Arc<CryptoProvider>, build: Build) -> Arc<LazyVerifier> {
        Arc::new(LazyVerifier {
            provider,
            build,
            built: OnceLock::new(),
            failed: Mutex::new(None),
            building: Mutex::new(()),
        })
    }

    /// Builds the verifier now, on a thread of its own: a handshake that needs it meanwhile
    /// waits for that build instead of starting another.
    pub(crate) fn prefetch(self: &Arc<Self>) {
        if self.is_built() {
            return;
        }
        let this = self.clone();
        // A thread that cannot start: the first handshake builds it, as without prefetch.
        let _ = std::thread::Builder::new()
            .name("runbook-roots".into())
            .spawn(move || {
                this.inner().ok();
            });
    }

    /// Builds the verifier if no one has (waiting for a build under way): an error when
    /// the system's roots could not be read, which a handshake would fail on.
    #[cfg(test)]
    pub(crate) fn ready(&self) -> Result<(), rustls::Error> {
        self.inner().map(|_| ())
    }

    /// Why the roots could not be read, when the last try failed and none has succeeded.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn is_built(&self) -> bool {
        self.built.get().is_some()
    }

    fn inner(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
        if let Some(built) = self.built.get() {
            return Ok(built);
        }
        let _building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = self.built.get() {
            return Ok(built);
        }
        let built = (self.build)(self.provider.clone());
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
            built.as_ref().err().map(ToString::to_string);
        let verifier = built?;
        Ok(self.built.get_or_init(|| verifier))
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    /// Asked for the ClientHello, before any certificate: the provider's schemes, which are
    /// what the platform verifier answers too, so the hello does not wait for the roots.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client's TLS settings, as reqwest makes them by default (TLS 1.2 and 1.3, SNI, ALPN
/// h2 then http/1.1), with `verifier`. Handed to reqwest whole (`tls_backend_preconfigured`),
/// so its own TLS options (`min_tls_version`, `add_root_certificate`, `tls_sni`, `danger_*`,
/// the ALPN of `http1_only`) no longer apply: set them here.
pub(crate) fn client_config(
    provider: Arc<CryptoProvider>,
    verifier: Arc<LazyVerifier>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;

    const CA: &str = include_str!("../tests/fixtures/tls/ca.pem");
    const CERT: &str = include_str!("../tests/fixtures/tls/localhost.pem");
    const KEY: &str = include_str!("../tests/fixtures/tls/localhost.key");

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A TLS server on loopback for `localhost` (its certificate issued by the fixture CA)
    /// that answers every request with 200 and `ok`.
    async fn server() -> u16 {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        port
    }

    fn client(verifier: Arc<LazyVerifier>) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(client_config(provider(), verifier).unwrap())
            .build()
            .unwrap()
    }

    /// A WebPKI verifier whose only root is the certificate `root` (PEM).
    fn trusting(root: &str, provider: Arc<CryptoProvider>) -> Built {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap())?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .map(|v| v as Arc<dyn ServerCertVerifier>)
            .map_err(|e| rustls::Error::General(e.to_string()))
    }

    /// A verifier trusting the fixture CA.
    fn trusting_the_ca(provider: Arc<CryptoProvider>) -> Built {
        trusting(CA, provider)
    }

    /// No root certificate readable (a container without ca-certificates): an https request
    /// says so as a setup problem, sent to no one and not tried again (reqwest used to
    /// refuse to build the client); the request does not wait for the roots before it
    /// connects, since verification needs them only once the server's certificate comes.
    #[tokio::test]
    async fn a_system_without_root_certificates_is_a_setup_error_not_a_network_one() {
        use crate::error::ErrorKind;
        use crate::transport::{Request, Transport, TransportConfig};
        let port = server().await;
        let verifier = LazyVerifier::with(
            provider(),
            Box::new(|_| {
                Err(rustls::Error::General(
                    "No CA certificates were loaded from the system".into(),
                ))
            }),
        );
        let t = Transport::with_verifier(
            TransportConfig::default(),
            crate::transport::provider(),
            verifier,
        )
        .unwrap();
        let err = t
            .send(Request::new(
                "postmark",
                reqwest::Method::GET,
                format!("https://localhost:{port}/server"),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused);
        assert_eq!(err.attempts(), 1);
        assert_eq!(
            err.to_string(),
            "postmark GET /server → refused: no TLS connection can be trusted: no root certificate could be read from the system (unexpected error: No CA certificates were loaded from the system)"
        );
        assert!(
            err.help_text().contains("ca-certificates"),
            "{}",
            err.help_text()
        );
    }

    /// A store that could not be read is read again by the next request, not remembered
    /// as failed for the rest of the process (a REPL whose operator installs the roots).
    #[test]
    fn a_failed_read_of_the_roots_is_tried_again() {
        let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = tries.clone();
        let verifier = LazyVerifier::with(
            provider(),
            Box::new(move |provider| {
                if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return Err(rustls::Error::General("no roots yet".into()));
                }
                trusting_the_ca(provider)
            }),
        );
        assert_eq!(
            verifier.ready().unwrap_err().to_string(),
            "unexpected error: no roots yet"
        );
        assert!(!verifier.is_built());
        assert_eq!(
            verifier.failure().as_deref(),
            Some("unexpected error: no roots yet")
        );
        verifier.ready().unwrap();
        assert_eq!(verifier.failure(), None);
        verifier.ready().unwrap();
        assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// The roots are not read when the client is built, only by the first handshake, which
    /// then checks the server's certificate against them: a certificate no root vouches
    /// for is refused. Read once per process, not per connection.
    #[tokio::test]
    async fn the_roots_are_read_by_the_first_handshake_and_checked_there() {
        let port = server().await;
        let builds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = builds.clone();
        let verifier = LazyVerifier::with(
            provider(),
            Box::new(move |provider| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Roots that do not hold the fixture CA: its certificate for `localhost`
                // is the only one, and it issued nothing.
                trusting(CERT, provider)
            }),
        );
        let client = client(verifier.clone());
        assert!(!verifier.is_built(), "built with the client");
        let err = client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let chain = crate::transport::error_chain(&err);
        assert!(chain.contains("UnknownIssuer"), "{chain}");
        assert!(verifier.is_built());
        let _ = client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await;
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// The handshake's signature is checked by the verifier built, not passed over: one
    /// that refuses every signature fails the handshake after accepting the certificate.
    #[tokio::test]
    async fn the_handshakes_signature_is_checked_by_the_built_verifier() {
        #[derive(Debug)]
        struct RefusesSignatures(Arc<dyn ServerCertVerifier>);
        impl ServerCertVerifier for RefusesSignatures {
            fn verify_server_cert(
                &self,
                end_entity: &CertificateDer<'_>,
                intermediates: &[CertificateDer<'_>],
                server_name: &ServerName<'_>,
                ocsp: &[u8],
                now: UnixTime,
            ) -> Result<ServerCertVerified, rustls::Error> {
                self.0
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            fn verify_tls12_signature(
                &self,
                _: &[u8],
                _: &CertificateDer<'_>,
                _: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, rustls::Error> {
                Err(rustls::Error::General("signature refused (1.2)".into()))
            }
            fn verify_tls13_signature(
                &self,
                _: &[u8],
                _: &CertificateDer<'_>,
                _: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, rustls::Error> {
                Err(rustls::Error::General("signature refused (1.3)".into()))
            }
            fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
                self.0.supported_verify_schemes()
            }
        }
        let port = server().await;
        let verifier = LazyVerifier::with(
            provider(),
            Box::new(|provider| {
                trusting_the_ca(provider)
                    .map(|v| Arc::new(RefusesSignatures(v)) as Arc<dyn ServerCertVerifier>)
            }),
        );
        let err = client(verifier)
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let chain = crate::transport::error_chain(&err);
        assert!(chain.contains("signature refused (1.3)"), "{chain}");
    }

    /// With a root that issued the server's certificate, the handshake completes through
    /// the lazy verifier (built ahead by `prefetch`) and the request is answered.
    #[tokio::test]
    async fn a_certificate_a_root_vouches_for_is_accepted() {
        let port = server().await;
        let verifier = LazyVerifier::with(provider(), Box::new(trusting_the_ca));
        verifier.prefetch();
        let answer = client(verifier)
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "ok");
    }
}
