"""Smart charging against stations we did not write: the `ocpp` library's 1.6 and 2.0.1
ChargePoints (which validate every CALL the daemon sends against the official schemas) answer
SetChargingProfile, GetCompositeSchedule and ClearChargingProfile for a session the Python fake
hub started with START_SESSION; the hub PUTs / GETs / DELETEs the daemon's chargingprofiles
endpoint and receives the bare results at each request's response_url."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from bridge_harness import charge_point, now, run
from test_commands import WAIT, Emsp, Station16, Station201, boot_and_publish, bridge, ocpi_get, token  # noqa: F401
from test_ocpi_push import b64, until

SCHEDULE_START = "2026-03-01T10:00:00Z"


class Smart16(Station16):
    @on("SetChargingProfile")
    async def set_profile(self, connector_id, cs_charging_profiles, **kw):
        self.profiles = getattr(self, "profiles", []) + [(connector_id, cs_charging_profiles)]
        return result16.SetChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    async def composite(self, connector_id, duration, **kw):
        return result16.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=SCHEDULE_START,
            charging_schedule={"duration": duration, "charging_rate_unit": "W",
                               "charging_schedule_period": [{"start_period": 0, "limit": 7400.5}]})

    @on("ClearChargingProfile")
    async def clear(self, **kw):
        self.cleared = getattr(self, "cleared", []) + [kw]
        return result16.ClearChargingProfile(status="Accepted")


class Smart201(Station201):
    @on("SetChargingProfile")
    async def set_profile(self, evse_id, charging_profile, **kw):
        self.profiles = getattr(self, "profiles", []) + [(evse_id, charging_profile)]
        return result201.SetChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    async def composite(self, duration, evse_id, **kw):
        return result201.GetCompositeSchedule(
            status="Accepted",
            schedule={"evse_id": evse_id, "duration": duration, "schedule_start": SCHEDULE_START,
                      "charging_rate_unit": "W",
                      "charging_schedule_period": [{"start_period": 0, "limit": 7400.5}]})

    @on("ClearChargingProfile")
    async def clear(self, **kw):
        self.cleared = getattr(self, "cleared", []) + [kw]
        return result201.ClearChargingProfile(status="Accepted")


def request(method: str, url: str, hub, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Token {b64(hub.token_b)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        envelope = json.loads(resp.read())
    assert envelope["status_code"] == 1000, envelope
    return envelope["data"]


async def steer(d, hub, station, subprotocol, cls, v16: bool):
    emsp = Emsp(d, hub)
    versions = ocpi_get(f"http://{d.ready['ocpi']}/ocpi/versions", hub.token_b)
    details = ocpi_get(next(v["url"] for v in versions if v["version"] == "2.2.1"), hub.token_b)
    base = next(e["url"] for e in details["endpoints"]
                if e["identifier"] == "chargingprofiles" and e["role"] == "RECEIVER")
    async with charge_point(d, station, subprotocol, cls) as cp:
        cp.answers = {}
        evse = await boot_and_publish(cp, hub, station, v16)
        uid = f"py-smart-{station.lower()}"
        start = {"token": token(uid), "location_id": "LOC1", "evse_uid": evse, "connector_id": "1"}
        assert await emsp.command("START_SESSION", start) == "ACCEPTED"
        if v16:
            await cp.call(call16.StartTransaction(connector_id=1, id_tag=uid, meter_start=0, timestamp=now()),
                          suppress=False)
        else:
            await cp.call(call201.TransactionEvent(
                event_type="Started", timestamp=now(), trigger_reason="RemoteStart", seq_no=0,
                transaction_info={"transaction_id": "py-smart-tx",
                                  "remote_start_id": cp.last_start["remote_start_id"]},
                id_token={"id_token": uid, "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1}), suppress=False)
        tx = await until("active transaction",
                         lambda: next((t for t in d.transactions_of(station) if t["status"] == "active"), None), WAIT)
        session = tx["id"]
        url = f"{base}/{session}"

        def response_url(kind):
            return f"{hub.base}/ocpi/emsp/2.2.1/chargingprofiles/{kind}/{uuid.uuid4().hex}"

        async def result(rurl):
            path = rurl.split("://", 1)[1]
            path = path[path.index("/"):]
            got = await until(f"result at {rurl}",
                              lambda: [b for (m, p, b) in hub.snapshot() if m == "POST" and p == path], WAIT)
            assert "status_code" not in got[0] and "data" not in got[0], got[0]
            return got[0]

        # Set.
        r = response_url("set")
        body = {"charging_profile": {"charging_rate_unit": "A", "duration": 3600,
                                     "charging_profile_period": [{"start_period": 0, "limit": 16.1},
                                                                 {"start_period": 1800, "limit": 8}]},
                "response_url": r}
        data = await asyncio.to_thread(request, "PUT", url, hub, body)
        assert data["result"] == "ACCEPTED", data
        assert await result(r) == {"result": "ACCEPTED"}
        where, profile = cp.profiles[-1]
        assert where == 1, cp.profiles
        assert profile["charging_profile_purpose"] == "TxProfile", profile
        if v16:
            assert profile["transaction_id"] == int(tx["ocpp_transaction_id"]), profile
            periods = profile["charging_schedule"]["charging_schedule_period"]
        else:
            assert profile["transaction_id"] == "py-smart-tx", profile
            periods = profile["charging_schedule"][0]["charging_schedule_period"]
        assert [str(p["limit"]) for p in periods] == ["16.1", "8"], periods

        # Get.
        r = response_url("get")
        data = await asyncio.to_thread(request, "GET", f"{url}?duration=900&response_url={r}", hub)
        assert data["result"] == "ACCEPTED", data
        got = await result(r)
        assert got["result"] == "ACCEPTED", got
        assert got["profile"]["start_date_time"] == SCHEDULE_START, got
        assert got["profile"]["charging_profile"]["charging_rate_unit"] == "W", got
        assert got["profile"]["charging_profile"]["charging_profile_period"] == [
            {"start_period": 0, "limit": 7400.5}], got

        # Clear.
        r = response_url("clear")
        data = await asyncio.to_thread(request, "DELETE", f"{url}?response_url={r}", hub)
        assert data["result"] == "ACCEPTED", data
        assert await result(r) == {"result": "ACCEPTED"}
        assert len(cp.cleared) == 1, cp.cleared


def test_ocpp16_library_station_takes_charging_profiles(bridge):  # noqa: F811
    d, hub = bridge
    run(steer(d, hub, "PY16", "ocpp1.6", Smart16, True), timeout=120)


def test_ocpp201_library_station_takes_charging_profiles(bridge):  # noqa: F811
    d, hub = bridge
    run(steer(d, hub, "PY201", "ocpp2.0.1", Smart201, False), timeout=120)
