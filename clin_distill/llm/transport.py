"""HTTP for the LLM teachers, where notes (patient data) and keys travel: the PHI guard for every
URL, one `requests.Session` per endpoint, and requests with a wall-clock deadline.

Why not plain `requests.post`: by default it follows redirects (a 307 or 308 re-POSTs the note to
whatever host `Location` names, and Azure's `api-key` header survives a cross-host redirect), it
sends everything through the proxies named in HTTP(S)_PROXY / ALL_PROXY and takes credentials from
~/.netrc, and its timeout bounds each socket read, not the request: a server that trickles its
answer one byte at a time holds a request for as long as it likes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

ALLOW_REMOTE_ENV = "CLIN_DISTILL_ALLOW_REMOTE_LLM"
MAX_BODY_BYTES = 64 * 2**20  # an answer of a few thousand tokens is a few kB
CHUNK_BYTES = 16_384


class RemoteEndpointRefused(PermissionError):
    """A URL that would send notes or a key off this machine without the user's opt-in."""


class LLMRequestError(RuntimeError):
    """A request that failed for good (after retries); the message never holds note text."""


class RequestDeadline(TimeoutError):
    """No complete answer within the request's wall-clock deadline."""


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a DNS name other than localhost: treated as remote
        return False


def remote_allowed(allow_remote: bool) -> bool:
    return allow_remote or os.environ.get(ALLOW_REMOTE_ENV) == "1"


def models_url(endpoint: str, verify_url: str | None) -> str:
    """The model check's URL: `verify_url` as configured ("" skips the check), by default the
    endpoint's own model list (/chat/completions replaced by /models)."""
    if verify_url is None:
        return endpoint.split("?")[0].removesuffix("/chat/completions") + "/models"
    return verify_url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def check_urls(
    name: str, endpoint: str, allow_remote: bool, verify_url: str | None = None, proxy: str | None = None
) -> None:
    """The PHI guard, applied to every URL a teacher contacts, before any request: each must be
    loopback unless the user opted in; the model check (which gets the key) must be on the
    endpoint's own host; a proxy forwards notes elsewhere, so it needs the opt-in even on loopback.
    """
    opted_in = remote_allowed(allow_remote)
    for role, url in (("endpoint", endpoint), ("verify_url", verify_url), ("proxy", proxy)):
        if not url:
            continue
        if urlsplit(url).scheme not in ("http", "https"):
            raise RemoteEndpointRefused(f"LLM teacher '{name}': {role} must be an http(s) URL")
        if not (is_loopback(url) or opted_in):
            raise RemoteEndpointRefused(
                f"LLM teacher '{name}': {role} host '{urlsplit(url).hostname}' is not loopback, so clinical "
                f"notes would leave this machine. Refused by default. Opt in only where an agreement covers "
                f"it (e.g. a BAA): set {ALLOW_REMOTE_ENV}=1 or run with --vars.allow_remote_llm=true."
            )
    if verify_url and _origin(verify_url) != _origin(endpoint):
        raise RemoteEndpointRefused(
            f"LLM teacher '{name}': verify_url is on '{urlsplit(verify_url).netloc}', not on the endpoint's "
            f"host '{urlsplit(endpoint).netloc}', and would receive the key; use the endpoint's own /models "
            f'or verify_url = "" to skip the check.'
        )
    if proxy and not opted_in:
        raise RemoteEndpointRefused(
            f"LLM teacher '{name}': proxy '{urlsplit(proxy).netloc}' would receive every note; a proxy is "
            f"used only with the remote opt-in ({ALLOW_REMOTE_ENV}=1 or --vars.allow_remote_llm=true)."
        )


# The deadline of the request running in this thread. The connections below hand it their socket
# when they connect or are reused, so that it can shut the socket down when time is up, whatever a
# read blocks on (headers or body; http.client drops the connection's own reference to the socket
# once a response that closes the connection has begun, so the socket itself is kept).
_current = threading.local()


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # the plain socket's shutdown, also under TLS
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watch:
    def __init__(self, seconds: float):
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def add(self, sock: socket.socket | None) -> None:
        if sock is not None:
            self._sockets.append(sock)
            if self.expired.is_set():
                _shut(sock)

    def _expire(self) -> None:
        self.expired.set()
        for sock in self._sockets:
            _shut(sock)

    def __enter__(self) -> _Watch:
        _current.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.watch = None


def _watch(sock: socket.socket | None) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(sock)


class _WatchedConnection:
    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)  # type: ignore[attr-defined]


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedPool:
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        _watch(getattr(connection, "sock", None))  # a kept-alive connection: connected already
        return connection


class _WatchedHTTPPool(_WatchedPool, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self.POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = self.POOLS
        return manager


def make_session(proxy: str | None = None) -> requests.Session:
    """A session that reads nothing from the environment (no proxy variables, no .netrc, no CA
    bundle variables), follows no redirect, and uses `proxy` only when given."""
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    session.proxies = {"http": proxy, "https": proxy} if proxy else {}
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class Reply:
    """A complete HTTP answer (the body read within the deadline)."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _redirect_refused(where: str, response: requests.Response | None) -> LLMRequestError:
    """Names the status only: `Location` and the reason phrase are the server's words."""
    status = response.status_code if response is not None else "3xx"
    return LLMRequestError(
        f"{where} answered HTTP {status} (a redirect); redirects are never followed, so nothing was "
        f"sent elsewhere"
    )


def request(session: requests.Session, method: str, url: str, deadline_s: float, **kwargs: Any) -> Reply:
    """One request, body included, within `deadline_s` seconds of wall-clock time or
    `RequestDeadline`; a 3xx answer is an `LLMRequestError`, never followed."""
    where = urlsplit(url).netloc
    end = time.monotonic() + deadline_s
    with _Watch(deadline_s) as watch:
        try:
            try:
                r = session.request(
                    method,
                    url,
                    allow_redirects=False,
                    stream=True,
                    timeout=(deadline_s, deadline_s),
                    **kwargs,
                )
            except requests.TooManyRedirects as err:  # max_redirects = 0: a 3xx that names a Location
                raise _redirect_refused(where, err.response) from None
            with r:
                if 300 <= r.status_code < 400:
                    raise _redirect_refused(where, r)
                body = bytearray()
                for chunk in r.iter_content(CHUNK_BYTES):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise LLMRequestError(f"{where}: answer larger than {MAX_BODY_BYTES >> 20} MiB")
                    if time.monotonic() > end:
                        break
        except requests.RequestException:
            if not watch.expired.is_set():
                raise
        if watch.expired.is_set() or time.monotonic() > end:
            raise RequestDeadline(f"{where}: no complete answer within max_request_time ({deadline_s:g} s)")
    return Reply(r.status_code, dict(r.headers), bytes(body))
