//! The alphabet of EVSE uids the store allocates.
//!
//! An EVSE uid goes into OCPI URL paths (`…/locations/{cc}/{pid}/{location}/{evse_uid}`), so the
//! bridge only *generates* uids from RFC 3986's unreserved characters (`A–Z a–z 0–9 - . _ ~`),
//! a subset of OCPI's CiString that passes through percent-encoding unchanged: no `/ # ? %`,
//! no spaces, nothing outside ASCII. Station ids may contain anything but `:`; a station id with
//! other characters gets a readable substitute. Uids that are already stored are never derived
//! again (the peers know them), whatever they contain; the OCPI client percent-encodes every
//! path segment, so those keep working too.

/// Longest EVSE uid (OCPI `EVSE.uid` is CiString(36)).
pub const MAX_EVSE_UID_LEN: usize = 36;

/// Whether `c` may appear in a uid the bridge generates.
pub fn is_uid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Whether `uid` is 1–36 characters of the uid alphabet.
pub fn is_safe_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_EVSE_UID_LEN && uid.chars().all(is_uid_char)
}

/// The uid an EVSE gets when it is free: `{station}-{evse}`, with every run of characters
/// outside the alphabet replaced by one `_` (`CS/01` → `CS_01-1`, `Bahnhof Süd` →
/// `Bahnhof_S_d-1`). `None` when that is longer than 36 characters.
pub fn preferred_evse_uid(station: &str, evse_id: u32) -> Option<String> {
    let mut uid = String::with_capacity(station.len() + 4);
    let mut replaced = false;
    for c in station.chars() {
        if is_uid_char(c) {
            uid.push(c);
            replaced = false;
        } else if !replaced {
            uid.push('_');
            replaced = true;
        }
    }
    uid.push('-');
    uid.push_str(&evse_id.to_string());
    is_safe_uid(&uid).then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_station_ids_keep_their_readable_uid() {
        assert_eq!(preferred_evse_uid("CS1", 1).as_deref(), Some("CS1-1"));
        assert_eq!(
            preferred_evse_uid("DE-Berlin_01.a~b", 12).as_deref(),
            Some("DE-Berlin_01.a~b-12")
        );
    }

    #[test]
    fn unsafe_characters_are_replaced() {
        for (station, uid) in [
            ("CS/01", "CS_01-1"),
            ("CS#03", "CS_03-1"),
            ("CS?04", "CS_04-1"),
            ("CS%05", "CS_05-1"),
            ("CS 06", "CS_06-1"),
            ("CSé07", "CS_07-1"),
            ("a / b", "a_b-1"),
            ("Bahnhof Süd", "Bahnhof_S_d-1"),
            ("*", "_-1"),
        ] {
            let got = preferred_evse_uid(station, 1).unwrap();
            assert_eq!(got, uid, "{station}");
            assert!(is_safe_uid(&got));
        }
    }

    #[test]
    fn too_long_has_no_preferred_uid() {
        assert_eq!(
            preferred_evse_uid(&"X".repeat(34), 1).map(|u| u.len()),
            Some(36)
        );
        assert_eq!(preferred_evse_uid(&"X".repeat(35), 1), None);
        assert_eq!(preferred_evse_uid(&"X".repeat(33), 100), None);
    }

    #[test]
    fn the_alphabet() {
        for ok in ["A", "z", "0", "EVSE-12", "a.b_c~d"] {
            assert!(is_safe_uid(ok), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "a#b",
            "a?b",
            "a%b",
            "a b",
            "é",
            "a*b",
            "a:b",
            &"x".repeat(37),
        ] {
            assert!(!is_safe_uid(bad), "{bad}");
        }
    }
}
