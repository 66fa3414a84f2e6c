"""OCPP 2.0.1 interop: the `ocpp` library's v201 ChargePoint (which validates every
CALLRESULT against the official schemas) runs a full session against the daemon; the admin
API must reflect it."""

from __future__ import annotations

from ocpp.v201 import ChargePoint, call

from bridge_harness import charge_point, now, run


class Station201(ChargePoint):
    """No handlers: CSMS-initiated calls are answered NotImplemented by the library."""


def meter_value(ts, wh, ctx):
    return {
        "timestamp": ts,
        "sampled_value": [
            {
                "value": wh,
                "context": ctx,
                "measurand": "Energy.Active.Import.Register",
                "unit_of_measure": {"unit": "Wh"},
            },
            {"value": 11000.0, "context": ctx, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}},
        ],
    }


ID_TOKEN = {"id_token": "PYTOKEN201", "type": "ISO14443"}


def test_full_ocpp201_session_is_reflected_in_admin_api(daemon):
    async def scenario():
        async with charge_point(daemon, "PY201", "ocpp2.0.1", Station201) as cp:
            boot = await cp.call(
                call.BootNotification(
                    charging_station={
                        "model": "PyModel201",
                        "vendor_name": "PyVendor",
                        "serial_number": "PY-SN-201",
                        "firmware_version": "py-2.0",
                    },
                    reason="PowerUp",
                ),
                suppress=False,
            )
            assert boot.status == "Accepted"
            assert boot.interval == 300

            await cp.call(call.Heartbeat(), suppress=False)
            for evse in (1, 2):
                await cp.call(
                    call.StatusNotification(
                        timestamp=now(), connector_status="Available", evse_id=evse, connector_id=1
                    ),
                    suppress=False,
                )

            auth = await cp.call(call.Authorize(id_token=ID_TOKEN), suppress=False)
            assert auth.id_token_info["status"] == "Accepted"

            ts = now()
            started = await cp.call(
                call.TransactionEvent(
                    event_type="Started",
                    timestamp=ts,
                    trigger_reason="Authorized",
                    seq_no=0,
                    transaction_info={"transaction_id": "PY-TX-1", "charging_state": "Charging"},
                    id_token=ID_TOKEN,
                    evse={"id": 1, "connector_id": 1},
                    meter_value=[meter_value(ts, 2000.0, "Transaction.Begin")],
                ),
                suppress=False,
            )
            if started.id_token_info is not None:
                assert started.id_token_info["status"] == "Accepted"
            await cp.call(
                call.StatusNotification(timestamp=now(), connector_status="Occupied", evse_id=1, connector_id=1),
                suppress=False,
            )
            ts = now()
            await cp.call(
                call.TransactionEvent(
                    event_type="Updated",
                    timestamp=ts,
                    trigger_reason="MeterValuePeriodic",
                    seq_no=1,
                    transaction_info={"transaction_id": "PY-TX-1", "charging_state": "Charging"},
                    meter_value=[meter_value(ts, 2500.0, "Sample.Periodic")],
                ),
                suppress=False,
            )
            ts = now()
            await cp.call(
                call.TransactionEvent(
                    event_type="Ended",
                    timestamp=ts,
                    trigger_reason="StopAuthorized",
                    seq_no=2,
                    transaction_info={
                        "transaction_id": "PY-TX-1",
                        "charging_state": "Idle",
                        "stopped_reason": "Local",
                    },
                    id_token=ID_TOKEN,
                    meter_value=[meter_value(ts, 3100.0, "Transaction.End")],
                ),
                suppress=False,
            )

            await cp.call(call.MeterValues(evse_id=1, meter_value=[meter_value(now(), 3100.0, "Sample.Clock")]), suppress=False)
            await cp.call(
                call.NotifyReport(
                    request_id=1,
                    generated_at=now(),
                    seq_no=0,
                    tbc=False,
                    report_data=[
                        {
                            "component": {"name": "EVSE", "evse": {"id": 1}},
                            "variable": {"name": "AvailabilityState"},
                            "variable_attribute": [{"type": "Actual", "value": "Available"}],
                        }
                    ],
                ),
                suppress=False,
            )
            await cp.call(
                call.NotifyEvent(
                    generated_at=now(),
                    seq_no=0,
                    tbc=False,
                    event_data=[
                        {
                            "event_id": 1,
                            "timestamp": now(),
                            "trigger": "Alerting",
                            "actual_value": "true",
                            "event_notification_type": "HardWiredNotification",
                            "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
                            "variable": {"name": "Problem"},
                        }
                    ],
                ),
                suppress=False,
            )
            await cp.call(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=now()), suppress=False)
            await cp.call(call.FirmwareStatusNotification(status="Idle"), suppress=False)
            await cp.call(call.LogStatusNotification(status="Idle"), suppress=False)

    run(scenario())

    st = daemon.wait_for("PY201 with 2 connectors", lambda: (s := daemon.station("PY201")) and len(s["connectors"]) >= 2 and s)
    assert st["ocpp_version"] == "2.0.1"
    assert st["vendor"] == "PyVendor"
    assert st["model"] == "PyModel201"
    assert st["serial_number"] == "PY-SN-201"
    assert st["firmware_version"] == "py-2.0"
    statuses = {(c["evse_id"], c["connector_id"]): c["status"] for c in st["connectors"]}
    assert statuses.get((1, 1)) == "Occupied", statuses
    assert statuses.get((2, 1)) == "Available", statuses

    txs = daemon.wait_for(
        "a completed PY201 transaction",
        lambda: [t for t in daemon.transactions_of("PY201") if t["status"] == "completed"],
    )
    assert len(txs) == 1, txs
    t = txs[0]
    assert t["ocpp_transaction_id"] == "PY-TX-1"
    assert t["id_token"] == "PYTOKEN201"
    assert (t["evse_id"], t["connector_id"]) == (1, 1)
    assert t["meter_start_wh"] == 2000
    assert t["meter_stop_wh"] == 3100
    assert t["stop_reason"] == "Local"
    assert t["samples"] == 6
