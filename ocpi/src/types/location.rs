//! Locations module objects: `Location` 1→n `Evse` 1→n `Connector`, plus their enums and classes.
//!
//! Invariants the *producer* must keep (not enforced here): any EVSE/connector change bumps the parents'
//! `last_updated`; EVSE uids are never reused (use `REMOVED`). Coordinates are strings on the wire.
//! See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/mod_locations.asciidoc>.

use serde::{Deserialize, Serialize};

use super::common::{BusinessDetails, DisplayText, EnergyMix, Image};
use super::datetime::DateTime;
use super::ids::{
    ConnectorId, CountryCode, EvseId, EvseUid, LocationId, PartyId, TariffId, open_enum,
};
use super::token::TokenType;
use super::validate::{Checker, ValidationErrors};

/// A charging location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Owner's country code.
    pub country_code: CountryCode,
    /// Owner's party id.
    pub party_id: PartyId,
    /// Location id.
    pub id: LocationId,
    /// Whether the location may be published.
    pub publish: bool,
    /// Who may see an unpublished location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_allowed_to: Option<Vec<PublishTokenType>>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Street and number.
    pub address: String,
    /// City or town.
    pub city: String,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-3 country.
    pub country: String,
    /// Coordinates of the location.
    pub coordinates: GeoLocation,
    /// Related points (entrances etc.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_locations: Option<Vec<AdditionalGeoLocation>>,
    /// Type of parking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parking_type: Option<ParkingType>,
    /// EVSEs at this location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evses: Option<Vec<Evse>>,
    /// Directions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directions: Option<Vec<DisplayText>>,
    /// Operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<BusinessDetails>,
    /// Suboperator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suboperator: Option<BusinessDetails>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<BusinessDetails>,
    /// Facilities nearby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facilities: Option<Vec<Facility>>,
    /// IANA time zone, e.g. `Europe/Oslo`.
    pub time_zone: String,
    /// Opening times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening_times: Option<Hours>,
    /// Whether charging continues when closed (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_when_closed: Option<bool>,
    /// Images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Image>>,
    /// Energy mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_mix: Option<EnergyMix>,
    /// Parking places usable while charging (2.3.0; dropped for older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parking_places: Option<Vec<Parking>>,
    /// Phone number for driver assistance, CiString(25) (2.3.0; dropped for older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_phone: Option<String>,
    /// Last change of this location or any of its EVSEs/connectors.
    pub last_updated: DateTime,
}

impl Location {
    /// The EVSE with this uid (case-insensitive).
    pub fn evse(&self, uid: &str) -> Option<&Evse> {
        self.evses.as_deref()?.iter().find(|e| e.uid == uid)
    }
}

/// An EVSE: charges one EV at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evse {
    /// Unique (for all time) uid within the CPO.
    pub uid: EvseUid,
    /// eMI3 EVSE id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<EvseId>,
    /// Current status.
    pub status: EvseStatus,
    /// Planned status changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_schedule: Option<Vec<StatusSchedule>>,
    /// Capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Capability>>,
    /// Connectors (non-empty).
    pub connectors: Vec<Connector>,
    /// Floor level (max 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_level: Option<String>,
    /// Coordinates of the EVSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<GeoLocation>,
    /// Number/label printed on the EVSE (max 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_reference: Option<String>,
    /// Directions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directions: Option<Vec<DisplayText>>,
    /// Parking restrictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parking_restrictions: Option<Vec<ParkingRestriction>>,
    /// Images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Image>>,
    /// Parking places of the Location this EVSE serves (2.3.0; dropped for older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parking: Option<Vec<EvseParking>>,
    /// Names of eMSPs whose contracts are accepted here (2.3.0; dropped for older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_service_providers: Option<Vec<String>>,
    /// Last change of this EVSE or its connectors.
    pub last_updated: DateTime,
}

impl Evse {
    /// The connector with this id (case-insensitive).
    pub fn connector(&self, id: &str) -> Option<&Connector> {
        self.connectors.iter().find(|c| c.id == id)
    }
}

/// A connector of an EVSE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    /// Id within the EVSE.
    pub id: ConnectorId,
    /// Plug standard.
    pub standard: ConnectorType,
    /// Socket or cable.
    pub format: ConnectorFormat,
    /// AC/DC.
    pub power_type: PowerType,
    /// Max voltage (V, line to neutral for 3-phase AC).
    pub max_voltage: u32,
    /// Max current (A).
    pub max_amperage: u32,
    /// Max power (W).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_electric_power: Option<u32>,
    /// Tariffs that apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tariff_ids: Option<Vec<TariffId>>,
    /// URL of terms and conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_and_conditions: Option<String>,
    /// Connector capabilities, e.g. Plug & Charge (2.3.0; dropped for older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<ConnectorCapability>>,
    /// Last change.
    pub last_updated: DateTime,
}

open_enum!(
    /// Capability of a connector (2.3.0).
    ConnectorCapability {
        /// ISO 15118-2 Plug & Charge.
        Iso15118_2PlugAndCharge = "ISO_15118_2_PLUG_AND_CHARGE",
        /// ISO 15118-20 Plug & Charge.
        Iso15118_20PlugAndCharge = "ISO_15118_20_PLUG_AND_CHARGE",
    }
);

open_enum!(
    /// Vehicle type a parking place accommodates (2.3.0).
    VehicleType {
        /// Motorcycle.
        Motorcycle = "MOTORCYCLE",
        /// Passenger car.
        PersonalVehicle = "PERSONAL_VEHICLE",
        /// Passenger car with trailer.
        PersonalVehicleWithTrailer = "PERSONAL_VEHICLE_WITH_TRAILER",
        /// Light van.
        Van = "VAN",
        /// Tractor unit.
        SemiTractor = "SEMI_TRACTOR",
        /// Rigid truck.
        Rigid = "RIGID",
        /// Truck with trailer.
        TruckWithTrailer = "TRUCK_WITH_TRAILER",
        /// Bus or coach.
        Bus = "BUS",
        /// Disabled parking permit.
        Disabled = "DISABLED",
    }
);

open_enum!(
    /// Position of an EVSE relative to its parking space (2.3.0).
    EvsePosition {
        /// Left of the vehicle.
        Left = "LEFT",
        /// Right of the vehicle.
        Right = "RIGHT",
        /// At the narrow end.
        Center = "CENTER",
    }
);

open_enum!(
    /// How vehicles park relative to the roadway (2.3.0).
    ParkingDirection {
        /// Parallel.
        Parallel = "PARALLEL",
        /// Perpendicular.
        Perpendicular = "PERPENDICULAR",
        /// At an angle.
        Angle = "ANGLE",
    }
);

/// Reference from an EVSE to a parking place of its Location (2.3.0 `EVSEParking`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvseParking {
    /// Id of a [`Parking`] in the Location's `parking_places`.
    pub parking_id: String,
    /// Position of the EVSE relative to the parking space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_position: Option<EvsePosition>,
}

/// A parking place of a Location (2.3.0, AFIR data). Sizes in cm, weight in kg, `time_limit` in minutes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parking {
    /// Id, unique within the Location, CiString(36).
    pub id: String,
    /// Identifier visible on site, string(12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_reference: Option<String>,
    /// Vehicle types the place is designed for (non-empty).
    pub vehicle_types: Vec<VehicleType>,
    /// Maximum vehicle weight (kg).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_vehicle_weight: Option<rust_decimal::Decimal>,
    /// Maximum vehicle height (cm).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_vehicle_height: Option<rust_decimal::Decimal>,
    /// Maximum vehicle length (cm).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_vehicle_length: Option<rust_decimal::Decimal>,
    /// Maximum vehicle width (cm).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub max_vehicle_width: Option<rust_decimal::Decimal>,
    /// Length of the space (cm).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub parking_space_length: Option<rust_decimal::Decimal>,
    /// Width of the space (cm).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub parking_space_width: Option<rust_decimal::Decimal>,
    /// Dangerous goods allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerous_goods_allowed: Option<bool>,
    /// Parking direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<ParkingDirection>,
    /// Drive-through possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_through: Option<bool>,
    /// Other vehicle types forbidden.
    pub restricted_to_type: bool,
    /// Reservation required.
    pub reservation_required: bool,
    /// Time limit (minutes).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub time_limit: Option<rust_decimal::Decimal>,
    /// Roofed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofed: Option<bool>,
    /// Photos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Image>>,
    /// Lit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lighting: Option<bool>,
    /// Refrigeration outlet available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refrigeration_outlet: Option<bool>,
    /// Standards the space conforms to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standards: Option<Vec<String>>,
    /// APDS reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apds_reference: Option<String>,
}

/// Latitude/longitude as decimal strings (`-?[0-9]{1,2}\.[0-9]{5,7}`, `-?[0-9]{1,3}\.[0-9]{5,7}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoLocation {
    /// Latitude.
    pub latitude: String,
    /// Longitude.
    pub longitude: String,
}

/// A related point with an optional name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdditionalGeoLocation {
    /// Latitude.
    pub latitude: String,
    /// Longitude.
    pub longitude: String,
    /// Name of the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayText>,
}

/// Token (pattern) allowed to see an unpublished location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishTokenType {
    /// Token uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Token type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<TokenType>,
    /// Visual number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual_number: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// Opening times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    /// Open 24/7.
    pub twentyfourseven: bool,
    /// Weekly hours (when not 24/7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regular_hours: Option<Vec<RegularHours>>,
    /// Extra openings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceptional_openings: Option<Vec<ExceptionalPeriod>>,
    /// Extra closings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceptional_closings: Option<Vec<ExceptionalPeriod>>,
}

/// Opening period on one weekday.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegularHours {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    /// `HH:MM`.
    pub period_begin: String,
    /// `HH:MM`.
    pub period_end: String,
}

/// Absolute period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionalPeriod {
    /// Begin.
    pub period_begin: DateTime,
    /// End.
    pub period_end: DateTime,
}

/// Planned status of an EVSE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSchedule {
    /// Begin.
    pub period_begin: DateTime,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<DateTime>,
    /// Status in that period.
    pub status: EvseStatus,
}

/// Status of an EVSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EvseStatus {
    /// Free.
    Available,
    /// Physically blocked.
    Blocked,
    /// In use.
    Charging,
    /// Temporarily unavailable, not broken.
    Inoperative,
    /// Broken.
    #[serde(rename = "OUTOFORDER")]
    OutOfOrder,
    /// Planned.
    Planned,
    /// Removed for good.
    Removed,
    /// Reserved.
    Reserved,
    /// No information (e.g. offline).
    Unknown,
}

open_enum!(
    /// Plug standard.
    ConnectorType {
        /// CHAdeMO.
        Chademo = "CHADEMO",
        /// ChaoJi.
        ChaoJi = "CHAOJI",
        /// Domestic type A.
        DomesticA = "DOMESTIC_A",
        /// Domestic type B.
        DomesticB = "DOMESTIC_B",
        /// Domestic type C.
        DomesticC = "DOMESTIC_C",
        /// Domestic type D.
        DomesticD = "DOMESTIC_D",
        /// Domestic type E.
        DomesticE = "DOMESTIC_E",
        /// Domestic type F.
        DomesticF = "DOMESTIC_F",
        /// Domestic type G.
        DomesticG = "DOMESTIC_G",
        /// Domestic type H.
        DomesticH = "DOMESTIC_H",
        /// Domestic type I.
        DomesticI = "DOMESTIC_I",
        /// Domestic type J.
        DomesticJ = "DOMESTIC_J",
        /// Domestic type K.
        DomesticK = "DOMESTIC_K",
        /// Domestic type L.
        DomesticL = "DOMESTIC_L",
        /// Domestic type M.
        DomesticM = "DOMESTIC_M",
        /// Domestic type N.
        DomesticN = "DOMESTIC_N",
        /// Domestic type O.
        DomesticO = "DOMESTIC_O",
        /// Megawatt Charging System (2.3.0).
        Mcs = "MCS",
        /// SAE J3400 / NACS (2.3.0).
        SaeJ3400 = "SAE_J3400",
        /// GB/T AC.
        GbtAc = "GBT_AC",
        /// GB/T DC.
        GbtDc = "GBT_DC",
        /// IEC 60309-2 single phase 16 A.
        Iec60309_2Single16 = "IEC_60309_2_single_16",
        /// IEC 60309-2 three phase 16 A.
        Iec60309_2Three16 = "IEC_60309_2_three_16",
        /// IEC 60309-2 three phase 32 A.
        Iec60309_2Three32 = "IEC_60309_2_three_32",
        /// IEC 60309-2 three phase 64 A.
        Iec60309_2Three64 = "IEC_60309_2_three_64",
        /// Type 1 (SAE J1772).
        Iec62196T1 = "IEC_62196_T1",
        /// Combo type 1.
        Iec62196T1Combo = "IEC_62196_T1_COMBO",
        /// Type 2.
        Iec62196T2 = "IEC_62196_T2",
        /// Combo type 2 (CCS2).
        Iec62196T2Combo = "IEC_62196_T2_COMBO",
        /// Type 3A.
        Iec62196T3A = "IEC_62196_T3A",
        /// Type 3C.
        Iec62196T3C = "IEC_62196_T3C",
        /// NEMA 5-20.
        Nema5_20 = "NEMA_5_20",
        /// NEMA 6-30.
        Nema6_30 = "NEMA_6_30",
        /// NEMA 6-50.
        Nema6_50 = "NEMA_6_50",
        /// NEMA 10-30.
        Nema10_30 = "NEMA_10_30",
        /// NEMA 10-50.
        Nema10_50 = "NEMA_10_50",
        /// NEMA 14-30.
        Nema14_30 = "NEMA_14_30",
        /// NEMA 14-50.
        Nema14_50 = "NEMA_14_50",
        /// Pantograph bottom up.
        PantographBottomUp = "PANTOGRAPH_BOTTOM_UP",
        /// Pantograph top down.
        PantographTopDown = "PANTOGRAPH_TOP_DOWN",
        /// Tesla roadster.
        TeslaR = "TESLA_R",
        /// Tesla S.
        TeslaS = "TESLA_S",
    }
);

/// Socket or attached cable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorFormat {
    /// Socket; bring your own cable.
    Socket,
    /// Cable attached.
    Cable,
}

/// Power type of a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PowerType {
    /// AC single phase.
    #[serde(rename = "AC_1_PHASE")]
    Ac1Phase,
    /// AC two phases.
    #[serde(rename = "AC_2_PHASE")]
    Ac2Phase,
    /// AC two phases, split.
    #[serde(rename = "AC_2_PHASE_SPLIT")]
    Ac2PhaseSplit,
    /// AC three phases.
    #[serde(rename = "AC_3_PHASE")]
    Ac3Phase,
    /// Direct current.
    Dc,
}

open_enum!(
    /// EVSE capability.
    Capability {
        /// Charging profiles supported.
        ChargingProfileCapable = "CHARGING_PROFILE_CAPABLE",
        /// Charging preferences supported.
        ChargingPreferencesCapable = "CHARGING_PREFERENCES_CAPABLE",
        /// Chip card payment terminal.
        ChipCardSupport = "CHIP_CARD_SUPPORT",
        /// Contactless payment terminal.
        ContactlessCardSupport = "CONTACTLESS_CARD_SUPPORT",
        /// Credit card payable.
        CreditCardPayable = "CREDIT_CARD_PAYABLE",
        /// Debit card payable.
        DebitCardPayable = "DEBIT_CARD_PAYABLE",
        /// PED terminal.
        PedTerminal = "PED_TERMINAL",
        /// Remote start/stop.
        RemoteStartStopCapable = "REMOTE_START_STOP_CAPABLE",
        /// Reservable.
        Reservable = "RESERVABLE",
        /// RFID reader.
        RfidReader = "RFID_READER",
        /// StartSession needs a connector id.
        StartSessionConnectorRequired = "START_SESSION_CONNECTOR_REQUIRED",
        /// Token groups supported.
        TokenGroupCapable = "TOKEN_GROUP_CAPABLE",
        /// Remote unlock.
        UnlockCapable = "UNLOCK_CAPABLE",
    }
);

open_enum!(
    /// Facility near a location.
    Facility {
        /// Hotel.
        Hotel = "HOTEL",
        /// Restaurant.
        Restaurant = "RESTAURANT",
        /// Cafe.
        Cafe = "CAFE",
        /// Mall.
        Mall = "MALL",
        /// Supermarket.
        Supermarket = "SUPERMARKET",
        /// Sport.
        Sport = "SPORT",
        /// Recreation area.
        RecreationArea = "RECREATION_AREA",
        /// Nature.
        Nature = "NATURE",
        /// Museum.
        Museum = "MUSEUM",
        /// Bike sharing.
        BikeSharing = "BIKE_SHARING",
        /// Bus stop.
        BusStop = "BUS_STOP",
        /// Taxi stand.
        TaxiStand = "TAXI_STAND",
        /// Tram stop.
        TramStop = "TRAM_STOP",
        /// Metro station.
        MetroStation = "METRO_STATION",
        /// Train station.
        TrainStation = "TRAIN_STATION",
        /// Airport.
        Airport = "AIRPORT",
        /// Parking lot.
        ParkingLot = "PARKING_LOT",
        /// Carpool parking.
        CarpoolParking = "CARPOOL_PARKING",
        /// Fuel station.
        FuelStation = "FUEL_STATION",
        /// Wifi.
        Wifi = "WIFI",
    }
);

open_enum!(
    /// Type of parking at a location.
    ParkingType {
        /// Along a motorway.
        AlongMotorway = "ALONG_MOTORWAY",
        /// Parking garage.
        ParkingGarage = "PARKING_GARAGE",
        /// Parking lot.
        ParkingLot = "PARKING_LOT",
        /// On driveway.
        OnDriveway = "ON_DRIVEWAY",
        /// On street.
        OnStreet = "ON_STREET",
        /// Underground garage.
        UndergroundGarage = "UNDERGROUND_GARAGE",
    }
);

open_enum!(
    /// Parking restriction of an EVSE.
    ParkingRestriction {
        /// EVs only.
        EvOnly = "EV_ONLY",
        /// Plugged-in only.
        Plugged = "PLUGGED",
        /// Disabled drivers.
        Disabled = "DISABLED",
        /// Customers only.
        Customers = "CUSTOMERS",
        /// Motorcycles only.
        Motorcycles = "MOTORCYCLES",
    }
);

/// The 2.2.1 ConnectorType values (mod_locations); later versions added more.
pub const CONNECTOR_TYPES_221: [&str; 38] = [
    "CHADEMO",
    "CHAOJI",
    "DOMESTIC_A",
    "DOMESTIC_B",
    "DOMESTIC_C",
    "DOMESTIC_D",
    "DOMESTIC_E",
    "DOMESTIC_F",
    "DOMESTIC_G",
    "DOMESTIC_H",
    "DOMESTIC_I",
    "DOMESTIC_J",
    "DOMESTIC_K",
    "DOMESTIC_L",
    "DOMESTIC_M",
    "DOMESTIC_N",
    "DOMESTIC_O",
    "GBT_AC",
    "GBT_DC",
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "TESLA_R",
    "TESLA_S",
];

/// The 2.2.1 Capability values (mod_locations).
pub const CAPABILITIES_221: [&str; 13] = [
    "CHARGING_PROFILE_CAPABLE",
    "CHARGING_PREFERENCES_CAPABLE",
    "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT",
    "CREDIT_CARD_PAYABLE",
    "DEBIT_CARD_PAYABLE",
    "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE",
    "UNLOCK_CAPABLE",
];

/// `-?[0-9]{1,int_digits}\.[0-9]{5,7}` (GeoLocation latitude / longitude): 2 integer digits
/// for a latitude, 3 for a longitude.
pub fn coordinate_ok(s: &str, int_digits: usize) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let Some((int, frac)) = s.split_once('.') else {
        return false;
    };
    (1..=int_digits).contains(&int.len())
        && (5..=7).contains(&frac.len())
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

impl GeoLocation {
    fn check(&self, c: &mut Checker) {
        if self.latitude.len() > 10 || !coordinate_ok(&self.latitude, 2) {
            c.bad("latitude", "must match -?[0-9]{1,2}\\.[0-9]{5,7}");
        }
        if self.longitude.len() > 11 || !coordinate_ok(&self.longitude, 3) {
            c.bad("longitude", "must match -?[0-9]{1,3}\\.[0-9]{5,7}");
        }
    }
}

impl BusinessDetails {
    fn check(&self, c: &mut Checker) {
        c.string("name", &self.name, 100);
        if let Some(w) = &self.website {
            c.url("website", w, 255);
        }
    }
}

impl Location {
    /// Checks the Location and its EVSEs and connectors against the OCPI 2.2.1 field table
    /// (mod_locations): required fields, string and CiString lengths, enum values, coordinate
    /// patterns. Every problem is reported with its path (`evses[0].connectors[1].standard`).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("Location");
        self.check_own(&mut c);
        for (i, e) in self.evses.iter().flatten().enumerate() {
            c.nested(&format!("evses[{i}]"), |c| e.check(c));
        }
        c.finish()
    }

    /// Only the Location's own fields (not its EVSEs).
    pub fn validate_own(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("Location");
        self.check_own(&mut c);
        c.finish()
    }

    fn check_own(&self, c: &mut Checker) {
        c.ci("country_code", self.country_code.as_str(), 2, 2);
        c.ci("party_id", self.party_id.as_str(), 3, 3);
        c.ci("id", self.id.as_str(), 1, 36);
        c.opt_string("name", self.name.as_deref(), 255);
        c.string("address", &self.address, 255);
        c.string("city", &self.city, 45);
        c.opt_string("postal_code", self.postal_code.as_deref(), 10);
        c.opt_string("state", self.state.as_deref(), 45);
        if self.country.len() != 3 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            c.bad(
                "country",
                "must be an ISO 3166-1 alpha-3 code (3 upper-case letters)",
            );
        }
        c.nested("coordinates", |c| self.coordinates.check(c));
        if let Some(op) = &self.operator {
            c.nested("operator", |c| op.check(c));
        }
        c.string("time_zone", &self.time_zone, 255);
        if self.publish_allowed_to.is_some() && self.publish {
            c.bad(
                "publish_allowed_to",
                "may only be set when publish is false",
            );
        }
    }
}

impl Evse {
    /// Checks one EVSE (and its connectors) against the OCPI 2.2.1 field table.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new("EVSE");
        self.check(&mut c);
        c.finish()
    }

    fn check(&self, c: &mut Checker) {
        c.ci("uid", self.uid.as_str(), 1, 36);
        c.opt_ci("evse_id", self.evse_id.as_ref().map(EvseId::as_str), 48);
        for (i, cap) in self.capabilities.iter().flatten().enumerate() {
            if !CAPABILITIES_221.contains(&cap.as_str()) {
                c.bad(
                    &format!("capabilities[{i}]"),
                    format!("`{}` is not an OCPI 2.2.1 Capability", cap.as_str()),
                );
            }
        }
        if self.connectors.is_empty() {
            c.bad("connectors", "missing (at least one connector required)");
        }
        for (i, k) in self.connectors.iter().enumerate() {
            c.nested(&format!("connectors[{i}]"), |c| k.check(c));
        }
        c.opt_string("floor_level", self.floor_level.as_deref(), 4);
        if let Some(g) = &self.coordinates {
            c.nested("coordinates", |c| g.check(c));
        }
        c.opt_string("physical_reference", self.physical_reference.as_deref(), 16);
    }
}

impl Connector {
    fn check(&self, c: &mut Checker) {
        c.ci("id", self.id.as_str(), 1, 36);
        if !CONNECTOR_TYPES_221.contains(&self.standard.as_str()) {
            c.bad(
                "standard",
                format!(
                    "`{}` is not an OCPI 2.2.1 ConnectorType",
                    self.standard.as_str()
                ),
            );
        }
        if self.max_voltage == 0 {
            c.bad("max_voltage", "must be at least 1");
        }
        if self.max_amperage == 0 {
            c.bad("max_amperage", "must be at least 1");
        }
        for (i, t) in self.tariff_ids.iter().flatten().enumerate() {
            c.ci(&format!("tariff_ids[{i}]"), t.as_str(), 1, 36);
        }
        if let Some(u) = &self.terms_and_conditions {
            c.url("terms_and_conditions", u, 255);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCATION: &str = r#"{
      "country_code": "BE", "party_id": "BEC", "id": "LOC1", "publish": true,
      "name": "Gent Zuid", "address": "F.Rooseveltlaan 3A", "city": "Gent", "postal_code": "9000",
      "country": "BEL", "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
      "parking_type": "ON_STREET",
      "evses": [{
        "uid": "3256", "evse_id": "BE*BEC*E041503001", "status": "AVAILABLE",
        "capabilities": ["RESERVABLE", "SOME_FUTURE_CAPABILITY"],
        "connectors": [{
          "id": "1", "standard": "IEC_62196_T2", "format": "CABLE", "power_type": "AC_3_PHASE",
          "max_voltage": 220, "max_amperage": 16, "tariff_ids": ["11"], "last_updated": "2015-03-16T10:10:02Z"
        }, {
          "id": "2", "standard": "FUTURE_PLUG", "format": "SOCKET", "power_type": "DC",
          "max_voltage": 1000, "max_amperage": 3000, "max_electric_power": 3000000,
          "last_updated": "2015-03-18T08:12:01Z"
        }],
        "physical_reference": "1", "floor_level": "-1", "last_updated": "2015-06-28T08:12:01Z"
      }, {
        "uid": "3257", "status": "OUTOFORDER",
        "connectors": [{"id": "1", "standard": "CHADEMO", "format": "CABLE", "power_type": "DC",
          "max_voltage": 500, "max_amperage": 125, "last_updated": "2015-03-16T10:10:02Z"}],
        "last_updated": "2015-06-29T20:39:09Z"
      }],
      "operator": {"name": "BeCharged"},
      "time_zone": "Europe/Brussels",
      "opening_times": {"twentyfourseven": true},
      "last_updated": "2015-06-29T20:39:09Z"
    }"#;

    #[test]
    fn location_round_trips_and_keeps_unknown_enum_values() {
        let loc: Location = serde_json::from_str(LOCATION).expect("parses");
        let evse = loc.evse("3256").expect("evse");
        assert_eq!(evse.status, EvseStatus::Available);
        assert_eq!(
            evse.connector("2").map(|c| c.standard.clone()),
            Some(ConnectorType::Other("FUTURE_PLUG".into()))
        );
        assert_eq!(
            loc.evse("3257").map(|e| e.status),
            Some(EvseStatus::OutOfOrder)
        );
        let caps = evse.capabilities.clone().unwrap_or_default();
        assert_eq!(caps[1], Capability::Other("SOME_FUTURE_CAPABILITY".into()));
        let json = serde_json::to_value(&loc).expect("json");
        assert_eq!(json["evses"][0]["connectors"][1]["standard"], "FUTURE_PLUG");
        assert_eq!(json["evses"][1]["status"], "OUTOFORDER");
        assert_eq!(
            json["evses"][0]["connectors"][0]["power_type"],
            "AC_3_PHASE"
        );
        assert!(json.get("state").is_none(), "absent optionals are omitted");
        let back: Location = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, loc);
    }

    #[test]
    fn missing_required_field_is_an_error() {
        let mut v: serde_json::Value = serde_json::from_str(LOCATION).expect("parses");
        v.as_object_mut().expect("object").remove("time_zone");
        assert!(serde_json::from_value::<Location>(v).is_err());
    }

    #[test]
    fn all_evse_statuses_use_spec_spelling() {
        let all = r#"["AVAILABLE","BLOCKED","CHARGING","INOPERATIVE","OUTOFORDER","PLANNED","REMOVED","RESERVED","UNKNOWN"]"#;
        let parsed: Vec<EvseStatus> = serde_json::from_str(all).expect("parses");
        let back: Vec<EvseStatus> =
            serde_json::from_str(&serde_json::to_string(&parsed).expect("json")).expect("parses");
        assert_eq!(parsed, back);
        assert_eq!(
            serde_json::to_string(&parsed)
                .expect("json")
                .replace(' ', ""),
            all
        );
    }

    #[test]
    fn validate_reports_lengths_enums_and_required_fields() {
        let mut loc: Location = serde_json::from_str(LOCATION).expect("parses");
        let future = loc
            .validate()
            .expect_err("future enum values are not 2.2.1");
        assert!(future.has("evses[0].capabilities[1]"), "{future}");
        assert!(future.has("evses[0].connectors[1].standard"), "{future}");
        let evse = &mut loc.evses.as_mut().expect("evses")[0];
        evse.capabilities = Some(vec![Capability::Reservable]);
        evse.connectors[1].standard = ConnectorType::Chademo;
        loc.validate().expect("the example is valid");
        let mut bad = loc.clone();
        bad.city = "x".repeat(46);
        bad.postal_code = Some("12345678901".into());
        bad.coordinates.latitude = "52.1".into();
        let evse = &mut bad.evses.as_mut().expect("evses")[0];
        evse.uid = EvseUid::new("u".repeat(37));
        evse.physical_reference = Some("x".repeat(17));
        evse.capabilities = Some(vec![Capability::Other("TELEPORT".into())]);
        evse.connectors[0].standard = ConnectorType::Other("PLUG_X".into());
        evse.connectors[0].max_amperage = 0;
        let e = bad.validate().expect_err("invalid");
        for field in [
            "city",
            "postal_code",
            "coordinates.latitude",
            "evses[0].uid",
            "evses[0].physical_reference",
            "evses[0].capabilities[0]",
            "evses[0].connectors[0].standard",
            "evses[0].connectors[0].max_amperage",
        ] {
            assert!(e.has(field), "{field} not reported: {e}");
        }
        assert!(bad.validate_own().expect_err("own fields").has("city"));
        assert!(!bad.validate_own().expect_err("own").has("evses[0].uid"));
        let mut no_connectors = loc.evses.expect("evses")[0].clone();
        no_connectors.connectors.clear();
        assert!(
            no_connectors
                .validate()
                .expect_err("empty")
                .has("connectors")
        );
    }
}
