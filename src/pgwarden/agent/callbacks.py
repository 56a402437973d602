"""Runs the node's callback commands on PostgreSQL life-cycle events, in the background, with a timeout.

Which events a cycle caused is a pure function of the actions it carried out and the role
PostgreSQL last ran in (``callback_events``), so it is tested by tables. Each command runs as
``command <event> <role> <cluster>`` (Patroni's argument order) in its own session, with an
environment of its own (``callback_environment``: no secret of the agent's reaches it), never
blocking the loop; it is killed with its whole process group after ``callback_timeout`` seconds,
and its output is logged. At most one command runs per event: a newer event of the same kind
replaces (kills) a running older one, because only the latest state matters to a VIP manager or
a connection pooler (a stale "I am primary" must never finish after "I am a replica").
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pgwarden import own_children
from pgwarden.agent.guard import ErrorCounts, survive
from pgwarden.ha import actions as a
from pgwarden.model import LocalState, Role

log = logging.getLogger(__name__)

EVENTS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")
# What a callback inherits from the agent's environment: where programs are, and the language and
# time zone of its messages. Nothing else: the agent's environment carries secrets
# (PGWARDEN_*_PASSWORD, PGPASSWORD, cloud credentials...) that a VIP or pooler script has no use
# for, and would hand to every program it runs.
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTPUT_LIMIT = 4000  # characters of a command's output kept for the log
_REAP_TIMEOUT = 5.0  # after a kill, how long to wait for the output pipe to close


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    event: str  # one of EVENTS
    role: Role


def role_seen(local: LocalState) -> Role | None:
    """The role a running PostgreSQL serves in, or None when it is not serving."""
    if local.is_primary:
        return Role.PRIMARY
    if local.is_standby:
        return Role.REPLICA
    return None


def callback_events(
    executed: Sequence[a.Action], before: Role | None, running: bool = False
) -> tuple[list[CallbackEvent], Role | None]:
    """The events the carried-out ``executed`` actions caused, and the role PostgreSQL runs in after.

    ``before`` is the role PostgreSQL last ran in (None: never seen running) and ``running``
    whether its postmaster was alive when the cycle began: a start of a running server (one still
    starting, asked again) changes nothing. A stop and a start in one decision is a restart; a
    start in another role than before is a role change (the old primary of a switchover starting
    as a standby); a promotion or demotion always is one.
    """
    events: list[CallbackEvent] = []
    role = before
    stopped = False
    for action in executed:
        if isinstance(action, a.Promote):
            role = Role.PRIMARY
            events.append(CallbackEvent("on_role_change", role))
        elif isinstance(action, a.Demote) or (isinstance(action, a.Follow) and role is Role.PRIMARY):
            role, running = Role.REPLICA, running and isinstance(action, a.Follow)
            events.append(CallbackEvent("on_role_change", role))
        elif isinstance(action, a.StopPostgres):
            stopped, running = stopped or running, False
        elif isinstance(action, a.StartPrimary | a.StartStandby) and not running:
            started = Role.PRIMARY if isinstance(action, a.StartPrimary) else Role.REPLICA
            if role is not None and role is not started:
                events.append(CallbackEvent("on_role_change", started))
            else:
                events.append(CallbackEvent("on_restart" if stopped else "on_start", started))
            role, stopped, running = started, False, True
        elif isinstance(action, a.ReloadPostgres | a.ApplyParameters):
            events.append(CallbackEvent("on_reload", role or Role.REPLICA))
    if stopped:
        events.append(CallbackEvent("on_stop", role or Role.REPLICA))
    return _once(events), role


def _once(events: Iterable[CallbackEvent]) -> list[CallbackEvent]:
    """Each event once per cycle (two reloads in one decision are one reload to a listener)."""
    seen: list[CallbackEvent] = []
    for event in events:
        if event not in seen:
            seen.append(event)
    return seen


def callback_environment(
    event: CallbackEvent, cluster: str, member: str, api_url: str, inherited: Mapping[str, str]
) -> dict[str, str]:
    """The whole environment of one callback (docs/configuration.md lists it): PATH, LANG, LC_ALL
    and TZ from the agent's own, HOME, USER and LOGNAME of the account the agent runs as, and the
    facts of the event as ``PGWARDEN_EVENT``, ``_ROLE``, ``_CLUSTER``, ``_MEMBER``, ``_API_URL``."""
    env = {name: inherited[name] for name in INHERITED if name in inherited}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    try:
        account = pwd.getpwuid(os.geteuid())
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    except KeyError:  # a UID without a passwd entry (some containers)
        env["HOME"] = "/"
    env.update(
        PGWARDEN_EVENT=event.event,
        PGWARDEN_ROLE=event.role.value,
        PGWARDEN_CLUSTER=cluster,
        PGWARDEN_MEMBER=member,
        PGWARDEN_API_URL=api_url,
    )
    return env


def missing_commands(commands: Mapping[str, str]) -> list[str]:
    """Warnings for commands whose program cannot be found (they fail, logged, when they run)."""
    problems = []
    for event, command in sorted(commands.items()):
        program = shlex.split(command)[0]
        found = os.access(program, os.X_OK) if "/" in program else shutil.which(program) is not None
        if not found:
            problems.append(
                f"callback {event}: {program} is not an executable file; it will fail when it runs"
            )
    return problems


class _Run:
    """One command invocation: started in its own thread and session, killed on timeout or replacement."""

    def __init__(self, argv: list[str], env: Mapping[str, str], timeout: float) -> None:
        self.argv = argv
        self.env = dict(env)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._replaced = False
        self.finished = threading.Event()

    @property
    def label(self) -> str:
        return f"callback {self.argv[-3]} ({shlex.join(self.argv)})"

    def replace(self) -> None:
        """A newer event of the same kind arrived: stop this one."""
        with self._lock:
            self._replaced = True
            process = self._process
        if process is not None:
            _kill_group(process)

    def execute(self) -> None:
        try:
            self._execute()
        finally:
            self.finished.set()

    def _execute(self) -> None:
        started = time.monotonic()
        try:
            process = own_children.start(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group, so a kill reaches its children
            )
        except OSError as exc:
            log.error("%s cannot run: %s", self.label, exc)
            return
        with self._lock:
            self._process = process
            replaced = self._replaced
        if replaced:
            _kill_group(process)
        try:
            output, _ = process.communicate(timeout=self.timeout)
            verdict = f"exited with {process.returncode}"
        except subprocess.TimeoutExpired:
            _kill_group(process)
            output = _reap(process)
            verdict = f"killed after its timeout of {self.timeout:g}s"
        finally:
            own_children.forget(process)
        if self._replaced:
            verdict = "killed: a newer event of the same kind replaced it"
        level = logging.INFO if process.returncode == 0 else logging.WARNING
        log.log(level, "%s %s in %.1fs", self.label, verdict, time.monotonic() - started)
        text = (output or "").strip()
        if text:
            log.log(level, "%s output:\n%s", self.label, text[-_OUTPUT_LIMIT:])


def _kill_group(process: subprocess.Popen[str]) -> None:
    # The group is the one this runner created for the command (start_new_session); its ID is the
    # command's own PID, which stays reserved until we reap it.
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _reap(process: subprocess.Popen[str]) -> str:
    try:
        output, _ = process.communicate(timeout=_REAP_TIMEOUT)
        return output or ""
    except subprocess.TimeoutExpired:
        # A child that left the group still holds the output pipe: stop reading, keep no zombie.
        process.wait(_REAP_TIMEOUT)
        return ""


class CallbackRunner:
    """The node's callbacks: ``fire`` returns at once; each command runs in a thread of its own."""

    def __init__(
        self,
        commands: Mapping[str, str],
        cluster: str,
        timeout: float,
        member: str = "",
        api_url: str = "",
        inherited: Mapping[str, str] | None = None,
        errors: ErrorCounts | None = None,
    ) -> None:
        self._errors = errors or ErrorCounts()
        self._commands = {event: command for event, command in commands.items() if event in EVENTS}
        self._cluster = cluster
        self._timeout = timeout
        self._member = member
        self._api_url = api_url
        # Only the INHERITED names are ever read from it; os.environ when not given (tests give one).
        self._inherited = os.environ if inherited is None else inherited
        self._lock = threading.Lock()
        self._running: dict[str, _Run] = {}  # the latest run of each event
        # Every run not yet finished, replaced ones too: a replaced command is still being killed,
        # reaped and logged, and `wait` (the agent's clean stop) must not return before it is.
        self._live: set[_Run] = set()

    def use(self, commands: Mapping[str, str], timeout: float) -> None:
        """A reloaded node config: the next event runs the new command (running ones go on)."""
        with self._lock:
            self._commands = {event: command for event, command in commands.items() if event in EVENTS}
            self._timeout = timeout

    def fire(self, events: Iterable[CallbackEvent]) -> None:
        for event in events:
            self.run(event)

    def run(self, event: CallbackEvent) -> None:
        with self._lock:
            command, timeout = self._commands.get(event.event), self._timeout
        if not command:
            return
        argv = [*shlex.split(command), event.event, event.role.value, self._cluster]
        env = callback_environment(event, self._cluster, self._member, self._api_url, self._inherited)
        run = _Run(argv, env, timeout)
        with self._lock:
            previous = self._running.get(event.event)
            self._running[event.event] = run
            self._live.add(run)
        if previous is not None and not previous.finished.is_set():
            previous.replace()
        log.info("running %s", run.label)
        threading.Thread(
            target=self._execute, args=(run, event.event), name=f"{event.event}", daemon=True
        ).start()

    def _execute(self, run: _Run, event: str) -> None:
        survive(f"callback {event}", self._errors, run.execute)
        with self._lock:
            self._live.discard(run)
            if self._running.get(event) is run:
                del self._running[event]

    def wait(self, timeout: float) -> bool:
        """Wait until no command runs (at most ``timeout`` seconds); True when none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                runs = [run for run in self._live if not run.finished.is_set()]
            if not runs:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            runs[0].finished.wait(remaining)
