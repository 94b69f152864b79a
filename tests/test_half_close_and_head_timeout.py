"""A client that half-closes after pipelining gets every answer, on both dispatch paths; and
header_timeout runs from the accept, so idling first and trickling after gains no time."""

from __future__ import annotations

import socket
import time

import pytest
from support.client import connect, recv_until_closed


@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_half_close_after_pipelining_still_gets_every_response(start_server, dispatch):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--dispatch", dispatch)
    with connect(server.port) as sock:
        sock.sendall(b"GET /sleep?ms=200 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        data = recv_until_closed(sock)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 3, data
    assert data.index(b"slept") < data.index(b"Hello, World!") < data.index(b'{"message"')
    assert data.count(b"Connection: close") == 1 and data.rindex(b"Connection: close") > data.index(b"Hello")


def test_header_timeout_counts_from_the_accept(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--header-timeout", "1.5")
    with connect(server.port) as sock:
        opened = time.monotonic()
        time.sleep(1.0)  # the client idles (this is the behaviour under test, not a synchronisation)
        sock.sendall(b"GET /plaintext HTTP/1.1\r\n")
        sock.settimeout(0.2)
        answer = b""
        while time.monotonic() - opened < 5:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b"X")  # trickling never extends it
                continue
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - opened
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 1.4 < elapsed < 2.2, elapsed  # 1.5 s after the accept, not 1.5 s after the first byte
