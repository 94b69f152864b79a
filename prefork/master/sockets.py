"""Binding the listening sockets, before any worker is forked.

With reuse_port (the default), each TCP address gets one SO_REUSEPORT socket per worker slot,
and the master keeps all of them open: a slot's queue then outlives its worker, so a respawn
or a reload resets no queued connection. Without it, one socket is shared by all workers.

Sockets may also come from elsewhere instead of being bound: `fd://N`, systemd socket
activation (LISTEN_FDS) and the previous master during an upgrade (PREFORK_FDS). A socket is
never closed while the master lives, except when the whole listener is removed.

When a slot loses its worker (TTOU), its SO_REUSEPORT socket keeps receiving connections, so
it must still be served: `assignment` hands the sockets of slots without a worker to the
remaining ones (slot i serves the sockets s with s % active == i).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from dataclasses import dataclass, field

from prefork.addresses import Address, parse_address


log = logging.getLogger("prefork")


class BindError(Exception):
    pass


@dataclass
class Listening:
    """One configured address and its sockets: one per slot (reuse_port) or one shared."""

    address: Address
    sockets: list = field(default_factory=list)
    per_slot: bool = False
    backlog: int = 2048
    origin: str = "bound"  # "bound", "inherited" (upgrade), "systemd" or "fd"
    # (st_dev, st_ino) of the unix socket file we bound: only that file is ours to remove (once
    # a stop has removed it, another server may bind the path again).
    identity: tuple | None = None

    def grow(self, slots: int) -> bool:
        """Bind SO_REUSEPORT sockets until there is one per slot; False if the kernel refused."""
        while self.per_slot and len(self.sockets) < slots:
            try:
                self.sockets.append(_tcp_socket(self.address, self.bound_port, True, self.backlog))
            except BindError as exc:
                log.warning("%s; slots beyond %d share sockets", exc, len(self.sockets))
                return False
        return True

    def close(self, unlink: bool = True) -> None:
        for sock in self.sockets:
            sock.close()
        if unlink and self.address.kind == "unix" and self.origin == "bound" and self.identity is not None:
            try:
                found = os.stat(self.address.path)
                if (found.st_dev, found.st_ino) == self.identity:
                    os.unlink(self.address.path)
            except OSError:
                pass
            self.identity = None

    def protocol(self, tls_by_default: bool) -> str:
        """What its workers speak: the address's protocol, or "https" for a TCP socket whose
        address has no scheme when the configuration makes TLS the default (config.tls_by_default).
        Asked at each fork, so a reload that adds or removes the certificate applies to it."""
        address = self.address
        if (tls_by_default and address.protocol == "http" and not address.explicit
                and self.sockets[0].family in (socket.AF_INET, socket.AF_INET6)):
            return "https"
        return address.protocol

    @property
    def bound_port(self) -> int:
        return self.sockets[0].getsockname()[1] if self.address.kind == "tcp" else 0


def _tcp_socket(address: Address, port: int, reuse_port: bool, backlog: int,
                exclusive: bool = False) -> socket.socket:
    """A listening TCP socket. exclusive: refuse the address if anything listens there already.

    SO_REUSEPORT lets any socket of the same user join a port, so a second server started by
    mistake would silently share our traffic. The first socket of an address is therefore bound
    without it (the kernel refuses the bind if anyone listens there, with or without the option)
    and gets it only before listen(), so the other slots' sockets can still join: race-free,
    with no window between a check and the bind.
    """
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and not exclusive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if address.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, port))
        if reuse_port and exclusive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(f"cannot listen on {address.text}: {why}") from None
    sock.set_inheritable(True)
    return sock


def unix_socket_mode(address: Address, umask: int | None) -> int:
    """rw for everyone (a proxy running as another user must connect: nginx as www-data), less
    what `umask` takes away; a mode in the address (unix:PATH?mode=660) decides alone."""
    if address.mode is not None:
        return address.mode
    return 0o666 & ~(umask or 0)


def _unix_socket(address: Address, backlog: int, umask: int | None = None,
                 owner: tuple[int | None, int | None] = (None, None)) -> socket.socket:
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
    bound = False
    try:
        sock.bind(path)
        bound = True
        os.chmod(path, unix_socket_mode(address, umask))  # before listen(): no one connected yet
        uid, gid = owner
        if uid is not None or gid is not None:
            # The workers' user and group own it, as gunicorn does: with unix:PATH?mode=660 the
            # proxy gets in by being in that group (nginx's www-data), not in root's.
            try:
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot give it to the user and group of the workers ({exc.strerror}); "
                                         "set user and group only when starting as root") from None
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if bound:
            try:
                os.unlink(path)  # ours, just bound: leave nothing behind
            except OSError:
                pass
        raise BindError(f"cannot listen on {address.text}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def bind_address(address: Address, slots: int, reuse_port: bool, backlog: int,
                 umask: int | None = None, owner: tuple[int | None, int | None] = (None, None)) -> Listening:
    """Bind one address: `slots` SO_REUSEPORT sockets for TCP with reuse_port, else one."""
    if address.kind == "unix":
        sock = _unix_socket(address, backlog, umask, owner)
        found = os.stat(address.path)
        return Listening(address, [sock], backlog=backlog, identity=(found.st_dev, found.st_ino))
    if address.kind == "fd":
        try:
            sock = socket.socket(fileno=address.fd)
        except OSError as exc:
            raise BindError(f"cannot listen on {address.text}: {exc.strerror}") from None
        sock.set_inheritable(True)
        return Listening(address, [sock], backlog=backlog, origin="fd")
    if not reuse_port:
        return Listening(address, [_tcp_socket(address, address.port, False, backlog)], backlog=backlog)
    first = _tcp_socket(address, address.port, True, backlog, exclusive=True)
    port = first.getsockname()[1]  # port 0 asks the kernel for one; the other slots share it
    listening = Listening(address, [first], per_slot=True, backlog=backlog)
    try:
        for _ in range(slots - 1):
            listening.sockets.append(_tcp_socket(address, port, True, backlog))
    except BindError:
        listening.close()
        raise
    return listening


def matches(address: Address, sock: socket.socket) -> bool:
    """Is sock (from systemd) listening on address?"""
    try:
        name = sock.getsockname()
    except OSError:
        return False
    if address.kind == "unix":
        return sock.family == socket.AF_UNIX and name == address.path
    if address.kind != "tcp" or sock.family != address.family or name[1] != address.port:
        return False
    try:
        wanted = {info[4][0] for info in socket.getaddrinfo(address.host, None, address.family)}
    except OSError:
        wanted = {address.host}
    return name[0] in wanted or address.host in ("0.0.0.0", "::") and name[0] in ("0.0.0.0", "::")


def bind_all(bind: list[str], slots: int, reuse_port: bool, backlog: int,
             inherited: dict[str, list] | None = None, activated: list | None = None,
             umask: int | None = None, owner: tuple[int | None, int | None] = (None, None)) -> list[Listening]:
    """Listening sockets for every address of `bind`, reusing what was inherited.

    inherited: address text -> (its sockets in slot order, per_slot) (PREFORK_FDS, from the
    old master; used as they are, even if reuse_port changed: that takes a restart).
    activated: sockets passed by systemd; each serves the address it is bound to, and one
    that matches no address is served as http on fd://N.
    umask: the configured one, if any, for unix sockets' permissions (see unix_socket_mode).
    owner: (uid, gid) of the configured user and group, which own the unix sockets.
    """
    inherited = dict(inherited or {})
    activated = list(activated or [])
    listenings = []
    try:
        for text in bind:
            address = parse_address(text)
            if text in inherited:
                sockets, per_slot = inherited.pop(text)
                listening = Listening(address, sockets, per_slot=per_slot, backlog=backlog, origin="inherited")
                if listening.per_slot:
                    listening.grow(slots)
                listenings.append(listening)
                continue
            found = next((sock for sock in activated if matches(address, sock)), None)
            if found is not None:
                activated.remove(found)
                listenings.append(Listening(address, [found], backlog=backlog, origin="systemd"))
                continue
            listenings.append(bind_address(address, slots, reuse_port, backlog, umask, owner))
        for sock in activated:
            address = parse_address(f"fd://{sock.fileno()}")
            listenings.append(Listening(address, [sock], backlog=backlog, origin="systemd"))
    except BindError:
        for listening in listenings:
            if listening.origin == "bound":
                listening.close()
        raise
    for text, (sockets, _) in inherited.items():  # no longer configured
        log.info("closing inherited %s: not in bind any more", text)
        for sock in sockets:
            sock.close()
    return listenings


def assignment(listenings: list[Listening], slot: int, active: int) -> tuple[tuple[int, ...], ...]:
    """For each listening, the indices of the sockets the worker in `slot` serves.

    Every socket of every listening is served as long as `active` slots have workers: a slot
    serves its own SO_REUSEPORT socket and those of the slots beyond `active` that map to it.
    """
    result = []
    for listening in listenings:
        count = len(listening.sockets)
        if not listening.per_slot:
            result.append((0,))
        elif active <= count:
            result.append(tuple(s for s in range(count) if s % active == slot))
        else:  # more workers than sockets (the kernel refused more): they share
            result.append((slot % count,))
    return tuple(result)


def covers(served: tuple, wanted: tuple) -> bool:
    """Does a worker serving `served` serve at least the sockets of `wanted`?"""
    return len(served) == len(wanted) and all(set(w) <= set(s) for s, w in zip(served, wanted))


def worker_sockets(listenings: list[Listening], slot: int, indices: tuple | None = None,
                   tls_by_default: bool = False) -> list[tuple]:
    """The (socket, protocol, shared) triples a worker in `slot` serves (indices: see assignment;
    tls_by_default: see Listening.protocol)."""
    if indices is None:
        indices = tuple((slot,) if l.per_slot else (0,) for l in listenings)
    triples = []
    for listening, chosen in zip(listenings, indices):
        shared = not listening.per_slot
        protocol = listening.protocol(tls_by_default)
        for index in chosen:
            triples.append((listening.sockets[index], protocol, shared))
    return triples
