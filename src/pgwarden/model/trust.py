"""Which member addresses read from etcd this node may send credentials to: ``member_networks``.

Whoever can write to etcd can rewrite a member's record, and with it the ``host`` that agents
dial with the replication and superuser passwords (primary_conninfo, pg_basebackup, pg_rewind)
and the ``api_url`` that agents and the CLI call with the API's credentials. So a record is
trusted only as far as its addresses fall inside the networks (or DNS names) the node's own
config says the cluster lives in; `trusted_view` drops the others from the view everything
else reads, and lists them with the reason in ``ClusterView.untrusted``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from pgwarden.model.cluster import ClusterView, Member

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class MemberNetworks:
    """IP networks, exact DNS names and ``*.domain`` suffixes the cluster's members may use."""

    networks: tuple[Network, ...] = ()
    names: tuple[str, ...] = ()  # lowercase, without a trailing dot; "*.example.com": any name below

    def __str__(self) -> str:
        return ", ".join([*(str(n) for n in self.networks), *self.names]) or "nothing"

    def host_refusal(self, host: str) -> str | None:
        """Why ``host`` (an IP literal or a DNS name) is not a member address; None when it is."""
        if not host:
            return "no address"
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            name = host.lower().rstrip(".")
            if any(_name_matches(name, pattern) for pattern in self.names):
                return None
            return f"{host} is not among the names in member_networks ({self})"
        if any(address.version == n.version and address in n for n in self.networks):
            return None
        return f"{host} is outside member_networks ({self})"

    def url_refusal(self, url: str) -> str | None:
        """Why the REST API URL ``url`` is not a member's; None when it is."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return f"{url!r} is not a URL"
        if parts.scheme not in ("http", "https"):
            return f"{url!r} is not an http(s) URL"
        return self.host_refusal(host)

    def member_refusal(self, member: Member) -> str | None:
        """Why ``member``'s record cannot be trusted with credentials; None when it can."""
        why = self.host_refusal(member.host)
        if why is not None:
            return f"its PostgreSQL host {why}"
        why = self.url_refusal(member.api_url)
        return None if why is None else f"its api_url {member.api_url}: {why}"


def _name_matches(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def trusted_view(view: ClusterView, networks: MemberNetworks) -> ClusterView:
    """``view`` without the members whose addresses are outside ``networks``, and with the
    failsafe topology's untrusted URLs blanked (the member stays in it, so a failsafe leader
    still needs its promise and, unable to ask, gets none); each one is named in ``untrusted``."""
    untrusted: dict[str, str] = {}
    members = []
    for member in view.members:
        why = networks.member_refusal(member)
        if why is None:
            members.append(member)
        else:
            untrusted[member.name] = f"member {member.name}'s record in etcd is not trusted: {why}"
    failsafe = None
    if view.failsafe is not None:
        failsafe = {}
        for name, url in view.failsafe.items():
            why = networks.url_refusal(url)
            failsafe[name] = url if why is None else ""
            if why is not None:
                untrusted.setdefault(name, f"member {name}'s REST API URL in the failsafe topology: {why}")
    if not untrusted:
        return view
    return dataclasses.replace(view, members=tuple(members), failsafe=failsafe, untrusted=untrusted)
