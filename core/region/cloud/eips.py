"""Elastic IPs of a cloud account: allocate, associate with a server, dissociate, release.

``eip-create --manager <cloudprovider> [--cloudregion <region>]`` makes an ``allocating`` row and
an ``EipAllocateTask``; associate / dissociate / delete of a cloud's eip each run a task too. A
task's stage calls the provider (drivers.base ``EipProvider``) outside any DB transaction, then
records what the cloud answered. Every provider call is idempotent (the address carries the row's
id as a tag), so a stage run again after a crash neither allocates twice nor fails on what is done.
While a task acts on an eip its status ends in "ing": other verbs are refused, and the sync leaves
it alone (its task says how it ends).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, InvalidStatusError
from core.region.cloud.accounts import cloud_region, provider_row
from core.region.cloud.apply import EIP_BUSY as BUSY
from core.region.common import parse
from core.region.models import Cloudaccount, Cloudprovider, Cloudregion, Eip, Host, Server
from core.tasks.engine import Run, StageError, TaskBase, submit


class CloudEipCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the generic create body also carries name, count...

    manager: str | None = Field(default=None, min_length=1, max_length=255)
    cloudregion: str | None = Field(default=None, min_length=1, max_length=255)
    bandwidth: int = Field(default=0, ge=0, le=100_000)


class EipAssociate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_id: str = Field(min_length=1, max_length=255)
    instance_type: str = Field(default="server", pattern=r"^server$")
    ip_addr: str | None = Field(default=None, max_length=64)  # which nic (an eip network's eip only)


class EipDissociate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_delete: bool = False


def is_cloud_request(body: dict[str, Any]) -> bool:
    return any(body.get(k) for k in ("manager", "manager_id", "cloudregion", "cloudregion_id", "region",
                                     "region_id"))


def _account(session: Session, prov: Cloudprovider) -> Cloudaccount:
    acct = session.get(Cloudaccount, prov.cloudaccount_id)
    if acct is None:
        raise InputParameterError(f"cloudprovider {prov.name} has no cloud account")
    if not acct.enabled:
        raise InvalidStatusError(f"cloud account {acct.name} is disabled: enable it first")
    from drivers.base import ProviderCapability
    from drivers.registry import get_driver

    caps: frozenset[ProviderCapability] = getattr(get_driver(acct.driver), "provider_capabilities", frozenset())
    if ProviderCapability.EIP not in caps:
        raise InputParameterError(f"cloud account {acct.name} ({acct.provider}) cannot allocate elastic IPs")
    return acct


def create(session: Session, cred: Credential, body: dict[str, Any], name: str, owner: dict[str, str]) -> Eip:
    """The row (``allocating``) and its EipAllocateTask; the cloud is asked by the task."""
    data = parse(CloudEipCreate, {
        "manager": body.get("manager") or body.get("manager_id"),
        "cloudregion": body.get("cloudregion") or body.get("cloudregion_id") or body.get("region")
        or body.get("region_id"), "bandwidth": body.get("bandwidth", 0)})
    region: Cloudregion | None = None
    prov = provider_row(session, cred, data.manager) if data.manager else None
    if data.cloudregion:
        prov, region = cloud_region(session, cred, data.cloudregion, prov)
    if prov is None:
        raise InputParameterError("manager: a cloud eip names its cloudprovider (--manager) or region (--cloudregion)")
    acct = _account(session, prov)
    if region is None:
        want = str((acct.options or {}).get("default_region") or "")
        regions = list(session.scalars(select(Cloudregion).where(Cloudregion.manager_id == prov.id)))
        pick = [r for r in regions if r.external_id == want] if want else []
        if not pick and len(regions) == 1:
            pick = regions
        if not pick:
            raise InputParameterError(f"cloudprovider {prov.name} has {len(regions)} synced regions: "
                                      "name one with --cloudregion" if regions else
                                      f"cloudprovider {prov.name} has no synced region: cloud-account-sync it first")
        region = pick[0]
    row = Eip(name=name, bandwidth=data.bandwidth, status="allocating", manager_id=prov.id,
              cloudregion_id=region.id, **owner)
    session.add(row)
    session.flush()
    submit(session, "EipAllocateTask", "eip", row.id, row.name, {}, cred=cred, tenant_id=row.tenant_id,
           domain_id=row.domain_id)
    return row


def _guard(row: Eip) -> None:
    if row.status in BUSY:
        raise InvalidStatusError(f"eip {row.name} is {row.status}: wait for it to finish")


def associate(session: Session, cred: Credential, row: Eip, body: dict[str, Any]) -> None:
    from core.region.registry import get_manager

    data = parse(EipAssociate, body)
    _guard(row)
    if row.associate_id:
        raise InvalidStatusError(f"eip {row.name} is associated already: dissociate it first")
    server = get_manager("servers").lookup(session, cred, data.instance_id, "server")
    host = session.get(Host, server.host_id) if server.host_id else None
    if host is None or host.manager_id != row.manager_id:
        raise InputParameterError(f"server {server.name} is not on the cloud account of eip {row.name}")
    taken = session.scalar(select(Eip.name).where(Eip.associate_id == server.id, Eip.id != row.id).limit(1))
    if taken:
        raise InvalidStatusError(f"server {server.name} has eip {taken} already")
    row.status = "associating"
    submit(session, "EipAssociateTask", "eip", row.id, row.name, {"server_id": server.id}, cred=cred,
           tenant_id=row.tenant_id, domain_id=row.domain_id)


def dissociate(session: Session, cred: Credential, row: Eip, body: dict[str, Any]) -> None:
    data = parse(EipDissociate, body)
    _guard(row)
    if not row.associate_id:
        raise InvalidStatusError(f"eip {row.name} is not associated")
    row.status = "dissociating"
    submit(session, "EipDissociateTask", "eip", row.id, row.name, {"auto_delete": data.auto_delete}, cred=cred,
           tenant_id=row.tenant_id, domain_id=row.domain_id)


def delete(session: Session, cred: Credential, row: Eip) -> None:
    _guard(row)
    if row.associate_id:
        raise InvalidStatusError(f"eip {row.name} is associated: dissociate it first")
    row.status = "deallocating"
    submit(session, "EipDeallocateTask", "eip", row.id, row.name, {}, cred=cred, tenant_id=row.tenant_id,
           domain_id=row.domain_id)


# ---- tasks --------------------------------------------------------------------------------------------
def _eip(run: Run) -> Eip:
    row = run.session.get(Eip, run.task.obj_id)
    if row is None:
        raise StageError(f"eip {run.task.obj_id} no longer exists")
    return row


def _call(run: Run, row: Eip, fn: Callable[[Any, str], Any]) -> Any:
    """``fn(provider, region external id)`` with no DB transaction open; cloud errors fail the stage."""
    from core.region.cloud.config import account_config
    from drivers.base import DriverError
    from drivers.registry import get_driver

    prov = run.session.get(Cloudprovider, row.manager_id) if row.manager_id else None
    acct = run.session.get(Cloudaccount, prov.cloudaccount_id) if prov is not None else None
    region = run.session.get(Cloudregion, row.cloudregion_id) if row.cloudregion_id else None
    if acct is None or region is None:
        raise StageError(f"eip {row.name}: its cloud account or region is gone")
    driver, cfg, rext = acct.driver, account_config(acct), region.external_id

    def call() -> Any:
        provider = get_driver(driver).for_account(cfg)
        try:
            return fn(provider, rext)
        except DriverError as exc:
            raise StageError(str(exc)) from None
        finally:
            provider.close()

    return run.outside_transaction(call)


def _back_to_ready(run: Run) -> None:
    row = run.session.get(Eip, run.task.obj_id)
    if row is not None and row.status in BUSY:
        row.status = "ready"


class EipAllocateTask(TaskBase):
    name = "EipAllocateTask"

    def on_init(self, run: Run) -> None:
        row = _eip(run)
        name, rid, bw = row.name, row.id, row.bandwidth
        got = _call(run, row, lambda p, region: p.allocate_eip(region, name, rid, bw))
        row = _eip(run)
        row.external_id, row.ip_addr, row.status = got.external_id, got.ip_addr, "ready"
        run.complete(external_id=got.external_id, ip_addr=got.ip_addr)

    def on_failed(self, run: Run, reason: str) -> None:
        row = run.session.get(Eip, run.task.obj_id)
        if row is not None and row.status == "allocating":
            row.status, row.description = "allocate_failed", f"allocate failed: {reason}"[:1000]


class EipAssociateTask(TaskBase):
    name = "EipAssociateTask"

    def on_init(self, run: Run) -> None:
        row = _eip(run)
        server = run.session.get(Server, run.params["server_id"])
        if server is None:
            raise StageError("the server is gone")
        if not server.external_id:
            raise StageError(f"server {server.name} has no instance in the cloud yet")
        ext, iid = row.external_id, server.external_id
        _call(run, row, lambda p, region: p.associate_eip(region, ext, iid))
        row = _eip(run)
        row.associate_type, row.associate_id, row.status = "server", run.params["server_id"], "ready"
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        _back_to_ready(run)


class EipDissociateTask(TaskBase):
    name = "EipDissociateTask"

    def on_init(self, run: Run) -> None:
        row = _eip(run)
        ext = row.external_id
        _call(run, row, lambda p, region: p.dissociate_eip(region, ext))
        row = _eip(run)
        row.associate_type, row.associate_id, row.status = "", None, "ready"
        if run.params.get("auto_delete"):
            row.status = "deallocating"
            run.next("on_release")
            return
        run.complete()

    def on_release(self, run: Run) -> None:
        EipDeallocateTask().on_init(run)

    def on_failed(self, run: Run, reason: str) -> None:
        _back_to_ready(run)


class EipDeallocateTask(TaskBase):
    name = "EipDeallocateTask"

    def on_init(self, run: Run) -> None:
        row = _eip(run)
        ext = row.external_id
        if ext:
            _call(run, row, lambda p, region: p.release_eip(region, ext))
        gone = run.session.get(Eip, run.task.obj_id)
        if gone is not None:
            run.session.delete(gone)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        _back_to_ready(run)
