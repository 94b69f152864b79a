"""An unexpected exception stays inside the connection it belongs to: that connection gets a
500 (or is closed), the Reactor goes on serving every other one, and the worker lives on.

The mechanism is tested on the Reactor over a socketpair, then on a real Worker process with a
handler whose connection callbacks raise (from a completion, from a timer), and end to end on
the request that once killed a worker (a Content-Length of 4,400 digits).
"""

from __future__ import annotations

import os
import signal
import socket
import time
import types

import pytest

from support.client import get, read_response
from prefork import config as configuration
from prefork.workers.reactor import EPOLLIN, Reactor
from prefork.workers.worker import Worker
from support.server import serving_worker_pid


class Owner:
    """A stand-in for a connection: it owns a handler and can recover from its exceptions."""

    def __init__(self, reactor, sock):
        self.reactor = reactor
        self.sock = sock
        self.peer = "test"
        self.crashes = 0
        self.closed = False

    def on_events(self, mask):
        self.sock.recv(100)
        raise RuntimeError("a bug in a connection handler")

    def crashed(self):
        self.crashes += 1
        self.abort()

    def abort(self):
        self.closed = True
        self.reactor.unregister(self.sock.fileno())


def test_a_handler_that_raises_is_contained_and_the_loop_goes_on():
    reactor = Reactor()
    a, b = socket.socketpair()
    owner = Owner(reactor, a)
    reactor.register(a.fileno(), EPOLLIN, owner.on_events)
    fired = []
    reactor.call_later(0.05, lambda: (fired.append(True), reactor.stop()))
    b.send(b"x")
    reactor.run()
    assert owner.crashes == 1 and owner.closed and fired == [True]


def test_a_connection_timer_that_raises_is_contained():
    reactor = Reactor()
    a, _b = socket.socketpair()
    owner = Owner(reactor, a)
    deadline = reactor.deadline(types.MethodType(lambda self: 1 / 0, owner))
    deadline.set(reactor.now + 0.01)
    reactor.call_later(0.1, reactor.stop)
    reactor.run()
    assert owner.crashes == 1


def test_an_exception_outside_any_connection_still_ends_the_loop():
    reactor = Reactor()
    reactor.call_later(0, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        reactor.run()


def _boom(conn):
    raise RuntimeError("a bug in the glue between the handler and its connection")


def _handler(exchange):
    conn = exchange.conn  # the glue's bug is the connection's to contain
    reactor = conn.reactor
    target = exchange.request.target
    if target == b"/raise-later":  # as a completion from a handler thread arrives
        reactor.call_soon_threadsafe(types.MethodType(_boom, conn))
    elif target == b"/raise-in-timer":
        reactor.call_later(0, types.MethodType(_boom, conn))
    elif target == b"/slow":  # answered a little later, while another one crashes
        reactor.call_later(0.3, lambda: exchange.respond(200, b"Content-Length: 4\r\n", b"slow"))
    else:
        exchange.respond(200, b"Content-Length: 2\r\n", b"ok")


@pytest.fixture
def worker_process():
    """(pid, port) of a real Worker in a child process, serving _handler."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = configuration.load(None, {"workers": 1})
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = Worker(config, [(listener, "http", False)], handler=_handler).run()
        finally:
            os._exit(code)
    listener.close()
    yield pid, port
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def still_running(pid: int) -> bool:
    """Whether our forked child pid has not exited (waitpid: it is ours to reap)."""
    return os.waitpid(pid, os.WNOHANG) == (0, 0)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("target", ["/raise-later", "/raise-in-timer"])
def test_a_connection_whose_callback_raises_gets_a_500_and_the_others_are_served(worker_process, target):
    pid, port = worker_process
    assert get(port, "/", timeout=5)[0] == 200
    with socket.create_connection(("127.0.0.1", port), timeout=5) as bystander:
        bystander.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")  # in flight meanwhile
        status, headers, _ = get(port, target, timeout=5)
        assert (status, headers.get("connection")) == (500, "close")
        assert read_response(bystander)[::2] == (200, b"slow")
    assert still_running(pid)
    assert get(port, "/", timeout=5)[::2] == (200, b"ok")


@pytest.mark.timeout(30)
def test_a_content_length_of_4400_digits_is_read_as_its_value_and_the_worker_serves_on(start_server):
    """The request of the audit: int() refuses more than 4,300 digits; nginx reads it as 0."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    pid = serving_worker_pid(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + b"0" * 4400 + b"0\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"")
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + b"0" * 4400 + b"3\r\n\r\nabc")
        assert read_response(sock)[::2] == (200, b"abc")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    assert time.monotonic() - started < 1.0
    assert serving_worker_pid(server) == pid


@pytest.mark.timeout(30)
def test_a_chunk_size_with_thousands_of_leading_zeros_is_read_as_its_value(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"0" * 4000 + b"3\r\nabc\r\n0\r\n\r\n")  # within the chunk-line limit
        assert read_response(sock)[::2] == (200, b"abc")
