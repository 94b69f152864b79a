"""One HTTP/1.1 connection on the Reactor: parse requests, hand them to the app, write responses.

A request is handed to `conn.handler(conn, request, body)` (the worker's, or the status
routes on a status listener). The handler answers with
`respond()` (a whole response) or with `start()`, `send()` and `end()` (a stream), at once on
the Reactor thread (inline dispatch) or later, from a completion the worker queues bring back
(threads dispatch). Until the response ends, the connection parses no further request: pipelined
responses stay in order, and unread input waits in the parser (bounded, then the socket is not
read any more).

Timeouts use one Deadline per connection: `header_timeout` from the accept, or on a kept-alive
connection from the first byte of the next head (trickling bytes do not extend it), `body_timeout` and `send_timeout` from the last progress,
`keepalive` while idle between requests.
"""

from __future__ import annotations

import errno
import os
import tempfile
from io import BytesIO
from socket import IPPROTO_TCP as _IPPROTO_TCP, TCP_CORK as _TCP_CORK

from prefork.http import CLOSED, Data, EndOfMessage, ProtocolError, Request
from prefork.http import proxy_protocol
from prefork.http import framing
from prefork.http.framing import frame_head
from prefork.http import response as http
from prefork.http.forwarded import client_and_scheme

from .reactor import EPOLLIN, EPOLLOUT
from .stream import _JOIN_LIMIT, _READ_SIZE, Stream

# The endings of a head that frame_head() would write, for respond()'s inlined copy of it.
_CRLF = framing.CRLF
_CLOSE_CRLF = framing.CLOSE + _CRLF
_KEEP_ALIVE_CRLF = framing.KEEP_ALIVE + _CRLF
_HTTP10 = b"1.0"
_EPOLLOUT = EPOLLOUT
_NOT_EPOLLOUT = ~EPOLLOUT
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
_SENDFILE_CHUNK = 1 << 20  # bytes per os.sendfile call, so one file cannot hold the loop long


class HttpConnection(Stream):
    __slots__ = ("handler", "parser", "request", "body", "body_size", "busy", "keep_alive", "head_only",
                 "head_started", "chunked_out", "status", "sent_body", "dispatching",
                 "on_abort", "file_job", "client", "trusted", "head_style")

    def __init__(self, worker, sock, peer, handler=None):
        super().__init__(worker, sock, peer)
        self.handler = handler or worker.handler
        # The client's (host, port): the peer, or what a PROXY protocol header says.
        self.client = peer if type(peer) is tuple else ("", 0)
        # May this peer tell us who the client is (X-Forwarded-For...)? A unix-socket peer is a
        # local process the socket's permissions let in: trusted, as gunicorn does.
        self.trusted = type(peer) is not tuple or worker.trusted_peers.trusts(peer[0])
        self.parser = worker.parser_class(worker.limits)
        self.request: Request | None = None
        self.body = None
        self.body_size = 0
        self.busy = False  # a request is with the app and its response has not ended
        self.keep_alive = True
        self.head_only = False
        self.chunked_out = False
        self.status = 0
        self.sent_body = 0
        self.dispatching = False  # inside handler(): end() must not re-enter process()
        self.on_abort = None  # called once if the connection is closed while a response is produced
        self.file_job = None  # a file being sent with os.sendfile (see send_file)
        # None, or the app's own framing of this response's head: (reason phrase or None,
        # whether to add our Server line, our Date line); see status_and_common().
        self.head_style = None
        self.head_started = self.reactor.now
        self.deadline.set(self.head_started + worker.config.header_timeout)

    def client_and_scheme(self, request) -> tuple[str, str | None]:
        """The client's address and the scheme it used, as far as we can believe the request."""
        if self.trusted:
            return client_and_scheme(request.headers, self.client[0], self.worker.trusted_peers)
        return self.client[0], None

    # -- input ----------------------------------------------------------------------------------

    def on_events(self, mask: int) -> None:
        # Stream.on_events, on_readable and on_data in one function: this runs for every request,
        # and each Python call on this path costs about as much as a system call's user side.
        if mask & _EPOLLOUT:
            self.flush()
            if self.closed or not mask & _NOT_EPOLLOUT:
                return
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        if not data:
            self.read_closed = True
            if self.lingering:
                self.abort()
            else:
                self.on_eof()
            return
        if self.lingering:
            return
        parser = self.parser
        if parser.pos == len(parser.buf):
            if not self.busy and self.body is None and self.request is not None:
                # The first byte of a new head on a kept-alive connection: its header_timeout
                # starts now (as nginx's). On a new connection it runs from the accept, so
                # idling first and trickling after gains a client no time.
                self.head_started = self.reactor.now
            # RequestParser.feed() for its common case, nothing left over: take the bytes as they are.
            parser.buf = data
            parser.pos = 0
        else:
            parser.feed(data)
        self.process()
        self.flush()

    def on_readable(self) -> None:
        self.on_events(EPOLLIN)

    def on_eof(self) -> None:
        if self.busy:
            # The response is still coming: write it, then close (see end()). Stop watching for
            # input meanwhile: epoll is level-triggered, and a socket at EOF stays readable.
            self.update_interest()
            return
        self.closing = True
        self.flush()

    def wants_input(self) -> bool:
        # Not while a file is sent: its handler never reads, and level-triggered EPOLLIN with
        # pipelined input pending would fire without end.
        parser = self.parser
        return (not self.read_closed and not self.closing and self.out_len <= self.worker.high_water
                and len(parser.buf) - parser.pos < _INPUT_LIMIT and self.file_job is None)

    def process(self) -> None:
        """Turn buffered input into requests until the parser needs data or a response is pending."""
        parser = self.parser
        worker = self.worker
        high_water = worker.high_water
        while not self.busy and not self.closing:
            if self.out_len > high_water:
                # Backpressure: leave the rest of the pipeline unparsed until the output drains.
                self.on_drain = self._resume
                return
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                self.reject(exc.status)
                return
            kind = type(event)
            if kind is Request:
                self.request = request = event
                if event.has_body:
                    self.body = BytesIO()
                    self.body_size = 0
                    if event.expect_continue and not parser.buffered:
                        self.write(http.CONTINUE)
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
                if event is CLOSED and not self.busy:
                    self.closing = True
                return
            # Hand the request to the app (written out here, not in a method: once per request).
            self.busy = True
            self.status = 0
            self.keep_alive = request.keep_alive
            self.head_only = request.method == b"HEAD"
            self.head_style = None
            self.deadline.when = 0.0  # Deadline.clear(), inline: no timeout while the app works
            worker.requests += 1
            if worker.requests == worker.max_requests:
                worker.recycle()
            self.dispatching = True
            try:
                self.handler(self, request, body)
            except Exception:
                self.handler_failed()
            finally:
                self.dispatching = False
            if parser.pos == len(parser.buf):
                return  # nothing more buffered: skip asking the parser for NEED_DATA

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
        if self.closed:
            return
        self.process()
        self.flush()

    def drained(self) -> None:
        """All output is sent: set the deadline that fits what the connection waits for now."""
        if self.busy or self.body is not None:
            # The app's turn, or body_timeout already set on progress. A file being sent keeps
            # the EPOLLOUT interest _send_file asked for.
            if self.file_job is None:
                self.update_interest()
            return
        parser = self.parser
        if parser.pos != len(parser.buf):
            self.deadline.set(self.head_started + self.worker.config.header_timeout)
        elif self.closing:
            return
        elif self.worker.stopping:
            self.closing = True
            self.flush()
            return
        else:
            keepalive = self.worker.config.keepalive
            if keepalive:
                # Deadline.set() inlined for the common case, a deadline moving later.
                deadline = self.deadline
                when = deadline.when = self.reactor.now + keepalive
                if not deadline.armed_at or when < deadline.armed_at:
                    deadline.set(when)
                if self.interest == EPOLLIN and not self.read_closed:
                    return  # waiting for the next request, as before: nothing to change
            else:
                self.closing = True
                self.flush()
                return
        self.update_interest()

    def all_read(self) -> bool:
        """Every byte received has been parsed: a client that half-closed has nothing pipelined
        left to answer (asked only once read_closed is true: off the common path)."""
        return self.parser.pos == len(self.parser.buf)

    def idle(self) -> bool:
        return not self.busy and self.body is None and not self.parser.buffered and not self.out_len

    def activity(self) -> str:
        if self.busy or self.out_len:
            return "writing"  # with the app, or its response on the way
        return "waiting" if self.idle() else "reading"

    def on_timeout(self) -> None:
        if self.busy or self.out_len:
            self.abort()  # a write that stalled for send_timeout
        elif self.body is not None or self.parser.buf[self.parser.pos:].strip(b"\r\n"):
            self.reject(408)  # a head or body that took too long (empty lines alone get no 408)
            self.flush()
        else:
            self.abort()  # idle keep-alive

    # -- to the app and back --------------------------------------------------------------------

    def crashed(self) -> None:
        """An unexpected exception while handling this connection (the Reactor logged it): a
        500 if no response head went out yet, else the response is cut short; then close."""
        if self.closed:
            return
        self.keep_alive = False
        self.on_drain = None
        if self.busy:
            self.fail()
        elif not self.lingering:
            self.reject(500)
        self.flush()

    def handler_failed(self) -> None:
        """The handler raised: log it, then fail() the response."""
        self.worker.log.exception("unhandled error in request handler")
        self.fail()

    def fail(self) -> None:
        """The response cannot be produced: a 500 if it has not started, else cut it short (no
        last chunk, then close), so the client never takes a broken response for a whole one."""
        if self.closed or not self.busy:
            return
        if self.status:
            self.end_incomplete()
            return
        self.head_style = None  # the app's reason phrase or Date are not the 500's
        if self.dispatching:
            self.respond(500, http.INTERNAL_ERROR_HEADERS, http.INTERNAL_ERROR_BODY)
        else:
            self.respond_later(500, http.INTERNAL_ERROR_HEADERS, http.INTERNAL_ERROR_BODY)

    def respond(self, status: int, headers: bytes, body: bytes) -> None:
        """A whole response: `headers` are serialized lines (framing included), body the payload."""
        worker = self.worker
        # A client that half-closed still gets an answer to every request it pipelined first.
        keep_alive = self.keep_alive and not worker.stopping and not (self.read_closed and self.all_read())
        self.status = status
        if self.head_only:
            body = b""
        if self.head_style is None:
            try:
                line = _STATUS_LINES[status]
            except KeyError:
                line = http.status_line(status)
            common = worker.common_headers
        else:
            line, common = self.status_and_common(status)
        # frame_head() for a body of known length, inlined (this runs once per request; the
        # copy is pinned to it by tests/test_framing.py): the Connection line and the blank line.
        end = (_CRLF if self.request.version != _HTTP10 else _KEEP_ALIVE_CRLF) if keep_alive else _CLOSE_CRLF
        if len(body) <= _JOIN_LIMIT:
            data = b"".join((line, common, headers, end, body))
            self.out.append(data)
            self.out_len += len(data)
        else:  # a large body is queued as it is, not copied: flush() gathers the pieces
            data = b"".join((line, common, headers, end))
            self.out += (data, body)
            self.out_len += len(data) + len(body)
        self.sent_body = len(body)
        # What _ended() does, inline: this runs once per request.
        self.busy = False
        worker.response_done(self)  # before head_started moves on: it times the request
        self.head_started = self.reactor.now
        if not keep_alive:
            self.closing = True

    def start(self, status: int, headers: bytes, length: int | None) -> None:
        """Begin a streamed response whose `headers` declare Content-Length `length`; None for a
        body of unknown length: chunked on HTTP/1.1, ended by closing the connection on HTTP/1.0."""
        keep_alive = self.keep_alive and not self.worker.stopping and not (self.read_closed and self.all_read())
        line, common = self.status_and_common(status)
        head, chunked, self.keep_alive = frame_head(line, common, headers, http10=self.request.version == _HTTP10,
                                                    keep_alive=keep_alive, length=length, status=status)
        self.status = status
        self.chunked_out = chunked and not self.head_only
        self.sent_body = 0
        self.write(head)

    def status_and_common(self, status: int) -> tuple[bytes, bytes]:
        """The status line, and the Server and Date lines we add: the app may have given its own
        reason phrase (sent as written), its own Server or Date (which replace ours)."""
        line = _STATUS_LINES.get(status) or http.status_line(status)
        common = self.worker.common_headers
        style = self.head_style
        if style is not None:
            reason, add_server, add_date = style
            if reason is not None:
                line = http.status_line(status, reason)
            if not (add_server and add_date):
                server, date, _ = common.split(_CRLF)
                common = (server + _CRLF if add_server else b"") + (date + _CRLF if add_date else b"")
        return line, common

    def send(self, data) -> None:
        """Part of a streamed body; flushed at once."""
        if not data or self.head_only or self.closed:
            return
        self.sent_body += len(data)
        self.write(http.chunk(data) if self.chunked_out else data)
        self.flush()

    def end(self) -> None:
        """The streamed response is complete."""
        if self.chunked_out:
            self.write(http.LAST_CHUNK)
            self.chunked_out = False
        self._ended(self.keep_alive)
        if not self.dispatching:
            # Called from a completion (threads dispatch), not from process(): carry on here.
            self._resume()

    def _ended(self, keep_alive: bool) -> None:
        self.busy = False
        self.worker.response_done(self)  # before head_started moves on: it times the request
        self.head_started = self.reactor.now  # a pipelined request's head timeout starts now
        if not keep_alive or self.read_closed and self.all_read():
            self.closing = True

    def reject(self, status: int) -> None:
        """Answer a protocol error and close: nothing after a bad request can be trusted. It is
        counted and logged as any response is, with the request if its head was read."""
        if not self.busy and self.body is None:
            self.request = None  # the head that failed (or the previous request's, long done)
        self.busy = False
        self.closing = True
        data = http.error(status, self.worker.common_headers)
        self.status = status
        self.sent_body = len(data) - data.index(b"\r\n\r\n") - 4
        self.write(data)
        self.worker.response_done(self)

    # -- responses produced elsewhere: worker queues, paused streams, files (WSGI hosting) -------

    def respond_later(self, status: int, headers: bytes, body: bytes) -> None:
        """respond() from a completion, outside process(): then carry on with pipelined input."""
        if self.closed:
            return
        self.respond(status, headers, body)
        self._resume()

    def end_incomplete(self) -> None:
        """End a streamed response that broke off: flush what was sent, no last chunk, then close."""
        self.chunked_out = False
        self.keep_alive = False
        self.end()

    def abort(self) -> None:
        if self.closed:
            return
        super().abort()
        if self.body is not None:
            self.body.close()  # a request body being received: its spool file goes now
            self.body = None
        if self.on_abort is not None:
            # A producer (paused generator, handler thread, file) must stop and clean up.
            on_abort, self.on_abort = self.on_abort, None
            on_abort()

    def send_file(self, fd: int, offset: int, count: int, done) -> None:
        """Send count bytes of the file fd from offset with os.sendfile, after the queued output.

        done() is called on the Reactor when all is sent; if the connection closes first,
        `on_abort` is called instead. While the file is sent the connection's events go to
        `_on_file_events`, so ordinary responses keep their flush() untouched.
        """
        self.file_job = [fd, offset, count, done]
        self.reactor.handlers[self.fd] = self._on_file_events
        if type(self.peer) is tuple:  # TCP (a unix socket's peer is a path); sock.family costs an enum
            # Corked, TCP sends only full segments: the head leaves with the file's first bytes,
            # and the file in as few segments as the window allows, as nginx's tcp_nopush does.
            self.sock.setsockopt(_IPPROTO_TCP, _TCP_CORK, 1)
        self._send_file()

    def _on_file_events(self, mask: int) -> None:
        self._send_file()

    def _send_file(self) -> None:
        if self.closed:
            return
        if self.out:
            # The response head and anything queued before the file go first; what does not fit
            # waits for EPOLLOUT, which flush() asks for (events come back to _on_file_events).
            self.flush()
            if self.closed or self.out:
                return
        job = self.file_job
        fd, offset, count, done = job
        while count:
            try:
                sent = os.sendfile(self.fd, fd, offset, min(count, _SENDFILE_CHUNK))
            except (BlockingIOError, InterruptedError):
                job[1], job[2] = offset, count
                self._wait_writable()
                return
            except OSError:
                self.abort()
                return
            if not sent:
                self.worker.log.error("file for %r ended %d bytes early", self.request, count)
                self.abort()
                return
            offset += sent
            count -= sent
            self.sent_body += sent
        self.file_job = None
        if type(self.peer) is tuple:
            self.sock.setsockopt(_IPPROTO_TCP, _TCP_CORK, 0)  # the last partial segment goes now
        self.deadline.clear()
        self.reactor.handlers[self.fd] = self.on_events
        done()

    def _wait_writable(self) -> None:
        self.deadline.set(self.reactor.now + self.worker.config.send_timeout)
        if self.interest != EPOLLOUT:
            self.interest = EPOLLOUT
            self.reactor.modify(self.fd, EPOLLOUT)


class ProxyProtocolConnection(HttpConnection):
    """proxy_protocol = true: the connection starts with a PROXY header (v1 or v2) from the
    proxy, read under header_timeout; then it is an HttpConnection like any other. A connection
    that does not start with a valid header is closed."""

    __slots__ = ("proxy_header",)

    def __init__(self, worker, sock, peer, handler=None):
        super().__init__(worker, sock, peer, handler)
        self.proxy_header = b""  # what arrived of the header so far; None once it is read

    def on_events(self, mask: int) -> None:
        if self.proxy_header is None:
            HttpConnection.on_events(self, mask)
            return
        Stream.on_readable(self)  # recv, then on_data() below, or on_eof(): the connection closes

    def on_data(self, data: bytes) -> None:
        """Bytes of the PROXY header, and perhaps of the first request after it."""
        data = self.proxy_header + data
        try:
            parsed = proxy_protocol.parse(data)
        except proxy_protocol.InvalidHeader as exc:
            self.worker.log.info("closing a connection from %s: %s", self.peer, exc)
            self.abort()
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
        self.reactor.handlers[self.fd] = super().on_events  # the rest is HTTP
        rest = data[used:]
        if rest:
            self.parser.feed(rest)
            self.process()
            self.flush()
