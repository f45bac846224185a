"""The SSRF guard's rules (service.domain.urls): every hostile URL, under every kind of policy."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from service.domain.urls import (
    MAX_URL_LENGTH,
    PUBLIC_ONLY,
    UNRESTRICTED,
    OutboundPolicy,
    address_problem,
    ip_literal,
    parse_networks,
    url_problem,
)

POLICIES = {
    "public": PUBLIC_ONLY,
    "private": OutboundPolicy(allow_private=True),
    "loopback": OutboundPolicy(allowed_networks=parse_networks("127.0.0.0/8")),
    "v6loopback": OutboundPolicy(allowed_networks=parse_networks("::1/128")),
    "ten": OutboundPolicy(allowed_networks=parse_networks("10.0.0.0/8")),
    "metadata": OutboundPolicy(allow_private=True, allowed_networks=parse_networks("169.254.169.254/32")),
    "any": UNRESTRICTED,
}
EVERY = frozenset(POLICIES)
NEVER: frozenset[str] = frozenset()
SPECIAL = frozenset({"any"})  # refused with allow_private too; only a network that contains it admits it
LOOPBACK = frozenset({"loopback", "any"})
PRIVATE = frozenset({"private", "metadata", "any"})  # "metadata" has allow_private too
TEN = PRIVATE | {"ten"}
METADATA = frozenset({"metadata", "any"})

CASES: list[tuple[str, frozenset[str]]] = [
    # 127.0.0.1 in every inet_aton spelling, and IPv6 forms of it
    *(
        (url, LOOPBACK)
        for url in [
            "http://127.0.0.1/hook",
            "http://127.0.0.1:8080/hook",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0X7F000001/",
            "http://017700000001/",
            "http://127.1/",
            "http://127.0.1/",
            "http://0177.0.0.1/",
            "http://0177.0.0.01/",
            "http://0x7f.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f.0x0.0.0x1/",
            "http://0177.0x0.1/",
            "http://127.0.0.1./",
            "http://127.255.255.254/",
            "http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/",  # full-width digits, ideographic dots
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        ]
    ),
    ("http://[::1]/", frozenset({"v6loopback", "any"})),
    ("http://[::1]:8080/", frozenset({"v6loopback", "any"})),
    ("http://[0:0:0:0:0:0:0:1]/", frozenset({"v6loopback", "any"})),
    *(
        (url, LOOPBACK | {"v6loopback"})
        for url in [
            "http://localhost/",
            "http://LOCALHOST./",
            "http://localhost:8000/hook",
            "http://app.localhost/",
            "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",  # full-width "localhost"
        ]
    ),
    # 169.254.169.254 and the other metadata addresses and names
    *(
        (url, METADATA)
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata/",
            "http://instance-data/latest/",
        ]
    ),
    ("http://[fd00:ec2::254]/", SPECIAL),
    ("http://[fd00:ec2::254%25eth0]/", SPECIAL),
    ("http://100.100.100.200/latest/meta-data/", SPECIAL),
    # 10.0.0.1 in every spelling, and the other private ranges
    *(
        (url, TEN)
        for url in [
            "http://10.0.0.1/",
            "http://167772161/",
            "http://0xa000001/",
            "http://10.1/",
            "http://10.0.1/",
            "http://012.0.0.1/",
            "http://0xa.0.0.1/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::ffff:a00:1]/",
        ]
    ),
    *(
        (url, PRIVATE)
        for url in [
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",  # shared address space (carrier-grade NAT, VPN overlays)
            "http://[fd12:3456::1]/",
            "http://[fc00::1]/",
            "http://sim/",
            "http://printer.local/",
            "http://db.internal/",
            "http://router.home.arpa/",
        ]
    ),
    # unspecified, link-local, multicast, reserved and the embedded IPv4 forms of them
    *(
        (url, SPECIAL)
        for url in [
            "http://0.0.0.0/",
            "http://0/",
            "http://0.0.0.0:8080/",
            "http://[::]/",
            "http://169.254.1.1/",
            "http://[fe80::1]/",
            "http://[fe80::1%25eth0]/",
            "http://224.0.0.1/",
            "http://239.255.255.250/",
            "http://[ff02::1]/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            "http://192.0.2.1/",
            "http://198.18.0.1/",
            "http://[2001:db8::1]/",
            "http://[::127.0.0.1]/",  # IPv4-compatible, deprecated
            "http://[::8.8.8.8]/",
            "http://[64:ff9b::127.0.0.1]/",  # NAT64 of loopback: not admitted by 127.0.0.0/8 (the translator's own)
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",  # 6to4 of loopback
            "http://[2001::1]/",  # Teredo
            "http://[100::1]/",
        ]
    ),
    ("http://[64:ff9b::10.0.0.1]/", PRIVATE),  # NAT64 of a private address: private, but not "ten"
    # credentials, control characters, length, schemes, hosts: refused whatever the policy
    *(
        (url, NEVER)
        for url in [
            "http://user:pw@hooks.example.com/",
            "http://user@hooks.example.com/",
            "http://@hooks.example.com/",
            "http://:@hooks.example.com/",
            "http://user:pw@127.0.0.1/",
            "http://hooks.example.com/\r\nX-Injected: 1",
            "http://hooks.example.com/\n",
            "http://hooks.example.com/\r",
            "http://hooks\t.example.com/",
            "http://hooks.example.com/\x00",
            "http://hooks.example.com/\x7f",
            "http://hooks.example.com/\x85",
            "http://hooks.example.com/a b",
            " http://hooks.example.com/",
            "http://hooks.example.com/\u00a0",
            "http://hooks.example.com/\u2028",
            "http://loc\u00adalhost/",  # soft hyphen: IDNA drops it
            "http://hooks.example.com/\u200b",
            "https://hooks.example.com/" + "a" * (MAX_URL_LENGTH + 1 - len("https://hooks.example.com/")),
            "file:///etc/passwd",
            "gopher://hooks.example.com/_GET",
            "ftp://hooks.example.com/x",
            "data:text/plain,hello",
            "javascript:alert(1)",
            "ws://hooks.example.com/",
            "//hooks.example.com/x",
            "hooks.example.com/x",
            "not a url",
            "",
            "http:///x",
            "http://",
            "http://:80/",
            "http:hooks.example.com",
            "http://hooks.example.com:0/",
            "http://hooks.example.com:99999/",
            "http://hooks.example.com:8o/",
            "http://[::1/",
            "http://[v1.x]/",
            "http://1.2.3.4.5/",
            "http://256.0.0.1/",
            "http://09.0.0.1/",
            "http://hooks.example.123/",
            "http://hooks.example.com\\@127.0.0.1/",
            "http://hooks..example.com/",
            "http://hooks%2eexample.com/",
        ]
    ),
    # public destinations: allowed by every policy
    *(
        (url, EVERY)
        for url in [
            "https://hooks.example.com/fal?tenant=acme",
            "HTTPS://Hooks.Example.COM:8443/fal",
            "http://93.184.215.14/",
            "http://1572394766/",  # 93.184.215.14
            "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "http://[::ffff:93.184.215.14]/",
            "http://[64:ff9b::8.8.8.8]/",
            "http://b\u00fccher.example/",
            "http://xn--bcher-kva.example/",
            "http://hooks.example.com/%0d%0aX-Injected:%201",  # percent-encoded: inert data, sent as written
            "http://hooks.example.com:/",
            "https://hooks.example.com/" + "a" * (MAX_URL_LENGTH - len("https://hooks.example.com/")),
        ]
    ),
]


@pytest.mark.parametrize(("url", "allowed_by"), CASES, ids=[repr(url)[:70] for url, _ in CASES])
def test_a_url_is_allowed_by_exactly_the_policies_that_admit_it(url: str, allowed_by: frozenset[str]) -> None:
    outcomes = {name: url_problem(url, policy) for name, policy in POLICIES.items()}

    assert {name for name, problem in outcomes.items() if problem is None} == allowed_by, outcomes
    assert all(problem for name, problem in outcomes.items() if name not in allowed_by)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "URL points to a loopback address"),
        ("http://0x7f.1/", "URL points to a loopback address"),
        ("http://169.254.169.254/", "URL points to a cloud metadata address"),
        ("http://10.0.0.1/", "URL points to a private address"),
        ("http://[fe80::1]/", "URL points to a link-local address"),
        ("http://224.0.0.1/", "URL points to a multicast address"),
        ("http://0.0.0.0/", "URL points to an unspecified address"),
        ("http://240.0.0.1/", "URL points to a reserved or special-purpose address"),
        ("http://[2002:7f00:1::]/", "URL points to a loopback address (in a NAT64 or 6to4 form)"),
        ("http://localhost/", "URL points to a loopback host name"),
        ("http://metadata.google.internal/", "URL points to a cloud metadata host name"),
        ("http://db.internal/", "URL points to an internal host name"),
        ("http://@hooks.example.com/", "URL must not contain credentials"),
        ("http://hooks.example.com/\r\n", "URL contains a control, format or whitespace character"),
        ("http://h/" + "a" * MAX_URL_LENGTH, f"URL is longer than {MAX_URL_LENGTH} characters"),
        ("gopher://hooks.example.com/", "URL scheme must be http or https"),
        ("http:///x", "URL has no host"),
        ("http://hooks.example.com:0/", "URL port is invalid"),
        ("http://hooks.example.com:99999/", "URL is malformed"),
        ("http://256.0.0.1/", "URL host is not a valid IP address"),
        ("http://hooks..example.com/", "URL host is not a valid host name"),
        ("http://a\\@b/", "URL contains a backslash"),
    ],
)
def test_each_refusal_says_why(url: str, reason: str) -> None:
    assert url_problem(url, PUBLIC_ONLY) == reason


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x", "0.0.0.0"),
        ("1.2.3", "1.2.0.3"),
        ("1.65535", "1.0.255.255"),
        ("4294967295", "255.255.255.255"),
        ("[::1]", "::1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
    ],
)
def test_ip_literals_in_every_spelling_name_their_address(host: str, address: str) -> None:
    assert ip_literal(host) == ip_address(address)


@pytest.mark.parametrize(
    "host", ["example.com", "4294967296", "1.256.0.0", "1.16777216", "1.2.3.4.5", "08", "0xg", "1..2", "", "[v1.x]"]
)
def test_names_and_invalid_numbers_are_no_ip_literals(host: str) -> None:
    assert ip_literal(host) is None


def test_a_mapped_address_is_judged_as_its_ipv4_allowlist_included() -> None:
    loopback = POLICIES["loopback"]

    assert address_problem(ip_address("::ffff:127.0.0.1"), loopback) is None
    assert address_problem(ip_address("::ffff:127.0.0.1"), PUBLIC_ONLY) == "a loopback address"
    assert address_problem(ip_address("64:ff9b::7f00:1"), loopback) == "a loopback address (in a NAT64 or 6to4 form)"


def test_metadata_addresses_stay_refused_with_allow_private_until_their_network_is_listed() -> None:
    private = OutboundPolicy(allow_private=True)
    for text in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254"):
        address = ip_address(text)
        assert address_problem(address, private) == "a cloud metadata address"
        assert address_problem(address, OutboundPolicy(allowed_networks=(ip_network(text),))) is None
    assert address_problem(ip_address("100.100.100.201"), private) is None
    assert address_problem(ip_address("fd00:ec2::253"), private) is None


def test_networks_of_the_other_ip_version_admit_nothing() -> None:
    v4_everything = OutboundPolicy(allowed_networks=parse_networks("0.0.0.0/0"))

    assert address_problem(ip_address("::1"), v4_everything) == "a loopback address"
    assert not v4_everything.admits_every_address
    assert UNRESTRICTED.admits_every_address
    assert not PUBLIC_ONLY.admits_every_address


def test_networks_are_parsed_from_a_comma_separated_setting() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()
    assert parse_networks("127.0.0.0/8, fd12::/16,10.1.2.3") == (
        ip_network("127.0.0.0/8"),
        ip_network("fd12::/16"),
        ip_network("10.1.2.3/32"),
    )


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "localhost", "10.0.0.0/33", "fd12::/129", "10/8"])
def test_a_malformed_network_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="not a network") as raised:
        parse_networks(f"127.0.0.0/8, {entry}")

    assert repr(entry) in str(raised.value)
