"""Run micboard-exporter the way ``micboard-exporter run --config FILE --listen ADDR`` does, with the shure
and synthetic plugins registered by class.

The end-to-end test starts this as a separate process. It exists because the ``shure`` plugin has no
entry point in ``pyproject.toml`` yet (``micboard-exporter plugins`` lists only ``synthetic``); once it
does, the test can start ``python -m micboard_exporter run`` instead and this file can go.
"""

from __future__ import annotations

import argparse

import anyio

from micboard_exporter.app import Exporter
from micboard_exporter.plugins.shure import ShurePlugin
from micboard_exporter.plugins.synthetic import SyntheticPlugin
from micboard_exporter.registry import PluginRegistry


def main() -> None:
    """Load the config, then serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--listen", required=True)
    args = parser.parse_args()
    exporter = Exporter(args.config, PluginRegistry.from_classes(ShurePlugin, SyntheticPlugin), listen=args.listen)

    async def run() -> None:
        await exporter.apply(exporter.load())
        await exporter.run()

    anyio.run(run)


if __name__ == "__main__":
    main()
