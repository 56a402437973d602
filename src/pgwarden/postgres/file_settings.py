"""Reads which lines of the configuration files the running PostgreSQL refuses (pg_file_settings).

pg_file_settings parses the files anew on every query, so the agent asks only after it rendered
or reloaded them, or when the server restarted (controller.py decides when), never every probe.
"""

from __future__ import annotations

from pgwarden.model.node import PostgresSettings
from pgwarden.model.parameters import ParameterError
from pgwarden.postgres import sql

MAX_REPORTED = 20  # a file full of junk is reported by its first lines, not all of them
_MAX_TEXT = 300

# "setting could not be applied" is also what PostgreSQL says of a valid value that waits for a
# restart: those lines carry pending_restart in pg_settings (reported as such, not as errors).
# The last line setting a name is the one in force; earlier ones are not judged (applied = false,
# no error).
FILE_ERRORS_SQL = """
SELECT f.name, coalesce(f.setting, ''), f.error
FROM pg_file_settings AS f
LEFT JOIN pg_settings AS s ON lower(s.name) = lower(f.name)
WHERE f.error IS NOT NULL AND NOT coalesce(s.pending_restart, false)
ORDER BY f.seqno
LIMIT %s
"""

_MEANING = {
    "unrecognized configuration parameter": (
        "PostgreSQL applied none of the changes in the file while this line is there"
    ),
    "setting could not be applied": "the server keeps its previous value and refuses to start with this one",
}


def read_file_errors(settings: PostgresSettings, timeout: float) -> tuple[ParameterError, ...]:
    """The lines PostgreSQL refuses in its configuration files, each with what that means."""
    with sql.local_session(settings, timeout) as conn:
        rows = conn.execute(FILE_ERRORS_SQL, (MAX_REPORTED,)).fetchall()
    errors = []
    for name, value, error in rows:
        message = str(error)
        meaning = _MEANING.get(message)
        text = f"{message}: {meaning}" if meaning else message
        errors.append(ParameterError(str(name)[:_MAX_TEXT], str(value)[:_MAX_TEXT], text[:_MAX_TEXT]))
    return tuple(errors)
