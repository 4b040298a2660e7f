#!/usr/bin/env python3
"""Copy the generated alert rules and dashboards into the Helm chart's ``files/`` directory.

A chart can only read files inside itself (``.Files.Get``), so the PrometheusRule and the dashboard
ConfigMaps are built from copies: ``alerts/micboard.rules.yml`` -> ``files/micboard.rules.yml`` and
``dashboards/*.json`` -> ``files/dashboards/``. Run this after regenerating rules or dashboards;
``--check`` only reports drift (exit 1) and is what ``tests/deploy`` runs, so a stale copy fails CI.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_FILES = REPO_ROOT / "deploy" / "helm" / "micboard-exporter" / "files"


@dataclass(frozen=True)
class Plan:
    """What a sync would do: files to copy (source, destination) and stale copies to delete."""

    copies: tuple[tuple[Path, Path], ...]
    deletions: tuple[Path, ...]

    @property
    def in_sync(self) -> bool:
        return not self.copies and not self.deletions


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
    return Plan(copies=copies, deletions=tuple(deletions))


def apply(todo: Plan) -> None:
    """Carry out a plan."""
    for src, dst in todo.copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for path in todo.deletions:
        path.unlink()


def describe(todo: Plan, root: Path = REPO_ROOT) -> list[str]:
    """One line per pending change, with paths relative to the repository."""
    lines = [f"copy {src.relative_to(root)} -> {dst.relative_to(root)}" for src, dst in todo.copies]
    lines += [f"delete {path.relative_to(root)}" for path in todo.deletions]
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
