"""The scheduling request: Cloudpods' flat ``ScheduleInput``, validated by pydantic at the edge.

Field names follow Cloudpods (``vcpu_count``, ``vmem_size`` in MB, ``disks``, ``networks``,
``prefer_zone``, ``prefer_host``, ``schedtags``, ``instance_groups``, ``count``); the spellings
Cloudpods' server-create body uses (``nets``, ``groups``, ``prefer_zone_id``, ``prefer_host_id``,
``backend``/``storage``) are accepted as aliases. Unknown fields are ignored, as Cloudpods does.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from core.api.inputs import reject_bool_numbers

Strategy = Literal["require", "exclude", "prefer", "avoid"]
TagTarget = Literal["hosts", "storages", "networks", "zones"]

# Cloudpods' hypervisor names -> the host_type that runs them
HYPERVISOR_HOST_TYPES: dict[str, str] = {
    "kvm": "hypervisor", "baremetal": "baremetal", "esxi": "esxi", "container": "container",
    "pod": "container",
    # public clouds: each synced zone is an executor host of the cloud's driver (core/region/cloud)
    "aws": "aws", "cloudpods": "cloudpods",
}

_MAX_COUNT = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        reject_bool_numbers(cls, data)  # ``vcpu_count: true`` is not 1 vCPU
        return data


class DiskConfig(_Model):
    index: int | None = Field(default=None, ge=0)
    size: int = Field(default=10240, ge=1, description="MB")
    storage_type: str | None = Field(default=None, validation_alias=AliasChoices("storage_type", "backend"))
    medium: str | None = Field(default=None, validation_alias=AliasChoices("medium", "medium_type"))
    storage_id: str | None = Field(default=None, validation_alias=AliasChoices("storage_id", "storage"))
    image_id: str | None = None
    disk_type: str | None = None


class NetworkConfig(_Model):
    index: int | None = Field(default=None, ge=0)
    network: str | None = Field(default=None, validation_alias=AliasChoices("network", "network_id"))
    wire: str | None = Field(default=None, validation_alias=AliasChoices("wire", "wire_id"))
    address: str | None = None


class SchedtagConfig(_Model):
    id: str = Field(min_length=1)
    strategy: Strategy
    resource_type: TagTarget = "hosts"

    @field_validator("resource_type", mode="before")
    @classmethod
    def _plural(cls, v: Any) -> Any:
        # Cloudpods sends both "host" and "hosts"
        if isinstance(v, str) and v in ("host", "storage", "network", "zone"):
            return v + "s"
        return v


class QuotaHeadroom(_Model):
    """What the project may still use; ``None`` means unlimited."""

    count: int | None = Field(default=None, ge=0)
    vcpu: int | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=0, description="MB")
    storage: int | None = Field(default=None, ge=0, description="MB")


class ScheduleInput(_Model):
    vcpu_count: int = Field(default=1, ge=1, le=1024)
    vmem_size: int = Field(default=1024, ge=1, description="MB")
    disks: list[DiskConfig] = Field(default_factory=list)
    networks: list[NetworkConfig] = Field(
        default_factory=list, validation_alias=AliasChoices("networks", "nets"))
    hypervisor: str = "kvm"
    os_arch: str | None = None
    prefer_region: str | None = Field(
        default=None, validation_alias=AliasChoices("prefer_region", "prefer_region_id"))
    prefer_zone: str | None = Field(
        default=None, validation_alias=AliasChoices("prefer_zone", "prefer_zone_id"))
    # a cloudprovider (Cloudpods' ``prefer_manager_id``, climc's ``--manager``)
    prefer_manager: str | None = Field(
        default=None, validation_alias=AliasChoices("prefer_manager", "prefer_manager_id"))
    # the cloudproviders whose hosts the caller's project may use (its own cloud accounts and the
    # shared ones); filled in by the region from the caller's token, never taken from the body.
    # ``None``: no restriction (the scheduler's own tests and bench)
    usable_managers: list[str] | None = Field(default=None, max_length=10_000)
    prefer_host: str | None = Field(
        default=None, validation_alias=AliasChoices("prefer_host", "prefer_host_id"))
    schedtags: list[SchedtagConfig] = Field(default_factory=list)
    instance_groups: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("instance_groups", "groups"))
    count: int = Field(default=1, ge=1, le=_MAX_COUNT)
    quota: QuotaHeadroom | None = Field(
        default=None, validation_alias=AliasChoices("quota", "quota_remaining"))
    ignore_filters: list[str] = Field(default_factory=list)
    # what the chosen host's driver must declare (drivers.base.Capability values), e.g. a migration
    # target needs "cold_migrate"; hosts lacking one are filtered out with the capability named
    required_capabilities: list[str] = Field(default_factory=list, max_length=32)
    # hosts (ids or names) this decision may not use, e.g. the host a migrating server leaves
    exclude_hosts: list[str] = Field(default_factory=list, max_length=1000)

    @field_validator("required_capabilities")
    @classmethod
    def _caps(cls, v: list[str]) -> list[str]:
        from drivers.base import Capability

        known = {c.value for c in Capability}
        bad = [c for c in v if c not in known]
        if bad:
            raise ValueError(f"unknown capabilities {bad} (known: {', '.join(sorted(known))})")
        return v

    @field_validator("instance_groups", mode="before")
    @classmethod
    def _groups(cls, v: Any) -> Any:
        # Cloudpods accepts a single id, a list of ids, or a list of {"id": ...}
        if isinstance(v, str):
            return [v]
        if isinstance(v, list):
            return [g.get("id") if isinstance(g, dict) else g for g in v]
        return v

    @field_validator("hypervisor")
    @classmethod
    def _hypervisor(cls, v: str) -> str:
        return v.strip().lower() or "kvm"

    @model_validator(mode="after")
    def _indexes(self) -> ScheduleInput:
        for what, items in (("disks", self.disks), ("networks", self.networks)):
            seen = [x.index for x in items if x.index is not None]
            if len(seen) != len(set(seen)):
                raise ValueError(f"{what}: index values must be unique")
        return self

    @property
    def host_type(self) -> str:
        return HYPERVISOR_HOST_TYPES.get(self.hypervisor, self.hypervisor)

    def tags(self, target: TagTarget, strategy: Strategy) -> list[str]:
        return [t.id for t in self.schedtags if t.resource_type == target and t.strategy == strategy]

    @property
    def image_ids(self) -> list[str]:
        return [d.image_id for d in self.disks if d.image_id]
