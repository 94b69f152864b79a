"""The master under load: reload (HUP), upgrade (USR2 + QUIT), resize (TTOU/TTIN) and a killed
worker drop no request; the real `prefork` command, real signals, real sockets on 127.0.0.1.

Failure accounting of the load client: every request counts as failed if it gets no complete
200 response -- with one exception, the keep-alive race every HTTP client handles: a request
sent on a *reused* keep-alive connection that the server closed (as idle) before any byte of
the response came back is retried once on a new connection, as RFC 9112 section 9.3.1 allows
and browsers, httpx and urllib3 do. Those retries are counted apart and never hide a failure
on a new connection or a response cut short.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import read_response, wait_until

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n"
KEEPALIVE_REQUESTS = 20  # requests per keep-alive connection before the client closes it


# -- processes --------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def workers(master: int) -> dict[int, str]:
    """pid -> process title of the master's serving workers (not shutting down)."""
    found = {}
    for pid in children(master):
        name = title(pid)
        if name.startswith("prefork: worker") and "shutting down" not in name and alive(pid):
            found[pid] = name
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_workers(master: int, count: int, exclude=(), timeout=10.0) -> dict[int, str]:
    """Wait until the master has exactly `count` serving workers, none of them in `exclude`,
    and no other child worker (the superseded ones have exited)."""
    def ready():
        current = workers(master)
        others = [p for p in children(master) if title(p).startswith("prefork: worker") and p not in current]
        if len(current) == count and not set(current) & set(exclude) and not others:
            return current
        return None
    return wait_until(ready, timeout, message=f"{count} new workers of master {master}")


# -- the load client --------------------------------------------------------------------------

class Load:
    """Client threads sending GET /plaintext, half on new connections, half on keep-alive ones."""

    def __init__(self, port: int, threads: int = 4, seconds: float = 3.0, connect=None):
        """connect: opens a new connection to the server (plain TCP to port by default; TLS
        tests pass their own)."""
        self.port = port
        self.connect = connect or (lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
        self.seconds = seconds  # the least time the load runs, whatever the test does meanwhile
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.retried = 0
        self.threads = [threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True)
                        for i in range(threads)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        self.started = time.monotonic()
        wait_until(lambda: self.ok > 20, 10, message="load to get going")
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            wait_until(lambda: time.monotonic() - self.started >= self.seconds, self.seconds + 1,
                       interval=0.05, message="the load's duration")
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)
        assert not any(t.is_alive() for t in self.threads), "a client thread is stuck"

    def wait_requests(self, count: int, timeout: float = 10.0) -> None:
        start = self.ok
        wait_until(lambda: self.ok >= start + count, timeout, message=f"{count} more responses")

    def _run(self, keepalive: bool) -> None:
        while not self.stopping.is_set():
            try:
                self._connection(keepalive)
            except Exception as exc:  # noqa: BLE001 - every error is a failed request
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def _connection(self, keepalive: bool) -> None:
        with self.connect() as sock:
            buffer = bytearray()
            for used in range(KEEPALIVE_REQUESTS if keepalive else 1):
                if self.stopping.is_set():
                    return
                try:
                    sock.sendall(REQUEST)
                    status, _, body = read_response(sock, buffer)
                except (ConnectionError, OSError) as exc:
                    if used and not buffer and not isinstance(exc, socket.timeout):
                        self._retry()  # the keep-alive race: closed before any response byte
                        return
                    raise
                if status != 200 or body != b"Hello, World!":
                    raise AssertionError(f"unexpected response {status} {body!r}")
                with self.lock:
                    self.ok += 1

    def _retry(self) -> None:
        with self.lock:
            self.retried += 1
        with self.connect() as sock:
            sock.sendall(REQUEST)
            status, _, body = read_response(sock)
            if status != 200 or body != b"Hello, World!":
                raise AssertionError(f"unexpected response {status} {body!r}")
        with self.lock:
            self.ok += 1

    def assert_no_failure(self) -> None:
        assert not self.failures, f"{len(self.failures)} failed requests ({self.ok} ok), first: {self.failures[:3]}"
        assert self.ok > 100


def probe_new_connections(port: int, count: int = 30, timeout: float = 2.0) -> None:
    """`count` new connections (hashed over every SO_REUSEPORT socket) must each be answered."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(REQUEST)
            assert read_response(sock)[0] == 200


# -- the tests --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(60)
def test_three_reloads_under_load_drop_nothing(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    master = server.proc.pid
    first = wait_workers(master, 2)
    seen = set(first)
    with Load(server.port) as load:
        for _ in range(3):
            server.send_signal(signal.SIGHUP)
            seen |= set(wait_workers(master, 2, exclude=seen))
            load.wait_requests(50)
    load.assert_no_failure()
    final = workers(master)
    assert len(final) == 2 and not set(final) & set(first)
    assert len(seen) == 8  # four generations of two workers
    assert all("[gen 4]" in name for name in final.values())


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_upgrade_then_quit_old_master_drops_nothing(start_server, tmp_path):
    pidfile = tmp_path / "prefork.pid"
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--pid", str(pidfile))
    old_master = server.proc.pid
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(old_master))
    old_workers = wait_workers(old_master, 2)
    with Load(server.port) as load:
        server.send_signal(signal.SIGUSR2)
        oldbin = Path(str(pidfile) + ".oldbin")
        wait_until(lambda: oldbin.exists() and pidfile.exists() and pidfile.read_text().strip() != str(old_master),
                   10, message="the new master's pidfile")
        assert oldbin.read_text().strip() == str(old_master)
        new_master = int(pidfile.read_text())
        assert new_master in children(old_master)
        new_workers = wait_workers(new_master, 2)
        load.wait_requests(50)
        server.send_signal(signal.SIGQUIT)
        assert server.proc.wait(10) == 0
        assert not any(alive(pid) for pid in old_workers)
        load.wait_requests(100)  # the new master alone serves
    load.assert_no_failure()
    assert set(workers(new_master)) == set(new_workers)
    assert not oldbin.exists() and pidfile.read_text().strip() == str(new_master)
    os.kill(new_master, signal.SIGQUIT)
    wait_until(lambda: not alive(new_master), 10, message="the new master to exit")
    assert not pidfile.exists()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_ttou_then_ttin_drops_nothing_and_keeps_every_queue_served(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    master = server.proc.pid
    first = wait_workers(master, 2)
    with Load(server.port) as load:
        server.send_signal(signal.SIGTTOU)
        # slot 1's SO_REUSEPORT socket stays open: a new worker in slot 0 serves it too
        single = wait_workers(master, 1, exclude=first)
        assert list(single.values())[0].startswith("prefork: worker 0 ")
        probe_new_connections(server.port)
        load.wait_requests(50)
        server.send_signal(signal.SIGTTIN)
        both = wait_until(lambda: len(workers(master)) == 2 and workers(master), 10, message="TTIN")
        load.wait_requests(50)
    load.assert_no_failure()
    assert not set(both) & set(first)
    assert sorted(name.split()[2] for name in both.values()) == ["0", "1"]


def server_socket_owner(client: socket.socket, port: int, pids) -> int | None:
    """The worker holding the server side of client's connection (from /proc/net/tcp)."""
    local = client.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[2].endswith(f":{local:04X}"):
            inode = fields[9]
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


@pytest.mark.timeout(60)
def test_killed_worker_is_replaced_in_its_slot_and_the_other_sees_nothing(start_server):
    server = start_server("-w", "2", "-b", "127.0.0.1:0")
    master = server.proc.pid
    pids = wait_workers(master, 2)
    # keep-alive connections, each known to be served by one worker or the other
    owned: dict[int, list] = {pid: [] for pid in pids}
    for _ in range(60):
        if all(len(socks) >= 2 for socks in owned.values()):
            break
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(REQUEST)
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 200
        owner = server_socket_owner(sock, server.port, pids)
        owned[owner].append((sock, buffer)) if owner in owned else sock.close()
    assert all(len(socks) >= 2 for socks in owned.values()), "connections did not spread over both workers"
    victim, survivor = sorted(pids)
    slot = pids[victim].split()[2]
    failures, ok = [], [0]
    stopping = threading.Event()

    def keep_using(sock, buffer):
        try:
            while not stopping.is_set():
                sock.sendall(REQUEST)
                assert read_response(sock, buffer)[0] == 200
                ok[0] += 1
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=keep_using, args=pair) for pair in owned[survivor]]
    for thread in threads:
        thread.start()
    wait_until(lambda: ok[0] > 20, 5, message="traffic on the surviving worker")
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: [p for p, name in workers(master).items()
                                   if p not in (survivor, victim) and name.split()[2] == slot], 1.0,
                          message=f"a new worker in slot {slot} within 1s")
    assert time.monotonic() - killed < 1.0
    probe_new_connections(server.port)
    count = ok[0]
    wait_until(lambda: ok[0] > count + 20, 5, message="traffic after the replacement")
    stopping.set()
    for thread in threads:
        thread.join(10)
    for pairs in owned.values():
        for sock, _ in pairs:
            sock.close()
    assert not failures, failures
    assert re.search(rf"worker {slot} \[gen 1\] \(pid {victim}\) was killed by SIGKILL", server.log())
