"""Grafana dashboards for micboard-exporter, written with grafanalib."""
