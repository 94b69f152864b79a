"""Property tests of the request parser (hypothesis).

1. A stream of valid pipelined requests -- Content-Length and chunked bodies, chunk extensions,
   trailers, optional whitespace, empty lines between requests -- parses to the messages it was
   built from, and to the same messages however the bytes are split across feeds.
2. Random bytes, and random mutations of valid streams, raise nothing but ProtocolError, and the
   verdict (the messages before it, and whether it is an error) does not depend on the split.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefork.http import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Request, RequestParser

# Every test runs once per request parser (python, httptools): see each_parser in conftest.py.
pytestmark = pytest.mark.usefixtures("each_parser")

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FRAMING = {b"content-length", b"transfer-encoding", b"host", b"connection", b"expect"}
SMALL = Limits(request_line=64, fields=6, field_size=64, head=256, body=64, chunk_line=32)

tokens = st.text(TCHAR, min_size=1, max_size=10).map(str.encode)
ows = st.sampled_from([b"", b"", b" ", b"\t", b"  ", b" \t "])
field_word = st.binary(min_size=1, max_size=8).map(
    lambda b: bytes(c if 0x21 <= c <= 0x7e or c >= 0x80 else 0x61 for c in b))  # field-vchar
field_values = st.lists(st.tuples(field_word, st.sampled_from([b" ", b"\t", b"  "])), max_size=3).map(
    lambda words: b"".join(word + sep for word, sep in words).rstrip(b" \t"))
field_names = tokens.filter(lambda name: name.lower() not in FRAMING)
quoted = st.binary(max_size=6).map(
    lambda b: b'"' + b"".join(b"\\" + bytes([c]) if c in b'"\\' else bytes([c])
                              for c in (x if 0x20 <= x <= 0x7e else 0x61 for x in b)) + b'"')
chunk_ext = st.lists(st.tuples(ows, tokens, st.none() | tokens | quoted, ows), max_size=2).map(
    lambda exts: b"".join(bws1 + b";" + bws2 + name + (b"" if value is None else b"=" + value)
                          for bws1, name, value, bws2 in exts))


def hex_size(n: int, upper: bool, zeros: int) -> bytes:
    return b"0" * zeros + (b"%X" if upper else b"%x") % n


@st.composite
def fields(draw):
    """Raw field lines and what the parser should report for them."""
    raw, expected = b"", []
    for name, value in draw(st.lists(st.tuples(field_names, field_values), max_size=4)):
        raw += name + b":" + draw(ows) + value + draw(ows) + b"\r\n"
        expected.append((name.lower(), value))
    return raw, expected


@st.composite
def requests(draw, last: bool):
    """One valid request: (its bytes, the message the parser should report, whether it closes)."""
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH"]) | tokens)
    target = b"/" + draw(st.text("".join(map(chr, range(0x21, 0x7f))), max_size=15)).encode()
    raw, headers = draw(fields())
    if version == b"1.1" or draw(st.booleans()):
        host = draw(st.sampled_from([b"example.com", b"a:8080", b""]))
        raw = b"Host: " + host + b"\r\n" + raw
        headers.insert(0, (b"host", host))
    closes = last and draw(st.booleans())
    if closes and (version == b"1.1" or draw(st.booleans())):
        raw += b"Connection: close\r\n"
        headers.append((b"connection", b"close"))
    elif not closes and version == b"1.0":
        raw += b"Connection: keep-alive\r\n"
        headers.append((b"connection", b"keep-alive"))
    kind = draw(st.sampled_from(["none", "length", "chunked"] if version == b"1.1" else ["none", "length"]))
    body, trailers, tail = b"", [], b""
    if kind == "length":
        body = draw(st.binary(max_size=40))
        value = b"0" * draw(st.integers(0, 2)) + b"%d" % len(body)
        raw += b"Content-Length:" + draw(ows) + value + draw(ows) + b"\r\n"
        headers.append((b"content-length", value))
        tail = body
    elif kind == "chunked":
        raw += b"Transfer-Encoding:" + draw(ows) + b"chunked\r\n"
        headers.append((b"transfer-encoding", b"chunked"))
        for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
            size = hex_size(len(chunk), draw(st.booleans()), draw(st.integers(0, 2)))
            tail += size + draw(chunk_ext) + b"\r\n" + chunk + b"\r\n"
            body += chunk
        trailer_raw, trailers = draw(fields())
        tail += b"0" * draw(st.integers(1, 3)) + draw(chunk_ext) + b"\r\n" + trailer_raw + b"\r\n"
    data = draw(st.sampled_from([b"", b"", b"\r\n"])) + method + b" " + target + b" HTTP/" + version + b"\r\n"
    data += raw + b"\r\n" + tail
    message = (method, target, version, headers, body, trailers if kind == "chunked" else ())
    return data, message, closes


@st.composite
def streams(draw):
    """Several pipelined requests: (bytes, the expected messages, the final NEED_DATA or CLOSED)."""
    count = draw(st.integers(1, 4))
    data, messages, closes = b"", [], False
    for i in range(count):
        raw, message, closes = draw(requests(last=i == count - 1))
        data += raw
        messages.append(message)
    return data, messages, CLOSED if closes else NEED_DATA


def split(draw, data: bytes) -> list[bytes]:
    if draw(st.integers(0, 9)) == 0:
        return [data[i:i + 1] for i in range(len(data))] or [b""]
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def run(pieces: list[bytes], limits: Limits = Limits()):
    """Feed the pieces, draining events after each. Returns (messages, end) where messages are
    (method, target, version, headers, body, trailers) and end is NEED_DATA, CLOSED or the status of
    the ProtocolError. Anything else raised fails the test."""
    parser = RequestParser(limits)
    messages, end = [], None
    try:
        for piece in pieces:
            parser.feed(piece)
            for _ in range(10_000):
                event = parser.next_event()
                if event is NEED_DATA or event is CLOSED:
                    end = event
                    break
                if isinstance(event, Request):
                    messages.append([event.method, event.target, event.version, list(event.headers), b"", ()])
                elif isinstance(event, Data):
                    assert event.data
                    messages[-1][4] += event.data
                else:
                    assert isinstance(event, EndOfMessage)
                    messages[-1][5] = tuple(event.trailers)
            else:
                raise AssertionError("next_event() never asked for data")
    except ProtocolError as exc:
        assert isinstance(exc.status, int) and 400 <= exc.status <= 599
        end = exc.status
    return [tuple(message) for message in messages], end


@FAST
@given(streams(), st.data())
def test_valid_stream_parses_the_same_however_split(stream, data):
    raw, expected, end = stream
    expected = [(m[0], m[1], m[2], m[3], m[4], tuple(m[5])) for m in expected]
    assert run([raw]) == (expected, end)
    assert run(split(data.draw, raw)) == (expected, end)


INTERESTING = b"\r\n \t:;=\",\\0aAfFzZ-\x00\x01\x7f\x80\xff"
noise = st.binary(max_size=200) | st.lists(st.sampled_from(INTERESTING), max_size=200).map(bytes)
prefixes = st.sampled_from([
    b"",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
])
limits = st.sampled_from([Limits(), SMALL])


def check_verdict(raw: bytes, pieces: list[bytes], limit: Limits):
    whole = run([raw], limit)
    parts = run(pieces, limit)
    assert parts[0] == whole[0]  # the same messages before any error
    assert isinstance(parts[1], int) == isinstance(whole[1], int)  # and the same verdict
    if not isinstance(whole[1], int):
        assert parts[1] is whole[1]


@FAST
@given(prefixes, noise, limits, st.data())
def test_random_bytes_raise_only_protocol_error(prefix, tail, limit, data):
    raw = prefix + tail
    check_verdict(raw, split(data.draw, raw), limit)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["replace", "insert", "delete", "repeat"]),
                               st.integers(0, 10_000), st.sampled_from(INTERESTING) | st.integers(0, 255)),
                     min_size=1, max_size=4)


def mutate(raw: bytes, mutations) -> bytes:
    data = bytearray(raw)
    for op, at, byte in mutations:
        at %= len(data) + 1
        if op == "insert" or not data:
            data[at:at] = bytes([byte])
        elif op == "replace":
            data[min(at, len(data) - 1)] = byte
        elif op == "delete":
            del data[min(at, len(data) - 1)]
        else:
            data[at:at] = data[at:at + byte % 16]
    return bytes(data)


@FAST
@given(streams(), MUTATIONS, limits, st.data())
def test_mutated_streams_raise_only_protocol_error(stream, mutations, limit, data):
    raw = mutate(stream[0], mutations)
    check_verdict(raw, split(data.draw, raw), limit)
