"""Log files in a directory only root may write, with workers running as another user; and
`prefork -t` checking what start-up would find, each problem naming key, value and file."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from support.client import connect, read_response
from support.command import check
from support.logs import listening
from support.paths import APPS
from support.polling import wait_until
from support.proxies import shared_directory


@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
@pytest.mark.timeout(60)
def test_workers_as_nobody_log_to_a_root_only_directory_and_reopen_on_usr1(start_server):
    directory = shared_directory()  # 0755 root: nobody may not create files here
    try:
        access, errors = directory / "access.log", directory / "error.log"
        server = start_server("-w", "1", "-b", "127.0.0.1:0", "--user", "nobody",
                              "--access-log", str(access), "--error-log", str(errors), "--log-level", "info",
                              expect_ports=0)
        found = wait_until(lambda: errors.exists() and listening(errors.read_text()), 10,
                           message="the listening line")
        port = found[0][1]
        with connect(port) as sock:
            sock.sendall(b"GET /plaintext?first HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(sock)[0] == 200
        wait_until(lambda: "first" in access.read_text(), 10, message="the first line")
        access.rename(directory / "access.log.1")
        errors.rename(directory / "error.log.1")
        server.send_signal(signal.SIGUSR1)
        wait_until(lambda: access.exists() and errors.exists(), 10, message="new log files")
        wait_until(lambda: "PermissionError" not in (directory / "error.log.1").read_text() + errors.read_text()
                   and access.stat().st_uid != 0, 10, message="the file given to nobody")
        with connect(port) as sock:
            sock.sendall(b"GET /plaintext?second HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(sock)[0] == 200
        wait_until(lambda: "second" in access.read_text(), 10, message="a line in the new file")
        assert "Permission" not in errors.read_text() + (directory / "error.log.1").read_text()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("args, key, value", [
    (["--user", "no-such-user-prefork"], "user", "no-such-user-prefork"),
    (["--group", "no-such-group-prefork"], "group", "no-such-group-prefork"),
    (["--access-log", "/no/such/dir/access.log"], "access_log", "/no/such/dir/access.log"),
    (["--error-log", "/proc/prefork.log"], "error_log", "/proc/prefork.log"),
    (["--static-root", "/no/such/root"], "static_root", "/no/such/root"),
    (["--static-root", "/etc/hostname"], "static_root", "/etc/hostname"),
    (["--status-bind", "127.0.0.1:99999"], "status_bind", "127.0.0.1:99999"),
    (["--pid", "/no/such/dir/prefork.pid"], "pid", "/no/such/dir/prefork.pid"),
    (["--pid", "/proc/prefork.pid"], "pid", "/proc/prefork.pid"),
    (["--chdir", APPS, "plain:TEXT"], "app", "plain:TEXT"),  # a list, not a callable
    (["--chdir", APPS, "no_such_module:app"], "app", "no_such_module:app"),
])
def test_the_check_finds_what_start_up_would(args, key, value):
    result = check(*args)
    assert result.returncode == 1, result.stdout
    assert f"for key {key!r}" in result.stderr and repr(value) in result.stderr, result.stderr
    assert "configuration invalid" in result.stderr


def test_the_check_names_the_file(tmp_path):
    conf = tmp_path / "prefork.toml"
    conf.write_text('user = "no-such-user-prefork"\nstatic_root = "/no/such/root"\n')
    result = check("-c", str(conf))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if str(conf) in line]
    assert len(lines) == 2, result.stderr  # every problem, not only the first


def test_a_good_configuration_still_passes(tmp_path):
    result = check("--access-log", str(tmp_path / "access.log"), "--static-root", str(tmp_path),
                   "--chdir", APPS, "plain:app")
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stdout
