"""Files under a URL prefix (/static/, or a [[static]] mount), served from a root directory the
way nginx serves them.

GET and HEAD only (405 otherwise). The URL path is percent-decoded and its dot segments resolved
before the disk is touched; whatever would leave the root (`..`, an encoded `%2e%2e` or `%2f`,
NUL, a symlink pointing outside) is 404, and so is anything that is not a regular file. A
directory URL ending in `/` serves the directory's index.html (404 without one: no listings); a
directory named without the slash gets a 301 to the slash form, query string kept, as nginx does.
The answer never tells whether something exists outside the root. Conditional requests
(If-None-Match, If-Modified-Since) get 304; one byte range gets 206 (416 when it lies beyond the
end); several ranges are ignored: the whole file, 200.

Speed: each URL path that named a file is remembered (`File`: its resolved path, its identity
and the response head, built once). A later request checks the identity with one stat or fstat
system call instead of resolving the path again; a file that changed in any way (inode, size,
mtime, ctime) is looked up afresh. Small files that have not changed for a second are kept in
memory too, checked with one stat per turn of the Reactor, and go out with their head in one
send; larger ones are opened and checked with fstat, and go with os.sendfile on the Reactor
thread through `HttpConnection.send_file` (the head with MSG_MORE, so that it leaves with the
first bytes of the file), which waits for EPOLLOUT instead of blocking.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import stat
import time
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import unquote_to_bytes

log = logging.getLogger("prefork")

PREFIX = b"/static/"  # where static_root is mounted
INDEX = b"index.html"
_METHODS = (b"GET", b"HEAD")
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW  # a FIFO must not block us
_TEXT = b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
_NOT_FOUND = b"Not Found\n"
_MOVED = b"Moved Permanently\n"
_UNSATISFIABLE = b"Range Not Satisfiable\n"
_TEXTUAL = (b"application/javascript", b"application/json", b"application/xml", b"image/svg+xml")
# A compressed file is served as what it is, never with a Content-Encoding the client would undo.
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
               "br": "application/x-brotli", "compress": "application/x-compress"}
# Request fields that make the answer depend on more than the file: such requests take the long way.
_CONDITIONAL = frozenset((b"if-none-match", b"if-modified-since", b"range", b"if-range"))

# Bounds of the per-worker cache: URL paths remembered, and the bytes of small files kept in memory.
CACHE_ENTRIES = 1024
SMALL_FILE = 64 * 1024
MEMORY_BUDGET = 8 * 1024 * 1024
# A file is kept in memory only once its last change is this many seconds old: file times are
# coarse (a clock tick), so a write right after our read could otherwise leave them unchanged.
SETTLED = 1.0


def identity(info: os.stat_result) -> tuple:
    """What must stay equal for a file to be the one we saw: any write or rename changes it."""
    return info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns


class File:
    """A URL path found to name a regular file: where it is, its identity, its 200 head."""

    __slots__ = ("path", "identity", "size", "mtime", "etag", "last_modified", "validators",
                 "head", "whole_head", "body", "checked")

    def __init__(self, path: bytes, info: os.stat_result, content_type: bytes):
        self.path = path  # the resolved path: no symlinks in it when it was checked
        self.identity = identity(info)
        self.size = size = info.st_size
        self.mtime = mtime = int(info.st_mtime)
        self.etag = b'"%x-%x"' % (mtime, size)
        self.last_modified = formatdate(mtime, usegmt=True).encode("ascii")
        self.validators = b"Last-Modified: " + self.last_modified + b"\r\nETag: " + self.etag + b"\r\n"
        self.head = (b"Content-Type: " + content_type + b"\r\n" + self.validators +
                     b"Accept-Ranges: bytes\r\n")
        self.whole_head = self.head + b"Content-Length: %d\r\n" % size  # of a 200
        self.body = None  # the content, for a small settled file
        self.checked = 0.0  # the Reactor's clock when the body was last found current


class StaticFiles:
    """One mount: `handle(exchange, request, body)` answers for the files under `root` at `prefix`."""

    def __init__(self, root: str, prefix: bytes = PREFIX, key: str = "static_root"):
        real = os.path.realpath(root)
        self.root = os.fsencode(real)
        self.prefix = prefix  # the URL path up to the files, ending in "/"
        self.key = key  # the setting that mounted it, for messages
        self.segments = [s for s in prefix.split(b"/") if s]  # what the normalised path must start with
        # Paths served must start with this: the root and a separator, so /srv/www2 is not inside /srv/www.
        self.inside = self.root if self.root.endswith(b"/") else self.root + b"/"
        self.types: dict[bytes, bytes] = {}  # file extension -> Content-Type value
        self.cache: dict[bytes, File] = {}  # URL path (as sent, before "?") -> the file it named
        self.memory = 0  # bytes of file content held by the cache
        mimetypes.init()  # read the system's mime.types now, not during the first request
        if not os.path.isdir(real):
            log.error("%s %r (%s) is not a directory: every request under %s answers 404",
                      key, root, real, prefix.decode("latin-1"))

    def handle(self, exchange, request, body) -> None:
        if request.method not in _METHODS:
            exchange.respond(405, b"Allow: GET, HEAD\r\n" + _TEXT % 19, b"Method Not Allowed\n")
            return
        path = request.target.partition(b"?")[0]
        known = self.cache.get(path)
        if known is not None:
            if known.body is not None:
                # One stat per turn of the event loop: the requests answered in one turn arrived
                # together, and all see the file as it was when the turn began.
                now = exchange.loop_time
                if known.checked == now or self.unchanged(known):
                    known.checked = now
                    self.answer(exchange, request, known, None)
                    return
            else:
                fd = self.reopen(known)
                if fd is not None:
                    self.answer(exchange, request, known, fd)
                    return
            self.forget(path)
        self.look_up(exchange, request, path)

    @staticmethod
    def unchanged(known: File) -> bool:
        try:
            return identity(os.stat(known.path)) == known.identity
        except OSError:
            return False

    def reopen(self, known: File) -> int | None:
        """A descriptor of the file `known` names if it is still that file, else None."""
        try:
            fd = os.open(known.path, _OPEN_FLAGS)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
        except OSError:
            info = None
        if info is None or identity(info) != known.identity:
            os.close(fd)
            return None
        self.keep_in_memory(known, fd, info)
        return fd

    def look_up(self, exchange, request, path: bytes) -> None:
        """The long way: resolve the path, open and check what it names, remember it if a file."""
        found = self.resolve(path)
        if found is None:
            not_found(exchange)
            return
        real, name, slash = found
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                log.error("cannot open %r: %s", real, exc.strerror)
                exchange.respond(503, _TEXT % 20, b"Service Unavailable\n")
            else:
                not_found(exchange)  # missing, a directory component, a symlink swapped in, no permission
            return
        try:
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if stat.S_ISDIR(info.st_mode) and not slash:
            os.close(fd)
            redirect_to_slash(exchange, request.target)
            return
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            not_found(exchange)  # a device, a FIFO, or a directory URL whose index is not a file
            return
        found = File(real, info, self.content_type(name))
        self.remember(path, found)
        self.keep_in_memory(found, fd, info)
        self.answer(exchange, request, found, fd)

    def answer(self, exchange, request, found: File, fd: int | None) -> None:
        """Send found: from memory when its body is kept (fd, if any, is closed at once), else
        from fd, which is closed once sent."""
        body = found.body
        if body is not None and fd is not None:
            os.close(fd)
        for key, _ in request.headers:
            if key in _CONDITIONAL:
                break
        else:  # the common case: the whole file
            if body is not None:
                exchange.respond(200, found.whole_head, body)
            else:
                send(exchange, fd, 200, found.head, 0, found.size)
            return
        answer = plan(request, found)
        if len(answer) == 3:
            if body is None:
                os.close(fd)
            exchange.respond(*answer)
        elif body is not None:
            status, lines, offset, count = answer
            exchange.respond(status, lines + b"Content-Length: %d\r\n" % count, body[offset:offset + count])
        else:
            send(exchange, fd, *answer)

    def remember(self, path: bytes, found: File) -> None:
        cache = self.cache
        if len(cache) >= CACHE_ENTRIES:
            self.forget(next(iter(cache)))  # the oldest entry
        cache[path] = found

    def forget(self, path: bytes) -> None:
        gone = self.cache.pop(path)
        if gone.body is not None:
            self.memory -= len(gone.body)

    def keep_in_memory(self, found: File, fd: int, info: os.stat_result) -> None:
        """Read a small file once it has settled, if the memory budget allows."""
        if (found.body is not None or found.size > SMALL_FILE or time.time() - info.st_ctime < SETTLED
                or self.memory + found.size > MEMORY_BUDGET):
            return
        try:
            content = os.pread(fd, found.size, 0)
        except OSError:
            return
        if len(content) == found.size:  # not truncated meanwhile
            found.body = content
            self.memory += len(content)

    def resolve(self, path: bytes) -> tuple[bytes, bytes, bool] | None:
        """(real path, file name for its type, whether the URL ended in a slash) of what path names
        under the root, or None (-> 404). A URL naming a directory with a slash names its index."""
        raw = unquote_to_bytes(path)
        if b"\0" in raw:
            return None
        parts = raw.split(b"/")
        slash = parts[-1] in (b"", b".", b"..")
        segments = []
        for part in parts:
            if part == b"..":
                if not segments:
                    return None  # above the URL root
                segments.pop()
            elif part and part != b".":
                segments.append(part)
        mount = self.segments
        if segments[:len(mount)] != mount:
            return None  # the normalised path left the prefix (e.g. /static/../x)
        inner = segments[len(mount):]
        if slash:
            inner.append(INDEX)
        elif not inner:
            return self.root, b"", False  # the prefix without its slash: the root, redirected
        real = os.path.realpath(os.path.join(self.root, *inner))
        if not real.startswith(self.inside):
            return None  # a symlink pointing outside the root
        return real, inner[-1], slash

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


def plan(request, found: File):
    """For a conditional or range request: (status, header lines, body) for a whole answer, or
    (status, header lines, offset, count) for one that sends part of the file."""
    size = found.size
    if not_modified(request, found.etag, found.mtime):
        return 304, found.validators, b""
    lines = found.head
    wanted = request.header(b"range")
    if wanted is not None and request.method == b"GET" and if_range_holds(request, found.etag, found.last_modified):
        span = byte_range(wanted, size)
        if span is UNSATISFIABLE:
            return 416, b"Content-Range: bytes */%d\r\n" % size + _TEXT % len(_UNSATISFIABLE), _UNSATISFIABLE
        if span is not None:
            first, last = span
            lines += b"Content-Range: bytes %d-%d/%d\r\n" % (first, last, size)
            return 206, lines, first, last - first + 1
    return 200, lines, 0, size


def send(exchange, fd: int, status: int, lines: bytes, offset: int, count: int) -> None:
    """The head, then count bytes of fd from offset with os.sendfile; fd is closed when done or aborted."""
    exchange.start(status, lines + b"Content-Length: %d\r\n" % count, count)
    if exchange.head_only or not count:
        os.close(fd)
        exchange.end()
        return

    def sent() -> None:
        exchange.on_abort(None)
        os.close(fd)
        exchange.end()

    exchange.on_abort(lambda: os.close(fd))  # the connection closed before the file was sent
    exchange.send_file(fd, offset, count, sent)


def redirect_to_slash(exchange, target: bytes) -> None:
    """301 to the directory's URL with its slash, as the client spelt it, query string kept."""
    path, question, query = target.partition(b"?")
    location = path + b"/" + question + query
    exchange.respond(301, b"Location: " + location + b"\r\n" + _TEXT % len(_MOVED), _MOVED)


def not_found(exchange) -> None:
    exchange.respond(404, _TEXT % len(_NOT_FOUND), _NOT_FOUND)


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
