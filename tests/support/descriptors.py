"""What a process holds open, from /proc/PID/fd: its files, and the TCP connections of 127.0.0.1
it holds (matched through the socket inodes of /proc/net/tcp)."""

from __future__ import annotations

import os
from pathlib import Path


def open_files(pid: int) -> list[str]:
    """What each descriptor of pid points at ("/path", "socket:[INODE]", "/tmp/x (deleted)"),
    skipping one closed meanwhile; raises if pid is gone."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return targets


def connection_sockets(server_port: int, client_port: int) -> set[str]:
    """"socket:[INODE]" of the server side of the loopback connection server_port <-> client_port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{server_port:04X}") and fields[2].endswith(f":{client_port:04X}"):
            inodes.add(f"socket:[{fields[9]}]")
    return inodes


def holds_connection(pid: int, server_port: int, client_port: int) -> bool:
    """Whether pid has a descriptor for the connection server_port <-> client_port."""
    return not connection_sockets(server_port, client_port).isdisjoint(open_files(pid))


def connection_owner(client, port: int, pids) -> int | None:
    """Which of pids holds the server side of the client socket's connection to port."""
    inodes = connection_sockets(port, client.getsockname()[1])
    for pid in pids:
        try:
            if not inodes.isdisjoint(open_files(pid)):
                return pid
        except OSError:
            continue  # gone meanwhile
    return None
