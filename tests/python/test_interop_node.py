"""Interop with a station implementation from another ecosystem: the npm package `ocpp-rpc`
(tests/node, installed by scripts/test with `npm ci`) in strict mode, which validates every
frame in both directions against the official OCPP 1.6 and 2.0.1 JSON schemas.

tests/node/station.js boots, reports its status, runs a local transaction with signed meter
values (1.6 SignedData/OCMF beside integer meterStart/meterStop; 2.0.1 signed Transaction.Begin
and Transaction.End readings around an unsigned sample), then charges when an OCPI START_SESSION
sent by the Python fake hub (as eMSP) reaches it and stops on STOP_SESSION. Its station ids
contain a space, `/`, `#` and `é` (percent-encoded by ocpp-rpc in the websocket URL).

LOC1 has tariff T1: 0.35 EUR/kWh + 21 % VAT, step 1 Wh."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from bridge_harness import REPO
from test_charging import make_bridge, push_token, token  # noqa: F401  (make_bridge is a fixture)
from test_commands import Emsp
from test_ocpi_push import until

NODE_DIR = REPO / "tests" / "node"
WAIT = 20.0
LOCAL = "NODE-LOCAL"
REMOTE = "NODE-REMOTE"


class NodeStation:
    """tests/node/station.js as a subprocess; its JSON-line events are collected as they come."""

    def __init__(self, url: str, station_id: str, protocol: str):
        self.args = [
            "--url", url, "--id", station_id, "--protocol", protocol, "--token", LOCAL, "--timeout", "150",
        ]
        self.events: list[dict] = []
        self.stderr = b""
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task | None = None

    async def start(self) -> None:
        node = shutil.which("node")
        assert node, "node (v18+) is needed for the ocpp-rpc interop test; scripts/test installs its packages"
        assert (NODE_DIR / "node_modules" / "ocpp-rpc").is_dir(), "run `npm ci` in tests/node (scripts/test does)"
        self.proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "station.js"), *self.args,
            cwd=NODE_DIR, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "text", "line": line.decode(errors="replace")})

    def seen(self, event: str) -> dict | None:
        return next((e for e in self.events if e.get("event") == event), None)

    async def wait(self, event: str, timeout: float = WAIT) -> dict:
        def probe():
            if self.proc is not None and self.proc.returncode is not None and not self.seen(event):
                raise AssertionError(f"node station exited {self.proc.returncode} before {event}: {self.log()}")
            return self.seen(event)

        return await until(f"node station: {event}", probe, timeout)

    async def finish(self, timeout: float = WAIT) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self.reader:
            await asyncio.wait_for(self.reader, timeout)
        if self.proc.stderr is not None:
            self.stderr = await self.proc.stderr.read()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def log(self) -> str:
        return "\n".join(json.dumps(e) for e in self.events) + "\n" + self.stderr.decode(errors="replace")


def assert_close(value, expected: float, what: str) -> None:
    assert value is not None and abs(float(value) - expected) < 1e-6, f"{what}: expected {expected}, got {value}"


def evse_uid_of(hub, station_id: str) -> str | None:
    for body in reversed(hub.location_puts("LOC1")):
        for e in body.get("evses") or []:
            if e.get("physical_reference") == f"{station_id} #1":
                return e["uid"]
    return None


def cdr_of(hub, tx_id: str) -> dict | None:
    return next((c for c in hub.cdrs() if c.get("id") == tx_id), None)


async def scenario(d, hub, station_id: str, protocol: str) -> None:
    emsp = Emsp(d, hub)
    node = NodeStation(f"ws://{d.ready['ocpp']}/ocpp", station_id, protocol)
    await node.start()
    try:
        connected = await node.wait("connected")
        assert connected["protocol"] == protocol, connected
        await node.wait("booted")
        station = await until("station online", lambda: (d.station(station_id) or {}).get("online"), WAIT)
        assert station is True

        # Status: the EVSE is published (Location PUT) with a uid from the safe alphabet.
        uid = await until("EVSE published", lambda: evse_uid_of(hub, station_id), WAIT)
        assert all(c.isascii() and (c.isalnum() or c in "-._~") for c in uid), uid

        # The local transaction with signed values: 2 kWh, priced, signed_data in the CDR.
        await node.wait("local_done")
        local = await until(
            "local transaction completed",
            lambda: next((t for t in d.transactions_of(station_id) if t["status"] == "completed"), None),
            WAIT,
        )
        cdr = await until("CDR of the local transaction", lambda: cdr_of(hub, local["id"]), WAIT)
        assert_close(cdr["total_energy"], 2.0, "total_energy")
        # 2 kWh × 0.35 = 0.70 excl; × 1.21 = 0.847 incl.
        assert_close(cdr["total_cost"]["excl_vat"], 0.70, "total_cost excl")
        assert_close(cdr["total_cost"]["incl_vat"], 0.847, "total_cost incl")
        assert cdr["cdr_location"]["evse_uid"] == uid, cdr
        assert cdr["cdr_token"]["uid"] == LOCAL, cdr
        signed = cdr.get("signed_data") or {}
        assert signed.get("encoding_method") == "OCMF", cdr
        natures = [v["nature"] for v in signed.get("signed_values", [])]
        assert natures == ["Start", "End"], natures
        assert all(v["plain_data"].startswith("OCMF|") for v in signed["signed_values"]), signed

        # Remote start through OCPI START_SESSION, remote stop through STOP_SESSION.
        await node.wait("ready_for_remote")
        start = {"token": token(REMOTE, "ALLOWED"), "location_id": "LOC1", "evse_uid": uid,
                 "connector_id": "1", "authorization_reference": f"node-{protocol}"}
        assert await emsp.command("START_SESSION", start) == "ACCEPTED"
        await node.wait("remote_charging")
        remote = await until(
            "remote transaction active",
            lambda: next((t for t in d.transactions_of(station_id) if t["status"] == "active"), None),
            WAIT,
        )
        assert remote["id_token"] == REMOTE, remote
        assert await emsp.command("STOP_SESSION", {"session_id": remote["id"]}) == "ACCEPTED"
        await node.wait("remote_done")
        code = await node.finish()
        assert code == 0, f"node station failed (exit {code}):\n{node.log()}"
        assert node.seen("done")["failures"] == [], node.log()

        rcdr = await until("CDR of the remote transaction", lambda: cdr_of(hub, remote["id"]), WAIT)
        assert rcdr["auth_method"] == "COMMAND", rcdr
        assert rcdr["authorization_reference"] == f"node-{protocol}", rcdr
        assert_close(rcdr["total_energy"], 1.0, "remote total_energy")
        assert rcdr["cdr_token"]["uid"] == REMOTE, rcdr

        # Every status the station reported reached the hub as an EVSE PATCH, in order.
        statuses = hub.evse_patches("LOC1", uid)
        assert "CHARGING" in statuses and statuses[-1] == "AVAILABLE", statuses
    except Exception as e:
        node.kill()
        raise AssertionError(f"{e}\n--- node station events ---\n{node.log()}\n--- daemon ---\n{d.log_tail(40)}") from e
    finally:
        node.kill()


@pytest.fixture
def node_bridge(tmp_path, monkeypatch):
    """`make_bridge` from test_charging with the two Node stations configured."""
    import bridge_harness

    stations = bridge_harness.STATIONS + [("Node 16/é", None), ("Node 201 #1", None)]
    monkeypatch.setattr(bridge_harness, "STATIONS", stations)
    yield


@pytest.mark.parametrize(
    "station_id,protocol",
    [("Node 16/é", "ocpp1.6"), ("Node 201 #1", "ocpp2.0.1")],
)
def test_ocpp_rpc_strict_station(node_bridge, make_bridge, station_id, protocol):
    """Boot, status, a transaction with signed values, a remote start/stop; no schema violation."""
    d, hub = make_bridge()
    push_token(d, hub, token(LOCAL, "ALWAYS"))
    asyncio.run(asyncio.wait_for(scenario(d, hub, station_id, protocol), 150))
