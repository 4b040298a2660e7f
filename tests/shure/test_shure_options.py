"""Per-device options of the shure plugin: the schema the config loader applies, and their meaning."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import ProtocolError
from micboard_exporter.plugins.shure import DEFAULT_PORT, ShurePlugin, settings_for
from micboard_exporter.plugins.shure.codec import Family

DOC = Path(__file__).resolve().parents[2] / "docs" / "devices" / "shure.md"


def _validate(options: dict[str, Any]) -> None:
    jsonschema.validate(options, dict(ShurePlugin.options_schema))


def test_every_example_in_the_device_guide_is_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    config = yaml.safe_load(blocks[0])
    _validate(dict(config["defaults"]["shure"]))
    devices = config["devices"]
    assert len(devices) == 6
    for dev in devices:
        _validate(dict(dev.get("options", {})))


@pytest.mark.parametrize(
    "options",
    [{"family": "ulx-d"}, {"meter_rate": "fast"}, {"meter_rate": 1}, {"model": ""}, {"password": "x"}],
)
def test_bad_options_are_rejected_by_the_schema(options: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate(options)


def test_settings_from_options() -> None:
    dev = DeviceConfig(
        id="rx", plugin="shure", host="10.0.0.5",
        options={"family": "uhfr", "model": "UR4S", "meter_rate": "100ms", "reply_timeout": "500ms"},
    )
    s = settings_for(dev)
    assert (s.host, s.port, s.family, s.model) == ("10.0.0.5", DEFAULT_PORT, Family.UHFR, "UR4S")
    assert (s.meter_rate_ms, s.reply_timeout) == (100, 0.5)
    auto = settings_for(DeviceConfig(id="rx", plugin="shure", host="h", port=3000, options={"meter_rate": "0"}))
    assert (auto.family, auto.port, auto.meter_rate_ms) == (None, 3000, 0)


@pytest.mark.anyio
async def test_unusable_options_fail_the_poll_with_a_protocol_error_naming_them() -> None:
    plugin = ShurePlugin()
    dev = DeviceConfig(id="rx", plugin="shure", host="127.0.0.1", port=1, options={"reply_timeout": "0"})
    with pytest.raises(ProtocolError, match=r"127\.0\.0\.1:1: options: reply_timeout"):
        await plugin.poll(dev)
    await plugin.aclose()
