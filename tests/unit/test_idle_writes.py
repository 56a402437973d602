"""An idle member writes nothing to etcd: what it would write equals what it reads back, field for
field, so the loop's "etcd already has it" check (agent/loop.py, agent/execute.py) holds."""

from __future__ import annotations

import dataclasses

from pgwarden.agent.member_record import member_record
from pgwarden.dcs import codec
from pgwarden.model import LeaderStatus, Lsn, Slot, Tags
from tests.support.api_fakes import node_config
from tests.support.builders import primary_local, standby_local


def test_a_member_record_reads_back_equal_from_etcd() -> None:
    config = node_config("node2", Tags(failover_priority=3, nosync=True))
    pending = {"max_connections": ("100", "200")}
    relay = dataclasses.replace(standby_local(), slots={"node3": Slot(active=True)})
    for local in (primary_local(), standby_local(), relay):
        local = dataclasses.replace(local, pending_restart=True, pending_params=pending)
        record = member_record(config, local, scheduled_restart=1_800_000_000.5)
        assert codec.decode_member(codec.encode_member(record)) == record


def test_the_leaders_status_reads_back_equal_from_etcd() -> None:
    status = LeaderStatus("node1", 3, Lsn.parse("0/5000A28"), members=frozenset({"node1", "node2"}))
    assert codec.decode_status(codec.encode_status(status)) == status
