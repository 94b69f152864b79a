"""What an app puts in its response head reaches the client as it meant it, or as a 500 when it
may not be sent: its reason phrase as written, its own Date and Server instead of ours, header
values stripped of surrounding whitespace, control characters and impossible statuses refused."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from support.client import connect, read_response, recv_until_closed
from support.paths import APPS
from support.server import Server


@pytest.fixture(scope="module", params=["inline", "threads"])
def app_server(request):
    server = Server(["-w", "1", "-b", "127.0.0.1:0", "--dispatch", request.param, "--chdir", APPS, "plain:raw"])
    yield server
    server.stop()


def raw_head(server, target: str) -> bytes:
    with connect(server.port) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    return data.split(b"\r\n\r\n")[0]


@pytest.mark.parametrize("status", ["299 Custom", "201 CREATED", "200 Everything Fine", "418 Not A Teapot"])
def test_the_reason_phrase_goes_out_as_the_app_wrote_it(app_server, status):
    head = raw_head(app_server, "/as-asked?status=" + quote(status))
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 " + status.encode()


@pytest.mark.parametrize("status", ["600 Beyond", "999 Nope", "099 Low", "20 Short"])
def test_a_status_outside_100_to_599_is_a_500(app_server, status):
    assert raw_head(app_server, "/as-asked?status=" + quote(status)).startswith(b"HTTP/1.1 500 ")


def test_the_apps_date_and_server_replace_ours(app_server):
    head = raw_head(app_server, "/as-asked?status=200+OK&header=" + quote("Date:Tue, 01 Dec 2026 10:00:00 GMT"))
    lines = head.split(b"\r\n")
    assert [l for l in lines if l.lower().startswith(b"date:")] == [b"Date: Tue, 01 Dec 2026 10:00:00 GMT"]
    assert len([l for l in lines if l.lower().startswith(b"server:")]) == 1
    head = raw_head(app_server, "/as-asked?status=200+OK&header=" + quote("Server:myapp/2"))
    lines = head.split(b"\r\n")
    assert [l for l in lines if l.lower().startswith(b"server:")] == [b"Server: myapp/2"]
    assert len([l for l in lines if l.lower().startswith(b"date:")]) == 1


def test_header_values_lose_surrounding_whitespace(app_server):
    head = raw_head(app_server, "/as-asked?status=200+OK&header=" + quote("Set-Cookie: a=b; Path=/ \t"))
    assert b"\r\nSet-Cookie: a=b; Path=/\r\n" in head + b"\r\n"


@pytest.mark.parametrize("kind", ["vt", "ff", "esc", "del", "nel", "crlf", "nul"])
def test_control_characters_in_a_header_value_are_a_500(app_server, kind):
    with connect(app_server.port) as sock:
        sock.sendall(f"GET /bad-header?kind={kind} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        status, _, body = read_response(sock)
        assert status == 500 and b"must not be sent" not in body
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")  # the worker serves on
        assert read_response(sock)[0] == 200


def test_a_utf8_value_passed_through_latin1_is_sent(app_server):
    # U+2085 is e2 82 85 in UTF-8: there 0x85 is a continuation byte, not the NEL control.
    head = raw_head(app_server, "/as-asked?status=200+OK&utf8=1&header=" + quote("X-Name:x-\u2085"))
    assert b"X-Name: x-\xe2\x82\x85" in head


def test_server_software_names_prefork_and_its_version(app_server):
    import json

    from prefork import __version__

    with connect(app_server.port) as sock:
        sock.sendall(b"GET /environ HTTP/1.1\r\nHost: a\r\n\r\n")
        assert json.loads(read_response(sock)[2])["SERVER_SOFTWARE"] == f"prefork/{__version__}"


@pytest.mark.parametrize("stream", ["", "&stream=1"])
@pytest.mark.parametrize("header", ["Connection:keep-alive", "Keep-Alive:timeout=5, max=100", "Transfer-Encoding:chunked",
                                    "Upgrade:h2c", "TE:trailers", "Trailer:X-Sum", "Proxy-Authenticate:Basic"])
def test_hop_by_hop_headers_of_the_app_are_dropped_as_gunicorn_does(app_server, header, stream):
    """The framing of the connection is the server's: an app's hop-by-hop header is not sent
    (gunicorn drops them too, and apps that ran there send them), the response is served and the
    connection goes on."""
    with connect(app_server.port) as sock:
        request = f"GET /as-asked?status=200+OK&header={quote(header)}{stream} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
        buf = bytearray()
        sock.sendall(request + request)
        for _ in range(2):
            status, headers, body = read_response(sock, buf)
            assert (status, body) == (200, b"as asked")
            name = header.split(":")[0].lower()
            assert headers.get(name) == ("chunked" if stream and name == "transfer-encoding" else None), headers
            assert "connection" not in headers


@pytest.mark.parametrize("stream", ["", "&stream=1"])
@pytest.mark.parametrize("value", ["close", "Close", "x-other, close"])
def test_an_apps_connection_close_closes_the_connection_after_its_response(app_server, value, stream):
    with connect(app_server.port) as sock:
        request = f"GET /as-asked?status=200+OK&header={quote('Connection:' + value)}{stream} HTTP/1.1\r\nHost: a\r\n\r\n"
        sock.sendall(request.encode() * 2)
        buf = bytearray()
        status, headers, body = read_response(sock, buf)
        assert (status, body, headers.get("connection")) == (200, b"as asked", "close")
        assert bytes(buf) + recv_until_closed(sock) == b""  # the second request is not answered
