"""Moving a running cluster to pgwarden: Patroni's configuration converted into a node config."""
