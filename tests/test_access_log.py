"""The access log: combined format and the request time, escaping of what clients send, refused
requests logged too, one whole line per request under concurrent load, reopened by USR1."""

from __future__ import annotations

import os
import re
import signal
import stat
import threading

import pytest

from prefork.logs import check_format, escape
from support.client import connect, read_response, recv_until_closed
from support.logs import lines, wait_lines
from support.paths import APPS
from support.polling import wait_until

LINE = re.compile(r'^(\S+) - - \[[^]]+\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)" (\d+\.\d{6})$')


def test_a_line_in_combined_format_with_the_request_time(start_server, tmp_path):
    log = tmp_path / "access.log"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(log))
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext?x=1 HTTP/1.1\r\nHost: a\r\nReferer: http://r/\r\nUser-Agent: curl/8\r\n\r\n")
        read_response(sock)
    (line,) = wait_lines(log, 1)
    match = LINE.match(line)
    assert match, line
    assert match.groups()[:6] == ("127.0.0.1", "GET /plaintext?x=1 HTTP/1.1", "200", "13", "http://r/", "curl/8")



def test_access_log_off_means_no_access_log_as_in_nginx(start_server, tmp_path):
    # An operator writes nginx's `access_log off`: no log, and no file called "off" (the server's
    # working directory is tmp_path, where a relative path would be created).
    (tmp_path / "prefork.toml").write_text('access_log = "off"\n')
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", "off", cwd=tmp_path)
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 200
    config = start_server("-w", "1", "-b", "127.0.0.1:0", "-c", str(tmp_path / "prefork.toml"), cwd=tmp_path)
    with connect(config.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefork.toml"]

@pytest.mark.parametrize("raw, shown", [
    (b'a"b', r"a\x22b"),  # a quote would end the field
    (b"a\\b", r"a\x5Cb"),  # a backslash would fake an escape
    (b"a\tb", r"a\x09b"),  # a control byte
    (b"caf\xc3\xa9 \x9b[31m", r"caf\xC3\xA9 \x9B[31m"),  # non-ASCII, a C1 control (CSI)
])
def test_what_a_client_sends_is_escaped_so_it_cannot_forge_a_line(start_server, tmp_path, raw, shown):
    log = tmp_path / "access.log"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(log))
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nUser-Agent: " + raw + b'" 200 0 "-" "forged\r\n\r\n')
        read_response(sock)
    (line,) = wait_lines(log, 1)
    assert LINE.match(line), line  # still seven fields: nothing broke out of the quotes
    assert shown + r'\x22 200 0 \x22-\x22 \x22forged' in line


def test_every_unsafe_byte_is_escaped_and_every_other_kept():
    # The parser refuses most control bytes in a head already; the log does not rely on it.
    for byte in range(256):
        shown = escape(b"x" + bytes([byte]))
        if byte < 0x20 or byte == 0x7F or byte >= 0x80 or byte in b'"\\':
            assert shown == "x\\x%02X" % byte
        else:
            assert shown == "x" + chr(byte)


def test_requests_the_parser_refuses_are_logged(start_server, tmp_path):
    log = tmp_path / "access.log"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(log), "--header-timeout", "0.5")
    cases = [b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n",  # 400
             b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",  # 414
             b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 9000 + b"\r\n\r\n",  # 431
             b"\r\nGET / HTTP/1.1\r\nHost: a\r\n",  # 408 (never ends), after an empty line
             b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\"\\ttls"]  # a TLS ClientHello: 400 at once
    for request in cases:
        with connect(server.port) as sock:
            sock.sendall(request)
            recv_until_closed(sock)
    found = wait_lines(log, 5)
    # The first line of each head as it came (escaped, at most 2048 bytes), as nginx logs them.
    by_line = sorted((LINE.match(line).group(3), LINE.match(line).group(2)) for line in found)
    assert by_line == [("400", "GET / HTTP/1.1"), ("400", r"\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03\x22\x5Cttls"),
                       ("408", "GET / HTTP/1.1"),
                       ("414", "GET /" + "a" * 2043), ("431", "GET / HTTP/1.1")], found


def test_one_whole_line_per_request_under_concurrent_load(start_server, tmp_path):
    log = tmp_path / "access.log"
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--access-log", str(log))
    per_thread, threads = 50, 8

    def client(n):
        with connect(server.port) as sock:
            for i in range(per_thread):
                agent = b"agent-%d-%d-" % (n, i) + b"x" * 300
                sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nUser-Agent: " + agent + b"\r\n\r\n")
                assert read_response(sock)[0] == 200

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    found = wait_lines(log, per_thread * threads)
    assert len(found) == per_thread * threads
    assert all(LINE.match(line) for line in found)


def test_usr1_reopens_the_log_after_rotation(start_server, tmp_path):
    log = tmp_path / "access.log"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(log))
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        read_response(sock)
    wait_lines(log, 1)
    log.rename(tmp_path / "access.log.1")
    server.send_signal(signal.SIGUSR1)
    wait_until(log.exists, 10, message="the log reopened")
    with connect(server.port) as sock:
        sock.sendall(b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n")
        read_response(sock)
    assert "GET /json" in wait_lines(log, 1)[0]
    assert len(lines(tmp_path / "access.log.1")) == 1


def test_a_format_of_gunicorn_atoms(start_server, tmp_path):
    log = tmp_path / "access.log"
    fmt = '%(h)s %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %({x-id}i)s %(D)s'
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(log), "--access-log-format", fmt)
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext?a=b HTTP/1.1\r\nHost: a\r\nX-Id: 42\r\n\r\n")
        read_response(sock)
    (line,) = wait_lines(log, 1)
    assert re.fullmatch(r"127\.0\.0\.1 GET /plaintext a=b HTTP/1\.1 200 13 42 \d+", line), line


@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_the_user_response_headers_and_environ_atoms_log_what_gunicorn_logs(start_server, tmp_path, dispatch):
    """%(u)s is the Basic authentication user, %({name}o)s a response header, %({KEY}e)s the
    WSGI environ's KEY, as in gunicorn; a refused request after them has no response headers."""
    log = tmp_path / "access.log"
    fmt = "%(u)s|%({content-type}o)s|%({Content-Length}o)s|%({REMOTE_ADDR}e)s|%({HTTP_X_ID}e)s|%({PATH_INFO}e)s|" \
          "%({QUERY_STRING}e)s|%({wsgi.version}e)s|%(s)s"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(log), "--access-log-format", fmt,
                          "--chdir", APPS, "--dispatch", dispatch, "plain:app")
    with connect(server.port) as sock:
        sock.sendall(b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nX-Id: 42\r\nAuthorization: Basic Ym9iOnB3\r\n\r\n"
                     b"GET /st%72eam?n=2&size=3 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer xyz\r\n\r\n")
        buf = bytearray()
        assert read_response(sock, buf)[0] == 200
        assert read_response(sock, buf)[0] == 200
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
        assert read_response(sock)[0] == 400
    assert wait_lines(log, 3) == ["bob|text/plain|13|127.0.0.1|42|/hello|x=1|-|200",
                                  "-|text/plain|-|127.0.0.1|-|/stream|n=2&size=3|-|200",
                                  "-|-|-|127.0.0.1|-|-|-|-|400"]


def test_a_format_with_an_unknown_atom_is_refused():
    with pytest.raises(ValueError, match=r"%\(zz\)s"):
        check_format("%(h)s %(zz)s")
    assert escape(b"") == "-" and escape(None) == "-"


def test_refused_requests_are_counted_in_the_status(start_server):
    import json

    server = start_server("-w", "1", "-b", "127.0.0.1:0")

    def status():
        with connect(server.port) as sock:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n")
            return json.loads(read_response(sock)[2])

    before = status()["responses"]["4xx"]
    for _ in range(3):
        with connect(server.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")  # an invalid Host: 400
            assert recv_until_closed(sock).startswith(b"HTTP/1.1 400 ")
    wait_until(lambda: status()["responses"]["4xx"] == before + 3, 10, message="three more 4xx")


def test_the_access_and_error_logs_are_created_rw_for_their_owner_and_readable_by_the_group(start_server, tmp_path):
    """Both hold what clients sent (targets, queries) and tracebacks: rw-r----- whatever the umask."""
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    old = os.umask(0)
    try:
        server = start_server("-w", "1", "-b", "127.0.0.1:0", "--access-log", str(access), "--error-log", str(errors),
                              expect_ports=0)
    finally:
        os.umask(old)
    wait_until(lambda: access.exists() and errors.exists(), 10, message="the log files")
    assert (stat.S_IMODE(access.stat().st_mode), stat.S_IMODE(errors.stat().st_mode)) == (0o640, 0o640)
    errors.rename(tmp_path / "error.log.1")
    server.send_signal(signal.SIGUSR1)
    wait_until(errors.exists, 10, message="the reopened error log")
    assert stat.S_IMODE(errors.stat().st_mode) == 0o640
