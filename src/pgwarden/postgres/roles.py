"""The database roles pgwarden needs, with passwords hashed client-side (SCRAM) so no log sees them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import psycopg
from psycopg import sql

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores for ``password`` (RFC 5802, as libpq computes it).

    PostgreSQL SASLprep-normalises passwords; plain ASCII passwords are unchanged by it.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def ensure_replication_role(
    conn: psycopg.Connection[tuple[object, ...]], username: str, password: str | None
) -> None:
    """CREATE or ALTER the role so it can log in for replication with ``password``."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
    verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
    auth: sql.Composable
    if password is None:
        auth = sql.SQL("")
    elif password.isascii():
        auth = sql.SQL(" PASSWORD {}").format(sql.Literal(scram_verifier(password)))
    else:
        auth = sql.SQL(" PASSWORD {}").format(sql.Literal(password))  # server applies SASLprep
    conn.execute(sql.SQL("{} ROLE {} WITH REPLICATION LOGIN").format(verb, sql.Identifier(username)) + auth)
