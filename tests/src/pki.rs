//! Certificates made at test time (rcgen): a CA, server certificates for `127.0.0.1` and
//! `localhost`, station (client) certificates with a chosen CN, an expired certificate, and
//! rustls client configurations that trust a CA (optionally presenting a client certificate).
//!
//! Every key is a fresh ECDSA P-256 key; nothing is stored in the repository.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority.
pub struct Ca {
    /// PEM of the CA certificate.
    pub cert_pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A leaf certificate with its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// PEM of the certificate (followed by nothing: the CA is the only issuer).
    pub cert_pem: String,
    /// PEM (PKCS#8) of its private key.
    pub key_pem: String,
}

/// Validity of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From yesterday for a year.
    Current,
    /// Expired yesterday.
    Expired,
}

/// (year, month, day) of the day `days` from today, UTC (rcgen takes dates).
fn ymd(days: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let d = (chrono::Utc::now() + chrono::Duration::days(days)).date_naive();
    (d.year(), d.month() as u8, d.day() as u8)
}

/// Midnight UTC of the day `days` from today.
macro_rules! days_from_now {
    ($days:expr) => {{
        let (y, m, d) = ymd($days);
        rcgen::date_time_ymd(y, m, d)
    }};
}

impl Ca {
    /// A fresh CA with this CN.
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = days_from_now!(-2);
        params.not_after = days_from_now!(3650);
        let cert = params.self_signed(&key).expect("CA cert");
        Ca {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match validity {
            Validity::Current => {
                params.not_before = days_from_now!(-1);
                params.not_after = days_from_now!(365);
            }
            Validity::Expired => {
                params.not_before = days_from_now!(-30);
                params.not_after = days_from_now!(-1);
            }
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `127.0.0.1`, `::1` and `localhost` (CN `localhost`).
    pub fn server(&self, validity: Validity) -> Leaf {
        let sans = vec![
            SanType::DnsName("localhost".try_into().expect("dns name")),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::IpAddress("::1".parse().expect("ip")),
        ];
        self.leaf(
            "localhost",
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
        )
    }

    /// A station (client) certificate whose subject CN is `cn`.
    pub fn station(&self, cn: &str) -> Leaf {
        self.leaf(
            cn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::Current,
        )
    }

    /// Writes the CA certificate to `dir/{name}.pem`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &self.cert_pem).expect("write CA");
        path
    }

    /// A root store holding this CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("add CA");
        roots
    }

    /// A rustls client configuration trusting this CA (only), presenting `client` if given.
    pub fn client_config(&self, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        crate::install_crypto_provider();
        let builder = rustls::ClientConfig::builder().with_root_certificates(self.roots());
        let config = match client {
            Some(leaf) => builder
                .with_client_auth_cert(leaf.chain(), leaf.key())
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

impl Leaf {
    /// Writes `dir/{name}.crt` and `dir/{name}.key`; returns both paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }

    /// The certificate as DER (a chain of one).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("leaf PEM")
    }

    /// The private key as DER.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM")
    }
}
