//! TLS for the station listener (rustls only): the server configuration the OCPP security
//! whitepaper asks for, a handle whose configuration can be replaced while the listener runs
//! (certificate reload), and the subject CN of a verified client certificate.
//!
//! - Protocol versions TLS 1.3 and 1.2. For 1.2 only the ECDHE AES-GCM suites the OCPP
//!   security whitepaper / 2.0.1 Part 2 (A00.FR.318, A00.FR.319) name:
//!   `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`,
//!   `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384` (rustls
//!   has no static-RSA key exchange, so the `TLS_RSA_WITH_*` suites are not offered).
//! - ALPN `http/1.1` (a websocket upgrade is an HTTP/1.1 request).
//! - With client CA roots, a client certificate is asked for and, when sent, must chain to
//!   them (otherwise the TLS handshake fails); a client without one is let through to the
//!   security-profile decision ([`crate::security`]), which needs it only for profile 3.

use std::sync::{Arc, RwLock};

use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider of both listeners: ring, with the TLS 1.2 suites restricted to the ones
/// the OCPP security whitepaper names (all TLS 1.3 suites stay).
pub fn provider() -> CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = ring::default_provider();
    provider.cipher_suites.retain(|suite| match suite {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(_) => matches!(
            suite.suite(),
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ),
    });
    provider
}

/// A server configuration: this certificate chain (leaf first) and key; with `client_ca`,
/// client certificates are requested and verified (optional for the client, see the module
/// docs). Fails when the key does not match the certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<RootCertStore>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| rustls::Error::General(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The current TLS configuration of a listener; [`TlsHandle::replace`] swaps it for new
/// handshakes while open connections keep the one they were made with.
#[derive(Debug, Clone)]
pub struct TlsHandle(Arc<RwLock<Arc<ServerConfig>>>);

impl TlsHandle {
    /// A handle starting with `config`.
    pub fn new(config: ServerConfig) -> TlsHandle {
        TlsHandle(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the configuration (certificate reload).
    pub fn replace(&self, config: ServerConfig) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }
}

/// The first subject CN of a DER certificate (as text), if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The subject CN of the client certificate rustls verified on this connection, if any.
pub fn peer_common_name(conn: &rustls::ServerConnection) -> Option<String> {
    conn.peer_certificates()?.first().and_then(common_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls12_offers_only_the_whitepaper_suites() {
        let p = provider();
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_)))
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.contains("ECDHE") && n.contains("GCM"))
        );
        assert!(
            p.cipher_suites
                .iter()
                .any(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)))
        );
    }
}
