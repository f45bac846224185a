"""Which URLs and IP addresses the gateway may call on its own (webhooks, media, images): the SSRF guard's rules.

Pure: no DNS, no I/O. :mod:`service.netguard` applies the same rules to every address a host resolves to and pins
the connection to one of them.

Addresses (:func:`address_problem`): an address inside one of the policy's ``allowed_networks`` is always allowed
(a network admits every address in it, a cloud metadata address included). Otherwise loopback, link-local,
multicast, unspecified ("this network", 0/8 and ``::``), reserved and other special-purpose ranges (documentation,
benchmarking, 240/4, broadcast, IETF protocol assignments, anything outside IPv6 global unicast ``2000::/3``) and
the cloud metadata addresses are refused, with or without ``allow_private``. Private ranges (10/8, 172.16/12,
192.168/16, ``fc00::/7``, and 100.64/10, the carrier-grade NAT "shared address space", which VPN overlays such as
Tailscale also use) are refused unless ``allow_private``. IPv6 forms that carry an IPv4 address are judged by it:
IPv4-mapped ``::ffff:a.b.c.d`` is the same host, so it is judged exactly as the IPv4 address (allowlist included);
NAT64 ``64:ff9b::/96`` and 6to4 ``2002::/16`` reach the IPv4 address through a translator, so they are refused
when it is, and are not admitted by an IPv4 allowlist entry; IPv4-compatible ``::a.b.c.d`` is deprecated and
always refused.

Hosts (:func:`url_problem`): every spelling ``inet_aton`` accepts is an IPv4 literal (1 to 4 parts, each decimal,
octal with a leading 0 or hex with 0x: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``), checked as that address and
never looked up as a name; a host whose last label is a number but that is no valid IPv4 is refused. Bracketed IPv6
literals may carry a zone id. Names cannot be placed in a network, so some are judged by what they stand for:
``localhost`` and ``*.localhost`` are allowed only when the policy allows 127.0.0.1 or ``::1``, the cloud metadata
names only when it allows 169.254.169.254, and private names (single-label names, ``*.internal``, ``*.local``,
``*.localdomain``, ``*.home.arpa``, ``*.lan``) only with ``allow_private``. Control, format and whitespace
characters are refused as written (httpx sends the URL as given; a percent-encoded one is inert data), and so are
backslashes (browsers read them as slashes, Python as part of the user name).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Kind = Literal["loopback", "link-local", "metadata", "multicast", "unspecified", "reserved", "private"]


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Where the gateway may connect: public addresses, private ones with ``allow_private``, and always any address
    inside ``allowed_networks``."""

    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()

    def lists(self, address: IPAddress) -> bool:
        """Whether an allowed network contains ``address`` (networks of the other IP version never do)."""
        return any(address in network for network in self.allowed_networks)

    @property
    def admits_every_address(self) -> bool:
        return {network.version for network in self.allowed_networks if network.prefixlen == 0} == {4, 6}


PUBLIC_ONLY = OutboundPolicy()
UNRESTRICTED = OutboundPolicy(allow_private=True, allowed_networks=(ip_network("0.0.0.0/0"), ip_network("::/0")))

_DESCRIPTIONS: dict[Kind, str] = {
    "loopback": "a loopback address",
    "link-local": "a link-local address",
    "metadata": "a cloud metadata address",
    "multicast": "a multicast address",
    "unspecified": "an unspecified address",
    "reserved": "a reserved or special-purpose address",
    "private": "a private address",
}
_METADATA = frozenset(ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254"))
_V4_RANGES: tuple[tuple[str, Kind], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    ("192.0.2.0/24", "reserved"),  # documentation (TEST-NET-1, -2, -3)
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("198.18.0.0/15", "reserved"),  # benchmarking
    ("192.88.99.0/24", "reserved"),  # the deprecated 6to4 relay anycast
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "private"),  # shared address space (carrier-grade NAT)
)
_V6_RANGES: tuple[tuple[str, Kind], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved"),  # IPv4-compatible, deprecated
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("fc00::/7", "private"),
    ("2001::/23", "reserved"),  # IETF protocol assignments: Teredo, benchmarking, ORCHID
    ("2001:db8::/32", "reserved"),  # documentation
    ("3fff::/20", "reserved"),  # documentation
)
_RANGES = tuple((ip_network(cidr), kind) for cidr, kind in _V4_RANGES + _V6_RANGES)
_GLOBAL_UNICAST = ip_network("2000::/3")
_NAT64 = ip_network("64:ff9b::/96")

_LOOPBACK = (ip_address("127.0.0.1"), ip_address("::1"))
_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "metadata.tencentyun.com", "instance-data"}
)
_PRIVATE_SUFFIXES = (".internal", ".local", ".localdomain", ".home.arpa", ".lan")
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})  # the dots IDNA reads as "."


def parse_networks(text: str) -> tuple[Network, ...]:
    """The CIDRs in a comma-separated setting (``"127.0.0.0/8, fd12::/16"``); a bare address is its own network.

    Raises ValueError naming the first entry that is no network, or that has host bits set (``10.0.0.1/8``).
    """
    networks: list[Network] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry))
        except ValueError as exc:
            raise ValueError(f"not a network: {entry!r} ({exc})") from None
    return tuple(networks)


def address_problem(address: IPAddress, policy: OutboundPolicy) -> str | None:
    """Why ``address`` may not be connected to under ``policy`` (``"a loopback address"``), or None when it may."""
    if isinstance(address, IPv6Address) and address.scope_id:
        address = IPv6Address(int(address))  # a zone id names an interface, not another address
    if policy.lists(address):
        return None
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address_problem(address.ipv4_mapped, policy)
        embedded = _translated_ipv4(address)
        if embedded is not None:
            problem = address_problem(embedded, replace(policy, allowed_networks=()))
            return None if problem is None else f"{problem} (in a NAT64 or 6to4 form)"
        if address not in _GLOBAL_UNICAST and not any(address in net for net, _ in _RANGES):
            return _DESCRIPTIONS["reserved"]
    kind: Kind | None = "metadata" if address in _METADATA else None
    kind = kind or next((named for network, named in _RANGES if address in network), None)
    if kind is None or (kind == "private" and policy.allow_private):
        return None
    return _DESCRIPTIONS[kind]


def _translated_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def url_problem(url: str, policy: OutboundPolicy) -> str | None:  # noqa: PLR0911 - one reason per check
    """Why ``url`` may not be called under ``policy``, or None when it may (as far as the URL alone tells)."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL is longer than {MAX_URL_LENGTH} characters"
    if any(_forbidden(character) for character in url):
        return "URL contains a control, format or whitespace character"
    if "\\" in url:
        return "URL contains a backslash"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "URL is malformed"
    if parts.scheme not in {"http", "https"}:
        return "URL scheme must be http or https"
    if "@" in parts.netloc:
        return "URL must not contain credentials"
    if not parts.hostname:
        return "URL has no host"
    if port == 0:
        return "URL port is invalid"
    if "[" in parts.netloc and ":" not in parts.hostname:
        return "URL host is not a valid IP address"  # [v1.x]: an IPvFuture literal
    return host_problem(parts.hostname, policy)


def host_problem(host: str, policy: OutboundPolicy) -> str | None:
    """Why a host (a name or an IP literal, without brackets) may not be called under ``policy``, or None."""
    name = normalised_host(host)
    address = ip_literal(name)
    if address is not None:
        problem = address_problem(address, policy)
        return None if problem is None else f"URL points to {problem}"
    if ":" in name or _numeric(name.rsplit(".", 1)[-1]) is not None:
        return "URL host is not a valid IP address"
    if any(not label or (label.isascii() and not set(label) <= _NAME_CHARACTERS) for label in name.split(".")):
        return "URL host is not a valid host name"
    return _name_problem(name, policy)


def _name_problem(name: str, policy: OutboundPolicy) -> str | None:
    if name == "localhost" or name.endswith(".localhost"):
        if all(address_problem(loopback, policy) for loopback in _LOOPBACK):
            return "URL points to a loopback host name"
    elif name in _METADATA_NAMES:
        if address_problem(ip_address("169.254.169.254"), policy):
            return "URL points to a cloud metadata host name"
    elif ("." not in name or name.endswith(_PRIVATE_SUFFIXES)) and not policy.allow_private:
        return "URL points to an internal host name"
    return None


def normalised_host(host: str) -> str:
    """``host`` as a resolver would read it: NFKC (full-width digits are digits), IDNA's dots, lower case, and
    without brackets or one trailing dot."""
    name = unicodedata.normalize("NFKC", host).translate(_DOTS).lower()
    return name.removeprefix("[").removesuffix("]").removesuffix(".")


def ip_literal(host: str) -> IPAddress | None:
    """The address a host names when it is an IP literal (any ``inet_aton`` spelling of IPv4; IPv6 with or without
    brackets, ``%25`` or ``%`` before a zone id), or None for a name."""
    name = normalised_host(host)
    if ":" in name:
        try:
            return IPv6Address(name.replace("%25", "%", 1))
        except ValueError:
            return None
    parts = name.split(".")
    values = [_numeric(part) for part in parts]
    if not 1 <= len(parts) <= 4 or None in values:
        return None
    *head, last = [value for value in values if value is not None]
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    total = last
    for index, value in enumerate(head):
        total += value << (8 * (3 - index))
    return IPv4Address(total)


def _numeric(part: str) -> int | None:
    """One part of an ``inet_aton`` address: decimal, octal after a leading 0, hex after 0x (``0x`` alone is 0)."""
    if part.startswith("0x"):
        digits, base = part[2:], 16
        if not digits:
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits or not set(digits) <= _DIGITS[base]:
        return None
    return int(digits, base)


def _forbidden(character: str) -> bool:
    # C*: C0, DEL and C1 controls, format characters (soft hyphen, zero-width space, BOM), surrogates, private use
    # and unassigned; Z*: space and the line and paragraph separators.
    return character.isspace() or unicodedata.category(character)[0] in {"C", "Z"}
