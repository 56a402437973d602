"""Fixtures shared by the integration tests (real etcd, PostgreSQL, HAProxy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.etcd import EtcdCluster


@pytest.fixture(scope="module")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A real 3-member etcd on 127.0.1.21-23, shared by one test module; stopped and removed after."""
    with EtcdCluster() as cluster:
        yield cluster
