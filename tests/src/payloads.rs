//! Schema-valid request payloads for OCPP 1.6 and 2.0.1.
//!
//! Written by hand from the OCA JSON schemas (not generated from the daemon's types), so the
//! tests exercise the wire format the specs define. Timestamps are RFC 3339 UTC with
//! milliseconds.

/// OCPP 1.6 payloads.
pub mod v16 {
    use serde_json::{Value, json};

    use crate::now_rfc3339;

    /// Vendor sent in [`boot`].
    pub const VENDOR: &str = "TestVendor";
    /// Model sent in [`boot`].
    pub const MODEL: &str = "TestModel-16";
    /// Serial sent in [`boot`].
    pub const SERIAL: &str = "SN-16-0001";
    /// Firmware sent in [`boot`].
    pub const FIRMWARE: &str = "1.2.3";
    /// Meter serial sent in [`boot`].
    pub const METER_SERIAL: &str = "MTR-0001";

    /// BootNotification.req with all identity fields the admin API exposes.
    pub fn boot() -> Value {
        json!({
            "chargePointVendor": VENDOR,
            "chargePointModel": MODEL,
            "chargePointSerialNumber": SERIAL,
            "chargeBoxSerialNumber": SERIAL,
            "firmwareVersion": FIRMWARE,
            "meterSerialNumber": METER_SERIAL,
        })
    }

    /// StatusNotification.req (`errorCode` `NoError`).
    pub fn status(connector_id: u32, status: &str) -> Value {
        json!({
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": now_rfc3339(),
        })
    }

    /// StatusNotification.req with an error code and info text.
    pub fn status_fault(connector_id: u32, error_code: &str, info: &str) -> Value {
        json!({
            "connectorId": connector_id,
            "errorCode": error_code,
            "info": info,
            "status": "Faulted",
            "timestamp": now_rfc3339(),
        })
    }

    /// Authorize.req.
    pub fn authorize(id_tag: &str) -> Value {
        json!({ "idTag": id_tag })
    }

    /// StartTransaction.req.
    pub fn start(connector_id: u32, id_tag: &str, meter_start: i64, timestamp: &str) -> Value {
        json!({
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start,
            "timestamp": timestamp,
        })
    }

    /// One sampled-value set: energy register (Wh) + active power (W).
    pub fn meter_value(timestamp: &str, energy_wh: i64, power_w: i64, context: &str) -> Value {
        json!({
            "timestamp": timestamp,
            "sampledValue": [
                {
                    "value": energy_wh.to_string(),
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "location": "Outlet",
                    "unit": "Wh",
                },
                {
                    "value": power_w.to_string(),
                    "context": context,
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                },
            ],
        })
    }

    /// MeterValues.req for a transaction (2 sampled values).
    pub fn meter_values(connector_id: u32, transaction_id: i64, energy_wh: i64) -> Value {
        json!({
            "connectorId": connector_id,
            "transactionId": transaction_id,
            "meterValue": [meter_value(&now_rfc3339(), energy_wh, 7200, "Sample.Periodic")],
        })
    }

    /// StopTransaction.req with `transactionData` (one meter value, 2 sampled values).
    pub fn stop(transaction_id: i64, id_tag: &str, meter_stop: i64, reason: &str) -> Value {
        let ts = now_rfc3339();
        json!({
            "transactionId": transaction_id,
            "idTag": id_tag,
            "meterStop": meter_stop,
            "timestamp": ts,
            "reason": reason,
            "transactionData": [meter_value(&ts, meter_stop, 0, "Transaction.End")],
        })
    }

    /// MeterValues.req for a transaction with one energy/power sample at `timestamp`.
    pub fn meter_values_at(
        connector_id: u32,
        transaction_id: i64,
        timestamp: &str,
        energy_wh: i64,
    ) -> Value {
        json!({
            "connectorId": connector_id,
            "transactionId": transaction_id,
            "meterValue": [meter_value(timestamp, energy_wh, 7200, "Sample.Periodic")],
        })
    }

    /// StopTransaction.req at `timestamp` with `transactionData` (the final reading).
    pub fn stop_at(
        transaction_id: i64,
        id_tag: &str,
        meter_stop: i64,
        timestamp: &str,
        reason: &str,
    ) -> Value {
        json!({
            "transactionId": transaction_id,
            "idTag": id_tag,
            "meterStop": meter_stop,
            "timestamp": timestamp,
            "reason": reason,
            "transactionData": [meter_value(timestamp, meter_stop, 0, "Transaction.End")],
        })
    }

    /// Heartbeat.req.
    pub fn heartbeat() -> Value {
        json!({})
    }
}

/// OCPP 2.0.1 payloads.
pub mod v201 {
    use serde_json::{Value, json};

    use crate::now_rfc3339;

    /// Vendor sent in [`boot`].
    pub const VENDOR: &str = "TestVendor";
    /// Model sent in [`boot`].
    pub const MODEL: &str = "TestModel-201";
    /// Serial sent in [`boot`].
    pub const SERIAL: &str = "SN-201-0001";
    /// Firmware sent in [`boot`].
    pub const FIRMWARE: &str = "2.0.1-test";

    /// BootNotificationRequest.
    pub fn boot() -> Value {
        json!({
            "reason": "PowerUp",
            "chargingStation": {
                "model": MODEL,
                "vendorName": VENDOR,
                "serialNumber": SERIAL,
                "firmwareVersion": FIRMWARE,
            },
        })
    }

    /// StatusNotificationRequest.
    pub fn status(evse_id: u32, connector_id: u32, status: &str) -> Value {
        json!({
            "timestamp": now_rfc3339(),
            "connectorStatus": status,
            "evseId": evse_id,
            "connectorId": connector_id,
        })
    }

    /// IdTokenType of type ISO14443.
    pub fn id_token(id: &str) -> Value {
        json!({ "idToken": id, "type": "ISO14443" })
    }

    /// AuthorizeRequest.
    pub fn authorize(id: &str) -> Value {
        json!({ "idToken": id_token(id) })
    }

    /// MeterValueType: energy register (Wh) + power (W).
    pub fn meter_value(timestamp: &str, energy_wh: f64, power_w: f64, context: &str) -> Value {
        json!({
            "timestamp": timestamp,
            "sampledValue": [
                {
                    "value": energy_wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": { "unit": "Wh" },
                },
                {
                    "value": power_w,
                    "context": context,
                    "measurand": "Power.Active.Import",
                    "unitOfMeasure": { "unit": "W" },
                },
            ],
        })
    }

    /// TransactionEventRequest `Started` on EVSE 1 / connector 1 with an idToken and a meter value.
    pub fn tx_started(transaction_id: &str, id: &str, energy_wh: f64) -> Value {
        let ts = now_rfc3339();
        json!({
            "eventType": "Started",
            "timestamp": ts,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": { "transactionId": transaction_id, "chargingState": "Charging" },
            "idToken": id_token(id),
            "evse": { "id": 1, "connectorId": 1 },
            "meterValue": [meter_value(&ts, energy_wh, 0.0, "Transaction.Begin")],
        })
    }

    /// TransactionEventRequest `Updated` with a periodic meter value.
    pub fn tx_updated(transaction_id: &str, seq_no: u32, energy_wh: f64) -> Value {
        let ts = now_rfc3339();
        json!({
            "eventType": "Updated",
            "timestamp": ts,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq_no,
            "transactionInfo": { "transactionId": transaction_id, "chargingState": "Charging" },
            "meterValue": [meter_value(&ts, energy_wh, 11000.0, "Sample.Periodic")],
        })
    }

    /// TransactionEventRequest `Ended` (stoppedReason `EVDisconnected`).
    pub fn tx_ended(transaction_id: &str, seq_no: u32, energy_wh: f64) -> Value {
        let ts = now_rfc3339();
        json!({
            "eventType": "Ended",
            "timestamp": ts,
            "triggerReason": "EVCommunicationLost",
            "seqNo": seq_no,
            "transactionInfo": {
                "transactionId": transaction_id,
                "chargingState": "Idle",
                "stoppedReason": "EVDisconnected",
            },
            "meterValue": [meter_value(&ts, energy_wh, 0.0, "Transaction.End")],
        })
    }

    /// A TransactionEventRequest of any type at `timestamp` with one energy reading, EVSE 1 /
    /// connector 1; `id` adds an idToken, `offline` sets the `offline` flag.
    #[allow(clippy::too_many_arguments)]
    pub fn tx_event_at(
        event_type: &str,
        transaction_id: &str,
        seq_no: u32,
        timestamp: &str,
        energy_wh: f64,
        id: Option<&str>,
        offline: bool,
    ) -> Value {
        let (trigger, context, state) = match event_type {
            "Started" => ("Authorized", "Transaction.Begin", "Charging"),
            "Ended" => ("EVCommunicationLost", "Transaction.End", "Idle"),
            _ => ("MeterValuePeriodic", "Sample.Periodic", "Charging"),
        };
        let mut info = json!({ "transactionId": transaction_id, "chargingState": state });
        if event_type == "Ended" {
            info["stoppedReason"] = json!("EVDisconnected");
        }
        let mut v = json!({
            "eventType": event_type,
            "timestamp": timestamp,
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": info,
            "evse": { "id": 1, "connectorId": 1 },
            "meterValue": [meter_value(timestamp, energy_wh, 0.0, context)],
        });
        if let Some(id) = id {
            v["idToken"] = id_token(id);
        }
        if offline {
            v["offline"] = json!(true);
        }
        v
    }

    /// HeartbeatRequest.
    pub fn heartbeat() -> Value {
        json!({})
    }
}

/// OCPI 2.2.1 objects an eMSP / hub sends (for the fake hub and tariff configs).
pub mod ocpi {
    use serde_json::{Value, json};

    /// An RFID Token of party `cc`/`pid` with `whitelist` (`ALWAYS`, `ALLOWED`,
    /// `ALLOWED_OFFLINE`, `NEVER`), valid, contract id `{cc}-{pid}-C{uid}`.
    pub fn token(cc: &str, pid: &str, uid: &str, whitelist: &str) -> Value {
        json!({
            "country_code": cc,
            "party_id": pid,
            "uid": uid,
            "type": "RFID",
            "contract_id": format!("{cc}-{pid}-C{uid}"),
            "visual_number": format!("VIS-{uid}"),
            "issuer": format!("eMSP {cc}{pid}"),
            "valid": true,
            "whitelist": whitelist,
            "last_updated": "2026-01-01T00:00:00Z",
        })
    }

    /// A Tariff of NL/BRG with one element holding `components` (each
    /// `{type, price, vat, step_size}`).
    pub fn tariff(id: &str, currency: &str, components: Value) -> Value {
        json!({
            "country_code": "NL",
            "party_id": "BRG",
            "id": id,
            "currency": currency,
            "elements": [ { "price_components": components } ],
            "last_updated": "2026-01-01T00:00:00Z",
        })
    }

    /// One PriceComponent.
    pub fn component(kind: &str, price: f64, vat: f64, step_size: u64) -> Value {
        json!({ "type": kind, "price": price, "vat": vat, "step_size": step_size })
    }
}
