"""A complete, commented example node config, for the docs and the CLI."""

from __future__ import annotations

_EXAMPLE = """\
# pgwarden node config: one file per node, read by `pgwarden agent -c node.yml`.
# Any value marked (env) can be overridden by an environment variable, e.g.
# PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_PASSWORD keeps a password out of this file.

cluster: main                 # (env PGWARDEN_CLUSTER) the same on every node of the cluster
name: node1                   # (env PGWARDEN_NAME) unique per node: letters, digits, _ . -
                              # and unique as a slot name: lowercase, with - and . read as _
log_level: INFO               # DEBUG, INFO, WARNING, ERROR or CRITICAL
log_format: text              # text, or json: one JSON object per line (reason_code, member, ...)

etcd:
  # (env PGWARDEN_ETCD_HOSTS, comma-separated) every etcd member, as host:port
  hosts: [127.0.0.21:2379, 127.0.0.22:2379, 127.0.0.23:2379]
  prefix: /pgwarden           # keys live under <prefix>/<cluster>/
  bind_address: 127.0.0.11    # optional source address for this agent's connections

api:                          # the REST API that HAProxy health-checks
  listen: 127.0.0.11:8008     # (env PGWARDEN_API_LISTEN)
  # The address other nodes and HAProxy use; defaults to listen, and is required when
  # listen is a wildcard such as 0.0.0.0:8008.
  connect_address: 127.0.0.11:8008
  auth:                       # optional: HTTP basic auth for write operations
    username: admin
    password: change-me       # (env PGWARDEN_API_AUTH_PASSWORD)
  # tls: {certfile: /etc/pgwarden/api.crt, keyfile: /etc/pgwarden/api.key}

postgresql:
  listen: 127.0.0.11:5432     # (env PGWARDEN_POSTGRESQL_LISTEN)
  connect_address: 127.0.0.11:5432
  data_dir: /var/lib/postgresql/15/main   # (env PGWARDEN_POSTGRESQL_DATA_DIR) the data directory itself
  bin_dir: /usr/lib/postgresql/15/bin
  # run_as: postgres          # only when the agent runs as root
  socket_dir: /var/run/postgresql
  authentication:
    superuser:
      username: postgres
      password: change-me     # (env PGWARDEN_POSTGRESQL_AUTHENTICATION_SUPERUSER_PASSWORD)
    replication:
      username: replicator
      password: change-me     # (env PGWARDEN_POSTGRESQL_AUTHENTICATION_REPLICATION_PASSWORD)
  parameters:                 # settings for this node only; cluster-wide ones go in bootstrap.dcs
    shared_buffers: 128MB
  pg_hba:
    - host all all 127.0.0.0/8 scram-sha-256
    - host replication replicator 127.0.0.0/8 scram-sha-256

tags:
  nofailover: false           # true: never promote this node
  noloadbalance: false        # true: /replica answers 503, so HAProxy sends no reads here
  nosync: false               # true: never a synchronous standby
  failover_priority: 1        # among equally up-to-date candidates, higher wins; 0 = never
  # any other key is a custom tag, matched by /replica?tag_<key>=<value>
  datacenter: dc1

bootstrap:
  # The cluster-wide dynamic config, written to etcd once when the cluster is created and then
  # edited live with `pgwarden edit-config` or PATCH /config.
  dcs:
    ttl: 30                   # seconds the leader key lives without renewal (etcd minimum: 2)
    loop_wait: 10             # seconds between HA loop runs
    retry_timeout: 10         # loop_wait + 2 * retry_timeout must not exceed ttl
    maximum_lag_on_failover: 1MB   # a standby further behind than this never promotes
    primary_start_timeout: 300
    synchronous_mode: off     # off | on | quorum (strict = on with synchronous_fallback: block)
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      parameters:             # cluster-wide PostgreSQL settings
        max_connections: 200
        wal_level: replica
"""


def example_node_config() -> str:
    """A commented node config that loads as it is (loopback addresses, placeholder passwords)."""
    return _EXAMPLE
