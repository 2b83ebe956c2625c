"""One manager per region resource (see core.region.registry for the table)."""
