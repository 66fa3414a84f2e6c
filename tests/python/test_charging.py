"""The charging flow (issue 4) driven by stations we did not write: the `ocpp` library's 1.6 and
2.0.1 ChargePoints charge with OCPI tokens of an eMSP behind the Python fake hub (a configured
peer of the daemon). The hub pushes tokens to our Tokens receiver or serves them from its Tokens
sender, answers real-time authorization per uid (ALLOWED with a reference, BLOCKED, too late),
records Session pushes and CDRs and answers each CDR with a Location.

Free vend is OFF here (authorization is the eMSP's), Session updates at most every second,
real-time authorization times out after 700 ms. LOC1 has tariff T1: 0.35 EUR/kWh + 21 % VAT."""

from __future__ import annotations

import asyncio
import time

import pytest
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

from bridge_harness import BridgeDaemon, charge_point, now, run
from test_ocpi_push import FakeHub, until

WAIT = 15.0
CC, PID = "DE", "EMS"
AUTH_TIMEOUT_MS = 700

TARIFF_T1 = """[[tariffs]]
country_code = "NL"
party_id = "BRG"
id = "T1"
currency = "EUR"
last_updated = "2026-01-01T00:00:00Z"

[[tariffs.elements]]

[[tariffs.elements.price_components]]
type = "ENERGY"
price = 0.35
vat = 21.0
step_size = 1
"""


def token(uid: str, whitelist: str) -> dict:
    return {
        "country_code": CC,
        "party_id": PID,
        "uid": uid,
        "type": "RFID",
        "contract_id": f"{CC}-{PID}-C{uid}",
        "issuer": "Python eMSP",
        "valid": True,
        "whitelist": whitelist,
        "last_updated": "2026-01-01T00:00:00Z",
    }


def cdr_token(uid: str) -> dict:
    return {"country_code": CC, "party_id": PID, "uid": uid, "type": "RFID", "contract_id": f"{CC}-{PID}-C{uid}"}


@pytest.fixture
def make_bridge(tmp_path):
    """Start (hub, daemon); `tokens` fill the hub's Tokens sender list before the daemon starts."""
    started = []

    def make(tokens=()):
        hub = FakeHub()
        hub.tokens = list(tokens)
        d = BridgeDaemon(
            tmp_path,
            free_vend=False,
            ocpi_extra=f"authorize_timeout_ms = {AUTH_TIMEOUT_MS}\nsession_update_interval = 1\n",
            extra=TARIFF_T1,
        )
        text = (
            d.config.read_text()
            .replace('public_url = "http://127.0.0.1:9100"', 'public_url = "http://127.0.0.1:0"')
            .replace('time_zone = "Europe/Amsterdam"\n', 'time_zone = "Europe/Amsterdam"\ntariff_id = "T1"\n', 1)
        )
        text += f'\n[[ocpi.peers]]\nversions_url = "{hub.versions_url}"\ntoken_a = "{hub.token_a}"\n'
        d.config.write_text(text)
        started.append((d, hub))
        d.start()
        d.wait_for("registration with the Python hub", lambda: hub.token_b, timeout=WAIT)
        # The daemon's side too (it has read the hub's credentials answer).
        d.wait_for(
            "the hub registered in /admin/peers",
            lambda: any(p.get("status") == "registered" for p in d.admin_get("/admin/peers")),
            timeout=WAIT,
        )
        return d, hub

    yield make
    for d, hub in started:
        code = d.stop()
        d.kill()
        hub.stop()
        assert code == 0, f"daemon exited with {code} on SIGTERM\n{d.log_tail()}"


def versions_url(d: BridgeDaemon) -> str:
    return f"http://{d.ready['ocpi']}/ocpi/versions"


def push_token(d: BridgeDaemon, hub: FakeHub, t: dict) -> None:
    answer = hub.put_token(versions_url(d), t)
    assert answer.get("status_code") == 1000, answer


class Station16(ChargePoint16):
    pass


class Station201(ChargePoint201):
    pass


async def boot16(cp) -> None:
    boot = await cp.call(
        call16.BootNotification(charge_point_vendor="PyVendor", charge_point_model="PyModel"), suppress=False
    )
    assert boot.status == "Accepted"
    await cp.call(
        call16.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()),
        suppress=False,
    )


async def boot201(cp) -> None:
    boot = await cp.call(
        call201.BootNotification(charging_station={"model": "PyModel201", "vendor_name": "PyVendor"}, reason="PowerUp"),
        suppress=False,
    )
    assert boot.status == "Accepted"
    await cp.call(
        call201.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1),
        suppress=False,
    )


async def authorize16(cp, tag: str) -> str:
    r = await cp.call(call16.Authorize(id_tag=tag), suppress=False)
    return r.id_tag_info["status"]


async def authorize201(cp, uid: str) -> str:
    r = await cp.call(call201.Authorize(id_token={"id_token": uid, "type": "ISO14443"}), suppress=False)
    return r.id_token_info["status"]


def energy16(ts: str, wh: int, context: str) -> dict:
    return {
        "timestamp": ts,
        "sampled_value": [
            {"value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        ],
    }


def tx_event201(event_type: str, tx: str, seq: int, wh: float, uid: str | None = None):
    ts = now()
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
    info = {"transaction_id": tx, "charging_state": "Idle" if event_type == "Ended" else "Charging"}
    if event_type == "Ended":
        info["stopped_reason"] = "EVDisconnected"
    kwargs = {}
    if uid:
        kwargs["id_token"] = {"id_token": uid, "type": "ISO14443"}
    return call201.TransactionEvent(
        event_type=event_type,
        timestamp=ts,
        trigger_reason={"Started": "Authorized", "Ended": "EVCommunicationLost"}.get(event_type, "MeterValuePeriodic"),
        seq_no=seq,
        transaction_info=info,
        evse={"id": 1, "connector_id": 1},
        meter_value=[
            {
                "timestamp": ts,
                "sampled_value": [
                    {
                        "value": wh,
                        "context": context,
                        "measurand": "Energy.Active.Import.Register",
                        "unit_of_measure": {"unit": "Wh"},
                    }
                ],
            }
        ],
        **kwargs,
    )


def session_id(d: BridgeDaemon, station: str) -> str:
    txs = d.wait_for(f"transaction of {station}", lambda: d.transactions_of(station), timeout=WAIT)
    assert len(txs) == 1, txs
    return txs[0]["id"]


async def session_put(hub: FakeHub, sid: str) -> dict:
    puts = await until(f"PUT session {sid}", lambda: [b for (m, b) in hub.sessions(sid) if m == "PUT"])
    return puts[0]


async def one_cdr(hub: FakeHub, sid: str) -> dict:
    """The CDR of session `sid`; after it arrived, no second one within 2.5 s."""
    await until(f"CDR {sid}", lambda: [c for c in hub.cdrs() if c["id"] == sid])
    await asyncio.sleep(2.5)
    cdrs = [c for c in hub.cdrs() if c["id"] == sid]
    assert len(cdrs) == 1, f"exactly one CDR per transaction, got {len(cdrs)}"
    return cdrs[0]


def approx(value, expected: float) -> bool:
    return abs(float(value) - expected) < 1e-6


def test_ocpp16_full_charge_with_a_pushed_token(make_bridge):
    d, hub = make_bridge()
    push_token(d, hub, token("PYCARD16", "ALWAYS"))
    assert d.admin_get("/admin/tokens")["count"] == 1

    async def scenario():
        async with charge_point(d, "PY16", "ocpp1.6", Station16) as cp:
            await boot16(cp)
            assert await authorize16(cp, "pycard16") == "Accepted"
            start = await cp.call(
                call16.StartTransaction(connector_id=1, id_tag="PYCARD16", meter_start=1000, timestamp=now()),
                suppress=False,
            )
            assert start.id_tag_info["status"] == "Accepted"
            tx = start.transaction_id
            sid = session_id(d, "PY16")
            s = await session_put(hub, sid)
            assert s["status"] == "ACTIVE", s
            assert s["auth_method"] == "WHITELIST", s
            assert s["cdr_token"] == cdr_token("PYCARD16"), s
            assert (s["location_id"], s["evse_uid"]) == ("LOC1", "PY16-1"), s

            await cp.call(
                call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[energy16(now(), 4000, "Sample.Periodic")]),
                suppress=False,
            )
            await until(
                "PATCH with kwh 3",
                lambda: [b for (m, b) in hub.sessions(sid) if m == "PATCH" and approx(b.get("kwh", -1), 3.0)],
            )
            ts = now()
            await cp.call(
                call16.StopTransaction(
                    meter_stop=6000,
                    timestamp=ts,
                    transaction_id=tx,
                    reason="Local",
                    id_tag="PYCARD16",
                    transaction_data=[energy16(ts, 6000, "Transaction.End")],
                ),
                suppress=False,
            )
            done = await until(
                "PATCH COMPLETED",
                lambda: [b for (m, b) in hub.sessions(sid) if m == "PATCH" and b.get("status") == "COMPLETED"],
            )
            assert done[0].get("end_date_time"), done
            cdr = await one_cdr(hub, sid)
            assert cdr["auth_method"] == "WHITELIST", cdr
            assert cdr["cdr_token"] == cdr_token("PYCARD16"), cdr
            assert cdr["cdr_location"]["id"] == "LOC1", cdr
            # (6000 − 1000) Wh = 5 kWh × 0.35 = 1.75 excl; × 1.21 = 2.1175 incl.
            assert approx(cdr["total_energy"], 5.0), cdr
            assert approx(cdr["total_cost"]["excl_vat"], 1.75), cdr
            assert approx(cdr["total_cost"]["incl_vat"], 2.1175), cdr
            assert cdr["currency"] == "EUR", cdr
            assert not hub.auth_requests, "ALWAYS never asks the eMSP"
            stored = await until(
                "delivered_location",
                lambda: [c for c in d.admin_get("/admin/cdrs") if c["id"] == sid and c.get("delivered_location")],
            )
            assert stored[0]["delivered_location"] == hub.cdr_locations[sid]

    run(scenario())


def test_ocpp201_realtime_allowed_for_a_pulled_token(make_bridge):
    d, hub = make_bridge(tokens=[token("PYAPP201", "ALLOWED")])
    hub.auth_answers["PYAPP201"] = {"allowed": "ALLOWED", "reference": "PYREF-1"}
    d.wait_for("the pulled token", lambda: d.admin_get("/admin/tokens")["count"] == 1, timeout=WAIT)

    async def scenario():
        async with charge_point(d, "PY201", "ocpp2.0.1", Station201) as cp:
            await boot201(cp)
            assert await authorize201(cp, "PYAPP201") == "Accepted"
            reqs = hub.authorize_requests("PYAPP201")
            assert len(reqs) == 1, reqs
            _, path, body, headers = reqs[0]
            assert path.endswith("/PYAPP201/authorize?type=RFID"), path
            assert body["location_id"] == "LOC1", body
            r = await cp.call(tx_event201("Started", "PY-TX-1", 0, 500.0, "PYAPP201"), suppress=False)
            assert r.id_token_info["status"] == "Accepted", r
            sid = session_id(d, "PY201")
            s = await session_put(hub, sid)
            assert s["auth_method"] == "AUTH_REQUEST", s
            assert s["authorization_reference"] == "PYREF-1", s
            await cp.call(tx_event201("Updated", "PY-TX-1", 1, 1500.0), suppress=False)
            await cp.call(tx_event201("Ended", "PY-TX-1", 2, 2500.0), suppress=False)
            cdr = await one_cdr(hub, sid)
            assert cdr["auth_method"] == "AUTH_REQUEST", cdr
            assert cdr["authorization_reference"] == "PYREF-1", cdr
            assert cdr["cdr_token"] == cdr_token("PYAPP201"), cdr
            # 2 kWh × 0.35 = 0.70 excl; × 1.21 = 0.847 incl.
            assert approx(cdr["total_energy"], 2.0), cdr
            assert approx(cdr["total_cost"]["excl_vat"], 0.70), cdr
            assert approx(cdr["total_cost"]["incl_vat"], 0.847), cdr

    run(scenario())


def test_realtime_blocked_on_16_and_201(make_bridge):
    d, hub = make_bridge()
    push_token(d, hub, token("PYBLOCK", "ALLOWED"))
    hub.auth_answers["PYBLOCK"] = {"allowed": "BLOCKED"}

    async def scenario():
        async with charge_point(d, "PY16", "ocpp1.6", Station16) as cp16, charge_point(
            d, "PY201", "ocpp2.0.1", Station201
        ) as cp201:
            await boot16(cp16)
            await boot201(cp201)
            assert await authorize16(cp16, "PYBLOCK") == "Blocked"
            assert await authorize201(cp201, "PYBLOCK") == "Blocked"
            r = await cp201.call(tx_event201("Started", "PY-TX-B", 0, 0.0, "PYBLOCK"), suppress=False)
            assert r.id_token_info["status"] == "Blocked", r
            assert len(hub.authorize_requests("PYBLOCK")) >= 3, hub.authorize_requests("PYBLOCK")

    run(scenario())


def test_realtime_timeout_falls_back_to_the_whitelist(make_bridge):
    d, hub = make_bridge()
    push_token(d, hub, token("PYSLOW", "ALLOWED"))
    push_token(d, hub, token("PYSLOWNEVER", "NEVER"))
    for uid in ("PYSLOW", "PYSLOWNEVER"):
        hub.auth_answers[uid] = {"allowed": "ALLOWED", "reference": "TOO-LATE", "delay": 3.0}

    async def scenario():
        async with charge_point(d, "PY16", "ocpp1.6", Station16) as cp:
            await boot16(cp)
            t0 = time.monotonic()
            assert await authorize16(cp, "PYSLOW") == "Accepted"
            assert await authorize16(cp, "PYSLOWNEVER") == "Invalid"
            took = time.monotonic() - t0
            assert took < 5.0, f"two authorizations took {took:.1f}s with a 700 ms timeout"
            start = await cp.call(
                call16.StartTransaction(connector_id=1, id_tag="PYSLOW", meter_start=0, timestamp=now()),
                suppress=False,
            )
            assert start.id_tag_info["status"] == "Accepted"
            sid = session_id(d, "PY16")
            s = await session_put(hub, sid)
            assert s["auth_method"] == "WHITELIST", s
            assert "authorization_reference" not in s, s
            ts = now()
            await cp.call(
                call16.StopTransaction(meter_stop=1000, timestamp=ts, transaction_id=start.transaction_id, reason="Local"),
                suppress=False,
            )
            cdr = await one_cdr(hub, sid)
            assert cdr["auth_method"] == "WHITELIST", cdr
            assert "authorization_reference" not in cdr, cdr
            assert approx(cdr["total_energy"], 1.0), cdr

    run(scenario())
