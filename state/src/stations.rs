//! Stations as they described themselves, their connectors' last statuses, the OCPI view of
//! each EVSE as last published, and the stable EVSE uid table.
//!
//! The model is version-neutral: a 1.6 connector N is stored as EVSE N / connector 1, a 2.0.1
//! EVSE/connector as itself; EVSE 0 / connector 0 is the station as a whole. Values are JSON so
//! they stay readable with `export`; each carries a schema version (`v`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::{self, idx, tree};
use crate::{Error, Store, TxError, Txn, get, scan, schema_version};

/// A charging station as it last described itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station identity (from its websocket URL).
    pub id: String,
    /// Negotiated OCPP version of the last connection (`1.6` / `2.0.1`).
    pub ocpp_version: Option<String>,
    /// Vendor from BootNotification.
    pub vendor: Option<String>,
    /// Model from BootNotification.
    pub model: Option<String>,
    /// Serial number from BootNotification.
    pub serial_number: Option<String>,
    /// Firmware version from BootNotification.
    pub firmware_version: Option<String>,
    /// Meter serial number (1.6 BootNotification); becomes the OCPI CDR `meter_id`.
    pub meter_serial_number: Option<String>,
    /// Meter type (1.6 BootNotification).
    pub meter_type: Option<String>,
    /// Modem ICCID.
    pub iccid: Option<String>,
    /// Modem IMSI.
    pub imsi: Option<String>,
    /// 2.0.1 boot reason.
    pub boot_reason: Option<String>,
    /// Last accepted BootNotification.
    pub last_boot: Option<DateTime<Utc>>,
    /// Last message or connection event.
    pub last_seen: Option<DateTime<Utc>>,
    /// Whether a websocket is open now.
    pub online: bool,
    /// When the current (or last) connection opened.
    pub connected_at: Option<DateTime<Utc>>,
    /// When the last connection closed.
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Last firmware status notification.
    pub firmware_status: Option<String>,
}

impl Station {
    /// A station never seen before.
    pub fn new(id: &str) -> Self {
        Station {
            v: crate::SCHEMA_VERSION,
            id: id.to_owned(),
            ocpp_version: None,
            vendor: None,
            model: None,
            serial_number: None,
            firmware_version: None,
            meter_serial_number: None,
            meter_type: None,
            iccid: None,
            imsi: None,
            boot_reason: None,
            last_boot: None,
            last_seen: None,
            online: false,
            connected_at: None,
            disconnected_at: None,
            firmware_status: None,
        }
    }
}

/// One connector's last reported status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station identity.
    pub station_id: String,
    /// EVSE number (0 = the station).
    pub evse_id: u32,
    /// Connector number (0 = the whole EVSE / station).
    pub connector_id: u32,
    /// OCPP status as reported (`Available`, `Charging`, `Occupied`, …).
    pub status: String,
    /// 1.6 error code other than `NoError`.
    pub error_code: Option<String>,
    /// Vendor info.
    pub info: Option<String>,
    /// Station time of the status.
    pub timestamp: DateTime<Utc>,
    /// When we stored it.
    pub updated_at: DateTime<Utc>,
}

/// The OCPI view of one EVSE as last published: its status and when it last changed. Kept so
/// that time-based changes (a station offline past the grace period) have a stable
/// `last_updated`, and so that a push happens only when the published status changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvseState {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Station identity.
    pub station_id: String,
    /// EVSE number (≥ 1).
    pub evse_id: u32,
    /// The stable OCPI EVSE uid.
    pub uid: String,
    /// OCPI EvseStatus (`AVAILABLE`, `CHARGING`, …).
    pub status: String,
    /// Connector numbers seen on this EVSE.
    pub connectors: Vec<u32>,
    /// When status or connectors last changed.
    pub last_updated: DateTime<Utc>,
}

impl Store {
    /// One station.
    pub fn station(&self, id: &str) -> Result<Option<Station>, Error> {
        get(self.tree(idx::STATIONS), tree::STATIONS, id.as_bytes())
    }

    /// All stations, ordered by id.
    pub fn stations(&self) -> Result<Vec<Station>, Error> {
        scan(self.tree(idx::STATIONS), tree::STATIONS, b"")
    }

    /// A station's connectors, ordered by EVSE then connector.
    pub fn connectors(&self, station: &str) -> Result<Vec<Connector>, Error> {
        scan(
            self.tree(idx::CONNECTORS),
            tree::CONNECTORS,
            &keys::station_prefix(station),
        )
    }

    /// Marks every station offline: at start-up no websocket is open, whatever the store says
    /// after a crash.
    pub fn mark_all_offline(&self, at: DateTime<Utc>) -> Result<(), Error> {
        for station in self.stations()? {
            if station.online {
                self.update(|tx| {
                    if let Some(mut s) = tx.station(&station.id)? {
                        s.online = false;
                        s.disconnected_at = Some(at);
                        tx.put_station(&s)?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// The published EVSE states of a station, by EVSE number.
    pub fn evse_states(&self, station: &str) -> Result<Vec<EvseState>, Error> {
        scan(
            self.tree(idx::EVSE_STATES),
            tree::EVSE_STATES,
            &keys::station_prefix(station),
        )
    }

    /// The EVSE uid of a station's EVSE, if one was allocated.
    pub fn evse_uid(&self, station: &str, evse_id: u32) -> Result<Option<String>, Error> {
        Ok(self
            .tree(idx::EVSE_UIDS)
            .get(keys::connector(station, evse_id, 0))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The station and EVSE number behind an EVSE uid (case-insensitive).
    pub fn evse_by_uid(&self, uid: &str) -> Result<Option<(String, u32)>, Error> {
        let Some(v) = self
            .tree(idx::EVSE_BY_UID)
            .get(uid.to_ascii_lowercase().as_bytes())?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&v);
        let (station, evse) = text.rsplit_once('\0').ok_or_else(|| Error::Corrupt {
            tree: tree::EVSE_BY_UID,
            reason: "missing separator".into(),
        })?;
        let evse = evse.parse().map_err(|_| Error::Corrupt {
            tree: tree::EVSE_BY_UID,
            reason: "evse id".into(),
        })?;
        Ok(Some((station.to_owned(), evse)))
    }
}

impl Txn<'_> {
    /// One station.
    pub fn station(&self, id: &str) -> Result<Option<Station>, TxError> {
        self.get(idx::STATIONS, tree::STATIONS, id.as_bytes())
    }

    /// Stores a station.
    pub fn put_station(&self, s: &Station) -> Result<(), TxError> {
        self.put(idx::STATIONS, tree::STATIONS, s.id.as_bytes().to_vec(), s)
    }

    /// One connector.
    pub fn connector(
        &self,
        station: &str,
        evse_id: u32,
        connector_id: u32,
    ) -> Result<Option<Connector>, TxError> {
        self.get(
            idx::CONNECTORS,
            tree::CONNECTORS,
            &keys::connector(station, evse_id, connector_id),
        )
    }

    /// Stores a connector.
    pub fn put_connector(&self, c: &Connector) -> Result<(), TxError> {
        let key = keys::connector(&c.station_id, c.evse_id, c.connector_id);
        self.put(idx::CONNECTORS, tree::CONNECTORS, key, c)
    }

    /// The published state of one EVSE.
    pub fn evse_state(&self, station: &str, evse_id: u32) -> Result<Option<EvseState>, TxError> {
        self.get(
            idx::EVSE_STATES,
            tree::EVSE_STATES,
            &keys::connector(station, evse_id, 0),
        )
    }

    /// Stores the published state of one EVSE.
    pub fn put_evse_state(&self, e: &EvseState) -> Result<(), TxError> {
        let key = keys::connector(&e.station_id, e.evse_id, 0);
        self.put(idx::EVSE_STATES, tree::EVSE_STATES, key, e)
    }

    /// The EVSE uid of a station's EVSE, allocating a stable one on first sight: the
    /// [`crate::uid::preferred_evse_uid`] when it is free, else a generated `EVSE-{n}`. Either
    /// way it is stored and never derived again (nor parsed back).
    pub fn evse_uid(&self, station: &str, evse_id: u32) -> Result<String, TxError> {
        let key = keys::connector(station, evse_id, 0);
        if let Some(v) = self.trees[idx::EVSE_UIDS].get(&key)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let taken = |u: &str| -> Result<bool, TxError> {
            Ok(self.trees[idx::EVSE_BY_UID]
                .get(u.to_ascii_lowercase().as_bytes())?
                .is_some())
        };
        let mut uid = match crate::uid::preferred_evse_uid(station, evse_id) {
            Some(u) if !taken(&u)? => u,
            _ => String::new(),
        };
        if uid.is_empty() {
            loop {
                uid = format!("EVSE-{}", self.trees[idx::EVSE_UIDS].generate_id()?);
                if !taken(&uid)? {
                    break;
                }
            }
        }
        self.trees[idx::EVSE_UIDS].insert(key, uid.as_bytes())?;
        self.trees[idx::EVSE_BY_UID].insert(
            uid.to_ascii_lowercase().as_bytes(),
            format!("{station}\0{evse_id}").as_bytes(),
        )?;
        Ok(uid)
    }
}
