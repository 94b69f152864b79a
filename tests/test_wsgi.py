"""WSGI hosting (PEP 3333) under both dispatch paths, against the real `prefork` command.

The app under test (tests/apps/plain.py) is wrapped in wsgiref.validate.validator with its
warnings as errors: a server that breaks PEP 3333 makes it fail with a 500 and a traceback in
the log, which every test checks for.
"""

import json
import os

import pytest

from support.client import connect, read_head, read_response, recv_until_closed
from support.command import check
from support.logs import assert_clean
from support.paths import APPS
from support.polling import wait_until

DISPATCH = ["inline", "threads"]


def start_app(start_server, spec, dispatch, *args):
    return start_server(spec, "--chdir", APPS, "-w", "1", "-b", "127.0.0.1:0", "--dispatch", dispatch, *args)


def get(sock, buf, target, method="GET", headers=(), body=b"", version="1.1"):
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1:8080", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    if method == "HEAD":
        return read_head_and_rest(sock, buf)
    return read_response(sock, buf)


def read_head_and_rest(sock, buf):
    """A response to HEAD: the head only, whatever its Content-Length says; and what follows it."""
    status, headers = read_head(sock, buf)
    return status, headers, bytes(buf)


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_validated_app_routes(start_server, dispatch):
    server = start_app(start_server, "plain:app", dispatch)
    sock, buf = connect(server.port), bytearray()
    with sock:
        status, headers, body = get(sock, buf, "/hello")
        assert (status, body, headers["content-length"]) == (200, b"Hello, World!", "13")

        status, headers, body = get(sock, buf, "/environ/caf%C3%A9/a%2Fb?x=%41&y=1",
                                    headers=["X-Multi: a", "X-Multi: b", "X_Multi: shadow",
                                             "Cookie: a=1", "Cookie: b=2", "Content-Type: text/x-test"])
        environ = json.loads(body)
        local_port = sock.getsockname()[1]
        expected = {
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "QUERY_STRING": "x=%41&y=1",
            "PATH_INFO": "/environ/caf\u00c3\u00a9/a/b",  # percent-decoded, then latin-1
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(local_port),
            "HTTP_X_MULTI": "a, b", "HTTP_COOKIE": "a=1; b=2", "CONTENT_TYPE": "text/x-test",
            "wsgi.url_scheme": "http", "wsgi.multithread": dispatch == "threads",
            "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input_terminated": True,
        }
        assert {key: environ.get(key) for key in expected} == expected
        assert environ["wsgi.version"] == [1, 0] and environ["test.changed_before"] is False
        # The same head again and again on this connection: the same environ, never the app's changes.
        for _ in range(3):
            again = json.loads(get(sock, buf, "/environ/caf%C3%A9/a%2Fb?x=%41&y=1",
                                   headers=["X-Multi: a", "X-Multi: b", "X_Multi: shadow",
                                            "Cookie: a=1", "Cookie: b=2", "Content-Type: text/x-test"])[2])
            assert again == environ
        assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ

        payload = b"line one\nline two\n" + bytes(range(256)) * 40 + b"\nlast"
        for how in ("read", "read-parts", "readline", "readlines", "iter"):
            status, _, body = get(sock, buf, f"/input?how={how}", method="POST", body=payload)
            result = json.loads(body)
            assert (status, result["size"], result["content_length"]) == (200, len(payload), str(len(payload))), how

        status, headers, body = get(sock, buf, "/stream?n=4&size=3")
        assert (status, headers.get("transfer-encoding"), body) == (200, "chunked", b"aaabbbcccddd")
        status, headers, body = get(sock, buf, "/stream-length")
        assert (status, headers["content-length"], body) == (200, "10", b"abcdefghij")
        status, headers, body = get(sock, buf, "/write")
        assert (status, body) == (200, b"written-then-returned")
        status, headers, body = get(sock, buf, "/exc-info")
        assert (status, body) == (503, b"handled by the app")
        assert get(sock, buf, "/errors")[::2] == (200, b"logged")
        server.wait_for_log("app says: first line")
        server.wait_for_log("app says: second line")
        status, headers, body = get(sock, buf, "/no-content")
        assert (status, body, "content-length" in headers) == (204, b"", False)
        status, headers, body = get(sock, buf, "/hello", method="HEAD")
        assert (status, headers["content-length"], body) == (200, "13", b"")

        before = json.loads(get(sock, buf, "/closes")[2])["closes"]
        get(sock, buf, "/closable")
        get(sock, buf, "/stream-length")
        assert json.loads(get(sock, buf, "/closes")[2])["closes"] == before + 2
    assert_clean(server.log())


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_app_errors_are_500_and_the_worker_keeps_serving(start_server, dispatch):
    server = start_app(start_server, "plain:raw", dispatch)
    sock, buf = connect(server.port), bytearray()
    with sock:
        cases = {
            "/fail": "boom: the app failed",
            "/bad-header?kind=crlf": "control character",
            "/bad-header?kind=nul": "control character",
            "/bad-header?kind=name": "invalid header name 'Bad Name'",
            "/bad-header?kind=latin1": "is not latin-1",
            "/str-body": "must be bytes, not str",
            "/bad-status": "status must be a code from 100 to 599",
        }
        for target, logged in cases.items():
            status, headers, body = get(sock, buf, target)
            assert (status, body) == (500, b"Internal Server Error\n"), target
            assert "injected" not in headers
            server.wait_for_log(logged.replace("(", r"\(").replace(")", r"\)"))
            # the same connection, the same worker: the next request succeeds
            assert get(sock, buf, "/hello")[:3:2] == (200, b"Hello, World!")
    log = server.log()
    assert "RuntimeError: boom: the app failed" in log  # the traceback is in the error log only
    assert log.count("Traceback") == 1  # only /fail's so far

    # A failure after the body started cannot be a 500: the response is cut short instead.
    with connect(server.port) as sock:
        sock.sendall(b"GET /fail-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = recv_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK") and b"first part" in raw
    assert not raw.endswith(b"0\r\n\r\n")  # no last chunk: the client can tell it is incomplete
    server.wait_for_log("boom: failed mid-stream")
    with connect(server.port) as sock:  # start_response(exc_info) after the head: re-raised
        sock.sendall(b"GET /exc-info-late HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = recv_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK") and b"head sent" in raw and b"never sent" not in raw
    assert not raw.endswith(b"0\r\n\r\n")
    server.wait_for_log("ValueError: late trouble")
    with connect(server.port) as sock:
        assert get(sock, bytearray(), "/hello")[2] == b"Hello, World!"


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_file_wrapper_is_sent_with_sendfile(start_server, dispatch, tmp_path):
    data = os.urandom(12 << 20)  # well beyond the socket buffers: sendfile must wait for EPOLLOUT
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    server = start_app(start_server, "plain:raw", dispatch)
    sock, buf = connect(server.port), bytearray()
    with sock:
        status, headers, body = get(sock, buf, f"/file?path={path}")
        assert (status, headers["content-length"], body == data) == (200, str(len(data)), True)
        status, headers, body = get(sock, buf, f"/file?path={path}", method="HEAD")
        assert (status, headers["content-length"], body) == (200, str(len(data)), b"")
        counts = json.loads(get(sock, buf, "/closes")[2])
        assert counts["file_reads"] == 0  # os.sendfile, never read() in Python
        assert get(sock, buf, "/hello")[2] == b"Hello, World!"  # keep-alive after a file
    assert_clean(server.log())


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_file_wrapper_under_the_validator_is_iterated(start_server, dispatch, tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    server = start_app(start_server, "plain:app", dispatch)
    sock, buf = connect(server.port), bytearray()
    with sock:
        status, headers, body = get(sock, buf, f"/file?path={path}")
        assert (status, body == data) == (200, True)
        assert json.loads(get(sock, buf, "/closes")[2])["file_reads"] > 0
    assert_clean(server.log())


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_http10_body_without_length_ends_with_the_connection(start_server, dispatch):
    server = start_app(start_server, "plain:app", dispatch)
    with connect(server.port) as sock:
        sock.sendall(b"GET /stream?n=3&size=4 HTTP/1.0\r\n\r\n")
        raw = recv_until_closed(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert b"Connection: close" in head and body == b"aaaabbbbcccc"
    # HTTP/1.0 without a Host header: SERVER_NAME and SERVER_PORT come from the socket
    with connect(server.port) as sock:
        sock.sendall(b"GET /environ HTTP/1.0\r\n\r\n")
        environ = json.loads(recv_until_closed(sock).partition(b"\r\n\r\n")[2])
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
    assert_clean(server.log())


def test_pipelined_requests_are_answered_in_order_by_threads(start_server):
    server = start_app(start_server, "plain:app", "threads", "--threads", "4")
    with connect(server.port) as sock:
        sock.sendall(b"GET /sleep?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /stream?n=2&size=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /input HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        buf = bytearray()
        bodies = [read_response(sock, buf)[2] for _ in range(4)]
    assert bodies[:3] == [b"slept", b"Hello, World!", b"aabb"]
    assert json.loads(bodies[3])["size"] == 5 and json.loads(bodies[3])["content_length"] == "5"
    assert_clean(server.log())


def test_factory_and_load_errors(start_server, tmp_path):
    server = start_app(start_server, "plain:create_app()", "inline")
    with connect(server.port) as sock:
        assert get(sock, bytearray(), "/hello")[2] == b"Hello, World!"
    checks = {
        "nosuchmodule:app": "no module named 'nosuchmodule'",
        "plain:missing": "module 'plain' has no attribute 'missing'",
        "plain:TEXT": "is not callable",
        "plain:bad name": "expected module:callable",
    }
    for spec, message in checks.items():
        result = check(spec, "--chdir", APPS)
        assert result.returncode == 1 and message in result.stderr, (spec, result.stderr)


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_large_streams_pause_and_resume(start_server, dispatch):
    # Far above high_water (256 KiB): the producer pauses and resumes many times.
    server = start_app(start_server, "plain:app", dispatch)
    sock, buf = connect(server.port), bytearray()
    with sock:
        status, headers, body = get(sock, buf, "/big?mb=20")
        assert (status, len(body), body.count(b"x")) == (200, 20 << 20, 20 << 20)
        status, headers, body = get(sock, buf, "/stream?n=3000&size=1000")
        assert (status, headers["transfer-encoding"], len(body)) == (200, "chunked", 3_000_000)
        assert body == b"".join(bytes([97 + i % 26]) * 1000 for i in range(3000))
        assert get(sock, buf, "/hello")[2] == b"Hello, World!"
    assert_clean(server.log())


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_an_app_closing_wsgi_input_harms_no_later_request(start_server, dispatch):
    server = start_app(start_server, "closes_input:app", dispatch)
    sock, buf = connect(server.port), bytearray()
    for body in (b"", b"abc", b"", b""):
        assert get(sock, buf, "/", method="POST" if body else "GET", body=body)[2] == b"read %d bytes" % len(body)
    assert_clean(server.log())


def recv_until_ends_with(sock, tail: bytes) -> bytes:
    """Read until the bytes received end with tail (the socket's timeout bounds the wait)."""
    raw = b""
    while not raw.endswith(tail):
        data = sock.recv(65536)
        assert data, f"closed before {tail!r}; got {raw!r}"
        raw += data
    return raw


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_204_and_304_never_carry_the_apps_body(start_server, dispatch):
    # A body after a 204/304 head would be read as the start of the next response.
    server = start_app(start_server, "framing:app", dispatch)
    targets = ["/no-body?code=204", "/no-body?code=304", "/no-body?code=204&stream=1",
               "/no-body?code=304&stream=1", "/hello"]
    with connect(server.port, timeout=5) as sock:
        sock.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % t.encode() for t in targets))
        rest = recv_until_ends_with(sock, b"Hello, World!")
    heads = []
    for _ in range(4):
        head, _, rest = rest.partition(b"\r\n\r\n")
        heads.append(head)
    assert [head[:13] for head in heads] == [b"HTTP/1.1 204 ", b"HTTP/1.1 304 "] * 2, heads
    assert b"content-length" not in heads[0].lower() + heads[2].lower()  # RFC 9110 8.6: never on a 204
    assert all(b"Content-Length: 2" in heads[i].split(b"\r\n") for i in (1, 3))  # a 304's is kept
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nHello, World!"), rest
    wait_until(lambda: server.log().count("which has none; it is dropped") == 4, 5, message="4 log lines")


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_an_informational_status_as_the_answer_is_a_500(start_server, dispatch):
    # A 1xx is not a final response: sent as one, the client would take the next answer for this one's.
    server = start_app(start_server, "framing:app", dispatch)
    sock, buf = connect(server.port, timeout=5), bytearray()
    with sock:
        for status in ("100 Continue", "101 Switching Protocols", "103 Early Hints"):
            for stream in ("", "&stream=1"):
                target = f"/informational?status={status.replace(' ', '+')}{stream}"
                assert get(sock, buf, target)[::2] == (500, b"Internal Server Error\n"), target
                assert get(sock, buf, "/hello")[::2] == (200, b"Hello, World!"), target
    wait_until(lambda: server.log().count("is informational (1xx), not a final response") == 6, 5,
               message="6 log lines")
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_http10_stream_framed_only_by_the_close_ends_with_it(start_server, dispatch):
    # An HTTP/1.0 keep-alive client: a streamed body keeps the connection only if its
    # Content-Length frames it; a header merely named like one (X-Content-Length) does not.
    server = start_app(start_server, "framing:app", dispatch)
    keep = "Connection: keep-alive"
    sock, buf = connect(server.port, timeout=5), bytearray()
    with sock:
        status, headers, body = get(sock, buf, "/streamed-length", headers=[keep], version="1.0")
        assert (status, headers["connection"], body) == (200, "keep-alive", b"streamed body")
        sock.sendall(b"GET /fake-length HTTP/1.0\r\n%s\r\n\r\n" % keep.encode())
        raw = bytes(buf) + recv_until_closed(sock)  # the test times out if the server keeps it open
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"X-Content-Length: 13" in head.split(b"\r\n") and b"Connection: close" in head.split(b"\r\n")
    assert b"chunked" not in head.lower() and body == b"streamed body"
    assert_clean(server.log())


@pytest.mark.parametrize("dispatch", DISPATCH)
def test_a_stream_short_of_its_content_length_ends_with_the_connection(start_server, dispatch):
    server = start_app(start_server, "framing:app", dispatch)
    with connect(server.port, timeout=5) as sock:
        sock.sendall(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = recv_until_closed(sock).partition(b"\r\n\r\n")
    assert b"Content-Length: 20" in head.split(b"\r\n") and body == b"only 14 bytes."
    server.wait_for_log("GET /short: the app's body ended 6 bytes short of its Content-Length", 5)
