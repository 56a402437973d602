"""What this node's PostgreSQL refuses of its configuration: the trial's verdict on the parameters
about to be rendered (parameter_check.py), and pg_file_settings' errors (file_settings.py).

Both are asked only when something changed: the trial when the parameters do, pg_file_settings
after a render or reload changed the files, when the postmaster restarted, or when the settings
waiting for a restart changed (a value only pending is no error).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping

from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.model.local import LocalState
from pgwarden.model.node import PostgresSettings
from pgwarden.model.parameters import ParameterError, ParamValue
from pgwarden.postgres import settings as conf
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.file_settings import read_file_errors
from pgwarden.postgres.parameter_check import check_parameters

log = logging.getLogger(__name__)


class ConfigRefusals:
    """One node's refusals, kept between probes; safe to share between threads."""

    def __init__(self, settings: PostgresSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._refused: dict[str, str] = {}  # name -> PostgreSQL's message: left out of pgwarden.conf
        self._checked: tuple[str, ...] | None = None  # the rendered lines that verdict is for
        self._generation = 0  # renders that changed the files, and reloads
        self._file_errors: tuple[ParameterError, ...] = ()
        self._file_errors_for: tuple[int, int | None, frozenset[str]] | None = None

    def refused(self, parameters: Mapping[str, ParamValue]) -> dict[str, str]:
        """The parameters (as rendered into pgwarden.conf) PostgreSQL refuses, asked (~15 ms) only
        when they differ from the last ones asked about."""
        lines = tuple(conf.render_line(name, value) for name, value in parameters.items())
        with self._lock:
            if lines != self._checked:
                check = check_parameters(self._settings, parameters)
                self._refused, self._checked = dict(check.problems), lines
                for name, message in self._refused.items():
                    log.error("parameter %s left out of %s: %s", name, conf.CONF_FILE, message)
            return dict(self._refused)

    def files_changed(self) -> None:
        """The files were rewritten or PostgreSQL reloaded them: pg_file_settings is asked again."""
        with self._lock:
            self._generation += 1

    def report(self, state: LocalState, parameters: Mapping[str, ParamValue], timeout: float) -> LocalState:
        """``state`` with ``config_errors``: what was left out of ``parameters``, then pg_file_settings'
        errors (read again only when something could have changed them)."""
        with self._lock:
            generation, refused = self._generation, dict(self._refused)
        if state.probe_ok:
            key = (generation, postmaster_pid(self._settings.data_dir), frozenset(state.pending_params))
            if key != self._file_errors_for:
                try:
                    self._file_errors, self._file_errors_for = read_file_errors(self._settings, timeout), key
                except PostgresError as exc:  # asked again at the next probe
                    log.debug("cannot read pg_file_settings: %s", exc)
        elif not state.running:
            self._file_errors, self._file_errors_for = (), None
        left_out = tuple(
            ParameterError(name, conf.render_value(value), f"{refused[name]}; left out of {conf.CONF_FILE}")
            for name, value in parameters.items()
            if name in refused
        )
        return dataclasses.replace(state, config_errors=left_out + self._file_errors)
