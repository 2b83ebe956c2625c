"""Networks and reserved addresses."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S, make_delete, make_list, make_show, send_update
from climc.output import output_options, show_list, show_object
from climc.params import NETMASK

network_list = make_list("network-list", "networks",
                         ["id", "name", "wire", "guest_ip_start", "guest_ip_end", "guest_ip_mask", "guest_gateway",
                          "ports", "ports_used", "alloc_policy", "status"], "List networks", [("wire", "wire")])
network_show = make_show("network-show", "networks", "network", "Show a network")
network_delete = make_delete("network-delete", "networks", "network", "Delete networks without allocated addresses")
@click.command("network-create")
@click.argument("wire")
@click.argument("name")
@click.argument("start")
@click.argument("end")
@click.argument("mask", type=NETMASK)
@click.option("--gateway", "--guest-gateway", "gateway", default=None,
              help="Gateway address (inside MASK, outside START..END)")
@click.option("--dns", "--guest-dns", "dns", default=None, help="DNS server(s) for guests, comma-separated")
@click.option("--vlan-id", "--vlan", "vlan", type=click.IntRange(1, 4094), default=None,
              help="VLAN id of the network on its wire")
@click.option("--alloc-policy", type=click.Choice(["none", "stepdown", "stepup", "random"]), default=None,
              help="Order in which addresses are handed out")
@click.option("--server-type", type=click.Choice(["guest", "baremetal", "pxe", "ipmi", "eip"]), default=None,
              help="What the addresses are for (default guest)")
@click.option("--desc", "--description", "desc", default=None, help="Description")
@output_options
@click.pass_obj
def network_create(obj: Any, wire: str, name: str, start: str, end: str, mask: int, gateway: str | None,
                   dns: str | None, vlan: int | None, alloc_policy: str | None, server_type: str | None,
                   desc: str | None) -> None:
    """Create a network: WIRE NAME START END MASK (24, /24 or 255.255.255.0)."""
    body: dict[str, Any] = {"wire": wire, "name": name, "guest_ip_start": start, "guest_ip_end": end,
                            "guest_ip_mask": mask}
    body.update({k: v for k, v in (("guest_gateway", gateway), ("guest_dns", dns), ("vlan_id", vlan),
                                   ("alloc_policy", alloc_policy), ("server_type", server_type),
                                   ("description", desc)) if v is not None})
    show_object(obj.client().post(S, "/networks", json={"network": body})["network"])


@click.command("network-reserve-ip")
@click.argument("network")
@click.argument("args", nargs=-1, required=True, metavar="[NOTES] IP...")
@click.option("--notes", default=None, help="Why the addresses are reserved (or the NOTES positional)")
@output_options
@click.pass_obj
def network_reserve_ip(obj: Any, network: str, args: tuple[str, ...], notes: str | None) -> None:
    """Reserve addresses of a network so IPAM never hands them out: NETWORK NOTES IP... (as Cloudpods'
    climc) or NETWORK IP... --notes TEXT."""
    import ipaddress

    ips = list(args)
    try:
        ipaddress.ip_address(ips[0])
    except ValueError:  # Cloudpods' order: the first word after the network is the note
        if notes is not None:
            raise click.UsageError(f"{ips[0]!r} is not an IP address (NOTES was given with --notes)") from None
        notes, ips = ips[0], ips[1:]
    if not ips:
        raise click.UsageError("give at least one IP address to reserve")
    body: dict[str, Any] = {"ips": ips}
    if notes:
        body["notes"] = notes
    out = obj.client().post(S, f"/networks/{network}/reserve-ip", json=body)
    show_object({"network": out["network"]["name"], "reserved": out["reserved"]})


@click.command("network-release-reserved-ip")
@click.argument("network")
@click.argument("ip")
@output_options
@click.pass_obj
def network_release_reserved_ip(obj: Any, network: str, ip: str) -> None:
    """Release a reserved address."""
    obj.client().post(S, f"/networks/{network}/release-reserved-ip", json={"ip": ip})
    click.echo(f"{ip} released", err=True)


@click.command("network-addresses")
@click.argument("network")
@output_options
@click.pass_obj
def network_addresses(obj: Any, network: str) -> None:
    """List the addresses held in a network."""
    items = obj.client().get(S, f"/networks/{network}/addresses")["addresses"]
    show_list(items, columns=["ip_addr", "owner_type", "owner_id", "mac", "notes"])


@click.command("network-update")
@click.argument("ident")
@click.option("--name", default=None, help="New name")
@click.option("--desc", "--description", "description", default=None, help="Description")
@click.option("--start-ip", "--guest-ip-start", "guest_ip_start", default=None, help="First address handed out")
@click.option("--end-ip", "--guest-ip-end", "guest_ip_end", default=None, help="Last address handed out")
@click.option("--netmask", "--guest-ip-mask", "guest_ip_mask", type=NETMASK, default=None,
              help="Netmask: 24, /24 or 255.255.255.0")
@click.option("--gateway", "--guest-gateway", "guest_gateway", default=None, help="Gateway address")
@click.option("--dns", "--guest-dns", "guest_dns", default=None, help="DNS server(s), comma-separated")
@click.option("--alloc-policy", type=click.Choice(["none", "stepdown", "stepup", "random"]), default=None,
              help="Order in which addresses are handed out")
@output_options
@click.pass_obj
def network_update(obj: Any, ident: str, **kw: Any) -> None:
    """Update a network (Cloudpods' option names; the guest_* names work too)."""
    send_update(obj, "networks", "network", ident, kw)
