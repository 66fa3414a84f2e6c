"""The operator's status page in a real browser: headless Chromium (Debian package `chromium`,
installed by `.ci/run`) loads `/` from the real daemon while an `ocpp` 1.6 and a 2.0.1
ChargePoint are connected; the page (after its script ran) shows both stations, their versions,
firmware and connector statuses. With `admin.token` set, the browser gets the Basic challenge
and only the token (as the password) opens the page. A phone-sized screenshot is kept in
`target/status-page.png` (not committed)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

from bridge_harness import BridgeDaemon, charge_point, now, run

ROOT = Path(__file__).resolve().parents[2]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is required (Debian: apt-get install chromium; .ci/run does)")


def browse(url: str, tmp: Path, *extra: str) -> str:
    """The DOM after the page's script ran (bounded virtual time), as Chromium serialises it."""
    out = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            *extra,
            url,
        ],
        capture_output=True,
        timeout=60,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_page_shows_both_stations_and_their_connectors(daemon, tmp_path):
    async def scenario():
        async with charge_point(daemon, "PY16", "ocpp1.6", ChargePoint16) as cp16, charge_point(
            daemon, "PY201", "ocpp2.0.1", ChargePoint201
        ) as cp201:
            await cp16.call(
                call16.BootNotification(
                    charge_point_vendor="PyVendor", charge_point_model="M16", firmware_version="fw-16.3"
                ),
                suppress=False,
            )
            await cp16.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()),
                suppress=False,
            )
            await cp16.call(
                call16.StatusNotification(connector_id=2, error_code="NoError", status="Faulted", timestamp=now()),
                suppress=False,
            )
            await cp201.call(
                call201.BootNotification(
                    charging_station={"model": "M201", "vendor_name": "PyVendor", "firmware_version": "fw-201.7"},
                    reason="PowerUp",
                ),
                suppress=False,
            )
            await cp201.call(
                call201.StatusNotification(timestamp=now(), connector_status="Occupied", evse_id=1, connector_id=1),
                suppress=False,
            )
            admin = daemon.ready["admin"]
            dom = await asyncio.to_thread(browse, f"http://{admin}/", tmp_path)
            shot = ROOT / "target" / "status-page.png"
            shot.parent.mkdir(exist_ok=True)
            await asyncio.to_thread(
                browse, f"http://{admin}/", tmp_path, f"--screenshot={shot}", "--window-size=412,1400"
            )
            assert shot.exists() and shot.stat().st_size > 1000
            return dom

    dom = run(scenario())
    for needle in ("PY16", "PY201", "OCPP 1.6", "OCPP 2.0.1", "fw-16.3", "fw-201.7", "Faulted", "Occupied"):
        assert needle in dom, f"{needle} not on the page"
    # Each connector's OCPP status and the OCPI status it is published as, colour-coded.
    assert '<span class="pill bad">Faulted</span>' in dom
    assert '<span class="pill bad">OUTOFORDER</span>' in dom
    assert '<span class="pill ok">AVAILABLE</span>' in dom
    assert '<span class="pill busy">Occupied</span>' in dom
    assert '<span class="pill busy">CHARGING</span>' in dom
    # The script ran: it stamps the refresh time into the header.
    assert "updated " in dom


def test_with_an_admin_token_the_browser_is_asked_for_it(tmp_path):
    d = BridgeDaemon(tmp_path, extra='')
    cfg = d.config.read_text().replace('[admin]\nlisten = "127.0.0.1:0"', '[admin]\nlisten = "127.0.0.1:0"\ntoken = "page-s3cret"')
    d.config.write_text(cfg)
    d.start()
    try:
        admin = d.ready["admin"]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://{admin}/", timeout=10)
        assert e.value.code == 401
        assert e.value.headers["WWW-Authenticate"].startswith("Basic")
        dom = browse(f"http://{admin}/", tmp_path)
        assert "admin token required" in dom and 'id="stations"' not in dom
        dom = browse(f"http://operator:wrong@{admin}/", tmp_path)
        assert 'id="stations"' not in dom
        dom = browse(f"http://operator:page-s3cret@{admin}/", tmp_path)
        assert 'id="stations"' in dom and "updated " in dom
    finally:
        code = d.stop()
        d.kill()
    assert code == 0
