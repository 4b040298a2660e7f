"""The exporter's own metrics (prometheus_client objects on a private registry).

Device metrics are rendered from the state store by :mod:`micboard_exporter.exposition`; what lives here
describes the exporter itself: poll timing, cycle results, reloads and build info, plus the standard
``process_*`` and ``python_*`` collectors. None of these names appears in the device catalogue.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from micboard_exporter import __version__

# ``*_created`` series double the exporter's own counters and histograms for no use on a dashboard.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CYCLE_RESULTS = ("successful", "failed", "skipped")


class SelfMetrics:
    """Holds the exporter's own metric objects on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.poll_duration = Histogram(
            "micboard_poll_duration_seconds", "Duration of one device poll, including retries, by plugin.",
            ["plugin"], buckets=POLL_BUCKETS, registry=r,
        )
        self.cycle_duration = Gauge(
            "micboard_poll_cycle_duration_seconds", "Duration of the last complete poll cycle.", registry=r
        )
        self.cycle_devices = Gauge(
            "micboard_poll_cycle_devices", "Devices by result (successful, failed, skipped) in the last poll cycle.",
            ["result"], registry=r,
        )
        for result in CYCLE_RESULTS:
            self.cycle_devices.labels(result)
        self.cycle_overruns = Counter(
            "micboard_poll_cycle_overruns", "Poll cycles that took longer than the poll interval.", registry=r
        )
        self.reload_successful = Gauge(
            "micboard_config_last_reload_successful", "1 if the last config load or reload succeeded, 0 if rejected.",
            registry=r,
        )
        self.reload_timestamp = Gauge(
            "micboard_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load or reload.", registry=r,
        )
        self.build_info = Gauge(
            "micboard_exporter_build_info", "Build information (value 1).", ["version", "python"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.devices_configured = Gauge(
            "micboard_devices_configured", "Devices in the running config that this shard polls.", registry=r
        )

    def render(self) -> bytes:
        """The exporter's own metrics in the text exposition format."""
        return generate_latest(self.registry)
