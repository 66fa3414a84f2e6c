//! Tests of configuration loading: shipped examples, defaults, layering, key-naming errors.

use super::*;

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, text).unwrap();
    load_with_env(
        Some(&path),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

const MINIMAL: &str = r#"
[[locations]]
id = "LOC1"
address = "Main street 1"
city = "Utrecht"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
[[stations]]
id = "CS001"
location = "LOC1"
password = "secret"
"#;

#[test]
fn every_shipped_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load_with_env(Some(&path), []).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 2, "expected the example and the default config");
}

#[test]
fn the_embedded_default_gives_the_documented_addresses() {
    let s = load_with_env(None, []).unwrap();
    assert_eq!(s.state.path, PathBuf::from("./data"));
    assert_eq!(s.ocpp.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(s.ocpi.listen.to_string(), "0.0.0.0:9100");
    assert_eq!(s.admin.listen.to_string(), "127.0.0.1:9200");
    assert!(!s.ocpp.allow_unknown_stations);
}

#[test]
fn an_unknown_key_is_named() {
    let err = load_str("[ocpp]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n", &[]).unwrap_err();
    assert_eq!(err.key, "ocpp.lisen", "{err}");
    let err = load_str("bogus = 1\n", &[]).unwrap_err();
    assert_eq!(err.key, "bogus", "{err}");
    let err = load_str(&format!("{MINIMAL}colour = \"red\"\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn a_bad_value_is_named() {
    let err = load_str("[ocpp]\nlisten = \"nowhere\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "ocpp.listen", "{err}");
    let err = load_str("[ocpi]\ncountry_code = \"NLD\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "ocpi.country_code");
}

#[test]
fn a_station_must_stand_at_a_configured_location() {
    let text = MINIMAL.replace("location = \"LOC1\"", "location = \"NOPE\"");
    let err = load_str(&text, &[]).unwrap_err();
    assert_eq!(err.key, "stations[0].location");
    assert!(err.reason.contains("NOPE"));
}

#[test]
fn environment_overrides_the_file() {
    let s = load_str(
        MINIMAL,
        &[
            ("BRIDGE__OCPI__PARTY_ID", "XYZ"),
            ("BRIDGE__OCPP__HEARTBEAT_INTERVAL", "60"),
            ("BRIDGE__OCPP__ALLOW_UNKNOWN_STATIONS", "true"),
            ("OTHER__OCPI__PARTY_ID", "ABC"),
        ],
    )
    .unwrap();
    assert_eq!(s.ocpi.party_id, "XYZ");
    assert_eq!(s.ocpp.heartbeat_interval, 60);
    assert!(s.ocpp.allow_unknown_stations);
}

#[test]
fn an_unknown_environment_key_is_an_error() {
    let err = load_str(MINIMAL, &[("BRIDGE__OCPP__LISEN", "x")]).unwrap_err();
    assert!(err.to_string().contains("lisen"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let text = format!(
        "{MINIMAL}\n[ocpi]\ntoken_a = \"hub-secret-token\"\n[admin]\ntoken = \"admin-secret\"\n"
    );
    let s = load_str(&text, &[]).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("secret\""), "{debug}");
    assert!(!debug.contains("hub-secret-token"));
    assert!(!debug.contains("admin-secret"));
}

#[test]
fn tariffs_must_be_complete_ocpi_objects() {
    let text = format!("{MINIMAL}\n[[tariffs]]\nid = \"T1\"\ncurrency = \"EUR\"\n");
    let err = load_str(&text, &[]).unwrap_err();
    assert_eq!(err.key, "tariffs[0].country_code");
}

#[test]
fn a_tariffs_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.json"),
        r#"[{"country_code":"NL","party_id":"BRG","id":"T9","currency":"EUR","last_updated":"2026-01-01T00:00:00Z","elements":[{"price_components":[{"type":"TIME","price":2,"step_size":60}]}]}]"#,
    )
    .unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, format!("tariffs_file = \"t.json\"\n{MINIMAL}")).unwrap();
    let s = load_with_env(Some(&path), []).unwrap();
    assert_eq!(s.tariff_list().unwrap()[0]["id"], "T9");
}

#[test]
fn stations_whose_evse_ids_would_collide_are_rejected() {
    let two = format!("{MINIMAL}[[stations]]\nid = \"CS-001\"\nlocation = \"LOC1\"\n");
    let err = load_str(&two, &[]).unwrap_err();
    assert_eq!(err.key, "stations[1].id", "{err}");
    assert!(err.to_string().contains("same OCPI evse_id"), "{err}");
    let case = format!("{MINIMAL}[[stations]]\nid = \"cs001\"\nlocation = \"LOC1\"\n");
    assert_eq!(load_str(&case, &[]).unwrap_err().key, "stations[1].id");
    let fine = format!("{MINIMAL}[[stations]]\nid = \"CS002\"\nlocation = \"LOC1\"\n");
    load_str(&fine, &[]).unwrap();
}

#[test]
fn evse_id_collisions_include_truncation() {
    let a = format!("{}A", "X".repeat(40));
    let b = format!("{}B", "X".repeat(40));
    assert_eq!(evse_id_collision(&[&a, &b]), Some((0, 1)));
    assert_eq!(evse_id_collision(&["CS1", "CS2", "C-S1"]), Some((0, 2)));
    assert_eq!(evse_id_collision(&["CS1", "CS2"]), None);
}

#[test]
fn station_capabilities_must_be_ocpi_values() {
    let ok = format!("{MINIMAL}capabilities = [\"RFID_READER\", \"CHARGING_PROFILE_CAPABLE\"]\n");
    let s = load_str(&ok, &[]).unwrap();
    assert_eq!(s.stations[0].capabilities.as_ref().unwrap().len(), 2);
    let bad = format!("{MINIMAL}capabilities = [\"RFID_READER\", \"TELEPORT\"]\n");
    let err = load_str(&bad, &[]).unwrap_err();
    assert_eq!(err.key, "stations[0].capabilities[1]", "{err}");
}

#[test]
fn station_connectors_take_the_station_keys_as_defaults_and_name_bad_keys() {
    let ok = format!(
        "{MINIMAL}power_type = \"DC\"\nmax_voltage = 920\nmax_amperage = 200\n\
         [[stations.connectors]]\nstandard = \"IEC_62196_T2_COMBO\"\nformat = \"CABLE\"\nmax_electric_power = 150000\n\
         [[stations.connectors]]\nstandard = \"CHADEMO\"\nformat = \"CABLE\"\nmax_voltage = 500\nmax_amperage = 125\n\
         [[stations.connectors]]\nstandard = \"IEC_62196_T2\"\npower_type = \"AC_3_PHASE\"\nmax_voltage = 230\nmax_amperage = 32\n"
    );
    let s = load_str(&ok, &[]).unwrap();
    let st = &s.stations[0];
    let ccs = st.connector_data(1);
    assert_eq!(
        (
            ccs.standard.as_str(),
            ccs.format.as_str(),
            ccs.power_type.as_str()
        ),
        ("IEC_62196_T2_COMBO", "CABLE", "DC")
    );
    assert_eq!(
        (ccs.max_voltage, ccs.max_amperage, ccs.max_electric_power),
        (920, 200, 150_000)
    );
    let chademo = st.connector_data(2);
    assert_eq!(
        chademo.max_electric_power,
        500 * 125,
        "derived, DC: one phase"
    );
    let t2 = st.connector_data(3);
    assert_eq!(t2.format, "SOCKET", "the station's connector_format");
    assert_eq!(t2.max_electric_power, 230 * 32 * 3);
    // No entry: the station's keys.
    let beyond = st.connector_data(4);
    assert_eq!(
        (beyond.standard.as_str(), beyond.max_voltage),
        ("IEC_62196_T2", 920)
    );

    let unknown =
        format!("{MINIMAL}[[stations.connectors]]\nstandard = \"CHADEMO\"\nvoltage = 500\n");
    let err = load_str(&unknown, &[]).unwrap_err();
    assert!(err.key.ends_with("voltage"), "{err}");
    assert!(err.key.starts_with("stations[0].connectors"), "{err}");
    let bad = format!(
        "{MINIMAL}[[stations.connectors]]\nstandard = \"CHADEMO\"\n[[stations.connectors]]\nstandard = \"PLUG_X\"\n"
    );
    assert_eq!(
        load_str(&bad, &[]).unwrap_err().key,
        "stations[0].connectors[1].standard"
    );
    let zero = format!("{MINIMAL}[[stations.connectors]]\nmax_amperage = 0\n");
    assert_eq!(
        load_str(&zero, &[]).unwrap_err().key,
        "stations[0].connectors[0].max_amperage"
    );
    let station_standard = format!("{MINIMAL}connector_standard = \"PLUG_X\"\n");
    assert_eq!(
        load_str(&station_standard, &[]).unwrap_err().key,
        "stations[0].connector_standard"
    );
}

#[test]
fn security_profiles_default_from_the_password_and_must_fit_the_listeners() {
    use ocpp::security::SecurityProfile;
    let s = load_str(MINIMAL, &[]).unwrap();
    assert_eq!(s.stations[0].minimum_profile(), SecurityProfile::Basic);
    let open = MINIMAL.replace("password = \"secret\"\n", "");
    let s = load_str(&open, &[]).unwrap();
    assert_eq!(s.stations[0].minimum_profile(), SecurityProfile::Unsecured);

    let tls =
        "[ocpp]\ntls_listen = \"127.0.0.1:0\"\n[ocpp.tls]\ncert = \"s.crt\"\nkey = \"s.key\"\n";
    let with = |extra: &str, station: &str| {
        format!(
            "{tls}{}",
            MINIMAL.replace("password = \"secret\"\n", station)
        ) + extra
    };
    for (config, key, words) in [
        (
            format!("{MINIMAL}security_profile = 2\n"),
            "stations[0].security_profile",
            "TLS listener",
        ),
        (
            with("", "security_profile = 2\n"),
            "stations[0].security_profile",
            "password",
        ),
        (
            with("", "password = \"pw\"\nsecurity_profile = 3\n"),
            "stations[0].security_profile",
            "client_ca",
        ),
        (
            with("", "password = \"pw\"\nsecurity_profile = 0\n"),
            "stations[0].security_profile",
            "password",
        ),
        (
            with("", "password = \"pw\"\nsecurity_profile = 4\n"),
            "stations[0].security_profile",
            "0, 1, 2 or 3",
        ),
        (
            "[ocpp]\ntls_listen = \"127.0.0.1:0\"\n".to_owned(),
            "ocpp.tls",
            "required",
        ),
        (
            "[ocpp.tls]\ncert = \"a\"\nkey = \"b\"\n".to_owned(),
            "ocpp.tls_listen",
            "required",
        ),
        (
            format!("{tls}client_cert = \"x\"\n"),
            "ocpp.tls.client_cert",
            "unknown field",
        ),
    ] {
        let err = load_str(&config, &[]).unwrap_err();
        assert_eq!(err.key, key, "{config}\n{err}");
        assert!(err.reason.contains(words), "{err}");
    }
    let ok = with("", "password = \"pw\"\nsecurity_profile = 2\n");
    let s = load_str(&ok, &[]).unwrap();
    assert_eq!(s.stations[0].minimum_profile(), SecurityProfile::TlsBasic);
    // TLS paths are relative to the configuration file.
    let tls = s.ocpp.tls.unwrap();
    assert!(tls.cert.is_absolute() && tls.cert.ends_with("s.crt"));
}

#[test]
fn token_rotation_days_takes_fractions_and_names_the_key_when_bad() {
    assert_eq!(load_str("", &[]).unwrap().ocpi.token_rotation_days, 0.0);
    let s = load_str("[ocpi]\ntoken_rotation_days = 30\n", &[]).unwrap();
    assert_eq!(s.ocpi.token_rotation_days, 30.0);
    let s = load_str("[ocpi]\ntoken_rotation_days = 0.5\n", &[]).unwrap();
    assert_eq!(s.ocpi.token_rotation_days, 0.5);
    let s = load_str("", &[("BRIDGE__OCPI__TOKEN_ROTATION_DAYS", "0.00002")]).unwrap();
    assert_eq!(s.ocpi.token_rotation_days, 0.00002);
    for bad in ["-1", "1000", "\"monthly\""] {
        let err = load_str(&format!("[ocpi]\ntoken_rotation_days = {bad}\n"), &[]).unwrap_err();
        assert_eq!(err.key, "ocpi.token_rotation_days", "{bad}: {err}");
    }
}

#[test]
fn ocpi_versions_and_peer_pins_and_quirks_are_checked() {
    let s = load_str(MINIMAL, &[]).unwrap();
    assert_eq!(s.ocpi.versions, ["2.3.0", "2.2.1", "2.1.1"]);
    assert_eq!(s.ocpi.ocpi_versions(), ocpi::types::OcpiVersion::ALL);
    let only = format!("[ocpi]\nversions = [\"2.2.1\", \"2.1.1\"]\n{MINIMAL}");
    assert_eq!(load_str(&only, &[]).unwrap().ocpi.ocpi_versions().len(), 2);
    let err = load_str(&format!("[ocpi]\nversions = [\"2.2\"]\n{MINIMAL}"), &[]).unwrap_err();
    assert_eq!(err.key, "ocpi.versions", "{err}");
    let err = load_str(&format!("[ocpi]\nversions = []\n{MINIMAL}"), &[]).unwrap_err();
    assert_eq!(err.key, "ocpi.versions", "{err}");

    let peer = |extra: &str| {
        format!(
            "[ocpi]\nversions = [\"2.2.1\", \"2.1.1\"]\n[[ocpi.peers]]\nversions_url = \"https://hub.example/ocpi/versions\"\ntoken_a = \"a\"\n{extra}\n{MINIMAL}"
        )
    };
    let s = load_str(
        &peer("versions = [\"2.1.1\"]\nquirks = [\"base64_token_2_1_1\", \"no_routing_headers\"]"),
        &[],
    )
    .unwrap();
    let options = s.ocpi.peers[0].options();
    assert_eq!(options.versions, [ocpi::types::OcpiVersion::V2_1_1]);
    assert_eq!(
        options.quirks,
        [ocpi::Quirk::Base64Token2_1_1, ocpi::Quirk::NoRoutingHeaders]
    );
    // A pin outside ocpi.versions, an unknown quirk: named.
    let err = load_str(&peer("versions = [\"2.3.0\"]"), &[]).unwrap_err();
    assert_eq!(err.key, "ocpi.peers[0].versions", "{err}");
    let err = load_str(&peer("quirks = [\"be_nice\"]"), &[]).unwrap_err();
    assert_eq!(err.key, "ocpi.peers[0].quirks", "{err}");
    assert!(
        err.to_string().contains("raw_token"),
        "lists the known quirks: {err}"
    );
}

#[test]
fn check_config_says_where_tax_included_comes_from() {
    let tariffs = r#"
[[tariffs]]
country_code = "NL"
party_id = "BRG"
id = "T1"
currency = "EUR"
last_updated = "2026-01-01T00:00:00Z"
tax_included = "YES"
[[tariffs.elements]]
[[tariffs.elements.price_components]]
type = "ENERGY"
price = 0.30
step_size = 1
[[tariffs]]
country_code = "NL"
party_id = "BRG"
id = "T2"
currency = "EUR"
last_updated = "2026-01-01T00:00:00Z"
[[tariffs.elements]]
[[tariffs.elements.price_components]]
type = "ENERGY"
price = 0.25
step_size = 1
"#;
    let s = load_str(&format!("{MINIMAL}{tariffs}"), &[]).unwrap();
    let notes = s.tax_included_notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("T1") && notes[0].contains("YES") && notes[0].contains("from the tariff")
    );
    assert!(notes[1].contains("T2") && notes[1].contains("= NO") && notes[1].contains("default"));
    // Without 2.3.0 there is nothing to say.
    let s = load_str(
        &format!("[ocpi]\nversions = [\"2.2.1\"]\n{MINIMAL}{tariffs}"),
        &[],
    )
    .unwrap();
    assert!(s.tax_included_notes().is_empty());
}
