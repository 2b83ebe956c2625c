"""Version string; kept import-free so `climc --version` stays fast."""
VERSION = "0.1.0"
