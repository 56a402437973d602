"""The output of ``decide``: ordered actions, a reason code with its parameters, and the new memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pgwarden.ha.actions import Action
from pgwarden.ha.observation import Memory, Request
from pgwarden.ha.reasons import Reason


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...]
    reason: Reason
    detail: Mapping[str, object] = field(default_factory=dict)
    memory: Memory = field(default_factory=Memory)
    # Operator requests this decision answers: carried out by its actions (None), or refused (why).
    answers: Mapping[Request, str | None] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.reason.render(self.detail)


def act(reason: Reason, *actions: Action, **detail: object) -> Decision:
    """A decision whose memory the caller (``decide``) fills in."""
    return Decision(actions=actions, reason=reason, detail=detail)
