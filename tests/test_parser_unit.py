"""Unit tests of the request parser: one table row per strictness rule, then framing, persistence,
Expect, leading empty lines and the size limits at their exact thresholds.

How the limits count (Limits() defaults):
- request_line = 8190: the request-line's bytes without its CRLF (and without the empty lines
  before it, which are ignored). 8190 is accepted, 8191 is 414 -- whether the line arrived whole
  or is still arriving.
- field_size = 8190: one field line without its CRLF ("Name: value", OWS included). 8191 is 431.
- fields = 100: header field lines in one head. 101 is 431.
- head = 65536: the request-line, the field lines and the empty line, CRLFs included (leading
  empty lines not). 65537 is 431, again whether the head is whole or still arriving.
- body = 100 MiB: the Content-Length, or the sum of the chunk sizes. One byte more is 413.
- chunk_framing = 1 MiB: the framing bytes of one chunked body -- each chunk-size line with its
  extensions and CRLF (the last chunk's too) and the CRLF after each chunk's data; the trailer
  section has its own limits. One byte more is 413.
- empty lines before a request-line: at most `head` bytes of them. More is 431.
"""

from __future__ import annotations

import pytest

from prefork.http import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Request, RequestParser

# Every test runs once per request parser (python, httptools): see each_parser in conftest.py.
pytestmark = pytest.mark.usefixtures("each_parser")


def drain(parser: RequestParser) -> list:
    """Events until NEED_DATA or CLOSED (included)."""
    events = []
    while True:
        event = parser.next_event()
        events.append(event)
        if event is NEED_DATA or event is CLOSED:
            return events


def events(data: bytes, limits: Limits = Limits()) -> list:
    parser = RequestParser(limits)
    parser.feed(data)
    return drain(parser)


def status_of(data: bytes, limits: Limits = Limits()) -> int | None:
    """The status of the ProtocolError that data raises, fed whole; None if it raises none."""
    try:
        events(data, limits)
    except ProtocolError as exc:
        return exc.status
    return None


def status_bytewise(data: bytes, limits: Limits = Limits()) -> int | None:
    """The same, fed one byte at a time."""
    parser = RequestParser(limits)
    try:
        for i in range(len(data)):
            parser.feed(data[i:i + 1])
            drain(parser)
    except ProtocolError as exc:
        return exc.status
    return None


def head(*fields: str, line: str = "POST / HTTP/1.1", host: bool = True) -> bytes:
    lines = [line] + (["Host: example.com"] if host else []) + list(fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- strictness: raw request -> the status it is refused with ---------------------------------------

REJECT = [
    # Content-Length together with Transfer-Encoding (RFC 9112 6.3: smuggling)
    ("CL then TE", head("Content-Length: 5", "Transfer-Encoding: chunked"), 400),
    ("TE then CL", head("Transfer-Encoding: chunked", "Content-Length: 5"), 400),
    # Transfer-Encoding whose final coding is not chunked: 501; repeated or on HTTP/1.0: 400
    ("TE gzip", head("Transfer-Encoding: gzip"), 501),
    ("TE identity", head("Transfer-Encoding: identity"), 501),
    ("TE chunked then gzip", head("Transfer-Encoding: chunked, gzip"), 501),
    ("TE gzip then chunked (unsupported coding)", head("Transfer-Encoding: gzip, chunked"), 501),
    ("TE chunkedchunked", head("Transfer-Encoding: chunkedchunked"), 501),
    ("TE chunked twice in a list", head("Transfer-Encoding: chunked, chunked"), 400),
    ("TE repeated", head("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), 400),
    ("TE on HTTP/1.0", head("Transfer-Encoding: chunked", line="POST / HTTP/1.0"), 400),
    # Content-Length: repeated (even equal), list, signed, hex, '_' or spaces inside, empty, overflow
    ("CL repeated equal", head("Content-Length: 5", "Content-Length: 5"), 400),
    ("CL repeated different", head("Content-Length: 5", "Content-Length: 6"), 400),
    ("CL list", head("Content-Length: 5, 5"), 400),
    ("CL list no space", head("Content-Length: 5,5"), 400),
    ("CL plus sign", head("Content-Length: +5"), 400),
    ("CL minus sign", head("Content-Length: -5"), 400),
    ("CL hex", head("Content-Length: 0x5"), 400),
    ("CL hex digits", head("Content-Length: 5a"), 400),
    ("CL underscore", head("Content-Length: 1_0"), 400),
    ("CL space inside", head("Content-Length: 1 0"), 400),
    ("CL tab inside", head("Content-Length: 1\t0"), 400),
    ("CL decimal point", head("Content-Length: 5.0"), 400),
    ("CL empty", head("Content-Length:"), 400),
    ("CL overflow", head("Content-Length: 99999999999999999999"), 400),
    ("CL non-ASCII digit", head("Content-Length: \xb5"), 400),
    # Chunk sizes that are not plain hex, or overflow
    ("chunk size 0x", head("Transfer-Encoding: chunked") + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size signed", head("Transfer-Encoding: chunked") + b"+5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size negative", head("Transfer-Encoding: chunked") + b"-1\r\n", 400),
    ("chunk size underscore", head("Transfer-Encoding: chunked") + b"5_0\r\n", 400),
    ("chunk size not hex", head("Transfer-Encoding: chunked") + b"g\r\n", 400),
    ("chunk size empty", head("Transfer-Encoding: chunked") + b"\r\n", 400),
    ("chunk size leading space", head("Transfer-Encoding: chunked") + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size trailing space", head("Transfer-Encoding: chunked") + b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size overflow", head("Transfer-Encoding: chunked") + b"10000000000000000\r\n", 400),
    ("chunk size bare LF", head("Transfer-Encoding: chunked") + b"5\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext without name", head("Transfer-Encoding: chunked") + b"5;\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext open quote", head("Transfer-Encoding: chunked") + b'5;a="b\r\nhello\r\n0\r\n\r\n', 400),
    ("chunk data too long", head("Transfer-Encoding: chunked") + b"5\r\nhello!\r\n0\r\n\r\n", 400),
    ("last chunk missing", head("Transfer-Encoding: chunked") + b"5\r\nhello\r\n\r\n", 400),
    # Bare CR or LF, NUL and other controls in the request-line or a header
    ("bare LF ends request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    ("bare LF ends a field", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    ("LF-only head", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare CR in request-line", b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bare CR ends request-line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    ("bare CR in a name", b"GET / HTTP/1.1\r\nHost: a\r\nX\r: b\r\n\r\n", 400),
    ("CR before the empty line", b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),
    ("NUL in target", b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("NUL in method", b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("NUL in a name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", 400),
    ("control char in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
    ("form feed in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0cb\r\n\r\n", 400),
    ("DEL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
    ("ESC in target", b"GET /\x1b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("DEL in target", b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("non-ASCII in target", "GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n".encode("latin-1"), 400),
    ("non-token in a name", b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n", 400),
    ("empty name", b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
    ("tab in request-line", b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("two spaces in request-line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("space before request-line", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("space after request-line", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("no target", b"GET HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/0.9 request-line", b"GET /\r\n\r\n", 400),
    ("lower-case HTTP-name", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ("two-digit minor version", b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
    ("version without minor", b"GET / HTTP/2\r\nHost: a\r\n\r\n", 400),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    # Whitespace before a header colon, obs-fold
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("tab before colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    ("space before colon, other field", b"GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", 400),
    ("obs-fold with space", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    ("obs-fold with tab", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),
    ("whitespace after request-line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("field without colon", b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 400),
    # Host: none or several on HTTP/1.1; several on any version (RFC 9112 3.2)
    ("no Host on HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("no Host, other fields", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    ("two Hosts on HTTP/1.1", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ("two Hosts, different case", b"GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", 400),
    ("two Hosts on HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    # Versions other than 1.0 and 1.1
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    ("HTTP/0.9 with version", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    ("HTTP/5.6", b"GET / HTTP/5.6\r\n\r\n", 505),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    # Expectations other than 100-continue (RFC 9110 10.1.1)
    ("unknown expectation", head("Expect: 101-dance"), 417),
]


@pytest.mark.parametrize("data, status", [row[1:] for row in REJECT], ids=[row[0] for row in REJECT])
def test_rejected_with_status(data, status):
    assert status_of(data) == status
    # the verdict does not depend on how the bytes arrive
    assert status_bytewise(data) == status


ACCEPT = [
    ("CL with surrounding OWS", head("Content-Length:  \t3 \t") + b"abc", b"abc"),
    ("CL with leading zeros", head("Content-Length: 003") + b"abc", b"abc"),
    ("CL many leading zeros", head("Content-Length: " + "0" * 30 + "3") + b"abc", b"abc"),
    ("CL zero", head("Content-Length: 0"), b""),
    ("CL any case name", head("cOnTeNt-LeNgTh: 3") + b"abc", b"abc"),
    ("TE any case", head("Transfer-Encoding: ChUnKeD") + b"3\r\nabc\r\n0\r\n\r\n", b"abc"),
    ("TE with OWS", head("Transfer-Encoding: \tchunked \t") + b"3\r\nabc\r\n0\r\n\r\n", b"abc"),
    ("chunk size upper-case hex", head("Transfer-Encoding: chunked") + b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ("chunk size leading zeros", head("Transfer-Encoding: chunked") + b"0003\r\nabc\r\n000\r\n\r\n", b"abc"),
    ("chunk extensions", head("Transfer-Encoding: chunked")
     + b'3;a;b=c ; d = "e \\" f"\r\nabc\r\n0;last=yes\r\n\r\n', b"abc"),
    ("obs-text in a value", head("X: D\xfcsseldorf"), b""),
    ("tab inside a value", head("X: a\tb"), b""),
    ("empty value", head("X:"), b""),
    ("empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b""),
    ("no Host on HTTP/1.0", b"GET / HTTP/1.0\r\n\r\n", b""),
    ("asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", b""),
    ("absolute-form", b"GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n", b""),
    ("extension method", b"MKCOLA / HTTP/1.1\r\nHost: a\r\n\r\n", b""),
]


@pytest.mark.parametrize("data, body", [row[1:] for row in ACCEPT], ids=[row[0] for row in ACCEPT])
def test_accepted(data, body):
    result = events(data)
    assert isinstance(result[0], Request)
    assert b"".join(e.data for e in result if isinstance(e, Data)) == body
    assert result[-1] in (NEED_DATA, CLOSED)
    if result[0].has_body:
        assert isinstance(result[-2], EndOfMessage)


# -- the Request ------------------------------------------------------------------------------------


def test_request_fields():
    request, end = events(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Thing:  some  value \t\r\n"
                          b"X-Thing: again\r\n\r\n")
    assert end is NEED_DATA
    assert (request.method, request.target, request.version) == (b"GET", b"/a?b=c", b"1.1")
    assert request.headers == [(b"host", b"example.com"), (b"x-thing", b"some  value"), (b"x-thing", b"again")]
    assert request.header(b"x-thing") == b"some  value" and request.header(b"nope", 1) == 1
    assert (request.keep_alive, request.expect_continue, request.content_length, request.chunked,
            request.has_body) == (True, False, None, False, False)


def test_content_length_body():
    request, data, eom, end = events(head("Content-Length: 5") + b"hello")
    assert (request.content_length, request.chunked, request.has_body) == (5, False, True)
    assert data.data == b"hello" and eom.trailers == () and end is NEED_DATA


def test_chunked_body_with_extensions_and_trailers():
    result = events(head("Transfer-Encoding: chunked") + b"5;name=value\r\nhello\r\n6\r\n world\r\n"
                    b"0;ext\r\nExpires: never\r\nX-Sum:  abc \r\n\r\n")
    request, *data, eom, end = result
    assert (request.content_length, request.chunked, request.has_body) == (None, True, True)
    assert b"".join(d.data for d in data) == b"hello world"
    assert eom.trailers == [(b"expires", b"never"), (b"x-sum", b"abc")]
    assert end is NEED_DATA


@pytest.mark.parametrize("trailer", [b"X: a\r\n b\r\n", b"X : a\r\n", b"X: a\x00\r\n", b"X: a\nY: b\r\n"],
                         ids=["obs-fold", "space before colon", "NUL", "bare LF"])
def test_malformed_trailers_rejected(trailer):
    assert status_of(head("Transfer-Encoding: chunked") + b"0\r\n" + trailer + b"\r\n") == 400


# -- connections: pipelining, persistence, leading empty lines --------------------------------------


def test_pipelining():
    data = (b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            + b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            + b"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\nT: t\r\n\r\n"
            + b"GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            + b"GET /5 HTTP/1.1\r\nHost: a\r\n\r\n")
    result = events(data)
    summary = [(type(e).__name__, getattr(e, "target", None) or getattr(e, "data", None)
                or getattr(e, "trailers", None)) for e in result[:-1]]
    assert summary == [("Request", b"/1"), ("Request", b"/2"), ("Data", b"abc"), ("EndOfMessage", ()),
                       ("Request", b"/3"), ("Data", b"de"), ("EndOfMessage", [(b"t", b"t")]),
                       ("Request", b"/4")]
    assert result[-1] is CLOSED  # /5 came after "close": never parsed


def test_pipelined_requests_fed_in_pieces():
    parser = RequestParser()
    parser.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HT")
    first, end = drain(parser)
    assert first.target == b"/1" and end is NEED_DATA
    parser.feed(b"TP/1.1\r\nHost: a\r\n\r\n")
    second, end = drain(parser)
    assert second.target == b"/2" and end is NEED_DATA and parser.buffered == 0


@pytest.mark.parametrize("version, connection, keep_alive", [
    (b"1.1", None, True),
    (b"1.1", b"keep-alive", True),
    (b"1.1", b"close", False),
    (b"1.1", b"Close", False),
    (b"1.1", b"upgrade, close", False),
    (b"1.0", None, False),
    (b"1.0", b"keep-alive", True),
    (b"1.0", b"Keep-Alive", True),
    (b"1.0", b"foo,  keep-alive ,bar", True),
    (b"1.0", b"keep-alive, close", False),  # RFC 9112 9.3: close wins, wherever it is
    (b"1.0", b"close, keep-alive", False),
    (b"1.1", b"close, keep-alive", False),
])
def test_persistence(version, connection, keep_alive):
    request = b"GET / HTTP/" + version + b"\r\nHost: a\r\n"
    if connection is not None:
        request += b"Connection: " + connection + b"\r\n"
    request += b"\r\n"
    result = events(request + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert result[0].keep_alive is keep_alive
    if keep_alive:
        assert [e.target for e in result[:-1]] == [b"/", b"/next"] and result[-1] is NEED_DATA
    else:
        assert len(result) == 2 and result[-1] is CLOSED




@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
@pytest.mark.parametrize("fields", [b"Host: a\r\nConnection: keep-alive\r\n", b"Connection: keep-alive\r\nHost: a\r\n"])
def test_keep_alive_beside_host_one_head_per_read(version, fields):
    # What browsers send, one head per read (the httptools parser's fast path): the connection
    # persists, whatever the version, and the Connection field is among the headers.
    parser = RequestParser()
    for n in range(3):
        parser.feed(b"GET /%d HTTP/%s\r\nX-N: %d\r\n%s\r\n" % (n, version, n, fields))
        request, after = drain(parser)
        assert (request.target, request.keep_alive, request.version, after) == (b"/%d" % n, True, version, NEED_DATA)
        assert (b"connection", b"keep-alive") in request.headers

def test_http10_keep_alive_with_body_then_next_request():
    result = events(b"POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"
                    b"GET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.0\r\n\r\n")
    assert [type(e).__name__ for e in result] == ["Request", "Data", "EndOfMessage", "Request", "_Sentinel"]
    assert result[3].target == b"/b" and result[-1] is CLOSED


def test_closed_ignores_further_bytes():
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert drain(parser)[-1] is CLOSED
    parser.feed(b"\x00 garbage that would be a 400")
    assert parser.next_event() is CLOSED and parser.buffered == 0


@pytest.mark.parametrize("value, version, expected", [
    (b"100-continue", b"1.1", True),
    (b"100-Continue", b"1.1", True),
    (b"100-continue", b"1.0", False),  # RFC 9110 10.1.1: ignored in an HTTP/1.0 request
])
def test_expect_continue(value, version, expected):
    request = events(b"PUT / HTTP/" + version + b"\r\nHost: a\r\nExpect: " + value
                     + b"\r\nContent-Length: 3\r\n\r\n")[0]
    assert request.expect_continue is expected and request.has_body


def test_leading_empty_lines_ignored():
    result = events(b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [e.target for e in result[:-1]] == [b"/", b"/2"] and result[-1] is NEED_DATA


def test_leading_empty_line_split_between_cr_and_lf():
    parser = RequestParser()
    for piece in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r", b"\n", b"\r", b"\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"):
        parser.feed(piece)
        result = drain(parser)
    assert result[0].target == b"/2" and parser.buffered == 0


@pytest.mark.parametrize("partial", [
    b"GET / HTTP/1.1\nHost: a",  # bare LF
    b"GET / HTTP/1.1\r\nHost: a\rX",  # bare CR
    b"GET / HTTP/1.1\r\nHost: a\r\n X",  # obs-fold
    b"GET / HTTP/1.1\r\n\tX",  # whitespace after the request-line
    b"\nGET / HTTP/1.1\r\n",  # bare LF before the request-line
    b"GET / HTTP/2.0\r\nHost",  # a complete request-line with a version we do not speak (505)
    b"GET /\x00 HTTP/1.1\r\nHost",  # a complete, malformed request-line
])
def test_hopeless_partial_head_rejected_before_it_ends(partial):
    """Bytes that can never begin a valid head are refused at once, not after a timeout."""
    parser = RequestParser()
    parser.feed(partial)
    with pytest.raises(ProtocolError):
        parser.next_event()


@pytest.mark.parametrize("data", [b"\r\n\r\n", b"\r\n\r\n\r\n", b"\r\n", b"\r\n\r\n\r\n\r\n"])
def test_a_read_of_empty_lines_alone_waits_and_stays_buffered(data):
    """Empty lines before a request are skipped, but stay buffered until a head begins (so that
    header_timeout runs), whatever shape the read has."""
    parser = RequestParser()
    parser.buf, parser.pos = data, 0  # as the connection hands over a read
    assert parser.next_event() is NEED_DATA and parser.buffered == len(data)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(parser.next_event(), Request) and parser.buffered == 0


def test_partial_head_waits():
    parser = RequestParser()
    for piece in (b"GET / HT", b"TP/1.1\r", b"\nHost: a\r\n", b"\r"):
        parser.feed(piece)
        assert parser.next_event() is NEED_DATA
    parser.feed(b"\n")
    assert isinstance(parser.next_event(), Request)


# -- limits at their thresholds ---------------------------------------------------------------------


def request_line(length: int) -> bytes:
    """A request-line of exactly `length` bytes (without CRLF)."""
    fixed = len(b"GET / HTTP/1.1")
    return b"GET /" + b"a" * (length - fixed) + b" HTTP/1.1"


@pytest.mark.parametrize("length, status", [(8190, None), (8191, 414), (20000, 414)])
def test_request_line_limit(length, status):
    line = request_line(length)
    assert len(line) == length
    data = line + b"\r\nHost: a\r\n\r\n"
    assert status_of(data) == status
    assert status_of(b"\r\n\r\n" + data) == status  # leading empty lines do not count


@pytest.mark.parametrize("length, status", [(8190, None), (8191, 414)])
def test_request_line_limit_while_arriving(length, status):
    """Without its CRLF yet: 8190 bytes (even with the CR) wait; the 8191st byte is refused."""
    parser = RequestParser()
    parser.feed(request_line(length))
    if status:
        with pytest.raises(ProtocolError) as exc:
            parser.next_event()
        assert exc.value.status == status
    else:
        assert parser.next_event() is NEED_DATA
        parser.feed(b"\r")
        assert parser.next_event() is NEED_DATA
        parser.feed(b"\nHost: a\r\n\r\n")
        assert isinstance(parser.next_event(), Request)


@pytest.mark.parametrize("count, status", [(100, None), (101, 431)])
def test_field_count_limit(count, status):
    fields = ["Host: a"] + [f"X-{i}: {i}" for i in range(count - 1)]
    assert status_of(head(*fields, line="GET / HTTP/1.1", host=False)) == status


@pytest.mark.parametrize("length, status", [(8190, None), (8191, 431)])
def test_field_size_limit(length, status):
    field = "X-Big: " + "v" * (length - len("X-Big: "))
    assert len(field) == length
    assert status_of(head(field, line="GET / HTTP/1.1")) == status


def head_of_size(size: int) -> bytes:
    """A valid head of exactly `size` bytes, fields under both the count and the size limits."""
    start = b"GET / HTTP/1.1\r\nHost: a\r\n"
    fields, left = [], size - len(start) - 2
    while left > 0:
        length = min(left, 4000)
        if left - length and left - length < 10:  # keep the last field long enough for "X-n: v\r\n"
            length -= 10
        name = b"X-%d: " % len(fields)
        fields.append(name + b"v" * (length - len(name) - 2) + b"\r\n")
        left -= length
    data = start + b"".join(fields) + b"\r\n"
    assert len(data) == size and len(fields) < 99
    return data


@pytest.mark.parametrize("size, status", [(65536, None), (65537, 431)])
def test_head_size_limit(size, status):
    data = head_of_size(size)
    assert status_of(data) == status
    assert status_of(b"\r\n" + data) == status  # leading empty lines do not count


def test_head_size_limit_while_arriving():
    data = head_of_size(65537)
    parser = RequestParser()
    parser.feed(data[:65535])
    assert parser.next_event() is NEED_DATA  # may still end within 65536 bytes
    parser.feed(data[65535:65536])
    with pytest.raises(ProtocolError) as exc:  # 65536 bytes and no end: it cannot fit any more
        parser.next_event()
    assert exc.value.status == 431


@pytest.mark.parametrize("length, status", [(100 * 1024 * 1024, None), (100 * 1024 * 1024 + 1, 413)])
def test_content_length_limit(length, status):
    """Refused from the head alone: no body byte needs to arrive."""
    assert status_of(head(f"Content-Length: {length}")) == status


@pytest.mark.parametrize("sizes, status", [((4, 6), None), ((4, 7), 413), ((11,), 413)])
def test_chunked_body_limit(sizes, status):
    body = b"".join(b"%x\r\n%s\r\n" % (size, b"x" * size) for size in sizes) + b"0\r\n\r\n"
    assert status_of(head("Transfer-Encoding: chunked") + body, Limits(body=10)) == status


@pytest.mark.parametrize("length, status", [(10, None), (11, 413)])
def test_small_content_length_limit(length, status):
    assert status_of(head(f"Content-Length: {length}") + b"x" * length, Limits(body=10)) == status


@pytest.mark.parametrize("length, status", [(32, None), (33, 400)])
def test_chunk_line_limit(length, status):
    """chunk_line counts the chunk-size line with its extensions, without CRLF; whole or arriving."""
    line = b"5;" + b"e" * (length - 2)
    data = head("Transfer-Encoding: chunked") + line + b"\r\nhello\r\n0\r\n\r\n"
    assert status_of(data, Limits(chunk_line=32)) == status
    assert status_bytewise(data, Limits(chunk_line=32)) == status


@pytest.mark.parametrize("limits, trailers, status", [
    (Limits(head=64), b"X: " + b"t" * 57 + b"\r\n\r\n", None),  # a 64-byte trailer section
    (Limits(head=64), b"X: " + b"t" * 58 + b"\r\n\r\n", 431),
    (Limits(fields=2), b"A: 1\r\nB: 2\r\n\r\n", None),
    (Limits(fields=2), b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
    (Limits(field_size=30), b"A: " + b"t" * 27 + b"\r\n\r\n", None),  # a 30-byte trailer line
    (Limits(field_size=30), b"A: " + b"t" * 28 + b"\r\n\r\n", 431),
])
def test_trailer_limits(limits, trailers, status):
    """The trailer section has the limits of a head; whole or arriving."""
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + trailers
    assert status_of(data, limits) == status
    assert status_bytewise(data, limits) == status


# -- a connection repeating a head, or its field lines under a new request-line ------------------

FIELDS = b"Host: example.test\r\nAccept: */*\r\nUser-Agent: probe\r\n\r\n"


def parse_all(parser: RequestParser, data: bytes) -> list:
    parser.feed(data)
    events = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA or event is CLOSED:
            return events
        events.append(event)


def test_repeated_head_and_repeated_fields_parse_as_new():
    """Heads that repeat the last one, whole or but for the request-line, give what a fresh
    parser gives for each of them."""
    heads = [b"GET /a HTTP/1.1\r\n" + FIELDS, b"GET /a HTTP/1.1\r\n" + FIELDS, b"GET /b?x=1 HTTP/1.1\r\n" + FIELDS,
             b"DELETE /c HTTP/1.1\r\n" + FIELDS, b"GET /a HTTP/1.1\r\n" + FIELDS,
             b"GET /a HTTP/1.0\r\n" + FIELDS]  # last: HTTP/1.0 without keep-alive closes
    parser = RequestParser(Limits())
    for head in heads:
        (request,) = parse_all(parser, head)
        (fresh,) = parse_all(RequestParser(Limits()), head)
        assert (request.method, request.target, request.version, request.headers, request.keep_alive) == (
            fresh.method, fresh.target, fresh.version, fresh.headers, fresh.keep_alive)


@pytest.mark.parametrize("line, status", [
    (b"GET /a\x00b HTTP/1.1", 400),
    (b"GET /a\tb HTTP/1.1", 400),
    (b"GET  /a HTTP/1.1", 400),
    (b"GET /\xc3\xa9 HTTP/1.1", 400),
    (b"G@T /a HTTP/1.1", 400),
    (b"GET /a HTTP/2.0", 505),
    (b"GET /a\rb HTTP/1.1", 400),
])
def test_bad_request_line_over_repeated_fields_still_rejected(line, status):
    parser = RequestParser(Limits())
    parse_all(parser, b"GET /ok HTTP/1.1\r\n" + FIELDS)
    with pytest.raises(ProtocolError) as caught:
        parse_all(parser, line + b"\r\n" + FIELDS)
    assert caught.value.status == status


# -- bytes that cannot begin a request --------------------------------------------------------------


@pytest.mark.parametrize("first", [b"\x16\x03\x01", b"\x16", b"\x00", b"\x80", b"\xff", b" ", b"@", b"\t",
                                   b"\r\n\x16", b"\r\n\r\n\x01", b"\r\x00", b"\n"],
                         ids=lambda first: first.hex())
def test_bytes_that_cannot_begin_a_request_are_refused_at_once(first):
    """A request-line begins with a method, a token (RFC 9112 3): a TLS ClientHello or a control
    byte is a 400 as soon as it arrives, without waiting for a line end or a timeout."""
    parser = RequestParser()
    parser.feed(first)
    with pytest.raises(ProtocolError) as caught:
        parser.next_event()
    assert caught.value.status == 400


@pytest.mark.parametrize("partial", [b"\r\n", b"\r", b"\r\n\r\n\r", b"G", b"\r\nGET", b"GET ", b"M-SEARCH",
                                     b"~!#$%&'*+-.^_`|"])
def test_what_may_begin_a_request_waits(partial):
    parser = RequestParser()
    parser.feed(partial)
    assert parser.next_event() is NEED_DATA


@pytest.mark.parametrize("partial", [b"GET\x00", b"GET\t", b"G(T", b"GET/", b"GE\r\n"])
def test_a_method_followed_by_anything_but_sp_is_refused_at_once(partial):
    parser = RequestParser()
    parser.feed(partial)
    with pytest.raises(ProtocolError) as caught:
        parser.next_event()
    assert caught.value.status == 400


# -- Host (RFC 9112 3.2: uri-host [ ":" port ]) -------------------------------------------------------

BAD_HOSTS = [b"a b", b"a/b", b"..", b"a..b", b".", b".a", b"; x", b'" x', b"caf\xc3\xa9", b"a\x80", b"a\xff",
             b"a:b", b"a:80:80", b"a:-1", b"[::1", b"::1", b"[::1]x", b"user@host", b"a\\b", b"a?b", b"a#b", b"%4",
             b"%zz", b"a|b", b"<a>", b"a%", b"[]", b"a, b"]
GOOD_HOSTS = [b"example.com", b"example.com:8080", b"example.com.", b"127.0.0.1", b"127.0.0.1:80", b"[::1]",
              b"[::1]:8080", b"[2001:db8::7]", b"[::ffff:192.0.2.1]", b"[v1.fe:x]", b"a-b_c~d", b"localhost:",
              b"xn--bcher-kva.example", b"%41bc", b"EXAMPLE.COM", b"a!$&'()*+,;=b", b"1.2.3.4.5", b"a:0"]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=lambda host: host.decode("latin-1"))
def test_invalid_host_rejected(host):
    data = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    assert status_of(data) == 400
    assert status_bytewise(data) == 400
    assert status_of(b"GET / HTTP/1.0\r\nHost: " + host + b"\r\n\r\n") == 400


@pytest.mark.parametrize("host", GOOD_HOSTS, ids=lambda host: host.decode("latin-1"))
def test_valid_host_accepted(host):
    (request, end) = events(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert request.header(b"host") == host and end is NEED_DATA


def test_invalid_host_under_repeated_fields_still_rejected():
    """A bad Host never gets into the remembered heads, so a new request-line over it is checked."""
    parser = RequestParser()
    parse_all(parser, b"GET /a HTTP/1.1\r\nHost: ok\r\n\r\n")
    with pytest.raises(ProtocolError):
        parse_all(parser, b"GET /b HTTP/1.1\r\nHost: a..b\r\n\r\n")


# -- absolute-form (RFC 9112 3.2.2) ---------------------------------------------------------------------


@pytest.mark.parametrize("target, origin, authority", [
    (b"http://example.com:8080/path?q", b"/path?q", b"example.com:8080"),
    (b"http://example.com", b"/", b"example.com"),
    (b"http://example.com?q=1", b"/?q=1", b"example.com"),
    (b"HTTP://Example.COM/x", b"/x", b"Example.COM"),
    (b"https://a.example/", b"/", b"a.example"),
    (b"hTtPs://[::1]:8443//double", b"//double", b"[::1]:8443"),
    (b"http://a/%2e%2e/x", b"/%2e%2e/x", b"a"),
])
def test_absolute_form_becomes_origin_form(target, origin, authority):
    (request, end) = events(b"GET " + target + b" HTTP/1.1\r\nHost: ignored.example\r\nAccept: */*\r\n\r\n")
    assert request.target == origin and end is NEED_DATA
    # The authority replaces the Host value, which RFC 9112 3.2.2 says to ignore.
    assert request.headers == [(b"host", authority), (b"accept", b"*/*")]


def test_absolute_form_without_host_on_http10_gets_one():
    (request, end) = events(b"GET http://a.example/x HTTP/1.0\r\n\r\n")
    assert request.target == b"/x" and request.headers == [(b"host", b"a.example")] and end is CLOSED


@pytest.mark.parametrize("target", [b"ftp://a/x", b"ws://a/", b"file:///etc/passwd", b"mailto:a@b", b"urn:x:y",
                                    b"http:///x", b"http://", b"http://:80/", b"http://user@a/", b"http://u:p@a/",
                                    b"http://a b/", b"http://a..b/", b"http:/a", b"http:a", b"a", b"a.example/x",
                                    b"?x", b"1http://a/"],
                         ids=lambda target: target.decode())
def test_other_targets_rejected(target):
    assert status_of(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n") == 400


def test_absolute_form_needs_host_on_http11_still():
    """RFC 9112 3.2: a client sends Host even with absolute-form; without it, 400."""
    assert status_of(b"GET http://a.example/ HTTP/1.1\r\n\r\n") == 400


def test_authority_form_and_asterisk_form_are_left_alone():
    (connect, _), (options, _) = (events(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
                                  events(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert connect.target == b"a.example:443" and options.target == b"*"


def test_absolute_form_between_repeated_fields():
    """The remembered field lines are shared only by origin-form requests: an absolute-form one
    in between gets its own Host, and the next origin-form one gets the field's Host again."""
    parser = RequestParser()
    seen = []
    for line in (b"GET /a HTTP/1.1", b"GET http://other.example/b HTTP/1.1", b"GET /c HTTP/1.1",
                 b"GET http://other.example/b HTTP/1.1", b"GET /c HTTP/1.1"):
        (request,) = parse_all(parser, line + b"\r\n" + FIELDS)
        seen.append((request.target, request.header(b"host")))
    assert seen == [(b"/a", b"example.test"), (b"/b", b"other.example"), (b"/c", b"example.test"),
                    (b"/b", b"other.example"), (b"/c", b"example.test")]


# -- chunked bodies: one Data event per read, and the framing bound -------------------------------


CHUNKED_HEAD = head("Transfer-Encoding: chunked")


def chunked(*sizes: int, line: bytes = b"%x") -> tuple[bytes, bytes]:
    """A chunked body of chunks of these sizes (then the last chunk): (wire bytes, data)."""
    wire, data = b"", b""
    for number, size in enumerate(sizes):
        chunk = bytes((number * 7 + i) % 256 for i in range(size))
        wire += line % size + b"\r\n" + chunk + b"\r\n"
        data += chunk
    return wire + b"0\r\n\r\n", data


@pytest.mark.parametrize("sizes, line", [
    ((1,) * 50, b"%x"), ((2,) * 30 + (3,) * 30, b"%x"), ((10,) * 20, b"%X"), ((64,) * 5 + (65,) * 5, b"%x"),
    ((1, 2, 3) * 20, b"%x"), ((1,) * 10, b"0%x"), ((16,) * 10, b"%x;e=1"), ((300,) * 3, b"%x"),
])
def test_chunks_in_one_read_are_one_data_event(sizes, line):
    wire, data = chunked(*sizes, line=line)
    request, body, eom, end = events(CHUNKED_HEAD + wire)
    assert isinstance(request, Request) and body.data == data and isinstance(eom, EndOfMessage)
    assert end is NEED_DATA
    # Read in any pieces, the same data, in one event per read at most.
    for step in (1, 2, 3, 7, 64):
        parser = RequestParser()
        parser.feed(CHUNKED_HEAD)
        assert isinstance(parser.next_event(), Request)
        got = b""
        for i in range(0, len(wire), step):
            parser.feed(wire[i:i + step])
            result = drain(parser)
            assert sum(isinstance(event, Data) for event in result) <= 1
            got += b"".join(event.data for event in result if isinstance(event, Data))
        assert got == data and isinstance(result[-2], EndOfMessage)


def test_chunks_before_an_error_are_delivered_first():
    """Whole or in pieces: the data before a framing error comes out, then the error."""
    wire = b"3\r\nabc\r\n2\r\nde\r\nzz\r\n"
    parser = RequestParser()
    parser.feed(CHUNKED_HEAD + wire)
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event().data == b"abcde"
    with pytest.raises(ProtocolError) as caught:
        parser.next_event()
    assert caught.value.status == 400


@pytest.mark.parametrize("limit, status", [(53, None), (52, 413)])
def test_chunk_framing_limit(limit, status):
    """Ten 1-byte chunks: 10 x ("1" CRLF, CRLF after the data) + "0" CRLF = 53 framing bytes."""
    wire, _ = chunked(*(1,) * 10)
    limits = Limits(chunk_framing=limit)
    assert status_of(CHUNKED_HEAD + wire, limits) == status
    assert status_bytewise(CHUNKED_HEAD + wire, limits) == status


@pytest.mark.parametrize("limit, status", [(7 + 2 + 5, None), (7 + 2 + 4, 413)])
def test_chunk_framing_counts_extensions(limit, status):
    wire = b"1;e=1\r\nx\r\n0;e\r\n\r\n"  # "1;e=1" CRLF, CRLF, "0;e" CRLF
    assert status_of(CHUNKED_HEAD + wire, Limits(chunk_framing=limit)) == status
    assert status_bytewise(CHUNKED_HEAD + wire, Limits(chunk_framing=limit)) == status


def test_chunk_framing_counts_per_request():
    wire, _ = chunked(*(1,) * 10)
    limits = Limits(chunk_framing=53)
    parser = RequestParser(limits)
    parser.feed((CHUNKED_HEAD + wire) * 3)
    assert [type(event).__name__ for event in drain(parser)] == ["Request", "Data", "EndOfMessage"] * 3 + ["_Sentinel"]


def test_default_chunk_framing_limit():
    """1 MiB: 209,715 one-byte chunks fit with the last chunk line, one more does not."""
    fits = (Limits().chunk_framing - 3) // 5
    for count, status in ((fits, None), (fits + 1, 413)):
        data = CHUNKED_HEAD + b"1\r\nx\r\n" * count + b"0\r\n\r\n"
        assert status_of(data) == status


def test_trailer_section_still_arriving_refused_at_the_head_limit():
    """A trailer section that never ends is refused once it fills the head limit, whatever the reads."""
    start = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    for step in (1, 2, 64):
        parser = RequestParser(Limits(head=64))
        parser.feed(start)
        drain(parser)
        trailers = b"X: " + b"t" * 61
        for i in range(0, 63, step):  # 63 bytes and no end yet: it may still end within 64
            parser.feed(trailers[i:min(i + step, 63)])
            assert drain(parser)[-1] is NEED_DATA
        parser.feed(trailers[63:64])
        with pytest.raises(ProtocolError) as caught:
            drain(parser)
        assert caught.value.status == 431


@pytest.mark.parametrize("partial, status", [(b"GET / HTTP/2.0\r\nHo", 505), (b"\x16\x03", 400),
                                             (b"GET /" + b"a" * 8200, 414), (b"GET\x00", 400)])
def test_what_is_known_of_an_arriving_head_is_forgotten_when_it_repeats_the_last(partial, status):
    """A head that arrives in pieces and then turns out to repeat the last head leaves nothing of
    its partial checks behind: the next head arriving in pieces is checked from its start."""
    parser = RequestParser()
    head = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    parse_all(parser, head)
    assert parse_all(parser, head[:20]) == []  # its request-line checked, then
    assert [request.target for request in parse_all(parser, head[20:])] == [b"/a"]  # the repeated head
    with pytest.raises(ProtocolError) as caught:
        parse_all(parser, partial)
    assert caught.value.status == status
