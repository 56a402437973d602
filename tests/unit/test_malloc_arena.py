"""The agent's process asks glibc for one malloc arena: its threads' blocks share it (less memory
held apart per thread, docs/benchmarks.md), unless the user chose the arena count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # bench/ is imported from there

# In a fresh interpreter: optionally one arena, then threads that malloc blocks larger than Python's
# small-object limit (bytes of 4 KB), then the thread arenas /proc/self/smaps shows (bench's reading).
CHILD = """
import json, os, sys, threading
from pgwarden.daemon.malloc_arena import use_one_arena
from bench.agent_memory import _smaps
taken = use_one_arena() if sys.argv[1] == 'one' else None
def work():
    kept = [bytes(4096) for _ in range(200)]
    del kept[::2]
    done.wait()
done = threading.Event()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
kinds = _smaps(os.getpid())
done.set()
for t in threads:
    t.join()
print(json.dumps([taken, kinds['thread malloc arenas (count)']]))
"""


def _run(mode: str, **env: str) -> list[object]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**_clean_env(), **env},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    found: list[object] = json.loads(result.stdout)
    return found


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}


def test_threads_of_a_process_that_asked_for_one_arena_get_none_of_their_own() -> None:
    assert _run("one") == [True, 0]


def test_without_it_each_thread_gets_an_arena() -> None:
    # The control: the smaps reading does see thread arenas when glibc makes them.
    taken, arenas = _run("default")
    assert taken is None
    assert isinstance(arenas, int) and arenas >= 4


@pytest.mark.parametrize(
    "env", [{"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}], ids=["env", "tunable"]
)
def test_an_arena_count_the_user_chose_is_kept(env: dict[str, str]) -> None:
    taken, arenas = _run("one", **env)
    assert taken is False
    assert isinstance(arenas, int) and arenas >= 3  # the user's 4 arenas: the main one and 3 more
