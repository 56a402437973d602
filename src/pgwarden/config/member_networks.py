"""``member_networks``: its entries, its default (derived from this node's own addresses), and the
check that this node's own addresses are inside it (model/trust.py says what it guards)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import BeforeValidator, PlainValidator

from pgwarden.config.explain import Finding
from pgwarden.config.fields import reject, shown
from pgwarden.model.node import Address
from pgwarden.model.trust import MemberNetworks, Network

_FIX = "write an IP network such as 192.0.2.0/24, a DNS name such as db1.example.com, or *.db.example.com"
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
# The default: the network around each of this node's own IP addresses, as wide as a typical
# subnet, so that members beside it are trusted and an address elsewhere is not.
_IPV4_PREFIX = 24
_IPV6_PREFIX = 64
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

Entry = Network | str


def parse_entry(value: object) -> Entry:
    """An IP network (an address alone is its own /32 or /128), a DNS name, or ``*.`` + a domain."""
    if not isinstance(value, str) or not value.strip():
        reject(f"expected a network or a DNS name, got {shown(value)}", _FIX)
    text = value.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.removeprefix("*.").split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or (name.startswith("*.") and len(labels) < 2):
        reject(f"{text!r} is neither an IP network nor a DNS name", _FIX)
    return name


def _split(value: object) -> object:
    # One comma-separated string (PGWARDEN_MEMBER_NETWORKS) or a YAML list.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


EntryField = Annotated[Entry, PlainValidator(parse_entry)]
EntryList = Annotated[list[EntryField], BeforeValidator(_split)]


def member_networks(
    entries: Sequence[Entry] | None, own: Sequence[tuple[str, Address]]
) -> tuple[MemberNetworks | None, list[Finding]]:
    """The configured networks, or the default derived from ``own`` (field name, this node's
    address); findings when there is no default to derive or an own address is outside."""
    if entries:
        networks = MemberNetworks(
            tuple(e for e in entries if not isinstance(e, str)),
            tuple(e for e in entries if isinstance(e, str)),
        )
        found = [
            Finding(
                ("member_networks",),
                f"this node's own {field} {address.host} is outside member_networks ({networks}): "
                "the other members would not trust its record",
                f"add {address.host}'s network to member_networks",
            )
            for field, address in own
            if networks.host_refusal(address.host) is not None
        ]
        return (None, found) if found else (networks, [])
    derived: list[Entry] = []
    for field, address in own:
        entries_for = _around(address.host)
        if entries_for is None:
            return None, [
                Finding(
                    ("member_networks",),
                    f"not set, and it cannot be derived from {field} {address.host} (a host name "
                    "without a domain of its own): the members' addresses must be known before "
                    "credentials go to them",
                    f"list the networks or DNS names of every member, e.g. member_networks: "
                    f"[192.0.2.0/24] or [{address.host}.example.com, ...]",
                )
            ]
        derived += [e for e in entries_for if e not in derived]
    return MemberNetworks(
        tuple(e for e in derived if not isinstance(e, str)), tuple(e for e in derived if isinstance(e, str))
    ), []


def _around(host: str) -> list[Entry] | None:
    """The default entries for one of this node's addresses; None when none can be derived."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.lower().rstrip(".")
        if name == "localhost":
            return [*_LOOPBACK, name]
        parent = name.partition(".")[2]
        if parent.count(".") < 1:
            return None  # "db1", or "db1.com": a whole top-level domain is no cluster's
        return [name, "*." + parent]  # db1.example.com: *.example.com
    prefix = _IPV4_PREFIX if address.version == 4 else _IPV6_PREFIX
    return [ipaddress.ip_network(f"{address}/{prefix}", strict=False)]
