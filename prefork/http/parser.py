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
"""

from __future__ import annotations

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


class Request:
    """A request head. `headers` is a list of (lower-case name, value) pairs, both bytes."""

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "expect_continue",
                 "content_length", "chunked", "has_body")

    def __init__(self, method, target, version, headers, keep_alive, expect_continue, content_length, chunked):
        self.method = method  # bytes, e.g. b"GET"
        self.target = target  # bytes, as sent
        self.version = version  # b"1.1" or b"1.0"
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length  # int, or None when chunked or absent
        self.chunked = chunked
        self.has_body = chunked or bool(content_length)

    def header(self, name: bytes, default=None):
        """The value of the first header called `name` (lower-case bytes)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def __repr__(self):
        return f"Request({self.method!r}, {self.target!r}, HTTP/{self.version.decode()}, {self.headers!r})"


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
_TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MOVE_NON_TOKEN = bytes(b if b in _TCHARS else (b + 1) % 256 for b in range(256))
# A translate() table that keeps HTAB, SP, VCHAR and obs-text and changes every other byte.
_MOVE_CONTROLS = bytes(b if b == 0x09 or 0x20 <= b != 0x7f else b ^ 0x80 for b in range(256))
_field_lines_ok = abnf.FIELD_LINES.fullmatch
_field_lines = abnf.FIELD_LINE_AT_LINE_START.findall
_request_line = abnf.REQUEST_LINE.fullmatch
_token = abnf.TOKEN_RE.fullmatch


class RequestParser:
    """Turns the bytes of one connection into request events."""

    __slots__ = ("limits", "buf", "pos", "state", "remaining", "body_seen", "closing", "next_event",
                 "last_head", "last_request", "last_fields")

    def __init__(self, limits: Limits = Limits()):
        self.limits = limits
        self.buf = b""
        self.pos = 0  # bytes of buf already consumed
        self.state = _HEAD
        self.remaining = 0  # body bytes left in the current Content-Length body or chunk
        self.body_seen = 0  # body bytes of the current message, for the size limit
        self.closing = False  # the current request asked to close the connection
        # next_event() is the current state's method itself, so a call costs one Python call.
        self.next_event = self._head
        # The last bodiless keep-alive head and its Request: a client on a persistent connection
        # very often sends the same head again (polling, health checks, API calls, load tests),
        # and parsing is a pure function of the bytes, so the same bytes give the same Request.
        self.last_head = None
        self.last_request = None
        self.last_fields = None  # its field lines, from the CRLF ending its request-line

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if self.state == _CLOSED:
            return
        if self.pos == len(self.buf):
            self.buf = data
        else:
            self.buf = self.buf[self.pos:] + data
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
            return self.last_request
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return self._incomplete_head(buf, pos)
        # RFC 9112 2.2: ignore empty lines received before the request-line.
        while buf[pos:pos + 2] == b"\r\n":
            pos += 2
            if pos > end:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    return self._incomplete_head(buf, pos)
        limits = self.limits
        fields_at = buf.find(b"\r\n", pos)  # the CRLF that ends the request-line
        line_end = fields_at - pos
        if line_end > limits.request_line:
            raise ProtocolError(414, "request line too long")
        if end + 4 - pos > limits.head:
            raise ProtocolError(431, "request head too large")
        last_fields = self.last_fields
        if (last_fields is not None and end + 4 - fields_at == len(last_fields)
                and buf.startswith(last_fields, fields_at)):
            # The field lines of the last head again, after a new request-line: a client on a
            # keep-alive connection sends the same headers and varies only the target. The
            # fields were checked last time; check and parse the request-line alone.
            request = self._same_fields(buf[pos:fields_at])
            if request is not None:
                self.pos = end + 4
                self.last_head = buf[pos:end + 4]
                self.last_request = request
                return request
            # Anything wrong with the request-line: the full checks below say what.
        head = buf[pos:end + 2]  # the request-line and field lines, each ending in CRLF
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
        if self.state == _HEAD and not request.has_body:
            # Remember it only when nothing follows the head: no body, and the connection stays.
            self.last_head = buf[pos:end + 4]
            self.last_request = request
            self.last_fields = buf[fields_at:end + 4]
        return request

    def _same_fields(self, line: bytes):
        """The Request for a new request-line over the last head's field lines, or None when the
        line is not a plain valid one of the same HTTP version."""
        if line.translate(_MOVE_CONTROLS) is not line:
            return None
        parts = line.split(b" ")
        if len(parts) != 3:
            return None
        method, target, version = parts
        last = self.last_request
        if (version[5:] != last.version or _FULL_VERSIONS.get(version) is None
                or (method not in _METHODS and _token(method) is None)
                or not target or b"\t" in target or not target.isascii()):
            return None
        return Request(method, target, last.version, last.headers, last.keep_alive, last.expect_continue,
                       None, False)

    def _bad_head(self, head: bytes, line_end: int):
        """The fast checks failed: find which rule the head breaks, with the old precise patterns."""
        line = head[:line_end]
        match = _request_line(line)
        if match is None:
            self._bad_request_line(line)
        if match.group(3) + b"." + match.group(4) not in _VERSIONS:
            raise ProtocolError(505, "HTTP version not supported")
        raise ProtocolError(400, "malformed header field")

    def _incomplete_head(self, buf, pos):
        """The head has not ended yet. Wait for more bytes, unless those already here can never
        begin a valid head: then reject now rather than hold the connection until a timeout.
        Only a head split across reads comes here; a whole head never does."""
        if pos == len(buf):
            return NEED_DATA
        while buf.startswith(b"\r\n", pos):  # empty lines before the request-line (RFC 9112 2.2)
            pos += 2
        # The empty lines stay buffered (self.pos does not move): they begin a head, so its
        # header_timeout runs and the head limit counts them. Consumed, they would leave the
        # connection looking idle, and CRLFs trickled forever would keep it open.
        # RFC 9112 2.2: CR and LF appear in a head only as CRLF; RFC 9112 5.2: a line that
        # starts with whitespace is obs-fold (or whitespace after the request-line).
        if abnf.HEAD_LINE_ERROR.search(buf, pos) is not None or buf.startswith(b"\n", pos):
            raise ProtocolError(400, "bare CR or LF, or a line starting with whitespace")
        limits = self.limits
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            # The request-line is still arriving: a CR at the end may be the start of its CRLF.
            if len(buf) - pos - buf.endswith(b"\r") > limits.request_line:
                raise ProtocolError(414, "request line too long")
        else:
            if line_end - pos > limits.request_line:
                raise ProtocolError(414, "request line too long")
            match = _request_line(buf, pos, line_end)
            if match is None:
                self._bad_request_line(buf[pos:line_end])
            if match.group(3) + b"." + match.group(4) not in _VERSIONS:
                raise ProtocolError(505, "HTTP version not supported")
        if len(buf) - self.pos >= limits.head:
            raise ProtocolError(431, "request head too large")
        return NEED_DATA

    @staticmethod
    def _bad_request_line(line: bytes):
        parts = line.split(b" ")
        if len(parts) == 3 and parts[2].startswith(b"HTTP/") and abnf.REQUEST_LINE.fullmatch(
                parts[0] + b" / HTTP/1.1") and len(parts[2]) == 8 and parts[2][5:6].isdigit() and parts[2][7:8].isdigit():
            raise ProtocolError(400, "malformed request target")
        raise ProtocolError(400, "malformed request line")

    def _request(self, method, target, version, headers, keep_alive):
        """The Request for a checked head; headers are (lower-case name, value) pairs."""
        content_length = None
        transfer_encoding = None
        hosts = 0
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
            elif name == _CONNECTION:
                for option in abnf.LIST_SEPARATOR.split(value.lower()):
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
        request = Request(method, target, version, headers, keep_alive, expect_continue, content_length, chunked)
        self.body_seen = 0
        if chunked:
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
        data = self.buf[pos:pos + n]
        self.pos = pos + len(data)
        return data

    def _end_of_message(self, trailers=()):
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
            self.pos += 2
            self._enter(_CHUNK_SIZE)
            state = _CHUNK_SIZE
        if state == _CHUNK_SIZE:
            end = buf.find(b"\r\n", self.pos)
            if end < 0:
                # Still arriving: a CR at the end may be the start of its CRLF; any other CR or LF
                # is bare. The limit counts the line without its CRLF, as when it is whole.
                if len(buf) - self.pos - buf.endswith(b"\r") > self.limits.chunk_line:
                    raise ProtocolError(400, "chunk size line too long")
                if buf.find(b"\n", self.pos) >= 0 or buf.find(b"\r", self.pos, len(buf) - 1) >= 0:
                    raise ProtocolError(400, "bare CR or LF in a chunk size line")
                return NEED_DATA
            if end - self.pos > self.limits.chunk_line:
                raise ProtocolError(400, "chunk size line too long")
            match = abnf.CHUNK_SIZE_LINE.fullmatch(buf, self.pos, end)
            if match is None:
                raise ProtocolError(400, "invalid chunk size line")
            size = int(match.group(1).lstrip(b"0") or b"0", 16)
            self.pos = end + 2
            self.body_seen += size
            if self.body_seen > self.limits.body:
                raise ProtocolError(413, "request body too large")
            if size == 0:
                self._enter(_TRAILERS)
                return self._trailers()
            self.remaining = size
            self._enter(_CHUNK_DATA)
            return self._chunked_body()
        return self._trailers()

    def _trailers(self):
        buf, pos = self.buf, self.pos
        if buf.startswith(b"\r\n", pos):
            self.pos = pos + 2
            return self._end_of_message()
        limits = self.limits
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:  # still arriving: refuse what can never end well, as for a head
            if abnf.HEAD_LINE_ERROR.search(buf, pos) is not None or buf.startswith(b"\n", pos):
                raise ProtocolError(400, "bare CR or LF, or obs-fold, in the trailer section")
            if len(buf) - pos >= limits.head:
                raise ProtocolError(431, "trailer section too large")
            return NEED_DATA
        # The trailer section has the limits of a head: its size, its field count, its lines.
        if end + 4 - pos > limits.head:
            raise ProtocolError(431, "trailer section too large")
        fields = buf[pos:end + 2]
        if _field_lines_ok(fields) is None:
            raise ProtocolError(400, "malformed trailer field")
        trailers = [(name.lower(), value) for name, value in _field_lines(fields)]
        if len(trailers) > limits.fields:
            raise ProtocolError(431, "too many trailer fields")
        if len(fields) > limits.field_size and max(map(len, fields.split(b"\r\n"))) > limits.field_size:
            raise ProtocolError(431, "trailer field too large")
        self.pos = end + 4
        return self._end_of_message(trailers)
