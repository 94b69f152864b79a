"""A fresh start refuses an address that anything listens on, even with SO_REUSEPORT, as
gunicorn and nginx do: two servers must never split one port's traffic by accident."""

from __future__ import annotations

import socket
import subprocess

import pytest

from support.client import get
from support.command import run_prefork

pytestmark = pytest.mark.timeout(30)


def start_refused(*args) -> tuple[int, str]:
    done = run_prefork(*args, timeout=20)
    return done.returncode, done.stdout + done.stderr


def test_a_second_prefork_on_the_same_port_exits_1_naming_the_address(start_server):
    first = start_server("-w", "2", "-b", "127.0.0.1:0")
    code, output = start_refused("-w", "2", "-b", f"127.0.0.1:{first.port}")
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{first.port}: address already in use" in output
    assert get(first.port, "/plaintext", timeout=5)[0] == 200  # still serving


@pytest.mark.parametrize("host, family", [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)])
def test_a_reuse_port_socket_of_another_program_is_refused_too(host, family):
    other = socket.socket(family)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind((host, 0))
    other.listen()
    port = other.getsockname()[1]
    text = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        code, output = start_refused("-w", "1", "-b", text)
    finally:
        other.close()
    assert code == 1
    assert f"cannot listen on {text}: address already in use" in output


def test_a_free_port_still_gets_one_socket_per_worker(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    assert get(server.port, "/plaintext", timeout=5)[0] == 200
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True, text=True,
                               check=True)  # ss: Debian's iproute2
    assert len(listening.stdout.strip().splitlines()) == 2
