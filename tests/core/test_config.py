"""Config loading: every rule has a bad file in testdata/config and an exact message."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_helpers import make_registry

from micboard_exporter.config import load_config, parse_config
from micboard_exporter.errors import ConfigErrors

DATA = Path(__file__).parent / "testdata" / "config"
BAD_FILES = sorted(DATA.glob("bad-*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: PATH: REASON'"
    return first.removeprefix("# expect: ").replace("{dir}", str(path.parent.resolve()))


def test_every_rule_has_a_bad_file() -> None:
    assert len(BAD_FILES) >= 20


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_config_is_rejected_with_file_path_and_reason(path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(path, make_registry(), environ={})
    messages = [str(e) for e in info.value.errors]
    expected = _expected(path)
    where, _, reason = expected.partition(": ")
    full = f"{path}: {where}: {reason}" if where else f"{path}: {reason}"
    assert full in messages, f"expected {full!r} among {messages!r}"


def test_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "config.example.yaml", make_registry())
    assert [d.id for d in config.devices] == ["demo-stage-left", "demo-stage-right", "demo-flaky"]
    assert config.poll.interval == 5.0
    assert config.poll.breaker.max_interval == 300.0
    left = config.devices[0]
    assert left.labels == {"room": "main-hall"}
    assert left.channels[1].slot == 1 and left.channels[1].name == "Pastor Dan"
    # Plugin defaults are merged under device options.
    assert left.options["drain_speed"] == 30 and left.options["seed"] == 1


def test_defaults_and_durations() -> None:
    config = parse_config("mem.yaml", "poll: {interval: 1h30m, timeout: 750ms}\n", make_registry())
    assert config.poll.interval == 5400.0
    assert config.poll.timeout == 0.75
    assert config.listen == ":9798"
    assert config.battery.low.ratio == 0.25 and config.battery.critical.bars == 1
    assert not config.probe.enabled


def test_empty_file_is_an_empty_config() -> None:
    config = parse_config("empty.yaml", "", make_registry())
    assert config.devices == ()


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "poll: {interval: soon}\n"
        "devices:\n"
        "  - {id: a, plugin: nope, host: 127.0.0.1}\n"
        "  - {id: a, plugin: synthetic, host: 127.0.0.1}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path, make_registry())
    paths = [e.path for e in info.value.errors]
    assert paths == ["devices[0].plugin", "devices[1].id", "poll.interval"]


def test_secret_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("from-a-file\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(
        "devices:\n"
        "  - {id: a, plugin: secretive, host: 127.0.0.1, options: {password_env: RX_PW}}\n"
        "  - {id: b, plugin: secretive, host: 127.0.0.2, options: {password_file: pw.txt}}\n",
        encoding="utf-8",
    )
    config = load_config(path, make_registry(), environ={"RX_PW": "from-the-env"})
    a, b = config.devices
    assert a.secret("password") is not None and a.secret("password").reveal() == "from-the-env"  # type: ignore[union-attr]
    assert b.secret("password").reveal() == "from-a-file"  # type: ignore[union-attr]
    # Neither repr nor str shows the value.
    for dev in config.devices:
        assert "from-" not in repr(dev) and "from-" not in str(dev.secrets)


def test_secret_value_never_in_error_messages(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "devices:\n"
        "  - {id: a, plugin: secretive, host: 127.0.0.1, options: {password: sup3r-s3cret}}\n"
        "  - {id: b, plugin: secretive, host: 127.0.0.1, options: {password_env: 12}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path, make_registry(), environ={})
    assert "sup3r-s3cret" not in str(info.value)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigErrors) as info:
        load_config(missing, make_registry())
    assert str(info.value) == f"{missing}: cannot read config file: No such file or directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"listen: ':9798' # caf\xe9\n")
    with pytest.raises(ConfigErrors, match="not UTF-8"):
        load_config(path, make_registry())


def test_checksum_tracks_content() -> None:
    reg = make_registry()
    one = parse_config("a.yaml", "listen: ':1'\n", reg)
    two = parse_config("a.yaml", "listen: ':1'\n", reg)
    three = parse_config("a.yaml", "listen: ':2'\n", reg)
    assert one.checksum == two.checksum != three.checksum
