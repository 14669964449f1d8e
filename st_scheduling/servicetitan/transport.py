"""The wire: where the API is, and one pooled HTTP client that reads each response whole, within its bounds.

A response is read within one wall-clock deadline (see `deadline`) and within the size caps of `Limits`, as
received and once decompressed. Redirects are never followed, and credentials travel only over https, or to a
server on this machine.
"""

from __future__ import annotations

import ipaddress
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson

from st_scheduling.servicetitan.deadline import Deadline, DeadlineTransport
from st_scheduling.servicetitan.errors import ConfigurationError, MalformedResponseError, ResponseLimitError
from st_scheduling.servicetitan.memory import Body, PooledBytes
from st_scheduling.servicetitan.paging import MIB

API_PATH = "/schedulingpro/v2"
ENVIRONMENTS = {
    "production": ("https://api.servicetitan.io", "https://auth.servicetitan.io/connect/token"),
    "integration": (
        "https://api-integration.servicetitan.io",
        "https://auth-integration.servicetitan.io/connect/token",
    ),
}

# httpx logs every request URL at INFO; keep request lines out of logs entirely.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_safe_url(url: str, setting: str) -> None:
    """Credentials travel only over https, except to a server on this machine (the simulator, a test)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigurationError(
        f"{setting} must be an https URL (http is allowed only for a loopback host such as "
        f"127.0.0.1); got scheme {parts.scheme or 'none'!r} for host {parts.hostname!r}"
    )


@dataclass(frozen=True)
class Endpoints:
    api_base: str  # scheme://host, without the /schedulingpro/v2 path
    token_url: str

    def __post_init__(self) -> None:
        _require_safe_url(self.api_base, "ST_ENVIRONMENT")
        _require_safe_url(self.token_url, "ST_TOKEN_URL")

    @classmethod
    def resolve(cls, environment: str, token_url: str | None = None) -> Endpoints:
        """`production`, `integration`, or a base URL of any server speaking the API (e.g. the simulator)."""
        if environment in ENVIRONMENTS:
            api, default_token_url = ENVIRONMENTS[environment]
        elif environment.startswith(("http://", "https://")):
            api = environment.rstrip("/").removesuffix(API_PATH)
            default_token_url = f"{api}/connect/token"
        else:
            raise ConfigurationError(
                f"ST_ENVIRONMENT={environment!r} is not one of simulator, integration, production or an http(s) URL"
            )
        return cls(api, token_url or default_token_url)


@dataclass(frozen=True)
class Limits:
    """What one request, and one read of a window, may cost. Defaults fit a live tenant: the API's own timeout
    is 100 s, and a full 5000-session page is about 10 MB."""

    request_seconds: float = 100.0  # wall clock from connecting to the last byte, however slowly bytes trickle in
    max_wire_bytes: int = 64 * MIB  # as received (compressed)
    max_body_bytes: int = 256 * MIB  # once decompressed
    page_slack: int = 2  # pages allowed beyond ceil(totalCount / pageSize)
    # One read of a window, whatever totalCount says: 1000 full pages are 5 million records, 10 times the
    # largest scheduler-window of the benchmarks; a full page is about 10 MB.
    max_pages_per_window: int = 1000
    max_window_bytes: int = 16 * 1024 * MIB


class Transient(Exception):
    """A failure that asking again may cure. The retry loop handles it: it never leaves the client."""

    def __init__(self, problem: str, retry_after: float | None = None, kind: str | None = None):
        self.problem, self.retry_after = problem, retry_after
        self.kind = kind or problem.split(" ")[0]


@dataclass(frozen=True)
class Response:
    status: int
    headers: httpx.Headers
    body: Body


class Transport:
    """One pooled httpx client, safe to share between threads."""

    def __init__(self, limits: Limits, transport: httpx.BaseTransport | None, max_connections: int):
        self.limits = limits
        self._deadline = Deadline()
        pool = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(
            transport=transport or DeadlineTransport(self._deadline, pool),
            follow_redirects=False,
            timeout=httpx.Timeout(limits.request_seconds, connect=min(10.0, limits.request_seconds)),
        )

    def close(self) -> None:
        self._http.close()

    def get(self, url: str, params: Mapping[str, str | int], headers: Mapping[str, str], seconds: float) -> Response:
        return self._read(self._http.build_request("GET", url, params=params, headers=headers), seconds)

    def post_form(self, url: str, form: Mapping[str, str], seconds: float) -> Response:
        return self._read(self._http.build_request("POST", url, data=form), seconds)

    def _read(self, request: httpx.Request, seconds: float) -> Response:
        """Send and read the whole response within `seconds` and the size caps.

        The deadline covers connecting, the status line, the headers and the body, however slowly their bytes
        arrive (see `deadline`).
        """
        request.headers["Accept-Encoding"] = "gzip, deflate"
        with self._deadline.within(seconds) as deadline:
            try:
                response = self._http.send(request, stream=True)
                try:
                    body = self._body(response, request.url.path, deadline)
                finally:
                    response.close()
            except httpx.TimeoutException:
                if not deadline.cut:
                    raise
                body = None
        if body is None:
            raise Transient(f"deadline: the response took longer than {round(seconds, 1):g} s", kind="deadline")
        return Response(response.status_code, response.headers, body)

    def _body(self, response: httpx.Response, path: str, deadline: Deadline) -> Body | None:
        """The body, decompressed in bounded steps so a small gzip body cannot inflate past the cap before it is
        noticed; None once the deadline has passed."""
        limits = self.limits
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limits.max_wire_bytes:
            raise ResponseLimitError(
                f"{path} announced {int(length)} bytes, more than the {limits.max_wire_bytes}-byte cap"
            )
        inflate = _decompressor(response.headers.get("Content-Encoding", ""), path)
        # Sized once when the length is announced and not compressed; otherwise grown by doubling.
        body, received = PooledBytes(int(length) if length.isdigit() and not inflate else MIB), 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > limits.max_wire_bytes:
                raise ResponseLimitError(f"{path} sent more than the {limits.max_wire_bytes}-byte cap")
            body.append(_inflate(inflate, chunk, limits.max_body_bytes - body.size + 1) if inflate else chunk)
            if body.size > limits.max_body_bytes:
                raise ResponseLimitError(f"{path} decompresses to more than the {limits.max_body_bytes}-byte cap")
            if deadline.passed():  # a transport of the caller's own (the in-process simulator) has no deadline
                return None
        return body.view()


def json_body(raw: Body, endpoint: str) -> object:
    """A whole body as JSON; one that does not parse may have been cut short, so asking again may help."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedResponseError(endpoint, None, "not valid JSON", retryable=True) from None


def _decompressor(encoding: str, path: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    raise ResponseLimitError(f"{path} came with Content-Encoding {encoding!r}, which was not asked for")


def _inflate(inflate: zlib._Decompress, chunk: bytes, room: int) -> bytes:
    """At most `room` bytes of what `chunk` inflates to (the caller fails the response past its cap)."""
    try:
        return inflate.decompress(chunk, max(room, 1))
    except zlib.error:
        raise MalformedResponseError(
            "response", None, "a compressed body that does not decompress", retryable=True
        ) from None
