"""Elastic IPs: create (on an eip network or a cloud account), update, associate, dissociate, list, delete."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S, make_delete, make_list, make_show, send_update
from climc.output import output_options, show_object
from climc.wait import wait_options

eip_list = make_list("eip-list", "eips", ["id", "name", "ip_addr", "bandwidth", "status", "associate_name", "manager"],
                     "List elastic IPs")
eip_show = make_show("eip-show", "eips", "eip", "Show an elastic IP")
eip_delete = make_delete("eip-delete", "eips", "eip", "Delete elastic IPs", waitable=True)


@click.command("eip-create")
@click.argument("name")
@click.argument("network_arg", metavar="[NETWORK]", required=False)
@click.option("--network", default=None, help="The eip network (or the NETWORK positional)")
@click.option("--manager", default=None, help="Cloudprovider to allocate the elastic IP in (a cloud account's)")
@click.option("--cloudregion", "--region", "cloudregion", default=None,
              help="Cloud region to allocate in (default: the account's default or only region)")
@click.option("--bandwidth", type=int, default=0, help="Bandwidth in Mbps (0: unlimited)")
@click.option("--ip-addr", "--ip", "ip", default=None, help="This address of the network (default: any free one)")
@click.option("--charge-type", type=click.Choice(["traffic", "bandwidth"]), default=None,
              help="Bandwidth charge type  [default: bandwidth]")
@wait_options()
@output_options
@click.pass_obj
def eip_create(obj: Any, name: str, network_arg: str | None, network: str | None, manager: str | None,
               cloudregion: str | None, bandwidth: int, ip: str | None, charge_type: str | None, wait: bool = False,
               wait_timeout: float = 900.0) -> None:
    """Allocate an elastic IP: from an eip network (NAME NETWORK or NAME --network NET), or in a
    cloud (--manager/--region), as Cloudpods."""
    body: dict[str, Any] = {"name": name, "bandwidth": bandwidth}
    if charge_type:
        body["charge_type"] = charge_type
    if manager or cloudregion:
        if network or network_arg or ip:
            raise click.UsageError("a cloud's elastic IP (--manager/--region) takes no network nor --ip-addr")
        body.update({k: v for k, v in (("manager", manager), ("cloudregion", cloudregion)) if v})
    else:
        if bool(network_arg) == bool(network):
            raise click.UsageError("give the network once: NAME NETWORK or NAME --network NETWORK "
                                   "(or --manager/--region for a cloud's elastic IP)")
        body["network"] = network or network_arg
    if ip:
        body["ip_addr"] = ip
    eip = obj.client().post(S, "/eips", json={"eip": body})["eip"]
    _eip_done(obj, eip, "EipAllocateTask", set(), wait, wait_timeout)


def _eip_task_ids(obj: Any, ident: str, task_name: str, wait: bool) -> tuple[dict[str, Any], set[str]]:
    """Before a verb on a cloud's eip (its work runs as a task the answer does not name): the eip and
    the ids of its ``task_name`` tasks so far, so --wait can tell which task the verb queued."""
    if not wait:
        return {}, set()
    from climc.wait import tasks_on

    eip = obj.client().get(S, f"/eips/{ident}")["eip"]
    return eip, tasks_on(obj.client(), eip["id"], task_name) if eip.get("manager_id") else set()


def _eip_done(obj: Any, answer: dict[str, Any], task_name: str, before: set[str], wait: bool,
              timeout: float) -> None:
    """Show the eip; with --wait and a cloud's eip, follow the task the verb queued first (an eip
    network's eip is done when the answer comes) and show the eip as it ended."""
    eip = answer.get("eip", answer)
    if wait and eip.get("manager_id"):
        from climc.wait import Target, follow, tasks_on
        from core.errors import ResourceNotFoundError

        c = obj.client()
        task = next(iter(sorted(tasks_on(c, eip["id"], task_name) - before)), "")
        follow(c, [Target(f"eip {eip.get('name') or eip['id']}", task)], timeout)
        try:
            eip = c.get(S, f"/eips/{eip['id']}")["eip"]
        except ResourceNotFoundError:  # dissociate --auto-delete: released
            click.echo(f"eip {eip.get('name') or eip['id']}: released", err=True)
    show_object(eip)


@click.command("eip-update")
@click.argument("ident")
@click.option("--name", default=None, help="New name")
@click.option("--desc", "--description", "desc", default=None, help="Description")
@click.option("--bandwidth", type=click.IntRange(0), default=None, help="Bandwidth in Mbps (0: unlimited)")
@click.option("--auto-dellocate", type=click.Choice(["true", "false"]), default=None,
              help="Release the elastic IP when it is dissociated from its server (e.g. the server's delete)")
@output_options
@click.pass_obj
def eip_update(obj: Any, ident: str, name: str | None, desc: str | None, bandwidth: int | None,
               auto_dellocate: str | None) -> None:
    """Update an elastic IP (Cloudpods' eip-update)."""
    send_update(obj, "eips", "eip", ident, {"name": name, "description": desc, "bandwidth": bandwidth,
                                            "auto_dellocate": auto_dellocate})


@click.command("eip-associate")
@click.argument("ident")
@click.argument("instance_id")
@click.option("--instance-type", type=click.Choice(["server"]), default="server", show_default=True,
              help="What INSTANCE_ID names (Cloudpods' option; servers only here)")
@wait_options()
@output_options
@click.pass_obj
def eip_associate(obj: Any, ident: str, instance_id: str, instance_type: str, wait: bool = False,
                  wait_timeout: float = 900.0) -> None:
    """Associate an elastic IP with a server (on a KVM host, or of the eip's cloud account)."""
    eip, before = _eip_task_ids(obj, ident, "EipAssociateTask", wait)
    out = obj.client().post(S, f"/eips/{eip.get('id') or ident}/associate",
                            json={"eip": {"instance_id": instance_id, "instance_type": instance_type}})
    _eip_done(obj, out.get("eip") or eip or out, "EipAssociateTask", before, wait, wait_timeout)


@click.command("eip-dissociate")
@click.argument("ident")
@click.option("--auto-delete", is_flag=True, help="Release the elastic IP once dissociated")
@wait_options()
@output_options
@click.pass_obj
def eip_dissociate(obj: Any, ident: str, auto_delete: bool, wait: bool = False, wait_timeout: float = 900.0) -> None:
    """Dissociate an elastic IP from its server."""
    eip, before = _eip_task_ids(obj, ident, "EipDissociateTask", wait)
    out = obj.client().post(S, f"/eips/{eip.get('id') or ident}/dissociate",
                            json={"eip": {"auto_delete": auto_delete}})
    _eip_done(obj, out.get("eip") or eip or out, "EipDissociateTask", before, wait, wait_timeout)
