"""Every CALLRESULT the daemon sends is valid against the official OCA response schema shipped
in the `ocpp` package — checked here with jsonschema *with* a FormatChecker (the `ocpp` library
itself skips `date-time` formats) — and every timestamp is UTC `Z` with at most millisecond
precision. Uses a raw websocket so nothing between us and the daemon normalises the frames."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import jsonschema
import ocpp
import pytest
import websockets

from bridge_harness import now, run

SCHEMAS = Path(ocpp.__file__).resolve().parent
TIMESTAMP_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}T")
FORMAT_CHECKER = jsonschema.FormatChecker()


def test_format_checker_really_checks_date_time():
    # Without rfc3339-validator installed, jsonschema silently skips "date-time".
    assert "date-time" in FORMAT_CHECKER.checkers
    assert not FORMAT_CHECKER.conforms("2024-01-01 12:00", "date-time")


def load_schema(version: str, action: str, kind: str) -> dict:
    if version == "v16":
        name = f"{action}Response.json" if kind == "response" else f"{action}.json"
    else:
        name = f"{action}{'Response' if kind == 'response' else 'Request'}.json"
    return json.loads((SCHEMAS / version / "schemas" / name).read_text())


def validate(version: str, action: str, kind: str, payload: dict) -> None:
    schema = load_schema(version, action, kind)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    errors = sorted(cls(schema, format_checker=FORMAT_CHECKER).iter_errors(payload), key=str)
    assert not errors, f"{action} {kind} violates {version} schema: {[e.message for e in errors]}\n{payload}"


def assert_timestamps(value, path="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            assert_timestamps(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_timestamps(v, f"{path}[{i}]")
    elif isinstance(value, str) and TIMESTAMP_LIKE.match(value):
        assert value.endswith("Z"), f"{path} = {value!r} is not UTC 'Z'"
        if "." in value:
            frac = value[:-1].split(".", 1)[1]
            assert len(frac) <= 3, f"{path} = {value!r} has more than 3 fractional digits"


async def rpc(ws, action: str, payload: dict, timeout: float = 10.0) -> dict:
    """Send one CALL, answer any CSMS CALL meanwhile with NotImplemented, return the CALLRESULT."""
    msg_id = str(uuid.uuid4())
    await ws.send(json.dumps([2, msg_id, action, payload]))

    async def wait():
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] == 2:
                await ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
                continue
            if frame[1] != msg_id:
                continue
            assert frame[0] == 3, f"{action}: CALLERROR {frame}"
            return frame[2]

    return await asyncio.wait_for(wait(), timeout)


def v16_meter_value(ts, wh, ctx):
    return {
        "timestamp": ts,
        "sampledValue": [{"value": str(wh), "context": ctx, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}],
    }


def v16_calls():
    """(action, payload) in session order; payloads may refer to earlier results via callables."""
    ts = now()
    return [
        ("BootNotification", {"chargePointVendor": "SchemaVendor", "chargePointModel": "SchemaModel"}),
        ("Heartbeat", {}),
        ("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available", "timestamp": ts}),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing", "timestamp": ts}),
        ("Authorize", {"idTag": "SCHEMATAG"}),
        ("StartTransaction", {"connectorId": 1, "idTag": "SCHEMATAG", "meterStart": 0, "timestamp": ts}),
        ("MeterValues", lambda r: {
            "connectorId": 1,
            "transactionId": r["StartTransaction"]["transactionId"],
            "meterValue": [v16_meter_value(now(), 100, "Sample.Periodic")],
        }),
        ("StopTransaction", lambda r: {
            "transactionId": r["StartTransaction"]["transactionId"],
            "meterStop": 200,
            "timestamp": now(),
            "idTag": "SCHEMATAG",
            "reason": "Local",
            "transactionData": [v16_meter_value(now(), 200, "Transaction.End")],
        }),
        ("DataTransfer", {"vendorId": "com.example.schema", "messageId": "x", "data": "y"}),
    ]


def v201_meter_value(ts, wh, ctx):
    return {
        "timestamp": ts,
        "sampledValue": [
            {"value": wh, "context": ctx, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}
        ],
    }


def v201_calls():
    ts = now()
    token = {"idToken": "SCHEMA201", "type": "ISO14443"}
    return [
        ("BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}),
        ("Heartbeat", {}),
        ("StatusNotification", {"timestamp": ts, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}),
        ("Authorize", {"idToken": token}),
        ("TransactionEvent", {
            "eventType": "Started", "timestamp": ts, "triggerReason": "Authorized", "seqNo": 0,
            "transactionInfo": {"transactionId": "SCH-1", "chargingState": "Charging"},
            "idToken": token, "evse": {"id": 1, "connectorId": 1},
            "meterValue": [v201_meter_value(ts, 0, "Transaction.Begin")],
        }),
        ("TransactionEvent", {
            "eventType": "Updated", "timestamp": now(), "triggerReason": "MeterValuePeriodic", "seqNo": 1,
            "transactionInfo": {"transactionId": "SCH-1", "chargingState": "Charging"},
            "meterValue": [v201_meter_value(now(), 50, "Sample.Periodic")],
        }),
        ("TransactionEvent", {
            "eventType": "Ended", "timestamp": now(), "triggerReason": "StopAuthorized", "seqNo": 2,
            "transactionInfo": {"transactionId": "SCH-1", "stoppedReason": "Local"},
            "idToken": token,
            "meterValue": [v201_meter_value(now(), 100, "Transaction.End")],
        }),
        ("MeterValues", {"evseId": 1, "meterValue": [v201_meter_value(now(), 100, "Sample.Clock")]}),
        ("NotifyReport", {"requestId": 1, "generatedAt": now(), "seqNo": 0, "tbc": False, "reportData": [{
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "AvailabilityState"},
            "variableAttribute": [{"type": "Actual", "value": "Available"}],
        }]}),
        ("NotifyEvent", {"generatedAt": now(), "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": now(), "trigger": "Alerting", "actualValue": "true",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": "Problem"},
        }]}),
        ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": now()}),
        ("FirmwareStatusNotification", {"status": "Idle"}),
        ("LogStatusNotification", {"status": "Idle"}),
    ]


@pytest.mark.parametrize(
    "version,subprotocol,station,calls",
    [("v16", "ocpp1.6", "SCHEMA16", v16_calls), ("v201", "ocpp2.0.1", "SCHEMA201", v201_calls)],
    ids=["ocpp1.6", "ocpp2.0.1"],
)
def test_every_callresult_matches_the_official_response_schema(daemon, version, subprotocol, station, calls):
    async def scenario():
        results: dict[str, dict] = {}
        async with websockets.connect(
            daemon.ocpp_url(station), subprotocols=[subprotocol], open_timeout=10, close_timeout=5
        ) as ws:
            assert ws.subprotocol == subprotocol
            for action, payload in calls():
                if callable(payload):
                    payload = payload(results)
                validate(version, action, "request", payload)  # our own payload first
                result = await rpc(ws, action, payload)
                validate(version, action, "response", result)
                assert_timestamps(result, f"{action}Response")
                results[action] = result
        return results

    results = run(scenario())
    assert results["BootNotification"]["status"] == "Accepted"
