"""`prefork -s drain` and `-s resume`: /health answers 503 while drained, the host serves on,
and a stop in progress is never resumed. One machine, no namespaces (test_fleet.py has those)."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from support.client import get, read_response
from support.command import control
from support.paths import APPS
from support.polling import wait_until
from support.processes import wait_workers

pytestmark = pytest.mark.timeout(40)


def health(port: int) -> int:
    return get(port, "/health")[0]


def test_drain_turns_health_503_and_keeps_serving_until_resumed(start_server, tmp_path):
    pidfile = tmp_path / "prefork.pid"
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--status-bind", "127.0.0.1:0", "--pid", str(pidfile),
                          "--chdir", APPS, "plain:app", expect_ports=2)
    app_port, status_port = server.ports
    workers = wait_workers(server.proc.pid, 2)
    assert health(status_port) == 200
    control(pidfile, "drain")
    server.wait_for_log(r"draining \(-s drain\)")
    # Every worker reads the master's flag: whichever answers, the answer is 503.
    assert [health(status_port) for _ in range(20)] == [503] * 20
    assert get(app_port, "/hello")[0] == 200, "a drained host still serves"
    assert wait_until(lambda: get(status_port, "/status")[2], message="status").count(b'"draining": true') == 1
    assert set(wait_workers(server.proc.pid, 2)) == set(workers), "draining stops no worker"
    control(pidfile, "drain")  # twice is once
    control(pidfile, "resume")
    server.wait_for_log(r"resuming \(-s resume\)")
    assert [health(status_port) for _ in range(20)] == [200] * 20
    assert server.log().count("draining (-s drain)") == 1


def test_a_drain_outlives_a_reload_and_a_stop_is_never_resumed(start_server, tmp_path):
    pidfile = tmp_path / "prefork.pid"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--status-bind", "127.0.0.1:0", "--pid", str(pidfile),
                          "--graceful-timeout", "10", "--chdir", APPS, "plain:app", expect_ports=2)
    app_port, status_port = server.ports
    (first,) = wait_workers(server.proc.pid, 1)
    control(pidfile, "drain")
    server.wait_for_log(r"draining \(-s drain\)")
    server.send_signal(signal.SIGHUP)
    (worker,) = wait_workers(server.proc.pid, 1, exclude=[first])
    assert health(status_port) == 503, "the new generation is drained too"
    # A worker that gets the drain signal itself (sent to the whole process group) ignores it.
    os.kill(worker, signal.SIGRTMIN + 1)
    assert health(status_port) == 503
    assert list(wait_workers(server.proc.pid, 1)) == [worker]
    with socket.create_connection(("127.0.0.1", app_port), timeout=10) as slow:
        slow.sendall(b"GET /sleep?ms=4000 HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_until(lambda: b'"busy_threads": 1' in get(status_port, "/status")[2], message="the request to run")
        server.send_signal(signal.SIGTERM)  # graceful: the request in flight keeps it a while
        server.wait_for_log(r"graceful shutdown \(TERM\)")
        control(pidfile, "resume")
        assert server.proc.poll() is None, "the resume reached a master still stopping"
        assert read_response(slow)[0] == 200
    assert server.proc.wait(10) == 0
    assert "resuming" not in server.log()
