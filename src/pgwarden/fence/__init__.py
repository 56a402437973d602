"""The fence: a small process beside PostgreSQL that stops it when the agent's lease deadline passes.

Standard library only (import-linter checks it): the fence must start, run and act cheaply, and
must not share the agent's failure modes (etcd, SQL, HTTP). The agent and the local stack import
the facts it shares with them from here: postmaster.pid, the deadline file, the fence's own files.
"""
