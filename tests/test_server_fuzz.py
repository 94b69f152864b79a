"""Random and mutated bytes on many connections to a real one-worker server: whatever comes,
the worker answers or closes, and it is the same process at the end (nothing crashed)."""

from __future__ import annotations

import random
import selectors
import socket
import time

import pytest

from support.client import connect, read_response
from support.server import serving_worker_pid

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET /static/../x HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n\r\n",
    b"GET http://a:80/plaintext?q HTTP/1.1\r\nHost: b\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /json HTTP/1.0\r\n\r\n",
    b"GET /sleep?ms=1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0" + b"0" * 5000 + b"\r\n\r\n",
]
INSERTS = [b"\r", b"\n", b"\0", b"\x80", b"\xff", b" ", b":", b"\t", b"0" * 40, b"\r\n\r\n", b"\x16\x03\x01"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        where = rng.randrange(len(data) + 1)
        if choice < 0.3 and data:
            data[min(where, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif choice < 0.6:
            data[where:where] = rng.choice(INSERTS)
        elif choice < 0.8:
            del data[where:where + rng.randint(1, 8)]
        else:
            data[where:where] = data[:rng.randint(0, len(data))]  # duplicated parts
    return bytes(data)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_random_bytes_on_many_connections_never_crash_the_worker(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--header-timeout", "1", "--body-timeout", "1",
                          "--keepalive", "1")
    pid = serving_worker_pid(server)
    rng = random.Random(20261203)
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + 10
    sent = 0
    while time.monotonic() < deadline and sent < 2000:
        batch = []
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            kind = rng.random()
            if kind < 0.2:
                payload = rng.randbytes(rng.randint(1, 2000))
            else:
                payload = b"".join(mutate(rng, rng.choice(SEEDS)) for _ in range(rng.randint(1, 3)))
            try:
                for start in range(0, len(payload), rng.choice([1, 7, 64, 4096])):
                    sock.sendall(payload[start:start + 4096])
                    if len(payload) > 200 and rng.random() < 0.01:
                        break
                if rng.random() < 0.3:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may answer 400 and close before everything was sent
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            batch.append(sock)
            sent += 1
        # Read what comes back for a moment; the rest are closed unread (RST), which is fine too.
        until = time.monotonic() + 0.3
        while time.monotonic() < until:
            for key, _ in selector.select(timeout=0.05):
                try:
                    if not key.fileobj.recv(65536):
                        selector.unregister(key.fileobj)
                except OSError:
                    selector.unregister(key.fileobj)
        for sock in batch:
            try:
                selector.unregister(sock)
            except KeyError:
                pass
            sock.close()
    selector.close()
    assert serving_worker_pid(server) == pid, "the worker was replaced: it crashed"
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[:3:2] == (200, b"Hello, World!")
    assert "Traceback" not in server.log(), server.log()[-3000:]
    print(f"{sent} fuzzed connections, worker {pid} unchanged")
