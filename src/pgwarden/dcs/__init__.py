"""The consensus store: the `Store` seam, its etcd and in-memory implementations, the cluster key layout."""
