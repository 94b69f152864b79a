"""Files under /static/, served from `static_root` by the built-in site, the way nginx serves them.

GET and HEAD only (405 otherwise). The URL path is percent-decoded and its dot segments resolved
before the disk is touched; whatever would leave the root (`..`, an encoded `%2e%2e` or `%2f`,
NUL, a symlink pointing outside) is 404, and so is anything that is not a regular file --
directories have no listing and no index.html. The answer never tells whether something exists
outside the root. Conditional requests (If-None-Match, If-Modified-Since) get 304; one byte range
gets 206 (416 when it lies beyond the end); several ranges are ignored: the whole file, 200.

Each request opens its file (no cached descriptors); the body goes out with os.sendfile on the
Reactor thread through `HttpConnection.send_file`, which waits for EPOLLOUT instead of blocking.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import stat
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import unquote_to_bytes

log = logging.getLogger("prefork")

PREFIX = b"/static/"
_SEGMENT = b"static"  # the first path segment PREFIX stands for
_METHODS = (b"GET", b"HEAD")
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW  # a FIFO must not block us
_TEXT = b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
_NOT_FOUND = b"Not Found\n"
_UNSATISFIABLE = b"Range Not Satisfiable\n"
_TEXTUAL = (b"application/javascript", b"application/json", b"application/xml", b"image/svg+xml")
# A compressed file is served as what it is, never with a Content-Encoding the client would undo.
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
               "br": "application/x-brotli", "compress": "application/x-compress"}


class StaticFiles:
    """The /static/ route: `handle(conn, request, body)` answers for one file under `root`."""

    def __init__(self, root: str):
        real = os.path.realpath(root)
        self.root = os.fsencode(real)
        # Paths served must start with this: the root and a separator, so /srv/www2 is not inside /srv/www.
        self.inside = self.root if self.root.endswith(b"/") else self.root + b"/"
        self.types: dict[bytes, bytes] = {}  # file extension -> Content-Type value
        mimetypes.init()  # read the system's mime.types now, not during the first request
        if not os.path.isdir(real):
            log.error("static_root %r (%s) is not a directory: every /static/ request answers 404",
                      root, real)

    def handle(self, conn, request, body) -> None:
        if request.method not in _METHODS:
            conn.respond(405, b"Allow: GET, HEAD\r\n" + _TEXT % 19, b"Method Not Allowed\n")
            return
        found = self.resolve(request.target)
        if found is None:
            not_found(conn)
            return
        path, name = found
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                log.error("cannot open %r: %s", path, exc.strerror)
                conn.respond(503, _TEXT % 20, b"Service Unavailable\n")
            else:
                not_found(conn)  # missing, a directory component, a symlink swapped in, no permission
            return
        try:
            info = os.fstat(fd)
            answer = self.plan(request, info, name) if stat.S_ISREG(info.st_mode) else None
        except BaseException:
            os.close(fd)
            raise
        if answer is None:
            os.close(fd)
            not_found(conn)  # a directory, a device, a FIFO...
        elif len(answer) == 3:
            os.close(fd)
            conn.respond(*answer)
        else:
            send(conn, fd, *answer)

    def resolve(self, target: bytes) -> tuple[bytes, bytes] | None:
        """(real path, file name in the URL) of what target names under the root, or None (-> 404)."""
        raw = unquote_to_bytes(target.partition(b"?")[0])
        if b"\0" in raw:
            return None
        parts = raw.split(b"/")
        if parts[-1] in (b"", b".", b".."):
            return None  # names a directory
        segments = []
        for part in parts:
            if part == b"..":
                if not segments:
                    return None  # above the URL root
                segments.pop()
            elif part and part != b".":
                segments.append(part)
        if len(segments) < 2 or segments[0] != _SEGMENT:
            return None  # the normalised path left /static/ (e.g. /static/../x)
        real = os.path.realpath(os.path.join(self.root, *segments[1:]))
        if not real.startswith(self.inside):
            return None  # a symlink pointing outside the root
        return real, segments[-1]

    def plan(self, request, info, name: bytes):
        """(status, header lines, body) for a whole answer, or (status, header lines, offset, count)
        for one that sends part of the file."""
        size = info.st_size
        mtime = int(info.st_mtime)
        etag = b'"%x-%x"' % (mtime, size)
        last_modified = formatdate(mtime, usegmt=True).encode("ascii")
        validators = b"Last-Modified: " + last_modified + b"\r\nETag: " + etag + b"\r\n"
        if not_modified(request, etag, mtime):
            return 304, validators, b""
        lines = b"Content-Type: " + self.content_type(name) + b"\r\n" + validators + b"Accept-Ranges: bytes\r\n"
        wanted = request.header(b"range")
        if wanted is not None and request.method == b"GET" and if_range_holds(request, etag, last_modified):
            span = byte_range(wanted, size)
            if span is UNSATISFIABLE:
                return 416, b"Content-Range: bytes */%d\r\n" % size + _TEXT % len(_UNSATISFIABLE), _UNSATISFIABLE
            if span is not None:
                first, last = span
                lines += b"Content-Range: bytes %d-%d/%d\r\n" % (first, last, size)
                return 206, lines, first, last - first + 1
        return 200, lines, 0, size

    def content_type(self, name: bytes) -> bytes:
        """The Content-Type value for a file name, from its extension (as nginx: the URL's, not a
        symlink target's); text types say charset=utf-8."""
        extension = name.rpartition(b".")[2].lower() if b"." in name else b""
        value = self.types.get(extension)
        if value is None:
            guess, encoding = mimetypes.guess_type("x." + os.fsdecode(extension), strict=False)
            if encoding is not None:
                guess = _COMPRESSED.get(encoding)
            value = (guess or "application/octet-stream").encode("ascii")
            if value.startswith(b"text/") or value in _TEXTUAL:
                value += b"; charset=utf-8"
            self.types[extension] = value
        return value


def send(conn, fd: int, status: int, lines: bytes, offset: int, count: int) -> None:
    """The head, then count bytes of fd from offset with os.sendfile; fd is closed when done or aborted."""
    conn.start(status, lines + b"Content-Length: %d\r\n" % count, count)
    if conn.head_only or not count:
        os.close(fd)
        conn.end()
        return

    def sent() -> None:
        conn.on_abort = None
        os.close(fd)
        conn.end()

    conn.on_abort = lambda: os.close(fd)  # the connection closed before the file was sent
    conn.send_file(fd, offset, count, sent)


def not_found(conn) -> None:
    conn.respond(404, _TEXT % len(_NOT_FOUND), _NOT_FOUND)


def not_modified(request, etag: bytes, mtime: int) -> bool:
    """True if the client's copy is current: If-None-Match decides when present (RFC 9110 13.2.2)."""
    tags = request.header(b"if-none-match")
    if tags is not None:
        if tags.strip() == b"*":
            return True
        return any(tag.strip().removeprefix(b"W/") == etag for tag in tags.split(b","))
    since = request.header(b"if-modified-since")
    if since is None:
        return False
    when = http_time(since)
    return when is not None and mtime <= when


def if_range_holds(request, etag: bytes, last_modified: bytes) -> bool:
    """A Range applies unless If-Range names another version of the file."""
    condition = request.header(b"if-range")
    return condition is None or condition.strip() in (etag, last_modified)


def http_time(value: bytes) -> float | None:
    """An HTTP date as a Unix time, or None if it is not one."""
    try:
        when = parsedate_to_datetime(value.decode("latin-1"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # not a date, or one no clock can hold: ignored (RFC 9110 13.1.3)


UNSATISFIABLE = "unsatisfiable"


def byte_range(value: bytes, size: int):
    """(first, last) of one `bytes=` range within size, UNSATISFIABLE, or None to ignore the header.

    None for anything but a single well-formed byte range: the whole file is then sent (RFC 9110
    14.2 lets a server ignore Range).
    """
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    # The leading zeros go before int(), which refuses thousands of digits; a position beyond
    # 18 digits is beyond any file: the header is ignored (RFC 9110 14.2 lets us).
    first, last = first.lstrip(b"0") or first[:1], last.lstrip(b"0") or last[:1]
    if len(first) > 18 or len(last) > 18:
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if not suffix or not size:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        return UNSATISFIABLE
    return start, min(end, size - 1)
