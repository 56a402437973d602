"""Reloads TLS certificates when their files change (polled) or when asked (SIGHUP), keeping the
pair in use whenever a new one cannot be loaded.

Each ``Reloadable`` names its files and a ``reload`` that builds a new context from them and puts
it in use, or raises and changes nothing. A thread looks at the files' identity (inode, size,
mtime, ctime) every ``interval`` seconds and reloads what changed; ``request`` (the agent's
SIGHUP) reloads everything at once. A failed reload (a half-written file, a key that does not
match its certificate, a missing file) is logged once per state of the files, and tried again
whenever they change: a rotation that writes the certificate first and the key second fails once,
then succeeds when the key lands, and the old pair serves every handshake meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pgwarden.tls import explain

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0  # seconds between looks at the files
_STOP_WAIT = 5.0

# A file's identity: replaced (new inode), rewritten in place (size, mtime) or touched (ctime).
Stamp = tuple[int, int, int, int] | None


def stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(eq=False)
class Reloadable:
    """One TLS context kept in step with its files."""

    what: str  # for the log: "the REST API's certificate"
    files: tuple[str, ...]
    reload: Callable[[], None]  # build and put in use; raise to keep the one in use
    loaded: tuple[Stamp, ...] = ()  # the files' stamps when the context in use was built
    failed: tuple[tuple[Stamp, ...], str] | None = field(default=None)  # last failure logged

    def stamps(self) -> tuple[Stamp, ...]:
        return tuple(stamp(f) for f in self.files)


class CertificateWatch:
    """Polls the files of every added ``Reloadable``; ``request`` reloads them all now."""

    def __init__(self, interval: float = POLL_INTERVAL) -> None:
        self._interval = interval
        self._items: list[Reloadable] = []
        self._asked = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one reload pass at a time (the thread, or check_now)

    def add(self, what: str, files: Sequence[str], reload: Callable[[], None]) -> None:
        """Watch ``files``; call before the context is first built, so a change during that
        first build is seen as a change."""
        item = Reloadable(what, tuple(files), reload)
        item.loaded = item.stamps()
        self._items.append(item)

    def start(self) -> None:
        if self._items and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tls-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._asked.set()
        if self._thread is not None:
            self._thread.join(_STOP_WAIT)

    def request(self) -> None:
        """Reload every watched context soon (SIGHUP); safe to call from a signal handler."""
        self._asked.set()

    def check_now(self, forced: bool = False) -> None:
        """One pass over the files in the caller's thread (tests and the watch thread)."""
        with self._lock:
            for item in self._items:
                self._check(item, forced)

    def _run(self) -> None:
        while not self._stopping.is_set():
            forced = self._asked.wait(self._interval)
            self._asked.clear()
            if self._stopping.is_set():
                return
            try:
                self.check_now(forced)
            except Exception:  # a bug here must not end the watching
                log.exception("checking the TLS certificate files failed")

    def _check(self, item: Reloadable, forced: bool) -> None:
        stamps = item.stamps()
        if not forced and stamps == item.loaded:
            return
        why = "on SIGHUP" if forced else "its files changed"
        try:
            item.reload()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problem = explain(exc)
            if forced or item.failed != (stamps, problem):
                log.error(
                    "cannot reload %s (%s) from %s: %s; the one in use stays",
                    item.what, why, ", ".join(item.files), problem,
                )  # fmt: skip
            item.failed = (stamps, problem)
            return
        item.loaded = stamps
        item.failed = None
        log.info("reloaded %s (%s)", item.what, why)
