"""Checks on URLs the gateway will call itself (tenant webhooks): the syntactic half of the SSRF guard.

This refuses what can be refused without DNS: other schemes, credentials in the URL, IP literals in private,
loopback, link-local (cloud metadata), multicast or reserved ranges, and well-known internal host names. Whoever
connects must still check the *resolved* address (a public name can resolve to a private address).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_INTERNAL_HOSTS = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data"})
_INTERNAL_SUFFIXES = (".localhost", ".internal", ".local")


def url_problem(url: str, *, allow_private: bool) -> str | None:  # noqa: PLR0911 - one reason per check
    """Why ``url`` may not be called, or None when it may."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL is longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "URL is malformed"
    if parts.scheme not in {"http", "https"}:
        return "URL scheme must be http or https"
    if not parts.hostname:
        return "URL has no host"
    if parts.username or parts.password:
        return "URL must not contain credentials"
    if port == 0:
        return "URL port is invalid"
    if allow_private:
        return None
    return host_problem(parts.hostname)


def host_problem(host: str) -> str | None:
    """Why a host name or IP literal is internal, or None."""
    name = host.strip("[]").rstrip(".").lower()
    if name in _INTERNAL_HOSTS or name.endswith(_INTERNAL_SUFFIXES):
        return "URL points to an internal host"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return address_problem(address)


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an IP address may not be called (private, loopback, link-local, ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        return "URL points to a private, loopback, link-local or reserved address"
    return None
