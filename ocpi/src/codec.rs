//! Per-version wire codecs: the internal model is 2.2.1-shaped (with the 2.3.0 additions as
//! optional fields); these pure functions turn it into the JSON a peer of OCPI 2.1.1, 2.2.1 or
//! 2.3.0 expects, and turn what such a peer sends into the internal shape.
//!
//! Everything works on `serde_json::Value` after (before) the ordinary serde round trip of the
//! typed object, so the typed model keeps one shape and every version difference is here, in one
//! table-like place:
//!
//! | Object | 2.1.1 | 2.3.0 |
//! |---|---|---|
//! | Location | no `country_code`/`party_id`/`publish`/`publish_allowed_to`/`state`/`parking_type`; `type` (from `parking_type`) required; `postal_code` required; `address`/`city` ≤ 45; coordinates with 6 decimals; Hours without `twentyfourseven: false` | `parking_places`, `help_phone` kept |
//! | EVSE | capabilities limited to the 2.1.1 set; coordinates with 6 decimals | `parking`, `accepted_service_providers` kept |
//! | Connector | `voltage`, `amperage`, single `tariff_id`; no `max_electric_power` | `capabilities` kept |
//! | Tariff | no `country_code`/`party_id`/`type`/`min_price`/`max_price`/`start_date_time`/`end_date_time`; no `vat`; restrictions without current/reservation | `tax_included` (required, from the tariff or its default), `min_price`/`max_price` as PriceLimit |
//! | Session | `start_datetime`/`end_datetime`, `auth_id`, embedded `location` (the used EVSE and connector only), `total_cost` a number (excl. VAT); no `cdr_token`, `authorization_reference`; status RESERVATION → PENDING, auth_method COMMAND → AUTH_REQUEST | `total_cost` as Price `{before_taxes, taxes}` |
//! | CDR | `stop_date_time`, `auth_id`, embedded `location`, `total_cost` a number; no cc/pid, `session_id`, `credit*`, `signed_data`, cost breakdown | every `total_*_cost` as Price; embedded tariffs with `tax_included` |
//! | Token | `auth_id` for `contract_id`; type RFID or OTHER; no cc/pid/`group_id`/profile/energy contract | unknown fields kept (`Token::extensions`) |
//! | Commands | one `CommandResponse {result}` shape for both the answer and the result (results mapped onto ACCEPTED/REJECTED/NOT_SUPPORTED/TIMEOUT/UNKNOWN_SESSION); `reservation_id` an int; no CANCEL_RESERVATION | as 2.2.1 |
//! | Credentials | flat `{token, url, business_details, party_id, country_code}` | as 2.2.1; a hub's `hub_party_id` read as a HUB role |
//! | Version details | endpoints without `role` | as 2.2.1 |
//!
//! 2.2.1 output drops the 2.3.0-only fields. Unknown fields a peer sends are never an error.

use std::str::FromStr as _;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::types::{
    Cdr, CommandResponse, CommandResult, Connector, CountryCode, Credentials, Evse, InterfaceRole,
    Location, ModuleId, OcpiVersion, PartyId, Session, Tariff, Token, VersionDetails,
};

/// Serialises a typed object (these never fail: no maps with non-string keys).
fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn remove(v: &mut Value, keys: &[&str]) {
    if let Some(o) = obj(v) {
        for k in keys {
            o.remove(*k);
        }
    }
}

fn rename(v: &mut Value, from: &str, to: &str) {
    if let Some(o) = obj(v)
        && let Some(x) = o.remove(from)
    {
        o.insert(to.to_owned(), x);
    }
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

fn number(d: Decimal) -> Value {
    serde_json::Number::from_str(&d.normalize().to_string())
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn truncate(v: &mut Value, key: &str, max: usize) {
    if let Some(Value::String(s)) = obj(v).and_then(|o| o.get_mut(key))
        && s.chars().count() > max
    {
        *s = s.chars().take(max).collect();
    }
}

// ---------------------------------------------------------------- Price

/// A 2.2.1 Price `{excl_vat, incl_vat?}` as 2.3.0 Price `{before_taxes, taxes?}`: the difference
/// between the two is one TaxAmount named `VAT` (with its percentage when it is exact).
fn price_2_3_0(p: &Value) -> Value {
    let Some(excl) = p.get("excl_vat").and_then(decimal) else {
        return p.clone();
    };
    let mut out = json!({ "before_taxes": number(excl) });
    if let Some(incl) = p.get("incl_vat").and_then(decimal) {
        let tax = incl - excl;
        let mut amount = json!({ "name": "VAT", "amount": number(tax) });
        if !excl.is_zero() {
            let pct = (tax * Decimal::from(100) / excl).round_dp(4);
            amount["percentage"] = number(pct);
        }
        out["taxes"] = json!([amount]);
    }
    out
}

/// A 2.2.1 Price as 2.3.0 PriceLimit `{before_taxes, after_taxes?}`.
fn price_limit_2_3_0(p: &Value) -> Value {
    let mut out = Map::new();
    if let Some(x) = p.get("excl_vat") {
        out.insert("before_taxes".into(), x.clone());
    }
    if let Some(x) = p.get("incl_vat") {
        out.insert("after_taxes".into(), x.clone());
    }
    Value::Object(out)
}

/// A 2.2.1 Price as a 2.1.1 number (excluding VAT).
fn price_2_1_1(p: &Value) -> Value {
    p.get("excl_vat").cloned().unwrap_or(Value::Null)
}

fn map_prices(v: &mut Value, keys: &[&str], f: fn(&Value) -> Value) {
    if let Some(o) = obj(v) {
        for k in keys {
            if let Some(p) = o.get_mut(*k)
                && p.is_object()
            {
                *p = f(p);
            }
        }
    }
}

const CDR_COSTS: &[&str] = &[
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
];

// ---------------------------------------------------------------- Locations

const CAPABILITIES_2_1_1: &[&str] = &[
    "CHARGING_PROFILE_CAPABLE",
    "CREDIT_CARD_PAYABLE",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "UNLOCK_CAPABLE",
];

/// 2.1.1 LocationType from a 2.2.1 ParkingType.
fn location_type(parking_type: Option<&Value>) -> &'static str {
    match parking_type.and_then(Value::as_str) {
        Some("ON_STREET") => "ON_STREET",
        Some("PARKING_GARAGE") => "PARKING_GARAGE",
        Some("UNDERGROUND_GARAGE") => "UNDERGROUND_GARAGE",
        Some("PARKING_LOT") => "PARKING_LOT",
        Some(_) => "OTHER",
        None => "UNKNOWN",
    }
}

/// `52.0907371` → `52.090737` (2.1.1 wants exactly 6 decimals).
fn six_decimals(v: &mut Value) {
    for key in ["latitude", "longitude"] {
        if let Some(Value::String(s)) = obj(v).and_then(|o| o.get_mut(key))
            && let Some((int, frac)) = s.split_once('.')
        {
            let mut frac: String = frac.chars().take(6).collect();
            while frac.len() < 6 {
                frac.push('0');
            }
            *s = format!("{int}.{frac}");
        }
    }
}

fn connector_value(version: OcpiVersion, mut c: Value) -> Value {
    match version {
        OcpiVersion::V2_1_1 => {
            rename(&mut c, "max_voltage", "voltage");
            rename(&mut c, "max_amperage", "amperage");
            let first = c
                .get("tariff_ids")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .cloned();
            remove(
                &mut c,
                &["tariff_ids", "max_electric_power", "capabilities"],
            );
            if let (Some(id), Some(o)) = (first, obj(&mut c)) {
                o.insert("tariff_id".into(), id);
            }
        }
        OcpiVersion::V2_2_1 => remove(&mut c, &["capabilities"]),
        OcpiVersion::V2_3_0 => {}
    }
    c
}

fn evse_value(version: OcpiVersion, mut e: Value) -> Value {
    match version {
        OcpiVersion::V2_1_1 => {
            remove(&mut e, &["parking", "accepted_service_providers"]);
            if let Some(Value::Array(caps)) = obj(&mut e).and_then(|o| o.get_mut("capabilities")) {
                caps.retain(|c| c.as_str().is_some_and(|c| CAPABILITIES_2_1_1.contains(&c)));
            }
            if let Some(coords) = obj(&mut e).and_then(|o| o.get_mut("coordinates")) {
                six_decimals(coords);
            }
        }
        OcpiVersion::V2_2_1 => remove(&mut e, &["parking", "accepted_service_providers"]),
        OcpiVersion::V2_3_0 => {}
    }
    if let Some(Value::Array(cs)) = obj(&mut e).and_then(|o| o.get_mut("connectors")) {
        for c in cs.iter_mut() {
            *c = connector_value(version, c.take());
        }
    }
    e
}

fn location_value(version: OcpiVersion, mut l: Value) -> Value {
    match version {
        OcpiVersion::V2_1_1 => {
            let kind = location_type(l.get("parking_type"));
            remove(
                &mut l,
                &[
                    "country_code",
                    "party_id",
                    "publish",
                    "publish_allowed_to",
                    "state",
                    "parking_type",
                    "parking_places",
                    "help_phone",
                ],
            );
            if let Some(o) = obj(&mut l) {
                o.insert("type".into(), Value::String(kind.into()));
                o.entry("postal_code")
                    .or_insert_with(|| Value::String(String::new()));
            }
            truncate(&mut l, "address", 45);
            truncate(&mut l, "city", 45);
            if let Some(coords) = obj(&mut l).and_then(|o| o.get_mut("coordinates")) {
                six_decimals(coords);
            }
            if let Some(hours) = obj(&mut l).and_then(|o| o.get_mut("opening_times"))
                && hours.get("twentyfourseven") == Some(&Value::Bool(false))
            {
                remove(hours, &["twentyfourseven"]);
            }
        }
        OcpiVersion::V2_2_1 => remove(&mut l, &["parking_places", "help_phone"]),
        OcpiVersion::V2_3_0 => {}
    }
    if let Some(Value::Array(es)) = obj(&mut l).and_then(|o| o.get_mut("evses")) {
        for e in es.iter_mut() {
            *e = evse_value(version, e.take());
        }
    }
    l
}

/// A Location as a peer of `version` expects it.
pub fn location(version: OcpiVersion, location: &Location) -> Value {
    location_value(version, to_value(location))
}

/// [`crate::Quirk::ShortAddress`]: `address` and `city` cut to 45 characters, `state` to 20
/// (the lengths of the 2.2.1 text before its errata), on a Location body.
pub fn short_address(location: &mut Value) {
    truncate(location, "address", 45);
    truncate(location, "city", 45);
    truncate(location, "state", 20);
}

/// An EVSE as a peer of `version` expects it.
pub fn evse(version: OcpiVersion, evse: &Evse) -> Value {
    evse_value(version, to_value(evse))
}

/// A Connector as a peer of `version` expects it.
pub fn connector(version: OcpiVersion, connector: &Connector) -> Value {
    connector_value(version, to_value(connector))
}

/// The Location embedded in a 2.1.1 Session or CDR: only the EVSE and connector used.
fn embedded_location(location: &Location, evse_uid: &str, connector_id: &str) -> Value {
    let mut l = location.clone();
    if let Some(evses) = l.evses.as_mut() {
        evses.retain(|e| e.uid == evse_uid);
        for e in evses.iter_mut() {
            e.connectors.retain(|c| c.id == connector_id);
        }
    }
    location_value(OcpiVersion::V2_1_1, to_value(&l))
}

/// A 2.1.1 Location built from a CDR's `cdr_location` when the full Location is not at hand.
fn location_from_cdr_location(cl: &Value, last_updated: &Value) -> Value {
    let g = |k: &str| cl.get(k).cloned().unwrap_or(Value::Null);
    let mut l = json!({
        "id": g("id"),
        "type": "UNKNOWN",
        "address": g("address"),
        "city": g("city"),
        "postal_code": cl.get("postal_code").cloned().unwrap_or(Value::String(String::new())),
        "country": g("country"),
        "coordinates": g("coordinates"),
        "evses": [{
            "uid": g("evse_uid"),
            "evse_id": g("evse_id"),
            "status": "AVAILABLE",
            "connectors": [{
                "id": g("connector_id"),
                "standard": g("connector_standard"),
                "format": g("connector_format"),
                "power_type": g("connector_power_type"),
                "voltage": 230,
                "amperage": 16,
                "last_updated": last_updated,
            }],
            "last_updated": last_updated,
        }],
        "last_updated": last_updated,
    });
    if let Some(name) = cl.get("name") {
        l["name"] = name.clone();
    }
    truncate(&mut l, "address", 45);
    if let Some(coords) = obj(&mut l).and_then(|o| o.get_mut("coordinates")) {
        six_decimals(coords);
    }
    l
}

// ---------------------------------------------------------------- Tariffs

fn tariff_value(version: OcpiVersion, mut t: Value, tax_included: &str) -> Value {
    match version {
        OcpiVersion::V2_1_1 => {
            remove(
                &mut t,
                &[
                    "country_code",
                    "party_id",
                    "type",
                    "min_price",
                    "max_price",
                    "start_date_time",
                    "end_date_time",
                    "tax_included",
                ],
            );
            if let Some(Value::Array(elements)) = obj(&mut t).and_then(|o| o.get_mut("elements")) {
                for e in elements.iter_mut() {
                    if let Some(Value::Array(pcs)) =
                        obj(e).and_then(|o| o.get_mut("price_components"))
                    {
                        for pc in pcs.iter_mut() {
                            remove(pc, &["vat"]);
                        }
                    }
                    if let Some(r) = obj(e).and_then(|o| o.get_mut("restrictions")) {
                        remove(r, &["min_current", "max_current", "reservation"]);
                    }
                }
            }
        }
        OcpiVersion::V2_2_1 => remove(&mut t, &["tax_included"]),
        OcpiVersion::V2_3_0 => {
            map_prices(&mut t, &["min_price", "max_price"], price_limit_2_3_0);
            if let Some(o) = obj(&mut t) {
                o.insert("tax_included".into(), Value::String(tax_included.into()));
            }
        }
    }
    t
}

/// A Tariff as a peer of `version` expects it (2.3.0: `tax_included` from the tariff or its
/// default, [`Tariff::effective_tax_included`]).
pub fn tariff(version: OcpiVersion, tariff: &Tariff) -> Value {
    let tax = to_value(&tariff.effective_tax_included().0);
    tariff_value(version, to_value(tariff), tax.as_str().unwrap_or("N/A"))
}

// ---------------------------------------------------------------- Sessions and CDRs

const DIMENSIONS_2_1_1: &[&str] = &[
    "ENERGY",
    "FLAT",
    "MAX_CURRENT",
    "MIN_CURRENT",
    "PARKING_TIME",
    "TIME",
];

/// 2.1.1 charging periods: only the dimensions 2.1.1 knows, periods left empty dropped,
/// `tariff_id` dropped.
fn periods_2_1_1(v: &mut Value) {
    if let Some(Value::Array(periods)) = obj(v).and_then(|o| o.get_mut("charging_periods")) {
        for p in periods.iter_mut() {
            remove(p, &["tariff_id"]);
            if let Some(Value::Array(dims)) = obj(p).and_then(|o| o.get_mut("dimensions")) {
                dims.retain(|d| {
                    d.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| DIMENSIONS_2_1_1.contains(&t))
                });
            }
        }
        periods.retain(|p| {
            p.get("dimensions")
                .and_then(Value::as_array)
                .is_some_and(|d| !d.is_empty())
        });
    }
}

fn auth_method_2_1_1(v: &mut Value) {
    if let Some(m) = obj(v).and_then(|o| o.get_mut("auth_method"))
        && m.as_str() == Some("COMMAND")
    {
        *m = Value::String("AUTH_REQUEST".into());
    }
}

/// The `auth_id` of a 2.1.1 Session/CDR: the token's contract id.
fn auth_id(v: &Value) -> Value {
    v.get("cdr_token")
        .and_then(|t| t.get("contract_id"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn session_value(version: OcpiVersion, mut s: Value, location: Option<&Location>) -> Value {
    match version {
        OcpiVersion::V2_1_1 => {
            let auth = auth_id(&s);
            let str_of = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let (loc_id, evse_uid, connector_id) = (
                str_of("location_id"),
                str_of("evse_uid"),
                str_of("connector_id"),
            );
            let embedded = match location {
                Some(l) if l.id == loc_id.as_str() => {
                    embedded_location(l, &evse_uid, &connector_id)
                }
                _ => json!({ "id": loc_id }),
            };
            rename(&mut s, "start_date_time", "start_datetime");
            rename(&mut s, "end_date_time", "end_datetime");
            map_prices(&mut s, &["total_cost"], price_2_1_1);
            auth_method_2_1_1(&mut s);
            periods_2_1_1(&mut s);
            remove(
                &mut s,
                &[
                    "country_code",
                    "party_id",
                    "cdr_token",
                    "authorization_reference",
                    "location_id",
                    "evse_uid",
                    "connector_id",
                ],
            );
            if let Some(o) = obj(&mut s) {
                if o.get("status").and_then(Value::as_str) == Some("RESERVATION") {
                    o.insert("status".into(), Value::String("PENDING".into()));
                }
                o.insert("auth_id".into(), auth);
                o.insert("location".into(), embedded);
            }
        }
        OcpiVersion::V2_2_1 => {}
        OcpiVersion::V2_3_0 => map_prices(&mut s, &["total_cost"], price_2_3_0),
    }
    s
}

/// A Session as a peer of `version` expects it. 2.1.1 embeds `location` (pass the session's
/// Location; without it only `{id}` is embedded).
pub fn session(version: OcpiVersion, session: &Session, location: Option<&Location>) -> Value {
    session_value(version, to_value(session), location)
}

/// A Session PATCH body (any object of Session fields) as a peer of `version` expects it.
pub fn session_patch(version: OcpiVersion, patch: Value) -> Value {
    let mut p = patch;
    match version {
        OcpiVersion::V2_1_1 => {
            rename(&mut p, "start_date_time", "start_datetime");
            rename(&mut p, "end_date_time", "end_datetime");
            map_prices(&mut p, &["total_cost"], price_2_1_1);
            auth_method_2_1_1(&mut p);
            periods_2_1_1(&mut p);
            if p.get("cdr_token").is_some() {
                let auth = auth_id(&p);
                if let Some(o) = obj(&mut p) {
                    o.insert("auth_id".into(), auth);
                }
            }
            remove(
                &mut p,
                &[
                    "country_code",
                    "party_id",
                    "cdr_token",
                    "authorization_reference",
                ],
            );
            if let Some(o) = obj(&mut p)
                && o.get("status").and_then(Value::as_str) == Some("RESERVATION")
            {
                o.insert("status".into(), Value::String("PENDING".into()));
            }
        }
        OcpiVersion::V2_2_1 => {}
        OcpiVersion::V2_3_0 => map_prices(&mut p, &["total_cost"], price_2_3_0),
    }
    p
}

fn cdr_value(version: OcpiVersion, mut c: Value, location: Option<&Location>) -> Value {
    match version {
        OcpiVersion::V2_1_1 => {
            let auth = auth_id(&c);
            let last_updated = c.get("last_updated").cloned().unwrap_or(Value::Null);
            let cl = c.get("cdr_location").cloned().unwrap_or(Value::Null);
            let id_of = |k: &str| cl.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let embedded = match location {
                Some(l) if l.id == id_of("id").as_str() => {
                    embedded_location(l, &id_of("evse_uid"), &id_of("connector_id"))
                }
                _ => location_from_cdr_location(&cl, &last_updated),
            };
            rename(&mut c, "end_date_time", "stop_date_time");
            map_prices(&mut c, &["total_cost"], price_2_1_1);
            auth_method_2_1_1(&mut c);
            periods_2_1_1(&mut c);
            if let Some(Value::Array(tariffs)) = obj(&mut c).and_then(|o| o.get_mut("tariffs")) {
                for t in tariffs.iter_mut() {
                    *t = tariff_value(OcpiVersion::V2_1_1, t.take(), "");
                }
            }
            remove(
                &mut c,
                &[
                    "country_code",
                    "party_id",
                    "session_id",
                    "cdr_token",
                    "authorization_reference",
                    "cdr_location",
                    "signed_data",
                    "total_fixed_cost",
                    "total_energy_cost",
                    "total_time_cost",
                    "total_parking_cost",
                    "total_reservation_cost",
                    "invoice_reference_id",
                    "credit",
                    "credit_reference_id",
                    "home_charging_compensation",
                ],
            );
            if let Some(o) = obj(&mut c) {
                o.insert("auth_id".into(), auth);
                o.insert("location".into(), embedded);
            }
        }
        OcpiVersion::V2_2_1 => remove_tariff_tax(&mut c),
        OcpiVersion::V2_3_0 => {
            map_prices(&mut c, CDR_COSTS, price_2_3_0);
            if let Some(Value::Array(tariffs)) = obj(&mut c).and_then(|o| o.get_mut("tariffs")) {
                for t in tariffs.iter_mut() {
                    let tax = match serde_json::from_value::<Tariff>(t.clone()) {
                        Ok(typed) => to_value(&typed.effective_tax_included().0)
                            .as_str()
                            .unwrap_or("N/A")
                            .to_owned(),
                        Err(_) => "N/A".to_owned(),
                    };
                    *t = tariff_value(OcpiVersion::V2_3_0, t.take(), &tax);
                }
            }
        }
    }
    c
}

fn remove_tariff_tax(c: &mut Value) {
    if let Some(Value::Array(tariffs)) = obj(c).and_then(|o| o.get_mut("tariffs")) {
        for t in tariffs.iter_mut() {
            remove(t, &["tax_included"]);
        }
    }
}

/// A CDR as a peer of `version` expects it. 2.1.1 embeds `location` (the session's Location when
/// given, else one built from `cdr_location`).
pub fn cdr(version: OcpiVersion, cdr: &Cdr, location: Option<&Location>) -> Value {
    cdr_value(version, to_value(cdr), location)
}

// ---------------------------------------------------------------- Tokens

const TOKEN_FIELDS: &[&str] = &[
    "country_code",
    "party_id",
    "uid",
    "type",
    "contract_id",
    "visual_number",
    "issuer",
    "group_id",
    "valid",
    "whitelist",
    "language",
    "default_profile_type",
    "energy_contract",
    "last_updated",
];

/// A Token as a peer of `version` expects it (our GET answers; 2.3.0 and 2.2.1 put the fields the
/// eMSP sent that we do not model back where they were).
pub fn token(version: OcpiVersion, token: &Token) -> Value {
    let mut t = to_value(token);
    let extensions = obj(&mut t)
        .and_then(|o| o.remove("extensions"))
        .and_then(|e| match e {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    match version {
        OcpiVersion::V2_1_1 => {
            rename(&mut t, "contract_id", "auth_id");
            remove(
                &mut t,
                &[
                    "country_code",
                    "party_id",
                    "group_id",
                    "default_profile_type",
                    "energy_contract",
                ],
            );
            if let Some(kind) = obj(&mut t).and_then(|o| o.get_mut("type"))
                && kind.as_str() != Some("RFID")
            {
                *kind = Value::String("OTHER".into());
            }
        }
        OcpiVersion::V2_2_1 | OcpiVersion::V2_3_0 => {
            if let Some(o) = obj(&mut t) {
                for (k, v) in extensions {
                    o.entry(k).or_insert(v);
                }
            }
        }
    }
    t
}

/// A Token a peer of `version` sent, in the internal shape: 2.1.1's `auth_id` becomes
/// `contract_id` and the owner (`country_code`/`party_id`, not in a 2.1.1 token) is filled in;
/// fields the model does not know go to `extensions`.
pub fn token_from(
    version: OcpiVersion,
    mut raw: Value,
    owner: Option<(&CountryCode, &PartyId)>,
) -> Value {
    if version == OcpiVersion::V2_1_1 {
        if raw.get("contract_id").is_none() {
            rename(&mut raw, "auth_id", "contract_id");
        } else {
            remove(&mut raw, &["auth_id"]);
        }
        if let (Some((cc, pid)), Some(o)) = (owner, obj(&mut raw)) {
            o.entry("country_code")
                .or_insert_with(|| Value::String(cc.as_str().into()));
            o.entry("party_id")
                .or_insert_with(|| Value::String(pid.as_str().into()));
        }
    }
    if let Some(o) = obj(&mut raw) {
        let unknown: Vec<String> = o
            .keys()
            .filter(|k| !TOKEN_FIELDS.contains(&k.as_str()) && k.as_str() != "extensions")
            .cloned()
            .collect();
        if !unknown.is_empty() {
            let mut ext = match o.remove("extensions") {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            for k in unknown {
                if let Some(v) = o.remove(&k) {
                    ext.insert(k, v);
                }
            }
            o.insert("extensions".into(), Value::Object(ext));
        }
    }
    raw
}

/// A real-time authorization answer of a peer of `version`, in the internal shape. A 2.1.1
/// AuthorizationInfo is `{allowed, location?, info?}` without the token: the token asked about is
/// filled in (its uid as contract id, the peer's party as owner, `valid` = ALLOWED), so that a
/// Session started with it has a `cdr_token`.
pub fn authorization_info_from(
    version: OcpiVersion,
    mut raw: Value,
    uid: &str,
    kind: &str,
    owner: Option<(&CountryCode, &PartyId)>,
) -> Value {
    if raw.get("token").is_some_and(|t| !t.is_null()) {
        if let Some(t) = obj(&mut raw).and_then(|o| o.get_mut("token")) {
            *t = token_from(version, t.take(), owner);
        }
        return raw;
    }
    let Some((cc, pid)) = owner else {
        return raw;
    };
    let allowed = raw.get("allowed").and_then(Value::as_str) == Some("ALLOWED");
    let token = json!({
        "country_code": cc.as_str(), "party_id": pid.as_str(), "uid": uid, "type": kind,
        "contract_id": uid, "issuer": pid.as_str(), "valid": allowed, "whitelist": "NEVER",
        "last_updated": crate::types::DateTime::now(),
    });
    if let Some(o) = obj(&mut raw) {
        o.insert("token".into(), token);
    }
    raw
}

// ---------------------------------------------------------------- Commands

/// A command request body a peer of `version` sent, in the internal (2.2.1) shape: 2.1.1 tokens
/// converted ([`token_from`]), an integer `reservation_id` made a string.
pub fn command_from(
    version: OcpiVersion,
    mut raw: Value,
    owner: Option<(&CountryCode, &PartyId)>,
) -> Value {
    if version == OcpiVersion::V2_1_1 {
        if let Some(t) = obj(&mut raw).and_then(|o| o.get_mut("token")) {
            *t = token_from(version, t.take(), owner);
        }
        if let Some(r) = obj(&mut raw).and_then(|o| o.get_mut("reservation_id"))
            && let Value::Number(n) = r
        {
            *r = Value::String(n.to_string());
        }
    }
    raw
}

/// Our synchronous answer to a command for a peer of `version` (2.1.1: `{result}` only).
pub fn command_response(version: OcpiVersion, response: &CommandResponse) -> Value {
    let mut v = to_value(response);
    if version == OcpiVersion::V2_1_1 {
        remove(&mut v, &["timeout", "message"]);
    }
    v
}

/// The asynchronous result of a command for a peer of `version`. 2.1.1 has only
/// `CommandResponse {result}` with ACCEPTED, REJECTED, NOT_SUPPORTED, TIMEOUT and
/// UNKNOWN_SESSION: the 2.2.1 results without a 2.1.1 counterpart become REJECTED.
pub fn command_result(version: OcpiVersion, result: &CommandResult) -> Value {
    let mut v = to_value(result);
    if version == OcpiVersion::V2_1_1 {
        let r = v
            .get("result")
            .and_then(Value::as_str)
            .unwrap_or("REJECTED");
        let mapped = match r {
            "ACCEPTED" | "NOT_SUPPORTED" | "TIMEOUT" | "REJECTED" => r,
            _ => "REJECTED",
        };
        v = json!({ "result": mapped });
    }
    v
}

// ---------------------------------------------------------------- Credentials and versions

/// Our credentials object for a peer of `version` (2.1.1: flat, one party — the first role).
pub fn credentials(version: OcpiVersion, creds: &Credentials) -> Value {
    let v = to_value(creds);
    if version != OcpiVersion::V2_1_1 {
        return v;
    }
    let role = v
        .get("roles")
        .and_then(|r| r.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "token": v.get("token").cloned().unwrap_or(Value::Null),
        "url": v.get("url").cloned().unwrap_or(Value::Null),
        "business_details": role.get("business_details").cloned().unwrap_or(Value::Null),
        "party_id": role.get("party_id").cloned().unwrap_or(Value::Null),
        "country_code": role.get("country_code").cloned().unwrap_or(Value::Null),
    })
}

/// A credentials object a peer of `version` sent, in the internal shape: a flat 2.1.1 object
/// becomes one role (`EMSP` unless `role` says otherwise). An object that already has `roles` is
/// taken as it is (some 2.1.1 hubs send it).
pub fn credentials_from(version: OcpiVersion, raw: Value) -> Value {
    if version == OcpiVersion::V2_3_0 {
        return hub_role_2_3_0(raw);
    }
    if version != OcpiVersion::V2_1_1 || raw.get("roles").is_some() {
        return raw;
    }
    let g = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "token": g("token"),
        "url": g("url"),
        "roles": [{
            "role": raw.get("role").cloned().unwrap_or_else(|| Value::String("EMSP".into())),
            "business_details": g("business_details"),
            "party_id": g("party_id"),
            "country_code": g("country_code"),
        }],
    })
}

/// 2.3.0 dropped the HUB role: a hub names itself in `hub_party_id` (`NLHUB`) and lists the
/// parties it reaches in `roles`. The internal model (and the routing rules that depend on it)
/// keeps the hub as a HUB role, so one is added for `hub_party_id` when no role says HUB.
fn hub_role_2_3_0(mut raw: Value) -> Value {
    let Some(hub) = raw
        .get("hub_party_id")
        .and_then(Value::as_str)
        .filter(|h| h.len() == 5 && h.is_ascii())
        .map(str::to_owned)
    else {
        return raw;
    };
    let business = raw
        .get("roles")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("business_details"))
        .cloned()
        .unwrap_or_else(|| json!({"name": hub}));
    if let Some(Value::Array(roles)) = obj(&mut raw).and_then(|o| o.get_mut("roles"))
        && !roles
            .iter()
            .any(|r| r.get("role").and_then(Value::as_str) == Some("HUB"))
    {
        roles.push(
            json!({"role": "HUB", "country_code": &hub[..2], "party_id": &hub[2..],
            "business_details": business}),
        );
    }
    raw
}

/// Our version details for `version` (2.1.1: endpoints without `role`, one per module).
pub fn version_details(version: OcpiVersion, details: &VersionDetails) -> Value {
    let mut v = to_value(details);
    if version == OcpiVersion::V2_1_1
        && let Some(Value::Array(endpoints)) = obj(&mut v).and_then(|o| o.get_mut("endpoints"))
    {
        let mut seen: Vec<Value> = Vec::new();
        endpoints.retain(|e| {
            let id = e.get("identifier").cloned().unwrap_or(Value::Null);
            if seen.contains(&id) {
                false
            } else {
                seen.push(id);
                true
            }
        });
        for e in endpoints.iter_mut() {
            remove(e, &["role"]);
        }
    }
    v
}

/// The role a 2.1.1 endpoint of a CPO's counterpart (an eMSP or hub) implements, which 2.1.1 does
/// not say: Tokens and Commands are theirs to send (the SENDER side), every other module receives
/// our pushes.
pub fn implied_role(module: &ModuleId) -> InterfaceRole {
    match module {
        ModuleId::Tokens | ModuleId::Commands | ModuleId::Credentials => InterfaceRole::Sender,
        _ => InterfaceRole::Receiver,
    }
}

/// Version details a peer of `version` sent, in the internal shape: 2.1.1 endpoints get the role
/// [`implied_role`] says.
pub fn version_details_from(version: OcpiVersion, mut raw: Value) -> Value {
    if let Some(Value::Array(endpoints)) = obj(&mut raw).and_then(|o| o.get_mut("endpoints")) {
        for e in endpoints.iter_mut() {
            if e.get("role").is_none() || version == OcpiVersion::V2_1_1 {
                let module: ModuleId = e
                    .get("identifier")
                    .and_then(|i| serde_json::from_value(i.clone()).ok())
                    .unwrap_or(ModuleId::Other(String::new()));
                let role = implied_role(&module);
                if let Some(o) = obj(e) {
                    o.entry("role").or_insert_with(|| to_value(&role));
                }
            }
        }
    }
    raw
}

/// The modules a version has (ChargingProfiles and HubClientInfo came with 2.2).
pub fn has_module(version: OcpiVersion, module: &ModuleId) -> bool {
    !(version == OcpiVersion::V2_1_1
        && matches!(
            module,
            ModuleId::ChargingProfiles | ModuleId::HubClientInfo | ModuleId::Other(_)
        ))
}

#[cfg(test)]
mod tests;
