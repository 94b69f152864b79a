"""Serializing responses: status lines, heads, chunks and the canned error answers.

Pure functions of their arguments; the caller passes the current `Date` value (the worker
formats it once a second), so this module has no clock.
"""

from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus

SERVER = b"prefork"

# "HTTP/1.1 200 OK\r\n" for every known status, built once.
STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("latin-1")) for s in HTTPStatus
}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The 500 answered when an app fails before its response started (no details: those are logged).
INTERNAL_ERROR_HEADERS = b"Content-Type: text/plain\r\nContent-Length: 22\r\n"
INTERNAL_ERROR_BODY = b"Internal Server Error\n"
LAST_CHUNK = b"0\r\n\r\n"


def status_line(status: int, reason: bytes | None = None) -> bytes:
    if reason is None:
        line = STATUS_LINES.get(status)
        if line is not None:
            return line
        reason = b"Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def http_date(epoch: float) -> bytes:
    """An IMF-fixdate for the `Date` header (RFC 9110 5.6.7)."""
    return formatdate(epoch, usegmt=True).encode("ascii")


def common_headers(date: bytes) -> bytes:
    """The `Server` and `Date` lines every response carries; rebuilt when the date changes."""
    return b"Server: " + SERVER + b"\r\nDate: " + date + b"\r\n"


def head(status: int, headers: list[tuple[bytes, bytes]], common: bytes, close: bool = False) -> bytes:
    """A response head: status line, `common_headers`, the given headers, and Connection: close if asked."""
    parts = [status_line(status), common]
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def simple(status: int, content_type: bytes, body: bytes, common: bytes, close: bool = False,
           include_body: bool = True) -> bytes:
    """A whole response framed by Content-Length; `include_body` is false for HEAD."""
    return head(status, [(b"Content-Type", content_type), (b"Content-Length", b"%d" % len(body))],
                common, close) + (body if include_body else b"")


def error(status: int, common: bytes, close: bool = True) -> bytes:
    """The plain-text answer to a rejected request; by default it closes the connection."""
    phrase = STATUS_LINES.get(status, b"HTTP/1.1 %d Error\r\n" % status)[9:-2]
    body = phrase + b"\n"
    return simple(status, b"text/plain; charset=utf-8", body, common, close)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
