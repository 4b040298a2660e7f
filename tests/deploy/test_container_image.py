"""The Dockerfile's install steps, replayed without Docker.

No container engine runs on CI machines, so this test reads the Dockerfile and runs its build stage's own
COPY and RUN steps in a scratch directory: ``$SRC``, ``$WHEELS`` and ``$VENV`` point into it, and pip
installs offline from the wheelhouse that ``deploy/helm/install-tools.sh`` fills. The resulting environment
is exactly what the final stage copies, so running its entry point here proves the image would start. The
final stage's hardening (non-root numeric user, no installer, exposed port, entry point) is checked on the
parsed instructions.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chart_support import INSTALL_HINT, REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
WHEELHOUSE = REPO_ROOT / ".cache" / "wheelhouse"
# The variables the build stage's RUN steps may use for paths; the test points them into a scratch dir.
PATH_VARS = ("SRC", "WHEELS", "VENV")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs, in order (later wins, as in Docker)."""
        result: dict[str, str] = {}
        for arg in self.all("ENV"):
            for item in shlex.split(arg):
                key, _, value = item.partition("=")
                result[key] = value
        return result


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = parts[0]
            for key, value in args.items():
                base = base.replace("${" + key + "}", value)
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, got {keyword}"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> tuple[Stage, Stage]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert len(parsed) == 2, "expected a build stage and a runtime stage"
    build, final = parsed
    assert build.name == "build"
    return build, final


def _no_build_tools(run: str) -> bool:
    words = set(run.replace("&&", " ").split())
    return not words & {"pip", "gcc", "make", "build-essential", "apt-get", "apk", "git"}


def test_image_is_slim_python_311_multi_stage(stages: tuple[Stage, Stage]) -> None:
    build, final = stages
    assert build.base == final.base
    assert final.base.startswith("python:3.11-slim"), final.base
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_runtime_stage_is_hardened(stages: tuple[Stage, Stage]) -> None:
    build, final = stages
    venv = build.env()["VENV"]
    assert final.all("COPY") == [f"--from=build {venv} {venv}"], "the runtime stage gets the venv and nothing else"
    for run in final.all("RUN"):
        assert _no_build_tools(run), f"the runtime stage installs or builds something: {run}"
    [user] = final.all("USER")
    uid, _, gid = user.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it; the same id the chart's securityContext uses.
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert final.instructions.index(("USER", user)) > max(
        i for i, (kw, _) in enumerate(final.instructions) if kw == "RUN"
    ), "everything after USER runs as the exporter"
    assert final.all("EXPOSE") == ["9798"]
    assert json.loads(final.all("ENTRYPOINT")[0]) == ["micboard-exporter"]
    assert json.loads(final.all("CMD")[0]) == ["run", "--config", "/etc/micboard-exporter/config.yaml"]
    assert final.env()["PATH"].startswith(f"{venv}/bin:")


def test_dockerignore_lets_in_exactly_what_the_build_copies(stages: tuple[Stage, Stage]) -> None:
    build, _ = stages
    rules = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allow-list keeps venvs, caches and local configs out of the build context"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {src.rstrip("/") for arg in build.all("COPY") for src in shlex.split(arg)[:-1]}
    assert copied == allowed


@pytest.fixture(scope="module")
def built_venv(stages: tuple[Stage, Stage], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replay the build stage: COPY from the repository, then each RUN under /bin/sh with pip offline."""
    if not any(WHEELHOUSE.glob("*.whl")):
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: {INSTALL_HINT}")
    build, _ = stages
    scratch = tmp_path_factory.mktemp("image")
    declared = build.env()
    paths = {var: str(scratch / var.lower()) for var in PATH_VARS}
    [workdir] = build.all("WORKDIR")
    assert workdir == declared["SRC"], "WORKDIR must be $SRC so the RUN steps can be replayed elsewhere"
    for run in build.all("RUN"):
        for var in PATH_VARS:
            # A literal path would escape the scratch directory when replayed.
            assert declared[var] not in run, f"use ${var} instead of {declared[var]} in: {run}"

    src = Path(paths["SRC"])
    src.mkdir()
    for arg in build.all("COPY"):
        *sources, dest = shlex.split(arg)
        for source in sources:
            # Docker's rules: a directory's contents go into dest; files go into dest/ when it is a directory.
            origin = REPO_ROOT / source
            target = src / dest
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                                dirs_exist_ok=True)
                continue
            if dest.endswith("/") or len(sources) > 1:
                target = target / origin.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, target)

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
        **declared,
        **paths,
        # The machine's pip config (indexes, constraints) must not leak in; only the wheelhouse is used.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        # `python` is the interpreter running the tests: the same 3.11 as the image's base.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("VIRTUAL_ENV", None)
    for run in build.all("RUN"):
        proc = subprocess.run(["/bin/sh", "-c", run], cwd=src, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, f"RUN {run}\n{proc.stdout}\n{proc.stderr}"
    return Path(paths["VENV"])


def _exporter(venv: Path, *args: str) -> str:
    proc = subprocess.run([str(venv / "bin" / "micboard-exporter"), *args], capture_output=True, text=True,
                          timeout=60, check=False, env={"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_built_environment_runs_the_exporter(built_venv: Path) -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert _exporter(built_venv, "--version").strip() == f"micboard-exporter {project['version']}"
    listing = _exporter(built_venv, "plugins")
    rows = {line.split()[0]: line.split() for line in listing.splitlines()[1:] if line.strip()}
    # Every plugin the package declares loads from the installed wheel (not from the source tree).
    assert set(project["entry-points"]["micboard_exporter.plugins"]) <= set(rows), listing
    for name in project["entry-points"]["micboard_exporter.plugins"]:
        assert rows[name][-1] == "ok", listing


def test_built_environment_is_self_contained(built_venv: Path) -> None:
    site = next(built_venv.glob("lib/python3.*/site-packages"))
    # The package came from the wheel, so the package data (config schema) was declared and shipped.
    assert (site / "micboard_exporter" / "config.schema.json").is_file()
    assert not (site / "pip").exists(), "the runtime venv carries no installer"
    assert not (built_venv / "bin" / "pip").exists()
    probe = subprocess.run(
        [str(built_venv / "bin" / "python"), "-c", "import micboard_exporter, sys; print(micboard_exporter.__file__)"],
        capture_output=True, text=True, timeout=30, check=False, cwd="/",
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).is_relative_to(site)
