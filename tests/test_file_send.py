"""A file in flight (os.sendfile) with pipelined input pending: the connection waits for
EPOLLOUT only, since nothing reads while the file goes out (level-triggered EPOLLIN would fire
on every loop turn and spin a core)."""

from __future__ import annotations

import os
import socket
import tempfile

from prefork import config as configuration
from prefork.workers.reactor import EPOLLIN, EPOLLOUT
from prefork.workers.worker import Worker


def test_interest_is_epollout_only_while_a_file_is_sent_with_input_pending():
    with tempfile.TemporaryFile() as body:
        body.write(b"f" * (4 << 20))
        body.flush()
        size = os.fstat(body.fileno()).st_size
        done = []

        def handler(exchange):
            exchange.start(200, b"Content-Length: %d\r\n" % (size + 256 * 1024), size + 256 * 1024)
            exchange.send(b"s" * (256 * 1024))  # more than the socket takes: output stays queued
            exchange.send_file(body.fileno(), 0, size, lambda: done.append(True))

        worker = Worker(configuration.load(None, {}), [], handler=handler)
        server, client = socket.socketpair()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn = worker.adopt(server, ("127.0.0.1", 1))
        transport = conn.transport
        client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        transport.on_events(EPOLLIN)
        assert transport.file_job is not None and not done  # the file is on its way, /b is waiting
        assert conn.parser.buffered  # pipelined input pending
        assert transport.interest == EPOLLOUT
        # The next events go on sending the file; the interest stays EPOLLOUT only.
        client.recv(1 << 20)
        worker.reactor.handlers[conn.fd](EPOLLOUT)
        assert transport.interest == EPOLLOUT or done
        client.close()
        conn.abort()
