"""``pgwarden doctor``: gather the facts (gather.py), judge them (checks/), report (findings.py)."""
