"""The exchange: one request and its response, the only thing a handler sees.

The connection makes an Exchange for each request it reads and calls `handler(exchange)`.
The handler answers, at once on the Reactor thread or later from a completion the worker
queues bring back, with `respond()` (a whole response) or with `start()`, `send()` and `end()`
(a stream), or with `send_file()`; `fail()` when it cannot. Each of these reaches the
connection only while this exchange is its current one: once the response has ended, or the
connection has closed, they do nothing, so a late completion from a handler thread can never
write into the next request's response.

What the handler may know of the connection is here too: whether it is closed, whether the
client may take more output now (`writable`, `when_writable`), the peer and local addresses,
and a callback for when the connection goes away (`on_abort`).
"""

from __future__ import annotations

from operator import attrgetter
from time import monotonic as _monotonic

from prefork.http import framing
from prefork.http.response import STATUS_LINES as _STATUS_LINES, status_line

from .transport import JOIN_LIMIT

# The endings of a head that frame_head() would write, for respond()'s inlined copy of it.
_CRLF = framing.CRLF
_CLOSE_CRLF = framing.CLOSE + _CRLF
_KEEP_ALIVE_CRLF = framing.KEEP_ALIVE + _CRLF
_HTTP10 = b"1.0"


class Exchange:
    """Made by the connection, once per request, as `Exchange()` and then its fields (no
    __init__: a class without one is made by the interpreter's fast path, and this runs for
    every request; tests/test_exchange_unit.py checks that every field is set):

    conn: the connection; request: the Request; body: a file-like object, the request body,
    read whole before the handler runs; head_only: the response's body is not sent (HEAD);
    head_style: None, or the app's own framing of the response head: (reason phrase or None,
    whether to add our Server line, our Date line, whether to close after the response), as
    wsgi.response_head() says;
    abort_callback: None, or what on_abort() was given; connection_id: a number no other open
    connection of this worker has (its descriptor; a field, not a property: the WSGI environ
    reads it for every request, and a property's call costs several fields' stores)."""

    __slots__ = ("conn", "request", "body", "head_only", "head_style", "abort_callback", "connection_id")

    # -- answering ------------------------------------------------------------------------------

    def respond(self, status: int, headers: bytes, body: bytes, close: bool = False) -> None:
        """A whole response: `headers` are serialized header lines (Content-Length included),
        `body` the payload; close=True ends the connection after it."""
        # The connection's work, done here: this runs once per request, and a call to a method
        # of the connection would cost as much as a tenth of the rest.
        conn = self.conn
        if conn.exchange is not self:
            return
        worker = conn.worker
        transport = conn.transport
        # A client that half-closed still gets an answer to every request it pipelined first.
        keep_alive = (conn.keep_alive and not close and not worker.stopping
                      and not (transport.read_closed and conn.all_read()))
        conn.status = status
        if self.head_only:
            body = b""
        if self.head_style is None:
            try:
                line = _STATUS_LINES[status]
            except KeyError:
                line = status_line(status)
            common = worker.common_headers
        else:
            line, common = conn.status_and_common(status, self.head_style)
            if self.head_style[3]:
                keep_alive = False  # the app said Connection: close
        # frame_head() for a body of known length, inlined (the copy is pinned to it by
        # tests/test_framing.py): the Connection line and the blank line.
        end = (_CRLF if self.request.version != _HTTP10 else _KEEP_ALIVE_CRLF) if keep_alive else _CLOSE_CRLF
        if len(body) <= JOIN_LIMIT:
            data = b"".join((line, common, headers, end, body))
            transport.out.append(data)
            transport.out_len += len(data)
        else:  # a large body is queued as it is, not copied: flush() gathers the pieces
            data = b"".join((line, common, headers, end))
            transport.out += (data, body)
            transport.out_len += len(data) + len(body)
        conn.sent_body = len(body)
        # conn._finished(keep_alive), written out (pinned to it by tests/test_exchange_unit.py):
        # keep_alive already says whether a half-closed client has anything pipelined left.
        conn.exchange = None
        transport.on_drain = None
        # Before head_started moves on (it times the request): worker.response_done(conn), written
        # out for its common case, no access log (pinned to it by tests/test_exchange_unit.py).
        if worker.access_log is None:
            worker.count(status, conn.sent_body, _monotonic() - conn.head_started)
        else:
            conn.response_headers = headers
            worker.response_done(conn)
        conn.head_started = conn.reactor.now
        if not keep_alive:
            transport.closing = True
        if not conn.dispatching:
            conn._resume()

    def start(self, status: int, headers: bytes, length: int | None) -> None:
        """Begin a streamed response whose `headers` declare Content-Length `length`; None for a
        body of unknown length (chunked on HTTP/1.1, ended by closing on HTTP/1.0)."""
        conn = self.conn
        if conn.exchange is self:
            conn.start(self, status, headers, length)

    def send(self, data) -> None:
        """Part of a streamed body; it is sent at once."""
        conn = self.conn
        if conn.exchange is self:
            conn.send(self, data)

    def end(self, complete: bool = True) -> None:
        """The streamed response is over; complete=False when it broke off (no last chunk, and
        the connection closes, so the client cannot take it for a whole one)."""
        conn = self.conn
        if conn.exchange is self:
            conn.end(self, complete)

    def fail(self) -> None:
        """The response cannot be produced: a 500 if it has not started, else it is cut short."""
        conn = self.conn
        if conn.exchange is self:
            conn.fail(self)

    def send_file(self, fd: int, offset: int, count: int, done) -> None:
        """After start(): count bytes of the file fd from offset; done() on the Reactor once they
        are sent (if the connection closes first, the on_abort callback runs instead)."""
        conn = self.conn
        if conn.exchange is self:
            conn.send_file(self, fd, offset, count, done)

    # -- the connection, as far as a handler may know it ---------------------------------------

    def on_abort(self, callback) -> None:
        """callback() once if the connection closes before the response ends (None: no callback)."""
        self.abort_callback = callback

    def when_writable(self, callback) -> None:
        """callback() once the client has read enough of the output for more to be written."""
        conn = self.conn
        if conn.exchange is self:
            conn.transport.on_drain = callback

    @property
    def writable(self) -> bool:
        """Whether more output may be written now without exceeding the output's high-water mark."""
        return self.conn.transport.writable()

    @property
    def closed(self) -> bool:
        """Nothing more can be sent: the response has ended, or the connection is closed."""
        return self.conn.exchange is not self

    # Plain reads of the connection, as C-level getters: no Python frame per access (the WSGI
    # environ reads several of them for every request).
    high_water = property(attrgetter("conn.transport.settings.high_water"),
                          doc="Output bytes a producer may have in flight before it waits (when_writable).")
    peer = property(attrgetter("conn.transport.peer"), doc="The socket's peer: (host, port), or a unix socket's path.")
    client = property(attrgetter("conn.client"),
                      doc="The client's (host, port): the peer, or what a PROXY protocol header said.")
    trusted = property(attrgetter("conn.trusted"), doc="Whether the peer may say who the client is (forwarded_allow_ips).")
    secure = property(attrgetter("conn.transport.secure"), doc="Whether the connection is TLS.")
    loop_time = property(attrgetter("conn.reactor.now"),
                         doc="The Reactor's clock at this turn of its loop: the same for every request it handles "
                             "in one turn (what arrived together).")

    def local_address(self):
        """The address the client connected to."""
        return self.conn.transport.sock.getsockname()

    def client_and_scheme(self) -> tuple[str, str | None]:
        """The client's address and the scheme it used, as far as the request can be believed."""
        return self.conn.client_and_scheme(self.request)
