"""``--web.config.file``: TLS, basic auth and response headers in the Prometheus exporter-toolkit format.

The file has the same shape as every Prometheus exporter's, so one file and one habit serve them all::

    tls_server_config:
      cert_file: server.crt          # paths are relative to this file
      key_file: server.key
      min_version: TLS12             # TLS10 | TLS11 | TLS12 (default) | TLS13
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hash, never the password

Validation is strict and complete: unknown keys, toolkit keys Python's TLS cannot honour, unreadable
certificates and malformed hashes are all reported at once as :class:`~micboard_exporter.errors.ConfigError`
(file, path, reason), so the exporter refuses to start rather than serving with less protection than the
operator asked for.

:class:`WebConfigWatcher` re-reads the file, and the certificate, key and CA files it names, when any of them
changes (certificate rotation by cert-manager or certbot needs no restart). A rotation that fails
validation keeps serving with the previous, good settings and logs why.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import bcrypt
import yaml

from micboard_exporter.errors import ConfigError, ConfigErrors

log = logging.getLogger(__name__)

_TLS_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = MappingProxyType({
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
})
#: The toolkit's client_auth_type values Python's ssl module can implement faithfully.
_CLIENT_AUTH: Final[Mapping[str, ssl.VerifyMode]] = MappingProxyType({
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
})
#: Toolkit values we refuse with a reason: Python cannot accept a client certificate without verifying it.
_CLIENT_AUTH_UNSUPPORTED: Final = frozenset({"RequestClientCert", "RequireAnyClientCert"})
#: Toolkit keys that exist but that we do not implement; refusing them beats silently serving weaker TLS.
_TLS_UNSUPPORTED: Final[Mapping[str, str]] = MappingProxyType({
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "cipher_suites": "not supported: Python's TLS defaults (OpenSSL's secure cipher list) apply",
    "curve_preferences": "not supported: OpenSSL's default curves apply",
    "client_allowed_sans": "not supported: restrict clients with client_ca_file",
})
_TLS_KEYS: Final = frozenset({"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
                              "max_version", "prefer_server_cipher_suites"})
#: The response headers the toolkit lets a web config set (same list, compared case-insensitively).
ALLOWED_HEADERS: Final = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
                          "X-XSS-Protection", "Content-Security-Policy")
_BCRYPT_HASH: Final = re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
_MAX_FILE_BYTES: Final = 1 << 20
#: How often (at most) a connection makes the watcher look at the files' modification times.
CHECK_INTERVAL_S: Final = 1.0
#: Successful (user, password) checks remembered, so a scrape every few seconds does not pay bcrypt each time.
AUTH_CACHE_SIZE: Final = 64


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """A validated ``tls_server_config``."""

    cert_file: Path
    key_file: Path
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: Path | None = None

    def files(self) -> tuple[Path, ...]:
        """The files whose change means the context must be rebuilt."""
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A whole validated web config. ``ssl_context`` is built (and so proven loadable) at validation."""

    source: str
    tls: TlsSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    ssl_context: ssl.SSLContext | None = None

    def files(self) -> tuple[Path, ...]:
        """The web config file and every file it names."""
        return (Path(self.source),) + (self.tls.files() if self.tls else ())


def _err(errors: list[ConfigError], source: str, path: str, reason: str) -> None:
    errors.append(ConfigError(source, path, reason))


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def _load_yaml(path: Path) -> Any:
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigErrors([ConfigError(source, "", f"cannot read web config: {exc.strerror or exc}")]) from None
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigErrors([ConfigError(source, "", f"web config is larger than {_MAX_FILE_BYTES} bytes")])
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigErrors([ConfigError(source, "", f"YAML syntax error{where}")]) from None


def _check_readable(errors: list[ConfigError], source: str, where: str, path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError as exc:
        _err(errors, source, where, f"cannot read {path}: {exc.strerror or exc}")
        return False


def _parse_tls(doc: Any, source: str, base: Path, errors: list[ConfigError]) -> TlsSettings | None:
    if not isinstance(doc, dict):
        _err(errors, source, "tls_server_config", "expected a mapping")
        return None
    for key in doc:
        if key in _TLS_UNSUPPORTED:
            _err(errors, source, f"tls_server_config.{key}", _TLS_UNSUPPORTED[key])
        elif key not in _TLS_KEYS:
            _err(errors, source, f"tls_server_config.{key}", "unknown key")
    paths: dict[str, Path | None] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = doc.get(key)
        if value is None or value == "":
            paths[key] = None
        elif not isinstance(value, str):
            _err(errors, source, f"tls_server_config.{key}", "expected a file path")
            paths[key] = None
        else:
            resolved = _resolve(base, value)
            paths[key] = resolved if _check_readable(errors, source, f"tls_server_config.{key}", resolved) else None
    for key in ("cert_file", "key_file"):
        if doc.get(key) in (None, ""):
            _err(errors, source, f"tls_server_config.{key}", "required when tls_server_config is given")
    versions: dict[str, ssl.TLSVersion | None] = {"min_version": ssl.TLSVersion.TLSv1_2, "max_version": None}
    for key in versions:
        value = doc.get(key)
        if value is None:
            continue
        if value not in _TLS_VERSIONS:
            _err(errors, source, f"tls_server_config.{key}",
                 f"{value!r} is not a TLS version; use one of {', '.join(_TLS_VERSIONS)}")
        else:
            versions[key] = _TLS_VERSIONS[value]
    low, high = versions["min_version"], versions["max_version"]
    if low is not None and high is not None and high < low:
        _err(errors, source, "tls_server_config.max_version", "is lower than min_version")
    auth_name = doc.get("client_auth_type", "NoClientCert")
    client_auth = ssl.CERT_NONE
    if auth_name in _CLIENT_AUTH_UNSUPPORTED:
        _err(errors, source, "tls_server_config.client_auth_type",
             f"{auth_name} is not supported (a client certificate cannot be accepted without verifying it); "
             "use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
    elif auth_name not in _CLIENT_AUTH:
        _err(errors, source, "tls_server_config.client_auth_type",
             f"{auth_name!r} is not one of {', '.join(_CLIENT_AUTH)}")
    else:
        client_auth = _CLIENT_AUTH[auth_name]
    if client_auth != ssl.CERT_NONE and doc.get("client_ca_file") in (None, ""):
        _err(errors, source, "tls_server_config.client_ca_file", f"required with client_auth_type {auth_name}")
    if doc.get("client_ca_file") not in (None, "") and client_auth == ssl.CERT_NONE:
        _err(errors, source, "tls_server_config.client_auth_type",
             "client_ca_file is set but client_auth_type is NoClientCert: client certificates would be ignored")
    pref = doc.get("prefer_server_cipher_suites")
    if pref is not None and not isinstance(pref, bool):
        _err(errors, source, "tls_server_config.prefer_server_cipher_suites", "expected true or false")
    cert, key = paths["cert_file"], paths["key_file"]
    if cert is None or key is None or low is None:
        return None
    return TlsSettings(cert, key, low, high, client_auth, paths["client_ca_file"])


def build_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context for ``tls`` (raises ``ssl.SSLError``/``OSError`` when the files do not load)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    if tls.max_version is not None:
        context.maximum_version = tls.max_version
    # No renegotiation and no compression: the usual hardening, and what Go's crypto/tls does too.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(tls.cert_file, tls.key_file)
    context.verify_mode = tls.client_auth
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=tls.client_ca_file)
    return context


def _parse_users(doc: Any, source: str, errors: list[ConfigError]) -> dict[str, bytes]:
    if not isinstance(doc, dict):
        _err(errors, source, "basic_auth_users", "expected a mapping of user name to bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in doc.items():
        where = f"basic_auth_users.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            _err(errors, source, where, "a user name must be a non-empty string without ':'")
            continue
        if not isinstance(hashed, str):
            _err(errors, source, where, "expected a bcrypt hash string")
            continue
        match = _BCRYPT_HASH.match(hashed)
        # Never echo the value: someone may have pasted a password where the hash belongs.
        if match is None:
            _err(errors, source, where, "not a bcrypt hash (expected $2a$/$2b$/$2y$, a cost and 53 characters; "
                 "generate one with: python -c 'import bcrypt,getpass; "
                 "print(bcrypt.hashpw(getpass.getpass().encode(), bcrypt.gensalt()).decode())')")
            continue
        if not 4 <= int(match.group("cost")) <= 31:
            _err(errors, source, where, "bcrypt cost must be between 4 and 31")
            continue
        users[user] = hashed.encode("ascii")
    return users


def _parse_http(doc: Any, source: str, errors: list[ConfigError]) -> dict[str, str]:
    if not isinstance(doc, dict):
        _err(errors, source, "http_server_config", "expected a mapping")
        return {}
    headers: dict[str, str] = {}
    for key, value in doc.items():
        if key == "http2":
            # HTTP/2 is not served at all; accepting the toolkit's switch keeps shared files valid.
            if not isinstance(value, bool):
                _err(errors, source, "http_server_config.http2", "expected true or false")
        elif key == "headers":
            if not isinstance(value, dict):
                _err(errors, source, "http_server_config.headers", "expected a mapping of header to value")
                continue
            allowed = {h.lower(): h for h in ALLOWED_HEADERS}
            for name, text in value.items():
                where = f"http_server_config.headers.{name}"
                if not isinstance(name, str) or name.lower() not in allowed:
                    _err(errors, source, where, f"header not allowed; allowed: {', '.join(ALLOWED_HEADERS)}")
                elif not isinstance(text, str) or any(c in text for c in "\r\n\0"):
                    _err(errors, source, where, "expected a single-line string")
                else:
                    headers[allowed[name.lower()]] = text
        else:
            _err(errors, source, f"http_server_config.{key}", "unknown key")
    return headers


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file; raise :class:`ConfigErrors` listing every problem."""
    file = Path(path)
    source = str(file)
    doc = _load_yaml(file)
    if doc is None:
        return WebConfig(source)
    if not isinstance(doc, dict):
        raise ConfigErrors([ConfigError(source, "", "expected a mapping at the top level")])
    errors: list[ConfigError] = []
    tls = users = headers = None
    for key, value in doc.items():
        if key == "tls_server_config":
            tls = _parse_tls(value, source, file.parent, errors)
        elif key == "basic_auth_users":
            users = _parse_users(value, source, errors)
        elif key == "http_server_config":
            headers = _parse_http(value, source, errors)
        else:
            _err(errors, source, str(key), "unknown key; expected tls_server_config, http_server_config, "
                 "basic_auth_users")
    context = None
    if tls is not None and not errors:
        try:
            context = build_ssl_context(tls)
        except (ssl.SSLError, OSError, ValueError) as exc:
            _err(errors, source, "tls_server_config",
                 f"cannot load certificate/key/CA ({tls.cert_file}, {tls.key_file}): {exc}")
    if errors:
        raise ConfigErrors(errors)
    return WebConfig(source, tls, MappingProxyType(users or {}), MappingProxyType(headers or {}), context)


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes without leaking which users exist.

    An unknown user is checked against a dummy hash of the same cost as the real ones, so a wrong user
    and a wrong password take the same time. User names are compared by dictionary lookup on the
    *claimed* name only; the expensive, constant-shape part is bcrypt itself.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        cost = max((int(h[4:6]) for h in self._users.values()), default=4)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        # Random per process: cache keys are useless outside it, and never contain the password itself.
        self._pepper = secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        """Whether any user is configured (otherwise every request is allowed)."""
        return bool(self._users)

    def check(self, user: str, password: str) -> bool:
        """True when ``user`` exists and ``password`` matches its hash."""
        hashed = self._users.get(user)
        valid_user = hashed is not None
        target = hashed if hashed is not None else self._dummy
        key = hmac.new(self._pepper, b"\0".join((user.encode(), password.encode(), target)), hashlib.sha256).digest()
        with self._lock:
            if valid_user and key in self._cache:
                self._cache.move_to_end(key)
                return True
        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), target)
        except ValueError:
            ok = False
        if ok and valid_user:
            with self._lock:
                self._cache[key] = None
                while len(self._cache) > AUTH_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return ok and valid_user


@dataclass(frozen=True, slots=True)
class _Active:
    config: WebConfig
    auth: BasicAuth
    stamps: tuple[tuple[int, int, int], ...]


def _stamps(files: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((0, -1, 0))
    return tuple(out)


class WebConfigWatcher:
    """The current web config, re-read when the file or a file it names changes."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._failed_stamps: tuple[tuple[int, int, int], ...] | None = None
        self.reloads = 0
        """How many times a changed file was loaded successfully (for tests and logs)."""
        if self.path is None:
            self._active = _Active(WebConfig("<none>"), BasicAuth({}), ())
        else:
            config = load_web_config(self.path)  # errors reach the caller at startup
            self._active = _Active(config, BasicAuth(config.users), _stamps(config.files()))
            if config.users and config.tls is None:
                log.warning("basic auth is configured without TLS in %s: passwords cross the network in clear "
                            "text", self.path)

    @property
    def config(self) -> WebConfig:
        """The active web config (checking for changes at most every :data:`CHECK_INTERVAL_S`)."""
        self.maybe_reload()
        return self._active.config

    @property
    def auth(self) -> BasicAuth:
        """The active basic-auth checker."""
        return self._active.auth

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Re-read the files if they changed; True if new settings were loaded. Never raises."""
        if self.path is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked < CHECK_INTERVAL_S:
            return False
        if not self._lock.acquire(blocking=force):
            return False  # another thread is checking right now
        try:
            self._checked = now
            active = self._active
            stamps = _stamps(active.config.files())
            if stamps == active.stamps or stamps == self._failed_stamps:
                return False
            try:
                config = load_web_config(self.path)
            except ConfigErrors as exc:
                self._failed_stamps = stamps
                log.error("web config %s changed but is invalid; keeping the previous settings:\n%s", self.path, exc)
                return False
            self._failed_stamps = None
            auth = active.auth if config.users == active.config.users else BasicAuth(config.users)
            self._active = _Active(config, auth, _stamps(config.files()))
            self.reloads += 1
            log.info("web config %s reloaded (tls: %s, users: %d)", self.path,
                     "on" if config.tls else "off", len(config.users))
            return True
        finally:
            self._lock.release()
