"""docs/plugins.md stays true to the example plugin it teaches from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "plugins.md"
EXAMPLE = REPO / "docs" / "plugin-example"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.M | re.S)


def test_error_mapping_excerpt_is_the_example_code() -> None:
    source = (EXAMPLE / "micboard_example_http" / "__init__.py").read_text(encoding="utf-8")
    excerpt = next(b for b in _blocks("python") if "raise DeviceTimeout" in b)
    for line in excerpt.strip().splitlines():
        assert line.strip() in source, f"guide shows code the example does not have: {line.strip()}"


def test_packaging_excerpt_matches_the_example_pyproject() -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))
    excerpt = tomllib.loads(next(b for b in _blocks("toml") if "entry-points" in b))
    assert excerpt["project"]["name"] == project["project"]["name"]
    assert excerpt["project"]["dependencies"] == project["project"]["dependencies"]
    assert excerpt["project"]["entry-points"] == project["project"]["entry-points"]
    assert list(project["project"]["entry-points"]) == ["micboard_exporter.plugins"]


def test_relative_links_resolve() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        assert (GUIDE.parent / link).exists(), link
    for path in re.findall(r"`((?:tests|docs|micboard_exporter)/[\w./-]+)`", text):
        assert (REPO / path).exists(), path
