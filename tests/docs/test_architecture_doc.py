"""docs/architecture.md's module map covers every module of the package and names only real ones."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "micboard_exporter"
DOC = REPO / "docs" / "architecture.md"


def _module_map() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return [name for row in re.findall(r"^\| (.+?) \|", table, re.M) for name in re.findall(r"`([^`]+)`", row)]


def test_every_module_is_in_the_map() -> None:
    listed = _module_map()
    covered: set[Path] = set()
    for entry in listed:
        matches = list(PACKAGE.glob(entry.rstrip("/")))
        assert matches, f"module map names {entry!r}, which does not exist"
        covered.update(matches)
    for path in sorted(PACKAGE.glob("*.py")) + sorted(PACKAGE.glob("simulators/*.py")):
        if path.name == "__init__.py":
            continue
        assert path in covered, f"{path.relative_to(PACKAGE)} is missing from the module map in docs/architecture.md"
    for path in PACKAGE.glob("plugins/*"):
        if path.name not in ("__init__.py", "__pycache__"):
            assert path in covered, f"plugins/{path.name} is missing from the module map"


def test_internal_links_point_at_sections() -> None:
    text = DOC.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in anchors, anchor
