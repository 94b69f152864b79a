"""Who the client is behind a proxy: X-Forwarded-For, X-Forwarded-Proto and Forwarded (RFC 7239).

These headers are believed only from peers the operator trusts (`forwarded_allow_ips`), since
anyone else can write them. The client is the right-most address that is not itself a trusted
proxy: every proxy appends the address it received the request from, so entries to the left of
an untrusted one may be forged (uvicorn and nginx's real_ip_recursive read the chain this way).
"""

from __future__ import annotations

import ipaddress


class TrustedPeers:
    """forwarded_allow_ips: "127.0.0.1,::1", "10.0.0.0/8,192.168.1.7", or "*" for everyone."""

    def __init__(self, spec: str):
        self.everyone = False
        self.networks = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an address or a CIDR range") from None
        self._known: dict[str, bool] = {}

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        known = self._known.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                known = False  # "unknown", an obfuscated identifier, or garbage
            else:
                if address.version == 6 and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped
                known = any(address in network for network in self.networks)
            if len(self._known) < 1024:
                self._known[host] = known
        return known


def client_and_scheme(headers, peer_host: str, trusted: TrustedPeers) -> tuple[str, str | None]:
    """(client address, scheme or None) for a request from a trusted peer `peer_host`.

    headers: the request's (lower-case name, value) pairs. Forwarded wins over the X-Forwarded
    pair when both are present (it is the standard). A client address with a port ("1.2.3.4:5")
    loses the port; the scheme is "http" or "https" only.
    """
    forwarded = []
    x_for = []
    x_proto = None
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value)
        elif name == b"x-forwarded-for":
            x_for.append(value)
        elif name == b"x-forwarded-proto" and x_proto is None:
            x_proto = value
    if forwarded:
        hops = _forwarded_elements(b",".join(forwarded))
        addresses = [hop.get("for", "") for hop in hops]
        protos = [hop.get("proto") for hop in hops]
    else:
        addresses = [part.strip().decode("latin-1") for part in b",".join(x_for).split(b",")] if x_for else []
        # Several proxies may each have appended theirs: the first is what the client used.
        protos = [x_proto.split(b",")[0].strip().decode("latin-1")] if x_proto else []
    client = peer_host
    index = len(addresses)
    for address in reversed(addresses):
        host = _strip_port(address)
        if not host:
            break
        index -= 1
        client = host
        if not trusted.trusts(host):
            break
    scheme = None
    if protos:
        # With Forwarded, the proto of the hop whose address we took.
        proto = protos[min(index, len(protos) - 1)] if forwarded else protos[0]
        proto = (proto or "").lower()
        if proto in ("http", "https"):
            scheme = proto
    return client, scheme


def _forwarded_elements(value: bytes) -> list[dict[str, str]]:
    """Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711" -> one dict per hop."""
    hops = []
    for element in value.decode("latin-1").split(","):
        pairs = {}
        for pair in element.split(";"):
            name, sep, item = pair.strip().partition("=")
            if sep:
                pairs[name.strip().lower()] = item.strip().strip('"')
        hops.append(pairs)
    return hops


def _strip_port(address: str) -> str:
    """ "1.2.3.4:80" -> "1.2.3.4", "[::1]:80" -> "::1", "::1" -> "::1"; "" if it is no address."""
    if address.startswith("["):
        host, _, _ = address[1:].partition("]")
        return host
    if address.count(":") == 1:
        address = address.partition(":")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return ""
    return address
