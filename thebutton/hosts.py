"""Who may ask: the host names the server answers to (DNS rebinding), and whose sockets and wrong tokens count together.

A web page on the internet can make an employee's browser talk to the office's server:
it points a name of its own at the server's LAN address (DNS rebinding) and then reads
what the server answers, as if the server were its own site. The browser then sends that
name in Host, and in Origin when it opens a WebSocket. The server answers only names a LAN
uses (``HostRule``), so such a page gets 421 instead of the count, the notes and the history.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from typing import FrozenSet, Iterable, Optional
from urllib.parse import urlsplit

# Names only a LAN resolves: mDNS (.local), home routers' (.lan, .home, .home.arpa), and
# the private-use .internal and .localdomain.
LAN_SUFFIXES = (".local", ".lan", ".home", ".home.arpa", ".internal", ".localdomain")
NAME_RE = re.compile(r"^\.?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


def client_key(address: str) -> str:
    """Whom a client address belongs to: an IPv4 address, or an IPv6 address's /64.

    One machine can take as many addresses of its /64 as it likes (privacy addresses), so
    counting IPv6 addresses one by one would give it a fresh start with each of them.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # "fe80::1%eth0": the zone is not part of it
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def parse_hosts(text: str) -> FrozenSet[str]:
    """The names of --hosts (comma-separated; ``*`` = any; ``.example.com`` = it and every name under it).

    ValueError in one line for an entry that is not a host name.
    """
    names = set()
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name != "*" and not NAME_RE.match(name):
            raise ValueError(f"--hosts takes host names (comma-separated, or *), not {raw.strip()!r}")
        names.add(name.rstrip(".") if name != "." else name)
    return frozenset(names)


def machine_names() -> FrozenSet[str]:
    """This machine's host name and fully qualified name (getfqdn may ask DNS: call once, at start)."""
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower().rstrip("."))
    return frozenset(names)


class HostRule:
    """Which names in Host (and in a WebSocket's Origin) the server answers to."""

    def __init__(self, extra: Iterable[str] = (), own: Optional[Iterable[str]] = None) -> None:
        self.extra = frozenset(extra)
        self.any = "*" in self.extra
        self.own = frozenset(own) if own is not None else machine_names()

    def allows_name(self, name: str) -> bool:
        """A bare host name or address (no port, no brackets)."""
        name = name.lower().rstrip(".")
        if not name:
            return False
        if self.any:
            return True
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
            return True  # an address is not a name anyone could point elsewhere
        except ValueError:
            pass
        if name == "localhost" or "." not in name or name.endswith(LAN_SUFFIXES):
            return True
        if name in self.own or name in self.extra:
            return True
        return any(entry.startswith(".") and (name == entry[1:] or name.endswith(entry)) for entry in self.extra)

    def allows_host(self, host: str) -> bool:
        """A Host header's value: ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``."""
        return self.allows_name(host_name(host) or "")

    def allows_origin(self, origin: str) -> bool:
        """An Origin header's value (``http://name:port``); "null" and anything unparseable are refused."""
        try:
            name = urlsplit(origin).hostname
        except ValueError:
            return False
        return bool(name) and self.allows_name(name or "")


def host_name(host: str) -> Optional[str]:
    """The name or address of a Host header's value, without port or brackets; None when it is not one."""
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1:] and not re.fullmatch(r":[0-9]{1,5}", host[end + 1:])):
            return None
        return host[1:end]
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name
