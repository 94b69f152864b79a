"""A sans-IO HTTP/1.1 request parser (RFC 9112): bytes in, events out; no sockets, no clock.

    parser = RequestParser(limits)
    parser.feed(data)
    event = parser.next_event()   # Request, Data, EndOfMessage, NEED_DATA or CLOSED

A Request whose `has_body` is false is the whole message: no Data or EndOfMessage follows it
(the common GET costs one call). Otherwise Data events carry the body and EndOfMessage ends
it. Anything that breaks the grammar or a limit raises ProtocolError carrying the status to
answer; the connection must then be closed. After a message whose request asked to close the
connection, the parser returns CLOSED and ignores further bytes.

Requests are read-only: a head that repeats the connection's last bodiless keep-alive head gives
the very same Request again, and one that repeats only its field lines shares their list.

The work is linear in the bytes received, however they are split across reads: a head still
arriving is searched from where the last search stopped, bytes are appended to one bytearray
rather than copied on every feed, empty lines before a request are skipped in one step, and the
chunks of a chunked body that one read holds become one Data event.

Requests reach the application in origin form: an absolute-form target (RFC 9112 3.2.2, "GET
http://example.com/x HTTP/1.1") becomes its path and query ("/x"), and its authority replaces the
Host field's value in `headers`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from . import abnf
from .errors import ProtocolError


@dataclass(frozen=True)
class Limits:
    request_line: int = 8190
    fields: int = 100
    field_size: int = 8190
    head: int = 65536
    body: int = 100 * 1024 * 1024
    chunk_line: int = 4096  # a chunk-size line with its extensions
    # Bytes of chunk framing in one chunked body: the chunk-size lines (extensions and CRLF
    # included, the last chunk's too) and the CRLF after each chunk's data. The body limit counts
    # data only; this one keeps a body of tiny chunks from carrying hundreds of MB of framing
    # (1 MiB of data in 1-byte chunks is 5 MiB of it), each chunk costing Python time. 1 MiB is
    # about 150,000 chunks: a 100 MiB body in chunks of 1 KiB needs 0.7 MiB. Over it: 413.
    chunk_framing: int = 1024 * 1024


class Request:
    """A request head. `headers` is a list of (lower-case name, value) pairs, both bytes; for an
    absolute-form target, the host pair carries the target's authority (RFC 9112 3.2.2).

    A parser that has checked the field lines in C may hand them over as they are (`field_lines`,
    each after a CRLF) instead of the pairs: they are split when `headers` is first read, so a
    handler that reads no header (most of the built-in site) costs no Python loop over them."""

    __slots__ = ("method", "target", "version", "_headers", "field_lines", "keep_alive", "expect_continue",
                 "content_length", "chunked", "has_body")

    def __init__(self, method, target, version, headers, keep_alive, expect_continue, content_length, chunked,
                 field_lines=None):
        self.method = method  # bytes, e.g. b"GET"
        self.target = target  # bytes: origin form ("/path?query"), or "*", or a CONNECT's authority
        self.version = version  # b"1.1" or b"1.0"
        self._headers = headers  # None until split from field_lines
        self.field_lines = field_lines
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length  # int, or None when chunked or absent
        self.chunked = chunked
        self.has_body = chunked or bool(content_length)

    @property
    def headers(self) -> list:
        headers = self._headers
        if headers is None:
            headers = self._headers = split_field_lines(self.field_lines)
        return headers

    def header(self, name: bytes, default=None):
        """The value of the first header called `name` (lower-case bytes)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def __repr__(self):
        return f"Request({self.method!r}, {self.target!r}, HTTP/{self.version.decode()}, {self.headers!r})"


def split_field_lines(field_lines: bytes) -> list:
    """The (lower-case name, value) pairs of field lines already checked, each after a CRLF:
    field-line = field-name ":" OWS field-value OWS (RFC 9112 5)."""
    headers = []
    append = headers.append
    for line in field_lines.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        append((name.lower(), value.strip(b" \t")))
    return headers


class Data:
    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self):
        return f"Data({self.data!r})"


class EndOfMessage:
    __slots__ = ("trailers",)

    def __init__(self, trailers=()):
        self.trailers = trailers  # list of (lower-case name, value) from a chunked body

    def __repr__(self):
        return f"EndOfMessage({self.trailers!r})"


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")
CLOSED = _Sentinel("CLOSED")

# Parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _CLOSED = range(7)

_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _HOST, _EXPECT = (
    b"content-length", b"transfer-encoding", b"connection", b"host", b"expect")
_FRAMING = frozenset((_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _HOST, _EXPECT))
_VERSIONS = {b"1.1": True, b"1.0": False}  # version -> keep-alive by default
_FULL_VERSIONS = {b"HTTP/1.1": True, b"HTTP/1.0": False}
# Methods seen every day skip the token pattern; any other token is still accepted.
_METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE"))
# A translate() table that keeps the bytes of a token (RFC 9110 5.6.2) and changes every other.
_TCHARS = frozenset(abnf.TCHARS)
_MOVE_NON_TOKEN = bytes(b if b in _TCHARS else (b + 1) % 256 for b in range(256))
# A translate() table that keeps HTAB, SP, VCHAR and obs-text and changes every other byte.
_MOVE_CONTROLS = bytes(b if b == 0x09 or 0x20 <= b != 0x7f else b ^ 0x80 for b in range(256))
_field_lines_ok = abnf.FIELD_LINES.fullmatch
_field_lines = abnf.FIELD_LINE_AT_LINE_START.findall
_request_line = abnf.REQUEST_LINE.fullmatch
_token = abnf.TOKEN_RE.fullmatch


_empty_lines = abnf.EMPTY_LINES.match
_tchars_run = abnf.TCHARS_RUN.match
_chunk_line = abnf.CHUNK_LINE.match
_valid_host = abnf.HOST.fullmatch
_absolute_form = abnf.ABSOLUTE_FORM.fullmatch
_SCHEMES = frozenset((b"http", b"https"))
_SP = 0x20

# The request-line of a head still arriving: the method is arriving, or the rest of the line, or
# the line is whole and was checked.
_METHOD, _LINE, _LINE_CHECKED = range(3)


def _bytes(data) -> bytes:
    """data (a slice of the buffer, bytes or bytearray) as bytes; events and requests carry bytes."""
    return data if type(data) is bytes else bytes(data)


def _origin_form(target: bytes) -> tuple[bytes, bytes]:
    """An absolute-form target (RFC 9112 3.2.2) as (origin-form target, authority)."""
    match = _absolute_form(target)
    if match is None:
        raise ProtocolError(400, "malformed request target")
    scheme, authority, rest = match.groups()
    if scheme.lower() not in _SCHEMES:
        raise ProtocolError(400, f"unsupported URI scheme {scheme.decode('ascii', 'replace')!r} in the request target")
    # RFC 9110 4.2.1: an http(s) URI with an empty host is invalid; 4.2.4: userinfo is an error
    # (the '@' fails the host grammar).
    if _valid_host(authority) is None or authority.startswith(b":"):
        raise ProtocolError(400, f"invalid authority {authority.decode('latin-1')!r} in the request target")
    return (rest if rest.startswith(b"/") else b"/" + rest), authority


# Runs of identical small chunks ("1\r\nx\r\n1\r\ny\r\n..."): the pattern of each size line seen, so
# that a body of tiny chunks costs C time per chunk, not Python time. Sizes up to _RUN_SIZE.
_RUN_SIZE = 64
_HEX_DIGITS = {digit: int(chr(digit), 16) for digit in b"0123456789abcdefABCDEF"}  # a 1-digit size line
_RUNS: dict = {}


def _chunk_run(size_line: bytes, size: int):
    """The pattern of a run of chunks that each have this size line (CRLF included) and size."""
    pattern = _RUNS.get(size_line)
    if pattern is None:  # at most 2 spellings (a-f, A-F) of each size up to _RUN_SIZE
        pattern = _RUNS[size_line] = re.compile(
            b"(?:" + re.escape(size_line) + b".{%d}\r\n)*" % size, re.DOTALL)
    return pattern


# Runs of tiny chunks of any sizes from 1 to 15 in turn (a one-digit size line, no extension):
# one pattern matches the run, another gives each chunk's data as one of 15 groups.
_TINY_SIZE = 15
_TINY_SPELLINGS = [b"[%s%s]" % (b"%x" % size, b"%X" % size) for size in range(1, _TINY_SIZE + 1)]
_tiny_run = re.compile(b"(?:" + b"|".join(b"%s\r\n.{%d}\r\n" % (spelling, size) for size, spelling in
                                          enumerate(_TINY_SPELLINGS, 1)) + b")*", re.DOTALL).match
_tiny_chunks = re.compile(b"|".join(b"%s\r\n(.{%d})\r\n" % (spelling, size) for size, spelling in
                                    enumerate(_TINY_SPELLINGS, 1)), re.DOTALL).findall
_chain = itertools.chain.from_iterable


def _strided(buf, start: int, size: int, stride: int, count: int):
    """The data of `count` chunks of `size` bytes, the first at start, one every `stride` bytes."""
    end = start + count * stride
    if size == 1:
        return buf[start:end:stride]
    data = bytearray(count * size)
    for offset in range(size):
        data[offset::size] = buf[start + offset:end:stride]
    return data


# Host values found valid: a server sees the same few again and again, and the pattern costs
# about a microsecond. Cleared when full, so that it stays small whatever clients send.
_KNOWN_HOSTS: set = set()


def _check_host(host: bytes) -> None:
    """RFC 9112 3.2: Host = uri-host [ ":" port ]; an empty one is allowed (and not checked)."""
    if _valid_host(host) is None:
        raise ProtocolError(400, f"invalid Host header {host.decode('latin-1')!r}")
    if len(_KNOWN_HOSTS) >= 1024:
        _KNOWN_HOSTS.clear()
    _KNOWN_HOSTS.add(host)


class RequestParser:
    """Turns the bytes of one connection into request events."""

    __slots__ = ("limits", "buf", "pos", "state", "remaining", "body_seen", "framing", "closing", "next_event",
                 "last_head", "last_request", "last_fields", "scanned", "blank", "line")

    def __init__(self, limits: Limits = Limits()):
        self.limits = limits
        self.buf = b""  # bytes as received, or a bytearray once bytes are left over between reads
        self.pos = 0  # bytes of buf already consumed
        self.state = _HEAD
        self.remaining = 0  # body bytes left in the current Content-Length body or chunk
        self.body_seen = 0  # body bytes of the current message, for the size limit
        self.framing = 0  # chunk framing bytes of the current message, for its limit
        self.closing = False  # the current request asked to close the connection
        # next_event() is the current state's method itself, so a call costs one Python call.
        self.next_event = self._head
        # The last bodiless keep-alive head and its Request: a client on a persistent connection
        # very often sends the same head again (polling, health checks, API calls, load tests),
        # and parsing is a pure function of the bytes, so the same bytes give the same Request.
        self.last_head = None
        self.last_request = None
        self.last_fields = None  # its field lines, from the CRLF ending its request-line
        # What is known of a head, trailer section or chunk-size line still arriving, so that the
        # next read is searched from where this one stopped (all 0 when nothing is arriving; the
        # bytes stay buffered meanwhile, so pos does not move):
        self.scanned = 0  # bytes after pos searched already
        self.blank = 0  # bytes of empty lines before the request-line
        self.line = _METHOD  # how far the request-line got

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if self.state == _CLOSED:
            return
        buf = self.buf
        pos = self.pos
        if pos == len(buf):
            # Nothing left over (the common case): take the bytes as they are. A caller may also
            # set buf and pos so itself, as the connection does.
            self.buf = data if type(data) is bytes else bytes(data)
            self.pos = 0
        elif type(buf) is bytearray:
            if pos:
                del buf[:pos]  # O(1): a bytearray drops a prefix by moving its start
                self.pos = 0
            buf += data
        else:
            # Bytes left over from a read: copy them once into a bytearray that later reads extend.
            self.buf = buf = bytearray(memoryview(buf)[pos:])
            buf += data
            self.pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self.buf) - self.pos

    def _enter(self, state: int) -> None:
        self.state = state
        if state == _HEAD:
            self.next_event = self._head
        elif state == _LENGTH:
            self.next_event = self._length_body
        elif state == _CLOSED:
            self.next_event = self._closed
        else:
            self.next_event = self._chunked_body

    @staticmethod
    def _closed():
        return CLOSED

    # -- the head -----------------------------------------------------------------------------

    def _head(self):
        buf = self.buf
        pos = self.pos
        if pos == len(buf):
            return NEED_DATA
        last_head = self.last_head
        if last_head is not None and buf.startswith(last_head, pos):
            # The very head parsed last time (it ends at its only CRLFCRLF): the same Request.
            self.pos = pos + len(last_head)
            if self.scanned:  # it arrived in pieces: forget what was known of it
                self.scanned = self.blank = self.line = 0
            return self.last_request
        start = pos  # where the request-line begins
        if buf[pos] == 13:
            # RFC 9112 2.2: ignore empty lines received before the request-line; all at once, and
            # from where an earlier read's search stopped.
            start = _empty_lines(buf, pos + self.blank).end()
        scanned = self.scanned
        if scanned:  # the head began in an earlier read: search on from where that search stopped
            search = pos + scanned - 3  # (a CRLFCRLF may straddle the bytes searched before)
            end = buf.find(b"\r\n\r\n", start if search < start else search)
        else:
            end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return self._arriving_head(buf, pos, start)
        if scanned:
            self.scanned = self.blank = self.line = 0
        if type(buf) is not bytes:
            # A bytearray (bytes were left over from a read): bytes from here on, so that the
            # slices below are bytes; at most once per read.
            self.buf = buf = bytes(buf)
        limits = self.limits
        if start != pos and start - pos > limits.head:
            raise ProtocolError(431, "too many empty lines before the request-line")
        fields_at = buf.find(b"\r\n", start)  # the CRLF that ends the request-line
        line_end = fields_at - start
        if line_end > limits.request_line:
            raise ProtocolError(414, "request line too long")
        if end + 4 - start > limits.head:
            raise ProtocolError(431, "request head too large")
        return self._parse_head(buf, start, end, fields_at, line_end)

    def _parse_head(self, buf: bytes, start: int, end: int, fields_at: int, line_end: int):
        """The Request for the whole head buf[start:end + 4] (its request-line ends at fields_at,
        line_end bytes after start), whose size limits are checked; pos moves past it."""
        limits = self.limits
        last_fields = self.last_fields
        if (last_fields is not None and end + 4 - fields_at == len(last_fields)
                and buf.startswith(last_fields, fields_at)):
            # The field lines of the last head again, after a new request-line: a client on a
            # keep-alive connection sends the same headers and varies only the target. The
            # fields were checked last time; check and parse the request-line alone.
            request = self._same_fields(buf, start, fields_at, end + 4)
            if request is not None:
                return request
            # Anything wrong with the request-line: the full checks below say what.
        head = buf[start:end + 2]  # the request-line and field lines, each ending in CRLF
        # The whole head at once, in C (RFC 9112 2.2: CR and LF only as CRLF; RFC 9110 5.5: no
        # control but HTAB). Without its CRLFs, the head must be left unchanged by a table that
        # moves every other control byte: translate() then returns the very same object.
        flat = head.replace(b"\r\n", b"")
        if flat.translate(_MOVE_CONTROLS) is not flat:
            return self._bad_head(head, line_end)
        lines = (len(head) - len(flat)) >> 1
        # request-line = method SP request-target SP HTTP-version (RFC 9112 3)
        try:
            method, target, version = head[:line_end].split(b" ")
            keep_alive = _FULL_VERSIONS[version]
        except (ValueError, KeyError):
            return self._bad_head(head, line_end)
        if (method not in _METHODS and _token(method) is None) or not target or b"\t" in target \
                or not target.isascii():
            return self._bad_head(head, line_end)
        self.pos = end + 4
        if lines == 1:
            headers = []
        else:
            # field-line = field-name ":" OWS field-value OWS (RFC 9112 5). The bytes are checked
            # already (no controls but HTAB), so a line is valid when the part before its first
            # colon is a token: no whitespace before the colon, no obs-fold, no empty name.
            field_lines = head[line_end + 2:-2].split(b"\r\n")
            if len(field_lines) > limits.fields:
                raise ProtocolError(431, "too many header fields")
            headers = []
            append = headers.append
            for line in field_lines:
                name, colon, value = line.partition(b":")
                if not colon or not name or name.translate(_MOVE_NON_TOKEN) is not name:
                    raise ProtocolError(400, "malformed header field")
                append((name.lower(), value.strip(b" \t")))
            if len(head) > limits.field_size and max(map(len, field_lines)) > limits.field_size:
                raise ProtocolError(431, "header field too large")
        request = self._request(method, target, version[5:], headers, keep_alive)
        if self.state == _HEAD and not request.has_body and request.target is target:
            # Remember it only when nothing follows the head (no body, and the connection stays)
            # and the target was not rewritten: a new request-line over these fields may not be
            # absolute-form, whose authority would replace the Host they share.
            self.last_head = buf[start:end + 4]
            self.last_request = request
            self.last_fields = buf[fields_at:end + 4]
        return request

    def _same_fields(self, buf: bytes, start: int, fields_at: int, head_end: int):
        """The Request for the head buf[start:head_end], a new request-line over the last head's
        field lines (which begin at fields_at), or None when the line is not a plain valid one of
        the same HTTP version with an origin-form target. pos moves past the head."""
        line = buf[start:fields_at]
        if line.translate(_MOVE_CONTROLS) is not line:
            return None
        parts = line.split(b" ")
        if len(parts) != 3:
            return None
        method, target, version = parts
        last = self.last_request
        if (version[5:] != last.version or _FULL_VERSIONS.get(version) is None
                or (method not in _METHODS and _token(method) is None)
                or not target or target[0] != 47 or b"\t" in target or not target.isascii()):
            return None
        request = Request(method, target, last.version, last._headers, last.keep_alive, last.expect_continue,
                          None, False, last.field_lines)
        self.pos = head_end
        self.last_head = buf[start:head_end]
        self.last_request = request
        return request

    def _bad_head(self, head: bytes, line_end: int):
        """The fast checks failed: find which rule the head breaks, with the old precise patterns."""
        line = head[:line_end]
        match = _request_line(line)
        if match is None:
            self._bad_request_line(line)
        if match.group(3) + b"." + match.group(4) not in _VERSIONS:
            raise ProtocolError(505, "HTTP version not supported")
        raise ProtocolError(400, "malformed header field")

    def _arriving_head(self, buf, pos: int, start: int):
        """The head has not ended yet (its request-line begins at start, after empty lines). Wait
        for more bytes, unless those already here can never begin a valid head: then reject now
        rather than hold the connection until a timeout. Only the bytes that arrived since the
        last call are searched; a head that arrives whole never comes here."""
        n = len(buf)
        limits = self.limits
        resume = pos + self.scanned  # bytes before it were searched by an earlier call
        if self.line == _LINE_CHECKED:
            # The common case of a head arriving in pieces: among the field lines, where only
            # a bare CR or LF, obs-fold or the size can be wrong. A match may begin up to two
            # bytes before the new ones.
            if abnf.HEAD_LINE_ERROR.search(buf, resume - 2) is not None:
                raise ProtocolError(400, "bare CR or LF, or a line starting with whitespace")
            if n - start >= limits.head:
                raise ProtocolError(431, "request head too large")
            self.scanned = n - pos
            return NEED_DATA
        if start - pos > limits.head:
            raise ProtocolError(431, "too many empty lines before the request-line")
        # The empty lines stay buffered (self.pos does not move): they begin a head, so its
        # header_timeout runs. Consumed, they would leave the connection looking idle, and CRLFs
        # trickled forever would keep it open.
        self.blank = start - pos
        if start == n or (start == n - 1 and buf[start] == 13):  # only empty lines so far
            self.scanned = n - pos
            return NEED_DATA
        first = buf[start]
        if first not in _TCHARS:
            # A request-line begins with a method, a token: a TLS ClientHello (0x16), a control
            # byte or anything else is refused at its first byte.
            if first == 13 or first == 10:
                raise ProtocolError(400, "bare CR or LF before the request-line")
            raise ProtocolError(400, f"a request cannot begin with byte 0x{first:02x}")
        if resume < start:
            resume = start
        # RFC 9112 2.2: CR and LF appear in a head only as CRLF; RFC 9112 5.2: a line that starts
        # with whitespace is obs-fold (or whitespace after the request-line). A match may begin
        # up to two bytes before the new ones.
        if abnf.HEAD_LINE_ERROR.search(buf, max(start, resume - 2)) is not None:
            raise ProtocolError(400, "bare CR or LF, or a line starting with whitespace")
        line = self.line
        if line == _METHOD:
            method_end = _tchars_run(buf, resume).end()  # the bytes before resume are tchars
            if method_end < n:
                if buf[method_end] != _SP:
                    raise ProtocolError(400, "malformed request line")
                line = _LINE
        if line != _LINE_CHECKED:
            line_end = buf.find(b"\r\n", max(start, resume - 1))
            if line_end < 0:
                # The request-line is still arriving: a CR at the end may be the start of its CRLF.
                if n - start - buf.endswith(b"\r") > limits.request_line:
                    raise ProtocolError(414, "request line too long")
            else:
                if line_end - start > limits.request_line:
                    raise ProtocolError(414, "request line too long")
                match = _request_line(buf, start, line_end)
                if match is None:
                    self._bad_request_line(_bytes(buf[start:line_end]))
                if match.group(3) + b"." + match.group(4) not in _VERSIONS:
                    raise ProtocolError(505, "HTTP version not supported")
                line = _LINE_CHECKED
        if n - start >= limits.head:
            raise ProtocolError(431, "request head too large")
        self.line = line
        self.scanned = n - pos
        return NEED_DATA

    @staticmethod
    def _bad_request_line(line: bytes):
        parts = line.split(b" ")
        if len(parts) == 3 and parts[2].startswith(b"HTTP/") and abnf.REQUEST_LINE.fullmatch(
                parts[0] + b" / HTTP/1.1") and len(parts[2]) == 8 and parts[2][5:6].isdigit() and parts[2][7:8].isdigit():
            raise ProtocolError(400, "malformed request target")
        raise ProtocolError(400, "malformed request line")

    def _request(self, method, target, version, headers, keep_alive, field_lines=None):
        """The Request for a checked head; headers are (lower-case name, value) pairs. Or, with
        field_lines (the head's checked field lines, each after a CRLF), headers are only the
        fields among them that frame the request (Content-Length, Transfer-Encoding, Host,
        Connection, Expect; values lower-cased), and the Request splits the lines when read."""
        authority = None
        if target[0] != 47 and method != b"CONNECT" and target != b"*":
            # Not origin-form ("/..."), authority-form (CONNECT) or asterisk-form: absolute-form.
            target, authority = _origin_form(target)
        content_length = None
        transfer_encoding = None
        hosts = 0
        host = b""
        expect_continue = False
        close = persist = False
        for name, value in headers:
            if name not in _FRAMING:
                continue
            if name == _CONTENT_LENGTH:
                if content_length is not None:
                    raise ProtocolError(400, "repeated Content-Length")
                if abnf.CONTENT_LENGTH.fullmatch(value) is None:
                    raise ProtocolError(400, "invalid Content-Length")
                # The pattern bounds the significant digits; int() also refuses more than 4,300
                # digits in all, so the leading zeros go first (RFC 9110 8.6: no overflow).
                content_length = int(value.lstrip(b"0") or b"0")
            elif name == _TRANSFER_ENCODING:
                if transfer_encoding is not None:
                    raise ProtocolError(400, "repeated Transfer-Encoding")
                transfer_encoding = value
            elif name == _HOST:
                hosts += 1
                host = value
            elif name == _CONNECTION:
                value = value.lower()
                if value == b"keep-alive":  # what most clients send: no list to split
                    persist = True
                elif value == b"close":
                    close = True
                else:
                    for option in abnf.LIST_SEPARATOR.split(value):
                        if option == b"close":
                            close = True
                        elif option == b"keep-alive":
                            persist = True
            else:  # Expect
                if value.lower() == b"100-continue":
                    expect_continue = version == b"1.1"
                else:
                    raise ProtocolError(417, "unsupported expectation")
        # RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, and for any request with several.
        if hosts != 1 and (hosts or version == b"1.1"):
            raise ProtocolError(400, "missing Host header" if hosts == 0 else "repeated Host header")
        if authority is not None:
            # RFC 9112 3.2.2: the target's authority is the host; the Host field is ignored.
            if field_lines is not None:
                headers, field_lines = split_field_lines(field_lines), None
            headers = [(name, authority if name == _HOST else value) for name, value in headers]
            if not hosts:
                headers.append((_HOST, authority))
        elif host and host not in _KNOWN_HOSTS:
            _check_host(host)
        # RFC 9112 9.3: "close" wins, whatever the version and wherever it appears; otherwise an
        # HTTP/1.1 connection persists, and an HTTP/1.0 one only with "keep-alive".
        if close:
            keep_alive = False
        elif persist:
            keep_alive = True
        chunked = False
        if transfer_encoding is not None:
            if content_length is not None:
                raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
            if version == b"1.0":
                raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
            codings = abnf.LIST_SEPARATOR.split(transfer_encoding.lower())
            if codings[-1] != b"chunked":
                raise ProtocolError(501, "final transfer coding is not chunked")
            if len(codings) > 1:
                if b"chunked" in codings[:-1]:
                    raise ProtocolError(400, "chunked applied more than once")
                raise ProtocolError(501, "unsupported transfer coding")
            chunked = True
        elif content_length is not None and content_length > self.limits.body:
            raise ProtocolError(413, "request body too large")
        if field_lines is not None:
            headers = None  # split from field_lines when read
        request = Request(method, target, version, headers, keep_alive, expect_continue, content_length, chunked,
                          field_lines)
        self.body_seen = 0
        if chunked:
            self.framing = 0
            self._enter(_CHUNK_SIZE)
        elif content_length:
            self._enter(_LENGTH)
            self.remaining = content_length
        elif not keep_alive:
            self._enter(_CLOSED)
        self.closing = not keep_alive
        return request

    # -- bodies -------------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        pos = self.pos
        data = _bytes(self.buf[pos:pos + n])
        self.pos = pos + len(data)
        return data

    def _end_of_message(self, trailers=()):
        self.scanned = 0
        self._enter(_CLOSED if self.closing else _HEAD)
        return EndOfMessage(trailers)

    def _length_body(self):
        if self.remaining == 0:
            return self._end_of_message()
        if self.pos == len(self.buf):
            return NEED_DATA
        data = self._take(self.remaining)
        self.remaining -= len(data)
        return Data(data)

    def _chunked_body(self):
        if not self.scanned:  # (no chunk-size line or trailer section half-read)
            data = self._whole_chunks()
            if data is not None:
                return data
        return self._chunk_step()

    def _whole_chunks(self):
        """The data of the chunks already buffered, as one Data event (None if there is none).
        It stops before anything _chunk_step must decide: a chunk-size line not yet whole or
        not valid, one that a limit refuses, the last chunk. So the events and the verdict are
        those of _chunk_step alone, only coalesced: they do not depend on how reads split."""
        buf = self.buf
        pos = self.pos
        n = len(buf)
        state = self.state
        remaining = self.remaining
        limits = self.limits
        body_left = limits.body - self.body_seen  # data bytes a chunk may still declare
        framing_left = limits.chunk_framing - self.framing
        chunk_line = limits.chunk_line + 2
        pieces = []
        while True:
            if state == _CHUNK_DATA:
                end = pos + remaining
                if end > n:  # the chunk goes on in a later read
                    if pos < n:
                        pieces.append(buf[pos:n])
                        remaining = end - n
                        pos = n
                    break
                if remaining:
                    pieces.append(buf[pos:end])
                    pos = end
                    remaining = 0
                state = _CHUNK_CRLF
            if state == _CHUNK_CRLF:
                if not buf.startswith(b"\r\n", pos) or framing_left < 2:
                    break
                pos += 2
                framing_left -= 2
                state = _CHUNK_SIZE
            match = _chunk_line(buf, pos)
            if match is None:
                break
            line = match.end() - pos
            # (base 16 has no digit limit, unlike base 10)
            size = _HEX_DIGITS[buf[pos]] if line == 3 else int(match.group(1), 16)
            if size == 0 or size > body_left or line > chunk_line or line > framing_left:
                break
            stride = line + size + 2
            if (size <= _RUN_SIZE and buf[pos] != 48 and pos + stride < n and buf[pos + stride] == buf[pos]
                    and line == match.end(1) + 2 - pos and buf.startswith(match.group(0), pos + stride)):
                # A small chunk without extensions or leading zeros (so that there are few such
                # size lines, and few patterns), and the next has the same size line: they and
                # the chunks like them that follow are one match of a pattern, their data a
                # strided slice, all in C.
                count = min(body_left // size, framing_left // (line + 2))
                end = _chunk_run(_bytes(match.group(0)), size).match(buf, pos, min(n, pos + count * stride)).end()
                count = (end - pos) // stride
                if count > 1:
                    pieces.append(_strided(buf, pos + line, size, stride, count))
                    body_left -= count * size
                    framing_left -= count * (line + 2)
                    pos = end
                    continue
            elif line == 3 and size <= _TINY_SIZE:
                # A tiny chunk: it and the tiny chunks of other sizes that follow are one match,
                # their data one findall. The run stops short of any limit: L bytes of chunks
                # hold at most L bytes of data and of framing.
                end = _tiny_run(buf, pos, min(n, pos + body_left, pos + framing_left)).end()
                if end - pos > stride:
                    chunks = _tiny_chunks(buf, pos, end)
                    data = b"".join(filter(None, _chain(chunks)))  # (the 14 empty groups of each)
                    pieces.append(data)
                    body_left -= len(data)
                    framing_left -= 5 * len(chunks)
                    pos = end
                    continue
            body_left -= size
            data_end = pos + line + size
            if buf.startswith(b"\r\n", data_end) and framing_left >= line + 2:
                # The whole chunk and the CRLF after it (the common case): no state to pass through.
                pieces.append(buf[pos + line:data_end])
                framing_left -= line + 2
                pos = data_end + 2
                continue
            framing_left -= line
            pos += line
            remaining = size
            state = _CHUNK_DATA
        if not pieces:
            return None
        self.pos = pos
        self.remaining = remaining
        self.body_seen = limits.body - body_left
        self.framing = limits.chunk_framing - framing_left
        if state != self.state:
            self._enter(state)
        return Data(b"".join(pieces))

    def _chunk_step(self):
        """One step of a chunked body, with every check and its error."""
        state = self.state
        buf = self.buf
        if state == _CHUNK_DATA:
            if self.remaining == 0:
                self._enter(_CHUNK_CRLF)
                return self._chunked_body()
            if self.pos == len(buf):
                return NEED_DATA
            data = self._take(self.remaining)
            self.remaining -= len(data)
            return Data(data)
        if state == _CHUNK_CRLF:
            if len(buf) - self.pos < 2:
                return NEED_DATA
            if not buf.startswith(b"\r\n", self.pos):
                raise ProtocolError(400, "chunk data not followed by CRLF")
            self._count_framing(2)
            self.pos += 2
            self._enter(_CHUNK_SIZE)
            state = _CHUNK_SIZE
        if state == _CHUNK_SIZE:
            pos = self.pos
            scanned = self.scanned
            end = buf.find(b"\r\n", pos + scanned - 1 if scanned else pos)
            if end < 0:
                # Still arriving: a CR at the end may be the start of its CRLF; any other CR or LF
                # is bare. The limit counts the line without its CRLF, as when it is whole.
                n = len(buf)
                if n - pos - buf.endswith(b"\r") > self.limits.chunk_line:
                    raise ProtocolError(400, "chunk size line too long")
                if buf.find(b"\n", pos + scanned) >= 0 or buf.find(b"\r", max(pos, pos + scanned - 1), n - 1) >= 0:
                    raise ProtocolError(400, "bare CR or LF in a chunk size line")
                self.scanned = n - pos
                return NEED_DATA
            self.scanned = 0
            if end - pos > self.limits.chunk_line:
                raise ProtocolError(400, "chunk size line too long")
            match = abnf.CHUNK_SIZE_LINE.fullmatch(buf, pos, end)
            if match is None:
                raise ProtocolError(400, "invalid chunk size line")
            size = int(match.group(1).lstrip(b"0") or b"0", 16)
            self.body_seen += size
            if self.body_seen > self.limits.body:
                raise ProtocolError(413, "request body too large")
            self._count_framing(end + 2 - pos)
            self.pos = end + 2
            if size == 0:
                self._enter(_TRAILERS)
                return self._trailers()
            self.remaining = size
            self._enter(_CHUNK_DATA)
            return self._chunked_body()
        return self._trailers()

    def _count_framing(self, n: int) -> None:
        self.framing += n
        if self.framing > self.limits.chunk_framing:
            raise ProtocolError(413, "too much chunk framing (chunks too small)")

    def _trailers(self):
        buf, pos = self.buf, self.pos
        if buf.startswith(b"\r\n", pos):
            self.pos = pos + 2
            return self._end_of_message()
        limits = self.limits
        scanned = self.scanned
        end = buf.find(b"\r\n\r\n", pos + scanned - 3 if scanned > 3 else pos)
        if end < 0:  # still arriving: refuse what can never end well, as for a head
            if (abnf.HEAD_LINE_ERROR.search(buf, pos + scanned - 2 if scanned > 2 else pos) is not None
                    or buf.startswith(b"\n", pos)):
                raise ProtocolError(400, "bare CR or LF, or obs-fold, in the trailer section")
            if len(buf) - pos >= limits.head:
                raise ProtocolError(431, "trailer section too large")
            self.scanned = len(buf) - pos
            return NEED_DATA
        # The trailer section has the limits of a head: its size, its field count, its lines.
        if end + 4 - pos > limits.head:
            raise ProtocolError(431, "trailer section too large")
        fields = _bytes(buf[pos:end + 2])
        if _field_lines_ok(fields) is None:
            raise ProtocolError(400, "malformed trailer field")
        trailers = [(name.lower(), value) for name, value in _field_lines(fields)]
        if len(trailers) > limits.fields:
            raise ProtocolError(431, "too many trailer fields")
        if len(fields) > limits.field_size and max(map(len, fields.split(b"\r\n"))) > limits.field_size:
            raise ProtocolError(431, "trailer field too large")
        self.pos = end + 4
        return self._end_of_message(trailers)
