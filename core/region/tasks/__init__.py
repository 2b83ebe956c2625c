"""Region task classes (listed in core.tasks.registry)."""
