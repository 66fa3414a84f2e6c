//! `ocpp-ocpi-bridge check-config`: the shipped example configs validate, the test config
//! validates, and an unknown key fails with a message naming it.

use std::path::Path;

use bridge_tests::TestConfig;
use bridge_tests::daemon::{check_config, workspace_dir};

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn shipped_example_configs_pass_check_config() {
    let dir = workspace_dir().join("config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    if files.is_empty() {
        eprintln!("no config/*.toml shipped yet; nothing to check");
    }
    for file in files {
        let out = check_config(&file);
        assert!(
            out.status.success(),
            "check-config {} failed ({}): {}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn test_config_passes_check_config() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cfg = TestConfig::new()
        .station("CS001")
        .station_with_password("SECURE", "pw");
    let path = write_config(tmp.path(), &cfg.to_toml(&tmp.path().join("data")));
    let out = check_config(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_key_fails_check_config_naming_the_key() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let good = TestConfig::new()
        .station("CS001")
        .to_toml(&tmp.path().join("data"));
    let bad = good.replacen("[ocpp]\n", "[ocpp]\nhartbeat_interval_typo = 5\n", 1);
    assert_ne!(good, bad, "test setup: [ocpp] section not found");
    let path = write_config(tmp.path(), &bad);
    let out = check_config(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "check-config accepted an unknown key"
    );
    assert!(
        stderr.contains("hartbeat_interval_typo"),
        "stderr must name the bad key: {stderr}"
    );
}

#[test]
fn unknown_section_fails_check_config_naming_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut text = TestConfig::new()
        .station("CS001")
        .to_toml(&tmp.path().join("data"));
    text.insert_str(0, "[surprise]\nkey = 1\n\n");
    let path = write_config(tmp.path(), &text);
    let out = check_config(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "check-config accepted an unknown section"
    );
    assert!(
        stderr.contains("surprise"),
        "stderr must name the bad key: {stderr}"
    );
}

#[test]
fn per_connector_data_and_ocpi_field_limits_fail_check_config_naming_the_key() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let multi = "[[stations.connectors]]\nstandard = \"IEC_62196_T2_COMBO\"\npower_type = \"DC\"\n\
                 [[stations.connectors]]\nstandard = \"CHADEMO\"\npower_type = \"DC\"\n";
    let good = TestConfig::new()
        .station("CS001")
        .station_toml("DC1", multi)
        .to_toml(&tmp.path().join("data"));
    let out = check_config(&write_config(tmp.path(), &good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cases = [
        // Not an OCPI 2.2.1 ConnectorType.
        (
            good.replacen("standard = \"CHADEMO\"", "standard = \"CHADEMO_X\"", 1),
            "stations[1].connectors[1].standard",
        ),
        // OCPI allows a postal_code of at most 10 characters.
        (
            good.replacen(
                "postal_code = \"3511AA\"",
                "postal_code = \"3511AA-12345\"",
                1,
            ),
            "locations[0].postal_code",
        ),
        // Connector tariff ids are CiString(36).
        (
            good.replacen(
                "id = \"DC1\"\n",
                &format!("id = \"DC1\"\ntariff_ids = [\"{}\"]\n", "T".repeat(37)),
                1,
            ),
            "stations[1].tariff_ids[0]",
        ),
    ];
    for (text, key) in cases {
        assert_ne!(text, good, "test setup for {key}");
        let out = check_config(&write_config(tmp.path(), &text));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "check-config accepted a bad {key}");
        assert!(stderr.contains(key), "stderr must name {key}: {stderr}");
    }
}

#[test]
fn check_config_says_which_tax_included_2_3_0_peers_get_and_names_bad_version_keys() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cfg = TestConfig::new().station("CS001").tariff("T1", "EUR", 0.35);
    let good = cfg.to_toml(&tmp.path().join("data"));
    let out = check_config(&write_config(tmp.path(), &good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tariff T1: tax_included = ") && stdout.contains("2.3.0"),
        "{stdout}"
    );
    let bad = good.replacen("[ocpi]\n", "[ocpi]\nversions = [\"2.4.0\"]\n", 1);
    assert_ne!(good, bad, "test setup: [ocpi] section not found");
    let out = check_config(&write_config(tmp.path(), &bad));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ocpi.versions"), "{stderr}");
}
