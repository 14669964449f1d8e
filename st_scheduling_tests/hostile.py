"""A hostile Scheduling Pro server on loopback, written for the tests and independent of the simulator.

It speaks the spec's paths with a fixed baseline world (two schedulers of 300 sessions each on one day) and
misbehaves on request: `Hostile.mode` names the misbehaviour, from the table in the README's Reliability
section. Every request is recorded (method, raw path, whether it carried a bearer token).
"""

from __future__ import annotations

import functools
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

TENANT = 5550001
DAY = "2026-10-01"
SCHEDULERS = ("sched-a", "sched-b")
PER_SCHEDULER = 300
CLIENT_ID, CLIENT_SECRET, APP_KEY = "hostile-client", "hostile-secret", "hostile-app-key"
TOKEN = "hostile-token"


def session(scheduler: str, n: int, **changes) -> dict:
    record = {
        "id": f"{scheduler}-{n:04d}",
        "createdOn": f"{DAY}T{n // 60 % 24:02d}:{n % 60:02d}:00Z",
        "modifiedOn": f"{DAY}T{n // 60 % 24:02d}:{n % 60:02d}:30Z",
        "lastCheckinDate": f"{DAY}T{n // 60 % 24:02d}:{n % 60:02d}:30Z",
        "schedulerId": scheduler,
        "lastStep": "opened",
        "sessionOutcome": "abandoned",
        "customer": {
            "isNewCustomer": True,
            "isNewLocation": True,
            "address": {"zip": "78701"},
            "firstName": f"First{n}",
            "lastName": f"Last{n}",
            "email": f"person{n}@example.test",
            "phone": f"555-01{n:04d}",
        },
        "sourceTracking": {"utmSource": "google"},
    }
    return {**record, **changes}


def scheduler(sid: str) -> dict:
    return {
        "id": sid,
        "name": sid,
        "companyName": "Hostile HVAC",
        "createdOn": "2026-01-01T00:00:00Z",
        "modifiedOn": "2026-01-01T00:00:00Z",
        "schedulerStatus": "Active",
        "dataApiKey": "k",
        "isDefault": sid == SCHEDULERS[0],
        "mode": "Standard",
        "quickLaunchLink": "https://example.test",
    }


@dataclass
class Request:
    method: str
    path: str
    authorized: bool


@dataclass
class Hostile:
    """The server's state: its world, its mode, and what it was asked."""

    mode: str = "normal"
    schedulers: list[str] = field(default_factory=lambda: list(SCHEDULERS))
    sessions: dict[str, list[dict]] = field(
        default_factory=lambda: {s: [session(s, n) for n in range(PER_SCHEDULER)] for s in SCHEDULERS}
    )
    requests: list[Request] = field(default_factory=list)
    pii_canary: str = "canary.customer@example.test"
    trickle_seconds: float = 0.5
    overrides: dict[str, Callable] = field(default_factory=dict)
    hung_up: list[bool] = field(default_factory=list)  # per trickled answer: the client left before its end
    _trickle_ended: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def trickles(self, count: int, wait: float = 30.0) -> list[bool]:
        """`hung_up` once `count` trickled answers have ended (the server notices a hang-up at its next
        byte or two), or as it is after `wait` seconds."""
        with self._trickle_ended:
            self._trickle_ended.wait_for(lambda: len(self.hung_up) >= count, wait)
            return list(self.hung_up)

    def dribble(self, wfile, data: bytes) -> bool:
        """Write `data` one byte every `trickle_seconds`; False as soon as the client has hung up."""
        try:
            for byte in data:
                wfile.write(bytes([byte]))
                wfile.flush()
                time.sleep(self.trickle_seconds)
            left = False
        except OSError:
            left = True
        with self._trickle_ended:
            self.hung_up.append(left)
            self._trickle_ended.notify_all()
        return not left

    def misbehave(self, mode: Callable | str) -> None:
        """Answer as `mode` from now on: a function answering session pages (one of this module's, or a test's
        own), or the name of a mode the handler knows (`token_echo`, `token_empty`)."""
        if callable(mode):
            self.overrides[mode.__name__] = mode
            mode = mode.__name__
        self.mode = mode

    def sessions_page(self, sid: str, page: int, size: int) -> dict:
        records = self.sessions.get(sid, [])
        chunk = records[(page - 1) * size : page * size]
        return {
            "page": page,
            "pageSize": size,
            "hasMore": page * size < len(records),
            "totalCount": len(records),
            "data": chunk,
        }


def _handler(state: Hostile) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_state = state

        def log_message(self, *args) -> None:
            pass

        def send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            form = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(Request("POST", self.path, False))
            if state.mode == "token_echo":  # a proxy's error page that echoes the request body
                self.send(500, b"<html>upstream failed for request: " + form + b"</html>", "text/html")
                return
            if state.mode == "token_empty":
                self.send(200, orjson.dumps({"access_token": "", "expires_in": 900, "token_type": "Bearer"}))
                return
            self.send(200, orjson.dumps({"access_token": TOKEN, "expires_in": 900, "token_type": "Bearer"}))

        def do_GET(self) -> None:
            authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            state.requests.append(Request("GET", self.path, authorized))
            if not authorized:
                self.send(401, orjson.dumps({"title": "unauthorized"}))
                return
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = url.path.split("/")  # '', schedulingpro, v2, tenant, T, schedulers[, id, sessions]
            if len(parts) == 6 and parts[5] == "schedulers":
                self.send(
                    200,
                    orjson.dumps(
                        {
                            "page": 1,
                            "pageSize": 5000,
                            "hasMore": False,
                            "totalCount": len(state.schedulers),
                            "data": [scheduler(s) for s in state.schedulers],
                        }
                    ),
                )
                return
            if len(parts) != 8 or parts[7] != "sessions":
                self.send(404, orjson.dumps({"title": "not found", "traceId": "t-404"}))
                return
            page, size = int(query.get("page", 1)), int(query.get("pageSize", 5000))
            override = state.overrides.get(state.mode)
            if override:
                override(self, parts[6], page, size)
                return
            self.send(200, orjson.dumps(state.sessions_page(parts[6], page, size)))

    return Handler


def serve(state: Hostile) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


# -- misbehaviours: (handler, scheduler id, page, page size) -> an answer ------------------------------------
def endless_same_page(h, sid, page, size) -> None:
    h.send(200, orjson.dumps({**h.server_state.sessions_page(sid, 1, size), "hasMore": True}))


def trickle(h, sid, page, size) -> None:
    body = orjson.dumps(h.server_state.sessions_page(sid, page, size))
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.server_state.dribble(h.wfile, body[:50])


def trickle_headers(h, sid, page, size) -> None:
    """The status line and headers one byte at a time: a minute of them at 0.5 s a byte, then the page."""
    body = orjson.dumps(h.server_state.sessions_page(sid, page, size))
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Slow: {'.' * 40}\r\n\r\n"
    ).encode()
    if h.server_state.dribble(h.wfile, head):
        h.wfile.write(body)


@functools.cache
def bomb() -> bytes:
    """About 400 KB of gzip that inflates to 400 MB of JSON whitespace."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    blank = b" " * (1024 * 1024)
    return b"".join(
        [
            packer.compress(b'{"data": ['),
            *(packer.compress(blank) for _ in range(400)),
            packer.compress(b"]}"),
            packer.flush(),
        ]
    )


def gzip_bomb(h, sid, page, size) -> None:
    h.send(200, bomb(), Content_Encoding="gzip")


def billion_page(sid: str, page: int) -> bytes:
    """50 sessions never served before, `hasMore`, and a totalCount of a billion to excuse it."""
    data = [session(sid, PER_SCHEDULER + 50 * page + n) for n in range(50)]
    return orjson.dumps({"page": page, "pageSize": 50, "hasMore": True, "totalCount": 10**9, "data": data})


def endless_billion(h, sid, page, size) -> None:
    h.send(200, billion_page(sid, page))


def total_count_lots(h, sid, page, size) -> None:
    h.send(200, orjson.dumps({**h.server_state.sessions_page(sid, page, size), "totalCount": "lots"}))


def forbidden(h, sid, page, size) -> None:
    """A 403 whose detail names a customer: an error must not quote it."""
    h.send(
        403,
        orjson.dumps({"title": "Forbidden", "detail": f"{h.server_state.pii_canary} is not yours", "traceId": "t-403"}),
    )


def unprocessable(h, sid, page, size) -> None:
    h.send(
        422,
        orjson.dumps({"title": "Unprocessable", "errors": {"createdOnOrAfter": ["out of range"]}, "traceId": "t-422"}),
    )


def redirect_with_page(h, sid, page, size) -> None:
    h.send(302, orjson.dumps(h.server_state.sessions_page(sid, page, size)), Location="/elsewhere")


def empty_redirect(h, sid, page, size) -> None:
    h.send(307, b"", Location="/elsewhere")
