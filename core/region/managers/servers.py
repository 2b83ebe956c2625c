"""Servers: create (single/batch), details, update, recycle bin, and every action through tasks."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import BindParameter, bindparam, func, or_, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.inputs import int64
from core.api.listing import ListQuery, parse_bool
from core.db.base import utcnow
from core.db.engine import plain_rows
from core.errors import InputParameterError, InvalidStatusError
from core.region import quotas
from core.region import statemachine as sm
from core.region.guards import guard_capability, guard_host_online
from core.region.managers._util import apply_update, names_by_id, unique_name
from core.region.models import Disk, Eip, Host, IpAllocation, Network, Server, Zone
from core.region.resource import Manager
from core.region.sizes import MAX_DISKS, to_mb
from core.tasks.engine import submit
from core.tasks.models import Task

POWER_ACTIONS = ("start", "stop", "restart", "reset", "suspend", "resume")
# The detail queries of every server list page and show, built once (building and keying a statement
# cost more than running it): each takes the page's server ids as ``ids``.
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_NICS = (select(IpAllocation.owner_id, IpAllocation.nic_index, IpAllocation.ip_addr, IpAllocation.mac,
                IpAllocation.network_id, IpAllocation.ifname, IpAllocation.bw_limit, Network.name)
         .join(Network, Network.id == IpAllocation.network_id)
         .where(IpAllocation.owner_type == "server", IpAllocation.owner_id.in_(_IDS))
         .order_by(IpAllocation.nic_index))
_DISKS = (select(Disk.server_id, Disk.id, Disk.disk_index, Disk.disk_size, Disk.disk_type, Disk.disk_format,
                 Disk.storage_id, Disk.template_id, Disk.status)
          .where(Disk.server_id.in_(_IDS)).order_by(Disk.disk_index))
_EIPS = select(Eip.associate_id, Eip.ip_addr).where(Eip.associate_type == "server", Eip.associate_id.in_(_IDS))
_SPEC_KEYS = ("cdrom", "boot_order", "fail_reason")  # what add_details shows of create_spec


def _spec_shown(row: Any) -> tuple[Any, ...]:
    """create_spec's cdrom, boot_order and fail_reason: a list page's plain row carries them as
    columns (``list_extra_columns``), a server loaded whole in its create_spec."""
    if hasattr(row, "spec_cdrom"):
        return row.spec_cdrom, row.spec_boot_order, row.spec_fail_reason
    spec = row.create_spec or {}
    return tuple(spec.get(k) for k in _SPEC_KEYS)


class ServerManager(Manager):
    keyword, plural, model = "server", "servers", Server
    owned = True
    contexts: ClassVar[dict[str, str]] = {"hosts": "host_id", "zones": "zone_id"}
    columns = ("id", "name", "description", "status", "created_at", "updated_at", "meta", "tenant_id", "domain_id",
               "is_public", "pending_deleted", "pending_deleted_at", "vcpu_count", "vmem_size", "hypervisor",
               "os_type", "os_arch", "host_id", "zone_id", "keypair_id", "secgroup_id", "power_status",
               "status_reason", "auto_start", "active_task_id", "external_id", "manager_id", "src_ip_check",
               "src_mac_check")
    actions: ClassVar[dict[str, str]] = {
        **{a: a for a in POWER_ACTIONS},  # dispatched by action_fn below
        "syncstatus": "do_syncstatus", "change-config": "do_change_config", "migrate": "do_migrate",
        "live-migrate": "do_live_migrate",
        "rebuild-root": "do_rebuild_root", "attachdisk": "do_attachdisk", "detachdisk": "do_detachdisk",
        "cancel-delete": "do_cancel_delete", "purge": "do_purge", "save-image": "do_save_image",
        "add-secgroup": "do_add_secgroup", "revoke-secgroup": "do_revoke_secgroup", "set-secgroup": "do_set_secgroup",
        "attachnetwork": "do_attachnetwork", "detachnetwork": "do_detachnetwork",
        "instance-snapshot": "do_instance_snapshot", "change-owner": "do_change_owner",
        "set-password": "do_reset_password", "reset-password": "do_reset_password",
        "login-info": "do_login_info", "createdisk": "do_createdisk",
        "associate-eip": "do_associate_eip", "dissociate-eip": "do_dissociate_eip",
        "change-bandwidth": "do_change_bandwidth",
        "change-ipaddr": "do_change_ipaddr", "instance-snapshot-reset": "do_instance_snapshot_reset",
        "insertiso": "do_insertiso", "ejectiso": "do_ejectiso", "set-boot-index": "do_set_boot_index",
    }
    specs: ClassVar[dict[str, str]] = {"tasks": "spec_tasks", "status": "spec_status", "iso": "spec_iso"}
    class_actions: ClassVar[dict[str, str]] = {"forecast": "forecast"}
    cloud_ops = None  # a cloud's server verbs go through its zone host's driver (capabilities decide)
    row_lists = True  # lists load plain rows: base_dict/add_details read only these columns
    # of create_spec a list shows three keys: read just those in SQL, not every row's whole spec
    list_extra_columns = tuple(Server.create_spec[k].label(f"spec_{k}") for k in _SPEC_KEYS)

    def list_filter(self, session: Session, cred: Credential, stmt: Any, q: ListQuery) -> Any:
        """``?network=``: servers with a NIC on that network (Cloudpods' server list filter)."""
        ids = self.ref_values(session, cred, q, "network", "network_id")
        if ids:
            stmt = stmt.where(Server.id.in_(select(IpAllocation.owner_id).where(
                IpAllocation.owner_type == "server", IpAllocation.network_id.in_(ids))))
        return stmt

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.server_create import create_servers

        if ctx is not None:
            body = {**body, f"prefer_{ctx[0][:-1]}": ctx[1]}
        return create_servers(self, session, cred, body, count)

    def forecast(self, session: Session, cred: Credential, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /servers/forecast``: would this create fit, and if not, which filter says why."""
        from core.region.server_create import forecast_servers

        return {"forecast": forecast_servers(session, cred, body)}

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Server, body["name"], scope={"tenant_id": row.tenant_id}, exclude_id=row.id)
        for flag in ("auto_start", "src_ip_check", "src_mac_check"):
            if flag in body:
                body = {**body, flag: bool(parse_bool(body[flag], flag))}
        apply_update(row, body, ("name", "description", "auto_start", "os_type", "src_ip_check", "src_mac_check"))
        return row

    def add_details(self, session: Session, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        ids = [r.id for r in rows]
        hosts = names_by_id(session, Host, [r.host_id for r in rows])
        zones = names_by_id(session, Zone, [r.zone_id for r in rows])
        nics: dict[str, list[dict[str, Any]]] = {}
        for owner_id, index, ip_addr, mac, network_id, ifname, bw_limit, net_name in plain_rows(
                session, _NICS, {"ids": ids}):
            nics.setdefault(owner_id, []).append({"index": index, "ip_addr": ip_addr, "mac": mac,
                                                  "network_id": network_id, "network": net_name,
                                                  "ifname": ifname, "bw_limit": bw_limit})
        disks: dict[str, list[dict[str, Any]]] = {}
        for d in plain_rows(session, _DISKS, {"ids": ids}):
            disks.setdefault(d.server_id, []).append({
                "id": d.id, "index": d.disk_index, "size": d.disk_size, "disk_type": d.disk_type,
                "disk_format": d.disk_format, "storage_id": d.storage_id, "image_id": d.template_id or None,
                "status": d.status})
        from core.region.secgroups import secgroups_of

        sgs = secgroups_of(session, ids)
        eips = dict(plain_rows(session, _EIPS, {"ids": ids}).tuples().all()) if ids else {}
        for r, it in zip(rows, items, strict=True):
            it["eip"] = eips.get(r.id, "")
            it["secgroups"] = sgs.get(r.id, [])
            it["secgroup"] = ",".join(g["name"] for g in it["secgroups"])
            it["host"] = hosts.get(r.host_id or "", "")
            it["zone"] = zones.get(r.zone_id or "", "")
            n = nics.get(r.id, [])
            it["nics"] = n
            it["ips"] = ",".join(x["ip_addr"] for x in n)
            dl = disks.get(r.id, [])
            it["disks_info"] = dl
            it["disk"] = sum(x["size"] for x in dl)
            cdrom, boot_order, fail_reason = _spec_shown(r)
            if cdrom:
                it["cdrom"] = cdrom.get("name", "")
            if boot_order:
                it["boot_order"] = ",".join(boot_order)
            if fail_reason:
                it["fail_reason"] = fail_reason  # e.g. the scheduler's explanation

    # ---- recycle bin -------------------------------------------------------------------------
    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> dict[str, Any] | None:
        override = bool(parse_bool(params.get("override_pending_delete"), "override_pending_delete", False))
        purge = bool(parse_bool(params.get("purge"), "purge", False))
        # Cloudpods' delete_eip: its EIP is released rather than kept (dissociated) for reuse
        delete_eip = bool(parse_bool(params.get("delete_eip"), "delete_eip", False))
        sm.guard_busy(row)
        if override or purge or row.pending_deleted:
            if row.pending_deleted and not (override or purge):
                raise InvalidStatusError(f"server {row.name} is already in the recycle bin: purge it "
                                         "(?override_pending_delete=true or the purge action)")
            self.start_delete(session, cred, row, purge, delete_eip)
        else:
            sm.check(row, "delete")
            self._pending_delete(session, cred, row)
            from core.region.eips import dissociate

            if not row.manager_id:  # as Cloudpods: the EIP leaves a server in the recycle bin
                dissociate(session, row, delete_eip)
        session.flush()
        return self.to_dict(session, row)

    def _pending_delete(self, session: Session, cred: Credential, row: Any) -> None:
        """To the recycle bin, as Cloudpods: the guest is stopped and the server's disks go to the bin
        with it (they leave ``disk-list``); its addresses stay held until the purge."""
        now = utcnow()
        row.pending_deleted, row.pending_deleted_at = True, now
        for d in session.scalars(select(Disk).where(Disk.server_id == row.id)):
            d.pending_deleted, d.pending_deleted_at = True, now
        host = session.get(Host, row.host_id) if row.host_id else None
        if row.status != "running" or host is None:
            return
        if host.host_status != "online":
            sm.set_reason(row, f"in the recycle bin; host {host.name} is {host.host_status}, so its guest "
                               "could not be stopped (it is when the server is purged)")
            return
        sm.apply(row, "stop")
        t = submit(session, "ServerPowerTask", "server", row.id, row.name,
                   {"action": "stop", "is_force": False, "timeout_secs": 30}, cred=cred, tenant_id=row.tenant_id,
                   domain_id=row.domain_id)
        row.active_task_id = t.id

    def start_delete(self, session: Session, cred: Credential | None, row: Any, purge: bool,
                      delete_eip: bool = False) -> Task:
        before = row.status
        sm.apply(row, "delete")
        row.create_spec = {**row.create_spec, "status_before_delete": before}
        t = submit(session, "ServerDeleteTask", "server", row.id, row.name, {"purge": purge, "delete_eip": delete_eip},
                   cred=cred, tenant_id=row.tenant_id, domain_id=row.domain_id)
        row.active_task_id = t.id
        return t

    def do_cancel_delete(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        if not row.pending_deleted:
            raise InvalidStatusError(f"server {row.name} is not in the recycle bin")
        sm.guard_busy(row)
        unique_name(session, Server, row.name, scope={"tenant_id": row.tenant_id, "pending_deleted": False},
                    exclude_id=row.id)
        row.pending_deleted, row.pending_deleted_at = False, None
        for d in session.scalars(select(Disk).where(Disk.server_id == row.id)):
            d.pending_deleted, d.pending_deleted_at = False, None

    def do_purge(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        sm.guard_busy(row)
        self.start_delete(session, cred, row, True)

    # ---- actions -----------------------------------------------------------------------------
    def _task(self, session: Session, cred: Credential, row: Any, event: str, task: str,
              params: dict[str, Any]) -> None:
        if row.pending_deleted:
            raise InvalidStatusError(f"server {row.name} is in the recycle bin: cancel-delete it first")
        sm.guard_busy(row)
        if event != "syncstatus":  # syncstatus of an offline host's server settles it as unknown
            guard_host_online(session, row)
        guard_capability(session, row, event)
        sm.apply(row, event)
        t = submit(session, task, "server", row.id, row.name, params, cred=cred, tenant_id=row.tenant_id,
                   domain_id=row.domain_id)
        row.active_task_id = t.id

    def action_fn(self, action: str) -> Any:
        if action in POWER_ACTIONS:
            def power(m: ServerManager, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
                params: dict[str, Any] = {"action": action}
                if action == "stop":
                    params["is_force"] = bool(parse_bool(body.get("is_force"), "is_force", False))
                    params["timeout_secs"] = int64(body.get("timeout_secs") or 30, "timeout_secs", 1, 3600)
                m._task(session, cred, row, action, "ServerPowerTask", params)
            return power
        return super().action_fn(action)

    # ---- security groups (Cloudpods' add-secgroup / revoke-secgroup / set-secgroup) -------------
    def _secgroup_body(self, session: Session, cred: Credential, body: dict[str, Any]) -> list[str]:
        from core.region.secgroups import secgroup_refs

        refs = body.get("secgroup_ids", body.get("secgroups", body.get("secgroup")))
        if isinstance(refs, str):
            refs = [refs]
        if not refs:
            raise InputParameterError("secgroup_ids: name at least one security group")
        return secgroup_refs(session, cred, refs, "secgroup_ids")

    def _set_secgroups(self, session: Session, row: Any, ids: list[str]) -> None:
        from core.region.secgroups import MAX_SECGROUPS, set_server_secgroups

        if not ids:
            raise InputParameterError(f"server {row.name} must stay in at least one security group "
                                      "(set-secgroup replaces them)")
        if len(ids) > MAX_SECGROUPS:
            raise InputParameterError(f"a server may be in at most {MAX_SECGROUPS} security groups")
        set_server_secgroups(session, row, ids)

    def do_add_secgroup(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.secgroups import server_secgroup_ids

        have = server_secgroup_ids(session, row.id)
        add = self._secgroup_body(session, cred, body)
        already = [i for i in add if i in have]
        if already and len(already) == len(add):
            raise InputParameterError(f"server {row.name} is already in security group(s) {', '.join(already)}")
        self._set_secgroups(session, row, have + [i for i in add if i not in have])

    def do_revoke_secgroup(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.secgroups import server_secgroup_ids

        have = server_secgroup_ids(session, row.id)
        drop = self._secgroup_body(session, cred, body)
        missing = [i for i in drop if i not in have]
        if missing:
            raise InputParameterError(f"server {row.name} is not in security group(s) {', '.join(missing)}")
        self._set_secgroups(session, row, [i for i in have if i not in drop])

    def do_set_secgroup(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        self._set_secgroups(session, row, self._secgroup_body(session, cred, body))

    # ---- EIPs (Cloudpods' associate-eip / dissociate-eip): NAT on the guest's host -----------------
    def do_associate_eip(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.eips import associate

        if row.pending_deleted:
            raise InvalidStatusError(f"server {row.name} is in the recycle bin")
        associate(session, cred, row, body.get("eip_id", body.get("eip")), body.get("ip_addr"))

    def do_dissociate_eip(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.eips import dissociate

        auto_delete = bool(parse_bool(body.get("auto_delete"), "auto_delete", False))
        if dissociate(session, row, auto_delete) is None:
            raise InputParameterError(f"server {row.name} has no eip")

    def do_change_bandwidth(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """Cloudpods' change-bandwidth: one nic (``index``, ``mac`` or ``ip_addr``) gets ``bandwidth``
        Mbps each way (0: no limit); its host's agent applies it with tc on the running guest's port."""
        from core.host_protocol import MAX_BW_LIMIT
        from core.region.secgroups import touch_hosts

        bw = body.get("bandwidth")
        if isinstance(bw, bool) or not isinstance(bw, int) or not 0 <= bw <= MAX_BW_LIMIT:
            raise InputParameterError(f"bandwidth: an integer number of Mbps, 0 (no limit) to {MAX_BW_LIMIT}")
        nics = list(session.scalars(select(IpAllocation).where(IpAllocation.owner_type == "server",
                                                               IpAllocation.owner_id == row.id)
                                    .order_by(IpAllocation.nic_index)))
        keys = [k for k in ("index", "mac", "ip_addr") if body.get(k) not in (None, "")]
        if len(keys) != 1:
            raise InputParameterError("name the nic by exactly one of index, mac or ip_addr")
        want = body[keys[0]]
        attr = {"index": "nic_index", "mac": "mac", "ip_addr": "ip_addr"}[keys[0]]
        if keys[0] == "mac" and isinstance(want, str):
            want = want.lower()
        if keys[0] == "index" and isinstance(want, str) and want.isdigit():
            want = int(want)
        match = [n for n in nics if getattr(n, attr) == want or (attr == "mac" and n.mac.lower() == want)]
        if not match:
            raise InputParameterError(f"server {row.name} has no nic with {keys[0]} {want!r}")
        if row.manager_id or row.external_id:
            raise InputParameterError(f"server {row.name} is a cloud server: change-bandwidth limits nics on "
                                      "KVM hosts only")
        match[0].bw_limit = bw
        session.flush()
        touch_hosts(session, [row.host_id])

    def do_syncstatus(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        self._task(session, cred, row, "syncstatus", "ServerSyncstatusTask", {})

    def do_change_config(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.server_create import MAX_VCPU, MAX_VMEM_MB

        vcpu = body.get("vcpu_count", row.vcpu_count)
        if isinstance(vcpu, bool) or not isinstance(vcpu, int) or not 1 <= vcpu <= MAX_VCPU:
            raise InputParameterError(f"vcpu_count: must be between 1 and {MAX_VCPU}")
        vmem = to_mb(body.get("vmem_size", row.vmem_size), "vmem_size")
        if vmem > MAX_VMEM_MB:
            raise InputParameterError(f"vmem_size: more than {MAX_VMEM_MB} MB")
        if vcpu == row.vcpu_count and vmem == row.vmem_size:
            raise InputParameterError("change-config: nothing to change")
        sm.guard_busy(row)
        sm.check(row, "change-config")
        delta = {"cpu": vcpu - row.vcpu_count, "memory": vmem - row.vmem_size}
        quotas.reserve(session, row.tenant_id, row.domain_id, **{k: v for k, v in delta.items() if v > 0})
        self._task(session, cred, row, "change-config", "ServerChangeConfigTask",
                   {"vcpu_count": vcpu, "vmem_size": vmem, "delta": delta})

    def do_migrate(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.registry import get_manager

        target = None
        ref = body.get("prefer_host") or body.get("prefer_host_id") or body.get("host")
        if ref:
            target = get_manager("hosts").lookup(session, cred, str(ref), "host").id
            if target == row.host_id:
                raise InputParameterError("migrate: the server is already on that host")
        self._task(session, cred, row, "migrate", "ServerMigrateTask", {"prefer_host": target})

    def do_live_migrate(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """Move a running server to another host without stopping it (both hosts declare live_migrate)."""
        from core.region.registry import get_manager

        unknown = sorted(set(body) - {"prefer_host", "prefer_host_id", "host"})
        if unknown:
            raise InputParameterError(f"live-migrate: unknown parameter(s) {', '.join(unknown)}")
        target = None
        ref = body.get("prefer_host") or body.get("prefer_host_id") or body.get("host")
        if ref:
            if not isinstance(ref, str):
                raise InputParameterError("prefer_host: must be a host id or name")
            target = get_manager("hosts").lookup(session, cred, ref, "host").id
            if target == row.host_id:
                raise InputParameterError("live-migrate: the server is already on that host")
        self._task(session, cred, row, "live-migrate", "ServerLiveMigrateTask", {"prefer_host": target})

    def do_rebuild_root(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """A fresh system disk: ``image_id`` (default: the same image), and the new root's login as
        Cloudpods sets it: ``password`` (policy-checked) and/or ``keypair`` (id or name; the server's
        keypair changes with it). Neither: the new root has the keypair the server had, no password."""
        from core.region.images import check_image
        from core.region.passwords import sealed_password
        from core.region.registry import get_manager

        for key in ("image_id", "image", "password", "keypair", "keypair_id"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InputParameterError(f"{key}: must be a string")
        ref = body.get("image_id") or body.get("image")
        img = check_image(session, str(ref), cred).id if ref else None
        password = body.get("password") or None
        if password:
            from core.keystone.passwords import check_password_policy

            check_password_policy(password, "server password")
        kp_ref = body.get("keypair") or body.get("keypair_id")
        keypair = get_manager("keypairs").lookup(session, cred, kp_ref, "keypair").id if kp_ref else None
        if not row.host_id:
            raise InvalidStatusError(f"server {row.name} has no host")
        self._task(session, cred, row, "rebuild-root", "ServerRebuildRootTask",
                   {"image_id": img, "keypair_id": keypair, **sealed_password(password)})

    def do_attachdisk(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.registry import get_manager

        ref = body.get("disk_id") or body.get("disk")
        if not ref:
            raise InputParameterError("disk_id: required")
        disk = get_manager("disks").lookup(session, cred, str(ref), "disk")
        if disk.server_id:
            raise InvalidStatusError(f"disk {disk.name} is already attached")
        if disk.status != "ready":
            raise InvalidStatusError(f"disk {disk.name} is {disk.status}, not ready")
        n = session.scalar(select(func.count()).select_from(Disk).where(Disk.server_id == row.id)) or 0
        if n >= MAX_DISKS:
            raise InputParameterError(f"server {row.name} has {n} disks already (at most {MAX_DISKS})")
        sm.guard_busy(disk, "disk")
        self._task(session, cred, row, "attachdisk", "ServerAttachDiskTask", {"disk_id": disk.id})
        disk.status, disk.active_task_id = "attaching", row.active_task_id

    def do_createdisk(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``server-create-disk SERVER SIZE|IMAGE[:SIZE]``: a data disk made on the system disk's storage
        and attached in one call (Cloudpods' createdisk); it goes with the server (auto_delete)."""
        from core.region.registry import get_manager
        from core.region.server_create import DiskIn, disk_from_str

        raw = body.get("disks", body.get("disk"))
        if isinstance(raw, list):
            if len(raw) != 1:
                raise InputParameterError("disks: one disk at a time")
            raw = raw[0]
        if isinstance(raw, str) and raw:
            spec = disk_from_str(raw)
        elif isinstance(raw, dict):
            spec = DiskIn.model_validate(raw)
        else:
            raise InputParameterError("disk: required (a size such as 10g, or IMAGE[:size])")
        if row.pending_deleted:
            raise InvalidStatusError(f"server {row.name} is in the recycle bin: cancel-delete it first")
        sm.guard_busy(row)
        root = session.scalar(select(Disk).where(Disk.server_id == row.id, Disk.disk_index == 0))
        storage = spec.storage_id or (root.storage_id if root is not None else None)
        n = len(list(session.scalars(select(Disk.id).where(Disk.server_id == row.id))))
        want: dict[str, Any] = {"name": str(body.get("name") or f"{row.name}-disk{n}"), "storage": storage}
        if spec.size is not None:
            want["size"] = spec.size
        if spec.image_id:
            want["image"] = spec.image_id
        disk = get_manager("disks").create(session, cred, want, 1)[0]
        session.flush()
        self._task(session, cred, row, "attachdisk", "ServerAttachDiskTask", {"disk_id": disk.id, "auto_delete": True})
        disk.status, disk.active_task_id = "attaching", row.active_task_id

    def do_detachdisk(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.registry import get_manager

        ref = body.get("disk_id") or body.get("disk")
        if not ref:
            raise InputParameterError("disk_id: required")
        disk = get_manager("disks").lookup(session, cred, str(ref), "disk")
        if disk.server_id != row.id:
            raise InputParameterError(f"disk {disk.name} is not attached to server {row.name}")
        if disk.disk_index == 0:
            raise InputParameterError("the system disk cannot be detached")
        self._task(session, cred, row, "detachdisk", "ServerDetachDiskTask",
                   {"disk_id": disk.id, "keep_disk": bool(parse_bool(body.get("keep_disk"), "keep_disk", True))})
        disk.status, disk.active_task_id = "detaching", row.active_task_id

    def do_attachnetwork(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.nics import attach_network

        attach_network(self, session, cred, row, body)

    def do_detachnetwork(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.nics import detach_network

        detach_network(self, session, cred, row, body)

    def do_instance_snapshot_reset(self, session: Session, cred: Credential, row: Any,
                                   body: dict[str, Any]) -> None:
        """``instance-snapshot-reset SERVER --instance-snapshot ISNAP``: every disk back to it (stopped)."""
        from core.region.managers.instance_snapshots import reset_to_instance_snapshot

        reset_to_instance_snapshot(session, cred, row, body)

    def do_change_ipaddr(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.nics import change_ipaddr

        change_ipaddr(session, cred, row, body)

    def do_save_image(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        """``server-save-image``: the system disk of the stopped server into a new image."""
        from core.region.saveimage import save_image

        root = session.scalar(select(Disk).where(Disk.server_id == row.id, Disk.disk_index == 0))
        if root is None:
            raise InvalidStatusError(f"server {row.name} has no system disk")
        out = save_image(session, cred, row, root, body)
        return {"server": {**self.to_dict(session, row), **out}}

    def do_reset_password(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``server-reset-password SERVER --password``: set at the stopped guest's next boot."""
        from core.region.passwords import reset_password

        reset_password(session, cred, row, body)

    def do_login_info(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> dict[str, Any]:
        """``server-logininfo`` (Cloudpods' login-info action, so each reading is audited): the account;
        the password for the server's own project only."""
        from core.region.passwords import login_info

        return login_info(session, cred, row)

    def do_insertiso(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``server-insert-iso SERVER ISO``: the ISO image into the server's CD-ROM drive."""
        from core.region.cdrom import insert_iso

        insert_iso(session, cred, row, body)

    def do_ejectiso(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``server-eject-iso SERVER``: the drive emptied."""
        from core.region.cdrom import eject_iso

        eject_iso(session, cred, row, body)

    def do_set_boot_index(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``server-set-boot-index SERVER --disk 0:1 --cdrom 0:0``: the stopped server's boot order."""
        from core.region.cdrom import set_boot_index

        set_boot_index(session, cred, row, body)

    def do_change_owner(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``server-change-owner SERVER PROJECT``: the server, its disks and snapshots to another project."""
        from core.region.change_owner import change_owner

        change_owner(session, cred, row, body)

    def do_instance_snapshot(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        """``instance-snapshot-create``: every disk of the server at one instant (Cloudpods' action)."""
        from core.region.managers.instance_snapshots import create_instance_snapshot
        from core.region.registry import get_manager

        isnap = create_instance_snapshot(session, cred, row, body.get("name"))
        m = get_manager("instance_snapshots")
        m.audit(session, cred, "create", isnap)
        return {"server": {**self.to_dict(session, row), "instance_snapshot_id": isnap.id,
                           "instance_snapshot": m.to_dict(session, isnap)}}

    # ---- specs -------------------------------------------------------------------------------
    def spec_tasks(self, session: Session, cred: Credential, row: Any, q: ListQuery) -> dict[str, Any]:
        from core.region.managers.tasks import task_dict

        batch = (row.create_spec or {}).get("create_task_id")
        mine = or_(Task.obj_id == row.id, Task.id == batch) if batch else Task.obj_id == row.id
        tasks = session.scalars(select(Task).where(mine).order_by(Task.created_at.desc())
                                .limit(min(q.limit, 200)))
        return {"tasks": [task_dict(t) for t in tasks]}

    def spec_iso(self, session: Session, cred: Credential, row: Any, q: ListQuery) -> dict[str, Any]:
        """``server-iso``: what the server's CD-ROM drive holds."""
        from core.region.cdrom import cdrom_of

        return {"iso": cdrom_of(row)}

    def spec_status(self, session: Session, cred: Credential, row: Any, q: ListQuery) -> dict[str, Any]:
        return {"status": row.status, "power_status": row.power_status, "status_reason": row.status_reason,
                "active_task_id": row.active_task_id}
