"""Microseconds per request head, parser level: the pure-Python parser, the llhttp parser, h11.

    python bench/parse.py [--count 20000] [--rounds 5]

Each head is bench/amplification.py's browser-like GET (9 fields, ~420 bytes) whose target,
Referer and Cookie change every time ("fresh"), one such head again and again ("repeated"), or
its field lines under a new target each time ("same fields"). A head is
handed to the parser as the connection hands it a read (`buf`, `pos`) and one `next_event()`
returns its Request; "one per connection" keeps one parser for all the heads, "new parser each"
builds one per head (a connection that serves one request). "Reuse switched off" forgets the
remembered head after each request (the parser's repeated-head reuse, see parser.py), to show
what it saves. The best of --rounds runs of each case, the cases taken in turn, in CPU time
(time.process_time: the machine is shared), divided by --count. No server, no sockets: this is
the parser alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from amplification import browser_head  # noqa: E402  (a script run as `python bench/parse.py`)

from prefork.http import Limits, Request, RequestParser  # noqa: E402

LIMITS = Limits()


def one_per_connection(parser_class, heads, forget=False):
    parser = parser_class(LIMITS)
    started = time.process_time()
    for head in heads:
        parser.buf = head  # what the connection does with a read when nothing is left over
        parser.pos = 0
        parser.next_event()
        if forget:  # the repeated-head reuse switched off (see --help)
            parser.last_head = parser.last_fields = None
    return time.process_time() - started


def new_parser_each(parser_class, heads, forget=False):
    started = time.process_time()
    for head in heads:
        parser = parser_class(LIMITS)
        parser.buf = head
        parser.pos = 0
        parser.next_event()
    return time.process_time() - started


def httptools_alone(heads):
    """llhttp through httptools with a field callback and nothing else: the floor of the llhttp parser."""
    import httptools

    class Fields:
        def on_header(self, name, value):
            fields.append((name.lower(), value))

    fields = []
    parser = httptools.HttpRequestParser(Fields())
    started = time.process_time()
    for head in heads:
        fields = []
        parser.feed_data(head)
    return time.process_time() - started


def h11_each(heads):
    import h11

    started = time.process_time()
    for head in heads:
        connection = h11.Connection(h11.SERVER)
        connection.receive_data(head)
        connection.next_event()
    return time.process_time() - started


def check(parser_class, head):
    parser = parser_class(LIMITS)
    parser.feed(head)
    request = parser.next_event()
    assert type(request) is Request and len(request.headers) == 9 and parser.buffered == 0, request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="heads per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs; the best counts")
    args = parser.parse_args()
    fresh = [browser_head(number) for number in range(1, args.count + 1)]
    repeated = [fresh[0]] * args.count
    fields = fresh[0][fresh[0].index(b"\r\n"):]  # the first head's field lines under new request-lines
    same_fields = [b"GET /items/%d?page=2 HTTP/1.1" % number + fields for number in range(1, args.count + 1)]
    parsers = [("python", RequestParser)]
    try:
        from prefork.http.llhttp_parser import LazyFieldsLlhttpRequestParser, LlhttpRequestParser
    except ImportError as exc:
        print(f"(httptools parser not available: {exc})")
    else:
        # the variant a WSGI app gets (a pair per field as llhttp parses), and the built-in site's
        # (field lines left unsplit until read)
        parsers += [("httptools", LlhttpRequestParser), ("httptools, fields unsplit", LazyFieldsLlhttpRequestParser)]
    cases = []
    for name, parser_class in parsers:
        check(parser_class, fresh[0])
        cases += [
            (f"{name}: fresh heads, one parser per connection", lambda c=parser_class: one_per_connection(c, fresh)),
            (f"{name}: fresh heads, new parser each", lambda c=parser_class: new_parser_each(c, fresh)),
            (f"{name}: repeated head, one parser per connection",
             lambda c=parser_class: one_per_connection(c, repeated)),
            (f"{name}: repeated head, reuse switched off",
             lambda c=parser_class: one_per_connection(c, repeated, forget=True)),
            (f"{name}: same fields, new target each, one parser per connection",
             lambda c=parser_class: one_per_connection(c, same_fields)),
            (f"{name}: fresh heads, reuse switched off",
             lambda c=parser_class: one_per_connection(c, fresh, forget=True)),
        ]
    try:
        import httptools  # noqa: F401
    except ImportError:
        pass
    else:
        cases.append(("httptools alone: feed_data + field callback, no Request", lambda: httptools_alone(fresh)))
    try:
        import h11  # noqa: F401
    except ImportError:
        print("(h11 not installed)")
    else:
        cases.append(("h11: fresh heads, new Connection each (Request only)", lambda: h11_each(fresh)))
    print(f"{len(fresh[0])}-byte heads, {args.count} per run, best of {args.rounds} (CPU time)")
    best = [float("inf")] * len(cases)
    for _ in range(args.rounds):  # the cases in turn, so that a busy moment of the machine hits all alike
        for number, (_, run) in enumerate(cases):
            best[number] = min(best[number], run())
    for (label, _), seconds in zip(cases, best):
        print(f"{seconds / args.count * 1e6:8.2f} us  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
