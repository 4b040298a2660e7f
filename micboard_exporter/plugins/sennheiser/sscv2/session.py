"""One SSCv2 device session: the httpx client, error mapping, capped bodies and the SSE subscription.

The session does no field parsing beyond the subscription handshake; it hands decoded resources to the
plugin through ``on_update``. Every OS, TLS and httpx exception becomes a
:class:`~micboard_exporter.errors.PollError` in exactly one place, :meth:`SSCv2Session._mapped`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import anyio
import httpx

from micboard_exporter.config_types import DeviceConfig
from micboard_exporter.errors import AuthError, DeviceTimeout, DeviceUnreachable, PollError, ProtocolError, kept
from micboard_exporter.plugins.sennheiser._common import BackgroundTask
from micboard_exporter.plugins.sennheiser.sscv2 import codec
from micboard_exporter.plugins.sennheiser.sscv2.codec import ABSENT, ResourceValue
from micboard_exporter.plugins.sennheiser.sscv2.transport import SSCv2Transport

_log = logging.getLogger(__name__)

DEFAULT_USERNAME: Final = "api"
DEFAULT_REQUEST_TIMEOUT_S: Final = 5.0
DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
DEFAULT_SSE_IDLE_TIMEOUT_S: Final = 120.0
BACKOFF_MIN_S: Final = 0.5
BACKOFF_MAX_S: Final = 30.0
#: Longest pause a ``Retry-After`` can impose. A device asking for more (or a bogus date far ahead) is
#: still polled every five minutes, so a recovered device is not dark for hours.
RETRY_AFTER_MAX_S: Final = 300.0
#: Sessions whose DELETE did not get through, remembered to be given back once the device answers again.
#: Devices hold few sessions per user (§1.6), so each one lost to a fault is a slot gone until it reboots.
STALE_SESSIONS_KEPT: Final = 8
_AUTH_ADVICE: Final = (
    "check in Sennheiser Control Cockpit that the device's '3rd party media control access' is set to "
    "'Secure' and that the configured password ({source}) is the third-party password"
)


class ResourceNotFound(ProtocolError):
    """HTTP 404: the path does not exist on this device (e.g. channel 3 on an EM 2)."""


class SessionClosed(ProtocolError):
    """The session was closed (the device left the config or changed) while a poll was still using it.

    Not transient: retrying would open a new session for a device the exporter no longer polls.
    """


class SSCv2Session:
    """HTTP/1.1 keep-alive client for one device plus its (optional) SSE subscription.

    ``on_update`` receives ``{path: value}`` for every notification, at once. Subscriptions follow
    §1.6: open the stream, take ``sessionUUID`` from the ``open`` event, PUT the path list on a second
    connection, keep that one session (PUT again when the list changes), DELETE it when the stream ends
    or the session closes, and reconnect with exponential backoff.
    """

    def __init__(
        self,
        device: DeviceConfig,
        *,
        on_update: Callable[[dict[str, ResourceValue]], None],
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = anyio.current_time,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        opts = device.options
        self.device_id = device.id
        self.address = f"{device.host}:{device.port or 443}"
        self._on_update = on_update
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self.timeout = float(opts.get("timeout", DEFAULT_REQUEST_TIMEOUT_S))
        self.max_body = int(opts.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        self.sse_idle_timeout = float(opts.get("sse_idle_timeout", DEFAULT_SSE_IDLE_TIMEOUT_S))
        self.backoff_min = float(opts.get("reconnect_min", BACKOFF_MIN_S))
        self.backoff_max = float(opts.get("reconnect_max", BACKOFF_MAX_S))
        self._username = str(opts.get("username", DEFAULT_USERNAME))
        secret = device.secret("password")
        self._secret_source = secret.source if secret is not None else "no password configured"
        self._verify: bool = bool(opts.get("verify_tls", True))
        self._ca_file: str | None = opts.get("ca_file")
        self._host = device.host
        self._port = device.port or 443
        self._auth = httpx.BasicAuth(self._username, secret.reveal()) if secret is not None else None
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._auth_logged = False
        self._paths: list[str] = []
        self._subscribed_paths: list[str] | None = None
        self.session_uuid: str | None = None
        self.stale_sessions: deque[str] = deque(maxlen=STALE_SESSIONS_KEPT)
        """Our sessions the device may still hold: their DELETE failed (the device was unreachable or stalled)."""
        self.generation = 0
        """Incremented each time a subscription becomes live, so the plugin can re-read everything once."""
        self.subscribed = False
        self.last_stream_error: PollError | None = None
        self.hold_until: float | None = None
        """``clock()`` time before which nothing is sent: the device asked for a pause (429/503 + Retry-After)."""
        self._hold_cause = ""
        self._stream = BackgroundTask(f"sscv2-sse-{device.id}", self._stream_loop)
        self._closed = False

    # ---------------------------------------------------------------- client and error mapping

    def _check_open(self, step: str) -> None:
        # A reload can close the session while a poll is still running: that poll must not open a new
        # client or event stream, or they would outlive the session with nobody left to close them.
        if self._closed:
            raise SessionClosed(f"{self.device_id} ({self.address}) {step}: session closed by a reload")

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            verify: ssl.SSLContext | bool
            if not self._verify:
                verify = False
            else:
                # Loading CA files reads the disk: keep it off the event loop.
                verify = await anyio.to_thread.run_sync(lambda: ssl.create_default_context(cafile=self._ca_file))
            # One connection carries the event stream; the others serve GET/PUT with keep-alive.
            limits = httpx.Limits(max_connections=4, max_keepalive_connections=3)
            self._client = httpx.AsyncClient(
                base_url=f"https://{self._host}:{self._port}",
                auth=self._auth,
                # Devices sit on the AV LAN: no proxy or CA bundle from the environment applies.
                trust_env=False,
                timeout=httpx.Timeout(self.timeout),
                # Tests may inject one (respx); ours closes the socket of an interrupted TLS handshake.
                transport=self._transport or SSCv2Transport(verify=verify, limits=limits),
                headers={"Accept": "application/json"},
            )
        return self._client

    @contextlib.contextmanager
    def _mapped(self, step: str) -> Iterator[None]:
        """The one seam where transport failures become typed poll errors."""
        where = f"{self.device_id} ({self.address}) {step}"
        try:
            yield
        except PollError:
            raise
        except Exception as exc:
            if self._closed:  # the client was closed under this request: not the device's fault
                raise SessionClosed(f"{where}: session closed by a reload") from exc
            typed = self._typed(where, exc)
            if typed is None:
                raise
            raise typed from exc

    def _typed(self, where: str, exc: Exception) -> PollError | None:
        """The poll error for a transport exception; ``None`` for one that is not about the device (a bug)."""
        if isinstance(exc, TimeoutError):  # before OSError, its base class
            return DeviceTimeout(f"{where}: no answer within {self.timeout:g} s")
        if isinstance(exc, httpx.TimeoutException):  # before TransportError, its base class
            return DeviceTimeout(f"{where}: {type(exc).__name__}")
        if isinstance(exc, httpx.TransportError):
            if _is_cert_error(exc):
                return ProtocolError(
                    f"{where}: TLS certificate not trusted ({_root(exc)}); set the device option ca_file to "
                    "the device's CA certificate, or verify_tls: false"
                )
            return DeviceUnreachable(f"{where}: {type(exc).__name__}: {_root(exc)}")
        if isinstance(exc, OSError):
            return DeviceUnreachable(f"{where}: {exc}")
        if isinstance(exc, codec.MalformedResponse):
            return ProtocolError(f"{where}: {exc}")
        return None

    def _check_hold(self, step: str) -> None:
        """Refuse to send while the device's ``Retry-After`` pause lasts (a transient error, no traffic)."""
        if self.hold_until is None:
            return
        remaining = self.hold_until - self._clock()
        if remaining <= 0:
            self.hold_until = None
            return
        raise DeviceUnreachable(
            f"{self.device_id} ({self.address}) {step}: not sent, the device asked for a pause "
            f"({self._hold_cause}); next request in {remaining:.1f} s"
        )

    @property
    def hold_remaining(self) -> float:
        """Seconds left of the device's ``Retry-After`` pause (0 when there is none)."""
        return 0.0 if self.hold_until is None else max(0.0, self.hold_until - self._clock())

    def _hold_for(self, status: int, retry_after: str | None) -> str:
        """Start the pause a 429/503 asks for; returns what to add to the error message."""
        if retry_after is None:
            return ""
        delay = codec.parse_retry_after(retry_after, self._wall_clock())
        if delay is None:
            return f" (unusable Retry-After {retry_after[:40]!r} ignored)"
        if delay <= 0:
            return ""
        delay = min(delay, RETRY_AFTER_MAX_S)
        self.hold_until = max(self.hold_until or 0.0, self._clock() + delay)
        self._hold_cause = f"HTTP {status} with Retry-After: {retry_after[:40]}"
        return f"; Retry-After: {retry_after[:40]}, next request in {delay:g} s"

    def _check_status(self, status: int, step: str, retry_after: str | None = None) -> None:
        if status in (401, 403):
            self._log_auth(status)
            raise AuthError(
                f"{self.device_id} ({self.address}) {step}: HTTP {status} for user {self._username!r}; "
                + _AUTH_ADVICE.format(source=self._secret_source)
            )
        if status == 429 or status >= 500:
            # RFC 9110 §10.2.3: Retry-After comes with 429 (RFC 6585 §4) and 503; honour it on both.
            pause = self._hold_for(status, retry_after) if status in (429, 503) else ""
            raise DeviceUnreachable(f"{self.device_id} ({self.address}) {step}: HTTP {status}{pause}")

    def _log_auth(self, status: int) -> None:
        if self._auth_logged:
            return
        self._auth_logged = True
        _log.warning(
            "sennheiser-sscv2 device %s (%s) refused user %r with HTTP %d: %s",
            self.device_id,
            self.address,
            self._username,
            status,
            _AUTH_ADVICE.format(source=self._secret_source),
        )

    async def _read_capped(self, response: httpx.Response, step: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise ProtocolError(
                f"{self.device_id} ({self.address}) {step}: body of {declared} bytes exceeds {self.max_body}"
            )
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self.max_body:
                raise ProtocolError(
                    f"{self.device_id} ({self.address}) {step}: body exceeds {self.max_body} bytes"
                )
        return bytes(body)

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, closing: bool = False
    ) -> tuple[int, bytes]:
        """One request with a total deadline and a capped body; returns status and body bytes.

        ``closing`` lets the final DELETE of a subscription through while the session is being closed.
        """
        step = f"{method} {path}"
        if not closing:
            self._check_open(step)
        self._check_hold(step)
        client = await self._get_client()
        headers = {"Content-Type": "application/json"} if body is not None else None
        with self._mapped(step):
            with anyio.fail_after(self.timeout):
                async with client.stream(method, path, content=body, headers=headers) as response:
                    self._check_status(response.status_code, step, response.headers.get("retry-after"))
                    data = await self._read_capped(response, step)
            if response.status_code < 300:
                self._auth_logged = False  # log again if the credentials break later
            if response.status_code < 300 or response.status_code in (400, 404, 422):
                return response.status_code, data
            raise ProtocolError(f"{self.device_id} ({self.address}) {step}: unexpected HTTP {response.status_code}")

    async def get(self, path: str) -> ResourceValue:
        """GET a resource: decoded JSON, :data:`ABSENT` on 422, :class:`ResourceNotFound` on 404."""
        status, data = await self.request("GET", path)
        if status == 422:
            return ABSENT
        if status == 404:
            raise ResourceNotFound(f"{self.device_id} ({self.address}) GET {path}: HTTP 404 (no such resource)")
        if status == 400:
            raise ProtocolError(f"{self.device_id} ({self.address}) GET {path}: HTTP 400")
        with self._mapped(f"GET {path}"):
            return codec.decode_json(data)

    # ---------------------------------------------------------------- subscription

    def subscribe(self, paths: list[str]) -> None:
        """Keep a subscription for ``paths``; starts the stream, or re-PUTs the list on the live session."""
        self._check_open("subscribe")
        self._paths = list(paths)
        self._stream.start()

    @property
    def wants_put(self) -> bool:
        """The live session's list differs from the wanted one."""
        return self.subscribed and self._subscribed_paths != self._paths

    async def update_paths(self) -> None:
        """PUT the wanted path list on the live session (a no-op when it is already current)."""
        if self.session_uuid is not None and self.wants_put:
            await self._put_paths(self.session_uuid)

    async def check_session(self) -> bool:
        """Ask the device whether our session still exists (422 = gone). Doubles as an authenticated ping."""
        uuid = self.session_uuid
        if uuid is None or not self.subscribed:
            return False
        status, _ = await self.request("GET", f"{codec.SUBSCRIPTIONS_PATH}/{uuid}")
        if status == 200:
            return True
        _log.info("sennheiser-sscv2 %s: subscription %s is gone (HTTP %d); reconnecting", self.device_id, uuid, status)
        await self.restart_stream()
        return False

    async def restart_stream(self) -> None:
        """Drop the current stream (its session is deleted) and start a new one."""
        await self._stream.stop()
        self.subscribed = False
        self._check_open("restart the event stream")
        self._stream.start()

    async def _put_paths(self, uuid: str) -> None:
        paths = list(self._paths)
        # A 400 names one path the device refuses (e.g. a transmitter resource with no transmitter):
        # drop it and try again, at most once per path.
        for _ in range(len(paths) + 1):
            path = f"{codec.SUBSCRIPTIONS_PATH}/{uuid}"
            status, body = await self.request("PUT", path, codec.encode_path_list(paths))
            if status < 300:
                # Refused paths are tried again when the wanted list next changes.
                self._subscribed_paths = list(self._paths)
                return
            if status == 422:
                raise ProtocolError(f"{self.device_id} ({self.address}): subscription {uuid} unknown to the device")
            bad = codec.parse_subscription_error(body)
            if status != 400 or bad is None or bad not in paths:
                raise ProtocolError(f"{self.device_id} ({self.address}): subscription PUT refused (HTTP {status})")
            _log.debug("sennheiser-sscv2 %s: device refused subscription to %s", self.device_id, bad)
            paths.remove(bad)
        raise ProtocolError(f"{self.device_id} ({self.address}): subscription PUT refused every path")

    async def _stream_loop(self) -> None:
        backoff = self.backoff_min
        while True:
            try:
                await self._run_stream()
            except PollError as exc:
                self.last_stream_error = kept(exc)
                _log.debug("sennheiser-sscv2 %s: event stream ended: %s", self.device_id, exc)
            else:
                self.last_stream_error = None
            finally:
                was_live = self.subscribed
                self.subscribed = False
                await self._delete_session()
            if was_live:
                backoff = self.backoff_min
            # Full jitter keeps a rack of receivers that lost power together from reconnecting in lockstep;
            # a device that asked for a pause (Retry-After) is not called again before it ends.
            jittered = backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
            await self._sleep(max(jittered, self.hold_remaining))
            backoff = min(backoff * 2, self.backoff_max)

    async def _run_stream(self) -> None:
        step = f"GET {codec.SUBSCRIPTIONS_PATH} (event stream)"
        self._check_hold(step)
        client = await self._get_client()
        timeout = httpx.Timeout(self.timeout, read=self.sse_idle_timeout)
        with self._mapped(step):
            async with client.stream(
                "GET", codec.SUBSCRIPTIONS_PATH, headers={"Accept": "text/event-stream"}, timeout=timeout
            ) as response:
                self._check_status(response.status_code, step, response.headers.get("retry-after"))
                if response.status_code != 200:
                    raise ProtocolError(f"{self.device_id} ({self.address}) {step}: HTTP {response.status_code}")
                location = response.headers.get("content-location")
                self.session_uuid = codec.session_from_content_location(location) if location else None
                parser = codec.SSEParser(max_event=self.max_body)
                async for chunk in response.aiter_text():
                    for event in parser.feed(chunk):
                        if event.event == "open":
                            self.session_uuid = codec.parse_open_event(event.data)
                            await self._put_paths(self.session_uuid)
                            self.generation += 1
                            self.subscribed = True
                            await self._give_back_stale_sessions()
                        elif event.event == "close":
                            return
                        elif self.subscribed:
                            self._on_update(codec.parse_notification(event.data))

    async def _delete_session(self) -> None:
        uuid, self.session_uuid = self.session_uuid, None
        self._subscribed_paths = None
        if uuid is None or self._client is None:
            return
        if not await self._give_back(uuid):
            self.stale_sessions.append(uuid)

    async def _give_back_stale_sessions(self) -> None:
        """The device answers again: DELETE the sessions a fault kept us from giving back, oldest first."""
        while self.stale_sessions:
            if not await self._give_back(self.stale_sessions[0]):
                return  # not answering after all: the next live stream tries again
            self.stale_sessions.popleft()

    async def _give_back(self, uuid: str) -> bool:
        """DELETE one of our sessions; True once the device no longer holds it (an answer of 422, unknown
        session, counts: it expired or the device restarted)."""
        # Sessions per user are limited: always give ours back, even while being cancelled.
        with anyio.CancelScope(shield=True), anyio.move_on_after(min(self.timeout, 2.0)):
            try:
                await self.request("DELETE", f"{codec.SUBSCRIPTIONS_PATH}/{uuid}", closing=True)
            except PollError as exc:
                _log.debug("sennheiser-sscv2 %s: DELETE of session %s failed: %s", self.device_id, uuid, exc)
            else:
                return True
        return False

    @property
    def streaming(self) -> bool:
        """Whether the subscription task is running."""
        return self._stream.running

    async def aclose(self) -> None:
        """Stop the stream (deleting the session) and close the client; the session cannot be reopened."""
        self._closed = True
        await self._stream.stop()
        await self._delete_session()
        if self._client is not None:
            client, self._client = self._client, None
            with anyio.CancelScope(shield=True):
                await client.aclose()


def _root(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc) or type(exc).__name__


def _is_cert_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)
