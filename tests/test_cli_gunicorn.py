"""gunicorn command lines work as pasted: gunicorn's flag spellings, -D, --reload, `module` alone.

The real `prefork` command throughout (started with tests/support/server.py's Server, or run to its
end with subprocess), on ephemeral ports of 127.0.0.1; what the flags do is checked through
what the server does, not through the parser alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.client import connect, get, read_response, recv_until_closed
from support.command import checkout_env, run_prefork
from support.logs import listening
from support.paths import APPS, REPO
from support.polling import wait_until
from support.ports import free_port
from support.processes import alive, children, title

import prefork
from prefork import cli, config as configuration

pytestmark = pytest.mark.timeout(90)


def get_and_close(port: int, target: str = "/", *headers: str) -> tuple[int, dict, bytes]:
    """One request on a new connection, closed after it (a reload replaces workers: no
    connection is reused)."""
    return get(port, target, *headers, "Connection: close")


# -- the gunicorn deploy command, end to end --------------------------------------------------

def test_a_gunicorn_deploy_command_starts_and_serves(start_server, tmp_path):
    pidfile = tmp_path / "prefork.pid"
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--access-logfile", "-", "--timeout", "30",
                          "--keep-alive", "2", "-p", str(pidfile), "plain:app", cwd=APPS)
    status, _, body = get_and_close(server.port, "/hello")
    assert (status, body) == (200, b"Hello, World!")
    assert pidfile.read_text().strip() == str(server.proc.pid)
    # --access-logfile -: the access log on stdout (the helper collects stdout and stderr)
    server.wait_for_log(r'"GET /hello HTTP/1\.1" 200 13')
    # --keep-alive 2: an idle connection is closed after 2 s, not after the default 5 s
    with connect(server.port) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
        idle_since = time.monotonic()
        assert recv_until_closed(sock) == b""
        idle = time.monotonic() - idle_since
    assert 1.5 < idle < 4.5, idle
    workers = wait_until(lambda: len(children(server.proc.pid)) == 2 and children(server.proc.pid), 10,
                         message="two workers")
    assert all(title(pid).startswith("prefork: worker") for pid in workers)


SERVED = {"built-in site": [], "app": ["--pythonpath", str(APPS), "plain:app"],
          "preloaded app": ["--preload", "--pythonpath", str(APPS), "plain:app"]}


@pytest.mark.parametrize("serving", list(SERVED.values()), ids=list(SERVED))
def test_relative_log_and_pid_files_are_taken_from_chdir_as_gunicorn(start_server, tmp_path, serving):
    """gunicorn changes directory before it opens its logs and its pidfile: a relative
    --access-logfile, --error-logfile and --pid all land in --chdir, whichever process opens them."""
    sub = tmp_path / "sub"
    sub.mkdir()
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--chdir", "sub", "--access-logfile", "a.log",
                          "--error-logfile", "e.log", "-p", "app.pid", *serving, cwd=tmp_path, expect_ports=0)
    error_log = sub / "e.log"
    port = wait_until(lambda: error_log.exists() and listening(error_log.read_text()), 10,
                      message="the listening line in sub/e.log")[0][1]
    status, _, _ = get_and_close(port, "/hello")
    assert status in (200, 404)  # the app says hello; the built-in site has no /hello
    wait_until(lambda: (sub / "a.log").exists() and "GET /hello" in (sub / "a.log").read_text(), 10,
               message="the request in sub/a.log")
    assert (sub / "app.pid").read_text().strip() == str(server.proc.pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # nothing in the start directory
    assert server.stop() == 0
    assert not (sub / "app.pid").exists()  # removed at exit, even by a master that moved to sub


def test_hup_rereads_a_relative_config_file_after_a_preload_moved_the_master_to_chdir(start_server, tmp_path):
    """-c is found from the start directory, before the chdir, and from there again on HUP."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "prefork.toml").write_text('workers = 1\nerror_log = "e.log"\n')
    server = start_server("-c", "prefork.toml", "-b", "127.0.0.1:0", "--chdir", "sub", "--preload",
                          "--pythonpath", str(APPS), "plain:app", cwd=tmp_path, expect_ports=0)
    error_log = tmp_path / "sub" / "e.log"
    wait_until(lambda: error_log.exists() and listening(error_log.read_text()), 10, message="sub/e.log")
    server.send_signal(signal.SIGHUP)
    wait_until(lambda: "generation 2" in error_log.read_text(), 10, message="generation 2 in sub/e.log")
    assert "reload failed" not in error_log.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefork.toml", "sub"]


# -- each gunicorn spelling -------------------------------------------------------------------

ALIASES = [
    # (gunicorn's spelling, a value, our key, the value we store)
    (["--access-logfile", "access.log"], "access_log", "access.log"),
    (["--error-logfile", "error.log"], "error_log", "error.log"),
    (["--log-file", "error.log"], "error_log", "error.log"),
    (["--keep-alive", "2"], "keepalive", "2"),
    (["-p", "app.pid"], "pid", "app.pid"),
    (["-u", "nobody"], "user", "nobody"),
    (["-g", "nogroup"], "group", "nogroup"),
    (["--limit-request-line", "4094"], "limit_request_line", "4094"),
    (["--limit-request-fields", "50"], "limit_request_fields", "50"),
    (["--limit-request-field_size", "4094"], "limit_request_field_size", "4094"),
    (["-e", "A=1", "--env", "B=2"], "env", ["A=1", "B=2"]),
    (["-n", "shop"], "proc_name", "shop"),
    (["--name", "shop"], "proc_name", "shop"),
    (["--pythonpath", "src,lib"], "pythonpath", "src,lib"),
    (["-D"], "daemon", True),
    (["--daemon"], "daemon", True),
    (["--reload"], "reload", True),
    (["--access-logformat", "%(h)s %(r)s"], "access_log_format", "%(h)s %(r)s"),
    (["--log-level", "WARN"], "log_level", "warning"),
]


@pytest.mark.parametrize("args,key,value", ALIASES, ids=[" ".join(a[0]) for a in ALIASES])
def test_gunicorn_spelling_sets_our_key(args, key, value):
    parsed = vars(cli.build_parser().parse_args(args))
    assert parsed[key] == value


def test_every_gunicorn_spelling_is_in_the_help_and_the_configuration_doc():
    help_text = run_prefork("--help").stdout
    doc = (REPO / "docs" / "configuration.md").read_text()
    for args, key, _ in ALIASES + [(["--check-config"], None, None), (["-v"], None, None), (["--version"], None, None)]:
        flag = args[0]
        assert re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", help_text, re.M), f"--help lacks {flag}"
        if key:
            row = next(line for line in doc.splitlines() if line.startswith(f"| `{key}` |"))
            assert f"`{flag}`" in row, f"docs/configuration.md: {flag} is not in the row of {key}"


# gunicorn's flags as of gunicorn 26.1 (its settings, in their order), and -v/--version.
GUNICORN_FLAGS = (
    "-v", "--version", "-c", "--config", "-b", "--bind", "--backlog", "-w", "--workers", "-k",
    "--worker-class", "--threads", "--worker-connections", "--max-requests",
    "--max-requests-jitter", "-t", "--timeout", "--graceful-timeout", "--keep-alive",
    "--limit-request-line", "--limit-request-fields", "--limit-request-field_size", "--reload",
    "--reload-engine", "--reload-extra-file", "--spew", "--check-config", "--print-config",
    "--preload", "--no-sendfile", "--reuse-port", "--chdir", "-D", "--daemon", "-e", "--env", "-p",
    "--pid", "--worker-tmp-dir", "-u", "--user", "-g", "--group", "-m", "--umask", "--initgroups",
    "--forwarded-allow-ips", "--access-logfile", "--disable-redirect-access-to-syslog",
    "--access-logformat", "--error-logfile", "--log-file", "--log-level", "--capture-output",
    "--logger-class", "--log-config", "--log-config-json", "--log-syslog-to", "--log-syslog",
    "--log-syslog-prefix", "--log-syslog-facility", "-R", "--enable-stdio-inheritance",
    "--statsd-host", "--dogstatsd-tags", "--statsd-prefix", "--enable-backlog-metric", "-n",
    "--name", "--pythonpath", "--paste", "--paster", "--proxy-protocol", "--proxy-allow-from",
    "--protocol", "--uwsgi-allow-from", "--keyfile", "--certfile", "--ssl-version", "--cert-reqs",
    "--ca-certs", "--suppress-ragged-eofs", "--do-handshake-on-connect", "--ciphers",
    "--http-protocols", "--http2-cleartext", "--http2-max-concurrent-streams",
    "--http2-initial-window-size", "--http2-max-frame-size", "--http2-max-header-list-size",
    "--paste-global", "--permit-obsolete-folding", "--strip-header-spaces",
    "--permit-unconventional-http-method", "--permit-unconventional-http-version",
    "--casefold-http-method", "--forwarder-headers", "--header-map", "--asgi-loop",
    "--asgi-lifespan", "--asgi-disconnect-grace-period", "--http-parser", "--root-path",
    "--dirty-app", "--dirty-workers", "--dirty-timeout", "--dirty-threads",
    "--dirty-graceful-timeout", "--control-socket", "--control-socket-mode", "--no-control-socket",
)


def test_every_gunicorn_flag_is_accepted_or_refused_with_a_reason_and_in_the_migration_page():
    known = cli.build_parser()._option_string_actions
    explained = {flag for flags in cli.GUNICORN_ONLY for flag in flags}
    page = (REPO / "docs" / "gunicorn.md").read_text()
    for flag in GUNICORN_FLAGS:
        assert flag in known or flag in explained, f"{flag}: neither accepted nor explained"
        assert f"`{flag}`" in page, f"docs/gunicorn.md does not list {flag}"


@pytest.mark.parametrize("args,flag,reason", [
    (["-w", "2", "-k", "gthread", "plain:app"], "-k", "one kind of worker"),
    (["--worker-class=sync"], "--worker-class", "one kind of worker"),
    (["--ssl-version", "TLSv1_2"], "--ssl-version", "--tls-min-version"),
    (["--statsd-host", "localhost:8125"], "--statsd-host", "/metrics"),
])
def test_a_gunicorn_flag_without_equivalent_is_refused_with_its_reason(args, flag, reason):
    result = run_prefork(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"prefork: {flag} is gunicorn's and has no equivalent here: "), result.stderr
    assert reason in result.stderr and "docs/gunicorn.md" in result.stderr
    assert "listening" not in result.stderr


def test_check_config_is_t():
    result = run_prefork("--check-config", "-w", "2")
    assert result.returncode == 0 and "configuration ok" in result.stdout, result.stderr
    result = run_prefork("--check-config", "-w", "two")
    assert result.returncode == 1 and "workers" in result.stderr


def test_version():
    for flag in ("-v", "--version"):
        result = run_prefork(flag)
        assert result.returncode == 0
        assert result.stdout.strip() == f"prefork {prefork.__version__}"


# -- -t N: gunicorn's timeout, nginx's check --------------------------------------------------

@pytest.mark.parametrize("args", [["-t", "30"], ["-t30"], ["-w", "2", "-t", "30", "plain:app"], ["-t", "2.5"]])
def test_t_with_a_number_is_refused_with_advice(args):
    result = run_prefork(*args)
    assert result.returncode == 2
    assert result.stderr == "prefork: -t checks the configuration; use --timeout N for the worker timeout\n"
    assert "configuration ok" not in result.stdout


def test_t_alone_still_checks():
    result = run_prefork("-t", "plain:app", "--chdir", str(APPS), "--timeout", "30")
    assert result.returncode == 0 and "configuration ok" in result.stdout, result.stderr


# -- -e, --pythonpath, module alone, -n -------------------------------------------------------

def test_env_and_pythonpath_are_set_before_the_app_is_imported(start_server, tmp_path):
    """mysite.wsgi is found through --pythonpath alone (the command runs from the repository
    root), and it reads PREFORK_TEST_AT_IMPORT when it is imported."""
    extra = tmp_path / "extra"
    extra.mkdir()
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "-e", "PREFORK_TEST_AT_IMPORT=yes",
                          "--env", "PREFORK_TEST_EQUALS=a=b", "--pythonpath", f"tests/apps,{extra}",
                          "mysite.wsgi", cwd=REPO)
    status, _, body = get_and_close(server.port)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["app"] == "mysite.wsgi:application"
    assert seen["at_import"] == "yes"
    assert seen["env"] == {"PREFORK_TEST_AT_IMPORT": "yes", "PREFORK_TEST_EQUALS": "a=b"}
    assert seen["path"][:2] == [str(APPS), str(extra)]


def test_relative_pythonpath_is_taken_from_chdir():
    """As gunicorn: --chdir first, then --pythonpath relative to it (mysite is in tests/apps)."""
    result = run_prefork("-t", "--chdir", "tests", "--pythonpath", "apps", "mysite.wsgi", cwd=REPO)
    assert result.returncode == 0, result.stderr
    result = run_prefork("-t", "--pythonpath", "apps", "mysite.wsgi", cwd=REPO)
    assert result.returncode == 1 and "no module named 'mysite'" in result.stderr


def test_env_must_be_key_equals_value():
    result = run_prefork("-t", "-e", "NOEQUALS")
    assert result.returncode == 1
    assert "env" in result.stderr and "NOEQUALS" in result.stderr and "KEY=VALUE" in result.stderr


def test_module_alone_means_module_application(start_server, tmp_path):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "mysite.wsgi", cwd=APPS)
    status, _, body = get_and_close(server.port)
    assert status == 200 and json.loads(body)["app"] == "mysite.wsgi:application"
    # -t and a file say so too; a module without `application` is told what was looked for
    path = tmp_path / "site.toml"
    path.write_text('app = "mysite.wsgi"\n')
    result = run_prefork("-t", "-c", str(path), cwd=APPS)
    assert result.returncode == 0, result.stderr
    result = run_prefork("-t", "plain", cwd=APPS)
    assert result.returncode == 1
    assert "has no attribute 'application'" in result.stderr and "module:application" in result.stderr


def test_name_is_the_first_word_of_the_process_titles(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "-n", "shop")
    master = server.proc.pid
    wait_until(lambda: title(master).startswith("shop: master [-w 1 -b 127.0.0.1:0 -n shop]"), 10,
               message="the master's title")
    worker = wait_until(lambda: children(master), 10, message="a worker")[0]
    wait_until(lambda: title(worker) == "shop: worker 0 [gen 1]", 10, message=f"worker title, is {title(worker)!r}")


# -- log level and limits ---------------------------------------------------------------------

@pytest.mark.parametrize("given,level", [("WARN", "warning"), ("warn", "warning"), ("Debug", "debug"),
                                         ("ERROR", "error")])
def test_log_level_in_any_case_and_warn(tmp_path, given, level):
    assert run_prefork("-t", "--log-level", given).returncode == 0
    path = tmp_path / "levels.toml"
    path.write_text(f'log_level = "{given}"\n')
    assert configuration.load(str(path), {}).log_level == level
    assert run_prefork("-t", "-c", str(path)).returncode == 0


def test_log_level_warn_silences_info(start_server):
    """--log-level warn is applied: a whole start, a request and a stop write no info line."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    quiet = start_server("--log-level", "warn", "-w", "1", "-b", f"127.0.0.1:{port}", expect_ports=0)

    def served():
        try:
            return get_and_close(port, "/plaintext")[0] == 200
        except OSError:
            return False

    wait_until(served, 10, interval=0.05, message="the quiet server to serve")
    assert quiet.stop(signal.SIGTERM) == 0
    assert "[INFO]" not in quiet.log() and "[DEBUG]" not in quiet.log(), quiet.log()
    loud = start_server("--log-level", "INFO", "-w", "1", "-b", "127.0.0.1:0")
    assert "[INFO]" in loud.log()


def test_zero_removes_the_request_line_and_field_limits(start_server):
    """gunicorn's 0 = no limit: a 20 kB request line, 150 fields and a 10 kB field pass; the
    same requests get 414 and 431 from a server with the default limits."""
    unlimited = start_server("-w", "1", "-b", "127.0.0.1:0", "--limit-request-line", "0",
                             "--limit-request-fields", "0", "--limit-request-field_size", "0")
    default = start_server("-w", "1", "-b", "127.0.0.1:0")
    long_line = "/plaintext?" + "a" * 20000
    many_fields = [f"X-Field-{i}: {i}" for i in range(150)]
    long_field = "X-Long: " + "b" * 10000
    assert get_and_close(unlimited.port, long_line)[0] == 200
    assert get_and_close(unlimited.port, "/plaintext", *many_fields)[0] == 200
    assert get_and_close(unlimited.port, "/plaintext", long_field)[0] == 200
    assert get_and_close(default.port, long_line)[0] == 414
    assert get_and_close(default.port, "/plaintext", *many_fields)[0] == 431
    assert get_and_close(default.port, "/plaintext", long_field)[0] == 431


def test_access_logformat_is_accepted_and_a_bad_one_refused():
    """gunicorn's spelling of access_log_format (tests/test_access_log.py checks the lines)."""
    result = run_prefork("-t", "--access-logformat", '%(h)s "%(r)s" %(s)s')
    assert result.returncode == 0, result.stderr
    assert configuration.load(None, {"access_log_format": "%(h)s"}).access_log_format == "%(h)s"
    result = run_prefork("-t", "--access-logformat", "%(nosuchatom)s")
    assert result.returncode == 1 and "access_log_format" in result.stderr and "nosuchatom" in result.stderr


# -- -D ---------------------------------------------------------------------------------------

def test_daemon_returns_once_listening_and_serves_until_killed_by_pidfile(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    errors = tmp_path / "error.log"
    started = time.monotonic()
    result = run_prefork("-D", "-p", str(pidfile), "-b", "127.0.0.1:0", "-w", "1", "--error-logfile", str(errors),
                 "plain:app", cwd=APPS)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20
    pid = int(pidfile.read_text())
    try:
        assert f"running in the background, master pid {pid}, listening on 127.0.0.1:0 (port " in result.stderr
        port = int(re.search(r"\(port (\d+)\)", result.stderr).group(1))
        assert os.getsid(pid) != os.getsid(0), "the daemon must have a session of its own"
        assert get_and_close(port, "/hello")[2] == b"Hello, World!"
        assert "listening on" in errors.read_text()  # the log goes on in the file
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), 15, message="the daemon to exit")
        assert not pidfile.exists()
    finally:
        if alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)


def test_daemon_upgrades_in_place(tmp_path):
    """USR2 to a -D master: the new master runs the same command, -D included, but must not
    detach again (it would leave the old master believing the upgrade failed)."""
    pidfile = tmp_path / "daemon.pid"
    result = run_prefork("-D", "-p", str(pidfile), "-b", "127.0.0.1:0", "-w", "1", "--error-logfile",
                 str(tmp_path / "error.log"), "plain:app", cwd=APPS)
    assert result.returncode == 0, result.stderr
    old = int(pidfile.read_text())
    port = int(re.search(r"\(port (\d+)\)", result.stderr).group(1))
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        oldbin = Path(f"{pidfile}.oldbin")
        wait_until(lambda: oldbin.exists() and pidfile.exists() and pidfile.read_text().strip() != str(old),
                   15, message="the new master's pidfile")
        new = int(pidfile.read_text())
        assert new in children(old), "the new master is the old one's child, not detached again"
        os.kill(old, signal.SIGQUIT)
        wait_until(lambda: not alive(old), 15, message="the old master to exit")
        assert get_and_close(port, "/hello")[2] == b"Hello, World!"  # served by the new master's worker
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not alive(new), 15, message="the new master to exit")
    finally:
        for pid in (old, new):
            if pid and alive(pid):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def test_daemon_that_cannot_listen_says_why_and_exits_1():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    with busy:
        port = busy.getsockname()[1]
        result = run_prefork("-D", "-b", f"127.0.0.1:{port}", "-w", "1")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "did not start" in result.stderr


def test_daemon_whose_app_fails_to_import_says_why_and_exits_1(tmp_path):
    """The workers import the app after the master listens: -D waits for them, as a deploy
    script needs (gunicorn --daemon answers 0 here, and the script finds out later)."""
    pidfile = tmp_path / "daemon.pid"
    result = run_prefork("-D", "-p", pidfile, "-b", "127.0.0.1:0", "-w", "1", "broken_import:app", cwd=APPS)
    assert result.returncode == 1, result.stderr
    assert "this app fails at import on purpose" in result.stderr  # the worker's reason, on the terminal
    assert "did not start" in result.stderr
    assert "running in the background" not in result.stderr
    wait_until(lambda: not pidfile.exists(), 15, message="the master to exit and remove its pidfile")


def test_daemon_with_an_error_log_file_shows_why_it_did_not_start_on_the_terminal_too(tmp_path):
    """With --error-logfile FILE the reason is in the file, and on the terminal of the command
    that waits (a deploy script's output), not only 'the reason is in FILE'."""
    errors = tmp_path / "error.log"
    result = run_prefork("-D", "-p", tmp_path / "d.pid", "-b", "127.0.0.1:0", "-w", "1", "--error-logfile", errors,
                         "broken_import:app", cwd=APPS)
    assert result.returncode == 1, result.stderr
    assert "this app fails at import on purpose" in result.stderr
    assert f"did not start (the reason is above, and in {errors})" in result.stderr
    wait_until(lambda: "this app fails at import on purpose" in errors.read_text(), 10, message="the reason in the file")


SLOW_TO_IMPORT = '''
import os, pathlib, time

time.sleep(1)  # an app that takes a while to import, as Django with many apps does
pathlib.Path(os.environ["BOOTED_DIR"], str(os.getpid())).write_text("")


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''


def test_daemon_returns_once_every_worker_has_imported_the_app(tmp_path):
    (tmp_path / "slowimport.py").write_text(SLOW_TO_IMPORT)
    booted = tmp_path / "booted"
    booted.mkdir()
    pidfile = tmp_path / "daemon.pid"
    os.environ["BOOTED_DIR"] = str(booted)
    try:
        result = run_prefork("-D", "-p", pidfile, "-b", "127.0.0.1:0", "-w", "2", "--error-logfile",
                             tmp_path / "error.log", "slowimport:app", cwd=tmp_path)
    finally:
        del os.environ["BOOTED_DIR"]
    pid = int(pidfile.read_text())
    try:
        assert result.returncode == 0, result.stderr
        assert sorted(int(p.name) for p in booted.iterdir()) == sorted(children(pid)), \
            "the command returned before both workers had imported the app"
    finally:
        os.killpg(os.getpgid(pid), signal.SIGKILL)


WRITES_TO_STDERR = '''
import sys


def app(environ, start_response):
    print("app on stderr:", environ["QUERY_STRING"], file=sys.stderr, flush=True)
    print("app on stdout:", environ["QUERY_STRING"], flush=True)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''


@pytest.mark.parametrize("detached", [False, True], ids=["foreground", "daemon"])
def test_error_logfile_gets_what_the_app_writes_to_stderr_and_follows_usr1(start_server, tmp_path, detached):
    """As nginx and gunicorn --capture-output: stderr (an app's prints, a traceback faulthandler
    dumps) goes to the error log file, and to the new file after a rotation; with
    --capture-output, stdout too (an app's print())."""
    (tmp_path / "printer.py").write_text(WRITES_TO_STDERR)
    errors = tmp_path / "error.log"
    args = ["-b", "127.0.0.1:0", "-w", "1", "--error-logfile", errors, "--capture-output", "printer:app"]
    pid = None
    if detached:
        pidfile = tmp_path / "daemon.pid"
        result = run_prefork("-D", "-p", pidfile, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        pid = int(pidfile.read_text())
        port = int(re.search(r"\(port (\d+)\)", result.stderr).group(1))
    else:
        server = start_server(*map(str, args), cwd=tmp_path, expect_ports=0)
        pid = server.proc.pid
        port = wait_until(lambda: errors.exists() and listening(errors.read_text()), 10,
                          message="the listening line in the error log")[0][1]
    try:
        assert get_and_close(port, "/?before")[2] == b"ok"
        wait_until(lambda: "app on stderr: before" in errors.read_text() and "app on stdout: before" in errors.read_text(),
                   10, message="the app's lines in the error log")
        errors.rename(tmp_path / "error.log.1")
        os.kill(pid, signal.SIGUSR1)
        wait_until(errors.exists, 10, message="the master to reopen the error log")
        # The worker gets its USR1 from the master a moment later: ask until its line is in the
        # new file; every line written before it is in the old one, none after.
        attempts = iter(range(1000))
        last = wait_until(lambda: (n := next(attempts), get_and_close(port, f"/?after{n}"))
                          and f"app on stderr: after{n}\n" in errors.read_text()
                          and f"app on stdout: after{n}\n" in errors.read_text() and n, 10,
                          message="the worker's stderr to follow the rotation")
        rotated = (tmp_path / "error.log.1").read_text()
        assert "app on stderr: before" in rotated and f"app on stderr: after{last}\n" not in rotated
        assert "app on stdout: before" in rotated and f"app on stdout: after{last}\n" not in rotated
    finally:
        if detached and alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)


# -- --reload ---------------------------------------------------------------------------------

RELOADABLE = '''
def app(environ, start_response):
    body = {body!r}
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_reload_serves_the_changed_app_and_survives_a_broken_edit(start_server, tmp_path):
    source = tmp_path / "reloadme.py"
    source.write_text(RELOADABLE.format(body=b"version one"))
    server = start_server("--reload", "-w", "1", "-b", "127.0.0.1:0", "reloadme:app", cwd=tmp_path)
    assert get_and_close(server.port)[2] == b"version one"
    server.wait_for_log(r"--reload: watching \d+ \.py files")

    def serves(body):
        return lambda: get_and_close(server.port)[2] == body

    # sizes differ from one version to the next, so Python never reuses a stale .pyc
    source.write_text(RELOADABLE.format(body=b"version two!"))
    wait_until(serves(b"version two!"), 15, interval=0.1, message="the changed app")
    server.wait_for_log(r"--reload: \S*reloadme\.py changed")
    # a broken edit: the new workers fail to boot, the running ones keep serving
    source.write_text("def app(:\n")
    server.wait_for_log(r"reload abandoned", timeout=15)
    assert get_and_close(server.port)[2] == b"version two!"
    source.write_text(RELOADABLE.format(body=b"version three, fixed"))
    wait_until(serves(b"version three, fixed"), 15, interval=0.1, message="the fixed app")


def test_reload_watcher_sees_edits_and_skips_environments(tmp_path):
    """The watcher itself: an edit, an added and a removed file count; virtual environments,
    hidden directories and __pycache__ do not; a changed file's stale bytecode is removed."""
    import importlib.util

    from prefork.master.autoreload import Watcher

    (tmp_path / "app.py").write_text("x = 1\n")
    for skipped in (".git", "venv", "__pycache__", "node_modules"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "ignored.py").write_text("")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    watcher = Watcher([str(tmp_path)], interval=0)
    assert sorted(watcher.seen) == [str(tmp_path / "app.py"), str(tmp_path / "pkg" / "mod.py")]
    assert watcher.changed() is None
    for skipped in (".git", "venv", "__pycache__", "node_modules"):
        (tmp_path / skipped / "ignored.py").write_text("changed = True\n")
    assert watcher.changed() is None
    bytecode = Path(importlib.util.cache_from_source(str(tmp_path / "app.py")))
    bytecode.parent.mkdir(exist_ok=True)
    bytecode.write_bytes(b"stale")
    app = tmp_path / "app.py"
    before = app.stat().st_mtime_ns
    app.write_text("x = 2\n")  # same size: only the mtime tells, and file times are coarse
    os.utime(app, ns=(before + 10_000_000, before + 10_000_000))  # so the edit is dated 10 ms later
    assert watcher.changed() == str(tmp_path / "app.py")
    assert not bytecode.exists()
    (tmp_path / "pkg" / "new.py").write_text("")
    assert watcher.changed() == str(tmp_path / "pkg" / "new.py")
    (tmp_path / "pkg" / "mod.py").unlink()
    assert watcher.changed() == str(tmp_path / "pkg" / "mod.py")
    assert watcher.changed() is None


def test_reload_and_preload_are_refused_together():
    result = run_prefork("-t", "--reload", "--preload", "plain:app", "--chdir", str(APPS))
    assert result.returncode == 1
    assert "--reload" in result.stderr and "--preload" in result.stderr


def test_reload_and_preload_in_a_file_are_refused_naming_the_keys_and_the_file(tmp_path):
    (tmp_path / "both.toml").write_text('reload = true\npreload = true\napp = "plain:app"\n')
    result = run_prefork("-t", "-c", tmp_path / "both.toml", "--chdir", str(APPS))
    assert result.returncode == 1
    assert f"{tmp_path / 'both.toml'}: keys 'reload' and 'preload' are both true" in result.stderr, result.stderr


def test_daemon_names_the_listeners_that_speak_tls(tmp_path, certificates):
    pidfile = tmp_path / "d.pid"
    result = run_prefork("-D", "-p", pidfile, "-w", "1", "--certfile", certificates.server_pem, "--keyfile",
                         certificates.server_key, "-b", "127.0.0.1:0", "-b", "http://127.0.0.1:0")
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    try:
        banner = next(line for line in result.stderr.splitlines() if "running in the background" in line)
        assert re.search(r"listening on 127\.0\.0\.1:0 \(port \d+\) \(TLS\), http://127\.0\.0\.1:0 \(port \d+\)$",
                         banner), banner
    finally:
        os.killpg(os.getpgid(pid), signal.SIGKILL)


@pytest.mark.timeout(60)
def test_python_dash_m_prefork_is_the_command_and_upgrades_as_itself(tmp_path):
    """`python -m prefork` (as `python -m gunicorn`), for running it with a chosen interpreter;
    a USR2 upgrade starts the new master the same way."""
    pidfile, log = tmp_path / "p.pid", tmp_path / "out.log"
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefork", "-w", "1", "-b", f"127.0.0.1:{port}", "--pid",
                                 str(pidfile)], cwd=tmp_path, env=checkout_env(), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(proc.pid), 10, message="the pidfile")
        assert get_and_close(port, "/plaintext")[2] == b"Hello, World!"
        proc.send_signal(signal.SIGUSR2)
        new = wait_until(lambda: pidfile.exists() and (pid := int(pidfile.read_text() or 0)) != proc.pid and pid, 15,
                         message="the new master's pidfile")
        wait_until(lambda: any(title(child).startswith("prefork: worker") for child in children(new)), 15,
                   message="the new master's worker")
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(15) == 0
        assert get_and_close(port, "/plaintext")[2] == b"Hello, World!"  # the new master serves
        assert title(new).startswith("prefork: master"), title(new)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
