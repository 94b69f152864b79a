"""systemd integration: sd_notify messages and socket activation (LISTEN_FDS), without libsystemd."""

from __future__ import annotations

import os
import socket
import time

SD_LISTEN_FDS_START = 3


def notify(*lines: str) -> bool:
    """Send KEY=VALUE lines to the service manager when NOTIFY_SOCKET is set; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    message = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError:
        return False  # the manager went away: nothing a server can do about it
    return True


def reloading_message() -> str:
    """RELOADING=1 with the timestamp Type=notify-reload services must send along."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def listen_fds(unset_environment: bool = True) -> list[tuple[int, str]]:
    """Sockets passed by systemd socket activation: (fd, name) pairs, [] when none.

    They are ours only if LISTEN_PID is our pid. The variables are removed so that workers and
    an upgraded master do not read them again (an upgrade passes sockets through PREFORK_FDS).
    """
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "")
    if unset_environment:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(key, None)
    if not (pid.isdigit() and count.isdigit()) or int(pid) != os.getpid():
        return []
    fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))
    name_list = names.split(":") if names else []
    return [(fd, name_list[i] if i < len(name_list) else f"fd://{fd}") for i, fd in enumerate(fds)]
