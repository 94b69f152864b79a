"""Fuzzing the request parser (hypothesis), beyond tests/test_parser_properties.py.

That file covers valid pipelined streams and random or mutated bytes in general. This one aims
at the rules added since, with an oracle for each where there is one:

- Host values built from the URI grammar's pieces, valid and broken: the verdict matches a
  reference check written apart from the parser's pattern (character by character).
- Request targets in every form (origin, absolute with any scheme and authority, authority,
  asterisk, none): the origin form and host the parser reports match the oracle.
- Chunked bodies of runs of equal small chunks, or of tiny chunks of changing sizes (the
  parser's two fast paths), sizes spelled with upper or lower hex and leading zeros,
  extensions, trailers, under small body and framing limits: the data, or a 413 exactly when
  a limit is crossed.
- Numbers with huge digit counts: Content-Length and chunk sizes with thousands of leading
  zeros (valid) or too many significant digits (400).
- Mutations of valid streams -- bit flips, insertions of CR, LF, NUL and bytes above 0x7f,
  truncations, duplicated framing fields -- where a duplicated Content-Length,
  Transfer-Encoding or Host is always a 400.

Everywhere: nothing but ProtocolError or events comes out, and the verdict (the messages before
it, and whether it is an error) is the same whole, in random pieces and one byte at a time.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from prefork.http import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Request, RequestParser

# Every test runs once per request parser (python, httptools): see each_parser in conftest.py.
pytestmark = pytest.mark.usefixtures("each_parser")

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


def run(pieces: list[bytes], limits: Limits):
    """Feed the pieces, draining events after each. Returns (messages, end): messages are
    [method, target, headers, body, trailers] and end is NEED_DATA, CLOSED or the error's status.
    Any other exception fails the test."""
    parser = RequestParser(limits)
    messages, end = [], None
    try:
        for piece in pieces:
            parser.feed(piece)
            for _ in range(100_000):
                event = parser.next_event()
                if event is NEED_DATA or event is CLOSED:
                    end = event
                    break
                if isinstance(event, Request):
                    assert type(event.target) is bytes and all(
                        type(name) is bytes and type(value) is bytes for name, value in event.headers)
                    messages.append([event.method, event.target, list(event.headers), b"", ()])
                elif isinstance(event, Data):
                    assert type(event.data) is bytes and event.data
                    messages[-1][3] += event.data
                else:
                    assert isinstance(event, EndOfMessage)
                    messages[-1][4] = tuple(event.trailers)
            else:
                raise AssertionError("next_event() never asked for data")
    except ProtocolError as exc:
        assert isinstance(exc.status, int) and 400 <= exc.status <= 599
        end = exc.status
    return messages, end


def random_split(draw, data: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=16))))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def verdict(data: bytes, draw, limits: Limits = Limits()):
    """The outcome of data fed whole, after checking that random pieces and single bytes give the
    same messages and the same kind of end."""
    whole = run([data], limits)
    for pieces in (random_split(draw, data), [data[i:i + 1] for i in range(len(data))] or [b""]):
        parts = run(pieces, limits)
        assert parts[0] == whole[0], "different messages when split"
        assert isinstance(parts[1], int) == isinstance(whole[1], int), (parts[1], whole[1])
        if not isinstance(whole[1], int):
            assert parts[1] is whole[1]
    return whole


# -- Host --------------------------------------------------------------------------------------

REG_NAME_CHARS = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~!$&'()*+,;=")
HEX = set(b"0123456789abcdefABCDEF")


def host_ok(host: bytes) -> bool:
    """The reference: RFC 9112 3.2 uri-host [ ":" port ], read by hand, with reg-name labels
    non-empty but for a final dot."""
    if host.startswith(b"["):
        close = host.find(b"]")
        if close < 0:
            return False
        inside, rest = host[1:close], host[close + 1:]
        if inside[:1] in (b"v", b"V"):
            version, dot, tail = inside[1:].partition(b".")
            ok = bool(version) and set(version) <= HEX and dot and tail and set(tail) <= REG_NAME_CHARS | set(b".:")
        else:
            ok = bool(inside) and set(inside) <= HEX | set(b":.")
    else:
        colon = host.find(b":")
        name, rest = (host, b"") if colon < 0 else (host[:colon], host[colon:])
        labels = name.split(b".")
        if len(labels) > 1 and labels[-1] == b"":
            labels.pop()  # a final dot
        ok = True
        for label in labels:
            if not label:
                ok = False
            i = 0
            while i < len(label):
                if label[i] == 0x25:  # pct-encoded
                    ok = ok and len(label) >= i + 3 and label[i + 1] in HEX and label[i + 2] in HEX
                    i += 3
                else:
                    ok = ok and label[i] in REG_NAME_CHARS
                    i += 1
    if not ok:
        return False
    return rest == b"" or (rest[:1] == b":" and all(0x30 <= byte <= 0x39 for byte in rest[1:]))


host_piece = st.sampled_from([b"a", b"example", b"com", b"xn--p1ai", b"127", b"0", b"-", b"_", b"~", b"%41", b"%4",
                              b"%zz", b"!", b"$&'()*+,;=", b".", b"..", b":", b":80", b":8080", b":x", b"[", b"]",
                              b"[::1]", b"[v1.x]", b"[", b"::", b"@", b"/", b"?", b"#", b" ", b"\t", b'"', b"\\",
                              b"\x80", b"\xff", b"\xc3\xa9", b"|", b"<", b"A", b"Z"])
hosts = st.lists(host_piece, max_size=6).map(b"".join)


@FUZZ
@given(hosts, st.sampled_from([b"1.1", b"1.0"]), st.data())
def test_host_values(host, version, data):
    raw = b"GET / HTTP/" + version + b"\r\nHost: " + host + b"\r\n\r\n"
    messages, end = verdict(raw, data.draw)
    value = host.strip(b" \t")
    if b"\t" in value.replace(b" ", b"") or any(byte < 0x20 or byte == 0x7f for byte in value if byte != 0x09):
        assert isinstance(end, int)  # not a field value at all
    elif not value or host_ok(value):
        event("valid host")
        assert end is (NEED_DATA if version == b"1.1" else CLOSED), (host, end)
        assert messages[0][2] == [(b"host", value)]
    else:
        event("invalid host")
        assert end == 400, (host, end)


# -- request targets ------------------------------------------------------------------------------

schemes = st.sampled_from([b"http", b"https", b"HTTP", b"hTtPs", b"http", b"https", b"ftp", b"ws", b"file", b"h",
                           b"1http", b""])
authorities = st.one_of(st.sampled_from([b"example.com", b"a:8080", b"[::1]:1", b"x.example.", b"127.0.0.1:80",
                                         b"", b":80", b"u@a", b"a..b"]), hosts)
paths = st.sampled_from([b"", b"/", b"/a/b", b"?q=1", b"/p?q", b"//x", b"/%2F", b"#f", b"/a#f"])


@FUZZ
@given(st.sampled_from([b"GET", b"GET", b"GET", b"POST", b"CONNECT", b"OPTIONS"]), schemes,
       st.sampled_from([b"://", b"://", b"://", b":/", b":"]),
       authorities, paths, st.sampled_from([True, True, True, False]), st.data())
def test_request_targets(method, scheme, separator, authority, path, absolute, data):
    target = scheme + separator + authority + path if absolute else (path or b"*")
    raw = method + b" " + target + b" HTTP/1.1\r\nHost: h.example\r\n\r\n"
    messages, end = verdict(raw, data.draw)
    if (not target or any(byte <= 0x20 or byte >= 0x7f for byte in target)):
        event("not visible ASCII")
        assert end == 400
        return
    if method == b"CONNECT" or target == b"*" or target.startswith(b"/"):
        event("left as it is")
        expected = (target, b"h.example")
    else:
        authority, rest = b"", b""
        if target.lower().startswith((b"http://", b"https://")):
            after = target.split(b"://", 1)[1]
            cut = min([at for at in map(after.find, (b"/", b"?", b"#")) if at >= 0] or [len(after)])
            authority, rest = after[:cut], after[cut:]
        if not (authority and not authority.startswith(b":") and host_ok(authority)):
            event("refused target")
            assert end == 400, (target, end, messages)
            return
        event("absolute-form")
        expected = (rest if rest.startswith(b"/") else b"/" + rest, authority)
    assert end is NEED_DATA, (target, end)
    assert (messages[0][1], messages[0][2]) == (expected[0], [(b"host", expected[1])])


# -- chunked bodies: runs of small chunks, limits, spellings -------------------------------------

CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
spellings = st.sampled_from([b"%x", b"%X", b"0%x", b"000%X"])
extensions = st.sampled_from([b"", b"", b"", b";a", b";a=b", b' ; a="q\\"x"'])
runs = st.one_of(
    st.lists(st.tuples(st.integers(1, 70), st.integers(1, 40), spellings, extensions), min_size=1, max_size=5),
    # tiny chunks of changing sizes, one each: the parser's other fast path
    st.lists(st.tuples(st.integers(1, 15), st.just(1), st.sampled_from([b"%x", b"%X"]), st.just(b"")),
             min_size=1, max_size=80))


slack = st.none() | st.integers(-40, 10)  # a limit near the body's total (None: far above it)


@FUZZ
@given(runs, st.sampled_from([b"", b"T: 1\r\n", b"A: b\r\nC: d\r\n"]), st.integers(0, 3), slack, slack, st.data())
def test_runs_of_small_chunks(chunk_runs, trailer, zeros, body_slack, framing_slack, data):
    chunks = []  # (size line, data)
    for size, count, spelling, extension in chunk_runs:
        for number in range(count):
            chunks.append((spelling % size + extension + b"\r\n",
                           bytes((size * 31 + number * 7 + i) % 256 for i in range(size))))
    last = b"0" * (zeros + 1) + b"\r\n"
    body = b"".join(chunk for _, chunk in chunks)
    framing = sum(len(line) + 2 for line, _ in chunks) + len(last)
    body_limit = len(body) + (1000 if body_slack is None else body_slack)
    framing_limit = framing + (1000 if framing_slack is None else framing_slack)
    # Which limit the body crosses first, as the parser meets the chunks.
    first_over, seen, framed = None, 0, 0
    for line, chunk in chunks:
        if seen + len(chunk) > body_limit or framed + len(line) > framing_limit:
            first_over = "size line"
        elif framed + len(line) + 2 > framing_limit:
            first_over = "crlf"
        if first_over:
            break
        seen += len(chunk)
        framed += len(line) + 2
    if first_over is None and framed + len(last) > framing_limit:
        first_over = "last chunk"
    wire = b"".join(line + chunk + b"\r\n" for line, chunk in chunks) + last + trailer + b"\r\n"
    limits = Limits(body=max(body_limit, 0), chunk_framing=max(framing_limit, 0))
    messages, end = verdict(CHUNKED + wire + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", data.draw, limits)
    event(f"limit crossed at the {first_over}" if first_over else "within the limits")
    if first_over is None:
        assert end is NEED_DATA, (end, framing, len(body))
        assert messages[0][3] == body and messages[1][1] == b"/"
        assert messages[0][4] == tuple((name.lower(), value) for name, value in
                                       re.findall(rb"([^:\r\n]+): ([^\r\n]*)\r\n", trailer))
    else:
        assert end == 413
        assert len(messages) == 1 and body.startswith(messages[0][3])


digits = st.integers(0, 5000)


@FUZZ
@given(digits, st.integers(1, 25), st.sampled_from(["length", "chunk"]), st.data())
def test_huge_digit_counts(zeros, significant, kind, data):
    number = b"1" + b"0" * (significant - 1)  # `significant` significant digits
    if kind == "length":
        raw = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"0" * zeros + number + b"\r\n\r\n")
        too_big = significant > 18  # the parser reads at most 18 significant digits
        over_limit = not too_big and int(number) > Limits(head=1 << 20).body
    else:
        raw = CHUNKED + b"0" * zeros + number + b"\r\n"
        too_big = significant > 16  # a chunk size fills 64 bits at most
        over_limit = not too_big and int(number, 16) > Limits(head=1 << 20).body
    limits = Limits(head=1 << 20, request_line=1 << 20, field_size=1 << 20, chunk_line=1 << 20)
    _, end = verdict(raw, data.draw, limits)
    if too_big:
        assert end == 400
    elif over_limit:
        assert end == 413
    else:
        assert end is NEED_DATA  # waiting for the body


# -- mutations -------------------------------------------------------------------------------------

VALID = [
    b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    b"GET http://example.com:81/x HTTP/1.1\r\nHost: e\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n1\r\nc\r\n3;x=y\r\ndef\r\n"
    b"0\r\nT: v\r\n\r\n",
    b"\r\n\r\nPUT /q HTTP/1.0\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
]
FRAMING_LINES = [b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Host: example.com\r\n",
                 b"Host: a\r\n", b"Host: e\r\n", b"Host: [::1]:8080\r\n"]
SPECIAL = [0x0d, 0x0a, 0x00, 0x80, 0xff, 0x20, 0x09, 0x3a]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(SPECIAL) | st.integers(0x80, 0xff)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def mutate(raw: bytes, mutations) -> bytes:
    data = bytearray(raw)
    for op, at, arg in mutations:
        at %= len(data) + 1
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << arg
        elif op == "insert":
            data[at:at] = bytes([arg])
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@FUZZ
@given(st.sampled_from(VALID), st.lists(mutation, min_size=1, max_size=4), st.data())
def test_mutated_requests(raw, mutations, data):
    verdict(mutate(raw, mutations), data.draw)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_duplicated_framing_fields_are_400(raw, data):
    present = [line for line in FRAMING_LINES if line in raw]
    line = data.draw(st.sampled_from(present))
    spelled = data.draw(st.sampled_from([line, line.lower(), line.upper().replace(b"\r\n", b"\r\n")]))
    at = raw.index(line) + len(line)
    if data.draw(st.booleans()):
        at = raw.index(b"\r\n", raw.index(b"HTTP/1.")) + 2  # right after the request-line
    duplicated = raw[:at] + spelled + raw[at:]
    messages, end = verdict(duplicated, data.draw)
    assert end == 400 and messages == []


# -- repeated heads (the parser's remembered head and field lines) ---------------------------------

POOL = [b"GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", b"GET /b HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        b"GET http://b.example/c HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        b"\r\nGET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"]
TAILS = [b"", b"GET / HTTP/2.0\r\nHo", b"\x16\x03\x01", b"GET\x00", b"GET /" + b"a" * 8200, b"\r\n\r\n\x01",
         b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", b"GET /a HTTP/1.1\r\nHost: a\r\n", b"GET /a HTTP/1.1\r\nHost: a\r\n x"]


@FUZZ
@given(st.lists(st.sampled_from(POOL), min_size=1, max_size=6), st.sampled_from(TAILS), st.data())
def test_repeated_heads_then_anything(heads, tail, data):
    """Whatever the remembered head and fields hold, the verdict on what follows is the same
    whole, in random pieces and bytewise, and the messages are those of a fresh parser each."""
    messages, end = verdict(b"".join(heads) + tail, data.draw)
    fresh = [run([head], Limits())[0][0] for head in heads]
    assert messages == fresh
