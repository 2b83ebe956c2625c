"""ocadm: the operator command line."""
