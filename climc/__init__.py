"""climc: the user command line."""
