"""Alert rules, their history and where they notify, as region resources (Cloudpods' monitor and
notify names): ``commonalerts``, ``alertrecords`` (read-only), ``notifyconfigs``.

Every row belongs to a project: a tenant sees and changes only its own (another tenant's is a 404).
A rule on a host needs a system admin (hosts are the cloud's, not a project's). Notify configs are
managed by admins (a webhook makes the controller connect somewhere); their secret (SMTP password,
webhook key) is sealed with the credential keys and no API returns it.
"""
from __future__ import annotations

import math
import ssl
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError
from core.keystone.policy import enforce
from core.metrics.evaluator import COMPARATORS, REDUCERS, states_of
from core.metrics.history import KEEP, MINUTE, duration
from core.metrics.models import (
    HOST_METRICS,
    SERVER_METRICS,
    AlertNotification,
    Alertrecord,
    Commonalert,
    CommonalertState,
    NotifyConfig,
)
from core.region.common import parse
from core.region.managers._util import apply_update, unique_name
from core.region.resource import Manager

COMPARATOR_WORDS = {"gt": ">", "ge": ">=", "gte": ">=", "lt": "<", "le": "<=", "lte": "<=", "eq": "=="}
MAX_WINDOW = KEEP[MINUTE]  # minute buckets are what a window reads: at most a day
Ident = Annotated[str, Field(min_length=1, max_length=255)]


def _owner(cred: Credential) -> dict[str, str]:
    if not cred.project_id:
        raise InputParameterError("alerting resources belong to a project: use a project-scoped token")
    return {"tenant_id": cred.project_id, "domain_id": cred.project_domain_id or "default"}


def comparator(raw: Any) -> str:
    c = COMPARATOR_WORDS.get(str(raw).strip().lower(), str(raw).strip())
    if c not in COMPARATORS:
        raise InputParameterError(f"comparator: one of {', '.join(COMPARATORS)} (or gt, ge, lt, le, eq), not {raw!r}")
    return c


def threshold(raw: Any) -> float:
    try:
        v = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise InputParameterError(f"threshold: a finite number, not {raw!r}")
    return v


class CommonalertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    description: str = Field(default="", max_length=4096)
    metric: str = Field(min_length=1, max_length=64)
    comparator: str
    threshold: Any
    window: str | int = "5m"  # Cloudpods' period: how far back the reducer reads
    for_: str | int = Field(default=0, alias="for")
    reduce: Literal["avg", "max", "min"] = "avg"
    level: Literal["normal", "important", "fatal"] = "normal"
    scope: Literal["project", "server", "host"] = "project"
    server: Ident | None = None
    host: Ident | None = None
    notify_configs: list[Ident] = Field(default_factory=list, max_length=16)
    enabled: bool = True


class EmailContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hostname: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    hostport: int = Field(default=587, ge=1, le=65535)
    username: str = Field(default="", max_length=255)
    password: str = Field(default="", max_length=1024)
    sender: str = Field(min_length=3, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[^@\s,]+@[^@\s,]+$")]] = Field(
        min_length=1, max_length=32)
    starttls: bool = True
    ssl: bool = False
    ca_cert: str = Field(default="", max_length=65536)

    @field_validator("ca_cert")
    @classmethod
    def _pem(cls, v: str) -> str:
        if v:
            try:
                ssl.create_default_context().load_verify_locations(cadata=v)
            except (ssl.SSLError, ValueError) as exc:
                raise ValueError(f"not a PEM certificate bundle ({exc})") from None
        return v


class WebhookContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")
    secret: str = Field(min_length=16, max_length=1024)  # the HMAC key: at least 16 characters


class NotifyConfigCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(default="", max_length=4096)
    type: Literal["email", "webhook"]
    content: dict[str, Any]


def _metric(res_type: str, metric: str) -> str:
    names = HOST_METRICS if res_type == "host" else SERVER_METRICS
    if metric not in names:
        raise InputParameterError(f"metric: {metric!r} is not a {res_type} metric (known: {', '.join(names)})")
    return metric


def _notify_ids(session: Session, cred: Credential, refs: list[str]) -> list[str]:
    from core.region.registry import get_manager

    m = get_manager("notifyconfigs")
    return list(dict.fromkeys(str(m.lookup(session, cred, r, "notify config").id) for r in refs))


class CommonalertManager(Manager):
    keyword, plural, model = "commonalert", "commonalerts", Commonalert
    owned = True
    actions: ClassVar[dict[str, str]] = {"enable": "do_enable", "disable": "do_disable"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.registry import get_manager

        d = parse(CommonalertCreate, body)
        own = _owner(cred)
        name = unique_name(session, Commonalert, d.name, scope={"tenant_id": own["tenant_id"]})
        res_type, res_id = ("host" if d.scope == "host" else "server"), ""
        if d.scope == "host":
            enforce(cred, "compute:commonalerts:host")
            if not d.host:
                raise InputParameterError("host: a rule with scope host names the host (id or name)")
            res_id = str(get_manager("hosts").lookup(session, cred, d.host).id)
        elif d.scope == "server":
            if not d.server:
                raise InputParameterError("server: a rule with scope server names the server (id or name)")
            res_id = str(get_manager("servers").lookup(session, cred, d.server).id)
        elif d.server or d.host:
            raise InputParameterError("scope project watches every server of the project: drop server/host, "
                                      "or use --scope server/host")
        row = Commonalert(name=name, description=d.description, metric=_metric(res_type, d.metric),
                          comparator=comparator(d.comparator), threshold=threshold(d.threshold),
                          window_seconds=duration(d.window, "window", MINUTE, MAX_WINDOW),
                          for_seconds=duration(d.for_, "for", 0, MAX_WINDOW), reduce=d.reduce, level=d.level,
                          scope=d.scope, res_type=res_type, res_id=res_id, enabled=d.enabled, status="ready",
                          notify_configs=_notify_ids(session, cred, d.notify_configs), **own)
        session.add(row)
        session.flush()
        self.audit(session, cred, "create", row, notes=f"{row.reduce}({row.metric}) {row.comparator} {row.threshold}")
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        """Cloudpods' ``config``: period (window), comparator, threshold; also for, level, notify configs."""
        if not isinstance(body, dict):
            raise InputParameterError("body: expected a JSON object")
        data = dict(body)
        if "name" in data:
            unique_name(session, Commonalert, data["name"], scope={"tenant_id": row.tenant_id}, exclude_id=row.id)
        if "comparator" in data:
            data["comparator"] = comparator(data["comparator"])
        if "threshold" in data:
            data["threshold"] = threshold(data["threshold"])
        for key, col, lo in (("window", "window_seconds", MINUTE), ("period", "window_seconds", MINUTE),
                             ("for", "for_seconds", 0)):
            if key in data:
                data[col] = duration(data.pop(key), key, lo, MAX_WINDOW)
        if "level" in data and data["level"] not in ("normal", "important", "fatal"):
            raise InputParameterError("level: normal, important or fatal")
        if "reduce" in data and data["reduce"] not in REDUCERS:
            raise InputParameterError("reduce: avg, max or min")
        if "notify_configs" in data:
            refs = data["notify_configs"]
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise InputParameterError("notify_configs: a list of notify config ids or names")
            data["notify_configs"] = _notify_ids(session, cred, refs)
        apply_update(row, data, ("name", "description", "comparator", "threshold", "window_seconds", "for_seconds",
                                 "level", "reduce", "notify_configs"))
        return row

    def do_enable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        row.enabled = True
        return None

    def do_disable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        """Stop evaluating; the objects' states are forgotten (a later enable starts from ok)."""
        row.enabled = False
        session.execute(delete(CommonalertState).where(CommonalertState.alert_id == row.id))
        return None

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        states = states_of(session, [r.id for r in rows])
        for r, it in zip(rows, items, strict=True):
            it["states"] = states[r.id]
            it["alert_state"] = next((s for s in ("alerting", "pending") if any(x["state"] == s for x in states[r.id])),
                                     "ok")
            it["period"] = f"{r.window_seconds}s"
            it["for"] = f"{r.for_seconds}s"

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> None:
        session.execute(delete(CommonalertState).where(CommonalertState.alert_id == row.id))
        session.delete(row)  # its records stay: they are the history


class AlertrecordManager(Manager):
    keyword, plural, model = "alertrecord", "alertrecords", Alertrecord
    owned = True
    searchable = ("alert_name", "res_name")

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        ids = [r.id for r in rows]
        by: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for n in session.scalars(select(AlertNotification).where(AlertNotification.alertrecord_id.in_(ids))
                                 .order_by(AlertNotification.created_at)):
            by[n.alertrecord_id].append({"notify_config_id": n.notify_config_id, "status": n.status,
                                         "attempts": n.attempts, "last_error": n.last_error,
                                         "sent_at": n.sent_at})
        for it in items:
            it["notifications"] = by[it["id"]]

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> None:
        raise InputParameterError("alert records are history: they cannot be deleted")


class NotifyConfigManager(Manager):
    keyword, plural, model = "notifyconfig", "notifyconfigs", NotifyConfig
    owned = True

    def base_dict(self, row: Any) -> dict[str, Any]:
        out = super().base_dict(row)
        sealed = bool(out.pop("secret", ""))
        content = dict(out.get("content") or {})
        content["password_set" if row.type == "email" else "secret_set"] = sealed
        out["content"] = content
        return out

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.keystone.credkeys import seal

        d = parse(NotifyConfigCreate, body)
        own = _owner(cred)
        name = unique_name(session, NotifyConfig, d.name, scope={"tenant_id": own["tenant_id"]})
        content: dict[str, Any]
        if d.type == "email":
            content = parse(EmailContent, d.content, "content").model_dump()
            secret = content.pop("password")
            if content["ssl"] and content["starttls"]:
                content["starttls"] = False  # implicit TLS already
        else:
            content = parse(WebhookContent, d.content, "content").model_dump()
            secret = content.pop("secret")
        row = NotifyConfig(name=name, description=d.description, type=d.type, content=content,
                           secret=seal(secret) if secret else "", status="ready", **own)
        session.add(row)
        session.flush()
        self.audit(session, cred, "create", row, notes=d.type)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        apply_update(row, body, ("name", "description"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        from core.errors import NotEmptyError

        users = [r.name for r in session.scalars(select(Commonalert).where(Commonalert.tenant_id == row.tenant_id))
                 if row.id in (r.notify_configs or [])]
        if users:
            raise NotEmptyError(f"notify config {row.name} is used by alert rules {', '.join(sorted(users)[:5])}: "
                                "change or delete them first")
