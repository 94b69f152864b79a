"""frame_head(): persistence and framing as RFC 9112 sections 6.3 and 9.3 say, table-tested;
and the connection's inlined copy of it for whole responses, pinned to it."""

from __future__ import annotations

import socket

import pytest

from prefork import config as configuration
from prefork.http.framing import frame_head
from prefork.workers.reactor import EPOLLIN
from prefork.workers.worker import Worker

LINE, COMMON, HEADERS = b"HTTP/1.1 200 OK\r\n", b"Server: s\r\nDate: d\r\n", b"Content-Type: text/plain\r\n"


@pytest.mark.parametrize("http10, keep_alive, length, status, connection, chunked, persists", [
    # HTTP/1.1 persists unless closing; a body of unknown length goes chunked (9.3, 6.3 item 4)
    (False, True, 5, 200, None, False, True),
    (False, True, None, 200, None, True, True),
    (False, False, 5, 200, b"close", False, False),
    (False, False, None, 200, b"close", True, False),
    # HTTP/1.0 persists only when it asked (keep_alive) and is told so; an unknown length can
    # only be delimited by closing (6.3 item 8)
    (True, True, 5, 200, b"keep-alive", False, True),
    (True, True, None, 200, b"close", False, False),
    (True, False, 5, 200, b"close", False, False),
    # 204 and 304 have no body: never chunked, and the connection can stay (6.3 item 1)
    (False, True, None, 204, None, False, True),
    (False, True, None, 304, None, False, True),
    (True, True, None, 304, b"keep-alive", False, True),
])
def test_frame_head(http10, keep_alive, length, status, connection, chunked, persists):
    head, is_chunked, stays = frame_head(LINE, COMMON, HEADERS, http10=http10, keep_alive=keep_alive,
                                         length=length, status=status)
    assert head.startswith(LINE + COMMON + HEADERS) and head.endswith(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    assert [l[12:] for l in lines if l.startswith(b"Connection: ")] == ([connection] if connection else [])
    assert (b"Transfer-Encoding: chunked" in lines) == is_chunked == chunked
    assert stays == persists


@pytest.mark.parametrize("version, ask", [(b"1.1", b""), (b"1.1", b"Connection: close\r\n"),
                                          (b"1.0", b""), (b"1.0", b"Connection: keep-alive\r\n")])
@pytest.mark.parametrize("stopping", [False, True])
def test_respond_frames_as_frame_head_does(version, ask, stopping):
    """respond() inlines frame_head() for a whole response: the same head, the same decision."""
    heads = []

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
