"""``cloudaccounts``, ``cloudproviders`` and ``cachedimages``: the API side of public clouds.

Creating an account builds its provider by driver name and checks the credentials with one call
to the cloud (wrong keys: a 400 naming the cloud's answer; nothing stored); the secret is stored
encrypted with the credential keys and no API returns it. ``sync`` queues a sync
(core/region/cloud/sync.py); ``delete`` (of a disabled account) purges the rows its sync made
here, never anything in the cloud.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.db.base import utcnow
from core.errors import InputParameterError, InvalidStatusError, NotEmptyError
from core.region.cloud import config as cc
from core.region.common import parse
from core.region.managers._util import add_names, apply_update, names_by_id, unique_name
from core.region.models import Cachedimage, Cloudaccount, Cloudprovider, Cloudregion, Disk, Host, Server, Storage
from core.region.resource import Manager

HIDDEN = ("secret",)


class AccountOptions(BaseModel):
    """Provider options (other providers may add keys of their own)."""

    model_config = ConfigDict(extra="allow")

    regions: list[Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")]] = Field(default_factory=list, max_length=64)
    default_region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")
    image_owners: list[Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")]] = Field(default_factory=list,
                                                                                     max_length=16)
    page_size: int | None = Field(default=None, ge=5, le=1000)
    project: str | None = Field(default=None, min_length=1, max_length=255)  # cloudpods: the project there
    domain: str | None = Field(default=None, min_length=1, max_length=255)


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    provider: str
    access_url: str = Field(default="", max_length=255)
    account: str = Field(min_length=1, max_length=255)
    secret: str = Field(min_length=1, max_length=8192)
    options: AccountOptions = Field(default_factory=AccountOptions)
    sync_interval_seconds: int = Field(default=900, ge=0, le=7 * 24 * 3600)
    enabled: bool = True
    auto_sync: bool = True  # queue the first sync at once

    @field_validator("access_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v


class SyncRequest(BaseModel):
    """Cloudpods' cloud-account-sync body (force/full_sync/deep_sync/xor: every sync here is full)."""

    model_config = ConfigDict(extra="forbid")

    region: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]] = Field(default_factory=list,
                                                                                    max_length=64)
    resources: list[Literal["compute", "network", "eip", "image"]] = Field(default_factory=list, max_length=8)
    force: bool = False
    full_sync: bool = False
    deep_sync: bool = False
    xor: bool = False


class CredentialUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=255)
    secret: str = Field(min_length=1, max_length=8192)


def check_credentials(driver: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Build the provider and call the cloud once: a clear 400 when it cannot be used."""
    from drivers.base import DriverError, DriverUnavailable, ProviderAuthError
    from drivers.registry import get_driver

    try:
        cls = get_driver(driver)
    except DriverUnavailable as exc:
        raise InputParameterError(f"{exc} (install cloudpods-one[{driver}])") from None
    try:
        provider = cls.for_account(cfg)
    except DriverError as exc:
        raise InputParameterError(str(exc)) from None
    try:
        return dict(provider.validate() or {})
    except ProviderAuthError as exc:
        raise InputParameterError(f"the cloud refused the credentials: {exc}") from None
    except DriverError as exc:
        raise InputParameterError(f"the cloud cannot be used: {exc}") from None
    finally:
        provider.close()


class CloudaccountManager(Manager):
    keyword, plural, model = "cloudaccount", "cloudaccounts", Cloudaccount
    owned = True
    actions: ClassVar[dict[str, str]] = {"sync": "do_sync", "enable": "do_enable", "disable": "do_disable",
                                         "update-credential": "do_update_credential"}

    def base_dict(self, row: Any) -> dict[str, Any]:
        out = super().base_dict(row)
        for k in HIDDEN:
            out.pop(k, None)
        return out

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        ids = [r.id for r in rows]
        provs = dict(session.execute(select(Cloudprovider.cloudaccount_id, Cloudprovider.id)
                                     .where(Cloudprovider.cloudaccount_id.in_(ids))).tuples().all())
        counts = dict(session.execute(select(Server.manager_id, func.count()).where(
            Server.manager_id.in_(list(provs.values()))).group_by(Server.manager_id)).tuples().all())
        for it in items:
            pid = provs.get(it["id"])
            it["cloudprovider_id"] = pid or ""
            # Cloudpods' health_status beside our status: normal when the last sync saw everything
            it["health_status"] = "normal" if it.get("status") == "connected" else it.get("status", "")
            it["guest_count"] = int(counts.get(pid, 0)) if pid else 0

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.cloud.sync import queue

        data = parse(AccountCreate, body)
        if not cred.project_id:
            raise InputParameterError("cloud accounts belong to a project: use a project-scoped token")
        name = unique_name(session, Cloudaccount, data.name)
        brand, driver = cc.driver_for(data.provider)
        options = data.options.model_dump(exclude_none=True, exclude_defaults=True)
        cfg = {"access_url": data.access_url, "account": data.account, "secret": data.secret, "options": options}
        facts = check_credentials(driver, cfg)
        row = Cloudaccount(name=name, description=data.description, provider=brand, driver=driver,
                           access_url=data.access_url, account=data.account, secret=cc.seal(data.secret),
                           options=options, enabled=data.enabled, status="connected",
                           sync_interval_seconds=data.sync_interval_seconds, sync_status="idle",
                           meta={"facts": facts}, tenant_id=cred.project_id,
                           domain_id=cred.project_domain_id or "default")
        session.add(row)
        session.flush()
        session.add(Cloudprovider(name=name, cloudaccount_id=row.id, provider=brand, account=data.account,
                                  status="connected", enabled=True, tenant_id=row.tenant_id, domain_id=row.domain_id))
        if data.auto_sync and data.enabled:
            queue(session, row, cred)
        self.audit(session, cred, "create", row, notes=f"provider {brand}, account {data.account}")
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Cloudaccount, body["name"], exclude_id=row.id)
        if "sync_interval_seconds" in body:
            v = body["sync_interval_seconds"]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 7 * 24 * 3600:
                raise InputParameterError("sync_interval_seconds: must be an integer 0..604800 (0: no periodic sync)")
        apply_update(row, body, ("name", "description", "sync_interval_seconds"))
        self.audit(session, cred, "update", row)
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        if row.enabled:
            raise InvalidStatusError(f"cloud account {row.name} is enabled: disable it first")
        if row.sync_status == "syncing":
            raise InvalidStatusError(f"cloud account {row.name} is syncing: wait for the sync to end")

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> None:
        """Forget the account and every row its sync made here (the cloud keeps its resources)."""
        from core.region.cloud.apply import MODELS, PURGE_ORDER, purge_row

        self.validate_delete(session, row)
        provs = list(session.scalars(select(Cloudprovider).where(Cloudprovider.cloudaccount_id == row.id)))
        pids = [p.id for p in provs]
        if pids:
            busy = session.scalar(select(func.count()).select_from(Server).where(
                Server.manager_id.in_(pids), Server.active_task_id.is_not(None))) or 0
            if busy:
                raise InvalidStatusError(f"cloud account {row.name}: {busy} server(s) have a task running")
            # rows made here on its zones that no sync has linked yet: the user's, not the sync's
            hosts = select(Host.id).where(Host.manager_id.in_(pids))
            stores = select(Storage.id).where(Storage.manager_id.in_(pids))
            n_srv = session.scalar(select(func.count()).select_from(Server).where(
                Server.host_id.in_(hosts), Server.manager_id.is_(None))) or 0
            n_disk = session.scalar(select(func.count()).select_from(Disk).where(
                Disk.storage_id.in_(stores), Disk.manager_id.is_(None))) or 0
            if n_srv or n_disk:
                raise NotEmptyError(f"cloud account {row.name}: {n_srv} server(s) and {n_disk} disk(s) made here are "
                                    "on its zones and not synced yet: delete them, or sync the account first")
        for kind in PURGE_ORDER:
            model = MODELS[kind]
            for r in list(session.scalars(select(model).where(model.manager_id.in_(pids)))) if pids else []:
                purge_row(session, kind, r)
            session.flush()
        # servers a server-create made that the sync never linked, and the hosts of zones left
        for h in list(session.scalars(select(Host).where(Host.manager_id.in_(pids)))) if pids else []:
            if not session.scalar(select(func.count()).select_from(Server).where(Server.host_id == h.id)):
                session.delete(h)
        for p in provs:
            session.delete(p)
        session.flush()
        if row.sync_task_id:  # a sync queued and never run: its task ends with the account
            from core.tasks.models import FAILED, FINISHED, Task

            t = session.get(Task, row.sync_task_id)
            if t is not None and t.status not in FINISHED:
                t.status, t.reason, t.finished_at = FAILED, "the cloud account was deleted", utcnow()
        self.audit(session, cred, "delete", row)
        session.delete(row)

    # ---- actions ---------------------------------------------------------------------------------
    def do_sync(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> dict[str, Any]:
        from core.region.cloud.sync import queue

        if not row.enabled:
            raise InvalidStatusError(f"cloud account {row.name} is disabled: enable it first")
        data = parse(SyncRequest, body)
        if data.region:
            from core.region.models import Cloudregion

            known = set(session.scalars(select(Cloudregion.external_id).join(
                Cloudprovider, Cloudprovider.id == Cloudregion.manager_id).where(
                Cloudprovider.cloudaccount_id == row.id)))
            unknown = [r for r in data.region if known and r not in known]
            if unknown:
                raise InputParameterError(f"region: {', '.join(unknown)} not among the account's regions "
                                          f"({', '.join(sorted(known))})")
        scope = {k: v for k, v in (("region", data.region), ("resources", data.resources)) if v}
        queued = queue(session, row, cred, scope)
        self.audit(session, cred, "sync", row, notes=("queued" if queued else "already queued or syncing")
                   + (f" {scope}" if scope else ""))
        return self.to_dict(session, row)

    def do_enable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.enabled = True
        self.audit(session, cred, "enable", row)

    def do_disable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.enabled = False
        self.audit(session, cred, "disable", row)

    def do_update_credential(self, session: Session, cred: Credential, row: Any,
                             body: dict[str, Any]) -> dict[str, Any]:
        """New keys, checked against the cloud first (refused: 400, the old ones stay)."""
        data = parse(CredentialUpdate, body)
        check_credentials(row.driver, {"access_url": row.access_url, "account": data.account,
                                       "secret": data.secret, "options": dict(row.options or {})})
        row.account, row.secret = data.account, cc.seal(data.secret)
        row.status, row.status_reason = "connected", ""
        for p in session.scalars(select(Cloudprovider).where(Cloudprovider.cloudaccount_id == row.id)):
            p.account = data.account
        self.audit(session, cred, "update-credential", row, notes=f"account {data.account}")
        return self.to_dict(session, row)


class CloudproviderManager(Manager):
    keyword, plural, model = "cloudprovider", "cloudproviders", Cloudprovider
    owned = True
    contexts: ClassVar[dict[str, str]] = {"cloudaccounts": "cloudaccount_id"}

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "cloudaccount_id", names_by_id(session, Cloudaccount, [r.cloudaccount_id for r in rows]),
                  "cloudaccount")


class CachedimageManager(Manager):
    keyword, plural, model = "cachedimage", "cachedimages", Cachedimage
    owned = True
    searchable = ("name", "external_id")

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "manager_id", names_by_id(session, Cloudprovider, [r.manager_id for r in rows]), "manager")


def provider_row(session: Session, cred: Credential, ref: str) -> Cloudprovider:
    """A cloudprovider the caller may use, by id or name; another project's reads as not found (400)."""
    from core.region.registry import get_manager

    return get_manager("cloudproviders").lookup(session, cred, ref, "cloudprovider")  # type: ignore[no-any-return]


def cloud_region(session: Session, cred: Credential, ref: str,
                 prov: Cloudprovider | None) -> tuple[Cloudprovider, Cloudregion]:
    """A synced region named in a request, with its cloudprovider: within ``prov`` by id, name or
    the cloud's own name (``us-east-1``); without one, by id or name among the regions of cloud
    accounts the caller may use (another project's reads as unknown: nothing about it leaks)."""
    if prov is not None:
        region = session.scalar(select(Cloudregion).where(Cloudregion.manager_id == prov.id, or_(
            Cloudregion.id == ref, Cloudregion.external_id == ref, Cloudregion.name == ref)).limit(1))
        if region is None:
            raise InputParameterError(f"cloudregion {ref!r} is not a synced region of cloudprovider {prov.name}")
        return prov, region
    unknown = InputParameterError(f"cloudregion {ref!r} not found among the regions of cloud accounts you can use")
    region = session.scalar(select(Cloudregion).where(
        Cloudregion.manager_id.is_not(None), or_(Cloudregion.id == ref, Cloudregion.name == ref)).limit(1))
    if region is None or not region.manager_id:
        raise unknown
    try:
        return provider_row(session, cred, region.manager_id), region
    except InputParameterError:
        raise unknown from None


def find_cachedimage(session: Session, cred: Credential, ref: str) -> Cachedimage | None:
    """A cloud image the caller may use, by id, external id (AMI) or name."""
    from core.region.registry import get_manager

    m = get_manager("cachedimages")
    stmt = m.visible(select(Cachedimage), cred)
    for col in (Cachedimage.id, Cachedimage.external_id, Cachedimage.name):
        rows = list(session.scalars(stmt.where(col == ref).limit(2)))
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise InputParameterError(f"cached image {ref!r} is ambiguous: use its id")
    return None
