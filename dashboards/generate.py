"""Write the Grafana dashboards ``dashboards/*.json`` (run ``python dashboards/generate.py``).

Each file is the bare dashboard model (what Grafana's file provisioning and the Helm chart's sidecar
expect), with sorted keys so diffs stay small. ``--output DIR`` writes elsewhere (the staleness test
regenerates into a temp dir and compares).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so `dashboards.*` and `alerts.*` resolve.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards.micboard import all_dashboards

DEFAULT_OUTPUT = Path(__file__).resolve().parent


def render() -> dict[str, str]:
    """File name -> JSON text."""
    return {
        f"{stem}.json": json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for stem, model in all_dashboards().items()
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="directory to write into")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (args.output / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
