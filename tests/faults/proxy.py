"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for the fault tests.

    with FaultProxy("http://127.0.0.1:8080", rate=0.2, faults=("429", "503", "slow"), seed=15,
                    match=lambda method, path: path.endswith(":generateContent")) as proxy:
        os.environ["GOOGLE_VERTEX_BASE_URL"] = proxy.url       # the SDK now talks to the proxy
        ...
    proxy.injected    # Counter: {"429": 3, "503": 2, "slow": 4}
    proxy.total_injected, proxy.seen, proxy.forwarded

Every request is forwarded to ``upstream`` as it came (method, path, query, headers, body) and
the answer sent back whole, with a ``Content-Length``. A request that ``match`` selects gets a
decision from one seeded ``random.Random``: with probability ``rate`` one of ``faults``, drawn
uniformly; otherwise it passes clean. The decisions are a fixed sequence for a seed; which
request draws which one depends on arrival order, as with a real flaky network.

Faults:

* ``"429"``, ``"500"``, ``"502"``, ``"503"``, ``"504"`` (any status given as digits): the
  request never reaches upstream; the answer is that status with Google's error body
  ``{"error": {"code", "message", "status"}}``.
* ``"slow"``: the request waits ``delay`` seconds (uniform in the range, seeded), then is
  forwarded.
* ``"drop"``: the request *is* forwarded (upstream does the work, as with a real connection
  lost on the way back), then the status line, headers and half the body are sent and the
  connection is closed: the client sees the connection die mid-response.

``max_per_request`` caps the faults one distinct request (method, path, body) can get, so
that a client with N attempts is never handed N faults in a row by chance: the tests then
measure the retries instead of the luck of the seed. ``rewrite_urls`` replaces the upstream's
own address in answers (a ``mediaLink``, a ``Location``) with the proxy's, as a front end
with an external URL would, so that follow-up requests come through the proxy too.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}
FAULT_KINDS = ("slow", "drop")


def google_error(code: int, message: str) -> bytes:
    """The body Google's front end sends with an error status."""
    return json.dumps(
        {"error": {"code": code, "message": message, "status": STATUS_NAMES.get(code, "UNKNOWN")}}
    ).encode()


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (after a dropped answer, a timeout) are part of the game, not errors."""

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FaultProxy:
    """A reverse proxy to ``upstream`` that injects faults at ``rate`` (module docstring)."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.2,
        faults: tuple[str, ...] = ("429", "503", "slow"),
        seed: int | str = 15,
        match: Callable[[str, str], bool] | None = None,
        delay: tuple[float, float] = (0.2, 1.0),
        max_per_request: int | None = None,
        rewrite_urls: bool = False,
        port: int = 0,
        upstream_timeout: float = 120.0,
    ) -> None:
        for fault in faults:
            if fault not in FAULT_KINDS and not (fault.isdigit() and 400 <= int(fault) <= 599):
                raise ValueError(f"unknown fault {fault!r}: an HTTP error status, 'slow' or 'drop'")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], not {rate}")
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self.upstream_host, self.upstream_port = parsed.hostname, parsed.port or 80
        self.rate, self.faults, self.delay = rate, tuple(faults), delay
        self.match = match or (lambda method, path: True)
        self.max_per_request = max_per_request
        self.rewrite_urls = rewrite_urls
        self.upstream_timeout = upstream_timeout
        self._rng = random.Random(f"fault-proxy-{seed}")
        self._lock = threading.Lock()
        self._per_request: collections.Counter = collections.Counter()
        self.injected: collections.Counter = collections.Counter()
        self.seen = 0  # requests ``match`` selected
        self.forwarded = 0  # requests that reached upstream
        self.log: list[tuple[str, str, str]] = []  # (method, path, decision) of every selected request
        self.answers: list[tuple[str, str, int]] = []  # (method, path, status) of every answer sent
        self._server = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.injected.items())) or "none"
        return f"{self.seen} requests selected, {self.total_injected} faults injected ({kinds})"

    # -- decisions
    def decide(self, method: str, path: str, body: bytes) -> str:
        """ "pass" or the fault for this request (counted)."""
        if not self.match(method, path):
            return "pass"
        key = (method, path, hashlib.sha256(body).hexdigest())
        with self._lock:
            self.seen += 1
            draw, fault = self._rng.random(), self._rng.choice(self.faults) if self.faults else "pass"
            capped = self.max_per_request is not None and self._per_request[key] >= self.max_per_request
            decision = fault if draw < self.rate and not capped else "pass"
            if decision != "pass":
                self._per_request[key] += 1
                self.injected[decision] += 1
            self.log.append((method, path, decision))
            return decision

    def slow_seconds(self) -> float:
        with self._lock:
            return self._rng.uniform(*self.delay)

    # -- forwarding
    def forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        """(status, reason, headers, body) of upstream's answer."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.upstream_timeout)
        try:
            sent = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{self.upstream_host}:{self.upstream_port}")
            for key, value in sent:
                conn.putheader(key, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
            with self._lock:
                self.forwarded += 1
            answer_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            if self.rewrite_urls:
                data = data.replace(self.upstream.encode(), self.url.encode())
                answer_headers = [(k, v.replace(self.upstream, self.url)) for k, v in answer_headers]
            return response.status, response.reason, answer_headers, data
        finally:
            conn.close()

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(
                self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes, cut: bool = False
            ) -> None:
                with proxy._lock:
                    proxy.answers.append((self.command, urllib.parse.urlsplit(self.path).path, status))
                if cut and not data:  # no body to cut: the status line is cut instead
                    self.wfile.write(f"HTTP/1.1 {status}".encode())
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(status, reason)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut:  # half the body, then the connection dies
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True  # the server then shuts the socket: EOF mid-body
                    return
                self.wfile.write(data)

            def _handle(self) -> None:
                body = self._body()
                path = urllib.parse.urlsplit(self.path).path
                decision = proxy.decide(self.command, path, body)
                if decision.isdigit():
                    code = int(decision)
                    self._send(
                        code,
                        http.client.responses.get(code, ""),
                        [("Content-Type", "application/json")],
                        google_error(code, f"Injected {code} by the fault proxy."),
                    )
                    return
                if decision == "slow":
                    time.sleep(proxy.slow_seconds())
                try:
                    status, reason, headers, data = proxy.forward(
                        self.command, self.path, list(self.headers.items()), body
                    )
                except OSError as error:  # upstream down: what a front end says then
                    self._send(
                        502,
                        "Bad Gateway",
                        [("Content-Type", "application/json")],
                        google_error(502, f"upstream unreachable: {error}"),
                    )
                    return
                self._send(status, reason, headers, data, cut=decision == "drop" and self.command != "HEAD")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        return Handler
