"""Static files under /static/ (--static-root), against the real prefork on 127.0.0.1.

Raw sockets where the request must reach the server exactly as written (httpx would normalise
`..` away); one shared server for the tests that only read.
"""

from __future__ import annotations

import os
import re
import socket
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from support.client import connect, get, read_head, read_response
from support.command import check
from support.descriptors import open_files
from support.polling import wait_until
from support.processes import worker_pid
from support.server import Server

pytestmark = pytest.mark.timeout(30)

MTIME = 1_700_000_000  # the files' modification time: ETag and Last-Modified follow from it
TEXT = "héllo, static world\n".encode()
BLOB = os.urandom(3 * 1024 * 1024)
SECRET = b"secret outside the root\n"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/ (served) beside files and a look-alike sibling root2/ that must never be reached."""
    base = tmp_path_factory.mktemp("static")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(TEXT)
    (root / "blob.bin").write_bytes(BLOB)
    (root / "sub" / "index.html").write_bytes(b"<p>index</p>\n")
    (root / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (root / "with space.txt").write_bytes(b"space\n")
    (root / "é.txt").write_bytes(b"accent\n")
    for name in ("style.css", "app.js", "data.json", "pic.png", "noext", "archive.tar.gz"):
        (root / name).write_bytes(b"x")
    (root / "empty.txt").write_bytes(b"")
    (base / "secret.txt").write_bytes(SECRET)
    (base / "root2").mkdir()
    (base / "root2" / "x.txt").write_bytes(SECRET)
    (root / "evil").symlink_to(base / "secret.txt")  # a file outside
    (root / "evil_dir").symlink_to(base)  # a directory outside
    (root / "sibling").symlink_to(base / "root2" / "x.txt")  # shares the root's name as prefix
    (root / "link.txt").symlink_to(root / "a.txt")  # inside: allowed
    os.mkfifo(root / "fifo")  # opening it must not block the worker
    for path in root.rglob("*"):
        if not path.is_symlink() and not path.is_fifo():
            os.utime(path, (MTIME, MTIME))
    return base


@pytest.fixture(scope="module")
def port(tree):
    server = Server(["-w", "1", "-b", "127.0.0.1:0", "--static-root", str(tree / "root")])
    yield server.port
    server.stop()


ETAG = '"%x-%x"' % (MTIME, len(TEXT))
LAST_MODIFIED = formatdate(MTIME, usegmt=True)


def test_text_file_with_type_length_and_validators(port):
    status, headers, body = get(port, "/static/a.txt")
    assert status == 200
    assert body == TEXT
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-length"] == str(len(TEXT))
    assert headers["etag"] == ETAG
    assert headers["last-modified"] == LAST_MODIFIED
    assert headers["accept-ranges"] == "bytes"
    assert b"<code>/static/NAME</code>" in get(port, "/")[2]  # the home page lists the route


def test_binary_file_byte_exact(port):
    status, headers, body = get(port, "/static/blob.bin")
    assert status == 200
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == str(len(BLOB))
    assert body == BLOB


@pytest.mark.parametrize("name, content_type", [
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("pic.png", "image/png"),
    ("noext", "application/octet-stream"),
    ("archive.tar.gz", "application/gzip"),  # never Content-Encoding: the client keeps the .gz
    ("link.txt", "text/plain; charset=utf-8"),
])
def test_content_type_from_extension(port, name, content_type):
    status, headers, _ = get(port, "/static/" + name)
    assert (status, headers["content-type"]) == (200, content_type)
    assert "content-encoding" not in headers


def test_percent_decoded_and_normalised_names(port):
    assert get(port, "/static/with%20space.txt")[::2] == (200, b"space\n")
    assert get(port, "/static/%C3%A9.txt")[::2] == (200, b"accent\n")
    assert get(port, "/static/sub/../a.txt")[::2] == (200, TEXT)
    assert get(port, "/static/./sub//page.html?v=3")[::2] == (200, b"<p>page</p>\n")
    assert get(port, "/static/empty.txt")[::2] == (200, b"")


def test_head_has_headers_and_no_body(port):
    with connect(port) as sock:
        sock.sendall(b"HEAD /static/blob.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = bytearray()
        status, headers = read_head(sock, buf)
        assert (status, headers["content-length"]) == (200, str(len(BLOB)))
        assert headers["content-type"] == "application/octet-stream"
        # The next bytes are the next response's: no body came after the HEAD's head.
        assert read_response(sock, buf)[::2] == (200, TEXT)
        assert not buf


@pytest.mark.parametrize("condition", [
    f"If-None-Match: {ETAG}",
    f'If-None-Match: "other", W/{ETAG}',
    "If-None-Match: *",
    f"If-Modified-Since: {LAST_MODIFIED}",
    f"If-Modified-Since: {formatdate(MTIME + 3600, usegmt=True)}",
])
def test_not_modified(port, condition):
    with connect(port) as sock:
        sock.sendall(f"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n{condition}\r\n\r\n"
                     "GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        buf = bytearray()
        status, headers, body = read_response(sock, buf)
        assert (status, body) == (304, b"")
        assert headers["etag"] == ETAG and headers["last-modified"] == LAST_MODIFIED
        assert "content-length" not in headers
        assert read_response(sock, buf)[::2] == (200, TEXT)  # the 304 carried no body


@pytest.mark.parametrize("condition", [
    'If-None-Match: "other"',
    f"If-Modified-Since: {formatdate(MTIME - 1, usegmt=True)}",
    "If-Modified-Since: not a date",
    f'If-None-Match: "other"\r\nIf-Modified-Since: {LAST_MODIFIED}',  # If-None-Match decides
])
def test_modified_gets_the_file(port, condition):
    assert get(port, "/static/a.txt", condition)[::2] == (200, TEXT)


@pytest.mark.parametrize("target", [
    "/static/../secret.txt",
    "/static/../../../../../../etc/passwd",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E%2Fsecret.txt",
    "/static/..%2fsecret.txt",
    "/static/sub/../../secret.txt",
    "/static//etc/passwd",
    "/static/evil",
    "/static/evil_dir/secret.txt",
    "/static/sibling",
    "/static/a.txt%00.png",
    "/static/%00",
])
def test_nothing_outside_the_root(port, target):
    missing = get(port, "/static/no-such-file")
    status, headers, body = get(port, target)
    assert status == 404
    assert SECRET not in body
    # The same answer as for a file that does not exist: nothing tells what is outside.
    assert (body, headers["content-type"]) == (missing[2], missing[1]["content-type"])


@pytest.mark.parametrize("target", ["/static/sub/", "/static/sub/.", "/static/./sub//", "/static/sub/?v=1",
                                    "/static/sub/index.html"])
def test_a_directory_url_with_its_slash_serves_its_index(port, target):
    status, headers, body = get(port, target)
    assert (status, body) == (200, b"<p>index</p>\n")
    assert headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("target, location", [
    ("/static/sub", "/static/sub/"),
    ("/static/sub?v=1&w=%20x", "/static/sub/?v=1&w=%20x"),  # the query string is kept as sent
    ("/static/./sub", "/static/./sub/"),
    ("/static", "/static/"),  # the mount itself
    ("/static?x", "/static/?x"),
])
def test_a_directory_url_without_its_slash_is_redirected(port, target, location):
    status, headers, body = get(port, target)
    assert (status, headers["location"], body) == (301, location, b"Moved Permanently\n")
    assert get(port, location)[0] in (200, 404)  # /static/ has no index.html: no listing either


@pytest.mark.parametrize("target", ["/static/", "/static/?x", "/static/sub/..", "/static/a.txt/",
                                    "/static/fifo", "/static/no-such-file", "/static/evil_dir",
                                    "/static/evil_dir/", "/staticx"])
def test_no_listing_special_files_and_missing_are_404(port, target):
    assert get(port, target)[0] == 404


def test_other_methods_are_405(port):
    with connect(port) as sock:
        sock.sendall(b"POST /static/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                     b"DELETE /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = bytearray()
        for _ in range(2):
            status, headers, _ = read_response(sock, buf)
            assert (status, headers["allow"]) == (405, "GET, HEAD")
        assert read_response(sock, buf)[::2] == (200, TEXT)


def test_pipelined_files_come_back_in_order(port):
    names = ["a.txt", "blob.bin", "sub/page.html", "blob.bin", "no-such-file", "a.txt"]
    with connect(port) as sock:
        sock.sendall(b"".join(b"GET /static/%s HTTP/1.1\r\nHost: t\r\n\r\n" % n.encode() for n in names))
        buf = bytearray()
        answers = [read_response(sock, buf)[::2] for _ in names]
    assert answers == [(200, TEXT), (200, BLOB), (200, b"<p>page</p>\n"), (200, BLOB),
                       (404, b"Not Found\n"), (200, TEXT)]


@pytest.mark.parametrize("spec, status, part, content_range", [
    ("bytes=0-9", 206, TEXT[0:10], f"bytes 0-9/{len(TEXT)}"),
    ("bytes=5-", 206, TEXT[5:], f"bytes 5-{len(TEXT) - 1}/{len(TEXT)}"),
    ("bytes=-4", 206, TEXT[-4:], f"bytes {len(TEXT) - 4}-{len(TEXT) - 1}/{len(TEXT)}"),
    ("bytes=3-1000", 206, TEXT[3:], f"bytes 3-{len(TEXT) - 1}/{len(TEXT)}"),
    ("bytes=1000-", 416, None, f"bytes */{len(TEXT)}"),
    ("bytes=0-1,4-5", 200, TEXT, None),  # several ranges: ignored, the whole file
    ("bytes=5-2", 200, TEXT, None),  # invalid: ignored
    ("lines=1-2", 200, TEXT, None),
    # thousands of digits: ignored, not a 500; leading zeros are only zeros
    pytest.param("bytes=" + "9" * 5000 + "-", 200, TEXT, None, id="huge-first"),
    pytest.param("bytes=0-" + "9" * 5000, 200, TEXT, None, id="huge-last"),
    pytest.param("bytes=-" + "9" * 5000, 200, TEXT, None, id="huge-suffix"),
    pytest.param("bytes=" + "0" * 5000 + "3-4", 206, TEXT[3:5], f"bytes 3-4/{len(TEXT)}", id="zeros"),
])
def test_single_byte_ranges(port, spec, status, part, content_range):
    got_status, headers, body = get(port, "/static/a.txt", f"Range: {spec}")
    assert got_status == status
    assert headers.get("content-range") == content_range
    if part is not None:
        assert body == part and headers["content-length"] == str(len(part))


def test_range_of_large_file_and_if_range(port):
    status, headers, body = get(port, "/static/blob.bin", "Range: bytes=1000000-1999999")
    assert (status, body) == (206, BLOB[1000000:2000000])
    assert get(port, "/static/a.txt", "Range: bytes=0-1", f"If-Range: {ETAG}")[::2] == (206, TEXT[:2])
    assert get(port, "/static/a.txt", "Range: bytes=0-1", 'If-Range: "old"')[::2] == (200, TEXT)


def test_stalled_download_blocks_nobody_and_closes_its_file_on_abort(start_server, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: more than the socket buffers hold
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--static-root", str(tmp_path))
    worker = worker_pid(server)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", server.port))
    reader.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    reader.recv(100)  # the response started; now it stalls, unread
    wait_until(lambda: open_files(worker).count(str(big)) == 1, message="the file open in the worker")
    # The same single worker keeps serving while that file waits for EPOLLOUT.
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"Hello, World!")
    assert open_files(worker).count(str(big)) == 1
    reader.close()  # unread data: the kernel resets the connection
    wait_until(lambda: open_files(worker).count(str(big)) == 0, message="the file closed after the abort")
    with connect(server.port) as sock:  # the whole file, far beyond what one sendfile turn sends
        sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-3\r\n\r\n")
        buf = bytearray()
        status, _, body = read_response(sock, buf)
        assert (status, len(body)) == (200, 64 * 1024 * 1024) and body.count(0) == len(body)
        assert read_response(sock, buf)[::2] == (206, b"\0\0\0")
    wait_until(lambda: open_files(worker).count(str(big)) == 0, message="the file closed once sent")


def test_without_static_root_there_is_no_static(start_server, tmp_path):
    (tmp_path / "a.txt").write_bytes(TEXT)
    server = start_server("-w", "1", "-b", "127.0.0.1:0", cwd=tmp_path)
    assert get(server.port, "/static/a.txt")[0] == 404
    assert b"/static/" not in get(server.port, "/")[2]


def test_missing_root_is_logged_and_answers_404(start_server, tmp_path):
    missing = tmp_path / "nowhere"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--static-root", str(missing))
    assert get(server.port, "/static/a.txt")[0] == 404
    server.wait_for_log(r"static_root '%s' .*is not a directory" % missing)
    assert get(server.port, "/plaintext")[0] == 200


@pytest.mark.parametrize("date", ["Sat, 01 Jan 99999 00:00:00 GMT", "Mon, 32 Jan 2020 00:00:00 GMT",
                                  "Sat, 01 Jan " + "9" * 5000 + " 00:00:00 GMT", "not a date"],
                         ids=["year-99999", "day-32", "year-of-5000-digits", "not-a-date"])
def test_an_impossible_if_modified_since_is_ignored(port, date):
    status, _, body = get(port, "/static/a.txt", f"If-Modified-Since: {date}")
    assert (status, body) == (200, TEXT)
    assert get(port, "/static/a.txt")[0] == 200  # and the worker serves on


# -- more roots: [[static]] tables in the configuration file ---------------------------------------

def test_static_tables_mount_more_roots(start_server, tmp_path):
    (tmp_path / "assets" / "img").mkdir(parents=True)
    (tmp_path / "assets" / "app.css").write_bytes(b"body{}\n")
    (tmp_path / "assets" / "docs").mkdir()
    (tmp_path / "assets" / "docs" / "index.html").write_bytes(b"<p>docs</p>\n")
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "logo.png").write_bytes(b"\x89PNG")
    (tmp_path / "assets" / "img" / "logo.png").write_bytes(b"shadowed by the longer mount")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    conf = tmp_path / "site.toml"
    conf.write_text('[[static]]\nurl = "/assets"\nroot = "assets"\n\n'
                    '[[static]]\nurl = "/assets/img/"\nroot = "pictures"\n')
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "-c", str(conf), cwd=tmp_path)
    status, headers, body = get(server.port, "/assets/app.css")
    assert (status, headers["content-type"], body) == (200, "text/css; charset=utf-8", b"body{}\n")
    assert get(server.port, "/assets/img/logo.png")[::2] == (200, b"\x89PNG")  # the longest URL wins
    assert get(server.port, "/assets/docs/")[::2] == (200, b"<p>docs</p>\n")
    assert get(server.port, "/assets/docs?a=b")[1]["location"] == "/assets/docs/?a=b"
    assert get(server.port, "/assets")[1]["location"] == "/assets/"
    for target in ("/assets/../secret.txt", "/assets/%2e%2e/secret.txt", "/assets/img/../../secret.txt",
                   "/static/app.css", "/assetsx/app.css"):
        status, _, body = get(server.port, target)
        assert status == 404 and SECRET not in body, target
    home = get(server.port, "/")[2]
    assert b"<code>/assets/NAME</code>" in home and b"<code>/assets/img/NAME</code>" in home
    assert get(server.port, "/plaintext")[::2] == (200, b"Hello, World!")  # the site's routes stay


@pytest.mark.parametrize("tables, message", [
    ('static = "/assets"', r"invalid value '/assets' for key 'static': expected \[\[static\]\] tables"),
    ('[[static]]\nurl = "/a"', r"invalid value \{'url': '/a'\} for key 'static' \(table 1\): no root"),
    ('[[static]]\nurl = "/a"\nroot = 3', r"invalid value 3 for key 'static' \(table 1\): root must be"),
    ('[[static]]\nurl = "/a"\nroot = "r"\ndir = "x"', r"invalid value \{.*'dir': 'x'\} for key 'static' \(table 1\): unknown key 'dir'"),
    ('[[static]]\nurl = "a"\nroot = "r"', r"invalid value 'a' for key 'static' \(table 1\): url must be"),
    ('[[static]]\nurl = "/a/../b"\nroot = "r"', r"invalid value '/a/../b' .*url must be"),
    ('[[static]]\nurl = "/a?b"\nroot = "r"', r"invalid value '/a\?b' .*url must be"),
    ('[[static]]\nurl = "/a"\nroot = "r"\n[[static]]\nurl = "/a/"\nroot = "s"',
     r"invalid value '/a/' for key 'static' \(table 2\): this url is mounted twice"),
])
def test_bad_static_tables_are_refused_naming_key_value_and_file(tmp_path, tables, message):
    conf = tmp_path / "bad.toml"
    conf.write_text(tables + "\n")
    result = check("-c", str(conf))
    assert result.returncode != 0
    assert re.search(re.escape(str(conf)) + ": " + message, result.stderr), result.stderr


def test_check_reports_a_missing_mount_root_and_static_is_file_only(tmp_path):
    conf = tmp_path / "site.toml"
    conf.write_text('[[static]]\nurl = "/assets"\nroot = "%s"\n' % (tmp_path / "nowhere"))
    result = check("-c", str(conf))
    assert result.returncode != 0
    assert f"invalid value '{tmp_path / 'nowhere'}' for key 'static' (url '/assets'): root: no such directory" \
        in result.stderr + result.stdout
    conf.write_text('static_root = "%s"\n[[static]]\nurl = "/static/"\nroot = "%s"\n' % (tmp_path, tmp_path))
    result = check("-c", str(conf))
    assert "for key 'static': static_root is mounted there already" in result.stderr
    from prefork.cli import build_parser

    assert "static" not in {action.dest for action in build_parser()._actions}  # no flag: tables are file-only


# -- the cache of looked-up files: a file that changes is never served stale -----------------------

def _settled(path: Path) -> None:
    """Wait until the file's last change is old enough for the server to keep it in memory."""
    wait_until(lambda: time.time() - path.stat().st_ctime > 1.2, timeout=5, message="the file settled")


def test_a_changed_file_is_served_fresh(start_server, tmp_path):
    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(b"A" * 100)
    large.write_bytes(b"B" * 200_000)  # beyond what is kept in memory: sent from the file each time
    for path in (small, large):
        os.utime(path, (MTIME, MTIME))
        _settled(path)
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--static-root", str(tmp_path))
    for _ in range(2):  # the second time from the cache
        assert get(server.port, "/static/small.txt")[::2] == (200, b"A" * 100)
        assert get(server.port, "/static/large.bin")[::2] == (200, b"B" * 200_000)
    # Rewritten in place, same size, same mtime (so the same ETag): the ctime tells.
    for path, byte in ((small, b"C"), (large, b"D")):
        with open(path, "r+b") as f:
            f.write(byte * path.stat().st_size)
        os.utime(path, (MTIME, MTIME))
    assert get(server.port, "/static/small.txt")[::2] == (200, b"C" * 100)
    assert get(server.port, "/static/large.bin")[::2] == (200, b"D" * 200_000)
    # Replaced by a rename (a deploy), then removed.
    (tmp_path / "new.txt").write_bytes(b"new\n")
    os.replace(tmp_path / "new.txt", small)
    assert get(server.port, "/static/small.txt")[::2] == (200, b"new\n")
    small.unlink()
    large.unlink()
    assert get(server.port, "/static/small.txt")[0] == 404
    assert get(server.port, "/static/large.bin")[0] == 404


def test_a_directory_swapped_for_a_symlink_outside_is_not_followed_from_the_cache(start_server, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    for base in (root / "dir", outside):
        for name, size in (("small.txt", 10), ("large.bin", 200_000)):
            (base / name).write_bytes((b"in" if base != outside else SECRET[:2]) * (size // 2))
    _settled(root / "dir" / "small.txt")
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--static-root", str(root))
    assert get(server.port, "/static/dir/small.txt")[::2] == (200, b"in" * 5)
    assert get(server.port, "/static/dir/large.bin")[::2] == (200, b"in" * 100_000)
    os.rename(root / "dir", tmp_path / "old-dir")
    (root / "dir").symlink_to(outside)
    for target in ("/static/dir/small.txt", "/static/dir/large.bin"):
        status, _, body = get(server.port, target)
        assert status == 404 and SECRET[:2] not in body, target


def test_a_file_kept_in_memory_answers_heads_ranges_and_conditions(port, tree):
    # Once a.txt has not changed for a second, the server keeps it in memory: the same answers.
    _settled(tree / "root" / "a.txt")
    for _ in range(2):
        assert get(port, "/static/a.txt")[::2] == (200, TEXT)
    with connect(port) as sock:
        sock.sendall(b"HEAD /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        buf = bytearray()
        assert read_head(sock, buf)[1]["content-length"] == str(len(TEXT))
        assert read_response(sock, buf)[::2] == (200, TEXT)  # no body came after the HEAD's head
    status, headers, body = get(port, "/static/a.txt", "Range: bytes=2-5")
    assert (status, headers["content-range"], body) == (206, f"bytes 2-5/{len(TEXT)}", TEXT[2:6])
    assert get(port, "/static/a.txt", "Range: bytes=-3", f"If-Range: {ETAG}")[::2] == (206, TEXT[-3:])
    assert get(port, "/static/a.txt", f"If-None-Match: {ETAG}")[::2] == (304, b"")
    assert get(port, "/static/a.txt", "Range: bytes=999-")[0] == 416
