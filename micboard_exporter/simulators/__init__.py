"""Protocol-faithful device simulators, used by tests, ``micboard-exporter simulate``/``demo`` and benchmarks.

Each simulator is written from ``shared/reference`` independently of the plugins' codecs (no shared parser
or framing module), so a misreading of a protocol cannot hide by being on both sides. What they do share is
:mod:`~micboard_exporter.simulators.physics`: the scriptable "real world" of packs, batteries and RF that
every protocol simulator renders in its own units.
"""
