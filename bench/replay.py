"""A replay server for benchmarks: recorded API responses served as bytes, so the server is not what is measured.

    python -m bench.replay UPSTREAM_BASE_URL [--port 0] [--latency-ms 0]

The first GET of each path and query (order and `includeTotal` aside) is forwarded to the upstream server
(the simulator, with a frozen clock) and its body and `Date` kept in memory (so the API's clock is the simulator's
frozen one, as a read of changes needs); every later identical GET is answered from
memory with no work but a socket write. POSTs (the token endpoint) are forwarded. `--latency-ms` adds a
fixed delay to every answer, to model a distant API. Prints its base URL on the first line.
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from st_scheduling.simulator.__main__ import stop_when_terminated


def cache_key(target: str) -> str:
    parts = urlsplit(target)
    query = sorted((k, v) for k, v in parse_qsl(parts.query) if k != "includeTotal")
    return f"{parts.path}?{urlencode(query)}"


def make_handler(upstream: str, latency: float) -> type[BaseHTTPRequestHandler]:
    recorded: dict[str, tuple[str, bytes, str | None]] = {}
    lock = threading.Lock()
    http = httpx.Client(base_url=upstream, timeout=600)

    class Replay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: benchmarks print their own lines
            pass

        def _answer(self, status: int, content_type: str, body: bytes, date: str | None = None) -> None:
            if latency:
                time.sleep(latency)
            self.date = date
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def date_time_string(self, timestamp: float | None = None) -> str:
            return getattr(self, "date", None) or super().date_time_string(timestamp)

        def do_GET(self) -> None:
            key = cache_key(self.path)
            found = recorded.get(key)
            if found is None:
                parts = urlsplit(self.path)
                params = [*parse_qsl(parts.query), ("includeTotal", "true")]
                with lock:
                    headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "st-app-key")}
                    response = http.get(parts.path, params=params, headers=headers)
                found = (
                    response.headers.get("Content-Type", "application/json"),
                    response.content,
                    response.headers.get("Date"),
                )
                if response.status_code != 200:
                    self._answer(response.status_code, *found)
                    return
                recorded[key] = found
            self._answer(200, *found)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            response = http.post(self.path, content=body, headers={"Content-Type": self.headers["Content-Type"]})
            self._answer(
                response.status_code,
                response.headers.get("Content-Type", "application/json"),
                response.content,
                response.headers.get("Date"),
            )

    return Replay


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("upstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    stop_when_terminated()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream, args.latency_ms / 1000))
    server.daemon_threads = True
    print(f"replay serving http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
