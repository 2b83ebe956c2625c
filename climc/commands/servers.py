"""Servers and disks."""
from __future__ import annotations

import re
from typing import Any

import click

from climc.commands.compute_common import (
    S,
    batch,
    finish,
    in_turn,
    make_action,
    make_delete,
    make_list,
    make_show,
    make_update,
    names_of,
)
from climc.output import output_options, show_list, show_object
from climc.wait import Target, follow, wait_options

SERVERS = names_of("servers")
SERVER_COLUMNS = ["id", "name", "status", "vcpu_count", "vmem_size", "ips", "host", "zone", "disk", "created_at"]

server_list = make_list("server-list", "servers", SERVER_COLUMNS, "List servers",
                        [("host", "host"), ("zone", "zone"), ("status", "status"), ("hypervisor", "hypervisor")])
server_show = make_show("server-show", "servers", "server", "Show a server")
server_update = make_update("server-update", "servers", "server",
                            [("name", str), ("description", str), ("src_ip_check", bool), ("src_mac_check", bool)],
                            "Update a server")
server_start = make_action("server-start", "servers", "server", "start", "Start servers", waitable=True)
server_restart = make_action("server-restart", "servers", "server", "restart", "Restart servers", waitable=True)
server_reset = make_action("server-reset", "servers", "server", "reset", "Reset servers (hard)", waitable=True)
server_suspend = make_action("server-suspend", "servers", "server", "suspend", "Suspend servers", waitable=True)
server_resume = make_action("server-resume", "servers", "server", "resume", "Resume suspended servers", waitable=True)
server_syncstatus = make_action("server-syncstatus", "servers", "server", "syncstatus",
                                "Ask the host agent for servers' real status", waitable=True)
server_cancel_delete = make_action("server-cancel-delete", "servers", "server", "cancel-delete",
                                   "Take servers back out of the recycle bin")
server_purge = make_action("server-purge", "servers", "server", "purge", "Delete servers for good", waitable=True)
disk_list = make_list("disk-list", "disks", ["id", "name", "disk_size", "disk_type", "disk_format", "status",
                                             "storage", "server"], "List disks",
                      [("server", "server"), ("storage", "storage")])
disk_show = make_show("disk-show", "disks", "disk", "Show a disk")
disk_delete = make_delete("disk-delete", "disks", "disk", "Delete detached disks", waitable=True)


@click.command("server-create")
@click.argument("name")
@click.option("--ncpu", "vcpu_count", type=int, default=None, help="vCPUs  [default: 1]")
@click.option("--mem-spec", "--vmem", "mem_spec", default=None, help="Memory: 2g, 512m or MB  [default: 1g]")
@click.option("--disk", "disks", multiple=True, help="IMAGE[:size] for the system disk, then sizes (100g)")
@click.option("--image", default=None, help="IMAGE[:size] of the system disk (as a first --disk; --disk then gives "
                                            "data disks), e.g. the image a bare-metal machine is deployed with")
@click.option("--instance-snapshot", default=None,
              help="Clone: disks, CPU, memory and networks from this instance snapshot")
@click.option("--net", "nets", multiple=True, help="NETWORK[:ip] (repeatable)")
@click.option("--cdrom", "--iso", "cdrom", default=None,
              help="ISO image (id or name) in the CD-ROM drive, booted first (an installer)")
@click.option("--schedtag", "schedtags", multiple=True,
              help="TAG:require|exclude|prefer|avoid[:hosts|zones] (repeatable); a host's or zone's tags are its "
                   "metadata keys and key=value")
@click.option("--count", type=click.IntRange(1, 1000), default=1, show_default=True, help="How many servers")
@click.option("--prefer-host", "--host", "host", default=None, help="Put it on this host (id or name)")
@click.option("--prefer-zone", "--zone", "zone", default=None, help="Put it in this zone (id or name)")
@click.option("--prefer-region", "--region", "region", default=None,
              help="Put it in this cloud region (id or name); a cloud's region implies its --hypervisor")
@click.option("--prefer-manager", "--manager", "manager", default=None,
              help="Put it in this cloudprovider's cloud (id or name: cloudprovider-list); implies --hypervisor")
@click.option("--hypervisor", default=None, help="kvm (default), baremetal, esxi, aws, ... (the host's driver)")
@click.option("--keypair", default=None, help="SSH keypair (id or name) put into the guest")
@click.option("--password", default=None, help="Login password of the guest (default: none, or the keypair)")
@click.option("--secgroups", "--secgroup", "secgroups", multiple=True,
              help="Security group (id or name; repeatable; default: the project's Default)")
@click.option("--auto-start", is_flag=True, help="Start once deployed")
@click.option("--eip-bw", type=click.IntRange(1), default=None,
              help="Allocate a new EIP with this bandwidth (Mbps) and associate it (one per server)")
@click.option("--eip-charge-type", type=click.Choice(["traffic", "bandwidth"]), default=None,
              help="Charge type of the new EIP  [default: bandwidth]")
@click.option("--eip-auto-dellocate", is_flag=True, help="Release the new EIP when it leaves the server (delete)")
@click.option("--eip", default=None, help="Associate this existing EIP (id or name) with the server")
@click.option("--generate-name", is_flag=True, help="NAME is a pattern: make unique names")
@click.option("--desc", "--description", "desc", default=None, help="Description")
@click.option("--dry-run", is_flag=True, help="Only ask the scheduler whether it would fit")
@wait_options()
@output_options
@click.pass_obj
def server_create(obj: Any, name: str, vcpu_count: int | None, mem_spec: str | None, disks: tuple[str, ...],
                  image: str | None, instance_snapshot: str | None, nets: tuple[str, ...], cdrom: str | None,
                  schedtags: tuple[str, ...], count: int, host: str | None,
                  zone: str | None, region: str | None, manager: str | None, hypervisor: str | None,
                  keypair: str | None, password: str | None, secgroups: tuple[str, ...], auto_start: bool,
                  eip_bw: int | None, eip_charge_type: str | None, eip_auto_dellocate: bool, eip: str | None,
                  generate_name: bool, desc: str | None, dry_run: bool, wait: bool = False,
                  wait_timeout: float = 900.0) -> None:
    """Create servers: NAME --ncpu 2 --mem-spec 2g --disk IMAGE:20g --disk 100g --net NET[:ip] [--eip-bw 10]."""
    if image and instance_snapshot:
        raise click.UsageError("--image and --instance-snapshot both give the system disk: choose one")
    body: dict[str, Any] = {"disks": [image, *disks] if image else list(disks), "nets": list(nets),
                            "auto_start": auto_start}
    for k, v in (("vcpu_count", vcpu_count), ("vmem_size", mem_spec), ("instance_snapshot", instance_snapshot)):
        if v is not None:  # unset: the server's default, or the instance snapshot's
            body[k] = v
    body["generate_name" if generate_name else "name"] = name
    for k, v in (("prefer_host", host), ("prefer_zone", zone), ("prefer_region_id", region),
                 ("prefer_manager_id", manager), ("hypervisor", hypervisor), ("keypair", keypair),
                 ("password", password), ("description", desc), ("cdrom", cdrom), ("eip_bw", eip_bw),
                 ("eip_charge_type", eip_charge_type), ("eip_auto_dellocate", eip_auto_dellocate), ("eip", eip)):
        if v:
            body[k] = v
    if secgroups:
        body["secgroups"] = list(secgroups)
    if schedtags:
        body["schedtags"] = [_schedtag(t) for t in schedtags]
    c = obj.client()
    if dry_run:
        show_forecast(c.post(S, "/servers/forecast", json={"server": body, "count": count})["forecast"])
        return
    if count > 1:
        rows = [o["body"] for o in c.post(S, "/servers", json={"server": body, "count": count})["servers"]]
    else:
        rows = [c.post(S, "/servers", json={"server": body})["server"]]
    if wait:
        # one batch task places them all, then a child task per server: one bar for the batch
        label = f"server {rows[0].get('name')}" if count == 1 else f"{count} servers {name}"
        follow(c, [Target(label, rows[0].get("active_task_id") or "", batch_total=count)], wait_timeout)
        rows = c.get(S, "/servers", params={"id": [r["id"] for r in rows], "limit": count}).get("servers", rows) \
            if count > 1 else [c.get(S, f"/servers/{rows[0]['id']}")["server"]]
    if count > 1:
        show_list(rows, columns=SERVER_COLUMNS)
    else:
        show_object(rows[0])


def _schedtag(spec: str) -> dict[str, str]:
    """``TAG:STRATEGY[:RESOURCE]`` (the tag may hold '=' but not ':')."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise click.BadParameter(f"{spec!r}: give TAG:require|exclude|prefer|avoid[:hosts|zones]",
                                 param_hint="--schedtag")
    out = {"id": parts[0], "strategy": parts[1]}
    if len(parts) == 3:
        out["resource_type"] = parts[2]
    return out


@click.command("server-stop")
@click.argument("idents", nargs=-1, required=True, shell_complete=SERVERS)
@click.option("--force", "--is-force", "force", is_flag=True, help="Power off instead of a clean shutdown")
@click.option("--timeout-secs", "timeout_secs", type=click.IntRange(1, 3600), default=None,
              help="Seconds the guest gets to shut down cleanly before it is powered off [default: 30]")
@wait_options()
@output_options
@click.pass_obj
def server_stop(obj: Any, idents: tuple[str, ...], force: bool, timeout_secs: int | None, wait: bool = False,
                wait_timeout: float = 900.0) -> None:
    """Stop servers."""
    body: dict[str, Any] = {"is_force": force}
    if timeout_secs:
        body["timeout_secs"] = timeout_secs
    c = obj.client()
    batch(obj, idents, "server", "stop", lambda i: c.post(S, f"/servers/{i}/stop", json=body), wait=wait,
          timeout=wait_timeout, refetch=lambda i: c.get(S, f"/servers/{i}"))


@click.command("server-delete")
@click.argument("idents", nargs=-1, required=True, shell_complete=SERVERS)
@click.option("-f", "--override-pending-delete", "--force", "override", is_flag=True,
              help="Delete for good instead of moving to the recycle bin")
@click.option("--delete-eip", is_flag=True, help="Release the server's EIP too (default: it is kept, free)")
@wait_options()
@output_options
@click.pass_obj
def server_delete(obj: Any, idents: tuple[str, ...], override: bool, delete_eip: bool, wait: bool = False,
                  wait_timeout: float = 900.0) -> None:
    """Delete servers (to the recycle bin unless -f)."""
    c = obj.client()
    params = {"override_pending_delete": "true"} if override else {}
    if delete_eip:
        params["delete_eip"] = "true"
    batch(obj, idents, "server", "delete", lambda i: c.delete(S, f"/servers/{i}", params=params), wait=wait,
          timeout=wait_timeout, refetch=lambda i: c.get(S, f"/servers/{i}"))  # -f: gone, nothing shown


@click.command("server-change-config")
@click.argument("ident", shell_complete=SERVERS)
@click.option("--ncpu", "vcpu_count", type=int, default=None)
@click.option("--mem-spec", "--vmem", "mem_spec", default=None, help="New memory: 2g, 512m or MB")
@wait_options()
@output_options
@click.pass_obj
def server_change_config(obj: Any, ident: str, vcpu_count: int | None, mem_spec: str | None, wait: bool = False,
                         wait_timeout: float = 900.0) -> None:
    """Change a stopped server's vCPUs and/or memory."""
    body: dict[str, Any] = {}
    if vcpu_count is not None:
        body["vcpu_count"] = vcpu_count
    if mem_spec is not None:
        body["vmem_size"] = mem_spec
    finish(obj, f"server {ident}", obj.client().post(S, f"/servers/{ident}/change-config", json=body)["server"],
           wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")


def _migrate_verb(name: str, action: str, help_: str) -> click.Command:
    """``server-migrate`` / ``server-live-migrate`` IDENT [--prefer-host HOST]."""
    @click.command(name, help=help_)
    @click.argument("ident", shell_complete=SERVERS)
    @click.option("--prefer-host", "--host", "host", default=None,
                  help="Target host (id or name) [default: the scheduler's pick]")
    @wait_options()
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str, host: str | None, wait: bool = False, wait_timeout: float = 900.0) -> None:
        body = {"prefer_host": host} if host else {}
        finish(obj, f"server {ident}", obj.client().post(S, f"/servers/{ident}/{action}", json=body)["server"],
               wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")
    return cmd


server_migrate = _migrate_verb("server-migrate", "migrate", "Move a stopped server to another host.")
server_live_migrate = _migrate_verb("server-live-migrate", "live-migrate",
                                    "Move a running server to another host without stopping it.")


@click.command("server-rebuild-root")
@click.argument("ident", shell_complete=SERVERS)
@click.option("--image", default=None, help="Image of the new system disk (default: the same image)")
@click.option("--password", default=None, help="Login password of the new system disk")
@click.option("--keypair", default=None, help="SSH keypair of the new system disk (becomes the server's)")
@wait_options()
@output_options
@click.pass_obj
def server_rebuild_root(obj: Any, ident: str, image: str | None, password: str | None, keypair: str | None,
                        wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Rebuild a server's system disk (optionally from another image, with a new password or keypair)."""
    body = {k: v for k, v in {"image_id": image, "password": password, "keypair": keypair}.items() if v}
    finish(obj, f"server {ident}", obj.client().post(S, f"/servers/{ident}/rebuild-root", json=body)["server"],
           wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")


def _disk_verb(name: str, action: str, help_: str) -> click.Command:
    """``server-attach-disk`` / ``server-detach-disk`` IDENT DISK: one action on the server's disk."""
    @click.command(name, help=help_)
    @click.argument("ident", shell_complete=SERVERS)
    @click.argument("disk")
    @wait_options()
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str, disk: str, wait: bool = False, wait_timeout: float = 900.0) -> None:
        out = obj.client().post(S, f"/servers/{ident}/{action}", json={"disk_id": disk})["server"]
        finish(obj, f"server {ident}", out, wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")
    return cmd


server_attach_disk = _disk_verb("server-attach-disk", "attachdisk", "Attach a disk to a server.")
server_detach_disk = _disk_verb("server-detach-disk", "detachdisk", "Detach a disk from a server.")


@click.command("server-tasks")
@click.argument("ident", shell_complete=SERVERS)
@output_options
@click.pass_obj
def server_tasks(obj: Any, ident: str) -> None:
    """List a server's tasks, newest first."""
    items = obj.client().get(S, f"/servers/{ident}/tasks")["tasks"]
    show_list(items, columns=["id", "task_name", "stage", "status", "reason", "created_at"])


@click.command("disk-create")
@click.argument("name")
@click.argument("size", required=False)
@click.option("--image", default=None, help="Fill it from this image (SIZE then defaults to the image's)")
@click.option("--storage", default=None)
@click.option("--zone", default=None)
@click.option("--backend", default=None, help="Storage type (local, rbd, ...)")
@wait_options()
@output_options
@click.pass_obj
def disk_create(obj: Any, name: str, size: str | None, image: str | None, storage: str | None, zone: str | None,
                backend: str | None, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Create a data disk: NAME SIZE (e.g. 100g), or NAME --image IMAGE [SIZE]."""
    body: dict[str, Any] = {"name": name}
    for k, v in (("size", size), ("image", image), ("storage", storage), ("prefer_zone", zone),
                 ("storage_type", backend)):
        if v:
            body[k] = v
    disk = obj.client().post(S, "/disks", json={"disk": body})["disk"]
    finish(obj, f"disk {name}", disk, wait=wait, timeout=wait_timeout, refetch=f"/disks/{disk['id']}")


disk_update = make_update("disk-update", "disks", "disk", [("name", str), ("description", str)], "Update a disk")


def show_forecast(fc: dict[str, Any]) -> None:
    """The scheduler's verdict, readable: how many fit, and which filter removed how many hosts and why."""
    import click as _click

    ctx = _click.get_current_context()
    if getattr(ctx.obj, "output_format", "table") in ("json", "yaml"):
        show_object(fc)
        return
    verdict = "yes" if fc.get("can_create") else "NO"
    _click.echo(f"Can create: {verdict} ({fc.get('allow_count', 0)} of {fc.get('req_count', 0)} fit)")
    if fc.get("explanation"):
        _click.echo(f"Why: {fc['explanation']}")
    rows = [{"filter": f.get("filter_name"), "hosts_removed": f.get("count"),
             "reasons": "; ".join(f.get("reasons", []))} for f in fc.get("filtered_candidates", [])]
    if rows:
        show_list(rows, columns=["filter", "hosts_removed", "reasons"])


def _forecast_callback(name: str | None = None, **kwargs: Any) -> None:
    server_create.callback(name=name or "forecast", **kwargs, dry_run=True)  # type: ignore[misc]


scheduler_forecast = click.Command(
    "scheduler-forecast", callback=_forecast_callback,
    # Cloudpods' scheduler-forecast takes no NAME; ours still accepts one
    params=[click.Argument(["name"], required=False, default=None)] +
           [p for p in server_create.params if p.name not in ("dry_run", "wait", "wait_timeout", "name")],
    help="Ask the scheduler whether servers would fit, and why not: same options as server-create.",
    short_help="Dry-run a server create through the scheduler")


def _secgroup_verb(name: str, action: str, help_: str) -> click.Command:
    @click.command(name, help=help_)
    @click.argument("ident", shell_complete=SERVERS)
    @click.argument("secgroups", nargs=-1, required=True)
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str, secgroups: tuple[str, ...]) -> None:
        out = obj.client().post(S, f"/servers/{ident}/{action}", json={"secgroup_ids": list(secgroups)})["server"]
        show_object(out)
    return cmd


server_add_secgroup = _secgroup_verb("server-add-secgroup", "add-secgroup",
                                     "Put a server in more security groups: SERVER SECGROUP...")
server_revoke_secgroup = _secgroup_verb("server-revoke-secgroup", "revoke-secgroup",
                                        "Take a server out of security groups: SERVER SECGROUP...")
server_set_secgroup = _secgroup_verb("server-set-secgroup", "set-secgroup",
                                     "Replace a server's security groups: SERVER SECGROUP...")


@click.command("server-associate-eip")
@click.argument("ident")
@click.argument("eip")
@click.option("--ip-addr", default=None, help="The server's address to map to (default: its first NIC)")
@output_options
@click.pass_obj
def server_associate_eip(obj: Any, ident: str, eip: str, ip_addr: str | None) -> None:
    """Map EIP to the server: traffic to the EIP reaches it, its traffic out leaves with the EIP."""
    body: dict[str, Any] = {"eip_id": eip}
    if ip_addr:
        body["ip_addr"] = ip_addr
    show_object(obj.client().post(S, f"/servers/{ident}/associate-eip", json=body)["server"])


@click.command("server-dissociate-eip")
@click.argument("ident")
@click.option("--auto-delete", is_flag=True, help="Release the EIP too")
@output_options
@click.pass_obj
def server_dissociate_eip(obj: Any, ident: str, auto_delete: bool) -> None:
    """Take the server's EIP off it (kept unless --auto-delete)."""
    show_object(obj.client().post(S, f"/servers/{ident}/dissociate-eip",
                                  json={"auto_delete": auto_delete})["server"])


@click.command("server-change-bandwidth")
@click.argument("ident")
@click.argument("macorip")
@click.argument("bandwidth", type=click.IntRange(0))
@output_options
@click.pass_obj
def server_change_bandwidth(obj: Any, ident: str, macorip: str, bandwidth: int) -> None:
    """Limit one NIC (its index, MAC or IP) to BANDWIDTH Mbps each way; 0 removes the limit.
    Applied on the guest's port by its host, at once when it runs."""
    key = "index" if macorip.isdigit() else "ip_addr" if "." in macorip else "mac" if ":" in macorip else ""
    if not key:
        raise click.UsageError(f"{macorip!r}: name the NIC by its index, MAC or IP address")
    show_object(obj.client().post(S, f"/servers/{ident}/change-bandwidth", json={
        key: int(macorip) if key == "index" else macorip, "bandwidth": bandwidth})["server"])


@click.command("server-attach-network")
@click.argument("ident", shell_complete=SERVERS)
@click.argument("networks", nargs=-1, required=True, metavar="NETDESC...")
@wait_options()
@output_options
@click.pass_obj
def server_attach_network(obj: Any, ident: str, networks: tuple[str, ...], wait: bool = False,
                          wait_timeout: float = 900.0) -> None:
    """Add a NIC on each NETDESC (NETWORK[:address]); hot when the server runs on a host that can.
    Several are attached one after another (each waited for before the next)."""
    c = obj.client()
    in_turn(obj, f"server {ident}", networks,
            lambda n: c.post(S, f"/servers/{ident}/attachnetwork", json={"network": n}),
            wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")


def _mac_or_ip(text: str) -> tuple[str | None, str | None]:
    """Cloudpods' MACORIP argument: (mac, None) or (None, ip)."""
    import ipaddress

    if re.fullmatch(r"(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}", text):
        return text.replace("-", ":").lower(), None
    try:
        return None, str(ipaddress.ip_address(text))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a MAC (aa:bb:cc:dd:ee:ff) nor an IP address",
                                 param_hint="MAC|IP") from None


@click.command("server-detach-network")
@click.argument("ident", shell_complete=SERVERS)
@click.argument("mac_or_ip", required=False, metavar="[MAC|IP]")
@click.option("--ip-addr", default=None, help="The NIC with this address")
@click.option("--mac", default=None, help="The NIC with this MAC")
@click.option("--net", "network", default=None, help="The NIC on this network")
@wait_options()
@output_options
@click.pass_obj
def server_detach_network(obj: Any, ident: str, mac_or_ip: str | None, ip_addr: str | None, mac: str | None,
                          network: str | None, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Remove a NIC (by its MAC or IP address, Cloudpods' positional, or --ip-addr, --mac, --net); its
    address is released."""
    if mac_or_ip:
        if ip_addr or mac:
            raise click.UsageError("give MAC|IP or --ip-addr/--mac, not both")
        mac, ip_addr = _mac_or_ip(mac_or_ip)
    body = {k: v for k, v in (("ip_addr", ip_addr), ("mac", mac), ("network", network)) if v}
    if not body:
        raise click.UsageError("give --ip-addr, --mac or --net")
    finish(obj, f"server {ident}", obj.client().post(S, f"/servers/{ident}/detachnetwork", json=body)["server"],
           wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")


@click.command("server-change-ipaddr")
@click.argument("ident", shell_complete=SERVERS)
@click.argument("macorip")
@click.argument("netdesc")
@click.option("--reserve", is_flag=True, help="Keep the old address reserved (IPAM hands it to no one)")
@wait_options()
@output_options
@click.pass_obj
def server_change_ipaddr(obj: Any, ident: str, macorip: str, netdesc: str, reserve: bool, wait: bool = False,
                         wait_timeout: float = 900.0) -> None:
    """Give a server's NIC (by MAC, IP or index) another address, of its network or another: NETWORK[:ADDRESS]."""
    if re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", macorip):
        body: dict[str, Any] = {"mac": macorip}
    elif macorip.isdigit():
        body = {"index": int(macorip)}
    else:
        body = {"ip_addr": macorip}
    body.update(net_desc=netdesc, reserve=reserve)
    out = obj.client().post(S, f"/servers/{ident}/change-ipaddr", json=body)
    finish(obj, f"server {ident}", out["server"], wait=wait, timeout=wait_timeout, refetch=f"/servers/{ident}")
