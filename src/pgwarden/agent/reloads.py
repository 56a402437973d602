"""What the agent reloads on SIGHUP: a list of parts, each asked to reload itself.

The signal handler only calls ``request``, and each part's request function must only set a flag
or wake its own thread (it runs inside the handler, between two bytecodes of whatever the main
thread was doing): the reload itself happens in the part's thread. The REST API's certificates
are the first part; a reload of the node config (issue 17) is meant to register here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Reloads:
    def __init__(self) -> None:
        self._parts: list[tuple[str, Callable[[], None]]] = []

    def add(self, what: str, request: Callable[[], None]) -> None:
        """On SIGHUP, call ``request`` (which must return at once) to reload ``what``."""
        self._parts.append((what, request))

    @property
    def parts(self) -> list[str]:
        return [what for what, _ in self._parts]

    def request(self) -> None:
        """Ask every part to reload (the SIGHUP handler)."""
        if not self._parts:
            log.info("SIGHUP: nothing to reload")
            return
        log.info("SIGHUP: reloading %s", ", ".join(self.parts))
        for what, request in self._parts:
            try:
                request()
            except Exception:  # one part's bug must not keep the others from reloading
                log.exception("asking %s to reload failed", what)
