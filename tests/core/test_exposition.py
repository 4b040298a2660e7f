"""The text exposition: escaping, grouping, no duplicates, and promtool's verdict on a real scrape."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess
from types import MappingProxyType

import pytest
from core_helpers import snapshot

from micboard_exporter.catalogue import CATALOGUE
from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.exposition import escape_label_value, format_value
from micboard_exporter.model import ChannelSnapshot, DeviceSnapshot
from micboard_exporter.selfmetrics import SelfMetrics
from micboard_exporter.state import StateStore

TRICKY = 'Lead "Vox" \\ back\nslash'


def tricky_store() -> StateStore:
    store = StateStore()
    devices = [DeviceConfig(id=f"rx-{i}", plugin="scripted", host="127.0.0.1",
                            labels=MappingProxyType({"room": 'Hall "A"'})) for i in range(3)]
    store.set_devices(devices)
    for d in devices:
        store.record_success(d.id, dataclasses.replace(snapshot(d.id, name=TRICKY), firmware="2.7\\6"))
    return store


def scrape_text() -> str:
    return tricky_store().scrape() + SelfMetrics().render().decode()


def test_label_values_are_escaped() -> None:
    assert escape_label_value(TRICKY) == 'Lead \\"Vox\\" \\\\ back\\nslash'
    text = tricky_store().scrape()
    assert 'name="Lead \\"Vox\\" \\\\ back\\nslash"' in text
    assert 'room="Hall \\"A\\""' in text
    assert "\nslash" not in text  # no raw newline inside a sample line


@pytest.mark.parametrize(("value", "text"), [
    (True, "1"), (False, "0"), (3, "3"), (-62.5, "-62.5"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
    (math.nan, "NaN"), (1e-7, "1e-07"),
])
def test_values_formatted_for_the_exposition_format(value: float, text: str) -> None:
    assert format_value(value) == text


def test_each_family_appears_once_and_samples_are_grouped() -> None:
    text = scrape_text()
    types = re.findall(r"^# TYPE (\S+) ", text, flags=re.M)
    assert len(types) == len(set(types)), [t for t in types if types.count(t) > 1]
    # All samples of a family directly follow its own TYPE line (grouping).
    current = None
    seen: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            current = line.split()[2]
            assert current not in seen
            seen.add(current)
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)  # type: ignore[union-attr]
            assert current is not None and name.startswith(current.removesuffix("_total")), (current, line)


def test_every_catalogue_family_has_help_and_type() -> None:
    text = scrape_text()
    for spec in CATALOGUE:
        assert f"# HELP {spec.name} " in text
        assert f"# TYPE {spec.name} {spec.type}" in text


def test_no_timestamps_on_samples() -> None:
    for line in scrape_text().splitlines():
        if line and not line.startswith("#"):
            # name{labels} value — exactly one token after the closing brace (or name).
            tail = line.rsplit("}", 1)[-1].split() if "}" in line else line.split()[1:]
            assert len(tail) == 1, line


def test_device_values_say_they_are_cached() -> None:
    text = scrape_text()
    assert re.search(r"# HELP micboard_transmitter_battery_bars .*[Cc]ached", text)


def test_a_channel_with_everything_unknown_renders_only_identity() -> None:
    store = StateStore()
    store.set_devices([DeviceConfig(id="rx", plugin="x", host="h")])
    store.record_success("rx", DeviceSnapshot(device_id="rx", channels=(ChannelSnapshot(number=1,
                                                                                        transmitter_known=False),)))
    samples = [line for line in store.scrape().splitlines() if line.startswith("micboard_") and 'channel="1"' in line]
    names = sorted({s.split("{")[0] for s in samples})
    assert names == ["micboard_audio_clips_total", "micboard_channel_info", "micboard_rf_dropouts_total"]


def test_promtool_accepts_a_real_scrape(tmp_path: pytest.TempPathFactory) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run `make tools` (Debian package 'prometheus')"
    result = subprocess.run([promtool, "check", "metrics"], input=scrape_text().encode(), capture_output=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""
