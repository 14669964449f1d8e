"""One wall-clock deadline per request, from connect to the last byte of the body, headers included.

httpx's timeouts bound each network operation on its own: a server sending one byte every second, in the
status line, the headers or the body, never trips them. The client's transport passes every connect, TLS
handshake, read and write through the deadline the sending thread has set, so none of them waits past it.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx


class Deadline(threading.local):
    """The calling thread's request deadline (on `time.monotonic`), if one is set."""

    at: float | None = None
    cut: bool = False  # whether the deadline, not the operation's own timeout, bounded the latest wait

    @contextmanager
    def within(self, seconds: float) -> Iterator[Deadline]:
        self.at, self.cut = time.monotonic() + seconds, False
        try:
            yield self
        finally:
            self.at = None

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def clamp(self, timeout: float | None, expired: type[Exception]) -> float | None:
        """`timeout`, shortened to what is left before the deadline; `expired` once nothing is left."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        self.cut = timeout is None or left <= timeout
        if left <= 0:
            raise expired("the request deadline passed")
        return left if self.cut else timeout


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline):
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        secured = self._stream.start_tls(
            ssl_context, server_hostname, self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        )
        return _Stream(secured, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, deadline: Deadline):
        self._deadline, self._sockets = deadline, httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._sockets.connect_tcp(
            host, port, self._deadline.clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _Stream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport over sockets that honour `deadline`. (Name resolution is the one wait it cannot
    cut short: the system resolver takes no timeout.)"""

    def __init__(self, deadline: Deadline, limits: httpx.Limits):
        # httpx's constructor offers no way to give its connection pool a network backend, so the pool is
        # built here; every other method of the transport only uses it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(deadline),
        )
