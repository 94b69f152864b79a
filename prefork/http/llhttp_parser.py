"""The request parser with its heads parsed by llhttp (Node.js's parser, in C, through httptools).

`LlhttpRequestParser` is a `RequestParser`: the same constructor, `feed()`, `next_event`,
`buffered`, `buf` and `pos`, the same events, limits and statuses. llhttp checks a whole head's
request-line and field lines in C, with no Python call per field: the field lines go to the
Request as they are (split only when a handler reads its headers), and the few fields that frame
the request are found by one pattern. Everything around it is the pure-Python parser's own code:

- a head still arriving (with its early refusals), empty lines before a request, the size
  limits, and the bodies, Content-Length or chunked, with their limits;
- the framing and routing rules once the fields are known (`_request`: Content-Length,
  Transfer-Encoding, Host, Connection, Expect, absolute-form);
- the checks llhttp does not make: one SP between the request-line's parts, HTTP/1.0 or 1.1
  only, the field count and size, OWS after a value;
- and the verdict on every head llhttp refuses: the Python code parses it again and accepts it
  (an extension method such as MKCOLA, which llhttp does not know) or says with which status to
  refuse it. So both parsers accept the same heads and refuse them alike.

llhttp never sees more than the first message of what is buffered. httptools gives neither the
offset at which a message ends nor a way to pause there, so llhttp fed a body and a pipelined
request after it would parse that request too, and the bytes not yet turned into events could no
longer be counted (`buffered`, `buf[pos:]`). A read that is one head (the common case: it ends
with the head's CRLFCRLF) goes to llhttp whole; a callback stops llhttp if a second message
begins in it, and the head's end is then searched for. Otherwise the head is found first and fed
alone. Bodies are the Python parser's, read with slices and compiled patterns, in C already.

The fast path trusts llhttp to refuse what RFC 9112 forbids in a head (controls in a field
value, bare CR or LF, obs-fold, whitespace before a colon, a target byte outside visible
ASCII). llhttp 9 refuses them all unless a leniency flag is set; `_refuses_what_we_refuse()`
checks it at import, so that an httptools built on a more lenient llhttp is not used.
"""

from __future__ import annotations

import re

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from .errors import ProtocolError
from .parser import _CLOSED, _HEAD, _KNOWN_HOSTS, Limits, Request, RequestParser


class _Stop(Exception):
    """Raised in a callback to stop llhttp once the first message's head is whole."""


class _Callbacks:
    """What llhttp calls while it parses a read: the end of the first message if it has no body,
    and llhttp is stopped where a body or a second message begins. No callback per field: the
    field lines are split in Python only when read (Request.headers), and the few that frame
    the request are found by one pattern (`_framing_fields`)."""

    __slots__ = ("begun", "complete")

    def __init__(self):
        self.begun = self.complete = False

    def on_message_begin(self) -> None:
        if self.begun:
            raise _Stop
        self.begun = True

    def on_body(self, data: bytes) -> None:
        raise _Stop

    def on_chunk_header(self) -> None:
        raise _Stop

    def on_message_complete(self) -> None:
        self.complete = True


class _FieldCallbacks(_Callbacks):
    """As _Callbacks, and each field line of the first message as a (lower-case name, value) pair:
    for handlers that read every field (a WSGI environ), one C-to-Python call per field costs
    less than finding the framing fields and splitting the lines afterwards."""

    __slots__ = ("fields",)

    def __init__(self):
        super().__init__()
        self.fields = []

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the OWS before a value but not the OWS after it. rstrip() without
        # arguments strips more than SP and HTAB, but llhttp refuses the others in a value.
        self.fields.append((name.lower(), value.rstrip()))


# The fields that frame a request (see RequestParser._request), in field lines lowered and
# checked by llhttp (so a name ends at its colon, and a value has no CR but its line's end): each
# as (name, value without the OWS before it). The OWS after it is stripped where it is used.
_framing_fields = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|host|expect):[ \t]*([^\r]*)").findall


_KEEP_ALIVE = (b"connection", b"keep-alive")  # as _framing_fields finds it


class LlhttpRequestParser(RequestParser):
    """Turns the bytes of one connection into request events, heads parsed by llhttp."""

    __slots__ = ("llhttp", "callbacks")

    # Whether Requests carry their field lines unsplit (LazyFieldsLlhttpRequestParser) or as
    # (name, value) pairs, as llhttp calls back for each field.
    lazy_fields = False

    def __init__(self, limits: Limits = Limits()):
        super().__init__(limits)
        self.callbacks = _Callbacks() if self.lazy_fields else _FieldCallbacks()
        self.llhttp = HttpRequestParser(self.callbacks)

    def _head(self):
        buf = self.buf
        last_head = self.last_head
        if last_head is not None and not self.scanned and buf.startswith(last_head, self.pos):
            # The very head parsed last time: the same Request, as RequestParser gives it (first,
            # before any other test: a client that repeats its head repeats it on every request).
            self.pos += len(last_head)
            return self.last_request
        limits = self.limits
        if (self.pos or self.scanned or type(buf) is not bytes or not 5 <= len(buf) <= limits.head
                or not buf.endswith(b"\r\n\r\n") or buf[-5] in b"\r\n" or buf[0] in b"\r\n"):
            # Not a read that begins with a head and ends with one: the general path finds the
            # head (or waits for it, or refuses it) and calls _parse_head.
            return RequestParser._head(self)
        # The read begins with a request-line and ends with a CRLFCRLF that a line's end precedes
        # (no empty line follows it): one head, or a head and what follows it, to its end.
        fields_at = buf.find(b"\r\n")
        if fields_at > limits.request_line:
            return RequestParser._head(self)  # (which refuses it)
        return self._parse_head(buf, 0, -1, fields_at, fields_at)

    def _parse_head(self, buf: bytes, start: int, end: int, fields_at: int, line_end: int):
        """As RequestParser's, but end -1: the head begins buf, which holds a CRLFCRLF."""
        last_fields = self.last_fields
        if last_fields is not None:
            # The last head's field lines under a new request-line, as RequestParser reuses them
            # (see there). They end with the only CRLFCRLF they hold: if buf ends with them, so
            # does the head.
            head_end = end + 4 if end >= 0 else len(buf)
            if head_end - fields_at == len(last_fields) and buf.startswith(last_fields, fields_at):
                request = self._same_fields(buf, start, fields_at, head_end)
                if request is not None:
                    return request
        callbacks = self.callbacks
        callbacks.begun = callbacks.complete = False
        lazy = self.lazy_fields
        if not lazy:
            fields = callbacks.fields = []
        try:
            if end < 0:
                self.llhttp.feed_data(buf)
            else:
                head_end = end + 4
                # A read that is one whole head goes as it is, without a copy.
                self.llhttp.feed_data(buf if start == 0 and head_end == len(buf) else buf[start:head_end])
        except HttpParserUpgrade:
            # CONNECT, or Upgrade: llhttp stops where it would read another protocol, having read
            # the head by its rules for those (a bare LF may end a CONNECT's request-line there,
            # and the rest become fields), not ours. They are rare: the Python parser decides
            # them, as ordinary requests framed by their own fields (prefork tunnels nothing and
            # ignores Upgrade, RFC 9110 7.8).
            return self._python_verdict(buf, start, end, fields_at, line_end)
        except HttpParserCallbackError:
            # _Stop: a body or a second message begins, after the head llhttp called back.
            # llhttp stopped mid-stream: a new one for the next head.
            callbacks.complete = False
        except HttpParserError:
            return self._python_verdict(buf, start, end, fields_at, line_end)
        if end < 0:
            # llhttp read all of buf: when the message ended there, with no body and nothing
            # after it (any byte but CR or LF would begin a second one, and buf does not end with
            # an empty line), the head is buf; otherwise its end is searched for.
            end = len(buf) - 4 if callbacks.complete else buf.find(b"\r\n\r\n")
        head_end = end + 4
        # request-line = method SP request-target SP HTTP-version (RFC 9112 3). llhttp accepts
        # several spaces, HTTP/2.0 and HTTP/0.9, and skips a lone CR or LF before the method:
        # the Python checks say what those are. The method itself is one llhttp knows (it refuses
        # any other), so a token.
        try:
            method, target, version = buf[start:fields_at].split(b" ")
        except ValueError:
            return self._python_verdict(buf, start, end, fields_at, line_end)
        if version == b"HTTP/1.1":
            version, keep_alive = b"1.1", True
        elif version == b"HTTP/1.0":
            version, keep_alive = b"1.0", False
        else:
            return self._python_verdict(buf, start, end, fields_at, line_end)
        if not target or buf[start] in b"\r\n":
            return self._python_verdict(buf, start, end, fields_at, line_end)
        limits = self.limits
        if not lazy:
            if len(fields) > limits.fields:
                raise ProtocolError(431, "too many header fields")
            if end + 2 - start > limits.field_size:
                self._check_field_size(buf, start, fields_at, end)
            self.pos = head_end
            return self._remember(buf, start, fields_at, head_end, target,
                                  self._request(method, target, version, fields, keep_alive))
        field_lines = buf[fields_at:end]  # each after a CRLF
        if field_lines.count(b"\r\n") > limits.fields:
            raise ProtocolError(431, "too many header fields")
        if end + 2 - start > limits.field_size:
            self._check_field_size(buf, start, fields_at, end)
        self.pos = head_end
        framing = _framing_fields(field_lines.lower())
        count = len(framing)
        if 0 < count <= 2 and callbacks.complete and target[0] == 47:
            # What most requests are: bodiless, origin-form, with a Host seen before and no other
            # field that frames them but, from browsers, "Connection: keep-alive". _request()
            # would find nothing to check or to decide but keep-alive; the Request is made here (a
            # fresh head's costliest part was those calls; the differential tests hold both ways
            # to the same Requests).
            host = framing[0]
            persist = keep_alive
            if count == 2:
                if host == _KEEP_ALIVE:
                    host = framing[1]
                elif framing[1] != _KEEP_ALIVE:
                    host = None
                persist = True  # RFC 9112 9.3: keep-alive persists an HTTP/1.0 connection too
            if host is not None and host[0] == b"host" and host[1] in _KNOWN_HOSTS:
                request = Request(method, target, version, None, persist, False, None, False, field_lines)
                if persist:
                    self.closing = False
                    self.last_head = buf[start:head_end]
                    self.last_request = request
                    self.last_fields = buf[fields_at:head_end]
                else:
                    self.closing = True
                    self._enter(_CLOSED)
                return request
        framing = [(name, value.rstrip(b" \t")) for name, value in framing]
        return self._remember(buf, start, fields_at, head_end, target,
                              self._request(method, target, version, framing, keep_alive, field_lines))

    def _check_field_size(self, buf: bytes, start: int, fields_at: int, end: int) -> None:
        """431 when one of the head's field lines is longer than the limit."""
        if max(
                map(len, buf[fields_at + 2:end].split(b"\r\n"))) > self.limits.field_size:
            raise ProtocolError(431, "header field too large")

    def _remember(self, buf: bytes, start: int, fields_at: int, head_end: int, target: bytes, request):
        """The request, once the head is remembered as RequestParser remembers it (see there)."""
        if not self.callbacks.complete:
            # llhttp stopped, or waits for a body that the Python code reads: a new one.
            self.llhttp = HttpRequestParser(self.callbacks)
        elif self.state == _HEAD and request.target is target:
            # The same head again is the same Request, the same field lines under a new
            # request-line share its fields.
            self.last_head = buf[start:head_end]
            self.last_request = request
            self.last_fields = buf[fields_at:head_end]
        return request


    def _python_verdict(self, buf: bytes, start: int, end: int, fields_at: int, line_end: int):
        """A head llhttp refused, or accepted where our rules differ: the Python parser decides
        (a Request, or ProtocolError with its status). llhttp is left in an error or a mid-message
        state: a new one for the next head."""
        self.llhttp = HttpRequestParser(self.callbacks)
        if end < 0:
            end = buf.find(b"\r\n\r\n", start)
        return RequestParser._parse_head(self, buf, start, end, fields_at, line_end)


class LazyFieldsLlhttpRequestParser(LlhttpRequestParser):
    """The same parser, whose Requests carry their field lines unsplit: for handlers that read few
    fields or none (the built-in site), a fresh head then costs no Python work per field."""

    __slots__ = ()
    lazy_fields = True


def _refuses_what_we_refuse() -> bool:
    """Whether this llhttp refuses the bytes the fast path leaves to it (llhttp 9 without
    leniency flags does; older versions accepted some)."""
    probes = (b"X: a\x0b", b"X: a\x0c", b"X: a\x01b", b"X: a\x7fb", b"X: a\x00b", b"X: a\rb", b"X: a\nY: b",
              b"X: a\r\n b", b"X : a", b"X\tY: a", b" X: a")
    targets = (b"/a\x00", b"/\x7f", b"/\xe9", b"/a\tb", b"/a\x0c")
    heads = [b"GET / HTTP/1.1\r\nHost: a\r\n" + probe + b"\r\n\r\n" for probe in probes]
    heads += [b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n" for target in targets]
    for head in heads:
        try:
            HttpRequestParser(_Callbacks()).feed_data(head)
        except HttpParserError:
            continue
        return False
    return True


if not _refuses_what_we_refuse():
    raise ImportError("this httptools's llhttp accepts bytes RFC 9112 forbids in a request head; "
                      "the pure-Python parser is used instead (upgrade httptools)")
