"""OCPP 1.6 interop: the `ocpp` library's v16 ChargePoint (which validates every CALLRESULT
against the official schemas) runs a full session against the daemon; the admin API must
reflect it."""

from __future__ import annotations

import pytest
import websockets
from ocpp.v16 import ChargePoint, call

from bridge_harness import charge_point, now, run


class Station16(ChargePoint):
    """No handlers: CSMS-initiated calls are answered NotImplemented by the library."""


SAMPLES = lambda ts, wh, ctx: {  # noqa: E731
    "timestamp": ts,
    "sampled_value": [
        {"value": str(wh), "context": ctx, "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "7400", "context": ctx, "measurand": "Power.Active.Import", "unit": "W"},
    ],
}


def test_full_ocpp16_session_is_reflected_in_admin_api(daemon):
    async def scenario():
        async with charge_point(daemon, "PY16", "ocpp1.6", Station16) as cp:
            boot = await cp.call(
                call.BootNotification(
                    charge_point_vendor="PyVendor",
                    charge_point_model="PyModel",
                    charge_point_serial_number="PY-SN-1",
                    firmware_version="py-1.0",
                    meter_serial_number="PY-MTR-1",
                ),
                suppress=False,
            )
            assert boot.status == "Accepted"
            assert boot.interval == 300

            hb = await cp.call(call.Heartbeat(), suppress=False)
            assert hb.current_time.endswith("Z")

            for connector in (0, 1, 2):
                await cp.call(
                    call.StatusNotification(
                        connector_id=connector, error_code="NoError", status="Available", timestamp=now()
                    ),
                    suppress=False,
                )

            auth = await cp.call(call.Authorize(id_tag="PYTAG1"), suppress=False)
            assert auth.id_tag_info["status"] == "Accepted"

            start = await cp.call(
                call.StartTransaction(connector_id=1, id_tag="PYTAG1", meter_start=10000, timestamp=now()),
                suppress=False,
            )
            tx_id = start.transaction_id
            assert isinstance(tx_id, int)
            assert start.id_tag_info["status"] == "Accepted"

            await cp.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Charging", timestamp=now()),
                suppress=False,
            )
            await cp.call(
                call.MeterValues(
                    connector_id=1, transaction_id=tx_id, meter_value=[SAMPLES(now(), 10500, "Sample.Periodic")]
                ),
                suppress=False,
            )

            stop_ts = now()
            stop = await cp.call(
                call.StopTransaction(
                    meter_stop=11000,
                    timestamp=stop_ts,
                    transaction_id=tx_id,
                    reason="EVDisconnected",
                    id_tag="PYTAG1",
                    transaction_data=[SAMPLES(stop_ts, 11000, "Transaction.End")],
                ),
                suppress=False,
            )
            assert stop is not None

            dt = await cp.call(
                call.DataTransfer(vendor_id="com.example.py", message_id="Ping", data="x"), suppress=False
            )
            assert dt.status == "UnknownVendorId"
            return tx_id

    tx_id = run(scenario())

    st = daemon.wait_for("PY16 with 3 connectors", lambda: (s := daemon.station("PY16")) and len(s["connectors"]) >= 3 and s)
    assert st["ocpp_version"] == "1.6"
    assert st["vendor"] == "PyVendor"
    assert st["model"] == "PyModel"
    assert st["serial_number"] == "PY-SN-1"
    assert st["firmware_version"] == "py-1.0"
    assert st["meter_serial_number"] == "PY-MTR-1"
    assert {(c["evse_id"], c["connector_id"]) for c in st["connectors"]} >= {(0, 0), (1, 1), (2, 1)}

    txs = daemon.wait_for(
        "a completed PY16 transaction",
        lambda: [t for t in daemon.transactions_of("PY16") if t["status"] == "completed"],
    )
    assert len(txs) == 1, txs
    t = txs[0]
    assert t["ocpp_transaction_id"] == str(tx_id)
    assert t["id_token"] == "PYTAG1"
    assert t["meter_start_wh"] == 10000
    assert t["meter_stop_wh"] == 11000
    assert t["stop_reason"] == "EVDisconnected"
    assert t["samples"] == 4
    assert t["stopped_at"] is not None


def test_basic_auth_from_the_url_is_accepted_and_wrong_password_is_401(daemon):
    async def scenario():
        async with charge_point(daemon, "SECURE", "ocpp1.6", Station16, password="py-s3cret-pass") as cp:
            boot = await cp.call(
                call.BootNotification(charge_point_vendor="PyVendor", charge_point_model="PyModel"), suppress=False
            )
            assert boot.status == "Accepted"
        with pytest.raises(websockets.exceptions.InvalidStatus) as err:
            async with charge_point(daemon, "SECURE", "ocpp1.6", Station16, password="wrong"):
                pass
        assert err.value.response.status_code == 401

    run(scenario())
