//! Tariffs module objects and [`Tariff::validate`].
//!
//! All prices are `rust_decimal::Decimal` and JSON numbers on the wire. `step_size` 0 is accepted (the spec's own free
//! tariff example uses it) although 1 is advised.
//! See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/mod_tariffs.asciidoc>.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::common::{DisplayText, EnergyMix, Price};
use super::datetime::DateTime;
use super::ids::{CountryCode, PartyId, TariffId};

/// A tariff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    /// Owner's country code.
    pub country_code: CountryCode,
    /// Owner's party id.
    pub party_id: PartyId,
    /// Tariff id.
    pub id: TariffId,
    /// ISO 4217 currency.
    pub currency: String,
    /// Tariff type (absent = applies to all).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<TariffType>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tariff_alt_text: Option<Vec<DisplayText>>,
    /// URL with tariff information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tariff_alt_url: Option<String>,
    /// Minimum session price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price: Option<Price>,
    /// Maximum session price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<Price>,
    /// Elements (non-empty).
    pub elements: Vec<TariffElement>,
    /// Valid from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<DateTime>,
    /// Valid until.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<DateTime>,
    /// Energy mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_mix: Option<EnergyMix>,
    /// Whether `price`s include taxes (2.3.0, required there). Absent: the prices are excluding VAT as in 2.2.1;
    /// see [`Tariff::effective_tax_included`]. Dropped for older peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_included: Option<TaxIncluded>,
    /// Last change.
    pub last_updated: DateTime,
}

/// Whether the prices of a tariff include taxes (2.3.0 `TaxIncluded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaxIncluded {
    /// Prices include taxes.
    #[serde(rename = "YES")]
    Yes,
    /// Taxes come on top of the prices.
    #[serde(rename = "NO")]
    No,
    /// No taxes apply.
    #[serde(rename = "N/A")]
    NotApplicable,
}

impl TaxIncluded {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "YES",
            Self::No => "NO",
            Self::NotApplicable => "N/A",
        }
    }
}

impl Tariff {
    /// `tax_included` as sent to 2.3.0 peers, and whether it was defaulted: the tariff's own value, else `N/A`
    /// when every price component states a VAT of 0, else `NO` (2.2.1 prices are excluding VAT).
    pub fn effective_tax_included(&self) -> (TaxIncluded, bool) {
        if let Some(t) = self.tax_included {
            return (t, false);
        }
        let all_zero = self
            .elements
            .iter()
            .flat_map(|e| &e.price_components)
            .all(|c| c.vat.is_some_and(|v| v.is_zero()));
        let derived = if all_zero && !self.elements.is_empty() {
            TaxIncluded::NotApplicable
        } else {
            TaxIncluded::No
        };
        (derived, true)
    }
}

/// Type of tariff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TariffType {
    /// Ad-hoc payment.
    AdHocPayment,
    /// Charging preference CHEAP.
    ProfileCheap,
    /// Charging preference FAST.
    ProfileFast,
    /// Charging preference GREEN.
    ProfileGreen,
    /// Regular.
    Regular,
}

/// Price components plus the restrictions under which they apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffElement {
    /// Components (non-empty).
    pub price_components: Vec<PriceComponent>,
    /// Restrictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<TariffRestrictions>,
}

/// Dimension a price component charges for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TariffDimensionType {
    /// Per kWh.
    Energy,
    /// Flat fee.
    Flat,
    /// Per hour not requesting power.
    ParkingTime,
    /// Per hour charging.
    Time,
}

/// One price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceComponent {
    /// Dimension.
    #[serde(rename = "type")]
    pub kind: TariffDimensionType,
    /// Price per unit excluding VAT.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub price: Decimal,
    /// VAT percentage (absent is not 0 %).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub vat: Option<Decimal>,
    /// Billing step (Wh or s); 0 tolerated.
    pub step_size: u32,
}

/// Day of week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DayOfWeek {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// Reservation restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationRestrictionType {
    /// Applies to reservations.
    Reservation,
    /// Applies to expired reservations.
    ReservationExpires,
}

/// When a tariff element applies (local time of the location).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffRestrictions {
    /// `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// Minimum kWh.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub min_kwh: Option<Decimal>,
    /// Maximum kWh.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_kwh: Option<Decimal>,
    /// Minimum current (A).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub min_current: Option<Decimal>,
    /// Maximum current (A).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_current: Option<Decimal>,
    /// Minimum power (kW).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub min_power: Option<Decimal>,
    /// Maximum power (kW).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_power: Option<Decimal>,
    /// Minimum duration (s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration: Option<u64>,
    /// Maximum duration (s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u64>,
    /// Days of week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<Vec<DayOfWeek>>,
    /// Reservation restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationRestrictionType>,
}

/// One problem found by [`Tariff::validate`]; `field` is a JSON-path-like location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TariffProblem {
    /// Where, e.g. `elements[0].price_components[1].price`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// All problems of a tariff.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid tariff: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct TariffErrors(pub Vec<TariffProblem>);

impl Tariff {
    /// Checks the rules the type system can't: required strings present, lengths, currency shape, non-empty lists,
    /// non-negative prices/VAT, `HH:MM` times, validity period order. `step_size` 0 is allowed.
    pub fn validate(&self) -> Result<(), TariffErrors> {
        let mut p = Vec::new();
        let mut bad = |field: String, problem: &str| {
            p.push(TariffProblem {
                field,
                problem: problem.to_owned(),
            })
        };
        check_ci(&mut bad, "country_code", self.country_code.as_str(), 2, 2);
        check_ci(&mut bad, "party_id", self.party_id.as_str(), 3, 3);
        check_ci(&mut bad, "id", self.id.as_str(), 1, 36);
        if self.currency.is_empty() {
            bad("currency".into(), "missing");
        } else if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            bad("currency".into(), "must be a 3-letter ISO 4217 code");
        }
        if self
            .tariff_alt_url
            .as_ref()
            .is_some_and(|u| u.is_empty() || u.len() > 255)
        {
            bad("tariff_alt_url".into(), "must be 1..=255 characters");
        }
        for (name, price) in [
            ("min_price", &self.min_price),
            ("max_price", &self.max_price),
        ] {
            if let Some(price) = price {
                if price.excl_vat.is_sign_negative() && !price.excl_vat.is_zero() {
                    bad(format!("{name}.excl_vat"), "must not be negative");
                }
                if price
                    .incl_vat
                    .is_some_and(|v| v.is_sign_negative() && !v.is_zero())
                {
                    bad(format!("{name}.incl_vat"), "must not be negative");
                }
            }
        }
        if let (Some(min), Some(max)) = (&self.min_price, &self.max_price)
            && min.excl_vat > max.excl_vat
        {
            bad("min_price".into(), "is larger than max_price");
        }
        if let (Some(start), Some(end)) = (self.start_date_time, self.end_date_time)
            && start >= end
        {
            bad("end_date_time".into(), "must be after start_date_time");
        }
        if self.elements.is_empty() {
            bad("elements".into(), "missing (at least one element required)");
        }
        for (i, element) in self.elements.iter().enumerate() {
            if element.price_components.is_empty() {
                bad(
                    format!("elements[{i}].price_components"),
                    "missing (at least one component required)",
                );
            }
            for (j, c) in element.price_components.iter().enumerate() {
                if c.price.is_sign_negative() && !c.price.is_zero() {
                    bad(
                        format!("elements[{i}].price_components[{j}].price"),
                        "must not be negative",
                    );
                }
                if c.vat.is_some_and(|v| v.is_sign_negative() && !v.is_zero()) {
                    bad(
                        format!("elements[{i}].price_components[{j}].vat"),
                        "must not be negative",
                    );
                }
            }
            if let Some(r) = &element.restrictions {
                for (name, value) in [("start_time", &r.start_time), ("end_time", &r.end_time)] {
                    if value.as_deref().is_some_and(|v| !is_hh_mm(v)) {
                        bad(
                            format!("elements[{i}].restrictions.{name}"),
                            "must be HH:MM",
                        );
                    }
                }
                for (name, value) in [("start_date", &r.start_date), ("end_date", &r.end_date)] {
                    if value
                        .as_deref()
                        .is_some_and(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err())
                    {
                        bad(
                            format!("elements[{i}].restrictions.{name}"),
                            "must be YYYY-MM-DD",
                        );
                    }
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(TariffErrors(p))
        }
    }
}

fn check_ci(bad: &mut impl FnMut(String, &str), field: &str, value: &str, min: usize, max: usize) {
    if value.is_empty() {
        bad(field.into(), "missing");
    } else if value.len() < min || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        bad(
            field.into(),
            &format!("must be {min}..={max} printable ASCII characters"),
        );
    }
}

fn is_hh_mm(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit)
        && (v[..2].parse::<u8>().is_ok_and(|h| h < 24))
        && (v[3..].parse::<u8>().is_ok_and(|m| m < 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const TARIFF: &str = r#"{
      "country_code": "DE", "party_id": "ALL", "id": "12", "currency": "EUR", "type": "REGULAR",
      "tariff_alt_url": "https://company.com/tariffs/12",
      "min_price": {"excl_vat": 0.50, "incl_vat": 0.55},
      "elements": [{
        "price_components": [{"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1},
                             {"type": "TIME", "price": 2.00, "step_size": 300}],
        "restrictions": {"start_time": "13:30", "end_time": "19:00", "max_power": 32.00,
                         "day_of_week": ["MONDAY", "SUNDAY"]}
      }, {
        "price_components": [{"type": "FLAT", "price": 0.00, "step_size": 0}]
      }],
      "last_updated": "2015-06-29T20:39:09Z"
    }"#;

    #[test]
    fn decimals_are_json_numbers_and_keep_their_scale() {
        let t: Tariff = serde_json::from_str(TARIFF).expect("parses");
        let c = &t.elements[0].price_components[0];
        assert_eq!(c.price, Decimal::from_str("0.25").expect("dec"));
        assert_eq!(c.vat, Some(Decimal::from_str("10.0").expect("dec")));
        let json = serde_json::to_string(&t).expect("json");
        assert!(
            json.contains(r#""price":0.25,"vat":10.0,"step_size":1"#),
            "{json}"
        );
        assert!(
            json.contains(r#""min_price":{"excl_vat":0.50,"incl_vat":0.55}"#),
            "{json}"
        );
        assert!(json.contains(r#""max_power":32.00"#), "{json}");
        assert!(!json.contains("\"0.25\""), "no string decimals: {json}");
        let back: Tariff = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, t);
        assert!(t.validate().is_ok(), "{:?}", t.validate());
    }

    #[test]
    fn validate_reports_every_problem_with_its_path() {
        let mut t: Tariff = serde_json::from_str(TARIFF).expect("parses");
        t.currency = "euro".into();
        t.party_id = PartyId::new("");
        t.elements[0].price_components[1].price = Decimal::from_str("-1").expect("dec");
        t.elements[1].price_components.clear();
        if let Some(r) = t.elements[0].restrictions.as_mut() {
            r.start_time = Some("25:00".into());
        }
        let err = t.validate().expect_err("invalid");
        let fields: Vec<_> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "party_id",
                "currency",
                "elements[0].price_components[1].price",
                "elements[0].restrictions.start_time",
                "elements[1].price_components",
            ]
        );
        assert!(err.to_string().contains("party_id: missing"), "{err}");
        t.elements.clear();
        assert!(
            t.validate()
                .expect_err("invalid")
                .0
                .iter()
                .any(|p| p.field == "elements")
        );
    }

    #[test]
    fn step_size_zero_is_valid() {
        let t: Tariff = serde_json::from_str(TARIFF).expect("parses");
        assert_eq!(t.elements[1].price_components[0].step_size, 0);
        assert!(t.validate().is_ok());
    }
}
