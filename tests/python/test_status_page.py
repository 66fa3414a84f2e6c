"""The operator's status page (issue 16) in a real browser: headless Debian `chromium`, driven
with the PyPI `playwright` package (its async API, so the browser and the `ocpp` library's
stations share one event loop) against the real daemon, with a 1.6 and a 2.0.1 station and the
Python fake hub (test_ocpi_push.FakeHub) as the registered eMSP.

- the page shows both stations (online, OCPP version) and each connector's OCPP status and the
  OCPI status it is published as; a session appears under "Charging now" while the 1.6 station
  charges, with its token uid masked;
- the hub refuses the session's first PUT (OCPI 2001), so the push is parked: the page lists it
  with the hub's reason, the Retry button puts it back and the hub receives it;
- with `admin.token` set the browser gets 401 + `WWW-Authenticate: Basic` (its prompt) and, with
  the token as password, the page loads and refreshes itself.

Browser: $CHROMIUM, else /usr/bin/chromium (the Debian package; `.ci/run` installs it). The
browser is never downloaded (`playwright install` is not used). One screenshot of the page is kept
at {target}/test-artifacts/status-page.png (not committed)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from playwright.async_api import async_playwright, expect

from bridge_harness import REPO, BridgeDaemon, charge_point, now, run
from test_charging import TARIFF_T1, boot16, boot201, energy16, push_token, token
from test_ocpi_push import FakeHub, until

WAIT = 15.0
WAIT_MS = int(WAIT * 1000)
ADMIN_TOKEN = "py-page-t0ken"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        found = shutil.which("chromium")
        if not found:
            pytest.fail(f"no chromium at {path}: install the Debian package (apt-get install chromium)")
        path = found
    return path


def artifact_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    out = target / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out


async def browser_context(pw, profile: Path, **options):
    """A headless Chromium with a fresh profile directory; every wait bounded by WAIT."""
    context = await pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=chromium(),
        headless=True,
        args=CHROMIUM_ARGS,
        timeout=30_000,
        **options,
    )
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    return context


@pytest.fixture
def make_bridge(tmp_path):
    """Start (daemon, hub): the hub is a registered peer with a Tokens receiver; `admin_token`
    sets `admin.token`."""
    started = []

    def make(admin_token: str | None = None):
        hub = FakeHub()
        d = BridgeDaemon(
            tmp_path,
            free_vend=False,
            ocpi_extra="session_update_interval = 1\n",
            extra=TARIFF_T1,
        )
        text = (
            d.config.read_text()
            .replace('public_url = "http://127.0.0.1:9100"', 'public_url = "http://127.0.0.1:0"')
            .replace('time_zone = "Europe/Amsterdam"\n', 'time_zone = "Europe/Amsterdam"\ntariff_id = "T1"\n', 1)
        )
        if admin_token:
            text = text.replace('[admin]\nlisten = "127.0.0.1:0"\n', f'[admin]\nlisten = "127.0.0.1:0"\ntoken = "{admin_token}"\n')
            assert f'token = "{admin_token}"' in text
        text += f'\n[[ocpi.peers]]\nversions_url = "{hub.versions_url}"\ntoken_a = "{hub.token_a}"\n'
        d.config.write_text(text)
        started.append((d, hub))
        d.start()
        d.wait_for("registration with the Python hub", lambda: hub.token_b, timeout=WAIT)
        return d, hub

    yield make
    for d, hub in started:
        code = d.stop()
        d.kill()
        hub.stop()
        assert code == 0, f"daemon exited with {code} on SIGTERM\n{d.log_tail()}"


class Station16(ChargePoint16):
    pass


class Station201(ChargePoint201):
    pass


def parked(d: BridgeDaemon) -> list[dict]:
    return d.admin_get("/admin/outbox").get("parked") or []


def test_status_page_in_chromium_shows_stations_sessions_and_retries_a_parked_push(make_bridge, tmp_path):
    d, hub = make_bridge()
    d.wait_for(
        "the hub registered in /admin/peers",
        lambda: any(p.get("status") == "registered" for p in d.admin_get("/admin/peers")),
        timeout=WAIT,
    )
    push_token(d, hub, token("PYCARD16", "ALWAYS"))
    # The session's first PUT is refused: parked for the operator.
    hub.refuse_next["PUT /sessions/"] = "py hub refuses this session"
    url = f"http://{d.ready['admin']}/"

    async def scenario():
        async with async_playwright() as pw:
            context = await browser_context(pw, tmp_path / "profile")
            try:
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                response = await page.goto(url)
                assert response is not None and response.status == 200, response
                await expect(page.locator("#stations")).to_contain_text("No station has connected yet.")

                async with charge_point(d, "PY16", "ocpp1.6", Station16) as cp16, charge_point(
                    d, "PY201", "ocpp2.0.1", Station201
                ) as cp201:
                    await boot16(cp16)
                    await boot201(cp201)
                    await cp201.call(
                        call201.StatusNotification(
                            timestamp=now(), connector_status="Unavailable", evse_id=1, connector_id=1
                        ),
                        suppress=False,
                    )

                    # Both stations, without reloading: the page refreshes itself.
                    s16 = page.locator('#stations [data-station="PY16"]')
                    s201 = page.locator('#stations [data-station="PY201"]')
                    await expect(s16).to_contain_text("online", timeout=WAIT_MS)
                    await expect(s16).to_contain_text("OCPP 1.6")
                    await expect(s16.locator("tr", has_text="Available")).to_contain_text("AVAILABLE")
                    await expect(s201).to_contain_text("online")
                    await expect(s201).to_contain_text("OCPP 2.0.1")
                    await expect(s201.locator("tr", has_text="Unavailable")).to_contain_text("INOPERATIVE")
                    await expect(page.locator("#sessions")).to_contain_text("Nothing is charging.")

                    # Charging on the 1.6 station: the session appears, token masked.
                    start = await cp16.call(
                        call16.StartTransaction(connector_id=1, id_tag="PYCARD16", meter_start=1000, timestamp=now()),
                        suppress=False,
                    )
                    assert start.id_tag_info["status"] == "Accepted", start
                    await cp16.call(
                        call16.StatusNotification(
                            connector_id=1, error_code="NoError", status="Charging", timestamp=now()
                        ),
                        suppress=False,
                    )
                    await cp16.call(
                        call16.MeterValues(
                            connector_id=1,
                            transaction_id=start.transaction_id,
                            meter_value=[energy16(now(), 3500, "Sample.Periodic")],
                        ),
                        suppress=False,
                    )
                    session = page.locator("#sessions tr.session")
                    await expect(session).to_have_count(1, timeout=WAIT_MS)
                    await expect(session).to_contain_text("PY16-1")
                    await expect(session.locator("td").nth(2)).to_have_text("2.5")  # kWh: 3500 - 1000 Wh
                    await expect(session).to_contain_text("DE-EMS")
                    await expect(session).to_contain_text("••••RD16")
                    assert "PYCARD16" not in await page.locator("#sessions").inner_text()
                    await expect(s16.locator("tr", has_text="Charging")).to_contain_text("CHARGING")

                    # The refused Session PUT is parked and listed with the hub's reason.
                    await until("the refused session PUT", lambda: hub.refused)
                    row = page.locator("#peers tr.parked", has_text="sessions")
                    await expect(row).to_have_count(1, timeout=WAIT_MS)
                    await expect(row).to_contain_text("py hub refuses this session")
                    await expect(page.locator("#attention")).to_contain_text("parked push(es) need a decision")
                    assert len(parked(d)) == 1, parked(d)
                    session_id = d.transactions_of("PY16")[0]["id"]
                    assert not [b for (m, b) in hub.sessions(session_id) if m == "PUT"], "refused, not delivered"

                    shot = artifact_dir() / "status-page.png"
                    await page.screenshot(path=str(shot), full_page=True)
                    assert shot.stat().st_size > 1000, shot

                    # Retry from the page: delivered, and the row goes away.
                    await row.locator("button.retry").click()
                    puts = await until(
                        "the retried session PUT at the hub",
                        lambda: [b for (m, b) in hub.sessions(session_id) if m == "PUT"],
                    )
                    assert puts[0]["status"] == "ACTIVE", puts[0]
                    await expect(page.locator("#peers tr.parked")).to_have_count(0, timeout=WAIT_MS)
                    await until("no parked entry in the admin API", lambda: not parked(d))
                    # A registered peer and an online station need nothing from the operator.
                    await expect(page.locator("#attention")).to_contain_text("Nothing needs attention.")
                    assert len(hub.refused) == 1, hub.refused
                assert not errors, errors
            finally:
                await context.close()

    run(scenario(), timeout=150)
    print(f"status page screenshot: {artifact_dir() / 'status-page.png'}")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_status_page_asks_for_the_admin_token_in_chromium(make_bridge, tmp_path):
    d, hub = make_bridge(admin_token=ADMIN_TOKEN)
    url = f"http://{d.ready['admin']}/"

    # Plain HTTP: 401 with a Basic challenge, any username with the token as password passes.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic "), refused.value.headers
    req = urllib.request.Request(url, headers={"Authorization": basic("anyone", ADMIN_TOKEN)})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200

    async def scenario():
        async with async_playwright() as pw:
            # Without credentials the browser meets the Basic challenge and asks for them: that
            # is its prompt (Fetch.authRequired over CDP). Cancelled, the page stays closed.
            context = await browser_context(pw, tmp_path / "profile-anonymous")
            try:
                page = await context.new_page()
                cdp = await context.new_cdp_session(page)
                prompts: list[dict] = []

                async def answer(event, response):
                    prompts.append(event["authChallenge"])
                    await cdp.send(
                        "Fetch.continueWithAuth",
                        {"requestId": event["requestId"], "authChallengeResponse": response},
                    )

                async def pass_on(event):
                    await cdp.send("Fetch.continueRequest", {"requestId": event["requestId"]})

                reply = {"response": "CancelAuth"}
                cdp.on("Fetch.authRequired", lambda e: asyncio.ensure_future(answer(e, reply)))
                cdp.on("Fetch.requestPaused", lambda e: asyncio.ensure_future(pass_on(e)))
                await cdp.send("Fetch.enable", {"handleAuthRequests": True, "patterns": [{"urlPattern": "*"}]})
                response = await page.goto(url)
                assert response is not None and response.status == 401, response
                challenge = await response.header_value("www-authenticate")
                assert challenge and challenge.startswith("Basic "), challenge
                assert len(prompts) == 1, prompts
                assert prompts[0]["scheme"].lower() == "basic", prompts
                assert prompts[0]["origin"] == url.rstrip("/"), prompts
                assert await page.locator("#stations").count() == 0
                # Answered with the token (any username), the same prompt opens the page.
                reply = {"response": "ProvideCredentials", "username": "anyone", "password": ADMIN_TOKEN}
                response = await page.goto(url)
                assert response is not None and response.status == 200, response
                await expect(page.locator("#stations")).to_have_count(1)
                assert len(prompts) == 2, prompts
            finally:
                await context.close()

            # A wrong token is refused again.
            context = await browser_context(
                pw, tmp_path / "profile-wrong", http_credentials={"username": "op", "password": "nope"}
            )
            try:
                page = await context.new_page()
                response = await page.goto(url)
                assert response is not None and response.status == 401, response
                assert await page.locator("#stations").count() == 0
            finally:
                await context.close()

            # The operator answers the prompt with the token: the page loads, its script too, and
            # its refresh (same credentials) shows a station that connects afterwards.
            context = await browser_context(
                pw, tmp_path / "profile-operator", http_credentials={"username": "operator", "password": ADMIN_TOKEN}
            )
            try:
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                response = await page.goto(url)
                assert response is not None and response.status == 200, response
                await expect(page.locator("#attention h2")).to_have_text("Attention")
                await expect(page.locator("#updated")).to_contain_text("updated")
                async with charge_point(d, "PY201", "ocpp2.0.1", Station201) as cp201:
                    await boot201(cp201)
                    s201 = page.locator('#stations [data-station="PY201"]')
                    await expect(s201).to_contain_text("online", timeout=WAIT_MS)
                    await expect(s201.locator("tr", has_text="Available")).to_contain_text("AVAILABLE")
                await expect(page.locator("#updated")).not_to_contain_text("refresh failed")
                assert not errors, errors
            finally:
                await context.close()

    run(scenario(), timeout=120)
