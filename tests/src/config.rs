//! Builder for the daemon's TOML configuration as used by the tests.
//!
//! Invariant: every listener is `127.0.0.1:0` (the daemon reports the real ports in its ready
//! file), and the state path is always supplied by [`crate::Daemon`] (a temp dir), so two tests
//! never share ports or data.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One `[[stations]]` entry.
#[derive(Debug, Clone)]
pub struct TestStation {
    /// Station identity (last path segment of the OCPP URL, Basic-auth username).
    pub id: String,
    /// Location id the station belongs to.
    pub location: String,
    /// When set, the daemon requires HTTP Basic auth with this password.
    pub password: Option<String>,
    /// Raw TOML written right after the station's keys (more keys, `[[stations.connectors]]`).
    pub extra: String,
    /// `security_profile` (daemon default when `None`).
    pub security_profile: Option<u8>,
}

/// `[ocpp.tls]` / `[ocpi.tls]` files (absolute paths).
#[derive(Debug, Clone)]
pub struct TestTls {
    /// `cert`.
    pub cert: PathBuf,
    /// `key`.
    pub key: PathBuf,
    /// `client_ca` (OCPP only).
    pub client_ca: Option<PathBuf>,
}

/// One `[[locations]]` entry (address fields are fixed test values).
#[derive(Debug, Clone)]
pub struct TestLocation {
    /// OCPI Location id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `tariff_id` of the location, if any.
    pub tariff_id: Option<String>,
}

/// One `[[ocpi.peers]]` entry: a platform the daemon registers with at start-up.
#[derive(Debug, Clone)]
pub struct TestPeer {
    /// The peer's versions URL.
    pub versions_url: String,
    /// The token A the peer handed out.
    pub token_a: String,
    /// `versions = [...]` pin (none written when empty).
    pub versions: Vec<String>,
    /// `quirks = [...]` (none written when empty).
    pub quirks: Vec<String>,
}

/// One inline `[[tariffs]]` entry: a single ENERGY price component, owned by NL/BRG.
#[derive(Debug, Clone)]
pub struct TestTariff {
    /// Tariff id.
    pub id: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Price per kWh excluding VAT.
    pub energy_price: f64,
    /// VAT percentage.
    pub vat: f64,
}

/// The knobs of the daemon config that tests touch; the rest is fixed.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// `[log] format`: `"text"` or `"json"`.
    pub log_format: String,
    /// `[log] level`.
    pub log_level: String,
    /// `[ocpp] allow_unknown_stations`.
    pub allow_unknown_stations: bool,
    /// `[ocpp] heartbeat_interval` in seconds (returned as BootNotification `interval`).
    pub heartbeat_interval: u64,
    /// `[ocpp] call_timeout` in seconds.
    pub call_timeout: u64,
    /// `[ocpp] ping_interval` in seconds (0 = off).
    pub ping_interval: u64,
    /// `[ocpp] max_frame_bytes`.
    pub max_frame_bytes: u64,
    /// `[ocpp] free_vend`: accept identifiers no eMSP knows (default true here, so OCPP-only
    /// tests need no tokens; OCPI tests that check authorization switch it off).
    pub free_vend: bool,
    /// `[[stations]]`.
    pub stations: Vec<TestStation>,
    /// Raw TOML appended verbatim (for tests of config validation).
    pub extra_toml: String,
    /// `admin.token`.
    pub admin_token: Option<String>,
    /// `admin.metrics_public`.
    pub metrics_public: bool,
    /// `[ocpi] public_url`; `http://127.0.0.1:0` makes the daemon fill in its bound OCPI port.
    pub ocpi_public_url: String,
    /// `[ocpi] token_a`: a peer may register with it.
    pub ocpi_token_a: Option<String>,
    /// `[ocpi] offline_grace` in seconds (daemon default when `None`).
    pub offline_grace: Option<u64>,
    /// `[[ocpi.peers]]`.
    pub ocpi_peers: Vec<TestPeer>,
    /// `[[locations]]` (default: `LOC1` "Depot").
    pub locations: Vec<TestLocation>,
    /// Inline `[[tariffs]]`.
    pub tariffs: Vec<TestTariff>,
    /// Complete OCPI Tariff objects rendered as further inline `[[tariffs]]`.
    pub tariff_objects: Vec<serde_json::Value>,
    /// `[ocpp] local_id_tags` (not written when empty).
    pub local_id_tags: Vec<String>,
    /// `[ocpi] authorize_timeout_ms` (daemon default when `None`).
    pub authorize_timeout_ms: Option<u64>,
    /// `[ocpi] token_pull_interval` in seconds (daemon default when `None`).
    pub token_pull_interval: Option<u64>,
    /// `[ocpi] token_reconcile_interval` in seconds (daemon default when `None`).
    pub token_reconcile_interval: Option<u64>,
    /// `[ocpi] session_update_interval` in seconds (daemon default when `None`).
    pub session_update_interval: Option<u64>,
    /// `[ocpi] token_rotation_days` (daemon default, off, when `None`).
    pub token_rotation_days: Option<f64>,
    /// `header_timeout`, `idle_timeout`, `max_connections` of both `[ocpi]` and `[admin]`
    /// (daemon defaults when `None`).
    pub http_limits: Option<(u64, u64, usize)>,
    /// `ocpp.tls_listen = "127.0.0.1:0"` with these `[ocpp.tls]` files.
    pub ocpp_tls: Option<TestTls>,
    /// `[ocpi.tls]`: the OCPI listener serves HTTPS.
    pub ocpi_tls: Option<TestTls>,
    /// `ocpi.ca_file`.
    pub ocpi_ca_file: Option<PathBuf>,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            log_level: "debug".into(),
            allow_unknown_stations: false,
            heartbeat_interval: 300,
            call_timeout: 30,
            ping_interval: 0,
            max_frame_bytes: 65536,
            free_vend: true,
            stations: Vec::new(),
            extra_toml: String::new(),
            admin_token: None,
            metrics_public: false,
            ocpi_public_url: "http://127.0.0.1:9100".into(),
            ocpi_token_a: None,
            offline_grace: None,
            ocpi_peers: Vec::new(),
            locations: vec![TestLocation {
                id: "LOC1".into(),
                name: "Depot".into(),
                tariff_id: None,
            }],
            tariffs: Vec::new(),
            tariff_objects: Vec::new(),
            local_id_tags: Vec::new(),
            authorize_timeout_ms: None,
            token_pull_interval: None,
            token_reconcile_interval: None,
            session_update_interval: None,
            token_rotation_days: None,
            http_limits: None,
            ocpp_tls: None,
            ocpi_tls: None,
            ocpi_ca_file: None,
        }
    }
}

impl TestConfig {
    /// A config without stations (add them with [`TestConfig::station`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a station at `LOC1` without password.
    pub fn station(mut self, id: &str) -> Self {
        self.stations.push(TestStation {
            id: id.into(),
            location: "LOC1".into(),
            password: None,
            extra: String::new(),
            security_profile: None,
        });
        self
    }

    /// Add a station at `LOC1` that must authenticate with HTTP Basic `id:password`.
    pub fn station_with_password(mut self, id: &str, password: &str) -> Self {
        self.stations.push(TestStation {
            id: id.into(),
            location: "LOC1".into(),
            password: Some(password.into()),
            extra: String::new(),
            security_profile: None,
        });
        self
    }

    /// Add a station at `LOC1` with a minimum `security_profile` (and a password if given).
    pub fn station_with_profile(mut self, id: &str, profile: u8, password: Option<&str>) -> Self {
        self.stations.push(TestStation {
            id: id.into(),
            location: "LOC1".into(),
            password: password.map(str::to_owned),
            extra: String::new(),
            security_profile: Some(profile),
        });
        self
    }

    /// Serve `wss://` on `ocpp.tls_listen = "127.0.0.1:0"` with these files.
    pub fn ocpp_tls(mut self, cert: &Path, key: &Path, client_ca: Option<&Path>) -> Self {
        self.ocpp_tls = Some(TestTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: client_ca.map(Path::to_owned),
        });
        self
    }

    /// Serve OCPI over HTTPS with these files.
    pub fn ocpi_tls(mut self, cert: &Path, key: &Path) -> Self {
        self.ocpi_tls = Some(TestTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: None,
        });
        self
    }

    /// Trust the CA in `path` for outbound OCPI requests (`ocpi.ca_file`).
    pub fn ocpi_ca_file(mut self, path: &Path) -> Self {
        self.ocpi_ca_file = Some(path.to_owned());
        self
    }

    /// Set `[ocpp] heartbeat_interval`.
    pub fn heartbeat_interval(mut self, seconds: u64) -> Self {
        self.heartbeat_interval = seconds;
        self
    }

    /// Set `[ocpp] free_vend`.
    pub fn free_vend(mut self, on: bool) -> Self {
        self.free_vend = on;
        self
    }

    /// Set `[ocpp] allow_unknown_stations`.
    pub fn allow_unknown_stations(mut self, allow: bool) -> Self {
        self.allow_unknown_stations = allow;
        self
    }

    /// Add a station at `LOC1` with raw TOML after its keys (`capabilities = [...]`,
    /// `[[stations.connectors]]` tables).
    pub fn station_toml(mut self, id: &str, extra: &str) -> Self {
        self.stations.push(TestStation {
            id: id.into(),
            location: "LOC1".into(),
            password: None,
            extra: extra.into(),
            security_profile: None,
        });
        self
    }

    /// Add a station (no password) at location `location`.
    pub fn station_at(mut self, id: &str, location: &str) -> Self {
        self.stations.push(TestStation {
            id: id.into(),
            location: location.into(),
            password: None,
            extra: String::new(),
            security_profile: None,
        });
        self
    }

    /// OCPI on port 0 with `public_url = "http://127.0.0.1:0"` (the daemon substitutes its port).
    pub fn ocpi_port0(mut self) -> Self {
        self.ocpi_public_url = "http://127.0.0.1:0".into();
        self
    }

    /// Set `[ocpi] token_a`.
    pub fn ocpi_token_a(mut self, token: &str) -> Self {
        self.ocpi_token_a = Some(token.into());
        self
    }

    /// Set `[ocpi] offline_grace` (seconds).
    pub fn offline_grace(mut self, seconds: u64) -> Self {
        self.offline_grace = Some(seconds);
        self
    }

    /// Add an `[[ocpi.peers]]` entry.
    pub fn ocpi_peer(mut self, versions_url: &str, token_a: &str) -> Self {
        self.ocpi_peers.push(TestPeer {
            versions_url: versions_url.into(),
            token_a: token_a.into(),
            versions: Vec::new(),
            quirks: Vec::new(),
        });
        self
    }

    /// Add an `[[ocpi.peers]]` entry with a version pin and quirks.
    pub fn ocpi_peer_with(
        mut self,
        versions_url: &str,
        token_a: &str,
        versions: &[&str],
        quirks: &[&str],
    ) -> Self {
        self.ocpi_peers.push(TestPeer {
            versions_url: versions_url.into(),
            token_a: token_a.into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            quirks: quirks.iter().map(|v| v.to_string()).collect(),
        });
        self
    }

    /// Add a `[[locations]]` entry (no tariff).
    pub fn location(mut self, id: &str) -> Self {
        self.locations.push(TestLocation {
            id: id.into(),
            name: format!("Site {id}"),
            tariff_id: None,
        });
        self
    }

    /// Set `tariff_id` of the location `location` (which must exist already).
    pub fn location_tariff(mut self, location: &str, tariff_id: &str) -> Self {
        let loc = self
            .locations
            .iter_mut()
            .find(|l| l.id == location)
            .unwrap_or_else(|| panic!("no location {location} in the test config"));
        loc.tariff_id = Some(tariff_id.into());
        self
    }

    /// Add an inline `[[tariffs]]` entry with one ENERGY price component (21 % VAT).
    pub fn tariff(mut self, id: &str, currency: &str, energy_price: f64) -> Self {
        self.tariffs.push(TestTariff {
            id: id.into(),
            currency: currency.into(),
            energy_price,
            vat: 21.0,
        });
        self
    }

    /// Add a complete OCPI 2.2.1 Tariff object as an inline `[[tariffs]]` entry.
    pub fn tariff_object(mut self, tariff: serde_json::Value) -> Self {
        self.tariff_objects.push(tariff);
        self
    }

    /// Set `[ocpp] local_id_tags`.
    pub fn local_id_tags(mut self, tags: &[&str]) -> Self {
        self.local_id_tags = tags.iter().map(|t| (*t).to_string()).collect();
        self
    }

    /// Set `[ocpi] authorize_timeout_ms`.
    pub fn authorize_timeout_ms(mut self, ms: u64) -> Self {
        self.authorize_timeout_ms = Some(ms);
        self
    }

    /// Set `[ocpi] token_reconcile_interval` (seconds).
    pub fn token_reconcile_interval(mut self, seconds: u64) -> Self {
        self.token_reconcile_interval = Some(seconds);
        self
    }

    /// Set `[ocpi] token_pull_interval` (seconds).
    pub fn token_pull_interval(mut self, seconds: u64) -> Self {
        self.token_pull_interval = Some(seconds);
        self
    }

    /// Set the OCPI and admin listeners' header/idle timeouts (seconds) and connection cap.
    pub fn http_limits(
        mut self,
        header_timeout: u64,
        idle_timeout: u64,
        max_connections: usize,
    ) -> Self {
        self.http_limits = Some((header_timeout, idle_timeout, max_connections));
        self
    }

    /// Set `[ocpi] token_rotation_days` (fractions of a day allowed).
    pub fn token_rotation_days(mut self, days: f64) -> Self {
        self.token_rotation_days = Some(days);
        self
    }

    /// Set `[ocpi] session_update_interval` (seconds).
    pub fn session_update_interval(mut self, seconds: u64) -> Self {
        self.session_update_interval = Some(seconds);
        self
    }

    /// Set `[log] format`.
    pub fn log_format(mut self, format: &str) -> Self {
        self.log_format = format.into();
        self
    }

    /// `admin.token`.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_string());
        self
    }

    /// `admin.metrics_public`.
    pub fn metrics_public(mut self, public: bool) -> Self {
        self.metrics_public = public;
        self
    }

    /// Render the TOML with `state.path = data_dir`.
    pub fn to_toml(&self, data_dir: &Path) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"[state]
path = {path}

[log]
format = {log_format}
level = {log_level}

[ocpp]
listen = "127.0.0.1:0"
allow_unknown_stations = {allow}
heartbeat_interval = {hb}
call_timeout = {ct}
ping_interval = {pi}
max_frame_bytes = {mfb}
free_vend = {fv}
{local_tags}{tls_listen}
[ocpi]
listen = "127.0.0.1:0"
public_url = {public_url}
country_code = "NL"
party_id = "BRG"
business_name = "Example CPO"
"#,
            path = quote(&data_dir.to_string_lossy()),
            log_format = quote(&self.log_format),
            log_level = quote(&self.log_level),
            allow = self.allow_unknown_stations,
            hb = self.heartbeat_interval,
            ct = self.call_timeout,
            pi = self.ping_interval,
            mfb = self.max_frame_bytes,
            fv = self.free_vend,
            local_tags = if self.local_id_tags.is_empty() {
                String::new()
            } else {
                format!(
                    "local_id_tags = [{}]\n",
                    self.local_id_tags
                        .iter()
                        .map(|t| quote(t))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            public_url = quote(&self.ocpi_public_url),
            tls_listen = if self.ocpp_tls.is_some() {
                "tls_listen = \"127.0.0.1:0\"\n"
            } else {
                ""
            },
        );
        if let Some(ca) = &self.ocpi_ca_file {
            let _ = writeln!(s, "ca_file = {}", quote(&ca.to_string_lossy()));
        }
        if let Some(token) = &self.ocpi_token_a {
            let _ = writeln!(s, "token_a = {}", quote(token));
        }
        if let Some(grace) = self.offline_grace {
            let _ = writeln!(s, "offline_grace = {grace}");
        }
        if let Some(ms) = self.authorize_timeout_ms {
            let _ = writeln!(s, "authorize_timeout_ms = {ms}");
        }
        if let Some(secs) = self.token_reconcile_interval {
            let _ = writeln!(s, "token_reconcile_interval = {secs}");
        }
        if let Some(secs) = self.token_pull_interval {
            let _ = writeln!(s, "token_pull_interval = {secs}");
        }
        if let Some(secs) = self.session_update_interval {
            let _ = writeln!(s, "session_update_interval = {secs}");
        }
        if let Some(days) = self.token_rotation_days {
            let _ = writeln!(s, "token_rotation_days = {days:?}");
        }
        let limits = self.http_limits.map(|(h, i, m)| {
            format!("header_timeout = {h}\nidle_timeout = {i}\nmax_connections = {m}\n")
        });
        if let Some(l) = &limits {
            s.push_str(l);
        }
        for peer in &self.ocpi_peers {
            let _ = write!(
                s,
                "\n[[ocpi.peers]]\nversions_url = {}\ntoken_a = {}\n",
                quote(&peer.versions_url),
                quote(&peer.token_a)
            );
            let list = |items: &[String]| {
                items
                    .iter()
                    .map(|i| quote(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !peer.versions.is_empty() {
                let _ = writeln!(s, "versions = [{}]", list(&peer.versions));
            }
            if !peer.quirks.is_empty() {
                let _ = writeln!(s, "quirks = [{}]", list(&peer.quirks));
            }
        }
        s.push_str("\n[admin]\nlisten = \"127.0.0.1:0\"\n");
        if let Some(l) = &limits {
            s.push_str(l);
        }
        if let Some(token) = &self.admin_token {
            let _ = writeln!(s, "token = {}", quote(token));
        }
        if self.metrics_public {
            s.push_str("metrics_public = true\n");
        }
        for loc in &self.locations {
            let _ = write!(
                s,
                r#"
[[locations]]
id = {id}
name = {name}
address = "Main street 1"
city = "Utrecht"
postal_code = "3511AA"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
"#,
                id = quote(&loc.id),
                name = quote(&loc.name),
            );
            if let Some(t) = &loc.tariff_id {
                let _ = writeln!(s, "tariff_id = {}", quote(t));
            }
        }
        for st in &self.stations {
            let _ = write!(
                s,
                "\n[[stations]]\nid = {}\nlocation = {}\n",
                quote(&st.id),
                quote(&st.location)
            );
            if let Some(pw) = &st.password {
                let _ = writeln!(s, "password = {}", quote(pw));
            }
            if let Some(p) = st.security_profile {
                let _ = writeln!(s, "security_profile = {p}");
            }
            if !st.extra.is_empty() {
                s.push_str(&st.extra);
                s.push('\n');
            }
        }
        for t in &self.tariffs {
            let _ = write!(
                s,
                r#"
[[tariffs]]
country_code = "NL"
party_id = "BRG"
id = {id}
currency = {currency}
last_updated = "2026-01-01T00:00:00Z"

[[tariffs.elements]]

[[tariffs.elements.price_components]]
type = "ENERGY"
price = {price}
vat = {vat}
step_size = 1
"#,
                id = quote(&t.id),
                currency = quote(&t.currency),
                price = toml_float(t.energy_price),
                vat = toml_float(t.vat),
            );
        }
        for t in &self.tariff_objects {
            s.push_str("\n[[tariffs]]\n");
            if let Some(obj) = t.as_object() {
                for (k, v) in obj {
                    if !v.is_null() {
                        let _ = writeln!(s, "{k} = {}", toml_value(v));
                    }
                }
            }
        }
        for (section, tls) in [("ocpp.tls", &self.ocpp_tls), ("ocpi.tls", &self.ocpi_tls)] {
            if let Some(t) = tls {
                let _ = write!(
                    s,
                    "\n[{section}]\ncert = {}\nkey = {}\n",
                    quote(&t.cert.to_string_lossy()),
                    quote(&t.key.to_string_lossy())
                );
                if let Some(ca) = &t.client_ca {
                    let _ = writeln!(s, "client_ca = {}", quote(&ca.to_string_lossy()));
                }
            }
        }
        if !self.extra_toml.is_empty() {
            s.push('\n');
            s.push_str(&self.extra_toml);
            s.push('\n');
        }
        s
    }
}

/// A TOML float literal (always with a decimal point).
fn toml_float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A JSON value as a TOML inline value (objects as inline tables; `null` members dropped).
fn toml_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "\"\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(t) => quote(t),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{} = {}", quote(k), toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A TOML basic string. JSON string escapes are a subset of TOML's.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}
