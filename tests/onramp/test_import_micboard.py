"""``import-micboard``: Micboard / Wirelessboard config.json files become configs the exporter accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from micboard_exporter.cli import main
from micboard_exporter.config import parse_config
from micboard_exporter.registry import PluginRegistry

FIXTURES = Path(__file__).parent / "fixtures"


def _load(text: str) -> Any:
    config = parse_config("imported.yaml", text, PluginRegistry.discover(), environ={})
    return config


def test_mixed_rack_converts_to_one_device_per_receiver(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-micboard", str(FIXTURES / "micboard_church.json")]) == 0
    out, err = capsys.readouterr()
    config = _load(out)
    by_host = {d.host: d for d in config.devices}
    assert sorted(by_host) == ["10.0.20.11", "10.0.20.12", "10.0.20.13", "10.0.20.14", "10.0.20.15"]
    assert {h: d.options["family"] for h, d in by_host.items()} == {
        "10.0.20.11": "ulxd", "10.0.20.12": "qlxd", "10.0.20.13": "uhfr", "10.0.20.14": "axtd", "10.0.20.15": "p10t",
    }
    assert all(d.plugin == "shure" for d in config.devices)
    ulxd = by_host["10.0.20.11"]
    assert ulxd.id == "ulxd-10-0-20-11"
    assert {n: (c.slot, c.name) for n, c in ulxd.channels.items()} == {
        1: (1, "HH01 Pastor Dave"), 2: (2, "HH02 Worship Lead"), 3: (3, "BP03"), 4: (4, None),
    }
    # AD4Q with only channels 1 and 3 in Micboard: exactly those are carried over.
    assert {n: c.slot for n, c in by_host["10.0.20.14"].channels.items()} == {1: 8, 3: 9}
    # Groups become the device's `group` label; the lower group number wins where a receiver spans two.
    assert {h: d.labels.get("group") for h, d in by_host.items()} == {
        "10.0.20.11": "Stage", "10.0.20.12": "Stage", "10.0.20.13": "Choir", "10.0.20.14": "Band",
        "10.0.20.15": "Band",
    }
    # Offline slots are documented comments, never devices.
    assert "#   slot 11: offline (BP11 Guest)" in out
    assert "#   slot 12: offline" in out
    assert "5 receivers, 10 channels, 2 offline slots kept as comments" in err


def test_what_is_not_carried_over_is_listed_by_slot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-micboard", str(FIXTURES / "micboard_church.json")]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "not carried over:" in line]
    assert any("slot 9: key 'chan_name_raw'" in n for n in notes)
    assert any("slot 2: also in group 'Band'" in n and "('Stage')" in n for n in notes)
    assert any("slot 13: listed in group 'Choir' but not defined" in n for n in notes)
    assert len(notes) == 3


def test_wirelessboard_file_to_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.yaml"
    assert main(["import-micboard", str(FIXTURES / "wirelessboard_small.json"), "-o", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"written to {target}" in err
    assert main(["check-config", str(target)]) == 0
    config = _load(target.read_text(encoding="utf-8"))
    assert [(d.id, d.options["family"], dict(d.labels)) for d in config.devices] == [
        ("qlxd-192-0-2-21", "qlxd", {}), ("qlxd-192-0-2-22", "qlxd", {}), ("ulxd-192-0-2-23", "ulxd", {}),
    ]
    assert config.devices[2].channels[2].name == "HH03 Panel 2"


def test_existing_output_is_not_overwritten_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("keep me\n", encoding="utf-8")
    source = str(FIXTURES / "wirelessboard_small.json")
    assert main(["import-micboard", source, "-o", str(target)]) == 1
    assert "exists; use --force" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert main(["import-micboard", source, "-o", str(target), "--force"]) == 0
    assert _load(target.read_text(encoding="utf-8")).devices


def test_smart_quotes_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-micboard", str(FIXTURES / "bad_smart_quotes.json")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "invalid JSON at line 4, column 6" in err
    assert "typographic quote '\u201c' (U+201C)" in err
    assert "word processor" in err and "straight double quote" in err


def test_trailing_comma_gets_line_column_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-micboard", str(FIXTURES / "bad_trailing_comma.json")]) == 1
    err = capsys.readouterr().err
    assert "invalid JSON at line 4, column 3" in err
    assert "trailing comma" in err


def test_every_bad_slot_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-micboard", str(FIXTURES / "bad_slots.json")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    problems = [line.strip() for line in err.splitlines()[1:]]
    assert "cannot convert (6 problems)" in err.splitlines()[0]
    assert problems == [
        "slots[1] (slot 2): unknown type 'ulx-d'; Micboard types are ulxd, qlxd, axtd, uhfr, p10t, slxd, offline",
        "slots[2] (slot 3): channel 2 is out of range for type qlxd (1-1)",
        "slots[3] (slot 4): channel 5 is out of range for type ulxd (1-4, the largest model ULXD4Q)",
        "slots[4] (slot 1): duplicate slot number 1 (also slots[0])",
        "slots[5] (slot 6): \"ip\" '10.0.20.300' is not an IP address or host name",
        "slots[6] (slot 7): 10.0.20.11 is type axtd here but ulxd in slot 1; one address is one receiver",
    ]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("[]", "the top level must be a JSON object"),
        ('{"port": 8058}', "no \"slots\" list"),
        ('{"slots": [{"slot": "1", "ip": "10.0.0.1", "channel": 1, "type": "ulxd"}]}',
         "slots[0]: \"slot\" must be a whole number 1-9999, got '1'"),
        ('{"slots": [{"slot": 1, "ip": "10.0.0.1", "type": "uhfr"}]}',
         "slots[0] (slot 1): channel None is out of range for type uhfr (1-2, the largest model UR4D)"),
        ('{"slots": [], "groups": {"title": "x"}}', "\"groups\" must be a list"),
    ],
)
def test_shape_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(doc, encoding="utf-8")
    assert main(["import-micboard", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_byte_order_mark_and_empty_slots_are_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"slots": [{"slot": 4, "type": "offline", "extended_name": "Spare"}]}')
    assert main(["import-micboard", str(path)]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == {"devices": []}
    assert "#   slot 4: offline (Spare)" in out
    assert _load(out).devices == ()


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-micboard", str(tmp_path / "nope.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
