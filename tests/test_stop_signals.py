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
    server.wait_for_log(rf"worker {worker}: fast stop: 1 connection with a request in flight closed")


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
    server.wait_for_log(rf"worker {worker}: fast stop: 1 connection with a request in flight closed")


def test_a_request_cut_short_at_graceful_timeout_is_logged(start_server):
    """The drain's bound: a request still running when graceful_timeout is over is cut short,
    and the log says so (its client got nothing: an operator must see why)."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "1", "--chdir", APPS, "plain:app")
    (worker,) = wait_workers(server.proc.pid, 1)
    with slow_request(server.port, 8000) as sock:
        accepted(sock, server, worker)
        server.send_signal(signal.SIGTERM)
        assert sock.recv(100) == b""
        assert server.proc.wait(8) == 0
    server.wait_for_log(rf"worker {worker}: graceful_timeout \(1 s\) is over: 1 connection with a request in "
                        r"flight closed")


def test_drain_and_resume_sent_to_the_whole_process_group_kill_no_worker(start_server):
    """`kill -s SIGRTMIN+1 -- -PGID` (or a supervisor signalling every process) reaches the
    workers too: they ignore the master's real-time signals (their default action would end them)."""
    import os

    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    workers = wait_workers(server.proc.pid, 2)
    for sig in (signal.SIGRTMIN + 1, signal.SIGRTMIN + 2):
        os.killpg(os.getpgid(server.proc.pid), sig)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] in (200, 503)
    assert all(alive(pid) for pid in workers)
    assert wait_workers(server.proc.pid, 2) == workers
