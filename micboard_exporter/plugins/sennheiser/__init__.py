"""Sennheiser plugins: SSCv2 (EW-DX, Spectera over HTTPS + SSE), SSC v1 (JSON over UDP 45) and MCP (ew G3/G4/2000).

Each protocol is one subpackage split into ``codec`` (pure parsing and unit conversion), ``session`` (owns the
socket or HTTP client) and the plugin in its ``__init__``. Facts come from ``shared/reference/sennheiser-protocols.md``;
where sources disagree the manufacturer's own document wins and the choice is noted next to the conversion.
"""
