//! The TLS listener: what the application learns (TLS, verified client certificate CN), the
//! handshake timeout, ALPN and the TLS 1.2 cipher suites. Certificates are made with rcgen.

use super::*;
use crate::connection::tests::{Fake, WAIT};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

type Leaf = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca {
            der,
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, cn: &str, server: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if server {
            params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }
}

struct Tls {
    addr: SocketAddr,
    csms: Arc<Fake>,
    server_ca: Ca,
    stations_ca: Ca,
    shutdown: CancellationToken,
}

impl Drop for Tls {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn start_tls(admission: Admission, settings: ServerSettings) -> Tls {
    let server_ca = Ca::new("server CA");
    let stations_ca = Ca::new("stations CA");
    let (chain, key) = server_ca.leaf("localhost", true);
    let config = crate::tls::server_config(chain, key, Some(stations_ca.roots())).unwrap();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), settings)
        .unwrap()
        .with_tls(TlsHandle::new(config));
    let addr = server.local_addr();
    let (csms, _seen) = Fake::new(admission);
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(Arc::clone(&csms), shutdown.clone()));
    Tls {
        addr,
        csms,
        server_ca,
        stations_ca,
        shutdown,
    }
}

fn client_config(
    roots: RootCertStore,
    client: Option<Leaf>,
    provider: rustls::crypto::CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// TLS connect + 1.6 upgrade of `/ocpp/CP1`; the negotiated ALPN protocol and the result.
async fn connect_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<(Option<Vec<u8>>, StatusCode), String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .unwrap()
    .map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let mut request = format!("ws://{addr}/ocpp/CP1")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("ocpp1.6"));
    match timeout(WAIT, tokio_tungstenite::client_async(request, tls))
        .await
        .unwrap()
    {
        Ok((_ws, response)) => Ok((alpn, response.status())),
        Err(WsError::Http(response)) => Ok((alpn, response.status())),
        Err(e) => Err(e.to_string()),
    }
}

fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[tokio::test]
async fn the_application_learns_tls_and_the_verified_client_certificate_cn() {
    let s = start_tls(Admission::Accept, ServerSettings::default());
    let client = s.stations_ca.leaf("CP1", false);
    let config = client_config(s.server_ca.roots(), Some(client), ring(), BOTH);
    let (alpn, status) = connect_tls(s.addr, config).await.unwrap();
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let seen = s.csms.credentials.lock().unwrap().clone().unwrap();
    assert!(seen.tls);
    assert_eq!(seen.client_cert_cn.as_deref(), Some("CP1"));

    // Without a client certificate the handshake still completes (profile 2 needs none).
    let config = client_config(s.server_ca.roots(), None, ring(), BOTH);
    connect_tls(s.addr, config).await.unwrap();
    let seen = s.csms.credentials.lock().unwrap().clone().unwrap();
    assert!(seen.tls);
    assert_eq!(seen.client_cert_cn, None);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_the_tls_handshake() {
    let s = start_tls(Admission::Accept, ServerSettings::default());
    let rogue = Ca::new("rogue").leaf("CP1", false);
    let config = client_config(s.server_ca.roots(), Some(rogue), ring(), BOTH);
    assert!(connect_tls(s.addr, config).await.is_err());
    assert!(
        s.csms.credentials.lock().unwrap().is_none(),
        "never admitted"
    );
}

#[tokio::test]
async fn forbidden_is_403_before_the_upgrade() {
    let s = start_tls(Admission::Forbidden, ServerSettings::default());
    let config = client_config(s.server_ca.roots(), None, ring(), BOTH);
    let (_, status) = connect_tls(s.addr, config).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tls12_takes_only_the_whitepaper_suites() {
    let s = start_tls(Admission::Accept, ServerSettings::default());
    let tls12 = &[&rustls::version::TLS12];
    // ECDHE-ECDSA AES-GCM (the server key is ECDSA P-256): accepted.
    let mut gcm = ring();
    gcm.cipher_suites
        .retain(|c| c.suite() == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let config = client_config(s.server_ca.roots(), None, gcm, tls12);
    let (_, status) = connect_tls(s.addr, config).await.unwrap();
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    // ChaCha20 is not one of them: no common suite.
    let mut chacha = ring();
    chacha.cipher_suites.retain(|c| {
        c.suite() == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    });
    let config = client_config(s.server_ca.roots(), None, chacha, tls12);
    assert!(connect_tls(s.addr, config).await.is_err());
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_after_the_handshake_timeout() {
    let s = start_tls(
        Admission::Accept,
        ServerSettings {
            handshake_timeout: Duration::from_millis(200),
            ..ServerSettings::default()
        },
    );
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
