"""Reads a peer's ``GET /patroni`` answer into the `PeerStatus` candidacy needs, or refuses it.

Peers are asked exactly when there is no leader, so one peer answering junk (``[]``, ``null``,
``{"xlog": "a"}``, a priority of ``"x"``, nesting thousands deep, an endless body) must cost no
more than that peer: the answer is parsed into typed, bounded fields, and any problem makes that
peer unknown (unreachable) with the reason, never an exception in the loop. The schema is what
``status_document`` writes; fields it does not know are ignored, so newer agents stay readable.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pgwarden.bounded_json import parse_json
from pgwarden.ha.observation import PeerStatus
from pgwarden.ha.reasons import Reason
from pgwarden.model import Lsn, Role, Tags

MAX_ANSWER_BYTES = 64 * 1024  # a status document is about 1 KiB; replication rows add little

_Lsn = Annotated[int, Field(ge=0, le=2**64 - 1)]
_Priority = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Xlog(_Strict):
    location: _Lsn | None = None
    received_location: _Lsn | None = None
    replayed_location: _Lsn | None = None
    paused: bool | None = None


class _Tags(_Strict):
    nofailover: bool = False
    failover_priority: _Priority = 1


class _Answer(_Strict):
    role: str | None = None
    state: str | None = None
    timeline: Annotated[int, Field(ge=1, le=2**32 - 1)] | None = None
    xlog: _Xlog | None = None
    tags: _Tags | None = None
    reason_code: str | None = None


class BadAnswer(ValueError):
    """A peer's answer that cannot be used; the message says why in one line."""


def read_peer_answer(name: str, body: bytes) -> PeerStatus:
    """The facts in ``name``'s answer ``body``; `BadAnswer` naming the first problem otherwise."""
    try:
        answer = _Answer.model_validate(parse_json(body, MAX_ANSWER_BYTES))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise BadAnswer(f"{where}: {first['msg']}") from None
    except ValueError as exc:
        raise BadAnswer(str(exc)) from None
    return _status(name, answer)


def _status(name: str, answer: _Answer) -> PeerStatus:
    xlog = answer.xlog or _Xlog()
    in_recovery: bool | None = None
    position: int | None = None
    if xlog.location is not None:
        in_recovery, position = False, xlog.location
    elif xlog.received_location is not None or xlog.replayed_location is not None:
        in_recovery = True
        position = max(x for x in (xlog.received_location, xlog.replayed_location) if x is not None)
    tags = answer.tags or _Tags()
    role = Role(answer.role) if answer.role is not None and answer.role in Role._value2member_map_ else None
    return PeerStatus(
        name=name,
        reachable=True,
        role=role,
        running=answer.state == "running",
        in_recovery=in_recovery,
        timeline=answer.timeline,
        lsn=Lsn(position) if position is not None else None,
        tags=Tags(nofailover=tags.nofailover, failover_priority=tags.failover_priority),
        replayed=Lsn(xlog.replayed_location) if xlog.replayed_location is not None else None,
        replay_paused=xlog.paused is True,
        loop_failing=answer.reason_code == Reason.INTERNAL_ERROR.name,
    )
