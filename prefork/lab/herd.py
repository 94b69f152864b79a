"""The thundering herd: N processes waiting for connections on one socket, or each on its own.

Three ways to share a port among worker processes:

    shared     one listening socket, every worker waits for it in its own epoll: the kernel
               wakes them all for each connection, one wins the accept, the rest find EAGAIN
    exclusive  the same, registered with EPOLLEXCLUSIVE: the kernel wakes one (or a few)
    reuseport  one SO_REUSEPORT socket per worker: the kernel picks the socket by a hash of
               the connection, so only its worker is woken (what prefork does)

Each worker counts its wake-ups (its voluntary context switches: every time it slept and was
woken, including the times the kernel woke it, found the connection already taken, and put it
back to sleep without returning from epoll_wait), how often its wait returned, and how many
accepts succeeded.
"""

from __future__ import annotations

import json
import os
import resource
import select
import socket

MODES = ("shared", "exclusive", "reuseport")


def listener(port: int = 0, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def worker(sock: socket.socket, exclusive: bool, stop_fd: int, report_fd: int) -> None:
    """Wait, try one accept per wake-up, close the connection; report the counts when told to stop."""
    epoll = select.epoll()
    epoll.register(sock.fileno(), select.EPOLLIN | (select.EPOLLEXCLUSIVE if exclusive else 0))
    epoll.register(stop_fd, select.EPOLLIN)
    returns = accepts = 0
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    while True:
        fds = [fd for fd, _ in epoll.poll()]
        if stop_fd in fds:
            break
        returns += 1
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            continue  # another worker was faster: a wasted wake-up
        accepts += 1
        conn.close()
    wakeups = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - switches
    os.write(report_fd, json.dumps({"wakeups": wakeups, "returns": returns, "accepts": accepts}).encode())


def measure(mode: str, workers: int, connections: int, cpus: set[int] | None = None) -> list[dict]:
    """Start the workers, make connections one after the other, return each worker's counts."""
    sockets = [listener(reuse_port=mode == "reuseport")]
    port = sockets[0].getsockname()[1]
    if mode == "reuseport":
        sockets += [listener(port, reuse_port=True) for _ in range(workers - 1)]
    stop_read, stop_write = os.pipe()
    reports, pids = [], []
    for number in range(workers):
        report_read, report_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                if cpus:
                    os.sched_setaffinity(0, cpus)
                worker(sockets[number % len(sockets)], mode == "exclusive", stop_read, report_write)
            finally:
                os._exit(0)
        os.close(report_write)
        reports.append(report_read)
        pids.append(pid)
    try:
        for _ in range(connections):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.recv(1)  # the worker's close: this connection is done before the next
    finally:
        os.write(stop_write, b"x")
        counts = [json.loads(read_all(fd)) for fd in reports]
        for pid in pids:
            os.waitpid(pid, 0)
        for fd in (stop_read, stop_write, *reports):
            os.close(fd)
        for sock in sockets:
            sock.close()
    return counts


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)
