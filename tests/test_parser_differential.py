"""The two request parsers against each other (hypothesis): python (prefork/http/parser.py) and
httptools (prefork/http/llhttp_parser.py, heads parsed by llhttp).

Generated streams -- pipelined requests with Content-Length or chunked bodies, valid and broken
request-lines, field lines, framing fields, chunk framing and trailers, then mutated -- are cut at
random points and handed to both parsers as the connection hands them reads: `buf`/`pos` set
directly when nothing is left over, `feed()` otherwise, and after each read only a few events
asked for, as a connection busy with a response asks for none (pipelining). After every read and
every event both must agree on everything the connection can see: the event and all its fields,
the status of a ProtocolError, `buffered`, and the unparsed bytes `buf[pos:]` themselves.

Where they may deliberately differ, DIFFERENCES says so, with the reason, and the test accepts it.
It is empty: the httptools parser hands every head llhttp refuses, or accepts where our rules
differ, to the Python rules for the verdict (see its module docstring), so llhttp's own
strictness (its fixed list of methods, its pauses on CONNECT, Upgrade and PRI) never shows. Its
differences from llhttp itself are those of tests/test_llhttp_corpus.py, for both parsers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.parsers import REQUEST_PARSERS
from test_parser_properties import MUTATIONS, mutate
from prefork.http import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Request

pytestmark = pytest.mark.skipif("httptools" not in REQUEST_PARSERS, reason="httptools is not installed")



@dataclass(frozen=True)
class Difference:
    reason: str
    covers: Callable[[bytes], bool]  # the inputs on which the two may differ


DIFFERENCES: dict[str, Difference] = {}  # none: see the module's docstring

CHECKS = settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL = Limits(request_line=64, fields=6, field_size=64, head=256, body=64, chunk_line=32, chunk_framing=128)

# -- the bytes ------------------------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHAR, min_size=1, max_size=8).map(str.encode)


def mostly(valid, broken, one_in: int = 12):
    """valid, but one time in one_in something from broken (lists of bytes, or strategies)."""
    valid = valid if isinstance(valid, st.SearchStrategy) else st.sampled_from(valid)
    broken = broken if isinstance(broken, st.SearchStrategy) else st.sampled_from(broken)
    return st.sampled_from([True] * (one_in - 1) + [False]).flatmap(lambda fine: valid if fine else broken)


methods = mostly(st.sampled_from([b"GET", b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH",
                                  b"CONNECT", b"TRACE", b"MKCOLA", b"PROPFIND", b"M-SEARCH", b"SOURCE"]) | tokens,
                 [b"PRI", b"get", b"G(T", b"", b"\nGET", b"\rGET", b"GET\x00"])
targets = mostly(st.sampled_from([b"/", b"/a?b=c", b"/p/q#f", b"*", b"http://example.com:8080/x?y",
                                  b"HTTPS://a.example", b"example.com:443", b'/{}|\\^`"<>'])
                 | st.text("".join(map(chr, range(0x21, 0x7f))), max_size=12).map(lambda text: b"/" + text.encode()),
                 [b"http://a..b/", b"http://u@a/", b"ftp://a/x", b"a", b"?x", b"", b"/a b", b"/\xe9", b"/\x7f",
                  b"/a\tb", b"/\x00", b"*x", b"/" + b"a" * 70])
versions = mostly([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"],
                  [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/3.0", b"http/1.1", b"HTTP/1.10", b"HTTP/1",
                   b"RTSP/1.0", b"ICE/1.0", b""])
spaces = mostly([b" "], [b"  ", b"\t", b""], one_in=30)
line_ends = mostly([b"\r\n"], [b"\n", b"\r", b"\r\r\n", b" \r\n"], one_in=30)
ows = st.sampled_from([b"", b"", b" ", b" ", b"\t", b"  ", b" \t"])
words = mostly([b"value", b"text/html,*/*;q=0.8", b"gzip, deflate", b"D\xfcsseldorf", b"a\tb", b"x:y", b"", b'"q"',
                b"\xff"], [b"\x00", b"\x01", b"\x0b", b"\x0c", b"\x7f", b"a\rb", b"a\nb"], one_in=30)
field_names = mostly(st.sampled_from([b"Accept", b"User-Agent", b"Cookie", b"X-Thing", b"x-thing", b"Referer"])
                     | tokens, [b"", b"X Y", b"X@Y", b"X\x00", b"\xe9"], one_in=30)
hosts = mostly([b"example.com", b"a:8080", b"[::1]:80", b"", b"h"], [b"a..b", b"a b", b"caf\xc3\xa9", b"user@host"])
broken_lines = [b" folded", b"\tfolded", b"X : a", b"X\t: a", b"no colon", b": empty name"]
options = mostly([b"Connection: close", b"Connection: keep-alive", b"Connection: Keep-Alive, Upgrade",
                  b"Connection: upgrade", b"Upgrade: websocket", b"Expect: 100-continue", b"Content-Length: 0"],
                 [b"Connection: close;x", b"Expect: 101-dance", b"Content-Length: 5, 5", b"Content-Length: +5",
                  b"Content-Length:", b"Content-Length: 99999999999999999999", b"Content-Length: 70",
                  b"Transfer-Encoding: gzip", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: identity",
                  b"Transfer-Encoding: chunked, chunked", b"Host: again"], one_in=4)


@st.composite
def field_lines(draw) -> bytes:
    if not draw(st.sampled_from([True] * 40 + [False])):
        return draw(st.sampled_from(broken_lines))
    value = draw(ows).join(draw(st.lists(words, max_size=3)))
    return draw(field_names) + b":" + draw(ows) + value + draw(ows)


@st.composite
def chunked_body(draw) -> bytes:
    body = b""
    for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
        size = (b"%X" if draw(st.booleans()) else b"%x") % len(data)
        size = draw(mostly([b"0" * draw(st.integers(0, 2)) + size],
                           [b"0x5", b"+5", b" 5", b"5 ", b"g", b"", b"10000000000000000", b"2"], one_in=20))
        extension = draw(mostly([b"", b"", b"", b";a", b";a=b", b' ; a="q\\"x"'], [b";", b'; a="x'], one_in=20))
        body += size + extension + draw(line_ends) + data + draw(line_ends)
    trailers = b"".join(draw(field_lines()) + b"\r\n" for _ in range(draw(st.integers(0, 2))))
    return body + draw(st.sampled_from([b"0", b"000", b"0;x=y"])) + b"\r\n" + trailers + b"\r\n"


@st.composite
def requests(draw) -> bytes:
    """One request: mostly valid, and now and then broken in one of many ways."""
    line = draw(methods) + draw(spaces) + draw(targets) + draw(spaces) + draw(versions)
    fields = [draw(field_lines()) for _ in range(draw(st.integers(0, 6)))]
    fields += [draw(options) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.sampled_from([True] * 9 + [False])):  # mostly one Host, anywhere among the fields
        fields.insert(draw(st.integers(0, len(fields))), b"Host:" + draw(ows) + draw(hosts) + draw(ows))
    body = b""
    kind = draw(st.sampled_from(["none", "none", "length", "chunked"]))
    if kind == "length":
        body = draw(st.binary(max_size=20))
        fields.append(b"Content-Length: %d" % (len(body) + draw(mostly([0], [-1, 1, 100]))))
    elif kind == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        body = draw(chunked_body())
    draw(st.randoms()).shuffle(fields)
    head = draw(mostly([b""], [b"\r\n", b"\r\n\r\n", b"\n"], one_in=10)) + line + b"\r\n"
    return head + b"".join(field + draw(line_ends) for field in fields) + b"\r\n" + body


@st.composite
def streams(draw) -> bytes:
    """Pipelined requests; now and then mutated, or cut short (a client that stops mid-request)."""
    data = b"".join(draw(st.lists(requests(), min_size=1, max_size=4)))
    change = draw(st.sampled_from(["none", "none", "mutated", "cut short"]))
    if change == "mutated":
        return mutate(data, draw(MUTATIONS))
    return data[:draw(st.integers(0, len(data)))] if change == "cut short" else data


# -- one parser as the connection drives it -------------------------------------------------------


def seen(event) -> tuple:
    """All of an event the connection or an app can see."""
    if type(event) is Request:
        return ("Request", event.method, event.target, event.version, tuple(event.headers), event.keep_alive,
                event.expect_continue, event.content_length, event.chunked, event.has_body, event.header(b"host"))
    if type(event) is Data:
        assert type(event.data) is bytes and event.data
        return ("Data", event.data)
    if type(event) is EndOfMessage:
        return ("EndOfMessage", tuple(event.trailers))
    assert event is NEED_DATA or event is CLOSED, event
    return (repr(event),)


def trace(parser_class, reads: list[bytes], asks: list[int], limits: Limits) -> list:
    """What the connection sees: after each read, up to asks[i] events (0: it is busy with a
    response), then the rest of the events once reads are over; after each step, buffered and
    buf[pos:]."""
    parser = parser_class(limits)
    steps = []

    def state():
        assert parser.buffered == len(parser.buf) - parser.pos >= 0
        steps.append((parser.buffered, bytes(parser.buf[parser.pos:]), parser.pos == len(parser.buf)))

    def ask(count: int) -> bool:
        for _ in range(count):
            event = parser.next_event()
            steps.append(seen(event))
            state()
            if event is NEED_DATA or event is CLOSED:
                return event is NEED_DATA
        return True

    try:
        for data, count in zip(reads, asks):
            if parser.pos == len(parser.buf):
                parser.buf = data  # as HttpConnection.on_events does
                parser.pos = 0
            else:
                parser.feed(data)
            state()
            if not ask(count):
                return steps
        ask(10_000)
    except ProtocolError as exc:
        assert 400 <= exc.status <= 599
        steps.append(("ProtocolError", exc.status))
    return steps


@st.composite
def cuts(draw, data: bytes) -> list[bytes]:
    if draw(st.integers(0, 5)) == 0:
        return [data]
    points = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=8))))
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


def compare(data: bytes, draw, limits: Limits) -> None:
    reads = draw(cuts(data))
    asks = draw(st.lists(st.sampled_from([0, 1, 1, 2, 100]), min_size=len(reads), max_size=len(reads)))
    python = trace(REQUEST_PARSERS["python"], reads, asks, limits)
    for name in ("httptools", "httptools-lazy"):
        httptools = trace(REQUEST_PARSERS[name], reads, asks, limits)
        if httptools != python and not any(difference.covers(data) for difference in DIFFERENCES.values()):
            assert httptools == python  # (pytest shows the first step where they part)


@CHECKS
@given(streams(), st.sampled_from([Limits(), SMALL]), st.data())
def test_both_parsers_see_the_same(data, limits, draw):
    compare(data, draw.draw, limits)


# A browser-like head and its neighbours: what the httptools parser's fast path (one read, one
# head, or several) is for.
BROWSER = (b"GET /items/7?page=2 HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11)\r\n"
           b"Accept: text/html,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, br\r\n"
           b"Referer: https://shop.example.com/\r\nConnection: keep-alive\r\nCookie: s=1; t=dark\r\n"
           b"Upgrade-Insecure-Requests: 1\r\n\r\n")
NEIGHBOURS = [BROWSER, BROWSER.replace(b"/items/7", b"/items/8"), BROWSER.replace(b"GET", b"POST").replace(
    b"Cookie", b"Content-Length: 4\r\nCookie") + b"body", BROWSER.replace(b"keep-alive", b"close"),
    BROWSER.replace(b"HTTP/1.1", b"HTTP/1.0"), BROWSER.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"keep-alive", b"close"),
    BROWSER.replace(b"Connection: keep-alive\r\n", b"").replace(b"Host:", b"Connection: keep-alive\r\nHost:"),
    b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"MKCOLA /x HTTP/1.1\r\nHost: a\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", b"\r\n"]


@CHECKS
@given(st.lists(st.sampled_from(NEIGHBOURS), min_size=1, max_size=5), MUTATIONS, st.booleans(), st.data())
def test_browser_heads_one_read_each_or_pipelined(heads, changes, mutated, draw):
    data = b"".join(heads)
    if mutated:
        data = mutate(data, changes)
    compare(data, draw.draw, Limits())
    # one read per head, as a keep-alive connection without pipelining receives them
    python = trace(REQUEST_PARSERS["python"], heads, [100] * len(heads), Limits())
    assert trace(REQUEST_PARSERS["httptools"], heads, [100] * len(heads), Limits()) == python
    assert trace(REQUEST_PARSERS["httptools-lazy"], heads, [100] * len(heads), Limits()) == python
    assert not any(difference.covers(data) for difference in DIFFERENCES.values())  # (none applies here)



@pytest.mark.parametrize("head", [
    b"CONNECT \n.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",  # llhttp ends the line at the LF
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
])
@pytest.mark.parametrize("after", [b"", b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"])
def test_connect_and_upgrade_heads_get_the_python_verdict(head, after):
    """llhttp stops at a CONNECT or an Upgrade, having read the head by its rules for those (a
    bare LF ends a CONNECT's request-line, and the rest becomes a field): hypothesis found it
    accepting one the Python parser refuses. Alone, or after a head it remembered."""
    for reads in ([after + head], [after, head] if after else [head]):
        python = trace(REQUEST_PARSERS["python"], reads, [100] * len(reads), Limits())
        for name in ("httptools", "httptools-lazy"):
            assert trace(REQUEST_PARSERS[name], reads, [100] * len(reads), Limits()) == python, (name, reads)


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
@pytest.mark.parametrize("fields", [
    b"Host: known.example\r\nConnection: keep-alive\r\n",
    b"Connection: keep-alive\r\nHost: known.example\r\n",
    b"Connection: keep-alive\r\nConnection: keep-alive\r\n",
    b"Host: known.example\r\nHost: known.example\r\n",
    b"Host: known.example\r\nConnection: close\r\n",
    b"Host: known.example\r\nConnection: keep-alive \r\n",
    b"Host: known.example\r\nConnection: Keep-Alive\r\n",
    b"Host: new-{}.example\r\nConnection: keep-alive\r\n",
    b"Host: known.example\r\nExpect: 100-continue\r\n",
    b"Host: known.example\r\nConnection: keep-alive\r\nContent-Length: 0\r\n",
])
def test_browser_heads_with_connection_one_read_each(version, fields):
    # The fast path for Host beside "Connection: keep-alive" (what browsers send), and the heads
    # next to it that must leave it: the same events as the Python parser, read by read.
    fields = fields.replace(b"{}", str(id(fields)).encode())
    heads = [b"GET /%d HTTP/%s\r\nX-N: %d\r\n%s\r\n" % (n, version, n, fields) for n in range(3)]
    python = trace(REQUEST_PARSERS["python"], heads, [100] * len(heads), Limits())
    for name in ("httptools", "httptools-lazy"):
        if name in REQUEST_PARSERS:
            assert trace(REQUEST_PARSERS[name], heads, [100] * len(heads), Limits()) == python, name

def test_differences_have_reasons():
    assert all(difference.reason for difference in DIFFERENCES.values())
