"""How the platforms stop a service: TERM (Docker, Kubernetes, systemd) drains, bounded by
graceful_timeout, as gunicorn and uvicorn do; INT (Ctrl-C) and a second TERM stop at once."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from support.client import read_response
from support.descriptors import connection_owner
from support.paths import APPS
from support.polling import wait_until
from support.processes import alive, wait_workers

pytestmark = pytest.mark.timeout(40)


def slow_request(port: int, ms: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(f"GET /sleep?ms={ms} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def accepted(sock: socket.socket, server, worker: int) -> None:
    """The worker holds the connection: its request is read now or at the drain's first look."""
    wait_until(lambda: connection_owner(sock, server.port, [worker]), 5, message="the worker to accept")


@pytest.mark.slow
def test_term_during_a_3s_request_delivers_it_whole_then_the_master_exits_0(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "10", "--access-log", "-",
                          "--chdir", APPS, "plain:app")
    (worker,) = wait_workers(server.proc.pid, 1)
    with slow_request(server.port, 3000) as sock:
        accepted(sock, server, worker)
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        status, headers, body = read_response(sock)
        assert (status, body, headers.get("connection")) == (200, b"slept", "close")
    assert server.proc.wait(10) == 0
    assert time.monotonic() - sent < 10
    assert not alive(worker)
    assert "graceful shutdown (TERM)" in server.log()


@pytest.mark.slow
def test_a_second_term_during_the_drain_stops_at_once(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "30", "--chdir", APPS, "plain:app")
    (worker,) = wait_workers(server.proc.pid, 1)
    with slow_request(server.port, 8000) as sock:
        accepted(sock, server, worker)
        server.send_signal(signal.SIGTERM)
        server.wait_for_log(r"graceful shutdown \(TERM\)")
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.proc.wait(8) == 0
    assert time.monotonic() - started < 5
    assert "fast shutdown (TERM)" in server.log()


def test_int_stops_at_once(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "30", "--chdir", APPS, "plain:app")
    (worker,) = wait_workers(server.proc.pid, 1)
    with slow_request(server.port, 8000) as sock:
        accepted(sock, server, worker)
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.proc.wait(8) == 0
        assert time.monotonic() - started < 5
        assert sock.recv(100) == b""  # a fast stop does not wait for the app
    assert "fast shutdown (INT)" in server.log()
