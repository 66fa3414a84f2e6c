//! Helpers shared by the 1.6 and 2.0.1 action tables: typed decoding with OCPP error codes,
//! timestamp normalisation, lenient meter values, hand-written field checks and the one
//! timestamp format the CSMS emits.
//!
//! Leniency lives here so both versions treat the same station quirks the same way. Every
//! leniency is a normalisation *before* the typed decode (or an own small type where rust-ocpp's
//! enums would reject a whole message for one vendor value); anything still broken after that
//! becomes a CALLERROR with the OCPP code that describes it.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CallFault, ErrorCode};
use crate::event::{MeterValue, SampledValue, SignedMeterValue};

/// Longest CALLERROR description the wire allows (2.0.1 Part 4 §4.2.3; also used for 1.6).
const MAX_DESCRIPTION: usize = 255;

/// A fault whose description is cut to what a CALLERROR may carry (on a char boundary).
pub(crate) fn fault(code: ErrorCode, description: impl Into<String>) -> CallFault {
    let mut description = description.into();
    if description.len() > MAX_DESCRIPTION {
        let mut end = MAX_DESCRIPTION;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    CallFault::new(code, description)
}

/// The fault for an action this version does not know (or that a station must not send).
pub(crate) fn not_implemented(version: &str, action: &str) -> CallFault {
    let mut shown: String = action.chars().take(64).collect();
    if shown.len() < action.len() {
        shown.push('…');
    }
    fault(
        ErrorCode::NotImplemented,
        format!("action {shown:?} is not implemented for OCPP {version}"),
    )
}

/// The fault for an action this version defines but the CSMS does not support.
pub(crate) fn not_supported(version: &str, action: &str) -> CallFault {
    fault(
        ErrorCode::NotSupported,
        format!("action {action} of OCPP {version} is not supported"),
    )
}

/// Rejects a payload that is not a JSON object (`FormationViolation`/`FormatViolation`).
pub(crate) fn expect_object(action: &str, payload: &Value) -> Result<(), CallFault> {
    if payload.is_object() {
        Ok(())
    } else {
        Err(fault(
            ErrorCode::FormatViolation,
            format!(
                "{action} payload must be a JSON object, got {}",
                json_kind(payload)
            ),
        ))
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes `payload` into `T`, turning serde's complaint into the OCPP error code it stands for
/// and naming the field (`meterValue[0].timestamp: …`).
///
/// serde reports everything as one error type, so the code is chosen from the message serde
/// writes: `missing field` → OccurrenceConstraintViolation, `invalid type` →
/// TypeConstraintViolation, `unknown variant` / `invalid value` / a bad date-time →
/// PropertyConstraintViolation. With `arbitrary_precision` serde_json says only
/// `invalid number` when a number does not fit the integer type, so the offending value is
/// looked up: a fraction or exponent (`"meterStart": 1.5`) is a type error, an out-of-range
/// integer (`"connectorId": -1`) a property error.
pub(crate) fn typed<T: DeserializeOwned>(payload: &Value) -> Result<T, CallFault> {
    // Most payloads are valid: decode without tracking the path first (the tracking wraps every
    // field), and only decode again with it to say where an invalid payload went wrong.
    if let Ok(value) = T::deserialize(payload) {
        return Ok(value);
    }
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let message = e.inner().to_string();
        let code = if message.starts_with("missing field") || message.starts_with("invalid length")
        {
            ErrorCode::OccurrenceConstraintViolation
        } else if message.starts_with("invalid type") {
            ErrorCode::TypeConstraintViolation
        } else if message == "invalid number" {
            match lookup(payload, e.path()) {
                Some(Value::Number(n)) if n.to_string().contains(['.', 'e', 'E']) => {
                    ErrorCode::TypeConstraintViolation
                }
                _ => ErrorCode::PropertyConstraintViolation,
            }
        } else {
            // unknown variant, invalid value, unparsable date-time.
            ErrorCode::PropertyConstraintViolation
        };
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            fault(code, message)
        } else {
            fault(code, format!("{path}: {message}"))
        }
    })
}

/// Checks the payload is an object, normalises its timestamps ([`normalize_timestamps`]) and
/// decodes it with [`typed`].
pub(crate) fn decode_object<T: DeserializeOwned>(
    action: &str,
    mut payload: Value,
) -> Result<T, CallFault> {
    expect_object(action, &payload)?;
    normalize_timestamps(&mut payload);
    typed(&payload)
}

/// The value at a serde path, if it exists.
fn lookup<'v>(root: &'v Value, path: &serde_path_to_error::Path) -> Option<&'v Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(root, |v, segment| match segment {
        Segment::Seq { index } => v.get(*index),
        Segment::Map { key } => v.get(key.as_str()),
        Segment::Enum { .. } | Segment::Unknown => None,
    })
}

/// A PropertyConstraintViolation naming the field.
pub(crate) fn property(field: &str, problem: &str) -> CallFault {
    fault(
        ErrorCode::PropertyConstraintViolation,
        format!("{field}: {problem}"),
    )
}

/// Rejects a string longer than `max` characters (schema `maxLength` counts characters).
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<(), CallFault> {
    if value.chars().count() > max {
        Err(property(field, &format!("longer than {max} characters")))
    } else {
        Ok(())
    }
}

/// A non-negative schema integer as `u32`.
pub(crate) fn non_negative(field: &str, value: i32) -> Result<u32, CallFault> {
    u32::try_from(value).map_err(|_| property(field, &format!("must not be negative, got {value}")))
}

/// The OCPP spelling of a rust-ocpp enum value (its serde name).
pub(crate) fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `Some(s)` unless `s` is empty: several stations send `""` for optional BootNotification
/// fields they do not know (serial numbers, ICCID) instead of leaving them out.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// Parses a station timestamp leniently, always yielding UTC.
///
/// - RFC 3339 with `Z` or any offset (`+02:00` is converted to UTC);
/// - an offset without colon (`+0200`);
/// - **no zone at all** (`2023-10-19T15:28:07`, with or without fractions, `T` or space): taken
///   as UTC. Growatt and other budget firmwares send local-looking timestamps without a zone
///   (evcc-io/evcc#10399); rejecting them would make every StatusNotification and MeterValues
///   of such a station fail, and a station's clock is set from our Heartbeat/Boot `currentTime`,
///   which is UTC, so UTC is the best guess.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            tracing::debug!(
                timestamp = t,
                "station timestamp without time zone taken as UTC"
            );
            return Some(naive.and_utc());
        }
    }
    None
}

/// Rewrites every `"timestamp"` string in `v` (at any depth) into canonical RFC 3339 UTC, so the
/// typed decoders (rust-ocpp's chrono and `datetime_rfc3339` parsers, which reject a missing
/// zone) accept what [`parse_timestamp`] accepts. Unparsable values are left alone so the typed
/// decode reports them with their path.
pub(crate) fn normalize_timestamps(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if key == "timestamp" {
                    if let Value::String(s) = item
                        && let Some(dt) = parse_timestamp(s)
                    {
                        *s = dt.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                    }
                } else {
                    normalize_timestamps(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_timestamps),
        _ => {}
    }
}

/// The one timestamp format the CSMS emits: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// rust-ocpp's 1.6 types serialise nanoseconds (its defect P2), which some stations reject, so
/// both adapters format times themselves.
pub(crate) fn format_timestamp(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// Meter values

/// Default measurand of a sampled value (both versions).
pub(crate) const DEFAULT_MEASURAND: &str = "Energy.Active.Import.Register";
/// Default unit of a sampled value (both versions).
pub(crate) const DEFAULT_UNIT: &str = "Wh";

/// Parses a sampled value's text as a number: plain decimal first, scientific notation
/// (`1.5e3`, which some meters and JSON encoders produce for large registers) as a fallback.
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    Decimal::from_str(t)
        .ok()
        .or_else(|| Decimal::from_scientific(t).ok())
}

/// A 1.6 MeterValue as stations really send it.
///
/// rust-ocpp's 1.6 `SampledValue` fails the whole message on a JSON-number `value` (cheap
/// firmwares, mobilityhouse/ocpp#377), on unit `Hertz` (added only by the schema errata) and on
/// any vendor measurand/unit; our [`SampledValue`] keeps those as strings, so this type takes
/// them as strings too and never rejects a message for a value it does not know.
pub(crate) type MeterValue16 = WireMeterValue<SampledValue16>;

/// A MeterValue as either version sends it: a timestamp and sampled values of the version's own
/// lenient type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMeterValue<S> {
    timestamp: DateTime<Utc>,
    sampled_value: Vec<S>,
}

/// Converts decoded meter values of either version with its sampled-value conversion; `field`
/// is the payload field they came from (for error paths: `meterValue`, `transactionData`).
fn meter_values<S>(
    field: &str,
    values: Vec<WireMeterValue<S>>,
    sampled_value: fn(&str, S) -> Result<SampledValue, CallFault>,
) -> Result<Vec<MeterValue>, CallFault> {
    let mut out = Vec::with_capacity(values.len());
    for (i, mv) in values.into_iter().enumerate() {
        let mut sampled = Vec::with_capacity(mv.sampled_value.len());
        for (j, sv) in mv.sampled_value.into_iter().enumerate() {
            let path = format!("{field}[{i}].sampledValue[{j}].value");
            sampled.push(sampled_value(&path, sv)?);
        }
        out.push(MeterValue {
            timestamp: mv.timestamp,
            sampled,
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SampledValue16 {
    value: Value,
    context: Option<String>,
    format: Option<String>,
    measurand: Option<String>,
    phase: Option<String>,
    location: Option<String>,
    unit: Option<String>,
}

/// Converts decoded 1.6 meter values (`field` names the payload field, for error paths).
pub(crate) fn meter_values_16(
    field: &str,
    values: Vec<MeterValue16>,
) -> Result<Vec<MeterValue>, CallFault> {
    meter_values(field, values, sampled_value_16)
}

fn sampled_value_16(path: &str, sv: SampledValue16) -> Result<SampledValue, CallFault> {
    // 1.6 says string; a JSON number is accepted and kept as written ("10", "12.50").
    let raw = match sv.value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => {
            return Err(fault(
                ErrorCode::TypeConstraintViolation,
                format!("{path}: expected a string, got {}", json_kind(&other)),
            ));
        }
    };
    let signed_format = sv.format.as_deref() == Some("SignedData");
    let (value, signed) = if signed_format {
        // Never parse signed data as a number, even when it happens to look like one.
        (None, Some(signed_from_16(&raw)))
    } else {
        match parse_decimal(&raw) {
            Some(d) => (Some(d), None),
            // A station that forgot `format: SignedData` on an OCMF record still carries one.
            None if looks_signed(&raw) => (None, Some(signed_from_16(&raw))),
            // Non-numeric and not signed: keep the raw text, don't fail the message.
            None => (None, None),
        }
    };
    Ok(SampledValue {
        value,
        raw,
        measurand: sv.measurand.unwrap_or_else(|| DEFAULT_MEASURAND.to_owned()),
        unit: sv.unit.unwrap_or_else(|| DEFAULT_UNIT.to_owned()),
        multiplier: 0,
        phase: sv.phase,
        context: sv.context,
        location: sv.location,
        format: sv.format,
        signed,
    })
}

fn looks_signed(raw: &str) -> bool {
    let t = raw.trim_start();
    t.starts_with("OCMF|") || (t.starts_with('{') && t.contains("signedMeterValue"))
}

/// The 1.6 JSON-in-`value` convention for signed data (has.to.be / be.ENERGISED Eichrecht docs).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedInValue {
    signed_meter_value: String,
    encoding_method: Option<String>,
    signing_method: Option<String>,
    public_key: Option<String>,
}

/// A 1.6 `SignedData` value in the shape of a 2.0.1 signed meter value.
///
/// Two conventions exist (1.6 has no standard field): the raw `OCMF|{payload}|{signature}` text
/// (EVerest and most Eichrecht meters), and a JSON string
/// `{"signedMeterValue": "…", "encodingMethod": "OCMF", "publicKey": "…"}`.
fn signed_from_16(raw: &str) -> SignedMeterValue {
    let trimmed = raw.trim();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<SignedInValue>(trimmed)
    {
        let encoding_method = v
            .encoding_method
            .unwrap_or_else(|| detect_encoding(&v.signed_meter_value).to_owned());
        return SignedMeterValue {
            signed_meter_data: v.signed_meter_value,
            signing_method: v.signing_method.unwrap_or_default(),
            encoding_method,
            public_key: non_empty(v.public_key),
        };
    }
    SignedMeterValue {
        signed_meter_data: raw.to_owned(),
        signing_method: String::new(),
        encoding_method: detect_encoding(trimmed).to_owned(),
        public_key: None,
    }
}

fn detect_encoding(data: &str) -> &'static str {
    if data.starts_with("OCMF|") {
        "OCMF"
    } else {
        ""
    }
}

/// A 2.0.1 MeterValueType, decoded without rust-ocpp's closed enums so that one vendor
/// measurand does not fail a TransactionEvent (which a station would then retry and drop).
pub(crate) type MeterValue201 = WireMeterValue<SampledValue201>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SampledValue201 {
    value: Value,
    context: Option<String>,
    measurand: Option<String>,
    phase: Option<String>,
    location: Option<String>,
    signed_meter_value: Option<SignedMeterValue201>,
    unit_of_measure: Option<UnitOfMeasure201>,
}

/// 2.0.1 requires all four fields; `publicKey` is often left out or empty in practice (it is
/// optional from 2.1 on and may come via DataTransfer), so only `signedMeterData` is required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedMeterValue201 {
    signed_meter_data: String,
    signing_method: Option<String>,
    encoding_method: Option<String>,
    public_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnitOfMeasure201 {
    unit: Option<String>,
    multiplier: Option<i32>,
}

/// Converts decoded 2.0.1 meter values (`field` names the payload field, for error paths).
pub(crate) fn meter_values_201(
    field: &str,
    values: Vec<MeterValue201>,
) -> Result<Vec<MeterValue>, CallFault> {
    meter_values(field, values, sampled_value_201)
}

fn sampled_value_201(path: &str, sv: SampledValue201) -> Result<SampledValue, CallFault> {
    // 2.0.1 says number; a numeric string is accepted the same way.
    let raw = match sv.value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        other => {
            return Err(fault(
                ErrorCode::TypeConstraintViolation,
                format!("{path}: expected a number, got {}", json_kind(&other)),
            ));
        }
    };
    let (unit, multiplier) = match sv.unit_of_measure {
        Some(u) => (
            u.unit.unwrap_or_else(|| DEFAULT_UNIT.to_owned()),
            u.multiplier.unwrap_or(0),
        ),
        None => (DEFAULT_UNIT.to_owned(), 0),
    };
    Ok(SampledValue {
        value: parse_decimal(&raw),
        raw,
        measurand: sv.measurand.unwrap_or_else(|| DEFAULT_MEASURAND.to_owned()),
        unit,
        multiplier,
        phase: sv.phase,
        context: sv.context,
        location: sv.location,
        format: None,
        signed: sv.signed_meter_value.map(|s| SignedMeterValue {
            signed_meter_data: s.signed_meter_data,
            signing_method: s.signing_method.unwrap_or_default(),
            encoding_method: s.encoding_method.unwrap_or_default(),
            public_key: non_empty(s.public_key),
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// Hand-written checks for ack-only notifications

/// What a field of an ack-only notification must look like.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want {
    /// A string of at most this many characters.
    Str(usize),
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// An integer.
    Int,
    /// A boolean.
    Bool,
    /// A date-time string ([`parse_timestamp`] rules).
    Time,
    /// An object.
    Object,
    /// An array.
    Array,
}

/// Checks the required and optional top-level fields of a notification that is only
/// acknowledged (rust-ocpp lacks the 1.6 security-extension messages, and the bridge does not
/// need typed 2.0.1 reports). The payload itself is passed on unchanged; unknown fields are
/// ignored.
pub(crate) fn check_fields(
    action: &str,
    payload: &Value,
    required: &[(&str, Want)],
    optional: &[(&str, Want)],
) -> Result<(), CallFault> {
    expect_object(action, payload)?;
    for (name, want) in required {
        match payload.get(name) {
            None | Some(Value::Null) => {
                return Err(fault(
                    ErrorCode::OccurrenceConstraintViolation,
                    format!("missing field `{name}`"),
                ));
            }
            Some(v) => check_field(name, v, *want)?,
        }
    }
    for (name, want) in optional {
        match payload.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => check_field(name, v, *want)?,
        }
    }
    Ok(())
}

fn check_field(name: &str, v: &Value, want: Want) -> Result<(), CallFault> {
    let type_error = |expected: &str| {
        fault(
            ErrorCode::TypeConstraintViolation,
            format!("{name}: expected {expected}, got {}", json_kind(v)),
        )
    };
    match want {
        Want::Str(max) => match v.as_str() {
            Some(s) => check_len(name, s, max),
            None => Err(type_error("a string")),
        },
        Want::Enum(values) => match v.as_str() {
            Some(s) if values.contains(&s) => Ok(()),
            Some(s) => Err(property(name, &format!("unknown value {s:?}"))),
            None => Err(type_error("a string")),
        },
        Want::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
            _ => Err(type_error("an integer")),
        },
        Want::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => Err(type_error("a boolean")),
        },
        Want::Time => match v.as_str() {
            Some(s) if parse_timestamp(s).is_some() => Ok(()),
            Some(s) => Err(property(name, &format!("not a date-time: {s:?}"))),
            None => Err(type_error("a date-time string")),
        },
        Want::Object => match v {
            Value::Object(_) => Ok(()),
            _ => Err(type_error("an object")),
        },
        Want::Array => match v {
            Value::Array(_) => Ok(()),
            _ => Err(type_error("an array")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_without_zone_are_utc_and_offsets_are_converted() {
        let utc = Utc.with_ymd_and_hms(2023, 10, 19, 15, 28, 7).unwrap();
        assert_eq!(parse_timestamp("2023-10-19T15:28:07"), Some(utc));
        assert_eq!(parse_timestamp("2023-10-19T15:28:07Z"), Some(utc));
        assert_eq!(parse_timestamp("2023-10-19T17:28:07+02:00"), Some(utc));
        assert_eq!(parse_timestamp("2023-10-19T17:28:07+0200"), Some(utc));
        assert_eq!(parse_timestamp("2023-10-19 15:28:07"), Some(utc));
        let frac = parse_timestamp("2023-10-19T15:28:07.123").unwrap();
        assert_eq!(frac.timestamp_subsec_millis(), 123);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn format_has_exactly_milliseconds_and_z() {
        let dt = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(format_timestamp(&dt), "2024-02-29T23:59:59.123Z");
        let whole = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(format_timestamp(&whole), "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn decimals_plain_and_scientific() {
        assert_eq!(parse_decimal("12.50"), Some(Decimal::new(1250, 2)));
        assert_eq!(parse_decimal(" 10 "), Some(Decimal::new(10, 0)));
        assert_eq!(parse_decimal("1.5e3"), Some(Decimal::new(1500, 0)));
        assert_eq!(parse_decimal("2E-1"), Some(Decimal::new(2, 1)));
        assert_eq!(parse_decimal("n/a"), None);
        assert_eq!(parse_decimal("1e400"), None);
    }

    #[test]
    fn description_is_cut_to_255_bytes_on_a_char_boundary() {
        let f = fault(ErrorCode::GenericError, "ä".repeat(200));
        assert!(f.description.len() <= 255);
        assert!(f.description.chars().all(|c| c == 'ä'));
    }

    #[test]
    fn normalisation_rewrites_nested_timestamps_only() {
        let mut v = serde_json::json!({
            "timestamp": "2023-10-19T15:28:07",
            "meterValue": [{"timestamp": "2023-10-19T17:28:07.5+02:00", "note": "2023-10-19T15:28:07"}],
            "bad": {"timestamp": "garbage"}
        });
        normalize_timestamps(&mut v);
        assert_eq!(v["timestamp"], "2023-10-19T15:28:07Z");
        assert_eq!(v["meterValue"][0]["timestamp"], "2023-10-19T15:28:07.500Z");
        assert_eq!(v["meterValue"][0]["note"], "2023-10-19T15:28:07");
        assert_eq!(v["bad"]["timestamp"], "garbage");
    }
}
