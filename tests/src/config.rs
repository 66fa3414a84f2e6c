//! Builder for the daemon's TOML configuration as used by the tests.
//!
//! Invariant: every listener is `127.0.0.1:0` (the daemon reports the real ports in its ready
//! file), and the state path is always supplied by [`crate::Daemon`] (a temp dir), so two tests
//! never share ports or data.

use std::fmt::Write as _;
use std::path::Path;

/// One `[[stations]]` entry.
#[derive(Debug, Clone)]
pub struct TestStation {
    /// Station identity (last path segment of the OCPP URL, Basic-auth username).
    pub id: String,
    /// Location id the station belongs to.
    pub location: String,
    /// When set, the daemon requires HTTP Basic auth with this password.
    pub password: Option<String>,
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
    /// `[[stations]]`.
    pub stations: Vec<TestStation>,
    /// Raw TOML appended verbatim (for tests of config validation).
    pub extra_toml: String,
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
            stations: Vec::new(),
            extra_toml: String::new(),
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
        });
        self
    }

    /// Add a station at `LOC1` that must authenticate with HTTP Basic `id:password`.
    pub fn station_with_password(mut self, id: &str, password: &str) -> Self {
        self.stations.push(TestStation {
            id: id.into(),
            location: "LOC1".into(),
            password: Some(password.into()),
        });
        self
    }

    /// Set `[ocpp] heartbeat_interval`.
    pub fn heartbeat_interval(mut self, seconds: u64) -> Self {
        self.heartbeat_interval = seconds;
        self
    }

    /// Set `[ocpp] allow_unknown_stations`.
    pub fn allow_unknown_stations(mut self, allow: bool) -> Self {
        self.allow_unknown_stations = allow;
        self
    }

    /// Set `[log] format`.
    pub fn log_format(mut self, format: &str) -> Self {
        self.log_format = format.into();
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

[ocpi]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:9100"
country_code = "NL"
party_id = "BRG"
business_name = "Example CPO"

[admin]
listen = "127.0.0.1:0"

[[locations]]
id = "LOC1"
name = "Depot"
address = "Main street 1"
city = "Utrecht"
postal_code = "3511AA"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
"#,
            path = quote(&data_dir.to_string_lossy()),
            log_format = quote(&self.log_format),
            log_level = quote(&self.log_level),
            allow = self.allow_unknown_stations,
            hb = self.heartbeat_interval,
            ct = self.call_timeout,
            pi = self.ping_interval,
            mfb = self.max_frame_bytes,
        );
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
        }
        if !self.extra_toml.is_empty() {
            s.push('\n');
            s.push_str(&self.extra_toml);
            s.push('\n');
        }
        s
    }
}

/// A TOML basic string. JSON string escapes are a subset of TOML's.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}
