"""The log output of pgwarden's long-running processes, the agent and its fence: readable text
lines or one JSON object per line (the node config's ``log_format``).

Both formats name the member on every line. A record may carry facts as ``extra`` (the decision
line carries ``reason_code``); JSON puts each of them in a field of its own, so a log shipper
can filter on them without parsing sentences. ``apply`` is called once at start and again on
SIGHUP (agent/node_reload.py): the level and the format change live, on the same handler.

Only the standard library is imported here: the agent's entry point sets logging up before its
heavy imports and must stay cheap to start (issue 16), and the fence imports nothing else.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# The attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_NAME = "pgwarden"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "cluster", "member", "message", ...extras, "exception"?}``
    (``cluster`` only where the process knows it: the fence does not)."""

    def __init__(self, cluster: str | None, member: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.member = member

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "cluster": self.cluster,
            "member": self.member,
            "message": record.getMessage(),
        }
        if self.cluster is None:
            del doc["cluster"]
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # One line per record whatever the message holds (callback output spans lines).
        return json.dumps(doc, ensure_ascii=False)


def text_formatter(member: str) -> logging.Formatter:
    return logging.Formatter(f"%(asctime)s {member} %(levelname)s %(name)s: %(message)s")


def formatter(log_format: str, cluster: str | None, member: str) -> logging.Formatter:
    return JsonFormatter(cluster, member) if log_format == "json" else text_formatter(member)


def apply(
    level: str | int, log_format: str, cluster: str | None, member: str, stream: TextIO | None = None
) -> logging.Handler:
    """Set the root logger's level and this agent's handler (on stderr: the journal under
    systemd) to ``log_format``; called again, it changes both in place. Returns the handler."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format, cluster, member))
    root.setLevel(level)
    return handler
