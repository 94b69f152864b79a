"""TLS end to end: the real `prefork` command with a certificate of the test CA
(tests/support/tls.py), and clients that verify it: curl, http.client and raw ssl sockets.

Large bodies both ways byte-exact, keep-alive and pipelining, a certificate rotated by HUP
under load without a failed request, client certificates, and what must be closed quietly:
a TLS ClientHello on a plain port, plaintext on the TLS port, a handshake that never ends.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from support.client import read_response, recv_until_closed
from support.load import Load
from support.paths import APPS
from support.processes import wait_workers, workers

pytestmark = pytest.mark.timeout(90)

LOG_PROBLEMS = ("Traceback", "crashed", "Exception")
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def tls_args(files, *extra) -> list[str]:
    return ["--certfile", str(files.server_pem), "--keyfile", str(files.server_key), *extra]


def start_tls(start_server, files, *extra, workers_count=1, **kwargs):
    return start_server("-w", str(workers_count), "-b", "127.0.0.1:0", *tls_args(files), *extra, **kwargs)


def client_context(certificates, cert: str | None = None) -> ssl.SSLContext:
    """A client that trusts the test CA only and checks the server's name, as browsers do."""
    context = ssl.create_default_context(cafile=str(certificates.ca_pem))
    if cert:
        context.load_cert_chain(str(certificates.directory / f"{cert}.pem"),
                                str(certificates.directory / f"{cert}.key"))
    return context


def tls_connect(port: int, context: ssl.SSLContext, name: str = "127.0.0.1", timeout: float = 10.0,
                session=None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=name, session=session)
    except BaseException:
        raw.close()
        raise


def subject(sock: ssl.SSLSocket) -> str:
    return dict(item for rdn in sock.getpeercert()["subject"] for item in rdn)["commonName"]


def client_hello() -> bytes:
    """The first flight of a TLS client, as a browser would send it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def assert_clean(server) -> None:
    log = server.log()
    for problem in LOG_PROBLEMS:
        assert problem not in log, f"{problem} in the server log:\n{log}"


def get(sock, target: str, buffer: bytearray | None = None) -> tuple[int, dict, bytes]:
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return read_response(sock, buffer)


# -- clients that verify the certificate ----------------------------------------------------------

def test_curl_verifies_the_certificate_and_speaks_http_1_1(start_server, certificates):
    server = start_tls(start_server, certificates)
    for host in ("127.0.0.1", "localhost"):
        result = subprocess.run(["curl", "-sS", "--cacert", str(certificates.ca_pem), "-w", "\n%{http_version}",
                                 f"https://{host}:{server.port}/plaintext"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Hello, World!\n1.1"  # ALPN: http/1.1, though curl offers h2 first
    result = subprocess.run(["curl", "-sS", f"https://127.0.0.1:{server.port}/plaintext"],  # the system's CAs
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 60, result.stderr  # curl: the peer's certificate cannot be verified
    assert_clean(server)


def test_http_client_verifies_the_certificate(start_server, certificates):
    server = start_tls(start_server, certificates)
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10,
                                             context=client_context(certificates))
    try:
        for path, expected in (("/plaintext", b"Hello, World!"), ("/json", b'{"message":"Hello, World!"}')):
            connection.request("GET", path)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, expected)
        assert connection.sock.version() in ("TLSv1.3", "TLSv1.2")
    finally:
        connection.close()
    assert_clean(server)


def test_alpn_picks_http_1_1_among_what_the_client_offers(start_server, certificates):
    server = start_tls(start_server, certificates)
    context = client_context(certificates)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(server.port, context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        assert get(sock, "/plaintext")[0] == 200


def test_tls_min_version(start_server, certificates):
    server = start_tls(start_server, certificates, "--tls-min-version", "1.3")
    old = client_context(certificates)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect(server.port, old).close()
    with tls_connect(server.port, client_context(certificates)) as sock:
        assert sock.version() == "TLSv1.3"
        assert get(sock, "/plaintext")[0] == 200
    default = start_tls(start_server, certificates)
    with tls_connect(default.port, old) as sock:  # 1.2 is accepted by default
        assert sock.version() == "TLSv1.2"
        assert get(sock, "/plaintext")[0] == 200


# -- bodies, keep-alive, pipelining -----------------------------------------------------------

def test_a_10_mb_static_file_and_a_10_mb_upload_are_byte_exact(start_server, certificates, tmp_path):
    root = tmp_path / "public"
    root.mkdir()
    data = os.urandom(10 * 1024 * 1024)
    (root / "big.bin").write_bytes(data)
    server = start_tls(start_server, certificates, "--static-root", str(root))
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=30,
                                             context=client_context(certificates))
    try:
        connection.request("GET", "/static/big.bin")
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200 and len(body) == len(data)
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        connection.request("POST", "/echo", body=data, headers={"Content-Type": "application/octet-stream"})
        response = connection.getresponse()  # the same connection: kept alive after both
        body = response.read()
        assert response.status == 200 and len(body) == len(data)
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        connection.request("GET", "/static/big.bin", headers={"Range": "bytes=5000000-5000999"})
        response = connection.getresponse()
        assert (response.status, response.read()) == (206, data[5000000:5001000])
    finally:
        connection.close()
    assert_clean(server)


def test_a_wsgi_file_wrapper_over_tls_is_byte_exact(start_server, certificates, tmp_path):
    path = tmp_path / "file.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    server = start_tls(start_server, certificates, "plain:raw", "--chdir", str(APPS))
    with tls_connect(server.port, client_context(certificates)) as sock:
        status, _, body = get(sock, f"/file?path={path}")
        assert status == 200 and body == data
    assert_clean(server)


def test_keep_alive_and_three_pipelined_requests(start_server, certificates):
    server = start_tls(start_server, certificates)
    with tls_connect(server.port, client_context(certificates)) as sock:
        buffer = bytearray()
        for _ in range(3):  # one after the other on one connection
            assert get(sock, "/plaintext", buffer)[2] == b"Hello, World!"
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        bodies = [read_response(sock, buffer)[2] for _ in range(3)]
        assert bodies == [b"Hello, World!", b'{"message":"Hello, World!"}', b"hello"]
        assert not buffer
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        status, headers, _ = read_response(sock, buffer)
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(100) == b""  # then closed, with close_notify: a clean end, no error
    assert_clean(server)


def test_wsgi_url_scheme_is_https(start_server, certificates):
    server = start_tls(start_server, certificates, "plain:app", "--chdir", str(APPS))
    with tls_connect(server.port, client_context(certificates)) as sock:
        buffer = bytearray()
        environs = []
        for host in (f"127.0.0.1:{server.port}", "127.0.0.1"):
            sock.sendall(f"GET /environ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, _, body = read_response(sock, buffer)
            assert status == 200
            environs.append(json.loads(body))
    assert [e["wsgi.url_scheme"] for e in environs] == ["https", "https"]
    assert [e["SERVER_PORT"] for e in environs] == [str(server.port), "443"]  # no port: https's
    assert_clean(server)


# -- what is closed quietly -------------------------------------------------------------------

def test_tls_on_the_plain_port_and_plaintext_on_the_tls_port_are_closed_quietly(start_server, certificates):
    server = start_server("-w", "1", "-b", "https://127.0.0.1:0", "-b", "http://127.0.0.1:0",
                          *tls_args(certificates))
    tls_port, plain_port = server.ports
    before = set(wait_workers(server.proc.pid, 1))
    assert len(before) == 1

    with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as sock:
        sock.sendall(client_hello())
        answer = recv_until_closed(sock)  # a 400 at most (a request line cannot begin with 0x16)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    for garbage in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\x00" * 200,
                    b"\x16\x03\x01\x00\x05hello"):  # a handshake record that holds no handshake
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as sock:
            sock.sendall(garbage)
            answer = recv_until_closed(sock)
            assert b"Hello" not in answer and not answer.startswith(b"HTTP/1.1 200")

    with tls_connect(tls_port, client_context(certificates)) as sock:  # the next one is served
        assert get(sock, "/plaintext")[0] == 200
    with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as sock:
        assert get(sock, "/plaintext")[0] == 200
    assert set(workers(server.proc.pid)) == before
    assert_clean(server)


def test_a_handshake_that_never_ends_is_cut_at_header_timeout(start_server, certificates):
    server = start_tls(start_server, certificates, "--header-timeout", "1")
    before = set(wait_workers(server.proc.pid, 1))
    hello = client_hello()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
        started = time.monotonic()
        slow.sendall(hello[:5])  # the record header of a ClientHello, then nothing
        assert recv_until_closed(slow) == b""
        assert recv_until_closed(silent) == b""  # nothing at all
        elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 5, elapsed
    with tls_connect(server.port, client_context(certificates)) as sock:  # handshake done, no request
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.8 <= time.monotonic() - started < 5
    with tls_connect(server.port, client_context(certificates)) as sock:
        assert get(sock, "/plaintext")[0] == 200
    assert set(workers(server.proc.pid)) == before
    assert_clean(server)


def test_a_client_that_vanishes_mid_request_leaves_no_trace(start_server, certificates):
    server = start_tls(start_server, certificates)
    before = set(wait_workers(server.proc.pid, 1))
    for request in (b"GET /plain", b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc"):
        sock = tls_connect(server.port, client_context(certificates))
        sock.sendall(request)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, without close_notify: the TCP connection is simply gone
    with tls_connect(server.port, client_context(certificates)) as sock:
        assert get(sock, "/plaintext")[0] == 200
    assert set(workers(server.proc.pid)) == before
    assert_clean(server)


# -- client certificates ----------------------------------------------------------------------

def refused(port: int, context: ssl.SSLContext) -> bool:
    """The handshake fails, or (TLS 1.3: the client's certificate is checked after the client
    thinks it is done) the first read gets the server's alert or the end of the connection."""
    try:
        with tls_connect(port, context) as sock:
            sock.sendall(REQUEST)
            return sock.recv(100) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def test_client_certificates_required(start_server, certificates):
    server = start_tls(start_server, certificates, "--ca-certs", str(certificates.ca_pem), "--cert-reqs", "2")
    before = set(wait_workers(server.proc.pid, 1))
    assert refused(server.port, client_context(certificates))  # no certificate
    assert refused(server.port, client_context(certificates, "stranger"))  # signed by another CA
    with tls_connect(server.port, client_context(certificates, "client")) as sock:
        assert get(sock, "/plaintext")[2] == b"Hello, World!"
    assert set(workers(server.proc.pid)) == before
    assert_clean(server)


def test_client_certificates_optional(start_server, certificates):
    server = start_tls(start_server, certificates, "--ca-certs", str(certificates.ca_pem),
                       "--cert-reqs", "optional")
    with tls_connect(server.port, client_context(certificates)) as sock:  # none is fine
        assert get(sock, "/plaintext")[0] == 200
    with tls_connect(server.port, client_context(certificates, "client")) as sock:
        assert get(sock, "/plaintext")[0] == 200
    assert refused(server.port, client_context(certificates, "stranger"))  # a bad one is not
    assert_clean(server)


# -- the master: keys read before the fork, rotation by HUP --------------------------------------

def test_workers_not_root_serve_a_key_only_root_can_read(start_server, certificates, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("changing user needs root")
    files = certificates.copy_to(tmp_path / "private")
    files.directory.chmod(0o700)
    server = start_tls(start_server, files, "--user", "nobody")
    with tls_connect(server.port, client_context(certificates)) as sock:
        assert get(sock, "/plaintext")[0] == 200
    assert_clean(server)


def test_a_session_resumes_on_any_worker(start_server, certificates):
    """The workers inherit one context, so one set of session-ticket keys: a client resumes
    its session whichever worker its next connection reaches."""
    server = start_tls(start_server, certificates, workers_count=2)
    wait_workers(server.proc.pid, 2)
    context = client_context(certificates)
    with tls_connect(server.port, context) as sock:
        get(sock, "/plaintext")  # TLS 1.3 tickets come after the handshake: read something first
        session = sock.session
    reused = []
    for _ in range(20):  # SO_REUSEPORT hashes each new connection to one of the two workers
        with tls_connect(server.port, context, session=session) as sock:
            assert get(sock, "/plaintext")[0] == 200
            reused.append(sock.session_reused)
    assert all(reused), reused


@pytest.mark.slow
def test_hup_rotates_the_certificate_under_load_without_a_failed_request(start_server, certificates, tmp_path):
    files = certificates.copy_to(tmp_path / "live")
    server = start_tls(start_server, files, workers_count=2)
    master = server.proc.pid
    first = wait_workers(master, 2)
    context = client_context(certificates)
    subjects = []  # of the certificate of each new connection, in order

    def connect():
        sock = tls_connect(server.port, context, timeout=5)
        subjects.append(subject(sock))
        return sock

    with Load(server.port, threads=3, connect=connect) as load:
        assert set(subjects) == {"prefork test server"}
        for name in ("server.pem", "server.key"):  # as certbot does: new files, renamed into place
            shutil.copy(files.directory / name.replace("server", "rotated"), files.directory / f"{name}.new")
            os.replace(files.directory / f"{name}.new", files.directory / name)
        server.send_signal(signal.SIGHUP)
        wait_workers(master, 2, exclude=first, timeout=20)  # the old workers have exited
        load.wait_requests(50)
        since = len(subjects)
        load.wait_requests(50)
    load.assert_no_failure()
    assert set(subjects[since:]) == {"prefork rotated server"}
    with tls_connect(server.port, context) as sock:
        assert subject(sock) == "prefork rotated server"
    assert_clean(server)
