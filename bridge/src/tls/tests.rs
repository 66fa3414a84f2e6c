//! Tests of the TLS file checks and reload, with certificates made by rcgen.

use super::*;
use rcgen::{CertificateParams, DnType, KeyPair};

/// A self-signed certificate for `localhost` valid from `from` to `to` days from today.
fn self_signed(from: i64, to: i64) -> (String, String) {
    use chrono::Datelike;
    let day = |d: i64| {
        let d = (Utc::now() + chrono::Duration::days(d)).date_naive();
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "test");
    params.not_before = day(from);
    params.not_after = day(to);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn files(dir: &Path, name: &str, (cert, key): &(String, String)) -> ListenerFiles {
    let c = dir.join(format!("{name}.crt"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    ListenerFiles {
        listener: "ocpp",
        section: "ocpp.tls",
        cert: c,
        key: k,
        client_ca: None,
    }
}

fn err(files: &ListenerFiles) -> ConfigError {
    files.load(Utc::now()).expect_err("must fail")
}

#[test]
fn good_files_load_with_their_expiry() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path(), "a", &self_signed(-1, 100));
    let (config, info) = f.load(Utc::now()).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let days = (info.not_after - Utc::now()).num_days();
    assert!((98..=100).contains(&days), "{days}");
    assert!(info.subject.contains("test"), "{}", info.subject);
}

#[test]
fn a_missing_file_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = files(dir.path(), "a", &self_signed(-1, 100));
    f.cert = dir.path().join("nope.crt");
    let e = err(&f);
    assert_eq!(e.key, "ocpp.tls.cert");
    assert!(e.reason.contains("nope.crt"), "{e}");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = files(dir.path(), "a", &self_signed(-1, 100));
    let b = files(dir.path(), "b", &self_signed(-1, 100));
    let mixed = ListenerFiles { key: b.key, ..a };
    let e = err(&mixed);
    assert_eq!(e.key, "ocpp.tls.key");
    assert!(e.reason.contains("does not match"), "{e}");
    assert!(e.reason.contains("b.key"), "{e}");
}

#[test]
fn an_expired_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path(), "a", &self_signed(-10, -1));
    let e = err(&f);
    assert_eq!(e.key, "ocpp.tls.cert");
    assert!(e.reason.contains("expired"), "{e}");
}

#[test]
fn garbage_is_not_a_certificate_or_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed(-1, 100);
    let f = files(dir.path(), "a", &("hello".to_owned(), good.1.clone()));
    assert!(err(&f).reason.contains("no PEM certificate"), "{}", err(&f));
    let f = files(dir.path(), "b", &(good.0.clone(), "hello".to_owned()));
    let e = err(&f);
    assert_eq!(e.key, "ocpp.tls.key");
    assert!(e.reason.contains("private key"), "{e}");
    let mut f = files(dir.path(), "c", &good);
    f.client_ca = Some(f.key.clone());
    assert!(err(&f).key.ends_with("client_ca"), "{}", err(&f));
}

#[test]
fn a_reload_with_a_bad_file_keeps_the_old_configuration() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path(), "a", &self_signed(-1, 100));
    let (config, info) = f.load(Utc::now()).unwrap();
    let tls = Tls {
        listeners: Arc::new(vec![Listener {
            handle: TlsHandle::new(config),
            not_after: Mutex::new(info.not_after),
            files: f.clone(),
        }]),
    };
    let handle = tls.handle("ocpp").unwrap();
    let before = handle.current();
    std::fs::write(&f.cert, "broken").unwrap();
    assert_eq!(tls.reload(), 0);
    assert!(Arc::ptr_eq(&before, &handle.current()), "old config kept");
    files(dir.path(), "a", &self_signed(-1, 200));
    assert_eq!(tls.reload(), 1);
    assert!(
        !Arc::ptr_eq(&before, &handle.current()),
        "new config in use"
    );
    let days = (*tls.listeners[0].not_after.lock().unwrap() - Utc::now()).num_days();
    assert!(days > 150, "{days}");
}

#[test]
fn check_config_describes_each_certificate_and_warns_30_days_ahead() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path(), "soon", &self_signed(-1, 10));
    files(dir.path(), "later", &self_signed(-1, 200));
    let toml = r#"
[ocpp]
tls_listen = "127.0.0.1:0"
[ocpp.tls]
cert = "soon.crt"
key = "soon.key"
[ocpi]
ca_file = "ca.pem"
[ocpi.tls]
cert = "later.crt"
key = "later.key"
"#;
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, toml).unwrap();
    std::fs::copy(dir.path().join("later.crt"), dir.path().join("ca.pem")).unwrap();
    let settings = crate::config::load_with_env(Some(&path), []).unwrap();
    let lines = check_files(&settings, Utc::now()).unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("ocpp.tls: ") && lines[0].contains("WARNING"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("ocpi.tls: ") && !lines[1].contains("WARNING"),
        "{lines:?}"
    );
    assert!(lines[2].starts_with("ocpi.ca_file: "), "{lines:?}");
    // A ca_file without certificates names its key.
    std::fs::write(dir.path().join("ca.pem"), "nothing").unwrap();
    let e = check_files(&settings, Utc::now()).unwrap_err();
    assert_eq!(e.key, "ocpi.ca_file", "{e}");
    assert!(e.reason.contains("ca.pem"), "{e}");
}
