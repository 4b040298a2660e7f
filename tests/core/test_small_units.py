"""Units the rest of the core leans on: durations, sentinels, unit helpers, logging, plugin loading."""

from __future__ import annotations

import io
import json
import logging
from importlib.metadata import EntryPoint

import pytest

from micboard_exporter.durations import format_duration, parse_duration
from micboard_exporter.logsetup import setup_logging
from micboard_exporter.model import clamp_ratio, khz_to_hz, known, mhz_to_hz, minutes_to_seconds, percent_to_ratio
from micboard_exporter.registry import ENTRY_POINT_GROUP, PluginRegistry, _load


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("1d", 86400.0),
    (" 5s ", 5.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 s", "s", "5sec", "-1s", "1h 30m", "5s5"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0"), (0.25, "250ms"), (5, "5s"), (120, "2m"), (7200, "2h"),
                                                (90, "90s")])
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("value", "sentinels", "expected"), [
    (255, (255,), None), (65535, (65532, 65533, 65534, 65535), None), (42, (255,), 42),
    ("UNKN", ("UNKN", "UNKNOWN"), None), ("unkn ", ("UNKN",), None), ("  ", (), None), ("Vocal", ("UNKN",), "Vocal"),
    (None, (), None), (False, (0,), False), (0, (0,), None), (-1, (-1,), None),
])
def test_known_turns_sentinels_into_none(value: object, sentinels: tuple[object, ...], expected: object) -> None:
    assert known(value, sentinels) == expected


def test_unit_helpers() -> None:
    assert mhz_to_hz(470.125) == 470_125_000.0
    assert khz_to_hz(518_200) == 518_200_000.0
    assert percent_to_ratio(55) == 0.55
    assert percent_to_ratio(104) == 1.0
    assert clamp_ratio(-0.2) == 0.0
    assert minutes_to_seconds(90) == 5400.0


def test_json_logs_carry_structured_fields() -> None:
    stream = io.StringIO()
    setup_logging("debug", "json", stream)
    try:
        logging.getLogger("micboard_exporter.events").info("transmitter_off on rx", extra={"device": "rx",
                                                                                          "channel": "2"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("micboard_exporter.poller").exception("plugin crashed")
    finally:
        setup_logging("warning", "text")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    assert first["msg"] == "transmitter_off on rx" and first["device"] == "rx" and first["level"] == "info"
    assert second["level"] == "error" and "RuntimeError: boom" in second["exception"]


def test_text_logs_are_one_line_with_fields() -> None:
    stream = io.StringIO()
    setup_logging("info", "text", stream)
    try:
        logging.getLogger("micboard_exporter.events").info("battery_low on rx", extra={"device": "rx"})
        logging.getLogger("httpx").info("HTTP Request: GET https://x")  # quietened
    finally:
        setup_logging("warning", "text")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("INFO  events: battery_low on rx device=rx")


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_plugin_that_fails_to_import_is_reported() -> None:
    entry = _load(_ep("vendor", "micboard_vendor_that_does_not_exist:Plugin"))
    assert not entry.loaded
    assert entry.error == "ModuleNotFoundError: No module named 'micboard_vendor_that_does_not_exist'"


def test_entry_point_that_is_not_a_plugin_is_reported() -> None:
    entry = _load(_ep("notaplugin", "json:JSONDecoder"))
    assert not entry.loaded and "is not a micboard_exporter.plugin.Plugin subclass" in (entry.error or "")


def test_entry_point_name_must_match_the_plugin_name() -> None:
    entry = _load(_ep("other-name", "micboard_exporter.plugins.synthetic:SyntheticPlugin"))
    assert not entry.loaded and "declares name 'synthetic'" in (entry.error or "")


def test_failed_plugin_does_not_stop_the_others() -> None:
    registry = PluginRegistry([_load(_ep("vendor", "no_such_module:P")),
                               _load(_ep("synthetic", "micboard_exporter.plugins.synthetic:SyntheticPlugin"))])
    assert registry.available() == ["synthetic"]
    from micboard_exporter.errors import PluginLoadError

    with pytest.raises(PluginLoadError, match="installed but failed to load: ModuleNotFoundError"):
        registry.get("vendor")
    with pytest.raises(PluginLoadError, match="unknown plugin 'acme'; available plugins: synthetic"):
        registry.get("acme")


def test_installed_registry_has_the_builtin_plugins() -> None:
    registry = PluginRegistry.discover()
    assert {"synthetic", "shure", "sennheiser-sscv2", "sennheiser-ssc", "sennheiser-mcp"} <= set(registry.available())
    assert registry.entries["shure"].distribution == "micboard-exporter"
