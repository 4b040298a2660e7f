"""Helpers for the security tests: a throw-away CA, certificates it signs, bcrypt hashes, an in-process exporter."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio
import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from micboard_exporter.app import Exporter
from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot
from micboard_exporter.plugin import Plugin
from micboard_exporter.plugins.synthetic import SyntheticPlugin
from micboard_exporter.registry import PluginRegistry

#: Cost 4 keeps the tests fast; production hashes use 10-12 and the code path is the same.
TEST_COST = 4


def bcrypt_hash(password: str, cost: int = TEST_COST) -> str:
    """A bcrypt hash as ``htpasswd -nbBC`` or the docs' one-liner would write it."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


@dataclass
class Pki:
    """A CA and the PEM files it issued, in one directory."""

    folder: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    @property
    def ca_file(self) -> Path:
        """The CA certificate as PEM."""
        return self.folder / "ca.crt"

    def issue(self, name: str, *, server: bool = True, serial: int | None = None) -> tuple[Path, Path]:
        """Write ``name.crt``/``name.key`` signed by the CA; server certs are valid for 127.0.0.1/localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        cert_path, key_path = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


def make_pki(folder: Path, name: str = "Test CA") -> Pki:
    """A fresh self-signed CA in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pki = Pki(folder, key, cert)
    pki.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pki


class RecordingPlugin(Plugin):
    """Records the host it was asked to reach (to check /probe pinning); with option ``hang`` never answers."""

    name = "recording"
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {"hang": {"type": "boolean"}}}
    hosts: ClassVar[list[str]] = []

    async def poll(self, device: DeviceConfig) -> DeviceSnapshot:
        """Record the host and return a one-channel snapshot (or hang)."""
        RecordingPlugin.hosts.append(device.host)
        if device.options.get("hang"):
            await anyio.sleep_forever()
        return DeviceSnapshot(device_id=device.id, manufacturer="Test", model="T1", firmware="1", serial="S",
                              host=device.host, channels=(ChannelSnapshot(number=1, name="ch"),))


def registry() -> PluginRegistry:
    """synthetic + recording."""
    return PluginRegistry.from_classes(SyntheticPlugin, RecordingPlugin)


@asynccontextmanager
async def exporter_running(config_text: str, tmp_path: Path, *, web_config: Path | None = None,
                           plugins: PluginRegistry | None = None) -> AsyncIterator[Exporter]:
    """Start an exporter on 127.0.0.1:0 with an optional web config; yield it once the first cycle is done."""
    path = tmp_path / "config.yaml"
    path.write_text(config_text, encoding="utf-8")
    exporter = Exporter(path, plugins or registry(), listen="127.0.0.1:0", environ={}, web_config_file=web_config)
    async with anyio.create_task_group() as tg:
        await exporter.apply(exporter.load())
        await tg.start(lambda task_status: exporter.run(handle_signals=False, task_status=task_status))
        with anyio.fail_after(10):
            while not exporter.store.ready:
                await anyio.sleep(0.01)
        yield exporter
        tg.cancel_scope.cancel()


def port_of(exporter: Exporter) -> int:
    """The bound port of a running exporter."""
    assert exporter.http is not None
    return exporter.http.port


def client(exporter: Exporter, *, https: bool = False, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client for the exporter's URL (trust_env off: no proxy or CA bundle from the host)."""
    scheme = "https" if https else "http"
    return httpx.AsyncClient(base_url=f"{scheme}://127.0.0.1:{port_of(exporter)}", timeout=10, trust_env=False,
                             **kwargs)
