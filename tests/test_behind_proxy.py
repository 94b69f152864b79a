"""Behind a proxy: forwarded headers from trusted peers only, the PROXY protocol (v1 and v2),
unix sockets a proxy running as another user can connect to, a pidfile nobody else can write."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess

import pytest

from support.client import connect, read_response, recv_until_closed
from support.command import check
from support.paths import APPS
from support.polling import wait_until
from support.proxies import shared_directory

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def environ_of(sock: socket.socket, headers: bytes = b"") -> dict:
    sock.sendall(b"GET /environ HTTP/1.1\r\nHost: example.com\r\n" + headers + b"\r\n")
    status, _, body = read_response(sock)
    assert status == 200, body
    return json.loads(body)


def proxy_v2(client: tuple[str, int], server: tuple[str, int] = ("127.0.0.1", 80)) -> bytes:
    addresses = socket.inet_aton(client[0]) + socket.inet_aton(server[0]) + struct.pack("!HH", client[1], server[1])
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


# -- forwarded headers ------------------------------------------------------------------------


def test_forwarded_headers_from_a_trusted_peer_set_the_scheme_and_the_client(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--chdir", APPS, "plain:app")
    with connect(server.port) as sock:
        environ = environ_of(sock, b"X-Forwarded-For: 203.0.113.9, 127.0.0.1\r\nX-Forwarded-Proto: https\r\n")
        assert environ["wsgi.url_scheme"] == "https"
        assert environ["REMOTE_ADDR"] == "203.0.113.9"  # right-most untrusted entry
        environ = environ_of(sock, b'Forwarded: for="[2001:db8::7]:4711";proto=https\r\n')
        assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("2001:db8::7", "https")
        environ = environ_of(sock)  # the next request on the connection has no headers: none of it stays
        assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--forwarded-allow-ips", "10.0.0.0/8",
                          "--chdir", APPS, "plain:app")
    with connect(server.port) as sock:
        environ = environ_of(sock, b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n")
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"  # the app still sees the header


def test_a_forged_entry_left_of_an_untrusted_one_is_not_believed(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--chdir", APPS, "plain:app")
    with connect(server.port) as sock:
        environ = environ_of(sock, b"X-Forwarded-For: 127.0.0.1, 198.51.100.4\r\n")
    assert environ["REMOTE_ADDR"] == "198.51.100.4"


def test_a_bad_forwarded_allow_ips_names_key_and_value(tmp_path):
    result = check("--forwarded-allow-ips", "10.0.0.0/8,nonsense")
    assert result.returncode == 1
    assert "forwarded_allow_ips" in result.stderr and "nonsense" in result.stderr


# -- the PROXY protocol -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_gives_the_client_address_to_the_app_and_the_access_log(start_server, version):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", "--access-log", "-",
                          "--chdir", APPS, "plain:app")
    header = (b"PROXY TCP4 198.51.100.23 127.0.0.1 40123 80\r\n" if version == "v1"
              else proxy_v2(("198.51.100.23", 40123)))
    with connect(server.port) as sock:
        sock.sendall(header)
        environ = environ_of(sock)
        assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("198.51.100.23", "40123")
        environ = environ_of(sock)  # the whole connection is that client's
        assert environ["REMOTE_ADDR"] == "198.51.100.23"
    server.wait_for_log(r'198\.51\.100\.23 - - \[[^]]+\] "GET /environ HTTP/1\.1" 200')


def test_proxy_protocol_header_split_across_reads_and_followed_by_the_request(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", "--chdir", APPS, "plain:app")
    header = proxy_v2(("192.0.2.1", 1234))
    with connect(server.port) as sock:
        sock.sendall(header[:7])
        sock.sendall(header[7:] + b"GET /environ HTTP/1.1\r\nHost: a\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "192.0.2.1"


def test_proxy_protocol_local_command_keeps_the_peer(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", "--chdir", APPS, "plain:app")
    local = V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])  # LOCAL: HAProxy's own health check
    with connect(server.port) as sock:
        sock.sendall(local)
        assert environ_of(sock)["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("start", [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"PROXY TCP4 x y 1 2\r\n",
                                   b"\x16\x03\x01\x02\x00", b"PROXY " + b"1" * 200])
def test_a_connection_without_a_valid_proxy_header_is_closed(start_server, start):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", "--chdir", APPS, "plain:app")
    with connect(server.port) as sock:
        sock.sendall(start)
        assert recv_until_closed(sock) == b""
    with connect(server.port) as sock:  # and the worker goes on
        sock.sendall(proxy_v2(("192.0.2.1", 1)))
        assert environ_of(sock)["REMOTE_ADDR"] == "192.0.2.1"


def test_a_proxy_header_that_never_comes_is_cut_at_header_timeout(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--proxy-protocol", "--header-timeout", "0.5")
    with connect(server.port) as sock:
        sock.sendall(b"PROXY TCP4 ")
        sock.settimeout(5)
        assert recv_until_closed(sock) == b""


# -- unix sockets and the pidfile -------------------------------------------------------------


def socket_mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_unix_socket_is_rw_for_everyone_whatever_the_process_umask(start_server, tmp_path):
    path = tmp_path / "app.sock"
    old = os.umask(0o077)  # the umask the server inherits must not make it 0700
    try:
        server = start_server("-w", "1", "-b", f"unix:{path}", "--pid", str(tmp_path / "pid"))
    finally:
        os.umask(old)
    assert socket_mode(path) == 0o666
    assert socket_mode(tmp_path / "pid") == 0o644
    server.wait_for_log(rf"(?m)listening on unix:{path}$")
    assert "(port 0)" not in server.log()


def test_umask_and_a_mode_in_the_address_decide_the_socket_mode(start_server, tmp_path):
    masked, explicit = tmp_path / "masked.sock", tmp_path / "explicit.sock"
    old = os.umask(0)  # the pidfile is never world-writable, even so
    try:
        start_server("-w", "1", "-m", "027", "-b", f"unix:{masked}", "-b", f"unix:{explicit}?mode=660",
                     "--pid", str(tmp_path / "pid"))
    finally:
        os.umask(old)
    assert socket_mode(masked) == 0o640
    assert socket_mode(explicit) == 0o660
    assert socket_mode(tmp_path / "pid") == 0o644
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(explicit))
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(sock)[0] == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
def test_the_workers_user_and_group_own_a_unix_socket_so_mode_660_lets_that_group_in(start_server):
    """-u/-g with unix:PATH?mode=660: the socket belongs to that user and group (as gunicorn
    does), so a proxy in the group connects and nobody else does; owned by root, the proxy
    would have to be in root's group."""
    directory = shared_directory()  # one that nobody may enter: pytest's tmp_path is root's only
    try:
        path = directory / "app.sock"
        start_server("-w", "1", "-u", "nobody", "-g", "nogroup", "-b", f"unix:{path}?mode=660")
        wait_until(path.exists, 5, message="the socket")
        owner = os.stat(path)
        assert (owner.st_uid, owner.st_gid) == (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
        client = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                  "--unix-socket", str(path), "http://a/plaintext"]
        daemon = pwd.getpwnam("daemon").pw_uid
        # A process of that group, as nginx's workers would be (www-data put in the group) ...
        answer = subprocess.run(client, capture_output=True, text=True, timeout=20, user=daemon,
                                group=grp.getgrnam("nogroup").gr_gid, extra_groups=[])
        assert answer.stdout == "200", answer
        # ... and one of another group, refused by the mode.
        refused = subprocess.run(client, capture_output=True, text=True, timeout=20, user=daemon,
                                 group=grp.getgrnam("daemon").gr_gid, extra_groups=[])
        assert refused.returncode == 7 and refused.stdout == "000", refused  # 7: could not connect
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_unix_socket_peer_may_set_forwarded_headers(start_server, tmp_path):
    path = tmp_path / "app.sock"
    start_server("-w", "1", "-b", f"unix:{path}", "--forwarded-allow-ips", "10.9.9.9",
                 "--chdir", APPS, "plain:app")
    wait_until(lambda: path.exists(), 5, message="the socket")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        environ = environ_of(sock, b"X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-Proto: https\r\n")
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("203.0.113.5", "https")


def unix_get(path, target: str = "/plaintext") -> int:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        return read_response(sock)[0]


@pytest.mark.timeout(40)
def test_a_stopping_server_never_removes_the_socket_of_the_server_that_replaced_it(start_server, tmp_path):
    """A graceful stop removes its unix socket at once (new connections fail there); a server
    started meanwhile on the same path binds it, and the old one's exit must leave that one's
    socket file alone."""
    path = tmp_path / "app.sock"
    old = start_server("-w", "1", "-b", f"unix:{path}", "--chdir", APPS, "plain:app", expect_ports=0)
    wait_until(lambda: path.exists() and unix_get(path, "/hello") == 200, 10, message="the old server serving")
    with socket.socket(socket.AF_UNIX) as slow:
        slow.settimeout(15)
        slow.connect(str(path))
        slow.sendall(b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: a\r\n\r\n")  # keeps the old server draining
        old.send_signal(signal.SIGQUIT)
        wait_until(lambda: not path.exists(), 5, message="the old server to remove its socket")
        new = start_server("-w", "1", "-b", f"unix:{path}", "--pid", str(tmp_path / "new.pid"), expect_ports=0)
        wait_until(lambda: path.exists() and unix_get(path) == 200, 10, message="the new server on the path")
        assert read_response(slow)[0] == 200
    assert old.proc.wait(10) == 0
    assert path.exists() and unix_get(path) == 200, "the old server removed the new one's socket"
    new.stop()
