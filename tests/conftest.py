"""Shared fixtures: the real `prefork` command as a subprocess, on ephemeral ports of 127.0.0.1.

The helpers the test modules share live in tests/support/ (see its __init__.py), one job a module.
"""

from __future__ import annotations

import pytest

from support.parsers import REQUEST_PARSERS
from support.server import Server

@pytest.fixture(scope="module", params=sorted(REQUEST_PARSERS))
def each_parser(request):
    """Runs every test of a module that uses it once per request parser, with the module's
    `RequestParser` bound to that parser meanwhile (`pytestmark = pytest.mark.usefixtures(
    "each_parser")`): the same tests hold both to the same rules."""
    module = request.module
    original = module.RequestParser
    module.RequestParser = REQUEST_PARSERS[request.param]
    yield module.RequestParser
    module.RequestParser = original

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
