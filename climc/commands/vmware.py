"""VMware cloud accounts (a vCenter or a standalone ESXi), with Cloudpods' command names."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.cloud import account_create_options, create_account
from climc.commands.compute_common import S, list_flags, run_list
from climc.output import output_options, show_object
from core.errors import ResourceNotFoundError

COLUMNS = ["id", "name", "access_url", "account", "status", "sync_status", "last_sync"]


@click.command("vcenter-list", help="List VMware accounts (vCenters and standalone ESXi hosts)")
@list_flags
@output_options
@click.pass_obj
def vcenter_list(obj: Any, **kw: Any) -> None:
    run_list(obj, "/cloudaccounts", "cloudaccounts", COLUMNS, kw, provider="VMware")


@click.command("vcenter-show")
@click.argument("ident")
@output_options
@click.pass_obj
def vcenter_show(obj: Any, ident: str) -> None:
    """Show a VMware account (its password is never shown)."""
    acct = obj.client().get(S, f"/cloudaccounts/{ident}")["cloudaccount"]
    if acct.get("provider") != "VMware":
        raise ResourceNotFoundError(f"cloud account {ident} is a {acct.get('provider')} account, not a VMware one")
    show_object(acct)


@click.command("cloud-account-create-vmware")
@click.argument("name")
@click.option("--host", required=True, help="vCenter or ESXi address (name or IP)")
@click.option("--port", type=click.IntRange(1, 65535), default=443, show_default=True)
@click.option("--username", required=True, help="e.g. administrator@vsphere.local")
@click.option("--password", prompt=True, hide_input=True, envvar="CLOUDPODS_CLOUD_SECRET",
              help="Prompted, or $CLOUDPODS_CLOUD_SECRET; avoid it on the command line")
@click.option("--insecure", is_flag=True, help="Accept a self-signed certificate (not verified)")
@click.option("--datacenter", default=None, help="Sync only this datacenter (name or id)")
@click.option("--datastore", default=None, help="Datastore for new VMs (default: the host's with most free space)")
@click.option("--sync-interval", type=int, default=None, help="Seconds between periodic syncs (0: none)")
@account_create_options
def cloud_account_create_vmware(obj: Any, name: str, host: str, port: int, username: str, password: str,
                                insecure: bool, datacenter: str | None, datastore: str | None, **account: Any) -> None:
    """Create a VMware account: a vCenter or an ESXi (the login is checked first)."""
    options: dict[str, Any] = {}
    if insecure:
        options["insecure"] = True
    if datacenter:
        options["datacenter"] = datacenter
    if datastore:
        options["datastore"] = datastore
    url = f"https://{host}" + (f":{port}" if port != 443 else "")
    create_account(obj, "VMware", name, username, password, url, options, **account)
