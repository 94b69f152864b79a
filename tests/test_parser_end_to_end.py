"""The parser's rules as a client of the real `prefork` command meets them: an absolute-form
target reaches a WSGI app in origin form with its authority as the host, a bad Host and bytes
that cannot begin a request get a 400 at once, and the server goes on serving."""

from __future__ import annotations

import json
import time

import pytest

from support.parsers import PARSER_SETTINGS, REQUEST_PARSERS
from support.client import connect, read_response, recv_until_closed
from support.paths import APPS


@pytest.fixture(params=PARSER_SETTINGS)
def http_parser(request) -> str:
    """Each test runs once per request parser (the http_parser setting)."""
    return request.param


def start_plain(start_server, http_parser: str):
    # A long header timeout: a 400 that comes quickly cannot be the timeout's 408.
    server = start_server("plain:app", "--chdir", APPS, "-w", "1", "-b", "127.0.0.1:0", "--header-timeout", "60",
                          "--http-parser", http_parser)
    server.wait_for_log(rf"master \d+: 1 worker, generation \d+, {http_parser} request parser")
    return server


def test_absolute_form_reaches_the_app_in_origin_form(start_server, http_parser):
    server = start_plain(start_server, http_parser)
    with connect(server.port) as sock:
        buf = bytearray()
        sock.sendall(b"GET http://example.org:8081/environ/x?q=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n")
        status, _, body = read_response(sock, buf)
        assert status == 200
        environ = json.loads(body)
        assert (environ["PATH_INFO"], environ["QUERY_STRING"], environ["RAW_URI"]) == ("/environ/x", "q=1",
                                                                                       "/environ/x?q=1")
        assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
            "example.org:8081", "example.org", "8081")
        # The same connection, origin form again: the Host field is the host once more.
        sock.sendall(b"GET /environ/y HTTP/1.1\r\nHost: ignored.example\r\n\r\n")
        status, _, body = read_response(sock, buf)
        environ = json.loads(body)
        assert status == 200 and (environ["PATH_INFO"], environ["HTTP_HOST"]) == ("/environ/y", "ignored.example")


def answer_of(port: int, data: bytes) -> tuple[bytes, float]:
    """What the server answers to data before it closes, and how long that took."""
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(data)
        answer = recv_until_closed(sock)
        return answer, time.monotonic() - started


def test_bad_requests_are_answered_400_at_once_and_the_server_goes_on(start_server, http_parser):
    server = start_plain(start_server, http_parser)
    for data in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello, no line end
                 b"\r\n\x00",
                 b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
                 b"GET ftp://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n"):
        answer, took = answer_of(server.port, data)
        assert answer.startswith(b"HTTP/1.1 400 "), (data, answer)
        assert took < 10, (data, took)
    with connect(server.port) as sock:
        sock.sendall(b"GET /environ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["HTTP_HOST"] == "[::1]:8080"
