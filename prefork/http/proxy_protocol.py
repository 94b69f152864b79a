"""The PROXY protocol header, v1 (text) and v2 (binary), as HAProxy's send-proxy sends it.

A proxy that speaks it writes one header before the client's bytes, saying whom it received
the connection from. Sans-IO: `parse(buffered bytes)` says how many bytes the header took and
the client's (host, port), or that more bytes are needed; anything else is `InvalidHeader`, and
the connection is closed (a connection must start with the header when it is expected).
Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import ipaddress
import struct

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = struct.Struct("!12sBBH")  # signature, version and command, family, address length
V2_MAX = 16 + 4096  # the header and an address block with a generous allowance of TLVs


class InvalidHeader(ValueError):
    """Not a PROXY protocol header."""


def parse(data: bytes):
    """None if `data` is a valid beginning but incomplete; else (bytes used, (host, port) or None).

    None for the address means the proxy speaks for itself (v2 LOCAL, v1 UNKNOWN: health
    checks): the connection's own peer stands.
    """
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    raise InvalidHeader("no PROXY protocol header")


def _parse_v1(data: bytes):
    if not V1_PREFIX.startswith(data[:len(V1_PREFIX)]):
        raise InvalidHeader("no PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise InvalidHeader("PROXY v1 line too long")
        return None
    parts = data[len(V1_PREFIX):end].split(b" ")
    if parts[0] == b"UNKNOWN":
        return end + 2, None
    if len(parts) != 5 or parts[0] not in (b"TCP4", b"TCP6"):
        raise InvalidHeader("malformed PROXY v1 line")
    family, source, _destination, source_port, _destination_port = parts
    try:
        address = ipaddress.ip_address(source.decode("ascii"))
        port = int(source_port) if source_port.isdigit() and len(source_port) <= 5 else -1
    except (ValueError, UnicodeDecodeError):
        raise InvalidHeader("malformed PROXY v1 address") from None
    if address.version != (4 if family == b"TCP4" else 6) or not 0 <= port <= 65535:
        raise InvalidHeader("malformed PROXY v1 address")
    return end + 2, (str(address), port)


def _parse_v2(data: bytes):
    if not V2_SIGNATURE.startswith(data[:len(V2_SIGNATURE)]):
        raise InvalidHeader("no PROXY protocol header")
    if len(data) < V2_HEADER.size:
        return None
    _, version_command, family, length = V2_HEADER.unpack_from(data)
    if version_command >> 4 != 2 or version_command & 0x0F > 1:
        raise InvalidHeader("unsupported PROXY v2 version or command")
    total = V2_HEADER.size + length
    if total > V2_MAX:
        raise InvalidHeader("PROXY v2 header too long")
    if len(data) < total:
        return None
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (a health check)
        return total, None
    block = data[V2_HEADER.size:total]
    if family == 0x11 and length >= 12:  # TCP over IPv4
        return total, (str(ipaddress.IPv4Address(block[0:4])), struct.unpack_from("!H", block, 8)[0])
    if family == 0x21 and length >= 36:  # TCP over IPv6
        return total, (str(ipaddress.IPv6Address(block[0:16])), struct.unpack_from("!H", block, 32)[0])
    if family >> 4 in (0, 3):  # UNSPEC or a unix socket: no address to report
        return total, None
    raise InvalidHeader("malformed PROXY v2 address block")
