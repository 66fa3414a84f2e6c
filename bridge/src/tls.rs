//! The TLS files of the listeners: loading and checking them, reloading on SIGHUP, and the
//! certificate-expiry metric.
//!
//! - `[ocpp.tls]` (`cert`, `key`, optional `client_ca`) serves `ocpp.tls_listen`; `[ocpi.tls]`
//!   (`cert`, `key`) makes `ocpi.listen` HTTPS; `ocpi.ca_file` adds roots for outbound OCPI
//!   requests (the system roots are always trusted).
//! - A file is good when it is readable, parses (PEM; certificates as X.509), the key matches
//!   the certificate and the certificate has not expired. Every problem is a [`ConfigError`]
//!   naming the key and the file: `check-config` and start-up report it the same way.
//! - [`Tls::reload`] (SIGHUP) re-reads every file; a listener whose new files are bad keeps its
//!   old configuration (logged). Open connections keep theirs either way.
//! - `ocpp_tls_cert_expiry_seconds{listener="ocpp"|"ocpi"}`: seconds until the server
//!   certificate expires (negative once it has), refreshed every minute; a warning is logged
//!   at load and then daily once it is less than [`EXPIRY_WARNING_DAYS`] days away.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ocpp::tls::TlsHandle;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};

/// A certificate expiring within this many days is warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

fn read(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError {
        key: key.to_owned(),
        reason: format!("{}: cannot read: {e}", path.display()),
    })
}

fn bad(key: &str, path: &Path, why: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: format!("{}: {why}", path.display()),
    }
}

/// The PEM certificates of a file (at least one, each a parseable X.509 certificate).
pub fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            key,
            path,
            "no PEM certificate (BEGIN CERTIFICATE) found",
        ));
    }
    for cert in &certs {
        x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| bad(key, path, format!("not an X.509 certificate: {e}")))?;
    }
    Ok(certs)
}

/// The PEM private key of a file (PKCS#8, RSA or SEC1).
pub fn read_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        bad(
            key,
            path,
            format!("no PEM private key (PKCS#8, RSA or SEC1): {e}"),
        )
    })
}

/// The CA certificates of a PEM file as a root store.
pub fn read_roots(key: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(key, path)? {
        roots
            .add(cert)
            .map_err(|e| bad(key, path, format!("not usable as a CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// What a certificate says about itself.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject, RFC 4514 style.
    pub subject: String,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// X.509 v3 (TLS needs it; `openssl x509 -req` without extensions makes v1).
    pub v3: bool,
}

/// Subject and expiry of a DER certificate (already known to parse).
pub fn cert_info(cert: &CertificateDer<'_>) -> Option<CertInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(CertInfo {
        subject: parsed.subject().to_string(),
        not_after: DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)?,
        v3: parsed.version() == x509_parser::x509::X509Version::V3,
    })
}

/// The files of one TLS listener.
#[derive(Debug, Clone)]
pub struct ListenerFiles {
    /// Metric label and log name: `ocpp` or `ocpi`.
    pub listener: &'static str,
    /// The configuration section: `ocpp.tls` or `ocpi.tls`.
    pub section: &'static str,
    /// Certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA for client certificates (PEM), if any.
    pub client_ca: Option<PathBuf>,
}

impl ListenerFiles {
    /// The configured TLS listeners' files.
    pub fn of(settings: &Settings) -> Vec<ListenerFiles> {
        let mut out = Vec::new();
        if let Some(t) = &settings.ocpp.tls {
            out.push(ListenerFiles {
                listener: "ocpp",
                section: "ocpp.tls",
                cert: t.cert.clone(),
                key: t.key.clone(),
                client_ca: t.client_ca.clone(),
            });
        }
        if let Some(t) = &settings.ocpi.tls {
            out.push(ListenerFiles {
                listener: "ocpi",
                section: "ocpi.tls",
                cert: t.cert.clone(),
                key: t.key.clone(),
                client_ca: None,
            });
        }
        out
    }

    /// Reads and checks the files and builds the server configuration (as of `now`).
    pub fn load(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(rustls::ServerConfig, CertInfo), ConfigError> {
        let cert_key = format!("{}.cert", self.section);
        let key_key = format!("{}.key", self.section);
        let chain = read_certs(&cert_key, &self.cert)?;
        let info = cert_info(&chain[0])
            .ok_or_else(|| bad(&cert_key, &self.cert, "unreadable validity period"))?;
        if !info.v3 {
            return Err(bad(
                &cert_key,
                &self.cert,
                "not an X.509 v3 certificate (TLS needs v3: give it extensions, e.g. subjectAltName)",
            ));
        }
        if info.not_after <= now {
            return Err(bad(
                &cert_key,
                &self.cert,
                format!(
                    "the certificate ({}) expired at {}",
                    info.subject,
                    info.not_after.to_rfc3339()
                ),
            ));
        }
        let key = read_key(&key_key, &self.key)?;
        let client_ca = match &self.client_ca {
            Some(path) => Some(read_roots(&format!("{}.client_ca", self.section), path)?),
            None => None,
        };
        let config = ocpp::tls::server_config(chain, key, client_ca).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => bad(
                &key_key,
                &self.key,
                format!(
                    "the key does not match the certificate in {}",
                    self.cert.display()
                ),
            ),
            other => bad(
                &cert_key,
                &self.cert,
                format!(
                    "cannot be used with the key {}: {other}",
                    self.key.display()
                ),
            ),
        })?;
        Ok((config, info))
    }
}

/// `ocpi.ca_file` as PEM bytes (checked to hold certificates), if configured.
pub fn ocpi_extra_roots(settings: &Settings) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(path) = &settings.ocpi.ca_file else {
        return Ok(None);
    };
    read_roots("ocpi.ca_file", path)?;
    read("ocpi.ca_file", path).map(Some)
}

/// `check-config`: every TLS file of `settings` (and `ocpi.ca_file`); one line per listener.
pub fn check_files(settings: &Settings, now: DateTime<Utc>) -> Result<Vec<String>, ConfigError> {
    let mut lines = Vec::new();
    for files in ListenerFiles::of(settings) {
        let (_, info) = files.load(now)?;
        let days = (info.not_after - now).num_days();
        let warning = if days < EXPIRY_WARNING_DAYS {
            " — WARNING: renew it soon"
        } else {
            ""
        };
        lines.push(format!(
            "{}: {} ({}), valid until {} ({days} days){warning}",
            files.section,
            files.cert.display(),
            info.subject,
            info.not_after.to_rfc3339()
        ));
    }
    if let Some(path) = &settings.ocpi.ca_file {
        let n = read_certs("ocpi.ca_file", path)?.len();
        read_roots("ocpi.ca_file", path)?;
        lines.push(format!(
            "ocpi.ca_file: {} ({n} certificate(s))",
            path.display()
        ));
    }
    Ok(lines)
}

/// One running TLS listener's files, handle and certificate expiry.
#[derive(Debug)]
struct Listener {
    files: ListenerFiles,
    handle: TlsHandle,
    not_after: Mutex<DateTime<Utc>>,
}

/// The TLS configuration of every TLS listener of the running daemon.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    listeners: Arc<Vec<Listener>>,
}

impl Tls {
    /// Loads every configured listener's files (start-up: any problem is fatal).
    pub fn load(settings: &Settings) -> Result<Tls, ConfigError> {
        let now = Utc::now();
        let mut listeners = Vec::new();
        for files in ListenerFiles::of(settings) {
            let (config, info) = files.load(now)?;
            warn_if_expiring(files.listener, &info, now);
            listeners.push(Listener {
                handle: TlsHandle::new(config),
                not_after: Mutex::new(info.not_after),
                files,
            });
        }
        let tls = Tls {
            listeners: Arc::new(listeners),
        };
        tls.report_expiry(now);
        Ok(tls)
    }

    /// The handle of a listener (`ocpp` or `ocpi`), if it has TLS.
    pub fn handle(&self, listener: &str) -> Option<TlsHandle> {
        self.listeners
            .iter()
            .find(|l| l.files.listener == listener)
            .map(|l| l.handle.clone())
    }

    /// Re-reads every listener's files; a listener whose new files are bad keeps its current
    /// configuration. Returns how many listeners were reloaded.
    pub fn reload(&self) -> usize {
        let now = Utc::now();
        let mut reloaded = 0;
        for l in self.listeners.iter() {
            match l.files.load(now) {
                Ok((config, info)) => {
                    l.handle.replace(config);
                    *l.not_after.lock().expect("not_after") = info.not_after;
                    tracing::info!(
                        listener = l.files.listener,
                        subject = %info.subject,
                        not_after = %info.not_after.to_rfc3339(),
                        "TLS certificate reloaded"
                    );
                    warn_if_expiring(l.files.listener, &info, now);
                    metrics::counter!("bridge_tls_reloads_total", "listener" => l.files.listener, "result" => "ok").increment(1);
                    reloaded += 1;
                }
                Err(e) => {
                    tracing::error!(
                        listener = l.files.listener,
                        error = %e,
                        "TLS reload failed: keeping the previous certificate"
                    );
                    metrics::counter!("bridge_tls_reloads_total", "listener" => l.files.listener, "result" => "error").increment(1);
                }
            }
        }
        self.report_expiry(now);
        reloaded
    }

    /// Every TLS listener (`ocpp`, `ocpi`) with its server certificate's expiry (the status
    /// page's attention list).
    pub fn expiries(&self) -> Vec<(&'static str, DateTime<Utc>)> {
        self.listeners
            .iter()
            .map(|l| (l.files.listener, *l.not_after.lock().expect("not_after")))
            .collect()
    }

    /// Sets `ocpp_tls_cert_expiry_seconds` for every listener.
    fn report_expiry(&self, now: DateTime<Utc>) {
        for l in self.listeners.iter() {
            let not_after = *l.not_after.lock().expect("not_after");
            let secs = (not_after - now).num_seconds() as f64;
            metrics::gauge!("ocpp_tls_cert_expiry_seconds", "listener" => l.files.listener)
                .set(secs);
        }
    }

    /// Refreshes the expiry metric every minute and repeats the expiry warning daily, until
    /// `shutdown`.
    pub async fn watch_expiry(self, shutdown: CancellationToken) {
        if self.listeners.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut last_warning = std::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Utc::now();
            self.report_expiry(now);
            if last_warning.elapsed() >= Duration::from_secs(24 * 3600) {
                last_warning = std::time::Instant::now();
                for l in self.listeners.iter() {
                    let not_after = *l.not_after.lock().expect("not_after");
                    let info = CertInfo {
                        subject: String::new(),
                        not_after,
                        v3: true,
                    };
                    warn_if_expiring(l.files.listener, &info, now);
                }
            }
        }
    }
}

fn warn_if_expiring(listener: &str, info: &CertInfo, now: DateTime<Utc>) {
    let left = info.not_after - now;
    if left < chrono::Duration::days(EXPIRY_WARNING_DAYS) {
        tracing::warn!(
            listener,
            not_after = %info.not_after.to_rfc3339(),
            days_left = left.num_days(),
            "the TLS server certificate expires soon: renew it and send SIGHUP"
        );
    }
}

#[cfg(test)]
mod tests;
