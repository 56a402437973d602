"""Background jobs (initdb, clone, rewind): wait while one runs, back off after one fails."""

from __future__ import annotations

from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason

# Seconds between retries of a failed clone or rewind: long enough not to hammer a struggling
# primary with base backups, short enough that a transient error heals without an operator.
RETRY_AFTER = 5.0


def job_in_progress(obs: Observation) -> Decision | None:
    """A clone, rewind or initdb is running: wait for it (the loop keeps reporting)."""
    job = obs.local.job
    if job is None or not job.running:
        return None
    progress = f" ({job.progress})" if job.progress else ""
    return act(Reason.JOB_IN_PROGRESS, job=job.kind.value, progress=progress)


def job_backoff(obs: Observation) -> Decision | None:
    """A job failed moments ago: wait RETRY_AFTER seconds before trying again."""
    job = obs.local.job
    if job is None or job.ok is not False:
        return None
    # The memory only learns of the failure in this cycle's decision, so the first cycle that sees
    # it counts from now; otherwise that cycle would retry at once and the backoff never start.
    failed_at = obs.now if obs.memory.job_failed_at is None else obs.memory.job_failed_at
    ago = obs.now - failed_at
    if ago >= RETRY_AFTER:
        return None
    return act(
        Reason.JOB_BACKOFF, job=job.kind.value, ago=ago, error=job.error or "?", wait=RETRY_AFTER - ago
    )
