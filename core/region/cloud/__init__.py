"""Public clouds: cloud accounts and providers (accounts.py), the sync (sync.py, apply.py)."""
