"""Binding the listening sockets, before any worker is forked.

With reuse_port (the default), each TCP address gets one SO_REUSEPORT socket per worker slot,
and the master keeps all of them open: a slot's queue then outlives its worker, so a respawn
or a reload resets no queued connection. Without it, one socket is shared by all workers.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass, field

from .addresses import Address, parse_address


class BindError(Exception):
    pass


@dataclass
class Listening:
    """One configured address and its sockets: one per slot (reuse_port) or one shared."""

    address: Address
    sockets: list = field(default_factory=list)
    per_slot: bool = False

    def socket_for(self, slot: int) -> socket.socket:
        return self.sockets[slot] if self.per_slot else self.sockets[0]

    @property
    def bound_port(self) -> int:
        return self.sockets[0].getsockname()[1] if self.address.kind == "tcp" else 0


def _tcp_socket(address: Address, port: int, reuse_port: bool, backlog: int) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if address.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {address.text}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _unix_socket(address: Address, backlog: int) -> socket.socket:
    path = address.path
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise BindError(f"cannot listen on {address.text}: {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise BindError(f"cannot listen on {address.text}: {exc.strerror}") from None
            os.unlink(path)  # a stale socket left by a dead server
        else:
            raise BindError(f"cannot listen on {address.text}: another server is listening there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {address.text}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def bind_address(address: Address, slots: int, reuse_port: bool, backlog: int) -> Listening:
    """Bind one address: `slots` SO_REUSEPORT sockets for TCP with reuse_port, else one."""
    if address.kind == "unix":
        return Listening(address, [_unix_socket(address, backlog)])
    if address.kind == "fd":
        sock = socket.socket(fileno=address.fd)
        sock.set_inheritable(True)
        return Listening(address, [sock])
    if not reuse_port:
        return Listening(address, [_tcp_socket(address, address.port, False, backlog)])
    first = _tcp_socket(address, address.port, True, backlog)
    port = first.getsockname()[1]  # port 0 asks the kernel for one; the other slots share it
    sockets = [first] + [_tcp_socket(address, port, True, backlog) for _ in range(slots - 1)]
    return Listening(address, sockets, per_slot=True)


def bind_all(bind: list[str], slots: int, reuse_port: bool, backlog: int) -> list[Listening]:
    listenings = []
    try:
        for text in bind:
            listenings.append(bind_address(parse_address(text), slots, reuse_port, backlog))
    except BindError:
        for listening in listenings:
            for sock in listening.sockets:
                sock.close()
        raise
    return listenings


def worker_sockets(listenings: list[Listening], slot: int) -> list[tuple]:
    """The (socket, protocol, shared) triples a worker in `slot` serves."""
    return [(l.socket_for(slot), l.address.protocol, not l.per_slot) for l in listenings]
