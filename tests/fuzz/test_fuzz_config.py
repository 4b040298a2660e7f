"""Properties of the config loader: whatever text it is given, ``parse_config`` returns a ``Config`` or raises
``ConfigErrors`` in which every error names the file, a path that exists in the document (or the parent a
missing key belongs in) and a reason. Inputs: YAML-ish noise, mutated valid configs, and byte-level edits of
the example config.

Sections of the wrong type (``poll: true``), non-scalar mapping keys (``[a]: b``) and deep nesting once
crashed the loader (found here, fixed in 055c7bc); the edge cases below pin them.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz_helpers import fuzz
from hypothesis import given
from hypothesis import strategies as st

from micboard_exporter.config import format_path, parse_config
from micboard_exporter.config_types import Config
from micboard_exporter.errors import ConfigErrors
from micboard_exporter.registry import PluginRegistry

SOURCE = "fuzz.yaml"
EXAMPLE = (Path(__file__).parents[2] / "config.example.yaml").read_text(encoding="utf-8")
REGISTRY = PluginRegistry.discover()
_PATH_SEGMENT = re.compile(r"\[\d+\]|[^.\[]+")


def load(text: str) -> Config | ConfigErrors:
    """The loader's outcome; anything but ``ConfigErrors`` escaping fails the property."""
    try:
        return parse_config(SOURCE, text, REGISTRY, environ={})
    except ConfigErrors as exc:
        check_errors(exc)
        return exc


def check_errors(exc: ConfigErrors) -> None:
    """Every error names the file, a path (maybe empty: the whole file) and a reason."""
    assert exc.errors, "ConfigErrors without a single error"
    for error in exc.errors:
        assert error.file == SOURCE
        assert isinstance(error.path, str)
        assert isinstance(error.reason, str) and error.reason.strip(), error
        assert str(error).startswith(SOURCE + ": ")


def document_paths(node: Any, parts: tuple[str | int, ...] = ()) -> set[str]:
    """Every location of a YAML document, written as the loader writes paths (``devices[0].host``)."""
    paths = {format_path(parts)}
    if isinstance(node, dict):
        for key, value in node.items():
            paths |= document_paths(value, (*parts, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths |= document_paths(value, (*parts, index))
    return paths


def parent(path: str) -> str:
    segments = _PATH_SEGMENT.findall(path)
    return path[: len(path) - len(segments[-1])].rstrip(".") if segments else ""


# ------------------------------------------------------------------------------------------------ noise

_YAMLISH = st.text(st.sampled_from(list("abcdevisplort_:-{}[],'\"#&*!|>%@`?. \n\t0123456789")), max_size=300)
_KEYS = st.sampled_from(["listen", "poll", "devices", "defaults", "probe", "battery", "id", "plugin", "host",
                         "port", "options", "channels", "labels", "interval", "timeout", "breaker", "slot",
                         "name", "allowed_targets", "password_env", "shure", "synthetic", "1", "x"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["5s", "500ms", "-1s", "1e400", "0", "shure",
                                                            "sennheiser-sscv2", "127.0.0.1", "::1", ":9798"]))
_TREES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_KEYS, inner, max_size=5)), max_leaves=25)


@fuzz(300)
@given(st.one_of(_YAMLISH, st.text(max_size=200)))
def test_yamlish_noise_is_a_config_or_config_errors(text: str) -> None:
    load(text)


#: Documents with the config's own sections, so the examples get past the top level into the details.
_SECTIONS = st.fixed_dictionaries({}, optional={
    "listen": _SCALARS,
    "poll": st.one_of(_TREES, st.dictionaries(_KEYS, _TREES, max_size=4)),
    "battery": _TREES,
    "probe": st.one_of(_TREES, st.dictionaries(_KEYS, _TREES, max_size=3)),
    "defaults": st.one_of(_TREES, st.dictionaries(_KEYS, _TREES, max_size=3)),
    "devices": st.one_of(_TREES, st.lists(st.dictionaries(_KEYS, _TREES, max_size=6), max_size=4)),
    "x": _TREES,
})


@fuzz(300)
@given(st.one_of(_TREES, _SECTIONS))
def test_random_documents_are_a_config_or_located_errors(doc: Any) -> None:
    outcome = load(yaml.safe_dump(doc))
    if isinstance(outcome, ConfigErrors) and isinstance(doc, dict):
        where = document_paths(doc)
        for error in outcome.errors:
            assert error.path in where or parent(error.path) in where, (error.path, sorted(where))


# ------------------------------------------------------------------------------------------------ mutations


@st.composite
def mutated_examples(draw: st.DrawFn) -> dict[str, Any]:
    """The example config with a few random edits: a value replaced, a key removed or a key added."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE))
    for _ in range(draw(st.integers(1, 3))):
        containers = _containers(doc)
        node = draw(st.sampled_from(containers))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = draw(st.sampled_from(["replace", "delete", "add"] if keys else ["add"]))
        if action == "add":
            if isinstance(node, dict):
                node[draw(_KEYS)] = draw(_TREES)
            else:
                node.append(draw(_TREES))
        else:
            key = draw(st.sampled_from(keys))
            if action == "replace":
                node[key] = draw(_TREES)
            else:
                del node[key]
    return doc


def _containers(node: Any) -> list[Any]:
    found = [node] if isinstance(node, dict | list) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found += _containers(child)
    return found


@fuzz(400)
@given(mutated_examples())
def test_mutated_valid_configs_are_a_config_or_located_errors(doc: dict[str, Any]) -> None:
    outcome = load(yaml.safe_dump(doc, sort_keys=False))
    if isinstance(outcome, ConfigErrors):
        where = document_paths(doc) | document_paths(_with_string_channel_keys(doc))
        for error in outcome.errors:
            assert error.path in where or parent(error.path) in where, (error.path, sorted(where))


def _with_string_channel_keys(doc: dict[str, Any]) -> dict[str, Any]:
    # The loader reads channel numbers (YAML ints) as strings before validating; paths follow it.
    out = copy.deepcopy(doc)
    for device in out.get("devices") or [] if isinstance(out.get("devices"), list) else []:
        if isinstance(device, dict) and isinstance(device.get("channels"), dict):
            device["channels"] = {str(k): v for k, v in device["channels"].items()}
    return out


@fuzz(300)
@given(st.lists(st.tuples(st.integers(0, len(EXAMPLE)), st.integers(0, 8), st.text(max_size=4)), max_size=6))
def test_edited_example_text_is_a_config_or_config_errors(edits: list[tuple[int, int, str]]) -> None:
    text = EXAMPLE
    for position, length, insert in edits:
        position = min(position, len(text))
        text = text[:position] + insert + text[position + length :]
    load(text)


def test_the_example_itself_loads() -> None:
    assert isinstance(load(EXAMPLE), Config)


@pytest.mark.parametrize("text", ["", "~", "[]", "- a", "a", "1", "!!binary aGk=", "&a [*a, *a]",
                                  "devices: [{id: a, plugin: nope, host: h}]", "\ufeffpoll: {}", "a: &x [1]\nb: *x",
                                  "poll: true", "probe: true", "defaults: true", "devices: true", "[a]: b",
                                  "? [a]\n: b", "probe: {allowed_targets: 1}", "a: " + "[" * 5000,
                                  "devices: [{id: a, plugin: synthetic, host: h, channels: 1}]"])
def test_edge_documents(text: str) -> None:
    load(text)
