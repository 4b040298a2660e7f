"""Load a YAML config file into a validated, typed :class:`~micboard_exporter.config_types.Config`.

YAML → JSON Schema (``config.schema.json`` with each plugin's ``options_schema`` merged in for its devices)
→ semantic checks → frozen dataclasses. Every problem is reported with the file, the path inside it
(``devices[3].host``) and the reason, all problems of a file at once. Secrets are read only from
``<name>_env`` / ``<name>_file`` references and their values never appear in an error.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from micboard_exporter.config_types import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_BREAKER_MAX_INTERVAL_S,
    DEFAULT_INTERVAL_S,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_PROBE_TIMEOUT_OFFSET_S,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF_S,
    DEFAULT_TIMEOUT_S,
    BatteryConfig,
    BatteryThreshold,
    BreakerConfig,
    ChannelConfig,
    Config,
    DeviceConfig,
    PollConfig,
    ProbeConfig,
    Secret,
)
from micboard_exporter.durations import parse_duration
from micboard_exporter.errors import ConfigError, ConfigErrors
from micboard_exporter.registry import PluginRegistry

#: Option names that hold secrets. They may only be given as ``<name>_env`` or ``<name>_file``.
SECRET_NAMES: frozenset[str] = frozenset({"password", "token", "secret", "api_key", "passphrase"})
_SECRET_REF = re.compile(r"^(?P<base>[a-z][a-z0-9_]*?)_(?P<kind>env|file)$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$")
_MAX_SECRET_FILE_BYTES = 64 * 1024


@cache
def base_schema() -> Mapping[str, Any]:
    """The config JSON Schema shipped in the package (without plugin options)."""
    text = files("micboard_exporter").joinpath("config.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def merged_schema(registry: PluginRegistry) -> dict[str, Any]:
    """The config schema with every loaded plugin's ``options_schema`` applied to its devices and defaults."""
    schema = copy.deepcopy(dict(base_schema()))
    conditions: list[dict[str, Any]] = [{"$ref": "#/$defs/device"}]
    defaults_props: dict[str, Any] = {}
    for name in registry.available():
        options = dict(registry.get(name).options_schema)
        conditions.append(
            {
                "if": {"properties": {"plugin": {"const": name}}, "required": ["plugin"]},
                "then": {"properties": {"options": options}},
            }
        )
        defaults_props[name] = options
    schema["properties"]["devices"]["items"] = {"allOf": conditions}
    schema["properties"]["defaults"]["properties"] = defaults_props
    return schema


# --------------------------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found a {type(key).__name__} used as a key; keys must be plain names or numbers",
                key_node.start_mark,
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (first defined on line {seen[key].start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(source: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigErrors([ConfigError(source, "", f"YAML syntax error at {where}: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigError(source, "", f"YAML error: {exc}")]) from None
    except RecursionError:
        raise ConfigErrors([ConfigError(source, "", "YAML nested too deeply to be a config file")]) from None


# -------------------------------------------------------------------------------------- validation


def format_path(parts: Iterable[str | int]) -> str:
    """``['devices', 3, 'host']`` → ``devices[3].host``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_JSON_TYPES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "object": "a mapping", "array": "a list", "null": "nothing",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _is_secretish(parts: Sequence[str | int]) -> bool:
    return any(isinstance(p, str) and p in SECRET_NAMES for p in parts)


def _schema_errors(source: str, doc: Any, schema: Mapping[str, Any]) -> list[ConfigError]:
    validator = jsonschema.Draft202012Validator(schema)
    errors: list[ConfigError] = []
    for err in validator.iter_errors(doc):
        errors.extend(_translate(source, err))
    # Deduplicate (allOf branches can repeat a message) and order by path.
    unique = {(e.path, e.reason): e for e in errors}
    return sorted(unique.values(), key=lambda e: (e.path, e.reason))


def _best_leaf(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    # allOf/if-then errors wrap the real ones in ``context``; report the deepest.
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


def _translate(source: str, err: jsonschema.ValidationError) -> list[ConfigError]:
    err = _best_leaf(err)
    parts = list(err.absolute_path)
    path = format_path(parts)
    kind = err.validator
    if kind == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}) if isinstance(err.schema, dict) else {})
        known = set(allowed)
        extra = [k for k in err.instance if k not in known]
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return [ConfigError(source, format_path([*parts, str(k)]), f"unknown key{hint}") for k in extra]
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        return [ConfigError(source, format_path([*parts, m]), "required key is missing") for m in missing]
    if kind == "type":
        expected: Any = err.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        want = " or ".join(_JSON_TYPES.get(n, n) for n in names)
        got = "a value" if _is_secretish(parts) else _describe(err.instance)
        return [ConfigError(source, path, f"expected {want}, got {got}")]
    if kind == "pattern" and isinstance(err.instance, str):
        if "ms|s|m|h|d" in str(err.validator_value):
            try:
                parse_duration(err.instance)
            except ValueError as exc:
                return [ConfigError(source, path, str(exc))]
        if parts and parts[-1] == "id":
            return [ConfigError(source, path, f"{err.instance!r} is not a valid id: use letters, digits and _ . : -"
                                              " (at most 64, starting with a letter or digit)")]
        if parts and parts[-1] == "listen":
            return [ConfigError(source, path, f"{err.instance!r} is not a listen address; write HOST:PORT or :PORT")]
    if kind == "not":
        return [ConfigError(source, path, f"{err.instance!r} is reserved and cannot be used here")]
    if kind == "propertyNames":
        return [ConfigError(source, path, err.message)]
    if kind == "enum":
        choices: Any = err.validator_value
        return [ConfigError(source, path, f"{_describe(err.instance)} is not one of: "
                                          f"{', '.join(map(str, choices))}")]
    if _is_secretish(parts):
        return [ConfigError(source, path, f"invalid value ({kind})")]
    return [ConfigError(source, path, err.message)]


def _validate_host(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            return f"{host!r} is neither an IP address nor a valid host name"
    return None


def _validate_target(target: str) -> str | None:
    try:
        ipaddress.ip_network(target, strict=False)
    except ValueError:
        if not _HOSTNAME.match(target):
            return f"{target!r} is neither a network (10.0.20.0/24), an address nor a host name"
    return None


def _resolve_secrets(
    source: str, path: str, options: Mapping[str, Any], environ: Mapping[str, str], base_dir: Path
) -> tuple[dict[str, Secret], list[ConfigError]]:
    secrets: dict[str, Secret] = {}
    errors: list[ConfigError] = []
    for key, value in options.items():
        match = _SECRET_REF.match(key)
        if not match or match.group("base") not in SECRET_NAMES:
            continue
        base, kind = match.group("base"), match.group("kind")
        where = f"{path}.{key}"
        if base in secrets:
            errors.append(ConfigError(source, where, f"give only one of {base}_env and {base}_file"))
            continue
        if not isinstance(value, str) or not value:
            errors.append(ConfigError(source, where, "expected a non-empty string"))
            continue
        if kind == "env":
            env_value = environ.get(value)
            if env_value is None or env_value == "":
                errors.append(ConfigError(source, where, f"environment variable {value} is not set (or empty)"))
                continue
            secrets[base] = Secret(env_value, f"env:{value}")
        else:
            file_path = Path(value) if Path(value).is_absolute() else base_dir / value
            try:
                with file_path.open("rb") as fh:
                    raw = fh.read(_MAX_SECRET_FILE_BYTES + 1)
            except OSError as exc:
                errors.append(ConfigError(source, where, f"cannot read secret file {file_path}: {exc.strerror}"))
                continue
            if len(raw) > _MAX_SECRET_FILE_BYTES:
                errors.append(ConfigError(source, where, f"secret file {file_path} is larger than 64 KiB"))
                continue
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text:
                errors.append(ConfigError(source, where, f"secret file {file_path} is empty"))
                continue
            secrets[base] = Secret(text, f"file:{file_path}")
    return secrets, errors


def _inline_secret_errors(source: str, path: str, options: Any) -> list[ConfigError]:
    if not isinstance(options, dict):
        return []
    return [
        ConfigError(
            source, f"{path}.{key}",
            f"secrets are not written in the config; use {key}_env (an environment variable name) "
            f"or {key}_file (a file path) instead",
        )
        for key in options
        if key in SECRET_NAMES
    ]


def merge_options(defaults: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Plugin defaults under device options; a device's ``x_env``/``x_file`` replaces both defaults for ``x``."""
    overridden = {m.group("base") for key in options if (m := _SECRET_REF.match(key))}
    merged = {
        k: v for k, v in defaults.items()
        if not ((m := _SECRET_REF.match(k)) and m.group("base") in overridden)
    }
    merged.update(options)
    return merged


def _duration(value: Any, default: float) -> float:
    return parse_duration(value) if isinstance(value, str) else default


def _dict(value: Any) -> dict[Any, Any]:
    """``value`` if it is a mapping, else empty: semantic checks also run on documents the schema rejected."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """``value`` if it is a list, else empty (see :func:`_dict`)."""
    return value if isinstance(value, list) else []


def _semantic_errors(source: str, doc: Mapping[str, Any], registry: PluginRegistry) -> list[ConfigError]:
    errors: list[ConfigError] = []
    listen = doc.get("listen")
    if isinstance(listen, str) and ":" in listen:
        port = int(listen.rsplit(":", 1)[1]) if listen.rsplit(":", 1)[1].isdigit() else -1
        if not 0 <= port < 65536:
            errors.append(ConfigError(source, "listen", f"port {port} is out of range 1-65535 (0: any free port)"))
    poll = _dict(doc.get("poll"))
    for key in ("interval", "timeout"):
        try:
            zero = isinstance(poll.get(key), str) and parse_duration(poll[key]) <= 0
        except ValueError:
            zero = False  # already reported by the schema check
        if zero:
            errors.append(ConfigError(source, f"poll.{key}", "must be greater than zero"))
    for name, opts in _dict(doc.get("defaults")).items():
        errors.extend(_inline_secret_errors(source, f"defaults.{name}", opts))
        if name not in registry.entries:
            available = ", ".join(registry.available()) or "none"
            errors.append(
                ConfigError(source, f"defaults.{name}", f"unknown plugin {name!r}; available plugins: {available}")
            )
    for i, target in enumerate(_list(_dict(doc.get("probe")).get("allowed_targets"))):
        if isinstance(target, str) and (problem := _validate_target(target)):
            errors.append(ConfigError(source, f"probe.allowed_targets[{i}]", problem))
    seen_ids: dict[str, int] = {}
    slots: dict[int, str] = {}
    for i, dev in enumerate(_list(doc.get("devices"))):
        if not isinstance(dev, dict):
            continue
        dev_id = dev.get("id")
        if isinstance(dev_id, str):
            if dev_id in seen_ids:
                errors.append(ConfigError(source, f"devices[{i}].id",
                                          f"duplicate device id {dev_id!r} (also devices[{seen_ids[dev_id]}].id)"))
            else:
                seen_ids[dev_id] = i
        plugin = dev.get("plugin")
        if isinstance(plugin, str):
            entry = registry.entries.get(plugin)
            if entry is None:
                available = ", ".join(registry.available()) or "none"
                errors.append(ConfigError(source, f"devices[{i}].plugin",
                                          f"unknown plugin {plugin!r}; available plugins: {available}"))
            elif not entry.loaded:
                errors.append(ConfigError(source, f"devices[{i}].plugin",
                                          f"plugin {plugin!r} failed to load: {entry.error}"))
        errors.extend(_inline_secret_errors(source, f"devices[{i}].options", dev.get("options")))
        host = dev.get("host")
        if isinstance(host, str) and (problem := _validate_host(host)):
            errors.append(ConfigError(source, f"devices[{i}].host", problem))
        for number, chan in _dict(dev.get("channels")).items():
            slot = chan.get("slot") if isinstance(chan, dict) else None
            if isinstance(slot, int):
                where = f"devices[{i}].channels.{number}.slot"
                if slot in slots:
                    errors.append(ConfigError(source, where, f"slot {slot} is already used by {slots[slot]}"))
                else:
                    slots[slot] = where
    return errors


def _normalise_channel_keys(doc: Any) -> None:
    """YAML reads ``channels: {1: ...}`` with int keys; JSON Schema wants string keys."""
    if not isinstance(doc, dict):
        return
    for dev in _list(doc.get("devices")):
        if isinstance(dev, dict) and isinstance(dev.get("channels"), dict):
            dev["channels"] = {str(k): v for k, v in dev["channels"].items()}


def parse_config(
    source: str,
    text: str,
    registry: PluginRegistry,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validate config ``text`` (read from ``source``) and build the typed :class:`Config`."""
    env = os.environ if environ is None else environ
    doc = _parse_yaml(source, text)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigErrors([ConfigError(source, "", f"the top level must be a mapping of keys, got {_describe(doc)}")])
    _normalise_channel_keys(doc)
    errors = _schema_errors(source, doc, merged_schema(registry))
    if errors:
        # Semantic checks assume the shapes the schema guarantees; still report the ones that are safe.
        errors += [e for e in _semantic_errors(source, doc, registry) if e.path not in {x.path for x in errors}]
        raise ConfigErrors(sorted(errors, key=lambda e: e.path))
    errors = _semantic_errors(source, doc, registry)

    poll_doc = doc.get("poll") or {}
    breaker_doc = poll_doc.get("breaker") or {}
    breaker = BreakerConfig(
        failures=breaker_doc.get("failures", DEFAULT_BREAKER_FAILURES),
        max_interval=_duration(breaker_doc.get("max_interval"), DEFAULT_BREAKER_MAX_INTERVAL_S),
    )
    poll = PollConfig(
        interval=_duration(poll_doc.get("interval"), DEFAULT_INTERVAL_S),
        timeout=_duration(poll_doc.get("timeout"), DEFAULT_TIMEOUT_S),
        batch_size=poll_doc.get("batch_size", DEFAULT_BATCH_SIZE),
        max_concurrency=poll_doc.get("max_concurrency", DEFAULT_MAX_CONCURRENCY),
        retries=poll_doc.get("retries", DEFAULT_RETRIES),
        retry_backoff=_duration(poll_doc.get("retry_backoff"), DEFAULT_RETRY_BACKOFF_S),
        breaker=breaker,
    )
    battery_doc = doc.get("battery") or {}
    defaults_battery = BatteryConfig()

    def threshold(key: str, default: BatteryThreshold) -> BatteryThreshold:
        item = battery_doc.get(key) or {}
        return BatteryThreshold(float(item.get("ratio", default.ratio)), int(item.get("bars", default.bars)))

    battery = BatteryConfig(
        low=threshold("low", defaults_battery.low), critical=threshold("critical", defaults_battery.critical)
    )
    if battery.critical.ratio > battery.low.ratio or battery.critical.bars > battery.low.bars:
        errors.append(ConfigError(source, "battery.critical", "critical thresholds must not be above the low ones"))
    probe_doc = doc.get("probe") or {}
    probe = ProbeConfig(
        allowed_targets=tuple(probe_doc.get("allowed_targets") or ()),
        timeout_offset=_duration(probe_doc.get("timeout_offset"), DEFAULT_PROBE_TIMEOUT_OFFSET_S),
    )
    plugin_defaults: dict[str, Mapping[str, Any]] = {
        name: MappingProxyType(dict(opts)) for name, opts in (doc.get("defaults") or {}).items()
    }
    devices: list[DeviceConfig] = []
    for i, dev in enumerate(doc.get("devices") or []):
        options = merge_options(plugin_defaults.get(dev["plugin"], {}), dev.get("options") or {})
        secrets, secret_errors = _resolve_secrets(
            source, f"devices[{i}].options", options, env, base_dir or Path(source).parent
        )
        errors.extend(secret_errors)
        channels = {
            int(num): ChannelConfig(slot=ch.get("slot"), name=ch.get("name"))
            for num, ch in (dev.get("channels") or {}).items()
        }
        devices.append(
            DeviceConfig(
                id=dev["id"],
                plugin=dev["plugin"],
                host=dev["host"],
                port=dev.get("port"),
                labels=MappingProxyType(dict(dev.get("labels") or {})),
                options=MappingProxyType(options),
                secrets=MappingProxyType(secrets),
                channels=MappingProxyType(channels),
            )
        )
    if errors:
        raise ConfigErrors(sorted(errors, key=lambda e: e.path))
    return Config(
        source=source,
        listen=doc.get("listen", DEFAULT_LISTEN),
        poll=poll,
        defaults=MappingProxyType(plugin_defaults),
        devices=tuple(devices),
        battery=battery,
        probe=probe,
        checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def load_config(
    path: str | os.PathLike[str], registry: PluginRegistry, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigErrors` naming every problem."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigErrors([ConfigError(source, "", f"cannot read config file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(source, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_config(source, text, registry, environ=environ, base_dir=Path(source).resolve().parent)
