//! TLS built in (issue 13): OCPP security profiles 2 and 3 on `ocpp.tls_listen`, OCPI over
//! HTTPS in both registration directions, SIGHUP certificate reload, the expiry metric, and
//! `check-config` on the certificate files. Certificates are made at test time (rcgen,
//! `bridge_tests::pki`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_tests::daemon::check_config;
use bridge_tests::pki::{Ca, Leaf, Validity};
use bridge_tests::{
    ConnectError, Daemon, Hub, HubOptions, OcppVersion, Station, StationOptions, TestConfig,
    eventually,
};
use serde_json::json;

use crate::SOON;
use crate::ocpi_support::{REGISTER_SOON, TOKEN_A, registered_peer};

/// A temp dir with a server CA and a server certificate for 127.0.0.1 in it.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("bridge-pki-")
            .tempdir()
            .expect("temp dir");
        let ca = Ca::new("Test server CA");
        let ca_file = ca.write(dir.path(), "server-ca");
        let (cert, key) = ca.server(Validity::Current).write(dir.path(), "server");
        Pki {
            dir,
            ca,
            ca_file,
            cert,
            key,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

async fn connect(opts: StationOptions) -> Result<Station, ConnectError> {
    Station::connect(opts).await
}

fn wss(
    daemon: &Daemon,
    pki: &Pki,
    id: &str,
    v: OcppVersion,
    cert: Option<&Leaf>,
) -> StationOptions {
    StationOptions::tls(daemon, id, v, pki.ca.client_config(cert))
}

fn status(r: Result<Station, ConnectError>) -> ConnectError {
    match r {
        Ok(_) => panic!("connection accepted"),
        Err(e) => e,
    }
}

/// Waits until the daemon log contains `needle`.
async fn log_contains(daemon: &Daemon, needle: &str) {
    eventually(&format!("log line `{needle}`"), SOON, || async {
        let log = daemon.log_tail(400);
        if log.contains(needle) {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
}

#[tokio::test]
async fn profile_2_needs_tls_and_the_right_password() {
    let pki = Pki::new();
    let config = TestConfig::new()
        .ocpp_tls(&pki.cert, &pki.key, None)
        .station_with_profile("P2", 2, Some("pw-two"))
        .station_with_profile("P2B", 2, Some("pw-b"))
        .station_with_password("P1", "pw-one")
        .station("P0");
    let daemon = Daemon::start(&config).await;

    // Right password over wss: accepted, both OCPP versions.
    let cs = connect(wss(&daemon, &pki, "P2", OcppVersion::V16, None).password("pw-two"))
        .await
        .expect("profile 2 over wss");
    cs.boot().await;
    let cs201 = connect(wss(&daemon, &pki, "P2B", OcppVersion::V201, None).password("pw-b"))
        .await
        .expect("profile 2 over wss, 2.0.1");
    cs201.boot().await;
    assert_eq!(cs201.selected_protocol(), Some("ocpp2.0.1"));
    cs201.call_ok("Heartbeat", json!({})).await;

    // Wrong or missing password over wss: 401.
    let wrong = connect(wss(&daemon, &pki, "P2", OcppVersion::V16, None).password("nope")).await;
    assert!(matches!(status(wrong), ConnectError::Http(401)));
    let none = connect(wss(&daemon, &pki, "P2", OcppVersion::V16, None)).await;
    assert!(matches!(status(none), ConnectError::Http(401)));

    // The same station with the right password over plain ws: 403, logged with the reason.
    let plain = StationOptions::new(&daemon, "P2", OcppVersion::V16).password("pw-two");
    assert!(matches!(
        status(connect(plain).await),
        ConnectError::Http(403)
    ));
    log_contains(&daemon, "security profile 2 needs the TLS listener").await;

    // A station may use more than its minimum; lower profiles keep the plain listener.
    let p1 = connect(wss(&daemon, &pki, "P1", OcppVersion::V201, None).password("pw-one"))
        .await
        .expect("profile 1 station over wss");
    p1.boot().await;
    let p1_plain = StationOptions::new(&daemon, "P1", OcppVersion::V16).password("pw-one");
    let p1 = connect(p1_plain)
        .await
        .expect("profile 1 over ws (replaces the wss one)");
    p1.boot().await;
    let p0 = Station::connect_to(&daemon, "P0", OcppVersion::V16).await;
    p0.boot().await;

    // The first station was never disturbed.
    cs.call_ok("Heartbeat", json!({})).await;
    let stations = daemon.stations().await;
    let online = |id: &str| {
        stations
            .iter()
            .any(|s| s["id"] == id && s["online"] == true)
    };
    assert!(
        online("P2") && online("P2B") && online("P1") && online("P0"),
        "{stations:?}"
    );
}

#[tokio::test]
async fn profile_3_needs_a_client_certificate_of_this_station_from_the_client_ca() {
    let pki = Pki::new();
    let stations_ca = Ca::new("Test stations CA");
    let client_ca = stations_ca.write(pki.path(), "stations-ca");
    let config = TestConfig::new()
        .ocpp_tls(&pki.cert, &pki.key, Some(&client_ca))
        .station_with_profile("P3", 3, None)
        .station_with_profile("P3B", 3, Some("pw-3b"))
        .station_with_profile("P2", 2, Some("pw-two"));
    let daemon = Daemon::start(&config).await;

    // Its own certificate: accepted, on both versions.
    let good = stations_ca.station("P3");
    let cs = connect(wss(&daemon, &pki, "P3", OcppVersion::V201, Some(&good)))
        .await
        .expect("profile 3 with its certificate");
    cs.boot().await;
    let good_b = stations_ca.station("P3B");
    let cs_b = connect(wss(&daemon, &pki, "P3B", OcppVersion::V16, Some(&good_b)))
        .await
        .expect("profile 3 with its certificate, 1.6");
    cs_b.boot().await;
    // Basic is optional with a certificate, but a wrong password still fails.
    let wrong_pw =
        connect(wss(&daemon, &pki, "P3B", OcppVersion::V16, Some(&good_b)).password("x"));
    assert!(matches!(status(wrong_pw.await), ConnectError::Http(401)));

    // A certificate of another station (same CA): 403.
    let other_cn = stations_ca.station("SOMEONE-ELSE");
    let r = connect(wss(&daemon, &pki, "P3", OcppVersion::V201, Some(&other_cn))).await;
    assert!(matches!(status(r), ConnectError::Http(403)));
    log_contains(&daemon, "client certificate CN is not the station id").await;

    // A certificate from another CA: the TLS handshake fails (no HTTP answer at all).
    let rogue = Ca::new("Rogue CA").station("P3");
    match status(connect(wss(&daemon, &pki, "P3", OcppVersion::V201, Some(&rogue))).await) {
        ConnectError::Other(_) => {}
        other => panic!("expected a TLS failure, got {other}"),
    }
    log_contains(&daemon, "TLS handshake failed").await;

    // No certificate: 403, even with a password; plain ws: 403.
    let r = connect(wss(&daemon, &pki, "P3B", OcppVersion::V201, None).password("pw-3b")).await;
    assert!(matches!(status(r), ConnectError::Http(403)));
    log_contains(&daemon, "security profile 3 needs a client certificate").await;
    let r = connect(StationOptions::new(&daemon, "P3", OcppVersion::V16)).await;
    assert!(matches!(status(r), ConnectError::Http(403)));

    // A profile 2 station may present its certificate instead of (or with) its password.
    let p2_cert = stations_ca.station("P2");
    connect(wss(&daemon, &pki, "P2", OcppVersion::V16, Some(&p2_cert)))
        .await
        .expect("profile 2 station using profile 3")
        .boot()
        .await;

    // Certificate management is a later step: a 2.0.1 station asking for one gets
    // NotImplemented, and stays connected.
    for action in ["SignCertificate", "Get15118EVCertificate"] {
        let payload = json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----", "iso15118SchemaVersion": "x", "action": "Install", "exiRequest": "x"});
        let err = cs.call(action, payload).await.expect_err(action);
        assert_eq!(err.code, "NotImplemented", "{action}: {err}");
    }

    // The good stations stayed connected through all of it.
    cs.call_ok("Heartbeat", json!({})).await;
    cs_b.call_ok("Heartbeat", json!({})).await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_while_stations_stay_connected() {
    let pki = Pki::new();
    let config = TestConfig::new()
        .ocpp_tls(&pki.cert, &pki.key, None)
        .station_with_profile("P2", 2, Some("pw"))
        .station_with_profile("P2B", 2, Some("pw"));
    let mut config = config;
    config.metrics_public = true;
    let daemon = Daemon::start(&config).await;
    let cs = connect(wss(&daemon, &pki, "P2", OcppVersion::V16, None).password("pw"))
        .await
        .expect("connect");
    cs.boot().await;
    let (_, metrics) = daemon.admin_get_raw("/metrics").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ocpp_tls_cert_expiry_seconds{listener=\"ocpp\"}"))
        .unwrap_or_else(|| panic!("expiry metric missing:\n{metrics}"));
    let secs: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 300.0 * 86400.0 && secs < 366.0 * 86400.0, "{line}");

    // A bad file: logged, the old certificate stays in use.
    std::fs::write(&pki.cert, "not a certificate").unwrap();
    sighup(&daemon);
    log_contains(&daemon, "TLS reload failed").await;
    let r = connect(wss(&daemon, &pki, "P2B", OcppVersion::V16, None).password("pw")).await;
    r.expect("the old certificate still serves").boot().await;

    // A certificate from a new CA: after SIGHUP new connections get it...
    let new_ca = Ca::new("Renewed CA");
    new_ca.server(Validity::Current).write(pki.path(), "server");
    sighup(&daemon);
    log_contains(&daemon, "TLS certificate reloaded").await;
    let renewed = StationOptions::tls(
        &daemon,
        "P2B",
        OcppVersion::V201,
        new_ca.client_config(None),
    )
    .password("pw");
    connect(renewed)
        .await
        .expect("new certificate")
        .boot()
        .await;
    let old_trust = connect(wss(&daemon, &pki, "P2B", OcppVersion::V16, None).password("pw")).await;
    assert!(
        matches!(status(old_trust), ConnectError::Other(_)),
        "old CA no longer matches"
    );

    // ...while the station connected before both reloads is still served.
    assert!(
        cs.wait_closed(Duration::from_millis(100)).await.is_none(),
        "the first connection stays up"
    );
    cs.call_ok("Heartbeat", json!({})).await;
}

fn sighup(daemon: &Daemon) {
    let pid = daemon.pid().expect("daemon running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
}

#[tokio::test]
async fn ocpi_over_https_in_both_registration_directions() {
    let pki = Pki::new();
    let (ocpi_cert, ocpi_key) = pki.ca.server(Validity::Current).write(pki.path(), "ocpi");
    let hub_tls = pki.ca.server(Validity::Current);
    let hub_options = || HubOptions {
        tls: Some((hub_tls.cert_pem.clone(), hub_tls.key_pem.clone())),
        trust_pem: Some(pki.ca.cert_pem.clone()),
        ..HubOptions::default()
    };
    // The daemon registers with a hub on HTTPS (trusting it through ocpi.ca_file)...
    let configured = Hub::start_with(hub_options()).await;
    assert!(configured.versions_url().starts_with("https://"));
    let mut config = TestConfig::new()
        .ocpi_tls(&ocpi_cert, &ocpi_key)
        .ocpi_ca_file(&pki.ca_file)
        .ocpi_token_a(TOKEN_A)
        .station("CS001")
        .ocpi_peer(&configured.versions_url(), &configured.token_a());
    config.ocpi_public_url = "https://127.0.0.1:0".into();
    config.metrics_public = true;
    let daemon = Daemon::start(&config).await;
    let (_, metrics) = daemon.admin_get_raw("/metrics").await;
    assert!(
        metrics.contains("ocpp_tls_cert_expiry_seconds{listener=\"ocpi\"}"),
        "{metrics}"
    );
    configured.wait_registered(REGISTER_SOON).await;
    registered_peer(&daemon, &configured.peer_id()).await;
    assert!(
        configured
            .bridge_versions_url()
            .is_some_and(|u| u.starts_with("https://127.0.0.1:")),
        "the daemon advertises its HTTPS URL"
    );

    // ...and a second hub on HTTPS registers with the daemon's HTTPS endpoint.
    let second = Hub::start_with(HubOptions {
        party_id: "HB2".into(),
        ..hub_options()
    })
    .await;
    let versions = format!("https://{}/ocpi/versions", daemon.ocpi_addr());
    second.register_with(&versions, TOKEN_A).await;
    registered_peer(&daemon, &second.party_key()).await;

    // Plain HTTP on the HTTPS listener gets no OCPI answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/ocpi/versions", daemon.ocpi_addr()))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP served on the HTTPS listener"
    );
}

/// A config with `[ocpp.tls]` pointing at `cert`/`key`, written to `dir/config.toml`.
#[tokio::test]
async fn sighup_reloads_ocpi_ca_file_for_outbound_requests() {
    let pki = Pki::new();
    // ocpi.ca_file first holds another CA: the hub's certificate is not trusted.
    let other = Ca::new("Some other CA");
    let ca_file = other.write(pki.path(), "outbound-roots");
    let hub_tls = pki.ca.server(Validity::Current);
    let hub = Hub::start_with(HubOptions {
        tls: Some((hub_tls.cert_pem.clone(), hub_tls.key_pem.clone())),
        trust_pem: Some(pki.ca.cert_pem.clone()),
        ..HubOptions::default()
    })
    .await;
    let config = TestConfig::new()
        .ocpi_port0()
        .ocpi_ca_file(&ca_file)
        .station("CS001")
        .ocpi_peer(&hub.versions_url(), &hub.token_a());
    let daemon = Daemon::start(&config).await;
    log_contains(&daemon, "UnknownIssuer").await;
    assert!(!hub.registered(), "an untrusted hub is not registered");

    // The operator puts the right CA in place and sends SIGHUP: the retried registration
    // trusts it, without a restart.
    std::fs::copy(&pki.ca_file, &ca_file).expect("replace ca_file");
    sighup(&daemon);
    log_contains(&daemon, "ocpi.ca_file reloaded").await;
    hub.wait_registered(REGISTER_SOON).await;
    registered_peer(&daemon, &hub.peer_id()).await;
}

fn tls_config(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let text = TestConfig::new()
        .ocpp_tls(cert, key, None)
        .station("CS001")
        .to_toml(&dir.join("data"));
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check_config_fails(path: &Path, words: &[&str]) {
    let out = check_config(path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config passed: {stderr}");
    for w in words {
        assert!(stderr.contains(w), "stderr must contain `{w}`: {stderr}");
    }
}

#[test]
fn check_config_checks_the_certificate_files() {
    let pki = Pki::new();
    let dir = pki.path();
    // Good files pass, and the certificate is described.
    let out = check_config(&tls_config(dir, &pki.cert, &pki.key));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ocpp.tls: ") && stdout.contains("valid until"),
        "{stdout}"
    );

    // A missing file.
    let missing = dir.join("missing.crt");
    check_config_fails(
        &tls_config(dir, &missing, &pki.key),
        &["ocpp.tls.cert", "missing.crt"],
    );
    // A key that belongs to another certificate.
    let (_, other_key) = pki.ca.server(Validity::Current).write(dir, "other");
    check_config_fails(
        &tls_config(dir, &pki.cert, &other_key),
        &["ocpp.tls.key", "other.key", "does not match"],
    );
    // An expired certificate.
    let (old_cert, old_key) = pki.ca.server(Validity::Expired).write(dir, "old");
    check_config_fails(
        &tls_config(dir, &old_cert, &old_key),
        &["ocpp.tls.cert", "old.crt", "expired"],
    );
    // The daemon refuses to start on the same problem (non-zero exit, key named).
    let mut child = std::process::Command::new(bridge_tests::daemon::bridge_bin())
        .args(["--config"])
        .arg(tls_config(dir, &old_cert, &old_key))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started with an expired certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("ocpp.tls.cert"), "{stderr}");
}
