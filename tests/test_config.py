"""Configuration: `prefork -t` on good and bad files, and precedence command line > file > defaults.

`prefork -t` is nginx -t: it prints `configuration ok` and exits 0, or prints the error, which
names the key, the value and the file, and exits 1. Precedence is checked through what a
running server does (where it listens, how many workers, which body limit it applies).
conf/prefork.toml passing -t is tests/test_conf_example.py's.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from support.client import post
from support.command import check, run_prefork
from support.logs import listening
from support.paths import APPS
from support.polling import wait_until
from support.processes import children

from prefork import config as configuration

pytestmark = pytest.mark.timeout(60)


def write(tmp_path: Path, text: str, name: str = "prefork.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """\
bind = ["127.0.0.1:8123", "echo://127.0.0.1:8124", "[::1]:8125", "unix:/tmp/prefork-test.sock"]
workers = 2
dispatch = "threads"
threads = 4
worker_connections = 500
keepalive = 2.5
timeout = 20
graceful_timeout = 10
max_requests = 1000
max_requests_jitter = 50
log_level = "warning"
reuse_port = false
backlog = 128
header_timeout = 5
body_timeout = 10.0
send_timeout = 10.0
max_body_size = 1048576
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 4094
limit_request_head = 32768
high_water = 65536
"""


def test_good_file_is_ok(tmp_path):
    path = write(tmp_path, GOOD)
    result = check("-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stdout and str(path) in result.stdout
    assert result.stderr == ""


def test_no_file_is_ok():
    result = check("-w", "1", "-b", "127.0.0.1:0")
    assert (result.returncode, result.stderr) == (0, "")
    assert "configuration ok" in result.stdout


# (file content, key named in the error, value named in the error)
BAD = {
    "unknown-key": ('wokers = 4\n', "wokers", "4"),
    "unknown-table": ('[server]\nworkers = 4\n', "server", "workers"),
    "int-as-string": ('workers = "many"\n', "workers", "many"),
    "int-as-float": ('workers = 1.5\n', "workers", "1.5"),
    "int-as-bool": ('workers = true\n', "workers", "True"),
    "float-as-string": ('keepalive = "long"\n', "keepalive", "long"),
    "bool-as-string": ('reuse_port = "maybe"\n', "reuse_port", "maybe"),
    "bool-as-int": ('preload = 2\n', "preload", "2"),
    "choice": ('dispatch = "fibers"\n', "dispatch", "fibers"),
    "log-level": ('log_level = "loud"\n', "log_level", "loud"),
    "path-as-int": ('pid = 5\n', "pid", "5"),
    "app-without-colon": ('app = "myapp"\n', "app", "myapp"),
    "bind-no-port": ('bind = ["localhost"]\n', "bind", "localhost"),
    "bind-port-too-big": ('bind = ["127.0.0.1:99999"]\n', "bind", "99999"),
    "bind-port-negative": ('bind = ["127.0.0.1:-1"]\n', "bind", "-1"),
    "bind-ipv6-without-brackets": ('bind = ["::1:8000"]\n', "bind", "::1:8000"),
    "bind-empty-unix": ('bind = ["unix:"]\n', "bind", "unix:"),
    "bind-bad-fd": ('bind = ["fd://three"]\n', "bind", "fd://three"),
    "bind-bad-echo": ('bind = ["echo://nowhere"]\n', "bind", "echo://nowhere"),
    "bind-bad-ipv4": ('bind = ["256.1.1.1:80"]\n', "bind", "256.1.1.1"),
    "bind-short-ipv4": ('bind = ["1.2.3:80"]\n', "bind", "1.2.3"),
    "bind-empty-list": ('bind = []\n', "bind", "[]"),
    "bind-not-strings": ('bind = [8000]\n', "bind", "8000"),
    "workers-below-minimum": ('workers = -1\n', "workers", "-1"),
    "threads-below-minimum": ('threads = 0\n', "threads", "0"),
    "worker-connections-below-minimum": ('worker_connections = 0\n', "worker_connections", "0"),
    "keepalive-below-minimum": ('keepalive = -0.5\n', "keepalive", "-0.5"),
    "header-timeout-below-minimum": ('header_timeout = 0\n', "header_timeout", "0"),
    "limit-request-line-below-minimum": ('limit_request_line = 10\n', "limit_request_line", "10"),
    "high-water-below-minimum": ('high_water = 100\n', "high_water", "100"),
    "max-body-size-negative": ('max_body_size = -1\n', "max_body_size", "-1"),
    "app-bad-module-name": ('app = "my-site.wsgi"\n', "app", "my-site.wsgi"),
    "env-not-assignment": ('env = ["DEBUG"]\n', "env", "DEBUG"),
    "env-empty-key": ('env = ["=1"]\n', "env", "=1"),
    "env-not-a-list": ('env = 5\n', "env", "5"),
    "proc-name-empty": ('proc_name = ""\n', "proc_name", "''"),
    "daemon-as-string": ('daemon = "maybe"\n', "daemon", "maybe"),
    "limit-request-fields-negative": ('limit_request_fields = -1\n', "limit_request_fields", "-1"),
}


@pytest.mark.parametrize("content,key,value", list(BAD.values()), ids=list(BAD))
def test_bad_file_names_key_value_and_file(tmp_path, content, key, value):
    path = write(tmp_path, content)
    result = check("-c", str(path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "configuration ok" not in result.stdout
    error = result.stderr
    assert str(path) in error and key in error and value in error, error
    assert "Traceback" not in error


def test_invalid_toml_names_the_file_and_the_place(tmp_path):
    path = write(tmp_path, "workers = 1\nkeepalive = \n")
    result = check("-c", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "TOML" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.toml"
    result = check("-c", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "Traceback" not in result.stderr


def test_unreadable_file_is_named(tmp_path):
    result = check("-c", str(tmp_path))  # a directory
    assert result.returncode == 1
    assert str(tmp_path) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args,key,value", [
    (["-w", "-1"], "workers", "-1"),
    (["-w", "two"], "workers", "two"),
    (["--keepalive", "soon"], "keepalive", "soon"),
    (["-b", "127.0.0.1:http"], "bind", "127.0.0.1:http"),
    (["--max-body-size", "1.5"], "max_body_size", "1.5"),
])
def test_bad_command_line_value_names_key_and_value(args, key, value):
    result = check(*args)
    assert result.returncode == 1
    assert key in result.stderr and value in result.stderr and "command line" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_value_stops_the_server_too(tmp_path):
    """Not only -t: starting with a bad file prints the same error and exits 1, binding nothing."""
    path = write(tmp_path, "threads = 0\n")
    result = run_prefork("-c", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "threads" in result.stderr
    assert "listening on" not in result.stdout + result.stderr


def test_app_that_does_not_import_fails_the_check():
    result = check("broken_import:app", "--chdir", str(APPS))
    assert result.returncode == 1 and "broken_import" in result.stderr
    result = check("plain:app", "--chdir", str(APPS))
    assert result.returncode == 0, result.stderr


# -- precedence: command line > file > defaults, seen in what the server does ---------------------


def addresses(server) -> list[str]:
    """The addresses the server says it listens on."""
    return [address for address, _ in listening(server.log())]


def post_size(host: str, port: int, size: int) -> int:
    """The status of a POST /echo of `size` bytes to host:port."""
    return post(port, "/echo", b"x" * size, host=host)[0]


def test_file_overrides_defaults(start_server, tmp_path):
    path = write(tmp_path, 'bind = ["127.0.0.2:0"]\nworkers = 3\nmax_body_size = 10\n')
    server = start_server("-c", str(path))
    assert addresses(server) == ["127.0.0.2:0"]  # not the default 127.0.0.1:8000
    wait_until(lambda: len(children(server.proc.pid)) == 3, 10, message="three workers")
    assert post_size("127.0.0.2", server.port, 10) == 200
    assert post_size("127.0.0.2", server.port, 11) == 413  # not the default 100 MiB


def test_command_line_overrides_file(start_server, tmp_path):
    path = write(tmp_path, 'bind = ["127.0.0.2:0"]\nworkers = 3\nmax_body_size = 10\n')
    server = start_server("-c", str(path), "-b", "127.0.0.3:0", "-w", "1", "--max-body-size", "100")
    assert addresses(server) == ["127.0.0.3:0"]  # the command line's bind replaces the file's
    assert post_size("127.0.0.3", server.port, 100) == 200
    assert post_size("127.0.0.3", server.port, 101) == 413
    assert len(children(server.proc.pid)) == 1
    with pytest.raises(OSError):  # nothing on the file's address
        socket.create_connection(("127.0.0.2", server.port), timeout=2).close()


def test_defaults_apply_where_neither_says(start_server, tmp_path):
    """The file sets only bind; the body limit is the default (100 MiB): a 2 MB body passes."""
    path = write(tmp_path, 'bind = ["127.0.0.1:0"]\nworkers = 1\n')
    server = start_server("-c", str(path))
    assert post_size("127.0.0.1", server.port, 2 << 20) == 200


# -- the gunicorn compatibility keys ----------------------------------------------------------


GUNICORN_KEYS = """\
app = "mysite.wsgi"
env = ["DJANGO_SETTINGS_MODULE=mysite.settings", "EMPTY="]
pythonpath = "src,lib"
proc_name = "shop"
daemon = false
reload = true
access_log_format = '%(h)s "%(r)s" %(s)s'
log_level = "WARN"
limit_request_line = 0
limit_request_fields = 0
limit_request_field_size = 0
"""


def test_gunicorn_keys_in_a_file_pass_the_check(tmp_path):
    path = write(tmp_path, GUNICORN_KEYS)
    result = check("-c", str(path), cwd=APPS)
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stdout


def test_gunicorn_keys_are_read_as_meant(tmp_path):
    from prefork import config as configuration

    config = configuration.load(str(write(tmp_path, GUNICORN_KEYS)), {})
    assert config.env == ["DJANGO_SETTINGS_MODULE=mysite.settings", "EMPTY="]
    assert (config.app, config.proc_name, config.reload, config.log_level) == ("mysite.wsgi", "shop", True, "warning")
    # 0 is "no limit", as in gunicorn: a number no request line or field count reaches
    for key in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
        assert config.values[key] >= 2 ** 62, key


# -- relative paths: from --chdir, as gunicorn ---------------------------------------------------

def test_relative_paths_are_made_absolute_from_chdir_and_chdir_from_the_start_directory(tmp_path):
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", 'bind = ["unix:run/app.sock?mode=660", "127.0.0.1:0"]\n'
                             '[[static]]\nurl = "/assets"\nroot = "site/assets"\n')
    overrides = {"chdir": "srv", "access_log": "logs/a.log", "error_log": "../e.log", "pid": "app.pid",
                 "static_root": "static", "status_bind": "unix:/run/status.sock", "certfile": "tls/cert.pem",
                 "keyfile": "/etc/key.pem"}
    config = configuration.load("conf/prefork.toml", overrides, cwd=str(tmp_path))
    srv = tmp_path / "srv"
    assert config.chdir == str(srv)
    assert (config.access_log, config.error_log, config.pid) == (str(srv / "logs/a.log"), str(tmp_path / "e.log"),
                                                                  str(srv / "app.pid"))
    assert config.static_root == str(srv / "static")
    assert config.static == [{"url": "/assets", "root": str(srv / "site/assets")}]
    assert config.bind == [f"unix:{srv}/run/app.sock?mode=660", "127.0.0.1:0"]
    assert (config.status_bind, config.certfile, config.keyfile) == ("unix:/run/status.sock",
                                                                     str(srv / "tls/cert.pem"), "/etc/key.pem")
    assert config.path == "conf/prefork.toml"  # as given; found from cwd, before the chdir


def test_without_chdir_relative_paths_are_taken_from_the_start_directory_and_dash_and_off_stay(tmp_path):
    config = configuration.load(None, {"access_log": "off", "error_log": "-", "pid": "run/app.pid",
                                       "bind": ["https://unix:s.sock"], "certfile": "c.pem"}, cwd=str(tmp_path))
    assert (config.access_log, config.error_log, config.pid) == (None, "-", str(tmp_path / "run/app.pid"))
    assert config.bind == [f"https://unix:{tmp_path}/s.sock"]
    assert configuration.load(None, {"access_log": "-"}, cwd=str(tmp_path)).access_log == "-"


def test_check_looks_for_a_relative_log_file_under_chdir(tmp_path):
    (tmp_path / "sub").mkdir()
    result = run_prefork("-t", "--chdir", "sub", "--error-logfile", "missing/e.log", cwd=tmp_path)
    assert result.returncode == 1
    assert f"no such directory {tmp_path / 'sub' / 'missing'}" in result.stderr
    (tmp_path / "sub" / "missing").mkdir()
    assert run_prefork("-t", "--chdir", "sub", "--error-logfile", "missing/e.log", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "missing").exists() and not (tmp_path / "sub" / "missing" / "e.log").exists()
