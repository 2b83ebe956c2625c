"""The ``cloudpods`` driver: another Cloudpods controller's account (sync) and its zones (servers)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.base import HostEnv
from drivers.cloudpods.compute import CAPABILITIES, VERSION, CloudpodsHosted
from drivers.cloudpods.provider import CAPABILITIES as PROVIDER_CAPABILITIES
from drivers.cloudpods.provider import CloudpodsProvider


class CloudpodsDriver:
    name = "cloudpods"
    provider = "Cloudpods"
    version = VERSION
    capabilities = CAPABILITIES
    provider_capabilities = PROVIDER_CAPABILITIES

    @classmethod
    def for_account(cls, config: Mapping[str, Any]) -> CloudpodsProvider:
        return CloudpodsProvider(config)

    @classmethod
    def for_host(cls, env: HostEnv) -> CloudpodsHosted:
        return CloudpodsHosted(env)
