"""The llhttp request corpus as an external referee for the request parser.

`shared/conformance/llhttp/` (beside the repository; see its README.md) holds the request test
cases of llhttp, the parser of Node.js, each with the log of what llhttp made of the input. Every
request case becomes one test here: what llhttp rejects, we reject (ProtocolError); what llhttp
accepts, we accept with the same method, target, version, header fields, body, trailers, framing
(Content-Length / chunked) and persistence.

Where prefork deliberately differs -- it is a strict origin server, llhttp a general parser with
lenient modes and other protocols -- the difference is listed, with its reason, in DIFFERENCES
below, and the test asserts our behaviour instead of llhttp's. Nothing is skipped.

Every case runs against both request parsers, the pure-Python one and the one whose heads llhttp
itself parses (prefork/http/llhttp_parser.py), with this one table: the second hands every head
llhttp refuses, or accepts where our rules differ, to the Python rules, so prefork's differences
from llhttp are the same whichever parser runs (tests/test_parser_differential.py compares the
two directly).

Reading a case follows llhttp's own harness (test/md-test.ts): the ```http block's lines joined by
line breaks; a backslash at the end of a line joins it to the next; every line break becomes CRLF;
then the escapes \\r \\n \\t \\f \\xNN and octal \\NNN; the text is sent UTF-8 encoded (so `\\xff`
is the two bytes of U+00FF, as the logged span lengths confirm). The log's spans are byte ranges
of that input; each printed span is checked against the bytes it points at, so a misread input
fails loudly instead of testing the wrong bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from prefork.http import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Request, RequestParser


def find_corpus(repo: Path = Path(__file__).resolve().parents[1]) -> Path:
    """The corpus: shared/conformance/llhttp beside the repository (<repo>/../shared, as CI has
    it), else in the nearest parent of the repository that has one (a worktree at /work/wt/x
    finds /work/shared). None found fails the run, naming every path searched: a missing
    referee must not pass for a green run, nor hide as a skip."""
    searched = [parent / "shared/conformance/llhttp" for parent in repo.parents]
    for path in searched:
        if path.is_dir():
            return path
    pytest.fail("the llhttp corpus is missing; searched:\n  " + "\n  ".join(map(str, searched)), pytrace=False)


CORPUS = find_corpus()

# Every case runs once per request parser (python, httptools): see each_parser in conftest.py.
pytestmark = pytest.mark.usefixtures("each_parser")

HOST = b"llhttp.test"  # the Host line added to HTTP/1.1 requests that lack one (see the rule below)


# -- the deliberate differences ------------------------------------------------------------------


@dataclass(frozen=True)
class Rejects:
    """We answer ProtocolError(status) (status None: any), also once a Host line is added. With
    `then`, the input stops before its head ends: we wait (NEED_DATA) and reject once `then`
    completes the head, where llhttp rejected on the partial line."""

    status: int | None = None
    then: bytes = b""


@dataclass(frozen=True)
class Accepts:
    """We parse these messages -- (method, target, headers, body, complete) -- and then return
    `end`. With add_host, the input lacks Host: raw it is a 400, and the messages are those of the
    input with the Host line added."""

    messages: tuple
    end: str
    add_host: bool = False


@dataclass(frozen=True)
class ClosesAfter:
    """We parse llhttp's first `count` messages, then return CLOSED and read nothing more."""

    count: int


@dataclass(frozen=True)
class Difference:
    reason: str
    expect: Rejects | Accepts | ClosesAfter | None = None  # None: a rule, applied by the harness


_NO_HOST = b"host", HOST
_LENIENT_KEEP_ALIVE = ("RFC 9112 9.3/9.6: after a request that closes the connection (\"close\", or HTTP/1.0 "
                       "without keep-alive) a server reads no further request; llhttp goes on only because "
                       "its lenient keep-alive flag is set.")
_METHOD_TOKEN = ("RFC 9110 9.1 / RFC 9112 3.1: method = token and methods are extensible; an unknown method "
                 "is answered 501 by the application, it is not a parse error. llhttp knows a fixed list.")
_NOT_HTTP = ("RFC 9112 2.3: HTTP-version = \"HTTP/\" DIGIT \".\" DIGIT (HTTP-name is case-sensitive); RTSP and "
             "ICE are other protocols, which an HTTP/1.1 server does not speak: 400.")
_HEAD_END = ("llhttp rejects on the partial line; we decide field lines when the head is complete (RFC 9112 does "
             "not ask for earlier), and the input stops before the empty line: same verdict once the head ends.")

_ABSOLUTE_FORM = ("RFC 9112 3.2.2: an origin server takes the host from an absolute-form target and ignores Host; "
                  "prefork hands the application origin form (path and query, '/' if empty) with the authority as "
                  "the Host value. RFC 9112 3.2 still wants Host from an HTTP/1.1 client: the raw input is a 400.")

DIFFERENCES: dict[str, Difference] = {
    # Rules, applied wherever they match (the harness records which rule each case used).
    "rule: no Host": Difference(
        "RFC 9112 3.2 (and the issue): a server MUST answer 400 to an HTTP/1.1 request without Host; llhttp "
        "leaves that to the application. The raw input must give 400, and the same input with "
        "'Host: llhttp.test' added after each such request-line must parse exactly as llhttp parsed it."),
    "rule: data after close": Difference(
        "llhttp reports error 5 'Data after Connection: close'; we return CLOSED after that message and never "
        "parse the bytes (RFC 9112 9.6: no further request is processed on that connection). Same effect."),
    "rule: CONNECT/Upgrade pause": Difference(
        "llhttp pauses (error 22/23) to hand the connection to a tunnel or another protocol. prefork does "
        "neither: RFC 9110 7.8 lets a server ignore Upgrade, and an origin server that does not tunnel answers "
        "CONNECT as an ordinary request. The message parses the same; the bytes after it stay HTTP/1.1."),
    "rule: lenient flag": Difference(
        "The case runs llhttp with a lenient flag (meta type request-lenient-*), which lets it accept input "
        "that RFC 9112 forbids: obs-fold (5.2), bare CR or LF (2.2), whitespace before the colon (5.1), CTLs in "
        "field values (RFC 9110 5.5), Content-Length with Transfer-Encoding (6.3), malformed chunk framing "
        "(7.1), a Transfer-Encoding that does not end in chunked (6.3). A strict server rejects it.",
        Rejects()),
    # Cases.
    "connection.md: Resetting flags when keep-alive is off (1.0, lenient)": Difference(
        _LENIENT_KEEP_ALIVE, ClosesAfter(1)),
    "connection.md: CRLF between requests, explicit `close` (lenient)": Difference(
        _LENIENT_KEEP_ALIVE, ClosesAfter(1)),
    "lenient-version.md: Invalid HTTP version (lenient)": Difference(
        "RFC 9110 6.2 / the issue: a major version we do not implement is answered 505.", Rejects(505)),
    "transfer-encoding.md: POST with `chunked` before other transfer-coding (lenient)": Difference(
        "RFC 9112 6.3 / the issue: the final transfer coding of a request must be chunked; otherwise 501.",
        Rejects(501)),
    "transfer-encoding.md: POST with `chunked` as last transfer-encoding": Difference(
        "RFC 9112 6.1: a server SHOULD answer 501 to a transfer coding it does not understand (the issue: "
        "unsupported codings are 501); prefork decodes chunked only, llhttp passes deflate to the application.",
        Rejects(501)),
    "transfer-encoding.md: POST with `chunked` as last transfer-encoding (multiple headers)": Difference(
        "The issue: a repeated Transfer-Encoding field is 400 (a smuggling defence; the list form in one field "
        "is the only one accepted), and deflate would be 501 anyway (RFC 9112 6.1).", Rejects(400)),
    "invalid.md: HTTP protocol and ANNOUNCE method": Difference(
        _METHOD_TOKEN,
        Accepts(((b"ANNOUNCE", b"/music/sweet/music", ((b"host", b"example.com"),), b"", True),), "CLOSED")),
    "invalid.md: Invalid method": Difference(
        _METHOD_TOKEN + " (MKCOLA is a token.)",
        Accepts(((b"MKCOLA", b"/", (_NO_HOST,), b"", True),), "NEED_DATA", add_host=True)),
    "invalid.md: Invalid HTTP version": Difference(
        "The input is 'GET / HTTP/5.6' without its CRLF: llhttp rejects on the version bytes, we check the "
        "request-line once its CRLF arrives, then answer 505 (RFC 9110 6.2; the issue).",
        Rejects(505, then=b"\r\n")),
    "content-length.md: Error on `Content-Length` overflow": Difference(_HEAD_END, Rejects(400, then=b"\r\n")),
    "content-length.md: Error on duplicate `Content-Length`": Difference(_HEAD_END, Rejects(400, then=b"\r\n")),
    "content-length.md: Content-Length reset when no body is received": Difference(
        "meta skipBody makes llhttp's callback skip the body (as for a response to HEAD), which no server does "
        "for a request: by RFC 9112 6.3 the 123 bytes after the head are the PUT's body.",
        Accepts(((b"PUT", b"/url", (_NO_HOST, (b"content-length", b"123")),
                  b"POST /url HTTP/1.1\r\nHost: llhttp.test\r\nContent-Length: 456\r\n\r\n", False),),
                "NEED_DATA", add_host=True)),
    "method.md: CONNECT with body": Difference(
        "llhttp treats the bytes after a CONNECT head as tunnel data. prefork does not tunnel, so the request "
        "is framed like any other by RFC 9112 6.3: Content-Length: 10 is a 10-byte body; HTTP/1.0, so CLOSED.",
        Accepts(((b"CONNECT", b"foo.bar.com:443",
                  ((b"user-agent", b"Mozilla/1.1N"), (b"proxy-authorization", b"basic aGVsbG86d29ybGQ="),
                   (b"content-length", b"10")), b"blarfcicle", True),), "CLOSED")),
    "method.md: SOURCE request with ICE": Difference(_NOT_HTTP, Rejects(400)),
    "method.md: OPTIONS request with RTSP": Difference(_NOT_HTTP, Rejects(400)),
    "method.md: ANNOUNCE request with RTSP": Difference(_NOT_HTTP, Rejects(400)),
    "method.md: PRI request HTTP2": Difference(
        "llhttp pauses on the HTTP/2 preface (RFC 9113 3.3, prior knowledge); prefork speaks HTTP/1.1 only, and "
        "as an HTTP/1.1 request 'PRI * HTTP/1.1' lacks Host: 400 (RFC 9112 3.2). (The real preface says "
        "HTTP/2.0: 505.)", Rejects(400)),
    "uri.md: Host terminated by a query string": Difference(
        _ABSOLUTE_FORM, Accepts(((b"GET", b"/?hail=all", ((b"host", b"hypnotoad.org"),), b"", True),), "NEED_DATA",
                                add_host=True)),
    "uri.md: `host:port` terminated by a query string": Difference(
        _ABSOLUTE_FORM, Accepts(((b"GET", b"/?hail=all", ((b"host", b"hypnotoad.org:1234"),), b"", True),),
                                "NEED_DATA", add_host=True)),
    "uri.md: `host:port` terminated by a space": Difference(
        _ABSOLUTE_FORM, Accepts(((b"GET", b"/", ((b"host", b"hypnotoad.org:1234"),), b"", True),), "NEED_DATA",
                                add_host=True)),
    "uri.md: `host:port` and basic auth": Difference(
        "RFC 9110 4.2.4: a recipient SHOULD treat userinfo in an http(s) URI as an error (it serves to disguise the "
        "authority); llhttp passes it on.", Rejects(400)),
    "sample.md: No HTTP version": Difference(
        "An HTTP/0.9 simple request: RFC 9112 3 requires the HTTP-version in the request-line, and prefork "
        "does not speak HTTP/0.9: 400.", Rejects(400)),
}


# -- reading the corpus ----------------------------------------------------------------------------


@dataclass
class Case:
    file: str
    title: str
    line: int
    meta: dict
    data: bytes
    log: list

    @property
    def key(self) -> str:
        return f"{self.file}: {self.title}"

    @property
    def lenient(self) -> bool:
        return self.meta.get("type", "").startswith("request-lenient")


_HEADING = re.compile(r"#{1,6}\s+(.*?)\s*$")
_META = re.compile(r"<!--\s*meta=(\{.*\})\s*-->")


def decode_input(lines: list[str]) -> bytes:
    """The bytes llhttp's harness (test/md-test.ts) feeds for a ```http block."""
    text = "\n".join(lines)
    text = re.sub(r"\\(\r\n|\r|\n)", "", text)  # a backslash at the end of a line joins the next
    text = re.sub(r"\r\n|\r|\n", "\r\n", text)
    for escape, char in (("\\r", "\r"), ("\\n", "\n"), ("\\t", "\t"), ("\\f", "\f")):
        text = text.replace(escape, char)
    text = re.sub(r"\\x([0-9a-fA-F]+)", lambda m: chr(int(m[1], 16)), text)
    text = re.sub(r"\\([0-7]{1,3})", lambda m: chr(int(m[1], 8)), text)
    return text.encode("utf-8")


def load_cases(path: Path) -> list[Case]:
    cases, seen = [], {}
    title, meta, http, block, lines, start = None, {}, None, None, [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if block is not None:
            if not line.startswith("```"):
                lines.append(line)
                continue
            if block == "http":
                http, start = lines, number
            elif block == "log" and http is not None and title is not None:
                name = title
                seen[title] = seen.get(title, 0) + 1
                if seen[title] > 1:
                    name = f"{title} ({seen[title]})"
                cases.append(Case(path.name, name, start, meta, decode_input(http), lines))
                http = None
            block = None
            continue
        if line.startswith("```"):
            block, lines = line[3:].strip(), []
        elif match := _HEADING.match(line):
            title, meta, http = match[1], {}, None
        elif match := _META.search(line):
            meta = json.loads(match[1])
    return cases


def all_cases() -> list[Case]:
    cases = [case for path in sorted(CORPUS.glob("*.md")) if path.name != "README.md" for case in load_cases(path)]
    # Response cases test llhttp's response parser, which a request parser has no counterpart of.
    return [case for case in cases if case.meta.get("type", "").startswith("request")]


CASES = all_cases()


# -- what llhttp made of a case --------------------------------------------------------------------

# llhttp's flags (llhttp.h)
F_CONNECTION_KEEP_ALIVE, F_CONNECTION_CLOSE, F_CHUNKED, F_CONTENT_LENGTH = 0x1, 0x2, 0x8, 0x20


class Message(NamedTuple):
    """One request as both sides are compared: header names lower-case, values without OWS."""

    method: bytes
    target: bytes
    version: bytes
    headers: tuple
    body: bytes
    trailers: tuple
    complete: bool  # the whole message (body and trailers) was read
    keep_alive: bool
    chunked: bool
    content_length: int | None


@dataclass
class LlhttpMessage:
    method: bytes = b""
    target: bytes = b""
    version: bytes = b""
    headers: list = field(default_factory=list)
    trailers: list = field(default_factory=list)
    body: bytes = b""
    head_done: bool = False
    complete: bool = False
    flags: int = 0
    content_length: int = 0
    start: int = 0  # offset of the request-line
    version_end: int | None = None  # offset of the CRLF that ends the request-line

    def view(self, host: bool = False) -> Message:
        def fields(pairs):
            return tuple((name.lower(), value.rstrip(b" \t")) for name, value in pairs)

        close, persist = self.flags & F_CONNECTION_CLOSE, self.flags & F_CONNECTION_KEEP_ALIVE
        keep_alive = not close and (self.version == b"1.1" or bool(persist))  # RFC 9112 9.3
        return Message(self.method, self.target, self.version, ((_NO_HOST,) if host else ()) + fields(self.headers),
                       self.body, fields(self.trailers), self.complete, keep_alive, bool(self.flags & F_CHUNKED),
                       self.content_length if self.flags & F_CONTENT_LENGTH else None)


@dataclass
class LlhttpLog:
    messages: list
    error: int | None = None  # llhttp's error code, if the log ends in one
    finish: int | None = None  # request-finish cases: llhttp_finish()'s result

    @property
    def rejected(self) -> bool:
        return self.error is not None and self.error not in (5, 22, 23)

    def heads(self) -> list:
        return [message for message in self.messages if message.head_done]


_LOG_LINE = re.compile(r"off=(\d+|NULL) (.*)")
_SPAN = re.compile(r"len=(\d+) span\[(\w+)\]=(.*)")


def read_log(case: Case) -> LlhttpLog:
    log, data = LlhttpLog([]), case.data
    message, in_trailers, field_open = None, False, False
    for line in case.log:
        match = _LOG_LINE.fullmatch(line)
        assert match, f"unreadable log line {line!r}"
        offset, event = match[1], match[2]
        if (span := _SPAN.fullmatch(event)) is not None:
            start, length, name, printed = int(offset), int(span[1]), span[2], span[3]
            value = data[start:start + length]
            if printed in ("cr", "lf"):
                assert value == {"cr": b"\r", "lf": b"\n"}[printed]
            else:
                text = printed[1:-1].replace("\\t", "\t").replace("\\f", "\f")
                assert printed[0] == printed[-1] == '"' and value == text.encode(), (
                    f"span[{name}] at {start}: input has {value!r}, log says {printed}: the input was misread")
            pairs = message.trailers if in_trailers else message.headers
            if name == "method":
                message.method += value
            elif name == "url":
                message.target += value
            elif name == "version":
                message.version += value
            elif name == "header_field":
                if not field_open:
                    pairs.append([b"", b""])
                    field_open = True
                pairs[-1][0] += value
            elif name == "header_value":
                pairs[-1][1] += value
            elif name == "body":
                message.body += value
            # protocol and chunk_extension_* spans are not part of what we compare
        elif event == "message begin":
            message, in_trailers, field_open = LlhttpMessage(start=int(offset)), False, False
            log.messages.append(message)
        elif event == "version complete":
            message.version_end = int(offset)
        elif event == "header_field complete":
            field_open = False
        elif event.startswith("headers complete"):
            values = dict(item.split("=", 1) for item in event.split()[2:])
            message.head_done, message.flags = True, int(values["flags"], 16)
            message.content_length = int(values["content_length"])
        elif event == "chunk header len=0":
            in_trailers = True
        elif event == "message complete":
            message.complete = True
        elif event.startswith("error code="):
            log.error = int(event.split()[1].split("=")[1])
        elif event.startswith("finish="):
            log.finish = int(event.split("=")[1])
    return log


def add_host(data: bytes, log: LlhttpLog) -> tuple[bytes, list]:
    """Add a Host line after the request-line of each HTTP/1.1 request without one. Returns the new
    input and, per llhttp message, whether it got the line."""
    added, ends = [], []
    for message in log.messages:
        # Where llhttp stopped before the version, the request-line is read from the input.
        end = message.version_end if message.version_end is not None else data.find(b"\r\n", message.start)
        head_end = data.find(b"\r\n\r\n", end)
        head = data[end:head_end if head_end >= 0 else len(data)]
        added.append(end >= 0 and data.startswith(b"\r\n", end) and data[message.start:end].endswith(b" HTTP/1.1")
                     and not any(name.lower() == b"host" for name, _ in message.headers)
                     and re.search(rb"\r\nhost[ \t]*:", head, re.IGNORECASE) is None)
        ends.append(end)
    for end, add in reversed(list(zip(ends, added))):
        if add:
            data = data[:end + 2] + b"Host: " + HOST + b"\r\n" + data[end + 2:]
    return data, added


# -- what we make of it ----------------------------------------------------------------------------


@dataclass
class Outcome:
    messages: tuple
    end: object  # "NEED_DATA", "CLOSED", or the status of the ProtocolError
    parser: RequestParser
    midway: bool  # a message's body is still to come


def parse(data: bytes, step: int = 0) -> Outcome:
    """Feed data (whole, or `step` bytes at a time), draining events after each feed."""
    parser = RequestParser(Limits())
    messages, end, midway = [], None, False
    pieces = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    try:
        for piece in pieces:
            parser.feed(piece)
            for _ in range(100_000):
                event = parser.next_event()
                if event is NEED_DATA or event is CLOSED:
                    end = "NEED_DATA" if event is NEED_DATA else "CLOSED"
                    break
                if isinstance(event, Request):
                    messages.append([event.method, event.target, event.version, tuple(event.headers), b"", (),
                                     not event.has_body, event.keep_alive, event.chunked, event.content_length])
                    midway = event.has_body
                elif isinstance(event, Data):
                    assert event.data, "an empty Data event"
                    messages[-1][4] += event.data
                elif isinstance(event, EndOfMessage):
                    messages[-1][5], messages[-1][6] = tuple(event.trailers), True
                    midway = False
                else:
                    raise AssertionError(f"unexpected event {event!r}")
            else:
                raise AssertionError("the parser keeps returning events")
    except ProtocolError as exc:
        end = exc.status
    return Outcome(tuple(Message(*message) for message in messages), end, parser, midway)


def same_whole_and_bytewise(data: bytes) -> Outcome:
    """Parse data whole, and one byte at a time: the outcome must not depend on how it arrives."""
    whole, bytewise = parse(data), parse(data, 1)
    assert (bytewise.messages, bytewise.end) == (whole.messages, whole.end), "fed one byte at a time"
    return whole


# -- the test ----------------------------------------------------------------------------------------


def expected_end(messages: list) -> str:
    last = messages[-1] if messages else None
    return "CLOSED" if last is not None and last.complete and not last.keep_alive else "NEED_DATA"


def check_finish(log: LlhttpLog, outcome: Outcome):
    if log.finish is not None:  # llhttp_finish(): 0 at a message boundary, an error code midway
        at_boundary = outcome.parser.buffered == 0 and not outcome.midway
        assert at_boundary == (log.finish == 0), f"llhttp_finish() said {log.finish}"


def classify(case: Case, log: LlhttpLog, added: list) -> tuple[object, list]:
    """What we must do with a case, and the DIFFERENCES entries that say so. The expectation is
    a Rejects, Accepts or ClosesAfter from the table, or None: parse exactly as llhttp did."""
    if case.key in DIFFERENCES:
        return DIFFERENCES[case.key].expect, [case.key]
    if log.rejected:
        return Rejects(), []
    if case.lenient:
        return DIFFERENCES["rule: lenient flag"].expect, ["rule: lenient flag"]
    used = []
    if any(add for message, add in zip(log.messages, added) if message.head_done):
        used.append("rule: no Host")
    if log.error == 5:
        used.append("rule: data after close")
    elif log.error in (22, 23):
        used.append("rule: CONNECT/Upgrade pause")
    return None, used


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_llhttp_case(case: Case):
    log = read_log(case)
    hosted, added = add_host(case.data, log)
    expect, used = classify(case, log, added)
    for key in used:
        assert DIFFERENCES[key].reason

    if isinstance(expect, Rejects):
        for data in dict.fromkeys((case.data, hosted)):  # raw, and with Host added if that changes it
            if expect.then:
                assert same_whole_and_bytewise(data).end == "NEED_DATA"
            outcome = same_whole_and_bytewise(data + expect.then)
            assert isinstance(outcome.end, int), f"accepted: {outcome.messages}, then {outcome.end}"
        if expect.status is not None:
            assert outcome.end == expect.status  # the input with Host, so that only the point at issue fails
    elif isinstance(expect, Accepts):
        if expect.add_host:
            assert hosted != case.data and same_whole_and_bytewise(case.data).end == 400
        outcome = same_whole_and_bytewise(hosted if expect.add_host else case.data)
        assert [message[:2] + message[3:5] + message[6:7] for message in outcome.messages] == list(
            expect.messages)
        assert outcome.end == expect.end
    elif isinstance(expect, ClosesAfter):
        outcome = same_whole_and_bytewise(case.data)
        assert list(outcome.messages) == [message.view() for message in log.messages[:expect.count]]
        assert outcome.end == "CLOSED"
    else:
        expected = [message.view(host=add) for message, add in zip(log.messages, added) if message.head_done]
        assert expected or log.finish is not None, "llhttp parsed no head"
        data = case.data
        if "rule: no Host" in used:
            assert same_whole_and_bytewise(case.data).end == 400, "an HTTP/1.1 request without Host"
            data = hosted
        outcome = same_whole_and_bytewise(data)
        assert list(outcome.messages) == expected
        assert outcome.end == expected_end(expected)
        check_finish(log, outcome)


def test_corpus_is_read_whole():
    """Guards the reader and the table: every ```http block became a case, and every entry of
    DIFFERENCES is used by some case."""
    blocks = sum(path.read_text(encoding="utf-8").count("```http")
                 for path in CORPUS.glob("*.md") if path.name != "README.md")
    assert len(CASES) == blocks >= 150
    assert len({case.key for case in CASES}) == len(CASES)
    used = set()
    for case in CASES:
        log = read_log(case)
        used.update(classify(case, log, add_host(case.data, log)[1])[1])
    assert set(DIFFERENCES) == used, f"DIFFERENCES entries no case uses: {set(DIFFERENCES) - used}"
