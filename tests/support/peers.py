"""Skip-or-fail for tests that need a real peer (root, a Debian package, a server).

Locally a missing peer skips with a visible reason; with ``CLOUDPODS_TEST_FULL=1`` (set by
``.ci/run``, which installs every peer) a missing peer is a failure, so nothing silently passes.
"""
from __future__ import annotations

import os
import shutil

import pytest

FULL = os.environ.get("CLOUDPODS_TEST_FULL") == "1"


def need(condition: bool, reason: str) -> None:
    if condition:
        return
    if FULL:
        pytest.fail(f"peer missing in the full tier: {reason}")
    pytest.skip(reason)


def need_root() -> None:
    need(os.geteuid() == 0, "needs root (network namespaces, libvirtd)")


def need_binary(name: str, package: str) -> None:
    need(shutil.which(name) is not None, f"needs `{name}` (apt install {package})")
