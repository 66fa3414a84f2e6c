"""Run the real ocpp-ocpi-bridge binary for the Python interop tests.

Mirrors tests/src/daemon.rs: a temp dir with data dir, config file, ready file and log file;
every listener on 127.0.0.1:0; the bound ports come from the ready file. Every wait is bounded.

Binary: $BRIDGE_BIN, else {target}/debug/ocpp-ocpi-bridge with {target} = $CARGO_TARGET_DIR or
{repo}/target; built once with `cargo build -p bridge --bin ocpp-ocpi-bridge` if missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import websockets

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0
HTTP_TIMEOUT = 10.0
SOON = 10.0

# Stations every Python test may use; SECURE needs Basic auth.
STATIONS = [
    ("PY16", None),
    ("PY201", None),
    ("SCHEMA16", None),
    ("SCHEMA201", None),
    ("SECURE", "py-s3cret-pass"),
]


def now() -> str:
    """UTC now, RFC 3339 with milliseconds and Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bridge_bin() -> Path:
    if os.environ.get("BRIDGE_BIN"):
        return Path(os.environ["BRIDGE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    binary = target / "debug" / "ocpp-ocpi-bridge"
    if not binary.exists():
        subprocess.run(
            ["cargo", "build", "-p", "bridge", "--bin", "ocpp-ocpi-bridge"],
            cwd=REPO,
            check=True,
            timeout=1800,
        )
    return binary


def _q(s: str) -> str:
    return json.dumps(s)


def config_toml(
    data_dir: Path,
    heartbeat_interval: int = 300,
    free_vend: bool = True,
    ocpi_extra: str = "",
    extra: str = "",
    ocpp_extra: str = "",
) -> str:
    """The daemon config. `ocpp_extra`: more `[ocpp]` lines (e.g. `tls_listen = ...`);
    `ocpi_extra`: more `[ocpi]` lines (e.g. `authorize_timeout_ms = 700`);
    `extra`: TOML appended at the end (e.g. `[[tariffs]]`)."""
    text = f"""[state]
path = {_q(str(data_dir))}

[log]
format = "text"
level = "debug"

[ocpp]
listen = "127.0.0.1:0"
allow_unknown_stations = false
heartbeat_interval = {heartbeat_interval}
call_timeout = 30
ping_interval = 0
max_frame_bytes = 65536
free_vend = {"true" if free_vend else "false"}
{ocpp_extra}

[ocpi]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:9100"
country_code = "NL"
party_id = "BRG"
business_name = "Example CPO"
{ocpi_extra}
[admin]
listen = "127.0.0.1:0"

[[locations]]
id = "LOC1"
name = "Depot"
address = "Main street 1"
city = "Utrecht"
postal_code = "3511AA"
country = "NLD"
latitude = "52.090737"
longitude = "5.121420"
time_zone = "Europe/Amsterdam"
"""
    for sid, password in STATIONS:
        text += f'\n[[stations]]\nid = {_q(sid)}\nlocation = "LOC1"\n'
        if password:
            text += f"password = {_q(password)}\n"
    if extra:
        text += "\n" + extra + "\n"
    return text


class BridgeDaemon:
    """One daemon process in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        heartbeat_interval: int = 300,
        free_vend: bool = True,
        ocpi_extra: str = "",
        extra: str = "",
        ocpp_extra: str = "",
    ):
        self.dir = workdir
        self.config = workdir / "config.toml"
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "daemon.log"
        self.config.write_text(
            config_toml(
                workdir / "data", heartbeat_interval, free_vend, ocpi_extra, extra, ocpp_extra
            )
        )
        self.proc: subprocess.Popen | None = None
        self.ready: dict = {}

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [str(bridge_bin()), "--config", str(self.config), "--ready-file", str(self.ready_file)],
            stdin=subprocess.DEVNULL,
            # The daemon layers BRIDGE_* / BRIDGE__SECTION__KEY env over the file: keep the
            # developer's environment out of the tests.
            env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.ready_file.exists():
                self.ready = json.loads(self.ready_file.read_text())
                assert self.ready["pid"] == self.proc.pid, self.ready
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.proc.returncode} before ready\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"daemon not ready within {READY_TIMEOUT}s\n{self.log_tail()}")
            time.sleep(0.025)

    def stop(self) -> int | None:
        """SIGTERM and wait (bounded); SIGKILL if it hangs. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"daemon ignored SIGTERM for {EXIT_TIMEOUT}s\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_TIMEOUT)

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def ocpp_url(self, station_id: str, password: str | None = None) -> str:
        auth = f"{station_id}:{password}@" if password else ""
        return f"ws://{auth}{self.ready['ocpp']}/ocpp/{station_id}"

    def admin_get(self, path: str):
        url = f"http://{self.ready['admin']}{path}"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
            assert resp.status == 200, (url, resp.status)
            return json.loads(resp.read())

    def station(self, station_id: str) -> dict | None:
        return next((s for s in self.admin_get("/admin/stations") if s["id"] == station_id), None)

    def transactions_of(self, station_id: str) -> list[dict]:
        return [t for t in self.admin_get("/admin/transactions") if t["station_id"] == station_id]

    def wait_for(self, what: str, probe, timeout: float = SOON):
        """Poll `probe()` until it returns a truthy value; fail with the last value on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last: {value!r}\n{self.log_tail(20)}")
            time.sleep(0.05)


def run(coro, timeout: float = 60.0):
    """Run an async scenario with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def charge_point(daemon: BridgeDaemon, station_id: str, subprotocol: str, cls, password=None):
    """Connect an `ocpp` ChargePoint subclass to the daemon and run its receive loop."""
    ws = await websockets.connect(
        daemon.ocpp_url(station_id, password),
        subprotocols=[subprotocol],
        open_timeout=10,
        close_timeout=5,
    )
    assert ws.subprotocol == subprotocol, ws.subprotocol
    cp = cls(station_id, ws, response_timeout=10)
    task = asyncio.create_task(cp.start())
    try:
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await ws.close()
        with contextlib.suppress(BaseException):
            await task
