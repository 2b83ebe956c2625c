"""The ``aws`` driver: a cloud account's provider (sync) and a zone's hosted driver (instances)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.aws.compute import CAPABILITIES, VERSION, AwsHosted
from drivers.aws.provider import CAPABILITIES as PROVIDER_CAPABILITIES
from drivers.aws.provider import AwsProvider
from drivers.base import HostEnv


class AwsDriver:
    name = "aws"
    provider = "Aws"  # Cloudpods' brand name
    version = VERSION
    capabilities = CAPABILITIES  # of a zone's host (the host contract)
    provider_capabilities = PROVIDER_CAPABILITIES

    @classmethod
    def for_account(cls, config: Mapping[str, Any]) -> AwsProvider:
        return AwsProvider(config)

    @classmethod
    def for_host(cls, env: HostEnv) -> AwsHosted:
        return AwsHosted(env)
