//! The daemon's configuration: typed settings, layered loading and validation.
//!
//! Layers: serde defaults < the TOML file (`--config`, or the embedded `config/default.toml`
//! when none is given) < environment variables `BRIDGE__SECTION__KEY`. Unknown keys are an
//! error that names the key; semantic checks (a station's location exists, country codes have
//! the right length, tariffs are complete) name the key too. Secrets are [`SecretString`]s and
//! never appear in `Debug` output or logs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The embedded configuration used when no `--config` is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

/// Everything the daemon is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[state]`
    #[serde(default)]
    pub state: StateSettings,
    /// `[log]`
    #[serde(default)]
    pub log: LogSettings,
    /// `[ocpp]`
    #[serde(default)]
    pub ocpp: OcppSettings,
    /// `[ocpi]`
    #[serde(default)]
    pub ocpi: OcpiSettings,
    /// `[admin]`
    #[serde(default)]
    pub admin: AdminSettings,
    /// `[[locations]]`
    #[serde(default)]
    pub locations: Vec<LocationSettings>,
    /// `[[stations]]`
    #[serde(default)]
    pub stations: Vec<StationSettings>,
    /// `[[tariffs]]`: complete OCPI 2.2.1 Tariff objects.
    #[serde(default)]
    pub tariffs: Vec<serde_json::Value>,
    /// `tariffs_file`: a JSON array of OCPI 2.2.1 Tariff objects (relative to the config file).
    #[serde(default)]
    pub tariffs_file: Option<PathBuf>,
}

/// `[state]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// sled directory.
    pub path: PathBuf,
    /// sled page cache in MiB.
    pub cache_mb: u64,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            path: PathBuf::from("./data"),
            cache_mb: 64,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `bridge=debug,ocpp=info`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[ocpp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcppSettings {
    /// Websocket listener; stations connect to `ws://HOST:PORT/ocpp/{station_id}`.
    pub listen: SocketAddr,
    /// Accept station ids that are not in `[[stations]]` (without a password).
    pub allow_unknown_stations: bool,
    /// Heartbeat interval in seconds, sent in BootNotification responses.
    pub heartbeat_interval: u32,
    /// Seconds to wait for a station's answer to a CALL.
    pub call_timeout: u64,
    /// Seconds between websocket pings to each station (0 = off).
    pub ping_interval: u64,
    /// Largest accepted websocket message, in bytes.
    pub max_frame_bytes: usize,
    /// Most concurrent station connections; above it a station gets HTTP 503 at once.
    pub max_connections: usize,
    /// Seconds a station may take from TCP connect to the websocket upgrade.
    pub handshake_timeout: u64,
    /// Most handshakes in progress from one IP address (more get HTTP 429 at once).
    pub max_pending_per_address: usize,
    /// Wrong station passwords from one IP address per minute before it gets HTTP 429.
    pub max_auth_failures_per_minute: u32,
    /// The operator's own identifiers (fleet, staff cards): accepted locally without asking any
    /// eMSP; their transactions produce no OCPI Session or CDR.
    pub local_id_tags: Vec<String>,
    /// Accept every identifier no eMSP accepted or rejected (free charging, demos). Known eMSP
    /// tokens still follow their eMSP's rules.
    pub free_vend: bool,
    /// Optional second station listener with TLS: `wss://HOST:PORT/ocpp/{station_id}`.
    pub tls_listen: Option<SocketAddr>,
    /// `[ocpp.tls]`: certificate, key and optional client CA of `tls_listen`.
    pub tls: Option<OcppTlsSettings>,
}

/// `[ocpp.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcppTlsSettings {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, RSA or SEC1).
    pub key: PathBuf,
    /// PEM CA certificate(s) station client certificates must chain to (security profile 3).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[ocpi.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, RSA or SEC1).
    pub key: PathBuf,
}

impl Default for OcppSettings {
    fn default() -> Self {
        OcppSettings {
            listen: "0.0.0.0:9000".parse().expect("static address"),
            allow_unknown_stations: false,
            heartbeat_interval: 300,
            call_timeout: 30,
            ping_interval: 60,
            max_frame_bytes: 64 * 1024,
            max_connections: 20_000,
            handshake_timeout: 5,
            max_pending_per_address: 32,
            max_auth_failures_per_minute: 10,
            local_id_tags: Vec::new(),
            free_vend: false,
            tls_listen: None,
            tls: None,
        }
    }
}

impl OcppSettings {
    /// The OCPP server's settings.
    pub fn server_settings(&self) -> ocpp::ServerSettings {
        ocpp::ServerSettings {
            max_frame_bytes: self.max_frame_bytes,
            call_timeout: Duration::from_secs(self.call_timeout),
            ping_interval: Duration::from_secs(self.ping_interval),
            max_connections: self.max_connections,
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            max_pending_per_address: self.max_pending_per_address,
            max_auth_failures_per_minute: self.max_auth_failures_per_minute,
            ..ocpp::ServerSettings::default()
        }
    }
}

/// `[ocpi]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcpiSettings {
    /// HTTP listener for OCPI.
    pub listen: SocketAddr,
    /// Public base URL; the versions endpoint is `{public_url}/ocpi/versions`.
    pub public_url: String,
    /// Our ISO 3166-1 alpha-2 country code.
    pub country_code: String,
    /// Our party id (3 characters).
    pub party_id: String,
    /// Our business name.
    pub business_name: String,
    /// Token A a peer may register with.
    pub token_a: Option<SecretString>,
    /// Seconds a station may be offline before its EVSEs are shown as UNKNOWN.
    pub offline_grace: u64,
    /// Milliseconds to wait for an eMSP's real-time authorization before the whitelist
    /// fallback applies.
    pub authorize_timeout_ms: u64,
    /// Seconds between incremental token pulls (`date_from` = the last pull's start) from each
    /// eMSP's Tokens sender (0 = only after registration and start-up).
    pub token_pull_interval: u64,
    /// Seconds between full token reconciles (every token listed again; tokens the eMSP no
    /// longer lists are removed) from each eMSP's Tokens sender (0 = only the first pull).
    pub token_reconcile_interval: u64,
    /// Seconds between Session updates pushed for one session (the final update is always sent).
    pub session_update_interval: u64,
    /// Days after which each peer's credentials tokens are rotated (credentials PUT); fractions
    /// allowed, 0 = off.
    pub token_rotation_days: f64,
    /// Pushes in flight per peer at once (each object's own pushes stay in order); 1 sends one
    /// at a time.
    pub push_concurrency: usize,
    /// `[[ocpi.peers]]`: platforms the bridge registers with.
    pub peers: Vec<PeerSettings>,
    /// Seconds a client may take to send a request's head.
    pub header_timeout: u64,
    /// Seconds a connection may stay open with no request in flight.
    pub idle_timeout: u64,
    /// Most open OCPI connections; more are answered HTTP 503 at once.
    pub max_connections: usize,
    /// OCPI versions served and negotiated (`["2.3.0", "2.2.1", "2.1.1"]` by default).
    pub versions: Vec<String>,
    /// `[ocpi.tls]`: serve `listen` over HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Extra PEM roots trusted for outbound OCPI requests (the system roots always are).
    pub ca_file: Option<PathBuf>,
}

impl OcpiSettings {
    /// `versions` parsed (checked by `Settings::validate`; unknown entries are skipped here).
    pub fn ocpi_versions(&self) -> Vec<ocpi::types::OcpiVersion> {
        self.versions
            .iter()
            .filter_map(|v| ocpi::types::OcpiVersion::parse(v))
            .collect()
    }

    /// The OCPI listener's limits.
    pub fn http_limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            header_timeout: Duration::from_secs(self.header_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections,
        }
    }
}

impl Default for OcpiSettings {
    fn default() -> Self {
        OcpiSettings {
            listen: "0.0.0.0:9100".parse().expect("static address"),
            public_url: "http://127.0.0.1:9100".into(),
            country_code: "NL".into(),
            party_id: "BRG".into(),
            business_name: "Example CPO".into(),
            token_a: None,
            offline_grace: 300,
            authorize_timeout_ms: 3000,
            token_pull_interval: 6 * 3600,
            token_reconcile_interval: 24 * 3600,
            session_update_interval: 60,
            token_rotation_days: 0.0,
            push_concurrency: 8,
            peers: Vec::new(),
            header_timeout: 10,
            idle_timeout: 60,
            max_connections: 1024,
            versions: ocpi::types::OcpiVersion::ALL
                .iter()
                .map(|v| v.as_str().to_owned())
                .collect(),
            tls: None,
            ca_file: None,
        }
    }
}

/// `[[ocpi.peers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// The peer's versions endpoint.
    pub versions_url: String,
    /// The token A the peer gave us.
    pub token_a: SecretString,
    /// OCPI versions allowed with this peer (empty: all of `ocpi.versions`); registration
    /// picks the highest one both sides offer.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Known deviations of the peer's implementation to play along with (see README).
    #[serde(default)]
    pub quirks: Vec<String>,
}

impl PeerSettings {
    /// The peer's version pin and quirks (checked by `Settings::validate`).
    pub fn options(&self) -> ocpi::PeerOptions {
        ocpi::PeerOptions {
            versions: self
                .versions
                .iter()
                .filter_map(|v| ocpi::types::OcpiVersion::parse(v))
                .collect(),
            quirks: self
                .quirks
                .iter()
                .filter_map(|q| ocpi::Quirk::ALL.into_iter().find(|k| k.as_str() == q))
                .collect(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Admin HTTP listener (keep it on loopback).
    pub listen: SocketAddr,
    /// Optional bearer token required on `/admin/*` and `/metrics`.
    pub token: Option<SecretString>,
    /// Serve `/metrics` without the token (for a scraper that cannot send one).
    pub metrics_public: bool,
    /// Seconds a client may take to send a request's head.
    pub header_timeout: u64,
    /// Seconds a connection may stay open with no request in flight.
    pub idle_timeout: u64,
    /// Most open admin connections; more are answered HTTP 503 at once.
    pub max_connections: usize,
}

impl AdminSettings {
    /// The admin listener's limits.
    pub fn http_limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            header_timeout: Duration::from_secs(self.header_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections,
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: "127.0.0.1:9200".parse().expect("static address"),
            token: None,
            metrics_public: false,
            header_timeout: 10,
            idle_timeout: 60,
            max_connections: 64,
        }
    }
}

/// `[[locations]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationSettings {
    /// OCPI Location id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Street and number.
    pub address: String,
    /// City.
    pub city: String,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// State or province.
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-3 country.
    pub country: String,
    /// Latitude in decimal degrees, as text (OCPI keeps it a string).
    pub latitude: String,
    /// Longitude in decimal degrees, as text.
    pub longitude: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Tariff applied to this location's connectors.
    #[serde(default)]
    pub tariff_id: Option<String>,
    /// Whether the location is published to drivers.
    #[serde(default = "yes")]
    pub publish: bool,
}

fn yes() -> bool {
    true
}

/// `[[stations]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSettings {
    /// Station identity (last path segment of its URL).
    pub id: String,
    /// The `[[locations]]` id it stands at.
    pub location: String,
    /// HTTP Basic password the station must present (username = station id).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// OCPI ConnectorType of its connectors.
    #[serde(default = "default_standard")]
    pub connector_standard: String,
    /// OCPI ConnectorFormat: `SOCKET` or `CABLE`.
    #[serde(default = "default_format")]
    pub connector_format: String,
    /// OCPI PowerType: `AC_1_PHASE`, `AC_2_PHASE`, `AC_2_PHASE_SPLIT`, `AC_3_PHASE`, `DC`.
    #[serde(default = "default_power_type")]
    pub power_type: String,
    /// Max voltage (V).
    #[serde(default = "default_voltage")]
    pub max_voltage: u32,
    /// Max amperage (A).
    #[serde(default = "default_amperage")]
    pub max_amperage: u32,
    /// Max electric power (W); derived from voltage, amperage and phases when absent.
    #[serde(default)]
    pub max_electric_power: Option<u32>,
    /// OCPI tariff ids for this station's connectors (defaults to the location's tariff).
    #[serde(default)]
    pub tariff_ids: Vec<String>,
    /// OCPI EVSE capabilities of this station's EVSEs; replaces [`DEFAULT_CAPABILITIES`].
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// `[[stations.connectors]]`: per-connector data of a multi-standard charger; entry N
    /// describes OCPP connector N (see [`StationSettings::connector_data`]). Empty: every
    /// connector gets the station's keys.
    #[serde(default)]
    pub connectors: Vec<ConnectorSettings>,
    /// The minimum OCPP security profile (0..=3) this station must connect with; default 1
    /// with a `password`, else 0. See [`StationSettings::minimum_profile`].
    #[serde(default)]
    pub security_profile: Option<u8>,
}

impl StationSettings {
    /// The station's minimum security profile (the configured one, else 1 with a password,
    /// else 0). Validation guarantees a configured value is 0..=3.
    pub fn minimum_profile(&self) -> ocpp::security::SecurityProfile {
        use ocpp::security::SecurityProfile;
        let default = if self.password.is_some() { 1 } else { 0 };
        SecurityProfile::from_number(self.security_profile.unwrap_or(default))
            .unwrap_or(SecurityProfile::TlsClientCert)
    }
}

/// `[[stations.connectors]]`: one OCPI Connector of a station. A key left out takes the
/// station's value (`connector_standard`, `connector_format`, `power_type`, `max_voltage`,
/// `max_amperage`, `max_electric_power`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// OCPI ConnectorType (`IEC_62196_T2_COMBO`, `CHADEMO`, …).
    #[serde(default)]
    pub standard: Option<String>,
    /// `SOCKET` or `CABLE`.
    #[serde(default)]
    pub format: Option<String>,
    /// OCPI PowerType.
    #[serde(default)]
    pub power_type: Option<String>,
    /// Max voltage (V).
    #[serde(default)]
    pub max_voltage: Option<u32>,
    /// Max amperage (A).
    #[serde(default)]
    pub max_amperage: Option<u32>,
    /// Max electric power (W); derived from voltage, amperage and phases when absent.
    #[serde(default)]
    pub max_electric_power: Option<u32>,
}

/// The data of one OCPI Connector, resolved from a station's keys and its
/// `[[stations.connectors]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorData {
    /// OCPI ConnectorType.
    pub standard: String,
    /// OCPI ConnectorFormat.
    pub format: String,
    /// OCPI PowerType.
    pub power_type: String,
    /// Max voltage (V).
    pub max_voltage: u32,
    /// Max amperage (A).
    pub max_amperage: u32,
    /// Max electric power (W), given or derived (V × A × phases).
    pub max_electric_power: u32,
}

impl StationSettings {
    /// The connector data of OCPP connector `ocpp_connector` (1-based): the
    /// `[[stations.connectors]]` entry at that position over the station's keys, or the
    /// station's keys alone when there is no such entry.
    ///
    /// OCPP connector numbers: on 1.6, connector N is EVSE N (with OCPI connector `1`), so
    /// entry N describes EVSE N; on 2.0.1, entry N describes connector N of each EVSE.
    pub fn connector_data(&self, ocpp_connector: u32) -> ConnectorData {
        let entry = (ocpp_connector as usize)
            .checked_sub(1)
            .and_then(|i| self.connectors.get(i))
            .cloned()
            .unwrap_or_default();
        let power_type = entry.power_type.unwrap_or_else(|| self.power_type.clone());
        let max_voltage = entry.max_voltage.unwrap_or(self.max_voltage);
        let max_amperage = entry.max_amperage.unwrap_or(self.max_amperage);
        // An entry with its own voltage or amperage does not inherit the station's power.
        let own_electrics = entry.max_voltage.is_some() || entry.max_amperage.is_some();
        let max_electric_power = entry
            .max_electric_power
            .or(if own_electrics {
                None
            } else {
                self.max_electric_power
            })
            .unwrap_or_else(|| {
                max_voltage
                    .saturating_mul(max_amperage)
                    .saturating_mul(phases(&power_type))
            });
        ConnectorData {
            standard: entry
                .standard
                .unwrap_or_else(|| self.connector_standard.clone()),
            format: entry
                .format
                .unwrap_or_else(|| self.connector_format.clone()),
            power_type,
            max_voltage,
            max_amperage,
            max_electric_power,
        }
    }
}

/// Phases of an OCPI PowerType (for the derived `max_electric_power`).
pub fn phases(power_type: &str) -> u32 {
    match power_type {
        "AC_3_PHASE" => 3,
        "AC_2_PHASE" | "AC_2_PHASE_SPLIT" => 2,
        _ => 1,
    }
}

/// The OCPI 2.2.1 PowerType values.
pub const POWER_TYPES: [&str; 5] = [
    "AC_1_PHASE",
    "AC_2_PHASE",
    "AC_2_PHASE_SPLIT",
    "AC_3_PHASE",
    "DC",
];

/// The OCPI 2.2.1 ConnectorType values (the OCPI field table's list).
pub use ocpi::types::CONNECTOR_TYPES_221 as CONNECTOR_TYPES;

/// The EVSE capabilities published when a station sets no `capabilities`: what the bridge
/// implements for every station (remote start/stop, unlock, reservations) and the RFID reader
/// every OCPP station has.
pub const DEFAULT_CAPABILITIES: [&str; 4] = [
    "REMOTE_START_STOP_CAPABLE",
    "UNLOCK_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
];

/// The OCPI 2.2.1 Capability values (the OCPI field table's list).
pub use ocpi::types::CAPABILITIES_221 as KNOWN_CAPABILITIES;

/// The eMI3 EVSE id `CC*PID*E{station}*{evse}`: upper-case letters and digits only, the part
/// after `E` at most 30 characters (OCPI `evse_id` pattern).
pub fn emi3_evse_id(cc: &str, pid: &str, station: &str, evse_id: u32) -> String {
    let suffix = format!("*{evse_id}");
    let room = 30usize.saturating_sub(suffix.len());
    let station: String = station
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .take(room)
        .collect();
    let station = if station.is_empty() {
        "X".to_owned()
    } else {
        station
    };
    format!(
        "{}*{}*E{station}{suffix}",
        cc.to_ascii_uppercase(),
        pid.to_ascii_uppercase()
    )
}

/// The first two stations (by index) whose EVSEs would get the same eMI3 `evse_id` for some
/// EVSE number up to 999 (ids that differ only in stripped characters or case, or beyond the
/// length the pattern allows).
pub fn evse_id_collision(stations: &[&str]) -> Option<(usize, usize)> {
    for n in [1, 10, 100] {
        let mut seen = std::collections::HashMap::new();
        for (i, s) in stations.iter().enumerate() {
            if let Some(j) = seen.insert(emi3_evse_id("XX", "XXX", s, n), i) {
                return Some((j, i));
            }
        }
    }
    None
}

/// Checks a connector's standard, format and power type against the OCPI 2.2.1 enums.
fn check_connector_keys(
    standard_key: &str,
    standard: &str,
    format_key: &str,
    format: &str,
    power_key: &str,
    power_type: &str,
) -> Result<(), ConfigError> {
    if !CONNECTOR_TYPES.contains(&standard) {
        return Err(ConfigError::new(
            standard_key,
            format!(
                "unknown OCPI 2.2.1 ConnectorType `{standard}` (e.g. IEC_62196_T2, IEC_62196_T2_COMBO, CHADEMO)"
            ),
        ));
    }
    if !["SOCKET", "CABLE"].contains(&format) {
        return Err(ConfigError::new(format_key, "must be SOCKET or CABLE"));
    }
    if !POWER_TYPES.contains(&power_type) {
        return Err(ConfigError::new(
            power_key,
            "must be AC_1_PHASE, AC_2_PHASE, AC_2_PHASE_SPLIT, AC_3_PHASE or DC",
        ));
    }
    Ok(())
}

fn default_standard() -> String {
    "IEC_62196_T2".into()
}
fn default_format() -> String {
    "SOCKET".into()
}
fn default_power_type() -> String {
    "AC_3_PHASE".into()
}
fn default_voltage() -> u32 {
    230
}
fn default_amperage() -> u32 {
    32
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The offending key path (`ocpp.listen`, `stations[1].location`, …).
    pub key: String,
    /// Why it is wrong.
    pub reason: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Loads settings: the file (or the embedded default), then `BRIDGE__*` environment variables,
/// then validates. Relative paths in the file are resolved against the file's directory.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    load_with_env(file, std::env::vars())
}

/// [`load`] with an explicit environment (for tests).
pub fn load_with_env(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("{}: {e}", path.display())))?,
        None => DEFAULT_CONFIG.to_owned(),
    };
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("BRIDGE__"))
        .collect();
    let cfg = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("BRIDGE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        )
        .build()
        .map_err(|e| ConfigError::new(error_key(&e.to_string()), e.to_string()))?;
    let mut settings: Settings = serde_path_to_error::deserialize(cfg).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let key = match unknown_field(&inner) {
            Some(field) if path == "." || path.is_empty() => field,
            Some(field) if path == field || path.ends_with(&format!(".{field}")) => path,
            Some(field) => format!("{path}.{field}"),
            None => path,
        };
        ConfigError::new(key, inner)
    })?;
    if let Some(dir) = file.and_then(Path::parent) {
        settings.resolve_relative(dir);
    }
    settings.validate()?;
    Ok(settings)
}

/// The field name in serde's "unknown field `x`" message.
fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

fn error_key(msg: &str) -> String {
    msg.split("key `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or("config")
        .to_owned()
}

fn is_alpha(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_alphabetic())
}

impl Settings {
    fn resolve_relative(&mut self, dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(p) = &mut self.tariffs_file {
            resolve(p);
        }
        if let Some(t) = &mut self.ocpp.tls {
            resolve(&mut t.cert);
            resolve(&mut t.key);
            if let Some(p) = &mut t.client_ca {
                resolve(p);
            }
        }
        if let Some(t) = &mut self.ocpi.tls {
            resolve(&mut t.cert);
            resolve(&mut t.key);
        }
        if let Some(p) = &mut self.ocpi.ca_file {
            resolve(p);
        }
    }

    /// Semantic checks; each error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ocpp.heartbeat_interval == 0 {
            return Err(ConfigError::new(
                "ocpp.heartbeat_interval",
                "must be at least 1 second",
            ));
        }
        if self.ocpp.call_timeout == 0 {
            return Err(ConfigError::new(
                "ocpp.call_timeout",
                "must be at least 1 second",
            ));
        }
        if self.ocpp.max_frame_bytes < 1024 {
            return Err(ConfigError::new(
                "ocpp.max_frame_bytes",
                "must be at least 1024",
            ));
        }
        if !(1..=64).contains(&self.ocpi.push_concurrency) {
            return Err(ConfigError::new(
                "ocpi.push_concurrency",
                "must be between 1 and 64",
            ));
        }
        for (key, value) in [
            ("ocpi.header_timeout", self.ocpi.header_timeout),
            ("ocpi.idle_timeout", self.ocpi.idle_timeout),
            ("ocpi.max_connections", self.ocpi.max_connections as u64),
            ("admin.header_timeout", self.admin.header_timeout),
            ("admin.idle_timeout", self.admin.idle_timeout),
            ("admin.max_connections", self.admin.max_connections as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if self.ocpp.handshake_timeout == 0 {
            return Err(ConfigError::new(
                "ocpp.handshake_timeout",
                "must be at least 1 second",
            ));
        }
        if self.ocpp.max_pending_per_address == 0 {
            return Err(ConfigError::new(
                "ocpp.max_pending_per_address",
                "must be at least 1",
            ));
        }
        if self.ocpp.max_connections == 0 {
            return Err(ConfigError::new(
                "ocpp.max_connections",
                "must be at least 1",
            ));
        }
        if self.state.cache_mb == 0 {
            return Err(ConfigError::new("state.cache_mb", "must be at least 1"));
        }
        let o = &self.ocpi;
        if !is_alpha(&o.country_code, 2) {
            return Err(ConfigError::new(
                "ocpi.country_code",
                "must be 2 letters (ISO 3166-1)",
            ));
        }
        if o.party_id.len() != 3 || !o.party_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(
                "ocpi.party_id",
                "must be 3 letters or digits",
            ));
        }
        if !(o.public_url.starts_with("http://") || o.public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "ocpi.public_url",
                "must start with http:// or https://",
            ));
        }
        if o.business_name.trim().is_empty() {
            return Err(ConfigError::new("ocpi.business_name", "must not be empty"));
        }
        if o.versions.is_empty() {
            return Err(ConfigError::new(
                "ocpi.versions",
                "must name at least one version (2.3.0, 2.2.1, 2.1.1)",
            ));
        }
        for v in &o.versions {
            if ocpi::types::OcpiVersion::parse(v).is_none() {
                return Err(ConfigError::new(
                    "ocpi.versions",
                    format!("unknown OCPI version `{v}` (2.3.0, 2.2.1 or 2.1.1)"),
                ));
            }
        }
        // Fractions of a day are fine (0.5 = every 12 hours); 0 is off. A year is plenty.
        if !(o.token_rotation_days.is_finite() && (0.0..=366.0).contains(&o.token_rotation_days)) {
            return Err(ConfigError::new(
                "ocpi.token_rotation_days",
                "must be a number of days from 0 (off) to 366",
            ));
        }
        for (i, p) in o.peers.iter().enumerate() {
            if !(p.versions_url.starts_with("http://") || p.versions_url.starts_with("https://")) {
                return Err(ConfigError::new(
                    format!("ocpi.peers[{i}].versions_url"),
                    "must start with http:// or https://",
                ));
            }
            for v in &p.versions {
                if !o.versions.iter().any(|ours| ours.trim() == v.trim()) {
                    return Err(ConfigError::new(
                        format!("ocpi.peers[{i}].versions"),
                        format!("`{v}` is not one of ocpi.versions {:?}", o.versions),
                    ));
                }
            }
            for q in &p.quirks {
                if !ocpi::Quirk::ALL.iter().any(|k| k.as_str() == q) {
                    let known: Vec<&str> = ocpi::Quirk::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(ConfigError::new(
                        format!("ocpi.peers[{i}].quirks"),
                        format!("unknown quirk `{q}` (known: {})", known.join(", ")),
                    ));
                }
            }
        }
        let mut location_ids = HashSet::new();
        for (i, l) in self.locations.iter().enumerate() {
            let key = |k: &str| format!("locations[{i}].{k}");
            if l.id.is_empty() || l.id.len() > 36 {
                return Err(ConfigError::new(key("id"), "must be 1 to 36 characters"));
            }
            if !location_ids.insert(l.id.to_ascii_lowercase()) {
                return Err(ConfigError::new(
                    key("id"),
                    format!("duplicate location `{}`", l.id),
                ));
            }
            if !is_alpha(&l.country, 3) {
                return Err(ConfigError::new(
                    key("country"),
                    "must be 3 letters (ISO 3166-1 alpha-3)",
                ));
            }
            if !ocpi::types::coordinate_ok(&l.latitude, 2) {
                return Err(ConfigError::new(
                    key("latitude"),
                    "must look like 52.090737 (5 to 7 decimals)",
                ));
            }
            if !ocpi::types::coordinate_ok(&l.longitude, 3) {
                return Err(ConfigError::new(
                    key("longitude"),
                    "must look like 5.121420 (5 to 7 decimals)",
                ));
            }
            if l.time_zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(ConfigError::new(
                    key("time_zone"),
                    format!("unknown IANA time zone `{}`", l.time_zone),
                ));
            }
        }
        let mut station_ids = HashSet::new();
        for (i, s) in self.stations.iter().enumerate() {
            let key = |k: &str| format!("stations[{i}].{k}");
            if s.id.is_empty() || s.id.len() > 48 || s.id.contains(':') {
                return Err(ConfigError::new(
                    key("id"),
                    "must be 1 to 48 characters without `:`",
                ));
            }
            if !station_ids.insert(s.id.clone()) {
                return Err(ConfigError::new(
                    key("id"),
                    format!("duplicate station `{}`", s.id),
                ));
            }
            if !location_ids.contains(&s.location.to_ascii_lowercase()) {
                return Err(ConfigError::new(
                    key("location"),
                    format!("unknown location `{}`", s.location),
                ));
            }
            check_connector_keys(
                &key("connector_standard"),
                &s.connector_standard,
                &key("connector_format"),
                &s.connector_format,
                &key("power_type"),
                &s.power_type,
            )?;
            for (j, c) in s.connectors.iter().enumerate() {
                let ckey = |k: &str| format!("stations[{i}].connectors[{j}].{k}");
                let d = s.connector_data(j as u32 + 1);
                check_connector_keys(
                    &ckey("standard"),
                    &d.standard,
                    &ckey("format"),
                    &d.format,
                    &ckey("power_type"),
                    &d.power_type,
                )?;
                for (k, v) in [
                    ("max_voltage", c.max_voltage),
                    ("max_amperage", c.max_amperage),
                    ("max_electric_power", c.max_electric_power),
                ] {
                    if v == Some(0) {
                        return Err(ConfigError::new(ckey(k), "must be at least 1"));
                    }
                }
            }
            for (j, c) in s.capabilities.iter().flatten().enumerate() {
                if !KNOWN_CAPABILITIES.contains(&c.as_str()) {
                    return Err(ConfigError::new(
                        format!("stations[{i}].capabilities[{j}]"),
                        format!("unknown OCPI 2.2.1 capability `{c}`"),
                    ));
                }
            }
        }
        self.validate_security()?;
        let ids: Vec<&str> = self.stations.iter().map(|s| s.id.as_str()).collect();
        if let Some((a, b)) = evse_id_collision(&ids) {
            return Err(ConfigError::new(
                format!("stations[{b}].id"),
                format!(
                    "`{}` and stations[{a}] `{}` would get the same OCPI evse_id (only letters \
                     and digits count, case-insensitively, at most 27 of them)",
                    ids[b], ids[a]
                ),
            ));
        }
        if !self.tariffs.is_empty() && self.tariffs_file.is_some() {
            return Err(ConfigError::new(
                "tariffs_file",
                "use either [[tariffs]] or tariffs_file, not both",
            ));
        }
        self.tariff_list()?;
        Ok(())
    }

    /// One line per configured tariff saying which `tax_included` 2.3.0 peers get and where it
    /// comes from (the tariff's own `tax_included`, or the default of
    /// `ocpi::types::Tariff::effective_tax_included`); empty when 2.3.0 is not served.
    pub fn tax_included_notes(&self) -> Vec<String> {
        if !self
            .ocpi
            .ocpi_versions()
            .contains(&ocpi::types::OcpiVersion::V2_3_0)
        {
            return Vec::new();
        }
        let list = self.tariff_list().unwrap_or_default();
        list.into_iter()
            .filter_map(|v| serde_json::from_value::<ocpi::types::Tariff>(v).ok())
            .map(|t| {
                let (value, defaulted) = t.effective_tax_included();
                let value = serde_json::to_value(value)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                if defaulted {
                    format!(
                        "tariff {}: tax_included = {value} for OCPI 2.3.0 (default: the tariff sets none; N/A when every price component has vat 0, else NO)",
                        t.id
                    )
                } else {
                    format!(
                        "tariff {}: tax_included = {value} for OCPI 2.3.0 (from the tariff)",
                        t.id
                    )
                }
            })
            .collect()
    }

    /// TLS keys and station security profiles fit together (the files themselves are checked
    /// by the `tls` module).
    fn validate_security(&self) -> Result<(), ConfigError> {
        match (&self.ocpp.tls_listen, &self.ocpp.tls) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "ocpp.tls",
                    "required when ocpp.tls_listen is set (cert, key)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "ocpp.tls_listen",
                    "required when [ocpp.tls] is set",
                ));
            }
            _ => {}
        }
        if let Some(tls_listen) = self.ocpp.tls_listen
            && tls_listen == self.ocpp.listen
            && tls_listen.port() != 0
        {
            return Err(ConfigError::new(
                "ocpp.tls_listen",
                "must differ from ocpp.listen",
            ));
        }
        for (i, s) in self.stations.iter().enumerate() {
            let key = format!("stations[{i}].security_profile");
            let Some(profile) = s.security_profile else {
                continue;
            };
            let problem = match profile {
                0 if s.password.is_some() => {
                    Some("0 but the station has a password (use 1 or more, or remove the password)")
                }
                1 | 2 if s.password.is_none() => {
                    Some("profiles 1 and 2 need a password (HTTP Basic, username = station id)")
                }
                2 | 3 if self.ocpp.tls_listen.is_none() => {
                    Some("profiles 2 and 3 need the TLS listener (ocpp.tls_listen, [ocpp.tls])")
                }
                3 if self.ocpp.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) => Some(
                    "profile 3 needs ocpp.tls.client_ca (the CA station certificates chain to)",
                ),
                0..=3 => None,
                _ => Some("must be 0, 1, 2 or 3"),
            };
            if let Some(problem) = problem {
                return Err(ConfigError::new(key, problem));
            }
        }
        Ok(())
    }

    /// The configured tariffs (inline or from `tariffs_file`), each checked for the fields an
    /// OCPI 2.2.1 Tariff requires.
    pub fn tariff_list(&self) -> Result<Vec<serde_json::Value>, ConfigError> {
        let (list, origin) = match &self.tariffs_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new("tariffs_file", format!("{}: {e}", path.display()))
                })?;
                let list: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
                    ConfigError::new(
                        "tariffs_file",
                        format!("{}: not a JSON array of tariffs: {e}", path.display()),
                    )
                })?;
                (list, "tariffs_file")
            }
            None => (self.tariffs.clone(), "tariffs"),
        };
        let mut ids = HashSet::new();
        for (i, t) in list.iter().enumerate() {
            let key = |k: &str| format!("{origin}[{i}].{k}");
            let Some(obj) = t.as_object() else {
                return Err(ConfigError::new(
                    format!("{origin}[{i}]"),
                    "must be a table / object",
                ));
            };
            for field in [
                "country_code",
                "party_id",
                "id",
                "currency",
                "elements",
                "last_updated",
            ] {
                if !obj.contains_key(field) {
                    return Err(ConfigError::new(
                        key(field),
                        "missing (an OCPI 2.2.1 Tariff requires it)",
                    ));
                }
            }
            let id = obj["id"].as_str().unwrap_or_default();
            if id.is_empty() || id.len() > 36 {
                return Err(ConfigError::new(
                    key("id"),
                    "must be a string of 1 to 36 characters",
                ));
            }
            if !ids.insert(id.to_ascii_lowercase()) {
                return Err(ConfigError::new(
                    key("id"),
                    format!("duplicate tariff `{id}`"),
                ));
            }
            if !obj["currency"].as_str().is_some_and(|c| is_alpha(c, 3)) {
                return Err(ConfigError::new(
                    key("currency"),
                    "must be an ISO 4217 code like EUR",
                ));
            }
            if obj["elements"].as_array().is_none_or(|e| e.is_empty()) {
                return Err(ConfigError::new(
                    key("elements"),
                    "must be a non-empty list",
                ));
            }
        }
        Ok(list)
    }

    /// The configuration of one station, if configured.
    pub fn station(&self, id: &str) -> Option<&StationSettings> {
        self.stations.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests;
