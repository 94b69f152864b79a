"""Listening addresses as written by users: HOST:PORT, [IPV6]:PORT, unix:PATH, fd://N, and the
same behind a scheme: http://, https:// (TLS), echo:// (the raw TCP echo protocol).

Shared by the configuration (which checks `bind` as it reads it) and the master (which binds):
it imports nothing of either.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


class AddressError(ValueError):
    pass


# "status" is the status_bind listener's, given by the master, not written in bind.
SCHEMES = ("http", "https", "echo", "status")


@dataclass(frozen=True)
class Address:
    text: str  # as the user wrote it
    protocol: str  # "http", "https", "echo" or "status"
    kind: str  # "tcp", "unix" or "fd"
    host: str = ""
    port: int = 0
    family: int = socket.AF_INET
    path: str = ""
    fd: int = -1
    mode: int | None = None  # unix: the socket file's permissions, if the address says
    explicit: bool = False  # written with its scheme (http://, https://, ...): never TLS by default


def parse_address(text: str) -> Address:
    """Parse one bind address; raise AddressError saying what is wrong with it."""
    protocol, rest, explicit = "http", text, False
    for scheme in SCHEMES:
        if text.startswith(scheme + "://"):
            protocol, rest, explicit = scheme, text[len(scheme) + 3:], True
            break
    if rest.startswith("unix:"):
        path, _, option = rest[len("unix:"):].partition("?")
        if not path:
            raise AddressError(f"{text!r}: unix: needs a path")
        mode = None
        if option:
            name, _, value = option.partition("=")
            if name != "mode" or not value or any(c not in "01234567" for c in value) or int(value, 8) > 0o777:
                raise AddressError(f"{text!r}: expected unix:PATH?mode=OCTAL, as unix:/run/app.sock?mode=660")
            mode = int(value, 8)
        return Address(text, protocol, "unix", path=path, family=socket.AF_UNIX, mode=mode, explicit=explicit)
    if rest.startswith("fd://"):
        number = rest[len("fd://"):]
        if not number.isdigit():
            raise AddressError(f"{text!r}: fd:// needs a descriptor number")
        return Address(text, protocol, "fd", fd=int(number), explicit=explicit)
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
        if not sep:
            raise AddressError(f"{text!r}: expected [IPV6]:PORT")
        family = socket.AF_INET6
    else:
        host, sep, port = rest.rpartition(":")
        if not sep:
            raise AddressError(f"{text!r}: expected HOST:PORT")
        family = socket.AF_INET
        if ":" in host:
            raise AddressError(f"{text!r}: an IPv6 address goes in brackets, as [::1]:8000")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AddressError(f"{text!r}: port must be a number from 0 to 65535")
    if family == socket.AF_INET and host and not _is_ipv4(host):
        if host.replace(".", "").isdigit():
            raise AddressError(f"{text!r}: {host!r} is not a valid IPv4 address")
        if host != "localhost" and not all(part.isalnum() or part == "-" for part in host.replace(".", "").split("-")):
            raise AddressError(f"{text!r}: {host!r} is not a host name or address")
    return Address(text, protocol, "tcp", host=host or "0.0.0.0", port=int(port), family=family,
                   explicit=explicit)


def _is_ipv4(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except OSError:
        return False
