"""The connection's inlined copy of frame_head() for whole responses, pinned to it (frame_head()
itself is tested against the RFC by tests/test_frame_head_rfc.py)."""

from __future__ import annotations

import socket

import pytest

from prefork import config as configuration
from prefork.http.framing import frame_head
from prefork.workers.reactor import EPOLLIN
from prefork.workers.worker import Worker

HEADERS = b"Content-Type: text/plain\r\n"


@pytest.mark.parametrize("version, ask", [(b"1.1", b""), (b"1.1", b"Connection: close\r\n"),
                                          (b"1.0", b""), (b"1.0", b"Connection: keep-alive\r\n")])
@pytest.mark.parametrize("stopping", [False, True])
def test_respond_frames_as_frame_head_does(version, ask, stopping):
    """respond() inlines frame_head() for a whole response: the same head, the same decision."""
    def handler(exchange):
        exchange.respond(200, HEADERS + b"Content-Length: 2\r\n", b"ok")

    worker = Worker(configuration.load(None, {}), [], handler=handler)
    worker.stopping = stopping
    server, client = socket.socketpair()
    conn = worker.adopt(server, ("127.0.0.1", 1))
    client.sendall(b"GET / HTTP/" + version + b"\r\nHost: t\r\n" + ask + b"\r\n")
    conn.transport.on_events(EPOLLIN)
    sent = client.recv(65536)
    head = sent[:sent.index(b"\r\n\r\n") + 4]
    expected, _, persists = frame_head(b"HTTP/1.1 200 OK\r\n", worker.common_headers,
                                       HEADERS + b"Content-Length: 2\r\n", http10=version == b"1.0",
                                       keep_alive=conn.request.keep_alive and not stopping, length=2)
    assert head == expected
    transport = conn.transport
    assert (transport.closing or transport.lingering or transport.closed if not persists
            else not (transport.closing or transport.closed))
    client.close()
    conn.abort()
