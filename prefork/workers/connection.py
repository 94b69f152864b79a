"""One HTTP/1.1 connection on the Reactor: parse requests, hand them to the app, write responses.

The connection is the protocol above a transport (transport.py: plain TCP or TLS). Each
request it reads becomes an Exchange (exchange.py) handed to `handler(exchange)` (the
worker's, or the status routes on a status listener). The handler answers through the
exchange, at once on the Reactor thread (inline dispatch) or later, from a completion the
worker queues bring back (threads dispatch). Every response ends in `_finished()`, the one
place that decides whether the connection stays open and whether the pipeline goes on. Until
the response ends, the connection parses no further request: pipelined responses stay in
order, and unread input waits in the parser (bounded, then the socket is not read any more).

Timeouts use one Deadline per connection: `header_timeout` from the accept, or on a kept-alive
connection from the first byte of the next head (trickling bytes do not extend it), `body_timeout` and `send_timeout` from the last progress,
`keepalive` while idle between requests.
"""

from __future__ import annotations

import errno
import tempfile
from io import BytesIO

from prefork.http import CLOSED, Data, EndOfMessage, ProtocolError, Request
from prefork.http import proxy_protocol
from prefork.http import framing
from prefork.http.framing import frame_head
from prefork.http import response as http
from prefork.http.forwarded import client_and_scheme

from .exchange import Exchange
from .reactor import EPOLLIN

_CRLF = framing.CRLF
_HTTP10 = b"1.0"
_STATUS_LINES = http.STATUS_LINES


class EmptyBody:
    """The body of every request that has none: one shared instance, so nothing can change it
    (closing it, as an app may close wsgi.input, does nothing)."""

    __slots__ = ()

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list:
        return []

    def __iter__(self):
        return iter(())

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


_EMPTY = EmptyBody()
# Parsed-but-unanswered input we keep before we stop reading the socket: a whole request head
# fits, and a client that pipelines without reading is stopped by TCP flow control beyond it.
_INPUT_LIMIT = 128 * 1024
REFUSED_LINE_LOGGED = 2048  # bytes of a refused head's first line that the access log shows


class HttpConnection:
    __slots__ = ("worker", "reactor", "transport", "fd", "deadline", "handler", "parser", "request",
                 "exchange", "body", "body_size", "keep_alive", "head_started", "chunked_out", "status",
                 "sent_body", "dispatching", "client", "trusted", "response_headers", "refused")

    def __init__(self, worker, transport, handler=None):
        self.worker = worker
        self.reactor = worker.reactor
        self.transport = transport
        self.fd = transport.fd
        self.deadline = transport.deadline
        self.handler = handler or worker.handler
        peer = transport.peer
        # The client's (host, port): the peer, or what a PROXY protocol header says.
        self.client = peer if type(peer) is tuple else ("", 0)
        # May this peer tell us who the client is (X-Forwarded-For...)? A unix-socket peer is a
        # local process the socket's permissions let in: trusted, as gunicorn does.
        self.trusted = type(peer) is not tuple or worker.trusted_peers.trusts(peer[0])
        self.parser = worker.parser_class(worker.limits)
        self.request: Request | None = None  # the request being read or answered (for the log)
        self.exchange: Exchange | None = None  # the request with the handler, until its response ends
        self.body = None  # the body being received
        self.body_size = 0
        self.keep_alive = True  # may the connection stay open after this response?
        self.chunked_out = False
        self.status = 0
        self.sent_body = 0
        self.response_headers = None  # the app's header lines, kept for the access log's %({name}o)s
        self.refused = None  # the first line of a head refused before it was a Request (the access log's)
        self.dispatching = False  # inside handler(): a response that ends must not re-enter data_received()
        self.head_started = self.reactor.now
        self.deadline.set(self.head_started + worker.config.header_timeout)
        transport.start(self)

    @property
    def closed(self) -> bool:
        return self.transport.closed

    def abort(self) -> None:
        self.transport.abort()

    def client_and_scheme(self, request) -> tuple[str, str | None]:
        """The client's address and the scheme it used, as far as we can believe the request."""
        if self.trusted:
            return client_and_scheme(request.headers, self.client[0], self.worker.trusted_peers)
        return self.client[0], None

    # -- input ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes from the transport (b"" from _resume(): go on with what is buffered). Requests are
        parsed and handed to the handler until the parser needs data or a response is pending;
        then what was written is flushed. (The loop is here, not in a method of its own: this
        runs for every request, and a Python call costs about what a system call's user side does.)"""
        parser = self.parser
        transport = self.transport
        if data:
            if parser.pos == len(parser.buf):
                if self.exchange is None and self.body is None and self.request is not None:
                    # The first byte of a new head on a kept-alive connection: its header_timeout
                    # starts now (as nginx's). On a new connection it runs from the accept, so
                    # idling first and trickling after gains a client no time.
                    self.head_started = self.reactor.now
                # RequestParser.feed() for its common case, nothing left over: take the bytes as they are.
                parser.buf = data
                parser.pos = 0
            else:
                parser.feed(data)
        elif parser.pos == len(parser.buf):
            # Resumed with nothing buffered (after a response that ended outside the handler's
            # call, as a handler thread's do): the parser would only say NEED_DATA.
            transport.flush()
            return
        worker = self.worker
        high_water = worker.high_water
        while self.exchange is None and not transport.closing and not transport.closed:
            if transport.out_len > high_water:
                # Backpressure: leave the rest of the pipeline unparsed until the output drains.
                transport.on_drain = self._resume
                break
            start = parser.pos  # where a head that is refused began (for the access log)
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                self.reject(exc.status, start)
                break
            kind = type(event)
            if kind is Request:
                self.request = request = event
                if event.has_body:
                    self.body = BytesIO()
                    self.body_size = 0
                    if event.expect_continue and not parser.buffered:
                        transport.write(http.CONTINUE)
                    self.deadline.set(self.reactor.now + worker.config.body_timeout)
                    continue
                body = _EMPTY
            elif kind is Data:
                self._add_body(event.data)
                continue
            elif kind is EndOfMessage:
                request = self.request
                body, self.body = self.body, None
                body.seek(0)
            else:
                if event is CLOSED:
                    transport.closing = True
                break
            # Hand the request to the handler (written out here, not in a method: once per request).
            self.status = 0
            self.keep_alive = request.keep_alive and worker.persistent
            self.deadline.when = 0.0  # Deadline.clear(), inline: no timeout while the handler works
            worker.requests += 1
            if worker.requests == worker.max_requests:
                worker.recycle()
            # The exchange (exchange.py says what its fields are).
            self.exchange = exchange = Exchange()
            exchange.conn = self
            exchange.request = request
            exchange.body = body
            exchange.head_only = request.method == b"HEAD"
            exchange.head_style = exchange.abort_callback = None
            exchange.connection_id = self.fd
            self.dispatching = True
            try:
                self.handler(exchange)
            except Exception:
                worker.log.exception("unhandled error in request handler")
                exchange.fail()
            finally:
                self.dispatching = False
            if parser.pos == len(parser.buf):
                break  # nothing more buffered: skip asking the parser for NEED_DATA
        transport.flush()

    def eof_received(self) -> None:
        transport = self.transport
        if self.exchange is not None:
            # The response is still coming: write it, then close (see _finished()). Stop watching
            # for input meanwhile: epoll is level-triggered, and a socket at EOF stays readable.
            transport.update_interest()
            return
        transport.closing = True
        transport.flush()

    def wants_input(self) -> bool:
        parser = self.parser
        return (self.transport.out_len <= self.worker.high_water
                and len(parser.buf) - parser.pos < _INPUT_LIMIT)

    def _add_body(self, data: bytes) -> None:
        body = self.body
        self.body_size += len(data)
        try:
            if self.body_size > self.worker.config.body_buffer_size and isinstance(body, BytesIO):
                spool = tempfile.TemporaryFile()
                self.body = spool
                spool.write(body.getbuffer())
                body = spool
            body.write(data)
        except OSError as exc:
            self._spool_failed(exc)
            return
        self.deadline.set(self.reactor.now + self.worker.config.body_timeout)

    def _spool_failed(self, exc: OSError) -> None:
        """No descriptor for the spool file (503: try again later), or no room on the disk (507):
        this request is refused, the connection closes, every other one goes on."""
        status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 503 if exc.errno in (
            errno.EMFILE, errno.ENFILE) else 500
        self.worker.log.error("cannot spool a request body of %d bytes from %s: %s", self.body_size,
                              self.client[0] or "unix socket", exc.strerror or exc)
        self.reject(status)
        self.body.close()
        self.body = None

    def _resume(self) -> None:
        """Go on with the pipeline: after a response that ended outside the handler's call, or
        once the output has drained below the high-water mark."""
        self.data_received(b"")

    def drained(self) -> None:
        """All output is sent: set the deadline that fits what the connection waits for now."""
        transport = self.transport
        if self.exchange is not None or self.body is not None:
            # The handler's turn, or body_timeout already set on progress.
            transport.update_interest()
            return
        parser = self.parser
        # (Never called while closing: the transport closes instead.)
        if parser.pos != len(parser.buf):
            self.deadline.set(self.head_started + self.worker.config.header_timeout)
        elif self.worker.stopping:
            transport.closing = True
            transport.flush()
            return
        else:
            keepalive = self.worker.config.keepalive
            if keepalive:
                # Deadline.set() inlined for the common case, a deadline moving later.
                deadline = self.deadline
                when = deadline.when = self.reactor.now + keepalive
                if not deadline.armed_at or when < deadline.armed_at:
                    deadline.set(when)
                if transport.interest == EPOLLIN and not transport.read_closed:
                    return  # waiting for the next request, as before: nothing to change
            else:
                transport.closing = True
                transport.flush()
                return
        transport.update_interest()

    def all_read(self) -> bool:
        """Every byte received has been parsed: a client that half-closed has nothing pipelined
        left to answer (asked only once read_closed is true: off the common path)."""
        return self.parser.pos == len(self.parser.buf)

    def refused_line(self, start: int) -> bytes | None:
        """The first line of a head refused before it became a Request, as it arrived from
        parser.buf[start:] (at most REFUSED_LINE_LOGGED bytes), for the access log: what was
        sent, as nginx logs it."""
        buf = self.parser.buf
        while start < len(buf) and buf[start] in b"\r\n":  # empty lines before a request are allowed
            start += 1
        end = buf.find(b"\r\n", start, start + REFUSED_LINE_LOGGED)
        return bytes(buf[start:end if end >= 0 else start + REFUSED_LINE_LOGGED]) or None

    def idle(self) -> bool:
        return (self.exchange is None and self.body is None and not self.parser.buffered
                and not self.transport.out_len)

    def activity(self) -> str:
        if self.exchange is not None or self.transport.out_len:
            return "writing"  # with the handler, or its response on the way
        return "waiting" if self.idle() else "reading"

    def timed_out(self) -> None:
        if self.exchange is not None or self.transport.out_len:
            self.transport.abort()  # a write that stalled for send_timeout
        elif self.body is not None or self.parser.buf[self.parser.pos:].strip(b"\r\n"):
            self.reject(408)  # a head or body that took too long (empty lines alone get no 408)
            self.transport.flush()
        else:
            self.transport.abort()  # idle keep-alive, or a TLS handshake that never finished

    def connection_lost(self) -> None:
        """The transport has closed: release the body being received, stop the producer."""
        if self.body is not None:
            self.body.close()  # its spool file goes now
            self.body = None
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None  # whatever the handler still sends goes nowhere
            callback, exchange.abort_callback = exchange.abort_callback, None
            if callback is not None:
                callback()  # a producer (paused generator, handler thread, file) stops and cleans up

    # -- responses ------------------------------------------------------------------------------

    def crashed(self) -> None:
        """An unexpected exception while handling this connection (the Reactor logged it): a
        500 if no response head went out yet, else the response is cut short; then close."""
        transport = self.transport
        if transport.closed:
            return
        self.keep_alive = False
        transport.on_drain = None
        if self.exchange is not None:
            self.fail(self.exchange)
        elif not transport.lingering:
            self.reject(500)
        transport.flush()

    def fail(self, exchange) -> None:
        """The response cannot be produced: a 500 if it has not started, else cut it short (no
        last chunk, then close), so the client never takes a broken response for a whole one."""
        if self.status:
            self.end(exchange, False)
            return
        exchange.head_style = None  # the app's reason phrase or Date are not the 500's
        exchange.respond(500, http.INTERNAL_ERROR_HEADERS, http.INTERNAL_ERROR_BODY)

    def start(self, exchange, status: int, headers: bytes, length: int | None) -> None:
        """Begin a streamed response (see Exchange.start)."""
        transport = self.transport
        keep_alive = self.keep_alive and not self.worker.stopping and not (transport.read_closed and self.all_read())
        style = exchange.head_style
        if style is not None and style[3]:
            keep_alive = False  # the app said Connection: close
        line, common = self.status_and_common(status, style)
        head, chunked, self.keep_alive = frame_head(line, common, headers,
                                                    http10=exchange.request.version == _HTTP10,
                                                    keep_alive=keep_alive, length=length, status=status)
        self.status = status
        self.response_headers = headers
        self.chunked_out = chunked and not exchange.head_only
        self.sent_body = 0
        transport.write(head)

    def status_and_common(self, status: int, style) -> tuple[bytes, bytes]:
        """The status line, and the Server and Date lines we add: the app may have given its own
        reason phrase (sent as written), its own Server or Date (which replace ours)."""
        line = _STATUS_LINES.get(status) or http.status_line(status)
        common = self.worker.common_headers
        if style is not None:
            reason, add_server, add_date, _ = style
            if reason is not None:
                line = http.status_line(status, reason)
            if not (add_server and add_date):
                server, date, _ = common.split(_CRLF)
                common = (server + _CRLF if add_server else b"") + (date + _CRLF if add_date else b"")
        return line, common

    def send(self, exchange, data) -> None:
        """Part of a streamed body; flushed at once."""
        if not data or exchange.head_only:
            return
        self.sent_body += len(data)
        self.transport.write(http.chunk(data) if self.chunked_out else data)
        self.transport.flush()

    def end(self, exchange, complete: bool) -> None:
        """The streamed response is over: whole, or broken off (no last chunk, then close)."""
        if self.chunked_out:
            if complete:
                self.transport.write(http.LAST_CHUNK)
            self.chunked_out = False
        self._finished(self.keep_alive and complete)

    def send_file(self, exchange, fd: int, offset: int, count: int, done) -> None:
        """count bytes of the file fd after the head (see Exchange.send_file)."""

        def sent() -> None:
            self.sent_body += count
            done()

        self.transport.send_file(fd, offset, count, sent)

    def _finished(self, keep_alive: bool) -> None:
        """Every response ends here, from the Reactor or from a completion: the exchange is
        done, the response is counted and logged, the connection closes or stays open, and
        outside the handler's call the pipeline goes on."""
        self.exchange = None
        transport = self.transport
        transport.on_drain = None  # a producer's: nobody waits for the output any more
        self.worker.response_done(self)  # before head_started moves on: it times the request
        self.head_started = self.reactor.now  # a pipelined request's head timeout starts now
        if not keep_alive or transport.read_closed and self.all_read():
            transport.closing = True
        if not self.dispatching:
            self._resume()

    def reject(self, status: int, start: int | None = None) -> None:
        """Answer a protocol error and close: nothing after a bad request can be trusted. It is
        counted and logged as any response is, with the request if its head was read, else with
        the first line of what came (start: where in the parser's buffer the head began, if the
        parser has moved past it)."""
        if self.exchange is None and self.body is None:
            self.request = None  # the head that failed (or the previous request's, long done)
            if self.worker.access_log is not None:  # only the access log shows it
                self.refused = self.refused_line(self.parser.pos if start is None else start)
        self.exchange = None  # a handler still working (a hung worker's) answers nothing more
        transport = self.transport
        transport.closing = True
        data = http.error(status, self.worker.common_headers)
        self.status = status
        self.sent_body = len(data) - data.index(b"\r\n\r\n") - 4
        transport.write(data)
        self.worker.response_done(self)


class ProxyProtocolConnection(HttpConnection):
    """proxy_protocol = true: the connection starts with a PROXY header (v1 or v2) from the
    proxy, read under header_timeout; then it is an HttpConnection like any other. A connection
    that does not start with a valid header is closed."""

    __slots__ = ("proxy_header",)

    def __init__(self, worker, transport, handler=None):
        self.proxy_header = b""  # what arrived of the header so far; None once it is read
        super().__init__(worker, transport, handler)

    def data_received(self, data: bytes) -> None:
        if self.proxy_header is None:
            HttpConnection.data_received(self, data)
            return
        data = self.proxy_header + data
        try:
            parsed = proxy_protocol.parse(data)
        except proxy_protocol.InvalidHeader as exc:
            self.worker.log.info("closing a connection from %s: %s", self.transport.peer, exc)
            self.transport.abort()
            return
        if parsed is None:
            self.proxy_header = data
            return
        used, client = parsed
        self.proxy_header = None
        if client is not None:
            # The bytes that follow are the client's: its forwarded headers are believed only
            # if it is itself a trusted proxy.
            self.client = client
            self.trusted = self.worker.trusted_peers.trusts(client[0])
        rest = data[used:]
        if rest:
            HttpConnection.data_received(self, rest)
