"""micboard-exporter: a Prometheus exporter for wireless microphone fleets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("micboard-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
