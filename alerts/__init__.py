"""Prometheus recording and alerting rules for micboard-exporter, built from a parameterised mixin."""
