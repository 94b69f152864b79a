"""HTTP/1.1 over raw sockets against the real `prefork` command (one worker, built-in site).

Every strictness rule of issue 2 is answered by the server with its status, the connection is
then closed (recv returns b"" after the response), and the server keeps serving. Then the
happy paths: pipelining, a request byte by byte, chunked bodies, keep-alive, HTTP/1.0,
100-continue, HEAD, Connection: close, Date/Server, 404/405 and the idle keep-alive timeout.
The parser's own unit, corpus and property tests live in tests/test_parser_*.py.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from support.client import connect, read_response, recv_until_closed
from support.server import Server

pytestmark = pytest.mark.timeout(60)

MAX_BODY = 1000  # --max-body-size of the `small` server
KEEPALIVE = 0.5  # --keepalive of the `small` server


@pytest.fixture(scope="module")
def port():
    """One worker with the default limits, shared by the tests of this module."""
    server = Server(["-w", "1", "-b", "127.0.0.1:0"])
    yield server.port
    server.stop()


@pytest.fixture(scope="module")
def small():
    """One worker with a small body limit and a short keep-alive timeout."""
    server = Server(["-w", "1", "-b", "127.0.0.1:0", "--max-body-size", str(MAX_BODY),
                     "--keepalive", str(KEEPALIVE)])
    yield server
    server.stop()


def assert_serving(port: int) -> None:
    """A good request on a new connection succeeds."""
    with connect(port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"Hello, World!")


def assert_rejected(port: int, raw: bytes, status: int) -> None:
    """raw gets `status` with Connection: close, the connection closes, the server serves on."""
    with connect(port) as sock:
        sock.sendall(raw)
        buf = bytearray()
        got, headers, _ = read_response(sock, buf)
        assert got == status, (raw[:200], got)
        assert headers.get("connection") == "close"
        assert not buf, f"bytes after the error response: {bytes(buf)!r}"
        assert recv_until_closed(sock) == b"", "the connection must close after a rejection"
    assert_serving(port)


GOOD_HEAD = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n"

REJECTIONS = {
    # framing
    "cl-and-te": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-and-cl": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400),
    "te-gzip": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501),
    "te-chunked-then-gzip": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
    "te-identity": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n", 501),
    "te-repeated": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-chunked-twice": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                         b"0\r\n\r\n", 400),
    "te-http10": (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "cl-repeated-equal": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    "cl-repeated-different": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    "cl-list": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    "cl-list-nospace": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3,3\r\n\r\nabc", 400),
    "cl-plus": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400),
    "cl-minus": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -3\r\n\r\nabc", 400),
    "cl-hex": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc", 400),
    "cl-underscore": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1_0\r\n\r\n0123456789", 400),
    "cl-inner-space": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1 0\r\n\r\n0123456789", 400),
    "cl-empty": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", 400),
    "cl-overflow": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    # chunk sizes
    "chunk-size-not-hex": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-0x": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0x3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-signed": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"+3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-leading-space": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b" 3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-underscore": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n", 400),
    "chunk-size-overflow": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"1" + b"0" * 16 + b"\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-empty": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-data-too-long": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nabcd\r\n0\r\n\r\n", 400),
    # characters
    "bare-cr-request-line": (b"GET /pl\raintext HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "bare-lf-request-line": (b"GET /plaintext HTTP/1.1\nHost: t\r\n\r\n", 400),
    "bare-cr-header": (b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400),
    "bare-lf-header": (b"GET /plaintext HTTP/1.1\r\nHost: t\nX-A: a\r\n\r\n", 400),
    "bare-lf-end-of-head": (b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\n", 400),
    "nul-request-line": (b"GET /plain\x00text HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "nul-header-value": (GOOD_HEAD + b"X-A: a\x00b\r\n\r\n", 400),
    "nul-header-name": (GOOD_HEAD + b"X-\x00A: ab\r\n\r\n", 400),
    "control-header-value": (GOOD_HEAD + b"X-A: a\x01b\r\n\r\n", 400),
    "escape-header-value": (GOOD_HEAD + b"X-A: a\x1bb\r\n\r\n", 400),
    "del-header-value": (GOOD_HEAD + b"X-A: a\x7fb\r\n\r\n", 400),
    "control-in-method": (b"G\x01T /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "tab-in-target": (b"GET /plain\ttext HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "two-spaces-request-line": (b"GET  /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    # field syntax
    "space-before-colon": (b"GET /plaintext HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "tab-before-colon": (GOOD_HEAD + b"X-A\t: a\r\n\r\n", 400),
    "obs-fold-space": (GOOD_HEAD + b"X-A: a\r\n b\r\n\r\n", 400),
    "obs-fold-tab": (GOOD_HEAD + b"X-A: a\r\n\tb\r\n\r\n", 400),
    "no-colon": (GOOD_HEAD + b"X-A a\r\n\r\n", 400),
    "empty-field-name": (GOOD_HEAD + b": a\r\n\r\n", 400),
    # Host
    "no-host": (b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "two-hosts-equal": (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    # versions
    "http-2.0": (b"GET /plaintext HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "http-1.2": (b"GET /plaintext HTTP/1.2\r\nHost: t\r\n\r\n", 505),
    "http-3.0": (b"GET /plaintext HTTP/3.0\r\nHost: t\r\n\r\n", 505),
    "http-0.9-version": (b"GET /plaintext HTTP/0.9\r\nHost: t\r\n\r\n", 505),
    "version-lowercase": (b"GET /plaintext http/1.1\r\nHost: t\r\n\r\n", 400),
    # limits (defaults: 8190-byte request line, 100 fields, 8190-byte field, 64 KiB head)
    "request-line-8191": (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    "request-line-huge-unterminated": (b"GET /" + b"a" * 20000, 414),
    "101-headers": (GOOD_HEAD + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", 431),
    "field-8191": (GOOD_HEAD + b"X-Big: " + b"v" * 8190 + b"\r\n\r\n", 431),
    "head-over-64k": (GOOD_HEAD + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(20)) + b"\r\n", 431),
    "head-over-64k-unterminated": (GOOD_HEAD + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(20)), 431),
    "empty-lines-over-64k": (b"\r\n" * 40000, 431),
    # expectations we cannot meet
    "expect-unknown": (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na", 417),
}


@pytest.mark.parametrize("raw,status", list(REJECTIONS.values()), ids=list(REJECTIONS))
def test_rejected_with_status_then_closed(port, raw, status):
    assert_rejected(port, raw, status)


def test_limits_boundaries_are_accepted(port):
    """The largest request line, field count and field size within the limits are served, so
    the rejections above are about the limits and not about the shape of the requests."""
    line = b"GET /plaintext?" + b"a" * (8190 - len(b"GET /plaintext? HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 8190
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(99))  # + Host = 100 fields
    big_field = b"X-Big: " + b"v" * (8190 - len(b"X-Big: ")) + b"\r\n"
    for raw in (line + b"\r\nHost: t\r\n\r\n", GOOD_HEAD + fields + b"\r\n", GOOD_HEAD + big_field + b"\r\n"):
        with connect(port) as sock:
            sock.sendall(raw)
            status, _, body = read_response(sock)
        assert (status, body) == (200, b"Hello, World!")


def test_rejection_after_a_good_pipelined_request(port):
    """The good request before the bad one is answered, then the error, then the close."""
    with connect(port) as sock:
        sock.sendall(GOOD_HEAD + b"\r\n" + b"GET /plaintext HTTP/1.1\r\nHost : t\r\n\r\n")
        buf = bytearray()
        assert read_response(sock, buf)[0] == 200
        status, headers, _ = read_response(sock, buf)
        assert (status, headers["connection"]) == (400, "close")
        assert not buf and recv_until_closed(sock) == b""
    assert_serving(port)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_max_body_size_is_413(small, framing):
    over = b"x" * (MAX_BODY + 1)
    if framing == "content-length":
        raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(over) + over
    else:  # within the limit chunk by chunk, over it in total
        half = b"x" * (MAX_BODY // 2 + 1)
        raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (len(half), half) * 2 + b"0\r\n\r\n")
    assert_rejected(small.port, raw, 413)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_at_max_body_size_is_served(small, framing):
    body = bytes(range(256)) * (MAX_BODY // 256) + b"y" * (MAX_BODY % 256)
    assert len(body) == MAX_BODY
    if framing == "content-length":
        raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    else:
        raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (len(body), body) + b"0\r\n\r\n")
    with connect(small.port) as sock:
        sock.sendall(raw)
        status, _, echoed = read_response(sock)
    assert (status, echoed) == (200, body)


# -- happy paths ----------------------------------------------------------------------------------


def test_pipelining_ten_requests_in_one_send(port):
    requests, expected = [], []
    for i in range(10):
        kind = i % 3
        if kind == 0:
            requests.append(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
            expected.append(b"Hello, World!")
        elif kind == 1:
            requests.append(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n")
            expected.append(b'{"message":"Hello, World!"}')
        else:
            body = b"body number %d " % i * (i + 1)
            requests.append(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-%d\r\n"
                            b"Content-Length: %d\r\n\r\n" % (i, len(body)) + body)
            expected.append(body)
    with connect(port) as sock:
        sock.sendall(b"".join(requests))
        buf = bytearray()
        bodies = []
        for i in range(10):
            status, headers, body = read_response(sock, buf)
            assert status == 200 and "connection" not in headers
            if i % 3 == 2:
                assert headers["content-type"] == f"text/x-{i}"
            bodies.append(body)
        assert bodies == expected
        assert not buf  # nothing more than the ten responses
        # The connection is still usable afterwards.
        sock.sendall(GOOD_HEAD + b"\r\n")
        assert read_response(sock, buf)[2] == b"Hello, World!"


def test_request_sent_one_byte_at_a_time(port):
    raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 11\r\n\r\nhello world")
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            sock.send(raw[i:i + 1])
        status, headers, body = read_response(sock)
    assert (status, body, headers["content-type"]) == (200, b"hello world", "text/plain")


def test_chunked_body_one_byte_at_a_time(port):
    raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            sock.send(raw[i:i + 1])
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"hello world")


def test_chunked_body_with_extensions_and_trailers(port):
    raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-c\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n"
           b"4;name=value\r\nWiki\r\n"
           b"5 ; quoted=\"a \\\" b\";flag\r\npedia\r\n"
           b"E\r\n in\r\n\r\nchunks.\r\n"
           b"000\r\n"
           b"X-Checksum: abc\r\nX-Other: d e\r\n\r\n")
    with connect(port) as sock:
        sock.sendall(raw + GOOD_HEAD + b"\r\n")  # a pipelined request after the trailers
        buf = bytearray()
        status, headers, body = read_response(sock, buf)
        assert (status, body) == (200, b"Wikipedia in\r\n\r\nchunks.")
        assert headers["content-type"] == "application/x-c"
        assert read_response(sock, buf)[2] == b"Hello, World!"


def test_keep_alive_reuses_the_connection(port):
    with connect(port) as sock:
        local = sock.getsockname()
        buf = bytearray()
        for i in range(5):
            body = b"request %d" % i
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            status, headers, echoed = read_response(sock, buf)
            assert (status, echoed) == (200, body)
            assert "connection" not in headers
            assert sock.getsockname() == local
        assert not buf


def test_http10_closes_by_default(port):
    with connect(port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.0\r\n\r\n")
        buf = bytearray()
        status, headers, body = read_response(sock, buf)
        assert (status, body, headers["connection"]) == (200, b"Hello, World!", "close")
        assert not buf and recv_until_closed(sock) == b""


def test_http10_keep_alive_when_asked(port):
    with connect(port) as sock:
        buf = bytearray()
        for _ in range(3):
            sock.sendall(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = read_response(sock, buf)
            assert (status, body) == (200, b"Hello, World!")
            # An HTTP/1.0 client (ab -k) keeps the connection only when the response says so.
            assert headers["connection"].lower() == "keep-alive"
        sock.sendall(b"GET /json HTTP/1.0\r\n\r\n")  # without it: this one closes
        status, headers, _ = read_response(sock, buf)
        assert (status, headers["connection"]) == (200, "close")
        assert recv_until_closed(sock) == b""


def test_expect_100_continue(port):
    with connect(port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        buf = bytearray()
        while b"\r\n\r\n" not in buf:  # the interim answer comes before we send the body
            data = sock.recv(65536)
            assert data, "closed before 100 Continue"
            buf.extend(data)
        interim, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue" and rest == b""
        sock.sendall(b"hello")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"hello")


def test_no_100_continue_without_expect(port):
    with connect(port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        buf = bytearray()
        while not buf.endswith(b"hello"):
            data = sock.recv(65536)
            assert data
            buf.extend(data)
    assert buf.startswith(b"HTTP/1.1 200 ") and buf.count(b"HTTP/1.1") == 1


def test_expect_100_continue_with_a_body_too_large_gets_413_without_100(small):
    with connect(small.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                     % (MAX_BODY + 1))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            assert data
            buf.extend(data)
        assert buf.startswith(b"HTTP/1.1 413 ")
        status, headers, _ = read_response(sock, buf)
        assert (status, headers["connection"]) == (413, "close")
        assert recv_until_closed(sock) == b""


def test_empty_lines_before_the_request_line_are_ignored(port):
    """RFC 9112 2.2, whether they come with the request, alone, or byte by byte."""
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        sock.sendall(b"\r\n\r\n" + GOOD_HEAD + b"\r\n")
        assert read_response(sock, buf)[2] == b"Hello, World!"
        sock.sendall(b"\r\n")
        sock.sendall(b"\r\n")
        sock.sendall(GOOD_HEAD + b"\r\n")
        assert read_response(sock, buf)[2] == b"Hello, World!"
        for byte in b"\r\n\r\n" + GOOD_HEAD + b"\r\n":
            sock.send(bytes([byte]))
        assert read_response(sock, buf)[2] == b"Hello, World!"
        assert not buf


def test_head_has_length_but_no_body(port):
    with connect(port) as sock:
        sock.sendall(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" + b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = bytearray()
        while buf.count(b"\r\n\r\n") < 2 or not buf.endswith(b"}"):
            data = sock.recv(65536)
            assert data
            buf.extend(data)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert re.search(rb"(?i)\r\ncontent-length: 13\r\n", head + b"\r\n")
    assert rest.startswith(b"HTTP/1.1 200 "), "the next response must follow the HEAD head directly"
    assert rest.endswith(b'\r\n\r\n{"message":"Hello, World!"}')


def test_connection_close_is_honoured(port):
    with connect(port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        buf = bytearray()
        status, headers, body = read_response(sock, buf)
        assert (status, body, headers["connection"]) == (200, b"Hello, World!", "close")
        assert not buf and recv_until_closed(sock) == b""


def test_connection_close_stops_the_pipeline(port):
    with connect(port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GOOD_HEAD + b"\r\n")
        buf = bytearray()
        assert read_response(sock, buf)[0] == 200
        assert not buf and recv_until_closed(sock) == b""


def test_date_and_server_headers(port):
    with connect(port) as sock:
        sock.sendall(GOOD_HEAD + b"\r\n")
        _, headers, _ = read_response(sock)
    assert headers["server"] == "prefork"
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", headers["date"])
    from email.utils import parsedate_to_datetime

    assert abs(parsedate_to_datetime(headers["date"]).timestamp() - time.time()) < 5


def test_error_responses_carry_date_and_server(port):
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        status, headers, _ = read_response(sock)
    assert status == 400 and headers["server"] == "prefork" and headers["date"].endswith("GMT")


def test_unknown_route_is_404_and_post_plaintext_is_405(port):
    with connect(port) as sock:
        buf = bytearray()
        sock.sendall(b"GET /no/such/route HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock, buf)[0] == 404
        sock.sendall(b"POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        status, headers, _ = read_response(sock, buf)
        assert status == 405 and "GET" in headers["allow"]
        sock.sendall(GOOD_HEAD + b"\r\n")  # errors of the app keep the connection
        assert read_response(sock, buf)[2] == b"Hello, World!"


def test_idle_keep_alive_closes_after_keepalive(small):
    with connect(small.port) as sock:
        sock.sendall(GOOD_HEAD + b"\r\n")
        assert read_response(sock)[0] == 200
        answered = time.monotonic()
        sock.settimeout(KEEPALIVE + 10)
        assert recv_until_closed(sock) == b""
        idle = time.monotonic() - answered
    assert KEEPALIVE * 0.8 <= idle < KEEPALIVE + 3, idle


def test_keep_alive_timer_restarts_with_each_request(small):
    """A connection used more often than the keepalive timeout stays open."""
    with connect(small.port) as sock:
        buf = bytearray()
        start = time.monotonic()
        while time.monotonic() - start < KEEPALIVE * 3:
            sock.sendall(GOOD_HEAD + b"\r\n")
            assert read_response(sock, buf)[0] == 200
            # Wait a fraction of the keepalive timeout with the socket (not a sleep): the
            # server must not close it meanwhile.
            sock.settimeout(KEEPALIVE / 4)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            sock.settimeout(10)


def test_blank_line_after_a_body_then_idle_closes_quietly(start_server):
    """A legacy client's CRLF after its body starts no head: at header_timeout (which such empty
    lines do not extend) the connection closes without a 408, as nginx does."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--keepalive", "0.5", "--header-timeout", "1")
    sock = connect(server.port)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n")
    status, _, body = read_response(sock)
    assert (status, body) == (200, b"hi")
    started = time.monotonic()
    assert recv_until_closed(sock) == b""  # closed, and no 408 sent
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("request_head", [
    b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
])
def test_keepalive_0_says_connection_close_and_closes(start_server, request_head):
    """keepalive = 0 means no persistent connections: every response says Connection: close
    and the connection closes after it, the pipelined request behind it unanswered (as gunicorn
    does); a client or a proxy told nothing would reuse a connection that is closing."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--keep-alive", "0")
    sock = connect(server.port)
    sock.sendall(request_head + b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
    buf = bytearray()
    status, headers, _ = read_response(sock, buf)
    assert status == 200 and headers.get("connection") == "close", headers
    assert bytes(buf) + recv_until_closed(sock) == b""
