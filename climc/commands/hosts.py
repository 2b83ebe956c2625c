"""Hosts and storages."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import (
    S,
    batch,
    list_flags,
    make_action,
    make_delete,
    make_list,
    make_show,
    make_update,
    run_list,
)
from climc.output import output_options, show_list, show_object
from climc.params import SIZE_MB

host_list = make_list("host-list", "hosts",
                      ["id", "name", "zone", "host_type", "target", "driver", "host_status", "enabled", "access_ip",
                       "cpu_count",
                       "mem_size", "cpu_commit", "mem_commit", "guests"], "List hosts",
                      [("zone", "zone"), ("host-type", "host_type"), ("host-status", "host_status")])
host_show = make_show("host-show", "hosts", "host", "Show a host")
host_delete = make_delete("host-delete", "hosts", "host", "Delete disabled, empty hosts")
host_enable = make_action("host-enable", "hosts", "host", "enable", "Enable hosts for scheduling")
host_disable = make_action("host-disable", "hosts", "host", "disable", "Disable hosts (no new servers)")
host_ping = make_action("host-ping", "hosts", "host", "ping", "Mark hosts as alive (what agents do every 60 s)")
host_update = make_update("host-update", "hosts", "host",
                          [("name", str), ("description", str), ("cpu_cmtbound", float), ("mem_cmtbound", float),
                           ("cpu_reserved", int), ("mem_reserved", SIZE_MB), ("ipmi_username", str),
                           ("ipmi_password", str), ("ipmi_ip_addr", str)],
                          "Update a host (a bare-metal machine's BMC: --ipmi-username/--ipmi-password/--ipmi-ip-addr, "
                          "tried on the BMC before they are saved)")
storage_list = make_list("storage-list", "storages",
                         ["id", "name", "zone", "storage_type", "medium_type", "capacity", "used_capacity",
                          "free_capacity", "status", "hosts"], "List storages", [("zone", "zone")])
storage_show = make_show("storage-show", "storages", "storage", "Show a storage")
storage_delete = make_delete("storage-delete", "storages", "storage", "Delete empty, detached storages")


@click.command("host-spec")
@click.argument("ident")
@output_options
@click.pass_obj
def host_spec(obj: Any, ident: str) -> None:
    """Show a host's capacity: CPU/memory committed and free, storages."""
    show_object(obj.client().get(S, f"/hosts/{ident}/spec")["spec"])


@click.command("host-register")
@click.argument("zone")
@click.argument("name")
@click.option("--cpu", "cpu_count", type=int, required=True, help="Physical CPU count of the host")
@click.option("--mem", "mem_size", type=SIZE_MB, required=True, help="Memory: 64g, 512m or MB")
@click.option("--access-ip", default=None)
@click.option("--access-mac", default=None)
@click.option("--storage", "storages", multiple=True, help="NAME:CAPACITY local storage (MB or 500g, 2t; repeatable)")
@click.option("--wire", "wires", multiple=True, help="WIRE[:BRIDGE] (repeatable)")
@output_options
@click.pass_obj
def host_register(obj: Any, zone: str, name: str, cpu_count: int, mem_size: int, access_ip: str | None,
                  access_mac: str | None, storages: tuple[str, ...], wires: tuple[str, ...]) -> None:
    """Register a host in ZONE by hand (agents do this themselves)."""
    body: dict[str, Any] = {"name": name, "cpu_count": cpu_count, "mem_size": mem_size}
    if access_ip:
        body["access_ip"] = access_ip
    if access_mac:
        body["access_mac"] = access_mac
    body["storages"] = _storages(storages)
    body["wires"] = [{"wire": w.partition(":")[0], "bridge": w.partition(":")[2]} for w in wires]
    show_object(obj.client().post(S, f"/zones/{zone}/hosts", json={"host": body})["host"])


def _storages(storages: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for s in storages:
        n, _, cap = s.partition(":")
        try:
            mb = SIZE_MB.convert(cap, None, None)
        except click.BadParameter:
            raise click.BadParameter(f"{s!r}: expected NAME:CAPACITY (MB, or 500g, 2t)", param_hint="--storage") \
                from None
        out.append({"name": n, "capacity": mb})
    return out


def _config_value(v: str) -> Any:
    """KEY=VALUE values: integers and true/false as such, the rest as strings."""
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return int(v) if v.lstrip("-").isdigit() else v


@click.command("host-create")
@click.argument("name")
@click.argument("mac", required=False, metavar="[MAC]")
@click.option("--zone", required=True, help="The zone the host is in")
@click.option("--driver", default=None, help="The driver, by its name in drivers/registry.py (e.g. kvm); "
              "baremetal when --ipmi-addr/--redfish-url is given")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
              help="Driver config, e.g. uri=test:///default (repeatable)")
@click.option("--config-file", type=click.File("r"), default=None,
              help="Driver config as a JSON object (keeps secrets off the command line)")
@click.option("--host-type", default=None, help="hypervisor (default), baremetal, esxi, ...")
# Cloudpods' host-create spells the BMC --ipmi-addr/--ipmi-user/--ipmi-passwd; our first spellings stay as
# old ones (climc.vocabulary: they parse, say the new name on stderr, and help hides them)
@click.option("--ipmi-addr", "--ipmi-ip", "ipmi_ip", default=None, help="baremetal: the BMC's IPMI address")
@click.option("--ipmi-port", type=click.IntRange(1, 65535), default=None, help="baremetal: the BMC's UDP port (623)")
@click.option("--ipmi-user", "--ipmi-username", "--bmc-username", "ipmi_username", default=None,
              help="baremetal: the BMC user")
@click.option("--ipmi-passwd", "--ipmi-password", "--bmc-password", "ipmi_password", default=None,
              envvar="CLIMC_IPMI_PASSWORD",
              help="baremetal: the BMC user's password (or env CLIMC_IPMI_PASSWORD; prompted when absent); "
                   "stored encrypted, never shown")
@click.option("--redfish-url", default=None, help="baremetal: the BMC's Redfish service, http(s)://HOST[:PORT]")
@click.option("--redfish-system", default=None, help="baremetal: which ComputerSystem (default: the first)")
@click.option("--access-mac", default=None,
              help="baremetal: the MAC of the machine's PXE NIC (server-create deploys through it)")
@click.option("--storage", "storages", multiple=True,
              help="NAME:CAPACITY (MB or 500g, 2t; repeatable; default <name>-local)")
@click.option("--wire", "wires", multiple=True, help="WIRE[:BRIDGE] (repeatable)")
@click.option("--description", default=None)
@output_options
@click.pass_obj
def host_create(obj: Any, name: str, mac: str | None, zone: str, driver: str | None, config: tuple[str, ...],
                config_file: Any, host_type: str | None, ipmi_ip: str | None, ipmi_port: int | None,
                ipmi_username: str | None, ipmi_password: str | None, redfish_url: str | None,
                redfish_system: str | None, access_mac: str | None, storages: tuple[str, ...], wires: tuple[str, ...],
                description: str | None) -> None:
    """Create a host run by the controller's executor (a driver whose API is remote), or register a
    bare-metal machine by its BMC (--host-type baremetal --ipmi-addr ... or --redfish-url ...); agents
    enrol themselves (ocadm join). The driver is validated now; its config is stored encrypted.
    MAC (Cloudpods' host-create NAME MAC) is the bare-metal machine's PXE NIC, as --access-mac."""
    import json

    if mac:
        if access_mac and access_mac.lower() != mac.lower():
            raise click.UsageError("give MAC or --access-mac, not two different ones")
        access_mac = mac

    cfg: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = json.load(config_file)
        except ValueError as e:
            raise click.BadParameter(f"not JSON: {e}", param_hint="--config-file") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--config-file")
        cfg.update(loaded)
    for kv in config:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{kv!r}: expected KEY=VALUE", param_hint="--config")
        cfg[k] = _config_value(v)
    bmc = {"ipmi_ip": ipmi_ip, "ipmi_port": ipmi_port, "ipmi_username": ipmi_username, "redfish_url": redfish_url,
           "redfish_system": redfish_system}
    bmc = {k: v for k, v in bmc.items() if v is not None}
    if bmc:
        if ipmi_ip and redfish_url:
            raise click.UsageError("give --ipmi-addr (IPMI) or --redfish-url (Redfish), not both")
        if not (ipmi_ip or redfish_url):
            raise click.UsageError("a bare-metal host needs --ipmi-addr or --redfish-url")
        if not ipmi_username:
            raise click.UsageError("a bare-metal host needs --ipmi-user (the BMC user)")
        if ipmi_password is None:
            ipmi_password = click.prompt("BMC password", hide_input=True, err=True)
        bmc["ipmi_password"] = ipmi_password
        host_type = host_type or "baremetal"
        if host_type != "baremetal":
            raise click.UsageError("--ipmi-*/--redfish-* options are for --host-type baremetal")
        cfg.update(bmc)
        if access_mac:
            cfg["access_mac"] = access_mac.strip().lower().replace("-", ":")
        driver = driver or "baremetal"
    if not driver:
        raise click.UsageError("missing --driver (or --ipmi-addr/--redfish-url for a bare-metal host)")
    body: dict[str, Any] = {"name": name, "zone": zone, "target": "executor", "driver": driver,
                            "driver_config": cfg, "storages": _storages(storages),
                            "wires": [{"wire": w.partition(":")[0], "bridge": w.partition(":")[2]} for w in wires]}
    if access_mac:
        body["access_mac"] = access_mac
    if host_type:
        body["host_type"] = host_type
    if description:
        body["description"] = description
    show_object(obj.client().post(S, "/hosts", json={"host": body})["host"])


# ---- machines behind a BMC (bare metal) -----------------------------------------------------------
BAREMETAL_COLUMNS = ["id", "name", "zone", "status", "host_status", "ipmi_status", "power_status", "health", "enabled",
                     "access_mac", "cpu_count", "mem_size", "guests"]


@click.command("baremetal-list")
@list_flags
@output_options
@click.pass_obj
def baremetal_list(obj: Any, **kw: Any) -> None:
    """List bare-metal hosts with their BMC status (ipmi_status, power_status, health)."""
    run_list(obj, "/hosts", "hosts", BAREMETAL_COLUMNS, kw, host_type="baremetal")


@click.command("host-ipmi-info")
@click.argument("ident")
@output_options
@click.pass_obj
def host_ipmi_info(obj: Any, ident: str) -> None:
    """Show a bare-metal host's BMC: protocol, address, user (never the password), power state read now."""
    show_object(obj.client().get(S, f"/hosts/{ident}/ipmi")["ipmi"])


def _power_cmd(name: str, action: str, help_: str) -> click.Command:
    @click.command(name, help=help_)
    @click.argument("idents", nargs=-1, required=True)
    @output_options
    @click.pass_obj
    def cmd(obj: Any, idents: tuple[str, ...], **kw: Any) -> None:
        c = obj.client()
        body = {"soft": True} if kw.get("soft") else {}
        batch(obj, idents, "host", name.removeprefix("host-"),
              lambda i: c.post(S, f"/hosts/{i}/{action}", json=body))
    return cmd


host_power_on = _power_cmd("host-power-on", "start", "Power bare-metal hosts on through their BMC")
host_power_off = click.option("--soft", is_flag=True, help="ACPI shutdown instead of a hard power off")(
    _power_cmd("host-power-off", "stop", "Power bare-metal hosts off through their BMC (hard unless --soft)"))
host_power_reset = _power_cmd("host-power-reset", "reset", "Reset (hard reboot) bare-metal hosts through their BMC")


@click.command("host-boot-device")
@click.argument("ident")
@click.argument("device", type=click.Choice(["pxe", "disk", "cdrom", "bios"]))
@click.option("--persistent", is_flag=True, help="Every boot, not only the next one")
@output_options
@click.pass_obj
def host_boot_device(obj: Any, ident: str, device: str, persistent: bool) -> None:
    """Set the device a bare-metal host boots from next (pxe, disk, cdrom, bios)."""
    show_object(obj.client().post(S, f"/hosts/{ident}/set-boot-device",
                                  json={"boot_device": device, "persistent": persistent})["host"])


@click.command("host-sensors")
@click.argument("ident")
@output_options
@click.pass_obj
def host_sensors(obj: Any, ident: str) -> None:
    """Read a bare-metal host's sensors (temperatures, fans, ...) and its health from its BMC."""
    out = obj.client().get(S, f"/hosts/{ident}/sensors")
    show_list(out["sensors"], columns=["name", "value", "unit", "health"], total=out.get("total"))


@click.command("host-ipmi-probe")
@click.argument("idents", nargs=-1, required=True)
@output_options
@click.pass_obj
def host_ipmi_probe(obj: Any, idents: tuple[str, ...]) -> None:
    """Read bare-metal hosts' power state, health and inventory from their BMCs again (one or several)."""
    c = obj.client()
    batch(obj, idents, "host", "ipmi-probe", lambda i: c.post(S, f"/hosts/{i}/ipmi-probe", json={}))


@click.command("baremetal-prepare")
@click.argument("ident")
@click.option("--ipmi-ip", default=None, help="the BMC's IPMI address")
@click.option("--ipmi-port", type=click.IntRange(1, 65535), default=None, help="the BMC's UDP port (623)")
@click.option("--ipmi-username", "--bmc-username", "ipmi_username", default=None, help="the BMC user")
@click.option("--ipmi-password", "--ipmi-passwd", "--bmc-password", "ipmi_password", default=None,
              envvar="CLIMC_IPMI_PASSWORD",
              help="the BMC user's password (or env CLIMC_IPMI_PASSWORD; prompted when --ipmi-username is given "
                   "without it); stored encrypted, never shown")
@click.option("--redfish-url", default=None, help="the BMC's Redfish service, http(s)://HOST[:PORT]")
@output_options
@click.pass_obj
def baremetal_prepare(obj: Any, ident: str, ipmi_ip: str | None, ipmi_port: int | None, ipmi_username: str | None,
                      ipmi_password: str | None, redfish_url: str | None) -> None:
    """Prepare a bare-metal host: give a machine enrolled from its PXE boot its BMC (or read a known BMC
    again); its inventory becomes the host's capacity and the host is enabled for servers."""
    if ipmi_username and ipmi_password is None:
        ipmi_password = click.prompt("BMC password", hide_input=True, err=True)
    body = {k: v for k, v in {"ipmi_ip": ipmi_ip, "ipmi_port": ipmi_port, "ipmi_username": ipmi_username,
                              "ipmi_password": ipmi_password, "redfish_url": redfish_url}.items() if v is not None}
    show_object(obj.client().post(S, f"/hosts/{ident}/prepare", json={"host": body})["host"])


@click.command("storage-create")
@click.argument("first")
@click.argument("second")
@click.argument("capacity_arg", metavar="[CAPACITY]", required=False, type=SIZE_MB)
@click.option("--capacity", type=SIZE_MB, default=None, help="Capacity: MB or with a unit (500g, 2t)")
@click.option("--storage-type", default="local", show_default=True, help="local, rbd, nfs, ...")
@click.option("--medium-type", type=click.Choice(["ssd", "rotate", "hybrid"]), default="ssd", show_default=True,
              help="Disk medium")
@output_options
@click.pass_obj
def storage_create(obj: Any, first: str, second: str, capacity_arg: int | None, capacity: int | None,
                   storage_type: str, medium_type: str) -> None:
    """Create a storage: ZONE NAME CAPACITY, or NAME ZONE --capacity N as Cloudpods' climc."""
    if capacity_arg is not None and capacity is None:
        zone, name, capacity = first, second, capacity_arg
    elif capacity is not None and capacity_arg is None:
        name, zone = first, second
    else:
        raise click.UsageError("give ZONE NAME CAPACITY, or NAME ZONE --capacity N")
    body = {"zone": zone, "name": name, "capacity": capacity, "storage_type": storage_type,
            "medium_type": medium_type}
    show_object(obj.client().post(S, "/storages", json={"storage": body})["storage"])
