"""The agent's I/O shell around the pure core: observe, decide, act, serve the snapshot."""
