"""`Store` over etcd 3.4's v3 JSON gateway (``POST /v3/...``), with endpoint rotation and timeouts.

Why our own thin client rather than etcd3gw (or the gRPC client):

- every request carries its own timeout, so a hung or partitioned member costs about
  ``timeout`` seconds and a whole call at most about ``timeout * len(endpoints)`` (each attempt
  gets what is left of that budget, which bounds connecting, sending and reading together);
- the client's *source* address can be bound (``bind_address``), so tests cut the network
  between one node's loopback address and etcd and leave the other nodes untouched;
- the client rotates over several endpoints and sticks to the one that last answered;
  etcd3gw talks to a single endpoint and goes through ``requests``. An agent's store
  (`connect`) starts at a member drawn at random, so a fleet's requests spread over the etcd
  members instead of all going to the first one listed (measured: one member served every
  request of 10 clusters when all started at the first).

Reads are linearizable (etcd's default), so a member cut off from the majority never answers
with stale data: it times out or says "no leader", and we move on to the next endpoint.

Renewing the leader lease (`renew_lease`) is the one request sent to several members at once
when the preferred one is slow (dcs/etcd_renewal.py says when and why); writes stay sequential.

Over TLS (``etcd.protocol: https``) each member's certificate is checked against ``etcd.cacert``
and the address dialled, and ``etcd.cert`` is presented (dcs/etcd_tls.py); with
``etcd.username`` every call carries an auth token, asked for again when a member refuses it,
within the call's own budget (dcs/etcd_auth.py). Connections are kept open between calls (a TLS
handshake per new connection only), also to the members not asked lately, for KEEPALIVE seconds.

Thread safety: one `EtcdStore` may be shared by threads. Ordinary calls go through one
`HttpClient` (pgwarden/outbound_http.py: http.client on a thread-safe pool of kept
connections); `watch` uses a second client of its own,
so a long poll never holds a connection the agent's loop needs; hedged renewals run on a small
thread pool of the store's own (dcs/etcd_renewal.py). The only other shared state is the index of
the preferred endpoint, a plain int whose races are harmless.
"""

from __future__ import annotations

import json
import math
import random
import ssl
import time
from collections.abc import Iterator, Sequence

from pgwarden import outbound_http
from pgwarden.dcs import etcd_auth, etcd_tls
from pgwarden.dcs.etcd_auth import EtcdAuth, TokenSource
from pgwarden.dcs.etcd_renewal import HedgedRenewals, NoMemberAnswered
from pgwarden.dcs.etcd_wire import (
    GATEWAY_HEADERS,
    Json,
    _b64,
    _describe,
    _error_of,
    _EtcdAnswer,
    _is_transient,
    _key_value,
    _parse_body,
    _put,
    _Reply,
    _revision,
    _watch_event,
    prefix_end,
)
from pgwarden.dcs.store import LeaseExpired, Snapshot, StoreError, WatchEvent
from pgwarden.model.node import Address, EtcdSettings
from pgwarden.outbound_http import HttpClient, TransportError

# gRPC codes the gateway passes through, which mean "this member cannot serve now, another
# may": DeadlineExceeded ("request timed out") and Unavailable ("no leader", "leader changed").
_NOT_FOUND = 5
# How long an idle connection to a member is kept: longer than the loop's and the keeper's
# intervals, so that calls (and a hedged renewal to another member) rarely pay a TLS handshake.
KEEPALIVE = 60.0
# How long one member may take to issue a token: etcd checks the password with bcrypt and
# replicates the token through raft, which on a loaded machine takes a second or more.
AUTH_TIMEOUT = 5.0
# The most one answer may hold. A range read of a cluster is a few KiB; values are capped by etcd
# at 1.5 MiB each (--max-request-bytes). Junk keys piling up under the prefix must not be read
# into memory without bound: past this the read fails as a whole, naming the cause.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class EtcdStore:
    """A `Store` talking to etcd's v3 JSON gateway on ``endpoints``; see the module docstring."""

    def __init__(
        self,
        endpoints: Sequence[Address],
        timeout: float,
        bind_address: str | None = None,
        *,
        settings: EtcdSettings | None = None,
        first: int = 0,
    ) -> None:
        """``settings``: the protocol, TLS files and credentials (its hosts and bind address are
        not read: ``endpoints`` and ``bind_address`` say those); `connect` takes them all from it.
        ``first``: the index of the endpoint asked first, until another one answers instead.
        Raises EtcdTlsError when the TLS files cannot be used."""
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._endpoints = tuple(endpoints)
        self._settings = settings or EtcdSettings(self._endpoints)
        self._urls = tuple(self._settings.url(e) for e in self._endpoints)
        self._timeout = timeout
        self._preferred = first % len(self._endpoints)
        username, password = self._settings.username, self._settings.password
        self._auth = EtcdAuth(username, password) if username and password is not None else None
        self._tokens = TokenSource(self._authenticate)
        # Each new connection is wrapped by the context built last: `reload_tls` swaps in a
        # rotated client certificate (or CA) without rebuilding the clients or their pools.
        self._tls = etcd_tls.reloadable_context(self._settings)
        self._client = self._new_client(bind_address, self._tls)
        self._watch_client = self._new_client(bind_address, self._tls)
        self._renewals = HedgedRenewals(len(self._endpoints), timeout, self._post_once)

    def reload_tls(self) -> None:
        """Build the TLS context again from the files (rotated certificate, key or CA) for new
        connections; raises EtcdTlsError, keeping the one in use, when they cannot be used."""
        if self._tls is not None:
            self._tls.reload()

    @classmethod
    def connect(cls, settings: EtcdSettings, timeout: float) -> EtcdStore:
        """A store on every member ``settings`` lists, with its TLS and credentials, asking a
        member drawn at random first (then the one that last answered): the agents of a fleet
        spread their requests over the etcd members."""
        first = random.randrange(len(settings.hosts)) if settings.hosts else 0
        return cls(settings.hosts, timeout, settings.bind_address, settings=settings, first=first)

    @staticmethod
    def _new_client(bind_address: str | None, tls: ssl.SSLContext | None) -> HttpClient:
        return HttpClient(source=bind_address, tls=tls, headers=GATEWAY_HEADERS, keepalive=KEEPALIVE)

    # -- transport ---------------------------------------------------------------------------

    def _attempts(self) -> Iterator[tuple[int, Address, float]]:
        """Each endpoint once, preferred first, with the time it may take; stops at the deadline."""
        deadline = time.monotonic() + self._timeout * len(self._endpoints)
        start = self._preferred
        for i in range(len(self._endpoints)):
            index = (start + i) % len(self._endpoints)
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                return
            yield index, self._endpoints[index], min(self._timeout, remaining)

    def _unreachable(self, failures: list[tuple[Address, str]]) -> StoreError:
        tried = {endpoint for endpoint, _ in failures}
        reasons = [f"{endpoint} {reason}" for endpoint, reason in failures]
        reasons += [f"{ep} not tried (deadline)" for ep in self._endpoints if ep not in tried]
        return StoreError("etcd unreachable: " + "; ".join(reasons))

    def call(self, path: str, body: Json) -> Json:
        """POST ``body`` to the gateway's ``path`` on the first member that answers (the preferred
        first), with a token when etcd wants one; stream messages unwrapped. StoreError when none
        answered, _EtcdAnswer (a StoreError) when etcd refused the call itself. The Store methods
        below use it, and dcs/etcd_admin.py (pgwarden doctor's calls on the etcd cluster)."""
        failures: list[tuple[Address, str]] = []
        for index, endpoint, budget in self._attempts():
            try:
                answer = self._exchange(index, path, body, budget)
            except TransportError as exc:
                failures.append((endpoint, _describe(exc, budget, self._settings, endpoint.host)))
                continue
            except ValueError as exc:
                failures.append((endpoint, str(exc)))
                continue
            error = _error_of(answer)
            if error is not None:
                code, message = error
                if _is_transient(code, message):
                    failures.append((endpoint, f"answered {message!r}"))
                    continue
                self._preferred = index
                raise self._refused(index, code, message)
            self._preferred = index
            return answer
        raise self._unreachable(failures)

    def _refused(self, index: int, code: int | None, message: str) -> _EtcdAnswer:
        return _EtcdAnswer(self._endpoints[index], code, message, self._auth.username if self._auth else None)

    def _exchange(self, index: int, path: str, body: Json, budget: float, eager: bool = True) -> Json:
        """One call to one member, with a token when etcd wants one: asked for first when there is
        none (unless not ``eager``: then only once etcd refuses the call without one), and again
        (then the call repeated) when the member refuses the one sent. Raises
        TransportError, ValueError (no JSON answer) or _EtcdAnswer (credentials refused)."""
        deadline = time.monotonic() + budget
        auth = self._auth
        token = None
        if auth is not None:
            token = self._token(deadline) if eager else auth.token() or None
        answer = self._post(index, path, body, token, deadline)
        error = _error_of(answer)
        if auth is not None and error is not None and etcd_auth.is_token_refusal(*error):
            auth.forget(token)
            answer = self._post(index, path, body, self._token(deadline), deadline)
        return answer

    def _token(self, deadline: float) -> str | None:
        """The token to send: the current one, or the one being asked for (`TokenSource`),
        waited for until ``deadline``. Raises ValueError when it is not there in time (the next
        member waits on), StoreError when no member gave one (the whole call fails with why; the
        next call asks again), _EtcdAnswer when etcd refused the credentials."""
        assert self._auth is not None
        token = self._auth.token()
        if token is not None:
            return token or None
        try:
            return self._tokens.wait(deadline) or None
        except _EtcdAnswer:
            raise
        except StoreError as exc:
            why = str(exc).removeprefix("etcd unreachable: ")
            raise StoreError(f"etcd unreachable: no auth token: {why}") from None

    def _authenticate(self) -> str:
        """Ask the members in turn, the preferred first, for a token ("" when etcd has auth off)."""
        assert self._auth is not None
        failures: list[tuple[Address, str]] = []
        for step in range(len(self._endpoints)):
            index = (self._preferred + step) % len(self._endpoints)
            endpoint = self._endpoints[index]
            try:
                answer = self._post(
                    index, etcd_auth.AUTHENTICATE, self._auth.request, None, time.monotonic() + AUTH_TIMEOUT
                )
            except TransportError as exc:
                failures.append((endpoint, _describe(exc, AUTH_TIMEOUT, self._settings, endpoint.host)))
                continue
            except ValueError as exc:
                failures.append((endpoint, str(exc)))
                continue
            error = _error_of(answer)
            if error is None:
                return self._auth.accept(answer)
            code, message = error
            if etcd_auth.is_not_enabled(message):
                return self._auth.not_enabled()
            if not _is_transient(code, message):
                raise self._refused(index, code, message)
            failures.append((endpoint, f"answered {message!r}"))
        raise self._unreachable(failures)

    def _post(self, index: int, path: str, body: Json, token: str | None, deadline: float) -> Json:
        budget = max(0.01, deadline - time.monotonic())
        headers = {"Authorization": token} if token else None
        url = self._urls[index] + path
        with self._client.stream(
            "POST", url, body=json.dumps(body).encode(), headers=headers, timeout=budget
        ) as response:
            data = bytearray()
            for chunk in response.chunks():
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise StoreError(
                        f"etcd answered more than {MAX_ANSWER_BYTES >> 20} MiB to {url}: "
                        "junk keys under the cluster's prefix?"
                    )
            text = data.decode("utf-8", errors="replace")
            return _parse_body(response.status, text, self._settings)

    def _post_once(self, index: int, path: str, body: Json, budget: float) -> _Reply:
        """One request to one endpoint, never raising: what it answered, or why it did not. It
        asks for a token only when etcd refuses the call without one: etcd 3.4 does not check
        tokens on keepalives, so a renewal never waits for an authentication it does not need."""
        endpoint = self._endpoints[index]
        sent = time.monotonic()  # before the request leaves: the lease deadline counts from here
        try:
            answer = self._exchange(index, path, body, budget, eager=False)
        except TransportError as exc:
            return _Reply(index, sent, failure=_describe(exc, budget, self._settings, endpoint.host))
        except ValueError as exc:
            return _Reply(index, sent, failure=str(exc))
        except _EtcdAnswer as exc:
            return _Reply(index, sent, error=(exc.code, exc.message))
        except StoreError as exc:  # no auth token to be had
            return _Reply(index, sent, failure=str(exc).removeprefix("etcd unreachable: "))
        error = _error_of(answer)
        if error is not None and _is_transient(*error):
            return _Reply(index, sent, failure=f"answered {error[1]!r}")
        return _Reply(index, sent, answer=answer, error=error)

    # -- one member at a time (dcs/etcd_admin.py: pgwarden doctor's calls) -------------------

    @property
    def endpoints(self) -> tuple[Address, ...]:
        return self._endpoints

    def call_on(self, index: int, path: str, body: Json) -> Json:
        """``body`` to ``path`` on endpoint ``index`` alone (no other member is tried);
        StoreError naming that endpoint when it did not answer or refused."""
        reply = self._post_once(index, path, body, self._timeout)
        if reply.failure is not None or reply.error is not None:
            why = reply.failure or (reply.error[1] if reply.error else "")
            raise StoreError(f"{self._endpoints[index]} {why}")
        return reply.answer or {}

    # -- Store -------------------------------------------------------------------------------

    def get_prefix(self, prefix: str) -> Snapshot:
        answer = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        items = tuple(_key_value(kv) for kv in answer.get("kvs", []))
        return Snapshot(revision=_revision(answer), items=items)

    def grant_lease(self, ttl: float) -> int:
        answer = self.call("/v3/lease/grant", {"TTL": str(max(1, math.ceil(ttl)))})
        return int(answer["ID"])

    def keepalive(self, lease: int) -> float:
        try:
            answer = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        except _EtcdAnswer as exc:
            if exc.code == _NOT_FOUND:
                raise LeaseExpired(f"lease {lease:x} expired: {exc.message}") from exc
            raise
        ttl = int(answer.get("TTL", 0))
        if ttl <= 0:
            raise LeaseExpired(f"lease {lease:x} expired: etcd no longer has it")
        return float(ttl)

    def renew_lease(self, lease: int, until: float) -> float:
        """Keep ``lease`` alive, asking every member at once until one renews it or ``until``
        (monotonic) passes; return when the request that renewed it was sent (monotonic)."""
        try:
            reply = self._renewals.first_answer(
                self._preferred, "/v3/lease/keepalive", {"ID": str(lease)}, until
            )
        except NoMemberAnswered as exc:
            failures = sorted(exc.failures.items())
            raise self._unreachable([(self._endpoints[i], why) for i, why in failures]) from None
        self._preferred = reply.index
        answer = reply.answer or {}
        if reply.error is not None:
            code, message = reply.error
            if code == _NOT_FOUND:
                raise LeaseExpired(f"lease {lease:x} expired: {message}")
            raise self._refused(reply.index, code, message)
        if int(answer.get("TTL", 0)) <= 0:
            raise LeaseExpired(f"lease {lease:x} expired: etcd no longer has it")
        return reply.sent

    def revoke(self, lease: int) -> None:
        try:
            self.call("/v3/lease/revoke", {"ID": str(lease)})
        except _EtcdAnswer as exc:
            if exc.code != _NOT_FOUND:
                raise

    def put(self, key: str, value: str, lease: int = 0) -> int:
        return _revision(self.call("/v3/kv/put", _put(key, value, lease)))

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        compare = {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
        return self._txn(compare, {"request_put": _put(key, value, lease)})

    def replace(self, key: str, value: str, expected_value: str, lease: int = 0) -> bool:
        compare = {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(expected_value)}
        return self._txn(compare, {"request_put": _put(key, value, lease)})

    def replace_at(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        if mod_revision == 0:
            return self.create(key, value, lease)
        compare = {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}
        return self._txn(compare, {"request_put": _put(key, value, lease)})

    def delete(self, key: str, expected_value: str | None = None) -> bool:
        if expected_value is None:
            return int(self.call("/v3/kv/deleterange", {"key": _b64(key)}).get("deleted", 0)) > 0
        compare = {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(expected_value)}
        return self._txn(compare, {"request_delete_range": {"key": _b64(key)}})

    def _txn(self, compare: Json, then: Json) -> bool:
        # protobuf's JSON leaves out false: an absent "succeeded" means the compare failed.
        return bool(self.call("/v3/kv/txn", {"compare": [compare], "success": [then]}).get("succeeded"))

    def watch(self, prefix: str, start_revision: int, timeout: float) -> list[WatchEvent]:
        request: Json = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        if start_revision > 0:
            request["start_revision"] = str(start_revision)
        deadline = time.monotonic() + max(0.0, timeout)
        failures: list[tuple[Address, str]] = []
        for index, endpoint, budget in self._attempts():
            wait = deadline - time.monotonic()
            if wait <= 0:
                return []
            try:
                events = self._watch_with_token(index, request, connect=budget, wait=wait)
            except outbound_http.Timeout:
                return []  # connected but nothing happened in time (or a hung member: same answer)
            except TransportError as exc:
                failures.append((endpoint, _describe(exc, budget, self._settings, endpoint.host)))
                continue
            except ValueError as exc:
                failures.append((endpoint, str(exc)))
                continue
            except _EtcdAnswer as exc:
                if _is_transient(exc.code, exc.message):
                    failures.append((endpoint, f"answered {exc.message!r}"))
                    continue
                raise
            self._preferred = index
            return events
        raise self._unreachable(failures)

    def _watch_with_token(self, index: int, request: Json, connect: float, wait: float) -> list[WatchEvent]:
        """`_watch_once` with a token when etcd wants one, asked for again once if refused."""
        if self._auth is None:
            return self._watch_once(index, request, None, connect, wait)
        token = self._token(time.monotonic() + connect)
        try:
            return self._watch_once(index, request, token, connect, wait)
        except _EtcdAnswer as exc:
            if not etcd_auth.is_token_refusal(exc.code, exc.message):
                raise
            self._auth.forget(token)
        return self._watch_once(index, request, self._token(time.monotonic() + connect), connect, wait)

    def _watch_once(
        self, index: int, request: Json, token: str | None, connect: float, wait: float
    ) -> list[WatchEvent]:
        url = f"{self._urls[index]}/v3/watch"
        headers = {"Authorization": token} if token else None
        body = json.dumps({"create_request": request}).encode()
        with self._watch_client.stream(
            "POST", url, body=body, headers=headers, timeout=wait, connect=min(connect, wait)
        ) as response:
            if response.status >= 400:
                text = response.read(MAX_ANSWER_BYTES).decode("utf-8", errors="replace")
                # ValueError when it is not JSON: that member is skipped, like one that did not answer
                error = _error_of(_parse_body(response.status, text, self._settings))
                if error is not None:
                    raise self._refused(index, *error)
            for line in response.lines(MAX_ANSWER_BYTES):  # one watch message per line
                if not line.strip():
                    continue
                message = json.loads(line)
                error = _error_of(message)
                if error is not None:
                    raise self._refused(index, *error)
                result = message.get("result", {})
                if result.get("canceled"):
                    reason = result.get("cancel_reason") or "watch canceled"
                    if "compact_revision" in result:
                        reason = f"revision {request.get('start_revision')} compacted"
                    raise _EtcdAnswer(self._endpoints[index], None, reason)
                events = result.get("events")
                if events:
                    return [_watch_event(e) for e in events]
            return []  # the stream ended without events (e.g. member shutting down)

    def close(self) -> None:
        self._renewals.close()
        self._tokens.close()
        self._client.close()
        self._watch_client.close()

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
