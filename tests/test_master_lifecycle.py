"""The master's life cycle, one behaviour per test: graceful and fast stops, boot failures,
a dead master, bad reloads, hung workers, titles, -s control, systemd notifications."""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from support.client import get, read_response
from support.command import PREFORK, checkout_env, control, run_prefork
from support.descriptors import connection_owner
from support.load import REQUEST, Load
from support.paths import APPS
from support.polling import wait_until
from support.processes import alive, children, status_field, title, wait_workers, workers


@pytest.mark.timeout(30)
def test_quit_delivers_a_request_in_flight_then_the_master_exits_0(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    (worker,) = wait_workers(server.proc.pid, 1)
    body = b"x" * 200_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:1000])
        # in flight: accepted by the worker (a connection still in the accept queue when the
        # last worker stops is reset when the master exits, as with nginx)
        wait_until(lambda: connection_owner(sock, server.port, [worker]), 5, message="the worker to accept")
        server.send_signal(signal.SIGQUIT)
        wait_until(lambda: "shutting down" in title(worker), 5, message="the worker to shut down")
        with pytest.raises(ConnectionRefusedError):  # the listening socket is closed: refused at once
            socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(body[1000:])  # the rest of the upload arrives after QUIT
        status, headers, echoed = read_response(sock)
    assert (status, echoed, headers.get("connection")) == (200, body, "close")
    assert server.proc.wait(10) == 0
    assert not alive(worker)


@pytest.mark.timeout(30)
def test_a_connection_queued_before_quit_is_served_and_later_ones_are_refused(start_server):
    """At a graceful stop the listening sockets close, as nginx's do: a connection the kernel
    had already queued is accepted first and served (closing the last descriptor of a
    listening socket resets its queue), and a new one is refused at once -- a proxy or a
    client retries a refused connect safely, not a request left unanswered."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--dispatch", "inline", "--chdir", APPS, "plain:app")
    (worker,) = wait_workers(server.proc.pid, 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as busy:
        busy.sendall(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")  # holds the worker's only thread
        wait_until(lambda: connection_owner(busy, server.port, [worker]), 5, message="the worker to accept")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as queued:
            queued.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")  # waits in the accept queue
            assert not connection_owner(queued, server.port, [worker])
            server.send_signal(signal.SIGQUIT)
            assert read_response(busy)[:1] == (200,)
            status, headers, body = read_response(queued)
            assert (status, body, headers.get("connection")) == (200, b"Hello, World!", "close")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5)
    assert server.proc.wait(10) == 0


@pytest.mark.timeout(30)
def test_an_app_that_fails_to_import_stops_the_master_with_the_reason(start_server):
    started = time.monotonic()
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--chdir", APPS, "broken_import:app",
                          expect_ports=0)
    code = server.proc.wait(5)
    assert code != 0 and time.monotonic() - started < 5
    log = server.log()
    assert "this app fails at import on purpose" in log and "failed to boot" in log
    assert log.count("failed to boot (exit code 3)") == 1  # stopped at once, not respawned in a loop


@pytest.mark.timeout(30)
def test_an_unknown_user_is_a_boot_failure(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--user", "no-such-user-prefork", expect_ports=0)
    assert server.proc.wait(5) == 1
    assert "unknown user 'no-such-user-prefork'" in server.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
@pytest.mark.timeout(30)
def test_workers_drop_privileges_after_the_master_bound_the_socket(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--user", "nobody")
    (worker,) = wait_workers(server.proc.pid, 1)
    nobody = str(pwd.getpwnam("nobody").pw_uid)

    def uids():
        return set(status_field(worker, "Uid").split())

    wait_until(lambda: uids() == {nobody}, 5, message="the worker to run as nobody")
    assert status_field(server.proc.pid, "Uid").split()[0] == "0"
    assert get(server.port, "/plaintext")[::2] == (200, b"Hello, World!")


@pytest.mark.timeout(30)
def test_sigkill_to_the_master_ends_every_worker_within_2s(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    pids = list(wait_workers(server.proc.pid, 2))
    server.proc.kill()
    server.proc.wait(5)
    killed = time.monotonic()
    wait_until(lambda: not any(alive(pid) for pid in pids), 2.0, message="workers to exit after the master died")
    assert time.monotonic() - killed < 2.0


@pytest.mark.timeout(30)
def test_hup_with_a_broken_configuration_keeps_the_workers(start_server, tmp_path):
    conf = tmp_path / "prefork.toml"
    conf.write_text('workers = 2\nbind = ["127.0.0.1:0"]\n')
    server = start_server("-c", str(conf), expect_ports=1)
    before = wait_workers(server.proc.pid, 2)
    conf.write_text('workers = "many"\nbind = ["127.0.0.1:0"]\n')
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"reload failed, configuration unchanged: .*prefork.toml.*'workers'")
    assert get(server.port, "/plaintext")[::2] == (200, b"Hello, World!")
    assert set(workers(server.proc.pid)) == set(before)
    conf.write_text('workers = 1\nbind = ["127.0.0.1:0"]\n')  # fixed: the next HUP applies it
    server.send_signal(signal.SIGHUP)
    after = wait_workers(server.proc.pid, 1, exclude=before)
    assert "[gen 2]" in list(after.values())[0]


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_a_worker_whose_reactor_blocks_is_killed_after_timeout_its_request_answered_500_and_replaced(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--timeout", "2", "--dispatch", "inline",
                          "--chdir", APPS, "blocking:app")
    (hung,) = wait_workers(server.proc.pid, 1)
    assert get(server.port, "/")[::2] == (200, b"ok")
    blocked = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    blocked.sendall(b"GET /block HTTP/1.1\r\nHost: test\r\n\r\n")
    server.wait_for_log(rf"worker 0 \[gen 1\] \(pid {hung}\) timed out: no heartbeat", 8)
    replacement = wait_until(lambda: [p for p in workers(server.proc.pid) if p != hung], 5,
                             message="a replacement worker")
    assert "prefork: worker 0 " in title(replacement[0])
    # The request in flight is answered, as gunicorn's sync worker does: a 500, not an empty reply.
    reply = b""
    while chunk := blocked.recv(4096):
        reply += chunk
    blocked.close()
    assert reply.startswith(b"HTTP/1.1 500 "), reply
    assert b"Connection: close" in reply
    assert "1 request(s) in flight answered with 500" in server.log()
    assert get(server.port, "/")[::2] == (200, b"ok")
    assert "blocking.py" in server.log()  # faulthandler showed where the worker was stuck


@pytest.mark.timeout(30)
def test_ps_shows_titles_and_prefork_s_quit_stops_the_server(start_server, tmp_path):
    pidfile = tmp_path / "p.pid"
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--pid", str(pidfile))
    pids = wait_workers(server.proc.pid, 2)
    ps = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "-p", ",".join(map(str, [server.proc.pid, *pids]))],
                        capture_output=True, text=True, check=True).stdout
    assert f"{server.proc.pid} prefork: master [-w 2 -b 127.0.0.1:0 --pid {pidfile}]" in ps
    assert sorted(line.split(None, 1)[1] for line in ps.splitlines()[1:]) == [
        "prefork: worker 0 [gen 1]", "prefork: worker 1 [gen 1]"]
    wait_until(pidfile.exists)
    control(pidfile, "quit")
    assert server.proc.wait(10) == 0
    assert not pidfile.exists()


@pytest.mark.timeout(30)
def test_winch_stops_workers_but_keeps_the_queue_and_hup_brings_them_back(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    master = server.proc.pid
    (first,) = wait_workers(master, 1)
    server.send_signal(signal.SIGWINCH)
    wait_until(lambda: not children(master), 5, message="workers to stop")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(REQUEST)  # waits in the master's socket queue: no reset, no answer yet
        server.send_signal(signal.SIGHUP)
        assert read_response(sock)[:1] == (200,)
    assert set(workers(master)) != {first}


@pytest.mark.timeout(30)
def test_max_requests_recycles_the_worker_without_a_failed_request(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--max-requests", "5")
    master = server.proc.pid
    (first,) = wait_workers(master, 1)
    for _ in range(12):
        assert get(server.port, "/plaintext")[::2] == (200, b"Hello, World!")
    wait_until(lambda: first not in workers(master) and len(workers(master)) == 1, 5,
               message="a recycled worker")
    server.wait_for_log("requests served, recycling")


@pytest.mark.timeout(30)
def test_sd_notify_ready_reloading_stopping(start_server, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(10)
        server = start_server("-w", "1", "-b", "127.0.0.1:0", env={"NOTIFY_SOCKET": path})

        def next_message() -> str:
            return notify.recv(4096).decode()

        assert next_message().startswith("READY=1\nSTATUS=serving: 1 worker, generation 1")
        server.send_signal(signal.SIGHUP)
        assert next_message().startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert next_message().startswith("READY=1\nSTATUS=serving: 1 worker, generation 2")
        server.send_signal(signal.SIGQUIT)
        assert next_message().startswith("STOPPING=1")
        assert server.proc.wait(10) == 0


@pytest.mark.timeout(30)
def test_unix_socket_stale_file_is_replaced_and_a_live_one_refused(start_server, tmp_path):
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: what a killed server leaves
    start_server("-w", "1", "-b", f"unix:{path}", expect_ports=1)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(REQUEST)
        assert read_response(sock)[0] == 200
    second = start_server("-w", "1", "-b", f"unix:{path}", expect_ports=0)
    assert second.proc.wait(5) == 1
    assert "another server is listening there" in second.log()


@pytest.mark.timeout(30)
def test_hup_with_an_app_that_no_longer_imports_keeps_the_old_generation(start_server, tmp_path):
    module = tmp_path / "deployed.py"
    module.write_text("import os, pathlib\n"  # each worker says it imported the app
                      "pathlib.Path(__file__).with_name(f'imported-{os.getpid()}').touch()\n"
                      + (APPS / "blocking.py").read_text())
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--chdir", str(tmp_path), "deployed:app")
    before = wait_workers(server.proc.pid, 2)
    wait_until(lambda: all((tmp_path / f"imported-{pid}").exists() for pid in before), 5,
               message="both workers to import the app")
    module.write_text("raise ImportError('a broken deploy')\n")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"failed to boot: reload abandoned, generation 1 keeps serving")
    assert "a broken deploy" in server.log()
    wait_until(lambda: not [p for p in children(server.proc.pid) if p not in before], 5,
               message="the failed generation to be gone")
    assert get(server.port, "/")[::2] == (200, b"ok")
    assert set(workers(server.proc.pid)) == set(before) and server.proc.poll() is None


SOCKET_ACTIVATION = """
import os, socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
os.dup2(sock.fileno(), 3)  # where systemd puts the first socket
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))  # exec keeps the pid
port = sock.getsockname()[1]
os.execv(sys.argv[1], sys.argv[1:] + ["-w", "2", "-b", f"127.0.0.1:{port}"])
"""


@pytest.mark.timeout(30)
def test_systemd_socket_activation_serves_the_passed_socket(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", SOCKET_ACTIVATION, *PREFORK], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=checkout_env())
    try:
        match = wait_until(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+) \(port \1\)", log.read_text()), 10,
                           message="prefork to listen")
        port = int(match.group(1))  # bound by the wrapper: binding it again would fail (EADDRINUSE)
        wait_workers(proc.pid, 2)
        assert get(port, "/plaintext")[::2] == (200, b"Hello, World!")
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.mark.timeout(30)
def test_usr1_reopens_the_error_log(start_server, tmp_path):
    error_log = tmp_path / "error.log"
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--error-log", str(error_log), expect_ports=0)
    wait_until(lambda: error_log.exists() and "master" in error_log.read_text(), 10, message="the error log")
    wait_workers(server.proc.pid, 1)
    error_log.rename(tmp_path / "error.log.1")  # what logrotate does
    server.send_signal(signal.SIGUSR1)
    wait_until(error_log.exists, 5, message="the reopened log file")
    server.send_signal(signal.SIGTTIN)
    wait_until(lambda: "TTIN: 2 workers" in error_log.read_text(), 5, message="a line in the new file")
    assert "reopening log files (USR1)" in (tmp_path / "error.log.1").read_text()


@pytest.mark.timeout(30)
def test_a_worker_crashing_in_a_loop_is_respawned_with_exponential_backoff(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--chdir", APPS, "crashing:app")
    server.wait_for_log(r"exited with code 7; respawning slot 0 in 1s \(3 failures in a row\)", 10)
    log = server.log()
    assert re.search(r"exited with code 7; respawning slot 0\n", log)  # the first time: at once
    assert "respawning slot 0 in 0.5s (2 failures in a row)" in log
    assert server.proc.poll() is None  # a crash is not a boot failure: the master carries on


@pytest.mark.timeout(30)
def test_a_worker_killed_by_requests_again_and_again_is_respawned_at_once_each_time(start_server):
    """One bad client must not turn into an outage: no backoff for workers that served."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--dispatch", "inline", "--chdir", APPS,
                          "crash_on_request:app")
    for crash in range(6):
        wait_workers(server.proc.pid, 1)
        assert get(server.port, "/")[::2] == (200, b"ok")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /crash HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(1) == b""
        started = time.monotonic()
        assert get(server.port, "/")[::2] == (200, b"ok")  # queued on the slot's socket meanwhile
        assert time.monotonic() - started < 1.0
    assert server.log().count("exited with code 5; respawning slot 0\n") == 6
    assert "failures in a row" not in server.log()


@pytest.mark.timeout(60)
def test_workers_signalled_right_after_their_fork_leave_the_master_serving(start_server):
    """TTIN, then TTOU as soon as the new worker exists: it is sent QUIT in its first instants.

    A child still holding the master's signal wake-up fd wrote that QUIT into the master's
    pipe, and the master shut itself down (see Arbiter.spawn). The client load keeps the CPUs
    busy, so that a new child often waits to run and the instant is wide.
    """
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    master = server.proc.pid
    wait_workers(master, 2)

    def stopped() -> bool:
        return server.proc.poll() is not None or "shutdown" in server.log()

    with Load(server.port, threads=2, seconds=0) as load:
        known = set(children(master))
        for cycle in range(1, 101):
            os.kill(master, signal.SIGTTIN)
            forked = wait_until(lambda known=known: set(children(master)) - known or stopped(), 5,
                                interval=0, message="the TTIN worker's fork")
            os.kill(master, signal.SIGTTOU)
            known |= set(children(master))
            # one TTOU handled per TTIN: the count stays 2 <-> 3, whatever the timing
            wait_until(lambda n=cycle: server.log().count("TTOU: ") >= n or stopped(), 5, message="the TTOU")
            assert forked is not True and not stopped(), server.log()[-3000:]
            if cycle in (30, 60):
                server.send_signal(signal.SIGHUP)
        final = wait_workers(master, 2, timeout=15)
        load.wait_requests(20)
    load.assert_no_failure()
    assert not stopped(), server.log()[-3000:]
    # the master blocks its signals only around each fork; each child unblocks them once booted
    assert [blocked_signals(pid) & CONTROL_SIGNALS for pid in (master, *final)] == [0, 0, 0]


CONTROL_SIGNALS = sum(1 << (sig - 1) for sig in (
    signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU))


def blocked_signals(pid: int) -> int:
    """The process's blocked-signal mask, from /proc/PID/status (SigBlk: bit N-1 is signal N)."""
    return int(status_field(pid, "SigBlk"), 16)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", [[], ["-n", "myapp"]], ids=["default-title", "own-title"])
def test_a_second_server_refuses_the_pidfile_of_a_running_master(start_server, tmp_path, name):
    """Two servers given one pidfile: the second must not take it over (it would delete it at
    exit, and `prefork -s` could no longer reach the first): it exits 1 saying why, whatever
    title the first one's processes have."""
    pidfile = tmp_path / "p.pid"
    first = start_server("-w", "1", "-b", "127.0.0.1:0", "--pid", str(pidfile), *name)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(first.proc.pid), 10,
               message="the first master's pidfile")
    second = run_prefork("-w", "1", "-b", "127.0.0.1:0", "--pid", str(pidfile), timeout=20)
    assert second.returncode == 1, second.stderr
    assert f"the pidfile {pidfile} is held by a running prefork master (pid {first.proc.pid})" in second.stderr
    assert pidfile.read_text().strip() == str(first.proc.pid)
    control(pidfile, "quit")
    assert first.proc.wait(10) == 0
    assert not pidfile.exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("other_command", [["sleep", "60"], [sys.executable, "-c", "import time; time.sleep(60)",
                                                                 "prefork: master [-w 1]"]], ids=["sleep", "lookalike"])
def test_a_pidfile_left_by_a_dead_master_is_overwritten(start_server, tmp_path, other_command):
    """A pidfile left by a master that was killed, its pid since reused by another program, even
    one whose command line says prefork: no running master holds it, so the new master writes
    its own pid there."""
    pidfile = tmp_path / "p.pid"
    with subprocess.Popen(other_command) as other:
        try:
            pidfile.write_text(f"{other.pid}\n")
            server = start_server("-w", "1", "-b", "127.0.0.1:0", "--pid", str(pidfile))
            wait_until(lambda: pidfile.read_text().strip() == str(server.proc.pid), 10,
                       message="the new master's pid in the pidfile")
        finally:
            other.kill()
