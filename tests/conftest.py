"""Shared fixtures: the real `prefork` command as a subprocess, on ephemeral ports of 127.0.0.1.

The helpers the test modules share live in tests/support/ (see its __init__.py), one job a module.
"""

from __future__ import annotations

import pytest

from support.server import Server


@pytest.fixture
def start_server():
    """start_server(*args) -> Server; every server started is stopped at the end of the test."""
    servers = []

    def start(*args, **kwargs):
        server = Server(args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    """One worker serving the built-in site on an ephemeral port."""
    return start_server("-w", "1", "-b", "127.0.0.1:0")


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A test CA and certificates signed by it (tests/support/tls.py); copy them to change them."""
    from support.tls import make_certificates

    return make_certificates(tmp_path_factory.mktemp("certificates"))
