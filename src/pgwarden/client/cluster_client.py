"""Reads one cluster's state from etcd and calls its agents' REST APIs, turning failures into ClientErrors.

Reads go straight to etcd (one range read, as the agents do), so ``list`` works even when no
agent answers. Every change goes to an agent's REST API, which checks it against the cluster (and
a config change against PostgreSQL) and carries it out, behind the API's authentication; the
client decides nothing itself and writes nothing to etcd. A config edit is compare-and-set on
the revision read (``If-Match``), so two editors cannot silently overwrite each other.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from pgwarden.api.contract import etag
from pgwarden.client.errors import (
    ApiRefused,
    ApiUnreachable,
    ClientError,
    ConfigChanged,
    EtcdUnreachable,
    NoLeader,
    UnknownMember,
)
from pgwarden.client.target import ClusterTarget
from pgwarden.config.dynamic import dynamic_config_to_dict, parse_dynamic_config
from pgwarden.config.errors import ConfigError
from pgwarden.dcs import etcd_admin
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.etcd_admin import EtcdMember
from pgwarden.dcs.etcd_tls import EtcdTlsError
from pgwarden.dcs.store import Store, StoreError
from pgwarden.model.cluster import ClusterView, DynamicConfig, Member
from pgwarden.tls import client_context

# How long one etcd endpoint may take; a whole read tries each endpoint once.
ETCD_TIMEOUT = 2.0
# How long to wait for an agent to accept a connection; answering may take longer (see `call`).
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """A 2xx answer of one agent's REST API."""

    member: str
    status: int
    document: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def message(self) -> str:
        """The API's sentence, or a neutral one when it gave none."""
        text = self.document.get("message")
        return text if isinstance(text, str) and text else f"{self.member} answered HTTP {self.status}"


class ClusterClient:
    """One cluster, seen through etcd and its agents' APIs. Use as a context manager, or `close`."""

    def __init__(
        self,
        target: ClusterTarget,
        *,
        timeout: float = 10.0,
        store: Store | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``store`` and ``transport`` replace etcd and HTTP (tests pass in-memory stand-ins)."""
        self.target = target
        self.timeout = timeout
        if transport is None:
            transport = httpx.HTTPTransport(verify=_verify(target), local_address=target.bind_address)
        self._store = store or _etcd_store(target)
        self.cluster_store = ClusterStore(self._store, target.cluster, target.prefix, target.member_networks)
        auth = target.api_auth
        self._http = httpx.Client(
            transport=transport,
            auth=httpx.BasicAuth(auth.username, auth.password or "") if auth else None,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()
        self._store.close()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- etcd -----------------------------------------------------------------------------------

    def view(self) -> ClusterView:
        """The whole cluster as etcd holds it now."""
        try:
            return self.cluster_store.read()
        except StoreError as exc:
            raise self._etcd_error(exc) from None

    def config(self) -> tuple[DynamicConfig | None, int]:
        """The stored dynamic config (None: absent or invalid) and its revision (0: absent)."""
        return self.config_problem()[:2]

    def config_problem(self) -> tuple[DynamicConfig | None, int, str | None]:
        """As `config`, plus why the stored config is unreadable (None when it reads or is absent)."""
        try:
            return self.cluster_store.read_config_problem()
        except StoreError as exc:
            raise self._etcd_error(exc) from None

    def read_config(self) -> ConfigRead:
        """The dynamic config and its revision, through the first agent (the leader first) that answers."""
        view = self.view()
        members = self.members_leader_first(view)
        try:
            answer = self.call_first(members, "GET", "/config")
        except ApiRefused as exc:
            revision = exc.document.get("revision")
            if exc.status == 503 and isinstance(revision, int) and revision > 0:
                # Stored but invalid: edit the defaults and replace it (PUT, If-Match on it).
                return ConfigRead(None, revision, self.member(exc.member, view))
            raise
        tag = answer.headers.get("etag", "")
        if not (tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit()):
            raise ClientError(
                f"{answer.member} answered GET /config without an ETag (is it older than this command?)"
            )
        try:
            cfg: DynamicConfig | None = parse_dynamic_config(
                answer.document, f"GET /config of {answer.member}"
            )
        except ConfigError:
            cfg = None  # stored by an older version under other rules: invalid here
        return ConfigRead(cfg, int(tag[1:-1]), self.member(answer.member, view))

    def write_config(self, cfg: DynamicConfig, read: ConfigRead) -> ApiAnswer:
        """Replace the config through the agent that was read, only if it is still at
        ``read.revision`` (If-Match); `ConfigChanged` when it moved, `ApiRefused` when refused."""
        try:
            return self.call(
                read.member,
                "PUT",
                "/config",
                dynamic_config_to_dict(cfg),
                headers={"If-Match": etag(read.revision)},
            )
        except ApiRefused as exc:
            if exc.status == 412:
                raise ConfigChanged(f"{exc.error}") from None
            raise

    def etcd_members(self) -> tuple[EtcdMember, ...]:
        """etcd's own member list (which may differ from the configured endpoints)."""
        store = self._etcd()
        try:
            return etcd_admin.members(store)
        except StoreError as exc:
            raise self._etcd_error(exc) from None

    def etcd_round_trips(self, samples: int) -> dict[str, list[float] | str]:
        """Per endpoint, ``samples`` timed reads of the leader key as the agents make them (seconds),
        or why that endpoint did not answer."""
        store = self._etcd()
        found: dict[str, list[float] | str] = {}
        for index, endpoint in enumerate(store.endpoints):
            times: list[float] = []
            try:
                for _ in range(samples):
                    times.append(etcd_admin.round_trip(store, index, self.cluster_store.keys.leader))
            except StoreError as exc:
                found[str(endpoint)] = str(exc)
                continue
            found[str(endpoint)] = times
        return found

    def _etcd(self) -> EtcdStore:
        if not isinstance(self._store, EtcdStore):
            raise ClientError("this cluster is not read from etcd (a test stand-in)")
        return self._store

    def _etcd_error(self, exc: StoreError) -> ClientError:
        hosts = ", ".join(str(h) for h in self.target.etcd_hosts)
        detail = str(exc).removeprefix("etcd unreachable: ")
        if str(exc).startswith("etcd unreachable"):
            return EtcdUnreachable(f"etcd unreachable at {hosts} (cluster {self.target.cluster!r}): {detail}")
        return ClientError(f"etcd at {hosts} refused the request: {detail}")

    def remove_cluster(self) -> int:
        """Delete every key under the cluster's prefix in etcd (``pgwarden remove``); how many.

        The one change written to etcd directly, as patronictl's ``remove`` does: it is for a
        cluster whose agents are stopped (running agents write their keys again on their next loop).
        """
        store = self.cluster_store.store
        try:
            keys = [kv.key for kv in store.get_prefix(self.cluster_store.keys.root).items]
            for key in keys:
                store.delete(key)
        except StoreError as exc:
            raise self._etcd_error(exc) from None
        return len(keys)

    # -- members --------------------------------------------------------------------------------

    def member(self, name: str, view: ClusterView | None = None) -> Member:
        """The member called ``name``, or `UnknownMember` listing the known ones."""
        view = view or self.view()
        found = view.member(name)
        if found is None:
            raise UnknownMember(name, [m.name for m in view.members])
        return found

    def leader(self, view: ClusterView | None = None) -> Member:
        """The member holding the leader key, or `NoLeader`."""
        view = view or self.view()
        if view.leader is None:
            raise NoLeader(f"cluster {view.name!r} has no leader now")
        found = view.member(view.leader.name)
        if found is None:
            raise NoLeader(f"the leader key names {view.leader.name!r}, which has no member key in etcd")
        return found

    # -- REST API -------------------------------------------------------------------------------

    def call(
        self,
        member: Member,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiAnswer:
        """One request to ``member``'s API; `ApiUnreachable` or `ApiRefused` (4xx/5xx) on failure.

        ``timeout`` bounds the wait for the answer (operations such as a switchover answer
        only once done); connecting is bounded by CONNECT_TIMEOUT.
        """
        wait = self.timeout if timeout is None else timeout
        url = member.api_url.rstrip("/") + path
        # Every write carries a JSON body, ``{}`` when it has nothing to say: the API refuses
        # writes without ``Content-Type: application/json`` (a browser form cannot send it).
        document = dict(body) if body is not None else ({} if method not in ("GET", "HEAD") else None)
        try:
            response = self._http.request(
                method,
                url,
                json=document,
                headers=dict(headers or {}),
                timeout=httpx.Timeout(wait, connect=min(CONNECT_TIMEOUT, wait)),
            )
        except httpx.TimeoutException:
            raise ApiUnreachable(
                f"{member.name}'s REST API at {member.api_url} did not answer {method} {path} "
                f"within {wait:g}s"
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ApiUnreachable(
                f"cannot reach {member.name}'s REST API at {member.api_url}: {reason}"
            ) from None
        document = _json_object(response)
        if response.status_code >= 400:
            raise ApiRefused(member.name, method, path, response.status_code, document)
        return ApiAnswer(
            member.name, response.status_code, document, {k.lower(): v for k, v in response.headers.items()}
        )

    def call_first(
        self,
        members: Sequence[Member],
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> ApiAnswer:
        """Ask each member in turn until one answers; a refusal is an answer and ends the search."""
        failures: list[str] = []
        for member in members:
            try:
                return self.call(member, method, path, body, timeout)
            except ApiUnreachable as exc:
                failures.append(str(exc))
        if not failures:
            raise ApiUnreachable("no member is listed in etcd, so there is no REST API to ask")
        raise ApiUnreachable("no member's REST API answered: " + "; ".join(failures))

    def members_leader_first(self, view: ClusterView) -> list[Member]:
        """Every member, the leader first: the one most likely to carry a cluster-wide change."""
        leader = view.leader.name if view.leader else None
        return sorted(view.members, key=lambda m: (m.name != leader, m.name))

    # -- cluster-wide switches ------------------------------------------------------------------

    def set_pause(self, paused: bool) -> str:
        """Pause or resume automatic failover through the first agent (the leader first) that answers.

        Never written to etcd directly: the API's authentication guards it like every change
        (with no agent running, there is no automatic failover to pause anyway).
        """
        view = self.view()
        word = "paused" if paused else "resumed"
        if view.config.pause == paused:
            return f"cluster {view.name!r} is already {'paused' if paused else 'running automatic failover'}"
        answer = self.call_first(self.members_leader_first(view), "PATCH", "/config", {"pause": paused})
        return f"cluster {view.name!r} {word} (through {answer.member}'s REST API)"


@dataclass(frozen=True, slots=True)
class ConfigRead:
    """The config an agent answered with (None: the stored one is invalid), its etcd revision (the
    ETag a replacement must match) and that agent, which the replacement goes to."""

    config: DynamicConfig | None
    revision: int
    member: Member


def _etcd_store(target: ClusterTarget) -> EtcdStore:
    try:
        return EtcdStore(target.etcd_hosts, ETCD_TIMEOUT, target.bind_address, settings=target.etcd_client)
    except EtcdTlsError as exc:
        raise ClientError(f"{exc} (from {target.source})") from None


def _verify(target: ClusterTarget) -> ssl.SSLContext | bool:
    """How the agents' HTTPS is verified, and the client certificate presented (api.tls)."""
    if target.tls_ca is None and target.tls_cert is None and not target.tls_insecure:
        return True
    try:
        return client_context(target.tls_ca, target.tls_cert, target.tls_key, insecure=target.tls_insecure)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (target.tls_ca, target.tls_cert, target.tls_key) if f)
        raise ClientError(f"cannot set up HTTPS to the agents with {files}: {exc}") from None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {"value": document}
