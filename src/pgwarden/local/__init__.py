"""``pgwarden up`` / ``down``: a whole cluster (etcd x3, nodes, HAProxy) on loopback addresses."""
