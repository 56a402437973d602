"""The one-sentence errors a cluster command can end with, one class per kind of failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ClientError(Exception):
    """A cluster command could not be carried out; ``str()`` is one sentence saying what and where."""


class ClusterNotFound(ClientError):
    """Neither ``-c FILE`` nor a local stack says where the cluster is, or the file is unusable."""


class EtcdUnreachable(ClientError):
    """No etcd endpoint answered; the message names every endpoint tried."""


class UnknownMember(ClientError):
    """A member name that etcd does not list; the message lists the members it does."""

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(f"no member named {name!r} in the cluster (members: {listed})")
        self.name = name
        self.known = known


class NoLeader(ClientError):
    """The operation needs the leader, and no member holds the leader key."""


class ConfigChanged(ClientError):
    """A compare-and-set on the config lost: someone else wrote it after we read it."""


class ApiUnreachable(ClientError):
    """A member's REST API did not answer (refused, timed out, TLS failure)."""


class ApiRefused(ClientError):
    """A member's REST API answered with 4xx/5xx; ``status`` and ``error`` are what it said."""

    def __init__(self, member: str, method: str, path: str, status: int, document: Mapping[str, Any]) -> None:
        self.member = member
        self.status = status
        self.document = dict(document)
        self.error = _reason(method, path, status, document)
        super().__init__(f"{member} refused {method} {path} (HTTP {status}): {self.error}")


def _reason(method: str, path: str, status: int, document: Mapping[str, Any]) -> str:
    error = document.get("error")
    if isinstance(error, str) and error:
        return error
    if status == 401:
        return "the API requires a username and password (api.auth); use a config that has them"
    # An agent without this operation answers 404/405/501, or 503 with its status document, as
    # Patroni does for an unknown path: say so rather than echo a status document.
    if status in (404, 405, 501) or "role" in document:
        return f"this agent does not offer {method} {path} (is it older than this command?)"
    return "the API gave no reason"
