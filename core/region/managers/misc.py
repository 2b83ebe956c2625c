"""Keypairs, security groups and rules, EIPs (snapshots: core/region/managers/snapshots.py; security
groups enforced on hosts: core/region/secgroups.py)."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.listing import parse_bool
from core.errors import InputParameterError, InvalidStatusError, NotEmptyError
from core.region import ipam, quotas
from core.region.common import check_name, parse, text_field
from core.region.managers._util import add_names, apply_update, names_by_id, unique_name
from core.region.models import Eip, GuestSecgroup, Keypair, Secgroup, SecgroupRule, Server
from core.region.resource import Manager
from core.region.secgroups import touch_secgroups

_PORTS = re.compile(r"^(\d{1,5})(-(\d{1,5}))?(,(\d{1,5})(-(\d{1,5}))?)*$")


def _owner(cred: Credential) -> dict[str, str]:
    if not cred.project_id:
        raise InputParameterError("use a project-scoped token to create project resources")
    return {"tenant_id": cred.project_id, "domain_id": cred.project_domain_id or "default"}


def fingerprint(public_key: str) -> tuple[str, str]:
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                                          "ecdsa-sha2-nistp521", "ssh-dss"):
        raise InputParameterError("public_key: not an OpenSSH public key (ssh-rsa/ssh-ed25519/ecdsa-...)")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise InputParameterError("public_key: the key body is not base64") from None
    md5 = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    scheme = {"ssh-rsa": "RSA", "ssh-ed25519": "ED25519", "ssh-dss": "DSA"}.get(parts[0], "ECDSA")
    return scheme, ":".join(md5[i:i + 2] for i in range(0, 32, 2))


def generate_keypair(scheme: str) -> tuple[str, str]:
    """A new key pair: (OpenSSH public key, private key PEM). RSA 2048 (Cloudpods' default) or ED25519."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    s = scheme.upper()
    if s == "RSA":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    elif s == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
        fmt = serialization.PrivateFormat.OpenSSH
    else:
        raise InputParameterError("scheme: RSA or ED25519")
    private = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return public, private


class KeypairManager(Manager):
    keyword, plural, model = "keypair", "keypairs", Keypair
    owned = True

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        own = _owner(cred)
        name = unique_name(session, Keypair, body.get("name", ""), scope={"tenant_id": own["tenant_id"]})
        pk = body.get("public_key")
        private = None
        if pk is None or (isinstance(pk, str) and not pk.strip()):
            # Cloudpods: no public key given -> a pair is generated; the private key is in this reply only
            pk, private = generate_keypair(str(body.get("scheme") or "RSA"))
        if not isinstance(pk, str):
            raise InputParameterError("public_key: must be an OpenSSH public key string")
        scheme, fp = fingerprint(pk)
        row = Keypair(name=name, description=text_field(body, "description"), public_key=pk.strip(), scheme=scheme,
                      fingerprint=fp, status="ready", **own)
        if private is not None:
            row.private_key_once = private  # type: ignore[attr-defined]  # not a column: never stored, shown by add_details of this reply
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Keypair, body["name"], scope={"tenant_id": row.tenant_id}, exclude_id=row.id)
        apply_update(row, body, ("name", "description"))
        return row

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        for r, it in zip(rows, items, strict=True):
            once = getattr(r, "private_key_once", None)  # only on the object the create made
            if once:
                it["private_key"] = once

    def validate_delete(self, session: Session, row: Any) -> None:
        if session.scalar(select(Server.id).where(Server.keypair_id == row.id).limit(1)):
            raise NotEmptyError(f"keypair {row.name} is used by servers")


NOT_BOTH = "give cidr or peer_secgroup_id, not both"


def _one_of(*allowed: str) -> AfterValidator:
    """A field that takes one of ``allowed`` ("must be allow or deny" otherwise)."""
    words = f"{', '.join(allowed[:-1])} or {allowed[-1]}"

    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"must be {words}")
        return v

    return AfterValidator(check)


class RuleIn(BaseModel):
    """A security group rule as Cloudpods' API takes it: the larger ``priority`` (1..100) wins, deny
    before allow at equal priority; ``cidr`` or ``peer_secgroup_id`` (the addresses of that group's
    guests) narrow the remote side, neither means any address; ``ports`` only for tcp/udp."""

    model_config = ConfigDict(extra="ignore")
    direction: Annotated[str, _one_of("in", "out")] = "in"
    action: Annotated[str, _one_of("allow", "deny")] = "allow"
    protocol: Annotated[str, _one_of("any", "tcp", "udp", "icmp")] = "any"
    ports: str = ""
    cidr: str = ""
    priority: int = Field(default=1, ge=1, le=100)
    description: str = Field(default="", max_length=255)
    peer_secgroup_id: str | None = None

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: str) -> str:
        if v and (not _PORTS.match(v) or any(int(p) > 65535 for p in re.findall(r"\d+", v))):
            raise ValueError("ports: e.g. 22, 80-443 or 22,80")
        for item in filter(None, v.split(",")):
            lo, _, hi = item.partition("-")
            if hi and int(hi) < int(lo):
                raise ValueError(f"ports: the range {item} ends before it starts")
        return v

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        if v:
            try:
                net = ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(f"{v!r} is not a CIDR") from None
            if net.version != 4:
                raise ValueError(f"{v!r}: guests have IPv4 addresses only, give an IPv4 CIDR")
        return v

    @model_validator(mode="after")
    def _together(self) -> RuleIn:
        if self.ports and self.protocol not in ("tcp", "udp"):
            raise ValueError(f"ports: only tcp and udp rules have ports, not {self.protocol}")
        if self.cidr and self.peer_secgroup_id:
            raise ValueError(NOT_BOTH)
        return self


def rule_in(session: Session, cred: Credential, body: dict[str, Any], where: str | None = None) -> RuleIn:
    """A rule body validated, its peer group resolved to an id the caller may see."""
    from core.region.registry import get_manager

    body = dict(body)
    peer = body.pop("peer_secgroup", None) or body.get("peer_secgroup_id")
    if peer is not None and not isinstance(peer, str):
        raise InputParameterError("peer_secgroup_id: expected a security group name or id")
    if peer and body.get("cidr"):  # before the lookup: the input is wrong whatever the name finds
        raise InputParameterError(NOT_BOTH)
    sgs = get_manager("secgroups")
    body["peer_secgroup_id"] = sgs.lookup(session, cred, peer, "peer_secgroup").id if peer else None
    return parse(RuleIn, body, where) if where else parse(RuleIn, body)


def _rule_dict(r: SecgroupRule) -> dict[str, Any]:
    return {"id": r.id, "direction": r.direction, "action": r.action, "protocol": r.protocol, "ports": r.ports,
            "cidr": r.cidr, "priority": r.priority, "peer_secgroup_id": r.peer_secgroup_id,
            "description": r.description}


class SecgroupManager(Manager):
    keyword, plural, model = "secgroup", "secgroups", Secgroup
    owned = True
    actions: ClassVar[dict[str, str]] = {"add-rule": "do_add_rule", "clone": "do_clone"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        own = _owner(cred)
        name = unique_name(session, Secgroup, body.get("name", ""), scope={"tenant_id": own["tenant_id"]})
        row = Secgroup(name=name, description=text_field(body, "description"), status="ready", **own)
        session.add(row)
        session.flush()
        rules = body.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise InputParameterError("rules: expected a list of rule objects")
        for i, r in enumerate(rules):
            session.add(SecgroupRule(secgroup_id=row.id, **rule_in(session, cred, r, f"rules.{i}").model_dump()))
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Secgroup, body["name"], scope={"tenant_id": row.tenant_id}, exclude_id=row.id)
        apply_update(row, body, ("name", "description"))
        return row

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> None:
        if session.scalar(select(GuestSecgroup.id).where(GuestSecgroup.secgroup_id == row.id).limit(1)):
            raise NotEmptyError(f"secgroup {row.name} is used by servers")
        other = session.scalar(select(Secgroup.name).join(SecgroupRule, SecgroupRule.secgroup_id == Secgroup.id)
                               .where(SecgroupRule.peer_secgroup_id == row.id, Secgroup.id != row.id).limit(1))
        if other:
            raise NotEmptyError(f"secgroup {row.name} is named by rules of secgroup {other}: delete those first")
        for r in session.scalars(select(SecgroupRule).where(SecgroupRule.secgroup_id == row.id)):
            session.delete(r)
        session.flush()
        session.delete(row)
        return None

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        rules: dict[str, list[dict[str, Any]]] = {}
        for r in session.scalars(select(SecgroupRule).where(SecgroupRule.secgroup_id.in_([x.id for x in rows]))
                                 .order_by(SecgroupRule.priority)):
            rules.setdefault(r.secgroup_id, []).append(_rule_dict(r))
        used: dict[str, int] = dict(session.execute(  # type: ignore[arg-type]
            select(GuestSecgroup.secgroup_id, func.count()).where(GuestSecgroup.secgroup_id.in_([x.id for x in rows]))
            .group_by(GuestSecgroup.secgroup_id)).all())
        for it in items:
            it["rules"] = rules.get(it["id"], [])
            it["guest_cnt"] = int(used.get(it["id"], 0))

    def do_add_rule(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        session.add(SecgroupRule(secgroup_id=row.id, **rule_in(session, cred, body).model_dump()))
        session.flush()
        touch_secgroups(session, [row.id])

    def do_clone(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> dict[str, Any]:
        """Cloudpods' secgroup clone: a new group in the caller's project with ``row``'s rules (a rule
        naming ``row`` itself, "from the same group", names the clone); the new group is the answer."""
        unknown = sorted(set(body) - {"name", "description"})
        if unknown:
            raise InputParameterError(f"{unknown[0]}: not a clone field (name, description)")
        rules = [{**_rule_dict(r), "peer_secgroup_id": r.peer_secgroup_id}
                 for r in session.scalars(select(SecgroupRule).where(SecgroupRule.secgroup_id == row.id)
                                          .order_by(SecgroupRule.priority.desc(), SecgroupRule.id))]
        (new,) = self.create(session, cred, {"name": body.get("name", ""),
                                             "description": body.get("description", row.description)}, 1)
        for r in rules:
            r.pop("id")
            if r["peer_secgroup_id"] == row.id:
                r["peer_secgroup_id"] = new.id
            session.add(SecgroupRule(secgroup_id=new.id, **rule_in(session, cred, r).model_dump()))
        session.flush()
        return {self.keyword: self.to_dict(session, new)}  # audited: "create" (the new), "clone" (the source)


class SecgroupRuleManager(Manager):
    keyword, plural, model = "secgrouprule", "secgrouprules", SecgroupRule
    contexts: ClassVar[dict[str, str]] = {"secgroups": "secgroup_id"}
    searchable = ("description",)

    @property
    def policy(self) -> str:
        return "compute:secgroups"

    def visible(self, stmt: Any, cred: Credential, scope: str | None = None) -> Any:
        from core.region.registry import get_manager

        sg = get_manager("secgroups")
        return stmt.where(SecgroupRule.secgroup_id.in_(sg.visible(select(Secgroup.id), cred, scope)))

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.registry import get_manager

        sg = get_manager("secgroups").lookup(session, cred, str((ctx[1] if ctx else None) or
                                                               body.get("secgroup") or body.get("secgroup_id") or ""))
        row = SecgroupRule(secgroup_id=sg.id, **rule_in(session, cred, body).model_dump())
        session.add(row)
        session.flush()
        touch_secgroups(session, [sg.id])
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "secgroup_id" in body or "secgroup" in body:
            raise InputParameterError("secgroup_id: a rule cannot move to another security group")
        merged = {**{k: getattr(row, k) for k in RuleIn.model_fields}, **body}
        for k, v in rule_in(session, cred, merged).model_dump().items():
            setattr(row, k, v)
        session.flush()
        touch_secgroups(session, [row.secgroup_id])
        return row

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> None:
        session.delete(row)
        session.flush()
        touch_secgroups(session, [row.secgroup_id])
        return None


class EipManager(Manager):
    keyword, plural, model = "eip", "eips", Eip
    owned = True
    # a cloud's eip (core/region/cloud/eips.py): these verbs reach the cloud through a task
    cloud_ops: ClassVar[frozenset[str] | None] = frozenset({"delete", "associate", "dissociate"})
    actions: ClassVar[dict[str, str]] = {"associate": "do_associate", "dissociate": "do_dissociate"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.cloud import eips as cloud_eips
        from core.region.registry import get_manager

        own = _owner(cred)
        name = check_name(body.get("name", ""))
        if cloud_eips.is_cloud_request(body):
            row = cloud_eips.create(session, cred, body, name, own)
            self.audit(session, cred, "create", row, notes="allocating in the cloud")
            return [row]
        ref = body.get("network") or body.get("network_id")
        if not ref:
            raise InputParameterError("network: required (an eip network)")
        net = get_manager("networks").lookup(session, cred, str(ref), "network")
        if net.server_type != "eip":
            raise InputParameterError(f"network {net.name} is not an eip network")
        bw = body.get("bandwidth", 0)
        if isinstance(bw, bool) or not isinstance(bw, int) or bw < 0:
            raise InputParameterError("bandwidth: must be a non-negative integer (Mbps)")
        flags = self._eip_flags(body)
        quotas.reserve(session, own["tenant_id"], own["domain_id"], eip=1)
        row = Eip(name=name, network_id=net.id, bandwidth=bw, status="ready", **flags, **own)
        session.add(row)
        session.flush()
        a = ipam.allocate(session, net, "eip", row.id, address=body.get("ip_addr") or None)
        row.ip_addr = a.ip_addr
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        flags = self._eip_flags(body)
        apply_update(row, {k: v for k, v in body.items() if k not in flags}, ("name", "description", "bandwidth"))
        for k, v in flags.items():
            setattr(row, k, v)
        return row

    @staticmethod
    def _eip_flags(body: dict[str, Any]) -> dict[str, Any]:
        """Cloudpods' ``charge_type`` (traffic|bandwidth) and ``auto_dellocate`` (released when
        dissociated; climc sends it as "true"/"false"), validated; only those given."""
        from core.region.eips import CHARGE_TYPES

        out: dict[str, Any] = {}
        if body.get("charge_type") is not None:
            if not isinstance(body["charge_type"], str) or body["charge_type"] not in CHARGE_TYPES:
                raise InputParameterError(f"charge_type: must be {' or '.join(CHARGE_TYPES)}")
            out["charge_type"] = body["charge_type"]
        if body.get("auto_dellocate") is not None:
            v = body["auto_dellocate"]
            if not isinstance(v, bool | str):
                raise InputParameterError("auto_dellocate: must be true or false")
            out["auto_dellocate"] = bool(parse_bool(v, "auto_dellocate", False))
        return out

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        from core.region.models import Cloudprovider, Cloudregion

        add_names(items, "associate_id", names_by_id(session, Server, [r.associate_id for r in rows]),
                  "associate_name")
        add_names(items, "manager_id", names_by_id(session, Cloudprovider, [r.manager_id for r in rows]), "manager")
        add_names(items, "cloudregion_id", names_by_id(session, Cloudregion, [r.cloudregion_id for r in rows]),
                  "cloudregion")

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> dict[str, Any] | None:
        if row.manager_id:  # a cloud's: released there by a task, then gone here
            from core.region.cloud import eips as cloud_eips

            cloud_eips.delete(session, cred, row)
            return self.to_dict(session, row)
        if row.associate_id:
            raise NotEmptyError(f"eip {row.name} is associated: dissociate it first")
        from core.region import eips as local_eips

        local_eips.drop(session, row)
        return None

    def do_associate(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """A cloud's eip: its cloud maps it (a task); an eip network's: mapped to the server's nic
        here, as ``server-associate-eip`` does (the same checks, the host told the NAT)."""
        from core.region import eips as local_eips
        from core.region.cloud import eips as cloud_eips
        from core.region.registry import get_manager

        data = parse(cloud_eips.EipAssociate, body)
        if row.manager_id:
            if data.ip_addr:
                raise InputParameterError("ip_addr: a cloud's eip maps to its instance's primary address")
            cloud_eips.associate(session, cred, row, body)
            return
        server = get_manager("servers").lookup(session, cred, data.instance_id, "server")
        if server.pending_deleted:
            raise InvalidStatusError(f"server {server.name} is in the recycle bin")
        local_eips.associate(session, cred, server, row.id, data.ip_addr)

    def do_dissociate(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region import eips as local_eips
        from core.region.cloud import eips as cloud_eips

        if row.manager_id:
            cloud_eips.dissociate(session, cred, row, body)
            return
        data = parse(cloud_eips.EipDissociate, body)
        server = session.get(Server, row.associate_id) if row.associate_id else None
        if server is None:
            raise InvalidStatusError(f"eip {row.name} is not associated")
        local_eips.dissociate(session, server, data.auto_delete)

