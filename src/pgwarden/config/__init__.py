"""Config loading: node YAML files and the cluster's dynamic config, validated into model values."""

from pgwarden.config.dynamic import dynamic_config_to_dict, merge_patch, parse_dynamic_config
from pgwarden.config.env import ENV_VARIABLES
from pgwarden.config.errors import ConfigError, ConfigIssue
from pgwarden.config.example import example_node_config
from pgwarden.config.fields import parse_address, parse_byte_size
from pgwarden.config.node import load_node_config, parse_node_config

__all__ = [
    "ENV_VARIABLES",
    "ConfigError",
    "ConfigIssue",
    "dynamic_config_to_dict",
    "example_node_config",
    "load_node_config",
    "merge_patch",
    "parse_address",
    "parse_byte_size",
    "parse_dynamic_config",
    "parse_node_config",
]
