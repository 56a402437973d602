"""Who may call the REST API's operations (writes): ``api.allowlist`` and client certificates.

Patroni's rules and order: a caller whose address is outside the allowlist (the configured
networks, plus every member's own addresses with ``allowlist_include_members``) is refused with
403; then, with ``verify_client: optional``, a caller that presented no verified certificate is
refused with 403; then ``api.auth`` (401, in ``auth.py``). Reads (health checks, status, metrics)
pass none of these: HAProxy and monitoring must keep working, and ``verify_client: required``
is the way to close them (the TLS handshake itself then refuses a client without a certificate).

A member's addresses are the hosts of its ``api_url`` and of its PostgreSQL address, as the
latest snapshot's cluster view lists them; only IP literals count (a host name would need a DNS
lookup on the event loop): give members IP addresses, or put their network in the allowlist.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.model import ClusterView
from pgwarden.model.node import ApiSettings, VerifyClient
from pgwarden.model.trust import Network

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_peer(peer: str) -> IpAddress | None:
    """A connection's remote address; an IPv4 client of an IPv6 socket counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(peer.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def member_addresses(view: ClusterView) -> frozenset[IpAddress]:
    """Every IP literal among the members' ``api_url`` hosts and PostgreSQL hosts."""
    found: set[IpAddress] = set()
    for member in view.members:
        for host in (_url_host(member.api_url), member.host):
            address = parse_peer(host) if host else None
            if address is not None:
                found.add(address)
    return frozenset(found)


def _url_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _within(address: IpAddress, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


class Access:
    """The 403 refusals of operations; ``refusal`` is cheap enough for the event loop."""

    def __init__(self, settings: ApiSettings, snapshots: SnapshotHolder) -> None:
        self._networks = settings.allowlist
        self._restricted = settings.restricts_callers
        self._include_members = settings.allowlist_include_members
        self._cert_needed = settings.verify_client is VerifyClient.OPTIONAL
        self._snapshots = snapshots
        # (view, its members' addresses), replaced whole: the loop and the workers both read it.
        self._members: tuple[ClusterView | None, frozenset[IpAddress]] = (None, frozenset())

    def refusal(self, peer: str, client_cert: bool) -> str | None:
        """Why a caller at ``peer`` (with a verified client certificate or not) may not call
        operations; None when it may."""
        if self._restricted and not self._allowed(peer):
            listed = "api.allowlist" + (" or the members' addresses" if self._include_members else "")
            return f"{peer or 'this address'} may not call operations on this node (not in {listed})"
        if self._cert_needed and not client_cert:
            return (
                "this call needs a client certificate signed by the API's CA "
                "(api.tls.verify_client: optional lets reads in without one, not operations)"
            )
        return None

    def _allowed(self, peer: str) -> bool:
        address = parse_peer(peer)
        if address is None:
            return False  # fail closed: an address we cannot read is not on any list
        if _within(address, self._networks):
            return True
        return self._include_members and address in self._member_set()

    def _member_set(self) -> frozenset[IpAddress]:
        view = self._snapshots.get().view
        seen, addresses = self._members
        if view is not seen:  # a new cluster view: recompute once, not per call
            addresses = member_addresses(view)
            self._members = (view, addresses)
        return addresses
