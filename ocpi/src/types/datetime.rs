//! OCPI `DateTime`: always UTC, emitted as `YYYY-MM-DDTHH:MM:SSZ` or with exactly three fraction digits (`.mmmZ`).
//!
//! Invariant: a [`DateTime`] never carries sub-millisecond precision (it is truncated on construction), so what we emit
//! parses back to an equal value. Input is accepted liberally: with or without `Z`, with any number of fraction digits
//! and with a numeric offset (converted to UTC). See
//! <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/types.asciidoc#types_datetime_type>.

use std::fmt;
use std::str::FromStr;

use chrono::{DurationRound, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC timestamp with millisecond precision, formatted the OCPI way.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime(chrono::DateTime<Utc>);

/// Error for a string that is not an OCPI/RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OCPI DateTime {0:?}")]
pub struct DateTimeParseError(pub String);

impl DateTime {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// The wrapped chrono value.
    pub fn inner(&self) -> chrono::DateTime<Utc> {
        self.0
    }

    /// Parses OCPI input leniently (missing `Z`, fractions, offsets).
    pub fn parse(s: &str) -> Result<Self, DateTimeParseError> {
        let err = || DateTimeParseError(s.to_owned());
        let t = s.trim();
        if t.is_empty() || t.len() > 40 {
            return Err(err());
        }
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
            return Ok(Self::from(dt.with_timezone(&Utc)));
        }
        // No zone designator: the spec says the value is UTC anyway.
        NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|n| Self::from(n.and_utc()))
            .map_err(|_| err())
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(value: chrono::DateTime<Utc>) -> Self {
        // duration_trunc only fails for out-of-range values; fall back to dropping the nanos by hand.
        let truncated = value
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or_else(|_| value.with_nanosecond(0).unwrap_or(value));
        Self(truncated)
    }
}

impl From<DateTime> for chrono::DateTime<Utc> {
    fn from(value: DateTime) -> Self {
        value.0
    }
}

impl FromStr for DateTime {
    type Err = DateTimeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.nanosecond() == 0 {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
        } else {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
        }
    }
}

impl fmt::Debug for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateTime({self})")
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> DateTime {
        let base = Utc
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid");
        DateTime::from(base + TimeDelta::milliseconds(i64::from(ms)))
    }

    #[test]
    fn whole_seconds_are_emitted_without_fraction() {
        assert_eq!(
            utc(2015, 6, 29, 20, 39, 9, 0).to_string(),
            "2015-06-29T20:39:09Z"
        );
    }

    #[test]
    fn fractions_are_emitted_with_exactly_three_digits() {
        assert_eq!(
            utc(2015, 6, 29, 20, 39, 9, 5).to_string(),
            "2015-06-29T20:39:09.005Z"
        );
        let nanos = Utc
            .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + TimeDelta::nanoseconds(123_456_789);
        let s = DateTime::from(nanos).to_string();
        assert_eq!(s, "2020-01-01T00:00:00.123Z");
        assert!(s.len() <= 25);
    }

    #[test]
    fn sub_millisecond_values_lose_their_fraction_entirely() {
        let t = Utc
            .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + TimeDelta::nanoseconds(999);
        assert_eq!(DateTime::from(t).to_string(), "2020-01-01T00:00:00Z");
    }

    #[test]
    fn input_without_zone_is_utc() {
        assert_eq!(
            DateTime::parse("2015-06-29T20:39:09").expect("parses"),
            utc(2015, 6, 29, 20, 39, 9, 0)
        );
        assert_eq!(
            DateTime::parse("2015-06-29T20:39:09.5").expect("parses"),
            utc(2015, 6, 29, 20, 39, 9, 500)
        );
    }

    #[test]
    fn input_with_offset_and_long_fraction_is_normalised() {
        let t = DateTime::parse("2015-06-29T22:39:09.123456789+02:00").expect("parses");
        assert_eq!(t, utc(2015, 6, 29, 20, 39, 9, 123));
        assert_eq!(t.to_string(), "2015-06-29T20:39:09.123Z");
        assert_eq!(
            DateTime::parse("2015-06-29T20:39:09.120Z")
                .expect("parses")
                .to_string(),
            "2015-06-29T20:39:09.120Z"
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "yesterday",
            "2015-06-29",
            "2015-13-29T20:39:09Z",
            "2015-06-29 20:39:09Z x",
        ] {
            assert!(DateTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip_is_a_json_string() {
        let t = utc(2019, 2, 3, 4, 5, 6, 70);
        let json = serde_json::to_string(&t).expect("serialises");
        assert_eq!(json, "\"2019-02-03T04:05:06.070Z\"");
        let back: DateTime = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, t);
    }
}
