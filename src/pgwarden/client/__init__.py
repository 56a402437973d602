"""Client side of a pgwarden cluster: find it, read it from etcd, and call its agents' REST APIs."""

from pgwarden.client.cluster_client import ApiAnswer, ClusterClient
from pgwarden.client.config_edit import (
    Assignment,
    ConfigEdit,
    apply_assignments,
    config_diff,
    config_document,
    config_yaml,
    parse_assignment,
    parse_value,
    plan_edit,
    plan_replacement,
)
from pgwarden.client.errors import (
    ApiRefused,
    ApiUnreachable,
    ClientError,
    ClusterNotFound,
    ConfigChanged,
    EtcdUnreachable,
    NoLeader,
    UnknownMember,
)
from pgwarden.client.rolling_restart import RollingRestart, Step, StepKind, plan_rolling_restart
from pgwarden.client.target import (
    DEFAULT_STACK_DIR,
    ClientTls,
    ClusterTarget,
    KnownNode,
    find_target,
    target_from_node_config,
    target_from_stack,
)

__all__ = [
    "DEFAULT_STACK_DIR",
    "ApiAnswer",
    "ApiRefused",
    "ApiUnreachable",
    "Assignment",
    "ClientError",
    "ClientTls",
    "ClusterClient",
    "ClusterNotFound",
    "ClusterTarget",
    "ConfigChanged",
    "ConfigEdit",
    "EtcdUnreachable",
    "KnownNode",
    "NoLeader",
    "RollingRestart",
    "Step",
    "StepKind",
    "UnknownMember",
    "apply_assignments",
    "config_diff",
    "config_document",
    "config_yaml",
    "find_target",
    "parse_assignment",
    "parse_value",
    "plan_edit",
    "plan_replacement",
    "plan_rolling_restart",
    "target_from_node_config",
    "target_from_stack",
]
