"""The fleet's client: paced GET requests to the load balancer, every failure counted.

Run inside the client's network namespace (`ip netns exec NS python load.py HOST PORT`). Each
response body is "HOST VERSION CLIENT" (tests/fleet/fleetapp.py). Several times a second it
prints one JSON line of running totals to stdout; on SIGTERM it stops sending, lets every
request in flight finish, prints a last line with "final": true and exits.

Half the threads keep their connection alive, half open one per request. A request sent on a
reused connection that the peer had closed as idle (nothing received) is sent again once on a
new connection, as HTTP clients do for idempotent requests; those are counted as `resent`,
and never as served unless the second try succeeds.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time

REQUEST = b"GET /fleet HTTP/1.1\r\nHost: fleet\r\n\r\n"
SLOW = 1.0  # seconds: a response slower than this counts as slow


class Stalled(Exception):
    """The connection closed before any byte of the response arrived."""


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.resent = 0
        self.slow = 0
        self.max_latency = 0.0
        self.failures: list[tuple[float, str]] = []
        self.hosts: dict[str, dict] = {}  # host -> {"count", "first", "last", "versions"}
        self.clients: set[str] = set()

    def served(self, host: str, version: str, client: str, started: float, now: float) -> None:
        latency = now - started
        with self.lock:
            self.ok += 1
            self.slow += latency > SLOW
            self.max_latency = max(self.max_latency, latency)
            seen = self.hosts.setdefault(host, {"count": 0, "first": now, "last": now, "versions": {}})
            seen["count"] += 1
            seen["last"] = now
            seen["versions"][version] = seen["versions"].get(version, 0) + 1
            self.clients.add(client)

    def failed(self, what: str) -> None:
        with self.lock:
            self.failures.append((time.monotonic(), what))

    def line(self, final: bool = False) -> str:
        with self.lock:
            return json.dumps({"time": time.monotonic(), "ok": self.ok, "failed": len(self.failures),
                               "failures": self.failures[-20:], "resent": self.resent, "slow": self.slow,
                               "max_latency": round(self.max_latency, 3), "hosts": self.hosts,
                               "clients": sorted(self.clients), "final": final})


def read_response(sock: socket.socket) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one Content-Length response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise Stalled() if not buf else ConnectionError("closed in the middle of the head")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip().lower() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed in the middle of the body")
        body += data
    return int(lines[0].split()[1]), body, headers.get("connection") != "close"


class Client(threading.Thread):
    def __init__(self, address, keep_alive: bool, interval: float, timeout: float, totals: Totals,
                 stopping: threading.Event):
        super().__init__(daemon=True)
        self.address = address
        self.keep_alive = keep_alive
        self.interval = interval
        self.timeout = timeout
        self.totals = totals
        self.stopping = stopping
        self.sock: socket.socket | None = None

    def run(self) -> None:
        due = time.monotonic()
        while not self.stopping.is_set():
            self.one_request()
            due += self.interval  # paced, so that the hosts keep CPU for their own work
            self.stopping.wait(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - self.interval)
        self.close()

    def one_request(self) -> None:
        started = time.monotonic()
        try:
            try:
                status, body, alive = self.exchange(reused=self.sock is not None)
            except Stalled:  # only ever raised for a reused connection
                with self.totals.lock:
                    self.totals.resent += 1
                status, body, alive = self.exchange(reused=False)
        except Exception as exc:  # every kind of failure is counted, none stops the client
            self.close()
            self.totals.failed(f"{type(exc).__name__}: {exc}")
            return
        if not (alive and self.keep_alive):
            self.close()
        words = body.decode(errors="replace").split()
        if status != 200 or len(words) != 3:
            self.totals.failed(f"status {status}: {body[:80]!r}")
            return
        self.totals.served(*words, started, time.monotonic())

    def exchange(self, reused: bool) -> tuple[int, bytes, bool]:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
        try:
            self.sock.sendall(REQUEST)
            return read_response(self.sock)
        except Stalled:
            self.close()
            if reused:
                raise
            raise ConnectionError("closed before the response")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second per client")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a request may take")
    args = parser.parse_args()
    totals = Totals()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    clients = [Client((args.host, args.port), i % 2 == 0, 1 / args.rate, args.timeout, totals, stopping)
               for i in range(args.clients)]
    for client in clients:
        client.start()
    while not stopping.wait(0.2):
        print(totals.line(), flush=True)
    for client in clients:
        client.join(args.timeout + 5)
    print(totals.line(final=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
