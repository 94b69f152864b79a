"""The rules of a WSGI response, shared by both dispatch paths: what the app gave
start_response() checked and serialized (no CR, LF or NUL, hop-by-hop headers dropped, a status
from 200 to 599), the framing of a body whose length is known or not, wsgi.file_wrapper sent
from its file, and the one decision of how a response ends (`ending`, `failure`, applied on
the Reactor by `apply_ending`).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from http import HTTPStatus

from prefork.http.abnf import TCHARS

from .environ import _CACHE_LIMIT, FileWrapper

log = logging.getLogger("prefork")

_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "trailers", "transfer-encoding", "upgrade"))
_TOKEN_CHARS = frozenset(TCHARS.decode())
NO_BODY = frozenset((204, 304))  # answered without a body, whatever the app sends (RFC 9112 6.3)


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
    its Server line, its Date line, whether the connection closes after the response) -- for an
    app's own reason phrase, Server or Date, or its Connection: close.
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
    own_server = own_date = close = False
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
            # The connection's framing is the server's: dropped, as gunicorn does (PEP 3333 lets a
            # server refuse them instead, but apps that ran on gunicorn send them); an app's
            # "Connection: close" is honoured, the connection closes after the response.
            if lower == "connection" and "close" in (token.strip() for token in value.lower().split(",")):
                close = True
            continue
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
    if custom or own_server or own_date or close:
        style = (reason.encode("latin-1", "replace") if custom else None, not own_server, not own_date, close)
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
    if code in NO_BODY:
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


def large(result: list, exchange) -> bool:
    """A list of several items larger than high_water together: sent as a stream of its items,
    with the stream's backpressure, instead of being joined into one more copy."""
    if len(result) < 2:
        return False
    try:
        return sum(map(len, result)) > exchange.high_water
    except TypeError:
        return False  # not bytes: the fast path says so


def join_body(result) -> bytes:
    try:
        return b"".join(result)
    except TypeError:
        kinds = sorted({type(part).__name__ for part in result if not isinstance(part, (bytes, bytearray))})
        raise ResponseError(f"the response body must be bytes, not {', '.join(kinds)}") from None


def check_chunk(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise ResponseError(f"the response body must be bytes, not {type(data).__name__}")


def close_iterable(result) -> None:
    """Call the iterable's close(), as PEP 3333 requires, whatever happened."""
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("error in the app's close()")


def log_failure(environ, exc: BaseException) -> None:
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


# -- start_response and write()------------------------------------------------------------------

class _Response:
    """One request's start_response() and write(), and the state of its response."""

    __slots__ = ("status", "headers", "head_sent", "remaining", "whole", "environ", "result", "exchange")

    def __init__(self, exchange, environ):
        self.exchange = exchange
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
            self.send(check_chunk(data))

    def close_result(self) -> None:
        """Call the iterable's close() -- once, whichever way the response ended."""
        result, self.result = self.result, None
        if result is not None:
            close_iterable(result)

    def head(self):
        if self.status is None:
            raise ResponseError("the app returned a body without calling start_response()")
        code, lines, length, style = response_head(self.status, self.headers)
        self.exchange.head_style = style
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
        if code in NO_BODY:
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
        if code in NO_BODY:
            return None
        plan = file_plan(wrapper, length)
        if plan is None:
            return None
        self.head_sent = True
        return code, lines, length, plan

    def file_done(self, complete: bool) -> None:
        """On the Reactor: the file went out (all of it, or as much as it had)."""
        exchange = self.exchange
        exchange.on_abort(None)
        self.close_result()
        exchange.end(complete)

    def log_short_body(self) -> None:
        environ = self.environ
        log.error("%s %s: the app's body ended %d bytes short of its Content-Length",
                  environ["REQUEST_METHOD"], environ["PATH_INFO"], self.remaining)

    def ending(self):
        """How the response ends once the app's body is over -- the one decision both dispatch
        paths apply (with apply_ending, on the Reactor): (WHOLE, (code, lines, body, close))
        for a response answered whole, (END, complete) for a stream. Raises ResponseError."""
        whole = self.whole
        if whole is not None or not self.head_sent:
            code, lines, length = self.head() if whole is None else whole[:3]
            lines, body, close = whole_response(code, lines, length, whole[3] if whole else b"",
                                                self.exchange.head_only, self.environ)
            return WHOLE, (code, lines, body, close)
        if self.remaining:
            self.log_short_body()
            return END, False
        return END, True

    def failure(self, exc: BaseException):
        """The app raised, or broke a rule: log it, release the body, and say how the response
        ends -- cut short if its head went out, else a 500."""
        log_failure(self.environ, exc)
        self.close_result()
        if self.head_sent and self.whole is None:
            return END, False
        return FAIL, None

    def send(self, data) -> None:  # pragma: no cover - each path has its own
        raise NotImplementedError


WHOLE, END, FAIL = "whole", "end", "fail"


def apply_ending(exchange, ending) -> None:
    """On the Reactor: end the response as ending() or failure() decided."""
    kind, value = ending
    if kind is WHOLE:
        exchange.respond(*value)
    elif kind is END:
        exchange.end(value)
    else:
        exchange.fail()


def start_file(exchange, code: int, lines: bytes, length, plan, on_abort, done) -> None:
    """On the Reactor: the head, then the file (os.sendfile, or read and written over TLS);
    done(complete) when sent."""
    fd, offset, count, complete = plan
    if length is None:
        length = count
        lines += b"Content-Length: %d\r\n" % count
    exchange.start(code, lines, length)
    if exchange.head_only or not count:
        done(complete)
        return
    exchange.on_abort(on_abort)
    exchange.send_file(fd, offset, count, lambda: done(complete))


