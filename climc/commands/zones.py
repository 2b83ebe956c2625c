"""Cloud regions, zones, VPCs and wires."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S, make_action, make_delete, make_list, make_show, make_update
from climc.output import output_options, show_object

cloudregion_list = make_list("cloudregion-list", "cloudregions", ["id", "name", "status", "provider"],
                             "List cloud regions")
zone_list = make_list("zone-list", "zones", ["id", "name", "status", "cloudregion", "hosts", "wires"], "List zones",
                      [("region", "cloudregion")])
zone_show = make_show("zone-show", "zones", "zone", "Show a zone")
zone_delete = make_delete("zone-delete", "zones", "zone", "Delete empty zones")
zone_update = make_update("zone-update", "zones", "zone", [("name", str), ("description", str)], "Update a zone")
zone_enable = make_action("zone-enable", "zones", "zone", "enable", "Enable zones")
zone_disable = make_action("zone-disable", "zones", "zone", "disable", "Disable zones")
vpc_list = make_list("vpc-list", "vpcs", ["id", "name", "status", "cloudregion_id", "cidr_block"], "List VPCs")
vpc_show = make_show("vpc-show", "vpcs", "vpc", "Show a VPC")
vpc_delete = make_delete("vpc-delete", "vpcs", "vpc", "Delete VPCs")
wire_list = make_list("wire-list", "wires", ["id", "name", "zone", "vpc", "bandwidth", "mtu"], "List wires",
                      [("zone", "zone"), ("vpc", "vpc")])
wire_show = make_show("wire-show", "wires", "wire", "Show a wire")
wire_delete = make_delete("wire-delete", "wires", "wire", "Delete wires without networks")
wire_update = make_update("wire-update", "wires", "wire", [("name", str), ("description", str), ("bandwidth", int),
                                                           ("mtu", int)], "Update a wire")


@click.command("zone-create")
@click.argument("name")
@click.option("--region", default=None, help="Cloud region (default: default)")
@click.option("--desc", default=None, help="Description")
@click.option("--location", default=None)
@output_options
@click.pass_obj
def zone_create(obj: Any, name: str, region: str | None, desc: str | None, location: str | None) -> None:
    """Create a zone."""
    body = {k: v for k, v in (("name", name), ("cloudregion", region), ("description", desc),
                              ("location", location)) if v}
    show_object(obj.client().post(S, "/zones", json={"zone": body})["zone"])


@click.command("vpc-create")
@click.argument("args", nargs=-1, required=True, metavar="NAME | REGION NAME CIDR")
@click.option("--region", default=None, help="Cloud region (id or name)")
@click.option("--cidr", default=None, help="Address block, e.g. 10.0.0.0/16")
@output_options
@click.pass_obj
def vpc_create(obj: Any, args: tuple[str, ...], region: str | None, cidr: str | None) -> None:
    """Create a VPC: NAME --region R --cidr C, or REGION NAME CIDR as Cloudpods' climc."""
    if len(args) == 1:
        name = args[0]
    elif len(args) == 3 and not (region or cidr):
        region, name, cidr = args
    else:
        raise click.UsageError("give NAME (with --region/--cidr) or REGION NAME CIDR")
    body = {k: v for k, v in (("name", name), ("cloudregion", region), ("cidr_block", cidr)) if v}
    show_object(obj.client().post(S, "/vpcs", json={"vpc": body})["vpc"])


@click.command("wire-create")
@click.argument("zone")
@click.argument("name")
@click.argument("bandwidth", type=int)
@click.option("--vpc", default=None, help="VPC (default: default)")
@click.option("--mtu", type=int, default=None)
@click.option("--desc", default=None)
@output_options
@click.pass_obj
def wire_create(obj: Any, zone: str, name: str, bandwidth: int, vpc: str | None, mtu: int | None,
                desc: str | None) -> None:
    """Create a wire: ZONE NAME BANDWIDTH(Mbps)."""
    body: dict[str, Any] = {"name": name, "zone": zone, "bandwidth": bandwidth}
    body.update({k: v for k, v in (("vpc", vpc), ("mtu", mtu), ("description", desc)) if v})
    show_object(obj.client().post(S, "/wires", json={"wire": body})["wire"])
