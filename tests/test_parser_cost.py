"""The parser's CPU time is linear in the bytes it is fed, however they are split across reads.

A client chooses how its bytes arrive. Before, each read re-scanned and re-copied the whole
buffered head, and empty lines before a request were skipped one pair per pass: a 64 KB head sent
2 bytes at a time cost tens of seconds, a 16 KB run of CRLFs 14 s, a 1 MiB body in 1-byte chunks
3.4 s. These tests measure CPU time (time.process_time) and bound ratios, so that they hold on a
slow or busy machine:

- Linearity: the CPU time per byte of a 64 KB head in 2-byte pieces is at most 2.5 times that of
  an 8 KB head in 2-byte pieces (a quadratic parser makes it 8 times).
- The ratio to one piece: every piece is a feed() and a next_event(), Python calls that cost far
  more than the C scan of two bytes, so 32,768 pieces cannot cost near one feed of 64 KB (that is
  ~0.5 ms of C code). The bound is against the calls themselves: a head in 2-byte pieces costs at
  most 3 times a Content-Length body of the same size in 2-byte pieces (where each call just hands
  two bytes on; ~1.3x measured), and at most 400 times the same head in one piece (~90x
  measured; the 20x one might wish for is below what the calls alone cost).
- A CRLF flood, 64 KB of empty lines in 2-byte pieces: the same two bounds (~1.3x and ~140x).
- Chunked bodies: 1 MiB of data in 1-byte chunks (6 MiB on the wire, in 64 KiB reads as a
  connection receives them) costs at most 2,000 times the same data as one chunk (~600x measured,
  i.e. ~100x per byte on the wire: one chunk costs next to nothing, a few memcpy). And the
  framing bound (Limits.chunk_framing) refuses such a body with 413 at the default limits.
"""

from __future__ import annotations

import time

import pytest

from prefork.http import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Request, RequestParser

# Every test runs once per request parser (python, httptools): see each_parser in conftest.py.
pytestmark = pytest.mark.usefixtures("each_parser")

BIG = Limits(head=1 << 20, fields=10_000, field_size=1 << 20, chunk_framing=1 << 30)


def head_of(size: int) -> bytes:
    """A valid head of about `size` bytes: many 100-byte fields."""
    data = b"GET / HTTP/1.1\r\nHost: example.com\r\n"
    number = 0
    while len(data) < size - 120:
        data += b"X-Field-%d: %s\r\n" % (number, b"v" * 90)
        number += 1
    return data + b"\r\n"


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def parse(parts: list[bytes], limits: Limits = BIG) -> list:
    """Feed the parts, draining events after each; return the events (Data joined per message)."""
    parser = RequestParser(limits)
    events = []
    for part in parts:
        parser.feed(part)
        while True:
            event = parser.next_event()
            if event is NEED_DATA or event is CLOSED:
                break
            events.append(event)
    return events


def cpu(parts: list[bytes], limits: Limits = BIG, repeat: int = 1) -> float:
    """The least CPU time of `repeat` parses of the parts."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        parse(parts, limits)
        best = min(best, time.process_time() - started)
    return max(best, 1e-6)


def test_head_in_2_byte_pieces_costs_linear_time():
    big, small = head_of(65536), head_of(8192)
    (request,) = parse(pieces(big, 2))
    assert isinstance(request, Request) and len(request.headers) > 500
    in_pieces = cpu(pieces(big, 2), repeat=2)
    per_byte_big = in_pieces / len(big)
    per_byte_small = cpu(pieces(small, 2), repeat=3) / len(small)
    assert per_byte_big < 2.5 * per_byte_small, (per_byte_big, per_byte_small)
    body = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(big)
    calls = cpu([body] + pieces(b"x" * len(big), 2))
    whole = cpu([big], repeat=20)
    assert in_pieces < 3 * calls, (in_pieces, calls)
    assert in_pieces < 400 * whole, (in_pieces, whole)


def test_crlf_flood_in_2_byte_pieces_is_cheap():
    flood = b"\r\n" * 32768  # 64 KB of empty lines, within the head limit
    parser = RequestParser(Limits())
    for part in pieces(flood, 2):
        parser.feed(part)
        assert parser.next_event() is NEED_DATA
    in_pieces = cpu(pieces(flood, 2), Limits(), repeat=2)
    whole = cpu([flood], Limits(), repeat=20)
    calls = cpu([b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n"] + pieces(b"x" * 65536, 2))
    assert in_pieces < 3 * calls, (in_pieces, calls)
    assert in_pieces < 400 * whole, (in_pieces, whole)
    # A request after the flood still parses.
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(parser.next_event(), Request)


def test_more_empty_lines_than_a_head_may_hold_are_refused():
    for parts in ([b"\r\n" * 32769], pieces(b"\r\n" * 32769, 2)):
        with pytest.raises(ProtocolError) as caught:
            parse(parts, Limits())
        assert caught.value.status == 431


CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
MIB = 1 << 20


def body_of(events: list) -> bytes:
    assert isinstance(events[0], Request) and isinstance(events[-1], EndOfMessage)
    return b"".join(event.data for event in events[1:-1])


def test_one_byte_chunks_cost_linear_time():
    data = bytes(range(256)) * (MIB // 256)
    tiny = CHUNKED + b"".join(b"1\r\n%c\r\n" % byte for byte in data) + b"0\r\n\r\n"
    one = CHUNKED + b"%x\r\n" % MIB + data + b"\r\n0\r\n\r\n"
    events = parse(pieces(tiny, 65536))
    assert body_of(events) == data
    assert len(events) < 2 + 2 * len(tiny) // 65536  # one Data event per read, not per chunk
    assert body_of(parse(pieces(one, 65536))) == data
    tiny_cost = cpu(pieces(tiny, 65536), repeat=2)
    one_cost = cpu(pieces(one, 65536), repeat=20)
    assert tiny_cost < 2000 * one_cost, (tiny_cost, one_cost)
    # At the default limits, the framing bound refuses this body long before its end.
    with pytest.raises(ProtocolError) as caught:
        parse(pieces(tiny, 65536), Limits())
    assert caught.value.status == 413
