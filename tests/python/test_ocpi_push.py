"""OCPI pushes driven by stations we did not write: the `ocpp` library's 1.6 and 2.0.1
ChargePoints report statuses, a tiny fake OCPI 2.2.1 hub (http.server in a thread) is a
configured peer of the daemon. The daemon must register with the hub, PUT every location after
registration, PUT the location again when an EVSE appears and PATCH the EVSE once per OCPI
status change."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

from bridge_harness import BridgeDaemon, charge_point, now, run

WAIT = 15.0


def b64(token: str) -> str:
    return base64.b64encode(token.encode()).decode()


class FakeHub:
    """Versions + credentials (as the receiving side) + locations RECEIVER that records pushes."""

    def __init__(self):
        self.token_a = f"py-hub-a-{uuid.uuid4().hex}"
        self.token_c: str | None = None  # what the daemon must send us
        self.token_b: str | None = None  # what we would send the daemon
        self.pushes: list[tuple[str, str, dict | None]] = []
        self.unauthorized: list[tuple[str, str]] = []
        self.bridge_credentials: dict | None = None
        self.lock = threading.Lock()
        # As eMSP (charging tests): the Tokens sender list, scripted real-time authorization
        # answers by upper-cased uid ({"allowed", "reference", "delay", "unknown": 404|2004}),
        # every authorization request (recorded on arrival), the Location answered per CDR id.
        self.tokens: list[dict] = []
        self.tokens_page_size = 100
        self.auth_answers: dict[str, dict] = {}
        self.auth_requests: list[tuple[str, str, dict | None, dict]] = []
        self.cdr_locations: dict[str, str] = {}
        self.pushed_tokens: list[dict] = []
        # Refusals: "METHOD path-substring" -> OCPI 2001 status_message; each refuses one push
        # (the status page test parks a push this way). Refused pushes are kept in `refused`.
        self.refuse_next: dict[str, str] = {}
        self.refused: list[tuple[str, str, dict | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _token(self):
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Token "):
                    return None
                try:
                    return base64.b64decode(auth[6:].strip()).decode().rstrip("\n")
                except Exception:
                    return None

            def _send(self, status, body=None, headers=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                for h in ("X-Request-ID", "X-Correlation-ID"):
                    if self.headers.get(h):
                        self.send_header(h, self.headers[h])
                self.end_headers()
                self.wfile.write(data)

            def _ok(self, data=None, headers=None):
                body = {"status_code": 1000, "status_message": "Success", "timestamp": now()}
                if data is not None:
                    body["data"] = data
                self._send(200, body, headers)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                return json.loads(raw) if raw else None

            def _deny(self):
                with hub.lock:
                    hub.unauthorized.append((self.command, self.path))
                self._send(401)

            def do_GET(self):
                token = self._token()
                if self.path in ("/ocpi/versions", "/ocpi/2.2.1"):
                    if token not in (hub.token_a, hub.token_c) or token is None:
                        return self._deny()
                    if self.path == "/ocpi/versions":
                        return self._ok([{"version": "2.2.1", "url": f"{hub.base}/ocpi/2.2.1"}])
                    eps = [{"identifier": "credentials", "role": "SENDER", "url": f"{hub.base}/ocpi/2.2.1/credentials"}]
                    for module in ("locations", "tariffs", "sessions", "cdrs"):
                        eps.append({"identifier": module, "role": "RECEIVER", "url": f"{hub.base}/ocpi/emsp/2.2.1/{module}"})
                    for module in ("tokens", "commands"):
                        eps.append({"identifier": module, "role": "SENDER", "url": f"{hub.base}/ocpi/emsp/2.2.1/{module}"})
                    return self._ok({"version": "2.2.1", "endpoints": eps})
                if token is None or token != hub.token_c:
                    return self._deny()
                if self.path.split("?")[0].rstrip("/") == "/ocpi/emsp/2.2.1/tokens":
                    return self._tokens_page()
                self._ok([])

            def _tokens_page(self):
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                with hub.lock:
                    tokens = list(hub.tokens)
                    size = hub.tokens_page_size
                    hub.pushes.append(("GET", self.path, None))
                offset = int(query.get("offset", 0))
                limit = max(1, min(int(query.get("limit", size)), size))
                headers = {"X-Total-Count": str(len(tokens)), "X-Limit": str(limit)}
                if offset + limit < len(tokens):
                    headers["Link"] = (
                        f'<{hub.base}/ocpi/emsp/2.2.1/tokens?offset={offset + limit}&limit={limit}>; rel="next"'
                    )
                self._ok(tokens[offset : offset + limit], headers)

            def _authorize(self, uid):
                body = self._body()
                with hub.lock:
                    hub.auth_requests.append((uid, self.path, body, dict(self.headers)))
                    answer = hub.auth_answers.get(uid.upper())
                    known = next(
                        (t for t in hub.tokens + hub.pushed_tokens[::-1] if t["uid"].upper() == uid.upper()),
                        None,
                    )
                if answer is None:
                    answer = {"allowed": "ALLOWED"} if known else {"unknown": 404}
                time.sleep(answer.get("delay", 0))
                if answer.get("unknown") == 404:
                    return self._send(404, {"status_code": 2004, "status_message": "Unknown token", "timestamp": now()})
                if answer.get("unknown") == 2004:
                    return self._send(200, {"status_code": 2004, "status_message": "Unknown token", "timestamp": now()})
                info = {"allowed": answer["allowed"], "token": answer.get("token") or known}
                if answer.get("reference"):
                    info["authorization_reference"] = answer["reference"]
                self._ok(info)

            def do_POST(self):
                token = self._token()
                if self.path == "/ocpi/2.2.1/credentials":
                    if token != hub.token_a:
                        return self._deny()
                    if hub.token_c is not None:
                        return self._send(405)
                    try:
                        creds = self._body()
                    except ValueError:
                        return self._send(400)
                    try:
                        hub.callback(creds["url"], creds["token"])
                    except Exception as e:  # noqa: BLE001
                        return self._send(200, {"status_code": 3001, "status_message": str(e), "timestamp": now()})
                    with hub.lock:
                        hub.token_b = creds["token"]
                        hub.token_c = f"py-hub-c-{uuid.uuid4().hex}"
                        hub.bridge_credentials = creds
                    return self._ok(
                        {
                            "token": hub.token_c,
                            "url": f"{hub.base}/ocpi/versions",
                            "roles": [
                                {
                                    "role": "HUB",
                                    "country_code": "NL",
                                    "party_id": "PYH",
                                    "business_details": {"name": "Python fake hub"},
                                }
                            ],
                        }
                    )
                path = self.path.split("?")[0]
                prefix = "/ocpi/emsp/2.2.1/tokens/"
                if path.startswith(prefix) and path.endswith("/authorize"):
                    if token is None or token != hub.token_c:
                        return self._deny()
                    return self._authorize(path[len(prefix) : -len("/authorize")])
                self._push()

            def _push(self):
                if self._token() is None or self._token() != hub.token_c:
                    return self._deny()
                body = self._body()
                with hub.lock:
                    reason = None
                    for key in list(hub.refuse_next):
                        method, _, part = key.partition(" ")
                        if method == self.command and part in self.path:
                            reason = hub.refuse_next.pop(key)
                            hub.refused.append((self.command, self.path, body))
                            break
                    if reason is None:
                        hub.pushes.append((self.command, self.path, body))
                if reason is not None:
                    return self._send(200, {"status_code": 2001, "status_message": reason, "timestamp": now()})
                headers = None
                if self.command == "POST" and self.path.startswith("/ocpi/emsp/2.2.1/cdrs"):
                    location = f"{hub.base}/ocpi/emsp/2.2.1/cdrs/{uuid.uuid4().hex}"
                    headers = {"Location": location}
                    with hub.lock:
                        hub.cdr_locations[(body or {}).get("id", "")] = location
                self._ok(None, headers)

            do_PUT = _push
            do_PATCH = _push

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def versions_url(self) -> str:
        return f"{self.base}/ocpi/versions"

    def callback(self, versions_url: str, token: str) -> None:
        """The registration callback: the daemon's versions + details with the token it sent."""

        def get(url):
            req = urllib.request.Request(url, headers={"Authorization": f"Token {b64(token)}"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())
            assert body["status_code"] == 1000, body
            return body["data"]

        versions = get(versions_url)
        url = next(v["url"] for v in versions if v["version"] == "2.2.1")
        details = get(url)
        assert any(e["identifier"] == "locations" for e in details["endpoints"]), details

    def snapshot(self):
        with self.lock:
            return list(self.pushes)

    def location_puts(self, loc: str):
        return [b for (m, p, b) in self.snapshot() if m == "PUT" and p.endswith(f"/locations/NL/BRG/{loc}")]

    def evse_patches(self, loc: str, uid: str):
        suffix = f"/locations/NL/BRG/{loc}/{uid}"
        return [b["status"] for (m, p, b) in self.snapshot() if m == "PATCH" and p.endswith(suffix)]

    # ----- as eMSP (charging tests) -----

    def sessions(self, session_id: str | None = None):
        """(method, body) of every Session push, optionally of one session, in order."""
        return [
            (m, b)
            for (m, p, b) in self.snapshot()
            if "/sessions/" in p and (session_id is None or p.rstrip("/").endswith(f"/{session_id}"))
        ]

    def cdrs(self):
        """Bodies of every CDR POST, in order."""
        return [b for (m, p, b) in self.snapshot() if m == "POST" and p.startswith("/ocpi/emsp/2.2.1/cdrs")]

    def authorize_requests(self, uid: str):
        with self.lock:
            return [r for r in self.auth_requests if r[0].upper() == uid.upper()]

    def bridge_endpoint(self, module: str, bridge_versions_url: str) -> str:
        """The daemon's endpoint URL for `module`, discovered with the token it gave us."""
        versions = self._bridge_get(bridge_versions_url)
        details = self._bridge_get(next(v["url"] for v in versions if v["version"] == "2.2.1"))
        return next(e["url"] for e in details["endpoints"] if e["identifier"] == module)

    def _bridge_get(self, url: str):
        req = urllib.request.Request(url, headers={"Authorization": f"Token {b64(self.token_b)}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status_code"] == 1000, body
        return body["data"]

    def put_token(self, bridge_versions_url: str, token: dict) -> dict:
        """PUT `token` to the daemon's Tokens receiver; returns the OCPI envelope."""
        base = self.bridge_endpoint("tokens", bridge_versions_url).rstrip("/")
        url = f"{base}/{token['country_code']}/{token['party_id']}/{token['uid']}?type={token['type']}"
        with self.lock:
            self.pushed_tokens.append(token)
        req = urllib.request.Request(
            url,
            data=json.dumps(token).encode(),
            method="PUT",
            headers={"Authorization": f"Token {b64(self.token_b)}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b"{}")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


async def until(what: str, probe, timeout: float = WAIT):
    """Poll `probe()` (without blocking the station's receive loop) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        await asyncio.sleep(0.05)


def evse_uids(location: dict) -> list[str]:
    return [e["uid"] for e in (location.get("evses") or [])]


def put_with(hub: FakeHub, loc: str, uid: str):
    for body in reversed(hub.location_puts(loc)):
        if uid in evse_uids(body):
            return body
    return None


@pytest.fixture
def bridge_with_hub(tmp_path):
    hub = FakeHub()
    d = BridgeDaemon(tmp_path)
    text = d.config.read_text().replace(
        'public_url = "http://127.0.0.1:9100"', 'public_url = "http://127.0.0.1:0"'
    )
    text += f'\n[[ocpi.peers]]\nversions_url = "{hub.versions_url}"\ntoken_a = "{hub.token_a}"\n'
    d.config.write_text(text)
    d.start()
    try:
        yield d, hub
    finally:
        code = d.stop()
        d.kill()
        hub.stop()
    assert code == 0, f"daemon exited with {code} on SIGTERM\n{d.log_tail()}"


class Station16(ChargePoint16):
    pass


class Station201(ChargePoint201):
    pass


def check_registration(d: BridgeDaemon, hub: FakeHub):
    d.wait_for("registration with the Python hub", lambda: hub.token_c, timeout=WAIT)
    creds = hub.bridge_credentials
    assert creds["url"] == f"http://{d.ready['ocpi']}/ocpi/versions", creds
    assert any(r["role"] == "CPO" and r["party_id"] == "BRG" for r in creds["roles"]), creds
    d.wait_for("PUT LOC1 after registration", lambda: hub.location_puts("LOC1"), timeout=WAIT)


def test_ocpp16_library_station_drives_location_put_and_evse_patches(bridge_with_hub):
    d, hub = bridge_with_hub
    check_registration(d, hub)

    async def scenario():
        async with charge_point(d, "PY16", "ocpp1.6", Station16) as cp:
            boot = await cp.call(
                call16.BootNotification(charge_point_vendor="PyVendor", charge_point_model="PyModel"),
                suppress=False,
            )
            assert boot.status == "Accepted"

            async def status(s):
                await cp.call(
                    call16.StatusNotification(connector_id=1, error_code="NoError", status=s, timestamp=now()),
                    suppress=False,
                )

            await status("Available")
            loc = await until("PUT LOC1 with PY16-1", lambda: put_with(hub, "LOC1", "PY16-1"))
            evse = next(e for e in loc["evses"] if e["uid"] == "PY16-1")
            assert evse["status"] == "AVAILABLE", evse
            assert evse["evse_id"] == "NL*BRG*EPY16*1", evse

            expected = []
            for ocpp_status, ocpi_status in [
                ("Preparing", "CHARGING"),
                ("Charging", None),
                ("Available", "AVAILABLE"),
                ("Reserved", "RESERVED"),
                ("Unavailable", "INOPERATIVE"),
                ("Faulted", "OUTOFORDER"),
            ]:
                await status(ocpp_status)
                if ocpi_status:
                    expected.append(ocpi_status)
                    await until(
                        f"PATCH PY16-1 {ocpi_status}",
                        lambda: hub.evse_patches("LOC1", "PY16-1")[-1:] == [ocpi_status],
                    )
            assert hub.evse_patches("LOC1", "PY16-1") == expected
            assert not hub.unauthorized, hub.unauthorized

    run(scenario())


def test_ocpp201_library_station_drives_location_put_and_evse_patches(bridge_with_hub):
    d, hub = bridge_with_hub
    check_registration(d, hub)

    async def scenario():
        async with charge_point(d, "PY201", "ocpp2.0.1", Station201) as cp:
            boot = await cp.call(
                call201.BootNotification(
                    charging_station={"model": "PyModel201", "vendor_name": "PyVendor"}, reason="PowerUp"
                ),
                suppress=False,
            )
            assert boot.status == "Accepted"

            async def status(s):
                await cp.call(
                    call201.StatusNotification(timestamp=now(), connector_status=s, evse_id=1, connector_id=1),
                    suppress=False,
                )

            await status("Available")
            loc = await until("PUT LOC1 with PY201-1", lambda: put_with(hub, "LOC1", "PY201-1"))
            evse = next(e for e in loc["evses"] if e["uid"] == "PY201-1")
            assert evse["status"] == "AVAILABLE", evse

            expected = []
            for ocpp_status, ocpi_status in [
                ("Occupied", "CHARGING"),
                ("Available", "AVAILABLE"),
                ("Unavailable", "INOPERATIVE"),
                ("Faulted", "OUTOFORDER"),
            ]:
                await status(ocpp_status)
                expected.append(ocpi_status)
                await until(
                    f"PATCH PY201-1 {ocpi_status}",
                    lambda: hub.evse_patches("LOC1", "PY201-1")[-1:] == [ocpi_status],
                )
            assert hub.evse_patches("LOC1", "PY201-1") == expected
            assert not hub.unauthorized, hub.unauthorized

    run(scenario())
