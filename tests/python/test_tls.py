"""TLS interop (issue 13): the PyPI `ocpp` package's 1.6 and 2.0.1 charge points over `wss://`
(websockets with an ssl context) on the daemon's `ocpp.tls_listen`, with security profile 2
(TLS + HTTP Basic) and profile 3 (TLS + client certificate whose CN is the station id).
Certificates are made at test time with `cryptography`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from pathlib import Path

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

from bridge_harness import BridgeDaemon, run

PASSWORD = "py-tls-pass"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class Ca:
    def __init__(self, cn: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def leaf(self, cn: str, server: bool, dir: Path, name: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = dir / f"{name}.crt", dir / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return cert_path, key_path


@pytest.fixture
def tls_daemon(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    server_ca = Ca("Py server CA")
    stations_ca = Ca("Py stations CA")
    ca_file = server_ca.write(pki / "server-ca.pem")
    client_ca = stations_ca.write(pki / "stations-ca.pem")
    cert, key = server_ca.leaf("localhost", True, pki, "server")
    stations = ""
    for sid in ("PYTLS2-16", "PYTLS2-201"):
        stations += f'[[stations]]\nid = "{sid}"\nlocation = "LOC1"\npassword = "{PASSWORD}"\nsecurity_profile = 2\n\n'
    for sid in ("PYTLS3-16", "PYTLS3-201"):
        stations += f'[[stations]]\nid = "{sid}"\nlocation = "LOC1"\nsecurity_profile = 3\n\n'
    extra = stations + f'[ocpp.tls]\ncert = "{cert}"\nkey = "{key}"\nclient_ca = "{client_ca}"\n'
    work = tmp_path / "daemon"
    work.mkdir()
    d = BridgeDaemon(work, ocpp_extra='tls_listen = "127.0.0.1:0"', extra=extra)
    d.start()
    d.pki = pki
    d.ca_file = ca_file
    d.stations_ca = stations_ca
    try:
        yield d
    finally:
        code = d.stop()
        d.kill()
    assert code == 0, f"daemon exited with {code} on SIGTERM\n{d.log_tail()}"


def ssl_context(d, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d.ca_file))
    if client:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def wss_url(d, sid: str, password: str | None = None) -> str:
    auth = f"{sid}:{password}@" if password else ""
    return f"wss://{auth}{d.ready['ocpp_tls']}/ocpp/{sid}"


@contextlib.asynccontextmanager
async def tls_charge_point(url, subprotocol, cls, sid, ctx):
    ws = await websockets.connect(
        url, subprotocols=[subprotocol], ssl=ctx, open_timeout=10, close_timeout=5
    )
    assert ws.subprotocol == subprotocol, ws.subprotocol
    cp = cls(sid, ws, response_timeout=10)
    task = asyncio.create_task(cp.start())
    try:
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await ws.close()
        with contextlib.suppress(BaseException):
            await task


async def boot16(cp):
    boot = await cp.call(
        call16.BootNotification(charge_point_vendor="PyVendor", charge_point_model="PyTLS"),
        suppress=False,
    )
    assert boot.status == "Accepted"
    hb = await cp.call(call16.Heartbeat(), suppress=False)
    assert hb.current_time.endswith("Z")


async def boot201(cp):
    boot = await cp.call(
        call201.BootNotification(
            charging_station={"model": "PyTLS", "vendor_name": "PyVendor"}, reason="PowerUp"
        ),
        suppress=False,
    )
    assert boot.status == "Accepted"
    await cp.call(call201.Heartbeat(), suppress=False)


VERSIONS = [("ocpp1.6", ChargePoint16, boot16, "16"), ("ocpp2.0.1", ChargePoint201, boot201, "201")]


@pytest.mark.parametrize("subprotocol,cls,boot,suffix", VERSIONS, ids=["1.6", "2.0.1"])
def test_profile_2_over_wss_with_the_ocpp_package(tls_daemon, subprotocol, cls, boot, suffix):
    d = tls_daemon
    sid = f"PYTLS2-{suffix}"

    async def scenario():
        async with tls_charge_point(
            wss_url(d, sid, PASSWORD), subprotocol, cls, sid, ssl_context(d)
        ) as cp:
            await boot(cp)
        # A wrong password is refused before the upgrade.
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(
                wss_url(d, sid, "wrong"), subprotocols=[subprotocol], ssl=ssl_context(d),
                open_timeout=10,
            )
        assert refused.value.response.status_code == 401
        # The same station over plain ws: 403.
        with pytest.raises(websockets.exceptions.InvalidStatus) as plain:
            await websockets.connect(
                d.ocpp_url(sid, PASSWORD), subprotocols=[subprotocol], open_timeout=10
            )
        assert plain.value.response.status_code == 403

    run(scenario())
    d.wait_for(f"{sid} booted", lambda: (d.station(sid) or {}).get("vendor") == "PyVendor" or None)


@pytest.mark.parametrize("subprotocol,cls,boot,suffix", VERSIONS, ids=["1.6", "2.0.1"])
def test_profile_3_over_wss_with_a_client_certificate(tls_daemon, subprotocol, cls, boot, suffix):
    d = tls_daemon
    sid = f"PYTLS3-{suffix}"
    own = d.stations_ca.leaf(sid, False, d.pki, sid)
    other = d.stations_ca.leaf("SOMEONE-ELSE", False, d.pki, f"other-{suffix}")

    async def scenario():
        async with tls_charge_point(
            wss_url(d, sid), subprotocol, cls, sid, ssl_context(d, own)
        ) as cp:
            await boot(cp)
        for client in (other, None):
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                await websockets.connect(
                    wss_url(d, sid), subprotocols=[subprotocol], ssl=ssl_context(d, client),
                    open_timeout=10,
                )
            assert refused.value.response.status_code == 403

    run(scenario())
