"""A secret from the config must never appear in logs, errors, the landing page, /metrics or /probe."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from core_helpers import SecretivePlugin
from exporter_harness import running_exporter

from micboard_exporter.cli import main

pytestmark = pytest.mark.anyio

WRONG = "wr0ng-Pa55-0n-purpose"
RIGHT = "c0rrect-horse"


async def test_secret_nowhere_in_any_output(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "pw.txt").write_text(WRONG + "\n")
    config = (
        "poll: {interval: 100ms, timeout: 1s}\n"
        "probe: {allowed_targets: ['127.0.0.0/8']}\n"
        "defaults: {secretive: {password_env: GOOD_PW}}\n"
        "devices:\n"
        "  - {id: wrong-env, plugin: secretive, host: 127.0.0.1, options: {password_env: BAD_PW}}\n"
        "  - {id: wrong-file, plugin: secretive, host: 127.0.0.2, options: {password_file: pw.txt}}\n"
        "  - {id: right, plugin: secretive, host: 127.0.0.3}\n"
    )
    caplog.set_level(logging.DEBUG)
    async with running_exporter(config, tmp_path, environ={"BAD_PW": WRONG, "GOOD_PW": RIGHT}) as (exp, client):
        outputs = {
            "metrics": (await client.get("/metrics")).text,
            "landing": (await client.get("/")).text,
            "probe": (await client.get("/probe?target=127.0.0.1&plugin=secretive")).text,
            "probe-bad": (await client.get("/probe?target=10.9.9.9&plugin=secretive")).text,
        }
        statuses = {d.device_id: d for d in exp.store.devices()}
    # The plugin really got the secrets, and failed on the wrong ones with an auth error.
    assert statuses["right"].up
    assert not statuses["wrong-env"].up and "password rejected" in (statuses["wrong-env"].last_error or "")
    assert any("<redacted from env:BAD_PW>" in s for s in SecretivePlugin.seen)
    outputs["logs"] = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    outputs["errors"] = "\n".join(d.last_error or "" for d in statuses.values())
    for name, text in outputs.items():
        assert WRONG not in text, f"secret leaked into {name}"
        assert RIGHT not in text, f"secret leaked into {name}"
    assert "secretive" in outputs["landing"]


def test_secret_not_in_check_config_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core_helpers import make_registry

    monkeypatch.setattr("micboard_exporter.cli.PluginRegistry.discover", staticmethod(make_registry))
    bad = tmp_path / "c.yaml"
    bad.write_text(
        "devices:\n"
        f"  - {{id: a, plugin: secretive, host: 127.0.0.1, options: {{password: {WRONG}}}}}\n"
        "  - {id: b, plugin: secretive, host: nope nope, options: {password_env: 5}}\n"
    )
    assert main(["check-config", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "devices[0].options.password: secrets are not written in the config" in captured.err
    assert WRONG not in captured.out + captured.err
