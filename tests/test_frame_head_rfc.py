"""frame_head() against the rules of RFC 9112 (framing 6, persistence 9) and RFC 9110 it decides.

Each row of the table names the rule it checks. Then every combination of its inputs is checked
against the rules that hold whatever the combination: no transfer coding for HTTP/1.0 or for a
response without body, persistence only with a self-delimited body and only when the request
allowed it, an HTTP/1.0 client told "keep-alive" whenever the connection stays.

frame_head() knows neither the request's method nor its Connection line: `keep_alive` is what the
request asked for (RFC 9112 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with
"keep-alive"; "close" wins in both, as tests/test_parser_unit.py's test_persistence checks) and
what the server allows; a HEAD response is framed as GET's would be and its caller sends no body.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from prefork.http.framing import frame_head

LINE, COMMON, HEADERS = b"HTTP/1.1 200 OK\r\n", b"Server: s\r\nDate: d\r\n", b"Content-Type: text/plain\r\n"

# RFC text, quoted where a row leans on it.
PERSIST_11 = ("RFC 9112 9.3: if the received protocol is HTTP/1.1 (or later), the connection will persist "
              "after the current response")
PERSIST_10 = ("RFC 9112 9.3: if the received protocol is HTTP/1.0, the \"keep-alive\" connection option is "
              "present, ... the connection will persist; otherwise it will close (Appendix C.2.2: the server "
              "answers \"Connection: keep-alive\" for the client to keep it)")
CLOSE = ("RFC 9112 9.6: a server that receives a \"close\" connection option MUST initiate closure of the "
         "connection after it sends the final response ... SHOULD send a \"close\" connection option in its "
         "final response")
SELF_DELIMITED = ("RFC 9112 9.3: in order to remain persistent, all messages on a connection need to have a "
                  "self-defined message length (i.e., one not defined by closure of the connection)")
CHUNKED_11 = ("RFC 9112 6.3 item 4 / 7.1: a response of unknown length to an HTTP/1.1 request goes chunked, "
              "and the connection can persist")
NO_TE_10 = ("RFC 9112 6.1: a server MUST NOT send a response containing Transfer-Encoding unless the "
            "corresponding request indicates HTTP/1.1; 6.3 item 8: the body then ends when the connection closes")
NO_BODY = ("RFC 9112 6.3 item 1: any response with a 1xx, 204 or 304 status code is terminated by the first "
           "empty line after the header fields; 6.1: a server MUST NOT send Transfer-Encoding in any 1xx or 204 "
           "response")
HEAD = ("RFC 9110 9.3.2: the server SHOULD send the same header fields in response to HEAD as it would for GET; "
        "RFC 9112 6.1: a server MAY send Transfer-Encoding in a response to HEAD; 6.3 item 1: that response "
        "ends at the empty line, so the connection can persist")
INTERIM = ("RFC 9112 9.3: a server that does not support persistent connections MUST send the \"close\" "
           "connection option in every response message that does not have a 1xx status code; 9.6: a server "
           "that sends \"close\" MUST initiate closure after the response containing it -- so a 1xx, after "
           "which the final response is still to come, carries no \"close\"")


@dataclass(frozen=True)
class Row:
    rule: str
    http10: bool
    keep_alive: bool  # the request allows it (see the module's docstring) and the server does
    length: int | None  # None: the body's length is not known when the head goes out
    status: int
    connection: bytes | None  # the value of the head's Connection line; None: no such line
    chunked: bool
    persists: bool


ROWS = {
    # HTTP/1.1: persistent by default, told nothing
    "1.1-length": Row(PERSIST_11, False, True, 5, 200, None, False, True),
    "1.1-empty-body": Row(PERSIST_11, False, True, 0, 200, None, False, True),
    "1.1-unknown-length-chunked": Row(CHUNKED_11, False, True, None, 200, None, True, True),
    "1.1-error-status-persists-too": Row(PERSIST_11, False, True, 9, 404, None, False, True),
    # close requested by the request (or the server closing): told so, and it closes
    "1.1-close-length": Row(CLOSE, False, False, 5, 200, b"close", False, False),
    "1.1-close-unknown-length": Row(CLOSE + "; " + CHUNKED_11, False, False, None, 200, b"close", True, False),
    "1.1-close-204": Row(CLOSE, False, False, None, 204, b"close", False, False),
    # HTTP/1.0: persists only when it asked with "keep-alive", and is told so
    "1.0-keep-alive-length": Row(PERSIST_10, True, True, 5, 200, b"keep-alive", False, True),
    "1.0-keep-alive-empty-body": Row(PERSIST_10, True, True, 0, 200, b"keep-alive", False, True),
    "1.0-without-keep-alive": Row(PERSIST_10 + "; " + CLOSE, True, False, 5, 200, b"close", False, False),
    "1.0-unknown-length-closes": Row(NO_TE_10 + "; " + SELF_DELIMITED, True, True, None, 200, b"close", False,
                                     False),
    "1.0-unknown-length-without-keep-alive": Row(NO_TE_10, True, False, None, 200, b"close", False, False),
    # no body: never chunked, and the connection can stay, HTTP/1.0 included
    "1.1-204": Row(NO_BODY, False, True, None, 204, None, False, True),
    "1.1-304": Row(NO_BODY, False, True, None, 304, None, False, True),
    "1.0-204": Row(NO_BODY + "; " + PERSIST_10, True, True, None, 204, b"keep-alive", False, True),
    "1.0-304": Row(NO_BODY + "; " + PERSIST_10, True, True, None, 304, b"keep-alive", False, True),
    "1.1-304-told-its-length": Row(NO_BODY, False, True, 120, 304, None, False, True),
    # HEAD on HTTP/1.1: GET's head (chunked announced; its caller sends no chunk), and it persists
    "1.1-head-unknown-length": Row(HEAD, False, True, None, 200, None, True, True),
    # 1xx: interim, not framed (the final response comes after it)
    "1.1-100": Row(NO_BODY, False, True, None, 100, None, False, True),
    "1.1-103": Row(NO_BODY, False, True, None, 103, None, False, True),
    "1.1-100-before-a-closing-final-response": Row(INTERIM, False, False, None, 100, None, False, False),
}


def lines_of(head: bytes) -> list[bytes]:
    assert head.endswith(b"\r\n\r\n"), head
    return head[:-4].split(b"\r\n")


def connection_values(head: bytes) -> list[bytes]:
    return [line[len(b"Connection: "):] for line in lines_of(head) if line.lower().startswith(b"connection:")]


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_frame_head_follows_the_rule_of_its_row(row: Row):
    head, chunked, persists = frame_head(LINE, COMMON, HEADERS, http10=row.http10, keep_alive=row.keep_alive,
                                         length=row.length, status=row.status)
    assert head.startswith(LINE + COMMON + HEADERS), row.rule
    assert connection_values(head) == ([row.connection] if row.connection else []), row.rule
    assert (b"Transfer-Encoding: chunked" in lines_of(head), chunked) == (row.chunked, row.chunked), row.rule
    assert persists == row.persists, row.rule


STATUSES = (100, 101, 103, 200, 201, 204, 205, 206, 301, 304, 404, 500)


@pytest.mark.parametrize("http10, keep_alive, length, status",
                         list(itertools.product((False, True), (False, True), (None, 0, 7), STATUSES)))
def test_what_holds_for_every_response(http10, keep_alive, length, status):
    head, chunked, persists = frame_head(LINE, COMMON, HEADERS, http10=http10, keep_alive=keep_alive,
                                         length=length, status=status)
    no_body = status < 200 or status in (204, 304)
    connection = connection_values(head)
    assert len(connection) <= 1  # RFC 9110 7.6.1: one list of options, not two contradicting lines
    assert (b"Transfer-Encoding: chunked" in lines_of(head)) == chunked
    assert not (chunked and http10), NO_TE_10
    assert not (chunked and no_body), NO_BODY
    assert not (chunked and length is not None), "RFC 9112 6.2: Content-Length and chunked exclude each other"
    if not keep_alive:
        assert not persists, CLOSE
    if persists:
        assert length is not None or chunked or no_body, SELF_DELIMITED
    if status < 200:
        assert connection == [], INTERIM
    elif persists:
        assert connection == ([b"keep-alive"] if http10 else []), PERSIST_10 if http10 else PERSIST_11
    else:
        assert connection == [b"close"], CLOSE
