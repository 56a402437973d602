"""Reason codes for decisions, each with the sentence that logs, the API and the CLI show."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class Reason(Enum):
    # store
    STORE_UNREACHABLE = "etcd unreachable; not a leader, so nothing to protect; waiting"
    STORE_UNREACHABLE_LEASE_VALID = (
        "etcd unreachable; my lease is still valid for {remaining:.1f}s; keeping the primary"
    )
    STORE_UNREACHABLE_DEMOTING = "etcd unreachable and my lease ran out; demoting to stop writes"
    STORE_UNREACHABLE_PAUSED = "etcd unreachable; cluster paused, taking no action"
    STORE_UNREACHABLE_FAILSAFE = (
        "etcd unreachable; failsafe mode: asking {members} to promise they promote no one; "
        "I may write for {remaining:.1f}s more"
    )
    STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE = (
        "etcd unreachable; failsafe mode cannot keep the primary ({why}); "
        "my lease is still valid for {remaining:.1f}s"
    )
    # failsafe mode (a member's side)
    FAILSAFE_PROMISE_HOLDING = (
        "I promised {leader} (failsafe mode) to promote no one and follow no one else for "
        "{remaining:.1f}s more; waiting"
    )
    FAILSAFE_PROMISE_DEMOTING = (
        "I promised {leader} (failsafe mode) to promote no one, yet I run read-write; demoting at once"
    )
    # membership
    SLOT_NAME_TAKEN = (
        "my name {name} gives the replication slot name {slot}, which member {rival} already has; "
        "not joining (no clone, no slot, no race) until one of them is renamed"
    )
    # the leader key present but unreadable (junk written by hand): still held by someone
    LEADER_KEY_REWRITING = (
        "the leader key in etcd is unreadable ({why}); I hold the leader lease: rewriting it"
    )
    LEADER_KEY_UNREADABLE_DEMOTING = (
        "the leader key in etcd is unreadable ({why}) and the lease is not mine; demoting: "
        "only the key's holder may write"
    )
    LEADER_KEY_UNREADABLE_WAITING = (
        "the leader key in etcd is unreadable ({why}); someone holds it; waiting for its holder to rewrite it"
    )
    # the agent's own loop (never returned by decide: the loop reports it when a cycle raised)
    INTERNAL_ERROR = (
        "internal error in the HA loop ({count} in a row): {error}; retrying in {wait:.1f}s, "
        "PostgreSQL left as it is (the lease guard still stops a primary whose lease runs out)"
    )
    # jobs
    JOB_IN_PROGRESS = "{job} in progress{progress}"
    JOB_BACKOFF = "{job} failed {ago:.0f}s ago ({error}); retrying in {wait:.0f}s"
    # operator requests (REST API / CLI on this node)
    REQUEST_REFUSED = "{request} refused: {why}"
    RESTARTING = "restarting PostgreSQL ({role}) as requested"
    RELOADING = "reloading PostgreSQL's configuration as requested"
    REINITIALIZING = "reinitializing as requested: removing the data directory and cloning from {source}"
    # bootstrap
    BOOTSTRAP_RACING = "cluster not initialized; racing to bootstrap it"
    BOOTSTRAP_BY_OTHER = "cluster being bootstrapped by {member}; waiting"
    BOOTSTRAP_INITDB = "won the bootstrap race; running initdb"
    BOOTSTRAP_INITDB_FAILED = "initdb failed ({error}); giving up the bootstrap so another can try"
    BOOTSTRAP_STARTING = "bootstrap: taking the leader key and starting the new primary"
    BOOTSTRAP_FINISHING = "bootstrap: primary running; publishing the system identifier"
    BOOTSTRAP_ADOPTING_PRIMARY = (
        "etcd knows no cluster but my PostgreSQL runs as primary; taking the key and publishing its system id"
    )
    BOOTSTRAP_STANDBY_WAITING = (
        "etcd knows no cluster and my data directory is a standby's; waiting for its primary to "
        "publish the cluster (a standby never creates one)"
    )
    BOOTSTRAP_WAITING_FOR_START = "bootstrap: waiting for the new primary to accept connections"
    NOT_BOOTSTRAPPING_NOFAILOVER = "cluster not initialized; tagged nofailover, so not bootstrapping"
    NOT_BOOTSTRAPPING_DATA_INCOMPLETE = (
        "cluster not initialized and the data directory is incomplete; refusing to bootstrap over it"
    )
    # data directory
    DATA_DIRECTORY_NOT_OURS = (
        "refusing to remove or clone over the data directory: {why}; leaving it untouched "
        "(fix postgresql.data_dir, or move the files away so pgwarden can clone into it)"
    )
    FOREIGN_DATA_DIRECTORY = (
        "data directory belongs to system {local_id}, the cluster is {cluster_id}; refusing to touch it"
    )
    # leader is me
    LEADER_HEALTHY = "I am the leader with the lock; primary healthy"
    LEADER_PROMOTING = "I hold the leader key but run as a standby; promoting"
    LEADER_ADOPTING = "the leader key carries my name from before; taking it over with a new lease"
    LEADER_LEASE_EXPIRED_DEMOTING = "my leader lease ran out before I could renew it; demoting"
    PRIMARY_STARTING = "I hold the leader key; PostgreSQL not serving for {down:.1f}s; starting it"
    PRIMARY_WAITING = "I hold the leader key; PostgreSQL not serving for {down:.1f}s; waiting"
    PRIMARY_START_TIMEOUT_RELEASING = (
        "PostgreSQL not serving for {down:.1f}s (primary_start_timeout {timeout:.0f}s); "
        "stopping it and releasing the leader key so a standby can take over"
    )
    # switchover (the leader's half; the candidate's is under "no leader")
    SWITCHOVER_WAITING_FOR_STREAMING = (
        "switchover to {candidate}: waiting for it to stream from me before stopping; primary healthy"
    )
    SWITCHOVER_STOPPING = "switchover to {candidate}: checkpointing, then stopping PostgreSQL cleanly"
    SWITCHOVER_WAITING_FOR_CANDIDATE = (
        "switchover to {candidate}: stopped at checkpoint {checkpoint}; waiting for {candidate} to "
        "replay past it (replayed: {replayed})"
    )
    SWITCHOVER_HANDING_OVER = (
        "switchover to {candidate}: it replayed past my shutdown checkpoint {checkpoint}; "
        "releasing the leader key to it"
    )
    SWITCHOVER_ABANDONED = "switchover abandoned: {why}"
    LEADER_PAUSED = "I am the leader; cluster paused, taking no automatic action"
    WATCHDOG_REQUIRED_RELEASING = (
        "I hold the leader key, but the watchdog is required and cannot be used; stepping down"
    )
    # someone else leads
    ROGUE_PRIMARY_DEMOTING = "{leader} holds the leader key but I run read-write; demoting at once"
    CLONING = "no data directory; cloning from {source}"
    INCOMPLETE_DATA_RECLONING = (
        "data directory incomplete (interrupted clone?); removing it and re-cloning from {source}"
    )
    CLONE_SOURCE_NOT_READY = "no data directory; waiting for {source} to run before cloning"
    REWINDING = "my timeline {timeline} forked from the leader's {leader_timeline}; rewinding from {source}"
    REWIND_DISABLED_RECLONING = (
        "timeline forked and pg_rewind is not usable ({why}); re-cloning from {source}"
    )
    REWIND_IMPOSSIBLE_WAITING = (
        "timeline forked and pg_rewind is not usable ({why}); removing the data directory is not "
        "allowed (remove_data_directory_on_diverged_timelines); an operator must reinitialize"
    )
    REWIND_RETRYING = "pg_rewind failed ({error}); trying again from {source}"
    WAITING_FOR_LEADER = "{leader} holds the leader key but does not run as primary yet; waiting to start"
    STARTING_AS_STANDBY = "starting as a standby of {upstream}"
    STOPPING_DIVERGED_STANDBY = "diverged from the leader on timeline {timeline} ({why}); stopping to rewind"
    FOLLOWING_NEW_UPSTREAM = "following {upstream} (was {previous})"
    STANDBY_HEALTHY = "standby of {upstream}; nothing to do"
    STANDBY_WAITING_FOR_RELAY_SLOT = (
        "standby of {upstream}; switching to {target} (replicatefrom) once it lists my slot ({why})"
    )
    STANDBY_REPLICATEFROM_UNAVAILABLE = (
        "standby of {upstream}; replicatefrom {relay} is not a running standby of this cluster"
    )
    STANDBY_RECORDING_TIMELINE = (
        "standby of {upstream} on timeline {timeline}; a restartpoint records it in pg_control"
    )
    STANDBY_WAITING_FOR_POSTGRES = "PostgreSQL starting or not answering; waiting"
    FOLLOWER_PAUSED = "cluster paused; following {leader} but taking no automatic action"
    # no leader
    NO_LEADER_PAUSED = "no leader; cluster paused, so no failover"
    NO_LEADER_PRIMARY_REACQUIRING = "no leader key, and I run the primary; taking the key back"
    NO_LEADER_SUPERSEDED_PRIMARY_DEMOTING = (
        "no leader key; I run a primary on timeline {mine}, but the cluster reached timeline {newest} "
        "without me; demoting"
    )
    NO_LEADER_STARTING_READ_ONLY = "no leader; starting PostgreSQL read-only to be a candidate"
    NO_LEADER_I_AM_HEALTHIEST = (
        "no leader; I am the healthiest of {candidates} reachable candidates; acquiring"
    )
    NOT_RACING_NOFAILOVER = "no leader; tagged nofailover, not racing"
    NOT_RACING_WATCHDOG = (
        "no leader; the watchdog is required and cannot be used: not racing, and no primary kept"
    )
    NOT_RACING_NOT_RUNNING = "no leader; my PostgreSQL is not a running standby, not racing"
    NOT_RACING_LAG = (
        "no leader; I am {lag} bytes behind the leader's last position {leader_lsn} "
        "(maximum_lag_on_failover {limit}), not racing"
    )
    NOT_RACING_BEHIND_TIMELINE = (
        "no leader; the cluster reached timeline {newest} while I am on {mine}, not racing"
    )
    NOT_RACING_NOT_SYNC = "no leader; synchronous mode forbids my promotion: {why}; not racing"
    NOT_RACING_PEER_BETTER = "no leader; {peer} is a better candidate ({why}), not racing"
    NOT_RACING_SWITCHOVER = "no leader; {kind} to {candidate} in progress, not racing"
    SWITCHOVER_TAKING_OVER = "{kind} to me requested and no leader; acquiring the key and promoting"
    NOT_RACING_PRIMARY_ALIVE = "no leader key, but {peer} still runs as primary; waiting for it"
    COLD_START_WAITING = (
        "no leader since I started (a full restart?); waiting up to {left:.0f}s more for {missing} "
        "before racing (cold_start_timeout)"
    )
    COLD_START_GAVE_UP = (
        "no leader since I started; {missing} did not answer within cold_start_timeout "
        "({waited:.0f}s); I am the healthiest of {candidates} reachable candidates; acquiring"
    )
    NOT_RACING_FAILSAFE_RESTARTED = (
        "no leader; my agent started {age:.1f}s ago and may have promised a failsafe leader before "
        "(promises last ttl {ttl:.0f}s), not racing"
    )
    NOT_RACING_OUTSIDE_FAILSAFE_TOPOLOGY = (
        "no leader; I am not in the failsafe topology the leader published ({members}), not racing"
    )
    NOT_RACING_FAILSAFE_TOPOLOGY_UNREADABLE = (
        "no leader; the failsafe topology in etcd is unreadable ({why}): I cannot tell whether I "
        "am in it, not racing (a leader republishes it; failsafe_mode off lifts this)"
    )
    # live dynamic config and scheduled restarts
    PARAMETERS_APPLYING = "{steady}; cluster parameters changed ({names}): writing them and reloading"
    SCHEDULED_RESTART = "restarting PostgreSQL ({role}) as scheduled {late:.0f}s ago"
    SCHEDULED_RESTART_MOOT = "the restart scheduled {late:.0f}s ago is moot: {why}; forgetting it"

    @property
    def from_the_loop(self) -> bool:
        """Reported by the agent's loop itself, never by a rule of ``decide``."""
        return self is Reason.INTERNAL_ERROR

    def render(self, detail: Mapping[str, object]) -> str:
        try:
            return self.value.format(**detail)
        except (KeyError, ValueError, IndexError):
            return f"{self.name} {dict(detail)}"
