#!/usr/bin/env python3
"""Copy the generated alert rules, dashboards and config schema into the Helm chart.

A chart can only read files inside itself (``.Files.Get``), so the PrometheusRule and the dashboard
ConfigMaps are built from copies: ``alerts/micboard.rules.yml`` -> ``files/micboard.rules.yml`` and
``dashboards/*.json`` -> ``files/dashboards/``. The exporter's config schema
(``micboard_exporter/config.schema.json``) is embedded as the ``config`` property of the chart's
``values.schema.json``, so helm rejects a broken ``config:`` value at install time instead of the pod
crash-looping. Run this after regenerating rules, dashboards or the schema; ``--check`` only reports drift
(exit 1) and is what ``tests/deploy`` runs, so a stale copy fails CI.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_FILES = REPO_ROOT / "deploy" / "helm" / "micboard-exporter" / "files"
CONFIG_SCHEMA = Path("micboard_exporter") / "config.schema.json"
#: Where the embedded config schema lives inside values.schema.json (its internal $refs are rebased here).
CONFIG_POINTER = "#/properties/config"


@dataclass(frozen=True)
class Plan:
    """What a sync would do: files to copy (source, destination), stale copies to delete, and the values
    schema to rewrite (path, new text) when its embedded config schema is out of date."""

    copies: tuple[tuple[Path, Path], ...]
    deletions: tuple[Path, ...]
    schema_update: tuple[Path, str] | None = None

    @property
    def in_sync(self) -> bool:
        return not self.copies and not self.deletions and self.schema_update is None


def embed_config_schema(config_schema: dict[str, Any]) -> dict[str, Any]:
    """The exporter's config schema as a subschema of the chart's values schema.

    ``$schema`` and ``$id`` only belong at a document's root (an ``$id`` would change the base that the
    other references resolve against), and ``#/$defs/x`` references are rebased to where the subschema sits.
    """

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rebase(v) for k, v in node.items() if k not in ("$schema", "$id")}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                out["$ref"] = CONFIG_POINTER + ref[1:]
            return out
        if isinstance(node, list):
            return [rebase(v) for v in node]
        return node

    embedded: dict[str, Any] = rebase(config_schema)
    return embedded


def _schema_update(repo_root: Path, chart_files: Path) -> tuple[Path, str] | None:
    source = repo_root / CONFIG_SCHEMA
    values_schema_path = chart_files.parent / "values.schema.json"
    if not source.is_file() or not values_schema_path.is_file():
        return None
    current = values_schema_path.read_text()
    values_schema = json.loads(current)
    values_schema["properties"]["config"] = embed_config_schema(json.loads(source.read_text()))
    wanted = json.dumps(values_schema, indent=2) + "\n"
    return None if wanted == current else (values_schema_path, wanted)


def plan(repo_root: Path = REPO_ROOT, chart_files: Path = CHART_FILES) -> Plan:
    """Compare the sources with the chart's copies, byte for byte."""
    pairs: list[tuple[Path, Path]] = []
    deletions: list[Path] = []

    rules_src = repo_root / "alerts" / "micboard.rules.yml"
    rules_dst = chart_files / "micboard.rules.yml"
    if rules_src.is_file():
        pairs.append((rules_src, rules_dst))
    elif rules_dst.exists():
        # The source went away: a copy left behind would keep shipping rules nobody maintains.
        deletions.append(rules_dst)

    dash_src_dir = repo_root / "dashboards"
    dash_dst_dir = chart_files / "dashboards"
    sources = sorted(dash_src_dir.glob("*.json")) if dash_src_dir.is_dir() else []
    wanted = {src.name for src in sources}
    pairs.extend((src, dash_dst_dir / src.name) for src in sources)
    if dash_dst_dir.is_dir():
        deletions.extend(p for p in sorted(dash_dst_dir.glob("*.json")) if p.name not in wanted)

    copies = tuple(
        (src, dst) for src, dst in pairs if not dst.is_file() or not filecmp.cmp(src, dst, shallow=False)
    )
    return Plan(copies=copies, deletions=tuple(deletions), schema_update=_schema_update(repo_root, chart_files))


def apply(todo: Plan) -> None:
    """Carry out a plan."""
    for src, dst in todo.copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for path in todo.deletions:
        path.unlink()
    if todo.schema_update is not None:
        path, text = todo.schema_update
        path.write_text(text)


def describe(todo: Plan, root: Path = REPO_ROOT) -> list[str]:
    """One line per pending change, with paths relative to the repository."""
    lines = [f"copy {src.relative_to(root)} -> {dst.relative_to(root)}" for src, dst in todo.copies]
    lines += [f"delete {path.relative_to(root)}" for path in todo.deletions]
    if todo.schema_update is not None:
        lines.append(f"embed {CONFIG_SCHEMA} -> {todo.schema_update[0].relative_to(root)} (properties.config)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift and exit 1 instead of fixing it")
    args = parser.parse_args(argv)
    todo = plan()
    for line in describe(todo):
        sys.stderr.write(("out of date: " if args.check else "") + line + "\n")
    if args.check:
        if not todo.in_sync:
            sys.stderr.write("run deploy/helm/sync_files.py to update the chart's copies\n")
        return 0 if todo.in_sync else 1
    apply(todo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
