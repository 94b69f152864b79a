"""Asynchronous IO with io_uring: ask for whole operations, be told when they are complete.

    io_uring_prep_recv + submit   "receive into this buffer", then the process is free
    the kernel                    does both phases: waits for the data, copies it into
                                  the buffer we gave
    completion queue entry        the process learns of the read only once the bytes are
                                  in its buffer (the Proactor's "completed operation")

One ring holds submissions and completions for every socket; a wait reaps many completions
in one system call, and a submit sends many requests in one. Each connection owns a receive
buffer for as long as a recv is in flight: the kernel writes into it at its own time.

This needs a Linux kernel with io_uring (5.1+, and allowed by its sysctl and seccomp) and the
`liburing` package (the optional extra `lab`); where either is missing, unavailable() says
why and the lab goes on without this model.
"""

from __future__ import annotations

import os
import socket

from . import protocol

try:
    import liburing
except ImportError:  # the optional extra is not installed
    liburing = None

ACCEPT, RECV, SEND = 0, 1, 2
ENTRIES = 4096
READ_SIZE = 65536


def unavailable() -> str | None:
    """Why this model cannot run here, or None when it can."""
    if liburing is None:
        return "the liburing package is not installed (pip install 'prefork[lab]')"
    if not hasattr(liburing, "io_uring"):
        return f"this liburing ({getattr(liburing, '__version__', '?')}) lacks the io_uring class the model uses"
    ring = liburing.io_uring()
    try:
        liburing.io_uring_queue_init(8, ring, 0)
    except OSError as exc:
        return f"the kernel refuses io_uring: {exc}"
    liburing.io_uring_queue_exit(ring)
    return None


class Connection:
    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray(READ_SIZE)  # the kernel writes here while a recv is in flight
        self.inbox = bytearray()
        self.sending = b""  # kept alive until its send completes


class Ring:
    def __init__(self):
        self.ring = liburing.io_uring()
        liburing.io_uring_queue_init(ENTRIES, self.ring, 0)
        self.cqe = liburing.io_uring_cqe()

    def submission(self, fd: int, op: int):
        sqe = liburing.io_uring_get_sqe(self.ring)
        if sqe is None:  # the submission queue is full: hand it to the kernel, then there is room
            liburing.io_uring_submit(self.ring)
            sqe = liburing.io_uring_get_sqe(self.ring)
        liburing.io_uring_sqe_set_data64(sqe, fd << 2 | op)
        return sqe

    def accept(self, listener_fd: int) -> None:
        liburing.io_uring_prep_accept(self.submission(listener_fd, ACCEPT), listener_fd)

    def recv(self, conn: Connection) -> None:
        liburing.io_uring_prep_recv(self.submission(conn.fd, RECV), conn.fd, conn.buffer, READ_SIZE)

    def send(self, conn: Connection, data: bytes) -> None:
        conn.sending = data
        liburing.io_uring_prep_send(self.submission(conn.fd, SEND), conn.fd, data, len(data))

    def completed(self):
        """Submit what is queued, wait for at least one completion, yield (fd, op, result) for each."""
        liburing.io_uring_submit_and_wait(self.ring, 1)
        done = []
        while liburing.io_uring_peek_cqe(self.ring, self.cqe) == 0:  # no system call: the ring is shared memory
            done.append((self.cqe.user_data, self.cqe.res))
            liburing.io_uring_cqe_seen(self.ring, self.cqe)
        for data, result in done:
            yield data >> 2, data & 3, result


def serve(listener: socket.socket, variant: str = "") -> None:
    ring = Ring()
    connections: dict[int, Connection] = {}
    ring.accept(listener.fileno())
    while True:
        for fd, op, result in ring.completed():
            if op == ACCEPT:
                ring.accept(fd)
                if result >= 0:
                    conn = connections[result] = Connection(result)
                    ring.recv(conn)
                continue
            conn = connections[fd]
            if result <= 0:  # the client closed (0) or the operation failed (-errno)
                os.close(fd)
                del connections[fd]
            elif op == RECV:
                conn.inbox += conn.buffer[:result]  # the copy is already done: the bytes are here
                answer = protocol.answers(conn.inbox)
                if answer:
                    ring.send(conn, answer)
                else:
                    ring.recv(conn)  # half a request: wait for the rest
            elif result < len(conn.sending):
                ring.send(conn, conn.sending[result:])  # a short send: the rest
            else:
                ring.recv(conn)
