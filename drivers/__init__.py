"""Drivers behind small protocols; see drivers/base.py and drivers/registry.py."""
