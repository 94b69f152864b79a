"""A load client against the built-in site: threads sending GET /plaintext, half on new
connections, half on keep-alive ones, every failure counted.

Every request counts as failed if it gets no complete 200 response -- with one exception, the
keep-alive race every HTTP client handles: a request sent on a *reused* keep-alive connection
that the server closed (as idle) before any byte of the response came back is retried once on
a new connection, as RFC 9112 section 9.3.1 allows and browsers, httpx and urllib3 do. Those
retries are counted apart and never hide a failure on a new connection or a response cut short.
"""

from __future__ import annotations

import socket
import threading
import time

from support.client import read_response
from support.polling import wait_until

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n"
KEEPALIVE_REQUESTS = 20  # requests per keep-alive connection before the client closes it


class Load:
    """Client threads sending GET /plaintext, half on new connections, half on keep-alive ones."""

    def __init__(self, port: int, threads: int = 4, seconds: float = 3.0, connect=None):
        """connect: opens a new connection to the server (plain TCP to port by default; TLS
        tests pass their own)."""
        self.port = port
        self.connect = connect or (lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
        self.seconds = seconds  # the least time the load runs, whatever the test does meanwhile
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.retried = 0
        self.threads = [threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True)
                        for i in range(threads)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        self.started = time.monotonic()
        wait_until(lambda: self.ok > 20, 10, message="load to get going")
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            wait_until(lambda: time.monotonic() - self.started >= self.seconds, self.seconds + 1,
                       interval=0.05, message="the load's duration")
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)
        assert not any(t.is_alive() for t in self.threads), "a client thread is stuck"

    def wait_requests(self, count: int, timeout: float = 10.0) -> None:
        start = self.ok
        wait_until(lambda: self.ok >= start + count, timeout, message=f"{count} more responses")

    def _run(self, keepalive: bool) -> None:
        while not self.stopping.is_set():
            try:
                self._connection(keepalive)
            except Exception as exc:  # noqa: BLE001 - every error is a failed request
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def _connection(self, keepalive: bool) -> None:
        with self.connect() as sock:
            buffer = bytearray()
            for used in range(KEEPALIVE_REQUESTS if keepalive else 1):
                if self.stopping.is_set():
                    return
                try:
                    sock.sendall(REQUEST)
                    status, _, body = read_response(sock, buffer)
                except (ConnectionError, OSError) as exc:
                    if used and not buffer and not isinstance(exc, socket.timeout):
                        self._retry()  # the keep-alive race: closed before any response byte
                        return
                    raise
                if status != 200 or body != b"Hello, World!":
                    raise AssertionError(f"unexpected response {status} {body!r}")
                with self.lock:
                    self.ok += 1

    def _retry(self) -> None:
        with self.lock:
            self.retried += 1
        with self.connect() as sock:
            sock.sendall(REQUEST)
            status, _, body = read_response(sock)
            if status != 200 or body != b"Hello, World!":
                raise AssertionError(f"unexpected response {status} {body!r}")
        with self.lock:
            self.ok += 1

    def assert_no_failure(self) -> None:
        assert not self.failures, f"{len(self.failures)} failed requests ({self.ok} ok), first: {self.failures[:3]}"
        assert self.ok > 100
