"""The chart's copies of the generated alert rules and dashboards stay identical to their sources.

``deploy/helm/sync_files.py`` makes the copies; the first test fails CI whenever someone regenerates
``alerts/micboard.rules.yml`` or ``dashboards/*.json`` and forgets to run it. The others exercise the script
itself on a scratch tree, so a script that silently did nothing could not pass.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from chart_support import CHART_DIR, REPO_ROOT

SCRIPT = REPO_ROOT / "deploy" / "helm" / "sync_files.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_files", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sync_files = _load_script()


def test_chart_copies_match_the_generated_sources() -> None:
    todo = sync_files.plan()
    assert todo.in_sync, "chart copies are stale, run deploy/helm/sync_files.py:\n" + "\n".join(
        sync_files.describe(todo)
    )
    rules = REPO_ROOT / "alerts" / "micboard.rules.yml"
    copy = CHART_DIR / "files" / "micboard.rules.yml"
    assert rules.is_file() == copy.is_file()
    if rules.is_file():
        assert copy.read_bytes() == rules.read_bytes()
    sources = {p.name: p.read_bytes() for p in (REPO_ROOT / "dashboards").glob("*.json")}
    copies = {p.name: p.read_bytes() for p in (CHART_DIR / "files" / "dashboards").glob("*.json")}
    assert copies == sources


def test_check_mode_is_what_ci_can_call() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A scratch repository with rules and two dashboards, and an empty chart files/ dir."""
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "micboard.rules.yml").write_text("groups: []\n")
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "overview.json").write_text('{"uid": "a"}\n')
    (tmp_path / "dashboards" / "wall.json").write_text('{"uid": "b"}\n')
    (tmp_path / "dashboards" / "generate.py").write_text("# not a dashboard\n")
    files = tmp_path / "deploy" / "helm" / "micboard-exporter" / "files"
    files.mkdir(parents=True)
    return tmp_path, files


def test_sync_copies_then_reports_nothing_to_do(tree: tuple[Path, Path]) -> None:
    root, files = tree
    todo = sync_files.plan(root, files)
    assert not todo.in_sync
    assert sorted(sync_files.describe(todo, root)) == [
        "copy alerts/micboard.rules.yml -> deploy/helm/micboard-exporter/files/micboard.rules.yml",
        "copy dashboards/overview.json -> deploy/helm/micboard-exporter/files/dashboards/overview.json",
        "copy dashboards/wall.json -> deploy/helm/micboard-exporter/files/dashboards/wall.json",
    ]
    sync_files.apply(todo)
    assert (files / "micboard.rules.yml").read_text() == "groups: []\n"
    assert sorted(p.name for p in (files / "dashboards").iterdir()) == ["overview.json", "wall.json"]
    assert sync_files.plan(root, files).in_sync


def test_config_schema_is_embedded_with_references_rebased() -> None:
    source: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.invalid/config.schema.json",
        "type": "object",
        "properties": {"devices": {"type": "array", "items": {"$ref": "#/$defs/device"}}},
        "$defs": {"device": {"type": "object", "properties": {"port": {"$ref": "#/$defs/port"}}},
                  "port": {"type": "integer"}},
    }
    embedded = sync_files.embed_config_schema(source)
    assert "$schema" not in embedded
    assert "$id" not in embedded
    assert embedded["properties"]["devices"]["items"] == {"$ref": "#/properties/config/$defs/device"}
    assert embedded["$defs"]["device"]["properties"]["port"] == {"$ref": "#/properties/config/$defs/port"}
    assert source["properties"]["devices"]["items"] == {"$ref": "#/$defs/device"}, "the source is not modified"


def test_sync_embeds_the_config_schema_into_the_values_schema(tree: tuple[Path, Path]) -> None:
    root, files = tree
    (root / "micboard_exporter").mkdir()
    (root / "micboard_exporter" / "config.schema.json").write_text('{"type": "object", "additionalProperties": false}')
    values_schema = files.parent / "values.schema.json"
    values_schema.write_text('{"type": "object", "properties": {"config": {"type": "object"}, "x": {}}}\n')
    todo = sync_files.plan(root, files)
    assert "embed micboard_exporter/config.schema.json -> deploy/helm/micboard-exporter/values.schema.json " \
        "(properties.config)" in sync_files.describe(todo, root)
    sync_files.apply(todo)
    assert json.loads(values_schema.read_text())["properties"] == {
        "config": {"type": "object", "additionalProperties": False}, "x": {},
    }
    assert sync_files.plan(root, files).in_sync


def test_sync_notices_edits_and_removes_stale_copies(tree: tuple[Path, Path]) -> None:
    root, files = tree
    sync_files.apply(sync_files.plan(root, files))
    # Same size, different bytes: a size/mtime comparison would miss it.
    (root / "dashboards" / "wall.json").write_text('{"uid": "c"}\n')
    (root / "dashboards" / "overview.json").unlink()
    (root / "alerts" / "micboard.rules.yml").unlink()
    todo = sync_files.plan(root, files)
    assert sorted(sync_files.describe(todo, root)) == [
        "copy dashboards/wall.json -> deploy/helm/micboard-exporter/files/dashboards/wall.json",
        "delete deploy/helm/micboard-exporter/files/dashboards/overview.json",
        "delete deploy/helm/micboard-exporter/files/micboard.rules.yml",
    ]
    sync_files.apply(todo)
    assert not (files / "micboard.rules.yml").exists()
    assert [p.name for p in (files / "dashboards").iterdir()] == ["wall.json"]
    assert (files / "dashboards" / "wall.json").read_text() == '{"uid": "c"}\n'
    assert sync_files.plan(root, files).in_sync
