"""An HTTP proxy that adds a per-request delay in front of a stand-in (moto S3, the GCS emulator).

Real S3 and GCS answer in 20-50 ms per request; the stand-ins answer in about a millisecond, so
code that reads one object after another looks fine against them and is slow against a real
bucket. Put :func:`latency_proxy` between a client and a stand-in to measure that::

    with moto_s3_server() as moto, latency_proxy(moto, delay=0.02) as endpoint:
        client = s3_client(endpoint)   # every request now waits ~20 ms (+- jitter)

The proxy is a threaded HTTP/1.1 server (keep-alive, one upstream connection per client
connection). It forwards the request line, headers (``Host`` included, so signed requests stay
valid) and body unchanged, sleeps ``delay`` +- ``jitter`` seconds, and relays the answer with a
``Content-Length``; it also serves as a plain HTTP proxy (``HTTP_PROXY``) of that one upstream.
``faults`` maps a path substring to an HTTP status answered instead of
forwarding (a failing object; status ``DROP``: the connection is closed without an answer, as a
network failure; ``fault_times`` limits how often, for a transient fault); ``slow``
maps a path substring to extra seconds (a slow object); ``seen``, when a list, gets each request's
method, path and headers.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DEFAULT_DELAY = 0.020
DEFAULT_JITTER = 0.005
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
)


DROP = 0
"""The fault "status" that closes the connection without answering."""


@dataclass
class LatencySettings:
    """What the proxy does to each request; change it while the proxy runs (thread-safe reads)."""

    delay: float = DEFAULT_DELAY
    jitter: float = DEFAULT_JITTER
    faults: dict[str, int] = field(default_factory=dict)
    fault_times: dict[str, int] = field(default_factory=dict)
    """How many more times the fault of a path substring answers (absent: every time)."""
    slow: dict[str, float] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] | None = None
    """Set to a list to record each request: method, path, headers."""
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    """The most requests the proxy held at once (1 for a client that waits for each answer)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def wait_for(self, path: str) -> float:
        extra = sum(seconds for part, seconds in self.slow.items() if part in path)
        return max(0.0, self.delay + random.uniform(-self.jitter, self.jitter)) + extra

    def fault_for(self, path: str) -> int | None:
        with self._lock:
            for part, status in self.faults.items():
                if part not in path:
                    continue
                left = self.fault_times.get(part)
                if left is None:
                    return status
                if left > 0:
                    self.fault_times[part] = left - 1
                    return status
            return None

    def record(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        if self.seen is not None:
            with self._lock:
                self.seen.append((method, path, dict(headers)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    _connection: http.client.HTTPConnection | None = None

    def _upstream(self) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is None:
            connection = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port)
            self._connection = connection
        return connection

    def _relay(self) -> None:
        settings = self.server.settings
        settings.begin()
        try:
            self._delayed(settings)
        finally:
            settings.end()

    def _delayed(self, settings: LatencySettings) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        threading.Event().wait(settings.wait_for(self.path))
        settings.record(self.command, self.path, dict(self.headers.items()))
        status = settings.fault_for(self.path)
        if status == DROP:
            self.close_connection = True
            return
        if status is not None:
            self._answer(status, [("Content-Type", "text/plain")], b"injected fault\n")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            answer = self._forward(headers, body)
        except (OSError, http.client.HTTPException):
            self._connection = None
            answer = self._forward(headers, body)  # the upstream closed a kept-alive connection
        self._answer(*answer)

    def _forward(
        self, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = self._upstream()
        # A client that uses us as its HTTP proxy sends the absolute form (http://host/path).
        parts = urlsplit(self.path)
        path = parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else self.path
        connection.request(self.command, path, body=body, headers=dict(headers))
        response = connection.getresponse()
        data = response.read()
        if response.will_close:
            connection.close()
            self._connection = None
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        return response.status, kept, data

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        # A HEAD answer keeps the upstream's length (the object's size) and sends no body.
        length = dict((k.lower(), v) for k, v in headers).get("content-length", str(len(data)))
        self.send_header("Content-Length", length if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _relay


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    """Connects not yet accepted. Python's default of 5 makes the kernel drop the 6th of a burst
    of concurrent connects (a scan's read-ahead threads opening their connections), and TCP
    retries it only a second later: a stall that no real bucket has."""

    def __init__(self, upstream: str, settings: LatencySettings):
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.settings = settings


@contextmanager
def latency_proxy(
    upstream: str,
    *,
    delay: float = DEFAULT_DELAY,
    jitter: float = DEFAULT_JITTER,
    settings: LatencySettings | None = None,
) -> Iterator[str]:
    """Run the proxy on a free port of 127.0.0.1 in front of ``upstream`` (``http://host:port``);
    yields its endpoint. Pass ``settings`` to change delay, faults or slow paths while it runs."""
    settings = settings or LatencySettings(delay=delay, jitter=jitter)
    server = _ProxyServer(upstream, settings)
    thread = threading.Thread(target=server.serve_forever, name="latency-proxy", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """``python -m standins.latency --upstream URL [--delay S] [--jitter S]``: run the proxy in a
    process of its own (so it does not share a GIL with the server or the client); prints its
    endpoint as one JSON line and runs until its standard input closes."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY)
    parser.add_argument("--jitter", type=float, default=None, help="default: a quarter of the delay")
    args = parser.parse_args(argv)
    jitter = args.delay / 4 if args.jitter is None else args.jitter
    with latency_proxy(args.upstream, delay=args.delay, jitter=jitter) as endpoint:
        print(json.dumps({"endpoint": endpoint}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
