"""``/probe?target=HOST[:PORT]&plugin=NAME``: a one-shot poll of one device, for Prometheus service discovery.

The probe is not an open proxy (rules in ``docs/security.md``):

- it is off unless the config lists ``probe.allowed_targets`` (networks or host names);
- only plugins the running config uses (in ``devices`` or ``defaults``) can be named;
- an address must lie in an allowed network; a host name must be listed by name;
- when networks are listed too, an allowed name is resolved once by the exporter and the probe is pinned
  to the first resolved address that lies in an allowed network (403 when none does). The plugin then
  connects to that address, so neither a DNS record pointing outside nor a record that changes between
  the check and the connection (DNS rebinding) can take the probe anywhere else. A name that does not
  resolve here (or not within ``RESOLVE_TIMEOUT_S``) is refused too: it cannot be checked against the
  networks, and a plugin given the name would resolve it again, maybe to somewhere else.

Refused targets get 403 with the reason. Each probe uses a fresh plugin instance and a fresh
rendering (nothing shared with the background poller), bounded by Prometheus' scrape timeout header minus
``probe.timeout_offset``, and always answers with ``micboard_probe_success`` and
``micboard_probe_duration_seconds``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass

import anyio

from micboard_exporter.config_types import Config, DeviceConfig, ProbeConfig
from micboard_exporter.errors import PluginLoadError, PollError
from micboard_exporter.exposition import DeviceView, format_value, render_device, render_families
from micboard_exporter.registry import PluginRegistry

log = logging.getLogger(__name__)

#: Seconds the exporter's own lookup of an allowed host name may take (a slow resolver must not eat the budget).
RESOLVE_TIMEOUT_S = 2.0
#: Used when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds (its own default scrape timeout).
DEFAULT_SCRAPE_TIMEOUT_S = 10.0
_TARGET = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d{1,5}))?$")


class ProbeRequestError(Exception):
    """A probe request that cannot be run; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """A parsed ``target`` parameter."""

    host: str
    port: int | None


def parse_target(value: str) -> ProbeTarget:
    """``10.0.0.5``, ``10.0.0.5:2202``, ``[fe80::1]:443``, ``rx1.local`` → :class:`ProbeTarget`."""
    match = _TARGET.match(value.strip())
    if not match:
        raise ProbeRequestError(400, f"target {value!r} is not HOST or HOST:PORT")
    host = match.group("v6") or match.group("host") or ""
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise ProbeRequestError(400, f"target port {port} is out of range 1-65535")
    return ProbeTarget(host, port)


def allowed_networks(probe: ProbeConfig) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The entries of ``probe.allowed_targets`` that are networks or addresses."""
    networks = []
    for allowed in probe.allowed_targets:
        try:
            networks.append(ipaddress.ip_network(allowed, strict=False))
        except ValueError:
            continue
    return networks


def plugins_in_use(config: Config) -> set[str]:
    """Plugins the running config uses: those of its devices and those it sets ``defaults`` for."""
    return {d.plugin for d in config.devices} | set(config.defaults)


def target_allowed(target: ProbeTarget, probe: ProbeConfig) -> bool:
    """Whether ``probe.allowed_targets`` covers the target (by network for addresses, by name otherwise)."""
    try:
        address = ipaddress.ip_address(target.host)
    except ValueError:
        address = None
    for allowed in probe.allowed_targets:
        if address is not None:
            try:
                if address in ipaddress.ip_network(allowed, strict=False):
                    return True
            except ValueError:
                continue
        elif allowed.lower().rstrip(".") == target.host.lower().rstrip("."):
            return True
    return False


def probe_budget(header: str | None, offset: float) -> float:
    """Seconds the probe may take: the scrape timeout Prometheus announces minus ``offset``."""
    timeout = DEFAULT_SCRAPE_TIMEOUT_S
    if header:
        try:
            timeout = float(header)
        except ValueError:
            raise ProbeRequestError(400, f"X-Prometheus-Scrape-Timeout-Seconds {header!r} is not a number") from None
    budget = timeout - offset
    return budget if budget > 0 else timeout


def check_request(config: Config, registry: PluginRegistry, target: str | None, plugin: str | None) -> ProbeTarget:
    """Validate a probe request against the config; raise :class:`ProbeRequestError` with the reason."""
    if not target:
        raise ProbeRequestError(400, "missing parameter 'target' (HOST or HOST:PORT)")
    if not plugin:
        raise ProbeRequestError(400, f"missing parameter 'plugin' (one of: {', '.join(registry.available())})")
    if plugin not in registry.available():
        raise ProbeRequestError(400, f"unknown plugin {plugin!r}; available plugins: {', '.join(registry.available())}")
    parsed = parse_target(target)
    if not config.probe.enabled:
        raise ProbeRequestError(403, "/probe is disabled: list networks or host names in probe.allowed_targets")
    if plugin not in plugins_in_use(config):
        raise ProbeRequestError(403, f"plugin {plugin!r} is not used by the running config (devices or defaults); "
                                     "/probe only runs plugins the config uses")
    if not target_allowed(parsed, config.probe):
        raise ProbeRequestError(403, f"target {parsed.host} is not in probe.allowed_targets")
    return parsed


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def pin_target(target: ProbeTarget, probe: ProbeConfig) -> str | None:
    """For a host name when networks are allowed: the address to probe instead; ``None`` to keep the host.

    Raises :class:`ProbeRequestError` (403) when the name resolves only to addresses outside the networks,
    or does not resolve at all: an address we could not check is not one we may connect to.
    """
    networks = allowed_networks(probe)
    if not networks or _is_address(target.host):
        return None
    refusal = "with networks in probe.allowed_targets a name is probed only at an address in them"
    infos = None
    with anyio.move_on_after(RESOLVE_TIMEOUT_S):
        try:
            infos = await anyio.getaddrinfo(target.host, target.port or 0, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.info("probe target %s refused: it does not resolve (%s)", target.host, exc)
            raise ProbeRequestError(403, f"target {target.host} does not resolve ({exc}); {refusal}") from None
    if infos is None:
        log.info("probe target %s refused: it did not resolve within %gs", target.host, RESOLVE_TIMEOUT_S)
        raise ProbeRequestError(403, f"target {target.host} did not resolve within {RESOLVE_TIMEOUT_S:g} s; {refusal}")
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ProbeRequestError(403, f"target {target.host} resolves to no address; {refusal}")
    for address in addresses:
        parsed = ipaddress.ip_address(address.split("%")[0])
        if any(parsed in network for network in networks):
            return address
    raise ProbeRequestError(403, f"target {target.host} resolves to {', '.join(sorted(set(addresses)))}, "
                                 "outside the networks in probe.allowed_targets")


async def run_probe(config: Config, registry: PluginRegistry, target: ProbeTarget, plugin_name: str,
                    budget: float) -> str:
    """Poll the target once with a fresh plugin instance and render the result."""
    try:
        plugin_class = registry.get(plugin_name)
    except PluginLoadError as exc:
        raise ProbeRequestError(400, str(exc)) from None
    started = time.monotonic()
    pinned = await pin_target(target, config.probe)
    # A target that is a configured device is probed with its own options and secrets; any other
    # allowed target gets the plugin's defaults.
    configured = next(
        (d for d in config.devices if d.plugin == plugin_name and d.host == target.host
         and (target.port is None or d.port in (None, target.port))),
        None,
    )
    options = dict(config.defaults.get(plugin_name, {}))
    device = configured if configured is not None else DeviceConfig(
        id=f"{target.host}:{target.port}" if target.port else target.host,
        plugin=plugin_name,
        host=target.host,
        port=target.port,
        options=options,
    )
    view = DeviceView(config=device)
    if pinned is not None:
        # The device keeps its name (id, labels); only the connection goes to the checked address.
        device = dataclasses.replace(device, host=pinned)
    plugin = plugin_class()
    success = False
    try:
        with anyio.fail_after(max(budget - (time.monotonic() - started), 0.001)):
            view.snapshot = await plugin.poll(device)
        view.up = success = True
        view.last_success = time.time()
    except TimeoutError:
        log.info("probe of %s timed out after %.2fs", device.address, budget)
    except PollError as exc:
        log.info("probe of %s failed: %s", device.address, exc)
    finally:
        with anyio.move_on_after(5.0, shield=True):
            await plugin.aclose()
    duration = time.monotonic() - started
    body = render_families([render_device(view)]).decode("utf-8")
    return (
        body
        + "# HELP micboard_probe_success 1 if the probe poll succeeded.\n# TYPE micboard_probe_success gauge\n"
        + f"micboard_probe_success {1 if success else 0}\n"
        + "# HELP micboard_probe_duration_seconds How long the probe took.\n"
        + "# TYPE micboard_probe_duration_seconds gauge\n"
        + f"micboard_probe_duration_seconds {format_value(duration)}\n"
    )
