"""Hosting a WSGI application (PEP 3333), on the Reactor thread or on the worker queues.

Two dispatch paths, chosen with --dispatch:

- inline (`InlineWsgi`): the Reactor thread calls the app. A list body is joined and answered
  with one `conn.respond()`, the fast path; any other iterable is streamed with
  `conn.start/send/end`, pausing when the connection's output is above its high-water mark
  and resuming on `conn.on_drain`.
- threads (`ThreadedWsgi`): the Reactor builds the environ and submits the request to the
  worker queues (prefork/workers/proactor.py); a handler thread runs the app and posts the
  response back as completions, which the Reactor applies. A streamed body waits on the
  thread while the connection's output is above its high-water mark (`StreamCredit`).

Both paths share the rules: the app's status and headers are checked (no CR, LF or NUL, no
hop-by-hop header) and any breach is a 500 with one log line; an exception is a 500 with the
traceback in the error log only; the iterable's close() is always called; a body without
Content-Length goes out chunked on HTTP/1.1 and ends with the connection on HTTP/1.0; a
`wsgi.file_wrapper` over a regular file is sent with os.sendfile. The environ is built in
environ.py.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from http import HTTPStatus

from prefork.http import response as http
from prefork.workers.proactor import StreamCredit, WorkerQueues

from .environ import EnvironBuilder, FileWrapper

log = logging.getLogger("prefork")

_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "trailers", "transfer-encoding", "upgrade"))
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NO_BODY = frozenset((204, 304))  # answered without a body, whatever the app sends (RFC 9112 6.3)
_CACHE_LIMIT = 512  # entries per memo table; they stop growing there (names and heads repeat)


class ResponseError(Exception):
    """The app broke a rule of PEP 3333 or HTTP in its response (status, headers or body)."""


# -- the response head ----------------------------------------------------------------------------

_HEADS: dict = {}  # (status, *headers) -> (code, header lines, Content-Length or None, head style)
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
# Control characters an app may not put in a header value (HTAB is allowed): they would let
# the value break the head, or reach a terminal or a log raw.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def response_head(status, headers) -> tuple[int, bytes, int | None, tuple | None]:
    """Check and serialize what the app gave start_response(); raise ResponseError saying why not.

    Returns (code, header lines, Content-Length or None, head style): the style is None for a
    head the connection frames as usual, else (reason phrase or None, whether the server adds
    its Server line, its Date line) -- for an app's own reason phrase, Server or Date.
    Apps send the same status and headers again and again, so the result is memoized.
    """
    try:
        key = (status, *headers)
        head = _HEADS.get(key)
    except TypeError:  # unhashable parts: check them the slow way, without memo
        key = head = None
    if head is None:
        head = _build_head(status, headers)
        if key is not None and len(_HEADS) < _CACHE_LIMIT:
            _HEADS[key] = head
    return head


def _build_head(status, headers) -> tuple[int, bytes, int | None, tuple | None]:
    if not isinstance(status, str):
        raise ResponseError(f"status must be a str, not {type(status).__name__}: {status!r}")
    code = status[:3]
    if len(status) < 4 or status[3] != " " or not (code.isascii() and code.isdigit()) or code[0] in "06789":
        raise ResponseError(f"status must be a code from 100 to 599, a space and a reason: {status!r}")
    if code[0] == "1":
        # The server sends 100 Continue itself; as the answer, the client would read the next one as this.
        raise ResponseError(f"status {status!r} is informational (1xx), not a final response")
    reason = status[4:]
    if _CONTROLS.search(reason) or "\x85" in reason:
        raise ResponseError(f"status {status!r} has a control character in its reason phrase")
    if not isinstance(headers, list):
        raise ResponseError(f"headers must be a list, not {type(headers).__name__}")
    lines = []
    length = None
    own_server = own_date = False
    for item in headers:
        if not isinstance(item, tuple) or len(item) != 2:
            raise ResponseError(f"a header must be a (name, value) tuple: {item!r}")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise ResponseError(f"header name and value must be str: {item!r}")
        if not name or not _TOKEN_CHARS.issuperset(name):
            raise ResponseError(f"invalid header name {name!r}")
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            raise ResponseError(f"hop-by-hop header {name!r} is the server's to send (value {value!r})")
        if _CONTROLS.search(value) or "\x85" in value and not _utf8_in_latin1(value):
            raise ResponseError(f"header {name!r} has a control character in its value {value!r}")
        value = value.strip(" \t")  # Django sends Set-Cookie with a leading space
        try:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError:
            raise ResponseError(f"header {name!r} value {value!r} is not latin-1") from None
        if lower == "content-length":
            if length is not None or not (value.isascii() and value.isdigit()):
                raise ResponseError(f"invalid or repeated Content-Length {value!r}")
            length = int(value)
            if code == "204":
                lines.pop()  # a 204 must not have one (RFC 9110 8.6); a 304's tells the resource's length
        elif lower == "server":
            own_server = True
        elif lower == "date":
            own_date = True
    number = int(code)
    custom = reason != _PHRASES.get(number)
    style = None
    if custom or own_server or own_date:
        style = (reason.encode("latin-1", "replace") if custom else None, not own_server, not own_date)
    return number, b"".join(lines), length, style


def _utf8_in_latin1(value: str) -> bool:
    """Whether a value holding 0x85 is UTF-8 passed through latin-1 (where 0x85 is a continuation
    byte, not the NEL control): PEP 3333 values carry other encodings that way."""
    try:
        value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def whole_response(code: int, lines: bytes, length, body: bytes, head_only: bool, environ):
    """Frame a response whose whole body is known: (header lines, body, must close)."""
    if code in _NO_BODY:
        if body:
            _log_dropped_body(code, environ)
        return lines, b"", False
    if length is None:
        if head_only and not body:
            return lines, body, False  # a HEAD answer must not claim a length it does not know
        return lines + b"Content-Length: %d\r\n" % len(body), body, False
    if length == len(body) or head_only:
        return lines, body, False
    log.error("%s %s: the app declared Content-Length %d but its body has %d bytes",
              environ["REQUEST_METHOD"], environ["PATH_INFO"], length, len(body))
    if len(body) > length:
        return lines, body[:length], False
    return lines, body, True  # a short body: the client sees it end with the connection


def _log_dropped_body(code: int, environ) -> None:
    log.error("%s %s: the app sent a body with a %d response, which has none; it is dropped",
              environ["REQUEST_METHOD"], environ["PATH_INFO"], code)


def _large(result: list, conn) -> bool:
    """A list of several items larger than high_water together: sent as a stream of its items,
    with the stream's backpressure, instead of being joined into one more copy."""
    if len(result) < 2:
        return False
    try:
        return sum(map(len, result)) > conn.worker.high_water
    except TypeError:
        return False  # not bytes: the fast path says so


def _join_body(result) -> bytes:
    try:
        return b"".join(result)
    except TypeError:
        kinds = sorted({type(part).__name__ for part in result if not isinstance(part, (bytes, bytearray))})
        raise ResponseError(f"the response body must be bytes, not {', '.join(kinds)}") from None


def _check_chunk(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise ResponseError(f"the response body must be bytes, not {type(data).__name__}")


def _close(result) -> None:
    """Call the iterable's close(), as PEP 3333 requires, whatever happened."""
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("error in the app's close()")


def _log_failure(environ, exc: BaseException) -> None:
    where = f"{environ['REQUEST_METHOD']} {environ.get('RAW_URI', environ['PATH_INFO'])}"
    if isinstance(exc, ResponseError):
        log.error("%s: invalid response from the app: %s", where, exc)
    else:
        log.error("%s: error in the app", where, exc_info=exc)


# -- wsgi.file_wrapper, sent with os.sendfile --------------------------------------------------

def file_plan(wrapper: FileWrapper, length):
    """(fd, offset, count, complete) to send the wrapped file with os.sendfile, or None if it cannot."""
    filelike = wrapper.filelike
    try:
        fd = filelike.fileno()
        info = os.fstat(fd)
        offset = filelike.tell()
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    available = max(0, info.st_size - offset)
    if length is None or length == available:
        return fd, offset, available, True
    if length < available:
        return fd, offset, length, True
    return fd, offset, available, False  # the file is shorter than the app's Content-Length


# -- start_response and write() ------------------------------------------------------------------

class _Response:
    """One request's start_response() and write(), and the state of its response."""

    __slots__ = ("status", "headers", "head_sent", "remaining", "whole", "environ", "result", "conn")

    def __init__(self, conn, environ):
        self.conn = conn
        self.environ = environ
        self.status = None
        self.headers = None
        self.head_sent = False  # PEP 3333: from here on, start_response(exc_info) re-raises
        self.remaining = None  # body bytes still due under the app's Content-Length
        self.whole = None  # a first chunk that is the whole body: answered with respond()
        self.result = None

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data) -> None:
        """PEP 3333's write(): part of the body, sent before the iterable's."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if data:
            self.send(_check_chunk(data))

    def close_result(self) -> None:
        """Call the iterable's close() -- once, whichever way the response ended."""
        result, self.result = self.result, None
        if result is not None:
            _close(result)

    def head(self):
        if self.status is None:
            raise ResponseError("the app returned a body without calling start_response()")
        code, lines, length, style = response_head(self.status, self.headers)
        self.conn.head_style = style
        return code, lines, length

    def trim(self, data):
        """Apply the app's Content-Length to a chunk: never send more than it declared."""
        remaining = self.remaining
        if remaining is None:
            return data
        if len(data) > remaining:
            environ = self.environ
            log.error("%s %s: the app sent more than its Content-Length; the rest is dropped",
                      environ["REQUEST_METHOD"], environ["PATH_INFO"])
            data = data[:remaining]
        self.remaining = remaining - len(data)
        return data

    def first_chunk(self, data):
        """The head goes out with the first body chunk: (code, lines, length) to start a stream,
        or None when the response is answered whole -- its status allows no body (whole_response()
        drops and logs it, later chunks are ignored) or this chunk fills its Content-Length."""
        code, lines, length = self.head()
        self.head_sent = True
        if code in _NO_BODY:
            self.whole = (code, lines, length, data)
            return None
        if length is not None:
            self.remaining = length
            if len(data) >= length:
                self.whole = (code, lines, length, self.trim(data))
                return None
        return code, lines, length

    def file_head(self, wrapper: FileWrapper):
        """(code, lines, length, plan) to send a wsgi.file_wrapper with os.sendfile, or None to iterate it."""
        code, lines, length = self.head()
        if code in _NO_BODY:
            return None
        plan = file_plan(wrapper, length)
        if plan is None:
            return None
        self.head_sent = True
        return code, lines, length, plan

    def file_done(self, complete: bool) -> None:
        """On the Reactor: the file went out (all of it, or as much as it had)."""
        conn = self.conn
        conn.on_abort = None
        self.close_result()
        if complete:
            conn.end()
        else:
            conn.end_incomplete()

    def log_short_body(self) -> None:
        environ = self.environ
        log.error("%s %s: the app's body ended %d bytes short of its Content-Length",
                  environ["REQUEST_METHOD"], environ["PATH_INFO"], self.remaining)

    def send(self, data) -> None:  # pragma: no cover - each path has its own
        raise NotImplementedError


class InlineResponse(_Response):
    """A response produced on the Reactor thread: streamed straight into the connection."""

    __slots__ = ("iterator", "cancelled")

    def __init__(self, conn, environ):
        # _Response's fields set here, not by super().__init__(): one call less per request.
        self.environ = environ
        self.status = self.headers = self.remaining = self.whole = self.result = self.iterator = None
        self.head_sent = self.cancelled = False
        self.conn = conn

    def serve(self, result) -> None:
        """The app returned `result` (not a list answered whole): stream it."""
        self.result = result
        conn = self.conn
        if conn.closed:  # write() met a broken connection
            self.cancel()
            return
        try:
            if type(result) is FileWrapper and not self.head_sent:
                plan = self.file_head(result)
                if plan is not None:
                    start_file(conn, *plan, self.cancel, self.file_done)
                    return
            self.iterator = iter(result)
        except Exception as exc:
            self.fail(exc)
            return
        conn.on_abort = self.cancel
        self.pump()

    def pump(self) -> None:
        """Iterate the body until it ends or the connection's output is above high water."""
        conn = self.conn
        high_water = conn.worker.high_water
        try:
            for data in self.iterator:
                if data:
                    self.send(_check_chunk(data))
                    if conn.closed:
                        if not self.cancelled:
                            self.cancel()
                        return
                    if self.remaining == 0:
                        break
                    if conn.out_len > high_water:
                        conn.on_drain = self.pump  # resume once the client has read enough
                        return
        except Exception as exc:
            self.fail(exc)
            return
        if self.cancelled:
            return
        self.finish()

    def send(self, data) -> None:
        conn = self.conn
        if not self.head_sent:
            head = self.first_chunk(data)
            if head is None:
                return
            conn.start(*head)
        elif self.whole is not None or self.remaining == 0:
            return
        conn.send(self.trim(data))

    def finish(self) -> None:
        conn = self.conn
        conn.on_abort = None
        self.close_result()
        if conn.closed:
            return
        whole = self.whole
        if whole is not None or not self.head_sent:
            try:
                code, lines, length = self.head() if whole is None else whole[:3]
            except ResponseError as exc:
                self.fail(exc)
                return
            lines, body, close = whole_response(code, lines, length, whole[3] if whole else b"",
                                                conn.head_only, self.environ)
            if close:
                conn.keep_alive = False
            _respond(conn, code, lines, body)
        elif self.remaining:
            self.log_short_body()
            conn.end_incomplete()
        else:
            conn.end()

    def fail(self, exc: BaseException) -> None:
        _log_failure(self.environ, exc)
        conn = self.conn
        conn.on_abort = None
        self.close_result()
        if conn.closed:
            return
        if self.head_sent and self.whole is None:
            conn.end_incomplete()
        else:
            conn.fail()  # a 500

    def cancel(self) -> None:
        """The connection closed under the response: stop and release the body."""
        self.cancelled = True
        self.close_result()


def _respond(conn, code: int, lines: bytes, body: bytes) -> None:
    # Inside worker.handler() the connection carries on by itself; later it must be told to.
    if conn.dispatching:
        conn.respond(code, lines, body)
    else:
        conn.respond_later(code, lines, body)


def start_file(conn, code: int, lines: bytes, length, plan, on_abort, done) -> None:
    """On the Reactor: the head, then the file with os.sendfile; done(complete) when sent."""
    fd, offset, count, complete = plan
    if length is None:
        length = count
        lines += b"Content-Length: %d\r\n" % count
    conn.start(code, lines, length)
    if conn.head_only or not count:
        done(complete)
        return
    conn.on_abort = on_abort
    conn.send_file(fd, offset, count, lambda: done(complete))


class ThreadResponse(_Response):
    """A response produced on a handler thread: every step is posted to the Reactor."""

    __slots__ = ("queues", "head_only", "credit")

    def __init__(self, conn, queues, environ, head_only: bool):
        self.environ = environ
        self.status = self.headers = self.remaining = self.whole = self.result = None
        self.head_sent = False
        self.conn = conn
        self.queues = queues
        self.head_only = head_only
        self.credit = None

    def run(self, app):
        """Call the app and produce its response; returns the final completion for the Reactor."""
        try:
            result = app(self.environ, self.start_response)
        except Exception as exc:
            return self.fail(exc)
        self.result = result
        try:
            if type(result) is list and not self.head_sent and not _large(result, self.conn):
                body = result[0] if len(result) == 1 else _join_body(result)
                if body.__class__ is not bytes:
                    body = _join_body(result)
                code, lines, length = self.head()
                if length is not None and length == len(body) and code not in _NO_BODY:
                    return self.conn.respond_later, (code, lines, body)  # the common case
                return self._whole(code, lines, length, body)
            if type(result) is FileWrapper and not self.head_sent:
                plan = self.file_head(result)
                if plan is not None:
                    return _start_file, (self, *plan)
            for data in result:
                if data:
                    self.send(_check_chunk(data))
                    if self.remaining == 0:
                        break
                    credit = self.credit
                    if credit is not None and credit.cancelled:
                        break
        except Exception as exc:
            return self.fail(exc)
        self.close_result()
        credit = self.credit
        if credit is not None and credit.cancelled:
            return None
        whole = self.whole
        if whole is not None:
            return self._whole(*whole)
        if not self.head_sent:
            try:
                code, lines, length = self.head()
            except ResponseError as exc:
                return self.fail(exc)
            return self._whole(code, lines, length, b"")
        if self.remaining:
            self.log_short_body()
            return _end_stream, (self, False)
        return _end_stream, (self, True)

    def send(self, data) -> None:
        """Post a body chunk to the Reactor; wait while the connection's output is too full."""
        if not self.head_sent:
            head = self.first_chunk(data)
            if head is None:
                return
            code, lines, length = head
            self.credit = credit = StreamCredit(self.conn.worker.high_water)
            data = self.trim(data)
            ack = credit.spend(len(data))
            self.queues.post(self.conn, _start_stream, self, code, lines, length, data, ack)
        else:
            credit = self.credit
            if self.whole is not None or self.remaining == 0 or credit.cancelled:
                return
            data = self.trim(data)
            ack = credit.spend(len(data))
            self.queues.post(self.conn, _send_stream, self, data, ack)
        if ack:
            credit.wait()

    def fail(self, exc: BaseException):
        _log_failure(self.environ, exc)
        self.close_result()
        if self.head_sent and self.whole is None:
            return _end_stream, (self, False)
        return self.conn.fail, ()  # a 500

    def _whole(self, code, lines, length, body):
        lines, body, close = whole_response(code, lines, length, body, self.head_only, self.environ)
        if close:
            return _respond_and_close, (self.conn, code, lines, body)
        return self.conn.respond_later, (code, lines, body)

    def file_cancelled(self) -> None:
        self.close_result()


# Completions: run on the Reactor thread, in the order the handler thread posted them.

def _start_stream(response: ThreadResponse, code, lines, length, data, ack) -> None:
    conn = response.conn
    if conn.closed:
        response.credit.cancel()
        return
    conn.start(code, lines, length)
    conn.on_abort = response.credit.cancel
    conn.send(data)
    if ack:
        response.credit.acknowledge(conn)


def _send_stream(response: ThreadResponse, data, ack) -> None:
    conn = response.conn
    if conn.closed:
        response.credit.cancel()
        return
    conn.send(data)
    if ack:
        response.credit.acknowledge(conn)


def _end_stream(response: ThreadResponse, complete: bool) -> None:
    conn = response.conn
    if conn.closed:
        return
    conn.on_abort = None
    conn.on_drain = None  # a last acknowledgement nobody waits for any more
    if complete:
        conn.end()
    else:
        conn.end_incomplete()


def _respond_and_close(conn, code, lines, body) -> None:
    if not conn.closed:
        conn.keep_alive = False
        conn.respond_later(code, lines, body)


def _start_file(response: ThreadResponse, code, lines, length, plan) -> None:
    conn = response.conn
    if conn.closed:
        response.close_result()
        return
    start_file(conn, code, lines, length, plan, response.file_cancelled, response.file_done)


# -- the two dispatch paths ----------------------------------------------------------------------

class InlineWsgi:
    """--dispatch inline: the Reactor thread calls the app (for apps that never block)."""

    def __init__(self, worker, app):
        self.app = app
        self.build = EnvironBuilder(worker.config, multithread=False).build

    def handle(self, conn, request, body) -> None:
        environ = self.build(conn, request, body)
        response = InlineResponse(conn, environ)
        try:
            result = self.app(environ, response.start_response)
            if type(result) is list and not response.head_sent and not _large(result, conn):
                # The fast path: the whole body is here, answer it with one respond().
                status = response.status
                if status is None:
                    raise ResponseError("the app returned without calling start_response()")
                body = result[0] if len(result) == 1 else _join_body(result)
                if body.__class__ is not bytes:
                    body = _join_body(result)
                code, lines, length, style = response_head(status, response.headers)
                if style is not None:
                    conn.head_style = style
                if length is not None and length == len(body) and code not in _NO_BODY:
                    conn.respond(code, lines, body)
                    return
                lines, body, close = whole_response(code, lines, length, body, conn.head_only, environ)
                if close:
                    conn.keep_alive = False
                conn.respond(code, lines, body)
                return
        except Exception as exc:
            response.fail(exc)
            return
        response.serve(result)


class ThreadedWsgi:
    """--dispatch threads: the app runs on the worker queues' handler threads."""

    def __init__(self, worker, app):
        self.app = app
        self.build = EnvironBuilder(worker.config, multithread=True).build
        self.queues = WorkerQueues(worker, worker.config.threads)

    def handle(self, conn, request, body) -> None:
        environ = self.build(conn, request, body)
        self.queues.submit(conn, self.run, conn, environ, request)

    def run(self, conn, environ, request):
        """On a handler thread: the app's whole response, as completions for the Reactor."""
        response = ThreadResponse(conn, self.queues, environ, request.method == b"HEAD")
        return response.run(self.app)


def request_handler(worker, app=None):
    """The worker's request handler: the WSGI app (given, or loaded from config.app) or the built-in site."""
    config = worker.config
    if app is None and config.app:
        from .loader import load_app

        app = load_app(config.app, config.chdir)
    if app is None:
        from .site import Site

        return Site(worker).handle
    if config.effective_dispatch == "inline":
        return InlineWsgi(worker, app).handle
    return ThreadedWsgi(worker, app).handle
