"""Allow ``python -m micboard_exporter``."""

from micboard_exporter.cli import main

raise SystemExit(main())
