"""OCPI Commands against stations we did not write: the `ocpp` library's 1.6 and 2.0.1
ChargePoints (which validate every CALL the daemon sends against the official schemas) answer
RemoteStart/RequestStart, RemoteStop/RequestStop, ReserveNow, CancelReservation and
UnlockConnector with each status (or a CALLERROR, or too late); a Python fake hub registered
with the daemon sends the OCPI commands and receives the bare CommandResults at the commands'
response_url."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from ocpp.exceptions import InternalError, NotImplementedError as OcppNotImplemented
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from bridge_harness import BridgeDaemon, charge_point, now, run
from test_ocpi_push import FakeHub, b64, evse_uids, until

CALL_TIMEOUT = 2
WAIT = 20.0
# Answer "too late": longer than the daemon's call timeout.
SILENT = "<silent>"
NOT_IMPLEMENTED = "<NotImplemented>"
INTERNAL = "<InternalError>"


@pytest.fixture
def bridge(tmp_path):
    hub = FakeHub()
    d = BridgeDaemon(tmp_path)
    text = (
        d.config.read_text()
        .replace('public_url = "http://127.0.0.1:9100"', 'public_url = "http://127.0.0.1:0"')
        .replace("call_timeout = 30", f"call_timeout = {CALL_TIMEOUT}")
    )
    text += f'\n[[ocpi.peers]]\nversions_url = "{hub.versions_url}"\ntoken_a = "{hub.token_a}"\n'
    d.config.write_text(text)
    d.start()
    try:
        d.wait_for("registration with the Python hub", lambda: hub.token_b, timeout=WAIT)
        yield d, hub
    finally:
        code = d.stop()
        d.kill()
        hub.stop()
    assert code == 0, f"daemon exited with {code} on SIGTERM\n{d.log_tail()}"


def ocpi_get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"Token {b64(token)}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status_code"] == 1000, body
    return body["data"]


class Emsp:
    """The hub as eMSP: discovers the daemon's commands endpoint, sends commands, reads results."""

    def __init__(self, d: BridgeDaemon, hub: FakeHub):
        self.d = d
        self.hub = hub
        versions = ocpi_get(f"http://{d.ready['ocpi']}/ocpi/versions", hub.token_b)
        details = ocpi_get(next(v["url"] for v in versions if v["version"] == "2.2.1"), hub.token_b)
        self.commands = next(e["url"] for e in details["endpoints"] if e["identifier"] == "commands")

    def response_url(self, kind: str) -> str:
        return f"{self.hub.base}/ocpi/emsp/2.2.1/commands/{kind}/{uuid.uuid4().hex}"

    def send(self, kind: str, body: dict) -> dict:
        req = urllib.request.Request(
            f"{self.commands}/{kind}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Token {b64(self.hub.token_b)}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            envelope = json.loads(resp.read())
        assert envelope["status_code"] == 1000, envelope
        return envelope["data"]

    def results(self, url: str) -> list[dict]:
        path = url.split("://", 1)[1]
        path = path[path.index("/"):]
        return [b for (m, p, b) in self.hub.snapshot() if m == "POST" and p == path]

    async def result(self, url: str, n: int = 1) -> str:
        got = await until(f"result #{n} at {url}", lambda: len(self.results(url)) >= n and self.results(url), WAIT)
        body = got[n - 1]
        assert "status_code" not in body and "data" not in body, f"bare CommandResult expected: {body}"
        return body["result"]

    async def command(self, kind: str, body: dict, sync: str = "ACCEPTED") -> str | None:
        """Sends `kind`; asserts the synchronous answer; returns the asynchronous result."""
        body = dict(body, response_url=self.response_url(kind))
        # urllib blocks: run it off the loop so the station keeps answering.
        data = await asyncio.to_thread(self.send, kind, body)
        assert data["result"] == sync, (kind, body, data)
        if sync != "ACCEPTED":
            return None
        assert data["timeout"] >= CALL_TIMEOUT, data
        return await self.result(body["response_url"])


def token(uid: str) -> dict:
    return {
        "country_code": "DE", "party_id": "TNM", "uid": uid, "type": "RFID",
        "contract_id": "DE-TNM-C12345678-X", "issuer": "TNM", "valid": True,
        "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z",
    }


def expiry() -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def answer(kind: str, status: str, make):
    if status == SILENT:
        await asyncio.sleep(CALL_TIMEOUT + 1.5)
        return make("Accepted")
    if status == NOT_IMPLEMENTED:
        raise OcppNotImplemented(description="not here")
    if status == INTERNAL:
        raise InternalError(description="boom")
    return make(status)


class Station16(ChargePoint16):
    answers: dict[str, str] = {}

    @on("RemoteStartTransaction")
    async def remote_start(self, id_tag, **kw):
        self.last_start = {"id_tag": id_tag, **kw}
        return await answer("start", self.answers.get("start", "Accepted"), lambda s: result16.RemoteStartTransaction(status=s))

    @on("RemoteStopTransaction")
    async def remote_stop(self, transaction_id, **kw):
        self.last_stop = transaction_id
        return await answer("stop", self.answers.get("stop", "Accepted"), lambda s: result16.RemoteStopTransaction(status=s))

    @on("ReserveNow")
    async def reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **kw):
        self.reservations = getattr(self, "reservations", []) + [(reservation_id, connector_id)]
        return await answer("reserve", self.answers.get("reserve", "Accepted"), lambda s: result16.ReserveNow(status=s))

    @on("CancelReservation")
    async def cancel_reservation(self, reservation_id, **kw):
        self.cancelled = getattr(self, "cancelled", []) + [reservation_id]
        return await answer("cancel", self.answers.get("cancel", "Accepted"), lambda s: result16.CancelReservation(status=s))

    @on("UnlockConnector")
    async def unlock(self, connector_id, **kw):
        return await answer("unlock", self.answers.get("unlock", "Unlocked"), lambda s: result16.UnlockConnector(status=s))


class Station201(ChargePoint201):
    answers: dict[str, str] = {}

    @on("RequestStartTransaction")
    async def request_start(self, id_token, remote_start_id, **kw):
        self.last_start = {"id_token": id_token, "remote_start_id": remote_start_id, **kw}
        return await answer("start", self.answers.get("start", "Accepted"), lambda s: result201.RequestStartTransaction(status=s))

    @on("RequestStopTransaction")
    async def request_stop(self, transaction_id, **kw):
        self.last_stop = transaction_id
        return await answer("stop", self.answers.get("stop", "Accepted"), lambda s: result201.RequestStopTransaction(status=s))

    @on("ReserveNow")
    async def reserve_now(self, id, expiry_date_time, id_token, **kw):
        self.reservations = getattr(self, "reservations", []) + [(id, kw.get("evse_id"))]
        return await answer("reserve", self.answers.get("reserve", "Accepted"), lambda s: result201.ReserveNow(status=s))

    @on("CancelReservation")
    async def cancel_reservation(self, reservation_id, **kw):
        self.cancelled = getattr(self, "cancelled", []) + [reservation_id]
        return await answer("cancel", self.answers.get("cancel", "Accepted"), lambda s: result201.CancelReservation(status=s))

    @on("UnlockConnector")
    async def unlock(self, evse_id, connector_id, **kw):
        return await answer("unlock", self.answers.get("unlock", "Unlocked"), lambda s: result201.UnlockConnector(status=s))


async def boot_and_publish(cp, hub: FakeHub, station: str, v16: bool) -> str:
    """Boot, EVSE 1 Available; returns the EVSE uid from the daemon's Location PUT."""
    if v16:
        await cp.call(call16.BootNotification(charge_point_vendor="PyVendor", charge_point_model="PyModel"), suppress=False)
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()), suppress=False)
    else:
        await cp.call(
            call201.BootNotification(charging_station={"model": "PyModel", "vendor_name": "PyVendor"}, reason="PowerUp"),
            suppress=False,
        )
        await cp.call(call201.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1), suppress=False)

    def find():
        for body in reversed(hub.location_puts("LOC1")):
            for e in body.get("evses") or []:
                if e["evse_id"] == f"NL*BRG*E{station}*1":
                    return e["uid"]
        return None

    uid = await until(f"EVSE of {station} published", find, WAIT)
    assert uid in evse_uids(hub.location_puts("LOC1")[-1]) or uid
    return uid


async def every_answer(d, hub, station, subprotocol, cls, v16: bool):
    emsp = Emsp(d, hub)
    async with charge_point(d, station, subprotocol, cls) as cp:
        cp.answers = {}
        evse = await boot_and_publish(cp, hub, station, v16)
        start = {"token": token("py-user-1"), "location_id": "LOC1", "evse_uid": evse, "connector_id": "1",
                 "authorization_reference": "py-ref"}
        for status, want in [("Accepted", "ACCEPTED"), ("Rejected", "REJECTED"),
                             (NOT_IMPLEMENTED, "NOT_SUPPORTED"), (INTERNAL, "FAILED"), (SILENT, "TIMEOUT")]:
            cp.answers["start"] = status
            assert await emsp.command("START_SESSION", start) == want, status
        if v16:
            assert cp.last_start == {"id_tag": "py-user-1", "connector_id": 1}, cp.last_start
        else:
            assert cp.last_start["evse_id"] == 1 and cp.last_start["remote_start_id"] > 0, cp.last_start
            assert cp.last_start["id_token"]["id_token"] == "py-user-1", cp.last_start
            assert cp.last_start["id_token"]["type"] == "ISO14443", cp.last_start

        unlock = {"location_id": "LOC1", "evse_uid": evse, "connector_id": "1"}
        unlock_rows = [("Unlocked", "ACCEPTED"), ("UnlockFailed", "FAILED"), (NOT_IMPLEMENTED, "NOT_SUPPORTED")]
        unlock_rows += [("NotSupported", "NOT_SUPPORTED")] if v16 else [
            ("OngoingAuthorizedTransaction", "EVSE_OCCUPIED"), ("UnknownConnector", "REJECTED")]
        for status, want in unlock_rows:
            cp.answers["unlock"] = status
            assert await emsp.command("UNLOCK_CONNECTOR", unlock) == want, status

        def reserve(rid):
            return {"token": token("py-resv"), "expiry_date": expiry(), "reservation_id": rid,
                    "location_id": "LOC1", "evse_uid": evse}

        for i, (status, want) in enumerate([("Occupied", "EVSE_OCCUPIED"), ("Faulted", "EVSE_INOPERATIVE"),
                                            ("Unavailable", "EVSE_INOPERATIVE"), ("Rejected", "REJECTED"),
                                            (SILENT, "TIMEOUT"), ("Accepted", "ACCEPTED")]):
            cp.answers["reserve"] = status
            assert await emsp.command("RESERVE_NOW", reserve(f"py-{i}")) == want, status
        # Replace: the same reservation_id again → the same OCPP id.
        assert await emsp.command("RESERVE_NOW", reserve("py-5")) == "ACCEPTED"
        assert cp.reservations[-1] == cp.reservations[-2], cp.reservations
        assert cp.reservations[-1][1] == 1, cp.reservations

        cp.answers["cancel"] = "Accepted"
        assert await emsp.command("CANCEL_RESERVATION", {"reservation_id": "PY-5"}) == "ACCEPTED"
        assert cp.cancelled == [cp.reservations[-1][0]], cp.cancelled
        assert await emsp.command("CANCEL_RESERVATION", {"reservation_id": "py-5"}, sync="REJECTED") is None
        cp.answers["reserve"] = "Accepted"
        assert await emsp.command("RESERVE_NOW", reserve("py-6")) == "ACCEPTED"
        cp.answers["cancel"] = "Rejected"
        assert await emsp.command("CANCEL_RESERVATION", {"reservation_id": "py-6"}) == "UNKNOWN_RESERVATION"

        # STOP_SESSION of a transaction the station started itself (RFID at the station).
        if v16:
            r = await cp.call(call16.StartTransaction(connector_id=1, id_tag="PYLOCAL", meter_start=0, timestamp=now()), suppress=False)
            ocpp_tx = r.transaction_id
        else:
            ocpp_tx = "py-tx-1"
            await cp.call(call201.TransactionEvent(
                event_type="Started", timestamp=now(), trigger_reason="CablePluggedIn", seq_no=0,
                transaction_info={"transaction_id": ocpp_tx}, evse={"id": 1, "connector_id": 1}), suppress=False)
        tx = await until("active transaction",
                         lambda: next((t for t in d.transactions_of(station) if t["status"] == "active"), None), WAIT)
        for status, want in [("Rejected", "REJECTED"), ("Accepted", "ACCEPTED")]:
            cp.answers["stop"] = status
            assert await emsp.command("STOP_SESSION", {"session_id": tx["id"]}) == want, status
        assert cp.last_stop == ocpp_tx, (cp.last_stop, ocpp_tx)
        assert await emsp.command("STOP_SESSION", {"session_id": "nope"}, sync="UNKNOWN_SESSION") is None


def test_ocpp16_library_station_answers_every_command(bridge):
    d, hub = bridge
    run(every_answer(d, hub, "PY16", "ocpp1.6", Station16, True), timeout=180)


def test_ocpp201_library_station_answers_every_command(bridge):
    d, hub = bridge
    run(every_answer(d, hub, "PY201", "ocpp2.0.1", Station201, False), timeout=180)


def test_offline_station_is_rejected_at_once(bridge):
    d, hub = bridge
    emsp = Emsp(d, hub)

    async def scenario():
        # PY16 was seen (its EVSE is known), then went away.
        async with charge_point(d, "PY16", "ocpp1.6", Station16) as cp:
            cp.answers = {}
            evse = await boot_and_publish(cp, hub, "PY16", True)
        await until("PY16 offline", lambda: (d.station("PY16") or {}).get("online") is False, WAIT)
        start = {"token": token("py-user-1"), "location_id": "LOC1", "evse_uid": evse}
        assert await emsp.command("START_SESSION", start, sync="REJECTED") is None
        unlock = {"location_id": "LOC1", "evse_uid": evse, "connector_id": "1"}
        assert await emsp.command("UNLOCK_CONNECTOR", unlock, sync="REJECTED") is None

    run(scenario())


def test_start_session_leads_to_session_and_cdr_with_auth_method_command(bridge):
    d, hub = bridge
    emsp = Emsp(d, hub)

    async def scenario():
        async with charge_point(d, "PY201", "ocpp2.0.1", Station201) as cp:
            cp.answers = {}
            evse = await boot_and_publish(cp, hub, "PY201", False)
            start = {"token": token("py-user-2"), "location_id": "LOC1", "evse_uid": evse,
                     "authorization_reference": "py-ref-2"}
            assert await emsp.command("START_SESSION", start) == "ACCEPTED"
            rsid = cp.last_start["remote_start_id"]
            await cp.call(call201.TransactionEvent(
                event_type="Started", timestamp=now(), trigger_reason="RemoteStart", seq_no=0,
                transaction_info={"transaction_id": "py-cmd-tx", "remote_start_id": rsid},
                id_token={"id_token": "py-user-2", "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1}), suppress=False)

            def session():
                return next((b for (m, p, b) in hub.snapshot() if m == "PUT" and "/sessions/" in p), None)

            s = await until("Session PUT", session, WAIT)
            assert s["auth_method"] == "COMMAND", s
            assert s["authorization_reference"] == "py-ref-2", s
            await cp.call(call201.TransactionEvent(
                event_type="Ended", timestamp=now(), trigger_reason="RemoteStop", seq_no=1,
                transaction_info={"transaction_id": "py-cmd-tx", "stopped_reason": "Remote"}), suppress=False)

            def cdr():
                return next((b for (m, p, b) in hub.snapshot() if m == "POST" and p.endswith("/cdrs")), None)

            c = await until("CDR POST", cdr, WAIT)
            assert c["auth_method"] == "COMMAND", c
            assert c["authorization_reference"] == "py-ref-2", c

    run(scenario())
