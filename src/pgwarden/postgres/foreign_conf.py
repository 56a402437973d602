"""A postgresql.conf that Patroni wrote, put back to the original it includes when pgwarden takes over.

Patroni moves initdb's postgresql.conf to postgresql.base.conf and writes its own postgresql.conf:
``include 'postgresql.base.conf'`` and then every setting it manages (listen_addresses, the
recovery settings, its parameters). Left in place, those settings would keep acting under
pgwarden's (pgwarden.conf is included last, so it wins for what it sets, but a parameter removed
from the cluster's config would live on from Patroni's file). So pgwarden's postgresql.conf
becomes the original's text again, as after an initdb of its own, plus its include line.
postgresql.base.conf stays where it is: Patroni, should it be started again, rewrites
postgresql.conf from it (the way back in docs/migrating-from-patroni.md).
"""

from __future__ import annotations

import re
from pathlib import Path

PATRONI_HEADER = "# It will be overwritten by Patroni!"
_INCLUDE = re.compile(r"^\s*include\s*=?\s*'((?:[^']|'')+)'\s*(#.*)?$")
_HEAD_LINES = 5  # Patroni's header is the first lines of the file


def written_by_patroni(text: str) -> bool:
    return any(line.strip() == PATRONI_HEADER for line in text.splitlines()[:_HEAD_LINES])


def original_text(data_dir: Path, text: str) -> tuple[str, Path] | None:
    """For a postgresql.conf Patroni wrote: the text of the file it includes first, and its path;
    None for any other file, or when that original cannot be read (then nothing is replaced)."""
    if not written_by_patroni(text):
        return None
    for line in text.splitlines():
        found = _INCLUDE.match(line)
        if found is None:
            continue
        path = Path(found.group(1).replace("''", "'"))
        path = path if path.is_absolute() else data_dir / path
        try:
            return path.read_text(), path
        except (OSError, UnicodeDecodeError):
            return None
    return None
