"""The master under load: reload (HUP), upgrade (USR2 + QUIT), resize (TTOU/TTIN) and a killed
worker drop no request; the real `prefork` command, real signals, real sockets on 127.0.0.1.
The load client and its failure accounting are tests/support/load.py's.
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

from support.client import read_response
from support.descriptors import connection_owner
from support.load import REQUEST, Load
from support.polling import wait_until
from support.processes import alive, children, wait_workers, workers


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
def test_rollback_after_winch_brings_the_old_workers_back(start_server, tmp_path):
    # nginx's way to try a new version alone: WINCH the old master, then, to roll back, QUIT the
    # new one. The old master must serve again by itself (not wait for a HUP nobody sends).
    pidfile = tmp_path / "prefork.pid"
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--pid", str(pidfile))
    old_master = server.proc.pid
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(old_master))
    old_workers = wait_workers(old_master, 2)
    server.send_signal(signal.SIGUSR2)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() not in ("", str(old_master)), 10,
               message="the new master's pidfile")
    new_master = int(pidfile.read_text())
    wait_workers(new_master, 2)
    server.send_signal(signal.SIGWINCH)
    wait_until(lambda: not any(alive(pid) for pid in old_workers), 10, message="the old workers to stop")
    probe_new_connections(server.port)  # the new master alone serves
    os.kill(new_master, signal.SIGQUIT)
    wait_until(lambda: not alive(new_master), 10, message="the new master to exit")
    wait_workers(old_master, 2, exclude=old_workers)
    probe_new_connections(server.port)
    assert pidfile.read_text().strip() == str(old_master)
    assert f"QUIT {new_master} to roll back" in server.log()

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
        owner = connection_owner(sock, server.port, pids)
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
