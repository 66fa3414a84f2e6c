//! Small classes shared by several modules: `DisplayText`, `BusinessDetails`, `Image`, `EnergyMix`, `Price`, `Role`.
//!
//! Decimal numbers are JSON numbers on the wire (`rust_decimal::serde::arbitrary_precision`), never strings or floats.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::open_enum;

/// Text with an ISO 639-1 language code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayText {
    /// ISO 639-1 language code (2 chars).
    pub language: String,
    /// The text (max 512 chars, no markup).
    pub text: String,
}

open_enum!(
    /// Category of an [`Image`].
    ImageCategory {
        /// Photo of the charger.
        Charger = "CHARGER",
        /// Location entrance.
        Entrance = "ENTRANCE",
        /// Location overview.
        Location = "LOCATION",
        /// Network logo.
        Network = "NETWORK",
        /// Operator logo.
        Operator = "OPERATOR",
        /// Other image.
        OtherImage = "OTHER",
        /// Owner logo.
        Owner = "OWNER",
    }
);

/// A reference to an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// URL of the image.
    pub url: String,
    /// URL of a thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// What the image shows.
    pub category: ImageCategory,
    /// Image type, e.g. `png`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// Business details of a party or operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessDetails {
    /// Name (max 100 chars).
    pub name: String,
    /// Website URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Image>,
}

open_enum!(
    /// Role of a party in the OCPI network.
    Role {
        /// Charge Point Operator.
        Cpo = "CPO",
        /// e-Mobility Service Provider.
        Emsp = "EMSP",
        /// Roaming hub.
        Hub = "HUB",
        /// National Access Point.
        Nap = "NAP",
        /// Navigation Service Provider.
        Nsp = "NSP",
        /// Other role.
        OtherRole = "OTHER",
        /// Smart Charging Service Provider.
        Scsp = "SCSP",
    }
);

/// A price with and without VAT (2.2.1 shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Price excluding VAT.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub excl_vat: Decimal,
    /// Price including VAT.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub incl_vat: Option<Decimal>,
}

open_enum!(
    /// Source of energy in an [`EnergyMix`].
    EnergySourceCategory {
        /// Nuclear.
        Nuclear = "NUCLEAR",
        /// General fossil.
        GeneralFossil = "GENERAL_FOSSIL",
        /// Coal.
        Coal = "COAL",
        /// Gas.
        Gas = "GAS",
        /// General green.
        GeneralGreen = "GENERAL_GREEN",
        /// Solar.
        Solar = "SOLAR",
        /// Wind.
        Wind = "WIND",
        /// Water.
        Water = "WATER",
    }
);

open_enum!(
    /// Environmental impact category.
    EnvironmentalImpactCategory {
        /// Nuclear waste (g/kWh).
        NuclearWaste = "NUCLEAR_WASTE",
        /// CO2 (g/kWh).
        CarbonDioxide = "CARBON_DIOXIDE",
    }
);

/// Share of one energy source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnergySource {
    /// The source.
    pub source: EnergySourceCategory,
    /// Percentage 0–100.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub percentage: Decimal,
}

/// Amount of one environmental impact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentalImpact {
    /// The category.
    pub category: EnvironmentalImpactCategory,
    /// Amount in g/kWh.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
}

/// Energy mix of a location or tariff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnergyMix {
    /// 100 % green energy.
    pub is_green_energy: bool,
    /// Breakdown by source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_sources: Option<Vec<EnergySource>>,
    /// Environmental impact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environ_impact: Option<Vec<EnvironmentalImpact>>,
    /// Supplier name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_name: Option<String>,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_product_name: Option<String>,
}
