"""The ``/`` landing page: build info, device table, recent events, links.

Every string that came from a device or the config is HTML-escaped: a channel named
``<script>alert(1)</script>`` is shown as text.
"""

from __future__ import annotations

import html
import platform
import time
from collections.abc import Iterable

from micboard_exporter import __version__
from micboard_exporter.events import DeviceEvent
from micboard_exporter.state import DeviceStatus

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d1d1f;background:#fafafa}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eee}.up{color:#1a7f37;font-weight:600}.down{color:#c62828;font-weight:600}
.muted{color:#777}code{background:#eee;padding:0 .2rem}
"""


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return '<span class="muted">never</span>'
    seconds = max(0.0, now - then)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(then))
    return f'<span title="{stamp}">{seconds:.0f}s ago</span>'


def _device_row(d: DeviceStatus, now: float) -> str:
    e = html.escape
    state = '<span class="up">up</span>' if d.up else '<span class="down">down</span>'
    snap = d.snapshot
    model = e(" ".join(x for x in (snap.manufacturer, snap.model) if x)) if snap else ""
    channels = ""
    if snap is not None:
        names = [e(f"{ch.number}: {ch.name or ''}") for ch in snap.channels]
        channels = "<br>".join(names)
    error = e(d.last_error or "") if not d.up else ""
    return (
        f"<tr><td>{e(d.device_id)}</td><td>{e(d.plugin)}</td><td>{e(d.host)}</td><td>{model}</td>"
        f"<td>{state}</td><td>{_ago(d.last_success, now)}</td><td>{channels}</td><td>{error}</td></tr>"
    )


def _event_row(ev: DeviceEvent) -> str:
    e = html.escape
    stamp = time.strftime("%H:%M:%S", time.gmtime(ev.wall_time))
    channel = "" if ev.channel is None else f"{ev.channel}" + (f" ({e(ev.channel_name)})" if ev.channel_name else "")
    count = f" ×{ev.count}" if ev.count > 1 else ""
    return (
        f"<tr><td>{stamp}</td><td>{e(ev.device_id)}</td><td>{channel}</td><td>{e(ev.kind.value)}{count}</td>"
        f"<td>{e(ev.detail)}</td></tr>"
    )


def render_landing(
    devices: Iterable[DeviceStatus],
    events: Iterable[DeviceEvent],
    *,
    config_path: str,
    started_at: float,
    ready: bool,
    probe_enabled: bool,
) -> str:
    """The whole landing page as HTML."""
    now = time.time()
    e = html.escape
    device_rows = "\n".join(_device_row(d, now) for d in devices) or (
        '<tr><td colspan="8" class="muted">no devices configured</td></tr>'
    )
    event_rows = "\n".join(_event_row(ev) for ev in reversed(list(events))) or (
        '<tr><td colspan="5" class="muted">no events yet</td></tr>'
    )
    probe = (
        '<li><a href="/probe?target=HOST&amp;plugin=NAME">/probe</a> (one-shot poll of an allowed target)</li>'
        if probe_enabled else "<li>/probe is disabled (set <code>probe.allowed_targets</code>)</li>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>micboard-exporter</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body>
<h1>micboard-exporter</h1>
<p>Prometheus exporter for wireless microphone fleets. Version {e(__version__)}, Python {e(platform.python_version())},
config <code>{e(config_path)}</code>, up since {time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started_at))},
{"ready" if ready else "waiting for the first poll cycle"}.</p>
<ul><li><a href="/metrics">/metrics</a></li>{probe}<li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul>
<h2>Devices</h2>
<table><thead><tr><th>device</th><th>plugin</th><th>address</th><th>model</th><th>state</th><th>last success</th>
<th>channels</th><th>last error</th></tr></thead><tbody>
{device_rows}
</tbody></table>
<h2>Recent events</h2>
<table><thead><tr><th>time (UTC)</th><th>device</th><th>channel</th><th>event</th><th>detail</th></tr></thead><tbody>
{event_rows}
</tbody></table>
</body></html>
"""
